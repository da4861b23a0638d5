//! Protocol configuration: every knob of the node, with defaults that work.

use crate::energy::EnergyModel;
use crate::jobs::JobConfig;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a node finds its first peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Discovery {
    /// Periodic hellos broadcast on the local segment.
    Broadcast,
    /// Hellos sent to a list of seed addresses (resolved by the driver).
    SeedNodes,
}

/// Everything the protocol core can be tuned with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeConfig {
    /// Name of the cluster; datagrams of any other cluster are dropped.
    pub cluster_id: String,
    /// How peers are found.
    pub discovery: Discovery,
    /// Fewest active neighbours a node is content with.
    pub min_active: usize,
    /// Active neighbours a node tries to have.
    pub target_active: usize,
    /// Most active neighbours a node accepts.
    pub max_active: usize,
    /// Size of the passive list (replacement candidates).
    pub max_passive: usize,
    /// How often each active neighbour is probed when it has been silent.
    pub probe_interval: Duration,
    /// Offer, and send to neighbours that read them, the short binary
    /// forms of `ping`, `ack` and `agg` (`wire::short`): a probe in a
    /// fifth of the JSON's bytes.
    pub short_probes: bool,
    /// Silence after which a neighbour is suspected (scaled by local health).
    pub suspect_after: Duration,
    /// Time a suspect has to answer direct or indirect probes before it is
    /// declared dead (scaled by local health).
    pub confirm_after: Duration,
    /// How many other neighbours are asked to probe a suspect.
    pub indirect_probes: usize,
    /// How long a join request may stay unanswered.
    pub join_timeout: Duration,
    /// Hello interval while the node has fewer than `min_active` neighbours.
    pub hello_interval_needy: Duration,
    /// Hello interval once the node is content.
    pub hello_interval: Duration,
    /// Interval of passive-list shuffles with a random neighbour.
    pub shuffle_interval: Duration,
    /// Interval of neighbour re-evaluation (latency preference, long link).
    pub reevaluate_interval: Duration,
    /// A node replaces its own long link after this long, so that split
    /// networks find each other again (5 minutes: each rotation is a link
    /// change at both ends, and links are to change at most about once a
    /// minute per node; a long link that turned out to be short is
    /// replaced sooner, see `reevaluate`).
    pub long_link_refresh: Duration,
    /// Shortest interval at which a node re-diffuses an unchanged
    /// neighbour list (it grows with the lists the node holds).
    pub topology_interval: Duration,
    /// Energy of neighbour-list items (low: they travel a few hops).
    pub topology_energy: f64,
    /// How long a learned neighbour list stays valid without refresh, at
    /// least (a list saying its origin refreshes it every `p` stays 4·p).
    pub topology_ttl: Duration,
    /// Most neighbour lists kept.
    pub max_topology_nodes: usize,
    /// Energy of an info item injected without one.
    pub default_energy: f64,
    /// Highest energy a client may give an item.
    pub max_energy: f64,
    /// The energy model.
    pub energy: EnergyModel,
    /// How long a node waits after an announcement before asking for the item.
    pub graft_timeout: Duration,
    /// Interval of anti-entropy digests with a random neighbour.
    pub sync_interval: Duration,
    /// Most info items kept; lowest energy then oldest are evicted first.
    pub max_items: usize,
    /// Most bytes of info values kept.
    pub max_item_bytes: usize,
    /// Most recently dead nodes remembered (so they are not re-added).
    pub max_tombstones: usize,
    /// How long a dead node is remembered.
    pub tombstone_ttl: Duration,
    /// How late a tick may be before the node counts itself as slow.
    pub late_tick: Duration,
    /// Highest local-health multiplier (Lifeguard); timeouts scale by 1 + it.
    pub max_local_health: u32,
    /// Bytes the blob store may hold.
    pub memory_limit: u64,
    /// Least energy uploaded blobs are replicated with (4 reaches three
    /// hops; bigger uploads get more, see `Node::upload_energy`).
    pub blob_energy: f64,
    /// Neighbours each replication hop offers a blob to (1: the copies of
    /// a blob walk one path, one transfer per copy).
    pub blob_fanout: usize,
    /// Job engine knobs.
    pub jobs: JobConfig,
    /// This node's failure domain (`--zone`): copies of data it keeps
    /// custody of go to other domains first. None: its IP address is.
    pub zone: Option<String>,
    /// Interval of the rounds of network-wide aggregation (each sends one
    /// `agg` to every neighbour).
    pub aggregate_interval: Duration,
    /// This node's labels (`--label rack=r3`): its aggregates are also
    /// kept per label value, and incidents are grouped by them.
    pub labels: Vec<(String, String)>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            cluster_id: "ryx".into(),
            discovery: Discovery::Broadcast,
            min_active: 4,
            target_active: 5,
            max_active: 6,
            max_passive: 30,
            probe_interval: Duration::from_millis(100),
            short_probes: true,
            // 450 ms in all from the last datagram: a node stopped for
            // 300 ms is silent for at most 300 ms plus one probe interval
            // (100 ms) and answers when it resumes; a crashed one is judged
            // by every neighbour within 450 ms of its last datagram.
            suspect_after: Duration::from_millis(250),
            confirm_after: Duration::from_millis(200),
            indirect_probes: 2,
            join_timeout: Duration::from_millis(300),
            hello_interval_needy: Duration::from_millis(300),
            hello_interval: Duration::from_secs(5),
            // Every 4 s: about 0.3 kB/s a node (each shuffle and its
            // answer ~600 B); the passive list refreshes in about a
            // minute, and passive probes weed out its dead every second.
            shuffle_interval: Duration::from_secs(4),
            reevaluate_interval: Duration::from_secs(10),
            long_link_refresh: Duration::from_secs(300),
            // Every refresh costs each node within reach one payload plus
            // announcements: an unchanged list goes out every 30 s, or
            // 1.5 s per list held if longer (`topology_every`), and
            // a changed one at once; lists of dead nodes go when no other
            // list names them (`topology::ORPHAN_GRACE`).
            topology_interval: Duration::from_secs(30),
            topology_energy: 6.0,
            topology_ttl: Duration::from_secs(120),
            max_topology_nodes: 2048,
            default_energy: 100.0,
            max_energy: 1000.0,
            energy: EnergyModel::default(),
            graft_timeout: Duration::from_millis(150),
            sync_interval: Duration::from_secs(5),
            max_items: 10_000,
            max_item_bytes: 16 << 20,
            max_tombstones: 256,
            tombstone_ttl: Duration::from_secs(10),
            late_tick: Duration::from_millis(50),
            max_local_health: 8,
            memory_limit: 1 << 30,
            blob_energy: 4.0,
            blob_fanout: 2,
            jobs: JobConfig::default(),
            zone: None,
            aggregate_interval: Duration::from_secs(1),
            labels: Vec::new(),
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neighbour targets out of order.
    #[error("neighbour targets must satisfy 1 <= min ({min}) <= target ({target}) <= max ({max}) <= 64")]
    Targets {
        /// min_active
        min: usize,
        /// target_active
        target: usize,
        /// max_active
        max: usize,
    },
    /// Cluster id unusable.
    #[error("cluster id must be 1 to 64 printable ASCII characters")]
    ClusterId,
    /// Zone name unusable.
    #[error("zone must be 1 to 64 of A-Z a-z 0-9 . _ - : /")]
    Zone,
    /// A label unusable.
    #[error("labels: at most 8, each KEY=VALUE of 1 to 24 of A-Z a-z 0-9 . _ - :, keys distinct")]
    Label,
    /// Energy model unusable.
    #[error("energy decay must be in (0, 1] and cost >= 0, with at least one of them losing energy")]
    Energy,
    /// A duration is zero.
    #[error("timing knob {0} must be greater than zero")]
    ZeroDuration(&'static str),
}

