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
    /// Heirs holding a replica of each job record.
    pub heirs: usize,
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
            summary_keepalive: Duration::from_millis(1000),
            heir_silence: Duration::from_millis(2500),
            heir_stagger: Duration::from_millis(1500),
            max_jobs: 64,
            max_units: 65_536,
            max_hold: Duration::from_secs(10),
        }
    }
}

/// One unit of work for one replica: what to run, on which chunk, for whom.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WorkToken {
    /// Job id.
    pub job: String,
    /// Unit index (input order).
    pub unit: u32,
    /// Replica number.
    pub replica: u8,
    /// The chunk to process.
    pub chunk: Hash,
    /// Its size in bytes.
    pub size: u64,
    /// HTTP addresses holding the chunk: copies elsewhere first, the
    /// home's own copy last. Workers try the others (in random order)
    /// before the home, which holds every chunk of an upload and would
    /// otherwise serve a share of every fetch.
    pub holders: Vec<SocketAddr>,
    /// Job kind.
    pub kind: String,
    /// Job parameters.
    pub params: serde_json::Value,
    /// Energy left for passing the token on.
    pub energy: f64,
}

/// A node's distance to a job's home, as advertised.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GradientEntry {
    /// Job id.
    pub job: String,
    /// Hops to the nearest home of the job.
    pub dist: u8,
}

/// One computed replica of a unit.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UnitResult {
    /// Unit index.
    pub unit: u32,
    /// Replica number.
    pub replica: u8,
    /// Digest of the partial result (also its blob name).
    pub digest: String,
    /// [`token_digest`] of the token the worker ran: the home counts the
    /// result only if it names the unit's real chunk, kind and parameters,
    /// so a forged token cannot get honest workers to vote for a result
    /// computed on other bytes.
    pub token: String,
    /// The worker's vote: its signature over the job, unit, token and
    /// digest (`attest::vote_proof`), which the home passes on to heirs
    /// with the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<crate::identity::Proof>,
}

/// Names what a token asks for: its job, unit, chunk, kind and parameters
/// (32 hex digits of BLAKE3 over them).
pub fn token_digest(job: &str, unit: u32, chunk: &str, kind: &str, params: &serde_json::Value) -> String {
    let params = serde_json::to_vec(params).unwrap_or_default();
    let mut h = blake3::Hasher::new();
    for part in [job.as_bytes(), chunk.as_bytes(), kind.as_bytes(), &params] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(&unit.to_le_bytes());
    let out = h.finalize();
    out.to_hex()[..32].to_string()
}

/// A worker's report to a job's home.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct JobReport {
    /// Job id.
    pub job: String,
    /// The worker.
    pub worker: NodeId,
    /// Its HTTP address (where its partial results can be fetched).
    pub http: SocketAddr,
    /// Tokens it holds (queued or running): (unit, replica).
    pub holding: Vec<(u32, u8)>,
    /// Results it computed.
    pub results: Vec<UnitResult>,
    /// Hops travelled so far (dropped beyond the gradient's range).
    #[serde(default)]
    pub hops: u8,
    /// The worker's signature over everything but `hops`: a report (its
    /// votes above all) speaks for its worker only.
    pub proof: Option<crate::identity::Proof>,
}

impl JobReport {
    /// The bytes the worker signs.
    pub fn signed_bytes(&self, cluster: &str) -> Vec<u8> {
        serde_json::to_vec(&(cluster, &self.job, self.worker, self.http, &self.holding, &self.results))
            .unwrap_or_default()
    }
}

/// A named, sized blob.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlobRef {
    /// Name.
    pub hash: Hash,
    /// Size in bytes.
    pub size: u64,
}

/// One page of a job record, sent by the home to its heirs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct JobRecordPage {
    /// Job id.
    pub job: String,
    /// Kind.
    pub kind: String,
    /// Parameters.
    pub params: serde_json::Value,
    /// Replicas per unit.
    pub redundancy: u8,
    /// Token energy.
    pub energy: f64,
    /// The home that wrote this page.
    pub home: NodeId,
    /// Heirs in rank order.
    pub heirs: Vec<PeerInfo>,
    /// Units in the whole job.
    pub total_units: u32,
    /// Index of the first unit on this page.
    pub offset: u32,
    /// Units on this page: chunk and its holders.
    pub units: Vec<UnitRef>,
    /// When the job was created (home's clock, microseconds).
    pub created: u64,
    /// The creator's signed list of heirs (only an heir it appointed can
    /// confirm the result of a home other than the creator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment: Option<Appointment>,
}

/// A unit's input chunk and where it is held.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UnitRef {
    /// Chunk name.
    pub hash: Hash,
    /// Chunk size.
    pub size: u64,
    /// HTTP addresses of holders.
    pub holders: Vec<SocketAddr>,
}

/// A unit's decided partial result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Decision {
    /// Unit index.
    pub unit: u32,
    /// Winning digest.
    pub digest: String,
    /// HTTP addresses of workers holding that partial.
    pub holders: Vec<SocketAddr>,
    /// The votes that decided it (a quorum of distinct workers' signed
    /// votes): an heir checks them when the decision comes from a home
    /// other than the creator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<Vote>,
}

/// Lifecycle of a job.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Units are being computed or merged.
    Running,
    /// The result is ready.
    Done,
    /// The job cannot complete.
    Failed,
    /// A client cancelled it.
    Cancelled,
}

impl JobState {
    /// Whether the job will change no more.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Running)
    }
}

/// Counters of one job.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct JobStats {
    /// Replica results received.
    pub results: u64,
    /// Units issued again after a lease lapsed or a merge could not fetch.
    pub reissued: u64,
    /// Extra replicas issued because replicas disagreed.
    pub extra_replicas: u64,
    /// Results that disagreed with the majority.
    pub disagreements: u64,
    /// Distinct workers that reported results.
    pub workers: u64,
    /// Times another node took over as home.
    pub takeovers: u64,
    /// Wall time from creation to the final state, in milliseconds.
    pub elapsed_ms: Option<u64>,
}

/// What every node learns of a job (diffused as a `job` item).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct JobSummary {
    /// Job id.
    pub job_id: String,
    /// Kind.
    pub kind: String,
    /// State.
    pub state: JobState,
    /// Units in the job.
    pub units_total: u32,
    /// Units decided.
    pub units_done: u32,
    /// Replicas per unit.
    pub redundancy: u8,
    /// Current home.
    pub home: NodeId,
    /// Its HTTP address.
    pub home_http: SocketAddr,
    /// Creation time (microseconds since the Unix epoch in the daemon).
    pub created: u64,
    /// Name of the result blob, when done.
    pub result_hash: Option<Hash>,
    /// Digest of the canonical result bytes, when done.
    pub result_digest: Option<String>,
    /// Size of the result.
    pub result_size: Option<u64>,
    /// HTTP addresses holding the result.
    pub result_holders: Vec<SocketAddr>,
    /// The other nodes that may write this job's summary: the heirs the
    /// home appointed and the home it took over from. Other nodes accept a
    /// newer summary only from the home of the one they hold or from these.
    #[serde(default)]
    pub co_homes: Vec<NodeId>,
    /// The creator's appointment of heirs, in a summary written by another
    /// home (see `confirmations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment: Option<Appointment>,
    /// Appointed heirs' confirmations of the result: a `done` summary
    /// written by a home other than the creator is believed only with one
    /// from an heir other than its writer (`attest::check_result`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confirmations: Vec<Confirmation>,
    /// Why it failed.
    pub error: Option<String>,
    /// Counters.
    pub stats: JobStats,
}

/// Something the job engine needs the driver to do.
#[derive(Clone, Debug, PartialEq)]
pub enum JobOutput {
    /// Fetch a blob over HTTP from one of `sources`, verify it, store it
    /// (`Node::blob_put`), then call `Node::fetch_done`.
    Fetch {
        /// Blob name.
        hash: Hash,
        /// Expected size.
        size: u64,
        /// HTTP addresses to try.
        sources: Vec<SocketAddr>,
        /// What kind of blob it will be.
        kind: BlobKind,
    },
    /// Run a kernel on a held chunk (on a worker thread), store the partial
    /// (`Node::blob_put`), then call `Node::work_done`.
    Execute {
        /// Token being executed.
        token: WorkToken,
    },
    /// Fetch the decided partials, merge them in unit order, finish, store
    /// the result blob, then call `Node::merge_done`.
    Merge {
        /// Job id.
        job: String,
        /// Kind.
        kind: String,
        /// Parameters.
        params: serde_json::Value,
        /// Decided partials in unit order, with holders.
        partials: Vec<(String, Vec<SocketAddr>)>,
    },
    /// A unit was decided at this home: the driver may fetch and fold its
    /// partial ahead of the final merge (an optimisation; `Merge` still
    /// lists every partial).
    Decided {
        /// Job id.
        job: String,
        /// Kind.
        kind: String,
        /// Parameters.
        params: serde_json::Value,
        /// Units in the job.
        units: u32,
        /// Unit index.
        unit: u32,
        /// Winning digest.
        digest: String,
        /// Holders of that partial.
        holders: Vec<SocketAddr>,
    },
    /// Forget a blob's bytes (evicted or no longer needed).
    DropBlob {
        /// Blob name.
        hash: Hash,
    },
}

/// Why a job submission was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SubmitError {
    /// No units.
    #[error("a job needs at least one input")]
    NoInputs,
    /// Too many units.
    #[error("a job may have at most {0} units")]
    TooManyUnits(usize),
    /// Redundancy out of range.
    #[error("redundancy must be 1 to 7")]
    BadRedundancy,
    /// Energy out of range.
    #[error("energy must be a number greater than 0 and at most 1000")]
    BadEnergy,
    /// Too many running jobs here.
    #[error("this node already runs {0} jobs; try later or another node")]
    Busy(usize),
    /// Params too large.
    #[error("params must serialize to at most 4 KiB")]
    ParamsTooLarge,
}

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
}

/// A home asks again who holds a chunk at most this often.
const SEARCH_EVERY: Duration = Duration::from_secs(2);

