//! `GET /healthz`, `GET /v1/status`, `GET /v1/neighbors`, `GET /v1/peers`.

use crate::ids::NodeId;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// `GET /healthz`: `{"status":"ok"}` (a node shutting down answers
/// `503 leaving` instead).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

impl Health {
    /// The answer of a live node.
    pub fn ok() -> Health {
        Health { status: "ok".to_owned() }
    }
}

/// `GET /v1/status`: a snapshot of the node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Its cluster.
    pub cluster_id: String,
    /// Info items held.
    pub info_items: usize,
    /// SIGTERM received, hand-over in progress.
    pub leaving: bool,
    /// Lifeguard multiplier 0–8: timeouts scale by 1 + it.
    pub local_health: u32,
    /// Active neighbours.
    pub neighbors: Vec<Neighbor>,
    /// This node.
    pub node_id: NodeId,
    /// Size of the passive list.
    pub passive_count: usize,
    /// Neighbour lists known, plus this node.
    pub topology_nodes: usize,
    /// Milliseconds since start.
    pub uptime_ms: u64,
    /// Job engine and blob store load.
    pub work: WorkStatus,
    /// Its failure domain (`--zone`), if it was given one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Its network coordinate, once a round trip has placed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coord: Option<Coord>,
}

/// A network coordinate (Vivaldi): a point and a height in milliseconds,
/// so that the distance between two nodes' points plus their heights
/// predicts their round trip, and the node's estimate of its relative
/// error (1: knows nothing).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coord {
    /// Relative error estimate, 0 to 1.5.
    pub e: f64,
    /// Height, ms.
    pub h: f64,
    /// Plane position, ms.
    pub x: f64,
    /// Plane position, ms.
    pub y: f64,
}

impl Coord {
    /// The round trip the two coordinates predict, in milliseconds.
    pub fn rtt_ms(&self, other: &Coord) -> f64 {
        (self.x - other.x).hypot(self.y - other.y) + self.h + other.h
    }
}

impl Status {
    /// Ids of the active neighbours.
    pub fn neighbor_ids(&self) -> Vec<NodeId> {
        self.neighbors.iter().map(|n| n.node_id.clone()).collect()
    }
}

/// The job engine's and blob store's load (`status.work`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkStatus {
    /// Bytes of blobs held.
    pub blob_bytes: u64,
    /// Blobs held.
    pub blobs: usize,
    /// Job records held as heir.
    pub heir_of: usize,
    /// Jobs homed here (finished ones included while remembered).
    pub homes: usize,
    /// Work tokens waiting here.
    pub queued: usize,
    /// Units running here.
    pub running: usize,
    /// Worker slots (`--workers`).
    pub slots: usize,
}

/// An active neighbour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Neighbor {
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Milliseconds since the link formed.
    pub age_ms: u64,
    /// Payloads are pushed eagerly on this link (Plumtree).
    pub eager: bool,
    /// The random long link.
    pub long: bool,
    /// Its id.
    pub node_id: NodeId,
    /// Smoothed round-trip time (none until measured).
    pub rtt_ms: Option<f64>,
    /// Milliseconds since it was last heard.
    pub silent_ms: u64,
    /// Currently suspected.
    pub suspect: bool,
}

/// `GET /v1/neighbors`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Neighbors {
    /// The active neighbours.
    pub neighbors: Vec<Neighbor>,
}

/// A peer of the passive list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PassivePeer {
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Its id.
    pub node_id: NodeId,
    /// Round-trip time, if probed.
    pub rtt_ms: Option<f64>,
}

/// `GET /v1/peers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Peers {
    /// The passive list.
    pub passive: Vec<PassivePeer>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_status_parses_and_prints_the_same() {
        let text = r#"{"addr":"127.0.0.1:34001","cluster_id":"docs","info_items":0,"leaving":false,"local_health":0,"neighbors":[{"addr":"127.0.0.1:34002","age_ms":3486,"eager":false,"long":true,"node_id":"83cf85170fcd5678","rtt_ms":0.193,"silent_ms":88,"suspect":false}],"node_id":"bc21727c6dc0aad6","passive_count":0,"topology_nodes":3,"uptime_ms":3631,"work":{"blob_bytes":0,"blobs":0,"heir_of":0,"homes":0,"queued":0,"running":0,"slots":1}}"#;
        let s: Status = serde_json::from_str(text).expect("status");
        assert_eq!(s.neighbor_ids(), vec![NodeId::from("83cf85170fcd5678")]);
        assert_eq!(serde_json::to_string(&s).expect("json"), text);
        assert_eq!(serde_json::to_string(&Health::ok()).expect("json"), r#"{"status":"ok"}"#);
    }
}
