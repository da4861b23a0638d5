//! Distributed jobs: work tokens that diffuse by energy toward spare
//! capacity, a self-healing hop gradient that carries reports back to the
//! job's home, redundant execution with majority voting, replication of the
//! job record to heirs that take over when the home dies.
//!
//! Roles a node can play for a job, all at once:
//! - *home*: holds the record, issues tokens (units × redundancy), counts
//!   votes, re-issues units whose lease lapsed, asks the driver to merge;
//! - *heir*: holds a replica of the record and of the decisions; takes over
//!   if the home dies;
//! - *worker*: takes tokens when it has a free slot, passes them on (with
//!   less energy) when it has not, fetches the chunk, has the driver run the
//!   kernel, and reports holdings and results toward the home.
//!
//! Files: `types` (what goes on the wire and to the driver), `home`,
//! `heir`, `worker`, `gradient` (neighbours' load, routes toward homes,
//! strikes) and `summary` (published summaries, stepping down, a job's end
//! here). This file holds the engine's state, its tick and its bounds.

use crate::attest::{Appointment, Confirmation, Vote};
use crate::blobs::{BlobIndex, BlobKind, Hash};
use crate::energy::EnergyModel;
use crate::id::NodeId;
use crate::rng::Rng;
use crate::time::Time;
use crate::wire::{Message, PeerInfo};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// Job tuning knobs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobConfig {
    /// Kernels this node runs at once.
    pub worker_slots: usize,
    /// Tokens queued here beyond the running ones before neighbours are told
    /// there is no room.
    pub queue_room: usize,
    /// How often holdings and results are reported toward homes.
    pub report_interval: Duration,
    /// A token not reported by anyone for this long is issued again.
    pub lease: Duration,
    /// How often load and gradient are advertised to neighbours.
    pub load_interval: Duration,
    /// A neighbour's gradient entry expires after this long.
    pub gradient_ttl: Duration,
    /// Default energy of work tokens (reach in hops as for items).
    pub default_energy: f64,
    /// Heirs holding a replica of each job record, among the neighbours.
    pub heirs: usize,
    /// Heirs beyond the neighbourhood (from the passive view): a failure
    /// that takes a home with its neighbours (a rack, a partition) leaves
    /// them, to take over and to confirm another heir's result. At most
    /// [`MAX_HEIRS`] heirs in all.
    pub far_heirs: usize,
    /// A running job's summary is re-diffused at least this often.
    pub summary_keepalive: Duration,
    /// An heir takes over when it has heard nothing of a running job for
    /// this long (plus its rank × `heir_stagger`).
    pub heir_silence: Duration,
    /// Extra wait per heir rank before taking over.
    pub heir_stagger: Duration,
    /// Most jobs a node homes or serves as heir at once.
    pub max_jobs: usize,
    /// Most units in one job.
    pub max_units: usize,
    /// Longest a replica may stay held (its lease renewed by reports)
    /// without a result before it is issued again.
    pub max_hold: Duration,
    /// Fan-in of the merge tree of jobs homed here (see [`MergeTree`]):
    /// partials fold in combine steps of this many on the nodes holding
    /// them, and the home merges at most this many. 0: the home merges
    /// every unit's partial itself, folding each as it is decided (best
    /// when every node shares the same few cores: a tree adds a decode
    /// and an encode of every partial, and the last steps start only
    /// when their inputs are all decided). Up to `MAX_MERGE_FAN_IN`.
    pub merge_fan_in: u16,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            worker_slots: 2,
            queue_room: 2,
            report_interval: Duration::from_millis(250),
            lease: Duration::from_millis(900),
            load_interval: Duration::from_millis(250),
            gradient_ttl: Duration::from_millis(1200),
            default_energy: 100.0,
            heirs: 5,
            far_heirs: 3,
            summary_keepalive: Duration::from_millis(1000),
            heir_silence: Duration::from_millis(2500),
            heir_stagger: Duration::from_millis(1500),
            max_jobs: 64,
            max_units: 65_536,
            max_hold: Duration::from_secs(10),
            merge_fan_in: 16,
        }
    }
}

