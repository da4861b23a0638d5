//! Per-node counters kept by the core. No process-global registry: the
//! simulator runs thousands of nodes in one process.

use crate::wire::Message;
use serde::Serialize;
use std::collections::BTreeMap;

/// A fixed-bucket latency histogram (milliseconds).
#[derive(Clone, Debug, Serialize)]
pub struct Histogram {
    /// Upper bounds of the buckets, in milliseconds.
    pub bounds_ms: &'static [f64],
    /// Count per bucket (same length as `bounds_ms`), plus overflow at the end.
    pub counts: Vec<u64>,
    /// Sum of observed values, in milliseconds.
    pub sum_ms: f64,
    /// Number of observations.
    pub count: u64,
}

/// Bucket bounds for diffusion latency.
pub const LATENCY_BOUNDS_MS: &[f64] = &[1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0];

impl Histogram {
    fn new(bounds_ms: &'static [f64]) -> Histogram {
        Histogram { bounds_ms, counts: vec![0; bounds_ms.len() + 1], sum_ms: 0.0, count: 0 }
    }

    /// Records one observation.
    pub fn observe(&mut self, ms: f64) {
        let i = self.bounds_ms.iter().position(|b| ms <= *b).unwrap_or(self.bounds_ms.len());
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum_ms += ms;
        self.count += 1;
    }
}

/// A count per message kind (every message a node handles is counted, so
/// this is an array indexed by kind, not a map searched by name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindCounts {
    counts: Vec<u64>,
}

impl Default for KindCounts {
    fn default() -> Self {
        KindCounts { counts: vec![0; Message::KINDS.len()] }
    }
}

impl KindCounts {
    fn add(&mut self, msg: &Message) {
        if let Some(c) = self.counts.get_mut(msg.kind_index()) {
            *c += 1;
        }
    }

    /// The count of the kind named `kind` (a [`Message::KINDS`] entry).
    pub fn get(&self, kind: &str) -> u64 {
        Message::KINDS.iter().position(|k| *k == kind).and_then(|i| self.counts.get(i)).copied().unwrap_or(0)
    }

    /// Every kind and its count, in the order of the kinds' names.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let mut named: Vec<_> = Message::KINDS.iter().copied().zip(self.counts.iter().copied()).collect();
        named.sort_unstable_by_key(|(k, _)| *k);
        named.into_iter()
    }

    /// All kinds together.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl Serialize for KindCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// Counters of one node.
#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    /// Messages received, by kind.
    pub messages_in: KindCounts,
    /// Messages sent, by kind.
    pub messages_out: KindCounts,
    /// Datagrams rejected, by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Neighbours declared dead by this node.
    pub failures_detected: u64,
    /// Suspicions that were refuted (the suspect answered in time).
    pub suspicions_refuted: u64,
    /// Neighbours that left gracefully.
    pub neighbors_left: u64,
    /// Links formed.
    pub links_up: u64,
    /// Links dropped, for any reason.
    pub links_down: u64,
    /// Items delivered for the first time.
    pub items_delivered: u64,
    /// Payload copies of items already held.
    pub items_duplicate: u64,
    /// Items that arrived with too little energy to keep.
    pub items_exhausted: u64,
    /// Items evicted by the store bound.
    pub items_evicted: u64,
    /// Items taken by anti-entropy.
    pub items_synced: u64,
    /// Ticks that came later than `late_tick` (the node itself is slow).
    pub late_ticks: u64,
    /// Query waves started here, ended here (answered), and refused
    /// (too many at once).
    pub waves_started: u64,
    /// See `waves_started`.
    pub waves_done: u64,
    /// See `waves_started`.
    pub waves_refused: u64,
    /// Aggregation rounds run here.
    pub agg_rounds: u64,
    /// `agg` messages refused (numbers not finite, wall times from the
    /// future).
    pub agg_refused: u64,
    /// Blobs this node asked the network for (`blob_want`).
    pub wants_sent: u64,
    /// `blob_want` questions not passed on: the route table was full.
    pub wants_dropped: u64,
    /// Neighbours whose link moved to a new address (a fresh signed join).
    pub neighbors_moved: u64,
    /// Anti-entropy answers cut short by their byte budget.
    pub sync_answers_capped: u64,
    /// Round trips or peers' coordinates refused by the network
    /// coordinates (`crate::coords`): not finite, negative, implausible.
    pub coords_refused: u64,
    /// Coordinate samples that fed the filter but did not move the
    /// coordinate: outliers against the other peers' (`crate::coords`; a
    /// lying peer, or a route the plane cannot represent).
    pub coords_outliers: u64,
    /// Time from an item's birth to its delivery here.
    pub diffusion_latency: Histogram,
}

/// Reasons the node itself (beyond decoding and authentication) refuses a
/// message for, pre-registered so that every counter shows from the start.
pub const NODE_REASONS: [&str; 12] = [
    // Addressed to another node (a datagram replayed elsewhere).
    "wrong_destination",
    // A kind only neighbours may send, from a stranger or from a
    // neighbour's id at another address.
    "not_neighbor",
    // A join acceptance nobody asked for.
    "unsolicited",
    // A home's message to its heirs from a node that is not that home.
    "not_home",
    // An item whose version lies beyond the clock-skew bound.
    "future_version",
    // A job summary from a node the held summary does not name as home or
    // heir.
    "not_heir",
    // A report whose result names another token than the home issued.
    "wrong_token",
    // A result without its worker's valid signed vote.
    "bad_vote",
    // A decision from a home other than the creator without a quorum of
    // valid votes.
    "bad_certificate",
    // A `done` summary from a home other than the creator that no heir
    // the creator appointed confirmed.
    "unconfirmed_result",
    // A home claimed a result that its own decided partials do not give.
    "wrong_result",
    // A confirmation not from an appointed heir, or not of the result.
    "bad_confirmation",
];

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            messages_in: KindCounts::default(),
            messages_out: KindCounts::default(),
            rejected: crate::wire::WireError::REASONS
                .iter()
                .map(|k| (*k, 0))
                .chain([("self", 0)])
                .chain(crate::auth::AuthError::REASONS.map(|k| (k, 0)))
                .chain(crate::identity::SigError::REASONS.map(|k| (k, 0)))
                .chain(NODE_REASONS.map(|k| (k, 0)))
                .collect(),
            failures_detected: 0,
            suspicions_refuted: 0,
            neighbors_left: 0,
            links_up: 0,
            links_down: 0,
            items_delivered: 0,
            items_duplicate: 0,
            items_exhausted: 0,
            items_evicted: 0,
            items_synced: 0,
            late_ticks: 0,
            waves_started: 0,
            waves_done: 0,
            waves_refused: 0,
            agg_rounds: 0,
            agg_refused: 0,
            wants_sent: 0,
            wants_dropped: 0,
            neighbors_moved: 0,
            sync_answers_capped: 0,
            coords_refused: 0,
            coords_outliers: 0,
            diffusion_latency: Histogram::new(LATENCY_BOUNDS_MS),
        }
    }
}

impl Metrics {
    pub(crate) fn count_in(&mut self, msg: &Message) {
        self.messages_in.add(msg);
    }
    pub(crate) fn count_out(&mut self, msg: &Message) {
        self.messages_out.add(msg);
    }
    pub(crate) fn count_rejected(&mut self, reason: &'static str) {
        *self.rejected.entry(reason).or_default() += 1;
    }
    /// Total messages sent.
    pub fn total_out(&self) -> u64 {
        self.messages_out.total()
    }
    /// Total datagrams rejected.
    pub fn total_rejected(&self) -> u64 {
        self.rejected.values().sum()
    }
}
