//! The contract between what the node serves and the `ryx-api` types its
//! clients read: two nodes in this process, their real HTTP servers on
//! loopback, every endpoint `ryx-api` covers asked over the wire.
//!
//! For each answer: it reads into its `ryx-api` type, and writing that type
//! again gives the same JSON (no field lost, renamed or retyped), so the
//! node and its clients cannot drift apart. Answers the node builds as JSON
//! maps keep their keys in alphabetical order, byte for byte what the node
//! wrote before it served `ryx-api` types.
//!
//! (A float on the wire is not compared as text: serde_json's default
//! parser may read one a unit in the last place off, and then prints it
//! shorter. Both sides of the field check parse it the same way.)

use crate::{events, http, runtime, server};
use ryx_api::{
    BlobList, Cancelled, Client, Deleted, ErrorBody, ErrorCode, FaultSpec, FaultState, GrepResult, Health, Identity,
    InfoItem, InfoItems, InfoWritten, JobList, JobView, LogAnalysisResult, Manifest, Neighbors, NodeEvent, Peers,
    RecentEvents, Response, Sample, Status, SubmitJob, Submitted, Topology, Uploaded, WordCountResult,
};
use ryx_core::config::{Discovery, NodeConfig};
use ryx_core::{Input, Node};
use serde::de::{DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// Nodes served in this process.
struct Served {
    rt: tokio::runtime::Runtime,
    clients: Vec<Client>,
    handles: Vec<runtime::Handle>,
}

impl Served {
    /// `n` nodes that seed each other, each with its API on a loopback port.
    fn start(n: usize) -> Served {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (clients, handles, udp) = rt.block_on(async {
            let (mut clients, mut handles, mut udp) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..n {
                let sockets = runtime::bind(lo, 0, IpAddr::V4(Ipv4Addr::BROADCAST), 0, false).expect("bind");
                let addr = sockets.main.local_addr().expect("udp address");
                let listener = tokio::net::TcpListener::bind((lo, 0)).await.expect("http listener");
                let api = listener.local_addr().expect("http address");
                let cfg = NodeConfig {
                    cluster_id: format!("contract-{}", std::process::id()),
                    discovery: Discovery::SeedNodes,
                    // At most two neighbours: four nodes make a ring, and
                    // each has a passive peer to show.
                    min_active: 1,
                    target_active: 2,
                    max_active: 2,
                    ..NodeConfig::default()
                };
                let clock = runtime::Clock::new();
                let key = ryx_core::identity::Identity::from_text(&format!("contract-{i}"));
                let mut node = Node::new(cfg, key, addr, i as u64 + 1, clock.now());
                node.set_wall_clock(clock.now(), runtime::Clock::wall());
                node.set_http_addr(api);
                let (handle, _loop) = runtime::spawn(node, clock, sockets, 1, Default::default(), true);
                let limits = http::Limits {
                    memory: 64 << 20,
                    chunk_size: 64 << 10,
                    max_uploads: 2,
                    max_event_streams: 4,
                    body_timeout: Duration::from_secs(5),
                };
                let router = http::router(handle.clone(), limits);
                tokio::spawn(server::serve(listener, router, Default::default(), std::future::pending()));
                clients.push(Client::new(api));
                handles.push(handle);
                udp.push(addr);
            }
            (clients, handles, udp)
        });
        for h in &handles {
            let seeds = udp.clone();
            rt.block_on(h.call(move |s| s.node.handle(s.clock.now(), Input::Seeds(seeds)))).expect("seeds");
        }
        Served { rt, clients, handles }
    }
}

/// Polls `f` every 50 ms until it gives a value, for at most `secs`.
fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "{what} within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads `r` (which must have `status`) as `T`, checking that `T` carries
/// every field of the JSON as it came; with `sorted`, also that the keys
/// are in alphabetical order at every level (the bytes serde_json writes
/// for a map), as the node wrote them before it served `ryx-api` types.
fn check<T: DeserializeOwned + Serialize>(what: &str, r: &Response, status: u16, sorted: bool) -> T {
    let text = r.text();
    assert_eq!(r.status, status, "{what}: {text}");
    let as_json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
    if sorted {
        assert!(keys_sorted(&text), "{what}: keys out of order: {text}");
    }
    let typed: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what} as ryx-api: {e}: {text}"));
    let again = serde_json::to_value(&typed).expect("serialize");
    assert_eq!(again, as_json, "{what}: ryx-api loses or changes fields of {text}");
    typed
}

