//! The awsJson1_1 protocol as SageMaker and Application Auto Scaling speak it on `POST /`:
//! reading a request, the validation errors in AWS's words, and the shapes every operation's
//! answer shares (times, tags, page tokens). The operations themselves live in
//! `control_plane.rs`, `endpoint_shapes.rs`, `guardrails.rs`, `experiments.rs` and
//! `autoscaling.rs`; this module imports none of them.

use crate::error::EdgeError;
use crate::wire;
use axum::http::StatusCode;
use berth_domain::Timestamp;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// The request body as `T`; an empty body is `{}`, as botocore sends for operations without input.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, EdgeError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() { "SerializationException" } else { "ValidationException" };
        EdgeError::new(StatusCode::BAD_REQUEST, code, format!("The request could not be read: {e}"))
    })
}

/// A required string member, e.g. `EndpointName`.
pub(crate) fn name(body: &[u8], member: &str) -> Result<String, EdgeError> {
    let v: Value = parse(body)?;
    v.get(member).and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
        EdgeError::validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

/// Refuses a member berth does not implement, rather than ignoring it.
pub(crate) fn unsupported(present: bool, member: &str) -> Result<(), EdgeError> {
    if present {
        return Err(EdgeError::validation(format!("{member} is not supported by this version of berth; leave it out.")));
    }
    Ok(())
}

/// A value outside an enum, worded as AWS's validation does.
pub(crate) fn enum_error(member: &str, value: &str, allowed: &[&str]) -> EdgeError {
    EdgeError::validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
        allowed.join(", ")
    ))
}

/// A time as awsJson writes it: seconds since the epoch.
pub(crate) fn secs(t: Timestamp) -> f64 {
    t.as_secs_f64()
}

/// An answer with its `NextToken`, when there is a next page.
pub(crate) fn with_token(mut v: Value, token: Option<String>) -> Value {
    if let Some(t) = token {
        v["NextToken"] = json!(t);
    }
    v
}

pub(crate) fn tags(t: Option<Vec<wire::Tag>>) -> Vec<(String, String)> {
    t.unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect()
}

pub(crate) fn tags_json(t: &[(String, String)]) -> Vec<Value> {
    t.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect()
}
