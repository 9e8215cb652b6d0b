//! Keeps the per-variant metrics history: closes each second, with the instances' CPU, memory
//! and disk use measured in it, stores per-second samples (last hour) and per-minute rollups
//! (retention period) in the state store, and restores them at start. `start` puts that and the
//! rest of berth's periodic work under the background supervisor, each loop on its own task:
//! alarms, inference experiments and the autoscaler (in the round that closes the second they
//! read, after it), ground truth, model quality metrics and bandits, and pruning past the
//! retention period.

use crate::background::Supervisor;
use berth_control::Controller;
use berth_domain::Timestamp;
use berth_instances::{disk_used_percent, host_memory_bytes, UsageProbe};
use berth_metrics::{InstanceUtilization, MetricsRegistry, SecondSample, Utilization, VariantKey};
use berth_router::RoutingTable;
use berth_store::MetricSample;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::warn;

const HOUR: u64 = 3600;

fn now_secs() -> u64 {
    Timestamp::now().secs()
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

/// How the once-a-second work is set up.
pub struct Settings {
    /// How long minute rollups, custom metrics, events and scaling activities are kept.
    pub retention: Duration,
    pub data_dir: PathBuf,
    /// Seconds of metrics an autoscaling decision looks at.
    pub scaling_window_secs: u64,
    /// Seconds between bandit and promotion rounds.
    pub bandit_interval_secs: u64,
}

/// Starts every periodic loop under `supervisor`.
pub fn start(supervisor: &mut Supervisor, controller: Arc<Controller>, routing: Arc<RoutingTable>, settings: Settings) {
    let Settings { retention, data_dir, scaling_window_secs, bandit_interval_secs } = settings;
    let probe = Arc::new(Mutex::new(UsageProbe::default()));
    let host_memory = host_memory_bytes().unwrap_or(u64::MAX);
    let second = Duration::from_secs(1);
    {
        let (controller, routing) = (controller.clone(), routing.clone());
        supervisor.every("metrics, alarms, experiments and autoscaling", second, move || {
            let (controller, routing, probe, dir) = (controller.clone(), routing.clone(), probe.clone(), data_dir.clone());
            async move {
                close_second(&controller, &routing, probe, dir, host_memory).await;
                // These read the seconds up to the one just closed: run after it, in this round
                // (on their own interval they could look before the second is in and see a
                // window a second short).
                report("run inference experiments", controller.run_experiments(controller.now()).await);
                report("run the autoscaler", controller.run_autoscaling(controller.now(), scaling_window_secs).await);
            }
        });
    }
    let each = |what: &'static str, period: Duration, supervisor: &mut Supervisor, work: fn(Arc<Controller>) -> RoundFuture| {
        let controller = controller.clone();
        supervisor.every(what, period, move || work(controller.clone()));
    };
    let bandit = Duration::from_secs(bandit_interval_secs.max(1));
    each("ground truth", bandit, supervisor, |c| Box::pin(async move { report("read ground truth", c.ingest_ground_truth().await) }));
    each("model quality metrics", bandit, supervisor, |c| {
        Box::pin(async move { report("publish model quality metrics", c.publish_quality_metrics().await) })
    });
    each("bandits", bandit, supervisor, |c| Box::pin(async move { report("run bandit routing", c.run_bandits().await) }));
    let controller = controller.clone();
    supervisor.every("pruning", Duration::from_secs(60), move || {
        let controller = controller.clone();
        async move { prune(&controller, retention).await }
    });
}

type RoundFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn report<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) {
    if let Err(e) = result {
        warn!(error = %e, "cannot {what}");
    }
}

