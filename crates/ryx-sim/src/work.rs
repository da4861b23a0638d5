//! The job driver and the job scenario.
//!
//! `ryx-node`'s `work.rs` carries out the job engine's requests with worker
//! threads and HTTP; here the same requests ([`JobOutput`]) are carried out
//! in virtual time:
//!
//! - blob bytes live in one content-addressed map; each node's store is the
//!   set of names it holds (`DropBlob` removes, a crash empties it);
//! - `Fetch`: the sources are tried in order (a dead one or one that does
//!   not hold the blob costs a round trip, as a refused connection or a 404
//!   does); the transfer queues on the source's upload link (`--bandwidth-mbps`,
//!   first come first served) and arrives one latency later; a source that
//!   died meanwhile fails the fetch;
//! - `Execute`: the real kernel runs on the unit's real bytes (memoised per
//!   unit: kernels are pure), so every digest is real; the time it takes is
//!   the cost model (`--unit-ms` per `--unit-mib`, × `--slow-factor` on a slow
//!   node). The core itself bounds how many run at once (its worker slots).
//!   A liar (`--liars`) returns a plausible wrong partial (one digit changed,
//!   at a place that depends on the liar, so liars do not collude);
//! - `Decided`: the home fetches the partial at once (one round trip to a
//!   live holder) and, for a kind that merges in any order (word count),
//!   folds it on arrival on one fold lane (`--fold-us` per partial), as
//!   the daemon's fold task does;
//! - `Combine` (a step of the job's merge tree): each input not held here
//!   arrives a round trip plus its bytes at the link's rate after the step
//!   starts (partials are not queued behind chunk transfers, as the home's
//!   fetches are not), then one fold per input (`--fold-us` each);
//! - `Merge`: the decided partials are folded with the real kernels in unit
//!   order (the bytes are the daemon's); its virtual time is the last
//!   arrival or the fold lane's end, plus a fold for each partial not
//!   folded yet (fetched at the merge if it was not fetched ahead).

use crate::params::Params;
use crate::sim::{addr_slot, EvKind, Sim, Violation};
use ryx_compute::{corpus, digest_hex, run_local, split_chunks, JobSpec};
use ryx_core::blobs::BlobKind;
use ryx_core::blobs::Hash;
use ryx_core::jobs::{BlobRef, JobOutput, JobState, JobStats, JobSummary, WorkToken};
use ryx_core::rng::Rng;
use ryx_core::Time;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

const MIB: f64 = 1024.0 * 1024.0;

/// A job-driver action that finished at a node.
pub(crate) enum Op {
    /// A fetch ended: from `src` (None: no source could serve it).
    Fetched { hash: String, size: u64, kind: BlobKind, src: Option<usize> },
    /// A kernel ended: the partial's digest (its bytes are in the blob map).
    Executed { token: WorkToken, digest: Result<String, String> },
    /// A merge ended: the result's digest and size, or the units whose
    /// partials no live node could serve.
    Merged { job: ryx_core::jobs::JobId, outcome: Result<(String, u64), Vec<u32>> },
}

/// Counters of the job driver.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkStats {
    /// Blob fetches started (chunk and result replication, work inputs).
    pub fetches: u64,
    /// Fetches that failed (no live holder, or the source died meanwhile).
    pub fetch_failures: u64,
    /// MiB moved by fetches (virtual sizes).
    pub fetched_mib: f64,
    /// Kernel runs started.
    pub executions: u64,
    /// Partial results a liar falsified.
    pub lies: u64,
    /// Merges started.
    pub merges: u64,
}

/// The driver's state: blob bytes, every node's store, the compute model.
pub struct World {
    blobs: HashMap<String, Rc<[u8]>>,
    held: Vec<HashSet<String>>,
    inflight: Vec<HashSet<String>>,
    up_free: Vec<u64>,
    liar: Vec<bool>,
    honest: HashMap<(String, String), Result<String, String>>,
    rng: Rng,
    unit_us_per_byte: f64,
    bytes_per_us: f64,
    slow_factor: f64,
    lie_prob: f64,
    /// Virtual time to fold one partial (`--fold-us`).
    fold_us: u64,
    /// Counters.
    pub stats: WorkStats,
    /// Results merged: (job, time, digest).
    finished: Vec<(ryx_core::jobs::JobId, Time, String)>,
    /// Partials a home fetched (and, for kinds that fold in any order,
    /// folded) as units were decided, as the daemon's fold task does.
    early: HashMap<(usize, ryx_core::jobs::JobId), EarlyFold>,
}

/// One home's progressive merge of a job, in virtual time.
#[derive(Default)]
struct EarlyFold {
    /// When the fold lane is next free (commutative kinds fold as partials
    /// arrive; the others are folded at the merge).
    free_at: u64,
    /// When each partial fetched ahead arrived here, by digest.
    arrived: HashMap<String, u64>,
    /// Whether the job's kind folds in any order.
    commutative: bool,
}

impl World {
    fn new(p: &Params, n: usize, seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let liar = (0..n).map(|_| p.liars > 0.0 && rng.chance(p.liars)).collect();
        let unit_bytes = (p.unit_mib * MIB).max(1.0);
        World {
            blobs: HashMap::new(),
            held: vec![HashSet::new(); n],
            inflight: vec![HashSet::new(); n],
            up_free: vec![0; n],
            liar,
            honest: HashMap::new(),
            rng,
            unit_us_per_byte: p.unit_ms.max(0.0) * 1000.0 / unit_bytes,
            fold_us: p.fold_us,
            bytes_per_us: (p.bandwidth_mbps * 1e6 / 1e6).max(1e-6),
            slow_factor: p.slow_factor.max(1.0),
            lie_prob: p.lie_prob.clamp(0.0, 1.0),
            stats: WorkStats::default(),
            finished: Vec::new(),
            early: HashMap::new(),
        }
    }

