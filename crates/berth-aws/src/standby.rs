//! What a server of a cluster answers itself while it stands by: invocations of the endpoints
//! whose routes it holds (a copy of the leader's, see `berth_router::Replica`), through the same
//! gate as the leader's edge (`Host`, `Origin`, body limits, SigV4 or basic auth as this server's
//! flags say), `/metrics` of the invocations it routed, and `/healthz` (this server is alive,
//! whether or not a leader answers: a liveness probe must not restart standbys while the cluster
//! changes leader). Everything else it forwards to the
//! leader, as [`StandbyApp::answers`] tells.

use crate::gate::GateLayer;
use crate::runtime::RuntimeHeaders;
use crate::Security;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::ACCEPT;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::{get, post};
use berth_router::Router as RequestRouter;
use std::sync::Arc;

/// What a standby's own answers need.
pub struct StandbyEdge {
    pub router: Arc<RequestRouter>,
    pub security: Arc<Security>,
    /// The account that names endpoints in error messages.
    pub account_id: String,
    /// This server's name, the `node` label of its metrics.
    pub node: String,
    /// The cluster's store, for its servers' list.
    pub store: Arc<dyn berth_store::StateStore>,
}

/// The standby's own routes behind the gate.
#[derive(Clone)]
pub struct StandbyApp {
    app: axum::Router,
    router: Arc<RequestRouter>,
}

impl StandbyApp {
    pub fn new(edge: StandbyEdge) -> StandbyApp {
        let (security, router) = (edge.security.clone(), edge.router.clone());
        let app = axum::Router::new()
            .route("/endpoints/{name}/invocations", post(invoke))
            .route("/metrics", get(metrics))
            .layer(DefaultBodyLimit::disable())
            .route("/healthz", get(|| async { "ok\n" }))
            .layer(GateLayer::new(security))
            .with_state(Arc::new(edge));
        StandbyApp { app, router }
    }

    /// Whether a standby answers this request itself: an invocation of an endpoint it routes
    /// (by a plain name; anything to decode goes to the leader), or a scrape of its metrics.
    pub fn answers(&self, method: &Method, path: &str) -> bool {
        match (method, path) {
            (&Method::GET, "/metrics") | (&Method::GET, "/healthz") => true,
            (&Method::POST, path) => crate::ingress::endpoint_of(path).is_some_and(|endpoint| self.router.table().get(endpoint).is_some()),
            _ => false,
        }
    }

    /// Answers a request [`StandbyApp::answers`].
    pub async fn answer<B>(&self, req: axum::http::Request<B>) -> axum::http::Response<axum::body::Body>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        use tower_service::Service;
        let mut app = self.app.clone();
        match app.call(req.map(axum::body::Body::new)).await {
            Ok(answer) => answer,
            Err(never) => match never {},
        }
    }
}

async fn invoke(
    State(edge): State<Arc<StandbyEdge>>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let body = match axum::body::to_bytes(body, crate::MAX_INVOCATION_BYTES).await {
        Ok(b) => b,
        Err(e) => return crate::bodies::unread_body(crate::protocol::Protocol::Runtime, &e),
    };
    let headers = RuntimeHeaders::read(&headers, &ACCEPT);
    crate::runtime::routed(&edge.router, &edge.account_id, &endpoint, headers, body).await
}

async fn metrics(State(edge): State<Arc<StandbyEdge>>) -> Response {
    let table = edge.router.table();
    let mut body = crate::prometheus::variants(table);
    body += &crate::prometheus::weights(table);
    body = berth_metrics::with_label(&body, "node", &edge.node);
    let store = edge.store.clone();
    let nodes = tokio::task::spawn_blocking(move || store.nodes()).await.ok().and_then(Result::ok).unwrap_or_default();
    body += &crate::prometheus::cluster_nodes(&nodes);
    crate::prometheus::exposition(body)
}
