//! The KLL quantile sketch SageMaker's analyzer writes into `statistics.json` (Deequ's
//! `QuantileNonSample`: compactors whose capacity shrinks by `c` per level, each compaction
//! keeping every other item of the sorted buffer, the starting item alternating between
//! compactions), with its `k` = 2048 and `c` = 0.64, and Deequ's ten equal-width buckets between
//! the column's minimum and maximum, counted by rank.

use serde::{Deserialize, Serialize};

/// SageMaker's analyzer's sketch size and shrinking factor.
pub const SKETCH_SIZE: usize = 2048;
pub const SHRINKING_FACTOR: f64 = 0.64;
/// The buckets `statistics.json` materialises the distribution in (not configurable on AWS).
pub const BUCKETS: usize = 10;

#[derive(Debug, Clone, Default)]
struct Compactor {
    buffer: Vec<f64>,
    compactions: u64,
    offset: usize,
}

impl Compactor {
    /// Half of the buffer's (even-length prefix, sorted) items; an odd last item stays.
    fn compact(&mut self) -> Vec<f64> {
        let items = self.buffer.len();
        let even = items - items % 2;
        if self.compactions % 2 == 1 {
            self.offset = 1 - self.offset;
        }
        let mut sorted: Vec<f64> = self.buffer[..even].to_vec();
        sorted.sort_by(f64::total_cmp);
        let output: Vec<f64> = sorted.iter().skip(self.offset).step_by(2).copied().collect();
        let tail = (items % 2 == 1).then(|| self.buffer[items - 1]);
        self.buffer = tail.into_iter().collect();
        self.compactions += 1;
        output
    }
}

/// A KLL sketch of f64 values.
#[derive(Debug, Clone)]
pub struct Kll {
    k: usize,
    c: f64,
    compactors: Vec<Compactor>,
    /// Items held, and the compactors' total capacity.
    held: usize,
    capacity: usize,
}

impl Default for Kll {
    fn default() -> Self {
        Kll::new(SKETCH_SIZE, SHRINKING_FACTOR)
    }
}

impl Kll {
    pub fn new(k: usize, c: f64) -> Self {
        let mut kll = Kll { k, c, compactors: Vec::new(), held: 0, capacity: 0 };
        kll.expand();
        kll
    }

    fn level_capacity(&self, height: usize) -> usize {
        2 * ((self.k as f64 * self.c.powi(height as i32) / 2.0).ceil() as usize + 1)
    }

    fn expand(&mut self) {
        self.compactors.push(Compactor::default());
        self.capacity = (0..self.compactors.len()).map(|h| self.level_capacity(h)).sum();
    }

    pub fn update(&mut self, value: f64) {
        self.compactors[0].buffer.push(value);
        self.held += 1;
        if self.held > self.capacity {
            self.condense();
        }
    }

    fn condense(&mut self) {
        for height in 0..self.compactors.len() {
            if self.compactors[height].buffer.len() >= self.level_capacity(height) {
                if height + 1 >= self.compactors.len() {
                    self.expand();
                }
                let output = self.compactors[height].compact();
                self.compactors[height + 1].buffer.extend(output);
                self.held = self.compactors.iter().map(|c| c.buffer.len()).sum();
                break;
            }
        }
    }

    /// Each held item with its weight (2 to the power of its level).
    fn weighted(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.compactors.iter().enumerate().flat_map(|(level, c)| c.buffer.iter().map(move |v| (*v, 1u64 << level)))
    }

    /// The weight of the items at most `value` (inclusive rank).
    pub fn rank(&self, value: f64) -> u64 {
        self.weighted().filter(|(v, _)| *v <= value).map(|(_, w)| w).sum()
    }

    /// The weight of the items below `value` (exclusive rank).
    pub fn rank_exclusive(&self, value: f64) -> u64 {
        self.weighted().filter(|(v, _)| *v < value).map(|(_, w)| w).sum()
    }

