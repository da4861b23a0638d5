//! Jobs over datasets that live in the nodes' own files (`--source`).
//!
//! A node that follows a dataset announces it in an info item
//! (`ryx/source/NAME/ID`, see [`crate::sources`]). A job over the dataset
//! may be sent to any node: that node looks up the announcements it holds,
//! asks each holder for its snapshot (`GET /v1/sources/NAME/snapshot`: the
//! chunks it holds right now, tails included), orders every chunk
//! canonically — node id, then path, then offset — and starts an ordinary
//! job over them whose first replica of each unit is sent to the chunk's
//! holder ([`ryx_core::Node::submit_dataset_job`]). The result therefore
//! equals `ryx-node exec` over the holders' files concatenated in that
//! order, and the job names its snapshot (a digest of the ordered list).

use crate::client;
use crate::http::{api_id, ApiError, ApiResult};
use crate::runtime::Handle;
use crate::sources::{SourceAnnounce, SOURCE_KEY_PREFIX};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use ryx_api::{DatasetHolder, DatasetSnapshot, DatasetView, Datasets, ErrorCode, SnapshotChunk, SourceSnapshot};
use ryx_core::blobs::Hash;
use ryx_core::jobs::{BlobRef, DatasetTag};
use ryx_core::wire::PeerInfo;
use ryx_core::NodeId;
use serde::Deserialize as _;
use std::net::SocketAddr;
use std::time::Duration;

/// How long other nodes keep copies of a snapshot's tails, in ms.
pub const TAIL_KEEP_MS: u64 = 3_600_000;

/// Holders of one dataset a job asks for their snapshots at most.
pub const MAX_HOLDERS: usize = 1024;
/// Snapshots fetched at once.
const FETCH_AT_ONCE: usize = 8;
/// Chunks in a dataset job at most (as in any job: the job engine's
/// `max_units`), and so in one holder's snapshot.
pub const MAX_CHUNKS: usize = 65_536;
/// Largest snapshot a holder may send: [`MAX_CHUNKS`] entries of ~250 bytes.
const MAX_SNAPSHOT_BYTES: usize = 16 << 20;
/// Longest file path a snapshot entry may name.
const MAX_PATH: usize = 4096;

/// `GET /v1/sources/{name}/snapshot`: this node's chunks of a dataset now.
pub async fn snapshot(State(h): State<Handle>, Path(name): Path<String>) -> ApiResult {
    match local_snapshot(&h, &name).await? {
        Some(s) => Ok(Json(s).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownDataset,
            format!("this node holds nothing of dataset {name:?}"),
        )),
    }
}

/// This node's snapshot of dataset `name` (`None`: it follows no such
/// source). The tails it names are noted as held, so tokens for them run
/// here and the blob endpoint serves them.
pub async fn local_snapshot(h: &Handle, name: &str) -> Result<Option<SourceSnapshot>, ApiError> {
    let (set, me) = h.call(|s| (s.source_set.clone(), s.node.id())).await.map_err(ApiError::unavailable)?;
    if !set.has(name) {
        return Ok(None);
    }
    let n = name.to_string();
    let taken = tokio::task::spawn_blocking(move || set.snapshot(&n))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, e.to_string()))?;
    let Some(snap) = taken else { return Ok(None) };
    let (noted, forgotten) = (snap.noted, snap.forgotten);
    // Tails are kept by others too, for an hour: long enough for the jobs
    // that named them, not forever (the sealed chunks replace them).
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64 + TAIL_KEEP_MS);
    h.call(move |s| {
        let set = s.source_set.clone();
        set.note(s, noted, forgotten, until)
    })
    .await
    .map_err(ApiError::unavailable)?;
    Ok(Some(SourceSnapshot { node: api_id(me), name: name.to_string(), chunks: snap.chunks }))
}

/// `400 unknown_dataset` unless `name` may name a dataset.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    if crate::sources::is_dataset_name(name) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::UnknownDataset,
        format!("{name:?} is not a dataset name (1 to 64 of A-Z a-z 0-9 . _ -)"),
    ))
}

