//! `POST /endpoints/{name}/invocations`: SageMaker's InvokeEndpoint (and the request parsing
//! InvokeEndpointWithResponseStream shares).

use crate::error::EdgeError;
use crate::protocol::Protocol;
use crate::{Edge, MAX_INVOCATION_BYTES};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_router::InvokeRequest;
use bytes::Bytes;

const TARGET_VARIANT: HeaderName = HeaderName::from_static("x-amzn-sagemaker-target-variant");
pub(crate) const CUSTOM_ATTRIBUTES: HeaderName = HeaderName::from_static("x-amzn-sagemaker-custom-attributes");
const INFERENCE_ID: HeaderName = HeaderName::from_static("x-amzn-sagemaker-inference-id");
pub(crate) const INVOKED_VARIANT: HeaderName = HeaderName::from_static("x-amzn-invoked-production-variant");

pub async fn invoke(State(edge): State<Edge>, Path(endpoint): Path<String>, headers: HeaderMap, body: Body) -> Response {
    // The gate bounded and timed the body (or read it whole, for a signed request).
    let body = match axum::body::to_bytes(body, MAX_INVOCATION_BYTES).await {
        Ok(b) => b,
        Err(e) => return crate::bodies::unread_body(crate::protocol::Protocol::Runtime, &e),
    };
    answer(&edge, &endpoint, &headers, body).await
}

/// InvokeEndpoint once the body is read (here, or by the invocation route ahead of the router).
pub(crate) async fn answer(edge: &Edge, endpoint: &str, headers: &HeaderMap, body: Bytes) -> Response {
    let req = match invoke_request(headers, body, &ACCEPT) {
        Ok(r) => r,
        Err(e) => return e.answer(Protocol::Runtime),
    };
    match edge.router.invoke(endpoint, req).await {
        Ok(out) => {
            let mut resp = (StatusCode::OK, out.body).into_response();
            let h = resp.headers_mut();
            h.insert(CONTENT_TYPE, out.content_type.unwrap_or(HeaderValue::from_static("application/octet-stream")));
            if let Ok(v) = HeaderValue::from_str(&out.variant) {
                h.insert(INVOKED_VARIANT, v);
            }
            if let Some(v) = out.custom_attributes {
                h.insert(CUSTOM_ATTRIBUTES, v);
            }
            resp
        }
        Err(e) => {
            let account = &edge.controller.account().account_id;
            let logs = edge.controller.instance_log_dir(endpoint);
            EdgeError::invoke(e, endpoint, account, &logs.display().to_string()).answer(Protocol::Runtime)
        }
    }
}

/// The router's request from an invocation's headers and body; `accept` names the header the
/// operation takes `Accept` from. Members berth lacks are refused by name, and SageMaker's
/// limits on the headers it forwards are kept: longer values are refused, never forwarded.
pub(crate) fn invoke_request(headers: &HeaderMap, body: Bytes, accept: &HeaderName) -> Result<InvokeRequest, EdgeError> {
    if let Some(member) = unsupported_member(headers) {
        return Err(EdgeError::runtime_validation(format!("{member} is not supported by this version of berth; leave it out.")));
    }
    let target = bounded(headers, &TARGET_VARIANT, "targetVariant", 63)?;
    let custom_attributes = bounded(headers, &CUSTOM_ATTRIBUTES, "customAttributes", 1024)?;
    let inference_id = bounded(headers, &INFERENCE_ID, "inferenceId", 64)?;
    let target_variant = match target.map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v.to_string()),
        Some(Err(_)) => return Err(EdgeError::runtime_validation("X-Amzn-SageMaker-Target-Variant is not valid text.")),
    };
    Ok(InvokeRequest {
        body,
        content_type: headers.get(CONTENT_TYPE).cloned(),
        accept: headers.get(accept).cloned(),
        custom_attributes: custom_attributes.cloned(),
        inference_id: inference_id.cloned(),
        target_variant,
        timeout: None,
    })
}

/// The first runtime member berth does not implement that the request sets (refused by name,
/// never ignored). One pass over the names, comparing only SageMaker's own.
pub(crate) fn unsupported_member(headers: &HeaderMap) -> Option<&'static str> {
    headers.keys().find_map(|name| match name.as_str().strip_prefix("x-amzn-sagemaker-")? {
        "target-model" => Some("TargetModel"),
        "target-container-hostname" => Some("TargetContainerHostname"),
        "inference-component" => Some("InferenceComponentName"),
        "session-id" => Some("SessionId"),
        "enable-explanations" => Some("EnableExplanations"),
        "prefix-aware-id" => Some("PrefixAwareId"),
        _ => None,
    })
}

/// A header's value, refused when longer than SageMaker allows for its member.
fn bounded<'h>(headers: &'h HeaderMap, name: &HeaderName, member: &str, max: usize) -> Result<Option<&'h HeaderValue>, EdgeError> {
    match headers.get(name) {
        Some(v) if v.len() > max => Err(EdgeError::runtime_validation(format!(
            "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length less than or equal to {max}"
        ))),
        v => Ok(v),
    }
}
