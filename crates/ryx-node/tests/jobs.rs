//! Process-level tests of distributed jobs: real nodes, real kernels, real
//! HTTP blob transfers, compared with `ryx-node exec`.

mod support;

use ryx_api::{BlobHash, BlobKind, ErrorBody, ErrorCode, JobId, JobState, SubmitJob, UploadOptions, Uploaded};
use serde_json::json;
use std::time::Duration;
use support::*;

/// Deterministic log-like text of about `bytes` bytes.
fn corpus(bytes: usize) -> Vec<u8> {
    let words = ["alpha", "beta", "gamma", "ERROR", "INFO", "disk", "node-7", "timeout", "ok", "retry", "x=42"];
    let mut out = Vec::with_capacity(bytes + 100);
    let mut seed: u64 = 7;
    let mut line = 0u64;
    while out.len() < bytes {
        line += 1;
        out.extend_from_slice(format!("2026-11-26 12:00:{:02} ", line % 60).as_bytes());
        for _ in 0..(3 + line % 9) {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            out.extend_from_slice(words[(seed >> 33) as usize % words.len()].as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(format!("id={}\n", seed % 997).as_bytes());
    }
    out
}

fn upload_with(port: u16, data: &[u8], options: &UploadOptions) -> Uploaded {
    client(port).put_blob(data, options).unwrap_or_else(|e| panic!("upload: {e}"))
}

fn upload(port: u16, data: &[u8]) -> BlobHash {
    upload_with(port, data, &UploadOptions::default()).hash
}

/// Submits `kind` over `input` with `params` and `redundancy`.
fn submit(port: u16, kind: &str, input: &BlobHash, params: serde_json::Value, redundancy: u8) -> JobId {
    let mut job = SubmitJob::new(kind, vec![input.clone()]);
    job.params = params;
    job.redundancy = Some(redundancy);
    client(port).submit_job(&job).unwrap_or_else(|e| panic!("submit: {e}"))
}

/// Units of `job` done as node `port` sees it (0 if it does not answer).
fn units_done(port: u16, job: &JobId) -> u32 {
    client(port).job(job).map_or(0, |v| v.progress.units_done)
}

fn write_temp(name: &str, data: &[u8]) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("ryx-{}-{name}", std::process::id()));
    std::fs::write(&p, data).expect("write temp");
    p
}

#[test]
fn cluster_result_equals_single_process_reference_for_every_kind() {
    let nodes = start_nodes(5, "jobs", &["--chunk-size", "64KiB", "--workers", "1"]);
    assert!(wait_until(Duration::from_secs(15), || all_have(&nodes, 4)).is_some(), "cluster did not form");
    let data = corpus(600_000);
    let file = write_temp("kinds.log", &data);
    let hash = upload(nodes[0].port, &data);
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let cases: [(&str, serde_json::Value, Vec<&str>); 3] = [
        ("word-count", json!({"top": 5}), vec!["top=5"]),
        ("grep", json!({"pattern": "ERROR|timeout"}), vec!["pattern=ERROR|timeout"]),
        ("log-analysis", json!({}), vec![]),
    ];
    for (kind, params, exec_params) in cases {
        let want = exec_digest(kind, &file, &exec_params);
        for redundancy in [1, 2] {
            let job = submit(nodes[0].port, kind, &hash, params.clone(), redundancy);
            // Ask a node other than the home.
            let v = wait_done(&ports[3..], &job, Duration::from_secs(60));
            assert_eq!(v.state, JobState::Done, "{kind}: {v:?}");
            assert_eq!(
                v.result_digest.as_deref(),
                Some(want.as_str()),
                "{kind} r={redundancy}: digest differs from exec"
            );
            assert!(v.progress.units_total >= 9, "{v:?}");
            assert_eq!(v.progress.units_done, v.progress.units_total);
            assert!(v.result.as_ref().is_some_and(serde_json::Value::is_object), "{v:?}");
        }
    }
    let _ = std::fs::remove_file(file);

    // A job sent to a node that does not hold its input: it asks the
    // nearest nodes for it, as content addressing promises.
    let data = corpus(250_000);
    let file = write_temp("elsewhere.log", &data);
    let none = UploadOptions { energy: Some(0.0), copies: Some(1), ..UploadOptions::default() };
    let up = upload_with(nodes[0].port, &data, &none);
    let other = nodes[4].port;
    // The nearest nodes it asks are those its topology lists (learned from
    // diffused neighbour lists, which take a round to arrive).
    let knows = || client(other).topology().is_ok_and(|t| t.nodes.iter().any(|n| n.node_id == nodes[0].id));
    assert!(wait_until(Duration::from_secs(20), knows).is_some(), "node 4 never learned node 0");
    let held = client(other).blobs().expect("blobs").blobs.iter().any(|b| b.hash == up.hash);
    assert!(!held, "the input was not to be copied to node 4");
    let job = submit(other, "word-count", &up.hash, json!({}), 1);
    let v = wait_done(&ports, &job, Duration::from_secs(60));
    assert_eq!(v.result_digest.as_deref(), Some(exec_digest("word-count", &file, &[]).as_str()), "{v:?}");
    let _ = std::fs::remove_file(file);
}

