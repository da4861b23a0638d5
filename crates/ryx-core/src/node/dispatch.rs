//! What arrives: decoding and admission of datagrams, and each kind's
//! handling.

use super::*;

impl Node {
    /// Whether a decoded datagram may be acted on: it is for this node, its
    /// signature holds where one is needed, and a stranger sends only what
    /// strangers may. Refusals are counted by reason.
    pub(super) fn admit(&mut self, src: SocketAddr, env: &Envelope, raw_msg: Option<&[u8]>) -> bool {
        if env.from == self.id {
            // Our own broadcast echoed back by the segment.
            self.metrics.count_rejected("self");
            return false;
        }
        let for_me = match env.to {
            Some(to) => to == self.id,
            // Only discovery is addressed to whoever hears it.
            None => matches!(env.msg, Message::Hello { .. }),
        };
        if !for_me {
            self.metrics.count_rejected("wrong_destination");
            return false;
        }
        if env.msg.needs_sig() {
            if let Err(e) = self.check_envelope_sig(env, raw_msg) {
                self.metrics.count_rejected(e.reason());
                return false;
            }
        }
        let neighbour = self.active.get(&env.from).is_some_and(|p| p.addr == src);
        // Work goes straight to the node that holds the data, neighbour
        // or not: from a job's creator, the first replica of a unit over a
        // node's own files; from that node, the other replicas to the
        // nodes keeping copies for it (custody names it as the origin);
        // from any home (an heir that took over, too), a unit whose lease
        // lapsed (the home is the creator, or the one the job's summary
        // here names).
        let from_home = !neighbour
            && matches!(&env.msg, Message::Work { token }
                if crate::jobs::job_creator(&token.job) == Some(env.from)
                    || self.custody.get(&token.chunk).is_some_and(|k| k.cert.origin == env.from)
                    || self.job(&token.job).is_some_and(|s| s.home == env.from));
        if !neighbour && !env.msg.open_to_strangers() && !from_home {
            self.metrics.count_rejected("not_neighbor");
            return false;
        }
        true
    }

    pub(super) fn check_envelope_sig(&mut self, env: &Envelope, raw_msg: Option<&[u8]>) -> Result<(), SigError> {
        wire::verify_envelope(env, raw_msg)?;
        let sig = env.sig.as_ref().ok_or(SigError::Missing)?;
        sig.fresh(self.wall().as_millis(), MAX_CLOCK_SKEW.as_millis() as u64)?;
        let now = self.now;
        if let Some(w) = self.signed_seqs.get_mut(&env.from) {
            return if w.accept(env.seq, now) { Ok(()) } else { Err(SigError::Replay) };
        }
        if self.signed_seqs.len() >= MAX_SIGNED_SEQS {
            // Entries older than the skew bound protect nothing: whatever
            // their signers sent before is refused as stale anyway.
            let horizon = now.0.saturating_sub(2 * MAX_CLOCK_SKEW.as_micros() as u64);
            self.signed_seqs.retain(|_, w| w.last_seen().0 >= horizon);
            if self.signed_seqs.len() >= MAX_SIGNED_SEQS {
                if let Some(oldest) = self.signed_seqs.iter().min_by_key(|(_, w)| w.last_seen()).map(|(k, _)| *k) {
                    self.signed_seqs.remove(&oldest);
                }
            }
        }
        self.signed_seqs.insert(env.from, crate::auth::Window::new(env.seq, now));
        Ok(())
    }

