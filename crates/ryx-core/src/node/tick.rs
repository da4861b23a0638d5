//! The periodic work: probes, hellos, shuffles, anti-entropy rounds,
//! lazy announcements, load, and the bounds of every table.

use super::*;

impl Node {
    pub(super) fn on_tick(&mut self) {
        let now = self.now;
        if let Some(expected) = self.expected_tick {
            if now.since(expected) > self.cfg.late_tick {
                // We ourselves are slow (overloaded, paused): be slower to
                // accuse others (Lifeguard's local health).
                self.metrics.late_ticks += 1;
                self.local_health = (self.local_health + 1).min(self.cfg.max_local_health);
                if now.since(expected) >= self.cfg.suspect_after + self.cfg.confirm_after {
                    // Stopped long enough to have been declared dead: say
                    // it is up (its incident resolves when all are back).
                    self.was_stalled();
                }
            }
        }
        if self.timers.expired(Timer::HealthDecay, now) {
            self.local_health = self.local_health.saturating_sub(1);
            self.timers.set(Timer::HealthDecay, now.plus(Duration::from_secs(1)));
            // Once a second is plenty for a TTL of seconds, and a sweep of
            // up to `max_topology_nodes` entries every tick would be costly.
            let own = self.active_ids();
            // Believe a list's period up to twice this node's own (nodes
            // within reach hold about as many lists): a sender cannot keep
            // its lists here longer by saying it refreshes them rarely.
            let max_every =
                self.topology_every().saturating_mul(2).min(MAX_TOPOLOGY_EVERY.max(self.cfg.topology_interval));
            self.topology.expire(now, self.cfg.topology_ttl, max_every, &own);
            self.want_routes.retain(|_, r| now.since(r.at) < WANT_ROUTE_TTL);
            self.alerts_tick();
        }
        self.detect_failures();
        self.expire_pending();
        if !self.upload_window.is_empty() || !self.upload_queue.is_empty() {
            self.pump_upload();
        }
        self.fill();
        if self.timers.expired(Timer::Hello, now) {
            self.hello();
        }
        if self.timers.expired(Timer::Shuffle, now) {
            let next = now.plus(self.jittered(self.cfg.shuffle_interval));
            self.timers.set(Timer::Shuffle, next);
            self.shuffle();
        }
        if self.timers.expired(Timer::PassiveProbe, now) {
            let next = now.plus(self.jittered(Duration::from_secs(1)));
            self.timers.set(Timer::PassiveProbe, next);
            // Every other probe goes to the unmeasured peer whose
            // coordinate predicts the shortest round trip (the search for
            // close neighbours); the rest at random (coordinates need far
            // samples too, and predictions can be wrong).
            self.probe_turn = !self.probe_turn;
            let guided = if self.probe_turn { self.closest_unmeasured() } else { None };
            let pick = guided.or_else(|| self.passive.sample(1, &mut self.rng).first().copied());
            if let Some(p) = pick {
                self.ping(p.id, p.addr, PingKind::Passive);
            }
        }
        if self.timers.expired(Timer::Reevaluate, now) {
            let next = now.plus(self.jittered(self.cfg.reevaluate_interval));
            self.timers.set(Timer::Reevaluate, next);
            self.reevaluate();
        }
        // A changed list goes out at once, but not more often than an
        // eighth of the refresh period (a second in a small network):
        // every diffusion costs each node within reach a payload.
        let gap = (self.topology_every() / 8).max(Duration::from_secs(1));
        if self.timers.expired(Timer::Topology, now) || (self.topo_dirty && now.since(self.last_topology) >= gap) {
            self.diffuse_topology();
        }
        if self.timers.expired(Timer::Sync, now) {
            let next = now.plus(self.jittered(self.cfg.sync_interval));
            self.timers.set(Timer::Sync, next);
            let ids = self.active_ids();
            if let Some(id) = self.rng.pick(&ids).copied() {
                self.send_digest_to(id);
            }
        }
        for (id, who) in self.missing.due(now, self.cfg.graft_timeout) {
            if self.active.contains_key(&who) {
                if let Some(p) = self.active.get_mut(&who) {
                    p.eager = true;
                }
                self.send_to(who, Message::Graft { ids: vec![id] });
            }
        }
        self.raise_due();
        if self.timers.expired(Timer::Aggregate, now) {
            self.aggregate_round();
        }
        self.learn_tick();
        if self.timers.expired(Timer::Custody, now) {
            self.timers.set(Timer::Custody, now.plus(Duration::from_secs(1)));
            self.custody_tick();
        }
        self.with_jobs(|j, c| j.tick(c));
        if !self.waves.is_empty() || !self.waves_seen.is_empty() {
            self.expire_waves();
        }
        self.flush_lazy();
        self.timers.set(Timer::Tick, now.plus(TICK));
        self.expected_tick = Some(now.plus(TICK));
    }

