//! Instances: the containers that serve a variant, and the model files they serve.
//!
//! [`InstanceBackend`] is the seam between the controller and whatever runs a container:
//! [`ProcessBackend`] runs `exec:` programs and built-in images as local child processes,
//! [`DockerBackend`] runs container images through the Docker engine, and [`ImageBackends`]
//! picks one by image (a Kubernetes backend would be another implementation). Each running
//! instance is an [`Instance`], owned by its backend (a supervisor task, `supervisor.rs`); the
//! router sees it only through its [`InstanceSlot`].
//!
//! [`ModelArtifacts`] turns a `ModelDataUrl` into a model directory on disk, extracting archives
//! so that nothing lands outside that directory.

mod artifacts;
mod backends;
mod cgroup;
mod docker;
mod error;
mod extract;
#[cfg(feature = "test-support")]
mod fake;
mod health;
mod instance;
mod launch;
mod log;
mod netns;
mod orphans;
mod panics;
mod pidfd;
mod process;
mod roots;
mod s3;
mod supervisor;

pub use s3::S3Writer;
mod slot;
mod usage;

pub use artifacts::{ModelArtifacts, ModelData, ModelDir, ModelSource};
pub use cgroup::{InstanceCgroup, MemoryCgroups};
pub use error::{ArtifactError, HostError, InstanceError, SettingError};
pub use extract::ExtractLimits;

/// Unpacks a tar stream (gzip-compressed when `gzip`) into an empty directory under berth's
/// rules, with small limits: for the fuzz targets under `fuzz/`.
#[doc(hidden)]
pub fn fuzz_unpack(data: &[u8], dest: &std::path::Path, gzip: bool) -> Result<(), String> {
    let limits = ExtractLimits { max_total_bytes: 1 << 20, max_entries: 64, max_ratio: 200, deadline: None };
    if gzip {
        let (reader, count) = extract::Counted::new(data);
        extract::unpack_tar(flate2::read::GzDecoder::new(reader), dest, limits, Some(count))
    } else {
        extract::unpack_tar(data, dest, limits, None)
    }
}
pub use backends::{FrameworkRuntime, ImageBackends, Prerequisite, Provided};
pub use docker::{DockerBackend, DockerEngine};
#[cfg(feature = "test-support")]
pub use fake::{FakeBackend, FakeCall};
pub use instance::{AliveGuard, Instance, InstanceBudget};
pub use log::{parse_line, read_events, InstanceLog};
pub use netns::{this_host, NetNamespace};
pub use orphans::{ProcessTracker, MARKER};
pub use panics::{caught, panic_message, Panicked};
pub use process::ProcessBackend;
pub use roots::{AllowedRoots, RootError};
pub use slot::{InFlight, InstanceSlot};
pub use supervisor::{log_tail, out_of_memory_reason, start_supervised, Runner, SupervisorSettings};
pub use usage::{disk_used_percent, host_memory_bytes, GroupUsage, UsageProbe};

use berth_domain::Image;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

/// Everything needed to start one instance of a variant.
#[derive(Clone)]
pub struct InstanceSpec {
    /// Unique among running instances, e.g. `my-endpoint/Variant1/3f9a`.
    pub id: String,
    pub endpoint: String,
    pub variant: String,
    pub image: Image,
    /// The model files, leased for as long as the instance runs.
    pub model_dir: ModelDir,
    /// Where the model files came from, for backends whose instances fetch them themselves.
    pub model_source: ModelSource,
    /// The handler's source directory (`SAGEMAKER_SUBMIT_DIRECTORY`, unpacked), when given.
    pub code_dir: Option<ModelDir>,
    /// The container definition's `Environment` (the caller's).
    pub environment: BTreeMap<String, String>,
    /// berth's own variables for the instance (its size, the multi-model mode, where a built-in
    /// image finds what it needs): set after `environment`, so a caller cannot replace them.
    pub berth_environment: BTreeMap<String, String>,
    /// What a local worker must reach besides the system, its program and its model files,
    /// when it runs sandboxed (added by the backend that knows: an interpreter, a library).
    pub access: WorkerAccess,
    pub log_path: PathBuf,
    /// How long the first `/ping` may take to pass.
    pub startup_timeout: Duration,
    /// The instance's memory (its type's or its serverless size), enforced where the backend can.
    pub memory_limit_bytes: Option<u64>,
    /// The instance's vCPUs (its type's, capped by the machine's cores), a CPU limit where the
    /// backend enforces one (containers).
    pub cpus: Option<u32>,
    /// The model's `EnableNetworkIsolation`: the container gets no network.
    pub network_isolation: bool,
    /// Told what happens to the instance over its life (the controller records events).
    pub observer: Option<InstanceObserver>,
    /// A multi-model container's directory of loaded models (see [`staged_models_dir`]),
    /// mounted read-only at [`STAGED_MODELS_MOUNT`]; made at start, removed with the container.
    pub staged_models: Option<PathBuf>,
    /// Which of its model's containers the instance runs (0 for a model of one container).
    pub container_index: usize,
}

