//! Query waves on the node (the protocol is `ryx_core`'s `node::wave`):
//! answering a wave for this node's own chunks of a dataset, merging
//! subtrees' answers, and starting waves for the API.
//!
//! A node answers for the chunks of its own `--source` files, never for
//! copies it keeps for others: each chunk is answered once, by the node
//! whose files it is. It remembers, per wave, the list of chunks it
//! answered for, so a later wave of the same root that names it (`pin`)
//! is answered over exactly those chunks: the two waves of a search count
//! and score the same documents even while files grow.

use crate::runtime::{Command, Handle, State};
use ryx_api::SnapshotChunk;
use ryx_compute::{ComputeError, JobSpec, Partial};
use ryx_core::node::WaveOutput;
use ryx_core::wire::WaveAnswer;
use ryx_core::NodeId;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Chunk lists answered for, kept per wave this long.
const PIN_TTL: Duration = Duration::from_secs(60);
/// Most chunk lists kept.
const MAX_PINS: usize = 512;

/// The node's side of query waves.
#[derive(Default)]
pub struct WaveState {
    /// Chunk lists answered for, by wave (root, number).
    pins: HashMap<(NodeId, u64), (String, Vec<SnapshotChunk>, Instant)>,
    /// Searches waiting for waves started here, by number.
    waiters: HashMap<u64, oneshot::Sender<WaveAnswer>>,
}

/// Merges subtrees' answers to a wave: their partials (as the job
/// engine's merge would), and which node each hit's chunk lives on, kept
/// for the chunks the merged partial still names.
pub fn merge(kind: &str, params: &Value, payloads: Vec<Value>) -> Option<Value> {
    let spec = JobSpec::new(kind, params).ok()?;
    let mut acc = None;
    let mut on = Map::new();
    for p in payloads {
        let bytes = serde_json::to_vec(p.get("partial")?).ok()?;
        acc = Some(spec.merge_next(acc, Partial::from_bytes(&bytes).ok()?).ok()?);
        if let Some(Value::Object(o)) = p.get("on") {
            on.extend(o.clone());
        }
    }
    let merged: Value = serde_json::from_slice(&acc?.to_bytes()).ok()?;
    Some(payload(merged, on))
}

fn payload(partial: Value, mut on: Map<String, Value>) -> Value {
    if !on.is_empty() {
        let text = partial.to_string();
        on.retain(|h, _| text.contains(h.as_str()));
    }
    json!({ "partial": partial, "on": on })
}

/// Carries out what the wave machinery asks of the driver.
pub fn dispatch(st: &mut State, out: WaveOutput, loop_tx: Option<mpsc::Sender<Command>>) {
    match out {
        WaveOutput::Done { qid, answer } => {
            if let Some(tx) = st.waves.waiters.remove(&qid) {
                let _ = tx.send(answer);
            }
        }
        WaveOutput::Evaluate { root, qid, dataset, kind, params, pin } => {
            let now = st.clock.now();
            let Some(loop_tx) = loop_tx.filter(|_| st.source_set.has(&dataset)) else {
                st.node.wave_answer(now, root, qid, Ok(None));
                return;
            };
            let pinned =
                pin.and_then(|p| st.waves.pins.get(&(root, p))).filter(|e| e.0 == dataset).map(|e| e.1.clone());
            let set = st.source_set.clone();
            let me = st.node.id();
            // Every chunk indexed and no file changed: scoring takes tens of
            // microseconds, so it is done here rather than on a thread of
            // its own (two thread hops per node per wave otherwise).
            let ready = pinned.clone().or_else(|| set.snapshot_if_unchanged(&dataset)).filter(|c| {
                c.iter().all(|c| {
                    blake3::Hash::from_hex(c.hash.as_str()).is_ok_and(|h| ryx_compute::search::is_indexed(h.as_bytes()))
                })
            });
            if let Some(chunks) = ready.filter(|_| matches!(kind.as_str(), "search" | "search-stats")) {
                let a = answer(me, &kind, &params, &chunks, &set).map_err(|e| {
                    tracing::warn!(dataset, "cannot answer a query wave: {e}");
                });
                st.waves.pin(root, qid, dataset, chunks);
                st.node.wave_answer(now, root, qid, a.map(Some));
                return;
            }
            tokio::task::spawn_blocking(move || {
                // Tails named here are noted as held, as a job's snapshot
                // notes them (`datasets::local_snapshot`).
                let mut tails = (Vec::new(), Vec::new());
                let chunks = match pinned {
                    Some(c) => Some(c),
                    None => set.snapshot(&dataset).map(|s| {
                        tails = (s.noted, s.forgotten);
                        s.chunks
                    }),
                };
                let answer = match &chunks {
                    Some(c) => answer(me, &kind, &params, c, &set).map(Some).map_err(|e| {
                        tracing::warn!(dataset, "cannot answer a query wave: {e}");
                    }),
                    None => Ok(None),
                };
                let cmd: Command = Box::new(move |s: &mut State| {
                    if !tails.0.is_empty() || !tails.1.is_empty() {
                        let until = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as u64 + crate::datasets::TAIL_KEEP_MS);
                        let set = s.source_set.clone();
                        set.note(s, tails.0, tails.1, until);
                    }
                    if let Some(c) = chunks {
                        s.waves.pin(root, qid, dataset, c);
                    }
                    let now = s.clock.now();
                    s.node.wave_answer(now, root, qid, answer);
                });
                let _ = loop_tx.blocking_send(cmd);
            });
        }
    }
}

