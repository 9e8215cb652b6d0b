//! The awsJson1_1 protocol as SageMaker and Application Auto Scaling speak it on `POST /`:
//! reading a request, the validation errors in AWS's words, and the shapes every operation's
//! answer shares (times, tags, page tokens). The operations themselves live in
//! `control_plane.rs`, `endpoint_shapes.rs`, `guardrails.rs`, `experiments.rs` and
//! `autoscaling.rs`; this module imports none of them.

use crate::error::EdgeError;
use crate::wire::{self, ListInput};
use axum::http::StatusCode;
use berth_control::{ListQuery, SortKey, TimeWindow};
use berth_domain::{EndpointStatus, Timestamp};
use serde::de::DeserializeOwned;
use serde_json::Value;

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
/// A string member at a path of objects, if present.
pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k)).and_then(Value::as_str)
}

/// A string member at a path of objects, or SageMaker's error for a missing member.
pub(crate) fn required<'a>(v: &'a Value, path: &[&str]) -> Result<&'a str, EdgeError> {
    at(v, path).ok_or_else(|| {
        EdgeError::validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            path.join(".")
        ))
    })
}

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

pub(crate) fn tags(t: Option<Vec<wire::Tag>>) -> Vec<(String, String)> {
    t.unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect()
}

/// Tags in their wire shape.
pub(crate) fn wire_tags(t: &[(String, String)]) -> Vec<wire::Tag> {
    t.iter().map(|(key, value)| wire::Tag { key: key.clone(), value: value.clone() }).collect()
}

/// An operation's typed answer as the JSON the protocol writes (the one place an answer
/// becomes a `Value`).
pub(crate) fn reply<T: serde::Serialize>(answer: T) -> Result<Value, EdgeError> {
    serde_json::to_value(answer)
        .map_err(|e| EdgeError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", format!("cannot write the answer: {e}")))
}

/// A List* request's query; `by_status`: the operation may sort by `Status` (ListEndpoints;
/// ListModels and ListEndpointConfigs take `Name` and `CreationTime` only).
pub(crate) fn list_query(input: ListInput, by_status: bool) -> Result<ListQuery, EdgeError> {
    let keys: &[&str] = if by_status { &["Name", "CreationTime", "Status"] } else { &["Name", "CreationTime"] };
    let sort_by = match input.sort_by.as_deref() {
        None | Some("CreationTime") => SortKey::CreationTime,
        Some("Name") => SortKey::Name,
        Some("Status") if by_status => SortKey::Status,
        Some(other) => return Err(enum_error("sortBy", other, keys)),
    };
    let ascending = match input.sort_order.as_deref() {
        None | Some("Descending") => false,
        Some("Ascending") => true,
        Some(other) => return Err(enum_error("sortOrder", other, &["Ascending", "Descending"])),
    };
    let status_equals = match input.status_equals.as_deref() {
        None => None,
        Some(s) => Some(EndpointStatus::parse(s).ok_or_else(|| {
            let all: Vec<&str> = EndpointStatus::ALL.iter().map(|s| s.as_str()).collect();
            enum_error("statusEquals", s, &all)
        })?),
    };
    let window = |after: Option<f64>, before: Option<f64>| TimeWindow {
        after: after.map(Timestamp::from_secs_f64),
        before: before.map(Timestamp::from_secs_f64),
    };
    Ok(ListQuery {
        name_contains: input.name_contains,
        status_equals,
        sort_by,
        ascending,
        next_token: input.next_token,
        max_results: input.max_results,
        created: window(input.creation_time_after, input.creation_time_before),
        modified: window(input.last_modified_time_after, input.last_modified_time_before),
    })
}
