//! `measure`: the membership benchmark against real processes.

pub mod bench;
pub mod search_bench;
pub mod svg;

use crate::chaos;
use crate::cli::MeasureArgs;
use crate::cluster::graph::floor_for;
use crate::cluster::lifecycle::{secs, TempCluster};
use crate::cluster::nodebin;
use crate::cluster::procfs;
use crate::cluster::Cluster;
use crate::info;
use crate::interrupt;
use crate::util::{human, human_kib, table, time_seed, Amount, Rng};
use anyhow::{bail, Result};
use ryx_api::{Client, Http};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Polling period while timing info spread.
const INFO_POLL: Duration = Duration::from_millis(20);
/// Polling period while timing connection, detection and repair.
const GRAPH_POLL: Duration = Duration::from_millis(50);

/// Mean and maximum of a per-node figure.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default)]
pub struct Spread {
    /// Mean over nodes.
    pub mean: f64,
    /// Largest value.
    pub max: f64,
}

impl Spread {
    fn of(v: &[f64]) -> Option<Spread> {
        if v.is_empty() {
            return None;
        }
        Some(Spread { mean: v.iter().sum::<f64>() / v.len() as f64, max: v.iter().copied().fold(f64::MIN, f64::max) })
    }
}

/// Everything `measure` found. Times are seconds; `None` means "not
/// reached within the timeout" (or the phase was skipped).
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Measurement {
    /// Nodes started.
    pub nodes: usize,
    /// Nodes killed at once.
    pub killed: usize,
    /// Seed that chose the victims.
    pub seed: u64,
    /// From the first spawn until every node's API answered.
    pub spawn_s: f64,
    /// (a) From the first spawn until every node had >= min(4, N-1)
    /// neighbours and the graph was connected.
    pub connect_s: Option<f64>,
    /// (b) From the put until half the nodes held the item.
    pub info_half_s: Option<f64>,
    /// (b) From the put until every node held the item.
    pub info_full_s: Option<f64>,
    /// (b) Delivery latency in milliseconds as the receiving nodes measured
    /// it (ryx_diffusion_latency_seconds), over the nodes that got it.
    pub info_node_reported_ms: Option<Spread>,
    /// (b) Fraction of nodes holding the item at the end of the wait.
    pub info_coverage: f64,
    /// (b) Largest hop count at which a node received the item.
    pub info_max_hops: Option<u64>,
    /// (d) Idle CPU per node, percent of one core.
    pub idle_cpu_percent: Option<Spread>,
    /// (d) Resident memory per node, KiB.
    pub rss_kib: Option<Spread>,
    /// (d) UDP datagrams sent per node per second while idle.
    pub idle_datagrams_per_s: Option<Spread>,
    /// Seconds of idle sampling.
    pub idle_window_s: f64,
    /// Failures declared before any node was killed (all false).
    pub false_failures_before_kill: Option<u64>,
    /// Suspicions raised and refuted before the kill.
    pub suspicions_refuted_before_kill: Option<u64>,
    /// Survivors after the kill.
    pub survivors: usize,
    /// (c) From the kill until no survivor listed a dead neighbour.
    pub detect_s: Option<f64>,
    /// (c) From the kill until every survivor had >= min(4, survivors-1)
    /// live neighbours and the graph was connected.
    pub heal_s: Option<f64>,
    /// Survivors still holding the info item after healing.
    pub item_held_by_survivors: Option<usize>,
}

