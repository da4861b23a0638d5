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
    let spec = JobSpec::new(&args.kind, &params)?;
    let data: Vec<Vec<u8>> = args
        .inputs
        .iter()
        .map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
        .collect::<anyhow::Result<_>>()?;
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
