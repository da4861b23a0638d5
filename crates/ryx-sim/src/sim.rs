//! The simulation engine: many `ryx-core` nodes, one virtual clock, one
//! event queue, a hostile seeded network, and invariants checked as it runs.

use crate::net::{NetConfig, Network};
use crate::params::Params;
use ryx_core::config::Discovery;
use ryx_core::identity::Identity;
use ryx_core::node::{DownReason, Event, Input, Output};
use ryx_core::rng::Rng;
use ryx_core::wire::{self, Envelope, Message, Space};
use ryx_core::{Node, NodeConfig, NodeId, Time};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

/// UDP port every simulated node "listens" on.
const PORT: u16 = 7000;
/// First address of the simulated address range (127.1.0.0: loopback, so a
/// printed address can never be mistaken for a real host).
const BASE_IP: u32 = 0x7F01_0000;
/// How long a link may stay one-sided (A lists B, B does not list A, both
/// alive, reachable and running) before it counts as a broken invariant.
/// The core repairs asymmetry through acks within about a second; this is
/// generous so that loss does not raise false alarms.
const ASYMMETRY_GRACE: Duration = Duration::from_secs(5);
/// Interval of the full (O(N)) invariant sweep.
const FULL_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The simulated address of node slot `i`.
pub fn slot_addr(i: usize) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(BASE_IP + i as u32), PORT))
}

pub(crate) fn addr_slot(a: &SocketAddr, n: usize) -> Option<usize> {
    match a {
        SocketAddr::V4(v) if v.port() == PORT => {
            let i = u32::from(*v.ip()).checked_sub(BASE_IP)? as usize;
            (i < n).then_some(i)
        }
        _ => None,
    }
}

/// Node ids are random already: hash them by a multiply, not SipHash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<NodeId, V, BuildHasherDefault<IdHasher>>;

/// An invariant the run broke.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    /// Virtual time, milliseconds.
    pub time_ms: f64,
    /// Node slot concerned, if one.
    pub slot: Option<usize>,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.slot {
            Some(s) => write!(f, "at {:.3} ms, node slot {s}: {}", self.time_ms, self.message),
            None => write!(f, "at {:.3} ms: {}", self.time_ms, self.message),
        }
    }
}

/// A datagram in flight: decoded (fast path) or encoded (`--wire`).
#[derive(Clone)]
pub(crate) enum Payload {
    /// For one destination: handed over without a copy.
    One(Box<Envelope>),
    /// For many (a broadcast): shared.
    Env(Rc<Envelope>),
    Bytes(Rc<[u8]>),
    /// A Byzantine node's bytes (anything at all).
    Hostile(Rc<[u8]>),
}

/// What an event does (`Job`: a job-driver action finished at a node).
pub(crate) enum EvKind {
    Start { slot: u32 },
    Job { slot: u32, inc: u32, op: Box<crate::work::Op> },
    Timer { slot: u32, inc: u32 },
    Deliver { slot: u32, from: u32, payload: Payload },
    Resume { slot: u32, inc: u32 },
    Attack { slot: u32, inc: u32 },
}

pub(crate) struct Ev {
    t: u64,
    seq: u64,
    kind: EvKind,
}

impl PartialEq for Ev {
    fn eq(&self, o: &Self) -> bool {
        (self.t, self.seq) == (o.t, o.seq)
    }
}
impl Eq for Ev {}
impl PartialOrd for Ev {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ev {
    // BinaryHeap is a max-heap: reverse for earliest (time, seq) first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.t, o.seq).cmp(&(self.t, self.seq))
    }
}

/// One node's place in the simulation: the core itself plus what the
/// simulator knows about it.
pub(crate) struct Slot {
    pub node: Option<Node>,
    pub id: NodeId,
    /// The key pair of the node this slot runs (a restart draws a new one).
    identity: Option<Identity>,
    pub alive: bool,
    pub inc: u32,
    /// Virtual time of the pending timer event (u64::MAX: none).
    timer_at: u64,
    /// The node deadline that timer event was scheduled for.
    deadline_seen: u64,
    /// Paused (SIGSTOP) until this time; 0 when running.
    pub paused_until: u64,
    backlog: Vec<(u32, Payload)>,
    pub slow: bool,
    /// Share of its datagrams (in and out) a lossy node drops.
    pub lossy: f64,
    /// Active neighbours that are dead.
    dead_nbrs: u32,
    /// Active neighbours alive but across a partition.
    cross_nbrs: u32,
    deficient: bool,
    /// Newest (version, origin) seen per info key, for the LWW invariant.
    lww: BTreeMap<String, (u64, NodeId)>,
}

/// Per-item accounting of one tracked info item.
#[derive(Clone, Debug, Default)]
pub struct Tracked {
    /// Key.
    pub key: String,
    /// Injection time.
    pub injected: Time,
    /// Live nodes at injection.
    pub live: usize,
    /// Which slots hold it.
    pub holders: Vec<bool>,
    /// How many slots hold it.
    pub count: usize,
    /// Times (µs after injection) at which 50, 99 and 100 % held it.
    pub t50: Option<u64>,
    /// See `t50`.
    pub t99: Option<u64>,
    /// See `t50`.
    pub t100: Option<u64>,
    /// Gossip messages carrying it, sent (diffusion and graft answers).
    pub payload_sent: u64,
    /// Of those, pushed by anti-entropy.
    pub sync_sent: u64,
    /// IHave messages naming it.
    pub ihave_sent: u64,
    /// Graft messages naming it.
    pub graft_sent: u64,
    /// Prunes sent in answer to a duplicate copy of it.
    pub prune_sent: u64,
    /// Gossip copies of it that reached a running live node.
    pub payload_received: u64,
    /// Most hops any copy travelled.
    pub max_hops: u32,
    /// Time (µs after injection) of the latest first delivery.
    pub last_delivery: u64,
}

