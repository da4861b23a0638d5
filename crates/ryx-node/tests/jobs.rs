//! Process-level tests of distributed jobs: real nodes, real kernels, real
//! HTTP blob transfers, compared with `ryx-node exec`.

mod support;

use std::process::Command;
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

fn exec_digest(kind: &str, file: &std::path::Path, params: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ryx-node"));
    cmd.args(["exec", kind, "--input"]).arg(file);
    for p in params {
        cmd.args(["--param", p]);
    }
    let out = cmd.output().expect("exec runs");
    assert!(out.status.success(), "exec failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines().find_map(|l| l.strip_prefix("result_digest: ")).expect("exec prints the digest").trim().to_string()
}

fn upload(port: u16, data: &[u8]) -> String {
    let (st, body) = http(port, "PUT", "/v1/blobs", Some(data)).expect("upload");
    assert_eq!(st, 201, "upload: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["hash"].as_str().expect("hash").to_string()
}

fn submit(port: u16, body: serde_json::Value) -> String {
    let (st, text) = http(port, "POST", "/v1/jobs", Some(body.to_string().as_bytes())).expect("submit");
    assert_eq!(st, 201, "submit: {text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["job_id"].as_str().expect("job_id").to_string()
}

fn wait_done(ports: &[u16], job: &str, timeout: Duration) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let done = wait_until(timeout, || {
        for p in ports {
            if let Ok((200, body)) = http(*p, "GET", &format!("/v1/jobs/{job}"), None) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                    last = v.clone();
                    if v["state"] != "running" {
                        return true;
                    }
                }
            }
        }
        false
    });
    assert!(done.is_some(), "job {job} did not finish: {last}");
    last
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
        ("word-count", serde_json::json!({"top": 5}), vec!["top=5"]),
        ("grep", serde_json::json!({"pattern": "ERROR|timeout"}), vec!["pattern=ERROR|timeout"]),
        ("log-analysis", serde_json::json!({}), vec![]),
    ];
    for (kind, params, exec_params) in cases {
        let want = exec_digest(kind, &file, &exec_params);
        for redundancy in [1, 2] {
            let job = submit(
                nodes[0].port,
                serde_json::json!({"kind": kind, "inputs": [hash], "params": params, "redundancy": redundancy}),
            );
            // Ask a node other than the home.
            let v = wait_done(&ports[3..], &job, Duration::from_secs(60));
            assert_eq!(v["state"], "done", "{kind}: {v}");
            assert_eq!(v["result_digest"], want.as_str(), "{kind} r={redundancy}: digest differs from exec");
            assert!(v["progress"]["units_total"].as_u64().is_some_and(|n| n >= 9), "{v}");
            assert_eq!(v["progress"]["units_done"], v["progress"]["units_total"]);
            assert!(v["result"].is_object(), "{v}");
        }
    }
    let _ = std::fs::remove_file(file);
}

