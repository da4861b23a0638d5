//! Every scenario over several seeds at a few hundred nodes, with generous
//! bounds: these assert behaviour, not speed (timings are for the
//! benchmarks printed by the `ryx-sim` binary).

use ryx_sim::{run, DiscoveryMode, Params, Report, Scenario};

const SEEDS: [u64; 3] = [1, 2, 3];

/// Test parameters: short idle and settle windows keep debug builds quick.
fn params(scenario: Scenario, nodes: usize, seed: u64) -> Params {
    Params {
        idle_ms: 1_000,
        settle_ms: 1_000,
        max_ms: 60_000,
        items: 3,
        energies: vec![2.0, 6.0, 100.0],
        ..Params::new(scenario, nodes, seed)
    }
}

fn run_ok(p: &Params) -> Report {
    match run(p) {
        Ok(r) => r,
        Err(f) => panic!("{f}"),
    }
}

fn assert_joined(r: &Report) {
    let j = &r.join;
    let t = j.join_ms.unwrap_or_else(|| panic!("never joined: {:?}\n{}", j.graph, r.command));
    assert!(t <= 10_000.0, "join took {t} ms: {}", r.command);
    assert!(j.graph.connected, "{}", r.command);
    assert!(j.graph.degree_min >= 4, "{:?}: {}", j.graph, r.command);
    assert!(j.graph.degree_max <= 6, "{:?}: {}", j.graph, r.command);
}

#[test]
fn join_with_seed_nodes() {
    for seed in SEEDS {
        let mut p = params(Scenario::Join, 250, seed);
        p.discovery = DiscoveryMode::SeedNodes;
        let r = run_ok(&p);
        assert_joined(&r);
        assert!(r.join.graph.long_link_fraction > 0.5, "{:?}", r.join.graph);
        let idle = r.idle.as_ref().expect("idle measured");
        assert!(idle.msgs_per_node_per_s > 0.0 && idle.msgs_per_node_per_s < 1_000.0);
        assert_eq!(r.false_detections, 0, "{}", r.command);
    }
}

#[test]
fn join_with_broadcast() {
    for seed in SEEDS {
        let mut p = params(Scenario::Join, 150, seed);
        p.discovery = DiscoveryMode::Broadcast;
        assert_joined(&run_ok(&p));
    }
}

#[test]
fn spread_reaches_everyone_and_energy_limits_reach() {
    for seed in SEEDS {
        let r = run_ok(&params(Scenario::Spread, 200, seed));
        assert_joined(&r);
        let s = r.spread.as_ref().expect("spread report");
        assert_eq!(s.coverage, 1.0, "{}", r.command);
        let t100 = s.t100_ms.expect("reached 100 %");
        assert!(t100 <= 5_000.0, "t100 {t100}: {}", r.command);
        assert!(s.t50_ms <= s.t99_ms && s.t99_ms <= s.t100_ms);
        assert!(s.payload_msgs_per_node >= 0.99, "every node but the origin got a payload");
        let series = s.series.as_ref().expect("series");
        assert!(series.all_reached, "{}", r.command);
        // Coverage grows with energy; low energy stays local.
        let sweep = &s.energy_sweep;
        assert_eq!(sweep.len(), 3);
        assert!(sweep[0].coverage < 0.5, "energy 2: {:?}", sweep[0]);
        assert!(sweep[0].max_hops <= sweep[0].reach_hops);
        assert!(sweep[1].max_hops <= sweep[1].reach_hops);
        assert!(sweep[0].coverage <= sweep[1].coverage && sweep[1].coverage <= sweep[2].coverage);
        assert_eq!(sweep[2].coverage, 1.0);
    }
}

#[test]
fn spread_survives_loss() {
    let mut p = params(Scenario::Spread, 200, 4);
    p.loss = 0.1;
    p.dup = 0.02;
    p.energies = vec![];
    let r = run_ok(&p);
    assert_joined(&r);
    let s = r.spread.as_ref().expect("spread report");
    assert_eq!(s.coverage, 1.0, "{}", r.command);
    assert!(s.series.as_ref().is_some_and(|x| x.all_reached));
}