/// A dataset snapshot gathered from its holders, in canonical order.
pub struct Gathered {
    /// Every chunk with its holder's UDP and HTTP addresses.
    pub chunks: Vec<(BlobRef, PeerInfo, SocketAddr)>,
    /// What the job will name.
    pub tag: DatasetTag,
    /// Holders announced but not reachable, whose chunks are left out.
    pub unreachable: Vec<NodeId>,
    /// Holders that did not answer, whose sealed chunks are in the
    /// snapshot all the same, from the list other nodes keep of them
    /// ([`crate::sources::SourceAnnounce::copy`]); their open tails are not.
    pub from_copies: Vec<NodeId>,
    /// Bytes the holders announced (or, when more, listed), against which
    /// the snapshot's bytes tell the share covered.
    pub announced_bytes: u64,
}

impl Gathered {
    /// The share of the dataset's bytes the snapshot covers (1 when every
    /// holder answered, or its copies did for all it had sealed).
    pub fn coverage(&self) -> serde_json::Value {
        let share = if self.announced_bytes == 0 { 1.0 } else { self.tag.bytes as f64 / self.announced_bytes as f64 };
        serde_json::json!({
            "share": share.min(1.0),
            "bytes": self.tag.bytes,
            "announced_bytes": self.announced_bytes,
            "from_copies": self.from_copies.iter().map(|n| api_id(*n)).collect::<Vec<_>>(),
            "missing": self.unreachable.iter().map(|n| api_id(*n)).collect::<Vec<_>>(),
        })
    }
}

/// Gathers dataset `name`'s snapshot from every node known to hold part of
/// it. Fails with `unknown_dataset` when no node is, and with
/// `dataset_unavailable` when none of those answers.
pub async fn gather(h: &Handle, name: &str) -> Result<Gathered, ApiError> {
    let (me, holders) = holders(h, name).await?;
    use futures_util::StreamExt;
    let mut fetched = futures_util::stream::iter(holders.into_iter().map(|a| {
        let h = h.clone();
        let name = name.to_string();
        async move {
            let r = match holder_snapshot(&h, &a, me, &name).await {
                Ok(list) => Ok((list, false)),
                Err(e) => match &a.copy {
                    Some(copy) => match copy_snapshot(&h, &a, copy, &name).await {
                        Ok(list) => {
                            tracing::info!(dataset = %name, node = %a.node, "holder did not answer ({e}); its chunks come from copies");
                            Ok((list, true))
                        }
                        Err(e2) => Err(format!("{e}; its list's copies: {e2}")),
                    },
                    None => Err(e),
                },
            };
            (a, r)
        }
    }))
    .buffered(FETCH_AT_ONCE);
    let mut chunks = Vec::new();
    let mut unreachable = Vec::new();
    let mut from_copies = Vec::new();
    let mut announced_bytes = 0u64;
    let mut digest = blake3::Hasher::new();
    let mut nodes = 0u32;
    let mut bytes = 0u64;
    while let Some((a, r)) = fetched.next().await {
        announced_bytes = announced_bytes.saturating_add(a.bytes);
        let list = match r {
            Ok((list, copied)) => {
                if copied {
                    from_copies.push(a.node);
                }
                let listed: u64 = list.iter().map(|c| c.len).sum();
                // A live holder's files grew since it announced.
                if !copied && listed > a.bytes {
                    announced_bytes = announced_bytes.saturating_add(listed - a.bytes);
                }
                list
            }
            Err(e) => {
                tracing::warn!(dataset = name, node = %a.node, "holder left out of the snapshot: {e}");
                unreachable.push(a.node);
                continue;
            }
        };
        if list.is_empty() {
            continue;
        }
        if chunks.len() + list.len() > MAX_CHUNKS {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::Invalid,
                format!("dataset {name:?} has more than {MAX_CHUNKS} chunks, more than a job may have"),
            ));
        }
        nodes += 1;
        let owner = PeerInfo { id: a.node, addr: a.udp };
        let node_text = a.node.to_string();
        for c in list {
            for part in [node_text.as_bytes(), c.path.as_bytes(), c.hash.as_str().as_bytes()] {
                digest.update(&(part.len() as u64).to_le_bytes());
                digest.update(part);
            }
            digest.update(&c.offset.to_le_bytes());
            digest.update(&c.len.to_le_bytes());
            bytes = bytes.saturating_add(c.len);
            chunks.push((BlobRef { hash: Hash::from(c.hash.as_str()), size: c.len }, owner, a.http));
        }
    }
    if chunks.is_empty() && !unreachable.is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::DatasetUnavailable,
            format!("no holder of dataset {name:?} answered ({} announced)", unreachable.len()),
        ));
    }
    let tag = DatasetTag { name: name.to_string(), snapshot: digest.finalize().to_hex().to_string(), nodes, bytes };
    Ok(Gathered { chunks, tag, unreachable, from_copies, announced_bytes })
}

