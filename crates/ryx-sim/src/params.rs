//! What a run is started with: the command line, which also is the replay
//! recipe (a run is fixed by these values alone).

use clap::{Parser, ValueEnum};
use ryx_core::config::Discovery;
use serde::Serialize;

/// Which experiment to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// All nodes start within 100 ms; time until every node has at least
    /// `min_active` neighbours and the graph is connected.
    Join,
    /// After join: one item, then a series of items, then an energy sweep.
    Spread,
    /// After join: kill a fraction at once; detection and repair.
    Crash,
    /// After join: split in two halves, write on both sides, heal; re-merge
    /// and convergence.
    Partition,
    /// After join: stop one node (SIGSTOP) for `--pause-ms`; false detections.
    Pause,
    /// After join: crash and restart nodes continuously, then recover.
    Churn,
    /// After join: upload an input at one node and run a job on it through
    /// the core's job engine, with compute and transfers modelled in
    /// virtual time (optionally with kills, slow nodes and liars); the
    /// result digest is checked against the single-process reference.
    Job,
    /// After join: every node is given a health sample, and the network's
    /// aggregates (means, counts, per-rack counts, quantiles) are measured
    /// at every node round after round against the truth (with `--churn`
    /// and `--loss`).
    Monitor,
    /// After join: `--queries` query waves (the path of a search), one
    /// after the other from random nodes; messages per node, the tree's
    /// depth against the least possible, hops and time per wave.
    Query,
    /// After join: for `--minutes`, a share `--stalled` of the nodes is
    /// stopped (SIGSTOP) `--stall-s` at a time, one batch after another,
    /// and a share `--anomalous` is slow or lossy (half each) throughout;
    /// every notification is checked against the faults injected: false
    /// alerts, and the anomalies' precision and recall.
    Alerts,
    /// After join: rows of `--data` spread over the nodes and a logistic
    /// regression learnt by gossip (`ryx_core::learn`) for `--cycles`;
    /// every node's model measured on a test set against one process
    /// trained on all the rows (with `--skew`, `--churn`, `--loss`).
    Learn,
    /// After join: for `--minutes`, the topology settles on the latency map
    /// (best with `--sites`); every ten seconds the coordinates' median
    /// relative error and the mean round trip of the links against random
    /// pairs, then the diameter, the links formed per node per minute in
    /// the second half, and the share of links inside a site.
    Topology,
    /// After join: `--tokens` tokens injected at a share `--source-share`
    /// of the nodes and spread for `--rounds` rounds by the core's
    /// diffusion rule (`ryx_core::balance`) over the nodes' links, with
    /// capacities `--caps`; max/fair load each round, moves against a
    /// lower bound of the optimum, tokens sent back and flows reversed.
    Balance,
}

impl Scenario {
    /// The name as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Join => "join",
            Scenario::Spread => "spread",
            Scenario::Crash => "crash",
            Scenario::Partition => "partition",
            Scenario::Pause => "pause",
            Scenario::Churn => "churn",
            Scenario::Job => "job",
            Scenario::Query => "query",
            Scenario::Monitor => "monitor",
            Scenario::Alerts => "alerts",
            Scenario::Learn => "learn",
            Scenario::Topology => "topology",
            Scenario::Balance => "balance",
        }
    }
}

/// How the simulated nodes find each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiscoveryMode {
    /// Broadcast for up to 200 nodes, seed nodes above.
    Auto,
    /// Hellos broadcast to every live node of the segment.
    Broadcast,
    /// Hellos sent to three seed nodes (slots 0, 1, 2).
    SeedNodes,
}