mod gradient;
mod heir;
mod home;
mod summary;
mod tree;
mod types;
mod worker;

// What the engine sends is defined with the rest of the wire format.
pub use crate::wire::jobs::{
    DatasetTag, Decision, GradientEntry, JobRecordPage, JobReport, PartialRef, UnitRef, UnitResult, WorkToken,
};
pub use crate::wire::BlobRef;
// The pages the engine sends are sized by the wire's bounds.
pub use crate::wire::limits::{
    DECISIONS_PER_PAGE, HOLDING_PER_REPORT, MAX_HEIRS, MAX_MERGE_FAN_IN, RESULTS_PER_REPORT, UNITS_PER_PAGE,
};
pub use tree::{combine_name, MergeTree};
pub use types::*;

/// Context the node lends the engine for one call.
pub struct Ctx<'a> {
    /// Current time.
    pub now: Time,
    /// The wall clock (signatures).
    pub wall: Time,
    /// This node.
    pub me: NodeId,
    /// This node's key pair (reports are signed by their worker).
    pub identity: &'a crate::identity::Identity,
    /// The cluster (covered by signatures).
    pub cluster: &'a str,
    /// This node's HTTP address.
    pub http: SocketAddr,
    /// Active neighbours (id, UDP address).
    pub neighbors: Vec<(NodeId, SocketAddr)>,
    /// The node's random generator.
    pub rng: &'a mut Rng,
    /// Messages to send.
    pub sends: Vec<(PeerInfo, Message)>,
    /// Work for the driver.
    pub outputs: Vec<JobOutput>,
    /// Job summaries to diffuse (key = job id).
    pub summaries: Vec<JobSummary>,
    /// The blob index.
    pub blobs: &'a mut BlobIndex,
    /// Energy model.
    pub energy: EnergyModel,
    /// Nodes whose results disagreed with a majority.
    pub penalties: Vec<NodeId>,
    /// Blobs to look for (`blob_want`): no known holder served them.
    pub wants: Vec<Hash>,
    /// Messages refused, by reason (the node counts them).
    pub rejected: Vec<&'static str>,
    /// The node at an HTTP address, if this node knows it (from the
    /// neighbour lists it learned) and has not seen it die.
    pub peer_at: &'a dyn Fn(SocketAddr) -> Option<PeerInfo>,
    /// The other live nodes keeping a copy of a blob of this node's own
    /// files (custody, `--source-copies`).
    pub keepers_of: &'a dyn Fn(&str) -> Vec<PeerInfo>,
    /// The node's Lifeguard local-health multiplier (0: healthy): a home
    /// that finds itself slow waits longer before it calls a lease lapsed.
    pub local_health: u32,
}

#[derive(Clone, Debug)]
struct Rep {
    done: bool,
    last_seen: Time,
    /// When this replica's token was issued.
    issued: Time,
}

#[derive(Clone, Debug, Default)]
struct UnitState {
    reps: Vec<Rep>,
    /// Results by worker: digest, where it is held, the worker's vote.
    results: BTreeMap<NodeId, (String, SocketAddr, Option<crate::identity::Proof>)>,
    /// The decision: digest, holders, the votes that decided it.
    decided: Option<(String, Vec<SocketAddr>, Vec<Vote>)>,
    reissues: u32,
    /// When the home last asked the network who holds the unit's chunk.
    searched: Option<Time>,
    /// A speculative replica was issued for it (once per unit).
    speculated: bool,
}

/// A home asks again who holds a chunk at most this often.
const SEARCH_EVERY: Duration = Duration::from_secs(2);

/// A unit whose lease lapsed this many times without any result is given
/// up: no live node could run it (its input chunk is probably lost).
const MAX_UNIT_REISSUES: u32 = 40;

