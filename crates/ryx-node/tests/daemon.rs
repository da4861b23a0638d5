//! Process-level tests: real `ryx-node` binaries on loopback.

mod support;

use ryx_api::{ErrorBody, ErrorCode, FaultSpec, Neighbor, NodeId, PutInfo};
use serde_json::json;
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn broadcast_and_seed_nodes_find_each_other_and_share_info() {
    // The issue's walkthrough: two broadcast nodes and one seeded node.
    let disc = discovery_port();
    let a = start_any_node("walk", disc, &["--discovery", "broadcast"]);
    let b = start_any_node("walk", disc, &["--discovery", "broadcast"]);
    let c = start_any_node("walk", disc, &["--discovery", "seed-nodes", "--seeds", &format!("localhost:{}", a.port)]);
    let nodes = [a, b, c];
    assert!(wait_until(Duration::from_secs(10), || all_have(&nodes, 2)).is_some(), "nodes did not link up");

    let st = nodes[0].client().status().expect("status");
    assert_eq!(st.cluster_id, "walk");
    assert_eq!(st.node_id, nodes[0].id);
    assert!(st.uptime_ms > 0 && st.neighbors.len() >= 2, "{st:?}");

    let put = |n: &NodeProc, value: &str, energy| {
        let info = PutInfo { key: "greeting".into(), value: json!(value), energy };
        n.client().put_info(&info).expect("put")
    };
    let written = put(&nodes[1], "hello", None);
    assert_eq!(written.origin, nodes[1].id);
    let holds =
        |n: &NodeProc, value: &str| n.client().info("greeting").ok().flatten().is_some_and(|i| i.value == value);
    let got = wait_until(Duration::from_secs(5), || holds(&nodes[2], "hello"));
    assert!(got.is_some(), "info did not reach the seeded node");
    // A newer version wins everywhere.
    put(&nodes[2], "bye", Some(50.0));
    let got = wait_until(Duration::from_secs(5), || nodes.iter().all(|n| holds(n, "bye")));
    assert!(got.is_some(), "newer version did not win everywhere");
    assert_eq!(nodes[0].client().info_items().expect("items").len(), 1);

    // Topology: every node learns the others' neighbour lists.
    let learned = wait_until(Duration::from_secs(8), || nodes[0].client().topology().is_ok_and(|t| t.nodes.len() == 3));
    assert!(learned.is_some(), "topology incomplete: {:?}", nodes[0].client().topology());
    let topo = nodes[0].client().topology().expect("topology");
    assert!(topo.links.len() >= 4, "{topo:?}");

    let metrics = http(nodes[0].port, "GET", "/metrics", None).expect("metrics").1;
    for name in [
        "ryx_messages_received_total{kind=\"ping\"}",
        "ryx_messages_sent_total{kind=\"ack\"}",
        "ryx_datagrams_rejected_total{reason=\"malformed\"}",
        "ryx_bytes_received_total",
        "ryx_neighbors 2",
        "ryx_failures_detected_total",
        "ryx_diffusion_latency_seconds_count",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}");
    }
    nodes[0].client().peers().expect("the passive list");
}

#[test]
fn crashed_node_is_detected_and_replaced() {
    let mut nodes = start_cluster(8, "crash");
    if wait_until(Duration::from_secs(15), || all_have(&nodes, 4)).is_none() {
        for n in &nodes {
            eprintln!("{} {:?}", n.id, n.client().status());
        }
        panic!("cluster did not form");
    }
    let victim = nodes.remove(3);
    let victim_id = victim.id.clone();
    victim.signal("KILL");
    drop(victim);
    let repaired = wait_until(Duration::from_secs(5), || {
        nodes.iter().all(|n| n.neighbor_ids().is_some_and(|v| !v.contains(&victim_id) && v.len() >= 4))
    });
    if repaired.is_none() {
        for n in &nodes {
            eprintln!("{} {:?}", n.id, n.client().status());
        }
        panic!("survivors did not replace the dead node");
    }
    let detected: f64 = nodes.iter().filter_map(|n| n.metric("ryx_failures_detected_total")).sum();
    assert!(detected >= 1.0, "nobody counted the failure");
}

