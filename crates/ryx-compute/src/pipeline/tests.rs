use super::*;
use crate::{JobSpec, Partial};

fn p(v: Value) -> PipelineParams {
    PipelineParams::from_json(&v).expect("valid params")
}

fn ms(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, f: i64) -> i64 {
    civil_ms(y, mo, d, h, mi, s, f).expect("a valid time")
}

#[test]
fn civil_days_round_trip_and_print() {
    for z in [-800_000i64, -1, 0, 1, 59, 10_957, 20_794, 2_932_896] {
        let (y, m, d) = crate::corpus::civil_from_days(z);
        assert_eq!(days_from_civil(y, m as i64, d as i64), z, "{y}-{m}-{d}");
    }
    assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso(ms(2026, 12, 7, 1, 2, 3, 456)), "2026-12-07T01:02:03.456Z");
    assert_eq!(iso(-1), "1969-12-31T23:59:59.999Z");
}

#[test]
fn built_in_timestamp_shapes() {
    let q = p(json!({}));
    let t = |l: &str| q.event_time(l.as_bytes());
    assert_eq!(t("2026-12-07T01:02:03Z svc=a GET /"), Some(ms(2026, 12, 7, 1, 2, 3, 0)));
    assert_eq!(t("2026-12-07T01:02:03.5+01:00 x"), Some(ms(2026, 12, 7, 0, 2, 3, 500)));
    assert_eq!(t("2015-10-18 18:01:47,978 INFO [main] x"), Some(ms(2015, 10, 18, 18, 1, 47, 978)));
    assert_eq!(t("[I] 2026/01/02 03:04:05 started"), Some(ms(2026, 1, 2, 3, 4, 5, 0)));
    assert_eq!(t("17/06/09 20:10:40 INFO executor.CoarseGrained"), Some(ms(2017, 6, 9, 20, 10, 40, 0)));
    assert_eq!(t("081109 203615 148 INFO dfs.DataNode$PacketResponder"), Some(ms(2008, 11, 9, 20, 36, 15, 0)));
    assert_eq!(t("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: x"), Some(ms(1970, 6, 14, 15, 16, 1, 0)));
    assert_eq!(t("Dec  4 04:47:44 host x"), Some(ms(1970, 12, 4, 4, 47, 44, 0)));
    assert_eq!(t("[Sun Dec 04 04:47:44 2005] [notice] workerEnv"), Some(ms(2005, 12, 4, 4, 47, 44, 0)));
    assert_eq!(t("03-17 16:13:38.811  1702  2395 D WindowManager"), Some(ms(1970, 3, 17, 16, 13, 38, 811)));
    assert_eq!(
        t("- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 RAS KERNEL INFO x"),
        Some(1_117_838_570_000)
    );
    assert_eq!(t("1733533323123 ms epoch"), Some(1_733_533_323_123));
    assert_eq!(t("no time here, 12 apples"), None);
    assert_eq!(t("took 0.1234567890 s, id=1234567890"), None);
    assert_eq!(t("Jun 14 15:16:01 2001:db8::1 up"), Some(ms(1970, 6, 14, 15, 16, 1, 0)));
    assert_eq!(t("2026-02-30T01:02:03Z no such day"), None);
    // A timestamp starting within the first 96 bytes is read whole.
    let pad = "x".repeat(80);
    assert_eq!(t(&format!("{pad} 2026-12-07T01:02:03.250+02:00 late")), Some(ms(2026, 12, 6, 23, 2, 3, 250)));
    assert_eq!(t("2026-13-07T01:02:03Z month 13"), None);
    let y = p(json!({"year": 2026}));
    assert_eq!(y.event_time(b"Dec  4 04:47:44 host x"), Some(ms(2026, 12, 4, 4, 47, 44, 0)));
}

#[test]
fn custom_time_regex() {
    let q = p(json!({"time_regex": r"t=(?P<epoch>\d+)"}));
    assert_eq!(q.event_time(b"a t=100 b"), Some(100_000));
    let q = p(
        json!({"time_regex": r"(?P<day>\d\d)\.(?P<month>\w{3})\.(?P<year>\d{4}) (?P<hour>\d\d):(?P<minute>\d\d):(?P<second>\d\d)"}),
    );
    assert_eq!(q.event_time(b"07.Dec.2026 01:02:03 up"), Some(ms(2026, 12, 7, 1, 2, 3, 0)));
    assert!(PipelineParams::from_json(&json!({"time_regex": r"(\d+)"})).is_err());
}

const LOG: &str = "\
2026-12-07T00:00:01Z INFO api GET /a took 12ms user=ann
2026-12-07T00:00:02Z ERROR api GET /b took 7ms user=bob
2026-12-07T00:00:59Z INFO db query 1 rows took 3.5ms
no timestamp ERROR here
2026-12-07T00:01:00Z INFO api GET /c took 30ms user=ann
2026-12-07T00:01:30Z ERROR db query 4 rows took 1ms