#[test]
fn crash_is_detected_and_repaired() {
    for seed in SEEDS {
        let r = run_ok(&params(Scenario::Crash, 250, seed));
        assert_joined(&r);
        let c = r.crash.as_ref().expect("crash report");
        assert_eq!(c.killed, 75);
        let detect = c.detect_ms.unwrap_or_else(|| panic!("never detected: {}", r.command));
        let repair = c.repair_ms.unwrap_or_else(|| panic!("never repaired: {}", r.command));
        assert!(detect <= 3_000.0, "detect {detect}: {}", r.command);
        assert!(repair <= 3_000.0, "repair {repair}: {}", r.command);
        assert!(c.connected, "{}", r.command);
        assert!(c.after.degree_min >= 4, "{:?}", c.after);
        assert_eq!(c.false_detections, 0, "{}", r.command);
    }
}

#[test]
fn partition_heals_and_converges() {
    for seed in SEEDS {
        let mut p = params(Scenario::Partition, 200, seed);
        p.partition_ms = 5_000;
        let r = run_ok(&p);
        let x = r.partition.as_ref().expect("partition report");
        assert!(x.split_detect_ms.is_some(), "{}", r.command);
        assert!(x.sides_connected, "{}", r.command);
        assert_eq!(x.side_coverage, [1.0, 1.0], "{}", r.command);
        let remerge = x.remerge_ms.unwrap_or_else(|| panic!("no remerge: {}", r.command));
        assert!(remerge <= 60_000.0, "{}", r.command);
        assert!(x.converged, "{}", r.command);
        assert!(x.after.connected);
        assert_eq!(x.false_detections, 0, "{}", r.command);
    }
}

#[test]
fn partition_heals_with_seed_nodes() {
    let mut p = params(Scenario::Partition, 250, 5);
    p.partition_ms = 5_000;
    p.discovery = DiscoveryMode::SeedNodes;
    let r = run_ok(&p);
    let x = r.partition.as_ref().expect("partition report");
    assert!(x.remerge_ms.is_some(), "{}", r.command);
    assert!(x.converged, "{}", r.command);
}

#[test]
fn paused_node_is_not_declared_dead() {
    for seed in 1..=5 {
        let r = run_ok(&params(Scenario::Pause, 200, seed));
        let p = r.pause.as_ref().expect("pause report");
        assert_eq!(p.false_detections, 0, "{}", r.command);
        assert!(p.neighbors_after >= 4, "{p:?}: {}", r.command);
    }
}

#[test]
fn churn_recovers() {
    for seed in [1, 2] {
        let mut p = params(Scenario::Churn, 200, seed);
        p.churn_ms = 5_000;
        let r = run_ok(&p);
        let c = r.churn.as_ref().expect("churn report");
        assert!(c.restarts > 0 && c.crashes == c.restarts);
        assert!(c.recover_ms.is_some(), "{}", r.command);
        assert!(c.after.connected, "{}", r.command);
        assert_eq!(c.false_detections, 0, "{}", r.command);
    }
}

#[test]
fn slow_nodes_are_tolerated() {
    let mut p = params(Scenario::Crash, 150, 6);
    p.slow = 0.1;
    p.slow_ms = 50;
    let r = run_ok(&p);
    assert_joined(&r);
    let c = r.crash.as_ref().expect("crash report");
    assert!(c.detect_ms.is_some() && c.connected, "{}", r.command);
}

#[test]
fn wire_codec_round_trips_every_datagram() {
    let mut p = params(Scenario::Spread, 60, 7);
    p.wire = true;
    p.items = 1;
    p.energies = vec![];
    let r = run_ok(&p);
    assert_joined(&r);
    assert!(r.totals.bytes_sent.is_some_and(|b| b > 0));
    assert!(r.idle.as_ref().and_then(|i| i.bytes_per_node_per_s).is_some());
    assert_eq!(r.spread.as_ref().map(|s| s.coverage), Some(1.0));
}

