//! Jobs: `POST /v1/jobs`, `GET /v1/jobs`, `GET /v1/jobs/{id}`,
//! `DELETE /v1/jobs/{id}`.

use crate::ids::{BlobHash, JobId, NodeId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::net::SocketAddr;

/// `POST /v1/jobs`: a job over inputs held on the node it is sent to.
/// Unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// `word-count`, `grep` or `log-analysis`.
    pub kind: String,
    /// Uploaded blobs (a manifest stands for its chunks, in order), held
    /// on the node or on one of the nearest it knows.
    /// Either these or `dataset`.
    #[serde(default)]
    pub inputs: Vec<BlobHash>,
    /// A dataset held in the nodes' own files (`--source NAME=…`): the job
    /// covers every holder's chunks of it as they stand at submission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Kind-specific parameters, a JSON object (≤ 4 KiB serialized).
    #[serde(default = "empty_object")]
    pub params: Value,
    /// Replicas per unit, 1–7 (the node's default, 2, when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redundancy: Option<u8>,
    /// Work-token energy, (0, 1000] (100 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<f64>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl SubmitJob {
    /// A job of `kind` over `inputs` with no parameters and the node's defaults.
    pub fn new(kind: impl Into<String>, inputs: Vec<BlobHash>) -> SubmitJob {
        SubmitJob { kind: kind.into(), inputs, dataset: None, params: empty_object(), redundancy: None, energy: None }
    }

    /// A job of `kind` over dataset `name` with no parameters and the node's
    /// defaults.
    pub fn over_dataset(kind: impl Into<String>, name: impl Into<String>) -> SubmitJob {
        SubmitJob {
            kind: kind.into(),
            inputs: Vec::new(),
            dataset: Some(name.into()),
            params: empty_object(),
            redundancy: None,
            energy: None,
        }
    }
}

/// The dataset snapshot a job covers: each holder's chunks as they stood
/// when the job started, in canonical order (node id, then path, then
/// offset).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSnapshot {
    /// Bytes in it.
    pub bytes: u64,
    /// Dataset name.
    pub name: String,
    /// Nodes whose chunks it holds.
    pub nodes: u32,
    /// BLAKE3 over the snapshot's (node, path, offset, length, chunk name)
    /// entries in that order: equal snapshots, equal names.
    pub snapshot: String,
}

/// What `POST /v1/jobs` answers (201).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// For a job over a dataset, the snapshot it covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetSnapshot>,
    /// The new job's id.
    pub job_id: JobId,
    /// For a job over a dataset, holders listed for it that could not be
    /// reached (their chunks are not in the snapshot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreachable: Vec<NodeId>,
    /// For a job over a dataset, holders that could not be reached whose
    /// sealed chunks are in the snapshot all the same, from the list of
    /// them other nodes keep (`--source-copies`); their open tails are not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_copies: Vec<NodeId>,
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Units are being computed or merged.
    Running,
    /// The result is ready.
    Done,
    /// It cannot complete (`error` says why).
    Failed,
    /// A client cancelled it.
    Cancelled,
}

impl JobState {
    /// Whether the job will change no more.
    pub fn is_final(self) -> bool {
        self != JobState::Running
    }

    /// The state as on the wire (`running`, `done`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Units decided of all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Input bytes of the units decided.
    #[serde(default)]
    pub bytes_done: u64,
    /// Input bytes of the job.
    #[serde(default)]
    pub bytes_total: u64,
    /// Units decided.
    pub units_done: u32,
    /// Units in the job.
    pub units_total: u32,
}

/// A job's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStats {
    /// Combine steps of the job's merge tree decided: partials folded on
    /// the nodes holding them before the home merged (0: the home merged
    /// every unit's partial).
    #[serde(default)]
    pub combines: u64,
    /// Results that disagreed with the majority.
    pub disagreements: u64,
    /// Wall time from creation to the final state, ms (none while running).
    pub elapsed_ms: Option<u64>,
    /// Extra replicas issued after disagreements, or to overtake a
    /// straggler near the job's end (speculative re-runs).
    pub extra_replicas: u64,
    /// Units issued again after a lapsed lease.
    pub reissued: u64,
    /// Replica results received.
    pub results: u64,
    /// Times another node took over as home.
    pub takeovers: u64,
    /// Distinct workers that reported results.
    pub workers: u64,
}

/// `GET /v1/jobs/{id}`: a job's progress and, once done, its result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// For a job over a dataset, the snapshot it covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetSnapshot>,
    /// Why it failed.
    pub error: Option<String>,
    /// Its current home.
    pub home: NodeId,
    /// The home's API address.
    pub home_http: SocketAddr,
    /// Its id.
    pub job_id: JobId,
    /// Its kind.
    pub kind: String,
    /// Units decided of all.
    pub progress: Progress,
    /// Replicas per unit.
    pub redundancy: u8,
    /// The result, inlined once done (none in `GET /v1/jobs`).
    pub result: Option<Value>,
    /// Digest of the canonical result bytes, once done.
    pub result_digest: Option<String>,
    /// Where it is in its life.
    pub state: JobState,
    /// Its counters.
    pub stats: JobStats,
}

impl JobView {
    /// Whether the job will change no more.
    pub fn is_final(&self) -> bool {
        self.state.is_final()
    }

    /// The result read as `T` (one of the result types of
    /// [`results`](crate::WordCountResult)), if there is one.
    pub fn result_as<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.result.as_ref().map(|r| T::deserialize(r)).transpose()
    }
}

/// `GET /v1/jobs`: every job known here, newest first, without results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobList {
    /// The jobs.
    pub jobs: Vec<JobView>,
}

/// `DELETE /v1/jobs/{id}` at the job's home.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancelled {
    /// The job.
    pub job_id: JobId,
    /// `cancelled`.
    pub state: JobState,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::GrepResult;

    #[test]
    fn the_documented_job_parses_and_prints_the_same() {
        let text = r#"{"error":null,"home":"6720fd28f87f0e4c","home_http":"127.0.0.1:34001","job_id":"6720fd28f87f0e4c737a811a5e6f542e","kind":"grep","progress":{"bytes_done":3145728,"bytes_total":3145728,"units_done":3,"units_total":3},"redundancy":3,"result":{"lines":126998,"matching_lines":1495,"samples":["x ERROR"]},"result_digest":"93e2","state":"done","stats":{"combines":0,"disagreements":0,"elapsed_ms":131,"extra_replicas":0,"reissued":0,"results":6,"takeovers":0,"workers":2}}"#;
        let j: JobView = serde_json::from_str(text).expect("job");
        assert!(j.is_final());
        let r: GrepResult = j.result_as().expect("grep result").expect("some");
        assert_eq!((r.lines, r.matching_lines), (126998, 1495));
        assert_eq!(serde_json::to_string(&j).expect("json"), text);
    }

    #[test]
    fn a_submission_leaves_out_what_the_node_decides() {
        let s = SubmitJob::new("word-count", vec![BlobHash::from("ab")]);
        assert_eq!(serde_json::to_string(&s).expect("json"), r#"{"kind":"word-count","inputs":["ab"],"params":{}}"#);
        let back: SubmitJob = serde_json::from_str(r#"{"kind":"grep","inputs":[]}"#).expect("defaults");
        assert_eq!(back.params, empty_object());
        assert!(serde_json::from_str::<SubmitJob>(r#"{"kind":"grep","inputs":[],"x":1}"#).is_err());
    }
}
