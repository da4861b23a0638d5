//! Custody of acknowledged data: an upload answered with `copies=k` keeps
//! k verified copies on k distinct nodes for as long as its origin wants,
//! and the count is restored when a keeper dies.
//!
//! - The origin signs a [`KeepCert`] (blobs, k) and sends it, with the list
//!   of keepers, to k − 1 nodes that hold (or fetch) the blobs. A keeper
//!   marks its copy *durable*: never evicted to make room for other data.
//!   It confirms with a signed `blob_have{kept}`; the origin counts only
//!   confirmed keepers (this is what `PUT /v1/blobs` waits for).
//! - Keepers check on each other: any datagram from a keeper proves it
//!   alive; a keeper not heard from for [`CHECK_EVERY`] is pinged, and one
//!   that misses [`DEAD_AFTER_MISSES`] pings in a row (or that a neighbour
//!   saw fail or leave) is dead. Its copies no longer count.
//! - Repair: for a blob with fewer than k live confirmed keepers, the live
//!   keeper with the lowest id (every keeper computes the same one) sends
//!   the certificate to neighbours that do not hold it yet; they fetch and
//!   confirm, and the new list of keepers goes to every keeper.
//! - Release: a certificate with k = 0, signed by the same origin later than
//!   the keep, makes the copies ordinary (evictable) again.
//!
//! Bounded: custody entries are bounded by the blobs held, certificates by
//! the entries, tracked keepers by [`MAX_PEERS`], and another origin's
//! durable bytes by a share of the store (a member cannot fill every node
//! with data nobody may evict).

use crate::blobs::Hash;
use crate::id::NodeId;
use crate::time::Time;
use crate::wire::{KeepCert, Keeper};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

/// A keeper not heard from for this long is pinged.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Pings in a row a keeper may miss before it counts as dead.
pub const DEAD_AFTER_MISSES: u32 = 3;
/// Keepers tracked at most.
pub const MAX_PEERS: usize = 1024;
/// Other keepers remembered per blob: a `blob_keep` lists them and its
/// sender, at most [`crate::wire::MAX_KEEPERS`].
const MAX_OTHER_KEEPERS: usize = crate::wire::MAX_KEEPERS - 1;
/// A repair is not started for a blob sooner than this after the last.
const REPAIR_EVERY: Duration = Duration::from_secs(1);
/// A node asked to keep a blob has this long to confirm before another is
/// asked in its place (it may have no room); it is not asked again for
/// four times as long.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// A new keeper leaves repairs to whoever asked it for this long: the
/// asker's other requests are being confirmed, and the keepers' lists are
/// converging.
const NEWCOMER_GRACE: Duration = Duration::from_secs(5);
/// Releases remembered (so that an older keep does not come back).
const MAX_RELEASED: usize = 4096;
/// Share of the store one other origin's durable data may take.
pub const FOREIGN_SHARE: f64 = 0.5;

/// One blob in custody here.
#[derive(Clone, Debug)]
pub struct Kept {
    /// The certificate it is kept under (the origin's signature).
    pub cert: KeepCert,
    /// Keepers known (each confirmed, by itself or by the keeper that
    /// told us of it), with whether they confirmed.
    pub keepers: BTreeMap<NodeId, (Keeper, bool)>,
    /// Nodes this one asked to keep it, not confirmed yet, and when.
    pub asked: BTreeMap<NodeId, Time>,
    /// No repair from here before this time plus the repair interval.
    pub repaired: Option<Time>,
}

impl Kept {
    /// Copies wanted.
    pub fn k(&self) -> usize {
        usize::from(self.cert.k)
    }
}

/// What is known of another keeper's liveness.
#[derive(Clone, Debug)]
struct Peer {
    addr: SocketAddr,
    last_heard: Time,
    misses: u32,
    pinged: bool,
}

