//! What every Ryx crate's tests share.
//!
//! **A test that cannot run here says so, and never passes in silence
//! where it was expected to run.** Tests that need something a machine may
//! lack (a browser, root for network namespaces, a Docker engine, the
//! shared Loghub data) call [`skip`] with the capability. It prints
//! `SKIPPED`, and panics instead when `RYX_REQUIRE` names that capability:
//! `.ci/run` names every one it installed or found, so a test it expected
//! to run cannot turn green by skipping.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a test may need that a machine may lack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Headless Chromium and chromedriver.
    Browser,
    /// Root, `ip` and network namespaces.
    Netns,
    /// A Docker engine that answers.
    Docker,
    /// The Loghub samples of the shared data.
    Data,
    /// Standard tools used as oracles (`wc`, `grep`, `sort`, `python3`).
    Tools,
}

impl Needs {
    /// The name used in `RYX_REQUIRE`.
    pub fn name(self) -> &'static str {
        match self {
            Needs::Browser => "browser",
            Needs::Netns => "netns",
            Needs::Docker => "docker",
            Needs::Data => "data",
            Needs::Tools => "tools",
        }
    }
}

/// Environment variable listing (comma-separated) the capabilities whose
/// tests must run.
pub const REQUIRE: &str = "RYX_REQUIRE";

/// Whether `RYX_REQUIRE` names `need` (or `all`).
pub fn required(need: Needs) -> bool {
    std::env::var(REQUIRE).is_ok_and(|v| v.split(',').map(str::trim).any(|x| x == need.name() || x == "all"))
}

/// Reports that `test` cannot run here for `why`: a visible skip, or a
/// failure where `need` is required.
///
/// # Panics
///
/// When `RYX_REQUIRE` names `need`.
pub fn skip(test: &str, need: Needs, why: &str) {
    assert!(
        !required(need),
        "{test} cannot run here ({why}), and {REQUIRE} says tests needing {} must run",
        need.name()
    );
    eprintln!("SKIPPED {test}: {why}");
}

/// The Loghub samples: `RYX_LOGHUB_DIR`, else `shared/data/loghub` beside
/// the repository (the project's shared data). `None` if neither holds
/// `HDFS/HDFS_2k.log`.
pub fn loghub_dir() -> Option<PathBuf> {
    let beside = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/loghub"));
    let dir = std::env::var_os("RYX_LOGHUB_DIR").map(PathBuf::from).unwrap_or(beside);
    dir.join("HDFS").join("HDFS_2k.log").is_file().then_some(dir)
}

/// Waits until `f` holds or `timeout` passes, polling every 25 ms; returns
/// how long it took.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_capability_turns_a_skip_into_a_failure() {
        // Runs in its own process per test binary; the variable is ours.
        std::env::set_var(REQUIRE, "browser, data");
        assert!(required(Needs::Browser) && required(Needs::Data));
        assert!(!required(Needs::Docker));
        skip("demo", Needs::Docker, "no engine");
        let r = std::panic::catch_unwind(|| skip("demo", Needs::Browser, "not installed"));
        assert!(r.is_err(), "a required skip must fail");
        std::env::set_var(REQUIRE, "all");
        assert!(required(Needs::Netns));
        std::env::remove_var(REQUIRE);
        assert!(!required(Needs::Netns));
    }

    #[test]
    fn waiting_ends_when_the_condition_holds_or_the_deadline_passes() {
        let mut n = 0;
        assert!(wait_until(Duration::from_secs(5), || {
            n += 1;
            n >= 3
        })
        .is_some());
        assert!(wait_until(Duration::from_millis(60), || false).is_none());
    }
}