    /// Slot `s` crashed: its store and transfers are gone.
    pub(crate) fn crashed(&mut self, s: usize) {
        self.held[s].clear();
        self.inflight[s].clear();
        self.early.retain(|(o, _), _| *o != s);
    }

    fn holds(&self, s: usize, hash: &str) -> bool {
        self.held[s].contains(hash)
    }

    /// The honest partial of `chunk` for a job kind and params: its digest
    /// (bytes stored under it), computed once.
    fn honest_partial(&mut self, kind: &str, params: &serde_json::Value, chunk: &str) -> Result<String, String> {
        let key = (chunk.to_string(), format!("{kind}\u{0}{params}"));
        if let Some(r) = self.honest.get(&key) {
            return r.clone();
        }
        let r = (|| {
            let bytes = self.blobs.get(chunk).ok_or("chunk bytes unknown")?.clone();
            let spec = JobSpec::new(kind, params).map_err(|e| e.to_string())?;
            let partial = spec.map(&bytes).map_err(|e| e.to_string())?.to_bytes();
            let d = digest_hex(&partial);
            self.blobs.insert(d.clone(), partial.into());
            Ok::<String, String>(d)
        })();
        self.honest.insert(key, r.clone());
        r
    }

    /// The honest partial of a combine step (its inputs folded in order),
    /// computed once per step name.
    fn combined_partial(&mut self, token: &WorkToken) -> Result<String, String> {
        let key = (token.chunk.to_string(), format!("{}\u{0}{}", token.kind, token.params));
        if let Some(r) = self.honest.get(&key) {
            return r.clone();
        }
        let r = (|| {
            let parts: Vec<Rc<[u8]>> = token
                .inputs
                .iter()
                .map(|i| self.blobs.get(i.digest.as_str()).cloned().ok_or("input bytes unknown"))
                .collect::<Result<_, _>>()?;
            let spec = JobSpec::new(&token.kind, &token.params).map_err(|e| e.to_string())?;
            let acc = spec.fold_encoded(None, &parts).map_err(|e| e.to_string())?;
            let partial = acc.unwrap_or_else(|| spec.empty_partial()).to_bytes();
            let d = digest_hex(&partial);
            self.blobs.insert(d.clone(), partial.into());
            Ok::<String, String>(d)
        })();
        self.honest.insert(key, r.clone());
        r
    }

    /// A liar's version of an honest partial: one digit changed at a place
    /// that depends on the liar and the unit.
    fn lie(&mut self, honest: &str, s: usize, unit: u32) -> Option<String> {
        let mut bytes = self.blobs.get(honest)?.to_vec();
        let digits: Vec<usize> = bytes.iter().enumerate().filter(|(_, b)| b.is_ascii_digit()).map(|(i, _)| i).collect();
        if digits.is_empty() {
            return None;
        }
        let i = digits[(s.wrapping_mul(7919) + unit as usize) % digits.len()];
        bytes[i] = if bytes[i] == b'9' { b'1' } else { bytes[i] + 1 };
        let d = digest_hex(&bytes);
        self.blobs.insert(d.clone(), bytes.into());
        Some(d)
    }
}

fn merge_bytes(kind: &str, params: &serde_json::Value, parts: &[Rc<[u8]>]) -> Result<Vec<u8>, String> {
    let spec = JobSpec::new(kind, params).map_err(|e| e.to_string())?;
    spec.fold_encoded(None, parts).and_then(|acc| spec.finish_bytes(acc)).map_err(|e| e.to_string())
}

impl Sim {
    fn world(&mut self) -> &mut World {
        self.work.as_mut().expect("job driver present")
    }

    fn job_event(&mut self, s: usize, at: u64, op: Op) {
        let inc = self.inc(s);
        self.push(at, EvKind::Job { slot: s as u32, inc, op: Box::new(op) });
    }

    /// The first live slot among `holders` that holds blob `digest`.
    fn live_holder(&mut self, digest: &str, holders: &[std::net::SocketAddr]) -> Option<usize> {
        let n = self.slots.len();
        holders.iter().filter_map(|a| addr_slot(a, n)).find(|&o| self.is_alive(o) && self.world().holds(o, digest))
    }

