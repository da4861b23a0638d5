//! A cluster of local `ryx-node` processes: spawning them, asking them how
//! they are, waiting for the graph to heal, signalling and stopping them.

pub mod data;
pub mod graph;
pub mod lifecycle;
pub mod logs;
pub mod netns;
pub mod nodebin;
pub mod ports;
pub mod procfs;
pub mod state;

use crate::interrupt;
use anyhow::{bail, Context, Result};
use graph::{Health, Observed};
use netns::Layout;
use nix::sys::signal::Signal;
use ports::{PortAllocator, LOOPBACK_BROADCAST};
use procfs::Liveness;
use ryx_api::{Client, Http, Metrics, NodeId, Status};
use state::{unix_ms, ClusterState, Fate, NodeRecord, RunDir};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Node options `ryx-cluster` sets itself; extra node arguments may not.
const MANAGED_FLAGS: &[&str] = &[
    "--port",
    "--http-port",
    "--bind",
    "--discovery",
    "--seeds",
    "--cluster-id",
    "--broadcast-addr",
    "--discovery-port",
    "--identity-file",
    "--identity-seed",
];

/// Environment variables of the node that would override what we pass or
/// reach beyond loopback; they are removed from the nodes' environment.
const CLEARED_ENV: &[&str] = &[
    "RYX_PORT",
    "RYX_HTTP_PORT",
    "RYX_BIND",
    "RYX_DISCOVERY",
    "RYX_SEEDS",
    "RYX_CLUSTER_ID",
    "RYX_BROADCAST_ADDR",
    "RYX_DISCOVERY_PORT",
    "RYX_HTTP_BIND",
    "RYX_ADVERTISE_ADDR",
    "RYX_CONFIG",
    // Every node of a local cluster has an identity of its own: one seed
    // or key file shared by all would make them one node.
    "RYX_IDENTITY_FILE",
    "RYX_IDENTITY_SEED",
];

/// Every node runs with the fault-injection API on, so `chaos` can
/// partition, lose and delay traffic without root (loopback only).
const FAULT_FLAG: &[&str] = &["--enable-fault-injection"];

/// Every node of a local cluster shares this machine's cores, so a job's
/// home folds the partials itself (a merge tree would decode and encode
/// each partial once more on the same cores: 3.0–3.5× `exec` against
/// 2.4–2.7× flat for 10 nodes, docs/performance.md). Unless the cluster's
/// node arguments choose a fan-in.
const ONE_MACHINE_MERGE: &[&str] = &["--merge-fan-in", "0"];

/// Times a node that lost a port race is re-spawned on another port.
const SPAWN_ATTEMPTS: usize = 3;
/// Most threads used to query nodes at once.
const MAX_PARALLEL: usize = 64;

/// Rejects extra node arguments that would change what `ryx-cluster`
/// manages (ports, addresses, discovery, identity).
pub fn check_node_args(args: &[String]) -> Result<()> {
    for a in args {
        let flag = a.split_once('=').map(|(f, _)| f).unwrap_or(a);
        if MANAGED_FLAGS.contains(&flag) {
            bail!("node argument {a} is managed by ryx-cluster (it sets {}); leave it out", MANAGED_FLAGS.join(", "));
        }
    }
    Ok(())
}

/// A cluster and the processes this `ryx-cluster` spawned in it.
pub struct Cluster {
    /// Where its state and logs live.
    pub dir: RunDir,
    /// Its state.
    pub state: ClusterState,
    /// Node processes started by this process (reaped when they exit).
    children: HashMap<u32, Child>,
    /// The connections to the nodes' API, shared by their clients.
    http: Arc<Http>,
    /// Arguments for the nodes spawned next only (`add -- ARGS`), after
    /// the cluster's own.
    pub batch_args: Vec<String>,
}

