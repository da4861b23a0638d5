//! Pure compute kernels of Ryx jobs.
//!
//! A job is described by a [`JobSpec`] (a [`JobKind`] plus validated [`Params`]).
//! Its input is cut into *units* with [`split_chunks`] (each input separately; units
//! are ordered by input index, then chunk index). Each unit is mapped independently,
//! possibly on another machine, into a [`Partial`]; partials travel as
//! [`Partial::to_bytes`] and are folded with [`JobSpec::merge`] strictly in unit order
//! (a left fold or any order-preserving tree: `merge` is associative, so both give the
//! same bytes); [`JobSpec::finish`] turns the last partial into a JSON result.
//! [`run_local`] does all of this on one machine and is the reference the distributed
//! system must match byte for byte ([`canonical_json`], [`digest_hex`]).
//!
//! Kernels:
//! - `word-count` ([`wordcount`]): words like `LC_ALL=C wc -w`, top-N words;
//! - `grep` ([`grep`]): lines matching a regex like `LC_ALL=C grep -c`, first samples;
//! - `log-analysis` ([`loganalysis`]): header parsing, masking, Drain templates,
//!   levels and alerts;
//! - `search-stats` and `search` ([`search`]): BM25 over JSON-lines documents,
//!   the corpus figures first, then the top k scored with them.
//!
//! Nothing here does I/O or panics on any input bytes.

#![warn(missing_docs)]

mod bytes;
mod chunk;
pub mod corpus;
mod error;
pub mod eval;
pub mod grep;
pub mod loganalysis;
mod partial;
pub mod pipeline;
pub mod search;
pub mod wordcount;

pub use chunk::{split_chunks, ChunkStream, LineTooLong};
pub use error::ComputeError;
pub use grep::GrepParams;
pub use loganalysis::LogParams;
pub use partial::{Partial, PARTIAL_FORMAT_VERSION};
pub use pipeline::PipelineParams;
pub use search::{CorpusStats, SearchParams, StatsParams};
pub use wordcount::{count_words, WordCountParams};

use partial::PartialData;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

/// Default unit size for [`split_chunks`]: 4 MiB.
pub const DEFAULT_CHUNK_SIZE: usize = 4 << 20;

/// The kinds of job Ryx can run. Serialized as `"word-count"`, `"grep"`,
/// `"log-analysis"`, which is also what [`FromStr`] accepts and [`fmt::Display`] prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// Word frequencies.
    WordCount,
    /// Regex line matching.
    Grep,
    /// Log template mining, levels and alerts.
    LogAnalysis,
    /// The corpus figures BM25 needs for a query.
    SearchStats,
    /// The top k documents for a query, by BM25 with given corpus figures.
    Search,
    /// A stream's stages over lines, counted per event-time window.
    Pipeline,
}

impl JobKind {
    /// Every kind, in declaration order.
    pub const ALL: [JobKind; 6] = [
        JobKind::WordCount,
        JobKind::Grep,
        JobKind::LogAnalysis,
        JobKind::SearchStats,
        JobKind::Search,
        JobKind::Pipeline,
    ];

    /// The canonical name (`"word-count"`, `"grep"`, `"log-analysis"`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::WordCount => "word-count",
            JobKind::Grep => "grep",
            JobKind::LogAnalysis => "log-analysis",
            JobKind::SearchStats => "search-stats",
            JobKind::Search => "search",
            JobKind::Pipeline => "pipeline",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = ComputeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| ComputeError::UnknownKind(s.to_owned()))
    }
}

/// Validated, typed parameters of a job, one variant per [`JobKind`].
#[derive(Clone, Debug)]
pub enum Params {
    /// Parameters of `word-count`.
    WordCount(WordCountParams),
    /// Parameters of `grep`.
    Grep(GrepParams),
    /// Parameters of `log-analysis`.
    LogAnalysis(Box<LogParams>),
    /// Parameters of `search-stats`.
    SearchStats(StatsParams),
    /// Parameters of `search`.
    Search(Box<SearchParams>),
    /// Parameters of `pipeline`.
    Pipeline(Box<PipelineParams>),
}