/// Parameters of one run. Every field is a command-line flag; the run is a
/// pure function of them.
#[derive(Parser, Clone, Debug, Serialize)]
#[command(
    name = "ryx-sim",
    version,
    about = "Deterministic simulator: many Ryx cores in one process, virtual time, a hostile seeded network.",
    long_about = "Runs N copies of the Ryx protocol core in virtual time over a seeded network \
model (per-link latency with jitter and a long tail, loss, duplication, reordering, partitions, \
crashes, restarts, paused and slow nodes), checks invariants as it goes, and prints a summary. \
Every run is replayable exactly from its seed: a broken invariant prints the command that \
replays it.\n\nExample:\n  ryx-sim --nodes 1000 --seed 7 --scenario crash --kill 0.5 --json"
)]
pub struct Params {
    /// Number of simulated nodes.
    #[arg(long, default_value_t = 200)]
    pub nodes: usize,
    /// Seed of every random choice in the run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Experiment to run.
    #[arg(long, value_enum, default_value_t = Scenario::Join)]
    pub scenario: Scenario,
    /// Probability that a datagram is lost (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Probability that a datagram is delivered twice (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub dup: f64,
    /// Fraction of nodes killed at once: in the crash scenario (default
    /// 0.3), or mid-job in the job scenario (default 0, see `--kill-at`).
    #[arg(long)]
    pub kill: Option<f64>,
    /// Discovery: broadcast, seed-nodes, or auto (broadcast up to 200 nodes).
    #[arg(long, value_enum, default_value_t = DiscoveryMode::Auto)]
    pub discovery: DiscoveryMode,
    /// Send every datagram through the JSON wire encoder and decoder (and
    /// count bytes); slower.
    #[arg(long)]
    pub wire: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print a progress line to stderr every virtual second (does not
    /// change the run).
    #[arg(long)]
    pub progress: bool,
    /// Run every seed of a range, `FIRST..LAST` (last included), instead of
    /// `--seed`: prints one line per failing seed with the command that
    /// replays it, and a summary; exits 2 if any seed failed.
    #[arg(long)]
    pub seeds: Option<crate::sweep::Seeds>,
    /// With `--seeds`: start no new seed after this many seconds (0: run
    /// them all). The summary says how many were not started.
    #[arg(long, default_value_t = 0)]
    pub budget_s: u64,
    /// Fraction of slow nodes: each of their ticks and inbound datagrams is
    /// delayed by up to `--slow-ms`.
    #[arg(long, default_value_t = 0.0)]
    pub slow: f64,
    /// Largest extra delay of a slow node, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub slow_ms: u64,
    /// How long the pause scenario stops its node, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub pause_ms: u64,
    /// How long the partition lasts, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub partition_ms: u64,
    /// Consecutive items in the spread scenario (after the first one).
    #[arg(long, default_value_t = 10)]
    pub items: usize,
    /// Rounds of aggregation the monitor scenario measures, or of
    /// diffusion the balance scenario runs.
    #[arg(long, default_value_t = 30)]
    pub rounds: u32,
    /// Monitor scenario: fraction of the nodes crashed (and as many new
    /// ones started) over the first half of the rounds.
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// Monitor scenario: racks (label `rack=rK`, K = slot mod racks).
    #[arg(long, default_value_t = 20)]
    pub racks: usize,
    /// Alerts and topology scenarios: virtual minutes to run.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// The latency map: this many data centres (1 ms round trips inside,
    /// 30–150 ms between) instead of the unit square's 0.4–4 ms (0).
    #[arg(long, default_value_t = 0)]
    pub sites: usize,
    /// With `--sites`: multiplies the distances between sites (3: 90–450 ms
    /// round trips between sites, a map of continents).
    #[arg(long, default_value_t = 1.0)]
    pub site_scale: f64,
    /// Alerts scenario: share of the nodes stopped at any time.
    #[arg(long, default_value_t = 0.0)]
    pub stalled: f64,
    /// Alerts scenario: how long each stop lasts, in seconds.
    #[arg(long, default_value_t = 20)]
    pub stall_s: u64,
    /// Alerts scenario: share of the nodes slow or lossy (half each).
    #[arg(long, default_value_t = 0.0)]
    pub anomalous: f64,
    /// Alerts scenario: share of its datagrams a lossy node drops.
    #[arg(long, default_value_t = 0.3)]
    pub lossy_rate: f64,
    /// Learn scenario: a CSV of numbers, the label (0, 1, ...) last.
    #[arg(long)]
    pub data: Option<String>,
    /// Learn scenario: share of the rows kept as the test set.
    #[arg(long, default_value_t = 0.165)]
    pub test_share: f64,
    /// Learn scenario: cycles (periods of the task) to run.
    #[arg(long, default_value_t = 100)]
    pub cycles: u32,
    /// Learn scenario: deal the rows sorted by label (a node's rows share
    /// one label).
    #[arg(long)]
    pub skew: bool,
    /// Learn scenario: the task's step (default: the task's default).
    #[arg(long)]
    pub step: Option<f32>,
    /// Learn scenario: the task's momentum (default: the task's default).
    #[arg(long)]
    pub momentum: Option<f32>,
    /// Learn scenario: the task's exchanges per cycle (default: the task's).
    #[arg(long)]
    pub mixes: Option<u8>,
    /// Waves of the query scenario.
    #[arg(long, default_value_t = 20)]
    pub queries: usize,
    /// Balance scenario: tokens injected.
    #[arg(long, default_value_t = 1_000_000)]
    pub tokens: u64,
    /// Balance scenario: share of the nodes the tokens are injected at.
    #[arg(long, default_value_t = 0.01)]
    pub source_share: f64,
    /// Balance scenario: β of the second-order flow computation (1 to 2;
    /// below 1: tokens diffuse directly, first order).
    #[arg(long, default_value_t = ryx_core::balance::BETA)]
    pub beta: f64,
    /// Balance scenario: capacities, node `i` getting the `i mod len`-th
    /// (e.g. `1,2,4`; default all 1).
    #[arg(long, value_delimiter = ',')]
    pub caps: Vec<u32>,
    /// Energies of the spread scenario's coverage sweep (non-positive values
    /// are skipped: `--energies 0` runs no sweep).
    #[arg(long, value_delimiter = ',', default_values_t = vec![2.0, 4.0, 6.0, 10.0, 20.0, 100.0])]
    pub energies: Vec<f64>,
    /// Length of the idle window measured after join, in milliseconds (0: skip).
    #[arg(long, default_value_t = 5_000)]
    pub idle_ms: u64,
    /// Quiet time after join before a scenario acts, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    pub settle_ms: u64,
    /// Bound on each waiting phase, in milliseconds of virtual time.
    #[arg(long, default_value_t = 120_000)]
    pub max_ms: u64,
    /// How long the churn scenario crashes and restarts nodes, in milliseconds.
    #[arg(long, default_value_t = 20_000)]
    pub churn_ms: u64,
    /// Job scenario: kernel (word-count, grep, log-analysis).
    #[arg(long, default_value = "word-count")]
    pub kind: String,
    /// Job scenario: kernel parameters as JSON (e.g. '{"pattern":"ERROR"}').
    #[arg(long, default_value = "{}")]
    pub job_params: String,
    /// Job scenario: units (chunks) in the job; 0 means 20 per node.
    #[arg(long, default_value_t = 0)]
    pub units: usize,
    /// Job scenario: real bytes per unit, in KiB (the kernels really run on
    /// these bytes; the result digest is checked on them).
    #[arg(long, default_value_t = 4)]
    pub unit_kib: usize,
    /// Job scenario: size each unit stands for, in MiB: what transfers and
    /// the blob store account for.
    #[arg(long, default_value_t = 4.0)]
    pub unit_mib: f64,
    /// Job scenario: virtual time one worker slot of a normal node takes to
    /// map one unit, in milliseconds (50 ms for 4 MiB is ~84 MB/s per slot).
    #[arg(long, default_value_t = 50.0)]
    pub unit_ms: f64,
    /// Job scenario: virtual time to fold one partial into a merge, in
    /// microseconds (at the home, and in a merge tree's combine steps).
    /// The default prices a fold as nearly free; a real word-count partial
    /// of a 4 MiB unit takes about 28 ms to decode and fold (`cargo run
    /// --release -p ryx-compute --example bench_fold`), so `--fold-us
    /// 16000` (a third of `--unit-ms`, as measured) is the realistic price.
    #[arg(long, default_value_t = 50)]
    pub fold_us: u64,
    /// Job scenario: fan-in of the job's merge tree (as `ryx-node
    /// --merge-fan-in`; 0: the home folds every partial).
    #[arg(long, default_value_t = 16)]
    pub merge_fan_in: u16,
    /// Job scenario: each node's upload bandwidth for blob transfers, MB/s.
    #[arg(long, default_value_t = 125.0)]
    pub bandwidth_mbps: f64,
    /// Job scenario: replicas per unit.
    #[arg(long, default_value_t = 2)]
    pub redundancy: u8,
    /// Job scenario: fraction of nodes that return wrong partial results.
    #[arg(long, default_value_t = 0.0)]
    pub liars: f64,
    /// Job scenario: probability that a liar's partial is wrong.
    #[arg(long, default_value_t = 1.0)]
    pub lie_prob: f64,
    /// Job scenario: how many times slower a slow node computes.
    #[arg(long, default_value_t = 4.0)]
    pub slow_factor: f64,
    /// Job scenario: fraction of units decided when `--kill` strikes.
    #[arg(long, default_value_t = 0.25)]
    pub kill_at: f64,
    /// Job scenario: when this fraction of units is decided, split the
    /// network in two halves for `--partition-ms`, then heal it; the run
    /// checks that the halves end up agreeing on one home and one result.
    #[arg(long)]
    pub split_at: Option<f64>,
    /// Job scenario: verified copies of every chunk the upload waits for
    /// before the job is submitted (as `PUT /v1/blobs?copies=N`); with
    /// `--dataset`, copies in custody in all (`--source-copies` + 1).
    #[arg(long, default_value_t = 3)]
    pub copies: usize,
    /// Job scenario: energy an upload's chunk offers start with (hops the
    /// replication tree reaches); default: the node's.
    #[arg(long)]
    pub blob_energy: Option<f64>,
    /// Job scenario: neighbours each holder offers a new chunk to; default:
    /// the node's.
    #[arg(long)]
    pub blob_fanout: Option<usize>,
    /// Job scenario: skip the single-node reference run (no scaling
    /// efficiency is reported).
    #[arg(long)]
    pub no_baseline: bool,
    /// Job scenario: the input lies in the nodes' own files, spread evenly
    /// (in node-id order, so the canonical order is the input's), and the
    /// job is submitted over that dataset: no upload, each unit's first
    /// replica sent to its chunk's holder.
    #[arg(long)]
    pub dataset: bool,
    /// Fraction of Byzantine nodes: members that run the real core and
    /// attack the network besides (see `--attack`); in the job scenario
    /// they also return wrong results. The job's home is always honest.
    #[arg(long, default_value_t = 0.0)]
    pub byzantine: f64,
    /// Attacks the Byzantine nodes make (default: all of them).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub attack: Vec<crate::byzantine::Attack>,
    /// Sets one field of the nodes' core configuration, `KEY=VALUE`
    /// (repeatable): VALUE is JSON, and a number for a duration is
    /// milliseconds, e.g. `--core topology_interval=20000
    /// --core topology_energy=4`. For asking how a figure moves with a
    /// parameter without a rebuild.
    #[arg(long, value_name = "KEY=VALUE")]
    pub core: Vec<String>,
}

impl Default for Params {
    fn default() -> Self {
        Params::parse_from(["ryx-sim"])
    }
}

impl Params {
    /// Parameters for `scenario` with `nodes` and `seed`, everything else default.
    pub fn new(scenario: Scenario, nodes: usize, seed: u64) -> Params {
        Params { scenario, nodes, seed, ..Params::default() }
    }

