//! Custody of acknowledged uploads: k copies kept, never evicted for other
//! data, restored when a keeper dies, released by their origin.

use super::*;

fn keepers_of(w: &JobWorld, h: &str) -> Vec<usize> {
    (0..w.mini.nodes.len()).filter(|&i| w.alive[i] && w.mini.nodes[i].blob(h).is_some_and(|m| m.durable)).collect()
}

#[test]
fn acknowledged_copies_are_kept_restored_and_released() {
    let mut w = JobWorld::new(10, &[]);
    let refs = w.upload(0, 4);
    w.run(500);
    let now = w.mini.now;
    assert_eq!(w.mini.nodes[0].keep(now, refs.clone(), 3, 0), 4);
    w.run(3_000);
    for r in &refs {
        assert_eq!(w.mini.nodes[0].kept_copies(&r.hash), 3, "confirmed keepers of {}", r.hash);
        let k = keepers_of(&w, &r.hash);
        assert_eq!(k.len(), 3, "durable copies of {}: {k:?}", r.hash);
        assert!(k.contains(&0));
    }
    // Kill one keeper of the first chunk (not the origin): the count comes
    // back, on another node, within the keepers' checks.
    let victim = keepers_of(&w, &refs[0].hash).into_iter().find(|&i| i != 0).expect("a keeper besides the origin");
    w.alive[victim] = false;
    w.run(25_000);
    for r in &refs {
        let k = keepers_of(&w, &r.hash);
        assert_eq!(k.len(), 3, "after a keeper died, durable copies of {}: {k:?}", r.hash);
        assert_eq!(w.mini.nodes[0].kept_copies(&r.hash), 3);
    }
    // Released by its origin: ordinary copies again everywhere.
    let now = w.mini.now;
    let hashes: Vec<String> = refs.iter().map(|r| r.hash.to_string()).collect();
    assert_eq!(w.mini.nodes[0].release(now, &hashes), 4);
    w.run(500);
    for r in &refs {
        assert!(keepers_of(&w, &r.hash).is_empty(), "still durable after the release");
    }
}

#[test]
fn a_keep_request_by_another_origin_cannot_be_released_by_a_stranger() {
    let mut w = JobWorld::new(6, &[]);
    let refs = w.upload(0, 2);
    w.run(500);
    let now = w.mini.now;
    w.mini.nodes[0].keep(now, refs.clone(), 2, 0);
    w.run(2_000);
    let keeper = keepers_of(&w, &refs[0].hash).into_iter().find(|&i| i != 0).expect("a keeper");
    // A stranger signs a release of the same blobs with its own key.
    let stranger = Identity::from_text("stranger");
    let bytes = crate::wire::KeepCert::signed_bytes("ryx", &refs, 0, stranger.id(), 0);
    let proof = stranger.prove(crate::identity::domain::KEEP, w.mini.now.as_millis() + 1, &[&bytes]);
    let cert = crate::wire::KeepCert { blobs: refs.clone(), k: 0, origin: stranger.id(), until: 0, proof };
    let env = Envelope {
        v: PROTOCOL_VERSION,
        cluster: "ryx".into(),
        from: stranger.id(),
        to: Some(w.mini.nodes[keeper].id()),
        seq: 1,
        msg: Message::BlobKeep {
            cert: Box::new(cert),
            hashes: refs.iter().map(|r| r.hash.clone()).collect(),
            keepers: vec![],
        },
        sig: None,
        tag: None,
        short: false,
    };
    let bytes = encode(&env).expect("encodes");
    let now = w.mini.now;
    w.mini.nodes[keeper].handle(now, Input::Datagram { from: addr(99), bytes: &bytes });
    assert!(w.mini.nodes[keeper].blob(&refs[0].hash).is_some_and(|m| m.durable), "a stranger released custody");
}

#[test]
fn a_keep_runs_out_at_its_time() {
    let mut w = JobWorld::new(6, &[]);
    let refs = w.upload(0, 2);
    w.run(500);
    let now = w.mini.now;
    let until = now.as_millis() + 3_000;
    w.mini.nodes[0].keep(now, refs.clone(), 2, until);
    w.run(2_000);
    assert_eq!(keepers_of(&w, &refs[0].hash).len(), 2);
    w.run(3_000);
    assert!(keepers_of(&w, &refs[0].hash).is_empty(), "still durable after the keep ran out");
}
