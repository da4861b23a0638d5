//! The short form of the messages a link carries most often: `ping` and
//! `ack` (ten a second), `agg` (the aggregation's push-pull exchange,
//! about one a second per node, every key's numbers). The same envelope
//! and message in binary fields: a probe in 28–70 bytes where the JSON
//! takes 130–330, an exchange in about 40 % of its JSON.
//!
//! ```text
//! 0      magic 0xA7 (no JSON text starts with it)
//! 1      protocol version (PROTOCOL_VERSION)
//! 2      kind: 1 ping, 2 ack, 3 agg
//! 3..7   cluster fingerprint (`cluster_fingerprint`)
//! 7..15  from        15..23 to
//! ping, ack:
//! 23..27 nonce (u32)
//! 27     flags: 1 neighbor (ack), 2 tree, 4 tree parent, 8 coord
//! 28     degree (ack only)
//! then   tree: leader (8), beat (8), dist (1), parent (8, if flagged)
//!        coord: x, y, h, e (f32 each)
//! agg:
//! 23     reply (0 or 1)
//! 24     key count, then per key: its length (u8), UTF-8, took, gave,
//!        estimate (f32 each)
//! then   extreme count, then per metric: its length (u8), UTF-8, max
//!        (f32), its wall ms (u64), min (f32), its wall ms (u64)
//! ```
//!
//! Keys go in ascending byte order, each once, so that a message has one
//! encoding.
//! Integers are little-endian. The envelope's `seq` is left out (it
//! guards signed messages against replay; probes are unsigned) and reads
//! as 0; nonces fit 32 bits (a node draws its probes' nonces so), and a
//! probe whose nonce does not goes in JSON. A node sends the short form only to a
//! neighbour that said in its `join` or `join_reply` that it reads it (or
//! sent it one), so nodes of an older release keep getting JSON. A
//! datagram sealed by the cluster secret carries a binary tag after these
//! fields ([`crate::auth`]). Anything else after them is malformed; so are
//! unknown flags and non-finite coordinates.

use super::{Envelope, Message, TreeAdvert, WireError, PROTOCOL_VERSION};
use crate::coords::Coord;
use crate::id::NodeId;
use std::collections::BTreeMap;

/// First byte of a short datagram.
pub const MAGIC: u8 = 0xA7;
const PING: u8 = 1;
const ACK: u8 = 2;
const AGG: u8 = 3;
const F_NEIGHBOR: u8 = 1;
const F_TREE: u8 = 2;
const F_PARENT: u8 = 4;
const F_COORD: u8 = 8;

/// The 4-byte fingerprint of a cluster id that short datagrams carry in
/// place of the id: another cluster's datagrams are refused as such (with
/// a cluster secret the MAC refuses them whatever the fingerprint).
pub fn cluster_fingerprint(cluster: &str) -> [u8; 4] {
    let mut h = blake3::Hasher::new();
    h.update(b"ryx-cluster-fingerprint");
    h.update(cluster.as_bytes());
    let mut f = [0u8; 4];
    f.copy_from_slice(&h.finalize().as_bytes()[..4]);
    f
}

/// Whether `env` goes out in the short form.
pub(super) fn fits(env: &Envelope) -> bool {
    env.short
        && env.to.is_some()
        && env.sig.is_none()
        && env.tag.is_none()
        && env.v == PROTOCOL_VERSION
        && match &env.msg {
            Message::Ping { nonce, .. } | Message::Ack { nonce, .. } => u32::try_from(*nonce).is_ok(),
            // Within what a receiver accepts (and so within a datagram,
            // and every count and length within a byte).
            Message::Agg { v, x, .. } => {
                v.len() <= super::MAX_AGG_KEYS
                    && x.len() <= super::MAX_AGG_EXTREMES
                    && v.keys().chain(x.keys()).all(|k| k.len() <= super::MAX_AGG_KEY_LEN)
            }
            _ => false,
        }
}

