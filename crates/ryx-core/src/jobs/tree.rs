//! A job's merge tree: partial results fold along a tree of bounded fan-in
//! instead of all into the home.
//!
//! The job's units are the leaves, numbered `0..n` in input order. Above
//! them, level by level, each *combine step* folds up to F (the fan-in,
//! `JobConfig::merge_fan_in`, at most [`MAX_MERGE_FAN_IN`]) consecutive
//! nodes of the level below, until a level has at most F nodes: the home
//! merges those (and finishes the result). A job of at most F units, or
//! one with fan-in 0 (a flat merge), has no combine step. Combine steps
//! are numbered after the leaves, level by level, so that a step is a unit
//! like any other to the engine: a token issued `redundancy` times (once
//! every input is decided), run by a worker (it fetches the inputs and
//! folds them), reported with a signed vote, decided by a quorum, replicated
//! to heirs. Folding consecutive ranges in order keeps the result exact for
//! every kind whose merge is associative (all of them), commutative or not.
//!
//! The shape depends on `n` and F alone, and the job record carries F, so
//! every heir computes the same tree.

use super::*;
use crate::wire::MAX_MERGE_FAN_IN;
use std::ops::Range;

/// The shape of a job's merge tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeTree {
    /// Each level's first index and node count; level 0 is the leaves.
    levels: Vec<(u32, u32)>,
    /// The fan-in (0: flat).
    fan: u32,
}

impl MergeTree {
    /// The tree over `n` units with fan-in `fan_in` (below 2: flat; above
    /// [`MAX_MERGE_FAN_IN`]: that).
    pub fn new(n: u32, fan_in: u16) -> MergeTree {
        let f = u32::from(fan_in).min(MAX_MERGE_FAN_IN as u32);
        let f = if f < 2 { 0 } else { f };
        let mut levels = vec![(0, n)];
        let (mut start, mut count) = (0u32, n);
        while f >= 2 && count > f {
            start += count;
            count = count.div_ceil(f);
            levels.push((start, count));
        }
        MergeTree { levels, fan: f }
    }

    /// The fan-in (0: flat).
    pub fn fan_in(&self) -> u16 {
        self.fan as u16
    }

    /// Units of input (leaves).
    pub fn leaves(&self) -> u32 {
        self.levels[0].1
    }

    /// Leaves and combine steps.
    pub fn total(&self) -> u32 {
        self.levels.last().map_or(0, |(s, c)| s + c)
    }

    /// The nodes the home merges: the last level.
    pub fn top(&self) -> Range<u32> {
        let (s, c) = self.levels.last().copied().unwrap_or_default();
        s..s + c
    }

    /// Whether `u` is a combine step.
    pub fn is_combine(&self, u: u32) -> bool {
        u >= self.leaves() && u < self.total()
    }

    fn level_of(&self, u: u32) -> Option<usize> {
        self.levels.iter().position(|(s, c)| u >= *s && u < s + c)
    }

    /// The combine step that folds `u` (None for the top level).
    pub fn parent(&self, u: u32) -> Option<u32> {
        let l = self.level_of(u)?;
        let (s, _) = self.levels[l];
        let (ps, _) = *self.levels.get(l + 1)?;
        Some(ps + (u - s) / self.fan)
    }

    /// What combine step `c` folds, in order (None for a leaf).
    pub fn children(&self, c: u32) -> Option<Range<u32>> {
        let l = self.level_of(c).filter(|l| *l > 0)?;
        let (s, _) = self.levels[l];
        let (cs, cc) = self.levels[l - 1];
        let first = cs + (c - s) * self.fan;
        Some(first..(first + self.fan).min(cs + cc))
    }

    /// The leaves under `u`, in order.
    pub fn leaves_under(&self, u: u32) -> Range<u32> {
        match self.children(u) {
            None => u..u + 1,
            Some(ch) => {
                let first = self.leaves_under(ch.start).start;
                let last = self.leaves_under(ch.end - 1).end;
                first..last
            }
        }
    }
}

