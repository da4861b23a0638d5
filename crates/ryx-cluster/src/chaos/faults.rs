//! Timed faults: what `chaos` injected, where, until when — and undoing it
//! at the deadline even when the `ryx-cluster` that injected it is gone.
//!
//! Every timed fault (partition, loss, delay, pause) is a record in
//! `DIR/faults.json` with its deadline. The nodes' state is always derived
//! from the records in force ([`reconcile`]): a node's network faults are
//! the union of the records that cover it, sent to its
//! `/v1/admin/faults` with an expiry at the earliest of their deadlines,
//! so the node heals by itself even if nobody tells it to. Paused nodes
//! cannot heal themselves, so `chaos` also starts a detached healer
//! (`ryx-cluster heal-daemon`, its own process group) that wakes at each
//! deadline, marks the due records healed and reconciles. Every change is
//! appended to `DIR/chaos.log`.

use crate::cluster::procfs::{self, Liveness};
use crate::cluster::state::{unix_ms, RunDir};
use crate::cluster::Cluster;
use crate::util::clock_now;
use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use ryx_api::{FaultSpec, Impairment};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The fault records of a run dir.
pub const FAULTS_FILE: &str = "faults.json";
/// The chaos log of a run dir.
pub const CHAOS_LOG: &str = "chaos.log";
const FAULTS_LOCK: &str = "faults.lock";
/// Subcommand name of the healer.
pub const HEALER_CMD: &str = "heal-daemon";
/// Longest a healer lives (faults last at most an hour on the nodes).
const HEALER_MAX: Duration = Duration::from_secs(3700);

/// What a record does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Two sides that cannot talk.
    Partition,
    /// Outgoing datagrams lost.
    Loss,
    /// Outgoing datagrams delayed.
    Delay,
    /// Processes stopped (SIGSTOP).
    Pause,
}

/// What a record does to one node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Effect {
    /// Node index.
    pub node: usize,
    /// Indices of nodes whose traffic it drops both ways.
    #[serde(default)]
    pub block: Vec<usize>,
    /// Loss and delay of its outgoing datagrams.
    #[serde(flatten)]
    pub impairment: Impairment,
    /// Stopped with SIGSTOP.
    #[serde(default)]
    pub pause: bool,
    /// In a partition of a `--netns` cluster: this node's link moves to
    /// the second bridge (the chosen side; the others stay).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub far: bool,
}

/// One timed fault.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct FaultRecord {
    /// Number within the run dir.
    pub id: u64,
    /// Kind.
    pub kind: FaultKind,
    /// Human description.
    pub what: String,
    /// Per-node effects.
    pub effects: Vec<Effect>,
    /// When it was injected (Unix ms).
    pub set_unix_ms: u64,
    /// When it ends (Unix ms).
    pub deadline_unix_ms: u64,
    /// When it was undone, if it was.
    #[serde(default)]
    pub healed_unix_ms: Option<u64>,
    /// Who undid it: deadline, heal, interrupt, healer.
    #[serde(default)]
    pub healed_by: Option<String>,
    /// The `ryx-cluster` process that waits to undo it itself; the healer
    /// gives it a moment past the deadline while it lives.
    #[serde(default)]
    pub owner_pid: Option<u32>,
}

impl FaultRecord {
    /// In force at `now`.
    pub fn active(&self, now: u64) -> bool {
        self.healed_unix_ms.is_none() && self.deadline_unix_ms > now
    }

    /// Nodes it touches (targets and blocked peers alike).
    pub fn nodes(&self) -> BTreeSet<usize> {
        self.effects.iter().map(|e| e.node).collect()
    }
}

/// Everything in `faults.json`.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct FaultLog {
    /// Pid of the running healer, if any.
    #[serde(default)]
    pub healer_pid: Option<u32>,
    /// Every record, oldest first.
    #[serde(default)]
    pub faults: Vec<FaultRecord>,
}

