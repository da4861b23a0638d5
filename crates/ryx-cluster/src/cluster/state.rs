//! The run directory: the cluster's state as JSON, one log per node, and a
//! lock so two `ryx-cluster` commands never rewrite the state at once.

use crate::cluster::procfs::{self, Liveness, NodeIdentity};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Name of the state file inside the run directory.
pub const STATE_FILE: &str = "cluster.json";
/// Name of the lock file inside the run directory.
const LOCK_FILE: &str = "lock";
/// Version of the state format.
const STATE_VERSION: u32 = 1;

/// What became of a node, as far as `ryx-cluster` knows.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Started and not deliberately ended (it may still have crashed).
    Running,
    /// Killed by `chaos --kill`.
    Killed,
    /// Ended by `stop`.
    Stopped,
}

/// One node process of the cluster.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct NodeRecord {
    /// Position in the cluster, from 0, never reused.
    pub index: usize,
    /// Process id.
    pub pid: u32,
    /// UDP port for neighbour traffic.
    pub udp_port: u16,
    /// TCP port of the HTTP API.
    pub http_port: u16,
    /// The address the node binds (UDP and HTTP): 127.0.0.1 on loopback,
    /// its namespace's own address in a `--netns` cluster. State files of
    /// before this field mean loopback.
    #[serde(default = "loopback")]
    pub host: Ipv4Addr,
    /// The network namespace the node runs in (`--netns` clusters only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// The node's id, once its API answered.
    pub node_id: Option<ryx_api::NodeId>,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
    /// When it was started (Unix milliseconds).
    pub started_unix_ms: u64,
    /// What became of it.
    pub fate: Fate,
    /// When it was killed or stopped (Unix milliseconds).
    #[serde(default)]
    pub ended_unix_ms: Option<u64>,
}

fn loopback() -> Ipv4Addr {
    Ipv4Addr::LOCALHOST
}

impl NodeRecord {
    /// Node `index` just started as process `pid`, bound to `at` (UDP and
    /// HTTP on the same port), in namespace `netns` if any, logging to `log`.
    pub fn started(index: usize, pid: u32, at: (Ipv4Addr, u16), netns: Option<String>, log: PathBuf) -> NodeRecord {
        let (host, port) = at;
        NodeRecord {
            index,
            pid,
            udp_port: port,
            http_port: port,
            host,
            netns,
            node_id: None,
            log,
            started_unix_ms: unix_ms(),
            fate: Fate::Running,
            ended_unix_ms: None,
        }
    }

    /// Where its HTTP API answers.
    pub fn api(&self) -> SocketAddr {
        SocketAddr::from((self.host, self.http_port))
    }

    /// Where it receives neighbour datagrams (the address peers know it by).
    pub fn udp_addr(&self) -> SocketAddr {
        SocketAddr::from((self.host, self.udp_port))
    }
}

/// Everything `ryx-cluster` remembers about a cluster between commands.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ClusterState {
    /// Format version.
    pub version: u32,
    /// The cluster id every node runs with (unique per start).
    pub cluster_id: String,
    /// UDP port of broadcast discovery on 127.255.255.255 (unique per cluster).
    pub discovery_port: u16,
    /// The node binary.
    pub node_bin: PathBuf,
    /// Extra arguments given to every node.
    pub node_args: Vec<String>,
    /// When the cluster was started (Unix milliseconds).
    pub created_unix_ms: u64,
    /// Every node ever started in it.
    pub nodes: Vec<NodeRecord>,
    /// The namespaces, bridges and links of a `start --netns` cluster
    /// (none: the nodes share the machine's loopback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<crate::cluster::netns::Layout>,
    /// A dataset every node follows in its own data directory
    /// (`DIR/data/node-I`, see [`crate::cluster::data`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Live logs appended to every node's data directory (`start --logs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<crate::cluster::logs::LogsSpec>,
}

impl ClusterState {
    /// A new, empty cluster.
    pub fn new(cluster_id: String, discovery_port: u16, node_bin: PathBuf, node_args: Vec<String>) -> ClusterState {
        ClusterState {
            version: STATE_VERSION,
            cluster_id,
            discovery_port,
            node_bin,
            node_args,
            created_unix_ms: unix_ms(),
            nodes: Vec::new(),
            netns: None,
            dataset: None,
            logs: None,
        }
    }

