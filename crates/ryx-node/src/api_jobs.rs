//! HTTP endpoints for blobs and jobs.

use crate::client;
use crate::http::api_id;
use crate::http::Query;
use crate::http::{ApiError, ApiResult, Limits};
use crate::refusals::Refusal;
use crate::runtime::Handle;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use futures_util::StreamExt;
use ryx_api::{
    BlobEntry, BlobList, Cancelled, Deleted, ErrorCode, Holder, JobList, JobState, JobView, Progress, SubmitJob,
    Submitted, UploadOptions, Uploaded,
};
use ryx_core::blobs::Hash;
use ryx_core::blobs::{is_hash, BlobKind};
use ryx_core::jobs::{BlobRef, JobSummary};
use serde::Deserialize;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct Api {
    /// The event loop.
    pub handle: Handle,
    /// Size limits.
    pub limits: Limits,
    /// Uploads being received (`--max-uploads`).
    pub uploads: std::sync::Arc<tokio::sync::Semaphore>,
    /// Samples being generated (one at a time: built in memory).
    pub samples: std::sync::Arc<tokio::sync::Semaphore>,
    /// Event streams open (`--max-event-streams`).
    pub streams: std::sync::Arc<tokio::sync::Semaphore>,
    /// Job lookups sent on to other nodes at once.
    pub lookups: std::sync::Arc<tokio::sync::Semaphore>,
}

fn bad_hash(h: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::BadHash,
        format!("{h:?} is not a blob name (64 lowercase hex digits)"),
    )
}

/// `PUT /v1/blobs`: stores the body, cut at line ends into chunks as it
/// arrives (an upload is never held whole: at most one chunk and one line).
pub async fn put_blob(
    State(api): State<Api>,
    Query(q): Query<UploadOptions>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> ApiResult {
    check_upload_query(&q)?;
    let _permit = api.uploads.clone().try_acquire_owned().map_err(|_| uploads_busy(&api))?;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    if declared.is_some_and(|n| n > api.limits.memory) {
        drain(&mut stream, api.limits.body_timeout).await;
        return Err(too_large(&api));
    }
    let mut ing = Ingest::new(&api);
    loop {
        let next = match tokio::time::timeout(api.limits.body_timeout, stream.next()).await {
            Ok(n) => n,
            Err(_) => {
                ing.undo().await;
                Refusal::BodyTimeout.count();
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    ErrorCode::BodyTimeout,
                    format!("the upload stalled for more than {} ms", api.limits.body_timeout.as_millis()),
                ));
            }
        };
        let result = match next {
            None => break,
            Some(Ok(b)) => ing.push(&b).await,
            Some(Err(e)) => Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadBody, e.to_string())),
        };
        if let Err(e) = result {
            ing.undo().await;
            drain(&mut stream, api.limits.body_timeout).await;
            return Err(e);
        }
    }
    let stored = ing.finish().await?;
    finish_upload(&api, stored, q).await
}

/// Reads and discards what is left of a refused body, a little of it: a
/// client that writes its whole body before reading then gets the answer
/// rather than a reset connection. Beyond that the connection just closes.
async fn drain(stream: &mut axum::body::BodyDataStream, timeout: Duration) {
    const DRAIN_LIMIT: usize = 8 << 20;
    let mut read = 0;
    while read < DRAIN_LIMIT {
        match tokio::time::timeout(timeout, stream.next()).await {
            Ok(Some(Ok(b))) => read += b.len(),
            _ => break,
        }
    }
}

fn uploads_busy(api: &Api) -> ApiError {
    Refusal::UploadsBusy.count();
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::UploadsBusy,
        format!(
            "this node already receives {} uploads; retry shortly or upload to another node",
            api.limits.max_uploads
        ),
    )
}

fn too_large(api: &Api) -> ApiError {
    Refusal::TooLarge.count();
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::TooLarge,
        format!("upload larger than this node's whole store ({} bytes, --memory-limit)", api.limits.memory),
    )
}

/// An upload being stored: cut into chunks as its bytes arrive, each chunk
/// named and stored at once, undone entirely if the upload fails.
struct Ingest {
    api: Api,
    chunker: ryx_compute::ChunkStream,
    whole: blake3::Hasher,
    size: u64,
    chunks: Vec<BlobRef>,
    /// Chunks this upload added (a chunk held before is not undone).
    added: Vec<String>,
}

/// What an upload stored: the content's name, size and chunks.
pub struct Stored {
    hash: String,
    size: u64,
    chunks: Vec<BlobRef>,
}

