//! Finding the `ryx-node` binary, and building it when `ryx-cluster` runs
//! from its Cargo workspace.
//!
//! Order: `--node-bin` / `RYX_NODE_BIN`; else a `ryx-node` next to this
//! executable (Cargo puts both in `target/<profile>/`); else `ryx-node` on
//! `PATH`. `cargo run -p ryx-cluster` does not build `ryx-node`, so when
//! this executable sits in a Cargo target directory of the workspace it
//! was compiled from and that workspace is still there, `ryx-cluster` runs
//! `cargo build -p ryx-node` with the same profile and target directory
//! first — always when started by `cargo run` (so the node is never stale;
//! a no-op build takes a fraction of a second), and otherwise only when the
//! sibling binary is missing.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Name of the node binary.
const NODE: &str = "ryx-node";

/// Finds (and if need be builds) the node binary; the result is absolute.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return check_executable(p).with_context(|| format!("--node-bin / RYX_NODE_BIN {}", p.display()));
    }
    let exe = std::env::current_exe().ok().and_then(|e| e.canonicalize().ok());
    let sibling = exe.as_ref().and_then(|e| e.parent()).map(|d| d.join(NODE));
    let build = exe.as_deref().and_then(BuildPlan::for_exe);
    if let (Some(plan), Some(sib)) = (&build, &sibling) {
        if started_by_cargo() || !sib.exists() {
            plan.run()?;
            return check_executable(sib);
        }
    }
    if let Some(sib) = sibling.filter(|s| s.exists()) {
        return check_executable(&sib);
    }
    if let Some(p) = on_path(NODE) {
        return check_executable(&p);
    }
    bail!(
        "cannot find the {NODE} binary: pass --node-bin PATH or set RYX_NODE_BIN, put {NODE} next to ryx-cluster, \
         or on PATH (from the workspace: cargo build --release -p ryx-node)"
    )
}

/// Whether this process was started by `cargo run` / `cargo test` of this
/// very package (Cargo sets these variables for the programs it runs).
fn started_by_cargo() -> bool {
    std::env::var_os("CARGO").is_some()
        && std::env::var_os("CARGO_MANIFEST_DIR")
            .is_some_and(|d| Path::new(&d) == Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// How to build the node binary next to this executable.
struct BuildPlan {
    cargo: PathBuf,
    manifest: PathBuf,
    target_dir: PathBuf,
    profile: String,
}

impl BuildPlan {
    /// A plan when `exe` lives in `<target>/<profile>/` and the workspace
    /// this crate was compiled in still has the ryx-node package.
    fn for_exe(exe: &Path) -> Option<BuildPlan> {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.parent()?.to_path_buf();
        let manifest = workspace.join("Cargo.toml");
        if !manifest.is_file() || !workspace.join("crates").join(NODE).join("Cargo.toml").is_file() {
            return None;
        }
        let profile_dir = exe.parent()?;
        let profile = profile_dir.file_name()?.to_str()?.to_string();
        let target_dir = profile_dir.parent()?.to_path_buf();
        // A Cargo target directory has a lock file in each profile folder.
        if !profile_dir.join(".cargo-lock").exists() && !target_dir.join("CACHEDIR.TAG").exists() {
            return None;
        }
        let cargo = std::env::var_os("CARGO").map(PathBuf::from).or_else(|| on_path("cargo"))?;
        Some(BuildPlan { cargo, manifest, target_dir, profile })
    }

    fn run(&self) -> Result<()> {
        let mut cmd = Command::new(&self.cargo);
        cmd.arg("build").arg("--manifest-path").arg(&self.manifest).args(["-p", NODE]);
        let shown = match self.profile.as_str() {
            "debug" => String::new(),
            "release" => {
                cmd.arg("--release");
                " --release".to_string()
            }
            other => {
                cmd.args(["--profile", other]);
                format!(" --profile {other}")
            }
        };
        eprintln!(
            "ryx-cluster: making sure {NODE} is built: cargo build{shown} -p {NODE} (target dir {})",
            self.target_dir.display()
        );
        // Cargo's progress goes to stderr; stdout stays clean for --json.
        let status = cmd
            .env("CARGO_TARGET_DIR", &self.target_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", self.cargo.display()))?;
        if !status.success() {
            bail!("cargo build{shown} -p {NODE} failed ({status})");
        }
        Ok(())
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

fn check_executable(p: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(p).with_context(|| format!("{} does not exist", p.display()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        bail!("{} is not an executable file", p.display());
    }
    p.canonicalize().with_context(|| format!("cannot resolve {}", p.display()))
}