/// `ryx-cluster measure`.
pub fn measure(args: MeasureArgs) -> Result<()> {
    let node_bin = nodebin::locate(args.node.node_bin.as_deref())?;
    let n = usize::from(args.nodes);
    let seed = args.seed.unwrap_or_else(time_seed);
    let timeout = secs(args.timeout);
    let mut tc = TempCluster::create(None, node_bin, args.node_args.clone(), args.base_port, "measure")?;
    let log = |s: String| {
        if !args.json {
            out!("  … {s}");
        }
    };
    if !args.json {
        out!(
            "ryx-cluster measure: {n} nodes on loopback, kill {}, seed {seed} (run dir {})",
            args.kill,
            tc.cluster.dir.path().display()
        );
    }
    let mut m = Measurement { nodes: n, seed, idle_window_s: args.idle_secs, ..Measurement::default() };

    // (a) connection.
    let t0 = Instant::now();
    tc.spawn(n)?;
    m.spawn_s = t0.elapsed().as_secs_f64();
    log(format!("{n} nodes answering after {}", human(t0.elapsed())));
    m.connect_s = tc.cluster.wait_ready(timeout, GRAPH_POLL)?.map(|_| t0.elapsed().as_secs_f64());
    log(match m.connect_s {
        Some(s) => format!("connected after {}", human(Duration::from_secs_f64(s))),
        None => format!("not connected within {}", human(timeout)),
    });

    // (b) info spread.
    let key = format!("measure-{seed:x}");
    let origin = *tc.cluster.running().first().ok_or_else(|| anyhow::anyhow!("no running node"))?;
    let spread = time_info_spread(&tc.cluster, origin, &key, serde_json::json!("measure"), timeout)?;
    m.info_half_s = spread.half.map(|d| d.as_secs_f64());
    m.info_full_s = spread.full.map(|d| d.as_secs_f64());
    m.info_coverage = spread.coverage;
    m.info_max_hops = spread.max_hops;
    log(format!("info item reached {:.0}% of nodes", spread.coverage * 100.0));
    // The nodes time each delivery themselves (injection time travels with
    // the item; all nodes read the same system clock): finer than polling.
    let lat = delivery_latencies_ms(&tc.cluster, &tc.cluster.state.live_indices());
    m.info_node_reported_ms = Spread::of(&lat);

    // (d) idle CPU, traffic, memory: nobody is polled during the window.
    if !interrupt::sleep(Duration::from_secs(1)) {
        bail!("interrupted");
    }
    let running = tc.cluster.running();
    let before = metrics(&tc.cluster, &running, &["ryx_datagrams_sent_total"]);
    let ticks0: Vec<Option<u64>> = running.iter().map(|&i| procfs::cpu_ticks(tc.cluster.state.nodes[i].pid)).collect();
    let w0 = Instant::now();
    log(format!("sampling idle CPU for {}", human(secs(args.idle_secs))));
    if !interrupt::sleep(secs(args.idle_secs)) {
        bail!("interrupted");
    }
    let window = w0.elapsed().as_secs_f64();
    let ticks1: Vec<Option<u64>> = running.iter().map(|&i| procfs::cpu_ticks(tc.cluster.state.nodes[i].pid)).collect();
    let after = metrics(
        &tc.cluster,
        &running,
        &["ryx_datagrams_sent_total", "ryx_failures_detected_total", "ryx_suspicions_refuted_total"],
    );
    let hz = procfs::ticks_per_second() as f64;
    let cpu: Vec<f64> = ticks0
        .iter()
        .zip(&ticks1)
        .filter_map(|(a, b)| Some((*b)?.saturating_sub((*a)?) as f64 / hz / window * 100.0))
        .collect();
    m.idle_cpu_percent = Spread::of(&cpu);
    let rss: Vec<f64> =
        running.iter().filter_map(|&i| procfs::rss_kib(tc.cluster.state.nodes[i].pid)).map(|k| k as f64).collect();
    m.rss_kib = Spread::of(&rss);
    let rates: Vec<f64> = before
        .iter()
        .zip(&after)
        .filter_map(|(b, a)| Some((a.first()?.as_ref()? - b.first()?.as_ref()?) / window))
        .collect();
    m.idle_datagrams_per_s = Spread::of(&rates);
    let sum = |col: usize| -> Option<u64> {
        after.iter().map(|r| r.get(col).copied().flatten()).sum::<Option<f64>>().map(|v| v as u64)
    };
    m.false_failures_before_kill = sum(1);
    m.suspicions_refuted_before_kill = sum(2);

    // (c) failure detection and repair.
    let k = args.kill.of(running.len());
    if k > 0 && k < running.len() {
        let mut rng = Rng::new(seed);
        let quiet = args.json;
        let t_kill = Instant::now();
        let victims = if quiet {
            kill_quietly(&mut tc.cluster, args.kill, &mut rng)?
        } else {
            chaos::kill(&mut tc.cluster, args.kill, &mut rng, seed, "  … ")?
        };
        m.killed = victims.len();
        m.survivors = tc.cluster.running().len();
        m.detect_s = tc
            .cluster
            .wait_for(timeout, GRAPH_POLL, |h, _| h.dead_forgotten())?
            .map(|_| t_kill.elapsed().as_secs_f64());
        let left = timeout.saturating_sub(t_kill.elapsed());
        m.heal_s = tc.cluster.wait_ready(left, GRAPH_POLL)?.map(|_| t_kill.elapsed().as_secs_f64());
        let hs = info::holdings(&mut tc.cluster, &key);
        m.item_held_by_survivors = Some(hs.iter().filter(|h| h.item.is_some()).count());
    } else {
        m.survivors = running.len();
        if k >= running.len() && k > 0 {
            log(format!("--kill {} would kill every node; failure phase skipped", args.kill));
        }
    }

    let report = tc.stop()?;
    log(format!("stopped: {} on SIGTERM, {} needed SIGKILL", report.terminated, report.killed));
    drop(tc);
    if args.json {
        out!("{}", serde_json::to_string_pretty(&m)?);
    } else {
        out_raw!("{}", render(&m));
    }
    Ok(())
}

