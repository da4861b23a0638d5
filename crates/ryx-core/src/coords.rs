//! Network coordinates (Vivaldi with heights; Dabek, Cox, Kaashoek and
//! Morris, SIGCOMM 2004): each node places itself in a 2-D plane plus a
//! height (its access link) so that the distance between two nodes'
//! coordinates predicts their round-trip time, from the RTTs it measures
//! anyway. Neighbour choice uses the prediction to decide which peers are
//! worth measuring; links are still judged by what is measured.
//!
//! Robustness, after "Network coordinates in the wild" (Ledlie, Gardner and
//! Seltzer, NSDI 2007) and what memberlist/Consul learnt on busy machines:
//! - each peer's samples pass a **low-percentile filter** over its last
//!   [`FILTER`] samples, so that a scheduler delay on a loaded machine (which
//!   only ever adds time) does not move the coordinate;
//! - a sample that is not finite, not positive or longer than [`MAX_RTT_MS`],
//!   and a peer's coordinate that is not finite, absurdly far, of negative
//!   height or with an error outside `[0, MAX_ERROR]`, is refused and
//!   counted;
//! - an update that would leave the coordinate non-finite or beyond
//!   [`MAX_COORD_MS`] is not applied;
//! - a peer cannot claim to be surer than [`MIN_PEER_ERROR`], so no single
//!   peer's word outweighs this node's own position;
//! - a sample whose prediction misses by far more than this node's samples
//!   from *other* peers typically do (an **outlier**: by more than
//!   [`OUTLIER_K`] times the median of the latest miss, in milliseconds, of
//!   each of the last [`RECENT`] peers sampled, and by more than
//!   [`OUTLIER_FLOOR`] of its round trip)
//!   does not move the coordinate (after "Newton", Zage and Nita-Rotaru,
//!   CCS 2007: a lying peer's force is an outlier among the honest ones).
//!   The median is over peers, not samples, so a liar probed often still
//!   has one say; and it covers outliers too, so a node whose whole picture
//!   is wrong (a cold start, a moved machine) still moves: a liar is
//!   outvoted while the peers it fools are a minority.

use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Samples per peer the filter keeps.
pub const FILTER: usize = 8;
/// Peers whose samples are kept (the least recently sampled go first).
pub const MAX_PEERS: usize = 256;
/// The longest round trip believed, in milliseconds.
pub const MAX_RTT_MS: f64 = 10_000.0;
/// The farthest coordinate (any component or the height), in milliseconds.
pub const MAX_COORD_MS: f64 = 10_000.0;
/// The largest error estimate (a new node's is 1).
pub const MAX_ERROR: f64 = 1.5;
/// The lowest error a peer is believed to have: a peer that says it is
/// sure of itself gets at most `e / (e + 0.1)` of this node's step.
pub const MIN_PEER_ERROR: f64 = 0.1;
/// Peers whose latest relative miss the outlier rule keeps.
pub const RECENT: usize = 32;
/// A sample is an outlier when it misses by more than this many times the
/// recent median miss ...
pub const OUTLIER_K: f64 = 4.0;
/// ... and by more than this share of its round trip.
pub const OUTLIER_FLOOR: f64 = 0.5;
/// The lowest height: no two nodes are closer than twice this.
pub const MIN_HEIGHT_MS: f64 = 0.005;
/// Vivaldi's constants: how fast the error estimate moves, and the
/// coordinate's step — large while the node is unsure of itself (so that
/// about twenty samples place it), small once it is sure (so that noise
/// does not shake a settled coordinate).
const CE: f64 = 0.25;
const CC_SURE: f64 = 0.25;
const CC_UNSURE: f64 = 1.0;

/// A node's coordinate as it travels: a point in milliseconds, a height and
/// the node's estimate of its own relative error.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Coord {
    /// Plane position.
    pub x: f32,
    /// Plane position.
    pub y: f32,
    /// Height (the node's own share of every round trip, halved).
    pub h: f32,
    /// Relative error estimate, 0 (sure) to 1.5.
    pub e: f32,
}

impl Coord {
    /// The origin, with the error of a node that knows nothing.
    pub const fn origin() -> Coord {
        Coord { x: 0.0, y: 0.0, h: MIN_HEIGHT_MS as f32, e: 1.0 }
    }

