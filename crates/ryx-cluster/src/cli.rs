//! The command line.

use crate::util::Amount;
use clap::{ArgGroup, Args, Parser, Subcommand};
use std::path::PathBuf;

/// Runs a cluster of ryx-node processes on this machine, for development
/// and testing: start it, watch it, grow it, break it, measure it.
///
/// Nodes bind 127.0.0.1 and discover each other by broadcast on loopback
/// (127.255.255.255) on a discovery port unique to the cluster; nothing is
/// sent beyond this machine (with `start --netns`, nothing beyond network
/// namespaces it creates, one per node). Node processes outlive the command that
/// started them; their state (pids, ports, ids) and one log per node live
/// in the run directory: --dir, else $XDG_STATE_HOME/ryx, else ./.ryx.
///
/// Examples:
///   ryx-cluster demo                       # the guided tour, start to stop
///   ryx-cluster start --nodes 10
///   ryx-cluster status
///   ryx-cluster info put greeting hello && ryx-cluster info get greeting
///   ryx-cluster chaos --kill 30% --wait
///   ryx-cluster inject word-count --size 64MiB
///   ryx-cluster chaos --partition 50% --for 10s --during-job
///   ryx-cluster add --nodes 3
///   ryx-cluster logs --node 2 --lines 50
///   ryx-cluster stop
///   ryx-cluster measure --nodes 50 --kill 30%
///   ryx-cluster bench --nodes 2,5,10 --size 64MiB
#[derive(Parser, Debug)]
#[command(name = "ryx-cluster", version, verbatim_doc_comment)]
pub struct Cli {
    /// Run directory holding the cluster state (cluster.json) and node logs
    /// [default: $XDG_STATE_HOME/ryx, else ./.ryx].
    #[arg(long, global = true, env = "RYX_CLUSTER_DIR", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Start N nodes and wait until they form a connected graph
    ///
    /// Every node gets a free port (UDP and HTTP on the same number), logs
    /// to DIR/node-I.log, and runs in its own process group, so it keeps
    /// running after this command ends (even on Ctrl-C). The command
    /// returns once every node has at least min(4, N-1) neighbours and the
    /// neighbour graph is connected, and prints how long that took. State
    /// of an earlier run whose nodes are all gone is cleaned up first; a
    /// run directory with live nodes is refused (use `add` or `stop`).
    ///
    /// Arguments after `--` go to every ryx-node, e.g.
    ///   ryx-cluster start --nodes 5 -- --log ryx_node=debug
    ///
    /// With --netns (Linux, root) every node runs in a network namespace
    /// of its own, like a separate host: address 10.78.0.(I+1) of --subnet
    /// (default 10.78.0.0/24), UDP and HTTP on port 9001 (--base-port + 1),
    /// all joined by a bridge in one more namespace. Discovery is by seed
    /// nodes (the first three addresses), or with --discovery broadcast by
    /// hellos to the subnet's broadcast address on the bridge. This
    /// machine gets one address on the subnet (the last, e.g. 10.78.0.254)
    /// on a veth into the bridge, so status, logs, info, inject, chaos, add
    /// and ryx-control reach the nodes as usual; start checks that the route to
    /// the subnet is that veth (nothing can leave by another interface).
    /// chaos --partition then moves one side's links to a second bridge,
    /// --loss and --delay use tc netem in the node namespaces (without
    /// sch_netem: iptables for loss, the nodes' fault injection for delay).
    /// Names start with rxc + 6 hex digits of the cluster id; `stop`
    /// removes every namespace and link, as does a start that fails.
    ///   sudo ryx-cluster start --netns -n 8
    ///   sudo ryx-cluster start --netns -n 5 --subnet 10.78.9.0/24 --discovery broadcast
    #[command(verbatim_doc_comment)]
    Start(StartArgs),
    /// Stop every node of the cluster and remove its state.
    ///
    /// SIGTERM first (nodes announce their leave), SIGKILL for any still
    /// running after about 3 s. Only processes that still are the ryx-node
    /// started with this cluster's id and port are signalled. A --netns
    /// cluster's namespaces and veth are removed too. Node logs are kept.
    /// Stopping a directory with no cluster does nothing.
    Stop,
    /// Show every node: id, pid, ports, neighbours, memory, alive.
    Status(StatusArgs),
    /// Print the last lines of one or every node's log.
    Logs(LogsArgs),
    /// Add K nodes to the running cluster and wait until they have joined.
    ///
    /// No configuration change: the new nodes find the others by broadcast
    /// like the first ones did. Extra node arguments given to `start` are
    /// used again, then those given here after `--` (for these nodes only).
    Add(AddArgs),
    /// Break things: kill, pause, partition, lose or delay traffic
    ///
    /// Victims are random, seeded by --seed or the clock (the seed is
    /// printed so a run can be repeated). Killed nodes are marked dead in
    /// the state. Timed faults (--pause, --partition, --loss, --delay) are
    /// recorded with their deadline in DIR/faults.json, logged to
    /// DIR/chaos.log, and undone at the deadline: by this command (which
    /// waits, unless --detach; Ctrl-C undoes at once), by the nodes' own
    /// expiry of network faults, and by a detached healer process, so a
    /// fault never outlives its deadline even if this command dies.
    /// Network faults use the nodes' fault-injection API (no root needed);
    /// in a `start --netns` cluster a partition moves one side's links to a
    /// second bridge (all traffic, one partition at a time), and loss and
    /// delay are tc netem in the node namespaces (without sch_netem: loss by
    /// iptables statistic DROP of outgoing UDP, delay by fault injection).
    ///
    /// Examples:
    ///   ryx-cluster chaos --kill 30% --wait
    ///   ryx-cluster chaos --kill 2 --seed 7
    ///   ryx-cluster chaos --pause 1 --for 3s
    ///   ryx-cluster chaos --partition 50% --for 10s
    ///   ryx-cluster chaos --loss 20% --for 30s --detach
    ///   ryx-cluster chaos --delay 50 --jitter 20 --for 10s --nodes 30%
    ///   ryx-cluster chaos --kill 50% --during-job --job word-count --size 64MiB
    ///   ryx-cluster chaos --heal
    #[command(verbatim_doc_comment)]
    Chaos(ChaosArgs),
    /// Put and get info items through the nodes' HTTP API.
    #[command(subcommand)]
    Info(InfoCmd),
    /// Membership benchmark against real processes (temporary cluster)
    ///
    /// Starts N nodes in a temporary run dir (--dir is not used) and
    /// reports (a) time until every node has >= min(4, N-1) neighbours and
    /// the graph is connected; (b) time for an info item put at one node to
    /// reach every node; (d) idle CPU and resident memory per node; (c)
    /// after SIGKILL of --kill nodes at once, time until no survivor lists
    /// a dead neighbour, and until every survivor again has >= min(4,
    /// survivors-1) live neighbours in a connected graph. Everything it
    /// started is stopped at the end, also on error or Ctrl-C.
    #[command(verbatim_doc_comment)]
    Measure(MeasureArgs),
    /// A guided tour: nodes find each other, compute, survive chaos.
    ///
    /// Starts 10 nodes in a temporary run dir (or --dir), prints the
    /// dashboard address, runs word-count and log-analysis on the built-in
    /// corpus, SIGKILLs 30% of the nodes mid-job, shows both jobs complete
    /// with the same result digest as `ryx-node exec` on the same bytes,
    /// prints the results, and stops everything (unless --keep).
    Demo(DemoArgs),
    /// Run a job on the cluster and print its result
    ///
    /// Uploads the input (files, directories walked in path order) to the
    /// entry node, or has it generate the built-in sample corpus of --size,
    /// submits the job, shows a progress bar on stderr (units done,
    /// throughput, elapsed) and prints the result readably (--json: the raw
    /// job answer). A failed or cancelled job exits non-zero with the
    /// reason; --verify also checks the digest against `ryx-node exec`.
    ///
    /// Examples:
    ///   ryx-cluster inject word-count
    ///   ryx-cluster inject log-analysis --size 64MiB
    ///   ryx-cluster inject log-analysis --input ../shared/data/loghub/HDFS/HDFS_2k.log --preset HDFS
    ///   ryx-cluster inject grep --input logs/ --param pattern='ERROR|FATAL' --redundancy 3 --to 2
    #[command(verbatim_doc_comment)]
    Inject(InjectArgs),
    /// The same job across cluster sizes, next to `ryx-node exec` and Dask
    ///
    /// For every size in --nodes: a temporary cluster, the input loaded
    /// onto it, the job timed from submit to done (and again with --kill
    /// nodes SIGKILLed at --at). Prints a table (wall time, MB/s, ratio to
    /// the single-process reference, units re-executed, messages per node,
    /// peak RSS per node) and writes a CSV and an SVG plot.
    ///
    /// Example:
    ///   ryx-cluster bench --nodes 2,5,10,20,50 --job word-count --size 256MiB --kill 50% --at 25%
    #[command(verbatim_doc_comment)]
    Bench(BenchArgs),
    /// (internal) Undo timed faults at their deadlines; started by `chaos`.
    #[command(name = "heal-daemon", hide = true)]
    HealDaemon,
    /// (internal) Append live logs to the nodes' files; started by `start --logs`.
    #[command(name = "log-daemon", hide = true)]
    LogDaemon,
}

