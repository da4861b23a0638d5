//! `GET /v1/search`: BM25 search over a dataset of documents, from any
//! node.
//!
//! A search is two jobs over one snapshot of the dataset (so both see the
//! same documents), each run where the chunks lie with the usual
//! redundancy and votes: `search-stats` sums the corpus figures BM25 needs
//! (documents, tokens, each query term's document frequency), then
//! `search` scores every chunk's documents with those figures and merges
//! the top k lists along the job's tree (`ryx_compute::search`). The
//! ranking equals one index over all the documents.

use crate::api_jobs::{fetch_result, start, Api};
use crate::http::{api_id, ApiError, ApiResult, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use ryx_api::{ErrorCode, SubmitJob};
use ryx_core::jobs::JobState;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Query of `GET /v1/search`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// The dataset to search.
    dataset: Option<String>,
    /// The query.
    q: Option<String>,
    /// Hits wanted (default 10).
    k: Option<u64>,
    /// Replicas per unit (the node's default when absent).
    redundancy: Option<u8>,
    /// Longest wait for both jobs, in milliseconds (default 30,000).
    timeout_ms: Option<u64>,
    /// Each distinct word of the query once, as tantivy's query parser
    /// does (default: every word, repeats weighing more).
    distinct_words: Option<bool>,
}

/// Default and longest wait for a search.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// How often a search looks at its jobs.
const POLL: Duration = Duration::from_millis(10);

fn bad(code: ErrorCode, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, msg.into())
}