/// Closes the second that just ended and stores what it held (and, at a minute's end, the
/// minute's rollups), then evaluates the alarms on it.
async fn close_second(controller: &Controller, routing: &Arc<RoutingTable>, probe: Arc<Mutex<UsageProbe>>, dir: PathBuf, host_memory: u64) {
    let second = now_secs().saturating_sub(1);
    let table = routing.clone();
    // Reading /proc is blocking file I/O: off the async workers.
    let mut utilization =
        tokio::task::spawn_blocking(move || measure(&mut probe.lock().unwrap_or_else(|e| e.into_inner()), &table, &dir, host_memory))
            .await
            .unwrap_or_default();
    let registry = routing.metrics();
    let mut rows: Vec<MetricSample> = registry.sample(second, &mut utilization).into_iter().filter_map(|(k, s)| row(k, 1, &s)).collect();
    if second % 60 == 59 {
        rows.extend(registry.minute_rollups(second - 59).into_iter().filter_map(|(k, s)| row(k, 60, &s)));
    }
    report("store metric samples", controller.store_metric_samples(rows).await);
    // Alarms see the second just closed.
    report("evaluate alarms", controller.evaluate_alarms(second + 1).await);
}

/// Drops what is past its keeping: per-second samples after an hour, rollups, custom metrics,
/// events, scaling activities and labelled answers after the retention period.
async fn prune(controller: &Controller, retention: Duration) {
    let second = now_secs();
    report("prune metric samples", controller.prune_metric_samples(1, second.saturating_sub(HOUR)).await);
    report("prune metric rollups", controller.prune_metric_samples(60, second.saturating_sub(retention.as_secs())).await);
    report("prune custom metrics", controller.prune_custom_datapoints(second.saturating_sub(retention.as_secs())).await);
    let horizon = Timestamp::now().millis() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    report("prune events", controller.prune_events(Timestamp::from_millis(horizon)).await);
    report("prune scaling activities", controller.prune_scaling_activities(Timestamp::from_millis(horizon)).await);
    report("prune labelled answers", controller.prune_quality(horizon).await);
}

fn row(key: VariantKey, resolution: u32, sample: &SecondSample) -> Option<MetricSample> {
    let body = serde_json::to_string(sample).ok()?;
    Some(MetricSample { endpoint: key.endpoint, variant: key.variant, resolution, ts: sample.second, body })
}

/// Each variant's instance utilization now: CPU of the instances' process groups, their resident
/// memory over the instance type's memory (at most the machine's), and the data directory's disk.
fn measure(probe: &mut UsageProbe, routing: &RoutingTable, data_dir: &Path, host_memory: u64) -> BTreeMap<VariantKey, Utilization> {
    let routes = routing.routes();
    let groups: Vec<u32> = routes.iter().flat_map(|r| r.variants.iter().flat_map(|v| v.instances.iter().filter_map(|s| s.pid()))).collect();
    let usage = probe.measure(&groups);
    let disk = if usage.is_empty() { 0.0 } else { disk_used_percent(data_dir).unwrap_or(0.0) };
    let mut out = BTreeMap::new();
    for route in &routes {
        for v in &route.variants {
            let memory = (v.memory_mib.max(1) * 1024 * 1024).min(host_memory) as f64;
            let of = |container: Option<usize>| -> Option<Utilization> {
                let instances: Vec<InstanceUtilization> = v
                    .instances
                    .iter()
                    .filter(|slot| container.is_none_or(|c| slot.container() == c))
                    .filter_map(|slot| usage.get(&slot.pid()?))
                    .filter_map(|u| Some(InstanceUtilization { cpu: u.cpu_percent?, memory: u.rss_bytes as f64 / memory * 100.0, disk }))
                    .collect();
                Utilization::of(&instances)
            };
            if let Some(u) = of(None) {
                out.insert(VariantKey { endpoint: route.endpoint.clone(), variant: v.name.clone() }, u);
            }
            // A Direct multi-container variant's containers are measured apart too (ContainerName).
            for (i, hostname) in
                v.pipeline.iter().filter(|p| p.mode == berth_domain::ExecutionMode::Direct).flat_map(|p| p.hostnames.iter().enumerate())
            {
                if let Some(u) = of(Some(i)) {
                    out.insert(VariantKey::container(&route.endpoint, &v.name, hostname), u);
                }
            }
        }
    }
    out
}