/// This node's id, and the holders of dataset `name` it has heard
/// announce it (at most [`MAX_HOLDERS`], by id); `unknown_dataset` when
/// none.
pub async fn holders(h: &Handle, name: &str) -> Result<(NodeId, Vec<SourceAnnounce>), ApiError> {
    let prefix = format!("{SOURCE_KEY_PREFIX}{name}/");
    let (me, mut holders) = h
        .call(move |s| {
            let holders: Vec<SourceAnnounce> = announcements(&s.node, &prefix).map(|(_, a)| a).collect();
            (s.node.id(), holders)
        })
        .await
        .map_err(ApiError::unavailable)?;
    holders.sort_by_key(|a| a.node);
    holders.truncate(MAX_HOLDERS);
    if holders.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownDataset,
            format!("no node is known to hold dataset {name:?} (a node announces its --source within a second)"),
        ));
    }
    Ok((me, holders))
}

/// The source announcements under `prefix` this node holds, each with the
/// dataset name (the key between `ryx/source/` and the node id). Only a
/// node's own word on what it holds counts: the key's node id, the
/// announcement's and the item's origin must agree.
fn announcements<'a>(
    node: &'a ryx_core::Node,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a str, SourceAnnounce)> + 'a {
    node.info_items().filter(move |(k, _)| k.starts_with(prefix)).filter_map(|(k, it)| {
        let (name, id) = k[SOURCE_KEY_PREFIX.len()..].rsplit_once('/')?;
        let a = SourceAnnounce::deserialize(&*it.value).ok()?;
        (id == a.node.to_string() && it.origin == a.node && !name.is_empty()).then_some((name, a))
    })
}

/// `GET /v1/datasets`: every dataset this node has heard announced, with
/// each holder's files, chunks and bytes, by name then node id.
pub async fn list(State(h): State<Handle>) -> ApiResult {
    let mut all: Vec<(String, SourceAnnounce)> = h
        .call(|s| announcements(&s.node, SOURCE_KEY_PREFIX).map(|(n, a)| (n.to_string(), a)).collect())
        .await
        .map_err(ApiError::unavailable)?;
    all.sort_by(|a, b| (&a.0, a.1.node).cmp(&(&b.0, b.1.node)));
    let mut datasets: Vec<DatasetView> = Vec::new();
    for (name, a) in all {
        if datasets.last().is_none_or(|d| d.name != name) {
            datasets.push(DatasetView { bytes: 0, chunks: 0, files: 0, holders: Vec::new(), name });
        }
        let d = datasets.last_mut().expect("pushed above");
        d.bytes = d.bytes.saturating_add(a.bytes);
        d.chunks = d.chunks.saturating_add(a.chunks);
        d.files = d.files.saturating_add(a.files);
        d.holders.push(DatasetHolder {
            bytes: a.bytes,
            chunks: a.chunks,
            files: a.files,
            http: a.http.to_string(),
            node: api_id(a.node),
            copy: a.copy.as_ref().map(|c| ryx_api::HolderCopy {
                hash: c.hash.as_str().into(),
                chunks: c.chunks,
                bytes: c.bytes,
            }),
        });
    }
    Ok(Json(Datasets { datasets }).into_response())
}

