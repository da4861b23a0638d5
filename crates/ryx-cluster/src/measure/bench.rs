//! `bench`: the same job across cluster sizes (with and without kills),
//! side by side with `ryx-node exec` and Dask in the same run; a table, a
//! CSV and an SVG plot.

use crate::chaos;
use crate::cli::BenchArgs;
use crate::cluster::lifecycle::{secs, TempCluster};
use crate::cluster::nodebin;
use crate::cluster::procfs;
use crate::cluster::state::RunDir;
use crate::cluster::{check_node_args, par_map, Cluster};
use crate::interrupt;
use crate::jobs::run::{self, Source};
use crate::jobs::{self, reference, Follower, Reference};
use crate::measure::svg;
use crate::util::{clock_now, human, table, time_seed, Amount, Rng};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One measured configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    /// ryx, exec or dask.
    pub system: String,
    /// Cluster size (0 for the references).
    pub nodes: usize,
    /// Nodes killed mid-job.
    pub killed: usize,
    /// Wall time of the job (median of the runs).
    pub wall_s: f64,
    /// Input megabytes (10^6 bytes) per second of wall time.
    pub mb_per_s: f64,
    /// Wall time over the exec reference's.
    pub ratio_to_exec: Option<f64>,
    /// Units issued again (lease lapsed, worker died).
    pub units_reissued: Option<u64>,
    /// Extra replicas after disagreements.
    pub extra_replicas: Option<u64>,
    /// Datagrams sent per node during the job (survivors).
    pub msgs_per_node: Option<f64>,
    /// Largest peak resident memory of any node, MiB.
    pub peak_rss_max_mib: Option<f64>,
    /// Mean over nodes of their peak resident memory, MiB.
    pub peak_rss_mean_mib: Option<f64>,
    /// Result digest equals the reference's.
    pub digest_ok: Option<bool>,
    /// 1-minute load average when the run started.
    pub load1: f64,
    /// Runs behind the median.
    pub runs: usize,
    /// Why the run failed (no figures then).
    pub error: Option<String>,
}

impl Row {
    /// The row of `system` on `nodes` nodes that took `wall_s` over `bytes`
    /// of input at load `load1`, once, with none of a cluster's figures.
    fn timed(system: impl Into<String>, nodes: usize, wall_s: f64, bytes: u64, load1: f64) -> Row {
        Row {
            system: system.into(),
            nodes,
            killed: 0,
            wall_s,
            mb_per_s: bytes as f64 / 1e6 / wall_s,
            ratio_to_exec: None,
            units_reissued: None,
            extra_replicas: None,
            msgs_per_node: None,
            peak_rss_max_mib: None,
            peak_rss_mean_mib: None,
            digest_ok: None,
            load1,
            runs: 1,
            error: None,
        }
    }
}

/// What `bench --json` prints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchReport {
    /// Input bytes.
    pub bytes: u64,
    /// Where the CSV was written.
    pub csv: PathBuf,
    /// Why there is no Dask row, if there is none.
    pub dask_note: Option<String>,
    /// The input.
    pub input: String,
    /// The job kind.
    pub job: String,
    /// Replicas per unit.
    pub redundancy: u8,
    /// The single-process reference's digest.
    pub reference_digest: String,
    /// One row per system and cluster size.
    pub rows: Vec<Row>,
    /// Where the chart was written.
    pub svg: PathBuf,
}

/// The 1-minute load average.
pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn median_by<T: Clone>(mut v: Vec<T>, key: impl Fn(&T) -> f64) -> Option<T> {
    v.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let n = v.len();
    (n > 0).then(|| v[(n - 1) / 2].clone())
}