/// A node's custody state.
#[derive(Clone, Debug, Default)]
pub struct Custody {
    kept: BTreeMap<Hash, Kept>,
    peers: BTreeMap<NodeId, Peer>,
    dead: BTreeSet<NodeId>,
    released: BTreeMap<Hash, u64>,
    /// Blobs to look at on the next tick (a keeper died, one confirmed...).
    dirty: BTreeSet<Hash>,
    /// Blobs whose confirmed keepers changed here: every keeper hears the
    /// new list on the next tick, so that all keepers count the same set.
    announce: BTreeSet<Hash>,
    /// Blobs being fetched to be kept: hash → (cert, keepers, who asked).
    pending: BTreeMap<Hash, (KeepCert, Vec<Keeper>, Keeper)>,
    /// Failure domains among the candidates at the last tick: when one
    /// appears, every blob is looked at again (see [`Custody::tick`]).
    domains: BTreeSet<FailureDomain>,
    /// While jobs are at work in the network, repairs of blobs that still
    /// have at least this many live copies (or all `k`, if fewer) wait,
    /// set by the node before each tick (`None`: no repair waits). After
    /// a mass failure, restoring every lost copy at once would book the
    /// survivors' upload links for seconds, and the jobs' own transfers
    /// would queue behind. Blobs with fewer copies are repaired at once.
    pub defer_from: Option<usize>,
}

/// Live copies (the keeper's own included) from which a repair may wait
/// while jobs run: two more failures leave one.
pub const SAFE_COPIES: usize = 3;

/// What custody asks the node to do.
#[derive(Debug, PartialEq)]
pub enum CustodyAction {
    /// Send a `blob_keep` to this keeper.
    Keep {
        /// Destination.
        to: Keeper,
        /// The certificate.
        cert: Box<KeepCert>,
        /// Which of its blobs to keep.
        hash: Hash,
        /// The keepers to tell it about.
        keepers: Vec<Keeper>,
    },
    /// Probe a keeper.
    Ping {
        /// The keeper.
        id: NodeId,
        /// Its UDP address.
        addr: SocketAddr,
    },
}

impl Custody {
    /// The custody of a held blob.
    pub fn get(&self, h: &str) -> Option<&Kept> {
        self.kept.get(h)
    }

    /// The other nodes that confirmed keeping blob `h` and are not known
    /// dead, in id order.
    pub fn live_keepers(&self, me: NodeId, h: &str) -> Vec<Keeper> {
        self.kept.get(h).map_or_else(Vec::new, |k| {
            k.keepers
                .values()
                .filter(|(p, confirmed)| *confirmed && p.id != me && !self.dead.contains(&p.id))
                .map(|(p, _)| *p)
                .collect()
        })
    }

    /// Blobs in custody here.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether nothing is in custody here.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Keepers tracked.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }

    /// Fetches for custody in flight.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Live confirmed copies of a blob in custody here (this one included).
    pub fn live_copies(&self, h: &str) -> usize {
        self.kept.get(h).map_or(0, |k| 1 + k.keepers.values().filter(|(p, c)| *c && !self.dead.contains(&p.id)).count())
    }

    /// Whether a keep under `cert` of blob `h` is stale (released later).
    pub fn released_after(&self, h: &str, cert: &KeepCert) -> bool {
        self.released.get(h).is_some_and(|t| *t >= cert.proof.ts)
    }

    /// Takes blob `h` into custody under `cert`, knowing `keepers`.
    pub fn keep(&mut self, me: NodeId, h: &str, cert: &KeepCert, keepers: &[Keeper], now: Time) {
        let e = self.kept.entry(Hash::from(h)).or_insert_with(|| Kept {
            cert: cert.clone(),
            keepers: BTreeMap::new(),
            asked: BTreeMap::new(),
            // Whoever asked is completing its own plan (other keepers may
            // be confirming right now): a newcomer leaves repairs alone a
            // while.
            repaired: Some(now.plus(NEWCOMER_GRACE)),
        });
        // A newer certificate of the same origin (a different k) wins.
        if cert.origin == e.cert.origin && cert.proof.ts > e.cert.proof.ts {
            e.cert = cert.clone();
        }
        for kp in keepers.iter().filter(|kp| kp.id != me) {
            if e.keepers.len() >= MAX_OTHER_KEEPERS && !e.keepers.contains_key(&kp.id) {
                break;
            }
            // Whoever lists a keeper heard it confirm.
            e.keepers
                .entry(kp.id)
                .and_modify(|(p, c)| {
                    *p = *kp;
                    *c = true;
                })
                .or_insert((*kp, true));
        }
        for kp in keepers.iter().filter(|kp| kp.id != me) {
            self.track(kp.id, kp.addr, now);
        }
        self.dirty.insert(Hash::from(h));
    }

