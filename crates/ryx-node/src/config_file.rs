//! The configuration file (TOML) and `--print-config`.
//!
//! A file's keys are the daemon's long flag names (`port`, `cluster-id`,
//! `seeds`, ...; `cluster_id` is accepted too). Precedence is
//! flag > `RYX_*` environment variable > file > built-in default. It is
//! implemented by reading the file before the command line is parsed and
//! presenting each of its values to the parser as the flag's environment
//! variable, unless the real environment already sets that variable.

use anyhow::{bail, Context};
use clap::parser::ValueSource;
use clap::{ArgMatches, Command};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Keys that cannot appear in a file.
const NOT_IN_FILE: [&str; 3] = ["config", "print-config", "help"];

/// Where the configuration file comes from: `--config FILE` (or
/// `--config=FILE`) on the command line, else `RYX_CONFIG`.
pub fn locate(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let Some(s) = a.to_str() else { continue };
        if s == "--" {
            break;
        }
        if s == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = s.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("RYX_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// Long name and environment variable of every daemon option.
fn options(cmd: &Command) -> BTreeMap<String, String> {
    cmd.get_arguments().filter_map(|a| Some((a.get_long()?.to_string(), a.get_env()?.to_str()?.to_string()))).collect()
}

/// A TOML value as the text a flag would take.
fn flag_text(key: &str, v: &toml::Value) -> anyhow::Result<String> {
    Ok(match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => {
            let parts: anyhow::Result<Vec<String>> = items
                .iter()
                .map(|x| match x {
                    toml::Value::Array(_) | toml::Value::Table(_) => bail!("{key}: nested lists are not allowed"),
                    x => flag_text(key, x),
                })
                .collect();
            parts?.join(",")
        }
        toml::Value::Table(_) | toml::Value::Datetime(_) => {
            bail!("{key}: expected a string, number, boolean or list")
        }
    })
}

/// Parses `text` (from `origin`) into environment assignments for the
/// options of `cmd`.
pub fn assignments(cmd: &Command, text: &str, origin: &str) -> anyhow::Result<Vec<(String, String)>> {
    let table: toml::Table = toml::from_str(text).with_context(|| format!("{origin} is not valid TOML"))?;
    let opts = options(cmd);
    let mut out = Vec::new();
    for (k, v) in &table {
        let key = k.replace('_', "-");
        let env = match opts.get(&key) {
            Some(env) if !NOT_IN_FILE.contains(&key.as_str()) => env,
            _ => {
                let known: Vec<&str> = opts.keys().map(String::as_str).filter(|k| !NOT_IN_FILE.contains(k)).collect();
                bail!("{origin}: unknown key {k:?} (known keys: {})", known.join(", "));
            }
        };
        out.push((env.clone(), flag_text(k, v)?));
    }
    Ok(out)
}

/// Reads the configuration file, if any, and exports its values as the
/// options' environment variables where the environment does not already
/// set them. Returns the variables it set (to tell file from environment
/// in `--print-config`). Must run before any thread is started.
pub fn load(cmd: &Command, args: &[OsString]) -> anyhow::Result<Vec<String>> {
    let Some(path) = locate(args) else { return Ok(Vec::new()) };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("cannot read configuration file {}", path.display()))?;
    let mut set = Vec::new();
    for (env, value) in assignments(cmd, &text, &path.display().to_string())? {
        if std::env::var_os(&env).is_none() {
            std::env::set_var(&env, value);
            set.push(env);
        }
    }
    Ok(set)
}

/// The `source` list of configuration file `path`, parsed.
pub fn sources(cmd: &Command, path: &Path) -> anyhow::Result<Vec<crate::sources::SourceSpec>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read configuration file {}", path.display()))?;
    let mut out = Vec::new();
    for (env, value) in assignments(cmd, &text, &path.display().to_string())? {
        if env == "RYX_SOURCES" {
            for item in value.split(',').filter(|s| !s.is_empty()) {
                out.push(item.parse().map_err(|e: String| anyhow::anyhow!("source: {e}"))?);
            }
        }
    }
    Ok(out)
}

