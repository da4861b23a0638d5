//! What `/proc` says about a process, and sending it signals — only after
//! checking that it still is the `ryx-node` we started.

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;

/// Whether a node process runs, is stopped (SIGSTOP), or is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Running or sleeping normally.
    Running,
    /// Stopped by a signal (paused by `chaos --pause`).
    Paused,
    /// Exited, a zombie, or the pid now belongs to another program.
    Gone,
}

impl Liveness {
    /// Whether the process exists (running or paused).
    pub fn exists(self) -> bool {
        self != Liveness::Gone
    }

    /// Short word for tables.
    pub fn word(self) -> &'static str {
        match self {
            Liveness::Running => "yes",
            Liveness::Paused => "paused",
            Liveness::Gone => "no",
        }
    }
}

/// What identifies one node process of one cluster.
#[derive(Clone, Copy, Debug)]
pub struct NodeIdentity<'a> {
    /// Pid recorded at spawn time.
    pub pid: u32,
    /// The node binary it was started from.
    pub node_bin: &'a Path,
    /// The cluster id passed with `--cluster-id`.
    pub cluster_id: &'a str,
    /// The port passed with `--port`.
    pub port: u16,
}

/// The arguments of a process, from `/proc/PID/cmdline`.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    Some(raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect())
}

/// The state letter of `/proc/PID/stat` (R, S, D, T, t, Z, X, ...).
pub fn state_letter(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: look after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

/// Whether `pid` is, right now, a `ryx-node` started with our cluster id and port.
pub fn is_our_node(id: &NodeIdentity<'_>) -> bool {
    let Some(args) = cmdline(id.pid) else {
        return false;
    };
    let Some(argv0) = args.first() else {
        return false;
    };
    let named_ok = Path::new(argv0) == id.node_bin
        || Path::new(argv0).file_name().is_some_and(|n| n.to_string_lossy().starts_with("ryx-node"));
    let port = id.port.to_string();
    let has = |flag: &str, value: &str| args.windows(2).any(|w| w[0] == flag && w[1] == value);
    named_ok && has("--cluster-id", id.cluster_id) && has("--port", &port)
}

/// Whether the node described by `id` runs, is paused, or is gone.
pub fn liveness(id: &NodeIdentity<'_>) -> Liveness {
    if !is_our_node(id) {
        return Liveness::Gone;
    }
    match state_letter(id.pid) {
        None | Some('Z') | Some('X') | Some('x') => Liveness::Gone,
        Some('T') | Some('t') => Liveness::Paused,
        Some(_) => Liveness::Running,
    }
}

/// Whether any process with this pid exists (not a zombie), whatever it runs.
pub fn pid_exists(pid: u32) -> bool {
    !matches!(state_letter(pid), None | Some('Z') | Some('X') | Some('x'))
}

/// Resident memory in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time used so far (user + system), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the command: state is field 3, utime 14 and stime 15 (1-based).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second for [`cpu_ticks`].
pub fn ticks_per_second() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

/// Sends `sig` to the node described by `id` if it still is that node.
/// Returns false (and sends nothing) when it is not.
pub fn signal_node(id: &NodeIdentity<'_>, sig: Signal) -> Result<bool> {
    if !is_our_node(id) {
        return Ok(false);
    }
    let pid = i32::try_from(id.pid).context("pid out of range")?;
    match kill(Pid::from_raw(pid), sig) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot send {sig} to pid {}", id.pid)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(pid_exists(me));
        assert!(rss_kib(me).is_some_and(|k| k > 0));
        assert!(cpu_ticks(me).is_some());
        assert!(cmdline(me).is_some_and(|a| !a.is_empty()));
        let id = NodeIdentity { pid: me, node_bin: Path::new("/nonexistent/ryx-node"), cluster_id: "x", port: 1 };
        assert!(!is_our_node(&id), "a test binary is not a ryx-node of cluster x");
        assert_eq!(liveness(&id), Liveness::Gone);
    }
}
