//! The node state machine: inputs in, outputs out.
//!
//! This file holds the node's state and its construction; each concern has
//! a file of its own in `node/`: `types` (inputs, outputs, events, status),
//! `links` (sends, joins, views), `dispatch` (admission and every kind's
//! handling), `gossip` (diffusion, anti-entropy), `client` (the driver's
//! and API's calls and reads), `work` (the job engine's context and job
//! summaries), `keep` (custody of acknowledged data) and `tick` (periodic
//! work and table bounds).

use crate::blobs::{BlobError, BlobIndex, BlobKind, BlobMeta, BlobUsage, Hash};
use crate::config::{Discovery, NodeConfig};
use crate::diffusion::{InfoStore, MissingTable, StoredItem};
use crate::energy::EnergyModel;
use crate::id::NodeId;
use crate::identity::{Identity, SigError};
use crate::jobs::{
    BlobRef, Ctx, DatasetTag, JobEngine, JobOutput, JobSummary, MergedResult, Placement, SubmitError, UnitRef,
};
use crate::metrics::Metrics;
use crate::rng::Rng;
use crate::time::Time;
use crate::topology::{LinkInfo, NeighborList, TopologyEntry, TopologyTable};
use crate::views::{ActivePeer, PassiveView};
use crate::wire::{
    self, Announce, Envelope, Item, ItemId, ItemValue, Message, PeerInfo, Space, MAX_KEY_LEN, MAX_VALUE_LEN,
    PROTOCOL_VERSION,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// How often the node does its periodic work.
pub const TICK: Duration = Duration::from_millis(50);
/// Most outstanding probes remembered.
const MAX_PENDING_PINGS: usize = 1024;
/// The largest error estimate at which this node's coordinate is used to
/// predict round trips (a node still placing itself predicts nothing).
const PREDICT_MAX_ERROR: f64 = 0.5;
/// How often a link's probe carries this node's network coordinate.
const COORD_EVERY: Duration = Duration::from_secs(1);
/// Most lazy announcements queued per neighbour.
const MAX_LAZY_QUEUE: usize = 1024;
/// How long an unanswered probe is remembered.
const PING_MEMORY: Duration = Duration::from_secs(2);
/// Peers handed out in hello replies, shuffles and join refusals.
const SAMPLE: usize = 8;
const _: () = assert!(SAMPLE <= wire::MAX_PEERS_PER_MESSAGE);
/// Bytes of keys per anti-entropy digest page.
const DIGEST_PAGE_BYTES: usize = 8 * 1024;
/// Least energy anti-entropy re-sends a job summary or reputation item with.
const SYNC_RECORD_ENERGY: f64 = 10.0;
/// Most bytes of items one anti-entropy digest or graft is answered with:
/// a small datagram from a stranger must not make a node send its whole
/// store (reflection), and an honest page never needs more.
const SYNC_ANSWER_BYTES: usize = 64 * 1024;
/// How far a signed datagram's or a version's time may lie from this
/// node's wall clock (the same bound as the cluster MAC's).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Signers whose latest signed sequence number is remembered (replay).
const MAX_SIGNED_SEQS: usize = 4096;
/// A full node lets joins displace neighbours from a token bucket: a burst
/// of this many, refilled one per [`DISPLACE_REFILL`]. Repair after a mass
/// failure needs a few displacements in quick succession; a flood of
/// (made-up) needy joiners must not churn every link away.
const DISPLACE_BURST: f64 = 3.0;
/// See [`DISPLACE_BURST`].
const DISPLACE_REFILL: Duration = Duration::from_secs(1);
/// Indirect probes (`ping_req`) in flight remembered.
const MAX_PENDING_PING_REQS: usize = 256;

/// Rendezvous weight of a peer for a blob offered by `me`: the blob goes to
/// the peers weighing most. `salt` (the offer's energy) varies the choice
/// between a first offer and a top-up; `me` makes two holders that share
/// neighbours choose independently (or their branches of a replication
/// tree would run into the same nodes).
fn rendezvous(hash: &str, me: NodeId, peer: NodeId, salt: f64) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(hash.as_bytes());
    h.update(&me.0.to_le_bytes());
    h.update(&peer.0.to_le_bytes());
    h.update(&salt.to_bits().to_le_bytes());
    let out = h.finalize();
    let mut w = [0u8; 8];
    w.copy_from_slice(&out.as_bytes()[..8]);
    u64::from_le_bytes(w)
}