/// The simulation.
pub struct Sim {
    /// What this run was started with.
    pub p: Params,
    cfg: NodeConfig,
    now: Time,
    seq: u64,
    queue: BinaryHeap<Ev>,
    pub(crate) slots: Vec<Slot>,
    ids: IdMap<usize>,
    net: Network,
    /// Randomness for scenario choices (victims, origins, halves).
    pub ctl: Rng,
    id_rng: Rng,
    seeds: Vec<SocketAddr>,
    outs: Vec<Output>,
    uf: Vec<u32>,
    asym: HashMap<(u32, u32), Time>,
    next_full_check: Time,
    cur_tracked: Option<usize>,
    /// Tracked items.
    pub tracked: Vec<Tracked>,
    tracked_keys: HashMap<String, usize>,
    /// Live nodes.
    pub live: usize,
    /// Minimum live neighbours a node needs not to count as deficient.
    pub need: usize,
    /// Live nodes below `need`.
    pub deficient: usize,
    /// Links from live nodes to dead ones.
    pub dead_links: i64,
    /// Links between live nodes across a partition.
    pub cross_links: i64,
    /// Counters.
    pub stats: Stats,
    wall: std::time::Instant,
    /// The job driver (blob bytes, compute model), when a job scenario runs.
    pub(crate) work: Option<crate::work::World>,
    /// The query scenario's tally of the wave in progress.
    pub(crate) wave: Option<crate::query::WaveTally>,
    /// Notifications (incidents raised or resolved): when, by which slot.
    pub(crate) notes: Vec<(Time, usize, ryx_core::node::incident::Incident)>,
    /// Incident events without notification (a node naming an incident),
    /// by incident id.
    pub(crate) named: BTreeMap<String, std::collections::BTreeSet<usize>>,
    /// Every node any version of an incident named, by incident id and
    /// start (`{id}@{started_ms}`: a group's later incident may have the
    /// same id): its kind, and when each member was first named.
    pub(crate) claims: BTreeMap<String, (String, BTreeMap<NodeId, Time>)>,
    /// `agg` bytes (encoded) and messages sent, once counting is on.
    agg_sent: Option<(u64, u64)>,
    learn_sent: Option<(u64, u64)>,
    /// Each slot's labels (the monitor scenario's racks).
    labels: Vec<Vec<(String, String)>>,
    /// The Byzantine nodes, if any.
    pub byz: Option<crate::byzantine::Byzantine>,
    job_seed: u64,
}

/// Whole-run counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Events processed.
    pub events: u64,
    /// Messages sent, by kind (index as in `Message::KINDS`).
    #[serde(skip)]
    pub sent: Vec<u64>,
    /// Datagrams lost by the loss model.
    pub lost: u64,
    /// Datagrams duplicated.
    pub duplicated: u64,
    /// Datagrams dropped at a partition.
    pub partitioned: u64,
    /// Datagrams that reached a dead node.
    pub to_dead: u64,
    /// Datagrams handed to a node.
    pub delivered: u64,
    /// Bytes sent (only with `--wire`).
    pub bytes_sent: u64,
    /// Live, reachable nodes declared dead (NeighborDown with reason failed).
    pub false_detections: u64,
    /// Nodes across a partition declared dead (correct behaviour).
    pub partition_detections: u64,
    /// Dead nodes declared dead.
    pub true_detections: u64,
    /// Suspicions raised against live, reachable nodes.
    pub false_suspicions: u64,
    /// Invariant sweeps done.
    pub full_checks: u64,
}

enum Link {
    Normal,
    Dead,
    Cross,
}

impl Sim {
    /// A simulation with `p.nodes` slots, none started yet.
    pub fn new(p: Params) -> Sim {
        let mut master = Rng::new(p.seed);
        let net_seed = master.next_u64();
        let ctl = Rng::new(master.next_u64());
        let mut id_rng = Rng::new(master.next_u64());
        let n = p.nodes;
        let net = Network::new(
            NetConfig {
                loss: p.loss,
                dup: p.dup,
                slow_us: p.slow_ms * 1000,
                sites: p.sites,
                site_scale: p.site_scale,
                ..NetConfig::default()
            },
            n,
            net_seed,
        );
        let discovery = p.discovery_mode();
        let mut cfg = NodeConfig { cluster_id: "sim".into(), discovery, ..NodeConfig::default() };
        if p.scenario == crate::params::Scenario::Job {
            // The modelled machines have room for the job's input three times
            // over (the home holds all of it after the upload).
            let input = p.job_units() as f64 * p.unit_mib * 1024.0 * 1024.0;
            cfg.memory_limit = cfg.memory_limit.max((3.0 * input) as u64);
            cfg.blob_energy = p.blob_energy.unwrap_or(cfg.blob_energy);
            cfg.blob_fanout = p.blob_fanout.unwrap_or(cfg.blob_fanout);
            cfg.jobs.merge_fan_in = p.merge_fan_in;
        }
        // `main` refuses settings that do not apply before any run starts.
        let cfg = p.core_config(cfg.clone()).unwrap_or(cfg);
        let seeds = match discovery {
            Discovery::SeedNodes => (0..n.min(3)).map(slot_addr).collect(),
            Discovery::Broadcast => Vec::new(),
        };
        let mut slow_rng = Rng::new(master.next_u64());
        let job_seed = master.next_u64();
        let slots = (0..n)
            .map(|_| Slot {
                node: None,
                id: NodeId(0),
                identity: None,
                alive: false,
                inc: 0,
                timer_at: u64::MAX,
                deadline_seen: u64::MAX,
                paused_until: 0,
                backlog: Vec::new(),
                slow: p.slow > 0.0 && slow_rng.chance(p.slow),
                lossy: 0.0,
                dead_nbrs: 0,
                cross_nbrs: 0,
                deficient: false,
                lww: BTreeMap::new(),
            })
            .collect();
        let mut sim = Sim {
            need: cfg.min_active,
            cfg,
            now: Time::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            slots,
            ids: IdMap::default(),
            net,
            ctl,
            id_rng: Rng::new(id_rng.next_u64()),
            seeds,
            outs: Vec::new(),
            uf: Vec::new(),
            asym: HashMap::new(),
            next_full_check: Time::ZERO.plus(FULL_CHECK_EVERY),
            cur_tracked: None,
            tracked: Vec::new(),
            tracked_keys: HashMap::new(),
            live: 0,
            deficient: 0,
            dead_links: 0,
            cross_links: 0,
            stats: Stats { sent: vec![0; Message::KINDS.len()], ..Stats::default() },
            wall: std::time::Instant::now(),
            work: None,
            wave: None,
            agg_sent: None,
            learn_sent: None,
            notes: Vec::new(),
            named: BTreeMap::new(),
            claims: BTreeMap::new(),
            labels: Vec::new(),
            byz: (p.byzantine > 0.0).then(|| {
                // Its own seed: the honest part of a run is the same with or
                // without attackers up to the first attack.
                crate::byzantine::Byzantine::new(n, p.byzantine, &p.attack, p.seed ^ 0xB7_2A_17_1E)
            }),
            job_seed,
            p,
        };
        // Give every slot its first identity now, so ids do not depend on
        // start order.
        for s in 0..n {
            sim.new_identity(s);
        }
        if matches!(sim.p.scenario, crate::params::Scenario::Monitor | crate::params::Scenario::Alerts) {
            let racks = sim.p.racks;
            sim.set_racks(racks);
        }
        sim
    }

