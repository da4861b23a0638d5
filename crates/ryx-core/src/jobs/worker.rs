//! The worker: tokens taken or passed on, chunks fetched, kernels run,
//! holdings and signed results reported toward the home.

use super::*;

impl JobEngine {
    /// A token arrived from a neighbour.
    pub fn on_work(&mut self, ctx: &mut Ctx<'_>, token: WorkToken) {
        if self.final_jobs.contains_key(&token.job) || self.queue.len() >= MAX_QUEUE_HARD {
            return;
        }
        self.queue.push_back(token);
        self.schedule(ctx);
    }

    /// Starts what can run here and passes on what cannot.
    pub fn schedule(&mut self, ctx: &mut Ctx<'_>) {
        // 0. Other replicas of units over this node's own files go to the
        // nodes keeping copies of them, one each (replica r to the r-th):
        // they run them with no transfer, and a unit's replicas land on
        // distinct nodes. Without copies kept, they travel as usual.
        let mut i = 0;
        while i < self.queue.len() {
            let forward = self.queue.get(i).and_then(|t| {
                if t.replica == 0 || !ctx.blobs.is_local(&t.chunk) {
                    return None;
                }
                let keepers = (ctx.keepers_of)(&t.chunk);
                keepers.get((t.replica as usize - 1) % keepers.len().max(1)).copied()
            });
            match forward {
                Some(to) => {
                    if let Some(t) = self.queue.remove(i) {
                        ctx.sends.push((to, Message::Work { token: Box::new(t) }));
                    }
                }
                None => i += 1,
            }
        }
        // 1. Run what we can: units whose chunk is held here first (no
        // transfer), then the rest in arrival order.
        // Combine steps first, on their own lane: they were sent here
        // because this node holds most of their inputs.
        let mut i = 0;
        while self.combine_lane_free() && i < self.queue.len() {
            let runnable = self
                .queue
                .get(i)
                .is_some_and(|t| !t.inputs.is_empty() && !self.taken.get(&t.job).is_some_and(|s| s.contains(&t.unit)));
            if !runnable {
                i += 1;
                continue;
            }
            let Some(t) = self.queue.remove(i) else { break };
            self.start(ctx, t);
        }
        for local_only in [true, false] {
            let mut i = 0;
            while self.free_slots() > 0 && i < self.queue.len() {
                let runnable = self.queue.get(i).is_some_and(|t| {
                    t.inputs.is_empty()
                        && !self.taken.get(&t.job).is_some_and(|s| s.contains(&t.unit))
                        && (!local_only || ctx.blobs.holds(&t.chunk))
                });
                if !runnable {
                    i += 1;
                    continue;
                }
                let Some(t) = self.queue.remove(i) else { break };
                self.start(ctx, t);
            }
        }
        // 2. Pass on what waits, to neighbours with room, most free first.
        if self.queue.is_empty() {
            return;
        }
        let first_here = |t: &WorkToken| t.replica == 0 && ctx.blobs.is_local(&t.chunk);
        let mut local_waiting = self.queue.iter().filter(|t| first_here(t)).count();
        self.local_since = match (local_waiting, self.local_since) {
            (0, _) => None,
            (_, None) => Some(ctx.now),
            (_, since) => since,
        };
        let settled = self.local_since.map(|t| t.plus(STEAL_SETTLE));
        // (id, addr, free, room, whether a steal may go there)
        let mut budget: Vec<(NodeId, SocketAddr, usize, usize, bool)> = ctx
            .neighbors
            .iter()
            .filter(|(id, _)| self.strikes(*id) < AVOID_AFTER_STRIKES)
            .filter_map(|(id, addr)| {
                self.loads.get(id).map(|l| {
                    let fresh = settled.is_some_and(|s| l.at >= s);
                    (*id, *addr, l.free as usize, l.room as usize, fresh)
                })
            })
            .filter(|b| b.3 > 0)
            .collect();
        if budget.is_empty() {
            self.drop_stuck();
            return;
        }
        let mut keep = VecDeque::new();
        // Keep enough local work to refill our own slots; pass the rest.
        // First replicas of chunks of this node's own files stay (running
        // them costs no transfer, and no other node may hold them) unless a
        // neighbour sits idle while more of them wait here than this node
        // has slots: then it takes one, as a steal. Other replicas must run
        // elsewhere anyway and travel as usual (kept here too, they sat
        // beside the first and, on a simulated 5-node job of 100 units,
        // never left: the job hung).
        let mut own_share = self.cfg.queue_room.min(self.queue.len());
        while let Some(mut t) = self.queue.pop_front() {
            let mine_ok = !self.taken.get(&t.job).is_some_and(|s| s.contains(&t.unit));
            if mine_ok && t.inputs.iter().any(|i| ctx.blobs.holds(&i.digest)) {
                // A combine step waits for this node's lane where it holds
                // inputs (a neighbour would fetch them all); elsewhere it
                // goes on like any token.
                keep.push_back(t);
                continue;
            }
            if mine_ok && own_share > 0 {
                own_share -= 1;
                keep.push_back(t);
                continue;
            }
            let steal = mine_ok && first_here(&t);
            if steal {
                let idle = budget.iter().any(|b| b.2 > 0 && b.3 > 0 && b.4);
                if !(idle && local_waiting > self.cfg.worker_slots) {
                    keep.push_back(t);
                    continue;
                }
                // Passed to the idlest neighbour (sorted first below).
                local_waiting -= 1;
            }
            let next = ctx.energy.after_hop(t.energy);
            if !EnergyModel::alive(next) {
                if mine_ok {
                    keep.push_back(t);
                }
                // A token that can neither run here nor travel is dropped;
                // its lease lapses and the home issues it again, fresh.
                continue;
            }
            // A steal goes to the idlest neighbour whose report is fresh.
            budget.sort_by(|a, b| (b.4 || !steal).cmp(&(a.4 || !steal)).then(b.2.cmp(&a.2)).then(b.3.cmp(&a.3)));
            match budget.first_mut() {
                // A steal fills an idle slot, never a queue: a token of our
                // own files queued behind other work elsewhere waits there
                // while this node, which needs no transfer to run it, may
                // fall idle (on a simulated 50-node dataset job, owners ran
                // dry at 40% of the job and took each other's chunks back).
                Some(b) if steal && (b.2 == 0 || !b.4) => keep.push_back(t),
                Some(b) if b.3 > 0 => {
                    b.3 -= 1;
                    b.2 = b.2.saturating_sub(1);
                    t.energy = next;
                    ctx.sends.push((PeerInfo { id: b.0, addr: b.1 }, Message::Work { token: Box::new(t) }));
                }
                _ => keep.push_back(t),
            }
        }
        let passed = self.queue.len() > keep.len();
        self.queue = keep;
        for (id, _, free, room, _) in budget {
            if let Some(l) = self.loads.get_mut(&id) {
                l.free = free as u16;
                l.room = room as u16;
            }
        }
        if passed {
            // Passing tokens on made room here: say so, so that work keeps
            // flowing through this node toward idle ones further away.
            self.advertise_load(ctx, true);
        }
    }

