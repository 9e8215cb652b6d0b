use crate::cgroup::{join_in_child, InstanceCgroup, MemoryCgroups};
use crate::health::PingClient;
use crate::{BoxFuture, InstanceBackend, InstanceError, InstanceEvent, InstanceSlot, InstanceSpec};
use berth_domain::Image;
use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Timings of instance supervision.
#[derive(Debug, Clone)]
pub struct SupervisorSettings {
    /// How often a running instance's `/ping` is checked.
    pub health_interval: Duration,
    /// Consecutive failed health checks after which the instance is restarted.
    pub unhealthy_after: u32,
    /// How long in-flight requests may take to finish when an instance is retired.
    pub drain_timeout: Duration,
    /// Time between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// The longest wait between restarts of a crashing instance.
    pub max_backoff: Duration,
    /// The program that runs built-in images, as `<program> worker <name> serve` (berth itself).
    pub builtin_program: PathBuf,
    /// Where instances get memory cgroups limited to their spec's memory; None: not limited.
    pub memory_cgroups: Option<Arc<MemoryCgroups>>,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        SupervisorSettings {
            health_interval: Duration::from_secs(2),
            unhealthy_after: 3,
            drain_timeout: Duration::from_secs(60),
            stop_grace: Duration::from_secs(5),
            max_backoff: Duration::from_secs(30),
            builtin_program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("berth")),
            memory_cgroups: None,
        }
    }
}

/// Runs `exec:` images as child processes of the server.
///
/// Each child gets its own process group (so stopping it stops what it started) and dies
/// with the server even on `kill -9` (`PR_SET_PDEATHSIG`).
pub struct ProcessBackend {
    ping: PingClient,
    settings: SupervisorSettings,
}

impl ProcessBackend {
    pub fn new(settings: SupervisorSettings) -> Self {
        ProcessBackend { ping: PingClient::new(), settings }
    }
}

/// A running instance. Dropping it without [`Instance::stop`] still ends the process.
pub struct Instance {
    slot: Arc<InstanceSlot>,
    stop_tx: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Instance {
    pub fn slot(&self) -> &Arc<InstanceSlot> {
        &self.slot
    }

    /// Takes the instance out of rotation, lets its in-flight requests finish (bounded by the
    /// drain timeout), then stops the process: SIGTERM, grace period, SIGKILL.
    pub async fn stop(self) {
        let _ = self.stop_tx.send(true);
        let _ = self.task.await;
    }
}

impl ProcessBackend {
    /// The instance's memory cgroup, when berth limits memory here and the spec has a limit.
    /// An instance whose cgroup cannot be made runs unlimited, with a warning.
    fn memory_cgroup(&self, spec: &InstanceSpec) -> Option<InstanceCgroup> {
        let (cgroups, limit) = (self.settings.memory_cgroups.as_ref()?, spec.memory_limit_bytes?);
        cgroups
            .create(&spec.id, limit)
            .inspect_err(|reason| tracing::warn!(instance = %spec.id, %reason, "instance runs without a memory limit"))
            .ok()
    }
}

impl InstanceBackend for ProcessBackend {
    fn start(&self, spec: InstanceSpec) -> BoxFuture<'_, Result<Instance, InstanceError>> {
        Box::pin(async move {
            let slot = Arc::new(InstanceSlot::new(spec.id.clone()));
            let (stop_tx, stop_rx) = watch::channel(false);
            let (ready_tx, ready_rx) = oneshot::channel();
            let cgroup = self.memory_cgroup(&spec);
            let supervisor =
                InstanceSupervisor { spec, slot: slot.clone(), ping: self.ping.clone(), settings: self.settings.clone(), stop_rx, cgroup };
            let task = tokio::spawn(supervisor.run(ready_tx));
            match ready_rx.await {
                Ok(Ok(())) => Ok(Instance { slot, stop_tx, task }),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(InstanceError::StartFailed("the instance supervisor ended unexpectedly".into())),
            }
        })
    }
}

/// Owns one child process: starts it, watches it, restarts it, stops it.
struct InstanceSupervisor {
    spec: InstanceSpec,
    slot: Arc<InstanceSlot>,
    ping: PingClient,
    settings: SupervisorSettings,
    stop_rx: watch::Receiver<bool>,
    /// Dropped (removed) with the supervisor, after the last process is gone.
    cgroup: Option<InstanceCgroup>,
}

enum Ready {
    Healthy(Child),
    Failed(String),
    Stopped,
}