/// A unit whose lease lapsed this many times without any result is given
/// up: no live node could run it (its input chunk is probably lost).
const MAX_UNIT_REISSUES: u32 = 40;

#[derive(Clone, Debug)]
struct HomeJob {
    kind: String,
    params: serde_json::Value,
    units: Vec<UnitRef>,
    redundancy: u8,
    energy: f64,
    heirs: Vec<PeerInfo>,
    created: u64,
    created_at: Time,
    state: JobState,
    merging: bool,
    unit_state: Vec<UnitState>,
    decided: u32,
    version: u64,
    last_summary: Time,
    summary_dirty: bool,
    undelivered: Vec<u32>,
    result: Option<(Hash, String, u64)>,
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

#[derive(Clone, Debug)]
enum Slot {
    Fetching,
    Executing,
}

#[derive(Clone, Debug, Default)]
struct NeighborLoad {
    free: u16,
    room: u16,
    dists: BTreeMap<String, (u8, Time)>,
}

/// All job state of one node.
#[derive(Clone, Debug, Default)]
pub struct JobEngine {
    cfg: JobConfig,
    homes: BTreeMap<String, HomeJob>,
    heirs: BTreeMap<String, HeirJob>,
    stepped_down: u64,
    queue: VecDeque<WorkToken>,
    running: BTreeMap<(String, u32, u8), (WorkToken, Slot)>,
    taken: BTreeMap<String, BTreeSet<u32>>,
    /// When each job with worker-side state (`taken`, `results`) was last
    /// active here.
    worker_jobs: BTreeMap<String, Time>,
    /// Most results ever recorded for one unit (kept as they are added:
    /// scanning every unit after every step would cost the simulator).
    max_unit_results: usize,
    results: BTreeMap<String, Vec<UnitResult>>,
    final_jobs: BTreeMap<String, Time>,
    loads: BTreeMap<NodeId, NeighborLoad>,
    next_report: Time,
    next_load: Time,
    last_load_sent: (u16, u16),
    last_load_at: Time,
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
/// Held tokens listed in one report page (with [`RESULTS_PER_REPORT`]
/// signed results, a page fits a datagram; see the sizing test).
pub const HOLDING_PER_REPORT: usize = 256;
/// Results (each with its signed vote) in one report page.
pub const RESULTS_PER_REPORT: usize = 20;
/// Decisions (each with up to `attest::MAX_VOTES` votes) in one
/// `job_decided` datagram.
pub const DECISIONS_PER_PAGE: usize = 8;
/// Largest room a node advertises (own plus what lies beyond).
const MAX_ADVERTISED_ROOM: usize = 64;
/// Most recent results a worker re-sends per job and report round.
const MAX_RESULTS_PER_REPORT: usize = 100;
const MAX_DIST: u8 = 32;
/// Units in one job record page (each page carries the job's parameters,
/// up to 4 KiB, and the creator's appointment).
pub const UNITS_PER_PAGE: usize = 24;

impl JobEngine {
    /// An engine with these knobs.
    pub fn new(cfg: JobConfig) -> JobEngine {
        JobEngine { cfg, ..Default::default() }
    }

    /// The knobs.
    pub fn config(&self) -> &JobConfig {
        &self.cfg
    }

    fn free_slots(&self) -> usize {
        self.cfg.worker_slots.saturating_sub(self.running.len())
    }

    fn room(&self) -> usize {
        (self.cfg.worker_slots + self.cfg.queue_room).saturating_sub(self.running.len() + self.queue.len())
    }

    /// The room this node advertises: its own, plus the average of what its
    /// neighbours advertise, up to `MAX_ADVERTISED_ROOM`. Spare capacity
    /// beyond the first hop thus shows up, and a node whose own slots are
    /// full still takes tokens to pass on toward idle nodes further away
    /// (without it, work never travelled more than one hop from the node
    /// holding it). Until 2026-11 the neighbours counted half: capacity
    /// two hops away showed up as a quarter, so at 50 simulated nodes the
    /// home's neighbours passed on little, 19 nodes never got work and the
    /// home, computing what could not leave, set the pace (scaling
    /// efficiency 0.09; 0.29 now). An all-idle network advertises the cap;
    /// a token sent too far just waits in a queue until its lease lapses
    /// and the home issues it again (4 % of tokens at 50 nodes).
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
        self.homes.get(job).map(|h| (h.decided, h.units.len() as u32))
    }

    // ------------------------------------------------------------- submit

    /// Creates a job homed here; returns its id.
    pub fn submit(
        &mut self,
        ctx: &mut Ctx<'_>,
        kind: String,
        params: serde_json::Value,
        units: Vec<UnitRef>,
        redundancy: u8,
        energy: Option<f64>,
    ) -> Result<String, SubmitError> {
        if units.is_empty() {
            return Err(SubmitError::NoInputs);
        }
        if units.len() > self.cfg.max_units {
            return Err(SubmitError::TooManyUnits(self.cfg.max_units));
        }
        if !(1..=7).contains(&redundancy) {
            return Err(SubmitError::BadRedundancy);
        }
        let energy = energy.unwrap_or(self.cfg.default_energy);
        if !(energy.is_finite() && energy > 0.0 && energy <= 1000.0) {
            return Err(SubmitError::BadEnergy);
        }
        if crate::wire::value_len(&params) > 4096 {
            return Err(SubmitError::ParamsTooLarge);
        }
        let running = self.homes.values().filter(|h| !h.state.is_final()).count();
        if running >= self.cfg.max_jobs {
            return Err(SubmitError::Busy(running));
        }
        // The creator's id leads the job id, so that every node knows who
        // may write the job's first summaries.
        let id = format!("{}{:016x}", ctx.me, ctx.rng.next_u64());
        let mut nb: Vec<PeerInfo> = ctx.neighbors.iter().map(|(id, addr)| PeerInfo { id: *id, addr: *addr }).collect();
        nb.sort();
        ctx.rng.shuffle(&mut nb);
        nb.truncate(self.cfg.heirs);
        for u in &units {
            ctx.blobs.pin(&u.hash, &id);
        }
        let job = HomeJob {
            kind,
            params,
            unit_state: vec![UnitState::default(); units.len()],
            units,
            redundancy,
            energy,
            heirs: nb,
            created: ctx.now.as_micros(),
            created_at: ctx.now,
            state: JobState::Running,
            merging: false,
            decided: 0,
            version: 1,
            last_summary: ctx.now,
            summary_dirty: true,
            undelivered: Vec::new(),
            result: None,
            result_holders: Vec::new(),
            error: None,
            stats: JobStats::default(),
            workers: BTreeSet::new(),
            record_dirty: false,
            last_record: ctx.now,
            yield_to: BTreeSet::new(),
            appointment: None,
            confirmations: Vec::new(),
            confirm_asked: None,
        };
        let mut job = job;
        job.yield_to = job.heirs.iter().map(|p| p.id).collect();
        job.appointment = Some(appoint(ctx, &id, &job.heirs, None));
        self.homes.insert(id.clone(), job);
        self.send_record(ctx, &id);
        // Issue every replica of every unit into our own queue: from here
        // the tokens flow to wherever there is room.
        let n = self.homes.get(&id).map_or(0, |h| h.units.len());
        for u in 0..n {
            for r in 0..redundancy {
                self.issue(ctx, &id, u as u32, r);
            }
        }
        self.publish(ctx, &id);
        self.schedule(ctx);
        Ok(id)
    }

    fn issue(&mut self, ctx: &mut Ctx<'_>, id: &str, unit: u32, replica: u8) {
        let Some(h) = self.homes.get_mut(id) else {
            return;
        };
        let Some(u) = h.units.get(unit as usize) else {
            return;
        };
        let Some(us) = h.unit_state.get_mut(unit as usize) else {
            return;
        };
        let rep = Rep { done: false, last_seen: ctx.now, issued: ctx.now };
        match us.reps.get_mut(replica as usize) {
            Some(r) => *r = rep,
            None => us.reps.push(rep),
        }
        // Holders learned since the job started (replicas) help too; the
        // home's own copy goes last (see `WorkToken::holders`).
        let mut holders: Vec<SocketAddr> = u.holders.iter().filter(|a| **a != ctx.http).copied().collect();
        let here = ctx.blobs.get(&u.hash);
        if let Some(m) = here {
            for a in m.holder_addrs() {
                if !holders.contains(&a) && a != ctx.http {
                    holders.push(a);
                }
            }
        }
        holders.truncate(7);
        if here.is_some() || u.holders.contains(&ctx.http) {
            holders.push(ctx.http);
        }
        let token = WorkToken {
            job: id.to_string(),
            unit,
            replica,
            chunk: u.hash.clone(),
            size: u.size,
            holders,
            kind: h.kind.clone(),
            params: h.params.clone(),
            energy: h.energy,
        };
        self.queue.push_back(token);
    }

    fn send_record(&self, ctx: &mut Ctx<'_>, id: &str) {
        let Some(h) = self.homes.get(id) else { return };
        for (i, page) in h.units.chunks(UNITS_PER_PAGE).enumerate() {
            let rec = JobRecordPage {
                job: id.to_string(),
                kind: h.kind.clone(),
                params: h.params.clone(),
                redundancy: h.redundancy,
                energy: h.energy,
                home: ctx.me,
                heirs: h.heirs.clone(),
                total_units: h.units.len() as u32,
                offset: (i * UNITS_PER_PAGE) as u32,
                units: page
                    .iter()
                    .map(|u| UnitRef { holders: u.holders.iter().take(3).copied().collect(), ..u.clone() })
                    .collect(),
                created: h.created,
                appointment: h.appointment.clone(),
            };
            for heir in &h.heirs {
                ctx.sends.push((*heir, Message::JobRecord { record: Box::new(rec.clone()) }));
            }
        }
    }

    /// Cancels a job homed here. Returns false if it is not homed here.
    pub fn cancel(&mut self, ctx: &mut Ctx<'_>, id: &str) -> bool {
        let Some(h) = self.homes.get_mut(id) else {
            return false;
        };
        if !h.state.is_final() {
            h.state = JobState::Cancelled;
            h.stats.elapsed_ms = Some(ctx.now.since(h.created_at).as_millis() as u64);
            h.summary_dirty = true;
        }
        self.finalize_local(ctx, id);
        self.publish(ctx, id);
        true
    }

