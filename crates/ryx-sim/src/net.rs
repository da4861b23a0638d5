//! The seeded network model: per-link latency with jitter and a long tail,
//! loss, duplication and partitions. Reordering is not modelled separately:
//! it falls out of the per-packet jitter.

use ryx_core::rng::Rng;

/// Knobs of the network model.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub dup: f64,
    /// Fastest one-way base latency of a link, in microseconds.
    pub base_min_us: f64,
    /// Slowest one-way base latency of a link, in microseconds.
    pub base_max_us: f64,
    /// Mean of the exponential per-packet jitter, as a fraction of the base.
    pub jitter: f64,
    /// Probability that a packet takes the long tail (queueing, retransmits
    /// below us, a busy switch).
    pub tail_prob: f64,
    /// Scale of the Pareto-distributed tail, in microseconds.
    pub tail_scale_us: f64,
    /// Cap of the tail, in microseconds.
    pub tail_cap_us: f64,
    /// Extra delay (uniform up to this) for every tick of and delivery to a
    /// slow node, in microseconds.
    pub slow_us: u64,
    /// A map of this many data centres instead of the unit square (0: the
    /// square): node `s` is in site `s % sites`; sites lie on a plane with
    /// every two 30–150 ms apart (round trip), round trips inside a site
    /// are 1 ms, and each node adds its own access share of 0.05–0.15 ms
    /// each way.
    pub sites: usize,
    /// Multiplies the distances between sites (1: 30–150 ms).
    pub site_scale: f64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            loss: 0.0,
            dup: 0.0,
            base_min_us: 200.0,
            base_max_us: 2_000.0,
            jitter: 0.1,
            tail_prob: 0.01,
            tail_scale_us: 1_000.0,
            tail_cap_us: 100_000.0,
            slow_us: 100_000,
            sites: 0,
            site_scale: 1.0,
        }
    }
}

/// The network between the simulated nodes.
///
/// Every node has a position in the unit square; a link's base latency grows
/// with the distance between its ends (so latency-preferring neighbour
/// choice finds real structure), plus a per-link random share (so the
/// metric is not exactly Euclidean). Each packet adds exponential jitter and,
/// rarely, a heavy Pareto tail.
pub struct Network {
    cfg: NetConfig,
    rng: Rng,
    link_salt: u64,
    pos: Vec<(f32, f32)>,
    /// With `sites`: each site's place (ms of round trip) and each node's
    /// access share (one way, µs).
    site_at: Vec<(f64, f64)>,
    access_us: Vec<f64>,
    /// Partition segment of each node; traffic only flows within a segment.
    pub segment: Vec<u8>,
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Network {
    /// A network of `n` nodes whose every random choice derives from `seed`.
    pub fn new(cfg: NetConfig, n: usize, seed: u64) -> Network {
        let mut rng = Rng::new(seed);
        let pos = (0..n).map(|_| (rng.unit() as f32, rng.unit() as f32)).collect();
        let link_salt = rng.next_u64();
        let mut site_at: Vec<(f64, f64)> = Vec::new();
        let mut tries = 0;
        while site_at.len() < cfg.sites {
            // Rejection sampling in a square wide enough for the sites asked
            // for; every two sites 30–150 ms apart.
            let side = 150.0_f64.max(45.0 * (cfg.sites as f64).sqrt());
            let p = (side * rng.unit(), side * rng.unit());
            tries += 1;
            let ok = site_at.iter().all(|q| {
                let d = ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt();
                d >= 30.0 && (d <= 150.0 || tries > 100_000)
            });
            if ok {
                site_at.push(p);
            }
        }
        let access_us = (0..n).map(|_| if cfg.sites > 0 { 50.0 + 100.0 * rng.unit() } else { 0.0 }).collect();
        Network { cfg, rng, link_salt, pos, site_at, access_us, segment: vec![0; n] }
    }

    /// The site of node `a` (with a sites map).
    pub fn site(&self, a: usize) -> Option<usize> {
        (self.cfg.sites > 0).then(|| a % self.cfg.sites)
    }

    /// The model's knobs.
    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// One-way base latency of the link between `a` and `b`, in microseconds.
    pub fn base_us(&self, a: usize, b: usize) -> f64 {
        if self.cfg.sites > 0 {
            let (sa, sb) = (self.site_at[a % self.cfg.sites], self.site_at[b % self.cfg.sites]);
            let rtt_ms = (self.cfg.site_scale * ((sa.0 - sb.0).powi(2) + (sa.1 - sb.1).powi(2)).sqrt()).max(1.0);
            return rtt_ms * 500.0 + self.access_us[a] + self.access_us[b];
        }
        let (pa, pb) = (self.pos[a], self.pos[b]);
        let (dx, dy) = ((pa.0 - pb.0) as f64, (pa.1 - pb.1) as f64);
        let dist = (dx * dx + dy * dy).sqrt() / std::f64::consts::SQRT_2;
        let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
        let h = mix(self.link_salt ^ mix(lo.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ hi));
        let link = (h >> 11) as f64 / (1u64 << 53) as f64;
        let share = 0.7 * dist + 0.3 * link;
        self.cfg.base_min_us + (self.cfg.base_max_us - self.cfg.base_min_us) * share
    }

    /// Draws the one-way latency of one packet from `a` to `b`, in microseconds.
    pub fn latency_us(&mut self, a: usize, b: usize) -> u64 {
        let base = self.base_us(a, b);
        let u = self.rng.unit();
        let jitter = -(1.0 - u).ln() * self.cfg.jitter * base;
        let mut tail = 0.0;
        if self.cfg.tail_prob > 0.0 && self.rng.chance(self.cfg.tail_prob) {
            // Pareto with shape 1.5: most tails are a millisecond or two,
            // a few are tens of milliseconds.
            let v = 1.0 - self.rng.unit();
            tail = (self.cfg.tail_scale_us * v.powf(-1.0 / 1.5)).min(self.cfg.tail_cap_us);
        }
        (base + jitter + tail).max(1.0) as u64
    }

    /// Whether a partition separates `a` from `b`.
    pub fn blocked(&self, a: usize, b: usize) -> bool {
        self.segment[a] != self.segment[b]
    }

    /// Draws whether one packet is lost.
    pub fn lose(&mut self) -> bool {
        self.cfg.loss > 0.0 && self.rng.chance(self.cfg.loss)
    }

    /// Draws an event of probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.chance(p)
    }

    /// Draws whether one packet is duplicated.
    pub fn duplicate(&mut self) -> bool {
        self.cfg.dup > 0.0 && self.rng.chance(self.cfg.dup)
    }

    /// Draws the extra delay a slow node adds to one tick or delivery.
    pub fn slow_delay_us(&mut self) -> u64 {
        if self.cfg.slow_us == 0 {
            0
        } else {
            self.rng.below(self.cfg.slow_us as usize + 1) as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_bounded_symmetric_in_base_and_seeded() {
        let mut a = Network::new(NetConfig::default(), 50, 9);
        let mut b = Network::new(NetConfig::default(), 50, 9);
        for i in 0..50 {
            for j in 0..50 {
                let base = a.base_us(i, j);
                assert!((200.0..=2000.0).contains(&base));
                assert_eq!(base, a.base_us(j, i));
                let l = a.latency_us(i, j);
                assert_eq!(l, b.latency_us(i, j));
                assert!((200..=2000 * 20 + 100_000).contains(&l));
            }
        }
    }
}
