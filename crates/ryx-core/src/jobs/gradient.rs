//! The capacity gradient: neighbours' load and hop distances to each
//! job's home, the next hop of a report, and reputation strikes.

use super::*;

/// How often an idle node repeats its unchanged load to its neighbours
/// (in case the datagram that told a change was lost).
pub const LOAD_KEEPALIVE: Duration = Duration::from_secs(10);

impl JobEngine {
    /// The neighbour closest to the job's home. Only a neighbour strictly
    /// closer than this node counts, so reports never circle while the
    /// gradient re-forms after a failure.
    pub(super) fn next_hop(&self, ctx: &Ctx<'_>, job: &str) -> Option<PeerInfo> {
        let ttl = self.cfg.gradient_ttl;
        let mine = self.dist(ctx, job).unwrap_or(MAX_DIST);
        ctx.neighbors
            .iter()
            .filter_map(|(id, addr)| {
                let (d, t) = self.loads.get(id)?.dists.get(job)?;
                (ctx.now.since(*t) < ttl && *d < mine).then_some((*d, PeerInfo { id: *id, addr: *addr }))
            })
            .min_by_key(|(d, _)| *d)
            .map(|(_, a)| a)
    }

    /// This node's distance to a job's nearest home, if known.
    pub fn dist(&self, ctx: &Ctx<'_>, job: &str) -> Option<u8> {
        if self.homes.get(job).is_some_and(|h| !h.state.is_final()) {
            return Some(0);
        }
        let ttl = self.cfg.gradient_ttl;
        ctx.neighbors
            .iter()
            .filter_map(|(id, _)| {
                let (d, t) = self.loads.get(id)?.dists.get(job)?;
                (ctx.now.since(*t) < ttl).then_some(*d)
            })
            .min()
            .map(|d| d.saturating_add(1))
            .filter(|d| *d < MAX_DIST)
    }

    /// A neighbour advertised its load and distances.
    pub fn on_load(&mut self, ctx: &mut Ctx<'_>, from: NodeId, free: u16, room: u16, jobs: Vec<GradientEntry>) {
        let l = self.loads.entry(from).or_default();
        l.free = free;
        l.room = room;
        l.at = ctx.now;
        for e in jobs {
            if !self.final_jobs.contains_key(&e.job) && l.dists.len() < 4 * self.cfg.max_jobs {
                l.dists.insert(e.job, (e.dist, ctx.now));
            }
        }
        if free > 0 && !self.queue.is_empty() {
            self.schedule(ctx);
        }
    }

    /// Records how many times `accuser` saw `node` disagree with a
    /// majority (`own`: this node is the accuser).
    pub fn set_strikes(&mut self, node: NodeId, accuser: NodeId, strikes: u32, own: bool) {
        if self.reputation.len() >= MAX_REPUTATION && !self.reputation.contains_key(&node) {
            return;
        }
        let r = self.reputation.entry(node).or_default();
        if own {
            r.own = r.own.max(strikes);
            return;
        }
        r.others.insert(accuser, strikes);
        if r.others.len() > MAX_ACCUSERS {
            // Keep the heaviest accusations: the rule below reads the
            // second highest.
            if let Some(least) = r.others.iter().min_by_key(|(_, s)| **s).map(|(k, _)| *k) {
                r.others.remove(&least);
            }
        }
    }

    /// How many strikes count against `node`: what this node saw itself,
    /// or else what the second-worst accuser reports. One node's word alone
    /// never sidelines another (it may lie); two independent homes that
    /// both saw a node outvoted are believed.
    pub fn strikes(&self, node: NodeId) -> u32 {
        let Some(r) = self.reputation.get(&node) else { return 0 };
        let mut others: Vec<u32> = r.others.values().copied().collect();
        others.sort_unstable_by(|a, b| b.cmp(a));
        r.own.max(others.get(1).copied().unwrap_or(0))
    }

    /// A neighbour joined again (its link renewed, as after it convicted
    /// this node falsely): it is told this node's load at once.
    pub fn link_renewed(&mut self, node: NodeId) {
        self.load_told.remove(&node);
    }

