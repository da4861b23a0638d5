//! The results of the three job kinds, readably.

use ryx_api::{truncate, GrepResult, JobView, LogAnalysisResult, WordCountResult};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A job's result, readably.
pub fn job(job: &JobView) -> String {
    match &job.result {
        Some(r) => result(&job.kind, r),
        None => format!("(job {} has no result)\n", job.job_id),
    }
}

/// The result of a job of `kind`, readably (as pretty JSON when it is not
/// of a kind known here, or not of its kind's shape).
pub fn result(kind: &str, r: &Value) -> String {
    fn typed<T: DeserializeOwned>(r: &Value, show: fn(&T) -> String) -> Option<String> {
        T::deserialize(r).ok().map(|t| show(&t))
    }
    let shown = match kind {
        "word-count" => typed(r, word_count),
        "grep" => typed(r, grep),
        "log-analysis" => typed(r, log_analysis),
        _ => None,
    };
    shown.unwrap_or_else(|| format!("{}\n", serde_json::to_string_pretty(r).unwrap_or_default()))
}

/// A word count: totals and the top words.
pub fn word_count(r: &WordCountResult) -> String {
    let mut o = format!("{} words, {} distinct\n", group_digits(r.total_words), group_digits(r.distinct_words));
    o.push_str("top words:\n");
    for (i, (w, c)) in r.top.iter().enumerate() {
        o.push_str(&format!("  {:>3}. {:<28} {:>12}\n", i + 1, clip(w, 28), group_digits(*c)));
    }
    o
}

/// A grep: counts and the first matches.
pub fn grep(r: &GrepResult) -> String {
    let mut o = format!("{} matching lines of {}\n", group_digits(r.matching_lines), group_digits(r.lines));
    if !r.samples.is_empty() {
        o.push_str("first matches:\n");
    }
    for l in &r.samples {
        o.push_str(&format!("  {}\n", clip(l, 160)));
    }
    o
}

/// A log analysis: counts, levels, the most frequent templates, alerts.
pub fn log_analysis(r: &LogAnalysisResult) -> String {
    let mut o = format!(
        "{} lines ({} unparsed), {} templates, {} alerts\n",
        group_digits(r.lines),
        group_digits(r.unparsed),
        r.templates.len(),
        group_digits(r.alerts.count)
    );
    let mut lv: Vec<(&String, u64)> = r.levels.iter().map(|(k, v)| (k, *v)).collect();
    lv.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let parts: Vec<String> = lv.iter().map(|(k, v)| format!("{k} {}", group_digits(*v))).collect();
    o.push_str(&format!("levels: {}\n", parts.join(", ")));
    if let Some(h) = r.headers.first() {
        let share = h.lines as f64 / r.lines.max(1) as f64;
        o.push_str(&format!("header detected: {} ({:.0}% of lines)\n", h.layout, 100.0 * share));
    }
    let mut t: Vec<_> = r.templates.iter().collect();
    t.sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));
    const SHOWN: usize = 15;
    o.push_str("templates (most frequent first):\n");
    for e in t.iter().take(SHOWN) {
        o.push_str(&format!("  {:>12}  #{:<4} {}\n", group_digits(e.count), e.id, clip(&e.template, 110)));
    }
    if t.len() > SHOWN {
        o.push_str(&format!("  … and {} more (--json for all)\n", t.len() - SHOWN));
    }
    if !r.alerts.samples.is_empty() {
        o.push_str("alerts (first samples):\n");
    }
    for l in r.alerts.samples.iter().take(5) {
        o.push_str(&format!("  {}\n", clip(l, 160)));
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
    truncate(&s.replace(['\r', '\n'], " "), max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_render_readably() {
        let wc = json!({"total_words": 1234567, "distinct_words": 3, "top": [["the", 1000], ["a", 7]]});
        let t = result("word-count", &wc);
        assert!(t.contains("1,234,567 words, 3 distinct"), "{t}");
        assert!(t.contains("1. the") && t.contains("1,000"), "{t}");
        let la = json!({"lines": 10, "unparsed": 0, "levels": {"INFO": 8, "ERROR": 2},
            "templates": [{"id": 1, "template": "a <*>", "count": 2}, {"id": 2, "template": "b", "count": 8}],
            "alerts": {"count": 1, "samples": ["boom"]}});
        let t = result("log-analysis", &la);
        assert!(t.contains("2 templates, 1 alerts"), "{t}");
        assert!(t.find("#2").expect("b") < t.find("#1").expect("a"), "most frequent first: {t}");
        assert!(t.contains("INFO 8, ERROR 2") && t.contains("boom"), "{t}");
        let g = json!({"lines": 5, "matching_lines": 2, "samples": ["x ERROR", "y ERROR"]});
        assert!(result("grep", &g).contains("2 matching lines of 5"));
        assert!(result("sort", &json!({"x": 1})).contains("\"x\": 1"), "unknown kinds as JSON");
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(999), "999");
    }
}
