//! What the job engine says on the wire and to its driver: tokens,
//! reports, records, decisions, summaries, outputs.

use crate::attest::{Appointment, Confirmation, Vote};
use crate::blobs::{BlobKind, Hash};
use crate::id::NodeId;
use crate::wire::PeerInfo;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

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