#[test]
fn a_lying_node_is_outvoted_with_redundancy_three() {
    let disc = discovery_port();
    let mut nodes: Vec<NodeProc> =
        (1..=7).map(|_| start_any_node("liar", disc, &["--chunk-size", "32KiB", "--workers", "1"])).collect();
    nodes.push(start_any_node(
        "liar",
        disc,
        &["--chunk-size", "32KiB", "--workers", "1", "--fault", "corrupt-results=1"],
    ));
    assert!(wait_until(Duration::from_secs(15), || all_have(&nodes, 4)).is_some(), "cluster did not form");
    let data = corpus(800_000);
    let file = write_temp("liar.log", &data);
    let want = exec_digest("word-count", &file, &[]);
    let hash = upload(nodes[0].port, &data);
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    // Work goes where there is room, so the liar may get none in a given
    // job: run jobs until it has been caught (every one must be right).
    let mut disagreements = 0;
    for _ in 0..8 {
        let job = submit(nodes[0].port, "word-count", &hash, json!({}), 3);
        let v = wait_done(&ports, &job, Duration::from_secs(60));
        assert_eq!(v.state, JobState::Done, "{v:?}");
        assert_eq!(v.result_digest.as_deref(), Some(want.as_str()), "a lie got through: {v:?}");
        disagreements += v.stats.disagreements;
        if disagreements >= 1 {
            break;
        }
    }
    assert!(disagreements >= 1, "the liar was never caught disagreeing in eight jobs");
    let _ = std::fs::remove_file(file);
}

#[test]
fn job_survives_its_home_and_half_the_nodes_being_killed() {
    let mut nodes = start_nodes(10, "survive", &["--chunk-size", "64KiB", "--workers", "1"]);
    assert!(wait_until(Duration::from_secs(20), || all_have(&nodes, 4)).is_some(), "cluster did not form");
    let data = corpus(3_000_000);
    let file = write_temp("survive.log", &data);
    let want = exec_digest("log-analysis", &file, &[]);
    // Five of the ten nodes die below: ask for six verified copies of every
    // chunk, so some copy survives whichever five die. (With the default
    // three, answered before the replication tree has grown, a loaded run
    // could lose every copy of a chunk and the job then fails, rightly.)
    let up = upload_with(nodes[0].port, &data, &UploadOptions { copies: Some(6), ..UploadOptions::default() });
    assert!(up.copies >= 6, "{up:?}");
    let job = submit(nodes[0].port, "log-analysis", &up.hash, json!({}), 1);
    let started = wait_until(Duration::from_secs(20), || units_done(nodes[5].port, &job) >= 3);
    assert!(started.is_some(), "job made no progress");
    // Kill the home and four more: half of the cluster.
    for victim in [0usize, 1, 2, 3, 4] {
        nodes[victim].signal("KILL");
    }
    let survivors: Vec<NodeProc> = nodes.split_off(5);
    drop(nodes);
    let ports: Vec<u16> = survivors.iter().map(|n| n.port).collect();
    let v = wait_done(&ports, &job, Duration::from_secs(120));
    assert_eq!(v.state, JobState::Done, "{v:?}");
    assert_eq!(v.result_digest.as_deref(), Some(want.as_str()), "result differs after failures");
    let _ = std::fs::remove_file(file);
}

