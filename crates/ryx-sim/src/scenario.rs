//! The experiments: join, spread, crash, partition, pause, churn. Each
//! returns plainly named figures; times are milliseconds of virtual time.

use crate::params::{Params, Scenario};
use crate::sim::{Sim, Tracked, Violation};
use ryx_core::config::Discovery;
use ryx_core::wire::Message;
use ryx_core::{NodeId, Time};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// A run that broke an invariant, with the command that replays it.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// What broke.
    pub violation: Violation,
    /// The exact command line that replays the run.
    pub command: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invariant broken {}\nreplay with: {}", self.violation, self.command)
    }
}

impl std::error::Error for Failure {}

/// Shape of the neighbour graph at one moment.
#[derive(Clone, Debug, Serialize)]
pub struct GraphReport {
    /// Whether the live nodes form one network.
    pub connected: bool,
    /// Connected components among live nodes.
    pub components: usize,
    /// Live nodes.
    pub live: usize,
    /// Fewest active neighbours of a live node.
    pub degree_min: usize,
    /// Mean active neighbours.
    pub degree_mean: f64,
    /// Most active neighbours.
    pub degree_max: usize,
    /// Fraction of live nodes with at least one random long link.
    pub long_link_fraction: f64,
    /// Fraction of links (A lists B, B alive) that B lists back.
    pub link_symmetry: f64,
}

/// The join phase.
#[derive(Clone, Debug, Serialize)]
pub struct JoinReport {
    /// Time from the first start until every node had `min_active`
    /// neighbours and the graph was connected (None: not within the bound).
    pub join_ms: Option<f64>,
    /// The graph when the join completed (or at the bound).
    #[serde(flatten)]
    pub graph: GraphReport,
}

/// Traffic while nothing happens.
#[derive(Clone, Debug, Serialize)]
pub struct IdleReport {
    /// Window measured.
    pub window_ms: u64,
    /// Messages sent per node per second.
    pub msgs_per_node_per_s: f64,
    /// Bytes sent per node per second (only with `--wire`).
    pub bytes_per_node_per_s: Option<f64>,
    /// Messages per node per second, by kind.
    pub by_kind: BTreeMap<&'static str, f64>,
}

/// Spread of one item.
#[derive(Clone, Debug, Serialize)]
pub struct ItemReport {
    /// Energy injected with.
    pub energy: f64,
    /// Time until half the live nodes held it.
    pub t50_ms: Option<f64>,
    /// Time until 99 % held it.
    pub t99_ms: Option<f64>,
    /// Time until every live node held it.
    pub t100_ms: Option<f64>,
    /// Fraction of live nodes reached.
    pub coverage: f64,
    /// Full-payload (gossip) messages carrying it, per live node.
    pub payload_msgs_per_node: f64,
    /// Of those, anti-entropy pushes, per live node.
    pub sync_payload_msgs_per_node: f64,
    /// Small announcement messages (ihave + graft + prune) about it, per node.
    pub announce_msgs_per_node: f64,
    /// IHave messages naming it, per node.
    pub ihave_per_node: f64,
    /// Graft messages naming it, per node.
    pub graft_per_node: f64,
    /// Prunes sent in answer to a duplicate of it, per node.
    pub prune_per_node: f64,
    /// Duplicate payload copies received per first delivery
    /// ((copies received − nodes reached) / nodes reached; 0 is a perfect tree).
    pub duplicate_ratio: f64,
    /// Most hops a copy travelled.
    pub max_hops: u32,
}

/// A series of consecutive items from random origins.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesReport {
    /// Items in the series.
    pub items: usize,
    /// Whether every one reached every live node.
    pub all_reached: bool,
    /// Mean time to 100 %.
    pub t100_ms_mean: Option<f64>,
    /// Slowest time to 100 %.
    pub t100_ms_max: Option<f64>,
    /// Mean full-payload messages per node per item (steady state).
    pub payload_msgs_per_node: f64,
    /// Mean announcement messages per node per item.
    pub announce_msgs_per_node: f64,
    /// Mean duplicate ratio.
    pub duplicate_ratio: f64,
    /// Payload messages per node of each item, in order.
    pub payload_per_item: Vec<f64>,
}

/// One point of the coverage-against-energy experiment.
#[derive(Clone, Debug, Serialize)]
pub struct EnergyPoint {
    /// Energy injected.
    pub energy: f64,
    /// Hops the energy model predicts it travels.
    pub reach_hops: u32,
    /// Fraction of live nodes reached within the window.
    pub coverage: f64,
    /// Most hops observed.
    pub max_hops: u32,
    /// Full-payload messages per node.
    pub payload_msgs_per_node: f64,
    /// Time until the last node that got it got it.
    pub last_delivery_ms: Option<f64>,
}

/// The spread scenario.
#[derive(Clone, Debug, Serialize)]
pub struct SpreadReport {
    /// Time until half the live nodes held the first item.
    pub t50_ms: Option<f64>,
    /// Time until 99 % held it.
    pub t99_ms: Option<f64>,
    /// Time until 100 % held it.
    pub t100_ms: Option<f64>,
    /// Fraction of live nodes the first item reached.
    pub coverage: f64,
    /// Full-payload messages per node for the first item.
    pub payload_msgs_per_node: f64,
    /// Announcement messages per node for the first item.
    pub announce_msgs_per_node: f64,
    /// Duplicate ratio of the first item.
    pub duplicate_ratio: f64,
    /// The first item in detail.
    pub first: ItemReport,
    /// The consecutive items after it (steady state).
    pub series: Option<SeriesReport>,
    /// Coverage against injected energy.
    pub energy_sweep: Vec<EnergyPoint>,
    /// Window each sweep point was measured over.
    pub sweep_window_ms: u64,
}

