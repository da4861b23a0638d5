//! Acknowledged data: custody of uploaded blobs, keepers checking on one
//! another, repair and release.

use super::*;

/// Nodes beyond the neighbours a keeper may ask for a copy in one round.
const MAX_FARTHER_KEEPERS: usize = 32;

/// Jobs count as at work in the network until no summary of a running
/// job has arrived for this long (a running home republishes within a
/// second of any progress).
const JOBS_QUIET: Duration = Duration::from_secs(3);

/// Longest custody defers repairs for jobs without a pause: a network that
/// always has a job running still gets its copies back.
const MAX_REPAIR_DEFERRAL: Duration = Duration::from_secs(60);

impl Node {
    /// This node as a keeper.
    pub(super) fn as_keeper(&self) -> crate::wire::Keeper {
        crate::wire::Keeper { id: self.id, addr: self.addr, http: self.http }
    }

    /// Takes held blobs into custody as their origin, with `k` copies in
    /// all (this one included): other nodes are asked to keep the rest, and
    /// keep the count when keepers die (see `custody`), until the wall
    /// clock reaches `until` (Unix ms; 0: until released). Returns how
    /// many blobs are now in custody. Chunks of the node's own files
    /// ([`Node::set_local_chunks`]) count as held: that is how they
    /// survive their node.
    pub fn keep(&mut self, now: Time, blobs: Vec<BlobRef>, k: usize, until: u64) -> usize {
        self.now = now.max(self.now);
        let k = k.clamp(1, wire::MAX_KEEPERS) as u8;
        let held: Vec<BlobRef> = blobs.into_iter().filter(|b| self.blobs.holds(&b.hash)).collect();
        let n = held.len();
        for page in held.chunks(wire::MAX_BLOBS_PER_MESSAGE) {
            let cert = self.keep_cert(page.to_vec(), k, until);
            for b in page {
                self.blobs.set_durable(&b.hash, true);
                self.custody.originate(&b.hash, &cert);
            }
        }
        self.timers.set(Timer::Custody, self.now);
        n
    }

    /// Releases blobs this node took into custody: they become ordinary
    /// (evictable) copies here and at every keeper.
    pub fn release(&mut self, now: Time, hashes: &[String]) -> usize {
        self.now = now.max(self.now);
        let mine: Vec<(BlobRef, Vec<crate::wire::Keeper>)> = hashes
            .iter()
            .filter_map(|h| {
                let e = self.custody.get(h)?;
                let size = self.blobs.get(h).map(|m| m.size).or_else(|| self.blobs.local_size(h))?;
                (e.cert.origin == self.id)
                    .then(|| (BlobRef { hash: Hash::from(h), size }, e.keepers.values().map(|(p, _)| *p).collect()))
            })
            .collect();
        for page in mine.chunks(wire::MAX_BLOBS_PER_MESSAGE) {
            let refs: Vec<BlobRef> = page.iter().map(|(b, _)| b.clone()).collect();
            let cert = self.keep_cert(refs.clone(), 0, 0);
            let mut to: BTreeMap<NodeId, (crate::wire::Keeper, Vec<Hash>)> = BTreeMap::new();
            for (b, keepers) in page {
                for kp in keepers {
                    to.entry(kp.id).or_insert((*kp, Vec::new())).1.push(b.hash.clone());
                }
                if self.custody.release(&b.hash, &cert) {
                    self.blobs.set_durable(&b.hash, false);
                }
            }
            for (_, (kp, hashes)) in to {
                let msg = Message::BlobKeep { cert: Box::new(cert.clone()), hashes, keepers: vec![] };
                self.send(PeerInfo { id: kp.id, addr: kp.addr }, msg);
            }
        }
        mine.len()
    }

