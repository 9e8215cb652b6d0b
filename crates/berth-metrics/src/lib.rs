//! Per-variant request metrics, recorded on the request path with atomics only.
//!
//! A [`VariantMetrics`] holds cumulative counters (SageMaker's `Invocations`,
//! `Invocation4XXErrors`, `Invocation5XXErrors`, `InvocationModelErrors`) and latency
//! histograms in microseconds (`ModelLatency`, `OverheadLatency`). The [`MetricsRegistry`]
//! keeps one per endpoint variant for as long as the server runs, so a variant's counters
//! survive route changes (weight shifts, instance replacement). Readers (Prometheus exposition,
//! the CloudWatch-compatible API) take snapshots; nothing they do blocks a request.

#![forbid(unsafe_code)]

mod histogram;
mod history;
mod prometheus;
mod query;

pub use histogram::{Histogram, HistogramSnapshot, BUCKET_BOUNDS_US};
pub use history::{seconds_cutoff, Gauge, InstanceUtilization, SecondSample, Stat, Utilization, HISTORY_SECONDS};
pub use prometheus::{escape_label, render_prometheus, with_label, InstanceCounts};
pub use query::{period_of, Datapoint, MetricName, INSTANCE_NAMESPACE, INVOCATION_NAMESPACE};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How one invocation ended, as SageMaker's metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The container answered 2xx.
    Success,
    /// The container answered 4xx: a 4XX error and a model error.
    ModelClientError,
    /// The container answered 5xx, failed mid-request or timed out: a 5XX error and a model error.
    ModelServerError,
    /// berth could not hand the request to a container (no healthy instance): a 5XX error.
    Unavailable,
}

#[derive(Debug, Default)]
pub struct VariantMetrics {
    invocations: AtomicU64,
    errors_4xx: AtomicU64,
    errors_5xx: AtomicU64,
    model_errors: AtomicU64,
    pub model_latency_us: Histogram,
    pub overhead_latency_us: Histogram,
    /// Time from asking for an instance to its first passing health check (ModelSetupTime).
    pub model_setup_us: Histogram,
    /// Multi-model variants: how long a call waited for its model to be fetched and loaded
    /// (ModelLoadingWaitTime), and the fetching, loading and unloading of models on their own
    /// (ModelDownloadingTime, ModelLoadingTime, ModelUnloadingTime).
    pub model_loading_wait_us: Histogram,
    pub model_downloading_us: Histogram,
    pub model_loading_us: Histogram,
    pub model_unloading_us: Histogram,
    /// Calls of a multi-model variant, and those whose model was loaded already (ModelCacheHit).
    model_cache_lookups: AtomicU64,
    model_cache_hits: AtomicU64,
    /// Models loaded on the variant's instances (LoadedModelCount), once it is a multi-model variant.
    loaded_models: Mutex<Option<u64>>,
    /// Instances the variant runs now (set when its route is published).
    instances: AtomicU64,
    /// Captured invocations dropped because the capture buffer was full.
    capture_dropped: AtomicU64,
    /// Written by the once-a-second sampler, read by queries; never by the request path.
    history: Mutex<history::History>,
    /// Its endpoint was deleted: left out of the exposition, kept for history queries for as
    /// long as the per-second history reaches back (and in the store beyond).
    retired: std::sync::atomic::AtomicBool,
    /// When it was retired (epoch seconds).
    retired_at: AtomicU64,
}

/// A consistent-enough copy of a variant's counters for readers (totals), or the activity of
/// one interval (in a [`SecondSample`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VariantSnapshot {
    pub invocations: u64,
    pub errors_4xx: u64,
    pub errors_5xx: u64,
    pub model_errors: u64,
    pub model_latency_us: HistogramSnapshot,
    pub overhead_latency_us: HistogramSnapshot,
    #[serde(default)]
    pub model_setup_us: HistogramSnapshot,
    #[serde(default)]
    pub model_loading_wait_us: HistogramSnapshot,
    #[serde(default)]
    pub model_downloading_us: HistogramSnapshot,
    #[serde(default)]
    pub model_loading_us: HistogramSnapshot,
    #[serde(default)]
    pub model_unloading_us: HistogramSnapshot,
    #[serde(default)]
    pub model_cache_lookups: u64,
    #[serde(default)]
    pub model_cache_hits: u64,
}

