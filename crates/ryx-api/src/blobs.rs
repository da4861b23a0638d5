//! Blobs: uploads (`PUT /v1/blobs`, `POST /v1/blobs/sample`), what a node
//! holds (`GET /v1/blobs`), manifests and deletion.

use crate::ids::{BlobHash, NodeId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The query of an upload (`PUT /v1/blobs`, `POST /v1/blobs/sample`): how
/// far it is replicated, how many copies it waits for, how long they stay.
/// Every field left out takes the node's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UploadOptions {
    /// Replication energy, 0..1000 (0: no replication).
    pub energy: Option<f64>,
    /// Copies to keep of every chunk, 1..=33 (default 3).
    pub copies: Option<usize>,
    /// Longest wait for the copies, ms (default 30,000, at most 600,000).
    pub copies_timeout_ms: Option<u64>,
    /// Seconds the copies are kept (default: until deleted).
    pub keep_s: Option<u64>,
}

impl UploadOptions {
    /// The query string parameters (`energy=4&copies=3`), empty when every
    /// field is left to the node.
    pub fn query(&self) -> String {
        let mut q: Vec<String> = Vec::new();
        if let Some(e) = self.energy {
            q.push(format!("energy={e}"));
        }
        if let Some(c) = self.copies {
            q.push(format!("copies={c}"));
        }
        if let Some(t) = self.copies_timeout_ms {
            q.push(format!("copies_timeout_ms={t}"));
        }
        if let Some(k) = self.keep_s {
            q.push(format!("keep_s={k}"));
        }
        q.join("&")
    }
}

/// What an upload answers (201).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uploaded {
    /// Chunks (work units) the content was cut into.
    pub chunks: usize,
    /// The fewest confirmed copies of any chunk when the node answered.
    pub copies: usize,
    /// The copies it waited for (capped by the nodes it knows);
    /// `copies < copies_wanted` means its wait ran out first.
    pub copies_wanted: usize,
    /// The content's name (a manifest's when it has several chunks).
    pub hash: BlobHash,
    /// Bytes.
    pub size: u64,
}

/// What a blob is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobKind {
    /// A work unit's input bytes.
    Chunk,
    /// The list of chunks of an upload.
    Manifest,
    /// A computed partial result.
    Partial,
    /// A job's final result.
    Result,
}

/// Another node holding a verified copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Where to fetch it.
    pub http: SocketAddr,
    /// The node.
    pub node: NodeId,
}

/// One blob a node holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlobEntry {
    /// Kept in custody here: never evicted for other data.
    pub durable: bool,
    /// Its energy (decides eviction order).
    pub energy: f64,
    /// Its name.
    pub hash: BlobHash,
    /// Other nodes known to hold a verified copy (at most 32).
    pub holders: Vec<Holder>,
    /// For a blob in custody here: the node whose upload it is.
    pub keep_origin: Option<NodeId>,
    /// For a blob in custody here: live confirmed copies, this one included.
    pub kept_copies: Option<usize>,
    /// What it is.
    pub kind: BlobKind,
    /// Bytes.
    pub size: u64,
}

/// `GET /v1/blobs`: what a node holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlobList {
    /// Every blob.
    pub blobs: Vec<BlobEntry>,
    /// Bytes held.
    pub bytes: u64,
    /// The store's size (`--memory-limit`).
    pub capacity: u64,
    /// Blobs held.
    pub count: usize,
    /// Blobs pinned by running jobs or uploads in progress.
    pub pinned: usize,
}

/// `GET /v1/blobs/{hash}?manifest=true`: the chunks of an upload. Written
/// as stored, in this order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Marks a manifest: 1.
    pub ryx_manifest: u32,
    /// Bytes of the whole content.
    pub size: u64,
    /// Its chunks, in order.
    pub chunks: Vec<ChunkRef>,
}

/// A chunk of a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// The chunk's name.
    pub hash: BlobHash,
    /// Its bytes.
    pub size: u64,
}

/// `DELETE /v1/blobs/{hash}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    /// Blobs removed here.
    pub dropped: usize,
    /// The blob asked for.
    pub hash: BlobHash,
    /// Blobs whose custody was released.
    pub released: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_options_make_a_query_string() {
        assert_eq!(UploadOptions::default().query(), "");
        let o = UploadOptions { energy: Some(1.5), copies: Some(9), copies_timeout_ms: Some(60000), keep_s: None };
        assert_eq!(o.query(), "energy=1.5&copies=9&copies_timeout_ms=60000");
    }
}
