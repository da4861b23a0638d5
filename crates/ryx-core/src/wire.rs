//! The wire format: JSON datagrams in a versioned envelope.
//!
//! ```json
//! {"v":2,"cluster":"test","from":"5f0c9a1e2b3d4c6f","to":"0a1b2c3d4e5f6071","seq":42,
//!  "msg":{"kind":"ping","body":{"nonce":7}}}
//! ```
//!
//! Every datagram is bounded ([`MAX_DATAGRAM`]) and decoded in stages so that
//! a rejection names its reason: too big, not JSON, another protocol version,
//! another cluster, an unknown message kind, or contents out of bounds.
//!
//! `to` names the node the datagram is for (absent only on discovery
//! hellos, whose sender does not know who will hear them): a receiver drops
//! a datagram meant for another node, so a captured datagram cannot be
//! replayed at a third node. `sig` is the sender's own signature
//! ([`crate::identity`]), required on the kinds [`Message::needs_sig`]
//! names. `tag` is the cluster MAC ([`crate::auth`]), always last.

use crate::blobs::Hash;
use crate::id::NodeId;
use crate::identity::Proof;
use crate::jobs::{BlobRef, Decision, GradientEntry, JobRecordPage, JobReport, WorkToken};
use serde::{Deserialize, Serialize};
use crate::topology::NeighborList;
use serde_json::value::RawValue;
use std::net::SocketAddr;
use std::sync::Arc;

/// Version of this wire format.
pub const PROTOCOL_VERSION: u16 = 2;
/// Largest datagram a node sends or accepts, in bytes.
pub const MAX_DATAGRAM: usize = 16 * 1024;
/// Longest info key, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Largest serialized info value, in bytes.
pub const MAX_VALUE_LEN: usize = 8 * 1024;
/// Most peers in any list carried by one message.
pub const MAX_PEERS_PER_MESSAGE: usize = 64;
/// Most item ids or digests in one message.
pub const MAX_IDS_PER_MESSAGE: usize = 128;
/// Most times a `blob_want` question may be passed on.
pub const MAX_WANT_HOPS: u8 = 4;

/// A datagram: who sent it, for which cluster, and the message itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    /// Protocol version.
    pub v: u16,
    /// Cluster the sender belongs to.
    pub cluster: String,
    /// Sender's node id.
    pub from: NodeId,
    /// The node the datagram is for (absent: a discovery hello).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<NodeId>,
    /// Sender's message counter (signed messages: replay protection).
    pub seq: u64,
    /// The message.
    pub msg: Message,
    /// The sender's signature, on the kinds that need one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<Box<Proof>>,
    /// Authentication tag, when the cluster has a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// A peer as carried in messages: its id and UDP address.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerInfo {
    /// Node id.
    pub id: NodeId,
    /// UDP address.
    pub addr: SocketAddr,
}

/// Which table an item belongs to.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Space {
    /// User key/value information (`/v1/info`).
    Info,
    /// A node's neighbour list (`/v1/topology`); the key is the node id.
    Topology,
    /// A job's summary (`/v1/jobs`); the key is the job id.
    Job,
    /// How often a node disagreed with a majority; the key is the node id.
    Reputation,
}

fn info_space() -> Space {
    Space::Info
}

fn is_info_space(s: &Space) -> bool {
    *s == Space::Info
}

/// Identity of one version of one item.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemId {
    /// Table.
    pub space: Space,
    /// Key within the table.
    pub key: String,
    /// Version (last writer wins by version, then origin).
    pub version: u64,
    /// Node that wrote this version.
    pub origin: NodeId,
}

