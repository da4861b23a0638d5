//! `bench --job search --input DOCS --queries FILE`: queries per second and
//! latency percentiles of `GET /v1/search` on N local nodes holding the
//! documents split between them, asked by C concurrent clients, next to
//! one tantivy index over the same documents in one process (`ryx-node
//! exec search --queries`), in the same run; and how many answers are the
//! one index's, hit for hit.

use crate::cli::BenchArgs;
use crate::cluster::lifecycle::TempCluster;
use crate::cluster::{check_node_args, nodebin};
use crate::interrupt;
use crate::util::{clock_now, table};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The dataset the documents are spread as.
const DATASET: &str = "docs";

/// One query's latency (s) and answer.
type Answer = Result<(f64, Value)>;

/// One measured configuration.
struct Row {
    system: String,
    nodes: usize,
    clients: usize,
    qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Answers whose hits are the one index's (ids, order and scores).
    same: Option<(usize, usize)>,
    load1: f64,
}

/// Runs the search benchmark.
pub fn bench(args: &BenchArgs) -> Result<()> {
    check_node_args(&args.node_args)?;
    let docs = args.input.as_deref().context("--job search needs --input DOCS (JSON lines with an id)")?;
    let qfile = args.queries.as_deref().context("--job search needs --queries FILE (one query per line)")?;
    let text = std::fs::read_to_string(qfile).with_context(|| format!("cannot read {}", qfile.display()))?;
    let queries: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if queries.is_empty() {
        bail!("{} holds no query", qfile.display());
    }
    let k = args
        .params
        .iter()
        .find_map(|p| p.strip_prefix("k="))
        .map(|v| v.parse::<usize>().context("--param k=N"))
        .transpose()?
        .unwrap_or(10);
    let node_bin = nodebin::locate(args.node.node_bin.as_deref())?;
    out!(
        "ryx-cluster bench: search over {} ({} queries, top {k}), nodes {:?}, {} clients, redundancy {}",
        docs.display(),
        queries.len(),
        args.nodes,
        args.clients,
        args.redundancy
    );

    // One index in one process, in this run.
    let l = super::bench::load1();
    let out = Command::new(&node_bin)
        .args(["exec", "search", "--json", "--input"])
        .arg(docs)
        .arg("--queries")
        .arg(qfile)
        .args(["--threads", &args.exec_threads.to_string(), "--param", &format!("k={k}")])
        .output()
        .context("running ryx-node exec search")?;
    if !out.status.success() {
        bail!("exec search failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let base: Value = serde_json::from_slice(&out.stdout).context("exec search printed no JSON")?;
    let want = base["hits"].as_array().cloned().unwrap_or_default();
    let figure = |key: &str| base[key].as_f64().unwrap_or(f64::NAN);
    out!(
        "{} one index (exec --threads {}): {} documents indexed in {:.2} s; {:.0} queries/s, p50 {:.2} ms, p99 {:.2} ms",
        clock_now(),
        args.exec_threads,
        base["docs"],
        figure("build_s"),
        figure("qps"),
        figure("p50_ms"),
        figure("p99_ms")
    );
    let mut rows = vec![Row {
        system: format!("one index, {} threads", args.exec_threads),
        nodes: 1,
        clients: args.exec_threads,
        qps: figure("qps"),
        p50_ms: figure("p50_ms"),
        p99_ms: figure("p99_ms"),
        same: None,
        load1: l,
    }];

    for &n in &args.nodes {
        interrupt::check()?;
        let n = n as usize;
        let mut tc =
            TempCluster::create(None, node_bin.clone(), args.node_args.clone(), args.base_port, "bench-search")?;
        tc.cluster.state.dataset = Some(DATASET.to_string());
        tc.cluster.save()?;
        tc.spawn(n)?;
        if tc.cluster.wait_ready(Duration::from_secs(120), Duration::from_millis(100))?.is_none() {
            bail!("the {n}-node cluster did not connect within 120 s");
        }
        let all = tc.cluster.running();
        crate::cluster::data::split(&tc.cluster, &[docs.to_path_buf()], &all)?;
        crate::cluster::data::wait_announced(&tc.cluster, 0, DATASET, n, Duration::from_secs(120))?;
        let mut apis: Vec<std::net::SocketAddr> =
            all.iter().filter_map(|&i| tc.cluster.state.nodes.get(i).map(|r| r.api())).collect();
        let http = ryx_api::Http::new(Duration::from_secs(120));
        let ask = |apis: &[std::net::SocketAddr], i: usize| -> Answer {
            let path = format!(
                "/v1/search?dataset={DATASET}&k={k}&redundancy={}&q={}",
                args.redundancy,
                ryx_api::encode_segment(&queries[i])
            );
            let t = Instant::now();
            let r = http.request(apis[i % apis.len()], "GET", &path, None, None).map_err(|e| anyhow::anyhow!("{e}"))?;
            let secs = t.elapsed().as_secs_f64();
            if r.status != 200 {
                bail!("query {i}: HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body));
            }
            Ok((secs, serde_json::from_slice(&r.body).context("a search answer that is not JSON")?))
        };
        // Every holder's part announced and answering: the first query
        // covers all of them (once), then the timed run.
        let t0 = Instant::now();
        loop {
            match ask(&apis, 0) {
                Ok((_, v)) if v["dataset"]["nodes"].as_u64() == Some(n as u64) => break,
                _ if t0.elapsed() > Duration::from_secs(60) => bail!("the {n} holders never all answered a search"),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        let kill = args.kill.map(|a| a.of(n)).filter(|m| *m > 0 && *m < n);
        let passes: &[(usize, usize)] = if kill.is_some() { &[(0, 1), (1, 0), (2, 0)] } else { &[(0, 1), (1, 0)] };
        for &(pass, clients) in passes {
            let clients = if clients == 0 { usize::from(args.clients) } else { clients };
            if pass == 2 {
                // SIGKILL a share of the nodes, spread over the list (never
                // the first, which the first queries go to), then ask the
                // others: their documents are found on the copies kept
                // for them (`--source-copies`).
                let m = kill.unwrap_or(0);
                // Every file's last lines sealed into chunks first (a file
                // quiet for a few scans is), so that copies of all of it
                // can exist: lines a node never sealed die with it.
                let t0 = Instant::now();
                let sealed = |api: &std::net::SocketAddr| {
                    http.request(*api, "GET", "/v1/sources", None, None).ok().and_then(|r| {
                        let v: Value = serde_json::from_slice(&r.body).ok()?;
                        let s = v["sources"].as_array()?.iter().find(|s| s["name"] == DATASET)?.clone();
                        Some(s["sealed_bytes"] == s["bytes"])
                    })
                };
                // ... and every chunk kept durably by two other nodes
                // (`--source-copies`, 2 by default): data not copied yet
                // when its holder dies is lost, and the answer says so.
                let get = |api: &std::net::SocketAddr, path: &str| -> Option<Value> {
                    let r = http.request(*api, "GET", path, None, None).ok()?;
                    serde_json::from_slice(&r.body).ok()
                };
                let copied = || -> bool {
                    let held: Vec<std::collections::HashSet<String>> = apis
                        .iter()
                        .map(|a| {
                            get(a, "/v1/blobs")
                                .and_then(|v| v["blobs"].as_array().cloned())
                                .unwrap_or_default()
                                .iter()
                                .filter(|b| b["durable"] == true)
                                .filter_map(|b| b["hash"].as_str().map(String::from))
                                .collect()
                        })
                        .collect();
                    // Each holder's list of chunks, as the others know it:
                    // covering all its bytes, and kept by two others.
                    let lists = get(&apis[0], "/v1/datasets")
                        .and_then(|v| v["datasets"].as_array().cloned())
                        .and_then(|ds| ds.into_iter().find(|d| d["name"] == DATASET))
                        .and_then(|d| d["holders"].as_array().cloned())
                        .unwrap_or_default();
                    let lists_kept = lists.len() == n
                        && lists.iter().all(|h| {
                            let Some(hash) = h["copy"]["hash"].as_str() else { return false };
                            h["copy"]["bytes"] == h["bytes"]
                                && held.iter().filter(|s| s.contains(hash)).count() >= 2.min(n - 1)
                        });
                    lists_kept
                        && apis.iter().enumerate().all(|(i, a)| {
                            let Some(snap) = get(a, &format!("/v1/sources/{DATASET}/snapshot")) else { return false };
                            snap["chunks"].as_array().is_some_and(|cs| {
                                cs.iter().filter_map(|c| c["hash"].as_str()).all(|h| {
                                    held.iter().enumerate().filter(|(j, s)| *j != i && s.contains(h)).count()
                                        >= 2.min(n - 1)
                                })
                            })
                        })
                };
                while !(apis.iter().all(|a| sealed(a) == Some(true)) && copied()) {
                    if t0.elapsed() > Duration::from_secs(60) {
                        bail!("the holders' files were not all sealed into chunks and copied twice within 60 s");
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                let victims: Vec<usize> = (0..m).map(|j| all[1 + j * (n - 1) / m]).collect();
                for &v in &victims {
                    tc.cluster.kill(v)?;
                }
                tc.cluster.save()?;
                apis = all
                    .iter()
                    .filter(|i| !victims.contains(i))
                    .filter_map(|&i| tc.cluster.state.nodes.get(i).map(|r| r.api()))
                    .collect();
                out!("{} {n} nodes: SIGKILLed {m} ({victims:?})", clock_now());
                // Until a search covers the whole corpus again (the dead
                // holders' lists and chunks found on their copies); if none
                // does within a minute, the queries are asked all the same
                // and the table says how many answers are still the one
                // index's.
                let t0 = Instant::now();
                loop {
                    let last = ask(&apis, 0);
                    match &last {
                        Ok((_, v)) if v["coverage"]["share"].as_f64() == Some(1.0) => break,
                        _ if t0.elapsed() > Duration::from_secs(60) => {
                            let cov = last.as_ref().map_or_else(|e| e.to_string(), |(_, v)| v["coverage"].to_string());
                            out!("{} {n} nodes: no search covered the whole corpus within 60 s: {cov}", clock_now());
                            break;
                        }
                        _ => std::thread::sleep(Duration::from_millis(200)),
                    }
                }
            }
            let l = super::bench::load1();
            let next = AtomicUsize::new(0);
            let t = Instant::now();
            let answers: Vec<Vec<(usize, Answer)>> = std::thread::scope(|s| {
                let workers: Vec<_> = (0..clients)
                    .map(|_| {
                        s.spawn(|| {
                            let mut mine = Vec::new();
                            loop {
                                let i = next.fetch_add(1, Ordering::Relaxed);
                                if i >= queries.len() {
                                    break;
                                }
                                mine.push((i, ask(&apis, i)));
                            }
                            mine
                        })
                    })
                    .collect();
                workers.into_iter().map(|w| w.join().unwrap_or_default()).collect()
            });
            let wall = t.elapsed().as_secs_f64();
            let mut lat = Vec::new();
            let mut same = 0;
            for (i, a) in answers.into_iter().flatten() {
                let (secs, v) = a?;
                lat.push(secs);
                same += usize::from(want.get(i).is_some_and(|w| *w == v["hits"]));
            }
            lat.sort_by(f64::total_cmp);
            let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize] * 1000.0;
            let row = Row {
                system: match pass {
                    0 => "ryx (terms new)".into(),
                    1 => "ryx (terms known)".into(),
                    _ => format!("ryx, {} of {n} killed", kill.unwrap_or(0)),
                },
                nodes: n,
                clients,
                qps: queries.len() as f64 / wall.max(1e-9),
                p50_ms: pct(0.5),
                p99_ms: pct(0.99),
                same: Some((same, queries.len())),
                load1: l,
            };
            out!(
                "{} {n} nodes, {clients} clients: {:.1} queries/s, p50 {:.1} ms, p99 {:.1} ms; {same} of {} answers are the one index's",
                clock_now(),
                row.qps,
                row.p50_ms,
                row.p99_ms,
                queries.len()
            );
            rows.push(row);
        }
        tc.stop()?;
    }
    out!("");
    let base_qps = rows[0].qps;
    let header = ["system", "nodes", "clients", "queries/s", "x one index", "p50 ms", "p99 ms", "same hits", "load"];
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.system.clone(),
                r.nodes.to_string(),
                r.clients.to_string(),
                format!("{:.1}", r.qps),
                format!("{:.4}", r.qps / base_qps),
                format!("{:.2}", r.p50_ms),
                format!("{:.2}", r.p99_ms),
                r.same.map_or("-".into(), |(s, n)| format!("{s}/{n}")),
                format!("{:.2}", r.load1),
            ]
        })
        .collect();
    out!("{}", table(&header, &body));
    Ok(())
}
