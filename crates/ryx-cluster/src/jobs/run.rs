//! Running one job end to end on a cluster: input onto the entry node,
//! submit, follow, and the single-process reference on the same bytes.
//! Shared by `inject`, `chaos --during-job`, `demo` and `bench`.

use crate::cluster::Cluster;
use crate::jobs::{self, reference, Reference};
use anyhow::{bail, Context, Result};
use ryx_api::{JobId, SubmitJob, Uploaded};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A file removed when dropped.
pub struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Where the input comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Files (directories already expanded).
    Files(Vec<PathBuf>),
    /// The built-in corpus.
    Corpus {
        /// Bytes.
        size: u64,
        /// Seed.
        seed: u64,
    },
}

impl Source {
    /// From command-line inputs (files or directories) or the corpus size
    /// and seed when there are none.
    pub fn from_args(inputs: &[PathBuf], size: &str, seed: u64) -> Result<Source> {
        if inputs.is_empty() {
            Ok(Source::Corpus { size: jobs::parse_size(size)?, seed })
        } else {
            Ok(Source::Files(jobs::expand_inputs(inputs)?))
        }
    }

    /// Short description.
    pub fn describe(&self) -> String {
        match self {
            Source::Files(f) if f.len() == 1 => f[0].display().to_string(),
            Source::Files(f) => format!("{} files", f.len()),
            Source::Corpus { size, seed } => format!("built-in corpus, {} (seed {seed})", jobs::mib(*size)),
        }
    }
}

/// Input loaded onto a node.
pub struct Loaded {
    /// What the node stored.
    pub inputs: Vec<Uploaded>,
    /// Total bytes.
    pub bytes: u64,
}

impl Loaded {
    /// Total units.
    pub fn units(&self) -> u64 {
        self.inputs.iter().map(|i| i.chunks as u64).sum()
    }
}

/// Puts the input onto node `entry` (upload or sample). With `copies`,
/// the node answers once every chunk has that many verified copies (or
/// its timeout passed), so a job submitted next cannot outrun replication.
pub fn load(
    cluster: &Cluster,
    entry: usize,
    src: &Source,
    energy: Option<f64>,
    copies: Option<usize>,
) -> Result<Loaded> {
    let http = jobs::job_http();
    let addr = cluster.state.nodes[entry].api();
    let inputs = match src {
        Source::Files(files) => {
            files.iter().map(|f| jobs::upload(&http, addr, f, energy, copies)).collect::<Result<Vec<_>>>()?
        }
        Source::Corpus { size, seed } => vec![jobs::sample(&http, addr, *size, *seed, energy, copies)?],
    };
    let bytes = inputs.iter().map(|i| i.size).sum();
    Ok(Loaded { inputs, bytes })
}

/// Files holding the same bytes as the input, for `ryx-node exec`: the
/// files themselves, or the corpus generated here (and checked against
/// the name the node gave it) in a temporary file.
pub fn reference_files(
    src: &Source,
    loaded: Option<&Loaded>,
    tmp_dir: &Path,
) -> Result<(Vec<PathBuf>, Option<TempFile>)> {
    match src {
        Source::Files(f) => Ok((f.clone(), None)),
        Source::Corpus { size, seed } => {
            let p = tmp_dir.join(format!("ryx-corpus-{}-{seed}-{size}.log", std::process::id()));
            let guard = TempFile(p.clone());
            let hash = reference::write_corpus(&p, *size, *seed)?;
            if let Some(l) = loaded {
                if l.inputs.first().map(|i| i.hash.as_str()) != Some(hash.as_str()) {
                    bail!(
                        "the corpus generated here ({hash}) differs from the node's ({}); ryx-cluster and ryx-node are from different builds",
                        l.inputs.first().map(|i| i.hash.as_str()).unwrap_or("?")
                    );
                }
            }
            Ok((vec![p], Some(guard)))
        }
    }
}

/// Job parameters from `--preset` and `--param`, plus the corpus's own
/// header layout for log-analysis of the built-in corpus when neither a
/// preset nor a format is given. Returns the params as KEY=VALUE strings
/// (for `ryx-node exec`) and as JSON.
pub fn params(kind: &str, src: &Source, preset: Option<&str>, extra: &[String]) -> Result<(Vec<String>, Value)> {
    let mut list: Vec<String> = Vec::new();
    if let Some(p) = preset {
        list.push(format!("preset={p}"));
    }
    let has = |k: &str| extra.iter().any(|p| p.split_once('=').is_some_and(|(key, _)| key == k));
    if kind == "log-analysis"
        && matches!(src, Source::Corpus { .. })
        && preset.is_none()
        && !has("preset")
        && !has("format")
    {
        list.push(format!("format={}", ryx_compute::corpus::FORMAT));
    }
    list.extend(extra.iter().cloned());
    let json = jobs::parse_params(&list)?;
    Ok((list, json))
}

/// Submits `kind` over `loaded` at node `entry`.
pub fn submit(
    cluster: &Cluster,
    entry: usize,
    kind: &str,
    loaded: &Loaded,
    params: Value,
    redundancy: Option<u8>,
) -> Result<JobId> {
    let mut job = SubmitJob::new(kind, loaded.inputs.iter().map(|i| i.hash.clone()).collect());
    job.params = params;
    job.redundancy = redundancy;
    jobs::submit(&jobs::job_http(), cluster.state.nodes[entry].api(), &job)
        .with_context(|| format!("submitting {kind} at node {entry}"))
}

/// The reference for `kind` on `files`, with the cluster's unit size.
pub fn reference(
    cluster: &Cluster,
    kind: &str,
    files: &[PathBuf],
    params: &[String],
    threads: Option<usize>,
) -> Result<Reference> {
    let chunk = reference::node_chunk_size(&cluster.state.node_args)?;
    reference::exec_reference(&cluster.state.node_bin, kind, files, params, threads, chunk)
}

/// The first running node, or `want` if it runs.
pub fn entry_node(cluster: &mut Cluster, want: Option<usize>) -> Result<usize> {
    let running = cluster.running();
    match want {
        Some(i) if running.contains(&i) => Ok(i),
        Some(i) if i >= cluster.state.nodes.len() => {
            bail!("there is no node {i} (the cluster has nodes 0..{})", cluster.state.nodes.len())
        }
        Some(i) => bail!("node {i} is not running"),
        None => running.first().copied().context("no running node in the cluster"),
    }
}
