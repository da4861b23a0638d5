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
const TICK: Duration = Duration::from_millis(100);
/// Energy of a stream's spec and windows: they stay on every node.
const ENERGY: f64 = 1000.0;
/// Default allowed lateness, ms.
pub const DEFAULT_LATENESS_MS: i64 = 1000;
/// A stream's shortest slide (and window), ms: each window is one job and
/// one item on every node.
pub const MIN_SLIDE_MS: i64 = 1000;
/// Windows a stream may start behind (`since_ms`) at most.
pub const MAX_BACKLOG: i64 = 10_000;
/// How often the driver writes the stream's spec again, so that a full
/// item table never evicts it before the windows it holds.
const SPEC_REFRESH: Duration = Duration::from_secs(60);
/// Longest wait between two tries of a window job that keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

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

/// A 400 unless `id` has the shape of a stream id.
fn check_id(id: &str) -> Result<(), ApiError> {
    if is_stream_id(id) {
        Ok(())
    } else {
        Err(bad(ErrorCode::BadId, "a stream id is hex digits"))
    }
}

/// The 404 for a stream this node does not know.
fn unknown(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("no stream {id} is known here"))
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

impl StreamSpec {
    /// Whether the numbers are ones `create` would write (a peer's item is
    /// checked before the driver does arithmetic with it).
    fn sane(&self) -> bool {
        let (w, sl) = (self.window_ms, self.slide_ms);
        is_stream_id(&self.id)
            && (MIN_SLIDE_MS..=366 * 86_400_000).contains(&sl)
            && (sl..=366 * 86_400_000).contains(&w)
            && w % sl == 0
            && (0..=3_600_000).contains(&self.lateness_ms)
            && self.since_ms.rem_euclid(sl) == 0
            && (0..=300_000_000_000_000).contains(&self.since_ms)
    }

    /// The start of window `k` after `since`, if it is one.
    fn is_start(&self, start: i64) -> bool {
        start >= self.since_ms && (start - self.since_ms) % self.slide_ms == 0
    }
}

/// The specs this node holds, by id (only sane ones).
fn specs(node: &ryx_core::Node) -> BTreeMap<String, StreamSpec> {
    node.info_items()
        .filter(|(k, _)| k.starts_with(STREAM_PREFIX) && !k[STREAM_PREFIX.len()..].contains('/'))
        .filter_map(|(k, it)| StreamSpec::deserialize(&*it.value).ok().filter(|s| k[STREAM_PREFIX.len()..] == s.id))
        .filter(StreamSpec::sane)
        .map(|s| (s.id.clone(), s))
        .collect()
}