/// The value of a diffusing item. Values are shared, not copied, as an item
/// is stored and forwarded to several neighbours; a topology item's value is
/// parsed once, where it is decoded, and the parsed list is what nodes keep.
/// Both forms serialize to the same JSON.
#[derive(Clone, Debug, PartialEq)]
pub enum ItemValue {
    /// Any JSON (info items, job summaries, reputation records; and a
    /// topology value that is not a neighbour list, which is refused where
    /// it is handled).
    Json(Arc<serde_json::Value>),
    /// A neighbour list (the value of a topology item).
    Topology(Arc<NeighborList>),
}

impl ItemValue {
    /// The value as JSON (a neighbour list is converted).
    pub fn to_json(&self) -> Arc<serde_json::Value> {
        match self {
            ItemValue::Json(v) => v.clone(),
            ItemValue::Topology(l) => Arc::new(serde_json::to_value(&**l).unwrap_or(serde_json::Value::Null)),
        }
    }

    /// The value, if it is a JSON unsigned integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            ItemValue::Json(v) => v.as_u64(),
            ItemValue::Topology(_) => None,
        }
    }

    /// The value as a neighbour list, if it is one.
    pub fn neighbor_list(&self) -> Option<Arc<NeighborList>> {
        match self {
            ItemValue::Topology(l) => Some(l.clone()),
            ItemValue::Json(v) => NeighborList::deserialize(&**v).ok().map(Arc::new),
        }
    }

    /// Length of the value serialized.
    pub fn len(&self) -> usize {
        match self {
            ItemValue::Json(v) => value_len(v),
            ItemValue::Topology(l) => serde_json::to_vec(&**l).map(|b| b.len()).unwrap_or(usize::MAX),
        }
    }

    /// Whether the value serializes to nothing (never: JSON has no empty value).
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl From<serde_json::Value> for ItemValue {
    fn from(v: serde_json::Value) -> Self {
        ItemValue::Json(Arc::new(v))
    }
}

impl Serialize for ItemValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ItemValue::Json(v) => v.serialize(s),
            ItemValue::Topology(l) => l.serialize(s),
        }
    }
}

/// An item as it is decoded, before its value is typed by its space.
#[derive(Deserialize)]
struct RawItem {
    id: ItemId,
    value: serde_json::Value,
    energy: f64,
    hops: u32,
    born: u64,
    #[serde(default)]
    proof: Option<Proof>,
}

impl From<RawItem> for Item {
    fn from(r: RawItem) -> Item {
        let value = match r.id.space {
            Space::Topology => match NeighborList::deserialize(&r.value) {
                Ok(l) => ItemValue::Topology(Arc::new(l)),
                Err(_) => ItemValue::Json(Arc::new(r.value)),
            },
            _ => ItemValue::Json(Arc::new(r.value)),
        };
        Item { id: r.id, value, energy: r.energy, hops: r.hops, born: r.born, proof: r.proof }
    }
}

/// A diffusing item: a versioned key/value pair with energy.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(from = "RawItem")]
pub struct Item {
    /// Which version of which key.
    pub id: ItemId,
    /// The value.
    pub value: ItemValue,
    /// Energy the sender holds it with; the receiver applies one hop of decay.
    pub energy: f64,
    /// Hops travelled from the origin.
    pub hops: u32,
    /// When the origin wrote it (origin's clock, microseconds since the Unix
    /// epoch in the daemon); used for diffusion-latency metrics only.
    pub born: u64,
    /// The origin's signature over the version and value (required on job
    /// summaries and reputation records; see [`Item::signed_parts`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Proof>,
}

impl Item {
    /// The bytes an origin signs: space, key, version, origin, birth time
    /// and the value (energy and hops change on the way and are not signed).
    pub fn signed_bytes(&self, cluster: &str) -> Vec<u8> {
        let value = serde_json::to_vec(&self.value).unwrap_or_default();
        let space = serde_json::to_vec(&self.id.space).unwrap_or_default();
        let mut out = Vec::with_capacity(value.len() + self.id.key.len() + cluster.len() + 64);
        for part in [cluster.as_bytes(), &space, self.id.key.as_bytes()] {
            out.extend_from_slice(&(part.len() as u64).to_le_bytes());
            out.extend_from_slice(part);
        }
        out.extend_from_slice(&self.id.version.to_le_bytes());
        out.extend_from_slice(&self.id.origin.0.to_le_bytes());
        out.extend_from_slice(&self.born.to_le_bytes());
        out.extend_from_slice(&value);
        out
    }
}

