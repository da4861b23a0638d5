//! Seed sweeps: one scenario over a range of seeds, every failure with the
//! command that replays it, within a wall-clock budget.

use crate::params::Params;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A range of seeds, `first..last` with `last` included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Seeds {
    /// First seed run.
    pub first: u64,
    /// Last seed run.
    pub last: u64,
}

impl std::str::FromStr for Seeds {
    type Err = String;
    fn from_str(s: &str) -> Result<Seeds, String> {
        let bad = || format!("seeds are FIRST..LAST (last included), e.g. 1..1000; got {s:?}");
        let (a, b) = s.split_once("..").ok_or_else(bad)?;
        let (first, last) = (a.trim().parse::<u64>().map_err(|_| bad())?, b.trim().parse::<u64>().map_err(|_| bad())?);
        if first > last {
            return Err(bad());
        }
        Ok(Seeds { first, last })
    }
}

/// A seed whose run broke an invariant.
#[derive(Clone, Debug, Serialize)]
pub struct SweepFailure {
    /// The seed.
    pub seed: u64,
    /// What broke.
    pub violation: String,
    /// The command that replays it.
    pub replay: String,
}

/// What a sweep found.
#[derive(Clone, Debug, Serialize)]
pub struct SweepReport {
    /// The command that runs the sweep again.
    pub command: String,
    /// Seeds run to the end.
    pub seeds_run: u64,
    /// Of those, passed.
    pub passed: u64,
    /// The others, by seed.
    pub failed: Vec<SweepFailure>,
    /// Seeds of the range not started because the budget ran out.
    pub not_started: u64,
    /// Wall-clock time, milliseconds.
    pub wall_ms: u64,
}

/// Runs `p` for every seed of `seeds` on `threads` threads, starting no new
/// seed once `budget` has passed (a zero budget: no limit).
pub fn sweep(p: &Params, seeds: Seeds, budget: Duration, threads: usize) -> SweepReport {
    let start = Instant::now();
    let next = AtomicU64::new(seeds.first);
    let failed = Mutex::new(Vec::new());
    let (run, passed) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                if !budget.is_zero() && start.elapsed() >= budget {
                    break;
                }
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed > seeds.last {
                    break;
                }
                let mut one = p.clone();
                one.seed = seed;
                one.json = false;
                one.progress = false;
                let outcome = crate::scenario::run(&one);
                run.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Ok(_) => {
                        passed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(f) => {
                        let failure = SweepFailure { seed, violation: f.violation.to_string(), replay: f.command };
                        failed.lock().unwrap_or_else(|e| e.into_inner()).push(failure);
                    }
                }
            });
        }
    });
    let mut failed = failed.into_inner().unwrap_or_else(|e| e.into_inner());
    failed.sort_by_key(|f| f.seed);
    let seeds_run = run.into_inner();
    let total = seeds.last - seeds.first + 1;
    let mut command = p.command();
    if let Some(at) = command.find(" --seed ") {
        let rest = &command[at + 8..];
        let end = rest.find(' ').map_or(command.len(), |i| at + 8 + i);
        command.replace_range(at..end, &format!(" --seeds {}..{}", seeds.first, seeds.last));
    }
    if !budget.is_zero() {
        command.push_str(&format!(" --budget-s {}", budget.as_secs()));
    }
    SweepReport {
        command,
        seeds_run,
        passed: passed.into_inner(),
        failed,
        not_started: total.saturating_sub(seeds_run),
        wall_ms: start.elapsed().as_millis() as u64,
    }
}

impl SweepReport {
    /// The report for a person.
    pub fn human(&self) -> String {
        let mut s = format!(
            "{}: {} seeds run, {} passed, {} failed, {} not started (budget), {:.1} s wall\n",
            self.command,
            self.seeds_run,
            self.passed,
            self.failed.len(),
            self.not_started,
            self.wall_ms as f64 / 1000.0
        );
        for f in &self.failed {
            s.push_str(&format!("  seed {}: {}\n    replay with: {}\n", f.seed, f.violation, f.replay));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_as_an_inclusive_range() {
        assert_eq!("1..1000".parse::<Seeds>(), Ok(Seeds { first: 1, last: 1000 }));
        assert_eq!("7..7".parse::<Seeds>(), Ok(Seeds { first: 7, last: 7 }));
        for bad in ["", "5", "9..3", "a..b", "1..", "..4", "1...4"] {
            assert!(bad.parse::<Seeds>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_sweep_runs_every_seed_and_names_the_command_that_repeats_it() {
        let p = Params::new(crate::params::Scenario::Join, 12, 1);
        let r = sweep(&p, Seeds { first: 3, last: 6 }, Duration::ZERO, 2);
        assert_eq!((r.seeds_run, r.passed, r.not_started), (4, 4, 0), "{}", r.human());
        assert!(r.failed.is_empty());
        assert!(r.command.contains("--seeds 3..6") && !r.command.contains("--seed "), "{}", r.command);
    }
}
