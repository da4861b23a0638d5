//! Standing stream pipelines over a dataset's growing logs
//! (`POST /v1/streams`): each closed event-time window counted once, where
//! the lines are.
//!
//! A stream is an info item `ryx.stream/{id}` (its spec), known to every
//! node. One node *drives* it: it holds the lease item
//! `ryx.stream/{id}/lease`, rewritten every [`LEASE_EVERY`]. When no new
//! lease has arrived for [`LEASE_STALE`] (its driver died, or is cut off),
//! the nodes take over in the order of their ids among the nodes they know,
//! [`TAKEOVER_STEP`] apart, so the lowest live one takes it first and the
//! others see its lease before their turn comes.
//!
//! The driver closes a window `[s, s + window)` when its wall clock passes
//! `s + window + lateness`. It then runs a `pipeline` job over the dataset
//! restricted to the windows it closes (at most [`BATCH`] at once): the
//! job gathers every holder's snapshot, runs each chunk's stages where the
//! chunk lies and merges along the job's tree (`crate::datasets`). Only a
//! snapshot that every holder answered itself counts (one that left a holder
//! out, or took its sealed chunks from copies without its open tail, would
//! miss lines): otherwise the driver tries again. Each window is then
//! written as its own item `ryx.stream/{id}/w/{start}` — also the windows
//! with no line, so that the next driver knows where to go on — and is
//! never written again by a driver that already holds it. A holder that
//! has not answered for [`HOLDER_GRACE`] after a window closed no longer
//! holds it back: the window closes without its lines, marked
//! `"complete": false` with the holders `missing`. A window's
//! counts are the lines with a timestamp in it that the holders' files held
//! when it closed: equal to `ryx-node exec --kind pipeline` over those
//! lines. A line appended after its window closed is late and counted
//! nowhere.
//!
//! A node drives nothing during its first [`SETTLE`] (it would not yet hold
//! the windows already written, and write them again).

use crate::api_jobs::Api;
use crate::http::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use ryx_api::ErrorCode;
use ryx_core::NodeId;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Keys of stream items start with this.
pub const STREAM_PREFIX: &str = "ryx.stream/";
/// How often a driver rewrites its lease.
pub const LEASE_EVERY: Duration = Duration::from_millis(1000);
/// A lease not renewed for this long is given up on.
pub const LEASE_STALE: Duration = Duration::from_millis(2500);
/// The gap between one node's turn to take over and the next's.
pub const TAKEOVER_STEP: Duration = Duration::from_millis(600);
/// A node drives nothing this long after it starts.
pub const SETTLE: Duration = Duration::from_secs(4);
/// Windows one job closes at most.
pub const BATCH: i64 = 60;
/// Streams a network runs at once at most (a node refuses more).
pub const MAX_STREAMS: usize = 16;
/// How long a window's job may take before the driver gives up on it and
/// tries again.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after a window closes a holder that does not answer may hold
/// it back; then it closes without that holder's lines (marked so).
pub const HOLDER_GRACE: Duration = Duration::from_secs(30);
/// How often the driver looks at its streams.
const TICK: Duration = Duration::from_millis(200);
/// Energy of a stream's spec and windows: they stay on every node.
const ENERGY: f64 = 1000.0;
/// Default allowed lateness, ms.
pub const DEFAULT_LATENESS_MS: i64 = 2000;

/// A stream's spec, as its item holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamSpec {
    /// Stream id (16 hex digits).
    pub id: String,
    /// The dataset whose lines it reads.
    pub dataset: String,
    /// The `pipeline` job's parameters (without `from_ms`/`to_ms`).
    pub params: Value,
    /// Window length, ms.
    pub window_ms: i64,
    /// Slide, ms.
    pub slide_ms: i64,
    /// How long after a window's end its lines may still arrive, ms.
    pub lateness_ms: i64,
    /// The first window's start (aligned to the slide).
    pub since_ms: i64,
    /// When it was created (wall clock, ms).
    pub created_ms: i64,
    /// Stopped streams close no more windows.
    #[serde(default)]
    pub stopped: bool,
}

