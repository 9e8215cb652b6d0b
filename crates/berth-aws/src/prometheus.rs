//! `GET /metrics`: per-variant metrics and instance counts in Prometheus' text format.

use crate::Edge;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use berth_metrics::{render_prometheus, InstanceCounts, VariantKey};
use std::sync::atomic::Ordering;

pub async fn metrics(State(edge): State<Edge>) -> Response {
    let table = edge.router.table();
    let mut body = variants(table);
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
    let (held, limit) = capture.buffer();
    body += &format!(
        "# HELP berth_capture_records_total Invocations captured for data capture: queued for the writer, or dropped because it was behind.\n# TYPE berth_capture_records_total counter\nberth_capture_records_total{{result=\"queued\"}} {}\nberth_capture_records_total{{result=\"dropped\"}} {}\n\
         # HELP berth_capture_buffer_bytes Bytes of captured invocations not yet written, and the most there may be (--capture-buffer-bytes).\n# TYPE berth_capture_buffer_bytes gauge\nberth_capture_buffer_bytes{{of=\"held\"}} {held}\nberth_capture_buffer_bytes{{of=\"limit\"}} {limit}\n",
        capture.queued.load(Ordering::Relaxed),
        capture.dropped.load(Ordering::Relaxed)
    );
    let captured: Vec<String> = table
        .routes()
        .iter()
        .filter(|route| route.capture.is_some())
        .flat_map(|route| {
            route.variants.iter().map(|v| {
                format!(
                    "berth_capture_dropped_total{{endpoint=\"{}\",variant=\"{}\"}} {}\n",
                    route.endpoint,
                    v.name,
                    v.metrics.capture_dropped()
                )
            })
        })
        .collect();
    if !captured.is_empty() {
        body += "# HELP berth_capture_dropped_total Captured invocations of the variant dropped because the capture buffer was full.\n# TYPE berth_capture_dropped_total counter\n";
        body.extend(captured);
    }
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
    let backlogs = edge.controller.async_backlogs();
    if !backlogs.is_empty() {
        type Read = fn(&berth_control::Backlog) -> f64;
        let gauges: [(&str, &str, Read); 4] = [
            ("berth_async_backlog_size", "Asynchronous requests queued or under way (ApproximateBacklogSize).", |b| b.size as f64),
            ("berth_async_backlog_size_per_instance", "The backlog per healthy instance (ApproximateBacklogSizePerInstance).", |b| {
                b.per_instance()
            }),
            ("berth_async_oldest_request_age_seconds", "Age of the oldest queued request (ApproximateAgeOfOldestRequest).", |b| {
                b.oldest_age_secs
            }),
            (
                "berth_async_backlog_without_capacity",
                "1 when requests wait and no instance serves them (HasBacklogWithoutCapacity).",
                |b| f64::from(u8::from(b.without_capacity())),
            ),
        ];
        for (name, help, read) in gauges {
            body += &format!("# HELP {name} {help}\n# TYPE {name} gauge\n");
            for (endpoint, backlog) in &backlogs {
                body += &format!("{name}{{endpoint=\"{endpoint}\"}} {}\n", read(backlog));
            }
        }
    }
    body += &weights(table);
    body += &quality(&edge).await;
    // A cluster's servers as the store knows them.
    let mut body = match &edge.node {
        Some(node) => berth_metrics::with_label(&body, "node", node),
        None => body,
    };
    body += &cluster_nodes(&edge.controller.nodes().await.unwrap_or_default());
    exposition(body)
}

/// A cluster's servers as the store knows them, by role (nothing for a server alone).
pub(crate) fn cluster_nodes(nodes: &[berth_store::Node]) -> String {
    if nodes.is_empty() {
        return String::new();
    }
    let mut out = String::from("# HELP berth_cluster_node The servers of the cluster on berth's store, by role (leader, standby, gone).\n# TYPE berth_cluster_node gauge\n");
    for n in nodes {
        out += &format!("berth_cluster_node{{node=\"{}\",role=\"{}\"}} 1\n", berth_metrics::escape_label(&n.name), n.role());
    }
    out
}

/// A Prometheus text exposition as the answer.
pub(crate) fn exposition(body: String) -> Response {
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// Each routed variant's invocation metrics and instance counts.
pub(crate) fn variants(table: &berth_router::RoutingTable) -> String {
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
    render_prometheus(&table.metrics().snapshot(), &instances)
}

/// Each production variant's weight.
pub(crate) fn weights(table: &berth_router::RoutingTable) -> String {
    let mut routes = table.routes();
    routes.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
    let mut out = String::from("# HELP berth_variant_weight A production variant's current weight.\n# TYPE berth_variant_weight gauge\n");
    for route in &routes {
        for v in &route.variants {
            out += &format!("berth_variant_weight{{endpoint=\"{}\",variant=\"{}\"}} {}\n", route.endpoint, v.name, v.weight);
        }
    }
    out
}

/// For endpoints with data capture, the A/B test: each variant's labelled answers and accuracy
/// with its 95% interval, and whether the always-valid test has decided (with its p-value).
async fn quality(edge: &Edge) -> String {
    let mut out = String::new();
    let mut gauges: [(&str, &str, String); 6] = [
        ("berth_variant_labelled", "Captured answers of a variant that have a ground-truth label.", String::new()),
        ("berth_variant_accuracy", "A variant's accuracy on its labelled answers.", String::new()),
        ("berth_variant_accuracy_ci95_lower", "The lower end of the 95% (Wilson) interval of a variant's accuracy.", String::new()),
        ("berth_variant_accuracy_ci95_upper", "The upper end of the 95% (Wilson) interval of a variant's accuracy.", String::new()),
        (
            "berth_ab_decided",
            "1 when the always-valid test between an endpoint's first two production variants has decided.",
            String::new(),
        ),
        ("berth_ab_always_valid_p", "The always-valid p-value of that test.", String::new()),
    ];
    for e in edge.controller.all_endpoints().await.unwrap_or_default().iter().filter(|e| e.data_capture.is_some()) {
        let Ok(summary) = edge.controller.quality_summary(&e.name).await else { continue };
        for (variant, q) in &summary.variants {
            let labels = format!("endpoint=\"{}\",variant=\"{variant}\"", e.name);
            let values = [q.n as f64, q.accuracy, q.ci95.0, q.ci95.1];
            for (gauge, value) in gauges.iter_mut().zip(values) {
                gauge.2 += &format!("{}{{{labels}}} {value}\n", gauge.0);
            }
        }
        if let Some(test) = &summary.test {
            gauges[4].2 += &format!("berth_ab_decided{{endpoint=\"{}\"}} {}\n", e.name, u8::from(test.decided));
            if let Some(c) = &test.comparison {
                gauges[5].2 += &format!("berth_ab_always_valid_p{{endpoint=\"{}\"}} {}\n", e.name, c.always_valid_p);
            }
        }
    }
    for (name, help, lines) in gauges {
        if !lines.is_empty() {
            out += &format!("# HELP {name} {help}\n# TYPE {name} gauge\n{lines}");
        }
    }
    out
}
