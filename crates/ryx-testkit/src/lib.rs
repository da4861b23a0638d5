//! What every Ryx crate's tests share.
//!
//! **A test that cannot run here says so, and never passes in silence
//! where it was expected to run.** Tests that need something a machine may
//! lack (a browser, root for network namespaces, a Docker engine, the
//! shared Loghub data) call [`skip`] with the capability. It prints
//! `SKIPPED`, and panics instead when `RYX_REQUIRE` names that capability:
//! `.ci/run` names every one it installed or found, so a test it expected
//! to run cannot turn green by skipping.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

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
    /// Prometheus Alertmanager (`prometheus-alertmanager`, Debian's).
    Alertmanager,
    /// scikit-learn's bundled datasets (Debian's `python3-sklearn`).
    Sklearn,
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
            Needs::Alertmanager => "alertmanager",
            Needs::Sklearn => "sklearn",
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

/// A port the OS hands out that is free on 127.0.0.1 for both UDP and TCP
/// (a node listens on both with one number). Tests never pick port
/// numbers themselves: two test binaries running at once, or anything else
/// on the machine, would collide with a fixed one.
///
/// # Panics
///
/// When the OS gives no such port in 100 tries.
pub fn free_port() -> u16 {
    free_port_where(|_| true)
}

/// Like [`free_port`], also passing `also` (another bind the caller needs
/// the port to be free for).
///
/// # Panics
///
/// When the OS gives no such port in 100 tries.
pub fn free_port_where(also: impl Fn(u16) -> bool) -> u16 {
    for _ in 0..100 {
        let Ok(udp) = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)) else { continue };
        let Ok(port) = udp.local_addr().map(|a| a.port()) else { continue };
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok();
        // Released before `also` binds the port its own way.
        drop(udp);
        if tcp && also(port) {
            return port;
        }
    }
    panic!("the OS gave no port free for both UDP and TCP on 127.0.0.1 in 100 tries");
}

/// A binary of another package of this workspace, as Cargo built it for
/// this test run: `$env` if set, else `name` in the profile directory this
/// test executable runs from (`target/<profile>/deps/..`), where Cargo puts
/// every binary of the workspace it builds.
///
/// Cargo builds a package's binaries for that package's integration tests
/// only (`CARGO_BIN_EXE_<name>`), and a test must not run Cargo itself, so
/// the binary has to have been built by the same `cargo test` (as
/// `cargo test --workspace` or `cargo test -p <this> -p <its package>` do)
/// or before.
///
/// # Panics
///
/// With the command that builds it, when the binary is missing or older
/// than a source file of the crates it is built from (`crates`, the
/// package `name`'s included; see [`newer_source`]), so that a test never
/// runs a stale binary.
pub fn workspace_bin(name: &str, env: &str, crates: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe.parent().and_then(Path::parent).expect("the test runs from target/<profile>/deps");
    let profile = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
    let build = match profile {
        "debug" => format!("cargo build -p {name}"),
        "release" => format!("cargo build --release -p {name}"),
        other => format!("cargo build --profile {other} -p {name}"),
    };
    let bin = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        panic!(
            "no {name} binary at {}: build it first ({build}, or test with `cargo test --workspace`), or set {env}",
            bin.display()
        );
    }
    if let Some(src) = newer_source(&bin, crates) {
        panic!(
            "{} is older than {}: rebuild it ({build}, or test with `cargo test --workspace`), or set {env}",
            bin.display(),
            src.display()
        );
    }
    bin
}

/// A source file of the workspace crates `crates` (their directories under
/// `crates/`: the Rust files of `src/`, `build.rs`, and the dashboard's
/// `ui/` they embed; not their tests) modified after `bin` was: `bin` was
/// not built from this tree. `None` also when `bin` cannot be read.
pub fn newer_source(bin: &Path, crates: &[&str]) -> Option<PathBuf> {
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok()?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rust = |p: &Path| p.extension().is_some_and(|e| e == "rs");
    crates.iter().map(|c| workspace.join("crates").join(c)).find_map(|dir| {
        newer_than(&dir.join("src"), built, &rust)
            .or_else(|| newer_than(&dir.join("build.rs"), built, &rust))
            .or_else(|| newer_than(&dir.join("ui"), built, &|_| true))
    })
}

/// A file at or under `path` that `counts` and was modified after `t`
/// (hidden entries aside).
fn newer_than(path: &Path, t: SystemTime, counts: &dyn Fn(&Path) -> bool) -> Option<PathBuf> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        return (counts(path) && meta.modified().is_ok_and(|m| m > t)).then(|| path.to_path_buf());
    }
    let entries = std::fs::read_dir(path).ok()?;
    entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .find_map(|e| newer_than(&e.path(), t, counts))
}

/// A fresh directory under the system's temp dir, removed (with what is in
/// it) when dropped; `name` keeps concurrent tests apart.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `$TMPDIR/ryx-<name>-<pid>-<n>` (empty).
    pub fn new(name: &str) -> ScratchDir {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ryx-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        ScratchDir(p)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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

    #[test]
    fn a_free_port_is_free_for_udp_and_tcp() {
        let p = free_port();
        assert_ne!(p, 0);
        let _u = UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).expect("udp");
        let _t = TcpListener::bind((Ipv4Addr::LOCALHOST, p)).expect("tcp");
        let q = free_port_where(|q| q != p);
        assert_ne!(q, p);
    }

    #[test]
    fn a_missing_workspace_binary_names_the_build_command() {
        std::env::remove_var("RYX_TESTKIT_NO_SUCH_BIN");
        let r = std::panic::catch_unwind(|| workspace_bin("ryx-no-such-bin", "RYX_TESTKIT_NO_SUCH_BIN", &[]));
        let msg = r.expect_err("a missing binary fails");
        let msg = msg.downcast_ref::<String>().expect("message");
        assert!(msg.contains("cargo build") && msg.contains("-p ryx-no-such-bin"), "{msg}");
        std::env::set_var("RYX_TESTKIT_NO_SUCH_BIN", "/x/y");
        assert_eq!(workspace_bin("ryx-no-such-bin", "RYX_TESTKIT_NO_SUCH_BIN", &[]), PathBuf::from("/x/y"));
        std::env::remove_var("RYX_TESTKIT_NO_SUCH_BIN");
    }

    #[test]
    fn a_binary_older_than_a_source_is_stale() {
        let dir = std::env::temp_dir().join(format!("ryx-testkit-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let bin = dir.join("bin");
        std::fs::write(&bin, b"").expect("write");
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        std::fs::File::options().write(true).open(&bin).and_then(|f| f.set_modified(old)).expect("set mtime");
        assert!(newer_source(&bin, &["ryx-testkit"]).is_some_and(|p| p.ends_with("src/lib.rs")));
        std::fs::File::options().write(true).open(&bin).and_then(|f| f.set_modified(SystemTime::now())).expect("mtime");
        assert_eq!(newer_source(&bin, &["ryx-testkit"]), None);
        assert_eq!(newer_source(&dir.join("missing"), &["ryx-testkit"]), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