/// `POST /v1/streams` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStream {
    dataset: String,
    #[serde(default)]
    stages: Value,
    #[serde(default)]
    time_regex: Option<String>,
    #[serde(default)]
    year: Option<i64>,
    #[serde(default)]
    window_ms: Option<i64>,
    #[serde(default)]
    slide_ms: Option<i64>,
    #[serde(default)]
    top: Option<u64>,
    #[serde(default)]
    lateness_ms: Option<i64>,
    #[serde(default)]
    since_ms: Option<i64>,
}

fn bad(code: ErrorCode, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, msg)
}

pub(crate) fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Whether `id` may be a stream id: 16 lowercase hex digits.
fn is_stream_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn spec_key(id: &str) -> String {
    format!("{STREAM_PREFIX}{id}")
}

fn lease_key(id: &str) -> String {
    format!("{STREAM_PREFIX}{id}/lease")
}

fn window_prefix(id: &str) -> String {
    format!("{STREAM_PREFIX}{id}/w/")
}

fn window_key(id: &str, start: i64) -> String {
    format!("{}{start}", window_prefix(id))
}

/// The specs this node holds, by id.
fn specs(node: &ryx_core::Node) -> BTreeMap<String, StreamSpec> {
    node.info_items()
        .filter(|(k, _)| k.starts_with(STREAM_PREFIX) && !k[STREAM_PREFIX.len()..].contains('/'))
        .filter_map(|(_, it)| StreamSpec::deserialize(&*it.value).ok())
        .filter(|s| is_stream_id(&s.id))
        .map(|s| (s.id.clone(), s))
        .collect()
}

/// `POST /v1/streams`: starts a stream over a dataset.
pub async fn create(State(api): State<Api>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body = body.map_err(crate::http::body_error)?;
    let req: NewStream = serde_json::from_slice(&body).map_err(|e| {
        bad(ErrorCode::BadJson, format!("expected {{\"dataset\",\"stages\"?,\"window_ms\"?,\"slide_ms\"?,\"lateness_ms\"?,\"time_regex\"?,\"top\"?}}: {e}"))
    })?;
    crate::datasets::check_name(&req.dataset)?;
    let mut params = json!({ "stages": if req.stages.is_null() { json!([]) } else { req.stages } });
    for (k, v) in [
        ("time_regex", req.time_regex.map(Value::from)),
        ("year", req.year.map(Value::from)),
        ("window_ms", req.window_ms.map(Value::from)),
        ("slide_ms", req.slide_ms.map(Value::from)),
        ("top", req.top.map(Value::from)),
    ] {
        if let Some(v) = v {
            params[k] = v;
        }
    }
    let spec = ryx_compute::JobSpec::new("pipeline", &params).map_err(|e| bad(ErrorCode::BadParams, e.to_string()))?;
    let ryx_compute::Params::Pipeline(p) = &spec.params else {
        return Err(bad(ErrorCode::BadParams, "not a pipeline"));
    };
    let (window_ms, slide_ms) = (p.window_ms(), p.slide_ms());
    let lateness_ms = req.lateness_ms.unwrap_or(DEFAULT_LATENESS_MS);
    if !(0..=3_600_000).contains(&lateness_ms) {
        return Err(bad(ErrorCode::BadParams, "`lateness_ms` must be between 0 and 3600000"));
    }
    let now = wall_ms();
    let since = req.since_ms.unwrap_or(now);
    if !(now - 366 * 86_400_000..=now + 86_400_000).contains(&since) {
        return Err(bad(ErrorCode::BadParams, "`since_ms` must be within the past year"));
    }
    let id = {
        let mut h = blake3::Hasher::new();
        h.update(&now.to_le_bytes());
        h.update(&rand_bytes());
        h.finalize().to_hex()[..16].to_string()
    };
    let s = StreamSpec {
        id: id.clone(),
        dataset: req.dataset,
        params: spec.params.to_json(),
        window_ms,
        slide_ms,
        lateness_ms,
        since_ms: since.div_euclid(slide_ms) * slide_ms,
        created_ms: now,
        stopped: false,
    };
    let value = serde_json::to_value(&s).map_err(|e| bad(ErrorCode::Invalid, e.to_string()))?;
    let key = spec_key(&id);
    api.handle
        .call(move |st| {
            let running = specs(&st.node).values().filter(|s| !s.stopped).count();
            if running >= MAX_STREAMS {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::Invalid,
                    format!("{running} streams run already, at most {MAX_STREAMS}; stop one (DELETE /v1/streams/ID)"),
                ));
            }
            let now = st.clock.now();
            st.node.put_info(now, &key, value, Some(ENERGY)).map_err(|e| bad(ErrorCode::Invalid, e.to_string()))
        })
        .await
        .map_err(ApiError::unavailable)??;
    Ok((StatusCode::CREATED, Json(json!({ "stream_id": id, "stream": s }))).into_response())
}

