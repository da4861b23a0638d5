//! `ryx-cluster start --netns` end to end, through the real binaries: every
//! node in a network namespace of its own with an address of 10.78.6x.0/24
//! (the `ryx-node` netns tests use 10.77, the default is 10.78.0), the
//! usual commands against it (status, logs, inject, chaos), and `stop`
//! leaving no namespace, link or address behind.
//!
//! Needs Linux, root and iproute2; skips with a message otherwise (as
//! non-root it checks that `start --netns` refuses with a clear reason).
//! Every test uses its own subnet and run dir, and a guard removes its
//! processes, namespaces and link even when the test fails. Figures are
//! printed; run with `--nocapture` to see them:
//!
//!   cargo test --release -p ryx-cluster --test netns -- --nocapture --test-threads 1

use ryx_api::JobView;
use ryx_cluster::inspect::StatusReport;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod common;

use common::{node_bin, TestCluster};

/// Runs a command; its output, or `None` if it cannot be run.
fn output(prog: &str, args: &[&str]) -> Option<Output> {
    Command::new(prog).args(args).stdin(Stdio::null()).output().ok()
}

/// stdout of a command that must succeed.
fn sh(prog: &str, args: &[&str]) -> String {
    let out = output(prog, args).unwrap_or_else(|| panic!("cannot run {prog}"));
    assert!(out.status.success(), "{prog} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// Why namespace clusters cannot be tested here, if they cannot.
fn skip_reason() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("network namespaces need Linux".into());
    }
    if !is_root() {
        return Some("network namespaces need root".into());
    }
    if !output("ip", &["-V"]).is_some_and(|o| o.status.success()) {
        return Some("`ip` is not installed (apt-get install iproute2)".into());
    }
    // Tests run in parallel in one process: a probe name of their own.
    static PROBES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let k = PROBES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let probe = format!("rxcprobe{}-{k}", std::process::id());
    let ok = output("ip", &["netns", "add", &probe]).is_some_and(|o| o.status.success());
    let _ = output("ip", &["netns", "del", &probe]);
    if !ok {
        return Some("cannot create network namespaces here".into());
    }
    None
}

/// Skips the test (after checking that a non-root start is refused
/// clearly) when namespaces cannot be used.
macro_rules! skip_unless_able {
    () => {
        if let Some(why) = skip_reason() {
            if !is_root() {
                let c = NetCluster::new("nonroot");
                let out = c.run(&["start", "--netns", "-n", "2"]);
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(!out.status.success() && err.contains("root"), "a non-root --netns start must say why: {err}");
            }
            ryx_testkit::skip("a namespace cluster test", ryx_testkit::Needs::Netns, &why);
            return;
        }
    };
}

/// Names of namespaces that exist now.
fn namespaces() -> Vec<String> {
    sh("ip", &["netns", "list"]).lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect()
}

/// Whether `name` is one of the namespaces of the cluster with `prefix`.
fn owned(name: &str, prefix: &str) -> bool {
    name == format!("{prefix}-br")
        || name
            .strip_prefix(&format!("{prefix}-n"))
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

fn link_exists(name: &str) -> bool {
    output("ip", &["link", "show", "dev", name]).is_some_and(|o| o.status.success())
}

/// A run dir and its namespace cluster; stops it when dropped and then
/// removes whatever of its namespaces and link would be left.
struct NetCluster {
    c: TestCluster,
    prefix: Mutex<Option<String>>,
}

impl std::ops::Deref for NetCluster {
    type Target = TestCluster;
    fn deref(&self) -> &TestCluster {
        &self.c
    }
}

impl NetCluster {
    fn new(name: &str) -> NetCluster {
        NetCluster { c: TestCluster::new("netns", name), prefix: Mutex::new(None) }
    }

    /// The cluster's name prefix, from the state.
    fn state_prefix(&self) -> Option<String> {
        self.state().and_then(|s| s.netns).map(|l| l.prefix)
    }

    /// Remembers the cluster's name prefix (from the state) for cleanup.
    fn learn_prefix(&self) -> String {
        let p = self.state_prefix().expect("the state records the netns prefix");
        *self.prefix.lock().unwrap_or_else(|e| e.into_inner()) = Some(p.clone());
        p
    }

    /// Polls `status --json` until `f` holds; the time it took.
    fn wait_took(&self, timeout: Duration, what: &str, f: impl Fn(&StatusReport) -> bool) -> Duration {
        let start = Instant::now();
        self.wait_status(timeout, what, f);
        start.elapsed()
    }
}

impl Drop for NetCluster {
    fn drop(&mut self) {
        let prefix = self.prefix.lock().unwrap_or_else(|e| e.into_inner()).clone().or_else(|| self.state_prefix());
        // Stop the nodes (the run dir goes when `c` is dropped, after this).
        let _ = self.run(&["stop"]);
        if let Some(p) = prefix.filter(|_| is_root()) {
            let _ = output("ip", &["link", "del", &format!("{p}h")]);
            for ns in namespaces().into_iter().filter(|n| owned(n, &p)) {
                let _ = output("ip", &["netns", "del", &ns]);
            }
        }
    }
}

/// A deterministic text file of about 3 MiB.
fn write_words(path: &Path) {
    let mut text = String::new();
    let mut x: u64 = 4242;
    for line in 0..120_000 {
        for w in 0..(3 + line % 7) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let word = ["alpha", "beta", "gamma", "delta", "ERROR", "warn", "node-7", "x"][(x >> 61) as usize];
            if w > 0 {
                text.push(' ');
            }
            text.push_str(word);
            text.push_str(&((x >> 40) % 300).to_string());
        }
        text.push('\n');
    }
    std::fs::write(path, text).expect("write input");
}

