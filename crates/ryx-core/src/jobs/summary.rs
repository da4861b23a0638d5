//! Job summaries: what a home publishes, what a node does with the
//! summaries it receives (a home steps down, an heir notes the end), and
//! the end of a job here.

use super::*;

impl JobEngine {
    pub(super) fn summary(&self, ctx: &Ctx<'_>, id: &str) -> Option<JobSummary> {
        let h = self.homes.get(id)?;
        let created_here = job_creator(id) == Some(ctx.me);
        // A result awaiting confirmation is not shown yet.
        let result = h.result.as_ref().filter(|_| h.state == JobState::Done);
        Some(JobSummary {
            job_id: JobId::from(id),
            kind: h.spec.kind.clone(),
            state: h.state,
            units_total: h.spec.units.len() as u32,
            units_done: h.decided,
            bytes_done: h
                .spec
                .units
                .iter()
                .zip(&h.unit_state)
                .filter(|(_, s)| s.decided.is_some())
                .map(|(u, _)| u.size)
                .sum(),
            bytes_total: h.spec.units.iter().map(|u| u.size).sum(),
            redundancy: h.spec.redundancy,
            home: ctx.me,
            home_http: ctx.http,
            created: h.spec.created,
            result_hash: result.map(|r| r.hash.clone()),
            result_digest: result.map(|r| r.digest.clone()),
            result_size: result.map(|r| r.size),
            // Bounded (a summary is one gossip item): the newest holders.
            result_holders: if result.is_some() {
                h.result_holders.iter().rev().take(MAX_SUMMARY_HOLDERS).rev().copied().collect()
            } else {
                Vec::new()
            },
            co_homes: h.yield_to.iter().take(16).copied().collect(),
            // Only a summary written by another home than the creator
            // needs them to be believed.
            appointment: h.appointment.clone().filter(|_| !created_here),
            confirmations: if created_here { Vec::new() } else { h.confirmations.iter().take(2).copied().collect() },
            error: h.error.clone(),
            stats: JobStats { workers: h.workers.len() as u64, ..h.stats.clone() },
            dataset: h.spec.dataset.clone(),
        })
    }

    pub(super) fn publish(&mut self, ctx: &mut Ctx<'_>, id: &str) {
        if let Some(s) = self.summary(ctx, id) {
            ctx.summaries.push(s);
        }
        if let Some(h) = self.homes.get_mut(id) {
            h.last_summary = ctx.now;
            h.summary_dirty = false;
            h.version += 1;
        }
    }

    /// Version to diffuse the next summary of a homed job with.
    pub fn summary_version(&self, id: &str) -> Option<u64> {
        self.homes.get(id).map(|h| h.version)
    }

    /// The version a homed job's summary was stored and diffused with (the
    /// store lifts it above any version it already holds for the key).
    pub fn summary_published(&mut self, id: &str, version: u64) {
        if let Some(h) = self.homes.get_mut(id) {
            h.version = h.version.max(version);
        }
    }