/// `ryx-cluster bench`.
pub fn bench(dir_arg: Option<&Path>, args: BenchArgs) -> Result<()> {
    if args.job == "search" {
        return crate::measure::search_bench::bench(&args);
    }
    check_node_args(&args.node_args)?;
    if args.nodes.is_empty() {
        bail!("--nodes needs at least one size");
    }
    let node_bin = nodebin::locate(args.node.node_bin.as_deref())?;
    let out_dir = match &args.out {
        Some(d) => d.clone(),
        None => RunDir::resolve(dir_arg)?.path().to_path_buf(),
    };
    std::fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let seed = args.seed.unwrap_or_else(time_seed);
    let src = match &args.input {
        Some(f) => Source::Files(vec![f.clone()]),
        None => Source::Corpus { size: jobs::parse_size(&args.size)?, seed: args.corpus_seed },
    };
    let (param_list, params) = run::params(&args.job, &src, None, &args.params)?;
    ryx_compute::JobSpec::new(&args.job, &params).map_err(|e| anyhow::anyhow!("{e}"))?;
    let chunk = reference::node_chunk_size(&args.node_args)?;
    let say = |s: String| {
        if !args.json {
            out!("{s}");
        }
    };
    say(format!(
        "ryx-cluster bench: {} on {}, nodes {:?}, redundancy {}{}, seed {seed}; results to {}",
        args.job,
        src.describe(),
        args.nodes,
        args.redundancy,
        args.kill.map(|k| format!(", kill {k} at {:.0}%", args.at * 100.0)).unwrap_or_default()
            + &args.energy.map(|e| format!(", input energy {e}")).unwrap_or_default(),
        out_dir.display()
    ));
    let (files, _tmp) = run::reference_files(&src, None, &std::env::temp_dir())?;
    let bytes: u64 = files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
    let mut rows: Vec<Row> = Vec::new();

    // The single-process reference, in this run.
    let mut refs: Vec<(Reference, f64)> = Vec::new();
    for _ in 0..args.repeat {
        interrupt::check()?;
        let l = load1();
        let r = reference::exec_reference(&node_bin, &args.job, &files, &param_list, Some(args.exec_threads), chunk)?;
        refs.push((r, l));
    }
    let (reference, ref_load) =
        median_by(refs, |(r, _)| r.compute.unwrap_or(r.wall).as_secs_f64()).context("no reference run")?;
    let exec_s = reference.compute.unwrap_or(reference.wall).as_secs_f64();
    say(format!(
        "{} exec --threads {}: {} compute ({} wall), {:.1} MB/s, digest {} (load {ref_load:.2})",
        clock_now(),
        args.exec_threads,
        human(Duration::from_secs_f64(exec_s)),
        human(reference.wall),
        bytes as f64 / 1e6 / exec_s,
        &reference.digest[..16.min(reference.digest.len())]
    ));
    rows.push(Row {
        ratio_to_exec: Some(1.0),
        digest_ok: Some(true),
        runs: usize::from(args.repeat),
        ..Row::timed(format!("exec --threads {}", args.exec_threads), 1, exec_s, bytes, ref_load)
    });

    // Dask, when it is installed.
    let mut dask_note = None;
    if args.job == "word-count" && !args.no_dask {
        match dask(&args.dask_script, &files) {
            Ok((compute, total, l)) => {
                say(format!(
                    "{} dask (LocalCluster 2 workers): {} compute ({} with cluster start), {:.1} MB/s (load {l:.2})",
                    clock_now(),
                    human(Duration::from_secs_f64(compute)),
                    human(Duration::from_secs_f64(total)),
                    bytes as f64 / 1e6 / compute
                ));
                rows.push(Row { ratio_to_exec: Some(compute / exec_s), ..Row::timed("dask", 2, compute, bytes, l) });
            }
            Err(e) => {
                let note = format!("dask not measured: {e:#}");
                say(format!("{} {note}", clock_now()));
                dask_note = Some(note);
            }
        }
    }

    let mut rng = Rng::new(seed);
    let mut modes: Vec<Option<Amount>> = vec![None];
    if let Some(k) = args.kill {
        modes.push(Some(k));
    }
    for &n in &args.nodes {
        for &mode in &modes {
            if let Some(k) = mode.filter(|k| k.of(usize::from(n)) >= usize::from(n)) {
                // Nobody would be left to finish the job: the run would only
                // wait out --job-timeout.
                say(format!("{} {n:>3} nodes, kill {k}: skipped: it would kill every node", clock_now()));
                continue;
            }
            let mut runs = Vec::new();
            for _ in 0..args.repeat {
                interrupt::check()?;
                let r = match run_one(
                    &args,
                    &node_bin,
                    usize::from(n),
                    mode,
                    &src,
                    &files,
                    &params,
                    &reference,
                    exec_s,
                    &mut rng,
                    seed,
                ) {
                    Ok(r) => r,
                    Err(e) if interrupt::interrupted() => return Err(e),
                    Err(e) => {
                        let what = format!("{n} nodes{}", mode.map(|k| format!(", kill {k}")).unwrap_or_default());
                        say(format!("{} {what}: FAILED: {e:#}", clock_now()));
                        failed_row(n, mode, &e)
                    }
                };
                if r.error.is_some() {
                    runs.push(r);
                    continue;
                }
                say(format!(
                    "{} {n:>3} nodes{}: {} ({:.1} MB/s, {:.2}x exec), {} re-issued, digest {}",
                    clock_now(),
                    if r.killed > 0 { format!(" kill {:>2}", r.killed) } else { String::new() },
                    human(Duration::from_secs_f64(r.wall_s)),
                    r.mb_per_s,
                    r.ratio_to_exec.unwrap_or(f64::NAN),
                    r.units_reissued.unwrap_or(0),
                    if r.digest_ok == Some(true) { "ok" } else { "DIFFERENT" }
                ));
                runs.push(r);
            }
            let (ok, failed): (Vec<Row>, Vec<Row>) = runs.into_iter().partition(|r| r.error.is_none());
            let count = ok.len();
            match median_by(ok, |r| r.wall_s) {
                Some(mut m) => {
                    m.runs = count;
                    rows.push(m);
                }
                None => rows.extend(failed.into_iter().take(1)),
            }
        }
    }

    let stamp = crate::cluster::state::unix_ms() / 1000;
    let base = out_dir.join(format!("bench-{}-{stamp}", args.job));
    let csv_path = base.with_extension("csv");
    let svg_path = base.with_extension("svg");
    std::fs::write(&csv_path, csv(&rows)).with_context(|| format!("cannot write {}", csv_path.display()))?;
    std::fs::write(&svg_path, plot(&args, &src, &rows))
        .with_context(|| format!("cannot write {}", svg_path.display()))?;
    if args.json {
        let report = BenchReport {
            bytes,
            csv: csv_path.clone(),
            dask_note: dask_note.clone(),
            input: src.describe(),
            job: args.job.clone(),
            redundancy: args.redundancy,
            reference_digest: reference.digest.clone(),
            rows: rows.clone(),
            svg: svg_path.clone(),
        };
        out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!();
        out_raw!("{}", render(&rows));
        out!();
        out!("CSV: {}", csv_path.display());
        out!("SVG: {}", svg_path.display());
    }
    if rows.iter().any(|r| r.digest_ok == Some(false)) {
        bail!("some cluster results differ from the single-process reference (see the digest column)");
    }
    if let Some(r) = rows.iter().find(|r| r.error.is_some()) {
        bail!("the {}-node run failed: {}", r.nodes, r.error.as_deref().unwrap_or(""));
    }
    Ok(())
}

