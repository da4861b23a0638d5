//! The Ryx node's HTTP API as types, and a small client that speaks it.
//!
//! Every request and answer of `/v1/*` (see `docs/api.md`) has a type here:
//! what the node serves, what `ryx-cluster`, `ryx-control` and the tests
//! read. The node builds its answers from these types where it can; where an
//! answer is a `ryx-core` type serialized as it is (status, topology,
//! identity), a contract test in `ryx-node` checks that what it serves
//! deserializes into the type here without losing a field, so the two
//! cannot drift.
//!
//! - [`Client`]: `Client::new(addr).status()`, `.submit_job(..)`, `.job(id)`,
//!   `.put_blob(..)`, `.set_faults(..)`, ... returning typed answers or an
//!   [`Error`] that carries the HTTP status and the API's stable
//!   [`ErrorCode`].
//! - [`Http`]: the blocking HTTP/1.1 transport under it (keep-alive, bounded
//!   bodies, a timeout on every step), shared between clients of many nodes.
//!
//! This crate depends on serde and serde_json only; it knows nothing of the
//! protocol (`ryx-core`) or the daemon (`ryx-node`).
//!
//! Objects the node builds are serialized with their keys in alphabetical
//! order (as `serde_json` orders a map), so the fields of the answer types
//! below are declared in that order: the bytes on the wire are the same
//! whether they were written from a type here or from a JSON map.

mod blobs;
mod client;
mod error;
mod events;
mod faults;
mod http;
mod identity;
mod ids;
mod info;
mod jobs;
mod metrics;
mod results;
mod sources;
mod status;
mod topology;

pub use blobs::{BlobEntry, BlobKind, BlobList, ChunkRef, Deleted, Holder, Manifest, UploadOptions, Uploaded};
pub use client::Client;
pub use error::{Error, ErrorBody, ErrorCode, ErrorDetail, ErrorKind};
pub use events::{Counters, DownReason, ItemId, JobSummary, NodeEvent, RecentEvent, RecentEvents, Sample, Space};
pub use faults::{FaultSpec, FaultState, Impairment};
pub use http::{encode_segment, truncate, Http, Response};
pub use identity::{Identity, Proof};
pub use ids::{BlobHash, JobId, NodeId};
pub use info::{InfoItem, InfoItems, InfoWritten, PutInfo};
pub use jobs::{Cancelled, DatasetSnapshot, JobList, JobState, JobStats, JobView, Progress, SubmitJob, Submitted};
pub use metrics::Metrics;
pub use results::{Alerts, DetectedHeader, GrepResult, LogAnalysisResult, Template, WordCountResult};
pub use sources::{
    DatasetHolder, DatasetView, Datasets, HolderCopy, SnapshotChunk, SourceFile, SourceSnapshot, SourceView, Sources,
};
pub use status::{Coord, Health, Neighbor, Neighbors, PassivePeer, Peers, Status, WorkStatus};
pub use topology::{Topology, TopologyLink, TopologyNode};
