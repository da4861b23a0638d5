//! Jobs over data that lives in the nodes' own files (`--source`): sent to
//! a node that holds none of it, exact against `ryx-node exec` over the
//! holders' files in canonical order (node id, then path, then offset),
//! and covering lines appended before the job started.

mod support;

use ryx_api::{ErrorCode, SubmitJob, Submitted};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use support::*;

/// Log-like lines: `n` of them, different per `seed`.
fn lines(seed: u64, n: usize) -> String {
    let words = ["alpha", "beta", "ERROR", "INFO", "disk", "timeout", "retry", "user=7", "GET", "/api/v1"];
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = String::new();
    for i in 0..n {
        out.push_str(&format!("2026-12-05 10:{:02}:{:02} ", (i / 60) % 60, i % 60));
        for _ in 0..(3 + i % 7) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            out.push_str(words[(s % words.len() as u64) as usize]);
            out.push(' ');
        }
        out.push_str(&format!("n{}\n", s % 1000));
    }
    out
}

struct Holder {
    node: NodeProc,
    dir: ryx_testkit::ScratchDir,
}

/// The holders' files concatenated in canonical order: node id, then path.
fn canonical(holders: &[Holder], into: &std::path::Path) {
    let mut order: Vec<&Holder> = holders.iter().collect();
    order.sort_by_key(|h| h.node.id.to_string());
    let mut out = Vec::new();
    for h in order {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(h.dir.path()).expect("dir").map(|e| e.expect("entry").path()).collect();
        files.sort();
        for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "log")) {
            out.extend(std::fs::read(f).expect("read"));
        }
    }
    std::fs::write(into, out).expect("write");
}

fn submit(port: u16, kind: &str, params: serde_json::Value) -> Result<Submitted, ryx_api::Error> {
    let mut job = SubmitJob::over_dataset(kind, "app");
    job.params = params;
    job.redundancy = Some(2);
    client(port).submit(&job)
}

/// Waits until the entry node has heard every holder announce the
/// dataset (each does within a second of reading its files), then submits.
fn submit_when_known(port: u16, kind: &str, params: serde_json::Value, holders: usize) -> Submitted {
    let known = || {
        client(port)
            .info_items()
            .map_or(0, |items| items.iter().filter(|i| i.key.starts_with("ryx/source/app/")).count())
    };
    let ok = wait_until(Duration::from_secs(30), || known() == holders);
    assert!(ok.is_some(), "the entry node heard {} of {holders} holders", known());
    submit(port, kind, params).unwrap_or_else(|e| panic!("submit {kind}: {e}"))
}