    /// Whether a coordinate from a peer is one to believe at all.
    pub fn plausible(&self) -> bool {
        let ok = |v: f32| v.is_finite() && (v as f64).abs() <= MAX_COORD_MS;
        ok(self.x)
            && ok(self.y)
            && ok(self.h)
            && self.h >= 0.0
            && self.e.is_finite()
            && (0.0..=MAX_ERROR as f32).contains(&self.e)
    }

    /// The round trip the two coordinates predict, in milliseconds (never
    /// negative, never past [`MAX_RTT_MS`], whatever a peer claimed).
    pub fn rtt_ms(&self, other: &Coord) -> f64 {
        let (dx, dy) = (self.x as f64 - other.x as f64, self.y as f64 - other.y as f64);
        let d = (dx * dx + dy * dy).sqrt() + self.h as f64 + other.h as f64;
        if d.is_finite() {
            d.clamp(0.0, MAX_RTT_MS)
        } else {
            MAX_RTT_MS
        }
    }
}

/// Why a sample was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The round trip was not finite, not positive or too long.
    Rtt,
    /// The peer's coordinate was not plausible.
    Coord,
    /// The sample missed the prediction by far more than recent samples
    /// did (see the module's notes); it fed the filter but did not move
    /// the coordinate.
    Outlier,
}

/// This node's coordinate and the per-peer filters that feed it.
#[derive(Clone, Debug)]
pub struct Vivaldi {
    me: Coord,
    /// Per peer: its last samples (ms), and an update counter for eviction.
    samples: BTreeMap<NodeId, (VecDeque<f64>, u64)>,
    /// The latest miss (ms) of each of the last [`RECENT`] peers sampled,
    /// oldest first.
    recent: VecDeque<(NodeId, f64)>,
    clock: u64,
    /// Samples used, and refused.
    pub used: u64,
    /// Samples refused (bad round trip or implausible coordinate).
    pub refused: u64,
    /// Samples that did not move the coordinate as outliers.
    pub outliers: u64,
    /// A seed for the direction two coincident nodes push each other.
    salt: u64,
}

impl Vivaldi {
    /// A node at the origin; `salt` (the node's id, say) breaks the tie of
    /// two nodes at the same point.
    pub fn new(salt: u64) -> Vivaldi {
        Vivaldi {
            me: Coord::origin(),
            samples: BTreeMap::new(),
            recent: VecDeque::with_capacity(RECENT),
            clock: 0,
            used: 0,
            refused: 0,
            outliers: 0,
            salt,
        }
    }

    /// This node's coordinate.
    pub fn coord(&self) -> Coord {
        self.me
    }

    /// The round trip to a node at `other`, as predicted.
    pub fn predict_ms(&self, other: &Coord) -> f64 {
        self.me.rtt_ms(other)
    }