/// The name a combine step's token carries as its chunk: BLAKE3 over the
/// digests it folds, in order. The token digest, and so every vote, binds
/// it, and a worker runs a combine token only if its inputs give this name.
pub fn combine_name<'a>(digests: impl IntoIterator<Item = &'a str>) -> crate::blobs::Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"ryx-combine\0");
    for d in digests {
        h.update(&(d.len() as u64).to_le_bytes());
        h.update(d.as_bytes());
    }
    crate::blobs::Hash::from(h.finalize().to_hex().as_str())
}

/// A combine step's inputs, if every one is decided: the decided partials
/// of its children, in order.
pub(super) fn combine_inputs(h: &HomeJob, c: u32) -> Option<Vec<PartialRef>> {
    h.tree
        .children(c)?
        .map(|u| {
            let (digest, holders, _) = h.unit_state.get(u as usize)?.decided.as_ref()?;
            let holders = holders.iter().take(crate::wire::PAGE_HOLDER_ADDRS).copied().collect();
            Some(PartialRef { digest: Hash::from(digest.as_str()), holders })
        })
        .collect()
}

/// The chunk a unit's token names: its input chunk, or for a combine step
/// the name of the inputs decided now (None while one is not).
pub(super) fn unit_chunk(h: &HomeJob, u: u32) -> Option<Hash> {
    if h.tree.is_combine(u) {
        let inputs = combine_inputs(h, u)?;
        return Some(combine_name(inputs.iter().map(|i| i.digest.as_str())));
    }
    h.spec.units.get(u as usize).map(|x| x.hash.clone())
}

/// A combine step lapsed this many times before the home looks for inputs
/// that no live node holds (and runs them again).
const COMBINE_CHECK_AFTER: u32 = 1;
/// A combine step lapsed this many times: every input is run again.
const COMBINE_REDO_ALL_AFTER: u32 = 6;

impl JobEngine {
    /// Issues combine step `c` of a job homed here once every input is
    /// decided (and it is not issued yet). Each replica goes to a different
    /// live node holding the most of its inputs, which then fetches the
    /// fewest; into the home's own queue when it knows none (the home may
    /// not know every node of a large network), from where it goes on to
    /// an idle neighbour if the home's combine lane is busy.
    pub(super) fn issue_combine(&mut self, ctx: &mut Ctx<'_>, id: &str, c: u32) {
        let Some(h) = self.homes.get(id) else { return };
        let Some(us) = h.unit_state.get(c as usize) else { return };
        if h.state.is_final() || us.decided.is_some() || !us.reps.is_empty() {
            return;
        }
        let Some(inputs) = combine_inputs(h, c) else { return };
        let mut counts: BTreeMap<SocketAddr, usize> = BTreeMap::new();
        for i in &inputs {
            for a in &i.holders {
                *counts.entry(*a).or_default() += 1;
            }
        }
        let mut ranked: Vec<(usize, SocketAddr)> = counts.into_iter().map(|(a, n)| (n, a)).collect();
        // Ties at random: by address, every step above the first level
        // (one input per holder) would go to the same node.
        ctx.rng.shuffle(&mut ranked);
        ranked.sort_by_key(|x| std::cmp::Reverse(x.0));
        let mut targets: Vec<Option<PeerInfo>> = ranked
            .iter()
            .filter_map(|(_, a)| {
                if *a == ctx.http {
                    Some(None)
                } else {
                    (ctx.peer_at)(*a).filter(|p| p.id != ctx.me).map(Some)
                }
            })
            .collect();
        for r in 0..h.spec.redundancy {
            let to = if targets.is_empty() { None } else { targets.remove(0) };
            self.issue_to(ctx, id, c, r, to);
        }
    }