impl FaultLog {
    /// Records not yet healed.
    pub fn pending(&self) -> impl Iterator<Item = &FaultRecord> {
        self.faults.iter().filter(|f| f.healed_unix_ms.is_none())
    }
}

fn load(dir: &RunDir) -> Result<FaultLog> {
    let p = dir.path().join(FAULTS_FILE);
    match std::fs::read_to_string(&p) {
        Ok(t) => serde_json::from_str(&t).with_context(|| format!("{} is not a fault log", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FaultLog::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
    }
}

fn save(dir: &RunDir, log: &FaultLog) -> Result<()> {
    let p = dir.path().join(FAULTS_FILE);
    let tmp = dir.path().join(format!("{FAULTS_FILE}.tmp.{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(log)?).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &p).with_context(|| format!("cannot replace {}", p.display()))
}

/// Runs `f` on the fault log under its lock and saves it.
pub fn with_log<T>(dir: &RunDir, f: impl FnOnce(&mut FaultLog) -> Result<T>) -> Result<T> {
    let _lock = dir.lock_named(FAULTS_LOCK, Duration::from_secs(10))?;
    let mut log = load(dir)?;
    let r = f(&mut log)?;
    save(dir, &log)?;
    Ok(r)
}

/// The fault log as it stands (no lock; for display).
pub fn read(dir: &RunDir) -> Result<FaultLog> {
    load(dir)
}

/// Appends a line to `DIR/chaos.log` (and returns it for printing).
pub fn log_event(dir: &RunDir, msg: &str) -> String {
    let line = format!("{} {msg}", clock_now());
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(dir.path().join(CHAOS_LOG)) {
        let _ = writeln!(f, "{line}");
    }
    line
}

/// Adds `rec` (its id is assigned here) and applies it; returns the id
/// and what was done to the nodes (and any problems, as "warning: ...").
pub fn inject(cluster: &mut Cluster, mut rec: FaultRecord) -> Result<(u64, Vec<String>)> {
    let dir = cluster.dir.clone();
    let nodes = rec.nodes();
    let id = with_log(&dir, |log| {
        rec.id = log.faults.iter().map(|f| f.id).max().unwrap_or(0) + 1;
        let id = rec.id;
        log_event(
            &dir,
            &format!(
                "inject #{id} {:?}: {} on nodes {:?}, until {}",
                rec.kind,
                rec.what,
                nodes,
                fmt_unix_ms(rec.deadline_unix_ms)
            ),
        );
        log.faults.push(rec.clone());
        Ok(id)
    })?;
    // The healer first: a chaos process killed just after it stopped a
    // node (before it got to start one) left the node stopped for good.
    ensure_healer(&dir)?;
    let notes = reconcile(cluster, &[rec])?;
    Ok((id, notes))
}

/// Marks the records that `pick` selects healed (by `by`) and reconciles
/// their nodes; returns the healed records and what was done to the nodes.
pub fn heal_where(
    cluster: &mut Cluster,
    by: &str,
    mut pick: impl FnMut(&FaultRecord, u64) -> bool,
) -> Result<(Vec<FaultRecord>, Vec<String>)> {
    let dir = cluster.dir.clone();
    let now = unix_ms();
    let healed = with_log(&dir, |log| {
        let mut healed = Vec::new();
        for f in log.faults.iter_mut().filter(|f| f.healed_unix_ms.is_none()) {
            if pick(f, now) {
                f.healed_unix_ms = Some(now);
                f.healed_by = Some(by.to_string());
                log_event(&dir, &format!("heal #{} {:?} ({by})", f.id, f.kind));
                healed.push(f.clone());
            }
        }
        Ok(healed)
    })?;
    let notes = reconcile(cluster, &healed)?;
    Ok((healed, notes))
}

/// How long past the deadline the healer leaves a record to its living
/// owner (the nodes' own expiry already ends network faults on time).
const OWNER_GRACE_MS: u64 = 1000;

/// Heals the records whose deadline has passed (records of a living owner
/// only after [`OWNER_GRACE_MS`] more when `grace` is set).
pub fn heal_due(cluster: &mut Cluster, by: &str, grace: bool) -> Result<Vec<FaultRecord>> {
    let me = std::process::id();
    let pick = |f: &FaultRecord, now: u64| {
        let owned = grace && f.owner_pid.is_some_and(|p| p != me && is_cluster_process(p));
        f.deadline_unix_ms + if owned { OWNER_GRACE_MS } else { 0 } <= now
    };
    Ok(heal_where(cluster, by, pick)?.0)
}

/// Makes the nodes of the `changed` records (just injected or healed)
/// match the records in force: their network faults (POST with an expiry
/// at the earliest deadline, or DELETE; in a `--netns` cluster bridges,
/// netem or iptables in the namespaces) and whether they are paused.
/// Returns what it did, and problems (nodes that did not answer) as
/// "warning: ..." lines.
pub fn reconcile(cluster: &mut Cluster, changed: &[FaultRecord]) -> Result<Vec<String>> {
    let log = read(&cluster.dir)?;
    let now = unix_ms();
    let active: Vec<&FaultRecord> = log.faults.iter().filter(|f| f.active(now)).collect();
    let nodes: Vec<usize> = changed.iter().flat_map(|f| f.nodes()).collect::<BTreeSet<usize>>().into_iter().collect();
    let mut problems = Vec::new();
    let layout = cluster.state.netns.clone();
    // Whether a changed or an active record gives node `i` a fault of one
    // of these kinds (so there is something to set or undo).
    let ever = |i: usize, kinds: &[FaultKind]| {
        changed.iter().chain(active.iter().copied()).any(|f| kinds.contains(&f.kind) && f.nodes().contains(&i))
    };
    if let Some(layout) = &layout {
        // Partitions: each node's link on br1 (far side) or br0, also for
        // nodes that are gone (their link is still there).
        let plugs: Vec<(usize, bool)> = nodes
            .iter()
            .copied()
            .filter(|&i| i < cluster.state.nodes.len() && ever(i, &[FaultKind::Partition]))
            .map(|i| {
                let far = active
                    .iter()
                    .filter(|f| f.kind == FaultKind::Partition)
                    .any(|f| f.effects.iter().any(|e| e.node == i && e.far));
                (i, far)
            })
            .collect();
        if !plugs.is_empty() {
            match crate::cluster::netns::plug(layout, &plugs) {
                Ok(moved) => {
                    let far: Vec<usize> = moved.iter().filter(|p| p.1).map(|p| p.0).collect();
                    let near: Vec<usize> = moved.iter().filter(|p| !p.1).map(|p| p.0).collect();
                    for (list, what) in [(far, "moved to bridge br1 (partitioned)"), (near, "back on bridge br0")] {
                        if !list.is_empty() {
                            let what = format!("links of nodes {list:?} {what} in {}", layout.bridge_ns);
                            log_event(&cluster.dir, &what);
                            problems.push(what);
                        }
                    }
                }
                Err(e) => problems.push(format!("warning: cannot move links between bridges: {e:#}")),
            }
        }
    }
    let (mut by_netem, mut loss_by_iptables, mut delay_by_node, mut cleared) = (vec![], vec![], vec![], vec![]);
    for &i in &nodes {
        if i >= cluster.state.nodes.len() {
            continue;
        }
        let live = cluster.liveness(i);
        if live == Liveness::Gone {
            continue;
        }
        let mut block = BTreeSet::new();
        let (mut imp, mut pause, mut net) = (Impairment::default(), false, false);
        let mut until = u64::MAX;
        for f in &active {
            for e in f.effects.iter().filter(|e| e.node == i) {
                if e.pause {
                    pause = true;
                    continue;
                }
                net = true;
                until = until.min(f.deadline_unix_ms);
                block.extend(e.block.iter().copied());
                imp.loss = imp.loss.max(e.impairment.loss);
                imp.delay_ms = imp.delay_ms.max(e.impairment.delay_ms);
                imp.jitter_ms = imp.jitter_ms.max(e.impairment.jitter_ms);
            }
        }
        // Network faults first: a paused node does not answer.
        if live == Liveness::Paused && !pause && cluster.signal(i, Signal::SIGCONT)? {
            let what = format!("SIGCONT node {i} (pid {})", cluster.state.nodes[i].pid);
            log_event(&cluster.dir, &what);
            problems.push(what);
        }
        let client = cluster.client(i);
        let for_ms = until.saturating_sub(now).max(1);
        let r = match (&layout, cluster.state.nodes[i].netns.clone()) {
            // A namespace cluster: loss and delay in the node's namespace
            // (partitions were done above, at the bridges).
            (Some(_), Some(_)) if !ever(i, &[FaultKind::Loss, FaultKind::Delay]) => Ok(()),
            (Some(_), Some(ns)) => {
                let how = crate::cluster::netns::impair(&ns, imp.loss, imp.delay_ms, imp.jitter_ms);
                let fallback_delay = matches!(how, Ok(crate::cluster::netns::Impairment::Fallback))
                    && (imp.delay_ms > 0 || imp.jitter_ms > 0);
                match how {
                    Ok(crate::cluster::netns::Impairment::Netem) => by_netem.push(i),
                    Ok(crate::cluster::netns::Impairment::Fallback) => {
                        if imp.loss > 0.0 {
                            loss_by_iptables.push(i);
                        }
                        if fallback_delay {
                            delay_by_node.push(i);
                        }
                    }
                    Ok(crate::cluster::netns::Impairment::None) => cleared.push(i),
                    Err(e) => problems.push(format!("warning: node {i}: {e:#}")),
                }
                if fallback_delay {
                    // Loss is done in the namespace; only the delay by the node.
                    let delay = Impairment { loss: 0.0, ..imp };
                    let spec = FaultSpec { impairment: delay, for_ms, ..FaultSpec::default() };
                    client.set_faults(&spec).map(drop)
                } else if cluster.liveness(i) == Liveness::Running {
                    client.clear_faults().map(drop)
                } else {
                    Ok(())
                }
            }
            _ if net => {
                let block = block.iter().filter_map(|&b| cluster.state.nodes.get(b)).map(|n| n.udp_addr()).collect();
                client.set_faults(&FaultSpec { block, impairment: imp, for_ms }).map(drop)
            }
            _ if cluster.liveness(i) == Liveness::Running => client.clear_faults().map(drop),
            _ => Ok(()),
        };
        if let Err(e) = r {
            problems.push(format!("warning: node {i}: {e}"));
        }
        if pause && cluster.liveness(i) == Liveness::Running && cluster.signal(i, Signal::SIGSTOP)? {
            let what = format!("SIGSTOP node {i} (pid {})", cluster.state.nodes[i].pid);
            log_event(&cluster.dir, &what);
            problems.push(what);
        }
    }
    const NO_NETEM: &str = "tc netem is not available: no sch_netem in this kernel";
    for (list, what) in [
        (by_netem, "loss/delay by tc netem on eth0 in their namespaces".to_string()),
        (loss_by_iptables, format!("loss by iptables statistic DROP of outgoing UDP in their namespaces ({NO_NETEM})")),
        (delay_by_node, format!("delay by the nodes' own fault injection ({NO_NETEM})")),
        (cleared, "loss/delay cleared in their namespaces".to_string()),
    ] {
        if !list.is_empty() {
            let what = format!("nodes {list:?}: {what}");
            log_event(&cluster.dir, &what);
            problems.push(what);
        }
    }
    Ok(problems)
}

/// `chaos --heal`: every record healed now, every live node's network
/// faults cleared (also ones set by hand), every paused node resumed.
/// Returns (records healed, nodes cleared, nodes resumed, problems).
pub fn heal_everything(cluster: &mut Cluster) -> Result<(usize, usize, usize, Vec<String>)> {
    let (healed, _) = heal_where(cluster, "heal", |_, _| true)?;
    let (mut cleared, mut resumed) = (0, 0);
    let mut problems = Vec::new();
    if let Some(layout) = cluster.state.netns.clone() {
        // Every link back on br0, every namespace's loss and delay cleared.
        let all: Vec<(usize, bool)> = (0..cluster.state.nodes.len()).map(|i| (i, false)).collect();
        match crate::cluster::netns::plug(&layout, &all) {
            Ok(moved) if !moved.is_empty() => {
                let nodes: Vec<usize> = moved.iter().map(|m| m.0).collect();
                log_event(&cluster.dir, &format!("links of nodes {nodes:?} back on bridge br0 (heal)"));
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("cannot join the bridges again: {e:#}")),
        }
        for n in &cluster.state.nodes {
            if let Some(ns) = &n.netns {
                if let Err(e) = crate::cluster::netns::impair(ns, 0.0, 0, 0) {
                    problems.push(format!("node {}: {e:#}", n.index));
                }
            }
        }
    }
    for i in cluster.live() {
        if cluster.liveness(i) == Liveness::Paused && cluster.signal(i, Signal::SIGCONT)? {
            log_event(&cluster.dir, &format!("SIGCONT node {i} (pid {}) (heal)", cluster.state.nodes[i].pid));
            resumed += 1;
        }
        match cluster.client(i).clear_faults() {
            Ok(_) => cleared += 1,
            Err(e) => problems.push(format!("node {i}: {e}")),
        }
    }
    log_event(
        &cluster.dir,
        &format!("heal everything: {} records, {cleared} nodes cleared, {resumed} resumed", healed.len()),
    );
    Ok((healed.len(), cleared, resumed, problems))
}

/// Whether `pid` is a live ryx-cluster process.
fn is_cluster_process(pid: u32) -> bool {
    procfs::pid_exists(pid)
        && procfs::cmdline(pid).is_some_and(|a| a.first().is_some_and(|s| s.contains("ryx-cluster")))
        && !is_zombie(pid)
}

/// Whether `pid` is a healer of some ryx-cluster.
fn is_healer(pid: u32) -> bool {
    procfs::pid_exists(pid)
        && procfs::cmdline(pid)
            .is_some_and(|a| a.iter().any(|s| s.contains("ryx-cluster")) && a.iter().any(|s| s == HEALER_CMD))
        && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').is_none_or(|(_, r)| r.trim_start().starts_with('Z'))
}

/// Starts the healer of `dir` unless one runs or nothing is pending.
pub fn ensure_healer(dir: &RunDir) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the ryx-cluster executable")?;
    with_log(dir, |log| {
        if log.pending().next().is_none() || log.healer_pid.is_some_and(is_healer) {
            return Ok(());
        }
        log.healer_pid = Some(spawn_detached(&exe, dir, HEALER_CMD, "healer.log")?);
        Ok(())
    })
}

/// Starts `ryx-cluster --dir DIR SUBCOMMAND` in a process group of its own,
/// its output appended to `DIR/LOG`; returns its pid. Not waited for: it
/// outlives us on purpose; when we exit first, init reaps it.
pub fn spawn_detached(exe: &Path, dir: &RunDir, subcommand: &str, log: &str) -> Result<u32> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join(log))
        .with_context(|| format!("cannot open {log}"))?;
    let err = out.try_clone()?;
    let child = Command::new(exe)
        .arg("--dir")
        .arg(dir.path())
        .arg(subcommand)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start `{} {subcommand}`", exe.display()))?;
    let pid = child.id();
    std::mem::forget(child);
    Ok(pid)
}

/// Ends the healer of `dir` (on `stop`) and removes the fault log.
pub fn stop_healer(dir: &RunDir) {
    if let Ok(log) = read(dir) {
        if let Some(pid) = log.healer_pid.filter(|&p| is_healer(p)) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
    let _ = std::fs::remove_file(dir.path().join(FAULTS_FILE));
}

/// `ryx-cluster heal-daemon`: wakes at each deadline and heals what is
/// due, until nothing is pending or the cluster is gone.
pub fn healer(dir_arg: Option<&Path>) -> Result<()> {
    let dir = RunDir::resolve(dir_arg)?;
    let t0 = std::time::Instant::now();
    while t0.elapsed() < HEALER_MAX {
        let Some(state) = dir.load()? else {
            return Ok(());
        };
        let mut cluster = Cluster::new(dir.clone(), state);
        let healed = heal_due(&mut cluster, "healer", true)?;
        if !healed.is_empty() {
            println!("{} healed {:?}", clock_now(), healed.iter().map(|f| f.id).collect::<Vec<_>>());
        }
        let next = with_log(&dir, |log| {
            let next = log.pending().map(|f| f.deadline_unix_ms).min();
            if next.is_none() && log.healer_pid == Some(std::process::id()) {
                log.healer_pid = None;
            }
            Ok(next)
        })?;
        let Some(next) = next else {
            return Ok(());
        };
        let wait = next.saturating_sub(unix_ms()).clamp(10, 500);
        std::thread::sleep(Duration::from_millis(wait));
    }
    Ok(())
}

/// Unix ms as `HH:MM:SS.mmmZ`.
pub fn fmt_unix_ms(ms: u64) -> String {
    let secs = ms / 1000;
    format!("{:02}:{:02}:{:02}.{:03}Z", (secs / 3600) % 24, (secs / 60) % 60, secs % 60, ms % 1000)
}

/// The partition effects: every node of `a` blocks every node of `b` and
/// the other way round (in a `--netns` cluster, `a` moves to the second bridge).
pub fn partition_effects(a: &[usize], b: &[usize]) -> Vec<Effect> {
    let mut out: BTreeMap<usize, Effect> = BTreeMap::new();
    for &x in a {
        out.insert(x, Effect { node: x, block: b.to_vec(), far: true, ..Effect::default() });
    }
    for &y in b {
        out.insert(y, Effect { node: y, block: a.to_vec(), ..Effect::default() });
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_block_both_ways_and_records_expire() {
        let e = partition_effects(&[0, 2], &[1]);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].block, vec![1]);
        assert_eq!(e[1].node, 1);
        assert_eq!(e[1].block, vec![0, 2]);
        let r = FaultRecord {
            id: 1,
            kind: FaultKind::Partition,
            what: "x".into(),
            effects: e,
            set_unix_ms: 0,
            deadline_unix_ms: 100,
            healed_unix_ms: None,
            healed_by: None,
            owner_pid: None,
        };
        assert!(r.active(99));
        assert!(!r.active(100));
        assert_eq!(r.nodes().into_iter().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(fmt_unix_ms(3_723_004), "01:02:03.004Z");
    }

    #[test]
    fn fault_log_round_trips_under_its_lock() {
        let p = std::env::temp_dir().join(format!("ryx-cluster-faultlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        let dir = RunDir::at(p.clone());
        with_log(&dir, |l| {
            l.faults.push(FaultRecord {
                id: 7,
                kind: FaultKind::Pause,
                what: "pause".into(),
                effects: vec![Effect { node: 3, pause: true, ..Effect::default() }],
                set_unix_ms: 1,
                deadline_unix_ms: 2,
                healed_unix_ms: None,
                healed_by: None,
                owner_pid: Some(1),
            });
            Ok(())
        })
        .expect("write");
        let back = read(&dir).expect("read");
        assert_eq!(back.pending().count(), 1);
        assert_eq!(back.faults[0].effects[0].node, 3);
        let _ = std::fs::remove_dir_all(&p);
    }
}