fn have_bytes(cluster: &str, hashes: &[Hash], http: SocketAddr, holder: NodeId, kept: bool) -> Vec<u8> {
    serde_json::to_vec(&(cluster, hashes, http, holder, kept)).unwrap_or_default()
}

/// Signs a holder's claim (`blob_have`).
fn have_prove(
    id: &Identity,
    cluster: &str,
    ts_ms: u64,
    hashes: &[Hash],
    http: SocketAddr,
    kept: bool,
) -> crate::identity::Proof {
    id.prove(crate::identity::domain::HAVE, ts_ms, &[&have_bytes(cluster, hashes, http, id.id(), kept)])
}

/// Checks a holder's claim (`blob_have`).
fn have_verify(
    proof: &crate::identity::Proof,
    cluster: &str,
    hashes: &[Hash],
    http: SocketAddr,
    holder: NodeId,
    kept: bool,
) -> Result<(), SigError> {
    proof.verify(holder, crate::identity::domain::HAVE, &[&have_bytes(cluster, hashes, http, holder, kept)])
}

/// A reputation record's key: `<accused>/<accuser>`. Each accuser writes
/// its own record, so no node can speak for another's observations.
fn reputation_key(key: &str) -> Option<(NodeId, NodeId)> {
    let (a, b) = key.split_once('/')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Something that happened to the node.
// An input lives for one call; boxing the envelope would cost the
// simulator an allocation per delivered message for no gain.
mod client;
mod dispatch;
mod gossip;
pub mod incident;
mod keep;
mod learn;
mod links;
pub mod monitor;
mod tick;
mod timers;
mod tree;
mod types;
mod wave;
use timers::{Timer, TimerTable};
mod work;

pub use tree::tree_leader_silence;
pub use types::*;
pub use wave::{holder_answer, WaveMerge, WaveOutput};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JoinPurpose {
    Fill,
    Improve,
    RotateLong,
}

#[derive(Clone, Debug)]
struct PendingJoin {
    sent: Time,
    long: bool,
    purpose: JoinPurpose,
    /// Time allowed beyond `join_timeout` for the path's round trips.
    extra: Duration,
}

/// A node's neighbour-list refresh period grows by this per list it holds
/// (1.5 s: each node receives about two lists every three seconds, some
/// 1 kB/s of its idle traffic; at 0.5 s it was 3 kB/s).
const TOPOLOGY_GAP_PER_LIST: Duration = Duration::from_millis(1500);
/// The longest neighbour-list refresh period (an unchanged list).
const MAX_TOPOLOGY_EVERY: Duration = Duration::from_secs(300);

/// The most a join waits beyond `join_timeout` for a far candidate.
const MAX_JOIN_EXTRA: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
enum PingKind {
    Direct,
    Passive,
    ForIndirect {
        requester: PeerInfo,
        req_nonce: u64,
    },
    /// Another keeper of blobs in custody here.
    Keeper,
}

#[derive(Clone, Debug)]
struct PendingPing {
    target: NodeId,
    addr: SocketAddr,
    sent: Time,
    kind: PingKind,
}

/// A Ryx node: all protocol state, no IO.
pub struct Node {
    cfg: NodeConfig,
    id: NodeId,
    identity: Identity,
    /// Wall clock minus `now`, in microseconds (the driver's clock is
    /// monotonic; signatures, MACs and versions need the wall clock).
    wall_offset: i64,
    /// Sequence numbers of signed datagrams accepted, per signer (a window:
    /// datagrams may arrive out of order, never twice).
    signed_seqs: BTreeMap<NodeId, crate::auth::Window>,
    /// Indirect probes this node asked for: nonce → (helper, suspect).
    pending_ping_reqs: BTreeMap<u64, (NodeId, NodeId, Time)>,
    /// Displacements of neighbours allowed now (a token bucket), and when
    /// it was last refilled.
    displace_budget: (f64, Time),
    addr: SocketAddr,
    rng: Rng,
    seq: u64,
    started: Time,
    now: Time,
    active: BTreeMap<NodeId, ActivePeer>,
    passive: PassiveView,
    pending_joins: BTreeMap<NodeId, PendingJoin>,
    tombstones: BTreeMap<NodeId, Time>,
    pending_pings: BTreeMap<u64, PendingPing>,
    seeds: Vec<SocketAddr>,
    info: InfoStore,
    topology: TopologyTable,
    topo_version: u64,
    topo_dirty: bool,
    missing: MissingTable,
    lazy_queue: BTreeMap<NodeId, Vec<Announce>>,
    sync_cursor: String,
    record_cursor: (Space, String),
    outputs: VecDeque<Output>,
    metrics: Metrics,
    local_health: u32,
    expected_tick: Option<Time>,
    last_topology: Time,
    leaving: bool,
    last_resurrection_join: Time,
    needy_streak: u32,
    http: SocketAddr,
    job_items: InfoStore,
    /// When a summary of a running job last arrived (or was written) here:
    /// jobs are at work in the network (custody defers repairs of blobs
    /// that have copies enough, `custody::Custody::defer_from`).
    job_running_seen: Option<Time>,
    /// Since when custody has deferred repairs without a pause.
    repair_deferred_since: Option<Time>,
    reputation: InfoStore,
    jobs: JobEngine,
    auth: Option<crate::auth::Auth>,
    blobs: BlobIndex,
    replication_src: BTreeMap<Hash, (PeerInfo, f64)>,
    /// Further offers of blobs being fetched, passed on once they arrive.
    replication_more: BTreeMap<Hash, Vec<(PeerInfo, f64)>>,
    want_routes: BTreeMap<Hash, WantRoute>,
    /// Uploaded chunks not offered yet (see `replicate_upload`).
    upload_queue: VecDeque<(BlobRef, f64)>,
    /// Uploaded chunks offered whose first copies are awaited, and when.
    upload_window: BTreeMap<Hash, Time>,
    /// Blobs kept in custody (acknowledged data) and their keepers.
    custody: crate::custody::Custody,
    /// When each periodic piece of work is due.
    timers: TimerTable,
    /// Query waves in progress here, by root and number.
    waves: BTreeMap<(NodeId, u64), wave::Wave>,
    /// Waves ended here, and when (a late copy is a duplicate).
    waves_seen: BTreeMap<(NodeId, u64), Time>,
    /// The driver's merge of wave answers.
    wave_merge: Option<WaveMerge>,
    /// The spanning tree waves follow.
    tree: tree::Tree,
    /// Network-wide aggregates, by rounds with the neighbours.
    agg: crate::agg::Aggregator,
    /// This node's network coordinate and its RTT filters.
    vivaldi: crate::coords::Vivaldi,
    /// Alternates the passive probes between a guided and a random pick.
    probe_turn: bool,
    /// Whether this node holds back its pushes (`hold_aggregation`).
    agg_held: bool,
    /// Observations, verdicts and incidents.
    alerts: incident::Alerts,
    /// Rows and learning tasks.
    learning: learn::Learning,
}

/// Uploaded chunks whose first copies may be in flight at once.
const UPLOAD_WINDOW: usize = 8;
/// Most uploaded chunks queued for pacing (beyond: offered at once).
const MAX_UPLOAD_QUEUE: usize = 1 << 16;
/// A chunk whose first copies take longer than this leaves the window.
const UPLOAD_STALL: Duration = Duration::from_secs(2);

/// A `blob_want` question that passed through here: who asked (answers go
/// back to them), which holders' answers were relayed already, and when.
#[derive(Clone, Debug)]
struct WantRoute {
    askers: Vec<PeerInfo>,
    relayed: Vec<SocketAddr>,
    at: Time,
}

/// Most `blob_want` routes remembered.
const MAX_WANT_ROUTES: usize = 4096;
/// How long a `blob_want` route lasts (answers come within round trips).
const WANT_ROUTE_TTL: Duration = Duration::from_secs(2);
/// Hops a `blob_want` question travels beyond the asker's neighbours: with
/// 4–6 neighbours each, three rings reach a hundred or more nodes.
const WANT_HOPS: u8 = 2;
const _: () = assert!(WANT_HOPS <= wire::MAX_WANT_HOPS);
/// Most answers relayed per wanted blob.
const MAX_WANT_ANSWERS: usize = 8;

/// Most job summaries kept.
const MAX_JOB_ITEMS: usize = 1024;
/// Most reputation entries kept.
const MAX_REPUTATION_ITEMS: usize = 4096;
/// Most pending replication fetches remembered.
const MAX_REPLICATION_PENDING: usize = 4096;

impl Node {
    /// A new node with `identity` (its id derives from the key),
    /// reachable at `addr`, whose random choices all derive from `seed`.
    pub fn new(cfg: NodeConfig, identity: Identity, addr: SocketAddr, seed: u64, now: Time) -> Node {
        let mut rng = Rng::new(seed);
        let jitter = Duration::from_millis(rng.below(50) as u64);
        let second = now.plus(Duration::from_secs(1));
        let mut timers = TimerTable::new(now);
        timers.set(Timer::Hello, now.plus(jitter));
        timers.set(Timer::Shuffle, now.plus(cfg.shuffle_interval));
        timers.set(Timer::PassiveProbe, second);
        timers.set(Timer::Reevaluate, now.plus(cfg.reevaluate_interval));
        timers.set(Timer::Topology, second);
        timers.set(Timer::Sync, now.plus(cfg.sync_interval));
        timers.set(Timer::HealthDecay, second);
        timers.set(Timer::Custody, second);
        let vivaldi = crate::coords::Vivaldi::new(identity.id().0);
        Node {
            id: identity.id(),
            identity,
            wall_offset: 0,
            signed_seqs: BTreeMap::new(),
            pending_ping_reqs: BTreeMap::new(),
            displace_budget: (DISPLACE_BURST, now),
            addr,
            seq: 0,
            started: now,
            now,
            active: BTreeMap::new(),
            passive: PassiveView::default(),
            pending_joins: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            pending_pings: BTreeMap::new(),
            seeds: Vec::new(),
            info: InfoStore::default(),
            topology: TopologyTable::default(),
            topo_version: 0,
            topo_dirty: false,
            missing: MissingTable::default(),
            lazy_queue: BTreeMap::new(),
            sync_cursor: String::new(),
            record_cursor: (Space::Job, String::new()),
            outputs: VecDeque::new(),
            metrics: Metrics::default(),
            local_health: 0,
            expected_tick: None,
            last_topology: now,
            leaving: false,
            last_resurrection_join: Time::ZERO,
            needy_streak: 0,
            http: addr,
            job_items: InfoStore::default(),
            job_running_seen: None,
            repair_deferred_since: None,
            reputation: InfoStore::default(),
            jobs: JobEngine::new(cfg.jobs.clone()),
            auth: None,
            blobs: BlobIndex::new(cfg.memory_limit),
            replication_src: BTreeMap::new(),
            replication_more: BTreeMap::new(),
            want_routes: BTreeMap::new(),
            upload_queue: VecDeque::new(),
            upload_window: BTreeMap::new(),
            custody: Default::default(),
            timers,
            waves: BTreeMap::new(),
            waves_seen: BTreeMap::new(),
            wave_merge: None,
            tree: Default::default(),
            agg: Default::default(),
            vivaldi,
            probe_turn: false,
            agg_held: false,
            alerts: Default::default(),
            learning: Default::default(),
            rng,
            cfg,
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This node's UDP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    /// Counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// When the driver must next call `handle(now, Input::Tick)`.
    pub fn next_deadline(&self) -> Time {
        self.timers.get(Timer::Tick).min(self.timers.get(Timer::Detect))
    }

    /// The next thing the node wants done.
    pub fn poll_output(&mut self) -> Option<Output> {
        let out = self.outputs.pop_front();
        if out.is_none() && self.outputs.capacity() > OUTPUTS_KEPT {
            // A burst (a full sync answer, a flush to every neighbour) need
            // not keep its room on every node between bursts.
            self.outputs.shrink_to(OUTPUTS_KEPT);
        }
        out
    }

    /// The wall clock (Unix time in the daemon), as last told by the
    /// driver through [`Node::set_wall_clock`].
    pub fn wall(&self) -> Time {
        Time(self.now.0.saturating_add_signed(self.wall_offset))
    }

    /// Tells the node the wall clock's reading at `now`. The driver calls
    /// this before it hands the node anything: `now` is monotonic (timers),
    /// but MACs, signatures and versions compare times between nodes, and a
    /// node that was suspended, or whose clock was stepped, must use the
    /// real time at once rather than the time it started with.
    pub fn set_wall_clock(&mut self, now: Time, wall: Time) {
        self.now = now.max(self.now);
        let off = i128::from(wall.0) - i128::from(self.now.0);
        self.wall_offset = off.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        // Sequence numbers start from the wall clock (µs), so that a node
        // restarted with the same identity signs above everything it
        // signed before (receivers refuse a signed sequence number that
        // does not grow: a replay).
        self.seq = self.seq.max(wall.0);
    }

    /// Feeds one input.
    pub fn handle(&mut self, now: Time, input: Input<'_>) {
        self.now = now.max(self.now);
        let wall = self.wall();
        match input {
            Input::Datagram { from, bytes } => {
                let opened;
                let bytes = match self.auth.as_mut() {
                    None => bytes,
                    Some(_) if bytes.len() > wire::MAX_DATAGRAM + crate::auth::MAX_OVERHEAD => {
                        self.metrics.count_rejected(wire::WireError::Oversized.reason());
                        return;
                    }
                    Some(a) => match a.open(bytes, wall) {
                        Ok(b) => {
                            opened = b;
                            &opened[..]
                        }
                        Err(e) => {
                            self.metrics.count_rejected(e.reason());
                            return;
                        }
                    },
                };
                match wire::decode_raw(bytes, &self.cfg.cluster_id) {
                    // Signed, but this node has no secret: a configuration
                    // mismatch. Refuse it so both sides stay apart (and the
                    // counter shows why), rather than a lopsided link.
                    Ok((env, _)) if env.tag.is_some() => {
                        self.metrics.count_rejected(wire::WireError::BadAuth.reason());
                    }
                    Ok((env, raw_msg)) => {
                        if self.admit(from, &env, Some(raw_msg)) {
                            self.on_envelope(from, env);
                        }
                    }
                    Err(e) => self.metrics.count_rejected(e.reason()),
                }
            }
            Input::Message { from, env } => {
                if env.v != PROTOCOL_VERSION {
                    self.metrics.count_rejected(wire::WireError::WrongVersion.reason());
                } else if env.cluster != self.cfg.cluster_id {
                    self.metrics.count_rejected(wire::WireError::ForeignCluster.reason());
                } else if self.admit(from, &env, None) {
                    self.on_envelope(from, *env)
                }
            }
            Input::Tick if self.timers.expired(Timer::Tick, now) => self.on_tick(),
            // Woken between ticks by a failure detector's deadline.
            Input::Tick => self.detect_failures(false),
            Input::Seeds(seeds) => {
                self.seeds = seeds.into_iter().filter(|s| *s != self.addr).collect();
            }
        }
    }
}

/// Room for outputs a node keeps between bursts.
const OUTPUTS_KEPT: usize = 16;

/// Sizes of a node's bounded tables.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct TableSizes {
    /// Active neighbours.
    pub active: usize,
    /// Passive peers.
    pub passive: usize,
    /// Join requests in flight.
    pub pending_joins: usize,
    /// Probes in flight.
    pub pending_pings: usize,
    /// Remembered dead nodes.
    pub tombstones: usize,
    /// Info items.
    pub info: usize,
    /// Bytes of info values.
    pub info_bytes: usize,
    /// Known neighbour lists.
    pub topology: usize,
    /// Announced-but-missing items.
    pub missing: usize,
    /// Queued lazy announcements.
    pub lazy_queued: usize,
    /// Job summaries held.
    pub job_items: usize,
    /// Reputation records held.
    pub reputation_items: usize,
    /// Signers whose last signed sequence number is remembered.
    pub signed_seqs: usize,
    /// Indirect probes in flight.
    pub pending_ping_reqs: usize,
    /// Blobs held (each charged at least `blobs::MIN_CHARGE` bytes).
    pub blobs: usize,
    /// Chunks of the node's own files noted as here.
    pub local_chunks: usize,
    /// Bytes charged for them.
    pub blob_bytes: u64,
    /// Blobs pinned.
    pub blob_pins: usize,
    /// Most holders remembered for one blob.
    pub blob_holders: usize,
    /// Whether the blob accounting adds up (pins name held blobs, bytes
    /// sum right and fit).
    pub blob_consistent: bool,
    /// Replication fetches in flight, and offers waiting on them.
    pub replication: usize,
    /// Offers waiting on a fetch in flight.
    pub replication_more: usize,
    /// `blob_want` routes.
    pub want_routes: usize,
    /// Upload chunks queued for pacing, and in the window.
    pub upload_queue: usize,
    /// Blobs in custody.
    pub custody: usize,
    /// Keepers tracked.
    pub custody_peers: usize,
    /// Fetches for custody in flight.
    pub custody_pending: usize,
    /// The job engine's tables.
    pub jobs: crate::jobs::JobTableSizes,
    /// Aggregation entries (keys, extremes, and each link's flows and
    /// estimates).
    pub agg: usize,
    /// Alerting entries (neighbours' labels, observations, suspects,
    /// incidents open).
    pub alerts: usize,
    /// Learning tasks, datasets and task items held.
    pub learn: usize,
}

impl TableSizes {
    /// Checks every table against its bound; returns the first violation.
    pub fn check(&self, cfg: &NodeConfig) -> Result<(), String> {
        if !self.blob_consistent {
            return Err("blob accounting inconsistent (pins of blobs not held, or bytes do not add up)".into());
        }
        if self.blob_bytes > cfg.memory_limit {
            return Err(format!("blob store holds {} bytes, bound {}", self.blob_bytes, cfg.memory_limit));
        }
        let jobs = self.jobs.bounds(&cfg.jobs, cfg.max_active);
        let checks = [
            ("active", self.active, cfg.max_active),
            ("passive", self.passive, cfg.max_passive),
            ("pending_joins", self.pending_joins, cfg.max_passive + cfg.max_active),
            ("pending_pings", self.pending_pings, MAX_PENDING_PINGS),
            ("tombstones", self.tombstones, cfg.max_tombstones),
            ("info", self.info, cfg.max_items),
            ("info_bytes", self.info_bytes, cfg.max_item_bytes),
            ("topology", self.topology, cfg.max_topology_nodes),
            ("missing", self.missing, crate::diffusion::MAX_MISSING),
            ("lazy_queued", self.lazy_queued, MAX_LAZY_QUEUE * cfg.max_active),
            ("job_items", self.job_items, MAX_JOB_ITEMS),
            ("reputation_items", self.reputation_items, MAX_REPUTATION_ITEMS),
            ("signed_seqs", self.signed_seqs, MAX_SIGNED_SEQS),
            ("pending_ping_reqs", self.pending_ping_reqs, MAX_PENDING_PING_REQS),
            ("blobs", self.blobs, (cfg.memory_limit / crate::blobs::MIN_CHARGE) as usize),
            ("blob_pins", self.blob_pins, self.blobs),
            ("blob_holders", self.blob_holders, crate::blobs::MAX_HOLDERS),
            ("replication", self.replication, MAX_REPLICATION_PENDING),
            ("replication_more", self.replication_more, MAX_REPLICATION_PENDING),
            ("want_routes", self.want_routes, MAX_WANT_ROUTES),
            ("upload_queue", self.upload_queue, MAX_UPLOAD_QUEUE + UPLOAD_WINDOW),
            ("local_chunks", self.local_chunks, crate::blobs::MAX_LOCAL_CHUNKS),
            // Custody covers what is held, in the store or in own files.
            ("custody", self.custody, self.blobs + self.local_chunks),
            ("custody_peers", self.custody_peers, crate::custody::MAX_PEERS),
            ("custody_pending", self.custody_pending, crate::custody::MAX_PEERS * 4),
            // Labels, observed, suspects, open, judged (two kinds a
            // neighbour), odd suspects, parsed incident items (at most
            // every info item).
            ("alerts", self.alerts, cfg.max_active + 256 + 4096 + 256 + 2 * cfg.max_active + 4096 + cfg.max_items),
            ("agg", self.agg, crate::agg::MAX_KEYS * (2 + 3 * cfg.max_active) + crate::agg::MAX_EXTREMES),
        ];
        for (name, have, cap) in checks.into_iter().chain(jobs) {
            if have > cap {
                return Err(format!("{name} holds {have}, bound {cap}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
