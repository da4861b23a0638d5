//! A real `ryx-node` process under a fake service manager: the test binds
//! the notification socket systemd would (`NOTIFY_SOCKET`), sets a watchdog
//! (`WATCHDOG_USEC`) and checks READY=1 once the node serves, WATCHDOG=1 at
//! about half the timeout, and STOPPING=1 on SIGTERM.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn recv(s: &UnixDatagram) -> Option<String> {
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn node_reports_ready_watchdog_and_stopping() {
    let dir = std::env::temp_dir().join(format!("ryx-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let port = support::free_port();
    let discovery = support::discovery_port();
    let child = Command::new(env!("CARGO_BIN_EXE_ryx-node"))
        .args(["--port", &port.to_string(), "--discovery-port", &discovery.to_string(), "--cluster-id", "notify"])
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ryx-node");
    // Killed on drop if the test fails midway.
    let mut node = support::NodeProc { child, port, id: ryx_api::NodeId::default() };

    let ready = recv(&sock).expect("READY=1 arrives");
    assert!(ready.starts_with("READY=1"), "first notification is READY=1: {ready:?}");
    // Ready means serving: the API answers now.
    let (st, _) = support::http(port, "GET", "/healthz", None).expect("API up once READY=1 was sent");
    assert_eq!(st, 200);

    // Watchdog every ~200 ms (half of 400 ms).
    let t = Instant::now();
    let mut beats = 0;
    while t.elapsed() < Duration::from_millis(1100) {
        if recv(&sock).is_some_and(|m| m == "WATCHDOG=1") {
            beats += 1;
        }
    }
    assert!((3..=8).contains(&beats), "about 5 watchdog beats in 1.1 s, got {beats}");

    node.signal("TERM");
    let mut stopping = false;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        match recv(&sock) {
            Some(m) if m == "STOPPING=1" => {
                stopping = true;
                break;
            }
            Some(_) => continue,
            None => break,
        }
    }
    let status = node.child.wait().expect("node exits");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(stopping, "STOPPING=1 on SIGTERM");
    assert!(status.success(), "graceful exit: {status:?}");
}
