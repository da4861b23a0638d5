//! What a hostile peer may try against a node, and the defence that stops
//! each attempt: signatures, destinations bound into every datagram, and
//! bounds on every table and answer.

use super::*;
use crate::jobs::{JobId, JobReport, UnitResult};

/// An attacker's address (never a node of the mini network).
fn evil() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 66], 6666))
}

/// Encodes a datagram from `from` (signed with `signer` where the kind
/// needs it) to `to`.
fn craft(from: NodeId, signer: Option<&Identity>, to: Option<NodeId>, seq: u64, msg: Message, wall_ms: u64) -> Vec<u8> {
    let mut env =
        Envelope { v: PROTOCOL_VERSION, cluster: "ryx".into(), from, to, seq, msg, sig: None, tag: None, short: false };
    if let Some(id) = signer {
        // Signed with `id`'s key whatever `from` claims.
        crate::wire::sign_envelope(&mut env, id, wall_ms);
    }
    encode(&env).expect("encodes")
}

fn rejected(n: &Node, reason: &str) -> u64 {
    n.metrics().rejected.get(reason).copied().unwrap_or(0)
}

fn linked() -> (Mini, Vec<bool>) {
    let mut m = Mini::new(6, NodeConfig::default());
    let alive = vec![true; 6];
    m.run(2_000, &alive);
    (m, alive)
}

/// A neighbour of node 0, with its index.
fn neighbour_of_0(m: &Mini) -> (usize, NodeId) {
    let id = m.nodes[0].active_ids()[0];
    let i = m.nodes.iter().position(|n| n.id() == id).expect("neighbour is a node");
    (i, id)
}

#[test]
fn a_neighbours_address_moves_only_on_its_own_signed_join() {
    let (mut m, _) = linked();
    let (ni, nid) = neighbour_of_0(&m);
    let real = m.nodes[0].neighbors(m.now).iter().find(|p| p.node_id == nid).expect("linked").addr;
    // A datagram that merely names the neighbour must not move its link.
    let to = m.nodes[0].id();
    let ping = craft(nid, None, Some(to), 1, Message::Ping { nonce: 1, tree: None, coord: None }, m.now.as_millis());
    m.nodes[0].handle(m.now, Input::Datagram { from: evil(), bytes: &ping });
    let addr = m.nodes[0].neighbors(m.now).iter().find(|p| p.node_id == nid).expect("still linked").addr;
    assert_eq!(addr, real, "hearsay moved the link");
    // A join signed by someone else's key does not move it either.
    let stranger = Identity::from_text("stranger");
    let join = Message::Join { long: false, urgent: false, degree: 4, labels: vec![], short: false };
    let forged = craft(nid, Some(&stranger), Some(to), u64::MAX / 2, join.clone(), m.now.as_millis());
    m.nodes[0].handle(m.now, Input::Datagram { from: evil(), bytes: &forged });
    assert_eq!(rejected(&m.nodes[0], "sig_wrong_key"), 1);
    let addr = m.nodes[0].neighbors(m.now).iter().find(|p| p.node_id == nid).expect("still linked").addr;
    assert_eq!(addr, real);
    // The neighbour's own signed join from a new address does.
    let own = ident(ni);
    let moved = SocketAddr::from(([127, 0, 0, 1], 19_999));
    let join = craft(nid, Some(&own), Some(to), u64::MAX / 2, join, m.now.as_millis());
    m.nodes[0].handle(m.now, Input::Datagram { from: moved, bytes: &join });
    let addr = m.nodes[0].neighbors(m.now).iter().find(|p| p.node_id == nid).expect("still linked").addr;
    assert_eq!(addr, moved);
    assert_eq!(m.nodes[0].metrics().neighbors_moved, 1);
}