/// Longest line an upload may contain: a chunk ends at a line end, so a
/// line is held whole while it arrives.
fn max_line(chunk_size: usize) -> usize {
    chunk_size.saturating_mul(4).max(16 << 20)
}

impl Ingest {
    fn new(api: &Api) -> Ingest {
        Ingest {
            api: api.clone(),
            chunker: ryx_compute::ChunkStream::new(api.limits.chunk_size, max_line(api.limits.chunk_size)),
            whole: blake3::Hasher::new(),
            size: 0,
            chunks: Vec::new(),
            added: Vec::new(),
        }
    }

    async fn push(&mut self, data: &[u8]) -> Result<(), ApiError> {
        self.size = self.size.saturating_add(data.len() as u64);
        if self.size > self.api.limits.memory {
            return Err(too_large(&self.api));
        }
        self.whole.update(data);
        let done = self.chunker.push(data).map_err(|e| {
            Refusal::LineTooLong.count();
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::LineTooLong, e.to_string())
        })?;
        for c in done {
            self.store_chunk(c).await?;
        }
        Ok(())
    }

    async fn store_chunk(&mut self, c: Vec<u8>) -> Result<(), ApiError> {
        let hash = ryx_compute::digest_hex(&c);
        let size = c.len() as u64;
        let bytes = Bytes::from(c);
        let h = hash.clone();
        let r = self
            .api
            .handle
            .call(move |s| {
                let had = s.node.blob(&h).is_some();
                s.node.blob_put(s.clock.now(), &h, size, BlobKind::Chunk, true).map(|()| {
                    if !had {
                        s.store.insert(h.clone(), bytes);
                    }
                    // Held until the upload is done: another upload filling
                    // the store must not evict a chunk this one has cut.
                    s.node.blob_pin(&h, UPLOAD_PIN);
                    !had
                })
            })
            .await
            .map_err(ApiError::unavailable)?;
        match r {
            Ok(new) => {
                if new {
                    self.added.push(hash.clone());
                }
                self.chunks.push(BlobRef { hash: Hash::from(hash), size });
                Ok(())
            }
            Err(e) => Err(store_error(e)),
        }
    }

    /// Stores the last chunk and, for more than one, the manifest.
    async fn finish(mut self) -> Result<Stored, ApiError> {
        let last = std::mem::replace(&mut self.chunker, ryx_compute::ChunkStream::new(1, 0)).finish();
        if !last.is_empty() || self.chunks.is_empty() {
            if let Err(e) = self.store_chunk(last).await {
                self.undo().await;
                return Err(e);
            }
        }
        let hash = self.whole.finalize().to_hex().to_string();
        if self.chunks.len() == 1 {
            return Ok(Stored { hash, size: self.size, chunks: self.chunks });
        }
        let m = crate::store::manifest_bytes(self.size, self.chunks.clone());
        let h = hash.clone();
        let r = self
            .api
            .handle
            .call(move |s| {
                if s.node.blob(&h).is_some() {
                    return Ok(Ok(()));
                }
                s.node.blob_put(s.clock.now(), &h, m.len() as u64, BlobKind::Manifest, false)?;
                if let Err(e) = s.store.insert_manifest(h.clone(), m) {
                    s.node.blob_remove(&h);
                    return Ok(Err(e));
                }
                Ok(Ok(()))
            })
            .await
            .map_err(ApiError::unavailable)?;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // The chunk list this node cut does not make a manifest
                // it could read back: the upload is refused whole rather
                // than acknowledged without its manifest.
                Refusal::BadManifest.count();
                self.undo().await;
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::BadManifest,
                    format!("the upload's manifest could not be kept: {e}"),
                ));
            }
            Err(e) => {
                self.undo().await;
                return Err(store_error(e));
            }
        }
        Ok(Stored { hash, size: self.size, chunks: self.chunks })
    }

    /// Removes what this upload added: an upload is kept whole or not at all.
    async fn undo(&mut self) {
        let added = std::mem::take(&mut self.added);
        let chunks: Vec<String> = self.chunks.drain(..).map(|c| String::from(c.hash)).collect();
        let _ = self
            .api
            .handle
            .call(move |s| {
                for h in &chunks {
                    s.node.blob_unpin(h, UPLOAD_PIN);
                }
                for h in added {
                    s.node.blob_remove(&h);
                    s.store.remove(&h);
                }
            })
            .await;
    }
}

/// Pin of chunks while their upload is being received.
const UPLOAD_PIN: &str = "upload";

