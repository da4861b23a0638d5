//! Accuracy of `log-analysis` on the Loghub 2k samples against their ground truth.
//!
//! Needs the shared Loghub data (`ryx_testkit::loghub_dir`); skips, saying
//! so, when it is absent, and fails instead where `RYX_REQUIRE` names `data`.

use ryx_compute::{run_local, JobSpec};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Drain's grouping accuracy as published in the Loghub README.
const DRAIN: &[(&str, f64)] = &[
    ("HDFS", 0.9975),
    ("Hadoop", 0.9475),
    ("Spark", 0.9200),
    ("Zookeeper", 0.9665),
    ("BGL", 0.9625),
    ("HPC", 0.8870),
    ("Linux", 0.6900),
    ("Apache", 1.0000),
    ("OpenSSH", 0.7875),
    ("Android", 0.9110),
];

fn data_dir() -> Option<PathBuf> {
    let dir = ryx_testkit::loghub_dir();
    if dir.is_none() {
        ryx_testkit::skip("log-analysis accuracy", ryx_testkit::Needs::Data, "no Loghub data (RYX_LOGHUB_DIR)");
    }
    dir
}

/// Minimal RFC 4180 reader: quoted fields may hold commas, newlines and doubled quotes.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

#[test]
fn csv_reader_handles_quotes() {
    let rows = parse_csv("a,b,c\r\n1,\"x, \"\"y\"\"\",3\n\"multi\nline\",,\n");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1], vec!["1", "x, \"y\"", "3"]);
    assert_eq!(rows[2], vec!["multi\nline", "", ""]);
}

/// Ground truth of one dataset: (column name -> values), one value per log line.
fn ground_truth(dir: &Path, name: &str) -> HashMap<String, Vec<String>> {
    let path = dir.join(name).join(format!("{name}_2k.log_structured.csv"));
    let text = std::fs::read_to_string(&path).expect("read structured csv");
    let rows = parse_csv(&text);
    let header = rows[0].clone();
    let mut cols: HashMap<String, Vec<String>> = header.iter().map(|h| (h.clone(), Vec::new())).collect();
    for (i, r) in rows[1..].iter().enumerate() {
        assert_eq!(r.len(), header.len(), "{name}: row {} has {} fields", i + 1, r.len());
        assert_eq!(r[0], (i + 1).to_string(), "{name}: LineId out of order");
        for (h, v) in header.iter().zip(r) {
            cols.get_mut(h).expect("column").push(v.clone());
        }
    }
    cols
}

/// Share of lines whose parsed group is exactly the set of lines sharing their
/// ground-truth event.
fn grouping_accuracy(truth: &[String], parsed: &[u64]) -> f64 {
    assert_eq!(truth.len(), parsed.len());
    let mut truth_size: HashMap<&str, usize> = HashMap::new();
    for t in truth {
        *truth_size.entry(t).or_default() += 1;
    }
    let mut groups: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, &p) in parsed.iter().enumerate() {
        groups.entry(p).or_default().push(i);
    }
    let mut correct = 0usize;
    for members in groups.values() {
        let first = truth[members[0]].as_str();
        if members.iter().all(|&i| truth[i] == first) && truth_size[first] == members.len() {
            correct += members.len();
        }
    }
    correct as f64 / truth.len() as f64
}

fn line_templates(v: &Value) -> Vec<u64> {
    v["line_templates"].as_array().expect("line_templates").iter().map(|x| x.as_u64().expect("id")).collect()
}

#[test]
fn grouping_accuracy_matches_drain_single_and_chunked() {
    let Some(dir) = data_dir() else { return };
    println!(
        "\n{:<10} {:>8} {:>10} {:>10} {:>6} {:>9} {:>8}",
        "dataset", "Drain", "1 unit", "10 chunks", "units", "templates", "generic"
    );
    let mut failures = Vec::new();
    for &(name, drain) in DRAIN {
        let log = std::fs::read(dir.join(name).join(format!("{name}_2k.log"))).expect("read log");
        let truth = ground_truth(&dir, name);
        let events = &truth["EventId"];
        let spec = JobSpec::new("log-analysis", &json!({"preset": name, "assignments": true})).expect("spec");
        let single = run_local(&spec, &[&log], log.len() + 1, 1).expect("single run");
        let chunked = run_local(&spec, &[&log], log.len() / 10, 2).expect("chunked run");
        assert_eq!(single.result["lines"].as_u64(), Some(events.len() as u64), "{name}: line count");
        let a1 = grouping_accuracy(events, &line_templates(&single.result));
        let a10 = grouping_accuracy(events, &line_templates(&chunked.result));
        let ntemp = single.result["templates"].as_array().map_or(0, Vec::len);
        // For information: the preset's layout with the generic defaults (default
        // masks, similarity 0.5, depth 4). Printed, not asserted.
        let format = spec.params.to_json()["format"].clone();
        let generic =
            JobSpec::new("log-analysis", &json!({"format": format, "assignments": true})).expect("generic spec");
        let g = run_local(&generic, &[&log], log.len() / 10, 2).expect("generic run");
        let ag = grouping_accuracy(events, &line_templates(&g.result));
        println!("{name:<10} {drain:>8.4} {a1:>10.4} {a10:>10.4} {:>6} {ntemp:>9} {ag:>8.4}", chunked.units);
        assert_eq!(single.result["unparsed"].as_u64(), Some(0), "{name}: every line fits the layout");
        if a1 + 1e-9 < drain || a10 + 1e-9 < drain {
            failures.push(format!("{name}: {a1:.4} / {a10:.4} < {drain:.4}"));
        }
    }
    assert!(failures.is_empty(), "below Drain: {failures:?}");
}

#[test]
fn bgl_alert_precision_recall() {
    let Some(dir) = data_dir() else { return };
    let log = std::fs::read(dir.join("BGL").join("BGL_2k.log")).expect("read log");
    let truth = ground_truth(&dir, "BGL");
    let labels = &truth["Label"];
    let spec = JobSpec::new("log-analysis", &json!({"preset": "BGL"})).expect("spec");
    let ryx_compute::Params::LogAnalysis(p) = &spec.params else { panic!("log-analysis params") };
    let lines: Vec<&[u8]> = log.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), labels.len());
    let (mut tp, mut fp, mut fneg) = (0u32, 0u32, 0u32);
    for (line, label) in lines.iter().zip(labels) {
        match (p.line_is_alert(line), label != "-") {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fneg += 1,
            _ => {}
        }
    }
    let precision = f64::from(tp) / f64::from((tp + fp).max(1));
    let recall = f64::from(tp) / f64::from((tp + fneg).max(1));
    println!("\nBGL alerts vs labels: tp={tp} fp={fp} fn={fneg} precision={precision:.4} recall={recall:.4}");
    let r = run_local(&spec, &[&log], log.len() / 10, 2).expect("run");
    assert_eq!(r.result["alerts"]["count"].as_u64(), Some(u64::from(tp + fp)));
}