/// A lazy announcement: "I have this item, with this energy".
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Announce {
    /// The item.
    pub id: ItemId,
    /// Energy the announcer holds it with.
    pub energy: f64,
    /// Hops the announcer's copy travelled.
    #[serde(default)]
    pub hops: u32,
}

/// One line of an anti-entropy digest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DigestEntry {
    /// Key.
    pub key: String,
    /// Version held.
    pub version: u64,
    /// Origin of the version held.
    pub origin: NodeId,
}

/// An origin's signed request that `k` copies of some blobs be kept.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KeepCert {
    /// The blobs.
    pub blobs: Vec<BlobRef>,
    /// Copies wanted, the origin's included (0: release them).
    pub k: u8,
    /// The node that asked (the uploader).
    pub origin: NodeId,
    /// Kept until this time (Unix ms; 0: until released).
    #[serde(default)]
    pub until: u64,
    /// The origin's signature; its time orders a release after a keep.
    pub proof: Proof,
}

impl KeepCert {
    /// The bytes the origin signs.
    pub fn signed_bytes(cluster: &str, blobs: &[BlobRef], k: u8, origin: NodeId, until: u64) -> Vec<u8> {
        serde_json::to_vec(&(cluster, blobs, k, origin, until)).unwrap_or_default()
    }

    /// Checks the origin's signature.
    pub fn verify(&self, cluster: &str) -> Result<(), crate::identity::SigError> {
        let bytes = KeepCert::signed_bytes(cluster, &self.blobs, self.k, self.origin, self.until);
        self.proof.verify(self.origin, crate::identity::domain::KEEP, &[&bytes])
    }

    /// Whether the keep has run out at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.until != 0 && now_ms >= self.until
    }
}

/// A node keeping blobs in custody.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Keeper {
    /// The node.
    pub id: NodeId,
    /// Its UDP address (keepers check on each other).
    pub addr: SocketAddr,
    /// Its HTTP address (where its copies are fetched from).
    pub http: SocketAddr,
}

