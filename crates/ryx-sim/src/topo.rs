//! The topology scenario: how the real core's links and network coordinates
//! settle on a latency map (`--sites` data centres, or the unit square).
//!
//! Every ten virtual seconds: the coordinates' median relative error
//! against the map's base round trips (over every pair, or 20,000 random
//! pairs in large networks), the mean base round trip of the links (short
//! ones and all) against that of random pairs — what random links would
//! give — and the links formed so far. At the end: the diameter (BFS from
//! every node, or 200 in large networks), the links formed per node per
//! minute over the second half of the run, and the share of links inside a
//! site.

use crate::sim::{Sim, Violation};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// One checkpoint.
#[derive(Clone, Debug, Serialize)]
pub struct TopoPoint {
    /// Virtual seconds since the scenario began.
    pub at_s: f64,
    /// Median relative error of the coordinates' predicted round trips.
    pub coord_err_median: Option<f64>,
    /// The same, 90th percentile.
    pub coord_err_p90: Option<f64>,
    /// Median of the samples each node's coordinate has taken.
    pub samples_median: u64,
    /// Mean base round trip of the short links, ms.
    pub short_rtt_ms: f64,
    /// Mean base round trip of all links, ms.
    pub link_rtt_ms: f64,
    /// Share of links inside a site (with `--sites`).
    pub inside_site: Option<f64>,
    /// Share of the random long links inside a site (with `--sites`).
    pub long_inside_site: Option<f64>,
    /// Random long links per node.
    pub long_per_node: f64,
    /// Links formed so far (every node's count, summed).
    pub links_up: u64,
}

/// The topology scenario's report.
#[derive(Clone, Debug, Serialize)]
pub struct TopologyReport {
    /// Data centres of the map (0: the unit square).
    pub sites: usize,
    /// Mean base round trip between random pairs, ms: random links' mean.
    pub random_rtt_ms: f64,
    /// Checkpoints, every ten seconds.
    pub points: Vec<TopoPoint>,
    /// The links' mean round trip at the end against random pairs'
    /// (1 − ratio: how much lower).
    pub link_rtt_reduction: f64,
    /// Longest shortest path (hops) among live nodes at the end.
    pub diameter: usize,
    /// 2·log₅ N, the bound the diameter is held to.
    pub diameter_bound: f64,
    /// Whether the live nodes form one network at the end.
    pub connected: bool,
    /// Links formed per node per minute over the second half of the run.
    pub link_churn_per_node_min: f64,
    /// Coordinate samples refused over the run (all nodes).
    pub coords_refused: u64,
    /// Coordinate samples taken as outliers (all nodes), and all samples
    /// that moved a coordinate.
    pub coords_outliers: u64,
    /// Samples that moved a coordinate (all nodes).
    pub coords_used: u64,
}

fn base_rtt_ms(sim: &Sim, a: usize, b: usize) -> f64 {
    2.0 * sim.network().base_us(a, b) / 1000.0
}

fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[((v.len() - 1) as f64 * q).round() as usize])
}

/// Slot pairs to measure: all of them in small networks, else a seeded
/// sample.
fn pairs(sim: &mut Sim, live: &[usize]) -> Vec<(usize, usize)> {
    let n = live.len();
    if n * n <= 40_000 {
        let mut v = Vec::new();
        for (i, &a) in live.iter().enumerate() {
            for &b in &live[i + 1..] {
                v.push((a, b));
            }
        }
        return v;
    }
    (0..20_000)
        .map(|_| {
            let a = sim.ctl.below(n);
            let b = (a + 1 + sim.ctl.below(n - 1)) % n;
            (live[a], live[b])
        })
        .collect()
}

fn links_up(sim: &Sim, live: &[usize]) -> u64 {
    live.iter().filter_map(|&s| sim.node(s)).map(|n| n.metrics().links_up).sum()
}

