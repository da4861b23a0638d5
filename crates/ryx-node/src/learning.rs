//! Learning by gossip over HTTP (`ryx_core::learn`, docs/learning.md):
//! rows loaded into this node, tasks started from any node, each node's
//! model, and predictions.
//!
//! - `POST /v1/rows/{dataset}`: CSV lines (numbers, the label last) added
//!   to this node's rows of `dataset`; they stay on this node.
//! - `POST /v1/learn`: a task (`{"id","dataset","features","classes",...}`),
//!   which spreads to every node.
//! - `GET /v1/learn`, `GET /v1/learn/{id}`: this node's part in each task:
//!   cycles, its model's age, its rows, its hold-out accuracy and the
//!   network's as its tracker estimates it.
//! - `POST /v1/learn/{id}/predict`: `{"rows": [[x, ...], ...]}` → the
//!   class this node's model predicts for each.

use crate::http::{body_error, ApiError, ApiResult};
use crate::runtime::Handle;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use ryx_api::ErrorCode;
use ryx_core::learn::{self, Row, Spec};
use serde::Deserialize;
use serde_json::json;

/// Rows a prediction request may carry.
pub const MAX_PREDICT_ROWS: usize = 1000;
/// Largest body of `POST /v1/rows/{dataset}` (a node holds at most
/// 4,000,000 values of rows: about this much CSV a request, many requests).
pub const MAX_ROWS_BODY: usize = 16 << 20;
/// Largest body of a prediction: 1,000 rows of up to a few hundred
/// features as JSON numbers.
pub const MAX_PREDICT_BODY: usize = 8 << 20;

fn bad(code: ErrorCode, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, msg)
}

/// Parses CSV lines of rows (blank lines skipped); the first bad line is
/// the error, naming its number.
pub fn parse_rows(text: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        rows.push(learn::parse_row(line).map_err(|e| format!("line {}: {e}", i + 1))?);
    }
    Ok(rows)
}

/// `POST /v1/rows/{dataset}`.
pub async fn add_rows(
    State(h): State<Handle>,
    Path(dataset): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body.map_err(body_error)?;
    let text = std::str::from_utf8(&body).map_err(|_| bad(ErrorCode::BadBody, "rows are UTF-8 CSV lines"))?;
    let rows = parse_rows(text).map_err(|e| bad(ErrorCode::Invalid, e))?;
    let n = rows.len();
    let r = h.call(move |s| s.node.add_rows(&dataset, rows)).await.map_err(ApiError::unavailable)?;
    match r {
        Ok(held) => Ok((StatusCode::CREATED, Json(json!({"added": n, "held": held}))).into_response()),
        Err(e) => Err(ApiError::new(StatusCode::INSUFFICIENT_STORAGE, ErrorCode::TooLarge, e)),
    }
}

/// `POST /v1/learn`.
pub async fn start(State(h): State<Handle>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body = body.map_err(body_error)?;
    let spec: Spec = serde_json::from_slice(&body).map_err(|e| {
        bad(ErrorCode::BadJson, format!("expected {{\"id\",\"dataset\",\"features\",\"classes\",...}}: {e}"))
    })?;
    spec.check().map_err(|e| bad(ErrorCode::Invalid, e))?;
    let id = spec.id.clone();
    let r = h
        .call(move |s| {
            let now = s.clock.now();
            s.node.start_learning(now, spec)
        })
        .await
        .map_err(ApiError::unavailable)?;
    match r {
        Ok(()) => Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response()),
        Err(e) => Err(ApiError::new(StatusCode::CONFLICT, ErrorCode::Invalid, e)),
    }
}

/// `GET /v1/learn`.
pub async fn list(State(h): State<Handle>) -> ApiResult {
    let v = h
        .call(|s| json!({"tasks": s.node.learning(), "rows": s.node.rows_held()}))
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(v).into_response())
}

fn no_task(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("this node takes no part in a task {id:?}"))
}

/// `GET /v1/learn/{id}`.
pub async fn get_one(State(h): State<Handle>, Path(id): Path<String>) -> ApiResult {
    let v = h
        .call(move |s| s.node.learner(&id).map(|l| l.view(s.clock.now())).ok_or(id))
        .await
        .map_err(ApiError::unavailable)?;
    match v {
        Ok(t) => Ok(Json(t).into_response()),
        Err(id) => Err(no_task(&id)),
    }
}

#[derive(Deserialize)]
struct Predict {
    rows: Vec<Vec<f32>>,
}

/// `POST /v1/learn/{id}/predict`.
pub async fn predict(
    State(h): State<Handle>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body.map_err(body_error)?;
    let p: Predict = serde_json::from_slice(&body)
        .map_err(|e| bad(ErrorCode::BadJson, format!("expected {{\"rows\": [[x, ...]]}}: {e}")))?;
    if p.rows.len() > MAX_PREDICT_ROWS {
        return Err(bad(ErrorCode::TooLarge, format!("at most {MAX_PREDICT_ROWS} rows a request")));
    }
    if p.rows.iter().flatten().any(|x| !x.is_finite()) {
        return Err(bad(ErrorCode::Invalid, "every feature must be a finite number"));
    }
    let v = h
        .call(move |s| {
            let Some(l) = s.node.learner(&id) else { return Err(no_task(&id)) };
            let f = usize::from(l.spec().features);
            if let Some(i) = p.rows.iter().position(|r| r.len() != f) {
                let msg = format!("row {i} has {} features; task {id:?} has {f}", p.rows[i].len());
                return Err(bad(ErrorCode::Invalid, msg));
            }
            let classes: Vec<usize> = p.rows.iter().map(|r| l.predict(r)).collect();
            Ok(json!({"classes": classes, "age": l.age(), "cycles": l.cycles()}))
        })
        .await
        .map_err(ApiError::unavailable)?;
    v.map(|v| Json(v).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_line_by_line_and_a_bad_line_is_named() {
        let rows = parse_rows("0.5,1,2\n\n1,0,0\n").expect("two rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].y, 2);
        let e = parse_rows("0.5,1,2\n1,x,0\n").expect_err("line 2");
        assert!(e.starts_with("line 2:"), "{e}");
    }
}
