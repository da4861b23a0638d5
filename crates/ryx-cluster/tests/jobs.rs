//! End-to-end tests of jobs and timed faults through the real binaries:
//! `ryx-cluster inject`, `chaos ... --during-job`, partitions, the healer
//! that undoes faults when `chaos` is gone, and `bench`. Base ports come
//! from the OS.

use ryx_api::{Client, FaultState, JobView, WordCountResult};
use ryx_cluster::measure::bench::BenchReport;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{is_ours, node_bin, TestCluster, CLUSTER_BIN};
use ryx_testkit::free_port;

/// A run dir of this file's tests.
fn cluster(name: &str) -> TestCluster {
    TestCluster::new("jobtest", name)
}

/// Whether `pid` is stopped (SIGSTOP).
fn stopped(pid: u32) -> bool {
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    state.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('T'))
}

/// The network faults in force at the node whose API is on loopback `port`.
fn faults_at(port: u16) -> FaultState {
    Client::new(([127, 0, 0, 1], port).into()).faults().unwrap_or_else(|e| panic!("faults of node {port}: {e}"))
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
    let c = cluster("inject");
    let base = free_port().to_string();
    let out = c.ok(&["start", "--nodes", "5", "--base-port", &base, "--", "--chunk-size", "256KiB"]);
    assert!(out.contains("connected"), "{out}");

    // inject a file: the result is right by an independent count, and its
    // digest is the single-process reference's.
    let input = c.dir.join("words.txt");
    let words = write_words(&input);
    let out = c.run(&["inject", "word-count", "--input", input.to_str().expect("utf8"), "--json", "--redundancy", "2"]);
    assert!(out.status.success(), "inject failed: {}", String::from_utf8_lossy(&out.stderr));
    let job: JobView = serde_json::from_slice(&out.stdout).expect("inject --json reads as a JobView");
    assert_eq!(job.state, ryx_api::JobState::Done, "{job:#?}");
    let result: WordCountResult = job.result_as().expect("a word count").expect("a result");
    assert_eq!(result.total_words, words, "{job:#?}");
    let units = job.progress.units_total;
    assert!(units >= 4, "256 KiB units: {job:#?}");
    assert_eq!(job.progress.units_done, units);
    assert_eq!(job.result_digest.as_deref(), Some(exec_digest("word-count", &input, &[], "262144").as_str()));

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
    assert_eq!(s.alive, 3, "{s:#?}");

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
    assert_eq!(f.faults.len(), 1, "{f:#?}");
    assert!(f.faults[0].healed_unix_ms.is_some(), "partition healed: {f:#?}");
    let log = std::fs::read_to_string(c.dir.join("chaos.log")).expect("chaos.log");
    assert!(log.contains("inject #1 Partition") && log.contains("heal #1"), "{log}");
    let alive_ports: Vec<u16> = c.status().nodes.iter().filter(|n| n.alive).map(|n| n.http_port).collect();
    assert_eq!(alive_ports.len(), 3);
    for p in alive_ports {
        let v = faults_at(p);
        assert!(!v.active, "node {p} still has faults: {v:#?}");
    }

    // stop: nothing of ours left.
    let pids = c.pids();
    let healer = c.faults().healer_pid;
    c.ok(&["stop"]);
    for pid in pids.iter().copied().chain(healer) {
        assert!(!is_ours(pid), "pid {pid} still runs after stop");
    }
}

