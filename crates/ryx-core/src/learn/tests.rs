use super::*;
use crate::rng::Rng;

fn id(i: u64) -> NodeId {
    NodeId(i)
}

/// Three classes of points around three centres in 4 dimensions.
fn blobs(n: usize, seed: u64) -> Vec<Row> {
    let mut rng = Rng::new(seed);
    let centres = [[2.0, 0.0, 0.0, 1.0], [0.0, 2.0, 0.0, -1.0], [0.0, 0.0, 2.0, 0.0]];
    (0..n)
        .map(|i| {
            let y = i % 3;
            let x = centres[y].iter().map(|c| c + (rng.unit() as f32 - 0.5) * 2.0).collect();
            Row { x, y: y as u16 }
        })
        .collect()
}

/// `n` learners on a ring with chords, each holding its share of `rows`,
/// run for `cycles` with every message delivered (or dropped with
/// probability `loss`) before the next cycle.
fn run(n: usize, rows: &[Row], spec: &Spec, cycles: usize, loss: f64) -> Vec<Learner> {
    let mut rng = Rng::new(7);
    let nbrs: Vec<Vec<NodeId>> = (0..n)
        .map(|i| {
            let j = [(i + 1) % n, (i + n - 1) % n, (i + n / 2) % n];
            j.iter().map(|j| id(*j as u64)).collect()
        })
        .collect();
    let mut ls: Vec<Learner> = (0..n)
        .map(|i| {
            let mine: Vec<Row> = rows.iter().skip(i).step_by(n).cloned().collect();
            Learner::new(spec.clone(), &mine)
        })
        .collect();
    for c in 0..cycles {
        let now = Time::from_millis(c as u64 * 1000);
        for i in 0..n {
            let to = nbrs[i][rng.below(nbrs[i].len())];
            let msgs = ls[i].cycle(now, &nbrs[i], Some(to));
            for m in msgs {
                if rng.unit() < loss {
                    continue;
                }
                let j = to.0 as usize;
                if let Some(r) = ls[j].receive(now, to, id(i as u64), &m).expect("well formed") {
                    if rng.unit() >= loss {
                        ls[i].receive(now, id(i as u64), to, &r).expect("well formed");
                    }
                }
            }
        }
    }
    ls
}

#[test]
fn every_node_learns_what_one_process_learns_from_all_the_rows() {
    let rows = blobs(600, 1);
    let test = blobs(300, 2);
    let mut spec = Spec::new("t", "blobs", 4, 3);
    spec.holdout = 0.0;
    let reference = accuracy(&spec, &train_reference(&spec, &rows, 100), &test);
    assert!(reference > 0.9, "the blobs are separable: {reference}");
    let ls = run(40, &rows, &spec, 100, 0.0);
    for l in &ls {
        let a = accuracy(&spec, l.weights(), &test);
        assert!(a >= reference - 0.02, "node accuracy {a} against the reference's {reference}");
    }
}

#[test]
fn the_tracked_mass_is_the_inputs_and_loss_only_delays_it() {
    let rows = blobs(90, 3);
    let mut spec = Spec::new("t", "blobs", 4, 3);
    spec.holdout = 0.0;
    let ls = run(30, &rows, &spec, 60, 0.1);
    let d = spec.dim();
    // Rows per node: every node's estimate near the true 3, and no mass
    // made or lost beyond the messages in flight.
    let total: f64 = ls.iter().map(|l| l.estimate(d)).sum();
    assert!((total - 90.0).abs() < 1.0, "mass {total}");
    for l in &ls {
        assert!((l.estimate(d) - 3.0).abs() < 0.5, "estimate {}", l.estimate(d));
    }
}

#[test]
fn a_node_that_has_not_trained_adopts_its_neighbours_model() {
    let spec = Spec::new("t", "blobs", 4, 3);
    let rows = blobs(30, 4);
    let mut old = Learner::new(spec.clone(), &rows);
    for c in 0..5 {
        old.cycle(Time::from_millis(c * 1000), &[], None);
    }
    let mut new = Learner::new(spec.clone(), &[]);
    let msgs = old.cycle(Time::from_millis(6000), &[id(2)], Some(id(2)));
    let before = old.weights().to_vec();
    for m in &msgs {
        let r = new.receive(Time::from_millis(6000), id(2), id(1), m).expect("well formed").expect("an answer");
        // The answer carries the newcomer's age as it was (0): the old
        // model does not move towards the empty one.
        assert_eq!(r.age, 0);
        old.receive(Time::from_millis(6000), id(1), id(2), &r).expect("well formed");
    }
    assert_eq!(new.weights(), &before[..]);
    assert_eq!(old.weights(), &before[..]);
    assert_eq!(new.age, old.age);
}

