//! The edge's one error type, and the one place where a controller or router error becomes
//! an AWS error code and HTTP status. How an error is written (awsJson, rest-json, CloudWatch's
//! JSON, CBOR or query XML, berth's own JSON) is the protocol's business:
//! [`crate::protocol::Protocol::answer_error`].

use axum::http::StatusCode;
use berth_control::ControlError;
use berth_router::InvokeError;
use berth_store::StoreError;

/// berth's data directory, set once when the edge is made: error messages never show callers a
/// path under it (see `berth_domain::redact_private_paths`). One per process, as the edge is.
static DATA_DIR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub(crate) fn set_data_dir(dir: &std::path::Path) {
    let _ = DATA_DIR.set(dir.to_string_lossy().into_owned());
}

/// A message as callers may read it (no path under berth's data directory).
pub(crate) fn public_message(message: String) -> String {
    match DATA_DIR.get() {
        Some(dir) => match berth_domain::redact_private_paths(&message, dir) {
            std::borrow::Cow::Borrowed(_) => message,
            std::borrow::Cow::Owned(redacted) => redacted,
        },
        None => message,
    }
}

/// An error answer: the code clients match on, the HTTP status and the message.
#[derive(Debug)]
pub struct EdgeError {
    /// The code in awsJson's `__type`, rest-json's `x-amzn-ErrorType`, CloudWatch's JSON and CBOR.
    pub code: &'static str,
    /// The code in CloudWatch's query protocol (`<Code>`, `x-amzn-query-error`); elsewhere `code`.
    pub query_code: &'static str,
    pub status: StatusCode,
    pub message: String,
    /// A runtime `ModelError` carries the container's own answer.
    pub model: Option<ModelAnswer>,
}

/// What a container answered when its answer is the error (`OriginalStatusCode`, `OriginalMessage`).
#[derive(Debug)]
pub struct ModelAnswer {
    pub status: u16,
    pub body: String,
}

/// Whose codes an error is told in: the same controller error is a `ValidationException` to
/// SageMaker, an `ObjectNotFoundException` to Application Auto Scaling and a 404
/// `ResourceNotFound` to CloudWatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    SageMaker,
    AutoScaling,
    CloudWatch,
    /// berth's own operator API (`/berth/v1/...`).
    Berth,
    /// SageMaker's runtime (InvokeEndpointAsync's checks), rest-json.
    Runtime,
}