2026-12-07T00:02:05Z INFO api GET /a took 2ms user=cy
";

fn run(params: Value, text: &str) -> Value {
    let spec = JobSpec::new("pipeline", &params).expect("spec");
    let part = spec.map(text.as_bytes()).expect("map");
    spec.finish(part).expect("finish")
}

#[test]
fn tumbling_counts_per_template_and_level() {
    let r = run(json!({"stages": [{"level": true}, {"template": true}], "window_ms": 60_000}), LOG);
    assert_eq!(r["lines"], 7);
    assert_eq!(r["untimed"], 1);
    let w = r["windows"].as_array().expect("windows");
    assert_eq!(w.len(), 3);
    assert_eq!(w[0]["start"], "2026-12-07T00:00:00.000Z");
    assert_eq!(w[0]["lines"], 3);
    assert_eq!(w[1]["lines"], 2);
    assert_eq!(w[2]["lines"], 1);
    // The INFO api lines of minutes 0 and 1 share a template (their paths and
    // times are masked; a plain word such as a user name is not).
    let k0 = &w[0]["top"][0]["key"];
    assert_eq!(k0[0], "ERROR");
    assert!(k0[1].as_str().expect("template").contains("<*>"), "{k0}");
    let api = |i: usize| {
        w[i]["top"]
            .as_array()
            .expect("top")
            .iter()
            .find(|t| t["key"][0] == "INFO" && t["key"][1].as_str().is_some_and(|s| s.contains("GET")))
            .map(|t| t["key"][1].clone())
    };
    assert_eq!(api(0), api(1));
    assert_eq!(api(0), Some(json!("api GET <*> took <*> user=ann")));
}

#[test]
fn filters_fields_sums_and_sliding_windows() {
    let r = run(
        json!({
            "stages": [{"filter": "took"}, {"exclude": "ERROR"}, {"field": r"user=(\w+)"}, {"sum": r"took ([0-9.]+)ms"}],
            "window_ms": 120_000, "slide_ms": 60_000, "top": 0
        }),
        LOG,
    );
    assert_eq!(r["dropped"], 3, "{r}");
    let w = r["windows"].as_array().expect("windows");
    let starts: Vec<i64> = w.iter().map(|x| x["start_ms"].as_i64().expect("start")).collect();
    let m0 = ms(2026, 12, 7, 0, 0, 0, 0);
    assert_eq!(starts, vec![m0 - 60_000, m0, m0 + 60_000, m0 + 120_000]);
    // Window [0:00, 0:02): ann 12 + ann 30, and the db line (no user: "-") 3.5.
    let top = w[1]["top"].as_array().expect("top");
    assert_eq!(top[0], json!({"key": ["ann"], "count": 2, "sum": 42.0}));
    assert_eq!(top[1], json!({"key": ["-"], "count": 1, "sum": 3.5}));
    let r = run(json!({"window_ms": 60_000, "from_ms": m0 + 60_000, "to_ms": m0 + 120_000}), LOG);
    assert_eq!(r["windows"].as_array().map(Vec::len), Some(1));
    assert_eq!(r["windows"][0]["lines"], 2);
}

#[test]
fn merge_is_the_same_bytes_however_the_lines_are_cut() {
    let spec =
        JobSpec::new("pipeline", &json!({"stages": [{"template": true}], "window_ms": 30_000, "slide_ms": 10_000}))
            .expect("spec");
    let whole = spec.map(LOG.as_bytes()).expect("map");
    let bytes = LOG.as_bytes();
    for cut in 1..bytes.len() {
        let Some(nl) = bytes[cut..].iter().position(|&b| b == b'\n') else { break };
        let at = cut + nl + 1;
        let a = spec.map(&bytes[..at]).expect("a");
        let b = spec.map(&bytes[at..]).expect("b");
        let ab = spec.merge(a, b).expect("merge");
        assert_eq!(ab.to_bytes(), whole.to_bytes());
        let back = Partial::from_bytes(&ab.to_bytes()).expect("decode");
        assert_eq!(back, whole);
    }
}

#[test]
fn bad_params_are_refused_with_a_reason() {
    for (v, says) in [
        (json!({"stages": [{"grok": "x"}]}), "unknown stage"),
        (json!({"stages": [{"filter": "(", "exclude": "x"}]}), "one key"),
        (json!({"stages": [{"filter": "("}]}), "stages[0].filter"),
        (json!({"stages": [{"template": 1}]}), "takes `true`"),
        (json!({"stages": [{"sum": "a"}, {"sum": "b"}]}), "one `sum`"),
        (json!({"window_ms": 1000, "slide_ms": 300}), "multiple"),
        (json!({"window_ms": 100_000, "slide_ms": 1000}), "multiple"),
        (json!({"window_ms": 0}), "window_ms"),
        (json!({"windw_ms": 10}), "unknown parameter"),
    ] {
        let e = PipelineParams::from_json(&v).expect_err("refused").to_string();
        assert!(e.contains(says), "{v}: {e}");
    }
}

