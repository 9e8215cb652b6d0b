//! `berth serve`: wires the layers together and runs until SIGTERM or Ctrl-C.

use anyhow::Context;
use berth_aws::Edge;
use berth_control::{Controller, ControllerSettings, Limits};
use berth_domain::Account;
use berth_instances::{
    AllowedRoots, DockerBackend, DockerEngine, ExtractLimits, FrameworkRuntime, ImageBackends, InstanceBudget, MemoryCgroups,
    ModelArtifacts, ProcessBackend, ProcessTracker, SupervisorSettings,
};
use berth_python::{PythonBackend, PythonEnvironments};
use berth_router::{Forwarder, Router, RoutingTable};
use berth_store::SqliteStore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};

/// How often every reconciler goes over all it reconciles, beside acting on each change.
const RESYNC_INTERVAL: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed).
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory for the state database, unpacked models and instance logs.
    #[arg(long, env = "BERTH_DATA_DIR", default_value = ".berth")]
    data_dir: PathBuf,
    /// Region reported in ARNs.
    #[arg(long, env = "BERTH_REGION", default_value = "us-east-1")]
    region: String,
    /// Account id reported in ARNs.
    #[arg(long, env = "BERTH_ACCOUNT_ID", default_value = "123456789012")]
    account_id: String,
    /// Seconds an instance may take to pass `/ping` when the variant does not set
    /// ContainerStartupHealthCheckTimeoutInSeconds.
    #[arg(long, env = "BERTH_STARTUP_TIMEOUT", default_value_t = 600)]
    startup_timeout: u64,
    /// Seconds a container may take to answer one invocation (SageMaker: 60).
    #[arg(long, env = "BERTH_INVOCATION_TIMEOUT", default_value_t = 60)]
    invocation_timeout: u64,
    /// Seconds in-flight requests get to finish when an instance is retired.
    #[arg(long, env = "BERTH_DRAIN_TIMEOUT", default_value_t = 60)]
    drain_timeout: u64,
    /// Most worker instances running at once, across all endpoints.
    #[arg(long, env = "BERTH_MAX_INSTANCES", default_value_t = 64)]
    max_instances: usize,
    /// Most endpoints.
    #[arg(long, env = "BERTH_MAX_ENDPOINTS", default_value_t = 500)]
    max_endpoints: usize,
    /// Most endpoint configurations.
    #[arg(long, env = "BERTH_MAX_ENDPOINT_CONFIGS", default_value_t = 10_000)]
    max_endpoint_configs: usize,
    /// Most CloudWatch metric alarms.
    #[arg(long, env = "BERTH_MAX_ALARMS", default_value_t = 10_000)]
    max_alarms: usize,
    /// Most models.
    #[arg(long, env = "BERTH_MAX_MODELS", default_value_t = 10_000)]
    max_models: usize,
    /// Largest total size in bytes a model archive may unpack to.
    #[arg(long, env = "BERTH_MAX_MODEL_BYTES", default_value_t = 20 * 1024 * 1024 * 1024)]
    max_model_bytes: u64,
    /// Most files a model archive may contain.
    #[arg(long, env = "BERTH_MAX_MODEL_FILES", default_value_t = 100_000)]
    max_model_files: u64,
    /// Most bytes a compressed model archive may unpack to per compressed byte (checked once it
    /// unpacks to more than 64 MiB).
    #[arg(long, env = "BERTH_MAX_MODEL_EXPANSION", default_value_t = 200)]
    max_model_expansion: u64,
    /// The Docker engine that runs container images: `auto` (DOCKER_HOST, else the default unix
    /// socket), `off`, or its URL (unix:///var/run/docker.sock, tcp://host:2375).
    #[arg(long, env = "BERTH_DOCKER", default_value = "auto", value_parser = DockerEngine::parse)]
    docker: DockerEngine,
    /// Whether an image the Docker engine lacks is pulled from its registry: `never` (only
    /// images built or loaded on this machine run) or `missing`.
    #[arg(long, env = "BERTH_DOCKER_PULL", default_value = "never", value_parser = ["never", "missing"])]
    docker_pull: String,
    /// Whether berth's Python runtime serves `berth/python` and AWS's framework images
    /// (scikit-learn, XGBoost) the Docker engine does not hold: `on` runs the model's own code
    /// (its handler script and pickled model) as berth's user, so it is `off` unless allowed.
    #[arg(long, env = "BERTH_PYTHON_RUNTIME", default_value = "off", value_parser = ["off", "on"])]
    python_runtime: String,
    /// The Python interpreter the runtime's environments are made from (3.8 or newer, with venv).
    #[arg(long, env = "BERTH_PYTHON", default_value = "python3")]
    python: String,
    /// No package registry: only Python environments made earlier (`berth prepare-python`) are
    /// used, and ONNX Runtime is not installed when missing (`berth install-onnxruntime`).
    #[arg(long, env = "BERTH_OFFLINE")]
    offline: bool,
    /// A directory `exec:` programs may be run from (repeatable; `BERTH_EXEC_ROOTS` takes a
    /// `:`-separated list). Without one, `exec:` images are refused.
    #[arg(long = "exec-root", env = "BERTH_EXEC_ROOTS", value_delimiter = ':')]
    exec_roots: Vec<PathBuf>,
    /// A directory `file://` model data, capture destinations and ground-truth locations may be
    /// under (repeatable; `BERTH_FILE_ROOTS` takes a `:`-separated list). Without one, `file://`
    /// is refused.
    #[arg(long = "file-root", env = "BERTH_FILE_ROOTS", value_delimiter = ':')]
    file_roots: Vec<PathBuf>,
    /// Whether local workers (`exec:` programs, `berth/onnx`, the Python runtime and its package
    /// installs) start sandboxed: `on` confines what they read, write, run and signal as far as
    /// the kernel allows (Landlock, no capabilities, no new privileges, seccomp); `off` runs them
    /// with all of berth's user's rights.
    #[arg(long, env = "BERTH_WORKER_SANDBOX", default_value = "on", value_parser = ["on", "off"])]
    worker_sandbox: String,
    /// A directory sandboxed workers may also read and run programs from (repeatable;
    /// `BERTH_WORKER_READ` takes a `:`-separated list): an interpreter installed outside the
    /// system's directories and the installations on PATH, say.
    #[arg(long = "worker-read", env = "BERTH_WORKER_READ", value_delimiter = ':')]
    worker_read: Vec<PathBuf>,
    /// Size in bytes at which an instance's log is rotated (one older file is kept).
    #[arg(long, env = "BERTH_LOG_MAX_BYTES", default_value_t = 10 * 1024 * 1024)]
    log_max_bytes: u64,
    /// The ONNX Runtime library (libonnxruntime.so) for `berth/onnx`; found by itself when
    /// unset (python3's onnxruntime package, or <data-dir>/onnxruntime/).
    #[arg(long, env = "BERTH_ORT_DYLIB")]
    onnxruntime: Option<PathBuf>,
    /// Days of per-minute metric history kept (per-second history covers the last hour).
    #[arg(long, env = "BERTH_METRICS_RETENTION_DAYS", default_value_t = 15)]
    metrics_retention_days: u64,
    /// Seconds of metrics an autoscaling decision looks at (target tracking's window;
    /// SageMakerVariantInvocationsPerInstance is still per minute).
    #[arg(long, env = "BERTH_SCALING_WINDOW", default_value_t = 60)]
    scaling_window: u64,
    /// Seconds a serverless variant's instance may sit idle before it stops (scale to zero).
    #[arg(long, env = "BERTH_SERVERLESS_IDLE", default_value_t = 300)]
    serverless_idle: u64,
    /// Seconds between weight updates of endpoints with bandit routing or automatic promotion
    /// (tags `berth:routing`, `berth:auto-promote`).
    #[arg(long, env = "BERTH_BANDIT_INTERVAL", default_value_t = 10)]
    bandit_interval: u64,
    /// Worker memory limits: `auto` puts each instance in a memory cgroup limited to its
    /// instance type's (or serverless size's) memory where the kernel lets berth create one;
    /// `off` only reports memory use.
    #[arg(long, env = "BERTH_MEMORY_LIMITS", default_value = "auto", value_parser = ["auto", "off"])]
    memory_limits: String,
    /// Also deploy the demo: endpoint `demo`, two bundled iris models on `berth/onnx` at 1:1
    /// with data capture, and traffic with ground truth of its own (see --demo-traffic).
    #[arg(long, env = "BERTH_DEMO")]
    demo: bool,
    /// With --demo: `on` sends the demo endpoint traffic and, a few seconds later, the true
    /// labels, so its A/B test decides within about a minute; `off` stays quiet.
    #[arg(long, env = "BERTH_DEMO_TRAFFIC", default_value = "on", value_parser = ["on", "off"])]
    demo_traffic: String,
    /// Authentication: `none` accepts every request; `sigv4` checks AWS Signature Version 4 on
    /// the AWS APIs and HTTP basic auth on /metrics, /ui and /berth/v1, against the key pairs
    /// in --credentials-file.
    #[arg(long, env = "BERTH_AUTH", default_value = "none", value_parser = ["none", "sigv4"])]
    auth: String,
    /// The principals for `--auth sigv4`: a file in the AWS shared-credentials format, each
    /// profile's aws_access_key_id and aws_secret_access_key being one key pair.
    #[arg(long, env = "BERTH_CREDENTIALS_FILE")]
    credentials_file: Option<PathBuf>,
    /// Serve a non-loopback address without authentication anyway (anyone who reaches the
    /// port can then deploy and run models).
    #[arg(long, env = "BERTH_ALLOW_UNAUTHENTICATED")]
    allow_unauthenticated: bool,
    /// TLS certificate chain (PEM); with --tls-key, berth serves HTTPS.
    #[arg(long, env = "BERTH_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for --tls-cert.
    #[arg(long, env = "BERTH_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A host name requests may carry in `Host` besides loopback names and the listen
    /// address (repeatable; `*` allows any, e.g. behind a proxy that checks it).
    #[arg(long = "allowed-host", env = "BERTH_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
    /// Threads that serve connections, each with its own event loop (0: one per CPU core).
    #[arg(long, env = "BERTH_IO_THREADS", default_value_t = 0)]
    io_threads: usize,
    /// Most connections open at once; more wait until one closes.
    #[arg(long, env = "BERTH_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
    /// Seconds a connection may take to send a request's headers (and a new connection its first request).
    #[arg(long, env = "BERTH_HEADER_TIMEOUT", default_value_t = 10)]
    header_timeout: u64,
    /// Most bytes of request bodies held at once across all connections (a body that would pass
    /// it is refused with 503 ServiceUnavailable). Default: 1/8 of the machine's memory, between
    /// 64 MiB and 4 GiB.
    #[arg(long, env = "BERTH_MAX_BODY_MEMORY")]
    max_body_memory: Option<u64>,
    /// Seconds a request body may take to arrive.
    #[arg(long, env = "BERTH_BODY_TIMEOUT", default_value_t = 60)]
    body_timeout: u64,
    /// Seconds a keep-alive connection may wait for its next request.
    #[arg(long, env = "BERTH_IDLE_TIMEOUT", default_value_t = 60)]
    idle_timeout: u64,
    /// Seconds connections get to finish their requests once berth is stopping.
    #[arg(long, env = "BERTH_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    shutdown_timeout: u64,
    /// Most bytes of captured invocations held for the capture writer (beyond, captures are
    /// dropped, counted and reported; invocations are served as before). Default: 1/64 of the
    /// machine's memory, between 16 MiB and 1 GiB.
    #[arg(long, env = "BERTH_CAPTURE_BUFFER_BYTES")]
    capture_buffer_bytes: Option<u64>,
    /// Log format: `text` or `json`. Verbosity follows RUST_LOG (default `info`).
    #[arg(long, env = "BERTH_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(&args.log_format);
    if let Some(path) = &args.onnxruntime {
        // Where the server looks for ONNX Runtime; set before any thread exists.
        std::env::set_var("BERTH_ORT_DYLIB", path);
    }
    // berth's environment and memory are no worker's to read (see berth-sandbox).
    if let Err(e) = berth_sandbox::make_self_undumpable() {
        tracing::warn!(error = %e, "cannot mark berth non-dumpable: processes of its user may read its environment");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Everything about who may reach berth is checked before anything else happens.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(crate::security::tls_acceptor(cert, key)?),
        _ => None,
    };
    let security = crate::security::security(crate::security::SecurityArgs {
        listen: args.listen,
        auth: &args.auth,
        credentials_file: args.credentials_file.as_deref(),
        allow_unauthenticated: args.allow_unauthenticated,
        allowed_hosts: &args.allowed_hosts,
        tls: tls.is_some(),
        body_timeout: Duration::from_secs(args.body_timeout.max(1)),
        max_body_memory: usize::try_from(args.max_body_memory.unwrap_or_else(|| share_of_memory(8, 64 << 20, 4 << 30)))
            .unwrap_or(usize::MAX),
    })?;
    let open_files = crate::security::raise_open_file_limit();
    // Each connection takes a descriptor; leave room for instances, logs and the database.
    let max_connections = args.max_connections.clamp(1, usize::try_from(open_files.saturating_sub(512).max(64)).unwrap_or(usize::MAX));
    if max_connections < args.max_connections {
        warn!(open_files, max_connections, "the open-file limit caps --max-connections");
    }

    berth_instances::private_dir(&args.data_dir).with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize().with_context(|| format!("resolving {}", args.data_dir.display()))?;
    // State, models and logs are berth's user's alone.
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700)) {
            warn!(data_dir = %data_dir.display(), error = %e, "cannot make the data directory private");
        }
    }
    let exec_roots = AllowedRoots::new(&args.exec_roots, "--exec-root").map_err(anyhow::Error::msg)?;
    let mut file_roots = AllowedRoots::new(&args.file_roots, "--file-root").map_err(anyhow::Error::msg)?;
    if args.demo {
        berth_instances::private_dir(&data_dir.join("demo"))?;
        file_roots = file_roots.with(&data_dir.join("demo"));
    }
    info!(
        exec_roots = %if exec_roots.is_empty() { "none (exec: images refused)".to_string() } else { exec_roots.describe() },
        file_roots = %if file_roots.is_empty() { "none (file:// refused)".to_string() } else { file_roots.describe() },
        "what callers may make berth run and read"
    );
    let db_path = data_dir.join("state.db");
    let store = SqliteStore::open(&db_path).with_context(|| format!("opening state database {}", db_path.display()))?;

    let memory_cgroups = match args.memory_limits.as_str() {
        "off" => None,
        _ => match MemoryCgroups::detect() {
            Ok(cgroups) => {
                tracing::info!(cgroups = %cgroups.describe(), "worker memory limits enforced");
                Some(Arc::new(cgroups))
            }
            Err(reason) => {
                tracing::info!(%reason, "worker memory limits not enforced (memory use is still reported)");
                None
            }
        },
    };
    // Built-in images' workers are berth itself: they log as the operator asked.
    let builtin_environment = ["RUST_LOG"].iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))).collect();
    // berth's secrets: its data directory, and the files holding its keys.
    let secrets = [
        Some(("data directory", data_dir.clone())),
        args.credentials_file.clone().map(|f| ("credentials file", f)),
        args.tls_key.clone().map(|f| ("TLS key", f)),
    ];
    let secrets = secrets.into_iter().flatten().collect();
    let sandbox = crate::security::worker_sandbox(args.worker_sandbox != "off", &args.worker_read, &exec_roots, secrets)?;
    let supervision = SupervisorSettings {
        drain_timeout: Duration::from_secs(args.drain_timeout),
        memory_cgroups: memory_cgroups.clone(),
        exec_roots: exec_roots.clone(),
        builtin_environment,
        sandbox: sandbox.clone(),
        scratch_root: data_dir.join("scratch"),
        log_max_bytes: args.log_max_bytes,
        ..SupervisorSettings::default()
    };
    let budget = InstanceBudget::new(args.max_instances);
    let processes = Arc::new(ProcessBackend::new(supervision.clone(), ProcessTracker::new(&data_dir), budget.clone()));
    let containers = Arc::new(DockerBackend::new(args.docker.clone(), args.docker_pull == "missing", &data_dir, supervision, budget));
    let removed = containers.remove_leftovers().await;
    if removed > 0 {
        warn!(containers = removed, "removed containers an earlier berth on this data directory left");
    }
    info!(engine = %args.docker.describe(), pull = %args.docker_pull, "container images run through the Docker engine");
    let python = (args.python_runtime == "on").then(|| {
        let environments = PythonEnvironments::new(data_dir.join("python"), args.python.clone(), args.offline);
        Arc::new(PythonBackend::new(processes.clone(), environments)) as Arc<dyn FrameworkRuntime>
    });
    info!(
        runtime = %args.python_runtime,
        interpreter = %args.python,
        offline = args.offline,
        "berth/python and framework images without Docker run the model's own code through berth's Python runtime"
    );
    let onnx_runtime: Arc<dyn berth_instances::Prerequisite> =
        Arc::new(crate::onnxruntime::OnnxRuntimeInstaller::new(data_dir.clone(), args.offline));
    let backend =
        Arc::new(ImageBackends { processes: processes.clone(), containers: containers.clone(), python, onnx_runtime: Some(onnx_runtime) });
    let artifacts = ModelArtifacts::new(
        data_dir.join("models"),
        ExtractLimits {
            max_total_bytes: args.max_model_bytes,
            max_entries: args.max_model_files,
            max_ratio: args.max_model_expansion.max(1),
            deadline: None,
        },
        file_roots.clone(),
    );
    let capture_buffer = args.capture_buffer_bytes.unwrap_or_else(|| share_of_memory(64, 16 << 20, 1 << 30));
    let routing = Arc::new(RoutingTable::with_capture_buffer(usize::try_from(capture_buffer).unwrap_or(usize::MAX)));
    let settings = ControllerSettings {
        account: Account { region: args.region.clone(), account_id: args.account_id.clone() },
        data_dir: data_dir.clone(),
        limits: Limits {
            max_models: args.max_models,
            max_endpoint_configs: args.max_endpoint_configs,
            max_endpoints: args.max_endpoints,
            max_instances: args.max_instances,
            max_alarms: args.max_alarms,
        },
        default_startup_timeout: Duration::from_secs(args.startup_timeout),
        exec_roots,
        file_roots,
        python_runtime: args.python_runtime == "on",
        clock: Arc::new(berth_domain::SystemClock),
    };
    let controller = Controller::new(Arc::new(store), backend.clone(), artifacts, routing.clone(), settings);
    let router = Arc::new(Router::new(routing.clone(), Forwarder::new(Duration::from_secs(args.invocation_timeout))));
    controller.attach_router(Router::clone(&router));

    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!(%addr, scheme, auth = %args.auth, data_dir = %data_dir.display(), "berth listening");
    // One line on stdout for scripts and tests that start berth on port 0.
    println!("berth listening on {scheme}://{addr}");

    // berth's background work, supervised: recovery and the demo first, then the loops.
    let recorder = controller.clone();
    let mut background = crate::background::Supervisor::new(Arc::new(move |task, panic| {
        recorder.record_event(
            "",
            None,
            berth_domain::EventKind::BackgroundFailed,
            format!("berth's {task} work panicked ({panic}); it goes on (a loop with its next round, a long-running task started again)."),
        );
    }));
    // Endpoints come back in the background, then the demo is deployed (when asked) and its
    // traffic runs until shutdown; the API answers meanwhile (recovering endpoints as
    // SystemUpdating). Both are idempotent, so a panic's restart does no harm.
    let (recovering, demo, demo_dir) = (controller.clone(), args.demo, data_dir.clone());
    let demo_traffic = (args.demo && args.demo_traffic == "on").then(|| router.clone());
    let signed = args.auth != "none";
    background.keep("recovery and the demo", move || {
        let (controller, dir, traffic) = (recovering.clone(), demo_dir.clone(), demo_traffic.clone());
        async move {
            if let Err(e) = controller.recover().await {
                error!(error = %e, "recovering endpoints failed");
            }
            if !demo {
                return;
            }
            if let Err(e) = crate::demo::deploy(&controller, &dir).await {
                error!(error = %e, "the demo could not be deployed");
                return;
            }
            let announce = announce_demo(&controller, addr, scheme, signed, traffic.is_some());
            let send = async {
                if let Some(router) = &traffic {
                    crate::demo::send_traffic(controller.clone(), router.clone()).await
                }
            };
            tokio::join!(announce, send);
        }
    });

    // The per-variant metrics history: restored from the store, then closed second by second.
    crate::metrics_history::restore(&controller, routing.metrics()).await;
    let settings = crate::metrics_history::Settings {
        retention: Duration::from_secs(args.metrics_retention_days * 24 * 3600),
        data_dir: data_dir.clone(),
        scaling_window_secs: args.scaling_window.max(1),
        bandit_interval_secs: args.bandit_interval.max(1),
    };
    crate::metrics_history::start(&mut background, controller.clone(), routing.clone(), settings);
    // Every endpoint and transform job brought to what the store says, should a change have
    // been committed and not acted on (the reconcilers act on each change as it is made).
    let resyncing = controller.clone();
    background.every("reconcilers' resync", RESYNC_INTERVAL, move || {
        let controller = resyncing.clone();
        async move {
            if let Err(e) = controller.resync().await {
                warn!(error = %e, "cannot resync the reconcilers");
            }
        }
    });
    let (serverless, idle) = (controller.clone(), Duration::from_secs(args.serverless_idle));
    background.keep("serverless", move || serverless.clone().run_serverless(idle));
    let capture = controller.clone();
    background.keep("data capture", move || capture.clone().run_capture());
    let (queue, async_router) = (controller.clone(), Router::clone(&router));
    background.keep("asynchronous inference", move || queue.clone().run_async(async_router.clone()));

    let app = berth_aws::service(Edge { controller: controller.clone(), router, security: Arc::new(security) });
    let limits = crate::listener::ConnectionLimits {
        max_connections,
        header_timeout: Duration::from_secs(args.header_timeout.max(1)),
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
    };
    let io_count = match args.io_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let io_threads = crate::listener::IoThreads::start(io_count).context("starting the I/O threads")?;
    // The accept loop runs as a runtime task, not on `block_on`'s thread (woken through a futex).
    let accepting = crate::listener::serve(listener, app, tls, limits, io_threads.handles(), shutdown_signal());
    tokio::spawn(accepting).await.context("HTTP server task failed")?;
    tokio::task::spawn_blocking(move || io_threads.stop()).await.context("stopping the I/O threads")?;

    background.shutdown(Duration::from_secs(10)).await;
    info!("stopping instances");
    if tokio::time::timeout(Duration::from_secs(args.drain_timeout + 10), controller.shutdown()).await.is_err() {
        warn!("instances did not stop in time; they end with the server");
    }
    // Whatever instances left running (helpers that left their session) goes with berth.
    processes.kill_leftovers();
    containers.remove_leftovers().await;
    if let Some(cgroups) = memory_cgroups {
        cgroups.remove();
    }
    info!("berth stopped");
    Ok(())
}

/// `1/divisor` of the machine's memory, between `min` and `max` bytes.
fn share_of_memory(divisor: u64, min: u64, max: u64) -> u64 {
    berth_instances::host_memory_bytes().map_or(min, |m| m / divisor).clamp(min, max)
}

/// Prints how to call the demo once its endpoint is in service (or why it is not).
async fn announce_demo(controller: &Controller, addr: SocketAddr, scheme: &'static str, signed: bool, traffic: bool) {
    loop {
        match controller.describe_endpoint(crate::demo::ENDPOINT).await.map(|e| e.status) {
            Ok(berth_domain::EndpointStatus::InService) => {
                println!("{}", crate::demo::usage(addr, scheme, controller.account(), signed, traffic));
                return;
            }
            Ok(berth_domain::EndpointStatus::Failed) | Err(_) => {
                let reason = controller.describe_endpoint(crate::demo::ENDPOINT).await.ok().and_then(|e| e.failure_reason);
                error!(reason = reason.as_deref().unwrap_or("unknown"), "the demo endpoint failed");
                return;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops berth gracefully");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("Ctrl-C received, shutting down"),
        _ = term.recv() => info!("SIGTERM received, shutting down"),
    }
}
