//! `log-analysis`: header parsing, variable masking, Drain template mining, level
//! counts and alerts.
//!
//! # Pipeline
//! 1. Each line (without `'\n'`, surrounding whitespace trimmed) is split into header
//!    and content. With a header layout (`params.format`, or the preset's) a line that
//!    does not fit keeps the whole trimmed line as content, has no level, and is counted
//!    in `unparsed`. Without a layout the header is detected line by line
//!    ([`generic`]: timestamps, level, component), so no line is `unparsed`, and the
//!    result lists the most common detected layouts under `headers`.
//! 2. Variables are masked to `<*>`: with `params.masks` (or the preset's) each regex is
//!    applied in order; otherwise the built-in shape masks of [`generic`] (IPs,
//!    host:port, URLs, paths, hex, UUIDs, numbers with units, sizes, durations, dates and
//!    times...). The result is split into tokens at ASCII whitespace.
//! 3. Template mining is Drain ([`drain`](self)) with `params.similarity` and
//!    `params.depth`. Without a preset the similarity is the share of the template's
//!    *constant* tokens that the message matches (`similarity_over: "constants"`; the
//!    reference divides by all tokens, `"tokens"`, which presets keep), and each Drain
//!    group is then split by its wildcard positions that hold at most `params.split`
//!    distinct plain words (Brain's observation that a position with few word values is
//!    a constant with variants; 0 = off, the preset default). With the built-in masks a
//!    template position that varies keeps its common punctuated prefix and suffix
//!    (`user=<*>`).
//!
//! The defaults without a preset (similarity [`DEFAULT_SIMILARITY`], depth
//! [`DEFAULT_DEPTH`], split [`DEFAULT_SPLIT`]) were chosen on the ten Loghub 2k
//! samples; `docs/log-analysis.md` has the figures and the leave-one-out check. The
//! default path holds no per-dataset knowledge; presets remain an explicit opt-in.
//!
//! # Distribution
//! `map` does steps 1–2 and keeps the *distinct masked messages* of its unit in order
//! of first appearance, with counts (and, with `assignments`, the message index of
//! every line). `merge` concatenates: it appends the later unit's messages that the
//! earlier one lacks and remaps indices. That state is a pure function of the
//! concatenated lines, so `merge` is exactly associative and the result does not
//! depend on how the input was cut into units or how merges were grouped. `finish`
//! runs Drain once over the distinct messages in order of first appearance, which is
//! what the reference does line by line, except that a message seen again is always
//! put back in the group of its first occurrence. Header detection and masking use one
//! line only, and the group split and template text are functions of the merged
//! distinct messages, so none depends on the chunking either; detected header shapes
//! are counted per shape and summed by `merge`. Partial size is therefore
//! proportional to the number of distinct masked messages, not to the number of lines
//! (plus 4 bytes a line with `assignments`).
//!
//! # Templates
//! Groups whose final templates have the same text are one template. Template ids are
//! 1, 2, 3... in order of first appearance in the input; `templates` is sorted by id.
//!
//! # Alerts
//! A line is an alert when its `<Level>` field (ASCII case-insensitive) is one of
//! `EMERG EMERGENCY ALERT CRIT CRITICAL FATAL SEVERE ERROR ERR FAILURE FAILED FAIL
//! PANIC` or the Android letters `E`/`F`/`A`; when the level is a known non-alert level
//! (`INFO NOTICE DEBUG TRACE WARN WARNING VERBOSE FINE CONFIG` and `I D V W`) the line
//! is not an alert; when there is no level field or it is something else (e.g. a host
//! name) the line is an alert when its content holds, as a whole word in any case, one
//! of `error(s) fail(s|ed|ure|ures) fatal panic critical severe exception segfault
//! abort(ed) crash(ed) corrupt(ed) denied refused unreachable timeout "timed out"`.
//! Other header fields (BGL's `<Label>` for instance) are never used. `samples` holds
//! the first `params.alert_samples` (default 10) alert lines, trimmed, as lossy UTF-8.

