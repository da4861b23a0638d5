//! Test support: real `ryx-node` processes on loopback and a tiny HTTP client.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Minimal blocking HTTP/1.1 request; returns status and body.
pub fn http(port: u16, method: &str, path: &str, body: Option<&[u8]>) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    // Generous, to catch hangs only: an upload with `copies=N` answers
    // once the copies exist or its `copies_timeout_ms` (60 s at most in
    // these tests) has passed, which a loaded 2-core machine may reach.
    s.set_read_timeout(Some(Duration::from_secs(90)))?;
    let body = body.unwrap_or(&[]);
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    // Chunked bodies are not used by our server for JSON; keep it simple.
    Ok((status, body))
}

/// GET returning parsed JSON (panics with context on failure).
pub fn get_json(port: u16, path: &str) -> serde_json::Value {
    let (st, body) = http(port, "GET", path, None).unwrap_or_else(|e| panic!("GET {path} on {port}: {e}"));
    assert!(st == 200, "GET {path} on {port}: status {st}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: bad JSON {e}: {body}"))
}

pub use ryx_testkit::{free_port, wait_until};

/// The loopback broadcast address nodes with broadcast discovery listen on.
const LOOPBACK_BROADCAST: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 255);

/// A discovery port from the OS that no cluster on this machine uses: free
/// on 127.0.0.1 (UDP and TCP) and on the loopback broadcast address, where
/// every node of a broadcast cluster binds it.
pub fn discovery_port() -> u16 {
    ryx_testkit::free_port_where(|p| UdpSocket::bind((LOOPBACK_BROADCAST, p)).is_ok())
}

/// A node process, killed when dropped.
pub struct NodeProc {
    pub child: Child,
    pub port: u16,
    pub id: String,
}

impl NodeProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// Sends `sig` to the node; a signal that could not be sent fails the
    /// test (a SIGSTOP that never arrived would make a pause test pass
    /// without pausing anything).
    pub fn signal(&self, sig: &str) {
        let pid = self.pid();
        let st = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
        assert!(st.as_ref().is_ok_and(|s| s.success()), "kill -{sig} {pid}: {st:?}");
    }
    pub fn neighbor_ids(&self) -> Option<Vec<String>> {
        let (st, body) = http(self.port, "GET", "/v1/neighbors", None).ok()?;
        if st != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        Some(v["neighbors"].as_array()?.iter().filter_map(|n| n["node_id"].as_str().map(String::from)).collect())
    }
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = http(self.port, "GET", "/metrics", None).ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts one node; waits until its HTTP API answers.
pub fn start_node(port: u16, cluster: &str, discovery_port: u16, extra: &[&str]) -> NodeProc {
    let log = std::env::temp_dir().join(format!("ryx-test-{port}.log"));
    let logf = std::fs::File::create(&log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_ryx-node"))
        .args(["--port", &port.to_string(), "--cluster-id", cluster, "--discovery-port", &discovery_port.to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .expect("spawn ryx-node");
    let mut node = NodeProc { child, port, id: String::new() };
    let ok = wait_until(Duration::from_secs(10), || {
        http(port, "GET", "/healthz", None).map(|r| r.0 == 200).unwrap_or(false)
    });
    assert!(ok.is_some(), "node on port {port} did not come up; log in {}", log.display());
    node.id = get_json(port, "/v1/status")["node_id"].as_str().expect("node_id").to_string();
    node
}

/// Starts `n` broadcast-discovery nodes with `extra` arguments, each on a
/// port from the OS, sharing a discovery port of their own.
pub fn start_nodes(n: usize, cluster: &str, extra: &[&str]) -> Vec<NodeProc> {
    let discovery = discovery_port();
    (0..n).map(|_| start_node(free_port(), cluster, discovery, extra)).collect()
}

/// Starts `n` broadcast-discovery nodes with default settings.
pub fn start_cluster(n: usize, cluster: &str) -> Vec<NodeProc> {
    start_nodes(n, cluster, &[])
}

/// Whether every node has at least `k` neighbours.
pub fn all_have(nodes: &[NodeProc], k: usize) -> bool {
    nodes.iter().all(|n| n.neighbor_ids().is_some_and(|v| v.len() >= k))
}
