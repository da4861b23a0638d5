//! The home of a job: submission, tokens issued and re-issued, votes,
//! the merge, heirs appointed and kept, and, for a home that took over,
//! the confirmation of its result by an appointed heir.

use super::tree::{combine_inputs, unit_chunk};
use super::*;

impl JobEngine {
    /// Creates a job homed here; returns its id. Its heirs are neighbours
    /// and, up to `far_heirs`, peers of `far` (known, not neighbours).
    /// `place.owners`, where given, names the node that holds each unit's
    /// chunk in its own files: its first replica's token goes straight
    /// there, so that data is computed where it lies.
    #[allow(clippy::too_many_arguments)]
    pub fn submit(
        &mut self,
        ctx: &mut Ctx<'_>,
        kind: String,
        params: serde_json::Value,
        units: Vec<UnitRef>,
        redundancy: u8,
        energy: Option<f64>,
        far: Vec<PeerInfo>,
        place: Placement,
    ) -> Result<String, SubmitError> {
        if units.is_empty() {
            return Err(SubmitError::NoInputs);
        }
        if units.len() > self.cfg.max_units {
            return Err(SubmitError::TooManyUnits(self.cfg.max_units));
        }
        if !(1..=7).contains(&redundancy) {
            return Err(SubmitError::BadRedundancy);
        }
        let energy = energy.unwrap_or(self.cfg.default_energy);
        if !(energy.is_finite() && energy > 0.0 && energy <= 1000.0) {
            return Err(SubmitError::BadEnergy);
        }
        if crate::wire::value_len(&params) > crate::wire::MAX_PARAMS_LEN {
            return Err(SubmitError::ParamsTooLarge);
        }
        let running = self.homes.values().filter(|h| !h.state.is_final()).count();
        if running >= self.cfg.max_jobs {
            return Err(SubmitError::Busy(running));
        }
        // The creator's id leads the job id, so that every node knows who
        // may write the job's first summaries.
        let id = format!("{}{:016x}", ctx.me, ctx.rng.next_u64());
        let mut nb: Vec<PeerInfo> = ctx.neighbors.iter().map(|(id, addr)| PeerInfo { id: *id, addr: *addr }).collect();
        nb.sort();
        ctx.rng.shuffle(&mut nb);
        nb.truncate(self.cfg.heirs.min(MAX_HEIRS));
        let room = MAX_HEIRS.saturating_sub(nb.len()).min(self.cfg.far_heirs);
        let far: Vec<PeerInfo> =
            far.into_iter().filter(|p| p.id != ctx.me && !nb.iter().any(|q| q.id == p.id)).take(room).collect();
        nb.extend(far);
        for u in &units {
            ctx.blobs.pin(&u.hash, &id);
        }
        let start = HomeStart {
            kind,
            params,
            units,
            redundancy,
            energy,
            heirs: nb,
            created: ctx.now.as_micros(),
            created_at: ctx.now,
            dataset: place.dataset,
            fan_in: self.cfg.merge_fan_in.min(MAX_MERGE_FAN_IN as u16),
        };
        let mut job = HomeJob::start(start, ctx.now);
        job.yield_to = job.spec.heirs.iter().map(|p| p.id).collect();
        job.appointment = Some(appoint(ctx, &id, &job.spec.heirs, None));
        // The record goes out now and once more half a second later (the
        // next tick after that sends it again): now it leaves in a burst
        // with every unit's token, and an heir that lost one of its pages
        // could never take over (it needs them all).
        job.record_dirty = true;
        self.homes.insert(JobId::from(id.clone()), job);
        self.send_record(ctx, &id);
        // Issue every replica of every unit into our own queue: from here
        // the tokens flow to wherever there is room. A unit whose chunk
        // lies in a node's own files sends its first replica there.
        let n = self.homes.get(id.as_str()).map_or(0, |h| h.spec.units.len());
        for u in 0..n {
            for r in 0..redundancy {
                // Every replica goes to the owner: it runs the first and
                // hands the others to nodes keeping copies (see `schedule`).
                let owner = place.owners.get(u).copied().flatten().filter(|o| o.id != ctx.me);
                self.issue_to(ctx, &id, u as u32, r, owner);
            }
        }
        self.publish(ctx, &id);
        self.schedule(ctx);
        Ok(id)
    }

