//! The worker's HTTP side: SageMaker's container contract (`GET /ping`, `POST /invocations`),
//! and for a multi-model instance (`SAGEMAKER_MULTI_MODEL=true`) SageMaker's multi-model
//! container API: `POST /models` loads a model directory under a name, `GET /models` and
//! `GET /models/{name}` list what is loaded, `DELETE /models/{name}` unloads, and
//! `POST /models/{name}/invoke` invokes one.

use crate::codec::{self, InputError};
use crate::model::OnnxModel;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use berth_domain::{is_model_name, ModelLoadRequest};
use ort::environment::Environment;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const MAX_BODY: usize = 6 * 1024 * 1024;

pub fn app(model: Arc<OnnxModel>) -> axum::Router {
    axum::Router::new()
        .route("/ping", get(|| async { StatusCode::OK }))
        .route("/invocations", post(invoke))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(model)
}

async fn invoke(State(model): State<Arc<OnnxModel>>, headers: HeaderMap, body: Bytes) -> Response {
    answer(&model, &headers, &body)
}

/// The models a multi-model instance has loaded, by the name berth gave each.
pub struct LoadedModels {
    environment: Arc<Environment>,
    intra_threads: usize,
    models: Mutex<BTreeMap<String, (PathBuf, Arc<OnnxModel>)>>,
}

impl LoadedModels {
    pub fn new(environment: Arc<Environment>, intra_threads: usize) -> Self {
        LoadedModels { environment, intra_threads, models: Mutex::new(BTreeMap::new()) }
    }

    fn get(&self, name: &str) -> Option<Arc<OnnxModel>> {
        self.lock().get(name).map(|(_, m)| m.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (PathBuf, Arc<OnnxModel>)>> {
        self.models.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub fn multi_model_app(models: Arc<LoadedModels>) -> axum::Router {
    axum::Router::new()
        .route("/ping", get(|| async { StatusCode::OK }))
        .route("/models", post(load).get(list))
        .route("/models/{name}", get(describe).delete(unload))
        .route("/models/{name}/invoke", post(invoke_model))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(models)
}

fn message(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(json!({ "message": text.into() }))).into_response()
}

async fn load(State(models): State<Arc<LoadedModels>>, Json(req): Json<ModelLoadRequest>) -> Response {
    if !is_model_name(&req.model_name) {
        return message(StatusCode::BAD_REQUEST, format!("'{}' is not a model name this worker takes", req.model_name));
    }
    if models.get(&req.model_name).is_some() {
        return message(StatusCode::CONFLICT, format!("Model {} is already loaded", req.model_name));
    }
    let (environment, threads, dir) = (models.environment.clone(), models.intra_threads, PathBuf::from(&req.url));
    let loaded = tokio::task::spawn_blocking(move || OnnxModel::load(&environment, &dir, threads)).await;
    match loaded {
        Ok(Ok(model)) => {
            tracing::info!(name = %req.model_name, model = %model.path.display(), "model loaded");
            models.lock().entry(req.model_name.clone()).or_insert((PathBuf::from(req.url), Arc::new(model)));
            message(StatusCode::OK, format!("Model {} loaded", req.model_name))
        }
        Ok(Err(e)) => message(StatusCode::BAD_REQUEST, e),
        Err(e) => message(StatusCode::INTERNAL_SERVER_ERROR, format!("loading failed: {e}")),
    }
}

async fn list(State(models): State<Arc<LoadedModels>>) -> Response {
    let listed: Vec<_> =
        models.lock().iter().map(|(name, (url, _))| json!({ "modelName": name, "modelUrl": url.display().to_string() })).collect();
    Json(json!({ "models": listed })).into_response()
}

async fn describe(State(models): State<Arc<LoadedModels>>, Path(name): Path<String>) -> Response {
    match models.lock().get(&name) {
        Some((url, _)) => Json(json!({ "modelName": name, "modelUrl": url.display().to_string() })).into_response(),
        None => message(StatusCode::NOT_FOUND, format!("Model {name} is not loaded")),
    }
}

async fn unload(State(models): State<Arc<LoadedModels>>, Path(name): Path<String>) -> Response {
    match models.lock().remove(&name) {
        Some(_) => {
            tracing::info!(%name, "model unloaded");
            message(StatusCode::OK, format!("Model {name} unloaded"))
        }
        None => message(StatusCode::NOT_FOUND, format!("Model {name} is not loaded")),
    }
}

async fn invoke_model(State(models): State<Arc<LoadedModels>>, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    match models.get(&name) {
        Some(model) => answer(&model, &headers, &body),
        None => message(StatusCode::NOT_FOUND, format!("Model {name} is not loaded")),
    }
}

/// One model's answer to a request, in the content type the caller accepts.
fn answer(model: &OnnxModel, headers: &HeaderMap, body: &[u8]) -> Response {
    let header = |name| headers.get(name).and_then(|v: &axum::http::HeaderValue| v.to_str().ok());
    let result = (|| {
        let format = codec::output_format(header(ACCEPT))?;
        let rows = codec::parse(header(CONTENT_TYPE), body)?;
        if let Some(expected) = model.features {
            if rows.n_features != expected {
                return Err(InputError::Malformed(format!(
                    "each row has {} features, but the model's input '{}' takes {expected}",
                    rows.n_features,
                    model.input_name()
                )));
            }
        }
        Ok((format, rows))
    })();
    let (format, rows) = match result {
        Ok(ok) => ok,
        Err(e @ InputError::ContentType(_)) => return (StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()).into_response(),
        Err(e @ InputError::Accept(_)) => return (StatusCode::NOT_ACCEPTABLE, e.to_string()).into_response(),
        Err(e @ InputError::Malformed(_)) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    match model.predict(rows.values, rows.n_rows, rows.n_features) {
        Ok(prediction) => {
            let (body, content_type) = codec::render(&prediction, format);
            ([(CONTENT_TYPE, content_type)], body).into_response()
        }
        // The model rejected this input (shapes, values): the caller's to fix.
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}
