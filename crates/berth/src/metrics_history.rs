//! Keeps the per-variant metrics history: closes each second, stores per-second samples (last
//! hour) and per-minute rollups (retention period) in the state store, restores them at start.

use berth_control::Controller;
use berth_metrics::{MetricsRegistry, SecondSample, VariantKey};
use berth_router::RoutingTable;
use berth_store::MetricSample;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::warn;

const HOUR: u64 = 3600;

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Puts the last hour of stored per-second samples back into the in-memory history.
pub async fn restore(controller: &Controller, metrics: &MetricsRegistry) {
    let now = now_secs();
    let rows = match controller.metric_samples(None, 1, now.saturating_sub(HOUR), now + 1).await {
        Ok(rows) => rows,
        Err(e) => return warn!(error = %e, "cannot restore the metrics history"),
    };
    let mut by_variant: BTreeMap<(String, String), Vec<SecondSample>> = BTreeMap::new();
    for row in rows {
        if let Ok(sample) = serde_json::from_str::<SecondSample>(&row.body) {
            by_variant.entry((row.endpoint, row.variant)).or_default().push(sample);
        }
    }
    for ((endpoint, variant), samples) in by_variant {
        metrics.restore(&endpoint, &variant, samples);
    }
}

/// Runs forever: once a second, closes the second that just ended and stores what it held.
pub async fn run(controller: Arc<Controller>, routing: Arc<RoutingTable>, retention: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let second = now_secs().saturating_sub(1);
        let registry = routing.metrics();
        let mut rows: Vec<MetricSample> = registry.sample(second).into_iter().filter_map(|(k, s)| row(k, 1, &s)).collect();
        if second % 60 == 59 {
            rows.extend(registry.minute_rollups(second - 59).into_iter().filter_map(|(k, s)| row(k, 60, &s)));
            let _ = controller.prune_metric_samples(1, second.saturating_sub(HOUR)).await;
            let _ = controller.prune_metric_samples(60, second.saturating_sub(retention.as_secs())).await;
            let _ = controller.prune_custom_datapoints(second.saturating_sub(retention.as_secs())).await;
        }
        if let Err(e) = controller.store_metric_samples(rows).await {
            warn!(error = %e, "cannot store metric samples");
        }
    }
}

fn row(key: VariantKey, resolution: u32, sample: &SecondSample) -> Option<MetricSample> {
    let body = serde_json::to_string(sample).ok()?;
    Some(MetricSample { endpoint: key.endpoint, variant: key.variant, resolution, ts: sample.second, body })
}