#[test]
fn timed_faults_are_undone_at_the_deadline_even_when_chaos_is_gone() {
    let c = cluster("healer");
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
    let s = c.wait_status(Duration::from_secs(30), "all 4 alive and unpaused", |s| s.paused == 0);
    assert_eq!(s.alive, 4, "{s:#?}");
    let log = std::fs::read_to_string(c.dir.join("chaos.log")).expect("chaos.log");
    assert!(log.contains("SIGSTOP node") && log.contains("SIGCONT node"), "{log}");

    // loss with --detach: the nodes carry the expiry themselves.
    let out = c.ok(&["chaos", "--loss", "30%", "--for", "4s", "--detach", "--seed", "1"]);
    // Every node's 4 s began before chaos returned.
    let set_by = Instant::now();
    assert!(out.contains("lose 30.0%"), "{out}");
    let v = faults_at(ports[0]);
    assert!(v.active, "{v:#?}");
    assert!((v.loss - 0.3).abs() < 1e-9, "{v:#?}");
    let remaining = v.remaining_ms.expect("the node carries the deadline");
    assert!(remaining > 0 && remaining <= 4000, "{v:#?}");
    // Each node lifts the fault itself at its deadline, 4 s after chaos
    // returned at the latest; 1.5 s of margin for polling a loaded machine.
    let lifted_by = set_by + Duration::from_millis(5500);
    let lifted = ryx_testkit::wait_until(lifted_by.saturating_duration_since(Instant::now()), || {
        ports.iter().all(|&p| !faults_at(p).active)
    });
    if lifted.is_none() {
        let still: Vec<u16> = ports.iter().copied().filter(|&p| faults_at(p).active).collect();
        panic!("nodes {still:?} still lose datagrams {:?} after a 4 s fault was set", set_by.elapsed());
    }
    let start = Instant::now();
    loop {
        let f = c.faults();
        if f.faults.iter().all(|r| r.healed_unix_ms.is_some()) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the healer did not mark the records healed: {f:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A long partition and a delay, undone at once by --heal.
    c.ok(&["chaos", "--partition", "50%", "--for", "10m", "--detach", "--seed", "3"]);
    c.ok(&["chaos", "--delay", "40", "--jitter", "10", "--for", "10m", "--nodes", "2", "--detach", "--seed", "4"]);
    let blocked: usize = ports.iter().map(|&p| faults_at(p).block.len()).sum();
    assert_eq!(blocked, 8, "2+2 split: every node blocks the 2 on the other side");
    let delayed = ports.iter().filter(|&&p| faults_at(p).delay_ms == 40).count();
    assert_eq!(delayed, 2, "--nodes 2 gets the delay, on top of the partition");
    let s = c.status();
    assert_eq!(s.faults_in_force.len(), 2, "{s:#?}");
    assert!(c.ok(&["status"]).contains("in force until"));
    let healer = c.faults().healer_pid.expect("a healer waits for the deadline");
    assert!(is_ours(healer), "healer {healer} runs");
    let out = c.ok(&["chaos", "--heal"]);
    assert!(out.contains("2 timed faults undone"), "{out}");
    for &p in &ports {
        assert!(!faults_at(p).active, "node {p}");
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
            // Large enough that a job outlasts a few 200 ms progress
            // summaries: at 16 MiB a 2-node run once finished in 0.26 s,
            // before its 10% could be seen, and nothing was killed.
            "--size",
            "64MiB",
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
    let v: BenchReport = serde_json::from_str(&stdout).expect("bench --json reads as a BenchReport");
    let rows = &v.rows;
    assert_eq!(rows.len(), 5, "exec + 2 sizes x (no kill, kill): {v:#?}");
    assert!(rows[0].system.starts_with("exec"));
    let ryx: Vec<_> = rows.iter().filter(|r| r.system == "ryx").collect();
    assert_eq!(ryx.iter().map(|r| r.nodes).collect::<Vec<_>>(), vec![2, 2, 4, 4]);
    assert_eq!(ryx.iter().map(|r| r.killed).collect::<Vec<_>>(), vec![0, 1, 0, 2]);
    for r in &ryx {
        assert_eq!(r.digest_ok, Some(true), "{r:#?}");
        assert!(r.wall_s > 0.0 && r.mb_per_s > 0.0, "{r:#?}");
        assert!(r.peak_rss_max_mib.is_some_and(|m| m > 1.0), "{r:#?}");
        assert!(r.msgs_per_node.is_some(), "{r:#?}");
    }
    let csv = std::fs::read_to_string(&v.csv).expect("csv");
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(csv.starts_with("system,nodes,killed,wall_s,mb_per_s"));
    let svg = std::fs::read_to_string(&v.svg).expect("svg");
    assert!(svg.starts_with("<svg") && svg.matches("<circle").count() == 4, "{svg}");
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// `n` documents as JSON lines, ids `{key: prefix + i}`, texts of 2 to
/// `spread` + 1 words of a small vocabulary drawn from `seed`.
fn corpus(seed: u64, n: usize, spread: usize, key: &str, prefix: &str) -> String {
    let words = ["gossip", "node", "failure", "the", "index", "search", "disk", "retry"];
    let mut x = seed;
    let mut text = String::new();
    for i in 0..n {
        let mut t = Vec::new();
        for _ in 0..(2 + i % spread) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            t.push(words[(x >> 61) as usize]);
        }
        let mut doc = serde_json::Map::new();
        doc.insert(key.into(), format!("{prefix}{i}").into());
        doc.insert("text".into(), t.join(" ").into());
        text.push_str(&serde_json::Value::Object(doc).to_string());
        text.push('\n');
    }
    text
}

/// `bench --job search`: queries per second and latency on a small cluster
/// next to one index in one process, every answer the one index's.
#[test]
fn bench_search_measures_queries_next_to_one_index() {
    let dir = std::env::temp_dir().join(format!("ryx-cluster-bench-search-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let text = corpus(7, 400, 9, "id", "d");
    let docs = dir.join("docs.jsonl");
    let queries = dir.join("queries.txt");
    std::fs::write(&docs, text).expect("docs");
    std::fs::write(&queries, "gossip failure\nindex search disk\nnode\nretry the node\n").expect("queries");
    let out = Command::new(CLUSTER_BIN)
        .args(["bench", "--job", "search", "--nodes", "2", "--clients", "3", "--input"])
        .arg(&docs)
        .arg("--queries")
        .arg(&queries)
        .args(["--base-port", &free_port().to_string(), "--", "--chunk-size", "4KiB"])
        .env("RYX_NODE_BIN", node_bin())
        .stdin(Stdio::null())
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("4 of 4 answers are the one index's").count(), 2, "{stdout}");
    assert!(stdout.contains("one index (exec --threads 2): 400 documents"), "{stdout}");
    for row in ["ryx (terms new)", "ryx (terms known)", "one index, 2 threads"] {
        assert!(stdout.lines().any(|l| l.starts_with(row)), "no {row} row: {stdout}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bytes each node's API says it follows of its sources.
fn source_bytes(ports: &[u16]) -> Vec<u64> {
    ports
        .iter()
        .map(|&p| {
            Client::new(([127, 0, 0, 1], p).into())
                .sources()
                .map_or(0, |s| s.sources.iter().map(|v| v.bytes).sum::<u64>())
        })
        .collect()
}

#[test]
fn live_logs_grow_on_every_node_and_jobs_over_them_run_where_they_lie() {
    let c = cluster("logs");
    let out = c.ok(&[
        "start",
        "--nodes",
        "3",
        "--logs",
        "300/s",
        "--logs-for",
        "5m",
        "--base-port",
        &free_port().to_string(),
    ]);
    assert!(out.contains("Live logs: 300 lines/s per node"), "{out}");
    let state = c.state().expect("state");
    assert_eq!(state.dataset.as_deref(), Some("app"));
    let writer = state.logs.as_ref().and_then(|l| l.pid).expect("the writer's pid is recorded");
    assert!(is_ours(writer), "writer {writer} runs");
    let ports = c.http_ports();

    // Every node follows its own growing file.
    let t0 = Instant::now();
    let first = loop {
        let b = source_bytes(&ports);
        if b.iter().all(|&x| x > 0) {
            break b;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "not every node follows its log: {b:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let grown = loop {
        let b = source_bytes(&ports);
        if b.iter().zip(&first).all(|(now, then)| now > then) {
            break b;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "logs do not grow: {first:?} then {b:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let line = std::fs::read_to_string(c.dir.join("data/node-1/app.log")).expect("node 1's log");
    let last = line.lines().last().expect("a line");
    assert!(last.len() > 30 && last.as_bytes()[4] == b'-' && last.as_bytes()[10] == b' ', "a log line: {last:?}");

    // A job over the dataset, sent to node 2, covers all three nodes.
    let out = c.ok(&["inject", "word-count", "--dataset", "app", "--to", "2", "--json"]);
    let job: JobView = serde_json::from_str(&out).expect("job JSON");
    assert_eq!(job.state, ryx_api::JobState::Done, "{job:?}");
    let d = job.dataset.clone().expect("the job names its snapshot");
    assert_eq!((d.name.as_str(), d.nodes), ("app", 3));
    assert!(d.bytes >= grown.iter().sum::<u64>() - 3 * 4096, "snapshot {} bytes, nodes had {grown:?}", d.bytes);
    let wc = job.result_as::<WordCountResult>().expect("result").expect("a word count");
    assert!(wc.total_words > 0);
    let out = c.run(&["inject", "word-count", "--dataset", "nothing"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown_dataset"), "{out:?}");

    // stop ends the writer too; the files stay.
    c.ok(&["stop"]);
    let t0 = Instant::now();
    while is_ours(writer) {
        assert!(t0.elapsed() < Duration::from_secs(10), "the writer outlives stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(c.dir.join("data/node-0/app.log").is_file());
}

#[test]
fn a_corpus_spread_with_docs_is_searched_from_any_node_as_one_index() {
    let c = cluster("docs");
    let file = c.dir.join("corpus.jsonl");
    let text = corpus(99, 600, 11, "_id", "doc-");
    std::fs::create_dir_all(&c.dir).expect("dir");
    std::fs::write(&file, &text).expect("corpus");
    let out = c.ok(&[
        "start",
        "--nodes",
        "3",
        "--docs",
        file.to_str().expect("utf-8 path"),
        "--split",
        "--base-port",
        &free_port().to_string(),
        "--",
        "--chunk-size",
        "8KiB",
    ]);
    assert!(out.contains("Dataset docs:"), "{out}");
    assert_eq!(c.state().and_then(|s| s.dataset).as_deref(), Some("docs"));
    let ports = c.http_ports();
    let client = Client::new(([127, 0, 0, 1], ports[1]).into());
    // Every node announces its part within a second or so.
    let t0 = Instant::now();
    let got = loop {
        match client.search("docs", "gossip failure", 20, None) {
            Ok(v) if v["dataset"]["nodes"] == 3 => break v,
            r => assert!(t0.elapsed() < Duration::from_secs(30), "not every node's part is searched: {r:?}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let exec = Command::new(node_bin())
        .args(["exec", "search", "--json", "--input"])
        .arg(&file)
        .args(["--param", "q=gossip failure", "--param", "k=20"])
        .output()
        .expect("exec search");
    assert!(exec.status.success(), "{exec:?}");
    let want: serde_json::Value = serde_json::from_slice(&exec.stdout).expect("JSON");
    assert_eq!(got["hits"], want["hits"], "ranked as one index");
    assert_eq!((got["docs"].clone(), got["matched"].clone()), (want["docs"].clone(), want["matched"].clone()));
    c.ok(&["stop"]);
}
