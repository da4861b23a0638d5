//! The node's side of jobs: the engine's context, summaries published
//! and checked, blobs for jobs and results.

use super::*;

impl Node {
    /// Runs `f` on the job engine with a context lent from this node, then
    /// carries out what the engine asked for.
    pub(super) fn with_jobs<R>(&mut self, f: impl FnOnce(&mut JobEngine, &mut Ctx<'_>) -> R) -> R {
        let neighbors = self.active.iter().map(|(id, p)| (*id, p.addr)).collect();
        let wall = self.wall();
        let (topology, tombstones) = (&self.topology, &self.tombstones);
        let peer_at = move |http: SocketAddr| {
            topology
                .iter()
                .find(|(id, e)| e.list.http == Some(http) && !tombstones.contains_key(*id))
                .map(|(id, e)| PeerInfo { id: *id, addr: e.list.addr })
        };
        let (custody, me) = (&self.custody, self.id);
        let keepers_of = move |h: &str| {
            custody.live_keepers(me, h).into_iter().map(|k| PeerInfo { id: k.id, addr: k.addr }).collect()
        };
        let mut ctx = Ctx {
            peer_at: &peer_at,
            keepers_of: &keepers_of,
            local_health: self.local_health,
            now: self.now,
            wall,
            me: self.id,
            identity: &self.identity,
            cluster: &self.cfg.cluster_id,
            rejected: Vec::new(),
            http: self.http,
            neighbors,
            rng: &mut self.rng,
            sends: Vec::new(),
            outputs: Vec::new(),
            summaries: Vec::new(),
            blobs: &mut self.blobs,
            energy: self.cfg.energy,
            penalties: Vec::new(),
            wants: Vec::new(),
        };
        let r = f(&mut self.jobs, &mut ctx);
        let Ctx { sends, outputs, summaries, penalties, wants, rejected, .. } = ctx;
        for reason in rejected {
            self.metrics.count_rejected(reason);
        }
        if !wants.is_empty() {
            self.want_blobs(wants);
        }
        for (to, msg) in sends {
            self.send(to, msg);
        }
        for o in outputs {
            self.outputs.push_back(Output::Job(o));
        }
        for sum in summaries {
            let version = self.jobs.summary_version(&sum.job_id).unwrap_or(1);
            if let Ok(v) = serde_json::to_value(&sum) {
                let stored = self.put_kv(Space::Job, &sum.job_id, v, self.cfg.jobs.default_energy, version);
                self.jobs.summary_published(&sum.job_id, stored);
            }
        }
        for n in penalties {
            if n == self.id {
                continue;
            }
            let key = format!("{n}/{}", self.id);
            let strikes = self.reputation.get(&key).and_then(|it| it.value.as_u64()).unwrap_or(0).saturating_add(1);
            self.put_kv(Space::Reputation, &key, serde_json::json!(strikes), self.cfg.default_energy, 0);
            self.jobs.set_strikes(n, self.id, strikes.min(u32::MAX as u64) as u32, true);
        }
        r
    }

    pub(super) fn on_kv_delivered(&mut self, item: &Item) {
        match item.id.space {
            Space::Job => {
                if let Ok(sum) = JobSummary::deserialize(&*item.value.to_json()) {
                    let (v, origin) = (item.id.version, item.id.origin);
                    self.with_jobs(|j, c| j.on_summary(c, &sum, v, origin));
                }
            }
            Space::Reputation => {
                if let (Some((accused, accuser)), Some(strikes)) = (reputation_key(&item.id.key), item.value.as_u64()) {
                    self.jobs.set_strikes(accused, accuser, strikes.min(u32::MAX as u64) as u32, false);
                }
            }
            _ => {}
        }
    }

    /// Stores and diffuses a key/value record written (and signed) by
    /// this node, with a version above `at_least` and anything held.
    pub(super) fn put_kv(
        &mut self,
        space: Space,
        key: &str,
        value: serde_json::Value,
        energy: f64,
        at_least: u64,
    ) -> u64 {
        let size = wire::value_len(&value);
        let held = self.kv(space).get(key).map_or(0, |h| h.version);
        let version = self.next_version(held.max(at_least));
        let born = self.now.as_micros();
        let value = std::sync::Arc::new(value);
        let mut item = Item {
            id: ItemId { space, key: key.to_string(), version, origin: self.id },
            value: ItemValue::Json(value.clone()),
            energy,
            hops: 0,
            born,
            proof: None,
        };
        if matches!(space, Space::Job | Space::Reputation) {
            let bytes = item.signed_bytes(&self.cfg.cluster_id);
            item.proof =
                Some(Box::new(self.identity.prove(crate::identity::domain::ITEM, self.wall().as_millis(), &[&bytes])));
        }
        let stored = StoredItem {
            version,
            origin: self.id,
            value,
            energy,
            hops: 0,
            born,
            received: self.now,
            size,
            proof: item.proof.clone(),
        };
        let now = self.now;
        if space == Space::Job && super::gossip::job_is_running(&stored.value) {
            self.job_running_seen = Some(now);
        }
        let ev = match space {
            Space::Job => {
                self.job_items.insert(key.to_string(), stored, now, MAX_JOB_ITEMS, MAX_JOB_ITEMS * wire::MAX_VALUE_LEN)
            }
            Space::Reputation => {
                self.reputation.insert(key.to_string(), stored, now, MAX_REPUTATION_ITEMS, MAX_REPUTATION_ITEMS * 64)
            }
            _ => self.info.insert(key.to_string(), stored, now, self.cfg.max_items, self.cfg.max_item_bytes),
        };
        self.metrics.items_evicted += ev;
        self.forward(item, None);
        version
    }

    /// Sets the HTTP address other nodes fetch this node's blobs from
    /// (default: the UDP address).
    pub fn set_http_addr(&mut self, addr: SocketAddr) {
        self.http = addr;
    }

    /// Turns datagram authentication on (or, with an empty keyring, off).
    /// `boot` must be random per process start. Replay state survives a
    /// key change, so rotation needs no restart.
    pub fn set_auth(&mut self, keys: crate::auth::Keyring, boot: u64) {
        match (&mut self.auth, keys.is_empty()) {
            (_, true) => self.auth = None,
            (Some(a), false) => a.set_keys(keys),
            (None, false) => self.auth = Some(crate::auth::Auth::new(keys, boot)),
        }
    }

    /// Ids of the keys in use, signing key first (empty: no authentication).
    pub fn auth_key_ids(&self) -> Vec<u32> {
        self.auth.as_ref().map(|a| a.keys().ids()).unwrap_or_default()
    }

    /// Seals an encoded datagram for sending (no-op without a secret). The
    /// driver calls this on the bytes of every `Send` and `Broadcast`.
    pub fn seal(&mut self, bytes: &mut Vec<u8>) {
        let now = self.now;
        if let Some(a) = self.auth.as_mut() {
            a.seal(bytes, now);
        }
    }

    /// This node's HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// This node's key pair.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// This node's answer to an HTTP identity challenge.
    pub fn http_identity(&self, challenge: &str) -> crate::identity::HttpIdentity {
        let member = self.member_keys().into_iter().next();
        crate::identity::HttpIdentity::answer(
            &self.identity,
            &self.cfg.cluster_id,
            self.http,
            challenge,
            self.wall().as_millis(),
            member,
        )
    }

    /// Keys proving cluster membership over HTTP (none without a secret).
    pub fn member_keys(&self) -> Vec<(u32, [u8; 32])> {
        self.auth.as_ref().map(|a| a.keys().subkeys(crate::identity::HTTP_MEMBER_CONTEXT)).unwrap_or_default()
    }

    /// Creates a job homed here over the given units (chunks in input order).
    pub fn submit_job(
        &mut self,
        now: Time,
        kind: &str,
        params: serde_json::Value,
        chunks: Vec<BlobRef>,
        redundancy: u8,
        energy: Option<f64>,
    ) -> Result<String, SubmitError> {
        let here = vec![self.http];
        let chunks = chunks.into_iter().map(|c| (c, here.clone())).collect();
        self.submit_job_from(now, kind, params, chunks, redundancy, energy)
    }

    /// Creates a job homed here over chunks some of which other nodes hold:
    /// each with the HTTP addresses known to hold it (this node's own copy
    /// is added where it holds one).
    pub fn submit_job_from(
        &mut self,
        now: Time,
        kind: &str,
        params: serde_json::Value,
        chunks: Vec<(BlobRef, Vec<SocketAddr>)>,
        redundancy: u8,
        energy: Option<f64>,
    ) -> Result<String, SubmitError> {
        self.now = now.max(self.now);
        let http = self.http;
        let units = chunks
            .into_iter()
            .map(|(c, given)| {
                let mut holders = Vec::new();
                if let Some(m) = self.blobs.get(&c.hash) {
                    holders.push(http);
                    holders.extend(m.holder_addrs());
                }
                for a in given {
                    if !holders.contains(&a) {
                        holders.push(a);
                    }
                }
                UnitRef { hash: c.hash, size: c.size, holders }
            })
            .collect();
        self.submit_units(kind, params, units, redundancy, energy, Placement::default())
    }

    /// Creates a job homed here over a dataset snapshot: `chunks` in
    /// canonical order, each with the node that holds it in its own files
    /// (its UDP and HTTP addresses), which is sent the unit's first replica.
    #[allow(clippy::too_many_arguments)]
    pub fn submit_dataset_job(
        &mut self,
        now: Time,
        kind: &str,
        params: serde_json::Value,
        chunks: Vec<(BlobRef, PeerInfo, SocketAddr)>,
        redundancy: u8,
        energy: Option<f64>,
        dataset: DatasetTag,
    ) -> Result<String, SubmitError> {
        self.now = now.max(self.now);
        let mut owners = Vec::with_capacity(chunks.len());
        let units = chunks
            .into_iter()
            .map(|(c, owner, http)| {
                owners.push(Some(owner));
                let mut holders = vec![http];
                if let Some(m) = self.blobs.get(&c.hash) {
                    holders.extend(m.holder_addrs().filter(|a| *a != http));
                }
                holders.truncate(crate::wire::MAX_HOLDER_ADDRS);
                UnitRef { hash: c.hash, size: c.size, holders }
            })
            .collect();
        self.submit_units(kind, params, units, redundancy, energy, Placement { dataset: Some(dataset), owners })
    }

    fn submit_units(
        &mut self,
        kind: &str,
        params: serde_json::Value,
        units: Vec<UnitRef>,
        redundancy: u8,
        energy: Option<f64>,
        place: Placement,
    ) -> Result<String, SubmitError> {
        let kind = kind.to_string();
        // Heirs beyond the neighbourhood: known peers that are not
        // neighbours, so that no one failure domain holds every heir.
        let far: Vec<PeerInfo> =
            self.passive.sample(16, &mut self.rng).into_iter().filter(|p| !self.active.contains_key(&p.id)).collect();
        self.with_jobs(|j, c| j.submit(c, kind, params, units, redundancy, energy, far, place))
    }

    /// Notes chunks of this node's own files (its sources) as here, or no
    /// longer here: tokens for them run here first, without a fetch.
    /// Returns how many could not be noted ([`crate::blobs::MAX_LOCAL_CHUNKS`]).
    pub fn set_local_chunks(&mut self, added: Vec<(Hash, u64)>, removed: Vec<Hash>) -> usize {
        for h in removed {
            self.blobs.set_local(h, 0, false);
        }
        added.into_iter().filter(|(h, size)| !self.blobs.set_local(h.clone(), *size, true)).count()
    }

    /// Cancels a job homed here; false if this node is not its home.
    pub fn cancel_job(&mut self, now: Time, id: &str) -> bool {
        self.now = now.max(self.now);
        self.with_jobs(|j, c| j.cancel(c, id))
    }

    /// The latest summary of a job known here.
    pub fn job(&self, id: &str) -> Option<JobSummary> {
        self.job_items.get(id).and_then(|it| JobSummary::deserialize(&*it.value).ok())
    }

    /// Every job summary known here.
    pub fn jobs(&self) -> Vec<JobSummary> {
        self.job_items.iter().filter_map(|(_, it)| JobSummary::deserialize(&*it.value).ok()).collect()
    }

    /// The job engine (read-only), for status and tests.
    pub fn job_engine(&self) -> &JobEngine {
        &self.jobs
    }

    /// Makes room for and records a verified blob the driver holds. On
    /// success the driver keeps the bytes; `DropBlob` outputs name what to
    /// evict. Uploads are offered to neighbours for replication.
    pub fn blob_put(
        &mut self,
        now: Time,
        hash: &str,
        size: u64,
        kind: BlobKind,
        upload: bool,
    ) -> Result<(), BlobError> {
        self.now = now.max(self.now);
        if self.blobs.contains(hash) {
            return Ok(());
        }
        let evicted = self.blobs.make_room(size)?;
        for h in evicted {
            self.outputs.push_back(Output::Job(JobOutput::DropBlob { hash: h }));
        }
        let energy = if upload { self.cfg.default_energy } else { self.cfg.default_energy / 2.0 };
        self.blobs.insert(Hash::from(hash), size, kind, energy, self.now);
        Ok(())
    }

    /// Offers blobs held here to neighbours but `except`: each blob to the
    /// `fanout` neighbours that rank highest for it by rendezvous hashing
    /// (blob, neighbour, energy), and each taker fetches a copy from us and
    /// passes the offer on the same way while the energy lasts. With
    /// fanout 1 an upload walks: every hop adds one copy and costs one
    /// transfer, whatever the degree, and different blobs (and top-ups,
    /// which come with more energy) take different paths, so copies spread
    /// over the neighbourhood instead of every neighbour fetching
    /// everything from the uploader.
    pub(super) fn offer(&mut self, blobs: Vec<BlobRef>, energy: f64, except: Option<NodeId>, fanout: usize) {
        if !EnergyModel::alive(self.cfg.energy.after_hop(energy)) {
            return;
        }
        let http = self.http;
        let peers: Vec<PeerInfo> = self.active_peers().into_iter().filter(|p| Some(p.id) != except).collect();
        let mut per: BTreeMap<PeerInfo, Vec<BlobRef>> = BTreeMap::new();
        for b in blobs {
            let mut ranked: Vec<(u64, PeerInfo)> =
                peers.iter().map(|p| (rendezvous(&b.hash, self.id, p.id, energy), *p)).collect();
            ranked.sort_unstable_by(|x, y| y.cmp(x));
            for (_, a) in ranked.into_iter().take(fanout.max(1)) {
                per.entry(a).or_default().push(b.clone());
            }
        }
        for (a, bs) in per {
            for page in bs.chunks(wire::MAX_BLOBS_PER_MESSAGE) {
                self.send(a, Message::BlobOffer { blobs: page.to_vec(), http, energy });
            }
        }
    }

    /// Starts the replication of freshly uploaded blobs with `energy`
    /// (reach in hops as for items; default: `upload_energy`).
    ///
    /// Chunks are offered a window at a time, in order: the next goes out
    /// once one in the window has its first copies (or after
    /// `UPLOAD_STALL`). Offered all at once, every chunk's first copies
    /// would share the uploader's link and land together at the very end,
    /// and so would every replication tree; paced, each chunk's tree grows
    /// while later chunks upload, and copies (durability) build up steadily
    /// through a long upload.
    pub fn replicate_upload(&mut self, now: Time, blobs: Vec<BlobRef>, energy: Option<f64>) {
        self.now = now.max(self.now);
        let e = energy.unwrap_or_else(|| self.upload_energy(blobs.len()));
        for b in blobs {
            self.blobs.set_energy(&b.hash, e.max(self.cfg.default_energy));
            if self.upload_queue.len() < MAX_UPLOAD_QUEUE {
                self.upload_queue.push_back((b, e));
            } else {
                // Beyond the queue's bound: offer at once, unpaced.
                let fanout = self.cfg.blob_fanout;
                self.offer(vec![b], e, None, fanout);
            }
        }
        self.pump_upload();
    }

    /// Replication energy for an upload of `chunks` chunks when none is
    /// given: `blob_energy`, raised a unit at a time (at most 8) until the
    /// tree it reaches (1 + f + f² + … copies for fanout f) holds
    /// log₂(chunks) + 7 copies. Half the nodes dying at once loses a chunk
    /// with c copies with probability about 2⁻ᶜ, so this keeps the chance
    /// that a half-kill loses some chunk of the upload near 1 %: fifteen
    /// copies (the default energy) up to 256 chunks, 31 up to 16 Mi
    /// (docs/performance.md has the simulator's measurement).
    /// Copies are still only made where there is room.
    pub fn upload_energy(&self, chunks: usize) -> f64 {
        let want = (chunks.max(1) as f64).log2() + 7.0;
        let f = self.cfg.blob_fanout.max(1) as f64;
        let base = self.cfg.blob_energy;
        (0..=8)
            .map(|k| base + k as f64)
            .find(|&e| {
                let hops = self.cfg.energy.reach(e);
                let copies: f64 = (0..=hops.min(32)).map(|i| f.powi(i as i32)).sum();
                copies >= want
            })
            .unwrap_or(base + 8.0)
    }

    /// Offers queued upload chunks while the window has room; chunks whose
    /// first copies are overdue leave the window (their takers may have had
    /// no room; top-ups deal with thin chunks).
    pub(super) fn pump_upload(&mut self) {
        let now = self.now;
        let fanout = self.cfg.blob_fanout.min(self.active.len()).max(1);
        let blobs = &self.blobs;
        self.upload_window
            .retain(|h, at| now.since(*at) < UPLOAD_STALL && blobs.contains(h) && blobs.copies(h) < 1 + fanout);
        while self.upload_window.len() < UPLOAD_WINDOW {
            let Some((b, e)) = self.upload_queue.pop_front() else { break };
            if !self.blobs.contains(&b.hash) {
                continue;
            }
            self.upload_window.insert(b.hash.clone(), now);
            let fanout = self.cfg.blob_fanout;
            self.offer(vec![b], e, None, fanout);
        }
    }

    /// Offers thin blobs again with more `energy`, to every neighbour
    /// rather than `blob_fanout` of them: for an upload waiting for more
    /// copies than its first offer made (`PUT /v1/blobs?copies=N`) once
    /// replication has stalled.
    pub fn top_up_upload(&mut self, now: Time, blobs: Vec<BlobRef>, energy: f64) {
        self.now = now.max(self.now);
        for b in &blobs {
            self.blobs.set_energy(&b.hash, energy.max(self.cfg.default_energy));
        }
        let all = self.active.len();
        self.offer(blobs, energy, None, all);
    }

    /// Forgets a blob (the driver discards its bytes).
    pub fn blob_remove(&mut self, hash: &str) {
        self.blobs.remove(hash);
        self.custody.forget(hash);
    }
}
