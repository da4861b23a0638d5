//! Node identities: an Ed25519 key pair per node, the node id derived from
//! its public key, and the signatures that let a node speak only for
//! itself.
//!
//! A node id is the first 64 bits of `BLAKE3("ryx node id v1" ‖ public
//! key)`. Anyone can therefore check, from a signature and the public key
//! that came with it, that a message was written by the node whose id it
//! carries; no registry of keys is needed. What needs a signature:
//!
//! - *hop-level* (`wire::sign_envelope`): datagrams that change links (`join`,
//!   `join_reply`, `disconnect`, `leave`) and the home's messages to its
//!   heirs (`job_record`, `job_decided`, `job_finished`). The signature
//!   covers the cluster, sender, destination, sequence number, a timestamp
//!   and the exact bytes of the message, so it can be neither moved to
//!   another destination nor altered.
//! - *end-to-end* ([`Proof`]): statements that travel over several hops and
//!   are believed by whoever receives them: a worker's report (its votes),
//!   a holder's claim to hold blobs, and the job summaries and reputation
//!   records a node writes.
//!
//! Signatures are checked with `verify_strict` (no malleable signatures, no
//! weak keys). With 64-bit ids, forging an id means finding a key pair whose
//! id matches: about 2⁶³ key generations.

use crate::id::NodeId;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Domain separation for node ids derived from public keys.
const ID_CONTEXT: &[u8] = b"ryx node id v1\0";
/// Domain separation for key seeds derived from text.
const SEED_CONTEXT: &str = "ryx node identity seed v1";

/// A node's own key pair.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
    public: [u8; 32],
    id: NodeId,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.id)
    }
}

/// The node id belonging to a public key.
pub fn node_id_of(public: &[u8; 32]) -> NodeId {
    let mut h = blake3::Hasher::new();
    h.update(ID_CONTEXT);
    h.update(public);
    let out = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&out.as_bytes()[..8]);
    NodeId(u64::from_be_bytes(b))
}

impl Identity {
    /// The identity whose secret key is `seed` (32 random bytes).
    pub fn from_seed(seed: [u8; 32]) -> Identity {
        let key = SigningKey::from_bytes(&seed);
        let public = key.verifying_key().to_bytes();
        Identity { id: node_id_of(&public), key, public }
    }

    /// A deterministic identity derived from any text (tests, the
    /// simulator, `--identity-seed`): the same text gives the same node.
    pub fn from_text(text: &str) -> Identity {
        Identity::from_seed(blake3::derive_key(SEED_CONTEXT, text.as_bytes()))
    }

    /// A deterministic identity derived from a number (the simulator).
    pub fn from_u64(n: u64) -> Identity {
        Identity::from_seed(blake3::derive_key(SEED_CONTEXT, &n.to_le_bytes()))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The secret seed (to persist the identity).
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Signs `parts` (concatenated) under `domain`.
    fn sign_raw(&self, domain: &[u8], parts: &[&[u8]]) -> [u8; 64] {
        let msg = signed_bytes(domain, parts);
        self.key.sign(&msg).to_bytes()
    }

    /// An end-to-end proof over `parts` at time `ts_ms`.
    pub fn prove(&self, domain: &[u8], ts_ms: u64, parts: &[&[u8]]) -> Proof {
        let ts = ts_ms.to_le_bytes();
        let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
        all.push(&ts);
        all.extend_from_slice(parts);
        Proof { key: Hex32(self.public), ts: ts_ms, sig: Hex64(self.sign_raw(domain, &all)) }
    }
}

fn signed_bytes(domain: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let len = domain.len() + 1 + parts.iter().map(|p| p.len() + 8).sum::<usize>();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(domain);
    msg.push(0);
    for p in parts {
        // Length-prefixed, so that no two different part lists sign the
        // same bytes.
        msg.extend_from_slice(&(p.len() as u64).to_le_bytes());
        msg.extend_from_slice(p);
    }
    msg
}

/// Why a signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// A message that must be signed was not.
    #[error("signature missing")]
    Missing,
    /// The key does not belong to the node id the message claims.
    #[error("key does not belong to the claimed node")]
    WrongKey,
    /// The signature does not verify.
    #[error("bad signature")]
    Bad,
    /// The timestamp is too far from the receiver's clock.
    #[error("signature too old or from the future")]
    Stale,
    /// Seen before (replayed).
    #[error("signed message replayed")]
    Replay,
}