/// `GET /v1/search?dataset=NAME&q=QUERY[&k=10][&redundancy=R][&timeout_ms=T]`.
pub async fn search(State(api): State<Api>, Query(sq): Query<SearchQuery>) -> ApiResult {
    let t0 = Instant::now();
    let name = sq.dataset.ok_or_else(|| bad(ErrorCode::BadQuery, "`dataset` is required"))?;
    crate::datasets::check_name(&name)?;
    let q = sq.q.ok_or_else(|| bad(ErrorCode::BadQuery, "`q` (the query) is required"))?;
    let k = sq.k.unwrap_or(10);
    if !(1..=ryx_compute::search::MAX_K as u64).contains(&k) {
        return Err(bad(ErrorCode::BadParams, format!("`k` must be between 1 and {}", ryx_compute::search::MAX_K)));
    }
    let timeout = sq.timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(bad(
            ErrorCode::BadQuery,
            format!("`timeout_ms` must be between 1 and {}", MAX_TIMEOUT.as_millis()),
        ));
    }
    let stats_params = json!({ "q": q, "distinct_words": sq.distinct_words.unwrap_or(false) });
    ryx_compute::JobSpec::new("search-stats", &stats_params).map_err(|e| bad(ErrorCode::BadParams, e.to_string()))?;
    let deadline = t0 + timeout;

    // One answer per chunk, from the node whose files hold it: waves. A
    // consensus (r > 1 answers per chunk, votes) is a job's, and so is a
    // snapshot that needs dead holders' copies: when a wave cannot cover
    // every holder, the search runs as jobs.
    let mut fallback = None;
    if sq.redundancy.unwrap_or(1) <= 1 && k as usize <= MAX_WAVE_K {
        let distinct = sq.distinct_words.unwrap_or(false);
        match by_wave(&api, &name, &q, k as usize, distinct, t0, deadline).await? {
            Ok(found) => return Ok(Json(found).into_response()),
            Err(why) => {
                tracing::info!(dataset = %name, "search by jobs: {why}");
                fallback = Some(why);
            }
        }
    }

    // One snapshot for both jobs.
    let g = crate::datasets::gather(&api.handle, &name).await?;
    let dataset = crate::datasets::view(&g.tag);
    let unreachable: Vec<_> = g.unreachable.iter().map(|n| api_id(*n)).collect();
    let coverage = g.coverage();
    // Where each chunk lives (its holder in the snapshot).
    let lives_on: std::collections::HashMap<String, ryx_core::NodeId> =
        g.chunks.iter().map(|(b, p, _)| (b.hash.to_string(), p.id)).collect();
    let run = |kind: &'static str, params: Value| {
        let (chunks, tag) = (g.chunks.clone(), g.tag.clone());
        let req = SubmitJob { params, redundancy: sq.redundancy, ..SubmitJob::over_dataset(kind, &name) };
        let api = api.clone();
        async move {
            let id = start(
                &api,
                req,
                Box::new(move |node, now, kind, params, r, e| {
                    node.submit_dataset_job(now, kind, params, chunks, r, e, tag)
                }),
            )
            .await?;
            let result = wait(&api, &id, deadline).await?;
            Ok::<_, ApiError>((id, result))
        }
    };
    // The corpus figures of a snapshot never change: a query whose terms
    // all had their document frequency counted over this snapshot before
    // needs no `search-stats` job.
    let terms = ryx_compute::search::query_terms(&q, sq.distinct_words.unwrap_or(false));
    let known = stats_cache().lookup(&g.tag.snapshot, &terms);
    let (stats_job, stats) = match known {
        Some(stats) => (None, stats),
        None => {
            let (job, stats) = run("search-stats", stats_params).await?;
            stats_cache().learn(&g.tag.snapshot, &stats);
            (Some(job), stats)
        }
    };
    let params = ryx_compute::search::search_params(&stats, k as usize)
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, ErrorCode::SearchFailed, e.to_string()))?;
    let (search_job, mut result) = run("search", params).await?;
    let id = search_job.clone();
    let workers = api.handle.call(move |s| s.node.job_engine().home_unit_workers(&id)).await.unwrap_or_default();
    let hit_nodes = hit_nodes(&result, &lives_on, workers.unwrap_or_default());
    if let Some(obj) = result.as_object_mut() {
        obj.insert("hit_nodes".into(), hit_nodes);
        obj.insert("q".into(), json!(q));
        obj.insert("dataset".into(), json!(dataset));
        obj.insert("jobs".into(), json!({ "stats": stats_job, "search": search_job }));
        obj.insert("path".into(), json!("jobs"));
        if let Some(why) = fallback {
            obj.insert("fallback".into(), json!(why));
        }
        obj.insert("unreachable".into(), json!(unreachable));
        obj.insert("coverage".into(), coverage);
        obj.insert("elapsed_ms".into(), json!(t0.elapsed().as_millis() as u64));
    }
    Ok(Json(result).into_response())
}

/// Most hits a search by wave returns (a subtree's merged top-k list must
/// fit a datagram); more, and the search runs as jobs.
pub const MAX_WAVE_K: usize = 50;
/// Longest a wave may take before the search falls back to jobs.
const WAVE_BUDGET: Duration = Duration::from_secs(5);

