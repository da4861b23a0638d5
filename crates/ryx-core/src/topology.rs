//! What a node has learned of the network's shape: the neighbour lists that
//! nodes diffuse with low energy.

use crate::id::NodeId;
use crate::time::Time;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
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

/// A neighbour list as topology items carry it: shared by every node that
/// holds it, with its JSON length (which answer budgets charge) worked out
/// once.
#[derive(Debug, PartialEq)]
pub struct ListValue {
    list: NeighborList,
    version: u64,
    json_len: usize,
}

impl ListValue {
    /// Wraps version `version` of a node's list.
    pub fn new(list: NeighborList, version: u64) -> Arc<ListValue> {
        let json_len = serde_json::to_vec(&list).map(|b| b.len()).unwrap_or(usize::MAX);
        Arc::new(ListValue { list, version, json_len })
    }

    /// The same list as `version` (shared if it is that version already).
    pub fn as_version(this: &Arc<ListValue>, version: u64) -> Arc<ListValue> {
        if this.version == version {
            this.clone()
        } else {
            Arc::new(ListValue { list: this.list.clone(), version, json_len: this.json_len })
        }
    }

    /// The origin's version of its list.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Length of the list serialized.
    pub fn json_len(&self) -> usize {
        self.json_len
    }
}

impl std::ops::Deref for ListValue {
    type Target = NeighborList;
    fn deref(&self) -> &NeighborList {
        &self.list
    }
}

impl Serialize for ListValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.list.serialize(s)
    }
}

/// A learned neighbour list.
#[derive(Clone, Debug)]
pub struct TopologyEntry {
    /// The list and its version (shared with the item that brought it).
    pub list: Arc<ListValue>,
    /// When it arrived here.
    pub received: Time,
    /// Hops it travelled.
    pub hops: u32,
}

/// Bounded table of learned neighbour lists; entries expire without refresh.
///
/// Looked up on every topology item and announcement a node hears, and
/// holding several hundred lists on every node: the ids sorted in a vector
/// of their own (a bisection touches few cache lines), the entries in a
/// parallel one, both as compact as their contents. A node learns a new id
/// far more rarely than it hears a known one.
#[derive(Clone, Debug, Default)]
pub struct TopologyTable {
    ids: Vec<NodeId>,
    entries: Vec<TopologyEntry>,
}

impl TopologyTable {
    fn find(&self, id: &NodeId) -> Result<usize, usize> {
        self.ids.binary_search(id)
    }

    /// Version held for a node, if any.
    pub fn version(&self, id: &NodeId) -> Option<u64> {
        self.get(id).map(|e| e.list.version())
    }

    /// The list held for a node, if any.
    pub fn get(&self, id: &NodeId) -> Option<&TopologyEntry> {
        self.find(id).ok().map(|i| &self.entries[i])
    }

    /// Stores a newer list, evicting the stalest entry when full.
    pub fn insert(&mut self, id: NodeId, entry: TopologyEntry, cap: usize) {
        if let Ok(i) = self.find(&id) {
            self.entries[i] = entry;
            return;
        }
        if self.entries.len() >= cap {
            let stalest = (0..self.ids.len()).min_by_key(|&i| (self.entries[i].received, self.ids[i]));
            if let Some(i) = stalest {
                self.ids.remove(i);
                self.entries.remove(i);
            }
        }
        if let Err(i) = self.find(&id) {
            self.ids.insert(i, id);
            self.entries.insert(i, entry);
        }
    }

    /// Forgets a node (it died or left).
    pub fn remove(&mut self, id: &NodeId) {
        if let Ok(i) = self.find(id) {
            self.ids.remove(i);
            self.entries.remove(i);
        }
    }

    /// Drops entries older than `ttl`, and gives back room the table no
    /// longer needs.
    pub fn expire(&mut self, now: Time, ttl: Duration) {
        let mut keep = self.entries.iter().map(|e| now.since(e.received) < ttl);
        self.ids.retain(|_| keep.next().unwrap_or(false));
        self.entries.retain(|e| now.since(e.received) < ttl);
        let n = self.entries.len();
        if self.entries.capacity() > 2 * n + 16 {
            self.ids.shrink_to(n + n / 4 + 8);
            self.entries.shrink_to(n + n / 4 + 8);
        }
    }

    /// The entries in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &TopologyEntry)> {
        self.ids.iter().zip(&self.entries)
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
