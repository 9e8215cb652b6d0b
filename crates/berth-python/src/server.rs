//! The worker process of `berth/python` (`berth worker python serve`): SageMaker's container
//! contract over HTTP in Rust, in front of several Python processes (`runtime.py`), each with the
//! model loaded once, spoken to over pipes in length-prefixed frames.
//!
//! Requests go into one queue. Each Python process has a task of its own that takes the next
//! request and whatever else is waiting (up to [`MAX_BATCH`]) and sends them as one frame; the
//! runtime predicts the requests of a batch in one call where the handlers are the framework's
//! defaults. A request whose caller went away is still answered to the queue, so no process is
//! ever lost mid-frame; a process that dies is replaced.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use berth_domain::{is_model_name, ModelLoadRequest};
use serde_json::json;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot, Mutex};

const RUNTIME: &str = include_str!("runtime.py");
/// Largest answer frame a Python process may send (a batch of answers; each is bounded by the
/// router's 6 MB).
const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Most requests sent to a Python process in one frame.
const MAX_BATCH: usize = 32;

/// What the worker needs from its environment.
#[derive(Debug, Clone)]
pub struct PythonWorkerSettings {
    pub port: u16,
    /// The address it listens on: loopback on berth's own machine, the pod's on Kubernetes.
    pub bind: std::net::IpAddr,
    /// The environment's interpreter.
    pub python: PathBuf,
    /// How many Python processes serve (each loads the model).
    pub processes: usize,
    /// A multi-model instance (`SAGEMAKER_MULTI_MODEL=true`): no model at start; SageMaker's
    /// multi-model container API loads models into every process.
    pub multi_model: bool,
}

/// One Python process and its pipes.
struct Process {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// A request waiting for a Python process.
struct Job {
    /// The model of a multi-model instance it is for.
    model: Option<String>,
    content_type: String,
    accept: String,
    body: Bytes,
    reply: oneshot::Sender<Answer>,
}

struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

type Queue = Arc<Mutex<mpsc::UnboundedReceiver<Job>>>;

/// A load or unload of a multi-model instance's model, for one Python process.
struct Control {
    header: serde_json::Value,
    reply: oneshot::Sender<Result<(), String>>,
}

/// The models a multi-model instance has loaded: name → directory. A process started again
/// loads them all before it serves.
type Loaded = Arc<Mutex<std::collections::BTreeMap<String, String>>>;

/// A multi-model instance: its loaded models and each process's control line.
struct MultiModels {
    jobs: mpsc::UnboundedSender<Job>,
    loaded: Loaded,
    controls: Vec<mpsc::UnboundedSender<Control>>,
}

/// Starts the processes (each must load the model), then serves until the server stops.
/// The worker could not serve (its Python processes did not start, its port could not be bound).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WorkerError(pub String);

/// Serves until the process is stopped.
pub async fn run(settings: PythonWorkerSettings) -> Result<(), WorkerError> {
    serve(settings).await.map_err(WorkerError)
}

async fn serve(settings: PythonWorkerSettings) -> Result<(), String> {
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel::<Job>();
    let queue: Queue = Arc::new(Mutex::new(jobs_rx));
    let starts: Vec<_> = (0..settings.processes.max(1)).map(|_| spawn(&settings.python)).collect();
    let loaded: Loaded = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
    let mut controls = Vec::new();
    for started in futures_util::future::join_all(starts).await {
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        controls.push(control_tx);
        tokio::spawn(serve_jobs(started?, queue.clone(), control_rx, loaded.clone(), settings.python.clone()));
    }
    tracing::info!(processes = settings.processes.max(1), multi_model = settings.multi_model, "serving");
    let app = if settings.multi_model {
        let multi = Arc::new(MultiModels { jobs: jobs_tx, loaded, controls });
        axum::Router::new()
            .route("/ping", get(|| async { StatusCode::OK }))
            .route("/models", post(load_model).get(list_models))
            .route("/models/{name}", get(describe_model).delete(unload_model))
            .route("/models/{name}/invoke", post(invoke_model))
            .layer(axum::extract::DefaultBodyLimit::max(6 * 1024 * 1024))
            .with_state(multi)
    } else {
        axum::Router::new()
            .route("/ping", get(|| async { StatusCode::OK }))
            .route("/invocations", post(invoke))
            .layer(axum::extract::DefaultBodyLimit::max(6 * 1024 * 1024))
            .with_state(jobs_tx)
    };
    let listener = tokio::net::TcpListener::bind((settings.bind, settings.port)).await.map_err(|e| format!("cannot listen: {e}"))?;
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
    let mut process = Process { _child: child, stdin, stdout };
    let (header, _) =
        read_frame(&mut process.stdout).await.map_err(|e| format!("the Python process ended while loading the model: {e}"))?;
    if let Some(error) = header.get("error").and_then(|e| e.as_str()) {
        let tail: Vec<&str> = error.lines().rev().take(6).collect();
        return Err(format!("loading the model failed: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | ")));
    }
    Ok(process)
}

