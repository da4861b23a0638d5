//! Public API behaviour: spec validation, partial encoding, merging rules.

use ryx_compute::{canonical_json, digest_hex, run_local, split_chunks, ComputeError, JobKind, JobSpec, Partial};
use serde_json::{json, Value};

fn spec(kind: &str, params: Value) -> JobSpec {
    JobSpec::new(kind, &params).expect("valid spec")
}

#[test]
fn kinds_parse_display_and_serde() {
    for k in JobKind::ALL {
        assert_eq!(k.to_string().parse::<JobKind>().expect("parse"), k);
        assert_eq!(serde_json::to_value(k).expect("ser"), json!(k.as_str()));
        let back: JobKind = serde_json::from_value(json!(k.as_str())).expect("de");
        assert_eq!(back, k);
    }
    assert_eq!(JobKind::LogAnalysis.to_string(), "log-analysis");
    let e = "wordcount".parse::<JobKind>().expect_err("unknown");
    assert!(e.to_string().contains("unknown job kind \"wordcount\""), "{e}");
}

#[test]
fn bad_specs_have_clear_errors() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("nope", json!({}), "unknown job kind"),
        ("grep", json!({}), "`pattern` is required"),
        ("grep", json!({"pattern": "a("}), "pattern is not a valid regex"),
        ("grep", json!({"pattern": 3}), "`pattern` must be a string"),
        ("grep", json!({"pattern": "a", "max_samples": -1}), "`max_samples` must be an integer"),
        ("grep", json!({"pattern": "a", "case_insensitive": "yes"}), "`case_insensitive` must be true or false"),
        ("grep", json!({"pattern": "a", "colour": true}), "unknown parameter \"colour\""),
        ("word-count", json!({"top": 1.5}), "`top` must be an integer"),
        ("word-count", json!([1]), "params must be a JSON object"),
        ("log-analysis", json!({"preset": "Windows"}), "unknown preset \"Windows\""),
        ("log-analysis", json!({"format": "<Date> <Time>"}), "no <Content> field"),
        ("log-analysis", json!({"masks": ["ok", "("]}), "masks[1] is not a valid regex"),
        ("log-analysis", json!({"masks": "x"}), "`masks` must be a list of strings"),
        ("log-analysis", json!({"similarity": 2}), "`similarity` must be a number between 0 and 1"),
        ("log-analysis", json!({"depth": 2}), "`depth` must be an integer between 3 and 64"),
    ];
    for (kind, params, want) in cases {
        let e = JobSpec::new(kind, &params).expect_err("must fail");
        assert!(e.to_string().contains(want), "{kind} {params}: {e}");
    }
}

#[test]
fn defaults_and_presets() {
    let s = spec("word-count", Value::Null);
    assert_eq!(s.params.to_json(), json!({"top": 20}));
    let s = spec("log-analysis", json!({"preset": "linux"}));
    let p = s.params.to_json();
    assert_eq!(p["preset"], "Linux");
    assert_eq!(p["similarity"], 0.39);
    assert_eq!(p["depth"], 6);
    let s2 = spec("log-analysis", json!({"preset": "Linux", "depth": 6}));
    assert_eq!(s.fingerprint(), s2.fingerprint());
    let s3 = spec("log-analysis", json!({"preset": "Linux", "depth": 5}));
    assert_ne!(s.fingerprint(), s3.fingerprint());
}

