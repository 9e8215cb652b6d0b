//! `berth worker <name> serve`: the built-in images' worker processes, started by berth itself
//! with SageMaker's container environment (not meant to be run by hand).

use berth_onnx::WorkerSettings;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum Worker {
    /// `berth/onnx`: serve the ONNX model in SM_MODEL_DIR on SAGEMAKER_BIND_TO_PORT, with the
    /// ONNX Runtime library berth names in BERTH_ORT_DYLIB.
    Onnx {
        /// SageMaker starts containers with the argument `serve`.
        #[arg(value_parser = ["serve"])]
        command: String,
    },
    /// `berth/python`: serve SM_MODEL_DIR through the handler contract with BERTH_PYTHON's
    /// interpreter, in SAGEMAKER_MODEL_SERVER_WORKERS processes.
    Python {
        #[arg(value_parser = ["serve"])]
        command: String,
    },
}

pub fn run(worker: Worker) -> anyhow::Result<()> {
    match worker {
        Worker::Onnx { .. } => run_onnx(),
        Worker::Python { .. } => run_python(),
    }
}

fn run_onnx() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).init();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let port = env("SAGEMAKER_BIND_TO_PORT").unwrap_or_else(|| "8080".into());
    let settings = WorkerSettings {
        port: port.parse().map_err(|_| anyhow::anyhow!("SAGEMAKER_BIND_TO_PORT is not a port: {port}"))?,
        bind: worker_bind()?,
        model_dir: PathBuf::from(env("SM_MODEL_DIR").unwrap_or_else(|| "/opt/ml/model".into())),
        library: PathBuf::from(env("BERTH_ORT_DYLIB").unwrap_or_default()),
        intra_threads: env("BERTH_WORKER_THREADS").and_then(|t| t.parse().ok()).unwrap_or(1),
        multi_model: env("SAGEMAKER_MULTI_MODEL").is_some_and(|v| v.eq_ignore_ascii_case("true")),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(berth_onnx::run(settings)).map_err(|e| anyhow::anyhow!("berth/onnx: {e}"))
}

fn run_python() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).init();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let port = env("SAGEMAKER_BIND_TO_PORT").unwrap_or_else(|| "8080".into());
    let settings = berth_python::PythonWorkerSettings {
        port: port.parse().map_err(|_| anyhow::anyhow!("SAGEMAKER_BIND_TO_PORT is not a port: {port}"))?,
        bind: worker_bind()?,
        python: PathBuf::from(env("BERTH_PYTHON").unwrap_or_else(|| "python3".into())),
        processes: env("SAGEMAKER_MODEL_SERVER_WORKERS").and_then(|w| w.parse().ok()).unwrap_or(1),
        multi_model: env("SAGEMAKER_MULTI_MODEL").is_some_and(|v| v.eq_ignore_ascii_case("true")),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(berth_python::server::run(settings)).map_err(|e| anyhow::anyhow!("berth/python: {e}"))
}

/// The address a worker listens on: BERTH_WORKER_BIND (the pod's, on Kubernetes), else loopback.
pub(crate) fn worker_bind() -> anyhow::Result<std::net::IpAddr> {
    match std::env::var("BERTH_WORKER_BIND").ok().filter(|v| !v.is_empty()) {
        Some(ip) => ip.parse().map_err(|_| anyhow::anyhow!("BERTH_WORKER_BIND is not an IP address: {ip}")),
        None => Ok(std::net::Ipv4Addr::LOCALHOST.into()),
    }
}