/// The crash scenario.
#[derive(Clone, Debug, Serialize)]
pub struct CrashReport {
    /// Nodes killed.
    pub killed: usize,
    /// Survivors.
    pub survivors: usize,
    /// Whether the survivors formed one network right after the kill.
    pub connected_at_kill: bool,
    /// Time until no live node listed a dead neighbour.
    pub detect_ms: Option<f64>,
    /// Time until every survivor had `min(min_active, survivors − 1)` live
    /// neighbours.
    pub repair_ms: Option<f64>,
    /// Time until the survivors formed one network.
    pub connected_ms: Option<f64>,
    /// Whether the survivors form one network at the end.
    pub connected: bool,
    /// Live nodes wrongly declared dead during the phase.
    pub false_detections: u64,
    /// Dead nodes declared dead.
    pub true_detections: u64,
    /// The graph two seconds after repair (or at the bound).
    pub after: GraphReport,
}

/// The partition scenario.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionReport {
    /// Nodes on each side.
    pub sides: [usize; 2],
    /// Time until no live node listed a neighbour across the split.
    pub split_detect_ms: Option<f64>,
    /// Whether each side formed one network when the partition healed.
    pub sides_connected: bool,
    /// Fraction of each side holding the item written on it at the heal.
    pub side_coverage: [f64; 2],
    /// Time from the heal until the live graph was connected again.
    pub remerge_ms: Option<f64>,
    /// Time from the heal until every node held both sides' items and
    /// agreed on the key written on both sides.
    pub converge_ms: Option<f64>,
    /// Whether that happened within the bound.
    pub converged: bool,
    /// Live, reachable nodes wrongly declared dead during the phase.
    pub false_detections: u64,
    /// Neighbours across the split declared dead (expected).
    pub partition_detections: u64,
    /// The graph at the end.
    pub after: GraphReport,
}

/// The pause scenario.
#[derive(Clone, Debug, Serialize)]
pub struct PauseReport {
    /// How long the node was stopped.
    pub pause_ms: u64,
    /// Its neighbours before the pause.
    pub neighbors_before: usize,
    /// Its neighbours five seconds after it resumed.
    pub neighbors_after: usize,
    /// Live nodes wrongly declared dead during the phase (expected 0).
    pub false_detections: u64,
    /// Suspicions raised against live reachable nodes during the phase.
    pub false_suspicions: u64,
    /// Lifeguard local-health multiplier of the paused node right after resume.
    pub local_health_after_resume: u32,
}

/// The churn scenario.
#[derive(Clone, Debug, Serialize)]
pub struct ChurnReport {
    /// Crashes done.
    pub crashes: usize,
    /// Restarts done (each a new member with a new id).
    pub restarts: usize,
    /// Time from the end of churn until every node had `min_active` live
    /// neighbours, none listed a dead one, and the graph was connected.
    pub recover_ms: Option<f64>,
    /// Live, reachable nodes wrongly declared dead during the phase.
    pub false_detections: u64,
    /// The graph at the end.
    pub after: GraphReport,
}

/// Whole-run counters.
#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    /// Virtual time simulated.
    pub virtual_ms: f64,
    /// Events processed.
    pub events: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Datagrams handed to nodes.
    pub delivered: u64,
    /// Datagrams lost by the loss model.
    pub lost: u64,
    /// Datagrams duplicated.
    pub duplicated: u64,
    /// Datagrams dropped at a partition.
    pub partitioned: u64,
    /// Datagrams that reached a dead node.
    pub to_dead: u64,
    /// Bytes sent (only with `--wire`).
    pub bytes_sent: Option<u64>,
    /// Full invariant sweeps done (cheap checks run after every event).
    pub invariant_sweeps: u64,
    /// What the live nodes hold at the end (mean and largest table sizes).
    pub state: StateReport,
}

/// Mean and largest sizes of the tables that grow with what a node hears of
/// the network (the others are bounded by the neighbour count).
#[derive(Clone, Debug, Default, Serialize)]
pub struct StateReport {
    /// Neighbour lists known (mean, max).
    pub topology: (f64, usize),
    /// Info items held.
    pub info: (f64, usize),
    /// Signers whose sequence number is remembered.
    pub signed_seqs: (f64, usize),
    /// Remembered dead nodes.
    pub tombstones: (f64, usize),
    /// Passive peers.
    pub passive: (f64, usize),
    /// Announced-but-missing items.
    pub missing: (f64, usize),
}

fn state_report(sim: &Sim) -> StateReport {
    let sizes: Vec<_> = sim.live_slots().into_iter().filter_map(|s| sim.node(s)).map(|n| n.table_sizes()).collect();
    let stat = |f: &dyn Fn(&ryx_core::node::TableSizes) -> usize| {
        let max = sizes.iter().map(f).max().unwrap_or(0);
        let mean = sizes.iter().map(f).sum::<usize>() as f64 / sizes.len().max(1) as f64;
        ((mean * 10.0).round() / 10.0, max)
    };
    StateReport {
        topology: stat(&|t| t.topology),
        info: stat(&|t| t.info),
        signed_seqs: stat(&|t| t.signed_seqs),
        tombstones: stat(&|t| t.tombstones),
        passive: stat(&|t| t.passive),
        missing: stat(&|t| t.missing),
    }
}

/// The summary of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Scenario run.
    pub scenario: &'static str,
    /// Nodes simulated.
    pub nodes: usize,
    /// Seed.
    pub seed: u64,
    /// Loss probability.
    pub loss: f64,
    /// Duplication probability.
    pub dup: f64,
    /// Discovery the nodes used.
    pub discovery: &'static str,
    /// Whether datagrams went through the wire codec.
    pub wire: bool,
    /// The command that replays this run.
    pub command: String,
    /// The join phase every scenario starts with.
    pub join: JoinReport,
    /// Idle traffic after join.
    pub idle: Option<IdleReport>,
    /// Spread figures.
    pub spread: Option<SpreadReport>,
    /// Crash figures.
    pub crash: Option<CrashReport>,
    /// Partition figures.
    pub partition: Option<PartitionReport>,
    /// Pause figures.
    pub pause: Option<PauseReport>,
    /// Churn figures.
    pub churn: Option<ChurnReport>,
    /// Job figures.
    pub job: Option<crate::work::JobRunReport>,
    /// Query scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<crate::query::QueryReport>,
    /// Monitor scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor: Option<crate::monitor::MonitorReport>,
    /// Alerts scenario.
    pub alerts: Option<crate::alerts::AlertsReport>,
    /// Learn scenario.
    pub learn: Option<crate::learn::LearnReport>,
    /// Topology scenario.
    pub topology: Option<crate::topo::TopologyReport>,
    /// Balance scenario.
    pub balance: Option<crate::balance::BalanceReport>,
    /// What Byzantine nodes did (with `--byzantine`).
    pub attacks: Option<crate::byzantine::AttackReport>,
    /// Live, reachable nodes declared dead over the whole run.
    pub false_detections: u64,
    /// Whole-run counters.
    pub totals: Totals,
    /// Wall-clock time of the run (the only figure not fixed by the seed).
    pub wall_ms: u64,
}

