//! Jobs on a cluster, from the outside: putting input in (files or the
//! built-in corpus), submitting, following progress from any live node,
//! showing results readably, and the single-process reference
//! (`ryx-node exec`) to check them against.

pub mod inject;
pub mod progress;
pub mod reference;
pub mod render;
pub mod run;

pub use progress::Progress;
pub use reference::Reference;

use crate::cluster::Cluster;
use crate::interrupt;
use crate::util::human;
use anyhow::{bail, Context, Result};
use ryx_api::{Client, Http, JobId, JobView, SubmitJob, UploadOptions, Uploaded};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest job answer accepted (results with per-line assignments are big).
const MAX_JOB_BODY: usize = 256 << 20;
/// How long an upload waits for the copies asked for.
const COPIES_TIMEOUT_MS: u64 = 90_000;

/// A transport for job traffic: long timeouts (uploads of hundreds of MiB
/// are hashed and cut before the node answers) and large bodies.
pub fn job_http() -> Arc<Http> {
    Arc::new(Http::with_max_body(Duration::from_secs(120), MAX_JOB_BODY))
}

/// A transport for polling: short timeouts, so a dead or paused node is
/// skipped quickly.
pub fn poll_http() -> Arc<Http> {
    Arc::new(Http::with_max_body(Duration::from_secs(3), MAX_JOB_BODY))
}

/// The upload options for `energy` and `copies`: with `copies`, the node
/// answers only once every chunk has that many verified copies (or its
/// wait passed).
fn upload_options(energy: Option<f64>, copies: Option<usize>) -> UploadOptions {
    UploadOptions { energy, copies, copies_timeout_ms: copies.map(|_| COPIES_TIMEOUT_MS), keep_s: None }
}

/// Has the node at `addr` generate `size` bytes of the built-in corpus with `seed`.
pub fn sample(
    http: &Arc<Http>,
    addr: SocketAddr,
    size: u64,
    seed: u64,
    energy: Option<f64>,
    copies: Option<usize>,
) -> Result<Uploaded> {
    Ok(Client::with_http(addr, http.clone()).put_sample(size, seed, &upload_options(energy, copies))?)
}

/// Uploads one file to the node at `addr`.
pub fn upload(
    http: &Arc<Http>,
    addr: SocketAddr,
    file: &Path,
    energy: Option<f64>,
    copies: Option<usize>,
) -> Result<Uploaded> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    Client::with_http(addr, http.clone())
        .put_blob(&bytes, &upload_options(energy, copies))
        .with_context(|| format!("uploading {}", file.display()))
}

