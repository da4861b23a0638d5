//! Ctrl-C handling for the long-running commands.
//!
//! The first SIGINT, SIGTERM or SIGHUP sets a flag that the waiting loops
//! check, so they can clean up (resume paused nodes, stop a temporary
//! cluster); a second one exits at once. The handler comes from the
//! `ctrlc` crate (a signal handler plus a self-pipe thread): signals stay
//! unblocked, so node processes spawned meanwhile start with a clean
//! signal mask (a blocked mask would be inherited across exec, and the
//! nodes would then ignore SIGTERM).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Starts catching SIGINT, SIGTERM and SIGHUP.
pub fn install() {
    let r = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\nryx-cluster: interrupted again: quitting now");
            std::process::exit(130);
        }
        eprintln!("\nryx-cluster: interrupted: cleaning up (repeat to quit at once)");
    });
    if let Err(e) = r {
        eprintln!("ryx-cluster: cannot catch Ctrl-C ({e}); an interrupt will end this command without cleanup");
    }
}

/// Whether an interrupt arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// An error to return when interrupted.
pub fn check() -> anyhow::Result<()> {
    if interrupted() {
        anyhow::bail!("interrupted");
    }
    Ok(())
}

/// Sleeps for `d`, waking early on an interrupt; false if interrupted.
pub fn sleep(d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if interrupted() {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}