    /// Carries out one request of slot `s`'s job engine.
    pub(crate) fn dispatch_job(&mut self, s: usize, out: JobOutput) -> Result<(), Violation> {
        let now = self.now().as_micros();
        let n = self.slots.len();
        match out {
            JobOutput::Fetch { hash, size, sources, kind } => {
                let w = self.world();
                if w.holds(s, &hash) {
                    self.job_event(s, now, Op::Fetched { hash: String::from(hash), size, kind, src: Some(s) });
                    return Ok(());
                }
                if !w.inflight[s].insert(hash.to_string()) {
                    return Ok(()); // one fetch per blob; its end serves every waiter
                }
                w.stats.fetches += 1;
                let mut t = now;
                let mut found = None;
                for a in &sources {
                    let Some(o) = addr_slot(a, n) else { continue };
                    let rtt = 2 * self.network_mut().latency_us(s, o);
                    if self.is_alive(o) && o != s && self.world().holds(o, &hash) {
                        found = Some((o, rtt));
                        break;
                    }
                    // Refused (dead process) or 404: one round trip lost.
                    t += rtt;
                }
                match found {
                    None => self.job_event(s, t, Op::Fetched { hash: String::from(hash), size, kind, src: None }),
                    Some((o, rtt)) => {
                        let w = self.world();
                        let begin = t.max(w.up_free[o]);
                        let end = begin + (size as f64 / w.bytes_per_us).ceil() as u64;
                        w.up_free[o] = end;
                        w.stats.fetched_mib += size as f64 / MIB;
                        self.job_event(
                            s,
                            end + rtt,
                            Op::Fetched { hash: String::from(hash), size, kind, src: Some(o) },
                        );
                    }
                }
            }
            JobOutput::Execute { token } => {
                let slow = self.is_slow(s);
                let w = self.world();
                w.stats.executions += 1;
                let digest = if !w.holds(s, &token.chunk) {
                    Err("chunk not held".to_string())
                } else {
                    match w.honest_partial(&token.kind, &token.params, &token.chunk) {
                        Ok(d) if w.liar[s] && w.rng.chance(w.lie_prob) => {
                            w.stats.lies += 1;
                            Ok(w.lie(&d, s, token.unit).unwrap_or(d))
                        }
                        r => r,
                    }
                };
                let mut us = token.size as f64 * w.unit_us_per_byte;
                if slow {
                    us *= w.slow_factor;
                }
                self.job_event(s, now + us.ceil() as u64, Op::Executed { token, digest });
            }
            JobOutput::Combine { token } => {
                // Each input not held here is fetched from a live holder:
                // a round trip plus its bytes at the link's rate. Partials
                // are small next to chunks, and like the home's fetches of
                // partials (`Decided`, `Merge`) they are not queued behind
                // chunk transfers (concurrent HTTP transfers share a link;
                // they do not wait for one another). Then one fold per
                // input.
                let mut ready = now;
                let mut lost = false;
                for i in &token.inputs {
                    if self.world().holds(s, &i.digest) {
                        continue;
                    }
                    let Some(o) = self.live_holder(&i.digest, &i.holders) else {
                        lost = true;
                        break;
                    };
                    let rtt = 2 * self.network_mut().latency_us(s, o);
                    let w = self.world();
                    let size = w.blobs.get(i.digest.as_str()).map_or(0, |b| b.len() as u64);
                    w.stats.fetched_mib += size as f64 / MIB;
                    ready = ready.max(now + rtt + (size as f64 / w.bytes_per_us).ceil() as u64);
                }
                let slow = self.is_slow(s);
                let w = self.world();
                w.stats.executions += 1;
                let digest = if lost {
                    Err("an input has no live holder".to_string())
                } else {
                    match w.combined_partial(&token) {
                        Ok(d) if w.liar[s] && w.rng.chance(w.lie_prob) => {
                            w.stats.lies += 1;
                            Ok(w.lie(&d, s, token.unit).unwrap_or(d))
                        }
                        r => r,
                    }
                };
                let mut us = (w.fold_us * token.inputs.len() as u64) as f64;
                if slow {
                    us *= w.slow_factor;
                }
                self.job_event(s, ready + us.ceil() as u64, Op::Executed { token, digest });
            }
            JobOutput::Merge { job, kind, params, partials } => {
                let mut parts = Vec::with_capacity(partials.len());
                let mut missing = Vec::new();
                let mut slowest = 0;
                let early = self.world().early.remove(&(s, job.clone())).unwrap_or_default();
                let commutative = JobSpec::new(&kind, &params).is_ok_and(|j| j.commutative());
                // Partials still to fold here (commutative kinds folded the
                // ones fetched ahead already).
                let mut to_fold = 0u64;
                for (i, (digest, holders)) in partials.iter().enumerate() {
                    if let Some(&at) = early.arrived.get(digest.as_str()) {
                        if self.world().blobs.contains_key(digest.as_str()) {
                            slowest = slowest.max(at.saturating_sub(now));
                            to_fold += u64::from(!commutative);
                            parts.push(self.world().blobs[digest.as_str()].clone());
                            continue;
                        }
                    }
                    to_fold += 1;
                    if self.world().holds(s, digest) {
                        parts.push(self.world().blobs[digest.as_str()].clone());
                        continue;
                    }
                    match self.live_holder(digest, holders) {
                        Some(o) => {
                            slowest = slowest.max(2 * self.network_mut().latency_us(s, o));
                            parts.push(self.world().blobs[digest.as_str()].clone());
                        }
                        None => missing.push(i as u32),
                    }
                }
                let w = self.world();
                w.stats.merges += 1;
                let at = (now + slowest).max(early.free_at) + w.fold_us * to_fold.max(1);
                let outcome = if missing.is_empty() {
                    match merge_bytes(&kind, &params, &parts) {
                        Ok(bytes) => {
                            let d = digest_hex(&bytes);
                            let size = bytes.len() as u64;
                            w.blobs.insert(d.clone(), bytes.into());
                            Ok((d, size))
                        }
                        Err(_) => Err(Vec::new()),
                    }
                } else {
                    Err(missing)
                };
                self.job_event(s, at, Op::Merged { job, outcome });
            }
            JobOutput::Decided { job, kind, params, digest, holders, .. } => {
                // Fetched at once from the first live holder, and folded on
                // arrival if the kind folds in any order.
                let arrive = if self.world().holds(s, &digest) {
                    Some(now)
                } else {
                    let src = self.live_holder(&digest, &holders);
                    src.map(|o| now + 2 * self.network_mut().latency_us(s, o))
                };
                if let Some(at) = arrive {
                    let fold_us = self.world().fold_us;
                    let lane = self.world().early.entry((s, job)).or_insert_with(|| EarlyFold {
                        commutative: JobSpec::new(&kind, &params).is_ok_and(|j| j.commutative()),
                        ..EarlyFold::default()
                    });
                    if lane.commutative {
                        lane.free_at = lane.free_at.max(at) + fold_us;
                    }
                    lane.arrived.insert(digest, at);
                }
            }
            JobOutput::DropBlob { hash } => {
                self.world().held[s].remove(hash.as_str());
            }
        }
        Ok(())
    }

