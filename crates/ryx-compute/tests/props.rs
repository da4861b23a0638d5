//! Property tests: results independent of chunking and thread count, associative
//! merge, exact partial round-trips, no panics on arbitrary bytes.

use proptest::prelude::*;
use ryx_compute::{run_local, split_chunks, units, JobSpec, Partial};
use serde_json::json;

fn specs() -> Vec<JobSpec> {
    vec![
        JobSpec::new("word-count", &json!({"top": 5})).expect("wc"),
        JobSpec::new("grep", &json!({"pattern": "a[0-9]|^b|c$", "max_samples": 3})).expect("grep"),
        JobSpec::new("grep", &json!({"pattern": "\\Ab", "case_insensitive": true})).expect("grep"),
        JobSpec::new("grep", &json!({"pattern": "a[^x]*c|\\s$"})).expect("grep"),
        JobSpec::new("log-analysis", &json!({"assignments": true, "alert_samples": 2})).expect("log"),
        // The default path with other Drain settings, and with regex masks.
        JobSpec::new("log-analysis", &json!({"assignments": true, "split": 2, "depth": 5, "similarity": 0.3}))
            .expect("log"),
        JobSpec::new("log-analysis", &json!({"masks": ["[0-9]+"], "similarity_over": "tokens"})).expect("log"),
        JobSpec::new(
            "log-analysis",
            &json!({"format": "<Level> [<Comp>] <Content>", "assignments": true, "depth": 5, "similarity": 0.4}),
        )
        .expect("log"),
    ]
}

/// Log-like lines from a small vocabulary, plus arbitrary junk bytes.
fn log_text() -> impl Strategy<Value = Vec<u8>> {
    let word = prop_oneof![
        Just(b"INFO".to_vec()),
        Just(b"ERROR".to_vec()),
        Just(b"[net]".to_vec()),
        Just(b"open".to_vec()),
        Just(b"file".to_vec()),
        Just(b"failed".to_vec()),
        Just(b"a1".to_vec()),
        Just(b"b".to_vec()),
        Just(b"c".to_vec()),
        Just(b"10.0.0.1:80".to_vec()),
        // Header-like and variable-like tokens for the default path.
        Just(b"2015-10-18".to_vec()),
        Just(b"18:01:47,978".to_vec()),
        Just(b"Jun".to_vec()),
        Just(b"-".to_vec()),
        Just(b"D".to_vec()),
        Just(b"[main".to_vec()),
        Just(b"x]".to_vec()),
        Just(b"sshd[42]:".to_vec()),
        Just(b"user=root".to_vec()),
        Just(b"blk_-12".to_vec()),
        Just(b"/a/b".to_vec()),
        (0u32..5000).prop_map(|n| n.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 1..4),
    ];
    let sep = prop_oneof![4 => Just(b" ".to_vec()), 1 => Just(b"  ".to_vec()), 1 => Just(b"\t".to_vec())];
    let line = proptest::collection::vec((word, sep), 0..8).prop_map(|ws| {
        let mut l = Vec::new();
        for (w, s) in ws {
            l.extend(w);
            l.extend(s);
        }
        l
    });
    let end = prop_oneof![4 => Just(b"\n".to_vec()), 1 => Just(b"\r\n".to_vec())];
    (proptest::collection::vec((line, end), 0..40), any::<bool>()).prop_map(|(ls, cut)| {
        let mut t = Vec::new();
        for (l, e) in ls {
            t.extend(l);
            t.extend(e);
        }
        if cut && t.ends_with(b"\n") {
            t.pop();
        }
        t
    })
}

fn fold_left(spec: &JobSpec, parts: Vec<Partial>) -> Partial {
    parts.into_iter().reduce(|a, b| spec.merge(a, b).expect("merge")).unwrap_or_else(|| spec.empty_partial())
}

/// Order-preserving balanced tree of merges.
fn fold_tree(spec: &JobSpec, mut parts: Vec<Partial>) -> Partial {
    if parts.is_empty() {
        return spec.empty_partial();
    }
    while parts.len() > 1 {
        let mut next = Vec::new();
        let mut it = parts.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => next.push(spec.merge(a, b).expect("merge")),
                None => next.push(a),
            }
        }
        parts = next;
    }
    parts.pop().expect("one")
}

