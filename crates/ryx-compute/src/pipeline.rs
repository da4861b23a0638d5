//! `pipeline`: a stream's stages over log lines, counted per event-time
//! window — what a standing stream (`POST /v1/streams`) computes for each
//! window it closes, and what `ryx-node exec --kind pipeline` computes over
//! files in one process.
//!
//! # Stages
//! Each line (trimmed) goes through `stages` in order; each stage is a JSON
//! object with one key:
//! - `{"filter": RE}` keeps the lines the regex matches, `{"exclude": RE}`
//!   drops them;
//! - `{"template": true}` adds to the line's key its *template*: the content
//!   after the detected header with variables masked to `<*>` (the masking
//!   of `log-analysis`, one line at a time, so it depends on nothing else);
//! - `{"level": true}` adds the detected level (`-` when none);
//! - `{"field": RE}` adds the regex's first capture group (or whole match),
//!   `-` when it does not match;
//! - `{"sum": RE}` sums the first capture group as a decimal number (exact,
//!   in millionths) beside the count; a line where it does not match, or
//!   that does not hold a number, adds 0 and is counted in `unsummed`.
//!
//! # Event time and windows
//! A line's event time comes from its own timestamp: with `time_regex`,
//! the regex's named groups (`year month day hour minute second frac`, or
//! `epoch` seconds, or `epoch_ms`); without, the first of the built-in
//! shapes found in the line's first [`TIME_SCAN`] bytes (ISO 8601 with an
//! optional zone, `YYYY/MM/DD HH:MM:SS`, `YY/MM/DD HH:MM:SS`, `YYMMDD
//! HHMMSS`, `Mon DD HH:MM:SS [YYYY]`, `MM-DD HH:MM:SS`, 10- or 13-digit
//! epoch). A shape without a year takes `year` (default 1970); times without
//! a zone are UTC. A line without a timestamp is counted in `untimed` and
//! in no window.
//!
//! Windows are `window_ms` long and start every `slide_ms` (default: equal,
//! tumbling), aligned to the epoch; a line is in every window that holds
//! its time. `from_ms`/`to_ms` keep only windows that start in `[from,
//! to)` (the line counts `lines`, `dropped`, `untimed` are of every line
//! read). Each window lists its line count and its `top` keys by count (then
//! key); counts are integers and sums exact, so the partials merge in any
//! order to the same bytes.

use crate::chunk::{lines, trim};
use crate::error::ComputeError;
use crate::loganalysis::generic;
use crate::JobKind;
use regex::bytes::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

/// Bytes at the start of a line searched for a built-in timestamp.
pub const TIME_SCAN: usize = 96;
/// Windows one line may fall in (`window_ms / slide_ms`) at most.
pub const MAX_OVERLAP: u64 = 20;
/// Distinct keys one window may hold at most.
pub const MAX_KEYS: usize = 1 << 20;
/// Windows one partial may hold at most.
pub const MAX_WINDOWS: usize = 1 << 20;
/// Stages at most.
pub const MAX_STAGES: usize = 16;
/// Longest key part kept (longer parts are cut at a character boundary).
pub const MAX_PART: usize = 1024;
/// Longest key (all its parts) kept.
pub const MAX_KEY: usize = 4096;
/// (window, key) counts one chunk may hold at most while it is mapped.
pub const MAX_ENTRIES: usize = 4 << 20;
const SEP: char = '\u{1f}';

#[derive(Clone, Debug)]
enum Stage {
    Filter(Regex),
    Exclude(Regex),
    Template,
    Level,
    Field(Regex),
    Sum(Regex),
}

/// Typed, validated parameters of a `pipeline` job.
#[derive(Clone, Debug)]
pub struct PipelineParams {
    stages: Vec<Stage>,
    stage_json: Vec<Value>,
    time_regex: Option<Regex>,
    year: i64,
    window_ms: i64,
    slide_ms: i64,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    top: usize,
    /// Digest of the parameters that decide a chunk's windows (all but
    /// `from_ms`, `to_ms` and `top`): the cache's key with the chunk's.
    core: [u8; 32],
}

fn regex(kind: JobKind, param: String, v: &Value) -> Result<Regex, ComputeError> {
    let Some(p) = v.as_str() else { return Err(ComputeError::params(kind, format!("`{param}` must be a string"))) };
    RegexBuilder::new(p).size_limit(16 << 20).build().map_err(|e| ComputeError::InvalidRegex {
        kind,
        param,
        pattern: p.to_string(),
        reason: e.to_string(),
    })
}

