use crate::pool::ConnectionPool;
use berth_instances::InstanceSlot;
use bytes::Bytes;
use http::header::{HeaderName, ACCEPT, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use std::net::SocketAddr;
use std::time::Duration;

pub const CUSTOM_ATTRIBUTES: &str = "x-amzn-sagemaker-custom-attributes";
pub const INFERENCE_ID: &str = "x-amzn-sagemaker-inference-id";

/// An invocation as the router needs it; parsed from the wire by the edge.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    pub body: Bytes,
    pub content_type: Option<HeaderValue>,
    pub accept: Option<HeaderValue>,
    pub custom_attributes: Option<HeaderValue>,
    pub inference_id: Option<HeaderValue>,
    pub target_variant: Option<String>,
}

#[derive(Debug)]
pub struct InvokeResponse {
    pub body: Bytes,
    pub content_type: Option<HeaderValue>,
    pub custom_attributes: Option<HeaderValue>,
    /// The variant that served the request.
    pub variant: String,
}

/// Why an invocation did not produce the container's successful answer.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("endpoint not found")]
    EndpointNotFound,
    #[error("variant {variant} not found")]
    VariantNotFound { variant: String },
    #[error("every variant has weight 0")]
    NoWeight,
    #[error("variant {variant} has no healthy instance")]
    NoHealthyInstance { variant: String },
    /// The container answered with an error status.
    #[error("container answered {status}")]
    ModelError { variant: String, status: u16, body: String },
    /// The container could not be reached; the request never got to it.
    #[error("instance unreachable: {message}")]
    Unreachable { variant: String, message: String },
    /// The connection failed after the request was sent (the container crashed mid-request).
    #[error("instance failed: {message}")]
    Failed { variant: String, message: String },
    #[error("timed out")]
    Timeout { variant: String, seconds: u64 },
    /// A serverless variant has MaxConcurrency requests in flight.
    #[error("throttled")]
    Throttled { variant: String, max_concurrency: u32 },
    /// A serverless variant could not start an instance for the request.
    #[error("cold start failed: {reason}")]
    ColdStartFailed { variant: String, reason: String },
    /// The container's answer was longer than an invocation's answer may be.
    #[error("answer larger than {limit} bytes")]
    AnswerTooLarge { variant: String, limit: usize },
}

/// The largest answer a container may give, as SageMaker's 6 MB response limit.
pub const MAX_ANSWER_BYTES: usize = 6 * 1024 * 1024;
/// How much of a container's error answer the caller is shown.
const MAX_ERROR_TEXT: usize = 64 * 1024;

/// Sends requests to instances over pooled keep-alive connections.
pub struct Forwarder {
    pool: ConnectionPool,
    timeout: Duration,
}

/// Idle connections kept per instance; more are opened under load and closed after use.
const MAX_IDLE_PER_INSTANCE: usize = 64;

impl Forwarder {
    /// `timeout` bounds one invocation, response body included (SageMaker allows 60 s).
    pub fn new(timeout: Duration) -> Self {
        Forwarder { pool: ConnectionPool::new(MAX_IDLE_PER_INSTANCE), timeout }
    }

    pub async fn forward(&self, slot: &InstanceSlot, variant: &str, req: &InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        let call = self.exchange(slot, variant, build_request(slot.addr(), req));
        let (parts, body) = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| InvokeError::Timeout { variant: variant.to_string(), seconds: self.timeout.as_secs() })??;
        if !parts.status.is_success() {
            let text = &body[..body.len().min(MAX_ERROR_TEXT)];
            return Err(InvokeError::ModelError {
                variant: variant.to_string(),
                status: parts.status.as_u16(),
                body: String::from_utf8_lossy(text).into_owned(),
            });
        }
        Ok(InvokeResponse {
            body,
            content_type: parts.headers.get(CONTENT_TYPE).cloned(),
            custom_attributes: parts.headers.get(CUSTOM_ATTRIBUTES).cloned(),
            variant: variant.to_string(),
        })
    }

    /// Sends the request on an idle connection, or a new one, and reads the whole response.
    /// A pooled connection that turns out closed before the request was written is dropped and
    /// the request goes on another; only a fresh connection's failure is reported.
    async fn exchange(
        &self,
        slot: &InstanceSlot,
        variant: &str,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(http::response::Parts, Bytes), InvokeError> {
        let unreachable = |message: String| InvokeError::Unreachable { variant: variant.to_string(), message };
        let failed = |message: String| InvokeError::Failed { variant: variant.to_string(), message };
        let too_large = || InvokeError::AnswerTooLarge { variant: variant.to_string(), limit: MAX_ANSWER_BYTES };
        let instance = slot.serial();
        loop {
            let (mut conn, reused) = match self.pool.take(instance) {
                Some(conn) => (conn, true),
                None => (ConnectionPool::connect(slot).await.map_err(unreachable)?, false),
            };
            if let Err(e) = conn.ready().await {
                if reused {
                    continue;
                }
                return Err(unreachable(error_chain(&e)));
            }
            match conn.try_send_request(request).await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    let announced = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                    if announced.is_some_and(|n| n > MAX_ANSWER_BYTES as u64) {
                        return Err(too_large()); // the connection is dropped, never read further
                    }
                    let body = match Limited::new(body, MAX_ANSWER_BYTES).collect().await {
                        Ok(b) => b.to_bytes(),
                        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
                        Err(e) => return Err(failed(error_chain(e.as_ref()))),
                    };
                    self.pool.put(instance, conn);
                    return Ok((parts, body));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => request = unsent,
                    Some(_) => return Err(unreachable(error_chain(e.error()))),
                    None => return Err(failed(error_chain(e.error()))),
                },
            }
        }
    }
}

fn build_request(addr: SocketAddr, req: &InvokeRequest) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(req.body.clone()));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = Uri::from_static("/invocations");
    let headers = request.headers_mut();
    // HTTP/1.1 requires Host; the connection-level client does not add it.
    if let Ok(host) = HeaderValue::from_str(&addr.to_string()) {
        headers.insert(HOST, host);
    }
    let optional = [
        (CONTENT_TYPE, &req.content_type),
        (ACCEPT, &req.accept),
        (HeaderName::from_static(CUSTOM_ATTRIBUTES), &req.custom_attributes),
        (HeaderName::from_static(INFERENCE_ID), &req.inference_id),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            headers.insert(name, v.clone());
        }
    }
    request
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
