//! Command line and environment configuration of the daemon.

use clap::{Args, Parser, Subcommand, ValueEnum};
use ryx_core::config::{Discovery, NodeConfig};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// A Ryx node: one peer of a robust-first computing network.
///
/// Each node talks only to its 4–6 neighbours over UDP, finds them by
/// broadcast on the local segment or through seed nodes, detects failed
/// neighbours in under a second and replaces them, spreads information by
/// energy-based diffusion, and serves an HTTP API (status, info, metrics).
///
/// Every option can also be set with an environment variable RYX_<NAME>
/// (for example RYX_PORT=9001, RYX_CLUSTER_ID=test).
///
/// Examples:
///   ryx-node --port 9001 --discovery broadcast --cluster-id test
///   ryx-node --port 9003 --discovery seed-nodes --seeds 127.0.0.1:9001 --cluster-id test
///   curl -s localhost:9001/v1/status
#[derive(Parser, Debug)]
#[command(name = "ryx-node", version, verbatim_doc_comment, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to run instead of the daemon.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Daemon options.
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a job's kernels in this one process, with no network: the
    /// single-process reference (same result and digest as a cluster).
    Exec(ExecArgs),
    /// Run a job on a running cluster: submit it to any node, show its
    /// progress, print its result.
    ///
    ///   ryx-node run word-count --dataset app --node 127.0.0.1:9001
    ///   ryx-node run grep --dataset app --param pattern=ERROR --json
    #[command(verbatim_doc_comment)]
    Run(RunArgs),
    /// Search a dataset of documents (JSON lines with an `id`) on a running
    /// cluster: BM25, ranked as one index over all of them would rank.
    ///
    ///   ryx-node search "failure detector" --dataset docs --node 127.0.0.1:9001
    #[command(verbatim_doc_comment)]
    Search(SearchArgs),
}

/// Options of `ryx-node search`.
#[derive(Args, Debug)]
pub struct SearchArgs {
    /// The query.
    pub query: String,
    /// The dataset to search (`--source NAME=…` on the nodes).
    #[arg(long)]
    pub dataset: String,
    /// Hits wanted, 1 to 1000.
    #[arg(long, short, default_value_t = 10)]
    pub k: u32,
    /// The node to ask (its HTTP API), HOST:PORT.
    #[arg(long, env = "RYX_NODE", default_value = "127.0.0.1:9001")]
    pub node: String,
    /// Replicas per unit, 1 to 7 [default: the node's, 2].
    #[arg(long)]
    pub redundancy: Option<u8>,
    /// The API token, if the cluster has one.
    #[arg(long, env = "RYX_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the whole answer as JSON instead.
    #[arg(long)]
    pub json: bool,
}

/// Options of `ryx-node run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Job kind: word-count, grep, log-analysis, search, search-stats or pipeline.
    pub kind: String,
    /// A dataset the nodes hold in their own files (`--source NAME=…`).
    #[arg(long, required_unless_present = "input", conflicts_with = "input")]
    pub dataset: Option<String>,
    /// Blobs uploaded to that node (PUT /v1/blobs), instead of a dataset.
    #[arg(long, num_args = 1..)]
    pub input: Vec<String>,
    /// The node to submit to (its HTTP API), HOST:PORT.
    #[arg(long, env = "RYX_NODE", default_value = "127.0.0.1:9001")]
    pub node: String,
    /// A job parameter, KEY=VALUE (VALUE is read as JSON if it parses,
    /// else as a string). Repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Replicas per unit, 1 to 7 [default: the node's, 2].
    #[arg(long)]
    pub redundancy: Option<u8>,
    /// The API token, if the cluster has one.
    #[arg(long, env = "RYX_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seconds to wait for the job.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Print the job (with its result) as JSON instead.
    #[arg(long)]
    pub json: bool,
}

