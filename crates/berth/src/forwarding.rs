//! A server that stands by still answers on its address: invocations of the endpoints whose
//! routes it holds it routes itself (see `crate::replication`); every other request goes, as it
//! came (method, path, headers, a streamed body), to the cluster's leader, and the leader's
//! answer comes back the same way. So every server of a cluster answers the whole API with the
//! same answers, and a client may use any of them. The leader checks the request as it would its
//! own (the signature covers the caller's `Host`, which is kept); this server bounds what it
//! holds: connections, the time to send a request's head, and nothing buffered beyond what
//! hyper reads. While no leader is known (an election under way) it answers
//! `503 ServiceUnavailable`, which the SDKs retry.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, warn};

type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Headers of one hop, never forwarded (RFC 9110 §7.6.1), besides those `Connection` names.
const HOP_BY_HOP: [&str; 8] =
    ["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "upgrade"];

/// How long a request waits for a leader to be known before it is answered 503.
const LEADER_WAIT: Duration = Duration::from_secs(3);

/// How this server forwards while it stands by.
#[derive(Clone)]
pub struct Forwarder {
    /// The leader's URL (`http://host:port`), once known.
    leader: watch::Receiver<Option<String>>,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Incoming>,
    node: Arc<str>,
    /// What this server answers itself: invocations of the endpoints whose routes it holds, and
    /// its metrics (see `crate::replication`).
    local: Option<berth_aws::StandbyApp>,
}

/// The limits of the forwarding server's connections.
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

impl Forwarder {
    pub fn new(leader: watch::Receiver<Option<String>>, node: &str, local: Option<berth_aws::StandbyApp>) -> anyhow::Result<Forwarder> {
        let connector =
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(crate::cli::tls_config()?).https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        Ok(Forwarder { leader, client, node: node.into(), local })
    }

    /// Accepts on `listener` and forwards each request to the leader until `until` resolves;
    /// then each connection under way closes once its request is answered.
    pub async fn serve_until(
        &self,
        listener: &TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        limits: &Limits,
        until: impl Future<Output = ()>,
    ) {
        let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        // Told to the connections when forwarding ends: each closes once its request is
        // answered, so that its client's next request reaches whoever serves the listener then.
        let closing = watch::channel(false).0;
        let _closing = CloseOnDrop(&closing);
        tokio::pin!(until);
        loop {
            // `until` first: a server that has come to lead serves what waits with the edge.
            let permit = tokio::select! {
                biased;
                () = &mut until => return,
                permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            };
            let (stream, peer) = tokio::select! {
                biased;
                () = &mut until => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        warn!(error = %e, "accepting a connection to forward failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let (this, tls, header_timeout, closing) = (self.clone(), tls.clone(), limits.header_timeout, closing.subscribe());
            tokio::spawn(async move {
                let _permit = permit;
                let _ = stream.set_nodelay(true);
                let service = hyper::service::service_fn(move |req| {
                    let this = this.clone();
                    async move { Ok::<_, Infallible>(this.forward(req, peer).await) }
                });
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new()).header_read_timeout(header_timeout).max_buf_size(64 * 1024);
                let served = match tls {
                    Some(tls) => match tokio::time::timeout(header_timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => until_closing(http.serve_connection(TokioIo::new(stream), service), closing).await,
                        _ => return,
                    },
                    None => until_closing(http.serve_connection(TokioIo::new(stream), service), closing).await,
                };
                if let Err(e) = served {
                    debug!(error = %e, %peer, "a forwarded connection ended with an error");
                }
            });
        }
    }

    /// One request to the leader, and its answer back; or this server's own answer to what it
    /// answers itself.
    async fn forward(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        if let Some(local) = self.local.as_ref().filter(|l| l.answers(req.method(), req.uri().path())) {
            let (parts, body) = local.answer(req).await.into_parts();
            return Response::from_parts(parts, body.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>).boxed_unsync());
        }
        // An election takes a second or so: a request that comes meanwhile waits for it.
        let mut leader = self.leader.clone();
        let known = tokio::time::timeout(LEADER_WAIT, leader.wait_for(Option::is_some)).await;
        let Some(leader) = known.ok().and_then(|l| l.ok()).and_then(|l| l.clone()) else {
            return unavailable("No server of this berth cluster leads right now (an election is under way). Retry shortly.");
        };
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let Ok(uri) = format!("{leader}{path}").parse::<Uri>() else {
            return plain(StatusCode::BAD_REQUEST, "BadRequest", "The request's path cannot be forwarded.");
        };
        parts.uri = uri;
        strip_hop_by_hop(&mut parts.headers);
        if let Ok(via) = HeaderValue::from_str(&format!("1.1 berth-{}", self.node)) {
            parts.headers.append(http::header::VIA, via);
        }
        if let Ok(from) = HeaderValue::from_str(&peer.ip().to_string()) {
            parts.headers.append(HeaderName::from_static("x-forwarded-for"), from);
        }
        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(answer) => {
                let (mut parts, body) = answer.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>).boxed_unsync())
            }
            Err(e) => {
                warn!(error = %e, %leader, "forwarding to the leader failed");
                unavailable("The server leading this berth cluster could not be reached. Retry shortly.")
            }
        }
    }
}

/// Tells the forwarded connections to close, when forwarding ends.
struct CloseOnDrop<'a>(&'a watch::Sender<bool>);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// Serves `connection` until it ends, shutting it down gracefully (the request under way is
/// answered, then the connection closes) once `closing` says so.
async fn until_closing<I, S>(
    connection: hyper::server::conn::http1::Connection<I, S>,
    mut closing: watch::Receiver<bool>,
) -> hyper::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    S: hyper::service::HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => served,
        () = async { drop(closing.wait_for(|c| *c).await) } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

/// Removes the headers of one hop, and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn unavailable(message: &str) -> Response<Body> {
    plain(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message)
}

/// An error answer the AWS SDKs read in any of berth's protocols: the code in
/// `x-amzn-ErrorType`, and a JSON body with `__type` and `message`.
fn plain(status: StatusCode, code: &'static str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "__type": code, "message": message, "Message": message }).to_string();
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-errortype", code)
        .body(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed_unsync())
        .expect("a fixed answer is well formed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_not_forwarded() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("upgrade", HeaderValue::from_static("h2c"));
        headers.insert("authorization", HeaderValue::from_static("AWS4-HMAC-SHA256 ..."));
        headers.insert("x-amz-target", HeaderValue::from_static("SageMaker.ListEndpoints"));
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["authorization", "x-amz-target"]);
    }
}
