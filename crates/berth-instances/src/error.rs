//! The errors of starting instances and preparing their model data.

/// Why an instance did not start; each message is written for the endpoint's `FailureReason`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InstanceError {
    /// Its container or process did not start, or exited or failed its health checks before
    /// it first passed `/ping`.
    #[error("{0}")]
    DidNotStart(String),
    /// Its image is not one the backend runs, or the Docker engine does not have it.
    #[error("{0}")]
    Image(String),
    /// What its image needs on the machine is missing or could not be made: ONNX Runtime, a
    /// Python environment, or the Python runtime is off.
    #[error("{0}")]
    Prerequisite(String),
    /// berth already runs as many instances as `--max-instances` allows.
    #[error("{0}")]
    CapacityExceeded(String),
    /// It was stopped (its endpoint deleted, berth shutting down) before it became healthy.
    #[error("{0}")]
    Stopped(String),
}

/// Why a model's data could not be prepared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ArtifactError {
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unsafe(String),
    #[error("{0}")]
    Io(String),
    /// The data is somewhere berth may not read.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Timeout(String),
}

/// A setting of the operator's (a flag's value) berth cannot use; the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingError(pub String);

/// Something of the host's berth cannot use (memory cgroups, an S3 write); the message says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HostError(pub String);
