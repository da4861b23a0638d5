//! Load balancing by diffusion, weighted by capacity.
//!
//! Each node knows its own load and capacity and what each neighbour last
//! reported of theirs (load, capacity, degree). Every round it sends each
//! neighbour whose *level* (load ÷ capacity) is lower a share of the
//! difference:
//!
//! ```text
//! flow(i→j) = min(cᵢ, cⱼ) / (max(dᵢ, dⱼ) + 1) · (lᵢ/cᵢ − lⱼ/cⱼ)
//! ```
//!
//! This is first-order diffusion (Cybenko, JPDC 1989) with Boillat's
//! per-edge weight (`1/(max degree + 1)`), generalised to capacities as in
//! Elsässer, Monien and Preis (2002): the weight `min(cᵢ, cⱼ)` keeps a
//! node's total outflow below its load however its neighbours stand, so no
//! node overshoots, and the fixed point gives every node the same level —
//! work in proportion to capacity. Loads are whole tokens, so each link
//! keeps the fraction it could not send and adds it to the next round's
//! flow (the deviation from the continuous process stays within one token
//! per link, as in quasirandom rounding), and a link moves nothing while
//! one token more would put the receiver above the sender: near the end no
//! token crosses back and forth on ties.
//!
//! A second mode for when a node knows the network's tokens per unit of
//! capacity (the *fair level*, a sum the aggregates give): a node short of
//! its share sends nothing and is a *shortfall*; every node reports its hop
//! distance to the nearest one (distance-vector style); a node over its
//! share diffuses only its surplus and sends a share [`PUSH_SHARE`] of what
//! is left to the neighbours one hop nearer a shortfall (the gradient
//! model of Lin and Keller, 1987). Measured in the simulator it is faster
//! than diffusion alone on 1,000 nodes and slower, with more moves, on
//! 10,000 (stale distances send surplus one way and then back), so the
//! daemon has no use for it yet; `docs/self-organisation.md` has the
//! figures.
//!
//! Sans-IO: the caller passes in the reports and the load, and sends what
//! [`Balancer::plan`] returns. `ryx-sim --scenario balance` drives one per
//! node; the job engine does not use it (its tokens are units of work that
//! a free slot takes, `jobs::worker`).

use std::collections::BTreeMap;

/// The largest capacity believed of a report (a neighbour claiming more
/// would draw a disproportionate share).
pub const MAX_CAP: u32 = 1024;

/// Need distances at or above this mean "no shortfall known".
pub const NO_NEED: u8 = 64;

/// What a node tells its neighbours each round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// Tokens it holds.
    pub load: u64,
    /// Its capacity (work slots; at least 1).
    pub cap: u32,
    /// Its number of neighbours.
    pub degree: u32,
    /// Hops to the nearest node short of its fair share ([`NO_NEED`]:
    /// none known).
    pub need: u8,
}

/// One node's balancing state.
#[derive(Clone, Debug)]
pub struct Balancer<K: Ord + Copy> {
    cap: u32,
    peers: BTreeMap<K, Report>,
    /// Per link, the fraction of a token owed from earlier rounds.
    residue: BTreeMap<K, f64>,
    /// Share of the surplus left after diffusion sent down the gradient
    /// each round.
    push: f64,
}

/// Default share of the surplus left after diffusion that goes down the
/// gradient each round, with the fair level known (on the simulator's
/// 1,000-node overlay, 10⁵ tokens at 1 %: all of it balanced to 1.05 in 36
/// rounds with 1.48× the least moves, half in 44 with 1.37×, a quarter not
/// in 50; see `docs/self-organisation.md`).
pub const PUSH_SHARE: f64 = 0.5;

impl<K: Ord + Copy> Balancer<K> {
    /// A node of capacity `cap` (clamped to 1..=[`MAX_CAP`]).
    pub fn new(cap: u32) -> Balancer<K> {
        Balancer { cap: cap.clamp(1, MAX_CAP), peers: BTreeMap::new(), residue: BTreeMap::new(), push: PUSH_SHARE }
    }