    /// How to recognise node `index`'s process.
    pub fn identity(&self, index: usize) -> Option<NodeIdentity<'_>> {
        let n = self.nodes.get(index)?;
        Some(NodeIdentity { pid: n.pid, node_bin: &self.node_bin, cluster_id: &self.cluster_id, port: n.udp_port })
    }

    /// Whether node `index` runs, is paused or is gone. A node we killed or
    /// stopped counts as gone at once, even while the kernel is still
    /// tearing its process down.
    pub fn liveness(&self, index: usize) -> Liveness {
        match self.nodes.get(index) {
            Some(n) if n.fate == Fate::Running => self.process_liveness(index),
            _ => Liveness::Gone,
        }
    }

    /// What `/proc` says about node `index`'s process, whatever its fate.
    pub fn process_liveness(&self, index: usize) -> Liveness {
        self.identity(index).map(|id| procfs::liveness(&id)).unwrap_or(Liveness::Gone)
    }

    /// Indices of nodes whose process exists (running or paused).
    pub fn live_indices(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.liveness(i).exists()).collect()
    }

    /// Indices of nodes whose process exists, whatever their recorded fate.
    pub fn process_live_indices(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.process_liveness(i).exists()).collect()
    }

    /// Highest port any node of this cluster used.
    pub fn max_port(&self) -> u16 {
        self.nodes
            .iter()
            .map(|n| n.udp_port.max(n.http_port))
            .max()
            .unwrap_or(self.discovery_port)
            .max(self.discovery_port)
    }
}

/// A run directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// `--dir` if given, else `$XDG_STATE_HOME/ryx`, else `./.ryx`; made absolute.
    pub fn resolve(dir: Option<&Path>) -> Result<RunDir> {
        let chosen = match dir {
            Some(d) => d.to_path_buf(),
            None => default_dir(),
        };
        let path = if chosen.is_absolute() {
            chosen
        } else {
            std::env::current_dir().context("cannot read the current directory")?.join(chosen)
        };
        Ok(RunDir { path })
    }

    /// A run directory at exactly `path`.
    pub fn at(path: PathBuf) -> RunDir {
        RunDir { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates it if needed.
    pub fn create(&self) -> Result<()> {
        fs::create_dir_all(&self.path).with_context(|| format!("cannot create run directory {}", self.path.display()))
    }

    /// The state file.
    pub fn state_path(&self) -> PathBuf {
        self.path.join(STATE_FILE)
    }

    /// Node `index`'s log file.
    pub fn log_path(&self, index: usize) -> PathBuf {
        self.path.join(format!("node-{index}.log"))
    }

    /// The saved state, if any.
    pub fn load(&self) -> Result<Option<ClusterState>> {
        let p = self.state_path();
        let text = match fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", p.display())),
        };
        let st: ClusterState =
            serde_json::from_str(&text).with_context(|| format!("{} is not valid cluster state", p.display()))?;
        if st.version != STATE_VERSION {
            bail!("{} has state format {} (this ryx-cluster reads {STATE_VERSION})", p.display(), st.version);
        }
        Ok(Some(st))
    }

    /// The saved state, or an error telling how to start a cluster.
    pub fn load_required(&self) -> Result<ClusterState> {
        self.load()?.with_context(|| {
            format!(
                "no cluster in {} (start one with `ryx-cluster start --dir {}`)",
                self.path.display(),
                self.path.display()
            )
        })
    }

    /// Saves the state atomically (write a temporary file, then rename).
    pub fn save(&self, st: &ClusterState) -> Result<()> {
        self.create()?;
        let p = self.state_path();
        let tmp = self.path.join(format!("{STATE_FILE}.tmp.{}", std::process::id()));
        let text = serde_json::to_string_pretty(st).context("cannot serialise cluster state")?;
        let mut f = fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(text.as_bytes()).and_then(|_| f.write_all(b"\n")).and_then(|_| f.sync_all())?;
        fs::rename(&tmp, &p).with_context(|| format!("cannot replace {}", p.display()))
    }

    /// Removes the state file (a missing one is fine).
    pub fn remove_state(&self) -> Result<()> {
        match fs::remove_file(self.state_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", self.state_path().display()))
            }
            _ => Ok(()),
        }
    }

    /// Removes the state and every node log of an earlier run.
    pub fn clean(&self) -> Result<()> {
        self.remove_state()?;
        let _ = fs::remove_file(self.path.join(crate::chaos::faults::FAULTS_FILE));
        if let Ok(entries) = fs::read_dir(&self.path) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("node-") && name.ends_with(".log") {
                    fs::remove_file(e.path()).with_context(|| format!("cannot remove {}", e.path().display()))?;
                }
            }
        }
        Ok(())
    }

    /// Takes the directory's lock, waiting up to `wait` for another
    /// `ryx-cluster` to release it. A lock left by a process that no longer
    /// exists is taken over.
    pub fn lock(&self, wait: Duration) -> Result<DirLock> {
        self.lock_named(LOCK_FILE, wait)
    }

    /// Takes the lock file `name` of the directory (see [`RunDir::lock`]).
    pub fn lock_named(&self, name: &str, wait: Duration) -> Result<DirLock> {
        self.create()?;
        let p = self.path.join(name);
        let start = Instant::now();
        loop {
            match fs::OpenOptions::new().write(true).create_new(true).open(&p) {
                Ok(mut f) => {
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(DirLock { path: p });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder: Option<u32> = fs::read_to_string(&p).ok().and_then(|s| s.trim().parse().ok());
                    let held = holder.is_some_and(|pid| {
                        procfs::pid_exists(pid)
                            && procfs::cmdline(pid).is_some_and(|a| a.iter().any(|s| s.contains("ryx-cluster")))
                    });
                    if !held && start.elapsed() > Duration::from_millis(200) {
                        // Stale (or unreadable for 200 ms): its owner is gone.
                        let _ = fs::remove_file(&p);
                        continue;
                    }
                    if start.elapsed() > wait {
                        bail!(
                            "{} is in use by another ryx-cluster (pid {}); try again when it has finished",
                            self.path.display(),
                            holder.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
                        );
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e).with_context(|| format!("cannot create {}", p.display())),
            }
        }
    }
}

