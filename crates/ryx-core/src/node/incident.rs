//! Alerts by consensus: a neighbour's failure, seen by several of its
//! other neighbours, becomes one incident, grouped by label, named the
//! same everywhere and notified once.
//!
//! - **Observers.** A node that declares a neighbour dead (its failure
//!   detector: probes, indirect probes, Lifeguard's local health) sends a
//!   `verdict` up the spanning tree (`node::tree`) to its leader, with the
//!   dead node's labels (told in its `join`) and degree. It sends it again
//!   every second until an incident names the node, for at most
//!   [`OBSERVE_FOR`] (a leader that dies meanwhile is replaced).
//! - **Quorum.** The leader confirms a node down once a quorum of distinct
//!   observers agree: half its neighbours, rounded up, at least one and at
//!   most [`MAX_QUORUM`]. One node's mistaken view (its own overload, a
//!   lossy link) is not enough.
//! - **Incidents.** Confirmed deaths are grouped by the dead node's first
//!   label (`rack=r3`; a node without labels is its own group). The first
//!   opens the group's incident; those that follow within [`GROUP_WINDOW`]
//!   of the last join it before it is raised (for at most [`GROUP_MAX`]),
//!   and later ones join it while it fires. Its id is
//!   a digest of the cluster, the group and its least member, so any node
//!   works out the same one. The leader raises it: it writes it as an info
//!   item (`ryx.incident/{id}`), which diffuses to every node, and emits
//!   [`Event::Incident`] with `notify` set: the one notification (the
//!   daemon's Alertmanager webhook). Every other node emits the same
//!   event, without `notify`, when the item reaches it (the SSE stream,
//!   the dashboard). A leader that takes over adopts the incidents it
//!   holds as items and does not notify them again.
//! - **Resolution.** A node that starts, or that finds a neighbour no
//!   longer counts it (it was stalled and declared dead), tells the leader
//!   it is up for a while; an incident resolves when all its members are
//!   back (one more notification, with its end).

use super::*;
use crate::wire::Labels;
use std::collections::BTreeSet;

/// Prefix of the info keys incidents are written under.
pub const INCIDENT_PREFIX: &str = "ryx.incident/";
/// Most observers a quorum needs.
pub const MAX_QUORUM: usize = 3;
/// Confirmed deaths within this time of the first join one incident before
/// it is raised.
pub const GROUP_WINDOW: Duration = Duration::from_millis(200);
/// An incident is raised at most this long after its first death was
/// confirmed, however many follow.
pub const GROUP_MAX: Duration = Duration::from_millis(400);
/// An observation not yet named by an incident is told again this often
/// (its path up the tree may have run through the dead).
const RESEND: Duration = Duration::from_millis(250);
/// How long an observer keeps telling the leader what it saw.
pub const OBSERVE_FOR: Duration = Duration::from_secs(30);
/// An incident whose members have not come back within this long stops
/// being tracked: it ends as `expired` (one more notification, so that the
/// alert clears), and the memory it held is freed.
pub const INCIDENT_TTL: Duration = Duration::from_secs(3600);
/// How long a node must have been the tree's root before it takes
/// verdicts.
pub const LEAD_SETTLE: Duration = Duration::from_secs(2);
/// How long a node that started says it is up.
const ANNOUNCE_FOR: Duration = Duration::from_secs(10);
/// Bounds: nodes suspected at the leader, observations kept, neighbours'
/// labels, incidents open.
const MAX_SUSPECTS: usize = 4096;
const MAX_OBSERVED: usize = 256;
const MAX_OPEN: usize = 256;
/// Members an incident lists at most (its item fits `MAX_VALUE_LEN`).
pub const MAX_LISTED: usize = 200;
/// Energy of incident items (they reach the whole network).
const INCIDENT_ENERGY: f64 = 1000.0;

/// An incident as every node names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Digest of the cluster, the group and the least member.
    pub id: String,
    /// What kind: `nodes_down`.
    pub kind: String,
    /// The label the members share (`rack=r3`), or `node=ID`.
    pub group: String,
    /// One line: "rack=r3: 5 nodes down".
    pub summary: String,
    /// The nodes concerned (the first [`MAX_LISTED`] by id: the item must
    /// fit an info value).
    pub members: Vec<NodeId>,
    /// How many nodes it concerns.
    #[serde(default)]
    pub count: usize,
    /// `firing` or `resolved`.
    pub state: String,
    /// Wall ms it was raised, and resolved.
    pub started_ms: u64,
    /// See `started_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    /// The leader that raised it.
    pub raised_by: NodeId,
}

/// One observation this node made.
#[derive(Clone, Debug)]
struct Observed {
    sent: Time,
    down: bool,
    degree: u8,
    labels: Labels,
    since: Time,
}

