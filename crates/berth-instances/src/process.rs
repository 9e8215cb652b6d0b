use crate::cgroup::{InstanceCgroup, MemoryCgroups};
use crate::health::PingClient;
use crate::launch::{free_port, launch};
use crate::orphans::ProcessTracker;
use crate::roots::AllowedRoots;
use crate::{BoxFuture, InstanceBackend, InstanceError, InstanceEvent, InstanceSlot, InstanceSpec};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::Child;
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
    /// Where `exec:` programs may be run from (resolved again at every start).
    pub exec_roots: AllowedRoots,
    /// Environment given to built-in images' workers only (where ONNX Runtime is, ...).
    pub builtin_environment: Vec<(String, String)>,
    /// Most instances alive at once, counted from asking for a start until the process has
    /// really stopped (serverless cold starts and instances still draining included).
    pub max_instances: usize,
    /// Size at which an instance's log is rotated (one older file, `<name>.log.1`, is kept).
    pub log_max_bytes: u64,
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
            exec_roots: AllowedRoots::default(),
            builtin_environment: Vec::new(),
            max_instances: 64,
            log_max_bytes: 10 * 1024 * 1024,
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
    tracker: Arc<ProcessTracker>,
    /// Instances alive (asked for and not yet really stopped).
    alive: Arc<AtomicUsize>,
}

impl ProcessBackend {
    /// `tracker` knows this server's workers; berth becomes their subreaper, and what an earlier
    /// server on the same data directory left running is killed first.
    pub fn new(settings: SupervisorSettings, tracker: ProcessTracker) -> Self {
        ProcessTracker::become_subreaper();
        let stale = tracker.kill_stale();
        if stale > 0 {
            tracing::warn!(processes = stale, "killed processes an earlier berth on this data directory left running");
        }
        let tracker = Arc::new(tracker);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let sweeping = Arc::downgrade(&tracker);
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(2));
                loop {
                    tick.tick().await;
                    let Some(t) = sweeping.upgrade() else { return };
                    let _ = tokio::task::spawn_blocking(move || t.sweep(false)).await;
                }
            });
        }
        ProcessBackend { ping: PingClient::new(), settings, tracker, alive: Arc::default() }
    }

    /// Kills whatever descendants are left once every instance has stopped (at shutdown).
    pub fn kill_leftovers(&self) {
        self.tracker.sweep(true);
    }

    /// Counts one more instance, unless that would pass the limit.
    fn admit(&self) -> Result<AliveGuard, InstanceError> {
        let max = self.settings.max_instances;
        self.alive
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .map(|_| AliveGuard(self.alive.clone()))
            .map_err(|n| {
                InstanceError::StartFailed(format!(
                    "berth already runs {n} instances, its limit (--max-instances {max}), counting instances that are still stopping. \
                     Delete endpoints or raise --max-instances."
                ))
            })
    }
}

/// One counted instance; uncounted when its supervisor ends (its processes are gone).
struct AliveGuard(Arc<AtomicUsize>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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
            let alive = self.admit()?;
            let slot = Arc::new(InstanceSlot::new(spec.id.clone()));
            let (stop_tx, stop_rx) = watch::channel(false);
            let (ready_tx, ready_rx) = oneshot::channel();
            let cgroup = self.memory_cgroup(&spec);
            let supervisor = InstanceSupervisor {
                spec,
                slot: slot.clone(),
                ping: self.ping.clone(),
                settings: self.settings.clone(),
                stop_rx,
                cgroup,
                tracker: self.tracker.clone(),
                _alive: alive,
            };
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
    tracker: Arc<ProcessTracker>,
    /// Counts the instance against --max-instances until the supervisor ends.
    _alive: AliveGuard,
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
                    self.reaped(&child);
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
        let child = match launch(&self.spec, port, attempt, &self.settings, cgroup, &self.tracker) {
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
                    self.reaped(&child);
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
                self.reaped(&child);
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
                    self.reaped(&child);
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
        self.reaped(&child);
        self.slot.set_pid(None);
        tracing::info!(instance = %self.spec.id, "instance stopped");
        self.tell(InstanceEvent::Stopped);
    }

    /// After the instance's main process was reaped: everything it started goes too, wherever
    /// it went (its cgroup, and every process carrying its marker).
    fn reaped(&self, child: &Child) {
        if let Some(pid) = child.id() {
            self.tracker.reaped(pid);
        }
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill_all();
        }
        let killed = self.tracker.kill_instance(&self.spec.id);
        if killed > 0 {
            tracing::info!(instance = %self.spec.id, processes = killed, "killed processes the instance left behind");
        }
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
