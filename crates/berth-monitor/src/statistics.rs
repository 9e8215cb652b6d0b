//! `statistics.json` as SageMaker's analyzer writes it: the dataset's item count, and per
//! feature its inferred type (`Integral`, `Fractional`, `String`, `Unknown`) and statistics —
//! present and missing counts, and for numbers the mean, sum, population standard deviation,
//! minimum, maximum and KLL distribution; for strings the distinct count and each value's count.

use crate::kll::{Kll, KllDistribution};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Distinct values a column keeps counts of; past this its distinct count is a lower bound.
const MAX_DISTINCT: usize = 100_000;
/// Values a string feature's categorical distribution lists (the most frequent).
const MAX_CATEGORIES: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statistics {
    pub version: f64,
    pub dataset: DatasetStatistics,
    pub features: Vec<FeatureStatistics>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetStatistics {
    pub item_count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InferredType {
    Integral,
    Fractional,
    String,
    Unknown,
}

impl InferredType {
    pub fn is_numeric(self) -> bool {
        matches!(self, InferredType::Integral | InferredType::Fractional)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStatistics {
    pub name: String,
    pub inferred_type: InferredType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerical_statistics: Option<NumericalStatistics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_statistics: Option<StringStatistics>,
}

impl FeatureStatistics {
    pub fn common(&self) -> Common {
        match (&self.numerical_statistics, &self.string_statistics) {
            (Some(n), _) => n.common,
            (_, Some(s)) => s.common,
            _ => Common { num_present: 0, num_missing: 0 },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Common {
    pub num_present: u64,
    pub num_missing: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericalStatistics {
    pub common: Common,
    pub mean: f64,
    pub sum: f64,
    pub std_dev: f64,
    pub min: f64,
    pub max: f64,
    pub distribution: NumericalDistribution,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericalDistribution {
    pub kll: KllDistribution,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StringStatistics {
    pub common: Common,
    pub distinct_count: f64,
    pub distribution: StringDistribution,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StringDistribution {
    pub categorical: Categorical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Categorical {
    pub buckets: Vec<Category>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    pub value: String,
    pub count: u64,
}

/// A value of a dataset's cell, as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Missing,
    Integral(f64, &'a str),
    Fractional(f64, &'a str),
    /// Text that is not a number (and booleans).
    Text(&'a str),
}

impl<'a> Cell<'a> {
    /// A CSV field as SageMaker's analyzer types it: empty is missing; an optional sign and
    /// digits is integral; digits with a decimal point or an exponent are fractional.
    pub fn of_text(text: &'a str) -> Cell<'a> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Cell::Missing;
        }
        let digits = trimmed.strip_prefix(['-', '+']).unwrap_or(trimmed);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(v) = trimmed.parse::<f64>() {
                return Cell::Integral(v, text);
            }
        }
        let numeric_chars = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
        match trimmed.parse::<f64>() {
            Ok(v) if numeric_chars && v.is_finite() && digits.bytes().any(|b| b.is_ascii_digit()) => Cell::Fractional(v, text),
            _ => Cell::Text(text),
        }
    }
}

/// What one column has seen.
#[derive(Debug, Default)]
pub(crate) struct ColumnAccumulator {
    missing: u64,
    integral: u64,
    fractional: u64,
    text: u64,
    sum: f64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    kll: Option<Kll>,
    counts: HashMap<String, u64>,
    overflowed: bool,
}

impl ColumnAccumulator {
    pub(crate) fn add(&mut self, cell: Cell<'_>) {
        let (number, raw) = match cell {
            Cell::Missing => {
                self.missing += 1;
                return;
            }
            Cell::Integral(v, raw) => {
                self.integral += 1;
                (Some(v), raw)
            }
            Cell::Fractional(v, raw) => {
                self.fractional += 1;
                (Some(v), raw)
            }
            Cell::Text(raw) => {
                self.text += 1;
                (None, raw)
            }
        };
        if let Some(v) = number {
            let n = (self.integral + self.fractional) as f64;
            if n == 1.0 {
                (self.min, self.max) = (v, v);
            }
            self.min = self.min.min(v);
            self.max = self.max.max(v);
            self.sum += v;
            // Welford's update: the standard deviation without a second pass.
            let delta = v - self.mean;
            self.mean += delta / n;
            self.m2 += delta * (v - self.mean);
            self.kll.get_or_insert_with(Kll::default).update(v);
        }
        let room = self.counts.len() < MAX_DISTINCT;
        match self.counts.get_mut(raw) {
            Some(c) => *c += 1,
            None if room => {
                self.counts.insert(raw.to_string(), 1);
            }
            None => self.overflowed = true,
        }
    }

    pub(crate) fn present(&self) -> u64 {
        self.integral + self.fractional + self.text
    }

    pub(crate) fn inferred_type(&self) -> InferredType {
        if self.text > 0 {
            InferredType::String
        } else if self.fractional > 0 {
            InferredType::Fractional
        } else if self.integral > 0 {
            InferredType::Integral
        } else {
            InferredType::Unknown
        }
    }

    pub(crate) fn statistics(&self, name: &str) -> FeatureStatistics {
        let common = Common { num_present: self.present(), num_missing: self.missing };
        let inferred_type = self.inferred_type();
        let mut feature = FeatureStatistics { name: name.to_string(), inferred_type, numerical_statistics: None, string_statistics: None };
        if inferred_type.is_numeric() {
            let n = self.present() as f64;
            let kll = self.kll.clone().unwrap_or_default();
            feature.numerical_statistics = Some(NumericalStatistics {
                common,
                mean: self.sum / n,
                sum: self.sum,
                std_dev: (self.m2 / n).sqrt(),
                min: self.min,
                max: self.max,
                distribution: NumericalDistribution { kll: kll.distribution(self.min, self.max) },
            });
        } else {
            let mut categories: Vec<Category> =
                self.counts.iter().map(|(value, count)| Category { value: value.clone(), count: *count }).collect();
            categories.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            categories.truncate(MAX_CATEGORIES);
            feature.string_statistics = Some(StringStatistics {
                common,
                distinct_count: self.counts.len() as f64,
                distribution: StringDistribution { categorical: Categorical { buckets: categories } },
            });
        }
        feature
    }

    /// Whether the distinct values were too many to count them all.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_typed_as_the_analyzer_types_them() {
        assert_eq!(Cell::of_text(""), Cell::Missing);
        assert_eq!(Cell::of_text("  "), Cell::Missing);
        assert_eq!(Cell::of_text("42"), Cell::Integral(42.0, "42"));
        assert_eq!(Cell::of_text("-7"), Cell::Integral(-7.0, "-7"));
        assert_eq!(Cell::of_text("3.5"), Cell::Fractional(3.5, "3.5"));
        assert_eq!(Cell::of_text("1e-05"), Cell::Fractional(1e-5, "1e-05"));
        assert_eq!(Cell::of_text(".5"), Cell::Fractional(0.5, ".5"));
        for text in ["abc", "true", "NaN", "inf", "1.2.3", "e", "-", "12abc", "0x10"] {
            assert_eq!(Cell::of_text(text), Cell::Text(text), "{text}");
        }
    }

    #[test]
    fn a_column_with_one_word_among_numbers_is_a_string_column() {
        let mut c = ColumnAccumulator::default();
        for t in ["1", "2", "x", "", "2"] {
            c.add(Cell::of_text(t));
        }
        let f = c.statistics("f");
        assert_eq!(f.inferred_type, InferredType::String);
        let s = f.string_statistics.unwrap();
        assert_eq!((s.common.num_present, s.common.num_missing, s.distinct_count), (4, 1, 3.0));
        assert_eq!(s.distribution.categorical.buckets[0], Category { value: "2".into(), count: 2 });
    }

    #[test]
    fn numbers_get_exact_moments() {
        let mut c = ColumnAccumulator::default();
        for t in ["1", "2", "3", "4", "", "10"] {
            c.add(Cell::of_text(t));
        }
        let f = c.statistics("f");
        assert_eq!(f.inferred_type, InferredType::Integral);
        let n = f.numerical_statistics.unwrap();
        assert_eq!((n.common.num_present, n.common.num_missing), (5, 1));
        assert_eq!((n.sum, n.mean, n.min, n.max), (20.0, 4.0, 1.0, 10.0));
        // Population standard deviation of 1, 2, 3, 4, 10: sqrt(50 / 5).
        assert!((n.std_dev - 10f64.sqrt()).abs() < 1e-12);
    }
}
