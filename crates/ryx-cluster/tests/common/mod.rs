//! Shared by the ryx-cluster integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// The ryx-cluster binary under test.
pub const CLUSTER_BIN: &str = env!("CARGO_BIN_EXE_ryx-cluster");

/// The ryx-node binary next to ryx-cluster, built if missing.
pub fn node_bin() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut guard = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = guard.as_ref() {
        return p.clone();
    }
    let profile_dir = Path::new(CLUSTER_BIN).parent().expect("ryx-cluster has a parent dir");
    let node = profile_dir.join("ryx-node");
    if !node.exists() {
        let target_dir = profile_dir.parent().expect("target dir");
        let profile = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "ryx-node", "--manifest-path"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml"))
            .env("CARGO_TARGET_DIR", target_dir);
        match profile {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        assert!(cmd.status().expect("run cargo build -p ryx-node").success(), "cargo build -p ryx-node failed");
    }
    assert!(node.exists(), "no ryx-node at {}", node.display());
    *guard = Some(node.clone());
    node
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
