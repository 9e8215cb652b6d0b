//! Reading the per-second history as CloudWatch datapoints.

use crate::histogram::HistogramSnapshot;
use crate::history::{SecondSample, Stat, Utilization};
use crate::{MetricsRegistry, VariantKey};

/// SageMaker's namespace of invocation metrics.
pub const INVOCATION_NAMESPACE: &str = "AWS/SageMaker";
/// SageMaker's namespace of endpoint instance metrics (CPU, memory, disk).
pub const INSTANCE_NAMESPACE: &str = "/aws/sagemaker/Endpoints";

/// The metrics SageMaker emits per variant that berth records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricName {
    Invocations,
    InvocationsPerInstance,
    Invocation4XXErrors,
    Invocation5XXErrors,
    InvocationModelErrors,
    ModelLatency,
    OverheadLatency,
    ModelSetupTime,
    CPUUtilization,
    MemoryUtilization,
    DiskUtilization,
    ModelLoadingWaitTime,
    ModelDownloadingTime,
    ModelLoadingTime,
    ModelUnloadingTime,
    ModelCacheHit,
    LoadedModelCount,
}

impl MetricName {
    pub const ALL: [MetricName; 17] = [
        MetricName::Invocations,
        MetricName::InvocationsPerInstance,
        MetricName::Invocation4XXErrors,
        MetricName::Invocation5XXErrors,
        MetricName::InvocationModelErrors,
        MetricName::ModelLatency,
        MetricName::OverheadLatency,
        MetricName::ModelSetupTime,
        MetricName::CPUUtilization,
        MetricName::MemoryUtilization,
        MetricName::DiskUtilization,
        MetricName::ModelLoadingWaitTime,
        MetricName::ModelDownloadingTime,
        MetricName::ModelLoadingTime,
        MetricName::ModelUnloadingTime,
        MetricName::ModelCacheHit,
        MetricName::LoadedModelCount,
    ];

    /// The metric of that name in that namespace, if berth records it.
    pub fn find(namespace: &str, name: &str) -> Option<MetricName> {
        MetricName::ALL.into_iter().find(|m| m.namespace() == namespace && m.as_str() == name)
    }

    /// Whether berth publishes the namespace itself, as SageMaker does (rather than PutMetricData).
    pub fn is_berth_namespace(namespace: &str) -> bool {
        namespace == INVOCATION_NAMESPACE || namespace == INSTANCE_NAMESPACE
    }

