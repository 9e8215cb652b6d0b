//! `exec:` programs and built-in images as child processes of the server.

use crate::cgroup::{InstanceCgroup, MemoryCgroups};
use crate::launch::{free_port, launch};
use crate::orphans::ProcessTracker;
use crate::roots::AllowedRoots;
use crate::supervisor::{start_supervised, Runner};
use crate::{BoxFuture, Instance, InstanceBackend, InstanceBudget, InstanceError, InstanceSlot, InstanceSpec};
use berth_sandbox::SandboxConfig;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Child;

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

/// Runs `exec:` images and built-in images as child processes of the server.
///
/// Each child gets its own process group (so stopping it stops what it started) and dies
/// with the server even on `kill -9` (`PR_SET_PDEATHSIG`).
pub struct ProcessBackend {
    pub(crate) settings: SupervisorSettings,
    tracker: Arc<ProcessTracker>,
    budget: InstanceBudget,
}

impl ProcessBackend {
    /// `tracker` knows this server's workers; berth becomes their subreaper, and what an earlier
    /// server on the same data directory left running is killed first.
    pub fn new(settings: SupervisorSettings, tracker: ProcessTracker, budget: InstanceBudget) -> Self {
        ProcessTracker::become_subreaper();
        let stale = tracker.kill_stale();
        if stale > 0 {
            tracing::warn!(processes = stale, "killed processes an earlier berth on this data directory left running");
        }
        // Scratch directories of instances an earlier server left.
        let _ = std::fs::remove_dir_all(&settings.scratch_root);
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
        ProcessBackend { settings, tracker, budget }
    }

    /// Kills whatever descendants are left once every instance has stopped (at shutdown).
    pub fn kill_leftovers(&self) {
        self.tracker.sweep(true);
    }
}

/// The instance's memory cgroup, when berth limits memory here and the spec has a limit.
/// An instance whose cgroup cannot be made runs unlimited, with a warning.
fn memory_cgroup(settings: &SupervisorSettings, spec: &InstanceSpec) -> Option<InstanceCgroup> {
    let (cgroups, limit) = (settings.memory_cgroups.as_ref()?, spec.memory_limit_bytes?);
    cgroups
        .create(&spec.id, limit)
        .inspect_err(|reason| tracing::warn!(instance = %spec.id, %reason, "instance runs without a memory limit"))
        .ok()
}

impl InstanceBackend for ProcessBackend {
    fn start(&self, spec: InstanceSpec) -> BoxFuture<'_, Result<Instance, InstanceError>> {
        Box::pin(async move {
            let alive = self.budget.admit()?;
            // Making the cgroup writes to /sys: blocking file I/O, off the async workers.
            let (settings, cgroup_spec) = (self.settings.clone(), spec.clone());
            let cgroup = tokio::task::spawn_blocking(move || memory_cgroup(&settings, &cgroup_spec)).await.unwrap_or(None);
            let runner = ProcessRunner {
                spec: spec.clone(),
                settings: self.settings.clone(),
                cgroup,
                tracker: self.tracker.clone(),
                oom_kills_seen: 0,
            };
            start_supervised(runner, spec, &self.settings, alive, None).await
        })
    }
}

/// Runs one instance's program: a child process in its own process group (and cgroup).
struct ProcessRunner {
    spec: InstanceSpec,
    settings: SupervisorSettings,
    /// Dropped (removed) with the runner, after the last process is gone.
    cgroup: Option<InstanceCgroup>,
    tracker: Arc<ProcessTracker>,
    oom_kills_seen: u64,
}

/// One start of the program: the child, and the thread copying its output into the log.
struct ProcessRun {
    child: Child,
    output: Option<std::thread::JoinHandle<()>>,
}

impl ProcessRun {
    /// Waits (briefly) until the output copied so far is in the log, so a failure reason that
    /// quotes the log's end sees the worker's last words.
    async fn flush_output(&mut self) {
        if let Some(pump) = self.output.take() {
            let joined = tokio::task::spawn_blocking(move || pump.join());
            let _ = tokio::time::timeout(Duration::from_secs(2), joined).await;
        }
    }
}

impl Runner for ProcessRunner {
    type Running = ProcessRun;

    async fn launch(&mut self, slot: &InstanceSlot, attempt: u32) -> Result<ProcessRun, String> {
        let port = free_port().map_err(|e| format!("no free port for instance {}: {e}", self.spec.id))?;
        slot.set_port(port);
        let cgroup = self.cgroup.as_ref().map(|c| c.procs_file().to_owned());
        // Opening the log and starting the program are blocking calls: off the async workers.
        let (spec, settings, tracker) = (self.spec.clone(), self.settings.clone(), self.tracker.clone());
        let (child, output) = tokio::task::spawn_blocking(move || launch(&spec, port, attempt, &settings, cgroup, &tracker))
            .await
            .map_err(|e| format!("cannot start instance {}: {e}", self.spec.id))??;
        slot.set_pid(child.id());
        Ok(ProcessRun { child, output })
    }

    async fn exited(&mut self, run: &mut ProcessRun) -> String {
        let pid = run.child.id(); // None once the wait below has completed
        let status = run.child.wait().await;
        self.reaped(pid);
        run.flush_output().await;
        status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string())
    }

    async fn kill(&mut self, run: &ProcessRun) {
        signal_group(&run.child, libc::SIGKILL);
    }

    async fn terminate(&mut self, mut run: ProcessRun, grace: Duration) {
        let pid = run.child.id();
        terminate(&mut run.child, grace).await;
        self.reaped(pid);
        run.flush_output().await;
    }

    async fn out_of_memory(&mut self, slot: &InstanceSlot) -> String {
        let Some(cgroup) = &self.cgroup else { return String::new() };
        let kills = cgroup.oom_kills();
        if kills <= self.oom_kills_seen {
            return String::new();
        }
        self.oom_kills_seen = kills;
        slot.set_oom_kills(kills);
        out_of_memory_reason(cgroup.limit_bytes(), &self.spec)
    }

    async fn finish(self) {
        let _ = tokio::fs::remove_dir_all(crate::launch::scratch_dir(&self.settings, &self.spec.id)).await;
        if let Some(staged) = &self.spec.staged_models {
            let _ = tokio::fs::remove_dir_all(staged).await;
        }
    }
}

impl ProcessRunner {
    /// After the instance's main process was reaped: everything it started goes too, wherever
    /// it went (its cgroup, and every process carrying its marker).
    fn reaped(&self, pid: Option<u32>) {
        if let Some(pid) = pid {
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
}

/// The words an exit status gets when the kernel killed the instance for its memory limit.
pub(crate) fn out_of_memory_reason(limit_bytes: u64, spec: &InstanceSpec) -> String {
    format!(
        "; killed by the kernel for going past its memory limit of {} MiB ({})",
        limit_bytes / (1024 * 1024),
        spec.berth_environment.get("BERTH_INSTANCE_TYPE").map_or("its memory size", String::as_str)
    )
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
