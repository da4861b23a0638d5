//! Jobs on a cluster, from the outside: putting input in (files or the
//! built-in corpus), submitting, following progress from any live node,
//! showing results readably, and the single-process reference
//! (`ryx-node exec`) to check them against.

use crate::cluster::Cluster;
use crate::http::Http;
use crate::interrupt;
use crate::util::human;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Largest job answer accepted (results with per-line assignments are big).
const MAX_JOB_BODY: usize = 256 << 20;

/// A client for job traffic: long timeouts (uploads of hundreds of MiB are
/// hashed and cut before the node answers) and large bodies.
pub fn job_http() -> Http {
    Http::with_max_body(Duration::from_secs(120), MAX_JOB_BODY)
}

/// A client for polling: short timeouts, so a dead or paused node is
/// skipped quickly.
pub fn poll_http() -> Http {
    Http::with_max_body(Duration::from_secs(3), MAX_JOB_BODY)
}

/// Input stored on a node.
#[derive(Clone, Debug)]
pub struct Input {
    /// Name (content digest) of the whole input.
    pub hash: String,
    /// Bytes.
    pub size: u64,
    /// Chunks it was cut into (work units).
    pub chunks: u64,
    /// Fewest verified copies of any chunk when the node answered, and
    /// the number it waited for (nodes before the `copies` parameter: none).
    pub copies: Option<(u64, u64)>,
}

/// The replication part of an upload's query string: `copies=N` makes the
/// node answer only once every chunk has N verified copies (or its
/// timeout passed).
fn copies_query(copies: Option<usize>) -> String {
    copies.map(|c| format!("copies={c}&copies_timeout_ms=90000")).unwrap_or_default()
}

fn input_of(v: &Value) -> Result<Input> {
    Ok(Input {
        hash: v.get("hash").and_then(Value::as_str).context("answer lacks \"hash\"")?.to_string(),
        size: v.get("size").and_then(Value::as_u64).unwrap_or(0),
        chunks: v.get("chunks").and_then(Value::as_u64).unwrap_or(1),
        copies: v.get("copies").and_then(Value::as_u64).zip(v.get("copies_wanted").and_then(Value::as_u64)),
    })
}

/// Has the node at `addr` generate `size` bytes of the built-in corpus with `seed`.
pub fn sample(
    http: &Http,
    addr: SocketAddr,
    size: u64,
    seed: u64,
    energy: Option<f64>,
    copies: Option<usize>,
) -> Result<Input> {
    let mut path = format!("/v1/blobs/sample?size={size}&seed={seed}");
    if let Some(e) = energy {
        path.push_str(&format!("&energy={e}"));
    }
    if copies.is_some() {
        path.push_str(&format!("&{}", copies_query(copies)));
    }
    input_of(&http.call_json(addr, "POST", &path, None)?)
}

/// Uploads one file to the node at `addr`.
pub fn upload(http: &Http, addr: SocketAddr, file: &Path, energy: Option<f64>, copies: Option<usize>) -> Result<Input> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut query: Vec<String> = energy.map(|e| format!("energy={e}")).into_iter().collect();
    if copies.is_some() {
        query.push(copies_query(copies));
    }
    let path = if query.is_empty() { "/v1/blobs".to_string() } else { format!("/v1/blobs?{}", query.join("&")) };
    input_of(
        &http.call_json(addr, "PUT", &path, Some(&bytes)).with_context(|| format!("uploading {}", file.display()))?,
    )
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

/// What to submit.
#[derive(Clone, Debug)]
pub struct JobRequest {
    /// Job kind.
    pub kind: String,
    /// Input names.
    pub inputs: Vec<String>,
    /// Parameters (a JSON object).
    pub params: Value,
    /// Replicas per unit [default: the node's].
    pub redundancy: Option<u8>,
}

/// Submits a job at the node at `addr`; returns its id.
pub fn submit(http: &Http, addr: SocketAddr, req: &JobRequest) -> Result<String> {
    let mut body = json!({"kind": req.kind, "inputs": req.inputs, "params": req.params});
    if let Some(r) = req.redundancy {
        body["redundancy"] = json!(r);
    }
    let v = http.call_json(addr, "POST", "/v1/jobs", Some(body.to_string().as_bytes()))?;
    Ok(v.get("job_id").and_then(Value::as_str).context("submit answer lacks job_id")?.to_string())
}

/// Whether a job state is final.
pub fn is_final(job: &Value) -> bool {
    matches!(job.get("state").and_then(Value::as_str), Some("done" | "failed" | "cancelled"))
}

/// Units (done, total) of a job answer.
pub fn units(job: &Value) -> (u64, u64) {
    let p = &job["progress"];
    (p["units_done"].as_u64().unwrap_or(0), p["units_total"].as_u64().unwrap_or(0))
}

/// Follows a job through whichever node answers: the preferred one first,
/// then the other running nodes (any node answers for any job).
pub struct Follower {
    /// Job id.
    pub job_id: String,
    /// Index of the node asked first.
    pub prefer: usize,
    http: Http,
}

