//! Dashboard figures with a real browser against a local cluster of real
//! `ryx-node` processes:
//!
//! ```text
//! cargo build --release -p ryx-node    # the bench runs the ryx-node cargo built
//! cargo bench -p ryx-control --bench dashboard -- --nodes 100 [--secs 20]
//! ```
//!
//! Prints: time until every node is listed; graph frame rate and per-frame
//! cost with the layout running; the page's cost to apply a topology
//! update; bytes per second the event stream (and the page's other
//! requests) cost the connected node; time from a node's death (SIGKILL)
//! to its removal from the list and its fading out of the graph.

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Bytes of `/v1/events` a client receives from `node` in `secs` seconds.
fn sse_bytes(node: SocketAddr, secs: u64) -> u64 {
    let mut s = TcpStream::connect(node).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    write!(s, "GET /v1/events HTTP/1.1\r\nHost: {node}\r\nAccept: text/event-stream\r\n\r\n").unwrap();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 65536];
    let mut total = 0u64;
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(_) => continue,
        }
    }
    total
}

fn main() {
    let n = arg("--nodes", 100) as usize;
    let secs = arg("--secs", 20);
    let Some((chrome, driver)) = browser_or_skip("dashboard bench") else { return };
    eprintln!("starting {n} ryx-node processes…");
    let t = Instant::now();
    let mut cluster = Cluster::start_loose(n, "bench", Duration::from_secs(60 + n as u64 / 2));
    println!("cluster: {n} nodes formed in {:.1} s", t.elapsed().as_secs_f64());
    let node = cluster.nodes[0].http;
    let b = Browser::start(&chrome, &driver, 1440, 900);
    b.js("performance.setResourceTimingBufferSize(100000); return 1");
    let t = Instant::now();
    b.goto(&format!("http://{node}/ui/#topology"));
    let count = || b.js("return document.querySelectorAll('#node-list li[data-node-id]').length").as_u64().unwrap_or(0);
    let mut last = (0, Instant::now());
    let full = loop {
        let c = count();
        if c != last.0 {
            last = (c, Instant::now());
        }
        if c as usize >= n {
            break Some(t.elapsed());
        }
        if t.elapsed() > Duration::from_secs(120) || (c > 0 && last.1.elapsed() > Duration::from_secs(30)) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    match full {
        Some(d) => println!("page: all {n} nodes listed {:.1} s after load", d.as_secs_f64()),
        None => println!(
            "page: {} of {n} nodes listed after {:.0} s (no more within 30 s)",
            count(),
            t.elapsed().as_secs_f64()
        ),
    }

    // Graph frame rate with the layout kept running (the worst case: a
    // settled graph draws no frames at all).
    let r = b.js_async("__ryx.bench(5000).then(arguments[arguments.length - 1])");
    println!(
        "graph: {} nodes, {} links: {:.1} fps, layout step {:.2} ms + draw {:.2} ms per frame (worst frame {:.1} ms)",
        r["nodes"],
        r["links"],
        r["fps"].as_f64().unwrap_or(0.0),
        r["stepMsAvg"].as_f64().unwrap_or(0.0),
        r["drawMsAvg"].as_f64().unwrap_or(0.0),
        r["worstFrameMs"].as_f64().unwrap_or(0.0)
    );

    // Cost of one topology update in the page, and what the page pulls.
    let t0 = b.js("return performance.now()").as_f64().unwrap();
    let bytes0 = b.js("return __ryx.stream.bytes").as_f64().unwrap();
    let mut apply = Vec::new();
    let mut list = Vec::new();
    let mut seen = 0.0;
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let p = b.js("return __ryx.app.perf");
        if p["lastTopologyAt"].as_f64() != Some(seen) {
            seen = p["lastTopologyAt"].as_f64().unwrap_or(0.0);
            apply.push(p["topologyApplyMs"].as_f64().unwrap_or(0.0));
            list.push(p["listMs"].as_f64().unwrap_or(0.0));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let t1 = b.js("return performance.now()").as_f64().unwrap();
    let dt = (t1 - t0) / 1000.0;
    let stream = (b.js("return __ryx.stream.bytes").as_f64().unwrap() - bytes0) / dt;
    let other: Value = b.js(&format!(
        "const e = performance.getEntriesByType('resource').filter(x => x.startTime >= {t0} && !x.name.endsWith('/v1/events'));
         return [e.length, e.reduce((a, x) => a + (x.transferSize || 0), 0)]"
    ));
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let max = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    println!(
        "page: applying a topology snapshot {:.1} ms avg ({:.1} max), node list update {:.1} ms avg ({:.1} max), over {} snapshots",
        avg(&apply), max(&apply), avg(&list), max(&list), apply.len()
    );
    println!(
        "cost to the connected node: event stream {:.0} B/s (payload, measured in the page); other requests {} in {:.0} s = {:.0} B/s",
        stream, other[0], dt, other[1].as_f64().unwrap_or(0.0) / dt
    );
    let raw = sse_bytes(node, secs.min(10));
    println!(
        "raw /v1/events on the wire (headers, framing): {:.0} B/s over {} s",
        raw as f64 / secs.min(10) as f64,
        secs.min(10)
    );

    // Death to disappearance.
    let i = n / 2;
    let victim = cluster.nodes[i].id.clone();
    cluster.nodes[i].proc.kill();
    let t = Instant::now();
    let listed = b.wait_js(
        Duration::from_secs(60),
        &format!("return !document.querySelector('#node-list li[data-node-id=\"{victim}\"]')"),
    );
    let d1 = t.elapsed();
    let drawn = b.wait_js(Duration::from_secs(60), &format!("return !__ryx.cluster.nodes.has('{victim}')"));
    let d2 = t.elapsed();
    match (listed, drawn) {
        (Some(_), Some(_)) => println!(
            "node death -> gone from the list (and marked dead on the graph): {:.2} s; faded out of the graph: {:.2} s",
            d1.as_secs_f64(),
            d2.as_secs_f64()
        ),
        _ => println!("node death: killed node still shown after 60 s"),
    }
}