    /// The filtered round trip to `peer`, if it has been measured.
    pub fn filtered(&self, peer: NodeId) -> Option<f64> {
        let (q, _) = self.samples.get(&peer)?;
        let mut sorted: Vec<f64> = q.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 4).copied()
    }

    /// Forgets a peer's samples (it left or died).
    pub fn forget(&mut self, peer: NodeId) {
        self.samples.remove(&peer);
        // Nor does its last miss speak for the outlier rule any more.
        self.recent.retain(|(p, _)| *p != peer);
    }

    /// Feeds one measured round trip to `peer` into its filter, without a
    /// coordinate to move against (every probe's answer; coordinates travel
    /// less often). The filtered round trip, if the sample was believable.
    pub fn observe(&mut self, peer: NodeId, rtt_ms: f64) -> Result<f64, Refused> {
        if !rtt_ms.is_finite() || rtt_ms <= 0.0 || rtt_ms > MAX_RTT_MS {
            self.refused += 1;
            return Err(Refused::Rtt);
        }
        self.clock += 1;
        if !self.samples.contains_key(&peer) && self.samples.len() >= MAX_PEERS {
            if let Some(old) = self.samples.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k) {
                self.samples.remove(&old);
            }
        }
        let clock = self.clock;
        let (q, t) = self.samples.entry(peer).or_insert_with(|| (VecDeque::with_capacity(FILTER), 0));
        *t = clock;
        if q.len() == FILTER {
            q.pop_front();
        }
        q.push_back(rtt_ms);
        // A low percentile: queueing and scheduling only ever add time.
        Ok(self.filtered(peer).unwrap_or(rtt_ms))
    }

    /// Takes one measured round trip `rtt_ms` to `peer`, which is at
    /// `theirs`: through the filter, then one Vivaldi step.
    pub fn sample(&mut self, peer: NodeId, rtt_ms: f64, theirs: &Coord) -> Result<(), Refused> {
        if !theirs.plausible() {
            self.refused += 1;
            return Err(Refused::Coord);
        }
        let rtt = self.observe(peer, rtt_ms)?;
        self.step(rtt, theirs, peer)
    }

    /// One Vivaldi step against `peer` at `theirs`, by the round trip this
    /// node has already measured to it (the filtered one): for a
    /// coordinate that arrives on a ping, whose sender measured the link
    /// itself. Nothing happens if the link has not been measured here.
    pub fn sample_filtered(&mut self, peer: NodeId, theirs: &Coord) -> Result<(), Refused> {
        if !theirs.plausible() {
            self.refused += 1;
            return Err(Refused::Coord);
        }
        match self.filtered(peer) {
            Some(rtt) => self.step(rtt, theirs, peer),
            None => Ok(()),
        }
    }

    /// The outlier rule, then the update.
    fn step(&mut self, rtt: f64, theirs: &Coord, peer: NodeId) -> Result<(), Refused> {
        let miss = (self.me.rtt_ms(theirs) - rtt).abs();
        let mut others: Vec<f64> = self.recent.iter().filter(|(p, _)| *p != peer).map(|(_, m)| *m).collect();
        let typical = (others.len() >= RECENT / 8).then(|| {
            others.sort_by(f64::total_cmp);
            others[others.len() / 2]
        });
        self.recent.retain(|(p, _)| *p != peer);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((peer, miss));
        if typical.is_some_and(|t| miss > OUTLIER_K * t && miss > OUTLIER_FLOOR * rtt) {
            self.outliers += 1;
            return Err(Refused::Outlier);
        }
        self.update(rtt, theirs, peer);
        self.used += 1;
        Ok(())
    }

    fn update(&mut self, rtt: f64, theirs: &Coord, peer: NodeId) {
        let me = self.me;
        let (ei, ej) = (me.e as f64, (theirs.e as f64).max(MIN_PEER_ERROR));
        let w = if ei + ej > 0.0 { ei / (ei + ej) } else { 0.5 };
        let dist = me.rtt_ms(theirs);
        let es = ((dist - rtt).abs() / rtt).min(MAX_ERROR);
        let e = (es * CE * w + ei * (1.0 - CE * w)).clamp(0.0, MAX_ERROR);
        let cc = CC_SURE + (CC_UNSURE - CC_SURE) * ei.min(1.0);
        let force = cc * w * (rtt - dist);
        // The unit vector from them to me, with the heights as a third axis.
        let (mut dx, mut dy) = (me.x as f64 - theirs.x as f64, me.y as f64 - theirs.y as f64);
        let mut plane = (dx * dx + dy * dy).sqrt();
        if plane < 1e-9 {
            // Coincident: a direction of this pair's own, which both derive
            // alike, and opposite signs so that they push apart.
            let a = (self.salt ^ peer.0).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11;
            let a = a as f64 / (1u64 << 53) as f64 * std::f64::consts::TAU;
            let sign = if self.salt < peer.0 { 1.0 } else { -1.0 };
            dx = sign * a.cos();
            dy = sign * a.sin();
            plane = 1.0;
        }
        let mag = plane + me.h as f64 + theirs.h as f64;
        let x = me.x as f64 + force * dx / mag;
        let y = me.y as f64 + force * dy / mag;
        let h = (me.h as f64 + force * (me.h as f64 + theirs.h as f64) / mag).max(MIN_HEIGHT_MS);
        let next = Coord { x: x as f32, y: y as f32, h: h as f32, e: e as f32 };
        if next.plausible() {
            self.me = next;
        }
    }
}

#[cfg(test)]
mod tests;