#[derive(Clone, Debug)]
struct HomeJob {
    /// What the job is: fixed once it starts, apart from the heirs.
    spec: HomeStart,
    state: JobState,
    merging: bool,
    /// The merge tree over the units; `unit_state` has one entry per
    /// node of it (units, then combine steps).
    tree: MergeTree,
    unit_state: Vec<UnitState>,
    /// Units (leaves) decided.
    decided: u32,
    version: u64,
    last_summary: Time,
    summary_dirty: bool,
    undelivered: Vec<u32>,
    result: Option<MergedResult>,
    result_holders: Vec<SocketAddr>,
    error: Option<String>,
    stats: JobStats,
    workers: BTreeSet<NodeId>,
    record_dirty: bool,
    last_record: Time,
    /// Other nodes that may be home of this job too, and that this home
    /// steps down for when they are further along: the heirs it appointed
    /// and the home (and sibling heirs) it took over from. Anyone else
    /// claiming the job is ignored.
    yield_to: BTreeSet<NodeId>,
    /// The creator's appointment of heirs (signed by the creator).
    appointment: Option<Appointment>,
    /// Heirs' confirmations of this home's result.
    confirmations: Vec<Confirmation>,
    /// A home other than the creator merged: when it last asked its heirs
    /// to confirm the result, and how many times.
    confirm_asked: Option<(Time, u32)>,
    /// How long the latest replicas took from issue to result, in ms (at
    /// most [`TOOK_KEPT`]): what a straggler is measured against.
    took: VecDeque<u64>,
}

/// Replica durations a home keeps to judge stragglers by.
const TOOK_KEPT: usize = 64;
/// Once this share of a job's units is decided (per mille), an undecided
/// unit whose outstanding replica has run [`STRAGGLER_FACTOR`] times the
/// median replica's time gets one more replica elsewhere (a speculative
/// re-run, as MapReduce's backup tasks): one slow or overloaded node must
/// not hold the whole job's end.
const SPECULATE_AFTER_PERMILLE: usize = 900;
/// How many median replica times make a straggler.
const STRAGGLER_FACTOR: u32 = 3;
/// Never call a replica a straggler sooner than this.
const STRAGGLER_FLOOR: Duration = Duration::from_millis(200);

/// What a home starts a job with, whether submitted here or taken over.
#[derive(Clone, Debug)]
struct HomeStart {
    kind: String,
    params: serde_json::Value,
    units: Vec<UnitRef>,
    redundancy: u8,
    energy: f64,
    heirs: Vec<PeerInfo>,
    /// When the job was created (the creator's wall clock, µs).
    created: u64,
    created_at: Time,
    /// The dataset snapshot the units are, for a job over a dataset.
    dataset: Option<DatasetTag>,
    /// The merge tree's fan-in (0: flat).
    fan_in: u16,
}

impl HomeJob {
    /// A running job homed here from `now`: nothing decided, merged or
    /// summarised yet, no one to yield to and no appointment.
    fn start(s: HomeStart, now: Time) -> HomeJob {
        let tree = MergeTree::new(s.units.len() as u32, s.fan_in);
        HomeJob {
            unit_state: vec![UnitState::default(); tree.total() as usize],
            tree,
            spec: s,
            state: JobState::Running,
            merging: false,
            decided: 0,
            version: 1,
            last_summary: now,
            summary_dirty: true,
            undelivered: Vec::new(),
            result: None,
            result_holders: Vec::new(),
            error: None,
            stats: JobStats::default(),
            workers: BTreeSet::new(),
            record_dirty: false,
            last_record: now,
            yield_to: BTreeSet::new(),
            took: VecDeque::new(),
            appointment: None,
            confirmations: Vec::new(),
            confirm_asked: None,
        }
    }
}

/// Results a home records for one unit at most (each from a distinct
/// worker; honest runs need at most 2r + 1 = 15).
const MAX_UNIT_RESULTS: usize = 16;

/// Finished jobs a home remembers (and keeps the results of pinned).
const MAX_FINISHED_HOMES: usize = 256;

/// Units of job records held as heir, over all jobs.
const MAX_HEIR_UNITS: usize = 1 << 18;