    pub(super) fn on_envelope(&mut self, src: SocketAddr, env: Envelope) {
        let from = env.from;
        self.metrics.count_in(&env.msg);
        // Any word from a node proves it alive. A node we buried that
        // speaks again was cut off, not dead: a partition may have healed,
        // so link to it at once as our long link (the halves merge without
        // waiting for the periodic long-link rotation).
        if self.tombstones.remove(&from).is_some()
            && !matches!(env.msg, Message::Leave)
            && !self.leaving
            && !self.active.contains_key(&from)
            && !self.pending_joins.contains_key(&from)
            && self.now.since(self.last_resurrection_join) >= Duration::from_secs(1)
        {
            self.last_resurrection_join = self.now;
            self.request_join(from, src, true, JoinPurpose::RotateLong);
        }
        // Word from a neighbour, at its address, proves it alive. Its
        // address never changes on hearsay: a datagram naming a neighbour's
        // id from elsewhere is someone else's (a link moves only by a new,
        // signed join).
        let short_in = env.short;
        if let Some(p) = self.active.get_mut(&from).filter(|p| p.addr == src) {
            p.last_heard = self.now;
            // Only a neighbour that offered the short form gets it back
            // (a spoofed short datagram cannot switch an older one).
            p.short |= short_in && p.short_offered;
            if p.suspect_since.take().is_some() {
                self.metrics.suspicions_refuted += 1;
            }
        }
        self.custody.heard(from, self.now);
        if self.leaving && !matches!(env.msg, Message::Ping { .. } | Message::BlobHave { .. } | Message::Leave) {
            return;
        }
        let nbr = self.active.get(&from).is_some_and(|p| p.addr == src);
        let peer = PeerInfo { id: from, addr: src };
        match env.msg {
            Message::Hello { needy, .. } => self.on_hello(from, src, needy),
            Message::HelloReply { peers } => {
                self.learn(peer);
                for p in peers {
                    self.learn(p);
                }
                self.fill();
            }
            Message::Join { long, urgent, degree, labels, short } => {
                self.on_join(from, src, long, urgent, degree);
                if let Some(p) = self.active.get_mut(&from) {
                    (p.short_offered, p.short) = (short, short);
                    self.alerts.labels.insert(from, labels);
                }
            }
            Message::JoinReply { accepted, peers, labels, short } => {
                self.on_join_reply(from, src, accepted, peers);
                if let Some(p) = self.active.get_mut(&from).filter(|_| accepted) {
                    (p.short_offered, p.short) = (short, short);
                    self.alerts.labels.insert(from, labels);
                }
            }
            Message::Verdict { subject, observer, down, degree, labels, hops, anomaly, holds } => {
                if nbr {
                    let down = if anomaly.is_some() { holds } else { down };
                    let v = incident::Said { subject, observer, down, degree, labels, anomaly };
                    self.on_verdict(v, hops);
                }
            }
            Message::Disconnect => {
                // Signed by the neighbour itself; a link to the same id at
                // another address is not the one it speaks of.
                if nbr && self.remove_active(from, DownReason::Disconnected).is_some() {
                    // It chose someone else: do not ask it straight back.
                    let now = self.now;
                    if let Some(p) = self.passive.get_mut(&from) {
                        p.refused = Some(now);
                    }
                    self.fill();
                }
            }
            Message::Leave => {
                self.pending_joins.remove(&from);
                if nbr && self.remove_active(from, DownReason::Left).is_some() {
                    self.metrics.neighbors_left += 1;
                    self.fill();
                } else if !self.active.contains_key(&from) {
                    self.tombstone(from);
                }
            }
            Message::Ping { nonce, tree, coord } => {
                if let (true, Some(a)) = (nbr, tree) {
                    self.on_tree_advert(from, a);
                }
                // A neighbour's coordinate places this node too, by this
                // node's own measurement of the link (both ends probe it).
                // At most twice a second per neighbour, whatever it sends:
                // a peer that put its coordinate on every probe would
                // otherwise have ten votes a second here.
                let now = self.now;
                let fresh = self.active.get_mut(&from).is_some_and(|p| {
                    let ok = p.coord_in.is_none_or(|t| now.since(t) >= COORD_EVERY / 2);
                    if ok && coord.is_some() {
                        p.coord_in = Some(now);
                    }
                    ok
                });
                if let (true, true, Some(c)) = (nbr, fresh, coord) {
                    let r = self.vivaldi.sample_filtered(from, &c);
                    self.count_coord(r);
                }
                let degree = self.degree();
                let tree = if nbr { self.tree_advert_for(from) } else { None };
                let coord = coord.map(|_| self.vivaldi.coord());
                // A short ping gets a short ack, neighbour or not.
                self.send_as(peer, Message::Ack { nonce, neighbor: nbr, degree, tree, coord }, short_in);
            }
            Message::Ack { nonce, neighbor, degree, tree, coord } => {
                if nbr {
                    if let Some(p) = self.active.get_mut(&from) {
                        p.degree = Some(degree);
                        if !neighbor {
                            // It did not count this node a neighbour yet
                            // (its join's answer still on the way), so it
                            // dropped the tree advert: tell it again.
                            p.tree_sent = None;
                        }
                    }
                    if let Some(a) = tree {
                        self.on_tree_advert(from, a);
                    }
                }
                self.on_ack(from, src, nonce, neighbor, coord)
            }
            Message::Agg { v, x, reply } => {
                if nbr {
                    self.on_agg(from, crate::agg::AggMsg { v, x, reply });
                }
            }
            Message::Learn { task, part, age, reply, x, v, took, gave, est } => {
                if nbr {
                    self.on_learn(from, crate::learn::LearnMsg { task, part, age, reply, x, v, took, gave, est });
                }
            }
            Message::PingReq { nonce, target } => {
                if target.id != self.id && target.id != from {
                    self.ping(target.id, target.addr, PingKind::ForIndirect { requester: peer, req_nonce: nonce });
                }
            }
            Message::IndirectAck { nonce, target } => {
                // Only the answer to an indirect probe this node asked that
                // helper for proves the suspect alive.
                let asked = self.pending_ping_reqs.get(&nonce).is_some_and(|(h, t, _)| *h == from && *t == target);
                if asked {
                    self.pending_ping_reqs.remove(&nonce);
                    if let Some(p) = self.active.get_mut(&target) {
                        p.last_heard = self.now;
                        if p.suspect_since.take().is_some() {
                            self.metrics.suspicions_refuted += 1;
                        }
                    }
                }
            }
            Message::Shuffle { peers } => {
                let reply = self.passive.sample(SAMPLE, &mut self.rng);
                self.send(peer, Message::ShuffleReply { peers: reply });
                for p in peers {
                    self.learn(p);
                }
            }
            Message::ShuffleReply { peers } => {
                for p in peers {
                    self.learn(p);
                }
            }
            Message::Gossip { items, sync } => {
                for item in items {
                    self.on_item(from, item, sync);
                }
            }
            Message::IHave { items } => {
                for a in items {
                    // Plumtree's tree repair: an announcement that came by a
                    // path at least two hops shorter than the copy we hold
                    // makes that link eager for what follows.
                    let (held_hops, wanted) = self.announced(&a.id);
                    if let (Some(h), Some(p)) = (held_hops, self.active.get_mut(&from)) {
                        if !p.eager && a.hops.saturating_add(3) <= h {
                            p.eager = true;
                            self.send_to(from, Message::Graft { ids: vec![] });
                        }
                    }
                    let energy = self.clamp_energy(a.energy);
                    if wanted && EnergyModel::alive(self.cfg.energy.after_hop(energy)) {
                        self.missing.announce(a.id, from, energy, self.now, self.cfg.graft_timeout);
                    }
                }
            }
            Message::Graft { ids } => {
                if let Some(p) = self.active.get_mut(&from) {
                    p.eager = true;
                }
                let mut budget = SYNC_ANSWER_BYTES;
                for id in ids {
                    if let Some(item) = self.held_item(&id.space, &id.key) {
                        if !self.spend(&mut budget, &item) {
                            break;
                        }
                        self.send(peer, Message::Gossip { items: vec![item], sync: false });
                    }
                }
            }
            Message::Prune => {
                if let Some(p) = self.active.get_mut(&from) {
                    p.eager = false;
                }
            }
            Message::SyncDigest { space, after, upto, entries } => {
                self.on_digest(peer, space, &after, upto.as_deref(), entries)
            }
            Message::SyncRequest { space, keys } => {
                let mut budget = SYNC_ANSWER_BYTES;
                for k in keys {
                    if let Some(item) = self.held_item(&space, &k) {
                        let item = self.sync_energy(item);
                        if !self.spend(&mut budget, &item) {
                            break;
                        }
                        self.send(peer, Message::Gossip { items: vec![item], sync: true });
                    }
                }
            }
            Message::Load { free, room, jobs } => self.with_jobs(|j, c| j.on_load(c, from, free, room, jobs)),
            Message::Work { token } => self.with_jobs(|j, c| j.on_work(c, *token)),
            Message::JobReport { report } => {
                // Reports travel neighbour to neighbour down the gradient;
                // from anyone else, only a home takes one (and checks its
                // worker's signature).
                if !nbr && !self.jobs.is_home(&report.job) {
                    self.metrics.count_rejected("not_neighbor");
                    return;
                }
                let accepted = self.with_jobs(|j, c| j.on_report_msg(c, *report));
                if let Err(e) = accepted {
                    self.metrics.count_rejected(e.reason());
                }
            }
            Message::JobRecord { record } => {
                let may_home = self.may_home(&record.job);
                if !self.with_jobs(|j, c| j.on_record(c, from, *record, &may_home)) {
                    self.metrics.count_rejected("not_home");
                }
            }
            Message::JobDecided { job, decisions } => {
                if !self.with_jobs(|j, c| j.on_decided(c, from, &job, decisions)) {
                    self.metrics.count_rejected("not_home");
                }
            }
            Message::JobFinished { job, result, digest, size, http } => {
                if self.with_jobs(|j, c| j.on_finished(c, peer, &job, &result, &digest)) {
                    let e = self.cfg.default_energy;
                    self.replicate_blob(peer, BlobRef { hash: result, size }, vec![http], BlobKind::Result, e);
                } else {
                    self.metrics.count_rejected("not_home");
                }
            }
            Message::JobConfirmed { job, result, digest, confirmation } => {
                if !self.with_jobs(|j, c| j.on_confirmed(c, &job, &result, &digest, *confirmation)) {
                    self.metrics.count_rejected("bad_confirmation");
                }
            }
            Message::BlobOffer { blobs, http, energy } => {
                // Copies we already hold are acknowledged at once: the
                // offerer counts them (uploads waiting for copies) and a
                // node handing over its blobs on SIGTERM need not wait.
                let held: Vec<Hash> =
                    blobs.iter().filter(|b| self.blobs.contains(&b.hash)).map(|b| b.hash.clone()).collect();
                for h in &held {
                    self.blobs.add_holder(h, from, http);
                }
                let e = self.cfg.energy.after_hop(self.clamp_energy(energy));
                if EnergyModel::alive(e) {
                    for b in blobs {
                        self.replicate_blob(peer, b, vec![http], BlobKind::Chunk, e);
                    }
                }
                if !held.is_empty() {
                    self.send_have(peer, held);
                }
            }
            Message::BlobHave { hashes, http, holder, kept, proof } => {
                let now_ms = self.wall().as_millis();
                let ok = proof
                    .fresh(now_ms, MAX_CLOCK_SKEW.as_millis() as u64)
                    .and_then(|_| have_verify(&proof, &self.cfg.cluster_id, &hashes, http, holder, kept));
                match ok {
                    Ok(()) if kept => {
                        // A keeper confirms custody, itself and directly.
                        if holder == from {
                            let who = crate::wire::Keeper { id: holder, addr: src, http };
                            for h in &hashes {
                                self.blobs.add_holder(h, holder, http);
                                self.custody.confirmed(h, who, self.now);
                            }
                        }
                    }
                    Ok(()) => self.on_blob_have(peer, hashes, http, holder, *proof),
                    Err(e) => self.metrics.count_rejected(e.reason()),
                }
            }
            Message::BlobKeep { cert, hashes, keepers } => self.on_blob_keep(peer, *cert, hashes, keepers),
            Message::BlobWant { hashes, hops } => self.on_blob_want(peer, hashes, hops),
            Message::Query { root, qid, dataset, kind, params, pin, budget_ms, skip, tree } => {
                self.on_query(peer, root, qid, dataset, kind, params, pin, budget_ms, skip, tree)
            }
            Message::QueryReply { root, qid, answer } => self.on_query_reply(peer.id, root, qid, answer),
        }
    }

