//! Graceful shutdown: a node stopped with SIGTERM hands the data only it
//! holds to its neighbours before it exits, within its shutdown deadline.

mod support;

use ryx_api::{BlobHash, UploadOptions};
use std::time::{Duration, Instant};
use support::*;

#[test]
fn sigterm_hands_over_blobs_only_this_node_holds() {
    let mut nodes = start_cluster(4, "handover");
    assert!(wait_until(Duration::from_secs(15), || all_have(&nodes, 3)).is_some(), "cluster did not form");

    // Upload with energy 0: no replication, so node 0 is the only holder.
    let body: Vec<u8> = (0..5000).flat_map(|i| format!("line {i} of the hand-over test\n").into_bytes()).collect();
    let no_copies = UploadOptions { energy: Some(0.0), ..UploadOptions::default() };
    let hash = nodes[0].client().put_blob(&body, &no_copies).expect("upload").hash;
    let holds_blob = |n: &NodeProc, h: &BlobHash| n.client().blob(h).is_ok();
    let holds = |n: &NodeProc| holds_blob(n, &hash);
    // A blob uploaded after it with the default energy does replicate: once
    // a neighbour holds that one, the first would have spread too, had its
    // energy 0 not stopped it.
    let spreads =
        nodes[0].client().put_blob(b"a blob that replicates\n", &UploadOptions::default()).expect("upload").hash;
    let spread = wait_until(Duration::from_secs(10), || nodes[1..].iter().any(|n| holds_blob(n, &spreads)));
    assert!(spread.is_some(), "a blob with the default energy did not replicate");
    assert!(holds(&nodes[0]));
    assert!(!nodes[1..].iter().any(holds), "energy 0 must not replicate");

    let t0 = Instant::now();
    nodes[0].signal("TERM");
    let status = loop {
        if let Some(s) = nodes[0].child.try_wait().expect("wait") {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "node did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    let gone = nodes.remove(0);
    drop(gone);
    let copies = nodes.iter().filter(|n| holds(n)).count();
    assert!(copies >= 1, "no neighbour got a copy of the only replica");
    // And the copy is the same bytes (verified by name on fetch, checked here too).
    let holder = nodes.iter().find(|n| holds(n)).expect("holder");
    assert_eq!(holder.client().blob(&hash).expect("get"), body);
}

#[test]
fn sigterm_is_bounded_even_with_an_event_stream_open() {
    use std::io::{Read, Write};
    let mut n = start_any_node("sse-stop", discovery_port(), &["--shutdown-timeout-ms", "1000"]);
    // A dashboard's live stream: a request that never ends by itself.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", n.port)).expect("connect");
    s.write_all(b"GET /v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").expect("write");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut first = [0u8; 64];
    let got = s.read(&mut first).expect("stream answers");
    assert!(String::from_utf8_lossy(&first[..got]).starts_with("HTTP/1.1 200"));
    let t0 = Instant::now();
    n.signal("TERM");
    loop {
        if let Some(st) = n.child.try_wait().expect("wait") {
            assert!(st.success(), "exit status {st}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "node still running 10 s after SIGTERM with a stream open");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(s);
}
