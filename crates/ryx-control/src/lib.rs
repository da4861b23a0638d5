//! The Ryx dashboard.
//!
//! The dashboard is a set of static files (HTML, CSS and vanilla JavaScript
//! modules, no build step, nothing fetched from elsewhere at run time)
//! embedded in the binary. Every node serves them at `/ui` (see [`asset`]),
//! and the standalone `ryx-control` server serves them too while proxying
//! the node API of whichever live node it is connected to.
//!
//! The page talks to the API at its own origin (`/v1/...`). To look at one
//! particular node it uses the per-node route `/node/{http-addr}/{path}`
//! (for example `/node/127.0.0.1:9003/v1/status`), which the server answers
//! by forwarding a `GET` to that node, provided the node is part of the
//! learned topology ([`node_route`] parses and checks such a path; the
//! `server` feature provides [`server::forward`] to stream the exchange).
//!
//! Without features this crate has no dependencies.

#[cfg(feature = "server")]
pub mod server;

use std::net::SocketAddr;

macro_rules! assets {
    ($($path:literal => $ct:literal),* $(,)?) => {
        /// Every embedded file: path under `/ui/`, content type, bytes.
        pub const ASSETS: &[(&str, &str, &[u8])] = &[
            $(($path, $ct, include_bytes!(concat!("../ui/", $path)))),*
        ];
    };
}

assets! {
    "index.html" => "text/html; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "app.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "live.js" => "text/javascript; charset=utf-8",
    "model.js" => "text/javascript; charset=utf-8",
    "graph.js" => "text/javascript; charset=utf-8",
    "charts.js" => "text/javascript; charset=utf-8",
    "util.js" => "text/javascript; charset=utf-8",
    "topology.js" => "text/javascript; charset=utf-8",
    "energy.js" => "text/javascript; charset=utf-8",
    "jobs.js" => "text/javascript; charset=utf-8",
    "inject.js" => "text/javascript; charset=utf-8",
    "metrics.js" => "text/javascript; charset=utf-8",
    "detail.js" => "text/javascript; charset=utf-8",
}

/// The `Cache-Control` value to serve assets with: the browser revalidates,
/// so a node upgrade is picked up at the next load.
pub const CACHE_CONTROL: &str = "no-cache";

/// The dashboard file at `path` (relative to `/ui/`; `""` or `"index.html"`
/// is the page): its content type and bytes.
///
/// ```
/// let (ct, body) = ryx_control::asset("").expect("the page");
/// assert!(ct.starts_with("text/html"));
/// assert!(!body.is_empty());
/// assert!(ryx_control::asset("../Cargo.toml").is_none());
/// ```
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    let path = path.trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    ASSETS.iter().find(|(p, _, _)| *p == path).map(|(_, ct, body)| (*ct, *body))
}

/// Why a per-node path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRouteError {
    /// Not of the form `/node/{addr}/{path}`.
    Malformed,
    /// The address is not `IP:PORT`.
    BadAddress,
    /// Only the node API (`/v1/...`), `/metrics` and `/healthz` are reachable.
    ForbiddenPath,
}

impl NodeRouteError {
    /// A human message (the stable code is `ryx_api::ErrorCode::from`
    /// this, with the `server` feature).
    pub fn message(self) -> &'static str {
        match self {
            NodeRouteError::Malformed => "expected /node/{ip:port}/v1/...",
            NodeRouteError::BadAddress => "the node address must be ip:port (as in /v1/topology `http`)",
            NodeRouteError::ForbiddenPath => "only /v1/..., /metrics and /healthz can be reached through /node/",
        }
    }
}