fn rand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    // The id needs to be unique, not secret: time, address of a local and
    // the process id make it so where the OS generator fails.
    if getrandom_fill(&mut b).is_err() {
        let x = (&b as *const _ as usize as u64) ^ u64::from(std::process::id());
        b[..8].copy_from_slice(&x.to_le_bytes());
    }
    b
}

fn getrandom_fill(b: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(b)
}

/// What `GET /v1/streams/{id}` shows of one stream.
fn summary(spec: &StreamSpec, windows: &BTreeMap<i64, Value>, lease: Option<(String, u64)>) -> Value {
    json!({
        "stream": spec,
        "windows_closed": windows.len(),
        "last_closed_end_ms": windows.keys().next_back().map(|s| s + spec.window_ms),
        "driver": lease.as_ref().map(|l| &l.0),
        "lease_age_ms": lease.map(|l| l.1),
    })
}

/// The windows of stream `id` this node holds, by start.
fn windows_of(node: &ryx_core::Node, id: &str) -> BTreeMap<i64, Value> {
    let prefix = window_prefix(id);
    node.info_items()
        .filter(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(k, it)| Some((k[prefix.len()..].parse::<i64>().ok()?, (*it.value).clone())))
        .collect()
}

fn lease_of(st: &crate::runtime::State, id: &str) -> Option<(String, u64)> {
    let it = st.node.info(&lease_key(id))?;
    let holder = it.value.get("node")?.as_str()?.to_string();
    Some((holder, st.clock.now().since(it.received).as_millis() as u64))
}

/// `GET /v1/streams`: every stream this node knows.
pub async fn list(State(api): State<Api>) -> ApiResult {
    let all = api
        .handle
        .call(|st| {
            specs(&st.node)
                .values()
                .map(|s| summary(s, &windows_of(&st.node, &s.id), lease_of(st, &s.id)))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(json!({ "streams": all })).into_response())
}

/// Query of `GET /v1/streams/{id}`.
#[derive(Deserialize)]
pub struct WindowQuery {
    /// Only windows starting at or after this (ms).
    since_ms: Option<i64>,
    /// At most this many windows, the latest (default 100).
    last: Option<usize>,
}

/// `GET /v1/streams/{id}`: a stream's spec and its closed windows, oldest first.
pub async fn get_one(State(api): State<Api>, Path(id): Path<String>, Query(q): Query<WindowQuery>) -> ApiResult {
    if !is_stream_id(&id) {
        return Err(bad(ErrorCode::BadId, "a stream id is hex digits"));
    }
    let i = id.clone();
    let found = api
        .handle
        .call(move |st| {
            let spec = specs(&st.node).remove(&i)?;
            Some((spec.clone(), windows_of(&st.node, &i), lease_of(st, &i)))
        })
        .await
        .map_err(ApiError::unavailable)?;
    let Some((spec, windows, lease)) = found else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("no stream {id} is known here")));
    };
    let mut v = summary(&spec, &windows, lease);
    let last = q.last.unwrap_or(100).min(10_000);
    let shown: Vec<&Value> = windows.range(q.since_ms.unwrap_or(i64::MIN)..).map(|(_, w)| w).collect();
    let skip = shown.len().saturating_sub(last);
    v["windows"] = Value::Array(shown.into_iter().skip(skip).cloned().collect());
    Ok(Json(v).into_response())
}

/// `DELETE /v1/streams/{id}`: stops a stream (its windows stay readable).
pub async fn stop(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    if !is_stream_id(&id) {
        return Err(bad(ErrorCode::BadId, "a stream id is hex digits"));
    }
    let i = id.clone();
    let done = api
        .handle
        .call(move |st| {
            let mut spec = specs(&st.node).remove(&i)?;
            spec.stopped = true;
            let now = st.clock.now();
            Some(st.node.put_info(now, &spec_key(&i), serde_json::to_value(&spec).ok()?, Some(ENERGY)).is_ok())
        })
        .await
        .map_err(ApiError::unavailable)?;
    match done {
        Some(true) => Ok(Json(json!({ "stream_id": id, "stopped": true })).into_response()),
        Some(false) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, "could not write")),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("no stream {id} is known here"))),
    }
}