/// Options of `ryx-node exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Job kind: word-count, grep, log-analysis, search, search-stats or pipeline.
    pub kind: String,
    /// Input files, processed in the order given.
    #[arg(long = "input", required = true, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// A job parameter, KEY=VALUE (VALUE is read as JSON if it parses,
    /// else as a string). Repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Size of a work unit in bytes (inputs are cut at line ends).
    #[arg(long, default_value_t = ryx_compute::DEFAULT_CHUNK_SIZE)]
    pub chunk_size: usize,
    /// Print the whole result as JSON (default: the result and its digest).
    #[arg(long)]
    pub json: bool,
    /// `search` only: one query per line. One index is built over the
    /// inputs and asks every query (by --threads threads, default 1);
    /// prints the throughput and latency percentiles, and with --json each
    /// query's hit ids: the single-process baseline of `ryx-cluster bench
    /// --job search`.
    #[arg(long, value_name = "FILE")]
    pub queries: Option<PathBuf>,
}

/// How logs are written.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Discovery mode on the command line.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryArg {
    /// UDP broadcast hellos on the local segment.
    Broadcast,
    /// Hellos to the addresses given with --seeds.
    SeedNodes,
}

/// Options of the daemon.
#[derive(Args, Debug, Clone)]
pub struct DaemonArgs {
    /// UDP port for neighbour traffic. The HTTP API listens on the same
    /// port number over TCP unless --http-port says otherwise.
    #[arg(long, env = "RYX_PORT", default_value_t = 9001)]
    pub port: u16,
    /// TCP port of the HTTP API (default: same as --port).
    #[arg(long, env = "RYX_HTTP_PORT")]
    pub http_port: Option<u16>,
    /// Address to bind UDP and HTTP to.
    #[arg(long, env = "RYX_BIND", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
    /// How to find peers: broadcast (local segment) or seed-nodes (--seeds).
    #[arg(long, env = "RYX_DISCOVERY", value_enum, default_value_t = DiscoveryArg::Broadcast)]
    pub discovery: DiscoveryArg,
    /// Seed nodes, host:port[,host:port...]. Host names are resolved and
    /// re-resolved periodically; a name with many addresses seeds them all.
    #[arg(long, env = "RYX_SEEDS", value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// Cluster name; nodes of other clusters are ignored (and counted).
    #[arg(long, env = "RYX_CLUSTER_ID", default_value = "ryx")]
    pub cluster_id: String,
    /// Broadcast address for local discovery (the default keeps traffic on
    /// loopback).
    #[arg(long, env = "RYX_BROADCAST_ADDR", default_value_t = IpAddr::V4(Ipv4Addr::new(127, 255, 255, 255)))]
    pub broadcast_addr: IpAddr,
    /// UDP port every node of a segment listens on for discovery hellos.
    #[arg(long, env = "RYX_DISCOVERY_PORT", default_value_t = 9000)]
    pub discovery_port: u16,
    /// Fewest active neighbours a node is content with.
    #[arg(long, env = "RYX_MIN_NEIGHBORS", default_value_t = 4)]
    pub min_neighbors: usize,
    /// Active neighbours a node aims for.
    #[arg(long, env = "RYX_TARGET_NEIGHBORS", default_value_t = 5)]
    pub target_neighbors: usize,
    /// Most active neighbours a node accepts.
    #[arg(long, env = "RYX_MAX_NEIGHBORS", default_value_t = 6)]
    pub max_neighbors: usize,
    /// Size of the passive list of replacement candidates.
    #[arg(long, env = "RYX_MAX_PASSIVE", default_value_t = 30)]
    pub max_passive: usize,
    /// Probe a silent neighbour this often (milliseconds).
    #[arg(long, env = "RYX_PROBE_INTERVAL_MS", default_value_t = 100)]
    pub probe_interval_ms: u64,
    /// Send `ping`, `ack` and `agg` as JSON even to neighbours that read
    /// their short binary form, and offer none (comparison, debugging).
    #[arg(long, env = "RYX_JSON_PROBES")]
    pub json_probes: bool,
    /// Suspect a neighbour after this much silence (milliseconds).
    #[arg(long, env = "RYX_SUSPECT_AFTER_MS", default_value_t = 250)]
    pub suspect_after_ms: u64,
    /// Declare a suspect dead if nobody hears from it for this long more
    /// (milliseconds; both scale up while this node itself is slow).
    #[arg(long, env = "RYX_CONFIRM_AFTER_MS", default_value_t = 200)]
    pub confirm_after_ms: u64,
    /// Hello interval once the node has enough neighbours (milliseconds).
    #[arg(long, env = "RYX_HELLO_INTERVAL_MS", default_value_t = 5000)]
    pub hello_interval_ms: u64,
    /// Re-resolve seed host names this often (seconds).
    #[arg(long, env = "RYX_SEED_RESOLVE_S", default_value_t = 30)]
    pub seed_resolve_s: u64,
    /// Energy given to info items injected without one (22 hops by default).
    #[arg(long, env = "RYX_DEFAULT_ENERGY", default_value_t = 100.0)]
    pub default_energy: f64,
    /// Bytes the in-memory blob store may hold (suffixes K, M, G, KiB,
    /// MiB, GiB accepted). Uploads larger than this are refused.
    #[arg(long, env = "RYX_MEMORY_LIMIT", default_value = "1GiB", value_parser = parse_size)]
    pub memory_limit: u64,
    /// This node's failure domain (a rack, room or region, e.g. `rack-3`):
    /// copies of its data, and of data it keeps, go to other zones first,
    /// so one zone failing does not take every copy. Without it, the
    /// node's IP address is its domain (nodes of one machine die with it).
    #[arg(long, env = "RYX_ZONE", value_name = "NAME")]
    pub zone: Option<String>,
    /// A label of this node, `KEY=VALUE` (repeatable, or comma-separated
    /// in `RYX_LABELS`; at most 8): the network's aggregates are also kept
    /// per label value (`GET /v1/aggregates`), and incidents name them.
    #[arg(long = "label", env = "RYX_LABELS", value_name = "KEY=VALUE", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// An Alertmanager to notify of incidents, `http://HOST:PORT[/PREFIX]`
    /// (repeatable): the node that raises an incident (one per incident,
    /// network-wide) posts it to `/api/v2/alerts`.
    #[arg(long, env = "RYX_ALERTMANAGER", value_name = "URL", value_delimiter = ',')]
    pub alertmanager: Vec<crate::alerts::Sink>,
    /// Interval of the rounds of network-wide aggregation, in milliseconds
    /// (each round: one push-pull exchange with one neighbour).
    #[arg(long, env = "RYX_AGGREGATE_INTERVAL_MS", default_value_t = 1_000)]
    pub aggregate_interval_ms: u64,
    /// Most HTTP connections open at once. At the limit a new connection
    /// closes the one idle the longest (or is refused if all are busy).
    #[arg(long, env = "RYX_MAX_CONNECTIONS", default_value_t = 2048)]
    pub max_connections: usize,
    /// Longest an HTTP client may take to send a request head, and to
    /// send each piece of an upload (milliseconds).
    #[arg(long, env = "RYX_HTTP_TIMEOUT_MS", default_value_t = 10_000)]
    pub http_timeout_ms: u64,
    /// Uploads (PUT /v1/blobs) received at once; more are told to retry.
    #[arg(long, env = "RYX_MAX_UPLOADS", default_value_t = 4)]
    pub max_uploads: usize,
    /// Live event streams (/v1/events) served at once.
    #[arg(long, env = "RYX_MAX_EVENT_STREAMS", default_value_t = 256)]
    pub max_event_streams: usize,
    /// Kernel threads (work units run at once; default: all cores).
    #[arg(long, env = "RYX_WORKERS")]
    pub workers: Option<usize>,
    /// Fan-in of the merge tree of jobs homed here: partial results fold
    /// in steps of this many on the nodes holding them, and the home
    /// merges at most this many (2–32). 0: the home folds every unit's
    /// partial itself as it is decided, which is faster when every node
    /// shares the same few cores (one machine): a tree decodes and
    /// encodes every partial once more (docs/performance.md).
    #[arg(long, env = "RYX_MERGE_FAN_IN", default_value_t = 16, value_parser = clap::value_parser!(u16).range(0..=32))]
    pub merge_fan_in: u16,
    /// Size of a work unit: uploads are cut at line ends into chunks of
    /// about this many bytes.
    #[arg(long, env = "RYX_CHUNK_SIZE", default_value = "4MiB", value_parser = parse_size)]
    pub chunk_size: u64,
    /// This node's own data, read in place: a dataset NAME and the files it
    /// holds of it, e.g. `--source app=/var/log/app/*.log` (repeatable; a
    /// glob only in the file name; in the file: `source = ["app=…"]`).
    /// The files are cut at line ends into chunks named by BLAKE3 and
    /// followed as they grow, rotate or are truncated (`GET /v1/sources`).
    /// `NAME=files:PATH_OR_GLOB`: one document per file, for search (each
    /// file, once quiet, becomes a JSON line `{"id":"NODE/FILE","text":…}`
    /// in a spool under --spool-dir).
    #[arg(long = "source", env = "RYX_SOURCES", value_delimiter = ',', value_name = "NAME=PATH_OR_GLOB")]
    pub sources: Vec<crate::sources::SourceSpec>,
    /// Where the spools of one-document-per-file sources are kept (made
    /// empty at start) [default: a directory of the node's own under the
    /// system's temporary directory].
    #[arg(long, env = "RYX_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Copies of each chunk of this node's sources kept by other nodes (in
    /// their memory, under custody: restored when a keeper dies), so that
    /// jobs over the data survive this node (0: none).
    #[arg(long, env = "RYX_SOURCE_COPIES", default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=16))]
    pub source_copies: u8,
    /// Fault injection for tests, comma-separated: corrupt-results=P makes
    /// this node return a wrong partial result with probability P;
    /// slow=F makes each of its kernel runs take F times as long (a
    /// throttled or slower machine, 1 ≤ F ≤ 1000).
    #[arg(long, env = "RYX_FAULT", value_name = "corrupt-results=P,slow=F")]
    pub fault: Option<String>,
    /// Enable the network fault-injection API (/v1/admin/faults: drop
    /// traffic to and from chosen peers, lose or delay datagrams) used by
    /// `ryx-cluster chaos`. Off by default.
    #[arg(long, env = "RYX_ENABLE_FAULT_INJECTION")]
    pub enable_fault_injection: bool,
    /// Keep this node's identity in FILE: its Ed25519 key, from which its
    /// node id derives. Created on first start (mode 0600) and reused
    /// after, so a restarted node comes back as the same node. Without it
    /// every start draws a new identity.
    #[arg(long, env = "RYX_IDENTITY_FILE", value_name = "FILE")]
    pub identity_file: Option<PathBuf>,
    /// Derive the identity from this text (tests and reproducible runs:
    /// anyone who knows the text can sign as this node).
    #[arg(long, env = "RYX_IDENTITY_SEED", value_name = "TEXT")]
    pub identity_seed: Option<String>,
    /// Configuration file (TOML). Its keys are these long option names,
    /// e.g. port = 9001, cluster-id = "prod", seeds = ["10.0.0.1:9001"].
    /// Precedence: flag > RYX_* environment variable > file > default.
    #[arg(long, env = "RYX_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (as a TOML file, with where each
    /// value came from) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Address other nodes reach this one at, when it differs from --bind
    /// (needed with a wildcard bind such as 0.0.0.0, or behind NAT).
    #[arg(long, env = "RYX_ADVERTISE_ADDR")]
    pub advertise_addr: Option<IpAddr>,
    /// Address the HTTP API listens on (default: the --bind address, so
    /// loopback unless told otherwise). Nodes fetch blobs and look up jobs
    /// from each other over HTTP, so across machines it must be reachable
    /// by the other nodes.
    #[arg(long, env = "RYX_HTTP_BIND")]
    pub http_bind: Option<IpAddr>,
    /// File holding the cluster secret, one per line: every datagram is
    /// then authenticated (keyed BLAKE3 MAC, replay window); the first line
    /// signs, every line is accepted (rotate keys without downtime; SIGHUP
    /// rereads the file). Without it, the secret may come from the
    /// RYX_SECRET environment variable. See docs/security.md.
    #[arg(long, env = "RYX_SECRET_FILE", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// File holding the API token: state-changing HTTP requests then need
    /// "Authorization: Bearer <token>" (SIGHUP rereads it). Without it, the
    /// token may come from the RYX_API_TOKEN environment variable.
    #[arg(long, env = "RYX_API_TOKEN_FILE", value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
    /// With an API token, require it for reads too (except /healthz and
    /// the dashboard's static files).
    #[arg(long, env = "RYX_PROTECT_READS")]
    pub protect_reads: bool,
    /// Also serve the read-only endpoints (GET only, no admin, no token)
    /// on this address, e.g. for a Prometheus scraper or a public status
    /// page.
    #[arg(long, env = "RYX_READ_ONLY_HTTP", value_name = "ADDR:PORT")]
    pub read_only_http: Option<std::net::SocketAddr>,
    /// On SIGTERM: longest time to spend handing over work and data before
    /// exiting (milliseconds).
    #[arg(long, env = "RYX_SHUTDOWN_TIMEOUT_MS", default_value_t = 3000)]
    pub shutdown_timeout_ms: u64,
    /// Log format.
    #[arg(long, env = "RYX_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log filter (tracing syntax, e.g. info or ryx_node=debug).
    #[arg(long, env = "RYX_LOG", default_value = "info")]
    pub log: String,
}

