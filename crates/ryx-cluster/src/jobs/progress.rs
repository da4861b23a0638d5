//! The progress bar of a job: units done, throughput, elapsed.

use crate::jobs::units;
use crate::util::human;
use ryx_api::JobView;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

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
    pub fn update(&mut self, job: &JobView) {
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
            if (self.last_done != Some(done) && due) || (job.is_final() && self.last_done != Some(done)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_show_units_rate_and_time() {
        let p = Progress::new("word-count", 100_000_000).quiet();
        let l = p.line(5, 10);
        assert!(l.contains("5/10 units") && l.contains("50%") && l.contains("MB/s"), "{l}");
        assert!(p.line(0, 0).contains("0/0 units"));
    }
}
