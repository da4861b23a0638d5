//! Serving the dashboard and proxying the node API (feature `server`).
//!
//! - [`forward`] streams one HTTP exchange to a node (request and response
//!   bodies are streamed, so uploads and the Server-Sent Events stream pass
//!   through unbuffered). A node uses it for the per-node route
//!   `/node/{addr}/...`; the standalone server for everything.
//! - [`Control`] is the standalone server: it serves the assets, forwards
//!   `/v1/*`, `/metrics` and `/healthz` to the node it is connected to, and
//!   switches to another live node (learned from `/v1/topology`) when that
//!   one stops answering.
//!
//! Addresses learned from a topology are claims: before the standalone
//! server relays to one (`/node/{addr}/...`) or fails over onto it, the
//! address must prove to be the node the topology names there
//! ([`prove_identity`]: a signed answer to a fresh challenge, and with
//! `--secret-file` a cluster MAC). Nothing, credentials least of all, goes
//! to an address that does not.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::TokioIo;
use ryx_api::{ErrorBody, ErrorCode, Topology};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long to wait for a TCP connection to a node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for a node's response head (bodies may stream longer).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a forwarded exchange failed.
#[derive(Debug)]
pub enum ForwardError {
    /// No connection could be made: the node is down or unreachable.
    Connect(SocketAddr, String),
    /// Connected, but the exchange failed or timed out.
    Exchange(SocketAddr, String),
}

impl ForwardError {
    /// Whether the node looks dead (as opposed to one exchange failing).
    pub fn node_unreachable(&self) -> bool {
        matches!(self, ForwardError::Connect(..))
    }
}

impl std::fmt::Display for ForwardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardError::Connect(a, e) => write!(f, "cannot connect to node {a}: {e}"),
            ForwardError::Exchange(a, e) => write!(f, "node {a} did not answer: {e}"),
        }
    }
}

impl std::error::Error for ForwardError {}

impl IntoResponse for ForwardError {
    fn into_response(self) -> Response {
        let code = if self.node_unreachable() { ErrorCode::NodeUnreachable } else { ErrorCode::BadGateway };
        error_response(StatusCode::BAD_GATEWAY, code, self.to_string())
    }
}

/// A JSON error in the node API's shape, `{"error":{"code","message"}}`.
pub fn error_response(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    (status, axum::Json(ErrorBody::new(code, message))).into_response()
}

impl From<crate::NodeRouteError> for ErrorCode {
    fn from(e: crate::NodeRouteError) -> ErrorCode {
        match e {
            crate::NodeRouteError::Malformed => ErrorCode::BadRoute,
            crate::NodeRouteError::BadAddress => ErrorCode::BadAddress,
            crate::NodeRouteError::ForbiddenPath => ErrorCode::ForbiddenPath,
        }
    }
}

/// The dashboard file at `path` (relative to `/ui/`), or a JSON 404.
pub fn ui_response(path: &str) -> Response {
    match crate::asset(path) {
        Some((ct, body)) => {
            ([(header::CONTENT_TYPE, ct), (header::CACHE_CONTROL, crate::CACHE_CONTROL)], body).into_response()
        }
        None => error_response(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("no dashboard file {path:?}")),
    }
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        h.remove(*name);
    }
}

/// Sends `req` (method, headers and streamed body; its URI is ignored) to
/// the node at `target` as `path_and_query`, and returns the node's response
/// with its body streamed.
pub async fn forward(target: SocketAddr, req: Request, path_and_query: &str) -> Result<Response, ForwardError> {
    let (parts, body) = req.into_parts();
    forward_parts(target, parts.method, parts.headers, body, path_and_query).await
}