fn ms(d_us: u64) -> f64 {
    d_us as f64 / 1000.0
}

fn since_ms(t: Time, t0: Time) -> f64 {
    ms(t.as_micros().saturating_sub(t0.as_micros()))
}

/// Runs the experiment `p` describes.
pub fn run(p: &Params) -> Result<Report, Failure> {
    let wall = std::time::Instant::now();
    let mut sim = Sim::new(p.clone());
    let fail = |v: Violation| Failure { violation: v, command: p.command() };
    let join = join_phase(&mut sim).map_err(fail)?;
    let mut report = Report {
        scenario: p.scenario.name(),
        nodes: p.nodes,
        seed: p.seed,
        loss: p.loss,
        dup: p.dup,
        discovery: match p.discovery_mode() {
            Discovery::Broadcast => "broadcast",
            Discovery::SeedNodes => "seed-nodes",
        },
        wire: p.wire,
        command: p.command(),
        join,
        idle: None,
        spread: None,
        crash: None,
        partition: None,
        pause: None,
        churn: None,
        job: None,
        query: None,
        monitor: None,
        alerts: None,
        learn: None,
        topology: None,
        balance: None,
        attacks: None,
        false_detections: 0,
        totals: totals(&sim),
        wall_ms: 0,
    };
    if p.scenario != Scenario::Join || p.idle_ms > 0 {
        sim.run_for(Duration::from_millis(p.settle_ms)).map_err(fail)?;
    }
    if p.idle_ms > 0 {
        report.idle = Some(idle_phase(&mut sim, p.idle_ms).map_err(fail)?);
    }
    match p.scenario {
        Scenario::Join => {}
        Scenario::Spread => report.spread = Some(spread_phase(&mut sim).map_err(fail)?),
        Scenario::Crash => report.crash = Some(crash_phase(&mut sim).map_err(fail)?),
        Scenario::Partition => report.partition = Some(partition_phase(&mut sim).map_err(fail)?),
        Scenario::Pause => report.pause = Some(pause_phase(&mut sim).map_err(fail)?),
        Scenario::Churn => report.churn = Some(churn_phase(&mut sim).map_err(fail)?),
        Scenario::Job => report.job = Some(crate::work::job_phase(&mut sim).map_err(fail)?),
        Scenario::Query => report.query = Some(crate::query::query_phase(&mut sim).map_err(fail)?),
        Scenario::Monitor => report.monitor = Some(crate::monitor::monitor_phase(&mut sim).map_err(fail)?),
        Scenario::Alerts => report.alerts = Some(crate::alerts::alerts_phase(&mut sim).map_err(fail)?),
        Scenario::Learn => report.learn = Some(crate::learn::learn_phase(&mut sim).map_err(fail)?),
        Scenario::Topology => report.topology = Some(crate::topo::topology_phase(&mut sim).map_err(fail)?),
        Scenario::Balance => report.balance = Some(crate::balance::balance_phase(&mut sim).map_err(fail)?),
    }
    sim.full_check().map_err(fail)?;
    if sim.byz.is_some() {
        // The honest nodes must form one network by their own links (a
        // heal, say, may be bridged by Byzantine nodes at first; long-link
        // rotation then joins the honest halves directly).
        let deadline = sim.now().plus(Duration::from_secs(60));
        let joined =
            sim.run_until(deadline, Some(Duration::from_millis(100)), |s| s.honest_components() <= 1).map_err(fail)?;
        if joined.is_none() {
            let v = sim.violation(None, "Byzantine nodes split the honest nodes apart for a minute".into());
            return Err(fail(v));
        }
    }
    if let Some(a) = sim.attack_report() {
        report.attacks = Some(a);
    }
    report.false_detections = sim.stats.false_detections;
    report.totals = totals(&sim);
    report.wall_ms = wall.elapsed().as_millis() as u64;
    Ok(report)
}

fn totals(sim: &Sim) -> Totals {
    let s = &sim.stats;
    Totals {
        virtual_ms: ms(sim.now().as_micros()),
        events: s.events,
        messages_sent: s.sent.iter().sum(),
        delivered: s.delivered,
        lost: s.lost,
        duplicated: s.duplicated,
        partitioned: s.partitioned,
        to_dead: s.to_dead,
        bytes_sent: sim.p.wire.then_some(s.bytes_sent),
        invariant_sweeps: s.full_checks,
        state: state_report(sim),
    }
}

/// The graph as it is now.
pub fn graph_report(sim: &mut Sim) -> GraphReport {
    let now = sim.now();
    let components = sim.components(false);
    let live = sim.live_slots();
    let mut lists: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
    let (mut dmin, mut dmax, mut dsum, mut long) = (usize::MAX, 0, 0, 0);
    for &s in &live {
        if let Some(n) = sim.node(s) {
            let nb = n.neighbors(now);
            let d = sim.live_degree(s);
            dmin = dmin.min(d);
            dmax = dmax.max(d);
            dsum += d;
            if nb.iter().any(|x| x.long) {
                long += 1;
            }
            lists.insert(n.id(), nb.iter().map(|x| x.node_id).collect());
        }
    }
    let (mut links, mut sym) = (0usize, 0usize);
    for (a, l) in &lists {
        for b in l {
            if let Some(back) = lists.get(b) {
                links += 1;
                if back.contains(a) {
                    sym += 1;
                }
            }
        }
    }
    let n = live.len().max(1) as f64;
    GraphReport {
        connected: components <= 1,
        components,
        live: live.len(),
        degree_min: if live.is_empty() { 0 } else { dmin },
        degree_mean: dsum as f64 / n,
        degree_max: dmax,
        long_link_fraction: long as f64 / n,
        link_symmetry: if links == 0 { 1.0 } else { sym as f64 / links as f64 },
    }
}

