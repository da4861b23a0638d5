//! Byzantine nodes: members that run the real core (so they hold links,
//! take work and learn the network) and, besides, attack it. Every
//! `ATTACK_EVERY` each sends a burst of datagrams, as bytes on the wire,
//! drawn from the attacks enabled with `--attack`:
//!
//! - `forge`: messages of every kind under honest nodes' ids, with hostile
//!   contents (extreme energies, versions and hop counts, made-up hashes,
//!   lists at their bounds), signed with the attacker's own key where a
//!   signature is needed;
//! - `replay`: datagrams the attacker received, sent on to other nodes
//!   (another destination) or back to their sender later;
//! - `mutate`: received datagrams with bytes changed or cut;
//! - `amplify`: small requests that would make a node answer at length
//!   (empty digests, grafts of everything, far-reaching blob wants, needy
//!   hellos, urgent joins) to neighbours and strangers alike;
//! - `sybil`: votes for running jobs under invented ids (unsigned) and
//!   under fresh keys of its own (signed, for a token the home never
//!   issued);
//! - `usurp`: summaries claiming a running job is done (signed by itself,
//!   or claiming to be its home), and records, decisions and endings sent
//!   to nodes as if it were the home;
//! - `keep`: custody certificates of its own for blobs nobody has, and
//!   releases of other origins' blobs.
//!
//! In the job scenario a Byzantine node also returns wrong partial results
//! (as `--liars` do). The run then checks what honest nodes must keep:
//! no crash, every table in bounds (as always), the job's digest equal to
//! the reference, and the honest nodes one network.

use crate::sim::slot_addr;
use clap::ValueEnum;
use ryx_core::blobs::Hash;
use ryx_core::identity::{Hex32, Hex64, Identity, Proof};
use ryx_core::jobs::{
    BlobRef, Decision, GradientEntry, JobId, JobRecordPage, JobReport, PartialRef, UnitRef, UnitResult, WorkToken,
};
use ryx_core::rng::Rng;
use ryx_core::wire::{
    self, Announce, DigestEntry, Envelope, Item, ItemId, KeepCert, Keeper, Message, PeerInfo, Space, PROTOCOL_VERSION,
};
use ryx_core::NodeId;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// How often a Byzantine node attacks.
pub const ATTACK_EVERY: Duration = Duration::from_millis(100);
/// Datagrams per attack.
const BURST: usize = 6;
/// Received datagrams an attacker keeps for replays and mutations.
const CAPTURED: usize = 32;

/// An attack a Byzantine node may make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attack {
    /// Messages under other nodes' ids.
    Forge,
    /// Received datagrams sent again, elsewhere or later.
    Replay,
    /// Received datagrams with bytes changed.
    Mutate,
    /// Small requests for large answers.
    Amplify,
    /// Votes under invented or fresh ids.
    Sybil,
    /// Claims to be a job's home.
    Usurp,
    /// Custody certificates and releases.
    Keep,
}

impl Attack {
    /// Every attack.
    pub const ALL: [Attack; 7] =
        [Attack::Forge, Attack::Replay, Attack::Mutate, Attack::Amplify, Attack::Sybil, Attack::Usurp, Attack::Keep];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Attack::Forge => "forge",
            Attack::Replay => "replay",
            Attack::Mutate => "mutate",
            Attack::Amplify => "amplify",
            Attack::Sybil => "sybil",
            Attack::Usurp => "usurp",
            Attack::Keep => "keep",
        }
    }
}

/// What the attackers did, for the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AttackReport {
    /// Byzantine nodes.
    pub nodes: usize,
    /// Datagrams sent, by attack.
    pub sent: BTreeMap<&'static str, u64>,
    /// Datagrams honest nodes refused, by reason (summed over them).
    pub refused_by_honest: BTreeMap<&'static str, u64>,
    /// Whether the honest live nodes formed one network at the end.
    pub honest_connected: bool,
}

