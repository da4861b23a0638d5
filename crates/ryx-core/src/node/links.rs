//! Links: sending (signed where the kind needs it), joining and leaving
//! neighbours, the active and passive views.

use super::*;

impl Node {
    pub(super) fn send(&mut self, to: PeerInfo, msg: Message) {
        self.send_as(to, msg, false);
    }

    /// Sends, in the short form if `short` or if `to` is a neighbour that
    /// reads it, when the message has one (`ping`, `ack`, `agg`).
    pub(super) fn send_as(&mut self, to: PeerInfo, msg: Message, short: bool) {
        self.metrics.count_out(&msg);
        self.seq += 1;
        let mut env = self.envelope(Some(to.id), msg);
        env.short = self.cfg.short_probes
            && matches!(env.msg, Message::Ping { .. } | Message::Ack { .. } | Message::Agg { .. })
            && (short || self.active.get(&to.id).is_some_and(|p| p.short && p.addr == to.addr));
        self.outputs.push_back(Output::Send { to: to.addr, env: Box::new(env) });
    }

    /// Sends a discovery hello to an address whose node is not known yet.
    pub(super) fn send_hello(&mut self, to: SocketAddr, msg: Message) {
        self.metrics.count_out(&msg);
        self.seq += 1;
        let env = self.envelope(None, msg);
        self.outputs.push_back(Output::Send { to, env: Box::new(env) });
    }

    pub(super) fn send_to(&mut self, id: NodeId, msg: Message) {
        if let Some(addr) = self.active.get(&id).map(|p| p.addr) {
            self.send(PeerInfo { id, addr }, msg);
        }
    }

    pub(super) fn envelope(&self, to: Option<NodeId>, msg: Message) -> Envelope {
        let mut env = Envelope {
            v: PROTOCOL_VERSION,
            cluster: self.cfg.cluster_id.clone(),
            from: self.id,
            to,
            seq: self.seq,
            msg,
            sig: None,
            tag: None,
            short: false,
        };
        if env.msg.needs_sig() {
            wire::sign_envelope(&mut env, &self.identity, self.wall().as_millis());
        }
        env
    }

    /// Energy as received, clamped to what any node may give an item: a
    /// sender cannot make its item (or blob) outrank everything else.
    pub(super) fn clamp_energy(&self, e: f64) -> f64 {
        if e.is_finite() {
            e.clamp(0.0, self.cfg.max_energy)
        } else {
            0.0
        }
    }

    /// Takes an item's size from an answer budget; false once spent.
    pub(super) fn spend(&self, budget: &mut usize, item: &Item) -> bool {
        let size = item.value.len().saturating_add(item.id.key.len() + 128);
        if size > *budget {
            return false;
        }
        *budget -= size;
        true
    }

    /// Tells `to` that this node holds verified copies of `hashes`, signed
    /// so that the claim can be passed on and still be believed.
    pub(super) fn send_have(&mut self, to: PeerInfo, hashes: Vec<Hash>) {
        self.send_have_kept(to, hashes, false);
    }

    pub(super) fn send_have_kept(&mut self, to: PeerInfo, hashes: Vec<Hash>, kept: bool) {
        let http = self.http;
        let proof = have_prove(&self.identity, &self.cfg.cluster_id, self.wall().as_millis(), &hashes, http, kept);
        self.send(to, Message::BlobHave { hashes, http, holder: self.id, kept, proof: Box::new(proof) });
    }

    pub(super) fn emit(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }

