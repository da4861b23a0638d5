//! Carrying out the job engine's requests: fetching blobs over HTTP,
//! running kernels on worker threads (never on the event loop), merging.

use crate::client;
use crate::runtime::{Command, State};
use bytes::Bytes;
use ryx_compute::{JobSpec, Partial};
use ryx_core::blobs::BlobKind;
use ryx_core::jobs::{JobId, JobOutput, WorkToken};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Fault injection for tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Probability that a partial result is deliberately wrong.
    pub corrupt_results: f64,
    /// Each kernel run takes this many times as long (a throttled or
    /// slower machine; 1: as fast as it runs). The worker waits out the
    /// difference, holding its slot.
    pub slow: f64,
}

/// A kernel run for a worker thread.
struct Task {
    token: WorkToken,
    chunk: Input,
}

/// A unit's input: bytes held in the store, or a chunk of the node's own
/// files, read (and checked against its name) on the worker thread.
enum Input {
    Held(Bytes),
    File(std::path::PathBuf, crate::sources::Chunk),
}

impl Input {
    fn bytes(self) -> Result<Bytes, String> {
        match self {
            Input::Held(b) => Ok(b),
            Input::File(path, c) => crate::sources::read_chunk(&path, &c).map(Bytes::from).map_err(|e| e.to_string()),
        }
    }
}

/// Units this process's kernels ran, and the microseconds they took (the
/// health series' `units` and `unit_ms`).
static UNITS_RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static UNIT_MICROS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Units run so far, and their total kernel time in microseconds.
pub fn kernel_stats() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (UNITS_RUN.load(Relaxed), UNIT_MICROS.load(Relaxed))
}

/// Worker threads and the way back to the event loop.
#[derive(Clone)]
pub struct Services {
    loop_tx: mpsc::Sender<Command>,
    pool_tx: std::sync::mpsc::Sender<Task>,
    faults: Faults,
}

impl Services {
    /// Where results are sent back to the event loop.
    pub fn loop_tx(&self) -> mpsc::Sender<Command> {
        self.loop_tx.clone()
    }