    /// Sends a share `push` (0 to 1) of the surplus left after diffusion
    /// down the gradient each round (0: diffusion of the surplus alone).
    pub fn with_push(mut self, push: f64) -> Balancer<K> {
        self.push = if push.is_finite() { push.clamp(0.0, 1.0) } else { PUSH_SHARE };
        self
    }

    /// This node's capacity.
    pub fn cap(&self) -> u32 {
        self.cap
    }

    /// A neighbour's report, clamped to what can be believed (a capacity
    /// of 0 counts as 1).
    pub fn on_report(&mut self, from: K, r: Report) {
        let r = Report { cap: r.cap.clamp(1, MAX_CAP), degree: r.degree.clamp(1, 64), need: r.need.min(NO_NEED), ..r };
        self.peers.insert(from, r);
    }

    /// A neighbour is gone: forget its report and what was owed to it.
    pub fn forget(&mut self, peer: &K) {
        self.peers.remove(peer);
        self.residue.remove(peer);
    }

    /// What a neighbour last reported.
    pub fn peer(&self, peer: &K) -> Option<Report> {
        self.peers.get(peer).copied()
    }

    /// (shortfall, surplus) of `load` against the fair share at `fair`
    /// tokens per unit of capacity.
    fn against_fair(&self, load: u64, fair: f64) -> (u64, u64) {
        let share = fair * f64::from(self.cap);
        let short = (share.floor() - load as f64).max(0.0) as u64;
        let over = (load as f64 - share.ceil()).max(0.0) as u64;
        (short, over)
    }

    /// The distance of the nearest shortfall through the listed
    /// neighbours, and those of them that are nearest.
    fn downstream(&self, neighbors: &[K]) -> (u8, Vec<(K, Report)>) {
        let near = neighbors.iter().filter_map(|k| self.peers.get(k)).map(|r| r.need).min().unwrap_or(NO_NEED);
        if near >= NO_NEED - 1 {
            return (NO_NEED, Vec::new());
        }
        let down =
            neighbors.iter().filter_map(|k| self.peers.get(k).filter(|r| r.need == near).map(|r| (*k, *r))).collect();
        (near, down)
    }

    /// What to tell the neighbours this round, holding `load`, with the
    /// network's tokens per unit of capacity `fair` if known (from the
    /// aggregates): its distance to the nearest node short of its fair
    /// share (0 if it is short itself), as in distance-vector routing.
    pub fn report(&self, load: u64, neighbors: &[K], fair: Option<f64>) -> Report {
        let mut r = Report { load, cap: self.cap, degree: neighbors.len() as u32, need: NO_NEED };
        let Some(fair) = fair.filter(|f| f.is_finite() && *f >= 0.0) else { return r };
        let (short, _) = self.against_fair(load, fair);
        r.need = if short > 0 { 0 } else { self.downstream(neighbors).0.saturating_add(1).min(NO_NEED) };
        r
    }