    /// The value at quantile `q` (0..=1) of the sketch.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let mut items: Vec<(f64, u64)> = self.weighted().collect();
        if items.is_empty() {
            return None;
        }
        items.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: u64 = items.iter().map(|(_, w)| w).sum();
        let target = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (v, w) in &items {
            seen += w;
            if seen >= target {
                return Some(*v);
            }
        }
        items.last().map(|(v, _)| *v)
    }

    /// The distribution as `statistics.json` has it: equal-width buckets between `min` and
    /// `max` counted by rank, the sketch's parameters, and its compactors' items.
    pub fn distribution(&self, min: f64, max: f64) -> KllDistribution {
        let buckets = (0..BUCKETS)
            .map(|i| {
                let lower_bound = min + (max - min) * i as f64 / BUCKETS as f64;
                // The last bound is the maximum itself (computed, it may round below it).
                let upper_bound = if i == BUCKETS - 1 { max } else { min + (max - min) * (i + 1) as f64 / BUCKETS as f64 };
                let below_upper = if i == BUCKETS - 1 { self.rank(upper_bound) } else { self.rank_exclusive(upper_bound) };
                KllBucket { lower_bound, upper_bound, count: below_upper.saturating_sub(self.rank_exclusive(lower_bound)) as f64 }
            })
            .collect();
        KllDistribution {
            buckets,
            sketch: KllSketch {
                parameters: KllParameters { c: self.c, k: self.k as f64 },
                data: self.compactors.iter().map(|c| c.buffer.clone()).collect(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KllDistribution {
    pub buckets: Vec<KllBucket>,
    pub sketch: KllSketch,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KllBucket {
    pub lower_bound: f64,
    pub upper_bound: f64,
    pub count: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KllSketch {
    pub parameters: KllParameters,
    pub data: Vec<Vec<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KllParameters {
    pub c: f64,
    pub k: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_column_is_held_whole_and_bucketed_exactly() {
        let mut kll = Kll::default();
        for v in [1.0, 2.0, 2.0, 3.0, 10.0] {
            kll.update(v);
        }
        let d = kll.distribution(1.0, 10.0);
        assert_eq!(d.sketch.data, vec![vec![1.0, 2.0, 2.0, 3.0, 10.0]]);
        assert_eq!(d.buckets.len(), 10);
        assert_eq!(d.buckets.iter().map(|b| b.count).sum::<f64>(), 5.0);
        assert_eq!(d.buckets[0].count, 1.0, "[1, 1.9): 1");
        assert_eq!(d.buckets[1].count, 2.0, "[1.9, 2.8): 2, 2");
        assert_eq!(d.buckets[2].count, 1.0, "[2.8, 3.7): 3");
        assert_eq!(d.buckets[9].count, 1.0, "the last bucket holds the maximum");
        assert_eq!((d.sketch.parameters.c, d.sketch.parameters.k), (0.64, 2048.0));
    }

    #[test]
    fn a_million_values_keep_within_the_sketchs_rank_error_in_bounded_memory() {
        let mut kll = Kll::default();
        let n = 1_000_000u64;
        // A permutation of 0..n (multiplication by a unit modulo n), so order is not sorted.
        for i in 0..n {
            kll.update(((i * 7_919) % n) as f64);
        }
        let held: usize = kll.compactors.iter().map(|c| c.buffer.len()).sum();
        assert!(held < 3 * SKETCH_SIZE * 2, "held {held}");
        let total: u64 = kll.weighted().map(|(_, w)| w).sum();
        assert!(total.abs_diff(n) <= n / 100, "weights sum to about n: {total}");
        for q in [0.1, 0.25, 0.5, 0.75, 0.9] {
            let got = kll.quantile(q).unwrap();
            let want = q * n as f64;
            assert!((got - want).abs() <= 0.01 * n as f64, "q {q}: {got} vs {want}");
        }
    }
}