/// Parses a per-node route, `/node/{addr}/{rest}[?query]`, into the node's
/// HTTP address and the path (with query) to ask it for.
///
/// The address may be percent-encoded (`127.0.0.1%3A9003`,
/// `%5B%3A%3A1%5D%3A9003`). Only the node API is reachable: the path must
/// start with `/v1/`, or be `/metrics` or `/healthz`. The caller must still
/// check that the address belongs to the cluster (is in the topology), so
/// the route cannot be used to reach arbitrary hosts.
///
/// ```
/// use ryx_control::node_route;
/// let (addr, path) = node_route("/node/127.0.0.1%3A9003/v1/info/k?x=1").unwrap();
/// assert_eq!(addr.to_string(), "127.0.0.1:9003");
/// assert_eq!(path, "/v1/info/k?x=1");
/// assert!(node_route("/node/127.0.0.1:9003/ui/").is_err());
/// ```
pub fn node_route(path_and_query: &str) -> Result<(SocketAddr, String), NodeRouteError> {
    let rest = path_and_query.strip_prefix("/node/").ok_or(NodeRouteError::Malformed)?;
    let (addr, tail) = rest.split_once('/').ok_or(NodeRouteError::Malformed)?;
    let addr: SocketAddr =
        percent_decode(addr).ok_or(NodeRouteError::BadAddress)?.parse().map_err(|_| NodeRouteError::BadAddress)?;
    let tail = format!("/{tail}");
    let path_only = tail.split('?').next().unwrap_or("");
    let allowed = path_only.starts_with("/v1/") || path_only == "/metrics" || path_only == "/healthz";
    if !allowed || path_only.split('/').any(|seg| seg == "..") {
        return Err(NodeRouteError::ForbiddenPath);
    }
    Ok((addr, tail))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTML: &str = "text/html; charset=utf-8";
    const JS: &str = "text/javascript; charset=utf-8";

    #[test]
    fn page_and_modules_are_served() {
        let (ct, page) = asset("").expect("index");
        assert_eq!(ct, HTML);
        assert_eq!(asset("index.html").map(|a| a.1), Some(page));
        assert_eq!(asset("/app.js").map(|a| a.0), Some(JS));
        assert!(asset("nope.js").is_none());
        assert!(asset("../src/lib.rs").is_none());
    }

    /// Every module a module imports, and every file the page links, is embedded.
    #[test]
    fn every_reference_resolves() {
        let mut missing = Vec::new();
        for (path, _, body) in ASSETS {
            let text = std::str::from_utf8(body).expect("utf-8 asset");
            for quote in ['"', '\''] {
                for part in text.split(quote).skip(1).step_by(2) {
                    let target = if let Some(t) = part.strip_prefix("./") {
                        t
                    } else if let Some(t) = part.strip_prefix("/ui/") {
                        t
                    } else {
                        continue;
                    };
                    let is_file = [".js", ".css", ".svg", ".html"].iter().any(|e| target.ends_with(e));
                    if is_file && asset(target).is_none() {
                        missing.push(format!("{path} -> {target}"));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "unresolved references: {missing:?}");
    }

    #[test]
    fn node_routes() {
        let (a, p) = node_route("/node/127.0.0.1:9003/v1/status").expect("plain");
        assert_eq!((a.to_string().as_str(), p.as_str()), ("127.0.0.1:9003", "/v1/status"));
        let (a, _) = node_route("/node/%5B%3A%3A1%5D%3A9003/metrics").expect("v6");
        assert_eq!(a.to_string(), "[::1]:9003");
        assert_eq!(node_route("/node/x/v1/status"), Err(NodeRouteError::BadAddress));
        assert_eq!(node_route("/node/127.0.0.1:1"), Err(NodeRouteError::Malformed));
        assert_eq!(node_route("/v1/status"), Err(NodeRouteError::Malformed));
        assert_eq!(node_route("/node/127.0.0.1:1/v1/../ui"), Err(NodeRouteError::ForbiddenPath));
        assert_eq!(node_route("/node/127.0.0.1:1/node/127.0.0.1:2/v1/status"), Err(NodeRouteError::ForbiddenPath));
        assert_eq!(node_route("/node/127.0.0.1:1/%zz"), Err(NodeRouteError::ForbiddenPath));
    }
}
