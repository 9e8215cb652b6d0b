//! The asynchronous queue's records and what is written about them: a queued request as
//! stored, where its outcome goes, when it expires, and the SNS message of its end. Pure: the
//! worker in `async_inference.rs` reads, writes and sends them.

use berth_domain::{NameKey, Timestamp};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A queued request, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Queued {
    pub(crate) id: String,
    pub(crate) endpoint: String,
    pub(crate) input_location: Option<String>,
    /// The inline body, base64.
    pub(crate) inline: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) accept: Option<String>,
    pub(crate) custom_attributes: Option<String>,
    pub(crate) output_location: String,
    pub(crate) failure_location: String,
    pub(crate) received_ms: i64,
    pub(crate) ttl_secs: u32,
    pub(crate) timeout_secs: u32,
    /// Failed attempts at writing the outcome so far, and when the next may start (epoch ms).
    #[serde(default)]
    pub(crate) attempts: u32,
    #[serde(default)]
    pub(crate) retry_at_ms: i64,
}

/// The records kind of an endpoint's queue.
pub(crate) fn queue_kind(endpoint: &str) -> String {
    format!("async:{}", NameKey::of(endpoint))
}

/// `base/extension/name`, without doubled slashes.
pub(crate) fn join(base: &str, extension: Option<&str>, name: &str) -> String {
    let mut out = base.trim_end_matches('/').to_string();
    if let Some(ext) = extension.map(|e| e.trim_matches('/')).filter(|e| !e.is_empty()) {
        out.push('/');
        out.push_str(ext);
    }
    out.push('/');
    out.push_str(name);
    out
}

/// Why a request received at `received_ms` has expired by `now`, if it has (it waited in the
/// queue longer than its `RequestTTLSeconds`).
pub(crate) fn expiry(received_ms: i64, ttl_secs: u32, now: Timestamp) -> Option<String> {
    let age = (now.millis() - received_ms).max(0) / 1000;
    (age > i64::from(ttl_secs))
        .then(|| format!("Request expired: it waited {age} seconds in the queue, past its RequestTTLSeconds of {ttl_secs}."))
}

/// The most of an answer a notification carries (SageMaker's limit).
const MAX_NOTIFIED_ANSWER: usize = 128 * 1024;

/// The SNS message SageMaker sends when an asynchronous request is done.
pub(crate) fn notification(region: &str, q: &Queued, outcome: &Result<Bytes, String>, with_answer: bool, now: Timestamp) -> String {
    let iso = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default()
    };
    let mut request = serde_json::json!({ "endpointName": q.endpoint });
    if let Some(t) = &q.content_type {
        request["contentType"] = t.clone().into();
    }
    if let Some(l) = &q.input_location {
        request["inputLocation"] = l.clone().into();
    }
    let mut message = serde_json::json!({
        "awsRegion": region,
        "eventTime": iso(now.millis()),
        "receivedTime": iso(q.received_ms),
        "invocationStatus": if outcome.is_ok() { "Completed" } else { "Failed" },
        "requestParameters": request,
        "inferenceId": q.id,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    });
    match outcome {
        Ok(answer) => {
            message["responseParameters"] = serde_json::json!({ "outputLocation": q.output_location });
            if with_answer && answer.len() <= MAX_NOTIFIED_ANSWER {
                message["responseBody"] = match std::str::from_utf8(answer) {
                    Ok(text) => serde_json::json!({ "content": text, "encoding": "UTF-8" }),
                    Err(_) => {
                        use base64::Engine;
                        serde_json::json!({ "content": base64::engine::general_purpose::STANDARD.encode(answer), "encoding": "BASE64" })
                    }
                };
            }
        }
        Err(reason) => {
            message["failureReason"] = reason.clone().into();
            message["responseParameters"] = serde_json::json!({ "failureLocation": q.failure_location });
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_join_without_doubled_slashes() {
        assert_eq!(join("s3://b/out/", None, "id.out"), "s3://b/out/id.out");
        assert_eq!(join("s3://b/out", Some("/x/y/"), "id.out"), "s3://b/out/x/y/id.out");
        assert_eq!(join("file:///d", Some(""), "a"), "file:///d/a");
    }

    #[test]
    fn a_request_past_its_ttl_expires_with_the_reason() {
        let received = 1_000_000;
        assert_eq!(expiry(received, 60, Timestamp::from_millis(received + 60_000)), None, "60 s is within a TTL of 60");
        let reason = expiry(received, 60, Timestamp::from_millis(received + 61_500)).unwrap();
        assert!(reason.contains("waited 61 seconds") && reason.contains("RequestTTLSeconds of 60"), "{reason}");
    }
}
