//! Grouping accuracy of `log-analysis` computed by a 10-node cluster on the
//! ten real Loghub samples, against their ground truth and Drain's figure.

mod support;

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
        let (st, body) = http(entry, "PUT", "/v1/blobs", Some(&data)).expect("upload");
        assert_eq!(st, 201, "{body}");
        let hash =
            serde_json::from_str::<serde_json::Value>(&body).expect("json")["hash"].as_str().expect("hash").to_string();
        let req = serde_json::json!({"kind": "log-analysis", "inputs": [hash], "redundancy": 1,
            "params": {"preset": name, "assignments": true}});
        let (st, body) = http(entry, "POST", "/v1/jobs", Some(req.to_string().as_bytes())).expect("submit");
        assert_eq!(st, 201, "{body}");
        let job =
            serde_json::from_str::<serde_json::Value>(&body).expect("json")["job_id"].as_str().expect("id").to_string();
        let mut result = serde_json::Value::Null;
        let done = wait_until(Duration::from_secs(60), || {
            let other = ports[(i + 5) % ports.len()];
            match http(other, "GET", &format!("/v1/jobs/{job}"), None) {
                Ok((200, b)) => {
                    let v: serde_json::Value = serde_json::from_str(&b).unwrap_or_default();
                    if v["state"] == "done" {
                        result = v;
                        true
                    } else {
                        false
                    }
                }
                _ => false,
            }
        });
        assert!(done.is_some(), "{name}: job did not finish");
        let units = result["progress"]["units_total"].as_u64().unwrap_or(0);
        let parsed: Vec<u64> = result["result"]["line_templates"]
            .as_array()
            .expect("line_templates")
            .iter()
            .map(|v| v.as_u64().unwrap_or(u64::MAX))
            .collect();
        let truth = loghub_truth(dir, name).expect("truth");
        let acc = grouping_accuracy(&truth["EventId"], &parsed);
        println!("{name:<10} units={units:>2} cluster accuracy {acc:.4}  Drain {drain:.4}");
        assert!(units >= 5, "{name}: only {units} units; the test needs the work spread");
        assert!(acc >= *drain, "{name}: accuracy {acc:.4} below Drain's {drain:.4}");
    }
}
