//! Test harness: a local cluster of real `ryx-node` processes, the
//! standalone `ryx-control`, and a tiny WebDriver client for headless
//! Chromium (std only: HTTP/1.1 over `TcpStream`).

#![allow(dead_code, clippy::unwrap_used)]

use ryx_api::{Client, NodeId};
use ryx_control::server::ControlStatus;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ HTTP

/// A minimal HTTP/1.1 exchange: returns status and body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or(&[]);
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line.split_whitespace().nth(1).and_then(|x| x.parse().ok()).unwrap_or(0);
    let mut len: Option<usize> = None;
    let mut chunked = false;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-length" {
                len = v.trim().parse().ok();
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
    let mut out = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut buf = vec![0; n];
            r.read_exact(&mut buf)?;
            out.extend_from_slice(&buf);
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = len {
        out.resize(n, 0);
        r.read_exact(&mut out)?;
    } else {
        r.read_to_end(&mut out)?;
    }
    Ok((status, out))
}

/// GETs `path` read as `T` (a `ryx-api` type for the node API), if the
/// answer is a 2xx and reads as one.
pub fn get<T: DeserializeOwned>(addr: SocketAddr, path: &str) -> Option<T> {
    let (st, b) = http(addr, "GET", path, None, Duration::from_secs(5)).ok()?;
    (200..300).contains(&st).then(|| serde_json::from_slice(&b).ok()).flatten()
}

/// A client of the node API at `addr` (a node, or `ryx-control` relaying one).
pub fn client(addr: SocketAddr) -> Client {
    Client::new(addr)
}

/// Polls `f` every 100 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(x) = f() {
            return Some(x);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ------------------------------------------------------------------ ports

/// A port from the OS, free for both TCP and UDP on 127.0.0.1.
pub use ryx_testkit::free_port;

// ------------------------------------------------------------------ processes

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Proc {
    pub child: Option<Child>,
    pub name: String,
}

impl Proc {
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `ryx-node` binary: `RYX_NODE_BIN` if set, else the one Cargo built
/// for this test run next to this crate's `ryx-control` binary. Cargo
/// cannot build it for a test of another package (`CARGO_BIN_EXE_*` exists
/// only for the package's own binaries, and `ryx-node` depends on this
/// crate), and a test does not run Cargo itself: `cargo test --workspace`
/// builds it, `cargo test -p ryx-control` alone needs
/// `cargo build -p ryx-node` first. Missing or older than its sources, it
/// fails with that command rather than test a stale node.
pub fn node_bin() -> PathBuf {
    ryx_testkit::workspace_bin("ryx-node", "RYX_NODE_BIN", &["ryx-node", "ryx-core", "ryx-compute", "ryx-control"])
}

/// Browser tests run one at a time (each drives a Chromium and a cluster;
/// the machine may have two cores).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// One `ryx-node`.
pub struct Node {
    pub proc: Proc,
    pub http: SocketAddr,
    pub id: NodeId,
}

/// A local cluster with its own discovery port and cluster id.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub cluster_id: String,
    pub discovery_port: u16,
    pub dir: PathBuf,
}

impl Cluster {
    pub fn start(n: usize, tag: &str) -> Cluster {
        Cluster::start_with(n, tag, |_| Vec::new())
    }

