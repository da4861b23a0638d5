//! Heirs: replicas of a job's record and decisions, takeover when the
//! home is gone, and the check of a result claimed by a home other than
//! the creator.

use super::*;

impl JobEngine {
    /// A page of a job record arrived from `from` (who signed it). Returns
    /// false if it is refused: it is not from the job's home (as the page
    /// says, and as an earlier page said or named as an heir; for a job new
    /// here, `from` must be among `may_home`: its creator, or a home the
    /// summary held here names), or it does not add up. An heir that took
    /// a made-up record would one day take over a job that is not one.
    pub fn on_record(&mut self, ctx: &mut Ctx<'_>, from: NodeId, page: JobRecordPage, may_home: &[NodeId]) -> bool {
        if from != page.home {
            return false;
        }
        if !self.heirs.contains_key(&page.job) && !may_home.contains(&from) {
            return false;
        }
        if self.final_jobs.contains_key(&page.job) || self.homes.contains_key(&page.job) {
            return true;
        }
        let end = page.offset.checked_add(page.units.len() as u32);
        if page.total_units == 0
            || page.total_units as usize > self.cfg.max_units
            || end.is_none_or(|e| e > page.total_units)
            || !(1..=7).contains(&page.redundancy)
        {
            return false;
        }
        if let Some(p0) = self.heirs.get(&page.job).and_then(|h| h.page0.as_ref()) {
            let same_home = p0.home == from;
            let appointee = self.heirs.get(&page.job).is_some_and(|h| appointed(h, from));
            if (!same_home && !p0.heirs.iter().any(|p| p.id == from) && !appointee)
                || (same_home && p0.total_units != page.total_units)
            {
                return false;
            }
        }
        let held_units: usize = self.heirs.values().map(|h| h.units.len()).sum();
        if !self.heirs.contains_key(&page.job) && self.heirs.len() >= self.cfg.max_jobs * 4
            || held_units + page.units.len() > MAX_HEIR_UNITS
        {
            // Bounded: a flood of records (or of huge ones) degrades
            // takeover for jobs beyond the bound, never memory.
            return true;
        }
        let rank = page.heirs.iter().position(|p| p.id == ctx.me).unwrap_or(page.heirs.len());
        let h = self.heirs.entry(page.job.clone()).or_insert_with(|| HeirJob {
            page0: None,
            units: BTreeMap::new(),
            decisions: BTreeMap::new(),
            rank,
            last_heard: ctx.now,
            version_seen: 0,
            final_state: false,
            home_gone_at: None,
            appointment: None,
            claim: None,
        });
        h.last_heard = ctx.now;
        h.rank = rank;
        // The creator's appointment, passed on by whichever home holds the
        // job: kept if the creator signed it, the newest one winning.
        if let Some(a) = page.appointment.as_ref() {
            let newer = h.appointment.as_ref().is_none_or(|old| old.proof.ts < a.proof.ts);
            if newer && a.verify(ctx.cluster, &page.job).is_ok() {
                h.appointment = Some(a.clone());
            }
        }
        for (i, u) in (page.offset..).zip(page.units.iter()) {
            h.units.insert(i, u.clone());
            ctx.blobs.pin(&u.hash, &page.job);
        }
        if page.offset == 0 || h.page0.is_none() || h.page0.as_ref().is_some_and(|p| p.home != page.home) {
            h.page0 = Some(JobRecordPage { units: Vec::new(), ..page });
        }
        true
    }

