//! `exec:` programs and built-in images as child processes of the server.

use crate::cgroup::InstanceCgroup;
use crate::launch::{free_port, launch};
use crate::orphans::ProcessTracker;
use crate::supervisor::{out_of_memory_reason, start_supervised, Runner, SupervisorSettings};
use crate::{BoxFuture, Instance, InstanceBackend, InstanceBudget, InstanceError, InstanceSlot, InstanceSpec};
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Child;

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

    /// Writes a line of berth's into the instance's log, before the instance starts (what a
    /// backend built on this one prepared for it).
    pub fn note_in_log(&self, spec: &InstanceSpec, note: &str) -> Result<(), InstanceError> {
        let log = crate::log::InstanceLog::open(&spec.log_path, self.settings.log_max_bytes).map_err(InstanceError::DidNotStart)?;
        log.note(&format!("---- berth: {note} ----"));
        Ok(())
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
        if let Some(leader) = run.child.id() {
            signal_group(leader, libc::SIGKILL);
        }
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

/// Signals the process group led by `leader`. Only sound while the leader is not reaped: until
/// then its pid, which is the group's id, cannot be given to another process.
fn signal_group(leader: u32, signal: libc::c_int) {
    // SAFETY: killpg has no memory-safety preconditions.
    unsafe {
        libc::killpg(leader as libc::pid_t, signal);
    }
}

/// SIGTERM to the instance's process group, SIGKILL after `grace`, and SIGKILL to whatever is
/// left in the group once the worker has exited — all before the worker is reaped, so that the
/// group's id can never be one the kernel has given to another process meanwhile.
async fn terminate(child: &mut Child, grace: Duration) {
    let Some(leader) = child.id() else { return }; // already reaped: its group was killed then
    let exit = match crate::pidfd::Pidfd::open(leader) {
        Ok(handle) => handle,
        Err(e) => {
            // Not a Linux with pidfds (before 5.3): signal the group while the worker is
            // unreaped, and leave what outlives it to the cgroup and marker kills.
            tracing::debug!(error = %e, "no pidfd: the process group is signalled only until the worker exits");
            signal_group(leader, libc::SIGTERM);
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                signal_group(leader, libc::SIGKILL);
                let _ = child.wait().await;
            }
            return;
        }
    };
    signal_group(leader, libc::SIGTERM);
    let exited = exit.exited();
    tokio::pin!(exited);
    if tokio::time::timeout(grace, &mut exited).await.is_err() {
        signal_group(leader, libc::SIGKILL);
        let _ = exited.await;
    }
    // The worker is a zombie now: its group id is still reserved.
    signal_group(leader, libc::SIGKILL);
    let _ = child.wait().await;
}