#[test]
fn canonical_json_sorts_keys_and_is_compact() {
    let v = json!({"b": [1, {"z": null, "a": "é\n"}], "a": true, "B": 1.5});
    assert_eq!(
        String::from_utf8(canonical_json(&v)).expect("utf8"),
        r#"{"B":1.5,"a":true,"b":[1,{"a":"é\n","z":null}]}"#
    );
    assert_eq!(digest_hex(b"").len(), 64);
    assert_eq!(digest_hex(b"abc"), "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
}

#[test]
fn empty_input() {
    for (kind, params) in
        [("word-count", json!({})), ("grep", json!({"pattern": "x"})), ("log-analysis", json!({"assignments": true}))]
    {
        let s = spec(kind, params);
        let r0 = run_local(&s, &[], 10, 2).expect("no inputs");
        let r1 = run_local(&s, &[b"", b""], 10, 2).expect("empty inputs");
        assert_eq!(r0.units, 0);
        assert_eq!(r0.result_bytes, r1.result_bytes);
        let via_map = s.finish(s.map(b"").expect("map")).expect("finish");
        assert_eq!(canonical_json(&via_map), r0.result_bytes);
        assert_eq!(s.map(b"").expect("map"), s.empty_partial());
    }
}

#[test]
fn word_count_result_shape() {
    let s = spec("word-count", json!({"top": 3}));
    let r = run_local(&s, &[b"b a b\nc a b\n\xff\xfe x", b"a"], 4, 2).expect("run");
    // "\xff\xfe" holds no printable byte, so it is not a word (as in `wc -w`).
    assert_eq!(r.result, json!({"total_words": 8, "distinct_words": 4, "top": [["a", 3], ["b", 3], ["c", 1]]}));
}

#[test]
fn grep_result_shape() {
    let s = spec("grep", json!({"pattern": "^e", "max_samples": 2, "case_insensitive": true}));
    let data = b"Error one\r\nok\nerror two\nEND\n\nelse";
    let r = run_local(&s, &[data], 3, 3).expect("run");
    assert_eq!(r.result, json!({"lines": 6, "matching_lines": 4, "samples": ["Error one\r", "error two"]}));
    let s = spec("grep", json!({"pattern": "^$"}));
    let r = run_local(&s, &[b"a\n\nb\n"], 1, 1).expect("run");
    assert_eq!(r.result["matching_lines"], 1);
}

#[test]
fn log_analysis_result_shape() {
    let s = spec("log-analysis", json!({"format": "<Level>: <Content>", "assignments": true, "alert_samples": 1}));
    let data = b"INFO: open file 1\nERROR: open file 22\nbroken line\nINFO: open file 3\nWARN: disk quota exceeded\n";
    let r = run_local(&s, &[data], 16, 2).expect("run");
    let v = &r.result;
    assert_eq!(v["lines"], 5);
    assert_eq!(v["unparsed"], 1);
    assert_eq!(v["levels"], json!({"ERROR": 1, "INFO": 2, "WARN": 1}));
    assert_eq!(v["alerts"], json!({"count": 1, "samples": ["ERROR: open file 22"]}));
    assert_eq!(v["line_templates"], json!([1, 1, 2, 1, 3]));
    assert_eq!(v["templates"][0], json!({"id": 1, "template": "open file <*>", "count": 3}));
    assert_eq!(v["templates"][1]["template"], "broken line");
}

#[test]
fn partials_check_kind_and_spec() {
    let wc = spec("word-count", json!({}));
    let wc5 = spec("word-count", json!({"top": 5}));
    let gr = spec("grep", json!({"pattern": "a"}));
    let a = wc.map(b"a b").expect("map");
    let g = gr.map(b"a b").expect("map");
    assert!(matches!(wc.merge(a.clone(), g.clone()), Err(ComputeError::KindMismatch { .. })));
    assert!(matches!(gr.finish(a.clone()), Err(ComputeError::KindMismatch { .. })));
    assert!(matches!(wc5.finish(a.clone()), Err(ComputeError::SpecMismatch { .. })));
    let mut bad = wc.clone();
    bad.kind = JobKind::Grep;
    assert!(matches!(bad.map(b"x"), Err(ComputeError::InconsistentSpec { .. })));
    assert_eq!(a.kind(), JobKind::WordCount);
    assert_eq!(a.spec_fingerprint(), wc.fingerprint());
}

#[test]
fn partial_bytes_roundtrip_and_reject_garbage() {
    let specs = [
        spec("word-count", json!({})),
        spec("grep", json!({"pattern": "[ab]", "max_samples": 2})),
        spec("log-analysis", json!({"assignments": true})),
    ];
    let data: &[u8] = b"a b \xff\xfe\n b c\x01\n a 12 b\n\n c\n";
    for s in &specs {
        let p = s.map(data).expect("map");
        let bytes = p.to_bytes();
        let back = Partial::from_bytes(&bytes).expect("decode");
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.digest(), p.digest());
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(canonical_json(&v), bytes, "to_bytes is canonical JSON");
        // Truncations and byte flips never panic.
        for i in 0..bytes.len() {
            let _ = Partial::from_bytes(&bytes[..i]);
            let mut m = bytes.clone();
            m[i] ^= 0x55;
            if let Ok(q) = Partial::from_bytes(&m) {
                let _ = s.finish(q);
            }
        }
    }
    for junk in [&b""[..], b"null", b"{}", b"[1,2]", b"{\"v\":2}", b"\xff\xff"] {
        assert!(Partial::from_bytes(junk).is_err());
    }
}

#[test]
fn invalid_partials_are_rejected() {
    let s = spec("word-count", json!({}));
    let fp = s.fingerprint();
    let enc = |words: &str| format!(r#"{{"partial":{{"word-count":{{"words":{words}}}}},"spec":"{fp}","v":1}}"#);
    assert!(Partial::from_bytes(enc(r#"[["a",1],["b",2]]"#).as_bytes()).is_ok());
    for bad in [r#"[["b",1],["a",2]]"#, r#"[["a",1],["a",2]]"#, r#"[["a b",1]]"#, r#"[["a",0]]"#, r#"[["\u0001",1]]"#] {
        assert!(Partial::from_bytes(enc(bad).as_bytes()).is_err(), "{bad}");
    }
    let g = r#"{"partial":{"grep":{"lines":1,"matching_lines":2,"samples":[]}},"spec":"x","v":1}"#;
    assert!(Partial::from_bytes(g.as_bytes()).is_err());
}

#[test]
fn split_chunks_public_contract() {
    let data = b"one\ntwo\nthree\nfour";
    let r = split_chunks(data, 9);
    assert_eq!(r, vec![0..8, 8..14, 14..18]);
    assert!(split_chunks(b"", 9).is_empty());
}

#[test]
fn huge_line_stays_one_unit() {
    let mut data = b"short\n".to_vec();
    for i in 0..300_000u32 {
        data.extend_from_slice(format!("tok{} ", i % 1000).as_bytes());
    }
    data.extend_from_slice(b"\nERROR: tail 1\n\xff\xfe\n");
    assert_eq!(split_chunks(&data, 1 << 16).len(), 3);
    for (kind, params) in [
        ("word-count", json!({"top": 2})),
        ("grep", json!({"pattern": "tok99[0-9] ", "max_samples": 0})),
        ("log-analysis", json!({"format": "<Level>: <Content>", "assignments": true})),
        ("log-analysis", json!({})),
    ] {
        let s = spec(kind, params);
        let a = run_local(&s, &[&data], 1 << 16, 2).expect("run");
        let b = run_local(&s, &[&data], usize::MAX, 1).expect("run");
        assert_eq!(a.result_bytes, b.result_bytes, "{kind}");
        assert_eq!(a.units, 3);
    }
}
