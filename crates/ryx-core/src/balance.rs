//! Load balancing by diffusion, weighted by capacity.
//!
//! Each node knows its own load and capacity and what each neighbour last
//! reported of theirs. The diffusion weight of a link is
//!
//! ```text
//! α(i, j) = min(cᵢ, cⱼ) / (max(dᵢ, dⱼ) + 1)
//! ```
//!
//! (Boillat's `1/(max degree + 1)`, generalised to capacities as in
//! Elsässer, Monien and Preis, 2002: a node's total outflow stays below its
//! load however its neighbours stand, and the fixed point gives every node
//! the same *level*, load ÷ capacity: work in proportion to capacity).
//!
//! Two modes:
//!
//! - **Flow, then tokens** (the default, [`BETA`]): the flow is computed on
//!   numbers, not tokens, by second-order diffusion (Muthukrishnan, Ghosh
//!   and Schultz, 1998): each round a link's flow is
//!   `β·α·(xᵢ/cᵢ − xⱼ/cⱼ) + (β − 1)·(its last flow)`, where `x` is the
//!   node's load in the computation (a real number, negative at times).
//!   Both ends compute the same flow from the same reports. The flows
//!   summed over the rounds converge to the least-squares balancing flow,
//!   as first order's do (Diekmann, Frommer and Monien, 1999), and far
//!   sooner (β ≈ 2/(1 + √(1 − γ²)) for a graph whose first-order rate is
//!   γ). Tokens follow the summed flow of a link only once it has settled
//!   (its last round's flow under [`SETTLE`] tokens): second order
//!   overshoots on the way, and tokens that moved with the overshoot would
//!   come back.
//! - **Tokens diffuse** (`beta` 0): each round a node sends each lower
//!   neighbour `α·(level difference)` tokens (first order, Cybenko 1989);
//!   each link keeps the fraction it could not send for the next round, and
//!   moves nothing while one token more would put the receiver above the
//!   sender. Converges at the graph's first-order rate.
//!
//! Reports are trusted, within bounds (capacity, degree, the flow load's
//! size): a neighbour that keeps reporting a flow load far below the truth
//! draws its neighbours' tokens, and one far above repels them. Before the
//! daemon used this, a flow load would have to be checked against the
//! tokens the neighbour holds and has received. The flow mode also assumes
//! both ends of a link see the same reports (synchronous rounds); over
//! real links one end would own each link's flow.
//!
//! Sans-IO: the caller passes in the reports, the load and the tokens that
//! arrived, and sends what [`Balancer::plan`] returns. `ryx-sim --scenario
//! balance` drives one per node; the job engine does not use it (its tokens
//! are units of work that a free slot takes, `jobs::worker`).

use std::collections::BTreeMap;

/// The largest capacity believed of a report (a neighbour claiming more
/// would draw a disproportionate share).
pub const MAX_CAP: u32 = 1024;

/// Default β of the flow computation, measured best of 1.5, 1.6 and 1.7 on
/// the simulator's overlays of 10³ and 10⁴ nodes (`docs/self-organisation.md`).
pub const BETA: f64 = 1.7;

/// A link's tokens follow its summed flow once the last round added less
/// than this many tokens to it.
pub const SETTLE: f64 = 1.0;

/// The largest flow load believed of a report, either sign (a lie beyond
/// it would overflow the sums).
const MAX_VIRT: f64 = 1e15;

/// What a node tells its neighbours each round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Report {
    /// Tokens it holds.
    pub load: u64,
    /// Its capacity (work slots; at least 1).
    pub cap: u32,
    /// Its number of neighbours.
    pub degree: u32,
    /// Its load in the flow computation (a number, not tokens).
    pub virt: f64,
}

/// One link's state in the flow computation.
#[derive(Clone, Copy, Debug)]
struct Link {
    /// The flow out summed over the rounds.
    sum: f64,
    /// Last round's flow out (None before the first).
    last: Option<f64>,
    /// Tokens moved out so far, less those that came in.
    moved: i64,
}

/// One node's balancing state.
#[derive(Clone, Debug)]
pub struct Balancer<K: Ord + Copy> {
    cap: u32,
    peers: BTreeMap<K, Report>,
    /// None: tokens diffuse (first order); else β of the flow computation.
    beta: Option<f64>,
    /// First order: per link, the fraction of a token owed from earlier
    /// rounds.
    residue: BTreeMap<K, f64>,
    /// Flow mode: this node's load in the computation.
    virt: Option<f64>,
    /// Flow mode: per link.
    links: BTreeMap<K, Link>,
}

