//! Every message kind, and what each allows.

use super::item::{info_space, is_info_space};
use super::*;
use crate::blobs::Hash;
use std::collections::BTreeMap;

/// Defines [`Message`] from one list in which each kind's name is written
/// once, as `Variant { fields } = "name"`: the enum, each variant renamed to
/// its name on the wire, [`Message::kind`] and [`Message::KINDS`].
/// `= "wire" as "label"` gives a kind another name in metrics and logs
/// (only `ihave` has one: on the wire it has always been `i_have`).
macro_rules! messages {
    (
        $(#[$meta:meta])*
        pub enum Message {
            $(
                $(#[$vmeta:meta])*
                $variant:ident $({
                    $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
                })? = $wire:literal $(as $label:literal)?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum Message {
            $(
                $(#[$vmeta])*
                #[serde(rename = $wire)]
                $variant $({ $( $(#[$fmeta])* $field : $ty ),* })?,
            )*
        }

        impl Message {
            /// Short stable name of the kind, for metrics and logs.
            pub fn kind(&self) -> &'static str {
                match self {
                    $( Message::$variant { .. } => label_or_wire!($wire $(, $label)?), )*
                }
            }

            /// The kind's position in [`Message::KINDS`].
            pub fn kind_index(&self) -> usize {
                #[allow(dead_code)]
                enum Index { $( $variant ),* }
                match self {
                    $( Message::$variant { .. } => Index::$variant as usize, )*
                }
            }

            /// The kind's name on the wire (the envelope's `msg.kind`).
            pub fn wire_kind(&self) -> &'static str {
                match self {
                    $( Message::$variant { .. } => $wire, )*
                }
            }

            /// Every kind's [`Message::kind`], in declaration order (for
            /// pre-registering metrics).
            pub const KINDS: &'static [&'static str] = &[$( label_or_wire!($wire $(, $label)?) ),*];
        }
    };
}

/// A kind's label: its own if it has one, else its name on the wire.
macro_rules! label_or_wire {
    ($wire:literal) => {
        $wire
    };
    ($wire:literal, $label:literal) => {
        $label
    };
}

messages! {
    /// Every message kind of protocol version 2.
    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    #[serde(tag = "kind", content = "body")]
    pub enum Message {
        /// Discovery beacon (broadcast or to seeds).
        Hello {
            /// Sender's active neighbour count.
            active: u8,
            /// Whether the sender wants contacts (below its minimum).
            needy: bool,
        } = "hello",
        /// Answer to a hello: a sample of the answerer's peers.
        HelloReply {
            /// Sampled peers.
            peers: Vec<PeerInfo>,
        } = "hello_reply",
        /// Request to become active neighbours.
        Join {
            /// The requester counts this as its random long link.
            long: bool,
            /// The requester has no neighbours at all: accept even if full.
            urgent: bool,
            /// The requester's active neighbour count.
            #[serde(default)]
            degree: u8,
            /// The requester's labels.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            labels: Labels,
            /// The requester reads `ping`, `ack` and `agg` in their short form
            /// (`super::short`); absent from older releases.
            #[serde(default, skip_serializing_if = "is_false")]
            short: bool,
        } = "join",
        /// Answer to a join.
        JoinReply {
            /// Whether the link now exists.
            accepted: bool,
            /// If refused, peers to try instead.
            peers: Vec<PeerInfo>,
            /// The answering node's labels (when it accepts).
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            labels: Labels,
            /// The answering node reads `ping`, `ack` and `agg` in their short
            /// form (when it accepts).
            #[serde(default, skip_serializing_if = "is_false")]
            short: bool,
        } = "join_reply",
        /// "You are no longer my active neighbour."
        Disconnect = "disconnect",
        /// "I am shutting down": neighbours replace the sender at once.
        Leave = "leave",
        /// Liveness and round-trip probe.
        Ping {
            /// Echoed in the ack.
            nonce: u64,
            /// The sender's place in the query waves' spanning tree.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            tree: Option<TreeAdvert>,
            /// The sender's network coordinate (`crate::coords`), on a
            /// link's probe about once a second and on every passive probe:
            /// the ack then carries the receiver's. The receiver moves by
            /// its own measurement of the link, never by a round trip the
            /// sender claims.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            coord: Option<crate::coords::Coord>,
        } = "ping",
        /// Answer to a ping.
        Ack {
            /// The ping's nonce.
            nonce: u64,
            /// Whether the pinged node counts the pinger as an active neighbour.
            neighbor: bool,
            /// The pinged node's active neighbour count.
            #[serde(default)]
            degree: u8,
            /// The pinged node's place in the query waves' spanning tree.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            tree: Option<TreeAdvert>,
            /// The pinged node's network coordinate, when the ping carried
            /// the pinger's.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            coord: Option<crate::coords::Coord>,
        } = "ack",
        /// Network-wide aggregation (`crate::agg`): a push-pull exchange's
        /// push, or its reply.
        Agg {
            /// Per key: what the sender took over this link in total, its
            /// copy of what the receiver took, and the sender's estimate.
            #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
            v: BTreeMap<String, (f32, f32, f32)>,
            /// Per metric: `(max, its wall ms, min, its wall ms)`.
            #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
            x: BTreeMap<String, crate::agg::Extreme>,
            /// An answer to a push.
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            reply: bool,
        } = "agg",
        /// Learning by gossip (`crate::learn`): one part of a push-pull
        /// exchange of a task's model, momentum and tracker totals.
        Learn {
            /// The task.
            task: String,
            /// Which part of the vectors (`learn::PART` coordinates each).
            part: u16,
            /// The sender model's age (cycles trained).
            age: u64,
            /// An answer to a push.
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            reply: bool,
            /// Model, momentum, tracker totals (took, its copy of what the
            /// receiver took) and estimate: base64 of little-endian `f32`s.
            x: String,
            /// See `x`.
            v: String,
            /// See `x`.
            took: String,
            /// See `x`.
            gave: String,
            /// See `x`.
            est: String,
        } = "learn",
        /// What a node saw of another (dead, or back), on its way up the
        /// spanning tree to the leader, which turns a quorum of observers
        /// into an incident (`node::incident`).
        Verdict {
            /// The node seen.
            subject: NodeId,
            /// The node that saw it.
            observer: NodeId,
            /// Dead (else back: only from the subject itself). With
            /// `anomaly`: the observer judges the subject so (else no
            /// longer).
            down: bool,
            /// The subject's active neighbour count, as last heard.
            degree: u8,
            /// The subject's labels, as its `join` told them.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            labels: Labels,
            /// Hops so far.
            hops: u8,
            /// Not dead but slow or lossy, as the observer judges its link
            /// (`crate::anomaly`); sent with `down: false`, so that a node
            /// that does not know the field never takes it for a death.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            anomaly: Option<crate::anomaly::Anomaly>,
            /// With `anomaly`: it holds (else it no longer does).
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            holds: bool,
        } = "verdict",
        /// "Please probe `target` for me" (indirect probe of a suspect).
        PingReq {
            /// Requester's nonce.
            nonce: u64,
            /// The suspect.
            target: PeerInfo,
        } = "ping_req",
        /// "`target` answered my probe on your behalf."
        IndirectAck {
            /// The requester's nonce.
            nonce: u64,
            /// The suspect that answered.
            target: NodeId,
        } = "indirect_ack",
        /// Passive-list exchange.
        Shuffle {
            /// Sample of the sender's peers.
            peers: Vec<PeerInfo>,
        } = "shuffle",
        /// Answer to a shuffle.
        ShuffleReply {
            /// Sample of the answerer's peers.
            peers: Vec<PeerInfo>,
        } = "shuffle_reply",
        /// Full payload push of items.
        Gossip {
            /// Items.
            items: Vec<Item>,
            /// Pushed by anti-entropy rather than by diffusion (no pruning).
            #[serde(default)]
            sync: bool,
        } = "gossip",
        /// Lazy announcements of items (payload withheld).
        IHave {
            /// Announcements.
            items: Vec<Announce>,
        } = "i_have" as "ihave",
        /// "Send me these items" (and keep pushing eagerly to me).
        Graft {
            /// Wanted items.
            ids: Vec<ItemId>,
        } = "graft",
        /// "Stop pushing payloads to me; announce instead."
        Prune = "prune",
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
        } = "sync_digest",
        /// Anti-entropy: "send me your versions of these keys".
        SyncRequest {
            /// Which table (absent: info).
            #[serde(default = "info_space", skip_serializing_if = "is_info_space")]
            space: Space,
            /// Keys.
            keys: Vec<String>,
        } = "sync_request",
        /// Spare capacity and distances to job homes (the gradient).
        Load {
            /// Free worker slots.
            free: u16,
            /// Tokens the sender would accept now.
            room: u16,
            /// Hops to each running job's nearest home.
            jobs: Vec<GradientEntry>,
        } = "load",
        /// A work token passed on.
        Work {
            /// The token.
            token: Box<WorkToken>,
        } = "work",
        /// A worker's report, travelling down the gradient to the home.
        JobReport {
            /// The report.
            report: Box<JobReport>,
        } = "job_report",
        /// A page of a job record, from home to heir.
        JobRecord {
            /// The page.
            record: Box<JobRecordPage>,
        } = "job_record",
        /// Units decided, from home to heirs.
        JobDecided {
            /// Job id.
            job: crate::jobs::JobId,
            /// Decisions.
            decisions: Vec<Decision>,
        } = "job_decided",
        /// A job finished; heirs fetch a copy of the result.
        JobFinished {
            /// Job id.
            job: crate::jobs::JobId,
            /// Result blob.
            result: Hash,
            /// Result digest.
            digest: String,
            /// Result size.
            size: u64,
            /// Where to fetch it.
            http: SocketAddr,
        } = "job_finished",
        /// An appointed heir confirms the result a home (not the job's
        /// creator) claimed in `job_finished`: it merged the decided partials
        /// itself and got the same.
        JobConfirmed {
            /// Job id.
            job: crate::jobs::JobId,
            /// Result blob.
            result: Hash,
            /// Result digest.
            digest: String,
            /// The heir's signature over the result.
            confirmation: Box<crate::attest::Confirmation>,
        } = "job_confirmed",
        /// "I hold these blobs; fetch a copy if you have room."
        BlobOffer {
            /// Offered blobs.
            blobs: Vec<BlobRef>,
            /// Where to fetch them.
            http: SocketAddr,
            /// Energy the offerer holds them with (decides how far copies go).
            #[serde(default)]
            energy: f64,
        } = "blob_offer",
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
        } = "blob_have",
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
        } = "blob_keep",
        /// "Who holds these blobs?" A holder answers `BlobHave` to the asking
        /// neighbour; a node without a copy passes the question on while
        /// `hops` lasts and relays answers back the way it came. A home whose
        /// known holders of a chunk all died asks this way.
        BlobWant {
            /// Blob names.
            hashes: Vec<Hash>,
            /// Times the question may still be passed on.
            hops: u8,
        } = "blob_want",
        /// A query wave: "answer this for your own chunks of `dataset`, ask
        /// your tree neighbours the same, and send me the merged answers
        /// within `budget_ms`". A node that has the wave already answers
        /// `query_reply` with `answer: None` at once.
        Query {
            /// The node asked by the client (the tree's root).
            root: NodeId,
            /// The root's number for the wave.
            qid: u64,
            /// Dataset asked about.
            dataset: String,
            /// What to compute (a job kind).
            kind: String,
            /// Its parameters.
            params: serde_json::Value,
            /// Answer over the chunks this node answered an earlier wave of
            /// the same root (this number) for, not over its chunks now:
            /// the second wave of a search scores exactly what the first
            /// counted.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pin: Option<u64>,
            /// Milliseconds the sender waits for the answer.
            budget_ms: u32,
            /// The sender's other neighbours (it asks them itself): the
            /// receiver does not ask them again.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            skip: Vec<NodeId>,
            /// Follow the spanning tree (the links between a node and its
            /// parent or children) rather than every link.
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            tree: bool,
        } = "query",
        /// A subtree's merged answer to a wave (`None`: the sender had the
        /// wave from another neighbour already).
        QueryReply {
            /// The wave's root.
            root: NodeId,
            /// The wave's number.
            qid: u64,
            /// The subtree's answer.
            answer: Option<Box<WaveAnswer>>,
        } = "query_reply",
    }
}

impl Message {
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
            Message::JoinReply { peers, labels, .. } => peers_ok(peers) && crate::config::valid_labels(labels),
            Message::HelloReply { peers } | Message::Shuffle { peers } | Message::ShuffleReply { peers } => {
                peers_ok(peers)
            }
            Message::Gossip { items, .. } => {
                items.len() <= MAX_IDS_PER_MESSAGE
                    && items.iter().all(|i| id_ok(&i.id) && i.energy.is_finite() && i.value.len() <= MAX_VALUE_LEN)
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
            Message::Load { jobs, .. } => {
                jobs.len() <= MAX_GRADIENT_ENTRIES && jobs.iter().all(|j| j.job.len() <= MAX_JOB_ID_LEN)
            }
            Message::Work { token } => {
                token.job.len() <= MAX_JOB_ID_LEN
                    && token.holders.len() <= MAX_HOLDER_ADDRS
                    && token.energy.is_finite()
                    && value_len(&token.params) <= MAX_PARAMS_LEN
                    && crate::blobs::is_hash(&token.chunk)
                    && token.inputs.len() <= MAX_MERGE_FAN_IN
                    && token
                        .inputs
                        .iter()
                        .all(|i| crate::blobs::is_hash(&i.digest) && i.holders.len() <= PAGE_HOLDER_ADDRS)
            }
            Message::JobReport { report } => {
                report.job.len() <= MAX_JOB_ID_LEN
                    && report.holding.len() <= HOLDING_PER_REPORT
                    && report.results.len() <= RESULTS_PER_REPORT
                    && report
                        .results
                        .iter()
                        .all(|r| crate::blobs::is_hash(&r.digest) && r.token.len() == TOKEN_DIGEST_LEN)
            }
            Message::JobRecord { record } => {
                record.job.len() <= MAX_JOB_ID_LEN
                    && record.fan_in as usize <= MAX_MERGE_FAN_IN
                    && record.units.len() <= UNITS_PER_PAGE
                    && record.heirs.len() <= MAX_HEIRS
                    && record.appointment.as_ref().is_none_or(|a| a.heirs.len() <= MAX_APPOINTED)
                    && record.energy.is_finite()
                    && record
                        .units
                        .iter()
                        .all(|u| u.holders.len() <= MAX_HOLDER_ADDRS && crate::blobs::is_hash(&u.hash))
                    && value_len(&record.params) <= MAX_PARAMS_LEN
                    && record
                        .dataset
                        .as_ref()
                        .is_none_or(|d| d.name.len() <= MAX_DATASET_NAME && d.snapshot.len() <= 64)
            }
            Message::JobDecided { job, decisions } => {
                job.len() <= MAX_JOB_ID_LEN
                    && decisions.len() <= DECISIONS_PER_PAGE
                    && decisions.iter().all(|d| d.holders.len() <= MAX_HOLDER_ADDRS && d.votes.len() <= MAX_VOTES)
            }
            Message::JobFinished { job, result, .. } => job.len() <= MAX_JOB_ID_LEN && crate::blobs::is_hash(result),
            Message::JobConfirmed { job, result, digest, .. } => {
                job.len() <= MAX_JOB_ID_LEN && crate::blobs::is_hash(result) && crate::blobs::is_hash(digest)
            }
            Message::BlobOffer { blobs, .. } => {
                blobs.len() <= MAX_BLOBS_PER_MESSAGE && blobs.iter().all(|b| crate::blobs::is_hash(&b.hash))
            }
            Message::BlobHave { hashes, .. } => {
                hashes.len() <= MAX_BLOBS_PER_MESSAGE && hashes.iter().all(|h| crate::blobs::is_hash(h))
            }
            Message::BlobKeep { cert, hashes, keepers } => {
                cert.blobs.len() <= MAX_BLOBS_PER_MESSAGE
                    && cert.blobs.iter().all(|b| crate::blobs::is_hash(&b.hash))
                    && hashes.len() <= MAX_BLOBS_PER_MESSAGE
                    && hashes.iter().all(|h| cert.blobs.iter().any(|b| b.hash == *h))
                    && usize::from(cert.k) <= MAX_KEEPERS
                    && keepers.len() <= MAX_KEEPERS
            }
            Message::Query { dataset, kind, params, budget_ms, skip, .. } => {
                dataset.len() <= MAX_DATASET_NAME
                    && skip.len() <= MAX_WAVE_SKIP
                    && kind.len() <= MAX_WAVE_KIND
                    && *budget_ms <= MAX_WAVE_BUDGET_MS
                    && value_len(params) <= MAX_PARAMS_LEN
            }
            Message::QueryReply { answer, .. } => {
                answer.as_ref().is_none_or(|a| value_len(&a.payload) <= MAX_WAVE_PAYLOAD)
            }
            Message::Join { labels, .. } => crate::config::valid_labels(labels),
            Message::Verdict { labels, hops, .. } => crate::config::valid_labels(labels) && *hops <= MAX_VERDICT_HOPS,
            Message::Agg { v, x, .. } => {
                v.len() <= MAX_AGG_KEYS
                    && x.len() <= MAX_AGG_EXTREMES
                    && v.keys().chain(x.keys()).all(|k| !k.is_empty() && k.len() <= MAX_AGG_KEY_LEN)
            }
            Message::Learn { task, x, v, took, gave, est, .. } => {
                task.len() <= crate::learn::MAX_NAME
                    && [x, v, took, gave, est].iter().all(|s| s.len() <= crate::learn::MAX_B64)
            }
            Message::BlobWant { hashes, hops } => {
                hashes.len() <= MAX_BLOBS_PER_MESSAGE
                    && *hops <= MAX_WANT_HOPS
                    && hashes.iter().all(|h| crate::blobs::is_hash(h))
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

impl Message {
    /// A `learn` message from its parts.
    pub fn learn(m: crate::learn::LearnMsg) -> Message {
        let crate::learn::LearnMsg { task, part, age, reply, x, v, took, gave, est } = m;
        Message::Learn { task, part, age, reply, x, v, took, gave, est }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}
