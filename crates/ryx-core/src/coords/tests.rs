use super::*;
use crate::rng::Rng;

/// A synthetic map: `sites` data centres placed on a plane so that every
/// two are 30–150 ms apart (round trip), 1 ms round trips inside a site, and
/// each node's own access share of 0.1–0.3 ms.
pub(crate) fn map(n: usize, sites: usize, rng: &mut Rng) -> Vec<Vec<f64>> {
    let mut at: Vec<(f64, f64)> = Vec::new();
    while at.len() < sites {
        let p = (150.0 * rng.unit(), 150.0 * rng.unit());
        if at.iter().all(|q| {
            let d = ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt();
            (30.0..=150.0).contains(&d)
        }) {
            at.push(p);
        }
    }
    let access: Vec<f64> = (0..n).map(|_| 0.1 + 0.2 * rng.unit()).collect();
    let site = |a: usize| at[a % sites];
    (0..n)
        .map(|a| {
            (0..n)
                .map(|b| {
                    if a == b {
                        return 0.0;
                    }
                    let (p, q) = (site(a), site(b));
                    let d = ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt();
                    d.max(1.0) + access[a] + access[b]
                })
                .collect()
        })
        .collect()
}

/// One sample, which may be an outlier but must not be refused otherwise.
fn take(v: &mut Vivaldi, peer: usize, rtt: f64, theirs: &Coord) {
    match v.sample(NodeId(peer as u64 + 1), rtt, theirs) {
        Ok(()) | Err(Refused::Outlier) => {}
        Err(e) => panic!("a good sample refused: {e:?}"),
    }
}

fn median_error(v: &[Vivaldi], rtt: &[Vec<f64>]) -> f64 {
    let mut errs = Vec::new();
    for a in 0..v.len() {
        for b in 0..v.len() {
            if a != b {
                errs.push((v[a].predict_ms(&v[b].coord()) - rtt[a][b]).abs() / rtt[a][b]);
            }
        }
    }
    errs.sort_by(f64::total_cmp);
    errs[errs.len() / 2]
}

/// Rounds of every node sampling a peer as a node does: mostly its
/// neighbours (four in its own site and one anywhere, as latency-chosen
/// links are), every third sample a random peer (a passive probe); with 5 %
/// jitter and, with probability `spike`, a scheduler delay of up to 50 ms.
fn run(v: &mut [Vivaldi], rtt: &[Vec<f64>], rounds: usize, spike: f64, rng: &mut Rng) {
    let n = v.len();
    let sites = 4;
    let nbrs: Vec<Vec<usize>> = (0..n)
        .map(|a| {
            let mut l: Vec<usize> = (0..n).filter(|b| *b != a && b % sites == a % sites).take(4).collect();
            l.push((a + 1 + rng.below(n - 1)) % n);
            l
        })
        .collect();
    for r in 0..rounds {
        for a in 0..n {
            let b = if r % 3 == 2 { (a + 1 + rng.below(n - 1)) % n } else { nbrs[a][rng.below(nbrs[a].len())] };
            let mut draw = || {
                let mut t = rtt[a][b] * (1.0 + 0.05 * rng.unit());
                if rng.chance(spike) {
                    t += 50.0 * rng.unit();
                }
                t
            };
            // A neighbour's probes between two coordinate exchanges feed
            // the filter too.
            if r % 3 != 2 {
                for _ in 0..3 {
                    let t = draw();
                    v[a].observe(NodeId(b as u64 + 1), t).expect("a good sample");
                }
            }
            let t = draw();
            let theirs = v[b].coord();
            take(&mut v[a], b, t, &theirs);
        }
    }
}

/// Median relative error over ten maps and seeds, every node starting at
/// the origin together and taking `rounds` samples.
fn cold_start(rounds: usize) -> f64 {
    let mut tot = 0.0;
    for seed in 1..=10u64 {
        let rtt = map(60, 4, &mut Rng::new(seed * 31));
        let mut v: Vec<Vivaldi> = (0..60).map(|i| Vivaldi::new(i as u64 + 1)).collect();
        run(&mut v, &rtt, rounds, 0.0, &mut Rng::new(seed));
        tot += median_error(&v, &rtt);
    }
    tot / 10.0
}