    /// Decisions arrived from `from`: kept if it is the job's home as this
    /// heir knows it.
    pub fn on_decided(&mut self, ctx: &mut Ctx<'_>, from: NodeId, job: &str, decisions: Vec<Decision>) -> bool {
        let Some(h) = self.heirs.get_mut(job) else { return true };
        let Some(p0) = &h.page0 else { return true };
        if p0.home != from && !appointed(h, from) {
            return false;
        }
        let tree = MergeTree::new(p0.total_units, p0.fan_in);
        let total = tree.total();
        // From the creator, a decision is its word. From a home that took
        // over (which may be Byzantine) it must carry a quorum of workers'
        // signed votes for that unit's token.
        let certify = job_creator(job) != Some(from);
        let quorum = p0.redundancy as usize / 2 + 1;
        let (kind, params) = (p0.kind.clone(), p0.params.clone());
        h.last_heard = ctx.now;
        let mut room = MAX_HEIR_UNITS.saturating_sub(self.heirs.values().map(|h| h.decisions.len()).sum());
        let Some(h) = self.heirs.get_mut(job) else { return true };
        for d in decisions.into_iter().filter(|d| d.unit < total && crate::blobs::is_hash(&d.digest)) {
            if room == 0 && !h.decisions.contains_key(&d.unit) {
                break;
            }
            if certify {
                // A combine step's chunk names its inputs' decided digests.
                let chunk = match tree.children(d.unit) {
                    Some(ch) => {
                        let inputs: Option<Vec<&str>> =
                            ch.map(|u| h.decisions.get(&u).map(|x| x.digest.as_str())).collect();
                        inputs.map(combine_name)
                    }
                    None => h.units.get(&d.unit).map(|u| u.hash.clone()),
                };
                let Some(chunk) = chunk else { continue };
                if h.decisions.get(&d.unit).is_some_and(|old| old.digest == d.digest && old.votes == d.votes) {
                    continue;
                }
                let token = token_digest(job, d.unit, &chunk, &kind, &params);
                if !crate::attest::check_certificate(&d.votes, quorum, ctx.cluster, job, d.unit, &token, &d.digest) {
                    ctx.rejected.push("bad_certificate");
                    continue;
                }
            }
            if h.decisions.insert(d.unit, d).is_none() {
                room = room.saturating_sub(1);
            }
        }
        if h.claim.is_some() {
            self.check_claim(ctx, job);
        }
        true
    }

    /// Whether this node is an heir that should now take over `job`:
    /// it heard nothing from a running job's home for its silence window.
    pub(super) fn heir_due(&self, ctx: &Ctx<'_>, h: &HeirJob, home_gone: bool) -> bool {
        if h.final_state {
            return false;
        }
        let Some(p0) = &h.page0 else { return false };
        if h.units.len() < p0.total_units as usize {
            return false;
        }
        let stagger = self.cfg.heir_stagger * h.rank as u32;
        let wait = if home_gone { stagger } else { self.cfg.heir_silence + stagger };
        // Seen dead and no new home heard of since: the heirs ranked above
        // died too (a mass failure kills an heir with its home as often as
        // not), so do not wait out the silence.
        let gone =
            h.home_gone_at.is_some_and(|t| h.last_heard <= t && ctx.now.since(t) >= HEIR_GONE_STAGGER * h.rank as u32);
        ctx.now.since(h.last_heard) >= wait || gone
    }

    /// The home of some jobs was seen to die (neighbour failure or leave).
    pub fn home_lost(&mut self, ctx: &mut Ctx<'_>, node: NodeId) {
        let now = ctx.now;
        for h in self.heirs.values_mut().filter(|h| home_of(h) == Some(node)) {
            h.home_gone_at.get_or_insert(now);
        }
        let due: Vec<JobId> = self
            .heirs
            .iter()
            .filter(|(_, h)| home_of(h) == Some(node))
            .filter(|(_, h)| self.heir_due(ctx, h, true))
            .map(|(k, _)| k.clone())
            .collect();
        for id in due {
            self.take_over(ctx, &id);
        }
    }