#[test]
fn a_run_replays_exactly_from_its_seed() {
    let mut p = params(Scenario::Crash, 120, 11);
    p.loss = 0.05;
    p.dup = 0.05;
    let strip = |r: Report| {
        let mut v = serde_json::to_value(&r).expect("serializes");
        v.as_object_mut().map(|o| o.remove("wall_ms"));
        v
    };
    let a = strip(run_ok(&p));
    let b = strip(run_ok(&p));
    assert_eq!(a, b);
    p.seed = 12;
    assert_ne!(a, strip(run_ok(&p)), "another seed, another run");
}

/// Job-scenario parameters small enough for a test: 30 nodes, 4 units per
/// node of 2 KiB real bytes standing for 256 KiB each.
fn job_params(seed: u64) -> Params {
    Params {
        idle_ms: 0,
        // Time for the final summary to reach every live node after the
        // result: diffusion, or after kills one anti-entropy round (5 s).
        settle_ms: 6_000,
        max_ms: 60_000,
        units: 120,
        unit_kib: 2,
        unit_mib: 0.25,
        unit_ms: 5.0,
        ..Params::new(Scenario::Job, 30, seed)
    }
}

fn assert_job_right(r: &Report) -> &ryx_sim::work::JobRunReport {
    let coverage = 0.99;
    let j = r.job.as_ref().expect("job report");
    assert!(j.completed, "job did not complete ({:?}, {:?}): {}", j.state, j.error, r.command);
    assert!(j.digest_matches, "digest {:?} != reference {}: {}", j.result_digest, j.reference_digest, r.command);
    assert_eq!(j.result_digest.as_deref(), Some(j.reference_digest.as_str()));
    assert!(j.job_ms.is_some_and(|t| t > 0.0 && t <= 60_000.0), "{}", r.command);
    assert!(j.summary_coverage >= coverage, "summary reached {:.2}: {}", j.summary_coverage, r.command);
    j
}

#[test]
fn job_result_equals_the_reference_and_scales_measurably() {
    for seed in [1, 2] {
        let r = run_ok(&job_params(seed));
        let j = assert_job_right(&r);
        assert!((120..=130).contains(&j.units), "units cut at line ends: {}", j.units);
        let stats = j.stats.as_ref().expect("stats");
        assert!(stats.results >= 2 * j.units as u64, "every unit ran twice: {stats:?}");
        assert!(stats.workers >= 2, "work spread beyond the home: {stats:?}");
        let eff = j.scaling_efficiency.expect("efficiency measured");
        assert!(eff > 0.0 && eff <= 1.5, "efficiency {eff}: {}", r.command);
    }
}

#[test]
fn a_job_over_data_spread_on_hundreds_of_nodes_runs_where_it_lies_and_is_exact() {
    for (seed, redundancy) in [(1, 1), (2, 2)] {
        // At redundancy 1 no copies are kept (`--copies 1`), so what the
        // driver fetched is what the job moved.
        let copies = if redundancy == 1 { 1 } else { 3 };
        let p = Params { dataset: true, redundancy, copies, units: 600, no_baseline: true, ..job_params(seed) };
        let p = Params { nodes: 200, ..p };
        let r = run_ok(&p);
        let j = assert_job_right(&r);
        assert_eq!(j.upload_ms, None, "nothing uploaded: {}", r.command);
        let stats = j.stats.as_ref().expect("stats");
        assert!(stats.results >= u64::from(redundancy) * j.units as u64, "{stats:?}");
        assert!(stats.workers >= 150, "the holders ran their own units: {stats:?}: {}", r.command);
        if redundancy == 1 {
            // Holders run their own chunks: only steals by idle neighbours
            // move one.
            let moved = j.driver.fetched_mib / 0.25;
            assert!(moved < 0.5 * j.units as f64, "{moved} units' bytes moved: {}", r.command);
        }
    }
}

#[test]
fn job_survives_half_the_nodes_killed_mid_job() {
    for seed in [1, 2] {
        let p = Params { kill: Some(0.5), no_baseline: true, ..job_params(seed) };
        let r = run_ok(&p);
        // Every survivor comes to hold the final summary: a node that
        // missed its diffusion gets it from the records' anti-entropy walk.
        let j = assert_job_right(&r);
        assert!(j.summary_reach_ms.is_some(), "some survivor never held the summary: {}", r.command);
        assert_eq!(j.killed, 15, "{}", r.command);
        assert!(j.killed_at_progress.is_some(), "the kill struck mid-job: {}", r.command);
        let c = j.copies_at_kill.as_ref().expect("copies counted at the kill");
        assert!(c.min >= 3, "every chunk had the upload's three copies: {c:?}");
        assert_eq!(c.lost, 0, "the replication tree left a copy of every chunk on a survivor: {c:?}");
    }
}

