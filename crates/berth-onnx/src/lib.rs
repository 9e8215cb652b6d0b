//! The built-in `berth/onnx` image: a worker process that serves one ONNX model with
//! SageMaker's container contract, through ONNX Runtime (loaded at run time, see [`library`]).
//!
//! berth starts it like any container (`berth worker onnx serve`, port in
//! `SAGEMAKER_BIND_TO_PORT`, model files in `SM_MODEL_DIR`), so routing, health checks and
//! supervision are the same as for `exec:` images.

#![forbid(unsafe_code)]

pub mod codec;
pub mod library;
pub mod model;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// What the worker needs, read from its environment by the binary.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub port: u16,
    /// The address it listens on: loopback on berth's machine, every address in a pod.
    pub bind: std::net::IpAddr,
    pub model_dir: PathBuf,
    /// The ONNX Runtime library, as berth found it (the worker never looks for one itself:
    /// nothing in its environment but berth's own variable may choose a library to load).
    pub library: PathBuf,
    pub intra_threads: usize,
    /// A multi-model instance (`SAGEMAKER_MULTI_MODEL=true`): no model at start; models are
    /// loaded and unloaded through SageMaker's multi-model container API.
    pub multi_model: bool,
}

/// Why the worker cannot serve; printed on its stderr, which berth shows as the failure reason.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("{0}")]
    Runtime(String),
    #[error("cannot load the model: {0}")]
    Model(String),
    #[error("cannot listen on port {port}: {source}")]
    Listen { port: u16, source: std::io::Error },
}

/// Loads ONNX Runtime and the model, then serves until the process is stopped.
pub async fn run(settings: WorkerSettings) -> Result<(), WorkerError> {
    if !settings.library.is_absolute() {
        return Err(WorkerError::Runtime("berth/onnx is started by berth, which names ONNX Runtime's library (BERTH_ORT_DYLIB)".into()));
    }
    let environment = ort::init_from(&settings.library)
        .map_err(|e| WorkerError::Runtime(format!("cannot load ONNX Runtime: {e}; {}", library::INSTALL_HINT)))?
        .with_name("berth-onnx")
        .build()
        .map_err(|e| WorkerError::Runtime(format!("cannot start ONNX Runtime: {e}")))?;
    tracing::info!(library = %settings.library.display(), "ONNX Runtime loaded");
    let app = if settings.multi_model {
        server::multi_model_app(Arc::new(server::LoadedModels::new(Arc::new(environment), settings.intra_threads)))
    } else {
        let model = model::OnnxModel::load(&environment, &settings.model_dir, settings.intra_threads).map_err(WorkerError::Model)?;
        tracing::info!(model = %model.path.display(), features = ?model.features, "model loaded");
        server::app(Arc::new(model))
    };
    let addr = SocketAddr::new(settings.bind, settings.port);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| WorkerError::Listen { port: settings.port, source })?;
    tracing::info!(%addr, multi_model = settings.multi_model, "serving the SageMaker container contract");
    axum::serve(listener, app).await.map_err(|source| WorkerError::Listen { port: settings.port, source })
}
