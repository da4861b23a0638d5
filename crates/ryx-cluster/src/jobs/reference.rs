//! The single-process reference of a job: `ryx-node exec` on the same
//! bytes, with the same parameters and unit size, whose result digest the
//! cluster's must equal.

use crate::jobs::parse_size;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The single-process reference of a job.
#[derive(Clone, Debug)]
pub struct Reference {
    /// Digest of the canonical result bytes.
    pub digest: String,
    /// Wall time of the whole `ryx-node exec` process.
    pub wall: Duration,
    /// Compute time exec reports (without reading the input), if printed.
    pub compute: Option<Duration>,
}

/// Runs `ryx-node exec KIND --input FILE... --json` with the given params,
/// threads and unit size.
pub fn exec_reference(
    node_bin: &Path,
    kind: &str,
    files: &[PathBuf],
    params: &[String],
    threads: Option<usize>,
    chunk_size: Option<u64>,
) -> Result<Reference> {
    let mut cmd = Command::new(node_bin);
    cmd.arg("exec").arg(kind).arg("--input").args(files).arg("--json");
    for p in params {
        cmd.arg("--param").arg(p);
    }
    if let Some(t) = threads {
        cmd.arg("--threads").arg(t.to_string());
    }
    if let Some(c) = chunk_size {
        cmd.arg("--chunk-size").arg(c.to_string());
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let t0 = Instant::now();
    let out = cmd.output().with_context(|| format!("cannot run {} exec", node_bin.display()))?;
    let wall = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("ryx-node exec {kind} failed ({}): {}", out.status, stderr.trim());
    }
    let mut bytes = out.stdout;
    while bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    serde_json::from_slice::<Value>(&bytes).context("ryx-node exec --json printed no JSON")?;
    // "exec KIND: N units, X MiB in S s (...)"
    let compute = stderr
        .split(" in ")
        .nth(1)
        .and_then(|r| r.split(" s").next())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok());
    Ok(Reference { digest: ryx_compute::digest_hex(&bytes), wall, compute })
}

/// Writes `size` bytes of the built-in corpus with `seed` to `path` — the
/// same bytes a node's `POST /v1/blobs/sample` generates — and returns
/// their name (content digest), to check against the node's.
pub fn write_corpus(path: &Path, size: u64, seed: u64) -> Result<String> {
    let size = usize::try_from(size).context("corpus size does not fit in memory")?;
    let data = ryx_compute::corpus::generate(size, seed);
    std::fs::write(path, &data).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(ryx_compute::digest_hex(&data))
}

/// The unit size the cluster's nodes cut inputs into (`--chunk-size` among
/// the extra node arguments), if set.
pub fn node_chunk_size(node_args: &[String]) -> Result<Option<u64>> {
    let mut it = node_args.iter();
    while let Some(a) = it.next() {
        let v =
            if a == "--chunk-size" { it.next().cloned() } else { a.strip_prefix("--chunk-size=").map(String::from) };
        if let Some(v) = v {
            return parse_size(&v).map(Some);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clusters_unit_size_is_read_from_its_node_arguments() {
        assert_eq!(node_chunk_size(&["--chunk-size".into(), "1MiB".into()]).expect("cs"), Some(1 << 20));
        assert_eq!(node_chunk_size(&["--chunk-size=2MiB".into()]).expect("cs"), Some(2 << 20));
        assert_eq!(node_chunk_size(&["--log".into(), "debug".into()]).expect("none"), None);
    }
}