    /// A job summary written by `origin` arrived by diffusion (it beat the
    /// summary held here): learn final states (drop tokens, release pins),
    /// feed heirs' liveness view of the home, and settle two homes of one
    /// job.
    ///
    /// Two homes exist when an heir took over from a home that was only
    /// cut off (a partition, a long pause) and both went on. When they hear
    /// of each other, one steps down, decided the same way at both: the
    /// further-settled state wins (done over failed or cancelled over
    /// running), then last-writer-wins on (version, writer) — the order
    /// every node's store already uses, so the store and the homes agree. A
    /// home whose summary lost on version but is further settled publishes
    /// again above it; the other then steps down on hearing that.
    pub fn on_summary(&mut self, ctx: &mut Ctx<'_>, s: &JobSummary, version: u64, origin: NodeId) {
        if let Some(h) = self.heirs.get_mut(&s.job_id) {
            if version >= h.version_seen {
                h.version_seen = version;
                h.last_heard = ctx.now;
                h.final_state = s.state.is_final();
            }
        }
        let mut republish = false;
        if let Some(home) = self.homes.get_mut(&s.job_id) {
            // Only a home this one knows to be legitimate (an heir it
            // appointed, the home it took over from) can make it step
            // down; the store checked the summary is that node's own.
            let legit = home.yield_to.contains(&origin);
            let own = home.result.as_ref().map(|r| r.digest.clone());
            let contradicts = home.state == JobState::Done && s.state == JobState::Done && s.result_digest != own;
            let creator = job_creator(&s.job_id);
            // The creator ended the job (a partition healed, or the creator
            // was thought dead): its word is the client's, whatever the
            // versions, and a home that took over steps down.
            let creator_ended = creator == Some(origin) && creator != Some(ctx.me) && s.state.is_final();
            if creator_ended
                || (origin != ctx.me
                    && legit
                    && home.state == JobState::Running
                    && s.state == JobState::Done
                    && creator != Some(ctx.me))
            {
                // (Or another home's `done`, attested: the store took it
                // only with an appointed heir's confirmation.)
                if let Some(h) = self.homes.remove(&s.job_id) {
                    self.stepped_down += 1;
                    if let Some(MergedResult { hash, .. }) = &h.result {
                        if s.result_hash.as_deref() != Some(hash.as_str()) {
                            ctx.blobs.unpin_hash(hash, "results");
                        }
                    }
                    self.become_heir(ctx, &s.job_id, h, s, version);
                }
            } else if origin != ctx.me && legit && contradicts {
                // Two results of one job: both homes ran the same units by
                // the same votes, so honest ones agree. This home keeps the
                // result its own votes decided, and no longer yields to a
                // node that claims another.
                home.yield_to.remove(&origin);
                home.summary_dirty = true;
                republish = true;
                ctx.penalties.push(origin);
            } else if origin != ctx.me && legit && (version, origin) > (home.version, ctx.me) {
                if settle_rank(home.state) > settle_rank(s.state) {
                    home.summary_dirty = true;
                    republish = true;
                } else if home.state == JobState::Running && s.state == JobState::Done {
                    // A live home does not take another home's word for a
                    // result: it finishes itself, then compares (honest
                    // homes agree; see `contradicts`). Until then it keeps
                    // publishing, so workers keep taking its tokens.
                    home.summary_dirty = true;
                    republish = true;
                } else if job_creator(&s.job_id) == Some(ctx.me) {
                    // The creator is the home its client chose: while it
                    // lives it does not step down for an heir (which may be
                    // Byzantine); it publishes above it, and the heir, which
                    // took over only because the creator seemed gone, steps
                    // down instead. (At the tick's pace: a stream of
                    // summaries from an heir must not become a stream of
                    // the creator's.)
                    home.summary_dirty = true;
                } else {
                    let h = self.homes.remove(&s.job_id);
                    self.stepped_down += 1;
                    if let Some(h) = h {
                        if let Some(MergedResult { hash, .. }) = &h.result {
                            if s.result_hash.as_deref() != Some(hash.as_str()) {
                                ctx.blobs.unpin_hash(hash, "results");
                            }
                        }
                        self.become_heir(ctx, &s.job_id, h, s, version);
                    }
                }
            }
        }
        if republish {
            self.publish(ctx, &s.job_id);
        }
        if s.state.is_final() && !self.homes.contains_key(&s.job_id) {
            self.finalize_local(ctx, &s.job_id);
        }
        if !s.state.is_final() && job_creator(&s.job_id) == Some(origin) && !self.homes.contains_key(&s.job_id) {
            // The job's creator, newer than the end this node heard of
            // (from another home), still runs it: take its tokens again.
            self.final_jobs.remove(&s.job_id);
        }
    }

