//! Hostile peers and clients against real `ryx-node` processes: each test
//! replays an attack that worked before the node was hardened (issue 11)
//! and checks that the node stays up, bounded and honest.
//!
//! The peer attacks are made by this test speaking the protocol itself
//! (signed with its own key, as any member could), so they exercise the
//! real daemon's decoding, authentication and HTTP paths.

mod support;

use ryx_api::{BlobEntry, BlobHash, BlobKind, ChunkRef, Manifest, UploadOptions};
use ryx_core::identity::Identity;
use ryx_core::topology::NeighborList;
use ryx_core::wire::{self, Envelope, Item, ItemId, Message, Space, PROTOCOL_VERSION};
use ryx_core::NodeId;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::*;

fn temp_file(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("ryx-hostile-{}-{name}", std::process::id()));
    std::fs::write(&p, text).expect("write temp file");
    p
}

fn node(cluster: &str, extra: &[&str]) -> NodeProc {
    start_any_node(cluster, discovery_port(), extra)
}

fn rejected(n: &NodeProc, reason: &str) -> f64 {
    n.metric(&format!("ryx_datagrams_rejected_total{{reason=\"{reason}\"}}")).unwrap_or(0.0)
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

/// HTTP with headers of our choosing; status and body.
fn http_with(port: u16, method: &str, path: &str, headers: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{headers}\r\n");
    s.write_all(head.as_bytes()).expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// A foreign HTTP service on loopback that records every request it gets.
struct Victim {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Victim {
    fn start() -> Victim {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind victim");
        l.set_nonblocking(true).expect("nonblocking");
        let addr = l.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
                        let mut buf = [0u8; 8192];
                        let n = c.read(&mut buf).unwrap_or(0);
                        s2.lock().expect("lock").push(String::from_utf8_lossy(&buf[..n]).to_string());
                        let body = r#"[{"Key":"secret/db","Value":"cGFzc3dvcmQ="}]"#;
                        let _ = write!(
                            c,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Victim { addr, seen, stop }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// This test acting as a member of the cluster: its own key, a UDP socket,
/// a link to one real node, and a thread that answers that node's probes.
struct FakePeer {
    id: Identity,
    sock: Arc<UdpSocket>,
    cluster: String,
    seq: Arc<Mutex<u64>>,
    stop: Arc<AtomicBool>,
}

impl FakePeer {
    fn new(cluster: &str, name: &str) -> FakePeer {
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("udp"));
        sock.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        FakePeer {
            id: Identity::from_text(name),
            sock,
            cluster: cluster.into(),
            seq: Arc::new(Mutex::new(unix_ms() * 1000)),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    fn datagram(&self, to: NodeId, msg: Message) -> Vec<u8> {
        let mut seq = self.seq.lock().expect("lock");
        *seq += 1;
        let mut env = Envelope {
            v: PROTOCOL_VERSION,
            cluster: self.cluster.clone(),
            from: self.id.id(),
            to: Some(to),
            seq: *seq,
            msg,
            sig: None,
            tag: None,
            short: false,
        };
        if env.msg.needs_sig() {
            wire::sign_envelope(&mut env, &self.id, unix_ms());
        }
        wire::encode(&env).expect("encodes")
    }

    fn send(&self, n: &NodeProc, msg: Message) {
        let to: NodeId = n.id.as_str().parse().expect("node id");
        let d = self.datagram(to, msg);
        self.sock.send_to(&d, ("127.0.0.1", n.port)).expect("send");
    }

    /// Joins `n` as an active neighbour and keeps answering its probes.
    fn link_to(&self, n: &NodeProc) {
        let to: NodeId = n.id.as_str().parse().expect("node id");
        self.send(n, Message::Join { long: false, urgent: true, degree: 0, labels: vec![], short: false });
        let me = ryx_api::NodeId::from(self.id.id().to_string());
        let linked = wait_until(Duration::from_secs(5), || n.neighbor_ids().is_some_and(|v| v.contains(&me)));
        assert!(linked.is_some(), "the node did not take the fake peer as a neighbour");
        let (sock, stop, me) = (self.sock.clone(), self.stop.clone(), self.clone_for_thread());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 20_000];
            while !stop.load(Ordering::Relaxed) {
                let Ok((k, from)) = sock.recv_from(&mut buf) else { continue };
                let Ok(env) = wire::decode(&buf[..k], &me.cluster) else { continue };
                if let Message::Ping { nonce, .. } = env.msg {
                    let d = me.datagram(to, Message::Ack { nonce, neighbor: true, degree: 1, tree: None, coord: None });
                    let _ = sock.send_to(&d, from);
                }
            }
        });
    }

    fn clone_for_thread(&self) -> FakePeer {
        FakePeer {
            id: self.id.clone(),
            sock: self.sock.clone(),
            cluster: self.cluster.clone(),
            seq: self.seq.clone(),
            stop: self.stop.clone(),
        }
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn nine_bytes_do_not_stop_a_node_with_a_secret() {
    let secret = temp_file("nine", "a cluster secret\n");
    let disc = discovery_port();
    let n = start_any_node("nine", disc, &["--secret-file", secret.to_str().expect("path")]);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let bytes = br#","tag":"}"#;
    // At its own port, and at the discovery port every node of the segment
    // listens on (before, this one datagram stopped all of them).
    sock.send_to(bytes, ("127.0.0.1", n.port)).expect("send");
    let _ = sock.set_broadcast(true);
    let _ = sock.send_to(bytes, ("127.255.255.255", disc));
    let counted = wait_until(Duration::from_secs(5), || rejected(&n, "auth_malformed") >= 1.0);
    assert!(counted.is_some(), "the malformed tag was not counted");
    assert_eq!(http(n.port, "GET", "/healthz", None).expect("healthz").0, 200);
    assert_eq!(http(n.port, "GET", "/v1/status", None).expect("status").0, 200, "the event loop stopped");
    let _ = std::fs::remove_file(secret);
}

#[test]
fn a_dead_event_loop_ends_the_process_for_its_supervisor() {
    let mut n = node("crash", &["--enable-fault-injection"]);
    // The answer may or may not make it out before the process ends.
    let st = http(n.port, "POST", "/v1/admin/crash", None).map_or(0, |r| r.0);
    assert!(st == 503 || st == 0, "status {st}");
    let mut status = None;
    let ended = wait_until(Duration::from_secs(10), || {
        status = n.child.try_wait().ok().flatten();
        status.is_some()
    });
    assert!(ended.is_some(), "the process outlived its event loop (a zombie answering 503)");
    assert_eq!(status.and_then(|s| s.code()), Some(70), "exit status {status:?}");
    // Without fault injection, there is no such endpoint to use.
    let m = node("crash-off", &[]);
    assert_eq!(http(m.port, "POST", "/v1/admin/crash", None).expect("request").0, 403);
    assert_eq!(http(m.port, "GET", "/healthz", None).expect("healthz").0, 200);
}

#[test]
fn a_forged_address_gets_no_relay_and_no_token() {
    let token = "s3cret-api-token";
    let tf = temp_file("token", token);
    let disc = discovery_port();
    let args = ["--api-token-file", tf.to_str().expect("path"), "--min-neighbors", "1"];
    let a = start_any_node("relay", disc, &args);
    let b = start_any_node("relay", disc, &args);
    let linked = wait_until(Duration::from_secs(10), || a.neighbor_ids().is_some_and(|v| v.contains(&b.id)));
    assert!(linked.is_some(), "a and b did not link");
    let victim = Victim::start();
    let x = FakePeer::new("relay", "forger");
    x.link_to(&a);
    // A topology item naming the victim service as x's HTTP address.
    let list = NeighborList {
        addr: x.sock.local_addr().expect("addr"),
        http: Some(victim.addr),
        links: vec![],
        zone: None,
        coord: None,
        every_s: None,
    };
    let item = Item {
        id: ItemId { space: Space::Topology, key: x.id.id().to_string(), version: unix_ms() * 1000, origin: x.id.id() },
        value: serde_json::to_value(&list).expect("json").into(),
        energy: 6.0,
        hops: 0,
        born: 0,
        proof: None,
    };
    x.send(&a, Message::Gossip { items: vec![item], sync: false });
    let learned =
        wait_until(Duration::from_secs(5), || a.client().topology().is_ok_and(|t| t.node_at(victim.addr).is_some()));
    assert!(learned.is_some(), "the forged topology item did not arrive (the test would prove nothing)");
    let auth = format!("Authorization: Bearer {token}\r\n");
    let (st, body) = http_with(a.port, "GET", &format!("/node/{}/v1/kv/?recurse", victim.addr), &auth);
    assert_eq!(st, 403, "relayed to a foreign service: {body}");
    assert!(body.contains("not_member"), "{body}");
    // A blob offer pointing at the victim: the node fetches, with no token.
    let hash = "ab".repeat(32);
    x.send(
        &a,
        Message::BlobOffer {
            blobs: vec![ryx_core::jobs::BlobRef { hash: (&hash).into(), size: 10 }],
            http: victim.addr,
            energy: 4.0,
        },
    );
    let fetched = wait_until(Duration::from_secs(5), || victim.requests().iter().any(|r| r.contains(&hash)));
    assert!(fetched.is_some(), "the offer was not followed (the test would prove nothing)");
    for r in victim.requests() {
        assert!(!r.contains(token), "the API token reached a foreign service:\n{r}");
        assert!(!r.to_ascii_lowercase().contains("authorization"), "credentials reached a foreign service:\n{r}");
        assert!(!r.contains("/v1/kv"), "the relay reached the foreign service:\n{r}");
    }
    // The relay still works to a real member, and the credentials reach it.
    let b_http = b.client().status().expect("status").addr;
    let known =
        wait_until(Duration::from_secs(10), || a.client().topology().is_ok_and(|t| t.node_at(b_http).is_some()));
    assert!(known.is_some(), "b's neighbour list never reached a");
    let (st, body) = http_with(a.port, "GET", &format!("/node/{b_http}/v1/status"), &auth);
    assert_eq!(st, 200, "{body}");
    let _ = std::fs::remove_file(tf);
}

#[test]
fn a_version_from_the_future_locks_no_key_and_hot_energy_is_capped() {
    let disc = discovery_port();
    let args = ["--min-neighbors", "1"];
    let a = start_any_node("lock", disc, &args);
    let b = start_any_node("lock", disc, &args);
    assert!(wait_until(Duration::from_secs(10), || a.neighbor_ids().is_some_and(|v| v.contains(&b.id))).is_some());
    let x = FakePeer::new("lock", "locker");
    x.link_to(&a);
    let item = |version: u64, value: &str| Item {
        id: ItemId { space: Space::Info, key: "config".into(), version, origin: x.id.id() },
        value: serde_json::json!(value).into(),
        energy: 1e300,
        hops: 0,
        born: 0,
        proof: None,
    };
    x.send(&a, Message::Gossip { items: vec![item(u64::MAX, "attacker")], sync: false });
    assert!(wait_until(Duration::from_secs(5), || rejected(&a, "future_version") >= 1.0).is_some());
    assert_eq!(http(a.port, "GET", "/v1/info/config", None).expect("get").0, 404);
    // Half a minute ahead is within the skew bound: accepted, with capped
    // energy; the operator's next write wins all the same.
    x.send(&a, Message::Gossip { items: vec![item(unix_ms() * 1000 + 30_000_000, "early")], sync: false });
    let held =
        wait_until(Duration::from_secs(5), || http(b.port, "GET", "/v1/info/config", None).is_ok_and(|r| r.0 == 200));
    assert!(held.is_some(), "the in-bound item did not spread");
    let e = a.client().info("config").expect("info").expect("the item").energy;
    assert!(e <= 1000.0, "held with energy {e}");
    let (st, _) = http(b.port, "POST", "/v1/info", Some(br#"{"key":"config","value":"operator"}"#)).expect("put");
    assert_eq!(st, 201);
    let won = wait_until(Duration::from_secs(5), || {
        [&a, &b].iter().all(|n| n.client().info("config").ok().flatten().is_some_and(|i| i.value == "operator"))
    });
    assert!(won.is_some(), "the operator's write did not win everywhere");
}

// --------------------------------------------------------------- clients

/// Peak resident memory of a process, from /proc.
fn peak_rss(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The slowest of a few `/healthz` answers, while the attack goes on.
fn healthz_worst(port: u16, times: usize) -> Duration {
    let mut worst = Duration::ZERO;
    for _ in 0..times {
        let t = Instant::now();
        let (st, _) = http(port, "GET", "/healthz", None).unwrap_or((0, String::new()));
        assert_eq!(st, 200, "/healthz failed during the attack");
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    worst
}

/// Opens `n` connections that each send `head` (nothing more); keeps them.
fn hold_connections(port: u16, n: usize, head: &[u8]) -> Vec<TcpStream> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { break };
        let _ = s.write_all(head);
        v.push(s);
    }
    v
}

#[test]
fn hostile_http_clients_leave_the_node_up_bounded_and_answering() {
    let limit_mib = 256u64;
    let mem = format!("{limit_mib}MiB");
    let n = node("clients", &["--memory-limit", &mem, "--chunk-size", "1MiB"]);
    let pid = n.pid();
    let base_rss = peak_rss(pid);

    // 1. Slowloris: 1,000 connections that never finish their request head.
    let slow = hold_connections(n.port, 1_000, b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    let worst_slowloris = healthz_worst(n.port, 20);
    drop(slow);

    // 2. The manifest bomb: a blob that lists a held chunk 45,000 times.
    let no_copies = UploadOptions { energy: Some(0.0), ..UploadOptions::default() };
    let chunk = n.client().put_blob(b"hello world\n", &no_copies).expect("upload");
    let entry = ChunkRef { hash: chunk.hash, size: 12 };
    let bomb = Manifest { ryx_manifest: 1, size: 12 * 45_000, chunks: vec![entry; 45_000] };
    let bomb = serde_json::to_vec(&bomb).expect("json");
    let bomb_hash = n.client().put_blob(&bomb, &no_copies).expect("upload bomb").hash;
    let got = n.client().blob(&bomb_hash).expect("get bomb");
    assert_eq!(got.len(), bomb.len(), "the bomb was read as a manifest and expanded");

    // 3. A hundred concurrent uploads of 1 GiB each (chunked: no length to
    // refuse them by up front).
    let started = Instant::now();
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let port = n.port;
            std::thread::spawn(move || -> u16 {
                let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return 0 };
                let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
                let _ = s.set_write_timeout(Some(Duration::from_secs(60)));
                // As curl does for big bodies: ask before sending it.
                let head = "PUT /v1/blobs?energy=0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n";
                if s.write_all(head.as_bytes()).is_err() {
                    return 0;
                }
                let mut first = vec![0u8; 4096];
                let k = s.read(&mut first).unwrap_or(0);
                let status: u16 =
                    String::from_utf8_lossy(&first[..k]).get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
                if status != 100 {
                    return status;
                }
                for f in 0..1024 {
                    // Distinct bytes in every frame: nothing deduplicates.
                    let line = format!("upload {i} frame {f:04} line of log text that goes on for a while\n");
                    let block: Vec<u8> = line.bytes().cycle().take(1 << 20).collect();
                    let frame = [format!("{:x}\r\n", block.len()).into_bytes(), block, b"\r\n".to_vec()].concat();
                    if s.write_all(&frame).is_err() {
                        break;
                    }
                }
                let _ = s.write_all(b"0\r\n\r\n");
                let mut buf = vec![0u8; 4096];
                let k = s.read(&mut buf).unwrap_or(0);
                String::from_utf8_lossy(&buf[..k]).get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
            })
        })
        .collect();
    let worst_uploads = healthz_worst(n.port, 30);
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap_or(0)).collect();
    let busy = statuses.iter().filter(|s| **s == 503).count();
    let refused_big = statuses.iter().filter(|s| [413, 507].contains(*s)).count();
    println!(
        "uploads: {busy} told to retry (503), {refused_big} refused as too large for the store (413/507), in {:?}",
        started.elapsed()
    );
    let admitted: Vec<u16> = statuses.iter().copied().filter(|s| *s != 503).collect();
    println!(
        "admitted uploads ended with {admitted:?}; refusals: too_large {:?}, store_full {:?}",
        n.metric("ryx_http_refused_total{reason=\"too_large\"}"),
        n.metric("ryx_http_refused_total{reason=\"store_full\"}")
    );
    assert!(busy >= 90, "uploads beyond --max-uploads were not turned away: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 0, "a 1 GiB upload fit a 256 MiB store?");

    // 4. Ten thousand event-stream subscribers.
    let streams = hold_connections(n.port, 10_000, b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n");
    let opened = streams.len();
    let worst_streams = healthz_worst(n.port, 20);
    let served = n.metric("ryx_http_refused_total{reason=\"event_streams\"}").unwrap_or(0.0);
    drop(streams);

    let peak = peak_rss(pid);
    println!(
        "healthz worst: slowloris {worst_slowloris:?}, uploads {worst_uploads:?}, {opened} streams {worst_streams:?}; \
         event streams refused {served}; peak RSS {} MiB (idle {} MiB, store limit {limit_mib} MiB)",
        peak >> 20,
        base_rss >> 20
    );
    // Generous bounds (timings belong to benchmarks): these catch a node
    // that stalls, not one that is a little slow on a loaded machine.
    for w in [worst_slowloris, worst_uploads, worst_streams] {
        assert!(w < Duration::from_secs(2), "/healthz took {w:?} under attack");
    }
    assert!(served > 0.0, "event streams beyond the limit were not refused");
    assert!(peak < (limit_mib + 200) << 20, "peak RSS {} MiB beyond the store limit of {limit_mib} MiB", peak >> 20);
    assert_eq!(http(n.port, "GET", "/v1/status", None).expect("status").0, 200);
    assert!(n.child.id() == pid);
}

// ---------------------------------------------------------------- custody

fn blobs_of(n: &NodeProc) -> Vec<BlobEntry> {
    n.client().blobs().map(|b| b.blobs).unwrap_or_default()
}

fn durable_at(nodes: &[&NodeProc], hash: &BlobHash) -> usize {
    nodes.iter().filter(|n| blobs_of(n).iter().any(|b| b.hash == *hash && b.durable)).count()
}

#[test]
fn an_acknowledged_upload_keeps_its_copies_through_floods_and_deaths() {
    let seed_port = free_port();
    let seeds = format!("127.0.0.1:{seed_port}");
    let common = ["--memory-limit", "24MiB", "--chunk-size", "1MiB", "--discovery", "seed-nodes", "--seeds", &seeds];
    let first = start_node(seed_port, "keep", free_port(), &common);
    let mut others: Vec<NodeProc> = (0..4).map(|_| node("keep", &common)).collect();
    let formed = wait_until(Duration::from_secs(15), || {
        std::iter::once(&first).chain(&others).all(|n| n.neighbor_ids().is_some_and(|v| v.len() >= 3))
    });
    assert!(formed.is_some(), "the five nodes did not link up");
    // 4 MiB of distinct lines, three copies acknowledged.
    let data: Vec<u8> = (0..120_000).flat_map(|i| format!("line {i:07} of the kept upload\n").into_bytes()).collect();
    let three = UploadOptions { copies: Some(3), ..UploadOptions::default() };
    let up = first.client().put_blob(&data, &three).expect("upload");
    assert_eq!(up.copies, 3, "{up:?}");
    let chunks: Vec<BlobHash> =
        blobs_of(&first).into_iter().filter(|b| b.kind == BlobKind::Chunk && b.durable).map(|b| b.hash).collect();
    assert!(chunks.len() >= 4, "{chunks:?}");
    // Every other node fills its store with its own data: acknowledged
    // copies must not be what makes room.
    for (i, n) in others.iter().enumerate() {
        let filler: Vec<u8> =
            (0..600_000).flat_map(|j| format!("{i} filler {j:08} bytes\n").into_bytes()).take(20 << 20).collect();
        let _ = http(n.port, "PUT", "/v1/blobs?energy=0", Some(&filler));
    }
    let all: Vec<&NodeProc> = std::iter::once(&first).chain(others.iter()).collect();
    for c in &chunks {
        assert!(durable_at(&all, c) >= 3, "chunk {c} lost acknowledged copies to other uploads");
    }
    // Kill a keeper (not the uploader): the count comes back.
    let victim = others
        .iter()
        .position(|n| blobs_of(n).iter().any(|b| b.hash == chunks[0] && b.durable))
        .expect("a keeper besides the uploader");
    let dead = others.remove(victim);
    drop(dead);
    let all: Vec<&NodeProc> = std::iter::once(&first).chain(others.iter()).collect();
    let restored = wait_until(Duration::from_secs(60), || chunks.iter().all(|c| durable_at(&all, c) >= 3));
    assert!(restored.is_some(), "the copies of a dead keeper were not restored");
    println!("custody: copies restored {restored:?} after a keeper was killed");
    // Deleted at its origin: released everywhere.
    first.client().delete_blob(&up.hash).expect("delete");
    let released = wait_until(Duration::from_secs(10), || chunks.iter().all(|c| durable_at(&all, c) == 0));
    assert!(released.is_some(), "copies stayed durable after the delete");
}