impl Params {
    /// Kind these parameters belong to.
    pub fn kind(&self) -> JobKind {
        match self {
            Params::WordCount(_) => JobKind::WordCount,
            Params::Grep(_) => JobKind::Grep,
            Params::LogAnalysis(_) => JobKind::LogAnalysis,
            Params::SearchStats(_) => JobKind::SearchStats,
            Params::Search(_) => JobKind::Search,
            Params::Pipeline(_) => JobKind::Pipeline,
        }
    }

    /// Normalized JSON form with every default filled in (the input of
    /// [`JobSpec::fingerprint`]).
    pub fn to_json(&self) -> Value {
        match self {
            Params::WordCount(p) => p.to_json(),
            Params::Grep(p) => p.to_json(),
            Params::LogAnalysis(p) => p.to_json(),
            Params::SearchStats(p) => p.to_json(),
            Params::Search(p) => p.to_json(),
            Params::Pipeline(p) => p.to_json(),
        }
    }
}

/// A job: what to compute and with which parameters.
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// Kind of job; must agree with `params` (checked by every kernel entry point).
    pub kind: JobKind,
    /// Validated parameters.
    pub params: Params,
}

impl JobSpec {
    /// Builds a spec from a kind name and JSON parameters (an object, or `null` for
    /// all defaults). Unknown kinds, unknown keys, wrong types, out-of-range values
    /// and regexes that do not compile are rejected with a descriptive error.
    ///
    /// Parameters:
    /// - `word-count`: `top` (default 20);
    /// - `grep`: `pattern` (required), `case_insensitive` (default false),
    ///   `max_samples` (default 10);
    /// - `log-analysis`: `preset`, `format`, `masks`, `similarity`, `depth`,
    ///   `assignments` (default false), `alert_samples` (default 10); see
    ///   [`loganalysis`];
    /// - `search-stats`: `q` (required); `search`: `q`, `k` (default 10,
    ///   1–1000), `stats` (a `search-stats` result's `stats`); see [`search`].
    pub fn new(kind: &str, params: &Value) -> Result<JobSpec, ComputeError> {
        let kind: JobKind = kind.parse()?;
        let params = match kind {
            JobKind::WordCount => Params::WordCount(WordCountParams::from_json(params)?),
            JobKind::Grep => Params::Grep(GrepParams::from_json(params)?),
            JobKind::LogAnalysis => Params::LogAnalysis(Box::new(LogParams::from_json(params)?)),
            JobKind::SearchStats => Params::SearchStats(StatsParams::from_json(params)?),
            JobKind::Search => Params::Search(Box::new(SearchParams::from_json(params)?)),
            JobKind::Pipeline => Params::Pipeline(Box::new(PipelineParams::from_json(params)?)),
        };
        Ok(JobSpec { kind, params })
    }

    /// Digest of the kind and normalized parameters; recorded in every partial.
    pub fn fingerprint(&self) -> String {
        let v = json!({"kind": self.params.kind().as_str(), "params": self.params.to_json()});
        digest_hex(&canonical_json(&v))
    }

    fn check(&self) -> Result<(), ComputeError> {
        if self.kind != self.params.kind() {
            return Err(ComputeError::InconsistentSpec { kind: self.kind, params: self.params.kind() });
        }
        Ok(())
    }

    fn check_partial(&self, p: &Partial, fp: &str) -> Result<(), ComputeError> {
        if p.kind() != self.kind {
            return Err(ComputeError::KindMismatch { expected: self.kind, found: p.kind() });
        }
        if p.spec != fp {
            return Err(ComputeError::SpecMismatch { expected: fp.to_owned(), found: p.spec.clone() });
        }
        match (&self.params, &p.data) {
            (Params::Grep(gp), PartialData::Grep(g)) => g.check_params(gp),
            (Params::LogAnalysis(lp), PartialData::LogAnalysis(l)) => l.check_params(lp),
            (Params::SearchStats(sp), PartialData::SearchStats(x)) => x.validate(sp),
            (Params::Search(sp), PartialData::Search(x)) => x.validate(sp),
            (Params::Pipeline(_), PartialData::Pipeline(x)) => x.validate(),
            _ => Ok(()),
        }
    }