impl EdgeError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        EdgeError { code, query_code: code, status, message: message.into(), model: None }
    }

    /// With a different code for CloudWatch's query protocol.
    pub fn query_code(mut self, code: &'static str) -> Self {
        self.query_code = code;
        self
    }

    /// SageMaker's and Application Auto Scaling's `ValidationException`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    /// The runtime's `ValidationError`.
    pub fn runtime_validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationError", message)
    }

    pub fn unknown_operation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "UnknownOperationException", message).query_code("InvalidAction")
    }

    /// CloudWatch's `InvalidParameterValue`.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidParameterValueException", message).query_code("InvalidParameterValue")
    }

    /// CloudWatch's `InvalidParameterCombination`.
    pub fn parameter_combination(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidParameterCombinationException", message).query_code("InvalidParameterCombination")
    }

    /// CloudWatch's `MissingParameter`.
    pub fn missing_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MissingRequiredParameterException", message).query_code("MissingParameter")
    }

    /// An error of berth's own API (`/berth/v1/...`), its code named after its status.
    pub fn berth(status: StatusCode, message: impl Into<String>) -> Self {
        let code = match status {
            StatusCode::NOT_FOUND => "NotFound",
            StatusCode::REQUEST_TIMEOUT => "RequestTimeout",
            StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLarge",
            s if s.is_server_error() => "InternalFailure",
            _ => "BadRequest",
        };
        Self::new(status, code, message)
    }

    /// Every controller error kind, told in `service`'s codes. A failure of berth's own (its
    /// state store, an internal error) is a 500 in every service, never the caller's 400.
    pub fn control(e: ControlError, service: Service) -> Self {
        use ControlError as C;
        use Service as S;
        let message = e.to_string();
        let error = match (&e, service) {
            // A shared store out of reach: nothing changed, and a retry may succeed (the SDKs
            // retry a 503 by themselves).
            (C::Store(StoreError::Unavailable(_)), S::CloudWatch) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message).query_code("ServiceUnavailable")
            }
            (C::Store(StoreError::Unavailable(_)), _) => Self::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message),
            (C::Store(_) | C::Internal(_), S::CloudWatch) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServiceFault", message).query_code("InternalFailure")
            }
            (C::Store(_) | C::Internal(_), _) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", message),
            (C::LimitExceeded(_), S::CloudWatch) => {
                Self::new(StatusCode::BAD_REQUEST, "LimitExceededFault", message).query_code("LimitExceeded")
            }
            (C::LimitExceeded(_), _) => Self::new(StatusCode::BAD_REQUEST, "ResourceLimitExceeded", message),
            (C::NotFound { .. } | C::AlarmNotFound(_) | C::JobNotFound(_), S::CloudWatch) => {
                Self::new(StatusCode::NOT_FOUND, "ResourceNotFound", message)
            }
            (C::JobNotFound(_), S::Berth) => Self::berth(StatusCode::NOT_FOUND, message),
            (C::JobNotFound(_), S::Runtime) => Self::runtime_validation(message),
            (C::JobNotFound(_), _) => Self::new(StatusCode::BAD_REQUEST, "ResourceNotFound", message),
            (C::NotFound { .. } | C::AlarmNotFound(_) | C::ScalingObjectNotFound(_), S::Berth) => {
                Self::berth(StatusCode::NOT_FOUND, message)
            }
            (C::AlreadyExists { .. } | C::Validation(_), S::Berth) => Self::berth(StatusCode::BAD_REQUEST, message),
            (
                C::NotFound { .. } | C::AlreadyExists { .. } | C::Validation(_) | C::AlarmNotFound(_) | C::ScalingObjectNotFound(_),
                S::Runtime,
            ) => Self::runtime_validation(message),
            (C::ScalingObjectNotFound(_), S::AutoScaling) => Self::new(StatusCode::BAD_REQUEST, "ObjectNotFoundException", message),
            (C::AlreadyExists { .. } | C::Validation(_) | C::ScalingObjectNotFound(_), S::CloudWatch) => Self::invalid_parameter(message),
            (C::NotFound { .. } | C::AlreadyExists { .. } | C::Validation(_) | C::AlarmNotFound(_) | C::ScalingObjectNotFound(_), _) => {
                Self::validation(message)
            }
        };
        if error.status.is_server_error() {
            tracing::error!(error = %error.message, "request failed");
        }
        error
    }

    /// Every router error as SageMaker's runtime answers it. `account` is for the messages; a
    /// container's failure points to its logs as the operator reads them (`berth logs`), as
    /// SageMaker's points to its CloudWatch log group.
    pub fn invoke(e: InvokeError, endpoint: &str, account: &str) -> Self {
        let model_error = |message: String| Self::new(StatusCode::FAILED_DEPENDENCY, "ModelError", message);
        let not_ready = |message: String| Self::new(StatusCode::TOO_MANY_REQUESTS, "ModelNotReadyException", message);
        match e {
            InvokeError::EndpointNotFound => Self::runtime_validation(format!("Endpoint {endpoint} of account {account} not found.")),
            InvokeError::VariantNotFound { variant } => {
                Self::runtime_validation(format!("Endpoint {endpoint} of account {account} has no variant named {variant}."))
            }
            InvokeError::NoWeight => Self::runtime_validation(format!(
                "Every variant of endpoint {endpoint} has weight 0: set a weight or name a TargetVariant."
            )),
            InvokeError::NoHealthyInstance { variant } => not_ready(format!(
                "Variant {variant} of endpoint {endpoint} has no healthy instance right now; its instances are starting or restarting. Retry shortly."
            )),
            InvokeError::Recovering => not_ready(format!(
                "Endpoint {endpoint} is being brought back (berth restarted, or another server of its cluster leads now); its instances are starting. Retry shortly."
            )),
            InvokeError::Unreachable { variant, message } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!("Could not reach an instance of variant {variant} of endpoint {endpoint} ({message}); the request did not reach a container. Retry shortly."),
            ),
            InvokeError::ModelError { variant, status, body, container } => {
                let kind = if status < 500 { "client" } else { "server" };
                let from = container.as_deref().unwrap_or("primary");
                let mut e = model_error(format!(
                    "Received {kind} error ({status}) from {from} with message \"{body}\". See `berth logs {endpoint} --variant {variant}` for the instance logs."
                ));
                e.model = Some(ModelAnswer { status, body });
                e
            }
            InvokeError::Failed { variant, message } => model_error(format!(
                "The container of variant {variant} closed the connection before answering ({message}). See `berth logs {endpoint} --variant {variant}` for the instance logs."
            )),
            InvokeError::Timeout { variant, seconds } => model_error(format!(
                "Your invocation timed out while waiting for a response from container primary of variant {variant} after {seconds} seconds."
            )),
            InvokeError::Throttled { variant, max_concurrency } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottlingException",
                format!("Rate exceeded: serverless variant {variant} of endpoint {endpoint} is serving its MaxConcurrency of {max_concurrency} requests. Retry shortly or raise MaxConcurrency."),
            ),
            InvokeError::AnswerTooLarge { variant, limit } => model_error(format!(
                "The container of variant {variant} answered with more than {limit} bytes, the limit of an invocation's response (6 MB)."
            )),
            InvokeError::ColdStartFailed { variant, reason } => not_ready(format!(
                "Serverless variant {variant} of endpoint {endpoint} could not start an instance for this request: {reason}"
            )),
            InvokeError::Target(message) => Self::runtime_validation(message),
            InvokeError::ModelLoad { variant, message } => {
                Self::runtime_validation(format!("{message} (variant {variant} of endpoint {endpoint})"))
            }
        }
    }
}