/// A search by waves (`ryx_core`'s `node::wave`, `crate::waves`): one wave
/// when every term's corpus figures are known for the snapshot the
/// holders answer over, else a wave that counts them and a second that
/// scores exactly the chunks the first counted. `Ok(Err(why))`: the
/// waves did not cover every holder known to this node (or timed out),
/// and the search must run as jobs.
async fn by_wave(
    api: &Api,
    name: &str,
    q: &str,
    k: usize,
    distinct: bool,
    t0: Instant,
    deadline: Instant,
) -> Result<Result<Value, String>, ApiError> {
    use ryx_core::wire::{wave_mix, WaveAnswer};
    let (_, holders) = crate::datasets::holders(&api.handle, name).await?;
    let expect_xor = holders.iter().fold(0u64, |x, a| x ^ wave_mix(a.node.0, 0));
    let expect = holders.len() as u32;
    let announced_bytes: u64 = holders.iter().map(|a| a.bytes).sum();
    let covers = |a: &WaveAnswer| a.incomplete == 0 && a.holders == expect && a.holders_xor == expect_xor;
    let short = |a: &WaveAnswer, what: &str| {
        format!(
            "the {what} wave reached {} of {expect} holders known here ({} part(s) incomplete)",
            a.holders, a.incomplete
        )
    };
    let budget = || deadline.saturating_duration_since(Instant::now()).min(WAVE_BUDGET);
    // Along the spanning tree first (two messages per node); over every
    // link when that one did not reach every holder (the tree is settling
    // after a change); the last answer either way.
    let run = |kind: &'static str, params: Value, pin: Option<u64>| {
        let h = api.handle.clone();
        let name = name.to_string();
        async move {
            let (qid, a) = crate::waves::run(&h, &name, kind, params.clone(), pin, budget(), true)
                .await
                .map_err(ApiError::unavailable)?;
            if a.as_ref().is_some_and(covers) {
                return Ok((qid, a, 1));
            }
            let (qid, a) = crate::waves::run(&h, &name, kind, params, pin, budget(), false)
                .await
                .map_err(ApiError::unavailable)?;
            Ok::<_, ApiError>((qid, a, 2))
        }
    };
    let failed =
        |e: ryx_compute::ComputeError| ApiError::new(StatusCode::BAD_GATEWAY, ErrorCode::SearchFailed, e.to_string());
    let terms = ryx_compute::search::query_terms(q, distinct);
    let mut waves = 0u32;

    // The figures are known for the last snapshot answered: one wave, whose
    // holders must answer over that snapshot still.
    let known = {
        let c = stats_cache();
        c.latest(name).and_then(|snap| Some((snap.to_string(), c.lookup(snap, &terms)?)))
    };
    if let Some((snap, stats)) = known {
        let params = ryx_compute::search::search_params(&stats, k).map_err(failed)?;
        let (_, a, n) = run("search", params.clone(), None).await?;
        waves += n;
        if let Some(a) = a.filter(|a| covers(a) && wave_snapshot(name, a.snapshot_xor) == snap) {
            let result = finish_wave("search", &params, &a).map_err(failed)?;
            return Ok(Ok(wave_response(result, &a, name, snap, q, announced_bytes, waves, false, t0)));
        }
    }
    let stats_params = json!({ "q": q, "distinct_words": distinct });
    let (qid, s, n) = run("search-stats", stats_params.clone(), None).await?;
    waves += n;
    let Some(s) = s else { return Ok(Err("the corpus figures' wave did not end in time".into())) };
    if !covers(&s) {
        return Ok(Err(short(&s, "corpus figures'")));
    }
    let stats = finish_wave("search-stats", &stats_params, &s).map_err(failed)?;
    let snap = wave_snapshot(name, s.snapshot_xor);
    stats_cache().learn(&snap, &stats);
    stats_cache().set_latest(name, &snap);
    let params = ryx_compute::search::search_params(&stats, k).map_err(failed)?;
    let (_, a, n) = run("search", params.clone(), Some(qid)).await?;
    waves += n;
    let Some(a) = a else { return Ok(Err("the scoring wave did not end in time".into())) };
    if !covers(&a) || a.snapshot_xor != s.snapshot_xor {
        return Ok(Err(short(&a, "scoring")));
    }
    let result = finish_wave("search", &params, &a).map_err(failed)?;
    Ok(Ok(wave_response(result, &a, name, snap, q, announced_bytes, waves, true, t0)))
}

/// The name of the snapshot a wave's holders answered over.
fn wave_snapshot(name: &str, xor: u64) -> String {
    format!("wave:{name}:{xor:016x}")
}

