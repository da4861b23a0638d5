//! Who is a member, over HTTP.
//!
//! Addresses learned from the network (a topology item, a blob offer) are
//! claims, and a forged one may name any service. Before this node relays a
//! request to an address, or sends credentials there, the address must
//! *prove* to be the member the topology says it is: `GET /v1/identity`
//! with a fresh challenge, answered with the node's signature over the
//! challenge and the address it serves on (and, with a cluster secret, a
//! MAC under a key derived from it). Proofs are cached for a few minutes.
//!
//! Node-to-node requests never carry the API token: they carry a *peer
//! credential* instead (`x-ryx-peer`), a MAC bound to the method, the
//! destination, the path and the time, under a key derived from the cluster
//! secret (or, without one, from the API token). A stranger that lures a
//! request to itself learns nothing it could use elsewhere.

use crate::http::Query;
use crate::http::{ApiError, ApiResult};
use crate::runtime::Handle;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use ryx_api::ErrorCode;
use ryx_core::identity::HttpIdentity;
use ryx_core::NodeId;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Query of `GET /v1/identity`.
#[derive(Deserialize)]
pub struct Challenge {
    /// 16 to 64 hex digits chosen by the asker.
    challenge: String,
}

/// `GET /v1/identity?challenge=HEX`: this node's signed answer.
pub async fn identity(State(h): State<Handle>, Query(q): Query<Challenge>) -> ApiResult {
    let c = q.challenge;
    if !(16..=64).contains(&c.len()) || !c.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadChallenge,
            "challenge must be 16 to 64 lowercase hex digits",
        ));
    }
    let answer = h.call(move |s| s.node.http_identity(&c)).await.map_err(ApiError::unavailable)?;
    Ok(Json(answer).into_response())
}

/// How long a proof of membership is trusted.
const PROOF_TTL: Duration = Duration::from_secs(300);
/// Addresses whose proof is remembered at most.
const MAX_PROVEN: usize = 4096;

static PROVEN: Mutex<Option<HashMap<SocketAddr, (NodeId, Instant)>>> = Mutex::new(None);

fn proven(addr: SocketAddr, id: NodeId) -> bool {
    let g = PROVEN.lock().unwrap_or_else(|p| p.into_inner());
    g.as_ref().and_then(|m| m.get(&addr)).is_some_and(|(n, at)| *n == id && at.elapsed() < PROOF_TTL)
}

fn remember(addr: SocketAddr, id: NodeId) {
    let mut g = PROVEN.lock().unwrap_or_else(|p| p.into_inner());
    let m = g.get_or_insert_with(HashMap::new);
    if m.len() >= MAX_PROVEN {
        m.retain(|_, (_, at)| at.elapsed() < PROOF_TTL);
        if m.len() >= MAX_PROVEN {
            m.clear();
        }
    }
    m.insert(addr, (id, Instant::now()));
}

/// Makes `addr` prove it serves node `expected` of this cluster (cached).
pub async fn prove(h: &Handle, addr: SocketAddr, expected: NodeId) -> Result<(), String> {
    if proven(addr, expected) {
        return Ok(());
    }
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| e.to_string())?;
    let challenge: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let path = format!("/v1/identity?challenge={challenge}");
    let body = crate::client::get_unauthenticated(addr, &path, 16 << 10, Duration::from_secs(2))
        .await
        .map_err(|e| format!("{addr} did not prove to be a node: {e}"))?;
    let answer: HttpIdentity =
        serde_json::from_slice(&body).map_err(|_| format!("{addr} is not a Ryx node (no identity)"))?;
    let (cluster, keys) =
        h.call(|s| (s.node.config().cluster_id.clone(), s.node.member_keys())).await.map_err(|e| e.to_string())?;
    answer
        .verify(expected, &cluster, addr, &challenge, &keys)
        .map_err(|e| format!("{addr} did not prove to be node {expected}: {e}"))?;
    remember(addr, expected);
    Ok(())
}

/// The node the learned topology says serves HTTP at `addr`, if any.
pub async fn node_at(h: &Handle, addr: SocketAddr) -> Option<NodeId> {
    h.call(move |s| s.node.topology(s.clock.now()).nodes.iter().find(|n| n.http == Some(addr)).map(|n| n.node_id))
        .await
        .ok()
        .flatten()
}

// ------------------------------------------------------- peer credentials

/// Header of a node-to-node request's credential.
pub const PEER_HEADER: &str = "x-ryx-peer";
/// Context of the keys peer credentials are made with.
const PEER_CONTEXT: &str = "ryx http peer credential v1";
/// How far a credential's time may lie from the receiver's clock.
const PEER_SKEW_MS: u64 = 60_000;

struct PeerKeys {
    me: NodeId,
    /// Signing key first; all verify.
    keys: Vec<[u8; 32]>,
    /// This node's own HTTP addresses (a credential must name one).
    own: Vec<SocketAddr>,
}

