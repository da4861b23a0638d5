//! Accounting of the content-addressed blob store: which blobs this node
//! holds, how big they are, who else holds them, which are pinned by jobs,
//! and what to evict. The bytes themselves live in the driver.

use crate::id::NodeId;
use crate::time::Time;
use crate::wire::PeerInfo;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

crate::id::text_id!(
    /// A blob's name: the lowercase hex of its BLAKE3 digest (64 characters
    /// when well formed; [`is_hash`] says, and what comes from the network is
    /// checked where it is admitted, with a counted reason).
    Hash
);

/// Whether a string looks like a blob name (64 lowercase hex digits).
pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// How full a node's blob store is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobUsage {
    /// Blobs held.
    pub blobs: usize,
    /// Bytes charged for them.
    pub used: u64,
    /// Bytes the store may hold.
    pub capacity: u64,
    /// Blobs pinned by jobs (not evictable).
    pub pinned: usize,
}

/// What a blob is for (decides its eviction priority).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobKind {
    /// A work unit's input bytes.
    Chunk,
    /// The list of chunks of an uploaded input, or of a node's source.
    Manifest,
    /// A computed partial result.
    Partial,
    /// A job's final result.
    Result,
}

/// What the node knows of one blob it holds.
#[derive(Clone, Debug, Serialize)]
pub struct BlobMeta {
    /// Bytes.
    pub size: u64,
    /// What it is.
    pub kind: BlobKind,
    /// Energy: uploads start high, replicas lower; decides eviction order.
    pub energy: f64,
    /// When it was stored.
    #[serde(skip)]
    pub added: Time,
    /// Other nodes known to hold a verified copy (each said so itself,
    /// in a signed `blob_have`).
    pub holders: Vec<Holder>,
    /// The node this copy was replicated from: news of copies further out
    /// (`blob_have`) is passed back to it, so the uploader learns every
    /// copy, not just its neighbours'.
    #[serde(skip)]
    pub upstream: Option<PeerInfo>,
    /// Kept in custody (acknowledged data): never evicted to make room.
    pub durable: bool,
}

/// Another node holding a copy of a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// The node.
    pub node: NodeId,
    /// Where to fetch the copy.
    pub http: SocketAddr,
}

impl BlobMeta {
    /// HTTP addresses of the known holders.
    pub fn holder_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.holders.iter().map(|h| h.http)
    }
}

/// Why a blob cannot be stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlobError {
    /// Larger than the whole store.
    #[error("blob of {size} bytes can never fit a store of {capacity} bytes")]
    TooLarge {
        /// Blob size.
        size: u64,
        /// Store capacity.
        capacity: u64,
    },
    /// Everything held is pinned by running jobs or kept in custody.
    #[error("store full: {needed} more bytes needed and every held blob is in use by a running job or kept")]
    Full {
        /// Bytes that could not be freed.
        needed: u64,
    },
}

/// The blob index, bounded in bytes.
#[derive(Clone, Debug, Default)]
pub struct BlobIndex {
    blobs: BTreeMap<Hash, BlobMeta>,
    /// Chunks of the node's own files (its sources), by size: read where
    /// they lie, so not charged to the store and never evicted.
    local: BTreeMap<Hash, u64>,
    pins: BTreeMap<Hash, BTreeSet<String>>,
    used: u64,
    capacity: u64,
}

/// Bytes every blob is charged at least: its metadata costs memory too, so
/// a flood of tiny blobs is bounded by the store like big ones.
pub const MIN_CHARGE: u64 = 256;

/// What storing `size` bytes costs the store.
pub fn charge(size: u64) -> u64 {
    size.max(MIN_CHARGE)
}

/// Most chunks of its own files a node notes (1 TiB at the default chunk
/// size of 4 MiB): the driver follows no more.
pub const MAX_LOCAL_CHUNKS: usize = 1 << 18;

/// Most jobs that pin one blob.
pub const MAX_PINS_PER_BLOB: usize = 64;

/// Most holders remembered per blob (enough to count the copies an upload
/// waits for, `PUT /v1/blobs?copies=N`, on any cluster we run).
pub const MAX_HOLDERS: usize = 32;

