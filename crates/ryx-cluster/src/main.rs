//! `ryx-cluster`: parses the command line and runs it (see the library,
//! `ryx_cluster`, for everything else).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    ryx_cluster::run(ryx_cluster::cli::Cli::parse())
}
