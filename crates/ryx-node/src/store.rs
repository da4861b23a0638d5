//! The bytes of the blob store (the core keeps the accounting) and the
//! chunking of uploads into content-addressed work units.

use bytes::Bytes;
use ryx_core::jobs::BlobRef;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What an upload is cut into: the whole content's name, its chunks, and
/// (for more than one chunk) the manifest that lists them.
#[derive(Debug)]
pub struct Upload {
    /// Name of the whole content.
    pub hash: String,
    /// Total size.
    pub size: u64,
    /// Chunks in order, with their bytes.
    pub chunks: Vec<(BlobRef, Bytes)>,
    /// Manifest bytes (stored under `hash`) when there is more than one chunk.
    pub manifest: Option<Bytes>,
}

/// The list of chunks of an uploaded input, stored under the input's name.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Marks the blob as a manifest.
    pub ryx_manifest: u32,
    /// Total size of the content.
    pub size: u64,
    /// Chunks in order.
    pub chunks: Vec<BlobRef>,
}

/// Cuts `data` at line ends into chunks of about `chunk_size` bytes and
/// names everything (CPU-heavy: run it off the event loop).
pub fn split_upload(data: Bytes, chunk_size: usize) -> Upload {
    let hash = ryx_compute::digest_hex(&data);
    let size = data.len() as u64;
    let mut ranges = ryx_compute::split_chunks(&data, chunk_size);
    if ranges.is_empty() {
        ranges.push(0..0);
    }
    let chunks: Vec<(BlobRef, Bytes)> = ranges
        .into_iter()
        .map(|r| {
            let b = data.slice(r);
            (BlobRef { hash: ryx_compute::digest_hex(&b), size: b.len() as u64 }, b)
        })
        .collect();
    let manifest = (chunks.len() > 1).then(|| {
        let m = Manifest { ryx_manifest: 1, size, chunks: chunks.iter().map(|c| c.0.clone()).collect() };
        Bytes::from(serde_json::to_vec(&m).unwrap_or_default())
    });
    Upload { hash, size, chunks, manifest }
}

/// Blob bytes by name.
#[derive(Default)]
pub struct Store {
    bytes: HashMap<String, Bytes>,
    manifests: HashMap<String, Vec<BlobRef>>,
}

impl Store {
    /// The bytes of a blob held here.
    pub fn get(&self, hash: &str) -> Option<Bytes> {
        self.bytes.get(hash).cloned()
    }

    /// Keeps bytes (the core has accounted for them).
    pub fn insert(&mut self, hash: String, b: Bytes) {
        if let Ok(m) = serde_json::from_slice::<Manifest>(&b) {
            if m.ryx_manifest == 1 {
                self.manifests.insert(hash.clone(), m.chunks);
            }
        }
        self.bytes.insert(hash, b);
    }

    /// Forgets bytes.
    pub fn remove(&mut self, hash: &str) {
        self.bytes.remove(hash);
        self.manifests.remove(hash);
    }

    /// The chunks of an input: a manifest's list, or the blob itself.
    pub fn chunks_of(&self, hash: &str, size: u64) -> Vec<BlobRef> {
        match self.manifests.get(hash) {
            Some(c) => c.clone(),
            None => vec![BlobRef { hash: hash.to_string(), size }],
        }
    }

    /// Whether the blob is a manifest.
    pub fn is_manifest(&self, hash: &str) -> bool {
        self.manifests.contains_key(hash)
    }
}