    /// Whether partials may be merged in any order with the same bytes
    /// (word counts: counting is commutative), so that a driver can fold
    /// them as they arrive instead of waiting for unit order. Grep and log
    /// analysis keep samples and first occurrences in input order: no.
    pub fn commutative(&self) -> bool {
        matches!(self.params, Params::WordCount(_) | Params::SearchStats(_) | Params::Search(_) | Params::Pipeline(_))
    }

    /// The partial of zero lines: the identity of [`merge`](Self::merge) (what `map`
    /// gives for an empty unit), to finish a job whose input is empty.
    pub fn empty_partial(&self) -> Partial {
        let data = match &self.params {
            Params::WordCount(_) => PartialData::WordCount(wordcount::WcPartial::default()),
            Params::Grep(_) => PartialData::Grep(grep::GrepPartial::default()),
            Params::LogAnalysis(p) => PartialData::LogAnalysis(loganalysis::LogPartial::empty(p)),
            Params::SearchStats(p) => PartialData::SearchStats(search::StatsPartial::empty(p)),
            Params::Search(_) => PartialData::Search(search::SearchPartial::default()),
            Params::Pipeline(_) => PartialData::Pipeline(Default::default()),
        };
        Partial { spec: self.fingerprint(), data }
    }

    /// Maps one unit (a chunk of whole lines, as cut by [`split_chunks`]) to its partial.
    pub fn map(&self, chunk: &[u8]) -> Result<Partial, ComputeError> {
        self.check()?;
        let data = match &self.params {
            Params::WordCount(_) => PartialData::WordCount(wordcount::map(chunk)?),
            Params::Grep(p) => PartialData::Grep(grep::map(p, chunk)?),
            Params::LogAnalysis(p) => PartialData::LogAnalysis(loganalysis::map(p, chunk)?),
            Params::SearchStats(p) => PartialData::SearchStats(search::map_stats(p, chunk)?),
            Params::Search(p) => PartialData::Search(search::map_search(p, chunk)?),
            Params::Pipeline(p) => PartialData::Pipeline(pipeline::map(p, chunk)?),
        };
        Ok(Partial { spec: self.fingerprint(), data })
    }

    /// [`JobSpec::map`] of the unit whose BLAKE3 is `key`, its bytes read
    /// by `load` only when needed: a search kind whose unit is indexed
    /// already reads nothing (a node answering a query over its own
    /// chunks). `load` must give bytes that hash to `key`.
    pub fn map_named(
        &self,
        key: [u8; 32],
        load: impl FnOnce() -> Result<Vec<u8>, ComputeError>,
    ) -> Result<Partial, ComputeError> {
        self.check()?;
        let data = match &self.params {
            Params::SearchStats(p) => {
                PartialData::SearchStats(search::map_stats_ix(p, &*search::named_index(key, load)?)?)
            }
            Params::Search(p) => PartialData::Search(search::map_search_ix(p, &*search::named_index(key, load)?, key)?),
            _ => return self.map(&load()?),
        };
        Ok(Partial { spec: self.fingerprint(), data })
    }

    /// Combines the partial of earlier units `a` with that of the units right after
    /// them, `b`. Associative: `merge(merge(a,b),c)` and `merge(a,merge(b,c))` encode
    /// to the same bytes.
    pub fn merge(&self, a: Partial, b: Partial) -> Result<Partial, ComputeError> {
        self.check()?;
        let fp = self.fingerprint();
        self.check_partial(&a, &fp)?;
        self.check_partial(&b, &fp)?;
        let data = match (&self.params, a.data, b.data) {
            (Params::WordCount(_), PartialData::WordCount(x), PartialData::WordCount(y)) => {
                PartialData::WordCount(wordcount::merge(x, y)?)
            }
            (Params::Grep(p), PartialData::Grep(x), PartialData::Grep(y)) => PartialData::Grep(grep::merge(p, x, y)?),
            (Params::LogAnalysis(p), PartialData::LogAnalysis(x), PartialData::LogAnalysis(y)) => {
                PartialData::LogAnalysis(loganalysis::merge(p, x, y)?)
            }
            (Params::SearchStats(_), PartialData::SearchStats(x), PartialData::SearchStats(y)) => {
                PartialData::SearchStats(search::merge_stats(x, y)?)
            }
            (Params::Search(p), PartialData::Search(x), PartialData::Search(y)) => {
                PartialData::Search(search::merge_search(p, x, y)?)
            }
            (Params::Pipeline(_), PartialData::Pipeline(x), PartialData::Pipeline(y)) => {
                PartialData::Pipeline(pipeline::merge(x, y)?)
            }
            (_, x, _) => return Err(ComputeError::KindMismatch { expected: self.kind, found: x.kind() }),
        };
        Ok(Partial { spec: fp, data })
    }