/// One Python process's loop: carry out a load or unload when one comes, else take the
/// waiting requests, send them as one frame, answer each.
async fn serve_jobs(mut process: Process, queue: Queue, mut controls: mpsc::UnboundedReceiver<Control>, loaded: Loaded, python: PathBuf) {
    loop {
        let jobs = tokio::select! {
            biased;
            Some(control) = controls.recv() => {
                let done = control_exchange(&mut process, &control.header).await;
                let failed = matches!(done, Err(ControlError::Broken(_)));
                let _ = control.reply.send(done.map_err(|e| e.to_string()));
                if failed {
                    process = respawn(&python, &loaded).await;
                }
                continue;
            }
            jobs = take_jobs(&queue) => match jobs {
                Some(jobs) => jobs,
                None => return,
            },
        };
        match exchange(&mut process, &jobs).await {
            Ok(answers) => {
                for (job, answer) in jobs.into_iter().zip(answers) {
                    let _ = job.reply.send(answer);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "a Python process failed; starting another");
                for job in jobs {
                    let body = format!("the Python process serving this request failed ({e})").into_bytes();
                    let _ = job.reply.send(Answer { status: 500, content_type: "text/plain".into(), body });
                }
                process = respawn(&python, &loaded).await;
            }
        }
    }
}

/// The next requests waiting (at most [`MAX_BATCH`]); None once the server stops.
async fn take_jobs(queue: &Queue) -> Option<Vec<Job>> {
    let mut rx = queue.lock().await;
    let first = rx.recv().await?;
    let mut jobs = vec![first];
    while jobs.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
    Some(jobs)
}

/// A new Python process in place of one that failed, with the multi-model instance's models
/// loaded again; the instance stops if none can start.
async fn respawn(python: &PathBuf, loaded: &Loaded) -> Process {
    let mut process = match spawn(python).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a Python process again; the instance stops");
            std::process::exit(1);
        }
    };
    let models = loaded.lock().await.clone();
    for (name, url) in models {
        if let Err(e) = control_exchange(&mut process, &json!({ "load": { "name": name, "url": url } })).await {
            tracing::error!(model = %name, error = %e, "a started Python process cannot load a model again; the instance stops");
            std::process::exit(1);
        }
    }
    process
}

/// Why a load or unload did not happen.
#[derive(Debug, thiserror::Error)]
enum ControlError {
    /// The handler or model failed to load (its traceback's last lines).
    #[error("{0}")]
    Refused(String),
    /// The process's pipes broke: it is replaced.
    #[error("the Python process failed: {0}")]
    Broken(std::io::Error),
}

/// Sends a load or unload frame and reads its answer.
async fn control_exchange(process: &mut Process, header: &serde_json::Value) -> Result<(), ControlError> {
    write_frame(&mut process.stdin, header, &[]).await.map_err(ControlError::Broken)?;
    let (answer, _) = read_frame(&mut process.stdout).await.map_err(ControlError::Broken)?;
    match answer.get("error").and_then(|e| e.as_str()) {
        Some(error) => {
            let tail: Vec<&str> = error.lines().rev().take(6).collect();
            Err(ControlError::Refused(tail.into_iter().rev().collect::<Vec<_>>().join(" | ")))
        }
        None => Ok(()),
    }
}

/// Sends a batch and reads its answers, one per request, in order.
async fn exchange(process: &mut Process, jobs: &[Job]) -> std::io::Result<Vec<Answer>> {
    let requests: Vec<_> = jobs
        .iter()
        .map(|j| json!({ "content_type": j.content_type, "accept": j.accept, "length": j.body.len(), "model": j.model }))
        .collect();
    let bodies: Vec<&[u8]> = jobs.iter().map(|j| j.body.as_ref()).collect();
    write_frame(&mut process.stdin, &json!({ "requests": requests }), &bodies).await?;
    let (header, body) = read_frame(&mut process.stdout).await?;
    let answers =
        header.get("answers").and_then(|a| a.as_array()).ok_or_else(|| std::io::Error::other("an answer frame without answers"))?;
    if answers.len() != jobs.len() {
        return Err(std::io::Error::other(format!("{} answers to {} requests", answers.len(), jobs.len())));
    }
    let mut offset = 0usize;
    let mut out = Vec::with_capacity(answers.len());
    for a in answers {
        let length = a.get("length").and_then(|l| l.as_u64()).unwrap_or(0) as usize;
        let part = body.get(offset..offset + length).ok_or_else(|| std::io::Error::other("answer lengths past the frame"))?;
        offset += length;
        out.push(Answer {
            status: a.get("status").and_then(|s| s.as_u64()).and_then(|s| u16::try_from(s).ok()).unwrap_or(500),
            content_type: a.get("content_type").and_then(|c| c.as_str()).unwrap_or("application/json").to_string(),
            body: part.to_vec(),
        });
    }
    Ok(out)
}

