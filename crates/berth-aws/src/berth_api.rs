//! berth's own small API, beside the AWS ones: `GET /berth/v1/endpoints/{name}/logs`, the
//! instance logs of an endpoint for `berth logs`; `GET /berth/v1/endpoints/{name}/shadows`,
//! what its shadow variants answered compared with production; and the dashboard's experiment
//! controls, `POST /berth/v1/endpoints/{name}/weights` (`{"weights": {"Variant1": 25, ...}}`),
//! `.../promote` (`{"variant": "Variant2"}`) and `.../rollback` (no body), each answering the
//! endpoint's weights as `{"endpoint", "weights": {variant: weight}}`.
//!
//! Query: `variant` (only that variant), `tail` (bytes from the end of each log, default 8192),
//! `from` (`<variant>/<instance>:<offset>,...`: read each named log from that offset instead,
//! for following). Answers `{"logs": [{"variant", "instance", "size", "offset", "next", "text"}]}`,
//! `next` being the offset to ask for next time.

use crate::error::{EdgeError, Service};
use crate::protocol::Protocol;
use crate::Edge;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_control::{ControlError, WeightControl};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};

#[derive(Deserialize)]
pub struct LogQuery {
    variant: Option<String>,
    tail: Option<u64>,
    from: Option<String>,
}

/// The most one answer carries per log, so a huge log cannot make a huge answer.
const MAX_CHUNK: u64 = 1 << 20;

pub async fn logs(State(edge): State<Edge>, Path(endpoint): Path<String>, Query(q): Query<LogQuery>) -> Response {
    if let Err(e) = edge.controller.describe_endpoint(&endpoint).await {
        return control_error(e);
    }
    let dir = edge.controller.instance_log_dir(&endpoint);
    let offsets: HashMap<String, u64> = q
        .from
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter_map(|item| item.rsplit_once(':').and_then(|(k, v)| Some((k.to_string(), v.parse().ok()?))))
        .collect();
    let tail = q.tail.unwrap_or(8192).min(MAX_CHUNK);
    // Directory listings and log reads are blocking file I/O: off the async workers.
    let read = tokio::task::spawn_blocking(move || read_logs(&dir, q.variant.as_deref(), q.from.is_some(), &offsets, tail));
    match read.await {
        Ok(logs) => json_ok(Logs { logs }),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("Reading the logs failed: {e}")),
    }
}

/// Each instance log under `dir` (of `variant`, when given), from its offset in `offsets`, or
/// from the start when following (`following`), or its last `tail` bytes.
fn read_logs(
    dir: &std::path::Path,
    variant_wanted: Option<&str>,
    following: bool,
    offsets: &HashMap<String, u64>,
    tail: u64,
) -> Vec<LogChunk> {
    let mut out = Vec::new();
    let Ok(variants) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut variants: Vec<_> = variants.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()).collect();
    variants.sort_by_key(|e| e.file_name());
    for v in variants {
        let variant = v.file_name().to_string_lossy().into_owned();
        if variant_wanted.is_some_and(|want| want != variant) {
            continue;
        }
        let Ok(files) = std::fs::read_dir(v.path()) else { continue };
        let mut files: Vec<_> = files.filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "log")).collect();
        files.sort_by_key(|e| e.file_name());
        for f in files {
            let instance = f.path().file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let key = format!("{variant}/{instance}");
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            let offset = match offsets.get(&key) {
                Some(&o) if o <= size => o,
                Some(_) => 0, // the log was truncated or replaced
                None if following => 0,
                None => size.saturating_sub(tail),
            };
            let bytes = read_from(&f.path(), offset, (size - offset).min(MAX_CHUNK));
            let next = offset + bytes.len() as u64;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            out.push(LogChunk { variant: variant.clone(), instance, size, offset, next, text });
        }
    }
    out
}

fn read_from(path: &std::path::Path, offset: u64, len: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.take(len).read_to_end(&mut buf);
        }
    }
    buf
}

/// `GET .../logs`'s answer: a chunk of each instance's log.
#[derive(Serialize)]
struct Logs {
    logs: Vec<LogChunk>,
}

#[derive(Serialize)]
struct LogChunk {
    variant: String,
    instance: String,
    /// The log's size, and where this chunk starts and the next one will.
    size: u64,
    offset: u64,
    next: u64,
    text: String,
}

/// An answer of berth's own API, as JSON.
pub(crate) fn json_ok(answer: impl Serialize) -> Response {
    match serde_json::to_string(&answer) {
        Ok(body) => ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot write the answer: {e}")),
    }
}

