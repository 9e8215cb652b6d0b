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
use berth_domain::{Endpoint, Event, InferenceComponent};
use berth_metrics::{Datapoint, MetricName, MetricsRegistry, VariantKey};
use berth_router::EndpointRoute;
use berth_store::EventQuery;
use serde::{Deserialize, Serialize};

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
        Ok(events) => json_ok(Events { events: events.iter().map(event_out).collect() }),
        Err(e) => Protocol::Berth.answer_error(EdgeError::control(e, Service::Berth)),
    }
}

#[derive(Serialize)]
struct Events {
    events: Vec<EventOut>,
}

#[derive(Serialize)]
struct EventOut {
    id: i64,
    /// RFC 3339.
    time: String,
    epoch: f64,
    endpoint: String,
    variant: Option<String>,
    kind: &'static str,
    message: String,
}

fn event_out(e: &Event) -> EventOut {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(e.event.time.millis() as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    EventOut {
        id: e.id,
        time,
        epoch: e.event.time.as_secs_f64(),
        endpoint: e.event.endpoint.clone(),
        variant: e.event.variant.clone(),
        kind: e.event.kind.as_str(),
        message: e.event.message.clone(),
    }
}

#[derive(Deserialize)]
pub struct OverviewQuery {
    window: Option<u64>,
    period: Option<u64>,
}

#[derive(Serialize)]
struct Overview {
    now: u64,
    window: Window,
    endpoints: Vec<EndpointOut>,
    events: Vec<EventOut>,
    /// The cluster's servers, when berth's store is shared (empty otherwise).
    nodes: Vec<NodeOut>,
}

#[derive(Serialize)]
struct NodeOut {
    name: String,
    address: String,
    /// `leader`, `standby`, or `gone` (its session to the store is closed).
    role: &'static str,
    /// Milliseconds since its last heartbeat, by the store's clock.
    silent_ms: i64,
    /// The instances it runs (the leader runs every endpoint's; a standby none).
    instances: usize,
}

/// A cluster server as the dashboard shows it.
fn node_out(n: berth_store::Node, instances: usize) -> NodeOut {
    NodeOut { role: n.role(), name: n.name, address: n.address, silent_ms: n.silent_ms, instances }
}

#[derive(Serialize)]
struct Window {
    start: u64,
    end: u64,
    period: u64,
}

#[derive(Serialize)]
struct EndpointOut {
    name: String,
    status: &'static str,
    failure_reason: Option<String>,
    config: String,
    pending_config: Option<String>,
    deployment: Option<DeploymentOut>,
    can_roll_back: bool,
    created: f64,
    modified: f64,
    variants: Vec<VariantOut>,
    /// Model quality and the A/B test, for endpoints that capture their answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<Option<crate::quality_api::QualitySummaryOut>>,
}

#[derive(Serialize)]
struct DeploymentOut {
    phase: &'static str,
    message: String,
    new_fleet_share: f64,
}

#[derive(Serialize)]
struct VariantOut {
    name: String,
    model: String,
    shadow: bool,
    serverless: Option<ServerlessOut>,
    models: Option<ModelsOut>,
    instance_type: String,
    weight: f64,
    desired_weight: f64,
    traffic_share: f64,
    instances: u32,
    desired_instances: u32,
    healthy_instances: usize,
    restarts: u64,
    totals: TotalsOut,
    utilization: Option<UtilizationOut>,
    series: SeriesOut,
    /// For an inference component's row: the variant whose instances host its copies
    /// (`instances` are then its copies).
    #[serde(skip_serializing_if = "Option::is_none")]
    component_of: Option<String>,
}

#[derive(Serialize)]
struct ServerlessOut {
    max_concurrency: u32,
    in_flight: u32,
    cold_starts: u64,
    throttled: u64,
}

/// A multi-model variant: models loaded now, and how many calls found theirs loaded.
#[derive(Serialize)]
struct ModelsOut {
    loaded: usize,
    cache_hits: u64,
    calls: u64,
}

#[derive(Serialize)]
struct TotalsOut {
    invocations: u64,
    errors_4xx: u64,
    errors_5xx: u64,
    model_errors: u64,
}

impl TotalsOut {
    fn of(t: &berth_metrics::VariantSnapshot) -> TotalsOut {
        TotalsOut { invocations: t.invocations, errors_4xx: t.errors_4xx, errors_5xx: t.errors_5xx, model_errors: t.model_errors }
    }
}

#[derive(Serialize)]
struct UtilizationOut {
    cpu: f64,
    memory: f64,
    disk: f64,
}

/// A variant's recent history, one value per period (null where a period had no data).
#[derive(Serialize)]
struct SeriesOut {
    t: Vec<u64>,
    invocations_per_second: Vec<f64>,
    model_latency_p50_ms: Vec<Option<f64>>,
    model_latency_p99_ms: Vec<Option<f64>>,
    error_share: Vec<Option<f64>>,
    cpu_percent: Vec<Option<f64>>,
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
    let now = edge.controller.now().secs();
    // The window ends with the last period whose seconds are all closed (the sampler closes a
    // second just after it ends); periods are aligned so charts do not jitter.
    let end = (now.saturating_sub(1) / period) * period;
    let start = end.saturating_sub(window);
    let table = edge.router.table();
    let components = edge.controller.inference_components().await.unwrap_or_default();
    let mut body: Vec<EndpointOut> = endpoints
        .iter()
        .map(|e| {
            let mut out = endpoint_out(e, table.get(&e.name).as_deref(), table.metrics(), start, end, period);
            if e.hosts_components() {
                let key = berth_domain::NameKey::of(&e.name);
                let mine: Vec<&InferenceComponent> =
                    components.iter().filter(|c| berth_domain::NameKey::of(&c.endpoint_name) == key).collect();
                out.variants.extend(component_rows(e, &mine, table.get(&e.name).as_deref(), table.metrics(), start, end, period));
            }
            out
        })
        .collect();
    // Model quality and the A/B test, where answers are captured.
    for (out, e) in body.iter_mut().zip(&endpoints) {
        if e.data_capture.is_some() {
            out.quality = Some(edge.controller.quality_summary(&e.name).await.ok().map(|q| crate::quality_api::summary_out(&q)));
        }
    }
    // A cluster's servers, read each time (the dashboard polls once a second); a failure to
    // read them leaves the list empty rather than the dashboard blank.
    // This server (the leader: the overview is the leader's) runs the instances of its routes.
    let running: usize = table.routes().iter().flat_map(|r| r.serving_variants()).map(|v| v.instances.len()).sum();
    let nodes = edge
        .controller
        .nodes()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|n| {
            let here = edge.node.as_deref() == Some(n.name.as_str());
            node_out(n, if here { running } else { 0 })
        })
        .collect();
    json_ok(Overview { now, window: Window { start, end, period }, endpoints: body, events: events.iter().map(event_out).collect(), nodes })
}

