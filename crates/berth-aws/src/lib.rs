//! The AWS edge: everything that knows AWS's wire formats.
//!
//! One port serves SageMaker's control plane (`POST /` with `X-Amz-Target: SageMaker.<Op>`,
//! awsJson1_1) and its runtime (`POST /endpoints/{name}/invocations`, rest-json). Wire shapes
//! live in [`wire`] and are converted into domain types here; [`error`] maps every error to
//! exactly one SageMaker code and HTTP status.

#![forbid(unsafe_code)]

mod async_invocations;
mod autoscaling;
mod aws_json;
mod berth_api;
mod bodies;
mod components_api;
pub use bodies::BodyBudget;
mod cloudwatch;
mod control_plane;
mod credentials;
mod endpoint_shapes;
mod error;
pub mod event_stream;
mod experiments;
#[doc(hidden)]
pub mod fuzzing;
mod gate;
mod guardrails;
mod ingress;
mod invocation_server;
mod invocations;
mod logs;
mod monitoring_api;
mod monitoring_view;
mod overview;
mod processing_jobs;
mod prometheus;
mod protocol;
mod quality_api;
mod recommendation_api;
mod recommendations_view;
mod registry_api;
mod registry_view;
mod runtime;
pub mod sigv4;
mod standby;
mod streaming;
mod transform_jobs;
mod ui;
mod wire;

pub use credentials::{parse_credentials, CredentialsError};
pub use gate::{AllowedHosts, Security};
pub use invocation_server::{ConnectionState, Served};
pub use invocations::EdgeService;
pub use standby::{StandbyApp, StandbyEdge};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use berth_control::Controller;
use berth_router::Router as RequestRouter;
use bytes::Bytes;
use error::EdgeError;
use protocol::{Protocol, X_AMZ_TARGET};
use std::sync::Arc;
use tracing::Instrument;

/// What the handlers share.
#[derive(Clone)]
pub struct Edge {
    pub controller: Arc<Controller>,
    pub router: Arc<RequestRouter>,
    pub security: Arc<Security>,
    /// This server's name in a cluster: the `node` label of its metrics.
    pub node: Option<String>,
}

/// The largest invocation body SageMaker accepts.
pub const MAX_INVOCATION_BYTES: usize = 6 * 1024 * 1024;
/// The largest body of a control-plane, Application Auto Scaling or CloudWatch request.
pub const MAX_CONTROL_BYTES: usize = 1024 * 1024;

/// What berth serves on each connection: the invocation route ahead of the axum app.
pub fn service(edge: Edge) -> EdgeService {
    crate::error::set_data_dir(edge.controller.data_dir());
    EdgeService::new(app(edge.clone()), edge)
}

/// The HTTP application: control plane, runtime and berth's own `/healthz`.
pub fn app(edge: Edge) -> axum::Router {
    axum::Router::new()
        .route("/", post(dispatch))
        .route("/endpoints/{name}/invocations", post(runtime::invoke))
        .route("/endpoints/{name}/invocations-response-stream", post(streaming::invoke_stream))
        .route("/endpoints/{name}/async-invocations", post(async_invocations::invoke_async))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(prometheus::metrics))
        .route("/berth/v1/endpoints/{name}/logs", get(berth_api::logs))
        .route("/berth/v1/endpoints/{name}/shadows", get(berth_api::shadows))
        .route("/berth/v1/endpoints/{name}/weights", post(berth_api::set_weights))
        .route("/berth/v1/endpoints/{name}/promote", post(berth_api::promote))
        .route("/berth/v1/endpoints/{name}/rollback", post(berth_api::roll_back))
        .route("/berth/v1/endpoints/{name}/ground-truth", post(quality_api::ground_truth))
        .route("/berth/v1/endpoints/{name}/quality", get(quality_api::quality))
        .route("/berth/v1/endpoints/{name}/significance", get(quality_api::significance))
        .route("/berth/v1/events", get(overview::events))
        .route("/berth/v1/overview", get(overview::overview))
        .route("/berth/v1/monitoring", get(monitoring_view::monitoring))
        .route("/berth/v1/recommendations", get(recommendations_view::jobs))
        .route("/berth/v1/recommendations/{name}", get(recommendations_view::job))
        .route("/berth/v1/registry", get(registry_view::registry))
        .route("/ui", get(ui::index))
        .route("/ui/", get(ui::index))
        .route("/ui/assets/{name}", get(ui::asset))
        .route("/ui/recommendations", get(ui::recommendations))
        .route("/ui/registry", get(ui::registry))
        .route("/service/{service}/operation/{operation}", post(cloudwatch::cbor))
        .fallback(unknown_route)
        .method_not_allowed_fallback(unknown_route)
        // Bodies are read by the gate with each protocol's limit, to answer in its shape.
        .layer(DefaultBodyLimit::disable())
        .layer(gate::GateLayer::new(edge.security.clone()))
        .with_state(edge)
}