    /// Starts `workers` kernel threads that report back through `loop_tx`.
    pub fn start(loop_tx: mpsc::Sender<Command>, workers: usize, faults: Faults) -> Services {
        let (pool_tx, pool_rx) = std::sync::mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(pool_rx));
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            let tx = loop_tx.clone();
            let _ = std::thread::Builder::new().name(format!("ryx-worker-{i}")).spawn(move || {
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64) << 32 ^ std::process::id() as u64;
                loop {
                    let task = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(task) = task else { return };
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let corrupt = ((seed >> 11) as f64 / (1u64 << 53) as f64) < faults.corrupt_results;
                    // A kernel that panics on bytes nobody expected fails
                    // its unit (run again elsewhere, or the job fails);
                    // it must not take the worker thread with it.
                    let started = std::time::Instant::now();
                    let outcome = task.chunk.bytes().and_then(|chunk| {
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            run_kernel(&task.token, &chunk, corrupt)
                        }))
                        .unwrap_or_else(|_| Err("the kernel panicked on this chunk".to_string()))
                    });
                    if faults.slow > 1.0 {
                        std::thread::sleep(started.elapsed().mul_f64(faults.slow - 1.0));
                    }
                    let took = started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
                    UNITS_RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    UNIT_MICROS.fetch_add(took, std::sync::atomic::Ordering::Relaxed);
                    if tx.blocking_send(unit_done(task.token, outcome)).is_err() {
                        return;
                    }
                }
            });
        }
        Services { loop_tx, pool_tx, faults }
    }

    /// Carries out one request of the job engine.
    pub fn dispatch(&self, st: &mut State, out: JobOutput) {
        match out {
            JobOutput::Fetch { hash, size, sources, kind } => {
                if st.store.get(&hash).is_some() {
                    let now = st.clock.now();
                    st.node.fetch_done(now, &hash, true);
                    return;
                }
                if !st.inflight.insert(hash.to_string()) {
                    return;
                }
                // Every other node this one knows of, nearest first: where
                // to look when the listed holders are dead or overloaded
                // (holder lists are short and learned before nodes died).
                let mut others: Vec<(u32, SocketAddr)> = st
                    .node
                    .topology(st.clock.now())
                    .nodes
                    .iter()
                    .filter(|n| n.hops > 0)
                    .filter_map(|n| Some((n.hops, n.http?)))
                    .filter(|(_, a)| !sources.contains(a))
                    .collect();
                others.sort();
                let others: Vec<SocketAddr> = others.into_iter().map(|(_, a)| a).take(MAX_SEARCH).collect();
                let tx = self.loop_tx.clone();
                tokio::spawn(async move {
                    let r = fetch_with_retries(&hash, size, &sources, &others).await;
                    let cmd: Command = Box::new(move |s: &mut State| {
                        s.inflight.remove(hash.as_str());
                        let now = s.clock.now();
                        let ok = match r {
                            Ok(bytes) => match s.node.blob_put(now, &hash, size, kind, false) {
                                Ok(()) => {
                                    s.store.insert(hash.to_string(), bytes);
                                    true
                                }
                                Err(e) => {
                                    tracing::debug!(%hash, "no room for fetched blob: {e}");
                                    false
                                }
                            },
                            Err(e) => {
                                tracing::debug!(%hash, "fetch failed: {e}");
                                false
                            }
                        };
                        s.node.fetch_done(now, &hash, ok);
                    });
                    let _ = tx.send(cmd).await;
                });
            }
            JobOutput::Execute { token } => match st
                .store
                .get(&token.chunk)
                .map(Input::Held)
                .or_else(|| st.source_set.local.locate(&token.chunk).map(|(path, c)| Input::File(path, c)))
            {
                Some(chunk) => {
                    if self.pool_tx.send(Task { token, chunk }).is_err() {
                        tracing::error!("worker pool has stopped");
                    }
                }
                None => {
                    let now = st.clock.now();
                    st.node.work_done(now, &token.job, token.unit, token.replica, Err("chunk not held".into()));
                }
            },
            JobOutput::Combine { token } => {
                let held: Vec<Option<Bytes>> = token.inputs.iter().map(|i| st.store.get(&i.digest)).collect();
                let (tx, corrupt) = (self.loop_tx.clone(), chance(self.faults.corrupt_results));
                tokio::spawn(async move {
                    let outcome = combine(&token, held, corrupt).await;
                    let _ = tx.send(unit_done(token, outcome)).await;
                });
            }
            JobOutput::Decided { job, kind, params, units, unit, digest, holders } => {
                let folder = match st.merges.get(&job) {
                    Some(f) => f.clone(),
                    None => {
                        let (ftx, frx) = mpsc::unbounded_channel();
                        tokio::spawn(fold_task(self.loop_tx.clone(), job.clone(), kind, params, units, frx));
                        st.merges.insert(job.clone(), ftx.clone());
                        st.merge_order.push_back(job.clone());
                        if st.merge_order.len() > 64 {
                            if let Some(old) = st.merge_order.pop_front() {
                                st.merges.remove(&old);
                            }
                        }
                        ftx
                    }
                };
                match st.store.get(&digest) {
                    Some(bytes) => {
                        let _ = folder.send(FoldMsg::Partial { unit, digest, bytes });
                    }
                    None => {
                        tokio::spawn(async move {
                            if let Ok(bytes) = client::fetch_blob(&digest, None, &holders).await {
                                let _ = folder.send(FoldMsg::Partial { unit, digest, bytes });
                            }
                        });
                    }
                }
            }
            JobOutput::Merge { job, kind, params, partials } => {
                let local: Vec<Option<Bytes>> = partials.iter().map(|(d, _)| st.store.get(d)).collect();
                let tx = self.loop_tx.clone();
                st.merge_order.retain(|j| *j != job);
                match st.merges.remove(&job) {
                    Some(folder) => {
                        if let Err(e) = folder.send(FoldMsg::Finish { partials, local }) {
                            // The folder is gone: merge from scratch.
                            if let FoldMsg::Finish { partials, local } = e.0 {
                                tokio::spawn(merge(tx, job, kind, params, partials, local));
                            }
                        }
                    }
                    None => {
                        tokio::spawn(merge(tx, job, kind, params, partials, local));
                    }
                }
            }
            JobOutput::DropBlob { hash } => st.store.remove(&hash),
        }
    }
}