async fn forward_parts(
    target: SocketAddr,
    method: Method,
    mut headers: HeaderMap,
    body: Body,
    path_and_query: &str,
) -> Result<Response, ForwardError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(target))
        .await
        .map_err(|_| ForwardError::Connect(target, "connection timed out".into()))?
        .map_err(|e| ForwardError::Connect(target, e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let exch = |e: &dyn std::fmt::Display| ForwardError::Exchange(target, e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| exch(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    strip_hop_by_hop(&mut headers);
    let mut up = hyper::Request::builder().method(method).uri(path_and_query).body(body).map_err(|e| exch(&e))?;
    *up.headers_mut() = headers;
    if let Ok(host) = HeaderValue::from_str(&target.to_string()) {
        up.headers_mut().insert(header::HOST, host);
    }
    let resp = tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(up))
        .await
        .map_err(|_| exch(&"no response in time"))?
        .map_err(|e| exch(&e))?;
    let (mut parts, incoming) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Body::new(incoming)))
}

/// GETs `path` from `target`: status and (at most `limit` bytes of) body.
pub async fn get_bytes(
    target: SocketAddr,
    path: &str,
    limit: usize,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), ForwardError> {
    let fut = async {
        let resp = forward_parts(target, Method::GET, HeaderMap::new(), Body::empty(), path).await?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(|e| ForwardError::Exchange(target, e.to_string()))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| ForwardError::Exchange(target, "timed out".into()))?
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Most node addresses remembered.
const MAX_KNOWN: usize = 4096;
/// A node not listed in any topology for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(120);

#[derive(Debug)]
struct Known {
    node_id: Option<String>,
    listed: Instant,
    failures: u32,
    /// When it last proved to be `node_id`.
    proven: Option<Instant>,
}

/// How long a proof of identity is trusted.
const PROOF_TTL: Duration = Duration::from_secs(300);

/// Asks `addr` to prove it serves node `expected` (hex id; `None`: any
/// node, as for the seed the operator named) of `cluster` (`None`: any),
/// with a cluster MAC under one of `member_keys` when given. Returns the
/// node id and cluster it proved.
pub async fn prove_identity(
    addr: SocketAddr,
    expected: Option<&str>,
    cluster: Option<&str>,
    member_keys: &[(u32, [u8; 32])],
) -> Result<(String, String), String> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| e.to_string())?;
    let challenge: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let (status, body) =
        get_bytes(addr, &format!("/v1/identity?challenge={challenge}"), 16 << 10, Duration::from_secs(2))
            .await
            .map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{addr} answered {status} to an identity challenge: not a Ryx node"));
    }
    let answer: ryx_core::identity::HttpIdentity =
        serde_json::from_slice(&body).map_err(|_| format!("{addr} is not a Ryx node"))?;
    let want = match expected {
        Some(e) => e.parse::<ryx_core::NodeId>().map_err(|e| e.to_string())?,
        None => answer.node_id,
    };
    let cluster = cluster.unwrap_or(&answer.cluster).to_string();
    answer
        .verify(want, &cluster, addr, &challenge, member_keys)
        .map_err(|e| format!("{addr} did not prove to be node {want} of cluster {cluster}: {e}"))?;
    Ok((answer.node_id.to_string(), answer.cluster))
}

/// A switch from one node to another (`/control/status` `history`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switch {
    /// When, Unix ms.
    pub at_unix_ms: u64,
    /// The node left.
    pub from: SocketAddr,
    /// Why.
    pub reason: String,
    /// The node switched to.
    pub to: SocketAddr,
}

/// What `GET /control/status` answers: which node the standalone server
/// is connected to, what it knows, and how it got there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlStatus {
    /// When it connected to the current node, Unix ms.
    pub connected_at_unix_ms: u64,
    /// The last switches, oldest first (at most 20).
    pub history: Vec<Switch>,
    /// Up to 64 of the node addresses it knows.
    pub known: Vec<SocketAddr>,
    /// Node addresses it knows.
    pub known_nodes: usize,
    /// The last refresh's error.
    pub last_error: Option<String>,
    /// Since the last good refresh, ms.
    pub last_refresh_ms_ago: Option<u64>,
    /// The node it is connected to.
    pub node: SocketAddr,
    /// That node's id, once known.
    pub node_id: Option<String>,
    /// How often it refreshes, ms.
    pub refresh_ms: u64,
    /// The node it started from.
    pub seed: SocketAddr,
    /// Switches so far.
    pub switches: u64,
}