/// Where the node binary comes from.
#[derive(Args, Debug, Clone)]
pub struct NodeBinArg {
    /// The ryx-node binary [default: RYX_NODE_BIN, else ryx-node next to
    /// ryx-cluster (built with cargo when run from the workspace), else PATH].
    #[arg(long, env = "RYX_NODE_BIN", value_name = "PATH")]
    pub node_bin: Option<PathBuf>,
}

/// Options of `start`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("spread").args(["source", "docs"])))]
pub struct StartArgs {
    /// Number of nodes.
    #[arg(long, short = 'n', default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub nodes: u16,
    /// First port to try: the discovery port, then one port per node above
    /// it, skipping busy ones [default: a random base in 24000-31999]. With
    /// --netns: the discovery port, every node on the next [default: 9000].
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1024..65535))]
    pub base_port: Option<u16>,
    /// Every node in a network namespace of its own with its own address
    /// (Linux, root); see above.
    #[arg(long)]
    pub netns: bool,
    /// With --netns: the nodes' subnet (private, /16 to /29); this machine
    /// takes its last address.
    #[arg(long, value_name = "CIDR", default_value = crate::cluster::netns::DEFAULT_SUBNET, requires = "netns")]
    pub subnet: String,
    /// With --netns: how nodes find each other.
    #[arg(long, value_enum, default_value = "seed-nodes", requires = "netns")]
    pub discovery: crate::cluster::netns::Discovery,
    /// Node binary.
    #[command(flatten)]
    pub node: NodeBinArg,
    /// Seconds to wait for the cluster to connect.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub timeout: f64,
    /// Return as soon as every node's API answers, without waiting for the
    /// neighbour graph.
    #[arg(long)]
    pub no_wait: bool,
    /// Data the nodes hold in their own files, NAME=FILE: every node
    /// follows FILE as dataset NAME; with --split, FILE is cut at line
    /// ends into one part per node, each written to that node's own data
    /// directory (DIR/data/node-I), in node-id order (so that a job over
    /// the dataset equals `ryx-node exec` over FILE). Not with --netns.
    #[arg(long, value_name = "NAME=FILE", conflicts_with = "netns")]
    pub source: Option<String>,
    /// With --source: spread the file over the nodes instead of giving
    /// every node all of it (--docs always does).
    #[arg(long, requires = "spread")]
    pub split: bool,
    /// A corpus of documents (JSON lines with an `id` or `_id`, the other
    /// string fields as text) spread over the nodes as dataset `docs`: the
    /// same as `--source docs=FILE --split`. Search it from any node with
    /// `ryx-node search QUERY --dataset docs` or `GET /v1/search`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["netns", "source", "logs"])]
    pub docs: Option<PathBuf>,
    /// Live logs: a detached writer appends the built-in generator's lines
    /// (RATE lines per second per node, e.g. 200) to every running node's
    /// own DIR/data/node-I/app.log, which the node follows as dataset
    /// `app` (rotated at 64 MiB). Jobs over it: `inject KIND --dataset app`.
    #[arg(long, value_name = "RATE", value_parser = crate::cluster::logs::parse_rate, conflicts_with_all = ["netns", "source"])]
    pub logs: Option<f64>,
    /// With --logs: how long the writer runs (at most 24h); it also ends
    /// with `stop` or when no node runs.
    #[arg(long, value_name = "DURATION", default_value = "1h", requires = "logs", value_parser = crate::util::parse_duration)]
    pub logs_for: std::time::Duration,
    /// Extra arguments for every ryx-node (after `--`).
    #[arg(last = true, value_name = "NODE_ARGS")]
    pub node_args: Vec<String>,
}

