//! A node following its own files (`--source`): chunks appear as lines
//! are appended, within about a second, and rotation and truncation start
//! a file again; the answer is what `ryx-api` reads.

mod support;

use ryx_api::Sources;
use std::io::Write;
use std::time::Duration;
use support::*;

/// The node's one source, once its first scan is in (an empty view until
/// then).
fn try_source_of(port: u16) -> Option<ryx_api::SourceView> {
    let s: Sources = get(port, "/v1/sources");
    s.sources.into_iter().next()
}

fn source_of(port: u16) -> ryx_api::SourceView {
    try_source_of(port).expect("one source")
}

#[test]
fn appended_lines_are_cut_into_chunks_and_rotation_starts_again() {
    let dir = ryx_testkit::ScratchDir::new("node-sources");
    let path = dir.path().join("app.log");
    let mut f = std::fs::File::create(&path).expect("create");
    let spec = format!("app={}/*.log", dir.path().display());
    let node = start_any_node("src", discovery_port(), &["--source", &spec, "--chunk-size", "4KiB"]);

    // 40 KB of lines: about ten chunks of 4 KiB.
    for i in 0..2000 {
        writeln!(f, "line {i:05} of the application log").expect("write");
    }
    f.flush().expect("flush");
    let len = std::fs::metadata(&path).expect("stat").len();
    let grown = wait_until(Duration::from_secs(20), || {
        let Some(s) = try_source_of(node.port) else { return false };
        s.bytes == len && s.chunks >= 9
    });
    assert!(grown.is_some(), "the appended lines were not cut: {:?}", source_of(node.port));
    let s = source_of(node.port);
    assert_eq!((s.name.as_str(), s.files.len()), ("app", 1));
    assert!(s.sealed_bytes > len - 4096 - 64 && s.sealed_bytes <= len, "{s:?}");
    assert!(s.errors.is_empty(), "{:?}", s.errors);

    // Rotated: the old file moves away (no longer matched), a new one
    // takes its name.
    std::fs::rename(&path, dir.path().join("app.log.1")).expect("rotate");
    std::fs::write(&path, "after rotation\n".repeat(10)).expect("write");
    let rotated = wait_until(Duration::from_secs(20), || {
        let s = source_of(node.port);
        s.restarts == 1 && s.files.first().is_some_and(|f| f.generation == 1 && f.len == 150)
    });
    assert!(rotated.is_some(), "rotation not seen: {:?}", source_of(node.port));

    // A second file matching the glob joins the source.
    std::fs::write(dir.path().join("other.log"), "x\n").expect("write");
    let joined = wait_until(Duration::from_secs(20), || source_of(node.port).files.len() == 2);
    assert!(joined.is_some(), "second file not followed: {:?}", source_of(node.port));
}

#[test]
fn a_bad_source_is_refused_at_start_and_a_missing_directory_is_reported() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ryx-node"))
        .args(["--source", "no equals sign", "--port", &free_port().to_string()])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NAME=PATH_OR_GLOB"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let node = start_any_node("src", discovery_port(), &["--source", "logs=/nonexistent-ryx-dir/*.log"]);
    let seen = wait_until(Duration::from_secs(20), || try_source_of(node.port).is_some_and(|s| !s.errors.is_empty()));
    assert!(seen.is_some(), "no error reported: {:?}", source_of(node.port));
    assert_eq!(source_of(node.port).files.len(), 0);
}

#[test]
fn sighup_rereads_the_sources_of_the_configuration_file() {
    let dir = ryx_testkit::ScratchDir::new("node-sources-hup");
    std::fs::write(dir.path().join("a.log"), "alpha line\n".repeat(50)).expect("write");
    std::fs::write(dir.path().join("b.txt"), "beta line\n".repeat(50)).expect("write");
    let config = dir.path().join("ryx.toml");
    let a = format!("app={}/*.log", dir.path().display());
    let b = format!("web={}/*.txt", dir.path().display());
    std::fs::write(&config, format!("source = [{a:?}]\n")).expect("config");
    let node = start_any_node("src-hup", discovery_port(), &["--config", &config.display().to_string()]);
    let names =
        || -> Vec<String> { get::<Sources>(node.port, "/v1/sources").sources.into_iter().map(|s| s.name).collect() };
    assert!(wait_until(Duration::from_secs(20), || names() == ["app"]).is_some(), "{:?}", names());
    std::fs::write(&config, format!("source = [{b:?}, {a:?}]\n")).expect("config");
    node.signal("HUP");
    let both = wait_until(Duration::from_secs(20), || names() == ["web", "app"]);
    assert!(both.is_some(), "sources after SIGHUP: {:?}", names());
    // A file that no longer parses leaves the sources as they are.
    std::fs::write(&config, "source = [\"no equals sign\"]\n").expect("config");
    node.signal("HUP");
    let log = std::env::temp_dir().join(format!("ryx-test-{}.log", node.port));
    let said = || std::fs::read_to_string(&log).is_ok_and(|t| t.contains("SIGHUP: keeping the current sources"));
    assert!(wait_until(Duration::from_secs(20), said).is_some(), "no refusal logged in {}", log.display());
    assert_eq!(names(), ["web", "app"]);
}
