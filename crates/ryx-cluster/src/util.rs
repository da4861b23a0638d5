//! Small helpers: amounts like `3` or `30%`, durations like `500ms`, a
//! seeded random generator, and time formatting.

use anyhow::{bail, Context, Result};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How many nodes: an absolute count or a percentage of the live ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Amount {
    /// Exactly this many.
    Count(usize),
    /// This percentage (0–100) of the live nodes, rounded to nearest, at
    /// least one when above zero.
    Percent(f64),
}

impl Amount {
    /// The number of nodes this means among `live`.
    pub fn of(self, live: usize) -> usize {
        match self {
            Amount::Count(n) => n.min(live),
            Amount::Percent(p) => {
                if p <= 0.0 || live == 0 {
                    0
                } else {
                    ((live as f64 * p / 100.0).round() as usize).clamp(1, live)
                }
            }
        }
    }
}

impl FromStr for Amount {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Amount> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().with_context(|| format!("{s:?} is not a percentage like 30%"))?;
            if !(0.0..=100.0).contains(&p) {
                bail!("percentage {p} is outside 0–100");
            }
            Ok(Amount::Percent(p))
        } else {
            Ok(Amount::Count(
                s.parse().with_context(|| format!("{s:?} is neither a count like 3 nor a percentage like 30%"))?,
            ))
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Count(n) => write!(f, "{n}"),
            Amount::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Parses `250ms`, `2s`, `1.5s`, `1m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num.trim().parse().with_context(|| format!("{s:?} is not a duration like 500ms, 2s or 1m"))?;
    if !v.is_finite() || v < 0.0 {
        bail!("duration {s:?} must be a non-negative number");
    }
    Duration::try_from_secs_f64(v * scale).with_context(|| format!("duration {s:?} is too long"))
}

/// A small seeded generator (SplitMix64): reproducible chaos from `--seed`.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// `k` distinct items of `items`, in random order.
    pub fn choose<T: Copy>(&mut self, items: &[T], k: usize) -> Vec<T> {
        let mut v = items.to_vec();
        let k = k.min(v.len());
        for i in 0..k {
            let j = i + self.below(v.len() - i);
            v.swap(i, j);
        }
        v.truncate(k);
        v
    }
}

/// A seed from the clock and the process id.
pub fn time_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut r = Rng::new(nanos ^ (u64::from(std::process::id()) << 32));
    r.next_u64()
}

/// The current UTC time as `HH:MM:SS.mmm`.
pub fn clock_now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    format!("{:02}:{:02}:{:02}.{:03}Z", (secs / 3600) % 24, (secs / 60) % 60, secs % 60, d.subsec_millis())
}

/// Writes to stdout, ignoring errors (a closed pipe must not abort cleanup).
pub fn write_out(args: fmt::Arguments<'_>) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_fmt(args);
    let _ = o.flush();
}

/// A short human duration: `850 ms`, `1.23 s`, `2m05s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 120_000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// KiB as a short human size: `5.1 MiB`.
pub fn human_kib(kib: u64) -> String {
    if kib < 1024 {
        format!("{kib} KiB")
    } else if kib < 1024 * 1024 {
        format!("{:.1} MiB", kib as f64 / 1024.0)
    } else {
        format!("{:.2} GiB", kib as f64 / (1024.0 * 1024.0))
    }
}

/// Left-aligned text table with a header row.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!("3".parse::<Amount>().expect("count"), Amount::Count(3));
        assert_eq!("30%".parse::<Amount>().expect("pct"), Amount::Percent(30.0));
        assert!("x".parse::<Amount>().is_err());
        assert!("130%".parse::<Amount>().is_err());
        assert_eq!(Amount::Percent(30.0).of(10), 3);
        assert_eq!(Amount::Percent(30.0).of(50), 15);
        assert_eq!(Amount::Percent(1.0).of(5), 1, "at least one");
        assert_eq!(Amount::Percent(0.0).of(5), 0);
        assert_eq!(Amount::Count(9).of(5), 5);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").expect("ms"), Duration::from_millis(250));
        assert_eq!(parse_duration("2s").expect("s"), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5").expect("bare"), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m").expect("m"), Duration::from_secs(60));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn choose_is_seeded_and_distinct() {
        let items: Vec<usize> = (0..10).collect();
        let a = Rng::new(7).choose(&items, 4);
        let b = Rng::new(7).choose(&items, 4);
        assert_eq!(a, b);
        let mut s = a.clone();
        s.sort_unstable();
        s.dedup();
        assert_eq!(s.len(), 4);
        assert_eq!(Rng::new(1).choose(&items, 20).len(), 10);
    }

    #[test]
    fn tables_align() {
        let t = table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "a    bb\nxxx  y\n");
    }
}
