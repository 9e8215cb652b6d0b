//! The errors of starting instances and preparing their model data.

/// Why an instance did not start.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InstanceError {
    /// The container could not be started or never became healthy; the message says why.
    #[error("{0}")]
    StartFailed(String),
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