    /// Another node (`http`) holds verified copies of `hashes`. News of a
    /// copy made from ours travels on to where ours came from, so the
    /// uploader learns every copy of its chunks (and can count them for
    /// `PUT /v1/blobs?copies=N`), not only its neighbours'. Upstream links
    /// point from newer copies to older ones, so this never circles.
    pub(super) fn on_blob_have(
        &mut self,
        src: PeerInfo,
        hashes: Vec<Hash>,
        http: SocketAddr,
        holder: NodeId,
        proof: crate::identity::Proof,
    ) {
        // Claims are passed on as they came, signature and all, so that the
        // uploader can believe them; a relay adds nothing of its own.
        let mut onward: BTreeMap<PeerInfo, ()> = BTreeMap::new();
        let now = self.now;
        if holder == self.id {
            return;
        }
        for h in &hashes {
            // An answer to a `blob_want` that passed through here goes
            // back to whoever asked us.
            if let Some(r) = self.want_routes.get_mut(h) {
                if now.since(r.at) < WANT_ROUTE_TTL && !r.relayed.contains(&http) && r.relayed.len() < MAX_WANT_ANSWERS
                {
                    r.relayed.push(http);
                    for a in r.askers.iter().filter(|a| a.id != src.id) {
                        onward.insert(*a, ());
                    }
                }
            }
            let known = self.blobs.get(h).is_some_and(|m| m.holders.iter().any(|x| x.node == holder));
            self.blobs.add_holder(h, holder, http);
            self.jobs.holder_added(h, http);
            self.jobs.result_replicated_by_hash(h, http);
            if let Some(up) = self.blobs.get(h).and_then(|m| m.upstream) {
                if !known && up.id != src.id {
                    onward.insert(up, ());
                }
            }
        }
        for (up, ()) in onward {
            self.send(
                up,
                Message::BlobHave { hashes: hashes.clone(), http, holder, kept: false, proof: Box::new(proof) },
            );
        }
        if !self.upload_window.is_empty() {
            self.pump_upload();
        }
    }