/// `?` in SageMaker's and Application Auto Scaling's operations.
impl From<ControlError> for EdgeError {
    fn from(e: ControlError) -> Self {
        EdgeError::control(e, Service::SageMaker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_hears_a_controller_error_in_its_own_codes() {
        let store = || ControlError::Store(StoreError::Backend("disk I/O error".into()));
        for service in [Service::SageMaker, Service::AutoScaling, Service::CloudWatch, Service::Berth, Service::Runtime] {
            assert_eq!(EdgeError::control(store(), service).status, StatusCode::INTERNAL_SERVER_ERROR, "{service:?}");
            assert_eq!(EdgeError::control(ControlError::Validation("no".into()), service).status, StatusCode::BAD_REQUEST);
        }
        let missing = || ControlError::ScalingObjectNotFound("No scalable target".into());
        assert_eq!(EdgeError::control(missing(), Service::AutoScaling).code, "ObjectNotFoundException");
        assert_eq!(EdgeError::control(missing(), Service::SageMaker).code, "ValidationException");
        assert_eq!(EdgeError::control(missing(), Service::Berth).status, StatusCode::NOT_FOUND);
        let alarm = EdgeError::control(ControlError::AlarmNotFound("no alarm".into()), Service::CloudWatch);
        assert_eq!((alarm.code, alarm.status), ("ResourceNotFound", StatusCode::NOT_FOUND));
        let invalid = EdgeError::control(ControlError::Validation("bad period".into()), Service::CloudWatch);
        assert_eq!((invalid.code, invalid.query_code), ("InvalidParameterValueException", "InvalidParameterValue"));
        let unreachable = || ControlError::Store(StoreError::Unavailable("cannot reach PostgreSQL".into()));
        for service in [Service::SageMaker, Service::AutoScaling, Service::CloudWatch, Service::Berth, Service::Runtime] {
            let e = EdgeError::control(unreachable(), service);
            assert_eq!((e.status, e.code), (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"), "{service:?}");
        }
        let store = EdgeError::control(store(), Service::CloudWatch);
        assert_eq!((store.code, store.query_code), ("InternalServiceFault", "InternalFailure"));
        let limit = EdgeError::control(ControlError::LimitExceeded("too many".into()), Service::SageMaker);
        assert_eq!(limit.code, "ResourceLimitExceeded");
    }
}