fn join_phase(sim: &mut Sim) -> Result<JoinReport, Violation> {
    sim.start_all(Duration::from_millis(100));
    let n = sim.p.nodes;
    // A network of fewer than min_active + 1 nodes cannot give everyone
    // min_active neighbours: then everyone needs all the others.
    let need = sim.node_config().min_active.min(n.saturating_sub(1));
    sim.set_need(need);
    let deadline = Time::from_millis(sim.p.max_ms);
    let t =
        sim.run_until(deadline, Some(Duration::from_millis(10)), |s| s.live == n && s.deficient == 0 && s.connected())?;
    Ok(JoinReport { join_ms: t.map(|t| since_ms(t, Time::ZERO)), graph: graph_report(sim) })
}

fn idle_phase(sim: &mut Sim, window_ms: u64) -> Result<IdleReport, Violation> {
    let before = sim.sent_by_kind();
    let bytes_before = sim.stats.bytes_sent;
    sim.run_for(Duration::from_millis(window_ms))?;
    let after = sim.sent_by_kind();
    let denom = sim.live.max(1) as f64 * (window_ms as f64 / 1000.0);
    let mut by_kind = BTreeMap::new();
    let mut total = 0;
    for (i, kind) in Message::KINDS.iter().enumerate() {
        let d = after[i] - before[i];
        total += d;
        if d > 0 {
            by_kind.insert(*kind, d as f64 / denom);
        }
    }
    Ok(IdleReport {
        window_ms,
        msgs_per_node_per_s: total as f64 / denom,
        bytes_per_node_per_s: sim.p.wire.then(|| (sim.stats.bytes_sent - bytes_before) as f64 / denom),
        by_kind,
    })
}

fn random_live(sim: &mut Sim) -> usize {
    let live = sim.live_slots();
    live[sim.ctl.below(live.len())]
}

fn item_report(t: &Tracked, energy: f64) -> ItemReport {
    let n = t.live.max(1) as f64;
    let reached = t.count.saturating_sub(1).max(1) as f64; // the origin got no copy
    let announce = t.ihave_sent + t.graft_sent + t.prune_sent;
    ItemReport {
        energy,
        t50_ms: t.t50.map(ms),
        t99_ms: t.t99.map(ms),
        t100_ms: t.t100.map(ms),
        coverage: t.count as f64 / n,
        payload_msgs_per_node: t.payload_sent as f64 / n,
        sync_payload_msgs_per_node: t.sync_sent as f64 / n,
        announce_msgs_per_node: announce as f64 / n,
        ihave_per_node: t.ihave_sent as f64 / n,
        graft_per_node: t.graft_sent as f64 / n,
        prune_per_node: t.prune_sent as f64 / n,
        duplicate_ratio: (t.payload_received as f64 - (t.count.saturating_sub(1)) as f64).max(0.0) / reached,
        max_hops: t.max_hops,
    }
}

/// Injects one tracked item and waits until it reached everyone (or the
/// bound), then lets stragglers and announcements drain for `tail`.
fn spread_one(
    sim: &mut Sim,
    key: &str,
    energy: Option<f64>,
    wait: Duration,
    tail: Duration,
) -> Result<usize, Violation> {
    let origin = random_live(sim);
    sim.put(origin, key, serde_json::json!(key), energy, true)?;
    let idx = sim.tracked.len() - 1;
    let deadline = sim.now().plus(wait);
    sim.run_until(deadline, None, |s| s.tracked[idx].t100.is_some())?;
    sim.run_for(tail)?;
    Ok(idx)
}

fn spread_phase(sim: &mut Sim) -> Result<SpreadReport, Violation> {
    let default_energy = sim.node_config().default_energy;
    let wait = Duration::from_millis(sim.p.max_ms.min(30_000));
    let tail = Duration::from_secs(1);
    let first_idx = spread_one(sim, "spread-0", None, wait, tail)?;
    let first = item_report(&sim.tracked[first_idx], default_energy);
    let mut series = None;
    if sim.p.items > 0 {
        let mut reports = Vec::new();
        for k in 1..=sim.p.items {
            let idx = spread_one(sim, &format!("spread-{k}"), None, wait, tail)?;
            reports.push(item_report(&sim.tracked[idx], default_energy));
        }
        let m = reports.len() as f64;
        let t100: Vec<f64> = reports.iter().filter_map(|r| r.t100_ms).collect();
        let all = t100.len() == reports.len();
        series = Some(SeriesReport {
            items: reports.len(),
            all_reached: all,
            t100_ms_mean: all.then(|| t100.iter().sum::<f64>() / m),
            t100_ms_max: all.then(|| t100.iter().cloned().fold(0.0, f64::max)),
            payload_msgs_per_node: reports.iter().map(|r| r.payload_msgs_per_node).sum::<f64>() / m,
            announce_msgs_per_node: reports.iter().map(|r| r.announce_msgs_per_node).sum::<f64>() / m,
            duplicate_ratio: reports.iter().map(|r| r.duplicate_ratio).sum::<f64>() / m,
            payload_per_item: reports.iter().map(|r| r.payload_msgs_per_node).collect(),
        });
    }
    let sweep_window = Duration::from_secs(3);
    let mut sweep = Vec::new();
    let energies: Vec<f64> =
        sim.p.energies.iter().copied().filter(|e| *e > 0.0 && *e <= sim.node_config().max_energy).collect();
    for e in energies {
        let key = format!("energy-{e}");
        let origin = random_live(sim);
        sim.put(origin, &key, serde_json::json!(e), Some(e), true)?;
        let idx = sim.tracked.len() - 1;
        sim.run_for(sweep_window)?;
        let t = &sim.tracked[idx];
        let r = item_report(t, e);
        sweep.push(EnergyPoint {
            energy: e,
            reach_hops: sim.node_config().energy.reach(e),
            coverage: r.coverage,
            max_hops: r.max_hops,
            payload_msgs_per_node: r.payload_msgs_per_node,
            last_delivery_ms: Some(ms(t.last_delivery)),
        });
    }
    Ok(SpreadReport {
        t50_ms: first.t50_ms,
        t99_ms: first.t99_ms,
        t100_ms: first.t100_ms,
        coverage: first.coverage,
        payload_msgs_per_node: first.payload_msgs_per_node,
        announce_msgs_per_node: first.announce_msgs_per_node,
        duplicate_ratio: first.duplicate_ratio,
        first,
        series,
        energy_sweep: sweep,
        sweep_window_ms: sweep_window.as_millis() as u64,
    })
}