impl WaveState {
    fn pin(&mut self, root: NodeId, qid: u64, dataset: String, chunks: Vec<SnapshotChunk>) {
        let now = Instant::now();
        if self.pins.len() >= MAX_PINS {
            self.pins.retain(|_, e| now.duration_since(e.2) < PIN_TTL);
            if self.pins.len() >= MAX_PINS {
                if let Some(k) = self.pins.iter().min_by_key(|(_, e)| e.2).map(|(k, _)| *k) {
                    self.pins.remove(&k);
                }
            }
        }
        self.pins.insert((root, qid), (dataset, chunks, now));
    }
}

/// This node's answer over `chunks` of its own files.
fn answer(
    me: NodeId,
    kind: &str,
    params: &Value,
    chunks: &[SnapshotChunk],
    set: &crate::sources::SourceSet,
) -> Result<WaveAnswer, ComputeError> {
    let spec = JobSpec::new(kind, params)?;
    let mut acc = None;
    let mut on = Map::new();
    let mut digest = blake3::Hasher::new();
    let mut bytes = 0u64;
    for c in chunks {
        let hex = c.hash.as_str();
        let key: [u8; 32] = blake3::Hash::from_hex(hex)
            .map_err(|_| ComputeError::Search(format!("chunk name {hex:?} is not a BLAKE3 digest")))?
            .into();
        digest.update(&key);
        digest.update(&c.offset.to_le_bytes());
        digest.update(&c.len.to_le_bytes());
        bytes = bytes.saturating_add(c.len);
        let p = spec.map_named(key, || set.read(c).map_err(|e| ComputeError::Search(e.to_string())))?;
        acc = Some(spec.merge_next(acc, p)?);
        on.insert(hex.to_string(), json!(crate::http::api_id(me)));
    }
    let payload = match acc {
        Some(p) => {
            payload(serde_json::from_slice(&p.to_bytes()).map_err(|e| ComputeError::BadPartial(e.to_string()))?, on)
        }
        None => Value::Null,
    };
    let mut d = [0u8; 8];
    d.copy_from_slice(&digest.finalize().as_bytes()[..8]);
    Ok(ryx_core::node::holder_answer(me, u64::from_le_bytes(d), chunks.len() as u64, bytes, payload))
}

/// Starts a wave from this node and waits for its answer (`None`: no
/// answer within `budget` and a grace second).
pub async fn run(
    h: &Handle,
    dataset: &str,
    kind: &str,
    params: Value,
    pin: Option<u64>,
    budget: Duration,
    tree: bool,
) -> anyhow::Result<(u64, Option<WaveAnswer>)> {
    let (tx, rx) = oneshot::channel();
    let (dataset, kind) = (dataset.to_string(), kind.to_string());
    let qid = h
        .call(move |s| {
            let now = s.clock.now();
            let q = s.node.start_wave(now, &dataset, &kind, params, pin, budget, tree);
            s.waves.waiters.insert(q, tx);
            q
        })
        .await?;
    let answer = tokio::time::timeout(budget + Duration::from_secs(1), rx).await.ok().and_then(Result::ok);
    if answer.is_none() {
        let _ = h.call(move |s| s.waves.waiters.remove(&qid)).await;
    }
    Ok((qid, answer))
}
