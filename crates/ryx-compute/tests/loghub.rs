//! Accuracy of `log-analysis` on the Loghub 2k samples against their ground truth.
//!
//! Needs the shared Loghub data (`ryx_testkit::loghub_dir`); skips, saying
//! so, when it is absent, and fails instead where `RYX_REQUIRE` names `data`.

use ryx_compute::eval::{grouping_accuracy, loghub_truth, parse_csv, DRAIN_ACCURACY as DRAIN};
use ryx_compute::{run_local, JobSpec};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn data_dir() -> Option<PathBuf> {
    let dir = ryx_testkit::loghub_dir();
    if dir.is_none() {
        ryx_testkit::skip("log-analysis accuracy", ryx_testkit::Needs::Data, "no Loghub data (RYX_LOGHUB_DIR)");
    }
    dir
}

#[test]
fn csv_reader_handles_quotes() {
    let rows = parse_csv("a,b,c\r\n1,\"x, \"\"y\"\"\",3\n\"multi\nline\",,\n");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1], vec!["1", "x, \"y\"", "3"]);
    assert_eq!(rows[2], vec!["multi\nline", "", ""]);
}

/// Ground truth of one dataset (column name -> values, one per log line),
/// checked whole: every column as long as the log, lines in order.
fn ground_truth(dir: &Path, name: &str) -> HashMap<String, Vec<String>> {
    let cols = loghub_truth(dir, name).expect("read structured csv");
    let ids = &cols["LineId"];
    assert!(cols.values().all(|c| c.len() == ids.len()), "{name}: every row has every field");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(*id, (i + 1).to_string(), "{name}: LineId out of order");
    }
    cols
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