    /// Folds the next unit's partial into what the earlier units folded to
    /// (`None` before the first unit).
    pub fn merge_next(&self, acc: Option<Partial>, next: Partial) -> Result<Partial, ComputeError> {
        match acc {
            None => Ok(next),
            Some(a) => self.merge(a, next),
        }
    }

    /// Folds encoded partials, in unit order, into `acc`: the one fold that
    /// the node, the simulator and the single-process reference share, and
    /// that carries the byte-exact invariant.
    pub fn fold_encoded<B: AsRef<[u8]>>(
        &self,
        acc: Option<Partial>,
        partials: impl IntoIterator<Item = B>,
    ) -> Result<Option<Partial>, ComputeError> {
        let mut acc = acc;
        for b in partials {
            acc = Some(self.merge_next(acc, Partial::from_bytes(b.as_ref())?)?);
        }
        Ok(acc)
    }

    /// Finishes what the units folded to (nothing: no units) into the
    /// result's canonical bytes.
    pub fn finish_bytes(&self, acc: Option<Partial>) -> Result<Vec<u8>, ComputeError> {
        let result = self.finish(acc.unwrap_or_else(|| self.empty_partial()))?;
        Ok(canonical_json(&result))
    }

    /// Turns the partial of all units into the job's JSON result.
    pub fn finish(&self, p: Partial) -> Result<Value, ComputeError> {
        self.check()?;
        self.check_partial(&p, &self.fingerprint())?;
        match (&self.params, &p.data) {
            (Params::WordCount(wp), PartialData::WordCount(x)) => Ok(wordcount::finish(wp, x)),
            (Params::Grep(_), PartialData::Grep(x)) => Ok(grep::finish(x)),
            (Params::LogAnalysis(lp), PartialData::LogAnalysis(x)) => loganalysis::finish(lp, x),
            (Params::SearchStats(sp), PartialData::SearchStats(x)) => Ok(search::finish_stats(sp, x)),
            (Params::Search(sp), PartialData::Search(x)) => Ok(search::finish_search(sp, x)),
            (Params::Pipeline(pp), PartialData::Pipeline(x)) => Ok(pipeline::finish(pp, x)),
            _ => Err(ComputeError::KindMismatch { expected: self.kind, found: p.kind() }),
        }
    }
}

/// Lowercase hex BLAKE3 digest of `bytes` (64 characters).
pub fn digest_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Deterministic encoding of a JSON value: compact, object keys sorted by their
/// UTF-8 bytes, strings escaped as `serde_json` does, numbers as `serde_json` prints
/// them. Independent of whether `serde_json` preserves insertion order.
pub fn canonical_json(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_str(s, out),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_unstable();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                if let Some(x) = m.get(k) {
                    write_canonical(x, out);
                }
            }
            out.push(b'}');
        }
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    // Serializing a &str to JSON cannot fail.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

/// Outcome of [`run_local`].
#[derive(Clone, Debug, PartialEq)]
pub struct LocalRun {
    /// The job's result.
    pub result: Value,
    /// [`canonical_json`] of `result`.
    pub result_bytes: Vec<u8>,
    /// [`digest_hex`] of `result_bytes`.
    pub result_digest: String,
    /// Number of units the inputs were split into.
    pub units: usize,
}

/// The units of `inputs`: every input split with [`split_chunks`], in (input, chunk)
/// order.
pub fn units<'a>(inputs: &[&'a [u8]], chunk_size: usize) -> Vec<&'a [u8]> {
    inputs.iter().flat_map(|d| split_chunks(d, chunk_size).into_iter().map(move |r| &d[r])).collect()
}