/// The starts of the windows of `spec` this node holds (no value cloned).
fn window_starts<'a>(node: &'a ryx_core::Node, spec: &'a StreamSpec) -> impl Iterator<Item = i64> + 'a {
    let prefix = window_prefix(&spec.id);
    node.info_items()
        .filter_map(move |(k, _)| k.strip_prefix(prefix.as_str())?.parse::<i64>().ok())
        .filter(|s| spec.is_start(*s))
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
    if slide_ms < MIN_SLIDE_MS {
        return Err(bad(ErrorCode::BadParams, format!("a stream's slide (and window) is at least {MIN_SLIDE_MS} ms")));
    }
    let mut probe = spec.params.to_json();
    probe["from_ms"] = json!(i64::MAX);
    probe["to_ms"] = json!(i64::MAX);
    if ryx_core::wire::value_len(&probe) > ryx_core::wire::MAX_PARAMS_LEN {
        return Err(bad(
            ErrorCode::BadParams,
            format!("the pipeline's parameters exceed {} bytes", ryx_core::wire::MAX_PARAMS_LEN),
        ));
    }
    let lateness_ms = req.lateness_ms.unwrap_or(DEFAULT_LATENESS_MS);
    if !(0..=3_600_000).contains(&lateness_ms) {
        return Err(bad(ErrorCode::BadParams, "`lateness_ms` must be between 0 and 3600000"));
    }
    let now = wall_ms();
    let since = req.since_ms.unwrap_or(now);
    let oldest = now.saturating_sub(MAX_BACKLOG.saturating_mul(slide_ms));
    if !(oldest..=now.saturating_add(86_400_000)).contains(&since) {
        return Err(bad(
            ErrorCode::BadParams,
            format!("`since_ms` must be at most {MAX_BACKLOG} slides ago and at most a day ahead"),
        ));
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

/// What `GET /v1/streams[/{id}]` shows of one stream.
fn summary(st: &crate::runtime::State, spec: &StreamSpec) -> Value {
    let (mut n, mut last) = (0usize, None::<i64>);
    for s in window_starts(&st.node, spec) {
        n += 1;
        last = last.max(Some(s));
    }
    let lease = lease_of(st, &spec.id);
    let trouble = TROUBLE.lock().unwrap_or_else(|e| e.into_inner()).get(&spec.id).cloned();
    json!({
        "stream": spec,
        "windows_closed": n,
        "last_closed_end_ms": last.map(|s| s.saturating_add(spec.window_ms)),
        "driver": lease.as_ref().map(|l| &l.0),
        "lease_age_ms": lease.map(|l| l.1),
        "retries_here": trouble.as_ref().map_or(0, |t| t.0),
        "last_error_here": trouble.map(|t| t.1),
    })
}

/// The windows of `spec` this node holds, by start.
fn windows_of(node: &ryx_core::Node, spec: &StreamSpec, since: i64) -> BTreeMap<i64, Value> {
    let prefix = window_prefix(&spec.id);
    node.info_items()
        .filter_map(|(k, it)| {
            let s = k.strip_prefix(prefix.as_str())?.parse::<i64>().ok()?;
            (spec.is_start(s) && s >= since).then(|| (s, (*it.value).clone()))
        })
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
        .call(|st| specs(&st.node).values().map(|s| summary(st, s)).collect::<Vec<_>>())
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
    check_id(&id)?;
    let i = id.clone();
    let found = api
        .handle
        .call(move |st| {
            let spec = specs(&st.node).remove(&i)?;
            // Only the windows shown are cloned.
            let last = q.last.unwrap_or(100).min(10_000);
            let mut starts: Vec<i64> =
                window_starts(&st.node, &spec).filter(|s| *s >= q.since_ms.unwrap_or(i64::MIN)).collect();
            starts.sort_unstable();
            let from = starts.len().checked_sub(last).and_then(|k| starts.get(k)).copied().unwrap_or(i64::MIN);
            let windows = windows_of(&st.node, &spec, from.max(q.since_ms.unwrap_or(i64::MIN)));
            Some((summary(st, &spec), windows))
        })
        .await
        .map_err(ApiError::unavailable)?;
    let Some((mut v, windows)) = found else {
        return Err(unknown(&id));
    };
    v["windows"] = Value::Array(windows.into_values().collect());
    Ok(Json(v).into_response())
}

/// `DELETE /v1/streams/{id}`: stops a stream (its windows stay readable).
pub async fn stop(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    check_id(&id)?;
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
        None => Err(unknown(&id)),
    }
}

// ---- the driver ------------------------------------------------------------------

/// What the driver knows of one stream at one tick.
struct Seen {
    spec: StreamSpec,
    /// The next window to close: after the latest this node holds, or the
    /// lease's watermark if that is further on.
    next: i64,
    /// The lease's holder, how long ago it was renewed here, and whether
    /// it was written by this process (a restarted node does not adopt
    /// the lease of its previous life).
    lease: Option<(NodeId, Duration, bool)>,
    /// How long this node has known the stream.
    known: Duration,
}

/// Counters of the drivers on this node (for `/metrics` and tests).
pub static WINDOWS_CLOSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Window jobs that failed or were given up on, and tried again.
pub static RETRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Per stream, on this node: tries that failed in a row and the last error.
static TROUBLE: std::sync::Mutex<BTreeMap<String, (u64, String)>> = std::sync::Mutex::new(BTreeMap::new());
/// Per (stream, holder): since when the holder has not answered this
/// node's gathers.
static MISSING_SINCE: std::sync::Mutex<BTreeMap<(String, NodeId), Instant>> = std::sync::Mutex::new(BTreeMap::new());

fn lease_value(me: NodeId, started_ms: i64, next: i64) -> Value {
    json!({ "node": me.to_string(), "at_ms": wall_ms(), "started_ms": started_ms, "next": next })
}

/// Drives the streams this node should drive; spawned once with the router.
pub async fn drive(api: Api) {
    let started = Instant::now();
    let started_ms = wall_ms();
    let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut renewed: HashMap<String, Instant> = HashMap::new();
    let mut refreshed: HashMap<String, Instant> = HashMap::new();
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
            .call(move |st| {
                let me = st.node.id();
                let now = st.clock.now();
                let live: Vec<StreamSpec> = specs(&st.node).into_values().filter(|s| !s.stopped).collect();
                // The topology (for this node's takeover rank) only when a
                // stream runs: most nodes never drive one.
                let rank = if live.is_empty() {
                    0
                } else {
                    let mut ids: Vec<NodeId> = st.node.topology(now).nodes.iter().map(|n| n.node_id).collect();
                    ids.sort();
                    ids.dedup();
                    ids.iter().position(|&i| i == me).unwrap_or(0)
                };
                let seen: Vec<Seen> = live
                    .into_iter()
                    .map(|spec| {
                        let lease_item = st.node.info(&lease_key(&spec.id));
                        let lease = lease_item.and_then(|it| {
                            let n: NodeId = it.value.get("node")?.as_str()?.parse().ok()?;
                            let ours = it.value.get("started_ms").and_then(Value::as_i64) == Some(started_ms);
                            Some((n, now.since(it.received), ours))
                        });
                        let watermark = lease_item
                            .and_then(|it| it.value.get("next")?.as_i64())
                            .filter(|n| spec.is_start(*n))
                            .unwrap_or(spec.since_ms);
                        let held = window_starts(&st.node, &spec)
                            .max()
                            .map_or(spec.since_ms, |l| l.saturating_add(spec.slide_ms));
                        let known =
                            st.node.info(&spec_key(&spec.id)).map_or(Duration::ZERO, |it| now.since(it.received));
                        Seen { next: held.max(watermark), spec, lease, known }
                    })
                    .collect();
                (me, rank, seen)
            })
            .await;
        let Ok((me, rank, seen)) = seen else { return };
        let live: std::collections::HashSet<String> = seen.iter().map(|s| s.spec.id.clone()).collect();
        for m in [&mut renewed, &mut refreshed] {
            m.retain(|k, _| live.contains(k));
        }
        for s in seen {
            let id = s.spec.id.clone();
            let turn = TAKEOVER_STEP.saturating_mul(rank as u32);
            let mine = match s.lease {
                Some((holder, _, ours)) if holder == me && ours => true,
                Some((_, age, _)) => age > LEASE_STALE + turn,
                // A new stream: the first lease is taken in the same order.
                None => s.known > turn,
            };
            if !mine {
                renewed.remove(&id);
                continue;
            }
            if renewed.get(&id).is_none_or(|t| t.elapsed() >= LEASE_EVERY) {
                renewed.insert(id.clone(), Instant::now());
                let (key, v) = (lease_key(&id), lease_value(me, started_ms, s.next));
                let spec = refreshed.get(&id).is_none_or(|t| t.elapsed() >= SPEC_REFRESH).then(|| {
                    refreshed.insert(id.clone(), Instant::now());
                    (spec_key(&id), serde_json::to_value(&s.spec).unwrap_or_default())
                });
                let _ = api
                    .handle
                    .call(move |st| {
                        let now = st.clock.now();
                        let _ = st.node.put_info(now, &key, v, Some(ENERGY));
                        if let Some((k, v)) = spec {
                            let _ = st.node.put_info(now, &k, v, Some(ENERGY));
                        }
                    })
                    .await;
            }
            if running.contains_key(&id) {
                continue;
            }
            let spec = s.spec;
            let next = s.next;
            // The last window closed by now: its end + lateness has passed.
            let closable = (wall_ms() - spec.lateness_ms - spec.window_ms).div_euclid(spec.slide_ms) * spec.slide_ms;
            if closable < next {
                continue;
            }
            let to = closable.saturating_add(spec.slide_ms).min(next.saturating_add(BATCH * spec.slide_ms));
            let api = api.clone();
            let failures = TROUBLE.lock().unwrap_or_else(|e| e.into_inner()).get(&id).map_or(0, |t| t.0);
            // Backs off after failures: 0.3 s, 0.6 s ... up to 10 s.
            let backoff = Duration::from_millis(300u64.saturating_mul(1 << failures.min(6))).min(MAX_BACKOFF);
            running.insert(
                id.clone(),
                tokio::spawn(async move {
                    match close(&api, &spec, next, to, me, started_ms).await {
                        Ok(()) => {
                            TROUBLE.lock().unwrap_or_else(|e| e.into_inner()).remove(&spec.id);
                        }
                        Err(e) => {
                            RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tracing::info!(stream = %spec.id, from_ms = next, to_ms = to, "window job to try again: {e}");
                            {
                                let mut t = TROUBLE.lock().unwrap_or_else(|e| e.into_inner());
                                let entry = t.entry(spec.id.clone()).or_insert((0, String::new()));
                                entry.0 += 1;
                                entry.1 = e;
                            }
                            tokio::time::sleep(backoff).await;
                        }
                    }
                }),
            );
        }
    }
}

