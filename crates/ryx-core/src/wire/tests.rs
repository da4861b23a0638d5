//! The wire format's tests: round trips, rejections, bounds and sizes;
//! every kind and its bytes in `kinds`.

mod kinds;

use super::*;
use crate::blobs::Hash;
use crate::jobs::JobId;
use kinds::sample;
use proptest::prelude::*;
use std::collections::BTreeMap;

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
        short: false,
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
            short: false,
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

fn probe_envs() -> Vec<Envelope> {
    let tree = |parent| Some(TreeAdvert { leader: NodeId(3), beat: 1_765_000_000_123, dist: 4, parent });
    let coord = Some(crate::coords::Coord { x: 1.5, y: -2.25, h: 0.5, e: 0.3 });
    let mut msgs = vec![];
    for (t, c) in [(None, None), (tree(None), None), (tree(Some(NodeId(7))), coord), (None, coord)] {
        msgs.push(Message::Ping { nonce: u64::from(u32::MAX), tree: t, coord: c });
        msgs.push(Message::Ack { nonce: 42, neighbor: true, degree: 5, tree: t, coord: c });
        msgs.push(Message::Ack { nonce: 0, neighbor: false, degree: 255, tree: t, coord: c });
    }
    let keys = ["#", "cpu", "lag_ms~3", "lag_ms~z", "lag_ms{zone=eu-west}"];
    let v: BTreeMap<String, (f32, f32, f32)> =
        keys.iter().enumerate().map(|(i, k)| (k.to_string(), (i as f32 * 0.37, -0.125, 1e-7))).collect();
    let x: BTreeMap<String, crate::agg::Extreme> =
        [("cpu".to_string(), (0.9, 1_765_000_000_123, 0.01, 1_765_000_000_456))].into_iter().collect();
    msgs.push(Message::Agg { v: v.clone(), x: x.clone(), reply: false });
    msgs.push(Message::Agg { v, x: BTreeMap::new(), reply: true });
    msgs.push(Message::Agg { v: BTreeMap::new(), x, reply: true });
    // `seq` does not travel in the short form (probes are unsigned).
    msgs.into_iter().map(|msg| Envelope { msg, seq: 0, short: true, ..gossip_env() }).collect()
}

#[test]
fn probes_and_exchanges_round_trip_in_their_short_form_at_a_fraction_of_the_json() {
    for env in probe_envs() {
        let bytes = encode(&env).expect("encodes");
        assert_eq!(bytes[0], short::MAGIC);
        assert_eq!(decode(&bytes, "test"), Ok(env.clone()), "{:?}", env.msg);
        let json = encode(&Envelope { short: false, ..env.clone() }).expect("encodes");
        assert_eq!(json[0], b'{');
        assert_eq!(decode(&json, "test"), Ok(Envelope { short: false, ..env.clone() }));
        if let Message::Agg { .. } = env.msg {
            assert!(bytes.len() * 2 <= json.len(), "{} short vs {} JSON", bytes.len(), json.len());
        } else {
            assert!(bytes.len() * 3 <= json.len(), "{} short vs {} JSON", bytes.len(), json.len());
            assert!(bytes.len() <= 70, "{}", bytes.len());
        }
    }
    // A nonce beyond 32 bits (an older release's) keeps its probe in JSON.
    let wide = Envelope { msg: Message::Ping { nonce: 1 << 32, tree: None, coord: None }, ..probe_envs()[0].clone() };
    assert_eq!(encode(&wide).expect("encodes")[0], b'{');
    // Only a ping or an ack to a named node, unsigned, goes short.
    let gossip = Envelope { short: true, ..gossip_env() };
    assert_eq!(encode(&gossip).expect("encodes")[0], b'{');
    let hello = Envelope { to: None, ..probe_envs()[0].clone() };
    assert_eq!(encode(&hello).expect("encodes")[0], b'{');
}