#[test]
fn spoofed_disconnects_leaves_and_unsolicited_replies_cut_or_make_no_link() {
    let (mut m, _) = linked();
    let (ni, nid) = neighbour_of_0(&m);
    let to = m.nodes[0].id();
    let now_ms = m.now.as_millis();
    // Unsigned, from the neighbour's own address (a spoofed source).
    for msg in [Message::Disconnect, Message::Leave] {
        let d = craft(nid, None, Some(to), 1, msg, now_ms);
        m.nodes[0].handle(m.now, Input::Datagram { from: addr(ni), bytes: &d });
    }
    assert_eq!(rejected(&m.nodes[0], "sig_missing"), 2);
    // Signed by another key.
    let stranger = Identity::from_text("stranger");
    let d = craft(nid, Some(&stranger), Some(to), 1, Message::Leave, now_ms);
    m.nodes[0].handle(m.now, Input::Datagram { from: addr(ni), bytes: &d });
    assert!(m.nodes[0].active_ids().contains(&nid), "a forged goodbye cut the link");
    // A join acceptance nobody asked for makes no link.
    let d = craft(
        stranger.id(),
        Some(&stranger),
        Some(to),
        1,
        Message::JoinReply { accepted: true, peers: vec![], labels: vec![], short: false },
        now_ms,
    );
    m.nodes[0].handle(m.now, Input::Datagram { from: evil(), bytes: &d });
    assert!(!m.nodes[0].active_ids().contains(&stranger.id()));
    assert_eq!(rejected(&m.nodes[0], "unsolicited"), 1);
    // The neighbour's own signed leave does cut it.
    let d = craft(nid, Some(&ident(ni)), Some(to), u64::MAX / 2, Message::Leave, now_ms);
    m.nodes[0].handle(m.now, Input::Datagram { from: addr(ni), bytes: &d });
    assert!(!m.nodes[0].active_ids().contains(&nid));
    // And replayed, it is refused.
    m.nodes[0].handle(m.now, Input::Datagram { from: addr(ni), bytes: &d });
    assert_eq!(rejected(&m.nodes[0], "sig_replay"), 1);
}

#[test]
fn a_flood_of_needy_joins_displaces_a_bounded_number_of_links() {
    let (mut m, _) = linked();
    // Fill node 0 up so that every urgent join has to displace someone.
    let before: BTreeSet<NodeId> = m.nodes[0].active_ids().into_iter().collect();
    let to = m.nodes[0].id();
    for k in 0..30 {
        let a = Identity::from_text(&format!("sybil-{k}"));
        let join = Message::Join { long: false, urgent: true, degree: 0, labels: vec![], short: false };
        let d = craft(a.id(), Some(&a), Some(to), 1, join, m.now.as_millis());
        m.nodes[0].handle(m.now, Input::Datagram { from: evil(), bytes: &d });
    }
    let after: BTreeSet<NodeId> = m.nodes[0].active_ids().into_iter().collect();
    let lost = before.difference(&after).count();
    assert!(lost as f64 <= DISPLACE_BURST, "needy joins displaced {lost} neighbours at once");
}

#[test]
fn a_datagram_meant_for_one_node_is_refused_by_another() {
    let (mut m, _) = linked();
    // Node 1 pings node 2; the same bytes replayed at node 3.
    let ping =
        craft(m.nodes[1].id(), None, Some(m.nodes[2].id()), 1, Message::Ping { nonce: 5, tree: None, coord: None }, 0);
    let out_before = m.nodes[3].metrics().total_out();
    m.nodes[3].handle(m.now, Input::Datagram { from: addr(1), bytes: &ping });
    assert_eq!(rejected(&m.nodes[3], "wrong_destination"), 1);
    assert_eq!(m.nodes[3].metrics().total_out(), out_before, "answered a datagram meant for another");
}

