//! The command line.

use crate::util::Amount;
use clap::{ArgGroup, Args, Parser, Subcommand};
use std::path::PathBuf;

/// Runs a cluster of ryx-node processes on this machine, for development
/// and testing: start it, watch it, grow it, break it, measure it.
///
/// Nodes bind 127.0.0.1 and discover each other by broadcast on loopback
/// (127.255.255.255) on a discovery port unique to the cluster; nothing is
/// sent beyond this machine. Node processes outlive the command that
/// started them; their state (pids, ports, ids) and one log per node live
/// in the run directory: --dir, else $XDG_STATE_HOME/ryx, else ./.ryx.
///
/// Examples:
///   ryx-cluster demo                       # the guided tour, start to stop
///   ryx-cluster start --nodes 10
///   ryx-cluster status
///   ryx-cluster info put greeting hello && ryx-cluster info get greeting
///   ryx-cluster chaos --kill 30% --wait
///   ryx-cluster add --nodes 3
///   ryx-cluster logs --node 2 --lines 50
///   ryx-cluster stop
///   ryx-cluster measure --nodes 50 --kill 30%
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
    #[command(verbatim_doc_comment)]
    Start(StartArgs),
    /// Stop every node of the cluster and remove its state.
    ///
    /// SIGTERM first (nodes announce their leave), SIGKILL for any still
    /// running after about 3 s. Only processes that still are the ryx-node
    /// started with this cluster's id and port are signalled. Node logs are
    /// kept. Stopping a directory with no cluster does nothing.
    Stop,
    /// Show every node: id, pid, ports, neighbours, memory, alive.
    Status(StatusArgs),
    /// Print the last lines of one or every node's log.
    Logs(LogsArgs),
    /// Add K nodes to the running cluster and wait until they have joined.
    ///
    /// No configuration change: the new nodes find the others by broadcast
    /// like the first ones did. Extra node arguments given to `start` are
    /// used again.
    Add(AddArgs),
    /// Break things: SIGKILL or pause (SIGSTOP/SIGCONT) random live nodes
    ///
    /// The choice is random, seeded by --seed or the clock (the seed is
    /// printed so a run can be repeated). Killed nodes are marked dead in
    /// the state. --pause resumes the nodes after --for, or on Ctrl-C.
    ///
    /// Examples:
    ///   ryx-cluster chaos --kill 30% --wait
    ///   ryx-cluster chaos --kill 2 --seed 7
    ///   ryx-cluster chaos --pause 1 --for 3s
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
    /// A guided tour: nodes find each other, share an item, survive chaos.
    ///
    /// Starts 10 nodes in a temporary run dir (or --dir), shows them find
    /// each other, puts an info item at one node and times its spread,
    /// SIGKILLs 30% and shows the survivors detect and replace the dead
    /// while still holding the item, then stops everything (unless --keep).
    Demo(DemoArgs),
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
pub struct StartArgs {
    /// Number of nodes.
    #[arg(long, short = 'n', default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub nodes: u16,
    /// First port to try: the discovery port, then one port per node above
    /// it, skipping busy ones [default: a random base in 24000-31999].
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1024..))]
    pub base_port: Option<u16>,
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
}

/// Options of `chaos`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("action").required(true).args(["kill", "pause"])))]
pub struct ChaosArgs {
    /// SIGKILL this many live nodes: a count (3) or a percentage (30%).
    #[arg(long, value_name = "N|P%")]
    pub kill: Option<Amount>,
    /// SIGSTOP this many live nodes, then SIGCONT them after --for.
    #[arg(long, value_name = "N|P%", requires = "for_")]
    pub pause: Option<Amount>,
    /// How long to keep paused nodes stopped (500ms, 3s, 1m).
    #[arg(long = "for", id = "for_", value_name = "DURATION", value_parser = crate::util::parse_duration)]
    pub for_: Option<std::time::Duration>,
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
    /// Node binary.
    #[command(flatten)]
    pub node: NodeBinArg,
}