/// Every message kind of protocol version 2.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum Message {
    /// Discovery beacon (broadcast or to seeds).
    Hello {
        /// Sender's active neighbour count.
        active: u8,
        /// Whether the sender wants contacts (below its minimum).
        needy: bool,
    },
    /// Answer to a hello: a sample of the answerer's peers.
    HelloReply {
        /// Sampled peers.
        peers: Vec<PeerInfo>,
    },
    /// Request to become active neighbours.
    Join {
        /// The requester counts this as its random long link.
        long: bool,
        /// The requester has no neighbours at all: accept even if full.
        urgent: bool,
        /// The requester's active neighbour count.
        #[serde(default)]
        degree: u8,
    },
    /// Answer to a join.
    JoinReply {
        /// Whether the link now exists.
        accepted: bool,
        /// If refused, peers to try instead.
        peers: Vec<PeerInfo>,
    },
    /// "You are no longer my active neighbour."
    Disconnect,
    /// "I am shutting down": neighbours replace the sender at once.
    Leave,
    /// Liveness and round-trip probe.
    Ping {
        /// Echoed in the ack.
        nonce: u64,
    },
    /// Answer to a ping.
    Ack {
        /// The ping's nonce.
        nonce: u64,
        /// Whether the pinged node counts the pinger as an active neighbour.
        neighbor: bool,
        /// The pinged node's active neighbour count.
        #[serde(default)]
        degree: u8,
    },
    /// "Please probe `target` for me" (indirect probe of a suspect).
    PingReq {
        /// Requester's nonce.
        nonce: u64,
        /// The suspect.
        target: PeerInfo,
    },
    /// "`target` answered my probe on your behalf."
    IndirectAck {
        /// The requester's nonce.
        nonce: u64,
        /// The suspect that answered.
        target: NodeId,
    },
    /// Passive-list exchange.
    Shuffle {
        /// Sample of the sender's peers.
        peers: Vec<PeerInfo>,
    },
    /// Answer to a shuffle.
    ShuffleReply {
        /// Sample of the answerer's peers.
        peers: Vec<PeerInfo>,
    },
    /// Full payload push of items.
    Gossip {
        /// Items.
        items: Vec<Item>,
        /// Pushed by anti-entropy rather than by diffusion (no pruning).
        #[serde(default)]
        sync: bool,
    },
    /// Lazy announcements of items (payload withheld).
    IHave {
        /// Announcements.
        items: Vec<Announce>,
    },
    /// "Send me these items" (and keep pushing eagerly to me).
    Graft {
        /// Wanted items.
        ids: Vec<ItemId>,
    },
    /// "Stop pushing payloads to me; announce instead."
    Prune,
    /// Anti-entropy: the versions of every key of one space (info, job
    /// summaries or reputation) the sender holds in the key range
    /// `(after, upto]` (`after` empty: from the start; `upto` absent: to the
    /// end).
    SyncDigest {
        /// Which table (absent: info).
        #[serde(default = "info_space", skip_serializing_if = "is_info_space")]
        space: Space,
        /// Exclusive lower bound of the range.
        after: String,
        /// Inclusive upper bound of the range.
        upto: Option<String>,
        /// Entries, sorted by key.
        entries: Vec<DigestEntry>,
    },
    /// Anti-entropy: "send me your versions of these keys".
    SyncRequest {
        /// Which table (absent: info).
        #[serde(default = "info_space", skip_serializing_if = "is_info_space")]
        space: Space,
        /// Keys.
        keys: Vec<String>,
    },
    /// Spare capacity and distances to job homes (the gradient).
    Load {
        /// Free worker slots.
        free: u16,
        /// Tokens the sender would accept now.
        room: u16,
        /// Hops to each running job's nearest home.
        jobs: Vec<GradientEntry>,
    },
    /// A work token passed on.
    Work {
        /// The token.
        token: Box<WorkToken>,
    },
    /// A worker's report, travelling down the gradient to the home.
    JobReport {
        /// The report.
        report: Box<JobReport>,
    },
    /// A page of a job record, from home to heir.
    JobRecord {
        /// The page.
        record: Box<JobRecordPage>,
    },
    /// Units decided, from home to heirs.
    JobDecided {
        /// Job id.
        job: String,
        /// Decisions.
        decisions: Vec<Decision>,
    },
    /// A job finished; heirs fetch a copy of the result.
    JobFinished {
        /// Job id.
        job: String,
        /// Result blob.
        result: Hash,
        /// Result digest.
        digest: String,
        /// Result size.
        size: u64,
        /// Where to fetch it.
        http: SocketAddr,
    },
    /// An appointed heir confirms the result a home (not the job's
    /// creator) claimed in `job_finished`: it merged the decided partials
    /// itself and got the same.
    JobConfirmed {
        /// Job id.
        job: String,
        /// Result blob.
        result: Hash,
        /// Result digest.
        digest: String,
        /// The heir's signature over the result.
        confirmation: Box<crate::attest::Confirmation>,
    },
    /// "I hold these blobs; fetch a copy if you have room."
    BlobOffer {
        /// Offered blobs.
        blobs: Vec<BlobRef>,
        /// Where to fetch them.
        http: SocketAddr,
        /// Energy the offerer holds them with (decides how far copies go).
        #[serde(default)]
        energy: f64,
    },
    /// "I now hold verified copies of these blobs." Passed back toward
    /// the uploader as it is, so the claim is signed by the holder itself.
    BlobHave {
        /// Blob names.
        hashes: Vec<Hash>,
        /// Where they can be fetched.
        http: SocketAddr,
        /// The holder (need not be the sender: claims are relayed).
        holder: NodeId,
        /// The copies are kept in custody (acknowledged data, never evicted
        /// for other data) at the request of a `blob_keep`.
        #[serde(default)]
        kept: bool,
        /// The holder's signature over all of the above.
        proof: Box<Proof>,
    },
    /// "Keep these blobs in custody": hold them (fetching them from the
    /// keepers if need be) for as long as their origin wants `k` copies,
    /// and restore the count when a keeper dies. Sent by the origin to the
    /// first keepers, by a keeper repairing to a new one, and to every
    /// keeper when the keepers change. `k = 0` releases them.
    BlobKeep {
        /// The origin's signed request.
        cert: Box<KeepCert>,
        /// Which of the certificate's blobs to keep (a repair asks for the
        /// thin ones only).
        hashes: Vec<Hash>,
        /// The keepers known to the sender (the sender included).
        keepers: Vec<Keeper>,
    },
    /// "Who holds these blobs?" A holder answers `BlobHave` to the asking
    /// neighbour; a node without a copy passes the question on while
    /// `hops` lasts and relays answers back the way it came. A home whose
    /// known holders of a chunk all died asks this way.
    BlobWant {
        /// Blob names.
        hashes: Vec<Hash>,
        /// Times the question may still be passed on.
        hops: u8,
    },
}

