//! Query waves on the wire: a question passed down a tree of neighbours,
//! answers merged on the way back (see [`crate::node`]'s `wave` module).

use serde::{Deserialize, Serialize};

/// What a subtree of a query wave answers: its merged payload, and the
/// figures the root checks the wave's coverage with.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct WaveAnswer {
    /// The merged answer (the driver's: for a search, a partial top-k);
    /// `null` when no node of the subtree holds anything of the dataset.
    #[serde(default)]
    pub payload: serde_json::Value,
    /// Nodes reached (each once).
    pub nodes: u32,
    /// Nodes that answered for their own chunks of the dataset.
    pub holders: u32,
    /// XOR of [`crate::wave_mix`] of each such node's id: the root compares
    /// it with the holders it knows of, and so learns whether every one
    /// answered, without a list that grows with the network.
    pub holders_xor: u64,
    /// XOR of [`crate::wave_mix`] of each holder's id and the digest of the
    /// chunks it answered for: names the snapshot answered for (the same
    /// in a second wave only if no holder's chunks changed).
    pub snapshot_xor: u64,
    /// Chunks and bytes answered for.
    pub chunks: u64,
    /// Bytes of them.
    pub bytes: u64,
    /// Nodes of the subtree that could not answer (a failed evaluation, a
    /// child silent past the deadline, an answer too large): the wave
    /// does not cover the whole subtree.
    pub incomplete: u32,
}

/// A 64-bit fingerprint of `(a, b)` (BLAKE3), XORed into
/// [`WaveAnswer::holders_xor`] and [`WaveAnswer::snapshot_xor`].
pub fn wave_mix(a: u64, b: u64) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(b"ryx-wave");
    h.update(&a.to_le_bytes());
    h.update(&b.to_le_bytes());
    let mut w = [0u8; 8];
    w.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_le_bytes(w)
}

/// A node's place in the spanning tree query waves follow, told to each
/// neighbour on a probe or an ack (`ping`, `ack`) when it changed, and
/// about once a second otherwise: the leader it follows (the
/// least node id it hears of, alive), the leader's latest heartbeat it has
/// (the leader's wall clock in ms: a leader whose heartbeat stops is
/// forgotten), its hops to the leader, and its parent (the neighbour it
/// heard the leader through).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TreeAdvert {
    /// The leader (the tree's root).
    pub leader: crate::id::NodeId,
    /// The leader's heartbeat.
    pub beat: u64,
    /// Hops to the leader.
    pub dist: u8,
    /// The sender's parent (`None`: it is the leader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<crate::id::NodeId>,
}
