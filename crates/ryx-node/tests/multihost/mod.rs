//! Shared parts of the multi-host tests (network namespaces, containers):
//! a host is anything we can send an HTTP request to; the checks (one
//! network, jobs against `ryx-node exec`, graph connectivity) are the same.
#![allow(dead_code)]

use ryx_api::{JobId, JobList, JobState, JobView, Neighbors, Status, SubmitJob, Uploaded};
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet, VecDeque};
use std::process::Command;
use std::time::Duration;

/// One node of a multi-host cluster, reached however the test can.
pub trait Host {
    /// Sends a request; `None` if the node could not be reached.
    fn http(&self, method: &str, path: &str, body: Option<&[u8]>) -> Option<(u16, Vec<u8>)>;
    /// A short name for messages.
    fn name(&self) -> String;

    /// The body of a GET the node answers 200.
    fn get_body(&self, path: &str) -> Option<Vec<u8>> {
        match self.http("GET", path, None)? {
            (200, b) => Some(b),
            _ => None,
        }
    }

    /// The ids of its active neighbours.
    fn neighbors(&self) -> Option<Vec<String>> {
        let n: Neighbors = read(&self.get_body("/v1/neighbors")?)?;
        Some(n.neighbors.into_iter().map(|n| n.node_id.to_string()).collect())
    }

    /// `GET /v1/jobs/{job}`, if the node answers.
    fn job(&self, job: &JobId) -> Option<JobView> {
        read(&self.get_body(&format!("/v1/jobs/{job}"))?)
    }
}

/// `body` read as the `ryx-api` type `T`, if it is one.
fn read<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_json::from_slice(body).ok()
}

/// Runs a command, panicking with its output if it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a shell-like command line (split on spaces), panicking on failure.
pub fn sh(line: &str) -> String {
    let mut parts = line.split_whitespace();
    let prog = parts.next().expect("a command");
    run(Command::new(prog).args(parts))
}

/// Runs a command, ignoring failure (cleanup).
pub fn sh_quiet(line: &str) {
    let mut parts = line.split_whitespace();
    if let Some(prog) = parts.next() {
        let _ = Command::new(prog).args(parts).output();
    }
}

/// Whether `prog` can be run.
pub fn have(prog: &str) -> bool {
    Command::new(prog).arg("-V").output().is_ok() || Command::new(prog).arg("--version").output().is_ok()
}

/// Whether this process runs as root (uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

pub use ryx_testkit::wait_until;

/// Node ids of the hosts, in order (from `/v1/status`).
pub fn ids(hosts: &[&dyn Host]) -> Vec<String> {
    hosts
        .iter()
        .map(|h| {
            h.get_body("/v1/status")
                .and_then(|b| read::<Status>(&b))
                .map(|s| s.node_id.to_string())
                .unwrap_or_else(|| panic!("{}: no status", h.name()))
        })
        .collect()
}

/// The active-link graph among `hosts`: id → neighbour ids, keeping only
/// links both ends list (a cut-off node may still list its old neighbours
/// for a while) and only nodes among `ids`. `None` if a host did not answer.
pub fn graph(hosts: &[&dyn Host], ids: &[String]) -> Option<HashMap<String, Vec<String>>> {
    let set: HashSet<&String> = ids.iter().collect();
    let mut listed: HashMap<String, Vec<String>> = HashMap::new();
    for (h, id) in hosts.iter().zip(ids) {
        let n = h.neighbors()?;
        listed.insert(id.clone(), n.into_iter().filter(|x| set.contains(x)).collect());
    }
    let mutual = |a: &String, b: &String| listed.get(b).is_some_and(|l| l.contains(a));
    Some(listed.iter().map(|(a, ns)| (a.clone(), ns.iter().filter(|b| mutual(a, b)).cloned().collect())).collect())
}

/// Links that only one end lists (among `ids`).
pub fn one_sided(hosts: &[&dyn Host], ids: &[String]) -> Option<usize> {
    let mut n = 0;
    for (h, id) in hosts.iter().zip(ids) {
        for x in h.neighbors()? {
            if let Some(k) = ids.iter().position(|i| *i == x) {
                if !hosts[k].neighbors()?.contains(id) {
                    n += 1;
                }
            }
        }
    }
    Some(n)
}

/// Whether the (undirected) graph over `ids` is connected.
pub fn connected(g: &HashMap<String, Vec<String>>, ids: &[String]) -> bool {
    let Some(first) = ids.first() else { return true };
    let mut adj: HashMap<&String, HashSet<&String>> = HashMap::new();
    for (a, ns) in g {
        for b in ns {
            adj.entry(a).or_default().insert(b);
            adj.entry(b).or_default().insert(a);
        }
    }
    let mut seen: HashSet<&String> = HashSet::from([first]);
    let mut q = VecDeque::from([first]);
    while let Some(x) = q.pop_front() {
        for y in adj.get(x).into_iter().flatten() {
            if seen.insert(y) {
                q.push_back(y);
            }
        }
    }
    ids.iter().all(|i| seen.contains(i))
}

/// Whether the hosts form one connected network with every node linked.
pub fn one_network(hosts: &[&dyn Host], ids: &[String], min_degree: usize) -> bool {
    match graph(hosts, ids) {
        Some(g) => g.values().all(|n| n.len() >= min_degree) && connected(&g, ids),
        None => false,
    }
}