    /// A job-driver action of slot `s` finished.
    pub(crate) fn job_done(&mut self, s: usize, op: Op) -> Result<(), Violation> {
        let now = self.now();
        match op {
            Op::Fetched { hash, size, kind, src } => {
                let w = self.world();
                w.inflight[s].remove(&hash);
                let mut ok = src.is_some_and(|o| o == s || w.holds(o, &hash));
                if let Some(o) = src.filter(|&o| o != s) {
                    ok &= self.is_alive(o);
                }
                if ok && !self.world().holds(s, &hash) {
                    let put = self.node_mut(s).map(|node| node.blob_put(now, &hash, size, kind, false));
                    ok = matches!(put, Some(Ok(())));
                    if ok {
                        self.world().held[s].insert(hash.clone());
                    }
                }
                if !ok {
                    self.world().stats.fetch_failures += 1;
                }
                if let Some(node) = self.node_mut(s) {
                    node.fetch_done(now, &hash, ok);
                }
            }
            Op::Executed { token, digest } => {
                let digest = match digest {
                    Ok(d) => {
                        let size = self.world().blobs.get(d.as_str()).map_or(0, |b| b.len() as u64);
                        let put = self.node_mut(s).map(|node| node.blob_put(now, &d, size, BlobKind::Partial, false));
                        match put {
                            Some(Ok(())) => {
                                self.world().held[s].insert(d.clone());
                                Ok(d)
                            }
                            Some(Err(e)) => Err(e.to_string()),
                            None => Err("node gone".into()),
                        }
                    }
                    Err(e) => Err(e),
                };
                if let Some(node) = self.node_mut(s) {
                    node.work_done(now, &token.job, token.unit, token.replica, digest);
                }
            }
            Op::Merged { job, outcome } => {
                let outcome = match outcome {
                    Ok((d, size)) => {
                        let put = self.node_mut(s).map(|node| node.blob_put(now, &d, size, BlobKind::Result, false));
                        if matches!(put, Some(Ok(()))) {
                            self.world().held[s].insert(d.clone());
                            Ok(ryx_core::jobs::MergedResult::named_by_digest(&d, size))
                        } else {
                            Err(Vec::new())
                        }
                    }
                    Err(m) => Err(m),
                };
                let mut done = None;
                if let Some(node) = self.node_mut(s) {
                    node.merge_done(now, &job, outcome);
                    // Done here, unless the merge was an heir's check or a
                    // result still awaiting an heir's confirmation.
                    done = node
                        .job(&job)
                        .filter(|j| node.job_engine().is_home(&job) && j.state == JobState::Done)
                        .and_then(|j| j.result_digest);
                }
                if let Some(d) = done {
                    self.world().finished.push((job.clone(), now, d));
                }
            }
        }
        self.after_handle(s)
    }

    /// The summary of `job` held by its current home (a live node homing it).
    /// Units decided at the job's home right now.
    fn home_progress(&self, job: &str) -> Option<f64> {
        self.live_slots()
            .into_iter()
            .find_map(|s| self.node(s)?.job_engine().home_progress(job))
            .map(|(d, _)| f64::from(d))
    }

    fn home_summary(&self, job: &str) -> Option<(usize, JobSummary)> {
        self.live_slots().into_iter().find_map(|s| {
            let n = self.node(s)?;
            if n.job_engine().is_home(job) {
                n.job(job).map(|j| (s, j))
            } else {
                None
            }
        })
    }
}