impl InstanceSupervisor {
    async fn run(mut self, ready_tx: oneshot::Sender<Result<(), InstanceError>>) {
        let mut child = match self.start_healthy(1).await {
            Ready::Healthy(child) => child,
            Ready::Failed(reason) => {
                let _ = ready_tx.send(Err(InstanceError::StartFailed(reason)));
                return;
            }
            Ready::Stopped => {
                let _ = ready_tx.send(Err(InstanceError::StartFailed("stopped before it became healthy".into())));
                return;
            }
        };
        self.slot.set_healthy(true);
        tracing::info!(instance = %self.spec.id, addr = %self.slot.addr(), "instance healthy");
        self.tell(InstanceEvent::Started { pid: child.id().unwrap_or(0), port: self.slot.addr().port() });
        let _ = ready_tx.send(Ok(()));

        let mut failed_checks = 0u32;
        let mut attempt = 1u32;
        let mut health = tokio::time::interval(self.settings.health_interval);
        health.tick().await;
        loop {
            tokio::select! {
                status = child.wait() => {
                    self.slot.set_healthy(false);
                    let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()) + &self.out_of_memory();
                    tracing::warn!(instance = %self.spec.id, %status, log = %self.spec.log_path.display(), "instance exited; restarting it");
                    self.slot.set_pid(None);
                    self.tell(InstanceEvent::Crashed { status });
                    match self.restart(&mut attempt).await {
                        Some(c) => child = c,
                        None => return,
                    }
                    failed_checks = 0;
                }
                _ = self.stop_rx.changed() => break,
                _ = health.tick() => {
                    if self.ping.ping(self.slot.addr(), Duration::from_secs(2)).await {
                        failed_checks = 0;
                    } else {
                        failed_checks += 1;
                        if failed_checks >= self.settings.unhealthy_after {
                            tracing::warn!(instance = %self.spec.id, failed_checks, "instance fails its health checks; killing it");
                            self.slot.set_healthy(false);
                            self.tell(InstanceEvent::Unhealthy { failed_checks });
                            signal_group(&child, libc::SIGKILL);
                        }
                    }
                }
            }
        }
        self.retire(child).await;
    }

    /// Restarts a crashed instance with exponential backoff until it is healthy again.
    /// Returns None when the instance is stopped meanwhile.
    async fn restart(&mut self, attempt: &mut u32) -> Option<Child> {
        let mut backoff = Duration::from_millis(250);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.stop_rx.changed() => return None,
            }
            *attempt += 1;
            match self.start_healthy(*attempt).await {
                Ready::Healthy(child) => {
                    self.slot.count_restart();
                    self.slot.set_healthy(true);
                    tracing::info!(instance = %self.spec.id, attempt = *attempt, "instance restarted and healthy");
                    self.tell(InstanceEvent::Restarted { attempt: *attempt });
                    return Some(child);
                }
                Ready::Failed(reason) => {
                    tracing::warn!(instance = %self.spec.id, %reason, "instance restart failed");
                    self.tell(InstanceEvent::RestartFailed { reason });
                    backoff = (backoff * 2).min(self.settings.max_backoff);
                }
                Ready::Stopped => return None,
            }
        }
    }

    /// Launches the process and waits for its first passing `/ping`.
    async fn start_healthy(&mut self, attempt: u32) -> Ready {
        let port = match free_port() {
            Ok(p) => p,
            Err(e) => return Ready::Failed(format!("no free port for instance {}: {e}", self.spec.id)),
        };
        self.slot.set_port(port);
        let cgroup = self.cgroup.as_ref().map(|c| c.procs_file().to_owned());
        let child = match launch(&self.spec, port, attempt, &self.settings.builtin_program, cgroup) {
            Ok(c) => c,
            Err(e) => return Ready::Failed(e),
        };
        self.slot.set_pid(child.id());
        let ready = self.wait_healthy(child).await;
        if !matches!(ready, Ready::Healthy(_)) {
            self.slot.set_pid(None);
        }
        ready
    }

    /// Waits for a launched process's first passing `/ping`, its exit, the startup timeout or a stop.
    async fn wait_healthy(&mut self, mut child: Child) -> Ready {
        let deadline = Instant::now() + self.spec.startup_timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let out_of_memory = self.out_of_memory();
                    return Ready::Failed(format!(
                        "The container of instance {} exited ({status}{out_of_memory}) before it passed its /ping health check.{}",
                        self.spec.id,
                        log_tail(&self.spec.log_path)
                    ));
                }
                Ok(None) => {}
                Err(e) => return Ready::Failed(format!("cannot watch instance {}: {e}", self.spec.id)),
            }
            if self.ping.ping(self.slot.addr(), Duration::from_secs(1)).await {
                return Ready::Healthy(child);
            }
            if Instant::now() >= deadline {
                terminate(&mut child, self.settings.stop_grace).await;
                return Ready::Failed(format!(
                    "The container of instance {} did not pass its /ping health check within {} seconds.{}",
                    self.spec.id,
                    self.spec.startup_timeout.as_secs(),
                    log_tail(&self.spec.log_path)
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.stop_rx.changed() => {
                    terminate(&mut child, self.settings.stop_grace).await;
                    return Ready::Stopped;
                }
            }
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    async fn retire(self, mut child: Child) {
        self.slot.set_healthy(false);
        let deadline = Instant::now() + self.settings.drain_timeout;
        while self.slot.outstanding() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        terminate(&mut child, self.settings.stop_grace).await;
        self.slot.set_pid(None);
        tracing::info!(instance = %self.spec.id, "instance stopped");
        self.tell(InstanceEvent::Stopped);
    }

    /// Says so when the kernel killed one of the instance's processes for its memory limit
    /// since the last time it was asked.
    fn out_of_memory(&self) -> String {
        let Some(cgroup) = &self.cgroup else { return String::new() };
        let kills = cgroup.oom_kills();
        if kills <= self.slot.oom_kills() {
            return String::new();
        }
        self.slot.set_oom_kills(kills);
        format!(
            "; killed by the kernel for going past its memory limit of {} MiB ({})",
            cgroup.limit_bytes() / (1024 * 1024),
            self.spec.environment.get("BERTH_INSTANCE_TYPE").map_or("its memory size", String::as_str)
        )
    }

    fn tell(&self, event: InstanceEvent) {
        if let Some(observer) = &self.spec.observer {
            observer(&self.spec.id, event);
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

fn launch(spec: &InstanceSpec, port: u16, attempt: u32, builtin_program: &Path, cgroup: Option<CString>) -> Result<Child, String> {
    let (program, args): (&Path, Vec<&str>) = match &spec.image {
        Image::Exec(program) => (program, vec!["serve"]),
        Image::Builtin(image) => (builtin_program, vec!["worker", image.worker_name(), "serve"]),
    };
    if let Some(dir) = spec.log_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create log directory {}: {e}", dir.display()))?;
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log_path)
        .map_err(|e| format!("cannot open instance log {}: {e}", spec.log_path.display()))?;
    let _ = writeln!(log, "---- berth: starting instance {} (attempt {attempt}) on port {port} ----", spec.id);
    let stderr = log.try_clone().map_err(|e| e.to_string())?;
    let parent_pid = std::process::id() as libc::pid_t;
    let mut cmd = Command::new(program);
    cmd.args(&args)
        .envs(&spec.environment)
        .env("SAGEMAKER_BIND_TO_PORT", port.to_string())
        .env("SM_MODEL_DIR", &spec.model_dir)
        .current_dir(&spec.model_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr))
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and only calls
    // async-signal-safe functions (prctl, getppid, _exit, and open/write/close to join the cgroup).
    unsafe {
        cmd.pre_exec(move || {
            // The worker dies with the server, even when the server is killed with SIGKILL.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent_pid {
                libc::_exit(1);
            }
            // Joined before exec, so everything the worker starts is inside its limit.
            match &cgroup {
                Some(procs) => join_in_child(procs),
                None => Ok(()),
            }
        });
    }
    cmd.spawn().map_err(|e| format!("cannot start {}: {e}", program.display()))
}

fn signal_group(child: &Child, signal: libc::c_int) {
    if let Some(pid) = child.id() {
        // SAFETY: killpg has no memory-safety preconditions; the group id is the child's pid.
        unsafe {
            libc::killpg(pid as libc::pid_t, signal);
        }
    }
}

/// SIGTERM to the instance's process group, then SIGKILL after `grace`.
async fn terminate(child: &mut Child, grace: Duration) {
    let pid = child.id();
    signal_group(child, libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        signal_group(child, libc::SIGKILL);
        let _ = child.wait().await;
    }
    if let Some(pid) = pid {
        // Whatever the worker left behind in its group goes too.
        unsafe {
            libc::killpg(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

/// The end of an instance log, for failure reasons a person can act on.
fn log_tail(path: &Path) -> String {
    const TAIL: u64 = 600;
    let Ok(mut f) = std::fs::File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(TAIL)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("---- berth:")).collect();
    if lines.is_empty() {
        return format!(" Its log ({}) is empty.", path.display());
    }
    format!(" Last lines of its log ({}): {}", path.display(), lines.join(" | "))
}