#[test]
fn job_split_by_a_partition_settles_on_one_home_after_the_heal() {
    for seed in [1, 2, 3] {
        let p = Params {
            split_at: Some(0.3),
            partition_ms: 8_000,
            settle_ms: 20_000,
            no_baseline: true,
            ..job_params(seed)
        };
        let r = run_ok(&p);
        let j = assert_job_right(&r);
        let sp = j.split.as_ref().expect("split report");
        assert_eq!(sp.sides.iter().sum::<usize>(), 30, "{}", r.command);
        assert_eq!(sp.homes_after, 1, "two homes of one job remained after the heal: {}", r.command);
        assert!(sp.agreed_ms.is_some(), "the halves never agreed on the job: {}", r.command);
        if sp.homes_before_heal == 2 {
            assert!(sp.stepped_down >= 1, "{}", r.command);
        }
    }
}

#[test]
fn job_outvotes_liars_and_tolerates_slow_nodes() {
    for seed in [1, 2] {
        let p = Params { liars: 0.125, redundancy: 3, slow: 0.2, no_baseline: true, ..job_params(seed) };
        let r = run_ok(&p);
        let j = assert_job_right(&r);
        assert!(j.liars > 0, "{}", r.command);
        assert!(j.driver.lies > 0, "the liars lied: {}", r.command);
        let stats = j.stats.as_ref().expect("stats");
        assert!(stats.disagreements > 0, "lies were caught: {stats:?} {}", r.command);
    }
}

#[test]
fn query_waves_reach_every_node_once_along_a_shallow_tree() {
    for seed in SEEDS {
        let p = Params { queries: 5, ..params(Scenario::Query, 300, seed) };
        let r = run_ok(&p);
        assert_joined(&r);
        let q = r.query.as_ref().expect("query report");
        assert_eq!(
            (q.queries, q.complete),
            (5, 5),
            "every node answered each query once: {:?}\n{}",
            q.waves,
            r.command
        );
        assert!(q.by_tree >= 4, "the tree alone answers a settled network: {:?}\n{}", q.waves, r.command);
        for w in &q.waves {
            if w.tree && w.answered as usize == w.live {
                // Two messages per node along a tree.
                assert!(w.msgs_per_node <= 2.0, "{w:?}\n{}", r.command);
                // A path between two nodes of a tree is at most twice its depth.
                assert!(w.depth <= 4 * w.eccentricity.max(1), "{w:?}\n{}", r.command);
            } else if !w.tree {
                // Two messages per link at most: degree ≤ 6.
                assert!(w.msgs_per_node <= 6.0, "{w:?}\n{}", r.command);
            }
        }
    }
}

#[test]
fn aggregates_converge_with_their_mass_and_a_rack_killed_is_one_incident() {
    for seed in SEEDS {
        let p = Params { rounds: 40, racks: 10, ..params(Scenario::Monitor, 200, seed) };
        let r = run_ok(&p);
        assert_joined(&r);
        let m = r.monitor.as_ref().expect("monitor report");
        let last = m.rounds.last().expect("rounds");
        assert!(last.max_err < 0.01, "every node within 1 % after 40 rounds: {last:?}\n{}", r.command);
        let first = &m.rounds[0];
        assert!(last.max_err < first.max_err / 10.0, "the error fell: {first:?} -> {last:?}\n{}", r.command);
        // Exact but for a link disconnected while an exchange was in
        // flight: its two ends settle from views one message apart (seed 3
        // of this test: 5.8e-9; seed 2 since the prober's fixed cadence
        // moved the events: 3.1e-7 of a mean of 1, after 7.4e-7 at round
        // 15; the fix is a `disconnect` carrying the link's totals, not
        // built yet). A lost share of a node's mass would be 1e-3 or more.
        assert!(m.settled_mass_err < 1e-6, "mass conserved: {}\n{}", m.settled_mass_err, r.command);
        let (_, n, e) = m.group_count.clone().expect("a rack's count");
        assert!(n > 0 && e < 0.5, "a rack's count within half a node: {:?}\n{}", m.group_count, r.command);
        let i = m.incident.as_ref().expect("incident phase");
        assert_eq!((i.notifications, i.other_notifications), (1, 0), "{i:?}\n{}", r.command);
        assert_eq!(i.final_members, i.killed, "every dead node of the rack in it: {i:?}\n{}", r.command);
        assert_eq!(i.named, i.live, "every live node names it: {i:?}\n{}", r.command);
    }
}

