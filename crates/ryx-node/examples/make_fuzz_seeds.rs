//! Writes seed corpora for the fuzz targets (`fuzz/`) from real traffic:
//! the datagrams four in-process nodes exchange while they link up, spread
//! items, replicate and keep an upload and run a job; the API's own
//! requests; the sample configuration; chunks of real logs (Loghub samples,
//! read from `../shared/data/loghub` when present).
//!
//!   cargo run --release -p ryx-node --example make_fuzz_seeds -- fuzz/corpus
//!
//! The record format of the `datagram` target: one flag byte (bit 0: a
//! cluster secret), then `[op][len: u16 LE][payload]` records; op 2 is a
//! message from the node's neighbour, op 3 a tick.

use ryx_core::blobs::BlobKind;
use ryx_core::identity::Identity;
use ryx_core::jobs::{BlobRef, JobOutput};
use ryx_core::node::Output;
use ryx_core::wire::Message;
use ryx_core::{Input, Node, NodeConfig, Time};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(dir.join(name), bytes);
}

fn record(out: &mut Vec<u8>, op: u8, payload: &[u8]) {
    let len = payload.len().min(u16::MAX as usize);
    out.push(op);
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(&payload[..len]);
}

/// Runs four nodes for a while and returns every message they sent.
fn traffic() -> Vec<Message> {
    let t0 = 1_800_000_000_000_000u64;
    let addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], 20_000 + i as u16));
    let mut nodes: Vec<Node> = (0..4)
        .map(|i| {
            let mut n =
                Node::new(NodeConfig::default(), Identity::from_u64(100 + i as u64), addr(i), i as u64, Time(t0));
            n.set_wall_clock(Time(t0), Time(t0));
            n.handle(Time(t0), Input::Seeds((0..4).map(addr).collect()));
            n
        })
        .collect();
    let mut held: Vec<BTreeMap<String, usize>> = vec![BTreeMap::new(); 4];
    let mut seen = Vec::new();
    let mut now = t0;
    for step in 0..400u64 {
        now += 10_000;
        for n in nodes.iter_mut() {
            if n.next_deadline().0 <= now {
                n.handle(Time(now), Input::Tick);
            }
        }
        if step == 150 {
            nodes[0].put_info(Time(now), "greeting", serde_json::json!({"hello": "world"}), None).ok();
            let refs: Vec<BlobRef> = (0..3)
                .map(|c| {
                    let h = ryx_compute::digest_hex(format!("chunk {c}").as_bytes());
                    let _ = nodes[0].blob_put(Time(now), &h, 8, BlobKind::Chunk, true);
                    held[0].insert(h.clone(), 8);
                    BlobRef { hash: h.into(), size: 8 }
                })
                .collect();
            nodes[0].replicate_upload(Time(now), refs.clone(), None);
            nodes[0].keep(Time(now), refs.clone(), 3, 0);
            let _ = nodes[0].submit_job(Time(now), "word-count", serde_json::json!({}), refs, 2, None);
        }
        if step == 350 {
            nodes[3].leave(Time(now));
        }
        let mut progress = true;
        while progress {
            progress = false;
            for i in 0..nodes.len() {
                while let Some(o) = nodes[i].poll_output() {
                    match o {
                        Output::Send { to, env } => {
                            seen.push(env.msg.clone());
                            if let Some(j) = (0..4).find(|&j| addr(j) == to) {
                                let bytes = ryx_core::wire::encode(&env).unwrap_or_default();
                                nodes[j].handle(Time(now), Input::Datagram { from: addr(i), bytes: &bytes });
                                progress = true;
                            }
                        }
                        Output::Broadcast { env } => seen.push(env.msg.clone()),
                        Output::Job(JobOutput::Fetch { hash, size, .. }) => {
                            let ok = nodes[i].blob_put(Time(now), &hash, size, BlobKind::Chunk, false).is_ok();
                            held[i].insert(hash.to_string(), size as usize);
                            nodes[i].fetch_done(Time(now), &hash, ok);
                        }
                        Output::Job(JobOutput::Execute { token }) => {
                            let d = ryx_compute::digest_hex(token.chunk.as_bytes());
                            let _ = nodes[i].blob_put(Time(now), &d, 16, BlobKind::Partial, false);
                            nodes[i].work_done(Time(now), &token.job, token.unit, token.replica, Ok(d));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    seen
}

fn datagram_seeds(dir: &Path) {
    let msgs = traffic();
    let mut by_kind: BTreeMap<&'static str, Vec<&Message>> = BTreeMap::new();
    for m in &msgs {
        by_kind.entry(m.kind()).or_default().push(m);
    }
    let mut n = 0;
    for (kind, ms) in &by_kind {
        for flag in [0u8, 1] {
            let mut seed = vec![flag];
            for m in ms.iter().take(8) {
                record(&mut seed, 2, &serde_json::to_vec(m).unwrap_or_default());
                record(&mut seed, 3, &[5]);
            }
            write(dir, &format!("{kind}-{flag}"), &seed);
            n += 1;
        }
    }
    // A run through every kind in the order they happened.
    let mut seed = vec![0u8];
    for m in msgs.iter().take(300) {
        record(&mut seed, 2, &serde_json::to_vec(m).unwrap_or_default());
    }
    write(dir, "all-in-order", &seed);
    // Probes as raw short datagrams (op 0) from the target's neighbour,
    // so that mutations start from the binary form too.
    for flag in [0u8, 1] {
        let mut seed = vec![flag];
        let probes = msgs.iter().filter(|m| matches!(m, Message::Ping { .. } | Message::Ack { .. }));
        for (k, m) in probes.take(16).enumerate() {
            let env = ryx_core::wire::Envelope {
                v: ryx_core::wire::PROTOCOL_VERSION,
                cluster: "ryx".into(),
                from: Identity::from_u64(2).id(),
                to: Some(Identity::from_u64(1).id()),
                seq: 1_800_000_000_000_000 + k as u64,
                msg: (*m).clone(),
                sig: None,
                tag: None,
                short: true,
            };
            record(&mut seed, 0, &ryx_core::wire::encode(&env).unwrap_or_default());
            record(&mut seed, 3, &[5]);
        }
        write(dir, &format!("short-probes-{flag}"), &seed);
    }
    eprintln!("datagram: {n} seeds over {} kinds from {} messages", by_kind.len(), msgs.len());
}

fn http_seeds(dir: &Path) {
    let hash = "ab".repeat(32);
    let reqs: Vec<(u8, u8, String, Vec<u8>)> = vec![
        (0, 0, "/v1/status".into(), vec![]),
        (0, 0, "/healthz".into(), vec![]),
        (0, 0, "/metrics".into(), vec![]),
        (0, 0, "/v1/topology".into(), vec![]),
        (1, 3, "/v1/info".into(), br#"{"key":"greeting","value":"hello","energy":20}"#.to_vec()),
        (0, 0, "/v1/info/greeting".into(), vec![]),
        (2, 1, "/v1/blobs?copies=1&energy=0".into(), b"a line\nanother line\n".to_vec()),
        (2, 1, "/v1/blobs?keep_s=60".into(), b"word ".repeat(40_000)),
        (
            1,
            3,
            "/v1/jobs".into(),
            format!(r#"{{"kind":"word-count","inputs":["{hash}"],"redundancy":1}}"#).into_bytes(),
        ),
        (
            1,
            3,
            "/v1/jobs".into(),
            format!(r#"{{"kind":"grep","inputs":["{hash}"],"params":{{"pattern":"ERR.*"}}}}"#).into_bytes(),
        ),
        (0, 0, format!("/v1/jobs/{hash}"), vec![]),
        (3, 1, format!("/v1/jobs/{hash}"), vec![]),
        (0, 0, format!("/v1/blobs/{hash}?manifest=true"), vec![]),
        (3, 1, format!("/v1/blobs/{hash}"), vec![]),
        (0, 0, "/v1/identity?challenge=00112233445566778899aabbccddeeff".into(), vec![]),
        (0, 1, "/node/127.0.0.1:9001/v1/status".into(), vec![]),
        (1, 1, "/v1/blobs/sample?size=64KiB&seed=3".into(), vec![]),
        (0, 0, "/v1/events/recent".into(), vec![]),
        (1, 3, "/v1/admin/faults".into(), br#"{"loss":0.1,"for_ms":100}"#.to_vec()),
        (
            2,
            1,
            "/v1/blobs".into(),
            serde_json::to_vec(
                &serde_json::json!({"ryx_manifest": 1, "size": 1, "chunks": [{"hash": hash, "size": 1}]}),
            )
            .unwrap_or_default(),
        ),
    ];
    for (i, (m, t, path, body)) in reqs.iter().enumerate() {
        let mut seed = vec![*m, *t];
        seed.extend_from_slice(path.as_bytes());
        seed.push(b'\n');
        seed.extend_from_slice(body);
        write(dir, &format!("req-{i:02}"), &seed);
    }
    eprintln!("http: {} seeds", reqs.len());
}

fn config_seeds(dir: &Path, root: &Path) {
    if let Ok(t) = std::fs::read(root.join("deploy/systemd/ryx-node.toml")) {
        write(dir, "sample.toml", &t);
    }
    write(dir, "small.toml", b"port = 9001\ncluster-id = \"prod\"\nseeds = [\"10.0.0.1:9001\", \"10.0.0.2:9001\"]\nmemory-limit = \"2GiB\"\nprobe-interval-ms = 100\n");
    eprintln!("config: 2 seeds");
}

fn kernel_seeds(dir: &Path, root: &Path) {
    let loghub = root.join("../shared/data/loghub");
    let mut n = 0;
    let params: [(u8, &str); 4] =
        [(0, "{}"), (1, r#"{"pattern":"ERROR|WARN"}"#), (2, "{}"), (2, r#"{"assignments":true}"#)];
    for e in std::fs::read_dir(&loghub).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let file = e.path().join(format!("{name}_2k.log"));
        let Ok(text) = std::fs::read(&file) else { continue };
        let chunk = &text[..text.len().min(4096)];
        for (kind, p) in params {
            let mut seed = vec![kind, p.len() as u8];
            seed.extend_from_slice(p.as_bytes());
            seed.extend_from_slice(chunk);
            write(dir, &format!("{name}-{kind}-{}", p.len()), &seed);
            n += 1;
        }
    }
    eprintln!("kernels: {n} seeds from {}", loghub.display());
}

fn main() {
    let out: PathBuf = std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into()).into();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    datagram_seeds(&out.join("datagram"));
    http_seeds(&out.join("http"));
    config_seeds(&out.join("config"), &root);
    kernel_seeds(&out.join("kernels"), &root);
}