// ---- the driver ------------------------------------------------------------------

/// What the driver knows of one stream at one tick.
struct Seen {
    spec: StreamSpec,
    /// The latest window start written (None: none yet).
    last: Option<i64>,
    /// The lease's holder and how long ago it was renewed here.
    lease: Option<(NodeId, Duration)>,
}

/// Counters of the drivers on this node (for `/metrics` and tests).
pub static WINDOWS_CLOSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Window jobs that failed or were given up on, and tried again.
pub static RETRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Drives the streams this node should drive; spawned once with the router.
pub async fn drive(api: Api) {
    let started = Instant::now();
    let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut renewed: HashMap<String, Instant> = HashMap::new();
    let mut iv = tokio::time::interval(TICK);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        iv.tick().await;
        running.retain(|_, t| !t.is_finished());
        if started.elapsed() < SETTLE {
            continue;
        }
        let seen = api
            .handle
            .call(|st| {
                let me = st.node.id();
                let now = st.clock.now();
                let mut ids: Vec<NodeId> = st.node.topology(now).nodes.iter().map(|n| n.node_id).collect();
                ids.sort();
                ids.dedup();
                let rank = ids.iter().position(|&i| i == me).unwrap_or(0);
                let seen: Vec<Seen> = specs(&st.node)
                    .into_values()
                    .filter(|s| !s.stopped)
                    .map(|spec| {
                        let last = windows_of(&st.node, &spec.id).keys().next_back().copied();
                        let lease = st.node.info(&lease_key(&spec.id)).and_then(|it| {
                            let n: NodeId = it.value.get("node")?.as_str()?.parse().ok()?;
                            Some((n, now.since(it.received)))
                        });
                        Seen { spec, last, lease }
                    })
                    .collect();
                (me, rank, seen)
            })
            .await;
        let Ok((me, rank, seen)) = seen else { return };
        for s in seen {
            let id = s.spec.id.clone();
            let mine = match s.lease {
                Some((holder, _)) if holder == me => true,
                Some((_, age)) => age > LEASE_STALE + TAKEOVER_STEP * rank as u32,
                None => true,
            };
            if !mine {
                renewed.remove(&id);
                continue;
            }
            if renewed.get(&id).is_none_or(|t| t.elapsed() >= LEASE_EVERY) {
                renewed.insert(id.clone(), Instant::now());
                let key = lease_key(&id);
                let v = json!({ "node": me.to_string(), "at_ms": wall_ms() });
                let _ = api
                    .handle
                    .call(move |st| {
                        let now = st.clock.now();
                        st.node.put_info(now, &key, v, Some(ENERGY))
                    })
                    .await;
            }
            if running.contains_key(&id) {
                continue;
            }
            let spec = s.spec;
            let next = s.last.map_or(spec.since_ms, |l| l + spec.slide_ms);
            // The last window closed by now: its end + lateness has passed.
            let closable = (wall_ms() - spec.lateness_ms - spec.window_ms).div_euclid(spec.slide_ms) * spec.slide_ms;
            if closable < next {
                continue;
            }
            let to = (closable + spec.slide_ms).min(next + BATCH * spec.slide_ms);
            let api = api.clone();
            running.insert(
                id,
                tokio::spawn(async move {
                    if let Err(e) = close(&api, &spec, next, to).await {
                        RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::info!(stream = %spec.id, from_ms = next, to_ms = to, "window job to try again: {e}");
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                }),
            );
        }
    }
}

