//! Shared by the ryx-cluster integration tests: the binaries, a run dir
//! with its cluster (stopped when dropped), and what `ryx-cluster` writes
//! (its state, its fault log, `status --json`) read as the library's types.

#![allow(dead_code)]

use ryx_cluster::chaos::faults::{self, FaultLog};
use ryx_cluster::cluster::state::{ClusterState, RunDir};
use ryx_cluster::inspect::StatusReport;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The ryx-cluster binary under test.
pub const CLUSTER_BIN: &str = env!("CARGO_BIN_EXE_ryx-cluster");

/// The ryx-node binary cargo built for this test run (beside ryx-cluster
/// in `target/<profile>/`), or `RYX_NODE_BIN`: tests do not run cargo, so
/// `cargo test -p ryx-cluster` alone needs `cargo build -p ryx-node` first
/// (`cargo test --workspace` builds both). Passed to every ryx-cluster
/// run, which would otherwise build it itself.
pub fn node_bin() -> PathBuf {
    ryx_testkit::workspace_bin("ryx-node", "RYX_NODE_BIN", &["ryx-node", "ryx-core", "ryx-compute", "ryx-control"])
}

/// The stdout of a `ryx-cluster` run that must have succeeded; a failure
/// panics with both streams.
pub fn succeeded(args: &[&str], out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ryx-cluster {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A run dir and the cluster in it; stops the cluster (and kills whatever
/// of its nodes and healer is left) when dropped.
pub struct TestCluster {
    /// The run dir.
    pub dir: PathBuf,
}

impl TestCluster {
    /// A fresh run dir for the test `name` (`tag` tells the test files apart).
    pub fn new(tag: &str, name: &str) -> TestCluster {
        let dir = std::env::temp_dir().join(format!("ryx-cluster-{tag}-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TestCluster { dir }
    }

    /// `ryx-cluster --dir DIR args`, with the node binary of this build.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(CLUSTER_BIN);
        c.arg("--dir").arg(&self.dir).args(args).env("RYX_NODE_BIN", node_bin()).stdin(Stdio::null());
        c
    }

    /// Runs a command to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run ryx-cluster")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.run(args))
    }

    /// `status --json`.
    pub fn status(&self) -> StatusReport {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status --json reads as a StatusReport")
    }

    /// The state file, if there is one.
    pub fn state(&self) -> Option<ClusterState> {
        RunDir::at(self.dir.clone()).load().expect("the state file reads")
    }

    /// Pids recorded in the state file.
    pub fn pids(&self) -> Vec<u32> {
        self.state().map(|s| s.nodes.iter().map(|n| n.pid).collect()).unwrap_or_default()
    }

    /// API ports recorded in the state file.
    pub fn http_ports(&self) -> Vec<u16> {
        self.state().map(|s| s.nodes.iter().map(|n| n.http_port).collect()).unwrap_or_default()
    }

    /// The fault log (empty when there is none).
    pub fn faults(&self) -> FaultLog {
        faults::read(&RunDir::at(self.dir.clone())).expect("the fault log reads")
    }

    /// Polls `status --json` until `f` holds; panics with the last status
    /// after `timeout`. Returns that status.
    pub fn wait_status(&self, timeout: Duration, what: &str, f: impl Fn(&StatusReport) -> bool) -> StatusReport {
        let start = Instant::now();
        loop {
            let s = self.status();
            if f(&s) {
                return s;
            }
            assert!(start.elapsed() < timeout, "timed out waiting for {what}; last status:\n{s:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let pids = self.pids();
        let healer = self.faults().healer_pid;
        let _ = self.run(&["stop"]);
        // Belt and braces: anything of ours still running is killed.
        for pid in pids.into_iter().chain(healer) {
            if is_ours(pid) {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `pid` is a live (non-zombie) ryx-node or ryx-cluster process.
pub fn is_ours(pid: u32) -> bool {
    runs(pid, &["ryx-node", "ryx-cluster"])
}

/// Whether `pid` is a live (non-zombie) process whose command line names
/// one of `programs`.
pub fn runs(pid: u32, programs: &[&str]) -> bool {
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = state.rsplit_once(')').map(|(_, r)| r.trim_start().starts_with('Z')).unwrap_or(true);
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = String::from_utf8_lossy(&cmd);
    !zombie && programs.iter().any(|p| cmd.contains(p))
}

/// Every process of the cluster is alive, every running one answered, the
/// graph is connected and names no dead node.
pub fn healthy(s: &StatusReport, alive: usize) -> bool {
    s.alive == alive && s.connected && s.healthy && s.dead_links == 0
}