/// The row of a run that failed.
fn failed_row(n: u16, kill: Option<Amount>, e: &anyhow::Error) -> Row {
    Row {
        killed: kill.map(|k| k.of(usize::from(n))).unwrap_or(0),
        runs: 0,
        error: Some(format!("{e:#}")),
        ..Row::timed("ryx", usize::from(n), f64::NAN, 0, load1())
    }
}

/// Runs the Dask script; (compute seconds, whole script seconds, load).
fn dask(script: &Path, files: &[PathBuf]) -> Result<(f64, f64, f64)> {
    if !script.exists() {
        bail!("{} not found", script.display());
    }
    let [file] = files else {
        bail!("the Dask script takes one input file");
    };
    let l = load1();
    let t0 = Instant::now();
    let out =
        Command::new("python3").arg(script).arg(file).stdin(Stdio::null()).output().context("cannot run python3")?;
    let total = t0.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        bail!("python3 {} failed: {last}", script.display());
    }
    let compute = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("compute="))
        .and_then(|v| v.parse::<f64>().ok())
        .context("the Dask script printed no compute=SECONDS")?;
    Ok((compute, total, l))
}

fn datagrams(cluster: &Cluster, indices: &[usize]) -> HashMap<usize, f64> {
    let vals = cluster.metrics(indices);
    let sent = vals.iter().map(|m| m.as_ref().and_then(|m| m.sum("ryx_datagrams_sent_total")));
    indices.iter().copied().zip(sent).filter_map(|(i, v)| Some((i, v?))).collect()
}

