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
use berth_router::{InvokeRequest, InvokeTarget};
use bytes::Bytes;

pub(crate) const CUSTOM_ATTRIBUTES: HeaderName = HeaderName::from_static("x-amzn-sagemaker-custom-attributes");
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
    answer_with(edge, endpoint, RuntimeHeaders::read(headers, &ACCEPT), body).await
}

/// InvokeEndpoint with the request's headers already read.
pub(crate) async fn answer_with(edge: &Edge, endpoint: &str, headers: RuntimeHeaders<'_>, body: Bytes) -> Response {
    routed(&edge.router, &edge.controller.account().account_id, endpoint, headers, body).await
}

/// InvokeEndpoint through `router` (this server's, or a standby's copy of the leader's routes);
/// `account` names the endpoint in error messages.
pub(crate) async fn routed(
    router: &berth_router::Router,
    account: &str,
    endpoint: &str,
    headers: RuntimeHeaders<'_>,
    body: Bytes,
) -> Response {
    let req = match headers.request(body) {
        Ok(r) => r,
        Err(e) => return Protocol::Runtime.answer_error(e),
    };
    match router.invoke(endpoint, req).await {
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
        Err(e) => Protocol::Runtime.answer_error(EdgeError::invoke(e, endpoint, account)),
    }
}

/// The router's request from an invocation's headers and body; `accept` names the header the
/// operation takes `Accept` from.
pub(crate) fn invoke_request(headers: &HeaderMap, body: Bytes, accept: &HeaderName) -> Result<InvokeRequest, EdgeError> {
    RuntimeHeaders::read(headers, accept).request(body)
}

/// The headers an invocation reads, found in one pass over them (the first of each name), with
/// the gate's among them for the invocation route ahead of the router.
#[derive(Default)]
pub(crate) struct RuntimeHeaders<'h> {
    pub gate: crate::gate::GateHeaders<'h>,
    content_type: Option<&'h HeaderValue>,
    accept: Option<&'h HeaderValue>,
    target_variant: Option<&'h HeaderValue>,
    custom_attributes: Option<&'h HeaderValue>,
    inference_id: Option<&'h HeaderValue>,
    target_model: Option<&'h HeaderValue>,
    target_container: Option<&'h HeaderValue>,
    component: Option<&'h HeaderValue>,
    /// The first runtime member berth does not implement that the request sets.
    unsupported: Option<&'static str>,
}

impl<'h> RuntimeHeaders<'h> {
    pub(crate) fn read(headers: &'h HeaderMap, accept: &HeaderName) -> Self {
        Self::read_pairs(headers.iter().map(|(name, value)| (name.as_str(), value)), accept.as_str())
    }

    /// As [`read`](Self::read), from lower-case names and their values in the request's order.
    pub(crate) fn read_pairs<'n>(headers: impl Iterator<Item = (&'n str, &'h HeaderValue)>, accept: &str) -> Self {
        let mut seen = RuntimeHeaders::default();
        for (name, value) in headers {
            let slot = match name {
                "content-type" => &mut seen.content_type,
                n if n == accept => &mut seen.accept,
                _ => match name.strip_prefix("x-amzn-sagemaker-") {
                    Some("target-variant") => &mut seen.target_variant,
                    Some("custom-attributes") => &mut seen.custom_attributes,
                    Some("inference-id") => &mut seen.inference_id,
                    Some("target-model") => &mut seen.target_model,
                    Some("target-container-hostname") => &mut seen.target_container,
                    Some("inference-component") => &mut seen.component,
                    Some(member) => {
                        seen.unsupported = seen.unsupported.or_else(|| unsupported(member));
                        continue;
                    }
                    None => {
                        seen.gate.keep(name, value);
                        continue;
                    }
                },
            };
            slot.get_or_insert(value);
        }
        seen
    }

    /// The router's request. Members berth lacks are refused by name, and SageMaker's limits on
    /// the headers it forwards are kept: longer values are refused, never forwarded.
    pub(crate) fn request(&self, body: Bytes) -> Result<InvokeRequest, EdgeError> {
        if let Some(member) = self.unsupported {
            return Err(EdgeError::runtime_validation(format!("{member} is not supported by this version of berth; leave it out.")));
        }
        let target = bounded(self.target_variant, "targetVariant", 63)?;
        let custom_attributes = bounded(self.custom_attributes, "customAttributes", 1024)?;
        let inference_id = bounded(self.inference_id, "inferenceId", 64)?;
        let target_variant = match target.map(|v| v.to_str()) {
            None => None,
            Some(Ok(v)) => Some(v.to_string()),
            Some(Err(_)) => return Err(EdgeError::runtime_validation("X-Amzn-SageMaker-Target-Variant is not valid text.")),
        };
        let target_model = match self.target_model.map(|v| v.to_str()) {
            None => None,
            Some(Ok(v)) => {
                berth_router::check_target_model(v).map_err(|e| EdgeError::runtime_validation(e.to_string()))?;
                Some(v.to_string())
            }
            Some(Err(_)) => return Err(EdgeError::runtime_validation("X-Amzn-SageMaker-Target-Model is not valid text.")),
        };
        let target_container = match bounded(self.target_container, "targetContainerHostname", 63)?.map(|v| v.to_str()) {
            None => None,
            Some(Ok(v)) if is_hostname(v) => Some(v.to_string()),
            Some(_) => {
                return Err(EdgeError::runtime_validation(
                    "1 validation error detected: Value at 'targetContainerHostname' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*",
                ))
            }
        };
        let component = match bounded(self.component, "inferenceComponentName", 63)?.map(|v| v.to_str()) {
            None => None,
            Some(Ok(v)) if berth_domain::validate_name("inferenceComponentName", v).is_ok() => Some(v.to_string()),
            Some(_) => {
                return Err(EdgeError::runtime_validation(
                    "1 validation error detected: Value at 'inferenceComponentName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9]([\\-a-zA-Z0-9]*[a-zA-Z0-9])?$",
                ))
            }
        };
        Ok(InvokeRequest {
            body,
            content_type: self.content_type.cloned(),
            accept: self.accept.cloned(),
            custom_attributes: custom_attributes.cloned(),
            inference_id: inference_id.cloned(),
            target: InvokeTarget { variant: target_variant, model: target_model, container: target_container, component },
            timeout: None,
        })
    }
}