    pub fn namespace(self) -> &'static str {
        match self.utilization() {
            Some(_) => INSTANCE_NAMESPACE,
            None => INVOCATION_NAMESPACE,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MetricName::Invocations => "Invocations",
            MetricName::InvocationsPerInstance => "InvocationsPerInstance",
            MetricName::Invocation4XXErrors => "Invocation4XXErrors",
            MetricName::Invocation5XXErrors => "Invocation5XXErrors",
            MetricName::InvocationModelErrors => "InvocationModelErrors",
            MetricName::ModelLatency => "ModelLatency",
            MetricName::OverheadLatency => "OverheadLatency",
            MetricName::ModelSetupTime => "ModelSetupTime",
            MetricName::CPUUtilization => "CPUUtilization",
            MetricName::MemoryUtilization => "MemoryUtilization",
            MetricName::DiskUtilization => "DiskUtilization",
            MetricName::ModelLoadingWaitTime => "ModelLoadingWaitTime",
            MetricName::ModelDownloadingTime => "ModelDownloadingTime",
            MetricName::ModelLoadingTime => "ModelLoadingTime",
            MetricName::ModelUnloadingTime => "ModelUnloadingTime",
            MetricName::ModelCacheHit => "ModelCacheHit",
            MetricName::LoadedModelCount => "LoadedModelCount",
        }
    }

    /// CloudWatch's unit for the metric, as SageMaker reports it.
    pub fn unit(self) -> &'static str {
        match self {
            MetricName::ModelLatency
            | MetricName::OverheadLatency
            | MetricName::ModelSetupTime
            | MetricName::ModelLoadingWaitTime
            | MetricName::ModelDownloadingTime
            | MetricName::ModelLoadingTime
            | MetricName::ModelUnloadingTime => "Microseconds",
            MetricName::CPUUtilization | MetricName::MemoryUtilization | MetricName::DiskUtilization => "Percent",
            _ => "None",
        }
    }

    fn latency(self, s: &SecondSample) -> Option<&HistogramSnapshot> {
        match self {
            MetricName::ModelLatency => Some(&s.activity.model_latency_us),
            MetricName::OverheadLatency => Some(&s.activity.overhead_latency_us),
            MetricName::ModelSetupTime => Some(&s.activity.model_setup_us),
            MetricName::ModelLoadingWaitTime => Some(&s.activity.model_loading_wait_us),
            MetricName::ModelDownloadingTime => Some(&s.activity.model_downloading_us),
            MetricName::ModelLoadingTime => Some(&s.activity.model_loading_us),
            MetricName::ModelUnloadingTime => Some(&s.activity.model_unloading_us),
            _ => None,
        }
    }

    /// Which of an instance utilization's statistics the metric is.
    fn utilization(self) -> Option<fn(&Utilization) -> &Stat> {
        match self {
            MetricName::CPUUtilization => Some(|u| &u.cpu),
            MetricName::MemoryUtilization => Some(|u| &u.memory),
            MetricName::DiskUtilization => Some(|u| &u.disk),
            _ => None,
        }
    }

    /// A metric with its own statistic set per sample (count, sum, minimum, maximum):
    /// ModelCacheHit counts a multi-model variant's calls, summing those that found their model
    /// loaded (its average is the hit ratio); LoadedModelCount is sampled once a second.
    fn statistic_set(self, s: &SecondSample) -> Option<(f64, f64, f64, f64)> {
        match self {
            MetricName::ModelCacheHit => {
                let (lookups, hits) = (s.activity.model_cache_lookups, s.activity.model_cache_hits);
                let (min, max) = (if hits == lookups { 1.0 } else { 0.0 }, if hits > 0 { 1.0 } else { 0.0 });
                (lookups > 0).then_some((lookups as f64, hits as f64, min, max))
            }
            MetricName::LoadedModelCount => s.loaded_models.map(|g| (g.samples as f64, g.stat.sum, g.stat.min, g.stat.max)),
            _ => None,
        }
    }

    /// A counter's value in a sample (None for latencies and utilization).
    fn count(self, s: &SecondSample) -> Option<f64> {
        match self {
            MetricName::Invocations => Some(s.activity.invocations as f64),
            MetricName::InvocationsPerInstance => Some(s.invocations_per_instance),
            MetricName::Invocation4XXErrors => Some(s.activity.errors_4xx as f64),
            MetricName::Invocation5XXErrors => Some(s.activity.errors_5xx as f64),
            MetricName::InvocationModelErrors => Some(s.activity.model_errors as f64),
            _ => None,
        }
    }
}

/// One period's statistics. Counters: one sample per second with traffic. Latencies: one
/// sample per request, with the merged histogram for percentiles. Utilization: one sample per
/// instance and second.
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    /// Start of the period, in epoch seconds.
    pub timestamp: u64,
    pub sample_count: f64,
    pub sum: f64,
    pub minimum: f64,
    pub maximum: f64,
    pub histogram: Option<HistogramSnapshot>,
}

impl Datapoint {
    /// The datapoint of the period that starts at `timestamp`, before anything is added.
    pub fn empty(timestamp: u64, histogram: Option<HistogramSnapshot>) -> Datapoint {
        Datapoint { timestamp, sample_count: 0.0, sum: 0.0, minimum: f64::INFINITY, maximum: f64::NEG_INFINITY, histogram }
    }

    /// Adds a statistic set (count, sum, minimum, maximum).
    pub fn add(&mut self, count: f64, sum: f64, minimum: f64, maximum: f64) {
        self.sample_count += count;
        self.sum += sum;
        self.minimum = self.minimum.min(minimum);
        self.maximum = self.maximum.max(maximum);
    }

    pub fn average(&self) -> f64 {
        if self.sample_count > 0.0 {
            self.sum / self.sample_count
        } else {
            0.0
        }
    }