/// Runs a job on this machine: splits every input into units, maps them on
/// `threads` scoped worker threads (at least one), and merges the partials in unit
/// order as they become available. The result is byte-identical for any `threads`.
pub fn run_local(
    spec: &JobSpec,
    inputs: &[&[u8]],
    chunk_size: usize,
    threads: usize,
) -> Result<LocalRun, ComputeError> {
    let units = units(inputs, chunk_size);
    let n = units.len();
    let workers = threads.clamp(1, n.max(1));
    let last = if n == 0 {
        spec.empty_partial()
    } else if workers == 1 {
        let mut acc: Option<Partial> = None;
        for u in &units {
            acc = Some(spec.merge_next(acc, spec.map(u)?)?);
        }
        acc.unwrap_or_else(|| spec.empty_partial())
    } else {
        map_parallel(spec, &units, workers)?
    };
    let result = spec.finish(last)?;
    let result_bytes = canonical_json(&result);
    let result_digest = digest_hex(&result_bytes);
    Ok(LocalRun { result, result_bytes, result_digest, units: n })
}

fn map_parallel(spec: &JobSpec, units: &[&[u8]], workers: usize) -> Result<Partial, ComputeError> {
    let n = units.len();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<(usize, Result<Partial, ComputeError>)>();
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            handles.push(s.spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if tx.send((i, spec.map(units[i]))).is_err() {
                    break;
                }
            }));
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut acc: Option<Partial> = None;
        let mut want = 0usize;
        let mut failure: Option<ComputeError> = None;
        for (i, r) in rx {
            if failure.is_some() {
                continue;
            }
            pending.insert(i, r);
            while let Some(r) = pending.remove(&want) {
                let step = r.and_then(|p| spec.merge_next(acc.take(), p));
                match step {
                    Ok(p) => acc = Some(p),
                    Err(e) => {
                        failure = Some(e);
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
                want += 1;
            }
        }
        // Join every worker (no short-circuit) so a panic is reported, not re-raised.
        let mut panicked = false;
        for h in handles {
            panicked |= h.join().is_err();
        }
        if let Some(e) = failure {
            return Err(e);
        }
        match acc {
            Some(p) if want == n && !panicked => Ok(p),
            _ => Err(ComputeError::WorkerPanic),
        }
    })
}

// ---- parameter helpers -------------------------------------------------------

pub(crate) fn params_object(kind: JobKind, v: &Value, allowed: &[&str]) -> Result<Map<String, Value>, ComputeError> {
    let obj = match v {
        Value::Null => return Ok(Map::new()),
        Value::Object(m) => m,
        _ => return Err(ComputeError::params(kind, "params must be a JSON object")),
    };
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ComputeError::params(kind, format!("unknown parameter {k:?} (allowed: {})", allowed.join(", "))));
    }
    Ok(obj.clone())
}

pub(crate) fn opt_usize(
    kind: JobKind,
    obj: &Map<String, Value>,
    key: &str,
    min: u64,
    max: u64,
) -> Result<Option<usize>, ComputeError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(x) if (min..=max).contains(&x) => {
                usize::try_from(x).map(Some).map_err(|_| ComputeError::params(kind, format!("`{key}` is too large")))
            }
            _ => Err(ComputeError::params(kind, format!("`{key}` must be an integer between {min} and {max}"))),
        },
    }
}

pub(crate) fn opt_bool(kind: JobKind, obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, ComputeError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ComputeError::params(kind, format!("`{key}` must be true or false"))),
    }
}

pub(crate) fn opt_str<'a>(
    kind: JobKind,
    obj: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, ComputeError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ComputeError::params(kind, format!("`{key}` must be a string"))),
    }
}

/// Parses a byte size such as `1048576`, `512MiB`, `4M` or `2G` (B, K/KB,
/// KiB, M/MB, MiB, G/GB, GiB); at least one byte. Shared by the node's and
/// the cluster tool's command lines.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a size like 512MiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} in {s:?} (use B, KiB, MiB, GiB, K, M, G)")),
    };
    let v = n * mult as f64;
    if !(v.is_finite() && v >= 1.0) {
        return Err(format!("{s:?} must be at least one byte"));
    }
    Ok(v as u64)
}