/// A wave's merged answer finished into the job kind's result.
fn finish_wave(kind: &str, params: &Value, a: &ryx_core::wire::WaveAnswer) -> Result<Value, ryx_compute::ComputeError> {
    let spec = ryx_compute::JobSpec::new(kind, params)?;
    let partial = match a.payload.get("partial") {
        Some(p) => ryx_compute::Partial::from_bytes(&serde_json::to_vec(p).unwrap_or_default())?,
        None => spec.empty_partial(),
    };
    spec.finish(partial)
}

/// The response of a search by waves: the result, where each hit lives
/// (and so who answered for it), and what the waves covered.
#[allow(clippy::too_many_arguments)]
fn wave_response(
    mut result: Value,
    a: &ryx_core::wire::WaveAnswer,
    name: &str,
    snapshot: String,
    q: &str,
    announced_bytes: u64,
    waves: u32,
    counted: bool,
    t0: Instant,
) -> Value {
    let on = a.payload.get("on").cloned().unwrap_or_default();
    let hit_nodes: Vec<Value> = result
        .get("hit_chunks")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .map(|c| {
                    let node = c.as_str().and_then(|c| on.get(c)).cloned().unwrap_or(Value::Null);
                    let by = if node.is_null() { json!([]) } else { json!([node]) };
                    json!({ "chunk": c, "lives_on": node, "answered_by": by })
                })
                .collect()
        })
        .unwrap_or_default();
    let tag = ryx_core::jobs::DatasetTag { name: name.to_string(), snapshot, nodes: a.holders, bytes: a.bytes };
    if let Some(obj) = result.as_object_mut() {
        obj.insert("hit_nodes".into(), Value::Array(hit_nodes));
        obj.insert("q".into(), json!(q));
        obj.insert("dataset".into(), json!(crate::datasets::view(&tag)));
        obj.insert("jobs".into(), json!({ "stats": null, "search": null }));
        obj.insert("path".into(), json!("wave"));
        obj.insert(
            "wave".into(),
            json!({ "waves": waves, "nodes": a.nodes, "holders": a.holders, "chunks": a.chunks, "counted": counted }),
        );
        obj.insert("unreachable".into(), json!([]));
        let share = if announced_bytes == 0 { 1.0 } else { (a.bytes as f64 / announced_bytes as f64).min(1.0) };
        obj.insert(
            "coverage".into(),
            json!({ "share": share, "bytes": a.bytes, "announced_bytes": announced_bytes, "from_copies": [], "missing": [] }),
        );
        obj.insert("elapsed_ms".into(), json!(t0.elapsed().as_millis() as u64));
    }
    result
}

/// For each hit of a search job's `result` (by its `hit_chunks`), the node
/// its document lives on and the nodes whose answers decided its chunk's
/// unit (`workers`: each unit's chunk and deciders, empty when this node
/// no longer homes the job).
fn hit_nodes(
    result: &Value,
    lives_on: &std::collections::HashMap<String, ryx_core::NodeId>,
    workers: Vec<(ryx_core::blobs::Hash, Vec<ryx_core::NodeId>)>,
) -> Value {
    let mut by_chunk: std::collections::HashMap<String, std::collections::BTreeSet<ryx_core::NodeId>> =
        std::collections::HashMap::new();
    for (h, w) in workers {
        by_chunk.entry(h.to_string()).or_default().extend(w);
    }
    let chunks = result.get("hit_chunks").and_then(Value::as_array).cloned().unwrap_or_default();
    let list: Vec<Value> = chunks
        .iter()
        .map(|c| {
            let c = c.as_str().unwrap_or_default();
            json!({
                "chunk": c,
                "lives_on": lives_on.get(c).map(|n| api_id(*n)),
                "answered_by": by_chunk.get(c).map(|w| w.iter().map(|n| api_id(*n)).collect::<Vec<_>>()).unwrap_or_default(),
            })
        })
        .collect();
    Value::Array(list)
}

