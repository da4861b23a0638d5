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
    let ids: Vec<String> =
        holders.iter().map(|h| h.client().status().expect("status").node_id.as_str().to_string()).collect();

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
        // Each hit: the holder its document lives on, and the holders that
        // answered for it, never the liar.
        let at = got["hit_nodes"].as_array().expect("hit_nodes");
        assert_eq!(at.len(), got["hits"].as_array().expect("hits").len());
        for (h, a) in got["hits"].as_array().expect("hits").iter().zip(at) {
            let tag = h["id"].as_str().expect("id").split('-').next().expect("tag");
            let owner = &ids[tag[1..].parse::<usize>().expect("holder index")];
            assert_eq!(a["lives_on"].as_str(), Some(owner.as_str()), "{q:?}: {h} {a}");
            let by = a["answered_by"].as_array().expect("answered_by");
            assert!(!by.is_empty() && by.iter().all(|n| n.as_str() != Some(ids[2].as_str())), "{q:?}: {a}");
        }
        // Both jobs are ordinary jobs: the liar was outvoted in them.
        for job in ["stats", "search"] {
            let id = got["jobs"][job].as_str().expect("job id");
            let v = entry.client().job(&id.into()).expect("job");
            assert_eq!(v.state, ryx_api::JobState::Done);
            eprintln!("{q:?} {job}: {:?}", v.stats);
        }
    }

    // Asked again over the same snapshot: every term's figures are known,
    // so only the scoring job runs, and the answer is the same.
    let q = "detector gossip";
    let again = entry.client().search("docs", q, 10, Some(2)).expect("search again");
    assert!(again["jobs"]["stats"].is_null(), "{}", again["jobs"]);
    assert_eq!(again["hits"], exec_search(&file, q, 10)["hits"]);
    assert_eq!(again["stats"], exec_search(&file, q, 10)["stats"]);

    // Without consensus (redundancy 1, the default): query waves along the
    // neighbours, each holder answering for its own chunks; the same
    // ranking, the hits placed on their holders.
    for (q, k) in [("gossip failure detector", 10), ("Network", 25), ("retry", 50)] {
        let want = exec_search(&file, q, k);
        let got = entry.client().search("docs", q, k, None).unwrap_or_else(|e| panic!("wave search {q:?}: {e}"));
        assert_eq!(got["path"], "wave", "{q:?}: {got}");
        assert_eq!(got["hits"], want["hits"], "{q:?}: the waves' ranking differs from one index");
        for key in ["matched", "docs", "stats", "terms", "skipped"] {
            assert_eq!(got[key], want[key], "{q:?}: {key}");
        }
        assert_eq!(got["dataset"]["nodes"], 4, "{got}");
        assert_eq!(got["coverage"]["share"], 1.0, "{got}");
        assert!(got["wave"]["nodes"].as_u64().is_some_and(|n| n >= 5), "every node reached: {got}");
        for (h, a) in got["hits"].as_array().expect("hits").iter().zip(got["hit_nodes"].as_array().expect("hit_nodes"))
        {
            let tag = h["id"].as_str().expect("id").split('-').next().expect("tag");
            let owner = &ids[tag[1..].parse::<usize>().expect("holder index")];
            assert_eq!(a["lives_on"].as_str(), Some(owner.as_str()), "{q:?}: {h} {a}");
        }
    }
    // Asked again: the figures are known, one wave.
    let again = entry.client().search("docs", "retry", 50, None).expect("wave search again");
    assert_eq!(again["wave"]["waves"], 1, "{again}");
    assert_eq!(again["hits"], exec_search(&file, "retry", 50)["hits"]);

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

