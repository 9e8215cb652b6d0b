//! Per-second history of a variant's metrics for the last hour, for CloudWatch-style queries.
//!
//! A sampler calls [`MetricsRegistry::sample`] once a second; it turns the cumulative counters
//! into per-second deltas (so the request path never touches the history).

use crate::histogram::{HistogramSnapshot, BUCKET_BOUNDS_US};
use crate::{VariantMetrics, VariantSnapshot};
use std::collections::VecDeque;

/// Seconds of per-second history kept.
pub const HISTORY_SECONDS: usize = 3600;

/// The first minute boundary from which the per-second history is complete at time `now`.
pub fn seconds_cutoff(now: u64) -> u64 {
    (now.saturating_sub(HISTORY_SECONDS as u64) / 60 + 1) * 60
}

/// What happened in one second (or, for a rollup, one minute).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SecondSample {
    pub second: u64,
    /// The counters and histograms of the interval. Flattened: stored samples keep flat fields.
    #[serde(flatten)]
    pub activity: VariantSnapshot,
    /// Invocations divided by the instances running (summed over the seconds of a rollup), as
    /// SageMaker's InvocationsPerInstance.
    #[serde(default)]
    pub invocations_per_instance: f64,
    /// CPU, memory and disk use of the variant's instances, when they were measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization: Option<Utilization>,
    /// Models loaded on a multi-model variant's instances (LoadedModelCount), one sample a second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_models: Option<Gauge>,
}

/// A level sampled once a second: how many samples, and their statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Gauge {
    pub samples: u64,
    pub stat: Stat,
}

impl Gauge {
    fn of(value: u64) -> Gauge {
        let v = value as f64;
        Gauge { samples: 1, stat: Stat { sum: v, min: v, max: v } }
    }

    fn add(&mut self, other: &Gauge) {
        self.stat = if self.samples == 0 {
            other.stat
        } else {
            Stat { sum: self.stat.sum + other.stat.sum, min: self.stat.min.min(other.stat.min), max: self.stat.max.max(other.stat.max) }
        };
        self.samples += other.samples;
    }
}

/// Count-free statistics of a set of values.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stat {
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

/// The instances' resource use in an interval, as SageMaker's instance metrics (percent): one
/// sample per instance and second. CPU is the sum over cores (up to 100 × vCPUs), memory the
/// resident memory of the instance's processes over the instance type's memory, disk the space
/// used on the file system of berth's data directory.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Utilization {
    pub samples: u64,
    pub cpu: Stat,
    pub memory: Stat,
    pub disk: Stat,
}

/// One instance's resource use at one moment, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceUtilization {
    pub cpu: f64,
    pub memory: f64,
    pub disk: f64,
}

impl Utilization {
    /// The statistics of some instances' measurements; None when there are none.
    pub fn of(instances: &[InstanceUtilization]) -> Option<Utilization> {
        let stat = |f: fn(&InstanceUtilization) -> f64| Stat {
            sum: instances.iter().map(f).sum(),
            min: instances.iter().map(f).fold(f64::INFINITY, f64::min),
            max: instances.iter().map(f).fold(f64::NEG_INFINITY, f64::max),
        };
        (!instances.is_empty()).then(|| Utilization {
            samples: instances.len() as u64,
            cpu: stat(|i| i.cpu),
            memory: stat(|i| i.memory),
            disk: stat(|i| i.disk),
        })
    }

    fn add(&mut self, other: &Utilization) {
        for (a, b) in [(&mut self.cpu, &other.cpu), (&mut self.memory, &other.memory), (&mut self.disk, &other.disk)] {
            if self.samples == 0 {
                *a = *b;
            } else {
                *a = Stat { sum: a.sum + b.sum, min: a.min.min(b.min), max: a.max.max(b.max) };
            }
        }
        self.samples += other.samples;
    }

    /// The average of each statistic over the samples: (cpu, memory, disk).
    pub fn averages(&self) -> (f64, f64, f64) {
        let n = self.samples.max(1) as f64;
        (self.cpu.sum / n, self.memory.sum / n, self.disk.sum / n)
    }
}

#[derive(Debug, Default)]
pub(crate) struct History {
    previous: Option<VariantSnapshot>,
    pub(crate) seconds: VecDeque<SecondSample>,
}

impl History {
    /// Closes `second`; returns its sample when the variant had traffic in it or its instances
    /// were measured.
    pub(crate) fn sample(&mut self, metrics: &VariantMetrics, second: u64, utilization: Option<Utilization>) -> Option<SecondSample> {
        let now = metrics.snapshot();
        let extremes = [
            metrics.model_latency_us.take_interval_extremes(),
            metrics.overhead_latency_us.take_interval_extremes(),
            metrics.model_setup_us.take_interval_extremes(),
            metrics.model_loading_wait_us.take_interval_extremes(),
            metrics.model_downloading_us.take_interval_extremes(),
            metrics.model_loading_us.take_interval_extremes(),
            metrics.model_unloading_us.take_interval_extremes(),
        ];
        let activity = now.delta(&self.previous.take().unwrap_or_default(), extremes);
        let sample = SecondSample {
            second,
            invocations_per_instance: activity.invocations as f64 / metrics.instances().max(1) as f64,
            activity,
            utilization,
            loaded_models: metrics.loaded_models().map(Gauge::of),
        };
        self.previous = Some(now);
        let kept = sample.is_active().then(|| sample.clone());
        if kept.is_some() {
            self.seconds.push_back(sample);
        }
        while self.seconds.front().is_some_and(|s| s.second + HISTORY_SECONDS as u64 <= second) {
            self.seconds.pop_front();
        }
        kept
    }

