//! The HTTP API, in-process: one real node (event loop, store, workers;
//! a loopback UDP socket nobody else uses) and its router, given requests
//! made of arbitrary methods, paths, queries, headers and bodies — JSON
//! bodies, uploads, manifests, job ids, relay routes, challenges. Nothing
//! may panic, every answer must come within a bound, and the node's tables
//! must stay within their bounds.
//!
//! Input: `[method: u8][token: u8]` then the path (to the first `\n`),
//! then the body.

#![no_main]

use axum::body::Body;
use axum::Router;
use libfuzzer_sys::fuzz_target;
use ryx_core::identity::Identity;
use ryx_core::{Node, NodeConfig};
use ryx_node::runtime::{self, Clock, Handle};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::time::Duration;
use tower::ServiceExt;

struct Harness {
    rt: tokio::runtime::Runtime,
    router: Router,
    handle: Handle,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

fn harness() -> &'static Harness {
    HARNESS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let (router, handle) = rt.block_on(async {
            let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let sockets = runtime::bind(lo, 0, IpAddr::V4(Ipv4Addr::new(127, 255, 255, 255)), 0, false).expect("bind");
            let addr = sockets.main.local_addr().expect("addr");
            let cfg = NodeConfig { memory_limit: 8 << 20, ..NodeConfig::default() };
            let clock = Clock::new();
            let mut node = Node::new(cfg, Identity::from_text("fuzz"), addr, 1, clock.now());
            node.set_wall_clock(clock.now(), Clock::wall());
            let (handle, _task) = runtime::spawn(node, clock, sockets, 1, Default::default(), false);
            ryx_node::access::configure(Some("fuzz-token".into()), false);
            let limits = ryx_node::http::Limits {
                memory: 8 << 20,
                chunk_size: 64 << 10,
                max_uploads: 2,
                max_event_streams: 4,
                body_timeout: Duration::from_millis(200),
            };
            let router = ryx_node::http::router(handle.clone(), limits)
                .layer(axum::middleware::from_fn(ryx_node::access::require_token));
            (router, handle)
        });
        Harness { rt, router, handle }
    })
}

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"];

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let [m, t, rest @ ..] = data else { return };
    let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    let (path, body) = rest.split_at(split);
    let body = body.get(1..).unwrap_or_default().to_vec();
    let Ok(path) = std::str::from_utf8(path) else { return };
    let mut req = axum::http::Request::builder().method(METHODS[usize::from(*m) % METHODS.len()]).uri(path);
    if t & 1 == 1 {
        req = req.header("authorization", "Bearer fuzz-token");
    }
    if t & 2 == 2 {
        req = req.header("content-type", "application/json");
    }
    let Ok(req) = req.body(Body::from(body)) else { return };
    let router = h.router.clone();
    h.rt.block_on(async move {
        let resp = tokio::time::timeout(Duration::from_secs(5), router.oneshot(req))
            .await
            .expect("every request is answered within 5 s");
        let Ok(resp) = resp;
        // Read some of the body (streams included), boundedly.
        let body = resp.into_body();
        let _ = tokio::time::timeout(Duration::from_millis(100), axum::body::to_bytes(body, 1 << 20)).await;
    });
    let check = h.rt.block_on(h.handle.call(|s| s.node.table_sizes().check(s.node.config())));
    match check {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("table bound broken: {e}"),
        Err(e) => panic!("the node's event loop died: {e}"),
    }
});
