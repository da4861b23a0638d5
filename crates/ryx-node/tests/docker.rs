//! Containers, for real: the FROM-scratch image around the static binary,
//! five containers on a user-defined (internal) Docker network, a job whose
//! digest must equal the loopback reference, two containers disconnected
//! from the network (the rest carries on and computes), reconnected (the
//! network re-merges). Every container, network and image made here has a
//! unique name and is removed afterwards, also when the test fails.
//!
//! The static binary is `RYX_STATIC_BIN`, or the one `scripts/build-static.sh`
//! left in `<target>/static-build/dist` (a test does not run cargo; `.ci/run`
//! builds it first). Skips with a message when no Docker engine answers or
//! that binary is missing or older than the sources. Figures are printed:
//!
//!   CARGO_TARGET_DIR=target/static-build OUT_DIR=target/static-build/dist scripts/build-static.sh
//!   cargo test --release -p ryx-node --test docker -- --nocapture

mod multihost;

use multihost::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_ryx-node");
const N: usize = 5;

fn engine_answers() -> bool {
    Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output().is_ok_and(|o| o.status.success())
}

/// A container, reached over the Docker network from the host.
struct Container {
    name: String,
    ip: String,
}

impl Host for Container {
    fn http(&self, method: &str, path: &str, body: Option<&[u8]>) -> Option<(u16, Vec<u8>)> {
        let addr: SocketAddr = format!("{}:9001", self.ip).parse().ok()?;
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let body = body.unwrap_or(&[]);
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.ip,
            body.len()
        );
        s.write_all(head.as_bytes()).ok()?;
        s.write_all(body).ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).ok()?;
        let status = std::str::from_utf8(buf.get(9..12)?).ok()?.parse().ok()?;
        let cut = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        Some((status, buf[cut..].to_vec()))
    }

    fn name(&self) -> String {
        format!("{}({})", self.name, self.ip)
    }
}

/// Everything this test created; removed on drop.
struct Cluster {
    net: String,
    subnet: String,
    image: String,
    containers: Vec<Container>,
    ctx: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &self.containers {
            if std::thread::panicking() {
                if let Ok(o) = Command::new("docker").args(["logs", "--tail", "15", &c.name]).output() {
                    eprintln!("--- {} log tail\n{}", c.name, String::from_utf8_lossy(&o.stderr));
                }
            }
            sh_quiet(&format!("docker rm -f {}", c.name));
        }
        sh_quiet(&format!("docker network rm {}", self.net));
        sh_quiet(&format!("docker rmi -f {}", self.image));
        let _ = std::fs::remove_dir_all(&self.ctx);
    }
}

/// The crates the node binary is built from.
const NODE_CRATES: &[&str] = &["ryx-node", "ryx-core", "ryx-compute", "ryx-control"];

/// The static binary: `RYX_STATIC_BIN`, or the one `scripts/build-static.sh`
/// left in `<target>/static-build/dist`; else why there is none to use.
fn static_binary() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("RYX_STATIC_BIN") {
        return Ok(PathBuf::from(p));
    }
    // <target>/release/ryx-node -> <target>/static-build
    let target = PathBuf::from(EXE).parent().and_then(|p| p.parent()).expect("target dir").join("static-build");
    let out = target.join("dist");
    let bin = out.join("ryx-node");
    let build = format!("CARGO_TARGET_DIR={} OUT_DIR={} scripts/build-static.sh", target.display(), out.display());
    if !bin.is_file() {
        return Err(format!("no static ryx-node at {}: build it ({build}) or set RYX_STATIC_BIN", bin.display()));
    }
    if let Some(src) = ryx_testkit::newer_source(&bin, NODE_CRATES) {
        return Err(format!(
            "the static ryx-node {} is older than {}: rebuild it ({build}) or set RYX_STATIC_BIN",
            bin.display(),
            src.display()
        ));
    }
    Ok(bin)
}

impl Cluster {
    fn new(bin: &std::path::Path) -> Cluster {
        let ldd = Command::new("ldd").arg(bin).output().expect("ldd");
        let l = String::from_utf8_lossy(&ldd.stdout).to_string() + &String::from_utf8_lossy(&ldd.stderr);
        assert!(l.contains("not a dynamic executable") || l.contains("statically linked"), "not static: {l}");
        let pid = std::process::id();
        let ctx = std::env::temp_dir().join(format!("ryx-docker-ctx-{pid}"));
        std::fs::create_dir_all(&ctx).expect("context dir");
        std::fs::copy(bin, ctx.join("ryx-node")).expect("copy binary");
        std::fs::copy(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../Dockerfile"), ctx.join("Dockerfile"))
            .expect("copy Dockerfile");
        let mut c = Cluster {
            net: format!("ryx-test-net-{pid}"),
            subnet: String::new(),
            image: format!("ryx-node-test:{pid}"),
            containers: Vec::new(),
            ctx: ctx.clone(),
        };
        run(Command::new("docker").args(["build", "-q", "-t", &c.image]).arg(&ctx));
        // A subnet of our own; try another if one is taken.
        for k in 0..20 {
            let x = (pid as usize + k * 7) % 200 + 20;
            let subnet = format!("10.78.{x}");
            let ok = Command::new("docker")
                .args(["network", "create", "--internal", "--subnet", &format!("{subnet}.0/24"), &c.net])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                c.subnet = subnet;
                break;
            }
        }
        assert!(!c.subnet.is_empty(), "could not create a Docker network");
        let names: Vec<String> = (0..N).map(|i| format!("ryx-test-{pid}-{i}")).collect();
        let seeds = format!("{}:9001,{}:9001", names[0], names[1]);
        for (i, name) in names.iter().enumerate() {
            let ip = format!("{}.{}", c.subnet, 11 + i);
            c.containers.push(Container { name: name.clone(), ip: ip.clone() });
            run(Command::new("docker")
                .args([
                    "run",
                    "-d",
                    "--name",
                    name,
                    "--network",
                    &c.net,
                    "--ip",
                    &ip,
                    "--read-only",
                    "--cap-drop",
                    "ALL",
                ])
                .args(["-e", &format!("RYX_BIND={ip}"), &c.image])
                .args(["--port", "9001", "--discovery", "seed-nodes", "--seeds", &seeds, "--cluster-id", "docker"])
                .args(["--workers", "1", "--chunk-size", "1MiB"]));
        }
        for h in &c.containers {
            let up = wait_until(Duration::from_secs(15), || matches!(h.http("GET", "/healthz", None), Some((200, _))));
            assert!(up.is_some(), "{} did not come up", h.name());
        }
        c
    }

