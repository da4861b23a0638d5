//! The wire format: JSON datagrams in a versioned envelope (and a short
//! binary form of the same envelope for `ping`, `ack` and `agg`, [`short`]).
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

mod blob;
mod item;
pub mod jobs;
pub mod limits;
mod message;
pub mod short;
mod wave;

pub use blob::{BlobRef, KeepCert, Keeper};
pub use item::{Announce, DigestEntry, Item, ItemId, ItemValue, Space};
pub use jobs::{
    DatasetTag, Decision, GradientEntry, JobRecordPage, JobReport, PartialRef, UnitRef, UnitResult, WorkToken,
};
pub use limits::*;
pub use message::Message;
pub use wave::{wave_mix, TreeAdvert, WaveAnswer};

use crate::id::NodeId;
use crate::identity::Proof;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::net::SocketAddr;

/// A node's labels (`--label KEY=VALUE`), as its `join` tells them.
pub type Labels = Vec<(String, String)>;

/// Version of this wire format.
pub const PROTOCOL_VERSION: u16 = 2;

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
    /// Whether it goes (or came) in the short binary form ([`short`]):
    /// set by the sender on the `ping`, `ack` and `agg` of a link whose other end
    /// reads it; not part of the JSON.
    #[serde(skip)]
    pub short: bool,
}

/// A peer as carried in messages: its id and UDP address.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerInfo {
    /// Node id.
    pub id: NodeId,
    /// UDP address.
    pub addr: SocketAddr,
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
    if bytes.first() == Some(&short::MAGIC) {
        // Unsigned kinds only: no message bytes for a signature to cover.
        return short::decode(bytes, cluster).map(|env| (env, &bytes[..0]));
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
        short: false,
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
    if short::fits(env) {
        return Ok(short::encode(env));
    }
    let bytes = serde_json::to_vec(env).map_err(|_| WireError::Malformed)?;
    if bytes.len() > MAX_DATAGRAM {
        return Err(WireError::Oversized);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
