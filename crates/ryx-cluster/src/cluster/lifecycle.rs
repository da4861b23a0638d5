//! `start`, `stop`, `add`: bringing clusters up, growing them, ending them;
//! and [`TempCluster`], the self-cleaning cluster of `measure` and `demo`.

use crate::cli::{AddArgs, StartArgs};
use crate::cluster::graph::floor_for;
use crate::cluster::logs;
use crate::cluster::ports::{auto_base, PortAllocator, LOOPBACK_BROADCAST};
use crate::cluster::procfs::Liveness;
use crate::cluster::state::{unix_ms, ClusterState, Fate, RunDir};
use crate::cluster::{check_node_args, Cluster};
use crate::cluster::{netns, nodebin};
use crate::interrupt;
use crate::util::{human, time_seed};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long to wait for another ryx-cluster to release a run dir.
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// How long nodes get to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Makes sure `dir` holds no live cluster, cleaning up stale state of an
/// earlier run (all nodes gone). Never signals anything.
pub fn ensure_no_live_cluster(dir: &RunDir) -> Result<()> {
    let Some(old) = dir.load()? else {
        return dir.clean();
    };
    let live = old.process_live_indices();
    if !live.is_empty() {
        let pids: Vec<String> = live.iter().map(|&i| old.nodes[i].pid.to_string()).collect();
        bail!(
            "a cluster is already running in {} ({} live nodes, pids {}); grow it with `ryx-cluster add`, or end it with `ryx-cluster stop` first",
            dir.path().display(),
            live.len(),
            pids.join(", ")
        );
    }
    out!(
        "Cleaning up stale state in {} (cluster {}: none of its {} nodes is running any more)",
        dir.path().display(),
        old.cluster_id,
        old.nodes.len()
    );
    if let Some(layout) = &old.netns {
        netns::require().context("the stale cluster ran in network namespaces; removing them")?;
        let t = netns::teardown(layout)?;
        out!("Removed its {} network namespaces ({}*)", t.namespaces, layout.prefix);
    }
    dir.clean()
}

/// A new, empty cluster in `dir` with a fresh id and discovery port; the
/// returned allocator hands out node ports above the discovery port.
pub fn new_cluster(
    dir: RunDir,
    node_bin: PathBuf,
    node_args: Vec<String>,
    base_port: Option<u16>,
) -> Result<(Cluster, PortAllocator)> {
    check_node_args(&node_args)?;
    let seed = time_seed();
    let base = base_port.unwrap_or_else(|| auto_base(seed));
    let mut ports = PortAllocator::new(base, []);
    let discovery_port = ports.discovery_port()?;
    let cluster_id = format!("dev-{:012x}", seed & 0xffff_ffff_ffff);
    let state = ClusterState::new(cluster_id, discovery_port, node_bin, node_args);
    let cluster = Cluster::new(dir, state);
    cluster.save()?;
    Ok((cluster, ports))
}

/// `NAME=FILE` of `start --source`: a dataset name and an existing file.
fn parse_source(s: &str) -> Result<(String, PathBuf)> {
    let (name, file) = s.split_once('=').with_context(|| format!("--source {s:?}: expected NAME=FILE"))?;
    let ok =
        !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        bail!("--source {s:?}: a dataset name is 1 to 64 of A-Z a-z 0-9 . _ -");
    }
    let file = PathBuf::from(file);
    if !file.is_file() {
        bail!("--source {s:?}: {} is not a file", file.display());
    }
    Ok((name.to_string(), std::fs::canonicalize(&file).unwrap_or(file)))
}

/// The `--dir` hint to repeat in suggested commands (empty for the default dir).
pub fn dir_hint(dir: &RunDir, explicit: Option<&Path>) -> String {
    match explicit {
        Some(_) => format!(" --dir {}", dir.path().display()),
        None => String::new(),
    }
}

