//! Unit tests of the node state machine on a tiny, lossless, in-memory network.

use super::*;
use crate::wire::encode;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16))
}

struct Mini {
    nodes: Vec<Node>,
    now: Time,
}

impl Mini {
    fn new(n: usize, cfg: NodeConfig) -> Mini {
        let mut nodes: Vec<Node> = (0..n)
            .map(|i| {
                Node::new(
                    cfg.clone(),
                    NodeId(i as u64 + 1),
                    addr(i),
                    i as u64,
                    Time::ZERO,
                )
            })
            .collect();
        let all: Vec<SocketAddr> = (0..n).map(addr).collect();
        for node in nodes.iter_mut() {
            node.handle(Time::ZERO, Input::Seeds(all.clone()));
        }
        Mini {
            nodes,
            now: Time::ZERO,
        }
    }

    fn index(&self, a: SocketAddr) -> Option<usize> {
        self.nodes.iter().position(|n| n.addr() == a)
    }

    /// Runs `ms` milliseconds with instant delivery; `alive` masks nodes.
    fn run(&mut self, ms: u64, alive: &[bool]) {
        let end = self.now.plus(Duration::from_millis(ms));
        while self.now < end {
            self.now = self.now.plus(Duration::from_millis(10));
            for i in 0..self.nodes.len() {
                if alive[i] && self.nodes[i].next_deadline() <= self.now {
                    self.nodes[i].handle(self.now, Input::Tick);
                }
            }
            let mut progress = true;
            let mut rounds = 0;
            while progress {
                progress = false;
                rounds += 1;
                assert!(rounds < 1000, "message storm at {:?}", self.now);
                for i in 0..self.nodes.len() {
                    while let Some(out) = self.nodes[i].poll_output() {
                        let (targets, env) = match out {
                            Output::Send { to, env } => {
                                (self.index(to).into_iter().collect::<Vec<_>>(), env)
                            }
                            Output::Broadcast { env } => ((0..self.nodes.len()).collect(), env),
                            Output::Event(_) => continue,
                        };
                        if !alive[i] {
                            continue;
                        }
                        if rounds > 990 {
                            eprintln!("{} -> {:?}: {:?}", env.from, targets, env.msg);
                        }
                        let bytes = encode(&env).expect("encodes");
                        for t in targets {
                            if alive[t] {
                                self.nodes[t].handle(
                                    self.now,
                                    Input::Datagram {
                                        from: addr(i),
                                        bytes: &bytes,
                                    },
                                );
                                progress = true;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn small_cluster_links_up_symmetrically_and_spreads_info() {
    let mut m = Mini::new(8, NodeConfig::default());
    let alive = vec![true; 8];
    m.run(2_000, &alive);
    for n in &m.nodes {
        assert!(
            n.active_len() >= 4,
            "node {} has {} neighbours",
            n.id(),
            n.active_len()
        );
        for peer in n.active_ids() {
            let other = m
                .nodes
                .iter()
                .find(|o| o.id() == peer)
                .expect("peer exists");
            assert!(
                other.active_ids().contains(&n.id()),
                "link {} -> {} is not symmetric",
                n.id(),
                peer
            );
        }
    }
    let v = m.nodes[3]
        .put_info(m.now, "greeting", serde_json::json!("hello"), None)
        .expect("put");
    assert_eq!(v, 1);
    m.run(500, &alive);
    for n in &m.nodes {
        let item = n.info("greeting").expect("every node holds the item");
        assert_eq!(item.value, serde_json::json!("hello"));
    }
    // A newer version wins everywhere.
    let v2 = m.nodes[5]
        .put_info(m.now, "greeting", serde_json::json!("bye"), None)
        .expect("put");
    assert_eq!(v2, 2);
    m.run(500, &alive);
    for n in &m.nodes {
        assert_eq!(
            n.info("greeting").expect("held").value,
            serde_json::json!("bye")
        );
    }
}

#[test]
fn crashed_neighbour_is_detected_and_replaced() {
    let mut m = Mini::new(10, NodeConfig::default());
    let mut alive = vec![true; 10];
    m.run(3_000, &alive);
    let victim = m.nodes[0].id();
    alive[0] = false;
    m.run(1_000, &alive);
    for n in m.nodes.iter().skip(1) {
        assert!(
            !n.active_ids().contains(&victim),
            "{} still lists the dead node",
            n.id()
        );
        assert!(
            n.active_len() >= 4 || n.active_len() >= 8 - 1,
            "{} not repaired: {}",
            n.id(),
            n.active_len()
        );
    }
    let detected: u64 = m.nodes.iter().map(|n| n.metrics().failures_detected).sum();
    assert!(detected >= 1);
}

#[test]
fn graceful_leave_is_replaced_at_once_without_failure_detection() {
    let mut m = Mini::new(8, NodeConfig::default());
    let mut alive = vec![true; 8];
    m.run(2_000, &alive);
    let leaver = m.nodes[2].id();
    let now = m.now;
    m.nodes[2].leave(now);
    m.run(20, &alive);
    alive[2] = false;
    for n in m.nodes.iter().filter(|n| n.id() != leaver) {
        assert!(!n.active_ids().contains(&leaver));
        assert_eq!(n.metrics().failures_detected, 0);
    }
}

#[test]
fn bad_input_is_counted_and_put_is_validated() {
    let mut n = Node::new(NodeConfig::default(), NodeId(1), addr(0), 1, Time::ZERO);
    n.handle(
        Time::ZERO,
        Input::Datagram {
            from: addr(1),
            bytes: b"not json",
        },
    );
    n.handle(
        Time::ZERO,
        Input::Datagram {
            from: addr(1),
            bytes: &[0xff; 20_000],
        },
    );
    let foreign = Envelope {
        v: PROTOCOL_VERSION,
        cluster: "elsewhere".into(),
        from: NodeId(9),
        seq: 1,
        msg: Message::Hello {
            active: 0,
            needy: true,
        },
        tag: None,
    };
    n.handle(
        Time::ZERO,
        Input::Datagram {
            from: addr(1),
            bytes: &encode(&foreign).expect("encodes"),
        },
    );
    assert_eq!(n.metrics().rejected["malformed"], 1);
    assert_eq!(n.metrics().rejected["oversized"], 1);
    assert_eq!(n.metrics().rejected["foreign_cluster"], 1);
    assert!(
        n.is_passive(&NodeId(9)) == false,
        "a foreign node must not be learned"
    );
    assert_eq!(
        n.put_info(Time::ZERO, "", serde_json::json!(1), None),
        Err(PutError::BadKey)
    );
    assert_eq!(
        n.put_info(Time::ZERO, "k", serde_json::json!("x".repeat(9000)), None),
        Err(PutError::ValueTooLarge)
    );
    assert!(matches!(
        n.put_info(Time::ZERO, "k", serde_json::json!(1), Some(-1.0)),
        Err(PutError::BadEnergy(_))
    ));
    assert!(matches!(
        n.put_info(Time::ZERO, "k", serde_json::json!(1), Some(f64::NAN)),
        Err(PutError::BadEnergy(_))
    ));
    assert_eq!(
        n.put_info(Time::ZERO, "k", serde_json::json!(1), None),
        Ok(1)
    );
    assert_eq!(
        n.put_info(Time::ZERO, "k", serde_json::json!(2), None),
        Ok(2)
    );
}

#[test]
fn low_energy_item_stops_at_its_reach() {
    // A line of nodes: 0 - 1 - 2 - 3 - 4 - 5, wired by hand through seeds.
    let cfg = NodeConfig {
        min_active: 1,
        target_active: 2,
        max_active: 2,
        ..NodeConfig::default()
    };
    let n = 6;
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            Node::new(
                cfg.clone(),
                NodeId(i as u64 + 1),
                addr(i),
                i as u64,
                Time::ZERO,
            )
        })
        .collect();
    for i in 0..n - 1 {
        let (a, b) = (nodes[i].id(), nodes[i + 1].id());
        nodes[i].add_active(b, addr(i + 1), false, true);
        nodes[i + 1].add_active(a, addr(i), false, false);
    }
    for node in nodes.iter_mut() {
        while node.poll_output().is_some() {}
    }
    // Energy 12 reaches 2 hops with the default model (12 -> 9.8 -> 7.82 -> ...
    // with δ = 0.9, c = 1: 9.8, 7.82, 6.04, 4.43, 2.99 -> 5 hops). Use 3.0:
    // 1.7, 0.53, then -0.52: reach 2.
    let reach = cfg.energy.reach(3.0) as usize;
    assert_eq!(reach, 2);
    nodes[0]
        .put_info(Time::ZERO, "k", serde_json::json!("v"), Some(3.0))
        .expect("put");
    let mut queue: VecDeque<(usize, Output)> = VecDeque::new();
    let drain = |nodes: &mut Vec<Node>, q: &mut VecDeque<(usize, Output)>| {
        for (i, node) in nodes.iter_mut().enumerate() {
            while let Some(o) = node.poll_output() {
                q.push_back((i, o));
            }
        }
    };
    drain(&mut nodes, &mut queue);
    while let Some((i, out)) = queue.pop_front() {
        if let Output::Send { to, env } = out {
            let t = (to.port() - 10_000) as usize;
            nodes[t].handle(Time::ZERO, Input::Message { from: addr(i), env });
            drain(&mut nodes, &mut queue);
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(node.info("k").is_some(), i <= reach, "node {i}");
    }
}
