//! Neighbour views: the active neighbours a node talks to and the passive
//! list it replaces them from (after HyParView).

use crate::id::NodeId;
use crate::rng::Rng;
use crate::time::Time;
use crate::wire::PeerInfo;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Round-trip time estimator: exponentially weighted moving average and
/// mean deviation (RFC 6298's, with a quicker average).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Rtt {
    /// Smoothed RTT in microseconds, if measured.
    pub smoothed_us: Option<u64>,
    /// Mean deviation of the samples from the smoothed RTT, microseconds.
    pub var_us: u64,
}

impl Rtt {
    /// Folds in one sample (weight 1/4, as in TCP's SRTT with α = 1/8 but
    /// quicker to follow a change of path; the deviation with β = 1/4).
    pub fn sample(&mut self, d: Duration) {
        let s = d.as_micros().min(u64::MAX as u128 / 8) as u64;
        match self.smoothed_us {
            None => {
                self.smoothed_us = Some(s);
                self.var_us = s / 2;
            }
            Some(old) => {
                self.var_us = (self.var_us.saturating_mul(3).saturating_add(old.abs_diff(s))) / 4;
                self.smoothed_us = Some((old.saturating_mul(3).saturating_add(s)) / 4);
            }
        }
    }

    /// How long an answer may take on this link before it is late: the
    /// smoothed RTT plus four deviations (RFC 6298's RTO, without its 1 s
    /// floor: the failure detector has its own); zero until measured.
    pub fn timeout(&self) -> Duration {
        let us = self.smoothed_us.map_or(0, |s| s.saturating_add(self.var_us.saturating_mul(4)));
        // Never more than the longest round trip a node believes (10 s).
        Duration::from_micros(us.min(10_000_000))
    }

    /// Smoothed RTT in milliseconds, if measured.
    pub fn millis(&self) -> Option<f64> {
        self.smoothed_us.map(|us| us as f64 / 1000.0)
    }
}

/// State of an active neighbour.
#[derive(Clone, Debug)]
pub struct ActivePeer {
    /// UDP address.
    pub addr: SocketAddr,
    /// Measured round-trip time.
    pub rtt: Rtt,
    /// Last time anything was heard from it (directly or via an indirect ack).
    pub last_heard: Time,
    /// When the link formed.
    pub since: Time,
    /// Whether this is a random long link (chosen without regard to latency).
    pub long: bool,
    /// Whether this node opened the link (only the opener rotates long links).
    pub initiated: bool,
    /// Whether item payloads are pushed eagerly on this link (Plumtree).
    pub eager: bool,
    /// When the last ping went out.
    pub last_ping: Option<Time>,
    /// Since when it is suspected, if it is.
    pub suspect_since: Option<Time>,
    /// The round-trip timeout of the slowest helper asked to probe it when
    /// it was last suspected (its confirmation window waits that long more).
    pub helper_leg: Duration,
    /// Its own active neighbour count, as last reported in an ack.
    pub degree: Option<u8>,
    /// Its probes' history: loss and round trip (`crate::anomaly`).
    pub quality: crate::anomaly::LinkQuality,
    /// When this node last sent its coordinate on this link.
    pub coord_at: Option<Time>,
    /// When this link's pings last moved this node's coordinate.
    pub coord_in: Option<Time>,
    /// This node's tree advert as last told on this link, and when.
    pub tree_sent: Option<(crate::wire::TreeAdvert, Time)>,
    /// Whether it said, when the link formed, that it reads the short
    /// forms of `ping`, `ack` and `agg` (`wire::short`).
    pub short_offered: bool,
    /// Whether this node sends it the short forms now: as offered, but
    /// not while it is suspected (a neighbour restarted in place with an
    /// older release could not read them, nor so end the link) until a
    /// short datagram from it shows it reads them again.
    pub short: bool,
}

/// A replacement candidate.
#[derive(Clone, Debug)]
pub struct PassivePeer {
    /// UDP address.
    pub addr: SocketAddr,
    /// Round-trip time measured by passive probes.
    pub rtt: Rtt,
    /// When it was last heard of (learned or answered).
    pub learned: Time,
    /// When it last refused to become a neighbour (it was full).
    pub refused: Option<Time>,
}

/// The passive list: a bounded set of known peers that are not neighbours.
#[derive(Clone, Debug, Default)]
pub struct PassiveView {
    peers: BTreeMap<NodeId, PassivePeer>,
}

impl PassiveView {
    /// Adds or refreshes a peer, evicting a random one when full.
    /// Returns whether the peer is now present. Only `first_hand` news
    /// (the peer itself spoke from that address) moves a known peer to a
    /// new address: hearsay from others could point it anywhere.
    pub fn insert(&mut self, peer: PeerInfo, now: Time, cap: usize, rng: &mut Rng, first_hand: bool) -> bool {
        if cap == 0 {
            return false;
        }
        if let Some(p) = self.peers.get_mut(&peer.id) {
            if first_hand {
                p.addr = peer.addr;
                p.learned = now;
            }
            return true;
        }
        if self.peers.len() >= cap {
            let victim = self.peers.keys().nth(rng.below(self.peers.len())).copied();
            if let Some(v) = victim {
                self.peers.remove(&v);
            }
        }
        self.peers.insert(peer.id, PassivePeer { addr: peer.addr, rtt: Rtt::default(), learned: now, refused: None });
        true
    }

    /// Removes a peer.
    pub fn remove(&mut self, id: &NodeId) -> Option<PassivePeer> {
        self.peers.remove(id)
    }

    /// Looks a peer up.
    pub fn get(&self, id: &NodeId) -> Option<&PassivePeer> {
        self.peers.get(id)
    }

    /// Looks a peer up, to change it.
    pub fn get_mut(&mut self, id: &NodeId) -> Option<&mut PassivePeer> {
        self.peers.get_mut(id)
    }

    /// Whether a peer is present.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.peers.contains_key(id)
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Iterates over peers in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &PassivePeer)> {
        self.peers.iter()
    }

    /// Up to `n` distinct random peers.
    pub fn sample(&self, n: usize, rng: &mut Rng) -> Vec<PeerInfo> {
        let mut all: Vec<PeerInfo> = self.peers.iter().map(|(id, p)| PeerInfo { id: *id, addr: p.addr }).collect();
        rng.shuffle(&mut all);
        all.truncate(n);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_timeout_follows_its_round_trips_and_their_jitter() {
        let mut steady = Rtt::default();
        assert_eq!(steady.timeout(), Duration::ZERO, "nothing measured yet");
        for _ in 0..40 {
            steady.sample(Duration::from_millis(100));
        }
        let t = steady.timeout();
        assert!(t >= Duration::from_millis(100) && t < Duration::from_millis(102), "{t:?}");
        let mut jittery = Rtt::default();
        for i in 0..40 {
            jittery.sample(Duration::from_millis(if i % 2 == 0 { 80 } else { 120 }));
        }
        let j = jittery.timeout();
        assert!(j > Duration::from_millis(150) && j < Duration::from_millis(260), "{j:?}");
        let mut absurd = Rtt::default();
        absurd.sample(Duration::MAX);
        absurd.sample(Duration::MAX);
        assert_eq!(absurd.timeout(), Duration::from_secs(10), "bounded");
    }
}