/// The held lock of a run directory; released when dropped.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn default_dir() -> PathBuf {
    match std::env::var_os("XDG_STATE_HOME") {
        Some(x) if !x.is_empty() => PathBuf::from(x).join("ryx"),
        _ => PathBuf::from(".ryx"),
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> RunDir {
        let p = std::env::temp_dir().join(format!("ryx-cluster-unit-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        RunDir::at(p)
    }

    #[test]
    fn state_round_trips_and_cleans() {
        let d = temp("state");
        assert!(d.load().expect("load").is_none());
        let mut st = ClusterState::new("c1".into(), 20000, PathBuf::from("/bin/ryx-node"), vec![]);
        st.nodes.push(NodeRecord::started(0, 1, (Ipv4Addr::LOCALHOST, 20001), None, d.log_path(0)));
        d.save(&st).expect("save");
        fs::write(d.log_path(0), "x").expect("log");
        let back = d.load().expect("load").expect("some");
        assert_eq!(back.cluster_id, "c1");
        assert_eq!(back.max_port(), 20001);
        // pid 1 is init, not our node.
        assert!(back.live_indices().is_empty());
        d.clean().expect("clean");
        assert!(d.load().expect("load").is_none());
        assert!(!d.log_path(0).exists());
        let _ = fs::remove_dir_all(d.path());
    }

    #[test]
    fn old_state_files_mean_loopback() {
        let old = r#"{"version":1,"cluster_id":"c","discovery_port":20000,"node_bin":"/bin/ryx-node","node_args":[],
            "created_unix_ms":0,"nodes":[{"index":0,"pid":1,"udp_port":20001,"http_port":20002,"node_id":null,
            "log":"/tmp/x","started_unix_ms":0,"fate":"running"}]}"#;
        let st: ClusterState = serde_json::from_str(old).expect("old state parses");
        assert!(st.netns.is_none());
        assert_eq!(st.nodes[0].host, Ipv4Addr::LOCALHOST);
        assert_eq!(st.nodes[0].api(), "127.0.0.1:20002".parse().expect("addr"));
        assert_eq!(st.nodes[0].udp_addr(), "127.0.0.1:20001".parse().expect("addr"));
    }

    #[test]
    fn lock_is_exclusive_and_stale_locks_are_taken_over() {
        let d = temp("lock");
        {
            let _l = d.lock(Duration::from_millis(10)).expect("first lock");
        }
        // A lock file naming a dead pid is taken over.
        fs::write(d.path().join(LOCK_FILE), "999999999").expect("write");
        let _l = d.lock(Duration::from_secs(2)).expect("stale lock taken over");
        let _ = fs::remove_dir_all(d.path());
    }
}