#[derive(Serialize)]
struct Shadows<'a> {
    shadows: Vec<ShadowOut<'a>>,
}

#[derive(Serialize)]
struct ShadowOut<'a> {
    variant: String,
    sampled: u64,
    agreed: u64,
    agreement_rate: Option<f64>,
    errors: u64,
    dropped: u64,
    recent: Vec<ComparisonOut<'a>>,
}

#[derive(Serialize)]
struct ComparisonOut<'a> {
    time_ms: i64,
    inference_id: &'a Option<String>,
    production_variant: &'a str,
    production_status: u16,
    production_body: &'a str,
    shadow_status: u16,
    shadow_body: &'a str,
    shadow_latency_us: u64,
    agree: bool,
}

/// `GET /berth/v1/endpoints/{name}/shadows`: per shadow variant, copies sent, answers that agreed
/// with production's, errors, copies dropped under load, and the latest comparisons.
pub async fn shadows(State(edge): State<Edge>, Path(endpoint): Path<String>) -> Response {
    if let Err(e) = edge.controller.describe_endpoint(&endpoint).await {
        return control_error(e);
    }
    let stats = edge.router.table().shadows().of_endpoint(&endpoint);
    let shadows = stats
        .iter()
        .map(|(variant, s)| ShadowOut {
            variant: variant.clone(),
            sampled: s.sampled,
            agreed: s.agreed,
            agreement_rate: (s.sampled > 0).then(|| s.agreed as f64 / s.sampled as f64),
            errors: s.errors,
            dropped: s.dropped,
            recent: s
                .recent
                .iter()
                .rev()
                .map(|c| ComparisonOut {
                    time_ms: c.time_ms,
                    inference_id: &c.inference_id,
                    production_variant: &c.production_variant,
                    production_status: c.production_status,
                    production_body: &c.production_body,
                    shadow_status: c.shadow_status,
                    shadow_body: &c.shadow_body,
                    shadow_latency_us: c.shadow_latency_us,
                    agree: c.agree,
                })
                .collect(),
        })
        .collect();
    json_ok(Shadows { shadows })
}

/// The largest body of an experiment control (a few variant names and numbers).
const MAX_CONTROL_BODY: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetWeights {
    weights: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Promote {
    variant: String,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    Protocol::Berth.answer_error(EdgeError::berth(status, message))
}

fn control_error(e: ControlError) -> Response {
    Protocol::Berth.answer_error(EdgeError::control(e, Service::Berth))
}

/// The body as `T`, read within the body timeout and at most [`MAX_CONTROL_BODY`] bytes.
async fn control_body<T: serde::de::DeserializeOwned>(edge: &Edge, body: Body) -> Result<T, Response> {
    let read = tokio::time::timeout(edge.security.body_timeout, axum::body::to_bytes(body, MAX_CONTROL_BODY));
    let bytes = match read.await {
        Err(_) => return Err(error(StatusCode::REQUEST_TIMEOUT, "The body did not arrive in time.")),
        Ok(Err(_)) => return Err(error(StatusCode::PAYLOAD_TOO_LARGE, format!("The body is over {MAX_CONTROL_BODY} bytes."))),
        Ok(Ok(b)) => b,
    };
    serde_json::from_slice(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, format!("The body is not what this control takes: {e}.")))
}

async fn control(edge: Edge, endpoint: String, control: WeightControl) -> Response {
    match edge.controller.control_weights(&endpoint, control, "from the dashboard").await {
        Ok(e) => {
            let weights: BTreeMap<String, f64> =
                e.variants.iter().filter(|v| !v.shadow).map(|v| (v.name.clone(), v.current_weight)).collect();
            json_ok(json!({ "endpoint": e.name, "weights": weights }))
        }
        Err(e) => control_error(e),
    }
}

pub async fn set_weights(State(edge): State<Edge>, Path(endpoint): Path<String>, body: Body) -> Response {
    match control_body::<SetWeights>(&edge, body).await {
        Ok(b) => control(edge, endpoint, WeightControl::Set(b.weights.into_iter().collect())).await,
        Err(refused) => refused,
    }
}

pub async fn promote(State(edge): State<Edge>, Path(endpoint): Path<String>, body: Body) -> Response {
    match control_body::<Promote>(&edge, body).await {
        Ok(b) => control(edge, endpoint, WeightControl::Promote(b.variant)).await,
        Err(refused) => refused,
    }
}

pub async fn roll_back(State(edge): State<Edge>, Path(endpoint): Path<String>) -> Response {
    control(edge, endpoint, WeightControl::RollBack).await
}