    pub(super) fn drop_stuck(&mut self) {
        let taken = &self.taken;
        self.queue.retain(|t| {
            let mine_ok = !taken.get(&t.job).is_some_and(|s| s.contains(&t.unit));
            mine_ok || t.energy > 0.0
        });
    }

    /// Notes worker-side state for `job` (units taken, results to report),
    /// forgetting the least recently active job's when too many jobs have
    /// some: tokens of made-up jobs cost memory only up to this bound.
    pub(super) fn touch_worker_job(&mut self, job: &str, now: Time) {
        if !self.worker_jobs.contains_key(job) && self.worker_jobs.len() >= self.cfg.max_jobs * 4 {
            if let Some(old) = self.worker_jobs.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                self.worker_jobs.remove(&old);
                self.taken.remove(&old);
                self.results.remove(&old);
            }
        }
        self.worker_jobs.insert(JobId::from(job), now);
    }

    pub(super) fn start(&mut self, ctx: &mut Ctx<'_>, t: WorkToken) {
        self.touch_worker_job(&t.job, ctx.now);
        let taken = self.taken.entry(t.job.clone()).or_default();
        if taken.len() >= self.cfg.max_units && !taken.contains(&t.unit) {
            // No job has more units: a token beyond is made up.
            return;
        }
        taken.insert(t.unit);
        let key = (t.job.clone(), t.unit, t.replica);
        if !t.inputs.is_empty() {
            // A combine step: run only what its name says (the home's
            // votes bind the name, not the list).
            if t.chunk != combine_name(t.inputs.iter().map(|i| i.digest.as_str())) {
                ctx.rejected.push("bad_combine");
                if let Some(s) = self.taken.get_mut(&t.job) {
                    s.remove(&t.unit);
                }
                return;
            }
            for i in &t.inputs {
                ctx.blobs.pin(&i.digest, &t.job);
            }
            self.running.insert(key, (t.clone(), Slot::Executing));
            ctx.outputs.push(JobOutput::Combine { token: t });
            return;
        }
        ctx.blobs.pin(&t.chunk, &t.job);
        if ctx.blobs.holds(&t.chunk) {
            self.running.insert(key, (t.clone(), Slot::Executing));
            ctx.outputs.push(JobOutput::Execute { token: t });
        } else {
            // Copies elsewhere in random order, the home's last.
            let mut sources = t.holders.clone();
            if let Some((_, others)) = sources.split_last_mut() {
                ctx.rng.shuffle(others);
            }
            ctx.outputs.push(JobOutput::Fetch { hash: t.chunk.clone(), size: t.size, sources, kind: BlobKind::Chunk });
            self.running.insert(key, (t, Slot::Fetching));
        }
    }

    /// A fetch finished (`ok`: the blob is now held and verified).
    pub fn fetch_done(&mut self, ctx: &mut Ctx<'_>, hash: &str, ok: bool) {
        let waiting: Vec<(JobId, u32, u8)> = self
            .running
            .iter()
            .filter(|(_, (t, s))| matches!(s, Slot::Fetching) && t.chunk == hash)
            .map(|(k, _)| k.clone())
            .collect();
        for k in waiting {
            if ok {
                if let Some(entry) = self.running.get_mut(&k) {
                    entry.1 = Slot::Executing;
                    ctx.outputs.push(JobOutput::Execute { token: entry.0.clone() });
                }
                // Pinned now that it is here (a pin holds only what is held).
                ctx.blobs.pin(hash, &k.0);
            } else if let Some((t, _)) = self.running.remove(&k) {
                // Nobody could serve the chunk: give the slot back and let
                // the lease bring the unit back from its home.
                if let Some(s) = self.taken.get_mut(&t.job) {
                    s.remove(&t.unit);
                }
            }
        }
        self.schedule(ctx);
    }

    /// A kernel finished; on success the partial is stored under `digest`.
    pub fn work_done(&mut self, ctx: &mut Ctx<'_>, job: &str, unit: u32, replica: u8, digest: Result<String, String>) {
        let Some((t, _)) = self.running.remove(&(JobId::from(job), unit, replica)) else {
            self.schedule(ctx);
            return;
        };
        match digest {
            Ok(d) => {
                ctx.blobs.pin(&d, job);
                let token = token_digest(&t.job, t.unit, &t.chunk, &t.kind, &t.params);
                let vote =
                    crate::attest::vote_proof(ctx.identity, ctx.cluster, ctx.wall.as_millis(), job, unit, &token, &d);
                let r = UnitResult { unit, replica, digest: d, token, proof: Some(vote) };
                self.touch_worker_job(&t.job, ctx.now);
                let list = self.results.entry(t.job.clone()).or_default();
                list.push(r);
                if list.len() > 4 * MAX_RESULTS_PER_REPORT {
                    list.remove(0);
                }
                // Report at once: the home is waiting for it.
                self.report_job(ctx, &t.job);
            }
            Err(_) => {
                if let Some(s) = self.taken.get_mut(job) {
                    s.remove(&unit);
                }
            }
        }
        self.schedule(ctx);
        self.advertise_load(ctx, true);
    }

    pub(super) fn report_job(&mut self, ctx: &mut Ctx<'_>, job: &str) {
        let holding: Vec<(u32, u8)> = self
            .queue
            .iter()
            .filter(|t| t.job == job)
            .map(|t| (t.unit, t.replica))
            .chain(self.running.keys().filter(|k| k.0 == job).map(|k| (k.1, k.2)))
            .collect();
        let results: Vec<UnitResult> = self
            .results
            .get(job)
            .map(|r| r.iter().rev().take(MAX_RESULTS_PER_REPORT).cloned().collect())
            .unwrap_or_default();
        if holding.is_empty() && results.is_empty() {
            return;
        }
        // Every held token renews its lease, however many there are: one
        // report per page (a page fits a datagram).
        let pages = holding.len().div_ceil(HOLDING_PER_REPORT).max(results.len().div_ceil(RESULTS_PER_REPORT));
        fn page_of<T: Clone>(v: &[T], n: usize, i: usize) -> Vec<T> {
            v.chunks(n).nth(i).map(<[T]>::to_vec).unwrap_or_default()
        }
        for i in 0..pages {
            let (holding, results) =
                (page_of(&holding, HOLDING_PER_REPORT, i), page_of(&results, RESULTS_PER_REPORT, i));
            let mut report = JobReport {
                job: JobId::from(job),
                worker: ctx.me,
                http: ctx.http,
                holding,
                results,
                hops: 0,
                proof: None,
            };
            if self.homes.contains_key(job) {
                // Our own report needs no signature to reach ourselves.
                self.on_report(ctx, report);
                continue;
            }
            let bytes = report.signed_bytes(ctx.cluster);
            report.proof = Some(ctx.identity.prove(crate::identity::domain::REPORT, ctx.wall.as_millis(), &[&bytes]));
            self.forward_report(ctx, report);
        }
    }

    pub(super) fn forward_report(&mut self, ctx: &mut Ctx<'_>, mut report: JobReport) {
        if report.hops >= MAX_DIST {
            return;
        }
        report.hops += 1;
        if let Some(next) = self.next_hop(ctx, &report.job) {
            ctx.sends.push((next, Message::JobReport { report: Box::new(report) }));
        }
    }

    /// A report travelling toward a home reached this node: a home checks
    /// that its worker signed it, anyone else passes it on.
    pub fn on_report_msg(&mut self, ctx: &mut Ctx<'_>, report: JobReport) -> Result<(), crate::identity::SigError> {
        if !self.homes.contains_key(&report.job) {
            self.forward_report(ctx, report);
            return Ok(());
        }
        let proof = report.proof.ok_or(crate::identity::SigError::Missing)?;
        proof.fresh(ctx.wall.as_millis(), 60_000)?;
        proof.verify(report.worker, crate::identity::domain::REPORT, &[&report.signed_bytes(ctx.cluster)])?;
        self.on_report(ctx, report);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    fn token(job: &str, unit: u32, chunk: &str) -> WorkToken {
        WorkToken {
            job: job.into(),
            unit,
            replica: 0,
            chunk: chunk.into(),
            size: 100,
            holders: vec![addr(1)],
            kind: "word-count".into(),
            params: serde_json::json!({}),
            energy: 5.0,
            inputs: Vec::new(),
        }
    }

    #[test]
    fn a_token_is_fetched_run_and_reported_toward_the_home_signed() {
        let mut b = Bench::new(5, &[1]);
        let job = format!("{}{:016x}", key(1).id(), 1);
        let chunk = name("chunk");
        b.call(|e, c| e.on_load(c, key(1).id(), 0, 0, vec![GradientEntry { job: JobId::from(job.clone()), dist: 0 }]));
        b.call(|e, c| e.on_work(c, token(&job, 0, &chunk)));
        assert!(matches!(b.outputs.last(), Some(JobOutput::Fetch { hash, .. }) if *hash == chunk), "{:?}", b.outputs);
        b.blobs.insert(Hash::from(&chunk), 100, crate::blobs::BlobKind::Chunk, 1.0, b.now);
        b.call(|e, c| e.fetch_done(c, &chunk, true));
        assert!(matches!(b.outputs.last(), Some(JobOutput::Execute { .. })), "{:?}", b.outputs);
        let partial = name("partial");
        b.call(|e, c| e.work_done(c, &job, 0, 0, Ok(partial.clone())));
        b.advance(JobConfig::default().report_interval.as_millis() as u64);
        let reports = b.sent("job_report");
        let (to, Message::JobReport { report }) = reports.last().expect("a report") else { unreachable!() };
        assert_eq!(to.id, key(1).id(), "toward the home");
        let proof = report.proof.expect("signed by its worker");
        assert!(proof.verify(key(5).id(), crate::identity::domain::REPORT, &[&report.signed_bytes(CLUSTER)]).is_ok());
        let r = &report.results[0];
        assert_eq!(r.digest, partial);
        let vote = r.proof.expect("a vote");
        assert!(crate::attest::check_vote(&vote, key(5).id(), CLUSTER, &job, 0, &r.token, &partial).is_ok());
    }

    #[test]
    fn tokens_for_chunks_of_its_own_files_stay_unless_a_neighbour_is_idle() {
        let mut b = Bench::new(5, &[1, 2]);
        let job = format!("{}{:016x}", key(1).id(), 3);
        let chunks: Vec<String> = (0..8).map(|i| name(&format!("c{i}"))).collect();
        for c in &chunks {
            assert!(b.blobs.set_local(Hash::from(c.as_str()), 100, true));
        }
        // Neighbours busy: no free slot, but room in their queues.
        b.call(|e, c| e.on_load(c, key(1).id(), 0, 4, vec![]));
        b.call(|e, c| e.on_load(c, key(2).id(), 0, 4, vec![]));
        for (i, c) in chunks.iter().enumerate() {
            b.call(|e, ctx| e.on_work(ctx, token(&job, i as u32, c)));
        }
        assert!(b.sent("work").is_empty(), "nothing leaves while neighbours are busy");
        assert_eq!(b.engine.running.len(), 2);
        assert!(b.outputs.iter().all(|o| matches!(o, JobOutput::Execute { .. })), "run in place, no fetch");
        // An idle report that arrives with the tokens may be stale (sent
        // before that neighbour got work of its own): it takes nothing.
        b.call(|e, c| e.on_load(c, key(2).id(), 2, 4, vec![]));
        assert!(b.sent("work").is_empty(), "a report as old as the tokens steals nothing");
        // Still idle a moment later: it may take waiting tokens, one per
        // free slot.
        b.now = b.now.plus(STEAL_SETTLE);
        b.call(|e, c| e.on_load(c, key(2).id(), 2, 4, vec![]));
        let stolen = b.sent("work");
        assert_eq!(stolen.len(), 2, "{stolen:?}");
        assert!(stolen.iter().all(|(to, _)| to.id == key(2).id()));
        assert_eq!(b.engine.queue.len(), 4, "the rest stays here");
    }

    #[test]
    fn tokens_of_a_finished_job_are_dropped() {
        let mut b = Bench::new(5, &[1]);
        let job = format!("{}{:016x}", key(1).id(), 2);
        b.call(|e, c| e.finalize_local(c, &job));
        b.call(|e, c| e.on_work(c, token(&job, 0, &name("c"))));
        assert!(b.engine.queue.is_empty() && b.engine.running.is_empty());
        assert!(b.outputs.is_empty());
    }

    #[test]
    fn other_replicas_of_its_own_chunks_go_to_the_nodes_keeping_copies() {
        let mut b = Bench::new(5, &[1, 2]);
        let job = format!("{}{:016x}", key(1).id(), 4);
        let chunk = name("own");
        assert!(b.blobs.set_local(Hash::from(chunk.as_str()), 100, true));
        b.keepers = vec![(chunk.clone(), peer(7)), (chunk.clone(), peer(8))];
        for r in 0..3u8 {
            b.call(|e, c| e.on_work(c, WorkToken { replica: r, ..token(&job, 0, &chunk) }));
        }
        let sent: Vec<(NodeId, u8)> = b
            .sent("work")
            .iter()
            .filter_map(|(to, m)| match m {
                Message::Work { token } => Some((to.id, token.replica)),
                _ => None,
            })
            .collect();
        assert_eq!(sent, vec![(key(7).id(), 1), (key(8).id(), 2)], "replica r to the r-th keeper");
        assert_eq!(b.engine.running.len(), 1, "the first runs here");
        // With no copies kept, another replica stays to travel as usual.
        b.keepers.clear();
        b.sends.clear();
        b.call(|e, c| e.on_work(c, WorkToken { replica: 1, ..token(&job, 1, &chunk) }));
        assert!(b.sent("work").is_empty());
    }
}