#[test]
fn numbers_are_summed_exactly() {
    assert_eq!(millionths(b"12"), Some(12_000_000));
    assert_eq!(millionths(b"3.5"), Some(3_500_000));
    assert_eq!(millionths(b"-0.0000019"), Some(-1));
    assert_eq!(millionths(b".25"), Some(250_000));
    assert_eq!(millionths(b"1e3"), None);
    assert_eq!(millionths(b""), None);
    assert_eq!(millionths(b"."), None);
    assert_eq!(millionths(b"9999999999999"), None);
}

#[test]
fn hostile_bytes_do_not_panic() {
    let spec = JobSpec::new("pipeline", &json!({"stages": [{"template": true}, {"level": true}]})).expect("spec");
    let mut junk = Vec::new();
    for i in 0..4096u32 {
        junk.push((i.wrapping_mul(2_654_435_761) >> 13) as u8);
        if i % 97 == 0 {
            junk.extend_from_slice(b"2026-02-30T25:61:61Z \xff\xfe 9999999999999999999 Feb 31 99:99:99 ");
        }
    }
    let part = spec.map(&junk).expect("map");
    spec.finish(part).expect("finish");
}

#[test]
fn sums_beyond_i64_and_hostile_partials_neither_panic_nor_depend_on_order() {
    let spec = JobSpec::new("pipeline", &json!({"stages": [{"sum": r"v=(\S+)"}], "window_ms": 1000})).expect("spec");
    let line = "2026-12-07T00:00:00Z v=999999999999\n".repeat(20_000);
    let part = spec.map(line.as_bytes()).expect("map");
    let twice = spec.merge(part.clone(), part.clone()).expect("merge");
    let r = spec.finish(twice.clone()).expect("finish");
    assert_eq!(r["windows"][0]["top"][0]["count"], 40_000);
    assert_eq!(r["windows"][0]["top"][0]["sum"].as_f64(), Some(999_999_999_999.0 * 40_000.0));
    assert_eq!(Partial::from_bytes(&twice.to_bytes()).expect("decode"), twice);
    // Counts at u64::MAX from a made-up partial: an error, not a panic.
    let fp = spec.fingerprint();
    let forged = format!(
        r#"{{"partial":{{"pipeline":{{"lines":18446744073709551615,"dropped":0,"untimed":0,"unsummed":0,"windows":{{"0":{{"":[18446744073709551615,0]}}}}}}}},"spec":"{fp}","v":1}}"#
    );
    let f = Partial::from_bytes(forged.as_bytes()).expect("a forged partial decodes");
    assert!(spec.merge(f.clone(), f).is_err());
}

#[test]
fn stages_and_windows_are_part_of_a_cached_chunks_key() {
    let mut big = String::new();
    for i in 0..4000 {
        big.push_str(&format!("2026-12-07T00:{:02}:{:02}Z INFO job {} step {} done\n", i / 60 % 60, i % 60, i % 7, i));
    }
    let a = run(json!({"stages": [{"template": true}], "window_ms": 10_000, "top": 0}), &big);
    let b = run(json!({"stages": [{"field": r"job (\d)"}], "window_ms": 10_000, "top": 0}), &big);
    let c = run(json!({"stages": [{"template": true}], "window_ms": 20_000, "top": 0}), &big);
    assert_ne!(a["windows"][0]["top"], b["windows"][0]["top"]);
    assert_eq!(b["windows"][0]["keys"], 7);
    assert_eq!(a["windows"].as_array().map(Vec::len), Some(2 * c["windows"].as_array().map_or(0, Vec::len)));
}

#[test]
fn a_cached_chunk_answers_any_range_as_a_fresh_map_would() {
    let mut big = String::new();
    for i in 0..4000 {
        big.push_str(&format!("2026-12-07T00:{:02}:{:02}Z INFO job {} step {} done\n", i / 60 % 60, i % 60, i % 7, i));
    }
    assert!(big.len() >= CACHE_MIN_CHUNK);
    let m0 = ms(2026, 12, 7, 0, 0, 0, 0);
    let params = |from: i64, to: i64| {
        PipelineParams::from_json(
            &json!({"stages": [{"template": true}], "window_ms": 10_000, "from_ms": from, "to_ms": to}),
        )
        .expect("params")
    };
    let before = cache_counts();
    for (from, to) in [(m0, m0 + 600_000), (m0 + 60_000, m0 + 70_000), (m0 + 30_000, m0 + 200_000), (m0 + 5, m0)] {
        let p = params(from, to);
        let cached = map(&p, big.as_bytes()).expect("map");
        let fresh = p.restrict(&map_all(&p, big.as_bytes()).expect("map_all"));
        assert_eq!(cached, fresh);
        assert!(cached.windows.keys().all(|s| (from..to).contains(s)));
    }
    let after = cache_counts();
    // The first map may miss (or hit, after another test); the others hit.
    assert!(after.0 >= before.0 + 3, "{before:?} → {after:?}");
}
