//! `status` and `logs`: looking at a cluster without changing it.

use crate::chaos::faults::{self, FaultRecord};
use crate::cli::{LogsArgs, StatusArgs};
use crate::cluster::graph::{self, floor_for, Health, Observed};
use crate::cluster::netns::Layout;
use crate::cluster::procfs::Liveness;
use crate::cluster::state::{Fate, RunDir};
use crate::cluster::{tail_lines, Cluster, NodeReport};
use crate::util::{human_kib, table};
use anyhow::{bail, Result};
use ryx_api::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// A status snapshot: per-node reports and the graph's health.
pub struct Snapshot {
    /// One report per node ever started.
    pub reports: Vec<NodeReport>,
    /// Health of the graph of running nodes.
    pub health: Health,
    /// Nodes whose process exists.
    pub alive: usize,
    /// Of those, paused ones.
    pub paused: usize,
}

impl Snapshot {
    /// At least one node runs, every running node answered, and their
    /// neighbour graph is connected.
    pub fn connected(&self) -> bool {
        self.health.expected > 0 && self.health.connected && self.health.answered == self.health.expected
    }
}

/// Queries every node once.
pub fn snapshot(cluster: &mut Cluster) -> Snapshot {
    let reports = cluster.reports();
    let dead: HashSet<NodeId> = reports
        .iter()
        .filter(|r| r.alive == Some(Liveness::Gone))
        .filter_map(|r| cluster.state.nodes[r.index].node_id.clone())
        .collect();
    let observed: Vec<Observed> = reports
        .iter()
        .filter(|r| r.alive == Some(Liveness::Running))
        .map(|r| Observed {
            id: cluster.state.nodes[r.index].node_id.clone().unwrap_or_else(|| NodeId::from(format!("#{}", r.index))),
            neighbors: r.neighbor_ids(),
        })
        .collect();
    let health = graph::assess(&observed, &dead);
    let alive = reports.iter().filter(|r| r.alive.is_some_and(Liveness::exists)).count();
    let paused = reports.iter().filter(|r| r.alive == Some(Liveness::Paused)).count();
    Snapshot { reports, health, alive, paused }
}

/// The status table (one row per node, dead ones included).
pub fn status_table(cluster: &Cluster, snap: &Snapshot) -> String {
    let rows: Vec<Vec<String>> = snap
        .reports
        .iter()
        .map(|r| {
            let n = &cluster.state.nodes[r.index];
            let count = |f: fn(&ryx_api::Status) -> usize| {
                r.status.as_ref().map_or_else(|| "-".to_string(), |s| f(s).to_string())
            };
            vec![
                r.index.to_string(),
                n.node_id.as_ref().map_or_else(|| "-".into(), NodeId::to_string),
                n.pid.to_string(),
                n.udp_addr().to_string(),
                n.http_port.to_string(),
                count(|s| s.neighbors.len()),
                count(|s| s.passive_count),
                count(|s| s.info_items),
                r.rss_kib.map(human_kib).unwrap_or_else(|| "-".into()),
                match (r.alive, &r.error) {
                    (Some(Liveness::Running), Some(_)) => "yes (no answer)".into(),
                    (Some(l), _) => l.word().into(),
                    (None, _) => "?".into(),
                },
            ]
        })
        .collect();
    table(&["node", "node id", "pid", "address (udp)", "http", "nbrs", "passive", "items", "rss", "alive"], &rows)
}

/// The one-line summary under the table.
pub fn summary_line(snap: &Snapshot) -> String {
    let running = snap.alive - snap.paused;
    let paused = if snap.paused > 0 { format!(" ({} paused)", snap.paused) } else { String::new() };
    format!(
        "alive {}/{}{paused} · connected: {} · fewest neighbours {} (want >= {}){}",
        snap.alive,
        snap.reports.len(),
        if snap.connected() { "yes" } else { "no" },
        snap.health.min_neighbors,
        floor_for(running),
        if snap.health.dead_links > 0 {
            format!(" · {} links still point at dead nodes", snap.health.dead_links)
        } else {
            String::new()
        }
    )
}