    /// The discovery the nodes run with.
    pub fn discovery_mode(&self) -> Discovery {
        match self.discovery {
            DiscoveryMode::Broadcast => Discovery::Broadcast,
            DiscoveryMode::SeedNodes => Discovery::SeedNodes,
            DiscoveryMode::Auto if self.nodes <= 200 => Discovery::Broadcast,
            DiscoveryMode::Auto => Discovery::SeedNodes,
        }
    }

    /// Fraction of nodes the scenario kills (crash: 0.3 unless given; job:
    /// none unless given).
    pub fn kill_fraction(&self) -> f64 {
        let d = if self.scenario == Scenario::Job { 0.0 } else { 0.3 };
        self.kill.unwrap_or(d).clamp(0.0, 1.0)
    }

    /// Units of the job scenario.
    pub fn job_units(&self) -> usize {
        if self.units > 0 {
            self.units
        } else {
            (20 * self.nodes).max(20)
        }
    }

    /// `base` with the `--core` settings applied, checked as a node checks
    /// its configuration.
    pub fn core_config(&self, base: ryx_core::NodeConfig) -> Result<ryx_core::NodeConfig, String> {
        if self.core.is_empty() {
            return Ok(base);
        }
        let mut v = serde_json::to_value(&base).map_err(|e| e.to_string())?;
        for kv in &self.core {
            let (key, value) = kv.split_once('=').ok_or_else(|| format!("--core {kv}: expected KEY=VALUE"))?;
            let field = v.get_mut(key).ok_or_else(|| format!("--core {kv}: the core has no setting {key:?}"))?;
            let mut value: serde_json::Value =
                serde_json::from_str(value).map_err(|e| format!("--core {kv}: VALUE is not JSON: {e}"))?;
            if field.get("secs").is_some() {
                if let Some(ms) = value.as_f64() {
                    if !(ms.is_finite() && ms >= 0.0) {
                        return Err(format!("--core {kv}: a duration is milliseconds, at least 0"));
                    }
                    let d = std::time::Duration::from_secs_f64(ms / 1000.0);
                    value = serde_json::to_value(d).map_err(|e| e.to_string())?;
                }
            }
            *field = value;
        }
        let cfg: ryx_core::NodeConfig = serde_json::from_value(v).map_err(|e| format!("--core: {e}"))?;
        cfg.validate().map_err(|e| format!("--core: {e}"))?;
        Ok(cfg)
    }

