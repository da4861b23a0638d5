//! The monitor scenario: network-wide aggregation (`ryx_core::agg`, by
//! rounds with the neighbours) at thousands of nodes. After the join,
//! every node is given a health sample (its `cpu` drawn from a seeded
//! uniform distribution of mean 1, its `lag_ms` from a log-uniform one, its
//! `rack` label one of `--racks`); then, round after round (one
//! `aggregate_interval` of virtual time each), the driver reads every live
//! node's estimate of the mean `cpu` and of the node count against the
//! truth over the live nodes, and the sum of the estimates against the sum
//! of the inputs (mass conservation). With `--churn F`, a fraction F of
//! the nodes crash over the first half of the rounds and as many new ones
//! join (given samples of their own); with `--loss`, every datagram may be
//! lost.

use crate::sim::{Sim, Violation};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// One round's figures.
#[derive(Clone, Debug, Serialize)]
pub struct RoundFigures {
    /// Rounds since the samples were given.
    pub round: u32,
    /// Live nodes.
    pub live: usize,
    /// Largest relative error of any live node's mean `cpu`.
    pub max_err: f64,
    /// Median relative error.
    pub p50_err: f64,
    /// 99th-percentile relative error.
    pub p99_err: f64,
    /// Largest relative error of any node's count of the nodes.
    pub count_max_err: f64,
    /// |Σ estimates − Σ inputs| / Σ inputs over the live nodes.
    pub mass_err: f64,
    /// Largest error estimate a node reported, relative to its value.
    pub max_reported_err: f64,
}

/// The monitor scenario's report.
#[derive(Clone, Debug, Serialize)]
pub struct MonitorReport {
    /// Every round.
    pub rounds: Vec<RoundFigures>,
    /// First round after which every live node's mean is within 1e-3.
    pub rounds_to_1e3: Option<u32>,
    /// First round after which every live node's mean is within 1 %.
    pub rounds_to_1pct: Option<u32>,
    /// Nodes crashed and started during the rounds.
    pub churned: usize,
    /// `agg` bytes sent per node per round (encoded, as on the wire).
    pub agg_bytes_per_node_round: f64,
    /// `agg` messages per node per round.
    pub agg_msgs_per_node_round: f64,
    /// A label value's count at the end: (value, true, largest error of
    /// any node's estimate).
    pub group_count: Option<(String, usize, f64)>,
    /// One rack killed (with `--racks` > 0).
    pub incident: Option<IncidentFigures>,
    /// |Σ estimates − Σ inputs| / Σ inputs once the last rounds' exchanges
    /// have landed (no node pushing for one interval).
    pub settled_mass_err: f64,
    /// Median across nodes of the network median `lag_ms` (sketch) against
    /// the true median: relative error.
    pub p50_sketch_err: f64,
}

/// The incident phase: one rack (5 % of the nodes at 20 racks) killed at
/// once.
#[derive(Clone, Debug, Serialize)]
pub struct IncidentFigures {
    /// The rack killed, and how many of its nodes.
    pub group: String,
    /// Nodes killed.
    pub killed: usize,
    /// Whether the tree's leader was among them (a new one takes over
    /// after `LEADER_SILENCE`).
    pub leader_killed: bool,
    /// Notifications before the kill (churn's deaths, false verdicts).
    pub earlier_notifications: usize,
    /// Whether the rack's incident was firing already (nodes of it died
    /// before, in the churn): the new deaths join it, with no new
    /// notification.
    pub already_firing: bool,
    /// Notifications of the rack's incident (1 is right).
    pub notifications: usize,
    /// Notifications of any other incident (0 is right).
    pub other_notifications: usize,
    /// Members the incident names when raised.
    pub members: usize,
    /// Nodes it counts at the end of the phase (later deaths join it; it
    /// lists the first 200).
    pub final_members: usize,
    /// Milliseconds from the kill to the notification.
    pub raised_ms: Option<f64>,
    /// The failure detector's time to a verdict (`suspect_after` +
    /// `confirm_after`), milliseconds.
    pub suspicion_ms: f64,
    /// Live nodes that named the incident within the phase, of all live.
    pub named: usize,
    /// Live nodes.
    pub live: usize,
}

