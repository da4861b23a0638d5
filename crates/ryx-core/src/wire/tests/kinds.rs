//! Every kind: a sample of each, run through the real codec, and the
//! bytes each encodes to.

use super::super::*;
use crate::blobs::Hash;
use crate::jobs::JobId;
use crate::topology::ListValue;

/// An envelope as node 7 sends it to node 9 (`msg` to be filled in).
fn envelope(msg: Message) -> Envelope {
    Envelope {
        v: PROTOCOL_VERSION,
        cluster: "test".into(),
        from: crate::identity::Identity::from_u64(7).id(),
        to: Some(NodeId(9)),
        seq: 42,
        msg,
        sig: None,
        tag: None,
        short: false,
    }
}

/// A sample message of `kind` (a name in `Message::KINDS`), every field
/// set to something other than its default so that a round trip exercises
/// it; `None` for a name that is not a kind. Signatures are real but sign
/// nothing in particular: the codec does not check them.
pub(super) fn sample(kind: &str) -> Option<Message> {
    use crate::attest::{Appointment, Confirmation, Vote};
    use crate::identity::{domain, Identity};
    use crate::topology::{LinkInfo, NeighborList};
    let key = Identity::from_u64(7);
    let proof = key.prove(domain::VOTE, 1_700_000_000_000, &[&b"sample"[..]]);
    let udp: SocketAddr = "10.0.0.1:7946".parse().expect("addr");
    let http: SocketAddr = "10.0.0.1:8080".parse().expect("addr");
    let peers = vec![PeerInfo { id: NodeId(0x11), addr: udp }, PeerInfo { id: NodeId(0x12), addr: http }];
    let hash = "ab".repeat(32);
    let digest = "cd".repeat(32);
    let job = format!("{}{:016x}", key.id(), 5);
    let blobs = vec![BlobRef { hash: Hash::from(&hash), size: 1024 }, BlobRef { hash: Hash::from(&digest), size: 7 }];
    let item_id = |space, key: &str| ItemId { space, key: key.into(), version: 3, origin: NodeId(0x21) };
    Some(match kind {
        "hello" => Message::Hello { active: 3, needy: true },
        "hello_reply" => Message::HelloReply { peers },
        "join" => Message::Join {
            long: true,
            urgent: true,
            degree: 4,
            labels: vec![("rack".into(), "r3".into())],
            short: false,
        },
        "join_reply" => Message::JoinReply { accepted: false, peers, labels: vec![], short: false },
        "disconnect" => Message::Disconnect,
        "leave" => Message::Leave,
        "ping" => Message::Ping {
            nonce: 77,
            tree: None,
            coord: Some(crate::coords::Coord { x: 12.5, y: -3.0, h: 0.2, e: 0.4 }),
        },
        "ack" => Message::Ack {
            nonce: 77,
            neighbor: true,
            degree: 5,
            tree: Some(crate::wire::TreeAdvert {
                leader: key.id(),
                beat: 1_700_000_000_000,
                dist: 2,
                parent: Some(key.id()),
            }),
            coord: Some(crate::coords::Coord { x: -40.0, y: 7.25, h: 0.5, e: 0.1 }),
        },
        "agg" => Message::Agg {
            v: [("#".to_string(), (0.25f32, 0.0f32, 0.1f32)), ("lag_ms{rack=r3}".to_string(), (-1.5, 0.5, 2.0))].into(),
            x: [("cpu".to_string(), (0.9f32, 1_700_000_000_000u64, 0.05f32, 1_699_999_999_000u64))].into(),
            reply: true,
        },
        "learn" => Message::Learn {
            task: "digits".into(),
            part: 1,
            age: 42,
            reply: false,
            x: crate::learn::encode_f32s(&[0.5, -1.25]),
            v: crate::learn::encode_f32s(&[0.0, 0.125]),
            took: crate::learn::encode_f32s(&[1.0, 2.0]),
            gave: crate::learn::encode_f32s(&[-1.0, 0.0]),
            est: crate::learn::encode_f32s(&[3.0, 0.75]),
        },
        "verdict" => Message::Verdict {
            subject: NodeId(0x31),
            observer: key.id(),
            down: true,
            degree: 5,
            labels: vec![("rack".into(), "r3".into())],
            hops: 2,
            anomaly: None,
            holds: false,
        },
        "ping_req" => Message::PingReq { nonce: 78, target: peers[0] },
        "indirect_ack" => Message::IndirectAck { nonce: 78, target: NodeId(0x11) },
        "shuffle" => Message::Shuffle { peers },
        "shuffle_reply" => Message::ShuffleReply { peers },
        "gossip" => Message::Gossip {
            items: vec![
                Item {
                    id: item_id(Space::Info, "greeting"),
                    value: serde_json::json!({"text": "hello", "n": [1, 2]}).into(),
                    energy: 42.5,
                    hops: 1,
                    born: 5,
                    proof: None,
                },
                Item {
                    id: item_id(Space::Topology, &NodeId(0x21).to_string()),
                    value: ItemValue::Topology(ListValue::new(
                        NeighborList {
                            addr: udp,
                            http: Some(http),
                            links: vec![
                                LinkInfo { id: NodeId(0x11), long: true, rtt_ms: Some(1.5) },
                                LinkInfo { id: NodeId(0x12), long: false, rtt_ms: None },
                            ],
                            zone: None,
                            coord: Some(crate::coords::Coord { x: 1.0, y: 2.0, h: 0.05, e: 0.3 }),
                            every_s: None,
                        },
                        3,
                    )),
                    energy: 6.0,
                    hops: 2,
                    born: 6,
                    proof: None,
                },
                Item {
                    id: item_id(Space::Job, &job),
                    value: serde_json::json!({"state": "done"}).into(),
                    energy: 9.25,
                    hops: 0,
                    born: 7,
                    proof: Some(Box::new(proof)),
                },
            ],
            sync: true,
        },
        "ihave" => Message::IHave {
            items: vec![Announce { id: item_id(Space::Reputation, "0000000000000011"), energy: 3.5, hops: 2 }],
        },
        "graft" => Message::Graft { ids: vec![item_id(Space::Info, "greeting")] },
        "prune" => Message::Prune,
        "sync_digest" => Message::SyncDigest {
            space: Space::Job,
            after: "a".into(),
            upto: Some("m".into()),
            entries: vec![DigestEntry { key: "b".into(), version: 4, origin: NodeId(0x21) }],
        },
        "sync_request" => Message::SyncRequest { space: Space::Reputation, keys: vec!["b".into(), "c".into()] },
        "load" => {
            Message::Load { free: 2, room: 6, jobs: vec![GradientEntry { job: JobId::from(job.clone()), dist: 3 }] }
        }
        "work" => Message::Work {
            token: Box::new(WorkToken {
                job: JobId::from(job),
                unit: 4,
                replica: 1,
                chunk: Hash::from(&hash),
                size: 1024,
                holders: vec![udp, http],
                kind: "word-count".into(),
                params: serde_json::json!({"lower": true}),
                energy: 12.5,
                inputs: vec![crate::wire::PartialRef { digest: Hash::from(&hash), holders: vec![http] }],
            }),
        },
        "job_report" => Message::JobReport {
            report: Box::new(JobReport {
                job: JobId::from(job),
                worker: key.id(),
                http,
                holding: vec![(4, 1), (5, 0)],
                results: vec![UnitResult { unit: 3, replica: 2, digest, token: "ef".repeat(16), proof: Some(proof) }],
                hops: 2,
                proof: Some(proof),
            }),
        },
        "job_record" => Message::JobRecord {
            record: Box::new(JobRecordPage {
                job: JobId::from(job.clone()),
                kind: "grep".into(),
                params: serde_json::json!({"pattern": "x+"}),
                redundancy: 3,
                energy: 12.5,
                home: key.id(),
                heirs: peers.clone(),
                total_units: 30,
                offset: 24,
                units: vec![UnitRef { hash: Hash::from(&hash), size: 1024, holders: vec![http] }],
                created: 1_700_000_000_000_000,
                appointment: Some(Appointment::new(&key, "test", 1_700_000_000_000, &job, peers)),
                dataset: None,
                fan_in: 16,
            }),
        },
        "job_decided" => Message::JobDecided {
            job: JobId::from(job),
            decisions: vec![Decision {
                unit: 3,
                digest,
                holders: vec![udp, http],
                votes: vec![Vote { worker: key.id(), proof }],
            }],
        },
        "job_finished" => {
            Message::JobFinished { job: JobId::from(job), result: Hash::from(&hash), digest, size: 99, http }
        }
        "job_confirmed" => Message::JobConfirmed {
            confirmation: Box::new(Confirmation::new(&key, "test", 1_700_000_000_000, &job, &hash, &digest)),
            job: JobId::from(job),
            result: Hash::from(&hash),
            digest,
        },
        "blob_offer" => Message::BlobOffer { blobs, http, energy: 8.5 },
        "blob_have" => Message::BlobHave {
            hashes: vec![Hash::from(&hash)],
            http,
            holder: key.id(),
            kept: true,
            proof: Box::new(proof),
        },
        "blob_keep" => Message::BlobKeep {
            cert: Box::new(KeepCert { blobs, k: 3, origin: key.id(), until: 1_700_000_100_000, proof }),
            hashes: vec![Hash::from(&hash)],
            keepers: vec![Keeper { id: key.id(), addr: udp, http }],
        },
        "blob_want" => Message::BlobWant { hashes: vec![Hash::from(&hash), Hash::from(&digest)], hops: 2 },
        "query" => Message::Query {
            root: key.id(),
            qid: 7,
            dataset: "docs".into(),
            kind: "search".into(),
            params: serde_json::json!({ "q": "x" }),
            pin: Some(3),
            budget_ms: 1500,
            skip: vec![key.id()],
            tree: true,
        },
        "query_reply" => Message::QueryReply {
            root: key.id(),
            qid: 7,
            answer: Some(Box::new(crate::wire::WaveAnswer {
                payload: serde_json::json!({ "hits": [] }),
                nodes: 3,
                holders: 2,
                holders_xor: 11,
                snapshot_xor: u64::MAX,
                chunks: 4,
                bytes: 5,
                incomplete: 1,
            })),
        },
        _ => return None,
    })
}