/// `ryx-cluster start`.
pub fn start(dir_arg: Option<&Path>, args: StartArgs) -> Result<()> {
    if args.netns {
        // Before anything else: without root there is nothing to clean up.
        netns::require()?;
    }
    let dir = RunDir::resolve(dir_arg)?;
    let _lock = dir.lock(LOCK_WAIT)?;
    ensure_no_live_cluster(&dir)?;
    let node_bin = nodebin::locate(args.node.node_bin.as_deref())?;
    let n = usize::from(args.nodes);
    let hint = dir_hint(&dir, dir_arg);
    let t0 = Instant::now();
    let mut cluster = if args.netns {
        start_netns(&dir, node_bin, &args, n)?
    } else {
        let mut node_args = args.node_args.clone();
        let source = match &args.docs {
            Some(f) => Some(parse_source(&format!("docs={}", f.display()))?),
            None => args.source.as_deref().map(parse_source).transpose()?,
        };
        let split = args.split || args.docs.is_some();
        if let (Some((name, file)), false) = (&source, split) {
            node_args.extend(["--source".to_string(), format!("{name}={}", file.display())]);
        }
        let (mut cluster, mut ports) = new_cluster(dir.clone(), node_bin, node_args, args.base_port)?;
        if let (Some((name, _)), true) = (&source, split) {
            cluster.state.dataset = Some(name.clone());
            cluster.save()?;
        }
        if args.logs.is_some() {
            cluster.state.dataset = Some(logs::LOGS_DATASET.to_string());
            for i in 0..n {
                let d = crate::cluster::data::node_dir(&cluster.dir, i);
                std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
            }
            cluster.save()?;
        }
        out!(
            "Starting {n} ryx-node processes in {} (cluster {}, discovery on {LOOPBACK_BROADCAST}:{})",
            dir.path().display(),
            cluster.state.cluster_id,
            cluster.state.discovery_port
        );
        if let Err(e) = cluster.spawn_nodes(n, &mut ports) {
            if interrupt::interrupted() {
                out!("Interrupted: the nodes started so far keep running; end them with `ryx-cluster{hint} stop`");
                return Err(e);
            }
            eprintln!("ryx-cluster: start failed; stopping the nodes it started");
            let _ = cluster.stop_all(STOP_GRACE);
            let _ = dir.remove_state();
            return Err(e);
        }
        if let (Some((name, file)), true) = (&source, split) {
            let all: Vec<usize> = (0..n).collect();
            let bytes = crate::cluster::data::split(&cluster, std::slice::from_ref(file), &all)?;
            out!(
                "Dataset {name}: {} of {} spread over the {n} nodes' data directories ({}/data/node-I), in node-id order",
                crate::jobs::mib(bytes),
                file.display(),
                dir.path().display()
            );
        }
        if let Some(rate) = args.logs {
            let until = logs::MAX_FOR.min(args.logs_for);
            cluster.state.logs = Some(logs::LogsSpec {
                rate,
                until_unix_ms: unix_ms() + until.as_millis() as u64,
                rotate_bytes: logs::ROTATE_BYTES,
                pid: None,
            });
            cluster.save()?;
            let pid = logs::spawn_writer(&cluster.dir)?;
            if let Some(l) = cluster.state.logs.as_mut() {
                l.pid = Some(pid);
            }
            cluster.save()?;
            out!(
                "Live logs: {rate} lines/s per node appended to {}/data/node-I/{}.log for {} (writer pid {pid}), followed as dataset {}",
                dir.path().display(),
                logs::LOGS_DATASET,
                human(until),
                logs::LOGS_DATASET
            );
        }
        let ports_used: Vec<u16> = cluster.state.nodes.iter().map(|r| r.udp_port).collect();
        out!(
            "All {n} nodes answer on their HTTP API after {} (ports {}..={})",
            human(t0.elapsed()),
            ports_used.iter().min().copied().unwrap_or(0),
            ports_used.iter().max().copied().unwrap_or(0)
        );
        cluster
    };
    if !args.no_wait {
        let k = floor_for(n);
        match cluster.wait_ready(secs(args.timeout), Duration::from_millis(100)) {
            Ok(Some(_)) => out!(
                "Cluster connected after {} from the first spawn: every node has >= {k} neighbours and the graph is connected",
                human(t0.elapsed())
            ),
            Ok(None) => {
                let h = cluster.health();
                bail!(
                    "the cluster did not connect within {} (fewest neighbours {}, connected {}, {}/{} nodes answering); \
                     the nodes keep running: inspect with `ryx-cluster{hint} status` or `logs`, end with `ryx-cluster{hint} stop`",
                    human(secs(args.timeout)),
                    h.min_neighbors,
                    h.connected,
                    h.answered,
                    h.expected
                );
            }
            Err(e) => {
                out!("The {n} nodes keep running; end them with `ryx-cluster{hint} stop`");
                return Err(e);
            }
        }
    }
    out!("Next: ryx-cluster{hint} status | logs | info put KEY VALUE | chaos --kill 30% --wait | add --nodes 2 | stop");
    Ok(())
}