#[test]
fn a_version_beyond_the_clock_or_an_energy_beyond_the_cap_cannot_lock_or_flood() {
    let (mut m, alive) = linked();
    let (ni, nid) = neighbour_of_0(&m);
    let to = m.nodes[0].id();
    let locked = Item {
        id: ItemId { space: Space::Info, key: "config".into(), version: u64::MAX, origin: nid },
        value: serde_json::json!("attacker").into(),
        energy: 1e300,
        hops: 0,
        born: 0,
        proof: None,
    };
    let d = craft(nid, None, Some(to), 1, Message::Gossip { items: vec![locked], sync: false }, 0);
    m.nodes[0].handle(m.now, Input::Datagram { from: addr(ni), bytes: &d });
    assert_eq!(rejected(&m.nodes[0], "future_version"), 1);
    assert!(m.nodes[0].info("config").is_none());
    // A hot item within the clock bound is held with at most the cap.
    let hot = Item {
        id: ItemId { space: Space::Info, key: "hot".into(), version: m.now.as_micros(), origin: nid },
        value: serde_json::json!("x").into(),
        energy: 1e300,
        hops: 0,
        born: 0,
        proof: None,
    };
    let d = craft(nid, None, Some(to), 2, Message::Gossip { items: vec![hot], sync: false }, 0);
    m.nodes[0].handle(m.now, Input::Datagram { from: addr(ni), bytes: &d });
    let e = m.nodes[0].info("hot").expect("held").energy;
    assert!(e <= m.nodes[0].config().max_energy, "energy {e}");
    // The operator's write wins everywhere.
    let v = m.nodes[3].put_info(m.now, "config", serde_json::json!("operator"), None).expect("put");
    assert!(v > 0);
    m.run(500, &alive);
    for n in &m.nodes {
        assert_eq!(n.info("config").map(|i| (*i.value).clone()), Some(serde_json::json!("operator")));
    }
}

#[test]
fn a_hot_blob_offer_is_held_with_capped_energy_and_strangers_cannot_offer() {
    let (mut m, _) = linked();
    let (ni, nid) = neighbour_of_0(&m);
    let to = m.nodes[0].id();
    let h = fake_hash("hot-blob");
    let offer = |e: f64| Message::BlobOffer {
        blobs: vec![BlobRef { hash: Hash::from(&h), size: 1000 }],
        http: addr(ni),
        energy: e,
    };
    // From a stranger: dropped unread (no fetch).
    let d = craft(Identity::from_text("x").id(), None, Some(to), 1, offer(1e300), 0);
    m.nodes[0].handle(m.now, Input::Datagram { from: evil(), bytes: &d });
    assert!(rejected(&m.nodes[0], "not_neighbor") >= 1);
    let fetches = |n: &mut Node| {
        let mut c = 0;
        while let Some(o) = n.poll_output() {
            if matches!(o, Output::Job(JobOutput::Fetch { .. })) {
                c += 1;
            }
        }
        c
    };
    assert_eq!(fetches(&mut m.nodes[0]), 0);
    // From a neighbour: fetched, and held with at most the capped energy.
    let d = craft(nid, None, Some(to), 2, offer(1e300), 0);
    m.nodes[0].handle(m.now, Input::Datagram { from: addr(ni), bytes: &d });
    assert_eq!(fetches(&mut m.nodes[0]), 1);
    m.nodes[0].blob_put(m.now, &h, 1000, BlobKind::Chunk, false).expect("room");
    m.nodes[0].fetch_done(m.now, &h, true);
    let e = m.nodes[0].blob(&h).expect("held").energy;
    assert!(e < m.nodes[0].config().max_energy, "energy {e}");
}

#[test]
fn anti_entropy_answers_only_neighbours_and_within_a_budget() {
    let (mut m, _) = linked();
    for k in 0..600 {
        m.nodes[0].put_info(m.now, &format!("key-{k:04}"), serde_json::json!("v".repeat(200)), None).expect("put");
    }
    while m.nodes[0].poll_output().is_some() {}
    let to = m.nodes[0].id();
    let digest = Message::SyncDigest { space: Space::Info, after: String::new(), upto: None, entries: vec![] };
    let bytes_out = |n: &mut Node| {
        let mut b = 0;
        while let Some(o) = n.poll_output() {
            if let Output::Send { env, .. } = o {
                b += encode(&env).map(|x| x.len()).unwrap_or(0);
            }
        }
        b
    };
    // From a stranger (a spoofed source: the classic reflection).
    let d = craft(Identity::from_text("x").id(), None, Some(to), 1, digest.clone(), 0);
    m.nodes[0].handle(m.now, Input::Datagram { from: evil(), bytes: &d });
    assert_eq!(bytes_out(&mut m.nodes[0]), 0, "answered a stranger");
    // From a neighbour: answered, within the budget (the store holds about
    // 150 kB of these items).
    let (ni, nid) = neighbour_of_0(&m);
    let d = craft(nid, None, Some(to), 2, digest, 0);
    m.nodes[0].handle(m.now, Input::Datagram { from: addr(ni), bytes: &d });
    let out = bytes_out(&mut m.nodes[0]);
    assert!(out > 0, "a neighbour's digest went unanswered");
    assert!(out <= SYNC_ANSWER_BYTES * 2, "answered {out} bytes to a {}-byte digest", 100);
    assert!(m.nodes[0].metrics().sync_answers_capped >= 1);
}