    pub(super) fn jittered(&mut self, d: Duration) -> Duration {
        // ±20 % so that nodes started together do not act in lockstep.
        let f = 0.8 + 0.4 * self.rng.unit();
        d.mul_f64(f)
    }

    pub(super) fn detect_failures(&mut self) {
        let now = self.now;
        let scale = self.local_health.saturating_add(1);
        // The windows are the configured ones (sized for a LAN) plus what
        // each link's measured round trips say an answer may take, so that
        // a long or jittery path is not accused for its length: a suspect's
        // window also covers the helpers' leg of an indirect probe (the
        // closest neighbours are asked, below).
        let mut to_ping = Vec::new();
        let mut newly_suspect = Vec::new();
        let mut convict = Vec::new();
        for (id, p) in self.active.iter_mut() {
            // Probes go out every `probe_interval` whatever the round trip,
            // so answers keep arriving that often on a long path too: the
            // silence that makes a suspect grows only with the link's
            // jitter. Once suspected, an answer takes a round trip to come
            // back (ours, or a helper's probe of the suspect, about as long,
            // plus the helper's leg): the confirmation window grows by it.
            let rto = p.rtt.timeout();
            let jitter = Duration::from_micros(p.rtt.var_us.saturating_mul(4).min(10_000_000));
            // Saturating: a configured window times the local-health
            // multiplier must not overflow into a panic.
            let suspect_after =
                self.cfg.suspect_after.saturating_add(jitter).checked_mul(scale).unwrap_or(Duration::MAX);
            let confirm_after = self
                .cfg
                .confirm_after
                .saturating_add(rto)
                .saturating_add(p.helper_leg)
                .checked_mul(scale)
                .unwrap_or(Duration::MAX);
            let silence = now.since(p.last_heard);
            // One side of each link probes: the one with the lower id. Its
            // pings are the other side's proof of life, so the other side
            // only probes if it hears nothing for twice as long, and once a
            // second to measure the round trip itself.
            let prober = self.id < *id;
            let since_ping = p.last_ping.map(|t| now.since(t));
            let due = if prober {
                silence >= self.cfg.probe_interval && since_ping.is_none_or(|d| d >= self.cfg.probe_interval)
            } else {
                // A link judged slow or lossy is probed from this side too,
                // at the probe interval (its history must follow a heal).
                let every = if p.quality.watch { self.cfg.probe_interval } else { Duration::from_secs(1) };
                (silence >= self.cfg.probe_interval * 2 && since_ping.is_none_or(|d| d >= self.cfg.probe_interval))
                    || since_ping.is_none_or(|d| d >= every)
            };
            if due {
                p.last_ping = Some(now);
                to_ping.push((*id, p.addr));
            }
            match p.suspect_since {
                None if silence >= suspect_after => {
                    p.suspect_since = Some(now);
                    newly_suspect.push((*id, p.addr));
                }
                Some(s) if now.since(s) >= confirm_after => convict.push(*id),
                _ => {}
            }
        }
        for (id, addr) in to_ping {
            self.ping(id, addr, PingKind::Direct);
        }
        for (id, addr) in newly_suspect {
            self.emit(Event::Suspect { id });
            // Confirm through other neighbours before convicting.
            // The closest neighbours (by round-trip timeout, in steps of
            // 10 ms), at random among equals: their answer comes soonest,
            // and the window above waits for them.
            let mut helpers: Vec<(NodeId, SocketAddr, Duration)> = self
                .active
                .iter()
                .filter(|(h, p)| **h != id && p.suspect_since.is_none())
                .map(|(h, p)| (*h, p.addr, p.rtt.timeout()))
                .collect();
            self.rng.shuffle(&mut helpers);
            helpers.sort_by_key(|h| h.2.as_millis() / 10);
            helpers.truncate(self.cfg.indirect_probes);
            // The confirmation window waits for the slowest helper asked.
            let leg = helpers.iter().map(|h| h.2).max().unwrap_or_default();
            if let Some(p) = self.active.get_mut(&id) {
                p.helper_leg = leg;
            }
            for (hid, haddr, _) in helpers {
                let nonce = self.rng.next_u64();
                if self.pending_ping_reqs.len() >= MAX_PENDING_PING_REQS {
                    if let Some(oldest) = self.pending_ping_reqs.iter().min_by_key(|(_, v)| v.2).map(|(k, _)| *k) {
                        self.pending_ping_reqs.remove(&oldest);
                    }
                }
                self.pending_ping_reqs.insert(nonce, (hid, id, self.now));
                self.send(PeerInfo { id: hid, addr: haddr }, Message::PingReq { nonce, target: PeerInfo { id, addr } });
            }
        }
        if convict.is_empty() {
            return;
        }
        let all_suspect = self.active.len() >= 2 && self.active.values().all(|p| p.suspect_since.is_some());
        if all_suspect && self.local_health < self.cfg.max_local_health {
            // Everyone silent at once: more likely our own network or CPU
            // than every neighbour dying together. Slow down and look again.
            self.local_health += 1;
            return;
        }
        for id in convict {
            self.metrics.failures_detected += 1;
            self.remove_active(id, DownReason::Failed);
        }
        self.fill();
    }