/// What `status --json` prints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusReport {
    /// Nodes whose process exists (paused ones included).
    pub alive: usize,
    /// Running nodes that answered.
    pub answered: usize,
    /// The cluster's id.
    pub cluster_id: String,
    /// Every running node answered and their graph is connected.
    pub connected: bool,
    /// Neighbour entries naming a dead node.
    pub dead_links: usize,
    /// The run directory.
    pub dir: PathBuf,
    /// The discovery port.
    pub discovery_port: u16,
    /// Timed faults in force.
    pub faults_in_force: Vec<FaultRecord>,
    /// Connected, and every node has its neighbour floor and no dead one.
    pub healthy: bool,
    /// Fewest live neighbours of a running node.
    pub min_neighbors: usize,
    /// The namespaces of a `--netns` cluster.
    pub netns: Option<Layout>,
    /// Every node ever started.
    pub nodes: Vec<NodeStatusReport>,
    /// Paused nodes.
    pub paused: usize,
    /// Nodes ever started.
    pub total: usize,
}

/// One node of `status --json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeStatusReport {
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Its process exists.
    pub alive: bool,
    /// Its API answered.
    pub answered: bool,
    /// Why it did not answer.
    pub error: Option<String>,
    /// What became of it.
    pub fate: Fate,
    /// The address it binds.
    pub host: Ipv4Addr,
    /// Its API port.
    pub http_port: u16,
    /// Its index.
    pub index: usize,
    /// Info items it holds.
    pub info_items: Option<usize>,
    /// Its log file.
    pub log: PathBuf,
    /// Its active neighbours.
    pub neighbor_ids: Option<Vec<NodeId>>,
    /// How many.
    pub neighbors: Option<usize>,
    /// Its namespace.
    pub netns: Option<String>,
    /// Its id.
    pub node_id: Option<NodeId>,
    /// Its passive list's size.
    pub passive: Option<usize>,
    /// Stopped with SIGSTOP.
    pub paused: bool,
    /// Its process id.
    pub pid: u32,
    /// Resident memory, KiB.
    pub rss_kib: Option<u64>,
    /// When it was started, Unix ms.
    pub started_unix_ms: u64,
    /// Its UDP port.
    pub udp_port: u16,
    /// Milliseconds since it started, as it says.
    pub uptime_ms: Option<u64>,
}

impl StatusReport {
    /// The report of `snap`, with the faults in force.
    pub fn new(cluster: &Cluster, snap: &Snapshot, faults_in_force: Vec<FaultRecord>) -> StatusReport {
        let nodes = snap
            .reports
            .iter()
            .map(|r| {
                let n = &cluster.state.nodes[r.index];
                let st = r.status.as_ref();
                NodeStatusReport {
                    addr: n.udp_addr(),
                    alive: r.alive.is_some_and(Liveness::exists),
                    answered: st.is_some(),
                    error: r.error.clone(),
                    fate: n.fate,
                    host: n.host,
                    http_port: n.http_port,
                    index: r.index,
                    info_items: st.map(|s| s.info_items),
                    log: n.log.clone(),
                    neighbor_ids: r.neighbor_ids(),
                    neighbors: r.neighbor_ids().map(|v| v.len()),
                    netns: n.netns.clone(),
                    node_id: n.node_id.clone(),
                    passive: st.map(|s| s.passive_count),
                    paused: r.alive == Some(Liveness::Paused),
                    pid: n.pid,
                    rss_kib: r.rss_kib,
                    started_unix_ms: n.started_unix_ms,
                    udp_port: n.udp_port,
                    uptime_ms: st.map(|s| s.uptime_ms),
                }
            })
            .collect();
        StatusReport {
            alive: snap.alive,
            answered: snap.health.answered,
            cluster_id: cluster.state.cluster_id.clone(),
            connected: snap.connected(),
            dead_links: snap.health.dead_links,
            dir: cluster.dir.path().to_path_buf(),
            discovery_port: cluster.state.discovery_port,
            faults_in_force,
            healthy: snap.health.ready(floor_for(snap.alive - snap.paused)),
            min_neighbors: snap.health.min_neighbors,
            netns: cluster.state.netns.clone(),
            nodes,
            paused: snap.paused,
            total: snap.reports.len(),
        }
    }
}

