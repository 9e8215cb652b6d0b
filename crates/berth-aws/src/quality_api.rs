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
use crate::error::{EdgeError, Service};
use crate::protocol::Protocol;
use crate::Edge;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_control::{
    ControlError, EndpointQuality, Estimate, GroundTruth, Metric, PrecisionRecallF1, Problem, Quality, QualitySummary, Significance,
};
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
    Protocol::Berth.answer_error(EdgeError::berth(status, message))
}

fn control_error(e: ControlError) -> Response {
    Protocol::Berth.answer_error(EdgeError::control(e, Service::Berth))
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
        Ok(v) => json_ok(endpoint_quality_json(&v)),
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
    let metric = match Metric::parse(q.metric.as_deref().unwrap_or("accuracy")) {
        Ok(m) => m,
        Err(e) => return control_error(e),
    };
    match edge.controller.significance(&endpoint, metric, &q.a, &q.b, q.alpha.unwrap_or(0.05)).await {
        Ok(v) => json_ok(significance_json(&v)),
        Err(e) => control_error(e),
    }
}

// ---- the controller's quality results as JSON ----------------------------------------------

fn estimate_json(e: &Estimate) -> Value {
    match e.ci95 {
        Some((lo, hi)) => json!({ "value": e.value, "ci95": [lo, hi] }),
        None => json!({ "value": e.value }),
    }
}

fn optional_estimate_json(e: &Option<Estimate>) -> Value {
    e.as_ref().map_or(Value::Null, estimate_json)
}

fn scores_json(s: &PrecisionRecallF1) -> Value {
    json!({ "precision": estimate_json(&s.precision), "recall": estimate_json(&s.recall), "f1": estimate_json(&s.f1) })
}

fn quality_json(q: &Quality) -> Value {
    match q {
        Quality::Classification(c) => {
            let mut out = json!({
                "n": c.n,
                "classes": c.classes,
                "confusion_matrix": c.confusion_matrix,
                "accuracy": estimate_json(&c.accuracy),
                "macro": scores_json(&c.macro_average),
                "weighted": scores_json(&c.weighted_average),
            });
            if let Some(b) = &c.binary {
                let mut binary = scores_json(&b.scores);
                binary["positive"] = json!(b.positive);
                binary["auc"] = optional_estimate_json(&b.auc);
                out["binary"] = binary;
            }
            out
        }
        Quality::Regression(r) => json!({
            "n": r.n,
            "mae": optional_estimate_json(&r.mae),
            "rmse": optional_estimate_json(&r.rmse),
            "r2": optional_estimate_json(&r.r2),
        }),
    }
}

/// `GET .../quality`'s answer.
fn endpoint_quality_json(q: &EndpointQuality) -> Value {
    let variants: Vec<Value> = q
        .variants
        .iter()
        .map(|v| {
            let mut out = quality_json(&v.quality);
            out["variant"] = json!(v.variant);
            out["unlabelled"] = json!(v.unlabelled);
            out
        })
        .collect();
    let problem = match q.problem {
        Problem::Classification => "classification",
        Problem::Regression => "regression",
    };
    json!({ "endpoint": q.endpoint, "problem": problem, "variants": variants })
}

/// `GET .../significance`'s answer (and the dashboard's test).
pub(crate) fn significance_json(s: &Significance) -> Value {
    let mut out = json!({
        "metric": s.metric.as_str(),
        "a": s.a,
        "b": s.b,
        "n": [s.n.0, s.n.1],
        "decided": s.decided,
        "verdict": s.verdict,
    });
    if let Some(c) = &s.comparison {
        out["means"] = json!([c.means.0, c.means.1]);
        out["difference"] = json!(c.difference);
        out["ci95"] = json!([c.ci.0, c.ci.1]);
        out["fixed_horizon_p"] = json!(c.fixed_p);
        out["e_value"] = json!(c.e_value);
        out["always_valid_p"] = json!(c.always_valid_p);
        out["decided_after"] = json!(c.decided_after);
        out["alpha"] = json!(s.alpha);
        out["winner"] = json!(s.winner);
    }
    out
}

/// The dashboard's quality view of an endpoint.
pub(crate) fn summary_json(s: &QualitySummary) -> Value {
    let variants: serde_json::Map<String, Value> =
        s.variants.iter().map(|(v, a)| (v.clone(), json!({ "n": a.n, "accuracy": a.accuracy, "ci95": [a.ci95.0, a.ci95.1] }))).collect();
    json!({ "variants": variants, "test": s.test.as_ref().map(significance_json) })
}
