//! The worker process of `berth/python` (`berth worker python serve`): SageMaker's container
//! contract over HTTP in Rust, in front of several Python processes (`runtime.py`), each with the
//! model loaded once, spoken to over pipes in length-prefixed frames. A request takes an idle
//! Python process, so an instance uses as many cores as it has processes.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, Mutex};

const RUNTIME: &str = include_str!("runtime.py");
/// Largest answer frame a Python process may send (SageMaker's 6 MB answer, with room).
const MAX_FRAME: usize = 8 * 1024 * 1024;

/// What the worker needs from its environment.
#[derive(Debug, Clone)]
pub struct PythonWorkerSettings {
    pub port: u16,
    /// The environment's interpreter.
    pub python: PathBuf,
    /// How many Python processes serve (each loads the model).
    pub processes: usize,
}

/// One Python process and its pipes.
struct Process {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

struct Pool {
    idle_tx: mpsc::UnboundedSender<Process>,
    idle_rx: Mutex<mpsc::UnboundedReceiver<Process>>,
    python: PathBuf,
}

/// Starts the processes (each must load the model), then serves until the server stops.
pub async fn run(settings: PythonWorkerSettings) -> Result<(), String> {
    let (idle_tx, idle_rx) = mpsc::unbounded_channel();
    let pool = Arc::new(Pool { idle_tx, idle_rx: Mutex::new(idle_rx), python: settings.python.clone() });
    let starts: Vec<_> = (0..settings.processes.max(1)).map(|_| spawn(&settings.python)).collect();
    for started in futures_util::future::join_all(starts).await {
        let _ = pool.idle_tx.send(started?);
    }
    tracing::info!(processes = settings.processes.max(1), "model loaded; serving");
    let app = axum::Router::new()
        .route("/ping", get(|| async { StatusCode::OK }))
        .route("/invocations", post(invoke))
        .layer(axum::extract::DefaultBodyLimit::max(6 * 1024 * 1024))
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", settings.port)).await.map_err(|e| format!("cannot listen: {e}"))?;
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}

/// Starts one Python process and waits for its first frame: the model loaded, or why not.
async fn spawn(python: &PathBuf) -> Result<Process, String> {
    let mut child = Command::new(python)
        .args(["-u", "-c", RUNTIME])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", python.display()))?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut process = Process { child, stdin, stdout };
    let (header, _) =
        read_frame(&mut process.stdout).await.map_err(|e| format!("the Python process ended while loading the model: {e}"))?;
    if let Some(error) = header.get("error").and_then(|e| e.as_str()) {
        let tail: Vec<&str> = error.lines().rev().take(6).collect();
        return Err(format!("loading the model failed: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | ")));
    }
    Ok(process)
}

async fn invoke(State(pool): State<Arc<Pool>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).unwrap_or("");
    let request = serde_json::json!({ "content_type": header(CONTENT_TYPE), "accept": header(ACCEPT) });
    let Some(mut process) = pool.idle_rx.lock().await.recv().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no Python process").into_response();
    };
    let exchange = async {
        write_frame(&mut process.stdin, &request, &body).await?;
        read_frame(&mut process.stdout).await
    };
    match exchange.await {
        Ok((answer, body)) => {
            let _ = pool.idle_tx.send(process);
            let status = answer.get("status").and_then(|s| s.as_u64()).and_then(|s| StatusCode::from_u16(s as u16).ok());
            let content_type = answer.get("content_type").and_then(|c| c.as_str()).unwrap_or("application/json").to_string();
            (status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), [(CONTENT_TYPE, content_type)], body).into_response()
        }
        Err(e) => {
            // The process died mid-request: answer, and start another in its place.
            let status = process.child.try_wait().ok().flatten().map(|s| s.to_string()).unwrap_or_default();
            tracing::warn!(error = %e, %status, "a Python process failed; starting another");
            let pool = pool.clone();
            tokio::spawn(async move {
                match spawn(&pool.python).await {
                    Ok(p) => {
                        let _ = pool.idle_tx.send(p);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start a Python process again; the instance stops");
                        std::process::exit(1);
                    }
                }
            });
            (StatusCode::INTERNAL_SERVER_ERROR, format!("the Python process serving this request failed ({e}{status})")).into_response()
        }
    }
}

async fn write_frame(stdin: &mut ChildStdin, header: &serde_json::Value, body: &[u8]) -> std::io::Result<()> {
    let head = serde_json::to_vec(header)?;
    let mut frame = Vec::with_capacity(8 + head.len() + body.len());
    frame.extend_from_slice(&(head.len() as u32).to_be_bytes());
    frame.extend_from_slice(&head);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    stdin.write_all(&frame).await?;
    stdin.flush().await
}

async fn read_frame(stdout: &mut BufReader<ChildStdout>) -> std::io::Result<(serde_json::Value, Vec<u8>)> {
    let head = read_part(stdout).await?;
    let header = serde_json::from_slice(&head)?;
    Ok((header, read_part(stdout).await?))
}

async fn read_part(stdout: &mut BufReader<ChildStdout>) -> std::io::Result<Vec<u8>> {
    let size = stdout.read_u32().await? as usize;
    if size > MAX_FRAME {
        return Err(std::io::Error::other(format!("a frame of {size} bytes is over the limit")));
    }
    let mut buf = vec![0u8; size];
    stdout.read_exact(&mut buf).await?;
    Ok(buf)
}