/// Kills one rack at once; counts the notifications and who names the
/// incident. A run that does not end with exactly one notification of the
/// rack's incident and none other, or raises it later than twice the
/// detection time (more the leader's silence if the leader was killed),
/// is a violation: a seed sweep (`--seeds 1..100`) counts them.
pub(crate) fn incident_phase(sim: &mut Sim) -> Result<IncidentFigures, Violation> {
    let racks = sim.p.racks.max(1);
    let rack = format!("r{}", sim.ctl.below(racks));
    let victims: Vec<usize> =
        sim.live_slots().into_iter().filter(|s| sim.label_of(*s) == Some(rack.as_str())).collect();
    let leader = sim
        .live_slots()
        .into_iter()
        .filter_map(|s| sim.node(s))
        .filter_map(|n| n.tree_place())
        .map(|(a, _)| a.leader)
        .min();
    let leader_killed = victims.iter().any(|s| Some(sim.id_of(*s)) == leader);
    let cfg = sim.node_config().clone();
    let suspicion = cfg.suspect_after + cfg.confirm_after;
    let n0 = sim.notes.len();
    let group = format!("rack={rack}");
    let firing_before = |sim: &Sim| {
        sim.live_slots().into_iter().filter_map(|s| sim.node(s)).find_map(|n| {
            n.held_incidents().into_iter().find(|i| i.group == group && i.state == "firing").map(|i| i.id)
        })
    };
    let before = firing_before(sim);
    sim.crash_many(&victims);
    let t0 = sim.now();
    let deadline = t0.plus(Duration::from_secs(20));
    let g = group.clone();
    let victim_ids: Vec<ryx_core::NodeId> = victims.iter().map(|s| sim.id_of(*s)).collect();
    let old = before.clone();
    sim.run_until(deadline, Some(Duration::from_millis(10)), |s| {
        s.notes[n0..].iter().any(|(_, _, i)| i.group == g)
            || old.as_ref().is_some_and(|id| {
                s.live_slots().into_iter().filter_map(|x| s.node(x)).take(1).any(|n| {
                    n.held_incidents().iter().any(|i| &i.id == id && victim_ids.iter().all(|v| i.members.contains(v)))
                })
            })
    })?;
    // Time for duplicates, for the last deaths to join (their observers'
    // paths up the tree may have run through the dead), and for every node
    // to hear of it.
    sim.run_for(Duration::from_secs(10))?;
    let notes: Vec<_> = sim.notes[n0..].to_vec();
    let mine: Vec<_> = notes.iter().filter(|(_, _, i)| i.group == group).collect();
    let live = sim.live_slots().len();
    let f = IncidentFigures {
        group: group.clone(),
        killed: victims.len(),
        leader_killed,
        earlier_notifications: n0,
        already_firing: before.is_some(),
        notifications: mine.len(),
        other_notifications: notes.len() - mine.len(),
        members: mine.first().map_or(0, |(_, _, i)| i.count),
        final_members: {
            let id = mine.first().map(|(_, _, i)| i.id.clone()).or(before.clone());
            sim.live_slots()
                .into_iter()
                .filter_map(|s| sim.node(s))
                .find_map(|n| n.held_incidents().into_iter().find(|h| Some(&h.id) == id.as_ref()))
                .map_or(0, |h| h.count)
        },
        raised_ms: mine.first().map(|(t, _, _)| t.since(t0).as_secs_f64() * 1e3),
        suspicion_ms: suspicion.as_secs_f64() * 1e3,
        // The nodes that emitted the incident, the one that raised it too.
        named: mine.first().map_or(0, |(_, by, i)| {
            let mut s = sim.named.get(&i.id).cloned().unwrap_or_default();
            s.insert(*by);
            s.iter().filter(|x| sim.is_alive(**x)).count()
        }),
        live,
    };
    let bound = 2.0 * f.suspicion_ms
        + if leader_killed {
            (ryx_core::node::tree_leader_silence() + ryx_core::node::incident::LEAD_SETTLE).as_secs_f64() * 1e3
                + 2_000.0
        } else {
            0.0
        };
    let fresh_ok = f.notifications == 1 && f.raised_ms.is_some_and(|t| t <= bound);
    let joined_ok = f.already_firing && f.notifications == 0 && f.final_members == f.killed;
    if !(fresh_ok || joined_ok) || f.other_notifications != 0 {
        return Err(sim.violation(None, format!("incident: {f:?} (raised by {bound} ms expected)")));
    }
    Ok(f)
}

/// The sample slot `s` reports.
fn sample(sim: &mut Sim) -> BTreeMap<String, f64> {
    let cpu = 0.05 + 1.9 * sim.ctl.unit();
    let lag = 10f64.powf(-1.0 + 3.0 * sim.ctl.unit());
    BTreeMap::from([("cpu".to_string(), cpu), ("lag_ms".to_string(), lag)])
}