fn pick_victims(sim: &mut Sim, count: usize, exclude_seeds: bool) -> Vec<usize> {
    let seeds = if exclude_seeds && sim.p.discovery_mode() == Discovery::SeedNodes { 3 } else { 0 };
    let mut live: Vec<usize> = sim.live_slots().into_iter().filter(|&s| s >= seeds).collect();
    sim.ctl.shuffle(&mut live);
    live.truncate(count);
    live.sort_unstable();
    live
}

fn crash_phase(sim: &mut Sim) -> Result<CrashReport, Violation> {
    let count = ((sim.live as f64) * sim.p.kill_fraction()).round() as usize;
    let victims = pick_victims(sim, count, false);
    let fd0 = sim.stats.false_detections;
    let td0 = sim.stats.true_detections;
    sim.crash_many(&victims);
    let survivors = sim.live;
    let need = sim.node_config().min_active.min(survivors.saturating_sub(1));
    sim.set_need(need);
    let connected_at_kill = sim.connected();
    let t0 = sim.now();
    let deadline = t0.plus(Duration::from_millis(sim.p.max_ms));
    let (mut detect, mut repair, mut conn) = (None, None, None);
    let mut last_cc = Time::ZERO;
    let step = Duration::from_millis(10);
    sim.run_until(deadline, None, |s| {
        let now = s.now();
        if detect.is_none() && s.dead_links == 0 {
            detect = Some(now);
        }
        if repair.is_none() && s.deficient == 0 {
            repair = Some(now);
        }
        if conn.is_none() && now >= last_cc.plus(step) {
            last_cc = now;
            if s.connected() {
                conn = Some(now);
            }
        }
        detect.is_some() && repair.is_some() && conn.is_some()
    })?;
    sim.run_for(Duration::from_secs(2))?;
    let after = graph_report(sim);
    Ok(CrashReport {
        killed: victims.len(),
        survivors,
        connected_at_kill,
        detect_ms: detect.map(|t| since_ms(t, t0)),
        repair_ms: repair.map(|t| since_ms(t, t0)),
        connected_ms: conn.map(|t| since_ms(t, t0)),
        connected: after.connected,
        false_detections: sim.stats.false_detections - fd0,
        true_detections: sim.stats.true_detections - td0,
        after,
    })
}

/// Whether every live node holds `key` at exactly `(version, origin)`.
fn all_hold(sim: &Sim, key: &str, want: (u64, NodeId)) -> bool {
    sim.live_slots()
        .into_iter()
        .all(|s| sim.node(s).and_then(|n| n.info(key)).is_some_and(|i| (i.version, i.origin) == want))
}

fn partition_phase(sim: &mut Sim) -> Result<PartitionReport, Violation> {
    let n = sim.p.nodes;
    let mut order: Vec<usize> = (0..n).collect();
    sim.ctl.shuffle(&mut order);
    let mut seg = vec![0u8; n];
    for &s in &order[n / 2..] {
        seg[s] = 1;
    }
    let sides = [
        (0..n).filter(|&s| seg[s] == 0 && sim.is_alive(s)).count(),
        (0..n).filter(|&s| seg[s] == 1 && sim.is_alive(s)).count(),
    ];
    let fd0 = sim.stats.false_detections;
    let pd0 = sim.stats.partition_detections;
    sim.set_segments(&seg);
    let t0 = sim.now();
    let heal_at = t0.plus(Duration::from_millis(sim.p.partition_ms));
    let write_at = t0.plus(Duration::from_millis(sim.p.partition_ms.min(10_000) / 10));
    let split = sim.run_until(write_at, None, |s| s.cross_links == 0)?;
    sim.run_until(write_at, Some(Duration::from_secs(3600)), |_| false)?;
    // Write on both sides: one key each, and one key on both (last writer
    // wins must pick the same version everywhere after the heal).
    let mut writes = Vec::new();
    for side in 0..2u8 {
        let on_side: Vec<usize> = sim.live_slots().into_iter().filter(|&s| sim.segment(s) == side).collect();
        if on_side.is_empty() {
            continue;
        }
        let a = on_side[sim.ctl.below(on_side.len())];
        let key = format!("side-{side}");
        let v = sim.put(a, &key, serde_json::json!(side), None, false)?;
        writes.push((key, (v, sim.id_of(a))));
        let b = on_side[sim.ctl.below(on_side.len())];
        let v = sim.put(b, "contested", serde_json::json!(side), None, false)?;
        writes.push(("contested".to_string(), (v, sim.id_of(b))));
    }
    let mut split_detect = split;
    if split_detect.is_none() {
        split_detect = sim.run_until(heal_at, None, |s| s.cross_links == 0)?;
    }
    sim.run_until(heal_at, Some(Duration::from_secs(3600)), |_| false)?;
    let sides_connected = sim.components(true) <= 2;
    let mut side_coverage = [0.0; 2];
    for (side, cov) in side_coverage.iter_mut().enumerate() {
        let on_side: Vec<usize> = sim.live_slots().into_iter().filter(|&s| sim.segment(s) as usize == side).collect();
        let key = format!("side-{side}");
        let have = on_side.iter().filter(|&&s| sim.node(s).and_then(|n| n.info(&key)).is_some()).count();
        *cov = have as f64 / on_side.len().max(1) as f64;
    }
    // Heal.
    sim.set_segments(&vec![0u8; n]);
    let t1 = sim.now();
    let deadline = t1.plus(Duration::from_millis(sim.p.max_ms));
    let remerge = sim.run_until(deadline, Some(Duration::from_millis(100)), |s| s.connected())?;
    let mut expected: BTreeMap<String, (u64, NodeId)> = BTreeMap::new();
    for (k, v) in writes {
        let e = expected.entry(k).or_insert(v);
        if v > *e {
            *e = v;
        }
    }
    let converge = sim
        .run_until(deadline, Some(Duration::from_millis(100)), |s| expected.iter().all(|(k, v)| all_hold(s, k, *v)))?;
    let after = graph_report(sim);
    Ok(PartitionReport {
        sides,
        split_detect_ms: split_detect.map(|t| since_ms(t, t0)),
        sides_connected,
        side_coverage,
        remerge_ms: remerge.map(|t| since_ms(t, t1)),
        converge_ms: converge.map(|t| since_ms(t, t1)),
        converged: converge.is_some(),
        false_detections: sim.stats.false_detections - fd0,
        partition_detections: sim.stats.partition_detections - pd0,
        after,
    })
}