    /// A neighbour asks who holds `hashes`: answer for the copies held
    /// here, pass the question on for the rest while `hops` lasts, and
    /// remember who asked so answers can travel back. A question already
    /// passed on recently is not passed on again (floods die out).
    pub(super) fn on_blob_want(&mut self, src: PeerInfo, hashes: Vec<Hash>, hops: u8) {
        let now = self.now;
        let mut held = Vec::new();
        let mut onward = Vec::new();
        for h in hashes {
            if self.blobs.holds(&h) {
                held.push(h);
                continue;
            }
            if hops == 0 {
                continue;
            }
            match self.want_routes.get_mut(&h) {
                Some(r) if now.since(r.at) < WANT_ROUTE_TTL => {
                    if !r.askers.iter().any(|a| a.id == src.id) && r.askers.len() < MAX_WANT_ANSWERS {
                        r.askers.push(src);
                    }
                }
                _ => {
                    if self.want_routes.len() >= MAX_WANT_ROUTES && !self.want_routes.contains_key(&h) {
                        self.metrics.wants_dropped += 1;
                        continue;
                    }
                    self.want_routes.insert(h.clone(), WantRoute { askers: vec![src], relayed: Vec::new(), at: now });
                    onward.push(h);
                }
            }
        }
        if !held.is_empty() {
            self.send_have(src, held);
        }
        if !onward.is_empty() {
            let peers: Vec<PeerInfo> = self.active_peers().into_iter().filter(|p| p.id != src.id).collect();
            for a in peers {
                self.send(a, Message::BlobWant { hashes: onward.clone(), hops: hops.saturating_sub(1) });
            }
        }
    }