impl<K: Ord + Copy> Balancer<K> {
    /// A node of capacity `cap` (clamped to 1..=[`MAX_CAP`]), computing
    /// the flow with [`BETA`].
    pub fn new(cap: u32) -> Balancer<K> {
        Balancer {
            cap: cap.clamp(1, MAX_CAP),
            peers: BTreeMap::new(),
            beta: Some(BETA),
            residue: BTreeMap::new(),
            virt: None,
            links: BTreeMap::new(),
        }
    }

    /// The flow computed with `beta` (1: first order on numbers; clamped
    /// below 2), or, below 1 or not a number, tokens that diffuse
    /// directly.
    pub fn with_beta(mut self, beta: f64) -> Balancer<K> {
        self.beta = (beta.is_finite() && beta >= 1.0).then(|| beta.min(1.95));
        self
    }

    /// This node's capacity.
    pub fn cap(&self) -> u32 {
        self.cap
    }

    /// What to tell the neighbours this round, holding `load`.
    pub fn report(&self, load: u64, neighbors: &[K]) -> Report {
        let virt = self.virt.unwrap_or(load as f64).clamp(-MAX_VIRT, MAX_VIRT);
        Report { load, cap: self.cap, degree: neighbors.len().clamp(1, 64) as u32, virt }
    }

    /// A neighbour's report, clamped to what can be believed (a capacity
    /// of 0 counts as 1, a flow load that is not a number as its tokens).
    pub fn on_report(&mut self, from: K, r: Report) {
        let r = Report {
            cap: r.cap.clamp(1, MAX_CAP),
            degree: r.degree.clamp(1, 64),
            virt: if r.virt.is_finite() { r.virt.clamp(-MAX_VIRT, MAX_VIRT) } else { r.load as f64 },
            ..r
        };
        self.peers.insert(from, r);
    }

