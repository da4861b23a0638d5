//! Grouping accuracy of `log-analysis` computed by a 10-node cluster on the
//! ten real Loghub samples, against their ground truth and Drain's figure.

mod support;

use ryx_api::{JobState, JobView, LogAnalysisResult, SubmitJob, UploadOptions};
use ryx_compute::eval::{grouping_accuracy, loghub_truth, DRAIN_ACCURACY};
use std::time::Duration;
use support::*;

#[test]
fn cluster_grouping_accuracy_reaches_drain_on_every_dataset() {
    let Some(dir) = ryx_testkit::loghub_dir() else {
        ryx_testkit::skip("cluster grouping accuracy", ryx_testkit::Needs::Data, "no Loghub data (RYX_LOGHUB_DIR)");
        return;
    };
    let dir = dir.as_path();
    // Small chunks so every 2k-line sample is cut into about ten units
    // computed on different nodes.
    let nodes = start_nodes(10, "loghub", &["--chunk-size", "24KiB", "--workers", "1"]);
    assert!(wait_until(Duration::from_secs(20), || all_have(&nodes, 4)).is_some(), "cluster did not form");
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    for (i, (name, drain)) in DRAIN_ACCURACY.iter().enumerate() {
        let data = std::fs::read(dir.join(name).join(format!("{name}_2k.log"))).expect("read log");
        let entry = ports[i % ports.len()];
        let hash = client(entry).put_blob(&data, &UploadOptions::default()).expect("upload").hash;
        let mut req = SubmitJob::new("log-analysis", vec![hash]);
        req.redundancy = Some(1);
        req.params = serde_json::json!({"preset": name, "assignments": true});
        let job = client(entry).submit_job(&req).expect("submit");
        let other = ports[(i + 5) % ports.len()];
        let mut done: Option<JobView> = None;
        wait_until(Duration::from_secs(60), || {
            done = client(other).job(&job).ok().filter(|v| v.state == JobState::Done);
            done.is_some()
        });
        let result = done.unwrap_or_else(|| panic!("{name}: job did not finish"));
        let units = result.progress.units_total;
        let parsed: Vec<u64> = result
            .result_as::<LogAnalysisResult>()
            .expect("a log analysis")
            .and_then(|r| r.line_templates)
            .expect("line_templates");
        let truth = loghub_truth(dir, name).expect("truth");
        let acc = grouping_accuracy(&truth["EventId"], &parsed);
        println!("{name:<10} units={units:>2} cluster accuracy {acc:.4}  Drain {drain:.4}");
        assert!(units >= 5, "{name}: only {units} units; the test needs the work spread");
        assert!(acc >= *drain, "{name}: accuracy {acc:.4} below Drain's {drain:.4}");
    }
}
