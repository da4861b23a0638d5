//! `GET /v1/topology`: the graph of nodes and links a node has learned.

use crate::ids::NodeId;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// This node's links plus every neighbour list it has learned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// Links, once per reporting end.
    pub links: Vec<TopologyLink>,
    /// Nodes whose lists are known, plus this node.
    pub nodes: Vec<TopologyNode>,
    /// The node reporting.
    pub observer: NodeId,
}

/// A node of the learned graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopologyNode {
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Milliseconds since its list was refreshed.
    pub age_ms: u64,
    /// How far its list travelled (0: the observer itself).
    pub hops: u32,
    /// Its API address, if it told.
    pub http: Option<SocketAddr>,
    /// Its id.
    pub node_id: NodeId,
    /// Its network coordinate, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coord: Option<crate::status::Coord>,
}

/// A link of the learned graph, as `source` reported it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopologyLink {
    /// A random long link.
    pub long: bool,
    /// Round-trip time as `source` measured it.
    pub rtt_ms: Option<f64>,
    /// The end that reported it.
    pub source: NodeId,
    /// The other end.
    pub target: NodeId,
}

impl Topology {
    /// The node of the graph serving its API at `http`, if any.
    pub fn node_at(&self, http: SocketAddr) -> Option<&TopologyNode> {
        self.nodes.iter().find(|n| n.http == Some(http))
    }
}