#[derive(Debug)]
struct ControlState {
    current: SocketAddr,
    node_id: Option<String>,
    connected_at_unix_ms: u64,
    last_ok: Option<Instant>,
    last_error: Option<String>,
    known: BTreeMap<SocketAddr, Known>,
    switches: u64,
    history: VecDeque<Switch>,
}

struct Inner {
    seed: SocketAddr,
    refresh: Duration,
    /// Keys proving cluster membership (`--secret-file`), if any.
    member_keys: Vec<(u32, [u8; 32])>,
    /// The cluster, as the seed proved it.
    cluster: Mutex<Option<String>>,
    state: Mutex<ControlState>,
    failover: tokio::sync::Mutex<()>,
}

/// The standalone dashboard server: connected to one live node at a time.
#[derive(Clone)]
pub struct Control(Arc<Inner>);

impl Control {
    /// A server first connected to `seed`, refreshing its list of nodes
    /// from the topology every `refresh`.
    pub fn new(seed: SocketAddr, refresh: Duration) -> Control {
        Control::with_keys(seed, refresh, Vec::new())
    }

    /// As [`Control::new`], checking every node's cluster MAC under
    /// `member_keys` (derived from the cluster secret).
    pub fn with_keys(seed: SocketAddr, refresh: Duration, member_keys: Vec<(u32, [u8; 32])>) -> Control {
        let mut known = BTreeMap::new();
        known.insert(seed, Known { node_id: None, listed: Instant::now(), failures: 0, proven: None });
        Control(Arc::new(Inner {
            seed,
            refresh,
            member_keys,
            cluster: Mutex::new(None),
            state: Mutex::new(ControlState {
                current: seed,
                node_id: None,
                connected_at_unix_ms: unix_ms(),
                last_ok: None,
                last_error: None,
                known,
                switches: 0,
                history: VecDeque::new(),
            }),
            failover: tokio::sync::Mutex::new(()),
        }))
    }

    fn state(&self) -> MutexGuard<'_, ControlState> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node currently proxied to.
    pub fn current(&self) -> SocketAddr {
        self.state().current
    }

    /// Whether `addr` is a node of the cluster (the one connected to, or one
    /// listed in a topology it reported).
    pub fn is_known(&self, addr: SocketAddr) -> bool {
        let s = self.state();
        s.current == addr || s.known.contains_key(&addr)
    }

    /// Makes `addr` prove it is the node the topology lists there (cached
    /// for a while). The seed proves to be a node of whatever cluster it
    /// says; every other address must be of that same cluster.
    pub async fn prove(&self, addr: SocketAddr) -> Result<(), String> {
        let expected = {
            let s = self.state();
            let Some(k) = s.known.get(&addr) else {
                return Err(format!("{addr} is not a node of the topology"));
            };
            if k.proven.is_some_and(|t| t.elapsed() < PROOF_TTL) {
                return Ok(());
            }
            k.node_id.clone()
        };
        if expected.is_none() && addr != self.0.seed {
            return Err(format!("{addr} is listed with no node id"));
        }
        let cluster = self.0.cluster.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (id, proved_cluster) =
            prove_identity(addr, expected.as_deref(), cluster.as_deref(), &self.0.member_keys).await?;
        let mut c = self.0.cluster.lock().unwrap_or_else(|p| p.into_inner());
        c.get_or_insert(proved_cluster);
        drop(c);
        let mut s = self.state();
        if let Some(k) = s.known.get_mut(&addr) {
            k.proven = Some(Instant::now());
            k.node_id.get_or_insert(id);
        }
        Ok(())
    }

    /// What `GET /control/status` answers.
    pub fn status(&self) -> ControlStatus {
        let s = self.state();
        ControlStatus {
            connected_at_unix_ms: s.connected_at_unix_ms,
            history: s.history.iter().cloned().collect(),
            known: s.known.keys().take(64).copied().collect(),
            known_nodes: s.known.len(),
            last_error: s.last_error.clone(),
            last_refresh_ms_ago: s.last_ok.map(|t| t.elapsed().as_millis() as u64),
            node: s.current,
            node_id: s.node_id.clone(),
            refresh_ms: self.0.refresh.as_millis() as u64,
            seed: self.0.seed,
            switches: s.switches,
        }
    }