/// SIGKILLs without printing (for --json).
fn kill_quietly(cluster: &mut Cluster, amount: Amount, rng: &mut Rng) -> Result<Vec<usize>> {
    let live = cluster.live();
    let victims = rng.choose(&live, amount.of(live.len()));
    let mut killed = Vec::new();
    for i in victims {
        if cluster.kill(i)? {
            killed.push(i);
        }
    }
    cluster.save()?;
    Ok(killed)
}

/// How an info item spread.
#[derive(Debug, Clone, Copy)]
pub struct InfoSpread {
    /// From the put until half the nodes held it.
    pub half: Option<Duration>,
    /// From the put until every node held it.
    pub full: Option<Duration>,
    /// Fraction of nodes holding it at the end.
    pub coverage: f64,
    /// Nodes holding it at the end.
    pub holding: usize,
    /// Nodes asked.
    pub asked: usize,
    /// Largest hop count at which a node received it.
    pub max_hops: Option<u64>,
}

/// Puts `key` = `value` at node `origin` and polls every live node (one
/// thread each, every [`INFO_POLL`]) until it holds the item.
pub fn time_info_spread(
    cluster: &Cluster,
    origin: usize,
    key: &str,
    value: serde_json::Value,
    timeout: Duration,
) -> Result<InfoSpread> {
    let running: Vec<usize> = cluster.state.live_indices();
    let deadline = Instant::now() + timeout.min(Duration::from_secs(30));
    let abandon = AtomicBool::new(false);
    let abandon = &abandon;
    let results: Vec<Option<(Duration, Option<u64>)>> = std::thread::scope(|s| -> Result<_> {
        let pollers: Vec<_> = running
            .iter()
            .map(|&i| {
                let client =
                    Client::with_http(cluster.state.nodes[i].api(), Arc::new(Http::new(Duration::from_secs(1))));
                s.spawn(move || {
                    while Instant::now() < deadline && !interrupt::interrupted() && !abandon.load(Ordering::Relaxed) {
                        if let Ok(Some(item)) = client.info(key) {
                            return Some((Instant::now(), Some(u64::from(item.hops))));
                        }
                        std::thread::sleep(INFO_POLL);
                    }
                    None
                })
            })
            .collect();
        let t_put = Instant::now();
        let put = info::put_at(cluster, origin, key, value, None);
        if put.is_err() {
            abandon.store(true, Ordering::Relaxed);
        }
        let seen: Vec<Option<(Duration, Option<u64>)>> = pollers
            .into_iter()
            .map(|h| h.join().ok().flatten().map(|(at, hops)| (at.saturating_duration_since(t_put), hops)))
            .collect();
        put?;
        Ok(seen)
    })?;
    interrupt::check()?;
    let mut times: Vec<Duration> = results.iter().filter_map(|r| r.map(|(d, _)| d)).collect();
    times.sort_unstable();
    let n = running.len();
    Ok(InfoSpread {
        half: times.get(n.div_ceil(2).saturating_sub(1)).copied(),
        full: if times.len() == n { times.last().copied() } else { None },
        coverage: if n == 0 { 0.0 } else { times.len() as f64 / n as f64 },
        holding: times.len(),
        asked: n,
        max_hops: results.iter().filter_map(|r| r.and_then(|(_, h)| h)).max(),
    })
}