    /// This round's sends, holding `load`, to the current `neighbors` (one
    /// without a report gets nothing); at most `load` tokens in all.
    ///
    /// With the fair level known, a node above its share sends all its
    /// surplus toward the nearest shortfall, shared among the neighbours
    /// one hop nearer it (a neighbour that is short itself gets no more
    /// than it lacks while others take the rest): tokens take short paths
    /// and a node at or under its share sends nothing. With no shortfall
    /// within reach, or the fair level unknown, tokens spread by diffusion
    /// to neighbours at a lower level.
    pub fn plan(&mut self, load: u64, neighbors: &[K], fair: Option<f64>) -> Vec<(K, u64)> {
        self.residue.retain(|k, _| neighbors.contains(k));
        let mut out: Vec<(K, u64)> = Vec::new();
        let Some(fair) = fair.filter(|f| f.is_finite() && *f >= 0.0) else {
            self.diffuse(load, neighbors, &mut out);
            return out;
        };
        let (short, over) = self.against_fair(load, fair);
        if short > 0 {
            return out;
        }
        let (near, down) = self.downstream(neighbors);
        if near >= NO_NEED {
            // No shortfall within reach: the fair level is an underestimate
            // (or the shortfalls are cut off); spread by diffusion.
            self.diffuse(load, neighbors, &mut out);
            return out;
        }
        if over == 0 {
            return out;
        }
        // Diffusion first, of the surplus only; what it leaves goes down
        // the gradient.
        self.diffuse(load, neighbors, &mut out);
        let mut spread = 0;
        for o in out.iter_mut() {
            o.1 = o.1.min(over - spread);
            spread += o.1;
        }
        out.retain(|o| o.1 > 0);
        let over = over - spread;
        let over = ((over as f64) * self.push).ceil() as u64;
        if over == 0 || down.is_empty() {
            return out;
        }
        // What a short neighbour lacks, if it is one.
        let lacks = |r: &Report| -> Option<u64> {
            (r.need == 0).then(|| (fair * f64::from(r.cap)).floor().max(0.0) as u64).map(|s| s.saturating_sub(r.load))
        };
        let mut left = over;
        let mut given: Vec<(K, u64)> = down.iter().map(|(k, _)| (*k, 0)).collect();
        // Round by round of the remaining takers, an equal part each, a
        // short neighbour capped at what it lacks.
        let mut open: Vec<usize> = (0..down.len()).collect();
        while left > 0 && !open.is_empty() {
            let part = (left / open.len() as u64).max(1);
            let mut still = Vec::new();
            for &i in &open {
                if left == 0 {
                    break;
                }
                let room = lacks(&down[i].1).map_or(u64::MAX, |l| l - given[i].1);
                let n = part.min(room).min(left);
                given[i].1 += n;
                left -= n;
                if room > n {
                    still.push(i);
                }
            }
            open = still;
        }
        for (k, n) in given.into_iter().filter(|g| g.1 > 0) {
            match out.iter_mut().find(|o| o.0 == k) {
                Some(o) => o.1 += n,
                None => out.push((k, n)),
            }
        }
        out
    }

