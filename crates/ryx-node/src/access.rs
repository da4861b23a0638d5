//! HTTP access control: an optional bearer token for state-changing
//! requests (and, with `--protect-reads`, for reads too), and a read-only
//! variant of the API for a second listener (`--read-only-http`).
//!
//! The token is process-wide; a cluster shares one. Node-to-node requests
//! (blob fetches, job lookups, cancellations forwarded to a job's home) do
//! not carry it: they carry a peer credential derived from it (or from the
//! cluster secret), bound to the request (see `members`). SIGHUP reloads it.

use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ryx_api::{ErrorBody, ErrorCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;

static TOKEN: RwLock<Option<String>> = RwLock::new(None);
static PROTECT_READS: AtomicBool = AtomicBool::new(false);
/// Requests refused for a missing or wrong token.
pub static UNAUTHORIZED: AtomicU64 = AtomicU64::new(0);
/// Requests refused by the read-only listener.
pub static READ_ONLY_REFUSED: AtomicU64 = AtomicU64::new(0);

/// Sets (or clears) the API token and whether reads need it.
pub fn configure(token: Option<String>, protect_reads: bool) {
    let token = token.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    if let Ok(mut g) = TOKEN.write() {
        *g = token;
    }
    PROTECT_READS.store(protect_reads, Ordering::Relaxed);
}

/// The token, if any (never sent to other nodes: they get a peer
/// credential, see `members`).
pub fn token() -> Option<String> {
    TOKEN.read().ok().and_then(|g| g.clone())
}

/// Whether a token is configured.
pub fn enabled() -> bool {
    TOKEN.read().map(|g| g.is_some()).unwrap_or(false)
}

fn is_read(m: &Method) -> bool {
    m == Method::GET || m == Method::HEAD || m == Method::OPTIONS
}

/// Paths always open: liveness for orchestrators, the dashboard's static
/// files (the page asks for a token before it changes anything), and the
/// identity challenge, which members answer to one another before any
/// token is sent (with `--protect-reads` it would otherwise need the token
/// it exists to protect).
fn always_open(path: &str) -> bool {
    path == "/healthz" || path == "/v1/identity" || path == "/ui" || path.starts_with("/ui/")
}

/// Decodes `%XX` escapes (and `+` as space) of a query value.
fn percent_decode(v: &str) -> Vec<u8> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 2 < b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
            .flatten();
        match (b[i], hex) {
            (_, Some(x)) => {
                out.push(x);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (c, None) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}

/// Middleware of the main listener: checks the bearer token where needed.
pub async fn require_token(req: Request, next: Next) -> Response {
    let Some(want) = token() else { return next.run(req).await };
    let needs = !always_open(req.uri().path()) && (!is_read(req.method()) || PROTECT_READS.load(Ordering::Relaxed));
    if needs {
        let from_header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        // Browsers' EventSource cannot send headers: reads may carry the
        // token as `access_token` in the query string instead.
        let from_query = || {
            if !is_read(req.method()) {
                return None;
            }
            req.uri().query()?.split('&').find_map(|kv| kv.strip_prefix("access_token=")).map(percent_decode)
        };
        let got = from_header.map(|h| h.as_bytes().to_vec()).or_else(from_query);
        // Another node's request carries a peer credential instead.
        let peer = || {
            let pq = req.uri().path_and_query().map_or(req.uri().path(), |p| p.as_str());
            let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
            req.headers()
                .get(crate::members::PEER_HEADER)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| crate::members::check_credential(c, req.method().as_str(), host, pq))
        };
        if !got.is_some_and(|g| ct_eq(&g, want.as_bytes())) && !peer() {
            UNAUTHORIZED.fetch_add(1, Ordering::Relaxed);
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "this request needs the cluster's API token: Authorization: Bearer <token>",
            );
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(req).await
}

/// Middleware of the read-only listener: reads only, nothing under
/// `/v1/admin`, no token needed.
pub async fn read_only(req: Request, next: Next) -> Response {
    if !is_read(req.method()) || req.uri().path().starts_with("/v1/admin") {
        READ_ONLY_REFUSED.fetch_add(1, Ordering::Relaxed);
        return error(StatusCode::FORBIDDEN, ErrorCode::ReadOnly, "this listener serves read-only endpoints only");
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules() {
        assert!(always_open("/healthz"));
        assert!(always_open("/v1/identity"));
        assert!(always_open("/ui/app.js"));
        assert!(!always_open("/v1/jobs"));
        assert!(is_read(&Method::GET));
        assert!(!is_read(&Method::DELETE));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert_eq!(percent_decode("a%2Fb+c%zz%4"), b"a/b c%zz%4".to_vec());
    }
}