#[test]
fn a_forged_indirect_ack_does_not_keep_a_dead_neighbour_alive() {
    let (mut m, mut alive) = linked();
    let (dead, did) = neighbour_of_0(&m);
    let other = m.nodes[0].active_ids().into_iter().find(|i| *i != did).expect("two neighbours");
    let oi = m.nodes.iter().position(|n| n.id() == other).expect("node");
    alive[dead] = false;
    let to = m.nodes[0].id();
    // Another neighbour keeps vouching for the dead one, every 50 ms,
    // with nonces nobody asked for.
    for k in 0..40 {
        let d = craft(other, None, Some(to), 100 + k, Message::IndirectAck { nonce: k, target: did }, 0);
        m.nodes[0].handle(m.now, Input::Datagram { from: addr(oi), bytes: &d });
        m.run(50, &alive);
    }
    assert!(!m.nodes[0].active_ids().contains(&did), "a vouched-for dead neighbour was kept");
}

#[test]
fn datagrams_sealed_on_the_wall_clock_open_after_a_suspend() {
    // Node b was suspended for ten minutes: its monotonic clock lags the
    // real time by that much; its wall clock does not.
    let keys = crate::auth::Keyring::parse("cluster secret");
    let mut a = Node::new(NodeConfig::default(), ident(0), addr(0), 1, Time::ZERO);
    let mut b = Node::new(NodeConfig::default(), ident(1), addr(1), 2, Time::ZERO);
    a.set_auth(keys.clone(), 1);
    b.set_auth(keys, 2);
    let real = Time(1_800_000_000_000_000);
    let lag = Duration::from_secs(600);
    a.set_wall_clock(real, real);
    let b_mono = Time(real.0 - lag.as_micros() as u64);
    b.set_wall_clock(b_mono, real);
    a.handle(real, Input::Seeds(vec![addr(1)]));
    a.handle(real, Input::Tick);
    let mut sent = 0;
    while let Some(o) = a.poll_output() {
        if let Output::Send { env, .. } = o {
            let mut bytes = encode(&env).expect("encodes");
            a.seal(&mut bytes);
            b.handle(b_mono, Input::Datagram { from: addr(0), bytes: &bytes });
            sent += 1;
        }
    }
    assert!(sent > 0);
    assert_eq!(rejected(&b, "auth_stale"), 0, "the receiver judged freshness by its stale monotonic clock");
    assert!(b.metrics().messages_in.total() >= 1);
}

// ------------------------------------------------------------------ jobs

fn report(job: &str, worker: NodeId, unit: u32, replica: u8, digest: &str, token: String) -> JobReport {
    JobReport {
        job: job.into(),
        worker,
        http: evil(),
        holding: vec![],
        results: vec![UnitResult { unit, replica, digest: digest.into(), token, proof: None }],
        hops: 0,
        proof: None,
    }
}

fn signed(mut r: JobReport, by: &Identity, now_ms: u64) -> JobReport {
    let bytes = r.signed_bytes("ryx");
    r.proof = Some(by.prove(crate::identity::domain::REPORT, now_ms, &[&bytes]));
    r
}