    pub(super) fn add_active(&mut self, id: NodeId, addr: SocketAddr, long: bool, initiated: bool) {
        // What is known of the path already (a passive probe's round trips,
        // else the coordinates' filter) sizes the failure
        // detector's windows until the link's own probes answer.
        let mut rtt = self.passive.remove(&id).map(|p| p.rtt).unwrap_or_default();
        if rtt.smoothed_us.is_none() {
            // Measured round trips only: a prediction comes from the
            // peer's own claimed coordinate, and a liar could stretch its
            // link's windows to ten seconds with one.
            if let Some(ms) = self.vivaldi.filtered(id) {
                rtt.sample(Duration::from_secs_f64(ms / 1000.0));
            }
        }
        self.tombstones.remove(&id);
        self.pending_joins.remove(&id);
        self.active.insert(
            id,
            ActivePeer {
                addr,
                rtt,
                last_heard: self.now,
                since: self.now,
                long,
                initiated,
                eager: true,
                last_ping: None,
                suspect_since: None,
                helper_leg: Duration::ZERO,
                degree: None,
                quality: Default::default(),
                coord_at: None,
                coord_in: None,
                tree_sent: None,
                short_offered: false,
                short: false,
            },
        );
        self.metrics.links_up += 1;
        self.topo_dirty = true;
        self.emit(Event::NeighborUp { id, addr, long });
        // A new link is a new path for information: compare notes at once.
        self.send_digest_to(id);
        self.send_job_digest_to(id);
        // Measure its latency straight away.
        self.ping(id, addr, PingKind::Direct);
    }

    pub(super) fn remove_active(&mut self, id: NodeId, reason: DownReason) -> Option<ActivePeer> {
        let peer = self.active.remove(&id)?;
        self.lazy_queue.remove(&id);
        self.metrics.links_down += 1;
        self.topo_dirty = true;
        match reason {
            DownReason::Failed | DownReason::Left => {
                self.tombstone(id);
                self.vivaldi.forget(id);
                self.topology.remove(&id);
                // Its copies are gone with it.
                self.blobs.remove_holder(id);
                self.custody.died(id);
                self.with_jobs(|j, c| j.home_lost(c, id));
            }
            DownReason::Disconnected | DownReason::Asymmetric => {
                let mut rng = self.rng.clone();
                self.passive.insert(PeerInfo { id, addr: peer.addr }, self.now, self.cfg.max_passive, &mut rng, true);
                self.rng = rng;
            }
        }
        self.with_jobs(|j, c| j.neighbor_down(c, id));
        self.wave_child_gone(id);
        self.agg.drop_link(id, matches!(reason, DownReason::Disconnected | DownReason::Asymmetric));
        self.learn_link_down(id, matches!(reason, DownReason::Disconnected | DownReason::Asymmetric));
        match reason {
            DownReason::Failed => self.observe_down(id, peer.degree),
            // A neighbour that no longer counts this node may have
            // declared it dead (it was stalled): it says it is up again.
            DownReason::Asymmetric => {
                self.alerts.labels.remove(&id);
                self.announce_up();
            }
            _ => {
                self.alerts.labels.remove(&id);
            }
        }
        self.emit(Event::NeighborDown { id, reason });
        if self.needy_streak > 0 {
            // Look around quickly again.
            self.needy_streak = 0;
            self.timers.advance(Timer::Hello, self.now.plus(self.cfg.hello_interval_needy));
        }
        Some(peer)
    }