/// Mean delivery latency (ms) of the info items each node received, from
/// its `ryx_diffusion_latency_seconds` histogram; nodes that received none
/// (the origin) are left out.
pub fn delivery_latencies_ms(cluster: &Cluster, indices: &[usize]) -> Vec<f64> {
    let names = ["ryx_diffusion_latency_seconds_sum", "ryx_diffusion_latency_seconds_count"];
    metrics(cluster, indices, &names)
        .into_iter()
        .filter_map(|v| match (v.first().copied().flatten(), v.get(1).copied().flatten()) {
            (Some(sum), Some(count)) if count > 0.0 => Some(sum / count * 1000.0),
            _ => None,
        })
        .collect()
}

/// Reads the named counters from each node's /metrics (in parallel).
fn metrics(cluster: &Cluster, indices: &[usize], names: &[&str]) -> Vec<Vec<Option<f64>>> {
    let all = cluster.metrics(indices);
    all.iter().map(|m| names.iter().map(|name| m.as_ref().and_then(|m| m.value(name))).collect()).collect()
}

fn secs_text(s: Option<f64>) -> String {
    s.map(|v| human(Duration::from_secs_f64(v))).unwrap_or_else(|| "not reached".into())
}

/// The human-readable table.
pub fn render(m: &Measurement) -> String {
    let mut rows: Vec<Vec<String>> = vec![
        vec![format!("all {} node APIs answering (from first spawn)", m.nodes), secs_text(Some(m.spawn_s))],
        vec![
            format!("(a) connected: every node >= {} neighbours, graph connected", floor_for(m.nodes)),
            secs_text(m.connect_s),
        ],
        vec![
            format!("(b) info item put at one node reaches 50% / 100% (polled every {} ms)", INFO_POLL.as_millis()),
            format!(
                "{} / {}{}",
                secs_text(m.info_half_s),
                secs_text(m.info_full_s),
                m.info_max_hops.map(|h| format!(" (max {h} hops)")).unwrap_or_default()
            ),
        ],
    ];
    if let Some(l) = m.info_node_reported_ms {
        rows.push(vec![
            "    delivery latency as the nodes measured it".into(),
            format!("mean {:.1} ms, max {:.1} ms", l.mean, l.max),
        ]);
    }
    if m.info_full_s.is_none() {
        rows.push(vec!["    coverage reached".into(), format!("{:.0}%", m.info_coverage * 100.0)]);
    }
    let spread = |s: Option<Spread>, f: &dyn Fn(f64) -> String| {
        s.map(|s| format!("mean {}, max {}", f(s.mean), f(s.max))).unwrap_or_else(|| "-".into())
    };
    rows.push(vec![
        format!("(d) idle CPU per node over {:.0} s (% of a core)", m.idle_window_s),
        spread(m.idle_cpu_percent, &|v| format!("{v:.2}%")),
    ]);
    rows.push(vec!["(d) resident memory per node".into(), spread(m.rss_kib, &|v| human_kib(v as u64))]);
    rows.push(vec![
        "    idle UDP datagrams sent per node".into(),
        spread(m.idle_datagrams_per_s, &|v| format!("{v:.1}/s")),
    ]);
    rows.push(vec![
        "    failures declared before any kill (false)".into(),
        format!(
            "{} ({} suspicions refuted)",
            m.false_failures_before_kill.map_or("-".into(), |v| v.to_string()),
            m.suspicions_refuted_before_kill.map_or("-".into(), |v| v.to_string())
        ),
    ]);
    if m.killed > 0 {
        rows.push(vec![
            format!("(c) after SIGKILL of {}: no survivor lists a dead node", m.killed),
            secs_text(m.detect_s),
        ]);
        rows.push(vec![
            format!("(c) {} survivors >= {} live neighbours, connected", m.survivors, floor_for(m.survivors)),
            secs_text(m.heal_s),
        ]);
        if let Some(h) = m.item_held_by_survivors {
            rows.push(vec!["    info item still held by survivors".into(), format!("{h}/{}", m.survivors)]);
        }
    }
    table(&["measure", "result"], &rows)
}
