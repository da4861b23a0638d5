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
    }
}
