//! The alerts scenario: faults injected for a long virtual time, and every
//! notification checked against them.
//!
//! After the join, a share `--anomalous` of the nodes turns slow (its ticks
//! and inbound datagrams delayed by up to `--slow-ms`) or lossy (it drops
//! `--lossy-rate` of its datagrams, in and out), half each, for the whole
//! run. Every `--stall-s` seconds a new batch of `--stalled` of the other
//! nodes is stopped for `--stall-s` (SIGSTOP: 2 % at 20 s is the target's
//! "2 % of nodes CPU-stalled for 20 s at a time"), on top of `--loss`.
//!
//! Every node any incident names is a claim, checked against the faults:
//! - a death (`nodes_down`) is true if the node was stopped (or stopping)
//!   within [`GRACE`] of being named, or is slow or lossy (counted apart:
//!   its neighbours' failure detector gave up on a faulty node);
//! - an anomaly is true if the node was given that anomaly.
//!
//! A claim about a node given no fault near that time is a false alert.
//! The anomalies' precision is true claims over all anomaly claims; their
//! recall, the anomalous nodes named with their anomaly over all of them.
//! A false claim, a second notification of one incident or an incident
//! still firing after the quiet end is a violation (a seed sweep fails on
//! it).

use crate::sim::{Sim, Violation};
use ryx_core::anomaly::Anomaly;
use ryx_core::node::incident::NODES_DOWN;
use ryx_core::{NodeId, Time};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A death named this long after the stop ended still counts as the stop's.
const GRACE: Duration = Duration::from_secs(60);
/// Quiet time at the end: no new stops and the slow and lossy nodes
/// healed, for the last incidents to resolve.
const QUIET: Duration = Duration::from_secs(90);

/// The alerts scenario's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AlertsReport {
    /// Virtual minutes run (the quiet end included).
    pub minutes: f64,
    /// Stops injected.
    pub stops: usize,
    /// Nodes given an anomaly.
    pub slow: usize,
    /// See `slow`.
    pub lossy: usize,
    /// Notifications (raised and resolved), by kind.
    pub notifications: BTreeMap<String, usize>,
    /// Incidents of deaths raised.
    pub down_incidents: usize,
    /// Stops whose node an incident named dead (a 20 s stop is a death to
    /// the neighbours).
    pub stops_named: usize,
    /// Claims that a slow or lossy node is dead (its neighbours' failure
    /// detector gave up on it).
    pub anomalous_named_dead: usize,
    /// Notifications beyond one raise and one end per incident (two
    /// leaders notifying the same incident).
    pub duplicate_notifications: usize,
    /// Incidents any live node holds firing at the end (after the quiet
    /// time, the faulty nodes healed), by kind.
    pub firing_at_end: BTreeMap<String, usize>,
    /// Claims about a node given no fault near that time.
    pub false_claims: usize,
    /// Notifications whose incident named such a node when raised.
    pub false_notifications: usize,
    /// The first few false claims: kind, node, virtual seconds.
    pub false_examples: Vec<String>,
    /// Anomaly claims (node, kind).
    pub anomaly_claims: usize,
    /// Of those, true.
    pub true_anomaly_claims: usize,
    /// True over all anomaly claims.
    pub precision: Option<f64>,
    /// Anomalous nodes named with their anomaly, over all of them.
    pub recall: Option<f64>,
    /// Seconds from the start of the faults to an anomalous node's first
    /// naming: median and largest.
    pub detect_p50_s: Option<f64>,
    /// See `detect_p50_s`.
    pub detect_max_s: Option<f64>,
}

