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
    /// Its failure domain (`--zone`), if it was given one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Its network coordinate (`crate::coords`), once it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coord: Option<crate::coords::Coord>,
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

#[cfg(test)]
mod tests {

    /// A zone rides along when given, and is absent otherwise (lists of
    /// nodes without one encode as before, and decode either way).
    #[test]
    fn zone_is_optional_on_the_wire() {
        let mut list = NeighborList {
            addr: "127.0.0.1:1".parse().expect("addr"),
            http: None,
            links: vec![],
            zone: None,
            coord: None,
        };
        let plain = serde_json::to_string(&list).expect("encode");
        assert!(!plain.contains("zone"), "{plain}");
        list.zone = Some("rack-3".into());
        let zoned = serde_json::to_string(&list).expect("encode");
        assert_eq!(serde_json::from_str::<NeighborList>(&zoned).expect("decode"), list);
        assert_eq!(serde_json::from_str::<NeighborList>(&plain).expect("decode").zone, None);
    }

    use super::*;
    use crate::rng::Rng;

    fn entry(at_us: u64) -> TopologyEntry {
        let list = NeighborList {
            addr: "127.0.0.1:1".parse().expect("addr"),
            http: None,
            links: Vec::new(),
            zone: None,
            coord: None,
        };
        TopologyEntry { list: ListValue::new(list, 1), received: Time(at_us), hops: 1 }
    }

    /// Ids evenly spread (as hashes are) and ids bunched together (as
    /// someone choosing them might): the table stays sorted, each entry
    /// beside its id, and finds every id it holds and none it does not.
    #[test]
    fn stays_sorted_and_finds_what_it_holds() {
        let mut rng = Rng::new(7);
        for bunched in [false, true] {
            let mut t = TopologyTable::default();
            let mut all = Vec::new();
            for i in 0..600u64 {
                let raw = rng.next_u64();
                let id = NodeId(if bunched { (raw % 1000) << (i % 3 * 20) } else { raw });
                t.insert(id, entry(i), 2048);
                all.push(id);
            }
            assert!(t.ids.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
            assert_eq!(t.ids.len(), t.entries.len());
            for (i, id) in all.iter().enumerate() {
                assert!(t.get(id).is_some(), "{id:?} held");
                if !all[..i].contains(id) && !all[i + 1..].contains(id) {
                    assert_eq!(t.get(id).map(|e| e.received), Some(Time(i as u64)), "{id:?} beside its entry");
                }
            }
            let held = t.len();
            for _ in 0..600 {
                let stranger = NodeId(rng.next_u64() | 1 << 63);
                assert_eq!(t.get(&stranger).is_some(), all.contains(&stranger));
            }
            assert_eq!(t.len(), held);
        }
    }

    #[test]
    fn evicts_the_stalest_then_the_lowest_id_and_expires_by_age() {
        let mut t = TopologyTable::default();
        t.insert(NodeId(30), entry(5), 3);
        t.insert(NodeId(10), entry(5), 3);
        t.insert(NodeId(20), entry(9), 3);
        t.insert(NodeId(40), entry(10), 3);
        let ids: Vec<_> = t.iter().map(|(id, _)| id.0).collect();
        assert_eq!(ids, vec![20, 30, 40], "the stalest, lowest id went");
        t.insert(NodeId(30), entry(11), 3);
        assert_eq!(t.get(&NodeId(30)).map(|e| e.received), Some(Time(11)), "replaced in place");
        t.expire(Time(12), Duration::from_micros(3));
        let ids: Vec<_> = t.iter().map(|(id, e)| (id.0, e.received.0)).collect();
        assert_eq!(ids, vec![(30, 11), (40, 10)]);
        t.remove(&NodeId(40));
        assert_eq!(t.len(), 1);
        assert_eq!(t.version(&NodeId(30)), Some(1));
    }
}
