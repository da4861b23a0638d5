//! `GET /v1/identity?challenge=HEX`: a node's signed proof of who serves at
//! an address. Checking the signature needs the protocol's keys
//! (`ryx_core::identity::HttpIdentity::verify`); this is the answer's shape.

use crate::ids::NodeId;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The answer to an identity challenge. Serialized in this order (the node
/// writes the structure, not a map).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The node answering.
    pub node_id: NodeId,
    /// Its cluster.
    pub cluster: String,
    /// The API address it serves on (its own, not the one it was asked at).
    pub http: SocketAddr,
    /// The challenge it answers.
    pub challenge: String,
    /// Its signature over `[node_id, cluster, http, challenge]`.
    pub proof: Proof,
    /// With a cluster secret: `<key id>.<64 hex digits>`, a MAC over the
    /// same bytes proving membership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_mac: Option<String>,
}

/// A signature: the signer's public key, when it signed, the signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// Public key, 64 hex digits.
    pub k: String,
    /// The signer's wall clock, Unix milliseconds.
    pub t: u64,
    /// Ed25519 signature, 128 hex digits.
    pub s: String,
}