fn opt_i64(
    kind: JobKind,
    obj: &Map<String, Value>,
    key: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ComputeError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
            _ => Err(ComputeError::params(kind, format!("`{key}` must be an integer between {min} and {max}"))),
        },
    }
}

/// Epoch milliseconds this kernel accepts (years 1 to 9999, about).
const MS_RANGE: (i64, i64) = (-62_000_000_000_000, 253_000_000_000_000);

impl PipelineParams {
    pub(crate) fn from_json(v: &Value) -> Result<Self, ComputeError> {
        let kind = JobKind::Pipeline;
        let obj = crate::params_object(
            kind,
            v,
            &["stages", "time_regex", "year", "window_ms", "slide_ms", "from_ms", "to_ms", "top"],
        )?;
        let stage_json: Vec<Value> = match obj.get("stages") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(ComputeError::params(kind, "`stages` must be a list of stage objects")),
        };
        if stage_json.len() > MAX_STAGES {
            return Err(ComputeError::params(kind, format!("at most {MAX_STAGES} stages")));
        }
        let mut stages = Vec::with_capacity(stage_json.len());
        let mut sums = 0;
        for (i, s) in stage_json.iter().enumerate() {
            let one = s.as_object().filter(|m| m.len() == 1).and_then(|m| m.iter().next());
            let Some((op, arg)) = one else {
                return Err(ComputeError::params(kind, format!("stages[{i}] must be an object with one key")));
            };
            let flag = |arg: &Value| {
                if arg == &Value::Bool(true) {
                    Ok(())
                } else {
                    Err(ComputeError::params(kind, format!("stages[{i}]: `{op}` takes `true`")))
                }
            };
            let param = format!("stages[{i}].{op}");
            stages.push(match op.as_str() {
                "filter" => Stage::Filter(regex(kind, param, arg)?),
                "exclude" => Stage::Exclude(regex(kind, param, arg)?),
                "field" => Stage::Field(regex(kind, param, arg)?),
                "sum" => {
                    sums += 1;
                    Stage::Sum(regex(kind, param, arg)?)
                }
                "template" => flag(arg).map(|_| Stage::Template)?,
                "level" => flag(arg).map(|_| Stage::Level)?,
                _ => {
                    return Err(ComputeError::params(
                        kind,
                        format!(
                            "stages[{i}]: unknown stage {op:?} (known: filter, exclude, template, level, field, sum)"
                        ),
                    ))
                }
            });
        }
        if sums > 1 {
            return Err(ComputeError::params(kind, "at most one `sum` stage"));
        }
        let time_regex = match obj.get("time_regex") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let re = regex(kind, "time_regex".into(), v)?;
                let names: Vec<&str> = re.capture_names().flatten().collect();
                let civil = ["year", "month", "day", "hour", "minute", "second"].iter().all(|n| names.contains(n));
                if !(civil || names.contains(&"epoch") || names.contains(&"epoch_ms")) {
                    return Err(ComputeError::params(
                        kind,
                        "`time_regex` needs named groups year, month, day, hour, minute, second (and frac), or epoch, or epoch_ms",
                    ));
                }
                Some(re)
            }
        };
        let year = opt_i64(kind, &obj, "year", 1, 9999)?.unwrap_or(1970);
        let day = 86_400_000 * 366;
        let window_ms = opt_i64(kind, &obj, "window_ms", 1, day)?.unwrap_or(60_000);
        let slide_ms = opt_i64(kind, &obj, "slide_ms", 1, day)?.unwrap_or(window_ms);
        if slide_ms > window_ms || window_ms % slide_ms != 0 || (window_ms / slide_ms) as u64 > MAX_OVERLAP {
            return Err(ComputeError::params(
                kind,
                format!("`window_ms` must be a multiple of `slide_ms`, at most {MAX_OVERLAP} times it"),
            ));
        }
        let from_ms = opt_i64(kind, &obj, "from_ms", MS_RANGE.0, MS_RANGE.1)?;
        let to_ms = opt_i64(kind, &obj, "to_ms", MS_RANGE.0, MS_RANGE.1)?;
        let top = crate::opt_usize(kind, &obj, "top", 0, MAX_KEYS as u64)?.unwrap_or(10);
        let core = json!({
            "stages": stage_json,
            "time_regex": time_regex.as_ref().map(|r| r.as_str()),
            "year": year,
            "window_ms": window_ms,
            "slide_ms": slide_ms,
        });
        let core = *blake3::hash(&crate::canonical_json(&core)).as_bytes();
        Ok(PipelineParams { stages, stage_json, time_regex, year, window_ms, slide_ms, from_ms, to_ms, top, core })
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("stages".into(), Value::Array(self.stage_json.clone()));
        if let Some(re) = &self.time_regex {
            m.insert("time_regex".into(), json!(re.as_str()));
        }
        m.insert("year".into(), json!(self.year));
        m.insert("window_ms".into(), json!(self.window_ms));
        m.insert("slide_ms".into(), json!(self.slide_ms));
        if let Some(f) = self.from_ms {
            m.insert("from_ms".into(), json!(f));
        }
        if let Some(t) = self.to_ms {
            m.insert("to_ms".into(), json!(t));
        }
        m.insert("top".into(), json!(self.top));
        Value::Object(m)
    }

    /// Window length in ms.
    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    /// Slide in ms (= the window length when tumbling).
    pub fn slide_ms(&self) -> i64 {
        self.slide_ms
    }

    /// The event time of one line, in epoch ms (see the module docs).
    pub fn event_time(&self, line: &[u8]) -> Option<i64> {
        match &self.time_regex {
            Some(re) => custom_time(re, line, self.year),
            None => auto_time(line, self.year),
        }
    }

    /// `all`'s windows that `from_ms`/`to_ms` keep.
    fn restrict(&self, all: &PipelinePartial) -> PipelinePartial {
        let lo = self.from_ms.unwrap_or(i64::MIN);
        let windows = match self.to_ms {
            Some(hi) if hi <= lo => BTreeMap::new(),
            Some(hi) => all.windows.range(lo..hi).map(|(k, v)| (*k, v.clone())).collect(),
            None => all.windows.range(lo..).map(|(k, v)| (*k, v.clone())).collect(),
        };
        PipelinePartial { windows, ..*all }
    }
}