    /// As the origin: takes `h` into custody with nobody confirmed yet.
    pub fn originate(&mut self, h: &str, cert: &KeepCert) {
        self.kept.insert(
            Hash::from(h),
            Kept { cert: cert.clone(), keepers: BTreeMap::new(), asked: BTreeMap::new(), repaired: None },
        );
        self.dirty.insert(Hash::from(h));
    }

    fn track(&mut self, id: NodeId, addr: SocketAddr, now: Time) {
        if self.dead.contains(&id) {
            return;
        }
        if let Some(p) = self.peers.get_mut(&id) {
            p.addr = addr;
            return;
        }
        if self.peers.len() < MAX_PEERS {
            self.peers.insert(id, Peer { addr, last_heard: now, misses: 0, pinged: false });
        }
    }

    /// `id` confirmed it keeps `h` (a signed `blob_have{kept}`). Returns
    /// whether the keepers changed (everyone should hear of it).
    pub fn confirmed(&mut self, h: &str, who: Keeper, now: Time) -> bool {
        let Some(e) = self.kept.get_mut(h) else { return false };
        let changed = !e.keepers.get(&who.id).is_some_and(|(_, c)| *c);
        if changed && e.keepers.len() >= MAX_OTHER_KEEPERS && !e.keepers.contains_key(&who.id) {
            return false;
        }
        e.keepers.insert(who.id, (who, true));
        e.asked.remove(&who.id);
        self.dead.remove(&who.id);
        self.track(who.id, who.addr, now);
        if changed {
            self.dirty.insert(Hash::from(h));
            self.announce.insert(Hash::from(h));
        }
        changed
    }

    /// A datagram from `id` arrived: it is alive.
    pub fn heard(&mut self, id: NodeId, now: Time) {
        if let Some(p) = self.peers.get_mut(&id) {
            p.last_heard = now;
            p.misses = 0;
            p.pinged = false;
        }
    }

    /// A ping to `id` went unanswered.
    pub fn missed(&mut self, id: NodeId) {
        let dead = match self.peers.get_mut(&id) {
            Some(p) => {
                p.pinged = false;
                p.misses += 1;
                p.misses >= DEAD_AFTER_MISSES
            }
            None => false,
        };
        if dead {
            self.died(id);
        }
    }

    /// `id` died (declared by the failure detector, or missed its pings).
    pub fn died(&mut self, id: NodeId) {
        self.peers.remove(&id);
        if self.dead.len() >= MAX_PEERS {
            self.dead.clear();
        }
        self.dead.insert(id);
        for (h, e) in self.kept.iter_mut() {
            if e.keepers.contains_key(&id) {
                // A death is news: repair at once, whatever was asked before.
                e.repaired = None;
                self.dirty.insert(h.clone());
            }
        }
    }