#[test]
fn coordinates_learn_a_site_map_from_a_cold_start() {
    let (at20, at60) = (cold_start(20), cold_start(60));
    eprintln!(
        "median relative error, all nodes from the origin: {at20:.3} after 20 samples a node, {at60:.3} after 60"
    );
    assert!(at20 < 0.3, "{at20}");
    assert!(at60 < 0.10, "{at60}");
}

#[test]
fn a_newcomer_finds_its_place_within_ten_percent_in_twenty_samples() {
    let mut all = Vec::new();
    for seed in 1..=10u64 {
        let rtt = map(61, 4, &mut Rng::new(seed * 31));
        let mut v: Vec<Vivaldi> = (0..61).map(|i| Vivaldi::new(i as u64 + 1)).collect();
        // Sixty nodes settle; the sixty-first is at the origin.
        let mut rng = Rng::new(seed);
        for _ in 0..100 {
            let mut settled = v[..60].to_vec();
            run(&mut settled, &rtt[..60].iter().map(|r| r[..60].to_vec()).collect::<Vec<_>>(), 1, 0.0, &mut rng);
            v[..60].clone_from_slice(&settled);
        }
        let newcomer = 60;
        for k in 0..20 {
            // Its neighbours in its site and, every third sample, anyone.
            let b = if k % 3 == 2 { rng.below(60) } else { (newcomer % 4) + 4 * rng.below(2) };
            let theirs = v[b].coord();
            take(&mut v[newcomer], b, rtt[newcomer][b], &theirs);
        }
        let mut errs: Vec<f64> = (0..60)
            .map(|b| (v[newcomer].predict_ms(&v[b].coord()) - rtt[newcomer][b]).abs() / rtt[newcomer][b])
            .collect();
        errs.sort_by(f64::total_cmp);
        all.push(errs[30]);
    }
    all.sort_by(f64::total_cmp);
    eprintln!("a newcomer's median relative error after 20 samples on 10 maps: {all:.3?}");
    assert!(all[5] < 0.10 && all[9] < 0.2, "{all:?}");
}

#[test]
fn scheduler_delays_on_a_loaded_machine_do_not_spoil_the_coordinates() {
    let mut rng = Rng::new(3);
    let rtt = map(40, 3, &mut rng);
    let mut clean: Vec<Vivaldi> = (0..40).map(|i| Vivaldi::new(i as u64 + 1)).collect();
    let mut noisy = clean.clone();
    run(&mut clean, &rtt, 60, 0.0, &mut Rng::new(9));
    // One sample in five delayed by up to 50 ms.
    run(&mut noisy, &rtt, 60, 0.2, &mut Rng::new(9));
    let (c, n) = (median_error(&clean, &rtt), median_error(&noisy, &rtt));
    assert!(n < 0.15 && n < c + 0.08, "filtered noise: {n} against {c} without");
}

#[test]
fn bad_samples_and_implausible_peers_are_refused_and_counted() {
    let mut v = Vivaldi::new(1);
    let ok = Coord { x: 3.0, y: 4.0, h: 0.1, e: 0.5 };
    for bad in [f64::NAN, f64::INFINITY, -1.0, 0.0, MAX_RTT_MS * 2.0] {
        assert_eq!(v.sample(NodeId(2), bad, &ok), Err(Refused::Rtt), "{bad}");
    }
    for c in [
        Coord { x: f32::NAN, ..ok },
        Coord { y: f32::INFINITY, ..ok },
        Coord { x: 1e9, ..ok },
        Coord { h: -1.0, ..ok },
        Coord { e: 7.0, ..ok },
        Coord { e: f32::NAN, ..ok },
    ] {
        assert_eq!(v.sample(NodeId(2), 10.0, &c), Err(Refused::Coord), "{c:?}");
    }
    assert_eq!(v.refused, 11);
    assert_eq!(v.coord(), Coord::origin(), "nothing refused moved it");
    assert!(v.sample(NodeId(2), 10.0, &ok).is_ok());
    assert_eq!(v.used, 1);
    assert_ne!(v.coord(), Coord::origin());
}

#[test]
fn two_nodes_at_one_point_move_apart_and_settle_on_their_round_trip() {
    let mut a = Vivaldi::new(1);
    let mut b = Vivaldi::new(2);
    for _ in 0..200 {
        let cb = b.coord();
        a.sample(NodeId(2), 20.0, &cb).expect("a good sample");
        let ca = a.coord();
        b.sample(NodeId(1), 20.0, &ca).expect("a good sample");
    }
    let p = a.predict_ms(&b.coord());
    assert!((p - 20.0).abs() < 1.0, "predicted {p} for 20");
    assert!(a.coord().e < 0.1, "sure of itself: {:?}", a.coord());
}