impl Message {
    /// Short stable name of the kind, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
            Message::HelloReply { .. } => "hello_reply",
            Message::Join { .. } => "join",
            Message::JoinReply { .. } => "join_reply",
            Message::Disconnect => "disconnect",
            Message::Leave => "leave",
            Message::Ping { .. } => "ping",
            Message::Ack { .. } => "ack",
            Message::PingReq { .. } => "ping_req",
            Message::IndirectAck { .. } => "indirect_ack",
            Message::Shuffle { .. } => "shuffle",
            Message::ShuffleReply { .. } => "shuffle_reply",
            Message::Gossip { .. } => "gossip",
            Message::IHave { .. } => "ihave",
            Message::Graft { .. } => "graft",
            Message::Prune => "prune",
            Message::SyncDigest { .. } => "sync_digest",
            Message::SyncRequest { .. } => "sync_request",
            Message::Load { .. } => "load",
            Message::Work { .. } => "work",
            Message::JobReport { .. } => "job_report",
            Message::JobRecord { .. } => "job_record",
            Message::JobDecided { .. } => "job_decided",
            Message::JobFinished { .. } => "job_finished",
            Message::JobConfirmed { .. } => "job_confirmed",
            Message::BlobOffer { .. } => "blob_offer",
            Message::BlobHave { .. } => "blob_have",
            Message::BlobKeep { .. } => "blob_keep",
            Message::BlobWant { .. } => "blob_want",
        }
    }

    /// All kind names, for pre-registering metrics.
    pub const KINDS: [&'static str; 29] = [
        "hello",
        "hello_reply",
        "join",
        "join_reply",
        "disconnect",
        "leave",
        "ping",
        "ack",
        "ping_req",
        "indirect_ack",
        "shuffle",
        "shuffle_reply",
        "gossip",
        "ihave",
        "graft",
        "prune",
        "sync_digest",
        "sync_request",
        "load",
        "work",
        "job_report",
        "job_record",
        "job_decided",
        "job_finished",
        "job_confirmed",
        "blob_offer",
        "blob_have",
        "blob_want",
        "blob_keep",
    ];

    /// Whether the message must carry its sender's signature (`sig`): it
    /// changes links, or it is a home speaking to its heirs.
    pub fn needs_sig(&self) -> bool {
        matches!(
            self,
            Message::Join { .. }
                | Message::JoinReply { .. }
                | Message::Disconnect
                | Message::Leave
                | Message::JobRecord { .. }
                | Message::JobDecided { .. }
                | Message::JobFinished { .. }
        )
    }

    /// Whether a node that is not an active neighbour (or a neighbour
    /// writing from another address) may send this: discovery, link
    /// set-up and tear-down, probes, and what is signed end to end or by
    /// its sender. Anything else from a stranger is dropped unread, so a
    /// spoofed source cannot make a node answer at length (reflection) or
    /// act on a neighbour's behalf.
    pub fn open_to_strangers(&self) -> bool {
        matches!(
            self,
            Message::Hello { .. }
                | Message::HelloReply { .. }
                | Message::Join { .. }
                | Message::JoinReply { .. }
                | Message::Disconnect
                | Message::Leave
                | Message::Ping { .. }
                | Message::Ack { .. }
                | Message::ShuffleReply { .. }
                | Message::JobReport { .. }
                | Message::JobRecord { .. }
                | Message::JobDecided { .. }
                | Message::JobFinished { .. }
                | Message::JobConfirmed { .. }
                | Message::BlobHave { .. }
                | Message::BlobKeep { .. }
        )
    }

    /// Whether the message carries item payloads (for Plumtree-style
    /// accounting of full-payload messages against small announcements).
    pub fn is_payload(&self) -> bool {
        matches!(self, Message::Gossip { .. })
    }

    /// Checks bounds on contents that JSON parsing alone does not enforce.
    pub fn check_bounds(&self) -> Result<(), WireError> {
        let peers_ok = |p: &Vec<PeerInfo>| p.len() <= MAX_PEERS_PER_MESSAGE;
        let ok = match self {
            Message::HelloReply { peers }
            | Message::JoinReply { peers, .. }
            | Message::Shuffle { peers }
            | Message::ShuffleReply { peers } => peers_ok(peers),
            Message::Gossip { items, .. } => {
                items.len() <= MAX_IDS_PER_MESSAGE
                    && items
                        .iter()
                        .all(|i| id_ok(&i.id) && i.energy.is_finite() && i.value.len() <= MAX_VALUE_LEN)
            }
            Message::IHave { items } => {
                items.len() <= MAX_IDS_PER_MESSAGE && items.iter().all(|a| id_ok(&a.id) && a.energy.is_finite())
            }
            Message::Graft { ids } => ids.len() <= MAX_IDS_PER_MESSAGE && ids.iter().all(id_ok),
            Message::SyncDigest { entries, after, upto, space } => {
                *space != Space::Topology
                    && entries.len() <= MAX_IDS_PER_MESSAGE
                    && after.len() <= MAX_KEY_LEN
                    && upto.as_ref().is_none_or(|u| u.len() <= MAX_KEY_LEN)
                    && entries.iter().all(|e| e.key.len() <= MAX_KEY_LEN)
            }
            Message::SyncRequest { keys, space } => {
                *space != Space::Topology
                    && keys.len() <= MAX_IDS_PER_MESSAGE
                    && keys.iter().all(|k| k.len() <= MAX_KEY_LEN)
            }
            Message::Load { jobs, .. } => jobs.len() <= 64 && jobs.iter().all(|j| j.job.len() <= 64),
            Message::Work { token } => {
                token.job.len() <= 64
                    && token.holders.len() <= 8
                    && token.energy.is_finite()
                    && value_len(&token.params) <= 4096
                    && crate::blobs::is_hash(&token.chunk)
            }
            Message::JobReport { report } => {
                report.job.len() <= 64
                    && report.holding.len() <= crate::jobs::HOLDING_PER_REPORT
                    && report.results.len() <= crate::jobs::RESULTS_PER_REPORT
                    && report.results.iter().all(|r| crate::blobs::is_hash(&r.digest) && r.token.len() == 32)
            }
            Message::JobRecord { record } => {
                record.job.len() <= 64
                    && record.units.len() <= crate::jobs::UNITS_PER_PAGE
                    && record.heirs.len() <= crate::jobs::MAX_HEIRS
                    && record.appointment.as_ref().is_none_or(|a| a.heirs.len() <= crate::attest::MAX_APPOINTED)
                    && record.energy.is_finite()
                    && record.units.iter().all(|u| u.holders.len() <= 8 && crate::blobs::is_hash(&u.hash))
                    && value_len(&record.params) <= 4096
            }
            Message::JobDecided { job, decisions } => {
                job.len() <= 64
                    && decisions.len() <= crate::jobs::DECISIONS_PER_PAGE
                    && decisions.iter().all(|d| d.holders.len() <= 8 && d.votes.len() <= crate::attest::MAX_VOTES)
            }
            Message::JobFinished { job, result, .. } => job.len() <= 64 && crate::blobs::is_hash(result),
            Message::JobConfirmed { job, result, digest, .. } => {
                job.len() <= 64 && crate::blobs::is_hash(result) && crate::blobs::is_hash(digest)
            }
            Message::BlobOffer { blobs, .. } => {
                blobs.len() <= 64 && blobs.iter().all(|b| crate::blobs::is_hash(&b.hash))
            }
            Message::BlobHave { hashes, .. } => hashes.len() <= 64 && hashes.iter().all(|h| crate::blobs::is_hash(h)),
            Message::BlobKeep { cert, hashes, keepers } => {
                cert.blobs.len() <= 64
                    && cert.blobs.iter().all(|b| crate::blobs::is_hash(&b.hash))
                    && hashes.len() <= 64
                    && hashes.iter().all(|h| cert.blobs.iter().any(|b| b.hash == *h))
                    && usize::from(cert.k) <= crate::blobs::MAX_HOLDERS + 1
                    && keepers.len() <= crate::blobs::MAX_HOLDERS + 1
            }
            Message::BlobWant { hashes, hops } => {
                hashes.len() <= 64 && *hops <= MAX_WANT_HOPS && hashes.iter().all(|h| crate::blobs::is_hash(h))
            }
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(WireError::OutOfBounds)
        }
    }
}