    /// Starts `n` nodes, node `i` with the extra arguments `args(i)`.
    pub fn start_with(n: usize, tag: &str, args: impl Fn(usize) -> Vec<String>) -> Cluster {
        let bin = node_bin();
        let discovery_port = free_port();
        let cluster_id = format!("ctl-{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("ryx-control-test-{cluster_id}"));
        let _ = std::fs::create_dir_all(&dir);
        let mut c = Cluster { nodes: Vec::new(), cluster_id, discovery_port, dir };
        for i in 0..n {
            c.add_within(&bin, Duration::from_secs(15), &args(i));
        }
        // Every node has its neighbours and knows the others.
        let ok = wait_for(Duration::from_secs(30), || {
            c.nodes
                .iter()
                .all(|nd| {
                    let c = client(nd.http);
                    c.status().is_ok_and(|s| s.neighbors.len() >= (n - 1).min(4))
                        && c.topology().is_ok_and(|t| t.nodes.len() >= n)
                })
                .then_some(())
        });
        assert!(ok.is_some(), "cluster of {n} did not form within 30 s");
        c
    }

    /// Starts `n` nodes and waits only until each has its neighbours (for
    /// large clusters, where no node learns every other's list).
    pub fn start_loose(n: usize, tag: &str, timeout: Duration) -> Cluster {
        let bin = node_bin();
        let discovery_port = free_port();
        let cluster_id = format!("ctl-{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("ryx-control-test-{cluster_id}"));
        let _ = std::fs::create_dir_all(&dir);
        let mut c = Cluster { nodes: Vec::new(), cluster_id, discovery_port, dir };
        for _ in 0..n {
            c.add_within(&bin, Duration::from_secs(60), &[]);
        }
        let want = (n - 1).min(4);
        // Go on once 95% answer with their neighbours: on a loaded machine
        // a few nodes of hundreds may be too slow to answer in time.
        let mut ready = 0;
        let ok = wait_for(timeout, || {
            ready =
                c.nodes.iter().filter(|nd| client(nd.http).status().is_ok_and(|s| s.neighbors.len() >= want)).count();
            (ready * 100 >= n * 95).then_some(())
        });
        assert!(ok.is_some(), "only {ready} of {n} nodes had {want} neighbours within {timeout:?}");
        c
    }

    /// Starts one more node and waits up to `timeout` for its API.
    fn add_within(&mut self, bin: &Path, timeout: Duration, extra: &[String]) {
        // A port taken between the OS's answer and the node's bind is
        // retried with another, up to three times.
        for attempt in 0..3 {
            let port = free_port();
            let log_path = self.dir.join(format!("node-{port}.log"));
            let log = std::fs::File::create(&log_path).unwrap();
            let child = Command::new(bin)
                .args([
                    "--port",
                    &port.to_string(),
                    "--discovery-port",
                    &self.discovery_port.to_string(),
                    "--cluster-id",
                    &self.cluster_id,
                    "--workers",
                    "1",
                    "--log",
                    "warn",
                ])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start ryx-node");
            let http: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut proc = Proc { child: Some(child), name: format!("ryx-node :{port}") };
            let id = wait_for(timeout, || {
                if !proc.alive() {
                    return Some(None);
                }
                client(http).status().ok().map(|s| Some(s.node_id))
            });
            match id {
                Some(Some(id)) => {
                    self.nodes.push(Node { proc, http, id });
                    return;
                }
                Some(None) if attempt < 2 => {
                    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                    assert!(text.contains("Address already in use"), "ryx-node on {http} exited: {text}");
                }
                _ => {
                    proc.kill();
                    panic!("ryx-node on {http} did not answer");
                }
            }
        }
    }

    pub fn live(&mut self) -> Vec<&Node> {
        let mut out = Vec::new();
        for n in self.nodes.iter_mut() {
            if n.proc.alive() {
                out.push(&*n);
            }
        }
        out
    }
}

/// The standalone dashboard server.
pub struct Control {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Control {
    pub fn start(node: SocketAddr, refresh_ms: u64) -> Control {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_ryx-control"))
            .args([
                "--node",
                &node.to_string(),
                "--listen",
                &listen,
                "--refresh-ms",
                &refresh_ms.to_string(),
                "--log",
                "warn",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ryx-control");
        let out = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).unwrap();
        // "ryx-control listening on http://127.0.0.1:PORT/ui/"
        let addr: SocketAddr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from ryx-control: {line:?}"));
        Control { proc: Proc { child: Some(child), name: "ryx-control".into() }, addr }
    }

    pub fn status(&self) -> Option<ControlStatus> {
        get(self.addr, "/control/status")
    }
}

// ------------------------------------------------------------------ WebDriver

/// Paths of Chromium and chromedriver, if installed.
pub fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let find = |env: &str, names: &[&str]| -> Option<PathBuf> {
        if let Ok(p) = std::env::var(env) {
            return Some(PathBuf::from(p));
        }
        let path = std::env::var_os("PATH")?;
        for dir in std::env::split_paths(&path) {
            for n in names {
                let p = dir.join(n);
                if p.is_file() {
                    return Some(p);
                }
            }
        }
        None
    };
    let chrome = find("CHROME_BIN", &["chromium", "chromium-browser", "google-chrome", "chrome"])?;
    let driver = find("CHROMEDRIVER", &["chromedriver"])?;
    Some((chrome, driver))
}

/// Prints why a browser test is skipped and returns `None` when Chromium or
/// chromedriver is missing.
pub fn browser_or_skip(test: &str) -> Option<(PathBuf, PathBuf)> {
    let t = browser_tools();
    if t.is_none() {
        ryx_testkit::skip(
            test,
            ryx_testkit::Needs::Browser,
            "headless Chromium and chromedriver are not installed \
             (Debian: apt-get install -y chromium chromium-driver; or set CHROME_BIN and CHROMEDRIVER)",
        );
    }
    t
}

/// A headless Chromium session driven over the WebDriver protocol.
pub struct Browser {
    driver: Proc,
    addr: SocketAddr,
    session: String,
}

impl Browser {
    pub fn start(chrome: &Path, driver: &Path, width: u32, height: u32) -> Browser {
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Proc { child: Some(child), name: "chromedriver".into() };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_for(Duration::from_secs(15), || get::<Value>(addr, "/status").filter(|v| v["value"]["ready"] == true))
            .expect("chromedriver did not start");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome.to_string_lossy(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={width},{height}"), "--hide-scrollbars", "--force-device-scale-factor=1",
                         format!("--remote-debugging-port={}", free_port())]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let mut b = Browser { driver, addr, session: String::new() };
        let v = b.cmd("POST", "/session", Some(caps));
        b.session = v["sessionId"].as_str().expect("session id").to_owned();
        b
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string());
        let (st, out) = http(self.addr, method, path, body.as_deref().map(str::as_bytes), Duration::from_secs(120))
            .expect("chromedriver exchange");
        let v: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
        assert!(st == 200, "WebDriver {method} {path} failed ({st}): {v}");
        v["value"].clone()
    }

    fn s(&self, p: &str) -> String {
        format!("/session/{}{p}", self.session)
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", &self.s("/url"), Some(json!({"url": url})));
    }

    /// Runs a script (`return …`) in the page.
    pub fn js(&self, script: &str) -> Value {
        self.cmd("POST", &self.s("/execute/sync"), Some(json!({"script": script, "args": []})))
    }

    /// Runs an async script; it calls `arguments[arguments.length-1](value)`.
    pub fn js_async(&self, script: &str) -> Value {
        self.cmd("POST", &self.s("/timeouts"), Some(json!({"script": 120000})));
        self.cmd("POST", &self.s("/execute/async"), Some(json!({"script": script, "args": []})))
    }

    pub fn find(&self, css: &str) -> String {
        let v = self.cmd("POST", &self.s("/element"), Some(json!({"using": "css selector", "value": css})));
        v.as_object().and_then(|o| o.values().next()).and_then(|x| x.as_str()).expect("element id").to_owned()
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &self.s(&format!("/element/{e}/click")), Some(json!({})));
    }

    pub fn send_keys(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd("POST", &self.s(&format!("/element/{e}/value")), Some(json!({"text": text})));
    }

    /// Saves a PNG screenshot of the window.
    pub fn screenshot(&self, path: &Path) {
        let v = self.cmd("GET", &self.s("/screenshot"), None);
        let png = base64_decode(v.as_str().expect("base64 screenshot"));
        if let Some(d) = path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Browser console messages since the last call (errors show here).
    pub fn console(&self) -> Vec<String> {
        let v = self.cmd("POST", &self.s("/se/log"), Some(json!({"type": "browser"})));
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| format!("{} {}", e["level"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or("")))
            .collect()
    }

    /// Polls a script until it returns something truthy.
    pub fn wait_js(&self, timeout: Duration, script: &str) -> Option<Value> {
        wait_for(timeout, || {
            let v = self.js(script);
            let truthy = !(v.is_null() || v == false || v == 0 || v == "");
            truthy.then_some(v)
        })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(self.addr, "DELETE", &format!("/session/{}", self.session), None, Duration::from_secs(10));
        }
        self.driver.kill();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let Some(v) = val(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Where screenshots go: `$RYX_SCREENSHOTS` (relative paths from the
/// workspace root, e.g. `docs/screenshots`), else a temporary directory, so
/// ordinary test runs leave the tree alone.
pub fn screenshot_dir() -> PathBuf {
    match std::env::var("RYX_SCREENSHOTS") {
        Ok(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Ok(d) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(d),
        Err(_) => std::env::temp_dir().join("ryx-control-screenshots"),
    }
}