/// Maps units as a remote worker would: through the byte encoding.
fn map_remote(spec: &JobSpec, unit: &[u8]) -> Partial {
    let p = spec.map(unit).expect("map");
    let bytes = p.to_bytes();
    let q = Partial::from_bytes(&bytes).expect("decode");
    assert_eq!(q.to_bytes(), bytes, "round-trip");
    q
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn same_result_for_any_chunking_threads_and_fold(
        a in log_text(), b in log_text(), c1 in 1usize..200, c2 in 1usize..50, threads in 1usize..4)
    {
        for spec in specs() {
            let inputs: [&[u8]; 2] = [&a, &b];
            let reference = run_local(&spec, &inputs, usize::MAX, 1).expect("run");
            for (chunk, t) in [(c1, threads), (c2, 2), (1, 3)] {
                let r = run_local(&spec, &inputs, chunk, t).expect("run");
                prop_assert_eq!(&r.result_bytes, &reference.result_bytes, "{} chunk {} threads {}", spec.kind, chunk, t);
                prop_assert_eq!(&r.result_digest, &reference.result_digest);
            }
            // Distributed style: remote maps, left fold and tree fold give the same bytes.
            let parts: Vec<Partial> = units(&inputs, c2).into_iter().map(|u| map_remote(&spec, u)).collect();
            let left = fold_left(&spec, parts.clone());
            let tree = fold_tree(&spec, parts);
            prop_assert_eq!(left.to_bytes(), tree.to_bytes());
            let fin = spec.finish(left).expect("finish");
            prop_assert_eq!(ryx_compute::canonical_json(&fin), reference.result_bytes.clone());
        }
    }

    #[test]
    fn kinds_said_commutative_merge_in_any_order(a in log_text(), b in log_text(), c in log_text()) {
        for spec in specs().into_iter().filter(|s| s.commutative()) {
            let (pa, pb, pc) = (spec.map(&a).expect("a"), spec.map(&b).expect("b"), spec.map(&c).expect("c"));
            let ordered = fold_left(&spec, vec![pa.clone(), pb.clone(), pc.clone()]);
            let shuffled = fold_left(&spec, vec![pc, pa, pb]);
            prop_assert_eq!(ordered.to_bytes(), shuffled.to_bytes());
        }
    }

    #[test]
    fn merge_is_associative(a in log_text(), b in log_text(), c in log_text()) {
        for spec in specs() {
            let (pa, pb, pc) = (spec.map(&a).expect("a"), spec.map(&b).expect("b"), spec.map(&c).expect("c"));
            let left = spec.merge(spec.merge(pa.clone(), pb.clone()).expect("ab"), pc.clone()).expect("ab,c");
            let right = spec.merge(pa.clone(), spec.merge(pb, pc).expect("bc")).expect("a,bc");
            prop_assert_eq!(left.to_bytes(), right.to_bytes());
            let e = spec.empty_partial();
            prop_assert_eq!(spec.merge(e.clone(), pa.clone()).expect("e,a").to_bytes(), pa.to_bytes());
            prop_assert_eq!(spec.merge(pa.clone(), e).expect("a,e").to_bytes(), pa.to_bytes());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000), chunk in 0usize..300) {
        let ranges = split_chunks(&data, chunk);
        let mut pos = 0;
        for r in &ranges {
            prop_assert_eq!(r.start, pos);
            prop_assert!(r.end > r.start);
            prop_assert!(r.end == data.len() || data[r.end - 1] == b'\n');
            pos = r.end;
        }
        prop_assert_eq!(pos, data.len());
        for spec in specs() {
            let r1 = run_local(&spec, &[&data], chunk, 2).expect("run");
            let r2 = run_local(&spec, &[&data], usize::MAX, 1).expect("run");
            prop_assert_eq!(r1.result_bytes, r2.result_bytes);
        }
        // Random bytes as a partial: an error, never a panic.
        prop_assert!(Partial::from_bytes(&data).is_err());
    }

    #[test]
    fn mutated_partials_never_panic(data in log_text(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        for spec in specs() {
            let p = spec.map(&data).expect("map");
            let mut bytes = p.to_bytes();
            let i = pos.index(bytes.len());
            bytes[i] = byte;
            if let Ok(q) = Partial::from_bytes(&bytes) {
                let _ = spec.merge(q.clone(), p.clone());
                let _ = spec.finish(q);
            }
        }
    }
}
