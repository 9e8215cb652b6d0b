//! Instances: the worker processes that serve a variant, and the model files they serve.
//!
//! [`InstanceBackend`] is the seam between the controller and whatever runs a container:
//! [`ProcessBackend`] runs `exec:` programs as local child processes; a Docker or Kubernetes
//! backend is another implementation. Each running instance is an [`Instance`], owned by its
//! own supervisor task; the router sees it only through its [`InstanceSlot`].
//!
//! [`ModelArtifacts`] turns a `ModelDataUrl` into a model directory on disk, extracting archives
//! so that nothing lands outside that directory.

mod artifacts;
mod extract;
mod health;
mod process;
mod s3;
mod slot;

pub use artifacts::{ArtifactError, ModelArtifacts, ModelData};
pub use extract::ExtractLimits;
pub use process::{Instance, ProcessBackend, SupervisorSettings};
pub use slot::{InFlight, InstanceSlot};

use berth_domain::Image;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

/// Everything needed to start one instance of a variant.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Unique among running instances, e.g. `my-endpoint/Variant1/3f9a`.
    pub id: String,
    pub image: Image,
    pub model_dir: PathBuf,
    pub environment: BTreeMap<String, String>,
    pub log_path: PathBuf,
    /// How long the first `/ping` may take to pass.
    pub startup_timeout: Duration,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum InstanceError {
    /// The container could not be started or never became healthy; the message says why.
    #[error("{0}")]
    StartFailed(String),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Starts instances. `start` resolves once the instance has passed its first `/ping`.
pub trait InstanceBackend: Send + Sync + 'static {
    fn start(&self, spec: InstanceSpec) -> BoxFuture<'_, Result<Instance, InstanceError>>;
}
