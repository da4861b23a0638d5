//! `ryx-node run`: a job on a running cluster, from the command line.
//! Submits to any node, shows progress on a terminal (units and bytes),
//! prints the result as `exec` does (or the whole job as JSON).

use crate::cli::{RunArgs, SearchArgs};
use anyhow::{bail, Context};
use ryx_api::{Client, JobState, JobView, SubmitJob};
use std::io::{IsTerminal, Write};
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

/// Submits the job, follows it to its end and prints its result.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let (addr, client) = connect(&args.node, args.token.as_deref())?;
    let params = crate::exec::parse_params(&args.params)?;
    ryx_compute::JobSpec::new(&args.kind, &params)?;
    let mut job = match &args.dataset {
        Some(name) => SubmitJob::over_dataset(&args.kind, name),
        None => SubmitJob::new(&args.kind, args.input.iter().map(|h| h.as_str().into()).collect()),
    };
    job.params = params;
    job.redundancy = args.redundancy;
    let t0 = Instant::now();
    let submitted = client.submit(&job).with_context(|| format!("submitting to {addr}"))?;
    let id = submitted.job_id.clone();
    let tty = std::io::stderr().is_terminal() && !args.json;
    if let Some(d) = &submitted.dataset {
        eprintln!(
            "job {id}: {} over dataset {} ({} on {} nodes, snapshot {})",
            args.kind,
            d.name,
            human_bytes(d.bytes),
            d.nodes,
            &d.snapshot[..d.snapshot.len().min(16)]
        );
    } else {
        eprintln!("job {id}: {} submitted to {addr}", args.kind);
    }
    if !submitted.unreachable.is_empty() {
        eprintln!("left out (no answer): {:?}", submitted.unreachable);
    }
    let deadline = t0 + Duration::from_secs(args.timeout.max(1));
    let mut misses = 0;
    let view: JobView = loop {
        match client.job(&id) {
            Ok(v) if v.is_final() => break v,
            Ok(v) => {
                misses = 0;
                if tty {
                    eprint!("\r{}", progress_line(&v, t0.elapsed()));
                    let _ = std::io::stderr().flush();
                }
            }
            // The node answering may have died: a few misses are retried,
            // then said.
            Err(e) => {
                misses += 1;
                if misses > 20 {
                    bail!("{addr} stopped answering about job {id}: {e}");
                }
            }
        }
        if Instant::now() > deadline {
            bail!("job {id} did not finish within {} s", args.timeout);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if tty {
        eprintln!("\r{}", progress_line(&view, t0.elapsed()));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else if let Some(r) = &view.result {
        println!("{}", serde_json::to_string_pretty(r)?);
        println!("result_digest: {}", view.result_digest.as_deref().unwrap_or(""));
    }
    match view.state {
        JobState::Done => Ok(()),
        s => bail!("job {id} ended {s:?}: {}", view.error.as_deref().unwrap_or("no reason given")),
    }
}

/// `[#####.....]  12/70 units  48.0/256.0 MiB  3.2 s`.
fn progress_line(v: &JobView, elapsed: Duration) -> String {
    let p = &v.progress;
    let frac = if p.units_total == 0 { 0.0 } else { f64::from(p.units_done) / f64::from(p.units_total) };
    let filled = (frac * 30.0).round() as usize;
    format!(
        "[{}{}] {:>5}/{} units  {}/{}  {:.1} s ",
        "#".repeat(filled),
        ".".repeat(30 - filled.min(30)),
        p.units_done,
        p.units_total,
        human_bytes(p.bytes_done),
        human_bytes(p.bytes_total),
        elapsed.as_secs_f64()
    )
}

fn human_bytes(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

/// `ryx-node search`: asks a node, prints the hits (or the whole answer).
pub fn search(args: SearchArgs) -> anyhow::Result<()> {
    let (_, client) = connect(&args.node, args.token.as_deref())?;
    let r = client.search(&args.dataset, &args.query, args.k, args.redundancy)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let hits = r["hits"].as_array().cloned().unwrap_or_default();
    for (i, h) in hits.iter().enumerate() {
        println!("{:>4}. {:<40} {}", i + 1, h["id"].as_str().unwrap_or(""), h["score"]);
    }
    eprintln!(
        "{} of {} documents matched; dataset {} on {} nodes; {} ms",
        r["matched"],
        r["docs"],
        r["dataset"]["name"].as_str().unwrap_or(""),
        r["dataset"]["nodes"],
        r["elapsed_ms"]
    );
    Ok(())
}

/// A client of the node at `node` (HOST:PORT), with the API token if any.
fn connect(node: &str, token: Option<&str>) -> anyhow::Result<(std::net::SocketAddr, Client)> {
    let addr = node
        .to_socket_addrs()
        .with_context(|| format!("--node {node}: not HOST:PORT"))?
        .next()
        .with_context(|| format!("--node {node}: no address"))?;
    let mut client = Client::new(addr);
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        client = client.with_token(t);
    }
    Ok((addr, client))
}