    /// Asks the neighbourhood (`WANT_HOPS` beyond the neighbours) who holds
    /// `hashes`; answers arrive as `BlobHave` and reach the job engine's
    /// `holder_added` like any other news of a copy.
    pub fn want_blobs(&mut self, hashes: Vec<Hash>) {
        let now = self.now;
        let mut ask = Vec::new();
        for h in hashes {
            if self.want_routes.get(&h).is_some_and(|r| now.since(r.at) < WANT_ROUTE_TTL) {
                continue;
            }
            if self.want_routes.len() >= MAX_WANT_ROUTES && !self.want_routes.contains_key(&h) {
                self.metrics.wants_dropped += 1;
                continue;
            }
            self.want_routes.insert(h.clone(), WantRoute { askers: Vec::new(), relayed: Vec::new(), at: now });
            ask.push(h);
        }
        if ask.is_empty() {
            return;
        }
        self.metrics.wants_sent += ask.len() as u64;
        let peers = self.active_peers();
        for page in ask.chunks(wire::MAX_BLOBS_PER_MESSAGE) {
            for a in &peers {
                self.send(*a, Message::BlobWant { hashes: page.to_vec(), hops: WANT_HOPS });
            }
        }
    }

    /// Fetches a copy of an offered blob if it is new here and there is
    /// room for it without evicting anything with as much energy.
    pub(super) fn replicate_blob(
        &mut self,
        offerer: PeerInfo,
        blob: BlobRef,
        sources: Vec<SocketAddr>,
        kind: BlobKind,
        energy: f64,
    ) {
        if let Some(held) = self.blobs.get(&blob.hash).map(|m| m.energy) {
            // Already held (the offerer has been told). An offer with more
            // energy than ours (the uploader topping up copies) travels on
            // through us and raises ours, so it passes each holder once.
            // An upload's tree offer (no more energy than `blob_energy`)
            // travels on too, as if we had just fetched it: a branch that
            // runs into an earlier copy still reaches as far and makes as
            // many copies. Its energy falls at every hop, so it dies out
            // within the tree's few hops; offers with more energy (results,
            // top-ups) would flood every holder within their long reach.
            if kind == BlobKind::Chunk && (energy > held + 1e-9 || energy <= self.cfg.blob_energy) {
                if energy > held + 1e-9 {
                    self.blobs.set_energy(&blob.hash, energy);
                }
                let fanout = self.cfg.blob_fanout;
                self.offer(vec![blob], energy, Some(offerer.id), fanout);
            }
            return;
        }
        if self.replication_src.contains_key(&blob.hash) {
            // Being fetched already: pass this offer on too once the copy
            // is here, so a tree branch that ran into a copy in flight
            // still grows.
            if kind == BlobKind::Chunk && energy <= self.cfg.blob_energy {
                let extra = self.replication_more.entry(blob.hash.clone()).or_default();
                if extra.len() < 4 {
                    extra.push((offerer, energy));
                }
            }
            return;
        }
        if self.replication_src.len() >= MAX_REPLICATION_PENDING || !self.blobs.has_room_below(blob.size, energy) {
            return;
        }
        self.replication_src.insert(blob.hash.clone(), (offerer, energy));
        self.outputs.push_back(Output::Job(JobOutput::Fetch { hash: blob.hash, size: blob.size, sources, kind }));
    }