    pub(super) fn take_over(&mut self, ctx: &mut Ctx<'_>, id: &str) {
        let Some(h) = self.heirs.remove(id) else {
            return;
        };
        let Some(p0) = h.page0 else { return };
        let units: Vec<UnitRef> = (0..p0.total_units).filter_map(|i| h.units.get(&i).cloned()).collect();
        if units.len() != p0.total_units as usize {
            return;
        }
        let tree = MergeTree::new(p0.total_units, p0.fan_in);
        let mut unit_state = vec![UnitState::default(); tree.total() as usize];
        let mut decided = 0;
        for (u, us) in unit_state.iter_mut().enumerate() {
            if let Some(d) = h.decisions.get(&(u as u32)) {
                us.decided = Some((d.digest.clone(), d.holders.clone(), d.votes.clone()));
                if !tree.is_combine(u as u32) {
                    decided += 1;
                }
            } else if tree.is_combine(u as u32) {
                // Issued below once its inputs are decided.
            } else {
                // Whoever holds these will report within a lease; what
                // nobody reports is issued again when the lease lapses.
                us.reps =
                    (0..p0.redundancy).map(|_| Rep { done: false, last_seen: ctx.now, issued: ctx.now }).collect();
                // The record lists a few holders per chunk
                // (`wire::PAGE_HOLDER_ADDRS`), learned before whatever
                // killed the home may have killed them too: ask who holds
                // the rest now, so the re-issued tokens name live holders
                // (answers arrive well within the lease).
                us.searched = Some(ctx.now);
                if let Some(u) = h.units.get(&(u as u32)) {
                    if !ctx.wants.contains(&u.hash) {
                        ctx.wants.push(u.hash.clone());
                    }
                }
            }
        }
        let heirs: Vec<PeerInfo> = p0.heirs.iter().filter(|p| p.id != ctx.me).copied().collect();
        let stats = JobStats { takeovers: 1, ..Default::default() };
        let start = HomeStart {
            kind: p0.kind.clone(),
            params: p0.params.clone(),
            units,
            redundancy: p0.redundancy,
            energy: p0.energy,
            heirs,
            created: p0.created,
            created_at: Time(p0.created.min(ctx.now.as_micros())),
            dataset: p0.dataset.clone(),
            fan_in: p0.fan_in,
        };
        let mut job = HomeJob::start(start, ctx.now);
        job.unit_state = unit_state;
        job.decided = decided;
        // Win last-writer-wins against every summary the old home wrote.
        // Versions are hybrid clocks (the store lifts the next one to at
        // least the wall clock): one above the last seen wins.
        job.version = h.version_seen.saturating_add(1);
        job.stats = stats;
        job.yield_to = std::iter::once(p0.home)
            .chain(p0.heirs.iter().map(|p| p.id))
            .filter(|n| *n != ctx.me)
            .take(MAX_YIELD_TO)
            .collect();
        job.appointment = h.appointment;
        self.homes.insert(JobId::from(id), job);
        self.send_record(ctx, id);
        self.publish(ctx, id);
        for c in tree.leaves()..tree.total() {
            self.issue_combine(ctx, id, c);
        }
        self.maybe_merge(ctx, id);
    }

    /// `from` says a job finished with result (`hash`, `digest`). Returns
    /// whether `from` is the home this heir knows. From the job's creator
    /// the heir notes the end; from another home (one that took over) it is
    /// a claim the heir checks by merging the decided partials itself, and
    /// confirms only if it gets the same result (`attest`).
    pub fn on_finished(&mut self, ctx: &mut Ctx<'_>, from: PeerInfo, job: &str, hash: &str, digest: &str) -> bool {
        let creator = job_creator(job);
        if let Some(home) = self.homes.get_mut(job) {
            // Two heirs took over (both found the first claim wrong, say):
            // an appointed one that merged the same result confirms the
            // other's claim as an heir would, so neither waits on the other.
            let me_appointed = home.appointment.as_ref().is_some_and(|a| a.names(ctx.me) && a.names(from.id));
            let Some(MergedResult { hash: hash_here, digest: digest_here, .. }) = home.result.clone() else {
                return me_appointed;
            };
            if !me_appointed || from.id == ctx.me {
                return false;
            }
            if hash_here == hash && digest_here == digest {
                let confirmation =
                    Confirmation::new(ctx.identity, ctx.cluster, ctx.wall.as_millis(), job, hash, digest);
                let msg = Message::JobConfirmed {
                    job: JobId::from(job),
                    result: hash_here,
                    digest: digest_here,
                    confirmation: Box::new(confirmation),
                };
                ctx.sends.push((from, msg));
            } else {
                home.yield_to.remove(&from.id);
                ctx.penalties.push(from.id);
                ctx.rejected.push("wrong_result");
            }
            return true;
        }
        let Some(h) = self.heirs.get_mut(job) else { return false };
        if h.page0.as_ref().is_none_or(|p| p.home != from.id) && !appointed(h, from.id) {
            return false;
        }
        h.last_heard = ctx.now;
        if creator == Some(from.id) {
            h.final_state = true;
            return true;
        }
        let same = h.claim.as_ref().is_some_and(|c| c.home.id == from.id && c.hash == hash && c.digest == digest);
        if !same {
            h.claim = Some(Claim {
                hash: Hash::from(hash),
                digest: digest.to_string(),
                home: from,
                merging: false,
                confirmed: None,
            });
        }
        self.check_claim(ctx, job);
        true
    }