/// `ryx-node exec word-count`'s digest of `file` with `chunk`-byte units.
fn exec_digest(file: &Path, chunk: &str) -> String {
    let out = Command::new(node_bin())
        .args(["exec", "word-count", "--input"])
        .arg(file)
        .args(["--chunk-size", chunk])
        .output()
        .expect("run ryx-node exec");
    assert!(out.status.success(), "exec failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|l| l.strip_prefix("result_digest: ")).expect("exec prints result_digest").trim().to_string()
}

/// Every node of the status alive, answering and linked into one graph.
fn one_network(s: &StatusReport, n: usize) -> bool {
    s.alive == n && s.answered == n && s.connected && s.dead_links == 0
}

/// Whether the links both ends list join every node of the status into one
/// graph (a link only one end lists yet, e.g. a join in flight, does not count).
fn mutually_connected(s: &StatusReport) -> bool {
    let ids: Vec<_> = s.nodes.iter().filter_map(|n| n.node_id.clone()).collect();
    let lists: Vec<Vec<_>> = s.nodes.iter().map(|n| n.neighbor_ids.clone().unwrap_or_default()).collect();
    if ids.len() != s.nodes.len() || ids.is_empty() {
        return false;
    }
    let mutual = |a: usize, b: usize| lists[a].contains(&ids[b]) && lists[b].contains(&ids[a]);
    let mut seen = vec![false; ids.len()];
    let mut stack = vec![0];
    seen[0] = true;
    while let Some(a) = stack.pop() {
        let next: Vec<usize> = (0..ids.len()).filter(|&b| !seen[b] && mutual(a, b)).collect();
        for b in next {
            seen[b] = true;
            stack.push(b);
        }
    }
    seen.iter().all(|&x| x)
}

/// Checks nothing of the cluster with `prefix` and `subnet` (`a.b.c.`) is left.
fn assert_gone(prefix: &str, subnet: &str) {
    let left: Vec<String> = namespaces().into_iter().filter(|n| n.starts_with(prefix)).collect();
    assert!(left.is_empty(), "namespaces left after stop: {left:?}");
    assert!(!link_exists(&format!("{prefix}h")), "link {prefix}h left after stop");
    let addrs = sh("ip", &["-4", "-o", "addr", "show"]);
    assert!(!addrs.contains(subnet), "an address of {subnet}0/24 is left:\n{addrs}");
    let routes = sh("ip", &["-4", "route", "show", "table", "all"]);
    assert!(!routes.contains(subnet), "a route to {subnet}0/24 is left:\n{routes}");
}

#[test]
fn netns_cluster_forms_computes_partitions_heals_and_stops_clean() {
    skip_unless_able!();
    let c = NetCluster::new("life");
    let t0 = Instant::now();
    let out = c.ok(&[
        "start",
        "--netns",
        "-n",
        "5",
        "--subnet",
        "10.78.61.0/24",
        "--",
        "--chunk-size",
        "512KiB",
        "--workers",
        "1",
    ]);
    let prefix = c.learn_prefix();
    let connected_line = out.lines().find(|l| l.starts_with("Cluster connected")).unwrap_or("").to_string();
    assert!(!connected_line.is_empty(), "start reports the connection: {out}");
    assert!(out.contains("route check: 10.78.61.1 dev"), "{out}");
    println!("netns cluster: start took {:?}; {connected_line}", t0.elapsed());

    // The machine's one address on the subnet is its own veth, and the route
    // to the nodes is that veth (nothing leaves by eth0).
    let host_link = format!("{prefix}h");
    let route = sh("ip", &["-4", "route", "get", "10.78.61.3"]);
    assert!(route.contains(&format!("dev {host_link}")) && !route.contains(" via "), "{route}");
    let addrs = sh("ip", &["-4", "-o", "addr", "show"]);
    assert_eq!(addrs.matches("inet 10.78.61.").count(), 1, "one address of the subnet on this machine:\n{addrs}");
    assert!(addrs.contains("10.78.61.254/24") && addrs.contains(&host_link), "{addrs}");
    for i in 0..5 {
        let r = sh("ip", &["-n", &format!("{prefix}-n{i}"), "-4", "route", "show", "table", "all"]);
        assert!(!r.contains("default"), "node namespace {i} must have no default route:\n{r}");
    }

    // status: 5 connected nodes on their own addresses.
    let s = c.status();
    assert_eq!(s.total, 5, "{s:#?}");
    assert!(one_network(&s, 5) && mutually_connected(&s), "{s:#?}");
    for (i, n) in s.nodes.iter().enumerate() {
        assert_eq!(n.host.to_string(), format!("10.78.61.{}", i + 1), "{n:#?}");
        assert_eq!(n.addr.to_string(), format!("10.78.61.{}:9001", i + 1), "{n:#?}");
        assert_eq!(n.netns, Some(format!("{prefix}-n{i}")), "{n:#?}");
        assert!(n.neighbors >= Some(3), "{n:#?}");
    }
    let table = c.ok(&["status"]);
    assert!(table.contains("10.78.61.5:9001") && table.contains("connected: yes"), "{table}");
    let log = c.ok(&["logs", "--node", "0", "--lines", "50"]);
    assert!(log.contains("10.78.61.1:9001"), "the node bound its namespace address: {log}");

    // A word-count job through `inject`, against `ryx-node exec`.
    let input = c.dir.join("words.txt");
    write_words(&input);
    let t = Instant::now();
    let out = c.run(&["inject", "word-count", "--input", input.to_str().expect("utf8"), "--json", "--to", "2"]);
    assert!(out.status.success(), "inject failed: {}", String::from_utf8_lossy(&out.stderr));
    let took = t.elapsed();
    let job: JobView = serde_json::from_slice(&out.stdout).expect("inject --json reads as a JobView");
    assert_eq!(job.state, ryx_api::JobState::Done, "{job:#?}");
    let digest = job.result_digest.clone().expect("digest");
    assert_eq!(digest, exec_digest(&input, "524288"), "the cluster's digest equals `ryx-node exec`");
    println!(
        "netns cluster: word-count of {} KiB in {} units done in {took:?} (upload included), digest {digest} equals exec",
        std::fs::metadata(&input).map(|m| m.len() / 1024).unwrap_or(0),
        job.progress.units_total
    );

    // A timed partition: 40% of the links move to the second bridge; the
    // halves split, and re-merge into one network after the heal.
    let chaos = c
        .command(&["chaos", "--partition", "40%", "--for", "4s", "--seed", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chaos");
    let t_part = Instant::now();
    // Both sides still answer this machine (its veth sits on a hub that
    // reaches both bridges) while they cannot reach each other.
    let split = c.wait_took(Duration::from_secs(4), "the halves to split", |s| !s.connected && s.answered == 5);
    let far = sh("ip", &["-n", &format!("{prefix}-br"), "-o", "link", "show", "master", "br1"]);
    assert_eq!(far.lines().filter(|l| l.contains(": vh")).count(), 2, "two links on br1:\n{far}");
    let out = chaos.wait_with_output().expect("chaos finishes");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "chaos failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    let healed_at = Instant::now();
    assert!(text.contains("moved to bridge br1") && text.contains("back on bridge br0"), "{text}");
    let far = sh("ip", &["-n", &format!("{prefix}-br"), "-o", "link", "show", "master", "br1"]);
    assert!(!far.contains(": vh"), "every link back on br0 after the heal:\n{far}");
    let since_heal = healed_at.elapsed();
    let merged = c.wait_took(Duration::from_secs(60), "one network after the heal", |s| {
        one_network(s, 5) && mutually_connected(s)
    }) + since_heal;
    let since_heal = healed_at.elapsed();
    let full = c.wait_took(Duration::from_secs(60), "every node at >= 4 neighbours", |s| {
        one_network(s, 5) && mutually_connected(s) && s.healthy
    }) + since_heal;
    println!(
        "netns cluster: partition 2|3 by bridges: split seen after {split:?}, healed at {:?}; \
         one network again (mutual links) {merged:?} after the heal, every node at >= 4 neighbours {full:?} after the heal",
        healed_at - t_part
    );
    let f = c.faults();
    assert!(f.faults.first().is_some_and(|r| r.healed_unix_ms.is_some()), "{f:#?}");

    // stop removes everything; a second stop is harmless.
    let t = Instant::now();
    let stop = c.ok(&["stop"]);
    assert!(stop.contains("removed 6 network namespaces"), "{stop}");
    println!("netns cluster: stop took {:?}: {}", t.elapsed(), stop.trim());
    assert_gone(&prefix, "10.78.61.");
    assert!(c.ok(&["stop"]).contains("nothing to stop"));
}

#[test]
fn netns_broadcast_discovery_loss_delay_and_a_failed_start_cleans_up() {
    skip_unless_able!();
    let c = NetCluster::new("bcast");
    let out = c.ok(&["start", "--netns", "-n", "4", "--subnet", "10.78.62.0/24", "--discovery", "broadcast"]);
    let prefix = c.learn_prefix();
    assert!(out.contains("broadcast on 10.78.62.255:9000"), "{out}");
    let s = c.status();
    assert!(one_network(&s, 4), "{s:#?}");
    println!("netns broadcast: {}", out.lines().find(|l| l.starts_with("Cluster connected")).unwrap_or("?"));

    // Loss in the node namespaces: tc netem, else iptables.
    let out = c.ok(&["chaos", "--loss", "20%", "--for", "30s", "--detach"]);
    let ns0 = format!("{prefix}-n0");
    let netem = out.contains("by tc netem");
    if netem {
        let q = sh("tc", &["-n", &ns0, "qdisc", "show", "dev", "eth0"]);
        assert!(q.contains("netem") && q.contains("loss 20%"), "{q}");
    } else {
        assert!(out.contains("by iptables statistic"), "{out}");
        let rules = sh("ip", &["netns", "exec", &ns0, "iptables", "-S", "OUTPUT"]);
        assert!(rules.contains("statistic") && rules.contains("DROP"), "{rules}");
    }
    println!("netns broadcast: loss 20% by {}", if netem { "tc netem" } else { "iptables statistic (no sch_netem)" });
    let out = c.ok(&["chaos", "--heal"]);
    assert!(out.contains("1 timed faults undone"), "{out}");
    if netem {
        assert!(!sh("tc", &["-n", &ns0, "qdisc", "show", "dev", "eth0"]).contains("netem"));
    } else {
        assert!(!sh("ip", &["netns", "exec", &ns0, "iptables", "-S", "OUTPUT"]).contains("statistic"));
    }

    // Delay: netem, else the nodes' own fault injection.
    let out = c.ok(&["chaos", "--delay", "20", "--jitter", "10", "--for", "1s", "--nodes", "2", "--seed", "1"]);
    assert!(out.contains("by tc netem") || out.contains("by the nodes' own fault injection"), "{out}");
    assert!(out.contains("fault #2 undone (deadline)"), "{out}");
    let merged = c.wait_took(Duration::from_secs(30), "one network after loss and delay", |s| one_network(s, 4));
    println!("netns broadcast: one network {merged:?} after loss and delay ended");

    // A second cluster on the same subnet is refused before it touches anything.
    let other = NetCluster::new("clash");
    let out = other.run(&["start", "--netns", "-n", "2", "--subnet", "10.78.62.0/24"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stop = c.ok(&["stop"]);
    assert!(stop.contains("removed 5 network namespaces"), "{stop}");
    assert_gone(&prefix, "10.78.62.");

    // A start that fails half-way (the node binary exits at once) removes
    // everything it created.
    let bad = NetCluster::new("fail");
    let out = bad.run(&["start", "--netns", "-n", "3", "--subnet", "10.78.63.0/24", "--node-bin", "/bin/false"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("exited at start") && stderr.contains("removing"), "{stderr}");
    let bad_prefix = stdout
        .split_whitespace()
        .find_map(|w| w.strip_suffix("-n0..2"))
        .unwrap_or_else(|| panic!("start names its namespaces: {stdout}"))
        .to_string();
    *bad.prefix.lock().unwrap_or_else(|e| e.into_inner()) = Some(bad_prefix.clone());
    assert_gone(&bad_prefix, "10.78.63.");
    assert!(!bad.dir.join("cluster.json").exists());
    println!("netns: a failed start left nothing ({bad_prefix}*)");
}
