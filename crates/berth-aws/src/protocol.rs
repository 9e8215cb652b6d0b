//! Which AWS protocol a request speaks, told apart before anything is read, and how each
//! protocol shapes an error. The handlers dispatch on the same tests.

use crate::error::EdgeError;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

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
            if target.starts_with(CLOUDWATCH_TARGET_PREFIX.as_bytes()) {
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

    /// An error in this protocol's shape: `code` for JSON, CBOR and rest-json, `query_code` for
    /// the query protocol's XML.
    pub(crate) fn error(self, status: StatusCode, code: &'static str, query_code: &'static str, message: String) -> Response {
        self.answer_error(EdgeError::new(status, code, message).query_code(query_code))
    }

    /// How each protocol writes an error; every answer names its request id.
    pub(crate) fn answer_error(self, mut e: EdgeError) -> Response {
        e.message = crate::error::public_message(e.message);
        let (body, content_type): (Vec<u8>, &'static str) = match self {
            Protocol::AwsJson => (json!({ "__type": e.code, "Message": e.message }).to_string().into(), "application/x-amz-json-1.1"),
            Protocol::Runtime => {
                let mut body = json!({ "message": e.message, "Message": e.message });
                if let Some(model) = e.model {
                    body["OriginalStatusCode"] = json!(model.status);
                    body["ErrorCode"] = json!(if model.status < 500 { "CLIENT_ERROR_FROM_MODEL" } else { "SERVER_ERROR_FROM_MODEL" });
                    body["OriginalMessage"] = json!(model.body);
                }
                (body.to_string().into(), "application/json")
            }
            Protocol::CloudWatchJson | Protocol::CloudWatchCbor => {
                let body = json!({ "__type": format!("com.amazonaws.cloudwatch#{}", e.code), "message": e.message });
                if self == Protocol::CloudWatchCbor {
                    (encode_cbor(&body), "application/cbor")
                } else {
                    (body.to_string().into(), "application/x-amz-json-1.0")
                }
            }
            Protocol::CloudWatchQuery => (query_error_xml(e.query_code, &e.message, &crate::request_id()).into(), "text/xml"),
            Protocol::Berth | Protocol::Open => (json!({ "code": e.code, "message": e.message }).to_string().into(), "application/json"),
        };
        let mut resp = (e.status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        match self {
            Protocol::AwsJson | Protocol::Runtime => {
                headers.insert("x-amzn-errortype", HeaderValue::from_static(e.code));
            }
            Protocol::CloudWatchJson | Protocol::CloudWatchCbor => {
                if let Ok(v) = HeaderValue::from_str(&format!("{};Sender", e.query_code)) {
                    headers.insert("x-amzn-query-error", v);
                }
                if self == Protocol::CloudWatchCbor {
                    headers.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
                }
            }
            _ => {}
        }
        if let Ok(v) = HeaderValue::from_str(&crate::request_id()) {
            headers.insert("x-amzn-requestid", v);
        }
        resp
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes).is_some_and(|t| t.starts_with(b"application/x-www-form-urlencoded"))
}

/// The `X-Amz-Target` prefix of CloudWatch's JSON protocol.
pub(crate) const CLOUDWATCH_TARGET_PREFIX: &str = "GraniteServiceVersion20100801";

/// The namespace of CloudWatch's query-protocol answers.
pub(crate) const CLOUDWATCH_XMLNS: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";

/// An error as the query protocol writes it.
pub(crate) fn query_error_xml(code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"{CLOUDWATCH_XMLNS}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
        xml_escape(message)
    )
}

/// Text as XML content or attribute value.
pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// A value in CBOR, as the protocol writes answers and errors.
pub(crate) fn encode_cbor(v: &Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Writing to a Vec fails only on a value CBOR cannot hold; none is built here.
    let _ = ciborium::ser::into_writer(&to_cbor(v, false), &mut bytes);
    bytes
}

/// JSON to CBOR; members named `Timestamp` (and the items of `Timestamps`) become CBOR
/// timestamps (tag 1), as the protocol has it.
fn to_cbor(v: &Value, timestamp: bool) -> ciborium::Value {
    use ciborium::Value as C;
    match v {
        Value::Number(n) if timestamp => C::Tag(1, Box::new(C::Float(n.as_f64().unwrap_or(0.0)))),
        Value::Number(n) => match n.as_i64() {
            Some(i) => C::Integer(i.into()),
            None => C::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => C::Text(s.clone()),
        Value::Bool(b) => C::Bool(*b),
        Value::Null => C::Null,
        Value::Array(items) => C::Array(items.iter().map(|i| to_cbor(i, timestamp)).collect()),
        Value::Object(map) => {
            C::Map(map.iter().map(|(k, v)| (C::Text(k.clone()), to_cbor(v, k.ends_with("Timestamp") || k == "Timestamps"))).collect())
        }
    }
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