impl SigError {
    /// Stable metric label.
    pub fn reason(self) -> &'static str {
        match self {
            SigError::Missing => "sig_missing",
            SigError::WrongKey => "sig_wrong_key",
            SigError::Bad => "sig_bad",
            SigError::Stale => "sig_stale",
            SigError::Replay => "sig_replay",
        }
    }

    /// Every reason, for pre-registering metrics.
    pub const REASONS: [&'static str; 5] = ["sig_missing", "sig_wrong_key", "sig_bad", "sig_stale", "sig_replay"];
}

/// 32 bytes, as 64 lowercase hex digits on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hex32(pub [u8; 32]);

/// 64 bytes, as 128 lowercase hex digits on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hex64(pub [u8; 64]);

fn to_hex(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(HEX[(x >> 4) as usize] as char);
        s.push(HEX[(x & 15) as usize] as char);
    }
    s
}

fn from_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(b[2 * i])? << 4 | digit(b[2 * i + 1])?;
    }
    Some(out)
}

macro_rules! hex_serde {
    ($t:ident, $n:expr) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&to_hex(&self.0))
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                from_hex::<$n>(&s).map($t).ok_or_else(|| serde::de::Error::custom("expected lowercase hex"))
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&to_hex(&self.0))
            }
        }
    };
}
hex_serde!(Hex32, 32);
hex_serde!(Hex64, 64);

/// An end-to-end signature: the signer's public key, when it signed (its
/// wall clock, Unix milliseconds) and the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// Public key of the signer.
    #[serde(rename = "k")]
    pub key: Hex32,
    /// Signer's wall clock when it signed, Unix milliseconds.
    #[serde(rename = "t")]
    pub ts: u64,
    /// The signature.
    #[serde(rename = "s")]
    pub sig: Hex64,
}

impl Proof {
    /// The node that signed.
    pub fn signer(&self) -> NodeId {
        node_id_of(&self.key.0)
    }

    /// Checks that `author` signed `parts` under `domain`.
    pub fn verify(&self, author: NodeId, domain: &[u8], parts: &[&[u8]]) -> Result<(), SigError> {
        if self.signer() != author {
            return Err(SigError::WrongKey);
        }
        let ts = self.ts.to_le_bytes();
        let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
        all.push(&ts);
        all.extend_from_slice(parts);
        let msg = signed_bytes(domain, &all);
        let key = VerifyingKey::from_bytes(&self.key.0).map_err(|_| SigError::Bad)?;
        key.verify_strict(&msg, &Signature::from_bytes(&self.sig.0)).map_err(|_| SigError::Bad)
    }

    /// Checks the timestamp against `now_ms` (± `skew_ms`).
    pub fn fresh(&self, now_ms: u64, skew_ms: u64) -> Result<(), SigError> {
        if self.ts.abs_diff(now_ms) > skew_ms {
            Err(SigError::Stale)
        } else {
            Ok(())
        }
    }
}

/// A node's answer to an HTTP identity challenge (`GET /v1/identity`):
/// whoever serves at an address proves which node it is, so that a node
/// relays to, and fails over onto, members only; a topology item naming a
/// foreign service's address gets nothing sent to that service.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HttpIdentity {
    /// The node answering.
    pub node_id: NodeId,
    /// Its cluster.
    pub cluster: String,
    /// The HTTP address it serves on (its own, not the one it was asked
    /// at: a node cannot be made to vouch for an address that relays to it).
    pub http: std::net::SocketAddr,
    /// The challenge it answers (hex).
    pub challenge: String,
    /// Its signature over all of the above.
    pub proof: Proof,
    /// With a cluster secret: a MAC over the same bytes under a key derived
    /// from the cluster secret (`kid.mac`), proving membership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_mac: Option<String>,
}

/// Context of the keys that prove cluster membership over HTTP.
pub const HTTP_MEMBER_CONTEXT: &str = "ryx http member proof v1";

impl HttpIdentity {
    fn signed(node_id: NodeId, cluster: &str, http: std::net::SocketAddr, challenge: &str) -> Vec<u8> {
        serde_json::to_vec(&(node_id, cluster, http, challenge)).unwrap_or_default()
    }

    /// The answer `identity` (serving `http`) gives to `challenge`; with
    /// `member_keys` (derived with [`HTTP_MEMBER_CONTEXT`]), also the
    /// cluster MAC.
    pub fn answer(
        identity: &Identity,
        cluster: &str,
        http: std::net::SocketAddr,
        challenge: &str,
        wall_ms: u64,
        member_key: Option<(u32, [u8; 32])>,
    ) -> HttpIdentity {
        let bytes = HttpIdentity::signed(identity.id(), cluster, http, challenge);
        let proof = identity.prove(domain::HTTP_IDENTITY, wall_ms, &[&bytes]);
        let cluster_mac = member_key.map(|(kid, k)| format!("{kid:08x}.{}", blake3::keyed_hash(&k, &bytes).to_hex()));
        HttpIdentity {
            node_id: identity.id(),
            cluster: cluster.to_string(),
            http,
            challenge: challenge.to_string(),
            proof,
            cluster_mac,
        }
    }

