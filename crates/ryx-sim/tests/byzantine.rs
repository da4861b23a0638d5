//! Byzantine nodes in the simulator, over many seeds (the ones CI runs):
//! members that run the real core and attack the network besides — forged,
//! replayed, mutated and amplifying datagrams of every kind, votes under
//! invented ids and fresh keys, claims to be a job's home, custody
//! certificates — and lie about results. Each run fails (with the command
//! that replays it) if an honest node panics or breaks a table bound, if
//! the job's digest differs from the single-process reference, or if the
//! honest nodes are not one network by their own links within a minute.

use ryx_sim::{run, Params, Scenario};

fn job(seed: u64) -> Params {
    Params {
        byzantine: 0.1,
        idle_ms: 2_000,
        max_ms: 60_000,
        units: 120,
        unit_kib: 2,
        unit_mib: 0.25,
        unit_ms: 5.0,
        no_baseline: true,
        ..Params::new(Scenario::Job, 30, seed)
    }
}

fn check(p: &Params) {
    let r = run(p).unwrap_or_else(|f| panic!("{f}"));
    let a = r.attacks.as_ref().expect("attack report");
    assert!(a.nodes > 0 && a.sent.values().sum::<u64>() > 0, "nobody attacked: {}", r.command);
    assert!(a.honest_connected, "{}", r.command);
    if let Some(j) = &r.job {
        assert!(j.completed, "job did not complete: {}", r.command);
        assert!(j.digest_matches, "digest {:?} != {}: {}", j.result_digest, j.reference_digest, r.command);
    }
}

/// Seeds of the job scenario per test (two tests run in parallel).
const JOB_SEEDS: u64 = 12;

#[test]
fn byzantine_job_seeds_a() {
    for seed in 1..=JOB_SEEDS {
        check(&job(seed));
    }
}

#[test]
fn byzantine_job_seeds_b() {
    for seed in JOB_SEEDS + 1..=2 * JOB_SEEDS {
        check(&job(seed));
    }
}

#[test]
fn byzantine_job_with_a_third_of_the_nodes_killed_mid_job() {
    for seed in 1..=6 {
        check(&Params { kill: Some(0.3), ..job(seed) });
    }
}

#[test]
fn byzantine_nodes_through_crashes_partitions_and_churn() {
    for seed in 1..=3 {
        check(&Params { byzantine: 0.1, ..Params::new(Scenario::Crash, 100, seed) });
        check(&Params { byzantine: 0.1, ..Params::new(Scenario::Partition, 60, seed) });
        check(&Params { byzantine: 0.1, ..Params::new(Scenario::Churn, 60, seed) });
    }
}
