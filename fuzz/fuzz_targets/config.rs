//! The configuration file: TOML text through the same path a node takes at
//! start-up (keys to options, options parsed, the protocol configuration
//! built and validated). Nothing may panic; bad files are errors.

#![no_main]

use clap::{CommandFactory, Parser};
use libfuzzer_sys::fuzz_target;
use ryx_node::cli::Cli;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let cmd = Cli::command();
    let Ok(pairs) = ryx_node::config_file::assignments(&cmd, text, "fuzz.toml") else { return };
    // Every assignment as the flag it stands for.
    let mut args = vec!["ryx-node".to_string()];
    for (env, value) in pairs {
        let Some(flag) = cmd.get_arguments().find(|a| a.get_env().is_some_and(|e| e == env.as_str())) else { continue };
        let Some(long) = flag.get_long() else { continue };
        args.push(format!("--{long}={value}"));
    }
    if let Ok(cli) = Cli::try_parse_from(&args) {
        let cfg = cli.daemon.node_config();
        let _ = cfg.validate();
    }
});