fn id_ok(id: &ItemId) -> bool {
    !id.key.is_empty() && id.key.len() <= MAX_KEY_LEN
}

/// Serialized length of a JSON value.
pub fn value_len(v: &serde_json::Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
}

/// Why a datagram was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Larger than [`MAX_DATAGRAM`].
    #[error("datagram larger than {MAX_DATAGRAM} bytes")]
    Oversized,
    /// Not a JSON envelope.
    #[error("datagram is not a valid JSON envelope")]
    Malformed,
    /// Another protocol version.
    #[error("unsupported protocol version")]
    WrongVersion,
    /// Another cluster.
    #[error("datagram from another cluster")]
    ForeignCluster,
    /// Message kind unknown to this version, or its body does not parse.
    #[error("unknown message kind or bad message body")]
    UnknownKind,
    /// Contents exceed a bound.
    #[error("message contents exceed a bound")]
    OutOfBounds,
    /// Signed (carries a tag) but this node has no cluster secret.
    #[error("signed datagram but this node has no cluster secret")]
    BadAuth,
}

impl WireError {
    /// Stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::Oversized => "oversized",
            WireError::Malformed => "malformed",
            WireError::WrongVersion => "wrong_version",
            WireError::ForeignCluster => "foreign_cluster",
            WireError::UnknownKind => "unknown_kind",
            WireError::OutOfBounds => "out_of_bounds",
            WireError::BadAuth => "bad_auth",
        }
    }

    /// All reasons, for pre-registering metrics.
    pub const REASONS: [&'static str; 7] =
        ["oversized", "malformed", "wrong_version", "foreign_cluster", "unknown_kind", "out_of_bounds", "bad_auth"];
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    v: u16,
    #[serde(borrow)]
    cluster: std::borrow::Cow<'a, str>,
    from: NodeId,
    #[serde(default)]
    to: Option<NodeId>,
    seq: u64,
    #[serde(borrow)]
    msg: &'a RawValue,
    #[serde(default)]
    sig: Option<Proof>,
    #[serde(default)]
    tag: Option<String>,
}

