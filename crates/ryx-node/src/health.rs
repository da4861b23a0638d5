//! The node's own health, sampled once a second into bounded ring buffers
//! (`GET /v1/health`), and handed to the core as its share of the
//! network's aggregates (`GET /v1/aggregates`).
//!
//! Each sample: `cpu` (cores busy) and `rss_mb` (from `/proc`), `lag_ms` (the event loop's worst lateness waking for the
//! core's deadline in the last second), `health` (Lifeguard's local health
//! multiplier), `dgram_in`/`dgram_out`/`rejected` (per second), `loss`
//! (the share of this node's probes left unanswered), `failures` and
//! `churn` (neighbours declared dead, links made or dropped, per minute),
//! `store_mb` (blob bytes held), `units` (job units this node's kernels
//! ran, per second) and `unit_ms` (their mean kernel time; 0 when none
//! ran). The view adds the datagrams rejected so far, by reason.

use ryx_core::Node;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Samples each series keeps (five minutes at one a second).
pub const SERIES_LEN: usize = 300;
/// Time between samples.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// The metrics the network aggregates (the others stay local: each key
/// costs every `agg` message about 30 bytes).
pub const AGGREGATED: &[&str] = &["cpu", "lag_ms", "loss", "rejected", "rss_mb", "dgram_out", "failures", "store_mb"];
/// The metrics whose network-wide extremes are kept.
pub const EXTREMES: &[&str] = &["cpu", "lag_ms", "loss", "rss_mb"];

/// Counters as of the last sample.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    cpu_s: f64,
    dgram_in: u64,
    dgram_out: u64,
    rejected: u64,
    pings: u64,
    acks: u64,
    failures: u64,
    churn: u64,
    units: u64,
    unit_us: u64,
}

/// The sampler and its series.
#[derive(Debug)]
pub struct Health {
    last: Option<(Instant, Counters)>,
    /// Worst loop lateness since the last sample, milliseconds.
    lag_ms: f64,
    series: BTreeMap<&'static str, VecDeque<f64>>,
    /// The latest sample.
    latest: BTreeMap<String, f64>,
    taken: u64,
    /// Datagrams rejected so far, by reason, as of the latest sample.
    rejected: BTreeMap<&'static str, u64>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            last: None,
            lag_ms: 0.0,
            series: BTreeMap::new(),
            latest: BTreeMap::new(),
            taken: 0,
            rejected: BTreeMap::new(),
        }
    }
}

/// What `GET /v1/health` returns.
#[derive(Debug, Serialize)]
pub struct HealthView<'a> {
    /// Milliseconds between samples.
    pub interval_ms: u64,
    /// Samples taken since start.
    pub samples: u64,
    /// The latest sample.
    pub latest: &'a BTreeMap<String, f64>,
    /// Each metric's last `SERIES_LEN` samples, oldest first.
    pub series: &'a BTreeMap<&'static str, VecDeque<f64>>,
    /// Datagrams rejected since start, by reason.
    pub rejected_by_reason: &'a BTreeMap<&'static str, u64>,
}

impl Health {
    /// The event loop woke `late` after the core's deadline.
    pub fn note_lag(&mut self, late: Duration) {
        self.lag_ms = self.lag_ms.max(late.as_secs_f64() * 1e3);
    }

    /// Whether a sample is due.
    pub fn due(&self, now: Instant) -> bool {
        self.last.is_none_or(|(t, _)| now.duration_since(t) >= SAMPLE_EVERY)
    }

