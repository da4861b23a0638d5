//! Anomalies a node sees in its neighbours, judged on each link's own
//! history against the node's other links.
//!
//! Every direct probe a node sends to a neighbour is either answered (with
//! a round-trip time) or not (it expires). Each link keeps two moving
//! averages of that history ([`LinkQuality`]): the share of probes lost
//! and the round-trip time. A neighbour is judged against the node's other
//! links, as a baseline that moves with the conditions everyone shares (10 %
//! loss on the whole network raises every link alike; a loaded observer
//! slows every link alike, so it accuses no one):
//!
//! - **lossy**: its probes are lost [`LOSS_MARGIN`] more often than the
//!   other links' median, and at least twice as often. A node that drops
//!   30 % of its datagrams loses about half of its probes (the ping or the
//!   ack).
//! - **slow**: its round trip is [`SLOW_FACTOR`] times the other links'
//!   median and at least [`SLOW_FLOOR_MS`]. A node whose event loop lags
//!   answers late.
//!
//! One observer's judgement is a suspicion only (its link may be the lossy
//! part): `node::incident` turns a quorum of observers into an incident.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What is wrong with a neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anomaly {
    /// Answers far later than the observer's other neighbours.
    Slow,
    /// Loses far more probes than the observer's other neighbours.
    Lossy,
}

impl Anomaly {
    /// Both kinds, in order.
    pub const ALL: [Anomaly; 2] = [Anomaly::Slow, Anomaly::Lossy];

    /// The incident kind (`nodes_slow`, `nodes_lossy`).
    pub fn kind(self) -> &'static str {
        match self {
            Anomaly::Slow => "nodes_slow",
            Anomaly::Lossy => "nodes_lossy",
        }
    }

    /// The word for it (`slow`, `lossy`).
    pub fn word(self) -> &'static str {
        match self {
            Anomaly::Slow => "slow",
            Anomaly::Lossy => "lossy",
        }
    }

    /// The anomaly an incident kind names.
    pub fn of_kind(kind: &str) -> Option<Anomaly> {
        Anomaly::ALL.into_iter().find(|a| a.kind() == kind)
    }
}

/// Weight of one probe in the moving averages (the first probes are
/// averaged evenly).
pub const ALPHA: f64 = 1.0 / 32.0;
/// Probes a link needs before it is judged, or serves as a baseline.
pub const MIN_SAMPLES: u32 = 16;
/// A lossy link loses this much more than the baseline (a share of probes).
pub const LOSS_MARGIN: f64 = 0.25;
/// A slow link's round trip is this many times the baseline's ...
pub const SLOW_FACTOR: f64 = 10.0;
/// ... and at least this long, in milliseconds (a loopback's 0.1 ms against
/// 1.5 ms is noise, not a slow node).
pub const SLOW_FLOOR_MS: f64 = 25.0;

/// One link's probe history, as moving averages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkQuality {
    /// Share of probes lost.
    pub loss: f64,
    /// Round-trip time of the answered ones, milliseconds.
    pub rtt_ms: f64,
    /// Probes counted (answered or lost).
    pub samples: u32,
    /// Probes answered.
    pub answered: u32,
    /// Judged anomalous of late: probed from both ends at the probe
    /// interval (the side that does not lead the probing would otherwise
    /// probe once a second, and take a minute to see the link heal).
    pub watch: bool,
    /// `loss` as of the last answered probe: what the link loses while it
    /// still answers. The probes of a silence that has not ended are not in
    /// it, so a crashed neighbour's unanswered probes do not lengthen the
    /// wait for its verdict (the failure detector's windows follow it).
    pub steady: f64,
}

impl LinkQuality {
    fn weight(n: u32) -> f64 {
        (1.0 / f64::from(n.max(1))).max(ALPHA)
    }

    /// A probe answered after `rtt`.
    pub fn answered(&mut self, rtt: Duration) {
        self.samples = self.samples.saturating_add(1);
        self.answered = self.answered.saturating_add(1);
        let w = Self::weight(self.samples);
        self.loss += w * (0.0 - self.loss);
        self.steady = self.loss;
        let ms = rtt.as_secs_f64() * 1e3;
        let w = Self::weight(self.answered);
        self.rtt_ms += w * (ms - self.rtt_ms);
    }

    /// A probe that was never answered.
    pub fn lost(&mut self) {
        self.samples = self.samples.saturating_add(1);
        let w = Self::weight(self.samples);
        self.loss += w * (1.0 - self.loss);
    }