/// What a node said about itself, for `status`.
#[derive(Clone, Debug, Default)]
pub struct NodeReport {
    /// Index in the cluster.
    pub index: usize,
    /// Process state.
    pub alive: Option<Liveness>,
    /// Resident memory in KiB.
    pub rss_kib: Option<u64>,
    /// `/v1/status` of the node, if it answered.
    pub status: Option<Status>,
    /// Why it did not answer.
    pub error: Option<String>,
}

impl NodeReport {
    /// Ids of its active neighbours.
    pub fn neighbor_ids(&self) -> Option<Vec<NodeId>> {
        self.status.as_ref().map(Status::neighbor_ids)
    }
}

/// What `stop` did.
#[derive(Clone, Debug, Default)]
pub struct StopReport {
    /// Nodes that ended after SIGTERM.
    pub terminated: usize,
    /// Nodes that needed SIGKILL.
    pub killed: usize,
    /// Nodes already gone before `stop`.
    pub already_gone: usize,
}

impl Cluster {
    /// Wraps a loaded or new state.
    pub fn new(dir: RunDir, state: ClusterState) -> Cluster {
        Cluster {
            dir,
            state,
            children: HashMap::new(),
            http: Arc::new(Http::new(Duration::from_secs(2))),
            batch_args: Vec::new(),
        }
    }

    /// A client of node `index`'s API (short timeouts: for status and
    /// control, not for uploads).
    pub fn client(&self, index: usize) -> Client {
        Client::with_http(self.state.nodes[index].api(), self.http.clone())
    }

    /// Saves the state.
    pub fn save(&self) -> Result<()> {
        self.dir.save(&self.state)
    }

    /// Collects exit statuses of our own children so they do not linger
    /// as zombies.
    pub fn reap(&mut self) {
        self.children.retain(|_, c| !matches!(c.try_wait(), Ok(Some(_))));
    }

    /// State of node `index` (gone once killed or stopped).
    pub fn liveness(&mut self, index: usize) -> Liveness {
        self.reap();
        self.state.liveness(index)
    }

    /// What `/proc` says about node `index`'s process, whatever its fate.
    pub fn process_liveness(&mut self, index: usize) -> Liveness {
        self.reap();
        self.state.process_liveness(index)
    }

    /// Indices of nodes whose process exists (running or paused).
    pub fn live(&mut self) -> Vec<usize> {
        self.reap();
        self.state.live_indices()
    }

    /// Indices of nodes that run (not paused).
    pub fn running(&mut self) -> Vec<usize> {
        self.reap();
        (0..self.state.nodes.len()).filter(|&i| self.state.liveness(i) == Liveness::Running).collect()
    }

    /// Ids of nodes that are gone.
    pub fn dead_ids(&mut self) -> HashSet<NodeId> {
        self.reap();
        (0..self.state.nodes.len())
            .filter(|&i| !self.state.liveness(i).exists())
            .filter_map(|i| self.state.nodes[i].node_id.clone())
            .collect()
    }

    /// Spawns `count` nodes on ports from `ports`, saves the state after
    /// each spawn, and waits until every new node's API answers. Returns
    /// the new nodes' indices.
    pub fn spawn_nodes(&mut self, count: usize, ports: &mut PortAllocator) -> Result<Vec<usize>> {
        let mut fresh = Vec::with_capacity(count);
        for _ in 0..count {
            interrupt::check()?;
            let index = self.state.nodes.len();
            let (record, child) = match self.state.netns.clone() {
                Some(layout) => {
                    let (ns, addr) = crate::cluster::netns::create_node(&layout, index)?;
                    self.spawn_in(index, &layout, ns, addr)?
                }
                None => {
                    let port = ports.node_port()?;
                    self.spawn_one(index, port)?
                }
            };
            self.children.insert(record.pid, child);
            self.state.nodes.push(record);
            self.save()?;
            fresh.push(index);
        }
        self.await_api(&fresh, ports)?;
        self.save()?;
        Ok(fresh)
    }

