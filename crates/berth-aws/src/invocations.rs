//! The service berth serves on every connection. The hot route, an unsigned
//! `POST /endpoints/{name}/invocations`, is answered here ahead of axum's router: the gate's
//! `Host` and `Origin` checks, the body read through its limit and deadline straight into
//! `Bytes`, then InvokeEndpoint — no route table lookup, no extractors, no header map copied, no
//! boxed body. Every other request (and an invocation whose path needs decoding, or when
//! signatures are checked) goes to the axum app, with the gate in front of each route. Every
//! request gets an id, carried by a `tracing` span around its handling (so whatever it logs
//! names it) and by the `x-amzn-RequestId` of its answer.

use crate::ingress;
use crate::protocol::Protocol;
use crate::Edge;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower_service::Service;
use tracing::Instrument;

pub(crate) const REQUEST_ID_HEADER: http::HeaderName = http::HeaderName::from_static("x-amzn-requestid");

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The axum app behind the invocation route.
#[derive(Clone)]
pub struct EdgeService {
    app: axum::Router,
    edge: Edge,
    /// The runtime the app's handlers run on (the one `service` was made on): what they start
    /// (deployments, instances) belongs there, not on the connection's I/O thread.
    main: tokio::runtime::Handle,
}

impl EdgeService {
    /// Must be called within the main runtime.
    pub(crate) fn new(app: axum::Router, edge: Edge) -> Self {
        EdgeService { app, edge, main: tokio::runtime::Handle::current() }
    }

    pub(crate) fn edge(&self) -> &Edge {
        &self.edge
    }
}

impl<B> Service<Request<B>> for EdgeService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let id = berth_domain::random_uuid();
        let header = http::HeaderValue::from_str(&id).ok();
        let fast = req.method() == Method::POST
            && crate::ingress::unsigned(&self.edge.security)
            && crate::ingress::endpoint_of(req.uri().path()).is_some();
        // An invocation's span is at debug level: an enabled span costs ~12k instructions (a
        // fifth of the hop) in the default log formatter; `RUST_LOG=berth_aws=debug` turns it on.
        let span = if fast {
            tracing::debug_span!("request", id = %id, method = %req.method(), path = %req.uri().path())
        } else {
            tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path())
        };
        let edge = self.edge.clone();
        // What the app's handler runs with on the main runtime: the request's id and span.
        let handler = (!fast).then(|| {
            let protocol = Protocol::of(req.method(), req.uri().path(), req.headers());
            (self.app.clone(), self.main.clone(), id, span.clone(), protocol)
        });
        let answer = async move {
            let mut response = if let Some((mut app, main, id_for_handler, handler_span, protocol)) = handler {
                let handled = main.spawn(crate::REQUEST_ID.scope(
                    id_for_handler,
                    async move { app.call(req.map(Body::new)).await.unwrap_or_else(|never| match never {}) }.instrument(handler_span),
                ));
                handled.await.unwrap_or_else(|e| {
                    tracing::error!(error = %e, "a request's handler failed");
                    let failed = "The request failed inside berth; its log says why.".to_string();
                    protocol.error(http::StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", "InternalFailure", failed)
                })
            } else {
                invoke(&edge, req).await
            };
            if let Some(id) = header {
                response.headers_mut().insert(REQUEST_ID_HEADER, id);
            }
            Ok(response)
        };
        // The handler's task carries the id for what it answers; an invocation's errors are
        // answered with the id set above.
        Box::pin(answer.instrument(span))
    }
}

/// An unsigned invocation: the gate's checks, the bounded and timed body, InvokeEndpoint.
async fn invoke<B>(edge: &Edge, req: Request<B>) -> Response
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let headers = crate::runtime::RuntimeHeaders::read(&parts.headers, &http::header::ACCEPT);
    if let Some(refused) = ingress::refusal(&edge.security, &parts.method, &headers.gate) {
        return refused;
    }
    if let Some(refused) = ingress::too_large(&parts.headers) {
        return refused;
    }
    // Held until the invocation is answered.
    let claim = edge.security.bodies.claim();
    let body = match ingress::bounded(&edge.security, body, claim.clone()).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let e: BoxError = e;
            return crate::bodies::unread_body(Protocol::Runtime, e.as_ref());
        }
    };
    let endpoint = ingress::endpoint_of(parts.uri.path()).expect("checked before the body was read");
    let answer = ingress::route(edge, endpoint, headers, body).await;
    drop(claim);
    answer
}