/// Most other nodes asked for a blob its listed holders could not serve.
const MAX_SEARCH: usize = 128;

/// Fetches a blob from its listed holders; failing that, from any other
/// known node that has it (a 404 is answered at once, a dead node refuses
/// the connection at once); failing that, from the holders again after a
/// pause (an overloaded holder may just have timed out). A replication
/// fetch that fails loses a copy for good, and a worker fetch that fails
/// costs a lease, so a few retries are cheap by comparison.
async fn fetch_with_retries(
    hash: &str,
    size: u64,
    sources: &[SocketAddr],
    others: &[SocketAddr],
) -> Result<Bytes, client::FetchError> {
    let mut r = client::fetch_blob(hash, Some(size), sources).await;
    if r.is_err() && !others.is_empty() {
        r = client::fetch_blob(hash, Some(size), others).await;
    }
    for pause_ms in [300, 1000] {
        if r.is_ok() || sources.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
        r = client::fetch_blob(hash, Some(size), sources).await;
    }
    r
}

/// What the event loop does when a unit (or combine step) ran: store its
/// partial and tell the core, or tell it the run failed.
fn unit_done(token: WorkToken, outcome: Result<(String, Bytes), String>) -> Command {
    Box::new(move |s: &mut State| {
        let now = s.clock.now();
        match outcome {
            Ok((digest, bytes)) => {
                let size = bytes.len() as u64;
                match s.node.blob_put(now, &digest, size, BlobKind::Partial, false) {
                    Ok(()) => {
                        s.store.insert(digest.clone(), bytes);
                        s.node.work_done(now, &token.job, token.unit, token.replica, Ok(digest));
                    }
                    Err(e) => s.node.work_done(now, &token.job, token.unit, token.replica, Err(e.to_string())),
                }
            }
            Err(e) => {
                tracing::warn!(job = %token.job, unit = token.unit, "kernel failed: {e}");
                s.node.work_done(now, &token.job, token.unit, token.replica, Err(e));
            }
        }
    })
}

fn run_kernel(token: &WorkToken, chunk: &[u8], corrupt: bool) -> Result<(String, Bytes), String> {
    let spec = JobSpec::new(&token.kind, &token.params).map_err(|e| e.to_string())?;
    let partial = spec.map(chunk).map_err(|e| e.to_string())?;
    Ok(encode_partial(partial.to_bytes(), corrupt))
}