/// What an attacker knows when it attacks (read off its own core and, as
/// an omniscient adversary would, the simulation).
pub(crate) struct View {
    pub me: usize,
    pub my_id: NodeId,
    pub identity: Identity,
    pub neighbours: Vec<usize>,
    pub honest: Vec<(usize, NodeId)>,
    pub jobs: Vec<(JobId, NodeId, u32)>,
    pub blobs: Vec<BlobRef>,
    pub wall_ms: u64,
}

/// The attackers.
pub struct Byzantine {
    /// Which slots are Byzantine.
    pub is_byz: Vec<bool>,
    attacks: Vec<Attack>,
    rng: Rng,
    captured: Vec<VecDeque<Envelope>>,
    sent: BTreeMap<&'static str, u64>,
    seq: u64,
}

impl Byzantine {
    /// `fraction` of the `n` slots are Byzantine (never slot `keep_honest`),
    /// making `attacks`.
    pub fn new(n: usize, fraction: f64, attacks: &[Attack], seed: u64) -> Byzantine {
        let mut rng = Rng::new(seed);
        let count = ((n as f64) * fraction.clamp(0.0, 0.9)).round() as usize;
        let mut slots: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut slots);
        let mut is_byz = vec![false; n];
        for &s in slots.iter().take(count) {
            is_byz[s] = true;
        }
        let attacks = if attacks.is_empty() { Attack::ALL.to_vec() } else { attacks.to_vec() };
        Byzantine { is_byz, attacks, rng, captured: vec![VecDeque::new(); n], sent: BTreeMap::new(), seq: 1 }
    }

    /// Byzantine slots.
    pub fn count(&self) -> usize {
        self.is_byz.iter().filter(|b| **b).count()
    }

    /// What the attackers sent so far.
    pub fn sent(&self) -> &BTreeMap<&'static str, u64> {
        &self.sent
    }

    /// An attacker received `env`: it may use it later.
    pub(crate) fn capture(&mut self, slot: usize, env: &Envelope) {
        let q = &mut self.captured[slot];
        if q.len() >= CAPTURED {
            q.pop_front();
        }
        q.push_back(env.clone());
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        self.rng.pick(v).copied()
    }

    fn hash(&mut self) -> String {
        format!(
            "{:016x}{:016x}{:016x}{:016x}",
            self.rng.next_u64(),
            self.rng.next_u64(),
            self.rng.next_u64(),
            self.rng.next_u64()
        )
    }

    fn energy(&mut self) -> f64 {
        *self.rng.pick(&[1e300, 1e9, 1000.0, 100.0, 4.0, 0.0, -5.0, 1e-300]).unwrap_or(&1e300)
    }

    fn version(&mut self, wall_ms: u64) -> u64 {
        let choices = [u64::MAX, u64::MAX - 1, wall_ms * 1000 + 30_000_000, wall_ms * 1000 + 600_000_000, 0, 1];
        *self.rng.pick(&choices).unwrap_or(&u64::MAX)
    }

    fn fake_proof(&mut self, id: &Identity) -> Proof {
        // Right key, signature over nothing in particular.
        let mut p = id.prove(b"ryx/nothing", self.rng.next_u64(), &[b"x"]);
        if self.rng.chance(0.5) {
            p.sig = Hex64([7; 64]);
            p.key = Hex32([9; 32]);
        }
        p
    }

    fn peer(&mut self, v: &View) -> PeerInfo {
        match self.pick(&v.honest) {
            Some((s, id)) => PeerInfo { id, addr: slot_addr(s) },
            None => PeerInfo { id: NodeId(self.rng.next_u64()), addr: slot_addr(0) },
        }
    }

    fn item(&mut self, v: &View, space: Space, origin: NodeId) -> Item {
        let key = match space {
            Space::Job => v.jobs.first().map_or_else(|| "00".repeat(16), |j| j.0.to_string()),
            Space::Reputation => format!("{}/{}", self.peer(v).id, origin),
            Space::Topology => origin.to_string(),
            Space::Info => format!("key-{}", self.rng.below(4)),
        };
        let value = match space {
            Space::Topology => serde_json::json!({"addr": slot_addr(v.me), "http": "127.0.0.1:1", "links": []}),
            Space::Reputation => serde_json::json!(u64::MAX),
            _ => serde_json::json!({"x": "y".repeat(self.rng.below(200))}),
        };
        let wall = v.wall_ms;
        Item {
            id: ItemId { space, key, version: self.version(wall), origin },
            value: value.into(),
            energy: self.energy(),
            hops: *self.rng.pick(&[0, 1, u32::MAX - 2, u32::MAX]).unwrap_or(&0),
            born: self.rng.next_u64(),
            proof: if self.rng.chance(0.5) { Some(Box::new(self.fake_proof(&v.identity))) } else { None },
        }
    }

    /// A message of a random kind with hostile contents.
    fn hostile(&mut self, v: &View, victim: NodeId) -> Message {
        let peer = self.peer(v);
        let hash = self.hash();
        let job = v
            .jobs
            .first()
            .map_or_else(|| JobId::from(format!("{victim}{:016x}", self.rng.next_u64())), |j| j.0.clone());
        let blob = BlobRef {
            hash: Hash::from(hash.clone()),
            size: *self.rng.pick(&[0, 1, 1 << 20, u64::MAX / 2]).unwrap_or(&1),
        };
        let space =
            *self.rng.pick(&[Space::Info, Space::Job, Space::Reputation, Space::Topology]).unwrap_or(&Space::Info);
        let item = self.item(v, space, victim);
        match self.rng.below(29) {
            0 => Message::Hello { active: 255, needy: true },
            1 => Message::HelloReply { peers: vec![peer; 64] },
            2 => Message::Join { long: true, urgent: true, degree: 0, labels: vec![], short: false },
            3 => Message::JoinReply { accepted: true, peers: vec![peer], labels: vec![], short: false },
            4 => Message::Disconnect,
            5 => Message::Leave,
            6 => Message::Ping {
                nonce: self.rng.next_u64(),
                // A made-up leader, the least id there is, with a heartbeat
                // from the far future.
                tree: Some(ryx_core::wire::TreeAdvert {
                    leader: ryx_core::NodeId(1),
                    beat: u64::MAX,
                    dist: 0,
                    parent: None,
                }),
                // A coordinate at the edge of the plane claiming to be
                // sure of itself, to drag the receiver's away.
                coord: Some(ryx_core::coords::Coord { x: 9e3, y: -9e3, h: 0.0, e: 0.0 }),
            },
            7 => Message::Ack { nonce: self.rng.next_u64(), neighbor: true, degree: 255, tree: None, coord: None },
            8 => Message::PingReq { nonce: self.rng.next_u64(), target: peer },
            9 => Message::IndirectAck { nonce: self.rng.next_u64(), target: peer.id },
            10 => Message::Shuffle { peers: vec![peer; 64] },
            11 => Message::ShuffleReply { peers: vec![peer; 64] },
            12 => Message::Gossip { items: vec![item], sync: self.rng.chance(0.5) },
            13 => Message::IHave {
                items: vec![Announce { id: item.id.clone(), energy: self.energy(), hops: u32::MAX }; 32],
            },
            14 => Message::Graft { ids: vec![item.id] },
            15 => Message::Prune,
            16 => Message::SyncDigest {
                space: *self.rng.pick(&[Space::Info, Space::Job, Space::Reputation]).unwrap_or(&Space::Info),
                after: String::new(),
                upto: None,
                entries: vec![DigestEntry { key: "k".into(), version: u64::MAX, origin: victim }],
            },
            17 => Message::SyncRequest { space: Space::Info, keys: (0..64).map(|i| format!("key-{i}")).collect() },
            18 => Message::Load {
                free: u16::MAX,
                room: u16::MAX,
                jobs: vec![GradientEntry { job: job.clone(), dist: 0 }; 8],
            },
            19 => Message::Work {
                token: Box::new(WorkToken {
                    job: job.clone(),
                    unit: self.rng.next_u64() as u32,
                    replica: 250,
                    chunk: Hash::from(hash.as_str()),
                    size: blob.size,
                    holders: vec![slot_addr(v.me)],
                    kind: "word-count".into(),
                    params: serde_json::json!({}),
                    energy: self.energy(),
                    // Half of them a combine step whose inputs do not give
                    // its name.
                    inputs: if self.rng.chance(0.5) {
                        vec![PartialRef { digest: Hash::from(hash), holders: vec![slot_addr(v.me)] }]
                    } else {
                        Vec::new()
                    },
                }),
            },
            20 => Message::JobReport { report: Box::new(self.report(&job, victim, None)) },
            21 => Message::JobRecord {
                record: Box::new(JobRecordPage {
                    job: job.clone(),
                    kind: "word-count".into(),
                    params: serde_json::json!({}),
                    redundancy: 7,
                    energy: self.energy(),
                    home: victim,
                    heirs: vec![peer; 8],
                    total_units: 65_536,
                    offset: u32::MAX - 3,
                    // Any fan-in, the wire's bound included.
                    fan_in: (self.rng.next_u64() % 40) as u16,
                    units: vec![
                        UnitRef { hash: Hash::from(hash), size: 1, holders: vec![slot_addr(v.me)] };
                        ryx_core::jobs::UNITS_PER_PAGE
                    ],
                    created: 0,
                    // An appointment signed by the attacker, not the creator.
                    appointment: Some(ryx_core::attest::Appointment::new(
                        &v.identity,
                        "sim",
                        v.wall_ms,
                        &job,
                        vec![PeerInfo { id: v.my_id, addr: slot_addr(v.me) }; 16],
                    )),
                    dataset: None,
                }),
            },
            22 => Message::JobDecided {
                job: job.clone(),
                decisions: (0..64)
                    .map(|u| Decision {
                        unit: u32::MAX - u,
                        digest: hash.clone(),
                        holders: vec![slot_addr(v.me)],
                        votes: Vec::new(),
                    })
                    .collect(),
            },
            23 => Message::JobFinished {
                job,
                result: Hash::from(hash.clone()),
                digest: hash,
                size: u64::MAX,
                http: slot_addr(v.me),
            },
            24 => Message::BlobOffer { blobs: vec![blob; 64], http: slot_addr(v.me), energy: self.energy() },
            25 => Message::BlobHave {
                hashes: vec![Hash::from(hash)],
                http: slot_addr(v.me),
                holder: victim,
                kept: true,
                proof: Box::new(self.fake_proof(&v.identity)),
            },
            26 => Message::BlobWant { hashes: vec![Hash::from(hash); 64], hops: wire::MAX_WANT_HOPS },
            27 => {
                // A confirmation of a made-up result, in its own name.
                let digest = self.hash();
                let confirmation =
                    ryx_core::attest::Confirmation::new(&v.identity, "sim", v.wall_ms, &job, &hash, &digest);
                Message::JobConfirmed { job, result: Hash::from(hash), digest, confirmation: Box::new(confirmation) }
            }
            _ => self.keep_msg(v, victim),
        }
    }

    fn report(&mut self, job: &str, worker: NodeId, signer: Option<&Identity>) -> JobReport {
        let results = (0..4)
            .map(|u| UnitResult { unit: u, replica: u as u8, digest: self.hash(), token: "0".repeat(32), proof: None })
            .collect();
        let mut r = JobReport {
            job: JobId::from(job),
            worker,
            http: slot_addr(0),
            holding: (0..ryx_core::jobs::HOLDING_PER_REPORT as u32).map(|u| (u, 0)).collect(),
            results,
            hops: 0,
            proof: None,
        };
        if let Some(id) = signer {
            let b = r.signed_bytes("sim");
            r.proof = Some(id.prove(ryx_core::identity::domain::REPORT, self.rng.next_u64() % 4, &[&b]));
        }
        r
    }

    fn keep_msg(&mut self, v: &View, origin: NodeId) -> Message {
        let release = self.rng.chance(0.5) && !v.blobs.is_empty();
        let blobs: Vec<BlobRef> = if release {
            v.blobs.iter().take(8).cloned().collect()
        } else {
            (0..8).map(|_| BlobRef { hash: Hash::from(self.hash()), size: 1 << 20 }).collect()
        };
        let k = if release { 0 } else { 33 };
        let bytes = KeepCert::signed_bytes("sim", &blobs, k, v.my_id, 0);
        let proof = v.identity.prove(ryx_core::identity::domain::KEEP, v.wall_ms + 1, &[&bytes]);
        // Its own certificate (a member may ask), or one claiming another
        // origin with its own signature.
        let cert_origin = if self.rng.chance(0.5) { v.my_id } else { origin };
        let hashes = blobs.iter().map(|b| b.hash.clone()).collect();
        Message::BlobKeep {
            cert: Box::new(KeepCert { blobs, k, origin: cert_origin, until: 0, proof }),
            hashes,
            keepers: vec![Keeper { id: v.my_id, addr: slot_addr(v.me), http: slot_addr(v.me) }],
        }
    }

    fn envelope(&mut self, from: NodeId, to: Option<NodeId>, msg: Message, signer: &Identity, wall_ms: u64) -> Vec<u8> {
        self.seq += 1;
        let mut env = Envelope {
            v: PROTOCOL_VERSION,
            cluster: "sim".into(),
            from,
            to,
            seq: self.seq,
            msg,
            sig: None,
            tag: None,
            short: false,
        };
        if env.msg.needs_sig() {
            wire::sign_envelope(&mut env, signer, wall_ms);
            env.from = from;
        }
        wire::encode(&env).unwrap_or_else(|_| b"{".to_vec())
    }

    /// One burst of attacks by slot `v.me`: `(destination slot, bytes)`.
    pub(crate) fn attack(&mut self, v: &View, all: usize) -> Vec<(usize, Vec<u8>, &'static str)> {
        let mut out = Vec::new();
        for _ in 0..BURST {
            let Some(a) = self.pick(&self.attacks.clone()) else { break };
            let to = if self.rng.chance(0.6) { self.pick(&v.neighbours) } else { None }
                .unwrap_or_else(|| self.rng.below(all));
            if to == v.me {
                continue;
            }
            let to_id = v.honest.iter().find(|(s, _)| *s == to).map(|(_, id)| *id);
            let victim = self.pick(&v.honest).map_or(NodeId(self.rng.next_u64()), |(_, id)| id);
            match a {
                Attack::Forge => {
                    let m = self.hostile(v, victim);
                    out.push((to, self.envelope(victim, to_id, m, &v.identity, v.wall_ms), a.name()));
                }
                Attack::Replay => {
                    let Some(env) = self.captured[v.me].get(self.rng.below(CAPTURED)).cloned() else { continue };
                    let dest = if self.rng.chance(0.5) { to } else { self.rng.below(all) };
                    out.push((dest, wire::encode(&env).unwrap_or_default(), a.name()));
                }
                Attack::Mutate => {
                    let Some(env) = self.captured[v.me].get(self.rng.below(CAPTURED)).cloned() else { continue };
                    let mut b = wire::encode(&env).unwrap_or_default();
                    if b.is_empty() {
                        continue;
                    }
                    for _ in 0..1 + self.rng.below(8) {
                        let i = self.rng.below(b.len());
                        b[i] = self.rng.next_u64() as u8;
                    }
                    if self.rng.chance(0.3) {
                        b.truncate(self.rng.below(b.len()));
                    }
                    out.push((to, b, a.name()));
                }
                Attack::Amplify => {
                    let m = match self.rng.below(5) {
                        0 => Message::SyncDigest {
                            space: Space::Info,
                            after: String::new(),
                            upto: None,
                            entries: vec![],
                        },
                        1 => Message::Graft {
                            ids: (0..64)
                                .map(|i| ItemId {
                                    space: Space::Info,
                                    key: format!("key-{i}"),
                                    version: 0,
                                    origin: victim,
                                })
                                .collect(),
                        },
                        2 => Message::BlobWant {
                            hashes: v.blobs.iter().take(64).map(|b| b.hash.clone()).collect(),
                            hops: wire::MAX_WANT_HOPS,
                        },
                        3 => Message::Hello { active: 0, needy: true },
                        _ => Message::Join { long: true, urgent: true, degree: 0, labels: vec![], short: false },
                    };
                    // From itself (its signature is valid: the attack is the
                    // asking, not a forgery) to several nodes at once.
                    for _ in 0..4 {
                        let d = self.rng.below(all);
                        if d == v.me {
                            continue;
                        }
                        let d_id = v.honest.iter().find(|(s, _)| *s == d).map(|(_, id)| *id);
                        let b = self.envelope(v.my_id, d_id, m.clone(), &v.identity, v.wall_ms);
                        out.push((d, b, a.name()));
                    }
                }
                Attack::Sybil => {
                    let Some((job, home, _units)) = v.jobs.first().cloned() else { continue };
                    let Some(home_slot) = v.honest.iter().find(|(_, id)| *id == home).map(|(s, _)| *s) else {
                        continue;
                    };
                    let fresh = Identity::from_u64(self.rng.next_u64());
                    let report = if self.rng.chance(0.5) {
                        let invented = NodeId(self.rng.next_u64());
                        self.report(&job, invented, None)
                    } else {
                        self.report(&job, fresh.id(), Some(&fresh))
                    };
                    let m = Message::JobReport { report: Box::new(report) };
                    out.push((home_slot, self.envelope(v.my_id, Some(home), m, &v.identity, v.wall_ms), a.name()));
                }
                Attack::Usurp => {
                    let Some((job, home, units)) = v.jobs.first().cloned() else { continue };
                    let origin = if self.rng.chance(0.5) { v.my_id } else { home };
                    let (fake, fake_digest) = (self.hash(), self.hash());
                    // Its own confirmation of its own claim, correctly
                    // signed (a writer may not confirm itself), or one in
                    // another's name (which the signature gives away).
                    let mut conf =
                        ryx_core::attest::Confirmation::new(&v.identity, "sim", v.wall_ms, &job, &fake, &fake_digest);
                    if self.rng.chance(0.5) {
                        conf.by = self.peer(v).id;
                    }
                    let summary = serde_json::json!({
                        "job_id": job, "kind": "word-count", "state": "done", "units_total": units,
                        "units_done": units, "redundancy": 2, "home": origin, "home_http": slot_addr(v.me),
                        "created": 0, "result_hash": fake, "result_digest": fake_digest,
                        "result_size": 10, "result_holders": [slot_addr(v.me)], "co_homes": [v.my_id],
                        "confirmations": [conf],
                        "error": null, "stats": {"results": 0, "reissued": 0, "extra_replicas": 0,
                        "disagreements": 0, "workers": 0, "takeovers": 0, "elapsed_ms": null}
                    });
                    let mut item = Item {
                        id: ItemId {
                            space: Space::Job,
                            key: job.to_string(),
                            version: v.wall_ms * 1000 + 1_000_000,
                            origin,
                        },
                        value: summary.into(),
                        energy: 100.0,
                        hops: 0,
                        born: 0,
                        proof: None,
                    };
                    let b = item.signed_bytes("sim");
                    item.proof = Some(Box::new(v.identity.prove(ryx_core::identity::domain::ITEM, v.wall_ms, &[&b])));
                    let m = if self.rng.chance(0.6) {
                        Message::Gossip { items: vec![item], sync: true }
                    } else {
                        self.hostile(v, home)
                    };
                    out.push((to, self.envelope(v.my_id, to_id, m, &v.identity, v.wall_ms), a.name()));
                }
                Attack::Keep => {
                    let m = self.keep_msg(v, victim);
                    out.push((to, self.envelope(v.my_id, to_id, m, &v.identity, v.wall_ms), a.name()));
                }
            }
        }
        for (_, _, name) in &out {
            *self.sent.entry(name).or_default() += 1;
        }
        out
    }
}