    /// Adds what every node gets (cluster id, fault flags, the cluster's
    /// node arguments) to `cmd`, which already names the node and its
    /// addresses, and starts it logging to `log` in its own process group:
    /// a Ctrl-C of ryx-cluster does not reach the node, which outlives the
    /// command that started it.
    fn launch(&self, mut cmd: Command, log: &Path) -> Result<Child> {
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone().context("cannot duplicate the log file handle")?;
        cmd.arg("--cluster-id")
            .arg(&self.state.cluster_id)
            .args(FAULT_FLAG.iter().filter(|f| !self.state.node_args.iter().chain(&self.batch_args).any(|a| a == *f)))
            .args(ONE_MACHINE_MERGE.iter().filter(|_| {
                !self.state.node_args.iter().chain(&self.batch_args).any(|a| a.starts_with("--merge-fan-in"))
            }))
            .args(&self.state.node_args)
            .args(&self.batch_args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        for v in CLEARED_ENV {
            cmd.env_remove(v);
        }
        Ok(cmd.spawn()?)
    }

    fn spawn_one(&self, index: usize, port: u16) -> Result<(NodeRecord, Child)> {
        let log = self.dir.log_path(index);
        let mut cmd = Command::new(&self.state.node_bin);
        cmd.arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--discovery", "broadcast"])
            .arg("--broadcast-addr")
            .arg(LOOPBACK_BROADCAST.to_string())
            .arg("--discovery-port")
            .arg(self.state.discovery_port.to_string());
        if let Some(name) = &self.state.dataset {
            let d = data::node_dir(&self.dir, index);
            std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
            cmd.arg("--source").arg(data::source_arg(&self.dir, name, index));
        }
        let child =
            self.launch(cmd, &log).with_context(|| format!("cannot start {}", self.state.node_bin.display()))?;
        Ok((NodeRecord::started(index, child.id(), (Ipv4Addr::LOCALHOST, port), None, log), child))
    }

    /// Starts node `index` in namespace `ns` with `ip netns exec` (which
    /// execs the node: the pid is the node's), bound to `addr`.
    fn spawn_in(&self, index: usize, layout: &Layout, ns: String, addr: Ipv4Addr) -> Result<(NodeRecord, Child)> {
        let log = self.dir.log_path(index);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns]).arg(&self.state.node_bin).args(layout.node_args(addr));
        let child = self
            .launch(cmd, &log)
            .with_context(|| format!("cannot start `ip netns exec {ns} {}`", self.state.node_bin.display()))?;
        Ok((NodeRecord::started(index, child.id(), (addr, layout.port), Some(ns), log), child))
    }

    /// Waits until the API of every node in `indices` answers; re-spawns a
    /// node on another port if it lost a race for its port.
    fn await_api(&mut self, indices: &[usize], ports: &mut PortAllocator) -> Result<()> {
        let quick = Arc::new(Http::new(Duration::from_millis(500)));
        let deadline = Instant::now() + Duration::from_secs(15) + Duration::from_millis(100 * indices.len() as u64);
        let mut pending: Vec<usize> = indices.to_vec();
        let mut attempts: HashMap<usize, usize> = HashMap::new();
        while !pending.is_empty() {
            interrupt::check()?;
            let mut still = Vec::new();
            for &i in &pending {
                let pid = self.state.nodes[i].pid;
                if let Some(status) = self.children.get_mut(&pid).and_then(|c| c.try_wait().ok().flatten()) {
                    self.children.remove(&pid);
                    let tail = tail_lines(&self.state.nodes[i].log, 5).unwrap_or_default();
                    let tries = attempts.entry(i).or_insert(1);
                    if tail.contains("cannot bind") && *tries < SPAWN_ATTEMPTS && self.state.netns.is_none() {
                        *tries += 1;
                        let port = ports.node_port()?;
                        eprintln!(
                            "ryx-cluster: node {i} could not bind port {} (taken meanwhile); retrying on {port}",
                            self.state.nodes[i].udp_port
                        );
                        let (record, child) = self.spawn_one(i, port)?;
                        self.children.insert(record.pid, child);
                        self.state.nodes[i] = record;
                        self.save()?;
                        still.push(i);
                        continue;
                    }
                    self.state.nodes[i].fate = Fate::Stopped;
                    self.state.nodes[i].ended_unix_ms = Some(unix_ms());
                    bail!(
                        "node {i} exited at start ({status}); last lines of {}:\n{tail}",
                        self.state.nodes[i].log.display()
                    );
                }
                match Client::with_http(self.state.nodes[i].api(), quick.clone()).status() {
                    Ok(st) => self.state.nodes[i].node_id = Some(st.node_id),
                    Err(_) => still.push(i),
                }
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "nodes {pending:?} did not answer on their HTTP port in time; see their logs in {}",
                    self.dir.path().display()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(())
    }

    /// Asks the nodes in `indices` for their neighbours, in parallel.
    pub fn observe(&self, indices: &[usize]) -> Vec<Observed> {
        par_map(indices, |&i| {
            let id = self.state.nodes[i].node_id.clone().unwrap_or_else(|| NodeId::from(format!("#{i}")));
            let neighbors = self.client(i).neighbors().ok().map(|ns| ns.into_iter().map(|n| n.node_id).collect());
            Observed { id, neighbors }
        })
    }

    /// The health of the running nodes' graph.
    pub fn health(&mut self) -> Health {
        let running = self.running();
        let dead = self.dead_ids();
        graph::assess(&self.observe(&running), &dead)
    }

    /// Polls every `every` until `done(health, live count)` holds; the time
    /// it took, or `None` after `timeout`. An interrupt is an error.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        every: Duration,
        mut done: impl FnMut(&Health, usize) -> bool,
    ) -> Result<Option<(Duration, Health)>> {
        let start = Instant::now();
        loop {
            let running = self.running().len();
            let h = self.health();
            if done(&h, running) {
                return Ok(Some((start.elapsed(), h)));
            }
            if start.elapsed() >= timeout {
                return Ok(None);
            }
            if !interrupt::sleep(every) {
                bail!("interrupted");
            }
        }
    }

    /// Waits until every running node has at least min(4, n-1) live
    /// neighbours, none lists a dead node, and the graph is connected.
    pub fn wait_ready(&mut self, timeout: Duration, every: Duration) -> Result<Option<(Duration, Health)>> {
        self.wait_for(timeout, every, |h, n| h.ready(graph::floor_for(n)))
    }

    /// Everything `status` shows, for every node, queried in parallel.
    pub fn reports(&mut self) -> Vec<NodeReport> {
        self.reap();
        let indices: Vec<usize> = (0..self.state.nodes.len()).collect();
        let this = &*self;
        par_map(&indices, |&i| {
            let alive = this.state.liveness(i);
            let mut r = NodeReport { index: i, alive: Some(alive), ..NodeReport::default() };
            if alive.exists() {
                r.rss_kib = procfs::rss_kib(this.state.nodes[i].pid);
            }
            if alive == Liveness::Running {
                match this.client(i).status() {
                    Ok(st) => r.status = Some(st),
                    Err(e) => r.error = Some(e.to_string()),
                }
            }
            r
        })
    }

    /// Each of the nodes in `indices`'s `/metrics` (none where it did not
    /// answer), asked in parallel.
    pub fn metrics(&self, indices: &[usize]) -> Vec<Option<Metrics>> {
        par_map(indices, |&i| self.client(i).metrics().ok())
    }

    /// Sends `sig` to node `index` if it still is our node; false if not.
    pub fn signal(&mut self, index: usize, sig: Signal) -> Result<bool> {
        let Some(id) = self.state.identity(index) else {
            return Ok(false);
        };
        procfs::signal_node(&id, sig)
    }

    /// SIGKILLs node `index` and marks it killed.
    pub fn kill(&mut self, index: usize) -> Result<bool> {
        let sent = self.signal(index, Signal::SIGKILL)?;
        if sent {
            if let Some(n) = self.state.nodes.get_mut(index) {
                n.fate = Fate::Killed;
                n.ended_unix_ms = Some(unix_ms());
            }
        }
        Ok(sent)
    }

    /// Stops every node: SIGTERM (resuming paused ones), up to `grace` to
    /// exit, then SIGKILL for the rest. Only processes that still are our
    /// nodes are signalled. Marks them stopped (the caller saves or removes
    /// the state).
    pub fn stop_all(&mut self, grace: Duration) -> Result<StopReport> {
        let mut report = StopReport::default();
        let mut targets = Vec::new();
        for i in 0..self.state.nodes.len() {
            match self.process_liveness(i) {
                Liveness::Gone => report.already_gone += 1,
                l => {
                    if l == Liveness::Paused {
                        self.signal(i, Signal::SIGCONT)?;
                    }
                    if self.signal(i, Signal::SIGTERM)? {
                        targets.push(i);
                    } else {
                        report.already_gone += 1;
                    }
                }
            }
        }
        let left = self.wait_gone(&targets, grace);
        report.terminated = targets.len() - left.len();
        for &i in &left {
            if self.signal(i, Signal::SIGKILL)? {
                report.killed += 1;
            }
        }
        let stuck = self.wait_gone(&left, Duration::from_secs(3));
        for n in &mut self.state.nodes {
            if n.fate == Fate::Running {
                n.fate = Fate::Stopped;
                n.ended_unix_ms = Some(unix_ms());
            }
        }
        if !stuck.is_empty() {
            let pids: Vec<u32> = stuck.iter().map(|&i| self.state.nodes[i].pid).collect();
            bail!("node processes {pids:?} survived SIGKILL");
        }
        Ok(report)
    }

    /// Waits up to `timeout` for the nodes in `indices` to be gone; returns
    /// those still there.
    fn wait_gone(&mut self, indices: &[usize], timeout: Duration) -> Vec<usize> {
        let start = Instant::now();
        loop {
            let left: Vec<usize> = indices.iter().copied().filter(|&i| self.process_liveness(i).exists()).collect();
            if left.is_empty() || start.elapsed() >= timeout {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Maps `f` over `items` on up to [`MAX_PARALLEL`] threads; keeps order.
pub fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(MAX_PARALLEL) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk.iter().map(|it| s.spawn(|| f(it))).collect();
            for h in handles {
                match h.join() {
                    Ok(r) => out.push(r),
                    Err(p) => std::panic::resume_unwind(p),
                }
            }
        });
    }
    out
}

