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
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_control::{ControlError, GroundTruth, Problem};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{json, Value};

/// The largest `{"labels": [...]}` document; JSON Lines are streamed and may be longer.
const MAX_LABELS_DOCUMENT: usize = 16 * 1024 * 1024;
/// The longest line of SageMaker ground-truth JSON Lines.
const MAX_LINE: usize = 1024 * 1024;
/// Labels stored at a time while JSON Lines stream in.
const BATCH: usize = 10_000;

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

/// Takes labels as `{"labels": [...]}` (at most 16 MiB) or as SageMaker's ground-truth JSON
/// Lines, which are read and stored as they arrive (batches of 10,000), so an upload of any
/// length never sits in memory whole. Each line is bounded, and the body must arrive within
/// berth's body timeout.
pub async fn ground_truth(State(edge): State<Edge>, Path(endpoint): Path<String>, body: Body) -> Response {
    if let Err(e) = edge.controller.describe_endpoint(&endpoint).await {
        return control_error(e);
    }
    let deadline = tokio::time::Instant::now() + edge.security.body_timeout;
    let mut body = body;
    let mut pending: Vec<u8> = Vec::new();
    let (mut line_no, mut stored, mut batch) = (0usize, 0usize, Vec::new());
    let mut document: Option<Vec<u8>> = None;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return error(StatusCode::REQUEST_TIMEOUT, format!("The labels did not arrive in time; {stored} were stored.")),
            Ok(Some(Err(e))) => {
                return error(StatusCode::BAD_REQUEST, format!("The body could not be read: {e}; {stored} labels were stored."))
            }
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Some(data),
                Err(_) => continue, // trailers
            },
            Ok(None) => None,
        };
        if let Some(doc) = document.as_mut() {
            match chunk {
                Some(c) if doc.len() + c.len() > MAX_LABELS_DOCUMENT => {
                    return error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                        "A {{\"labels\": [...]}} document may hold at most {MAX_LABELS_DOCUMENT} bytes; send larger uploads as JSON Lines."
                    ),
                    )
                }
                Some(c) => doc.extend_from_slice(&c),
                None => break,
            }
            continue;
        }
        let done = chunk.is_none();
        if let Some(c) = chunk {
            pending.extend_from_slice(&c);
        }
        // Complete lines (and, at the end, the last one without a newline).
        while let Some(end) = pending.iter().position(|b| *b == b'\n').or((done && !pending.is_empty()).then_some(pending.len())) {
            let line: Vec<u8> = pending.drain(..(end + 1).min(pending.len())).collect();
            line_no += 1;
            let Ok(text) = std::str::from_utf8(&line) else {
                return error(StatusCode::BAD_REQUEST, format!("line {line_no} is not UTF-8; {stored} labels were stored."));
            };
            if text.trim().is_empty() {
                continue;
            }
            match berth_control::ground_truth_line(text.trim()) {
                Ok(l) => batch.push(l),
                // Not a ground-truth line at the start: a labels document (maybe over many lines).
                Err(_) if stored == 0 && batch.is_empty() && !looks_like_ground_truth_line(text) => {
                    let mut doc = line;
                    doc.append(&mut pending);
                    document = Some(doc);
                    break;
                }
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("line {line_no}: {e}; {stored} labels before it were stored.")),
            }
            if batch.len() >= BATCH {
                match edge.controller.add_ground_truth(&endpoint, std::mem::take(&mut batch)).await {
                    Ok(n) => stored += n,
                    Err(e) => return control_error(e),
                }
            }
        }
        if document.is_some() {
            if done {
                break;
            }
            continue;
        }
        if pending.len() > MAX_LINE {
            return error(StatusCode::PAYLOAD_TOO_LARGE, format!("line {} is longer than {MAX_LINE} bytes.", line_no + 1));
        }
        if done {
            break;
        }
    }
    if let Some(doc) = document {
        match labels_document(&doc) {
            Ok(labels) => batch = labels,
            Err(m) => return error(StatusCode::BAD_REQUEST, m),
        }
    }
    match edge.controller.add_ground_truth(&endpoint, batch).await {
        Ok(n) => json_ok(json!({ "stored": stored + n })),
        Err(e) => control_error(e),
    }
}

fn looks_like_ground_truth_line(text: &str) -> bool {
    matches!(serde_json::from_str::<Value>(text), Ok(Value::Object(o)) if o.contains_key("groundTruthData"))
}

/// `{"labels": [{"inference_id" | "event_id": .., "label": ..}]}`.
fn labels_document(doc: &[u8]) -> Result<Vec<GroundTruth>, String> {
    let not_labels = || "Send {\"labels\": [...]} or SageMaker ground-truth JSON Lines.".to_string();
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(doc) else { return Err(not_labels()) };
    let items = o.get("labels").and_then(Value::as_array).ok_or_else(not_labels)?;
    let mut labels = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let id = |k: &str| item[k].as_str().map(str::to_string);
        if item.get("label").is_none() {
            return Err(format!("labels[{i}] has no label."));
        }
        labels.push(GroundTruth { event_id: id("event_id"), inference_id: id("inference_id"), label: item["label"].clone() });
    }
    Ok(labels)
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
