//! The spanning tree query waves follow, kept by every node from what its
//! neighbours tell it on their probes and acks (a self-stabilising BFS
//! tree).
//!
//! Each node follows a *leader*: the least node id it hears of whose
//! heartbeat still advances (the leader's wall clock, passed down the
//! tree). Its parent is the neighbour nearest that leader (ties: the least
//! id); its children are the neighbours that name it their parent. A wave
//! along the tree costs two messages per node (a query down each tree link,
//! an answer up), where the echo over every link costs two per link. When
//! the leader dies its heartbeat (advanced once a second) stops, every node
//! forgets it within [`LEADER_SILENCE`] and the next least id takes over;
//! until the tree has
//! settled, a wave along it may miss nodes, which the wave's root sees
//! (its holders' count falls short) and asks again over every link.

use super::*;
use crate::wire::TreeAdvert;

/// Hops beyond which a route to a leader is not taken.
const MAX_TREE_DIST: u8 = 64;
/// A leader whose heartbeat has not advanced for this long is gone.
pub(super) const LEADER_SILENCE: Duration = Duration::from_secs(5);
/// A neighbour's word on its place counts this long: five of its
/// once-a-second refreshes, so that a lossy link does not lose it.
const ADVERT_TTL: Duration = Duration::from_secs(5);
/// Leaders whose heartbeats a node remembers at most.
const MAX_LEADERS: usize = 64;
/// A leader's heartbeat advances this often (not at every probe: each
/// advance is one advert on every link of the network).
const BEAT_EVERY: Duration = Duration::from_secs(1);
/// An unchanged place is told again on a link this often (well inside
/// [`ADVERT_TTL`], so that one or two lost datagrams do not expire it);
/// a changed one goes out on the link's next probe or ack.
const TREE_REFRESH: Duration = Duration::from_secs(1);

/// How long the tree takes to give up on a leader that died.
pub fn tree_leader_silence() -> Duration {
    LEADER_SILENCE
}

/// A node's view of the tree.
#[derive(Clone, Debug, Default)]
pub(super) struct Tree {
    /// Each neighbour's latest word and when it came.
    adverts: BTreeMap<NodeId, (TreeAdvert, Time)>,
    /// Each leader's highest heartbeat heard, and when it last advanced.
    beats: BTreeMap<NodeId, (u64, Time)>,
    /// This node's place, as last worked out.
    me: Option<TreeAdvert>,
    /// This node's own heartbeat as a leader, and when it last advanced.
    own_beat: Option<(u64, Time)>,
}

impl Node {
    /// This node's place in the tree now.
    pub(super) fn tree_advert(&mut self) -> TreeAdvert {
        self.settle_tree();
        match self.tree.me {
            Some(a) => a,
            None => TreeAdvert { leader: self.id, beat: self.own_beat(), dist: 0, parent: None },
        }
    }

    /// This node's place, to tell neighbour `to` on a probe or an ack: when
    /// it changed since last told there (a new heartbeat, parent or
    /// leader), or once every [`TREE_REFRESH`]; `None` otherwise, and for a
    /// peer that is not a neighbour. Telling it on every probe cost a
    /// hundred bytes per datagram, ten times a second per link.
    pub(super) fn tree_advert_for(&mut self, to: NodeId) -> Option<TreeAdvert> {
        if !self.active.contains_key(&to) {
            return None;
        }
        let a = self.tree_advert();
        let now = self.now;
        let p = self.active.get_mut(&to)?;
        if p.tree_sent.is_some_and(|(s, t)| s == a && now.since(t) < TREE_REFRESH) {
            return None;
        }
        p.tree_sent = Some((a, now));
        Some(a)
    }

    /// This node's heartbeat as a leader: its wall clock in ms, advanced
    /// every [`BEAT_EVERY`] (by 1 at least: a wall clock stepped back must
    /// not stop it, or the leader would be given up for dead).
    fn own_beat(&mut self) -> u64 {
        let now = self.now;
        match self.tree.own_beat {
            Some((b, t)) if now.since(t) < BEAT_EVERY => b,
            prev => {
                let b = self.wall().as_millis().max(prev.map_or(0, |(b, _)| b.saturating_add(1)));
                self.tree.own_beat = Some((b, now));
                b
            }
        }
    }

