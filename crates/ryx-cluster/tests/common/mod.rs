//! Shared by the ryx-cluster integration tests.

use std::path::PathBuf;
use std::process::Output;

/// The ryx-cluster binary under test.
pub const CLUSTER_BIN: &str = env!("CARGO_BIN_EXE_ryx-cluster");

/// The ryx-node binary cargo built for this test run (beside ryx-cluster
/// in `target/<profile>/`), or `RYX_NODE_BIN`: tests do not run cargo, so
/// `cargo test -p ryx-cluster` alone needs `cargo build -p ryx-node` first
/// (`cargo test --workspace` builds both). Passed to every ryx-cluster
/// run, which would otherwise build it itself.
pub fn node_bin() -> PathBuf {
    ryx_testkit::workspace_bin("ryx-node", "RYX_NODE_BIN", &["ryx-node", "ryx-core", "ryx-compute", "ryx-control"])
}

/// The stdout of a `ryx-cluster` run that must have succeeded; a failure
/// panics with both streams.
pub fn succeeded(args: &[&str], out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ryx-cluster {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
