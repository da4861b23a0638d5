//! Authentication and configuration through real processes: datagram
//! secrets (members admitted, strangers dropped and counted, key rotation by
//! SIGHUP), the API token, the read-only listener, the TOML configuration
//! file and `--print-config`.

mod support;

use ryx_api::{ErrorBody, ErrorCode, NodeId};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use support::*;

fn temp_file(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("ryx-sec-{}-{name}", std::process::id()));
    std::fs::write(&p, text).expect("write temp file");
    p
}

/// HTTP with an optional bearer token; status and body (status 0: no answer).
fn http_auth(port: u16, method: &str, path: &str, body: &[u8], token: Option<&str>) -> (u16, String) {
    let c = match token {
        Some(t) => client(port).with_token(t),
        None => client(port),
    };
    c.request(method, path, Some(body)).map_or((0, String::new()), |r| (r.status, r.text()))
}

fn rejected(n: &NodeProc, reason: &str) -> f64 {
    n.metric(&format!("ryx_datagrams_rejected_total{{reason=\"{reason}\"}}")).unwrap_or(0.0)
}

#[test]
fn a_secret_admits_members_and_drops_strangers() {
    let disc = discovery_port();
    let secret = temp_file("members", "# cluster key\nmembers-only-secret\n");
    let other = temp_file("other", "another-secret\n");
    let s = secret.to_str().expect("path");
    let members: Vec<NodeProc> =
        (1..=4).map(|_| start_any_node("sec", disc, &["--secret-file", s, "--min-neighbors", "2"])).collect();
    let wrong_key = start_any_node("sec", disc, &["--secret-file", other.to_str().expect("path")]);
    let no_key = start_any_node("sec", disc, &[]);

    let t = wait_until(Duration::from_secs(15), || all_have(&members, 2));
    assert!(t.is_some(), "members with the same secret did not connect");
    // Strangers keep knocking (hellos) but never get in: from now on, until
    // the members have refused more of both strangers' datagrams, nobody
    // links with a stranger.
    let member_ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    let strangers_out = || {
        for m in &members {
            let ns = m.neighbor_ids().expect("neighbours");
            assert!(ns.iter().all(|n| member_ids.contains(&n.as_str())), "a stranger got in: {ns:?}");
        }
        assert_eq!(wrong_key.neighbor_ids().expect("neighbours").len(), 0);
        assert_eq!(no_key.neighbor_ids().expect("neighbours").len(), 0);
    };
    let refused = |reason: &str| -> f64 { members.iter().map(|m| rejected(m, reason)).sum() };
    let (unknown0, missing0) = (refused("auth_unknown_key"), refused("auth_missing"));
    let knocked_again = wait_until(Duration::from_secs(15), || {
        strangers_out();
        refused("auth_unknown_key") > unknown0 && refused("auth_missing") > missing0
    });
    strangers_out();
    let (unknown, missing) = (refused("auth_unknown_key"), refused("auth_missing"));
    assert!(
        knocked_again.is_some(),
        "the members refused no more of the strangers' datagrams in 15 s: {unknown} signed with another key, {missing} unsigned"
    );
    assert!(unknown > 0.0, "datagrams signed with another key were not counted");
    assert!(missing > 0.0, "unsigned datagrams were not counted");
    assert_eq!(members[0].metric("ryx_auth_keys"), Some(1.0));

    // A hand-made datagram with a made-up tag: refused as a bad MAC.
    let forged = format!(
        r#"{{"v":1,"cluster":"sec","from":"00000000000000ff","seq":1,"msg":{{"kind":"ping","nonce":1}},"tag":"r1.{:08x}.0000000000000001.1.{}.{}"}}"#,
        0u32,
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis(),
        "0".repeat(32)
    );
    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let before = rejected(&members[0], "auth_unknown_key") + rejected(&members[0], "auth_bad_mac");
    sock.send_to(forged.as_bytes(), ("127.0.0.1", members[0].port)).expect("send");
    let counted = wait_until(Duration::from_secs(5), || {
        rejected(&members[0], "auth_unknown_key") + rejected(&members[0], "auth_bad_mac") > before
    });
    assert!(counted.is_some(), "forged datagram not counted");

    // Information still spreads among members.
    let (st, body) = http_auth(members[0].port, "POST", "/v1/info", br#"{"key":"k","value":"v"}"#, None);
    assert_eq!(st, 201, "{body}");
    let spread = wait_until(Duration::from_secs(10), || {
        members.iter().all(|m| http_auth(m.port, "GET", "/v1/info/k", b"", None).0 == 200)
    });
    assert!(spread.is_some(), "item did not reach every member");
    assert_eq!(http_auth(no_key.port, "GET", "/v1/info/k", b"", None).0, 404);
    let _ = std::fs::remove_file(secret);
    let _ = std::fs::remove_file(other);
}

#[test]
fn keys_rotate_with_sighup_and_no_restart() {
    let disc = discovery_port();
    // a signs and accepts "old" only; b signs with "new" and accepts both:
    // b hears a, a drops b, so no link can form.
    let fa = temp_file("rot-a", "old\n");
    let fb = temp_file("rot-b", "new\nold\n");
    let common = ["--min-neighbors", "1", "--target-neighbors", "1"];
    let a = start_any_node("rot", disc, &[&["--secret-file", fa.to_str().expect("p")][..], &common].concat());
    let b = start_any_node("rot", disc, &[&["--secret-file", fb.to_str().expect("p")][..], &common].concat());
    // b keeps trying (a needy node says hello every 300 ms); a refuses
    // every try and stays alone.
    let refused = wait_until(Duration::from_secs(15), || {
        assert_eq!(a.neighbor_ids().expect("n").len(), 0, "a must not accept the new key yet");
        rejected(&a, "auth_unknown_key") >= 3.0
    });
    assert!(refused.is_some(), "a did not refuse b's datagrams: {}", rejected(&a, "auth_unknown_key"));
    assert_eq!(a.neighbor_ids().expect("n").len(), 0, "a must not accept the new key yet");
    assert_eq!(b.metric("ryx_auth_keys"), Some(2.0));
    // Step 1 of a rotation on a: accept the new key too. Reload, no restart.
    std::fs::write(&fa, "old\nnew\n").expect("rewrite");
    a.signal("HUP");
    let t = wait_until(Duration::from_secs(10), || {
        a.neighbor_ids().is_some_and(|v| v.contains(&b.id)) && b.neighbor_ids().is_some_and(|v| v.contains(&a.id))
    });
    assert!(t.is_some(), "nodes did not connect after the key reload");
    assert_eq!(a.metric("ryx_auth_keys"), Some(2.0));
    let _ = std::fs::remove_file(fa);
    let _ = std::fs::remove_file(fb);
}

#[test]
fn api_token_guards_changes_and_read_only_listener_serves_reads() {
    let disc = discovery_port();
    let tok = temp_file("token", "s3cr3t-token\n");
    let ro_port = free_port();
    let ro = format!("127.0.0.1:{ro_port}");
    let n = start_any_node(
        "tok",
        disc,
        &["--api-token-file", tok.to_str().expect("p"), "--read-only-http", &ro, "--enable-fault-injection"],
    );
    let body = br#"{"key":"a","value":1}"#;
    let (st, b) = http_auth(n.port, "POST", "/v1/info", body, None);
    assert_eq!(st, 401, "{b}");
    let e: ErrorBody = serde_json::from_str(&b).expect("json error");
    assert_eq!(e.error.code, ErrorCode::Unauthorized);
    assert_eq!(http_auth(n.port, "POST", "/v1/info", body, Some("wrong")).0, 401);
    assert_eq!(http_auth(n.port, "DELETE", "/v1/admin/faults", b"", None).0, 401);
    assert_eq!(http_auth(n.port, "POST", "/v1/info", body, Some("s3cr3t-token")).0, 201);
    // Reads stay open unless --protect-reads.
    assert_eq!(http_auth(n.port, "GET", "/v1/info/a", b"", None).0, 200);
    assert_eq!(http_auth(n.port, "GET", "/healthz", b"", None).0, 200);
    assert_eq!(n.metric("ryx_http_unauthorized_total"), Some(3.0));
    // The read-only listener: reads without a token, nothing else.
    assert_eq!(http_auth(ro_port, "GET", "/v1/status", b"", None).0, 200);
    assert_eq!(http_auth(ro_port, "GET", "/v1/info/a", b"", None).0, 200);
    let (st, b) = http_auth(ro_port, "POST", "/v1/info", body, Some("s3cr3t-token"));
    assert_eq!(st, 403, "{b}");
    assert_eq!(http_auth(ro_port, "GET", "/v1/admin/faults", b"", None).0, 403);
    assert_eq!(n.metric("ryx_http_read_only_refused_total"), Some(2.0));
    drop(n);

    // --protect-reads: reads need the token too, except /healthz and /ui.
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_ryx-node"))
        .args(["--port", &port.to_string(), "--discovery-port", &disc.to_string(), "--protect-reads"])
        .env("RYX_API_TOKEN", "env-token")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let p = NodeProc { child, port, id: NodeId::default() };
    assert!(wait_until(Duration::from_secs(10), || http_auth(port, "GET", "/healthz", b"", None).0 == 200).is_some());
    assert_eq!(http_auth(p.port, "GET", "/v1/status", b"", None).0, 401);
    assert_eq!(http_auth(p.port, "GET", "/v1/status", b"", Some("s3cr3t-token")).0, 401);
    assert_eq!(http_auth(p.port, "GET", "/v1/status", b"", Some("env-token")).0, 200);
    assert_eq!(http_auth(p.port, "GET", "/ui/", b"", None).0, 200);
    // The identity challenge stays open: members ask it of one another
    // before they send any credential (behind it, the relay and job
    // look-ups at other nodes would fail).
    let (st, b) = http_auth(p.port, "GET", "/v1/identity?challenge=00112233445566778899aabbccddeeff", b"", None);
    assert_eq!(st, 200, "{b}");
    // A browser's event stream cannot send headers: the query string works
    // for reads (percent-encoded), never for changes.
    assert_eq!(http_auth(p.port, "GET", "/v1/status?access_token=env%2Dtoken", b"", None).0, 200);
    assert_eq!(http_auth(p.port, "GET", "/v1/status?access_token=nope", b"", None).0, 401);
    assert_eq!(http_auth(p.port, "POST", "/v1/info?access_token=env-token", br#"{"key":"q","value":1}"#, None).0, 401);
    let _ = std::fs::remove_file(tok);
}

#[test]
fn config_file_with_flag_over_env_over_file_precedence() {
    let port = free_port();
    let cfg = temp_file(
        "cfg.toml",
        &format!("# test\nport = {port}\ncluster-id = \"fromfile\"\ndefault_energy = 7.5\nmin-neighbors = 3\nseeds = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n"),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ryx-node"))
        .args(["--config", cfg.to_str().expect("p"), "--print-config", "--min-neighbors", "4"])
        .env("RYX_CLUSTER_ID", "fromenv")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("port = {port}  # file")), "{text}");
    assert!(text.contains("cluster-id = \"fromenv\"  # env RYX_CLUSTER_ID"), "{text}");
    assert!(text.contains("default-energy = 7.5  # file"), "{text}");
    assert!(text.contains("min-neighbors = 4  # flag"), "{text}");
    assert!(text.contains("seeds = [\"127.0.0.1:1\", \"127.0.0.1:2\"]  # file"), "{text}");
    assert!(text.contains("bind = \"127.0.0.1\"  # default"), "{text}");
    // The printed configuration is itself a valid configuration file.
    let printed = temp_file("printed.toml", &text);
    let again = Command::new(env!("CARGO_BIN_EXE_ryx-node"))
        .args(["--config", printed.to_str().expect("p"), "--print-config"])
        .env_remove("RYX_CLUSTER_ID")
        .output()
        .expect("run");
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(String::from_utf8_lossy(&again.stdout).contains("cluster-id = \"fromenv\"  # file"));

    // A bad key is a clear error, exit status 2.
    let bad = temp_file("bad.toml", "prot = 9001\n");
    let out = Command::new(env!("CARGO_BIN_EXE_ryx-node"))
        .args(["--config", bad.to_str().expect("p")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key \"prot\""), "{err}");

    // And a node really runs from the file.
    let n = start_node(port, "ignored-by-env-below", discovery_port(), &["--config", cfg.to_str().expect("p")]);
    let st = n.client().status().expect("status");
    // --cluster-id given as a flag by start_node beats the file.
    assert_eq!(st.cluster_id, "ignored-by-env-below");
    for p in [cfg, printed, bad] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn wildcard_bind_needs_an_advertised_address() {
    // Free on every address, as the node binds the wildcard.
    let port = ryx_testkit::free_port_where(|p| {
        UdpSocket::bind(("0.0.0.0", p)).is_ok() && std::net::TcpListener::bind(("0.0.0.0", p)).is_ok()
    });
    let disc = discovery_port();
    let out = Command::new(env!("CARGO_BIN_EXE_ryx-node"))
        .args(["--port", &port.to_string(), "--bind", "0.0.0.0", "--discovery-port", &disc.to_string()])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--advertise-addr"), "{err}");
    let n = start_node(port, "adv", disc, &["--bind", "0.0.0.0", "--advertise-addr", "127.0.0.1"]);
    let st = n.client().status().expect("status");
    assert_eq!(st.addr.to_string(), format!("127.0.0.1:{port}"), "{st:?}");
}