    /// Takes a sample: into the series, and into the core's aggregates.
    pub fn sample(&mut self, now: Instant, node: &mut Node, io: (u64, u64), store_bytes: u64) {
        let m = node.metrics();
        let proc = crate::metrics::process_stats();
        let (units, unit_us) = crate::work::kernel_stats();
        self.rejected = m.rejected.clone();
        let c = Counters {
            units,
            unit_us,
            cpu_s: proc.map_or(0.0, |p| p.1),
            dgram_in: io.0,
            dgram_out: io.1,
            rejected: m.rejected.values().sum(),
            pings: m.messages_out.get("ping"),
            acks: m.messages_in.get("ack"),
            failures: m.failures_detected,
            churn: m.links_up + m.links_down,
        };
        let health = f64::from(node.status(node.now()).local_health);
        let Some((t0, c0)) = self.last.replace((now, c)) else {
            return;
        };
        let secs = now.duration_since(t0).as_secs_f64().max(1e-3);
        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
        let pings = c.pings.saturating_sub(c0.pings) as f64;
        let acks = c.acks.saturating_sub(c0.acks) as f64;
        let mut x = BTreeMap::new();
        x.insert("cpu", (c.cpu_s - c0.cpu_s).max(0.0) / secs);
        if let Some((rss, _)) = proc {
            x.insert("rss_mb", rss as f64 / (1024.0 * 1024.0));
        }
        x.insert("lag_ms", std::mem::take(&mut self.lag_ms));
        x.insert("health", health);
        x.insert("dgram_in", rate(c.dgram_in, c0.dgram_in));
        x.insert("dgram_out", rate(c.dgram_out, c0.dgram_out));
        x.insert("rejected", rate(c.rejected, c0.rejected));
        x.insert("loss", if pings > 0.0 { (1.0 - acks / pings).clamp(0.0, 1.0) } else { 0.0 });
        x.insert("failures", 60.0 * rate(c.failures, c0.failures));
        x.insert("churn", 60.0 * rate(c.churn, c0.churn));
        x.insert("store_mb", store_bytes as f64 / (1024.0 * 1024.0));
        let ran = c.units.saturating_sub(c0.units);
        x.insert("units", rate(c.units, c0.units));
        x.insert("unit_ms", if ran > 0 { c.unit_us.saturating_sub(c0.unit_us) as f64 / ran as f64 / 1e3 } else { 0.0 });
        for (k, v) in &x {
            let s = self.series.entry(k).or_default();
            if s.len() >= SERIES_LEN {
                s.pop_front();
            }
            s.push_back(*v);
        }
        self.taken += 1;
        self.latest = x.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let shared: BTreeMap<String, f64> =
            x.iter().filter(|(k, _)| AGGREGATED.contains(k)).map(|(k, v)| (k.to_string(), *v)).collect();
        let extremes: Vec<&str> = EXTREMES.to_vec();
        node.set_health(&shared, &extremes);
    }

    /// What `GET /v1/health` returns.
    pub fn view(&self) -> HealthView<'_> {
        HealthView {
            interval_ms: SAMPLE_EVERY.as_millis() as u64,
            samples: self.taken,
            latest: &self.latest,
            series: &self.series,
            rejected_by_reason: &self.rejected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ryx_core::identity::Identity;

    #[test]
    fn samples_fill_bounded_series_and_feed_the_aggregates() {
        let cfg = ryx_core::NodeConfig::default();
        let mut node =
            Node::new(cfg, Identity::from_u64(1), "127.0.0.1:1".parse().expect("an address"), 1, ryx_core::Time(0));
        let mut h = Health::default();
        let t0 = Instant::now();
        h.sample(t0, &mut node, (0, 0), 0);
        h.note_lag(Duration::from_millis(7));
        h.sample(t0 + SAMPLE_EVERY, &mut node, (0, 0), 0);
        assert_eq!(h.view().latest["lag_ms"], 7.0, "a sample carries the worst lag noted since the last");
        for i in 1..(SERIES_LEN as u32 + 5) {
            h.sample(t0 + SAMPLE_EVERY * (i + 1), &mut node, (u64::from(i) * 10, u64::from(i) * 20), 1 << 20);
        }
        let v = h.view();
        assert_eq!(v.samples, SERIES_LEN as u64 + 5, "the first call only sets the counters");
        assert!(v.series.values().all(|s| s.len() == SERIES_LEN));
        assert_eq!(v.series["lag_ms"][SERIES_LEN - 1], 0.0, "lag is taken once");
        assert!((v.latest["dgram_out"] - 20.0).abs() < 1e-9 && (v.latest["store_mb"] - 1.0).abs() < 1e-9);
        assert!(v.latest["rss_mb"] > 0.0, "this process has resident memory");
        assert!(v.latest.contains_key("units") && v.latest["unit_ms"] >= 0.0, "kernel times are sampled");
        // The node's own share of the aggregates is its sample.
        let a = node.aggregator();
        assert_eq!(a.estimate("dgram_out").map(|e| e.value), Some(20.0));
        assert!(a.estimate("dgram_in").is_none(), "datagrams in stay local");
    }
}
