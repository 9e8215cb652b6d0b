//! Starting a worker process: the program (an `exec:` image resolved again under the exec roots,
//! or berth itself for a built-in image), a clean environment, its output through a pipe into the
//! instance's log, its own process group, death with the server, and its cgroup joined before exec.

use crate::cgroup::join_in_child;
use crate::orphans::ProcessTracker;
use crate::process::SupervisorSettings;
use crate::roots::{AllowedRoots, RootError};
use crate::InstanceSpec;
use berth_domain::Image;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::{Child, Command};

pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// The environment every worker starts from: never berth's own (which may hold credentials).
const PASSED_THROUGH: &[&str] = &["PATH", "HOME", "LANG"];

/// Starts the worker; returns it with the thread copying its output into the log (it ends once
/// every process holding the output pipe has exited).
pub(crate) fn launch(
    spec: &InstanceSpec,
    port: u16,
    attempt: u32,
    settings: &SupervisorSettings,
    cgroup: Option<CString>,
    tracker: &ProcessTracker,
) -> Result<(Child, Option<std::thread::JoinHandle<()>>), String> {
    let (program, args, builtin): (PathBuf, Vec<&str>, bool) = match &spec.image {
        // Resolved again at each start: the program must still be under an --exec-root.
        Image::Exec(program) => (resolve_program(program, &settings.exec_roots)?, vec!["serve"], false),
        Image::Builtin(image) => (settings.builtin_program.clone(), vec!["worker", image.worker_name(), "serve"], true),
        Image::Container(reference) => return Err(format!("{reference} is a container image: the Docker backend runs it")),
    };
    let log = crate::log::InstanceLog::open(&spec.log_path, settings.log_max_bytes)?;
    log.note(&format!("---- berth: starting instance {} (attempt {attempt}) on port {port} ----", spec.id));
    let (reader, writer) = std::io::pipe().map_err(|e| format!("cannot make a pipe for the instance's output: {e}"))?;
    let stderr = writer.try_clone().map_err(|e| e.to_string())?;
    let parent_pid = std::process::id() as libc::pid_t;
    let mut cmd = Command::new(&program);
    cmd.args(&args).env_clear();
    for name in PASSED_THROUGH {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
    }
    if builtin {
        cmd.envs(settings.builtin_environment.iter().map(|(k, v)| (k, v)));
    }
    cmd.envs(&spec.environment)
        .env("SAGEMAKER_BIND_TO_PORT", port.to_string())
        .env("SM_MODEL_DIR", spec.model_dir.path())
        .env(crate::MARKER, tracker.marker(&spec.id))
        .current_dir(spec.model_dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
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
    let child = tracker.spawned(|| cmd.spawn(), Child::id).map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    // The write ends are the child's now; the log pump reads until every holder has exited.
    drop(cmd);
    let pump = log.pump(reader);
    Ok((child, pump))
}

/// An `exec:` program's path, resolved under the exec roots.
fn resolve_program(program: &Path, roots: &AllowedRoots) -> Result<PathBuf, String> {
    roots.resolve(program).map_err(|e| match e {
        RootError::NoRoots => format!("exec:{} cannot run: exec: images are off (start berth with --exec-root DIR)", program.display()),
        RootError::Outside => format!("exec:{} is not under a directory berth may run programs from (--exec-root)", program.display()),
        RootError::NotFound(e) => format!("exec:{} cannot run: {e}", program.display()),
    })
}
