//! The job engine's messages on the wire: work tokens, the gradient,
//! workers' reports, job records and decisions. The engine
//! ([`crate::jobs`]) re-exports them.

use super::PeerInfo;
use crate::attest::{Appointment, Vote};
use crate::blobs::Hash;
use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// One unit of work for one replica: what to run, on which chunk, for whom.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WorkToken {
    /// Job id.
    pub job: crate::jobs::JobId,
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
    /// For a combine step of the job's merge tree (see
    /// [`crate::jobs::MergeTree`]): the decided partials to fold, in unit
    /// order, and `chunk` is [`crate::jobs::combine_name`] of their
    /// digests. Empty for a unit of input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<PartialRef>,
}

/// A decided partial result and where it is held.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartialRef {
    /// Its digest (and blob name).
    pub digest: Hash,
    /// HTTP addresses of nodes holding it.
    pub holders: Vec<SocketAddr>,
}

/// A node's distance to a job's home, as advertised.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GradientEntry {
    /// Job id.
    pub job: crate::jobs::JobId,
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
    /// [`crate::jobs::token_digest`] of the token the worker ran: the home counts the
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

/// A worker's report to a job's home.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct JobReport {
    /// Job id.
    pub job: crate::jobs::JobId,
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

/// One page of a job record, sent by the home to its heirs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct JobRecordPage {
    /// Job id.
    pub job: crate::jobs::JobId,
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
    /// The dataset snapshot the units are, for a job over a dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetTag>,
    /// Fan-in of the job's merge tree ([`crate::jobs::MergeTree`]; 0: the
    /// home merges every unit's partial itself).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fan_in: u16,
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

/// The dataset snapshot a job covers: each holder's chunks of the dataset
/// at the moment the job started, in canonical order (node id, path,
/// offset), named by a digest of that list.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DatasetTag {
    /// Dataset name (at most [`crate::wire::limits::MAX_DATASET_NAME`] bytes).
    pub name: String,
    /// BLAKE3 over the snapshot's (node, path, offset, length, chunk name)
    /// entries in canonical order, hex.
    pub snapshot: String,
    /// Nodes whose chunks the snapshot holds.
    pub nodes: u32,
    /// Bytes in the snapshot.
    pub bytes: u64,
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