/// Whether any active link joins `a` and `b` (sets of ids).
/// (Counts links either end still lists.)
pub fn cross_links(hosts: &[&dyn Host], ids: &[String], a: &[String], b: &[String]) -> Option<usize> {
    let mut g = HashMap::new();
    for (h, id) in hosts.iter().zip(ids) {
        g.insert(id.clone(), h.neighbors()?);
    }
    Some(
        g.iter()
            .map(|(x, ns)| {
                ns.iter().filter(|y| (a.contains(x) && b.contains(y)) || (b.contains(x) && a.contains(y))).count()
            })
            .sum(),
    )
}

/// Uploads the built-in sample corpus on `h`; returns its hash.
pub fn upload_sample(h: &dyn Host, size: &str, seed: u64) -> String {
    let (st, body) = h
        .http("POST", &format!("/v1/blobs/sample?size={size}&seed={seed}"), None)
        .unwrap_or_else(|| panic!("{}: sample upload unreachable", h.name()));
    assert_eq!(st, 201, "{}: sample upload: {}", h.name(), String::from_utf8_lossy(&body));
    read::<Uploaded>(&body).expect("an upload's answer").hash.to_string()
}

/// Submits a word-count job over `blob` on `h`; returns the job id.
pub fn submit_word_count(h: &dyn Host, blob: &str) -> JobId {
    let req = serde_json::to_vec(&SubmitJob::new("word-count", vec![blob.into()])).expect("json");
    let (st, body) =
        h.http("POST", "/v1/jobs", Some(&req)).unwrap_or_else(|| panic!("{}: job submit unreachable", h.name()));
    assert_eq!(st, 201, "{}: submit: {}", h.name(), String::from_utf8_lossy(&body));
    read::<ryx_api::Submitted>(&body).expect("a submission's answer").job_id
}

/// Waits until some host reports the job final; returns its summary.
pub fn wait_job(hosts: &[&dyn Host], job: &JobId, timeout: Duration) -> JobView {
    let mut last = None;
    let done = wait_until(timeout, || {
        for h in hosts {
            if let Some(v) = h.job(job) {
                let fin = v.is_final();
                last = Some(v);
                if fin {
                    return true;
                }
            }
        }
        false
    });
    assert!(done.is_some(), "job {job} did not finish within {timeout:?}: {last:?}");
    last.expect("an answer")
}

/// The digest `ryx-node exec` (the single-process reference on loopback)
/// gives for word-count over the blob's bytes, fetched from `h`.
pub fn reference_digest(exe: &str, h: &dyn Host, blob: &str, tag: &str) -> String {
    let (st, bytes) = h.http("GET", &format!("/v1/blobs/{blob}"), None).expect("blob download");
    assert_eq!(st, 200, "blob {blob} download from {}", h.name());
    let file = std::env::temp_dir().join(format!("ryx-multihost-{}-{tag}.bin", std::process::id()));
    std::fs::write(&file, &bytes).expect("write blob");
    let out = Command::new(exe).args(["exec", "word-count", "--input"]).arg(&file).output().expect("exec runs");
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "exec failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines().find_map(|l| l.strip_prefix("result_digest: ")).expect("exec prints the digest").trim().to_string()
}

/// Checks that every host agrees on the job exactly once: each that knows
/// it lists it once, all report it done with the same home and digest.
/// Returns the digest.
pub fn job_agreed(hosts: &[&dyn Host], job: &JobId) -> Result<String, String> {
    let mut digests = HashSet::new();
    let mut homes = HashSet::new();
    for h in hosts {
        let list: JobList =
            h.get_body("/v1/jobs").and_then(|b| read(&b)).ok_or_else(|| format!("{}: no job list", h.name()))?;
        let n = list.jobs.iter().filter(|j| j.job_id == *job).count();
        if n > 1 {
            return Err(format!("{} lists job {job} {n} times", h.name()));
        }
        let v = h.job(job).ok_or_else(|| format!("{}: job {job} unknown", h.name()))?;
        if v.state != JobState::Done {
            return Err(format!("{}: job {job} is {}", h.name(), v.state));
        }
        let (total, done) = (v.progress.units_total, v.progress.units_done);
        if total != done {
            return Err(format!("{}: units done {done} of {total}", h.name()));
        }
        digests.insert(v.result_digest.unwrap_or_default());
        homes.insert(v.home.to_string());
    }
    if digests.len() != 1 || homes.len() != 1 {
        return Err(format!("hosts disagree: digests {digests:?}, homes {homes:?}"));
    }
    Ok(digests.into_iter().next().unwrap_or_default())
}

/// Diffuses an info item from `from` and waits until every host in `to`
/// holds it; the time it took.
pub fn info_reaches(from: &dyn Host, to: &[&dyn Host], key: &str, timeout: Duration) -> Option<Duration> {
    let put = ryx_api::PutInfo { key: key.to_string(), value: "x".into(), energy: None };
    let body = serde_json::to_vec(&put).ok()?;
    let (st, _) = from.http("POST", "/v1/info", Some(&body))?;
    if st >= 300 {
        return None;
    }
    wait_until(timeout, || to.iter().all(|h| matches!(h.http("GET", &format!("/v1/info/{key}"), None), Some((200, _)))))
}