    /// Seed of the job driver's random choices (liars, lies).
    pub(crate) fn job_seed(&self) -> u64 {
        self.job_seed
    }

    /// Current virtual time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// The node configuration every node runs with.
    pub fn node_config(&self) -> &NodeConfig {
        &self.cfg
    }

    /// The network model.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The node in slot `s`, if it runs.
    pub fn node(&self, s: usize) -> Option<&Node> {
        self.slots.get(s).and_then(|x| x.node.as_ref())
    }

    /// Whether slot `s` is a slow node.
    pub fn is_slow(&self, s: usize) -> bool {
        self.slots.get(s).is_some_and(|x| x.slow)
    }

    /// The node in slot `s`, mutably, if it runs.
    pub(crate) fn node_mut(&mut self, s: usize) -> Option<&mut Node> {
        self.slots.get_mut(s).and_then(|x| x.node.as_mut())
    }

    /// The incarnation of slot `s`.
    pub(crate) fn inc(&self, s: usize) -> u32 {
        self.slots[s].inc
    }

    /// Network model, mutably (job transfers draw latencies from it).
    pub(crate) fn network_mut(&mut self) -> &mut Network {
        &mut self.net
    }

    /// Whether slot `s` runs.
    pub fn is_alive(&self, s: usize) -> bool {
        self.slots.get(s).is_some_and(|x| x.alive)
    }

    /// Slots of the live nodes.
    pub fn live_slots(&self) -> Vec<usize> {
        (0..self.slots.len()).filter(|&s| self.slots[s].alive).collect()
    }

    fn new_identity(&mut self, s: usize) {
        let identity = loop {
            let identity = Identity::from_u64(self.id_rng.next_u64());
            if identity.id().0 != 0 && !self.ids.contains_key(&identity.id()) {
                break identity;
            }
        };
        self.slots[s].id = identity.id();
        self.ids.insert(identity.id(), s);
        self.slots[s].identity = Some(identity);
    }

    /// The slot currently running `id`, if that node is alive.
    fn live_slot_of(&self, id: &NodeId) -> Option<usize> {
        let s = *self.ids.get(id)?;
        let slot = &self.slots[s];
        (slot.alive && slot.id == *id).then_some(s)
    }

    pub(crate) fn violation(&self, slot: Option<usize>, message: String) -> Violation {
        Violation { time_ms: self.now.as_micros() as f64 / 1000.0, slot, message }
    }

    pub(crate) fn push(&mut self, t: u64, kind: EvKind) {
        self.seq += 1;
        self.queue.push(Ev { t, seq: self.seq, kind });
    }

    // ------------------------------------------------------------ control

    /// Schedules every slot to start at a random offset within `spread`.
    pub fn start_all(&mut self, spread: Duration) {
        let span = spread.as_micros().max(1) as usize;
        for s in 0..self.slots.len() {
            let t = self.now.as_micros() + self.ctl.below(span) as u64;
            self.push(t, EvKind::Start { slot: s as u32 });
        }
    }

    fn start(&mut self, s: usize) -> Result<(), Violation> {
        if self.slots[s].alive {
            return Ok(());
        }
        let seed = self.id_rng.next_u64();
        let Some(identity) = self.slots[s].identity.clone() else {
            return Err(self.violation(Some(s), "slot has no identity".into()));
        };
        let mut cfg = self.cfg.clone();
        if let Some(l) = self.labels.get(s) {
            cfg.labels = l.clone();
        }
        let node = Node::new(cfg, identity, slot_addr(s), seed, self.now);
        let slot = &mut self.slots[s];
        slot.node = Some(node);
        slot.alive = true;
        slot.inc += 1;
        slot.timer_at = u64::MAX;
        slot.deadline_seen = u64::MAX;
        slot.dead_nbrs = 0;
        slot.cross_nbrs = 0;
        slot.lww.clear();
        self.live += 1;
        if self.byz.as_ref().is_some_and(|b| b.is_byz[s]) {
            let inc = self.slots[s].inc;
            let t = self.now.plus(crate::byzantine::ATTACK_EVERY).as_micros();
            self.push(t, EvKind::Attack { slot: s as u32, inc });
        }
        if !self.seeds.is_empty() {
            let seeds = self.seeds.clone();
            self.feed(s, Input::Seeds(seeds))?;
        } else {
            self.after_handle(s)?;
        }
        Ok(())
    }

    /// Stops slot `s` dead (no goodbye: a crash or SIGKILL).
    pub fn crash(&mut self, s: usize) {
        let slot = &mut self.slots[s];
        if !slot.alive {
            return;
        }
        slot.alive = false;
        slot.node = None;
        slot.paused_until = 0;
        slot.backlog.clear();
        slot.timer_at = u64::MAX;
        if let Some(w) = self.work.as_mut() {
            w.crashed(s);
        }
        let slot = &mut self.slots[s];
        if slot.deficient {
            slot.deficient = false;
            self.deficient -= 1;
        }
        self.live -= 1;
    }

    /// Crashes several slots at once, then recounts links.
    pub fn crash_many(&mut self, victims: &[usize]) {
        for &s in victims {
            self.crash(s);
        }
        self.recount_links();
    }