    // ----------------------------------------------------------- summaries

    fn summary(&self, ctx: &Ctx<'_>, id: &str) -> Option<JobSummary> {
        let h = self.homes.get(id)?;
        let created_here = job_creator(id) == Some(ctx.me);
        // A result awaiting confirmation is not shown yet.
        let result = h.result.as_ref().filter(|_| h.state == JobState::Done);
        Some(JobSummary {
            job_id: id.to_string(),
            kind: h.kind.clone(),
            state: h.state,
            units_total: h.units.len() as u32,
            units_done: h.decided,
            redundancy: h.redundancy,
            home: ctx.me,
            home_http: ctx.http,
            created: h.created,
            result_hash: result.map(|r| r.0.clone()),
            result_digest: result.map(|r| r.1.clone()),
            result_size: result.map(|r| r.2),
            // Bounded (a summary is one gossip item): the newest holders.
            result_holders: if result.is_some() {
                h.result_holders.iter().rev().take(MAX_SUMMARY_HOLDERS).rev().copied().collect()
            } else {
                Vec::new()
            },
            co_homes: h.yield_to.iter().take(16).copied().collect(),
            // Only a summary written by another home than the creator
            // needs them to be believed.
            appointment: h.appointment.clone().filter(|_| !created_here),
            confirmations: if created_here { Vec::new() } else { h.confirmations.iter().take(2).copied().collect() },
            error: h.error.clone(),
            stats: JobStats { workers: h.workers.len() as u64, ..h.stats.clone() },
        })
    }

    fn publish(&mut self, ctx: &mut Ctx<'_>, id: &str) {
        if let Some(s) = self.summary(ctx, id) {
            ctx.summaries.push(s);
        }
        if let Some(h) = self.homes.get_mut(id) {
            h.last_summary = ctx.now;
            h.summary_dirty = false;
            h.version += 1;
        }
    }

    /// Version to diffuse the next summary of a homed job with.
    pub fn summary_version(&self, id: &str) -> Option<u64> {
        self.homes.get(id).map(|h| h.version)
    }

    /// The version a homed job's summary was stored and diffused with (the
    /// store lifts it above any version it already holds for the key).
    pub fn summary_published(&mut self, id: &str, version: u64) {
        if let Some(h) = self.homes.get_mut(id) {
            h.version = h.version.max(version);
        }
    }

    /// A job summary written by `origin` arrived by diffusion (it beat the
    /// summary held here): learn final states (drop tokens, release pins),
    /// feed heirs' liveness view of the home, and settle two homes of one
    /// job.
    ///
    /// Two homes exist when an heir took over from a home that was only
    /// cut off (a partition, a long pause) and both went on. When they hear
    /// of each other, one steps down, decided the same way at both: the
    /// further-settled state wins (done over failed or cancelled over
    /// running), then last-writer-wins on (version, writer) — the order
    /// every node's store already uses, so the store and the homes agree. A
    /// home whose summary lost on version but is further settled publishes
    /// again above it; the other then steps down on hearing that.
    pub fn on_summary(&mut self, ctx: &mut Ctx<'_>, s: &JobSummary, version: u64, origin: NodeId) {
        if let Some(h) = self.heirs.get_mut(&s.job_id) {
            if version >= h.version_seen {
                h.version_seen = version;
                h.last_heard = ctx.now;
                h.final_state = s.state.is_final();
            }
        }
        let mut republish = false;
        if let Some(home) = self.homes.get_mut(&s.job_id) {
            // Only a home this one knows to be legitimate (an heir it
            // appointed, the home it took over from) can make it step
            // down; the store checked the summary is that node's own.
            let legit = home.yield_to.contains(&origin);
            let own = home.result.as_ref().map(|r| r.1.clone());
            let contradicts = home.state == JobState::Done && s.state == JobState::Done && s.result_digest != own;
            let creator = job_creator(&s.job_id);
            // The creator ended the job (a partition healed, or the creator
            // was thought dead): its word is the client's, whatever the
            // versions, and a home that took over steps down.
            let creator_ended = creator == Some(origin) && creator != Some(ctx.me) && s.state.is_final();
            if creator_ended
                || (origin != ctx.me
                    && legit
                    && home.state == JobState::Running
                    && s.state == JobState::Done
                    && creator != Some(ctx.me))
            {
                // (Or another home's `done`, attested: the store took it
                // only with an appointed heir's confirmation.)
                if let Some(h) = self.homes.remove(&s.job_id) {
                    self.stepped_down += 1;
                    if let Some((hash, ..)) = &h.result {
                        if s.result_hash.as_deref() != Some(hash.as_str()) {
                            ctx.blobs.unpin_hash(hash, "results");
                        }
                    }
                    self.become_heir(ctx, &s.job_id, h, s, version);
                }
            } else if origin != ctx.me && legit && contradicts {
                // Two results of one job: both homes ran the same units by
                // the same votes, so honest ones agree. This home keeps the
                // result its own votes decided, and no longer yields to a
                // node that claims another.
                home.yield_to.remove(&origin);
                home.summary_dirty = true;
                republish = true;
                ctx.penalties.push(origin);
            } else if origin != ctx.me && legit && (version, origin) > (home.version, ctx.me) {
                if settle_rank(home.state) > settle_rank(s.state) {
                    home.summary_dirty = true;
                    republish = true;
                } else if home.state == JobState::Running && s.state == JobState::Done {
                    // A live home does not take another home's word for a
                    // result: it finishes itself, then compares (honest
                    // homes agree; see `contradicts`). Until then it keeps
                    // publishing, so workers keep taking its tokens.
                    home.summary_dirty = true;
                    republish = true;
                } else if job_creator(&s.job_id) == Some(ctx.me) {
                    // The creator is the home its client chose: while it
                    // lives it does not step down for an heir (which may be
                    // Byzantine); it publishes above it, and the heir, which
                    // took over only because the creator seemed gone, steps
                    // down instead. (At the tick's pace: a stream of
                    // summaries from an heir must not become a stream of
                    // the creator's.)
                    home.summary_dirty = true;
                } else {
                    let h = self.homes.remove(&s.job_id);
                    self.stepped_down += 1;
                    if let Some(h) = h {
                        if let Some((hash, ..)) = &h.result {
                            if s.result_hash.as_deref() != Some(hash.as_str()) {
                                ctx.blobs.unpin_hash(hash, "results");
                            }
                        }
                        self.become_heir(ctx, &s.job_id, h, s, version);
                    }
                }
            }
        }
        if republish {
            self.publish(ctx, &s.job_id);
        }
        if s.state.is_final() && !self.homes.contains_key(&s.job_id) {
            self.finalize_local(ctx, &s.job_id);
        }
        if !s.state.is_final() && job_creator(&s.job_id) == Some(origin) && !self.homes.contains_key(&s.job_id) {
            // The job's creator, newer than the end this node heard of
            // (from another home), still runs it: take its tokens again.
            self.final_jobs.remove(&s.job_id);
        }
    }

    /// A home that stepped down for `s`'s home stays an heir of the job,
    /// with what it knows (units, decisions, the creator's appointment): it
    /// can take over again, and, appointed, confirm the new home's result.
    fn become_heir(&mut self, ctx: &mut Ctx<'_>, id: &str, h: HomeJob, s: &JobSummary, version: u64) {
        let held_units: usize = self.heirs.values().map(|x| x.units.len()).sum();
        if self.heirs.contains_key(id)
            || self.heirs.len() >= self.cfg.max_jobs * 4
            || held_units + h.units.len() > MAX_HEIR_UNITS
        {
            return;
        }
        let page0 = JobRecordPage {
            job: id.to_string(),
            kind: h.kind.clone(),
            params: h.params.clone(),
            redundancy: h.redundancy,
            energy: h.energy,
            home: s.home,
            heirs: h.heirs.clone(),
            total_units: h.units.len() as u32,
            offset: 0,
            units: Vec::new(),
            created: h.created,
            appointment: h.appointment.clone(),
        };
        let decisions = h
            .unit_state
            .iter()
            .enumerate()
            .filter_map(|(u, us)| {
                let (digest, holders, votes) = us.decided.clone()?;
                Some((u as u32, Decision { unit: u as u32, digest, holders, votes }))
            })
            .collect();
        for u in &h.units {
            ctx.blobs.pin(&u.hash, id);
        }
        let heir = HeirJob {
            page0: Some(page0),
            units: (0..).zip(h.units).collect(),
            decisions,
            rank: h.heirs.len() + 1,
            last_heard: ctx.now,
            version_seen: version,
            final_state: s.state.is_final(),
            home_gone_at: None,
            appointment: h.appointment,
            claim: None,
        };
        self.heirs.insert(id.to_string(), heir);
    }

    /// Times a home of some job stepped down for another home of it.
    pub fn stepped_down(&self) -> u64 {
        self.stepped_down
    }

