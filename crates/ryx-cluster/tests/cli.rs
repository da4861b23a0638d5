//! End-to-end tests through the real binaries: `ryx-cluster` driving real
//! `ryx-node` processes on loopback. Every test uses its own run dir and
//! a base port from the OS, and a guard stops its cluster even when the
//! test fails.

use ryx_cluster::cluster::state::Fate;
use ryx_cluster::info::Coverage;
use ryx_cluster::measure::Measurement;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{healthy, is_ours, node_bin, runs, TestCluster, CLUSTER_BIN};
use ryx_testkit::free_port;

/// A run dir of this file's tests.
fn cluster(name: &str) -> TestCluster {
    TestCluster::new("test", name)
}

/// Starts `nodes` nodes in `c` from a base port the OS found free
/// (ryx-cluster skips busy ports above it, and retries a node that lost
/// its port).
fn start(c: &TestCluster, nodes: usize) -> String {
    let n = nodes.to_string();
    let p = free_port().to_string();
    c.ok(&["start", "--nodes", &n, "--base-port", &p, "--timeout", "60"])
}

/// Pids of live ryx-node processes that the `ryx-cluster` process `pid`
/// started in a temporary run dir of its own (`ryx-{tag}-{pid}-*`, where
/// their output goes): exactly its nodes, whatever their ports, and no
/// other test's.
fn nodes_of_run(tag: &str, pid: u32) -> Vec<u32> {
    let mark = format!("/ryx-{tag}-{pid}-");
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(node) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let log = std::fs::read_link(format!("/proc/{node}/fd/2")).unwrap_or_default();
        if runs(node, &["ryx-node"]) && log.to_string_lossy().contains(&mark) {
            found.push(node);
        }
    }
    found
}

