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