/// A holder dies: the documents it held are still searched, from the
/// copies other nodes keep of its chunks and of their list, and the answer
/// says so; the ranking is still one index's over all the documents.
#[test]
fn a_dead_holders_documents_are_found_from_their_copies() {
    let discovery = discovery_port();
    let common = ["--chunk-size", "4KiB", "--workers", "1", "--source-copies", "2"];
    let entry = start_any_node("search-dead", discovery, &common);
    let mut dirs = Vec::new();
    let mut holders = Vec::new();
    let mut all = String::new();
    for i in 0..4u64 {
        let dir = ryx_testkit::ScratchDir::new("docs-dead");
        let text = docs(&format!("d{i}"), 10 + i, 120);
        all.push_str(&text);
        std::fs::write(dir.path().join("docs.jsonl"), &text).expect("write");
        let spec = format!("docs={}/*.jsonl", dir.path().display());
        let mut args = common.to_vec();
        args.extend(["--source", spec.as_str()]);
        holders.push(start_any_node("search-dead", discovery, &args));
        dirs.push(dir);
    }
    let scratch = ryx_testkit::ScratchDir::new("docs-dead-ref");
    let file = scratch.path().join("all.jsonl");
    std::fs::write(&file, &all).expect("write");
    let (q, k) = ("gossip failure detector", 15);
    let want = exec_search(&file, q, k);

    // Every file cut to its end, its chunks with two copies elsewhere, and
    // each holder's announcement naming the kept list of them.
    let victim = &holders[1];
    let victim_id = victim.client().status().expect("status").node_id;
    let names = || source_chunk_names(victim, "docs");
    let sealed = || {
        holders.iter().all(|h| {
            h.client()
                .sources()
                .ok()
                .and_then(|s| s.sources.into_iter().next())
                .is_some_and(|s| s.sealed_bytes == s.bytes)
        })
    };
    let copies = || {
        let n = names();
        let kept: usize = std::iter::once(&entry).chain(&holders).map(|h| durable_among(h, &n)).sum();
        !n.is_empty() && kept >= 2 * n.len()
    };
    let listed = || {
        entry.client().info_items().is_ok_and(|items| {
            let with_copy = items
                .iter()
                .filter(|i| i.key.starts_with("ryx/source/docs/") && i.value.get("copy").is_some_and(|c| c.is_object()))
                .count();
            with_copy == 4
        })
    };
    let ready = wait_until(Duration::from_secs(60), || sealed() && copies() && listed());
    assert!(ready.is_some(), "sealed {}, copies {}, lists announced {}", sealed(), copies(), listed());
    let before = entry.client().search("docs", q, k, Some(1)).expect("search before");
    assert_eq!(before["hits"], want["hits"]);
    assert_eq!(before["coverage"]["share"], 1.0, "{}", before["coverage"]);

    victim.signal("KILL");
    // The next search (once the victim is found dead or refuses its
    // snapshot) takes the victim's chunks from the copies.
    let path = format!("/v1/search?dataset=docs&q={}&k={k}&redundancy=1&timeout_ms=20000", q.replace(' ', "+"));
    let mut last = String::new();
    let mut found = None;
    wait_until(Duration::from_secs(60), || {
        let Ok((status, body)) = http(holders[0].port, "GET", &path, None) else { return false };
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        last = body;
        let copied = status == 200 && v["coverage"]["from_copies"].as_array().is_some_and(|a| !a.is_empty());
        if copied {
            found = Some(v);
        }
        copied
    });
    let got = found.unwrap_or_else(|| panic!("no search took the dead holder's chunks from copies: {last}"));
    assert_eq!(got["coverage"]["from_copies"], serde_json::json!([victim_id]), "{}", got["coverage"]);
    assert_eq!(got["coverage"]["missing"], serde_json::json!([]));
    assert_eq!(got["coverage"]["share"], 1.0, "{}", got["coverage"]);
    assert_eq!(got["dataset"]["nodes"], 4, "the dead holder's share is in the snapshot");
    assert_eq!(got["hits"], want["hits"], "the ranking differs from one index over every document");
    for key in ["matched", "docs", "stats"] {
        assert_eq!(got[key], want[key], "{key}");
    }
    drop(holders);
}