    /// Releases `h` if `cert` (k = 0) is by its origin and later than the
    /// keep. Returns whether it was released.
    pub fn release(&mut self, h: &str, cert: &KeepCert) -> bool {
        let ok = self.kept.get(h).is_some_and(|e| e.cert.origin == cert.origin && cert.proof.ts >= e.cert.proof.ts);
        if !ok {
            return false;
        }
        self.kept.remove(h);
        self.dirty.remove(h);
        self.announce.remove(h);
        if self.released.len() >= MAX_RELEASED {
            if let Some(old) = self.released.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                self.released.remove(&old);
            }
        }
        self.released.insert(Hash::from(h), cert.proof.ts);
        true
    }

    /// Ends custody of blobs whose keep ran out; returns them.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Hash> {
        let gone: Vec<Hash> =
            self.kept.iter().filter(|(_, e)| e.cert.expired(now_ms)).map(|(h, _)| h.clone()).collect();
        for h in &gone {
            self.forget(h);
        }
        gone
    }

    /// The blob is gone from this node (removed by hand).
    pub fn forget(&mut self, h: &str) {
        self.kept.remove(h);
        self.dirty.remove(h);
        self.announce.remove(h);
        self.pending.remove(h);
    }

    /// Remembers a fetch made to keep `h`.
    pub fn fetching(&mut self, h: &str, cert: KeepCert, keepers: Vec<Keeper>, asker: Keeper) -> bool {
        if self.pending.len() >= MAX_PEERS * 4 {
            return false;
        }
        self.pending.insert(Hash::from(h), (cert, keepers, asker));
        true
    }

    /// A fetch made to keep `h` finished.
    pub fn fetched(&mut self, h: &str) -> Option<(KeepCert, Vec<Keeper>, Keeper)> {
        self.pending.remove(h)
    }

    /// Periodic work: pings for silent keepers, repairs for thin blobs.
    /// `me` is this node as a keeper; `candidates` its neighbours (to take
    /// new copies; those `holds` says already hold the blob come first:
    /// they keep it without a transfer). `domain` names a keeper's failure
    /// domain (see [`FailureDomain`]): a new copy goes to a domain that
    /// holds none yet when any candidate is in one, so that one domain
    /// failing does not take every copy.
    pub fn tick(
        &mut self,
        me: Keeper,
        now: Time,
        candidates: &[Keeper],
        farther: &[Keeper],
        holds: impl Fn(&str, NodeId) -> bool,
        domain: impl Fn(&Keeper) -> FailureDomain,
    ) -> Vec<CustodyAction> {
        let mut out = Vec::new();
        let referenced: BTreeSet<NodeId> = self.kept.values().flat_map(|e| e.keepers.keys().copied()).collect();
        self.peers.retain(|id, _| referenced.contains(id));
        for (id, p) in self.peers.iter_mut() {
            if !p.pinged && now.since(p.last_heard) >= CHECK_EVERY {
                p.pinged = true;
                out.push(CustodyAction::Ping { id: *id, addr: p.addr });
            }
        }
        for h in std::mem::take(&mut self.announce) {
            let Some(e) = self.kept.get(&h) else { continue };
            let mut keepers: Vec<Keeper> =
                e.keepers.values().filter(|(p, c)| *c && !self.dead.contains(&p.id)).map(|(p, _)| *p).collect();
            keepers.push(me);
            for to in keepers.iter().filter(|k| k.id != me.id) {
                out.push(CustodyAction::Keep {
                    to: *to,
                    cert: Box::new(e.cert.clone()),
                    hash: h.clone(),
                    keepers: keepers.clone(),
                });
            }
        }
        // A failure domain never seen before among the candidates: blobs
        // whose copies all lie in one domain may now spread.
        let domains: BTreeSet<FailureDomain> = candidates.iter().chain(farther).map(&domain).collect();
        if domains.iter().any(|d| !self.domains.contains(d)) && domains.len() > 1 {
            self.dirty.extend(self.kept.iter().filter(|(_, e)| e.k() >= 2).map(|(h, _)| h.clone()));
        }
        self.domains = domains;
        let dirty: Vec<Hash> = std::mem::take(&mut self.dirty).into_iter().collect();
        for h in dirty {
            let Some(e) = self.kept.get_mut(&h) else { continue };
            // Forget the dead, and asks long unanswered.
            e.keepers.retain(|id, _| !self.dead.contains(id));
            e.asked.retain(|id, t| !self.dead.contains(id) && now.since(*t) < ASK_TIMEOUT * 4);
            let live: Vec<NodeId> = e.keepers.iter().filter(|(_, (_, c))| *c).map(|(id, _)| *id).collect();
            let pending = e.asked.values().filter(|t| now.since(**t) < ASK_TIMEOUT).count();
            let have = 1 + live.len();
            // Enough copies, all in one failure domain: one more, in
            // another domain if a candidate is in one (checked below).
            let mut spread = false;
            if have >= e.k() {
                if e.k() < 2 || have + pending > e.k() {
                    continue;
                }
                let mut ds = e.keepers.values().filter(|(_, c)| *c).map(|(p, _)| domain(p));
                let mine = domain(&me);
                if ds.any(|d| d != mine) {
                    continue;
                }
                spread = true;
            } else {
                // Look again until the count is back.
                self.dirty.insert(h.clone());
                if have + pending >= e.k() {
                    continue;
                }
            }
            if self.defer_from.is_some_and(|f| have >= f.min(e.k())) {
                // Copies enough to wait until the jobs are done.
                self.dirty.insert(h.clone());
                continue;
            }
            // The lowest-id live keeper repairs; the others wait for it.
            let repairer = live.iter().copied().chain(std::iter::once(me.id)).min();
            if repairer != Some(me.id) {
                continue;
            }
            if e.repaired.is_some_and(|t| now < t.plus(REPAIR_EVERY)) {
                if spread {
                    self.dirty.insert(h.clone()); // not yet: look again
                }
                continue;
            }
            let need = if spread { 1 } else { e.k() - have - pending };
            let ranked = |cs: &[Keeper]| {
                let mut r: Vec<((bool, u64), Keeper)> = cs
                    .iter()
                    .filter(|c| c.id != me.id && !e.keepers.contains_key(&c.id) && !e.asked.contains_key(&c.id))
                    .map(|c| ((holds(&h, c.id), rank(&h, c.id)), *c))
                    .collect();
                r.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
                r.into_iter().map(|(_, c)| c)
            };
            // Neighbours first (a copy costs them one hop); nodes farther
            // off when every neighbour keeps a copy or was asked already,
            // or the count would stay short for as long as the repairer's
            // neighbourhood is full. Before either: a failure domain that
            // holds no copy yet.
            let mut pool: Vec<Keeper> = ranked(candidates).collect();
            for f in ranked(farther) {
                if !pool.iter().any(|p| p.id == f.id) {
                    pool.push(f);
                }
            }
            let mut keepers: Vec<Keeper> = e.keepers.values().filter(|(_, c)| *c).map(|(p, _)| *p).collect();
            keepers.push(me);
            let mut covered: BTreeSet<FailureDomain> = keepers.iter().map(&domain).collect();
            if spread {
                pool.retain(|c| !covered.contains(&domain(c)));
                if pool.is_empty() {
                    continue;
                }
            }
            e.repaired = Some(now);
            let mut chosen: Vec<Keeper> = Vec::with_capacity(need);
            while chosen.len() < need && !pool.is_empty() {
                let at = pool.iter().position(|c| !covered.contains(&domain(c))).unwrap_or(0);
                let c = pool.remove(at);
                covered.insert(domain(&c));
                chosen.push(c);
            }
            for c in chosen {
                e.asked.insert(c.id, now);
                out.push(CustodyAction::Keep {
                    to: c,
                    cert: Box::new(e.cert.clone()),
                    hash: h.clone(),
                    keepers: keepers.clone(),
                });
            }
        }
        out
    }
}