/// Corpus figures learned from `search-stats` jobs, by snapshot: the
/// documents, tokens and each term's document frequency. Bounded: the
/// most recent [`STATS_SNAPSHOTS`] snapshots, [`STATS_TERMS`] terms each.
#[derive(Default)]
struct StatsCache {
    /// (snapshot, documents, tokens, document frequency by term), oldest
    /// first.
    entries: std::collections::VecDeque<(String, u64, u64, std::collections::HashMap<String, u64>)>,
    /// The last snapshot a wave answered over, by dataset (bounded as the
    /// entries are: a snapshot no longer kept is dropped here too).
    latest: std::collections::HashMap<String, String>,
}

/// Snapshots whose figures a node keeps.
const STATS_SNAPSHOTS: usize = 8;
/// Terms kept per snapshot.
const STATS_TERMS: usize = 50_000;

fn stats_cache() -> std::sync::MutexGuard<'static, StatsCache> {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<StatsCache>> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

impl StatsCache {
    /// A `search-stats` result for `terms` over `snapshot`, if every term's
    /// figure is known.
    fn lookup(&self, snapshot: &str, terms: &[String]) -> Option<Value> {
        let (_, docs, tokens, df) = self.entries.iter().find(|e| e.0 == snapshot)?;
        let mut known = serde_json::Map::new();
        for t in terms {
            known.insert(t.clone(), json!(*df.get(t)?));
        }
        Some(json!({ "terms": terms, "stats": { "docs": docs, "tokens": tokens, "df": known } }))
    }

    /// The last snapshot of dataset `name` a wave answered over.
    fn latest(&self, name: &str) -> Option<&str> {
        self.latest.get(name).map(String::as_str)
    }

    /// Notes `snapshot` as dataset `name`'s last one answered.
    fn set_latest(&mut self, name: &str, snapshot: &str) {
        let kept: std::collections::HashSet<&String> = self.entries.iter().map(|e| &e.0).collect();
        self.latest.retain(|_, s| kept.contains(s));
        self.latest.insert(name.to_string(), snapshot.to_string());
    }

    /// Keeps the figures of a `search-stats` result over `snapshot`.
    fn learn(&mut self, snapshot: &str, result: &Value) {
        let stats = &result["stats"];
        let (Some(docs), Some(tokens), Some(df)) =
            (stats["docs"].as_u64(), stats["tokens"].as_u64(), stats["df"].as_object())
        else {
            return;
        };
        let at = match self.entries.iter().position(|e| e.0 == snapshot) {
            Some(i) => i,
            None => {
                if self.entries.len() >= STATS_SNAPSHOTS {
                    self.entries.pop_front();
                }
                self.entries.push_back((snapshot.to_string(), docs, tokens, Default::default()));
                self.entries.len() - 1
            }
        };
        let e = &mut self.entries[at];
        for (t, n) in df {
            if let Some(n) = n.as_u64().filter(|_| e.3.len() < STATS_TERMS || e.3.contains_key(t)) {
                e.3.insert(t.clone(), n);
            }
        }
    }
}

/// Waits for job `id` (homed here) to end, and returns its result.
async fn wait(api: &Api, id: &str, deadline: Instant) -> Result<Value, ApiError> {
    loop {
        let i = id.to_string();
        let summary = api.handle.call(move |s| s.node.job(&i)).await.map_err(ApiError::unavailable)?;
        if let Some(j) = summary {
            match j.state {
                JobState::Done => {
                    if let Some(h) = &j.result_hash {
                        return fetch_result(api, h, j.result_size, &j.result_holders).await;
                    }
                }
                JobState::Failed | JobState::Cancelled => {
                    return Err(ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        ErrorCode::SearchFailed,
                        format!("job {id} ({}): {}", j.kind, j.error.unwrap_or_else(|| "cancelled".into())),
                    ));
                }
                JobState::Running => {}
            }
        }
        if Instant::now() >= deadline {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                ErrorCode::SearchTimeout,
                format!("job {id} did not finish in time (GET /v1/jobs/{id} follows it)"),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}
