use crate::h1::{Conn, ExchangeError, Framing, Head, RequestHeaders};
use crate::pool::ConnectionPool;
use berth_instances::InstanceSlot;
use bytes::Bytes;
use http::HeaderValue;
use std::time::Duration;

/// An invocation as the router needs it; parsed from the wire by the edge.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    pub body: Bytes,
    pub content_type: Option<HeaderValue>,
    pub accept: Option<HeaderValue>,
    pub custom_attributes: Option<HeaderValue>,
    pub inference_id: Option<HeaderValue>,
    /// Who answers, when the caller says.
    pub target: InvokeTarget,
    /// How long the container may take, when not the server's invocation timeout
    /// (`InvocationTimeoutSeconds` of an asynchronous request).
    pub timeout: Option<Duration>,
}

/// What picks who answers an invocation: `TargetVariant`; `TargetModel`, the model of a
/// multi-model variant (a key under its prefix); `TargetContainerHostname`, the container of a
/// Direct multi-container variant.
#[derive(Debug, Clone, Default)]
pub struct InvokeTarget {
    pub variant: Option<String>,
    pub model: Option<String>,
    pub container: Option<String>,
    /// `InferenceComponentName`: the inference component that serves the request.
    pub component: Option<String>,
}

#[derive(Debug)]
pub struct InvokeResponse {
    pub body: Bytes,
    pub content_type: Option<HeaderValue>,
    pub custom_attributes: Option<HeaderValue>,
    /// The variant that served the request.
    pub variant: String,
}

/// A streamed answer under way: its connection, head, what is left of a length-framed body,
/// and the invocation's deadline.
pub(crate) struct OpenStream {
    conn: Conn,
    pub(crate) head: Head,
    left: u64,
    deadline: tokio::time::Instant,
    instance: u64,
    timeout_secs: u64,
}

/// Why a streamed answer stopped short, after it began.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StreamError {
    /// The connection to the container broke or the answer was malformed (`StreamBroken`).
    #[error("{0}")]
    Broken(String),
    /// The container did not finish within the invocation timeout (`ModelInvocationTimeExceeded`).
    #[error("the answer took longer than {0} seconds")]
    TimedOut(u64),
    /// The answer passed the most berth keeps of a streamed answer.
    #[error("the answer is longer than {0} bytes")]
    TooLarge(usize),
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
    /// The endpoint is being brought back (after a restart, or by a new leader) and has no
    /// route yet.
    #[error("the endpoint is being recovered")]
    Recovering,
    /// The container answered with an error status (`container`: which of a multi-container
    /// model's containers, by hostname).
    #[error("container answered {status}")]
    ModelError { variant: String, status: u16, body: String, container: Option<String> },
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
    /// `TargetModel` is missing on a multi-model endpoint, given to one that is not, or not a
    /// key berth can look up; or `TargetContainerHostname` is missing on a Direct multi-container
    /// endpoint, names no container of it, or is given to one that takes none.
    #[error("{0}")]
    Target(String),
    /// A multi-model variant could not fetch or load the `TargetModel` (the message says why).
    #[error("{message}")]
    ModelLoad { variant: String, message: String },
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

/// The path of a single-model container's invocations.
pub(crate) const INVOCATIONS: &str = "/invocations";

/// How long a container may take to load or unload a model of a multi-model variant.
const MODEL_LOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// Idle connections kept per instance; more are opened under load and closed after use.
const MAX_IDLE_PER_INSTANCE: usize = 64;

impl Forwarder {
    /// `timeout` bounds one invocation, response body included (SageMaker allows 60 s).
    pub fn new(timeout: Duration) -> Self {
        Forwarder { pool: ConnectionPool::new(MAX_IDLE_PER_INSTANCE), timeout }
    }

    pub async fn forward(&self, slot: &InstanceSlot, variant: &str, req: &InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        self.forward_to(slot, INVOCATIONS, variant, req).await
    }

    /// Sends an invocation to `path` on the container (`/invocations`, or a loaded model's
    /// `/models/{name}/invoke`).
    pub(crate) async fn forward_to(
        &self,
        slot: &InstanceSlot,
        path: &str,
        variant: &str,
        req: &InvokeRequest,
    ) -> Result<InvokeResponse, InvokeError> {
        let timeout = req.timeout.unwrap_or(self.timeout);
        let (head, body) = tokio::time::timeout(timeout, self.exchange(slot, path, variant, req))
            .await
            .map_err(|_| InvokeError::Timeout { variant: variant.to_string(), seconds: timeout.as_secs() })??;
        if !(200..300).contains(&head.status) {
            let text = &body[..body.len().min(MAX_ERROR_TEXT)];
            return Err(InvokeError::ModelError {
                variant: variant.to_string(),
                status: head.status,
                body: String::from_utf8_lossy(text).into_owned(),
                container: None,
            });
        }
        Ok(InvokeResponse {
            body,
            content_type: head.content_type,
            custom_attributes: head.custom_attributes,
            variant: variant.to_string(),
        })
    }