/// Nodes a home remembers as legitimate other homes of a job.
const MAX_YIELD_TO: usize = 32;

#[derive(Clone, Debug)]
struct HeirJob {
    page0: Option<JobRecordPage>,
    units: BTreeMap<u32, UnitRef>,
    decisions: BTreeMap<u32, Decision>,
    rank: usize,
    last_heard: Time,
    version_seen: u64,
    final_state: bool,
    /// When this heir saw the home die (it was a neighbour), if it did.
    home_gone_at: Option<Time>,
    /// The creator's latest appointment of heirs.
    appointment: Option<Appointment>,
    /// A result claimed by a home other than the creator, being checked.
    claim: Option<Claim>,
}

/// A result an heir was asked to confirm, and where its check stands.
#[derive(Clone, Debug)]
struct Claim {
    hash: Hash,
    digest: String,
    home: PeerInfo,
    /// Merging the decided partials to compare.
    merging: bool,
    /// Confirmed (sent again if the home asks again).
    confirmed: Option<Confirmation>,
}

/// A home other than the creator asks its heirs to confirm its result this
/// often until one does.
const CONFIRM_EVERY: Duration = Duration::from_secs(2);
/// Result holders a summary lists at most.
const MAX_SUMMARY_HOLDERS: usize = 16;
/// Rounds of asking before a home that took over gives up on confirmation.
const MAX_CONFIRM_ASKS: u32 = 60;

/// After seeing the home die, an heir of rank r takes over after r times
/// this unless a new home's summary arrived meanwhile (it diffuses to the
/// old home's neighbours, the heirs, in tens of milliseconds).
const HEIR_GONE_STAGGER: Duration = Duration::from_millis(300);

/// A neighbour takes a first replica of this node's own chunks (a steal)
/// only on a load report that arrived this long after those tokens did.
/// When a dataset job starts, every owner gets its tokens at once, and
/// every neighbour's last report still says idle: trusted, those reports
/// made each owner of a simulated 50-node job give away 12 of its 21 units
/// at once and take 12 others that needed a transfer (54% efficiency).
/// A neighbour that got work meanwhile has said so (it reports becoming
/// busy at once); one that is truly idle keeps saying so every
/// `load_interval`.
const STEAL_SETTLE: Duration = Duration::from_millis(20);

#[derive(Clone, Debug)]
enum Slot {
    Fetching,
    Executing,
}

#[derive(Clone, Debug, Default)]
struct NeighborLoad {
    free: u16,
    room: u16,
    /// When this report arrived.
    at: Time,
    dists: BTreeMap<JobId, (u8, Time)>,
}

/// All job state of one node.
#[derive(Clone, Debug, Default)]
pub struct JobEngine {
    cfg: JobConfig,
    homes: BTreeMap<JobId, HomeJob>,
    heirs: BTreeMap<JobId, HeirJob>,
    stepped_down: u64,
    queue: VecDeque<WorkToken>,
    running: BTreeMap<(JobId, u32, u8), (WorkToken, Slot)>,
    taken: BTreeMap<JobId, BTreeSet<u32>>,
    /// When each job with worker-side state (`taken`, `results`) was last
    /// active here.
    worker_jobs: BTreeMap<JobId, Time>,
    /// Most results ever recorded for one unit (kept as they are added:
    /// scanning every unit after every step would cost the simulator).
    max_unit_results: usize,
    results: BTreeMap<JobId, Vec<UnitResult>>,
    final_jobs: BTreeMap<JobId, Time>,
    loads: BTreeMap<NodeId, NeighborLoad>,
    next_report: Time,
    next_load: Time,
    last_load_sent: (u16, u16),
    last_load_at: Time,
    /// The neighbours the last load went to: a new one is told at once.
    load_told: BTreeSet<NodeId>,
    /// Since when first replicas of this node's own chunks have waited in
    /// its queue (None: none wait). Only a neighbour's report newer than
    /// this by [`STEAL_SETTLE`] shows it idle for a steal.
    local_since: Option<Time>,
    reputation: BTreeMap<NodeId, Reputation>,
}