    /// Checks the answer of the node expected to be `expected` at
    /// `contacted`, to `challenge`; with `member_keys` (id, key), also its
    /// cluster MAC.
    pub fn verify(
        &self,
        expected: NodeId,
        cluster: &str,
        contacted: std::net::SocketAddr,
        challenge: &str,
        member_keys: &[(u32, [u8; 32])],
    ) -> Result<(), SigError> {
        if self.node_id != expected || self.cluster != cluster || self.http != contacted || self.challenge != challenge
        {
            return Err(SigError::WrongKey);
        }
        let bytes = HttpIdentity::signed(self.node_id, cluster, self.http, challenge);
        self.proof.verify(expected, domain::HTTP_IDENTITY, &[&bytes])?;
        if !member_keys.is_empty() {
            let mac = self.cluster_mac.as_deref().ok_or(SigError::Missing)?;
            let (kid, mac) = mac.split_once('.').ok_or(SigError::Bad)?;
            let kid = u32::from_str_radix(kid, 16).map_err(|_| SigError::Bad)?;
            let (_, key) = member_keys.iter().find(|(k, _)| *k == kid).ok_or(SigError::WrongKey)?;
            let want = blake3::keyed_hash(key, &bytes);
            let got = from_hex::<32>(mac).ok_or(SigError::Bad)?;
            // blake3::Hash compares in constant time.
            if want != blake3::Hash::from(got) {
                return Err(SigError::Bad);
            }
        }
        Ok(())
    }
}

/// Domains of the signatures Ryx makes (never reuse one for another
/// meaning).
pub mod domain {
    /// A datagram envelope (hop-level).
    pub const ENVELOPE: &[u8] = b"ryx/envelope/v2";
    /// A worker's report to a job's home.
    pub const REPORT: &[u8] = b"ryx/report/v1";
    /// A holder's claim to hold blobs.
    pub const HAVE: &[u8] = b"ryx/have/v1";
    /// A diffused record (job summary, reputation) written by its origin.
    pub const ITEM: &[u8] = b"ryx/item/v1";
    /// A node's answer to an HTTP identity challenge.
    pub const HTTP_IDENTITY: &[u8] = b"ryx/http-identity/v1";
    /// An origin's request that blobs be kept in custody.
    pub const KEEP: &[u8] = b"ryx/keep/v1";
    /// A worker's vote for a unit's result.
    pub const VOTE: &[u8] = b"ryx/vote/v1";
    /// A job creator's appointment of heirs.
    pub const APPOINT: &[u8] = b"ryx/appoint/v1";
    /// An heir's confirmation of a merged result.
    pub const CONFIRM: &[u8] = b"ryx/confirm/v1";
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_derive_from_keys_and_proofs_bind_author_and_content() {
        let a = Identity::from_text("a");
        let b = Identity::from_text("b");
        assert_eq!(a.id(), Identity::from_text("a").id(), "deterministic");
        assert_ne!(a.id(), b.id());
        assert_eq!(node_id_of(&a.public()), a.id());
        let p = a.prove(domain::REPORT, 5, &[b"hello", b"world"]);
        assert_eq!(p.verify(a.id(), domain::REPORT, &[b"hello", b"world"]), Ok(()));
        assert_eq!(p.verify(b.id(), domain::REPORT, &[b"hello", b"world"]), Err(SigError::WrongKey));
        assert_eq!(p.verify(a.id(), domain::HAVE, &[b"hello", b"world"]), Err(SigError::Bad));
        assert_eq!(p.verify(a.id(), domain::REPORT, &[b"hellow", b"orld"]), Err(SigError::Bad));
        let mut other_ts = p;
        other_ts.ts = 6;
        assert_eq!(other_ts.verify(a.id(), domain::REPORT, &[b"hello", b"world"]), Err(SigError::Bad));
        // b cannot sign for a: its key yields its own id.
        let forged = Proof { key: Hex32(b.public()), ..b.prove(domain::REPORT, 5, &[b"hello", b"world"]) };
        assert_eq!(forged.verify(a.id(), domain::REPORT, &[b"hello", b"world"]), Err(SigError::WrongKey));
        let json = serde_json::to_string(&p).unwrap();
        let back: Proof = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        assert!(serde_json::from_str::<Proof>(&json.replace('a', "A")).is_err() || !json.contains('a'));
        assert_eq!(p.fresh(60_005, 60_000), Ok(()));
        assert_eq!(p.fresh(60_006, 60_000), Err(SigError::Stale));
    }
}