    /// First-order diffusion of `load` to lower neighbours.
    fn diffuse(&mut self, load: u64, neighbors: &[K], out: &mut Vec<(K, u64)>) {
        let ci = f64::from(self.cap);
        let di = neighbors.len() as f64;
        let level = load as f64 / ci;
        let mut order: Vec<(f64, K, Report)> = neighbors
            .iter()
            .filter_map(|k| self.peers.get(k).map(|p| (p.load as f64 / f64::from(p.cap), *k, *p)))
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut left = load;
        for (lj, k, p) in order {
            let cj = f64::from(p.cap);
            let diff = level - lj;
            // One token moved lowers this level by 1/cᵢ and raises the
            // neighbour's by 1/cⱼ: below that gap a move only swaps who is
            // higher.
            if diff < 1.0 / ci + 1.0 / cj - 1e-9 {
                self.residue.remove(&k);
                continue;
            }
            let alpha = ci.min(cj) / (di.max(f64::from(p.degree)) + 1.0);
            let x = alpha * diff + self.residue.get(&k).copied().unwrap_or(0.0);
            // Never more than the pair's equalising amount.
            let even = ((load as f64) * cj - (p.load as f64) * ci) / (ci + cj);
            let n = (x.floor().max(0.0) as u64).min(even.floor().max(0.0) as u64).min(left);
            self.residue.insert(k, (x - n as f64).clamp(0.0, 1.0));
            if n > 0 {
                left -= n;
                out.push((k, n));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs synchronous rounds on a graph given by adjacency lists; the
    /// fair level is `fair` times the true one if given. Returns the moves.
    fn rounds(adj: &[Vec<usize>], caps: &[u32], loads: &mut [u64], n: usize, fair: Option<f64>) -> u64 {
        let total: u64 = loads.iter().sum();
        let cap: u64 = caps.iter().map(|&c| u64::from(c)).sum();
        let level = fair.map(|f| f * total as f64 / cap as f64);
        let mut b: Vec<Balancer<usize>> = caps.iter().map(|&c| Balancer::new(c)).collect();
        let mut moved = 0;
        for _ in 0..n {
            let reports: Vec<Report> = (0..adj.len()).map(|i| b[i].report(loads[i], &adj[i], level)).collect();
            for i in 0..adj.len() {
                for &j in &adj[i] {
                    b[i].on_report(j, reports[j]);
                }
            }
            let mut delta = vec![0i64; adj.len()];
            for i in 0..adj.len() {
                let out = b[i].plan(loads[i], &adj[i], level);
                assert!(out.iter().map(|o| o.1).sum::<u64>() <= loads[i], "never more than it holds");
                for (j, k) in out {
                    delta[i] -= k as i64;
                    delta[j] += k as i64;
                    moved += k;
                }
            }
            for (l, d) in loads.iter_mut().zip(delta) {
                *l = (*l as i64 + d) as u64;
            }
        }
        moved
    }

    fn ring(n: usize) -> Vec<Vec<usize>> {
        (0..n).map(|i| vec![(i + n - 1) % n, (i + 1) % n]).collect()
    }

    fn report(load: u64, need: u8) -> Report {
        Report { load, cap: 1, degree: 2, need }
    }

    #[test]
    fn a_ring_evens_out_by_diffusion_and_conserves_tokens() {
        let adj = ring(12);
        let mut loads = vec![0u64; 12];
        loads[0] = 1200;
        rounds(&adj, &[1; 12], &mut loads, 400, None);
        assert_eq!(loads.iter().sum::<u64>(), 1200, "no token lost or made");
        for i in 0..12 {
            assert!(loads[i].abs_diff(loads[(i + 1) % 12]) <= 1, "neighbours end within a token: {loads:?}");
        }
    }

    #[test]
    fn with_the_fair_level_tokens_take_shortest_paths() {
        // A ring of 12, everything at node 0: each other node needs 100,
        // at distances 1..6; the least moves are 100·(2·(1+…+5) + 6).
        let adj = ring(12);
        let mut loads = vec![0u64; 12];
        loads[0] = 1200;
        let moves = rounds(&adj, &[1; 12], &mut loads, 40, Some(1.0));
        assert_eq!(loads, vec![100; 12], "every node at its share");
        assert_eq!(moves, 100 * (2 * 15 + 6), "no token goes the long way or back");
    }

    #[test]
    fn work_goes_in_proportion_to_capacity() {
        // A complete graph of six nodes: capacities 1, 2, 4, 1, 2, 4.
        let adj: Vec<Vec<usize>> = (0..6).map(|i| (0..6).filter(|&j| j != i).collect()).collect();
        let caps = [1, 2, 4, 1, 2, 4];
        for fair in [None, Some(1.0)] {
            let mut loads = vec![0u64; 6];
            loads[0] = 14_000;
            rounds(&adj, &caps, &mut loads, 100, fair);
            for (l, c) in loads.iter().zip(caps) {
                let share = *l as f64 / (1000.0 * f64::from(c));
                assert!((share - 1.0).abs() < 0.01, "load {l} for capacity {c} ({fair:?}): {loads:?}");
            }
        }
    }

    #[test]
    fn a_wrong_fair_level_degrades_gently() {
        let adj = ring(20);
        // Too high: nobody is ever over; the sources stop at their share
        // and the rest is filled nearest first.
        let mut loads = vec![0u64; 20];
        loads[0] = 2000;
        rounds(&adj, &[1; 20], &mut loads, 80, Some(1.05));
        assert_eq!(loads.iter().sum::<u64>(), 2000);
        assert!(*loads.iter().max().expect("loads") <= 106, "{loads:?}");
        // Too low: once no node is short, diffusion takes over.
        let mut loads = vec![0u64; 20];
        loads[0] = 2000;
        rounds(&adj, &[1; 20], &mut loads, 1000, Some(0.9));
        assert_eq!(loads.iter().sum::<u64>(), 2000);
        assert!(*loads.iter().max().expect("loads") <= 106, "{loads:?}");
    }

    #[test]
    fn no_node_sends_more_than_it_holds_or_past_a_neighbour() {
        let mut b: Balancer<u8> = Balancer::new(1);
        for k in 1..=6u8 {
            b.on_report(k, report(0, NO_NEED));
        }
        let out = b.plan(7, &[1, 2, 3, 4, 5, 6], None);
        let sent: u64 = out.iter().map(|(_, n)| n).sum();
        assert!(sent <= 7 && out.iter().all(|(_, n)| *n <= 3), "{out:?}");
        // A neighbour one token below is left alone (a move would swap them).
        let mut b: Balancer<u8> = Balancer::new(1);
        b.on_report(1, report(9, NO_NEED));
        for _ in 0..10 {
            assert!(b.plan(10, &[1], None).is_empty());
        }
    }

    #[test]
    fn surplus_goes_down_the_gradient_and_short_neighbours_get_what_they_lack() {
        let mut b: Balancer<u8> = Balancer::new(1);
        b.on_report(1, report(20, 0));
        b.on_report(2, report(100, 1));
        b.on_report(3, report(45, 0));
        b.on_report(4, report(60, 0));
        let r = b.report(150, &[1, 2, 3, 4], Some(50.0));
        assert_eq!(r.need, 1, "one hop from a shortfall");
        // 100 over a share of 50: the short neighbours get what they lack
        // (node 4 claims a shortfall it does not have, node 2 is farther);
        // the other 65 wait for the next round's distances.
        let mut out = b.plan(150, &[1, 2, 3, 4], Some(50.0));
        out.sort();
        assert_eq!(out, vec![(1, 30), (3, 5)], "node 4 is over, node 2 farther");
        // Once none is short, all of it goes to the nearest forwarders,
        // shared evenly.
        b.on_report(1, report(50, 2));
        b.on_report(2, report(50, 1));
        b.on_report(3, report(50, 1));
        b.on_report(4, report(60, 2));
        let mut out = b.plan(150, &[1, 2, 3, 4], Some(50.0));
        out.sort();
        assert_eq!(out, vec![(2, 50), (3, 50)]);
        // A node short of its share sends nothing.
        assert!(b.plan(45, &[1, 2, 3], Some(50.0)).is_empty());
        assert_eq!(b.report(45, &[1, 2, 3], Some(50.0)).need, 0);
    }

    #[test]
    fn lying_reports_are_clamped() {
        let mut b: Balancer<u8> = Balancer::new(0);
        assert_eq!(b.cap(), 1);
        b.on_report(1, Report { load: 0, cap: u32::MAX, degree: 0, need: 200 });
        assert_eq!(b.peer(&1), Some(Report { load: 0, cap: MAX_CAP, degree: 1, need: NO_NEED }));
        let out = b.plan(100, &[1], None);
        assert!(out.iter().all(|(_, n)| *n <= 50), "at most half to a single neighbour: {out:?}");
        // A neighbour claiming a huge shortfall gets no more than the surplus.
        b.on_report(1, Report { load: 0, cap: 1, degree: 1, need: 0 });
        assert_eq!(b.plan(100, &[1], Some(60.0)), vec![(1, 40)]);
        b.forget(&1);
        assert!(b.plan(100, &[1], None).is_empty(), "no report, no send");
    }
}