fn toml_string(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if c.is_control() => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn toml_value(raw: &str) -> String {
    let float = raw.parse::<f64>().is_ok_and(f64::is_finite) && raw.contains('.');
    if raw == "true" || raw == "false" || raw.parse::<i64>().is_ok() || float {
        raw.to_string()
    } else {
        toml_string(raw)
    }
}

/// The effective configuration as a TOML file that reproduces it, each
/// line saying where its value came from.
pub fn render(cmd: &Command, m: &ArgMatches, from_file: &[String]) -> String {
    let mut o = String::from("# ryx-node effective configuration (precedence: flag > env > file > default)\n");
    for a in cmd.get_arguments() {
        let (Some(long), id) = (a.get_long(), a.get_id().as_str()) else { continue };
        if NOT_IN_FILE.contains(&long) || long == "version" {
            continue;
        }
        let env = a.get_env().and_then(|e| e.to_str()).unwrap_or("");
        let source = match m.value_source(id) {
            Some(ValueSource::CommandLine) => "flag".to_string(),
            Some(ValueSource::EnvVariable) if from_file.iter().any(|e| e == env) => "file".to_string(),
            Some(ValueSource::EnvVariable) => format!("env {env}"),
            Some(ValueSource::DefaultValue) => "default".to_string(),
            _ => "unset".to_string(),
        };
        let raw: Vec<String> =
            m.get_raw(id).map(|vals| vals.map(|v| v.to_string_lossy().into_owned()).collect()).unwrap_or_default();
        let line = match (raw.as_slice(), a.get_num_args().is_some_and(|n| n.max_values() > 1) || long == "seeds") {
            ([], _) if source == "unset" => format!("# {long} =  (unset)"),
            (vals, true) => {
                let items: Vec<String> = vals.iter().map(|v| toml_string(v)).collect();
                format!("{long} = [{}]  # {source}", items.join(", "))
            }
            ([], false) => format!("{long} = true  # {source}"),
            ([v], false) => format!("{long} = {}  # {source}", toml_value(v)),
            (vals, false) => format!("{long} = {}  # {source}", toml_string(&vals.join(","))),
        };
        o.push_str(&line);
        o.push('\n');
    }
    o
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn cmd() -> Command {
        crate::cli::Cli::command()
    }

    #[test]
    fn file_keys_map_to_environment_variables() {
        let text = r#"
port = 9100
cluster-id = "prod"
seeds = ["a:9001", "b:9001"]
enable_fault_injection = true
default-energy = 12.5
"#;
        let a = assignments(&cmd(), text, "t.toml").unwrap();
        let get = |k: &str| a.iter().find(|(e, _)| e == k).map(|(_, v)| v.as_str());
        assert_eq!(get("RYX_PORT"), Some("9100"));
        assert_eq!(get("RYX_CLUSTER_ID"), Some("prod"));
        assert_eq!(get("RYX_SEEDS"), Some("a:9001,b:9001"));
        assert_eq!(get("RYX_ENABLE_FAULT_INJECTION"), Some("true"));
        assert_eq!(get("RYX_DEFAULT_ENERGY"), Some("12.5"));
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_clear_errors() {
        let e = assignments(&cmd(), "prot = 1", "t.toml").unwrap_err().to_string();
        assert!(e.contains("unknown key \"prot\"") && e.contains("port"), "{e}");
        let e = assignments(&cmd(), "port = ", "t.toml").unwrap_err().to_string();
        assert!(e.contains("not valid TOML"), "{e}");
        let e = assignments(&cmd(), "config = \"x\"", "t.toml").unwrap_err().to_string();
        assert!(e.contains("unknown key"), "{e}");
        let e = assignments(&cmd(), "[section]\nport = 1", "t.toml").unwrap_err().to_string();
        assert!(e.contains("section"), "{e}");
    }

    #[test]
    fn locate_reads_both_spellings() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(locate(&args(&["ryx-node", "--config", "a.toml"])), Some(PathBuf::from("a.toml")));
        assert_eq!(locate(&args(&["ryx-node", "--port", "1", "--config=b.toml"])), Some(PathBuf::from("b.toml")));
    }

    #[test]
    fn printed_values_are_toml() {
        assert_eq!(toml_value("9001"), "9001");
        assert_eq!(toml_value("true"), "true");
        assert_eq!(toml_value("0.5"), "0.5");
        assert_eq!(toml_value("127.0.0.1"), "\"127.0.0.1\"");
        assert_eq!(toml_value("1GiB"), "\"1GiB\"");
        assert_eq!(toml_string("a\"b"), "\"a\\\"b\"");
    }
}
