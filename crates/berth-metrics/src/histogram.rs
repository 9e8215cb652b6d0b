//! A fixed-bucket latency histogram with atomic counters: recording is a few relaxed atomic adds.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (inclusive) of the buckets, in microseconds; a last bucket holds the rest.
pub const BUCKET_BOUNDS_US: [u64; 20] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000, 30_000_000, 60_000_000,
];
const BUCKETS: usize = BUCKET_BOUNDS_US.len() + 1;

#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
    /// Extremes since the sampler last took them.
    interval_min: AtomicU64,
    interval_max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
            interval_min: AtomicU64::new(u64::MAX),
            interval_max: AtomicU64::new(0),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HistogramSnapshot {
    /// Per-bucket counts (not cumulative), the last one above every bound.
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum: u64,
    /// Smallest and largest values recorded; `None` when nothing was.
    pub min: Option<u64>,
    pub max: Option<u64>,
}

impl Histogram {
    pub fn record(&self, value: u64) {
        let i = BUCKET_BOUNDS_US.partition_point(|&bound| bound < value);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.min.fetch_min(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
        self.interval_min.fetch_min(value, Ordering::Relaxed);
        self.interval_max.fetch_max(value, Ordering::Relaxed);
    }

    /// The smallest and largest values since the last call, resetting them.
    pub(crate) fn take_interval_extremes(&self) -> (Option<u64>, Option<u64>) {
        let min = self.interval_min.swap(u64::MAX, Ordering::Relaxed);
        let max = self.interval_max.swap(0, Ordering::Relaxed);
        ((min != u64::MAX).then_some(min), (min != u64::MAX).then_some(max))
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let count = self.count.load(Ordering::Relaxed);
        let min = self.min.load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets: self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
            count,
            sum: self.sum.load(Ordering::Relaxed),
            min: (min != u64::MAX).then_some(min),
            max: (count > 0).then(|| self.max.load(Ordering::Relaxed)),
        }
    }
}

impl HistogramSnapshot {
    /// The value below which `p` (0–100) percent of recordings fall, interpolated within its
    /// bucket and clamped to the recorded minimum and maximum.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (p / 100.0 * self.count as f64).max(1.0);
        let mut seen = 0.0;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if seen + n as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { BUCKET_BOUNDS_US[i - 1] as f64 };
                let upper = BUCKET_BOUNDS_US.get(i).map_or(self.max.unwrap_or(0) as f64, |&b| b as f64);
                let v = lower + (upper - lower) * ((rank - seen) / n as f64);
                let (lo, hi) = (self.min.unwrap_or(0) as f64, self.max.unwrap_or(u64::MAX) as f64);
                return Some(v.clamp(lo, hi));
            }
            seen += n as f64;
        }
        self.max.map(|m| m as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_their_buckets() {
        let h = Histogram::default();
        for v in [10, 25, 26, 1_000, 99_999_999] {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 2); // <= 25
        assert_eq!(s.buckets[1], 1); // <= 50
        assert_eq!(s.buckets[5], 1); // <= 1000
        assert_eq!(s.buckets[BUCKETS - 1], 1);
        assert_eq!((s.count, s.min, s.max), (5, Some(10), Some(99_999_999)));
    }

    #[test]
    fn percentiles_are_bounded_by_the_data() {
        let h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v);
        }
        let s = h.snapshot();
        let p50 = s.percentile(50.0).unwrap();
        assert!((250.0..=500.0).contains(&p50), "{p50}");
        assert_eq!(s.percentile(100.0), Some(1000.0));
        assert!(s.percentile(0.0).unwrap() >= 1.0);
        assert_eq!(HistogramSnapshot::default().percentile(50.0), None);
    }
}