/// How settled a job's state is, for choosing between two homes of it.
fn settle_rank(s: JobState) -> u8 {
    match s {
        JobState::Running => 0,
        JobState::Failed | JobState::Cancelled => 1,
        JobState::Done => 2,
    }
}

/// The node that created a job: the first 16 hex digits of its id.
pub fn job_creator(job: &str) -> Option<NodeId> {
    job.get(..16)?.parse().ok()
}

/// Nodes whose reputation is tracked at most.
const MAX_REPUTATION: usize = 4096;
/// Accusers remembered per node.
const MAX_ACCUSERS: usize = 8;

/// What is known of a node's disagreements with majorities.
#[derive(Clone, Debug, Default)]
struct Reputation {
    /// Strikes this node gave it itself (as a home).
    own: u32,
    /// Strikes other homes gave it, by accuser.
    others: BTreeMap<NodeId, u32>,
}

/// Results of a node with this many strikes are ignored by homes.
pub const IGNORE_AFTER_STRIKES: u32 = 3;
/// Tokens are not passed to a neighbour with this many strikes.
pub const AVOID_AFTER_STRIKES: u32 = 1;

const MAX_QUEUE_HARD: usize = 256;
/// Largest room a node advertises (own plus what lies beyond).
const MAX_ADVERTISED_ROOM: usize = 64;
/// Most recent results a worker re-sends per job and report round.
const MAX_RESULTS_PER_REPORT: usize = 100;
const MAX_DIST: u8 = 32;

impl JobEngine {
    /// An engine with these knobs.
    pub fn new(cfg: JobConfig) -> JobEngine {
        JobEngine { cfg, ..Default::default() }
    }

    /// The knobs.
    pub fn config(&self) -> &JobConfig {
        &self.cfg
    }

    /// Kernels running: combine steps of merge trees do not count (they
    /// mostly wait for their inputs to arrive, then fold for a moment, and
    /// have a lane of their own: [`Self::combine_lane_free`]).
    fn kernels_running(&self) -> usize {
        self.running.values().filter(|(t, _)| t.inputs.is_empty()).count()
    }

    fn free_slots(&self) -> usize {
        self.cfg.worker_slots.saturating_sub(self.kernels_running())
    }

    /// Whether another combine step may start here (at most `worker_slots`
    /// at once, besides the kernels).
    fn combine_lane_free(&self) -> bool {
        self.running.len() - self.kernels_running() < self.cfg.worker_slots
    }

    fn room(&self) -> usize {
        (self.cfg.worker_slots + self.cfg.queue_room).saturating_sub(self.kernels_running() + self.queue.len())
    }

    /// The room this node advertises: its own, plus the average of what its
    /// neighbours advertise, up to `MAX_ADVERTISED_ROOM`. Spare capacity
    /// beyond the first hop thus shows up, and a node whose own slots are
    /// full still takes tokens to pass on toward idle nodes further away
    /// (without it, work would never travel more than one hop from the
    /// node holding it). The neighbours' average counts in full: at half,
    /// capacity two hops away would show up as a quarter, the home's
    /// neighbours would pass on little, and the home, computing what could
    /// not leave, would set the pace. An all-idle network advertises the
    /// cap; a token sent too far just waits in a queue until its lease
    /// lapses and the home issues it again (4 % of tokens at 50 nodes).
    fn advertised_room(&self, ctx: &Ctx<'_>) -> usize {
        let own = self.room();
        let fresh: Vec<usize> = ctx
            .neighbors
            .iter()
            .filter(|(id, _)| self.strikes(*id) < AVOID_AFTER_STRIKES)
            .filter_map(|(id, _)| self.loads.get(id).map(|l| l.room as usize))
            .collect();
        if fresh.is_empty() || self.queue.len() >= MAX_QUEUE_HARD / 2 {
            return own;
        }
        let avg = fresh.iter().sum::<usize>() / fresh.len();
        (own + avg).min(MAX_ADVERTISED_ROOM)
    }

