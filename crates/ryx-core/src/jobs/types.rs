//! What the job engine says to its driver and in diffused items: job
//! summaries, outputs, refusals. What it sends in datagrams (tokens,
//! reports, records, decisions) is defined in [`crate::wire::jobs`].

use super::{DatasetTag, WorkToken};
use crate::attest::{Appointment, Confirmation};
use crate::blobs::{BlobKind, Hash};
use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Names what a token asks for: its job, unit, chunk, kind and parameters
/// ([`crate::wire::TOKEN_DIGEST_LEN`] hex digits of BLAKE3 over them).
pub fn token_digest(job: &str, unit: u32, chunk: &str, kind: &str, params: &serde_json::Value) -> String {
    let params = serde_json::to_vec(params).unwrap_or_default();
    let mut h = blake3::Hasher::new();
    for part in [job.as_bytes(), chunk.as_bytes(), kind.as_bytes(), &params] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(&unit.to_le_bytes());
    let out = h.finalize();
    out.to_hex()[..crate::wire::TOKEN_DIGEST_LEN].to_string()
}

crate::id::text_id!(
    /// A job's id. Its first 16 hex digits are its creator's node id
    /// ([`job_creator`](super::job_creator)), which decides who may speak
    /// for the job.
    JobId
);

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
    /// Extra replicas issued because replicas disagreed, or to overtake a
    /// straggler near the job's end (a speculative re-run).
    pub extra_replicas: u64,
    /// Results that disagreed with the majority.
    pub disagreements: u64,
    /// Distinct workers that reported results.
    pub workers: u64,
    /// Times another node took over as home.
    pub takeovers: u64,
    /// Combine steps of the merge tree decided (0: a flat merge).
    #[serde(default)]
    pub combines: u64,
    /// Wall time from creation to the final state, in milliseconds.
    pub elapsed_ms: Option<u64>,
}

/// What every node learns of a job (diffused as a `job` item).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct JobSummary {
    /// Job id.
    pub job_id: JobId,
    /// Kind.
    pub kind: String,
    /// State.
    pub state: JobState,
    /// Units in the job.
    pub units_total: u32,
    /// Units decided.
    pub units_done: u32,
    /// Input bytes of the units decided.
    #[serde(default)]
    pub bytes_done: u64,
    /// Input bytes of the job.
    #[serde(default)]
    pub bytes_total: u64,
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
    /// The dataset snapshot the job covers, for a job over a dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetTag>,
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
    /// Run a combine step of a merge tree (on a worker thread): fetch the
    /// token's `inputs` (held here or from their holders), fold them in
    /// order into one partial (not finished), store it (`Node::blob_put`),
    /// then call `Node::work_done`, as for `Execute`.
    Combine {
        /// Token being executed.
        token: WorkToken,
    },
    /// Fetch the decided partials, merge them in unit order, finish, store
    /// the result blob, then call `Node::merge_done`.
    Merge {
        /// Job id.
        job: JobId,
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
        job: JobId,
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

/// Where a job's data lies, for a job over a dataset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placement {
    /// The snapshot the units are.
    pub dataset: Option<DatasetTag>,
    /// Per unit (in unit order), the node holding its chunk in its own
    /// files, if any; empty for uploads.
    pub owners: Vec<Option<crate::wire::PeerInfo>>,
}

/// A merged job result, as the driver reports it and a home keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergedResult {
    /// The result blob's name.
    pub hash: Hash,
    /// The digest of the result bytes.
    pub digest: String,
    /// The result's size in bytes.
    pub size: u64,
}

impl MergedResult {
    /// A result stored under its own digest (as drivers store results).
    pub fn named_by_digest(digest: &str, size: u64) -> MergedResult {
        MergedResult { hash: Hash::from(digest), digest: digest.to_owned(), size }
    }
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
    /// Params larger than [`crate::wire::MAX_PARAMS_LEN`] (4 KiB).
    #[error("params must serialize to at most 4 KiB")]
    ParamsTooLarge,
}