#[test]
fn a_job_sent_to_a_node_holding_nothing_equals_exec_over_the_canonical_concatenation() {
    let discovery = discovery_port();
    let chunk = ["--chunk-size", "16KiB", "--workers", "1"];
    let entry = start_any_node("ds", discovery, &chunk);
    let holders: Vec<Holder> = (0..4)
        .map(|i| {
            let dir = ryx_testkit::ScratchDir::new("dataset");
            for f in 0..2 {
                std::fs::write(dir.path().join(format!("app-{f}.log")), lines(i * 10 + f, 600 + 300 * i as usize))
                    .expect("write");
            }
            let spec = format!("app={}/*.log", dir.path().display());
            let mut args = chunk.to_vec();
            args.extend(["--source", spec.as_str()]);
            Holder { node: start_any_node("ds", discovery, &args), dir }
        })
        .collect();
    let ports: Vec<u16> = std::iter::once(entry.port).chain(holders.iter().map(|h| h.node.port)).collect();
    let scratch = ryx_testkit::ScratchDir::new("dataset-ref");
    let all = scratch.path().join("all.log");
    canonical(&holders, &all);
    let bytes = std::fs::metadata(&all).expect("stat").len();
    assert!(entry.client().sources().map(|s| s.sources.is_empty()).unwrap_or(false), "the entry holds nothing");

    for (kind, params, exec_params) in [
        ("word-count", serde_json::json!({}), vec![]),
        ("grep", serde_json::json!({"pattern": "ERROR.*n9"}), vec!["pattern=ERROR.*n9"]),
        ("log-analysis", serde_json::json!({}), vec![]),
    ] {
        let want = exec_digest(kind, &all, &exec_params);
        let s = submit_when_known(entry.port, kind, params, 4);
        let t = std::time::Instant::now();
        let v = wait_done(&ports, &s.job_id, Duration::from_secs(90));
        eprintln!("{kind}: {:?} {:?}", t.elapsed(), v.stats);
        assert_eq!(v.state, ryx_api::JobState::Done, "{kind}: {v:?}");
        assert_eq!(v.result_digest.as_deref(), Some(want.as_str()), "{kind} differs from exec");
        let d = v.dataset.expect("the job names its snapshot");
        assert_eq!((d.name.as_str(), d.nodes, d.bytes), ("app", 4, bytes));
        assert_eq!(Some(&d), s.dataset.as_ref());
        assert_eq!((v.progress.bytes_done, v.progress.bytes_total), (bytes, bytes));
        // More than 16 units (the default fan-in): partials were folded
        // along the merge tree, exactly.
        let units = v.progress.units_total as u64;
        assert!(units > 16 && v.stats.combines == units.div_ceil(16), "{units} units: {:?}", v.stats);
    }

    // The entry lists the dataset with what each holder announced.
    let listed = entry.client().datasets().expect("GET /v1/datasets");
    assert_eq!(listed.datasets.len(), 1, "{listed:?}");
    let d = &listed.datasets[0];
    let mut ids: Vec<String> =
        holders.iter().map(|h| h.node.client().status().expect("status").node_id.to_string()).collect();
    ids.sort();
    let listed_ids: Vec<String> = d.holders.iter().map(|h| h.node.to_string()).collect();
    assert_eq!((d.name.as_str(), listed_ids), ("app", ids), "{d:?}");
    assert_eq!(d.files, 8, "{d:?}");
    assert_eq!(d.bytes, d.holders.iter().map(|h| h.bytes).sum::<u64>());
    assert!(d.bytes <= bytes && d.bytes > 0, "announced {} of {bytes} bytes", d.bytes);

    // The same from the command line, at another node.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ryx-node"))
        .args(["run", "word-count", "--dataset", "app", "--node", &format!("127.0.0.1:{}", holders[2].node.port)])
        .output()
        .expect("ryx-node run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    let want = exec_digest("word-count", &all, &[]);
    assert!(text.contains(&format!("result_digest: {want}")), "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ryx-node"))
        .args(["run", "word-count", "--dataset", "nothing-here", "--node", &format!("127.0.0.1:{}", entry.port)])
        .output()
        .expect("ryx-node run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown_dataset"), "{out:?}");

    // Lines appended before a job starts are in its snapshot, without
    // waiting for a chunk to fill.
    let grown = &holders[1];
    let mut f = std::fs::OpenOptions::new().append(true).open(grown.dir.path().join("app-1.log")).expect("open");
    f.write_all(lines(99, 5).as_bytes()).expect("append");
    drop(f);
    canonical(&holders, &all);
    let bytes2 = std::fs::metadata(&all).expect("stat").len();
    let want = exec_digest("word-count", &all, &[]);
    let s = submit_when_known(entry.port, "word-count", serde_json::json!({}), 4);
    assert_eq!(s.dataset.as_ref().map(|d| d.bytes), Some(bytes2), "appended lines are in the snapshot at once");
    let v = wait_done(&ports, &s.job_id, Duration::from_secs(90));
    assert_eq!(v.result_digest.as_deref(), Some(want.as_str()), "appended lines missed: {v:?}");
}

#[test]
fn a_dataset_nobody_holds_or_a_bad_request_gets_a_clear_error() {
    let node = start_any_node("ds-err", discovery_port(), &[]);
    let e = submit(node.port, "word-count", serde_json::json!({})).expect_err("nobody holds it");
    assert_eq!(e.code(), Some(&ErrorCode::UnknownDataset), "{e}");
    let mut both = SubmitJob::over_dataset("word-count", "app");
    both.inputs = vec!["ab".repeat(32).as_str().into()];
    let e = node.client().submit(&both).expect_err("inputs and a dataset");
    assert_eq!(e.code(), Some(&ErrorCode::Invalid), "{e}");
    let e = node.client().submit(&SubmitJob::over_dataset("word-count", "../etc")).expect_err("bad name");
    assert_eq!(e.code(), Some(&ErrorCode::UnknownDataset), "{e}");
    let e = node.client().submit(&SubmitJob::over_dataset("no-such-kind", "app")).expect_err("bad kind");
    assert_eq!(e.code(), Some(&ErrorCode::UnknownKind), "{e}");
    let (status, _) = http(node.port, "GET", "/v1/sources/app/snapshot", None).expect("answer");
    assert_eq!(status, 404);
}