/// Whether every object in the JSON `text` has its keys in ascending
/// order (numbers are not compared as text: serde_json's default parser
/// may read a float one unit in the last place off).
fn keys_sorted(text: &str) -> bool {
    struct Sorted(bool);
    struct Walk;
    impl<'de> Deserialize<'de> for Sorted {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Sorted, D::Error> {
            d.deserialize_any(Walk)
        }
    }
    impl<'de> Visitor<'de> for Walk {
        type Value = Sorted;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Sorted, A::Error> {
            let (mut ok, mut last) = (true, None::<String>);
            while let Some(k) = m.next_key::<String>()? {
                ok &= last.as_ref().is_none_or(|l| *l < k) & m.next_value::<Sorted>()?.0;
                last = Some(k);
            }
            Ok(Sorted(ok))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Sorted, A::Error> {
            let mut ok = true;
            while let Some(Sorted(x)) = s.next_element()? {
                ok &= x;
            }
            Ok(Sorted(ok))
        }
        fn visit_bool<E>(self, _: bool) -> Result<Sorted, E> {
            Ok(Sorted(true))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Sorted, E> {
            Ok(Sorted(true))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Sorted, E> {
            Ok(Sorted(true))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Sorted, E> {
            Ok(Sorted(true))
        }
        fn visit_str<E>(self, _: &str) -> Result<Sorted, E> {
            Ok(Sorted(true))
        }
        fn visit_unit<E>(self) -> Result<Sorted, E> {
            Ok(Sorted(true))
        }
    }
    serde_json::from_str::<Sorted>(text).is_ok_and(|s| s.0)
}

/// The answer to `method path`, written as a JSON map (see [`check`]).
fn map_answer<T: DeserializeOwned + Serialize>(
    c: &Client,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    status: u16,
) -> T {
    let r = c.request(method, path, body).expect("exchange");
    check(&format!("{method} {path}"), &r, status, true)
}

/// The answer to `GET path`, written from a structure (fields in its order).
fn struct_answer<T: DeserializeOwned + Serialize>(c: &Client, path: &str) -> T {
    let r = c.request("GET", path, None).expect("exchange");
    check(&format!("GET {path}"), &r, 200, false)
}

fn error(c: &Client, method: &str, path: &str, body: Option<&[u8]>, status: u16, code: ErrorCode) {
    let e: ErrorBody = map_answer(c, method, path, body, status);
    assert_eq!(e.error.code, code, "{method} {path}");
}

#[test]
fn every_answer_reads_into_its_ryx_api_type() {
    assert!(keys_sorted(r#"{"a":[{"x":1.5,"y":{"c":null,"d":"z"}}],"b":true}"#));
    assert!(!keys_sorted(r#"{"a":[{"y":1,"x":2}]}"#), "the key check sees nested objects");
    let served = Served::start(4);
    let a = &served.clients[0];

    // Membership: the two nodes link; status, neighbours, peers, topology.
    let h: Health = map_answer(a, "GET", "/healthz", None, 200);
    assert_eq!(h, Health::ok());
    let neighbour = eventually(20, "the nodes link and learn each other's lists", || {
        let s: Status = map_answer(a, "GET", "/v1/status", None, 200);
        let t: Topology = map_answer(a, "GET", "/v1/topology", None, 200);
        let n: Neighbors = map_answer(a, "GET", "/v1/neighbors", None, 200);
        let first = n.neighbors.first()?.node_id.clone();
        (!s.neighbors.is_empty() && t.nodes.len() == 4 && !t.links.is_empty()).then_some(first)
    });
    // `b`: a neighbour of `a`, so that what `a` writes reaches it in one hop.
    let b = served.clients.iter().find(|c| c.status().is_ok_and(|s| s.node_id == neighbour)).expect("a's neighbour");
    let status: Status = map_answer(b, "GET", "/v1/status", None, 200);
    eventually(20, "a passive peer", || {
        let p: Peers = map_answer(a, "GET", "/v1/peers", None, 200);
        (!p.passive.is_empty()).then_some(())
    });
    let challenge = "00112233445566778899aabbccddeeff";
    let id: Identity = struct_answer(b, &format!("/v1/identity?challenge={challenge}"));
    assert_eq!((id.node_id, id.http, id.challenge.as_str()), (status.node_id.clone(), b.addr(), challenge));

    // Info items.
    let put = serde_json::to_vec(&json!({"key": "k", "value": {"x": [1, 2.5, "y"]}, "energy": 20})).expect("json");
    let w: InfoWritten = map_answer(a, "POST", "/v1/info", Some(&put), 201);
    let item: InfoItem = eventually(10, "the item reaches the other node", || {
        let r = b.request("GET", "/v1/info/k", None).ok()?;
        (r.status == 200).then(|| map_answer(b, "GET", "/v1/info/k", None, 200))
    });
    assert_eq!((item.version, &item.origin), (w.version, &w.origin));
    let items: InfoItems = map_answer(b, "GET", "/v1/info", None, 200);
    assert_eq!(items.items, vec![item]);

    // Blobs: an upload, a sample of several chunks, its manifest, the list.
    let text: String = (0..3000).map(|i| format!("2026-01-01 INFO line {i} ERROR? {}\n", i % 7)).collect();
    let up: Uploaded = map_answer(a, "PUT", "/v1/blobs?energy=0", Some(text.as_bytes()), 201);
    let sample: Uploaded =
        map_answer(a, "POST", "/v1/blobs/sample?size=200000&seed=3&copies=2&copies_timeout_ms=10000", None, 201);
    assert!(sample.chunks > 1, "{sample:?}");
    let m: Manifest = struct_answer(a, &format!("/v1/blobs/{}?manifest=true", sample.hash));
    assert_eq!(m.chunks.len(), sample.chunks);
    let list: BlobList = map_answer(a, "GET", "/v1/blobs", None, 200);
    assert!(list.blobs.iter().any(|x| x.hash == up.hash && x.durable), "{list:?}");
    assert_eq!(a.blob(&up.hash).expect("bytes"), text.as_bytes());

    // Jobs of every kind, asked of the node that is not their home.
    let kinds = [("word-count", json!({"top": 3})), ("grep", json!({"pattern": "ERROR"})), ("log-analysis", json!({}))];
    for (kind, params) in kinds {
        let mut job = SubmitJob::new(kind, vec![up.hash.clone()]);
        job.params = params;
        job.redundancy = Some(1);
        let s: Submitted = map_answer(a, "POST", "/v1/jobs", Some(&serde_json::to_vec(&job).expect("json")), 201);
        let done: JobView = eventually(30, "the job is done", || {
            let v: JobView = map_answer(b, "GET", &format!("/v1/jobs/{}", s.job_id), None, 200);
            v.is_final().then_some(v)
        });
        assert_eq!(done.state, ryx_api::JobState::Done, "{done:?}");
        match kind {
            "word-count" => assert!(done.result_as::<WordCountResult>().expect("word-count").is_some()),
            "grep" => assert_eq!(done.result_as::<GrepResult>().expect("grep").map(|g| g.lines), Some(3000)),
            _ => assert!(done.result_as::<LogAnalysisResult>().expect("log-analysis").is_some()),
        }
        let local: JobView = map_answer(a, "GET", &format!("/v1/jobs/{}?local=true", s.job_id), None, 200);
        assert_eq!(local.result, done.result);
    }
    let jobs: JobList = map_answer(a, "GET", "/v1/jobs", None, 200);
    assert_eq!(jobs.jobs.len(), 3);
    let s: Submitted = map_answer(
        a,
        "POST",
        "/v1/jobs",
        Some(&serde_json::to_vec(&SubmitJob::new("word-count", vec![sample.hash.clone()])).expect("json")),
        201,
    );
    // Cancelled at once, or already done (then `final`).
    let path = format!("/v1/jobs/{}", s.job_id);
    let r = a.request("DELETE", &path, None).expect("cancel");
    if r.status == 200 {
        let c: Cancelled = check(&path, &r, 200, true);
        assert_eq!((c.job_id, c.state), (s.job_id, ryx_api::JobState::Cancelled));
    } else {
        let e: ErrorBody = check(&path, &r, 409, true);
        assert_eq!(e.error.code, ErrorCode::Final);
    }
    let d: Deleted = map_answer(a, "DELETE", &format!("/v1/blobs/{}", up.hash), None, 200);
    assert_eq!(d.hash, up.hash);

    // Faults.
    let impairment = ryx_api::Impairment { loss: 0.5, delay_ms: 3, jitter_ms: 0 };
    let spec = FaultSpec { impairment, for_ms: 60_000, ..FaultSpec::default() };
    let set: FaultState =
        map_answer(a, "POST", "/v1/admin/faults", Some(&serde_json::to_vec(&spec).expect("json")), 200);
    assert!(set.active && set.loss == 0.5);
    let _: FaultState = map_answer(a, "GET", "/v1/admin/faults", None, 200);
    let cleared: FaultState = map_answer(a, "DELETE", "/v1/admin/faults", None, 200);
    assert!(!cleared.active);

    // Events: the link and the item delivered, and the stream's sample.
    let recent: RecentEvents = map_answer(b, "GET", "/v1/events/recent", None, 200);
    assert!(recent.events.iter().any(|e| matches!(e.event, NodeEvent::NeighborUp { .. })), "{recent:?}");
    assert!(recent.events.iter().any(|e| matches!(e.event, NodeEvent::ItemDelivered { .. })), "{recent:?}");
    assert!(recent.events.iter().all(|e| e.event != NodeEvent::Unknown), "{recent:?}");
    let sample_text = served.rt.block_on(served.handles[0].call(|s| events::sample(s))).expect("sample");
    let sample: Sample = serde_json::from_str(&sample_text).expect("sample reads as ryx-api");
    assert_eq!(
        serde_json::to_value(&sample).expect("json"),
        serde_json::from_str::<Value>(&sample_text).expect("json")
    );
    assert_eq!(sample.jobs.len(), 4);
    assert!(a.metrics().expect("metrics").value("ryx_neighbors").is_some());

    // Errors, with their stable codes.
    error(a, "GET", "/v1/info/missing", None, 404, ErrorCode::NotFound);
    error(a, "PATCH", "/v1/status", None, 405, ErrorCode::MethodNotAllowed);
    error(a, "GET", "/v1/identity?challenge=xyz", None, 400, ErrorCode::BadChallenge);
    error(a, "POST", "/v1/admin/faults", Some(br#"{"for_ms":0}"#), 400, ErrorCode::Invalid);
    error(a, "POST", "/v1/jobs", Some(br#"{"kind":"sort","inputs":[]}"#), 400, ErrorCode::UnknownKind);
    error(a, "GET", "/node/127.0.0.1:1/v1/status", None, 403, ErrorCode::UnknownNode);
    error(a, "GET", "/node/x/v1/status", None, 400, ErrorCode::BadAddress);
}
