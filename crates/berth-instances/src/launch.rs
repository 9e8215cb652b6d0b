//! Starting a worker process: the program (an `exec:` image resolved again under the exec roots,
//! or berth itself for a built-in image), its environment (berth's variables last, so they win),
//! a private scratch directory as its home and working directory, its output through a pipe into
//! the instance's log, its own process group, death with the server, its cgroup joined and the
//! sandbox entered before exec.

use crate::cgroup::join_in_child;
use crate::orphans::ProcessTracker;
use crate::roots::{AllowedRoots, RootError};
use crate::supervisor::SupervisorSettings;
use crate::InstanceSpec;
use berth_domain::{BuiltinImage, Image};
use berth_sandbox::{Policy, Sandbox};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use tokio::process::{Child, Command};

pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// Of berth's own environment, what every worker starts from (never the rest: it may hold
/// credentials).
const PASSED_THROUGH: &[&str] = &["PATH", "LANG"];

/// An instance's scratch directory: its `HOME`, `TMPDIR` and working directory, the one place a
/// sandboxed worker may write; made empty at each start, removed with the instance.
pub(crate) fn scratch_dir(settings: &SupervisorSettings, id: &str) -> PathBuf {
    settings.scratch_root.join(id.replace('/', "-"))
}

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
    let (program, args): (PathBuf, Vec<&str>) = match &spec.image {
        // Resolved again at each start: the program must still be under an --exec-root.
        Image::Exec(program) => (resolve_program(program, &settings.exec_roots)?, vec!["serve"]),
        Image::Builtin(image) => (settings.builtin_program.clone(), vec!["worker", image.worker_name(), "serve"]),
        Image::Container(reference) => return Err(format!("{reference} is a container image: the Docker backend runs it")),
    };
    let log = crate::log::InstanceLog::open(&spec.log_path, settings.log_max_bytes)?;
    log.note(&format!("---- berth: starting instance {} (attempt {attempt}) on port {port} ----", spec.id));
    let scratch = scratch_dir(settings, &spec.id);
    let _ = std::fs::remove_dir_all(&scratch);
    crate::private_dir(&scratch).map_err(|e| format!("cannot make the instance's scratch directory: {e}"))?;
    if let Some(staged) = &spec.staged_models {
        crate::private_dir(staged).map_err(|e| format!("cannot make the instance's directory of loaded models: {e}"))?;
    }
    let sandbox = match &settings.sandbox {
        Some(config) => {
            let policy = worker_policy(config.base_policy(), spec, &program, &scratch, &settings.exec_roots);
            Some(Arc::new(Sandbox::prepare(&policy).map_err(|e| format!("cannot sandbox the worker: {e}"))?))
        }
        None => None,
    };
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
    cmd.env("HOME", &scratch).env("TMPDIR", &scratch);
    // The container's Environment, for programs that read it. berth/onnx is berth's own code
    // and takes none: nothing a caller sets may change how it loads its libraries.
    if !matches!(spec.image, Image::Builtin(BuiltinImage::Onnx)) {
        cmd.envs(&spec.environment);
    }
    if matches!(spec.image, Image::Builtin(_)) {
        cmd.envs(settings.builtin_environment.iter().map(|(k, v)| (k, v)));
    }
    // berth's variables come last: a container's Environment cannot replace them.
    cmd.envs(&spec.berth_environment)
        .env("SAGEMAKER_BIND_TO_PORT", port.to_string())
        .env("SM_MODEL_DIR", spec.model_dir.path())
        .env(crate::MARKER, tracker.marker(&spec.id))
        .current_dir(&scratch)
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
    // Entered last, once the cgroup is joined (which needs berth's rights).
    if let Some(sandbox) = sandbox {
        sandbox.apply_to(&mut cmd);
    }
    let child = tracker.spawned(|| cmd.spawn(), Child::id).map_err(|e| format!("cannot start {}: {e}", program_name(&spec.image)))?;
    // The write ends are the child's now; the log pump reads until every holder has exited.
    drop(cmd);
    let pump = log.pump(reader);
    Ok((child, pump))
}

/// What one worker may reach: the system, its program, the exec roots for an `exec:` program,
/// what its backend added (an interpreter, a library), its model files to read and its scratch
/// directory to write.
fn worker_policy(mut policy: Policy, spec: &InstanceSpec, program: &Path, scratch: &Path, exec_roots: &AllowedRoots) -> Policy {
    policy.add_program(program);
    if matches!(spec.image, Image::Exec(_)) {
        for root in exec_roots.resolved() {
            policy.add_read_exec(root.to_path_buf());
        }
    }
    for extra in &spec.access.programs {
        policy.add_program(extra);
    }
    for read in spec.access.reads.iter().chain([&spec.model_dir.path().to_path_buf()]) {
        policy.add_read(read.clone());
    }
    if let Some(code) = &spec.code_dir {
        policy.add_read(code.path().to_path_buf());
    }
    if let Some(staged) = &spec.staged_models {
        policy.add_read(staged.clone());
    }
    policy.add_write(scratch.to_path_buf());
    policy
}

/// The image as callers named it, for messages (never a path of berth's own).
fn program_name(image: &Image) -> String {
    match image {
        Image::Exec(program) => format!("exec:{}", program.display()),
        Image::Builtin(b) => format!("the built-in {} worker", b.worker_name()),
        Image::Container(reference) => reference.clone(),
    }
}

/// An `exec:` program's path, resolved under the exec roots.
fn resolve_program(program: &Path, roots: &AllowedRoots) -> Result<PathBuf, String> {
    roots.resolve(program).map_err(|e| match e {
        RootError::NoRoots => format!("exec:{} cannot run: exec: images are off (start berth with --exec-root DIR)", program.display()),
        RootError::Outside => format!("exec:{} is not under a directory berth may run programs from (--exec-root)", program.display()),
        RootError::NotFound(e) => format!("exec:{} cannot run: {e}", program.display()),
    })
}