/// Options of `status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Only this node (index as shown by `status`).
    #[arg(long, value_name = "I")]
    pub node: Option<usize>,
    /// Lines per node.
    #[arg(long, short = 'n', default_value_t = 20, value_name = "K")]
    pub lines: usize,
}

/// Options of `add`.
#[derive(Args, Debug)]
pub struct AddArgs {
    /// Number of nodes to add.
    #[arg(long, short = 'n', default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub nodes: u16,
    /// Node binary [default: the one the cluster was started with].
    #[arg(long, value_name = "PATH")]
    pub node_bin: Option<PathBuf>,
    /// Seconds to wait for the grown cluster to be healthy.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub timeout: f64,
    /// Return as soon as the new nodes' APIs answer.
    #[arg(long)]
    pub no_wait: bool,
    /// Extra arguments for these nodes only (after `--`, after those given
    /// to `start`), e.g. `add -n 3 -- --workers 4 --fault slow=10`: a
    /// cluster of unequal machines.
    #[arg(last = true, value_name = "NODE_ARGS")]
    pub node_args: Vec<String>,
}

/// Options of `chaos`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("action").required(true).args(["kill", "pause", "partition", "loss", "delay", "heal"])))]
pub struct ChaosArgs {
    /// SIGKILL this many live nodes: a count (3) or a percentage (30%).
    #[arg(long, value_name = "N|P%")]
    pub kill: Option<Amount>,
    /// SIGSTOP this many live nodes, then SIGCONT them after --for.
    #[arg(long, value_name = "N|P%", requires = "for_")]
    pub pause: Option<Amount>,
    /// Split the live nodes into two sides that cannot talk (UDP dropped
    /// both ways): this share on one side, the rest on the other.
    #[arg(long, value_name = "N|P%", requires = "for_")]
    pub partition: Option<Amount>,
    /// Lose this share of every outgoing datagram (e.g. 20%).
    #[arg(long, value_name = "P%", requires = "for_", value_parser = parse_fraction)]
    pub loss: Option<f64>,
    /// Delay every outgoing datagram by this many milliseconds.
    #[arg(long, value_name = "MS", requires = "for_", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub delay: Option<u64>,
    /// Random extra delay up to this many milliseconds (with --delay).
    #[arg(long, value_name = "MS", default_value_t = 0, requires = "delay", value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub jitter: u64,
    /// Undo every fault now: clear the network faults of every live node
    /// and resume every paused one.
    #[arg(long)]
    pub heal: bool,
    /// With --loss or --delay: only this many of the live nodes [default: all].
    #[arg(long = "nodes", value_name = "N|P%")]
    pub targets: Option<Amount>,
    /// How long a pause, partition, loss or delay lasts (500ms, 3s, 1m; at
    /// most 1h). It is undone at the deadline even if this command is gone.
    #[arg(long = "for", id = "for_", value_name = "DURATION", value_parser = crate::util::parse_duration)]
    pub for_: Option<std::time::Duration>,
    /// Return as soon as the fault is in place; the nodes' own expiry and
    /// a detached healer undo it at the deadline.
    #[arg(long, conflicts_with = "during_job")]
    pub detach: bool,
    /// Seed for choosing the victims [default: from the clock].
    #[arg(long)]
    pub seed: Option<u64>,
    /// After killing, wait until the survivors have dropped the dead and
    /// healed, and print how long each took.
    #[arg(long)]
    pub wait: bool,
    /// Seconds to wait with --wait.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub timeout: f64,
    /// Start a job, inject the fault while it runs (once it reaches --at),
    /// then wait for the job, print its result and check it against the
    /// single-process reference (`ryx-node exec`).
    #[arg(long)]
    pub during_job: bool,
    /// Job options for --during-job.
    #[command(flatten)]
    pub job: JobArgs,
    /// With --during-job: inject the fault when the job has done this
    /// share of its units.
    #[arg(long, default_value = "20%", value_name = "P%", value_parser = parse_fraction)]
    pub at: f64,
    /// With --during-job: inject the fault this long after the submit
    /// instead (if the job still runs).
    #[arg(long, value_name = "DURATION", value_parser = crate::util::parse_duration)]
    pub after: Option<std::time::Duration>,
}