/// Every kind, encoded and decoded by the real codec (signed where the
/// kind needs it), comes back equal, under its own name; and every kind
/// has a sample, so a new kind without one fails here.
#[test]
fn every_kind_round_trips_under_its_name() {
    let key = crate::identity::Identity::from_u64(7);
    let mut names = std::collections::BTreeSet::new();
    for &kind in Message::KINDS.iter() {
        assert!(names.insert(kind), "{kind} listed twice");
        let msg = sample(kind).unwrap_or_else(|| panic!("no sample of kind {kind}: add one to `sample`"));
        assert_eq!(msg.kind(), kind);
        assert!(msg.check_bounds().is_ok(), "{kind}: the sample is within bounds");
        let mut env = envelope(msg);
        if env.msg.needs_sig() {
            sign_envelope(&mut env, &key, 1_700_000_000_000);
        }
        let bytes = encode(&env).unwrap_or_else(|e| panic!("{kind}: {e}"));
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(json["msg"]["kind"], env.msg.wire_kind(), "{kind}: the name on the wire");
        // Only ihave goes by another name on the wire (as it always has).
        assert_eq!(env.msg.wire_kind() == kind, kind != "ihave", "{kind}: the name on the wire");
        let (back, msg_bytes) = decode_raw(&bytes, "test").unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(back, env, "{kind}: round trip");
        assert_eq!(back.msg.kind(), kind);
        if back.msg.needs_sig() {
            assert_eq!(verify_envelope(&back, Some(msg_bytes)), Ok(()), "{kind}: signature");
        }
    }
    assert_eq!(sample("teleport"), None);
}

