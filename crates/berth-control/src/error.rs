use berth_domain::{DomainError, ResourceKind};
use berth_store::StoreError;

/// Why a control-plane operation was refused or failed. The edge maps each kind to exactly
/// one SageMaker error code and HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// `Could not find model "arn:..."`.
    #[error("Could not find {} \"{arn}\".", kind.noun())]
    NotFound { kind: ResourceKind, arn: String },
    /// `Cannot create already existing model "arn:..."`.
    #[error("Cannot create already existing {} \"{arn}\".", kind.noun())]
    AlreadyExists { kind: ResourceKind, arn: String },
    #[error("{0}")]
    Validation(String),
    /// A job SageMaker answers `ResourceNotFound` for (a processing job).
    #[error("{0}")]
    JobNotFound(String),
    /// A CloudWatch alarm that does not exist (SageMaker answers ValidationException for it,
    /// CloudWatch ResourceNotFound).
    #[error("{0}")]
    AlarmNotFound(String),
    /// A scalable target or scaling policy that does not exist (Application Auto Scaling's
    /// ObjectNotFoundException).
    #[error("{0}")]
    ScalingObjectNotFound(String),
    #[error("{0}")]
    LimitExceeded(String),
    /// The state store failed; nothing was changed.
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<DomainError> for ControlError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Validation(m) => ControlError::Validation(m),
        }
    }
}