/// Most holder ids a window names as missing (the count is always given).
const MAX_MISSING_LISTED: usize = 16;

/// Closes the windows starting in `[from, to)`: one job, then one item
/// each, written only while this node still holds the lease.
async fn close(api: &Api, spec: &StreamSpec, from: i64, to: i64, me: NodeId, started_ms: i64) -> Result<(), String> {
    let mut params = spec.params.clone();
    params["from_ms"] = json!(from);
    params["to_ms"] = json!(to);
    let t0 = Instant::now();
    let g = crate::datasets::gather(&api.handle, &spec.dataset).await.map_err(|e| format!("{e:?}"))?;
    let gathered = t0.elapsed();
    let missing: Vec<NodeId> = g.unreachable.iter().chain(&g.from_copies).copied().collect();
    // A holder gone for good (or restarted under a new identity) must not
    // stop the stream for ever: one that has not answered this node for
    // HOLDER_GRACE no longer holds the windows back; they close without
    // its lines, and say so.
    let given_up = {
        let mut m = MISSING_SINCE.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|(s, n), _| s != &spec.id || missing.contains(n));
        missing.iter().all(|n| m.entry((spec.id.clone(), *n)).or_insert_with(Instant::now).elapsed() >= HOLDER_GRACE)
    };
    if !missing.is_empty() && !given_up {
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
        let w = result.get("windows").and_then(Value::as_array).cloned().ok_or("a result without windows")?;
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
            w["missing_count"] = json!(missing.len());
            w["missing"] = json!(missing.iter().take(MAX_MISSING_LISTED).map(|n| n.to_string()).collect::<Vec<_>>());
        }
        fit(&mut w);
        items.push((window_key(&spec.id, start), w));
        start += spec.slide_ms;
    }
    let (id, lease) = (spec.id.clone(), lease_value(me, started_ms, to));
    let written = api
        .handle
        .call(move |st| {
            // Only the lease's holder writes: a node that lost it meanwhile
            // leaves the windows to the one that took it.
            let holds = st.node.info(&lease_key(&id)).is_some_and(|it| {
                it.value.get("node").and_then(Value::as_str) == Some(me.to_string().as_str())
                    && it.value.get("started_ms").and_then(Value::as_i64) == Some(started_ms)
            });
            if !holds {
                return Err("the lease went to another node".to_string());
            }
            let now = st.clock.now();
            let mut n = 0u64;
            for (k, v) in items {
                // Written once: a driver that holds it already leaves it.
                if st.node.info(&k).is_none() {
                    st.node.put_info(now, &k, v, Some(ENERGY)).map_err(|e| format!("window {k}: {e}"))?;
                    n += 1;
                }
            }
            // The watermark moves with the windows, for the next driver.
            st.node.put_info(now, &lease_key(&id), lease, Some(ENERGY)).map_err(|e| e.to_string())?;
            Ok(n)
        })
        .await
        .map_err(|e| e.to_string())??;
    WINDOWS_CLOSED.fetch_add(written, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        stream = %spec.id, from_ms = from, windows = written,
        late_ms = wall_ms() - (to - spec.slide_ms + spec.window_ms + spec.lateness_ms),
        gather_ms = gathered.as_millis() as u64, total_ms = t0.elapsed().as_millis() as u64, "windows closed"
    );
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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
