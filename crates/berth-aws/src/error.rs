//! The one place where errors become SageMaker answers.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_control::ControlError;
use berth_router::InvokeError;
use berth_store::StoreError;
use serde_json::json;

/// A control-plane error in awsJson1_1 shape: `{"__type": code, "Message": ...}`.
#[derive(Debug)]
pub struct ApiError {
    pub code: &'static str,
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError { code: "ValidationException", status: StatusCode::BAD_REQUEST, message: message.into() }
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let message = e.to_string();
        let (code, status) = match &e {
            ControlError::NotFound { .. }
            | ControlError::AlreadyExists { .. }
            | ControlError::Validation(_)
            | ControlError::AlarmNotFound(_)
            | ControlError::ScalingObjectNotFound(_) => ("ValidationException", StatusCode::BAD_REQUEST),
            ControlError::LimitExceeded(_) => ("ResourceLimitExceeded", StatusCode::BAD_REQUEST),
            ControlError::Store(StoreError::AlreadyExists | StoreError::NotFound | StoreError::Backend(_) | StoreError::Corrupt(_))
            | ControlError::Internal(_) => ("InternalFailure", StatusCode::INTERNAL_SERVER_ERROR),
        };
        if status.is_server_error() {
            tracing::error!(error = %message, "control-plane request failed");
        }
        ApiError { code, status, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "__type": self.code, "Message": self.message }).to_string();
        let mut resp = (self.status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        if let Ok(v) = HeaderValue::from_str(&crate::request_id()) {
            headers.insert("x-amzn-requestid", v);
        }
        resp
    }
}

/// A runtime error in rest-json shape: the code in `x-amzn-ErrorType`, details in the body.
#[derive(Debug)]
pub struct RuntimeError {
    pub code: &'static str,
    pub status: StatusCode,
    pub message: String,
    pub original_status: Option<u16>,
    pub original_message: Option<String>,
}

impl RuntimeError {
    pub fn validation(message: String) -> Self {
        RuntimeError { code: "ValidationError", status: StatusCode::BAD_REQUEST, message, original_status: None, original_message: None }
    }

    /// Maps every router error to SageMaker's runtime error. `account` and `log_hint` are
    /// for the messages.
    pub fn from_invoke(e: InvokeError, endpoint: &str, account: &str, log_hint: &str) -> Self {
        let plain = |code, status, message: String| RuntimeError { code, status, message, original_status: None, original_message: None };
        match e {
            InvokeError::EndpointNotFound => plain("ValidationError", StatusCode::BAD_REQUEST, format!("Endpoint {endpoint} of account {account} not found.")),
            InvokeError::VariantNotFound { variant } => plain(
                "ValidationError",
                StatusCode::BAD_REQUEST,
                format!("Endpoint {endpoint} of account {account} has no variant named {variant}."),
            ),
            InvokeError::NoWeight => plain(
                "ValidationError",
                StatusCode::BAD_REQUEST,
                format!("Every variant of endpoint {endpoint} has weight 0: set a weight or name a TargetVariant."),
            ),
            InvokeError::NoHealthyInstance { variant } => plain(
                "ModelNotReadyException",
                StatusCode::TOO_MANY_REQUESTS,
                format!("Variant {variant} of endpoint {endpoint} has no healthy instance right now; its instances are starting or restarting. Retry shortly."),
            ),
            InvokeError::Unreachable { variant, message } => plain(
                "ServiceUnavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Could not reach an instance of variant {variant} of endpoint {endpoint} ({message}); the request did not reach a container. Retry shortly."),
            ),
            InvokeError::ModelError { variant, status, body } => {
                let kind = if status < 500 { "client" } else { "server" };
                RuntimeError {
                    code: "ModelError",
                    status: StatusCode::FAILED_DEPENDENCY,
                    message: format!("Received {kind} error ({status}) from primary with message \"{body}\". See {log_hint}/{variant}/ for the instance logs."),
                    original_status: Some(status),
                    original_message: Some(body),
                }
            }
            InvokeError::Failed { variant, message } => plain(
                "ModelError",
                StatusCode::FAILED_DEPENDENCY,
                format!("The container of variant {variant} closed the connection before answering ({message}). See {log_hint}/{variant}/ for the instance logs."),
            ),
            InvokeError::Timeout { variant, seconds } => plain(
                "ModelError",
                StatusCode::FAILED_DEPENDENCY,
                format!("Your invocation timed out while waiting for a response from container primary of variant {variant} after {seconds} seconds."),
            ),
            InvokeError::Throttled { variant, max_concurrency } => plain(
                "ThrottlingException",
                StatusCode::TOO_MANY_REQUESTS,
                format!("Rate exceeded: serverless variant {variant} of endpoint {endpoint} is serving its MaxConcurrency of {max_concurrency} requests. Retry shortly or raise MaxConcurrency."),
            ),
            InvokeError::AnswerTooLarge { variant, limit } => plain(
                "ModelError",
                StatusCode::FAILED_DEPENDENCY,
                format!("The container of variant {variant} answered with more than {limit} bytes, the limit of an invocation's response (6 MB)."),
            ),
            InvokeError::ColdStartFailed { variant, reason } => plain(
                "ModelNotReadyException",
                StatusCode::TOO_MANY_REQUESTS,
                format!("Serverless variant {variant} of endpoint {endpoint} could not start an instance for this request: {reason}"),
            ),
        }
    }
}

impl IntoResponse for RuntimeError {
    fn into_response(self) -> Response {
        let mut body = json!({ "message": self.message, "Message": self.message });
        if let Some(s) = self.original_status {
            body["OriginalStatusCode"] = json!(s);
            body["ErrorCode"] = json!(if s < 500 { "CLIENT_ERROR_FROM_MODEL" } else { "SERVER_ERROR_FROM_MODEL" });
        }
        if let Some(m) = self.original_message {
            body["OriginalMessage"] = json!(m);
        }
        let mut resp = (self.status, body.to_string()).into_response();
        let headers = resp.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        if let Ok(v) = HeaderValue::from_str(&crate::request_id()) {
            headers.insert("x-amzn-requestid", v);
        }
        resp
    }
}