/// Decodes and checks a datagram for `cluster`.
pub fn decode(bytes: &[u8], cluster: &str) -> Result<Envelope, WireError> {
    decode_raw(bytes, cluster).map(|(env, _)| env)
}

/// Decodes and checks a datagram for `cluster`; also returns the exact
/// bytes of its message, which the sender's signature covers.
pub fn decode_raw<'a>(bytes: &'a [u8], cluster: &str) -> Result<(Envelope, &'a [u8]), WireError> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(WireError::Oversized);
    }
    let raw: RawEnvelope<'a> = serde_json::from_slice(bytes).map_err(|_| WireError::Malformed)?;
    if raw.v != PROTOCOL_VERSION {
        return Err(WireError::WrongVersion);
    }
    if raw.cluster != cluster {
        return Err(WireError::ForeignCluster);
    }
    let msg: Message = serde_json::from_str(raw.msg.get()).map_err(|_| WireError::UnknownKind)?;
    msg.check_bounds()?;
    let env = Envelope {
        v: raw.v,
        cluster: raw.cluster.into_owned(),
        from: raw.from,
        to: raw.to,
        seq: raw.seq,
        msg,
        sig: raw.sig.map(Box::new),
        tag: raw.tag,
    };
    Ok((env, raw.msg.get().as_bytes()))
}

