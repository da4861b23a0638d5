//! `demo`: the guided tour (the README's first command): nodes find each
//! other, each holds its own share of the built-in corpus in its own files,
//! jobs over that dataset run where the data lies, 30% of the nodes die
//! mid-job, and the result is still the single-process reference's.

use crate::chaos;
use crate::cli::DemoArgs;
use crate::cluster::data;
use crate::cluster::graph::floor_for;
use crate::cluster::lifecycle::TempCluster;
use crate::cluster::nodebin;
use crate::cluster::ports::LOOPBACK_BROADCAST;
use crate::cluster::state::RunDir;
use crate::cluster::Cluster;
use crate::inspect::{snapshot, status_table, summary_line};
use crate::jobs::run::{self, Source};
use crate::jobs::{self, render, Follower};
use crate::measure::time_info_spread;
use crate::util::{human, time_seed, Amount, Rng};
use crate::{interrupt, util};
use anyhow::{bail, Context, Result};
use ryx_api::{JobView, WordCountResult};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

const STEPS: usize = 6;
/// The demo's work units are small so progress (and the kill) is visible.
const DEMO_CHUNK: &str = "1MiB";
/// Jobs of the demo.
const KINDS: [&str; 2] = ["word-count", "log-analysis"];
/// Share of the units done when the demo kills.
const KILL_AT: f64 = 0.3;

/// The dataset the demo's nodes hold.
const DEMO_DATASET: &str = "app";
/// Share of the nodes the demo kills.
const KILL_PERCENT: f64 = 30.0;