/// Files named by `paths`: files as given, directories walked recursively
/// (regular files only, sorted by path), in order.
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
        if depth > 32 {
            bail!("{} nests directories deeper than 32 levels", dir.display());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            let md = std::fs::symlink_metadata(&p).with_context(|| format!("cannot stat {}", p.display()))?;
            if md.is_dir() {
                walk(&p, out, depth + 1)?;
            } else if md.is_file() {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        let md = std::fs::metadata(p).with_context(|| format!("cannot read input {}", p.display()))?;
        if md.is_dir() {
            let before = out.len();
            walk(p, &mut out, 0)?;
            if out.len() == before {
                bail!("input directory {} holds no files", p.display());
            }
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Parses repeated `KEY=VALUE` job parameters (VALUE as JSON if it parses,
/// else as a string), the way `ryx-node exec --param` does.
pub fn parse_params(params: &[String]) -> Result<Value> {
    let mut map = serde_json::Map::new();
    for p in params {
        let (k, v) = p.split_once('=').with_context(|| format!("--param {p:?} is not KEY=VALUE"))?;
        if k.is_empty() {
            bail!("--param {p:?} has an empty key");
        }
        let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        map.insert(k.to_string(), v);
    }
    Ok(Value::Object(map))
}

/// Submits `job` at the node at `addr`; returns its id.
pub fn submit(http: &Arc<Http>, addr: SocketAddr, job: &SubmitJob) -> Result<JobId> {
    Ok(Client::with_http(addr, http.clone()).submit_job(job)?)
}

/// Units (done, total) of a job answer.
pub fn units(job: &JobView) -> (u64, u64) {
    (u64::from(job.progress.units_done), u64::from(job.progress.units_total))
}

/// Follows a job through whichever node answers: the preferred one first,
/// then the other running nodes (any node answers for any job).
pub struct Follower {
    /// Job id.
    pub job_id: JobId,
    /// Index of the node asked first.
    pub prefer: usize,
    http: Arc<Http>,
}

impl Follower {
    /// Follows `job_id`, asking node `prefer` first.
    pub fn new(job_id: JobId, prefer: usize) -> Follower {
        Follower { job_id, prefer, http: poll_http() }
    }

    /// The job as some running node sees it.
    pub fn get(&mut self, cluster: &mut Cluster) -> Result<JobView> {
        let running = cluster.running();
        let mut order: Vec<usize> = running.iter().copied().filter(|&i| i == self.prefer).collect();
        order.extend(running.iter().copied().filter(|&i| i != self.prefer));
        let mut last = None;
        for i in order.into_iter().take(6) {
            let client = Client::with_http(cluster.state.nodes[i].api(), self.http.clone());
            match client.job(&self.job_id) {
                Ok(v) => {
                    self.prefer = i;
                    return Ok(v);
                }
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) => Err(anyhow::Error::new(e).context(format!("no running node answers for job {}", self.job_id))),
            None => bail!("no running node left to ask for job {}", self.job_id),
        }
    }

    /// Polls until the job is final or `timeout` passes; `tick` sees every
    /// answer (and may act, e.g. inject faults). Transient errors (a node
    /// dying under the request) are retried until the timeout.
    pub fn wait(
        &mut self,
        cluster: &mut Cluster,
        timeout: Duration,
        every: Duration,
        mut tick: impl FnMut(&mut Cluster, &JobView) -> Result<()>,
    ) -> Result<JobView> {
        let t0 = Instant::now();
        loop {
            let last_err = match self.get(cluster) {
                Ok(v) => {
                    tick(cluster, &v)?;
                    if v.is_final() {
                        return Ok(v);
                    }
                    None
                }
                Err(e) => Some(e),
            };
            if t0.elapsed() > timeout {
                let why = last_err.map(|e| format!(": {e:#}")).unwrap_or_default();
                bail!("job {} did not finish within {}{why}", self.job_id, human(timeout));
            }
            if !interrupt::sleep(every) {
                bail!("interrupted while job {} runs (it keeps running in the cluster)", self.job_id);
            }
        }
    }
}

/// The outcome of a final job answer: `Ok` for done, an error with the
/// reason for failed or cancelled.
pub fn check_done(job: &JobView) -> Result<()> {
    match job.state {
        ryx_api::JobState::Done => Ok(()),
        s => bail!("job {} {s}: {}", job.job_id, job.error.as_deref().unwrap_or("no reason given")),
    }
}

/// Parses a byte size: `1048576`, `512MiB`, `4M`, `2G`, `64KiB` (at most 1 TiB).
pub fn parse_size(s: &str) -> Result<u64> {
    let v = ryx_compute::parse_size(s).map_err(anyhow::Error::msg)?;
    if v > 1 << 40 {
        bail!("size {s:?} must be between 1 byte and 1 TiB");
    }
    Ok(v)
}

/// A byte count as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_and_params_parse() {
        assert_eq!(parse_size("256MiB").expect("mib"), 256 << 20);
        assert_eq!(parse_size("4M").expect("m"), 4_000_000);
        assert_eq!(parse_size("1024").expect("bare"), 1024);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
        assert!(parse_size("0").is_err());
        let p = parse_params(&["top=5".into(), "pattern=ERROR|WARN".into()]).expect("params");
        assert_eq!(p, json!({"top": 5, "pattern": "ERROR|WARN"}));
        assert!(parse_params(&["novalue".into()]).is_err());
        assert!(parse_params(&["=1".into()]).is_err());
    }

    #[test]
    fn finished_jobs_are_checked() {
        let job = |state: &str, error: Option<&str>| -> JobView {
            serde_json::from_value(json!({"error": error, "home": "ab", "home_http": "127.0.0.1:1", "job_id": "ab",
                "kind": "grep", "progress": {"units_done": 1, "units_total": 2}, "redundancy": 1, "result": null,
                "result_digest": null, "state": state, "stats": {"disagreements": 0, "elapsed_ms": null,
                "extra_replicas": 0, "reissued": 0, "results": 0, "takeovers": 0, "workers": 0}}))
            .expect("job view")
        };
        assert!(check_done(&job("done", None)).is_ok());
        let e = check_done(&job("failed", Some("input lost"))).expect_err("failed");
        assert!(e.to_string().contains("input lost"), "{e}");
        assert!(check_done(&job("cancelled", None)).is_err());
        assert!(job("cancelled", None).is_final() && !job("running", None).is_final());
        assert_eq!(units(&job("running", None)), (1, 2));
    }
}