    pub(super) fn on_hello(&mut self, from: NodeId, src: SocketAddr, needy: bool) {
        self.learn(PeerInfo { id: from, addr: src });
        if needy {
            // Answer a newcomer, but not all at once: in a big segment a few
            // answers are plenty. A seed-node hello, though, was addressed to
            // this node alone (the newcomer knows only its few seeds): a seed
            // that stays silent can leave it alone for many backed-off rounds.
            let p = match self.cfg.discovery {
                Discovery::SeedNodes => 1.0,
                Discovery::Broadcast => (4.0 / (self.passive.len() as f64 + 1.0)).min(1.0),
            };
            if self.rng.chance(p) {
                let peers = self.sample_peers(SAMPLE, from);
                self.send(PeerInfo { id: from, addr: src }, Message::HelloReply { peers });
            }
        }
        if self.active.len() + self.pending_joins.len() < self.cfg.target_active {
            self.fill();
        }
    }

    pub(super) fn degree(&self) -> u8 {
        self.active.len().min(255) as u8
    }

    pub(super) fn on_join(&mut self, from: NodeId, src: SocketAddr, long: bool, urgent: bool, degree: u8) {
        let peer = PeerInfo { id: from, addr: src };
        if let Some(p) = self.active.get(&from) {
            // A fresh, signed join from a neighbour's own key is the one
            // proof that moves its link to a new address.
            if p.addr != src {
                self.metrics.neighbors_moved += 1;
                if let Some(p) = self.active.get_mut(&from) {
                    p.addr = src;
                    p.last_heard = self.now;
                }
                self.topo_dirty = true;
            }
            self.accept_join(peer);
            self.with_jobs(|j, _| j.link_renewed(from));
            return;
        }
        if self.active.len() >= self.cfg.max_active {
            // A needy requester gets a link from a full node by taking it
            // from a neighbour that can spare one (more than the minimum):
            // degree flows from the rich to the poor, so nobody stays stuck
            // below the minimum while others are full.
            let min = self.cfg.min_active.min(255) as u8;
            let richest = self
                .active
                .iter()
                .filter(|(_, p)| !p.long && p.degree.is_some_and(|d| d > min))
                .max_by_key(|(_, p)| p.degree)
                .map(|(id, _)| *id);
            // A long link replaces a short link to a neighbour that can
            // spare it: random long links are what keeps (and makes, after
            // a partition heals) the network one. Never this node's own
            // long link: it would only open another, which displaces
            // another node's, a chain of link changes through full nodes.
            let mut victim = if degree < min || long { richest } else { None };
            if victim.is_none() && urgent {
                // A node with no neighbours at all must not be left alone:
                // make room by dropping a random short link.
                let short: Vec<NodeId> = self.active.iter().filter(|(_, p)| !p.long).map(|(id, _)| *id).collect();
                victim = self.rng.pick(&short).copied().or_else(|| self.active.keys().next().copied());
            }
            // Displacing costs a link: bounded by a token bucket, so that a
            // stream of (made-up) needy joiners cannot churn every link away.
            let (tokens, at) = self.displace_budget;
            let refill = self.now.since(at).as_secs_f64() / DISPLACE_REFILL.as_secs_f64();
            let tokens = (tokens + refill).min(DISPLACE_BURST);
            self.displace_budget = (tokens, self.now);
            if tokens < 1.0 {
                victim = None;
            } else if victim.is_some() {
                self.displace_budget.0 = tokens - 1.0;
            }
            let Some(v) = victim else {
                let peers = self.sample_peers(SAMPLE, from);
                self.send(peer, Message::JoinReply { accepted: false, peers, labels: vec![], short: false });
                return;
            };
            self.send_to(v, Message::Disconnect);
            self.remove_active(v, DownReason::Disconnected);
        }
        self.add_active(from, src, long, false);
        self.accept_join(peer);
    }

