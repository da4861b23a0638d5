//! Incidents out of the node: the Alertmanager v2 webhook
//! (`--alertmanager URL`, `POST {URL}/api/v2/alerts`), the SSE stream
//! (the core's `incident` events, as every other event), and
//! `GET /v1/incidents` (the incidents this node holds).
//!
//! Only the node that raises or resolves an incident (the spanning tree's
//! leader) posts it: one notification per incident network-wide. A post
//! that fails is tried again (Alertmanager takes the same alert twice as
//! one: same labels), at most [`ATTEMPTS`] times.

use crate::runtime::Handle;
use ryx_core::node::incident::Incident;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Posts of one notification at most.
pub const ATTEMPTS: u32 = 5;
/// Notifications posted, and posts that failed for good.
pub static SENT: AtomicU64 = AtomicU64::new(0);
/// See [`SENT`].
pub static FAILED: AtomicU64 = AtomicU64::new(0);

/// Where notifications go: `http://HOST:PORT[/PREFIX]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sink {
    /// `HOST:PORT`.
    pub authority: String,
    /// Path prefix (empty, or `/alertmanager`).
    pub prefix: String,
}

impl std::str::FromStr for Sink {
    type Err = String;
    fn from_str(s: &str) -> Result<Sink, String> {
        let rest = s.strip_prefix("http://").ok_or_else(|| format!("{s:?}: expected http://HOST:PORT[/PREFIX]"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        crate::resolve::split_host_port(authority).map_err(|e| format!("{s:?}: {e}"))?;
        Ok(Sink { authority: authority.to_string(), prefix: prefix.to_string() })
    }
}

/// Unix milliseconds as RFC 3339 UTC (`2023-11-14T22:13:20.000Z`).
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
}

/// The Alertmanager v2 body for an incident: one alert whose labels name
/// the incident (so every node that could post it posts the same alert).
pub fn alert_body(cluster: &str, i: &Incident) -> serde_json::Value {
    let (name, severity) = match i.kind.as_str() {
        "nodes_slow" => ("RyxNodesSlow", "warning"),
        "nodes_lossy" => ("RyxNodesLossy", "warning"),
        _ => ("RyxNodesDown", "critical"),
    };
    let mut labels = json!({
        "alertname": name,
        "cluster": cluster,
        "incident": i.id,
        "group": i.group,
        "severity": severity,
    });
    if let Some((k, v)) = i.group.split_once('=') {
        if k != "node" {
            labels[k] = json!(v);
        }
    }
    let mut a = json!({
        "labels": labels,
        "annotations": {
            "summary": i.summary,
            "members": i.members.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(","),
            "count": i.count.to_string(),
            "raised_by": i.raised_by.to_string(),
        },
        "startsAt": rfc3339(i.started_ms),
    });
    if let Some(end) = i.ended_ms {
        a["endsAt"] = json!(rfc3339(end));
    }
    json!([a])
}

/// Posts an incident to every sink, in the background, with retries.
pub fn notify(sinks: &[Sink], cluster: &str, i: &Incident) {
    let body = bytes::Bytes::from(alert_body(cluster, i).to_string());
    for s in sinks.iter().cloned() {
        let body = body.clone();
        let id = i.id.clone();
        tokio::spawn(async move {
            let path = format!("{}/api/v2/alerts", s.prefix);
            for attempt in 0..ATTEMPTS {
                let addrs = crate::resolve::lookup_host(&s.authority).await.unwrap_or_default();
                for a in addrs {
                    match crate::client::post_json(a, &s.authority, &path, body.clone(), Duration::from_secs(5)).await {
                        Ok(st) if (200..300).contains(&st) => {
                            SENT.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(incident = %id, sink = %s.authority, "incident notified");
                            return;
                        }
                        Ok(st) => {
                            tracing::warn!(incident = %id, sink = %s.authority, status = st, "notification refused")
                        }
                        Err(e) => tracing::warn!(incident = %id, sink = %s.authority, "notification failed: {e}"),
                    }
                }
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            FAILED.fetch_add(1, Ordering::Relaxed);
        });
    }
}

/// `GET /v1/incidents`: the incidents this node holds, newest first.
pub async fn list(axum::extract::State(h): axum::extract::State<Handle>) -> crate::http::ApiResult {
    let mut v = h.call(|s| s.node.held_incidents()).await.map_err(crate::http::ApiError::unavailable)?;
    v.sort_by(|a, b| b.started_ms.cmp(&a.started_ms).then(a.id.cmp(&b.id)));
    Ok(axum::Json(json!({ "incidents": v })).into_response())
}

use axum::response::IntoResponse;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_parse_and_the_body_is_alertmanagers() {
        let s: Sink = "http://127.0.0.1:9093/am/".parse().expect("a sink");
        assert_eq!(s, Sink { authority: "127.0.0.1:9093".into(), prefix: "/am".into() });
        assert!("127.0.0.1:9093".parse::<Sink>().is_err() && "http://nohost".parse::<Sink>().is_err());
        let i = Incident {
            id: "abcd".into(),
            kind: "nodes_down".into(),
            group: "rack=r3".into(),
            summary: "rack=r3: 2 nodes down".into(),
            members: vec![ryx_core::NodeId(1), ryx_core::NodeId(2)],
            count: 2,
            state: "resolved".into(),
            started_ms: 1_700_000_000_000,
            ended_ms: Some(1_700_000_060_000),
            raised_by: ryx_core::NodeId(3),
        };
        let b = alert_body("ryx", &i);
        assert_eq!(b[0]["labels"]["rack"], "r3");
        assert_eq!(b[0]["labels"]["incident"], "abcd");
        assert_eq!(b[0]["startsAt"], "2023-11-14T22:13:20.000Z");
        assert_eq!(b[0]["endsAt"], "2023-11-14T22:14:20.000Z");
    }
}