/// Waits until every node's files are cut to their end (the last chunk of
/// a file sealed once it is quiet) and every chunk has `copies` durable
/// copies on other nodes; returns the number of chunks.
fn wait_copied(cluster: &Cluster, nodes: &[usize], copies: usize, timeout: Duration) -> Result<u64> {
    let t0 = Instant::now();
    loop {
        interrupt::check()?;
        let sources = crate::cluster::par_map(nodes, |&i| cluster.client(i).sources().ok());
        let chunks: Option<u64> = sources
            .iter()
            .map(|s| {
                let v = s.as_ref()?.sources.first()?;
                (v.sealed_bytes == v.bytes && v.bytes > 0).then_some(v.chunks)
            })
            .sum();
        // Copies of the chunks only (nodes keep the lists of their chunks
        // with copies too), counted once every file is cut to its end.
        let kept: u64 = match chunks {
            None => 0,
            Some(_) => {
                let named: Vec<(usize, String)> = nodes
                    .iter()
                    .zip(&sources)
                    .filter_map(|(&i, s)| Some((i, s.as_ref()?.sources.first()?.name.clone())))
                    .collect();
                let names: std::collections::HashSet<ryx_api::BlobHash> =
                    crate::cluster::par_map(&named, |(i, name)| cluster.client(*i).source_snapshot(name).ok())
                        .into_iter()
                        .flatten()
                        .flat_map(|s| s.chunks.into_iter().map(|c| c.hash))
                        .collect();
                crate::cluster::par_map(nodes, |&i| {
                    cluster
                        .client(i)
                        .blobs()
                        .map_or(0, |b| b.blobs.iter().filter(|e| e.durable && names.contains(&e.hash)).count() as u64)
                })
                .iter()
                .sum()
            }
        };
        if let Some(c) = chunks.filter(|&c| kept >= c * copies as u64) {
            return Ok(c);
        }
        if t0.elapsed() > timeout {
            bail!(
                "the chunks did not get {copies} copies each within {} ({kept} kept of {chunks:?} chunks)",
                human(timeout)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Bold text on a terminal (unless NO_COLOR is set), plain otherwise.
fn heading(step: usize, text: &str) {
    let styled = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    if styled {
        out!("\n\x1b[1m[{step}/{STEPS}] {text}\x1b[0m");
    } else {
        out!("\n[{step}/{STEPS}] {text}");
    }
}

fn indent(text: &str) {
    for l in text.lines() {
        out!("      {l}");
    }
}

/// One job of the demo as it runs.
struct Running {
    kind: &'static str,
    follower: Follower,
    last: Option<JobView>,
}

impl Running {
    fn units(&self) -> (u64, u64) {
        self.last.as_ref().map(jobs::units).unwrap_or((0, 0))
    }

    fn done(&self) -> bool {
        self.last.as_ref().is_some_and(JobView::is_final)
    }
}

/// A progress line for both jobs.
fn progress_line(runs: &[Running], t0: Instant) -> String {
    let parts: Vec<String> = runs
        .iter()
        .map(|r| {
            let (d, t) = r.units();
            let state = r.last.as_ref().map_or("submitted", |j| j.state.as_str());
            format!("{} {d}/{t} units ({state})", r.kind)
        })
        .collect();
    format!("{} · {}", parts.join(" · "), human(t0.elapsed()))
}

/// `ryx-cluster demo`.
pub fn demo(dir_arg: Option<&Path>, args: DemoArgs) -> Result<()> {
    let n = usize::from(args.nodes);
    let seed = args.seed.unwrap_or_else(time_seed);
    let size = jobs::parse_size(&args.size)?;
    let mut rng = Rng::new(seed);
    let node_bin = nodebin::locate(args.node.node_bin.as_deref())?;
    let dir = dir_arg.map(|d| RunDir::resolve(Some(d))).transpose()?;
    // Copies of every chunk elsewhere: one more than the nodes killed, so
    // some copy of each always survives.
    let copies = Amount::Percent(KILL_PERCENT).of(n) + 1;
    let node_args =
        vec!["--chunk-size".to_string(), DEMO_CHUNK.to_string(), "--source-copies".to_string(), copies.to_string()];
    let mut tc = TempCluster::create(dir, node_bin, node_args, args.base_port, "demo")?;
    tc.cluster.state.dataset = Some(DEMO_DATASET.to_string());
    tc.cluster.save()?;
    let timeout = Duration::from_secs(60);
    let t_demo = Instant::now();

    out!("Ryx demo: {n} ryx-node processes on this machine, talking only over loopback.");
    out!(
        "Run dir {} · cluster {} · discovery by broadcast on {LOOPBACK_BROADCAST}:{}",
        tc.cluster.dir.path().display(),
        tc.cluster.state.cluster_id,
        tc.cluster.state.discovery_port
    );

    heading(1, &format!("Start {n} nodes and let them find each other"));
    let t0 = Instant::now();
    tc.spawn(n)?;
    let ports: Vec<u16> = tc.cluster.state.nodes.iter().map(|r| r.udp_port).collect();
    indent(&format!(
        "{n} processes up, every HTTP API answering after {} (ports {}–{}).",
        human(t0.elapsed()),
        ports.iter().min().copied().unwrap_or(0),
        ports.iter().max().copied().unwrap_or(0)
    ));
    indent("No seed list, no coordinator: each node broadcasts a hello on loopback and links to a few that answer.");
    match tc.cluster.wait_ready(timeout, Duration::from_millis(50))? {
        Some(_) => indent(&format!(
            "Connected after {}: every node has >= {} neighbours and the neighbour graph is connected.",
            human(t0.elapsed()),
            floor_for(n)
        )),
        None => bail!(
            "the nodes did not connect within {}; their logs are in {}",
            human(timeout),
            tc.cluster.dir.path().display()
        ),
    }
    let origin = rng.below(n);
    let spread = time_info_spread(
        &tc.cluster,
        origin,
        "greeting",
        json!(format!("hello from node {origin}")),
        Duration::from_secs(10),
    )?;
    indent(&match spread.full {
        Some(t) => format!(
            "An info item put at node {origin} reached all {}/{} nodes in {} by energy-based diffusion, neighbour to neighbour.",
            spread.holding,
            spread.asked,
            human(t)
        ),
        None => format!("An info item put at node {origin} reached {}/{} nodes within 10 s.", spread.holding, spread.asked),
    });
    let first = tc.cluster.state.nodes[0].api();
    let ui = format!("http://{first}/ui/");
    let served = tc.cluster.client(0).request("GET", "/ui/", None).is_ok_and(|r| (200..400).contains(&r.status));
    if served {
        indent(&format!("Dashboard: {ui}   (any node serves it; open it to watch the jobs below)"));
    } else {
        indent(&format!("Dashboard: {ui}   (not served by this ryx-node build yet)"));
    }

    heading(2, &format!("Give every node its own share of {} of built-in sample logs", jobs::mib(size)));
    let src = Source::Corpus { size, seed: 1 };
    let t_load = Instant::now();
    let (files, _corpus) = run::reference_files(&src, None, tc.cluster.dir.path())?;
    let all: Vec<usize> = (0..n).collect();
    let bytes = data::split(&tc.cluster, &files, &all)?;
    indent(&format!(
        "{} of multi-service logs written into the {n} nodes' own directories ({}/data/node-I), in {}.",
        jobs::mib(bytes),
        tc.cluster.dir.path().display(),
        human(t_load.elapsed())
    ));
    indent(&format!(
        "Each node follows its directory as dataset `{DEMO_DATASET}`, cuts its file at line ends into {DEMO_CHUNK} chunks named"
    ));
    indent(&format!(
        "by their digest, announces what it holds, and has {copies} other nodes keep a copy of every chunk."
    ));
    let chunks = wait_copied(&tc.cluster, &all, copies, timeout)?;
    indent(&format!("After {}: {chunks} chunks, each held by its node and {copies} others.", human(t_load.elapsed())));

    heading(3, "Run word-count and log-analysis where the data lies, and SIGKILL 30% of the nodes mid-job");
    let entry = rng.below(n);
    let mut runs = Vec::new();
    let mut param_lists = Vec::new();
    for kind in KINDS {
        let (list, params) = run::params(kind, &src, None, &[])?;
        let mut job = ryx_api::SubmitJob::over_dataset(kind, DEMO_DATASET);
        job.params = params;
        let s = tc.cluster.client(entry).submit(&job).with_context(|| format!("submitting {kind} at node {entry}"))?;
        let got = s.dataset.as_ref().map_or(0, |d| d.bytes);
        if got != bytes {
            bail!(
                "the {kind} job's snapshot holds {got} of the {bytes} bytes written (unreachable: {:?})",
                s.unreachable
            );
        }
        let nodes = s.dataset.as_ref().map_or(0, |d| d.nodes);
        indent(&format!(
            "submitted {kind:<13} job {} at node {entry}: dataset {DEMO_DATASET} on {nodes} nodes, each chunk computed by 2 nodes, its own first",
            s.job_id
        ));
        runs.push(Running { kind, follower: Follower::new(s.job_id, entry), last: None });
        param_lists.push(list);
    }
    let t_jobs = Instant::now();
    let tty = std::io::stdout().is_terminal();
    let mut killed: Vec<usize> = Vec::new();
    let mut last_print: Option<Instant> = None;
    let job_timeout = Duration::from_secs(120);
    loop {
        for r in runs.iter_mut().filter(|r| !r.done()) {
            if let Ok(v) = r.follower.get(&mut tc.cluster) {
                r.last = Some(v);
            }
        }
        let line = progress_line(&runs, t_jobs);
        if tty {
            util::write_out(format_args!("\r\x1b[2K      {line}"));
        } else if last_print.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            out!("      {line}");
            last_print = Some(Instant::now());
        }
        let (done, total) = runs.iter().fold((0, 0), |(d, t), r| {
            let (a, b) = r.units();
            (d + a, t + b)
        });
        if killed.is_empty() && total > 0 && done as f64 >= KILL_AT * total as f64 && !runs.iter().all(Running::done) {
            if tty {
                out!();
            }
            indent(&format!("{done}/{total} units done: chaos!"));
            killed = chaos::kill(&mut tc.cluster, Amount::Percent(KILL_PERCENT), &mut rng, seed, "      ")?;
            indent("No goodbye from the dead: survivors notice the silence, compute the dead nodes' chunks from");
            indent("their copies, and the job records live on with a dead home's neighbours, so any survivor can finish them.");
        }
        if runs.iter().all(Running::done) {
            if tty {
                out!("\r\x1b[2K      {}", progress_line(&runs, t_jobs));
            } else {
                out!("      {}", progress_line(&runs, t_jobs));
            }
            break;
        }
        if t_jobs.elapsed() > job_timeout {
            bail!("the jobs did not finish within {}: {}", human(job_timeout), progress_line(&runs, t_jobs));
        }
        if !interrupt::sleep(Duration::from_millis(100)) {
            bail!("interrupted");
        }
    }
    for r in &runs {
        let job = r.last.as_ref().expect("final job answer");
        jobs::check_done(job)?;
        let st = &job.stats;
        indent(&format!(
            "{:<13} done after {}: {} replica results from {} workers, {} units re-issued, {} home takeovers",
            r.kind,
            human(Duration::from_millis(st.elapsed_ms.unwrap_or(0))),
            st.results,
            st.workers,
            st.reissued,
            st.takeovers
        ));
    }
    if killed.is_empty() {
        indent("(the jobs finished before 30% could be seen, so nothing was killed; try a larger --size)");
    }

    heading(4, "Same answer as one process? (ryx-node exec on the same bytes)");
    indent(&format!(
        "The nodes' shares, in node-id order, are the {} corpus as generated: exec reads it in one piece.",
        jobs::mib(bytes)
    ));
    let mut all_same = true;
    for (r, params) in runs.iter().zip(&param_lists) {
        let job = r.last.as_ref().expect("final job answer");
        let digest = job.result_digest.as_deref().unwrap_or("");
        let reference = run::reference(&tc.cluster, r.kind, &files, params, None)?;
        let same = reference.digest == digest;
        all_same &= same;
        indent(&format!(
            "{:<13} cluster {}…  exec {}…  {}",
            r.kind,
            &digest[..digest.len().min(16)],
            &reference.digest[..16],
            if same { "identical" } else { "DIFFERENT" }
        ));
    }
    if !all_same {
        bail!("a cluster result differs from the single-process reference");
    }
    indent(&format!(
        "Both results are byte-identical to the single-process run, with {} of {n} nodes killed mid-job.",
        killed.len()
    ));

    heading(5, "Results");
    for r in &runs {
        let job = r.last.as_ref().expect("final job answer");
        let text = match job.result_as::<WordCountResult>() {
            Ok(Some(mut wc)) if r.kind == "word-count" => {
                wc.top.truncate(10);
                render::word_count(&wc)
            }
            _ => render::job(job),
        };
        out!();
        indent(&format!("{}:", r.kind));
        let lines: Vec<&str> = text.lines().collect();
        let keep = if r.kind == "log-analysis" { 16 } else { lines.len() };
        for l in lines.iter().take(keep) {
            indent(&format!("  {l}"));
        }
    }
    let snap = snapshot(&mut tc.cluster);
    out!();
    indent(&status_table(&tc.cluster, &snap));
    indent(&summary_line(&snap));

    let dir = tc.cluster.dir.path().to_path_buf();
    let survivors = tc.cluster.running().len();
    if args.keep {
        heading(6, "Keep the cluster running (--keep)");
        tc.keep();
        let d = format!(" --dir {}", dir.display());
        indent(&format!("The {survivors} survivors keep running (dashboard {ui}). Try:"));
        indent(&format!("ryx-cluster{d} status"));
        indent(&format!("ryx-cluster{d} inject grep --param pattern=ERROR"));
        indent(&format!("ryx-cluster{d} chaos --partition 50% --for 10s --during-job"));
        indent(&format!("ryx-cluster{d} add --nodes 3"));
        indent(&format!("ryx-cluster{d} stop"));
    } else {
        heading(6, "Stop");
        let r = tc.stop()?;
        drop(tc);
        indent(&format!(
            "{} nodes ended on SIGTERM after telling their neighbours they leave{}; run dir removed.",
            r.terminated,
            if r.killed > 0 { format!(", {} needed SIGKILL", r.killed) } else { String::new() }
        ));
        out!();
        out!("Demo finished in {}.", human(t_demo.elapsed()));
        out!("Next: `ryx-cluster start --nodes 10`, then `ryx-cluster inject word-count` or `ryx-cluster chaos --kill 30% --during-job`;");
        out!("      `ryx-cluster bench --nodes 2,5,10` for numbers, `ryx-cluster demo --keep` to keep this one, `--help` for the rest.");
    }
    let _ = std::io::stdout().flush();
    Ok(())
}
