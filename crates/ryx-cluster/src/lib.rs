//! `ryx-cluster`: the local development harness of Ryx, as a library. It
//! starts, inspects, grows, breaks, benchmarks and stops clusters of real
//! `ryx-node` processes on loopback (or one network namespace per node),
//! and talks to them through their HTTP API only, with `ryx-api`'s typed
//! client. The `ryx-cluster` binary parses the command line and calls
//! [`run`].
//!
//! - [`cluster`]: the node processes: spawning, state on disk, `/proc`,
//!   ports, the neighbour graph's health, namespaces; `start`, `add`, `stop`.
//! - [`inspect`], [`info`]: `status`, `logs`, `info put`, `info get`.
//! - [`jobs`]: jobs from the outside: input, submit, follow, results, the
//!   single-process reference; `inject`.
//! - [`chaos`]: faults now or during a job, and the timed fault records
//!   that are undone at their deadline even when `chaos` is gone.
//! - [`measure`]: figures: `measure` (membership) and `bench` (jobs).
//! - [`demo`]: the guided tour.
//!
//! Invariants: nodes bind 127.0.0.1 and discover each other only by
//! broadcast on 127.255.255.255 with a discovery port and cluster id unique
//! to the cluster; nothing is sent to a non-loopback address. With
//! `start --netns` nodes bind addresses of a private subnet inside network
//! namespaces this harness created, reached only through its own veth
//! (checked with `ip route get`), and only names carrying the cluster's
//! prefix are ever created or deleted. Only processes that `/proc` shows
//! to be the `ryx-node` started with this cluster's id and port are ever
//! signalled. Every wait is bounded.

/// `println!` that ignores a closed stdout (output piped into `head`, say):
/// a command must finish its cleanup even when nobody reads its output.
macro_rules! out {
    () => {
        $crate::util::write_out(format_args!("\n"))
    };
    ($($t:tt)*) => {
        $crate::util::write_out(format_args!("{}\n", format_args!($($t)*)))
    };
}

/// `print!` counterpart of `out!`.
macro_rules! out_raw {
    ($($t:tt)*) => {
        $crate::util::write_out(format_args!($($t)*))
    };
}

pub mod chaos;
pub mod cli;
pub mod cluster;
pub mod demo;
pub mod info;
pub mod inspect;
pub mod interrupt;
pub mod jobs;
pub mod measure;
pub mod util;

use cli::{Cli, Cmd, InfoCmd};
use std::process::ExitCode;

/// Runs one command line: the process's exit status, after printing any
/// error (130 when an interrupt cut it short).
pub fn run(cli: Cli) -> ExitCode {
    // Commands that wait catch Ctrl-C to clean up (resume paused nodes,
    // stop temporary clusters); the others keep the default behaviour.
    if matches!(
        cli.command,
        Cmd::Start(_) | Cmd::Add(_) | Cmd::Chaos(_) | Cmd::Measure(_) | Cmd::Demo(_) | Cmd::Inject(_) | Cmd::Bench(_)
    ) {
        interrupt::install();
    }
    let dir = cli.dir.as_deref();
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    let result = match cli.command {
        Cmd::Inject(a) => jobs::inject::inject(dir, a),
        Cmd::Bench(a) => done(measure::bench::bench(dir, a)),
        Cmd::HealDaemon => done(chaos::faults::healer(dir)),
        Cmd::LogDaemon => done(cluster::logs::daemon(dir)),
        Cmd::Start(a) => done(cluster::lifecycle::start(dir, a)),
        Cmd::Stop => done(cluster::lifecycle::stop(dir)),
        Cmd::Status(a) => done(inspect::status(dir, a)),
        Cmd::Logs(a) => done(inspect::logs(dir, a)),
        Cmd::Add(a) => done(cluster::lifecycle::add(dir, a)),
        Cmd::Chaos(a) => done(chaos::chaos(dir, a)),
        Cmd::Info(InfoCmd::Put(a)) => done(info::put(dir, a)),
        Cmd::Info(InfoCmd::Get(a)) => done(info::get(dir, a)),
        Cmd::Measure(a) => done(measure::measure(a)),
        Cmd::Demo(a) => done(demo::demo(dir, a)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ryx-cluster: {e:#}");
            if interrupt::interrupted() {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
