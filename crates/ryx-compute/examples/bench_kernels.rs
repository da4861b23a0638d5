//! Throughput of the kernels on a corpus, next to `LC_ALL=C wc -w` and
//! `LC_ALL=C grep -c ERROR` timed in the same process run.
//!
//! ```text
//! bash /work/shared/bench/make-corpus.sh /tmp/corpus-256.log 256
//! cargo run --release -p ryx-compute --example bench_kernels -- /tmp/corpus-256.log [REPEATS] [LOG_MIB]
//! ```
//! MB/s are 10^6 bytes per second of wall time, median of REPEATS (default 3) runs.
//! log-analysis runs on the first LOG_MIB MiB (default 32) of the corpus.

use ryx_compute::{run_local, JobSpec, DEFAULT_CHUNK_SIZE};
use serde_json::json;
use std::process::Command;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU seconds (user + system) used by this process so far; NaN where
/// `/proc/self/stat` is unavailable. Assumes the usual 100 ticks per second.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (tick(11) + tick(12)) / 100.0
}

thread_local! {
    static LAST_CPU: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
}

/// Median wall time of `repeats` runs; the median CPU time is left in `LAST_CPU`.
fn time<T>(repeats: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut times = Vec::new();
    let mut cpus = Vec::new();
    let mut last = None;
    for _ in 0..repeats {
        let c = cpu_seconds();
        let t = Instant::now();
        let out = f();
        times.push(t.elapsed().as_secs_f64());
        cpus.push(cpu_seconds() - c);
        last = Some(out);
    }
    LAST_CPU.with(|x| x.set(median(cpus)));
    (median(times), last.expect("at least one repeat"))
}

fn shell(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).env("LC_ALL", "C").output().expect("run baseline command");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).map_or("/tmp/corpus-256.log", String::as_str);
    let repeats: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let log_mib: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(32);
    let data = std::fs::read(path).unwrap_or_else(|e| {
        eprintln!("cannot read {path}: {e}\nmake it with: bash /work/shared/bench/make-corpus.sh {path} 256");
        std::process::exit(2)
    });
    let mb = data.len() as f64 / 1e6;
    println!("corpus {path}: {} bytes ({mb:.1} MB), chunk {DEFAULT_CHUNK_SIZE} B, median of {repeats}", data.len());
    println!("{:<34} {:>9} {:>10} {:>8}  output", "what", "seconds", "MB/s", "cpu s");
    // "cpu s" is this process's CPU time (baselines run in child processes: n/a).
    let row = |what: &str, secs: f64, bytes: f64, out: &str| {
        let cpu = LAST_CPU.with(|x| x.get());
        println!("{what:<34} {secs:>9.3} {:>10.1} {cpu:>8.2}  {out}", bytes / secs);
    };

    let (t, out) = time(repeats, || shell("wc", &["-w", path]));
    row("LC_ALL=C wc -w", t, mb, &out);
    let (t, out) = time(repeats, || shell("grep", &["-c", "ERROR", path]));
    row("LC_ALL=C grep -c ERROR", t, mb, &out);

    let wc = JobSpec::new("word-count", &json!({"top": 5})).expect("spec");
    for threads in [1, 2] {
        let (t, r) = time(repeats, || run_local(&wc, &[&data], DEFAULT_CHUNK_SIZE, threads).expect("run"));
        let out = format!("total_words={} distinct={}", r.result["total_words"], r.result["distinct_words"]);
        row(&format!("ryx word-count, {threads} thread(s)"), t, mb, &out);
    }

    let grep = JobSpec::new("grep", &json!({"pattern": "ERROR"})).expect("spec");
    for threads in [1, 2] {
        let (t, r) = time(repeats, || run_local(&grep, &[&data], DEFAULT_CHUNK_SIZE, threads).expect("run"));
        row(
            &format!("ryx grep ERROR, {threads} thread(s)"),
            t,
            mb,
            &format!("matching_lines={}", r.result["matching_lines"]),
        );
    }
    let grep2 = JobSpec::new("grep", &json!({"pattern": "[0-9]+ ms"})).expect("spec");
    let (t, r) = time(repeats, || run_local(&grep2, &[&data], DEFAULT_CHUNK_SIZE, 1).expect("run"));
    row("ryx grep '[0-9]+ ms', 1 thread", t, mb, &format!("matching_lines={}", r.result["matching_lines"]));

    let cut = ryx_compute::split_chunks(&data, log_mib << 20).first().map_or(0, |r| r.end);
    let part = &data[..cut];
    let la = JobSpec::new("log-analysis", &json!({})).expect("spec");
    for threads in [1, 2] {
        let (t, r) = time(repeats, || run_local(&la, &[part], DEFAULT_CHUNK_SIZE, threads).expect("run"));
        let out = format!(
            "lines={} templates={} alerts={}",
            r.result["lines"],
            r.result["templates"].as_array().map_or(0, Vec::len),
            r.result["alerts"]["count"]
        );
        row(&format!("ryx log-analysis ({log_mib} MiB), {threads} thr"), t, cut as f64 / 1e6, &out);
    }

    // What travels over the network: one default-size unit, encoded and decoded.
    let unit = &data[..ryx_compute::split_chunks(&data, DEFAULT_CHUNK_SIZE).first().map_or(0, |r| r.end)];
    for (name, spec) in [("word-count", &wc), ("grep ERROR", &grep), ("log-analysis", &la)] {
        let p = spec.map(unit).expect("map");
        let (t_enc, bytes) = time(repeats, || p.to_bytes());
        let (t_dec, _) = time(repeats, || ryx_compute::Partial::from_bytes(&bytes).expect("decode"));
        println!(
            "partial of one {} B unit, {name:<12}: {:>9} bytes, encode {:.1} ms, decode {:.1} ms",
            unit.len(),
            bytes.len(),
            t_enc * 1e3,
            t_dec * 1e3
        );
    }
}