/// How a job's kernel runs: its parameters and replicas (shared by
/// `inject` and `JobArgs`).
#[derive(Args, Debug, Clone)]
pub struct KernelArgs {
    /// log-analysis header layout preset (a Loghub dataset name, e.g.
    /// HDFS); the built-in corpus gets its own format by default.
    #[arg(long, value_name = "P")]
    pub preset: Option<String>,
    /// A job parameter, KEY=VALUE (VALUE read as JSON if it parses, else as
    /// a string). Repeatable: --param pattern=ERROR --param top=10.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Replicas per unit [default: the node's, 2].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub redundancy: Option<u8>,
}

/// A job to run: kind, input, parameters (shared by `inject`, `chaos
/// --during-job` and `bench`).
#[derive(Args, Debug, Clone)]
pub struct JobArgs {
    /// Job kind: word-count, grep or log-analysis.
    #[arg(long = "job", default_value = "word-count", value_name = "KIND")]
    pub kind: String,
    /// Input files or directories [default: the built-in sample corpus].
    #[arg(long = "input", value_name = "FILE|DIR", num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Size of the built-in corpus (256MiB, 16M, ...).
    #[arg(long, default_value = "16MiB", value_name = "SIZE")]
    pub size: String,
    /// Seed of the built-in corpus.
    #[arg(long = "corpus-seed", default_value_t = 1, value_name = "N")]
    pub corpus_seed: u64,
    /// Kernel settings.
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Seconds to wait for the job.
    #[arg(long = "job-timeout", default_value_t = 600.0, value_name = "SECS")]
    pub job_timeout: f64,
    /// Skip the check against `ryx-node exec`.
    #[arg(long)]
    pub no_verify: bool,
}

