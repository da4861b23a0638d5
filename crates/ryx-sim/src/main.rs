//! `ryx-sim` command line: run one experiment and print its summary.

use clap::Parser;
use ryx_sim::{run, Params};
use std::process::ExitCode;

fn main() -> ExitCode {
    let p = Params::parse();
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