fn pause_phase(sim: &mut Sim) -> Result<PauseReport, Violation> {
    let s = random_live(sim);
    let before = sim.live_degree(s);
    let fd0 = sim.stats.false_detections;
    let fs0 = sim.stats.false_suspicions;
    let pause = Duration::from_millis(sim.p.pause_ms);
    sim.pause(s, pause);
    let resume = sim.now().plus(pause);
    // Step just past the resume to read the paused node's local health.
    sim.run_until(resume.plus(Duration::from_micros(1)), Some(Duration::from_secs(3600)), |_| false)?;
    let health = sim.node(s).map_or(0, |n| n.status(resume).local_health);
    sim.run_for(Duration::from_secs(5))?;
    Ok(PauseReport {
        pause_ms: sim.p.pause_ms,
        neighbors_before: before,
        neighbors_after: sim.live_degree(s),
        false_detections: sim.stats.false_detections - fd0,
        false_suspicions: sim.stats.false_suspicions - fs0,
        local_health_after_resume: health,
    })
}

fn churn_phase(sim: &mut Sim) -> Result<ChurnReport, Violation> {
    let fd0 = sim.stats.false_detections;
    let per_round = ((sim.live as f64) * 0.01).ceil().max(1.0) as usize;
    let round = Duration::from_millis(500);
    let end = sim.now().plus(Duration::from_millis(sim.p.churn_ms));
    let (mut crashes, mut restarts) = (0, 0);
    let mut down: Vec<usize> = Vec::new();
    while sim.now() < end {
        for s in std::mem::take(&mut down) {
            sim.restart(s)?;
            restarts += 1;
        }
        let victims = pick_victims(sim, per_round, true);
        sim.crash_many(&victims);
        crashes += victims.len();
        down = victims;
        sim.run_for(round)?;
    }
    for s in down {
        sim.restart(s)?;
        restarts += 1;
    }
    let need = sim.node_config().min_active;
    sim.set_need(need);
    let t0 = sim.now();
    let n = sim.p.nodes;
    let deadline = t0.plus(Duration::from_millis(sim.p.max_ms));
    let rec = sim.run_until(deadline, Some(Duration::from_millis(10)), |s| {
        s.live == n && s.deficient == 0 && s.dead_links == 0 && s.connected()
    })?;
    let after = graph_report(sim);
    Ok(ChurnReport {
        crashes,
        restarts,
        recover_ms: rec.map(|t| since_ms(t, t0)),
        false_detections: sim.stats.false_detections - fd0,
        after,
    })
}

fn opt(v: Option<f64>) -> String {
    v.map_or("never".into(), |x| format!("{x:.1} ms"))
}

