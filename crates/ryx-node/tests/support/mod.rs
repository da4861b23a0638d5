//! Test support: real `ryx-node` processes on loopback, asked through
//! `ryx-api`'s client.
#![allow(dead_code)]

use ryx_api::{Client, Http, NodeId};
use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A client of the node whose API is on loopback `port`.
pub fn client(port: u16) -> Client {
    // Generous, to catch hangs only: an upload with `copies=N` answers
    // once the copies exist or its `copies_timeout_ms` (60 s at most in
    // these tests) has passed, which a loaded 2-core machine may reach.
    static HTTP: OnceLock<Arc<Http>> = OnceLock::new();
    let http = HTTP.get_or_init(|| Arc::new(Http::with_max_body(Duration::from_secs(90), 256 << 20)));
    Client::with_http((Ipv4Addr::LOCALHOST, port).into(), http.clone())
}

/// One raw exchange with the node on `port` (for requests the typed client
/// would not send, and answers whose status matters): status and body.
pub fn http(port: u16, method: &str, path: &str, body: Option<&[u8]>) -> Result<(u16, String), ryx_api::Error> {
    client(port).request(method, path, body).map(|r| (r.status, r.text()))
}

/// The answer `T` of `GET path` (panics with context on failure).
pub fn get<T: serde::de::DeserializeOwned>(port: u16, path: &str) -> T {
    let (st, body) = http(port, "GET", path, None).unwrap_or_else(|e| panic!("GET {path} on {port}: {e}"));
    assert!(st == 200, "GET {path} on {port}: status {st}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not what ryx-api reads ({e}): {body}"))
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
    pub id: NodeId,
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
    /// A client of its API.
    pub fn client(&self) -> Client {
        client(self.port)
    }
    pub fn neighbor_ids(&self) -> Option<Vec<NodeId>> {
        Some(self.client().neighbors().ok()?.into_iter().map(|n| n.node_id).collect())
    }
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.client().metrics().ok()?.value(name)
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts one node on a port from the OS; waits until its HTTP API
/// answers. A port taken between the OS's answer and the node's bind (by
/// another test's node, or a client's outgoing connection) is no failure:
/// the node is started again on another port, up to three times.
pub fn start_any_node(cluster: &str, discovery_port: u16, extra: &[&str]) -> NodeProc {
    for _ in 0..3 {
        let port = free_port();
        if let Some(n) = try_start_node(port, cluster, discovery_port, extra) {
            return n;
        }
    }
    start_node(free_port(), cluster, discovery_port, extra)
}

