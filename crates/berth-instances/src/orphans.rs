//! Processes an instance started that left its process group: a helper that called `setsid`,
//! a daemon that forked twice. They must stop with their instance, with berth, and — after a
//! `kill -9` of berth — when berth starts again.
//!
//! Every worker is started with [`MARKER`] in its environment (`<server tag>:<server pid>:<instance
//! id>`), which its descendants inherit. Stopping an instance kills every process carrying its
//! marker; starting berth kills those of an earlier server on the same data directory that is
//! gone. berth is also a child subreaper, so a descendant whose parent exits is re-parented to
//! berth rather than to init: berth reaps such adopted processes, and kills every one left at
//! shutdown, marked or not. Instances in a cgroup are also killed through it (`cgroup.rs`).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::pidfd::Pidfd;

/// The environment variable that marks a worker and everything it starts.
pub const MARKER: &str = "BERTH_INSTANCE_OF";

/// Tracks berth's own children, finds marked processes, reaps adopted ones.
pub struct ProcessTracker {
    /// Tells this data directory's servers apart from other berth servers on the machine.
    tag: String,
    /// Pids of workers berth started and has not reaped yet (tokio reaps those); held while
    /// spawning so a sweep never reaps a worker before it is recorded.
    direct: Mutex<HashSet<u32>>,
}

impl ProcessTracker {
    pub fn new(data_dir: &Path) -> Self {
        let tag = format!("{:08x}", crate::stable_hash(&data_dir.display().to_string()) as u32);
        ProcessTracker { tag, direct: Mutex::default() }
    }

    /// Makes berth the reaper of its descendants whose parents exit (Linux only).
    pub fn become_subreaper() {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer argument only.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
    }

    /// The marker's value for an instance of this server.
    pub fn marker(&self, instance_id: &str) -> String {
        format!("{}:{}:{instance_id}", self.tag, std::process::id())
    }

    /// Spawns a worker with `spawn` and records its pid before any sweep can see it.
    pub fn spawned<T>(&self, spawn: impl FnOnce() -> std::io::Result<T>, pid: impl Fn(&T) -> Option<u32>) -> std::io::Result<T> {
        let mut direct = self.direct.lock().unwrap_or_else(|p| p.into_inner());
        let child = spawn()?;
        if let Some(pid) = pid(&child) {
            direct.insert(pid);
        }
        Ok(child)
    }

    /// The worker was reaped by its supervisor.
    pub fn reaped(&self, pid: u32) {
        self.direct.lock().unwrap_or_else(|p| p.into_inner()).remove(&pid);
    }

    /// Kills every process left of an instance (its marker), then reaps those berth adopted.
    pub fn kill_instance(&self, instance_id: &str) -> usize {
        let marker = self.marker(instance_id);
        let marked: Vec<Marked> = marked_processes().into_iter().filter(|p| p.marker == marker).collect();
        self.kill_and_reap(&marked)
    }

    /// Kills what servers of this data directory that are no longer running left behind.
    pub fn kill_stale(&self) -> usize {
        let me = std::process::id();
        let stale: Vec<Marked> = marked_processes()
            .into_iter()
            .filter(|p| {
                let mut parts = p.marker.splitn(3, ':');
                let (tag, server) = (parts.next(), parts.next().and_then(|p| p.parse::<u32>().ok()));
                tag == Some(self.tag.as_str()) && server.is_some_and(|s| s != me && !alive(s))
            })
            .collect();
        self.kill_and_reap(&stale)
    }

    /// Reaps adopted descendants that exited; with `kill_all`, kills every adopted one first
    /// (at shutdown, once every instance has stopped).
    pub fn sweep(&self, kill_all: bool) {
        let direct = self.direct.lock().unwrap_or_else(|p| p.into_inner());
        let (me, my_group) = (std::process::id(), own_group());
        let adopted: Vec<(u32, char)> = children_of(me)
            .into_iter()
            // berth's other children (pip, probes) stay in berth's process group; workers are
            // recorded in `direct` and reaped by their supervisors.
            .filter(|(pid, _, group)| !direct.contains(pid) && *group != my_group)
            .map(|(pid, state, _)| (pid, state))
            .collect();
        drop(direct);
        for (pid, state) in adopted {
            if kill_all && state != 'Z' {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
            if kill_all || state == 'Z' {
                reap(pid);
            }
        }
    }
}

/// A process found carrying the marker.
struct Marked {
    pid: u32,
    /// The marker's value.
    marker: String,
    /// Opened before its environment was read, so it names the process that carries the
    /// marker even if that one exits and its pid is reused; None where pidfds are missing.
    handle: Option<Pidfd>,
}

impl Marked {
    fn kill(&self) {
        match &self.handle {
            Some(handle) => {
                let _ = handle.signal(libc::SIGKILL);
            }
            // SAFETY: kill has no memory-safety preconditions. Without pidfds (Linux before
            // 5.3) the pid is used as read, as every process manager there does.
            None => unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
            },
        }
    }
}

