//! `ryx-cluster`: the local development harness of Ryx. It starts, inspects,
//! grows, breaks, benchmarks and stops clusters of real `ryx-node`
//! processes on loopback.
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

mod bench;
mod chaos;
mod cli;
mod cluster;
mod demo;
mod faultlog;
mod graph;
mod http;
mod info;
mod inject;
mod inspect;
mod interrupt;
mod jobs;
mod lifecycle;
mod measure;
mod netns;
mod nodebin;
mod ports;
mod procfs;
mod runjob;
mod state;
mod svg;
mod util;

use clap::Parser;
use cli::{Cli, Cmd, InfoCmd};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Cmd::Inject(a) => inject::inject(dir, a),
        Cmd::Bench(a) => done(bench::bench(dir, a)),
        Cmd::HealDaemon => done(faultlog::healer(dir)),
        Cmd::Start(a) => done(lifecycle::start(dir, a)),
        Cmd::Stop => done(lifecycle::stop(dir)),
        Cmd::Status(a) => done(inspect::status(dir, a)),
        Cmd::Logs(a) => done(inspect::logs(dir, a)),
        Cmd::Add(a) => done(lifecycle::add(dir, a)),
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
