//! Blobs on the wire: names with sizes, keep certificates and keepers.

use crate::blobs::Hash;
use crate::id::NodeId;
use crate::identity::Proof;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// A named, sized blob.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlobRef {
    /// Name.
    pub hash: Hash,
    /// Size in bytes.
    pub size: u64,
}

/// An origin's signed request that `k` copies of some blobs be kept.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KeepCert {
    /// The blobs.
    pub blobs: Vec<BlobRef>,
    /// Copies wanted, the origin's included (0: release them).
    pub k: u8,
    /// The node that asked (the uploader).
    pub origin: NodeId,
    /// Kept until this time (Unix ms; 0: until released).
    #[serde(default)]
    pub until: u64,
    /// The origin's signature; its time orders a release after a keep.
    pub proof: Proof,
}

impl KeepCert {
    /// The bytes the origin signs.
    pub fn signed_bytes(cluster: &str, blobs: &[BlobRef], k: u8, origin: NodeId, until: u64) -> Vec<u8> {
        serde_json::to_vec(&(cluster, blobs, k, origin, until)).unwrap_or_default()
    }

    /// Checks the origin's signature.
    pub fn verify(&self, cluster: &str) -> Result<(), crate::identity::SigError> {
        let bytes = KeepCert::signed_bytes(cluster, &self.blobs, self.k, self.origin, self.until);
        self.proof.verify(self.origin, crate::identity::domain::KEEP, &[&bytes])
    }

    /// Whether the keep has run out at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.until != 0 && now_ms >= self.until
    }
}

/// A node keeping blobs in custody.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Keeper {
    /// The node.
    pub id: NodeId,
    /// Its UDP address (keepers check on each other).
    pub addr: SocketAddr,
    /// Its HTTP address (where its copies are fetched from).
    pub http: SocketAddr,
}
