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

/// The bytes of every input file, in order.
fn read_inputs(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    paths.iter().map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))).collect()
}
