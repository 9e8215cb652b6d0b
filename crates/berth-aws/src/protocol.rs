//! Which AWS protocol a request speaks, told apart before anything is read, and how each
//! protocol shapes an error. The handlers dispatch on the same tests.

use crate::cloudwatch::{self, CloudWatchError};
use crate::error::{ApiError, RuntimeError};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub(crate) const X_AMZ_TARGET: HeaderName = HeaderName::from_static("x-amz-target");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// awsJson1_1 on `POST /`: SageMaker's control plane and Application Auto Scaling.
    AwsJson,
    /// CloudWatch in awsJson1_0 (`X-Amz-Target: GraniteServiceVersion20100801.*`).
    CloudWatchJson,
    /// CloudWatch in Smithy RPC v2 CBOR (`POST /service/.../operation/...`).
    CloudWatchCbor,
    /// CloudWatch in the AWS query protocol (a form on `POST /`, answered in XML).
    CloudWatchQuery,
    /// SageMaker's runtime (`/endpoints/{name}/...`, rest-json).
    Runtime,
    /// berth's own routes for operators: `/metrics`, `/ui`, `/berth/v1/...`.
    Berth,
    /// `/healthz` and paths berth does not serve (answered 404).
    Open,
}

impl Protocol {
    pub(crate) fn of(method: &Method, path: &str, headers: &HeaderMap) -> Protocol {
        if path == "/" && method == Method::POST {
            let target = headers.get(&X_AMZ_TARGET).map(HeaderValue::as_bytes).unwrap_or_default();
            if target.starts_with(cloudwatch::TARGET_PREFIX.as_bytes()) {
                return Protocol::CloudWatchJson;
            }
            if target.is_empty() && is_form(headers) {
                return Protocol::CloudWatchQuery;
            }
            return Protocol::AwsJson;
        }
        if path.starts_with("/endpoints/") {
            Protocol::Runtime
        } else if path.starts_with("/service/") {
            Protocol::CloudWatchCbor
        } else if path == "/metrics" || path == "/ui" || path.starts_with("/ui/") || path.starts_with("/berth/") {
            Protocol::Berth
        } else {
            Protocol::Open
        }
    }

    /// Whether the route is one of the AWS APIs (signed with SigV4 when authentication is on).
    pub(crate) fn is_aws(self) -> bool {
        !matches!(self, Protocol::Berth | Protocol::Open)
    }

    /// The largest request body the protocol's routes take; bodies are refused past it
    /// before more is read. The runtime takes SageMaker's 6 MB, the others 1 MB (CloudWatch's
    /// documented PutMetricData limit; SageMaker's control-plane requests are far smaller).
    pub(crate) fn body_limit(self) -> usize {
        match self {
            Protocol::Runtime => crate::MAX_INVOCATION_BYTES,
            _ => crate::MAX_CONTROL_BYTES,
        }
    }

    /// An error in this protocol's shape: `json_code` for JSON/CBOR/rest-json, `query_code`
    /// for the query protocol's XML.
    pub(crate) fn error(self, status: StatusCode, json_code: &'static str, query_code: &'static str, message: String) -> Response {
        match self {
            Protocol::AwsJson => ApiError { code: json_code, status, message }.into_response(),
            Protocol::Runtime => {
                RuntimeError { code: json_code, status, message, original_status: None, original_message: None }.into_response()
            }
            Protocol::CloudWatchJson | Protocol::CloudWatchCbor => {
                cloudwatch::error_response(CloudWatchError::new(json_code, query_code, status, message), self == Protocol::CloudWatchCbor)
            }
            Protocol::CloudWatchQuery => {
                cloudwatch::query_error(CloudWatchError::new(json_code, query_code, status, message), &crate::request_id())
            }
            Protocol::Berth | Protocol::Open => (status, json!({ "code": json_code, "message": message }).to_string()).into_response(),
        }
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .map(HeaderValue::as_bytes)
        .is_some_and(|t| t.starts_with(b"application/x-www-form-urlencoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(method: Method, path: &str, headers: &[(&'static str, &'static str)]) -> Protocol {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_static(v));
        }
        Protocol::of(&method, path, &h)
    }

    #[test]
    fn requests_are_told_apart_by_path_and_headers() {
        assert_eq!(of(Method::POST, "/", &[("x-amz-target", "SageMaker.ListModels")]), Protocol::AwsJson);
        assert_eq!(of(Method::POST, "/", &[("x-amz-target", "AnyScaleFrontendService.X")]), Protocol::AwsJson);
        assert_eq!(of(Method::POST, "/", &[("x-amz-target", "GraniteServiceVersion20100801.ListMetrics")]), Protocol::CloudWatchJson);
        assert_eq!(
            of(Method::POST, "/", &[("content-type", "application/x-www-form-urlencoded; charset=utf-8")]),
            Protocol::CloudWatchQuery
        );
        assert_eq!(of(Method::POST, "/", &[]), Protocol::AwsJson);
        assert_eq!(of(Method::POST, "/service/GraniteServiceVersion20100801/operation/ListMetrics", &[]), Protocol::CloudWatchCbor);
        assert_eq!(of(Method::POST, "/endpoints/e/invocations", &[]), Protocol::Runtime);
        assert_eq!(of(Method::GET, "/metrics", &[]), Protocol::Berth);
        assert_eq!(of(Method::GET, "/ui/assets/x.js", &[]), Protocol::Berth);
        assert_eq!(of(Method::POST, "/berth/v1/endpoints/e/ground-truth", &[]), Protocol::Berth);
        assert_eq!(of(Method::GET, "/healthz", &[]), Protocol::Open);
        assert_eq!(of(Method::GET, "/uix", &[]), Protocol::Open);
    }
}
