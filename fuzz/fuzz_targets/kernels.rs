//! Every kernel on arbitrary bytes and parameters: map, the partial's
//! encoding and decoding, merge and finish. Also decoding a partial from
//! arbitrary bytes and merging it. Nothing may panic.
//!
//! Input: `[kind: u8][params length: u8][params JSON][chunk bytes]`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ryx_compute::{JobSpec, Partial};
use std::cell::RefCell;
use std::collections::HashMap;

const KINDS: [&str; 6] = ["word-count", "grep", "log-analysis", "search-stats", "search", "pipeline"];

thread_local! {
    // Building a log-analysis spec compiles its masks (milliseconds under
    // the sanitizer): specs are reused per (kind, params), as a worker
    // would for the units of one job.
    static SPECS: RefCell<HashMap<(usize, String), Option<JobSpec>>> = RefCell::new(HashMap::new());
}

fn spec(kind: usize, params: &serde_json::Value) -> Option<JobSpec> {
    SPECS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() > 256 {
            c.clear();
        }
        c.entry((kind, params.to_string())).or_insert_with(|| JobSpec::new(KINDS[kind], params).ok()).clone()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    let Some((&plen, rest)) = rest.split_first() else { return };
    let plen = usize::from(plen).min(rest.len());
    let (params, chunk) = rest.split_at(plen);
    let kind = usize::from(kind) % KINDS.len();
    let params: serde_json::Value = serde_json::from_slice(params).unwrap_or_else(|_| match KINDS[kind] {
        // Every stage and a sliding window, on bytes that rarely parse as params.
        "pipeline" => serde_json::json!({
            "stages": [{"exclude": "^#"}, {"level": true}, {"template": true}, {"field": "user=(\\w+)"}, {"sum": "took ([0-9.]+)"}],
            "window_ms": 60000, "slide_ms": 20000, "top": 3,
        }),
        _ => serde_json::json!({}),
    });
    let Some(spec) = spec(kind, &params) else { return };
    if let Ok(p) = spec.map(chunk) {
        let bytes = p.to_bytes();
        let back = Partial::from_bytes(&bytes).expect("a partial decodes what it encodes");
        if let Ok(m) = spec.merge(back, spec.empty_partial()) {
            let _ = spec.finish(m);
        }
    }
    // A partial from anywhere (another node's, or made up).
    if let Ok(p) = Partial::from_bytes(chunk) {
        if let Ok(m) = spec.merge(spec.empty_partial(), p) {
            let _ = spec.finish(m);
        }
    }
});
