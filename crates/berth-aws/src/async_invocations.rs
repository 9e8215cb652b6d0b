//! `POST /endpoints/{name}/async-invocations`: SageMaker's InvokeEndpointAsync. The request
//! (its input in S3, under a `--file-root`, or inline) is queued durably and answered at once
//! with 202, its `InferenceId` and where its answer or failure will be written.

use crate::error::{EdgeError, Service};
use crate::protocol::Protocol;
use crate::Edge;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_control::{AsyncInput, AsyncInvocation, MAX_INLINE_BODY};
use serde_json::json;

const INPUT_LOCATION: HeaderName = HeaderName::from_static("x-amzn-sagemaker-inputlocation");
const CONTENT_TYPE: HeaderName = HeaderName::from_static("x-amzn-sagemaker-content-type");
const ACCEPT: HeaderName = HeaderName::from_static("x-amzn-sagemaker-accept");
const CUSTOM_ATTRIBUTES: HeaderName = HeaderName::from_static("x-amzn-sagemaker-custom-attributes");
const INFERENCE_ID: HeaderName = HeaderName::from_static("x-amzn-sagemaker-inference-id");
const TTL: HeaderName = HeaderName::from_static("x-amzn-sagemaker-requestttlseconds");
const INVOCATION_TIMEOUT: HeaderName = HeaderName::from_static("x-amzn-sagemaker-invocationtimeoutseconds");
const OUTPUT_PATH_EXTENSION: HeaderName = HeaderName::from_static("x-amzn-sagemaker-s3outputpathextension");
const FILENAME: HeaderName = HeaderName::from_static("x-amzn-sagemaker-filename");
const OUTPUT_LOCATION: HeaderName = HeaderName::from_static("x-amzn-sagemaker-outputlocation");
const FAILURE_LOCATION: HeaderName = HeaderName::from_static("x-amzn-sagemaker-failurelocation");

pub async fn invoke_async(State(edge): State<Edge>, Path(endpoint): Path<String>, headers: HeaderMap, body: Body) -> Response {
    // The gate bounded and timed the body (or read it whole, for a signed request).
    let body = match axum::body::to_bytes(body, crate::MAX_INVOCATION_BYTES).await {
        Ok(b) => b,
        Err(e) => return crate::bodies::unread_body(Protocol::Runtime, &e),
    };
    let invocation = match async_invocation(&headers, body) {
        Ok(i) => i,
        Err(e) => return Protocol::Runtime.answer_error(e),
    };
    match edge.controller.enqueue_async(&endpoint, invocation).await {
        Ok(accepted) => {
            let mut resp = (StatusCode::ACCEPTED, json!({ "InferenceId": accepted.inference_id }).to_string()).into_response();
            let h = resp.headers_mut();
            h.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            for (name, value) in [(OUTPUT_LOCATION, accepted.output_location), (FAILURE_LOCATION, accepted.failure_location)] {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(name, v);
                }
            }
            resp
        }
        Err(berth_control::ControlError::NotFound { .. }) => {
            let account = &edge.controller.account().account_id;
            Protocol::Runtime.answer_error(EdgeError::runtime_validation(format!("Endpoint {endpoint} of account {account} not found.")))
        }
        Err(e) => Protocol::Runtime.answer_error(EdgeError::control(e, Service::Runtime)),
    }
}