    /// Issues again a replica whose lease lapsed. The first time: straight
    /// to a live node that holds its chunk, if this node knows one, holds
    /// no copy itself, and that node has not run the unit already (it runs
    /// there with no transfer). After a mass failure the dead owners' units
    /// are otherwise passed from the home's neighbourhood to nodes that
    /// must each fetch the chunk, over links busy restoring copies. Every
    /// other time, and when no such holder is known, into this node's queue
    /// as at first: a holder that died unseen, or one whose address this
    /// node cannot map (the live holders a search found may not be in its
    /// neighbour lists yet), must not be the only way a unit can run.
    pub(super) fn reissue(&mut self, ctx: &mut Ctx<'_>, id: &str, unit: u32, replica: u8) {
        let target = self.homes.get(id).and_then(|h| {
            // (A combine step has no chunk: `spec.units` lists leaves.)
            let u = h.spec.units.get(unit as usize)?;
            let us = h.unit_state.get(unit as usize)?;
            if us.reissues != 1 || ctx.blobs.holds(&u.hash) {
                return None;
            }
            let live: Vec<PeerInfo> = u
                .holders
                .iter()
                .filter(|a| **a != ctx.http)
                .filter_map(|a| (ctx.peer_at)(*a))
                .filter(|p| p.id != ctx.me && !us.results.contains_key(&p.id))
                .collect();
            // A holder at random: the dead owners' units spread over every
            // live copy instead of piling up on one, and one that died
            // unseen is not tried every time.
            ctx.rng.pick(&live).copied()
        });
        self.issue_to(ctx, id, unit, replica, target);
    }

    /// Near a job's end, one more replica for each unit held up by a
    /// straggler (see [`SPECULATE_AFTER_PERMILLE`]); counted as an extra
    /// replica. The unit is decided by the first quorum of agreeing
    /// results, the straggler's included if it comes first.
    pub(super) fn speculate(&mut self, ctx: &mut Ctx<'_>, id: &str) {
        let now = ctx.now;
        let Some(h) = self.homes.get(id) else { return };
        let leaves = h.spec.units.len();
        if h.state.is_final() || h.took.len() < 8 || (h.decided as usize) * 1000 < leaves * SPECULATE_AFTER_PERMILLE {
            return;
        }
        let mut took: Vec<u64> = h.took.iter().copied().collect();
        took.sort_unstable();
        let median = Duration::from_millis(took[took.len() / 2]);
        let slow = median.saturating_mul(STRAGGLER_FACTOR).max(STRAGGLER_FLOOR);
        let max_reps = 2 * h.spec.redundancy as usize + 1;
        let stragglers: Vec<(u32, u8)> = h
            .unit_state
            .iter()
            .enumerate()
            .take(leaves)
            .filter(|(_, us)| us.decided.is_none() && !us.speculated && us.reps.len() < max_reps + 1)
            .filter(|(_, us)| us.reps.iter().any(|r| !r.done && now.since(r.issued) >= slow))
            .map(|(u, us)| (u as u32, us.reps.len() as u8))
            .collect();
        for (u, r) in stragglers {
            if let Some(h) = self.homes.get_mut(id) {
                h.stats.extra_replicas += 1;
                if let Some(us) = h.unit_state.get_mut(u as usize) {
                    us.speculated = true;
                }
            }
            self.issue(ctx, id, u, r);
        }
    }

    /// Issues a replica's token straight to `to`, or into this node's
    /// queue.
    pub(super) fn issue_to(&mut self, ctx: &mut Ctx<'_>, id: &str, unit: u32, replica: u8, to: Option<PeerInfo>) {
        match to {
            Some(p) => {
                if let Some(t) = self.issue_token(ctx, id, unit, replica) {
                    ctx.sends.push((p, Message::Work { token: Box::new(t) }));
                }
            }
            None => self.issue(ctx, id, unit, replica),
        }
    }

    /// Issues a replica's token into this node's queue.
    pub(super) fn issue(&mut self, ctx: &mut Ctx<'_>, id: &str, unit: u32, replica: u8) {
        if let Some(t) = self.issue_token(ctx, id, unit, replica) {
            self.queue.push_back(t);
        }
    }

    /// Starts a replica's lease and makes its token.
    fn issue_token(&mut self, ctx: &mut Ctx<'_>, id: &str, unit: u32, replica: u8) -> Option<WorkToken> {
        let h = self.homes.get_mut(id)?;
        if h.tree.is_combine(unit) {
            let inputs = combine_inputs(h, unit)?;
            let us = h.unit_state.get_mut(unit as usize)?;
            let rep = Rep { done: false, last_seen: ctx.now, issued: ctx.now };
            match us.reps.get_mut(replica as usize) {
                Some(r) => *r = rep,
                None => us.reps.push(rep),
            }
            return Some(WorkToken {
                job: JobId::from(id),
                unit,
                replica,
                chunk: combine_name(inputs.iter().map(|i| i.digest.as_str())),
                size: 0,
                holders: Vec::new(),
                kind: h.spec.kind.clone(),
                params: h.spec.params.clone(),
                energy: h.spec.energy,
                inputs,
            });
        }
        let u = h.spec.units.get(unit as usize)?;
        let us = h.unit_state.get_mut(unit as usize)?;
        let rep = Rep { done: false, last_seen: ctx.now, issued: ctx.now };
        match us.reps.get_mut(replica as usize) {
            Some(r) => *r = rep,
            None => us.reps.push(rep),
        }
        // Holders learned since the job started (replicas) help too; the
        // home's own copy goes last (see `WorkToken::holders`).
        let mut holders: Vec<SocketAddr> = u.holders.iter().filter(|a| **a != ctx.http).copied().collect();
        let here = ctx.blobs.get(&u.hash);
        if let Some(m) = here {
            for a in m.holder_addrs() {
                if !holders.contains(&a) && a != ctx.http {
                    holders.push(a);
                }
            }
        }
        // Room for the home's own copy, last.
        holders.truncate(crate::wire::MAX_HOLDER_ADDRS - 1);
        if here.is_some() || u.holders.contains(&ctx.http) {
            holders.push(ctx.http);
        }
        Some(WorkToken {
            job: JobId::from(id),
            unit,
            replica,
            chunk: u.hash.clone(),
            size: u.size,
            holders,
            kind: h.spec.kind.clone(),
            params: h.spec.params.clone(),
            energy: h.spec.energy,
            inputs: Vec::new(),
        })
    }