/// One window's keys: key parts joined by U+001F, count, sum in millionths.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PipelinePartial {
    /// Lines seen.
    lines: u64,
    /// Lines the stages dropped.
    dropped: u64,
    /// Lines without a timestamp.
    untimed: u64,
    /// Lines a `sum` stage found no number in.
    unsummed: u64,
    /// Window start → key → (count, sum in millionths), sorted.
    windows: BTreeMap<i64, BTreeMap<String, (u64, i128)>>,
}

impl PipelinePartial {
    pub(crate) fn validate(&self) -> Result<(), ComputeError> {
        if self.windows.len() > MAX_WINDOWS || self.windows.values().any(|w| w.len() > MAX_KEYS) {
            return Err(ComputeError::bad("a pipeline partial with too many windows or keys"));
        }
        Ok(())
    }
}

/// A decimal number as millionths (`None`: not a number, or too large).
fn millionths(s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    if int.len() > 12 {
        return None;
    }
    let mut v: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    v = v.checked_mul(1_000_000)?;
    let f6: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    v += f6.parse::<i64>().ok()?;
    Some(if neg { -v } else { v })
}

fn part(bytes: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(bytes).into_owned();
    if s.len() > MAX_PART {
        let mut cut = MAX_PART;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s.replace(SEP, " ")
}

fn capture<'a>(re: &Regex, line: &'a [u8]) -> Option<&'a [u8]> {
    let c = re.captures(line)?;
    c.get(1).or_else(|| c.get(0)).map(|m| m.as_bytes())
}

/// Chunks shorter than this are mapped every time (an open tail changes
/// between snapshots anyway); longer ones are kept in [`CACHE`].
pub const CACHE_MIN_CHUNK: usize = 64 << 10;
/// What the chunk cache may hold, by its estimate of the partials' size.
pub const CACHE_BYTES: usize = 64 << 20;

/// Every window of recent chunks, by (chunk digest, parameters' core): a
/// standing stream asks for the same sealed chunks again at each window it
/// closes, and reads only what is new.
struct Cache {
    /// Per (chunk, core): the windows, their estimated size, last use.
    map: HashMap<([u8; 32], [u8; 32]), Kept>,
    bytes: usize,
    clock: u64,
    hits: u64,
    misses: u64,
}