impl BlobIndex {
    /// An empty index for a store of `capacity` bytes.
    pub fn new(capacity: u64) -> BlobIndex {
        BlobIndex { capacity, ..Default::default() }
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Bytes the store may hold.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Whether a blob is held.
    pub fn contains(&self, h: &str) -> bool {
        self.blobs.contains_key(h)
    }

    /// Whether a chunk is here, in the store or in the node's own files.
    pub fn holds(&self, h: &str) -> bool {
        self.blobs.contains_key(h) || self.local.contains_key(h)
    }

    /// Notes that a chunk of the node's own files is here (`true`) or no
    /// longer is. Returns false when [`MAX_LOCAL_CHUNKS`] are already
    /// noted and this one is not.
    pub fn set_local(&mut self, h: Hash, size: u64, here: bool) -> bool {
        if !here {
            self.local.remove(&h);
            return true;
        }
        if self.local.len() >= MAX_LOCAL_CHUNKS && !self.local.contains_key(&h) {
            return false;
        }
        self.local.insert(h, size);
        true
    }

    /// Whether a chunk is one of the node's own files'.
    pub fn is_local(&self, h: &str) -> bool {
        self.local.contains_key(h)
    }

    /// The size of a chunk of the node's own files.
    pub fn local_size(&self, h: &str) -> Option<u64> {
        self.local.get(h).copied()
    }

    /// Chunks of the node's own files noted here.
    pub fn local_len(&self) -> usize {
        self.local.len()
    }

    /// Metadata of a held blob.
    pub fn get(&self, h: &str) -> Option<&BlobMeta> {
        self.blobs.get(h)
    }

    /// Iterates held blobs.
    pub fn iter(&self) -> impl Iterator<Item = (&Hash, &BlobMeta)> {
        self.blobs.iter()
    }

    /// Checks that `size` more bytes could be stored, evicting nothing.
    pub fn can_ever_hold(&self, size: u64) -> Result<(), BlobError> {
        if charge(size) > self.capacity {
            return Err(BlobError::TooLarge { size, capacity: self.capacity });
        }
        Ok(())
    }

    /// Makes room for `size` bytes by evicting unpinned blobs (lowest energy,
    /// then oldest). Returns the evicted names.
    pub fn make_room(&mut self, size: u64) -> Result<Vec<Hash>, BlobError> {
        self.can_ever_hold(size)?;
        let size = charge(size);
        let mut evicted = Vec::new();
        while self.used.saturating_add(size) > self.capacity {
            let victim = self
                .blobs
                .iter()
                .filter(|(h, m)| !m.durable && !self.pins.contains_key(*h))
                .min_by(|a, b| a.1.energy.total_cmp(&b.1.energy).then(a.1.added.cmp(&b.1.added)))
                .map(|(h, _)| h.clone());
            match victim {
                Some(h) => {
                    self.remove(&h);
                    evicted.push(h);
                }
                None => return Err(BlobError::Full { needed: self.used.saturating_add(size) - self.capacity }),
            }
        }
        Ok(evicted)
    }

    /// Records a stored blob (after `make_room`). Storing a held blob again
    /// only raises its energy.
    pub fn insert(&mut self, h: Hash, size: u64, kind: BlobKind, energy: f64, now: Time) {
        if let Some(m) = self.blobs.get_mut(&h) {
            m.energy = m.energy.max(energy);
            return;
        }
        self.used = self.used.saturating_add(charge(size));
        self.blobs.insert(
            h,
            BlobMeta { size, kind, energy, added: now, holders: Vec::new(), upstream: None, durable: false },
        );
    }

    /// Forgets a blob (and its pins).
    pub fn remove(&mut self, h: &str) -> Option<BlobMeta> {
        let m = self.blobs.remove(h)?;
        self.pins.remove(h);
        self.used = self.used.saturating_sub(charge(m.size));
        Some(m)
    }

    /// Notes that another node holds a verified copy.
    pub fn add_holder(&mut self, h: &str, node: NodeId, http: SocketAddr) {
        if let Some(m) = self.blobs.get_mut(h) {
            match m.holders.iter_mut().find(|x| x.node == node) {
                Some(x) => x.http = http,
                None => {
                    if m.holders.len() >= MAX_HOLDERS {
                        m.holders.remove(0);
                    }
                    m.holders.push(Holder { node, http });
                }
            }
        }
    }

    /// Forgets every copy `node` was known to hold (it died).
    pub fn remove_holder(&mut self, node: NodeId) {
        for m in self.blobs.values_mut() {
            m.holders.retain(|x| x.node != node);
        }
    }

    /// Notes which node a replicated copy came from.
    pub fn set_upstream(&mut self, h: &str, from: PeerInfo) {
        if let Some(m) = self.blobs.get_mut(h) {
            m.upstream = Some(from);
        }
    }

    /// Verified copies known of a held blob: this one plus known holders.
    pub fn copies(&self, h: &str) -> usize {
        self.blobs.get(h).map_or(0, |m| 1 + m.holders.len())
    }

    /// Marks a held blob as kept in custody (or no longer).
    pub fn set_durable(&mut self, h: &str, durable: bool) {
        if let Some(m) = self.blobs.get_mut(h) {
            m.durable = durable;
        }
    }

    /// Whether `size` bytes more could be held without evicting anything
    /// durable or pinned.
    pub fn could_hold(&self, size: u64) -> bool {
        let size = charge(size);
        let evictable: u64 = self
            .blobs
            .iter()
            .filter(|(h, m)| !m.durable && !self.pins.contains_key(*h))
            .map(|(_, m)| charge(m.size))
            .sum();
        self.capacity.saturating_sub(self.used).saturating_add(evictable) >= size
    }

    /// Sets a held blob's energy.
    pub fn set_energy(&mut self, h: &str, energy: f64) {
        if let Some(m) = self.blobs.get_mut(h) {
            m.energy = energy;
        }
    }

    /// Whether `size` bytes fit after evicting only unpinned blobs with
    /// less energy than `energy` (a replica never displaces what matters
    /// more than it does).
    pub fn has_room_below(&self, size: u64, energy: f64) -> bool {
        let size = charge(size);
        if size > self.capacity {
            return false;
        }
        let free = self.capacity.saturating_sub(self.used);
        if size <= free {
            return true;
        }
        let evictable: u64 = self
            .blobs
            .iter()
            .filter(|(h, m)| !m.durable && m.energy < energy && !self.pins.contains_key(*h))
            .map(|(_, m)| charge(m.size))
            .sum();
        free.saturating_add(evictable) >= size
    }

    /// Pins a held blob for a job (it will not be evicted while pinned).
    /// A blob not held is not pinned: pins are bounded by what is held, and
    /// whoever fetches it later pins it then.
    pub fn pin(&mut self, h: &str, job: &str) {
        if !self.blobs.contains_key(h) {
            return;
        }
        let jobs = self.pins.entry(Hash::from(h)).or_default();
        if jobs.len() < MAX_PINS_PER_BLOB || jobs.contains(job) {
            jobs.insert(job.to_string());
        }
    }

    /// Releases every pin a job holds.
    pub fn unpin_job(&mut self, job: &str) {
        self.pins.retain(|_, jobs| {
            jobs.remove(job);
            !jobs.is_empty()
        });
    }

    /// Releases one holder's pin on one blob.
    pub fn unpin_hash(&mut self, h: &str, job: &str) {
        if let Some(jobs) = self.pins.get_mut(h) {
            jobs.remove(job);
            if jobs.is_empty() {
                self.pins.remove(h);
            }
        }
    }

    /// Whether a blob is pinned.
    pub fn is_pinned(&self, h: &str) -> bool {
        self.pins.contains_key(h)
    }

    /// Number of pinned blobs.
    pub fn pinned_count(&self) -> usize {
        self.pins.len()
    }

    /// Whether every pin names a held blob and the byte count adds up.
    pub fn consistent(&self) -> bool {
        self.pins.keys().all(|h| self.blobs.contains_key(h))
            && self.pins.values().all(|j| j.len() <= MAX_PINS_PER_BLOB)
            && self.used == self.blobs.values().map(|m| charge(m.size)).sum::<u64>()
            && self.used <= self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u8) -> Hash {
        Hash::from(format!("{:064x}", i))
    }

    #[test]
    fn eviction_spares_pinned_blobs_and_refuses_impossible_sizes() {
        let mut b = BlobIndex::new(4000);
        assert!(matches!(b.make_room(4001), Err(BlobError::TooLarge { .. })));
        for i in 0..4 {
            b.make_room(1000).expect("room");
            b.insert(h(i), 1000, BlobKind::Chunk, 10.0 + i as f64, Time(i as u64));
        }
        b.pin(&h(0), "job");
        b.pin(&h(8), "job");
        assert_eq!(b.pinned_count(), 1, "a blob not held is not pinned");
        let ev = b.make_room(1000).expect("room");
        assert_eq!(ev, vec![h(1)], "lowest-energy unpinned blob goes first");
        b.insert(h(9), 1000, BlobKind::Chunk, 1.0, Time(9));
        b.pin(&h(2), "job");
        b.pin(&h(3), "job");
        b.pin(&h(9), "job");
        assert!(matches!(b.make_room(1), Err(BlobError::Full { .. })));
        b.unpin_job("job");
        assert_eq!(b.make_room(1).expect("room"), vec![h(9)]);
        assert!(b.used() <= b.capacity());
        assert!(b.consistent());
    }

    #[test]
    fn durable_blobs_are_never_evicted_for_other_data() {
        let mut b = BlobIndex::new(3000);
        for i in 0..3 {
            b.make_room(1000).expect("room");
            b.insert(h(i), 1000, BlobKind::Chunk, 1.0, Time(i as u64));
        }
        b.set_durable(&h(0), true);
        b.set_durable(&h(1), true);
        // Higher energy, newer: still only the one ordinary copy may go.
        assert_eq!(b.make_room(1000).expect("room"), vec![h(2)]);
        b.insert(h(3), 1000, BlobKind::Chunk, 1000.0, Time(3));
        b.set_durable(&h(3), true);
        assert!(matches!(b.make_room(1), Err(BlobError::Full { .. })));
        assert!(!b.could_hold(1));
        b.set_durable(&h(3), false);
        assert!(b.could_hold(1000));
    }

    #[test]
    fn tiny_blobs_are_charged_their_metadata() {
        // A flood of one-byte blobs is bounded by the store like big ones.
        let mut b = BlobIndex::new(10 * MIN_CHARGE);
        for i in 0..100u8 {
            if b.make_room(1).is_ok() {
                b.insert(h(i), 1, BlobKind::Chunk, 1.0, Time(i as u64));
            }
        }
        assert_eq!(b.len(), 10);
        assert!(b.consistent());
    }
}