impl InstanceSpec {
    /// The digest of what the instance's container runs (`reference`, its environment, model
    /// data, limits): a running container or pod of the same digest, left by a server that led
    /// before, can be adopted in its place. `None` for what is not adopted (a multi-model
    /// container's staged models are in its server's own directory).
    pub fn digest(&self, reference: &str) -> Option<String> {
        if self.staged_models.is_some() {
            return None;
        }
        let described = format!(
            "{reference}\n{:?}\n{:?}\n{}\n{:?}\n{:?}\n{:?}\n{}\n{}",
            self.environment,
            self.berth_environment,
            self.model_dir.key(),
            self.code_dir.as_ref().map(|d| d.key()),
            self.memory_limit_bytes,
            self.cpus,
            self.network_isolation,
            self.container_index
        );
        Some(format!("{:016x}", stable_hash(&described)))
    }
}

/// Programs a sandboxed worker may run (with their installations) and directories it may read.
#[derive(Debug, Clone, Default)]
pub struct WorkerAccess {
    pub programs: Vec<PathBuf>,
    pub reads: Vec<PathBuf>,
}

/// The bytes of the files under a directory (a model's size as loaded, approximately).
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

/// Where a multi-model container sees the models berth loads into it.
pub const STAGED_MODELS_MOUNT: &str = "/opt/ml/models";

/// The host directory of one multi-model container's loaded models: each a tree of hard links
/// to its unpacked archive, so the container sees only its own models.
pub fn staged_models_dir(data_dir: &std::path::Path, instance_id: &str) -> PathBuf {
    data_dir.join("staged-models").join(instance_id.replace('/', "-"))
}

/// Something that happened to a running instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceEvent {
    /// Passed its first health check (process id, port).
    Started { pid: u32, port: u16 },
    /// The process exited while it should have been serving (its exit status).
    Crashed { status: String },
    /// Failed this many health checks in a row and was killed.
    Unhealthy { failed_checks: u32 },
    /// Healthy again after a crash, on this start attempt.
    Restarted { attempt: u32 },
    /// A restart attempt failed; the supervisor tries again after a backoff.
    RestartFailed { reason: String },
    /// Drained and stopped.
    Stopped,
    /// A step of getting ready to start, in words (a Python environment being made).
    Preparing { step: String },
}

/// Receives an instance's events with its id. Called from the supervisor's task: keep it short.
pub type InstanceObserver = std::sync::Arc<dyn Fn(&str, InstanceEvent) + Send + Sync>;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Starts instances. `start` resolves once the instance has passed its first `/ping`; the
/// backend then owns it (supervision, restarts) until [`Instance::stop`].
pub trait InstanceBackend: Send + Sync + 'static {
    fn start(&self, spec: InstanceSpec) -> BoxFuture<'_, Result<Instance, InstanceError>>;
}

/// FNV-1a: stable across builds, unlike std's hasher, so names made from it stay the same.
pub fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// Creates a directory and its missing parents, readable by berth's user only (0700).
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}