#[test]
fn forged_votes_decide_nothing_and_the_result_stays_right() {
    let mut w = JobWorld::new(8, &[]);
    let chunks = w.upload(0, 6);
    let now = w.mini.now;
    let id =
        w.mini.nodes[0].submit_job(now, "word-count", serde_json::json!({}), chunks.clone(), 3, None).expect("submit");
    let home = w.mini.nodes[0].id();
    let (nb, nbid) = {
        let nid = w.mini.nodes[0].active_ids()[0];
        (w.mini.nodes.iter().position(|n| n.id() == nid).expect("node"), nid)
    };
    let lie = fake_hash("LIE");
    let good_token = crate::jobs::token_digest(&id, 0, &chunks[0].hash, "word-count", &serde_json::json!({}));
    let wrong_token =
        crate::jobs::token_digest(&id, 0, &fake_hash("other bytes"), "word-count", &serde_json::json!({}));
    let now_ms = w.mini.now.as_millis();
    let sybils: Vec<Identity> = (0..3).map(|k| Identity::from_text(&format!("voter-{k}"))).collect();
    let mut reports = Vec::new();
    for (r, s) in sybils.iter().enumerate() {
        // Invented ids, no signature at all.
        reports.push(report(&id, NodeId(0xbad0 + r as u64), 0, r as u8, &lie, good_token.clone()));
        // Another node's id, signed with the attacker's key.
        reports.push(signed(report(&id, w.mini.nodes[2 + r].id(), 0, r as u8, &lie, good_token.clone()), s, now_ms));
        // Real keys, but for a token the home never issued.
        reports.push(signed(report(&id, s.id(), 0, r as u8, &lie, wrong_token.clone()), s, now_ms));
    }
    for (k, r) in reports.into_iter().enumerate() {
        let d = craft(nbid, None, Some(home), 1000 + k as u64, Message::JobReport { report: Box::new(r) }, now_ms);
        w.mini.nodes[0].handle(w.mini.now, Input::Datagram { from: addr(nb), bytes: &d });
    }
    let n0 = &w.mini.nodes[0];
    assert_eq!(rejected(n0, "sig_missing"), 3);
    assert_eq!(rejected(n0, "sig_wrong_key"), 3);
    assert_eq!(rejected(n0, "wrong_token"), 3);
    w.run(5_000);
    let s = w.summary(&id).expect("job finished");
    assert_eq!(s.state, JobState::Done, "{s:?}");
    assert_eq!(s.result_digest, Some(JobWorld::expected(6)));
}

#[test]
fn forged_summaries_records_and_decisions_change_nothing() {
    let (mut w, id) = world_with_a_job();
    let home = w.mini.nodes[0].id();
    let attacker = Identity::from_text("would-be home");
    let (nb, nbid) = {
        let nid = w.mini.nodes[0].active_ids()[0];
        (w.mini.nodes.iter().position(|n| n.id() == nid).expect("node"), nid)
    };
    let summary = |origin: NodeId| {
        let mut s = w.mini.nodes[0].job(&id).expect("summary held");
        s.home = origin;
        s.state = JobState::Done;
        s.result_hash = Some(Hash::from(fake_hash("forged result")));
        serde_json::to_value(&s).expect("json")
    };
    let now_ms = w.mini.now.as_millis();
    let version = w.mini.now.as_micros() + 1_000_000;
    // The attacker's own summary, signed by itself, a second ahead.
    let mut mine = Item {
        id: ItemId { space: Space::Job, key: id.clone(), version, origin: attacker.id() },
        value: summary(attacker.id()).into(),
        energy: 100.0,
        hops: 0,
        born: 0,
        proof: None,
    };
    mine.proof = Some(Box::new(attacker.prove(crate::identity::domain::ITEM, now_ms, &[&mine.signed_bytes("ryx")])));
    // The home's id, signed with the attacker's key.
    let mut as_home =
        Item { id: ItemId { origin: home, ..mine.id.clone() }, value: summary(home).into(), ..mine.clone() };
    as_home.proof =
        Some(Box::new(attacker.prove(crate::identity::domain::ITEM, now_ms, &[&as_home.signed_bytes("ryx")])));
    for (k, item) in [mine, as_home].into_iter().enumerate() {
        let d =
            craft(nbid, None, Some(home), 1000 + k as u64, Message::Gossip { items: vec![item], sync: false }, now_ms);
        w.mini.nodes[0].handle(w.mini.now, Input::Datagram { from: addr(nb), bytes: &d });
    }
    assert_eq!(rejected(&w.mini.nodes[0], "not_heir"), 1);
    assert_eq!(rejected(&w.mini.nodes[0], "sig_wrong_key"), 1);
    assert!(w.mini.nodes[0].job_engine().is_home(&id), "the real home stepped down");
    // Records and decisions for the job's heirs from a node that is not
    // its home are refused.
    let heir = w.mini.nodes[0].job(&id).expect("summary").co_homes[0];
    let hi = w.mini.nodes.iter().position(|n| n.id() == heir).expect("heir is a node");
    let decided = Message::JobDecided {
        job: JobId::from(id.clone()),
        decisions: vec![crate::jobs::Decision {
            unit: 0,
            digest: fake_hash("forged"),
            holders: vec![evil()],
            votes: Vec::new(),
        }],
    };
    let d = craft(attacker.id(), Some(&attacker), Some(heir), 1, decided, now_ms);
    w.mini.nodes[hi].handle(w.mini.now, Input::Datagram { from: evil(), bytes: &d });
    assert_eq!(rejected(&w.mini.nodes[hi], "not_home"), 1);
    w.run(8_000);
    let s = w.summary(&id).expect("job finished");
    assert_eq!(s.home, home);
    assert_eq!(s.result_digest, Some(JobWorld::expected(40)));
}

