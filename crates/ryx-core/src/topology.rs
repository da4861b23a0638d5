//! What a node has learned of the network's shape: the neighbour lists that
//! nodes diffuse with low energy.

use crate::id::NodeId;
use crate::time::Time;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::hash::{BuildHasher, Hasher};
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

/// A neighbour list as topology items carry it: shared by every node that
/// holds it, with its JSON length (which answer budgets charge) worked out
/// once.
#[derive(Debug, PartialEq)]
pub struct ListValue {
    list: NeighborList,
    json_len: usize,
}

impl ListValue {
    /// Wraps a list.
    pub fn new(list: NeighborList) -> Arc<ListValue> {
        let json_len = serde_json::to_vec(&list).map(|b| b.len()).unwrap_or(usize::MAX);
        Arc::new(ListValue { list, json_len })
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
    /// Version (origin's counter).
    pub version: u64,
    /// The list (shared with the item that brought it).
    pub list: Arc<ListValue>,
    /// When it arrived here.
    pub received: Time,
    /// Hops it travelled.
    pub hops: u32,
}

/// Bounded table of learned neighbour lists; entries expire without refresh.
///
/// Looked up on every topology item and announcement a node hears, so it is
/// a hash map; its hasher is keyed per node, so that no one can choose ids
/// that collide in another node's table. Whatever iterates it does so in id
/// order, so no result depends on the hashing.
#[derive(Clone, Debug, Default)]
pub struct TopologyTable {
    entries: HashMap<NodeId, TopologyEntry, KeyedIds>,
}

impl TopologyTable {
    /// An empty table whose hasher is keyed by `key` (a per-node secret).
    pub fn with_key(key: u64) -> TopologyTable {
        TopologyTable { entries: HashMap::with_hasher(KeyedIds::new(key)) }
    }

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
            let stalest = self.entries.iter().min_by_key(|(k, e)| (e.received, **k)).map(|(k, _)| *k);
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

    /// The entries in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &TopologyEntry)> {
        let mut all: Vec<_> = self.entries.iter().collect();
        all.sort_unstable_by_key(|(id, _)| **id);
        all.into_iter()
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

/// A keyed hasher for node ids (which are already uniformly distributed:
/// the key only has to keep them from being chosen to collide).
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyedIds {
    k0: u64,
    k1: u64,
}

impl KeyedIds {
    /// Keys derived from a per-node secret.
    pub fn new(secret: u64) -> KeyedIds {
        KeyedIds { k0: mix(secret ^ 0x243f_6a88_85a3_08d3), k1: mix(secret ^ 0x1319_8a2e_0370_7344) | 1 }
    }
}

impl BuildHasher for KeyedIds {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher { h: self.k0, k: self.k1 }
    }
}

/// The hasher [`KeyedIds`] builds.
#[derive(Clone, Copy, Debug)]
pub struct IdHasher {
    h: u64,
    k: u64,
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.h = mix((self.h ^ x).wrapping_mul(self.k));
    }

    fn finish(&self) -> u64 {
        self.h
    }
}

/// SplitMix64's finaliser: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