    /// A combine step's lease lapsed. Its inputs may lie only on nodes
    /// that died (a partial is kept by the node that computed it): at each
    /// lapse, inputs with no holder the home knows alive are run again
    /// (the step is issued once they are decided again), and after
    /// `COMBINE_REDO_ALL_AFTER` lapses every input (the home sees only its
    /// neighbours die; a far holder may have died unseen). Otherwise it is
    /// issued again.
    pub(super) fn combine_lapsed(&mut self, ctx: &mut Ctx<'_>, id: &str, c: u32, r: u8) {
        let Some(h) = self.homes.get_mut(id) else { return };
        h.stats.reissued += 1;
        let Some(us) = h.unit_state.get_mut(c as usize) else { return };
        us.reissues += 1;
        let n = us.reissues;
        if n > MAX_UNIT_REISSUES {
            h.state = JobState::Failed;
            h.error = Some(format!("combine step {c} could not be run {MAX_UNIT_REISSUES} times"));
            h.stats.elapsed_ms = Some(ctx.now.since(h.spec.created_at).as_millis() as u64);
            h.summary_dirty = true;
            self.finalize_local(ctx, id);
            self.publish(ctx, id);
            return;
        }
        let children = h.tree.children(c).unwrap_or(0..0);
        let lost: Vec<u32> =
            if n >= COMBINE_REDO_ALL_AFTER {
                children.collect()
            } else if n >= COMBINE_CHECK_AFTER {
                children
                    .filter(|u| {
                        h.unit_state.get(*u as usize).and_then(|x| x.decided.as_ref()).is_some_and(|(d, hs, _)| {
                            !hs.iter().any(|a| {
                                if *a == ctx.http {
                                    ctx.blobs.holds(d)
                                } else {
                                    (ctx.peer_at)(*a).is_some()
                                }
                            })
                        })
                    })
                    .collect()
            } else {
                Vec::new()
            };
        if lost.is_empty() {
            let to = combine_inputs(h, c)
                .and_then(|i| i.iter().flat_map(|x| x.holders.clone()).find(|a| *a != ctx.http))
                .and_then(|a| (ctx.peer_at)(a))
                .filter(|p| p.id != ctx.me);
            self.issue_to(ctx, id, c, r, to);
            return;
        }
        if let Some(us) = h.unit_state.get_mut(c as usize) {
            us.reps.clear();
            us.results.clear();
            if n >= COMBINE_REDO_ALL_AFTER {
                us.reissues = 0;
            }
        }
        self.redo(ctx, id, &lost);
    }