    /// Tokens arrived from a neighbour.
    pub fn on_tokens(&mut self, from: K, n: u64) {
        if self.beta.is_some() {
            let l = self.links.entry(from).or_insert(Link { sum: 0.0, last: None, moved: 0 });
            l.moved = l.moved.saturating_sub(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// A neighbour is gone: forget its report and its link.
    pub fn forget(&mut self, peer: &K) {
        self.peers.remove(peer);
        self.residue.remove(peer);
        self.links.remove(peer);
    }

    /// What a neighbour last reported.
    pub fn peer(&self, peer: &K) -> Option<Report> {
        self.peers.get(peer).copied()
    }

    /// This round's sends, holding `load`, to the current `neighbors`
    /// (distinct; one without a report gets nothing); at most `load`
    /// tokens in all.
    pub fn plan(&mut self, load: u64, neighbors: &[K]) -> Vec<(K, u64)> {
        self.residue.retain(|k, _| neighbors.contains(k));
        // A link dropped takes back the flow its tokens did not follow
        // (the flow load stays in step with the tokens).
        let mut back = 0.0;
        self.links.retain(|k, l| {
            let keep = neighbors.contains(k);
            if !keep {
                back += l.sum - l.moved as f64;
            }
            keep
        });
        if let Some(v) = self.virt.as_mut() {
            *v = (*v + back).clamp(-MAX_VIRT, MAX_VIRT);
        }
        match self.beta {
            Some(beta) => self.follow_flow(beta, load, neighbors),
            None => self.diffuse(load, neighbors),
        }
    }

    /// Flow mode: one round of the computation, then the tokens of every
    /// settled link.
    fn follow_flow(&mut self, beta: f64, load: u64, neighbors: &[K]) -> Vec<(K, u64)> {
        let ci = f64::from(self.cap);
        // Degree and flow load as the neighbours believe them, so that
        // both ends of a link compute the same flow.
        let di = neighbors.len().clamp(1, 64) as f64;
        let x = self.virt.get_or_insert(load as f64).clamp(-MAX_VIRT, MAX_VIRT);
        let mut dx = 0.0;
        for k in neighbors {
            let Some(p) = self.peers.get(k) else { continue };
            let cj = f64::from(p.cap);
            let alpha = ci.min(cj) / (di.max(f64::from(p.degree)) + 1.0);
            let first = alpha * (x / ci - p.virt / cj);
            let l = self.links.entry(*k).or_insert(Link { sum: 0.0, last: None, moved: 0 });
            let flow = l.last.map_or(first, |last| beta * first + (beta - 1.0) * last);
            l.sum += flow;
            l.last = Some(flow);
            dx -= flow;
        }
        self.virt = Some((x + dx).clamp(-MAX_VIRT, MAX_VIRT));
        let mut out = Vec::new();
        let mut left = load;
        for (k, l) in self.links.iter_mut() {
            let owed = l.sum.floor() - l.moved as f64;
            // (NaN compares false: a link whose sums broke sends nothing.)
            let settled = l.last.is_some_and(|f| f.abs() < SETTLE);
            if owed.is_nan() || owed < 1.0 || left == 0 || !settled {
                continue;
            }
            let n = (owed as u64).min(left);
            left -= n;
            l.moved = l.moved.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
            out.push((*k, n));
        }
        out
    }

    /// First-order diffusion of tokens to lower neighbours.
    fn diffuse(&mut self, load: u64, neighbors: &[K]) -> Vec<(K, u64)> {
        let ci = f64::from(self.cap);
        let di = neighbors.len() as f64;
        let level = load as f64 / ci;
        let mut order: Vec<(f64, K, Report)> = neighbors
            .iter()
            .filter_map(|k| self.peers.get(k).map(|p| (p.load as f64 / f64::from(p.cap), *k, *p)))
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut out = Vec::new();
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
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Synchronous rounds on a graph given by adjacency lists.
    struct Net {
        adj: Vec<Vec<usize>>,
        nodes: Vec<Balancer<usize>>,
        loads: Vec<u64>,
        moves: u64,
    }

    impl Net {
        /// `beta` below 1: tokens diffuse.
        fn new(adj: Vec<Vec<usize>>, caps: &[u32], loads: Vec<u64>, beta: f64) -> Net {
            let nodes = caps.iter().map(|&c| Balancer::new(c).with_beta(beta)).collect();
            Net { adj, nodes, loads, moves: 0 }
        }

        fn round(&mut self) {
            let n = self.adj.len();
            let reports: Vec<Report> = (0..n).map(|i| self.nodes[i].report(self.loads[i], &self.adj[i])).collect();
            for i in 0..n {
                for &j in &self.adj[i] {
                    self.nodes[i].on_report(j, reports[j]);
                }
            }
            let mut arrivals = Vec::new();
            for i in 0..n {
                let out = self.nodes[i].plan(self.loads[i], &self.adj[i]);
                assert!(out.iter().map(|o| o.1).sum::<u64>() <= self.loads[i], "never more than it holds");
                for (j, k) in out {
                    self.loads[i] -= k;
                    self.moves += k;
                    arrivals.push((i, j, k));
                }
            }
            for (i, j, k) in arrivals {
                self.loads[j] += k;
                self.nodes[j].on_tokens(i, k);
            }
        }
    }

    fn rounds(adj: &[Vec<usize>], caps: &[u32], loads: &mut [u64], n: usize, beta: f64) -> u64 {
        let mut net = Net::new(adj.to_vec(), caps, loads.to_vec(), beta);
        for _ in 0..n {
            net.round();
        }
        loads.copy_from_slice(&net.loads);
        net.moves
    }

    fn ring(n: usize) -> Vec<Vec<usize>> {
        (0..n).map(|i| vec![(i + n - 1) % n, (i + 1) % n]).collect()
    }

    #[test]
    fn a_ring_evens_out_and_conserves_tokens() {
        for beta in [0.0, 1.0, BETA] {
            let adj = ring(12);
            let mut loads = vec![0u64; 12];
            loads[0] = 1200;
            let moves = rounds(&adj, &[1; 12], &mut loads, 600, beta);
            assert_eq!(loads.iter().sum::<u64>(), 1200, "no token lost or made (β {beta})");
            // Diffusing tokens leaves neighbours within a token; the flow
            // mode rounds each link's flow down, a token or two per node.
            let slack = if beta >= 1.0 { 3 } else { 1 };
            for i in 0..12 {
                assert!(loads[i].abs_diff(loads[(i + 1) % 12]) <= slack, "β {beta}: {loads:?}");
            }
            if beta >= 1.0 {
                // The least-squares flow on a ring is the shortest-path one:
                // 100 tokens to each node at 1..5 hops each way and 6.
                let least = 100 * (2 * 15 + 6);
                assert!(moves <= least + least / 20, "β {beta}: {moves} moves against {least}");
            }
        }
    }

    #[test]
    fn the_flow_mode_is_faster_than_diffusing_tokens() {
        // A ring of 16: slow to mix, where second order pays.
        let adj = ring(16);
        let spread = |beta: f64| {
            let mut loads = vec![0u64; 16];
            loads[0] = 1600;
            let mut net = Net::new(adj.clone(), &[1; 16], loads, beta);
            (1..=400u32)
                .find(|_| {
                    net.round();
                    *net.loads.iter().max().expect("loads") <= 105
                })
                .unwrap_or_else(|| panic!("β {beta}: {:?}", net.loads))
        };
        let (flow, tokens) = (spread(BETA), spread(0.0));
        assert!(flow < 400 && flow < tokens, "flow mode {flow} rounds, tokens diffusing {tokens}");
    }

    #[test]
    fn work_goes_in_proportion_to_capacity() {
        // A complete graph of six nodes: capacities 1, 2, 4, 1, 2, 4.
        let adj: Vec<Vec<usize>> = (0..6).map(|i| (0..6).filter(|&j| j != i).collect()).collect();
        let caps = [1, 2, 4, 1, 2, 4];
        for beta in [0.0, BETA] {
            let mut loads = vec![0u64; 6];
            loads[0] = 14_000;
            rounds(&adj, &caps, &mut loads, 100, beta);
            for (l, c) in loads.iter().zip(caps) {
                let share = *l as f64 / (1000.0 * f64::from(c));
                assert!((share - 1.0).abs() < 0.01, "load {l} for capacity {c} (β {beta}): {loads:?}");
            }
        }
    }

    #[test]
    fn no_node_sends_more_than_it_holds_or_past_a_neighbour() {
        let report = |load: u64| Report { load, cap: 1, degree: 6, virt: load as f64 };
        let mut b: Balancer<u8> = Balancer::new(1).with_beta(0.0);
        for k in 1..=6u8 {
            b.on_report(k, report(0));
        }
        let out = b.plan(7, &[1, 2, 3, 4, 5, 6]);
        assert!(out.iter().all(|(_, n)| *n <= 3), "never past the pair's even split: {out:?}");
        assert!(!out.is_empty(), "lower neighbours get some");
        // A neighbour one token below is left alone (a move would swap them).
        let mut b: Balancer<u8> = Balancer::new(1).with_beta(0.0);
        b.on_report(1, report(9));
        for _ in 0..10 {
            assert!(b.plan(10, &[1]).is_empty());
        }
    }

    #[test]
    fn tokens_wait_for_the_flow_to_settle() {
        let mut b: Balancer<u8> = Balancer::new(1);
        b.on_report(1, Report { load: 0, cap: 1, degree: 1, virt: 0.0 });
        // First round: the flow is α·100 = 50, far from settled.
        assert!(b.plan(100, &[1]).is_empty());
        // The neighbour's flow load follows; once the link's flow changes
        // by under a token a round, the summed flow's tokens go at once.
        let mut sent = 0;
        for _ in 0..30 {
            let v = 100.0 - b.report(100 - sent, &[1]).virt;
            b.on_report(1, Report { load: sent, cap: 1, degree: 1, virt: v });
            sent += b.plan(100 - sent, &[1]).iter().map(|o| o.1).sum::<u64>();
        }
        assert!((49..=50).contains(&sent), "half of it, once: {sent}");
    }

    #[test]
    fn lying_reports_are_clamped() {
        let mut b: Balancer<u8> = Balancer::new(0).with_beta(0.0);
        assert_eq!(b.cap(), 1);
        b.on_report(1, Report { load: 0, cap: u32::MAX, degree: 0, virt: f64::NAN });
        assert_eq!(b.peer(&1), Some(Report { load: 0, cap: MAX_CAP, degree: 1, virt: 0.0 }));
        let out = b.plan(100, &[1]);
        assert!(out.iter().all(|(_, n)| *n <= 50), "at most half to a single neighbour: {out:?}");
        b.forget(&1);
        assert!(b.plan(100, &[1]).is_empty(), "no report, no send");
        // In flow mode a flow load that is not a number counts as the
        // tokens reported, and a huge one is clamped: the sums stay finite.
        let mut b: Balancer<u8> = Balancer::new(1);
        b.on_report(1, Report { load: 7, cap: 1, degree: 1, virt: f64::INFINITY });
        assert_eq!(b.peer(&1).map(|r| r.virt), Some(7.0));
        for _ in 0..50 {
            b.on_report(1, Report { load: 0, cap: 1, degree: 1, virt: -1e300 });
            let out = b.plan(10, &[1]);
            assert!(out.iter().map(|o| o.1).sum::<u64>() <= 10);
            let r = b.report(10, &[1]);
            assert!(r.virt.is_finite() && r.virt.abs() <= MAX_VIRT, "{r:?}");
        }
    }
}
