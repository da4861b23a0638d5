//! `grep`: count the lines matching a regular expression, like `LC_ALL=C grep -c`.
//!
//! Lines are the bytes between `'\n'` terminators (a last line without `'\n'`
//! counts when non-empty). The pattern uses Rust `regex` syntax compiled as a
//! *byte* regex with Unicode disabled, which is the C-locale behaviour of GNU grep:
//! `.` matches any byte but `'\n'`, classes such as `\w` and case folding are ASCII,
//! non-ASCII characters in the pattern match their UTF-8 encoding. A line is matched
//! against the pattern without its `'\n'` but *with* any `'\r'` before it (exactly as
//! grep does), and `samples` hold those same bytes: a CRLF file's samples end in
//! `"\r"`. Samples are shown as lossy UTF-8.

use crate::bytes::{lossy, ByteStr};
use crate::chunk::lines;
use crate::error::ComputeError;
use crate::JobKind;
use regex::bytes::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Typed, validated parameters of a `grep` job.
#[derive(Clone, Debug)]
pub struct GrepParams {
    pattern: String,
    case_insensitive: bool,
    max_samples: usize,
    /// Matches one line (no `'\n'` in the haystack).
    line_re: Regex,
    /// Same pattern in multi-line mode, used to find matching lines by searching a
    /// whole chunk at once; `None` unless [`confined_to_line`] holds.
    chunk_re: Option<Regex>,
}

impl GrepParams {
    /// The regex pattern.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether matching ignores ASCII case.
    pub fn case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    /// Maximum number of sample lines kept (default 10).
    pub fn max_samples(&self) -> usize {
        self.max_samples
    }

    pub(crate) fn from_json(v: &Value) -> Result<Self, ComputeError> {
        let kind = JobKind::Grep;
        let obj = crate::params_object(kind, v, &["pattern", "case_insensitive", "max_samples"])?;
        let pattern = match obj.get("pattern") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(ComputeError::params(kind, "`pattern` must be a string")),
            None => return Err(ComputeError::params(kind, "`pattern` is required")),
        };
        let case_insensitive = crate::opt_bool(kind, &obj, "case_insensitive")?.unwrap_or(false);
        let max_samples = crate::opt_usize(kind, &obj, "max_samples", 0, 100_000)?.unwrap_or(10);
        let build = |multi: bool| {
            RegexBuilder::new(&pattern)
                .unicode(false)
                .case_insensitive(case_insensitive)
                .multi_line(multi)
                .size_limit(64 << 20)
                .dfa_size_limit(64 << 20)
                .build()
        };
        let line_re = build(false).map_err(|e| ComputeError::InvalidRegex {
            kind,
            param: "pattern".into(),
            pattern: pattern.clone(),
            reason: e.to_string(),
        })?;
        let chunk_re = if confined_to_line(&pattern) { build(true).ok() } else { None };
        Ok(GrepParams { pattern, case_insensitive, max_samples, line_re, chunk_re })
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "pattern": self.pattern,
            "case_insensitive": self.case_insensitive,
            "max_samples": self.max_samples,
        })
    }
}

/// Conservative syntactic test that no match of `pattern` can contain `'\n'` and
/// that multi-line mode gives its anchors their per-line meaning, so a search over a
/// whole chunk finds exactly the matches of the single lines (and never scans past
/// the end of a line to extend a match). Anything not clearly safe is refused:
/// negated or POSIX classes, inline flags, escapes other than `\d \w \S \b \B \< \>`
/// and escaped punctuation, and raw control bytes. Refused patterns are matched line
/// by line, which gives the same counts, only a little slower on literal patterns.
fn confined_to_line(pattern: &str) -> bool {
    if pattern.contains("[^") || pattern.contains("[[:") || pattern.contains("(?") {
        return false;
    }
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c.is_ascii_control() {
            return false;
        }
        if c == '\\' {
            match chars.next() {
                Some('d' | 'w' | 'S' | 'b' | 'B' | '<' | '>') => {}
                Some(e) if e.is_ascii_punctuation() => {}
                _ => return false,
            }
        }
    }
    true
}

/// Partial state of `grep`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrepPartial {
    pub(crate) lines: u64,
    pub(crate) matching_lines: u64,
    pub(crate) samples: Vec<ByteStr>,
}

