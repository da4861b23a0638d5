//! The bytes of the blob store (the core keeps the accounting) and the
//! chunking of uploads into content-addressed work units.

use bytes::Bytes;
use ryx_core::blobs::Hash;
use ryx_core::jobs::BlobRef;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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

/// The bytes of the manifest of content of `size` bytes cut into `chunks`.
pub fn manifest_bytes(size: u64, chunks: Vec<BlobRef>) -> Bytes {
    let m = Manifest { ryx_manifest: 1, size, chunks };
    Bytes::from(serde_json::to_vec(&m).unwrap_or_default())
}

/// Why a manifest is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Not a manifest at all.
    #[error("not a manifest")]
    NotManifest,
    /// Its chunk sizes do not add up to its size, or it lists no chunk.
    #[error("the chunk sizes ({listed} bytes in {count} chunks) do not add up to the size ({size} bytes)")]
    Inconsistent {
        /// Sum of the listed sizes.
        listed: u64,
        /// Chunks listed.
        count: usize,
        /// Size claimed.
        size: u64,
    },
}

/// Parses and checks manifest bytes: chunks listed, and their sizes adding
/// up exactly to the size claimed (what a reader will be sent).
pub fn parse_manifest(b: &[u8]) -> Result<Manifest, ManifestError> {
    let m: Manifest = serde_json::from_slice(b).map_err(|_| ManifestError::NotManifest)?;
    if m.ryx_manifest != 1 {
        return Err(ManifestError::NotManifest);
    }
    let listed = m.chunks.iter().try_fold(0u64, |acc, c| acc.checked_add(c.size));
    if m.chunks.is_empty() || listed != Some(m.size) {
        return Err(ManifestError::Inconsistent {
            listed: listed.unwrap_or(u64::MAX),
            count: m.chunks.len(),
            size: m.size,
        });
    }
    Ok(m)
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

    /// Keeps bytes (the core has accounted for them). Never read as a
    /// manifest, whatever they contain: only this node's own uploads make
    /// manifests ([`Store::insert_manifest`]).
    pub fn insert(&mut self, hash: String, b: Bytes) {
        self.bytes.insert(hash, b);
    }

    /// Keeps the manifest of an upload cut here, checked.
    pub fn insert_manifest(&mut self, hash: String, b: Bytes) -> Result<(), ManifestError> {
        let m = parse_manifest(&b)?;
        self.manifests.insert(hash.clone(), m.chunks);
        self.bytes.insert(hash, b);
        Ok(())
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
            None => vec![BlobRef { hash: Hash::from(hash), size }],
        }
    }

    /// Whether the blob is a manifest.
    pub fn is_manifest(&self, hash: &str) -> bool {
        self.manifests.contains_key(hash)
    }

    /// Whether a manifest other than `except` lists chunk `hash`.
    pub fn listed_elsewhere(&self, hash: &str, except: &str) -> bool {
        self.manifests.iter().any(|(m, chunks)| m != except && chunks.iter().any(|c| c.hash == hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_manifests_that_add_up_are_manifests_and_plain_bytes_never_are() {
        let c = BlobRef { hash: "ab".repeat(32).into(), size: 4 };
        // A crafted blob listing one chunk 45,000 times for a size it does
        // not have: refused as a manifest.
        let bomb = serde_json::to_vec(&Manifest { ryx_manifest: 1, size: 4, chunks: vec![c.clone(); 45_000] })
            .map(Bytes::from)
            .unwrap_or_default();
        assert!(matches!(parse_manifest(&bomb), Err(ManifestError::Inconsistent { .. })));
        let mut st = Store::default();
        st.insert("cd".repeat(32), bomb.clone());
        assert!(!st.is_manifest(&"cd".repeat(32)), "uploaded bytes were taken for a manifest");
        assert!(st.insert_manifest("ef".repeat(32), bomb).is_err());
        let ok = manifest_bytes(8, vec![c.clone(), c]);
        assert!(st.insert_manifest("ef".repeat(32), ok).is_ok());
        assert_eq!(st.chunks_of(&"ef".repeat(32), 8).len(), 2);
    }
}
