//! Self-monitoring: this node's health, averaged with the whole network's
//! by rounds with its neighbours (`crate::agg`), and what the network
//! looks like from here (`Node::aggregates`).

use super::*;
use crate::agg::{self, AggMsg, Aggregator};

/// Metrics whose means are also kept per label value.
pub const GROUP_METRICS: &[&str] = &["lag_ms"];
/// Metrics whose quantiles are kept (a sketch of the network's values).
pub const SKETCH_METRICS: &[&str] = &["lag_ms"];

/// A metric's figures across the network, as seen from one node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricView {
    /// Mean over the nodes.
    pub mean: f64,
    /// Sum over the nodes (mean × count), when the count is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    /// The mean's error estimate: how far the neighbours' estimates are
    /// from this node's (absolute).
    pub error: f64,
    /// Largest and smallest value of any node (within the extremes' TTL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// See `max`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Quantiles 0.5, 0.9, 0.99 from the network's sketch (±10 %).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    /// See `p50`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90: Option<f64>,
    /// See `p50`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
}

/// One label value's nodes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupView {
    /// Nodes carrying the value.
    pub count: Option<f64>,
    /// Their share of the network.
    pub share: f64,
    /// Means of `GROUP_METRICS` over them.
    pub metrics: BTreeMap<String, f64>,
}

/// The network's aggregates as this node sees them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AggregatesView {
    /// Rounds run here.
    pub rounds: u64,
    /// Milliseconds since the last round.
    pub age_ms: u64,
    /// Round interval, milliseconds.
    pub interval_ms: u64,
    /// Nodes in the network (1 / the mean of the leader's indicator).
    pub count: Option<f64>,
    /// The count's relative error estimate.
    pub count_error: Option<f64>,
    /// Per metric.
    pub metrics: BTreeMap<String, MetricView>,
    /// Per label, per value.
    pub groups: BTreeMap<String, BTreeMap<String, GroupView>>,
}

impl Node {
    /// This node's latest health sample (metric → value): its share of
    /// the network's aggregates from the next round on; `extremes` names
    /// the metrics whose network-wide min and max are kept.
    pub fn set_health(&mut self, sample: &BTreeMap<String, f64>, extremes: &[&str]) {
        let mut means = BTreeMap::new();
        for (m, x) in sample {
            if !x.is_finite() {
                continue;
            }
            means.insert(m.clone(), *x);
            if SKETCH_METRICS.contains(&m.as_str()) {
                means.insert(agg::bucket_key(m, agg::bucket(*x)), 1.0);
            }
        }
        for (k, v) in &self.cfg.labels {
            means.insert(agg::group_key(agg::COUNT, k, v), 1.0);
            for m in GROUP_METRICS {
                if let Some(x) = sample.get(*m).filter(|x| x.is_finite()) {
                    means.insert(agg::group_key(m, k, v), *x);
                }
            }
        }
        let x = sample.iter().filter(|(k, _)| extremes.contains(&k.as_str())).map(|(k, v)| (k.clone(), *v)).collect();
        self.agg.set_inputs(means, x);
    }

    /// Stops (or resumes) this node starting exchanges; it still answers
    /// others'. The simulator holds every node to let the exchanges in
    /// flight land, then checks that the network's mass is its inputs.
    pub fn hold_aggregation(&mut self, hold: bool) {
        self.agg_held = hold;
    }

