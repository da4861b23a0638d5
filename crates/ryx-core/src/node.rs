//! The node state machine: inputs in, outputs out.

use crate::blobs::{BlobError, BlobIndex, BlobKind, BlobMeta, Hash};
use crate::config::{Discovery, NodeConfig};
use crate::diffusion::{InfoStore, MissingTable, StoredItem};
use crate::energy::EnergyModel;
use crate::id::NodeId;
use crate::identity::{Identity, SigError};
use crate::jobs::{BlobRef, Ctx, JobEngine, JobOutput, JobSummary, SubmitError, UnitRef};
use crate::metrics::Metrics;
use crate::rng::Rng;
use crate::time::Time;
use crate::topology::{LinkInfo, NeighborList, TopologyEntry, TopologyTable};
use crate::views::{ActivePeer, PassiveView};
use crate::wire::{
    self, Announce, Envelope, Item, ItemId, Message, PeerInfo, Space, MAX_KEY_LEN, MAX_VALUE_LEN, PROTOCOL_VERSION,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// How often the node does its periodic work.
pub const TICK: Duration = Duration::from_millis(50);
/// Most outstanding probes remembered.
const MAX_PENDING_PINGS: usize = 1024;
/// Most lazy announcements queued per neighbour.
const MAX_LAZY_QUEUE: usize = 1024;
/// How long an unanswered probe is remembered.
const PING_MEMORY: Duration = Duration::from_secs(2);
/// Peers handed out in hello replies, shuffles and join refusals.
const SAMPLE: usize = 8;
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
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input<'a> {
    /// A datagram arrived (raw bytes: the core decodes and checks them).
    Datagram {
        /// Source address.
        from: SocketAddr,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// An already decoded envelope (the simulator's fast path; the cluster
    /// and version checks still apply).
    Message {
        /// Source address.
        from: SocketAddr,
        /// The envelope.
        env: Envelope,
    },
    /// Time passed: do periodic work (call when `next_deadline` is reached).
    Tick,
    /// The seed list was (re-)resolved by the driver.
    Seeds(Vec<SocketAddr>),
}

/// Something the node wants done.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send this envelope to one address.
    Send {
        /// Destination.
        to: SocketAddr,
        /// What to send.
        env: Envelope,
    },
    /// Broadcast this envelope on the local segment (discovery).
    Broadcast {
        /// What to send.
        env: Envelope,
    },
    /// Tell observers (logs, dashboard) what happened.
    Event(Event),
    /// Job work for the driver: fetch a blob, run a kernel, merge, drop.
    Job(JobOutput),
}

/// Why a link went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DownReason {
    /// Declared dead by the failure detector.
    Failed,
    /// Left gracefully.
    Left,
    /// Either side chose another neighbour.
    Disconnected,
    /// The other side no longer counted us as a neighbour.
    Asymmetric,
}

/// Observable happenings.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A link formed.
    NeighborUp {
        /// Neighbour.
        id: NodeId,
        /// Its address.
        addr: SocketAddr,
        /// Random long link.
        long: bool,
    },
    /// A link went away.
    NeighborDown {
        /// Neighbour.
        id: NodeId,
        /// Why.
        reason: DownReason,
    },
    /// A neighbour is suspected (not yet declared dead).
    Suspect {
        /// Neighbour.
        id: NodeId,
    },
    /// An item arrived for the first time.
    ItemDelivered {
        /// Which item.
        id: ItemId,
        /// Energy held with.
        energy: f64,
        /// Hops from origin.
        hops: u32,
        /// Neighbour it came from.
        from: NodeId,
    },
}

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
}

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

/// Public view of an active neighbour.
#[derive(Clone, Debug, Serialize)]
pub struct NeighborStatus {
    /// Neighbour id.
    pub node_id: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Smoothed round-trip time.
    pub rtt_ms: Option<f64>,
    /// Random long link.
    pub long: bool,
    /// Payloads pushed eagerly on this link.
    pub eager: bool,
    /// Milliseconds since the link formed.
    pub age_ms: u64,
    /// Milliseconds since it was last heard.
    pub silent_ms: u64,
    /// Currently suspected.
    pub suspect: bool,
}

/// Public view of a passive peer.
#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    /// Peer id.
    pub node_id: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Round-trip time, if probed.
    pub rtt_ms: Option<f64>,
}

/// Snapshot of a node's state.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// This node.
    pub node_id: NodeId,
    /// Its cluster.
    pub cluster_id: String,
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Milliseconds since start.
    pub uptime_ms: u64,
    /// Active neighbours.
    pub neighbors: Vec<NeighborStatus>,
    /// Size of the passive list.
    pub passive_count: usize,
    /// Lifeguard local-health multiplier (0 = healthy).
    pub local_health: u32,
    /// Info items held.
    pub info_items: usize,
    /// Neighbour lists known.
    pub topology_nodes: usize,
    /// Shutting down.
    pub leaving: bool,
    /// Job engine load: jobs homed here, heir copies held, tokens queued
    /// and running, free worker slots.
    pub work: WorkStatus,
}

/// Job engine load of a node.
#[derive(Clone, Debug, Serialize)]
pub struct WorkStatus {
    /// Jobs homed here (including finished ones still remembered).
    pub homes: usize,
    /// Job records held as heir.
    pub heir_of: usize,
    /// Tokens waiting here.
    pub queued: usize,
    /// Units running here.
    pub running: usize,
    /// Worker slots.
    pub slots: usize,
    /// Blobs held and their bytes.
    pub blobs: usize,
    /// Bytes of blobs held.
    pub blob_bytes: u64,
}

/// A node of the learned topology graph.
#[derive(Clone, Debug, Serialize)]
pub struct TopologyNode {
    /// Node id.
    pub node_id: NodeId,
    /// UDP address.
    pub addr: SocketAddr,
    /// HTTP address, if it told.
    pub http: Option<SocketAddr>,
    /// Hops its list travelled to reach us (0: this node).
    pub hops: u32,
    /// Milliseconds since its list was refreshed.
    pub age_ms: u64,
}

/// A link of the learned topology graph.
#[derive(Clone, Debug, Serialize)]
pub struct TopologyLink {
    /// One end.
    pub source: NodeId,
    /// Other end.
    pub target: NodeId,
    /// A random long link.
    pub long: bool,
    /// Round-trip time as measured by `source`.
    pub rtt_ms: Option<f64>,
}

/// The graph of nodes and links this node has learned.
#[derive(Clone, Debug, Serialize)]
pub struct Topology {
    /// Node reporting.
    pub observer: NodeId,
    /// Nodes whose lists are known (plus this node).
    pub nodes: Vec<TopologyNode>,
    /// Links, each reported once per reporting end.
    pub links: Vec<TopologyLink>,
}