    /// Sends the request and reads the answer's head, for an answer streamed piece by piece.
    /// An answer that is not a success is read whole and is the `ModelError` it would be for
    /// InvokeEndpoint.
    pub(crate) async fn open_stream(
        &self,
        slot: &InstanceSlot,
        path: &str,
        variant: &str,
        req: &InvokeRequest,
    ) -> Result<OpenStream, InvokeError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let timed_out = || InvokeError::Timeout { variant: variant.to_string(), seconds: self.timeout.as_secs() };
        let (mut conn, head) =
            tokio::time::timeout_at(deadline, self.send_and_read_head(slot, path, variant, req)).await.map_err(|_| timed_out())??;
        if !(200..300).contains(&head.status) {
            let body = tokio::time::timeout_at(deadline, conn.read_body(&head, MAX_ERROR_TEXT))
                .await
                .map_err(|_| timed_out())?
                .unwrap_or_else(|_| Bytes::from_static(b"(the answer could not be read)"));
            return Err(InvokeError::ModelError {
                variant: variant.to_string(),
                status: head.status,
                body: String::from_utf8_lossy(&body).into_owned(),
                container: None,
            });
        }
        let left = match head.framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        Ok(OpenStream { conn, head, left, deadline, instance: slot.serial(), timeout_secs: self.timeout.as_secs() })
    }

    /// The next piece of a streamed answer; `None` after the last, when the connection goes
    /// back to the pool if it can carry another request.
    pub(crate) async fn next_piece(&self, open: &mut OpenStream) -> Result<Option<Bytes>, StreamError> {
        let piece = tokio::time::timeout_at(open.deadline, open.conn.next_piece(open.head.framing, &mut open.left))
            .await
            .map_err(|_| StreamError::TimedOut(open.timeout_secs))?
            .map_err(|e| StreamError::Broken(e.to_string()))?;
        Ok(piece)
    }

    /// Returns a finished stream's connection to the pool, if it can carry another request.
    pub(crate) fn finish(&self, open: OpenStream) {
        if open.conn.reusable_after(&open.head) {
            self.pool.put(open.instance, open.conn);
        }
    }

    /// Sends the request on an idle connection, or a new one, and reads the answer's head. A
    /// pooled connection whose write fails (the instance closed it while it was idle) is
    /// dropped and the request goes on another; once a request is written it is never sent
    /// again, since a lost answer may mean the request crashed the instance.
    async fn send_and_read_head(
        &self,
        slot: &InstanceSlot,
        path: &str,
        variant: &str,
        req: &InvokeRequest,
    ) -> Result<(Conn, Head), InvokeError> {
        let unreachable = |message: String| InvokeError::Unreachable { variant: variant.to_string(), message };
        let headers = RequestHeaders {
            content_type: req.content_type.as_ref(),
            accept: req.accept.as_ref(),
            custom_attributes: req.custom_attributes.as_ref(),
            inference_id: req.inference_id.as_ref(),
        };
        loop {
            let (mut conn, reused) = match self.pool.take(slot.serial()) {
                Some(conn) => (conn, true),
                None => (ConnectionPool::connect(slot).await.map_err(unreachable)?, false),
            };
            if let Err(e) = conn.send(path, &headers, &req.body).await {
                if reused {
                    continue;
                }
                return Err(unreachable(format!("sending the request to {}: {e}", slot.addr())));
            }
            return match conn.read_head().await {
                Ok(head) => Ok((conn, head)),
                Err(e) => Err(InvokeError::Failed { variant: variant.to_string(), message: e.to_string() }),
            };
        }
    }

    /// One call of the container's management API (SageMaker's multi-model container API:
    /// load and unload), answered with its status and body; within the model load timeout.
    pub(crate) async fn call(&self, slot: &InstanceSlot, method: &str, path: &str, body: &[u8]) -> Result<(u16, Bytes), String> {
        self.call_at(slot, None, method, path, body).await
    }

    /// A management call to another port of the instance's address (a pod's model loader), or
    /// to the instance itself (`port` None).
    pub(crate) async fn call_at(
        &self,
        slot: &InstanceSlot,
        port: Option<u16>,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(u16, Bytes), String> {
        let json = HeaderValue::from_static("application/json");
        let headers = RequestHeaders { content_type: Some(&json), accept: None, custom_attributes: None, inference_id: None };
        let exchange = async {
            // A fresh connection: a management call is rare, and must not be lost to one the
            // instance closed while it was idle.
            let mut conn = match port {
                None => ConnectionPool::connect(slot).await?,
                Some(port) => {
                    let addr = std::net::SocketAddr::new(slot.addr().ip(), port);
                    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect to {addr}: {e}"))?;
                    Conn::new(stream, addr)
                }
            };
            conn.send_request(method, path, &headers, body).await.map_err(|e| format!("{method} {path}: {e}"))?;
            let head = conn.read_head().await.map_err(|e| format!("{method} {path}: {e}"))?;
            let answer = conn.read_body(&head, MAX_ERROR_TEXT).await.map_err(|e| format!("{method} {path}: {e}"))?;
            // Only the instance's own connections are pooled (the pool is by instance).
            if port.is_none() && conn.reusable_after(&head) {
                self.pool.put(slot.serial(), conn);
            }
            Ok((head.status, answer))
        };
        tokio::time::timeout(MODEL_LOAD_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{method} {path} took longer than {} seconds", MODEL_LOAD_TIMEOUT.as_secs()))?
    }

    /// Sends the request on an idle connection, or a new one, and reads the whole answer.
    async fn exchange(&self, slot: &InstanceSlot, path: &str, variant: &str, req: &InvokeRequest) -> Result<(Head, Bytes), InvokeError> {
        let (mut conn, head) = self.send_and_read_head(slot, path, variant, req).await?;
        let body = match conn.read_body(&head, MAX_ANSWER_BYTES).await {
            Ok(body) => body,
            Err(ExchangeError::TooLarge) => {
                return Err(InvokeError::AnswerTooLarge { variant: variant.to_string(), limit: MAX_ANSWER_BYTES })
            }
            Err(e) => return Err(InvokeError::Failed { variant: variant.to_string(), message: e.to_string() }),
        };
        if conn.reusable_after(&head) {
            self.pool.put(slot.serial(), conn);
        }
        Ok((head, body))
    }
}