    pub(super) fn send_record(&self, ctx: &mut Ctx<'_>, id: &str) {
        let Some(h) = self.homes.get(id) else { return };
        for (i, page) in h.spec.units.chunks(UNITS_PER_PAGE).enumerate() {
            let rec = JobRecordPage {
                job: JobId::from(id),
                kind: h.spec.kind.clone(),
                params: h.spec.params.clone(),
                redundancy: h.spec.redundancy,
                energy: h.spec.energy,
                home: ctx.me,
                heirs: h.spec.heirs.clone(),
                total_units: h.spec.units.len() as u32,
                offset: (i * UNITS_PER_PAGE) as u32,
                units: page
                    .iter()
                    .map(|u| UnitRef {
                        holders: u.holders.iter().take(crate::wire::PAGE_HOLDER_ADDRS).copied().collect(),
                        ..u.clone()
                    })
                    .collect(),
                created: h.spec.created,
                appointment: h.appointment.clone(),
                // Once, on the first page (what heirs take over from).
                dataset: h.spec.dataset.clone().filter(|_| i == 0),
                fan_in: h.tree.fan_in(),
            };
            for heir in &h.spec.heirs {
                ctx.sends.push((*heir, Message::JobRecord { record: Box::new(rec.clone()) }));
            }
        }
    }

    /// Cancels a job homed here. Returns false if it is not homed here.
    pub fn cancel(&mut self, ctx: &mut Ctx<'_>, id: &str) -> bool {
        let Some(h) = self.homes.get_mut(id) else {
            return false;
        };
        if !h.state.is_final() {
            h.state = JobState::Cancelled;
            h.stats.elapsed_ms = Some(ctx.now.since(h.spec.created_at).as_millis() as u64);
            h.summary_dirty = true;
        }
        self.finalize_local(ctx, id);
        self.publish(ctx, id);
        true
    }

    /// A report reached the job's home.
    pub fn on_report(&mut self, ctx: &mut Ctx<'_>, report: JobReport) {
        let worker_strikes = self.strikes(report.worker);
        let Some(h) = self.homes.get_mut(&report.job) else {
            return;
        };
        if h.state.is_final() {
            return;
        }
        for (u, r) in &report.holding {
            if let Some(rep) = h.unit_state.get_mut(*u as usize).and_then(|us| us.reps.get_mut(*r as usize)) {
                rep.last_seen = ctx.now;
            }
        }
        let mut touched = BTreeSet::new();
        for res in &report.results {
            // A result counts only for the token the home issued: the
            // unit's own chunk, kind and parameters.
            // (For a combine step, the chunk names the inputs decided now:
            // a result over inputs decided before a redo no longer counts.)
            let Some(chunk) = unit_chunk(h, res.unit) else {
                continue;
            };
            if res.token != token_digest(&report.job, res.unit, &chunk, &h.spec.kind, &h.spec.params) {
                ctx.rejected.push("wrong_token");
                continue;
            }
            // The vote must be the worker's own: heirs check it again
            // when a decision comes from another home than the creator.
            let vote_ok = res.proof.as_ref().is_some_and(|p| {
                report.worker == ctx.me
                    || crate::attest::check_vote(
                        p,
                        report.worker,
                        ctx.cluster,
                        &report.job,
                        res.unit,
                        &res.token,
                        &res.digest,
                    )
                    .is_ok()
            });
            if !vote_ok {
                ctx.rejected.push("bad_vote");
                continue;
            }
            let Some(us) = h.unit_state.get_mut(res.unit as usize) else {
                continue;
            };
            // A node that kept disagreeing with majorities is not counted
            // any more, and a node counts once per unit (it ran a second
            // replica that reached it): either way the replica must run
            // elsewhere. Marked done without a vote, such a unit would stay
            // undecided for good, its job running forever.
            let counted = !us.results.contains_key(&report.worker)
                && us.results.len() < MAX_UNIT_RESULTS
                && worker_strikes < IGNORE_AFTER_STRIKES;
            if let Some(rep) = us.reps.get_mut(res.replica as usize) {
                if counted {
                    if !rep.done {
                        if h.took.len() >= TOOK_KEPT {
                            h.took.pop_front();
                        }
                        h.took.push_back(ctx.now.since(rep.issued).as_millis().min(u128::from(u64::MAX)) as u64);
                    }
                    rep.done = true;
                    rep.last_seen = ctx.now;
                } else if !rep.done {
                    // Lapse at the next tick: issued again.
                    rep.last_seen = Time::ZERO;
                }
            }
            if !counted {
                continue;
            }
            if let Some((d, ..)) = &us.decided {
                // Late replicas are compared too: a late liar still loses.
                if *d != res.digest {
                    h.stats.disagreements += 1;
                    ctx.penalties.push(report.worker);
                }
            }
            us.results.insert(report.worker, (res.digest.clone(), report.http, res.proof));
            self.max_unit_results = self.max_unit_results.max(us.results.len());
            h.stats.results += 1;
            h.workers.insert(report.worker);
            touched.insert(res.unit);
        }
        for u in touched {
            self.vote(ctx, &report.job, u);
        }
        self.maybe_merge(ctx, &report.job);
    }

