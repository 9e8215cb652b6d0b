//! `GET /metrics`: per-variant metrics and instance counts in Prometheus' text format.

use crate::Edge;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use berth_metrics::{render_prometheus, InstanceCounts, VariantKey};
use std::sync::atomic::Ordering;

pub async fn metrics(State(edge): State<Edge>) -> Response {
    let table = edge.router.table();
    let mut instances: Vec<_> = table
        .routes()
        .iter()
        .flat_map(|route| {
            route.variants.iter().map(|v| {
                let key = VariantKey { endpoint: route.endpoint.clone(), variant: v.name.clone() };
                let counts = InstanceCounts {
                    healthy: v.instances.iter().filter(|s| s.is_healthy()).count(),
                    total: v.instances.len(),
                    restarts: v.instances.iter().map(|s| s.restarts()).sum(),
                    oom_kills: v.instances.iter().map(|s| s.oom_kills()).sum(),
                };
                (key, counts)
            })
        })
        .collect();
    instances.sort_by(|a, b| a.0.cmp(&b.0));
    let mut body = render_prometheus(&table.metrics().snapshot(), &instances);
    let serverless: Vec<(VariantKey, u64, u64)> = table
        .routes()
        .iter()
        .flat_map(|route| {
            route.variants.iter().filter_map(|v| {
                let s = v.serverless.as_ref()?;
                let key = VariantKey { endpoint: route.endpoint.clone(), variant: v.name.clone() };
                Some((key, s.cold_starts.load(Ordering::Relaxed), s.throttled.load(Ordering::Relaxed)))
            })
        })
        .collect();
    let capture = table.capture();
    body += &format!(
        "# HELP berth_capture_records_total Invocations captured for data capture: queued for the writer, or dropped because it was behind.\n# TYPE berth_capture_records_total counter\nberth_capture_records_total{{result=\"queued\"}} {}\nberth_capture_records_total{{result=\"dropped\"}} {}\n",
        capture.queued.load(Ordering::Relaxed),
        capture.dropped.load(Ordering::Relaxed)
    );
    if !serverless.is_empty() {
        for (name, help, pick) in [
            ("berth_serverless_cold_starts_total", "Instances a serverless variant started because a request found none.", 0),
            ("berth_serverless_throttled_total", "Requests refused above a serverless variant's MaxConcurrency.", 1),
        ] {
            body += &format!("# HELP {name} {help}\n# TYPE {name} counter\n");
            for (key, cold, throttled) in &serverless {
                let value = if pick == 0 { cold } else { throttled };
                body += &format!("{name}{{endpoint=\"{}\",variant=\"{}\"}} {value}\n", key.endpoint, key.variant);
            }
        }
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}