/// Parses a byte size such as 1048576, 512MiB, 4M or 2G.
pub fn parse_size(s: &str) -> Result<u64, String> {
    ryx_compute::parse_size(s)
}

/// Parses `--fault corrupt-results=P`.
pub fn parse_fault(s: &str) -> Result<crate::work::Faults, String> {
    let mut f = crate::work::Faults::default();
    for part in s.split(',') {
        let (k, v) =
            part.split_once('=').ok_or_else(|| format!("--fault {part:?}: expected corrupt-results=P or slow=F"))?;
        let x: f64 = v.parse().map_err(|_| format!("--fault {k}: {v:?} is not a number"))?;
        match k {
            "corrupt-results" if (0.0..=1.0).contains(&x) => f.corrupt_results = x,
            "corrupt-results" => return Err(format!("--fault: {x} is not within 0..1")),
            "slow" if (1.0..=1000.0).contains(&x) => f.slow = x,
            "slow" => return Err(format!("--fault slow: {x} is not within 1..1000")),
            _ => return Err(format!("--fault: unknown fault {k:?} (known: corrupt-results, slow)")),
        }
    }
    Ok(f)
}

impl DaemonArgs {
    /// The protocol configuration these options describe.
    pub fn node_config(&self) -> NodeConfig {
        NodeConfig {
            cluster_id: self.cluster_id.clone(),
            discovery: match self.discovery {
                DiscoveryArg::Broadcast => Discovery::Broadcast,
                DiscoveryArg::SeedNodes => Discovery::SeedNodes,
            },
            min_active: self.min_neighbors,
            target_active: self.target_neighbors,
            max_active: self.max_neighbors,
            max_passive: self.max_passive,
            probe_interval: Duration::from_millis(self.probe_interval_ms),
            short_probes: !self.json_probes,
            suspect_after: Duration::from_millis(self.suspect_after_ms),
            confirm_after: Duration::from_millis(self.confirm_after_ms),
            hello_interval: Duration::from_millis(self.hello_interval_ms),
            default_energy: self.default_energy,
            memory_limit: self.memory_limit,
            zone: self.zone.clone(),
            labels: self
                .labels
                .iter()
                .map(|l| match l.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    // Refused by `NodeConfig::validate`, with its reason.
                    None => (l.clone(), String::new()),
                })
                .collect(),
            aggregate_interval: Duration::from_millis(self.aggregate_interval_ms),
            jobs: ryx_core::jobs::JobConfig {
                worker_slots: self.workers(),
                merge_fan_in: self.merge_fan_in,
                ..Default::default()
            },
            ..NodeConfig::default()
        }
    }

    /// Kernel threads.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1)
    }

    /// TCP port of the HTTP API.
    pub fn http_port(&self) -> u16 {
        self.http_port.unwrap_or(self.port)
    }

    /// Address of the HTTP API.
    pub fn http_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.http_bind.unwrap_or(self.bind), self.http_port())
    }

    /// The cluster keys: from --secret-file, else RYX_SECRET, else none.
    pub fn keyring(&self) -> anyhow::Result<ryx_core::auth::Keyring> {
        use anyhow::Context;
        let text = match &self.secret_file {
            Some(p) => {
                std::fs::read_to_string(p).with_context(|| format!("cannot read --secret-file {}", p.display()))?
            }
            None => std::env::var("RYX_SECRET").unwrap_or_default(),
        };
        let keys = ryx_core::auth::Keyring::parse(&text);
        if self.secret_file.is_some() && keys.is_empty() {
            anyhow::bail!("--secret-file holds no secret (one per line; # starts a comment)");
        }
        Ok(keys)
    }

    /// This node's key pair: from --identity-seed, from --identity-file
    /// (created if missing), or fresh from the OS's randomness.
    pub fn identity(&self) -> anyhow::Result<ryx_core::identity::Identity> {
        use anyhow::Context;
        use ryx_core::identity::Identity;
        if let Some(text) = &self.identity_seed {
            return Ok(Identity::from_text(text));
        }
        let fresh = || -> anyhow::Result<Identity> {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
            Ok(Identity::from_seed(seed))
        };
        let Some(path) = &self.identity_file else { return fresh() };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let hex = text.trim();
                let mut seed = [0u8; 32];
                if hex.len() != 64 {
                    anyhow::bail!("--identity-file {}: expected 64 hex digits", path.display());
                }
                for (i, b) in seed.iter_mut().enumerate() {
                    *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                        .with_context(|| format!("--identity-file {}: not hex", path.display()))?;
                }
                Ok(Identity::from_seed(seed))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = fresh()?;
                let hex: String = id.seed().iter().map(|b| format!("{b:02x}")).collect();
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .with_context(|| format!("cannot create --identity-file {}", path.display()))?;
                writeln!(f, "{hex}").with_context(|| format!("cannot write --identity-file {}", path.display()))?;
                Ok(id)
            }
            Err(e) => Err(e).with_context(|| format!("cannot read --identity-file {}", path.display())),
        }
    }

    /// The API token: from --api-token-file, else RYX_API_TOKEN, else none.
    pub fn api_token(&self) -> anyhow::Result<Option<String>> {
        use anyhow::Context;
        let t = match &self.api_token_file {
            Some(p) => {
                std::fs::read_to_string(p).with_context(|| format!("cannot read --api-token-file {}", p.display()))?
            }
            None => std::env::var("RYX_API_TOKEN").unwrap_or_default(),
        };
        let t = t.trim().to_string();
        if self.api_token_file.is_some() && t.is_empty() {
            anyhow::bail!("--api-token-file is empty");
        }
        Ok((!t.is_empty()).then_some(t))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_fault;

    #[test]
    fn faults_parse_alone_or_together_and_refuse_nonsense() {
        let f = parse_fault("corrupt-results=0.5").expect("one");
        assert_eq!((f.corrupt_results, f.slow), (0.5, 0.0));
        let f = parse_fault("slow=10,corrupt-results=1").expect("both");
        assert_eq!((f.corrupt_results, f.slow), (1.0, 10.0));
        for bad in ["slow=0.5", "slow=NaN", "slow=1e9", "corrupt-results=2", "fast=2", "slow", "slow=x", ""] {
            assert!(parse_fault(bad).is_err(), "{bad:?} accepted");
        }
    }
}