/// A node suspected at the leader.
#[derive(Clone, Debug, Default)]
struct Suspect {
    since: Time,
    observers: BTreeSet<NodeId>,
    degree: u8,
    labels: Labels,
    confirmed: bool,
}

/// An incident the leader keeps.
#[derive(Clone, Debug)]
struct Open {
    members: BTreeSet<NodeId>,
    back: BTreeSet<NodeId>,
    opened: Time,
    /// When the last member joined.
    joined: Time,
    raised: Option<Incident>,
}

/// This node's part in alerting.
#[derive(Clone, Debug, Default)]
pub(super) struct Alerts {
    /// Each neighbour's labels, as its `join` told.
    pub(super) labels: BTreeMap<NodeId, Labels>,
    observed: BTreeMap<NodeId, Observed>,
    suspects: BTreeMap<NodeId, Suspect>,
    open: BTreeMap<String, Open>,
    /// When this node started (it says it is up for a while).
    started: Option<Time>,
    /// Since when it has been the tree's root.
    lead_since: Option<Time>,
    /// Notifications this node made (raised and resolved).
    pub(super) notified: u64,
}

/// The group a node's incident falls in.
fn group_of(id: NodeId, labels: &Labels) -> String {
    labels.first().map_or_else(|| format!("node={id}"), |(k, v)| format!("{k}={v}"))
}

/// The quorum for a node with `degree` neighbours.
pub fn quorum(degree: u8) -> usize {
    (usize::from(degree).div_ceil(2)).clamp(1, MAX_QUORUM)
}

impl Node {
    /// Whether this node leads the spanning tree: it has no parent, and no
    /// lesser leader is alive that it merely has no path to right now (a
    /// node whose parent just died is its own root for a moment; were it
    /// to take verdicts then, a second leader would raise a second
    /// incident).
    /// And it must have led for [`LEAD_SETTLE`]: when a leader dies, its
    /// successor's heartbeat takes a few hops to reach every node, and the
    /// nodes it has not reached yet are their own roots meanwhile.
    fn leads(&mut self) -> bool {
        let now = self.now;
        let root = self.tree_place().is_some_and(|(a, _)| a.leader == self.id && a.parent.is_none())
            && !self.knows_lesser_leader();
        if !root {
            self.alerts.lead_since = None;
            return false;
        }
        now.since(*self.alerts.lead_since.get_or_insert(now)) >= LEAD_SETTLE
    }

    /// A neighbour was declared dead here (or left): tell the leader.
    pub(super) fn observe_down(&mut self, id: NodeId, degree: Option<u8>) {
        let labels = self.alerts.labels.remove(&id).unwrap_or_default();
        if self.alerts.observed.len() >= MAX_OBSERVED {
            return;
        }
        let o = Observed { sent: self.now, down: true, degree: degree.unwrap_or(0), labels, since: self.now };
        self.alerts.observed.insert(id, o.clone());
        self.send_verdict(id, self.id, o.down, o.degree, o.labels, 0);
    }

    /// Passes a verdict towards the leader (or takes it, as the leader).
    fn send_verdict(&mut self, subject: NodeId, observer: NodeId, down: bool, degree: u8, labels: Labels, hops: u8) {
        if self.leads() {
            self.on_verdict_here(subject, observer, down, degree, labels);
            return;
        }
        let parent = self.tree_place().and_then(|(a, _)| a.parent).filter(|p| self.active.contains_key(p));
        if let Some(p) = parent {
            self.send_to(p, Message::Verdict { subject, observer, down, degree, labels, hops });
        }
    }