/// One holder's snapshot, checked: in path-then-offset order, each entry a
/// chunk name, and the holder the one announced.
async fn holder_snapshot(h: &Handle, a: &SourceAnnounce, me: NodeId, name: &str) -> Result<Vec<SnapshotChunk>, String> {
    let snap = if a.node == me {
        local_snapshot(h, name).await.map_err(|e| format!("{e:?}"))?.ok_or("no longer follows it")?
    } else {
        crate::members::prove(h, a.http, a.node).await?;
        let path = format!("/v1/sources/{}/snapshot", ryx_api::encode_segment(name));
        let body =
            client::get(a.http, &path, MAX_SNAPSHOT_BYTES, Duration::from_secs(20)).await.map_err(|e| e.to_string())?;
        serde_json::from_slice::<SourceSnapshot>(&body).map_err(|e| format!("not a snapshot: {e}"))?
    };
    check_snapshot(snap, a, name)
}

/// Nodes asked at most for the kept list of a holder that did not answer.
const MAX_COPY_SEARCH: usize = 128;

/// A holder's list of sealed chunks from the copies other nodes keep of it
/// (it did not answer): fetched by its name from the holder's former
/// neighbours first (custody places copies near their origin), then from
/// every other node known, nearest first; checked as a holder's own.
async fn copy_snapshot(
    h: &Handle,
    a: &SourceAnnounce,
    copy: &crate::sources::SnapshotCopy,
    name: &str,
) -> Result<Vec<SnapshotChunk>, String> {
    if !ryx_core::blobs::is_hash(&copy.hash) || copy.size as usize > MAX_SNAPSHOT_BYTES {
        return Err("the announced list is not a blob name or is too large".into());
    }
    let owner = a.node;
    let candidates = h
        .call(move |s| {
            let topo = s.node.topology(s.clock.now());
            let near: std::collections::HashSet<NodeId> = topo
                .links
                .iter()
                .filter_map(|l| {
                    (l.source == owner).then_some(l.target).or_else(|| (l.target == owner).then_some(l.source))
                })
                .collect();
            let mut c: Vec<(bool, u32, SocketAddr)> = topo
                .nodes
                .iter()
                .filter(|n| n.node_id != owner)
                .filter_map(|n| Some((!near.contains(&n.node_id), n.hops, n.http?)))
                .collect();
            c.sort();
            c.into_iter().map(|(_, _, a)| a).take(MAX_COPY_SEARCH).collect::<Vec<_>>()
        })
        .await
        .map_err(|e| e.to_string())?;
    let body = client::fetch_blob(&copy.hash, Some(copy.size), &candidates).await.map_err(|e| e.to_string())?;
    let snap = serde_json::from_slice::<SourceSnapshot>(&body).map_err(|e| format!("not a snapshot: {e}"))?;
    check_snapshot(snap, a, name)
}

/// A snapshot checked: of holder `a` and dataset `name`, in path-then-offset
/// order, each entry a chunk name.
fn check_snapshot(snap: SourceSnapshot, a: &SourceAnnounce, name: &str) -> Result<Vec<SnapshotChunk>, String> {
    if snap.node != api_id(a.node) || snap.name != name {
        return Err(format!("answered for {} / {}", snap.node, snap.name));
    }
    if snap.chunks.len() > MAX_CHUNKS {
        return Err(format!("{} chunks, more than {MAX_CHUNKS}", snap.chunks.len()));
    }
    let ordered = snap.chunks.windows(2).all(|w| (&w[0].path, w[0].offset) < (&w[1].path, w[1].offset));
    let sane = |c: &SnapshotChunk| ryx_core::blobs::is_hash(c.hash.as_str()) && c.len > 0 && c.path.len() <= MAX_PATH;
    if !ordered || !snap.chunks.iter().all(sane) {
        return Err("a snapshot out of order, naming no chunk, or with a path too long".into());
    }
    Ok(snap.chunks)
}

/// The API's view of a job's dataset tag.
pub fn view(t: &DatasetTag) -> DatasetSnapshot {
    DatasetSnapshot { name: t.name.clone(), snapshot: t.snapshot.clone(), nodes: t.nodes, bytes: t.bytes }
}