/// Starts a node on `port`; None if it exits because the port was taken.
fn try_start_node(port: u16, cluster: &str, discovery_port: u16, extra: &[&str]) -> Option<NodeProc> {
    let log = std::env::temp_dir().join(format!("ryx-test-{port}.log"));
    let logf = std::fs::File::create(&log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_ryx-node"))
        .args(["--port", &port.to_string(), "--cluster-id", cluster, "--discovery-port", &discovery_port.to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .expect("spawn ryx-node");
    let mut node = NodeProc { child, port, id: NodeId::default() };
    let mut exited = false;
    let ok = wait_until(Duration::from_secs(10), || {
        exited = node.child.try_wait().ok().flatten().is_some();
        exited || http(port, "GET", "/healthz", None).map(|r| r.0 == 200).unwrap_or(false)
    });
    if exited {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(text.contains("Address already in use"), "node on port {port} exited; log in {}", log.display());
        return None;
    }
    assert!(ok.is_some(), "node on port {port} did not come up; log in {}", log.display());
    node.id = node.client().status().expect("status").node_id;
    Some(node)
}

/// Starts one node on `port`; waits until its HTTP API answers.
pub fn start_node(port: u16, cluster: &str, discovery_port: u16, extra: &[&str]) -> NodeProc {
    try_start_node(port, cluster, discovery_port, extra)
        .unwrap_or_else(|| panic!("port {port} was taken before the node could bind it"))
}

/// Starts `n` broadcast-discovery nodes with `extra` arguments, each on a
/// port from the OS, sharing a discovery port of their own.
pub fn start_nodes(n: usize, cluster: &str, extra: &[&str]) -> Vec<NodeProc> {
    let discovery = discovery_port();
    (0..n).map(|_| start_any_node(cluster, discovery, extra)).collect()
}

/// Starts `n` broadcast-discovery nodes with default settings.
pub fn start_cluster(n: usize, cluster: &str) -> Vec<NodeProc> {
    start_nodes(n, cluster, &[])
}

/// Whether every node has at least `k` neighbours.
pub fn all_have(nodes: &[NodeProc], k: usize) -> bool {
    nodes.iter().all(|n| n.neighbor_ids().is_some_and(|v| v.len() >= k))
}

/// The result digest `ryx-node exec` prints for `kind` over `file`.
pub fn exec_digest(kind: &str, file: &std::path::Path, params: &[&str]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ryx-node"));
    cmd.args(["exec", kind, "--input"]).arg(file);
    for p in params {
        cmd.args(["--param", p]);
    }
    let out = cmd.output().expect("exec runs");
    assert!(out.status.success(), "exec failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines().find_map(|l| l.strip_prefix("result_digest: ")).expect("exec prints the digest").trim().to_string()
}

/// Waits until `job` is final as one of `ports` sees it; its view.
pub fn wait_done(ports: &[u16], job: &ryx_api::JobId, timeout: Duration) -> ryx_api::JobView {
    try_wait_done(ports, job, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// What became of `nodes` (for a failure message): for each, whether its
/// process still runs, any panic in its log, and the log's last lines.
#[allow(dead_code)]
pub fn diagnose(nodes: &mut [NodeProc]) -> String {
    let mut out = String::new();
    for n in nodes.iter_mut() {
        let state = match n.child.try_wait() {
            Ok(Some(st)) => format!("exited: {st}"),
            Ok(None) => "running".to_string(),
            Err(e) => format!("unknown: {e}"),
        };
        let log = std::env::temp_dir().join(format!("ryx-test-{}.log", n.port));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let panics: Vec<&str> = lines.iter().copied().filter(|l| l.contains("panicked")).take(3).collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n    ");
        out.push_str(&format!("node {} port {}: {state}; panics: {panics:?}\n    {tail}\n", n.id, n.port));
    }
    out
}

/// As [`wait_done`], but a job that did not finish is an error that says
/// what each node last answered.
pub fn try_wait_done(ports: &[u16], job: &ryx_api::JobId, timeout: Duration) -> Result<ryx_api::JobView, String> {
    let mut last = None;
    let mut errors: std::collections::BTreeMap<u16, String> = Default::default();
    let done = wait_until(timeout, || {
        for p in ports {
            match client(*p).job(job) {
                Ok(v) => {
                    let fin = v.is_final();
                    last = Some(v);
                    if fin {
                        return true;
                    }
                }
                Err(e) => {
                    errors.insert(*p, e.to_string());
                }
            }
        }
        false
    });
    match (done, last) {
        (Some(_), Some(v)) => Ok(v),
        (_, last) => Err(format!("job {job} did not finish: {last:?}; last errors by port: {errors:?}")),
    }
}

/// The names of the chunks `node` holds of dataset `name` now (empty when
/// it does not answer).
pub fn source_chunk_names(node: &NodeProc, name: &str) -> std::collections::HashSet<ryx_api::BlobHash> {
    node.client().source_snapshot(name).map(|s| s.chunks.into_iter().map(|c| c.hash).collect()).unwrap_or_default()
}

/// How many of `names` `node` keeps durably (its own or copies kept for
/// others), leaving out every other blob it keeps, such as the lists of
/// chunks nodes have kept with their copies.
pub fn durable_among(node: &NodeProc, names: &std::collections::HashSet<ryx_api::BlobHash>) -> usize {
    node.client().blobs().map_or(0, |b| b.blobs.iter().filter(|e| e.durable && names.contains(&e.hash)).count())
}