impl Report {
    /// A short human-readable summary.
    pub fn human(&self) -> String {
        let mut o = String::new();
        let mut line = |s: String| {
            o.push_str(&s);
            o.push('\n');
        };
        line(format!(
            "ryx-sim {}: {} nodes, seed {}, loss {}, dup {}, discovery {}{}",
            self.scenario,
            self.nodes,
            self.seed,
            self.loss,
            self.dup,
            self.discovery,
            if self.wire { ", wire" } else { "" }
        ));
        let g = &self.join.graph;
        line(format!(
            "join: {} | connected {} | degree {}/{:.2}/{} | long links {:.0}% | symmetry {:.1}%",
            opt(self.join.join_ms),
            g.connected,
            g.degree_min,
            g.degree_mean,
            g.degree_max,
            g.long_link_fraction * 100.0,
            g.link_symmetry * 100.0
        ));
        if let Some(i) = &self.idle {
            let mut kinds: Vec<(&&str, &f64)> = i.by_kind.iter().collect();
            kinds.sort_by(|a, b| b.1.total_cmp(a.1));
            let top: Vec<String> = kinds.iter().take(5).map(|(k, v)| format!("{k} {v:.1}")).collect();
            line(format!("idle: {:.1} msgs/node/s ({})", i.msgs_per_node_per_s, top.join(", ")));
        }
        if let Some(s) = &self.spread {
            line(format!(
                "spread: t50 {} | t99 {} | t100 {} | coverage {:.1}% | payload {:.2}/node | announce {:.2}/node | dup ratio {:.2}",
                opt(s.t50_ms),
                opt(s.t99_ms),
                opt(s.t100_ms),
                s.coverage * 100.0,
                s.payload_msgs_per_node,
                s.announce_msgs_per_node,
                s.duplicate_ratio
            ));
            if let Some(r) = &s.series {
                line(format!(
                    "series of {}: all reached {} | t100 mean {} max {} | payload {:.2}/node/item | announce {:.2}/node/item | dup ratio {:.2}",
                    r.items,
                    r.all_reached,
                    opt(r.t100_ms_mean),
                    opt(r.t100_ms_max),
                    r.payload_msgs_per_node,
                    r.announce_msgs_per_node,
                    r.duplicate_ratio
                ));
            }
            for e in &s.energy_sweep {
                line(format!(
                    "  energy {:>6}: reach {:>2} hops | coverage {:5.1}% | max hops {} | payload {:.2}/node",
                    e.energy,
                    e.reach_hops,
                    e.coverage * 100.0,
                    e.max_hops,
                    e.payload_msgs_per_node
                ));
            }
        }
        if let Some(c) = &self.crash {
            line(format!(
                "crash: killed {} of {} | detect {} | repair {} | connected {} ({}) | false detections {}",
                c.killed,
                c.killed + c.survivors,
                opt(c.detect_ms),
                opt(c.repair_ms),
                c.connected,
                opt(c.connected_ms),
                c.false_detections
            ));
        }
        if let Some(p) = &self.partition {
            line(format!(
                "partition: sides {:?} | split detected {} | sides connected {} | remerge {} | converged {} ({}) | false detections {}",
                p.sides,
                opt(p.split_detect_ms),
                p.sides_connected,
                opt(p.remerge_ms),
                p.converged,
                opt(p.converge_ms),
                p.false_detections
            ));
        }
        if let Some(p) = &self.pause {
            line(format!(
                "pause: {} ms | neighbours {} -> {} | false detections {} | false suspicions {} | local health {}",
                p.pause_ms,
                p.neighbors_before,
                p.neighbors_after,
                p.false_detections,
                p.false_suspicions,
                p.local_health_after_resume
            ));
        }
        if let Some(c) = &self.churn {
            line(format!(
                "churn: {} crashes, {} restarts | recovered {} | false detections {}",
                c.crashes,
                c.restarts,
                opt(c.recover_ms),
                c.false_detections
            ));
        }
        if let Some(q) = &self.query {
            let depth = q.waves.iter().map(|w| w.depth).max().unwrap_or(0);
            let ecc = q.waves.iter().map(|w| w.eccentricity).max().unwrap_or(0);
            line(format!(
                "query: {} of {} queries answered by every node once ({} by the tree alone) | messages/node max {:.2} | wave depth max {depth} (eccentricity max {ecc}), hops/(2 x eccentricity) max {:.2} | p50 {:.1} ms",
                q.complete, q.queries, q.by_tree, q.max_msgs_per_node, q.max_hops_over_2depth, q.p50_ms
            ));
        }
        if let Some(m) = &self.monitor {
            let opt_r = |r: Option<u32>| r.map_or("never".to_string(), |r| r.to_string());
            for f in m
                .rounds
                .iter()
                .filter(|f| [1, 5, 10, 15, 20, 30, 40, 60, 90].contains(&f.round) || f.round as usize == m.rounds.len())
            {
                line(format!(
                    "monitor round {:>3}: {} live | mean error max {:.2e} p99 {:.2e} p50 {:.2e} | count error max {:.2e} | mass error {:.2e} | reported error max {:.2e}",
                    f.round, f.live, f.max_err, f.p99_err, f.p50_err, f.count_max_err, f.mass_err, f.max_reported_err
                ));
            }
            line(format!(
                "monitor: every node within 1e-3 after {} rounds, within 1% after {} | mass error once exchanges landed {:.1e} | churned {} | agg {:.2} msgs, {:.0} bytes per node per round | rack count {} | lag p50 sketch error (median node) {:.3}",
                opt_r(m.rounds_to_1e3),
                opt_r(m.rounds_to_1pct),
                m.settled_mass_err,
                m.churned,
                m.agg_msgs_per_node_round,
                m.agg_bytes_per_node_round,
                m.group_count.as_ref().map_or("-".into(), |(v, n, e)| format!("{v}: {n}, largest error {e:.2e}")),
                m.p50_sketch_err
            ));
        }
        if let Some(i) = self.monitor.as_ref().and_then(|m| m.incident.as_ref()) {
            line(format!(
                "incident: {} ({} nodes{}{}) killed | {} notification(s), {} other ({} before the kill) | {} members when raised, {} at the end | raised {} (detection {:.0} ms) | named by {} of {} live nodes",
                i.group,
                i.killed,
                if i.leader_killed { ", the tree's leader among them" } else { "" },
                if i.already_firing { ", its incident firing already" } else { "" },
                i.notifications,
                i.other_notifications,
                i.earlier_notifications,
                i.members,
                i.final_members,
                opt(i.raised_ms),
                i.suspicion_ms,
                i.named,
                i.live
            ));
        }
        if let Some(l) = &self.learn {
            for f in &l.cycles {
                line(format!(
                    "learn: cycle {:>4} | test accuracy mean {:.4} lowest {:.4} | hold-out estimate {} | {:.0} bytes per node",
                    f.cycle,
                    f.mean,
                    f.min,
                    f.estimated.map_or("-".into(), |a| format!("{a:.4}")),
                    f.bytes_per_node
                ));
            }
            let opt = |c: Option<u32>| c.map_or("never".into(), |c| format!("cycle {c}"));
            line(format!(
                "learn: {} training rows on the nodes, {} test rows, {} features, {} classes | reference (one process, all rows) {:.4}, after as many steps of the task's step and momentum {:.4} | within 1 point: {} | within 3 points: {} | bytes per node to 95 % of the reference: {} | churned {} | tracker mass error {:.1e}",
                l.train_rows,
                l.test_rows,
                l.features,
                l.classes,
                l.reference,
                l.same_steps,
                opt(l.within_1pt),
                opt(l.within_3pt),
                l.bytes_to_95pct.map_or("-".into(), |b| format!("{b:.0}")),
                l.churned,
                l.mass_err
            ));
        }
        if let Some(b) = &self.balance {
            for p in b.points.iter().filter(|p| p.round % 5 == 0 || p.round <= 3) {
                line(format!(
                    "balance: round {:>3} | max/fair {:.3} | min/fair {:.3} | moves {}",
                    p.round, p.max_over_fair, p.min_over_fair, p.moves
                ));
            }
            let share = |x: u64| 100.0 * x as f64 / b.moves.max(1) as f64;
            let shares: Vec<String> = b.share_by_cap.iter().map(|(c, s)| format!("capacity {c}: {s:.3}")).collect();
            line(format!(
                "balance: {} tokens at {} of {} nodes ({} links, farthest node {} hops from a source) | max/fair ≤ 1.05 after {} rounds | moves {} = {:.2}× the lower bound {} | sent back {} ({:.2} %), against an earlier flow {} ({:.2} %) | load/fair by capacity {}",
                b.tokens,
                b.sources,
                b.nodes,
                b.links,
                b.farthest_from_source,
                b.rounds_to_1_05.map_or("-".into(), |r| r.to_string()),
                b.moves,
                b.moves as f64 / b.lower_bound.max(1) as f64,
                b.lower_bound,
                b.returns,
                share(b.returns),
                b.reversals,
                share(b.reversals),
                shares.join(", ")
            ));
        }
        if let Some(t) = &self.topology {
            let f = |v: Option<f64>| v.map_or("-".into(), |x| format!("{:.1} %", 100.0 * x));
            for p in &t.points {
                line(format!(
                    "topology: {:>5.0} s | coordinates' error median {} p90 {} ({} samples a node) | links' mean RTT {:.2} ms (short {:.2}) | inside a site {} | long links {:.2} a node, {} inside a site | links formed {}",
                    p.at_s,
                    f(p.coord_err_median),
                    f(p.coord_err_p90),
                    p.samples_median,
                    p.link_rtt_ms,
                    p.short_rtt_ms,
                    f(p.inside_site),
                    p.long_per_node,
                    f(p.long_inside_site),
                    p.links_up
                ));
            }
            line(format!(
                "topology: {} sites | links' mean RTT {:.1} % below random pairs' {:.2} ms | diameter {} (bound 2·log5 N = {:.1}) | connected {} | links formed per node per minute (second half) {:.2} | coordinate samples refused {}, outliers {} of {} used",
                t.sites,
                100.0 * t.link_rtt_reduction,
                t.random_rtt_ms,
                t.diameter,
                t.diameter_bound,
                t.connected,
                t.link_churn_per_node_min,
                t.coords_refused,
                t.coords_outliers,
                t.coords_used
            ));
        }
        if let Some(a) = &self.alerts {
            let f = |v: Option<f64>, d: usize| v.map_or("-".into(), |x| format!("{x:.d$}"));
            line(format!(
                "alerts: {:.1} virtual minutes | {} stops ({} named dead), {} death incidents | {} slow + {} lossy nodes: precision {} recall {} (first named after {} s median, {} s at most; {} claims of them dead) | false claims {} (notifications {}) | notifications {:?}, {} duplicate | firing at the end {:?}",
                a.minutes,
                a.stops,
                a.stops_named,
                a.down_incidents,
                a.slow,
                a.lossy,
                f(a.precision, 3),
                f(a.recall, 3),
                f(a.detect_p50_s, 1),
                f(a.detect_max_s, 1),
                a.anomalous_named_dead,
                a.false_claims,
                a.false_notifications,
                a.notifications,
                a.duplicate_notifications,
                a.firing_at_end
            ));
            for e in &a.false_examples {
                line(format!("alerts: false claim: {e}"));
            }
        }
        if let Some(j) = &self.job {
            let f = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.1}"));
            line(format!(
                "job {}: {} units x{} ({:.0} MiB) | {} ({}) in {} | {} MiB/s ({} replica-MiB/s; one node {}) | scaling efficiency {}",
                j.kind,
                j.units,
                j.redundancy,
                j.input_mib,
                j.state,
                if j.digest_matches {
                    "digest matches the reference"
                } else if j.completed {
                    "DIGEST DIFFERS"
                } else {
                    "no result"
                },
                opt(j.job_ms),
                f(j.throughput_mib_per_s),
                f(j.replica_throughput_mib_per_s),
                f(j.single_node_mib_per_s),
                j.scaling_efficiency.map_or("-".into(), |e| format!("{:.1}%", e * 100.0)),
            ));
            line(format!(
                "  upload to 3 copies {} | killed {} at {} (home {}) | liars {} | slow {} | summary coverage {:.1}% (all in {}) | {}",
                opt(j.upload_ms),
                j.killed,
                j.killed_at_progress.map_or("-".into(), |x| format!("{:.0}%", x * 100.0)),
                if j.home_killed { "killed" } else { "alive" },
                j.liars,
                j.slow_nodes,
                j.summary_coverage * 100.0,
                opt(j.summary_reach_ms),
                j.stats.as_ref().map_or(String::new(), |s| format!(
                    "results {} reissued {} extra replicas {} disagreements {} workers {} takeovers {}",
                    s.results, s.reissued, s.extra_replicas, s.disagreements, s.workers, s.takeovers
                )),
            ));
            if let Some(sp) = &j.split {
                line(format!(
                    "  split at {:.0}%: sides {:?}, home on side {} | homes before heal {} | after {} | stepped down {} | one home, all agree {} after heal",
                    sp.at_progress * 100.0,
                    sp.sides,
                    sp.home_side,
                    sp.homes_before_heal,
                    sp.homes_after,
                    sp.stepped_down,
                    opt(sp.agreed_ms),
                ));
            }
        }
        if let Some(a) = &self.attacks {
            let sent: Vec<String> = a.sent.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let mut refused: Vec<(&&str, &u64)> = a.refused_by_honest.iter().collect();
            refused.sort_by(|x, y| y.1.cmp(x.1));
            let refused: Vec<String> = refused.iter().take(8).map(|(k, v)| format!("{k} {v}")).collect();
            line(format!(
                "byzantine: {} nodes sent {} | honest nodes refused {} | honest connected {}",
                a.nodes,
                sent.join(", "),
                refused.join(", "),
                a.honest_connected
            ));
        }
        line(format!(
            "totals: {:.0} ms virtual, {} events, {} messages, {} lost, false detections {}, {} ms wall",
            self.totals.virtual_ms,
            self.totals.events,
            self.totals.messages_sent,
            self.totals.lost,
            self.false_detections,
            self.wall_ms
        ));
        o
    }
}