    /// Restarts a crashed slot as a new member (new id, same address).
    pub fn restart(&mut self, s: usize) -> Result<(), Violation> {
        if self.slots[s].alive {
            return Ok(());
        }
        self.new_identity(s);
        self.start(s)
    }

    /// Pauses slot `s` (SIGSTOP) for `d`: no ticks, inbound datagrams queue
    /// up and are handled on resume, after the late tick.
    pub fn pause(&mut self, s: usize, d: Duration) {
        if !self.slots[s].alive {
            return;
        }
        let until = self.now.plus(d).as_micros();
        self.slots[s].paused_until = until;
        let inc = self.slots[s].inc;
        self.push(until, EvKind::Resume { slot: s as u32, inc });
    }

    /// Makes slot `s` slow (its ticks and inbound datagrams delayed by up
    /// to `--slow-ms`), and lossy (it drops a share `lossy` of its
    /// datagrams, in and out).
    pub fn set_faults(&mut self, s: usize, slow: bool, lossy: f64) {
        self.slots[s].slow = slow;
        self.slots[s].lossy = lossy;
    }

    /// Puts each slot into the given partition segment (all 0: healed).
    pub fn set_segments(&mut self, seg: &[u8]) {
        self.net.segment.copy_from_slice(seg);
        self.asym.clear();
        self.recount_links();
    }

    /// The partition segment of slot `s`.
    pub fn segment(&self, s: usize) -> u8 {
        self.net.segment[s]
    }

    /// Sets the live-neighbour count below which a node is deficient.
    pub fn set_need(&mut self, need: usize) {
        self.need = need;
        for s in 0..self.slots.len() {
            self.update_deficit(s);
        }
    }

    /// Writes an info item at slot `s` and, if `track`, accounts for its
    /// spread. Returns the version written.
    pub fn put(
        &mut self,
        s: usize,
        key: &str,
        value: serde_json::Value,
        energy: Option<f64>,
        track: bool,
    ) -> Result<u64, Violation> {
        let now = self.now;
        let Some(node) = self.slots[s].node.as_mut() else {
            return Err(self.violation(Some(s), "put on a dead node".into()));
        };
        let version = node.put_info(now, key, value, energy).map_err(|e| Violation {
            time_ms: now.as_micros() as f64 / 1000.0,
            slot: Some(s),
            message: format!("put_info refused: {e}"),
        })?;
        let origin = self.slots[s].id;
        self.note_lww(s, key, version, origin)?;
        if track {
            let idx = self.tracked.len();
            let mut t = Tracked {
                key: key.to_string(),
                injected: now,
                live: self.live,
                holders: vec![false; self.slots.len()],
                ..Tracked::default()
            };
            t.holders[s] = true;
            t.count = 1;
            self.tracked.push(t);
            self.tracked_keys.insert(key.to_string(), idx);
            self.note_holder(idx, s, 0);
        }
        self.cur_tracked = None;
        self.after_handle(s)?;
        Ok(version)
    }

    // -------------------------------------------------------------- loop