    /// An heir holding a claim: confirms it again if it already did, or
    /// merges the decided partials to compare once it has every decision.
    pub(super) fn check_claim(&mut self, ctx: &mut Ctx<'_>, job: &str) {
        let Some(h) = self.heirs.get_mut(job) else { return };
        let Some(p0) = h.page0.as_ref() else { return };
        let Some(c) = h.claim.as_mut() else { return };
        if let Some(conf) = c.confirmed {
            let msg = Message::JobConfirmed {
                job: JobId::from(job),
                result: c.hash.clone(),
                digest: c.digest.clone(),
                confirmation: Box::new(conf),
            };
            ctx.sends.push((c.home, msg));
            return;
        }
        let appointed = h.appointment.as_ref().is_some_and(|a| a.names(ctx.me));
        let top = MergeTree::new(p0.total_units, p0.fan_in).top();
        if c.merging || !appointed || !top.clone().all(|u| h.decisions.contains_key(&u)) {
            return;
        }
        c.merging = true;
        let partials = top.filter_map(|u| h.decisions.get(&u).map(|d| (d.digest.clone(), d.holders.clone()))).collect();
        ctx.outputs.push(JobOutput::Merge {
            job: JobId::from(job),
            kind: p0.kind.clone(),
            params: p0.params.clone(),
            partials,
        });
    }

    /// An heir merged the partials of a result it was asked to confirm.
    pub(super) fn claim_merged(&mut self, ctx: &mut Ctx<'_>, job: &str, outcome: Result<MergedResult, Vec<u32>>) {
        let Some(h) = self.heirs.get_mut(job) else { return };
        let Some(c) = h.claim.as_mut() else { return };
        c.merging = false;
        match outcome {
            Ok(MergedResult { hash, digest, .. }) if hash == c.hash && digest == c.digest => {
                ctx.blobs.pin(&hash, job);
                c.confirmed =
                    Some(Confirmation::new(ctx.identity, ctx.cluster, ctx.wall.as_millis(), job, &hash, &digest));
                self.check_claim(ctx, job);
            }
            Ok(_) => {
                // The home claims a result its own decisions do not give:
                // it lies. Stop following it and finish the job here (it
                // needs another appointed heir's confirmation in turn).
                let liar = c.home.id;
                h.claim = None;
                ctx.penalties.push(liar);
                ctx.rejected.push("wrong_result");
                self.take_over(ctx, job);
                if let Some(home) = self.homes.get_mut(job) {
                    home.yield_to.remove(&liar);
                    home.spec.heirs.retain(|p| p.id != liar);
                }
            }
            // Partials that cannot be fetched now may be later: the home
            // asks again.
            Err(_) => {}
        }
    }

    /// An appointed heir confirmed the result of this home (not the
    /// creator): the job is done. Returns false if the confirmation is not
    /// good: not signed by an heir the creator appointed (other than this
    /// node), or not for this home's result.
    pub fn on_confirmed(&mut self, ctx: &mut Ctx<'_>, job: &str, hash: &str, digest: &str, c: Confirmation) -> bool {
        let Some(h) = self.homes.get_mut(job) else { return true };
        if h.state.is_final() {
            return true;
        }
        let ours = h.result.as_ref().is_some_and(|r| r.hash == hash && r.digest == digest);
        let appointed = h.appointment.as_ref().is_some_and(|a| a.names(c.by));
        if !ours || !appointed || c.by == ctx.me || c.verify(ctx.cluster, job, hash, digest).is_err() {
            return false;
        }
        if !h.confirmations.iter().any(|x| x.by == c.by) && h.confirmations.len() < crate::attest::MAX_CONFIRMATIONS {
            h.confirmations.push(c);
        }
        h.state = JobState::Done;
        h.confirm_asked = None;
        h.stats.elapsed_ms = Some(ctx.now.since(h.spec.created_at).as_millis() as u64);
        h.summary_dirty = true;
        let id = job.to_string();
        self.finalize_local(ctx, &id);
        self.publish(ctx, &id);
        true
    }
}

/// Whether the creator appointed `node` an heir of this job, as far as
/// this heir knows: an appointee may speak for the job (pass on records,
/// decisions and claims) as the home does, and whatever it says that the
/// creator did not is checked (certificates, the heir's own merge).
pub(super) fn appointed(h: &HeirJob, node: NodeId) -> bool {
    h.appointment.as_ref().is_some_and(|a| a.names(node))
}