    /// The value of one statistic: `SampleCount`, `Average`, `Sum`, `Minimum`, `Maximum`, or a
    /// percentile such as `p99`; None for an unknown name (or a percentile without data).
    pub fn statistic(&self, name: &str) -> Option<f64> {
        match name {
            "SampleCount" => Some(self.sample_count),
            "Average" => Some(self.average()),
            "Sum" => Some(self.sum),
            "Minimum" => Some(self.minimum),
            "Maximum" => Some(self.maximum),
            p => p
                .strip_prefix('p')
                .and_then(|q| q.parse::<f64>().ok())
                .filter(|q| (0.0..=100.0).contains(q))
                .and_then(|q| self.percentile(q)),
        }
    }

    /// The `p`th percentile (0–100), for latency metrics; for counters, of the per-second values' range.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        match &self.histogram {
            Some(h) => h.percentile(p),
            None => Some(self.minimum + (self.maximum - self.minimum) * p / 100.0),
        }
    }
}

impl MetricsRegistry {
    /// Datapoints of a variant's metric for `[start, end)` in periods of `period` seconds,
    /// oldest first; periods without traffic are left out, as CloudWatch does. `older` are
    /// stored minute rollups; they count only before `cutoff` (a minute boundary from which the
    /// in-memory per-second history is complete), the seconds only from it, so nothing counts twice.
    #[allow(clippy::too_many_arguments)]
    pub fn datapoints(
        &self,
        key: &VariantKey,
        metric: MetricName,
        older: &[SecondSample],
        cutoff: u64,
        start: u64,
        end: u64,
        period: u64,
    ) -> Vec<Datapoint> {
        let recent: Vec<SecondSample> = match self.get(key) {
            // Only the seconds the query covers are copied out from under the lock.
            Some(m) => m
                .history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .seconds
                .iter()
                .filter(|s| s.second >= cutoff.max(start) && s.second < end)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let samples = older.iter().filter(|s| s.second < cutoff).chain(recent.iter());
        aggregate(samples, metric, start, end, period)
    }
}

/// The datapoint of the period `second` falls in, appended to `out` when it is a new period
/// (samples come in time order).
pub fn period_of(out: &mut Vec<Datapoint>, second: u64, start: u64, period: u64, histogram: bool) -> &mut Datapoint {
    let bucket = start + (second - start) / period.max(1) * period.max(1);
    if out.last().map(|d| d.timestamp) != Some(bucket) {
        out.push(Datapoint::empty(bucket, histogram.then(HistogramSnapshot::default)));
    }
    out.last_mut().expect("pushed above")
}

fn aggregate<'a>(samples: impl Iterator<Item = &'a SecondSample>, metric: MetricName, start: u64, end: u64, period: u64) -> Vec<Datapoint> {
    let mut out: Vec<Datapoint> = Vec::new();
    for s in samples.filter(|s| s.second >= start && s.second < end) {
        if let Some(h) = metric.latency(s) {
            let d = period_of(&mut out, s.second, start, period, true);
            if let Some(merged) = d.histogram.as_mut() {
                merged.merge(h);
                d.sample_count = merged.count as f64;
                d.sum = merged.sum as f64;
                d.minimum = merged.min.map_or(0.0, |v| v as f64);
                d.maximum = merged.max.map_or(0.0, |v| v as f64);
            }
        } else if let Some(stat) = metric.utilization() {
            if let Some(u) = &s.utilization {
                let st = stat(u);
                period_of(&mut out, s.second, start, period, false).add(u.samples as f64, st.sum, st.min, st.max);
            }
        } else if matches!(metric, MetricName::ModelCacheHit | MetricName::LoadedModelCount) {
            if let Some((count, sum, min, max)) = metric.statistic_set(s) {
                period_of(&mut out, s.second, start, period, false).add(count, sum, min, max);
            }
        } else if let Some(v) = metric.count(s) {
            period_of(&mut out, s.second, start, period, false).add(1.0, v, v, v);
        }
    }
    out.retain(|d| d.sample_count > 0.0);
    out
}