/// The job scenario's figures. Times are milliseconds of virtual time;
/// sizes are the virtual sizes the units stand for (`--unit-mib`).
#[derive(Clone, Debug, Serialize)]
pub struct JobRunReport {
    /// Kernel.
    pub kind: String,
    /// Units in the job.
    pub units: usize,
    /// Replicas per unit.
    pub redundancy: u8,
    /// Real bytes the kernels ran on (the digest is over these).
    pub real_input_bytes: usize,
    /// Input size the units stand for, in MiB.
    pub input_mib: f64,
    /// Time the upload took to get three verified copies of every chunk
    /// (before the job was submitted; None: not within 30 s, or three
    /// times what one copy takes on the uploader's link if that is longer).
    pub upload_ms: Option<f64>,
    /// Nodes that lie (return wrong partials).
    pub liars: usize,
    /// Slow nodes (compute `--slow-factor` times slower).
    pub slow_nodes: usize,
    /// Nodes killed mid-job.
    pub killed: usize,
    /// Fraction of units decided when the kill struck (None: no kill).
    pub killed_at_progress: Option<f64>,
    /// Whether the job's home was among the killed.
    pub home_killed: bool,
    /// Copies of each input chunk when the kill struck: before it (min,
    /// median, max over chunks), and how many chunks were left with no
    /// copy on a survivor.
    pub copies_at_kill: Option<CopyCounts>,
    /// Whether the job reached `done` within the bound.
    pub completed: bool,
    /// Final state at the home (running if it never finished).
    pub state: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Time from submission until the result was merged at the home.
    pub job_ms: Option<f64>,
    /// Input MiB per second of virtual time.
    pub throughput_mib_per_s: Option<f64>,
    /// Input MiB × redundancy per second: the computing done for the job.
    pub replica_throughput_mib_per_s: Option<f64>,
    /// The same measured on one node alone (redundancy 1, the same units per
    /// node), from a separate single-node run.
    pub single_node_mib_per_s: Option<f64>,
    /// replica throughput / (nodes at submission × single-node throughput).
    pub scaling_efficiency: Option<f64>,
    /// Digest of the job's result.
    pub result_digest: Option<String>,
    /// Digest of the single-process reference (`ryx_compute::run_local`).
    pub reference_digest: String,
    /// Whether they are equal.
    pub digest_matches: bool,
    /// Fraction of live nodes whose summary shows the job done with the
    /// reference digest, when every live node did or `--settle-ms` after
    /// the job finished (or the halves healed), whichever came first.
    pub summary_coverage: f64,
    /// Time from the result (or the heal, with `--split-at`) until every
    /// live node held the final summary; None if some never did.
    pub summary_reach_ms: Option<f64>,
    /// With `--split-at`: what happened across the partition.
    pub split: Option<SplitReport>,
    /// The job's own counters (results, reissued, extra replicas,
    /// disagreements, workers, takeovers).
    pub stats: Option<JobStats>,
    /// The driver's counters.
    pub driver: WorkStats,
}

/// Verified copies of the input chunks across the live nodes.
#[derive(Clone, Debug, Serialize)]
pub struct CopyCounts {
    /// Fewest copies of any chunk before the kill.
    pub min: usize,
    /// Median over chunks before the kill.
    pub median: usize,
    /// Most copies of any chunk before the kill.
    pub max: usize,
    /// Fewest copies of any chunk on the survivors.
    pub min_after: usize,
    /// Chunks with no copy left on any survivor (units still undecided
    /// among them cannot run).
    pub lost: usize,
}