    /// The router: `/` (redirect), `/ui`, `/ui/*`, `/control/status`,
    /// `/node/{addr}/...` and everything under `/v1/`, `/metrics`, `/healthz`
    /// forwarded to the connected node.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/",
                get(|| async { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, "/ui/")]).into_response() }),
            )
            .route("/ui", get(|| async { ui_response("") }))
            .route("/ui/", get(|| async { ui_response("") }))
            .route(
                "/ui/{*path}",
                get(|axum::extract::Path(p): axum::extract::Path<String>| async move { ui_response(&p) }),
            )
            .route("/control/status", get(|State(c): State<Control>| async move { axum::Json(c.status()) }))
            .fallback(proxy)
            .with_state(self.clone())
    }

    /// Refreshes the node list from the connected node's topology every
    /// `refresh`, switching nodes when it does not answer. Runs forever.
    pub async fn watch(self) {
        let mut iv = tokio::time::interval(self.0.refresh);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            iv.tick().await;
            self.refresh_once().await;
        }
    }

    /// One refresh: ask the connected node for its topology; fail over if
    /// it does not answer.
    pub async fn refresh_once(&self) {
        let cur = self.current();
        let timeout = self.0.refresh.max(Duration::from_secs(2));
        match get_bytes(cur, "/v1/topology", 16 << 20, timeout).await {
            Ok((status, body)) if status.is_success() => match serde_json::from_slice::<Topology>(&body) {
                Ok(topo) => self.learn(cur, &topo),
                Err(e) => self.note_error(cur, format!("topology does not parse: {e}")),
            },
            Ok((status, _)) => {
                self.note_error(cur, format!("topology answered {status}"));
                self.failover(cur, &format!("{cur} answered {status}")).await;
            }
            Err(e) => {
                self.note_error(cur, e.to_string());
                self.failover(cur, &e.to_string()).await;
            }
        }
    }

    fn note_error(&self, addr: SocketAddr, e: String) {
        let mut s = self.state();
        if let Some(k) = s.known.get_mut(&addr) {
            k.failures = k.failures.saturating_add(1);
        }
        s.last_error = Some(e);
    }

    fn learn(&self, from: SocketAddr, topo: &Topology) {
        let now = Instant::now();
        let mut s = self.state();
        if s.current == from {
            s.last_ok = Some(now);
            s.node_id = Some(topo.observer.to_string());
        }
        if let Some(k) = s.known.get_mut(&from) {
            k.failures = 0;
        }
        for n in &topo.nodes {
            let Some(http) = n.http else {
                continue;
            };
            if !s.known.contains_key(&http) && s.known.len() >= MAX_KNOWN {
                continue;
            }
            let e = s.known.entry(http).or_insert(Known { node_id: None, listed: now, failures: 0, proven: None });
            e.listed = now;
            let id = Some(n.node_id.to_string());
            if e.node_id != id {
                // Another node at this address now: it must prove itself.
                e.proven = None;
                e.node_id = id;
            }
        }
        let (seed, cur) = (self.0.seed, s.current);
        s.known.retain(|a, k| *a == seed || *a == cur || now.duration_since(k.listed) < FORGET_AFTER);
    }

    /// Switches away from `failed` (if still connected to it) to the first
    /// known node whose `/healthz` answers. Returns the node now connected to.
    pub async fn failover(&self, failed: SocketAddr, reason: &str) -> SocketAddr {
        let _guard = self.0.failover.lock().await;
        let candidates: Vec<SocketAddr> = {
            let s = self.state();
            if s.current != failed {
                return s.current;
            }
            let mut c: Vec<(u32, SocketAddr)> =
                s.known.iter().filter(|(a, _)| **a != failed).map(|(a, k)| (k.failures, *a)).collect();
            // Spread dashboards over the nodes: start at a varying offset.
            let n = c.len().max(1);
            let off = (unix_ms() as usize) % n;
            c.rotate_left(off);
            c.sort_by_key(|(f, _)| *f);
            c.into_iter().map(|(_, a)| a).collect()
        };
        for cand in candidates {
            // Only onto a node that proves to be the one listed there: a
            // forged topology must not move the dashboard onto a stranger.
            if let Err(e) = self.prove(cand).await {
                tracing::warn!(node = %cand, "not failing over: {e}");
                let mut s = self.state();
                if let Some(k) = s.known.get_mut(&cand) {
                    k.failures = k.failures.saturating_add(1);
                }
                continue;
            }
            match get_bytes(cand, "/healthz", 64 << 10, Duration::from_secs(1)).await {
                Ok((st, _)) if st.is_success() => {
                    let mut s = self.state();
                    tracing::warn!(from = %failed, to = %cand, reason, "switched node");
                    s.current = cand;
                    s.node_id = s.known.get(&cand).and_then(|k| k.node_id.clone());
                    s.connected_at_unix_ms = unix_ms();
                    s.switches += 1;
                    s.history.push_back(Switch {
                        at_unix_ms: unix_ms(),
                        from: failed,
                        to: cand,
                        reason: reason.to_owned(),
                    });
                    while s.history.len() > 20 {
                        s.history.pop_front();
                    }
                    if let Some(k) = s.known.get_mut(&cand) {
                        k.failures = 0;
                    }
                    return cand;
                }
                _ => {
                    let mut s = self.state();
                    if let Some(k) = s.known.get_mut(&cand) {
                        k.failures = k.failures.saturating_add(1);
                    }
                }
            }
        }
        tracing::warn!(node = %failed, reason, "no other live node answers; staying");
        failed
    }
}

