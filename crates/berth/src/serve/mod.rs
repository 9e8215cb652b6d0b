//! `berth serve`: wires the layers together and runs until SIGTERM or Ctrl-C.

use anyhow::Context;
use berth_aws::Edge;
use berth_control::{Controller, ControllerSettings, Limits};
use berth_domain::Account;
use berth_instances::{
    AllowedRoots, DockerBackend, ExtractLimits, FrameworkRuntime, ImageBackends, InstanceBudget, MemoryCgroups, ModelArtifacts,
    ProcessBackend, ProcessTracker, SupervisorSettings,
};
use berth_kubernetes::KubernetesBackend;
use berth_python::{PythonBackend, PythonEnvironments};
use berth_router::{Forwarder, Router, RoutingTable};
use berth_store::{PostgresStore, SqliteStore, StateStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{error, info, warn};

mod args;
mod kubernetes;

pub use args::ServeArgs;

/// How often every reconciler goes over all it reconciles, beside acting on each change.
const RESYNC_INTERVAL: Duration = Duration::from_secs(10);

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
    let ansi = crate::colors();
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
    let (security, demo_key) = crate::security::security(crate::security::SecurityArgs {
        listen: args.listen,
        auth: &args.auth,
        credentials_file: args.credentials_file.as_deref(),
        allow_unauthenticated: args.allow_unauthenticated,
        allowed_hosts: &args.allowed_hosts,
        tls: tls.is_some(),
        body_timeout: Duration::from_secs(args.body_timeout.max(1)),
        max_body_memory: usize::try_from(args.max_body_memory.unwrap_or_else(|| share_of_memory(8, 64 << 20, 4 << 30)))
            .unwrap_or(usize::MAX),
        demo: args.demo,
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
    // Watched from here on (a standby stops on it too), and told to whoever waits on `stopped`.
    let signal = shutdown_signal();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        signal.await;
        stop_tx.send_replace(true);
    });
    if args.store.is_some() && args.listen.ip().is_unspecified() && args.advertise_url.is_none() {
        anyhow::bail!(
            "berth listens on every address ({}) and shares a store: give the URL the cluster's other servers reach this one at \
             with --advertise-url (in a pod, http://$(POD_IP):{})",
            args.listen,
            args.listen.port()
        );
    }
    let (store, shared) = open_store(args.store.clone(), &data_dir).await?;
    // On a shared store this server serves only while it leads the cluster.
    let mut cluster = match (shared.clone(), &args.store) {
        (Some(shared), Some(url)) => {
            let node = args.node_name.clone().unwrap_or_else(crate::cluster::host_name);
            Some(crate::cluster::Cluster::join(url, shared, &node).await?)
        }
        _ => None,
    };

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
        // The cluster's standbys learn the routes without a retired instance before it stops.
        retire_grace: if cluster.is_some() { crate::replication::RETIRE_GRACE } else { Duration::ZERO },
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
    let pods = match args.backend.as_str() {
        "kubernetes" => {
            Some(Arc::new(kubernetes::backend(&args, &data_dir, cluster.as_ref().map(|c| c.name.as_str()), &supervision, &budget).await?))
        }
        _ => None,
    };
    let containers = Arc::new(DockerBackend::new(args.docker.clone(), args.docker_pull == "missing", &data_dir, supervision, budget));
    if let Some(cluster) = &cluster {
        containers.join_cluster(&cluster.name);
    }
    let removed = containers.remove_leftovers().await;
    if removed > 0 {
        warn!(containers = removed, "removed containers an earlier berth on this data directory left");
    }
    if pods.is_none() {
        info!(engine = %args.docker.describe(), pull = %args.docker_pull, "container images run through the Docker engine");
    }
    let python = (args.python_runtime == "on").then(|| {
        let environments = PythonEnvironments::new(data_dir.join("python"), args.python.clone(), args.offline);
        Arc::new(PythonBackend::new(processes.clone(), environments)) as Arc<dyn FrameworkRuntime>
    });
    if pods.is_none() {
        info!(
            runtime = %args.python_runtime,
            interpreter = %args.python,
            offline = args.offline,
            "berth/python and framework images without Docker run the model's own code through berth's Python runtime"
        );
    }
    let onnx_runtime: Arc<dyn berth_instances::Prerequisite> =
        Arc::new(crate::onnxruntime::OnnxRuntimeInstaller::new(data_dir.clone(), args.offline));
    let backend = Arc::new(ImageBackends {
        processes: processes.clone(),
        containers: containers.clone(),
        python,
        onnx_runtime: Some(onnx_runtime),
        pods: pods.clone().map(|p| p as Arc<dyn berth_instances::InstanceBackend>),
    });
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
        // On Kubernetes the model's code runs in a pod of its own, never as berth's user.
        python_runtime: args.python_runtime == "on" || pods.is_some(),
        model_loader_port: pods.is_some().then_some(berth_kubernetes::MODEL_LOADER_PORT),
        clock: Arc::new(berth_domain::SystemClock),
        instance_prices: instance_prices(args.instance_prices.as_deref())?,
        require_approved_packages: args.require_approved_packages,
        registry_notifier: args.registry_webhook.clone().map(crate::webhook::notifier).transpose()?,
    };

    let listener = Arc::new(tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?);
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!(%addr, scheme, auth = %args.auth, data_dir = %data_dir.display(), "berth listening");
    // One line on stdout for scripts and tests that start berth on port 0.
    println!("berth listening on {scheme}://{addr}");
    if let Some(cluster) = &cluster {
        cluster.serving_at(args.advertise_url.as_deref().unwrap_or(&format!("{scheme}://{addr}")));
    }
    let term = Term {
        args: &args,
        store,
        shared: shared.filter(|_| cluster.is_some()),
        node: cluster.as_ref().map(|c| c.node.clone()),
        backend,
        pods: pods.clone(),
        artifacts,
        settings,
        capture_buffer,
        security: Arc::new(security),
        tls,
        listener,
        addr,
        scheme,
        max_connections,
        data_dir: data_dir.clone(),
        demo_key: demo_key.map(Arc::new),
    };
    loop {
        // In a cluster, a server that does not lead forwards what it is sent to the leader,
        // until it leads itself.
        if let Some(cluster) = &mut cluster {
            let limits = crate::forwarding::Limits { max_connections, header_timeout: Duration::from_secs(args.header_timeout.max(1)) };
            let standby = crate::cluster::StandbySettings {
                security: term.security.clone(),
                account_id: args.account_id.clone(),
                invocation_timeout: Duration::from_secs(args.invocation_timeout),
            };
            let mut stop = Box::pin(stopped(stop_rx.clone()));
            if cluster.lead_forwarding(&term.listener, term.tls.clone(), &limits, &standby, &mut stop).await?.is_none() {
                info!(node = %cluster.node, "berth stopped while standing by");
                break;
            }
        }
        if let Some(pods) = &pods {
            // Pods a berth that ran before left (killed, restarted, or a leader that died) are
            // adopted by this term's instances of the same endpoint variant and spec.
            let waiting = pods.claim_leftovers().await;
            if waiting > 0 {
                info!(pods = waiting, "running pods a berth that ran before left wait to be adopted");
            }
        }
        if cluster.is_some() {
            // A dead leader's running containers are adopted by this term's instances of the
            // same endpoint variant and spec; what none adopts goes once the endpoints settle.
            let waiting = containers.claim_cluster_leftovers().await;
            if waiting > 0 {
                info!(containers = waiting, "running containers a server that led before left wait to be adopted");
            }
        }
        let deposed = term.serve(stop_rx.clone(), cluster.as_ref().map(|c| c.deposed())).await?;
        // Whatever instances left running (helpers that left their session) goes with them.
        processes.kill_leftovers();
        containers.remove_leftovers().await;
        match deposed {
            Some(leader) => warn!(%leader, "another server leads the cluster now: this one stopped its endpoints and stands by again"),
            None => break,
        }
    }
    if let Some(cgroups) = memory_cgroups {
        cgroups.remove();
    }
    // The election's thread is joined off the runtime.
    tokio::task::spawn_blocking(move || drop(cluster)).await.context("leaving the cluster")?;
    info!("berth stopped");
    Ok(())
}