    pub(super) fn keep_cert(&self, blobs: Vec<BlobRef>, k: u8, until: u64) -> crate::wire::KeepCert {
        let bytes = crate::wire::KeepCert::signed_bytes(&self.cfg.cluster_id, &blobs, k, self.id, until);
        let proof = self.identity.prove(crate::identity::domain::KEEP, self.wall().as_millis(), &[&bytes]);
        crate::wire::KeepCert { blobs, k, origin: self.id, until, proof }
    }

    /// Live confirmed copies of a blob in custody (this one included), or
    /// else the verified copies known (see [`Node::blob_copies`]).
    pub fn kept_copies(&self, hash: &str) -> usize {
        if self.custody.get(hash).is_some() {
            self.custody.live_copies(hash)
        } else {
            self.blob_copies(hash)
        }
    }

    /// Copies a blob in custody is kept with, and its origin.
    pub fn custody_of(&self, hash: &str) -> Option<(usize, NodeId)> {
        self.custody.get(hash).map(|e| (e.k(), e.cert.origin))
    }

    /// Durable bytes held in custody for `origin`.
    pub(super) fn durable_bytes_of(&self, origin: NodeId) -> u64 {
        self.blobs
            .iter()
            .filter(|(h, m)| m.durable && self.custody.get(h).is_some_and(|e| e.cert.origin == origin))
            .map(|(_, m)| crate::blobs::charge(m.size))
            .sum()
    }

    pub(super) fn on_blob_keep(
        &mut self,
        src: PeerInfo,
        cert: crate::wire::KeepCert,
        hashes: Vec<Hash>,
        keepers: Vec<crate::wire::Keeper>,
    ) {
        if let Err(e) = cert.verify(&self.cfg.cluster_id) {
            self.metrics.count_rejected(e.reason());
            return;
        }
        if cert.k == 0 || cert.expired(self.wall().as_millis()) {
            for h in &hashes {
                if self.custody.release(h, &cert) {
                    self.blobs.set_durable(h, false);
                }
            }
            return;
        }
        // Another origin's durable data may take only a share of the store.
        let share = (self.blobs.capacity() as f64 * crate::custody::FOREIGN_SHARE) as u64;
        let mut budget =
            if cert.origin == self.id { u64::MAX } else { share.saturating_sub(self.durable_bytes_of(cert.origin)) };
        let mut kept = Vec::new();
        for h in hashes {
            let Some(b) = cert.blobs.iter().find(|b| b.hash == h).cloned() else { continue };
            if self.custody.released_after(&h, &cert) {
                continue;
            }
            let already = self.custody.get(&h).is_some();
            let size = crate::blobs::charge(b.size);
            if !already && size > budget {
                continue;
            }
            if self.blobs.contains(&h) {
                if !already {
                    budget = budget.saturating_sub(size);
                }
                self.blobs.set_durable(&h, true);
                self.custody.keep(self.id, &h, &cert, &keepers, self.now);
                kept.push(h);
            } else if self.blobs.could_hold(b.size) {
                let asker = keepers.iter().find(|k| k.id == src.id).copied().unwrap_or(crate::wire::Keeper {
                    id: src.id,
                    addr: src.addr,
                    http: src.addr,
                });
                // A copy already on its way (replication) is kept when it
                // arrives: no second fetch.
                let arriving = self.replication_src.contains_key(&h);
                if self.custody.fetching(&h, cert.clone(), keepers.clone(), asker) {
                    budget = budget.saturating_sub(size);
                    if !arriving {
                        let sources: Vec<SocketAddr> = keepers.iter().map(|k| k.http).collect();
                        self.outputs.push_back(Output::Job(JobOutput::Fetch {
                            hash: h,
                            size: b.size,
                            sources,
                            kind: BlobKind::Chunk,
                        }));
                    }
                }
            }
        }
        if !kept.is_empty() {
            self.confirm_kept(kept, &keepers, src);
        }
    }