/// Everything that is not an asset: `/node/{addr}/...` to that node,
/// the node API to the connected node.
async fn proxy(State(c): State<Control>, req: Request) -> Response {
    let pq = req.uri().path_and_query().map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let path = req.uri().path().to_owned();
    if path.starts_with("/node/") {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "only GET and HEAD reach a node through /node/",
            );
        }
        let (addr, rest) = match crate::node_route(&pq) {
            Ok(r) => r,
            Err(e) => return error_response(StatusCode::BAD_REQUEST, e.into(), e.message()),
        };
        if !c.is_known(addr) {
            return error_response(
                StatusCode::FORBIDDEN,
                ErrorCode::UnknownNode,
                format!("{addr} is not a node of the topology"),
            );
        }
        if let Err(e) = c.prove(addr).await {
            return error_response(StatusCode::FORBIDDEN, ErrorCode::NotMember, e);
        }
        return forward(addr, req, &rest).await.unwrap_or_else(|e| e.into_response());
    }
    let api = path.starts_with("/v1/") || path == "/metrics" || path == "/healthz";
    if !api {
        return error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such endpoint; the dashboard is at /ui/, the node API under /v1/",
        );
    }
    let mut resp = forward_api(&c, req, &pq).await;
    resp.headers_mut().insert(VIA_HEADER, HeaderValue::from_static("1"));
    resp
}

/// Marks every API answer relayed by the standalone server, so the page
/// knows it may ask `/control/status` (a node does not have it).
pub const VIA_HEADER: &str = "x-ryx-control";

async fn forward_api(c: &Control, req: Request, pq: &str) -> Response {
    let cur = c.current();
    let (parts, body) = req.into_parts();
    let retry = (parts.method == Method::GET || parts.method == Method::HEAD)
        .then(|| (parts.method.clone(), parts.headers.clone()));
    match forward_parts(cur, parts.method, parts.headers, body, pq).await {
        Ok(r) => r,
        Err(e) if e.node_unreachable() => {
            c.note_error(cur, e.to_string());
            let next = c.failover(cur, &e.to_string()).await;
            match retry {
                Some((m, h)) if next != cur => {
                    forward_parts(next, m, h, Body::empty(), pq).await.unwrap_or_else(|e| e.into_response())
                }
                _ => e.into_response(),
            }
        }
        Err(e) => e.into_response(),
    }
}