/// `start --netns`: records the layout, builds the bridge namespace and
/// the machine's veth, checks the route, then one namespace and node per
/// index. Anything that fails on the way removes all of it again.
fn start_netns(dir: &RunDir, node_bin: PathBuf, args: &StartArgs, n: usize) -> Result<Cluster> {
    let subnet: netns::Subnet = args.subnet.parse().context("--subnet")?;
    if n > subnet.capacity() {
        bail!(
            "subnet {subnet} has room for {} nodes (this machine takes its last address), not {n}",
            subnet.capacity()
        );
    }
    check_node_args(&args.node_args)?;
    let port = args.base_port.map_or(netns::DEFAULT_PORT, |b| b + 1);
    let cluster_id = format!("dev-{:012x}", time_seed() & 0xffff_ffff_ffff);
    let layout = netns::Layout::new(&cluster_id, subnet, port, args.discovery, n);
    netns::preflight(&layout)?;
    let mut state = ClusterState::new(cluster_id, layout.discovery_port, node_bin, args.node_args.clone());
    state.netns = Some(layout.clone());
    let mut cluster = Cluster::new(dir.clone(), state);
    // Recorded before anything exists, so `stop` finds all of it even if
    // this command dies half-way.
    cluster.save()?;
    out!(
        "Starting {n} ryx-node processes in network namespaces {}-n0..{} on {subnet} (cluster {}, run dir {})",
        layout.prefix,
        n - 1,
        cluster.state.cluster_id,
        dir.path().display()
    );
    let t0 = Instant::now();
    let built = netns::create_base(&layout).and_then(|()| {
        out!(
            "This machine is {} on {} (into bridge namespace {}); route check: {}",
            layout.host_addr,
            layout.host_link,
            layout.bridge_ns,
            netns::route_line(&layout)
        );
        out!("Discovery: {}", layout.describe_discovery());
        cluster.spawn_nodes(n, &mut PortAllocator::new(port, []))
    });
    if let Err(e) = built {
        eprintln!("ryx-cluster: start failed; removing the nodes, namespaces and links it created");
        if let Err(c) = remove_cluster(&mut cluster) {
            eprintln!("ryx-cluster: cleanup: {c:#}");
        }
        return Err(e);
    }
    let first = cluster.state.nodes.first().map(|r| r.host.to_string()).unwrap_or_default();
    let last = cluster.state.nodes.last().map(|r| r.host.to_string()).unwrap_or_default();
    out!(
        "All {n} nodes answer on their HTTP API after {} (addresses {first}..{last}, port {port}, one namespace each)",
        human(t0.elapsed())
    );
    Ok(cluster)
}

/// Stops every node, removes the namespaces and links of a `--netns`
/// cluster and the state. Goes on after a failure and reports the first.
fn remove_cluster(cluster: &mut Cluster) -> Result<(crate::cluster::StopReport, Option<netns::Teardown>)> {
    crate::chaos::faults::stop_healer(&cluster.dir);
    logs::stop_writer(cluster);
    let stopped = cluster.stop_all(STOP_GRACE);
    let removed = cluster.state.netns.as_ref().map(netns::teardown);
    let report = stopped?;
    let removed = removed.transpose()?;
    cluster.dir.remove_state()?;
    Ok((report, removed))
}

/// `ryx-cluster stop`.
pub fn stop(dir_arg: Option<&Path>) -> Result<()> {
    let dir = RunDir::resolve(dir_arg)?;
    if !dir.path().exists() {
        out!("No cluster in {}: nothing to stop", dir.path().display());
        return Ok(());
    }
    let _lock = dir.lock(LOCK_WAIT)?;
    let Some(state) = dir.load()? else {
        out!("No cluster in {}: nothing to stop", dir.path().display());
        return Ok(());
    };
    if state.netns.is_some() {
        netns::require().context("this cluster runs in network namespaces; stopping it")?;
    }
    let mut cluster = Cluster::new(dir.clone(), state);
    // The healer first (in remove_cluster), so it does not resume or touch
    // nodes being stopped.
    let (r, removed) = remove_cluster(&mut cluster)?;
    let ns = match (&removed, &cluster.state.netns) {
        (Some(t), Some(l)) => {
            format!("; removed {} network namespaces and the link {} ({}*)", t.namespaces, l.host_link, l.prefix)
        }
        _ => String::new(),
    };
    out!(
        "Stopped cluster {}: {} nodes ended on SIGTERM, {} needed SIGKILL, {} were already gone{ns}; logs kept in {}",
        cluster.state.cluster_id,
        r.terminated,
        r.killed,
        r.already_gone,
        dir.path().display()
    );
    Ok(())
}