    /// Tokens queued and running here.
    pub fn load(&self) -> (usize, usize) {
        (self.queue.len(), self.running.len())
    }

    /// Jobs this node is home of.
    pub fn home_jobs(&self) -> usize {
        self.homes.len()
    }

    /// Whether this node is home of a job.
    pub fn is_home(&self, job: &str) -> bool {
        self.homes.contains_key(job)
    }

    /// Units decided and units in all, of a job homed here (as of now: the
    /// published summary lags by up to its publishing interval).
    pub fn home_progress(&self, job: &str) -> Option<(u32, u32)> {
        self.homes.get(job).map(|h| (h.decided, h.spec.units.len() as u32))
    }

    /// Each unit of a job homed here: its chunk, and the workers whose
    /// results decided it (none while it is undecided).
    pub fn home_unit_workers(&self, job: &str) -> Option<Vec<(Hash, Vec<NodeId>)>> {
        let h = self.homes.get(job)?;
        let workers = |i: usize| -> Vec<NodeId> {
            let Some((w, _, votes)) = h.unit_state.get(i).and_then(|us| us.decided.as_ref()) else {
                return Vec::new();
            };
            let by: Vec<NodeId> =
                h.unit_state[i].results.iter().filter(|(_, (d, ..))| d == w).map(|(n, _)| *n).collect();
            // A home that took the job over knows a decision by its votes.
            if by.is_empty() {
                votes.iter().map(|v| v.worker).collect()
            } else {
                by
            }
        };
        Some(h.spec.units.iter().enumerate().map(|(i, u)| (u.hash.clone(), workers(i))).collect())
    }