/// Options of `inject`.
#[derive(Args, Debug)]
pub struct InjectArgs {
    /// Job kind: word-count, grep or log-analysis.
    pub kind: String,
    /// Input files or directories [default: the built-in sample corpus].
    #[arg(long = "input", value_name = "FILE|DIR", num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Run over dataset NAME, held in the nodes' own files (`start --logs`,
    /// `start --source NAME=FILE`, `ryx-node --source`), where its parts lie.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["inputs", "verify", "energy"])]
    pub dataset: Option<String>,
    /// Kernel settings.
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Entry node (index as shown by `status`) [default: the first running].
    #[arg(long, value_name = "I")]
    pub to: Option<usize>,
    /// Size of the built-in corpus (when no --input).
    #[arg(long, default_value = "16MiB", value_name = "SIZE")]
    pub size: String,
    /// Seed of the built-in corpus.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seed: u64,
    /// Replication energy of the uploaded input [default: the node's].
    #[arg(long)]
    pub energy: Option<f64>,
    /// Also run `ryx-node exec` on the same bytes and check the result
    /// digest matches (exit 3 if not).
    #[arg(long)]
    pub verify: bool,
    /// Print the raw job answer (with the result) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the job.
    #[arg(long, default_value_t = 600.0, value_name = "SECS")]
    pub timeout: f64,
}

/// Options of `bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Cluster sizes to run, comma-separated.
    #[arg(long, default_value = "2,5,10,20", value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub nodes: Vec<u16>,
    /// Job kind.
    #[arg(long, default_value = "word-count", value_name = "KIND")]
    pub job: String,
    /// Input file [default: the built-in corpus of --size].
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Size of the built-in corpus.
    #[arg(long, default_value = "64MiB", value_name = "SIZE")]
    pub size: String,
    /// Seed of the built-in corpus.
    #[arg(long = "corpus-seed", default_value_t = 1, value_name = "N")]
    pub corpus_seed: u64,
    /// A job parameter, KEY=VALUE. Repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Replicas per unit.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub redundancy: u8,
    /// Also run every size with this share of the nodes SIGKILLed mid-job
    /// (e.g. 50%); the run without kills is always made too. With `--job
    /// search`: killed after the clean passes, then every query asked again
    /// of the survivors.
    #[arg(long, value_name = "N|P%")]
    pub kill: Option<Amount>,
    /// With --kill: kill when the job has done this share of its units.
    #[arg(long, default_value = "25%", value_name = "P%", value_parser = parse_fraction)]
    pub at: f64,
    /// Replication energy of the input (how far copies spread: 1 = the
    /// entry node's neighbours) [default: the node's choice, three hops
    /// (up to 15 copies), four beyond 256 chunks]. Lower it for big inputs
    /// on many nodes: every copy costs memory.
    #[arg(long)]
    pub energy: Option<f64>,
    /// Worker threads of the `ryx-node exec` reference.
    #[arg(long, default_value_t = 2)]
    pub exec_threads: usize,
    /// `--job search`: the queries, one per line (the documents are
    /// --input, JSON lines with an id, spread over the nodes as dataset
    /// `docs`); reports queries/s and p50/p99 latency next to one tantivy
    /// index in one process (`exec search --queries`, --exec-threads).
    #[arg(long, value_name = "FILE")]
    pub queries: Option<PathBuf>,
    /// `--job search`: concurrent clients of the throughput run.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub clients: u16,
    /// Runs of each configuration (the median is reported).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub repeat: u16,
    /// Run jobs over data that lives on the nodes: the input is spread
    /// over the nodes' own data directories (`start --split`) and the job
    /// is submitted over that dataset, instead of uploading the input to
    /// the entry node.
    #[arg(long)]
    pub dataset: bool,
    /// Skip the Dask comparison.
    #[arg(long)]
    pub no_dask: bool,
    /// The Dask word-count script.
    #[arg(long, default_value = "/work/shared/bench/peers/dask_wc.py", value_name = "FILE")]
    pub dask_script: PathBuf,
    /// Where to write the CSV and SVG [default: the run dir].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// First port to try [default: random in 24000-31999].
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1024..))]
    pub base_port: Option<u16>,
    /// Seed for choosing victims [default: from the clock].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seconds each job may take.
    #[arg(long, default_value_t = 900.0, value_name = "SECS")]
    pub job_timeout: f64,
    /// Node binary.
    #[command(flatten)]
    pub node: NodeBinArg,
    /// Print the rows as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Extra arguments for every ryx-node (after `--`).
    #[arg(last = true, value_name = "NODE_ARGS")]
    pub node_args: Vec<String>,
}