/// A job split across a partition (`--split-at`).
#[derive(Clone, Debug, Serialize)]
pub struct SplitReport {
    /// Fraction of units decided when the network split.
    pub at_progress: f64,
    /// Live nodes on each side.
    pub sides: [usize; 2],
    /// Side the job's home was on at the split.
    pub home_side: u8,
    /// Live nodes homing the job just before the heal (2: an heir took over
    /// on the far side).
    pub homes_before_heal: usize,
    /// Live nodes homing the job at the end (must be 1).
    pub homes_after: usize,
    /// Times a home stepped down for another home of the job.
    pub stepped_down: u64,
    /// Time from the heal until one home remained and every live node held
    /// its final summary.
    pub agreed_ms: Option<f64>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Runs the job scenario on a joined, settled network.
pub(crate) fn job_phase(sim: &mut Sim) -> Result<JobRunReport, Violation> {
    let p = sim.p.clone();
    let bad = |sim: &Sim, m: String| sim.violation(None, m);
    let params: serde_json::Value =
        serde_json::from_str(&p.job_params).map_err(|e| bad(sim, format!("--job-params is not JSON: {e}")))?;
    let spec = JobSpec::new(&p.kind, &params).map_err(|e| bad(sim, format!("cannot run the job: {e}")))?;
    let units_wanted = p.job_units();
    let unit_bytes = p.unit_kib.max(1) * 1024;
    let input = corpus::generate(units_wanted * unit_bytes, p.seed);
    let reference = run_local(&spec, &[&input], unit_bytes, 2).map_err(|e| bad(sim, format!("reference run: {e}")))?;
    let n = p.nodes;
    let mut world = World::new(&p, n, sim.job_seed());
    // Byzantine nodes lie about results too (each its own way: no collusion).
    if let Some(b) = sim.byz.as_ref() {
        for (s, byz) in b.is_byz.iter().enumerate() {
            world.liar[s] |= *byz;
        }
    }
    let mut refs = Vec::new();
    for r in split_chunks(&input, unit_bytes) {
        let bytes = &input[r];
        let hash = digest_hex(bytes);
        let vsize = ((bytes.len() as f64 / unit_bytes as f64) * p.unit_mib * MIB).ceil().max(1.0) as u64;
        world.blobs.insert(hash.clone(), Rc::from(bytes));
        refs.push(BlobRef { hash: Hash::from(hash), size: vsize });
    }
    let liars = world.liar.iter().filter(|l| **l).count();
    let slow_nodes = (0..n).filter(|&s| sim.is_slow(s)).count();
    let input_mib: f64 = refs.iter().map(|r| r.size as f64).sum::<f64>() / MIB;
    sim.work = Some(world);

    // Upload at one node (as `PUT /v1/blobs` does), then submit there.
    // The job's home is honest: a client that submits to an attacker gets
    // what the attacker says, whatever the protocol does.
    let live: Vec<usize> =
        sim.live_slots().into_iter().filter(|s| !sim.byz.as_ref().is_some_and(|b| b.is_byz[*s])).collect();
    let home = live[sim.ctl.below(live.len())];
    let (job, upload_ms) = if p.dataset {
        (place_and_submit(sim, home, &refs, &params)?, None)
    } else {
        upload_and_submit(sim, home, &refs, &params)?
    };
    sim.after_handle(home)?;
    let live_at_submit = sim.live;
    let t0 = sim.now();
    let deadline = t0.plus(Duration::from_millis(p.max_ms));
    let total = refs.len() as f64;
    let every = Some(Duration::from_millis(10));
    let finished = |s: &Sim| {
        s.work.as_ref().is_some_and(|w| w.finished.iter().any(|f| f.0 == job))
            || s.home_summary(&job).is_some_and(|(_, j)| j.state.is_final())
    };

    // Kill mid-job.
    let (mut killed, mut killed_at, mut home_killed, mut copies_at_kill) = (0, None, false, None);
    let frac = p.kill_fraction();
    if frac > 0.0 {
        let at = p.kill_at.clamp(0.0, 1.0);
        sim.run_until(deadline, every, |s| finished(s) || s.home_progress(&job).is_some_and(|d| d >= at * total))?;
        if !finished(sim) {
            killed_at = Some(sim.home_progress(&job).map_or(0.0, |d| d / total.max(1.0)));
            let count = ((sim.live as f64) * frac).round() as usize;
            let mut victims = sim.live_slots();
            sim.ctl.shuffle(&mut victims);
            victims.truncate(count.min(sim.live.saturating_sub(1)));
            victims.sort_unstable();
            home_killed = sim.home_summary(&job).is_some_and(|(h, _)| victims.contains(&h));
            killed = victims.len();
            copies_at_kill = Some(copy_counts(sim, &refs, &victims));
            sim.crash_many(&victims);
        }
    }
    // Split the network in two mid-job, then heal it.
    let mut split = None;
    if let Some(at) = p.split_at {
        sim.run_until(deadline, every, |s| finished(s) || s.home_progress(&job).is_some_and(|d| d >= at * total))?;
        let at_progress = sim.home_progress(&job).map_or(1.0, |d| d / total.max(1.0));
        let home_now = sim.home_summary(&job).map(|(h, _)| h);
        let mut order = sim.live_slots();
        sim.ctl.shuffle(&mut order);
        let mut seg = vec![0u8; n];
        for &s in &order[order.len() / 2..] {
            seg[s] = 1;
        }
        let home_side = home_now.map_or(0, |h| seg[h]);
        let sides = [order.iter().filter(|&&s| seg[s] == 0).count(), order.iter().filter(|&&s| seg[s] == 1).count()];
        sim.set_segments(&seg);
        sim.run_for(Duration::from_millis(p.partition_ms))?;
        let homes_before_heal = sim.live_slots().iter().filter(|&&s| homes(sim, s, &job)).count();
        sim.set_segments(&vec![0u8; n]);
        split = Some(SplitReport {
            at_progress,
            sides,
            home_side,
            homes_before_heal,
            homes_after: 0,
            stepped_down: 0,
            agreed_ms: None,
        });
    }
    sim.run_until(deadline, every, |s| finished(s))?;
    // When the first home finished: at its merge, or (a home that took
    // over, done once an heir confirmed) as its summary says.
    let done_at = sim.work.as_ref().and_then(|w| w.finished.iter().find(|f| f.0 == job).map(|f| f.1)).or_else(|| {
        let j = sim.home_summary(&job).map(|(_, j)| j).filter(|j| j.state == JobState::Done)?;
        j.stats.elapsed_ms.map(|ms| t0.plus(Duration::from_millis(ms)))
    });
    // Let the summary diffuse (and, after a split, the homes settle), then
    // see who knows the result.
    let knows = |s: &Sim, slot: usize| {
        s.node(slot)
            .and_then(|n| n.job(&job))
            .is_some_and(|j| j.state == JobState::Done && j.result_digest.as_deref() == Some(&reference.result_digest))
    };
    let agreed = |s: &Sim| {
        let live = s.live_slots();
        live.iter().all(|&x| knows(s, x))
            && live.iter().filter(|&&x| homes(s, x, &job)).count() <= 1
            && live
                .iter()
                .filter_map(|&x| s.node(x).and_then(|n| n.job(&job)).map(|j| j.home))
                .collect::<BTreeSet<_>>()
                .len()
                <= 1
    };
    let from = sim.now();
    let settle = from.plus(Duration::from_millis(p.settle_ms.max(2_000)));
    let reached = sim.run_until(settle, every, |s| agreed(s))?;
    let summary_reach_ms = reached.map(|t| ms(t.since(from).as_micros() as u64));
    if let Some(sp) = split.as_mut() {
        sp.homes_after = sim.live_slots().iter().filter(|&&s| homes(sim, s, &job)).count();
        sp.stepped_down =
            sim.live_slots().iter().filter_map(|&s| sim.node(s)).map(|n| n.job_engine().stepped_down()).sum();
        sp.agreed_ms = summary_reach_ms;
    }
    let final_summary = sim.home_summary(&job).map(|(_, j)| j);
    let live = sim.live_slots();
    let knowing = live.iter().filter(|&&s| knows(sim, s)).count();
    let summary = final_summary.or_else(|| live.iter().find_map(|&s| sim.node(s).and_then(|n| n.job(&job))));
    let state = summary.as_ref().map_or(JobState::Running, |j| j.state);
    let result_digest = summary.as_ref().and_then(|j| j.result_digest.clone());
    // No honest node may believe a wrong result, whoever wrote it.
    for &x in &live {
        if sim.byz.as_ref().is_some_and(|b| b.is_byz[x]) {
            continue;
        }
        let believed = sim.node(x).and_then(|n| n.job(&job)).filter(|j| j.state == JobState::Done);
        if let Some(j) = believed.filter(|j| j.result_digest.as_deref() != Some(&reference.result_digest)) {
            return Err(sim.violation(
                Some(x),
                format!(
                    "node believes job {job} done with digest {} (written by {}) but the reference is {}",
                    j.result_digest.unwrap_or_default(),
                    j.home,
                    reference.result_digest
                ),
            ));
        }
    }
    if state == JobState::Done && result_digest.as_deref() != Some(&reference.result_digest) {
        return Err(sim.violation(
            None,
            format!(
                "job {job} finished with digest {} but the single-process reference is {}",
                result_digest.unwrap_or_default(),
                reference.result_digest
            ),
        ));
    }
    let job_us = done_at.map(|t| t.since(t0).as_micros() as u64);
    let secs = job_us.map(|us| us as f64 / 1e6);
    let throughput = secs.map(|s| input_mib / s.max(1e-9));
    let replica = throughput.map(|t| t * p.redundancy as f64);
    let single = if p.no_baseline || state != JobState::Done { None } else { single_node_throughput(&p)? };
    Ok(JobRunReport {
        kind: p.kind.clone(),
        units: refs.len(),
        redundancy: p.redundancy,
        real_input_bytes: input.len(),
        input_mib,
        upload_ms,
        liars,
        slow_nodes,
        killed,
        killed_at_progress: killed_at,
        home_killed,
        copies_at_kill,
        completed: state == JobState::Done,
        state: format!("{state:?}").to_lowercase(),
        error: summary.as_ref().and_then(|j| j.error.clone()),
        job_ms: job_us.map(ms),
        throughput_mib_per_s: throughput,
        replica_throughput_mib_per_s: replica,
        single_node_mib_per_s: single,
        scaling_efficiency: match (replica, single) {
            (Some(r), Some(b)) if b > 0.0 => Some(r / (live_at_submit as f64 * b)),
            _ => None,
        },
        digest_matches: result_digest.as_deref() == Some(reference.result_digest.as_str()),
        result_digest,
        reference_digest: reference.result_digest,
        summary_coverage: knowing as f64 / live.len().max(1) as f64,
        summary_reach_ms,
        split,
        stats: summary.map(|j| j.stats),
        driver: sim.work.as_ref().map(|w| w.stats.clone()).unwrap_or_default(),
    })
}

/// Uploads `refs` at `home` (as `PUT /v1/blobs?copies=N` does) and submits
/// the job there: the job id and how long the copies took.
fn upload_and_submit(
    sim: &mut Sim,
    home: usize,
    refs: &[BlobRef],
    params: &serde_json::Value,
) -> Result<(String, Option<f64>), Violation> {
    let p = sim.p.clone();
    let now = sim.now();
    for r in refs {
        let put = sim.node_mut(home).map(|node| node.blob_put(now, &r.hash, r.size, BlobKind::Chunk, true));
        match put {
            Some(Ok(())) => {
                sim.world().held[home].insert(r.hash.to_string());
            }
            Some(Err(e)) => return Err(sim.violation(Some(home), format!("upload refused: {e}"))),
            None => return Err(sim.violation(Some(home), "home is not running".into())),
        }
    }
    // As `PUT /v1/blobs?copies=N` does (3 by default): replicate, and
    // answer once every chunk has N verified copies (topping up thin ones
    // with more energy after a second without a new copy), or at the
    // deadline below.
    let want = p.copies.max(1).min(sim.live);
    if let Some(node) = sim.node_mut(home) {
        node.replicate_upload(now, refs.to_vec(), None);
    }
    sim.after_handle(home)?;
    let up0 = sim.now();
    // 30 s, as the API's default, or longer when the uploader's link
    // needs longer to send one copy of everything.
    let one_copy_us = refs.iter().map(|r| r.size as f64).sum::<f64>() / (p.bandwidth_mbps.max(1e-6) * 1e6 / 1e6);
    let up_deadline = up0.plus(Duration::from_secs(30).max(Duration::from_micros((3.0 * one_copy_us) as u64)));
    let mut boost = 0.0;
    let copies_sum = |s: &Sim| s.node(home).map_or(0, |n| refs.iter().map(|r| n.blob_copies(&r.hash)).sum::<usize>());
    let mut last_sum = copies_sum(sim);
    let upload_ms = loop {
        let step = sim.now().plus(Duration::from_secs(1)).min(up_deadline);
        let copied = |s: &mut Sim| s.node(home).is_some_and(|n| refs.iter().all(|r| n.blob_copies(&r.hash) >= want));
        if let Some(t) = sim.run_until(step, Some(Duration::from_millis(10)), copied)? {
            break Some(ms(t.since(up0).as_micros() as u64));
        }
        if sim.now() >= up_deadline {
            break None;
        }
        // Top up only when replication stalled (copies are still arriving
        // on a busy link otherwise, and new offers would only add to it).
        let sum = copies_sum(sim);
        if sum > last_sum {
            last_sum = sum;
            continue;
        }
        boost += 1.0;
        let now = sim.now();
        let thin: Vec<BlobRef> = match sim.node(home) {
            Some(n) => refs.iter().filter(|r| n.blob_copies(&r.hash) < want).cloned().collect(),
            None => Vec::new(),
        };
        if let Some(node) = sim.node_mut(home) {
            let e = node.upload_energy(refs.len()) + boost;
            node.top_up_upload(now, thin, e);
        }
        sim.after_handle(home)?;
    };
    let now = sim.now();
    let submitted =
        sim.node_mut(home).map(|node| node.submit_job(now, &p.kind, params.clone(), refs.to_vec(), p.redundancy, None));
    let job = match submitted {
        Some(Ok(id)) => id,
        Some(Err(e)) => return Err(sim.violation(Some(home), format!("submission refused: {e}"))),
        None => return Err(sim.violation(Some(home), "home is not running".into())),
    };
    Ok((job, upload_ms))
}

/// Spreads `refs` over the live nodes' own files, in node-id order (so the
/// dataset's canonical order is the input's), as `--source` does, and
/// submits a job over that dataset at `home`, which holds only its share.
fn place_and_submit(
    sim: &mut Sim,
    home: usize,
    refs: &[BlobRef],
    params: &serde_json::Value,
) -> Result<String, Violation> {
    let p = sim.p.clone();
    let mut owners: Vec<(ryx_core::NodeId, usize)> =
        sim.live_slots().into_iter().filter_map(|s| Some((sim.node(s)?.id(), s))).collect();
    owners.sort();
    let per = refs.len().div_ceil(owners.len().max(1)).max(1);
    let mut chunks = Vec::with_capacity(refs.len());
    let mut owned: Vec<(usize, BlobRef)> = Vec::with_capacity(refs.len());
    for (i, r) in refs.iter().enumerate() {
        let Some(&(id, s)) = owners.get(i / per) else { break };
        let Some(node) = sim.node_mut(s) else { continue };
        node.set_local_chunks(vec![(r.hash.clone(), r.size)], Vec::new());
        let (udp, http) = (node.addr(), node.http_addr());
        sim.world().held[s].insert(r.hash.to_string());
        chunks.push((r.clone(), ryx_core::wire::PeerInfo { id, addr: udp }, http));
        owned.push((s, r.clone()));
    }
    // As `--source-copies` does: other nodes keep copies of each chunk
    // (custody, `--copies` in all), made before the job starts, as an
    // upload's are.
    let k = p.copies.max(1);
    if k > 1 {
        let now = sim.now();
        for (s, r) in &owned {
            if let Some(node) = sim.node_mut(*s) {
                node.keep(now, vec![r.clone()], k, 0);
            }
            sim.after_handle(*s)?;
        }
        let kept = |s: &mut Sim| owned.iter().all(|(o, r)| s.node(*o).is_some_and(|n| n.kept_copies(&r.hash) >= k));
        let deadline = sim.now().plus(std::time::Duration::from_secs(60));
        sim.run_until(deadline, Some(std::time::Duration::from_millis(10)), kept)?;
    }
    let now = sim.now();
    let tag = ryx_core::jobs::DatasetTag {
        name: "sim".into(),
        snapshot: String::new(),
        nodes: owners.len() as u32,
        bytes: refs.iter().map(|r| r.size).sum(),
    };
    let submitted = sim
        .node_mut(home)
        .map(|node| node.submit_dataset_job(now, &p.kind, params.clone(), chunks, p.redundancy, None, tag));
    match submitted {
        Some(Ok(id)) => Ok(id),
        Some(Err(e)) => Err(sim.violation(Some(home), format!("submission refused: {e}"))),
        None => Err(sim.violation(Some(home), "home is not running".into())),
    }
}

/// Copies of each chunk in `refs` on live slots, before and after `victims` die.
fn copy_counts(sim: &Sim, refs: &[BlobRef], victims: &[usize]) -> CopyCounts {
    let live = sim.live_slots();
    let w = sim.work.as_ref();
    let count = |r: &BlobRef, skip: bool| {
        live.iter()
            .filter(|s| !(skip && victims.binary_search(s).is_ok()))
            .filter(|&&s| w.is_some_and(|w| w.holds(s, &r.hash)))
            .count()
    };
    let mut before: Vec<usize> = refs.iter().map(|r| count(r, false)).collect();
    let after: Vec<usize> = refs.iter().map(|r| count(r, true)).collect();
    before.sort_unstable();
    CopyCounts {
        min: before.first().copied().unwrap_or(0),
        median: before.get(before.len() / 2).copied().unwrap_or(0),
        max: before.last().copied().unwrap_or(0),
        min_after: after.iter().copied().min().unwrap_or(0),
        lost: after.iter().filter(|&&c| c == 0).count(),
    }
}

/// Whether live slot `s` is a home of `job`.
fn homes(sim: &Sim, s: usize, job: &str) -> bool {
    sim.node(s).is_some_and(|n| n.job_engine().is_home(job))
}

/// Throughput of one node alone with this run's per-node share of units, at
/// redundancy 1, no faults: the denominator of scaling efficiency.
fn single_node_throughput(p: &Params) -> Result<Option<f64>, Violation> {
    let per_node = p.job_units().div_ceil(p.nodes.max(1)).max(10);
    let q = Params {
        nodes: 1,
        units: per_node,
        redundancy: 1,
        kill: None,
        split_at: None,
        liars: 0.0,
        slow: 0.0,
        loss: 0.0,
        dup: 0.0,
        idle_ms: 0,
        no_baseline: true,
        json: false,
        progress: false,
        ..p.clone()
    };
    match crate::scenario::run(&q) {
        Ok(r) => Ok(r.job.and_then(|j| j.throughput_mib_per_s)),
        Err(f) => Err(Violation {
            message: format!("single-node reference run failed ({}): {}", f.command, f.violation.message),
            ..f.violation
        }),
    }
}