/// The first runtime member berth does not implement that the request sets (refused by name,
/// never ignored).
pub(crate) fn unsupported_member(headers: &HeaderMap) -> Option<&'static str> {
    headers.keys().find_map(|name| unsupported(name.as_str().strip_prefix("x-amzn-sagemaker-")?))
}

/// Runtime headers (after `x-amzn-sagemaker-`) of members berth does not implement, by member.
const UNSUPPORTED: [(&str, &str); 3] =
    [("session-id", "SessionId"), ("enable-explanations", "EnableExplanations"), ("prefix-aware-id", "PrefixAwareId")];

/// The member a runtime header names (after `x-amzn-sagemaker-`), if berth does not implement it.
fn unsupported(member: &str) -> Option<&'static str> {
    UNSUPPORTED.iter().find(|(header, _)| *header == member).map(|(_, name)| *name)
}

/// Every header name [`RuntimeHeaders::read`] looks at (with `accept` for InvokeEndpoint),
/// lower-case: a reader that skips all others (the invocation server) reads the same request.
pub(crate) const READ_HEADERS: [&str; 14] = [
    "content-type",
    "accept",
    "host",
    "origin",
    "sec-fetch-site",
    "x-amzn-sagemaker-target-variant",
    "x-amzn-sagemaker-custom-attributes",
    "x-amzn-sagemaker-inference-id",
    "x-amzn-sagemaker-target-model",
    "x-amzn-sagemaker-target-container-hostname",
    "x-amzn-sagemaker-inference-component",
    "x-amzn-sagemaker-session-id",
    "x-amzn-sagemaker-enable-explanations",
    "x-amzn-sagemaker-prefix-aware-id",
];

/// The lower-case name of a header [`RuntimeHeaders::read`] looks at, given in any case.
pub(crate) fn read_header(name: &[u8]) -> Option<&'static str> {
    READ_HEADERS.iter().copied().find(|known| known.as_bytes().eq_ignore_ascii_case(name))
}