    /// Periodic work: leases, reports, load and gradient adverts, heirs.
    pub fn tick(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        // Home: re-issue lapsed leases, push decisions to heirs, summaries.
        let ids: Vec<JobId> = self.homes.keys().cloned().collect();
        // Leases stretch with the home's own slowness, as Lifeguard's
        // suspicion timeouts do: a home whose ticks run late (an overloaded
        // machine) hears reports late too, and re-issuing every unit then
        // doubles the load that made it slow.
        let lease = self.cfg.lease * (1 + ctx.local_health);
        for id in &ids {
            let mut lapsed = Vec::new();
            if let Some(h) = self.homes.get(id.as_str()) {
                if h.state.is_final() {
                    if h.summary_dirty && now.since(h.last_summary) >= Duration::from_millis(200) {
                        self.publish(ctx, id);
                    }
                    continue;
                }
                for (u, us) in h.unit_state.iter().enumerate() {
                    if us.decided.is_some() {
                        continue;
                    }
                    for (r, rep) in us.reps.iter().enumerate() {
                        // A holder renews the lease with its reports, up to
                        // `max_hold`: a node that claims to hold a token
                        // and never returns its result (a made-up holder)
                        // delays the unit by that much at most.
                        let silent = now.since(rep.last_seen) >= lease;
                        let held_too_long = now.since(rep.issued) >= self.cfg.max_hold;
                        if !rep.done && (silent || held_too_long) {
                            lapsed.push((u as u32, r as u8));
                        }
                    }
                }
            }
            let mut give_up = None;
            for (u, r) in lapsed {
                if self.homes.get(id.as_str()).is_some_and(|h| h.tree.is_combine(u)) {
                    self.combine_lapsed(ctx, id, u, r);
                    continue;
                }
                if let Some(h) = self.homes.get_mut(id.as_str()) {
                    h.stats.reissued += 1;
                    let chunk = h.spec.units.get(u as usize).map(|x| x.hash.clone());
                    if let Some(us) = h.unit_state.get_mut(u as usize) {
                        us.reissues += 1;
                        if us.reissues > MAX_UNIT_REISSUES && us.results.is_empty() {
                            give_up = Some(u);
                        }
                        // A lease lapsed: its worker died, or nobody it
                        // tried could serve the chunk (every holder the
                        // home knows may have died with it). Ask the
                        // network who holds it; answers reach `holder_added`
                        // before the next re-issue.
                        if us.searched.is_none_or(|t| now.since(t) >= SEARCH_EVERY) {
                            us.searched = Some(now);
                            if let Some(c) = chunk.filter(|c| !ctx.wants.contains(c)) {
                                ctx.wants.push(c);
                            }
                        }
                    }
                }
                self.reissue(ctx, id, u, r);
            }
            self.speculate(ctx, id);
            if let Some(u) = give_up {
                if let Some(h) = self.homes.get_mut(id.as_str()) {
                    let chunk = h.spec.units.get(u as usize).map(|x| x.hash.clone()).unwrap_or_default();
                    h.state = JobState::Failed;
                    h.error = Some(format!(
                        "unit {u} could not be run {MAX_UNIT_REISSUES} times: no live node serves its input chunk {chunk}"
                    ));
                    h.stats.elapsed_ms = Some(now.since(h.spec.created_at).as_millis() as u64);
                    h.summary_dirty = true;
                }
                self.finalize_local(ctx, id);
                self.publish(ctx, id);
                continue;
            }
            if self
                .homes
                .get(id.as_str())
                .is_some_and(|h| h.record_dirty && now.since(h.last_record) >= Duration::from_millis(500))
            {
                if let Some(h) = self.homes.get_mut(id.as_str()) {
                    h.record_dirty = false;
                    h.last_record = now;
                }
                self.send_record(ctx, id);
            }
            let (due, heirs, decisions) = match self.homes.get_mut(id.as_str()) {
                Some(h) => {
                    let due = h.summary_dirty && now.since(h.last_summary) >= Duration::from_millis(200)
                        || now.since(h.last_summary) >= self.cfg.summary_keepalive;
                    let decisions: Vec<Decision> = h
                        .undelivered
                        .drain(..)
                        .filter_map(|u| {
                            h.unit_state.get(u as usize)?.decided.as_ref().map(|(d, hs, votes)| Decision {
                                unit: u,
                                digest: d.clone(),
                                holders: hs.iter().take(crate::wire::PAGE_HOLDER_ADDRS).copied().collect(),
                                votes: votes.clone(),
                            })
                        })
                        .collect();
                    (due, home::heir_targets(h, ctx.me), decisions)
                }
                None => continue,
            };
            for page in decisions.chunks(DECISIONS_PER_PAGE) {
                for heir in &heirs {
                    ctx.sends.push((*heir, Message::JobDecided { job: id.clone(), decisions: page.to_vec() }));
                }
            }
            if self.confirm_due(ctx, id) {
                self.ask_confirmation(ctx, id);
            }
            if due {
                self.publish(ctx, id);
            }
        }
        // Heirs: take over from a silent home.
        let due: Vec<JobId> =
            self.heirs.iter().filter(|(_, h)| self.heir_due(ctx, h, false)).map(|(k, _)| k.clone()).collect();
        for id in due {
            self.take_over(ctx, &id);
        }
        self.heirs.retain(|_, h| !(h.final_state && now.since(h.last_heard) > Duration::from_secs(60)));
        // Worker: report holdings and results toward homes.
        if now >= self.next_report {
            self.next_report = now.plus(self.cfg.report_interval);
            let jobs: BTreeSet<JobId> = self
                .queue
                .iter()
                .map(|t| t.job.clone())
                .chain(self.running.keys().map(|k| k.0.clone()))
                .chain(self.results.keys().cloned())
                .collect();
            for j in jobs {
                self.report_job(ctx, &j);
            }
        }
        // Load and gradient to neighbours.
        self.advertise_load(ctx, false);
        // Expire stale gradient entries.
        let ttl = self.cfg.gradient_ttl;
        for l in self.loads.values_mut() {
            l.dists.retain(|_, (_, t)| now.since(*t) < ttl * 4);
        }
        self.schedule(ctx);
    }