fn give(sim: &mut Sim, s: usize, inputs: &mut BTreeMap<usize, BTreeMap<String, f64>>) {
    let x = sample(sim);
    if let Some(n) = sim.node_mut(s) {
        n.set_health(&x, &["cpu", "lag_ms"]);
    }
    inputs.insert(s, x);
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

pub(crate) fn monitor_phase(sim: &mut Sim) -> Result<MonitorReport, Violation> {
    let interval = sim.node_config().aggregate_interval;
    let mut inputs: BTreeMap<usize, BTreeMap<String, f64>> = BTreeMap::new();
    for s in sim.live_slots() {
        give(sim, s, &mut inputs);
    }
    let total_rounds = sim.p.rounds.max(1);
    let to_churn = (sim.p.nodes as f64 * sim.p.churn).round() as usize;
    let churn_rounds = (total_rounds / 2).max(1);
    let mut churned = 0;
    let mut rounds = Vec::new();
    let (bytes0, msgs0) = sim.agg_sent();
    for r in 1..=total_rounds {
        // Churn: crash some, start as many new ones, over the first half.
        if (r as usize) <= churn_rounds as usize && to_churn > 0 {
            let due = to_churn * r as usize / churn_rounds as usize - churned;
            let mut live = sim.live_slots();
            sim.ctl.shuffle(&mut live);
            live.truncate(due);
            sim.crash_many(&live);
            for victim in live {
                inputs.remove(&victim);
                sim.restart(victim)?;
                give(sim, victim, &mut inputs);
                churned += 1;
            }
        }
        sim.run_for(interval)?;
        let live = sim.live_slots();
        let truth: f64 = live.iter().filter_map(|s| inputs.get(s).and_then(|x| x.get("cpu"))).sum::<f64>();
        let mean = truth / live.len().max(1) as f64;
        let mut errs = Vec::with_capacity(live.len());
        let mut count_max = 0.0f64;
        let mut mass = 0.0;
        let mut reported = 0.0f64;
        for s in &live {
            let Some(node) = sim.node(*s) else { continue };
            let a = node.aggregator();
            let e = a.estimate("cpu").map_or(0.0, |e| e.value);
            if let Some(est) = a.estimate("cpu") {
                reported = reported.max(est.spread / est.value.abs().max(1e-12));
            }
            mass += e;
            errs.push((e - mean).abs() / mean);
            let n = a.estimate(ryx_core::agg::COUNT).filter(|e| e.value > 0.0).map_or(f64::INFINITY, |e| 1.0 / e.value);
            count_max = count_max.max((n - live.len() as f64).abs() / live.len() as f64);
        }
        let max_err = errs.iter().copied().fold(0.0, f64::max);
        rounds.push(RoundFigures {
            round: r,
            live: live.len(),
            max_err,
            p50_err: quantile(&mut errs.clone(), 0.5),
            p99_err: quantile(&mut errs, 0.99),
            count_max_err: count_max,
            mass_err: (mass - truth).abs() / truth,
            max_reported_err: reported,
        });
    }
    let (bytes1, msgs1) = sim.agg_sent();
    // Let every exchange in flight land, then weigh the network's mass.
    let live = sim.live_slots();
    for s in &live {
        if let Some(n) = sim.node_mut(*s) {
            n.hold_aggregation(true);
        }
    }
    sim.run_for(interval)?;
    let live = sim.live_slots();
    let truth: f64 = live.iter().filter_map(|s| inputs.get(s).and_then(|x| x.get("cpu"))).sum::<f64>();
    let mass: f64 =
        live.iter().filter_map(|s| sim.node(*s)).filter_map(|n| n.aggregator().estimate("cpu")).map(|e| e.value).sum();
    let settled_mass_err = (mass - truth).abs() / truth;
    for s in &live {
        if let Some(n) = sim.node_mut(*s) {
            n.hold_aggregation(false);
        }
    }
    let per = (sim.live_slots().len() as f64 * f64::from(total_rounds)).max(1.0);
    let settled = |limit: f64| {
        let last_bad = rounds.iter().rposition(|f| f.max_err > limit);
        match last_bad {
            None => rounds.first().map(|f| f.round),
            Some(i) => rounds.get(i + 1).map(|f| f.round),
        }
    };
    // One rack's count, as every node sees it.
    let live = sim.live_slots();
    let rack = "r0".to_string();
    let members = live.iter().filter(|s| sim.label_of(**s) == Some(rack.as_str())).count();
    let mut group_err = 0.0f64;
    let mut sketch = Vec::new();
    let mut lags: Vec<f64> = live.iter().filter_map(|s| inputs.get(s).and_then(|x| x.get("lag_ms")).copied()).collect();
    let true_p50 = quantile(&mut lags, 0.5);
    for s in &live {
        let Some(node) = sim.node(*s) else { continue };
        let v = node.aggregates();
        let got = v.groups.get("rack").and_then(|g| g.get(&rack)).and_then(|g| g.count).unwrap_or(0.0);
        group_err = group_err.max((got - members as f64).abs() / (members.max(1) as f64));
        if let Some(p) = v.metrics.get("lag_ms").and_then(|m| m.p50) {
            sketch.push((p - true_p50).abs() / true_p50);
        }
    }
    Ok(MonitorReport {
        rounds_to_1e3: settled(1e-3),
        rounds_to_1pct: settled(1e-2),
        rounds,
        churned,
        agg_bytes_per_node_round: (bytes1 - bytes0) as f64 / per,
        agg_msgs_per_node_round: (msgs1 - msgs0) as f64 / per,
        group_count: sim.p.racks.gt(&0).then_some((rack, members, group_err)),
        settled_mass_err,
        incident: if sim.p.racks > 0 { Some(incident_phase(sim)?) } else { None },
        p50_sketch_err: quantile(&mut sketch, 0.5),
    })
}