    /// A home that stepped down for `s`'s home stays an heir of the job,
    /// with what it knows (units, decisions, the creator's appointment): it
    /// can take over again, and, appointed, confirm the new home's result.
    pub(super) fn become_heir(&mut self, ctx: &mut Ctx<'_>, id: &str, h: HomeJob, s: &JobSummary, version: u64) {
        let held_units: usize = self.heirs.values().map(|x| x.units.len()).sum();
        if self.heirs.contains_key(id)
            || self.heirs.len() >= self.cfg.max_jobs * 4
            || held_units + h.spec.units.len() > MAX_HEIR_UNITS
        {
            return;
        }
        let page0 = JobRecordPage {
            job: JobId::from(id),
            kind: h.spec.kind.clone(),
            params: h.spec.params.clone(),
            redundancy: h.spec.redundancy,
            energy: h.spec.energy,
            home: s.home,
            heirs: h.spec.heirs.clone(),
            total_units: h.spec.units.len() as u32,
            offset: 0,
            units: Vec::new(),
            created: h.spec.created,
            appointment: h.appointment.clone(),
            dataset: h.spec.dataset.clone(),
            fan_in: h.tree.fan_in(),
        };
        let decisions = h
            .unit_state
            .iter()
            .enumerate()
            .filter_map(|(u, us)| {
                let (digest, holders, votes) = us.decided.clone()?;
                Some((u as u32, Decision { unit: u as u32, digest, holders, votes }))
            })
            .collect();
        for u in &h.spec.units {
            ctx.blobs.pin(&u.hash, id);
        }
        let heir = HeirJob {
            page0: Some(page0),
            units: (0..).zip(h.spec.units).collect(),
            decisions,
            rank: h.spec.heirs.len() + 1,
            last_heard: ctx.now,
            version_seen: version,
            final_state: s.state.is_final(),
            home_gone_at: None,
            appointment: h.appointment,
            claim: None,
        };
        self.heirs.insert(JobId::from(id), heir);
    }

    /// Times a home of some job stepped down for another home of it.
    pub fn stepped_down(&self) -> u64 {
        self.stepped_down
    }

    pub(super) fn finalize_local(&mut self, ctx: &mut Ctx<'_>, id: &str) {
        if self.final_jobs.contains_key(id) {
            return;
        }
        if self.final_jobs.len() >= 4096 {
            if let Some(k) = self.final_jobs.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                self.final_jobs.remove(&k);
            }
        }
        self.final_jobs.insert(JobId::from(id), ctx.now);
        self.queue.retain(|t| t.job != id);
        self.taken.remove(id);
        self.results.remove(id);
        self.worker_jobs.remove(id);
        if let Some(h) = self.heirs.get_mut(id) {
            h.final_state = true;
        }
        ctx.blobs.unpin_job(id);
        for (_, l) in self.loads.iter_mut() {
            l.dists.remove(id);
        }
        // Finished jobs homed here are remembered (their summaries are
        // re-published as their results gain holders), boundedly: the
        // oldest is forgotten, and its result is no longer pinned.
        let finished = self.homes.values().filter(|h| h.state.is_final()).count();
        if finished > MAX_FINISHED_HOMES {
            let oldest = self
                .homes
                .iter()
                .filter(|(k, h)| h.state.is_final() && k.as_str() != id)
                .min_by_key(|(_, h)| h.spec.created_at)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                if let Some(MergedResult { hash, .. }) = self.homes.remove(&k).and_then(|h| h.result) {
                    ctx.blobs.unpin_hash(&hash, "results");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn the_creator_does_not_step_down_for_an_heirs_newer_summary() {
        let mut c = Bench::new(1, &[2, 3]);
        let id = c.submit(units(2), 1);
        let mut s = c.summaries.last().cloned().expect("published");
        let heir = s.co_homes[0];
        s.home = heir;
        c.call(|e, x| e.on_summary(x, &s, u64::MAX / 2, heir));
        assert!(c.engine.is_home(&id));
        assert_eq!(c.engine.stepped_down(), 0);
    }

    #[test]
    fn a_finished_job_leaves_nothing_to_run_here() {
        let mut c = Bench::new(1, &[2, 3]);
        let id = c.submit(units(3), 1);
        c.call(|e, x| e.cancel(x, &id));
        assert_eq!(c.summaries.last().map(|s| s.state), Some(JobState::Cancelled));
        assert!(c.engine.queue.iter().all(|t| t.job != id), "its tokens are dropped");
        assert!(c.engine.final_jobs.contains_key(id.as_str()));
    }
}