/// Resolves once no endpoint is being created, updated or recovered (or after ten minutes).
async fn settled(controller: &Controller) {
    use berth_domain::EndpointStatus::{Creating, SystemUpdating, Updating};
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(endpoints) = controller.all_endpoints().await {
            if !endpoints.iter().any(|e| matches!(e.status, Creating | Updating | SystemUpdating)) {
                return;
            }
        }
    }
}

/// Resolves once berth is told to stop.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// What one term of serving needs: berth alone serves one term, from start to stop; a server of
/// a cluster serves one each time it comes to lead, and stands by between them.
struct Term<'a> {
    args: &'a ServeArgs,
    store: Arc<dyn StateStore>,
    /// The cluster's store, when this server is one of a cluster's (named `node`).
    shared: Option<Arc<PostgresStore>>,
    node: Option<String>,
    backend: Arc<ImageBackends>,
    /// The key pair berth made for the demo, when it listens beyond loopback with no authentication.
    demo_key: Option<Arc<crate::security::DemoKey>>,
    /// With `--backend kubernetes`, what runs every instance.
    pods: Option<Arc<KubernetesBackend>>,
    artifacts: ModelArtifacts,
    settings: ControllerSettings,
    capture_buffer: u64,
    security: Arc<berth_aws::Security>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    listener: Arc<tokio::net::TcpListener>,
    addr: std::net::SocketAddr,
    scheme: &'static str,
    max_connections: usize,
    data_dir: std::path::PathBuf,
}