#[test]
fn upload_waits_for_far_copies_and_the_job_survives_half_the_nodes_with_those_holders_killed() {
    let mut nodes = start_nodes(12, "copies", &["--chunk-size", "64KiB", "--workers", "1"]);
    assert!(wait_until(Duration::from_secs(20), || all_have(&nodes, 4)).is_some(), "cluster did not form");
    let data = corpus(3_000_000);
    let file = write_temp("copies.log", &data);
    let want = exec_digest("word-count", &file, &[]);
    // Energy 1.5 reaches the uploader's neighbours only; asking for 9
    // copies makes the node push the chunks further out and wait until
    // the far copies have reported back.
    let far = UploadOptions { energy: Some(1.5), copies: Some(9), copies_timeout_ms: Some(60000), keep_s: None };
    let up = upload_with(nodes[0].port, &data, &far);
    assert_eq!(up.copies_wanted, 9, "{up:?}");
    assert!(up.copies >= 9, "every chunk reached 9 copies: {up:?}");
    // The count is real: every chunk is held by at least 9 nodes.
    let mut holders: std::collections::HashMap<BlobHash, usize> = Default::default();
    for n in &nodes {
        for b in n.client().blobs().expect("blobs").blobs {
            if b.kind == BlobKind::Chunk {
                *holders.entry(b.hash).or_default() += 1;
            }
        }
    }
    let chunks = up.chunks;
    assert_eq!(holders.len(), chunks);
    assert!(holders.values().all(|&c| c >= 9), "copies per chunk: {holders:?}");

    let job = submit(nodes[0].port, "word-count", &up.hash, json!({}), 1);
    let home_neighbours = nodes[0].neighbor_ids().expect("neighbours");
    let started = wait_until(Duration::from_secs(30), || units_done(nodes[0].port, &job) as usize * 4 >= chunks);
    assert!(started.is_some(), "job made no progress");
    // SIGKILL half the cluster: the home (which holds every chunk) and five
    // of the far holders the top-up created. The home's neighbours (its
    // heirs among them) survive, so the job record does; the chunks live on
    // only in the copies the upload waited for.
    let mut victims = vec![0usize];
    victims.extend((1..nodes.len()).filter(|&i| !home_neighbours.contains(&nodes[i].id)).take(5));
    for i in (1..nodes.len()).rev() {
        if victims.len() >= 6 {
            break;
        }
        if !victims.contains(&i) {
            victims.push(i);
        }
    }
    for &v in &victims {
        nodes[v].signal("KILL");
    }
    victims.sort_unstable();
    for &v in victims.iter().rev() {
        drop(nodes.remove(v));
    }
    assert_eq!(nodes.len(), 6);
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let v = try_wait_done(&ports, &job, Duration::from_secs(120)).unwrap_or_else(|e| {
        panic!("{e}\nhome's neighbours at submit: {home_neighbours:?}\nsurvivors:\n{}", diagnose(&mut nodes))
    });
    assert_eq!(v.state, JobState::Done, "{v:?}");
    assert_eq!(v.result_digest.as_deref(), Some(want.as_str()), "result differs after killing half the nodes");
    let _ = std::fs::remove_file(file);
}

#[test]
fn bad_job_requests_get_clear_errors() {
    let node = start_any_node("badjobs", discovery_port(), &["--memory-limit", "1MiB"]);
    let p = node.port;
    let hash = upload(p, b"hello world\n");
    let missing_blob = format!("/v1/blobs/{}", "b".repeat(64));
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("POST", "/v1/jobs", br#"{"kind":"teleport","inputs":[]}"#.to_vec(), 400, "unknown_kind"),
        (
            "POST",
            "/v1/jobs",
            format!(r#"{{"kind":"grep","inputs":["{hash}"],"params":{{"pattern":"("}}}}"#).into_bytes(),
            400,
            "bad_params",
        ),
        (
            "POST",
            "/v1/jobs",
            format!(r#"{{"kind":"word-count","inputs":["{}"]}}"#, "a".repeat(64)).into_bytes(),
            400,
            "unknown_input",
        ),
        ("POST", "/v1/jobs", br#"{"kind":"word-count","inputs":["nothex"]}"#.to_vec(), 400, "bad_hash"),
        (
            "POST",
            "/v1/jobs",
            format!(r#"{{"kind":"word-count","inputs":["{hash}"],"redundancy":9}}"#).into_bytes(),
            400,
            "invalid",
        ),
        ("POST", "/v1/jobs", b"{oops".to_vec(), 400, "bad_json"),
        ("PUT", "/v1/blobs", vec![b'x'; 2 << 20], 413, "too_large"),
        ("GET", "/v1/blobs/zz", vec![], 400, "bad_hash"),
        ("GET", &missing_blob, vec![], 404, "not_found"),
        ("GET", "/v1/jobs/abcdef?local=true", vec![], 404, "not_found"),
    ];
    for (m, path, body, status, code) in cases {
        let (st, text) = http(p, m, path, if body.is_empty() { None } else { Some(&body) }).expect("request");
        assert_eq!(st, status, "{m} {path}: {text}");
        let e: ErrorBody = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{m} {path}: {e}: {text}"));
        assert_eq!(e.error.code, ErrorCode::parse(code), "{m} {path}: {text}");
    }
    // Nothing of the refused upload was kept, and the node still works.
    let blobs = node.client().blobs().expect("blobs");
    assert_eq!(blobs.count, 1, "{blobs:?}");
    assert_eq!(node.client().blob(&hash).expect("the bytes"), b"hello world\n");
}

#[test]
fn a_one_chunk_upload_gets_its_copies_too() {
    // A one-chunk upload is its own manifest's only chunk: keeping "the
    // manifest" once more here used to replace the chunk's custody of k
    // copies by one, and the upload waited out its timeout with 1 of 3.
    let nodes = start_cluster(4, "onechunk");
    assert!(wait_until(Duration::from_secs(20), || all_have(&nodes, 2)).is_some(), "cluster did not form");
    let three = UploadOptions { copies: Some(3), copies_timeout_ms: Some(20000), ..UploadOptions::default() };
    let up = upload_with(nodes[0].port, b"one line\n", &three);
    assert_eq!(up.chunks, 1, "{up:?}");
    assert!(up.copies >= 3, "copies: {up:?}");
    let holders =
        nodes.iter().filter(|n| n.client().blobs().is_ok_and(|b| b.blobs.iter().any(|x| x.hash == up.hash))).count();
    assert!(holders >= 3, "held by {holders} nodes");
}
