//! `GET /v1/events`: a live Server-Sent Events stream for dashboards.
//!
//! Events as they happen (`event: node`: neighbour up/down, suspicion,
//! item delivered), a `sample` every second (status, counters, jobs) and
//! the learned `topology` every other second. The stream costs the node
//! nothing while no one listens.
//!
//! `GET /v1/events/recent`: the last [`RECENT_MAX`] membership and item
//! events (what the node logs), with their wall-clock times, so the
//! dashboard can show any node's recent history at once.

use crate::api_jobs::Api;
use crate::http::ApiError;
use crate::refusals::Refusal;
use crate::runtime::{Handle, State};
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use ryx_api::{Counters, ErrorCode};
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast::error::RecvError;

pub(crate) fn sample(s: &State) -> String {
    let now = s.clock.now();
    let st = s.node.status(now);
    let m = s.node.metrics();
    let mut jobs = s.node.jobs();
    jobs.sort_by_key(|j| std::cmp::Reverse(j.created));
    jobs.truncate(50);
    let rss = crate::metrics::process_stats();
    let counters = Counters {
        bytes_in: s.io.bytes_in,
        bytes_out: s.io.bytes_out,
        cpu_seconds: rss.map(|r| r.1),
        failures_detected: m.failures_detected,
        items_delivered: m.items_delivered,
        links_down: m.links_down,
        links_up: m.links_up,
        messages_in: m.messages_in.total(),
        messages_out: m.total_out(),
        rejected: m.total_rejected(),
        rss_bytes: rss.map(|r| r.0),
    };
    // Status and job summaries are the core's own types; a contract test
    // checks they read as `ryx_api::Sample`.
    json!({"t": now.as_millis(), "status": st, "counters": counters, "jobs": jobs}).to_string()
}

/// The SSE endpoint. At most `--max-event-streams` are served at once; a
/// stream holds its place until the client goes away.
pub async fn events(
    AxState(api): AxState<Api>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Ok(permit) = api.streams.clone().try_acquire_owned() else {
        Refusal::EventStreams.count();
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::EventStreamsBusy,
            format!("this node already serves {} event streams; use another node", api.limits.max_event_streams),
        ));
    };
    let h = api.handle;
    let rx = h.subscribe();
    let mut iv = tokio::time::interval(Duration::from_secs(1));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let stream = futures_util::stream::unfold(
        (h, rx, iv, 0u64, Vec::<Event>::new(), permit),
        |(h, mut rx, mut iv, n, mut queue, permit)| async move {
            if let Some(e) = queue.pop() {
                return Some((Ok(e), (h, rx, iv, n, queue, permit)));
            }
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(s) => Some((Ok(Event::default().event("node").data(s)), (h, rx, iv, n, queue, permit))),
                    Err(RecvError::Lagged(k)) => Some((Ok(Event::default().event("lagged").data(k.to_string())), (h, rx, iv, n, queue, permit))),
                    Err(RecvError::Closed) => None,
                },
                _ = iv.tick() => {
                    let topo = n % 2 == 0;
                    let (sample, topology) = h
                        .call(move |s| (sample(s), topo.then(|| serde_json::to_string(&s.node.topology(s.clock.now())).unwrap_or_default())))
                        .await
                        .ok()?;
                    if let Some(t) = topology {
                        queue.push(Event::default().event("topology").data(t));
                    }
                    Some((Ok(Event::default().event("sample").data(sample)), (h, rx, iv, n + 1, queue, permit)))
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Events kept for `GET /v1/events/recent`.
pub const RECENT_MAX: usize = 200;

static RECENT: Mutex<VecDeque<(u64, String)>> = Mutex::new(VecDeque::new());

/// Keeps the node's latest events (not the routine diffusion of neighbour
/// lists) for [`recent`]. Spawned once with the HTTP router; ends with the
/// event loop.
pub async fn record(h: Handle) {
    let mut rx = h.subscribe();
    loop {
        match rx.recv().await {
            Ok(s) => {
                if s.contains("\"space\":\"topology\"") {
                    continue;
                }
                let at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                let mut q = RECENT.lock().unwrap_or_else(|p| p.into_inner());
                if q.len() >= RECENT_MAX {
                    q.pop_front();
                }
                q.push_back((at, s));
            }
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => break,
        }
    }
}

/// `GET /v1/events/recent`: `{"events":[{"at_unix_ms","event"}]}`, newest first.
pub async fn recent() -> axum::Json<serde_json::Value> {
    let q = RECENT.lock().unwrap_or_else(|p| p.into_inner());
    let events: Vec<serde_json::Value> = q
        .iter()
        .rev()
        .map(|(at, s)| json!({"at_unix_ms": at, "event": serde_json::from_str::<serde_json::Value>(s).unwrap_or_default()}))
        .collect();
    axum::Json(json!({ "events": events }))
}