pub(crate) mod drain;
pub(crate) mod generic;
pub(crate) mod layout;
pub mod presets;

use crate::bytes::{lossy, ByteStr};
use crate::chunk::{is_space, lines, trim};
use crate::error::ComputeError;
use crate::JobKind;
use layout::Layout;
use presets::Preset;
use regex::bytes::{NoExpand, Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// Default similarity threshold without a preset (chosen on the Loghub samples, see
/// the module docs).
pub const DEFAULT_SIMILARITY: f64 = 0.6;
/// Default Drain depth without a preset.
pub const DEFAULT_DEPTH: usize = 4;
/// Default `split` without a preset (see [`LogParams::split`]).
pub const DEFAULT_SPLIT: usize = 3;
/// Maximum children of a Drain tree node (the reference's `maxChild`).
pub const MAX_CHILD: usize = 100;

const ALERT_WORDS: &str = r"(?i-u)\b(?:errors?|fail(?:s|ed|ures?)?|fatal|panic|critical|severe|exception|segfault|abort(?:ed)?|crash(?:ed)?|corrupt(?:ed)?|denied|refused|unreachable|timeout|timed\s+out)\b";

/// Typed, validated parameters of a `log-analysis` job.
#[derive(Clone, Debug)]
pub struct LogParams {
    preset: Option<&'static Preset>,
    format: Option<String>,
    layout: Option<Layout>,
    masks: Vec<String>,
    /// No `masks` and no preset: the built-in shape masks of [`generic`].
    builtin_masks: bool,
    mask_res: Vec<Regex>,
    similarity: f64,
    depth: usize,
    constant_share: bool,
    split: usize,
    assignments: bool,
    alert_samples: usize,
    alert_re: Regex,
}

impl LogParams {
    /// Name of the preset, if one was given.
    pub fn preset(&self) -> Option<&'static str> {
        self.preset.map(|p| p.name)
    }

    /// Header layout in use (explicit `format`, else the preset's), if any.
    pub fn format(&self) -> Option<&str> {
        self.format.as_deref()
    }

    /// Mask regexes in application order (empty with the built-in masks).
    pub fn masks(&self) -> &[String] {
        &self.masks
    }

    /// Drain similarity threshold.
    pub fn similarity(&self) -> f64 {
        self.similarity
    }

    /// Whether Drain's similarity is the share of the template's constant tokens that
    /// match (`similarity_over: "constants"`, the default without a preset) rather than
    /// the share of all tokens (`"tokens"`, the reference's, the default with a preset).
    pub fn constant_share(&self) -> bool {
        self.constant_share
    }

    /// Largest number of distinct words at a wildcard position for which a Drain group
    /// is split by that position (0: never split).
    pub fn split(&self) -> usize {
        self.split
    }

    /// Drain tree depth.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Whether the result lists the template id of every line.
    pub fn assignments(&self) -> bool {
        self.assignments
    }

    /// Number of alert lines kept as samples.
    pub fn alert_samples(&self) -> usize {
        self.alert_samples
    }

    pub(crate) fn from_json(v: &Value) -> Result<Self, ComputeError> {
        let kind = JobKind::LogAnalysis;
        let obj = crate::params_object(
            kind,
            v,
            &[
                "preset",
                "format",
                "masks",
                "similarity",
                "similarity_over",
                "split",
                "depth",
                "assignments",
                "alert_samples",
            ],
        )?;
        let preset = match crate::opt_str(kind, &obj, "preset")? {
            None => None,
            Some(name) => Some(presets::preset(name).ok_or_else(|| {
                let names: Vec<&str> = presets::PRESETS.iter().map(|p| p.name).collect();
                ComputeError::params(kind, format!("unknown preset {name:?} (known: {})", names.join(", ")))
            })?),
        };
        let format =
            crate::opt_str(kind, &obj, "format")?.map(str::to_owned).or_else(|| preset.map(|p| p.format.to_owned()));
        let layout = match &format {
            None => None,
            Some(f) => {
                Some(Layout::compile(f).map_err(|e| ComputeError::params(kind, format!("bad `format` {f:?}: {e}")))?)
            }
        };
        let builtin_masks = preset.is_none() && matches!(obj.get("masks"), None | Some(Value::Null));
        let masks: Vec<String> = match obj.get("masks") {
            None | Some(Value::Null) => preset.map_or(&[][..], |p| p.masks).iter().map(|s| (*s).to_owned()).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|m| match m {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(ComputeError::params(kind, "`masks` must be a list of strings")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(ComputeError::params(kind, "`masks` must be a list of strings")),
        };
        if masks.len() > 256 {
            return Err(ComputeError::params(kind, "at most 256 `masks`"));
        }
        let mask_res = masks
            .iter()
            .enumerate()
            .map(|(i, m)| {
                RegexBuilder::new(m).size_limit(32 << 20).build().map_err(|e| ComputeError::InvalidRegex {
                    kind,
                    param: format!("masks[{i}]"),
                    pattern: m.clone(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let similarity = match obj.get("similarity") {
            None | Some(Value::Null) => preset.map_or(DEFAULT_SIMILARITY, |p| p.similarity),
            Some(v) => match v.as_f64() {
                Some(x) if (0.0..=1.0).contains(&x) => x,
                _ => return Err(ComputeError::params(kind, "`similarity` must be a number between 0 and 1")),
            },
        };
        let depth =
            crate::opt_usize(kind, &obj, "depth", 3, 64)?.unwrap_or_else(|| preset.map_or(DEFAULT_DEPTH, |p| p.depth));
        let constant_share = match crate::opt_str(kind, &obj, "similarity_over")? {
            None => preset.is_none(),
            Some("constants") => true,
            Some("tokens") => false,
            Some(_) => return Err(ComputeError::params(kind, "`similarity_over` must be \"constants\" or \"tokens\"")),
        };
        let split =
            crate::opt_usize(kind, &obj, "split", 0, 1024)?.unwrap_or(if preset.is_none() { DEFAULT_SPLIT } else { 0 });
        let assignments = crate::opt_bool(kind, &obj, "assignments")?.unwrap_or(false);
        let alert_samples = crate::opt_usize(kind, &obj, "alert_samples", 0, 100_000)?.unwrap_or(10);
        let alert_re = Regex::new(ALERT_WORDS).map_err(|e| ComputeError::params(kind, e.to_string()))?;
        Ok(LogParams {
            preset,
            format,
            layout,
            masks,
            builtin_masks,
            mask_res,
            similarity,
            depth,
            constant_share,
            split,
            assignments,
            alert_samples,
            alert_re,
        })
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(p) = self.preset {
            m.insert("preset".into(), json!(p.name));
        }
        if let Some(f) = &self.format {
            m.insert("format".into(), json!(f));
        }
        if !self.builtin_masks {
            m.insert("masks".into(), json!(self.masks));
        }
        m.insert("similarity".into(), json!(self.similarity));
        m.insert("depth".into(), json!(self.depth));
        m.insert("split".into(), json!(self.split));
        m.insert("similarity_over".into(), json!(if self.constant_share { "constants" } else { "tokens" }));
        m.insert("assignments".into(), json!(self.assignments));
        m.insert("alert_samples".into(), json!(self.alert_samples));
        Value::Object(m)
    }

    /// Whether one line (without `'\n'`) counts as an alert under this job's layout and
    /// the alert rule of the module docs.
    pub fn line_is_alert(&self, line: &[u8]) -> bool {
        let line = trim(line);
        match &self.layout {
            Some(l) => match l.split(line) {
                Some(f) => self.is_alert(f.level, f.content),
                None => self.is_alert(None, line),
            },
            None => {
                let s = generic::split_header(line);
                self.is_alert(s.level, s.content)
            }
        }
    }

    fn is_alert(&self, level: Option<&[u8]>, content: &[u8]) -> bool {
        let level = level.map(trim).unwrap_or(b"");
        let up = level.to_ascii_uppercase();
        match up.as_slice() {
            b"EMERG" | b"EMERGENCY" | b"ALERT" | b"CRIT" | b"CRITICAL" | b"FATAL" | b"SEVERE" | b"ERROR" | b"ERR"
            | b"FAILURE" | b"FAILED" | b"FAIL" | b"PANIC" | b"E" | b"F" | b"A" => true,
            b"INFO" | b"NOTICE" | b"DEBUG" | b"TRACE" | b"WARN" | b"WARNING" | b"VERBOSE" | b"FINE" | b"CONFIG"
            | b"I" | b"D" | b"V" | b"W" => false,
            _ => self.alert_re.is_match(content),
        }
    }
}

/// Partial state of `log-analysis` (see the module docs). Fields are in sorted order
/// so that the serde output is canonical JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogPartial {
    alert_samples: Vec<ByteStr>,
    alerts: u64,
    assignments: Option<Vec<u32>>,
    /// Detected header shapes and their line counts (automatic header detection
    /// only), sorted by shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    headers: Vec<(ByteStr, u64)>,
    levels: Vec<(ByteStr, u64)>,
    lines: u64,
    messages: Vec<(ByteStr, u64)>,
    unparsed: u64,
}

fn add(a: u64, b: u64, what: &'static str) -> Result<u64, ComputeError> {
    a.checked_add(b).ok_or(ComputeError::Overflow(what))
}

impl LogPartial {
    pub(crate) fn empty(p: &LogParams) -> Self {
        LogPartial { assignments: p.assignments.then(Vec::new), ..LogPartial::default() }
    }

    /// Checks the invariants that do not depend on the job's parameters.
    pub(crate) fn validate(&self) -> Result<(), ComputeError> {
        let bad = |m: &str| Err(ComputeError::bad(format!("log-analysis: {m}")));
        if self.unparsed > self.lines || self.alerts > self.lines {
            return bad("counter larger than the number of lines");
        }
        let mut sum = 0u64;
        let mut seen: HashMap<&[u8], ()> = HashMap::with_capacity(self.messages.len());
        for (m, c) in &self.messages {
            let m = m.0.as_slice();
            let canonical = !m.starts_with(b" ")
                && !m.ends_with(b" ")
                && !m.windows(2).any(|w| w == b"  ")
                && m.iter().all(|&b| b == b' ' || !is_space(b));
            if !canonical {
                return bad("message is not a canonical token sequence");
            }
            if *c == 0 || seen.insert(m, ()).is_some() {
                return bad("zero count or duplicate message");
            }
            sum = add(sum, *c, "line count")?;
        }
        if sum != self.lines {
            return bad("message counts do not add up to the number of lines");
        }
        let mut lsum = 0u64;
        for (i, (l, c)) in self.levels.iter().enumerate() {
            if *c == 0 || (i > 0 && self.levels[i - 1].0 >= *l) {
                return bad("levels not strictly sorted or zero count");
            }
            lsum = add(lsum, *c, "level count")?;
        }
        if lsum > self.lines {
            return bad("more levels than lines");
        }
        let mut hsum = 0u64;
        for (i, (h, c)) in self.headers.iter().enumerate() {
            if *c == 0 || (i > 0 && self.headers[i - 1].0 >= *h) || h.0.len() > generic::MAX_HEAD {
                return bad("header shapes not strictly sorted, too long or zero count");
            }
            hsum = add(hsum, *c, "header count")?;
        }
        if hsum > self.lines {
            return bad("more header shapes than lines");
        }
        if self.alert_samples.len() as u64 > self.alerts {
            return bad("more alert samples than alerts");
        }
        if let Some(a) = &self.assignments {
            if a.len() as u64 != self.lines {
                return bad("assignments do not cover every line");
            }
            let mut counts = vec![0u64; self.messages.len()];
            let mut next = 0usize;
            for &i in a {
                let i = i as usize;
                if i > next || i >= counts.len() {
                    return bad("assignment out of range or not in first-appearance order");
                }
                if i == next {
                    next += 1;
                }
                counts[i] += 1;
            }
            if counts.iter().zip(&self.messages).any(|(x, (_, c))| x != c) {
                return bad("assignments disagree with message counts");
            }
        }
        Ok(())
    }

    /// Checks the invariants that depend on the job's parameters.
    pub(crate) fn check_params(&self, p: &LogParams) -> Result<(), ComputeError> {
        if self.assignments.is_some() != p.assignments {
            return Err(ComputeError::bad("log-analysis: partial and job disagree on `assignments`"));
        }
        let expect = usize::try_from(self.alerts).unwrap_or(usize::MAX).min(p.alert_samples);
        if self.alert_samples.len() != expect {
            return Err(ComputeError::bad("log-analysis: wrong number of alert samples"));
        }
        Ok(())
    }
}

pub(crate) fn map(p: &LogParams, chunk: &[u8]) -> Result<LogPartial, ComputeError> {
    let mut out = LogPartial::empty(p);
    let mut index: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut levels: BTreeMap<&[u8], u64> = BTreeMap::new();
    let mut headers: HashMap<generic::Shape, u64> = HashMap::new();
    let mut msg: Vec<u8> = Vec::with_capacity(256);
    let mut toks = Vec::with_capacity(64);
    for raw in lines(chunk) {
        out.lines += 1;
        let line = trim(raw);
        let (content, level) = match &p.layout {
            None => {
                let s = generic::split_header(line);
                if !s.shape.as_bytes().is_empty() {
                    *headers.entry(s.shape).or_insert(0) += 1;
                }
                (s.content, s.level)
            }
            Some(l) => match l.split(line) {
                Some(f) => (f.content, f.level),
                None => {
                    out.unparsed += 1;
                    (line, None)
                }
            },
        };
        if let Some(lv) = level {
            *levels.entry(lv).or_insert(0) += 1;
        }
        if p.is_alert(level, content) {
            out.alerts += 1;
            if out.alert_samples.len() < p.alert_samples {
                out.alert_samples.push(ByteStr(line.to_vec()));
            }
        }
        msg.clear();
        if p.builtin_masks {
            generic::mask_content(content, &mut msg, &mut toks);
        } else {
            let mut masked: Cow<[u8]> = Cow::Borrowed(content);
            for re in &p.mask_res {
                if let Cow::Owned(s) = re.replace_all(&masked, NoExpand(b"<*>")) {
                    masked = Cow::Owned(s);
                }
            }
            for tok in masked.split(|&b| is_space(b)).filter(|t| !t.is_empty()) {
                if !msg.is_empty() {
                    msg.push(b' ');
                }
                msg.extend_from_slice(tok);
            }
        }
        let id = match index.get(msg.as_slice()) {
            Some(&id) => {
                out.messages[id as usize].1 += 1;
                id
            }
            None => {
                let id = u32::try_from(out.messages.len())
                    .map_err(|_| ComputeError::Overflow("too many distinct messages"))?;
                index.insert(msg.clone(), id);
                out.messages.push((ByteStr(msg.clone()), 1));
                id
            }
        };
        if let Some(a) = &mut out.assignments {
            a.push(id);
        }
    }
    out.levels = levels.into_iter().map(|(k, v)| (ByteStr(k.to_vec()), v)).collect();
    let mut headers: Vec<(ByteStr, u64)> =
        headers.into_iter().map(|(k, v)| (ByteStr(k.as_bytes().to_vec()), v)).collect();
    headers.sort();
    out.headers = headers;
    Ok(out)
}

pub(crate) fn merge(p: &LogParams, mut a: LogPartial, b: LogPartial) -> Result<LogPartial, ComputeError> {
    a.lines = add(a.lines, b.lines, "line count")?;
    a.unparsed = add(a.unparsed, b.unparsed, "unparsed count")?;
    a.alerts = add(a.alerts, b.alerts, "alert count")?;
    let room = p.alert_samples.saturating_sub(a.alert_samples.len());
    a.alert_samples.extend(b.alert_samples.into_iter().take(room));

    let mut levels: BTreeMap<ByteStr, u64> = a.levels.into_iter().collect();
    for (k, v) in b.levels {
        let e = levels.entry(k).or_insert(0);
        *e = add(*e, v, "level count")?;
    }
    a.levels = levels.into_iter().collect();
    let mut headers: BTreeMap<ByteStr, u64> = std::mem::take(&mut a.headers).into_iter().collect();
    for (k, v) in b.headers {
        let e = headers.entry(k).or_insert(0);
        *e = add(*e, v, "header count")?;
    }
    a.headers = headers.into_iter().collect();

    // Remap b's message indices into a's numbering, appending unseen messages.
    let mut remap = Vec::with_capacity(b.messages.len());
    let mut fresh = Vec::new();
    let mut bumps = Vec::new();
    {
        let index: HashMap<&[u8], u32> =
            a.messages.iter().enumerate().map(|(i, (m, _))| (m.0.as_slice(), i as u32)).collect();
        for (m, c) in b.messages {
            match index.get(m.0.as_slice()) {
                Some(&i) => {
                    remap.push(i);
                    bumps.push((i, c));
                }
                None => {
                    let i = u32::try_from(a.messages.len() + fresh.len())
                        .map_err(|_| ComputeError::Overflow("too many distinct messages"))?;
                    remap.push(i);
                    fresh.push((m, c));
                }
            }
        }
    }
    for (i, c) in bumps {
        let e = &mut a.messages[i as usize].1;
        *e = add(*e, c, "message count")?;
    }
    a.messages.extend(fresh);
    match (&mut a.assignments, b.assignments) {
        (Some(x), Some(y)) => x.extend(y.into_iter().map(|i| remap.get(i as usize).copied().unwrap_or(0))),
        (None, None) => {}
        _ => return Err(ComputeError::bad("log-analysis: partials disagree on `assignments`")),
    }
    Ok(a)
}

pub(crate) fn finish(p: &LogParams, part: &LogPartial) -> Result<Value, ComputeError> {
    let mut interner = drain::Interner::new();
    let mut drain = drain::Drain::new(drain::Config {
        similarity: p.similarity,
        depth: p.depth,
        max_child: MAX_CHILD,
        constant_share: p.constant_share,
    });
    let mut group_of = Vec::with_capacity(part.messages.len());
    let mut seqs: Vec<Vec<u32>> = Vec::with_capacity(part.messages.len());
    let mut digit = Vec::new();
    for (m, _) in &part.messages {
        let mut seq = Vec::new();
        if !m.0.is_empty() {
            for t in m.0.split(|&b| b == b' ') {
                seq.push(interner.intern(t));
            }
        }
        digit.clear();
        digit.extend(seq.iter().map(|&t| interner.text(t).iter().any(u8::is_ascii_digit)));
        group_of.push(drain.add(&seq, &digit));
        seqs.push(seq);
    }
    let (group_of, group_templates) = if p.split >= 2 {
        let literal = |t: u32| generic::is_plain_word(interner.text(t));
        drain::split_groups(&group_of, &seqs, &drain.templates, &literal, p.split)
    } else {
        (group_of, std::mem::take(&mut drain.templates))
    };
    drop(seqs);
    // Groups with the same final template text are one template, numbered by first
    // appearance (groups are created in first-appearance order).
    let mut by_text: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut texts: Vec<Vec<u8>> = Vec::new();
    let mut template_of_group = Vec::with_capacity(group_templates.len());
    // With the built-in masks, a template's varying positions keep their common
    // punctuated prefix and suffix (`user=<*>` rather than `<*>`).
    let mut refined: Vec<Option<Vec<Vec<u8>>>> = vec![None; group_templates.len()];
    if p.builtin_masks {
        for (m, &g) in group_of.iter().enumerate() {
            let toks: Vec<&[u8]> = if part.messages[m].0 .0.is_empty() {
                Vec::new()
            } else {
                part.messages[m].0 .0.split(|&b| b == b' ').collect()
            };
            match &mut refined[g] {
                None => refined[g] = Some(toks.iter().map(|t| t.to_vec()).collect()),
                Some(r) => {
                    for (a, b) in r.iter_mut().zip(&toks) {
                        if a.as_slice() != *b {
                            *a = generic::merge_token(a, b);
                        }
                    }
                }
            }
        }
    }
    for (g, t) in group_templates.iter().enumerate() {
        let mut text = Vec::new();
        match &refined[g] {
            Some(r) => {
                for (i, tok) in r.iter().enumerate() {
                    if i > 0 {
                        text.push(b' ');
                    }
                    text.extend_from_slice(tok);
                }
            }
            None => {
                for (i, &tok) in t.iter().enumerate() {
                    if i > 0 {
                        text.push(b' ');
                    }
                    text.extend_from_slice(interner.text(tok));
                }
            }
        }
        let next = texts.len();
        let id = *by_text.entry(text.clone()).or_insert(next);
        if id == next {
            texts.push(text);
        }
        template_of_group.push(id);
    }
    let mut counts = vec![0u64; texts.len()];
    let mut template_of_msg = Vec::with_capacity(part.messages.len());
    for ((_, c), &g) in part.messages.iter().zip(&group_of) {
        let t = template_of_group[g];
        counts[t] = add(counts[t], *c, "template count")?;
        template_of_msg.push(t);
    }
    let templates: Vec<Value> = texts
        .iter()
        .zip(&counts)
        .enumerate()
        .map(|(i, (t, c))| json!({"id": i + 1, "template": lossy(t), "count": c}))
        .collect();
    let mut levels = Map::new();
    for (k, v) in &part.levels {
        let key = lossy(&k.0);
        let prev = levels.get(&key).and_then(Value::as_u64).unwrap_or(0);
        levels.insert(key, json!(add(prev, *v, "level count")?));
    }
    let samples: Vec<String> = part.alert_samples.iter().map(|s| lossy(&s.0)).collect();
    let mut out = json!({
        "lines": part.lines,
        "unparsed": part.unparsed,
        "levels": levels,
        "templates": templates,
        "alerts": {"count": part.alerts, "samples": samples},
    });
    if p.layout.is_none() {
        // Detected header layouts, most common first (ties: by shape), at most five.
        let mut hs: Vec<&(ByteStr, u64)> = part.headers.iter().collect();
        hs.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
        let hs: Vec<Value> =
            hs.iter().take(5).map(|(h, c)| json!({"layout": generic::describe(&h.0), "lines": c})).collect();
        if let Some(obj) = out.as_object_mut() {
            obj.insert("headers".into(), Value::Array(hs));
        }
    }
    if let (Some(a), Some(obj)) = (&part.assignments, out.as_object_mut()) {
        let ids: Vec<usize> = a.iter().map(|&m| template_of_msg.get(m as usize).map_or(0, |t| t + 1)).collect();
        obj.insert("line_templates".into(), json!(ids));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> LogParams {
        LogParams::from_json(&v).expect("params")
    }

    #[test]
    fn alert_rule() {
        let p = params(json!({"format": "<Level> <Content>"}));
        assert!(p.line_is_alert(b"ERROR all good"));
        assert!(p.line_is_alert(b"fatal x"));
        assert!(p.line_is_alert(b"E x"));
        assert!(!p.line_is_alert(b"INFO parity error corrected"));
        assert!(!p.line_is_alert(b"W connection refused"));
        assert!(p.line_is_alert(b"combo authentication failure; user=x"));
        assert!(p.line_is_alert(b"host Connection timed  out"));
        assert!(!p.line_is_alert(b"host errorless failover"));
        let none = params(json!({}));
        assert!(none.line_is_alert(b"Failed password for root"));
        assert!(!none.line_is_alert(b"Accepted password for root"));
    }

    #[test]
    fn masks_and_tokens() {
        let p = params(json!({"masks": [r"\d+"], "format": "<Level> <Content>"}));
        let part = map(&p, b"INFO  a1  b22\tc \r\nINFO a3 b4 c\n").expect("map");
        assert_eq!(part.messages, vec![(ByteStr(b"a<*> b<*> c".to_vec()), 2)]);
        assert_eq!(part.levels, vec![(ByteStr(b"INFO".to_vec()), 2)]);
        part.validate().expect("valid");
    }
}
