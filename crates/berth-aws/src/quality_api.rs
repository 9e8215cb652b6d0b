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
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

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
        Ok(n) => json_ok(Stored { stored: stored + n }),
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
        Ok(v) => json_ok(endpoint_quality_out(&v)),
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
        Ok(v) => json_ok(significance_out(&v)),
        Err(e) => control_error(e),
    }
}

/// How many labels a ground-truth upload stored.
#[derive(Serialize)]
struct Stored {
    stored: usize,
}

// ---- the controller's quality results as berth's API writes them -----------------------------

#[derive(Serialize)]
struct EstimateOut {
    value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ci95: Option<(f64, f64)>,
}

impl From<&Estimate> for EstimateOut {
    fn from(e: &Estimate) -> Self {
        EstimateOut { value: e.value, ci95: e.ci95 }
    }
}

#[derive(Serialize)]
struct ScoresOut {
    precision: EstimateOut,
    recall: EstimateOut,
    f1: EstimateOut,
}

impl From<&PrecisionRecallF1> for ScoresOut {
    fn from(s: &PrecisionRecallF1) -> Self {
        ScoresOut { precision: (&s.precision).into(), recall: (&s.recall).into(), f1: (&s.f1).into() }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum QualityOut {
    Classification(Box<ClassificationOut>),
    Regression(RegressionOut),
}

#[derive(Serialize)]
struct ClassificationOut {
    n: usize,
    classes: Vec<String>,
    confusion_matrix: Vec<Vec<usize>>,
    accuracy: EstimateOut,
    #[serde(rename = "macro")]
    macro_average: ScoresOut,
    weighted: ScoresOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    binary: Option<BinaryOut>,
}

#[derive(Serialize)]
struct BinaryOut {
    #[serde(flatten)]
    scores: ScoresOut,
    positive: String,
    auc: Option<EstimateOut>,
}

#[derive(Serialize)]
struct RegressionOut {
    n: usize,
    mae: Option<EstimateOut>,
    rmse: Option<EstimateOut>,
    r2: Option<EstimateOut>,
}

fn quality_out(q: &Quality) -> QualityOut {
    match q {
        Quality::Classification(c) => QualityOut::Classification(Box::new(ClassificationOut {
            n: c.n,
            classes: c.classes.clone(),
            confusion_matrix: c.confusion_matrix.clone(),
            accuracy: (&c.accuracy).into(),
            macro_average: (&c.macro_average).into(),
            weighted: (&c.weighted_average).into(),
            binary: c.binary.as_ref().map(|b| BinaryOut {
                scores: (&b.scores).into(),
                positive: b.positive.clone(),
                auc: b.auc.as_ref().map(Into::into),
            }),
        })),
        Quality::Regression(r) => QualityOut::Regression(RegressionOut {
            n: r.n,
            mae: r.mae.as_ref().map(Into::into),
            rmse: r.rmse.as_ref().map(Into::into),
            r2: r.r2.as_ref().map(Into::into),
        }),
    }
}

/// `GET .../quality`'s answer.
#[derive(Serialize)]
struct EndpointQualityOut {
    endpoint: String,
    problem: &'static str,
    variants: Vec<VariantQualityOut>,
}

#[derive(Serialize)]
struct VariantQualityOut {
    variant: String,
    unlabelled: usize,
    #[serde(flatten)]
    quality: QualityOut,
}

fn endpoint_quality_out(q: &EndpointQuality) -> EndpointQualityOut {
    let problem = match q.problem {
        Problem::Classification => "classification",
        Problem::Regression => "regression",
    };
    let variants = q
        .variants
        .iter()
        .map(|v| VariantQualityOut { variant: v.variant.clone(), unlabelled: v.unlabelled, quality: quality_out(&v.quality) })
        .collect();
    EndpointQualityOut { endpoint: q.endpoint.clone(), problem, variants }
}

/// `GET .../significance`'s answer (and the dashboard's test).
#[derive(Serialize)]
pub(crate) struct SignificanceOut {
    metric: &'static str,
    a: String,
    b: String,
    n: (usize, usize),
    decided: bool,
    verdict: String,
    #[serde(flatten)]
    comparison: Option<ComparisonOut>,
}

#[derive(Serialize)]
struct ComparisonOut {
    means: (f64, f64),
    difference: f64,
    ci95: (f64, f64),
    fixed_horizon_p: f64,
    e_value: f64,
    always_valid_p: f64,
    decided_after: Option<usize>,
    alpha: f64,
    winner: Option<String>,
}

pub(crate) fn significance_out(s: &Significance) -> SignificanceOut {
    SignificanceOut {
        metric: s.metric.as_str(),
        a: s.a.clone(),
        b: s.b.clone(),
        n: s.n,
        decided: s.decided,
        verdict: s.verdict.clone(),
        comparison: s.comparison.as_ref().map(|c| ComparisonOut {
            means: c.means,
            difference: c.difference,
            ci95: c.ci,
            fixed_horizon_p: c.fixed_p,
            e_value: c.e_value,
            always_valid_p: c.always_valid_p,
            decided_after: c.decided_after,
            alpha: s.alpha,
            winner: s.winner.clone(),
        }),
    }
}

/// The dashboard's quality view of an endpoint.
#[derive(Serialize)]
pub(crate) struct QualitySummaryOut {
    variants: BTreeMap<String, AccuracyOut>,
    test: Option<SignificanceOut>,
}

#[derive(Serialize)]
struct AccuracyOut {
    n: usize,
    accuracy: f64,
    ci95: (f64, f64),
}

pub(crate) fn summary_out(s: &QualitySummary) -> QualitySummaryOut {
    let variants = s.variants.iter().map(|(v, a)| (v.clone(), AccuracyOut { n: a.n, accuracy: a.accuracy, ci95: a.ci95 })).collect();
    QualitySummaryOut { variants, test: s.test.as_ref().map(significance_out) }
}