    /// The command line that replays this run exactly.
    pub fn command(&self) -> String {
        let d = Params::default();
        let mut c = format!("ryx-sim --nodes {} --seed {} --scenario {}", self.nodes, self.seed, self.scenario.name());
        let mut flag = |name: &str, differs: bool, value: String| {
            if differs {
                c.push_str(&format!(" --{name} {value}"));
            }
        };
        flag("loss", self.loss != d.loss, self.loss.to_string());
        flag("dup", self.dup != d.dup, self.dup.to_string());
        flag("kill", self.kill.is_some(), self.kill.unwrap_or(0.0).to_string());
        let disc = match self.discovery {
            DiscoveryMode::Auto => "auto",
            DiscoveryMode::Broadcast => "broadcast",
            DiscoveryMode::SeedNodes => "seed-nodes",
        };
        flag("discovery", self.discovery != d.discovery, disc.into());
        flag("slow", self.slow != d.slow, self.slow.to_string());
        flag("slow-ms", self.slow_ms != d.slow_ms, self.slow_ms.to_string());
        flag("pause-ms", self.pause_ms != d.pause_ms, self.pause_ms.to_string());
        flag("partition-ms", self.partition_ms != d.partition_ms, self.partition_ms.to_string());
        flag("items", self.items != d.items, self.items.to_string());
        flag("queries", self.queries != d.queries, self.queries.to_string());
        flag("rounds", self.rounds != d.rounds, self.rounds.to_string());
        flag("tokens", self.tokens != d.tokens, self.tokens.to_string());
        flag("beta", self.beta != d.beta, self.beta.to_string());
        flag("source-share", self.source_share != d.source_share, self.source_share.to_string());
        let caps: Vec<String> = self.caps.iter().map(|c| c.to_string()).collect();
        flag("caps", !self.caps.is_empty(), caps.join(","));
        flag("churn", self.churn != d.churn, self.churn.to_string());
        flag("racks", self.racks != d.racks, self.racks.to_string());
        flag("minutes", self.minutes != d.minutes, self.minutes.to_string());
        flag("sites", self.sites != d.sites, self.sites.to_string());
        flag("site-scale", self.site_scale != d.site_scale, self.site_scale.to_string());
        flag("stalled", self.stalled != d.stalled, self.stalled.to_string());
        flag("stall-s", self.stall_s != d.stall_s, self.stall_s.to_string());
        flag("anomalous", self.anomalous != d.anomalous, self.anomalous.to_string());
        flag("lossy-rate", self.lossy_rate != d.lossy_rate, self.lossy_rate.to_string());
        flag("data", self.data.is_some(), shell_quote(self.data.as_deref().unwrap_or("")));
        flag("test-share", self.test_share != d.test_share, self.test_share.to_string());
        flag("cycles", self.cycles != d.cycles, self.cycles.to_string());
        flag("step", self.step.is_some(), self.step.unwrap_or(0.0).to_string());
        flag("momentum", self.momentum.is_some(), self.momentum.unwrap_or(0.0).to_string());
        flag("mixes", self.mixes.is_some(), self.mixes.unwrap_or(0).to_string());
        let energies: Vec<String> = self.energies.iter().map(|e| e.to_string()).collect();
        flag(
            "energies",
            self.energies != d.energies,
            if energies.is_empty() { "0".into() } else { energies.join(",") },
        );
        flag("idle-ms", self.idle_ms != d.idle_ms, self.idle_ms.to_string());
        flag("settle-ms", self.settle_ms != d.settle_ms, self.settle_ms.to_string());
        flag("max-ms", self.max_ms != d.max_ms, self.max_ms.to_string());
        flag("churn-ms", self.churn_ms != d.churn_ms, self.churn_ms.to_string());
        flag("kind", self.kind != d.kind, self.kind.clone());
        flag("job-params", self.job_params != d.job_params, shell_quote(&self.job_params));
        flag("units", self.units != d.units, self.units.to_string());
        flag("unit-kib", self.unit_kib != d.unit_kib, self.unit_kib.to_string());
        flag("unit-mib", self.unit_mib != d.unit_mib, self.unit_mib.to_string());
        flag("unit-ms", self.unit_ms != d.unit_ms, self.unit_ms.to_string());
        flag("fold-us", self.fold_us != d.fold_us, self.fold_us.to_string());
        flag("merge-fan-in", self.merge_fan_in != d.merge_fan_in, self.merge_fan_in.to_string());
        flag("bandwidth-mbps", self.bandwidth_mbps != d.bandwidth_mbps, self.bandwidth_mbps.to_string());
        flag("redundancy", self.redundancy != d.redundancy, self.redundancy.to_string());
        flag("liars", self.liars != d.liars, self.liars.to_string());
        flag("lie-prob", self.lie_prob != d.lie_prob, self.lie_prob.to_string());
        flag("slow-factor", self.slow_factor != d.slow_factor, self.slow_factor.to_string());
        flag("kill-at", self.kill_at != d.kill_at, self.kill_at.to_string());
        flag("copies", self.copies != d.copies, self.copies.to_string());
        flag("byzantine", self.byzantine != d.byzantine, self.byzantine.to_string());
        let attacks: Vec<&str> = self.attack.iter().map(|a| a.name()).collect();
        flag("attack", !self.attack.is_empty(), attacks.join(","));
        if self.skew {
            c.push_str(" --skew");
        }
        if let Some(f) = self.split_at {
            c.push_str(&format!(" --split-at {f}"));
        }
        if let Some(e) = self.blob_energy {
            c.push_str(&format!(" --blob-energy {e}"));
        }
        if let Some(f) = self.blob_fanout {
            c.push_str(&format!(" --blob-fanout {f}"));
        }
        if self.no_baseline {
            c.push_str(" --no-baseline");
        }
        if self.dataset {
            c.push_str(" --dataset");
        }
        if self.wire {
            c.push_str(" --wire");
        }
        for kv in &self.core {
            c.push_str(&format!(" --core {}", shell_quote(kv)));
        }
        if self.json {
            c.push_str(" --json");
        }
        c
    }
}

/// Quotes a value for a POSIX shell when it needs it.
fn shell_quote(v: &str) -> String {
    if v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.,:=/".contains(&b)) {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_settings_apply_and_bad_ones_are_refused() {
        let base = ryx_core::NodeConfig::default();
        let mut p = Params::new(Scenario::Spread, 10, 1);
        p.core = vec!["topology_interval=20000".into(), "topology_energy=4.5".into()];
        let cfg = p.core_config(base.clone()).expect("valid settings");
        assert_eq!(cfg.topology_interval, std::time::Duration::from_secs(20));
        assert_eq!(cfg.topology_energy, 4.5);
        assert_eq!(cfg.probe_interval, base.probe_interval);
        assert!(p.command().contains("--core topology_interval=20000 --core topology_energy=4.5"), "{}", p.command());
        for bad in [
            "no_such_knob=1",
            "topology_interval",
            "topology_interval=0",
            "topology_energy=\"x\"",
            "topology_interval=-5",
        ] {
            p.core = vec![bad.into()];
            assert!(p.core_config(base.clone()).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn command_round_trips() {
        let mut p = Params::new(Scenario::Crash, 300, 42);
        p.loss = 0.1;
        p.kill = Some(0.5);
        p.energies = vec![3.0, 7.5];
        p.wire = true;
        let cmd = p.command();
        let q = Params::parse_from(cmd.split_whitespace());
        assert_eq!(q.command(), cmd);
        assert_eq!(q.nodes, 300);
        assert_eq!(q.energies, vec![3.0, 7.5]);
        assert_eq!(Params::default().command(), "ryx-sim --nodes 200 --seed 1 --scenario join");
    }
}
