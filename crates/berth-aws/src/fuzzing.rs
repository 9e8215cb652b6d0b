//! Entry points for the fuzz targets under `fuzz/` (not an API): each takes arbitrary bytes
//! through one of the edge's parsers exactly as a request's body goes through it. None may
//! panic, overflow the stack, or take memory out of proportion to the input.

use crate::aws_json::list_query;
use crate::aws_json::parse;
use crate::control_plane::create_model;
use crate::wire;
use serde_json::Value;

/// An awsJson request body, decoded as every control-plane, CloudWatch and Application Auto
/// Scaling input and converted into domain requests as the handlers do.
pub fn aws_json_request(body: &[u8]) {
    if let Ok(input) = parse::<wire::CreateModelInput>(body) {
        let _ = create_model(input);
    }
    if let Ok(input) = parse::<wire::CreateEndpointConfigInput>(body) {
        let _ = crate::endpoint_shapes::create_endpoint_config(input);
    }
    if let Ok(input) = parse::<wire::UpdateEndpointInput>(body) {
        let _ = input.deployment_config.map(crate::guardrails::deployment_config);
    }
    if let Ok(input) = parse::<wire::CreateEndpointInput>(body) {
        let _ = input.deployment_config.map(crate::guardrails::deployment_config);
    }
    let _ = parse::<wire::UpdateEndpointWeightsAndCapacitiesInput>(body);
    if let Ok(input) = parse::<wire::ListInput>(body) {
        let _ = list_query(input, true);
    }
    let _ = parse::<wire::AddTagsInput>(body);
    crate::autoscaling::parse_every_input(body);
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        crate::cloudwatch::parse_every_input(&value);
    }
}

/// A query-protocol form body, decoded into CloudWatch's inputs.
pub fn query_form(body: &[u8]) {
    if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
        if let Ok(value) = crate::cloudwatch::decode_form(pairs.into_iter()) {
            crate::cloudwatch::parse_every_input(&value);
        }
    }
}

/// A Smithy RPC v2 CBOR body, decoded into CloudWatch's inputs.
pub fn cbor(body: &[u8]) {
    if let Ok(value) = crate::cloudwatch::decode_cbor(body) {
        crate::cloudwatch::parse_every_input(&value);
    }
}

/// Bytes as the headers and body of a signed request: the verifier must refuse, never panic.
pub fn sigv4(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let mut headers = http::HeaderMap::new();
    let path = lines.next().unwrap_or("/").to_string();
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if let (Ok(k), Ok(v)) = (http::HeaderName::try_from(k.trim()), http::HeaderValue::try_from(v.trim())) {
                headers.append(k, v);
            }
        }
    }
    let body: String = lines.collect();
    let mut principals = crate::sigv4::Principals::default();
    principals.insert("AKIDEXAMPLE".into(), "secret".into(), "fuzz".into());
    let (path, query) = path.split_once('?').map_or((path.as_str(), None), |(p, q)| (p, Some(q)));
    let req = crate::sigv4::SignedRequest { method: "POST", path, query, headers: &headers, body: body.as_bytes() };
    let _ = crate::sigv4::verify(&req, &principals, std::time::SystemTime::now());
}

/// Bytes as the start of a connection to the invocation server: its head parser must not
/// panic, must place every part it reports inside the head, and must not decide on an
/// invocation before its head is whole (every shorter prefix is still partial).
pub fn invocation_head(data: &[u8]) {
    use crate::invocation_server::{parse_head, Head};
    if let Head::Invocation(head) = parse_head(data) {
        assert!(head.head_len <= data.len() && head.body_len <= crate::MAX_INVOCATION_BYTES);
        for place in std::iter::once(&head.endpoint).chain(head.kept.iter().map(|(_, place)| place)) {
            assert!(place.start <= place.end && place.end <= head.head_len);
        }
        for end in 0..head.head_len {
            assert_eq!(parse_head(&data[..end]), Head::Partial, "decided on {end} bytes of {}", head.head_len);
        }
    }
}