/// Signs an envelope as its sender (`identity` must be the sender's) at
/// wall-clock time `ts_ms`. The signature covers the cluster, sender,
/// destination, sequence number and the message's exact bytes.
pub fn sign_envelope(env: &mut Envelope, identity: &crate::identity::Identity, ts_ms: u64) {
    let msg = serde_json::to_vec(&env.msg).unwrap_or_default();
    let (from, to, seq) = envelope_ids(env);
    env.sig = Some(Box::new(identity.prove(
        crate::identity::domain::ENVELOPE,
        ts_ms,
        &[env.cluster.as_bytes(), &from, &to, &seq, &msg],
    )));
}

/// Checks an envelope's signature against `msg_bytes` (the message as it
/// arrived; `None`: as it re-encodes).
pub fn verify_envelope(env: &Envelope, msg_bytes: Option<&[u8]>) -> Result<(), crate::identity::SigError> {
    let Some(sig) = &env.sig else { return Err(crate::identity::SigError::Missing) };
    let owned;
    let msg = match msg_bytes {
        Some(m) => m,
        None => {
            owned = serde_json::to_vec(&env.msg).unwrap_or_default();
            &owned
        }
    };
    let (from, to, seq) = envelope_ids(env);
    sig.verify(env.from, crate::identity::domain::ENVELOPE, &[env.cluster.as_bytes(), &from, &to, &seq, msg])
}

fn envelope_ids(env: &Envelope) -> ([u8; 8], Vec<u8>, [u8; 8]) {
    // No destination signs as no bytes at all, which no id can sign as.
    let to = env.to.map(|t| t.0.to_le_bytes().to_vec()).unwrap_or_default();
    (env.from.0.to_le_bytes(), to, env.seq.to_le_bytes())
}

/// Encodes an envelope. Fails only if the result would exceed
/// [`MAX_DATAGRAM`]; the core splits its batches so that this does not happen.
pub fn encode(env: &Envelope) -> Result<Vec<u8>, WireError> {
    let bytes = serde_json::to_vec(env).map_err(|_| WireError::Malformed)?;
    if bytes.len() > MAX_DATAGRAM {
        return Err(WireError::Oversized);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