    /// Tells a joiner its link exists, with this node's labels and
    /// whether it reads short probes.
    fn accept_join(&mut self, peer: PeerInfo) {
        let (labels, short) = (self.cfg.labels.clone(), self.cfg.short_probes);
        self.send(peer, Message::JoinReply { accepted: true, peers: vec![], labels, short });
    }

    pub(super) fn on_join_reply(&mut self, from: NodeId, src: SocketAddr, accepted: bool, peers: Vec<PeerInfo>) {
        let pending = self.pending_joins.remove(&from);
        if accepted && pending.is_none() && !self.active.contains_key(&from) {
            // Nobody asked: a link forms only on this node's own request.
            self.metrics.count_rejected("unsolicited");
            return;
        }
        if !accepted {
            for p in peers {
                self.learn(p);
            }
            let now = self.now;
            if let Some(p) = self.passive.get_mut(&from) {
                p.refused = Some(now);
            }
            self.fill();
            return;
        }
        if self.active.contains_key(&from) {
            return;
        }
        let purpose = pending.as_ref().map(|p| p.purpose);
        let mut made_room = false;
        if self.active.len() >= self.cfg.max_active && !self.leaving {
            // Make room for the new long link: our oldest own long link
            // goes, else the slowest short one; for a clearly closer peer,
            // the slowest short link.
            let old = match purpose {
                Some(JoinPurpose::RotateLong) => self
                    .active
                    .iter()
                    .filter(|(_, p)| p.long && p.initiated)
                    .min_by_key(|(_, p)| p.since)
                    .map(|(id, _)| *id)
                    .or_else(|| self.worst_short_link(None, false)),
                Some(JoinPurpose::Improve) => self.worst_short_link(Some(from), true),
                _ => None,
            };
            if let Some(v) = old {
                self.send_to(v, Message::Disconnect);
                self.remove_active(v, DownReason::Disconnected);
                made_room = true;
            }
        }
        if self.active.len() >= self.cfg.max_active || self.leaving {
            self.send(PeerInfo { id: from, addr: src }, Message::Disconnect);
            return;
        }
        let long = pending.as_ref().is_some_and(|p| p.long);
        self.add_active(from, src, long, true);
        // The join's own round trip is a first measurement of the link.
        let now = self.now;
        if let (Some(j), Some(p)) = (pending.as_ref(), self.active.get_mut(&from)) {
            if p.rtt.smoothed_us.is_none() {
                p.rtt.sample(now.since(j.sent));
            }
        }
        match purpose {
            Some(JoinPurpose::RotateLong) => {
                // The new long link replaces the old ones this node opened.
                let old: Vec<NodeId> = self
                    .active
                    .iter()
                    .filter(|(id, p)| **id != from && p.long && p.initiated)
                    .map(|(id, _)| *id)
                    .collect();
                for id in old {
                    if self.active.len() > self.cfg.min_active {
                        self.send_to(id, Message::Disconnect);
                        self.remove_active(id, DownReason::Disconnected);
                    }
                }
            }
            Some(JoinPurpose::Improve) if !made_room && self.active.len() > self.cfg.target_active => {
                if let Some(worst) = self.worst_short_link(Some(from), true) {
                    self.send_to(worst, Message::Disconnect);
                    self.remove_active(worst, DownReason::Disconnected);
                }
            }
            _ => {}
        }
    }