fn endpoint_out(e: &Endpoint, route: Option<&EndpointRoute>, metrics: &MetricsRegistry, start: u64, end: u64, period: u64) -> EndpointOut {
    let total_weight: f64 = e.variants.iter().map(|v| v.current_weight).sum();
    let variants = e
        .variants
        .iter()
        .map(|v| {
            let routed = route.and_then(|r| r.variants.iter().find(|rv| rv.name == v.name));
            let slots = routed.map(|rv| rv.instances.as_slice()).unwrap_or(&[]);
            let key = VariantKey { endpoint: e.name.clone(), variant: v.name.clone() };
            let totals = metrics.snapshot_of(&key).unwrap_or_default();
            let utilization = metrics.latest_utilization(&key, end.saturating_sub(5)).map(|u| {
                let (cpu, memory, disk) = u.averages();
                UtilizationOut { cpu, memory, disk }
            });
            let models = routed.and_then(|rv| rv.models.as_ref()).map(|m| ModelsOut {
                loaded: m.loaded_count(),
                cache_hits: totals.model_cache_hits,
                calls: totals.model_cache_lookups,
            });
            let serverless = routed.and_then(|rv| rv.serverless.as_ref()).map(|s| ServerlessOut {
                max_concurrency: s.max_concurrency(),
                in_flight: s.in_flight(),
                cold_starts: s.cold_starts.load(std::sync::atomic::Ordering::Relaxed),
                throttled: s.throttled.load(std::sync::atomic::Ordering::Relaxed),
            });
            VariantOut {
                name: v.name.clone(),
                model: v.model_name.clone(),
                shadow: v.shadow,
                serverless,
                models,
                instance_type: v.instance_type.clone(),
                weight: v.current_weight,
                desired_weight: v.desired_weight,
                traffic_share: if total_weight > 0.0 { v.current_weight / total_weight } else { 0.0 },
                instances: v.current_instance_count,
                desired_instances: v.desired_instance_count,
                // A variant hosting inference components runs nothing of its own: its instances
                // are there as soon as they are counted.
                healthy_instances: match v.hosts_components {
                    true => v.current_instance_count as usize,
                    false => slots.iter().filter(|s| s.is_healthy()).count(),
                },
                restarts: slots.iter().map(|s| s.restarts()).sum::<u64>(),
                totals: TotalsOut::of(&totals),
                utilization,
                series: series(metrics, &key, start, end, period),
                component_of: None,
            }
        })
        .collect();
    EndpointOut {
        name: e.name.clone(),
        status: e.status.as_str(),
        failure_reason: e.failure_reason.clone(),
        config: e.config_name.clone(),
        pending_config: e.pending.as_ref().map(|p| p.config_name.clone()),
        deployment: e.pending.as_ref().and_then(|p| p.deployment.as_ref()).map(|p| DeploymentOut {
            phase: p.phase.as_str(),
            message: p.message.clone(),
            new_fleet_share: p.green_share,
        }),
        can_roll_back: e.previous_weights.is_some(),
        created: e.created.as_secs_f64(),
        modified: e.modified.as_secs_f64(),
        variants,
        quality: None,
    }
}