    /// A neighbour told its place.
    pub(super) fn on_tree_advert(&mut self, from: NodeId, a: TreeAdvert) {
        // A heartbeat from beyond the clock skew bound is made up (a node
        // that froze it there would hold its leadership for ever).
        let horizon = self.wall().as_millis().saturating_add(MAX_CLOCK_SKEW.as_millis() as u64);
        if !self.active.contains_key(&from) || a.beat > horizon {
            return;
        }
        let now = self.now;
        self.tree.adverts.insert(from, (a, now));
        match self.tree.beats.get_mut(&a.leader) {
            Some((b, at)) => {
                if a.beat > *b {
                    *b = a.beat;
                    *at = now;
                }
            }
            None => {
                if self.tree.beats.len() >= MAX_LEADERS {
                    let oldest = self.tree.beats.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k);
                    if let Some(k) = oldest {
                        self.tree.beats.remove(&k);
                    }
                }
                self.tree.beats.insert(a.leader, (a.beat, now));
            }
        }
    }

    /// Works out this node's place from its neighbours' words.
    pub(super) fn settle_tree(&mut self) {
        let own_beat = self.own_beat();
        let now = self.now;
        let me = self.id;
        let active = &self.active;
        self.tree.adverts.retain(|id, (_, t)| active.contains_key(id) && now.since(*t) < ADVERT_TTL);
        self.tree.beats.retain(|_, (_, t)| now.since(*t) < LEADER_SILENCE * 2);
        let mut best: Option<(NodeId, u8, NodeId, u64)> = None;
        for (n, (a, _)) in &self.tree.adverts {
            let alive = self.tree.beats.get(&a.leader).is_some_and(|(_, t)| now.since(*t) < LEADER_SILENCE);
            if !alive || a.leader >= me || a.parent == Some(me) || a.dist >= MAX_TREE_DIST {
                continue;
            }
            let beat = self.tree.beats.get(&a.leader).map_or(a.beat, |(b, _)| *b);
            let cand = (a.leader, a.dist + 1, *n, beat);
            if best.is_none_or(|b| (cand.0, cand.1, cand.2) < (b.0, b.1, b.2)) {
                best = Some(cand);
            }
        }
        self.tree.me = Some(match best {
            Some((leader, dist, parent, beat)) => TreeAdvert { leader, beat, dist, parent: Some(parent) },
            None => TreeAdvert { leader: me, beat: own_beat, dist: 0, parent: None },
        });
    }

    /// Whether this node heard, within `LEADER_SILENCE`, the heartbeat of a
    /// leader with a lesser id advance: then it is not the network's leader
    /// even while it has no path to that one (its parent just died).
    pub(super) fn knows_lesser_leader(&self) -> bool {
        let now = self.now;
        self.tree.beats.range(..self.id).any(|(_, (_, at))| now.since(*at) < LEADER_SILENCE)
    }

    /// Whether this node is the network's leader as far as it can tell: it
    /// is its own root, and no lesser leader's heartbeat advanced here
    /// within `LEADER_SILENCE`. Being its own root alone is not enough: a
    /// node is one for a moment whenever every neighbour names it its
    /// parent (a neighbour re-routed through it before it re-routed
    /// itself) or its parent just died, while the leader lives on.
    pub(super) fn is_leader(&self) -> bool {
        self.tree.me.is_some_and(|a| a.leader == self.id && a.parent.is_none()) && !self.knows_lesser_leader()
    }

    /// This node's tree links: its parent and the neighbours that name it
    /// their parent.
    pub(super) fn tree_links(&self) -> Vec<NodeId> {
        let me = self.id;
        let parent = self.tree.me.and_then(|a| a.parent).filter(|p| self.active.contains_key(p));
        let children =
            self.tree.adverts.iter().filter(|(id, (a, _))| a.parent == Some(me) && self.active.contains_key(id));
        parent.into_iter().chain(children.map(|(id, _)| *id)).collect()
    }

    /// This node's place in the tree: the leader, its hops to it and its
    /// parent; and its children.
    pub fn tree_place(&self) -> Option<(TreeAdvert, Vec<NodeId>)> {
        let me = self.tree.me?;
        let links = self.tree_links();
        let children = links.into_iter().filter(|l| Some(*l) != me.parent).collect();
        Some((me, children))
    }
}
