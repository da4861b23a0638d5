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
    /// How often, in seconds, its origin sends it again when nothing
    /// changes: a receiver keeps it four times as long (absent: the
    /// receiver's own `topology_ttl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_s: Option<u32>,
}

/// The longest a neighbour list is kept without a refresh, whatever its
/// origin says of its refresh period (four of the longest honest period).
pub const MAX_LIST_LIFE: Duration = Duration::from_secs(20 * 60);
/// A list that no other list held (nor this node) names as a neighbour is
/// its dead or departed origin's: it goes once it is this old (or half its
/// origin's refresh period, if longer), not at the end of its life. Its
/// neighbours' changed lists go out within an eighth of their period
/// (at most 37.5 s): the grace covers that, so that a new node's list is
/// not dropped before its neighbours' lists name it.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(40);

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

impl TopologyEntry {
    /// How long it is kept without a refresh: `ttl`, or four of its
    /// origin's refresh periods if that is longer — the period believed up
    /// to `max_every` (the receiver's own bound: a list is not kept longer
    /// because its sender says so), and the whole at most
    /// [`MAX_LIST_LIFE`].
    pub fn life(&self, ttl: Duration, max_every: Duration) -> Duration {
        ttl.max(self.every(max_every).saturating_mul(4)).min(MAX_LIST_LIFE)
    }

    /// Its origin's refresh period, as believed (at most `max_every`).
    fn every(&self, max_every: Duration) -> Duration {
        Duration::from_secs(u64::from(self.list.every_s.unwrap_or(0))).min(max_every)
    }

    /// How long it may stay while no list names its origin.
    fn orphan_grace(&self, max_every: Duration) -> Duration {
        ORPHAN_GRACE.max(self.every(max_every) / 2).min(MAX_LIST_LIFE)
    }
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

    /// Drops entries past their [`TopologyEntry::life`], and orphans (no
    /// other held list, nor `own` — this node's neighbours — names them)
    /// past their grace; periods believed up to `max_every`. Gives back
    /// room the table no longer needs.
    pub fn expire(&mut self, now: Time, ttl: Duration, max_every: Duration, own: &[NodeId]) {
        // A list naming its own origin does not keep it.
        let named: std::collections::BTreeSet<NodeId> = self
            .ids
            .iter()
            .zip(&self.entries)
            .flat_map(|(id, e)| e.list.links.iter().map(|l| l.id).filter(move |l| l != id))
            .chain(own.iter().copied())
            .collect();
        let keep: Vec<bool> = self
            .ids
            .iter()
            .zip(&self.entries)
            .map(|(id, e)| {
                let age = now.since(e.received);
                age < e.life(ttl, max_every) && (age < e.orphan_grace(max_every) || named.contains(id))
            })
            .collect();
        let mut k = keep.iter();
        self.ids.retain(|_| k.next().copied().unwrap_or(false));
        let mut k = keep.iter();
        self.entries.retain(|_| k.next().copied().unwrap_or(false));
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
            every_s: None,
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
            every_s: None,
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

    fn listing(at_s: u64, every_s: Option<u32>, links: &[u64]) -> TopologyEntry {
        let links = links.iter().map(|id| LinkInfo { id: NodeId(*id), long: false, rtt_ms: None }).collect();
        let list = NeighborList {
            addr: "127.0.0.1:1".parse().expect("addr"),
            http: None,
            links,
            zone: None,
            coord: None,
            every_s,
        };
        TopologyEntry { list: ListValue::new(list, 1), received: Time(at_s * 1_000_000), hops: 1 }
    }

    /// A list lives four of its origin's refresh periods (at least the
    /// receiver's ttl; the period believed up to the receiver's bound, the
    /// whole at most `MAX_LIST_LIFE`); one that no other list held (nor
    /// this node's own links) names goes after its grace: its origin is
    /// dead, and its neighbours' lists have said so. A list naming itself
    /// does not keep itself.
    #[test]
    fn lists_live_four_periods_and_orphans_go_after_their_grace() {
        let ttl = Duration::from_secs(120);
        let s = |n: u64| Duration::from_secs(n);
        let max = s(300);
        assert_eq!(listing(0, None, &[]).life(ttl, max), s(120));
        assert_eq!(listing(0, Some(10), &[]).life(ttl, max), s(120));
        assert_eq!(listing(0, Some(150), &[]).life(ttl, max), s(600));
        assert_eq!(listing(0, Some(u32::MAX), &[]).life(ttl, max), MAX_LIST_LIFE, "believed up to 300 s");
        assert_eq!(listing(0, Some(u32::MAX), &[]).life(ttl, s(150)), s(600), "the receiver's own bound");
        let mut t = TopologyTable::default();
        // 1 and 2 name each other; 3 is named by this node; 4 by nobody
        // (dead: its neighbours' lists dropped it); 5 by nobody, but its
        // origin refreshes every 150 s: 75 s of grace; 6 only by itself.
        t.insert(NodeId(1), listing(0, Some(150), &[2]), 64);
        t.insert(NodeId(2), listing(0, Some(150), &[1]), 64);
        t.insert(NodeId(3), listing(0, None, &[]), 64);
        t.insert(NodeId(4), listing(0, None, &[9]), 64);
        t.insert(NodeId(5), listing(0, Some(150), &[9]), 64);
        t.insert(NodeId(6), listing(0, None, &[6]), 64);
        let ids = |t: &TopologyTable| t.iter().map(|(id, _)| id.0).collect::<Vec<_>>();
        let at = |secs: u64| Time(secs * 1_000_000);
        t.expire(at(5), ttl, max, &[NodeId(3)]);
        assert_eq!(ids(&t), vec![1, 2, 3, 4, 5, 6], "all within grace");
        t.expire(at(41), ttl, max, &[NodeId(3)]);
        assert_eq!(ids(&t), vec![1, 2, 3, 5], "the orphans 4 and 6 went after 40 s");
        t.expire(at(80), ttl, max, &[NodeId(3)]);
        assert_eq!(ids(&t), vec![1, 2, 3], "5 after half its period");
        t.expire(at(130), ttl, max, &[NodeId(3)]);
        assert_eq!(ids(&t), vec![1, 2], "3 at the end of the ttl (it sent no period)");
        t.expire(at(599), ttl, max, &[]);
        assert_eq!(ids(&t), vec![1, 2], "four periods of 150 s");
        t.expire(at(600), ttl, max, &[]);
        assert!(t.is_empty());
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
        t.expire(Time(12), Duration::from_micros(3), Duration::ZERO, &[]);
        let ids: Vec<_> = t.iter().map(|(id, e)| (id.0, e.received.0)).collect();
        assert_eq!(ids, vec![(30, 11), (40, 10)]);
        t.remove(&NodeId(40));
        assert_eq!(t.len(), 1);
        assert_eq!(t.version(&NodeId(30)), Some(1));
    }
}