/// `--source NAME=files:DIR/GLOB`: one document per file, its id the
/// node's id and the file's name; a file added later is found once quiet;
/// the ranking is `exec` over the nodes' spools in the canonical order.
#[test]
fn one_document_per_file_is_searched_and_new_files_are_picked_up() {
    let discovery = discovery_port();
    let entry = start_any_node("search-files", discovery, &["--chunk-size", "4KiB"]);
    let words = ["gossip", "failure", "detector", "robust", "index", "energy", "the", "a", "of", "disk"];
    let mut dirs = Vec::new();
    let mut holders = Vec::new();
    for i in 0..2usize {
        let dir = ryx_testkit::ScratchDir::new("docs-files");
        for f in 0..40usize {
            let text: Vec<&str> =
                (0..(3 + (f * 7 + i) % 11)).map(|j| words[(f * 3 + j * (i + 2)) % words.len()]).collect();
            std::fs::write(dir.path().join(format!("doc{f:02}.txt")), text.join(" ")).expect("write");
        }
        std::fs::write(dir.path().join("ignored.md"), "gossip gossip gossip").expect("write");
        let spool = dir.path().join("spool");
        let spec = format!("docs=files:{}/*.txt", dir.path().display());
        let args = ["--chunk-size", "4KiB", "--source", spec.as_str(), "--spool-dir", spool.to_str().expect("utf-8")];
        holders.push(start_any_node("search-files", discovery, &args));
        dirs.push(dir);
    }
    let ids: Vec<String> =
        holders.iter().map(|h| h.client().status().expect("status").node_id.as_str().to_string()).collect();
    // The spools, concatenated as the canonical order has them: by node id.
    let reference = |scratch: &std::path::Path| {
        let mut order: Vec<usize> = (0..holders.len()).collect();
        order.sort_by_key(|&i| ids[i].clone());
        let mut all = Vec::new();
        for i in order {
            all.extend(std::fs::read(dirs[i].path().join("spool").join("docs.jsonl")).expect("spool"));
        }
        let file = scratch.join("all.jsonl");
        std::fs::write(&file, all).expect("write");
        file
    };
    let docs_seen = |want: u64| {
        wait_until(Duration::from_secs(60), || {
            entry.client().search("docs", "gossip", 1, Some(1)).is_ok_and(|r| r["docs"].as_u64() == Some(want))
        })
        .is_some()
    };
    // The holders index their documents as they arrive, before any search.
    let indexed = |h: &NodeProc| h.metric("ryx_search_indexes_built_total").unwrap_or(0.0);
    assert!(
        wait_until(Duration::from_secs(30), || holders.iter().all(|h| indexed(h) >= 1.0)).is_some(),
        "indexes built ahead: {:?}",
        holders.iter().map(indexed).collect::<Vec<_>>()
    );
    assert!(docs_seen(80), "80 documents searched");
    let scratch = ryx_testkit::ScratchDir::new("docs-files-ref");
    let (q, k) = ("gossip failure detector", 12);
    let got = entry.client().search("docs", q, k, Some(1)).expect("search");
    assert_eq!(got["hits"], exec_search(&reference(scratch.path()), q, k)["hits"]);
    for h in got["hits"].as_array().expect("hits") {
        let id = h["id"].as_str().expect("id");
        let (node, file) = id.split_once('/').expect("NODE/FILE");
        assert!(ids.contains(&node.to_string()) && file.ends_with(".txt"), "{id}");
    }

    // A new file: found once it has stayed unchanged for a scan.
    std::fs::write(dirs[1].path().join("late.txt"), "gossip failure detector detector gossip").expect("write");
    assert!(docs_seen(81), "the new file is a new document");
    let got = entry.client().search("docs", q, k, Some(1)).expect("search");
    assert_eq!(got["hits"][0]["id"], format!("{}/late.txt", ids[1]), "{}", got["hits"]);
    assert_eq!(got["hits"], exec_search(&reference(scratch.path()), q, k)["hits"]);
    let view = holders[1].client().sources().expect("sources");
    assert!(view.sources[0].pattern.starts_with("files:"), "{:?}", view.sources[0].pattern);
}
