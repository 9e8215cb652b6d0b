/// A request that breaks one of the domain's rules. The message is what the user reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    Validation(String),
}