/// An endpoint's inference components as rows of its own, after its variants: each one's
/// copies (healthy of desired), its share of the components' invocations, its metrics.
fn component_rows(
    e: &Endpoint,
    components: &[&InferenceComponent],
    route: Option<&EndpointRoute>,
    metrics: &MetricsRegistry,
    start: u64,
    end: u64,
    period: u64,
) -> Vec<VariantOut> {
    let key = |c: &InferenceComponent| VariantKey::component(&e.name, &c.name);
    let invocations: Vec<u64> = components.iter().map(|c| metrics.snapshot_of(&key(c)).unwrap_or_default().invocations).collect();
    let total: u64 = invocations.iter().sum();
    components
        .iter()
        .zip(invocations)
        .map(|(c, n)| {
            let routed = route.and_then(|r| r.components.iter().flatten().find(|r| r.name == c.name));
            let slots = routed.map(|r| r.variant.instances.as_slice()).unwrap_or(&[]);
            let totals = metrics.snapshot_of(&key(c)).unwrap_or_default();
            VariantOut {
                name: c.name.clone(),
                model: c.model_name.clone().unwrap_or_else(|| c.container.image.clone()),
                shadow: false,
                serverless: None,
                models: None,
                instance_type: e.variant(&c.variant_name).map(|v| v.instance_type.clone()).unwrap_or_default(),
                weight: 0.0,
                desired_weight: 0.0,
                traffic_share: if total > 0 { n as f64 / total as f64 } else { 0.0 },
                instances: c.current_copies,
                desired_instances: c.desired_copies,
                healthy_instances: slots.iter().filter(|s| s.is_healthy()).count(),
                restarts: slots.iter().map(|s| s.restarts()).sum::<u64>(),
                totals: TotalsOut::of(&totals),
                utilization: None,
                series: series(metrics, &key(c), start, end, period),
                component_of: Some(c.variant_name.clone()),
            }
        })
        .collect()
}

/// A variant's recent history, one value per period (null where a period had no data).
fn series(metrics: &MetricsRegistry, key: &VariantKey, start: u64, end: u64, period: u64) -> SeriesOut {
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
    SeriesOut {
        t: (0..slots).map(|i| start + i as u64 * period).collect(),
        invocations_per_second: invocations.iter().map(|v| v.unwrap_or(0.0)).collect(),
        model_latency_p50_ms: at(MetricName::ModelLatency, &ms(50.0)),
        model_latency_p99_ms: at(MetricName::ModelLatency, &ms(99.0)),
        error_share,
        cpu_percent: at(MetricName::CPUUtilization, &|d| Some(d.average())),
    }
}