    /// Advertises load and gradient to neighbours: every `load_interval`
    /// while something changed or jobs run, to a new neighbour at once,
    /// otherwise every [`LOAD_KEEPALIVE`] (an idle node's neighbours need
    /// hear nothing new: a change goes at once), and,
    /// when `freed` (a slot came free, or tokens were passed on), at once if this node has more
    /// room than it last said and 20 ms have passed: a node that runs units
    /// faster than the interval would otherwise sit idle waiting to be sent
    /// more (with 50 ms units, 4 tokens per 250 ms keep it 40% busy).
    pub(super) fn advertise_load(&mut self, ctx: &mut Ctx<'_>, freed: bool) {
        let now = ctx.now;
        let free = self.free_slots().min(u16::MAX as usize) as u16;
        let room = self.advertised_room(ctx).min(u16::MAX as usize) as u16;
        let more = free > self.last_load_sent.0 || room > self.last_load_sent.1;
        // Becoming busy is said at once too: a neighbour that still
        // believes this node idle would hand it work it cannot start.
        let busy = free == 0 && self.last_load_sent.0 > 0;
        let early = (freed && more && now.since(self.last_load_at) >= Duration::from_millis(20)) || busy;
        if !early && now < self.next_load {
            return;
        }
        let mut entries: Vec<GradientEntry> = Vec::new();
        let known: BTreeSet<JobId> = self
            .homes
            .iter()
            .filter(|(_, h)| !h.state.is_final())
            .map(|(k, _)| k.clone())
            .chain(self.loads.values().flat_map(|l| l.dists.keys().cloned()))
            .collect();
        for j in known {
            if self.final_jobs.contains_key(j.as_str()) {
                continue;
            }
            if let Some(d) = self.dist(ctx, &j) {
                entries.push(GradientEntry { job: j, dist: d });
            }
        }
        let changed = (free, room) != self.last_load_sent;
        let keepalive = now.since(self.last_load_at) >= LOAD_KEEPALIVE;
        let new_neighbour = ctx.neighbors.iter().any(|(id, _)| !self.load_told.contains(id));
        if changed || !entries.is_empty() || keepalive || new_neighbour {
            self.next_load = now.plus(self.cfg.load_interval);
            self.last_load_sent = (free, room);
            self.last_load_at = now;
            self.load_told = ctx.neighbors.iter().map(|(id, _)| *id).collect();
            entries.truncate(crate::wire::MAX_GRADIENT_ENTRIES);
            for (id, addr) in ctx.neighbors.clone() {
                ctx.sends.push((PeerInfo { id, addr }, Message::Load { free, room, jobs: entries.clone() }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn reports_go_to_the_neighbour_nearest_the_home() {
        let mut b = Bench::new(1, &[2, 3]);
        let job = "j".to_string();
        b.call(|e, c| e.on_load(c, key(2).id(), 1, 1, vec![GradientEntry { job: JobId::from(job.clone()), dist: 3 }]));
        b.call(|e, c| e.on_load(c, key(3).id(), 1, 1, vec![GradientEntry { job: JobId::from(job.clone()), dist: 1 }]));
        let (hop, dist) = b.call(|e, c| (e.next_hop(c, &job), e.dist(c, &job)));
        assert_eq!(hop.map(|p| p.id), Some(key(3).id()));
        assert_eq!(dist, Some(2), "one more than the nearest neighbour's");
        // A neighbour that is gone is no route.
        b.neighbors.retain(|(id, _)| *id != key(3).id());
        assert_eq!(b.call(|e, c| e.next_hop(c, &job)).map(|p| p.id), Some(key(2).id()));
    }

    #[test]
    fn one_accuser_alone_never_sidelines_a_node() {
        let mut e = JobEngine::new(JobConfig::default());
        let (n, a, b) = (key(5).id(), key(6).id(), key(7).id());
        e.set_strikes(n, a, 9, false);
        assert_eq!(e.strikes(n), 0, "the worst accuser may lie");
        e.set_strikes(n, b, 4, false);
        assert_eq!(e.strikes(n), 4, "the second-worst accusation counts");
        e.set_strikes(n, key(1).id(), 6, true);
        assert_eq!(e.strikes(n), 6, "what this node saw itself counts whole");
    }
}