/// The request as the controller takes it, every member checked against SageMaker's
/// constraints (and the output path's extension and file name against leaving the output path).
fn async_invocation(headers: &HeaderMap, body: bytes::Bytes) -> Result<AsyncInvocation, EdgeError> {
    if let Some(member) = crate::runtime::unsupported_member(headers) {
        return Err(EdgeError::runtime_validation(format!("{member} is not supported by this version of berth; leave it out.")));
    }
    if headers.contains_key("x-amzn-sagemaker-target-model") {
        return Err(EdgeError::runtime_validation(
            "InvokeEndpointAsync takes no TargetModel: invoke a multi-model endpoint's models with InvokeEndpoint.",
        ));
    }
    let text = |name: &HeaderName, member: &str, max: usize| -> Result<Option<String>, EdgeError> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) if v.len() > max => Err(EdgeError::runtime_validation(format!(
                "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length less than or equal to {max}"
            ))),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.to_string()))
                .map_err(|_| EdgeError::runtime_validation(format!("The value of {member} is not ASCII text."))),
        }
    };
    let number = |name: &HeaderName, member: &str, min: u32, max: u32| -> Result<Option<u32>, EdgeError> {
        let Some(v) = text(name, member, 16)? else { return Ok(None) };
        match v.trim().parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(EdgeError::runtime_validation(format!(
                "1 validation error detected: Value '{v}' at '{member}' failed to satisfy constraint: Member must have value between {min} and {max}"
            ))),
        }
    };
    let location = text(&INPUT_LOCATION, "inputLocation", 1024)?;
    let input = match (location, body.is_empty()) {
        (Some(_), false) => return Err(EdgeError::runtime_validation("Give the input either in InputLocation or in the Body, not both.")),
        (Some(l), true) => AsyncInput::Location(l),
        (None, false) if body.len() > MAX_INLINE_BODY => {
            return Err(EdgeError::runtime_validation(format!(
            "The inline Body is {} bytes; at most {MAX_INLINE_BODY} may be sent inline. Put the input in S3 and name it in InputLocation.",
            body.len()
        )))
        }
        (None, false) => AsyncInput::Inline(body),
        (None, true) => return Err(EdgeError::runtime_validation("InputLocation (or an inline Body) is required.")),
    };
    let inference_id = text(&INFERENCE_ID, "inferenceId", 64)?;
    if inference_id.as_deref().is_some_and(|id| id.is_empty() || id.starts_with(char::is_whitespace) || id.chars().any(|c| c.is_control()))
    {
        return Err(EdgeError::runtime_validation("InferenceId must be printable text that does not start with a space."));
    }
    let extension = text(&OUTPUT_PATH_EXTENSION, "s3OutputPathExtension", 512)?;
    if let Some(ext) = &extension {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "!_.*'()/-".contains(c);
        let climbs = ext.split('/').any(|segment| segment == ".." || segment == ".");
        if ext.is_empty() || ext.starts_with("s3:") || ext.starts_with("https:") || !ext.chars().all(allowed) || climbs {
            return Err(EdgeError::runtime_validation(format!(
                "S3OutputPathExtension '{ext}' must be a relative path of letters, digits and !_.*'()/- without . or .. segments."
            )));
        }
    }
    let filename = text(&FILENAME, "filename", 32)?;
    if let Some(name) = &filename {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.chars().all(allowed) || name.matches('.').count() > 1 {
            return Err(EdgeError::runtime_validation(format!(
                "Filename '{name}' must start with a letter or digit, hold only letters, digits, '-', '_' and at most one '.'."
            )));
        }
    }
    Ok(AsyncInvocation {
        inference_id,
        input,
        content_type: text(&CONTENT_TYPE, "contentType", 1024)?,
        accept: text(&ACCEPT, "accept", 1024)?,
        custom_attributes: text(&CUSTOM_ATTRIBUTES, "customAttributes", 1024)?,
        ttl_secs: number(&TTL, "requestTTLSeconds", 60, 21_600)?,
        invocation_timeout_secs: number(&INVOCATION_TIMEOUT, "invocationTimeoutSeconds", 1, 3_600)?,
        output_path_extension: extension,
        filename,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn hostile_members_are_refused_before_anything_is_queued() {
        let location = ("x-amzn-sagemaker-inputlocation", "s3://b/in.csv");
        assert!(async_invocation(&headers(&[location]), bytes::Bytes::new()).is_ok());
        let refused = [
            vec![],
            vec![location, ("x-amzn-sagemaker-s3outputpathextension", "../../etc")],
            vec![location, ("x-amzn-sagemaker-s3outputpathextension", "a/./b")],
            vec![location, ("x-amzn-sagemaker-s3outputpathextension", "s3://other")],
            vec![location, ("x-amzn-sagemaker-filename", "../x")],
            vec![location, ("x-amzn-sagemaker-filename", "a.b.c")],
            vec![location, ("x-amzn-sagemaker-requestttlseconds", "59")],
            vec![location, ("x-amzn-sagemaker-invocationtimeoutseconds", "3601")],
            vec![location, ("x-amzn-sagemaker-invocationtimeoutseconds", "-1")],
            vec![location, ("x-amzn-sagemaker-target-model", "m")],
        ];
        for h in refused {
            assert!(async_invocation(&headers(&h), bytes::Bytes::new()).is_err(), "{h:?}");
        }
        assert!(async_invocation(&headers(&[location]), bytes::Bytes::from_static(b"x")).is_err(), "both a location and a body");
        assert!(async_invocation(&HeaderMap::new(), bytes::Bytes::from(vec![b'x'; MAX_INLINE_BODY + 1])).is_err(), "inline too large");
        assert!(async_invocation(&HeaderMap::new(), bytes::Bytes::from_static(b"1,2")).is_ok(), "inline");
    }
}
