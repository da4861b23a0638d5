//! `ryx-node exec`: a job's kernels in one process, no network.

use crate::cli::ExecArgs;
use anyhow::Context;
use ryx_compute::JobSpec;
use serde_json::{Map, Value};

/// Parses repeated `KEY=VALUE` params into a JSON object.
pub fn parse_params(params: &[String]) -> anyhow::Result<Value> {
    let mut map = Map::new();
    for p in params {
        let (k, v) = p.split_once('=').with_context(|| format!("--param {p:?} is not KEY=VALUE"))?;
        let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        map.insert(k.to_string(), v);
    }
    Ok(Value::Object(map))
}

/// Runs the job and prints its result.
pub fn run(args: ExecArgs) -> anyhow::Result<()> {
    let params = parse_params(&args.params)?;
    if args.kind == "search" && args.queries.is_some() {
        return search_queries(&args, &params);
    }
    if args.kind == "search" && params.get("stats").is_none() {
        return search_reference(&args, &params);
    }
    let spec = JobSpec::new(&args.kind, &params)?;
    let data = read_inputs(&args.inputs)?;
    let inputs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let start = std::time::Instant::now();
    let run = ryx_compute::run_local(&spec, &inputs, args.chunk_size, threads.max(1))?;
    let secs = start.elapsed().as_secs_f64();
    let bytes: usize = data.iter().map(|d| d.len()).sum();
    if args.json {
        println!("{}", String::from_utf8_lossy(&run.result_bytes));
    } else {
        println!("{}", serde_json::to_string_pretty(&run.result)?);
        println!("result_digest: {}", run.result_digest);
    }
    eprintln!(
        "exec {}: {} units, {:.1} MiB in {:.3} s ({:.1} MiB/s, {} threads)",
        args.kind,
        run.units,
        bytes as f64 / 1048576.0,
        secs,
        bytes as f64 / 1048576.0 / secs.max(1e-9),
        threads
    );
    Ok(())
}

/// `exec search` without `stats`: one tantivy index over every document of
/// the inputs, scored with its own statistics (what `GET /v1/search` must
/// rank as).
fn search_reference(args: &ExecArgs, params: &serde_json::Value) -> anyhow::Result<()> {
    let q = params.get("q").and_then(|v| v.as_str()).context("search needs --param q=QUERY")?;
    let k = params.get("k").and_then(|v| v.as_u64()).unwrap_or(10) as usize;
    let distinct = params.get("distinct_words").and_then(|v| v.as_bool()).unwrap_or(false);
    let data = read_inputs(&args.inputs)?;
    let inputs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
    let start = std::time::Instant::now();
    let r = ryx_compute::search::reference(&inputs, q, k, distinct)?;
    let bytes = ryx_compute::canonical_json(&r);
    if args.json {
        println!("{}", String::from_utf8_lossy(&bytes));
    } else {
        println!("{}", serde_json::to_string_pretty(&r)?);
        println!("result_digest: {}", ryx_compute::digest_hex(&bytes));
    }
    eprintln!("exec search: {} documents in {:.3} s (one index)", r["docs"], start.elapsed().as_secs_f64());
    Ok(())
}

/// `exec search --queries FILE`: one index over the inputs, every query of
/// the file asked of it by `--threads` threads (default 1); the throughput
/// and the latency percentiles, and with `--json` each query's hit ids.
fn search_queries(args: &ExecArgs, params: &serde_json::Value) -> anyhow::Result<()> {
    let path = args.queries.as_ref().context("--queries FILE")?;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let queries: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    anyhow::ensure!(!queries.is_empty(), "{} holds no query", path.display());
    let k = params.get("k").and_then(|v| v.as_u64()).unwrap_or(10) as usize;
    let distinct = params.get("distinct_words").and_then(|v| v.as_bool()).unwrap_or(false);
    let data = read_inputs(&args.inputs)?;
    let inputs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
    let t0 = std::time::Instant::now();
    let index = ryx_compute::search::OneIndex::new(&inputs)?;
    let build_s = t0.elapsed().as_secs_f64();
    let threads = args.threads.unwrap_or(1).clamp(1, queries.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<Option<(f64, Value)>> = vec![None; queries.len()];
    let t1 = std::time::Instant::now();
    let answered: Vec<Vec<(usize, f64, Value)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(q) = queries.get(i) else { break };
                        let t = std::time::Instant::now();
                        let r = index
                            .search(q, k, distinct)
                            .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
                        mine.push((i, t.elapsed().as_secs_f64(), r));
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_default()).collect()
    });
    let wall = t1.elapsed().as_secs_f64();
    for (i, secs, r) in answered.into_iter().flatten() {
        out[i] = Some((secs, r));
    }
    let mut lat: Vec<f64> = out.iter().flatten().map(|(s, _)| *s).collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize] * 1000.0;
    let summary = serde_json::json!({
        "docs": index.docs(),
        "queries": queries.len(),
        "threads": threads,
        "build_s": build_s,
        "qps": queries.len() as f64 / wall.max(1e-9),
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
    });
    if args.json {
        let hits: Vec<Value> = out.iter().map(|o| o.as_ref().map_or(Value::Null, |(_, r)| r["hits"].clone())).collect();
        let mut all = summary;
        all["hits"] = Value::Array(hits);
        println!("{all}");
    } else {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}

/// The bytes of every input file, in order.
fn read_inputs(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    paths.iter().map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))).collect()
}
