//! The HTTP API: JSON status, info items and Prometheus metrics; the
//! dashboard at `/ui` and the per-node route `/node/{addr}/...` it uses to
//! ask other nodes of the topology (see the `ryx-control` crate).
//!
//! Every error is `{"error":{"code","message"}}` with a 4xx/5xx status.

use crate::api_jobs::{self, Api};
use crate::metrics;
use crate::runtime::Handle;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ryx_api::{ErrorBody, ErrorCode, FaultSpec, Health, InfoItem, InfoItems, InfoWritten, PutInfo};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Largest request body accepted by the info endpoint.
pub const MAX_INFO_BODY: usize = 64 * 1024;

/// An API error: HTTP status, stable code and a human message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { status, body: ErrorBody::new(code, message) }
    }

    /// The event loop could not be reached.
    pub fn unavailable(e: anyhow::Error) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// A node id as the API writes it.
pub(crate) fn api_id(id: ryx_core::NodeId) -> ryx_api::NodeId {
    ryx_api::NodeId::from(id.to_string())
}

/// Result of an API handler.
pub type ApiResult = Result<Response, ApiError>;

/// A query string parsed into `T`. A malformed one (`copies=x`, a missing
/// field) is a JSON error (`bad_query`) like every other, not the plain
/// text axum's own extractor answers with.
pub struct Query<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(Query(q.0)),
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadQuery, e.body_text())),
        }
    }
}

/// Size limits of the API.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes the blob store may hold (largest upload).
    pub memory: u64,
    /// Chunk size for uploads.
    pub chunk_size: usize,
    /// Uploads received at once.
    pub max_uploads: usize,
    /// Event streams served at once.
    pub max_event_streams: usize,
    /// Longest an upload may stall between two pieces.
    pub body_timeout: std::time::Duration,
}

impl axum::extract::FromRef<Api> for Handle {
    fn from_ref(api: &Api) -> Handle {
        api.handle.clone()
    }
}

/// The API router.
pub fn router(handle: Handle, limits: Limits) -> Router {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(crate::events::record(handle.clone()));
    }
    // Uploads stream into the store under their own limits (see
    // `api_jobs::put_blob`); every other body is small.
    let blobs = Router::new()
        .route("/v1/blobs", axum::routing::put(api_jobs::put_blob).get(api_jobs::list_blobs))
        .layer(DefaultBodyLimit::disable());
    let api = Api {
        handle,
        limits,
        uploads: Arc::new(Semaphore::new(limits.max_uploads.max(1))),
        samples: Arc::new(Semaphore::new(1)),
        streams: Arc::new(Semaphore::new(limits.max_event_streams)),
        lookups: Arc::new(Semaphore::new(MAX_LOOKUPS)),
    };
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(crate::streams::drive(api.clone()));
    }
    Router::new()
        .merge(blobs)
        .route("/v1/blobs/sample", axum::routing::post(api_jobs::put_sample))
        .route("/v1/blobs/{hash}", get(api_jobs::get_blob).delete(api_jobs::delete_blob))
        .route("/v1/jobs", get(api_jobs::list_jobs).post(api_jobs::submit_job))
        .route("/v1/jobs/{id}", get(api_jobs::get_job).delete(api_jobs::cancel_job))
        .route("/v1/search", get(crate::api_search::search))
        .route("/healthz", get(healthz))
        .route("/v1/events", get(crate::events::events))
        .route("/v1/identity", get(crate::members::identity))
        .route("/v1/admin/crash", axum::routing::post(crash))
        .route("/v1/events/recent", get(crate::events::recent))
        .route("/metrics", get(metrics_text))
        .route("/v1/status", get(status))
        .route("/v1/neighbors", get(neighbors))
        .route("/v1/health", get(health))
        .route("/v1/incidents", get(crate::alerts::list))
        .route("/v1/aggregates", get(aggregates))
        .route(
            "/v1/rows/{dataset}",
            axum::routing::post(crate::learning::add_rows).layer(DefaultBodyLimit::max(crate::learning::MAX_ROWS_BODY)),
        )
        .route("/v1/learn", get(crate::learning::list).post(crate::learning::start))
        .route("/v1/learn/{id}", get(crate::learning::get_one))
        .route(
            "/v1/learn/{id}/predict",
            axum::routing::post(crate::learning::predict)
                .layer(DefaultBodyLimit::max(crate::learning::MAX_PREDICT_BODY)),
        )
        .route("/v1/aggregates/{metric}", get(aggregate_one))
        .route("/v1/streams", get(crate::streams::list).post(crate::streams::create))
        .route("/v1/streams/{id}", get(crate::streams::get_one).delete(crate::streams::stop))
        .route("/v1/peers", get(peers))
        .route("/v1/topology", get(topology))
        .route("/v1/sources", get(sources))
        .route("/v1/datasets", get(crate::datasets::list))
        .route("/v1/sources/{name}/snapshot", get(crate::datasets::snapshot))
        .route("/v1/info", get(info_list).post(info_put))
        .route("/v1/info/{key}", get(info_get))
        .route("/v1/admin/faults", get(faults_get).post(faults_set).delete(faults_clear))
        .route("/ui", get(|| async { ryx_control::server::ui_response("") }))
        .route("/ui/", get(|| async { ryx_control::server::ui_response("") }))
        .route("/ui/{*path}", get(|Path(p): Path<String>| async move { ryx_control::server::ui_response(&p) }))
        .route("/node/{*rest}", get(node_proxy))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_INFO_BODY))
        .with_state(api)
}

