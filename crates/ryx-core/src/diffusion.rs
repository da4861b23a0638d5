//! Energy-based diffusion: the item store (last writer wins), the eviction
//! rule, and the lazy-push bookkeeping of a Plumtree-style broadcast.

use crate::id::NodeId;
use crate::time::Time;
use crate::wire::{DigestEntry, ItemId, MAX_IDS_PER_MESSAGE};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// An info item as a node holds it.
#[derive(Clone, Debug, Serialize)]
pub struct StoredItem {
    /// Version.
    pub version: u64,
    /// Writer of this version.
    pub origin: NodeId,
    /// The value (shared with the items that carry it).
    pub value: std::sync::Arc<serde_json::Value>,
    /// Energy this node holds it with.
    pub energy: f64,
    /// Hops from the origin.
    pub hops: u32,
    /// Birth time at the origin (origin's clock).
    pub born: u64,
    /// When it arrived here.
    #[serde(skip)]
    pub received: Time,
    /// Serialized size of the value.
    #[serde(skip)]
    pub size: usize,
    /// The origin's signature, passed on with the item (records only).
    #[serde(skip)]
    pub proof: Option<Box<crate::identity::Proof>>,
}

impl StoredItem {
    /// Whether this version beats `(version, origin)` (last writer wins by
    /// version, then by origin id).
    pub fn beats(&self, version: u64, origin: NodeId) -> bool {
        (self.version, self.origin) > (version, origin)
    }
}

/// The info table: key → newest version seen, bounded in count and bytes.
#[derive(Clone, Debug, Default)]
pub struct InfoStore {
    items: BTreeMap<String, StoredItem>,
    bytes: usize,
}

impl InfoStore {
    /// The item held under `key`.
    pub fn get(&self, key: &str) -> Option<&StoredItem> {
        self.items.get(key)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes of values held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Iterates items in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &StoredItem)> {
        self.items.iter()
    }

    /// Items whose keys start with `prefix`, in key order (without a walk
    /// of the others).
    pub fn prefixed<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a StoredItem)> + 'a {
        use std::ops::Bound;
        self.items
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// Stores `item` under `key` (the caller has checked it is newer) and
    /// evicts until both bounds hold. Returns how many items were evicted.
    pub fn insert(&mut self, key: String, item: StoredItem, now: Time, max_items: usize, max_bytes: usize) -> u64 {
        self.bytes += item.size;
        if let Some(old) = self.items.insert(key.clone(), item) {
            self.bytes -= old.size;
        }
        let mut evicted = 0;
        while self.items.len() > max_items || self.bytes > max_bytes {
            // Lowest energy goes first; among equals, the oldest. The new
            // item is a candidate like any other: a flood of low-energy
            // items cannot push out what matters.
            let victim = self
                .items
                .iter()
                .min_by(|a, b| {
                    eviction_score(a.1, now).total_cmp(&eviction_score(b.1, now)).then(a.1.received.cmp(&b.1.received))
                })
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    if let Some(old) = self.items.remove(&k) {
                        self.bytes -= old.size;
                        evicted += 1;
                    }
                }
                None => break,
            }
        }
        evicted
    }

    /// A page of the digest: entries for keys after `after`, stopping when
    /// `max_bytes` of keys or [`MAX_IDS_PER_MESSAGE`] entries are reached.
    /// Returns the entries and the inclusive upper bound (None: to the end).
    pub fn digest_page(&self, after: &str, max_bytes: usize) -> (Vec<DigestEntry>, Option<String>) {
        use std::ops::Bound;
        let mut out = Vec::new();
        let mut used = 0;
        let range = if after.is_empty() {
            self.items.range::<str, _>((Bound::Unbounded, Bound::Unbounded))
        } else {
            self.items.range::<str, _>((Bound::Excluded(after), Bound::Unbounded))
        };
        for (k, v) in range {
            if out.len() >= MAX_IDS_PER_MESSAGE || used + k.len() + 48 > max_bytes {
                let upto = out.last().map(|e: &DigestEntry| e.key.clone());
                return (out, upto);
            }
            used += k.len() + 48;
            out.push(DigestEntry { key: k.clone(), version: v.version, origin: v.origin });
        }
        (out, None)
    }

    /// Keys in `(after, upto]`.
    pub fn keys_in(&self, after: &str, upto: Option<&str>) -> Vec<String> {
        self.items
            .keys()
            .filter(|k| (after.is_empty() || k.as_str() > after) && upto.is_none_or(|u| k.as_str() <= u))
            .cloned()
            .collect()
    }
}

/// Eviction score: energy, discounted by age (half-life one minute).
pub fn eviction_score(item: &StoredItem, now: Time) -> f64 {
    let age_s = now.since(item.received).as_secs_f64();
    item.energy * 0.5f64.powf(age_s / 60.0)
}

/// An item announced to us that we do not hold yet.
#[derive(Clone, Debug)]
pub struct Missing {
    /// Neighbours that announced it, in order, with their energy.
    pub announcers: Vec<(NodeId, f64)>,
    /// When to ask the next announcer for it.
    pub deadline: Time,
}

/// Lazy-push bookkeeping: announced-but-missing items, bounded.
#[derive(Clone, Debug, Default)]
pub struct MissingTable {
    entries: BTreeMap<ItemId, Missing>,
}

/// Most missing items tracked at once.
pub const MAX_MISSING: usize = 4096;

impl MissingTable {
    /// Notes an announcement; the first announcement starts the timer.
    pub fn announce(&mut self, id: ItemId, from: NodeId, energy: f64, now: Time, wait: Duration) {
        if let Some(m) = self.entries.get_mut(&id) {
            if !m.announcers.iter().any(|(n, _)| *n == from) && m.announcers.len() < 8 {
                m.announcers.push((from, energy));
            }
            return;
        }
        if self.entries.len() >= MAX_MISSING {
            return;
        }
        self.entries.insert(id, Missing { announcers: vec![(from, energy)], deadline: now.plus(wait) });
    }

    /// The item arrived: stop waiting for it.
    pub fn arrived(&mut self, id: &ItemId) {
        self.entries.remove(id);
    }

    /// Forgets every version of `key` in `space` up to and including `version`.
    pub fn superseded(&mut self, key: &str, version: u64, origin: NodeId) {
        let stale = |id: &ItemId| id.key == key && (id.version, id.origin) <= (version, origin);
        // Called for every item delivered, and almost always a no-op:
        // look before paying for `retain`'s rebuild of the tree.
        if self.entries.keys().any(stale) {
            self.entries.retain(|id, _| !stale(id));
        }
    }

    /// Items whose timer expired, with the announcer to ask; the timer is
    /// re-armed for the next announcer, and entries with none left dropped.
    pub fn due(&mut self, now: Time, wait: Duration) -> Vec<(ItemId, NodeId)> {
        let mut out = Vec::new();
        let mut drop = Vec::new();
        for (id, m) in self.entries.iter_mut() {
            if m.deadline > now {
                continue;
            }
            if m.announcers.is_empty() {
                drop.push(id.clone());
                continue;
            }
            let (who, _) = m.announcers.remove(0);
            out.push((id.clone(), who));
            m.deadline = now.plus(wait);
        }
        for id in drop {
            self.entries.remove(&id);
        }
        out
    }

    /// Earliest timer.
    pub fn next_deadline(&self) -> Option<Time> {
        self.entries.values().map(|m| m.deadline).min()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is missing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