#[test]
fn a_job_survives_the_entry_node_and_half_the_holders_killed_mid_job() {
    let discovery = discovery_port();
    // Three copies elsewhere of every chunk: with three nodes killed, one
    // is always left.
    let common = ["--chunk-size", "16KiB", "--workers", "1", "--source-copies", "3"];
    let entry = start_any_node("ds-kill", discovery, &common);
    let holders: Vec<Holder> = (0..5)
        .map(|i| {
            let dir = ryx_testkit::ScratchDir::new("dataset-kill");
            std::fs::write(dir.path().join("app.log"), lines(100 + i, 1500)).expect("write");
            let spec = format!("app={}/*.log", dir.path().display());
            let mut args = common.to_vec();
            args.extend(["--source", spec.as_str()]);
            Holder { node: start_any_node("ds-kill", discovery, &args), dir }
        })
        .collect();
    let scratch = ryx_testkit::ScratchDir::new("dataset-kill-ref");
    let all = scratch.path().join("all.log");
    canonical(&holders, &all);
    let want = exec_digest("word-count", &all, &[]);

    // Every file sealed to its end (quiet for three scans), and three kept
    // copies of every chunk on other nodes.
    let chunks = || -> Option<u64> {
        let mut n = 0;
        for h in &holders {
            let s = h.node.client().sources().ok()?.sources.into_iter().next()?;
            if s.sealed_bytes != s.bytes {
                return None;
            }
            n += s.chunks;
        }
        Some(n)
    };
    let kept = || -> u64 {
        let names: std::collections::HashSet<_> =
            holders.iter().flat_map(|h| source_chunk_names(&h.node, "app")).collect();
        std::iter::once(&entry).chain(holders.iter().map(|h| &h.node)).map(|n| durable_among(n, &names) as u64).sum()
    };
    let copied = wait_until(Duration::from_secs(60), || chunks().is_some_and(|c| kept() >= 3 * c));
    assert!(copied.is_some(), "copies not made: {:?} chunks, {} kept", chunks(), kept());

    let s = submit_when_known(entry.port, "word-count", serde_json::json!({}), 5);
    // Mid-job: the entry (the job's home) and two holders die at once.
    entry.signal("KILL");
    holders[0].node.signal("KILL");
    holders[3].node.signal("KILL");
    let survivors: Vec<u16> = [1, 2, 4].iter().map(|&i| holders[i].node.port).collect();
    let v = wait_done(&survivors, &s.job_id, Duration::from_secs(120));
    assert_eq!(v.state, ryx_api::JobState::Done, "{v:?}");
    assert_eq!(v.result_digest.as_deref(), Some(want.as_str()), "differs from exec: {v:?}");
    assert!(v.home != entry.id && v.stats.takeovers >= 1, "the job ended before its home was killed: {v:?}");
}

/// `--zone`: the copies of a node's chunks go to another failure domain
/// first, though the node's other neighbours share its own; copies made
/// before that domain was known get one more copy in it.
#[test]
fn copies_of_local_chunks_go_to_another_zone() {
    let discovery = discovery_port();
    let common = ["--chunk-size", "8KiB", "--workers", "1", "--source-copies", "1"];
    let dir = ryx_testkit::ScratchDir::new("dataset-zone");
    std::fs::write(dir.path().join("app.log"), lines(7, 1200)).expect("write");
    let spec = format!("app={}/*.log", dir.path().display());
    let with = |zone: &str, extra: &[&str]| {
        let mut args = common.to_vec();
        args.extend(["--zone", zone]);
        args.extend(extra);
        start_any_node("ds-zone", discovery, &args)
    };
    let owner = with("rack-a", &["--source", spec.as_str()]);
    let same: Vec<NodeProc> = (0..2).map(|_| with("rack-a", &[])).collect();
    let other = with("rack-b", &[]);
    assert_eq!(owner.client().status().expect("status").zone.as_deref(), Some("rack-a"));
    let durable = |n: &NodeProc| durable_among(n, &source_chunk_names(&owner, "app"));
    let chunks =
        || owner.client().sources().ok().and_then(|s| s.sources.first().map(|v| (v.chunks, v.sealed_bytes == v.bytes)));
    let done = wait_until(Duration::from_secs(60), || {
        chunks().is_some_and(|(c, sealed)| sealed && c > 4 && durable(&other) == c as usize)
    });
    let in_a: usize = same.iter().map(durable).sum();
    assert!(done.is_some(), "rack-b keeps {} of {:?} chunks; rack-a nodes keep {in_a}", durable(&other), chunks());
    // A copy made in rack-a before rack-b's zone was heard of stays (one
    // more copy went to rack-b): at most one per chunk.
    assert!(in_a <= chunks().map_or(0, |c| c.0 as usize), "{in_a} copies in rack-a");
    // A bad zone is refused at start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ryx-node"))
        .args(["--zone", "a b", "--port", &free_port().to_string()])
        .output()
        .expect("ryx-node");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("zone"), "{out:?}");
}