/// Runs `ryx-cluster args`, which starts a temporary cluster tagged `tag`,
/// to the end; its output and pid. Panics if its nodes could not be seen
/// while it ran: then `nodes_of_run` finding none afterwards means nothing.
fn run_to_end(tag: &str, args: &[&str]) -> (Output, u32) {
    let mut child = Command::new(CLUSTER_BIN)
        .args(args)
        .env("RYX_NODE_BIN", node_bin())
        .env_remove("RYX_CLUSTER_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ryx-cluster");
    let pid = child.id();
    let mut ended = false;
    let seen = ryx_testkit::wait_until(Duration::from_secs(120), || {
        ended = ended || child.try_wait().is_ok_and(|s| s.is_some());
        ended || !nodes_of_run(tag, pid).is_empty()
    });
    let out = child.wait_with_output().expect("ryx-cluster ends");
    assert!(
        seen.is_some() && !ended,
        "the nodes of ryx-cluster {args:?} were not seen while it ran ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (out, pid)
}

#[test]
fn start_status_info_chaos_add_and_stop() {
    let c = cluster("life");
    let out = start(&c, 5);
    assert!(out.contains("connected"), "start reports the connection: {out}");

    // status --json: 5 alive, connected.
    let s = c.status();
    assert_eq!((s.total, s.alive, s.connected), (5, 5, true), "{s:#?}");
    assert!(s.nodes.iter().all(|n| n.neighbors >= Some(4)), "{s:#?}");
    let table = c.ok(&["status"]);
    assert!(table.contains("alive 5/5") && table.contains("connected: yes"), "{table}");

    // A second start on a live cluster is refused and changes nothing.
    let again = c.run(&["start", "--nodes", "2", "--base-port", &free_port().to_string()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already running"));
    assert_eq!(c.status().alive, 5);

    // info put at one node, get shows full coverage.
    let put = c.ok(&["info", "put", "greeting", "hello", "--to", "2"]);
    assert!(put.contains("node 2"), "{put}");
    let start = Instant::now();
    loop {
        let got: Coverage = serde_json::from_str(&c.ok(&["info", "get", "greeting", "--json"])).expect("json");
        if got.holding == 5 {
            assert!(got.nodes.iter().all(|n| n.item.as_ref().is_some_and(|i| i.value == "hello")), "{got:#?}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "item did not reach every node: {got:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let table = c.ok(&["info", "get", "greeting"]);
    assert!(table.contains("5/5"), "{table}");

    // chaos --kill 1: one dead, the rest reconnect.
    let pids_before = c.pids();
    let chaos = c.ok(&["chaos", "--kill", "1", "--seed", "7"]);
    assert!(chaos.contains("SIGKILL node"), "{chaos}");
    let s = c.wait_status(Duration::from_secs(20), "4 survivors healed", |s| healthy(s, 4));
    let dead: Vec<_> = s.nodes.iter().filter(|n| !n.alive).collect();
    assert_eq!(dead.len(), 1, "{s:#?}");
    assert_eq!(dead[0].fate, Fate::Killed);
    let dead_pid = dead[0].pid;
    assert!(!is_ours(dead_pid), "killed node {dead_pid} is gone");

    // add --nodes 2 joins the running cluster; arguments after `--` go to
    // these two only (an unequal machine: more kernel threads).
    let add = c.ok(&["add", "--nodes", "2", "--", "--workers", "3"]);
    assert!(add.contains("Joined"), "{add}");
    let s = c.wait_status(Duration::from_secs(20), "6 nodes healthy", |s| healthy(s, 6));
    assert_eq!(s.total, 7);
    let cmdline = |pid: u32| std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let threes = |pid: u32| cmdline(pid).split(|b| *b == 0).any(|a| a == b"--workers");
    for pid in c.pids() {
        assert_eq!(threes(pid), !pids_before.contains(&pid), "pid {pid}: --workers only on the nodes added with it");
    }
    assert!(!c.run(&["add", "--nodes", "1", "--", "--port", "1"]).status.success(), "a managed flag is refused");

    // logs of one node and of all.
    let log = c.ok(&["logs", "--node", "0", "--lines", "5"]);
    assert!(log.contains("ryx-node started") || log.contains("neighbour"), "{log}");
    assert!(c.ok(&["logs", "--lines", "1"]).contains("==> node 6"));

    // stop: no process left behind; a second stop is harmless.
    let pids = c.pids();
    assert_eq!(pids.len(), 7);
    assert!(pids_before.iter().all(|p| pids.contains(p)));
    let stop = c.ok(&["stop"]);
    assert!(stop.contains("Stopped"), "{stop}");
    for pid in &pids {
        assert!(!is_ours(*pid), "pid {pid} still runs after stop");
    }
    assert!(!c.dir.join("cluster.json").exists());
    let again = c.ok(&["stop"]);
    assert!(again.contains("nothing to stop"), "{again}");
    assert!(!c.run(&["status"]).status.success(), "status without a cluster is an error");
}

#[test]
fn start_cleans_up_a_stale_run_dir_without_touching_strangers() {
    let c = cluster("stale");
    std::fs::create_dir_all(&c.dir).expect("mkdir");
    // A pid that is gone, and a live process that is not a ryx-node.
    let mut done = Command::new("true").spawn().expect("spawn true");
    let gone = done.id();
    done.wait().expect("wait");
    let mut stranger = Command::new("sleep").arg("30").spawn().expect("spawn sleep");
    let (discovery, p0, p1) = (free_port(), free_port(), free_port());
    let state = serde_json::json!({
        "version": 1,
        "cluster_id": "dev-stale",
        "discovery_port": discovery,
        "node_bin": node_bin(),
        "node_args": [],
        "created_unix_ms": 0,
        "nodes": [
            {"index": 0, "pid": gone, "udp_port": p0, "http_port": p0, "node_id": null,
             "log": c.dir.join("node-0.log"), "started_unix_ms": 0, "fate": "running"},
            {"index": 1, "pid": stranger.id(), "udp_port": p1, "http_port": p1, "node_id": null,
             "log": c.dir.join("node-1.log"), "started_unix_ms": 0, "fate": "running"},
        ]
    });
    std::fs::write(c.dir.join("cluster.json"), state.to_string()).expect("write state");
    std::fs::write(c.dir.join("node-7.log"), "old run").expect("write log");

    let s = c.status();
    assert_eq!(s.alive, 0, "neither pid is a node of this cluster: {s:#?}");

    let out = start(&c, 3);
    assert!(out.contains("stale"), "start says it cleaned up: {out}");
    assert!(!c.dir.join("node-7.log").exists(), "old logs removed");
    assert!(stranger.try_wait().expect("try_wait").is_none(), "the stranger was not signalled");
    let s = c.status();
    assert_eq!(s.alive, 3, "{s:#?}");
    assert_ne!(s.cluster_id, "dev-stale");

    let pids = c.pids();
    c.ok(&["stop"]);
    assert!(pids.iter().all(|p| !is_ours(*p)));
    assert!(stranger.try_wait().expect("try_wait").is_none(), "stop did not signal the stranger either");
    let _ = stranger.kill();
    let _ = stranger.wait();
}

#[test]
fn pause_stops_and_resumes_nodes() {
    let c = cluster("pause");
    start(&c, 4);
    let chaos = c
        .command(&["chaos", "--pause", "1", "--for", "3s", "--seed", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("chaos");
    let s = c.wait_status(Duration::from_secs(10), "a paused node", |s| s.paused == 1);
    assert_eq!(s.alive, 4, "a paused node is alive: {s:#?}");
    let out = chaos.wait_with_output().expect("chaos ends");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SIGSTOP") && text.contains("SIGCONT"), "{text}");
    c.wait_status(Duration::from_secs(20), "all 4 running and healthy", |s| s.paused == 0 && healthy(s, 4));
}

#[test]
fn measure_reports_figures_and_leaves_nothing_running() {
    let base = free_port().to_string();
    let (out, pid) = run_to_end(
        "measure",
        &["measure", "--nodes", "5", "--kill", "1", "--idle-secs", "1", "--json", "--base-port", &base],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "measure failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let m: Measurement = serde_json::from_str(&stdout).expect("measure --json reads as a Measurement");
    assert_eq!((m.nodes, m.killed), (5, 1));
    for (key, v) in
        [("connect_s", m.connect_s), ("info_full_s", m.info_full_s), ("detect_s", m.detect_s), ("heal_s", m.heal_s)]
    {
        assert!(v.is_some_and(|v| v > 0.0), "{key} missing: {m:#?}");
    }
    assert!(m.rss_kib.is_some_and(|r| r.mean > 0.0), "{m:#?}");
    assert!(m.idle_cpu_percent.is_some(), "{m:#?}");
    assert_eq!(m.item_held_by_survivors, Some(4));
    assert!(nodes_of_run("measure", pid).is_empty(), "measure left nodes running");
}

#[test]
fn demo_tells_the_story_and_cleans_up() {
    let base = free_port().to_string();
    let (out, pid) =
        run_to_end("demo", &["demo", "--nodes", "5", "--seed", "1", "--size", "12MiB", "--base-port", &base]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "[1/6]",
        "Connected after",
        "Dashboard: http://127.0.0.1:",
        "chaos!",
        "SIGKILL node",
        "killed 2 of 5 live nodes",
        "word-count    cluster",
        "log-analysis  cluster",
        "Both results are byte-identical",
        "top words:",
        "templates (most frequent first):",
        "[6/6] Stop",
    ] {
        assert!(stdout.contains(needle), "demo output lacks {needle:?}:\n{stdout}");
    }
    assert!(!stdout.contains("DIFFERENT"), "{stdout}");
    assert_eq!(stdout.matches("…  identical").count(), 2, "both digests match exec: {stdout}");
    assert!(nodes_of_run("demo", pid).is_empty(), "demo left nodes running");
}

#[test]
fn bad_input_is_reported_not_panicked_on() {
    let c = cluster("bad");
    let out = c.run(&["chaos", "--kill", "lots"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("percentage"));
    let out = c.run(&["status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no cluster"));
    let out = c.run(&["start", "--nodes", "2", "--base-port", &free_port().to_string(), "--", "--port", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("managed by ryx-cluster"));
    assert!(c.pids().is_empty(), "nothing was started");
    let out = c.run(&["start", "--nodes", "2", "--node-bin", "/nonexistent/ryx-node"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}
