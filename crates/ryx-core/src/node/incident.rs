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
//! - **Anomalies.** A node judges each neighbour's link against its other
//!   links (`crate::anomaly`: slow, lossy). A judgement that holds for
//!   [`ANOMALY_HOLD`] goes up the tree as a `verdict` with its `anomaly`,
//!   told again while it holds; the leader confirms it on a quorum of at
//!   least two observers (where the node has two neighbours) and groups it
//!   as above, in an incident of its kind
//!   (`nodes_slow`, `nodes_lossy`). It resolves when no observer has held
//!   it for [`ANOMALY_FRESH`] (they withdraw it [`ANOMALY_CLEAR`] after it
//!   stopped).

use super::*;
use crate::anomaly::{self, Anomaly};
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
/// The incident kind of deaths.
pub const NODES_DOWN: &str = "nodes_down";
/// A neighbour's anomaly must hold this long before it is told.
pub const ANOMALY_HOLD: Duration = Duration::from_secs(5);
/// ... and is withdrawn once it has not held for this long.
pub const ANOMALY_CLEAR: Duration = Duration::from_secs(10);
/// A told anomaly that an incident names is told again this often (so that
/// a new leader learns of it, and the leader knows it still holds).
const ANOMALY_REFRESH: Duration = Duration::from_secs(5);
/// The leader forgets an observer's anomaly not told again within this.
pub const ANOMALY_FRESH: Duration = Duration::from_secs(15);

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

/// An anomaly this node judges one of its neighbours to show.
#[derive(Clone, Debug)]
struct Judged {
    /// When it was first seen (it must hold for [`ANOMALY_HOLD`]).
    first: Time,
    /// When it was last seen.
    last: Time,
    /// When it was last told to the leader, once it has been.
    sent: Option<Time>,
}

/// A node suspected of an anomaly at the leader.
#[derive(Clone, Debug)]
struct OddSuspect {
    /// Observers, and when each last told it.
    observers: BTreeMap<NodeId, Time>,
    degree: u8,
    labels: Labels,
    confirmed: bool,
    /// When anyone last told it.
    last: Time,
}

/// A verdict, as it travels up the tree.
#[derive(Clone, Debug)]
pub(super) struct Said {
    pub(super) subject: NodeId,
    pub(super) observer: NodeId,
    pub(super) down: bool,
    pub(super) degree: u8,
    pub(super) labels: Labels,
    pub(super) anomaly: Option<Anomaly>,
}

/// An incident the leader keeps.
#[derive(Clone, Debug)]
struct Open {
    /// The members' group (`rack=r3`).
    group: String,
    /// Deaths (`None`), or an anomaly.
    anomaly: Option<Anomaly>,
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
    /// Anomalies this node judges its neighbours to show.
    judged: BTreeMap<(NodeId, Anomaly), Judged>,
    /// Nodes suspected of an anomaly (leader).
    odd: BTreeMap<(NodeId, Anomaly), OddSuspect>,
    /// By [`open_key`].
    open: BTreeMap<String, Open>,
    /// Incident items as parsed: key → (version, incident).
    held: BTreeMap<String, (u64, Incident)>,
    /// When this node started (it says it is up for a while).
    started: Option<Time>,
    /// When it last found itself stopped for a whole detection window.
    stalled: Option<Time>,
    /// Since when it has been the tree's root.
    lead_since: Option<Time>,
    /// Notifications this node made (raised and resolved).
    pub(super) notified: u64,
}

/// The group a node's incident falls in.
fn group_of(id: NodeId, labels: &Labels) -> String {
    labels.first().map_or_else(|| format!("node={id}"), |(k, v)| format!("{k}={v}"))
}

/// The quorum for a node with `degree` neighbours (0: not known yet, as
/// on a link that has not had an ack: two).
pub fn quorum(degree: u8) -> usize {
    if degree == 0 {
        return 2;
    }
    (usize::from(degree).div_ceil(2)).clamp(1, MAX_QUORUM)
}

