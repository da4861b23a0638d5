//! Alerts by consensus on real processes: 20 loopback nodes in 4 racks;
//! three nodes of one rack are SIGKILLed; a quorum of their neighbours
//! turns that into one incident, "rack=rK: 3 nodes down", which a real
//! Prometheus Alertmanager receives once, and which every live node names
//! with the same id. And a node made lossy and another made slow (by their
//! own fault injection) are named so by their neighbours, at Alertmanager,
//! and resolved once they heal.

mod support;

use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// An Alertmanager on ports from the OS, killed when dropped.
struct Alertmanager {
    child: Child,
    port: u16,
    _dir: ryx_testkit::ScratchDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alertmanager() -> Option<Alertmanager> {
    let bin = ["prometheus-alertmanager", "alertmanager"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok())?;
    let dir = ryx_testkit::ScratchDir::new("alertmanager");
    let cfg = dir.path().join("am.yml");
    // One receiver that sends nowhere: what counts is what it receives.
    std::fs::write(&cfg, "route:\n  receiver: none\n  group_wait: 1s\nreceivers:\n  - name: none\n").expect("config");
    let port = ryx_testkit::free_port();
    let cluster = ryx_testkit::free_port();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--cluster.listen-address=127.0.0.1:{cluster}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let am = Alertmanager { child, port, _dir: dir };
    let up = ryx_testkit::wait_until(Duration::from_secs(20), || {
        http(am.port, "GET", "/-/ready", None).is_ok_and(|r| r.0 == 200)
    });
    assert!(up.is_some(), "Alertmanager did not come up on {port}");
    Some(am)
}

/// An Alertmanager, or a counted skip of `test` where there is none.
fn alertmanager_or_skip(test: &str) -> Option<Alertmanager> {
    let am = alertmanager();
    if am.is_none() {
        ryx_testkit::skip(
            test,
            ryx_testkit::Needs::Alertmanager,
            "no prometheus-alertmanager here (apt-get install prometheus-alertmanager)",
        );
    }
    am
}

/// Alerts received by Alertmanager so far (its own counter).
fn received(am: &Alertmanager) -> f64 {
    let (_, text) = http(am.port, "GET", "/metrics", None).expect("metrics");
    text.lines()
        .filter(|l| l.starts_with("alertmanager_alerts_received_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn three_nodes_of_a_rack_killed_make_one_notification_at_a_real_alertmanager() {
    let Some(am) = alertmanager_or_skip("three_nodes_of_a_rack_killed_make_one_notification_at_a_real_alertmanager")
    else {
        return;
    };
    let sink = format!("http://127.0.0.1:{}", am.port);
    let discovery = discovery_port();
    let mut nodes: Vec<NodeProc> = (0..20)
        .map(|i| {
            let label = format!("rack=r{}", i % 4);
            start_any_node("incidents", discovery, &["--label", &label, "--alertmanager", &sink])
        })
        .collect();
    let formed = ryx_testkit::wait_until(Duration::from_secs(30), || all_have(&nodes, 3));
    assert!(formed.is_some(), "the cluster did not form: {}", diagnose(&mut nodes));
    // The tree's leader is the least id; kill three nodes of another rack.
    let leader = nodes.iter().enumerate().min_by_key(|(_, n)| n.id.to_string()).map(|(i, _)| i).expect("nodes");
    let rack = (leader + 1) % 4;
    let victims: Vec<usize> = (0..20).filter(|i| i % 4 == rack).take(3).collect();
    // Every node has settled on the leader before the kill.
    let settled = ryx_testkit::wait_until(Duration::from_secs(20), || {
        nodes.iter().all(|n| get::<Value>(n.port, "/v1/aggregates")["count"].as_f64().is_some_and(|c| c > 15.0))
    });
    assert!(settled.is_some(), "aggregates did not count the nodes");
    let before = received(&am);
    let t0 = Instant::now();
    for &v in &victims {
        nodes[v].signal("KILL");
    }
    let seen = ryx_testkit::wait_until(Duration::from_secs(20), || received(&am) > before);
    let took = seen.map(|_| t0.elapsed());
    eprintln!("notification at Alertmanager {took:?} after the kill");
    assert!(took.is_some(), "no notification reached Alertmanager");
    // No second notification follows.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(received(&am) - before, 1.0, "exactly one alert received");
    let (_, alerts) = http(am.port, "GET", "/api/v2/alerts", None).expect("alerts");
    let alerts: Value = serde_json::from_str(&alerts).expect("json");
    let a = alerts.as_array().and_then(|a| a.first()).expect("one alert");
    let id = a["labels"]["incident"].as_str().expect("incident label").to_string();
    assert_eq!(a["labels"]["rack"], format!("r{rack}"), "{a}");
    // The notification names the deaths confirmed by then (all three,
    // unless one's observers were slower than the grouping window: it
    // joins the incident while it fires, without a second notification).
    let summary = a["annotations"]["summary"].as_str().unwrap_or_default().to_string();
    assert!(summary.starts_with(&format!("rack=r{rack}: ")) && summary.ends_with(" down"), "{a}");
    // Every live node names the same incident, with all three in it.
    for (i, n) in nodes.iter().enumerate().filter(|(i, _)| !victims.contains(i)) {
        let named = ryx_testkit::wait_until(Duration::from_secs(10), || {
            let v: Value = get(n.port, "/v1/incidents");
            v["incidents"].as_array().is_some_and(|l| l.iter().any(|x| x["id"] == id.as_str() && x["count"] == 3))
        });
        assert!(
            named.is_some(),
            "node {i} does not name incident {id} with 3 nodes: {:?}",
            get::<Value>(n.port, "/v1/incidents")
        );
    }
    assert_eq!(received(&am) - before, 1.0, "still one alert received");
}

/// The alerts Alertmanager holds: (alertname, members).
fn alerts_held(am: &Alertmanager) -> Vec<(String, Vec<String>)> {
    let Ok((_, text)) = http(am.port, "GET", "/api/v2/alerts", None) else { return Vec::new() };
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let name = a["labels"]["alertname"].as_str().unwrap_or_default().to_string();
            let members = a["annotations"]["members"].as_str().unwrap_or_default();
            (name, members.split(',').filter(|m| !m.is_empty()).map(String::from).collect())
        })
        .collect()
}

#[test]
fn a_lossy_node_and_a_slow_node_are_named_so_by_their_neighbours_and_resolved_when_they_heal() {
    let Some(am) = alertmanager_or_skip(
        "a_lossy_node_and_a_slow_node_are_named_so_by_their_neighbours_and_resolved_when_they_heal",
    ) else {
        return;
    };
    let sink = format!("http://127.0.0.1:{}", am.port);
    let discovery = discovery_port();
    let mut nodes: Vec<NodeProc> = (0..10)
        .map(|i| {
            let label = format!("rack=r{}", i % 2);
            start_any_node(
                "anomalies",
                discovery,
                &["--label", &label, "--alertmanager", &sink, "--enable-fault-injection"],
            )
        })
        .collect();
    let formed = ryx_testkit::wait_until(Duration::from_secs(30), || all_have(&nodes, 3));
    assert!(formed.is_some(), "the cluster did not form: {}", diagnose(&mut nodes));
    // Neither is the tree's leader (the least id).
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    order.sort_by_key(|i| nodes[*i].id.to_string());
    let (lossy, slow) = (order[3], order[6]);
    let fault = |i: usize, body: &str| {
        let r = http(nodes[i].port, "POST", "/v1/admin/faults", Some(body.as_bytes())).expect("faults");
        assert_eq!(r.0, 200, "{}", r.1);
    };
    // Half its datagrams lost on the way out (probes or their acks); the
    // other's sent 150 ms late (its answers come late: ten times a loaded
    // machine's loopback round trip, and more).
    fault(lossy, r#"{"loss":0.5,"for_ms":600000}"#);
    fault(slow, r#"{"delay_ms":150,"for_ms":600000}"#);
    let (lossy_id, slow_id) = (nodes[lossy].id.to_string(), nodes[slow].id.to_string());
    let t0 = Instant::now();
    let named = ryx_testkit::wait_until(Duration::from_secs(120), || {
        let held = alerts_held(&am);
        let has = |name: &str, id: &str| held.iter().any(|(n, m)| n == name && m.iter().any(|x| x == id));
        has("RyxNodesLossy", &lossy_id) && has("RyxNodesSlow", &slow_id)
    });
    eprintln!("lossy and slow nodes named at Alertmanager after {:?}", t0.elapsed());
    assert!(named.is_some(), "not both named at Alertmanager: {:?}", alerts_held(&am));
    // No alert names any other node (a lossy node may also be taken for
    // dead by its neighbours: that is a fault of the same node).
    for (name, members) in alerts_held(&am) {
        let allowed: &[&str] = match name.as_str() {
            "RyxNodesSlow" => &[&slow_id],
            _ => &[&lossy_id],
        };
        assert!(members.iter().all(|m| allowed.contains(&m.as_str())), "{name} names {members:?}");
    }
    // Heal both.
    for i in [lossy, slow] {
        let r = http(nodes[i].port, "DELETE", "/v1/admin/faults", None).expect("faults");
        assert_eq!(r.0, 200, "{}", r.1);
    }
    let t1 = Instant::now();
    let resolved = ryx_testkit::wait_until(Duration::from_secs(120), || {
        let v: Value = get(nodes[order[0]].port, "/v1/incidents");
        let l = v["incidents"].as_array().cloned().unwrap_or_default();
        ["nodes_slow", "nodes_lossy"].iter().all(|k| {
            l.iter().any(|x| x["kind"] == *k) && l.iter().filter(|x| x["kind"] == *k).all(|x| x["state"] == "resolved")
        })
    });
    eprintln!("both resolved {:?} after healing", t1.elapsed());
    assert!(resolved.is_some(), "not resolved: {:?}", get::<Value>(nodes[order[0]].port, "/v1/incidents"));
}