    /// A verdict from a neighbour.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_verdict(
        &mut self,
        subject: NodeId,
        observer: NodeId,
        down: bool,
        degree: u8,
        labels: Labels,
        hops: u8,
    ) {
        if hops >= crate::wire::MAX_VERDICT_HOPS {
            self.metrics.count_rejected("verdict_hops");
            return;
        }
        self.send_verdict(subject, observer, down, degree, labels, hops + 1);
    }

    /// The leader's part: count observers, confirm, group, resolve.
    fn on_verdict_here(&mut self, subject: NodeId, observer: NodeId, down: bool, degree: u8, labels: Labels) {
        if !down {
            // "I am back" is only believed from the node itself.
            if observer == subject {
                self.alerts.suspects.remove(&subject);
                // An incident raised by an earlier leader is adopted first.
                for i in self.held_incidents() {
                    if i.state == "firing"
                        && i.members.contains(&subject)
                        && !self.alerts.open.contains_key(&i.group)
                        && self.alerts.open.len() < MAX_OPEN
                    {
                        let o = Open {
                            members: i.members.iter().copied().collect(),
                            back: BTreeSet::new(),
                            opened: self.now,
                            joined: self.now,
                            raised: Some(i.clone()),
                        };
                        self.alerts.open.insert(i.group.clone(), o);
                    }
                }
                for o in self.alerts.open.values_mut() {
                    if o.members.contains(&subject) {
                        o.back.insert(subject);
                    }
                }
            }
            return;
        }
        if observer == subject || subject == self.id {
            return;
        }
        if !self.alerts.suspects.contains_key(&subject) && self.alerts.suspects.len() >= MAX_SUSPECTS {
            return;
        }
        let now = self.now;
        let s = self.alerts.suspects.entry(subject).or_insert_with(|| Suspect { since: now, ..Default::default() });
        s.observers.insert(observer);
        s.degree = s.degree.max(degree);
        if s.labels.is_empty() {
            s.labels = labels;
        }
        if s.confirmed || s.observers.len() < quorum(s.degree) {
            return;
        }
        s.confirmed = true;
        let group = group_of(subject, &s.labels);
        if let Some(o) = self.alerts.open.get_mut(&group) {
            o.members.insert(subject);
            o.joined = now;
            o.back.remove(&subject);
            if o.raised.is_some() {
                self.publish_incident(&group, false);
            }
            return;
        }
        if self.alerts.open.len() >= MAX_OPEN {
            return;
        }
        // An incident of the group raised by an earlier leader is adopted.
        let held = self.held_incidents().into_iter().find(|i| i.group == group && i.state == "firing");
        let mut o =
            Open { members: BTreeSet::from([subject]), back: BTreeSet::new(), opened: now, joined: now, raised: None };
        if let Some(i) = held {
            o.members.extend(i.members.iter().copied());
            o.raised = Some(i);
        }
        let adopted = o.raised.is_some();
        self.alerts.open.insert(group.clone(), o);
        if adopted {
            self.publish_incident(&group, false);
        }
    }

    /// Incidents held as info items (every node's view).
    pub fn held_incidents(&self) -> Vec<Incident> {
        self.info
            .iter()
            .filter(|(k, _)| k.starts_with(INCIDENT_PREFIX))
            .filter_map(|(_, it)| serde_json::from_value::<Incident>((*it.value).clone()).ok())
            .collect()
    }

    /// Writes a group's incident as an item; `notify` when it is raised or
    /// resolved (the notification), not when members join it.
    fn publish_incident(&mut self, group: &str, notify: bool) {
        self.publish_incident_as(group, notify, false);
    }

    /// As `publish_incident`; `expire` ends it as `expired` (its members
    /// did not come back within [`INCIDENT_TTL`]).
    fn publish_incident_as(&mut self, group: &str, notify: bool, expire: bool) {
        let wall = self.wall().as_millis();
        let cluster = self.cfg.cluster_id.clone();
        let me = self.id;
        let Some(o) = self.alerts.open.get_mut(group) else { return };
        let count = o.members.len();
        let members: Vec<NodeId> = o.members.iter().copied().take(MAX_LISTED).collect();
        let resolved = !o.members.is_empty() && o.members.iter().all(|m| o.back.contains(m));
        let ends = resolved || expire;
        let inc = match o.raised.take() {
            Some(mut i) => {
                i.members = members;
                i.count = count;
                if ends {
                    i.state = if resolved { "resolved" } else { "expired" }.into();
                    i.ended_ms = Some(wall);
                }
                i
            }
            None => {
                let least = members.first().copied().unwrap_or(me);
                let h = blake3::hash(format!("{cluster}\n{group}\n{least}").as_bytes()).to_hex();
                Incident {
                    id: h[..16].to_string(),
                    kind: "nodes_down".into(),
                    group: group.to_string(),
                    summary: String::new(),
                    members,
                    count,
                    state: "firing".into(),
                    started_ms: wall,
                    ended_ms: None,
                    raised_by: me,
                }
            }
        };
        let mut inc = inc;
        let n = inc.count;
        inc.summary = format!("{}: {} node{} down", inc.group, n, if n == 1 { "" } else { "s" });
        if resolved {
            inc.summary = format!("{}: {} node{} back", inc.group, n, if n == 1 { "" } else { "s" });
        } else if expire {
            inc.summary =
                format!("{}: {} node{} gone for good (no longer tracked)", inc.group, n, if n == 1 { "" } else { "s" });
        }
        o.raised = Some(inc.clone());
        if ends {
            if let Some(o) = self.alerts.open.remove(group) {
                for m in &o.members {
                    self.alerts.suspects.remove(m);
                }
            }
        }
        let key = format!("{INCIDENT_PREFIX}{}", inc.id);
        if let Ok(v) = serde_json::to_value(&inc) {
            let now = self.now;
            let _ = self.put_info(now, &key, v, Some(INCIDENT_ENERGY.min(self.cfg.max_energy)));
        }
        if notify {
            self.alerts.notified += 1;
        }
        self.emit(Event::Incident { incident: inc, notify });
    }

    /// An incident item arrived (any node): tell the driver.
    pub(super) fn on_incident_item(&mut self, key: &str) {
        if !key.starts_with(INCIDENT_PREFIX) {
            return;
        }
        let Some(v) = self.info.get(key).map(|it| (*it.value).clone()) else { return };
        if let Ok(inc) = serde_json::from_value::<Incident>(v) {
            self.emit(Event::Incident { incident: inc, notify: false });
        }
    }

    /// Once a second: observations again until named, incidents raised
    /// once their window closed, resolutions, "I am up".
    pub(super) fn alerts_tick(&mut self) {
        let now = self.now;
        let me = self.id;
        let started = *self.alerts.started.get_or_insert(now);
        if now.since(started) < ANNOUNCE_FOR && self.tree_place().is_some_and(|(a, _)| a.parent.is_some()) {
            self.send_verdict(me, me, false, 0, self.cfg.labels.clone(), 0);
        }
        let named: BTreeSet<NodeId> =
            self.held_incidents().into_iter().filter(|i| i.state == "firing").flat_map(|i| i.members).collect();
        self.alerts.observed.retain(|id, o| !named.contains(id) && now.since(o.since) < OBSERVE_FOR);
        self.raise_due();
    }

    /// Raises the incidents whose grouping window has closed, and resolves
    /// those whose members are all back (leader only).
    pub(super) fn raise_due(&mut self) {
        // Every tick, so that a settled leader's time is counted before
        // the first verdict reaches it.
        let leading = self.leads();
        if !self.alerts.observed.is_empty() {
            self.resend_observed();
        }
        if self.alerts.open.is_empty() && self.alerts.suspects.is_empty() {
            return;
        }
        if !leading {
            // Another node leads now: it adopts the incidents from their
            // items; what was gathered here goes.
            self.alerts.open.clear();
            self.alerts.suspects.clear();
            return;
        }
        let now = self.now;
        let due: Vec<String> = self
            .alerts
            .open
            .iter()
            .filter(|(_, o)| {
                o.raised.is_none() && (now.since(o.joined) >= GROUP_WINDOW || now.since(o.opened) >= GROUP_MAX)
            })
            .map(|(g, _)| g.clone())
            .collect();
        for g in due {
            self.publish_incident(&g, true);
        }
        let back: Vec<String> = self
            .alerts
            .open
            .iter()
            .filter(|(_, o)| {
                o.raised.is_some() && !o.members.is_empty() && o.members.iter().all(|m| o.back.contains(m))
            })
            .map(|(g, _)| g.clone())
            .collect();
        for g in back {
            self.publish_incident(&g, true);
        }
        let old: Vec<String> = self
            .alerts
            .open
            .iter()
            .filter(|(_, o)| o.raised.is_some() && now.since(o.opened) >= INCIDENT_TTL)
            .map(|(g, _)| g.clone())
            .collect();
        for g in old {
            self.publish_incident_as(&g, true, true);
        }
        // Suspects that never reached a quorum are forgotten.
        self.alerts.suspects.retain(|_, s| s.confirmed || now.since(s.since) < OBSERVE_FOR);
    }

    /// Tells the leader again what this node saw and no incident names
    /// yet (every [`RESEND`]).
    fn resend_observed(&mut self) {
        let now = self.now;
        let me = self.id;
        let due: Vec<(NodeId, Observed)> = self
            .alerts
            .observed
            .iter_mut()
            .filter(|(_, o)| now.since(o.sent) >= RESEND)
            .map(|(k, o)| {
                o.sent = now;
                (*k, o.clone())
            })
            .collect();
        for (id, o) in due {
            self.send_verdict(id, me, o.down, o.degree, o.labels, 0);
        }
    }

    /// Says this node is up (to the leader) for the next [`ANNOUNCE_FOR`].
    pub(super) fn announce_up(&mut self) {
        self.alerts.started = Some(self.now);
    }

    /// Notifications this node made.
    pub fn notifications(&self) -> u64 {
        self.alerts.notified
    }

    /// Entries held for alerting (bounded by `TableSizes`).
    pub(super) fn alert_entries(&self) -> usize {
        self.alerts.labels.len() + self.alerts.observed.len() + self.alerts.suspects.len() + self.alerts.open.len()
    }
}
