//! berth's model quality API:
//!
//! - `POST /berth/v1/endpoints/{name}/ground-truth`: labels for captured inferences, as
//!   `{"labels": [{"inference_id" | "event_id": .., "label": ..}]}` or as SageMaker's ground-truth
//!   JSON Lines (`{"groundTruthData": {"data", "encoding"}, "eventMetadata": {"eventId"}, ...}`).
//! - `GET /berth/v1/endpoints/{name}/quality?problem=classification|regression&positive=L&from=T&to=T`:
//!   each variant's quality on the captured answers that have labels (predictions in a window).
//! - `GET /berth/v1/endpoints/{name}/significance?metric=accuracy|absolute_error&a=A&b=B&alpha=0.05`:
//!   whether B is better than A, by an always-valid sequential test and the classical one.

use crate::berth_api::json_ok;
use crate::Edge;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_control::{ControlError, GroundTruth, Problem};
use serde::Deserialize;
use serde_json::{json, Value};

/// The largest ground-truth upload in one request.
const MAX_GROUND_TRUTH_BYTES: usize = 64 * 1024 * 1024;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, json!({ "message": message.into() }).to_string()).into_response()
}

fn control_error(e: ControlError) -> Response {
    match e {
        ControlError::NotFound { .. } => error(StatusCode::NOT_FOUND, e.to_string()),
        ControlError::Validation(m) => error(StatusCode::BAD_REQUEST, m),
        other => error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

pub async fn ground_truth(State(edge): State<Edge>, Path(endpoint): Path<String>, body: Bytes) -> Response {
    if body.len() > MAX_GROUND_TRUTH_BYTES {
        return error(StatusCode::PAYLOAD_TOO_LARGE, format!("Send at most {MAX_GROUND_TRUTH_BYTES} bytes of labels per request."));
    }
    let Ok(text) = std::str::from_utf8(&body) else { return error(StatusCode::BAD_REQUEST, "The body is not UTF-8.") };
    let mut labels = Vec::new();
    if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(text) {
        if let Some(items) = o.get("labels").and_then(Value::as_array) {
            for (i, item) in items.iter().enumerate() {
                let id = |k: &str| item[k].as_str().map(str::to_string);
                if item.get("label").is_none() {
                    return error(StatusCode::BAD_REQUEST, format!("labels[{i}] has no label."));
                }
                labels.push(GroundTruth { event_id: id("event_id"), inference_id: id("inference_id"), label: item["label"].clone() });
            }
        } else if o.contains_key("groundTruthData") {
            match berth_control::ground_truth_line(text) {
                Ok(l) => labels.push(l),
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("line 1: {e}")),
            }
        } else {
            return error(StatusCode::BAD_REQUEST, "Send {\"labels\": [...]} or SageMaker ground-truth JSON Lines.");
        }
    } else {
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            match berth_control::ground_truth_line(line) {
                Ok(l) => labels.push(l),
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("line {}: {e}", i + 1)),
            }
        }
    }
    match edge.controller.add_ground_truth(&endpoint, labels).await {
        Ok(n) => json_ok(json!({ "stored": n })),
        Err(e) => control_error(e),
    }
}

#[derive(Deserialize)]
pub struct QualityQuery {
    problem: Option<String>,
    positive: Option<String>,
    /// Only predictions made from this time (epoch seconds) ...
    from: Option<u64>,
    /// ... and before this one.
    to: Option<u64>,
}

pub async fn quality(State(edge): State<Edge>, Path(endpoint): Path<String>, Query(q): Query<QualityQuery>) -> Response {
    let problem = match q.problem.as_deref().unwrap_or("classification") {
        "classification" => Problem::Classification,
        "regression" => Problem::Regression,
        other => return error(StatusCode::BAD_REQUEST, format!("problem '{other}' is not classification or regression.")),
    };
    match edge.controller.quality(&endpoint, problem, q.positive, (q.from, q.to)).await {
        Ok(v) => json_ok(v),
        Err(e) => control_error(e),
    }
}

#[derive(Deserialize)]
pub struct SignificanceQuery {
    metric: Option<String>,
    a: String,
    b: String,
    alpha: Option<f64>,
}

pub async fn significance(State(edge): State<Edge>, Path(endpoint): Path<String>, Query(q): Query<SignificanceQuery>) -> Response {
    let metric = q.metric.unwrap_or_else(|| "accuracy".into());
    match edge.controller.significance(&endpoint, &metric, &q.a, &q.b, q.alpha.unwrap_or(0.05)).await {
        Ok(v) => json_ok(v),
        Err(e) => control_error(e),
    }
}