    /// Tells every keeper (and whoever asked) that this node keeps `hashes`.
    pub(super) fn confirm_kept(&mut self, hashes: Vec<Hash>, keepers: &[crate::wire::Keeper], asker: PeerInfo) {
        let mut to: BTreeMap<NodeId, PeerInfo> =
            keepers.iter().filter(|k| k.id != self.id).map(|k| (k.id, PeerInfo { id: k.id, addr: k.addr })).collect();
        to.insert(asker.id, asker);
        to.remove(&self.id);
        for (_, p) in to {
            self.send_have_kept(p, hashes.clone(), true);
        }
    }

    pub(super) fn custody_tick(&mut self) {
        let me = self.as_keeper();
        let now = self.now;
        // Candidates for new copies: neighbours (fetching costs a hop).
        let candidates: Vec<crate::wire::Keeper> = self
            .active
            .iter()
            .map(|(id, p)| {
                let http = self.topology.get(id).and_then(|e| e.list.http).unwrap_or(p.addr);
                crate::wire::Keeper { id: *id, addr: p.addr, http }
            })
            .collect();
        // And, should the neighbours not be enough, nodes two hops off
        // whose addresses their diffused neighbour lists give.
        let farther: Vec<crate::wire::Keeper> = self
            .topology
            .iter()
            .filter(|(id, e)| e.hops <= 2 && **id != self.id && !self.active.contains_key(id))
            .take(MAX_FARTHER_KEEPERS)
            .map(|(id, e)| crate::wire::Keeper { id: *id, addr: e.list.addr, http: e.list.http.unwrap_or(e.list.addr) })
            .collect();
        let wall_ms = self.wall().as_millis();
        for h in self.custody.expire(wall_ms) {
            self.blobs.set_durable(&h, false);
        }
        let blobs = &self.blobs;
        let holds = |h: &str, id: NodeId| blobs.get(h).is_some_and(|m| m.holders.iter().any(|x| x.node == id));
        // Failure domains: a node's announced zone (when valid), else its host.
        let topology = &self.topology;
        let my_zone = self.cfg.zone.as_deref();
        let my_id = self.id;
        let domain = |k: &crate::wire::Keeper| {
            let zone = if k.id == my_id {
                my_zone
            } else {
                topology.get(&k.id).and_then(|e| e.list.zone.as_deref()).filter(|z| crate::custody::valid_zone(z))
            };
            crate::custody::FailureDomain::of(zone, k.addr)
        };
        // While jobs are at work in the network, blobs with copies enough
        // wait for their repair (for `MAX_REPAIR_DEFERRAL` at most).
        let jobs_at_work = self.job_running_seen.is_some_and(|t| now.since(t) < JOBS_QUIET);
        let deferring = jobs_at_work && self.repair_deferred_since.is_none_or(|t| now.since(t) < MAX_REPAIR_DEFERRAL);
        if jobs_at_work {
            self.repair_deferred_since.get_or_insert(now);
        } else {
            self.repair_deferred_since = None;
        }
        self.custody.defer_from = deferring.then_some(crate::custody::SAFE_COPIES);
        let actions = self.custody.tick(me, now, &candidates, &farther, holds, domain);
        // One message per destination, certificate and list of keepers
        // (blobs of one upload usually share all three).
        type Group = (crate::wire::Keeper, Box<crate::wire::KeepCert>, Vec<Hash>, Vec<crate::wire::Keeper>);
        let mut keeps: BTreeMap<(NodeId, [u8; 64], Vec<NodeId>), Group> = BTreeMap::new();
        for a in actions {
            match a {
                crate::custody::CustodyAction::Ping { id, addr } => self.ping(id, addr, PingKind::Keeper),
                crate::custody::CustodyAction::Keep { to, cert, hash, keepers } => {
                    let mut ids: Vec<NodeId> = keepers.iter().map(|k| k.id).collect();
                    ids.sort_unstable();
                    let key = (to.id, cert.proof.sig.0, ids);
                    keeps.entry(key).or_insert_with(|| (to, cert, Vec::new(), keepers)).2.push(hash);
                }
            }
        }
        for (_, (to, cert, hashes, keepers)) in keeps {
            self.send(PeerInfo { id: to.id, addr: to.addr }, Message::BlobKeep { cert, hashes, keepers });
        }
    }

