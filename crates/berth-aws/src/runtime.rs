//! `POST /endpoints/{name}/invocations`: SageMaker's InvokeEndpoint.

use crate::error::RuntimeError;
use crate::{Edge, MAX_INVOCATION_BYTES};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_router::InvokeRequest;

const TARGET_VARIANT: &str = "x-amzn-sagemaker-target-variant";
const CUSTOM_ATTRIBUTES: &str = "x-amzn-sagemaker-custom-attributes";
const INFERENCE_ID: &str = "x-amzn-sagemaker-inference-id";
const INVOKED_VARIANT: &str = "x-amzn-invoked-production-variant";

pub async fn invoke(State(edge): State<Edge>, Path(endpoint): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let Ok(body) = axum::body::to_bytes(body, MAX_INVOCATION_BYTES).await else {
        return RuntimeError::validation(format!(
            "The request body exceeds the {MAX_INVOCATION_BYTES}-byte limit of an invocation (6 MB)."
        ))
        .into_response();
    };
    let target_variant = match headers.get(TARGET_VARIANT).map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v.to_string()),
        Some(Err(_)) => return RuntimeError::validation("X-Amzn-SageMaker-Target-Variant is not valid text.".into()).into_response(),
    };
    if let Err(e) = check_header_lengths(&headers) {
        return e.into_response();
    }
    let req = InvokeRequest {
        body,
        content_type: headers.get(CONTENT_TYPE).cloned(),
        accept: headers.get(ACCEPT).cloned(),
        custom_attributes: headers.get(CUSTOM_ATTRIBUTES).cloned(),
        inference_id: headers.get(INFERENCE_ID).cloned(),
        target_variant,
    };
    match edge.router.invoke(&endpoint, req).await {
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
            let logs = edge.controller.instance_log_dir(&endpoint);
            RuntimeError::from_invoke(e, &endpoint, account, &logs.display().to_string()).into_response()
        }
    }
}

/// SageMaker's limits on the runtime's headers: longer values are refused, never forwarded.
fn check_header_lengths(headers: &HeaderMap) -> Result<(), RuntimeError> {
    let limits = [(CUSTOM_ATTRIBUTES, "CustomAttributes", 1024), (INFERENCE_ID, "InferenceId", 64), (TARGET_VARIANT, "TargetVariant", 63)];
    for (header, member, max) in limits {
        if let Some(v) = headers.get(header) {
            if v.len() > max {
                return Err(RuntimeError::validation(format!(
                    "1 validation error detected: Value at '{}' failed to satisfy constraint: Member must have length less than or equal to {max}",
                    member[..1].to_ascii_lowercase() + &member[1..]
                )));
            }
        }
    }
    Ok(())
}