/// Runs the scenario on a joined network.
pub(crate) fn alerts_phase(sim: &mut Sim) -> Result<AlertsReport, Violation> {
    let p = sim.p.clone();
    let mut live = sim.live_slots();
    sim.ctl.shuffle(&mut live);
    let n_odd = if p.anomalous > 0.0 { ((live.len() as f64 * p.anomalous).round() as usize).max(1) } else { 0 };
    let mut given: BTreeMap<NodeId, Anomaly> = BTreeMap::new();
    for (i, s) in live.iter().take(n_odd).enumerate() {
        let a = if i % 2 == 0 { Anomaly::Slow } else { Anomaly::Lossy };
        match a {
            Anomaly::Slow => sim.set_faults(*s, true, 0.0),
            Anomaly::Lossy => sim.set_faults(*s, false, p.lossy_rate),
        }
        given.insert(sim.id_of(*s), a);
    }
    let others: Vec<usize> = live[n_odd.min(live.len())..].to_vec();
    let t0 = sim.now();
    let n0 = sim.notes.len();
    let claims0: BTreeSet<String> = sim.claims.keys().cloned().collect();
    let stall = Duration::from_secs(p.stall_s.max(1));
    let per_batch = (sim.p.nodes as f64 * p.stalled).round() as usize;
    let end = t0.plus(Duration::from_secs_f64(p.minutes.max(0.0) * 60.0));
    let mut stops: BTreeMap<NodeId, Vec<(Time, Time)>> = BTreeMap::new();
    let mut n_stops = 0;
    while sim.now() < end {
        let now = sim.now();
        if per_batch > 0 {
            let mut pool = others.clone();
            sim.ctl.shuffle(&mut pool);
            for s in pool.into_iter().take(per_batch) {
                sim.pause(s, stall);
                stops.entry(sim.id_of(s)).or_default().push((now, now.plus(stall)));
                n_stops += 1;
            }
        }
        sim.run_for(stall.min(Duration::from_micros(end.since(now).as_micros() as u64)).max(Duration::from_millis(1)))?;
    }
    for s in live.iter().take(n_odd) {
        sim.set_faults(*s, false, 0.0);
    }
    sim.run_for(QUIET)?;
    let mut r = AlertsReport {
        minutes: sim.now().since(t0).as_secs_f64() / 60.0,
        stops: n_stops,
        slow: given.values().filter(|a| **a == Anomaly::Slow).count(),
        lossy: given.values().filter(|a| **a == Anomaly::Lossy).count(),
        ..Default::default()
    };
    let stopped_near =
        |id: &NodeId, t: Time| stops.get(id).is_some_and(|w| w.iter().any(|(a, b)| *a <= t && t <= b.plus(GRACE)));
    // A slow or lossy node its neighbours take for dead is a faulty node,
    // if not the fault's name: true, and counted apart.
    let is_true = |kind: &str, id: &NodeId, t: Time| match Anomaly::of_kind(kind) {
        None => kind == NODES_DOWN && (stopped_near(id, t) || given.contains_key(id)),
        Some(a) => given.get(id) == Some(&a),
    };
    let mut named_odd: BTreeMap<NodeId, Time> = BTreeMap::new();
    let mut named_dead: BTreeMap<NodeId, Vec<Time>> = BTreeMap::new();
    for (_, (kind, members)) in sim.claims.iter().filter(|(id, _)| !claims0.contains(*id)) {
        for (m, t) in members {
            let ok = is_true(kind, m, *t);
            if !ok {
                r.false_claims += 1;
                if r.false_examples.len() < 10 {
                    let near: Vec<String> = stops
                        .get(m)
                        .into_iter()
                        .flatten()
                        .map(|(a, b)| format!("{:.0}-{:.0} s", a.since(t0).as_secs_f64(), b.since(t0).as_secs_f64()))
                        .collect();
                    r.false_examples.push(format!(
                        "{kind} {m} at {:.1} s (stopped: {}; given: {})",
                        t.since(t0).as_secs_f64(),
                        if near.is_empty() { "never".into() } else { near.join(", ") },
                        given.get(m).map_or("nothing", |a| a.word())
                    ));
                }
            }
            if Anomaly::of_kind(kind).is_some() {
                r.anomaly_claims += 1;
                if ok {
                    r.true_anomaly_claims += 1;
                    let first = named_odd.entry(*m).or_insert(*t);
                    *first = (*first).min(*t);
                }
            } else {
                named_dead.entry(*m).or_default().push(*t);
            }
            if kind == NODES_DOWN && given.contains_key(m) && !stopped_near(m, *t) {
                r.anomalous_named_dead += 1;
            }
        }
    }
    r.stops_named = stops
        .iter()
        .map(|(id, w)| {
            let named = named_dead.get(id).map_or(&[][..], |v| v.as_slice());
            w.iter().filter(|(a, b)| named.iter().any(|t| a <= t && *t <= b.plus(GRACE))).count()
        })
        .sum();
    let mut per: BTreeMap<(String, bool), usize> = BTreeMap::new();
    for (_, _, i) in &sim.notes[n0..] {
        *per.entry((format!("{}@{}", i.id, i.started_ms), i.state == "firing")).or_default() += 1;
    }
    r.duplicate_notifications = per.values().map(|n| n - 1).sum();
    for (_, _, i) in &sim.notes[n0..] {
        *r.notifications.entry(i.kind.clone()).or_default() += 1;
        if i.state == "firing" {
            if i.kind == NODES_DOWN {
                r.down_incidents += 1;
            }
            let at = sim.claims.get(&format!("{}@{}", i.id, i.started_ms)).map(|c| &c.1);
            if i.members.iter().any(|m| !is_true(&i.kind, m, at.and_then(|c| c.get(m)).copied().unwrap_or(t0))) {
                r.false_notifications += 1;
            }
        }
    }
    let mut firing: BTreeMap<String, String> = BTreeMap::new();
    for n in sim.live_slots().into_iter().filter_map(|s| sim.node(s)) {
        for i in n.held_incidents().into_iter().filter(|i| i.state == "firing") {
            firing.insert(i.id, i.kind);
        }
    }
    for kind in firing.into_values() {
        *r.firing_at_end.entry(kind).or_default() += 1;
    }
    r.precision = (r.anomaly_claims > 0).then(|| r.true_anomaly_claims as f64 / r.anomaly_claims as f64);
    r.recall = (!given.is_empty()).then(|| named_odd.len() as f64 / given.len() as f64);
    let mut d: Vec<f64> = named_odd.values().map(|t| t.since(t0).as_secs_f64()).collect();
    d.sort_by(f64::total_cmp);
    r.detect_p50_s = d.get(d.len() / 2).copied();
    r.detect_max_s = d.last().copied();
    // What the network must never do, whatever the faults: accuse a
    // healthy node, notify an incident twice, leave one firing once every
    // node is back and healed.
    if r.false_claims > 0 || r.duplicate_notifications > 0 || !r.firing_at_end.is_empty() {
        return Err(sim.violation(
            None,
            format!(
                "alerting: {} false claims {:?}, {} duplicate notifications, firing at the end {:?}",
                r.false_claims, r.false_examples, r.duplicate_notifications, r.firing_at_end
            ),
        ));
    }
    Ok(r)
}