/// Parses `20%`, `0.2` or `20` (a percentage when above 1) as a fraction.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, pct) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (t, false),
    };
    let v: f64 = num.parse().map_err(|_| format!("{s:?} is not a share like 20% or 0.2"))?;
    let f = if pct || v > 1.0 { v / 100.0 } else { v };
    if !(0.0..=1.0).contains(&f) {
        return Err(format!("{s:?} is outside 0–100%"));
    }
    Ok(f)
}

/// `info` subcommands.
#[derive(Subcommand, Debug)]
pub enum InfoCmd {
    /// Put an info item at one node; it spreads by energy-based diffusion.
    Put(InfoPutArgs),
    /// Ask every live node for an item and show the coverage.
    Get(InfoGetArgs),
}

/// Options of `info put`.
#[derive(Args, Debug)]
pub struct InfoPutArgs {
    /// Key of the item.
    pub key: String,
    /// Value: JSON if it parses as JSON (42, true, {"a":1}), else a string.
    pub value: String,
    /// Energy to give it (how far it spreads) [default: the node's].
    #[arg(long)]
    pub energy: Option<f64>,
    /// Put it at this node (index) [default: the first live node].
    #[arg(long, value_name = "I")]
    pub to: Option<usize>,
}

/// Options of `info get`.
#[derive(Args, Debug)]
pub struct InfoGetArgs {
    /// Key of the item.
    pub key: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `measure`.
#[derive(Args, Debug)]
pub struct MeasureArgs {
    /// Number of nodes.
    #[arg(long, short = 'n', default_value_t = 10, value_parser = clap::value_parser!(u16).range(2..=1000))]
    pub nodes: u16,
    /// Nodes to SIGKILL at once after the idle sample: a count or a
    /// percentage; 0 skips the failure part.
    #[arg(long, default_value = "30%", value_name = "N|P%")]
    pub kill: Amount,
    /// Seconds of idle CPU sampling.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub idle_secs: f64,
    /// Seconds each phase may take before it is reported as not reached.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub timeout: f64,
    /// First port to try [default: random in 24000-31999].
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1024..))]
    pub base_port: Option<u16>,
    /// Seed for choosing the victims [default: from the clock].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Node binary.
    #[command(flatten)]
    pub node: NodeBinArg,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Extra arguments for every ryx-node (after `--`).
    #[arg(last = true, value_name = "NODE_ARGS")]
    pub node_args: Vec<String>,
}

/// Options of `demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Number of nodes.
    #[arg(long, short = 'n', default_value_t = 10, value_parser = clap::value_parser!(u16).range(3..=500))]
    pub nodes: u16,
    /// Leave the cluster running at the end (its run dir and the commands
    /// to inspect and stop it are printed).
    #[arg(long)]
    pub keep: bool,
    /// First port to try [default: random in 24000-31999].
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1024..))]
    pub base_port: Option<u16>,
    /// Seed for choosing which nodes die [default: from the clock].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Size of the built-in corpus the jobs run on.
    #[arg(long, default_value = "24MiB", value_name = "SIZE")]
    pub size: String,
    /// Node binary.
    #[command(flatten)]
    pub node: NodeBinArg,
}