/// A signed job summary item from `by` (its own key).
fn summary_item(id: &str, value: serde_json::Value, by: &Identity, version: u64, now_ms: u64) -> Item {
    let mut item = Item {
        id: ItemId { space: Space::Job, key: id.to_string(), version, origin: by.id() },
        value: value.into(),
        energy: 100.0,
        hops: 0,
        born: 0,
        proof: None,
    };
    item.proof = Some(Box::new(by.prove(crate::identity::domain::ITEM, now_ms, &[&item.signed_bytes("ryx")])));
    item
}

#[test]
fn an_heir_cannot_make_a_result_of_its_own_stand_nor_make_the_creator_step_down() {
    // An heir is a legitimate co-home, so its signatures are valid: without
    // result attestation its signed `done` summary with a made-up digest
    // would be believed by every node, and its higher-version summary
    // would make the live creator step down.
    let (mut w, id) = world_with_a_job();
    let creator = w.mini.nodes[0].id();
    let held = w.mini.nodes[0].job(&id).expect("summary held");
    let heir = held.co_homes[0];
    let hi = w.mini.nodes.iter().position(|n| n.id() == heir).expect("heir is a node");
    let heir_key = ident(hi);
    // A third node that holds the summary, neighbour of the creator.
    let xi = (1..8).find(|&i| i != hi && w.mini.nodes[i].job(&id).is_some()).expect("a third node");
    let now_ms = w.mini.now.as_millis();
    let version = w.mini.now.as_micros() + 1_000_000;
    let lie = fake_hash("forged result");
    let forged = |confirmations: Vec<crate::attest::Confirmation>| {
        let mut s = held.clone();
        s.home = heir;
        s.state = JobState::Done;
        s.result_hash = Some(Hash::from(&lie));
        s.result_digest = Some(lie.clone());
        s.confirmations = confirmations;
        serde_json::to_value(&s).expect("json")
    };
    let outsider = Identity::from_text("outsider");
    let attempts = [
        // No confirmation at all.
        forged(vec![]),
        // Confirmed by itself.
        forged(vec![crate::attest::Confirmation::new(&heir_key, "ryx", now_ms, &id, &lie, &lie)]),
        // Confirmed by a node the creator never appointed.
        forged(vec![crate::attest::Confirmation::new(&outsider, "ryx", now_ms, &id, &lie, &lie)]),
    ];
    let xid = w.mini.nodes[xi].id();
    for (k, value) in attempts.into_iter().enumerate() {
        let item = summary_item(&id, value, &heir_key, version + k as u64, now_ms);
        let d =
            craft(heir, None, Some(xid), 5000 + k as u64, Message::Gossip { items: vec![item], sync: false }, now_ms);
        let from = w.mini.nodes[xi].neighbors(w.mini.now).iter().find(|p| p.node_id == heir).map(|p| p.addr);
        w.mini.nodes[xi].handle(w.mini.now, Input::Datagram { from: from.unwrap_or(addr(hi)), bytes: &d });
    }
    assert_eq!(rejected(&w.mini.nodes[xi], "unconfirmed_result"), 3);
    assert_ne!(w.mini.nodes[xi].job(&id).map(|s| s.state), Some(JobState::Done));
    // A running summary from the heir a second ahead: the creator, alive,
    // stays home.
    let mut running = held.clone();
    running.home = heir;
    let item = summary_item(&id, serde_json::to_value(&running).expect("json"), &heir_key, version + 10, now_ms);
    let d = craft(heir, None, Some(creator), 6000, Message::Gossip { items: vec![item], sync: false }, now_ms);
    let from = w.mini.nodes[0].neighbors(w.mini.now).iter().find(|p| p.node_id == heir).map(|p| p.addr);
    w.mini.nodes[0].handle(w.mini.now, Input::Datagram { from: from.unwrap_or(addr(hi)), bytes: &d });
    assert!(w.mini.nodes[0].job_engine().is_home(&id), "the creator stepped down for an heir");
    w.run(8_000);
    for i in 0..8 {
        let s = w.mini.nodes[i].job(&id).expect("summary");
        assert_eq!(s.state, JobState::Done, "node {i}: {s:?}");
        assert_eq!(s.result_digest, Some(JobWorld::expected(40)), "node {i}");
        assert_eq!(s.home, creator, "node {i}");
    }
}