/// Job lookups a node sends on to other nodes at once.
const MAX_LOOKUPS: usize = 4;

async fn method_not_allowed(req: axum::extract::Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!("{} is not supported on {}", req.method(), req.uri().path()),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such endpoint; see /v1/status, /v1/info, /metrics")
}

/// `GET /node/{addr}/{path}`: the same request to another node of the
/// topology (the dashboard's way to ask any node for its status, blobs...).
/// Only to an address that proves to be the node the topology names there
/// (`members::prove`): a forged topology item cannot turn this into an
/// open proxy, nor get the client's credentials sent to another service.
async fn node_proxy(State(h): State<Handle>, req: axum::extract::Request) -> Response {
    let pq = req.uri().path_and_query().map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let (addr, rest) = match ryx_control::node_route(&pq) {
        Ok(r) => r,
        Err(e) => return ApiError::new(StatusCode::BAD_REQUEST, e.into(), e.message()).into_response(),
    };
    let Some(id) = crate::members::node_at(&h, addr).await else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::UnknownNode,
            format!("{addr} is not a node of the topology"),
        )
        .into_response();
    };
    if let Err(e) = crate::members::prove(&h, addr, id).await {
        crate::refusals::Refusal::NotMember.count();
        tracing::warn!(%addr, node = %id, "relay refused: {e}");
        return ApiError::new(StatusCode::FORBIDDEN, ErrorCode::NotMember, e).into_response();
    }
    ryx_control::server::forward(addr, req, &rest).await.unwrap_or_else(IntoResponse::into_response)
}

async fn healthz(State(h): State<Handle>) -> ApiResult {
    let leaving = h.call(|s| s.node.status(s.clock.now()).leaving).await.map_err(ApiError::unavailable)?;
    if leaving {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Leaving, "node is shutting down"));
    }
    Ok(Json(Health::ok()).into_response())
}

async fn status(State(h): State<Handle>) -> ApiResult {
    let v = h.call(|s| serde_json::to_value(s.node.status(s.clock.now()))).await.map_err(ApiError::unavailable)?;
    Ok(Json(v.unwrap_or_default()).into_response())
}

/// `GET /v1/health`: this node's own series (the last five minutes).
async fn health(State(h): State<Handle>) -> ApiResult {
    let v = h.call(|s| serde_json::to_value(s.health.view())).await.map_err(ApiError::unavailable)?;
    Ok(Json(v.unwrap_or_default()).into_response())
}

/// `GET /v1/aggregates`: the whole network's aggregates as this node
/// sees them (means with their error, sums, count, extremes, quantiles,
/// per label value), by local interaction only.
async fn aggregates(State(h): State<Handle>) -> ApiResult {
    let v = h.call(|s| serde_json::to_value(s.node.aggregates())).await.map_err(ApiError::unavailable)?;
    Ok(Json(v.unwrap_or_default()).into_response())
}

/// `GET /v1/aggregates/{metric}`: one metric's aggregate, with the round,
/// its age and the node count it stands for.
async fn aggregate_one(State(h): State<Handle>, Path(metric): Path<String>) -> ApiResult {
    let v = h.call(|s| s.node.aggregates()).await.map_err(ApiError::unavailable)?;
    match v.metrics.get(&metric) {
        Some(m) => Ok(Json(json!({
            "metric": metric,
            "value": m,
            "count": v.count,
            "rounds": v.rounds,
            "age_ms": v.age_ms,
            "interval_ms": v.interval_ms,
            "groups": v.groups.iter().map(|(k, g)| (k.clone(), g.iter().filter_map(|(val, gv)| gv.metrics.get(&metric).map(|x| (val.clone(), *x))).collect::<std::collections::BTreeMap<_, _>>())).collect::<std::collections::BTreeMap<_, _>>(),
        }))
        .into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no aggregate named {metric:?}; GET /v1/aggregates lists them"),
        )),
    }
}

async fn neighbors(State(h): State<Handle>) -> ApiResult {
    let v = h.call(|s| serde_json::to_value(s.node.neighbors(s.clock.now()))).await.map_err(ApiError::unavailable)?;
    Ok(Json(json!({"neighbors": v.unwrap_or_default()})).into_response())
}

