//! `search-stats` then `search` over any split of the documents, merged in
//! any order, give exactly what one tantivy index over all of them gives.

use proptest::prelude::*;
use ryx_compute::{canonical_json, search, split_chunks, JobSpec, Partial};
use serde_json::{json, Value};

const WORDS: &[&str] = &[
    "cat",
    "cats",
    "dog",
    "running",
    "runs",
    "ran",
    "the",
    "a",
    "network",
    "node",
    "nodes",
    "gossip",
    "failure",
    "Search",
    "engine",
    "BM25",
    "robust",
    "first",
    "computing",
    "données",
    "東京",
    "x",
];

/// A corpus of `n` documents from `seed`: ids unique, texts drawn with a
/// skew (some words everywhere, some rare), some duplicate texts (ties),
/// and a few lines that are not documents.
fn corpus(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut out = Vec::new();
    let mut last = String::new();
    for i in 0..n {
        let r = next();
        let text = if r % 7 == 0 && !last.is_empty() {
            last.clone()
        } else {
            let len = 1 + (next() % 30) as usize;
            (0..len)
                .map(|_| {
                    let a = (next() % WORDS.len() as u64) as usize;
                    let b = (next() % WORDS.len() as u64) as usize;
                    WORDS[a.min(b)]
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        last = text.clone();
        let doc = match r % 5 {
            0 => json!({"_id": format!("d{:05}", (i * 7919) % 100_000), "title": "Doc", "text": text}),
            1 => json!({"id": i as u64 * 3 + 100_000, "body": text, "n": 3}),
            _ => json!({"id": format!("d{:05}", (i * 7919) % 100_000), "text": text}),
        };
        out.extend_from_slice(doc.to_string().as_bytes());
        out.push(b'\n');
        if r % 41 == 0 {
            out.extend_from_slice(b"not json\n\n{\"text\":\"no id\"}\n");
        }
    }
    out
}

/// The two jobs over `data` cut into chunks of `chunk` bytes, each merge
/// folding partials in the order `order` gives.
fn distributed(data: &[u8], chunk: usize, q: &str, k: usize, reverse: bool) -> Value {
    distributed_with(data, chunk, q, k, reverse, false)
}

fn distributed_with(data: &[u8], chunk: usize, q: &str, k: usize, reverse: bool, distinct: bool) -> Value {
    let units: Vec<&[u8]> = split_chunks(data, chunk).into_iter().map(|r| &data[r]).collect();
    let fold = |spec: &JobSpec| {
        let mut parts: Vec<Partial> = units
            .iter()
            .map(|u| spec.map(u).expect("map"))
            .map(|p| Partial::from_bytes(&p.to_bytes()).expect("partials cross the wire"))
            .collect();
        if reverse {
            parts.reverse();
        }
        // A tree: pairs, then pairs of pairs.
        while parts.len() > 1 {
            let mut next = Vec::new();
            let mut it = parts.into_iter();
            while let Some(a) = it.next() {
                next.push(match it.next() {
                    Some(b) => spec.merge(a, b).expect("merge"),
                    None => a,
                });
            }
            parts = next;
        }
        spec.finish(parts.pop().unwrap_or_else(|| spec.empty_partial())).expect("finish")
    };
    let stats_spec = JobSpec::new("search-stats", &json!({ "q": q, "distinct_words": distinct })).expect("stats spec");
    let stats = fold(&stats_spec);
    let spec = JobSpec::new("search", &search::search_params(&stats, k).expect("params")).expect("search spec");
    let mut got = fold(&spec);
    // Where each hit lives: the name of a chunk holding a document of that
    // id. Then the rest must be one index's, whatever the split.
    if let Some(chunks) = got.as_object_mut().and_then(|o| o.remove("hit_chunks")) {
        let chunks = chunks.as_array().expect("a list").clone();
        let hits = got["hits"].as_array().expect("hits");
        assert_eq!(chunks.len(), hits.len(), "one chunk per hit");
        for (h, c) in hits.iter().zip(&chunks) {
            let unit = units
                .iter()
                .find(|u| ryx_compute::digest_hex(u) == c.as_str().expect("a chunk name"))
                .expect("the chunk named is one of the units");
            let id = h["id"].as_str().expect("id");
            let holds =
                String::from_utf8_lossy(unit).lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).any(|d| {
                    d.get("id")
                        .or_else(|| d.get("_id"))
                        .is_some_and(|v| v.as_str().map_or(v.to_string(), str::to_string) == id)
                });
            assert!(holds, "hit {id} is not in the chunk named for it");
        }
    } else {
        assert!(got["hits"].as_array().map_or(true, |h| h.is_empty()), "hits without the chunks they are in: {got}");
    }
    got
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn any_split_and_merge_order_equals_one_index(
        n in 0usize..300,
        seed in any::<u64>(),
        chunk in 64usize..4096,
        k in 1usize..25,
        q in prop::sample::select(vec![
            "cat",
            "running dogs",
            "the network node",
            "Search ENGINE bm25",
            "données 東京 x",
            "gossip gossip failure",
            // Many terms, some absent from most units: scores must add up
            // in the same order in a unit's index and in one index.
            "x 東京 données computing first robust BM25 engine Search failure gossip nodes node network a the ran runs running dog cats cat",
        ]),
        reverse in any::<bool>(),
        distinct in any::<bool>(),
    ) {
        let data = corpus(n, seed);
        let want = search::reference(&[&data], q, k, distinct).expect("reference");
        let got = distributed_with(&data, chunk, q, k, reverse, distinct);
        prop_assert_eq!(canonical_json(&got), canonical_json(&want));
    }
}

#[test]
fn ties_go_to_the_lower_id_and_every_score_is_the_single_index_one() {
    let data = b"{\"id\":\"b\",\"text\":\"cat dog\"}\n{\"id\":\"a\",\"text\":\"cat dog\"}\n{\"id\":\"c\",\"text\":\"cat\"}\n{\"id\":\"d\",\"text\":\"dog dog dog\"}\n";
    let want = search::reference(&[data], "cat", 2, false).expect("reference");
    let ids: Vec<&str> =
        want["hits"].as_array().expect("hits").iter().map(|h| h["id"].as_str().unwrap_or("")).collect();
    // "c" is shortest (highest score); "a" and "b" tie, "a" first.
    assert_eq!(ids, vec!["c", "a"]);
    assert_eq!(want["matched"], 3);
    assert_eq!(want["docs"], 4);
    for chunk in [16, 40, 1000] {
        assert_eq!(canonical_json(&distributed(data, chunk, "cat", 2, true)), canonical_json(&want), "chunk {chunk}");
    }
}

#[test]
fn lines_that_are_not_documents_are_skipped_and_counted() {
    let data = b"{\"id\":1,\"text\":\"cat\"}\nnot json\n[1,2]\n{\"text\":\"no id\"}\n{\"id\":\"\",\"text\":\"cat\"}\n{\"id\":true}\n\xff\xfe\n\n   \n{\"_id\":\"x\",\"title\":\"Cat\"}\n";
    let r = search::reference(&[data], "cats", 10, false).expect("reference");
    assert_eq!(r["docs"], 2);
    assert_eq!(r["skipped"], 6);
    assert_eq!(r["matched"], 2, "stemmed and lower-cased: cats ~ cat ~ Cat");
    assert_eq!(canonical_json(&distributed(data, 20, "cats", 10, false)), canonical_json(&r));
}

#[test]
fn bad_queries_and_parameters_get_clear_errors() {
    let err = |kind: &str, p: Value| JobSpec::new(kind, &p).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err("search-stats", json!({})).contains("`q` (the query) is required"));
    assert!(err("search-stats", json!({"q": "  ,;  "})).contains("no words"));
    assert!(err("search-stats", json!({"q": 3})).contains("must be a string"));
    assert!(err("search-stats", json!({"q": "x ".repeat(2000)})).contains("longer than"));
    let ok = json!({"terms": "cat dog cat", "df": "1 2", "docs": 3, "tokens": 9, "k": 5});
    assert!(JobSpec::new("search", &ok).is_ok());
    let with = |k: &str, v: Value| {
        let mut p = ok.clone();
        p[k] = v;
        p
    };
    assert!(err("search", with("k", json!(0))).contains("between 1 and 1000"));
    assert!(err("search", with("k", json!(5000))).contains("between 1 and 1000"));
    assert!(err("search", with("df", json!("1"))).contains("1 counts for 2 distinct terms"));
    assert!(err("search", with("df", json!("1 x"))).contains("counts separated"));
    assert!(err("search", with("df", json!("1 4"))).contains("more documents"));
    assert!(err("search", with("terms", json!("cat  dog"))).contains("single spaces"));
    assert!(err("search", with("terms", json!(3))).contains("a string"));
    assert!(err("search", with("sort", json!(1))).contains("unknown parameter"));
    let mut no_docs = ok.clone();
    no_docs.as_object_mut().expect("object").remove("docs");
    assert!(err("search", no_docs).contains("`docs` is required"));
    // A long query (a paragraph, as test collections have) fits a work
    // token: its search parameters stay well under the 4 KiB the wire allows.
    let long = "What problems and concerns are there in making up descriptive titles? ".repeat(30);
    let stats_spec = JobSpec::new("search-stats", &json!({"q": long})).expect("a 2 KiB query");
    let partial = stats_spec.map(b"{\"id\":1,\"text\":\"titles of articles\"}\n").expect("map");
    let stats = stats_spec.finish(partial).expect("finish");
    let params = search::search_params(&stats, 1000).expect("params");
    assert!(params.to_string().len() < 4096, "{} bytes", params.to_string().len());
    assert!(JobSpec::new("search", &params).is_ok());
}

#[test]
fn forged_partials_are_refused() {
    let spec =
        JobSpec::new("search", &json!({"terms": "cat", "df": "2", "docs": 3, "tokens": 9, "k": 2})).expect("spec");
    let good = spec.map(b"{\"id\":\"a\",\"text\":\"cat\"}\n{\"id\":\"b\",\"text\":\"cat cat\"}\n").expect("map");
    let mut v: Value = serde_json::from_slice(&good.to_bytes()).expect("json");
    // Out of order, too many, not a number: each refused at the merge.
    let hits = v["partial"]["search"]["hits"].clone();
    let mut swapped = hits.as_array().expect("hits").clone();
    swapped.reverse();
    v["partial"]["search"]["hits"] = Value::Array(swapped);
    let p = Partial::from_bytes(v.to_string().as_bytes()).expect("decodes");
    assert!(spec.merge(p, good.clone()).is_err(), "out of order");
    let mut three = hits.as_array().expect("hits").clone();
    three.push(json!({"id": "z", "score": 0.1}));
    v["partial"]["search"]["hits"] = Value::Array(three);
    let p = Partial::from_bytes(v.to_string().as_bytes()).expect("decodes");
    assert!(spec.merge(good.clone(), p).is_err(), "more than k");
}

/// What the corpus figures are for: a unit scored with its own statistics
/// (as a shard of a sharded engine is) gives other scores than the whole
/// corpus does, and the two jobs give the whole corpus's.
#[test]
fn a_unit_scored_alone_gets_other_scores_than_the_corpus_gives() {
    let data = corpus(400, 7);
    let units: Vec<&[u8]> = split_chunks(&data, 2048).into_iter().map(|r| &data[r]).collect();
    assert!(units.len() > 3);
    let whole = search::reference(&[&data], "gossip failure", 1000, false).expect("reference");
    let score_of = |r: &Value, id: &str| {
        r["hits"].as_array().and_then(|hs| hs.iter().find(|h| h["id"] == id)).map(|h| h["score"].as_f64())
    };
    let alone = search::reference(&[units[1]], "gossip failure", 1000, false).expect("one unit");
    let hits = alone["hits"].as_array().expect("hits");
    assert!(!hits.is_empty());
    let differ = hits
        .iter()
        .filter(|h| score_of(&whole, h["id"].as_str().unwrap_or_default()) != Some(h["score"].as_f64()))
        .count();
    assert_eq!(differ, hits.len(), "every local score differs from the corpus score");
    assert_eq!(canonical_json(&distributed(&data, 2048, "gossip failure", 1000, false)), canonical_json(&whole));
}