#[test]
fn paused_node_is_not_declared_dead() {
    let nodes = start_cluster(6, "pause");
    assert!(wait_until(Duration::from_secs(15), || all_have(&nodes, 4)).is_some(), "cluster did not form");
    let paused = &nodes[2];
    let watchers: Vec<&NodeProc> =
        nodes.iter().filter(|n| n.neighbor_ids().is_some_and(|v| v.contains(&paused.id))).collect();
    assert!(!watchers.is_empty(), "nobody watches node {}", paused.id);
    let before: f64 = nodes.iter().filter_map(|n| n.metric("ryx_failures_detected_total")).sum();
    paused.signal("STOP");
    assert!(
        wait_until(Duration::from_secs(5), || proc_state(paused.pid()) == Some('T')).is_some(),
        "SIGSTOP did not stop the node"
    );
    // The pause under test: the node stays stopped for 300 ms on purpose.
    std::thread::sleep(Duration::from_millis(300));
    paused.signal("CONT");
    let resumed = Instant::now();
    // Wait until the failure detectors are done with the pause: every
    // watcher still listing the node has heard from it since it resumed
    // (which refutes any suspicion), and one at least still lists it. A
    // watcher that declared it dead meanwhile has counted that.
    let heard_again = wait_until(Duration::from_secs(10), || {
        let mut listing = 0;
        for w in &watchers {
            let since_resume = resumed.elapsed().as_millis() as u64;
            let Some(e) = neighbor_entry(w, &paused.id) else { continue };
            let heard_since = !e.suspect && e.silent_ms < since_resume;
            if !heard_since {
                return false;
            }
            listing += 1;
        }
        listing > 0
    });
    assert!(heard_again.is_some(), "the watchers did not hear from the resumed node within 10 s");
    let after: f64 = nodes.iter().filter_map(|n| n.metric("ryx_failures_detected_total")).sum();
    assert_eq!(before, after, "a node paused for 300 ms was declared dead");
}

/// The scheduler state letter of a process (`T`: stopped), from /proc.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// `node`'s entry for neighbour `id` in `/v1/neighbors`, if it lists it.
fn neighbor_entry(node: &NodeProc, id: &NodeId) -> Option<Neighbor> {
    node.client().neighbors().expect("neighbours").into_iter().find(|n| n.node_id == *id)
}

#[test]
fn sigterm_announces_leave_and_neighbours_replace_it_at_once() {
    let mut nodes = start_cluster(7, "leave");
    assert!(wait_until(Duration::from_secs(15), || all_have(&nodes, 4)).is_some(), "cluster did not form");
    let leaver = nodes.remove(1);
    let id = leaver.id.clone();
    leaver.signal("TERM");
    let gone =
        wait_until(Duration::from_secs(3), || nodes.iter().all(|n| n.neighbor_ids().is_some_and(|v| !v.contains(&id))));
    assert!(gone.is_some(), "neighbours kept the leaver");
    let left: f64 = nodes.iter().filter_map(|n| n.metric("ryx_neighbors_left_total")).sum();
    let failed: f64 = nodes.iter().filter_map(|n| n.metric("ryx_failures_detected_total")).sum();
    assert!(left >= 1.0, "no neighbour counted a graceful leave");
    assert_eq!(failed, 0.0, "a graceful leave was treated as a failure");
    drop(leaver);
}