async fn peers(State(h): State<Handle>) -> ApiResult {
    let v = h.call(|s| serde_json::to_value(s.node.passive_peers())).await.map_err(ApiError::unavailable)?;
    Ok(Json(json!({"passive": v.unwrap_or_default()})).into_response())
}

async fn topology(State(h): State<Handle>) -> ApiResult {
    let v = h.call(|s| serde_json::to_value(s.node.topology(s.clock.now()))).await.map_err(ApiError::unavailable)?;
    Ok(Json(v.unwrap_or_default()).into_response())
}

async fn sources(State(h): State<Handle>) -> ApiResult {
    let v = h.call(|s| s.sources.clone()).await.map_err(ApiError::unavailable)?;
    Ok(Json(v).into_response())
}

fn info_item(key: &str, it: &ryx_core::diffusion::StoredItem) -> InfoItem {
    InfoItem {
        energy: it.energy,
        hops: it.hops,
        key: key.to_owned(),
        origin: api_id(it.origin),
        value: (*it.value).clone(),
        version: it.version,
    }
}

async fn info_list(State(h): State<Handle>) -> ApiResult {
    let v = h
        .call(|s| s.node.info_items().map(|(k, it)| info_item(k, it)).collect::<Vec<_>>())
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(InfoItems { items: v }).into_response())
}

async fn info_get(State(h): State<Handle>, Path(key): Path<String>) -> ApiResult {
    let k = key.clone();
    let v = h.call(move |s| s.node.info(&k).map(|it| info_item(&k, it))).await.map_err(ApiError::unavailable)?;
    match v {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no info item with key {key:?} here"),
        )),
    }
}

pub(crate) fn body_error(e: BytesRejection) -> ApiError {
    let status = e.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE { ErrorCode::TooLarge } else { ErrorCode::BadBody };
    ApiError::new(status, code, e.body_text())
}

async fn info_put(State(h): State<Handle>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body = body.map_err(body_error)?;
    let req: PutInfo = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadJson,
            format!("expected {{\"key\",\"value\",\"energy\"?}}: {e}"),
        )
    })?;
    if req.key.starts_with("ryx.") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::Invalid,
            format!("keys starting with \"ryx.\" are the network's own (incidents): {:?}", req.key),
        ));
    }
    let key = req.key.clone();
    let r = h
        .call(move |s| {
            let now = s.clock.now();
            s.node.put_info(now, &req.key, req.value, req.energy).map(|v| (v, s.node.id()))
        })
        .await
        .map_err(ApiError::unavailable)?;
    match r {
        Ok((version, origin)) => {
            let written = InfoWritten { key, origin: api_id(origin), version };
            Ok((StatusCode::CREATED, Json(written)).into_response())
        }
        Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::Invalid, e.to_string())),
    }
}

async fn metrics_text(State(h): State<Handle>) -> ApiResult {
    let text = h.call(|s| metrics::render(s)).await.map_err(ApiError::unavailable)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

/// `POST /v1/admin/crash` (fault injection only): makes the event loop
/// panic, as a bug would, to check that the process then ends (non-zero)
/// for its supervisor to restart it, rather than answering 503 for ever.
async fn crash(State(h): State<Handle>) -> ApiResult {
    let enabled = h.call(|s| s.faults_enabled).await.map_err(ApiError::unavailable)?;
    if !enabled {
        return Err(faults_disabled());
    }
    tracing::warn!("crash requested through the fault-injection API");
    let _ = h.call(|_| -> () { panic!("crash requested through /v1/admin/crash") }).await;
    Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Crashed, "the event loop stopped"))
}

fn faults_disabled() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::FaultInjectionDisabled,
        "this node runs without --enable-fault-injection",
    )
}

async fn faults_get(State(h): State<Handle>) -> ApiResult {
    let v = h.call(|s| s.faults_enabled.then(|| s.faults.describe())).await.map_err(ApiError::unavailable)?;
    v.map(|v| Json(v).into_response()).ok_or_else(faults_disabled)
}

async fn faults_set(State(h): State<Handle>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body = body.map_err(body_error)?;
    let spec: FaultSpec = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadJson,
            format!("expected {{\"block\"?,\"loss\"?,\"delay_ms\"?,\"jitter_ms\"?,\"for_ms\"}}: {e}"),
        )
    })?;
    let r = h
        .call(move |s| {
            if !s.faults_enabled {
                return Err(faults_disabled());
            }
            s.faults.set(&spec).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::Invalid, e))?;
            tracing::warn!(?spec, "network faults injected");
            Ok(s.faults.describe())
        })
        .await
        .map_err(ApiError::unavailable)??;
    Ok(Json(r).into_response())
}

async fn faults_clear(State(h): State<Handle>) -> ApiResult {
    let r = h
        .call(|s| {
            if !s.faults_enabled {
                return Err(faults_disabled());
            }
            s.faults.clear();
            tracing::warn!("network faults healed");
            Ok(s.faults.describe())
        })
        .await
        .map_err(ApiError::unavailable)??;
    Ok(Json(r).into_response())
}
