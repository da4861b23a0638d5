//! `GET /v1/search` over documents that live in the nodes' own files:
//! asked of a node that holds none of them, with a node that lies about
//! its results, ranked exactly as one index over all the documents
//! (`ryx-node exec search`); and query-time errors are clear.

mod support;

use ryx_api::ErrorCode;
use serde_json::Value;
use std::time::Duration;
use support::*;

/// `n` documents as JSON lines, ids `{tag}-{i}`, texts skewed over a small
/// vocabulary (so that terms are common, rare, and scores tie).
fn docs(tag: &str, seed: u64, n: usize) -> String {
    let words = [
        "node",
        "nodes",
        "gossip",
        "failure",
        "detector",
        "the",
        "a",
        "robust",
        "computing",
        "cluster",
        "search",
        "index",
        "ranking",
        "energy",
        "diffusion",
        "neighbour",
        "timeout",
        "retry",
        "disk",
        "Network",
    ];
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut out = String::new();
    for i in 0..n {
        let len = 2 + (next() % 25) as usize;
        let text: Vec<&str> = (0..len)
            .map(|_| {
                let (a, b) = (next() % words.len() as u64, next() % words.len() as u64);
                words[a.min(b) as usize]
            })
            .collect();
        let doc =
            serde_json::json!({"id": format!("{tag}-{i:04}"), "title": format!("Doc {i}"), "text": text.join(" ")});
        out.push_str(&doc.to_string());
        out.push('\n');
    }
    out
}

fn exec_search(file: &std::path::Path, q: &str, k: u32) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ryx-node"))
        .args(["exec", "search", "--json", "--input"])
        .arg(file)
        .args(["--param", &format!("q={q}"), "--param", &format!("k={k}")])
        .output()
        .expect("ryx-node exec search");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("exec prints JSON")
}

#[test]
fn a_search_from_a_node_holding_nothing_ranks_as_one_index_and_outvotes_a_liar() {
    let discovery = discovery_port();
    let chunk = ["--chunk-size", "8KiB", "--workers", "1"];
    let entry = start_any_node("search", discovery, &chunk);
    let mut dirs = Vec::new();
    let mut holders = Vec::new();
    let mut all = String::new();
    for i in 0..4u64 {
        let dir = ryx_testkit::ScratchDir::new("docs");
        let text = docs(&format!("n{i}"), i + 1, 150 + 60 * i as usize);
        all.push_str(&text);
        std::fs::write(dir.path().join("docs.jsonl"), &text).expect("write");
        let spec = format!("docs={}/*.jsonl", dir.path().display());
        let mut args = chunk.to_vec();
        args.extend(["--source", spec.as_str()]);
        // One holder lies about every result it computes.
        if i == 2 {
            args.extend(["--fault", "corrupt-results=1"]);
        }
        holders.push(start_any_node("search", discovery, &args));
        dirs.push(dir);
    }
    let scratch = ryx_testkit::ScratchDir::new("docs-ref");
    let file = scratch.path().join("all.jsonl");
    std::fs::write(&file, &all).expect("write");
    assert!(entry.client().sources().map(|s| s.sources.is_empty()).unwrap_or(false), "the entry holds nothing");
    let known = || {
        entry
            .client()
            .info_items()
            .map_or(0, |items| items.iter().filter(|i| i.key.starts_with("ryx/source/docs/")).count())
    };
    assert!(wait_until(Duration::from_secs(30), || known() == 4).is_some(), "the entry heard of every holder");

    for (q, k) in [("gossip failure detector", 10), ("Network", 25), ("disk retry timeout", 3)] {
        let want = exec_search(&file, q, k);
        let got = entry.client().search("docs", q, k, Some(2)).unwrap_or_else(|e| panic!("search {q:?}: {e}"));
        assert_eq!(got["hits"], want["hits"], "{q:?}: the ranking differs from one index");
        assert!(!got["hits"].as_array().expect("hits").is_empty(), "{q:?}: something matched");
        for key in ["matched", "docs", "stats", "terms", "skipped"] {
            assert_eq!(got[key], want[key], "{q:?}: {key}");
        }
        assert_eq!(got["dataset"]["nodes"], 4, "{got}");
        assert_eq!(got["dataset"]["name"], "docs");
        // Both jobs are ordinary jobs: the liar was outvoted in them.
        for job in ["stats", "search"] {
            let id = got["jobs"][job].as_str().expect("job id");
            let v = entry.client().job(&id.into()).expect("job");
            assert_eq!(v.state, ryx_api::JobState::Done);
            eprintln!("{q:?} {job}: {:?}", v.stats);
        }
    }

    // From the command line, at another node.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ryx-node"))
        .args(["search", "gossip failure detector", "--dataset", "docs", "--json", "--node"])
        .arg(format!("127.0.0.1:{}", holders[1].port))
        .output()
        .expect("ryx-node search");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(cli["hits"], exec_search(&file, "gossip failure detector", 10)["hits"]);

    // Query-time errors.
    let error = |path: &str, status: u16, code: ErrorCode| {
        let (s, body) = http(entry.port, "GET", path, None).expect("answer");
        assert_eq!(s, status, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).expect("JSON error");
        assert_eq!(v["error"]["code"], code.as_str(), "{path}: {body}");
    };
    error("/v1/search?dataset=docs&q=%20%2C%3B", 400, ErrorCode::BadParams);
    error("/v1/search?dataset=docs", 400, ErrorCode::BadQuery);
    error("/v1/search?q=node", 400, ErrorCode::BadQuery);
    error("/v1/search?dataset=docs&q=node&k=0", 400, ErrorCode::BadParams);
    error("/v1/search?dataset=docs&q=node&k=5000", 400, ErrorCode::BadParams);
    error("/v1/search?dataset=docs&q=node&k=ten", 400, ErrorCode::BadQuery);
    error("/v1/search?dataset=docs&q=node&colour=1", 400, ErrorCode::BadQuery);
    error("/v1/search?dataset=nothing-here&q=node", 404, ErrorCode::UnknownDataset);
    error("/v1/search?dataset=..%2Fetc&q=node", 400, ErrorCode::UnknownDataset);
    drop(holders);
}
