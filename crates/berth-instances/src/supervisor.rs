//! Supervision of one instance, whatever runs it: start it and wait for its first passing
//! `/ping`, check its health, restart it with backoff after a crash, drain and stop it.
//! A [`Runner`] is the part that differs: a child process (`process.rs`) or a Docker container
//! (`docker.rs`).

use crate::cgroup::MemoryCgroups;
use crate::health::ping;
use crate::instance::AliveGuard;
use crate::roots::AllowedRoots;
use crate::{Instance, InstanceError, InstanceEvent, InstanceSlot, InstanceSpec};
use berth_sandbox::SandboxConfig;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use tracing::Instrument;

/// Timings of instance supervision.
#[derive(Debug, Clone)]
pub struct SupervisorSettings {
    /// How often a running instance's `/ping` is checked.
    pub health_interval: Duration,
    /// Consecutive failed health checks after which the instance is restarted.
    pub unhealthy_after: u32,
    /// How long in-flight requests may take to finish when an instance is retired.
    pub drain_timeout: Duration,
    /// The least time between a retired instance leaving the routes and its stop: in a
    /// cluster, the time other servers take to learn the routes without it (they route on
    /// routes the leader publishes, and their requests are not counted here).
    pub retire_grace: Duration,
    /// Time between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// The longest wait between restarts of a crashing instance.
    pub max_backoff: Duration,
    /// The program that runs built-in images, as `<program> worker <name> serve` (berth itself).
    pub builtin_program: PathBuf,
    /// Where instances get memory cgroups limited to their spec's memory; None: not limited.
    pub memory_cgroups: Option<Arc<MemoryCgroups>>,
    /// Where `exec:` programs may be run from (resolved again at every start).
    pub exec_roots: AllowedRoots,
    /// The operator's environment given to built-in images' workers (how to log).
    pub builtin_environment: Vec<(String, String)>,
    /// The sandbox local workers start in; None: they run with berth's user's full rights.
    pub sandbox: Option<Arc<SandboxConfig>>,
    /// Where instances' scratch directories are made (cleared when the backend starts).
    pub scratch_root: PathBuf,
    /// Size at which an instance's log is rotated (one older file, `<name>.log.1`, is kept).
    pub log_max_bytes: u64,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        SupervisorSettings {
            health_interval: Duration::from_secs(2),
            unhealthy_after: 3,
            drain_timeout: Duration::from_secs(60),
            retire_grace: Duration::ZERO,
            stop_grace: Duration::from_secs(5),
            max_backoff: Duration::from_secs(30),
            builtin_program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("berth")),
            memory_cgroups: None,
            exec_roots: AllowedRoots::default(),
            builtin_environment: Vec::new(),
            sandbox: None,
            scratch_root: std::env::temp_dir().join("berth-scratch"),
            log_max_bytes: 10 * 1024 * 1024,
        }
    }
}

/// The words an exit status gets when the kernel killed the instance for its memory limit.
pub fn out_of_memory_reason(limit_bytes: u64, spec: &InstanceSpec) -> String {
    format!(
        "; killed by the kernel for going past its memory limit of {} MiB ({})",
        limit_bytes / (1024 * 1024),
        spec.berth_environment.get("BERTH_INSTANCE_TYPE").map_or("its memory size", String::as_str)
    )
}

/// Starts, watches and stops the container of one instance.
pub trait Runner: Send + 'static {
    /// One start of the container (a child process, a Docker container).
    type Running: Send;

    /// Starts attempt `attempt` and points `slot` at it (address, process id).
    fn launch(&mut self, slot: &InstanceSlot, attempt: u32) -> impl Future<Output = Result<Self::Running, String>> + Send;

    /// Resolves once the container has exited (and what it started is gone), with its exit
    /// status in words. Cancel-safe: the supervisor polls it in a `select!`.
    fn exited(&mut self, running: &mut Self::Running) -> impl Future<Output = String> + Send;

    /// Kills the container at once (it failed its health checks); `exited` then resolves.
    fn kill(&mut self, running: &Self::Running) -> impl Future<Output = ()> + Send;

    /// Stops the container: asks it to stop, kills it after `grace`, returns once it is gone.
    fn terminate(&mut self, running: Self::Running, grace: Duration) -> impl Future<Output = ()> + Send;

    /// "; killed by the kernel for going past its memory limit of …" when the kernel killed
    /// the container for its memory limit since the last exit was explained; else "".
    fn out_of_memory(&mut self, slot: &InstanceSlot) -> impl Future<Output = String> + Send;

    /// Releases what outlives single starts (a container, a cgroup), after the last stop.
    fn finish(self) -> impl Future<Output = ()> + Send;
}

