//! The home's side of a job, alone: every unit's partial mapped and
//! encoded beforehand, then the serial fold a job's home does (decode each
//! partial, merge it in) and the finish, timed. This is the part of a
//! dataset word-count that runs after the last unit is decided.
//!
//! ```text
//! cargo run --release -p ryx-compute --example bench_fold -- /tmp/corpus-256.log [KIND] [CHUNK_MIB] [REPEATS]
//! ```

use ryx_compute::split_chunks;
use ryx_compute::JobSpec;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: bench_fold FILE [KIND] [CHUNK_MIB] [REPEATS]");
        std::process::exit(2);
    };
    let kind = args.get(2).map_or("word-count", String::as_str);
    let chunk_mib: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(4);
    let repeats: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(3);
    let data = std::fs::read(path).expect("read the corpus");
    let spec = JobSpec::new(kind, &serde_json::json!({})).expect("spec");
    let t = Instant::now();
    let encoded: Vec<Vec<u8>> =
        split_chunks(&data, chunk_mib << 20).into_iter().map(|r| spec.map(&data[r]).expect("map").to_bytes()).collect();
    let map_s = t.elapsed().as_secs_f64();
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    println!(
        "{kind}: {} units of {chunk_mib} MiB mapped and encoded in {map_s:.2} s (one thread); partials {:.1} MB",
        encoded.len(),
        bytes as f64 / 1e6
    );
    for _ in 0..repeats {
        let t = Instant::now();
        let acc = spec.fold_encoded(None, &encoded).expect("fold");
        let fold_s = t.elapsed().as_secs_f64();
        let result = spec.finish_bytes(acc).expect("finish");
        let all_s = t.elapsed().as_secs_f64();
        println!(
            "fold {fold_s:.3} s, finish {:.3} s, total {all_s:.3} s ({} result bytes, digest {})",
            all_s - fold_s,
            result.len(),
            &ryx_compute::digest_hex(&result)[..16]
        );
    }
}