#[allow(clippy::too_many_arguments)]
fn run_one(
    args: &BenchArgs,
    node_bin: &Path,
    n: usize,
    kill: Option<Amount>,
    src: &Source,
    files: &[PathBuf],
    params: &serde_json::Value,
    reference: &Reference,
    exec_s: f64,
    rng: &mut Rng,
    seed: u64,
) -> Result<Row> {
    let mut node_args = args.node_args.clone();
    if let (true, Some(k)) = (args.dataset, kill) {
        // As for uploads: enough copies elsewhere of every chunk that the
        // victims cannot hold them all (capped: beyond, a chunk is lost
        // with probability below 0.5^13).
        if !node_args.iter().any(|a| a.starts_with("--source-copies")) {
            let copies = k.of(n).min(MAX_BENCH_COPIES);
            node_args.extend(["--source-copies".to_string(), copies.to_string()]);
        }
    }
    let mut tc = TempCluster::create(None, node_bin.to_path_buf(), node_args, args.base_port, "bench")?;
    if args.dataset {
        tc.cluster.state.dataset = Some(BENCH_DATASET.to_string());
        tc.cluster.save()?;
    }
    tc.spawn(n)?;
    if tc.cluster.wait_ready(Duration::from_secs(120), Duration::from_millis(100))?.is_none() {
        bail!("the {n}-node cluster did not connect within 120 s");
    }
    let entry = 0;
    if args.dataset {
        return run_dataset(args, tc, n, kill, files, params, reference, exec_s, rng, seed);
    }
    // With kills, wait for enough verified copies of every chunk that the
    // victims cannot hold them all: one more than the nodes killed (then
    // some copy always survives), capped at 12 (then all copies die with
    // probability below 0.5^12 per chunk).
    let copies = kill.map(|k| (k.of(n) + 1).min(MAX_BENCH_COPIES));
    let loaded = run::load(&tc.cluster, entry, src, args.energy, copies)?;
    if let (Some(want), Some((got, target))) = (copies, loaded.inputs.first().map(|i| (i.copies, i.copies_wanted))) {
        if !args.json {
            out!("    {n} nodes: every chunk has >= {got} verified copies (asked {want}, capped to {target})");
        }
    }
    settle(&tc.cluster, Duration::from_secs(60))?;
    let l = load1();
    let all = tc.cluster.running();
    let before = datagrams(&tc.cluster, &all);
    let t0 = Instant::now();
    let job_id = run::submit(&tc.cluster, entry, &args.job, &loaded, params.clone(), Some(args.redundancy))?;
    let (job, killed, peak) = follow(args, &mut tc, job_id, entry, kill, rng, seed)?;
    let wall = t0.elapsed().as_secs_f64();
    let r = row(&mut tc, job, killed, peak, before, wall, loaded.bytes, l, n, reference, exec_s)?;
    tc.stop()?;
    Ok(r)
}

/// Follows a job to its end, recording each node's peak RSS and killing
/// `kill` of the nodes once `args.at` of its units are done. Returns the
/// final job, the nodes killed and the peaks (KiB).
fn follow(
    args: &BenchArgs,
    tc: &mut TempCluster,
    job_id: ryx_api::JobId,
    entry: usize,
    kill: Option<Amount>,
    rng: &mut Rng,
    seed: u64,
) -> Result<(ryx_api::JobView, Vec<usize>, HashMap<usize, u64>)> {
    let mut peak: HashMap<usize, u64> = HashMap::new();
    let mut follower = Follower::new(job_id, entry);
    let mut killed: Vec<usize> = Vec::new();
    let mut kill_done = kill.is_none();
    let at = args.at;
    let job = follower.wait(&mut tc.cluster, secs(args.job_timeout), Duration::from_millis(50), |c, job| {
        for i in c.live() {
            if let Some(kib) = procfs::rss_kib(c.state.nodes[i].pid) {
                let p = peak.entry(i).or_insert(0);
                *p = (*p).max(kib);
            }
        }
        let (done, total) = jobs::units(job);
        if !kill_done && !job.is_final() && total > 0 && done as f64 >= at * total as f64 {
            if let Some(k) = kill {
                killed = if args.json {
                    let live = c.live();
                    let mut v = Vec::new();
                    for i in rng.choose(&live, k.of(live.len())) {
                        if c.kill(i)? {
                            v.push(i);
                        }
                    }
                    c.save()?;
                    v
                } else {
                    chaos::kill(c, k, rng, seed, "    ")?
                };
            }
            kill_done = true;
        }
        Ok(())
    })?;
    jobs::check_done(&job)?;
    if !kill_done {
        bail!(
            "the job finished before {:.0}% of it could be seen; no node was killed (use a larger input)",
            at * 100.0
        );
    }
    Ok((job, killed, peak))
}