/// True with probability `p` (fault injection only: a counter mixed with
/// the clock, no generator to share).
fn chance(p: f64) -> bool {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if p <= 0.0 {
        return false;
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ NEXT.fetch_add(0x9E37_79B9_7F4A_7C15, std::sync::atomic::Ordering::Relaxed);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    ((x >> 11) as f64 / (1u64 << 53) as f64) < p
}

/// A partial's bytes and digest; `corrupt` (fault injection) changes one
/// digit, a plausible lie of the same shape.
fn encode_partial(mut bytes: Vec<u8>, corrupt: bool) -> (String, Bytes) {
    if corrupt {
        if let Some(d) = bytes.iter_mut().find(|b| b.is_ascii_digit()) {
            *d = if *d == b'9' { b'1' } else { *d + 1 };
        }
    }
    (ryx_compute::digest_hex(&bytes), Bytes::from(bytes))
}

/// Runs a combine step of a merge tree: fetches the inputs not `held`
/// here, checks each against its name, folds them in order (off the event
/// loop) into one partial.
async fn combine(token: &WorkToken, held: Vec<Option<Bytes>>, corrupt: bool) -> Result<(String, Bytes), String> {
    let mut parts = Vec::with_capacity(token.inputs.len());
    for (i, have) in token.inputs.iter().zip(held) {
        match have {
            Some(b) => parts.push(b),
            None => {
                let b = client::fetch_blob(&i.digest, None, &i.holders).await.map_err(|e| e.to_string())?;
                parts.push(b);
            }
        }
    }
    let (kind, params) = (token.kind.clone(), token.params.clone());
    let folded = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let spec = JobSpec::new(&kind, &params).map_err(|e| e.to_string())?;
        let acc = spec.fold_encoded(None, &parts).map_err(|e| e.to_string())?;
        Ok(acc.unwrap_or_else(|| spec.empty_partial()).to_bytes())
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(encode_partial(folded, corrupt))
}

async fn merge(
    tx: mpsc::Sender<Command>,
    job: JobId,
    kind: String,
    params: serde_json::Value,
    partials: Vec<(String, Vec<SocketAddr>)>,
    local: Vec<Option<Bytes>>,
) {
    let mut bytes = Vec::with_capacity(partials.len());
    let mut missing = Vec::new();
    for (i, ((digest, holders), have)) in partials.iter().zip(local).enumerate() {
        match have {
            Some(b) => bytes.push(b),
            None => match client::fetch_blob(digest, None, holders).await {
                Ok(b) => bytes.push(b),
                Err(e) => {
                    tracing::warn!(%job, unit = i, "cannot fetch partial: {e}");
                    missing.push(i as u32);
                }
            },
        }
    }
    let outcome: Result<(String, Bytes), Vec<u32>> = if !missing.is_empty() {
        Err(missing)
    } else {
        merge_off_loop(&job, move || fold(&kind, &params, &bytes)).await
    };
    report_merge(tx, job, outcome).await;
}

/// Runs a merge on a blocking thread (never on the event loop): the result
/// (digest, bytes), or no units to blame when the merge itself failed.
async fn merge_off_loop(
    job: &str,
    merge: impl FnOnce() -> Result<(String, Bytes), String> + Send + 'static,
) -> Result<(String, Bytes), Vec<u32>> {
    match tokio::task::spawn_blocking(merge).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => {
            tracing::error!(%job, "merge failed: {e}");
            Err(Vec::new())
        }
        Err(e) => {
            tracing::error!(%job, "merge task failed: {e}");
            Err(Vec::new())
        }
    }
}

/// Stores a merged result and tells the core, or reports what was missing.
async fn report_merge(tx: mpsc::Sender<Command>, job: JobId, outcome: Result<(String, Bytes), Vec<u32>>) {
    let cmd: Command = Box::new(move |s: &mut State| {
        let now = s.clock.now();
        match outcome {
            Ok((digest, result)) => {
                let size = result.len() as u64;
                match s.node.blob_put(now, &digest, size, BlobKind::Result, false) {
                    Ok(()) => {
                        s.store.insert(digest.clone(), result);
                        s.node.merge_done(now, &job, Ok(ryx_core::jobs::MergedResult::named_by_digest(&digest, size)));
                    }
                    Err(e) => {
                        tracing::error!(%job, "no room for the result: {e}");
                        s.node.merge_done(now, &job, Err(Vec::new()));
                    }
                }
            }
            Err(missing) => s.node.merge_done(now, &job, Err(missing)),
        }
    });
    let _ = tx.send(cmd).await;
}

/// Merges partials in unit order and finishes: the job's canonical result
/// bytes and their digest.
pub fn fold(kind: &str, params: &serde_json::Value, partials: &[Bytes]) -> Result<(String, Bytes), String> {
    let spec = JobSpec::new(kind, params).map_err(|e| e.to_string())?;
    let bytes = spec.fold_encoded(None, partials).and_then(|acc| spec.finish_bytes(acc)).map_err(|e| e.to_string())?;
    Ok((ryx_compute::digest_hex(&bytes), Bytes::from(bytes)))
}

/// Messages to a job's progressive folder.
pub enum FoldMsg {
    /// A decided partial arrived.
    Partial {
        /// Unit index.
        unit: u32,
        /// Its digest.
        digest: String,
        /// Its bytes.
        bytes: Bytes,
    },
    /// Every unit is decided: finish with this list (in unit order).
    Finish {
        /// Decided partials with holders.
        partials: Vec<(String, Vec<SocketAddr>)>,
        /// Bytes held locally, where held.
        local: Vec<Option<Bytes>>,
    },
}