/// Encodes an envelope that [`fits`].
pub(super) fn encode(env: &Envelope) -> Vec<u8> {
    let mut b = Vec::with_capacity(96);
    let kind = match env.msg {
        Message::Ping { .. } => PING,
        Message::Ack { .. } => ACK,
        _ => AGG,
    };
    b.push(MAGIC);
    b.push(PROTOCOL_VERSION as u8);
    b.push(kind);
    b.extend_from_slice(&cluster_fingerprint(&env.cluster));
    for x in [env.from.0, env.to.map_or(0, |t| t.0)] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    match &env.msg {
        Message::Ping { nonce, tree, coord } => encode_probe(&mut b, *nonce, 0, None, tree, coord),
        Message::Ack { nonce, neighbor, degree, tree, coord } => {
            encode_probe(&mut b, *nonce, if *neighbor { F_NEIGHBOR } else { 0 }, Some(*degree), tree, coord)
        }
        Message::Agg { v, x, reply } => {
            b.push(u8::from(*reply));
            b.push(v.len() as u8);
            for (k, (a, c, e)) in v {
                push_key(&mut b, k);
                for f in [a, c, e] {
                    b.extend_from_slice(&f.to_le_bytes());
                }
            }
            b.push(x.len() as u8);
            for (k, (max, max_ms, min, min_ms)) in x {
                push_key(&mut b, k);
                b.extend_from_slice(&max.to_le_bytes());
                b.extend_from_slice(&max_ms.to_le_bytes());
                b.extend_from_slice(&min.to_le_bytes());
                b.extend_from_slice(&min_ms.to_le_bytes());
            }
        }
        _ => unreachable!("fits() admits only ping, ack and agg"),
    }
    b
}

fn push_key(b: &mut Vec<u8>, k: &str) {
    b.push(k.len() as u8);
    b.extend_from_slice(k.as_bytes());
}

