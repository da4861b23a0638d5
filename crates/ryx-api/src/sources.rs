//! `GET /v1/sources`: the node's own data (`--source NAME=PATH_OR_GLOB`),
//! the files it follows and how much of each is cut into named chunks.

use serde::{Deserialize, Serialize};

/// Every source of this node, as of its last scan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sources {
    /// The sources, in the order given.
    pub sources: Vec<SourceView>,
}

/// One source: a dataset name and the files this node holds of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceView {
    /// Dataset name.
    pub name: String,
    /// The path or glob followed.
    pub pattern: String,
    /// Files matching it, in path order.
    pub files: Vec<SourceFile>,
    /// Sealed chunks over all files.
    pub chunks: u64,
    /// Bytes in sealed chunks over all files.
    pub sealed_bytes: u64,
    /// Bytes of the files over all files (sealed, open tail and any
    /// incomplete last line).
    pub bytes: u64,
    /// Scans made since the node started.
    pub scans: u64,
    /// Files found rotated or truncated since the node started.
    pub restarts: u64,
    /// Lines cut for being longer than the bound, since the node started.
    pub long_lines: u64,
    /// What the last scan could not read, with why.
    pub errors: Vec<String>,
}

/// One file of a source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// Its path.
    pub path: String,
    /// Times it was found rotated or truncated.
    pub generation: u32,
    /// Its length at the last scan.
    pub len: u64,
    /// Sealed chunks.
    pub chunks: u64,
    /// Where the sealed part ends.
    pub sealed_bytes: u64,
}

/// `GET /v1/sources/{name}/snapshot`: the chunks this node holds of one
/// dataset right now, sealed ones and each file's open tail, in path then
/// offset order. The node keeps serving every chunk listed (by its name,
/// `GET /v1/blobs/{hash}`) for as long as its file is not rotated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSnapshot {
    /// The chunks.
    pub chunks: Vec<SnapshotChunk>,
    /// Dataset name.
    pub name: String,
    /// The node.
    pub node: crate::NodeId,
}

/// One chunk of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// BLAKE3 of the bytes, hex.
    pub hash: crate::BlobHash,
    /// Length in bytes.
    pub len: u64,
    /// Byte offset in it.
    pub offset: u64,
    /// The file.
    pub path: String,
}

/// `GET /v1/datasets`: every dataset this node has heard announced, with
/// what each holder said it holds (as of its last announcement, re-sent
/// when its chunks change and at most every 10 s for its byte count).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Datasets {
    /// The datasets, by name.
    pub datasets: Vec<DatasetView>,
}

/// One dataset across the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetView {
    /// Bytes over all holders.
    pub bytes: u64,
    /// Sealed chunks over all holders.
    pub chunks: u64,
    /// Files over all holders.
    pub files: u64,
    /// Each holder, by node id.
    pub holders: Vec<DatasetHolder>,
    /// Dataset name.
    pub name: String,
}

/// What one node holds of a dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetHolder {
    /// Bytes in its files.
    pub bytes: u64,
    /// Sealed chunks.
    pub chunks: u64,
    /// Files.
    pub files: u64,
    /// Its HTTP address.
    pub http: String,
    /// The node.
    pub node: crate::NodeId,
    /// The list of its sealed chunks that other nodes keep (`--source-copies`),
    /// by which its data is found when it is dead: the blob's name and the
    /// chunks and bytes it lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<HolderCopy>,
}

/// The list of a holder's sealed chunks that other nodes keep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderCopy {
    /// Its blob's name (`GET /v1/blobs/{hash}` on a node keeping it).
    pub hash: crate::BlobHash,
    /// Chunks it lists.
    pub chunks: u64,
    /// Bytes of those chunks.
    pub bytes: u64,
}