impl NodeConfig {
    /// Checks the configuration for values the protocol cannot work with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1 <= self.min_active
            && self.min_active <= self.target_active
            && self.target_active <= self.max_active
            && self.max_active <= 64)
        {
            return Err(ConfigError::Targets {
                min: self.min_active,
                target: self.target_active,
                max: self.max_active,
            });
        }
        if self.cluster_id.is_empty()
            || self.cluster_id.len() > 64
            || !self.cluster_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ConfigError::ClusterId);
        }
        if self.zone.as_deref().is_some_and(|z| !crate::custody::valid_zone(z)) {
            return Err(ConfigError::Zone);
        }
        if !valid_labels(&self.labels) {
            return Err(ConfigError::Label);
        }
        let e = self.energy;
        if !(e.decay > 0.0 && e.decay <= 1.0 && e.cost >= 0.0 && (e.decay < 1.0 || e.cost > 0.0)) {
            return Err(ConfigError::Energy);
        }
        for (name, d) in [
            ("probe_interval", self.probe_interval),
            ("suspect_after", self.suspect_after),
            ("confirm_after", self.confirm_after),
            ("join_timeout", self.join_timeout),
            ("hello_interval", self.hello_interval),
            ("hello_interval_needy", self.hello_interval_needy),
            ("shuffle_interval", self.shuffle_interval),
            ("topology_interval", self.topology_interval),
            ("aggregate_interval", self.aggregate_interval),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        Ok(())
    }
}

/// Whether labels are usable: at most 8, keys distinct, each part 1 to 24
/// of `A-Z a-z 0-9 . _ - :` (they are spelt into aggregate keys).
pub fn valid_labels(labels: &[(String, String)]) -> bool {
    let part =
        |s: &str| (1..=24).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
    labels.len() <= 8
        && labels.iter().all(|(k, v)| part(k) && part(v))
        && labels.iter().enumerate().all(|(i, (k, _))| labels[..i].iter().all(|(k2, _)| k2 != k))
}