/// The row of a finished run.
#[allow(clippy::too_many_arguments)]
fn row(
    tc: &mut TempCluster,
    job: ryx_api::JobView,
    killed: Vec<usize>,
    peak: HashMap<usize, u64>,
    before: HashMap<usize, f64>,
    wall: f64,
    bytes: u64,
    load: f64,
    n: usize,
    reference: &Reference,
    exec_s: f64,
) -> Result<Row> {
    let survivors = tc.cluster.running();
    let after = datagrams(&tc.cluster, &survivors);
    let deltas: Vec<f64> = survivors.iter().filter_map(|i| Some(after.get(i)? - before.get(i)?)).collect();
    let peaks: Vec<f64> = peak.values().map(|&k| k as f64 / 1024.0).collect();
    let digest = job.result_digest.as_deref().unwrap_or("");
    Ok(Row {
        killed: killed.len(),
        ratio_to_exec: Some(wall / exec_s),
        units_reissued: Some(job.stats.reissued),
        extra_replicas: Some(job.stats.extra_replicas),
        msgs_per_node: (!deltas.is_empty()).then(|| deltas.iter().sum::<f64>() / deltas.len() as f64),
        peak_rss_max_mib: peaks.iter().copied().reduce(f64::max),
        peak_rss_mean_mib: (!peaks.is_empty()).then(|| peaks.iter().sum::<f64>() / peaks.len() as f64),
        digest_ok: Some(digest == reference.digest),
        ..Row::timed("ryx", n, wall, bytes, load)
    })
}

/// The dataset name of `bench --dataset`.
const BENCH_DATASET: &str = "bench";

/// `run_one` over data spread across the nodes' own directories.
#[allow(clippy::too_many_arguments)]
fn run_dataset(
    args: &BenchArgs,
    mut tc: TempCluster,
    n: usize,
    kill: Option<Amount>,
    files: &[PathBuf],
    params: &serde_json::Value,
    reference: &Reference,
    exec_s: f64,
    rng: &mut Rng,
    seed: u64,
) -> Result<Row> {
    let entry = 0;
    let all = tc.cluster.running();
    let bytes = crate::cluster::data::split(&tc.cluster, files, &all)?;
    crate::cluster::data::wait_announced(&tc.cluster, entry, BENCH_DATASET, n, Duration::from_secs(120))?;
    // The copies other nodes keep of each node's chunks (--source-copies)
    // are made in the background: let them settle, as uploads do.
    settle(&tc.cluster, Duration::from_secs(120))?;
    let l = load1();
    let before = datagrams(&tc.cluster, &all);
    let mut job = ryx_api::SubmitJob::over_dataset(&args.job, BENCH_DATASET);
    job.params = params.clone();
    job.redundancy = Some(args.redundancy);
    let t0 = Instant::now();
    let submitted = tc.cluster.client(entry).submit(&job).with_context(|| format!("submitting at node {entry}"))?;
    let got = submitted.dataset.as_ref().map_or(0, |d| d.bytes);
    if got != bytes {
        bail!("the snapshot holds {got} bytes of the {bytes} spread (unreachable: {:?})", submitted.unreachable);
    }
    let (job, killed, peak) = follow(args, &mut tc, submitted.job_id, entry, kill, rng, seed)?;
    let wall = t0.elapsed().as_secs_f64();
    row(&mut tc, job, killed, peak, before, wall, bytes, l, n, reference, exec_s).and_then(|r| {
        tc.stop()?;
        Ok(r)
    })
}

/// Most copies per chunk a bench with kills waits for.
const MAX_BENCH_COPIES: usize = 12;

/// Waits until the blob bytes held across the cluster stop changing for a
/// second (replication of the input done), at most `timeout`.
fn settle(cluster: &Cluster, timeout: Duration) -> Result<()> {
    let t0 = Instant::now();
    let mut last: Option<u64> = None;
    let mut stable_since = Instant::now();
    let running = cluster.state.live_indices();
    loop {
        interrupt::check()?;
        let held: u64 = par_map(&running, |&i| cluster.client(i).blobs().map_or(0, |b| b.bytes)).iter().sum();
        if last != Some(held) {
            last = Some(held);
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= Duration::from_secs(1) {
            return Ok(());
        }
        if t0.elapsed() > timeout {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|v| v.is_finite()).map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "-".into())
}

/// The table.
pub fn render(rows: &[Row]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.system.clone(),
                if r.system == "ryx" { r.nodes.to_string() } else { "-".into() },
                if r.system == "ryx" { r.killed.to_string() } else { "-".into() },
                opt(Some(r.wall_s), 2),
                opt(Some(r.mb_per_s), 1),
                opt(r.ratio_to_exec, 2),
                r.units_reissued.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                opt(r.msgs_per_node, 0),
                opt(r.peak_rss_max_mib, 0),
                opt(r.peak_rss_mean_mib, 0),
                match (r.digest_ok, &r.error) {
                    (_, Some(_)) => "FAILED".into(),
                    (Some(true), _) => "ok".into(),
                    (Some(false), _) => "DIFFERENT".into(),
                    (None, _) => "-".into(),
                },
                format!("{:.2}", r.load1),
            ]
        })
        .collect();
    table(
        &[
            "system",
            "nodes",
            "killed",
            "wall s",
            "MB/s",
            "x exec",
            "re-exec units",
            "msgs/node",
            "peak RSS max MiB",
            "mean MiB",
            "digest",
            "load",
        ],
        &body,
    )
}