    /// Whether there is history enough to judge by.
    pub fn judged(&self) -> bool {
        self.samples >= MIN_SAMPLES
    }

    /// The link's loss while it answers, once there is history enough to
    /// judge by (zero before).
    pub fn steady_loss(&self) -> f64 {
        if self.judged() && self.steady.is_finite() {
            self.steady.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 })
}

/// The anomalies the links show, each judged against the median of the
/// others (at least two others with history enough; a node with fewer
/// judges no one).
pub fn judge<K: Copy>(links: &[(K, LinkQuality)]) -> Vec<(K, Anomaly)> {
    let ready: Vec<(usize, &LinkQuality)> =
        links.iter().map(|(_, q)| q).enumerate().filter(|(_, q)| q.judged()).collect();
    let mut out = Vec::new();
    if ready.len() < 3 {
        return out;
    }
    for (i, q) in &ready {
        let others = || ready.iter().filter(|(j, _)| j != i).map(|(_, o)| *o);
        let (Some(base_loss), Some(base_rtt)) = (
            median(others().map(|o| o.loss).collect()),
            median(others().filter(|o| o.answered > 0).map(|o| o.rtt_ms).collect()),
        ) else {
            continue;
        };
        if q.loss >= base_loss + LOSS_MARGIN && q.loss >= 2.0 * base_loss {
            out.push((links[*i].0, Anomaly::Lossy));
        }
        if q.answered > 0 && q.rtt_ms >= SLOW_FACTOR * base_rtt && q.rtt_ms >= SLOW_FLOOR_MS {
            out.push((links[*i].0, Anomaly::Slow));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// A link that answers with probability `1 - loss`, after `rtt_ms`.
    fn link(rng: &mut Rng, loss: f64, rtt_ms: f64, probes: u32) -> LinkQuality {
        let mut q = LinkQuality::default();
        for _ in 0..probes {
            if rng.chance(loss) {
                q.lost();
            } else {
                q.answered(Duration::from_secs_f64(rtt_ms * (0.5 + rng.unit()) / 1e3));
            }
        }
        q
    }

    #[test]
    fn a_lossy_and_a_slow_neighbour_stand_out_and_the_healthy_ones_do_not() {
        let mut rng = Rng::new(7);
        for net_loss in [0.0f64, 0.1] {
            let healthy = 1.0 - (1.0 - net_loss) * (1.0 - net_loss);
            // The lossy one drops 30 % of what it receives and sends.
            let lossy = 1.0 - (1.0 - net_loss).powi(2) * 0.7 * 0.7;
            let links = vec![
                ("a", link(&mut rng, healthy, 0.3, 200)),
                ("b", link(&mut rng, healthy, 0.5, 200)),
                ("c", link(&mut rng, healthy, 0.4, 200)),
                ("lossy", link(&mut rng, lossy, 0.4, 200)),
                ("slow", link(&mut rng, healthy, 60.0, 200)),
            ];
            let mut got = judge(&links);
            got.sort();
            assert_eq!(got, vec![("lossy", Anomaly::Lossy), ("slow", Anomaly::Slow)], "net loss {net_loss}");
        }
    }

    #[test]
    fn an_observer_that_is_itself_slow_or_lossy_accuses_no_one() {
        let mut rng = Rng::new(9);
        let links: Vec<(u8, LinkQuality)> = (0..5).map(|i| (i, link(&mut rng, 0.5, 80.0, 200))).collect();
        assert!(judge(&links).is_empty());
    }

    #[test]
    fn too_little_history_or_too_few_links_judges_no_one() {
        let mut rng = Rng::new(3);
        let few = vec![(0, link(&mut rng, 0.0, 0.3, 200)), (1, link(&mut rng, 0.9, 90.0, 200))];
        assert!(judge(&few).is_empty(), "one other link is no baseline");
        let young: Vec<(u8, LinkQuality)> =
            (0..4).map(|i| (i, link(&mut rng, if i == 0 { 0.9 } else { 0.0 }, 0.3, MIN_SAMPLES - 1))).collect();
        assert!(judge(&young).is_empty(), "fewer than MIN_SAMPLES probes");
    }

    #[test]
    fn the_averages_follow_a_change_within_two_time_constants() {
        let mut q = LinkQuality::default();
        for _ in 0..100 {
            q.answered(Duration::from_millis(1));
        }
        assert!(q.loss < 1e-9 && (q.rtt_ms - 1.0).abs() < 1e-9);
        for _ in 0..(2.0 / ALPHA) as usize {
            q.lost();
        }
        assert!(q.loss > 0.85, "{}", q.loss);
    }
}
