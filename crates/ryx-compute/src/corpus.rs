//! The built-in sample corpus: a deterministic generator of realistic
//! multi-service logs, so demos and benchmarks need no download.
//!
//! Lines look like
//!
//! ```text
//! 2026-03-14 09:26:53.589 INFO  billing: invoice 88213 settled for user u4417 amount=129.90 EUR in 37 ms
//! ```
//!
//! (layout [`FORMAT`], usable as the `format` parameter of `log-analysis`).
//! About forty message templates with variable fields, levels drawn with
//! realistic frequencies, occasional error bursts from one component and
//! rare anomalies. Because the generator knows which template produced each
//! line, it doubles as a labelled test set ([`generate_labelled`]).

use std::fmt::Write;

/// Header layout of the generated lines, in `log-analysis` `format` syntax.
pub const FORMAT: &str = "<Date> <Time> <Level> <Component>: <Content>";

/// One message template: its component, level, and a writer for its
/// content with variable fields drawn from the generator.
struct Template {
    component: &'static str,
    level: &'static str,
    /// Relative frequency in normal operation.
    weight: u32,
    /// The template text with `<*>` for variables (the ground truth).
    text: &'static str,
}

const TEMPLATES: &[Template] = &[
    Template { component: "api-gateway", level: "INFO", weight: 120, text: "GET <*> 200 in <*> ms from <*>" },
    Template { component: "api-gateway", level: "INFO", weight: 60, text: "POST <*> 201 in <*> ms from <*>" },
    Template { component: "api-gateway", level: "WARN", weight: 8, text: "GET <*> 429 rate limited client <*>" },
    Template { component: "api-gateway", level: "ERROR", weight: 2, text: "upstream <*> timed out after <*> ms" },
    Template { component: "auth", level: "INFO", weight: 50, text: "user <*> logged in from <*>" },
    Template { component: "auth", level: "INFO", weight: 20, text: "session <*> refreshed for user <*>" },
    Template { component: "auth", level: "WARN", weight: 6, text: "failed password for user <*> from <*> attempt <*>" },
    Template { component: "auth", level: "INFO", weight: 15, text: "token <*> expired" },
    Template {
        component: "billing",
        level: "INFO",
        weight: 25,
        text: "invoice <*> settled for user <*> amount=<*> EUR in <*> ms",
    },
    Template { component: "billing", level: "WARN", weight: 3, text: "card declined for user <*> code <*>" },
    Template { component: "billing", level: "ERROR", weight: 1, text: "payment provider <*> returned status <*>" },
    Template { component: "db-proxy", level: "DEBUG", weight: 40, text: "query <*> took <*> ms rows=<*>" },
    Template { component: "db-proxy", level: "INFO", weight: 10, text: "connection pool size <*> idle <*>" },
    Template { component: "db-proxy", level: "WARN", weight: 5, text: "slow query <*> took <*> ms" },
    Template { component: "db-proxy", level: "ERROR", weight: 1, text: "replica <*> lag <*> s exceeds limit" },
    Template { component: "scheduler", level: "INFO", weight: 20, text: "job <*> scheduled on worker <*>" },
    Template { component: "scheduler", level: "INFO", weight: 20, text: "job <*> finished in <*> s exit=0" },
    Template { component: "scheduler", level: "WARN", weight: 3, text: "job <*> retried attempt <*> of 5" },
    Template { component: "scheduler", level: "ERROR", weight: 1, text: "job <*> failed exit=<*>" },
    Template {
        component: "storage",
        level: "INFO",
        weight: 30,
        text: "stored object <*> size=<*> bytes in bucket <*>",
    },
    Template { component: "storage", level: "INFO", weight: 15, text: "deleted object <*> from bucket <*>" },
    Template { component: "storage", level: "WARN", weight: 4, text: "disk <*> usage at <*> percent" },
    Template { component: "storage", level: "ERROR", weight: 1, text: "checksum mismatch on block <*> of disk <*>" },
    Template { component: "cache", level: "DEBUG", weight: 60, text: "hit key <*>" },
    Template { component: "cache", level: "DEBUG", weight: 25, text: "miss key <*> loading from <*>" },
    Template { component: "cache", level: "INFO", weight: 5, text: "evicted <*> entries to free <*> bytes" },
    Template { component: "search", level: "INFO", weight: 20, text: "query <*> returned <*> hits in <*> ms" },
    Template { component: "search", level: "INFO", weight: 4, text: "index segment <*> merged into <*>" },
    Template { component: "search", level: "WARN", weight: 2, text: "shard <*> unassigned on node <*>" },
    Template { component: "mailer", level: "INFO", weight: 10, text: "sent mail <*> to <*>" },
    Template { component: "mailer", level: "WARN", weight: 2, text: "bounce from <*> for mail <*>" },
    Template { component: "kernel", level: "INFO", weight: 3, text: "eth0 link up at <*> Mbps" },
    Template { component: "kernel", level: "WARN", weight: 1, text: "CPU <*> temperature above threshold <*> C" },
    Template { component: "health", level: "INFO", weight: 12, text: "probe <*> ok latency=<*> ms" },
    Template { component: "health", level: "WARN", weight: 2, text: "probe <*> degraded latency=<*> ms" },
    // Error-burst and anomaly templates: rare in normal operation.
    Template { component: "db-proxy", level: "ERROR", weight: 0, text: "connection to <*> refused" },
    Template { component: "api-gateway", level: "ERROR", weight: 0, text: "circuit breaker open for <*>" },
    Template { component: "storage", level: "FATAL", weight: 0, text: "disk <*> failed: I/O error on sector <*>" },
    Template {
        component: "auth",
        level: "ERROR",
        weight: 0,
        text: "possible brute force from <*>: <*> failures in <*> s",
    },
    Template { component: "kernel", level: "FATAL", weight: 0, text: "Out of memory: killed process <*> (<*>)" },
];

