//! The wire format's tests: round trips, rejections, bounds and sizes;
//! every kind and its bytes in `kinds`.

mod kinds;

use super::*;
use crate::blobs::Hash;
use crate::jobs::JobId;
use kinds::sample;
use proptest::prelude::*;

fn gossip_env() -> Envelope {
    Envelope {
        v: PROTOCOL_VERSION,
        cluster: "test".into(),
        from: NodeId(0xabc),
        to: Some(NodeId(0xdef)),
        seq: 9,
        msg: Message::Gossip {
            items: vec![Item {
                id: ItemId { space: Space::Info, key: "greeting".into(), version: 3, origin: NodeId(1) },
                value: serde_json::json!("hello").into(),
                energy: 42.5,
                hops: 1,
                born: 5,
                proof: None,
            }],
            sync: false,
        },
        sig: None,
        tag: None,
    }
}

#[test]
fn round_trip_and_rejections_name_their_reason() {
    let env = gossip_env();
    let bytes = encode(&env).expect("encodes");
    assert_eq!(decode(&bytes, "test"), Ok(env.clone()));
    assert_eq!(decode(&bytes, "other"), Err(WireError::ForeignCluster));
    assert_eq!(decode(&bytes[..bytes.len() - 3], "test"), Err(WireError::Malformed));
    assert_eq!(decode(&vec![b' '; MAX_DATAGRAM + 1], "test"), Err(WireError::Oversized));
    let v2 = String::from_utf8(bytes.clone()).expect("utf8").replacen("\"v\":2", "\"v\":3", 1);
    assert_eq!(decode(v2.as_bytes(), "test"), Err(WireError::WrongVersion));
    let unknown = br#"{"v":2,"cluster":"test","from":"01","seq":1,"msg":{"kind":"teleport","body":{}}}"#;
    assert_eq!(decode(unknown, "test"), Err(WireError::UnknownKind));
    let long_key = format!(
        r#"{{"v":2,"cluster":"test","from":"01","seq":1,"msg":{{"kind":"graft","body":{{"ids":[{{"space":"info","key":"{}","version":1,"origin":"02"}}]}}}}}}"#,
        "k".repeat(MAX_KEY_LEN + 1)
    );
    assert_eq!(decode(long_key.as_bytes(), "test"), Err(WireError::OutOfBounds));
}

