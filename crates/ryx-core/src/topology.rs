//! What a node has learned of the network's shape: the neighbour lists that
//! nodes diffuse with low energy.

use crate::id::NodeId;
use crate::time::Time;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// One link in a diffused neighbour list.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LinkInfo {
    /// The neighbour.
    pub id: NodeId,
    /// Whether it is a random long link.
    pub long: bool,
    /// Round-trip time, if measured.
    pub rtt_ms: Option<f64>,
}

/// A node's neighbour list as it diffuses (the value of a topology item).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NeighborList {
    /// The node's UDP address.
    pub addr: SocketAddr,
    /// The node's HTTP address.
    #[serde(default)]
    pub http: Option<SocketAddr>,
    /// Its active neighbours.
    pub links: Vec<LinkInfo>,
}

/// A learned neighbour list.
#[derive(Clone, Debug)]
pub struct TopologyEntry {
    /// Version (origin's counter).
    pub version: u64,
    /// The list (shared with the item that brought it).
    pub list: std::sync::Arc<NeighborList>,
    /// When it arrived here.
    pub received: Time,
    /// Hops it travelled.
    pub hops: u32,
}

/// Bounded table of learned neighbour lists; entries expire without refresh.
#[derive(Clone, Debug, Default)]
pub struct TopologyTable {
    entries: BTreeMap<NodeId, TopologyEntry>,
}

impl TopologyTable {
    /// Version held for a node, if any.
    pub fn version(&self, id: &NodeId) -> Option<u64> {
        self.entries.get(id).map(|e| e.version)
    }

    /// The list held for a node, if any.
    pub fn get(&self, id: &NodeId) -> Option<&TopologyEntry> {
        self.entries.get(id)
    }

    /// Stores a newer list, evicting the stalest entry when full.
    pub fn insert(&mut self, id: NodeId, entry: TopologyEntry, cap: usize) {
        if !self.entries.contains_key(&id) && self.entries.len() >= cap {
            let stalest = self.entries.iter().min_by_key(|(_, e)| e.received).map(|(k, _)| *k);
            if let Some(k) = stalest {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(id, entry);
    }

    /// Forgets a node (it died or left).
    pub fn remove(&mut self, id: &NodeId) {
        self.entries.remove(id);
    }

    /// Drops entries older than `ttl`.
    pub fn expire(&mut self, now: Time, ttl: Duration) {
        self.entries.retain(|_, e| now.since(e.received) < ttl);
    }

    /// Iterates entries.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &TopologyEntry)> {
        self.entries.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