    /// Runs until `deadline`, or until `cond` holds. With `every` = None the
    /// condition is evaluated after every event (keep it O(1)); otherwise at
    /// every multiple of `every`. Returns when the condition first held.
    pub fn run_until(
        &mut self,
        deadline: Time,
        every: Option<Duration>,
        mut cond: impl FnMut(&mut Sim) -> bool,
    ) -> Result<Option<Time>, Violation> {
        let mut next_check = every.map(|e| self.now.plus(e));
        if cond(self) {
            return Ok(Some(self.now));
        }
        loop {
            let t_next = self.queue.peek().map_or(u64::MAX, |e| e.t);
            let horizon = t_next.min(deadline.as_micros());
            if let (Some(e), Some(nc)) = (every, next_check.as_mut()) {
                while nc.as_micros() <= horizon {
                    self.now = self.now.max(*nc);
                    self.maybe_full_check()?;
                    if cond(self) {
                        return Ok(Some(self.now));
                    }
                    *nc = nc.plus(e);
                }
            }
            if t_next > deadline.as_micros() {
                self.now = self.now.max(deadline);
                self.maybe_full_check()?;
                return Ok(None);
            }
            let Some(ev) = self.queue.pop() else {
                return Ok(None);
            };
            self.now = Time(ev.t.max(self.now.as_micros()));
            self.maybe_full_check()?;
            self.stats.events += 1;
            self.process(ev.kind)?;
            if every.is_none() && cond(self) {
                return Ok(Some(self.now));
            }
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) -> Result<(), Violation> {
        let end = self.now.plus(d);
        self.run_until(end, Some(Duration::from_secs(3600)), |_| false)?;
        Ok(())
    }

    fn process(&mut self, kind: EvKind) -> Result<(), Violation> {
        match kind {
            EvKind::Start { slot } => self.start(slot as usize),
            EvKind::Timer { slot, inc } => {
                let s = slot as usize;
                let st = &mut self.slots[s];
                if !st.alive || st.inc != inc || st.timer_at != self.now.as_micros() {
                    return Ok(()); // stale
                }
                st.timer_at = u64::MAX;
                st.deadline_seen = u64::MAX;
                if st.paused_until > self.now.as_micros() {
                    return Ok(()); // the resume ticks
                }
                self.cur_tracked = None;
                self.feed(s, Input::Tick)
            }
            EvKind::Deliver { slot, from, payload } => {
                let s = slot as usize;
                let st = &mut self.slots[s];
                if !st.alive {
                    self.stats.to_dead += 1;
                    return Ok(());
                }
                if st.paused_until > self.now.as_micros() {
                    st.backlog.push((from, payload));
                    return Ok(());
                }
                self.deliver(s, from as usize, payload)
            }
            EvKind::Job { slot, inc, op } => {
                let s = slot as usize;
                let st = &self.slots[s];
                if !st.alive || st.inc != inc {
                    return Ok(()); // the node died meanwhile: its work died with it
                }
                self.job_done(s, *op)
            }
            EvKind::Attack { slot, inc } => {
                let s = slot as usize;
                if !self.slots[s].alive || self.slots[s].inc != inc {
                    return Ok(());
                }
                self.attack(s);
                let t = self.now.plus(crate::byzantine::ATTACK_EVERY).as_micros();
                self.push(t, EvKind::Attack { slot, inc });
                Ok(())
            }
            EvKind::Resume { slot, inc } => {
                let s = slot as usize;
                let st = &mut self.slots[s];
                if !st.alive || st.inc != inc || st.paused_until != self.now.as_micros() {
                    return Ok(());
                }
                st.paused_until = 0;
                let backlog = std::mem::take(&mut st.backlog);
                // The timer fires late first (the hostile order: the node
                // sees every neighbour silent before it reads its socket).
                self.cur_tracked = None;
                self.feed(s, Input::Tick)?;
                for (from, payload) in backlog {
                    if !self.slots[s].alive {
                        break;
                    }
                    self.deliver(s, from as usize, payload)?;
                }
                Ok(())
            }
        }
    }

    fn deliver(&mut self, s: usize, from: usize, payload: Payload) -> Result<(), Violation> {
        self.stats.delivered += 1;
        let from_addr = slot_addr(from);
        match payload {
            Payload::Hostile(bytes) => self.feed(s, Input::Datagram { from: from_addr, bytes: &bytes }),
            Payload::One(env) => {
                if let Some(b) = self.byz.as_mut().filter(|b| b.is_byz[s]) {
                    b.capture(s, &env);
                }
                self.cur_tracked = self.account_received(s, &env.msg);
                self.feed(s, Input::Message { from: from_addr, env })
            }
            Payload::Env(rc) => {
                if let Some(b) = self.byz.as_mut().filter(|b| b.is_byz[s]) {
                    b.capture(s, &rc);
                }
                let env = Box::new(Rc::try_unwrap(rc).unwrap_or_else(|rc| (*rc).clone()));
                self.cur_tracked = self.account_received(s, &env.msg);
                self.feed(s, Input::Message { from: from_addr, env })
            }
            Payload::Bytes(bytes) => {
                self.cur_tracked = match wire::decode(&bytes, &self.cfg.cluster_id) {
                    Ok(env) => {
                        if let Some(b) = self.byz.as_mut().filter(|b| b.is_byz[s]) {
                            b.capture(s, &env);
                        }
                        self.account_received(s, &env.msg)
                    }
                    Err(e) => {
                        return Err(self.violation(Some(s), format!("a datagram the core encoded does not decode: {e}")))
                    }
                };
                self.feed(s, Input::Datagram { from: from_addr, bytes: &bytes })
            }
        }
    }

    fn feed(&mut self, s: usize, input: Input<'_>) -> Result<(), Violation> {
        let now = self.now;
        if let Some(node) = self.slots[s].node.as_mut() {
            node.handle(now, input);
        }
        self.after_handle(s)
    }

    pub(crate) fn after_handle(&mut self, s: usize) -> Result<(), Violation> {
        let mut outs = std::mem::take(&mut self.outs);
        if let Some(node) = self.slots[s].node.as_mut() {
            while let Some(o) = node.poll_output() {
                outs.push(o);
            }
        }
        let mut result = Ok(());
        let mut jobs = Vec::new();
        let mut waves = Vec::new();
        for o in outs.drain(..) {
            match o {
                Output::Send { to, env } => self.route(s, to, env),
                Output::Broadcast { env } => self.broadcast(s, env),
                Output::Event(e) => {
                    if result.is_ok() {
                        result = self.on_event(s, e);
                    }
                }
                // Job work (fetch, run a kernel, merge): the job driver
                // models it in virtual time when a job scenario runs.
                Output::Job(j) => jobs.push(j),
                Output::Wave(w) => waves.push(w),
            }
        }
        self.outs = outs;
        result?;
        if self.work.is_some() {
            for j in jobs {
                self.dispatch_job(s, j)?;
            }
        }
        if !waves.is_empty() {
            self.dispatch_waves(s, waves)?;
        }
        self.cur_tracked = None;
        let now = self.now.as_micros();
        let slot = &self.slots[s];
        let Some(node) = slot.node.as_ref() else {
            return Ok(());
        };
        let deadline = node.next_deadline().as_micros().max(now);
        if deadline != slot.deadline_seen && slot.paused_until <= now {
            let mut t = deadline;
            if slot.slow {
                t += self.net.slow_delay_us();
            }
            let inc = slot.inc;
            let st = &mut self.slots[s];
            st.deadline_seen = deadline;
            st.timer_at = t;
            self.push(t, EvKind::Timer { slot: s as u32, inc });
        }
        self.update_deficit(s);
        Ok(())
    }

    /// A Byzantine node's burst of attacks.
    fn attack(&mut self, s: usize) {
        let Some(node) = self.slots[s].node.as_ref() else { return };
        let Some(identity) = self.slots[s].identity.clone() else { return };
        let Some(byz) = self.byz.as_ref() else { return };
        let neighbours: Vec<usize> = node.active_ids().iter().filter_map(|id| self.live_slot_of(id)).collect();
        let honest: Vec<(usize, NodeId)> = (0..self.slots.len())
            .filter(|&o| self.slots[o].alive && !byz.is_byz[o])
            .map(|o| (o, self.slots[o].id))
            .collect();
        let jobs: Vec<(ryx_core::jobs::JobId, NodeId, u32)> = node
            .jobs()
            .into_iter()
            .filter(|j| !j.state.is_final())
            .map(|j| (j.job_id, j.home, j.units_total))
            .collect();
        let blobs: Vec<ryx_core::jobs::BlobRef> =
            node.blobs().take(64).map(|(h, m)| ryx_core::jobs::BlobRef { hash: h.clone(), size: m.size }).collect();
        let view = crate::byzantine::View {
            me: s,
            my_id: node.id(),
            identity,
            neighbours,
            honest,
            jobs,
            blobs,
            wall_ms: self.now.as_millis(),
        };
        let n = self.slots.len();
        let out = match self.byz.as_mut() {
            Some(b) => b.attack(&view, n),
            None => return,
        };
        for (dest, bytes, _) in out {
            if dest < n {
                self.transmit(s, dest, Payload::Hostile(Rc::from(bytes)));
            }
        }
    }

    /// Components of the honest live nodes, counting only their links to
    /// one another.
    pub fn honest_components(&mut self) -> usize {
        let honest = |sim: &Sim, s: usize| sim.slots[s].alive && !sim.byz.as_ref().is_some_and(|b| b.is_byz[s]);
        self.components_where(honest, |sim, _, o| honest(sim, o))
    }

    /// What the attackers did and what honest nodes refused.
    pub fn attack_report(&mut self) -> Option<crate::byzantine::AttackReport> {
        let byz = self.byz.as_ref()?;
        let mut refused: BTreeMap<&'static str, u64> = BTreeMap::new();
        for (s, slot) in self.slots.iter().enumerate() {
            if byz.is_byz[s] {
                continue;
            }
            if let Some(n) = slot.node.as_ref() {
                for (k, v) in &n.metrics().rejected {
                    if *v > 0 {
                        *refused.entry(k).or_default() += v;
                    }
                }
            }
        }
        let nodes = byz.count();
        let sent = byz.sent().clone();
        let honest_connected = self.honest_components() <= 1;
        Some(crate::byzantine::AttackReport { nodes, sent, refused_by_honest: refused, honest_connected })
    }

    fn route(&mut self, from: usize, to: SocketAddr, env: Box<Envelope>) {
        self.account_sent(&env.msg);
        if self.wave.is_some() {
            self.tally_wave(from, &env);
        }
        if let (Some(t), Message::Agg { .. }) = (self.agg_sent.as_mut(), &env.msg) {
            t.0 += wire::encode(&env).map_or(0, |b| b.len() as u64);
            t.1 += 1;
        }
        if let (Some(t), Message::Learn { .. }) = (self.learn_sent.as_mut(), &env.msg) {
            t.0 += wire::encode(&env).map_or(0, |b| b.len() as u64);
            t.1 += 1;
        }
        let Some(dest) = addr_slot(&to, self.slots.len()) else {
            return;
        };
        let payload = self.payload(env);
        self.transmit(from, dest, payload);
    }

    fn broadcast(&mut self, from: usize, env: Box<Envelope>) {
        self.account_sent(&env.msg);
        let payload = match self.payload(env) {
            Payload::One(env) => Payload::Env(Rc::from(env)),
            other => other,
        };
        for dest in 0..self.slots.len() {
            // The segment is the broadcast domain; the sender's own echo is
            // skipped (the core would only count and drop it).
            if dest != from && self.slots[dest].alive {
                self.transmit(from, dest, payload.clone());
            }
        }
    }

    fn payload(&mut self, env: Box<Envelope>) -> Payload {
        if self.p.wire {
            match wire::encode(&env) {
                Ok(b) => {
                    self.stats.bytes_sent += b.len() as u64;
                    Payload::Bytes(b.into())
                }
                // An oversized datagram cannot be sent; deliver nothing.
                Err(_) => Payload::Bytes(Rc::from(&[][..])),
            }
        } else {
            Payload::One(env)
        }
    }

    fn transmit(&mut self, from: usize, dest: usize, payload: Payload) {
        if self.net.blocked(from, dest) {
            self.stats.partitioned += 1;
            return;
        }
        if self.net.lose() {
            self.stats.lost += 1;
            return;
        }
        for end in [from, dest] {
            let p = self.slots[end].lossy;
            if p > 0.0 && self.net.chance(p) {
                self.stats.lost += 1;
                return;
            }
        }
        let copies = if self.net.duplicate() {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut payload = Some(payload);
        for copy in 0..copies {
            let mut t = self.now.as_micros() + self.net.latency_us(from, dest);
            if self.slots[dest].slow {
                t += self.net.slow_delay_us();
            }
            let p = if copy + 1 == copies { payload.take() } else { payload.clone() };
            if let Some(payload) = p {
                self.push(t, EvKind::Deliver { slot: dest as u32, from: from as u32, payload });
            }
        }
    }

    // ---------------------------------------------------------- accounting

    fn tracked_index(&self, key: &str) -> Option<usize> {
        if self.tracked_keys.is_empty() {
            None
        } else {
            self.tracked_keys.get(key).copied()
        }
    }

    fn account_sent(&mut self, msg: &Message) {
        self.stats.sent[msg.kind_index()] += 1;
        if self.tracked_keys.is_empty() {
            return;
        }
        match msg {
            Message::Gossip { items, sync } => {
                let mut seen = None;
                for it in items.iter().filter(|i| i.id.space == Space::Info) {
                    if let Some(i) = self.tracked_index(&it.id.key) {
                        if seen != Some(i) {
                            seen = Some(i);
                            self.tracked[i].payload_sent += 1;
                            if *sync {
                                self.tracked[i].sync_sent += 1;
                            }
                        }
                    }
                }
            }
            Message::IHave { items } => {
                for a in items.iter().filter(|a| a.id.space == Space::Info) {
                    if let Some(i) = self.tracked_index(&a.id.key) {
                        self.tracked[i].ihave_sent += 1;
                    }
                }
            }
            Message::Graft { ids } => {
                for id in ids.iter().filter(|id| id.space == Space::Info) {
                    if let Some(i) = self.tracked_index(&id.key) {
                        self.tracked[i].graft_sent += 1;
                    }
                }
            }
            Message::Prune => {
                if let Some(i) = self.cur_tracked {
                    self.tracked[i].prune_sent += 1;
                }
            }
            _ => {}
        }
    }

    /// Counts a payload copy arriving; returns the tracked item it carries
    /// (so that a prune sent in answer is charged to it).
    fn account_received(&mut self, _s: usize, msg: &Message) -> Option<usize> {
        if self.tracked_keys.is_empty() {
            return None;
        }
        let Message::Gossip { items, .. } = msg else {
            return None;
        };
        let mut found = None;
        for it in items.iter().filter(|i| i.id.space == Space::Info) {
            if let Some(i) = self.tracked_index(&it.id.key) {
                self.tracked[i].payload_received += 1;
                found = Some(i);
            }
        }
        found
    }

    fn note_holder(&mut self, idx: usize, s: usize, hops: u32) {
        let now = self.now;
        let t = &mut self.tracked[idx];
        if !t.holders[s] {
            t.holders[s] = true;
            t.count += 1;
        }
        t.max_hops = t.max_hops.max(hops);
        let elapsed = now.since(t.injected).as_micros() as u64;
        t.last_delivery = elapsed;
        let live = t.live.max(1);
        if t.t50.is_none() && t.count * 2 >= live {
            t.t50 = Some(elapsed);
        }
        if t.t99.is_none() && t.count * 100 >= live * 99 {
            t.t99 = Some(elapsed);
        }
        if t.t100.is_none() && t.count >= live {
            t.t100 = Some(elapsed);
        }
    }

    fn note_lww(&mut self, s: usize, key: &str, version: u64, origin: NodeId) -> Result<(), Violation> {
        let prev = self.slots[s].lww.get(key).copied();
        if let Some(p) = prev {
            if (version, origin) <= p {
                return Err(self.violation(
                    Some(s),
                    format!(
                        "last-writer-wins broken for key {key:?}: held ({}, {}), then took ({version}, {origin})",
                        p.0, p.1
                    ),
                ));
            }
        }
        self.slots[s].lww.insert(key.to_string(), (version, origin));
        Ok(())
    }

    fn classify(&self, s: usize, id: &NodeId) -> Link {
        match self.live_slot_of(id) {
            None => Link::Dead,
            Some(o) if self.net.blocked(s, o) => Link::Cross,
            Some(_) => Link::Normal,
        }
    }

    fn on_event(&mut self, s: usize, e: Event) -> Result<(), Violation> {
        match e {
            Event::NeighborUp { id, .. } => {
                if id == self.slots[s].id {
                    return Err(self.violation(Some(s), "node lists itself as neighbour".into()));
                }
                if !self.ids.contains_key(&id) {
                    return Err(self.violation(Some(s), format!("neighbour {id} never existed")));
                }
                match self.classify(s, &id) {
                    Link::Dead => {
                        self.slots[s].dead_nbrs += 1;
                        self.dead_links += 1;
                    }
                    Link::Cross => {
                        self.slots[s].cross_nbrs += 1;
                        self.cross_links += 1;
                    }
                    Link::Normal => {}
                }
            }
            Event::NeighborDown { id, reason } => {
                let class = self.classify(s, &id);
                match class {
                    Link::Dead => {
                        self.slots[s].dead_nbrs = self.slots[s].dead_nbrs.saturating_sub(1);
                        self.dead_links -= 1;
                    }
                    Link::Cross => {
                        self.slots[s].cross_nbrs = self.slots[s].cross_nbrs.saturating_sub(1);
                        self.cross_links -= 1;
                    }
                    Link::Normal => {}
                }
                if reason == DownReason::Failed {
                    match class {
                        Link::Dead => self.stats.true_detections += 1,
                        Link::Cross => self.stats.partition_detections += 1,
                        Link::Normal => self.stats.false_detections += 1,
                    }
                }
            }
            Event::Suspect { id } => {
                if matches!(self.classify(s, &id), Link::Normal) {
                    self.stats.false_suspicions += 1;
                }
            }
            Event::Incident { incident, notify } => {
                let now = self.now;
                let c = self
                    .claims
                    .entry(format!("{}@{}", incident.id, incident.started_ms))
                    .or_insert_with(|| (incident.kind.clone(), BTreeMap::new()));
                for m in &incident.members {
                    c.1.entry(*m).or_insert(now);
                }
                if notify {
                    self.notes.push((now, s, incident));
                } else {
                    self.named.entry(incident.id).or_default().insert(s);
                }
            }
            Event::ItemDelivered { id, hops, .. } => {
                if id.space == Space::Info {
                    self.note_lww(s, &id.key, id.version, id.origin)?;
                    if let Some(i) = self.tracked_index(&id.key) {
                        self.note_holder(i, s, hops);
                    }
                }
            }
        }
        Ok(())
    }

    fn update_deficit(&mut self, s: usize) {
        let slot = &mut self.slots[s];
        let def = match slot.node.as_ref() {
            Some(n) if slot.alive => n.active_len().saturating_sub(slot.dead_nbrs as usize) < self.need,
            _ => false,
        };
        if def != slot.deficient {
            slot.deficient = def;
            if def {
                self.deficient += 1;
            } else {
                self.deficient -= 1;
            }
        }
    }

    /// Recomputes every per-node link classification from scratch (after a
    /// crash or a change of partition).
    fn recount_links(&mut self) {
        let (dead, cross, per) = self.count_links();
        self.dead_links = dead;
        self.cross_links = cross;
        for (s, (d, c)) in per.into_iter().enumerate() {
            self.slots[s].dead_nbrs = d;
            self.slots[s].cross_nbrs = c;
        }
        for s in 0..self.slots.len() {
            self.update_deficit(s);
        }
    }

    fn count_links(&self) -> (i64, i64, Vec<(u32, u32)>) {
        let mut per = vec![(0u32, 0u32); self.slots.len()];
        let (mut dead, mut cross) = (0, 0);
        for (s, slot) in self.slots.iter().enumerate() {
            let Some(node) = slot.node.as_ref().filter(|_| slot.alive) else {
                continue;
            };
            for id in node.active_ids() {
                match self.classify(s, &id) {
                    Link::Dead => {
                        per[s].0 += 1;
                        dead += 1;
                    }
                    Link::Cross => {
                        per[s].1 += 1;
                        cross += 1;
                    }
                    Link::Normal => {}
                }
            }
        }
        (dead, cross, per)
    }

    // ---------------------------------------------------------- invariants

    fn maybe_full_check(&mut self) -> Result<(), Violation> {
        if self.now >= self.next_full_check {
            self.next_full_check = self.now.plus(FULL_CHECK_EVERY);
            self.full_check()?;
            if self.p.progress {
                eprintln!(
                    "[{:>8.1} s virtual, {:>7.1} s wall] live {} deficient {} dead links {} cross links {} events {} queue {}",
                    self.now.as_micros() as f64 / 1e6,
                    self.wall.elapsed().as_secs_f64(),
                    self.live,
                    self.deficient,
                    self.dead_links,
                    self.cross_links,
                    self.stats.events,
                    self.queue.len()
                );
            }
        }
        Ok(())
    }

    /// The O(N) sweep: nobody lists itself, the incremental link accounting
    /// matches a recount, no info key went back to an older version, and no
    /// link stayed one-sided for long between running, reachable nodes.
    pub fn full_check(&mut self) -> Result<(), Violation> {
        self.stats.full_checks += 1;
        let now = self.now;
        let lists: Vec<Option<Vec<NodeId>>> =
            self.slots.iter().map(|x| x.node.as_ref().filter(|_| x.alive).map(|n| n.active_ids())).collect();
        let mut seen_asym = Vec::new();
        for (s, list) in lists.iter().enumerate() {
            let Some(list) = list else { continue };
            let me = self.slots[s].id;
            if list.contains(&me) {
                return Err(self.violation(Some(s), "node lists itself as neighbour".into()));
            }
            if list.len() > self.cfg.max_active {
                return Err(self.violation(Some(s), format!("{} active neighbours", list.len())));
            }
            if let Some(node) = self.slots[s].node.as_ref() {
                // Every table enforces its bound where it grows, so a broken
                // bound persists and a sweep a second catches it; checking
                // after every event would cost a tenth of the run.
                if let Err(m) = node.table_sizes().check(node.config()) {
                    return Err(self.violation(Some(s), format!("table bound broken: {m}")));
                }
                for (key, item) in node.info_items() {
                    if let Some(&(v, o)) = self.slots[s].lww.get(key) {
                        if (item.version, item.origin) < (v, o) {
                            return Err(self.violation(
                                Some(s),
                                format!("key {key:?} went back from ({v}, {o}) to ({}, {})", item.version, item.origin),
                            ));
                        }
                    }
                }
            }
            if self.slots[s].paused_until > now.as_micros() {
                continue;
            }
            for id in list {
                let Some(o) = self.live_slot_of(id) else {
                    continue;
                };
                if self.net.blocked(s, o) || self.slots[o].paused_until > now.as_micros() {
                    continue;
                }
                let back = lists[o].as_ref().is_some_and(|l| l.contains(&me));
                if !back {
                    seen_asym.push((s as u32, o as u32));
                }
            }
        }
        let mut next = HashMap::new();
        for pair in seen_asym {
            let since = self.asym.get(&pair).copied().unwrap_or(now);
            if now.since(since) > ASYMMETRY_GRACE {
                return Err(self.violation(
                    Some(pair.0 as usize),
                    format!("link to slot {} one-sided for {} ms", pair.1, now.since(since).as_millis()),
                ));
            }
            next.insert(pair, since);
        }
        self.asym = next;
        let (dead, cross, _) = self.count_links();
        if (dead, cross) != (self.dead_links, self.cross_links) {
            return Err(self.violation(
                None,
                format!(
                    "simulator link accounting drifted: counted {dead} dead / {cross} cross, tracked {} / {}",
                    self.dead_links, self.cross_links
                ),
            ));
        }
        Ok(())
    }

    // ------------------------------------------------------------ queries

    fn find(&mut self, mut x: usize) -> usize {
        while self.uf[x] as usize != x {
            let p = self.uf[x] as usize;
            self.uf[x] = self.uf[p];
            x = p;
        }
        x
    }

    /// Number of connected components among live nodes, counting only
    /// links within a segment when `by_segment`, else every link between
    /// live nodes. Links count in either direction.
    pub fn components(&mut self, by_segment: bool) -> usize {
        self.components_where(|sim, s| sim.slots[s].alive, |sim, s, o| !(by_segment && sim.net.blocked(s, o)))
    }

    /// Components of the nodes `member` admits, joined by the links from
    /// one of them to a live node that `link` admits (in either direction).
    fn components_where(
        &mut self,
        member: impl Fn(&Sim, usize) -> bool,
        link: impl Fn(&Sim, usize, usize) -> bool,
    ) -> usize {
        let n = self.slots.len();
        self.uf.clear();
        self.uf.extend(0..n as u32);
        let mut comps = (0..n).filter(|&s| member(self, s)).count();
        for s in 0..n {
            if !member(self, s) {
                continue;
            }
            let Some(ids) = self.slots[s].node.as_ref().map(|n| n.active_ids()) else {
                continue;
            };
            for id in ids {
                let Some(o) = self.live_slot_of(&id) else {
                    continue;
                };
                if !link(self, s, o) {
                    continue;
                }
                let (a, b) = (self.find(s), self.find(o));
                if a != b {
                    self.uf[a] = b as u32;
                    comps -= 1;
                }
            }
        }
        comps
    }

    /// Whether the live nodes form one network.
    pub fn connected(&mut self) -> bool {
        self.components(false) <= 1
    }

    /// `agg` bytes (encoded) and messages sent since the first call.
    pub(crate) fn agg_sent(&mut self) -> (u64, u64) {
        *self.agg_sent.get_or_insert((0, 0))
    }

    /// `learn` bytes (encoded) and messages sent since the first call.
    pub(crate) fn learn_sent(&mut self) -> (u64, u64) {
        *self.learn_sent.get_or_insert((0, 0))
    }

    /// Gives each slot the label `rack=r{slot % racks}` (from its next
    /// start on).
    pub(crate) fn set_racks(&mut self, racks: usize) {
        self.labels = (0..self.slots.len())
            .map(|s| if racks == 0 { Vec::new() } else { vec![("rack".to_string(), format!("r{}", s % racks))] })
            .collect();
    }

    /// Slot `s`'s rack, if it has one.
    pub(crate) fn label_of(&self, s: usize) -> Option<&str> {
        self.labels.get(s)?.first().map(|(_, v)| v.as_str())
    }

    /// Messages sent so far, by kind.
    pub fn sent_by_kind(&self) -> Vec<u64> {
        self.stats.sent.clone()
    }

    /// The id of slot `s`'s current incarnation.
    pub fn id_of(&self, s: usize) -> NodeId {
        self.slots[s].id
    }

    /// The live slot running `id`.
    pub fn slot_of(&self, id: &NodeId) -> Option<usize> {
        self.live_slot_of(id)
    }

    /// Live neighbours of slot `s` (dead ones it still lists excluded).
    pub fn live_degree(&self, s: usize) -> usize {
        let slot = &self.slots[s];
        slot.node.as_ref().map_or(0, |n| n.active_len().saturating_sub(slot.dead_nbrs as usize))
    }
}