    /// The short link with the longest round trip (not to `except`); with
    /// `spare`, only among neighbours that can spare a link (above the
    /// minimum, by their last ack): dropping a link to improve this node
    /// must not push the far end below its minimum.
    pub(super) fn worst_short_link(&self, except: Option<NodeId>, spare: bool) -> Option<NodeId> {
        let min = self.cfg.min_active.min(255) as u8;
        self.active
            .iter()
            .filter(|(id, p)| !p.long && Some(**id) != except)
            .filter(|(_, p)| !spare || p.degree.is_some_and(|d| d > min))
            .max_by_key(|(_, p)| p.rtt.smoothed_us.unwrap_or(0))
            .map(|(id, _)| *id)
    }

    /// One round trip to `peer`, which says it is at `theirs`, for this
    /// node's coordinate (refusals counted).
    pub(super) fn coord_sample(&mut self, peer: NodeId, rtt_ms: f64, theirs: &crate::coords::Coord) {
        let r = self.vivaldi.sample(peer, rtt_ms, theirs);
        self.count_coord(r);
    }

    fn count_coord(&mut self, r: Result<(), crate::coords::Refused>) {
        match r {
            Ok(()) => {}
            Err(crate::coords::Refused::Outlier) => self.metrics.coords_outliers += 1,
            Err(_) => self.metrics.coords_refused += 1,
        }
    }

    pub(super) fn on_ack(
        &mut self,
        from: NodeId,
        src: SocketAddr,
        nonce: u64,
        neighbor: bool,
        coord: Option<crate::coords::Coord>,
    ) {
        // Only the node pinged, at the address pinged, answers a probe.
        if !self.pending_pings.get(&nonce).is_some_and(|pp| pp.target == from && pp.addr == src) {
            return;
        }
        let Some(pp) = self.pending_pings.remove(&nonce) else {
            return;
        };
        let rtt = self.now.since(pp.sent);
        let rtt_ms = rtt.as_secs_f64() * 1000.0;
        if matches!(pp.kind, PingKind::Direct | PingKind::Passive) {
            match coord {
                Some(c) => self.coord_sample(from, rtt_ms, &c),
                // Every probe's answer feeds the link's filter.
                None => {
                    let r = self.vivaldi.observe(from, rtt_ms).map(|_| ());
                    self.count_coord(r);
                }
            }
        }
        match pp.kind {
            PingKind::Direct => {
                let grace = self.cfg.join_timeout * 2;
                if let Some(p) = self.active.get_mut(&from) {
                    p.rtt.sample(rtt);
                    p.quality.answered(rtt);
                    if !neighbor && self.now.since(p.since) > grace {
                        // The other side dropped us (its disconnect was lost):
                        // keep links symmetric.
                        self.remove_active(from, DownReason::Asymmetric);
                        self.fill();
                    }
                }
            }
            PingKind::Passive => {
                if let Some(p) = self.passive.get_mut(&from) {
                    p.rtt.sample(rtt);
                    p.learned = self.now;
                }
            }
            PingKind::ForIndirect { requester, req_nonce } => {
                self.send(requester, Message::IndirectAck { nonce: req_nonce, target: from });
            }
            PingKind::Keeper => self.custody.heard(from, self.now),
        }
    }
}