/// `ryx-cluster add`.
pub fn add(dir_arg: Option<&Path>, args: AddArgs) -> Result<()> {
    let dir = RunDir::resolve(dir_arg)?;
    let _lock = dir.lock(LOCK_WAIT)?;
    let state = dir.load_required()?;
    let mut cluster = Cluster::new(dir.clone(), state);
    let live = cluster.live();
    if live.is_empty() {
        bail!("no live node in {}: start a cluster with `ryx-cluster start`", dir.path().display());
    }
    if let Some(bin) = &args.node_bin {
        cluster.state.node_bin = nodebin::locate(Some(bin))?;
    }
    check_node_args(&args.node_args)?;
    cluster.batch_args = args.node_args.clone();
    let k = usize::from(args.nodes);
    let used: Vec<u16> = cluster.state.nodes.iter().map(|n| n.udp_port).chain([cluster.state.discovery_port]).collect();
    let mut ports = PortAllocator::new(cluster.state.max_port().saturating_add(1), used);
    out!("Adding {k} nodes to cluster {} ({} live nodes)", cluster.state.cluster_id, live.len());
    let t0 = Instant::now();
    let before = cluster.state.nodes.len();
    if cluster.state.netns.is_some() {
        netns::require().context("this cluster runs in network namespaces; adding to it")?;
    }
    let fresh = match cluster.spawn_nodes(k, &mut ports) {
        Ok(f) => f,
        Err(e) => {
            // Leave the cluster as it was: end whatever of this batch started.
            let after = cluster.state.nodes.len();
            for i in before..after {
                let _ = cluster.kill(i);
                cluster.state.nodes[i].fate = Fate::Stopped;
            }
            if let Some(layout) = cluster.state.netns.clone() {
                // Including the namespace of a node that never started.
                for i in before..=after {
                    let _ = netns::remove_node(&layout, i);
                }
            }
            let _ = cluster.save();
            return Err(e);
        }
    };
    out!("Nodes {fresh:?} answer after {}", human(t0.elapsed()));
    if !args.no_wait {
        let total = cluster.running().len();
        match cluster.wait_ready(secs(args.timeout), Duration::from_millis(100))? {
            Some(_) => out!(
                "Joined: all {total} running nodes have >= {} neighbours and the graph is connected, {} after the first spawn",
                floor_for(total),
                human(t0.elapsed())
            ),
            None => bail!("the grown cluster did not become healthy within {}; see `ryx-cluster status`", human(secs(args.timeout))),
        }
    }
    Ok(())
}

/// A cluster that stops its nodes and removes its run dir when dropped
/// (unless kept): `measure` and `demo` clean up on success, error, panic
/// and Ctrl-C alike.
pub struct TempCluster {
    /// The cluster.
    pub cluster: Cluster,
    /// Port source for more nodes.
    pub ports: PortAllocator,
    remove_dir: bool,
    keep: bool,
}

impl TempCluster {
    /// An empty cluster in a new temporary run dir (or in `dir`, which is
    /// then kept), with no nodes yet.
    pub fn create(
        dir: Option<RunDir>,
        node_bin: PathBuf,
        node_args: Vec<String>,
        base_port: Option<u16>,
        tag: &str,
    ) -> Result<TempCluster> {
        let (dir, remove_dir) = match dir {
            Some(d) => {
                ensure_no_live_cluster(&d)?;
                (d, false)
            }
            None => {
                let p =
                    std::env::temp_dir().join(format!("ryx-{tag}-{}-{:08x}", std::process::id(), time_seed() as u32));
                std::fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
                (RunDir::at(p), true)
            }
        };
        match new_cluster(dir.clone(), node_bin, node_args, base_port) {
            Ok((cluster, ports)) => Ok(TempCluster { cluster, ports, remove_dir, keep: false }),
            Err(e) => {
                if remove_dir {
                    let _ = std::fs::remove_dir_all(dir.path());
                }
                Err(e)
            }
        }
    }

    /// Spawns `n` nodes.
    pub fn spawn(&mut self, n: usize) -> Result<Vec<usize>> {
        self.cluster.spawn_nodes(n, &mut self.ports)
    }

    /// Leaves the cluster running when dropped.
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// Stops every node now; the report says how they ended.
    pub fn stop(&mut self) -> Result<crate::cluster::StopReport> {
        crate::chaos::faults::stop_healer(&self.cluster.dir);
        logs::stop_writer(&self.cluster);
        let r = self.cluster.stop_all(STOP_GRACE)?;
        self.cluster.dir.remove_state()?;
        Ok(r)
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        crate::chaos::faults::stop_healer(&self.cluster.dir);
        logs::stop_writer(&self.cluster);
        let any_left = (0..self.cluster.state.nodes.len()).any(|i| self.cluster.process_liveness(i) != Liveness::Gone);
        if any_left {
            if let Err(e) = self.cluster.stop_all(STOP_GRACE) {
                eprintln!("ryx-cluster: cleanup: {e:#}");
            }
        }
        let _ = self.cluster.dir.remove_state();
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(self.cluster.dir.path());
        }
    }
}

/// Seconds as a duration (negative and NaN become zero, huge values a day).
pub fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.clamp(0.0, 86_400.0)).unwrap_or_default()
}