impl Term<'_> {
    /// Serves (the controller, its endpoints and background work, the edge on the listener)
    /// until berth is told to stop, or until another server leads (`deposed` resolves: then
    /// its name), and stops what it started.
    async fn serve(
        &self,
        stop: watch::Receiver<bool>,
        deposed: Option<impl std::future::Future<Output = String> + Send + 'static>,
    ) -> anyhow::Result<Option<String>> {
        let args = self.args;
        let routing = Arc::new(RoutingTable::with_capture_buffer(usize::try_from(self.capture_buffer).unwrap_or(usize::MAX)));
        let controller =
            Controller::new(self.store.clone(), self.backend.clone(), self.artifacts.clone(), routing.clone(), self.settings.clone());
        let router = Arc::new(Router::new(routing.clone(), Forwarder::new(Duration::from_secs(args.invocation_timeout))));
        controller.attach_router(Router::clone(&router));
        // It stops on SIGTERM or SIGINT, or when another server comes to lead the cluster.
        let deposed_by: Arc<std::sync::Mutex<Option<String>>> = Default::default();
        let mut stopping = stop.clone();
        let until = {
            let deposed_by = deposed_by.clone();
            async move {
                let Some(deposed) = deposed else { return stopped(stop).await };
                tokio::select! {
                    () = stopped(stop) => {}
                    leader = deposed => *deposed_by.lock().unwrap_or_else(|e| e.into_inner()) = Some(leader),
                }
            }
        };
        let (addr, scheme) = (self.addr, self.scheme);
        // The stored endpoints are marked for recovery before the edge answers (so that none is
        // described as serving before its instances are back); their instances start in the
        // background. Tried again while the store cannot be read, unless berth is told to stop.
        while let Err(e) = controller.recover().await {
            error!(error = %e, "recovering endpoints failed; trying again in a second");
            if tokio::time::timeout(Duration::from_secs(1), stopping.wait_for(|s| *s)).await.is_ok() {
                break;
            }
        }
        // berth's background work, supervised: the demo first, then the loops.
        let recorder = controller.clone();
        let mut background = crate::background::Supervisor::new(Arc::new(move |task, panic| {
            recorder.record_event(
                "",
                None,
                berth_domain::EventKind::BackgroundFailed,
                format!(
                    "berth's {task} work panicked ({panic}); it goes on (a loop with its next round, a long-running task started again)."
                ),
            );
        }));
        // The demo, when asked for, is deployed and its traffic runs until shutdown; the API
        // answers meanwhile. It is idempotent, so a panic's restart does no harm.
        if args.demo {
            let (demo_controller, demo_dir) = (controller.clone(), self.data_dir.clone());
            let demo_traffic = (args.demo_traffic == "on").then(|| router.clone());
            let signed = args.auth != "none" || self.demo_key.is_some();
            let demo_key = self.demo_key.clone();
            background.keep("the demo", move || {
                let (controller, dir, traffic, key) = (demo_controller.clone(), demo_dir.clone(), demo_traffic.clone(), demo_key.clone());
                async move {
                    if let Err(e) = crate::demo::deploy(&controller, &dir).await {
                        error!(error = %e, "the demo could not be deployed");
                        return;
                    }
                    let announce = crate::demo::announce(&controller, addr, scheme, signed, key.as_deref(), traffic.is_some());
                    let send = async {
                        if let Some(router) = &traffic {
                            crate::demo::send_traffic(controller.clone(), router.clone()).await
                        }
                    };
                    tokio::join!(announce, send);
                }
            });
        }

        // The per-variant metrics history: restored from the store, then closed second by second.
        crate::metrics_history::restore(&controller, routing.metrics()).await;
        let settings = crate::metrics_history::Settings {
            retention: Duration::from_secs(args.metrics_retention_days * 24 * 3600),
            data_dir: self.data_dir.clone(),
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
        // Model Monitor's schedules: each due execution started.
        let monitoring = controller.clone();
        background.every("monitoring schedules", Duration::from_secs(5), move || {
            let controller = monitoring.clone();
            async move {
                if let Err(e) = controller.run_due_monitoring().await {
                    warn!(error = %e, "cannot start the due monitoring executions");
                }
            }
        });
        // A cluster's standbys route with the routes this server publishes, and hand it their metrics.
        if let Some(shared) = &self.shared {
            crate::replication::lead(&mut background, shared.clone(), controller.clone(), routing.clone(), self.pods.is_some());
        }
        // Once recovery settles, requests no longer wait for routes, and a dead leader's
        // containers that no instance adopted go.
        let (settling, routes, containers, pods, adopting) =
            (controller.clone(), routing.clone(), self.backend.containers.clone(), self.pods.clone(), self.shared.is_some());
        background.keep("the end of recovery", move || {
            let (controller, routes, containers, pods) = (settling.clone(), routes.clone(), containers.clone(), pods.clone());
            async move {
                settled(&controller).await;
                routes.stop_expecting();
                let removed = if adopting { containers.remove_unadopted().await } else { 0 };
                if removed > 0 {
                    warn!(containers = removed, "removed containers a server that led before left, which no instance adopted");
                }
                let removed = match &pods {
                    Some(pods) => pods.remove_unadopted().await,
                    None => 0,
                };
                if removed > 0 {
                    warn!(pods = removed, "deleted pods a berth that ran before left, which no instance adopted");
                }
            }
        });
        let (serverless, idle) = (controller.clone(), Duration::from_secs(args.serverless_idle));
        background.keep("serverless", move || serverless.clone().run_serverless(idle));
        let capture = controller.clone();
        background.keep("data capture", move || capture.clone().run_capture());
        let (queue, async_router) = (controller.clone(), Router::clone(&router));
        background.keep("asynchronous inference", move || queue.clone().run_async(async_router.clone()));

        let app =
            berth_aws::service(Edge { controller: controller.clone(), router, security: self.security.clone(), node: self.node.clone() });
        let limits = crate::listener::ConnectionLimits {
            max_connections: self.max_connections,
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
        let accepting = crate::listener::serve(self.listener.clone(), app, self.tls.clone(), limits, io_threads.handles(), until);
        tokio::spawn(accepting).await.context("HTTP server task failed")?;
        tokio::task::spawn_blocking(move || io_threads.stop()).await.context("stopping the I/O threads")?;

        background.shutdown(Duration::from_secs(10)).await;
        if let Some(pods) = &self.pods {
            // Pods outlive berth's stop: the next berth to lead (or this one, restarted) adopts them.
            pods.detach();
        }
        info!("stopping instances");
        if tokio::time::timeout(Duration::from_secs(args.drain_timeout + 10), controller.shutdown()).await.is_err() {
            warn!("instances did not stop in time; they end with the server");
        }
        let deposed = deposed_by.lock().unwrap_or_else(|e| e.into_inner()).take();
        Ok(deposed)
    }
}

/// The state store `--store` names: SQLite in the data directory when it names none, or a
/// PostgreSQL database, connected and migrated (and returned as such too, for the cluster).
async fn open_store(url: Option<String>, data_dir: &std::path::Path) -> anyhow::Result<(Arc<dyn StateStore>, Option<Arc<PostgresStore>>)> {
    let Some(url) = url else {
        let db_path = data_dir.join("state.db");
        let store = SqliteStore::open(&db_path).with_context(|| format!("opening state database {}", db_path.display()))?;
        info!(store = %db_path.display(), "state in SQLite");
        return Ok((Arc::new(store), None));
    };
    let shown = berth_store::redacted(&url);
    // The synchronous client blocks: it connects on a blocking thread.
    let store = tokio::task::spawn_blocking(move || PostgresStore::connect(&url))
        .await
        .context("opening the PostgreSQL store")?
        .with_context(|| format!("opening the state store {shown}"))?;
    info!(store = %shown, "state in PostgreSQL");
    let store = Arc::new(store);
    Ok((store.clone(), Some(store)))
}

/// `1/divisor` of the machine's memory, between `min` and `max` bytes.
fn share_of_memory(divisor: u64, min: u64, max: u64) -> u64 {
    berth_instances::host_memory_bytes().map_or(min, |m| m / divisor).clamp(min, max)
}

/// SIGTERM or SIGINT (Ctrl-C), watched from the call on (so that one sent as soon as berth says
/// it listens stops it cleanly rather than by the signal's default action).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        let (mut term, mut interrupt) = match (term, interrupt) {
            (Ok(term), Ok(interrupt)) => (term, interrupt),
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "cannot watch SIGTERM and SIGINT; berth stops only when killed");
                return std::future::pending().await;
            }
        };
        tokio::select! {
            _ = interrupt.recv() => info!("Ctrl-C received, shutting down"),
            _ = term.recv() => info!("SIGTERM received, shutting down"),
        }
    }
}

/// `--instance-prices`: instance type → USD per hour, each a valid type and a price of 0 or more.
fn instance_prices(path: Option<&std::path::Path>) -> anyhow::Result<std::collections::BTreeMap<String, f64>> {
    let Some(path) = path else { return Ok(Default::default()) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading --instance-prices {}", path.display()))?;
    let prices: std::collections::BTreeMap<String, f64> = serde_json::from_str(&text)
        .with_context(|| format!("--instance-prices {}: expected a JSON object of instance type to USD per hour", path.display()))?;
    for (instance_type, price) in &prices {
        berth_domain::validate_instance_type(instance_type).map_err(|e| anyhow::anyhow!("--instance-prices {}: {e}", path.display()))?;
        anyhow::ensure!(
            price.is_finite() && *price >= 0.0,
            "--instance-prices {}: the price of {instance_type} is not 0 or more",
            path.display()
        );
    }
    Ok(prices)
}