/// The CSV.
pub fn csv(rows: &[Row]) -> String {
    let mut o = String::from(
        "system,nodes,killed,wall_s,mb_per_s,ratio_to_exec,units_reissued,extra_replicas,msgs_per_node,peak_rss_max_mib,peak_rss_mean_mib,digest_ok,load1,runs,error\n",
    );
    let f = |v: Option<f64>| v.filter(|v| v.is_finite()).map(|v| format!("{v:.3}")).unwrap_or_default();
    let u = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in rows {
        o.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{:.2},{},{}\n",
            r.system.replace(',', " "),
            r.nodes,
            r.killed,
            f(Some(r.wall_s)),
            f(Some(r.mb_per_s)),
            f(r.ratio_to_exec),
            u(r.units_reissued),
            u(r.extra_replicas),
            f(r.msgs_per_node),
            f(r.peak_rss_max_mib),
            f(r.peak_rss_mean_mib),
            r.digest_ok.map(|b| b.to_string()).unwrap_or_default(),
            r.load1,
            r.runs,
            r.error.as_deref().unwrap_or("").replace([',', '\n', '"'], " ")
        ));
    }
    o
}

fn plot(args: &BenchArgs, src: &Source, rows: &[Row]) -> String {
    let sizes: Vec<usize> = args.nodes.iter().map(|&n| usize::from(n)).collect();
    let labels: Vec<String> = sizes.iter().map(|n| n.to_string()).collect();
    let series_of = |kills: bool| -> Vec<Option<f64>> {
        sizes
            .iter()
            .map(|&n| {
                rows.iter().find(|r| r.system == "ryx" && r.nodes == n && (r.killed > 0) == kills).map(|r| r.mb_per_s)
            })
            .collect()
    };
    let mut series = vec![svg::Series {
        name: format!("ryx, redundancy {}", args.redundancy),
        color: "#1f77b4",
        values: series_of(false),
    }];
    if let Some(k) = args.kill {
        series.push(svg::Series {
            name: format!("ryx, kill {k} at {:.0}%", args.at * 100.0),
            color: "#d62728",
            values: series_of(true),
        });
    }
    let levels: Vec<svg::Level> = rows
        .iter()
        .filter(|r| r.system != "ryx")
        .map(|r| svg::Level {
            name: r.system.clone(),
            color: if r.system == "dask" { "#9467bd" } else { "#2ca02c" },
            value: r.mb_per_s,
        })
        .collect();
    svg::line_chart(
        &format!("{} on {}: throughput by cluster size", args.job, src.describe()),
        "nodes (ryx-node processes on one 2-core machine)",
        "MB/s (input / wall time)",
        &labels,
        &series,
        &levels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_csv() {
        assert_eq!(median_by(vec![3.0, 1.0, 2.0], |v| *v), Some(2.0));
        assert_eq!(median_by(Vec::<f64>::new(), |v| *v), None);
        let r = Row {
            system: "ryx".into(),
            nodes: 5,
            killed: 2,
            wall_s: 1.5,
            mb_per_s: 100.0,
            ratio_to_exec: Some(1.2),
            units_reissued: Some(3),
            extra_replicas: Some(0),
            msgs_per_node: Some(40.0),
            peak_rss_max_mib: Some(80.0),
            peak_rss_mean_mib: Some(60.0),
            digest_ok: Some(true),
            load1: 2.0,
            runs: 1,
            error: None,
        };
        let c = csv(std::slice::from_ref(&r));
        assert_eq!(c.lines().count(), 2);
        assert!(c.lines().nth(1).expect("row").starts_with("ryx,5,2,1.500,100.000,1.200,3,0,40.000"), "{c}");
        let t = render(&[r]);
        assert!(t.contains("ok") && t.contains("100.0"), "{t}");
    }
}