    /// Sizes of the engine's tables, for bounds checks.
    pub fn sizes(&self) -> JobTableSizes {
        JobTableSizes {
            homes: self.homes.len(),
            running_homes: self.homes.values().filter(|h| !h.state.is_final()).count(),
            unit_results: self.max_unit_results,
            heirs: self.heirs.len(),
            heir_units: self.heirs.values().map(|h| h.units.len()).sum(),
            heir_decisions: self.heirs.values().map(|h| h.decisions.len()).sum(),
            queue: self.queue.len(),
            running: self.running.len(),
            worker_jobs: self.worker_jobs.len().max(self.taken.len()).max(self.results.len()),
            taken_per_job: self.taken.values().map(|t| t.len()).max().unwrap_or(0),
            results_per_job: self.results.values().map(|r| r.len()).max().unwrap_or(0),
            final_jobs: self.final_jobs.len(),
            reputation: self.reputation.len(),
            accusers: self.reputation.values().map(|r| r.others.len()).max().unwrap_or(0),
            gradient: self.loads.values().map(|l| l.dists.len()).max().unwrap_or(0),
            loads: self.loads.len(),
        }
    }
}

/// Sizes of the job engine's tables (all bounded; the simulator checks
/// them in every invariant sweep).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct JobTableSizes {
    /// Jobs homed here, finished ones included.
    pub homes: usize,
    /// Of those, running.
    pub running_homes: usize,
    /// Most results recorded for one unit of a job homed here.
    pub unit_results: usize,
    /// Job records held as heir.
    pub heirs: usize,
    /// Units of those records.
    pub heir_units: usize,
    /// Decisions held as heir.
    pub heir_decisions: usize,
    /// Tokens queued.
    pub queue: usize,
    /// Tokens running.
    pub running: usize,
    /// Jobs with worker-side state.
    pub worker_jobs: usize,
    /// Most units taken for one job.
    pub taken_per_job: usize,
    /// Most results waiting to be reported for one job.
    pub results_per_job: usize,
    /// Jobs known to be final.
    pub final_jobs: usize,
    /// Nodes with a reputation.
    pub reputation: usize,
    /// Most accusers remembered for one node.
    pub accusers: usize,
    /// Most gradient entries of one neighbour.
    pub gradient: usize,
    /// Neighbours' load adverts.
    pub loads: usize,
}

impl JobTableSizes {
    /// Each table against its bound: (name, size, bound).
    pub fn bounds(&self, cfg: &JobConfig, max_neighbours: usize) -> [(&'static str, usize, usize); 16] {
        [
            ("job_homes", self.homes, cfg.max_jobs + MAX_FINISHED_HOMES + 1),
            ("job_running_homes", self.running_homes, cfg.max_jobs + cfg.max_jobs * 4),
            ("job_unit_results", self.unit_results, MAX_UNIT_RESULTS),
            ("job_heirs", self.heirs, cfg.max_jobs * 4),
            ("job_heir_units", self.heir_units, MAX_HEIR_UNITS + UNITS_PER_PAGE),
            ("job_heir_decisions", self.heir_decisions, MAX_HEIR_UNITS + 64),
            // Tokens from neighbours, plus what this node's own jobs issue.
            ("job_queue", self.queue, MAX_QUEUE_HARD + (cfg.max_jobs * 5) * cfg.max_units * 15),
            // Kernels, plus as many combine steps.
            ("job_running", self.running, 2 * cfg.worker_slots),
            ("job_worker_jobs", self.worker_jobs, cfg.max_jobs * 4),
            ("job_taken_per_job", self.taken_per_job, cfg.max_units),
            ("job_results_per_job", self.results_per_job, 4 * MAX_RESULTS_PER_REPORT),
            ("job_final", self.final_jobs, 4096),
            ("job_reputation", self.reputation, MAX_REPUTATION),
            ("job_accusers", self.accusers, MAX_ACCUSERS),
            ("job_gradient", self.gradient, 4 * cfg.max_jobs),
            ("job_loads", self.loads, max_neighbours),
        ]
    }
}

/// One engine and what a node lends it, to test one role at a time.
#[cfg(test)]
pub(crate) mod testkit;
