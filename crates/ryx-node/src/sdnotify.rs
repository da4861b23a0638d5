//! systemd readiness and watchdog notifications (`sd_notify(3)`), without
//! libsystemd: one datagram per state change to the unix socket named by
//! `NOTIFY_SOCKET` (a path, or an abstract name written `@name`).
//!
//! - `READY=1` once the sockets are bound and the event loop serves;
//! - `WATCHDOG=1` every half of `WATCHDOG_USEC`, sent from the event loop
//!   itself, so a wedged loop stops the heartbeat and systemd restarts it;
//! - `STOPPING=1` when shutting down.
//!
//! Without `NOTIFY_SOCKET` (not run by systemd with `Type=notify`) every call
//! is a no-op. Sending never blocks and never fails the node: an error is
//! logged once at debug level and otherwise ignored.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Longest `NOTIFY_SOCKET` value accepted (sun_path is 108 bytes).
const MAX_SOCKET_NAME: usize = 107;

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` names, or `None` when it is unset or
    /// empty (then nothing is sent). A malformed value is an error.
    pub fn from_env() -> io::Result<Option<Notifier>> {
        match std::env::var_os("NOTIFY_SOCKET") {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => {
                let s = v.into_string().map_err(|_| invalid("NOTIFY_SOCKET is not UTF-8"))?;
                Notifier::new(&s).map(Some)
            }
        }
    }

    /// A notifier for the socket `name`: a filesystem path (`/run/...`) or
    /// an abstract socket name (`@name`).
    pub fn new(name: &str) -> io::Result<Notifier> {
        if name.len() > MAX_SOCKET_NAME {
            return Err(invalid("NOTIFY_SOCKET is longer than a socket address"));
        }
        let addr = if let Some(abs) = name.strip_prefix('@') {
            abstract_addr(abs.as_bytes())?
        } else if name.starts_with('/') {
            SocketAddr::from_pathname(name)?
        } else {
            return Err(invalid("NOTIFY_SOCKET must be an absolute path or @abstract-name"));
        };
        let sock = UnixDatagram::unbound()?;
        sock.set_nonblocking(true)?;
        Ok(Notifier { sock, addr })
    }

    /// Sends one state string, e.g. `READY=1` (newline-separated
    /// assignments are allowed).
    pub fn notify(&self, state: &str) -> io::Result<()> {
        self.sock.send_to_addr(state.as_bytes(), &self.addr).map(|_| ())
    }
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "abstract unix sockets need Linux"))
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// How often to send `WATCHDOG=1` given `WATCHDOG_USEC` and `WATCHDOG_PID`
/// (half the timeout, as `sd_watchdog_enabled(3)` recommends), or `None` if
/// the watchdog is off or meant for another process.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, my_pid: u32) -> Option<Duration> {
    if let Some(p) = pid {
        if p.trim().parse::<u32>().ok()? != my_pid {
            return None;
        }
    }
    let us: u64 = usec?.trim().parse().ok()?;
    if us == 0 {
        return None;
    }
    // At least 1 ms so a silly value cannot spin the loop.
    Some(Duration::from_micros(us / 2).max(Duration::from_millis(1)))
}

/// The notifier and watchdog period of this process, from the environment.
#[derive(Debug, Default)]
pub struct Systemd {
    notifier: Option<Notifier>,
    /// Half of `WATCHDOG_USEC`, when the watchdog is on.
    pub watchdog: Option<Duration>,
}

impl Systemd {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
    pub fn from_env() -> Systemd {
        let notifier = match Notifier::from_env() {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("ignoring NOTIFY_SOCKET: {e}");
                None
            }
        };
        let watchdog = notifier.as_ref().and_then(|_| {
            let usec = std::env::var("WATCHDOG_USEC").ok();
            let pid = std::env::var("WATCHDOG_PID").ok();
            watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id())
        });
        Systemd { notifier, watchdog }
    }

    /// Sends `state` if a service manager listens.
    pub fn notify(&self, state: &str) {
        if let Some(n) = &self.notifier {
            if let Err(e) = n.notify(state) {
                tracing::debug!(state, "sd_notify failed: {e}");
            }
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={status}"));
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.notify("STOPPING=1");
    }
}

/// Tells the service manager this process is stopping (no-op without one).
/// The event loop also sends it when it ends; calling it at the start of a
/// graceful shutdown makes `systemctl status` show it earlier.
#[allow(dead_code)] // for the shutdown path in main.rs
pub fn notify_stopping() {
    Systemd::from_env().stopping();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(s: &UnixDatagram) -> String {
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut buf = [0u8; 256];
        let n = s.recv(&mut buf).expect("a notification arrives");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("ryx-sdnotify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier::new(path.to_str().expect("utf-8")).expect("notifier");
        let sd = Systemd { notifier: Some(n), watchdog: None };
        sd.ready("serving");
        assert_eq!(recv(&server), "READY=1\nSTATUS=serving");
        sd.watchdog();
        assert_eq!(recv(&server), "WATCHDOG=1");
        sd.stopping();
        assert_eq!(recv(&server), "STOPPING=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("ryx-sdnotify-test-{}", std::process::id());
        let server = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).expect("addr"))
            .expect("bind abstract");
        let n = Notifier::new(&format!("@{name}")).expect("notifier");
        n.notify("READY=1").expect("send");
        assert_eq!(recv(&server), "READY=1");
    }

    #[test]
    fn no_listener_is_an_error_not_a_panic() {
        let n = Notifier::new("/nonexistent-ryx-dir/notify.sock").expect("valid name");
        assert!(n.notify("READY=1").is_err());
        // Through Systemd the error is swallowed.
        Systemd { notifier: Some(n), watchdog: None }.ready("x");
    }

    #[test]
    fn rejects_bad_names() {
        assert!(Notifier::new("relative/path").is_err());
        assert!(Notifier::new(&format!("/{}", "x".repeat(200))).is_err());
        assert!(Systemd::default().notifier.is_none());
        Systemd::default().ready("no-op without a manager");
    }

    #[test]
    fn watchdog_is_half_the_timeout_and_for_us_only() {
        assert_eq!(watchdog_interval(Some("10000000"), None, 7), Some(Duration::from_secs(5)));
        assert_eq!(watchdog_interval(Some("10000000"), Some("7"), 7), Some(Duration::from_secs(5)));
        assert_eq!(watchdog_interval(Some("10000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("junk"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
        assert_eq!(watchdog_interval(Some("1"), None, 7), Some(Duration::from_millis(1)));
    }
}
