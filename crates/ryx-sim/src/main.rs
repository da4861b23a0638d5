//! `ryx-sim` command line: run one experiment and print its summary.

use clap::Parser;
use ryx_sim::{run, Params};
use std::process::ExitCode;

fn main() -> ExitCode {
    let p = Params::parse();
    if let Err(e) = p.core_config(ryx_core::NodeConfig::default()) {
        eprintln!("ryx-sim: {e}");
        return ExitCode::from(2);
    }
    if let Some(seeds) = p.seeds {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let r = ryx_sim::sweep::sweep(&p, seeds, std::time::Duration::from_secs(p.budget_s), threads);
        if p.json {
            match serde_json::to_string_pretty(&r) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("ryx-sim: cannot print the report: {e}"),
            }
        } else {
            print!("{}", r.human());
        }
        return if r.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) };
    }
    match run(&p) {
        Ok(report) => {
            if p.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("ryx-sim: cannot print the report: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", report.human());
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            if p.json {
                let v = serde_json::json!({
                    "error": { "violation": failure.violation, "replay": failure.command }
                });
                println!("{v}");
            }
            eprintln!("ryx-sim: {failure}");
            ExitCode::from(2)
        }
    }
}