/// Every process whose environment carries the marker, with the marker's value.
fn marked_processes() -> Vec<Marked> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let prefix = format!("{MARKER}=");
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let handle = match Pidfd::open(pid) {
            Ok(handle) => Some(handle),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => None,
            Err(_) => continue, // gone
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        if let Some(value) = environ.split(|b| *b == 0).find_map(|v| v.strip_prefix(prefix.as_bytes())) {
            out.push(Marked { pid, marker: String::from_utf8_lossy(value).into_owned(), handle });
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn own_group() -> u32 {
    // SAFETY: getpgrp has no preconditions.
    unsafe { libc::getpgrp() as u32 }
}

/// (pid, state, process group) of every child of `parent`, from `/proc/<pid>/stat`.
fn children_of(parent: u32) -> Vec<(u32, char, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // The command name is in parentheses and may hold spaces: read after the last ')'.
            let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
            let (state, ppid, group) =
                (fields.first()?.chars().next()?, fields.get(1)?.parse::<u32>().ok()?, fields.get(2)?.parse::<u32>().ok()?);
            (ppid == parent).then_some((pid, state, group))
        })
        .collect()
}

impl ProcessTracker {
    /// Kills the processes, reaps those berth adopted; says how many there were.
    fn kill_and_reap(&self, marked: &[Marked]) -> usize {
        for process in marked {
            process.kill();
        }
        // Those re-parented to berth must be reaped by berth (workers are their supervisors'
        // to reap); the others are init's.
        let direct = self.direct.lock().unwrap_or_else(|p| p.into_inner());
        let adopted: HashSet<u32> =
            children_of(std::process::id()).into_iter().map(|(pid, _, _)| pid).filter(|p| !direct.contains(p)).collect();
        drop(direct);
        for process in marked.iter().filter(|p| adopted.contains(&p.pid)) {
            reap(process.pid);
        }
        marked.len()
    }
}

/// Waits a little for a killed child of berth to exit and reaps it.
fn reap(pid: u32) {
    for _ in 0..50 {
        let mut status = 0;
        // SAFETY: waitpid on a specific pid writes only to `status`.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if r != 0 {
            return; // reaped, or not (or no longer) berth's child
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn marked_helpers_are_found_and_killed_by_instance() {
        let tmp = tempfile::tempdir().unwrap();
        let tracker = ProcessTracker::new(tmp.path());
        let marker = tracker.marker("ep/V/abc");
        // A helper that leaves its session, as a daemon would (`--wait`: should setsid fork, the
        // process waited on is the one killed, not a parent that exited 0).
        let mut child = tracker
            .spawned(|| Command::new("setsid").args(["--wait", "sleep", "30"]).env(MARKER, &marker).spawn(), |c| Some(c.id()))
            .expect("setsid and sleep are on every Linux");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !marked_processes().iter().any(|p| p.marker == marker) {
            assert!(std::time::Instant::now() < deadline, "the marked process never showed up");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(tracker.kill_instance("ep/V/other"), 0, "another instance's marker is left alone");
        assert!(tracker.kill_instance("ep/V/abc") >= 1);
        let status = child.wait().unwrap();
        assert!(!status.success(), "killed: {status}");
        assert!(!marked_processes().iter().any(|p| p.marker == marker));
    }

    #[test]
    fn only_stale_servers_leftovers_are_killed_at_start() {
        let tmp = tempfile::tempdir().unwrap();
        let tracker = ProcessTracker::new(tmp.path());
        // A "server" pid that does not exist, and this live one.
        let gone = format!("{}:{}:ep/V/x", tracker.tag, u32::MAX - 1);
        let live = tracker.marker("ep/V/y");
        let spawn =
            |marker: &str| tracker.spawned(|| Command::new("sleep").arg("30").env(MARKER, marker).spawn(), |c| Some(c.id())).unwrap();
        let mut stale = spawn(&gone);
        let mut current = spawn(&live);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while marked_processes().iter().filter(|p| p.marker == gone || p.marker == live).count() < 2 {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(tracker.kill_stale(), 1);
        assert!(!stale.wait().unwrap().success());
        assert!(current.try_wait().unwrap().is_none(), "this server's own instance keeps running");
        current.kill().unwrap();
        current.wait().unwrap();
    }
}