fn encode_probe(
    b: &mut Vec<u8>,
    nonce: u64,
    mut flags: u8,
    degree: Option<u8>,
    tree: &Option<TreeAdvert>,
    coord: &Option<Coord>,
) {
    if let Some(t) = tree {
        flags |= F_TREE | if t.parent.is_some() { F_PARENT } else { 0 };
    }
    if coord.is_some() {
        flags |= F_COORD;
    }
    b.extend_from_slice(&(nonce as u32).to_le_bytes());
    b.push(flags);
    if let Some(d) = degree {
        b.push(d);
    }
    if let Some(t) = tree {
        b.extend_from_slice(&t.leader.0.to_le_bytes());
        b.extend_from_slice(&t.beat.to_le_bytes());
        b.push(t.dist);
        if let Some(p) = t.parent {
            b.extend_from_slice(&p.0.to_le_bytes());
        }
    }
    if let Some(c) = coord {
        for x in [c.x, c.y, c.h, c.e] {
            b.extend_from_slice(&x.to_le_bytes());
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(WireError::Malformed)?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    /// A key: its length, then UTF-8, after `last` in byte order (keys go
    /// sorted, each once, so that a datagram has one encoding).
    fn key(&mut self, last: Option<&String>) -> Result<String, WireError> {
        let n = usize::from(self.u8()?);
        let (k, rest) = self.0.split_at_checked(n).ok_or(WireError::Malformed)?;
        self.0 = rest;
        let k = std::str::from_utf8(k).map_err(|_| WireError::Malformed)?;
        if last.is_some_and(|l| l.as_str() >= k) {
            return Err(WireError::Malformed);
        }
        Ok(k.to_string())
    }
    fn f32(&mut self) -> Result<f32, WireError> {
        let x = f32::from_le_bytes(self.take()?);
        if x.is_finite() {
            Ok(x)
        } else {
            Err(WireError::OutOfBounds)
        }
    }
}

/// Bytes before a short datagram's message: magic, version, kind,
/// cluster fingerprint, `from`, `to`.
const HEAD: usize = 23;

/// Whether `bytes` are a whole short datagram with nothing after its
/// fields: no tag (a node with a cluster secret counts it as missing).
pub fn is_whole(bytes: &[u8]) -> bool {
    let (Some(&kind), Some(rest)) = (bytes.get(2), bytes.get(HEAD..)) else { return false };
    let mut r = Reader(rest);
    let ok = match kind {
        PING | ACK => decode_probe(&mut r, kind).is_ok(),
        AGG => decode_agg(&mut r).is_ok(),
        _ => false,
    };
    ok && r.0.is_empty()
}

/// Decodes a short datagram (its first byte is [`MAGIC`]) for `cluster`.
pub(super) fn decode(bytes: &[u8], cluster: &str) -> Result<Envelope, WireError> {
    let mut r = Reader(bytes);
    if r.u8()? != MAGIC {
        return Err(WireError::Malformed);
    }
    if u16::from(r.u8()?) != PROTOCOL_VERSION {
        return Err(WireError::WrongVersion);
    }
    let kind = r.u8()?;
    if r.take::<4>()? != cluster_fingerprint(cluster) {
        return Err(WireError::ForeignCluster);
    }
    let (from, to) = (NodeId(r.u64()?), NodeId(r.u64()?));
    let msg = match kind {
        PING | ACK => decode_probe(&mut r, kind)?,
        AGG => decode_agg(&mut r)?,
        _ => return Err(WireError::UnknownKind),
    };
    if !r.0.is_empty() {
        // A tag this node has no key to check (it has no cluster secret).
        return Err(if r.0.len() == crate::auth::SHORT_TAG_LEN { WireError::BadAuth } else { WireError::Malformed });
    }
    msg.check_bounds()?;
    Ok(Envelope {
        v: PROTOCOL_VERSION,
        cluster: cluster.to_string(),
        from,
        to: Some(to),
        seq: 0,
        msg,
        sig: None,
        tag: None,
        short: true,
    })
}

fn decode_probe(r: &mut Reader<'_>, kind: u8) -> Result<Message, WireError> {
    let nonce = u64::from(r.u32()?);
    let flags = r.u8()?;
    if flags & !(F_NEIGHBOR | F_TREE | F_PARENT | F_COORD) != 0
        || (flags & F_PARENT != 0 && flags & F_TREE == 0)
        || (kind == PING && flags & F_NEIGHBOR != 0)
    {
        return Err(WireError::Malformed);
    }
    let degree = if kind == ACK { r.u8()? } else { 0 };
    let tree = if flags & F_TREE != 0 {
        let (leader, beat, dist) = (NodeId(r.u64()?), r.u64()?, r.u8()?);
        let parent = if flags & F_PARENT != 0 { Some(NodeId(r.u64()?)) } else { None };
        Some(TreeAdvert { leader, beat, dist, parent })
    } else {
        None
    };
    let coord =
        if flags & F_COORD != 0 { Some(Coord { x: r.f32()?, y: r.f32()?, h: r.f32()?, e: r.f32()? }) } else { None };
    Ok(if kind == PING {
        Message::Ping { nonce, tree, coord }
    } else {
        Message::Ack { nonce, neighbor: flags & F_NEIGHBOR != 0, degree, tree, coord }
    })
}

fn decode_agg(r: &mut Reader<'_>) -> Result<Message, WireError> {
    let reply = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(WireError::Malformed),
    };
    let mut v = BTreeMap::new();
    for _ in 0..r.u8()? {
        let k = r.key(v.keys().next_back())?;
        v.insert(k, (r.f32()?, r.f32()?, r.f32()?));
    }
    let mut x = BTreeMap::new();
    for _ in 0..r.u8()? {
        let k = r.key(x.keys().next_back())?;
        x.insert(k, (r.f32()?, r.u64()?, r.f32()?, r.u64()?));
    }
    Ok(Message::Agg { v, x, reply })
}
