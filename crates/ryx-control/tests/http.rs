//! The dashboard's HTTP side without a browser: a node serves `/ui`,
//! relays `/node/{addr}/...` to nodes of its topology only, keeps its recent
//! events; the standalone `ryx-control` serves the page, relays the API and
//! marks what it relays.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ryx_api::{DownReason, ErrorBody, NodeEvent, Status};
use std::time::Duration;

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, Vec<u8>) {
    http(addr, "GET", path, None, Duration::from_secs(5)).unwrap()
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body).map(|e| e.error.code.to_string()).unwrap_or_default()
}

#[test]
fn nodes_serve_the_dashboard_and_relay_to_known_nodes_only() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, "http");
    let (a, b) = (cluster.nodes[0].http, cluster.nodes[1].http);

    let (st, page) = get(a, "/ui");
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&page).contains("<title>Ryx control</title>"));
    for (path, asset) in ryx_control::ASSETS.iter().map(|(p, _, body)| (format!("/ui/{p}"), *body)) {
        let (st, body) = get(a, &path);
        assert_eq!((st, body.as_slice()), (200, asset), "{path}");
    }
    let (st, body) = get(a, "/ui/../Cargo.toml");
    assert!(st == 404 || st == 400, "{st}: {}", String::from_utf8_lossy(&body));

    // Another node's API through this one.
    let via: Status = common::get(a, &format!("/node/{b}/v1/status")).expect("relayed status");
    assert_eq!(via.node_id, cluster.nodes[1].id);
    // Not a node of the topology: refused, nothing is contacted.
    let (st, body) = get(a, "/node/127.0.0.1:1/v1/status");
    assert_eq!((st, error_code(&body).as_str()), (403, "unknown_node"));
    // Only the API is reachable that way.
    let (st, body) = get(a, &format!("/node/{b}/ui/"));
    assert_eq!((st, error_code(&body).as_str()), (400, "forbidden_path"));
    let (st, body) = get(a, "/node/not-an-address/v1/status");
    assert_eq!((st, error_code(&body).as_str()), (400, "bad_address"));
    let (st, _) = http(a, "POST", &format!("/node/{b}/v1/info"), Some(b"{}"), Duration::from_secs(5)).unwrap();
    assert_eq!(st, 405, "only GET is relayed");

    // Recent events: a killed neighbour shows up as failed.
    let dead = cluster.nodes[2].id.clone();
    cluster.nodes[2].proc.kill();
    let ev = wait_for(Duration::from_secs(15), || {
        client(a).recent_events().ok()?.into_iter().find_map(|e| match e.event {
            NodeEvent::NeighborDown { ref id, reason } if *id == dead => Some((e.at_unix_ms, reason)),
            _ => None,
        })
    });
    let (at, reason) = ev.expect("neighbor_down of the killed node in /v1/events/recent");
    assert_eq!(reason, DownReason::Failed);
    assert!(at > 1_600_000_000_000);
}

#[test]
fn standalone_control_serves_the_page_and_relays_the_api() {
    let _serial = serial();
    let cluster = Cluster::start(3, "ctlhttp");
    let control = Control::start(cluster.nodes[0].http, 500);
    let (st, page) = get(control.addr, "/ui/");
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&page).contains("<title>Ryx control</title>"));
    let s = client(control.addr).status().expect("status through ryx-control");
    assert_eq!(s.node_id, cluster.nodes[0].id);
    // It marks what it relays, so the page knows to ask /control/status.
    let (st, head) = head_of(control.addr, "/v1/status");
    assert_eq!(st, 200);
    assert!(head.to_ascii_lowercase().contains("x-ryx-control: 1"), "{head}");
    let st = wait_for(Duration::from_secs(10), || control.status().filter(|s| s.known_nodes >= 3));
    let st = st.expect("ryx-control learned the cluster");
    assert_eq!(st.node, cluster.nodes[0].http);
    // The per-node route, to a node it learned of.
    let other = cluster.nodes[2].http;
    let via: Status = common::get(control.addr, &format!("/node/{other}/v1/status")).expect("relayed");
    assert_eq!(via.node_id, cluster.nodes[2].id);
    let (st, body) = get(control.addr, "/node/127.0.0.1:1/v1/status");
    assert_eq!((st, error_code(&body).as_str()), (403, "unknown_node"));
    let (st, body) = get(control.addr, "/nothing");
    assert_eq!((st, error_code(&body).as_str()), (404, "not_found"));
}

/// Status line and headers of a GET.
fn head_of(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let st = head.split_whitespace().nth(1).and_then(|x| x.parse().ok()).unwrap_or(0);
    (st, head)
}