pub(super) fn home_of(h: &HeirJob) -> Option<NodeId> {
    h.page0.as_ref().map(|p| p.home)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    /// A creator (node 1) with a job over `n` units, and one of its heirs
    /// holding the record. Returns (creator, heir, heir's number, job, units).
    fn with_heir(n: u32) -> (Bench, Bench, u64, String, Vec<UnitRef>) {
        let mut c = Bench::new(1, &[2, 3, 4]);
        let us = units(n);
        let id = c.submit(us.clone(), 1);
        let records = c.sent("job_record");
        let first = records[0].0.id;
        let hn = (2..=4).find(|&k| key(k).id() == first).expect("an heir among the neighbours");
        let mut h = Bench::new(hn, &[1, 2, 3, 4]);
        for (to, m) in records {
            if let (true, Message::JobRecord { record }) = (to.id == first, m) {
                let creator = c.id();
                assert!(h.call(|e, x| e.on_record(x, creator, *record, &[creator])));
            }
        }
        (c, h, hn, id, us)
    }

    /// Another heir the creator appointed than `hn`.
    fn other_heir(c: &Bench, id: &str, hn: u64) -> u64 {
        let a = c.engine.homes[id].appointment.clone().expect("appointment");
        (2..=4).find(|&k| k != hn && a.names(key(k).id())).expect("a second heir")
    }

    fn decision(id: &str, unit: u32, chunk: &str, digest: &str, voters: &[u64]) -> Decision {
        let token = token_digest(id, unit, chunk, "word-count", &serde_json::json!({}));
        let votes = voters
            .iter()
            .map(|&w| crate::attest::Vote {
                worker: key(w).id(),
                proof: crate::attest::vote_proof(&key(w), CLUSTER, 1, id, unit, &token, digest),
            })
            .collect();
        Decision { unit, digest: digest.into(), holders: vec![addr(7)], votes }
    }

    #[test]
    fn records_and_decisions_from_a_node_neither_home_nor_appointed_are_refused() {
        let (c, mut h, _, id, us) = with_heir(2);
        let stranger = key(9).id();
        let mut page = c.sent("job_record").into_iter().find_map(|(_, m)| match m {
            Message::JobRecord { record } => Some(*record),
            _ => None,
        });
        let p = page.take().expect("page");
        assert!(!h.call(|e, x| e.on_record(x, stranger, JobRecordPage { home: stranger, ..p }, &[])));
        let d = decision(&id, 0, &us[0].hash, &name("p"), &[5]);
        assert!(!h.call(|e, x| e.on_decided(x, stranger, &id, vec![d])));
    }

    #[test]
    fn decisions_from_a_home_other_than_the_creator_need_a_quorum_of_votes() {
        let (c, mut h, hn, id, us) = with_heir(2);
        let other = key(other_heir(&c, &id, hn)).id();
        let d = name("p");
        // Appointed, but not the creator: its decisions must be certified.
        let bare = Decision { votes: Vec::new(), ..decision(&id, 0, &us[0].hash, &d, &[5]) };
        assert!(h.call(|e, x| e.on_decided(x, other, &id, vec![bare])));
        assert_eq!(h.refused("bad_certificate"), 1);
        let wrong_chunk = decision(&id, 0, &name("other bytes"), &d, &[5]);
        assert!(h.call(|e, x| e.on_decided(x, other, &id, vec![wrong_chunk])));
        assert_eq!(h.refused("bad_certificate"), 2, "votes for another token");
        assert!(h.engine.heirs[id.as_str()].decisions.is_empty());
        let good = decision(&id, 0, &us[0].hash, &d, &[5]);
        assert!(h.call(|e, x| e.on_decided(x, other, &id, vec![good])));
        assert_eq!(h.engine.heirs[id.as_str()].decisions.len(), 1);
        // From the creator, a decision is its word.
        let creator = c.id();
        let plain = Decision { votes: Vec::new(), ..decision(&id, 1, &us[1].hash, &d, &[]) };
        assert!(h.call(|e, x| e.on_decided(x, creator, &id, vec![plain])));
        assert_eq!(h.engine.heirs[id.as_str()].decisions.len(), 2);
    }

    #[test]
    fn an_heir_confirms_only_a_claim_its_own_merge_gives() {
        let (c, mut h, hn, id, us) = with_heir(2);
        let claimant = other_heir(&c, &id, hn);
        let ds: Vec<Decision> = (0..2).map(|u| decision(&id, u, &us[u as usize].hash, &name("p"), &[5])).collect();
        assert!(h.call(|e, x| e.on_decided(x, key(claimant).id(), &id, ds)));
        let r = name("result");
        assert!(h.call(|e, x| e.on_finished(x, peer(claimant), &id, &r, &r)));
        assert!(matches!(h.outputs.last(), Some(JobOutput::Merge { partials, .. }) if partials.len() == 2));
        // Its own merge gives the claimed result: it confirms, signed.
        h.call(|e, x| e.merge_done(x, &id, Ok(MergedResult::named_by_digest(&r, 10))));
        let sent = h.sent("job_confirmed");
        let (to, Message::JobConfirmed { confirmation, .. }) = sent.last().expect("confirmed") else { unreachable!() };
        assert_eq!(to.id, key(claimant).id());
        assert_eq!(confirmation.by, h.id());
        assert!(confirmation.verify(CLUSTER, &id, &r, &r).is_ok());
        assert!(!h.engine.is_home(&id));
    }

    #[test]
    fn an_heir_that_merges_another_result_refuses_and_takes_over() {
        let (c, mut h, hn, id, us) = with_heir(2);
        let claimant = other_heir(&c, &id, hn);
        let ds: Vec<Decision> = (0..2).map(|u| decision(&id, u, &us[u as usize].hash, &name("p"), &[5])).collect();
        assert!(h.call(|e, x| e.on_decided(x, key(claimant).id(), &id, ds)));
        let lie = name("lie");
        assert!(h.call(|e, x| e.on_finished(x, peer(claimant), &id, &lie, &lie)));
        let truth = name("truth");
        h.call(|e, x| e.merge_done(x, &id, Ok(MergedResult::named_by_digest(&truth, 10))));
        assert!(h.sent("job_confirmed").is_empty());
        assert_eq!(h.refused("wrong_result"), 1);
        assert!(h.penalties.contains(&key(claimant).id()));
        assert!(h.engine.is_home(&id), "it finishes the job itself");
        assert!(!h.engine.homes[id.as_str()].yield_to.contains(&key(claimant).id()), "and never yields to the liar");
    }

    #[test]
    fn a_home_that_took_over_is_done_only_when_an_appointed_heir_confirms() {
        let (c, mut h, hn, id, us) = with_heir(1);
        let creator = c.id();
        let d = decision(&id, 0, &us[0].hash, &name("p"), &[5]);
        assert!(h.call(|e, x| e.on_decided(x, creator, &id, vec![d])));
        h.call(|e, x| e.home_lost(x, creator));
        h.advance(3_000);
        assert!(h.engine.is_home(&id), "took over");
        let r = name("result");
        h.call(|e, x| e.merge_done(x, &id, Ok(MergedResult::named_by_digest(&r, 10))));
        let s = h.summaries.last().expect("summary");
        assert_eq!(s.state, JobState::Running, "unconfirmed");
        assert!(s.result_digest.is_none(), "an unconfirmed result is not shown");
        let other = other_heir(&c, &id, hn);
        assert!(
            h.sent("job_finished").iter().any(|(to, _)| to.id == key(other).id()),
            "the claim reaches every appointee"
        );
        // A confirmation by an outsider, or by itself, is refused.
        let outsider = crate::attest::Confirmation::new(&key(9), CLUSTER, 1, &id, &r, &r);
        assert!(!h.call(|e, x| e.on_confirmed(x, &id, &r, &r, outsider)));
        let own = crate::attest::Confirmation::new(&key(hn), CLUSTER, 1, &id, &r, &r);
        assert!(!h.call(|e, x| e.on_confirmed(x, &id, &r, &r, own)));
        let good = crate::attest::Confirmation::new(&key(other), CLUSTER, 1, &id, &r, &r);
        assert!(h.call(|e, x| e.on_confirmed(x, &id, &r, &r, good)));
        let s = h.summaries.last().expect("summary");
        assert_eq!(s.state, JobState::Done);
        let a = s.appointment.as_ref().expect("carries the appointment");
        assert!(crate::attest::check_result(CLUSTER, &id, h.id(), &r, &r, Some(a), &s.confirmations).is_ok());
    }
}
