//! End-to-end tests of jobs and timed faults through the real binaries:
//! `ryx-cluster inject`, `chaos ... --during-job`, partitions, the healer
//! that undoes faults when `chaos` is gone, and `bench`. Base ports come
//! from the OS.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{node_bin, CLUSTER_BIN};
use ryx_testkit::free_port;

/// A run dir and its cluster; stops it (and kills leftovers) when dropped.
struct TestCluster {
    dir: PathBuf,
}

impl TestCluster {
    fn new(name: &str) -> TestCluster {
        let dir = std::env::temp_dir().join(format!("ryx-cluster-jobtest-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TestCluster { dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(CLUSTER_BIN);
        c.arg("--dir").arg(&self.dir).args(args).env("RYX_NODE_BIN", node_bin()).stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run ryx-cluster")
    }

    fn ok(&self, args: &[&str]) -> String {
        common::succeeded(args, self.run(args))
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status --json is JSON")
    }

    fn state(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.join("cluster.json")).unwrap_or_else(|_| "{}".into());
        serde_json::from_str(&text).expect("state is JSON")
    }

    fn pids(&self) -> Vec<u32> {
        self.state()["nodes"]
            .as_array()
            .map(|a| a.iter().filter_map(|n| n["pid"].as_u64()).map(|p| p as u32).collect())
            .unwrap_or_default()
    }

    fn http_ports(&self) -> Vec<u16> {
        self.state()["nodes"]
            .as_array()
            .map(|a| a.iter().filter_map(|n| n["http_port"].as_u64()).map(|p| p as u16).collect())
            .unwrap_or_default()
    }

    fn faults(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.join("faults.json")).unwrap_or_else(|_| "{}".into());
        serde_json::from_str(&text).expect("faults.json is JSON")
    }

    fn healer_pid(&self) -> Option<u32> {
        self.faults()["healer_pid"].as_u64().map(|p| p as u32)
    }