type Kept = (std::sync::Arc<PipelinePartial>, usize, u64);

static CACHE: std::sync::Mutex<Option<Cache>> = std::sync::Mutex::new(None);

/// Chunk cache hits and misses so far in this process.
pub fn cache_counts() -> (u64, u64) {
    let g = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref().map_or((0, 0), |c| (c.hits, c.misses))
}

fn estimate(p: &PipelinePartial) -> usize {
    64 + p.windows.values().map(|w| 32 + w.keys().map(|k| k.len() + 64).sum::<usize>()).sum::<usize>()
}

pub(crate) fn map(p: &PipelineParams, chunk: &[u8]) -> Result<PipelinePartial, ComputeError> {
    let out = map_cached(p, chunk)?;
    // Only the windows asked for count against the bounds: a chunk's other
    // windows (kept for later asks) never fail this job.
    check_bounds(&out)?;
    Ok(out)
}

fn map_cached(p: &PipelineParams, chunk: &[u8]) -> Result<PipelinePartial, ComputeError> {
    if chunk.len() < CACHE_MIN_CHUNK {
        return Ok(p.restrict(&map_all(p, chunk)?));
    }
    let key = (*blake3::hash(chunk).as_bytes(), p.core);
    {
        let mut g = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = g.as_mut() {
            c.clock += 1;
            let clock = c.clock;
            if let Some(e) = c.map.get_mut(&key) {
                e.2 = clock;
                let all = e.0.clone();
                c.hits += 1;
                drop(g);
                return Ok(p.restrict(&all));
            }
            c.misses += 1;
        }
    }
    let all = std::sync::Arc::new(map_all(p, chunk)?);
    let out = p.restrict(&all);
    let size = estimate(&all);
    let mut g = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let c = g.get_or_insert_with(|| Cache { map: HashMap::new(), bytes: 0, clock: 0, hits: 0, misses: 1 });
    if size <= CACHE_BYTES / 4 {
        c.clock += 1;
        if let Some(old) = c.map.insert(key, (all, size, c.clock)) {
            c.bytes -= old.1;
        }
        c.bytes += size;
        while c.bytes > CACHE_BYTES {
            let Some(k) = c.map.iter().min_by_key(|(_, v)| v.2).map(|(k, _)| *k) else { break };
            if let Some(old) = c.map.remove(&k) {
                c.bytes -= old.1;
            }
        }
    }
    Ok(out)
}

/// Every window of one chunk, `from_ms`/`to_ms` aside.
fn map_all(p: &PipelineParams, chunk: &[u8]) -> Result<PipelinePartial, ComputeError> {
    let mut out = PipelinePartial::default();
    // Each distinct key once; counts by (window, key index).
    let mut interned: HashMap<String, u32> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    let mut counts: HashMap<(i64, u32), (u64, i128)> = HashMap::new();
    let mut key = String::new();
    let mut msg = Vec::with_capacity(256);
    let mut toks = Vec::with_capacity(64);
    let overlap = p.window_ms / p.slide_ms;
    'lines: for raw in lines(chunk) {
        let line = trim(raw);
        if line.is_empty() {
            continue;
        }
        out.lines += 1;
        key.clear();
        let mut value = 0i64;
        let mut header: Option<generic::Split<'_>> = None;
        for s in &p.stages {
            let push = |k: &mut String, part_s: &str| {
                k.push(SEP);
                k.push_str(part_s);
            };
            match s {
                Stage::Filter(re) if !re.is_match(line) => {
                    out.dropped += 1;
                    continue 'lines;
                }
                Stage::Exclude(re) if re.is_match(line) => {
                    out.dropped += 1;
                    continue 'lines;
                }
                Stage::Filter(_) | Stage::Exclude(_) => {}
                Stage::Template => {
                    let h = header.get_or_insert_with(|| generic::split_header(line));
                    msg.clear();
                    generic::mask_content(h.content, &mut msg, &mut toks);
                    push(&mut key, &part(&msg));
                }
                Stage::Level => {
                    let h = header.get_or_insert_with(|| generic::split_header(line));
                    let lv = h.level.map_or_else(|| "-".to_string(), |l| part(trim(l)));
                    push(&mut key, &lv);
                }
                Stage::Field(re) => {
                    let f = capture(re, line).map_or_else(|| "-".to_string(), part);
                    push(&mut key, &f);
                }
                Stage::Sum(re) => match capture(re, line).and_then(millionths) {
                    Some(v) => value = v,
                    None => out.unsummed += 1,
                },
            }
        }
        let Some(t) = p.event_time(line) else {
            out.untimed += 1;
            continue;
        };
        if key.len() > MAX_KEY {
            let mut cut = MAX_KEY;
            while !key.is_char_boundary(cut) {
                cut -= 1;
            }
            key.truncate(cut);
        }
        let k = match interned.get(key.as_str()) {
            Some(&k) => k,
            None => {
                let k = u32::try_from(names.len()).map_err(|_| ComputeError::Overflow("keys"))?;
                interned.insert(key.clone(), k);
                names.push(key.clone());
                k
            }
        };
        let last = t.div_euclid(p.slide_ms) * p.slide_ms;
        for j in 0..overlap {
            let e = counts.entry((last - j * p.slide_ms, k)).or_insert((0, 0));
            e.0 += 1;
            e.1 += i128::from(value);
        }
        if counts.len() > MAX_ENTRIES {
            return Err(ComputeError::Overflow(
                "more distinct (window, key) counts in one chunk than a pipeline holds",
            ));
        }
    }
    for ((start, k), v) in counts {
        out.windows.entry(start).or_default().insert(names[k as usize].clone(), v);
    }
    Ok(out)
}

