//! berth's API for people watching endpoints (the `/ui` dashboard, `berth events`):
//!
//! - `GET /berth/v1/overview?window=S&period=P`: every endpoint with its status and variants
//!   (weights, instances, instance type, totals, utilization), each variant's recent history
//!   over the last `S` seconds (default 300, at most 3600) in periods of `P` seconds (default
//!   2): invocations per second, model latency p50/p99 in milliseconds, error share, CPU; and
//!   the 50 newest events; for endpoints with data capture, each variant's labelled accuracy and
//!   the A/B test between the first two production variants (accuracy with its 95% interval);
//!   whether the weights can be rolled back (`can_roll_back`).
//! - `GET /berth/v1/events?endpoint=E&after=ID&before=ID&limit=N`: events, newest first.

use crate::berth_api::json_ok;
use crate::error::{EdgeError, Service};
use crate::protocol::Protocol;
use crate::Edge;
use axum::extract::{Query, State};
use axum::response::Response;
use berth_domain::{Endpoint, Event};
use berth_metrics::{Datapoint, MetricName, MetricsRegistry, VariantKey};
use berth_router::EndpointRoute;
use berth_store::EventQuery;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
pub struct EventsQuery {
    endpoint: Option<String>,
    after: Option<i64>,
    before: Option<i64>,
    limit: Option<usize>,
}

pub async fn events(State(edge): State<Edge>, Query(q): Query<EventsQuery>) -> Response {
    let query = EventQuery { endpoint: q.endpoint, after: q.after, before: q.before, limit: q.limit.unwrap_or(100).clamp(1, 1000) };
    match edge.controller.events(query).await {
        Ok(events) => json_ok(json!({ "events": events.iter().map(event_json).collect::<Vec<_>>() })),
        Err(e) => Protocol::Berth.answer_error(EdgeError::control(e, Service::Berth)),
    }
}