#[test]
fn slow_and_lossy_nodes_are_named_and_stops_under_loss_raise_no_false_alert() {
    for seed in SEEDS {
        let p = Params {
            minutes: 4.0,
            loss: 0.05,
            stalled: 0.02,
            stall_s: 20,
            anomalous: 0.02,
            ..params(Scenario::Alerts, 200, seed)
        };
        let r = run_ok(&p);
        assert_joined(&r);
        let a = r.alerts.as_ref().expect("alerts report");
        assert_eq!((a.slow, a.lossy), (2, 2), "{a:?}");
        assert_eq!(a.false_claims, 0, "no claim about a healthy node: {a:?}\n{}", r.command);
        assert_eq!(a.recall, Some(1.0), "every slow or lossy node named so: {a:?}\n{}", r.command);
        assert_eq!(a.precision, Some(1.0), "and no other: {a:?}\n{}", r.command);
        assert!(a.stops > 0 && a.stops_named * 10 >= a.stops * 9, "stops seen as deaths: {a:?}\n{}", r.command);
        assert!(a.firing_at_end.is_empty(), "every incident resolved once its nodes were back or healed: {a:?}");
        assert_eq!(a.duplicate_notifications, 0, "one raise and one end per incident: {a:?}\n{}", r.command);
        let down = a.notifications.get("nodes_down").copied().unwrap_or(0);
        assert_eq!(down, 2 * a.down_incidents, "each death incident raised once and resolved once: {a:?}");
    }
}

/// scikit-learn's digits (Debian's `python3-sklearn`): 1,797 rows of 64
/// pixels and a digit.
const DIGITS: &str = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz";

#[test]
fn gossip_learning_approaches_one_process_on_all_the_rows_with_loss() {
    let test = "gossip_learning_approaches_one_process_on_all_the_rows_with_loss";
    if !std::path::Path::new(DIGITS).exists() {
        ryx_testkit::skip(test, ryx_testkit::Needs::Sklearn, &format!("no {DIGITS}"));
        return;
    }
    let dir = ryx_testkit::ScratchDir::new("digits");
    let csv = dir.path().join("digits.csv");
    let out = std::process::Command::new("gzip").args(["-dc", DIGITS]).output().expect("gzip runs");
    assert!(out.status.success(), "gzip -dc {DIGITS}");
    std::fs::write(&csv, out.stdout).expect("write the rows");
    for seed in [1, 2] {
        let p = Params {
            data: Some(csv.display().to_string()),
            cycles: 100,
            loss: 0.05,
            idle_ms: 0,
            ..params(Scenario::Learn, 100, seed)
        };
        let r = run_ok(&p);
        let l = r.learn.as_ref().expect("learn report");
        assert_eq!((l.features, l.classes, l.train_rows + l.test_rows), (64, 10, 1797), "{}", r.command);
        assert!(l.reference > 0.93, "the single-process reference learns the digits: {l:?}");
        let last = l.cycles.last().expect("measured");
        // Against one process taking as many steps (docs/learning.md: the
        // network matches it). A tracker that loses its mass, or models
        // that never agree, stay far below.
        let same = l.same_steps;
        assert!(last.mean >= same - 0.02, "mean accuracy {} against one process's {same}: {}", last.mean, r.command);
        assert!(last.min >= same - 0.04, "every node's model: {} against {}: {}", last.min, same, r.command);
        assert!(l.mass_err < 1e-3, "the tracker keeps its mass: {}: {}", l.mass_err, r.command);
        let est = last.estimated.expect("the nodes estimate their hold-out accuracy");
        assert!((est - last.mean).abs() < 0.05, "the hold-out estimate {est} near the test accuracy {}", last.mean);
    }
}