/// Closes the windows starting in `[from, to)`: one job, then one item each.
async fn close(api: &Api, spec: &StreamSpec, from: i64, to: i64) -> Result<(), String> {
    let mut params = spec.params.clone();
    params["from_ms"] = json!(from);
    params["to_ms"] = json!(to);
    let g = crate::datasets::gather(&api.handle, &spec.dataset).await.map_err(|e| format!("{e:?}"))?;
    let missing: Vec<String> = g.unreachable.iter().chain(&g.from_copies).map(|n| n.to_string()).collect();
    // A holder gone for good (or restarted under a new identity) must not
    // stop the stream for ever: after HOLDER_GRACE past the windows' close,
    // they close without its lines, and say so.
    let overdue =
        wall_ms() - (to - spec.slide_ms + spec.window_ms + spec.lateness_ms) > HOLDER_GRACE.as_millis() as i64;
    if !missing.is_empty() && !overdue {
        return Err(format!(
            "{} holders did not answer themselves; a window needs every holder's lines",
            missing.len()
        ));
    }
    let snapshot = g.tag.snapshot.clone();
    let (windows, job_id, digest) = if g.chunks.is_empty() {
        (Vec::new(), None, None)
    } else {
        let req = ryx_api::SubmitJob {
            kind: "pipeline".into(),
            inputs: Vec::new(),
            dataset: Some(spec.dataset.clone()),
            params: params.clone(),
            redundancy: Some(1),
            energy: None,
        };
        let job_id = crate::api_jobs::start(
            api,
            req,
            Box::new(move |node, now, kind, params, r, e| {
                node.submit_dataset_job(now, kind, params, g.chunks, r, e, g.tag)
            }),
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
        let (result, digest) = wait_for(api, &job_id).await?;
        let w = result.get("windows").and_then(Value::as_array).cloned().unwrap_or_default();
        (w, Some(job_id), digest)
    };
    let by_start: HashMap<i64, Value> =
        windows.into_iter().filter_map(|w| Some((w.get("start_ms")?.as_i64()?, w))).collect();
    let mut start = from;
    let mut items = Vec::new();
    while start < to {
        let mut w = by_start.get(&start).cloned().unwrap_or_else(|| {
            json!({"start_ms": start, "end_ms": start + spec.window_ms, "start": ryx_compute::pipeline::iso(start),
                   "lines": 0, "keys": 0, "top": []})
        });
        w["job"] = json!(job_id);
        w["snapshot"] = json!(snapshot);
        w["result_digest"] = json!(digest);
        if !missing.is_empty() {
            w["complete"] = json!(false);
            w["missing"] = json!(missing);
        }
        fit(&mut w);
        items.push((window_key(&spec.id, start), w));
        start += spec.slide_ms;
    }
    let n = items.len() as u64;
    api.handle
        .call(move |st| {
            for (k, v) in items {
                // Written once: a driver that holds it already leaves it.
                if st.node.info(&k).is_none() {
                    let now = st.clock.now();
                    let _ = st.node.put_info(now, &k, v, Some(ENERGY));
                }
            }
        })
        .await
        .map_err(|e| e.to_string())?;
    WINDOWS_CLOSED.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Keeps a window's item within an item's size: fewer top keys, and says so.
fn fit(w: &mut Value) {
    let limit = ryx_core::wire::MAX_VALUE_LEN - 256;
    while ryx_core::wire::value_len(w) > limit {
        let Some(top) = w.get_mut("top").and_then(Value::as_array_mut) else { return };
        if top.is_empty() {
            return;
        }
        top.truncate(top.len() / 2);
        w["top_cut"] = json!(true);
    }
}

/// Waits for a job to finish; its result and digest.
async fn wait_for(api: &Api, job_id: &str) -> Result<(Value, Option<String>), String> {
    let deadline = Instant::now() + JOB_TIMEOUT;
    loop {
        let id = job_id.to_string();
        let j = api.handle.call(move |st| st.node.job(&id)).await.map_err(|e| e.to_string())?;
        match j {
            Some(j) if j.state == ryx_core::jobs::JobState::Done => {
                let Some(h) = &j.result_hash else { return Err("done without a result".into()) };
                let r = crate::api_jobs::fetch_result(api, h.as_str(), j.result_size, &j.result_holders)
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                return Ok((r, j.result_digest.clone()));
            }
            Some(j) if j.state != ryx_core::jobs::JobState::Running => {
                return Err(format!("job {job_id} ended {:?}: {}", j.state, j.error.unwrap_or_default()))
            }
            _ => {}
        }
        if Instant::now() > deadline {
            let id = job_id.to_string();
            let _ = api
                .handle
                .call(move |st| {
                    let now = st.clock.now();
                    st.node.cancel_job(now, &id)
                })
                .await;
            return Err(format!("job {job_id} took longer than {JOB_TIMEOUT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