static PEER: RwLock<Option<PeerKeys>> = RwLock::new(None);
static SEEN: OnceLock<Mutex<HashMap<[u8; 16], u64>>> = OnceLock::new();

/// Sets the keys peer credentials are made and checked with: derived from
/// the cluster secret's keys if there is one, and from the API token.
pub fn configure_peer(me: NodeId, keyring: &ryx_core::auth::Keyring, token: Option<&str>, own: Vec<SocketAddr>) {
    let mut keys: Vec<[u8; 32]> = keyring.subkeys(PEER_CONTEXT).into_iter().map(|(_, k)| k).collect();
    if let Some(t) = token {
        keys.push(blake3::derive_key(PEER_CONTEXT, t.as_bytes()));
    }
    if let Ok(mut g) = PEER.write() {
        *g = Some(PeerKeys { me, keys, own });
    }
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn peer_mac(key: &[u8; 32], method: &str, authority: &str, pq: &str, ts: u64, from: NodeId) -> [u8; 16] {
    let mut h = blake3::Hasher::new_keyed(key);
    for part in [method.as_bytes(), authority.as_bytes(), pq.as_bytes()] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(&ts.to_le_bytes());
    h.update(&from.0.to_le_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// The credential for `method path_and_query` sent to `to` (none when the
/// cluster has neither a secret nor a token: nothing needs one then).
pub fn credential(method: &str, to: SocketAddr, pq: &str) -> Option<String> {
    let g = PEER.read().ok()?;
    let p = g.as_ref()?;
    let key = p.keys.first()?;
    let ts = unix_ms();
    let mac = peer_mac(key, method, &to.to_string(), pq, ts, p.me);
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("{}.{ts}.{hex}", p.me))
}

/// Whether `value` is a valid credential for this request to this node. A
/// credential of a request that changes something is accepted once.
pub fn check_credential(value: &str, method: &str, host: &str, pq: &str) -> bool {
    let mut parts = value.split('.');
    let (Some(from), Some(ts), Some(mac), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(from), Ok(ts)) = (from.parse::<NodeId>(), ts.parse::<u64>()) else { return false };
    if ts.abs_diff(unix_ms()) > PEER_SKEW_MS || mac.len() != 32 {
        return false;
    }
    let mut got = [0u8; 16];
    for (i, b) in got.iter_mut().enumerate() {
        match mac.get(2 * i..2 * i + 2).and_then(|x| u8::from_str_radix(x, 16).ok()) {
            Some(v) => *b = v,
            None => return false,
        }
    }
    let Ok(g) = PEER.read() else { return false };
    let Some(p) = g.as_ref() else { return false };
    // The credential names the address it was made for: one of ours.
    if !p.own.iter().any(|a| a.to_string() == host) {
        return false;
    }
    let ok = p.keys.iter().any(|k| {
        let want = peer_mac(k, method, host, pq, ts, from);
        want.iter().zip(&got).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    });
    if !ok {
        return false;
    }
    if method == "GET" || method == "HEAD" {
        return true;
    }
    let seen = SEEN.get_or_init(|| Mutex::new(HashMap::new()));
    let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
    let now = unix_ms();
    if s.len() >= 65_536 {
        s.retain(|_, t| now.saturating_sub(*t) < 2 * PEER_SKEW_MS);
    }
    s.insert(got, now).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_bind_method_destination_and_path_and_are_not_the_token() {
        let me = NodeId(7);
        let own: SocketAddr = "127.0.0.1:9001".parse().expect("addr");
        configure_peer(me, &ryx_core::auth::Keyring::default(), Some("the token"), vec![own]);
        let c = credential("DELETE", own, "/v1/jobs/ab").expect("a token is set");
        assert!(!c.contains("the token"));
        assert!(!check_credential(&c, "DELETE", "127.0.0.1:9001", "/v1/jobs/cd"), "another path");
        assert!(!check_credential(&c, "GET", "127.0.0.1:9001", "/v1/jobs/ab"), "another method");
        assert!(!check_credential(&c, "DELETE", "127.0.0.1:9002", "/v1/jobs/ab"), "made for another node");
        assert!(check_credential(&c, "DELETE", "127.0.0.1:9001", "/v1/jobs/ab"));
        assert!(!check_credential(&c, "DELETE", "127.0.0.1:9001", "/v1/jobs/ab"), "a change is accepted once");
        let g = credential("GET", own, "/v1/blobs/x").expect("credential");
        assert!(check_credential(&g, "GET", "127.0.0.1:9001", "/v1/blobs/x"));
        assert!(check_credential(&g, "GET", "127.0.0.1:9001", "/v1/blobs/x"), "reads may repeat");
        assert!(!check_credential("00000000000000aa.1.00", "GET", "127.0.0.1:9001", "/"));
    }
}