/// The exact bytes of a few kinds: the format cannot drift silently.
#[test]
fn golden_bytes_of_a_few_kinds() {
    let golden = [
        (
            "hello",
            r#"{"v":2,"cluster":"test","from":"FROM","to":"0000000000000009","seq":42,"msg":{"kind":"hello","body":{"active":3,"needy":true}}}"#,
        ),
        ("prune", r#"{"v":2,"cluster":"test","from":"FROM","to":"0000000000000009","seq":42,"msg":{"kind":"prune"}}"#),
        (
            "ihave",
            r#"{"v":2,"cluster":"test","from":"FROM","to":"0000000000000009","seq":42,"msg":{"kind":"i_have","body":{"items":[{"id":{"space":"reputation","key":"0000000000000011","version":3,"origin":"0000000000000021"},"energy":3.5,"hops":2}]}}}"#,
        ),
        (
            "sync_request",
            r#"{"v":2,"cluster":"test","from":"FROM","to":"0000000000000009","seq":42,"msg":{"kind":"sync_request","body":{"space":"reputation","keys":["b","c"]}}}"#,
        ),
        (
            "blob_offer",
            r#"{"v":2,"cluster":"test","from":"FROM","to":"0000000000000009","seq":42,"msg":{"kind":"blob_offer","body":{"blobs":[{"hash":"HASH","size":1024},{"hash":"DIGEST","size":7}],"http":"10.0.0.1:8080","energy":8.5}}}"#,
        ),
    ];
    let from = crate::identity::Identity::from_u64(7).id().to_string();
    for (kind, want) in golden {
        let want = want.replace("FROM", &from).replace("HASH", &"ab".repeat(32)).replace("DIGEST", &"cd".repeat(32));
        let env = envelope(sample(kind).expect("a kind"));
        let got = String::from_utf8(encode(&env).expect("encodes")).expect("utf8");
        assert_eq!(got, want, "{kind}");
        assert_eq!(decode(want.as_bytes(), "test"), Ok(env), "{kind}");
    }
}

/// The bytes of every kind's sample, pinned by digest (BLAKE3, first 16
/// hex digits): any change to any kind's encoding fails here, and the
/// failure prints the new bytes. Change a line only with the protocol.
#[test]
fn golden_digests_of_every_kind() {
    let golden: &[(&str, &str)] = &[
        ("hello", "51e5f47f7bbce473"),
        ("hello_reply", "ca3b46924ada5bb2"),
        ("join", "9202c3c7a189060e"),
        ("join_reply", "c13de16093110eda"),
        ("disconnect", "5c13428e5d9d604f"),
        ("leave", "a06573a71efb7274"),
        ("ping", "4cfac1a5aa98e702"),
        ("ack", "fae5c41763fb5a85"),
        ("agg", "2d730059307fc018"),
        ("learn", "d3e6607b5e239245"),
        ("verdict", "2ce828081e4a4d08"),
        ("ping_req", "19f4a62733d76623"),
        ("indirect_ack", "fd203ce205132a06"),
        ("shuffle", "74ec4845b6cf93d7"),
        ("shuffle_reply", "fc168816d1b8c1ae"),
        ("gossip", "1d39ac1cc9dbf94b"),
        ("ihave", "ca1620c4f0ba305d"),
        ("graft", "abb56fb0adf504bc"),
        ("prune", "c840f822be2bcb20"),
        ("sync_digest", "72c4f19ca7e784da"),
        ("sync_request", "53848cdfb8c57d36"),
        ("load", "f807210c7e228941"),
        ("work", "b2db169d93eab422"),
        ("job_report", "ad73236769a1b114"),
        ("job_record", "16b9c8d832fb0b26"),
        ("job_decided", "46d4ee95491edb3c"),
        ("job_finished", "7651b40559bbf218"),
        ("job_confirmed", "3204f25a9518e228"),
        ("blob_offer", "971c9c5b196d4433"),
        ("blob_have", "48bc233661d09c32"),
        ("blob_want", "bbbdd5d37d56edab"),
        ("blob_keep", "fb0ea6d9da131abc"),
        ("query", "c14c8f7e05101c6a"),
        ("query_reply", "54ee272df644cd1e"),
    ];
    let mut drift = Vec::new();
    for &kind in Message::KINDS.iter() {
        let mut env = envelope(sample(kind).expect("a kind"));
        if env.msg.needs_sig() {
            sign_envelope(&mut env, &crate::identity::Identity::from_u64(7), 1_700_000_000_000);
        }
        let bytes = encode(&env).expect("encodes");
        let got = blake3::hash(&bytes).to_hex()[..16].to_string();
        let want = golden.iter().find(|(k, _)| *k == kind).map(|(_, d)| *d);
        if want != Some(got.as_str()) {
            drift.push(format!("(\"{kind}\", \"{got}\"), // {}", String::from_utf8_lossy(&bytes)));
        }
    }
    assert!(drift.is_empty(), "encodings changed:\n{}", drift.join("\n"));
}