fn check_bounds(p: &PipelinePartial) -> Result<(), ComputeError> {
    if p.windows.len() > MAX_WINDOWS {
        return Err(ComputeError::Overflow("more windows than a pipeline holds (narrow from_ms/to_ms)"));
    }
    if p.windows.values().any(|w| w.len() > MAX_KEYS) {
        return Err(ComputeError::Overflow("more distinct keys in one window than a pipeline holds"));
    }
    Ok(())
}

pub(crate) fn merge(mut a: PipelinePartial, b: PipelinePartial) -> Result<PipelinePartial, ComputeError> {
    let add = |x: u64, y: u64| x.checked_add(y).ok_or(ComputeError::Overflow("a pipeline count"));
    a.lines = add(a.lines, b.lines)?;
    a.dropped = add(a.dropped, b.dropped)?;
    a.untimed = add(a.untimed, b.untimed)?;
    a.unsummed = add(a.unsummed, b.unsummed)?;
    for (start, keys) in b.windows {
        let w = a.windows.entry(start).or_default();
        for (k, (n, s)) in keys {
            let e = w.entry(k).or_insert((0, 0));
            e.0 = add(e.0, n)?;
            // Sums of i64 millionths from at most u64::MAX lines fit an
            // i128; a made-up partial may still overflow, in any order.
            e.1 = e.1.checked_add(s).ok_or(ComputeError::Overflow("a window's sum"))?;
        }
    }
    check_bounds(&a)?;
    Ok(a)
}

/// An instant in epoch ms as ISO 8601 UTC (`2026-12-07T01:02:03.000Z`).
pub fn iso(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = crate::corpus::civil_from_days(days);
    let (h, mi, s, f) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{f:03}Z")
}

pub(crate) fn finish(p: &PipelineParams, x: &PipelinePartial) -> Value {
    let has_sum = p.stages.iter().any(|s| matches!(s, Stage::Sum(_)));
    let windows: Vec<Value> = x
        .windows
        .iter()
        .map(|(&start, keys)| {
            let lines: u64 = keys.values().fold(0u64, |a, v| a.saturating_add(v.0));
            let mut ranked: Vec<(&String, &(u64, i128))> = keys.iter().collect();
            ranked.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(b.0)));
            if p.top > 0 {
                ranked.truncate(p.top);
            }
            let top: Vec<Value> = ranked
                .into_iter()
                .map(|(k, (n, s))| {
                    let parts: Vec<&str> = if k.is_empty() { Vec::new() } else { k.split(SEP).skip(1).collect() };
                    let mut o = json!({ "key": parts, "count": n });
                    if has_sum {
                        o["sum"] = json!(*s as f64 / 1e6);
                    }
                    o
                })
                .collect();
            json!({
                "start_ms": start,
                "end_ms": start + p.window_ms,
                "start": iso(start),
                "lines": lines,
                "keys": keys.len(),
                "top": top,
            })
        })
        .collect();
    json!({
        "lines": x.lines,
        "dropped": x.dropped,
        "untimed": x.untimed,
        "unsummed": x.unsummed,
        "window_ms": p.window_ms,
        "slide_ms": p.slide_ms,
        "windows": windows,
    })
}