async fn invoke(State(jobs): State<mpsc::UnboundedSender<Job>>, headers: HeaderMap, body: Bytes) -> Response {
    answer(&jobs, None, &headers, body).await
}

/// Queues a request (for `model` of a multi-model instance) and answers with what its Python
/// process answered.
async fn answer(jobs: &mpsc::UnboundedSender<Job>, model: Option<String>, headers: &HeaderMap, body: Bytes) -> Response {
    let header = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).unwrap_or("").to_string();
    let (reply, answer) = oneshot::channel();
    let job = Job { model, content_type: header(CONTENT_TYPE), accept: header(ACCEPT), body, reply };
    if jobs.send(job).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the worker is stopping").into_response();
    }
    match answer.await {
        Ok(a) => {
            let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, [(CONTENT_TYPE, a.content_type)], a.body).into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the request was lost").into_response(),
    }
}

fn message(status: StatusCode, text: String) -> Response {
    (status, axum::Json(json!({ "message": text }))).into_response()
}

/// `POST /models`: every Python process loads the model (its handler from the archive's `code/`).
async fn load_model(State(multi): State<Arc<MultiModels>>, axum::Json(req): axum::Json<ModelLoadRequest>) -> Response {
    if !is_model_name(&req.model_name) {
        return message(StatusCode::BAD_REQUEST, format!("'{}' is not a model name this worker takes", req.model_name));
    }
    let mut loaded = multi.loaded.lock().await;
    if loaded.contains_key(&req.model_name) {
        return message(StatusCode::CONFLICT, format!("Model {} is already loaded", req.model_name));
    }
    let header = json!({ "load": { "name": req.model_name, "url": req.url } });
    if let Err(e) = broadcast(&multi, &header).await {
        // Whatever processes loaded it let go of it.
        let _ = broadcast(&multi, &json!({ "unload": req.model_name })).await;
        return message(StatusCode::BAD_REQUEST, format!("loading model {} failed: {e}", req.model_name));
    }
    tracing::info!(name = %req.model_name, url = %req.url, "model loaded");
    loaded.insert(req.model_name.clone(), req.url);
    message(StatusCode::OK, format!("Model {} loaded", req.model_name))
}

/// Sends a load or unload to every Python process; the first failure, if any.
async fn broadcast(multi: &MultiModels, header: &serde_json::Value) -> Result<(), String> {
    let mut replies = Vec::new();
    for control in &multi.controls {
        let (reply, done) = oneshot::channel();
        if control.send(Control { header: header.clone(), reply }).is_ok() {
            replies.push(done);
        }
    }
    for done in replies {
        done.await.map_err(|_| "a Python process stopped".to_string())??;
    }
    Ok(())
}

async fn unload_model(State(multi): State<Arc<MultiModels>>, axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let mut loaded = multi.loaded.lock().await;
    if loaded.remove(&name).is_none() {
        return message(StatusCode::NOT_FOUND, format!("Model {name} is not loaded"));
    }
    let _ = broadcast(&multi, &json!({ "unload": name })).await;
    tracing::info!(%name, "model unloaded");
    message(StatusCode::OK, format!("Model {name} unloaded"))
}

async fn list_models(State(multi): State<Arc<MultiModels>>) -> Response {
    let loaded = multi.loaded.lock().await;
    let models: Vec<_> = loaded.iter().map(|(name, url)| json!({ "modelName": name, "modelUrl": url })).collect();
    axum::Json(json!({ "models": models })).into_response()
}

async fn describe_model(State(multi): State<Arc<MultiModels>>, axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match multi.loaded.lock().await.get(&name) {
        Some(url) => axum::Json(json!({ "modelName": name, "modelUrl": url })).into_response(),
        None => message(StatusCode::NOT_FOUND, format!("Model {name} is not loaded")),
    }
}

async fn invoke_model(
    State(multi): State<Arc<MultiModels>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !multi.loaded.lock().await.contains_key(&name) {
        return message(StatusCode::NOT_FOUND, format!("Model {name} is not loaded"));
    }
    answer(&multi.jobs, Some(name), &headers, body).await
}

async fn write_frame(stdin: &mut ChildStdin, header: &serde_json::Value, bodies: &[&[u8]]) -> std::io::Result<()> {
    let head = serde_json::to_vec(header)?;
    let total: usize = bodies.iter().map(|b| b.len()).sum();
    let mut frame = Vec::with_capacity(8 + head.len() + total);
    frame.extend_from_slice(&(head.len() as u32).to_be_bytes());
    frame.extend_from_slice(&head);
    frame.extend_from_slice(&(u32::try_from(total).map_err(std::io::Error::other)?).to_be_bytes());
    for b in bodies {
        frame.extend_from_slice(b);
    }
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
