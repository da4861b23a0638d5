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
        self.detect_failures(true);
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

    /// Probes silent neighbours (on a tick only: `on_tick`), and judges
    /// them: suspects, indirect probes, verdicts.
    pub(super) fn detect_failures(&mut self, on_tick: bool) {
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
        // Probes keep to a fixed cadence of `probe_interval` on the tick
        // grid: an answer that lands just after the tick that sent its
        // probe must not push the next probe a whole tick later (a 150 ms
        // gap instead of 100 ms widens the silence a short stop leaves).
        let probe_every = self.cfg.probe_interval.saturating_sub(TICK / 2);
        let unmeasured = self.longest_rto();
        for (id, p) in self.active.iter_mut() {
            let (suspect_after, confirm_after) = detector_windows(&self.cfg, p, scale, unmeasured);
            let silence = now.since(p.last_heard);
            // One side of each link probes: the one with the lower id. Its
            // pings are the other side's proof of life, so the other side
            // only probes if it hears nothing for twice as long, and once a
            // second to measure the round trip itself.
            let prober = self.id < *id;
            let since_ping = p.last_ping.map(|t| now.since(t));
            let due = if prober {
                // Whatever it hears: traffic from the other side resets our
                // silence, not the other side's, which hears only what we
                // send (a prober quiet while its neighbour talked left it
                // silent for 200 ms, and a 300 ms stop then looked like a
                // death).
                since_ping.is_none_or(|d| d >= probe_every)
            } else {
                // A link judged slow or lossy is probed from this side too,
                // at the probe interval (its history must follow a heal).
                let every = if p.quality.watch { self.cfg.probe_interval } else { Duration::from_secs(1) };
                (silence >= self.cfg.probe_interval * 2 && since_ping.is_none_or(|d| d >= probe_every))
                    || since_ping.is_none_or(|d| d >= every)
            };
            // Probes keep to the tick grid: a probe sent at a deadline's
            // wake-up would put off the next one by up to a tick.
            if due && on_tick {
                p.last_ping = Some(now);
                to_ping.push((*id, p.addr));
            }
            match p.suspect_since {
                None if silence >= suspect_after => {
                    p.suspect_since = Some(now);
                    // JSON until it answers in short again: a neighbour
                    // restarted in place with an older release reads it,
                    // and its `ack` with `neighbor: false` ends the link.
                    p.short = false;
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
            self.set_detect_deadline();
            return;
        }
        let all_suspect = self.active.len() >= 2 && self.active.values().all(|p| p.suspect_since.is_some());
        if all_suspect && self.local_health < self.cfg.max_local_health {
            // Everyone silent at once: more likely our own network or CPU
            // than every neighbour dying together. Slow down and look again.
            self.local_health += 1;
            self.set_detect_deadline();
            return;
        }
        for id in convict {
            self.metrics.failures_detected += 1;
            self.remove_active(id, DownReason::Failed);
        }
        self.fill();
        self.set_detect_deadline();
    }

    /// What a link whose probes have not answered yet is assumed to need
    /// for a round trip: the longest measured on any active link (at most a
    /// second),
    /// and at least `join_timeout` (how long this node lets a stranger take
    /// to answer a join), so that a new link's first answer is not late by
    /// its length. A new link is measured within a round trip of forming.
    fn longest_rto(&self) -> Duration {
        // Active links only, and at most `MAX_UNMEASURED_RTO`: one neighbour
        // that delays its answers must not stretch every new link's window.
        let longest = self.active.values().filter(|p| p.rtt.smoothed_us.is_some()).map(|p| p.rtt.timeout()).max();
        longest.unwrap_or_default().min(MAX_UNMEASURED_RTO).max(self.cfg.join_timeout)
    }

    /// Sets [`Timer::Detect`] to the failure detector's next deadline if it
    /// falls before the next tick (a silence that would make a suspect, a
    /// suspect's window that would end), so that a verdict is not up to a
    /// tick late; otherwise the tick looks. An idle node hears from each
    /// neighbour every probe interval, so its deadlines lie beyond the next
    /// tick and it wakes no more often than before.
    pub(super) fn set_detect_deadline(&mut self) {
        let scale = self.local_health.saturating_add(1);
        let unmeasured = self.longest_rto();
        let next = self
            .active
            .values()
            .map(|p| {
                let (suspect_after, confirm_after) = detector_windows(&self.cfg, p, scale, unmeasured);
                match p.suspect_since {
                    None => p.last_heard.plus(suspect_after),
                    Some(s) => s.plus(confirm_after),
                }
            })
            .min();
        // Inside a tick the tick timer still holds this tick's time: the
        // next one is a tick away.
        let tick = self.timers.get(Timer::Tick);
        let tick = if tick > self.now { tick } else { self.now.plus(TICK) };
        // Never now or in the past: a deadline already passed (a node that
        // just raised its local health and looks again) is the tick's.
        let at = next.filter(|t| *t > self.now && *t < tick).unwrap_or(tick);
        self.timers.set(Timer::Detect, at);
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
    /// changed: `topology_interval`, or 1.5 s per list it holds if that is
    /// longer (at most [`MAX_TOPOLOGY_EVERY`]). A node holds about the
    /// lists of the nodes within reach, which hold about as many: each
    /// receives some two lists every three seconds, whatever the network's
    /// size up to some 200 lists in reach
    /// (with a fixed period the cost grew with the nodes in reach). Its
    /// receivers keep the list four periods (`NeighborList::every_s`).
    pub(super) fn topology_every(&self) -> Duration {
        let per_list = TOPOLOGY_GAP_PER_LIST.saturating_mul(self.topology.len().min(u32::MAX as usize) as u32);
        self.cfg.topology_interval.max(per_list).min(MAX_TOPOLOGY_EVERY.max(self.cfg.topology_interval))
    }
}

/// What the configured windows already allow for an answer's delay and
/// jitter: they are sized for a LAN, where a node stopped for 300 ms is
/// silent for at most 300 ms plus one probe interval (100 ms), and 450 ms
/// leaves 50 ms to spare. A link's measured jitter and round trips lengthen
/// the windows only beyond this.
const LAN_SLACK: Duration = Duration::from_millis(50);

/// A neighbour's failure-detector windows: the silence that makes it a
/// suspect, and the time a suspect then has to answer. The configured ones
/// (sized for a LAN) plus what the link's measured round trips say an
/// answer may take beyond [`LAN_SLACK`], so that a long or jittery path is
/// not accused for its length; both times the local-health multiplier
/// `scale`.
fn detector_windows(cfg: &NodeConfig, p: &ActivePeer, scale: u32, unmeasured: Duration) -> (Duration, Duration) {
    // Probes go out every `probe_interval` whatever the round trip, so
    // answers keep arriving that often on a long path too: the silence that
    // makes a suspect grows only with the link's jitter. Once suspected, an
    // answer takes a round trip to come back (ours, or a helper's probe of
    // the suspect, about as long, plus the helper's leg): the confirmation
    // window grows by it. The slack goes to the jitter first, then to the
    // round trips; on loopback a few milliseconds of scheduling jitter
    // would otherwise add up (12 deviations in all) to 50-100 ms.
    let rto = if p.rtt.smoothed_us.is_some() { p.rtt.timeout() } else { unmeasured };
    let jitter = Duration::from_micros(p.rtt.var_us.saturating_mul(4).min(10_000_000));
    let left = LAN_SLACK.saturating_sub(jitter);
    let jitter = jitter.saturating_sub(LAN_SLACK);
    let trip = rto.saturating_add(p.helper_leg).saturating_sub(left);
    let lossy = loss_allowance(cfg, p.quality.steady_loss());
    // Saturating: a configured window times the local-health multiplier
    // must not overflow into a panic. Whole microseconds, rounded up, as
    // node time counts: a deadline then falls exactly where the window
    // ends, not a microsecond before it.
    let suspect_after = cfg.suspect_after.saturating_add(jitter).checked_mul(scale).unwrap_or(Duration::MAX);
    let confirm_after =
        cfg.confirm_after.saturating_add(trip).saturating_add(lossy).checked_mul(scale).unwrap_or(Duration::MAX);
    (ceil_us(suspect_after), ceil_us(confirm_after))
}

fn ceil_us(d: Duration) -> Duration {
    if d.subsec_nanos().is_multiple_of(1_000) {
        d
    } else {
        d.saturating_add(Duration::from_nanos(1_000 - u64::from(d.subsec_nanos() % 1_000)))
    }
}

/// The chance, per probe, that a live link loses every probe of the
/// failure detector's windows, that a lossy link's windows are sized for.
const FALSE_SILENCE: f64 = 1e-6;

/// Most a link's loss lengthens its windows.
const MAX_LOSS_ALLOWANCE: Duration = Duration::from_millis(1500);

/// Most a link not yet measured is assumed to need for a round trip.
const MAX_UNMEASURED_RTO: Duration = Duration::from_secs(1);

/// How much longer than the configured windows a link that loses `loss` of
/// its probes (while it answers) needs, so that a run of lost probes that
/// long comes by chance at most [`FALSE_SILENCE`] per probe: `m` probes in a
/// row, `loss^m <= FALSE_SILENCE`, leave `m + 1` probe intervals of silence
/// and a tick of drift. A link losing up to 1 % of its probes needs
/// nothing (the windows hold three lost probes); 5 % loss each way (about
/// 10 % of probes) needs 750 ms in all, 300 ms more. The extra goes to the
/// confirmation window, so that indirect probes still start early.
pub(super) fn loss_allowance(cfg: &NodeConfig, loss: f64) -> Duration {
    if loss.is_nan() || loss <= 0.0 {
        return Duration::ZERO;
    }
    let runs = (FALSE_SILENCE.ln() / loss.min(0.9).ln()).ceil();
    let need = cfg.probe_interval.mul_f64(runs + 1.0).saturating_add(TICK);
    need.saturating_sub(cfg.suspect_after.saturating_add(cfg.confirm_after)).min(MAX_LOSS_ALLOWANCE)
}