fn event_json(e: &Event) -> Value {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(e.event.time.millis() as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    json!({
        "id": e.id,
        "time": time,
        "epoch": e.event.time.as_secs_f64(),
        "endpoint": e.event.endpoint,
        "variant": e.event.variant,
        "kind": e.event.kind.as_str(),
        "message": e.event.message,
    })
}

#[derive(Deserialize)]
pub struct OverviewQuery {
    window: Option<u64>,
    period: Option<u64>,
}

pub async fn overview(State(edge): State<Edge>, Query(q): Query<OverviewQuery>) -> Response {
    let window = q.window.unwrap_or(300).clamp(10, 3600);
    let period = q.period.unwrap_or(2).clamp(1, window);
    let mut endpoints = match edge.controller.all_endpoints().await {
        Ok(e) => e,
        Err(e) => return Protocol::Berth.answer_error(EdgeError::control(e, Service::Berth)),
    };
    endpoints.sort_by(|a, b| a.name.cmp(&b.name));
    let events = edge.controller.events(EventQuery { limit: 50, ..Default::default() }).await.unwrap_or_default();
    let now = berth_domain::Timestamp::now().secs();
    // The window ends with the last period whose seconds are all closed (the sampler closes a
    // second just after it ends); periods are aligned so charts do not jitter.
    let end = (now.saturating_sub(1) / period) * period;
    let start = end.saturating_sub(window);
    let table = edge.router.table();
    let mut body: Vec<Value> =
        endpoints.iter().map(|e| endpoint_json(e, table.get(&e.name).as_deref(), table.metrics(), start, end, period)).collect();
    // Model quality and the A/B test, where answers are captured.
    for (json, e) in body.iter_mut().zip(&endpoints) {
        if e.data_capture.is_some() {
            json["quality"] = edge.controller.quality_summary(&e.name).await.map_or(Value::Null, |q| crate::quality_api::summary_json(&q));
        }
    }
    json_ok(json!({
        "now": now,
        "window": { "start": start, "end": end, "period": period },
        "endpoints": body,
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
    }))
}

fn endpoint_json(e: &Endpoint, route: Option<&EndpointRoute>, metrics: &MetricsRegistry, start: u64, end: u64, period: u64) -> Value {
    let total_weight: f64 = e.variants.iter().map(|v| v.current_weight).sum();
    let variants: Vec<Value> = e
        .variants
        .iter()
        .map(|v| {
            let slots = route.and_then(|r| r.variants.iter().find(|rv| rv.name == v.name)).map(|rv| rv.instances.as_slice()).unwrap_or(&[]);
            let key = VariantKey { endpoint: e.name.clone(), variant: v.name.clone() };
            let totals = metrics.snapshot_of(&key).unwrap_or_default();
            let utilization = metrics.latest_utilization(&key, end.saturating_sub(5)).map(|u| {
                let (cpu, memory, disk) = u.averages();
                json!({ "cpu": cpu, "memory": memory, "disk": disk })
            });
            // A multi-model variant: models loaded now, and how many calls found theirs loaded.
            let models = route.and_then(|r| r.variants.iter().find(|rv| rv.name == v.name)).and_then(|rv| rv.models.as_ref()).map(|m| {
                json!({
                    "loaded": m.loaded_count(),
                    "cache_hits": totals.model_cache_hits,
                    "calls": totals.model_cache_lookups,
                })
            });
            let serverless =
                route.and_then(|r| r.variants.iter().find(|rv| rv.name == v.name)).and_then(|rv| rv.serverless.as_ref()).map(|s| {
                    json!({
                        "max_concurrency": s.max_concurrency(),
                        "in_flight": s.in_flight(),
                        "cold_starts": s.cold_starts.load(std::sync::atomic::Ordering::Relaxed),
                        "throttled": s.throttled.load(std::sync::atomic::Ordering::Relaxed),
                    })
                });
            json!({
                "name": v.name,
                "model": v.model_name,
                "shadow": v.shadow,
                "serverless": serverless,
                "models": models,
                "instance_type": v.instance_type,
                "weight": v.current_weight,
                "desired_weight": v.desired_weight,
                "traffic_share": if total_weight > 0.0 { v.current_weight / total_weight } else { 0.0 },
                "instances": v.current_instance_count,
                "desired_instances": v.desired_instance_count,
                "healthy_instances": slots.iter().filter(|s| s.is_healthy()).count(),
                "restarts": slots.iter().map(|s| s.restarts()).sum::<u64>(),
                "totals": {
                    "invocations": totals.invocations,
                    "errors_4xx": totals.errors_4xx,
                    "errors_5xx": totals.errors_5xx,
                    "model_errors": totals.model_errors,
                },
                "utilization": utilization,
                "series": series(metrics, &key, start, end, period),
            })
        })
        .collect();
    json!({
        "name": e.name,
        "status": e.status.as_str(),
        "failure_reason": e.failure_reason,
        "config": e.config_name,
        "pending_config": e.pending.as_ref().map(|p| &p.config_name),
        "deployment": e.pending.as_ref().and_then(|p| p.deployment.as_ref()).map(|p| json!({
            "phase": p.phase.as_str(),
            "message": p.message,
            "new_fleet_share": p.green_share,
        })),
        "can_roll_back": e.previous_weights.is_some(),
        "created": e.created.as_secs_f64(),
        "modified": e.modified.as_secs_f64(),
        "variants": variants,
    })
}

/// A variant's recent history, one value per period (null where a period had no data).
fn series(metrics: &MetricsRegistry, key: &VariantKey, start: u64, end: u64, period: u64) -> Value {
    let points = |m: MetricName| metrics.datapoints(key, m, &[], 0, start, end, period);
    let slots = ((end - start) / period) as usize;
    let at = |m: MetricName, f: &dyn Fn(&Datapoint) -> Option<f64>| -> Vec<Option<f64>> {
        let mut out = vec![None; slots];
        for d in points(m) {
            if let Some(i) = usize::try_from((d.timestamp - start) / period).ok().filter(|&i| i < slots) {
                out[i] = f(&d);
            }
        }
        out
    };
    let per_second = |d: &Datapoint| Some(d.sum / period as f64);
    let invocations = at(MetricName::Invocations, &per_second);
    let errors = at(MetricName::Invocation4XXErrors, &|d| Some(d.sum));
    let errors_5xx = at(MetricName::Invocation5XXErrors, &|d| Some(d.sum));
    let error_share: Vec<Option<f64>> = invocations
        .iter()
        .zip(errors.iter().zip(&errors_5xx))
        .map(|(n, (a, b))| {
            let n = n.unwrap_or(0.0) * period as f64;
            (n > 0.0).then(|| (a.unwrap_or(0.0) + b.unwrap_or(0.0)) / n)
        })
        .collect();
    let ms = |p: f64| move |d: &Datapoint| d.percentile(p).map(|us| us / 1000.0);
    json!({
        "t": (0..slots).map(|i| start + i as u64 * period).collect::<Vec<_>>(),
        "invocations_per_second": invocations.iter().map(|v| v.unwrap_or(0.0)).collect::<Vec<_>>(),
        "model_latency_p50_ms": at(MetricName::ModelLatency, &ms(50.0)),
        "model_latency_p99_ms": at(MetricName::ModelLatency, &ms(99.0)),
        "error_share": error_share,
        "cpu_percent": at(MetricName::CPUUtilization, &|d| Some(d.average())),
    })
}