#[test]
fn malformed_parts_are_refused_whole() {
    let spec = Spec::new("t", "blobs", 4, 3);
    let mut l = Learner::new(spec.clone(), &blobs(9, 5));
    let mut peer = Learner::new(spec.clone(), &blobs(9, 6));
    let good = peer.cycle(Time::from_millis(0), &[id(1)], Some(id(1))).remove(0);
    let before = l.weights().to_vec();
    let mut bad = vec![];
    let mut m = good.clone();
    m.part = 9;
    bad.push(m);
    let mut m = good.clone();
    m.x = encode_f32s(&[1.0, 2.0]);
    bad.push(m);
    let mut m = good.clone();
    m.v = encode_f32s(&[f32::NAN; 18]);
    bad.push(m);
    let mut m = good.clone();
    m.est = "not base64!".into();
    bad.push(m);
    let mut m = good.clone();
    m.took = "A".repeat(MAX_B64 + 4);
    bad.push(m);
    let mut m = good.clone();
    m.age = u64::MAX;
    bad.push(m);
    for m in &bad {
        assert_eq!(l.receive(Time::from_millis(0), id(1), id(2), m), Err(Refused), "{m:?}");
    }
    assert_eq!(l.weights(), &before[..]);
    assert_eq!(l.view(Time::from_millis(0)).refused, bad.len() as u64);
    assert!(l.receive(Time::from_millis(0), id(1), id(2), &good).is_ok());
}

#[test]
fn specs_and_rows_are_checked() {
    assert!(Spec::new("digits", "digits", 64, 10).check().is_ok());
    assert!(Spec::new("", "d", 4, 3).check().is_err());
    assert!(Spec::new("a b", "d", 4, 3).check().is_err());
    assert!(Spec::new("a", "d", 0, 3).check().is_err());
    assert!(Spec::new("a", "d", 4, 1).check().is_err());
    assert!(Spec::new("a", "d", 1024, 64).check().is_err(), "too many weights");
    let mut s = Spec::new("a", "d", 4, 3);
    s.step = f32::NAN;
    assert!(s.check().is_err());
    let mut s = Spec::new("a", "d", 4, 3);
    s.momentum = 1.0;
    assert!(s.check().is_err());
    let mut s = Spec::new("a", "d", 4, 3);
    s.period_ms = 10;
    assert!(s.check().is_err(), "a period that floods the links");
    s.period_ms = 500;
    s.mixes = 4;
    assert!(s.check().is_err(), "four exchanges in 500 ms");
    assert_eq!(parse_row("1, 2.5,3\n"), Ok(Row { x: vec![1.0, 2.5], y: 3 }));
    for bad in ["", "1", "1,x,2", "1,2,2.5", "1,2,-1", "1,inf,2", "1,2,1e9"] {
        assert!(parse_row(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn hold_out_is_the_same_wherever_a_row_lives() {
    let spec = Spec::new("t", "blobs", 4, 3);
    let rows = blobs(1000, 8);
    let held = rows.iter().filter(|r| spec.held_out(r)).count();
    assert!((50..150).contains(&held), "about 10 %: {held}");
    let l = Learner::new(spec.clone(), &rows);
    assert_eq!(l.view(Time::from_millis(0)).holdout_rows, held);
}

#[test]
fn a_full_part_of_a_large_model_fits_a_datagram_and_passes_the_wire() {
    let spec = Spec::new("digits", "digits", 64, 10);
    assert!(spec.parts() >= 3);
    let rows: Vec<Row> = (0..20).map(|i| Row { x: vec![0.3; 64], y: (i % 10) as u16 }).collect();
    let mut a = Learner::new(spec.clone(), &rows);
    let msgs = a.cycle(Time::from_millis(0), &[id(2)], Some(id(2)));
    assert_eq!(msgs.len(), spec.parts());
    let mut b = Learner::new(spec.clone(), &rows);
    for m in msgs {
        let env = crate::wire::Envelope {
            v: crate::wire::PROTOCOL_VERSION,
            cluster: "c".into(),
            from: id(1),
            to: Some(id(2)),
            seq: 1,
            msg: crate::wire::Message::learn(m.clone()),
            sig: None,
            tag: None,
            short: false,
        };
        let bytes = crate::wire::encode(&env).expect("within MAX_DATAGRAM");
        let back = crate::wire::decode(&bytes, "c").expect("valid");
        let crate::wire::Message::Learn { x, .. } = back.msg else { panic!("a learn message") };
        assert_eq!(x, m.x);
        assert!(b.receive(Time::from_millis(0), id(2), id(1), &m).is_ok());
    }
    assert_eq!(b.view(Time::from_millis(0)).refused, 0);
}

#[test]
fn exchanges_between_cycles_average_without_stepping() {
    let mut spec = Spec::new("t", "blobs", 4, 3);
    spec.mixes = 2;
    assert!(spec.check().is_ok());
    let mut l = Learner::new(spec.clone(), &blobs(9, 9));
    assert!(l.due(Time::from_millis(0)) && !l.mix_due(Time::from_millis(0)));
    l.cycle(Time::from_millis(0), &[id(2)], Some(id(2)));
    let (w, age) = (l.weights().to_vec(), l.age);
    assert!(!l.mix_due(Time::from_millis(400)));
    assert!(l.mix_due(Time::from_millis(500)) && !l.due(Time::from_millis(500)));
    let msgs = l.mix(Time::from_millis(500), &[id(2)], Some(id(2)));
    assert_eq!(msgs.len(), spec.parts());
    assert_eq!((l.weights(), l.age), (&w[..], age), "no step");
    spec.mixes = 5;
    assert!(spec.check().is_err());
}