/// `POST /`: the protocol (told apart as the gate did, which also bounded the body) picks the
/// service; the target names the operation.
async fn dispatch(State(edge): State<Edge>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers.get(&X_AMZ_TARGET).and_then(|v| v.to_str().ok()).unwrap_or("");
    match Protocol::of(&Method::POST, "/", &headers) {
        Protocol::CloudWatchJson => {
            let op = target.strip_prefix(cloudwatch::TARGET_PREFIX).map(|t| t.strip_prefix('.').unwrap_or(t)).unwrap_or("");
            return cloudwatch::json(&edge, op, &body).await;
        }
        // The AWS query protocol: of the services berth serves, only CloudWatch speaks it.
        Protocol::CloudWatchQuery => return cloudwatch::query(&edge, &body).await,
        _ => {}
    }
    let result = match target.split_once('.') {
        Some(("SageMaker", op)) => {
            control_plane::operation(&edge, op, &body).instrument(tracing::info_span!("operation", name = %op)).await
        }
        Some((autoscaling::TARGET_PREFIX, op)) => autoscaling::operation(&edge, op, &body).await,
        Some((logs::TARGET_PREFIX, op)) => logs::operation(&edge.controller, op, &body).await,
        _ => Err(unknown_operation(target)),
    };
    match result {
        Ok(value) => {
            let mut resp = (StatusCode::OK, value.to_string()).into_response();
            let h = resp.headers_mut();
            h.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
            if let Ok(v) = HeaderValue::from_str(&request_id()) {
                h.insert("x-amzn-requestid", v);
            }
            resp
        }
        Err(e) => Protocol::AwsJson.answer_error(e),
    }
}

/// A path or method berth does not serve, answered in the shape of the protocol it looks like
/// (a runtime path gets SageMaker's rest-json error, not an empty 404).
async fn unknown_route(method: Method, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let protocol = Protocol::of(&method, uri.path(), &headers);
    let message = match protocol {
        Protocol::Runtime => format!(
            "{method} {} is not an operation of SageMaker's runtime: berth serves POST /endpoints/{{name}}/invocations, /invocations-response-stream and /async-invocations.",
            uri.path()
        ),
        _ => format!("{method} {} is not served by berth.", uri.path()),
    };
    protocol.error(StatusCode::NOT_FOUND, "UnknownOperationException", "InvalidAction", message)
}

/// An operation no service on `POST /` has.
pub(crate) fn unknown_operation(target: &str) -> EdgeError {
    EdgeError::unknown_operation(format!("Operation '{target}' is not supported by berth."))
}

tokio::task_local! {
    /// The id of the request being answered (set by [`EdgeService`] around each request the
    /// axum app handles; an invocation answered ahead of it sets its answer's header directly).
    static REQUEST_ID: String;
}

/// The current request's id, in the shape AWS uses (a UUID v4): the one its span and its
/// `x-amzn-RequestId` carry; a new one outside a request.
pub(crate) fn request_id() -> String {
    REQUEST_ID.try_with(String::clone).unwrap_or_else(|_| berth_domain::random_uuid())
}