fn point(sim: &mut Sim, at_s: f64, live: &[usize], sample: &[(usize, usize)]) -> TopoPoint {
    let mut errs = Vec::new();
    for &(a, b) in sample {
        let (Some(na), Some(nb)) = (sim.node(a), sim.node(b)) else { continue };
        if let (Some(ca), Some(cb)) = (na.coord(), nb.coord()) {
            let truth = base_rtt_ms(sim, a, b);
            errs.push((ca.rtt_ms(&cb) - truth).abs() / truth);
        }
    }
    let mut samples: Vec<f64> =
        live.iter().filter_map(|&s| sim.node(s)).map(|n| n.coord().map_or(0.0, |_| n.coord_samples() as f64)).collect();
    let now = sim.now();
    let (mut short, mut short_n, mut all, mut all_n, mut inside) = (0.0, 0usize, 0.0, 0usize, 0usize);
    let (mut long_n, mut long_inside) = (0usize, 0usize);
    for &s in live {
        let Some(n) = sim.node(s) else { continue };
        for nb in n.neighbors(now) {
            let Some(t) = sim.slot_of(&nb.node_id) else { continue };
            let r = base_rtt_ms(sim, s, t);
            all += r;
            all_n += 1;
            if !nb.long {
                short += r;
                short_n += 1;
            }
            let same = sim.network().site(s).is_some() && sim.network().site(s) == sim.network().site(t);
            if same {
                inside += 1;
            }
            if nb.long {
                long_n += 1;
                long_inside += usize::from(same);
            }
        }
    }
    TopoPoint {
        at_s,
        coord_err_median: quantile(&mut errs, 0.5),
        coord_err_p90: quantile(&mut errs, 0.9),
        samples_median: quantile(&mut samples, 0.5).unwrap_or(0.0) as u64,
        short_rtt_ms: short / short_n.max(1) as f64,
        link_rtt_ms: all / all_n.max(1) as f64,
        inside_site: sim.network().site(0).map(|_| inside as f64 / all_n.max(1) as f64),
        long_inside_site: sim.network().site(0).map(|_| long_inside as f64 / long_n.max(1) as f64),
        long_per_node: long_n as f64 / live.len().max(1) as f64,
        links_up: links_up(sim, live),
    }
}

/// Longest shortest path from up to 200 sources over the live links.
fn diameter(sim: &mut Sim, live: &[usize]) -> usize {
    let now = sim.now();
    let adj: BTreeMap<usize, Vec<usize>> = live
        .iter()
        .map(|&s| {
            let l = sim
                .node(s)
                .map(|n| n.neighbors(now).iter().filter_map(|nb| sim.slot_of(&nb.node_id)).collect())
                .unwrap_or_default();
            (s, l)
        })
        .collect();
    let sources: Vec<usize> =
        if live.len() <= 200 { live.to_vec() } else { (0..200).map(|_| live[sim.ctl.below(live.len())]).collect() };
    let mut worst = 0;
    for src in sources {
        let mut dist: BTreeMap<usize, usize> = BTreeMap::from([(src, 0)]);
        let mut q = VecDeque::from([src]);
        while let Some(u) = q.pop_front() {
            let d = dist[&u];
            for &v in adj.get(&u).into_iter().flatten() {
                if let std::collections::btree_map::Entry::Vacant(e) = dist.entry(v) {
                    e.insert(d + 1);
                    q.push_back(v);
                }
            }
        }
        worst = worst.max(dist.values().copied().max().unwrap_or(0));
    }
    worst
}

/// Runs the scenario after join and settle.
pub fn topology_phase(sim: &mut Sim) -> Result<TopologyReport, Violation> {
    let live = sim.live_slots();
    let sample = pairs(sim, &live);
    let mut random: Vec<f64> = sample.iter().map(|&(a, b)| base_rtt_ms(sim, a, b)).collect();
    let random_rtt_ms = random.iter().sum::<f64>() / random.len().max(1) as f64;
    random.clear();
    let total = Duration::from_secs_f64((sim.p.minutes * 60.0).max(10.0));
    let step = Duration::from_secs(10);
    let mut points = vec![point(sim, 0.0, &live, &sample)];
    let mut elapsed = Duration::ZERO;
    let mut half_mark: Option<(Duration, u64)> = None;
    while elapsed < total {
        sim.run_for(step)?;
        elapsed += step;
        points.push(point(sim, elapsed.as_secs_f64(), &live, &sample));
        if half_mark.is_none() && elapsed >= total / 2 {
            half_mark = Some((elapsed, links_up(sim, &live)));
        }
    }
    let (half_at, half_links) = half_mark.unwrap_or((Duration::ZERO, 0));
    let minutes = (elapsed - half_at).as_secs_f64() / 60.0;
    let churn = (links_up(sim, &live) - half_links) as f64 / live.len().max(1) as f64 / minutes.max(1e-9);
    let last = points.last().cloned().expect("a point");
    let connected = sim.connected();
    Ok(TopologyReport {
        sites: sim.p.sites,
        random_rtt_ms,
        link_rtt_reduction: 1.0 - last.link_rtt_ms / random_rtt_ms.max(1e-9),
        diameter: diameter(sim, &live),
        diameter_bound: 2.0 * (live.len().max(2) as f64).ln() / 5f64.ln(),
        connected,
        link_churn_per_node_min: churn,
        coords_refused: live.iter().filter_map(|&s| sim.node(s)).map(|n| n.metrics().coords_refused).sum(),
        coords_outliers: live.iter().filter_map(|&s| sim.node(s)).map(|n| n.metrics().coords_outliers).sum(),
        coords_used: live.iter().filter_map(|&s| sim.node(s)).map(|n| n.coord_samples()).sum(),
        points,
    })
}