    fn hosts(&self) -> Vec<&dyn Host> {
        self.containers.iter().map(|h| h as &dyn Host).collect()
    }
}

#[test]
fn docker_five_containers_job_disconnect_and_remerge() {
    if !engine_answers() {
        ryx_testkit::skip(
            "docker_five_containers_job_disconnect_and_remerge",
            ryx_testkit::Needs::Docker,
            "no Docker engine answers (`docker info` failed)",
        );
        return;
    }
    let bin = match static_binary() {
        Ok(bin) => bin,
        Err(why) => {
            ryx_testkit::skip("docker_five_containers_job_disconnect_and_remerge", ryx_testkit::Needs::Docker, &why);
            return;
        }
    };
    let c = Cluster::new(&bin);
    let hosts = c.hosts();
    let ids = ids(&hosts);
    let formed = wait_until(Duration::from_secs(30), || one_network(&hosts, &ids, 3))
        .unwrap_or_else(|| panic!("containers formed no network: {:?}", graph(&hosts, &ids)));
    println!("docker: one network of {N} in {formed:?} (seeds by container name)");

    let blob = upload_sample(hosts[0], "8MiB", 5);
    let t = Instant::now();
    let job = submit_word_count(hosts[0], &blob);
    let v = wait_job(&hosts, &job, Duration::from_secs(60));
    assert_eq!(v.state, ryx_api::JobState::Done, "{v:?}");
    let reference = reference_digest(EXE, hosts[0], &blob, "d5");
    assert_eq!(
        v.result_digest.as_deref(),
        Some(reference.as_str()),
        "container digest must equal the loopback reference"
    );
    println!("docker: word-count 8 MiB in {:?}, digest {reference} (equals exec)", t.elapsed());

    // Disconnect two containers: the other three notice, stay one network
    // and still compute.
    let (gone, rest) = (&ids[3..], &hosts[..3]);
    let had: Vec<usize> =
        (0..3).filter(|&i| hosts[i].neighbors().is_some_and(|n| n.iter().any(|x| gone.contains(x)))).collect();
    for h in &c.containers[3..] {
        sh(&format!("docker network disconnect {} {}", c.net, h.name));
    }
    let detected = wait_until(Duration::from_secs(10), || {
        had.iter().all(|&i| hosts[i].neighbors().is_some_and(|n| !n.iter().any(|x| gone.contains(x))))
    })
    .unwrap_or_else(|| panic!("disconnection not detected: {:?}", graph(&hosts[..3], &ids[..3])));
    println!("docker: disconnection of 2 containers detected in {detected:?}");
    assert!(wait_until(Duration::from_secs(15), || one_network(rest, &ids[..3], 2)).is_some());
    // (The disconnected pair cannot be asked from here; the merge below
    // counts only links both ends list, so their stale ones do not count.)
    let blob2 = upload_sample(hosts[0], "4MiB", 6);
    let job2 = submit_word_count(hosts[0], &blob2);
    let v2 = wait_job(rest, &job2, Duration::from_secs(60));
    assert_eq!(v2.state, ryx_api::JobState::Done, "the remaining containers must finish the job: {v2:?}");
    assert_eq!(v2.result_digest, Some(reference_digest(EXE, hosts[0], &blob2, "d6")));

    // Reconnect (same addresses): the network re-merges by itself.
    for (i, h) in c.containers.iter().enumerate().skip(3) {
        let ip = format!("{}.{}", c.subnet, 11 + i);
        sh(&format!("docker network connect --ip {ip} {} {}", c.net, h.name));
    }
    let merged = wait_until(Duration::from_secs(60), || one_network(&hosts, &ids, 1))
        .unwrap_or_else(|| panic!("containers did not re-merge: {:?}", graph(&hosts, &ids)));
    println!("docker: re-merged {merged:?} after reconnecting");
    let mut last = String::new();
    let agreed = wait_until(Duration::from_secs(30), || {
        job_agreed(&hosts, &job).map_err(|e| last = e).is_ok()
            && job_agreed(&hosts, &job2).map_err(|e| last = e).is_ok()
    });
    assert!(agreed.is_some(), "after the merge all containers agree on both jobs once: {last}");
}