#[test]
fn a_lying_node_is_outvoted_with_redundancy_three() {
    let disc = discovery_port();
    let mut nodes: Vec<NodeProc> =
        (1..=7).map(|_| start_node(free_port(), "liar", disc, &["--chunk-size", "32KiB", "--workers", "1"])).collect();
    nodes.push(start_node(
        free_port(),
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
        let job = submit(nodes[0].port, serde_json::json!({"kind":"word-count","inputs":[hash],"redundancy":3}));
        let v = wait_done(&ports, &job, Duration::from_secs(60));
        assert_eq!(v["state"], "done", "{v}");
        assert_eq!(v["result_digest"], want.as_str(), "a lie got through: {v}");
        disagreements += v["stats"]["disagreements"].as_u64().unwrap_or(0);
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
    let (st, body) = http(nodes[0].port, "PUT", "/v1/blobs?copies=6", Some(&data)).expect("upload");
    assert_eq!(st, 201, "upload: {body}");
    let up: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert!(up["copies"].as_u64().is_some_and(|c| c >= 6), "{up}");
    let hash = up["hash"].as_str().expect("hash").to_string();
    let job = submit(nodes[0].port, serde_json::json!({"kind":"log-analysis","inputs":[hash],"redundancy":1}));
    let started = wait_until(Duration::from_secs(20), || {
        http(nodes[5].port, "GET", &format!("/v1/jobs/{job}"), None)
            .ok()
            .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["progress"]["units_done"].as_u64().unwrap_or(0) >= 3)
    });
    assert!(started.is_some(), "job made no progress");
    // Kill the home and four more: half of the cluster.
    for victim in [0usize, 1, 2, 3, 4] {
        nodes[victim].signal("KILL");
    }
    let survivors: Vec<NodeProc> = nodes.split_off(5);
    drop(nodes);
    let ports: Vec<u16> = survivors.iter().map(|n| n.port).collect();
    let v = wait_done(&ports, &job, Duration::from_secs(120));
    assert_eq!(v["state"], "done", "{v}");
    assert_eq!(v["result_digest"], want.as_str(), "result differs after failures");
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
    let path = "/v1/blobs?energy=1.5&copies=9&copies_timeout_ms=60000";
    let (st, body) = http(nodes[0].port, "PUT", path, Some(&data)).expect("upload");
    assert_eq!(st, 201, "upload: {body}");
    let up: serde_json::Value = serde_json::from_str(&body).expect("json");
    let hash = up["hash"].as_str().expect("hash").to_string();
    assert_eq!(up["copies_wanted"], 9, "{up}");
    assert!(up["copies"].as_u64().is_some_and(|c| c >= 9), "every chunk reached 9 copies: {up}");
    // The count is real: every chunk is held by at least 9 nodes.
    let mut holders: std::collections::HashMap<String, usize> = Default::default();
    for n in &nodes {
        for b in get_json(n.port, "/v1/blobs")["blobs"].as_array().expect("blobs") {
            if b["kind"] == "chunk" {
                *holders.entry(b["hash"].as_str().expect("hash").to_string()).or_default() += 1;
            }
        }
    }
    let chunks = up["chunks"].as_u64().expect("chunks") as usize;
    assert_eq!(holders.len(), chunks);
    assert!(holders.values().all(|&c| c >= 9), "copies per chunk: {holders:?}");

    let job = submit(nodes[0].port, serde_json::json!({"kind":"word-count","inputs":[hash],"redundancy":1}));
    let home_neighbours = nodes[0].neighbor_ids().expect("neighbours");
    let started = wait_until(Duration::from_secs(30), || {
        http(nodes[0].port, "GET", &format!("/v1/jobs/{job}"), None)
            .ok()
            .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["progress"]["units_done"].as_u64().unwrap_or(0) * 4 >= chunks as u64)
    });
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
    let v = wait_done(&ports, &job, Duration::from_secs(120));
    assert_eq!(v["state"], "done", "{v}");
    assert_eq!(v["result_digest"], want.as_str(), "result differs after killing half the nodes");
    let _ = std::fs::remove_file(file);
}

#[test]
fn bad_job_requests_get_clear_errors() {
    let node = start_node(free_port(), "badjobs", discovery_port(), &["--memory-limit", "1MiB"]);
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
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{m} {path}: {e}: {text}"));
        assert_eq!(v["error"]["code"], code, "{m} {path}: {text}");
    }
    // Nothing of the refused upload was kept, and the node still works.
    let blobs = get_json(p, "/v1/blobs");
    assert_eq!(blobs["count"], 1, "{blobs}");
    let (st, body) = http(p, "GET", &format!("/v1/blobs/{hash}"), None).expect("get");
    assert_eq!((st, body.as_str()), (200, "hello world\n"));
}

#[test]
fn a_one_chunk_upload_gets_its_copies_too() {
    // A one-chunk upload is its own manifest's only chunk: keeping "the
    // manifest" once more here used to replace the chunk's custody of k
    // copies by one, and the upload waited out its timeout with 1 of 3.
    let nodes = start_cluster(4, "onechunk");
    assert!(wait_until(Duration::from_secs(20), || all_have(&nodes, 2)).is_some(), "cluster did not form");
    let (st, body) =
        http(nodes[0].port, "PUT", "/v1/blobs?copies=3&copies_timeout_ms=20000", Some(b"one line\n")).expect("upload");
    assert_eq!(st, 201, "{body}");
    let up: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(up["chunks"], 1, "{up}");
    assert!(up["copies"].as_u64().is_some_and(|c| c >= 3), "copies: {up}");
    let hash = up["hash"].as_str().expect("hash").to_string();
    let holders = nodes
        .iter()
        .filter(|n| {
            get_json(n.port, "/v1/blobs")["blobs"].as_array().is_some_and(|b| b.iter().any(|x| x["hash"] == hash))
        })
        .count();
    assert!(holders >= 3, "held by {holders} nodes");
}