/// Why a client's info write was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PutError {
    /// Key empty or too long.
    #[error("key must be 1 to {MAX_KEY_LEN} bytes")]
    BadKey,
    /// Value too large.
    #[error("value must serialize to at most {MAX_VALUE_LEN} bytes")]
    ValueTooLarge,
    /// Energy out of range.
    #[error("energy must be a number greater than 0 and at most {0}")]
    BadEnergy(f64),
    /// Node is shutting down.
    #[error("node is shutting down")]
    Leaving,
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
    next_tick: Time,
    next_hello: Time,
    next_shuffle: Time,
    next_passive_probe: Time,
    next_reevaluate: Time,
    next_topology: Time,
    last_topology: Time,
    next_sync: Time,
    next_health_decay: Time,
    leaving: bool,
    last_resurrection_join: Time,
    needy_streak: u32,
    http: SocketAddr,
    job_items: InfoStore,
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
    /// When custody was last looked after.
    next_custody: Time,
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
            next_tick: now,
            next_hello: now.plus(jitter),
            next_shuffle: now.plus(cfg.shuffle_interval),
            next_passive_probe: now.plus(Duration::from_secs(1)),
            next_reevaluate: now.plus(cfg.reevaluate_interval),
            next_topology: now.plus(Duration::from_secs(1)),
            last_topology: now,
            next_sync: now.plus(cfg.sync_interval),
            next_health_decay: now.plus(Duration::from_secs(1)),
            leaving: false,
            last_resurrection_join: Time::ZERO,
            needy_streak: 0,
            http: addr,
            job_items: InfoStore::default(),
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
            next_custody: now.plus(Duration::from_secs(1)),
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
        self.next_tick
    }

    /// The next thing the node wants done.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
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
                    self.on_envelope(from, env)
                }
            }
            Input::Tick => self.on_tick(),
            Input::Seeds(seeds) => {
                self.seeds = seeds.into_iter().filter(|s| *s != self.addr).collect();
            }
        }
    }

    // ----------------------------------------------------------------- sends

    fn send(&mut self, to: PeerInfo, msg: Message) {
        self.metrics.count_out(msg.kind());
        self.seq += 1;
        let env = self.envelope(Some(to.id), msg);
        self.outputs.push_back(Output::Send { to: to.addr, env });
    }

    /// Sends a discovery hello to an address whose node is not known yet.
    fn send_hello(&mut self, to: SocketAddr, msg: Message) {
        self.metrics.count_out(msg.kind());
        self.seq += 1;
        let env = self.envelope(None, msg);
        self.outputs.push_back(Output::Send { to, env });
    }

    fn send_to(&mut self, id: NodeId, msg: Message) {
        if let Some(addr) = self.active.get(&id).map(|p| p.addr) {
            self.send(PeerInfo { id, addr }, msg);
        }
    }

    fn envelope(&self, to: Option<NodeId>, msg: Message) -> Envelope {
        let mut env = Envelope {
            v: PROTOCOL_VERSION,
            cluster: self.cfg.cluster_id.clone(),
            from: self.id,
            to,
            seq: self.seq,
            msg,
            sig: None,
            tag: None,
        };
        if env.msg.needs_sig() {
            wire::sign_envelope(&mut env, &self.identity, self.wall().as_millis());
        }
        env
    }

    /// Energy as received, clamped to what any node may give an item: a
    /// sender cannot make its item (or blob) outrank everything else.
    fn clamp_energy(&self, e: f64) -> f64 {
        if e.is_finite() {
            e.clamp(0.0, self.cfg.max_energy)
        } else {
            0.0
        }
    }

    /// Takes an item's size from an answer budget; false once spent.
    fn spend(&self, budget: &mut usize, item: &Item) -> bool {
        let size = wire::value_len(&item.value).saturating_add(item.id.key.len() + 128);
        if size > *budget {
            return false;
        }
        *budget -= size;
        true
    }

    /// Tells `to` that this node holds verified copies of `hashes`, signed
    /// so that the claim can be passed on and still be believed.
    fn send_have(&mut self, to: PeerInfo, hashes: Vec<Hash>) {
        self.send_have_kept(to, hashes, false);
    }

    fn send_have_kept(&mut self, to: PeerInfo, hashes: Vec<Hash>, kept: bool) {
        let http = self.http;
        let proof = have_prove(&self.identity, &self.cfg.cluster_id, self.wall().as_millis(), &hashes, http, kept);
        self.send(to, Message::BlobHave { hashes, http, holder: self.id, kept, proof });
    }

    fn emit(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }

    // ------------------------------------------------------------ membership

    fn add_active(&mut self, id: NodeId, addr: SocketAddr, long: bool, initiated: bool) {
        self.passive.remove(&id);
        self.tombstones.remove(&id);
        self.pending_joins.remove(&id);
        self.active.insert(
            id,
            ActivePeer {
                addr,
                rtt: Default::default(),
                last_heard: self.now,
                since: self.now,
                long,
                initiated,
                eager: true,
                last_ping: None,
                suspect_since: None,
                degree: None,
            },
        );
        self.metrics.links_up += 1;
        self.topo_dirty = true;
        self.emit(Event::NeighborUp { id, addr, long });
        // A new link is a new path for information: compare notes at once.
        self.send_digest_to(id);
        self.send_job_digest_to(id);
        // Measure its latency straight away.
        self.ping(id, addr, PingKind::Direct);
    }

    fn remove_active(&mut self, id: NodeId, reason: DownReason) -> Option<ActivePeer> {
        let peer = self.active.remove(&id)?;
        self.lazy_queue.remove(&id);
        self.metrics.links_down += 1;
        self.topo_dirty = true;
        match reason {
            DownReason::Failed | DownReason::Left => {
                self.tombstone(id);
                self.topology.remove(&id);
                // Its copies are gone with it.
                self.blobs.remove_holder(id);
                self.custody.died(id);
                self.with_jobs(|j, c| j.home_lost(c, id));
            }
            DownReason::Disconnected | DownReason::Asymmetric => {
                let mut rng = self.rng.clone();
                self.passive.insert(PeerInfo { id, addr: peer.addr }, self.now, self.cfg.max_passive, &mut rng, true);
                self.rng = rng;
            }
        }
        self.with_jobs(|j, c| j.neighbor_down(c, id));
        self.emit(Event::NeighborDown { id, reason });
        if self.needy_streak > 0 {
            // Look around quickly again.
            self.needy_streak = 0;
            self.next_hello = self.next_hello.min(self.now.plus(self.cfg.hello_interval_needy));
        }
        Some(peer)
    }

    fn tombstone(&mut self, id: NodeId) {
        self.passive.remove(&id);
        if self.tombstones.len() >= self.cfg.max_tombstones {
            if let Some(oldest) = self.tombstones.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                self.tombstones.remove(&oldest);
            }
        }
        self.tombstones.insert(id, self.now);
    }

    /// Learns of a peer from someone else (hearsay).
    fn learn(&mut self, peer: PeerInfo) {
        self.learn_peer(peer, false);
    }

    fn learn_peer(&mut self, peer: PeerInfo, first_hand: bool) {
        if peer.id == self.id || self.active.contains_key(&peer.id) || self.tombstones.contains_key(&peer.id) {
            return;
        }
        self.passive.insert(peer, self.now, self.cfg.max_passive, &mut self.rng, first_hand);
    }

    fn has_long_link(&self) -> bool {
        self.active.values().any(|p| p.long) || self.pending_joins.values().any(|j| j.long)
    }

    fn sample_peers(&mut self, n: usize, exclude: NodeId) -> Vec<PeerInfo> {
        let mut all: Vec<PeerInfo> = self
            .active
            .iter()
            .map(|(id, p)| PeerInfo { id: *id, addr: p.addr })
            .chain(self.passive.iter().map(|(id, p)| PeerInfo { id: *id, addr: p.addr }))
            .filter(|p| p.id != exclude)
            .collect();
        self.rng.shuffle(&mut all);
        all.truncate(n);
        all
    }

    fn request_join(&mut self, id: NodeId, addr: SocketAddr, long: bool, purpose: JoinPurpose) {
        let urgent = self.active.is_empty();
        let degree = self.degree();
        self.pending_joins.insert(id, PendingJoin { sent: self.now, long, purpose });
        self.send(PeerInfo { id, addr }, Message::Join { long, urgent, degree });
    }

    /// Asks passive peers to become neighbours until active + pending
    /// reaches the target (one more in flight while below the minimum, so a
    /// dead candidate does not stall repair).
    fn fill(&mut self) {
        if self.leaving {
            return;
        }
        let have = self.active.len() + self.pending_joins.len();
        let mut want = self.cfg.target_active.saturating_sub(have);
        if self.active.len() < self.cfg.min_active && want > 0 {
            want += 1;
        }
        let want = want.min(self.cfg.max_active.saturating_sub(self.active.len()));
        if want == 0 {
            return;
        }
        let mut candidates = self.join_candidates();
        if candidates.is_empty() {
            return;
        }
        self.rng.shuffle(&mut candidates);
        let mut picked = 0;
        if !self.has_long_link() {
            // The long link is chosen at random, blind to latency.
            let (id, addr, _) = candidates.remove(0);
            self.request_join(id, addr, true, JoinPurpose::Fill);
            picked += 1;
        }
        // The rest by measured latency; unmeasured peers after measured
        // ones, in random order (the shuffle above).
        candidates.sort_by_key(|c| c.2.unwrap_or(u64::MAX));
        for (id, addr, _) in candidates.into_iter().take(want.saturating_sub(picked)) {
            self.request_join(id, addr, false, JoinPurpose::Fill);
        }
    }

    /// Passive peers worth asking: not already asked, not known dead, and
    /// not one that refused recently (it was full; asking again at once
    /// would only spin).
    fn join_candidates(&self) -> Vec<(NodeId, SocketAddr, Option<u64>)> {
        let backoff = self.cfg.join_timeout * 4;
        self.passive
            .iter()
            .filter(|(id, p)| {
                !self.pending_joins.contains_key(id)
                    && !self.tombstones.contains_key(id)
                    && p.refused.is_none_or(|t| self.now.since(t) >= backoff)
            })
            .map(|(id, p)| (*id, p.addr, p.rtt.smoothed_us))
            .collect()
    }

    fn ping(&mut self, target: NodeId, addr: SocketAddr, kind: PingKind) {
        if self.pending_pings.len() >= MAX_PENDING_PINGS {
            if let Some(oldest) = self.pending_pings.keys().next().copied() {
                self.pending_pings.remove(&oldest);
            }
        }
        let nonce = self.rng.next_u64();
        self.pending_pings.insert(nonce, PendingPing { target, addr, sent: self.now, kind });
        self.send(PeerInfo { id: target, addr }, Message::Ping { nonce });
    }

    // -------------------------------------------------------------- messages

    /// Whether a decoded datagram may be acted on: it is for this node, its
    /// signature holds where one is needed, and a stranger sends only what
    /// strangers may. Refusals are counted by reason.
    fn admit(&mut self, src: SocketAddr, env: &Envelope, raw_msg: Option<&[u8]>) -> bool {
        if env.from == self.id {
            // Our own broadcast echoed back by the segment.
            self.metrics.count_rejected("self");
            return false;
        }
        let for_me = match env.to {
            Some(to) => to == self.id,
            // Only discovery is addressed to whoever hears it.
            None => matches!(env.msg, Message::Hello { .. }),
        };
        if !for_me {
            self.metrics.count_rejected("wrong_destination");
            return false;
        }
        if env.msg.needs_sig() {
            if let Err(e) = self.check_envelope_sig(env, raw_msg) {
                self.metrics.count_rejected(e.reason());
                return false;
            }
        }
        let neighbour = self.active.get(&env.from).is_some_and(|p| p.addr == src);
        if !neighbour && !env.msg.open_to_strangers() {
            self.metrics.count_rejected("not_neighbor");
            return false;
        }
        true
    }

    fn check_envelope_sig(&mut self, env: &Envelope, raw_msg: Option<&[u8]>) -> Result<(), SigError> {
        wire::verify_envelope(env, raw_msg)?;
        let sig = env.sig.as_ref().ok_or(SigError::Missing)?;
        sig.fresh(self.wall().as_millis(), MAX_CLOCK_SKEW.as_millis() as u64)?;
        let now = self.now;
        if let Some(w) = self.signed_seqs.get_mut(&env.from) {
            return if w.accept(env.seq, now) { Ok(()) } else { Err(SigError::Replay) };
        }
        if self.signed_seqs.len() >= MAX_SIGNED_SEQS {
            // Entries older than the skew bound protect nothing: whatever
            // their signers sent before is refused as stale anyway.
            let horizon = now.0.saturating_sub(2 * MAX_CLOCK_SKEW.as_micros() as u64);
            self.signed_seqs.retain(|_, w| w.last_seen().0 >= horizon);
            if self.signed_seqs.len() >= MAX_SIGNED_SEQS {
                if let Some(oldest) = self.signed_seqs.iter().min_by_key(|(_, w)| w.last_seen()).map(|(k, _)| *k) {
                    self.signed_seqs.remove(&oldest);
                }
            }
        }
        self.signed_seqs.insert(env.from, crate::auth::Window::new(env.seq, now));
        Ok(())
    }

    fn on_envelope(&mut self, src: SocketAddr, env: Envelope) {
        let from = env.from;
        let kind = env.msg.kind();
        self.metrics.count_in(kind);
        // Any word from a node proves it alive. A node we buried that
        // speaks again was cut off, not dead: a partition may have healed,
        // so link to it at once as our long link (the halves merge without
        // waiting for the periodic long-link rotation).
        if self.tombstones.remove(&from).is_some()
            && !matches!(env.msg, Message::Leave)
            && !self.leaving
            && !self.active.contains_key(&from)
            && !self.pending_joins.contains_key(&from)
            && self.now.since(self.last_resurrection_join) >= Duration::from_secs(1)
        {
            self.last_resurrection_join = self.now;
            self.request_join(from, src, true, JoinPurpose::RotateLong);
        }
        // Word from a neighbour, at its address, proves it alive. Its
        // address never changes on hearsay: a datagram naming a neighbour's
        // id from elsewhere is someone else's (a link moves only by a new,
        // signed join).
        if let Some(p) = self.active.get_mut(&from).filter(|p| p.addr == src) {
            p.last_heard = self.now;
            if p.suspect_since.take().is_some() {
                self.metrics.suspicions_refuted += 1;
            }
        }
        self.custody.heard(from, self.now);
        if self.leaving && !matches!(env.msg, Message::Ping { .. } | Message::BlobHave { .. } | Message::Leave) {
            return;
        }
        let nbr = self.active.get(&from).is_some_and(|p| p.addr == src);
        let peer = PeerInfo { id: from, addr: src };
        match env.msg {
            Message::Hello { needy, .. } => self.on_hello(from, src, needy),
            Message::HelloReply { peers } => {
                self.learn(peer);
                for p in peers {
                    self.learn(p);
                }
                self.fill();
            }
            Message::Join { long, urgent, degree } => self.on_join(from, src, long, urgent, degree),
            Message::JoinReply { accepted, peers } => self.on_join_reply(from, src, accepted, peers),
            Message::Disconnect => {
                // Signed by the neighbour itself; a link to the same id at
                // another address is not the one it speaks of.
                if nbr && self.remove_active(from, DownReason::Disconnected).is_some() {
                    // It chose someone else: do not ask it straight back.
                    let now = self.now;
                    if let Some(p) = self.passive.get_mut(&from) {
                        p.refused = Some(now);
                    }
                    self.fill();
                }
            }
            Message::Leave => {
                self.pending_joins.remove(&from);
                if nbr && self.remove_active(from, DownReason::Left).is_some() {
                    self.metrics.neighbors_left += 1;
                    self.fill();
                } else if !self.active.contains_key(&from) {
                    self.tombstone(from);
                }
            }
            Message::Ping { nonce } => {
                let degree = self.degree();
                self.send(peer, Message::Ack { nonce, neighbor: nbr, degree });
            }
            Message::Ack { nonce, neighbor, degree } => {
                if nbr {
                    if let Some(p) = self.active.get_mut(&from) {
                        p.degree = Some(degree);
                    }
                }
                self.on_ack(from, src, nonce, neighbor)
            }
            Message::PingReq { nonce, target } => {
                if target.id != self.id && target.id != from {
                    self.ping(target.id, target.addr, PingKind::ForIndirect { requester: peer, req_nonce: nonce });
                }
            }
            Message::IndirectAck { nonce, target } => {
                // Only the answer to an indirect probe this node asked that
                // helper for proves the suspect alive.
                let asked = self.pending_ping_reqs.get(&nonce).is_some_and(|(h, t, _)| *h == from && *t == target);
                if asked {
                    self.pending_ping_reqs.remove(&nonce);
                    if let Some(p) = self.active.get_mut(&target) {
                        p.last_heard = self.now;
                        if p.suspect_since.take().is_some() {
                            self.metrics.suspicions_refuted += 1;
                        }
                    }
                }
            }
            Message::Shuffle { peers } => {
                let reply = self.passive.sample(SAMPLE, &mut self.rng);
                self.send(peer, Message::ShuffleReply { peers: reply });
                for p in peers {
                    self.learn(p);
                }
            }
            Message::ShuffleReply { peers } => {
                for p in peers {
                    self.learn(p);
                }
            }
            Message::Gossip { items, sync } => {
                for item in items {
                    self.on_item(from, item, sync);
                }
            }
            Message::IHave { items } => {
                for a in items {
                    // Plumtree's tree repair: an announcement that came by a
                    // path at least two hops shorter than the copy we hold
                    // makes that link eager for what follows.
                    let held_hops = match a.id.space {
                        Space::Topology => {
                            a.id.key.parse::<NodeId>().ok().and_then(|n| self.topology.get(&n)).map(|e| e.hops)
                        }
                        space => self.kv(space).get(&a.id.key).filter(|h| h.version == a.id.version).map(|h| h.hops),
                    };
                    if let (Some(h), Some(p)) = (held_hops, self.active.get_mut(&from)) {
                        if !p.eager && a.hops.saturating_add(3) <= h {
                            p.eager = true;
                            self.send_to(from, Message::Graft { ids: vec![] });
                        }
                    }
                    let energy = self.clamp_energy(a.energy);
                    if self.wants(&a.id) && EnergyModel::alive(self.cfg.energy.after_hop(energy)) {
                        self.missing.announce(a.id, from, energy, self.now, self.cfg.graft_timeout);
                    }
                }
            }
            Message::Graft { ids } => {
                if let Some(p) = self.active.get_mut(&from) {
                    p.eager = true;
                }
                let mut budget = SYNC_ANSWER_BYTES;
                for id in ids {
                    if let Some(item) = self.held_item(&id.space, &id.key) {
                        if !self.spend(&mut budget, &item) {
                            break;
                        }
                        self.send(peer, Message::Gossip { items: vec![item], sync: false });
                    }
                }
            }
            Message::Prune => {
                if let Some(p) = self.active.get_mut(&from) {
                    p.eager = false;
                }
            }
            Message::SyncDigest { space, after, upto, entries } => {
                self.on_digest(peer, space, &after, upto.as_deref(), entries)
            }
            Message::SyncRequest { space, keys } => {
                let mut budget = SYNC_ANSWER_BYTES;
                for k in keys {
                    if let Some(item) = self.held_item(&space, &k) {
                        let item = self.sync_energy(item);
                        if !self.spend(&mut budget, &item) {
                            break;
                        }
                        self.send(peer, Message::Gossip { items: vec![item], sync: true });
                    }
                }
            }
            Message::Load { free, room, jobs } => self.with_jobs(|j, c| j.on_load(c, from, free, room, jobs)),
            Message::Work { token } => self.with_jobs(|j, c| j.on_work(c, *token)),
            Message::JobReport { report } => {
                // Reports travel neighbour to neighbour down the gradient;
                // from anyone else, only a home takes one (and checks its
                // worker's signature).
                if !nbr && !self.jobs.is_home(&report.job) {
                    self.metrics.count_rejected("not_neighbor");
                    return;
                }
                let accepted = self.with_jobs(|j, c| j.on_report_msg(c, *report));
                if let Err(e) = accepted {
                    self.metrics.count_rejected(e.reason());
                }
            }
            Message::JobRecord { record } => {
                let may_home = self.may_home(&record.job);
                if !self.with_jobs(|j, c| j.on_record(c, from, *record, &may_home)) {
                    self.metrics.count_rejected("not_home");
                }
            }
            Message::JobDecided { job, decisions } => {
                if !self.with_jobs(|j, c| j.on_decided(c, from, &job, decisions)) {
                    self.metrics.count_rejected("not_home");
                }
            }
            Message::JobFinished { job, result, digest, size, http } => {
                if self.with_jobs(|j, c| j.on_finished(c, peer, &job, &result, &digest)) {
                    let e = self.cfg.default_energy;
                    self.replicate_blob(peer, BlobRef { hash: result, size }, vec![http], BlobKind::Result, e);
                } else {
                    self.metrics.count_rejected("not_home");
                }
            }
            Message::JobConfirmed { job, result, digest, confirmation } => {
                if !self.with_jobs(|j, c| j.on_confirmed(c, &job, &result, &digest, confirmation)) {
                    self.metrics.count_rejected("bad_confirmation");
                }
            }
            Message::BlobOffer { blobs, http, energy } => {
                // Copies we already hold are acknowledged at once: the
                // offerer counts them (uploads waiting for copies) and a
                // node handing over its blobs on SIGTERM need not wait.
                let held: Vec<Hash> =
                    blobs.iter().filter(|b| self.blobs.contains(&b.hash)).map(|b| b.hash.clone()).collect();
                for h in &held {
                    self.blobs.add_holder(h, from, http);
                }
                let e = self.cfg.energy.after_hop(self.clamp_energy(energy));
                if EnergyModel::alive(e) {
                    for b in blobs {
                        self.replicate_blob(peer, b, vec![http], BlobKind::Chunk, e);
                    }
                }
                if !held.is_empty() {
                    self.send_have(peer, held);
                }
            }
            Message::BlobHave { hashes, http, holder, kept, proof } => {
                let now_ms = self.wall().as_millis();
                let ok = proof
                    .fresh(now_ms, MAX_CLOCK_SKEW.as_millis() as u64)
                    .and_then(|_| have_verify(&proof, &self.cfg.cluster_id, &hashes, http, holder, kept));
                match ok {
                    Ok(()) if kept => {
                        // A keeper confirms custody, itself and directly.
                        if holder == from {
                            let who = crate::wire::Keeper { id: holder, addr: src, http };
                            for h in &hashes {
                                self.blobs.add_holder(h, holder, http);
                                self.custody.confirmed(h, who, self.now);
                            }
                        }
                    }
                    Ok(()) => self.on_blob_have(peer, hashes, http, holder, proof),
                    Err(e) => self.metrics.count_rejected(e.reason()),
                }
            }
            Message::BlobKeep { cert, hashes, keepers } => self.on_blob_keep(peer, *cert, hashes, keepers),
            Message::BlobWant { hashes, hops } => self.on_blob_want(peer, hashes, hops),
        }
    }

    /// Another node (`http`) holds verified copies of `hashes`. News of a
    /// copy made from ours travels on to where ours came from, so the
    /// uploader learns every copy of its chunks (and can count them for
    /// `PUT /v1/blobs?copies=N`), not only its neighbours'. Upstream links
    /// point from newer copies to older ones, so this never circles.
    fn on_blob_have(
        &mut self,
        src: PeerInfo,
        hashes: Vec<Hash>,
        http: SocketAddr,
        holder: NodeId,
        proof: crate::identity::Proof,
    ) {
        // Claims are passed on as they came, signature and all, so that the
        // uploader can believe them; a relay adds nothing of its own.
        let mut onward: BTreeMap<PeerInfo, ()> = BTreeMap::new();
        let now = self.now;
        if holder == self.id {
            return;
        }
        for h in &hashes {
            // An answer to a `blob_want` that passed through here goes
            // back to whoever asked us.
            if let Some(r) = self.want_routes.get_mut(h) {
                if now.since(r.at) < WANT_ROUTE_TTL && !r.relayed.contains(&http) && r.relayed.len() < MAX_WANT_ANSWERS
                {
                    r.relayed.push(http);
                    for a in r.askers.iter().filter(|a| a.id != src.id) {
                        onward.insert(*a, ());
                    }
                }
            }
            let known = self.blobs.get(h).is_some_and(|m| m.holders.iter().any(|x| x.node == holder));
            self.blobs.add_holder(h, holder, http);
            self.jobs.holder_added(h, http);
            self.jobs.result_replicated_by_hash(h, http);
            if let Some(up) = self.blobs.get(h).and_then(|m| m.upstream) {
                if !known && up.id != src.id {
                    onward.insert(up, ());
                }
            }
        }
        for (up, ()) in onward {
            self.send(up, Message::BlobHave { hashes: hashes.clone(), http, holder, kept: false, proof });
        }
        if !self.upload_window.is_empty() {
            self.pump_upload();
        }
    }

    /// A neighbour asks who holds `hashes`: answer for the copies held
    /// here, pass the question on for the rest while `hops` lasts, and
    /// remember who asked so answers can travel back. A question already
    /// passed on recently is not passed on again (floods die out).
    fn on_blob_want(&mut self, src: PeerInfo, hashes: Vec<Hash>, hops: u8) {
        let now = self.now;
        let mut held = Vec::new();
        let mut onward = Vec::new();
        for h in hashes {
            if self.blobs.contains(&h) {
                held.push(h);
                continue;
            }
            if hops == 0 {
                continue;
            }
            match self.want_routes.get_mut(&h) {
                Some(r) if now.since(r.at) < WANT_ROUTE_TTL => {
                    if !r.askers.iter().any(|a| a.id == src.id) && r.askers.len() < MAX_WANT_ANSWERS {
                        r.askers.push(src);
                    }
                }
                _ => {
                    if self.want_routes.len() >= MAX_WANT_ROUTES && !self.want_routes.contains_key(&h) {
                        self.metrics.wants_dropped += 1;
                        continue;
                    }
                    self.want_routes.insert(h.clone(), WantRoute { askers: vec![src], relayed: Vec::new(), at: now });
                    onward.push(h);
                }
            }
        }
        if !held.is_empty() {
            self.send_have(src, held);
        }
        if !onward.is_empty() {
            let peers: Vec<PeerInfo> = self.active_peers().into_iter().filter(|p| p.id != src.id).collect();
            for a in peers {
                self.send(a, Message::BlobWant { hashes: onward.clone(), hops: hops.saturating_sub(1) });
            }
        }
    }

    /// Asks the neighbourhood (`WANT_HOPS` beyond the neighbours) who holds
    /// `hashes`; answers arrive as `BlobHave` and reach the job engine's
    /// `holder_added` like any other news of a copy.
    pub fn want_blobs(&mut self, hashes: Vec<Hash>) {
        let now = self.now;
        let mut ask = Vec::new();
        for h in hashes {
            if self.want_routes.get(&h).is_some_and(|r| now.since(r.at) < WANT_ROUTE_TTL) {
                continue;
            }
            if self.want_routes.len() >= MAX_WANT_ROUTES && !self.want_routes.contains_key(&h) {
                self.metrics.wants_dropped += 1;
                continue;
            }
            self.want_routes.insert(h.clone(), WantRoute { askers: Vec::new(), relayed: Vec::new(), at: now });
            ask.push(h);
        }
        if ask.is_empty() {
            return;
        }
        self.metrics.wants_sent += ask.len() as u64;
        let peers = self.active_peers();
        for page in ask.chunks(64) {
            for a in &peers {
                self.send(*a, Message::BlobWant { hashes: page.to_vec(), hops: WANT_HOPS });
            }
        }
    }

    /// Fetches a copy of an offered blob if it is new here and there is
    /// room for it without evicting anything with as much energy.
    fn replicate_blob(
        &mut self,
        offerer: PeerInfo,
        blob: BlobRef,
        sources: Vec<SocketAddr>,
        kind: BlobKind,
        energy: f64,
    ) {
        if let Some(held) = self.blobs.get(&blob.hash).map(|m| m.energy) {
            // Already held (the offerer has been told). An offer with more
            // energy than ours (the uploader topping up copies) travels on
            // through us and raises ours, so it passes each holder once.
            // An upload's tree offer (no more energy than `blob_energy`)
            // travels on too, as if we had just fetched it: a branch that
            // runs into an earlier copy still reaches as far and makes as
            // many copies. Its energy falls at every hop, so it dies out
            // within the tree's few hops; offers with more energy (results,
            // top-ups) would flood every holder within their long reach.
            if kind == BlobKind::Chunk && (energy > held + 1e-9 || energy <= self.cfg.blob_energy) {
                if energy > held + 1e-9 {
                    self.blobs.set_energy(&blob.hash, energy);
                }
                let fanout = self.cfg.blob_fanout;
                self.offer(vec![blob], energy, Some(offerer.id), fanout);
            }
            return;
        }
        if self.replication_src.contains_key(&blob.hash) {
            // Being fetched already: pass this offer on too once the copy
            // is here, so a tree branch that ran into a copy in flight
            // still grows.
            if kind == BlobKind::Chunk && energy <= self.cfg.blob_energy {
                let extra = self.replication_more.entry(blob.hash.clone()).or_default();
                if extra.len() < 4 {
                    extra.push((offerer, energy));
                }
            }
            return;
        }
        if self.replication_src.len() >= MAX_REPLICATION_PENDING || !self.blobs.has_room_below(blob.size, energy) {
            return;
        }
        self.replication_src.insert(blob.hash.clone(), (offerer, energy));
        self.outputs.push_back(Output::Job(JobOutput::Fetch { hash: blob.hash, size: blob.size, sources, kind }));
    }

    fn on_hello(&mut self, from: NodeId, src: SocketAddr, needy: bool) {
        self.learn(PeerInfo { id: from, addr: src });
        if needy {
            // Answer a newcomer, but not all at once: in a big segment a few
            // answers are plenty. A seed-node hello, though, was addressed to
            // this node alone (the newcomer knows only its few seeds): a seed
            // that stays silent can leave it alone for many backed-off rounds.
            let p = match self.cfg.discovery {
                Discovery::SeedNodes => 1.0,
                Discovery::Broadcast => (4.0 / (self.passive.len() as f64 + 1.0)).min(1.0),
            };
            if self.rng.chance(p) {
                let peers = self.sample_peers(SAMPLE, from);
                self.send(PeerInfo { id: from, addr: src }, Message::HelloReply { peers });
            }
        }
        if self.active.len() + self.pending_joins.len() < self.cfg.target_active {
            self.fill();
        }
    }

    fn degree(&self) -> u8 {
        self.active.len().min(255) as u8
    }

    fn on_join(&mut self, from: NodeId, src: SocketAddr, long: bool, urgent: bool, degree: u8) {
        let peer = PeerInfo { id: from, addr: src };
        if let Some(p) = self.active.get(&from) {
            // A fresh, signed join from a neighbour's own key is the one
            // proof that moves its link to a new address.
            if p.addr != src {
                self.metrics.neighbors_moved += 1;
                if let Some(p) = self.active.get_mut(&from) {
                    p.addr = src;
                    p.last_heard = self.now;
                }
                self.topo_dirty = true;
            }
            self.send(peer, Message::JoinReply { accepted: true, peers: vec![] });
            return;
        }
        if self.active.len() >= self.cfg.max_active {
            // A needy requester gets a link from a full node by taking it
            // from a neighbour that can spare one (more than the minimum):
            // degree flows from the rich to the poor, so nobody stays stuck
            // below the minimum while others are full.
            let min = self.cfg.min_active.min(255) as u8;
            let richest = self
                .active
                .iter()
                .filter(|(_, p)| !p.long && p.degree.is_some_and(|d| d > min))
                .max_by_key(|(_, p)| p.degree)
                .map(|(id, _)| *id);
            // A long link replaces our own oldest long link, or else a
            // short link to a neighbour that can spare it: random long links
            // are what keeps (and makes, after a partition heals) the
            // network one.
            let own_long = self
                .active
                .iter()
                .filter(|(_, p)| p.long && p.initiated)
                .min_by_key(|(_, p)| p.since)
                .map(|(id, _)| *id);
            let mut victim = if degree < min {
                richest
            } else if long {
                own_long.or(richest)
            } else {
                None
            };
            if victim.is_none() && urgent {
                // A node with no neighbours at all must not be left alone:
                // make room by dropping a random short link.
                let short: Vec<NodeId> = self.active.iter().filter(|(_, p)| !p.long).map(|(id, _)| *id).collect();
                victim = self.rng.pick(&short).copied().or_else(|| self.active.keys().next().copied());
            }
            // Displacing costs a link: bounded by a token bucket, so that a
            // stream of (made-up) needy joiners cannot churn every link away.
            let (tokens, at) = self.displace_budget;
            let refill = self.now.since(at).as_secs_f64() / DISPLACE_REFILL.as_secs_f64();
            let tokens = (tokens + refill).min(DISPLACE_BURST);
            self.displace_budget = (tokens, self.now);
            if tokens < 1.0 {
                victim = None;
            } else if victim.is_some() {
                self.displace_budget.0 = tokens - 1.0;
            }
            let Some(v) = victim else {
                let peers = self.sample_peers(SAMPLE, from);
                self.send(peer, Message::JoinReply { accepted: false, peers });
                return;
            };
            self.send_to(v, Message::Disconnect);
            self.remove_active(v, DownReason::Disconnected);
        }
        self.add_active(from, src, long, false);
        self.send(peer, Message::JoinReply { accepted: true, peers: vec![] });
    }

    fn on_join_reply(&mut self, from: NodeId, src: SocketAddr, accepted: bool, peers: Vec<PeerInfo>) {
        let pending = self.pending_joins.remove(&from);
        if accepted && pending.is_none() && !self.active.contains_key(&from) {
            // Nobody asked: a link forms only on this node's own request.
            self.metrics.count_rejected("unsolicited");
            return;
        }
        if !accepted {
            for p in peers {
                self.learn(p);
            }
            let now = self.now;
            if let Some(p) = self.passive.get_mut(&from) {
                p.refused = Some(now);
            }
            self.fill();
            return;
        }
        if self.active.contains_key(&from) {
            return;
        }
        if self.active.len() >= self.cfg.max_active
            && pending.as_ref().is_some_and(|p| p.purpose == JoinPurpose::RotateLong)
            && !self.leaving
        {
            // Make room for the new long link: our oldest own long link
            // goes, else the slowest short one.
            let old = self
                .active
                .iter()
                .filter(|(_, p)| p.long && p.initiated)
                .min_by_key(|(_, p)| p.since)
                .map(|(id, _)| *id)
                .or_else(|| self.worst_short_link(None));
            if let Some(v) = old {
                self.send_to(v, Message::Disconnect);
                self.remove_active(v, DownReason::Disconnected);
            }
        }
        if self.active.len() >= self.cfg.max_active || self.leaving {
            self.send(PeerInfo { id: from, addr: src }, Message::Disconnect);
            return;
        }
        let long = pending.as_ref().is_some_and(|p| p.long);
        self.add_active(from, src, long, true);
        match pending.map(|p| p.purpose) {
            Some(JoinPurpose::RotateLong) => {
                // The new long link replaces the old ones this node opened.
                let old: Vec<NodeId> = self
                    .active
                    .iter()
                    .filter(|(id, p)| **id != from && p.long && p.initiated)
                    .map(|(id, _)| *id)
                    .collect();
                for id in old {
                    if self.active.len() > self.cfg.min_active {
                        self.send_to(id, Message::Disconnect);
                        self.remove_active(id, DownReason::Disconnected);
                    }
                }
            }
            Some(JoinPurpose::Improve) if self.active.len() > self.cfg.target_active => {
                if let Some(worst) = self.worst_short_link(Some(from)) {
                    self.send_to(worst, Message::Disconnect);
                    self.remove_active(worst, DownReason::Disconnected);
                }
            }
            _ => {}
        }
    }

    fn worst_short_link(&self, except: Option<NodeId>) -> Option<NodeId> {
        self.active
            .iter()
            .filter(|(id, p)| !p.long && Some(**id) != except)
            .max_by_key(|(_, p)| p.rtt.smoothed_us.unwrap_or(0))
            .map(|(id, _)| *id)
    }

    fn on_ack(&mut self, from: NodeId, src: SocketAddr, nonce: u64, neighbor: bool) {
        // Only the node pinged, at the address pinged, answers a probe.
        if !self.pending_pings.get(&nonce).is_some_and(|pp| pp.target == from && pp.addr == src) {
            return;
        }
        let Some(pp) = self.pending_pings.remove(&nonce) else {
            return;
        };
        let rtt = self.now.since(pp.sent);
        match pp.kind {
            PingKind::Direct => {
                let grace = self.cfg.join_timeout * 2;
                if let Some(p) = self.active.get_mut(&from) {
                    p.rtt.sample(rtt);
                    if !neighbor && self.now.since(p.since) > grace {
                        // The other side dropped us (its disconnect was lost):
                        // keep links symmetric.
                        self.remove_active(from, DownReason::Asymmetric);
                        self.fill();
                    }
                }
            }
            PingKind::Passive => {
                if let Some(p) = self.passive.get_mut(&from) {
                    p.rtt.sample(rtt);
                    p.learned = self.now;
                }
            }
            PingKind::ForIndirect { requester, req_nonce } => {
                self.send(requester, Message::IndirectAck { nonce: req_nonce, target: from });
            }
            PingKind::Keeper => self.custody.heard(from, self.now),
        }
    }

    // ------------------------------------------------------------- diffusion

    fn kv(&self, space: Space) -> &InfoStore {
        match space {
            Space::Job => &self.job_items,
            Space::Reputation => &self.reputation,
            _ => &self.info,
        }
    }

    fn wants(&self, id: &ItemId) -> bool {
        match id.space {
            Space::Info | Space::Job | Space::Reputation => self.kv(id.space).get(&id.key).is_none_or(|held| {
                !held.beats(id.version, id.origin) && (held.version, held.origin) != (id.version, id.origin)
            }),
            Space::Topology => match id.key.parse::<NodeId>() {
                Ok(n) if n != self.id => self.topology.version(&n).is_none_or(|v| v < id.version),
                _ => false,
            },
        }
    }

    fn held_item(&self, space: &Space, key: &str) -> Option<Item> {
        match space {
            Space::Info | Space::Job | Space::Reputation => self.kv(*space).get(key).map(|s| Item {
                id: ItemId { space: *space, key: key.to_string(), version: s.version, origin: s.origin },
                value: s.value.clone(),
                energy: s.energy,
                hops: s.hops,
                born: s.born,
                proof: s.proof,
            }),
            Space::Topology => {
                let n: NodeId = key.parse().ok()?;
                if n == self.id {
                    return Some(self.own_topology_item());
                }
                let e = self.topology.get(&n)?;
                // Neighbour lists are re-sent with what is left of the
                // energy they came with.
                let energy = self.topology_energy_after(e.hops);
                Some(Item {
                    id: ItemId { space: Space::Topology, key: key.to_string(), version: e.version, origin: n },
                    value: serde_json::to_value(&e.list).ok()?,
                    energy,
                    hops: e.hops,
                    born: 0,
                    proof: None,
                })
            }
        }
    }

    fn topology_energy_after(&self, hops: u32) -> f64 {
        // Hop counts come from the network: stop once the energy is spent
        // (a few hops), not after u32::MAX of them.
        let mut e = self.cfg.topology_energy;
        for _ in 0..hops {
            e = self.cfg.energy.after_hop(e);
            if !EnergyModel::alive(e) {
                break;
            }
        }
        e
    }

    fn on_item(&mut self, from: NodeId, item: Item, sync: bool) {
        if !self.wants(&item.id) {
            let same = match item.id.space {
                Space::Info | Space::Job | Space::Reputation => self
                    .kv(item.id.space)
                    .get(&item.id.key)
                    .is_some_and(|h| (h.version, h.origin) == (item.id.version, item.id.origin)),
                Space::Topology => true,
            };
            if same {
                self.metrics.items_duplicate += 1;
            }
            if !sync {
                // A second payload copy: this link is redundant for payloads.
                if let Some(p) = self.active.get_mut(&from) {
                    if p.eager {
                        p.eager = false;
                        self.send_to(from, Message::Prune);
                    }
                }
            }
            return;
        }
        // A version from beyond the clock-skew bound would lock its key
        // until the clock caught up (u64::MAX: for ever); energy beyond
        // what any node may give an item would outrank everything.
        if item.id.version > self.version_ceiling() {
            self.metrics.count_rejected("future_version");
            return;
        }
        if let Err(reason) = self.check_record(&item) {
            self.metrics.count_rejected(reason);
            return;
        }
        let energy = self.cfg.energy.after_hop(self.clamp_energy(item.energy));
        if !EnergyModel::alive(energy) {
            self.metrics.items_exhausted += 1;
            return;
        }
        let hops = item.hops.saturating_add(1);
        match item.id.space {
            Space::Info | Space::Job | Space::Reputation => {
                let size = wire::value_len(&item.value);
                let stored = StoredItem {
                    version: item.id.version,
                    origin: item.id.origin,
                    value: item.value.clone(),
                    energy,
                    hops,
                    born: item.born,
                    received: self.now,
                    size,
                    proof: item.proof,
                };
                let ev = match item.id.space {
                    Space::Job => self.job_items.insert(
                        item.id.key.clone(),
                        stored,
                        self.now,
                        MAX_JOB_ITEMS,
                        MAX_JOB_ITEMS * wire::MAX_VALUE_LEN,
                    ),
                    Space::Reputation => self.reputation.insert(
                        item.id.key.clone(),
                        stored,
                        self.now,
                        MAX_REPUTATION_ITEMS,
                        MAX_REPUTATION_ITEMS * 64,
                    ),
                    _ => self.info.insert(
                        item.id.key.clone(),
                        stored,
                        self.now,
                        self.cfg.max_items,
                        self.cfg.max_item_bytes,
                    ),
                };
                self.metrics.items_evicted += ev;
                self.on_kv_delivered(&item);
                self.missing.superseded(&item.id.key, item.id.version, item.id.origin);
                if sync {
                    self.metrics.items_synced += 1;
                }
                if item.id.space == Space::Info && item.born > 0 && self.now.as_micros() >= item.born {
                    let ms = (self.now.as_micros() - item.born) as f64 / 1000.0;
                    self.metrics.diffusion_latency.observe(ms);
                }
            }
            Space::Topology => {
                // Deserialize from a borrow: cloning the value first costs
                // more than the parse itself.
                let Ok(list) = NeighborList::deserialize(&item.value) else {
                    self.metrics.count_rejected(wire::WireError::OutOfBounds.reason());
                    return;
                };
                if list.links.len() > wire::MAX_PEERS_PER_MESSAGE {
                    self.metrics.count_rejected(wire::WireError::OutOfBounds.reason());
                    return;
                }
                let Ok(origin) = item.id.key.parse::<NodeId>() else {
                    return;
                };
                self.topology.insert(
                    origin,
                    TopologyEntry { version: item.id.version, list, received: self.now, hops },
                    self.cfg.max_topology_nodes,
                );
                self.missing.superseded(&item.id.key, item.id.version, item.id.origin);
            }
        }
        self.metrics.items_delivered += 1;
        if item.id.space == Space::Info {
            self.emit(Event::ItemDelivered { id: item.id.clone(), energy, hops, from });
        }
        if !sync {
            if let Some(p) = self.active.get_mut(&from) {
                p.eager = true;
            }
        }
        let fwd = Item { energy, hops, ..item };
        self.forward(fwd, Some(from));
    }

    /// The newest version a node accepts: its wall clock (µs) plus the skew
    /// bound. Versions are hybrid clocks (see [`Node::next_version`]), so an
    /// honest writer never exceeds it.
    fn version_ceiling(&self) -> u64 {
        self.wall().0.saturating_add(MAX_CLOCK_SKEW.as_micros() as u64)
    }

    /// The version of a new write over `held`: one more than what is held,
    /// and at least the wall clock in microseconds (a hybrid logical
    /// clock). A later write therefore always wins, and no accepted
    /// version can be pushed so high that the next write cannot pass it.
    fn next_version(&self, held: u64) -> u64 {
        held.saturating_add(1).max(self.wall().0).max(1)
    }

    /// Nodes that may be the home of `job` as far as this node knows: its
    /// creator (the job id starts with it), and the home and co-homes of
    /// the summary held here.
    fn may_home(&self, job: &str) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = crate::jobs::job_creator(job).into_iter().collect();
        if let Some(s) = self.job_items.get(job).and_then(|it| JobSummary::deserialize(&it.value).ok()) {
            v.push(s.home);
            v.extend(s.co_homes);
        }
        v
    }

    /// Job summaries and reputation records are statements of their origin
    /// and must carry its signature. A job summary is moreover accepted only
    /// from the job's creator, the home of the summary held, or one of the
    /// heirs that home named (a node may not make itself another job's
    /// home); a reputation record only about another node, by its accuser.
    fn check_record(&self, item: &Item) -> Result<(), &'static str> {
        if !matches!(item.id.space, Space::Job | Space::Reputation) {
            return Ok(());
        }
        let Some(proof) = &item.proof else { return Err(SigError::Missing.reason()) };
        if let Err(e) =
            proof.verify(item.id.origin, crate::identity::domain::ITEM, &[&item.signed_bytes(&self.cfg.cluster_id)])
        {
            return Err(e.reason());
        }
        match item.id.space {
            Space::Job => {
                let Ok(sum) = JobSummary::deserialize(&item.value) else {
                    return Err(wire::WireError::OutOfBounds.reason());
                };
                if sum.job_id != item.id.key || sum.home != item.id.origin || sum.co_homes.len() > 16 {
                    return Err(wire::WireError::OutOfBounds.reason());
                }
                let creator = crate::jobs::job_creator(&item.id.key);
                let held = self.job_items.get(&item.id.key);
                let held_summary = held.and_then(|h| JobSummary::deserialize(&h.value).ok());
                let allowed = creator == Some(item.id.origin)
                    || held.is_none_or(|h| h.origin == item.id.origin)
                    || held_summary.as_ref().is_some_and(|h| h.co_homes.contains(&item.id.origin));
                if !allowed {
                    return Err("not_heir");
                }
                // A result is believed from the creator, or from another
                // home with an appointed heir's confirmation (`attest`).
                if sum.state == crate::jobs::JobState::Done {
                    let (Some(hash), Some(digest)) = (&sum.result_hash, &sum.result_digest) else {
                        return Err(wire::WireError::OutOfBounds.reason());
                    };
                    crate::attest::check_result(
                        &self.cfg.cluster_id,
                        &item.id.key,
                        item.id.origin,
                        hash,
                        digest,
                        sum.appointment.as_ref(),
                        &sum.confirmations,
                    )?;
                }
            }
            _ => {
                let Some((accused, accuser)) = reputation_key(&item.id.key) else {
                    return Err(wire::WireError::OutOfBounds.reason());
                };
                if accuser != item.id.origin || accused == accuser || item.value.as_u64().is_none() {
                    return Err(wire::WireError::OutOfBounds.reason());
                }
            }
        }
        Ok(())
    }

    /// Pushes an item to eager neighbours and announces it to lazy ones.
    fn forward(&mut self, item: Item, except: Option<NodeId>) {
        if !EnergyModel::alive(self.cfg.energy.after_hop(item.energy)) {
            // The next hop would receive nothing: the item stops here.
            return;
        }
        let peers: Vec<(NodeId, bool)> =
            self.active.iter().filter(|(id, _)| Some(**id) != except).map(|(id, p)| (*id, p.eager)).collect();
        for (id, eager) in peers {
            if eager {
                self.send_to(id, Message::Gossip { items: vec![item.clone()], sync: false });
            } else {
                let q = self.lazy_queue.entry(id).or_default();
                if q.len() < MAX_LAZY_QUEUE {
                    q.push(Announce { id: item.id.clone(), energy: item.energy, hops: item.hops });
                }
            }
        }
    }

    fn flush_lazy(&mut self) {
        let queue = std::mem::take(&mut self.lazy_queue);
        for (id, anns) in queue {
            for chunk in anns.chunks(32) {
                self.send_to(id, Message::IHave { items: chunk.to_vec() });
            }
        }
    }

    /// Sends the next page of the anti-entropy walks to a neighbour: one of
    /// info items, and one of records (job summaries, then reputation, and
    /// round). Records have a walk of their own so that a large info table
    /// never delays a job's result reaching a node that missed it.
    fn send_digest_to(&mut self, id: NodeId) {
        let Some(addr) = self.active.get(&id).map(|p| p.addr) else {
            return;
        };
        let addr = PeerInfo { id, addr };
        let after = std::mem::take(&mut self.sync_cursor);
        let (entries, upto) = self.info.digest_page(&after, DIGEST_PAGE_BYTES);
        self.sync_cursor = upto.clone().unwrap_or_default();
        self.send(addr, Message::SyncDigest { space: Space::Info, after, upto, entries });
        let (space, after) = std::mem::replace(&mut self.record_cursor, (Space::Job, String::new()));
        let (entries, upto) = self.kv(space).digest_page(&after, DIGEST_PAGE_BYTES);
        self.record_cursor = match &upto {
            Some(u) => (space, u.clone()),
            None if space == Space::Job => (Space::Reputation, String::new()),
            None => (Space::Job, String::new()),
        };
        self.send(addr, Message::SyncDigest { space, after, upto, entries });
    }

    /// Compares job summaries with a new neighbour at once: after a
    /// partition heals, the first links across are where two homes of one
    /// job learn of each other.
    fn send_job_digest_to(&mut self, id: NodeId) {
        let Some(addr) = self.active.get(&id).map(|p| p.addr) else {
            return;
        };
        let addr = PeerInfo { id, addr };
        if self.job_items.is_empty() {
            return;
        }
        let (entries, upto) = self.job_items.digest_page("", DIGEST_PAGE_BYTES);
        self.send(addr, Message::SyncDigest { space: Space::Job, after: String::new(), upto, entries });
    }

    /// Energy an item is re-sent with by anti-entropy. Job summaries and
    /// reputation are records every node should come to hold (a job's
    /// result is asked for anywhere), so repair lifts them to a floor that
    /// carries them a few more hops; info items keep what they have left.
    fn sync_energy(&self, mut item: Item) -> Item {
        if matches!(item.id.space, Space::Job | Space::Reputation) {
            item.energy = item.energy.max(SYNC_RECORD_ENERGY);
        }
        item
    }

    fn on_digest(
        &mut self,
        src: PeerInfo,
        space: Space,
        after: &str,
        upto: Option<&str>,
        entries: Vec<wire::DigestEntry>,
    ) {
        if space == Space::Topology {
            return;
        }
        let mut want = Vec::new();
        let mut theirs = BTreeMap::new();
        for e in entries {
            let mine = self.kv(space).get(&e.key);
            match mine {
                Some(m) if m.beats(e.version, e.origin) => {}
                Some(m) if (m.version, m.origin) == (e.version, e.origin) => {}
                _ => want.push(e.key.clone()),
            }
            theirs.insert(e.key, (e.version, e.origin));
        }
        // Push what we hold newer, or what they lack, in their range, up
        // to a budget (an honest page asks for far less).
        let mut budget = SYNC_ANSWER_BYTES;
        for key in self.kv(space).keys_in(after, upto) {
            let push = match (theirs.get(&key), self.kv(space).get(&key)) {
                (Some(&(v, o)), Some(m)) => m.beats(v, o),
                (None, Some(_)) => true,
                _ => false,
            };
            if push {
                if let Some(item) = self.held_item(&space, &key).map(|i| self.sync_energy(i)) {
                    if EnergyModel::alive(self.cfg.energy.after_hop(item.energy)) {
                        if !self.spend(&mut budget, &item) {
                            self.metrics.sync_answers_capped += 1;
                            break;
                        }
                        self.send(src, Message::Gossip { items: vec![item], sync: true });
                    }
                }
            }
        }
        for chunk in want.chunks(32) {
            self.send(src, Message::SyncRequest { space, keys: chunk.to_vec() });
        }
    }

    // --------------------------------------------------------- client calls

    /// Writes a key/value item and starts its diffusion. Returns the version.
    pub fn put_info(
        &mut self,
        now: Time,
        key: &str,
        value: serde_json::Value,
        energy: Option<f64>,
    ) -> Result<u64, PutError> {
        self.now = now.max(self.now);
        if self.leaving {
            return Err(PutError::Leaving);
        }
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(PutError::BadKey);
        }
        let size = wire::value_len(&value);
        if size > MAX_VALUE_LEN {
            return Err(PutError::ValueTooLarge);
        }
        let energy = energy.unwrap_or(self.cfg.default_energy);
        if !(energy.is_finite() && energy > 0.0 && energy <= self.cfg.max_energy) {
            return Err(PutError::BadEnergy(self.cfg.max_energy));
        }
        let version = self.next_version(self.info.get(key).map_or(0, |h| h.version));
        let stored = StoredItem {
            version,
            origin: self.id,
            value: value.clone(),
            energy,
            hops: 0,
            born: self.now.as_micros(),
            received: self.now,
            size,
            proof: None,
        };
        let ev = self.info.insert(key.to_string(), stored, self.now, self.cfg.max_items, self.cfg.max_item_bytes);
        self.metrics.items_evicted += ev;
        let item = Item {
            id: ItemId { space: Space::Info, key: key.to_string(), version, origin: self.id },
            value,
            energy,
            hops: 0,
            born: self.now.as_micros(),
            proof: None,
        };
        self.forward(item, None);
        Ok(version)
    }

    /// Announces departure to every neighbour; afterwards the node answers
    /// pings (so it is not mistaken for dead while it drains) but takes no
    /// new neighbours. The driver exits once outputs are flushed.
    pub fn leave(&mut self, now: Time) {
        self.now = now.max(self.now);
        if self.leaving {
            return;
        }
        self.leaving = true;
        // Hand over what only this node holds: neighbours fetch copies
        // (over HTTP, which the driver keeps serving while it drains) and
        // answer with BlobHave, which `handover_pending` counts down.
        let only_here: Vec<BlobRef> = self
            .blobs
            .iter()
            .filter(|(_, m)| m.holders.is_empty())
            .map(|(h, m)| BlobRef { hash: h.clone(), size: m.size })
            .collect();
        // Two takers per blob: one may have no room.
        self.offer(only_here, self.cfg.blob_energy, None, 2);
        for a in self.active_peers() {
            self.send(a, Message::Leave);
        }
    }

    /// While leaving: blobs no other node is known to hold yet, and work
    /// units still running here. The driver waits (boundedly) for both to
    /// reach zero before it exits.
    pub fn handover_pending(&self) -> (usize, usize) {
        // With every neighbour gone (a whole cluster stopping together),
        // there is nobody left to hand blobs to.
        if self.active.is_empty() {
            return (0, self.jobs.load().1);
        }
        let blobs = self.blobs.iter().filter(|(_, m)| m.holders.is_empty()).count();
        (blobs, self.jobs.load().1)
    }

    // ----------------------------------------------------------------- reads

    /// The item held under `key`.
    pub fn info(&self, key: &str) -> Option<&StoredItem> {
        self.info.get(key)
    }

    /// All info items, by key.
    pub fn info_items(&self) -> impl Iterator<Item = (&String, &StoredItem)> {
        self.info.iter()
    }

    fn active_peers(&self) -> Vec<PeerInfo> {
        self.active.iter().map(|(id, p)| PeerInfo { id: *id, addr: p.addr }).collect()
    }

    /// Active neighbour ids.
    pub fn active_ids(&self) -> Vec<NodeId> {
        self.active.keys().copied().collect()
    }

    /// Number of active neighbours.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    /// Sizes of every bounded table (for invariant checks).
    pub fn table_sizes(&self) -> TableSizes {
        TableSizes {
            active: self.active.len(),
            passive: self.passive.len(),
            pending_joins: self.pending_joins.len(),
            pending_pings: self.pending_pings.len(),
            tombstones: self.tombstones.len(),
            info: self.info.len(),
            info_bytes: self.info.bytes(),
            topology: self.topology.len(),
            missing: self.missing.len(),
            lazy_queued: self.lazy_queue.values().map(|q| q.len()).sum(),
            job_items: self.job_items.len(),
            reputation_items: self.reputation.len(),
            signed_seqs: self.signed_seqs.len(),
            pending_ping_reqs: self.pending_ping_reqs.len(),
            blobs: self.blobs.len(),
            blob_bytes: self.blobs.used(),
            blob_pins: self.blobs.pinned_count(),
            blob_holders: self.blobs.iter().map(|(_, m)| m.holders.len()).max().unwrap_or(0),
            blob_consistent: self.blobs.consistent(),
            replication: self.replication_src.len(),
            replication_more: self.replication_more.len(),
            want_routes: self.want_routes.len(),
            upload_queue: self.upload_queue.len() + self.upload_window.len(),
            custody: self.custody.len(),
            custody_peers: self.custody.peers(),
            custody_pending: self.custody.pending(),
            jobs: self.jobs.sizes(),
        }
    }

    /// Whether `id` is in the passive list.
    pub fn is_passive(&self, id: &NodeId) -> bool {
        self.passive.contains(id)
    }

    /// Snapshot for `/v1/status`.
    pub fn status(&self, now: Time) -> Status {
        Status {
            node_id: self.id,
            cluster_id: self.cfg.cluster_id.clone(),
            addr: self.addr,
            uptime_ms: now.since(self.started).as_millis() as u64,
            neighbors: self.neighbors(now),
            passive_count: self.passive.len(),
            local_health: self.local_health,
            info_items: self.info.len(),
            topology_nodes: self.topology.len() + 1,
            leaving: self.leaving,
            work: {
                let j = self.jobs.sizes();
                WorkStatus {
                    homes: j.homes,
                    heir_of: j.heirs,
                    queued: j.queue,
                    running: j.running,
                    slots: self.jobs.config().worker_slots,
                    blobs: self.blobs.len(),
                    blob_bytes: self.blobs.used(),
                }
            },
        }
    }

    /// Active neighbours.
    pub fn neighbors(&self, now: Time) -> Vec<NeighborStatus> {
        self.active
            .iter()
            .map(|(id, p)| NeighborStatus {
                node_id: *id,
                addr: p.addr,
                rtt_ms: p.rtt.millis(),
                long: p.long,
                eager: p.eager,
                age_ms: now.since(p.since).as_millis() as u64,
                silent_ms: now.since(p.last_heard).as_millis() as u64,
                suspect: p.suspect_since.is_some(),
            })
            .collect()
    }

    /// Passive peers.
    pub fn passive_peers(&self) -> Vec<PeerStatus> {
        self.passive.iter().map(|(id, p)| PeerStatus { node_id: *id, addr: p.addr, rtt_ms: p.rtt.millis() }).collect()
    }

    fn own_links(&self) -> Vec<LinkInfo> {
        self.active.iter().map(|(id, p)| LinkInfo { id: *id, long: p.long, rtt_ms: p.rtt.millis() }).collect()
    }

    fn own_topology_item(&self) -> Item {
        let list = NeighborList { addr: self.addr, http: Some(self.http), links: self.own_links() };
        Item {
            id: ItemId {
                space: Space::Topology,
                key: self.id.to_string(),
                version: self.topo_version,
                origin: self.id,
            },
            value: serde_json::to_value(&list).unwrap_or(serde_json::Value::Null),
            energy: self.cfg.topology_energy,
            hops: 0,
            born: 0,
            proof: None,
        }
    }

    /// The graph this node has learned (its own list plus diffused ones).
    pub fn topology(&self, now: Time) -> Topology {
        let mut nodes =
            vec![TopologyNode { node_id: self.id, addr: self.addr, http: Some(self.http), hops: 0, age_ms: 0 }];
        let mut links: Vec<TopologyLink> = self
            .active
            .iter()
            .map(|(id, p)| TopologyLink { source: self.id, target: *id, long: p.long, rtt_ms: p.rtt.millis() })
            .collect();
        for (id, e) in self.topology.iter() {
            nodes.push(TopologyNode {
                node_id: *id,
                addr: e.list.addr,
                http: e.list.http,
                hops: e.hops,
                age_ms: now.since(e.received).as_millis() as u64,
            });
            for l in &e.list.links {
                links.push(TopologyLink { source: *id, target: l.id, long: l.long, rtt_ms: l.rtt_ms });
            }
        }
        Topology { observer: self.id, nodes, links }
    }

    // ------------------------------------------------------------------ jobs

    /// Runs `f` on the job engine with a context lent from this node, then
    /// carries out what the engine asked for.
    fn with_jobs<R>(&mut self, f: impl FnOnce(&mut JobEngine, &mut Ctx<'_>) -> R) -> R {
        let neighbors = self.active.iter().map(|(id, p)| (*id, p.addr)).collect();
        let wall = self.wall();
        let mut ctx = Ctx {
            now: self.now,
            wall,
            me: self.id,
            identity: &self.identity,
            cluster: &self.cfg.cluster_id,
            rejected: Vec::new(),
            http: self.http,
            neighbors,
            rng: &mut self.rng,
            sends: Vec::new(),
            outputs: Vec::new(),
            summaries: Vec::new(),
            blobs: &mut self.blobs,
            energy: self.cfg.energy,
            penalties: Vec::new(),
            wants: Vec::new(),
        };
        let r = f(&mut self.jobs, &mut ctx);
        let Ctx { sends, outputs, summaries, penalties, wants, rejected, .. } = ctx;
        for reason in rejected {
            self.metrics.count_rejected(reason);
        }
        if !wants.is_empty() {
            self.want_blobs(wants);
        }
        for (to, msg) in sends {
            self.send(to, msg);
        }
        for o in outputs {
            self.outputs.push_back(Output::Job(o));
        }
        for sum in summaries {
            let version = self.jobs.summary_version(&sum.job_id).unwrap_or(1);
            if let Ok(v) = serde_json::to_value(&sum) {
                let stored = self.put_kv(Space::Job, &sum.job_id, v, self.cfg.jobs.default_energy, version);
                self.jobs.summary_published(&sum.job_id, stored);
            }
        }
        for n in penalties {
            if n == self.id {
                continue;
            }
            let key = format!("{n}/{}", self.id);
            let strikes = self.reputation.get(&key).and_then(|it| it.value.as_u64()).unwrap_or(0).saturating_add(1);
            self.put_kv(Space::Reputation, &key, serde_json::json!(strikes), self.cfg.default_energy, 0);
            self.jobs.set_strikes(n, self.id, strikes.min(u32::MAX as u64) as u32, true);
        }
        r
    }

    fn on_kv_delivered(&mut self, item: &Item) {
        match item.id.space {
            Space::Job => {
                if let Ok(sum) = JobSummary::deserialize(&item.value) {
                    let (v, origin) = (item.id.version, item.id.origin);
                    self.with_jobs(|j, c| j.on_summary(c, &sum, v, origin));
                }
            }
            Space::Reputation => {
                if let (Some((accused, accuser)), Some(strikes)) = (reputation_key(&item.id.key), item.value.as_u64()) {
                    self.jobs.set_strikes(accused, accuser, strikes.min(u32::MAX as u64) as u32, false);
                }
            }
            _ => {}
        }
    }

    /// Stores and diffuses a key/value record written (and signed) by
    /// this node, with a version above `at_least` and anything held.
    fn put_kv(&mut self, space: Space, key: &str, value: serde_json::Value, energy: f64, at_least: u64) -> u64 {
        let size = wire::value_len(&value);
        let held = self.kv(space).get(key).map_or(0, |h| h.version);
        let version = self.next_version(held.max(at_least));
        let born = self.now.as_micros();
        let mut item = Item {
            id: ItemId { space, key: key.to_string(), version, origin: self.id },
            value,
            energy,
            hops: 0,
            born,
            proof: None,
        };
        if matches!(space, Space::Job | Space::Reputation) {
            let bytes = item.signed_bytes(&self.cfg.cluster_id);
            item.proof = Some(self.identity.prove(crate::identity::domain::ITEM, self.wall().as_millis(), &[&bytes]));
        }
        let stored = StoredItem {
            version,
            origin: self.id,
            value: item.value.clone(),
            energy,
            hops: 0,
            born,
            received: self.now,
            size,
            proof: item.proof,
        };
        let now = self.now;
        let ev = match space {
            Space::Job => {
                self.job_items.insert(key.to_string(), stored, now, MAX_JOB_ITEMS, MAX_JOB_ITEMS * wire::MAX_VALUE_LEN)
            }
            Space::Reputation => {
                self.reputation.insert(key.to_string(), stored, now, MAX_REPUTATION_ITEMS, MAX_REPUTATION_ITEMS * 64)
            }
            _ => self.info.insert(key.to_string(), stored, now, self.cfg.max_items, self.cfg.max_item_bytes),
        };
        self.metrics.items_evicted += ev;
        self.forward(item, None);
        version
    }

    /// Sets the HTTP address other nodes fetch this node's blobs from
    /// (default: the UDP address).
    pub fn set_http_addr(&mut self, addr: SocketAddr) {
        self.http = addr;
    }

    /// Turns datagram authentication on (or, with an empty keyring, off).
    /// `boot` must be random per process start. Replay state survives a
    /// key change, so rotation needs no restart.
    pub fn set_auth(&mut self, keys: crate::auth::Keyring, boot: u64) {
        match (&mut self.auth, keys.is_empty()) {
            (_, true) => self.auth = None,
            (Some(a), false) => a.set_keys(keys),
            (None, false) => self.auth = Some(crate::auth::Auth::new(keys, boot)),
        }
    }

    /// Ids of the keys in use, signing key first (empty: no authentication).
    pub fn auth_key_ids(&self) -> Vec<u32> {
        self.auth.as_ref().map(|a| a.keys().ids()).unwrap_or_default()
    }

    /// Seals an encoded datagram for sending (no-op without a secret). The
    /// driver calls this on the bytes of every `Send` and `Broadcast`.
    pub fn seal(&mut self, bytes: &mut Vec<u8>) {
        let now = self.now;
        if let Some(a) = self.auth.as_mut() {
            a.seal(bytes, now);
        }
    }

    /// This node's HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// This node's key pair.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// This node's answer to an HTTP identity challenge.
    pub fn http_identity(&self, challenge: &str) -> crate::identity::HttpIdentity {
        let member = self.member_keys().into_iter().next();
        crate::identity::HttpIdentity::answer(
            &self.identity,
            &self.cfg.cluster_id,
            self.http,
            challenge,
            self.wall().as_millis(),
            member,
        )
    }

    /// Keys proving cluster membership over HTTP (none without a secret).
    pub fn member_keys(&self) -> Vec<(u32, [u8; 32])> {
        self.auth.as_ref().map(|a| a.keys().subkeys(crate::identity::HTTP_MEMBER_CONTEXT)).unwrap_or_default()
    }

    /// Creates a job homed here over the given units (chunks in input order).
    pub fn submit_job(
        &mut self,
        now: Time,
        kind: &str,
        params: serde_json::Value,
        chunks: Vec<BlobRef>,
        redundancy: u8,
        energy: Option<f64>,
    ) -> Result<String, SubmitError> {
        self.now = now.max(self.now);
        let http = self.http;
        let units = chunks
            .into_iter()
            .map(|c| {
                let mut holders = vec![http];
                if let Some(m) = self.blobs.get(&c.hash) {
                    holders.extend(m.holder_addrs());
                }
                UnitRef { hash: c.hash, size: c.size, holders }
            })
            .collect();
        let kind = kind.to_string();
        self.with_jobs(|j, c| j.submit(c, kind, params, units, redundancy, energy))
    }

    /// Cancels a job homed here; false if this node is not its home.
    pub fn cancel_job(&mut self, now: Time, id: &str) -> bool {
        self.now = now.max(self.now);
        self.with_jobs(|j, c| j.cancel(c, id))
    }

    /// The latest summary of a job known here.
    pub fn job(&self, id: &str) -> Option<JobSummary> {
        self.job_items.get(id).and_then(|it| JobSummary::deserialize(&it.value).ok())
    }

    /// Every job summary known here.
    pub fn jobs(&self) -> Vec<JobSummary> {
        self.job_items.iter().filter_map(|(_, it)| JobSummary::deserialize(&it.value).ok()).collect()
    }

    /// The job engine (read-only), for status and tests.
    pub fn job_engine(&self) -> &JobEngine {
        &self.jobs
    }

    /// Makes room for and records a verified blob the driver holds. On
    /// success the driver keeps the bytes; `DropBlob` outputs name what to
    /// evict. Uploads are offered to neighbours for replication.
    pub fn blob_put(
        &mut self,
        now: Time,
        hash: &str,
        size: u64,
        kind: BlobKind,
        upload: bool,
    ) -> Result<(), BlobError> {
        self.now = now.max(self.now);
        if self.blobs.contains(hash) {
            return Ok(());
        }
        let evicted = self.blobs.make_room(size)?;
        for h in evicted {
            self.outputs.push_back(Output::Job(JobOutput::DropBlob { hash: h }));
        }
        let energy = if upload { self.cfg.default_energy } else { self.cfg.default_energy / 2.0 };
        self.blobs.insert(hash.to_string(), size, kind, energy, self.now);
        Ok(())
    }

    /// Offers blobs held here to neighbours but `except`: each blob to the
    /// `fanout` neighbours that rank highest for it by rendezvous hashing
    /// (blob, neighbour, energy), and each taker fetches a copy from us and
    /// passes the offer on the same way while the energy lasts. With
    /// fanout 1 an upload walks: every hop adds one copy and costs one
    /// transfer, whatever the degree, and different blobs (and top-ups,
    /// which come with more energy) take different paths, so copies spread
    /// over the neighbourhood instead of every neighbour fetching
    /// everything from the uploader.
    fn offer(&mut self, blobs: Vec<BlobRef>, energy: f64, except: Option<NodeId>, fanout: usize) {
        if !EnergyModel::alive(self.cfg.energy.after_hop(energy)) {
            return;
        }
        let http = self.http;
        let peers: Vec<PeerInfo> = self.active_peers().into_iter().filter(|p| Some(p.id) != except).collect();
        let mut per: BTreeMap<PeerInfo, Vec<BlobRef>> = BTreeMap::new();
        for b in blobs {
            let mut ranked: Vec<(u64, PeerInfo)> =
                peers.iter().map(|p| (rendezvous(&b.hash, self.id, p.id, energy), *p)).collect();
            ranked.sort_unstable_by(|x, y| y.cmp(x));
            for (_, a) in ranked.into_iter().take(fanout.max(1)) {
                per.entry(a).or_default().push(b.clone());
            }
        }
        for (a, bs) in per {
            for page in bs.chunks(64) {
                self.send(a, Message::BlobOffer { blobs: page.to_vec(), http, energy });
            }
        }
    }

    /// Starts the replication of freshly uploaded blobs with `energy`
    /// (reach in hops as for items; default: `upload_energy`).
    ///
    /// Chunks are offered a window at a time, in order: the next goes out
    /// once one in the window has its first copies (or after
    /// `UPLOAD_STALL`). Offered all at once, every chunk's first copies
    /// would share the uploader's link and land together at the very end,
    /// and so would every replication tree; paced, each chunk's tree grows
    /// while later chunks upload, and copies (durability) build up steadily
    /// through a long upload.
    pub fn replicate_upload(&mut self, now: Time, blobs: Vec<BlobRef>, energy: Option<f64>) {
        self.now = now.max(self.now);
        let e = energy.unwrap_or_else(|| self.upload_energy(blobs.len()));
        for b in blobs {
            self.blobs.set_energy(&b.hash, e.max(self.cfg.default_energy));
            if self.upload_queue.len() < MAX_UPLOAD_QUEUE {
                self.upload_queue.push_back((b, e));
            } else {
                // Beyond the queue's bound: offer at once, unpaced.
                let fanout = self.cfg.blob_fanout;
                self.offer(vec![b], e, None, fanout);
            }
        }
        self.pump_upload();
    }

    /// Replication energy for an upload of `chunks` chunks when none is
    /// given: `blob_energy`, raised a unit at a time (at most 8) until the
    /// tree it reaches (1 + f + f² + … copies for fanout f) holds
    /// log₂(chunks) + 7 copies. Half the nodes dying at once loses a chunk
    /// with c copies with probability about 2⁻ᶜ, so this keeps the chance
    /// that a half-kill loses some chunk of the upload near 1 %: fifteen
    /// copies (the default energy) up to 256 chunks, 31 up to 16 Mi. In the
    /// simulator 10,106 chunks on 500 nodes lost 5 to a half-kill with 15.
    /// Copies are still only made where there is room.
    pub fn upload_energy(&self, chunks: usize) -> f64 {
        let want = (chunks.max(1) as f64).log2() + 7.0;
        let f = self.cfg.blob_fanout.max(1) as f64;
        let base = self.cfg.blob_energy;
        (0..=8)
            .map(|k| base + k as f64)
            .find(|&e| {
                let hops = self.cfg.energy.reach(e);
                let copies: f64 = (0..=hops.min(32)).map(|i| f.powi(i as i32)).sum();
                copies >= want
            })
            .unwrap_or(base + 8.0)
    }

    /// Offers queued upload chunks while the window has room; chunks whose
    /// first copies are overdue leave the window (their takers may have had
    /// no room; top-ups deal with thin chunks).
    fn pump_upload(&mut self) {
        let now = self.now;
        let fanout = self.cfg.blob_fanout.min(self.active.len()).max(1);
        let blobs = &self.blobs;
        self.upload_window
            .retain(|h, at| now.since(*at) < UPLOAD_STALL && blobs.contains(h) && blobs.copies(h) < 1 + fanout);
        while self.upload_window.len() < UPLOAD_WINDOW {
            let Some((b, e)) = self.upload_queue.pop_front() else { break };
            if !self.blobs.contains(&b.hash) {
                continue;
            }
            self.upload_window.insert(b.hash.clone(), now);
            let fanout = self.cfg.blob_fanout;
            self.offer(vec![b], e, None, fanout);
        }
    }

    /// Offers thin blobs again with more `energy`, to every neighbour
    /// rather than `blob_fanout` of them: for an upload waiting for more
    /// copies than its first offer made (`PUT /v1/blobs?copies=N`) once
    /// replication has stalled.
    pub fn top_up_upload(&mut self, now: Time, blobs: Vec<BlobRef>, energy: f64) {
        self.now = now.max(self.now);
        for b in &blobs {
            self.blobs.set_energy(&b.hash, energy.max(self.cfg.default_energy));
        }
        let all = self.active.len();
        self.offer(blobs, energy, None, all);
    }

    /// Forgets a blob (the driver discards its bytes).
    pub fn blob_remove(&mut self, hash: &str) {
        self.blobs.remove(hash);
        self.custody.forget(hash);
    }

    // --------------------------------------------------------------- custody

    /// This node as a keeper.
    fn as_keeper(&self) -> crate::wire::Keeper {
        crate::wire::Keeper { id: self.id, addr: self.addr, http: self.http }
    }

    /// Takes held blobs into custody as their origin, with `k` copies in
    /// all (this one included): other nodes are asked to keep the rest, and
    /// keep the count when keepers die (see `custody`), until the wall
    /// clock reaches `until` (Unix ms; 0: until released). Returns how
    /// many blobs are now in custody.
    pub fn keep(&mut self, now: Time, blobs: Vec<BlobRef>, k: usize, until: u64) -> usize {
        self.now = now.max(self.now);
        let k = k.clamp(1, crate::blobs::MAX_HOLDERS + 1) as u8;
        let held: Vec<BlobRef> = blobs.into_iter().filter(|b| self.blobs.contains(&b.hash)).collect();
        let n = held.len();
        for page in held.chunks(64) {
            let cert = self.keep_cert(page.to_vec(), k, until);
            for b in page {
                self.blobs.set_durable(&b.hash, true);
                self.custody.originate(&b.hash, &cert);
            }
        }
        self.next_custody = self.now;
        n
    }

    /// Releases blobs this node took into custody: they become ordinary
    /// (evictable) copies here and at every keeper.
    pub fn release(&mut self, now: Time, hashes: &[String]) -> usize {
        self.now = now.max(self.now);
        let mine: Vec<(BlobRef, Vec<crate::wire::Keeper>)> = hashes
            .iter()
            .filter_map(|h| {
                let e = self.custody.get(h)?;
                let size = self.blobs.get(h)?.size;
                (e.cert.origin == self.id)
                    .then(|| (BlobRef { hash: h.clone(), size }, e.keepers.values().map(|(p, _)| *p).collect()))
            })
            .collect();
        for page in mine.chunks(64) {
            let refs: Vec<BlobRef> = page.iter().map(|(b, _)| b.clone()).collect();
            let cert = self.keep_cert(refs.clone(), 0, 0);
            let mut to: BTreeMap<NodeId, (crate::wire::Keeper, Vec<Hash>)> = BTreeMap::new();
            for (b, keepers) in page {
                for kp in keepers {
                    to.entry(kp.id).or_insert((*kp, Vec::new())).1.push(b.hash.clone());
                }
                if self.custody.release(&b.hash, &cert) {
                    self.blobs.set_durable(&b.hash, false);
                }
            }
            for (_, (kp, hashes)) in to {
                let msg = Message::BlobKeep { cert: Box::new(cert.clone()), hashes, keepers: vec![] };
                self.send(PeerInfo { id: kp.id, addr: kp.addr }, msg);
            }
        }
        mine.len()
    }

    fn keep_cert(&self, blobs: Vec<BlobRef>, k: u8, until: u64) -> crate::wire::KeepCert {
        let bytes = crate::wire::KeepCert::signed_bytes(&self.cfg.cluster_id, &blobs, k, self.id, until);
        let proof = self.identity.prove(crate::identity::domain::KEEP, self.wall().as_millis(), &[&bytes]);
        crate::wire::KeepCert { blobs, k, origin: self.id, until, proof }
    }

    /// Live confirmed copies of a blob in custody (this one included), or
    /// else the verified copies known (see [`Node::blob_copies`]).
    pub fn kept_copies(&self, hash: &str) -> usize {
        if self.custody.get(hash).is_some() {
            self.custody.live_copies(hash)
        } else {
            self.blob_copies(hash)
        }
    }

    /// Copies a blob in custody is kept with, and its origin.
    pub fn custody_of(&self, hash: &str) -> Option<(usize, NodeId)> {
        self.custody.get(hash).map(|e| (e.k(), e.cert.origin))
    }

    /// Durable bytes held in custody for `origin`.
    fn durable_bytes_of(&self, origin: NodeId) -> u64 {
        self.blobs
            .iter()
            .filter(|(h, m)| m.durable && self.custody.get(h).is_some_and(|e| e.cert.origin == origin))
            .map(|(_, m)| crate::blobs::charge(m.size))
            .sum()
    }

    fn on_blob_keep(
        &mut self,
        src: PeerInfo,
        cert: crate::wire::KeepCert,
        hashes: Vec<Hash>,
        keepers: Vec<crate::wire::Keeper>,
    ) {
        if let Err(e) = cert.verify(&self.cfg.cluster_id) {
            self.metrics.count_rejected(e.reason());
            return;
        }
        if cert.k == 0 || cert.expired(self.wall().as_millis()) {
            for h in &hashes {
                if self.custody.release(h, &cert) {
                    self.blobs.set_durable(h, false);
                }
            }
            return;
        }
        // Another origin's durable data may take only a share of the store.
        let share = (self.blobs.capacity() as f64 * crate::custody::FOREIGN_SHARE) as u64;
        let mut budget =
            if cert.origin == self.id { u64::MAX } else { share.saturating_sub(self.durable_bytes_of(cert.origin)) };
        let mut kept = Vec::new();
        for h in hashes {
            let Some(b) = cert.blobs.iter().find(|b| b.hash == h).cloned() else { continue };
            if self.custody.released_after(&h, &cert) {
                continue;
            }
            let already = self.custody.get(&h).is_some();
            let size = crate::blobs::charge(b.size);
            if !already && size > budget {
                continue;
            }
            if self.blobs.contains(&h) {
                if !already {
                    budget = budget.saturating_sub(size);
                }
                self.blobs.set_durable(&h, true);
                self.custody.keep(self.id, &h, &cert, &keepers, self.now);
                kept.push(h);
            } else if self.blobs.could_hold(b.size) {
                let asker = keepers.iter().find(|k| k.id == src.id).copied().unwrap_or(crate::wire::Keeper {
                    id: src.id,
                    addr: src.addr,
                    http: src.addr,
                });
                // A copy already on its way (replication) is kept when it
                // arrives: no second fetch.
                let arriving = self.replication_src.contains_key(&h);
                if self.custody.fetching(&h, cert.clone(), keepers.clone(), asker) {
                    budget = budget.saturating_sub(size);
                    if !arriving {
                        let sources: Vec<SocketAddr> = keepers.iter().map(|k| k.http).collect();
                        self.outputs.push_back(Output::Job(JobOutput::Fetch {
                            hash: h,
                            size: b.size,
                            sources,
                            kind: BlobKind::Chunk,
                        }));
                    }
                }
            }
        }
        if !kept.is_empty() {
            self.confirm_kept(kept, &keepers, src);
        }
    }

    /// Tells every keeper (and whoever asked) that this node keeps `hashes`.
    fn confirm_kept(&mut self, hashes: Vec<Hash>, keepers: &[crate::wire::Keeper], asker: PeerInfo) {
        let mut to: BTreeMap<NodeId, PeerInfo> =
            keepers.iter().filter(|k| k.id != self.id).map(|k| (k.id, PeerInfo { id: k.id, addr: k.addr })).collect();
        to.insert(asker.id, asker);
        to.remove(&self.id);
        for (_, p) in to {
            self.send_have_kept(p, hashes.clone(), true);
        }
    }

    fn custody_tick(&mut self) {
        let me = self.as_keeper();
        let now = self.now;
        // Candidates for new copies: neighbours (fetching costs a hop).
        let candidates: Vec<crate::wire::Keeper> = self
            .active
            .iter()
            .map(|(id, p)| {
                let http = self.topology.get(id).and_then(|e| e.list.http).unwrap_or(p.addr);
                crate::wire::Keeper { id: *id, addr: p.addr, http }
            })
            .collect();
        let wall_ms = self.wall().as_millis();
        for h in self.custody.expire(wall_ms) {
            self.blobs.set_durable(&h, false);
        }
        let blobs = &self.blobs;
        let holds = |h: &str, id: NodeId| blobs.get(h).is_some_and(|m| m.holders.iter().any(|x| x.node == id));
        let actions = self.custody.tick(me, now, &candidates, holds);
        // One message per destination, certificate and list of keepers
        // (blobs of one upload usually share all three).
        type Group = (crate::wire::Keeper, Box<crate::wire::KeepCert>, Vec<Hash>, Vec<crate::wire::Keeper>);
        let mut keeps: BTreeMap<(NodeId, [u8; 64], Vec<NodeId>), Group> = BTreeMap::new();
        for a in actions {
            match a {
                crate::custody::CustodyAction::Ping { id, addr } => self.ping(id, addr, PingKind::Keeper),
                crate::custody::CustodyAction::Keep { to, cert, hash, keepers } => {
                    let mut ids: Vec<NodeId> = keepers.iter().map(|k| k.id).collect();
                    ids.sort_unstable();
                    let key = (to.id, cert.proof.sig.0, ids);
                    keeps.entry(key).or_insert_with(|| (to, cert, Vec::new(), keepers)).2.push(hash);
                }
            }
        }
        for (_, (to, cert, hashes, keepers)) in keeps {
            self.send(PeerInfo { id: to.id, addr: to.addr }, Message::BlobKeep { cert, hashes, keepers });
        }
    }

    /// Keeps a held blob from eviction under `tag` (e.g. while its upload
    /// is still arriving).
    pub fn blob_pin(&mut self, hash: &str, tag: &str) {
        self.blobs.pin(hash, tag);
    }

    /// Whether a held blob is pinned (a running job reads it, or an upload
    /// is still arriving).
    pub fn blob_pinned(&self, hash: &str) -> bool {
        self.blobs.is_pinned(hash)
    }

    /// Releases [`Node::blob_pin`].
    pub fn blob_unpin(&mut self, hash: &str, tag: &str) {
        self.blobs.unpin_hash(hash, tag);
    }

    /// Metadata of a held blob.
    pub fn blob(&self, hash: &str) -> Option<&BlobMeta> {
        self.blobs.get(hash)
    }

    /// Verified copies of a held blob known here (this one included).
    pub fn blob_copies(&self, hash: &str) -> usize {
        self.blobs.copies(hash)
    }

    /// Blob store accounting: (blobs, bytes used, capacity, pinned).
    pub fn blob_usage(&self) -> (usize, u64, u64, usize) {
        (self.blobs.len(), self.blobs.used(), self.blobs.capacity(), self.blobs.pinned_count())
    }

    /// Every held blob.
    pub fn blobs(&self) -> impl Iterator<Item = (&Hash, &BlobMeta)> {
        self.blobs.iter()
    }

    /// A `Fetch` finished; `ok` means the blob was verified and stored
    /// with `blob_put`.
    pub fn fetch_done(&mut self, now: Time, hash: &str, ok: bool) {
        self.now = now.max(self.now);
        if let Some((cert, keepers, asker)) = self.custody.fetched(hash) {
            if ok && self.blobs.contains(hash) {
                self.blobs.set_durable(hash, true);
                self.custody.keep(self.id, hash, &cert, &keepers, self.now);
                self.confirm_kept(vec![hash.to_string()], &keepers, PeerInfo { id: asker.id, addr: asker.addr });
            }
        }
        let more = self.replication_more.remove(hash).unwrap_or_default();
        if let Some((offerer, energy)) = self.replication_src.remove(hash) {
            if ok {
                self.blobs.set_energy(hash, energy);
                self.blobs.set_upstream(hash, offerer);
                self.send_have(offerer, vec![hash.to_string()]);
                if let Some(size) = self.blobs.get(hash).map(|m| m.size) {
                    // Pass the offer on with what is left of the energy.
                    let fanout = self.cfg.blob_fanout;
                    self.offer(vec![BlobRef { hash: hash.to_string(), size }], energy, Some(offerer.id), fanout);
                    for (o, e) in more {
                        self.offer(vec![BlobRef { hash: hash.to_string(), size }], e, Some(o.id), fanout);
                    }
                }
            }
        }
        self.with_jobs(|j, c| j.fetch_done(c, hash, ok));
    }

    /// A kernel finished; `Ok(digest)` once the partial is stored under it.
    pub fn work_done(&mut self, now: Time, job: &str, unit: u32, replica: u8, digest: Result<String, String>) {
        self.now = now.max(self.now);
        self.with_jobs(|j, c| j.work_done(c, job, unit, replica, digest));
    }

    /// A merge finished: the stored result blob, or the units whose
    /// partials could not be fetched.
    pub fn merge_done(&mut self, now: Time, job: &str, outcome: Result<(Hash, String, u64), Vec<u32>>) {
        self.now = now.max(self.now);
        self.with_jobs(|j, c| j.merge_done(c, job, outcome));
    }

    // ------------------------------------------------------------------ tick

    fn on_tick(&mut self) {
        let now = self.now;
        if let Some(expected) = self.expected_tick {
            if now.since(expected) > self.cfg.late_tick {
                // We ourselves are slow (overloaded, paused): be slower to
                // accuse others (Lifeguard's local health).
                self.metrics.late_ticks += 1;
                self.local_health = (self.local_health + 1).min(self.cfg.max_local_health);
            }
        }
        if now >= self.next_health_decay {
            self.local_health = self.local_health.saturating_sub(1);
            self.next_health_decay = now.plus(Duration::from_secs(1));
            // Once a second is plenty for a TTL of seconds; a sweep of up
            // to `max_topology_nodes` entries every tick was a hot spot.
            self.topology.expire(now, self.cfg.topology_ttl);
            self.want_routes.retain(|_, r| now.since(r.at) < WANT_ROUTE_TTL);
        }
        self.detect_failures();
        self.expire_pending();
        if !self.upload_window.is_empty() || !self.upload_queue.is_empty() {
            self.pump_upload();
        }
        self.fill();
        if now >= self.next_hello {
            self.hello();
        }
        if now >= self.next_shuffle {
            self.next_shuffle = now.plus(self.jittered(self.cfg.shuffle_interval));
            self.shuffle();
        }
        if now >= self.next_passive_probe {
            self.next_passive_probe = now.plus(self.jittered(Duration::from_secs(1)));
            let sample = self.passive.sample(1, &mut self.rng);
            if let Some(p) = sample.first() {
                self.ping(p.id, p.addr, PingKind::Passive);
            }
        }
        if now >= self.next_reevaluate {
            self.next_reevaluate = now.plus(self.jittered(self.cfg.reevaluate_interval));
            self.reevaluate();
        }
        if now >= self.next_topology || (self.topo_dirty && now.since(self.last_topology) >= Duration::from_secs(1)) {
            self.diffuse_topology();
        }
        if now >= self.next_sync {
            self.next_sync = now.plus(self.jittered(self.cfg.sync_interval));
            let ids = self.active_ids();
            if let Some(id) = self.rng.pick(&ids).copied() {
                self.send_digest_to(id);
            }
        }
        for (id, who) in self.missing.due(now, self.cfg.graft_timeout) {
            if self.active.contains_key(&who) {
                if let Some(p) = self.active.get_mut(&who) {
                    p.eager = true;
                }
                self.send_to(who, Message::Graft { ids: vec![id] });
            }
        }
        if now >= self.next_custody {
            self.next_custody = now.plus(Duration::from_secs(1));
            self.custody_tick();
        }
        self.with_jobs(|j, c| j.tick(c));
        self.flush_lazy();
        self.next_tick = now.plus(TICK);
        self.expected_tick = Some(self.next_tick);
    }

    fn jittered(&mut self, d: Duration) -> Duration {
        // ±20 % so that nodes started together do not act in lockstep.
        let f = 0.8 + 0.4 * self.rng.unit();
        d.mul_f64(f)
    }

    fn detect_failures(&mut self) {
        let now = self.now;
        let scale = 1 + self.local_health;
        let suspect_after = self.cfg.suspect_after * scale;
        let confirm_after = self.cfg.confirm_after * scale;
        let mut to_ping = Vec::new();
        let mut newly_suspect = Vec::new();
        let mut convict = Vec::new();
        for (id, p) in self.active.iter_mut() {
            let silence = now.since(p.last_heard);
            // One side of each link probes: the one with the lower id. Its
            // pings are the other side's proof of life, so the other side
            // only probes if it hears nothing for twice as long, and once a
            // second to measure the round trip itself.
            let prober = self.id < *id;
            let since_ping = p.last_ping.map(|t| now.since(t));
            let due = if prober {
                silence >= self.cfg.probe_interval && since_ping.is_none_or(|d| d >= self.cfg.probe_interval)
            } else {
                (silence >= self.cfg.probe_interval * 2 && since_ping.is_none_or(|d| d >= self.cfg.probe_interval))
                    || since_ping.is_none_or(|d| d >= Duration::from_secs(1))
            };
            if due {
                p.last_ping = Some(now);
                to_ping.push((*id, p.addr));
            }
            match p.suspect_since {
                None if silence >= suspect_after => {
                    p.suspect_since = Some(now);
                    newly_suspect.push((*id, p.addr));
                }
                Some(s) if now.since(s) >= confirm_after => convict.push(*id),
                _ => {}
            }
        }
        for (id, addr) in to_ping {
            self.ping(id, addr, PingKind::Direct);
        }
        for (id, addr) in newly_suspect {
            self.emit(Event::Suspect { id });
            // Confirm through other neighbours before convicting.
            let mut helpers: Vec<(NodeId, SocketAddr)> = self
                .active
                .iter()
                .filter(|(h, p)| **h != id && p.suspect_since.is_none())
                .map(|(h, p)| (*h, p.addr))
                .collect();
            self.rng.shuffle(&mut helpers);
            for (hid, haddr) in helpers.into_iter().take(self.cfg.indirect_probes) {
                let nonce = self.rng.next_u64();
                if self.pending_ping_reqs.len() >= MAX_PENDING_PING_REQS {
                    if let Some(oldest) = self.pending_ping_reqs.iter().min_by_key(|(_, v)| v.2).map(|(k, _)| *k) {
                        self.pending_ping_reqs.remove(&oldest);
                    }
                }
                self.pending_ping_reqs.insert(nonce, (hid, id, self.now));
                self.send(PeerInfo { id: hid, addr: haddr }, Message::PingReq { nonce, target: PeerInfo { id, addr } });
            }
        }
        if convict.is_empty() {
            return;
        }
        let all_suspect = self.active.len() >= 2 && self.active.values().all(|p| p.suspect_since.is_some());
        if all_suspect && self.local_health < self.cfg.max_local_health {
            // Everyone silent at once: more likely our own network or CPU
            // than every neighbour dying together. Slow down and look again.
            self.local_health += 1;
            return;
        }
        for id in convict {
            self.metrics.failures_detected += 1;
            self.remove_active(id, DownReason::Failed);
        }
        self.fill();
    }

    fn expire_pending(&mut self) {
        let now = self.now;
        let timeout = self.cfg.join_timeout * (1 + self.local_health);
        let expired: Vec<NodeId> =
            self.pending_joins.iter().filter(|(_, j)| now.since(j.sent) >= timeout).map(|(id, _)| *id).collect();
        for id in expired {
            self.pending_joins.remove(&id);
            // A candidate that does not answer is probably gone.
            self.passive.remove(&id);
        }
        self.pending_ping_reqs.retain(|_, (_, _, t)| now.since(*t) < PING_MEMORY);
        let mut dead_passive = Vec::new();
        let mut missed_keepers = Vec::new();
        self.pending_pings.retain(|_, p| {
            let keep = now.since(p.sent) < PING_MEMORY;
            if !keep && matches!(p.kind, PingKind::Passive) {
                dead_passive.push(p.target);
            }
            if !keep && matches!(p.kind, PingKind::Keeper) {
                missed_keepers.push(p.target);
            }
            keep
        });
        for id in dead_passive {
            self.passive.remove(&id);
        }
        for id in missed_keepers {
            self.custody.missed(id);
        }
        let ttl = self.cfg.tombstone_ttl;
        self.tombstones.retain(|_, t| now.since(*t) < ttl);
    }

    fn hello(&mut self) {
        let needy = self.active.len() < self.cfg.min_active;
        let interval = if needy {
            // Back off while hellos find nobody new (a cluster smaller than
            // the minimum stays needy for ever); a lost neighbour resets it.
            let backoff = self.cfg.hello_interval_needy * (1u32 << self.needy_streak.min(5));
            self.needy_streak += 1;
            backoff.min(self.cfg.hello_interval)
        } else {
            self.needy_streak = 0;
            self.cfg.hello_interval
        };
        self.next_hello = self.now.plus(self.jittered(interval));
        if self.leaving {
            return;
        }
        let msg = Message::Hello { active: self.active.len().min(255) as u8, needy };
        match self.cfg.discovery {
            Discovery::Broadcast => {
                // Seeds given as well (other segments, other machines) get
                // the same hello directly.
                for s in self.seeds.clone() {
                    self.send_hello(s, msg.clone());
                }
                self.metrics.count_out(msg.kind());
                self.seq += 1;
                let env = self.envelope(None, msg);
                self.outputs.push_back(Output::Broadcast { env });
            }
            Discovery::SeedNodes => {
                for s in self.seeds.clone() {
                    self.send_hello(s, msg.clone());
                }
            }
        }
    }

    fn shuffle(&mut self) {
        let ids = self.active_ids();
        let Some(target) = self.rng.pick(&ids).copied() else {
            return;
        };
        let peers = self.sample_peers(SAMPLE, target);
        self.send_to(target, Message::Shuffle { peers });
    }

    fn reevaluate(&mut self) {
        if self.leaving {
            return;
        }
        let now = self.now;
        let candidates = self.join_candidates();
        if candidates.is_empty() {
            return;
        }
        // 1. Rotate an old long link this node opened, or open one if none.
        let old_long =
            self.active.values().any(|p| p.long && p.initiated && now.since(p.since) >= self.cfg.long_link_refresh);
        let no_long = !self.has_long_link();
        if (old_long || no_long) && self.active.len() < self.cfg.max_active {
            if let Some(&(id, addr, _)) = self.rng.pick(&candidates) {
                self.request_join(id, addr, true, JoinPurpose::RotateLong);
                return;
            }
        }
        if no_long && self.active.len() >= self.cfg.max_active {
            // Full with short links only: free a slot for a long one.
            if let Some(worst) = self.worst_short_link(None) {
                self.send_to(worst, Message::Disconnect);
                self.remove_active(worst, DownReason::Disconnected);
            }
            return;
        }
        // 2. Prefer a clearly closer peer over the slowest short link.
        if self.active.len() >= self.cfg.target_active && self.active.len() < self.cfg.max_active {
            let worst = self.worst_short_link(None).and_then(|w| self.active.get(&w)).and_then(|p| p.rtt.smoothed_us);
            let best = candidates.iter().filter_map(|c| c.2.map(|r| (c.0, c.1, r))).min_by_key(|c| c.2);
            if let (Some(w), Some((id, addr, r))) = (worst, best) {
                if r * 2 < w && w - r >= 1000 {
                    self.request_join(id, addr, false, JoinPurpose::Improve);
                }
            }
        }
    }

    fn diffuse_topology(&mut self) {
        self.topo_dirty = false;
        self.last_topology = self.now;
        self.next_topology = self.now.plus(self.jittered(self.cfg.topology_interval));
        if self.leaving {
            return;
        }
        self.topo_version += 1;
        let item = self.own_topology_item();
        self.forward(item, None);
    }
}

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
            ("custody", self.custody, self.blobs),
            ("custody_peers", self.custody_peers, crate::custody::MAX_PEERS),
            ("custody_pending", self.custody_pending, crate::custody::MAX_PEERS * 4),
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
