//! Learning by gossip on real processes: scikit-learn's digits spread over
//! ten loopback nodes by `POST /v1/rows`, a task started at one node, and
//! every node's model asked for the test rows' classes over HTTP, against
//! one process that takes as many steps on all the training rows.

mod support;

use ryx_core::learn::{self, Row, Spec};
use std::time::Duration;
use support::*;

const DIGITS: &str = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz";

#[test]
fn ten_processes_learn_digits_as_one_process_does_in_as_many_steps() {
    let test = "ten_processes_learn_digits_as_one_process_does_in_as_many_steps";
    if !std::path::Path::new(DIGITS).exists() {
        ryx_testkit::skip(test, ryx_testkit::Needs::Sklearn, &format!("no {DIGITS}"));
        return;
    }
    let out = std::process::Command::new("gzip").args(["-dc", DIGITS]).output().expect("gzip runs");
    assert!(out.status.success(), "gzip -dc {DIGITS}");
    // Pixels 0..16 scaled to 0..1; every sixth row is a test row.
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let scaled: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            let (x, y) = v.split_at(v.len() - 1);
            let x: Vec<String> =
                x.iter().map(|p| format!("{}", p.trim().parse::<f32>().expect("pixel") / 16.0)).collect();
            format!("{},{}", x.join(","), y[0].trim().parse::<f32>().expect("label") as u32)
        })
        .collect();
    let test_lines: Vec<&String> = scaled.iter().step_by(6).collect();
    let train_lines: Vec<&String> = scaled.iter().enumerate().filter(|(i, _)| i % 6 != 0).map(|(_, l)| l).collect();
    let rows = |ls: &[&String]| -> Vec<Row> { ls.iter().map(|l| learn::parse_row(l).expect("row")).collect() };
    let (test_rows, train_rows) = (rows(&test_lines), rows(&train_lines));

    let n = 10;
    let nodes = start_nodes(n, "learning", &[]);
    for (k, node) in nodes.iter().enumerate() {
        let mine: String = train_lines.iter().skip(k).step_by(n).map(|l| format!("{l}\n")).collect();
        let (st, body) = http(node.port, "POST", "/v1/rows/digits", Some(mine.as_bytes())).expect("rows");
        assert_eq!(st, 201, "{body}");
    }
    let cycles = 60u32;
    let task = serde_json::json!({
        "id": "digits", "dataset": "digits", "features": 64, "classes": 10, "cycles": cycles, "period_ms": 300,
    });
    let (st, body) = http(nodes[3].port, "POST", "/v1/learn", Some(task.to_string().as_bytes())).expect("task");
    assert_eq!(st, 201, "{body}");

    let cycles_at = |port: u16| -> u64 {
        http(port, "GET", "/v1/learn/digits", None)
            .ok()
            .filter(|r| r.0 == 200)
            .and_then(|r| serde_json::from_str::<serde_json::Value>(&r.1).ok())
            .and_then(|v| v["cycles"].as_u64())
            .unwrap_or(0)
    };
    let done = wait_until(Duration::from_secs(120), || nodes.iter().all(|x| cycles_at(x.port) >= u64::from(cycles)));
    assert!(done.is_some(), "cycles: {:?}", nodes.iter().map(|x| cycles_at(x.port)).collect::<Vec<_>>());

    // All test rows in one request (about 100 kB of JSON).
    let body = serde_json::json!({ "rows": test_rows.iter().map(|r| r.x.clone()).collect::<Vec<_>>() }).to_string();
    let mut accs = Vec::new();
    for node in &nodes {
        let (st, text) = http(node.port, "POST", "/v1/learn/digits/predict", Some(body.as_bytes())).expect("predict");
        assert_eq!(st, 200, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let classes = v["classes"].as_array().expect("classes");
        assert_eq!(classes.len(), test_rows.len());
        let hits = classes.iter().zip(&test_rows).filter(|(c, r)| c.as_u64() == Some(u64::from(r.y))).count();
        accs.push(hits as f64 / test_rows.len() as f64);
    }
    // A row of the wrong width is refused, naming it.
    let (st, text) =
        http(nodes[0].port, "POST", "/v1/learn/digits/predict", Some(br#"{"rows":[[1,2,3]]}"#)).expect("bad");
    assert!(st == 400 && text.contains("64"), "{st} {text}");

    let spec = Spec::new("digits", "digits", 64, 10);
    let trained: Vec<Row> = train_rows.iter().filter(|r| !spec.held_out(r)).cloned().collect();
    let same = learn::accuracy(
        &spec,
        &learn::train_steps(&spec, &trained, cycles as usize, spec.step, spec.momentum),
        &test_rows,
    );
    let mean = accs.iter().sum::<f64>() / accs.len() as f64;
    let min = accs.iter().copied().fold(1.0, f64::min);
    eprintln!(
        "10 processes, {cycles} cycles: mean {mean:.3}, lowest {min:.3}; one process, same steps: {same:.3} ({} test rows)",
        test_rows.len()
    );
    assert!(mean >= same - 0.03 && min >= same - 0.06, "mean {mean:.3}, lowest {min:.3} against {same:.3}");
}