#[test]
fn short_datagrams_sealed_by_a_secret_open_to_their_fields_and_unsealed_ones_are_missing_a_tag() {
    use crate::auth::{Auth, AuthError, Keyring};
    let t0 = crate::Time(1_800_000_000_000_000);
    let (mut a, mut b) = (Auth::new(Keyring::parse("s"), 1), Auth::new(Keyring::parse("s"), 2));
    for env in probe_envs() {
        let plain = encode(&env).expect("encodes");
        assert!(short::is_whole(&plain));
        // Unsealed, whatever its length (an ack with a tree place and a
        // coordinate is longer than a tag): the tag is missing.
        assert_eq!(b.open(&plain, t0), Err(AuthError::Missing), "{:?}", env.msg);
        let mut sealed = plain.clone();
        a.seal(&mut sealed, t0);
        assert!(!short::is_whole(&sealed));
        assert_eq!(sealed.len(), plain.len() + crate::auth::SHORT_TAG_LEN);
        let opened = b.open(&sealed, t0).expect("opens");
        assert_eq!(opened, plain);
        assert_eq!(decode(&opened, "test"), Ok(env));
    }
}

#[test]
fn short_datagrams_are_refused_with_their_reason() {
    let ping = encode(&probe_envs()[0]).expect("encodes");
    let ack = encode(&probe_envs()[7]).expect("encodes");
    let with = |b: &[u8], i: usize, x: u8| {
        let mut b = b.to_vec();
        b[i] = x;
        b
    };
    assert_eq!(decode(&ping, "other"), Err(WireError::ForeignCluster));
    assert_eq!(decode(&with(&ping, 1, 1), "test"), Err(WireError::WrongVersion));
    assert_eq!(decode(&with(&ping, 2, 9), "test"), Err(WireError::UnknownKind));
    // Flags: unknown bits, a parent without a tree, a ping's "neighbor".
    for f in [0x10, 0x80, 4, 1] {
        assert_eq!(decode(&with(&ping, 27, f), "test"), Err(WireError::Malformed), "flags {f:#x}");
    }
    // Every truncation, and anything after the fields.
    for n in 0..ack.len() {
        assert!(decode(&ack[..n], "test").is_err(), "cut at {n}");
    }
    let mut long = ack.clone();
    long.push(0);
    assert_eq!(decode(&long, "test"), Err(WireError::Malformed));
    // A tag and no secret to check it with: a configuration mismatch.
    let mut tagged = ack.clone();
    tagged.extend_from_slice(&[0; crate::auth::SHORT_TAG_LEN]);
    assert_eq!(decode(&tagged, "test"), Err(WireError::BadAuth));
    // Exchanges: keys out of order or twice, not UTF-8, a reply flag of 2.
    let agg = encode(&probe_envs()[12]).expect("encodes");
    let key0 = 25; // after the reply flag and the key count: "#"'s length
    assert_eq!((agg[key0], agg[key0 + 1]), (1, b'#'));
    assert_eq!(decode(&with(&agg, key0 + 1, b'z'), "test"), Err(WireError::Malformed), "out of order");
    assert_eq!(decode(&with(&agg, key0 + 1, 0xff), "test"), Err(WireError::Malformed), "not UTF-8");
    assert_eq!(decode(&with(&agg, 23, 2), "test"), Err(WireError::Malformed), "reply 2");
    assert_eq!(decode(&with(&agg, 24, 200), "test"), Err(WireError::Malformed), "more keys than sent");
    // A coordinate that is not a number.
    let n = ack.len();
    let mut nan = ack.clone();
    nan[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    assert_eq!(decode(&nan, "test"), Err(WireError::OutOfBounds));
}

proptest! {
    #[test]
    fn mutated_short_datagrams_never_panic(which in 0usize..15, pos in 0usize..100, byte in any::<u8>(), cut in 0usize..100) {
        let mut bytes = encode(&probe_envs()[which]).expect("encodes");
        let n = bytes.len();
        bytes[pos % n] = byte;
        bytes.truncate(n - (cut % n));
        if let Ok(env) = decode(&bytes, "test") {
            // Whatever decodes encodes back to the same bytes.
            prop_assert_eq!(encode(&env).expect("encodes"), bytes);
        }
    }

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
