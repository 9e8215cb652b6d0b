//! The sandbox berth starts its worker processes in: `exec:` programs and the built-in images'
//! workers (`berth/onnx`, the Python runtime and every Python process it starts). Whatever code
//! a caller gets to run there — its own by design in the Python runtime, or through a library an
//! archive slipped into an allowed program — cannot read berth's data directory, its secrets or
//! other models, cannot write outside its own scratch directory, cannot signal berth, and cannot
//! reach the kernel's privileged surface.
//!
//! Layers, each applied where the kernel has it ([`Support`] says which):
//! - **Landlock** (Linux 5.13+): the file system beneath the [`Policy`]'s directories only —
//!   read, read and run, or write — and (6.12+) no signal to, nor abstract UNIX socket of, a
//!   process outside the sandbox.
//! - **No capabilities**: the bounding, inheritable and ambient sets are emptied, so a worker of
//!   a berth running as root keeps uid 0 but none of root's powers (no `CAP_DAC_OVERRIDE`, no
//!   `CAP_SYS_PTRACE`: it cannot read `/proc/<berth>/environ`, whose owner holds capabilities).
//! - **No new privileges**: no set-uid program or file capability gives any back.
//! - **seccomp**: the system calls a worker has no business with (module loading, mounts,
//!   keyrings, BPF, `ptrace`, namespaces, `io_uring`, ...) fail with `EPERM`; so does creating a
//!   UNIX socket where Landlock cannot confine which socket paths it reaches (before ABI 9),
//!   since a path such as `/var/run/docker.sock` needs no file access right to connect to.
//!
//! [`Sandbox::prepare`] does everything that allocates or opens files in the parent;
//! [`Sandbox::enter`] runs in the child between `fork` and `exec` and only makes system calls.

mod policy;
mod seccomp;

pub use policy::{Policy, SYSTEM_READ_EXEC};

use landlock::{Access, AccessFs, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope, ABI};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// The newest Landlock ABI berth knows; the crate falls back to what the kernel has.
const LANDLOCK_ABI: ABI = ABI::V10;
/// The first Landlock ABI that confines connecting to UNIX sockets by path.
const LANDLOCK_RESOLVE_UNIX_ABI: i32 = 9;
/// The first Landlock ABI with scopes (signals, abstract UNIX sockets).
const LANDLOCK_SCOPE_ABI: i32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot make the Landlock rules: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error("cannot make the seccomp filter: {0}")]
    Seccomp(String),
}

/// What this kernel and process allow the sandbox to do, for berth's start-up log and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Support {
    /// The kernel's Landlock ABI version; 0 when Landlock is missing or not enabled at boot.
    pub landlock_abi: i32,
    /// Whether berth runs as root (its workers then also run as root, without capabilities).
    pub root: bool,
}

impl Support {
    pub fn detect() -> Support {
        // SAFETY: landlock_create_ruleset with a null attribute, size 0 and the VERSION flag
        // only returns the ABI version (or an error); it reads no memory.
        let abi = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                1u32, /* LANDLOCK_CREATE_RULESET_VERSION */
            )
        };
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        Support { landlock_abi: i32::try_from(abi).unwrap_or(0).max(0), root }
    }

    /// Whether workers' file access is confined (else only capabilities, privileges and
    /// system calls are).
    pub fn confines_files(&self) -> bool {
        self.landlock_abi >= 1
    }

    /// Whether workers cannot signal berth or other processes outside their sandbox.
    pub fn confines_signals(&self) -> bool {
        self.landlock_abi >= LANDLOCK_SCOPE_ABI
    }

    /// Whether Landlock confines which UNIX socket paths a worker connects to; before that,
    /// seccomp refuses UNIX sockets made with `socket(2)` (pairs from `socketpair(2)` work).
    pub fn confines_unix_sockets(&self) -> bool {
        self.landlock_abi >= LANDLOCK_RESOLVE_UNIX_ABI
    }

    /// One line for the start-up log.
    pub fn describe(&self) -> String {
        let files = if self.confines_files() {
            format!("Landlock ABI {}: file access confined", self.landlock_abi)
        } else {
            "no Landlock in this kernel: file access NOT confined (workers read what berth's user reads)".to_string()
        };
        let signals = if self.confines_signals() { "signals confined" } else { "signals not confined (Linux 6.12+ confines them)" };
        let sockets = if self.confines_unix_sockets() { "UNIX sockets by path confined" } else { "UNIX sockets refused by seccomp" };
        format!("{files}; {signals}; {sockets}; no capabilities, no new privileges, seccomp filter")
    }
}