// ---- time ---------------------------------------------------------------------

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Epoch ms of a civil time, `None` when a field is out of range.
fn civil_ms(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, ms: i64) -> Option<i64> {
    let ok = (1..=9999).contains(&y)
        && (1..=12).contains(&mo)
        && (1..=month_days(y, mo)).contains(&d)
        && (0..=23).contains(&h)
        && (0..=59).contains(&mi)
        && (0..=60).contains(&s);
    ok.then(|| ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60_000 + s * 1000 + ms)
}

fn month_days(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn num(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 18 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |a, &c| a * 10 + i64::from(c - b'0')))
}

/// Milliseconds of a fraction's digits (`"5"` → 500, `"123456"` → 123).
fn frac_ms(b: &[u8]) -> i64 {
    let mut ms = 0;
    for i in 0..3 {
        ms = ms * 10 + b.get(i).filter(|c| c.is_ascii_digit()).map_or(0, |c| i64::from(c - b'0'));
    }
    ms
}

fn month(b: &[u8]) -> Option<i64> {
    const M: [&[u8; 3]; 12] =
        [b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec"];
    let l = b.get(..3)?.to_ascii_lowercase();
    M.iter().position(|m| m[..] == l[..]).map(|i| i as i64 + 1)
}

fn custom_time(re: &Regex, line: &[u8], year: i64) -> Option<i64> {
    let c = re.captures(line)?;
    let g = |n: &str| c.name(n).map(|m| m.as_bytes());
    if let Some(e) = g("epoch_ms").and_then(num) {
        return Some(e);
    }
    if let Some(e) = g("epoch").and_then(num) {
        return e.checked_mul(1000);
    }
    let y = match g("year") {
        Some(y) if y.len() == 2 => 2000 + num(y)?,
        Some(y) => num(y)?,
        None => year,
    };
    let mo = g("month").and_then(|m| num(m).or_else(|| month(m)))?;
    civil_ms(
        y,
        mo,
        num(g("day")?)?,
        num(g("hour")?)?,
        num(g("minute")?)?,
        num(g("second")?)?,
        g("frac").map_or(0, frac_ms),
    )
}

/// Digits at `b[i..i+n]`.
fn digits(b: &[u8], i: usize, n: usize) -> Option<i64> {
    num(b.get(i..i + n)?)
}

fn at(b: &[u8], i: usize, c: u8) -> bool {
    b.get(i) == Some(&c)
}

/// `HH:MM:SS[.,frac]` at `b[i..]`: (h, m, s, ms, end).
fn clock(b: &[u8], i: usize) -> Option<(i64, i64, i64, i64, usize)> {
    if !(at(b, i + 2, b':') && at(b, i + 5, b':')) {
        return None;
    }
    let (h, m, s) = (digits(b, i, 2)?, digits(b, i + 3, 2)?, digits(b, i + 6, 2)?);
    let mut end = i + 8;
    let mut ms = 0;
    if matches!(b.get(end), Some(b'.' | b',')) && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
        let f = end + 1;
        end = f + b[f..].iter().take_while(|c| c.is_ascii_digit()).count();
        ms = frac_ms(&b[f..end]);
    }
    Some((h, m, s, ms, end))
}

/// A zone suffix at `b[i..]` (`Z`, `+HH:MM`, `+HHMM`, `-HH`): its offset in ms.
fn zone(b: &[u8], i: usize) -> i64 {
    match b.get(i) {
        Some(b'Z') => 0,
        Some(&c @ (b'+' | b'-')) => {
            let sign = if c == b'+' { 1 } else { -1 };
            let Some(h) = digits(b, i + 1, 2) else { return 0 };
            let m = digits(b, i + 3, 2).or_else(|| if at(b, i + 3, b':') { digits(b, i + 4, 2) } else { None });
            sign * (h * 60 + m.unwrap_or(0)) * 60_000
        }
        _ => 0,
    }
}