#[test]
fn sync_messages_name_their_space_and_default_to_info() {
    // A digest without a space is about info.
    let old = br#"{"v":2,"cluster":"test","from":"01","seq":1,"msg":{"kind":"sync_digest","body":{"after":"","upto":null,"entries":[]}}}"#;
    let env = decode(old, "test").expect("decodes");
    assert!(matches!(env.msg, Message::SyncDigest { space: Space::Info, .. }));
    let jobs = Envelope { msg: Message::SyncRequest { space: Space::Job, keys: vec!["j1".into()] }, ..gossip_env() };
    let bytes = encode(&jobs).expect("encodes");
    assert!(String::from_utf8_lossy(&bytes).contains(r#""space":"job""#));
    assert_eq!(decode(&bytes, "test"), Ok(jobs));
    // Topology is not walked by anti-entropy: such a digest is refused.
    let topo = Envelope {
        msg: Message::SyncDigest { space: Space::Topology, after: String::new(), upto: None, entries: vec![] },
        ..gossip_env()
    };
    let bytes = encode(&topo).expect("encodes");
    assert_eq!(decode(&bytes, "test"), Err(WireError::OutOfBounds));
}

#[test]
fn an_anomaly_verdict_names_its_kind_and_an_unknown_kind_is_malformed() {
    let v = Envelope {
        msg: Message::Verdict {
            subject: NodeId(7),
            observer: NodeId(8),
            down: false,
            degree: 4,
            labels: vec![],
            hops: 0,
            anomaly: Some(crate::anomaly::Anomaly::Lossy),
            holds: true,
        },
        ..gossip_env()
    };
    let bytes = encode(&v).expect("encodes");
    let text = String::from_utf8(bytes.clone()).expect("utf8");
    assert!(text.contains(r#""anomaly":"lossy""#) && text.contains(r#""holds":true"#), "{text}");
    // Without the field (a node that predates it), it reads as a "back"
    // from someone other than the subject, which is ignored: never a death.
    assert!(text.contains(r#""down":false"#), "{text}");
    assert_eq!(decode(&bytes, "test"), Ok(v));
    let odd = text.replace(r#""anomaly":"lossy""#, r#""anomaly":"haunted""#);
    assert!(decode(odd.as_bytes(), "test").is_err());
}

#[test]
fn blob_want_is_bounded_in_names_and_hops() {
    let h = "ab".repeat(32);
    let ok = Envelope { msg: Message::BlobWant { hashes: vec![Hash::from(&h)], hops: MAX_WANT_HOPS }, ..gossip_env() };
    let bytes = encode(&ok).expect("encodes");
    assert_eq!(decode(&bytes, "test"), Ok(ok));
    let far =
        Envelope { msg: Message::BlobWant { hashes: vec![Hash::from(&h)], hops: MAX_WANT_HOPS + 1 }, ..gossip_env() };
    assert_eq!(decode(&encode(&far).expect("encodes"), "test"), Err(WireError::OutOfBounds));
    let bad = Envelope { msg: Message::BlobWant { hashes: vec!["not-a-hash".into()], hops: 1 }, ..gossip_env() };
    assert_eq!(decode(&encode(&bad).expect("encodes"), "test"), Err(WireError::OutOfBounds));
    let many = Envelope { msg: Message::BlobWant { hashes: vec![Hash::from(&h); 65], hops: 1 }, ..gossip_env() };
    assert_eq!(decode(&encode(&many).expect("encodes"), "test"), Err(WireError::OutOfBounds));
}

/// The largest pages nodes send (the job engine's, announcements, key
/// requests), signed, with the longest addresses, ids and keys the bounds
/// allow, fit a datagram: a page that did not would be dropped at the
/// sender every time.
#[test]
fn the_largest_pages_fit_a_datagram() {
    use crate::attest::{Appointment, Vote};
    let key = crate::identity::Identity::from_u64(1);
    let far: SocketAddr = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535".parse().expect("addr");
    let job = "f".repeat(MAX_JOB_ID_LEN);
    let hash = "a".repeat(64);
    let ts = u64::MAX / 2;
    let proof = key.prove(crate::identity::domain::VOTE, ts, &[&b"y"[..]]);
    let peer = PeerInfo { id: NodeId(u64::MAX), addr: far };
    let report = JobReport {
        job: JobId::from(job.clone()),
        worker: NodeId(u64::MAX),
        http: far,
        holding: vec![(u32::MAX, u8::MAX); HOLDING_PER_REPORT],
        results: vec![
            UnitResult {
                unit: u32::MAX,
                replica: u8::MAX,
                digest: hash.clone(),
                token: "b".repeat(TOKEN_DIGEST_LEN),
                proof: Some(proof),
            };
            RESULTS_PER_REPORT
        ],
        hops: u8::MAX,
        proof: Some(proof),
    };
    let decided = Message::JobDecided {
        job: JobId::from(job.clone()),
        decisions: vec![
            Decision {
                unit: u32::MAX,
                digest: hash.clone(),
                holders: vec![far; PAGE_HOLDER_ADDRS],
                votes: vec![Vote { worker: NodeId(u64::MAX), proof }; MAX_VOTES],
            };
            DECISIONS_PER_PAGE
        ],
    };
    let record = JobRecordPage {
        job: JobId::from(job.clone()),
        kind: "k".repeat(32),
        // `submit` bounds a job's parameters as the wire does.
        params: serde_json::json!({"p": "v".repeat(MAX_PARAMS_LEN - r#"{"p":""}"#.len())}),
        redundancy: 7,
        energy: f64::MAX,
        home: NodeId(u64::MAX),
        heirs: vec![peer; MAX_HEIRS],
        total_units: u32::MAX,
        offset: u32::MAX,
        units: vec![
            UnitRef { hash: Hash::from(&hash), size: u64::MAX, holders: vec![far; PAGE_HOLDER_ADDRS] };
            UNITS_PER_PAGE
        ],
        created: u64::MAX,
        fan_in: MAX_MERGE_FAN_IN as u16,
        appointment: Some(Appointment::new(&key, "c", ts, &job, vec![peer; MAX_APPOINTED])),
        dataset: Some(DatasetTag {
            name: "d".repeat(MAX_DATASET_NAME),
            snapshot: hash.clone(),
            nodes: u32::MAX,
            bytes: u64::MAX,
        }),
    };
    let long_key = |i: usize| format!("{i:03}{}", "k".repeat(MAX_KEY_LEN - 3));
    let announce = |i| Announce {
        id: ItemId { space: Space::Reputation, key: long_key(i), version: u64::MAX, origin: NodeId(u64::MAX) },
        energy: -f64::MIN_POSITIVE,
        hops: u32::MAX,
    };
    // A combine step's token at every bound at once.
    let work = WorkToken {
        job: JobId::from(job.clone()),
        unit: u32::MAX,
        replica: u8::MAX,
        chunk: Hash::from(&hash),
        size: u64::MAX,
        holders: vec![far; MAX_HOLDER_ADDRS],
        kind: "k".repeat(32),
        params: serde_json::json!({"p": "v".repeat(MAX_PARAMS_LEN - r#"{"p":""}"#.len())}),
        energy: f64::MAX,
        inputs: vec![PartialRef { digest: Hash::from(&hash), holders: vec![far; PAGE_HOLDER_ADDRS] }; MAX_MERGE_FAN_IN],
    };
    let msgs = [
        Message::Work { token: Box::new(work) },
        Message::JobReport { report: Box::new(report) },
        decided,
        Message::JobRecord { record: Box::new(record) },
        Message::IHave { items: (0..IDS_PER_PAGE).map(announce).collect() },
        Message::SyncRequest { space: Space::Reputation, keys: (0..IDS_PER_PAGE).map(long_key).collect() },
    ];
    for msg in msgs {
        let kind = msg.kind();
        assert!(msg.check_bounds().is_ok(), "{kind} within bounds");
        if let Message::JobRecord { record } = &msg {
            assert_eq!(value_len(&record.params), MAX_PARAMS_LEN);
        }
        let mut env = Envelope {
            v: PROTOCOL_VERSION,
            cluster: "c".repeat(64),
            from: NodeId(u64::MAX),
            to: Some(NodeId(u64::MAX)),
            seq: u64::MAX,
            msg,
            sig: None,
            tag: None,
        };
        sign_envelope(&mut env, &key, ts);
        let len = serde_json::to_vec(&env).expect("json").len();
        assert!(encode(&env).is_ok(), "{kind}: {len} bytes > {MAX_DATAGRAM}");
        eprintln!("{kind}: {len} bytes");
    }
}

/// Each named bound admits a message at the bound and refuses one just
/// past it.
#[test]
fn each_bound_admits_its_limit_and_refuses_one_more() {
    let within = |kind: &str, edit: &dyn Fn(&mut Message, usize), limit: usize| {
        let at = {
            let mut m = sample(kind).expect("a kind");
            edit(&mut m, limit);
            m.check_bounds().is_ok()
        };
        let past = {
            let mut m = sample(kind).expect("a kind");
            edit(&mut m, limit + 1);
            m.check_bounds().is_ok()
        };
        (at, past)
    };
    let http: SocketAddr = "10.0.0.1:8080".parse().expect("addr");
    let keeper = Keeper { id: NodeId(1), addr: http, http };
    let params = |n: usize| serde_json::json!({"p": "v".repeat(n - r#"{"p":""}"#.len())});
    type Edit = Box<dyn Fn(&mut Message, usize)>;
    let cases: Vec<(&str, &str, usize, Edit)> = vec![
        (
            "agg",
            "MAX_AGG_KEYS",
            MAX_AGG_KEYS,
            Box::new(|m, n| {
                if let Message::Agg { v, .. } = m {
                    *v = (0..n).map(|i| (format!("k{i}"), (0.0, 0.0, 1.0))).collect();
                }
            }),
        ),
        (
            "agg",
            "MAX_AGG_EXTREMES",
            MAX_AGG_EXTREMES,
            Box::new(|m, n| {
                if let Message::Agg { x, .. } = m {
                    *x = (0..n).map(|i| (format!("k{i}"), (1.0, 1, 0.0, 1))).collect();
                }
            }),
        ),
        (
            "agg",
            "MAX_AGG_KEY_LEN",
            MAX_AGG_KEY_LEN,
            Box::new(|m, n| {
                if let Message::Agg { v, .. } = m {
                    *v = [("k".repeat(n), (0.0, 0.0, 1.0))].into();
                }
            }),
        ),
        (
            "verdict",
            "MAX_VERDICT_HOPS",
            usize::from(MAX_VERDICT_HOPS),
            Box::new(|m, n| {
                if let Message::Verdict { hops, .. } = m {
                    *hops = n as u8;
                }
            }),
        ),
        (
            "join",
            "labels (8)",
            8,
            Box::new(|m, n| {
                if let Message::Join { labels, .. } = m {
                    *labels = (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect();
                }
            }),
        ),
        (
            "load",
            "MAX_GRADIENT_ENTRIES",
            MAX_GRADIENT_ENTRIES,
            Box::new(|m, n| {
                if let Message::Load { jobs, .. } = m {
                    *jobs = vec![jobs[0].clone(); n];
                }
            }),
        ),
        (
            "load",
            "MAX_JOB_ID_LEN",
            MAX_JOB_ID_LEN,
            Box::new(|m, n| {
                if let Message::Load { jobs, .. } = m {
                    jobs[0].job = JobId::from("j".repeat(n));
                }
            }),
        ),
        (
            "work",
            "MAX_HOLDER_ADDRS",
            MAX_HOLDER_ADDRS,
            Box::new(move |m, n| {
                if let Message::Work { token } = m {
                    token.holders = vec![http; n];
                }
            }),
        ),
        (
            "work",
            "MAX_PARAMS_LEN",
            MAX_PARAMS_LEN,
            Box::new(move |m, n| {
                if let Message::Work { token } = m {
                    token.params = params(n);
                }
            }),
        ),
        (
            "job_record",
            "MAX_PARAMS_LEN",
            MAX_PARAMS_LEN,
            Box::new(move |m, n| {
                if let Message::JobRecord { record } = m {
                    record.params = params(n);
                }
            }),
        ),
        (
            "job_decided",
            "MAX_HOLDER_ADDRS",
            MAX_HOLDER_ADDRS,
            Box::new(move |m, n| {
                if let Message::JobDecided { decisions, .. } = m {
                    decisions[0].holders = vec![http; n];
                }
            }),
        ),
        (
            "job_finished",
            "MAX_JOB_ID_LEN",
            MAX_JOB_ID_LEN,
            Box::new(|m, n| {
                if let Message::JobFinished { job, .. } = m {
                    *job = JobId::from("j".repeat(n));
                }
            }),
        ),
        (
            "blob_offer",
            "MAX_BLOBS_PER_MESSAGE",
            MAX_BLOBS_PER_MESSAGE,
            Box::new(|m, n| {
                if let Message::BlobOffer { blobs, .. } = m {
                    *blobs = vec![blobs[0].clone(); n];
                }
            }),
        ),
        (
            "blob_have",
            "MAX_BLOBS_PER_MESSAGE",
            MAX_BLOBS_PER_MESSAGE,
            Box::new(|m, n| {
                if let Message::BlobHave { hashes, .. } = m {
                    *hashes = vec![hashes[0].clone(); n];
                }
            }),
        ),
        (
            "blob_keep",
            "MAX_KEEPERS (keepers)",
            MAX_KEEPERS,
            Box::new(move |m, n| {
                if let Message::BlobKeep { keepers, .. } = m {
                    *keepers = vec![keeper; n];
                }
            }),
        ),
        (
            "blob_keep",
            "MAX_KEEPERS (k)",
            MAX_KEEPERS,
            Box::new(|m, n| {
                if let Message::BlobKeep { cert, .. } = m {
                    cert.k = n as u8;
                }
            }),
        ),
    ];
    for (kind, bound, limit, edit) in &cases {
        assert_eq!(within(kind, edit.as_ref(), *limit), (true, false), "{kind}: {bound}");
    }
    // A result's token is exactly TOKEN_DIGEST_LEN long.
    let token = |n: usize| {
        let mut m = sample("job_report").expect("a kind");
        if let Message::JobReport { report } = &mut m {
            report.results[0].token = "e".repeat(n);
        }
        m.check_bounds().is_ok()
    };
    assert_eq!(
        (token(TOKEN_DIGEST_LEN - 1), token(TOKEN_DIGEST_LEN), token(TOKEN_DIGEST_LEN + 1)),
        (false, true, false)
    );
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode(&bytes, "test");
    }

    #[test]
    fn mutated_valid_datagrams_never_panic(pos in 0usize..400, byte in any::<u8>(), cut in 0usize..400) {
        let mut bytes = encode(&gossip_env()).expect("encodes");
        let n = bytes.len();
        bytes[pos % n] = byte;
        bytes.truncate(n - (cut % n));
        let _ = decode(&bytes, "test");
    }
}