#[test]
fn the_filter_and_peer_memory_are_bounded() {
    let mut v = Vivaldi::new(1);
    let c = Coord { x: 1.0, y: 1.0, h: 0.1, e: 1.0 };
    for i in 0..(MAX_PEERS as u64 * 3) {
        for _ in 0..FILTER * 2 {
            v.sample(NodeId(i + 10), 5.0, &c).expect("a good sample");
        }
    }
    assert_eq!(v.samples.len(), MAX_PEERS);
    assert!(v.samples.values().all(|(q, _)| q.len() == FILTER));
    v.forget(NodeId(MAX_PEERS as u64 * 3 + 9));
    assert_eq!(v.samples.len(), MAX_PEERS - 1);
}

/// Sixty settled nodes on a four-site map, then a liar in site 0: every
/// round, every honest node probes it (a real, short round trip) and it
/// answers with a made-up coordinate that claims to be sure of itself.
/// The median error of the honest nodes before and after `rounds`.
fn with_a_liar(lie: Coord, rounds: usize, seed: u64) -> (f64, f64) {
    let rtt = map(60, 4, &mut Rng::new(seed * 31));
    let mut v: Vec<Vivaldi> = (0..60).map(|i| Vivaldi::new(i as u64 + 1)).collect();
    let mut rng = Rng::new(seed);
    run(&mut v, &rtt, 100, 0.0, &mut rng);
    let before = median_error(&v, &rtt);
    let liar = NodeId(1000);
    for _ in 0..rounds {
        run(&mut v, &rtt, 1, 0.0, &mut rng);
        for (a, node) in v.iter_mut().enumerate() {
            // The liar sits next to site 0's nodes: its real round trip is
            // 1 ms from there, a site's distance from elsewhere.
            let real = rtt[a][0] + 0.2;
            let _ = node.sample(liar, real, &lie);
        }
    }
    (before, median_error(&v, &rtt))
}

#[test]
fn a_lying_peer_cannot_drag_settled_coordinates_away() {
    for (what, lie) in [
        ("at the plane's edge", Coord { x: 9_000.0, y: -9_000.0, h: 0.0, e: 0.0 }),
        ("a second away", Coord { x: 1_000.0, y: 0.0, h: 0.0, e: 0.0 }),
        ("a site's distance off", Coord { x: 200.0, y: 200.0, h: 0.0, e: 0.0 }),
        ("high above the plane", Coord { x: 0.0, y: 0.0, h: 5_000.0, e: 0.0 }),
    ] {
        for seed in 1..=3 {
            let (before, after) = with_a_liar(lie, 60, seed);
            eprintln!("a liar {what}, seed {seed}: honest median error {before:.3} -> {after:.3}");
            assert!(after < 0.10 && after < before + 0.03, "a liar {what}, seed {seed}: {before} -> {after}");
        }
    }
}

#[test]
fn a_peer_cannot_claim_to_be_surer_than_the_floor() {
    // Two identical updates against a peer at the same place: one says it
    // is perfectly sure, one says it is as sure as the floor allows.
    let (mut a, mut b) = (Vivaldi::new(1), Vivaldi::new(1));
    let at = |e| Coord { x: 30.0, y: 0.0, h: 0.1, e };
    a.sample(NodeId(2), 10.0, &at(0.0)).expect("a good sample");
    b.sample(NodeId(2), 10.0, &at(MIN_PEER_ERROR as f32)).expect("a good sample");
    assert_eq!(a.coord(), b.coord());
}

#[test]
fn predictions_stay_within_the_believable_range() {
    let me = Coord::origin();
    let far = Coord { x: MAX_COORD_MS as f32, y: MAX_COORD_MS as f32, h: MAX_COORD_MS as f32, e: 0.5 };
    assert_eq!(me.rtt_ms(&far), MAX_RTT_MS);
    let inf = Coord { x: f32::INFINITY, ..far };
    assert_eq!(me.rtt_ms(&inf), MAX_RTT_MS);
    assert!(me.rtt_ms(&me) >= 0.0);
}