/// Starts an instance under `runner` and resolves once it has passed its first `/ping`.
pub async fn start_supervised<R: Runner>(
    runner: R,
    spec: InstanceSpec,
    settings: &SupervisorSettings,
    alive: AliveGuard,
    resolved_image: Option<String>,
) -> Result<Instance, InstanceError> {
    let slot = Arc::new(InstanceSlot::new(spec.id.clone()).for_container(spec.container_index));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = oneshot::channel();
    let span = tracing::info_span!("instance", instance = %spec.id);
    let (id, observer, watched) = (spec.id.clone(), spec.observer.clone(), slot.clone());
    let supervisor = Supervisor { spec, slot: slot.clone(), settings: settings.clone(), stop_rx, runner, _alive: alive };
    let task = tokio::spawn(
        async move {
            // A fault of berth's in the supervisor: the instance takes no more requests and the
            // endpoint's events say so (its process ends with the runner, dropped on the way).
            if let Err(panic) = crate::caught(supervisor.run(ready_tx)).await {
                watched.set_healthy(false);
                tracing::error!(%panic, "the instance's supervisor panicked");
                if let Some(observer) = observer {
                    observer(&id, InstanceEvent::RestartFailed { reason: format!("berth's supervisor of this instance failed: {panic}") });
                }
            }
        }
        .instrument(span),
    );
    match ready_rx.await {
        Ok(Ok(())) => Ok(Instance::supervised(slot, stop_tx, task, resolved_image)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(InstanceError::DidNotStart("the instance supervisor ended unexpectedly".into())),
    }
}

/// Owns one instance: starts it, watches it, restarts it, stops it.
struct Supervisor<R: Runner> {
    spec: InstanceSpec,
    slot: Arc<InstanceSlot>,
    settings: SupervisorSettings,
    stop_rx: watch::Receiver<bool>,
    runner: R,
    /// Counts the instance against --max-instances until the supervisor ends.
    _alive: AliveGuard,
}

enum Ready<T> {
    Healthy(T),
    Failed(String),
    Stopped,
}

impl<R: Runner> Supervisor<R> {
    async fn run(mut self, ready_tx: oneshot::Sender<Result<(), InstanceError>>) {
        let mut running = match self.start_healthy(1).await {
            Ready::Healthy(running) => running,
            Ready::Failed(reason) => {
                let _ = ready_tx.send(Err(InstanceError::DidNotStart(reason)));
                return self.runner.finish().await;
            }
            Ready::Stopped => {
                let _ = ready_tx.send(Err(InstanceError::Stopped("stopped before it became healthy".into())));
                return self.runner.finish().await;
            }
        };
        self.slot.set_healthy(true);
        tracing::info!(instance = %self.spec.id, addr = %self.slot.addr(), "instance healthy");
        self.tell(InstanceEvent::Started { pid: self.slot.pid().unwrap_or(0), port: self.slot.addr().port() });
        let _ = ready_tx.send(Ok(()));

        let mut failed_checks = 0u32;
        let mut attempt = 1u32;
        let mut health = tokio::time::interval(self.settings.health_interval);
        health.tick().await;
        loop {
            tokio::select! {
                status = self.runner.exited(&mut running) => {
                    self.slot.set_healthy(false);
                    let status = status + &self.runner.out_of_memory(&self.slot).await;
                    tracing::warn!(instance = %self.spec.id, %status, log = %self.spec.log_path.display(), "instance exited; restarting it");
                    self.slot.set_pid(None);
                    self.tell(InstanceEvent::Crashed { status });
                    match self.restart(&mut attempt).await {
                        Some(r) => running = r,
                        None => return self.runner.finish().await,
                    }
                    failed_checks = 0;
                }
                _ = self.stop_rx.changed() => break,
                _ = health.tick() => {
                    if ping(&self.slot, Duration::from_secs(2)).await {
                        failed_checks = 0;
                    } else {
                        failed_checks += 1;
                        if failed_checks >= self.settings.unhealthy_after {
                            tracing::warn!(instance = %self.spec.id, failed_checks, "instance fails its health checks; killing it");
                            self.slot.set_healthy(false);
                            self.tell(InstanceEvent::Unhealthy { failed_checks });
                            self.runner.kill(&running).await;
                        }
                    }
                }
            }
        }
        self.retire(running).await;
    }

    /// Restarts a crashed instance with exponential backoff until it is healthy again.
    /// Returns None when the instance is stopped meanwhile.
    async fn restart(&mut self, attempt: &mut u32) -> Option<R::Running> {
        let mut backoff = Duration::from_millis(250);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.stop_rx.changed() => return None,
            }
            *attempt += 1;
            match self.start_healthy(*attempt).await {
                Ready::Healthy(running) => {
                    self.slot.count_restart();
                    self.slot.set_healthy(true);
                    tracing::info!(instance = %self.spec.id, attempt = *attempt, "instance restarted and healthy");
                    self.tell(InstanceEvent::Restarted { attempt: *attempt });
                    return Some(running);
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

    /// Launches the container and waits for its first passing `/ping`, its exit, the startup
    /// timeout or a stop.
    async fn start_healthy(&mut self, attempt: u32) -> Ready<R::Running> {
        let mut running = match self.runner.launch(&self.slot, attempt).await {
            Ok(r) => r,
            Err(e) => return Ready::Failed(e),
        };
        let deadline = Instant::now() + self.spec.startup_timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            if ping(&self.slot, Duration::from_secs(1)).await {
                return Ready::Healthy(running);
            }
            if Instant::now() >= deadline {
                self.runner.terminate(running, self.settings.stop_grace).await;
                self.slot.set_pid(None);
                return Ready::Failed(format!(
                    "The container of instance {} did not pass its /ping health check within {} seconds.{}",
                    self.spec.id,
                    self.spec.startup_timeout.as_secs(),
                    log_tail(&self.spec.log_path)
                ));
            }
            tokio::select! {
                status = self.runner.exited(&mut running) => {
                    self.slot.set_pid(None);
                    let out_of_memory = self.runner.out_of_memory(&self.slot).await;
                    return Ready::Failed(format!(
                        "The container of instance {} exited ({status}{out_of_memory}) before it passed its /ping health check.{}",
                        self.spec.id,
                        log_tail(&self.spec.log_path)
                    ));
                }
                _ = tokio::time::sleep(pause) => {}
                _ = self.stop_rx.changed() => {
                    self.runner.terminate(running, self.settings.stop_grace).await;
                    self.slot.set_pid(None);
                    return Ready::Stopped;
                }
            }
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    async fn retire(mut self, running: R::Running) {
        self.slot.set_healthy(false);
        let left = Instant::now();
        let deadline = left + self.settings.drain_timeout.max(self.settings.retire_grace);
        while (self.slot.outstanding() > 0 || left.elapsed() < self.settings.retire_grace) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.runner.terminate(running, self.settings.stop_grace).await;
        self.slot.set_pid(None);
        tracing::info!(instance = %self.spec.id, "instance stopped");
        self.tell(InstanceEvent::Stopped);
        self.runner.finish().await;
    }

    fn tell(&self, event: InstanceEvent) {
        if let Some(observer) = &self.spec.observer {
            observer(&self.spec.id, event);
        }
    }
}

/// The end of an instance log, for failure reasons a person can act on.
pub fn log_tail(path: &Path) -> String {
    const TAIL: u64 = 1000;
    let Ok(mut f) = std::fs::File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(TAIL)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().map(|l| crate::log::parse_line(l).1).filter(|l| !l.starts_with("---- berth:")).collect();
    if lines.is_empty() {
        return " Its log is empty.".to_string();
    }
    format!(" Last lines of its log: {}", lines.join(" | "))
}