impl VariantMetrics {
    /// Records one invocation routed to this variant. `model_us` is the time the container
    /// took (absent when no container was reached), `overhead_us` berth's own share.
    pub fn record(&self, outcome: Outcome, model_us: Option<u64>, overhead_us: u64) {
        self.invocations.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Success => {}
            Outcome::ModelClientError => {
                self.errors_4xx.fetch_add(1, Ordering::Relaxed);
                self.model_errors.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::ModelServerError => {
                self.errors_5xx.fetch_add(1, Ordering::Relaxed);
                self.model_errors.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Unavailable => {
                self.errors_5xx.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(us) = model_us {
            self.model_latency_us.record(us);
        }
        self.overhead_latency_us.record(overhead_us);
    }

    /// Records whether a multi-model call found its model loaded.
    pub fn record_model_cache(&self, hit: bool) {
        self.model_cache_lookups.fetch_add(1, Ordering::Relaxed);
        if hit {
            self.model_cache_hits.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn record_capture_dropped(&self) {
        self.capture_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Captured invocations of this variant dropped so far (the capture buffer was full).
    pub fn capture_dropped(&self) -> u64 {
        self.capture_dropped.load(Ordering::Relaxed)
    }

    pub fn set_loaded_models(&self, n: usize) {
        *self.loaded_models.lock().unwrap_or_else(|e| e.into_inner()) = Some(n as u64);
    }

    /// Models loaded on a multi-model variant's instances (None for other variants).
    pub fn loaded_models(&self) -> Option<u64> {
        *self.loaded_models.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_instances(&self, n: usize) {
        self.instances.store(n as u64, Ordering::Relaxed);
    }

    pub fn instances(&self) -> u64 {
        self.instances.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> VariantSnapshot {
        VariantSnapshot {
            invocations: self.invocations.load(Ordering::Relaxed),
            errors_4xx: self.errors_4xx.load(Ordering::Relaxed),
            errors_5xx: self.errors_5xx.load(Ordering::Relaxed),
            model_errors: self.model_errors.load(Ordering::Relaxed),
            model_latency_us: self.model_latency_us.snapshot(),
            overhead_latency_us: self.overhead_latency_us.snapshot(),
            model_setup_us: self.model_setup_us.snapshot(),
            model_loading_wait_us: self.model_loading_wait_us.snapshot(),
            model_downloading_us: self.model_downloading_us.snapshot(),
            model_loading_us: self.model_loading_us.snapshot(),
            model_unloading_us: self.model_unloading_us.snapshot(),
            model_cache_lookups: self.model_cache_lookups.load(Ordering::Relaxed),
            model_cache_hits: self.model_cache_hits.load(Ordering::Relaxed),
        }
    }
}

/// Identifies a variant's metrics: SageMaker's `EndpointName` and `VariantName` dimensions.
/// A container of a Direct multi-container variant has metrics of its own, keyed by the variant
/// `<variant>/<container>` (`ContainerName`: a `/` is in no variant name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VariantKey {
    pub endpoint: String,
    pub variant: String,
}

/// What begins the variant part of an inference component's key (no variant name holds a `.`).
const COMPONENT_PREFIX: &str = "ic.";

impl VariantKey {
    /// The key of an inference component's metrics on its endpoint.
    pub fn component(endpoint: &str, component: &str) -> VariantKey {
        VariantKey { endpoint: endpoint.to_string(), variant: format!("{COMPONENT_PREFIX}{component}") }
    }

    /// The inference component whose metrics these are, if they are one's.
    pub fn component_name(&self) -> Option<&str> {
        self.variant.strip_prefix(COMPONENT_PREFIX)
    }

    /// The key of one container's metrics of a multi-container variant.
    pub fn container(endpoint: &str, variant: &str, container: &str) -> VariantKey {
        VariantKey { endpoint: endpoint.to_string(), variant: format!("{variant}/{container}") }
    }

    /// The variant name, and the container name for a container's metrics.
    pub fn variant_and_container(&self) -> (&str, Option<&str>) {
        match self.variant.split_once('/') {
            Some((variant, container)) => (variant, Some(container)),
            None => (&self.variant, None),
        }
    }
}

/// Every variant's metrics. Locked only to add a variant or to list them, never per request.
#[derive(Debug, Default)]
pub struct MetricsRegistry {
    variants: Mutex<BTreeMap<VariantKey, Arc<VariantMetrics>>>,
}

impl MetricsRegistry {
    /// The metrics of a variant, created on first use.
    pub fn variant(&self, endpoint: &str, variant: &str) -> Arc<VariantMetrics> {
        let key = VariantKey { endpoint: endpoint.to_string(), variant: variant.to_string() };
        let v = self.variants.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default().clone();
        v.retired.store(false, Ordering::Relaxed); // an endpoint of that name exists again
        v
    }

    /// An endpoint was deleted: its variants leave the exposition; their history stays
    /// queryable for the hour the per-second history covers (and in the store beyond).
    pub fn retire(&self, endpoint: &str) {
        for (key, v) in self.all() {
            if key.endpoint.eq_ignore_ascii_case(endpoint) {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                v.retired_at.store(now, Ordering::Relaxed);
                v.retired.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Snapshots of every variant of a live endpoint, in endpoint and variant order.
    pub fn snapshot(&self) -> Vec<(VariantKey, VariantSnapshot)> {
        self.all().into_iter().filter(|(_, v)| !v.retired.load(Ordering::Relaxed)).map(|(k, v)| (k, v.snapshot())).collect()
    }

    /// The totals of one variant, if it has metrics.
    pub fn snapshot_of(&self, key: &VariantKey) -> Option<VariantSnapshot> {
        self.get(key).map(|v| v.snapshot())
    }

    fn get(&self, key: &VariantKey) -> Option<Arc<VariantMetrics>> {
        self.variants.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    /// Every variant with metrics.
    pub fn keys(&self) -> Vec<VariantKey> {
        self.variants.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    fn all(&self) -> Vec<(VariantKey, Arc<VariantMetrics>)> {
        self.variants.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Closes second `second` (epoch seconds) of every variant's history, with the instance
    /// utilization measured in it; returns the samples that hold anything, for storage.
    pub fn sample(&self, second: u64, utilization: &mut BTreeMap<VariantKey, Utilization>) -> Vec<(VariantKey, SecondSample)> {
        let mut out = Vec::new();
        // Retired variants whose history has aged out are forgotten.
        self.variants.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, v| {
            !v.retired.load(Ordering::Relaxed) || v.retired_at.load(Ordering::Relaxed) + history::HISTORY_SECONDS as u64 > second
        });
        for (key, v) in self.all() {
            let measured = utilization.remove(&key);
            if let Some(s) = v.history.lock().unwrap_or_else(|e| e.into_inner()).sample(&v, second, measured) {
                out.push((key, s));
            }
        }
        out
    }

    /// Each variant's activity in the minute starting at `minute` (from the per-second history).
    pub fn minute_rollups(&self, minute: u64) -> Vec<(VariantKey, SecondSample)> {
        let mut out = Vec::new();
        for (key, v) in self.all() {
            let history = v.history.lock().unwrap_or_else(|e| e.into_inner());
            let mut rollup = SecondSample { second: minute, ..Default::default() };
            for s in history.seconds.iter().filter(|s| s.second >= minute && s.second < minute + 60) {
                rollup.absorb(s);
            }
            if rollup.is_active() {
                out.push((key, rollup));
            }
        }
        out
    }

    /// The utilization of a variant's instances in its latest measured second at or after `since`.
    pub fn latest_utilization(&self, key: &VariantKey, since: u64) -> Option<Utilization> {
        let v = self.get(key)?;
        let history = v.history.lock().unwrap_or_else(|e| e.into_inner());
        history.seconds.iter().rev().take_while(|s| s.second >= since).find_map(|s| s.utilization.clone())
    }

    /// Adds a second of a variant's activity another server of the cluster saw (see
    /// `History::absorb`) to this registry's history, for queries, alarms and scaling; the live
    /// counters (this server's Prometheus exposition) stay this server's own. Returns the
    /// second as it now stands, for storage.
    pub fn absorb(&self, endpoint: &str, variant: &str, sample: SecondSample) -> SecondSample {
        let v = self.variant(endpoint, variant);
        let mut history = v.history.lock().unwrap_or_else(|e| e.into_inner());
        history.absorb(sample)
    }

    /// Puts back a variant's per-second history after a restart.
    pub fn restore(&self, endpoint: &str, variant: &str, samples: Vec<SecondSample>) {
        let v = self.variant(endpoint, variant);
        v.history.lock().unwrap_or_else(|e| e.into_inner()).restore(samples);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;

    #[test]
    fn outcomes_count_as_sagemaker_does() {
        let m = VariantMetrics::default();
        m.record(Outcome::Success, Some(900), 40);
        m.record(Outcome::ModelClientError, Some(100), 30);
        m.record(Outcome::ModelServerError, Some(100), 30);
        m.record(Outcome::Unavailable, None, 10);
        let s = m.snapshot();
        assert_eq!((s.invocations, s.errors_4xx, s.errors_5xx, s.model_errors), (4, 1, 2, 2));
        assert_eq!(s.model_latency_us.count, 3);
        assert_eq!(s.overhead_latency_us.count, 4);
        assert_eq!(s.model_latency_us.sum, 1100);
    }

    #[test]
    fn history_turns_totals_into_per_second_datapoints() {
        let r = MetricsRegistry::default();
        let v = r.variant("ep", "A");
        v.set_instances(1);
        let key = VariantKey { endpoint: "ep".into(), variant: "A".into() };
        r.sample(99, &mut BTreeMap::new()); // the baseline
        for _ in 0..3 {
            v.record(Outcome::Success, Some(100), 10);
        }
        r.sample(100, &mut BTreeMap::new());
        r.sample(101, &mut BTreeMap::new()); // a quiet second leaves no datapoint
        v.record(Outcome::ModelServerError, Some(300), 10);
        r.sample(102, &mut BTreeMap::new());
        let per_instance = r.datapoints(&key, MetricName::InvocationsPerInstance, &[], 0, 100, 103, 10);
        assert_eq!(per_instance[0].sum, 4.0, "one instance: per instance = all");
        let per_second = r.datapoints(&key, MetricName::Invocations, &[], 0, 100, 103, 1);
        assert_eq!(per_second.iter().map(|d| (d.timestamp, d.sum)).collect::<Vec<_>>(), vec![(100, 3.0), (102, 1.0)]);
        let minute = r.datapoints(&key, MetricName::Invocations, &[], 0, 60, 120, 60);
        assert_eq!((minute.len(), minute[0].sum, minute[0].sample_count, minute[0].maximum), (1, 4.0, 2.0, 3.0));
        let latency = r.datapoints(&key, MetricName::ModelLatency, &[], 0, 60, 120, 60);
        assert_eq!((latency[0].sample_count, latency[0].sum, latency[0].minimum, latency[0].maximum), (4.0, 600.0, 100.0, 300.0));
        assert_eq!(r.datapoints(&key, MetricName::Invocation5XXErrors, &[], 0, 60, 120, 60)[0].sum, 1.0);
    }

    #[test]
    fn seconds_another_server_saw_add_to_the_history_not_to_the_counters() {
        let r = MetricsRegistry::default();
        let v = r.variant("ep", "A");
        let key = VariantKey { endpoint: "ep".into(), variant: "A".into() };
        r.sample(99, &mut BTreeMap::new());
        v.record(Outcome::Success, Some(100), 10);
        r.sample(100, &mut BTreeMap::new());
        let elsewhere = |second, n| {
            let other = VariantMetrics::default();
            for _ in 0..n {
                other.record(Outcome::Success, Some(300), 10);
            }
            let mut h = History::default();
            h.sample(&VariantMetrics::default(), second - 1, None);
            h.sample(&other, second, None).unwrap()
        };
        assert_eq!(r.absorb("ep", "A", elsewhere(100, 2)).activity.invocations, 3, "the same second: added");
        assert_eq!(r.absorb("ep", "A", elsewhere(98, 4)).activity.invocations, 4, "an earlier second: put in its place");
        let per_second = r.datapoints(&key, MetricName::Invocations, &[], 0, 90, 110, 1);
        assert_eq!(per_second.iter().map(|d| (d.timestamp, d.sum)).collect::<Vec<_>>(), vec![(98, 4.0), (100, 3.0)]);
        let latency = r.datapoints(&key, MetricName::ModelLatency, &[], 0, 60, 120, 60);
        assert_eq!((latency[0].sample_count, latency[0].maximum), (7.0, 300.0));
        assert_eq!(r.snapshot_of(&key).unwrap().invocations, 1, "the live counters stay this server's");
        v.record(Outcome::Success, Some(100), 10);
        assert_eq!(r.sample(101, &mut BTreeMap::new())[0].1.activity.invocations, 1, "the next second is closed as before");
    }

    #[test]
    fn stored_minutes_and_memory_seconds_never_count_twice() {
        let r = MetricsRegistry::default();
        let v = r.variant("ep", "A");
        let key = VariantKey { endpoint: "ep".into(), variant: "A".into() };
        r.sample(3629, &mut BTreeMap::new());
        v.record(Outcome::Success, Some(1), 1);
        r.sample(3630, &mut BTreeMap::new()); // second 3630 of minute 3600
        let older: Vec<SecondSample> = r.minute_rollups(3600).into_iter().map(|(_, s)| s).collect();
        let total = |cutoff| r.datapoints(&key, MetricName::Invocations, &older, cutoff, 0, 10_000, 10_000)[0].sum;
        assert_eq!(total(3600), 1.0, "cutoff at the minute: memory seconds only");
        assert_eq!(total(3660), 1.0, "cutoff after it: the stored minute only");
        assert_eq!(seconds_cutoff(7300), 3720);
    }

    #[test]
    fn the_registry_keeps_a_variants_counters() {
        let r = MetricsRegistry::default();
        r.variant("ep", "A").record(Outcome::Success, Some(1), 1);
        r.variant("ep", "A").record(Outcome::Success, Some(1), 1);
        r.variant("other", "A").record(Outcome::Success, Some(1), 1);
        let snap = r.snapshot();
        assert_eq!(snap.len(), 2);
        assert_eq!(snap[0].1.invocations, 2);
    }

    #[test]
    fn utilization_is_one_sample_per_instance_and_second() {
        let r = MetricsRegistry::default();
        r.variant("ep", "A");
        let key = VariantKey { endpoint: "ep".into(), variant: "A".into() };
        let at = |cpu: f64, memory: f64| InstanceUtilization { cpu, memory, disk: 40.0 };
        let mut measured = BTreeMap::from([(key.clone(), Utilization::of(&[at(50.0, 10.0), at(150.0, 20.0)]).unwrap())]);
        assert_eq!(r.sample(100, &mut measured).len(), 1, "a measured second is kept without traffic");
        let mut measured = BTreeMap::from([(key.clone(), Utilization::of(&[at(10.0, 30.0)]).unwrap())]);
        r.sample(101, &mut measured);
        let cpu = r.datapoints(&key, MetricName::CPUUtilization, &[], 0, 100, 102, 60);
        assert_eq!((cpu[0].sample_count, cpu[0].sum, cpu[0].minimum, cpu[0].maximum), (3.0, 210.0, 10.0, 150.0));
        let rollup = &r.minute_rollups(60)[0].1;
        assert_eq!(rollup.utilization.as_ref().unwrap().memory, Stat { sum: 60.0, min: 10.0, max: 30.0 });
        assert_eq!(r.latest_utilization(&key, 101).unwrap().averages(), (10.0, 30.0, 40.0));
        assert_eq!(MetricName::find(INSTANCE_NAMESPACE, "CPUUtilization"), Some(MetricName::CPUUtilization));
        assert_eq!(MetricName::find(INVOCATION_NAMESPACE, "CPUUtilization"), None);
    }
}