    /// Runs units (or combine steps) of a job homed here again: their
    /// partials cannot be fetched. A combine step is issued again at once
    /// if its inputs are decided, else when they are.
    pub(super) fn redo(&mut self, ctx: &mut Ctx<'_>, id: &str, units: &[u32]) {
        let Some(h) = self.homes.get_mut(id) else { return };
        let red = h.spec.redundancy;
        for &u in units {
            let combine = h.tree.is_combine(u);
            if let Some(us) = h.unit_state.get_mut(u as usize) {
                if us.decided.take().is_some() && !combine {
                    h.decided = h.decided.saturating_sub(1);
                }
                us.results.clear();
                us.reps.clear();
                h.stats.reissued += 1;
            }
        }
        h.summary_dirty = true;
        for &u in units {
            if self.homes.get(id).is_some_and(|h| h.tree.is_combine(u)) {
                self.issue_combine(ctx, id, u);
            } else {
                for r in 0..red {
                    self.issue(ctx, id, u, r);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    /// The combine tokens `b` sent, by step.
    fn combines(b: &Bench) -> Vec<(PeerInfo, WorkToken)> {
        b.sent("work")
            .into_iter()
            .filter_map(|(to, m)| match m {
                Message::Work { token } if !token.inputs.is_empty() => Some((to, *token)),
                _ => None,
            })
            .collect()
    }

    /// Reports unit `u` of `id` as computed by worker `w`, its partial
    /// named after the unit.
    fn run_leaf(b: &mut Bench, id: &str, w: u64, u: u32, chunk: &str) -> String {
        let d = name(&format!("partial {u}"));
        b.call(|e, c| e.on_report(c, report(w, id, vec![result(w, id, u, 0, chunk, &d)])));
        d
    }

    #[test]
    fn partials_fold_along_the_tree_at_their_holders_and_the_home_merges_only_the_top() {
        let mut b = Bench::new(1, &[2, 3]);
        b.peers.push((addr(2), peer(2)));
        b.peers.push((addr(3), peer(3)));
        let us = units(40);
        let chunks: Vec<String> = us.iter().map(|u| u.hash.to_string()).collect();
        let id = b.submit(us, 1);
        let t = MergeTree::new(40, 16);
        assert_eq!((t.total(), t.top()), (43, 40..43));
        // Units 0..16 ran on node 2 (all but one), unit 15 on node 3.
        let mut digests = Vec::new();
        for u in 0..16 {
            let w = if u == 15 { 3 } else { 2 };
            digests.push(run_leaf(&mut b, &id, w, u, &chunks[u as usize]));
            if u < 15 {
                assert!(combines(&b).is_empty(), "no combine before every input is decided");
            }
        }
        assert!(
            !b.outputs.iter().any(|o| matches!(o, JobOutput::Decided { .. })),
            "the home folds nothing below the top"
        );
        let sent = combines(&b);
        assert_eq!(sent.len(), 1);
        let (to, tok) = &sent[0];
        assert_eq!(to.id, key(2).id(), "to the node holding most inputs");
        assert_eq!(tok.unit, 40);
        let got: Vec<String> = tok.inputs.iter().map(|i| i.digest.to_string()).collect();
        assert_eq!(got, digests, "the inputs in unit order");
        assert_eq!(tok.chunk, combine_name(digests.iter().map(String::as_str)));
        // A result for the step named after other inputs does not count.
        let other = combine_name(["x"]);
        b.call(|e, c| e.on_report(c, report(2, &id, vec![result(2, &id, 40, 0, &other, &name("c0"))])));
        assert_eq!(b.refused("wrong_token"), 1);
        let c0 = name("combined 0");
        b.call(|e, c| e.on_report(c, report(2, &id, vec![result(2, &id, 40, 0, &tok.chunk, &c0)])));
        let top: Vec<(u32, u32, String)> = b
            .outputs
            .iter()
            .filter_map(|o| match o {
                JobOutput::Decided { units, unit, digest, .. } => Some((*units, *unit, digest.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(top, vec![(3, 0, c0.clone())], "the top of the tree is folded ahead");
        // The rest, then their steps.
        for u in 16..40 {
            run_leaf(&mut b, &id, 3, u, &chunks[u as usize]);
        }
        let mut tops = vec![c0];
        for step in [41u32, 42] {
            let tok = combines(&b).into_iter().map(|(_, t)| t).find(|t| t.unit == step).expect("issued");
            let d = name(&format!("combined {step}"));
            b.call(|e, c| e.on_report(c, report(3, &id, vec![result(3, &id, step, 0, &tok.chunk, &d)])));
            tops.push(d);
        }
        let merge = b.outputs.iter().find_map(|o| match o {
            JobOutput::Merge { partials, .. } => Some(partials.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>()),
            _ => None,
        });
        assert_eq!(merge, Some(tops), "the home merges the three steps");
        assert_eq!(b.engine.home_progress(&id), Some((40, 40)), "progress counts units");
        // Heirs learn every decision, the steps' included.
        b.advance(10);
        let units: BTreeSet<u32> = b
            .sent("job_decided")
            .iter()
            .flat_map(|(_, m)| match m {
                Message::JobDecided { decisions, .. } => decisions.iter().map(|d| d.unit).collect(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(units.len(), 43);
    }

    #[test]
    fn a_step_whose_input_lies_on_a_dead_node_runs_that_input_again() {
        let mut b = Bench::new(1, &[2, 3]);
        // Node 2 is known (alive); node 9 is not (dead, or unknown).
        b.peers.push((addr(2), peer(2)));
        let us = units(20);
        let chunks: Vec<String> = us.iter().map(|u| u.hash.to_string()).collect();
        let id = b.submit(us, 1);
        for u in 0..16 {
            let w = if u == 7 { 9 } else { 2 };
            run_leaf(&mut b, &id, w, u, &chunks[u as usize]);
        }
        assert_eq!(combines(&b).len(), 1);
        let lapse = JobConfig::default().lease.as_millis() as u64 + 1;
        // The step lapses: unit 7's only holder is not known alive, so
        // unit 7 runs again (and the step waits for it).
        let before = b.engine.queue.iter().filter(|t| t.unit == 7).count();
        b.advance(lapse);
        let requeued = b.engine.queue.iter().filter(|t| t.unit == 7).count()
            + b.engine.running.keys().filter(|k| k.1 == 7).count()
            + b.sent("work").iter().filter(|(_, m)| matches!(m, Message::Work { token } if token.unit == 7)).count();
        assert!(requeued > before, "unit 7 issued again");
        assert_eq!(b.engine.home_progress(&id), Some((15, 20)), "unit 7 is no longer decided");
        assert_eq!(combines(&b).len(), 1, "the step waits for its input");
        // Decided again (by a live node): the step is issued again.
        let d = run_leaf(&mut b, &id, 2, 7, &chunks[7]);
        let last = combines(&b).pop().expect("issued").1;
        assert_eq!(last.unit, 20);
        assert_eq!(last.inputs[7].digest.as_str(), d);
        assert_eq!(last.inputs[7].holders, vec![addr(2)]);
    }

    #[test]
    fn a_worker_runs_a_step_only_if_its_inputs_give_its_name() {
        let mut b = Bench::new(5, &[1]);
        let job = format!("{}{:016x}", key(1).id(), 1);
        let inputs: Vec<PartialRef> = ["a", "b"]
            .iter()
            .map(|t| PartialRef { digest: Hash::from(name(t).as_str()), holders: vec![addr(1)] })
            .collect();
        let token = |chunk: Hash| WorkToken {
            job: JobId::from(job.clone()),
            unit: 3,
            replica: 0,
            chunk,
            size: 0,
            holders: Vec::new(),
            kind: "word-count".into(),
            params: serde_json::json!({}),
            energy: 5.0,
            inputs: inputs.clone(),
        };
        b.call(|e, c| e.on_work(c, token(Hash::from(name("other").as_str()))));
        assert_eq!(b.refused("bad_combine"), 1);
        assert!(b.outputs.is_empty() && b.engine.running.is_empty());
        let good = combine_name(inputs.iter().map(|i| i.digest.as_str()));
        b.call(|e, c| e.on_work(c, token(good.clone())));
        assert!(
            matches!(b.outputs.last(), Some(JobOutput::Combine { token }) if token.chunk == good),
            "{:?}",
            b.outputs
        );
        assert!(!b.outputs.iter().any(|o| matches!(o, JobOutput::Fetch { .. })), "the driver fetches the inputs");
    }

    #[test]
    fn small_jobs_have_no_combine_step() {
        for (n, f) in [(1, 16), (2, 16), (16, 16), (1000, 0), (1000, 1)] {
            let t = MergeTree::new(n, f);
            assert_eq!(t.total(), n);
            assert_eq!(t.top(), 0..n);
            assert!((0..n).all(|u| t.parent(u).is_none() && t.children(u).is_none()));
        }
    }

    #[test]
    fn every_leaf_lies_under_exactly_one_top_node_in_order_with_bounded_fan_in() {
        for (n, f) in
            [(17u32, 16u16), (100, 16), (256, 16), (257, 16), (1_000, 2), (10_106, 16), (65_536, 64), (9, 1000)]
        {
            let t = MergeTree::new(n, f);
            let fan = t.fan_in() as usize;
            assert!(t.top().len() <= fan && !t.top().is_empty(), "n={n}");
            // The top level's leaves tile 0..n in order.
            let mut next = 0;
            for u in t.top() {
                let r = t.leaves_under(u);
                assert_eq!(r.start, next, "n={n} u={u}");
                next = r.end;
            }
            assert_eq!(next, n);
            // Every combine step folds 1..=F nodes whose parent it is.
            for c in t.leaves()..t.total() {
                let ch = t.children(c).expect("a combine step");
                assert!(!ch.is_empty() && ch.len() <= fan);
                assert!(ch.clone().all(|u| t.parent(u) == Some(c)));
                assert!(t.is_combine(c));
            }
            // Every non-top node has a parent.
            assert!((0..t.top().start).all(|u| t.parent(u).is_some()));
        }
    }

    #[test]
    fn the_combine_name_binds_the_inputs_and_their_order() {
        let a = combine_name(["aa", "bb"]);
        assert!(crate::blobs::is_hash(&a));
        assert_ne!(a, combine_name(["bb", "aa"]));
        assert_ne!(a, combine_name(["aab", "b"]));
        assert_eq!(a, combine_name(["aa", "bb"]));
    }
}