impl Follower {
    /// Follows `job_id`, asking node `prefer` first.
    pub fn new(job_id: String, prefer: usize) -> Follower {
        Follower { job_id, prefer, http: poll_http() }
    }

    /// The job as some running node sees it.
    pub fn get(&mut self, cluster: &mut Cluster) -> Result<Value> {
        let running = cluster.running();
        let mut order: Vec<usize> = running.iter().copied().filter(|&i| i == self.prefer).collect();
        order.extend(running.iter().copied().filter(|&i| i != self.prefer));
        let mut last = None;
        for i in order.into_iter().take(6) {
            let addr = cluster.state.nodes[i].api();
            match self.http.call_json(addr, "GET", &format!("/v1/jobs/{}", self.job_id), None) {
                Ok(v) => {
                    self.prefer = i;
                    return Ok(v);
                }
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) => Err(e.context(format!("no running node answers for job {}", self.job_id))),
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
        mut tick: impl FnMut(&mut Cluster, &Value) -> Result<()>,
    ) -> Result<Value> {
        let t0 = Instant::now();
        loop {
            let last_err = match self.get(cluster) {
                Ok(v) => {
                    tick(cluster, &v)?;
                    if is_final(&v) {
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
pub fn check_done(job: &Value) -> Result<()> {
    match job.get("state").and_then(Value::as_str) {
        Some("done") => Ok(()),
        Some(s) => {
            let why = job.get("error").and_then(Value::as_str).unwrap_or("no reason given");
            bail!("job {} {s}: {why}", job["job_id"].as_str().unwrap_or("?"))
        }
        None => bail!("job answer has no state: {job}"),
    }
}

/// A progress bar on stderr: units done, throughput, elapsed. On a
/// terminal it redraws one line; otherwise it prints a line when progress
/// changes, at most once a second.
pub struct Progress {
    label: String,
    bytes: u64,
    t0: Instant,
    tty: bool,
    drawn: bool,
    last_print: Option<Instant>,
    last_done: Option<u64>,
    quiet: bool,
}

impl Progress {
    /// A bar for a job over `bytes` of input.
    pub fn new(label: &str, bytes: u64) -> Progress {
        Progress {
            label: label.to_string(),
            bytes,
            t0: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            drawn: false,
            last_print: None,
            last_done: None,
            quiet: false,
        }
    }

    /// A bar that prints nothing (for machine output).
    pub fn quiet(mut self) -> Progress {
        self.quiet = true;
        self
    }

    /// The line for `done` of `total` units now.
    pub fn line(&self, done: u64, total: u64) -> String {
        const W: usize = 24;
        let frac = if total == 0 { 0.0 } else { done as f64 / total as f64 };
        let filled = ((frac * W as f64).round() as usize).min(W);
        let secs = self.t0.elapsed().as_secs_f64();
        let mbps = self.bytes as f64 * frac / 1e6 / secs.max(1e-3);
        format!(
            "{} [{}{}] {done}/{total} units {:>3.0}%  {mbps:.1} MB/s  {}",
            self.label,
            "#".repeat(filled),
            ".".repeat(W - filled),
            frac * 100.0,
            human(self.t0.elapsed())
        )
    }

    /// Shows the state of a job answer.
    pub fn update(&mut self, job: &Value) {
        if self.quiet {
            return;
        }
        let (done, total) = units(job);
        let line = self.line(done, total);
        let mut e = std::io::stderr().lock();
        if self.tty {
            let _ = write!(e, "\r\x1b[2K{line}");
            self.drawn = true;
        } else {
            let due = self.last_print.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if (self.last_done != Some(done) && due) || (is_final(job) && self.last_done != Some(done)) {
                let _ = writeln!(e, "{line}");
                self.last_print = Some(Instant::now());
                self.last_done = Some(done);
            }
        }
        let _ = e.flush();
    }

    /// Prints a message above the bar.
    pub fn note(&mut self, msg: &str) {
        let mut e = std::io::stderr().lock();
        if self.drawn {
            let _ = write!(e, "\r\x1b[2K");
            self.drawn = false;
        }
        let _ = writeln!(e, "{msg}");
    }

    /// Ends the bar (moves past its line).
    pub fn finish(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr());
            self.drawn = false;
        }
    }

    /// Time since the bar started.
    pub fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }
}

/// The result of a job, readably.
pub fn render_result(kind: &str, r: &Value) -> String {
    let mut o = String::new();
    let num = |v: &Value| v.as_u64().map(group_digits).unwrap_or_else(|| v.to_string());
    match kind {
        "word-count" => {
            o.push_str(&format!("{} words, {} distinct\n", num(&r["total_words"]), num(&r["distinct_words"])));
            if let Some(top) = r["top"].as_array() {
                o.push_str("top words:\n");
                for (i, e) in top.iter().enumerate() {
                    let w = e.get(0).and_then(Value::as_str).unwrap_or("?");
                    let c = e.get(1).map(num).unwrap_or_default();
                    o.push_str(&format!("  {:>3}. {:<28} {c:>12}\n", i + 1, clip(w, 28)));
                }
            }
        }
        "grep" => {
            o.push_str(&format!("{} matching lines of {}\n", num(&r["matching_lines"]), num(&r["lines"])));
            if let Some(s) = r["samples"].as_array() {
                if !s.is_empty() {
                    o.push_str("first matches:\n");
                }
                for l in s {
                    o.push_str(&format!("  {}\n", clip(l.as_str().unwrap_or(""), 160)));
                }
            }
        }
        "log-analysis" => {
            let templates = r["templates"].as_array().cloned().unwrap_or_default();
            o.push_str(&format!(
                "{} lines ({} unparsed), {} templates, {} alerts\n",
                num(&r["lines"]),
                num(&r["unparsed"]),
                templates.len(),
                num(&r["alerts"]["count"])
            ));
            if let Some(levels) = r["levels"].as_object() {
                let mut lv: Vec<(&String, u64)> = levels.iter().map(|(k, v)| (k, v.as_u64().unwrap_or(0))).collect();
                lv.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                let parts: Vec<String> = lv.iter().map(|(k, v)| format!("{k} {}", group_digits(*v))).collect();
                o.push_str(&format!("levels: {}\n", parts.join(", ")));
            }
            let mut t = templates;
            t.sort_by(|a, b| {
                b["count"].as_u64().cmp(&a["count"].as_u64()).then(a["id"].as_u64().cmp(&b["id"].as_u64()))
            });
            const SHOWN: usize = 15;
            o.push_str("templates (most frequent first):\n");
            for e in t.iter().take(SHOWN) {
                o.push_str(&format!(
                    "  {:>12}  #{:<4} {}\n",
                    num(&e["count"]),
                    e["id"].as_u64().unwrap_or(0),
                    clip(e["template"].as_str().unwrap_or(""), 110)
                ));
            }
            if t.len() > SHOWN {
                o.push_str(&format!("  … and {} more (--json for all)\n", t.len() - SHOWN));
            }
            if let Some(s) = r["alerts"]["samples"].as_array() {
                if !s.is_empty() {
                    o.push_str("alerts (first samples):\n");
                }
                for l in s.iter().take(5) {
                    o.push_str(&format!("  {}\n", clip(l.as_str().unwrap_or(""), 160)));
                }
            }
        }
        _ => o.push_str(&format!("{}\n", serde_json::to_string_pretty(r).unwrap_or_default())),
    }
    o
}

/// `1234567` as `1,234,567`.
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn clip(s: &str, max: usize) -> String {
    crate::http::truncate(&s.replace(['\r', '\n'], " "), max)
}

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
        assert_eq!(node_chunk_size(&["--chunk-size".into(), "1MiB".into()]).expect("cs"), Some(1 << 20));
        assert_eq!(node_chunk_size(&["--chunk-size=2MiB".into()]).expect("cs"), Some(2 << 20));
        assert_eq!(node_chunk_size(&["--log".into(), "debug".into()]).expect("none"), None);
    }

    #[test]
    fn results_render_readably() {
        let wc = json!({"total_words": 1234567, "distinct_words": 3, "top": [["the", 1000], ["a", 7]]});
        let t = render_result("word-count", &wc);
        assert!(t.contains("1,234,567 words, 3 distinct"), "{t}");
        assert!(t.contains("1. the") && t.contains("1,000"), "{t}");
        let la = json!({"lines": 10, "unparsed": 0, "levels": {"INFO": 8, "ERROR": 2},
            "templates": [{"id": 1, "template": "a <*>", "count": 2}, {"id": 2, "template": "b", "count": 8}],
            "alerts": {"count": 1, "samples": ["boom"]}});
        let t = render_result("log-analysis", &la);
        assert!(t.contains("2 templates, 1 alerts"), "{t}");
        assert!(t.find("#2").expect("b") < t.find("#1").expect("a"), "most frequent first: {t}");
        assert!(t.contains("INFO 8, ERROR 2") && t.contains("boom"), "{t}");
        let g = json!({"lines": 5, "matching_lines": 2, "samples": ["x ERROR", "y ERROR"]});
        assert!(render_result("grep", &g).contains("2 matching lines of 5"));
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(999), "999");
    }

    #[test]
    fn progress_lines_show_units_rate_and_time() {
        let p = Progress::new("word-count", 100_000_000).quiet();
        let l = p.line(5, 10);
        assert!(l.contains("5/10 units") && l.contains("50%") && l.contains("MB/s"), "{l}");
        assert!(p.line(0, 0).contains("0/0 units"));
    }

    #[test]
    fn finished_jobs_are_checked() {
        assert!(check_done(&json!({"job_id": "ab", "state": "done"})).is_ok());
        let e = check_done(&json!({"job_id": "ab", "state": "failed", "error": "input lost"})).expect_err("failed");
        assert!(e.to_string().contains("input lost"));
        assert!(check_done(&json!({"job_id": "ab", "state": "cancelled"})).is_err());
        assert!(is_final(&json!({"state": "cancelled"})) && !is_final(&json!({"state": "running"})));
    }
}