/// Folds a job's decided partials in unit order while the rest still run,
/// so that the final merge only has the tail left.
async fn fold_task(
    tx: mpsc::Sender<Command>,
    job: JobId,
    kind: String,
    params: serde_json::Value,
    units: u32,
    mut rx: mpsc::UnboundedReceiver<FoldMsg>,
) {
    let Ok(spec) = JobSpec::new(&kind, &params) else {
        return;
    };
    // A kind whose merge commutes (word counts) is folded as partials
    // arrive, whatever their order, as `run_local` folds while it maps; the
    // others in unit order. Units of a dataset job finish range by range,
    // one range per holder, so in unit order almost all would wait for the
    // end, leaving the whole fold to one thread after the last unit.
    let any_order = spec.commutative();
    let mut pending: std::collections::BTreeMap<u32, (String, Bytes)> = Default::default();
    let mut folded: std::collections::BTreeMap<u32, String> = Default::default();
    let mut acc: Option<Partial> = None;
    let mut broken = false;
    while let Some(msg) = rx.recv().await {
        match msg {
            FoldMsg::Partial { unit, digest, bytes } => {
                if unit < units && !folded.contains_key(&unit) {
                    pending.insert(unit, (digest, bytes));
                }
                if broken {
                    continue;
                }
                let mut ready = Vec::new();
                if any_order {
                    ready.extend(std::mem::take(&mut pending));
                } else {
                    let next = folded.len() as u32;
                    while let Some(x) = pending.remove(&(next + ready.len() as u32)) {
                        ready.push((next + ready.len() as u32, x));
                    }
                }
                if ready.is_empty() {
                    continue;
                }
                let spec2 = spec.clone();
                let prev = acc.take();
                let r = tokio::task::spawn_blocking(move || {
                    let parts: Vec<&Bytes> = ready.iter().map(|(_, (_, b))| b).collect();
                    spec2.fold_encoded(prev, parts).map_err(|e| e.to_string()).map(|a| (a, ready))
                })
                .await;
                match r {
                    Ok(Ok((a, ready))) => {
                        acc = a;
                        folded.extend(ready.into_iter().map(|(u, (d, _))| (u, d)));
                    }
                    _ => broken = true,
                }
            }
            FoldMsg::Finish { partials, local } => {
                let consistent =
                    !broken && folded.iter().all(|(u, d)| partials.get(*u as usize).is_some_and(|(p, _)| p == d));
                if !consistent {
                    merge(tx, job, kind, params, partials, local).await;
                    return;
                }
                // Gather the tail: pending, local or fetched.
                let mut tail = Vec::new();
                let mut missing = Vec::new();
                for (i, ((digest, holders), have)) in partials.iter().zip(local).enumerate() {
                    if folded.contains_key(&(i as u32)) {
                        continue;
                    }
                    let b = match (pending.remove(&(i as u32)), have) {
                        (Some((d, b)), _) if d == *digest => Some(b),
                        (_, Some(b)) => Some(b),
                        _ => client::fetch_blob(digest, None, holders).await.ok(),
                    };
                    match b {
                        Some(b) => tail.push((digest.clone(), b)),
                        None => missing.push(i as u32),
                    }
                }
                let outcome = if !missing.is_empty() {
                    Err(missing)
                } else {
                    merge_off_loop(&job, move || {
                        let last = fold_more(&spec, acc, &tail)?;
                        let bytes = spec.finish_bytes(Some(last)).map_err(|e| e.to_string())?;
                        Ok((ryx_compute::digest_hex(&bytes), Bytes::from(bytes)))
                    })
                    .await
                };
                report_merge(tx, job, outcome).await;
                return;
            }
        }
    }
}

fn fold_more(spec: &JobSpec, acc: Option<Partial>, parts: &[(String, Bytes)]) -> Result<Partial, String> {
    let acc = spec.fold_encoded(acc, parts.iter().map(|(_, b)| b)).map_err(|e| e.to_string())?;
    Ok(acc.unwrap_or_else(|| spec.empty_partial()))
}