/// `ryx-cluster status`.
pub fn status(dir_arg: Option<&Path>, args: StatusArgs) -> Result<()> {
    let dir = RunDir::resolve(dir_arg)?;
    let state = dir.load_required()?;
    let mut cluster = Cluster::new(dir.clone(), state);
    let snap = snapshot(&mut cluster);
    let now = crate::cluster::state::unix_ms();
    let faults: Vec<FaultRecord> =
        faults::read(&dir).map(|l| l.faults.into_iter().filter(|f| f.active(now)).collect()).unwrap_or_default();
    if args.json {
        let out = StatusReport::new(&cluster, &snap, faults);
        out!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        match &cluster.state.netns {
            Some(l) => out!(
                "cluster {} in {} (network namespaces {}-n*, subnet {}, this machine {} on {}; discovery: {})",
                cluster.state.cluster_id,
                dir.path().display(),
                l.prefix,
                l.subnet,
                l.host_addr,
                l.host_link,
                l.describe_discovery()
            ),
            None => out!(
                "cluster {} in {} (discovery 127.255.255.255:{})",
                cluster.state.cluster_id,
                dir.path().display(),
                cluster.state.discovery_port
            ),
        }
        out_raw!("{}", status_table(&cluster, &snap));
        out!("{}", summary_line(&snap));
        for f in &faults {
            out!(
                "fault #{} in force until {} ({} left): {}",
                f.id,
                faults::fmt_unix_ms(f.deadline_unix_ms),
                crate::util::human(std::time::Duration::from_millis(f.deadline_unix_ms.saturating_sub(now))),
                f.what
            );
        }
    }
    Ok(())
}

/// `ryx-cluster logs`.
pub fn logs(dir_arg: Option<&Path>, args: LogsArgs) -> Result<()> {
    let dir = RunDir::resolve(dir_arg)?;
    let state = dir.load()?;
    // Logs outlive `stop`: without state, show the files that are there.
    let logs: Vec<(usize, std::path::PathBuf)> = match &state {
        Some(st) => st.nodes.iter().map(|n| (n.index, n.log.clone())).collect(),
        None => {
            let mut v: Vec<(usize, std::path::PathBuf)> = std::fs::read_dir(dir.path())
                .map(|rd| {
                    rd.flatten()
                        .filter_map(|e| {
                            let name = e.file_name().to_string_lossy().into_owned();
                            let i = name.strip_prefix("node-")?.strip_suffix(".log")?.parse().ok()?;
                            Some((i, e.path()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        }
    };
    if logs.is_empty() {
        bail!("no node logs in {}", dir.path().display());
    }
    let chosen: Vec<&(usize, std::path::PathBuf)> = match args.node {
        Some(i) => match logs.iter().find(|(j, _)| *j == i) {
            Some(l) => vec![l],
            None => bail!("no node {i} (nodes are 0..{})", logs.len()),
        },
        None => logs.iter().collect(),
    };
    let many = chosen.len() > 1;
    for (i, path) in chosen {
        if many {
            out!("==> node {i}: {} <==", path.display());
        }
        match tail_lines(path, args.lines) {
            Ok(t) if t.is_empty() => {}
            Ok(t) => out!("{t}"),
            Err(e) => out!("({e:#})"),
        }
        if many {
            out!();
        }
    }
    Ok(())
}
