//! Datagrams against a live core: a node with a linked neighbour gets a
//! sequence of inputs — raw bytes from the neighbour or a stranger, well
//! formed messages from the neighbour (signed where the kind needs it,
//! sealed when the run has a cluster secret), ticks, client calls and wall
//! clock jumps. Nothing may panic, and every table must stay within its
//! bound after every input.
//!
//! Input: one flag byte (bit 0: cluster secret; bit 1: a learning task
//! runs), then records of
//! `[op: u8][len: u16 LE][payload: len bytes]` (see `make_fuzz_seeds`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use ryx_core::auth::{Auth, Keyring};
use ryx_core::identity::Identity;
use ryx_core::jobs::BlobRef;
use ryx_core::learn::{Row, Spec};
use ryx_core::wire::{self, Envelope, Message, PROTOCOL_VERSION};
use ryx_core::{Input, Node, NodeConfig, Time};
use std::net::SocketAddr;

const T0: u64 = 1_800_000_000_000_000;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, i], 9000 + u16::from(i)))
}

struct World {
    node: Node,
    peer: Identity,
    sealer: Option<Auth>,
    now: u64,
    wall: u64,
    seq: u64,
}

impl World {
    fn feed(&mut self, from: SocketAddr, mut bytes: Vec<u8>) {
        if let Some(s) = self.sealer.as_mut() {
            s.seal(&mut bytes, Time(self.wall));
        }
        self.node.handle(Time(self.now), Input::Datagram { from, bytes: &bytes });
        self.settle();
    }

    fn from_peer(&mut self, msg: Message) {
        self.seq += 1;
        let mut env = Envelope {
            v: PROTOCOL_VERSION,
            cluster: "ryx".into(),
            from: self.peer.id(),
            to: Some(self.node.id()),
            seq: self.seq,
            msg,
            sig: None,
            tag: None,
            // Every other probe in the short binary form.
            short: self.seq % 2 == 0,
        };
        if env.msg.needs_sig() {
            wire::sign_envelope(&mut env, &self.peer, self.wall / 1000);
        }
        if let Ok(b) = wire::encode(&env) {
            self.feed(addr(2), b);
        }
    }

    fn settle(&mut self) {
        while self.node.poll_output().is_some() {}
        if let Err(e) = self.node.table_sizes().check(self.node.config()) {
            panic!("table bound broken: {e}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else { return };
    let cfg = NodeConfig { memory_limit: 1 << 20, ..NodeConfig::default() };
    let me = Identity::from_u64(1);
    let mut node = Node::new(cfg, me, addr(1), 7, Time(T0));
    node.set_wall_clock(Time(T0), Time(T0));
    let sealer = if flags & 1 == 1 {
        let keys = Keyring::parse("fuzz cluster secret");
        node.set_auth(keys.clone(), 1);
        Some(Auth::new(keys, 2))
    } else {
        None
    };
    let mut w = World { node, peer: Identity::from_u64(2), sealer, now: T0, wall: T0, seq: T0 };
    // The neighbour links up first, so that neighbour-only kinds are read.
    w.from_peer(Message::Join { long: false, urgent: true, degree: 0, labels: vec![], short: true });
    if flags & 2 == 2 {
        // A learning task of two features, so that `learn` parts (task
        // "t") reach a learner.
        let rows = vec![Row { x: vec![0.5, 1.0], y: 1 }, Row { x: vec![0.0, 0.2], y: 0 }];
        let _ = w.node.add_rows("d", rows);
        let _ = w.node.start_learning(Time(w.now), Spec::new("t", "d", 2, 2));
    }
    while rest.len() >= 3 {
        let op = rest[0];
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]]));
        let end = (3 + len).min(rest.len());
        let payload = &rest[3..end];
        rest = &rest[end..];
        match op % 6 {
            0 => w.feed(addr(2), payload.to_vec()),
            1 => w.feed(addr(66), payload.to_vec()),
            2 => match serde_json::from_slice::<Message>(payload) {
                Ok(m) => w.from_peer(m),
                Err(_) => w.feed(addr(2), payload.to_vec()),
            },
            3 => {
                let ms = u64::from(payload.first().copied().unwrap_or(50)) * 10;
                w.now += ms * 1000;
                w.wall += ms * 1000;
                w.node.handle(Time(w.now), Input::Tick);
                w.settle();
            }
            4 => {
                let key = String::from_utf8_lossy(payload.get(1..).unwrap_or_default()).to_string();
                let now = Time(w.now);
                match payload.first().copied().unwrap_or(0) % 5 {
                    0 => {
                        let _ = w.node.put_info(now, &key, serde_json::json!(key.len()), None);
                    }
                    1 => {
                        let h = ryx_compute::digest_hex(payload);
                        if w.node
                            .blob_put(now, &h, payload.len() as u64, ryx_core::blobs::BlobKind::Chunk, true)
                            .is_ok()
                        {
                            let r = BlobRef { hash: h.into(), size: payload.len() as u64 };
                            w.node.replicate_upload(now, vec![r.clone()], None);
                            w.node.keep(now, vec![r.clone()], 3, 0);
                            let _ = w.node.submit_job(now, "word-count", serde_json::json!({}), vec![r], 2, None);
                        }
                    }
                    2 => {
                        let held: Vec<String> = w.node.blobs().map(|(h, _)| h.to_string()).collect();
                        w.node.release(now, &held);
                    }
                    3 => w.node.leave(now),
                    _ => w.node.want_blobs(vec![ryx_compute::digest_hex(payload).into()]),
                }
                w.settle();
            }
            _ => {
                // The wall clock jumps (NTP step, resumed suspend).
                let d = i64::from(i16::from_le_bytes([
                    payload.first().copied().unwrap_or(0),
                    payload.get(1).copied().unwrap_or(0),
                ]));
                w.wall = w.wall.saturating_add_signed(d * 1_000_000);
                w.node.set_wall_clock(Time(w.now), Time(w.wall));
            }
        }
    }
});