#[test]
fn bad_datagrams_are_rejected_counted_and_harmless() {
    let nodes = start_cluster(2, "wire");
    assert!(wait_until(Duration::from_secs(10), || all_have(&nodes, 1)).is_some());
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let to = ("127.0.0.1", nodes[0].port);
    sock.send_to(b"\x00\x01garbage", to).expect("send");
    sock.send_to(&vec![b'{'; 20_000], to).expect("send");
    sock.send_to(
        br#"{"v":2,"cluster":"other","from":"01","seq":1,"msg":{"kind":"hello","body":{"active":0,"needy":true}}}"#,
        to,
    )
    .expect("send");
    sock.send_to(
        br#"{"v":9,"cluster":"wire","from":"01","seq":1,"msg":{"kind":"hello","body":{"active":0,"needy":true}}}"#,
        to,
    )
    .expect("send");
    sock.send_to(br#"{"v":2,"cluster":"wire","from":"01","seq":1,"msg":{"kind":"warp","body":{}}}"#, to).expect("send");
    let counted = wait_until(Duration::from_secs(3), || {
        ["malformed", "oversized", "foreign_cluster", "wrong_version", "unknown_kind"].iter().all(|r| {
            nodes[0].metric(&format!("ryx_datagrams_rejected_total{{reason=\"{r}\"}}")).is_some_and(|v| v >= 1.0)
        })
    });
    assert!(counted.is_some(), "rejections not counted");
    assert_eq!(http(nodes[0].port, "GET", "/healthz", None).expect("health").0, 200);
    assert!(nodes[0].neighbor_ids().is_some_and(|v| v.contains(&nodes[1].id)), "link lost after bad input");
}

#[test]
fn http_errors_are_json_with_stable_codes() {
    let nodes = start_cluster(1, "http");
    let p = nodes[0].port;
    type Case<'a> = (&'a str, &'a str, Option<&'a [u8]>, u16, &'a str);
    let cases: [Case; 12] = [
        // Query strings that do not parse get JSON too, not plain text.
        ("GET", "/v1/identity", None, 400, "bad_query"),
        ("PUT", "/v1/blobs?copies=x", Some(b"a line\n"), 400, "bad_query"),
        ("GET", "/v1/jobs/00000000000000000000000000000000?local=maybe", None, 400, "bad_query"),
        ("GET", "/v1/identity?challenge=xyz", None, 400, "bad_challenge"),
        ("POST", "/v1/info", Some(b"{not json"), 400, "bad_json"),
        ("PATCH", "/v1/status", None, 405, "method_not_allowed"),
        ("POST", "/v1/jobs", Some(&[b' '; 100_000]), 413, "too_large"),
        ("POST", "/v1/info", Some(br#"{"key":"","value":1}"#), 400, "invalid"),
        ("POST", "/v1/info", Some(br#"{"key":"k","value":1,"energy":-3}"#), 400, "invalid"),
        ("GET", "/v1/info/missing", None, 404, "not_found"),
        ("GET", "/v1/nothing", None, 404, "not_found"),
        ("POST", "/v1/info", Some(&[b' '; 100_000]), 413, "too_large"),
    ];
    for (m, path, body, status, code) in cases {
        let (st, text) = http(p, m, path, body).expect("request");
        assert_eq!(st, status, "{m} {path}: {text}");
        let e: ErrorBody =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{m} {path}: not the JSON error ({e}): {text}"));
        assert_eq!(e.error.code, ErrorCode::parse(code), "{m} {path}: {text}");
        assert!(!e.error.message.is_empty());
    }
}

fn connected(nodes: &[NodeProc]) -> bool {
    let ids: Vec<NodeId> = nodes.iter().map(|n| n.id.clone()).collect();
    let mut adj: std::collections::HashMap<NodeId, Vec<NodeId>> = Default::default();
    for n in nodes {
        let Some(v) = n.neighbor_ids() else { return false };
        adj.insert(n.id.clone(), v);
    }
    let mut seen = std::collections::HashSet::new();
    let mut todo = vec![ids[0].clone()];
    while let Some(x) = todo.pop() {
        if seen.insert(x.clone()) {
            for y in adj.get(&x).into_iter().flatten() {
                if ids.contains(y) {
                    todo.push(y.clone());
                }
            }
        }
    }
    seen.len() == ids.len()
}

#[test]
fn partition_is_detected_and_heals_by_itself() {
    let nodes = start_nodes(12, "split", &["--enable-fault-injection"]);
    assert!(wait_until(Duration::from_secs(20), || all_have(&nodes, 4) && connected(&nodes)).is_some());
    let (a, b) = nodes.split_at(6);
    let addrs = |side: &[NodeProc]| side.iter().map(|n| ([127, 0, 0, 1], n.port).into()).collect::<Vec<_>>();
    let (aa, ba) = (addrs(a), addrs(b));
    for (side, other) in [(a, &ba), (b, &aa)] {
        for n in side {
            let spec = FaultSpec { block: other.clone(), for_ms: 4000, ..FaultSpec::default() };
            n.client().set_faults(&spec).expect("faults");
        }
    }
    let a_ids: Vec<NodeId> = a.iter().map(|n| n.id.clone()).collect();
    let split = wait_until(Duration::from_secs(4), || {
        a.iter().all(|n| n.neighbor_ids().is_some_and(|v| v.iter().all(|x| a_ids.contains(x))))
            && b.iter().all(|n| n.neighbor_ids().is_some_and(|v| v.iter().all(|x| !a_ids.contains(x))))
    });
    assert!(split.is_some(), "the two sides still list each other");
    assert!(!connected(&nodes), "the network should be split while the faults last");
    // The faults expire by themselves after 4 s; the halves must merge.
    let merged = wait_until(Duration::from_secs(30), || connected(&nodes));
    assert!(merged.is_some(), "the halves did not merge after the partition healed");
    let faults = nodes[0].client().faults().expect("faults");
    assert!(!faults.active, "{faults:?}");
    assert!(faults.dropped > 0, "{faults:?}");
}

#[test]
fn fault_api_is_off_unless_enabled() {
    let node = start_any_node("nofault", discovery_port(), &[]);
    let lose_all = ryx_api::Impairment { loss: 1.0, ..Default::default() };
    let e = node.client().set_faults(&FaultSpec { impairment: lose_all, for_ms: 1000, ..Default::default() });
    let e = e.expect_err("refused");
    assert_eq!((e.status(), e.code()), (Some(403), Some(&ErrorCode::FaultInjectionDisabled)), "{e}");
}
