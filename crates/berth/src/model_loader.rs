//! `berth model-loader`: the sidecar of a multi-model instance's pod on Kubernetes. As
//! SageMaker's platform does for a multi-model container, it puts a model's files on the
//! instance's disk before berth asks the container to load them (`POST /models` with the
//! directory): berth calls `POST /models {"model_name", "target"}` here, and the loader fetches
//! the archive of `target` under the variant's model prefix (its only source, given at start)
//! into `/opt/ml/models/<model_name>`, by the same code and archive rules as `berth
//! fetch-model`; `DELETE /models/<model_name>` removes the files once the container unloaded it.
//!
//! What a caller sends is checked: the name is a model name (no path), the target a bounded
//! key joined under the prefix (so only the variant's own models are fetched), the body bounded.

use crate::fetch::{move_children, readable_by_all, FetchLimits};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Json;
use berth_domain::ModelFetchRequest;
use berth_instances::{AllowedRoots, ModelArtifacts, ModelData};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The longest `target` may be (SageMaker's `TargetModel` limit).
const MAX_TARGET_LEN: usize = 1024;

#[derive(clap::Args, Debug)]
pub struct LoaderArgs {
    /// The directory the models go under, one directory each (the volume the container sees at
    /// /opt/ml/models).
    #[arg(long)]
    into: PathBuf,
    /// The variant's ModelDataUrl: the s3:// prefix every model's archive is under.
    #[arg(long)]
    prefix: String,
    #[command(flatten)]
    limits: FetchLimits,
}

struct Loader {
    into: PathBuf,
    prefix: String,
    artifacts: ModelArtifacts,
    timeout: Duration,
}

/// Serves on BERTH_WORKER_BIND:SAGEMAKER_BIND_TO_PORT (as berth's workers do) until stopped.
pub fn run(args: LoaderArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).init();
    if !args.prefix.starts_with("s3://") {
        anyhow::bail!("--prefix must be an s3:// prefix, not {}", args.prefix);
    }
    std::fs::create_dir_all(&args.into).map_err(|e| anyhow::anyhow!("cannot make {}: {e}", args.into.display()))?;
    let port = std::env::var("SAGEMAKER_BIND_TO_PORT").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "8081".into());
    let port: u16 = port.parse().map_err(|_| anyhow::anyhow!("SAGEMAKER_BIND_TO_PORT is not a port: {port}"))?;
    let bind = crate::worker::worker_bind()?;
    // Fetched beside the models (same file system), then moved into place.
    let staging = args.into.join(".berth-fetch");
    let loader = Arc::new(Loader {
        // No file:// roots: models come from S3, never from the pod's own files.
        artifacts: ModelArtifacts::new(staging, args.limits.extract(), AllowedRoots::default()),
        into: args.into,
        prefix: args.prefix,
        timeout: Duration::from_secs(args.limits.timeout),
    });
    let app = axum::Router::new()
        .route("/ping", get(|| async { StatusCode::OK }))
        .route("/models", post(load))
        .route("/models/{name}", delete(unload))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .with_state(loader);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind((bind, port)).await.map_err(|e| anyhow::anyhow!("cannot listen on {bind}:{port}: {e}"))?;
        tracing::info!(%bind, port, "model loader serving");
        axum::serve(listener, app).await.map_err(anyhow::Error::from)
    })
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn load(State(loader): State<Arc<Loader>>, body: axum::body::Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<ModelFetchRequest>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "the body must be {\"model_name\": ..., \"target\": ...}".into());
    };
    if !berth_domain::is_model_name(&request.model_name) {
        return refuse(StatusCode::BAD_REQUEST, "model_name must be letters, digits, '.', '_' and '-'".into());
    }
    let target = &request.target;
    if target.is_empty() || target.len() > MAX_TARGET_LEN || target.chars().any(char::is_control) || target.starts_with('/') {
        return refuse(StatusCode::BAD_REQUEST, format!("target must be a key of at most {MAX_TARGET_LEN} characters under the prefix"));
    }
    let into = loader.into.join(&request.model_name);
    let _ = tokio::fs::remove_dir_all(&into).await;
    let url = match loader.prefix.ends_with('/') {
        true => format!("{}{target}", loader.prefix),
        false => format!("{}/{target}", loader.prefix),
    };
    let dir = match loader.artifacts.prepare(ModelData::Url(&url), loader.timeout).await {
        Ok(dir) => dir,
        Err(e) => return refuse(StatusCode::NOT_FOUND, format!("could not fetch {url}: {e}")),
    };
    let (from, to) = (dir.path().to_path_buf(), into.clone());
    let placed = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        std::fs::create_dir_all(&to)?;
        move_children(&from, &to)?;
        // The model's container may run as any user: it reads what the loader fetched.
        readable_by_all(&to)?;
        Ok(berth_instances::dir_bytes(&to))
    })
    .await;
    drop(dir);
    match placed {
        Ok(Ok(bytes)) => {
            tracing::info!(model = %request.model_name, %url, bytes, "model fetched");
            Json(json!({ "bytes": bytes })).into_response()
        }
        Ok(Err(e)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot place the model's files: {e}")),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn unload(State(loader): State<Arc<Loader>>, UrlPath(name): UrlPath<String>) -> Response {
    if !berth_domain::is_model_name(&name) {
        return refuse(StatusCode::BAD_REQUEST, "not a model name".into());
    }
    match tokio::fs::remove_dir_all(loader.into.join(&name)).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => refuse(StatusCode::NOT_FOUND, format!("no model {name}")),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