/// Index of the first burst/anomaly template.
const BURST_FIRST: usize = 35;

/// Number of templates.
pub fn template_count() -> usize {
    TEMPLATES.len()
}

/// The ground-truth text of template `i` (`<*>` marks variables).
pub fn template_text(i: usize) -> Option<&'static str> {
    TEMPLATES.get(i).map(|t| t.text)
}

struct Gen {
    s: u64,
}

impl Gen {
    fn next(&mut self) -> u64 {
        // SplitMix64: portable and fast.
        self.s = self.s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

const WORDS: &[&str] =
    &["alpha", "orders", "media", "reports", "logs", "users", "backups", "images", "static", "events"];
const PATHS: &[&str] =
    &["/api/v1/orders", "/api/v1/users", "/api/v2/search", "/healthz", "/api/v1/cart", "/static/app.js"];

fn fill(g: &mut Gen, text: &str, out: &mut String) {
    let mut parts = text.split("<*>").peekable();
    let mut k = 0u64;
    while let Some(p) = parts.next() {
        out.push_str(p);
        if parts.peek().is_none() {
            break;
        }
        // Variable field: its kind depends on the word before it.
        let before = p.trim_end().rsplit(' ').next().unwrap_or("");
        let v = g.next();
        let _ = match before {
            "from" | "to" | "client" => write!(out, "10.{}.{}.{}", v % 4, (v >> 8) % 256, (v >> 16) % 254 + 1),
            "user" => write!(out, "u{}", 1000 + v % 9000),
            "GET" | "POST" => write!(out, "{}/{}", PATHS[(v % PATHS.len() as u64) as usize], v % 10_000),
            "bucket" => write!(out, "{}", WORDS[(v % WORDS.len() as u64) as usize]),
            "key" => write!(out, "{}:{:x}", WORDS[(v % WORDS.len() as u64) as usize], (v >> 8) % 0xFFFFF),
            "amount=" | "" if p.ends_with("amount=") => {
                write!(out, "{}.{:02}", v % 500, (v >> 9) % 100)
            }
            "node" | "worker" | "upstream" | "replica" | "provider" | "for" => {
                write!(out, "node-{}", v % 24)
            }
            "disk" => write!(out, "sd{}", (b'a' + (v % 8) as u8) as char),
            _ => {
                k += 1;
                write!(out, "{}", (v >> (k % 7)) % if before == "in" || before.ends_with("=") { 2000 } else { 100_000 })
            }
        };
    }
}

/// Generates about `size` bytes of sample logs (whole lines) from `seed`,
/// with the template index that produced each line.
pub fn generate_labelled(size: usize, seed: u64) -> (Vec<u8>, Vec<u16>) {
    let mut lines = Lines::new(seed);
    let mut out = String::with_capacity(size + 256);
    let mut labels = Vec::with_capacity(size / 80);
    let mut line = String::with_capacity(256);
    while out.len() < size {
        labels.push(lines.next_line(&mut line, None) as u16);
        out.push_str(&line);
    }
    (out.into_bytes(), labels)
}

/// An endless stream of sample log lines from a seed: what
/// [`generate_labelled`] cuts at a size, and what a live log writer
/// appends with the wall clock's time.
pub struct Lines {
    g: Gen,
    total: u64,
    /// Synthetic clock: ms since 2026-03-14 00:00:00.000.
    ms: u64,
    burst_left: u32,
    burst_template: usize,
}

impl Lines {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Lines {
        Lines {
            g: Gen { s: seed ^ 0x0005_EED0_F4E7 },
            total: TEMPLATES.iter().map(|t| t.weight as u64).sum(),
            ms: 0,
            burst_left: 0,
            burst_template: BURST_FIRST,
        }
    }

    /// Writes the next line, `'\n'` included, into `line` (cleared first)
    /// and returns its template index. The timestamp is `unix_ms` (UTC)
    /// when given, else the stream's synthetic clock, which advances a few
    /// ms a line from 2026-03-14.
    pub fn next_line(&mut self, line: &mut String, unix_ms: Option<u64>) -> usize {
        let g = &mut self.g;
        self.ms += 1 + g.below(40);
        if self.burst_left == 0 && g.below(20_000) == 0 {
            // An error burst: one failure mode repeats for a while.
            self.burst_left = 20 + g.below(200) as u32;
            self.burst_template = BURST_FIRST + g.below((TEMPLATES.len() - BURST_FIRST) as u64) as usize;
        }
        let idx = if self.burst_left > 0 && g.below(3) > 0 {
            self.burst_left -= 1;
            self.burst_template
        } else if g.below(50_000) == 0 {
            // A lone anomaly.
            BURST_FIRST + g.below((TEMPLATES.len() - BURST_FIRST) as u64) as usize
        } else {
            let mut r = g.below(self.total);
            let mut i = 0;
            for (j, t) in TEMPLATES.iter().enumerate() {
                if r < t.weight as u64 {
                    i = j;
                    break;
                }
                r -= t.weight as u64;
            }
            i
        };
        let t = &TEMPLATES[idx];
        line.clear();
        let (y, mo, d, ms) = match unix_ms {
            Some(u) => {
                let (y, mo, d) = civil_from_days((u / 86_400_000) as i64);
                (y, mo, d, u % 86_400_000)
            }
            None => (2026, 3, 14 + self.ms / 86_400_000, self.ms % 86_400_000),
        };
        let secs = ms / 1000;
        let _ = write!(
            line,
            "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}.{:03} {:<5} {}: ",
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60,
            ms % 1000,
            t.level,
            t.component
        );
        fill(g, t.text, line);
        line.push('\n');
        idx
    }
}

/// Year, month, day of `days` since 1970-01-01 (proleptic Gregorian;
/// Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe as i64 + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Generates about `size` bytes of sample logs from `seed`.
pub fn generate(size: usize, seed: u64) -> Vec<u8> {
    generate_labelled(size, seed).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_whole_lines_with_one_label_per_line() {
        let (a, la) = generate_labelled(200_000, 1);
        let (b, _) = generate_labelled(200_000, 1);
        assert_eq!(a, b);
        assert_ne!(a, generate(200_000, 2));
        assert!(a.len() >= 200_000 && a.len() < 200_400);
        assert_eq!(a.last(), Some(&b'\n'));
        assert_eq!(a.iter().filter(|&&c| c == b'\n').count(), la.len());
        let distinct: std::collections::BTreeSet<u16> = la.iter().copied().collect();
        assert!(distinct.len() >= 30, "only {} templates used", distinct.len());
        let text = String::from_utf8(a).expect("ascii");
        assert!(text.lines().all(|l| l.starts_with("2026-03-")));
    }

    #[test]
    fn live_lines_carry_the_wall_clock() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_526), (2026, 3, 14));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let mut l = Lines::new(3);
        let mut line = String::new();
        // 2026-12-05 19:59:18.250 UTC
        l.next_line(&mut line, Some(1_796_500_758_250));
        assert!(line.starts_with("2026-12-05 19:59:18.250 "), "{line}");
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    }

    #[test]
    fn log_analysis_recovers_the_templates() {
        let (data, labels) = generate_labelled(400_000, 7);
        let spec = crate::JobSpec::new("log-analysis", &serde_json::json!({"format": FORMAT, "assignments": true}))
            .expect("spec");
        let run = crate::run_local(&spec, &[&data], 64 << 10, 2).expect("run");
        let assigned: Vec<u64> = run.result["line_templates"]
            .as_array()
            .expect("assignments")
            .iter()
            .map(|v| v.as_u64().unwrap_or(0))
            .collect();
        assert_eq!(assigned.len(), labels.len());
        // Grouping accuracy against the generator's labels.
        use std::collections::BTreeMap;
        let mut by_truth: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        let mut by_found: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, (&t, &f)) in labels.iter().zip(&assigned).enumerate() {
            by_truth.entry(t).or_default().push(i);
            by_found.entry(f).or_default().push(i);
        }
        let correct = labels.iter().zip(&assigned).filter(|(t, f)| by_truth[t] == by_found[f]).count();
        let acc = correct as f64 / labels.len() as f64;
        println!("sample corpus grouping accuracy: {acc:.4}");
        assert!(acc >= 0.9, "grouping accuracy {acc}");
    }
}