    /// One round of aggregation: a push to one neighbour.
    pub(super) fn aggregate_round(&mut self) {
        let now = self.now;
        let next = now.plus(self.jittered(self.cfg.aggregate_interval));
        self.timers.set(Timer::Aggregate, next);
        if self.agg_held {
            return;
        }
        self.settle_tree();
        // Only the leader inputs the count's 1, and a node that is its own
        // root for a moment (every neighbour names it its parent while the
        // tree re-routes) while it still hears a lesser leader is not one:
        // its 1 would be averaged away for a round or two and then taken
        // back, leaving estimates below zero that take rounds to wash out.
        let leader = self.is_leader();
        self.agg.set_input(agg::COUNT, if leader { 1.0 } else { 0.0 });
        let ids = self.active_ids();
        let ttl = Aggregator::ext_ttl(self.cfg.aggregate_interval);
        let wall = self.wall().as_millis();
        self.metrics.agg_rounds += 1;
        let pick = self.rng.below(ids.len().max(1));
        // Always towards the neighbour that differs most, as last heard:
        // on a graph of mostly short links (lowest RTT) the error after 30
        // rounds is a third lower than when picking at random half of the
        // time (docs/monitoring.md).
        let greedy = true;
        if let Some((id, m)) = self.agg.round(now, wall, ttl, &ids, pick, greedy) {
            self.send_to(id, Message::Agg { v: m.v, x: m.x, reply: false });
        }
    }

    /// A neighbour's round.
    pub(super) fn on_agg(&mut self, from: NodeId, m: AggMsg) {
        let horizon = self.wall().as_millis().saturating_add(MAX_CLOCK_SKEW.as_millis() as u64);
        match self.agg.receive(self.now, self.id, from, &m, horizon) {
            Ok(Some(r)) => self.send_to(from, Message::Agg { v: r.v, x: r.x, reply: true }),
            Ok(None) => {}
            Err(agg::Refused) => self.metrics.agg_refused += 1,
        }
    }

    /// The network's aggregates as this node sees them.
    pub fn aggregates(&self) -> AggregatesView {
        let a = &self.agg;
        let count = a.estimate(agg::COUNT).filter(|e| e.value > 1e-12);
        let n = count.map(|e| 1.0 / e.value);
        let mut metrics = BTreeMap::new();
        let mut groups: BTreeMap<String, BTreeMap<String, GroupView>> = BTreeMap::new();
        for k in a.keys() {
            if k == agg::COUNT || agg::parse_bucket_key(k).is_some() {
                continue;
            }
            if let Some((m, rest)) = k.split_once('{') {
                let Some((lk, lv)) = rest.strip_suffix('}').and_then(|r| r.split_once('=')) else { continue };
                if m != agg::COUNT {
                    continue;
                }
                let Some(share) = a.estimate(k).map(|e| e.value) else { continue };
                let mut g = GroupView { count: n.map(|n| share * n), share, metrics: BTreeMap::new() };
                for gm in GROUP_METRICS {
                    if let Some(e) = a.estimate(&agg::group_key(gm, lk, lv)).filter(|_| share > 1e-12) {
                        g.metrics.insert(gm.to_string(), e.value / share);
                    }
                }
                groups.entry(lk.to_string()).or_default().insert(lv.to_string(), g);
                continue;
            }
            let Some(e) = a.estimate(k) else { continue };
            let ext = a.extremes(k);
            metrics.insert(
                k.to_string(),
                MetricView {
                    mean: e.value,
                    sum: n.map(|n| e.value * n),
                    error: e.spread,
                    max: ext.map(|x| x.0),
                    min: ext.map(|x| x.1),
                    p50: agg::quantile(a, k, 0.5),
                    p90: agg::quantile(a, k, 0.9),
                    p99: agg::quantile(a, k, 0.99),
                },
            );
        }
        AggregatesView {
            rounds: a.rounds(),
            age_ms: a.last_round().map_or(0, |t| self.now.since(t).as_millis() as u64),
            interval_ms: self.cfg.aggregate_interval.as_millis() as u64,
            count: n,
            count_error: count.map(|e| e.spread / e.value),
            metrics,
            groups,
        }
    }

    /// The time of the latest input.
    pub fn now(&self) -> Time {
        self.now
    }

    /// The aggregation state (for the simulator's measurements).
    pub fn aggregator(&self) -> &Aggregator {
        &self.agg
    }
}