    fn finalize_local(&mut self, ctx: &mut Ctx<'_>, id: &str) {
        if self.final_jobs.contains_key(id) {
            return;
        }
        if self.final_jobs.len() >= 4096 {
            if let Some(k) = self.final_jobs.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                self.final_jobs.remove(&k);
            }
        }
        self.final_jobs.insert(id.to_string(), ctx.now);
        self.queue.retain(|t| t.job != id);
        self.taken.remove(id);
        self.results.remove(id);
        self.worker_jobs.remove(id);
        if let Some(h) = self.heirs.get_mut(id) {
            h.final_state = true;
        }
        ctx.blobs.unpin_job(id);
        for (_, l) in self.loads.iter_mut() {
            l.dists.remove(id);
        }
        // Finished jobs homed here are remembered (their summaries are
        // re-published as their results gain holders), boundedly: the
        // oldest is forgotten, and its result is no longer pinned.
        let finished = self.homes.values().filter(|h| h.state.is_final()).count();
        if finished > MAX_FINISHED_HOMES {
            let oldest = self
                .homes
                .iter()
                .filter(|(k, h)| h.state.is_final() && k.as_str() != id)
                .min_by_key(|(_, h)| h.created_at)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                if let Some((hash, ..)) = self.homes.remove(&k).and_then(|h| h.result) {
                    ctx.blobs.unpin_hash(&hash, "results");
                }
            }
        }
    }

    // -------------------------------------------------------------- worker

    /// A token arrived from a neighbour.
    pub fn on_work(&mut self, ctx: &mut Ctx<'_>, token: WorkToken) {
        if self.final_jobs.contains_key(&token.job) || self.queue.len() >= MAX_QUEUE_HARD {
            return;
        }
        self.queue.push_back(token);
        self.schedule(ctx);
    }

    /// Starts what can run here and passes on what cannot.
    pub fn schedule(&mut self, ctx: &mut Ctx<'_>) {
        // 1. Run what we can: units whose chunk is held here first (no
        // transfer), then the rest in arrival order.
        for local_only in [true, false] {
            let mut i = 0;
            while self.free_slots() > 0 && i < self.queue.len() {
                let runnable = self.queue.get(i).is_some_and(|t| {
                    !self.taken.get(&t.job).is_some_and(|s| s.contains(&t.unit))
                        && (!local_only || ctx.blobs.contains(&t.chunk))
                });
                if !runnable {
                    i += 1;
                    continue;
                }
                let Some(t) = self.queue.remove(i) else { break };
                self.start(ctx, t);
            }
        }
        // 2. Pass on what waits, to neighbours with room, most free first.
        if self.queue.is_empty() {
            return;
        }
        let mut budget: Vec<(NodeId, SocketAddr, usize, usize)> = ctx
            .neighbors
            .iter()
            .filter(|(id, _)| self.strikes(*id) < AVOID_AFTER_STRIKES)
            .filter_map(|(id, addr)| self.loads.get(id).map(|l| (*id, *addr, l.free as usize, l.room as usize)))
            .filter(|(_, _, _, room)| *room > 0)
            .collect();
        if budget.is_empty() {
            self.drop_stuck();
            return;
        }
        let mut keep = VecDeque::new();
        // Keep enough local work to refill our own slots; pass the rest.
        let mut own_share = self.cfg.queue_room.min(self.queue.len());
        while let Some(mut t) = self.queue.pop_front() {
            let mine_ok = !self.taken.get(&t.job).is_some_and(|s| s.contains(&t.unit));
            if mine_ok && own_share > 0 {
                own_share -= 1;
                keep.push_back(t);
                continue;
            }
            let next = ctx.energy.after_hop(t.energy);
            if !EnergyModel::alive(next) {
                if mine_ok {
                    keep.push_back(t);
                }
                // A token that can neither run here nor travel is dropped;
                // its lease lapses and the home issues it again, fresh.
                continue;
            }
            budget.sort_by(|a, b| b.2.cmp(&a.2).then(b.3.cmp(&a.3)));
            match budget.first_mut() {
                Some(b) if b.3 > 0 => {
                    b.3 -= 1;
                    b.2 = b.2.saturating_sub(1);
                    t.energy = next;
                    ctx.sends.push((PeerInfo { id: b.0, addr: b.1 }, Message::Work { token: Box::new(t) }));
                }
                _ => keep.push_back(t),
            }
        }
        let passed = self.queue.len() > keep.len();
        self.queue = keep;
        for (id, _, free, room) in budget {
            if let Some(l) = self.loads.get_mut(&id) {
                l.free = free as u16;
                l.room = room as u16;
            }
        }
        if passed {
            // Passing tokens on made room here: say so, so that work keeps
            // flowing through this node toward idle ones further away.
            self.advertise_load(ctx, true);
        }
    }

    fn drop_stuck(&mut self) {
        let taken = &self.taken;
        self.queue.retain(|t| {
            let mine_ok = !taken.get(&t.job).is_some_and(|s| s.contains(&t.unit));
            mine_ok || t.energy > 0.0
        });
    }

    /// Notes worker-side state for `job` (units taken, results to report),
    /// forgetting the least recently active job's when too many jobs have
    /// some: tokens of made-up jobs cost memory only up to this bound.
    fn touch_worker_job(&mut self, job: &str, now: Time) {
        if !self.worker_jobs.contains_key(job) && self.worker_jobs.len() >= self.cfg.max_jobs * 4 {
            if let Some(old) = self.worker_jobs.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                self.worker_jobs.remove(&old);
                self.taken.remove(&old);
                self.results.remove(&old);
            }
        }
        self.worker_jobs.insert(job.to_string(), now);
    }

    fn start(&mut self, ctx: &mut Ctx<'_>, t: WorkToken) {
        self.touch_worker_job(&t.job, ctx.now);
        let taken = self.taken.entry(t.job.clone()).or_default();
        if taken.len() >= self.cfg.max_units && !taken.contains(&t.unit) {
            // No job has more units: a token beyond is made up.
            return;
        }
        taken.insert(t.unit);
        ctx.blobs.pin(&t.chunk, &t.job);
        let key = (t.job.clone(), t.unit, t.replica);
        if ctx.blobs.contains(&t.chunk) {
            self.running.insert(key, (t.clone(), Slot::Executing));
            ctx.outputs.push(JobOutput::Execute { token: t });
        } else {
            // Copies elsewhere in random order, the home's last.
            let mut sources = t.holders.clone();
            if let Some((_, others)) = sources.split_last_mut() {
                ctx.rng.shuffle(others);
            }
            ctx.outputs.push(JobOutput::Fetch { hash: t.chunk.clone(), size: t.size, sources, kind: BlobKind::Chunk });
            self.running.insert(key, (t, Slot::Fetching));
        }
    }

    /// A fetch finished (`ok`: the blob is now held and verified).
    pub fn fetch_done(&mut self, ctx: &mut Ctx<'_>, hash: &str, ok: bool) {
        let waiting: Vec<(String, u32, u8)> = self
            .running
            .iter()
            .filter(|(_, (t, s))| matches!(s, Slot::Fetching) && t.chunk == hash)
            .map(|(k, _)| k.clone())
            .collect();
        for k in waiting {
            if ok {
                if let Some(entry) = self.running.get_mut(&k) {
                    entry.1 = Slot::Executing;
                    ctx.outputs.push(JobOutput::Execute { token: entry.0.clone() });
                }
                // Pinned now that it is here (a pin holds only what is held).
                ctx.blobs.pin(hash, &k.0);
            } else if let Some((t, _)) = self.running.remove(&k) {
                // Nobody could serve the chunk: give the slot back and let
                // the lease bring the unit back from its home.
                if let Some(s) = self.taken.get_mut(&t.job) {
                    s.remove(&t.unit);
                }
            }
        }
        self.schedule(ctx);
    }

    /// A kernel finished; on success the partial is stored under `digest`.
    pub fn work_done(&mut self, ctx: &mut Ctx<'_>, job: &str, unit: u32, replica: u8, digest: Result<String, String>) {
        let Some((t, _)) = self.running.remove(&(job.to_string(), unit, replica)) else {
            self.schedule(ctx);
            return;
        };
        match digest {
            Ok(d) => {
                ctx.blobs.pin(&d, job);
                let token = token_digest(&t.job, t.unit, &t.chunk, &t.kind, &t.params);
                let vote =
                    crate::attest::vote_proof(ctx.identity, ctx.cluster, ctx.wall.as_millis(), job, unit, &token, &d);
                let r = UnitResult { unit, replica, digest: d, token, proof: Some(vote) };
                self.touch_worker_job(&t.job, ctx.now);
                let list = self.results.entry(t.job.clone()).or_default();
                list.push(r);
                if list.len() > 4 * MAX_RESULTS_PER_REPORT {
                    list.remove(0);
                }
                // Report at once: the home is waiting for it.
                self.report_job(ctx, &t.job);
            }
            Err(_) => {
                if let Some(s) = self.taken.get_mut(job) {
                    s.remove(&unit);
                }
            }
        }
        self.schedule(ctx);
        self.advertise_load(ctx, true);
    }

    fn report_job(&mut self, ctx: &mut Ctx<'_>, job: &str) {
        let holding: Vec<(u32, u8)> = self
            .queue
            .iter()
            .filter(|t| t.job == job)
            .map(|t| (t.unit, t.replica))
            .chain(self.running.keys().filter(|k| k.0 == job).map(|k| (k.1, k.2)))
            .collect();
        let results: Vec<UnitResult> = self
            .results
            .get(job)
            .map(|r| r.iter().rev().take(MAX_RESULTS_PER_REPORT).cloned().collect())
            .unwrap_or_default();
        if holding.is_empty() && results.is_empty() {
            return;
        }
        // Every held token renews its lease, however many there are: one
        // report per page (a page fits a datagram).
        let pages = holding.len().div_ceil(HOLDING_PER_REPORT).max(results.len().div_ceil(RESULTS_PER_REPORT));
        fn page_of<T: Clone>(v: &[T], n: usize, i: usize) -> Vec<T> {
            v.chunks(n).nth(i).map(<[T]>::to_vec).unwrap_or_default()
        }
        for i in 0..pages {
            let (holding, results) =
                (page_of(&holding, HOLDING_PER_REPORT, i), page_of(&results, RESULTS_PER_REPORT, i));
            let mut report = JobReport {
                job: job.to_string(),
                worker: ctx.me,
                http: ctx.http,
                holding,
                results,
                hops: 0,
                proof: None,
            };
            if self.homes.contains_key(job) {
                // Our own report needs no signature to reach ourselves.
                self.on_report(ctx, report);
                continue;
            }
            let bytes = report.signed_bytes(ctx.cluster);
            report.proof = Some(ctx.identity.prove(crate::identity::domain::REPORT, ctx.wall.as_millis(), &[&bytes]));
            self.forward_report(ctx, report);
        }
    }

    fn forward_report(&mut self, ctx: &mut Ctx<'_>, mut report: JobReport) {
        if report.hops >= MAX_DIST {
            return;
        }
        report.hops += 1;
        if let Some(next) = self.next_hop(ctx, &report.job) {
            ctx.sends.push((next, Message::JobReport { report: Box::new(report) }));
        }
    }

    /// A report travelling toward a home reached this node: a home checks
    /// that its worker signed it, anyone else passes it on.
    pub fn on_report_msg(&mut self, ctx: &mut Ctx<'_>, report: JobReport) -> Result<(), crate::identity::SigError> {
        if !self.homes.contains_key(&report.job) {
            self.forward_report(ctx, report);
            return Ok(());
        }
        let proof = report.proof.ok_or(crate::identity::SigError::Missing)?;
        proof.fresh(ctx.wall.as_millis(), 60_000)?;
        proof.verify(report.worker, crate::identity::domain::REPORT, &[&report.signed_bytes(ctx.cluster)])?;
        self.on_report(ctx, report);
        Ok(())
    }

    /// The neighbour closest to the job's home. Only a neighbour strictly
    /// closer than this node counts, so reports never circle while the
    /// gradient re-forms after a failure.
    fn next_hop(&self, ctx: &Ctx<'_>, job: &str) -> Option<PeerInfo> {
        let ttl = self.cfg.gradient_ttl;
        let mine = self.dist(ctx, job).unwrap_or(MAX_DIST);
        ctx.neighbors
            .iter()
            .filter_map(|(id, addr)| {
                let (d, t) = self.loads.get(id)?.dists.get(job)?;
                (ctx.now.since(*t) < ttl && *d < mine).then_some((*d, PeerInfo { id: *id, addr: *addr }))
            })
            .min_by_key(|(d, _)| *d)
            .map(|(_, a)| a)
    }

    /// This node's distance to a job's nearest home, if known.
    pub fn dist(&self, ctx: &Ctx<'_>, job: &str) -> Option<u8> {
        if self.homes.get(job).is_some_and(|h| !h.state.is_final()) {
            return Some(0);
        }
        let ttl = self.cfg.gradient_ttl;
        ctx.neighbors
            .iter()
            .filter_map(|(id, _)| {
                let (d, t) = self.loads.get(id)?.dists.get(job)?;
                (ctx.now.since(*t) < ttl).then_some(*d)
            })
            .min()
            .map(|d| d.saturating_add(1))
            .filter(|d| *d < MAX_DIST)
    }

    // ---------------------------------------------------------------- home

    /// A report reached the job's home.
    pub fn on_report(&mut self, ctx: &mut Ctx<'_>, report: JobReport) {
        let worker_strikes = self.strikes(report.worker);
        let Some(h) = self.homes.get_mut(&report.job) else {
            return;
        };
        if h.state.is_final() {
            return;
        }
        for (u, r) in &report.holding {
            if let Some(rep) = h.unit_state.get_mut(*u as usize).and_then(|us| us.reps.get_mut(*r as usize)) {
                rep.last_seen = ctx.now;
            }
        }
        let mut touched = BTreeSet::new();
        for res in &report.results {
            // A result counts only for the token the home issued: the
            // unit's own chunk, kind and parameters.
            let Some(unit) = h.units.get(res.unit as usize) else {
                continue;
            };
            if res.token != token_digest(&report.job, res.unit, &unit.hash, &h.kind, &h.params) {
                ctx.rejected.push("wrong_token");
                continue;
            }
            // The vote must be the worker's own: heirs check it again
            // when a decision comes from another home than the creator.
            let vote_ok = res.proof.as_ref().is_some_and(|p| {
                report.worker == ctx.me
                    || crate::attest::check_vote(
                        p,
                        report.worker,
                        ctx.cluster,
                        &report.job,
                        res.unit,
                        &res.token,
                        &res.digest,
                    )
                    .is_ok()
            });
            if !vote_ok {
                ctx.rejected.push("bad_vote");
                continue;
            }
            let Some(us) = h.unit_state.get_mut(res.unit as usize) else {
                continue;
            };
            // A node that kept disagreeing with majorities is not counted
            // any more, and a node counts once per unit (it ran a second
            // replica that reached it): either way the replica must run
            // elsewhere. Marking it done without a vote left such a unit
            // undecided for good, its job running forever.
            let counted = !us.results.contains_key(&report.worker)
                && us.results.len() < MAX_UNIT_RESULTS
                && worker_strikes < IGNORE_AFTER_STRIKES;
            if let Some(rep) = us.reps.get_mut(res.replica as usize) {
                if counted {
                    rep.done = true;
                    rep.last_seen = ctx.now;
                } else if !rep.done {
                    // Lapse at the next tick: issued again.
                    rep.last_seen = Time::ZERO;
                }
            }
            if !counted {
                continue;
            }
            if let Some((d, ..)) = &us.decided {
                // Late replicas are compared too: a late liar still loses.
                if *d != res.digest {
                    h.stats.disagreements += 1;
                    ctx.penalties.push(report.worker);
                }
            }
            us.results.insert(report.worker, (res.digest.clone(), report.http, res.proof));
            self.max_unit_results = self.max_unit_results.max(us.results.len());
            h.stats.results += 1;
            h.workers.insert(report.worker);
            touched.insert(res.unit);
        }
        for u in touched {
            self.vote(ctx, &report.job, u);
        }
        self.maybe_merge(ctx, &report.job);
    }

    fn vote(&mut self, ctx: &mut Ctx<'_>, id: &str, unit: u32) {
        let Some(h) = self.homes.get_mut(id) else {
            return;
        };
        let quorum = h.redundancy as usize / 2 + 1;
        let max_reps = 2 * h.redundancy as usize + 1;
        let Some(us) = h.unit_state.get_mut(unit as usize) else {
            return;
        };
        if us.decided.is_some() {
            return;
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (d, ..) in us.results.values() {
            *counts.entry(d.as_str()).or_default() += 1;
        }
        let winner = counts.iter().find(|(_, c)| **c >= quorum).map(|(d, _)| d.to_string());
        if let Some(w) = winner {
            let holders: Vec<SocketAddr> = us.results.values().filter(|(d, ..)| *d == w).map(|(_, a, _)| *a).collect();
            let votes: Vec<Vote> = us
                .results
                .iter()
                .filter(|(_, (d, ..))| *d == w)
                .filter_map(|(node, (.., p))| p.map(|proof| Vote { worker: *node, proof }))
                .take(quorum)
                .collect();
            for (node, (d, ..)) in us.results.iter() {
                if *d != w {
                    h.stats.disagreements += 1;
                    ctx.penalties.push(*node);
                }
            }
            us.decided = Some((w.clone(), holders.clone(), votes));
            ctx.outputs.push(JobOutput::Decided {
                job: id.to_string(),
                kind: h.kind.clone(),
                params: h.params.clone(),
                units: h.units.len() as u32,
                unit,
                digest: w.clone(),
                holders,
            });
            h.decided += 1;
            h.undelivered.push(unit);
            h.summary_dirty = true;
            return;
        }
        let outstanding = us.reps.iter().filter(|r| !r.done).count();
        let best = counts.values().copied().max().unwrap_or(0);
        if best + outstanding < quorum {
            // The replicas disagree and the outstanding ones cannot settle
            // it: run one more.
            if us.reps.len() >= max_reps {
                h.state = JobState::Failed;
                h.error = Some(format!("unit {unit}: no {quorum} of {} replicas agree", us.reps.len()));
                h.stats.elapsed_ms = Some(ctx.now.since(h.created_at).as_millis() as u64);
                h.summary_dirty = true;
                let id = id.to_string();
                self.finalize_local(ctx, &id);
                self.publish(ctx, &id);
                return;
            }
            let r = us.reps.len() as u8;
            h.stats.extra_replicas += 1;
            self.issue(ctx, id, unit, r);
        }
    }

    fn maybe_merge(&mut self, ctx: &mut Ctx<'_>, id: &str) {
        let Some(h) = self.homes.get_mut(id) else {
            return;
        };
        if h.state.is_final() || h.merging || h.result.is_some() || (h.decided as usize) < h.units.len() {
            return;
        }
        h.merging = true;
        let partials = h
            .unit_state
            .iter()
            .map(|us| us.decided.as_ref().map(|(d, hs, _)| (d.clone(), hs.clone())).unwrap_or_default())
            .collect();
        ctx.outputs.push(JobOutput::Merge {
            job: id.to_string(),
            kind: h.kind.clone(),
            params: h.params.clone(),
            partials,
        });
    }

    /// The driver merged a job: `Ok((result blob, digest, size))` or the
    /// units whose partials could not be fetched.
    pub fn merge_done(&mut self, ctx: &mut Ctx<'_>, id: &str, outcome: Result<(Hash, String, u64), Vec<u32>>) {
        let Some(h) = self.homes.get_mut(id) else {
            self.claim_merged(ctx, id, outcome);
            return;
        };
        h.merging = false;
        if h.state.is_final() {
            return;
        }
        match outcome {
            Ok((hash, digest, size)) => {
                ctx.blobs.pin(&hash, "results");
                h.result = Some((hash.clone(), digest.clone(), size));
                h.result_holders = vec![ctx.http];
                if job_creator(id) != Some(ctx.me) {
                    // A home that took over: its result stands only once
                    // an appointed heir has merged the same decisions and
                    // confirmed it. Heirs get every decision (with its
                    // votes) and the claim; the tick asks again.
                    h.confirm_asked = Some((ctx.now, 1));
                    h.undelivered = (0..h.units.len() as u32).collect();
                    h.summary_dirty = true;
                    self.ask_confirmation(ctx, id);
                    return;
                }
                h.state = JobState::Done;
                h.stats.elapsed_ms = Some(ctx.now.since(h.created_at).as_millis() as u64);
                let heirs: Vec<PeerInfo> = h.heirs.clone();
                for a in heirs {
                    ctx.sends.push((
                        a,
                        Message::JobFinished {
                            job: id.to_string(),
                            result: hash.clone(),
                            digest: digest.clone(),
                            size,
                            http: ctx.http,
                        },
                    ));
                }
                let id = id.to_string();
                self.finalize_local(ctx, &id);
                self.publish(ctx, &id);
            }
            Err(missing) if missing.is_empty() => {
                // The decided partials could not be merged: the majority
                // itself produced garbage. Nothing more can be done.
                h.state = JobState::Failed;
                h.error = Some("merging the decided partial results failed".into());
                h.stats.elapsed_ms = Some(ctx.now.since(h.created_at).as_millis() as u64);
                h.summary_dirty = true;
                let id = id.to_string();
                self.finalize_local(ctx, &id);
                self.publish(ctx, &id);
            }
            Err(missing) => {
                let red = h.redundancy;
                for &u in &missing {
                    if let Some(us) = h.unit_state.get_mut(u as usize) {
                        if us.decided.take().is_some() {
                            h.decided = h.decided.saturating_sub(1);
                        }
                        us.results.clear();
                        us.reps.clear();
                        h.stats.reissued += 1;
                    }
                }
                h.summary_dirty = true;
                for u in missing {
                    for r in 0..red {
                        self.issue(ctx, id, u, r);
                    }
                }
                self.schedule(ctx);
            }
        }
    }

    /// Whether a home that took over and merged should ask its heirs to
    /// confirm again (decisions are sent again at exponentially spaced
    /// rounds: an heir may have missed some). After `MAX_CONFIRM_ASKS`
    /// unanswered rounds no appointed heir is left that could confirm, and
    /// the job fails: an unconfirmed result is not one anyone believes.
    fn confirm_due(&mut self, ctx: &mut Ctx<'_>, id: &str) -> bool {
        let Some(h) = self.homes.get_mut(id) else { return false };
        let Some((t, n)) = h.confirm_asked else { return false };
        if h.state.is_final() || ctx.now.since(t) < CONFIRM_EVERY {
            return false;
        }
        if n >= MAX_CONFIRM_ASKS {
            h.state = JobState::Failed;
            h.error =
                Some("no heir the creator appointed confirmed the result (the creator died, and so did they)".into());
            h.stats.elapsed_ms = Some(ctx.now.since(h.created_at).as_millis() as u64);
            h.summary_dirty = true;
            h.confirm_asked = None;
            let id = id.to_string();
            self.finalize_local(ctx, &id);
            self.publish(ctx, &id);
            return false;
        }
        h.confirm_asked = Some((ctx.now, n + 1));
        if (n + 1).is_power_of_two() {
            h.undelivered = (0..h.units.len() as u32).collect();
        }
        true
    }

    /// Sends the claim of this home's result to its heirs.
    fn ask_confirmation(&mut self, ctx: &mut Ctx<'_>, id: &str) {
        let Some(h) = self.homes.get(id) else { return };
        let Some((hash, digest, size)) = h.result.clone() else { return };
        for a in heir_targets(h, ctx.me) {
            let msg = Message::JobFinished {
                job: id.to_string(),
                result: hash.clone(),
                digest: digest.clone(),
                size,
                http: ctx.http,
            };
            ctx.sends.push((a, msg));
        }
    }

    /// Another node holds a verified copy of `hash`: units of running jobs
    /// homed here that read it learn the holder, and heirs hear of it, so a
    /// new home can still find the chunk if this one dies.
    pub fn holder_added(&mut self, hash: &str, holder: SocketAddr) {
        for h in self.homes.values_mut().filter(|h| !h.state.is_final()) {
            for u in h.units.iter_mut().filter(|u| u.hash == hash) {
                // Newest first: holders heard of long ago are likelier to
                // have died (a search after a mass failure finds live ones).
                if !u.holders.contains(&holder) {
                    u.holders.insert(0, holder);
                    u.holders.truncate(8);
                    h.record_dirty = true;
                }
            }
        }
    }

    /// Another node stored a copy of a blob: if it is a job result homed
    /// here, list it as a holder.
    pub fn result_replicated_by_hash(&mut self, hash: &str, holder: SocketAddr) {
        for h in self.homes.values_mut() {
            if h.result.as_ref().is_some_and(|r| r.0 == hash) && !h.result_holders.contains(&holder) {
                h.result_holders.push(holder);
                if h.result_holders.len() > 4 * MAX_SUMMARY_HOLDERS {
                    h.result_holders.remove(1);
                }
                h.summary_dirty = true;
                h.last_summary = Time::ZERO;
            }
        }
    }

    // ---------------------------------------------------------------- heirs

    /// A page of a job record arrived from `from` (who signed it). Returns
    /// false if it is refused: it is not from the job's home (as the page
    /// says, and as an earlier page said or named as an heir; for a job new
    /// here, `from` must be among `may_home`: its creator, or a home the
    /// summary held here names), or it does not add up. An heir that took
    /// a made-up record would one day take over a job that is not one.
    pub fn on_record(&mut self, ctx: &mut Ctx<'_>, from: NodeId, page: JobRecordPage, may_home: &[NodeId]) -> bool {
        if from != page.home {
            return false;
        }
        if !self.heirs.contains_key(&page.job) && !may_home.contains(&from) {
            return false;
        }
        if self.final_jobs.contains_key(&page.job) || self.homes.contains_key(&page.job) {
            return true;
        }
        let end = page.offset.checked_add(page.units.len() as u32);
        if page.total_units == 0
            || page.total_units as usize > self.cfg.max_units
            || end.is_none_or(|e| e > page.total_units)
            || !(1..=7).contains(&page.redundancy)
        {
            return false;
        }
        if let Some(p0) = self.heirs.get(&page.job).and_then(|h| h.page0.as_ref()) {
            let same_home = p0.home == from;
            let appointee = self.heirs.get(&page.job).is_some_and(|h| appointed(h, from));
            if (!same_home && !p0.heirs.iter().any(|p| p.id == from) && !appointee)
                || (same_home && p0.total_units != page.total_units)
            {
                return false;
            }
        }
        let held_units: usize = self.heirs.values().map(|h| h.units.len()).sum();
        if !self.heirs.contains_key(&page.job) && self.heirs.len() >= self.cfg.max_jobs * 4
            || held_units + page.units.len() > MAX_HEIR_UNITS
        {
            // Bounded: a flood of records (or of huge ones) degrades
            // takeover for jobs beyond the bound, never memory.
            return true;
        }
        let rank = page.heirs.iter().position(|p| p.id == ctx.me).unwrap_or(page.heirs.len());
        let h = self.heirs.entry(page.job.clone()).or_insert_with(|| HeirJob {
            page0: None,
            units: BTreeMap::new(),
            decisions: BTreeMap::new(),
            rank,
            last_heard: ctx.now,
            version_seen: 0,
            final_state: false,
            home_gone_at: None,
            appointment: None,
            claim: None,
        });
        h.last_heard = ctx.now;
        h.rank = rank;
        // The creator's appointment, passed on by whichever home holds the
        // job: kept if the creator signed it, the newest one winning.
        if let Some(a) = page.appointment.as_ref() {
            let newer = h.appointment.as_ref().is_none_or(|old| old.proof.ts < a.proof.ts);
            if newer && a.verify(ctx.cluster, &page.job).is_ok() {
                h.appointment = Some(a.clone());
            }
        }
        for (i, u) in (page.offset..).zip(page.units.iter()) {
            h.units.insert(i, u.clone());
            ctx.blobs.pin(&u.hash, &page.job);
        }
        if page.offset == 0 || h.page0.is_none() || h.page0.as_ref().is_some_and(|p| p.home != page.home) {
            h.page0 = Some(JobRecordPage { units: Vec::new(), ..page });
        }
        true
    }

    /// Decisions arrived from `from`: kept if it is the job's home as this
    /// heir knows it.
    pub fn on_decided(&mut self, ctx: &mut Ctx<'_>, from: NodeId, job: &str, decisions: Vec<Decision>) -> bool {
        let Some(h) = self.heirs.get_mut(job) else { return true };
        let Some(p0) = &h.page0 else { return true };
        if p0.home != from && !appointed(h, from) {
            return false;
        }
        let total = p0.total_units;
        // From the creator, a decision is its word. From a home that took
        // over (which may be Byzantine) it must carry a quorum of workers'
        // signed votes for that unit's token.
        let certify = job_creator(job) != Some(from);
        let quorum = p0.redundancy as usize / 2 + 1;
        let (kind, params) = (p0.kind.clone(), p0.params.clone());
        h.last_heard = ctx.now;
        let mut room = MAX_HEIR_UNITS.saturating_sub(self.heirs.values().map(|h| h.decisions.len()).sum());
        let Some(h) = self.heirs.get_mut(job) else { return true };
        for d in decisions.into_iter().filter(|d| d.unit < total && crate::blobs::is_hash(&d.digest)) {
            if room == 0 && !h.decisions.contains_key(&d.unit) {
                break;
            }
            if certify {
                let Some(chunk) = h.units.get(&d.unit).map(|u| u.hash.clone()) else { continue };
                if h.decisions.get(&d.unit).is_some_and(|old| old.digest == d.digest && old.votes == d.votes) {
                    continue;
                }
                let token = token_digest(job, d.unit, &chunk, &kind, &params);
                if !crate::attest::check_certificate(&d.votes, quorum, ctx.cluster, job, d.unit, &token, &d.digest) {
                    ctx.rejected.push("bad_certificate");
                    continue;
                }
            }
            if h.decisions.insert(d.unit, d).is_none() {
                room = room.saturating_sub(1);
            }
        }
        if h.claim.is_some() {
            self.check_claim(ctx, job);
        }
        true
    }

    /// Whether this node is an heir that should now take over `job`:
    /// it heard nothing from a running job's home for its silence window.
    fn heir_due(&self, ctx: &Ctx<'_>, h: &HeirJob, home_gone: bool) -> bool {
        if h.final_state {
            return false;
        }
        let Some(p0) = &h.page0 else { return false };
        if h.units.len() < p0.total_units as usize {
            return false;
        }
        let stagger = self.cfg.heir_stagger * h.rank as u32;
        let wait = if home_gone { stagger } else { self.cfg.heir_silence + stagger };
        // Seen dead and no new home heard of since: the heirs ranked above
        // died too (a mass failure kills an heir with its home as often as
        // not), so do not wait out the silence.
        let gone =
            h.home_gone_at.is_some_and(|t| h.last_heard <= t && ctx.now.since(t) >= HEIR_GONE_STAGGER * h.rank as u32);
        ctx.now.since(h.last_heard) >= wait || gone
    }

    /// The home of some jobs was seen to die (neighbour failure or leave).
    pub fn home_lost(&mut self, ctx: &mut Ctx<'_>, node: NodeId) {
        let now = ctx.now;
        for h in self.heirs.values_mut().filter(|h| home_of(h) == Some(node)) {
            h.home_gone_at.get_or_insert(now);
        }
        let due: Vec<String> = self
            .heirs
            .iter()
            .filter(|(_, h)| home_of(h) == Some(node))
            .filter(|(_, h)| self.heir_due(ctx, h, true))
            .map(|(k, _)| k.clone())
            .collect();
        for id in due {
            self.take_over(ctx, &id);
        }
    }

    fn take_over(&mut self, ctx: &mut Ctx<'_>, id: &str) {
        let Some(h) = self.heirs.remove(id) else {
            return;
        };
        let Some(p0) = h.page0 else { return };
        let units: Vec<UnitRef> = (0..p0.total_units).filter_map(|i| h.units.get(&i).cloned()).collect();
        if units.len() != p0.total_units as usize {
            return;
        }
        let mut unit_state = vec![UnitState::default(); units.len()];
        let mut decided = 0;
        for (u, us) in unit_state.iter_mut().enumerate() {
            if let Some(d) = h.decisions.get(&(u as u32)) {
                us.decided = Some((d.digest.clone(), d.holders.clone(), d.votes.clone()));
                decided += 1;
            } else {
                // Whoever holds these will report within a lease; what
                // nobody reports is issued again when the lease lapses.
                us.reps =
                    (0..p0.redundancy).map(|_| Rep { done: false, last_seen: ctx.now, issued: ctx.now }).collect();
                // The record lists three holders per chunk, learned before
                // whatever killed the home may have killed them too: ask
                // who holds the rest now, so the re-issued tokens name live
                // holders (answers arrive well within the lease).
                us.searched = Some(ctx.now);
                if let Some(u) = h.units.get(&(u as u32)) {
                    if !ctx.wants.contains(&u.hash) {
                        ctx.wants.push(u.hash.clone());
                    }
                }
            }
        }
        let heirs: Vec<PeerInfo> = p0.heirs.iter().filter(|p| p.id != ctx.me).copied().collect();
        let stats = JobStats { takeovers: 1, ..Default::default() };
        let job = HomeJob {
            kind: p0.kind.clone(),
            params: p0.params.clone(),
            units,
            redundancy: p0.redundancy,
            energy: p0.energy,
            heirs,
            created: p0.created,
            created_at: Time(p0.created.min(ctx.now.as_micros())),
            state: JobState::Running,
            merging: false,
            unit_state,
            decided,
            // Win last-writer-wins against every summary the old home wrote.
            // Versions are hybrid clocks (the store lifts the next one to
            // at least the wall clock): one above the last seen wins.
            version: h.version_seen.saturating_add(1),
            last_summary: ctx.now,
            summary_dirty: true,
            undelivered: Vec::new(),
            result: None,
            result_holders: Vec::new(),
            error: None,
            stats,
            workers: BTreeSet::new(),
            record_dirty: false,
            last_record: ctx.now,
            yield_to: std::iter::once(p0.home)
                .chain(p0.heirs.iter().map(|p| p.id))
                .filter(|n| *n != ctx.me)
                .take(MAX_YIELD_TO)
                .collect(),
            appointment: h.appointment,
            confirmations: Vec::new(),
            confirm_asked: None,
        };
        self.homes.insert(id.to_string(), job);
        self.send_record(ctx, id);
        self.publish(ctx, id);
        self.maybe_merge(ctx, id);
    }

    /// `from` says a job finished with result (`hash`, `digest`). Returns
    /// whether `from` is the home this heir knows. From the job's creator
    /// the heir notes the end; from another home (one that took over) it is
    /// a claim the heir checks by merging the decided partials itself, and
    /// confirms only if it gets the same result (`attest`).
    pub fn on_finished(&mut self, ctx: &mut Ctx<'_>, from: PeerInfo, job: &str, hash: &str, digest: &str) -> bool {
        let creator = job_creator(job);
        if let Some(home) = self.homes.get_mut(job) {
            // Two heirs took over (both found the first claim wrong, say):
            // an appointed one that merged the same result confirms the
            // other's claim as an heir would, so neither waits on the other.
            let me_appointed = home.appointment.as_ref().is_some_and(|a| a.names(ctx.me) && a.names(from.id));
            let Some((hash_here, digest_here, _)) = home.result.clone() else { return me_appointed };
            if !me_appointed || from.id == ctx.me {
                return false;
            }
            if hash_here == hash && digest_here == digest {
                let confirmation =
                    Confirmation::new(ctx.identity, ctx.cluster, ctx.wall.as_millis(), job, hash, digest);
                let msg = Message::JobConfirmed {
                    job: job.to_string(),
                    result: hash_here,
                    digest: digest_here,
                    confirmation,
                };
                ctx.sends.push((from, msg));
            } else {
                home.yield_to.remove(&from.id);
                ctx.penalties.push(from.id);
                ctx.rejected.push("wrong_result");
            }
            return true;
        }
        let Some(h) = self.heirs.get_mut(job) else { return false };
        if h.page0.as_ref().is_none_or(|p| p.home != from.id) && !appointed(h, from.id) {
            return false;
        }
        h.last_heard = ctx.now;
        if creator == Some(from.id) {
            h.final_state = true;
            return true;
        }
        let same = h.claim.as_ref().is_some_and(|c| c.home.id == from.id && c.hash == hash && c.digest == digest);
        if !same {
            h.claim = Some(Claim {
                hash: hash.to_string(),
                digest: digest.to_string(),
                home: from,
                merging: false,
                confirmed: None,
            });
        }
        self.check_claim(ctx, job);
        true
    }

    /// An heir holding a claim: confirms it again if it already did, or
    /// merges the decided partials to compare once it has every decision.
    fn check_claim(&mut self, ctx: &mut Ctx<'_>, job: &str) {
        let Some(h) = self.heirs.get_mut(job) else { return };
        let Some(p0) = h.page0.as_ref() else { return };
        let Some(c) = h.claim.as_mut() else { return };
        if let Some(conf) = c.confirmed {
            let msg = Message::JobConfirmed {
                job: job.to_string(),
                result: c.hash.clone(),
                digest: c.digest.clone(),
                confirmation: conf,
            };
            ctx.sends.push((c.home, msg));
            return;
        }
        let appointed = h.appointment.as_ref().is_some_and(|a| a.names(ctx.me));
        if c.merging || !appointed || (h.decisions.len() as u32) < p0.total_units {
            return;
        }
        c.merging = true;
        let partials = (0..p0.total_units)
            .filter_map(|u| h.decisions.get(&u).map(|d| (d.digest.clone(), d.holders.clone())))
            .collect();
        ctx.outputs.push(JobOutput::Merge {
            job: job.to_string(),
            kind: p0.kind.clone(),
            params: p0.params.clone(),
            partials,
        });
    }

    /// An heir merged the partials of a result it was asked to confirm.
    fn claim_merged(&mut self, ctx: &mut Ctx<'_>, job: &str, outcome: Result<(Hash, String, u64), Vec<u32>>) {
        let Some(h) = self.heirs.get_mut(job) else { return };
        let Some(c) = h.claim.as_mut() else { return };
        c.merging = false;
        match outcome {
            Ok((hash, digest, _)) if hash == c.hash && digest == c.digest => {
                ctx.blobs.pin(&hash, job);
                c.confirmed =
                    Some(Confirmation::new(ctx.identity, ctx.cluster, ctx.wall.as_millis(), job, &hash, &digest));
                self.check_claim(ctx, job);
            }
            Ok(_) => {
                // The home claims a result its own decisions do not give:
                // it lies. Stop following it and finish the job here (it
                // needs another appointed heir's confirmation in turn).
                let liar = c.home.id;
                h.claim = None;
                ctx.penalties.push(liar);
                ctx.rejected.push("wrong_result");
                self.take_over(ctx, job);
                if let Some(home) = self.homes.get_mut(job) {
                    home.yield_to.remove(&liar);
                    home.heirs.retain(|p| p.id != liar);
                }
            }
            // Partials that cannot be fetched now may be later: the home
            // asks again.
            Err(_) => {}
        }
    }

    /// An appointed heir confirmed the result of this home (not the
    /// creator): the job is done. Returns false if the confirmation is not
    /// good: not signed by an heir the creator appointed (other than this
    /// node), or not for this home's result.
    pub fn on_confirmed(&mut self, ctx: &mut Ctx<'_>, job: &str, hash: &str, digest: &str, c: Confirmation) -> bool {
        let Some(h) = self.homes.get_mut(job) else { return true };
        if h.state.is_final() {
            return true;
        }
        let ours = h.result.as_ref().is_some_and(|r| r.0 == hash && r.1 == digest);
        let appointed = h.appointment.as_ref().is_some_and(|a| a.names(c.by));
        if !ours || !appointed || c.by == ctx.me || c.verify(ctx.cluster, job, hash, digest).is_err() {
            return false;
        }
        if !h.confirmations.iter().any(|x| x.by == c.by) && h.confirmations.len() < crate::attest::MAX_CONFIRMATIONS {
            h.confirmations.push(c);
        }
        h.state = JobState::Done;
        h.confirm_asked = None;
        h.stats.elapsed_ms = Some(ctx.now.since(h.created_at).as_millis() as u64);
        h.summary_dirty = true;
        let id = job.to_string();
        self.finalize_local(ctx, &id);
        self.publish(ctx, &id);
        true
    }

    // ---------------------------------------------------------------- ticks

    /// A neighbour advertised its load and distances.
    pub fn on_load(&mut self, ctx: &mut Ctx<'_>, from: NodeId, free: u16, room: u16, jobs: Vec<GradientEntry>) {
        let l = self.loads.entry(from).or_default();
        l.free = free;
        l.room = room;
        for e in jobs {
            if !self.final_jobs.contains_key(&e.job) && l.dists.len() < 4 * self.cfg.max_jobs {
                l.dists.insert(e.job, (e.dist, ctx.now));
            }
        }
        if free > 0 && !self.queue.is_empty() {
            self.schedule(ctx);
        }
    }

    /// Records how many times `accuser` saw `node` disagree with a
    /// majority (`own`: this node is the accuser).
    pub fn set_strikes(&mut self, node: NodeId, accuser: NodeId, strikes: u32, own: bool) {
        if self.reputation.len() >= MAX_REPUTATION && !self.reputation.contains_key(&node) {
            return;
        }
        let r = self.reputation.entry(node).or_default();
        if own {
            r.own = r.own.max(strikes);
            return;
        }
        r.others.insert(accuser, strikes);
        if r.others.len() > MAX_ACCUSERS {
            // Keep the heaviest accusations: the rule below reads the
            // second highest.
            if let Some(least) = r.others.iter().min_by_key(|(_, s)| **s).map(|(k, _)| *k) {
                r.others.remove(&least);
            }
        }
    }

    /// How many strikes count against `node`: what this node saw itself,
    /// or else what the second-worst accuser reports. One node's word alone
    /// never sidelines another (it may lie); two independent homes that
    /// both saw a node outvoted are believed.
    pub fn strikes(&self, node: NodeId) -> u32 {
        let Some(r) = self.reputation.get(&node) else { return 0 };
        let mut others: Vec<u32> = r.others.values().copied().collect();
        others.sort_unstable_by(|a, b| b.cmp(a));
        r.own.max(others.get(1).copied().unwrap_or(0))
    }

    /// A neighbour went away.
    pub fn neighbor_down(&mut self, ctx: &mut Ctx<'_>, node: NodeId) {
        self.loads.remove(&node);
        // An heir that is no longer our neighbour may be dead: appoint a
        // replacement so that every running job keeps its heirs.
        let ids: Vec<String> = self
            .homes
            .iter()
            .filter(|(_, h)| !h.state.is_final() && h.heirs.iter().any(|p| p.id == node))
            .map(|(k, _)| k.clone())
            .collect();
        for id in ids {
            let Some(h) = self.homes.get_mut(&id) else {
                continue;
            };
            h.heirs.retain(|p| p.id != node);
            let mut candidates: Vec<PeerInfo> = ctx
                .neighbors
                .iter()
                .filter(|(n, _)| *n != node && !h.heirs.iter().any(|p| p.id == *n))
                .map(|(n, a)| PeerInfo { id: *n, addr: *a })
                .collect();
            ctx.rng.shuffle(&mut candidates);
            if let Some(c) = candidates.first() {
                h.heirs.push(*c);
                if h.yield_to.len() < MAX_YIELD_TO {
                    h.yield_to.insert(c.id);
                }
            }
            // The creator appoints the newcomer (only it can: an heir it
            // did not appoint cannot confirm another home's result).
            if job_creator(&id) == Some(ctx.me) {
                h.appointment = Some(appoint(ctx, &id, &h.heirs, h.appointment.as_ref()));
            }
            // Everyone gets the new ranking; the newcomer also gets the
            // decisions so far.
            h.undelivered = (0..h.units.len() as u32)
                .filter(|u| h.unit_state.get(*u as usize).is_some_and(|us| us.decided.is_some()))
                .collect();
            self.send_record(ctx, &id);
        }
    }

    /// Advertises load and gradient to neighbours: every `load_interval`
    /// while something changed or jobs run (2 s keepalive otherwise), and,
    /// when `freed` (a slot came free, or tokens were passed on), at once if this node has more
    /// room than it last said and 20 ms have passed. Without the latter a
    /// node that runs units faster than the interval sat idle waiting to
    /// be sent more (with 50 ms units, 4 tokens per 250 ms kept it 40% busy).
    fn advertise_load(&mut self, ctx: &mut Ctx<'_>, freed: bool) {
        let now = ctx.now;
        let free = self.free_slots().min(u16::MAX as usize) as u16;
        let room = self.advertised_room(ctx).min(u16::MAX as usize) as u16;
        let more = free > self.last_load_sent.0 || room > self.last_load_sent.1;
        let early = freed && more && now.since(self.last_load_at) >= Duration::from_millis(20);
        if !early && now < self.next_load {
            return;
        }
        let mut entries: Vec<GradientEntry> = Vec::new();
        let known: BTreeSet<String> = self
            .homes
            .iter()
            .filter(|(_, h)| !h.state.is_final())
            .map(|(k, _)| k.clone())
            .chain(self.loads.values().flat_map(|l| l.dists.keys().cloned()))
            .collect();
        for j in known {
            if self.final_jobs.contains_key(&j) {
                continue;
            }
            if let Some(d) = self.dist(ctx, &j) {
                entries.push(GradientEntry { job: j, dist: d });
            }
        }
        let changed = (free, room) != self.last_load_sent;
        let keepalive = now.since(self.last_load_at) >= Duration::from_secs(2);
        if changed || !entries.is_empty() || keepalive {
            self.next_load = now.plus(self.cfg.load_interval);
            self.last_load_sent = (free, room);
            self.last_load_at = now;
            entries.truncate(64);
            for (id, addr) in ctx.neighbors.clone() {
                ctx.sends.push((PeerInfo { id, addr }, Message::Load { free, room, jobs: entries.clone() }));
            }
        }
    }

    /// Periodic work: leases, reports, load and gradient adverts, heirs.
    pub fn tick(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        // Home: re-issue lapsed leases, push decisions to heirs, summaries.
        let ids: Vec<String> = self.homes.keys().cloned().collect();
        for id in &ids {
            let mut lapsed = Vec::new();
            if let Some(h) = self.homes.get(id) {
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
                        let silent = now.since(rep.last_seen) >= self.cfg.lease;
                        let held_too_long = now.since(rep.issued) >= self.cfg.max_hold;
                        if !rep.done && (silent || held_too_long) {
                            lapsed.push((u as u32, r as u8));
                        }
                    }
                }
            }
            let mut give_up = None;
            for (u, r) in lapsed {
                if let Some(h) = self.homes.get_mut(id) {
                    h.stats.reissued += 1;
                    let chunk = h.units.get(u as usize).map(|x| x.hash.clone());
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
                self.issue(ctx, id, u, r);
            }
            if let Some(u) = give_up {
                if let Some(h) = self.homes.get_mut(id) {
                    let chunk = h.units.get(u as usize).map(|x| x.hash.clone()).unwrap_or_default();
                    h.state = JobState::Failed;
                    h.error = Some(format!(
                        "unit {u} could not be run {MAX_UNIT_REISSUES} times: no live node serves its input chunk {chunk}"
                    ));
                    h.stats.elapsed_ms = Some(now.since(h.created_at).as_millis() as u64);
                    h.summary_dirty = true;
                }
                self.finalize_local(ctx, id);
                self.publish(ctx, id);
                continue;
            }
            if self
                .homes
                .get(id)
                .is_some_and(|h| h.record_dirty && now.since(h.last_record) >= Duration::from_millis(500))
            {
                if let Some(h) = self.homes.get_mut(id) {
                    h.record_dirty = false;
                    h.last_record = now;
                }
                self.send_record(ctx, id);
            }
            let (due, heirs, decisions) = match self.homes.get_mut(id) {
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
                                holders: hs.iter().take(3).copied().collect(),
                                votes: votes.clone(),
                            })
                        })
                        .collect();
                    (due, heir_targets(h, ctx.me), decisions)
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
        let due: Vec<String> =
            self.heirs.iter().filter(|(_, h)| self.heir_due(ctx, h, false)).map(|(k, _)| k.clone()).collect();
        for id in due {
            self.take_over(ctx, &id);
        }
        self.heirs.retain(|_, h| !(h.final_state && now.since(h.last_heard) > Duration::from_secs(60)));
        // Worker: report holdings and results toward homes.
        if now >= self.next_report {
            self.next_report = now.plus(self.cfg.report_interval);
            let jobs: BTreeSet<String> = self
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
/// them after every step).
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
            ("job_running", self.running, cfg.worker_slots),
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

/// The creator's signed appointment of `heirs` for `job`, keeping those it
/// appointed `before` (an heir dropped as unreachable may be alive, and may
/// hold an older record) up to `attest::MAX_APPOINTED`.
fn appoint(ctx: &Ctx<'_>, job: &str, heirs: &[PeerInfo], before: Option<&Appointment>) -> Appointment {
    let mut ids: Vec<PeerInfo> = heirs.to_vec();
    for p in before.map(|a| a.heirs.as_slice()).unwrap_or_default() {
        if !ids.iter().any(|q| q.id == p.id) {
            ids.push(*p);
        }
    }
    ids.truncate(crate::attest::MAX_APPOINTED);
    Appointment::new(ctx.identity, ctx.cluster, ctx.wall.as_millis(), job, ids)
}

/// Whether the creator appointed `node` an heir of this job, as far as
/// this heir knows: an appointee may speak for the job (pass on records,
/// decisions and claims) as the home does, and whatever it says that the
/// creator did not is checked (certificates, the heir's own merge).
fn appointed(h: &HeirJob, node: NodeId) -> bool {
    h.appointment.as_ref().is_some_and(|a| a.names(node))
}

/// Where a home sends its heirs' messages: its heirs and, once it claims a
/// result it needs confirmed, every heir the creator appointed.
fn heir_targets(h: &HomeJob, me: NodeId) -> Vec<PeerInfo> {
    let mut out = h.heirs.clone();
    if h.confirm_asked.is_some() {
        for p in h.appointment.iter().flat_map(|a| a.heirs.iter()) {
            if p.id != me && !out.iter().any(|q| q.id == p.id) {
                out.push(*p);
            }
        }
    }
    out
}

fn home_of(h: &HeirJob) -> Option<NodeId> {
    h.page0.as_ref().map(|p| p.home)
}