fn store_error(e: ryx_core::blobs::BlobError) -> ApiError {
    match e {
        ryx_core::blobs::BlobError::TooLarge { .. } => {
            Refusal::TooLarge.count();
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, e.to_string())
        }
        ryx_core::blobs::BlobError::Full { .. } => {
            Refusal::StoreFull.count();
            ApiError::new(StatusCode::INSUFFICIENT_STORAGE, ErrorCode::StoreFull, e.to_string())
        }
    }
}

/// Copies an upload waits for unless told.
const DEFAULT_COPIES: usize = 3;
/// How long an upload waits for its copies unless told.
const DEFAULT_COPIES_TIMEOUT_MS: u64 = 30_000;
/// Longest an upload may be told to wait.
const MAX_COPIES_TIMEOUT_MS: u64 = 600_000;

#[derive(Deserialize)]
/// Query of `POST /v1/blobs/sample`.
pub struct SampleQuery {
    /// Bytes to generate.
    size: Option<String>,
    /// Generator seed.
    #[serde(default)]
    seed: u64,
}

/// `POST /v1/blobs/sample?size=64MiB&seed=1`: generates the built-in sample
/// corpus (realistic multi-service logs) on this node and stores it like an
/// upload.
pub async fn put_sample(
    State(api): State<Api>,
    Query(q): Query<SampleQuery>,
    Query(upload): Query<UploadOptions>,
) -> ApiResult {
    let size = match &q.size {
        Some(s) => {
            crate::cli::parse_size(s).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadSize, e))?
        }
        None => 16 << 20,
    };
    if size > api.limits.memory {
        return Err(too_large(&api));
    }
    check_upload_query(&upload)?;
    // The generator builds the whole sample in memory: one at a time, and
    // it counts as an upload.
    let _permit = api.uploads.clone().try_acquire_owned().map_err(|_| uploads_busy(&api))?;
    let _one = api.samples.clone().try_acquire_owned().map_err(|_| uploads_busy(&api))?;
    let seed = q.seed;
    let data = tokio::task::spawn_blocking(move || ryx_compute::corpus::generate(size as usize, seed))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, e.to_string()))?;
    let mut ing = Ingest::new(&api);
    for piece in data.chunks(1 << 20) {
        if let Err(e) = ing.push(piece).await {
            ing.undo().await;
            return Err(e);
        }
    }
    drop(data);
    let stored = ing.finish().await?;
    finish_upload(&api, stored, upload).await
}

fn check_upload_query(cq: &UploadOptions) -> Result<(), ApiError> {
    if let Some(e) = cq.energy {
        if !(e.is_finite() && (0.0..=1000.0).contains(&e)) {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadEnergy, "energy must be within 0..1000"));
        }
    }
    if cq.copies_timeout_ms.is_some_and(|t| t > MAX_COPIES_TIMEOUT_MS) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadCopies,
            format!("copies_timeout_ms must be at most {MAX_COPIES_TIMEOUT_MS}"),
        ));
    }
    if cq.copies == Some(0) || cq.copies.is_some_and(|c| c > ryx_core::blobs::MAX_HOLDERS + 1) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadCopies,
            format!("copies must be within 1..={}", ryx_core::blobs::MAX_HOLDERS + 1),
        ));
    }
    Ok(())
}

/// Starts an upload's replication and custody, and answers once it has its
/// copies: an acknowledged upload is kept, `copies` times, until it is
/// deleted (`DELETE /v1/blobs/{hash}`) or its `keep_s` runs out.
async fn finish_upload(api: &Api, stored: Stored, cq: UploadOptions) -> ApiResult {
    let energy = cq.energy;
    let timeout_ms = cq.copies_timeout_ms.unwrap_or(DEFAULT_COPIES_TIMEOUT_MS);
    let replicate = energy != Some(0.0);
    let hashes: Vec<String> = stored.chunks.iter().map(|r| r.hash.to_string()).collect();
    let refs = stored.chunks.clone();
    let whole = stored.hash.clone();
    let k = if replicate { cq.copies.unwrap_or(DEFAULT_COPIES) } else { 1 };
    let until = cq.keep_s.map_or(0, |secs| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        (now.as_millis() as u64).saturating_add(secs.saturating_mul(1000))
    });
    api.handle
        .call(move |s| {
            let now = s.clock.now();
            for r in &refs {
                s.node.blob_unpin(&r.hash, UPLOAD_PIN);
            }
            if replicate {
                s.node.replicate_upload(now, refs.clone(), energy);
            }
            // The manifest (several chunks) is kept here. A one-chunk upload
            // is its own chunk: keeping it once more here would replace
            // its custody of k copies by one.
            let manifest = refs.iter().all(|r| r.hash != whole);
            s.node.keep(now, refs, k, until);
            if let Some(m) = s.node.blob(&whole).map(|m| m.size).filter(|_| manifest) {
                s.node.keep(now, vec![BlobRef { hash: Hash::from(whole), size: m }], 1, until);
            }
        })
        .await
        .map_err(ApiError::unavailable)?;
    let (copies, wanted) = wait_for_copies(api, hashes, cq, timeout_ms, replicate).await?;
    Ok((
        StatusCode::CREATED,
        Json(Uploaded {
            chunks: stored.chunks.len(),
            copies,
            copies_wanted: wanted,
            hash: stored.hash.into(),
            size: stored.size,
        }),
    )
        .into_response())
}

