//! Evaluation helpers: the ground truth of the Loghub samples and the
//! grouping-accuracy measure used by the log-parsing literature, shared by
//! tests and benchmarks of every crate.

use std::collections::HashMap;
use std::path::Path;

/// Drain's published grouping accuracy on the Loghub 2k samples.
pub const DRAIN_ACCURACY: &[(&str, f64)] = &[
    ("HDFS", 0.9975),
    ("Hadoop", 0.9475),
    ("Spark", 0.9200),
    ("Zookeeper", 0.9665),
    ("BGL", 0.9625),
    ("HPC", 0.8870),
    ("Linux", 0.6900),
    ("Apache", 1.0000),
    ("OpenSSH", 0.7875),
    ("Android", 0.9110),
];

/// Minimal RFC 4180 reader: quoted fields may hold commas, newlines and
/// doubled quotes; CR is ignored outside quotes.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// The columns of a dataset's `X_2k.log_structured.csv` under `dir/X/`.
pub fn loghub_truth(dir: &Path, name: &str) -> std::io::Result<HashMap<String, Vec<String>>> {
    let path = dir.join(name).join(format!("{name}_2k.log_structured.csv"));
    let text = std::fs::read_to_string(&path)?;
    let rows = parse_csv(&text);
    let Some(header) = rows.first().cloned() else {
        return Ok(HashMap::new());
    };
    let mut cols: HashMap<String, Vec<String>> = header.iter().map(|h| (h.clone(), Vec::new())).collect();
    for r in rows.iter().skip(1) {
        for (h, v) in header.iter().zip(r) {
            if let Some(c) = cols.get_mut(h) {
                c.push(v.clone());
            }
        }
    }
    Ok(cols)
}

/// Share of lines whose parsed group is exactly the set of lines sharing
/// their ground-truth event (0 when the lengths differ).
pub fn grouping_accuracy(truth: &[String], parsed: &[u64]) -> f64 {
    if truth.len() != parsed.len() || truth.is_empty() {
        return 0.0;
    }
    let mut truth_size: HashMap<&str, usize> = HashMap::new();
    for t in truth {
        *truth_size.entry(t).or_default() += 1;
    }
    let mut groups: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, &p) in parsed.iter().enumerate() {
        groups.entry(p).or_default().push(i);
    }
    let mut correct = 0usize;
    for members in groups.values() {
        let first = truth[members[0]].as_str();
        if members.iter().all(|&i| truth[i] == first) && truth_size.get(first) == Some(&members.len()) {
            correct += members.len();
        }
    }
    correct as f64 / truth.len() as f64
}

/// Normalises a template for exact comparison: whitespace runs become one space,
/// adjacent wildcards (`<*><*>`, `<*> <*>`) become one, surrounding space is trimmed.
pub fn normalize_template(t: &str) -> String {
    let mut toks: Vec<String> = Vec::new();
    for tok in t.split_whitespace() {
        let mut s = tok.to_owned();
        while s.contains("<*><*>") {
            s = s.replace("<*><*>", "<*>");
        }
        if s == "<*>" && toks.last().is_some_and(|p| p == "<*>") {
            continue;
        }
        toks.push(s);
    }
    toks.join(" ")
}

/// Accuracy figures of one parse against the ground truth, as defined by
/// Loghub-2.0 (Jiang et al., ISSTA 2024).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Scores {
    /// Grouping accuracy: share of lines whose parsed group is exactly their event's lines.
    pub ga: f64,
    /// F1 of grouping: a parsed group is correct when it is exactly one event's lines.
    pub fga: f64,
    /// Parsing accuracy: share of lines whose template text equals the truth
    /// (after [`normalize_template`]).
    pub pa: f64,
    /// F1 of template accuracy: a parsed template is correct when its group is
    /// correct and its text equals the event's template.
    pub fta: f64,
}

/// Scores a parse. `truth_events[i]` and `truth_templates[i]` are line `i`'s event id
/// and template; `parsed[i]` is its parsed group and `parsed_templates[i]` the text of
/// that group's template. Zero everywhere when the lengths disagree.
pub fn score(
    truth_events: &[String],
    truth_templates: &[String],
    parsed: &[u64],
    parsed_templates: &[String],
) -> Scores {
    let n = truth_events.len();
    if n == 0 || parsed.len() != n || truth_templates.len() != n || parsed_templates.len() != n {
        return Scores::default();
    }
    let mut truth_size: HashMap<&str, usize> = HashMap::new();
    for t in truth_events {
        *truth_size.entry(t).or_default() += 1;
    }
    let mut groups: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, &p) in parsed.iter().enumerate() {
        groups.entry(p).or_default().push(i);
    }
    let (mut ga_lines, mut good_groups, mut good_templates) = (0usize, 0usize, 0usize);
    for members in groups.values() {
        let first = truth_events[members[0]].as_str();
        if members.iter().all(|&i| truth_events[i] == first) && truth_size.get(first) == Some(&members.len()) {
            ga_lines += members.len();
            good_groups += 1;
            let i = members[0];
            if normalize_template(&parsed_templates[i]) == normalize_template(&truth_templates[i]) {
                good_templates += 1;
            }
        }
    }
    let pa_lines =
        (0..n).filter(|&i| normalize_template(&parsed_templates[i]) == normalize_template(&truth_templates[i])).count();
    let f1 = |good: usize, parsed: usize, truth: usize| {
        if good == 0 {
            return 0.0;
        }
        let p = good as f64 / parsed as f64;
        let r = good as f64 / truth as f64;
        2.0 * p * r / (p + r)
    };
    Scores {
        ga: ga_lines as f64 / n as f64,
        fga: f1(good_groups, groups.len(), truth_size.len()),
        pa: pa_lines as f64 / n as f64,
        fta: f1(good_templates, groups.len(), truth_size.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_accuracy() {
        let rows = parse_csv("a,b,c\r\n1,\"x, \"\"y\"\"\",3\n\"multi\nline\",,\n");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1], vec!["1", "x, \"y\"", "3"]);
        assert_eq!(rows[2], vec!["multi\nline", "", ""]);
        let truth: Vec<String> = ["E1", "E1", "E2", "E3"].iter().map(|s| s.to_string()).collect();
        assert_eq!(grouping_accuracy(&truth, &[1, 1, 2, 3]), 1.0);
        // Merging E2 and E3 makes both wrong; E1 stays right.
        assert_eq!(grouping_accuracy(&truth, &[1, 1, 2, 2]), 0.5);
        assert_eq!(grouping_accuracy(&truth, &[1, 2, 3, 4]), 0.5);
        let tt: Vec<String> = ["a <*>", "a <*>", "b", "c"].iter().map(|s| s.to_string()).collect();
        let pt: Vec<String> = ["a <*><*>", "a <*>", "b", "b"].iter().map(|s| s.to_string()).collect();
        let s = score(&truth, &tt, &[1, 1, 2, 2], &pt);
        assert_eq!(s.ga, 0.5);
        assert_eq!(s.pa, 0.75);
        // one correct group of two parsed, three true: F1 = 2 * 0.5 * (1/3) / (0.5 + 1/3) = 0.4
        assert!((s.fga - 0.4).abs() < 1e-12 && (s.fta - 0.4).abs() < 1e-12);
    }
}