#[test]
fn long_lossy_paths_are_not_accused_for_their_length() {
    // Sites 90–450 ms apart, 5 % loss: with fixed windows (300 ms silence,
    // 250 ms to answer) seeds 1–3 convicted 4, 13 and 3 live nodes, since
    // no answer to a suspect's probe can come back inside 250 ms on a
    // 450 ms path; the windows now grow with each link's round trips.
    for seed in SEEDS {
        let p = Params { sites: 5, site_scale: 3.0, loss: 0.05, minutes: 3.0, ..params(Scenario::Topology, 100, seed) };
        let r = run_ok(&p);
        assert_joined(&r);
        assert!(r.false_detections <= 1, "{} false detections: {}", r.false_detections, r.command);
    }
}

#[test]
fn links_settle_on_a_site_map_and_coordinates_predict_it() {
    for seed in SEEDS {
        let p = Params { sites: 5, minutes: 4.0, ..params(Scenario::Topology, 100, seed) };
        let r = run_ok(&p);
        assert_joined(&r);
        let t = r.topology.as_ref().expect("topology report");
        let last = t.points.last().expect("points");
        assert!(t.connected, "{}", r.command);
        assert!(
            t.diameter as f64 <= t.diameter_bound.ceil(),
            "diameter {} > {:.1}\n{}",
            t.diameter,
            t.diameter_bound,
            r.command
        );
        // Links are far shorter than random pairs; most stay inside a site.
        assert!(t.link_rtt_reduction >= 0.4, "{t:?}\n{}", r.command);
        assert!(last.inside_site.unwrap_or(0.0) >= 0.6, "{last:?}\n{}", r.command);
        // Coordinates predict round trips (generous: the figures are in
        // docs/self-organisation.md) and the links do not churn.
        assert!(last.coord_err_median.unwrap_or(1.0) < 0.2, "{last:?}\n{}", r.command);
        assert!(t.link_churn_per_node_min <= 1.5, "{t:?}\n{}", r.command);
        assert_eq!(t.coords_refused, 0, "{}", r.command);
        assert!(
            t.coords_outliers * 5 < t.coords_used,
            "outliers {} of {} samples: {}",
            t.coords_outliers,
            t.coords_used,
            r.command
        );
        assert_eq!(r.false_detections, 0, "{}", r.command);
    }
}

#[test]
fn tokens_balance_over_the_overlay_without_loss() {
    for seed in SEEDS {
        let p = Params { tokens: 20_000, rounds: 50, ..params(Scenario::Balance, 200, seed) };
        let r = run_ok(&p);
        assert_joined(&r);
        let b = r.balance.as_ref().expect("balance report");
        assert_eq!(b.tokens_at_end, 20_000, "{}", r.command);
        assert_eq!(b.sources, 2, "1 % of the nodes");
        let last = b.points.last().expect("points");
        // Generous bounds: the figures are in docs/self-organisation.md.
        assert!(last.max_over_fair <= 1.2, "{last:?}\n{}", r.command);
        assert!(b.moves as f64 <= 2.0 * b.lower_bound as f64, "{b:?}\n{}", r.command);
        assert!(b.returns * 20 < b.moves, "{b:?}\n{}", r.command);
        assert!(b.rounds_to_1_05.is_some_and(|n| n <= 50), "{b:?}\n{}", r.command);
        assert!(b.reversals * 20 < b.moves, "{b:?}\n{}", r.command);
        // Tokens diffusing directly get there too, more slowly.
        let blind = run_ok(&Params { beta: 0.0, ..p.clone() });
        let bb = blind.balance.as_ref().expect("balance report");
        assert_eq!(bb.tokens_at_end, 20_000);
        assert!(bb.points.last().expect("points").max_over_fair < 2.0, "{bb:?}");
    }
}
