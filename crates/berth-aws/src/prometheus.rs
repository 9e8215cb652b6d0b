//! `GET /metrics`: per-variant metrics and instance counts in Prometheus' text format.

use crate::Edge;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use berth_metrics::{render_prometheus, VariantKey};

pub async fn metrics(State(edge): State<Edge>) -> Response {
    let table = edge.router.table();
    let mut instances: Vec<_> = table
        .routes()
        .iter()
        .flat_map(|route| {
            route.variants.iter().map(|v| {
                let key = VariantKey { endpoint: route.endpoint.clone(), variant: v.name.clone() };
                let restarts = v.instances.iter().map(|s| s.restarts()).sum();
                (key, (v.instances.iter().filter(|s| s.is_healthy()).count(), v.instances.len(), restarts))
            })
        })
        .collect();
    instances.sort_by(|a, b| a.0.cmp(&b.0));
    let body = render_prometheus(&table.metrics().snapshot(), &instances);
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}
