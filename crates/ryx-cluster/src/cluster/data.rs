//! Node-local data: in a cluster with a dataset, node I follows its own
//! directory `DIR/data/node-I` as that dataset (`--source
//! NAME=DIR/data/node-I/*.log`), and jobs over the dataset run where its
//! parts lie. `split` spreads existing files over the nodes.

use crate::cluster::state::RunDir;
use crate::cluster::Cluster;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Node `index`'s data directory.
pub fn node_dir(dir: &RunDir, index: usize) -> PathBuf {
    dir.path().join("data").join(format!("node-{index}"))
}

/// The `--source` argument of node `index` for dataset `name`.
pub fn source_arg(dir: &RunDir, name: &str, index: usize) -> String {
    format!("{name}={}/*.log", node_dir(dir, index).display())
}

/// Splits `files`, read as one concatenation, at line ends into one part
/// per node of `indices` (sizes within a line of each other), and writes
/// part k to the data directory of the node with the k-th smallest node
/// id: the dataset's canonical order (node id, then path, then offset) is
/// then the order of `files`, so its result equals `ryx-node exec` over
/// them. Each part is written under a temporary name and renamed, so a
/// node never reads half a part. Returns the bytes written (complete lines
/// only; a last line without a newline is dropped, as sources do).
pub fn split(cluster: &Cluster, files: &[PathBuf], indices: &[usize]) -> Result<u64> {
    if indices.is_empty() {
        bail!("no node to put data on");
    }
    let mut order: Vec<(String, usize)> = indices
        .iter()
        .map(|&i| {
            let id = cluster.state.nodes.get(i).and_then(|n| n.node_id.clone());
            Ok((id.with_context(|| format!("node {i} has no known id yet"))?.to_string(), i))
        })
        .collect::<Result<_>>()?;
    order.sort();
    let total: u64 = files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
    let per = total.div_ceil(order.len() as u64).max(1);
    let mut parts = order.iter().map(|(_, i)| *i);
    let mut current: Option<(BufWriter<std::fs::File>, PathBuf, PathBuf, u64)> = None;
    let mut written = 0u64;
    let mut line = Vec::with_capacity(4096);
    for f in files {
        let mut r =
            BufReader::with_capacity(1 << 20, std::fs::File::open(f).with_context(|| format!("{}", f.display()))?);
        loop {
            line.clear();
            let n = r.read_until(b'\n', &mut line).with_context(|| format!("reading {}", f.display()))?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            if current.as_ref().is_none_or(|c| c.3 >= per) {
                if let Some(c) = current.take() {
                    finish(c)?;
                }
                let Some(i) = parts.next() else { break };
                let d = node_dir(&cluster.dir, i);
                std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
                let tmp = d.join(".part.tmp");
                let w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
                current = Some((w, tmp, d.join("part.log"), 0));
            }
            if let Some(c) = current.as_mut() {
                c.0.write_all(&line)?;
                c.3 += line.len() as u64;
                written += line.len() as u64;
            }
        }
    }
    if let Some(c) = current.take() {
        finish(c)?;
    }
    Ok(written)
}

fn finish((mut w, tmp, to, _): (BufWriter<std::fs::File>, PathBuf, PathBuf, u64)) -> Result<()> {
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, &to).with_context(|| format!("cannot rename {} to {}", tmp.display(), to.display()))
}

/// Waits until node `entry` has heard `holders` nodes announce dataset
/// `name` (each announces within a second of reading its files).
pub fn wait_announced(cluster: &Cluster, entry: usize, name: &str, holders: usize, timeout: Duration) -> Result<()> {
    let prefix = format!("ryx/source/{name}/");
    let t0 = Instant::now();
    loop {
        crate::interrupt::check()?;
        let heard = cluster
            .client(entry)
            .info_items()
            .map_or(0, |items| items.iter().filter(|i| i.key.starts_with(&prefix)).count());
        if heard >= holders {
            return Ok(());
        }
        if t0.elapsed() > timeout {
            bail!("node {entry} heard {heard} of {holders} holders of dataset {name} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The bytes each node of `indices` holds of its data directory.
pub fn held(dir: &RunDir, indices: &[usize]) -> Vec<u64> {
    indices.iter().map(|&i| dir_bytes(&node_dir(dir, i))).collect()
}

fn dir_bytes(d: &Path) -> u64 {
    std::fs::read_dir(d)
        .map(|it| it.filter_map(|e| e.ok()?.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}
