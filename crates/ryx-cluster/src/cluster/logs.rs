//! Live logs for node-local datasets (`start --logs RATE`): a detached
//! writer appends the built-in generator's lines, stamped with the wall
//! clock, to every running node's own `DIR/data/node-I/app.log`, which the
//! node follows as dataset [`LOGS_DATASET`]. Each node's stream has its own
//! seed (its index), so nodes log different things.
//!
//! The writer is bounded: it ends at its deadline (`--logs-for`, at most a
//! day), when the cluster is stopped or gone, or when no node of it runs;
//! `stop` also ends it by its pid. A file that reaches the rotation size is
//! renamed `app.log.1` (replacing the one before, and leaving the dataset's
//! glob, as logrotate's copies do) and a new `app.log` begun, so disk use
//! is bounded too: two files per node.

use crate::cluster::data::node_dir;
use crate::cluster::procfs::{self, Liveness};
use crate::cluster::state::{unix_ms, RunDir};
use crate::cluster::Cluster;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// The dataset name live logs are followed as.
pub const LOGS_DATASET: &str = "app";
/// Subcommand name of the writer.
pub const WRITER_CMD: &str = "log-daemon";
/// Most lines per second per node.
pub const MAX_RATE: f64 = 100_000.0;
/// Longest a writer may run.
pub const MAX_FOR: Duration = Duration::from_secs(24 * 3600);
/// Size at which a node's log file is rotated.
pub const ROTATE_BYTES: u64 = 64 << 20;
/// How often lines are appended.
const TICK: Duration = Duration::from_millis(100);

/// What `start --logs` asked for, kept in the cluster state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LogsSpec {
    /// Lines per second per node.
    pub rate: f64,
    /// When the writer stops (Unix ms).
    pub until_unix_ms: u64,
    /// Size at which a file is rotated.
    pub rotate_bytes: u64,
    /// The writer's pid.
    #[serde(default)]
    pub pid: Option<u32>,
}

/// Parses `--logs RATE`: lines per second per node, `200` or `200/s`.
pub fn parse_rate(s: &str) -> Result<f64> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let r: f64 = t.parse().with_context(|| format!("--logs {s:?}: expected lines per second per node, e.g. 200"))?;
    if !(r > 0.0 && r <= MAX_RATE) {
        bail!("--logs {s:?}: a rate above 0 and at most {MAX_RATE} lines/s per node");
    }
    Ok(r)
}

/// The log file node `index` follows.
pub fn log_file(dir: &RunDir, index: usize) -> std::path::PathBuf {
    node_dir(dir, index).join(format!("{LOGS_DATASET}.log"))
}

/// Starts the detached writer of `dir`; returns its pid.
pub fn spawn_writer(dir: &RunDir) -> Result<u32> {
    let exe = std::env::current_exe().context("cannot find the ryx-cluster executable")?;
    crate::chaos::faults::spawn_detached(&exe, dir, WRITER_CMD, "log-writer.log")
}

/// Whether `pid` is a log writer of some ryx-cluster.
fn is_writer(pid: u32) -> bool {
    procfs::pid_exists(pid)
        && procfs::cmdline(pid)
            .is_some_and(|a| a.iter().any(|s| s.contains("ryx-cluster")) && a.iter().any(|s| s == WRITER_CMD))
}

/// Ends the writer of `cluster`, if it runs (on `stop`).
pub fn stop_writer(cluster: &Cluster) {
    if let Some(pid) = cluster.state.logs.as_ref().and_then(|l| l.pid).filter(|&p| is_writer(p)) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
    }
}

/// One node's stream.
struct Stream {
    lines: ryx_compute::corpus::Lines,
    /// Lines owed but not yet written (fractions carry over).
    owed: f64,
}

/// `ryx-cluster log-daemon`: appends lines to every running node's log
/// until the deadline, the cluster's end, or no node running.
pub fn daemon(dir_arg: Option<&Path>) -> Result<()> {
    let dir = RunDir::resolve(dir_arg)?;
    let t0 = Instant::now();
    let mut streams: HashMap<usize, Stream> = HashMap::new();
    let mut running: Vec<usize> = Vec::new();
    let mut checked: Option<Instant> = None;
    let mut spec: Option<LogsSpec> = None;
    let mut last = Instant::now();
    let mut buf = String::new();
    let mut line = String::new();
    let mut written = 0u64;
    while t0.elapsed() < MAX_FOR {
        if checked.is_none_or(|c| c.elapsed() >= Duration::from_secs(1)) {
            checked = Some(Instant::now());
            // A state file replaced as we read it is read again next time.
            match dir.load() {
                Ok(None) => break,
                Ok(Some(state)) => {
                    let Some(s) = state.logs.clone() else { break };
                    if s.pid.is_some_and(|p| p != std::process::id()) {
                        break; // another writer took over
                    }
                    let mut cluster = Cluster::new(dir.clone(), state);
                    running = (0..cluster.state.nodes.len())
                        .filter(|&i| cluster.process_liveness(i) != Liveness::Gone)
                        .collect();
                    spec = Some(s);
                }
                Err(e) => eprintln!("log writer: {e:#}"),
            }
            let Some(s) = &spec else { continue };
            if unix_ms() >= s.until_unix_ms || running.is_empty() {
                break;
            }
        }
        let Some(s) = &spec else {
            std::thread::sleep(TICK);
            continue;
        };
        let dt = last.elapsed().as_secs_f64().min(1.0);
        last = Instant::now();
        for &i in &running {
            let st = streams
                .entry(i)
                .or_insert_with(|| Stream { lines: ryx_compute::corpus::Lines::new(1000 + i as u64), owed: 0.0 });
            st.owed += s.rate * dt;
            let n = st.owed.floor();
            st.owed -= n;
            if n < 1.0 {
                continue;
            }
            buf.clear();
            let now = unix_ms();
            for _ in 0..n as u64 {
                st.lines.next_line(&mut line, Some(now));
                buf.push_str(&line);
            }
            match append(&dir, i, buf.as_bytes(), s.rotate_bytes) {
                Ok(()) => written += buf.len() as u64,
                Err(e) => eprintln!("log writer: node {i}: {e:#}"),
            }
        }
        std::thread::sleep(TICK.saturating_sub(last.elapsed()));
    }
    println!("log writer: {written} bytes written in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// Appends `bytes` (whole lines) to node `index`'s log, rotating it first
/// when it has reached `rotate_bytes`.
fn append(dir: &RunDir, index: usize, bytes: &[u8], rotate_bytes: u64) -> Result<()> {
    let path = log_file(dir, index);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() >= rotate_bytes) {
        std::fs::rename(&path, path.with_extension("log.1"))
            .with_context(|| format!("cannot rotate {}", path.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    f.write_all(bytes).with_context(|| format!("cannot append to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("200").expect("valid"), 200.0);
        assert_eq!(parse_rate("2.5/s").expect("valid"), 2.5);
        for bad in ["0", "-1", "abc", "1e9", "NaN", ""] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