/// The operator's settings of the sandbox, shared by every sandboxed process berth starts.
#[derive(Debug, Clone, Default)]
pub struct SandboxConfig {
    /// Directories workers may also read and run programs from (`--worker-read`).
    pub extra: Vec<std::path::PathBuf>,
}

impl SandboxConfig {
    /// What every sandboxed process may use, before what its kind adds: the system, the
    /// programs on berth's `PATH` (which workers are given) and the operator's directories.
    pub fn base_policy(&self) -> Policy {
        Policy::system(std::env::var_os("PATH").as_deref(), &self.extra)
    }
}

/// A sandbox made for one process: its Landlock rules, its seccomp filters, and what to drop.
pub struct Sandbox {
    landlock: Option<OwnedFd>,
    filters: Vec<seccompiler::BpfProgram>,
    last_capability: libc::c_int,
}

impl Sandbox {
    /// Opens the policy's directories and builds the filters (in the parent: this allocates).
    /// A path that does not exist is left out; Landlock where the kernel lacks it is skipped.
    pub fn prepare(policy: &Policy) -> Result<Sandbox, SandboxError> {
        let support = Support::detect();
        let landlock = if support.confines_files() { Some(landlock_rules(policy)?) } else { None }.flatten();
        let filters = seccomp::filters(!support.confines_unix_sockets()).map_err(SandboxError::Seccomp)?;
        let last_capability =
            std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(63);
        Ok(Sandbox { landlock, filters, last_capability })
    }

    /// Enters the sandbox. Runs in the child between `fork` and `exec`: only system calls, no
    /// allocation, no lock. Errors are the system call's.
    pub fn enter(&self) -> std::io::Result<()> {
        let fail = |r: libc::c_long| if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) };
        // SAFETY: every call below (prctl, capset, landlock_restrict_self) takes plain integers
        // or pointers to the stack values built here; none keeps them.
        unsafe {
            // Capabilities: the bounding set (needs CAP_SETPCAP: a berth without it has none to
            // give away anyway), the ambient set, then every set of this process.
            for cap in 0..=self.last_capability {
                libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
            }
            libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0);
            let header = CapHeader { version: 0x2008_0522, pid: 0 }; // _LINUX_CAPABILITY_VERSION_3
            let data = [CapData::default(); 2];
            fail(libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()))?;
            fail(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long)?;
            if let Some(ruleset) = &self.landlock {
                fail(libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32))?;
            }
        }
        for filter in &self.filters {
            seccompiler::apply_filter(filter).map_err(|e| match e {
                seccompiler::Error::Seccomp(e) | seccompiler::Error::Prctl(e) => e,
                _ => std::io::Error::from_raw_os_error(libc::EINVAL),
            })?;
        }
        Ok(())
    }

    /// Has `cmd`'s child enter this sandbox just before it runs its program (after any
    /// `pre_exec` hook registered earlier).
    pub fn apply_to(self: std::sync::Arc<Self>, cmd: &mut tokio::process::Command) {
        // SAFETY: `enter` only makes system calls (no allocation, no lock), so it is safe
        // between fork and exec in a multi-threaded parent.
        unsafe {
            cmd.pre_exec(move || self.enter());
        }
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The Landlock ruleset of a policy, as a file descriptor for `landlock_restrict_self`; None
/// when the kernel turned out not to enforce any of it.
fn landlock_rules(policy: &Policy) -> Result<Option<OwnedFd>, SandboxError> {
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let read_exec = read | AccessFs::Execute;
    let write = read | AccessFs::from_write(LANDLOCK_ABI);
    let mut ruleset = Ruleset::default().handle_access(AccessFs::from_all(LANDLOCK_ABI))?.scope(Scope::from_all(LANDLOCK_ABI))?.create()?;
    let grants = [(&policy.read_exec, read_exec), (&policy.read, read), (&policy.write, write)];
    for (paths, access) in grants {
        for path in paths {
            // A file gets the file rights of `access` (the crate trims them).
            if let Ok(fd) = PathFd::new(path) {
                ruleset = ruleset.add_rule(PathBeneath::new(fd, access))?;
            }
        }
    }
    Ok(ruleset.into())
}

/// Marks berth itself not dumpable: its `/proc/<pid>/` files (its environment, memory, open
/// files) then belong to root and need `CAP_SYS_PTRACE`, which no worker has, whatever the user.
pub fn make_self_undumpable() -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes plain integers.
    match unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Whether `path` lies beneath one of the directories `policy` lets a worker read (for a
/// start-up warning when berth's data directory would be readable).
pub fn readable_under(policy: &Policy, path: &Path) -> Option<std::path::PathBuf> {
    policy.read_exec.iter().chain(&policy.read).chain(&policy.write).find(|root| path.starts_with(root)).cloned()
}