    /// Keeps a held blob from eviction under `tag` (e.g. while its upload
    /// is still arriving).
    pub fn blob_pin(&mut self, hash: &str, tag: &str) {
        self.blobs.pin(hash, tag);
    }

    /// Whether a held blob is pinned (a running job reads it, or an upload
    /// is still arriving).
    pub fn blob_pinned(&self, hash: &str) -> bool {
        self.blobs.is_pinned(hash)
    }

    /// Releases [`Node::blob_pin`].
    pub fn blob_unpin(&mut self, hash: &str, tag: &str) {
        self.blobs.unpin_hash(hash, tag);
    }

    /// Metadata of a held blob.
    pub fn blob(&self, hash: &str) -> Option<&BlobMeta> {
        self.blobs.get(hash)
    }

    /// Verified copies of a held blob known here (this one included).
    pub fn blob_copies(&self, hash: &str) -> usize {
        self.blobs.copies(hash)
    }

    /// Blob store accounting.
    pub fn blob_usage(&self) -> BlobUsage {
        BlobUsage {
            blobs: self.blobs.len(),
            used: self.blobs.used(),
            capacity: self.blobs.capacity(),
            pinned: self.blobs.pinned_count(),
        }
    }

    /// Every held blob.
    pub fn blobs(&self) -> impl Iterator<Item = (&Hash, &BlobMeta)> {
        self.blobs.iter()
    }

    /// A `Fetch` finished; `ok` means the blob was verified and stored
    /// with `blob_put`.
    pub fn fetch_done(&mut self, now: Time, hash: &str, ok: bool) {
        self.now = now.max(self.now);
        if let Some((cert, keepers, asker)) = self.custody.fetched(hash) {
            if ok && self.blobs.contains(hash) {
                self.blobs.set_durable(hash, true);
                self.custody.keep(self.id, hash, &cert, &keepers, self.now);
                self.confirm_kept(vec![Hash::from(hash)], &keepers, PeerInfo { id: asker.id, addr: asker.addr });
            }
        }
        let more = self.replication_more.remove(hash).unwrap_or_default();
        if let Some((offerer, energy)) = self.replication_src.remove(hash) {
            if ok {
                self.blobs.set_energy(hash, energy);
                self.blobs.set_upstream(hash, offerer);
                self.send_have(offerer, vec![Hash::from(hash)]);
                if let Some(size) = self.blobs.get(hash).map(|m| m.size) {
                    // Pass the offer on with what is left of the energy.
                    let fanout = self.cfg.blob_fanout;
                    self.offer(vec![BlobRef { hash: Hash::from(hash), size }], energy, Some(offerer.id), fanout);
                    for (o, e) in more {
                        self.offer(vec![BlobRef { hash: Hash::from(hash), size }], e, Some(o.id), fanout);
                    }
                }
            }
        }
        self.with_jobs(|j, c| j.fetch_done(c, hash, ok));
    }

    /// A kernel finished; `Ok(digest)` once the partial is stored under it.
    pub fn work_done(&mut self, now: Time, job: &str, unit: u32, replica: u8, digest: Result<String, String>) {
        self.now = now.max(self.now);
        self.with_jobs(|j, c| j.work_done(c, job, unit, replica, digest));
    }

    /// A merge finished: the stored result blob, or the units whose
    /// partials could not be fetched.
    pub fn merge_done(&mut self, now: Time, job: &str, outcome: Result<MergedResult, Vec<u32>>) {
        self.now = now.max(self.now);
        self.with_jobs(|j, c| j.merge_done(c, job, outcome));
    }
}