    pub(super) fn vote(&mut self, ctx: &mut Ctx<'_>, id: &str, unit: u32) {
        let Some(h) = self.homes.get_mut(id) else {
            return;
        };
        let quorum = h.spec.redundancy as usize / 2 + 1;
        let max_reps = 2 * h.spec.redundancy as usize + 1;
        let Some(us) = h.unit_state.get_mut(unit as usize) else {
            return;
        };
        if us.decided.is_some() {
            return;
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (d, ..) in us.results.values() {
            *counts.entry(d.as_str()).or_default() += 1;
        }
        let winner = counts.iter().find(|(_, c)| **c >= quorum).map(|(d, _)| d.to_string());
        if let Some(w) = winner {
            let holders: Vec<SocketAddr> = us.results.values().filter(|(d, ..)| *d == w).map(|(_, a, _)| *a).collect();
            let votes: Vec<Vote> = us
                .results
                .iter()
                .filter(|(_, (d, ..))| *d == w)
                .filter_map(|(node, (.., p))| p.map(|proof| Vote { worker: *node, proof }))
                .take(quorum)
                .collect();
            for (node, (d, ..)) in us.results.iter() {
                if *d != w {
                    h.stats.disagreements += 1;
                    ctx.penalties.push(*node);
                }
            }
            us.decided = Some((w.clone(), holders.clone(), votes));
            // The home folds the top of the tree ahead of its merge.
            let top = h.tree.top();
            if top.contains(&unit) {
                ctx.outputs.push(JobOutput::Decided {
                    job: JobId::from(id),
                    kind: h.spec.kind.clone(),
                    params: h.spec.params.clone(),
                    units: top.len() as u32,
                    unit: unit - top.start,
                    digest: w.clone(),
                    holders,
                });
            }
            if h.tree.is_combine(unit) {
                h.stats.combines += 1;
            } else {
                h.decided += 1;
            }
            h.undelivered.push(unit);
            h.summary_dirty = true;
            if let Some(p) = h.tree.parent(unit) {
                self.issue_combine(ctx, id, p);
            }
            return;
        }
        let outstanding = us.reps.iter().filter(|r| !r.done).count();
        let best = counts.values().copied().max().unwrap_or(0);
        if best + outstanding < quorum {
            // The replicas disagree and the outstanding ones cannot settle
            // it: run one more.
            // A speculative replica (`speculate`) does not use up a slot:
            // a straggler must not bring a job with liars to failure sooner.
            if us.reps.len() >= max_reps + usize::from(us.speculated) {
                h.state = JobState::Failed;
                h.error = Some(format!("unit {unit}: no {quorum} of {} replicas agree", us.reps.len()));
                h.stats.elapsed_ms = Some(ctx.now.since(h.spec.created_at).as_millis() as u64);
                h.summary_dirty = true;
                let id = id.to_string();
                self.finalize_local(ctx, &id);
                self.publish(ctx, &id);
                return;
            }
            let r = us.reps.len() as u8;
            h.stats.extra_replicas += 1;
            self.issue(ctx, id, unit, r);
        }
    }

    pub(super) fn maybe_merge(&mut self, ctx: &mut Ctx<'_>, id: &str) {
        let Some(h) = self.homes.get_mut(id) else {
            return;
        };
        let top = h.tree.top();
        let all = top.clone().all(|u| h.unit_state.get(u as usize).is_some_and(|us| us.decided.is_some()));
        if h.state.is_final() || h.merging || h.result.is_some() || !all {
            return;
        }
        h.merging = true;
        let partials = h.unit_state[top.start as usize..top.end as usize]
            .iter()
            .map(|us| us.decided.as_ref().map(|(d, hs, _)| (d.clone(), hs.clone())).unwrap_or_default())
            .collect();
        ctx.outputs.push(JobOutput::Merge {
            job: JobId::from(id),
            kind: h.spec.kind.clone(),
            params: h.spec.params.clone(),
            partials,
        });
    }

    /// The driver merged a job: the result, or the units whose partials
    /// could not be fetched.
    pub fn merge_done(&mut self, ctx: &mut Ctx<'_>, id: &str, outcome: Result<MergedResult, Vec<u32>>) {
        let Some(h) = self.homes.get_mut(id) else {
            self.claim_merged(ctx, id, outcome);
            return;
        };
        h.merging = false;
        if h.state.is_final() {
            return;
        }
        match outcome {
            Ok(merged) => {
                let MergedResult { hash, digest, size } = merged.clone();
                ctx.blobs.pin(&hash, "results");
                h.result = Some(merged);
                h.result_holders = vec![ctx.http];
                let sole_heir = h.appointment.as_ref().is_some_and(|a| a.heirs.len() == 1 && a.names(ctx.me));
                if job_creator(id) != Some(ctx.me) && !sole_heir {
                    // A home that took over: its result stands only once
                    // an appointed heir has merged the same decisions and
                    // confirmed it. Heirs get every decision (with its
                    // votes) and the claim; the tick asks again.
                    h.confirm_asked = Some((ctx.now, 1));
                    h.undelivered = (0..h.tree.total()).collect();
                    h.summary_dirty = true;
                    self.ask_confirmation(ctx, id);
                    return;
                }
                h.state = JobState::Done;
                h.stats.elapsed_ms = Some(ctx.now.since(h.spec.created_at).as_millis() as u64);
                let heirs: Vec<PeerInfo> = h.spec.heirs.clone();
                for a in heirs {
                    ctx.sends.push((
                        a,
                        Message::JobFinished {
                            job: JobId::from(id),
                            result: hash.clone(),
                            digest: digest.clone(),
                            size,
                            http: ctx.http,
                        },
                    ));
                }
                let id = id.to_string();
                self.finalize_local(ctx, &id);
                self.publish(ctx, &id);
            }
            Err(missing) if missing.is_empty() => {
                // The decided partials could not be merged: the majority
                // itself produced garbage. Nothing more can be done.
                h.state = JobState::Failed;
                h.error = Some("merging the decided partial results failed".into());
                h.stats.elapsed_ms = Some(ctx.now.since(h.spec.created_at).as_millis() as u64);
                h.summary_dirty = true;
                let id = id.to_string();
                self.finalize_local(ctx, &id);
                self.publish(ctx, &id);
            }
            Err(missing) => {
                // The merge lists the top of the tree.
                let start = h.tree.top().start;
                let missing: Vec<u32> = missing.into_iter().map(|i| start + i).collect();
                self.redo(ctx, id, &missing);
                self.schedule(ctx);
            }
        }
    }

    /// Whether a home that took over and merged should ask its heirs to
    /// confirm again (decisions are sent again at exponentially spaced
    /// rounds: an heir may have missed some). After `MAX_CONFIRM_ASKS`
    /// unanswered rounds no appointed heir is left that could confirm, and
    /// the job fails: an unconfirmed result is not one anyone believes.
    pub(super) fn confirm_due(&mut self, ctx: &mut Ctx<'_>, id: &str) -> bool {
        let Some(h) = self.homes.get_mut(id) else { return false };
        let Some((t, n)) = h.confirm_asked else { return false };
        if h.state.is_final() || ctx.now.since(t) < CONFIRM_EVERY {
            return false;
        }
        if n >= MAX_CONFIRM_ASKS {
            h.state = JobState::Failed;
            h.error =
                Some("no heir the creator appointed confirmed the result (the creator died, and so did they)".into());
            h.stats.elapsed_ms = Some(ctx.now.since(h.spec.created_at).as_millis() as u64);
            h.summary_dirty = true;
            h.confirm_asked = None;
            let id = id.to_string();
            self.finalize_local(ctx, &id);
            self.publish(ctx, &id);
            return false;
        }
        h.confirm_asked = Some((ctx.now, n + 1));
        if (n + 1).is_power_of_two() {
            h.undelivered = (0..h.tree.total()).collect();
        }
        true
    }

    /// Sends the claim of this home's result to its heirs.
    pub(super) fn ask_confirmation(&mut self, ctx: &mut Ctx<'_>, id: &str) {
        let Some(h) = self.homes.get(id) else { return };
        let Some(MergedResult { hash, digest, size }) = h.result.clone() else { return };
        for a in heir_targets(h, ctx.me) {
            let msg = Message::JobFinished {
                job: JobId::from(id),
                result: hash.clone(),
                digest: digest.clone(),
                size,
                http: ctx.http,
            };
            ctx.sends.push((a, msg));
        }
    }

    /// Another node holds a verified copy of `hash`: units of running jobs
    /// homed here that read it learn the holder, and heirs hear of it, so a
    /// new home can still find the chunk if this one dies.
    pub fn holder_added(&mut self, hash: &str, holder: SocketAddr) {
        for h in self.homes.values_mut().filter(|h| !h.state.is_final()) {
            for u in h.spec.units.iter_mut().filter(|u| u.hash == hash) {
                // Newest first: holders heard of long ago are likelier to
                // have died (a search after a mass failure finds live ones).
                if !u.holders.contains(&holder) {
                    u.holders.insert(0, holder);
                    u.holders.truncate(crate::wire::MAX_HOLDER_ADDRS);
                    h.record_dirty = true;
                }
            }
        }
    }

    /// Another node stored a copy of a blob: if it is a job result homed
    /// here, list it as a holder.
    pub fn result_replicated_by_hash(&mut self, hash: &str, holder: SocketAddr) {
        for h in self.homes.values_mut() {
            if h.result.as_ref().is_some_and(|r| r.hash == hash) && !h.result_holders.contains(&holder) {
                h.result_holders.push(holder);
                if h.result_holders.len() > 4 * MAX_SUMMARY_HOLDERS {
                    h.result_holders.remove(1);
                }
                h.summary_dirty = true;
                h.last_summary = Time::ZERO;
            }
        }
    }

    /// A neighbour went away.
    pub fn neighbor_down(&mut self, ctx: &mut Ctx<'_>, node: NodeId) {
        self.loads.remove(&node);
        // Told again when the link comes back.
        self.load_told.remove(&node);
        // An heir that is no longer our neighbour may be dead: appoint a
        // replacement so that every running job keeps its heirs.
        let ids: Vec<JobId> = self
            .homes
            .iter()
            .filter(|(_, h)| !h.state.is_final() && h.spec.heirs.iter().any(|p| p.id == node))
            .map(|(k, _)| k.clone())
            .collect();
        for id in ids {
            let Some(h) = self.homes.get_mut(id.as_str()) else {
                continue;
            };
            h.spec.heirs.retain(|p| p.id != node);
            let mut candidates: Vec<PeerInfo> = ctx
                .neighbors
                .iter()
                .filter(|(n, _)| *n != node && !h.spec.heirs.iter().any(|p| p.id == *n))
                .map(|(n, a)| PeerInfo { id: *n, addr: *a })
                .collect();
            ctx.rng.shuffle(&mut candidates);
            if let Some(c) = candidates.first() {
                h.spec.heirs.push(*c);
                if h.yield_to.len() < MAX_YIELD_TO {
                    h.yield_to.insert(c.id);
                }
            }
            // The creator appoints the newcomer (only it can: an heir it
            // did not appoint cannot confirm another home's result).
            if job_creator(&id) == Some(ctx.me) {
                h.appointment = Some(appoint(ctx, &id, &h.spec.heirs, h.appointment.as_ref()));
            }
            // Everyone gets the new ranking; the newcomer also gets the
            // decisions so far.
            h.undelivered = (0..h.tree.total())
                .filter(|u| h.unit_state.get(*u as usize).is_some_and(|us| us.decided.is_some()))
                .collect();
            self.send_record(ctx, &id);
        }
    }
}

/// The creator's signed appointment of `heirs` for `job`, keeping those it
/// appointed `before` (an heir dropped as unreachable may be alive, and may
/// hold an older record) up to `wire::MAX_APPOINTED`.
pub(super) fn appoint(ctx: &Ctx<'_>, job: &str, heirs: &[PeerInfo], before: Option<&Appointment>) -> Appointment {
    let mut ids: Vec<PeerInfo> = heirs.to_vec();
    for p in before.map(|a| a.heirs.as_slice()).unwrap_or_default() {
        if !ids.iter().any(|q| q.id == p.id) {
            ids.push(*p);
        }
    }
    ids.truncate(crate::wire::MAX_APPOINTED);
    Appointment::new(ctx.identity, ctx.cluster, ctx.wall.as_millis(), job, ids)
}

/// Where a home sends its heirs' messages: its heirs and, once it claims a
/// result it needs confirmed, every heir the creator appointed.
pub(super) fn heir_targets(h: &HomeJob, me: NodeId) -> Vec<PeerInfo> {
    let mut out = h.spec.heirs.clone();
    if h.confirm_asked.is_some() {
        for p in h.appointment.iter().flat_map(|a| a.heirs.iter()) {
            if p.id != me && !out.iter().any(|q| q.id == p.id) {
                out.push(*p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn submit_issues_every_replica_and_appoints_its_heirs() {
        let mut b = Bench::new(1, &[2, 3, 4, 5]);
        let id = b.submit(units(4), 2);
        assert!(id.len() <= crate::wire::MAX_JOB_ID_LEN, "a job id fits the wire");
        let tokens = b.engine.queue.len() + b.engine.running.len() + b.sent("work").len();
        assert_eq!(tokens, 8, "units × redundancy");
        let records = b.sent("job_record");
        assert!(!records.is_empty());
        for (to, m) in records {
            let Message::JobRecord { record } = m else { unreachable!() };
            let a = record.appointment.expect("the creator's appointment");
            assert!(a.verify(CLUSTER, &id).is_ok());
            assert!(a.names(to.id), "a record goes to appointed heirs");
        }
    }

    #[test]
    fn a_dataset_job_sends_each_units_replicas_to_its_owner_and_names_its_snapshot() {
        let mut b = Bench::new(1, &[2, 3]);
        let us = units(3);
        // Unit 0 lies on far node 7, unit 1 on this node, unit 2 nowhere known.
        let owners = vec![Some(peer(7)), Some(peer(1)), None];
        let tag = DatasetTag { name: "app".into(), snapshot: name("snap"), nodes: 2, bytes: 300 };
        let place = Placement { dataset: Some(tag.clone()), owners };
        let id = b
            .call(|e, c| e.submit(c, "word-count".into(), serde_json::json!({}), us, 2, None, Vec::new(), place))
            .expect("submit");
        let direct: Vec<(PeerInfo, WorkToken)> = b
            .sent("work")
            .into_iter()
            .filter_map(|(to, m)| match m {
                Message::Work { token } => Some((to, *token)),
                _ => None,
            })
            .collect();
        // Every replica of unit 0 goes to its owner (which hands the second
        // to a node keeping a copy); the others start here.
        let sent: Vec<(PeerInfo, u32, u8)> = direct.iter().map(|(to, t)| (*to, t.unit, t.replica)).collect();
        assert_eq!(sent, vec![(peer(7), 0, 0), (peer(7), 0, 1)], "{direct:?}");
        let queued = b.engine.queue.len() + b.engine.running.len();
        assert_eq!(queued, 4, "the other units' replicas start at the home");
        assert_eq!(b.summaries.last().and_then(|s| s.dataset.clone()), Some(tag.clone()));
        let records = b.sent("job_record");
        let Message::JobRecord { record } = &records[0].1 else { unreachable!() };
        assert_eq!(record.dataset.as_ref(), Some(&tag), "heirs learn the snapshot with the record");
        // The owner's lease runs like any other: silent, the unit comes back here.
        b.advance(JobConfig::default().lease.as_millis() as u64 + 1);
        assert!(b.engine.queue.iter().any(|t| t.job == id && t.unit == 0 && t.replica == 0));
    }

    /// A home that finds itself slow (Lifeguard's local health) waits
    /// longer before it calls a silent lease lapsed.
    #[test]
    fn leases_stretch_with_the_homes_local_health() {
        let mut b = Bench::new(1, &[2, 3]);
        let owners = vec![Some(peer(7))];
        let place = Placement { dataset: None, owners };
        let id = b
            .call(|e, c| e.submit(c, "word-count".into(), serde_json::json!({}), units(1), 1, None, Vec::new(), place))
            .expect("submit");
        let lease = JobConfig::default().lease.as_millis() as u64;
        let back = |b: &Bench| b.engine.homes[id.as_str()].stats.reissued > 0;
        b.local_health = 2;
        b.advance(lease + 1);
        assert!(!back(&b), "a slow home waits (1 + 2) leases");
        b.advance(2 * lease);
        assert!(back(&b), "then the unit is issued again");
    }

    #[test]
    fn a_quorum_of_signed_votes_decides_and_a_vote_without_its_workers_signature_counts_for_nothing() {
        let mut b = Bench::new(1, &[2, 3]);
        let us = units(1);
        let chunk = us[0].hash.clone();
        let id = b.submit(us, 3);
        let d = name("partial");
        let mut unsigned = result(2, &id, 0, 0, &chunk, &d);
        unsigned.proof = None;
        b.call(|e, c| e.on_report(c, report(2, &id, vec![unsigned])));
        // Signed, but by another key than the worker's.
        b.call(|e, c| e.on_report(c, report(3, &id, vec![result(9, &id, 0, 1, &chunk, &d)])));
        assert_eq!(b.refused("bad_vote"), 2);
        assert!(b.engine.homes[id.as_str()].unit_state[0].decided.is_none());
        b.call(|e, c| e.on_report(c, report(2, &id, vec![result(2, &id, 0, 0, &chunk, &d)])));
        b.call(|e, c| e.on_report(c, report(3, &id, vec![result(3, &id, 0, 1, &chunk, &d)])));
        let (digest, _, votes) = b.engine.homes[id.as_str()].unit_state[0].decided.clone().expect("decided");
        assert_eq!(digest, d);
        let token = token_digest(&id, 0, &chunk, "word-count", &serde_json::json!({}));
        assert!(
            crate::attest::check_certificate(&votes, 2, CLUSTER, &id, 0, &token, &d),
            "the decision carries its votes"
        );
        assert!(b.outputs.iter().any(|o| matches!(o, JobOutput::Merge { .. })), "every unit decided: merge");
    }

    /// Near a job's end (90 % of its units decided), a unit whose replica
    /// has run three times the median replica's time (and at least 200 ms)
    /// gets one more replica, once: a slow node must not hold the job's
    /// end. Not before: mid-job, a slow replica only waits for its lease.
    #[test]
    fn stragglers_near_the_end_get_one_speculative_replica() {
        let mut b = Bench::new(1, &[2, 3]);
        let us = units(20);
        let chunks: Vec<_> = us.iter().map(|u| u.hash.clone()).collect();
        let id = b.submit(us, 2);
        let d = name("partial");
        let decide = |b: &mut Bench, u: u32| {
            for (w, r) in [(2, 0), (3, 1)] {
                b.call(|e, c| e.on_report(c, report(w, &id, vec![result(w, &id, u, r, &chunks[u as usize], &d)])));
            }
        };
        b.advance(50);
        for u in 0..10 {
            decide(&mut b, u);
        }
        // Half decided, the rest 300 ms old (six medians): no speculation.
        b.advance(250);
        b.call(|e, c| e.tick(c));
        let h = &b.engine.homes[id.as_str()];
        assert_eq!((h.decided, h.stats.extra_replicas), (10, 0), "not near the end yet");
        for u in 10..18 {
            decide(&mut b, u);
        }
        // Units 18 and 19: one replica in, the other still out.
        for u in 18..20 {
            b.call(|e, c| e.on_report(c, report(2, &id, vec![result(2, &id, u, 0, &chunks[u as usize], &d)])));
        }
        b.advance(10);
        b.call(|e, c| e.tick(c));
        let h = &b.engine.homes[id.as_str()];
        assert_eq!(h.stats.extra_replicas, 2, "both stragglers overtaken");
        assert_eq!(h.unit_state[19].reps.len(), 3);
        b.advance(300);
        b.call(|e, c| e.tick(c));
        assert_eq!(b.engine.homes[id.as_str()].stats.extra_replicas, 2, "once per unit");
        // The speculative replica's result decides the unit with the first.
        b.call(|e, c| e.on_report(c, report(3, &id, vec![result(3, &id, 19, 2, &chunks[19], &d)])));
        assert!(b.engine.homes[id.as_str()].unit_state[19].decided.is_some());
    }

    #[test]
    fn the_creator_is_done_at_its_merge_and_tells_its_heirs() {
        let mut b = Bench::new(1, &[2, 3]);
        let us = units(1);
        let chunk = us[0].hash.clone();
        let id = b.submit(us, 1);
        let d = name("partial");
        b.call(|e, c| e.on_report(c, report(2, &id, vec![result(2, &id, 0, 0, &chunk, &d)])));
        let r = name("result");
        b.call(|e, c| e.merge_done(c, &id, Ok(MergedResult::named_by_digest(&r, 10))));
        let s = b.summaries.last().expect("published");
        assert_eq!(s.state, JobState::Done);
        assert_eq!(s.result_digest.as_deref(), Some(r.as_str()));
        assert!(s.confirmations.is_empty() && s.appointment.is_none(), "the creator's word needs no one");
        assert!(!b.sent("job_finished").is_empty());
    }

    #[test]
    fn a_lapsed_unit_goes_straight_to_a_live_holder_of_its_chunk() {
        for known in [false, true] {
            let mut b = Bench::new(5, &[2]);
            if known {
                // Node 1 holds the chunk (units() lists its address), and
                // this node knows it.
                b.peers.push((addr(1), peer(1)));
            }
            b.call(|e, c| e.on_load(c, key(2).id(), 2, 4, vec![]));
            // Two units this node fetches and runs itself, two it keeps
            // queued, one it passes to its idle neighbour.
            let id = b.submit(units(5), 1);
            let first = b.sent("work");
            assert_eq!(first.len(), 1, "one token went to the idle neighbour: {first:?}");
            assert_eq!(first[0].0.id, key(2).id());
            let unit_of = |m: &Message| match m {
                Message::Work { token } => token.unit,
                _ => u32::MAX,
            };
            let lapsed = unit_of(&first[0].1);
            // The neighbour dies silently: the lease lapses.
            b.sends.clear();
            b.advance(1_000);
            let again: Vec<NodeId> =
                b.sent("work").iter().filter(|(_, m)| unit_of(m) == lapsed).map(|(to, _)| to.id).collect();
            if known {
                assert_eq!(again, vec![key(1).id()], "straight to the holder");
            } else {
                // Into this node's queue, as at first, and from there to
                // whoever has room.
                let here =
                    b.engine.queue.iter().any(|t| t.unit == lapsed) || b.engine.running.keys().any(|k| k.1 == lapsed);
                assert!(here || again == vec![key(2).id()], "{again:?}");
            }
            assert!(b.call(|e, _| e.homes[id.as_str()].stats.reissued) >= 1);
        }
    }

    #[test]
    fn the_record_goes_to_the_heirs_twice_at_submit_then_only_on_change() {
        let mut b = Bench::new(1, &[2, 3]);
        b.submit(units(30), 1);
        // 30 units: two pages, to each of two heirs.
        let first = b.sent("job_record").len();
        assert_eq!(first, 4);
        b.advance(600);
        assert_eq!(b.sent("job_record").len(), 2 * first, "sent again outside the submit's burst");
        b.advance(1_000);
        b.advance(1_000);
        assert_eq!(b.sent("job_record").len(), 2 * first, "then only when it changes");
    }
}