    pub(super) fn tombstone(&mut self, id: NodeId) {
        self.passive.remove(&id);
        if self.tombstones.len() >= self.cfg.max_tombstones {
            if let Some(oldest) = self.tombstones.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                self.tombstones.remove(&oldest);
            }
        }
        self.tombstones.insert(id, self.now);
    }

    /// Learns of a peer from someone else (hearsay).
    pub(super) fn learn(&mut self, peer: PeerInfo) {
        self.learn_peer(peer, false);
    }

    pub(super) fn learn_peer(&mut self, peer: PeerInfo, first_hand: bool) {
        if peer.id == self.id || self.active.contains_key(&peer.id) || self.tombstones.contains_key(&peer.id) {
            return;
        }
        self.passive.insert(peer, self.now, self.cfg.max_passive, &mut self.rng, first_hand);
    }

    /// Whether this node keeps a random long link of its own (opened by
    /// it, or being opened). The far ends of others' long links do not
    /// count: every node opening one keeps the graph's diameter near a
    /// random graph's even where short links cluster by site.
    pub(super) fn has_long_link(&self) -> bool {
        self.active.values().any(|p| p.long && p.initiated) || self.pending_joins.values().any(|j| j.long)
    }

    pub(super) fn sample_peers(&mut self, n: usize, exclude: NodeId) -> Vec<PeerInfo> {
        let mut all: Vec<PeerInfo> = self
            .active
            .iter()
            .map(|(id, p)| PeerInfo { id: *id, addr: p.addr })
            .chain(self.passive.iter().map(|(id, p)| PeerInfo { id: *id, addr: p.addr }))
            .filter(|p| p.id != exclude)
            .collect();
        self.rng.shuffle(&mut all);
        all.truncate(n);
        all
    }

    pub(super) fn request_join(&mut self, id: NodeId, addr: SocketAddr, long: bool, purpose: JoinPurpose) {
        let urgent = self.active.is_empty();
        let degree = self.degree();
        // A candidate a passive probe measured as far gets its round trips
        // on top of the timeout (the timeout is sized for a LAN; a join
        // over a 400 ms path would always expire before its answer).
        let extra = self.passive.get(&id).map_or(Duration::ZERO, |p| (p.rtt.timeout() * 2).min(MAX_JOIN_EXTRA));
        self.pending_joins.insert(id, PendingJoin { sent: self.now, long, purpose, extra });
        let (labels, short) = (self.cfg.labels.clone(), self.cfg.short_probes);
        self.send(PeerInfo { id, addr }, Message::Join { long, urgent, degree, labels, short });
    }

    /// Asks passive peers to become neighbours until active + pending
    /// reaches the target (one more in flight while below the minimum, so a
    /// dead candidate does not stall repair).
    pub(super) fn fill(&mut self) {
        if self.leaving {
            return;
        }
        let have = self.active.len() + self.pending_joins.len();
        let mut want = self.cfg.target_active.saturating_sub(have);
        if self.active.len() < self.cfg.min_active && want > 0 {
            want += 1;
        }
        let want = want.min(self.cfg.max_active.saturating_sub(self.active.len()));
        if want == 0 {
            return;
        }
        let mut candidates = self.join_candidates();
        if candidates.is_empty() {
            return;
        }
        self.rng.shuffle(&mut candidates);
        let mut picked = 0;
        if !self.has_long_link() {
            let (id, addr, _) = candidates.remove(self.long_link_pick(&candidates));
            self.request_join(id, addr, true, JoinPurpose::Fill);
            picked += 1;
        }
        // The rest: peers whose round trip was measured, closest first;
        // then those whose coordinates predict one, closest first (a
        // prediction only orders the unmeasured: a peer lying about its
        // coordinate cannot jump ahead of a measured one); then the rest
        // in random order (the shuffle above).
        let key = |c: &(NodeId, SocketAddr, Option<u64>)| match c.2 {
            Some(us) => (0, us),
            None => self.predicted_rtt_ms(c.0).map_or((2, 0), |ms| (1, (ms * 1000.0) as u64)),
        };
        candidates.sort_by_cached_key(key);
        for (id, addr, _) in candidates.into_iter().take(want.saturating_sub(picked)) {
            self.request_join(id, addr, false, JoinPurpose::Fill);
        }
    }

    /// Which of `candidates` to make the random long link: one at random
    /// from the farther half by round trip (measured, else predicted by
    /// the coordinates), so that long links cross the network's clusters
    /// — the first peers a node hears of are its closest, and its passive
    /// list fills from its short links; at random from all of them when
    /// fewer than four have a round trip known.
    pub(super) fn long_link_pick(&mut self, candidates: &[(NodeId, SocketAddr, Option<u64>)]) -> usize {
        let mut known: Vec<(u64, usize)> =
            candidates.iter().enumerate().filter_map(|(i, c)| Some((self.rtt_or_predicted_us(c.0, c.2)?, i))).collect();
        if known.len() < 4 {
            return self.rng.below(candidates.len().max(1));
        }
        known.sort_unstable();
        // Not beyond twice the 90th percentile: a round trip is partly the
        // far end's doing (it may delay its answers), and a few peers that
        // look farther than nearly all the rest would otherwise draw every
        // node's long link to themselves.
        let cap = far_cap_us(&known);
        let known = &known[..known.partition_point(|(r, _)| *r <= cap)];
        // Uniformly among the clearly far (as the short-long-link rule
        // judges far), so that a long link is as long as a random link
        // leaving this node's cluster, not the longest there is; the
        // farther half when too few are clearly far.
        let near = known[0].0;
        let clearly = known.partition_point(|(r, _)| *r < clearly_far_us(near));
        let far = if known.len() - clearly >= 2 { &known[clearly..] } else { &known[known.len() / 2..] };
        far[self.rng.below(far.len())].1
    }

    /// Passive peers worth asking: not already asked, not known dead, and
    /// not one that refused recently (it was full; asking again at once
    /// would only spin).
    pub(super) fn join_candidates(&self) -> Vec<(NodeId, SocketAddr, Option<u64>)> {
        let backoff = self.cfg.join_timeout * 4;
        self.passive
            .iter()
            .filter(|(id, p)| {
                !self.pending_joins.contains_key(id)
                    && !self.tombstones.contains_key(id)
                    && p.refused.is_none_or(|t| self.now.since(t) >= backoff)
            })
            .map(|(id, p)| (*id, p.addr, p.rtt.smoothed_us))
            .collect()
    }

    /// The passive peer not yet measured whose coordinate predicts the
    /// shortest round trip from here.
    pub(super) fn closest_unmeasured(&self) -> Option<PeerInfo> {
        self.passive
            .iter()
            .filter(|(_, p)| p.rtt.smoothed_us.is_none())
            .filter_map(|(id, p)| Some((self.predicted_rtt_ms(*id)?, PeerInfo { id: *id, addr: p.addr })))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, p)| p)
    }

    pub(super) fn ping(&mut self, target: NodeId, addr: SocketAddr, kind: PingKind) {
        if self.pending_pings.len() >= MAX_PENDING_PINGS {
            if let Some(oldest) = self.pending_pings.keys().next().copied() {
                self.pending_pings.remove(&oldest);
            }
        }
        // 32 bits: what a probe's short form carries (`wire::short`).
        let nonce = self.rng.next_u64() >> 32;
        let (direct, passive) = (matches!(kind, PingKind::Direct), matches!(kind, PingKind::Passive));
        self.pending_pings.insert(nonce, PendingPing { target, addr, sent: self.now, kind });
        let tree = self.tree_advert_for(target);
        // The coordinate goes out on a link's probe about once a second
        // and on every passive probe (the ack answers with the receiver's);
        // not on a keeper's or an indirect probe, whose answers do not
        // feed the coordinates.
        let now = self.now;
        let coord = match self.active.get_mut(&target) {
            Some(p) if direct && p.coord_at.is_none_or(|t| now.since(t) >= COORD_EVERY) => {
                p.coord_at = Some(now);
                Some(self.vivaldi.coord())
            }
            None if passive => Some(self.vivaldi.coord()),
            _ => None,
        };
        self.send(PeerInfo { id: target, addr }, Message::Ping { nonce, tree, coord });
    }
}

/// The round trip (µs) from which a peer is clearly farther than one `near`
/// µs away: four times as far and 10 ms more.
pub(super) fn clearly_far_us(near: u64) -> u64 {
    near.saturating_mul(4).max(near.saturating_add(10_000))
}

/// The farthest a long link is drawn from, given candidates' round trips
/// sorted ascending (at least one): twice their 90th percentile. Peers
/// beyond it are fewer than a tenth of those known and farther than
/// nearly all of them: as likely slow to answer on purpose as far.
pub(super) fn far_cap_us(sorted: &[(u64, usize)]) -> u64 {
    let p90 = sorted.get((sorted.len().saturating_sub(1)) * 9 / 10).map_or(0, |k| k.0);
    p90.saturating_mul(2)
}