/// Waits until every chunk has the wanted number of confirmed keepers (its
/// custody: copies that will not be evicted and are restored when a keeper
/// dies) or the timeout passes. The target is capped by the nodes this one
/// knows of. Returns the fewest copies any chunk has and the target.
async fn wait_for_copies(
    api: &Api,
    hashes: Vec<String>,
    cq: UploadOptions,
    timeout_ms: u64,
    replicate: bool,
) -> Result<(usize, usize), ApiError> {
    let want = cq.copies.unwrap_or(DEFAULT_COPIES);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        let hs = hashes.clone();
        let (least, nodes) = api
            .handle
            .call(move |s| {
                // Nodes known: from the diffused topology, or (before it
                // has arrived) from the neighbour and passive views.
                let views = 1 + s.node.active_len() + s.node.passive_peers().len();
                let nodes = s.node.topology(s.clock.now()).nodes.len().max(views);
                let least = hs.iter().map(|h| s.node.kept_copies(h)).min().unwrap_or(0);
                (least, nodes)
            })
            .await
            .map_err(ApiError::unavailable)?;
        let target = if replicate { want.min(nodes.max(1)) } else { 1 };
        if least >= target || tokio::time::Instant::now() >= deadline {
            return Ok((least, target));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /v1/blobs`: what this node holds.
pub async fn list_blobs(State(api): State<Api>) -> ApiResult {
    let v = api
        .handle
        .call(|s| {
            let ryx_core::blobs::BlobUsage { blobs: count, used, capacity: cap, pinned } = s.node.blob_usage();
            let blobs: Vec<BlobEntry> = s
                .node
                .blobs()
                .map(|(h, m)| BlobEntry {
                    durable: m.durable,
                    energy: m.energy,
                    hash: h.as_str().into(),
                    holders: m.holders.iter().map(|x| Holder { http: x.http, node: api_id(x.node) }).collect(),
                    keep_origin: s.node.custody_of(h).map(|(_, o)| api_id(o)),
                    kept_copies: s.node.custody_of(h).map(|_| s.node.kept_copies(h)),
                    kind: blob_kind(m.kind),
                    size: m.size,
                })
                .collect();
            BlobList { blobs, bytes: used, capacity: cap, count, pinned }
        })
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(v).into_response())
}

fn blob_kind(k: BlobKind) -> ryx_api::BlobKind {
    match k {
        BlobKind::Chunk => ryx_api::BlobKind::Chunk,
        BlobKind::Manifest => ryx_api::BlobKind::Manifest,
        BlobKind::Partial => ryx_api::BlobKind::Partial,
        BlobKind::Result => ryx_api::BlobKind::Result,
    }
}

/// `DELETE /v1/blobs/{hash}`: at the node that uploaded it, ends the
/// custody of an upload (its chunks and manifest) everywhere and drops the
/// copies held here (those a running job reads stay until it ends). A copy
/// kept here for another node's upload can only be deleted at that node.
pub async fn delete_blob(State(api): State<Api>, Path(hash): Path<String>) -> ApiResult {
    if !is_hash(&hash) {
        return Err(bad_hash(&hash));
    }
    let h = hash.clone();
    let r = api
        .handle
        .call(move |s| {
            let Some(size) = s.node.blob(&h).map(|m| m.size) else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorCode::NotFound,
                    format!("blob {h} is not held here"),
                ));
            };
            let mut all: Vec<String> = s.store.chunks_of(&h, size).into_iter().map(|c| String::from(c.hash)).collect();
            if s.store.is_manifest(&h) {
                all.push(h.clone());
            }
            let me = s.node.id();
            if let Some((_, origin)) = all.iter().filter_map(|x| s.node.custody_of(x)).find(|(_, o)| *o != me) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::KeptForAnother,
                    format!("blob {h} is kept here for node {origin}'s upload; delete it there"),
                ));
            }
            let released = s.node.release(s.clock.now(), &all);
            let mut dropped = 0;
            for x in &all {
                let in_use = s.node.blob(x).is_none_or(|_| s.node.blob_pinned(x));
                if !in_use && !s.store.listed_elsewhere(x, &h) {
                    s.node.blob_remove(x);
                    s.store.remove(x);
                    dropped += 1;
                }
            }
            Ok(Deleted { dropped, hash: h.into(), released })
        })
        .await
        .map_err(ApiError::unavailable)??;
    Ok(Json(r).into_response())
}

#[derive(Deserialize, Default)]
/// Query of `GET /v1/blobs/{hash}`.
pub struct BlobQuery {
    /// Return a manifest itself rather than the content it lists.
    #[serde(default)]
    manifest: bool,
}

/// `GET`/`HEAD /v1/blobs/{hash}`: the bytes (a manifest's content is
/// reassembled from its chunks).
pub async fn get_blob(State(api): State<Api>, Path(hash): Path<String>, Query(q): Query<BlobQuery>) -> ApiResult {
    if !is_hash(&hash) {
        return Err(bad_hash(&hash));
    }
    let h = hash.clone();
    let found = api
        .handle
        .call(move |s| {
            let b = s.store.get(&h)?;
            if q.manifest || !s.store.is_manifest(&h) {
                return Some(Ok(vec![b]));
            }
            let parts: Option<Vec<Bytes>> = s.store.chunks_of(&h, 0).iter().map(|c| s.store.get(&c.hash)).collect();
            Some(parts.ok_or(()))
        })
        .await
        .map_err(ApiError::unavailable)?;
    let found = match found {
        None => local_chunk(&api, &hash).await?,
        other => other,
    };
    match found {
        None => Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("blob {hash} is not held here"))),
        Some(Err(())) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Incomplete,
            format!("not every chunk of {hash} is held here; fetch its chunks (?manifest=true lists them)"),
        )),
        Some(Ok(parts)) => {
            // A manifest's content is streamed chunk by chunk (each a
            // shared handle on the stored bytes): never assembled in memory.
            let len: usize = parts.iter().map(|p| p.len()).sum();
            let body = if parts.len() == 1 {
                Body::from(parts.into_iter().next().unwrap_or_default())
            } else {
                Body::from_stream(futures_util::stream::iter(parts.into_iter().map(Ok::<_, std::convert::Infallible>)))
            };
            // The length is known: say so (no chunked framing).
            Ok((
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (header::CONTENT_LENGTH, len.to_string()),
                ],
                body,
            )
                .into_response())
        }
    }
}

/// A chunk of this node's own files, read from disk and checked against
/// its name (`None`: not one of them).
async fn local_chunk(api: &Api, hash: &str) -> Result<Option<Result<Vec<Bytes>, ()>>, ApiError> {
    let local = api.handle.call(|s| s.source_set.local.clone()).await.map_err(ApiError::unavailable)?;
    let Some((path, chunk)) = local.locate(hash) else { return Ok(None) };
    let read = tokio::task::spawn_blocking(move || crate::sources::read_chunk(&path, &chunk))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, e.to_string()))?;
    match read {
        Ok(bytes) => Ok(Some(Ok(vec![Bytes::from(bytes)]))),
        Err(e) => {
            // The file changed under the chunk: it is not held any more.
            tracing::warn!(%hash, "source chunk unreadable: {e}");
            Ok(None)
        }
    }
}

/// Replicas per unit of a job that does not say.
const DEFAULT_REDUNDANCY: u8 = 2;

/// `POST /v1/jobs`: starts a job homed on this node.
pub async fn submit_job(State(api): State<Api>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body = body.map_err(crate::http::body_error)?;
    let req: SubmitJob = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadJson,
            format!("expected {{\"kind\",\"inputs\":[hash...],\"params\"?,\"redundancy\"?,\"energy\"?}}: {e}"),
        )
    })?;
    if let Err(e) = ryx_compute::JobSpec::new(&req.kind, &req.params) {
        let code = if req.kind.parse::<ryx_compute::JobKind>().is_err() {
            ErrorCode::UnknownKind
        } else {
            ErrorCode::BadParams
        };
        return Err(ApiError::new(StatusCode::BAD_REQUEST, code, e.to_string()));
    }
    if let Some(name) = req.dataset.clone() {
        return submit_dataset_job(&api, req, &name).await;
    }
    if req.inputs.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::NoInputs,
            "a job needs at least one input blob, or a dataset",
        ));
    }
    if let Some(h) = req.inputs.iter().find(|h| !is_hash(h.as_str())) {
        return Err(bad_hash(h.as_str()));
    }
    // Inputs held here, as chunks; the others are looked for at other nodes.
    let inputs = req.inputs.clone();
    let here: Vec<Option<Vec<BlobRef>>> = api
        .handle
        .call(move |s| {
            inputs
                .iter()
                .map(|h| s.node.blob(h.as_str()).map(|meta| s.store.chunks_of(h.as_str(), meta.size)))
                .collect()
        })
        .await
        .map_err(ApiError::unavailable)?;
    let elsewhere = here.iter().filter(|c| c.is_none()).count();
    if elsewhere > MAX_REMOTE_INPUTS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnknownInput,
            format!(
                "{elsewhere} inputs are not held on this node; at most {MAX_REMOTE_INPUTS} are looked for elsewhere"
            ),
        ));
    }
    let mut chunks: Vec<(BlobRef, Vec<SocketAddr>)> = Vec::new();
    for (h, held) in req.inputs.iter().zip(here) {
        match held {
            Some(cs) => chunks.extend(cs.into_iter().map(|c| (c, Vec::new()))),
            None => {
                let (cs, at) = find_input(&api, h.as_str()).await?;
                chunks.extend(cs.into_iter().map(|c| (c, vec![at])));
            }
        }
    }
    let r = start(
        &api,
        req,
        Box::new(move |node, now, kind, params, r, e| node.submit_job_from(now, kind, params, chunks, r, e)),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Submitted { job_id: r.into(), dataset: None, unreachable: Vec::new(), from_copies: Vec::new() }),
    )
        .into_response())
}

/// The core call that starts a job, given the node, the time, the kind,
/// the parameters, the redundancy and the energy.
pub(crate) type Starter = dyn FnOnce(
        &mut ryx_core::Node,
        ryx_core::Time,
        &str,
        Value,
        u8,
        Option<f64>,
    ) -> Result<String, ryx_core::jobs::SubmitError>
    + Send;

/// Starts a job on the event loop with `req`'s kind, parameters,
/// redundancy (default 2) and energy.
pub(crate) async fn start(api: &Api, req: SubmitJob, f: Box<Starter>) -> Result<String, ApiError> {
    api.handle
        .call(move |s| {
            let now = s.clock.now();
            let r = req.redundancy.unwrap_or(DEFAULT_REDUNDANCY);
            f(&mut s.node, now, &req.kind, req.params, r, req.energy)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::Invalid, e.to_string()))
        })
        .await
        .map_err(ApiError::unavailable)?
}

/// Inputs of one job looked for at other nodes at most.
const MAX_REMOTE_INPUTS: usize = 16;
/// Nodes asked for one input at most (nearest first).
const INPUT_FANOUT: usize = 8;

/// The `k` other nodes of this node's topology nearest it (fewest hops,
/// then node id) with an HTTP address, `first` (if known) before all.
async fn nearest(
    api: &Api,
    first: Option<ryx_core::NodeId>,
    k: usize,
) -> anyhow::Result<Vec<(ryx_core::NodeId, SocketAddr)>> {
    api.handle
        .call(move |s| {
            let mut nodes: Vec<(u32, ryx_core::NodeId, SocketAddr)> = s
                .node
                .topology(s.clock.now())
                .nodes
                .iter()
                .filter(|n| n.hops > 0)
                .filter_map(|n| Some((if Some(n.node_id) == first { 0 } else { n.hops }, n.node_id, n.http?)))
                .collect();
            nodes.sort();
            nodes.into_iter().take(k).map(|(_, n, a)| (n, a)).collect()
        })
        .await
}

/// Finds an input this node does not hold: asks the nearest nodes of its
/// topology (each once it proved to be a member) for the blob, as a
/// manifest if it is one. Returns its chunks and the node that has them.
async fn find_input(api: &Api, hash: &str) -> Result<(Vec<BlobRef>, SocketAddr), ApiError> {
    let candidates = nearest(api, None, INPUT_FANOUT).await.map_err(ApiError::unavailable)?;
    let limit = api.limits.chunk_size.saturating_mul(2).max(64 << 20);
    for (node, addr) in candidates {
        if crate::members::prove(&api.handle, addr, node).await.is_err() {
            continue;
        }
        let path = format!("/v1/blobs/{hash}?manifest=true");
        let Ok(body) = client::get(addr, &path, limit, Duration::from_secs(10)).await else { continue };
        // An upload's manifest lists its chunks, each checked against its
        // name when a worker fetches it; a single-chunk blob is checked
        // here.
        let chunks = match crate::store::parse_manifest(&body) {
            Ok(m) => m.chunks,
            Err(_) if ryx_compute::digest_hex(&body) == hash => {
                vec![BlobRef { hash: Hash::from(hash), size: body.len() as u64 }]
            }
            Err(_) => continue, // not the blob it was asked for
        };
        return Ok((chunks, addr));
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::UnknownInput,
        format!("input {hash} is held neither on this node nor on the {INPUT_FANOUT} nearest it asked; upload it (PUT /v1/blobs)"),
    ))
}

/// A job over dataset `name`, wherever its parts lie.
async fn submit_dataset_job(api: &Api, req: SubmitJob, name: &str) -> ApiResult {
    if !req.inputs.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::Invalid,
            "a job names either inputs or a dataset, not both",
        ));
    }
    crate::datasets::check_name(name)?;
    let g = crate::datasets::gather(&api.handle, name).await?;
    if g.chunks.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::NoInputs,
            format!("dataset {name:?} holds no complete line yet"),
        ));
    }
    let dataset = Some(crate::datasets::view(&g.tag));
    let unreachable = g.unreachable.iter().map(|n| api_id(*n)).collect();
    let from_copies = g.from_copies.iter().map(|n| api_id(*n)).collect();
    let r = start(
        api,
        req,
        Box::new(move |node, now, kind, params, r, e| {
            node.submit_dataset_job(now, kind, params, g.chunks, r, e, g.tag)
        }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(Submitted { job_id: r.into(), dataset, unreachable, from_copies })).into_response())
}

/// `GET /v1/jobs`: every job this node knows of, newest first.
pub async fn list_jobs(State(api): State<Api>) -> ApiResult {
    let mut jobs = api.handle.call(|s| s.node.jobs()).await.map_err(ApiError::unavailable)?;
    jobs.sort_by(|a, b| b.created.cmp(&a.created).then(a.job_id.cmp(&b.job_id)));
    let jobs = jobs.iter().map(|j| job_view(j, None)).collect();
    Ok(Json(JobList { jobs }).into_response())
}

/// A job summary as the API shows it, with its result once fetched.
fn job_view(j: &JobSummary, result: Option<Value>) -> JobView {
    let st = &j.stats;
    JobView {
        error: j.error.clone(),
        home: api_id(j.home),
        home_http: j.home_http,
        job_id: j.job_id.as_str().into(),
        kind: j.kind.clone(),
        progress: Progress {
            units_done: j.units_done,
            units_total: j.units_total,
            bytes_done: j.bytes_done,
            bytes_total: j.bytes_total,
        },
        dataset: j.dataset.as_ref().map(crate::datasets::view),
        redundancy: j.redundancy,
        result,
        result_digest: j.result_digest.clone(),
        state: job_state(j.state),
        stats: ryx_api::JobStats {
            combines: st.combines,
            disagreements: st.disagreements,
            elapsed_ms: st.elapsed_ms,
            extra_replicas: st.extra_replicas,
            reissued: st.reissued,
            results: st.results,
            takeovers: st.takeovers,
            workers: st.workers,
        },
    }
}

fn job_state(s: ryx_core::jobs::JobState) -> JobState {
    match s {
        ryx_core::jobs::JobState::Running => JobState::Running,
        ryx_core::jobs::JobState::Done => JobState::Done,
        ryx_core::jobs::JobState::Failed => JobState::Failed,
        ryx_core::jobs::JobState::Cancelled => JobState::Cancelled,
    }
}

#[derive(Deserialize, Default)]
/// Query of `GET /v1/jobs/{id}`.
pub struct JobQuery {
    /// Answer from this node's knowledge only (no network search).
    #[serde(default)]
    local: bool,
}

/// `GET /v1/jobs/{id}`: progress, then the result. Any node answers: one
/// that does not know the job asks the nodes it knows of.
pub async fn get_job(State(api): State<Api>, Path(id): Path<String>, Query(q): Query<JobQuery>) -> ApiResult {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadId, "a job id is hex digits"));
    }
    let i = id.clone();
    let summary = api.handle.call(move |s| s.node.job(&i)).await.map_err(ApiError::unavailable)?;
    let Some(summary) = summary else {
        if !q.local {
            if let Some(v) = lookup_elsewhere(&api, &id).await {
                return Ok(Json(v).into_response());
            }
        }
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no job {id} is known here or nearby"),
        ));
    };
    let result = match (&summary.result_hash, summary.result_size) {
        (Some(h), size) => Some(fetch_result(&api, h, size, &summary.result_holders).await?),
        _ => None,
    };
    Ok(Json(job_view(&summary, result)).into_response())
}

/// Nodes asked about a job this node does not know, at most.
const LOOKUP_FANOUT: usize = 4;
/// A job not found elsewhere is not looked for again for this long.
const LOOKUP_NEGATIVE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

static LOOKUP_MISSES: std::sync::Mutex<Option<std::collections::HashMap<String, std::time::Instant>>> =
    std::sync::Mutex::new(None);

/// Asks other nodes about a job this node does not know: its creator first
/// (the job id starts with its node id), then a few others, each only once
/// it has proven to be a member. Bounded: a few lookups at once, a few
/// nodes each, and an id not found is not looked for again at once (one
/// request must not become a storm of requests).
async fn lookup_elsewhere(api: &Api, id: &str) -> Option<JobView> {
    {
        let g = LOOKUP_MISSES.lock().unwrap_or_else(|p| p.into_inner());
        if g.as_ref().and_then(|m| m.get(id)).is_some_and(|t| t.elapsed() < LOOKUP_NEGATIVE_TTL) {
            return None;
        }
    }
    let Ok(_permit) = api.lookups.clone().try_acquire_owned() else {
        Refusal::LookupBusy.count();
        return None;
    };
    let creator = ryx_core::jobs::job_creator(id);
    let candidates = nearest(api, creator, LOOKUP_FANOUT).await.ok()?;
    for (node, addr) in candidates {
        if crate::members::prove(&api.handle, addr, node).await.is_err() {
            continue;
        }
        let path = format!("/v1/jobs/{id}?local=true");
        if let Ok(b) = client::get(addr, &path, 16 << 20, Duration::from_secs(5)).await {
            if let Ok(v) = serde_json::from_slice::<JobView>(&b) {
                if v.job_id == id {
                    return Some(v);
                }
            }
        }
    }
    let mut g = LOOKUP_MISSES.lock().unwrap_or_else(|p| p.into_inner());
    let m = g.get_or_insert_with(Default::default);
    if m.len() >= 1024 {
        m.retain(|_, t| t.elapsed() < LOOKUP_NEGATIVE_TTL);
        if m.len() >= 1024 {
            m.clear();
        }
    }
    m.insert(id.to_string(), std::time::Instant::now());
    None
}

pub(crate) async fn fetch_result(
    api: &Api,
    hash: &str,
    size: Option<u64>,
    holders: &[SocketAddr],
) -> Result<Value, ApiError> {
    let h = hash.to_string();
    let local = api.handle.call(move |s| s.store.get(&h)).await.map_err(ApiError::unavailable)?;
    let bytes = match local {
        Some(b) => b,
        None => {
            let b = client::fetch_blob(hash, size, holders).await.map_err(|e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::ResultUnavailable,
                    format!("cannot fetch the result: {e}"),
                )
            })?;
            let (h, keep) = (hash.to_string(), b.clone());
            let _ = api
                .handle
                .call(move |s| {
                    let now = s.clock.now();
                    if s.node.blob_put(now, &h, keep.len() as u64, BlobKind::Result, false).is_ok() {
                        s.store.insert(h, keep);
                    }
                })
                .await;
            b
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::BadResult,
            format!("stored result is not JSON: {e}"),
        )
    })
}

/// `DELETE /v1/jobs/{id}`: cancels the job (at its home).
pub async fn cancel_job(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    let i = id.clone();
    let (cancelled, summary) = api
        .handle
        .call(move |s| {
            let now = s.clock.now();
            // A job that has already ended stays as it ended.
            if s.node.job(&i).is_some_and(|j| j.state.is_final()) {
                return (false, s.node.job(&i));
            }
            (s.node.cancel_job(now, &i), s.node.job(&i))
        })
        .await
        .map_err(ApiError::unavailable)?;
    if cancelled {
        return Ok(Json(Cancelled { job_id: id.into(), state: JobState::Cancelled }).into_response());
    }
    let Some(summary) = summary else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("no job {id} is known here")));
    };
    if summary.state.is_final() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Final,
            format!("job {id} is already {:?}", summary.state),
        ));
    }
    // Ask the home to cancel it.
    let r = client::request(summary.home_http, "DELETE", &format!("/v1/jobs/{id}"), Duration::from_secs(5)).await;
    match r {
        Ok((status, body)) => Ok((
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()),
        Err(e) => Err(ApiError::new(StatusCode::BAD_GATEWAY, ErrorCode::HomeUnreachable, e.to_string())),
    }
}