    pub(super) fn expire_pending(&mut self) {
        let now = self.now;
        let timeout = self.cfg.join_timeout.checked_mul(self.local_health.saturating_add(1)).unwrap_or(Duration::MAX);
        let expired: Vec<NodeId> = self
            .pending_joins
            .iter()
            .filter(|(_, j)| now.since(j.sent) >= timeout.saturating_add(j.extra))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.pending_joins.remove(&id);
            // A candidate that does not answer is probably gone.
            self.passive.remove(&id);
        }
        self.pending_ping_reqs.retain(|_, (_, _, t)| now.since(*t) < PING_MEMORY);
        let mut dead_passive = Vec::new();
        let mut missed_keepers = Vec::new();
        let mut unanswered = Vec::new();
        self.pending_pings.retain(|_, p| {
            let keep = now.since(p.sent) < PING_MEMORY;
            if !keep && matches!(p.kind, PingKind::Direct) {
                unanswered.push(p.target);
            }
            if !keep && matches!(p.kind, PingKind::Passive) {
                dead_passive.push(p.target);
            }
            if !keep && matches!(p.kind, PingKind::Keeper) {
                missed_keepers.push(p.target);
            }
            keep
        });
        for id in unanswered {
            if let Some(p) = self.active.get_mut(&id) {
                p.quality.lost();
            }
        }
        for id in dead_passive {
            self.passive.remove(&id);
        }
        for id in missed_keepers {
            self.custody.missed(id);
        }
        let ttl = self.cfg.tombstone_ttl;
        self.tombstones.retain(|_, t| now.since(*t) < ttl);
    }

    pub(super) fn hello(&mut self) {
        let needy = self.active.len() < self.cfg.min_active;
        let interval = if needy {
            // Back off while hellos find nobody new (a cluster smaller than
            // the minimum stays needy for ever); a lost neighbour resets it.
            let backoff = self.cfg.hello_interval_needy * (1u32 << self.needy_streak.min(5));
            self.needy_streak += 1;
            backoff.min(self.cfg.hello_interval)
        } else {
            self.needy_streak = 0;
            self.cfg.hello_interval
        };
        let next = self.now.plus(self.jittered(interval));
        self.timers.set(Timer::Hello, next);
        if self.leaving {
            return;
        }
        let msg = Message::Hello { active: self.active.len().min(255) as u8, needy };
        match self.cfg.discovery {
            Discovery::Broadcast => {
                // Seeds given as well (other segments, other machines) get
                // the same hello directly.
                for s in self.seeds.clone() {
                    self.send_hello(s, msg.clone());
                }
                self.metrics.count_out(&msg);
                self.seq += 1;
                let env = self.envelope(None, msg);
                self.outputs.push_back(Output::Broadcast { env: Box::new(env) });
            }
            Discovery::SeedNodes => {
                for s in self.seeds.clone() {
                    self.send_hello(s, msg.clone());
                }
            }
        }
    }

    pub(super) fn shuffle(&mut self) {
        let ids = self.active_ids();
        let Some(target) = self.rng.pick(&ids).copied() else {
            return;
        };
        let peers = self.sample_peers(SAMPLE, target);
        self.send_to(target, Message::Shuffle { peers });
    }

    pub(super) fn reevaluate(&mut self) {
        if self.leaving {
            return;
        }
        let now = self.now;
        let candidates = self.join_candidates();
        if candidates.is_empty() {
            return;
        }
        // 1. Rotate an old long link this node opened, or open one if none;
        // or one that turned out to be short (chosen before round trips
        // were known: a node first hears of its closest peers) while a
        // clearly far peer is known — by *measured* round trips only, so
        // that no peer's claimed coordinate can make links churn — and
        // then to one of those far peers.
        let old_long =
            self.active.values().any(|p| p.long && p.initiated && now.since(p.since) >= self.cfg.long_link_refresh);
        let short_long = self.active.values().find_map(|p| {
            let r = p.rtt.smoothed_us?;
            (p.long && p.initiated && now.since(p.since) >= self.cfg.reevaluate_interval * 3).then_some(r)
        });
        // Only while the long link is short among what this node measured
        // (clearly closer than the median), and toward peers clearly
        // farther yet not beyond twice the 90th percentile: a peer that
        // delays its answers must not look like the far end every node
        // should link to.
        let mut measured: Vec<(u64, usize)> =
            candidates.iter().enumerate().filter_map(|(i, c)| Some((c.2?, i))).collect();
        measured.sort_unstable();
        let median = measured.get(measured.len() / 2).map(|m| m.0);
        let far: Vec<(NodeId, SocketAddr, Option<u64>)> = match (short_long, median) {
            (Some(r), Some(m)) if super::links::clearly_far_us(r) <= m => {
                let cap = super::links::far_cap_us(&measured);
                let range = super::links::clearly_far_us(r)..=cap;
                candidates.iter().filter(|c| c.2.is_some_and(|f| range.contains(&f))).cloned().collect()
            }
            _ => Vec::new(),
        };
        let no_long = !self.has_long_link();
        // A full node rotates too: the join's reply makes room by dropping
        // the old long link (`on_join_reply`).
        if old_long || !far.is_empty() || (no_long && self.active.len() < self.cfg.max_active) {
            let (id, addr, _) = if far.is_empty() {
                candidates[self.long_link_pick(&candidates)]
            } else {
                far[self.rng.below(far.len())]
            };
            self.request_join(id, addr, true, JoinPurpose::RotateLong);
            return;
        }
        if no_long && self.active.len() >= self.cfg.max_active {
            // Full with short links only: free a slot for a long one.
            if let Some(worst) = self.worst_short_link(None, false) {
                self.send_to(worst, Message::Disconnect);
                self.remove_active(worst, DownReason::Disconnected);
            }
            return;
        }
        // 2. Prefer a clearly closer peer over the slowest short link whose
        // far end can spare it (a full node too: the join's acceptance
        // drops that link).
        if self.active.len() >= self.cfg.target_active {
            let worst =
                self.worst_short_link(None, true).and_then(|w| self.active.get(&w)).and_then(|p| p.rtt.smoothed_us);
            let best = candidates.iter().filter_map(|c| c.2.map(|r| (c.0, c.1, r))).min_by_key(|c| c.2);
            if let (Some(w), Some((id, addr, r))) = (worst, best) {
                if r * 2 < w && w - r >= 1000 {
                    self.request_join(id, addr, false, JoinPurpose::Improve);
                }
            }
        }
    }

    pub(super) fn diffuse_topology(&mut self) {
        self.topo_dirty = false;
        self.last_topology = self.now;
        let every = self.topology_every();
        let next = self.now.plus(self.jittered(every));
        self.timers.set(Timer::Topology, next);
        if self.leaving {
            return;
        }
        // A hybrid clock, as other items' versions: a node restarted with
        // its identity starts above what others hold of its lists.
        self.topo_version = self.next_version(self.topo_version);
        let item = self.own_topology_item();
        self.forward(item, None);
    }
}

impl Node {
    /// How often this node sends its neighbour list again when it has not
    /// changed: `topology_interval`, or half a second per list it holds
    /// if that is longer (at most [`MAX_TOPOLOGY_EVERY`]). A node holds
    /// about the lists of the nodes within reach, which hold about as many:
    /// each receives some two lists a second, whatever the network's size
    /// (with a fixed period the cost grew with the nodes in reach). Its
    /// receivers keep the list four periods (`NeighborList::every_s`).
    pub(super) fn topology_every(&self) -> Duration {
        let per_list = TOPOLOGY_GAP_PER_LIST.saturating_mul(self.topology.len().min(u32::MAX as usize) as u32);
        self.cfg.topology_interval.max(per_list).min(MAX_TOPOLOGY_EVERY.max(self.cfg.topology_interval))
    }
}