#[test]
fn a_home_that_took_over_and_claims_a_wrong_result_is_refused_and_replaced() {
    // The creator dies; the heir that takes over merges a wrong result (as
    // a Byzantine home would claim one). The other appointed heirs merge
    // the decided partials themselves, refuse to confirm, and one of them
    // finishes the job: no node ever believes the wrong result.
    let mut w = JobWorld::new(10, &[]);
    w.bad_first_takeover = true;
    let chunks = w.upload(0, 30);
    w.run(500);
    let now = w.mini.now;
    let id = w.mini.nodes[0].submit_job(now, "word-count", serde_json::json!({}), chunks, 1, None).expect("submit");
    w.run(60);
    w.alive[0] = false;
    let bad_digest = |w: &JobWorld| {
        (1..10).any(|i| {
            w.mini.nodes[i].job(&id).is_some_and(|s| s.result_digest.is_some_and(|d| d != JobWorld::expected(30)))
        })
    };
    for _ in 0..150 {
        w.run(100);
        assert!(!bad_digest(&w), "a node believes the wrong result");
    }
    let liar = w.bad_home.expect("an heir took over and merged (the case under test)");
    let refused: u64 = (1..10).map(|i| rejected(&w.mini.nodes[i], "wrong_result")).sum();
    assert!(refused >= 1, "no heir refused the wrong claim");
    let s = w.summary(&id).expect("job finished");
    assert_eq!(s.state, JobState::Done, "{s:?}");
    assert_eq!(s.result_digest, Some(JobWorld::expected(30)));
    assert_ne!(s.home, w.mini.nodes[liar].id());
    assert!(s.confirmations.iter().all(|c| c.by != w.mini.nodes[liar].id()));
}

/// Eight nodes, with a 40-chunk word count submitted at node 0 and under way.
fn world_with_a_job() -> (JobWorld, String) {
    let mut w = JobWorld::new(8, &[]);
    let chunks = w.upload(0, 40);
    w.run(300);
    let now = w.mini.now;
    let id = w.mini.nodes[0].submit_job(now, "word-count", serde_json::json!({}), chunks, 1, None).expect("submit");
    w.run(100);
    (w, id)
}