/// SageMaker's pattern of a container hostname: `^[a-zA-Z0-9](-*[a-zA-Z0-9])*`.
fn is_hostname(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// A header's value, refused when longer than SageMaker allows for its member.
fn bounded<'h>(value: Option<&'h HeaderValue>, member: &str, max: usize) -> Result<Option<&'h HeaderValue>, EdgeError> {
    match value {
        Some(v) if v.len() > max => Err(EdgeError::runtime_validation(format!(
            "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length less than or equal to {max}"
        ))),
        v => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_finds_what_lookups_find() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("content-type", "text/csv"),
            ("accept", "application/json"),
            ("x-amzn-sagemaker-target-variant", "Variant2"),
            ("x-amzn-sagemaker-custom-attributes", "user=7"),
            ("x-amzn-sagemaker-inference-id", "abc"),
            ("user-agent", "test"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        // A second value of a header: the first is the one read, as HeaderMap::get does.
        headers.append("content-type", HeaderValue::from_static("application/json"));
        let seen = RuntimeHeaders::read(&headers, &ACCEPT);
        let gate = crate::gate::GateHeaders::of(&headers);
        assert_eq!((seen.gate.host, seen.gate.origin, seen.gate.sec_fetch_site), (gate.host, gate.origin, gate.sec_fetch_site));
        let req = seen.request(Bytes::from_static(b"1,2")).unwrap();
        assert_eq!(req.content_type.as_ref().map(|v| v.as_bytes()), Some(&b"text/csv"[..]));
        assert_eq!(req.accept.as_ref().map(|v| v.as_bytes()), Some(&b"application/json"[..]));
        assert_eq!(req.target.variant.as_deref(), Some("Variant2"));
        assert_eq!(req.custom_attributes.as_ref().map(|v| v.as_bytes()), Some(&b"user=7"[..]));
        assert_eq!(req.inference_id.as_ref().map(|v| v.as_bytes()), Some(&b"abc"[..]));
        // The streaming operation takes Accept from its own header.
        let streamed = RuntimeHeaders::read(&headers, &HeaderName::from_static("x-amzn-sagemaker-accept"));
        assert!(streamed.request(Bytes::new()).unwrap().accept.is_none());
    }

    #[test]
    fn the_list_of_read_headers_is_what_the_reader_reads() {
        // A request with only the listed headers reads as the same request as one with every
        // header: the invocation server, which keeps only those, sees what hyper's path sees.
        let mut all = HeaderMap::new();
        for name in READ_HEADERS {
            all.insert(HeaderName::from_static(name), HeaderValue::from_static("x"));
        }
        for (member, _) in UNSUPPORTED {
            assert!(read_header(format!("X-Amzn-SageMaker-{member}").as_bytes()).is_some(), "{member}");
        }
        let refused = RuntimeHeaders::read(&all, &ACCEPT).request(Bytes::new()).unwrap_err();
        assert!(refused.message.contains("SessionId"), "{}", refused.message);
        // Each supported header, alone, is found by the one-pass reader from the list's names.
        for name in READ_HEADERS.iter().filter(|n| UNSUPPORTED.iter().all(|(m, _)| !n.ends_with(m))) {
            let value = HeaderValue::from_static("Variant1");
            let seen = RuntimeHeaders::read_pairs(std::iter::once((*name, &value)), "accept");
            let found = [
                seen.content_type,
                seen.accept,
                seen.target_variant,
                seen.custom_attributes,
                seen.inference_id,
                seen.target_model,
                seen.target_container,
                seen.component,
                seen.gate.host,
                seen.gate.origin,
                seen.gate.sec_fetch_site,
            ];
            assert_eq!(found.iter().flatten().count(), 1, "{name}");
        }
        assert_eq!(read_header(b"User-Agent"), None);
    }

    #[test]
    fn members_berth_lacks_and_overlong_values_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amzn-sagemaker-session-id", HeaderValue::from_static("NEW_SESSION"));
        let refused = RuntimeHeaders::read(&headers, &ACCEPT).request(Bytes::new()).unwrap_err();
        assert!(refused.message.contains("SessionId"), "{}", refused.message);
        for bad in ["-c1", "c1-", "c_1", "c.1"] {
            let mut headers = HeaderMap::new();
            headers.insert("x-amzn-sagemaker-target-container-hostname", HeaderValue::from_static(bad));
            let refused = RuntimeHeaders::read(&headers, &ACCEPT).request(Bytes::new()).unwrap_err();
            assert!(refused.message.contains("targetContainerHostname"), "{bad}: {}", refused.message);
        }
        let mut headers = HeaderMap::new();
        headers.insert("x-amzn-sagemaker-target-model", HeaderValue::from_static("../m.tar.gz"));
        let refused = RuntimeHeaders::read(&headers, &ACCEPT).request(Bytes::new()).unwrap_err();
        assert!(refused.message.contains("'..'"), "{}", refused.message);
        let mut headers = HeaderMap::new();
        headers.insert("x-amzn-sagemaker-inference-id", HeaderValue::from_str(&"x".repeat(65)).unwrap());
        let refused = RuntimeHeaders::read(&headers, &ACCEPT).request(Bytes::new()).unwrap_err();
        assert!(refused.message.contains("inferenceId"), "{}", refused.message);
    }
}