    /// Adds a second another server of the cluster closed (the invocations it routed) to the
    /// same second here; returns that second as it now stands.
    pub(crate) fn absorb(&mut self, sample: SecondSample) -> SecondSample {
        let at = self.seconds.partition_point(|s| s.second < sample.second);
        match self.seconds.get_mut(at) {
            Some(s) if s.second == sample.second => {
                s.absorb(&sample);
                s.clone()
            }
            _ => {
                self.seconds.insert(at, sample.clone());
                sample
            }
        }
    }

    /// Puts back seconds read from storage after a restart (oldest first).
    pub(crate) fn restore(&mut self, samples: impl IntoIterator<Item = SecondSample>) {
        for s in samples {
            if self.seconds.back().is_none_or(|last| last.second < s.second) {
                self.seconds.push_back(s);
            }
        }
    }
}

impl SecondSample {
    /// Adds another sample's activity to this one (for minute rollups).
    pub fn absorb(&mut self, other: &SecondSample) {
        self.activity.add(&other.activity);
        self.invocations_per_instance += other.invocations_per_instance;
        if let Some(u) = &other.utilization {
            self.utilization.get_or_insert_with(Utilization::default).add(u);
        }
        if let Some(g) = &other.loaded_models {
            self.loaded_models.get_or_insert_with(Gauge::default).add(g);
        }
    }

    /// Whether the sample holds anything: traffic, an instance set up, or measured instances.
    pub fn is_active(&self) -> bool {
        self.activity.is_active() || self.utilization.is_some() || self.loaded_models.is_some()
    }
}

impl VariantSnapshot {
    /// What happened between `prev` and this snapshot; `extremes` are the interval's (min, max)
    /// of model latency, overhead latency and model setup time, which totals cannot give.
    fn delta(&self, prev: &VariantSnapshot, extremes: [(Option<u64>, Option<u64>); 7]) -> VariantSnapshot {
        let [(model_min, model_max), (over_min, over_max), (setup_min, setup_max), wait, download, load, unload] = extremes;
        VariantSnapshot {
            invocations: self.invocations - prev.invocations,
            errors_4xx: self.errors_4xx - prev.errors_4xx,
            errors_5xx: self.errors_5xx - prev.errors_5xx,
            model_errors: self.model_errors - prev.model_errors,
            model_latency_us: delta(&self.model_latency_us, &prev.model_latency_us, model_min, model_max),
            overhead_latency_us: delta(&self.overhead_latency_us, &prev.overhead_latency_us, over_min, over_max),
            model_setup_us: delta(&self.model_setup_us, &prev.model_setup_us, setup_min, setup_max),
            model_loading_wait_us: delta(&self.model_loading_wait_us, &prev.model_loading_wait_us, wait.0, wait.1),
            model_downloading_us: delta(&self.model_downloading_us, &prev.model_downloading_us, download.0, download.1),
            model_loading_us: delta(&self.model_loading_us, &prev.model_loading_us, load.0, load.1),
            model_unloading_us: delta(&self.model_unloading_us, &prev.model_unloading_us, unload.0, unload.1),
            model_cache_lookups: self.model_cache_lookups - prev.model_cache_lookups,
            model_cache_hits: self.model_cache_hits - prev.model_cache_hits,
        }
    }

    /// Adds another interval's activity to this one.
    pub fn add(&mut self, other: &VariantSnapshot) {
        self.invocations += other.invocations;
        self.errors_4xx += other.errors_4xx;
        self.errors_5xx += other.errors_5xx;
        self.model_errors += other.model_errors;
        self.model_latency_us.merge(&other.model_latency_us);
        self.overhead_latency_us.merge(&other.overhead_latency_us);
        self.model_setup_us.merge(&other.model_setup_us);
        self.model_loading_wait_us.merge(&other.model_loading_wait_us);
        self.model_downloading_us.merge(&other.model_downloading_us);
        self.model_loading_us.merge(&other.model_loading_us);
        self.model_unloading_us.merge(&other.model_unloading_us);
        self.model_cache_lookups += other.model_cache_lookups;
        self.model_cache_hits += other.model_cache_hits;
    }

    /// Whether anything happened: traffic, or an instance set up.
    pub fn is_active(&self) -> bool {
        self.invocations > 0 || self.model_setup_us.count > 0 || self.model_unloading_us.count > 0
    }
}

fn delta(now: &HistogramSnapshot, prev: &HistogramSnapshot, min: Option<u64>, max: Option<u64>) -> HistogramSnapshot {
    let buckets = (0..=BUCKET_BOUNDS_US.len())
        .map(|i| now.buckets.get(i).copied().unwrap_or(0) - prev.buckets.get(i).copied().unwrap_or(0))
        .collect();
    let count = now.count - prev.count;
    HistogramSnapshot { buckets, count, sum: now.sum - prev.sum, min: min.filter(|_| count > 0), max: max.filter(|_| count > 0) }
}

impl HistogramSnapshot {
    /// Adds another interval's histogram to this one.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}