/// The first built-in timestamp shape that starts at `b[i]`.
fn shape_at(b: &[u8], i: usize, year: i64) -> Option<i64> {
    let c = *b.get(i)?;
    if i > 0 && b[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    if c.is_ascii_digit() {
        // YYYY-MM-DD[T ]HH:MM:SS / YYYY/MM/DD HH:MM:SS
        if let (Some(y), true) = (digits(b, i, 4), at(b, i + 4, b'-') || at(b, i + 4, b'/')) {
            let sep = b[i + 4];
            if at(b, i + 7, sep) && matches!(b.get(i + 10), Some(b'T' | b' ')) {
                let (mo, d) = (digits(b, i + 5, 2)?, digits(b, i + 8, 2)?);
                let (h, mi, s, ms, end) = clock(b, i + 11)?;
                return civil_ms(y, mo, d, h, mi, s, ms).map(|t| t - zone(b, end));
            }
        }
        // YY/MM/DD HH:MM:SS (Spark)
        if at(b, i + 2, b'/') && at(b, i + 5, b'/') && at(b, i + 8, b' ') {
            let (y, mo, d) = (digits(b, i, 2)?, digits(b, i + 3, 2)?, digits(b, i + 6, 2)?);
            let (h, mi, s, ms, _) = clock(b, i + 9)?;
            return civil_ms(2000 + y, mo, d, h, mi, s, ms);
        }
        // MM-DD HH:MM:SS(.mmm) (Android)
        if at(b, i + 2, b'-') && at(b, i + 5, b' ') {
            let (mo, d) = (digits(b, i, 2)?, digits(b, i + 3, 2)?);
            let (h, mi, s, ms, _) = clock(b, i + 6)?;
            return civil_ms(year, mo, d, h, mi, s, ms);
        }
        // YYMMDD HHMMSS (HDFS)
        if at(b, i + 6, b' ') && !b.get(i + 13).is_some_and(u8::is_ascii_alphanumeric) {
            if let (Some(_), Some(_)) = (digits(b, i, 6), digits(b, i + 7, 6)) {
                let (y, mo, d) = (digits(b, i, 2)?, digits(b, i + 2, 2)?, digits(b, i + 4, 2)?);
                let (h, mi, s) = (digits(b, i + 7, 2)?, digits(b, i + 9, 2)?, digits(b, i + 11, 2)?);
                return civil_ms(2000 + y, mo, d, h, mi, s, 0);
            }
        }
        // Epoch seconds (10 digits) or ms (13), a whole token of its own
        // (not `id=1234567890`, not the digits of `0.1234567890`).
        let n = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        let before = i.checked_sub(1).map(|j| b[j]);
        let alone = before.map_or(true, |c| c.is_ascii_whitespace() || matches!(c, b'[' | b'(' | b'"' | b',' | b';'));
        let whole = alone && !b.get(i + n).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b':');
        if whole && (n == 10 || n == 13) {
            let v = digits(b, i, n)?;
            return Some(if n == 10 { v * 1000 } else { v });
        }
        return None;
    }
    if c.is_ascii_alphabetic() {
        // [Day ]Mon DD HH:MM:SS[ YYYY]
        let mut j = i;
        if b.get(j..j + 4).is_some_and(|d| d[3] == b' ' && d[..3].iter().all(u8::is_ascii_alphabetic))
            && month(&b[j..]).is_none()
        {
            j += 4;
        }
        let mo = month(b.get(j..)?)?;
        if !at(b, j + 3, b' ') {
            return None;
        }
        j += 4;
        if at(b, j, b' ') {
            j += 1;
        }
        let dl = b[j..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=2).contains(&dl) || !at(b, j + dl, b' ') {
            return None;
        }
        let d = digits(b, j, dl)?;
        let (h, mi, s, ms, end) = clock(b, j + dl + 1)?;
        // A year is four digits standing alone (not `2001:db8::1`).
        let year_after = at(b, end, b' ')
            && !b.get(end + 5).is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b':' | b'.' | b'-' | b'/'));
        let y = if year_after { digits(b, end + 1, 4).unwrap_or(year) } else { year };
        return civil_ms(y, mo, d, h, mi, s, ms);
    }
    None
}

fn auto_time(line: &[u8], year: i64) -> Option<i64> {
    // Where a timestamp may start is bounded; it is read from the whole
    // line (a zone or a fraction past the bound still counts).
    (0..line.len().min(TIME_SCAN)).find_map(|i| shape_at(line, i, year))
}

#[cfg(test)]
mod tests;
