//! `status` and `logs`: looking at a cluster without changing it.

use crate::cli::{LogsArgs, StatusArgs};
use crate::cluster::{tail_lines, Cluster, NodeReport};
use crate::graph::{self, floor_for, Health, Observed};
use crate::procfs::Liveness;
use crate::state::RunDir;
use crate::util::{human_kib, table};
use anyhow::{bail, Result};
use serde_json::json;
use std::collections::HashSet;
use std::path::Path;

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
    let dead: HashSet<String> = reports
        .iter()
        .filter(|r| r.alive == Some(Liveness::Gone))
        .filter_map(|r| cluster.state.nodes[r.index].node_id.clone())
        .collect();
    let observed: Vec<Observed> = reports
        .iter()
        .filter(|r| r.alive == Some(Liveness::Running))
        .map(|r| Observed {
            id: cluster.state.nodes[r.index].node_id.clone().unwrap_or_else(|| format!("#{}", r.index)),
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
            let st = r.status.as_ref();
            let count = |f: &str| {
                st.and_then(|s| s.get(f)).map(|v| v.as_array().map_or_else(|| v.to_string(), |a| a.len().to_string()))
            };
            vec![
                r.index.to_string(),
                n.node_id.clone().unwrap_or_else(|| "-".into()),
                n.pid.to_string(),
                n.udp_addr().to_string(),
                n.http_port.to_string(),
                count("neighbors").unwrap_or_else(|| "-".into()),
                count("passive_count").unwrap_or_else(|| "-".into()),
                count("info_items").unwrap_or_else(|| "-".into()),
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

/// `ryx-cluster status`.
pub fn status(dir_arg: Option<&Path>, args: StatusArgs) -> Result<()> {
    let dir = RunDir::resolve(dir_arg)?;
    let state = dir.load_required()?;
    let mut cluster = Cluster::new(dir.clone(), state);
    let snap = snapshot(&mut cluster);
    let connected = snap.connected();
    let now = crate::state::unix_ms();
    let faults: Vec<crate::faultlog::FaultRecord> = crate::faultlog::read(&dir)
        .map(|l| l.faults.into_iter().filter(|f| f.active(now)).collect())
        .unwrap_or_default();
    if args.json {
        let nodes: Vec<serde_json::Value> = snap
            .reports
            .iter()
            .map(|r| {
                let n = &cluster.state.nodes[r.index];
                let st = r.status.as_ref();
                json!({
                    "index": r.index,
                    "node_id": n.node_id,
                    "pid": n.pid,
                    "host": n.host,
                    "addr": n.udp_addr(),
                    "udp_port": n.udp_port,
                    "http_port": n.http_port,
                    "netns": n.netns,
                    "alive": r.alive.is_some_and(Liveness::exists),
                    "paused": r.alive == Some(Liveness::Paused),
                    "fate": n.fate,
                    "answered": st.is_some(),
                    "neighbors": r.neighbor_ids().map(|v| v.len()),
                    "neighbor_ids": r.neighbor_ids(),
                    "passive": st.and_then(|s| s.get("passive_count")).cloned(),
                    "info_items": st.and_then(|s| s.get("info_items")).cloned(),
                    "uptime_ms": st.and_then(|s| s.get("uptime_ms")).cloned(),
                    "rss_kib": r.rss_kib,
                    "log": n.log,
                    "started_unix_ms": n.started_unix_ms,
                    "error": r.error,
                })
            })
            .collect();
        let out = json!({
            "dir": dir.path(),
            "cluster_id": cluster.state.cluster_id,
            "discovery_port": cluster.state.discovery_port,
            "netns": cluster.state.netns,
            "total": snap.reports.len(),
            "alive": snap.alive,
            "paused": snap.paused,
            "answered": snap.health.answered,
            "connected": connected,
            "min_neighbors": snap.health.min_neighbors,
            "dead_links": snap.health.dead_links,
            "healthy": snap.health.ready(floor_for(snap.alive - snap.paused)),
            "nodes": nodes,
            "faults_in_force": faults,
        });
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
                crate::faultlog::fmt_unix_ms(f.deadline_unix_ms),
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