/// The last `n` lines of a file (reads at most the last 1 MiB).
pub fn tail_lines(path: &std::path::Path, n: usize) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = f.metadata()?.len();
    let mut from = len;
    let mut buf: Vec<u8> = Vec::new();
    const BLOCK: u64 = 64 * 1024;
    const MAX: u64 = 1 << 20;
    while from > 0 && len - from < MAX && buf.iter().filter(|&&b| b == b'\n').count() <= n {
        let start = from.saturating_sub(BLOCK);
        let mut block = vec![0u8; (from - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut block)?;
        block.extend_from_slice(&buf);
        buf = block;
        from = start;
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(n);
    Ok(lines[skip..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_node_args_are_rejected() {
        assert!(check_node_args(&["--log".into(), "debug".into()]).is_ok());
        assert!(check_node_args(&["--port".into(), "1".into()]).is_err());
        assert!(check_node_args(&["--seeds=10.0.0.1:9001".into()]).is_err());
    }

    #[test]
    fn tails_files() {
        let p = std::env::temp_dir().join(format!("ryx-cluster-tail-{}", std::process::id()));
        let text: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, text).expect("write");
        assert_eq!(tail_lines(&p, 2).expect("tail"), "line 9998\nline 9999");
        assert_eq!(tail_lines(&p, 0).expect("tail"), "");
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn par_map_keeps_order() {
        let v: Vec<usize> = (0..150).collect();
        assert_eq!(par_map(&v, |x| x * 2), v.iter().map(|x| x * 2).collect::<Vec<_>>());
    }
}