impl GrepPartial {
    /// Checks the invariants that do not depend on the job's parameters.
    pub(crate) fn validate(&self) -> Result<(), ComputeError> {
        if self.matching_lines > self.lines {
            return Err(ComputeError::bad("grep: more matching lines than lines"));
        }
        if self.samples.len() as u64 > self.matching_lines {
            return Err(ComputeError::bad("grep: more samples than matching lines"));
        }
        if self.samples.iter().any(|s| s.0.contains(&b'\n')) {
            return Err(ComputeError::bad("grep: sample holds a newline"));
        }
        Ok(())
    }

    /// Checks the invariants that depend on the job's parameters.
    pub(crate) fn check_params(&self, p: &GrepParams) -> Result<(), ComputeError> {
        let expect = usize::try_from(self.matching_lines).unwrap_or(usize::MAX).min(p.max_samples);
        if self.samples.len() != expect {
            return Err(ComputeError::bad("grep: wrong number of samples for this job"));
        }
        Ok(())
    }
}

pub(crate) fn map(p: &GrepParams, chunk: &[u8]) -> Result<GrepPartial, ComputeError> {
    let mut out = GrepPartial::default();
    let mut record = |line: &[u8]| {
        out.matching_lines += 1;
        if out.samples.len() < p.max_samples {
            out.samples.push(ByteStr(line.to_vec()));
        }
    };
    match &p.chunk_re {
        Some(re) => {
            let mut pos = 0usize;
            while pos < chunk.len() {
                let Some(m) = re.find_at(chunk, pos) else {
                    break;
                };
                let s = m.start().min(chunk.len());
                let ls = memchr::memrchr(b'\n', &chunk[..s]).map_or(0, |i| i + 1).max(pos);
                let le = memchr::memchr(b'\n', &chunk[s..]).map_or(chunk.len(), |i| s + i);
                if ls == chunk.len() {
                    break; // empty remainder after a final '\n' is not a line
                }
                let line = &chunk[ls..le];
                // Always true for patterns that pass `confined_to_line`; kept as a guard.
                if p.line_re.is_match(line) {
                    record(line);
                }
                pos = le + 1;
            }
        }
        None => {
            for line in lines(chunk) {
                if p.line_re.is_match(line) {
                    record(line);
                }
            }
        }
    }
    out.lines = lines(chunk).count() as u64;
    Ok(out)
}

pub(crate) fn merge(p: &GrepParams, mut a: GrepPartial, b: GrepPartial) -> Result<GrepPartial, ComputeError> {
    a.lines = a.lines.checked_add(b.lines).ok_or(ComputeError::Overflow("line count"))?;
    a.matching_lines = a.matching_lines.checked_add(b.matching_lines).ok_or(ComputeError::Overflow("match count"))?;
    let room = p.max_samples.saturating_sub(a.samples.len());
    a.samples.extend(b.samples.into_iter().take(room));
    Ok(a)
}

pub(crate) fn finish(part: &GrepPartial) -> Value {
    let samples: Vec<String> = part.samples.iter().map(|s| lossy(&s.0)).collect();
    json!({
        "lines": part.lines,
        "matching_lines": part.matching_lines,
        "samples": samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_confinement_is_conservative() {
        for ok in ["ERROR", "[0-9]+ ms", "^-", "(WARN|FATAL)", r"\d+\.\d+", r"\bfoo\b$", "a.b"] {
            assert!(confined_to_line(ok), "{ok}");
        }
        for no in [
            r"a[^x]*b",
            r"a\sb",
            r"\W",
            r"\D",
            r"a\nb",
            r"\x0a",
            "(?s)a.b",
            r"\Aa",
            r"a\z",
            "[[:space:]]",
            "a\tb",
            "a\nb",
        ] {
            assert!(!confined_to_line(no), "{no}");
        }
    }

    #[test]
    fn spanning_patterns_match_per_line() {
        let p = GrepParams::from_json(&json!({"pattern": "a[^x]*b"})).expect("params");
        assert!(p.chunk_re.is_none());
        let part = map(&p, b"a\nb\nab\naa\n").expect("map");
        assert_eq!(part.matching_lines, 1);
        assert_eq!(part.lines, 4);
    }
}