/// What fails together: a node's `--zone` when it names one (a rack, a
/// room, a region), else its IP address (the nodes of one machine die
/// with it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureDomain {
    /// A zone the node was given.
    Zone(String),
    /// The node's host.
    Host(std::net::IpAddr),
}

impl FailureDomain {
    /// The domain of a node at `addr` that announced `zone`.
    pub fn of(zone: Option<&str>, addr: SocketAddr) -> FailureDomain {
        match zone {
            Some(z) => FailureDomain::Zone(z.to_string()),
            None => FailureDomain::Host(addr.ip()),
        }
    }
}

/// Longest zone name; a longer one announced counts as none.
pub const MAX_ZONE: usize = 64;

/// Whether `z` may name a zone: 1 to [`MAX_ZONE`] of `A-Z a-z 0-9 . _ - : /`.
pub fn valid_zone(z: &str) -> bool {
    !z.is_empty() && z.len() <= MAX_ZONE && z.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:/".contains(&b))
}

/// Rendezvous rank of a candidate keeper for a blob.
fn rank(h: &str, id: NodeId) -> u64 {
    let mut x = blake3::Hasher::new();
    x.update(h.as_bytes());
    x.update(&id.0.to_le_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&x.finalize().as_bytes()[..8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::wire::BlobRef;

    fn host(k: &Keeper) -> FailureDomain {
        FailureDomain::of(None, k.addr)
    }

    /// A blob's hash and a keep certificate for it with `k` copies.
    fn blob_cert(byte: &str, k: u8) -> (String, KeepCert) {
        let h = byte.repeat(32);
        let origin = Identity::from_text("origin");
        let blobs = vec![BlobRef { hash: Hash::from(&h), size: 10 }];
        let proof = origin.prove(crate::identity::domain::ITEM, 1, &[b"test"]);
        (h, KeepCert { blobs, k, origin: origin.id(), until: u64::MAX, proof })
    }

    /// The nodes `actions` ask to keep a copy (or tell of one), sorted.
    fn asked(actions: &[CustodyAction]) -> Vec<u64> {
        let mut ids: Vec<u64> = actions
            .iter()
            .filter_map(|a| match a {
                CustodyAction::Keep { to, .. } => Some(to.id.0),
                CustodyAction::Ping { .. } => None,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    fn keeper(i: u64) -> Keeper {
        let addr: SocketAddr = format!("127.0.0.1:{}", 9000 + i).parse().expect("addr");
        Keeper { id: NodeId(i), addr, http: addr }
    }

    /// While jobs are at work, a blob that lost copies but keeps
    /// `SAFE_COPIES` waits for its repair; one with fewer is repaired at
    /// once; when the jobs are done the waiting one is repaired too.
    #[test]
    fn repairs_of_blobs_with_copies_enough_wait_while_jobs_run() {
        let me = keeper(1);
        let near = [keeper(6), keeper(7), keeper(8), keeper(9)];
        let now = Time(1_000_000);
        let (safe, cert_a) = blob_cert("ab", 6);
        let (risky, cert_b) = blob_cert("cd", 6);
        let mut c = Custody::default();
        c.originate(&safe, &cert_a);
        c.originate(&risky, &cert_b);
        // `safe` has four more copies (five in all), `risky` one (two).
        for k in 2..=5 {
            c.confirmed(&safe, keeper(k), now);
        }
        c.confirmed(&risky, keeper(2), now);
        c.defer_from = Some(SAFE_COPIES);
        // Asks of new keepers (the old ones hear the list of keepers too).
        let asked_for = |acts: &[CustodyAction], h: &str| {
            acts.iter()
                .filter(|a| matches!(a, CustodyAction::Keep { hash, to, .. } if hash.as_str() == h && to.id.0 >= 6))
                .count()
        };
        let busy = c.tick(me, now, &near, &[], |_, _| false, host);
        assert_eq!(asked_for(&busy, &safe), 0, "five copies of six: it waits");
        assert!(asked_for(&busy, &risky) >= 1, "two copies of six: repaired at once");
        c.defer_from = None;
        let idle = c.tick(me, now.plus(Duration::from_secs(10)), &near, &[], |_, _| false, host);
        assert_eq!(asked_for(&idle, &safe), 1, "the jobs are done: the sixth copy");
    }

    /// The repairer's neighbours all keep a copy already: it asks nodes
    /// farther off, and asks them only when the neighbours are not enough.
    #[test]
    fn a_full_neighbourhood_sends_the_repair_farther_off() {
        let (h, cert) = blob_cert("ab", 5);
        let me = keeper(1);
        let near = [keeper(2), keeper(3)];
        let far = [keeper(7), keeper(8), keeper(9)];
        let now = Time(1_000_000);

        // Two neighbours free, four copies missing: both neighbours, then
        // two of the farther nodes.
        let mut c = Custody::default();
        c.originate(&h, &cert);
        let first = asked(&c.tick(me, now, &near, &far, |_, _| false, host));
        assert_eq!(first.len(), 4, "{first:?}");
        assert!(first.contains(&2) && first.contains(&3), "neighbours first: {first:?}");

        // Enough neighbours: nobody farther off is asked.
        let mut c = Custody::default();
        c.originate(&h, &cert);
        let many = [keeper(2), keeper(3), keeper(4), keeper(5)];
        let only_near = asked(&c.tick(me, now, &many, &far, |_, _| false, host));
        assert_eq!(only_near, vec![2, 3, 4, 5]);

        // Every neighbour a keeper already: the rest come from farther off.
        let mut c = Custody::default();
        c.originate(&h, &cert);
        for n in near {
            c.confirmed(&h, n, now);
        }
        let rest = asked(&c.tick(me, now, &near, &far, |_, _| false, host));
        let rest: Vec<u64> = rest.into_iter().filter(|id| !near.iter().any(|n| n.id.0 == *id)).collect();
        assert_eq!(rest.len(), 2, "two more copies, from farther off: {rest:?}");
        assert!(rest.iter().all(|id| far.iter().any(|f| f.id.0 == *id)));
    }

    /// Copies go to failure domains that hold none yet, farther off if the
    /// neighbours share the repairer's; with one domain only, as before.
    #[test]
    fn copies_spread_over_failure_domains() {
        let (h, cert) = blob_cert("cd", 3);
        let me = keeper(1);
        let near = [keeper(2), keeper(3), keeper(4), keeper(5)];
        let far = [keeper(7), keeper(8)];
        let zone = |k: &Keeper| -> FailureDomain {
            let z = match k.id.0 {
                1..=4 => "rack-a",
                5 => "rack-b",
                _ => "rack-c",
            };
            FailureDomain::of(Some(z), k.addr)
        };
        let now = Time(1_000_000);
        let mut c = Custody::default();
        c.originate(&h, &cert);
        // Two more copies: rack-b's neighbour, then rack-c farther off, not
        // the three rack-a neighbours.
        assert_eq!(asked(&c.tick(me, now, &near, &far, |_, _| false, zone)), vec![5, 7]);
        // Everything in one domain (one machine): neighbours, as before.
        let mut c = Custody::default();
        c.originate(&h, &cert);
        let got = asked(&c.tick(me, now, &near, &far, |_, _| false, host));
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|id| (2..=5).contains(id)), "{got:?}");
        // Two copies made while only rack-a was known: once a node of
        // another zone is a candidate, one more copy goes there, and no
        // further one once it is confirmed.
        let cert2 = KeepCert { k: 2, ..cert.clone() };
        let mut c = Custody::default();
        c.originate(&h, &cert2);
        c.confirmed(&h, keeper(2), now);
        let only_a = [keeper(2), keeper(3)];
        let none = asked(&c.tick(me, now, &only_a, &[], |_, _| false, zone));
        assert!(none.iter().all(|&id| id == 2), "complete, one zone known: nothing asked ({none:?})");
        let later = Time(now.0 + 60_000_000);
        let spread = asked(&c.tick(me, later, &[keeper(2), keeper(3), keeper(5)], &[], |_, _| false, zone));
        assert_eq!(spread.iter().filter(|&&id| id != 2).copied().collect::<Vec<_>>(), vec![5], "{spread:?}");
        c.confirmed(&h, keeper(5), later);
        let later2 = Time(later.0 + 60_000_000);
        let after = asked(&c.tick(me, later2, &[keeper(2), keeper(3), keeper(5), keeper(7)], &[], |_, _| false, zone));
        assert!(after.iter().all(|id| [2, 5].contains(id)), "spread already: {after:?}");
        assert!(
            valid_zone("eu-west-1/rack:3") && !valid_zone("") && !valid_zone("a b") && !valid_zone(&"x".repeat(65))
        );
    }
}
