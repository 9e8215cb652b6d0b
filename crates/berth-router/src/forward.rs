use berth_instances::InstanceSlot;
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
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
}

/// Sends requests to instances over pooled keep-alive connections.
pub struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Forwarder {
    /// `timeout` bounds one invocation, response body included (SageMaker allows 60 s).
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Forwarder { client, timeout }
    }

    pub async fn forward(&self, slot: &InstanceSlot, variant: &str, req: &InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        let uri = format!("http://{}/invocations", slot.addr());
        let mut builder = Request::post(uri);
        let headers = builder.headers_mut().expect("a fresh builder has headers");
        let optional = [
            (CONTENT_TYPE.as_str(), &req.content_type),
            (ACCEPT.as_str(), &req.accept),
            (CUSTOM_ATTRIBUTES, &req.custom_attributes),
            (INFERENCE_ID, &req.inference_id),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                headers.insert(name, v.clone());
            }
        }
        let request = builder.body(Full::new(req.body.clone())).map_err(|e| InvokeError::Unreachable {
            variant: variant.to_string(),
            message: e.to_string(),
        })?;
        let call = async {
            let resp = self.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    InvokeError::Unreachable { variant: variant.to_string(), message: e.to_string() }
                } else {
                    InvokeError::Failed { variant: variant.to_string(), message: error_chain(&e) }
                }
            })?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| InvokeError::Failed { variant: variant.to_string(), message: error_chain(&e) })?
                .to_bytes();
            Ok::<_, InvokeError>((parts, body))
        };
        let (parts, body) = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| InvokeError::Timeout { variant: variant.to_string(), seconds: self.timeout.as_secs() })??;
        if !parts.status.is_success() {
            return Err(InvokeError::ModelError {
                variant: variant.to_string(),
                status: parts.status.as_u16(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(InvokeResponse {
            body,
            content_type: parts.headers.get(CONTENT_TYPE).cloned(),
            custom_attributes: parts.headers.get(CUSTOM_ATTRIBUTES).cloned(),
            variant: variant.to_string(),
        })
    }
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