    fn wait_status(&self, timeout: Duration, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let s = self.status();
            if f(&s) {
                return s;
            }
            assert!(start.elapsed() < timeout, "timed out waiting for {what}; last status:\n{s:#}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let pids = self.pids();
        let healer = self.healer_pid();
        let _ = self.run(&["stop"]);
        for pid in pids.into_iter().chain(healer) {
            if is_ours(pid) {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `pid` is a live (non-zombie) ryx-node or ryx-cluster process.
fn is_ours(pid: u32) -> bool {
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = state.rsplit_once(')').map(|(_, r)| r.trim_start().starts_with('Z')).unwrap_or(true);
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = String::from_utf8_lossy(&cmd);
    !zombie && (cmd.contains("ryx-node") || cmd.contains("ryx-cluster"))
}

/// Whether `pid` is stopped (SIGSTOP).
fn stopped(pid: u32) -> bool {
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    state.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('T'))
}

/// GET on a node's loopback API, the body as JSON.
fn get_json(port: u16, path: &str) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path} on {port}: not JSON ({e}): {buf}"))
}

/// A deterministic text file with a known number of words.
fn write_words(path: &Path) -> u64 {
    let mut text = String::new();
    let mut words = 0u64;
    let mut x: u64 = 12345;
    for line in 0..40_000 {
        let n = 3 + line % 9;
        for w in 0..n {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let word = ["alpha", "beta", "gamma", "delta", "ERROR", "warn", "node-7", "x"][(x >> 61) as usize];
            if w > 0 {
                text.push(if x & 1 == 0 { ' ' } else { '\t' });
            }
            text.push_str(word);
            text.push_str(&((x >> 40) % 500).to_string());
            words += 1;
        }
        text.push('\n');
    }
    std::fs::write(path, text).expect("write input");
    words
}

/// `ryx-node exec KIND --input FILE`'s digest.
fn exec_digest(kind: &str, file: &Path, params: &[&str], chunk: &str) -> String {
    let mut c = Command::new(node_bin());
    c.args(["exec", kind, "--input"]).arg(file).args(["--chunk-size", chunk]);
    for p in params {
        c.args(["--param", p]);
    }
    let out = c.output().expect("run ryx-node exec");
    assert!(out.status.success(), "exec failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|l| l.strip_prefix("result_digest: ")).expect("exec prints result_digest").trim().to_string()
}

#[test]
fn inject_and_chaos_during_jobs_give_the_reference_result_and_stop_leaves_nothing() {
    let c = TestCluster::new("inject");
    let base = free_port().to_string();
    let out = c.ok(&["start", "--nodes", "5", "--base-port", &base, "--", "--chunk-size", "256KiB"]);
    assert!(out.contains("connected"), "{out}");

    // inject a file: the result is right by an independent count, and its
    // digest is the single-process reference's.
    let input = c.dir.join("words.txt");
    let words = write_words(&input);
    let out = c.run(&["inject", "word-count", "--input", input.to_str().expect("utf8"), "--json", "--redundancy", "2"]);
    assert!(out.status.success(), "inject failed: {}", String::from_utf8_lossy(&out.stderr));
    let job: Value = serde_json::from_slice(&out.stdout).expect("inject --json is JSON");
    assert_eq!(job["state"], "done", "{job:#}");
    assert_eq!(job["result"]["total_words"].as_u64(), Some(words), "{job:#}");
    let units = job["progress"]["units_total"].as_u64().expect("units");
    assert!(units >= 4, "256 KiB units: {job:#}");
    assert_eq!(job["progress"]["units_done"].as_u64(), Some(units));
    assert_eq!(job["result_digest"].as_str(), Some(exec_digest("word-count", &input, &[], "262144").as_str()));

    // The human form: progress on stderr, readable result and --verify.
    let out = c.run(&["inject", "grep", "--size", "2MiB", "--param", "pattern=ERROR", "--verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("units") && stderr.contains("MB/s"), "progress bar on stderr: {stderr}");
    assert!(stdout.contains("matching lines of") && stdout.contains("identical"), "{stdout}");

    // Kill 40% of the nodes while a log-analysis job runs.
    let out = c.ok(&[
        "chaos",
        "--kill",
        "40%",
        "--during-job",
        "--job",
        "log-analysis",
        "--size",
        "16MiB",
        "--after",
        "300ms",
        "--seed",
        "11",
    ]);
    assert!(out.contains("SIGKILL node") && out.contains("with 2 nodes killed"), "{out}");
    assert!(out.contains("templates") && out.contains("identical"), "{out}");
    let s = c.status();
    assert_eq!(s["alive"], 3, "{s:#}");

    // Partition the survivors while a word-count runs; the fault is undone
    // at its deadline and logged.
    let out = c.ok(&[
        "chaos",
        "--partition",
        "50%",
        "--for",
        "2s",
        "--during-job",
        "--job",
        "log-analysis",
        "--size",
        "16MiB",
        "--after",
        "300ms",
        "--seed",
        "5",
    ]);
    assert!(out.contains("fault #1: partition"), "{out}");
    assert!(out.contains("identical"), "{out}");
    let f = c.faults();
    let recs = f["faults"].as_array().expect("records");
    assert_eq!(recs.len(), 1, "{f:#}");
    assert!(recs[0]["healed_unix_ms"].as_u64().is_some(), "partition healed: {f:#}");
    let log = std::fs::read_to_string(c.dir.join("chaos.log")).expect("chaos.log");
    assert!(log.contains("inject #1 Partition") && log.contains("heal #1"), "{log}");
    let alive_ports: Vec<u16> = c.status()["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["alive"] == true)
        .filter_map(|n| n["http_port"].as_u64())
        .map(|p| p as u16)
        .collect();
    assert_eq!(alive_ports.len(), 3);
    for p in alive_ports {
        let v = get_json(p, "/v1/admin/faults");
        assert_eq!(v["active"], false, "node {p} still has faults: {v:#}");
    }

    // stop: nothing of ours left.
    let pids = c.pids();
    let healer = c.healer_pid();
    c.ok(&["stop"]);
    for pid in pids.iter().copied().chain(healer) {
        assert!(!is_ours(pid), "pid {pid} still runs after stop");
    }
}

#[test]
fn timed_faults_are_undone_at_the_deadline_even_when_chaos_is_gone() {
    let c = TestCluster::new("healer");
    c.ok(&["start", "--nodes", "4", "--base-port", &free_port().to_string()]);
    let ports = c.http_ports();

    // pause, then SIGKILL the chaos process: the healer resumes the node.
    let mut chaos = c
        .command(&["chaos", "--pause", "1", "--for", "4s", "--seed", "2"])
        .stdout(Stdio::null())
        .spawn()
        .expect("chaos");
    let pids = c.pids();
    let start = Instant::now();
    while !pids.iter().any(|&p| stopped(p)) {
        assert!(start.elapsed() < Duration::from_secs(4), "no node was paused");
        std::thread::sleep(Duration::from_millis(20));
    }
    chaos.kill().expect("kill chaos");
    let _ = chaos.wait();
    let start = Instant::now();
    while pids.iter().any(|&p| stopped(p)) {
        assert!(start.elapsed() < Duration::from_secs(30), "the healer did not resume the paused node");
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = c.wait_status(Duration::from_secs(30), "all 4 alive and unpaused", |s| s["paused"] == 0);
    assert_eq!(s["alive"], 4, "{s:#}");
    let log = std::fs::read_to_string(c.dir.join("chaos.log")).expect("chaos.log");
    assert!(log.contains("SIGSTOP node") && log.contains("SIGCONT node"), "{log}");

    // loss with --detach: the nodes carry the expiry themselves.
    let out = c.ok(&["chaos", "--loss", "30%", "--for", "4s", "--detach", "--seed", "1"]);
    // Every node's 4 s began before chaos returned.
    let set_by = Instant::now();
    assert!(out.contains("lose 30.0%"), "{out}");
    let v = get_json(ports[0], "/v1/admin/faults");
    assert_eq!(v["active"], true, "{v:#}");
    assert!((v["loss"].as_f64().expect("loss") - 0.3).abs() < 1e-9, "{v:#}");
    let remaining = v["remaining_ms"].as_u64().expect("the node carries the deadline");
    assert!(remaining > 0 && remaining <= 4000, "{v:#}");
    // Each node lifts the fault itself at its deadline, 4 s after chaos
    // returned at the latest; 1.5 s of margin for polling a loaded machine.
    let lifted_by = set_by + Duration::from_millis(5500);
    let lifted = ryx_testkit::wait_until(lifted_by.saturating_duration_since(Instant::now()), || {
        ports.iter().all(|&p| get_json(p, "/v1/admin/faults")["active"] == false)
    });
    if lifted.is_none() {
        let still: Vec<u16> =
            ports.iter().copied().filter(|&p| get_json(p, "/v1/admin/faults")["active"] != false).collect();
        panic!("nodes {still:?} still lose datagrams {:?} after a 4 s fault was set", set_by.elapsed());
    }
    let start = Instant::now();
    loop {
        let f = c.faults();
        if f["faults"].as_array().expect("records").iter().all(|r| r["healed_unix_ms"].is_u64()) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the healer did not mark the records healed: {f:#}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A long partition and a delay, undone at once by --heal.
    c.ok(&["chaos", "--partition", "50%", "--for", "10m", "--detach", "--seed", "3"]);
    c.ok(&["chaos", "--delay", "40", "--jitter", "10", "--for", "10m", "--nodes", "2", "--detach", "--seed", "4"]);
    let blocked: usize =
        ports.iter().map(|&p| get_json(p, "/v1/admin/faults")["block"].as_array().map_or(0, |a| a.len())).sum();
    assert_eq!(blocked, 8, "2+2 split: every node blocks the 2 on the other side");
    let delayed = ports.iter().filter(|&&p| get_json(p, "/v1/admin/faults")["delay_ms"] == 40).count();
    assert_eq!(delayed, 2, "--nodes 2 gets the delay, on top of the partition");
    let s = c.status();
    assert_eq!(s["faults_in_force"].as_array().map(|a| a.len()), Some(2), "{s:#}");
    assert!(c.ok(&["status"]).contains("in force until"));
    let healer = c.healer_pid().expect("a healer waits for the deadline");
    assert!(is_ours(healer), "healer {healer} runs");
    let out = c.ok(&["chaos", "--heal"]);
    assert!(out.contains("2 timed faults undone"), "{out}");
    for &p in &ports {
        assert_eq!(get_json(p, "/v1/admin/faults")["active"], false, "node {p}");
    }
    let start = Instant::now();
    while is_ours(healer) {
        assert!(start.elapsed() < Duration::from_secs(30), "the healer exits once nothing is pending");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Bad requests get a reason, not a panic.
    let out = c.run(&["inject", "grep", "--size", "1MiB"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pattern"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = c.run(&["inject", "sort", "--size", "1MiB"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).to_lowercase().contains("kind"));
    let out = c.run(&["inject", "word-count", "--to", "99"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no node 99"));
    let out = c.run(&["chaos", "--partition", "100%", "--for", "1s"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("both sides"));
    let out = c.run(&["chaos", "--loss", "150%", "--for", "1s"]);
    assert!(!out.status.success());
    let out = c.run(&["chaos", "--delay", "5"]);
    assert!(!out.status.success(), "a delay without --for is refused");

    let pids = c.pids();
    c.ok(&["stop"]);
    assert!(pids.iter().all(|&p| !is_ours(p)));
}

#[test]
fn bench_compares_sizes_and_kills_with_exec_and_writes_csv_and_svg() {
    let out_dir = std::env::temp_dir().join(format!("ryx-cluster-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let out = Command::new(CLUSTER_BIN)
        .args([
            "bench",
            "--nodes",
            "2,4",
            "--job",
            "log-analysis",
            "--size",
            "16MiB",
            "--kill",
            "50%",
            "--at",
            "10%",
            "--json",
        ])
        .args(["--base-port", &free_port().to_string(), "--out"])
        .arg(&out_dir)
        .args(["--", "--chunk-size", "128KiB"])
        .env("RYX_NODE_BIN", node_bin())
        .stdin(Stdio::null())
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(&stdout).expect("bench --json is JSON");
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 5, "exec + 2 sizes x (no kill, kill): {v:#}");
    assert!(rows[0]["system"].as_str().expect("system").starts_with("exec"));
    let ryx: Vec<&Value> = rows.iter().filter(|r| r["system"] == "ryx").collect();
    assert_eq!(ryx.iter().map(|r| r["nodes"].as_u64().expect("n")).collect::<Vec<_>>(), vec![2, 2, 4, 4]);
    assert_eq!(ryx.iter().map(|r| r["killed"].as_u64().expect("k")).collect::<Vec<_>>(), vec![0, 1, 0, 2]);
    for r in &ryx {
        assert_eq!(r["digest_ok"], true, "{r:#}");
        assert!(r["wall_s"].as_f64().is_some_and(|w| w > 0.0) && r["mb_per_s"].as_f64().is_some_and(|m| m > 0.0));
        assert!(r["peak_rss_max_mib"].as_f64().is_some_and(|m| m > 1.0), "{r:#}");
        assert!(r["msgs_per_node"].as_f64().is_some(), "{r:#}");
    }
    let csv = std::fs::read_to_string(v["csv"].as_str().expect("csv path")).expect("csv");
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(csv.starts_with("system,nodes,killed,wall_s,mb_per_s"));
    let svg = std::fs::read_to_string(v["svg"].as_str().expect("svg path")).expect("svg");
    assert!(svg.starts_with("<svg") && svg.matches("<circle").count() == 4, "{svg}");
    let _ = std::fs::remove_dir_all(&out_dir);
}