/// The quorum for an anomaly: as for a death, but at least two observers
/// where there can be two (one is a lossy link, not a lossy node).
pub fn anomaly_quorum(degree: u8) -> usize {
    quorum(degree).max(usize::from(degree).min(2))
}

/// Where the leader keeps a group's incident of a kind.
fn open_key(group: &str, anomaly: Option<Anomaly>) -> String {
    match anomaly {
        None => group.to_string(),
        Some(a) => format!("{group} {}", a.word()),
    }
}

/// An incident's kind.
fn kind_of(anomaly: Option<Anomaly>) -> &'static str {
    anomaly.map_or(NODES_DOWN, Anomaly::kind)
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
        let root = self.is_leader();
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
        // A node that was itself stopped a moment ago (it saw its own tick
        // late by a whole detection window) judges its neighbours by a
        // silence that was its own: it drops the link but accuses no one.
        if self.alerts.stalled.is_some_and(|t| self.now.since(t) < ANNOUNCE_FOR) {
            return;
        }
        let o = Observed { sent: self.now, down: true, degree: degree.unwrap_or(0), labels, since: self.now };
        self.alerts.observed.insert(id, o.clone());
        let me = self.id;
        self.send_verdict(
            Said { subject: id, observer: me, down: o.down, degree: o.degree, labels: o.labels, anomaly: None },
            0,
        );
    }

    /// Passes a verdict towards the leader (or takes it, as the leader).
    fn send_verdict(&mut self, v: Said, hops: u8) {
        if self.leads() {
            self.on_verdict_here(v);
            return;
        }
        let parent = self.tree_place().and_then(|(a, _)| a.parent).filter(|p| self.active.contains_key(p));
        if let Some(p) = parent {
            let Said { subject, observer, down, degree, labels, anomaly } = v;
            // An anomaly travels as `down: false` (a node that does not
            // know the field ignores a "back" from anyone but the subject,
            // and relays it harmlessly), with `holds` saying whether it
            // holds.
            let holds = anomaly.is_some() && down;
            let down = anomaly.is_none() && down;
            self.send_to(p, Message::Verdict { subject, observer, down, degree, labels, hops, anomaly, holds });
        }
    }

    /// A verdict from a neighbour.
    pub(super) fn on_verdict(&mut self, v: Said, hops: u8) {
        if hops >= crate::wire::MAX_VERDICT_HOPS {
            self.metrics.count_rejected("verdict_hops");
            return;
        }
        self.send_verdict(v, hops + 1);
    }

    /// The leader's part: count observers, confirm, group, resolve.
    fn on_verdict_here(&mut self, v: Said) {
        if let Some(a) = v.anomaly {
            self.on_anomaly_here(v, a);
            return;
        }
        let Said { subject, observer, down, degree, labels, .. } = v;
        if !down {
            // "I am back" is only believed from the node itself.
            if observer == subject {
                self.alerts.suspects.remove(&subject);
                // An incident raised by an earlier leader is adopted first.
                for i in self.held_incidents() {
                    if i.state == "firing"
                        && i.kind == NODES_DOWN
                        && i.members.contains(&subject)
                        && !self.alerts.open.contains_key(&i.group)
                        && self.alerts.open.len() < MAX_OPEN
                    {
                        let o = Open {
                            group: i.group.clone(),
                            anomaly: None,
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
                    if o.anomaly.is_none() && o.members.contains(&subject) {
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
        let labels = s.labels.clone();
        self.confirm_member(subject, &labels, None);
    }

    /// An observer's anomaly verdict, at the leader.
    fn on_anomaly_here(&mut self, v: Said, a: Anomaly) {
        let now = self.now;
        let key = (v.subject, a);
        if !v.down {
            if let Some(s) = self.alerts.odd.get_mut(&key) {
                s.observers.remove(&v.observer);
            }
            return;
        }
        if v.observer == v.subject {
            return;
        }
        if !self.alerts.odd.contains_key(&key) && self.alerts.odd.len() >= MAX_SUSPECTS {
            return;
        }
        let s = self.alerts.odd.entry(key).or_insert_with(|| OddSuspect {
            observers: BTreeMap::new(),
            degree: 0,
            labels: Labels::new(),
            confirmed: false,
            last: now,
        });
        s.observers.insert(v.observer, now);
        s.last = now;
        s.degree = s.degree.max(v.degree);
        if s.labels.is_empty() {
            s.labels = v.labels;
        }
        if s.confirmed || s.observers.len() < anomaly_quorum(s.degree) {
            return;
        }
        s.confirmed = true;
        let labels = s.labels.clone();
        self.confirm_member(v.subject, &labels, Some(a));
    }

    /// A confirmed death or anomaly joins its group's incident, or opens
    /// one (adopting the group's firing incident an earlier leader raised).
    fn confirm_member(&mut self, subject: NodeId, labels: &Labels, anomaly: Option<Anomaly>) {
        let now = self.now;
        let group = group_of(subject, labels);
        let key = open_key(&group, anomaly);
        if let Some(o) = self.alerts.open.get_mut(&key) {
            o.members.insert(subject);
            o.joined = now;
            o.back.remove(&subject);
            if o.raised.is_some() {
                self.publish_incident(&key, false);
            }
            return;
        }
        if self.alerts.open.len() >= MAX_OPEN {
            return;
        }
        let kind = kind_of(anomaly);
        let held =
            self.held_incidents().into_iter().find(|i| i.group == group && i.kind == kind && i.state == "firing");
        let mut o = Open {
            group,
            anomaly,
            members: BTreeSet::from([subject]),
            back: BTreeSet::new(),
            opened: now,
            joined: now,
            raised: None,
        };
        if let Some(i) = held {
            o.members.extend(i.members.iter().copied());
            o.raised = Some(i);
        }
        let adopted = o.raised.is_some();
        self.alerts.open.insert(key.clone(), o);
        if adopted {
            self.publish_incident(&key, false);
        }
    }

    /// Incidents held as info items (every node's view). Each version is
    /// parsed once (`refresh_held`); only the incident keys are walked.
    pub fn held_incidents(&self) -> Vec<Incident> {
        self.info
            .prefixed(INCIDENT_PREFIX)
            .filter_map(|(k, it)| match self.alerts.held.get(k) {
                Some((v, i)) if *v == it.version => Some(i.clone()),
                _ => serde_json::from_value::<Incident>((*it.value).clone()).ok(),
            })
            .collect()
    }

    /// Parses the incident items not parsed yet, and forgets those no
    /// longer held (evicted).
    fn refresh_held(&mut self) {
        let mut held = std::mem::take(&mut self.alerts.held);
        let mut fresh = BTreeMap::new();
        for (k, it) in self.info.prefixed(INCIDENT_PREFIX) {
            let parsed = match held.remove(k) {
                Some((v, i)) if v == it.version => Some(i),
                _ => serde_json::from_value::<Incident>((*it.value).clone()).ok(),
            };
            if let Some(i) = parsed {
                fresh.insert(k.clone(), (it.version, i));
            }
        }
        self.alerts.held = fresh;
    }

    /// Writes an open incident (by [`open_key`]) as an item; `notify` when
    /// it is raised or resolved (the notification), not when members join
    /// it.
    fn publish_incident(&mut self, key: &str, notify: bool) {
        self.publish_incident_as(key, notify, false);
    }

    /// As `publish_incident`; `expire` ends it as `expired` (its members
    /// did not come back within [`INCIDENT_TTL`]).
    fn publish_incident_as(&mut self, key: &str, notify: bool, expire: bool) {
        let wall = self.wall().as_millis();
        let cluster = self.cfg.cluster_id.clone();
        let me = self.id;
        let Some(o) = self.alerts.open.get_mut(key) else { return };
        let group = o.group.clone();
        let anomaly = o.anomaly;
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
                let name = match anomaly {
                    None => format!("{cluster}\n{group}\n{least}"),
                    Some(a) => format!("{cluster}\n{group}\n{least}\n{}", a.kind()),
                };
                let h = blake3::hash(name.as_bytes()).to_hex();
                Incident {
                    id: h[..16].to_string(),
                    kind: kind_of(anomaly).into(),
                    group: group.clone(),
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
        let nodes = format!("{}: {} node{}", inc.group, n, if n == 1 { "" } else { "s" });
        inc.summary = match (anomaly, resolved, expire) {
            (None, true, _) => format!("{nodes} back"),
            (None, false, true) => format!("{nodes} gone for good (no longer tracked)"),
            (None, false, false) => format!("{nodes} down"),
            (Some(a), true, _) => format!("{nodes} no longer {}", a.word()),
            (Some(a), false, true) => format!("{nodes} {} for an hour (no longer tracked)", a.word()),
            (Some(a), false, false) => format!("{nodes} {}", a.word()),
        };
        o.raised = Some(inc.clone());
        if ends {
            if let Some(o) = self.alerts.open.remove(key) {
                for m in &o.members {
                    match anomaly {
                        None => self.alerts.suspects.remove(m).map(|_| ()),
                        Some(a) => self.alerts.odd.remove(&(*m, a)).map(|_| ()),
                    };
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
        let Some((version, v)) = self.info.get(key).map(|it| (it.version, (*it.value).clone())) else { return };
        if let Ok(inc) = serde_json::from_value::<Incident>(v) {
            self.alerts.held.insert(key.to_string(), (version, inc.clone()));
            self.emit(Event::Incident { incident: inc, notify: false });
        }
    }

    /// Once a second: observations again until named, incidents raised
    /// once their window closed, resolutions, "I am up".
    pub(super) fn alerts_tick(&mut self) {
        let now = self.now;
        let me = self.id;
        let started = *self.alerts.started.get_or_insert(now);
        self.refresh_held();
        let mut named: BTreeSet<(NodeId, Option<Anomaly>)> = BTreeSet::new();
        for i in self.held_incidents().into_iter().filter(|i| i.state == "firing") {
            let a = Anomaly::of_kind(&i.kind);
            named.extend(i.members.into_iter().map(|m| (m, a)));
        }
        // Up for a while after a start or a stall, and for as long as an
        // incident counts this node dead (a leader that took over after
        // it came back has not heard it yet).
        let up = now.since(started) < ANNOUNCE_FOR || named.contains(&(me, None));
        if up && self.tree_place().is_some() {
            let labels = self.cfg.labels.clone();
            self.send_verdict(Said { subject: me, observer: me, down: false, degree: 0, labels, anomaly: None }, 0);
        }
        self.alerts.observed.retain(|id, o| !named.contains(&(*id, None)) && now.since(o.since) < OBSERVE_FOR);
        self.judge_neighbours(&named);
        self.adopt_held();
        self.raise_due();
    }

    /// A settled leader takes on every firing incident it holds as an
    /// item and keeps no entry for (an earlier leader raised it): its
    /// members resolve it when they are back (a node counted dead says so
    /// while it is named; an anomaly no observer holds is over), and it
    /// expires [`INCIDENT_TTL`] after it was raised.
    fn adopt_held(&mut self) {
        if !self.leads() {
            return;
        }
        let now = self.now;
        let wall = self.wall().as_millis();
        let orphans: Vec<(String, Incident)> = self
            .alerts
            .held
            .values()
            .map(|(_, i)| i)
            .filter(|i| i.state == "firing")
            .map(|i| (open_key(&i.group, Anomaly::of_kind(&i.kind)), i.clone()))
            .filter(|(k, _)| !self.alerts.open.contains_key(k))
            .collect();
        for (k, i) in orphans {
            if self.alerts.open.len() >= MAX_OPEN {
                break;
            }
            let age = wall.saturating_sub(i.started_ms).saturating_mul(1000);
            let o = Open {
                group: i.group.clone(),
                anomaly: Anomaly::of_kind(&i.kind),
                members: i.members.iter().copied().collect(),
                back: BTreeSet::new(),
                opened: Time(now.as_micros().saturating_sub(age)),
                joined: now,
                raised: Some(i),
            };
            self.alerts.open.insert(k, o);
        }
    }

    /// Judges the neighbours' links (`crate::anomaly`) and tells the leader
    /// the anomalies that held for [`ANOMALY_HOLD`], again while they hold,
    /// and that they are over once they have not held for
    /// [`ANOMALY_CLEAR`].
    fn judge_neighbours(&mut self, named: &BTreeSet<(NodeId, Option<Anomaly>)>) {
        let now = self.now;
        let me = self.id;
        let links: Vec<(NodeId, anomaly::LinkQuality)> =
            self.active.iter().map(|(id, p)| (*id, p.quality.clone())).collect();
        let seen: BTreeSet<(NodeId, Anomaly)> = anomaly::judge(&links).into_iter().collect();
        for k in &seen {
            self.alerts.judged.entry(*k).or_insert(Judged { first: now, last: now, sent: None }).last = now;
        }
        let active = &self.active;
        // An anomaly not yet told must hold without a break; a neighbour
        // no longer linked is not judged (its death has its own verdict).
        self.alerts.judged.retain(|k, j| active.contains_key(&k.0) && (j.sent.is_some() || seen.contains(k)));
        let mut tell = Vec::new();
        let mut over = Vec::new();
        for (k, j) in self.alerts.judged.iter_mut() {
            let due = match j.sent {
                None => now.since(j.first) >= ANOMALY_HOLD,
                Some(_) if now.since(j.last) >= ANOMALY_CLEAR => {
                    over.push(*k);
                    false
                }
                Some(t) => {
                    // Every second for a few seconds (a verdict lost on its
                    // way up), then every ANOMALY_REFRESH: a judgement no
                    // quorum shares is not sent up the tree every second
                    // for as long as the link stays bad.
                    let named = named.contains(&(k.0, Some(k.1)));
                    let every =
                        if named || now.since(j.first) >= ANOMALY_HOLD * 2 { ANOMALY_REFRESH } else { Duration::ZERO };
                    now.since(t) >= every
                }
            };
            if due {
                j.sent = Some(now);
                tell.push(*k);
            }
        }
        for k in &over {
            self.alerts.judged.remove(k);
        }
        for (id, p) in self.active.iter_mut() {
            p.quality.watch = Anomaly::ALL.iter().any(|a| self.alerts.judged.contains_key(&(*id, *a)));
        }
        let said = |node: &Self, (id, a): (NodeId, Anomaly), down: bool| Said {
            subject: id,
            observer: me,
            down,
            degree: node.active.get(&id).and_then(|p| p.degree).unwrap_or(0),
            labels: node.alerts.labels.get(&id).cloned().unwrap_or_default(),
            anomaly: Some(a),
        };
        for k in tell {
            let v = said(self, k, true);
            self.send_verdict(v, 0);
        }
        for k in over {
            let v = said(self, k, false);
            self.send_verdict(v, 0);
        }
    }

    /// Raises the incidents whose grouping window has closed, resolves
    /// those whose members are all back, and ends those open for longer
    /// than [`INCIDENT_TTL`] (leader only).
    pub(super) fn raise_due(&mut self) {
        // Every tick, so that a settled leader's time is counted before
        // the first verdict reaches it.
        let leading = self.leads();
        if !self.alerts.observed.is_empty() {
            self.resend_observed();
        }
        if self.alerts.open.is_empty() && self.alerts.suspects.is_empty() && self.alerts.odd.is_empty() {
            return;
        }
        if !leading {
            // Another node leads now: it adopts the incidents from their
            // items; what was gathered here goes.
            self.alerts.open.clear();
            self.alerts.suspects.clear();
            self.alerts.odd.clear();
            return;
        }
        let now = self.now;
        // Anomalies no observer holds any longer are over.
        for s in self.alerts.odd.values_mut() {
            s.observers.retain(|_, t| now.since(*t) < ANOMALY_FRESH);
        }
        let quiet: Vec<(NodeId, Anomaly)> = self
            .alerts
            .odd
            .iter()
            .filter(|(_, s)| s.observers.is_empty() && now.since(s.last) >= ANOMALY_FRESH)
            .map(|(k, _)| *k)
            .collect();
        for k in quiet {
            self.alerts.odd.remove(&k);
        }
        // A member of an anomaly's incident that no observer holds (any
        // more, or not yet to this leader, which adopted the incident
        // [`ANOMALY_FRESH`] ago) is over.
        let Alerts { open, odd, .. } = &mut self.alerts;
        for o in open.values_mut().filter(|o| o.raised.is_some() && now.since(o.joined) >= ANOMALY_FRESH) {
            let Some(a) = o.anomaly else { continue };
            let over: Vec<NodeId> =
                o.members.iter().filter(|m| !o.back.contains(m) && !odd.contains_key(&(**m, a))).copied().collect();
            o.back.extend(over);
        }
        let mut raise = Vec::new();
        let mut end = Vec::new();
        let mut drop = Vec::new();
        for (k, o) in &self.alerts.open {
            let all_back = !o.members.is_empty() && o.members.iter().all(|m| o.back.contains(m));
            match &o.raised {
                // Over before it was raised (a stalled node back within
                // the grouping window): nothing to tell.
                None if all_back => drop.push(k.clone()),
                None if now.since(o.joined) >= GROUP_WINDOW || now.since(o.opened) >= GROUP_MAX => {
                    raise.push(k.clone())
                }
                None => {}
                Some(_) if all_back => end.push((k.clone(), false)),
                Some(_) if now.since(o.opened) >= INCIDENT_TTL => end.push((k.clone(), true)),
                Some(_) => {}
            }
        }
        for k in drop {
            if let Some(o) = self.alerts.open.remove(&k) {
                for m in &o.members {
                    match o.anomaly {
                        None => self.alerts.suspects.remove(m).map(|_| ()),
                        Some(a) => self.alerts.odd.remove(&(*m, a)).map(|_| ()),
                    };
                }
            }
        }
        for k in raise {
            self.publish_incident(&k, true);
        }
        for (k, expire) in end {
            self.publish_incident_as(&k, true, expire);
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
            let v = Said { subject: id, observer: me, down: o.down, degree: o.degree, labels: o.labels, anomaly: None };
            self.send_verdict(v, 0);
        }
    }

    /// Says this node is up (to the leader) for the next [`ANNOUNCE_FOR`].
    pub(super) fn announce_up(&mut self) {
        self.alerts.started = Some(self.now);
    }

    /// This node was stopped for a whole detection window: it says it is
    /// up, and does not report deaths for a while.
    ///
    /// What it held as the tree's leader is stale: while it was stopped a
    /// successor took the lead, raised and resolved what happened. Were it
    /// to wake still settled, it would notify those incidents again; it
    /// drops what it held and settles anew (adopting what is still firing).
    pub(super) fn was_stalled(&mut self) {
        self.alerts.stalled = Some(self.now);
        self.alerts.lead_since = None;
        self.alerts.open.clear();
        self.alerts.suspects.clear();
        self.alerts.odd.clear();
        self.announce_up();
    }

    /// Notifications this node made.
    pub fn notifications(&self) -> u64 {
        self.alerts.notified
    }

    /// Entries held for alerting (bounded by `TableSizes`).
    pub(super) fn alert_entries(&self) -> usize {
        self.alerts.labels.len()
            + self.alerts.observed.len()
            + self.alerts.suspects.len()
            + self.alerts.open.len()
            + self.alerts.judged.len()
            + self.alerts.odd.len()
            + self.alerts.held.len()
    }
}
