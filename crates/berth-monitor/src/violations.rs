//! `constraint_violations.json`: a monitoring execution's statistics checked against the
//! baseline's constraints and statistics, with the checks SageMaker's analyzer names —
//! `missing_column_check`, `extra_column_check`, `data_type_check`, `completeness_check`,
//! `baseline_drift_check` and `categorical_values_check` — and each feature's drift distance
//! (the `feature_baseline_drift_<feature>` metric).
//!
//! Distances are Deequ's: for numbers the L∞ distance between the two KLL sketches' CDFs, for
//! categories between the two value frequencies; `Robust` (the default) subtracts the
//! two-sample Kolmogorov–Smirnov allowance `1.8 * sqrt((n + m) / (n * m))` for the samples'
//! sizes, `Simple` does not. With `categorical_drift_method` `ChiSquared`, a category feature's
//! measure is Deequ's chi-squared test instead: its p-value (`Robust`), a violation below the
//! threshold, or its statistic (`Simple`), a violation above.

use crate::constraints::Constraints;
use crate::statistics::{FeatureStatistics, InferredType, Statistics};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Deequ's c(α) for α = 0.003.
const C_ALPHA: f64 = 1.8;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violations {
    pub violations: Vec<Violation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub feature_name: String,
    pub constraint_check_type: String,
    pub description: String,
}

/// A feature's distance from its baseline distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    pub feature: String,
    pub distance: f64,
}

/// What the checks found.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub violations: Violations,
    pub drift: Vec<Drift>,
}

/// Checks `current` against the baseline.
pub fn evaluate(current: &Statistics, constraints: &Constraints, baseline: Option<&Statistics>) -> Evaluation {
    let config = &constraints.monitoring_config;
    let mut violations = Vec::new();
    let mut violation = |feature: &str, check: &str, description: String| {
        violations.push(Violation { feature_name: feature.to_string(), constraint_check_type: check.into(), description });
    };
    let current_by_name: BTreeMap<&str, &FeatureStatistics> = current.features.iter().map(|f| (f.name.as_str(), f)).collect();
    let expected: BTreeSet<&str> = constraints.features.iter().map(|f| f.name.as_str()).collect();
    let (columns, baseline_columns) = (current.features.len(), constraints.features.len());
    for f in &constraints.features {
        if !current_by_name.contains_key(f.name.as_str()) {
            violation(
                &f.name,
                "missing_column_check",
                format!("There are missing columns in current dataset. Number of columns in current dataset: {columns}, Number of columns in baseline constraints: {baseline_columns}"),
            );
        }
    }
    for f in &current.features {
        if !expected.contains(f.name.as_str()) {
            violation(
                &f.name,
                "extra_column_check",
                format!("There are extra columns in current dataset. Number of columns in current dataset: {columns}, Number of columns in baseline constraints: {baseline_columns}"),
            );
        }
    }
    let evaluate_constraints = config.evaluate_constraints != "Disabled";
    let compare = config.distribution_constraints.perform_comparison != "Disabled";
    let robust = config.distribution_constraints.comparison_method != "Simple";
    let chi_squared = config.distribution_constraints.categorical_drift_method == "ChiSquared";
    let baseline_by_name: BTreeMap<&str, &FeatureStatistics> =
        baseline.map(|b| b.features.iter().map(|f| (f.name.as_str(), f)).collect()).unwrap_or_default();
    let mut drift = Vec::new();
    for expected in &constraints.features {
        let Some(observed) = current_by_name.get(expected.name.as_str()) else { continue };
        let name = expected.name.as_str();
        let common = observed.common();
        let total = common.num_present + common.num_missing;
        if evaluate_constraints && !type_fits(expected.inferred_type, observed.inferred_type) && common.num_present > 0 {
            violation(
                name,
                "data_type_check",
                format!(
                    "Data type match requirement is not met. Expected data type: {:?}, Observed data type: {:?}",
                    expected.inferred_type, observed.inferred_type
                ),
            );
        }
        let completeness = if total == 0 { 0.0 } else { common.num_present as f64 / total as f64 };
        if evaluate_constraints && completeness < expected.completeness {
            violation(
                name,
                "completeness_check",
                format!("Data completeness requirement is not met. Expected: {}, Observed: {completeness}", expected.completeness),
            );
        }
        if let (true, Some(domain), Some(strings)) = (evaluate_constraints, &expected.string_constraints, &observed.string_statistics) {
            let counted: u64 = strings.distribution.categorical.buckets.iter().map(|c| c.count).sum();
            let inside: u64 =
                strings.distribution.categorical.buckets.iter().filter(|c| domain.domains.contains(&c.value)).map(|c| c.count).sum();
            let share = if counted == 0 { 1.0 } else { inside as f64 / counted as f64 };
            if share < config.domain_content_threshold {
                violation(
                    name,
                    "categorical_values_check",
                    format!(
                        "Categorical value match requirement is not met. Expected: {} of values in the baseline domain, Observed: {share}",
                        config.domain_content_threshold
                    ),
                );
            }
        }
        let Some(base) = baseline_by_name.get(name) else { continue };
        let distance =
            match (&base.numerical_statistics, &observed.numerical_statistics, &base.string_statistics, &observed.string_statistics) {
                (Some(b), Some(o), _, _) => {
                    numerical_distance(&weighted(&b.distribution.kll.sketch.data), &weighted(&o.distribution.kll.sketch.data), robust)
                }
                (_, _, Some(b), Some(o)) if chi_squared => {
                    chi_squared_test(&o.distribution.categorical.buckets, &b.distribution.categorical.buckets, robust)
                }
                (_, _, Some(b), Some(o)) => {
                    categorical_distance(&b.distribution.categorical.buckets, &o.distribution.categorical.buckets, robust)
                }
                _ => None,
            };
        let Some(distance) = distance else { continue };
        drift.push(Drift { feature: name.to_string(), distance });
        let categorical = base.string_statistics.is_some() && observed.string_statistics.is_some();
        let threshold = match categorical {
            true => config.distribution_constraints.categorical_comparison_threshold,
            false => config.distribution_constraints.comparison_threshold,
        };
        // A chi-squared test's p-value (Robust) drifts when it is below the threshold: the
        // distributions differ beyond chance. Distances and the statistic (Simple), above it.
        let drifted = match (categorical && chi_squared, robust) {
            (true, true) => distance < threshold,
            _ => distance > threshold,
        };
        if compare && drifted {
            let description = match (categorical && chi_squared, robust) {
                (true, true) => format!("Baseline drift chi-squared test p-value: {distance} is below threshold: {threshold}"),
                _ => format!("Baseline drift distance: {distance} exceeds threshold: {threshold}"),
            };
            violation(name, "baseline_drift_check", description);
        }
    }
    Evaluation { violations: Violations { violations }, drift }
}

/// Captured CSV has no header: its features (`_c0`, `_c1`, …) take the baseline's names by
/// position. Features past the baseline's keep their positional names (extra columns).
pub fn name_by_position(current: &mut Statistics, constraints: &Constraints) {
    let positional = current.features.iter().enumerate().all(|(i, f)| f.name == format!("_c{i}"));
    let baseline_positional = constraints.features.iter().enumerate().all(|(i, f)| f.name == format!("_c{i}"));
    if !positional || baseline_positional {
        return;
    }
    for (feature, expected) in current.features.iter_mut().zip(&constraints.features) {
        feature.name = expected.name.clone();
    }
}

/// Whether values of type `observed` meet a baseline of type `expected` (integers are
/// fractional numbers; anything is a string).
fn type_fits(expected: InferredType, observed: InferredType) -> bool {
    match expected {
        InferredType::String | InferredType::Unknown => true,
        InferredType::Fractional => matches!(observed, InferredType::Fractional | InferredType::Integral | InferredType::Unknown),
        InferredType::Integral => matches!(observed, InferredType::Integral | InferredType::Unknown),
    }
}

/// A KLL sketch's items with their weights (an item of level `i` stands for 2^i values), sorted.
fn weighted(levels: &[Vec<f64>]) -> Vec<(f64, u64)> {
    let mut items: Vec<(f64, u64)> =
        levels.iter().enumerate().flat_map(|(level, items)| items.iter().map(move |v| (*v, 1u64 << level.min(62)))).collect();
    items.sort_by(|a, b| a.0.total_cmp(&b.0));
    items
}

/// The L∞ distance between two weighted samples' CDFs, evaluated at every item of either.
fn numerical_distance(a: &[(f64, u64)], b: &[(f64, u64)], robust: bool) -> Option<f64> {
    let (n, m) = (a.iter().map(|x| x.1).sum::<u64>() as f64, b.iter().map(|x| x.1).sum::<u64>() as f64);
    if n == 0.0 || m == 0.0 {
        return None;
    }
    let (mut i, mut j, mut below_a, mut below_b, mut largest) = (0, 0, 0u64, 0u64, 0.0f64);
    while i < a.len() || j < b.len() {
        // The next value of either, and every item of both at most it.
        let next = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.0.min(y.0),
            (Some(x), None) => x.0,
            (None, Some(y)) => y.0,
            (None, None) => break,
        };
        while a.get(i).is_some_and(|x| x.0 <= next) {
            below_a += a[i].1;
            i += 1;
        }
        while b.get(j).is_some_and(|y| y.0 <= next) {
            below_b += b[j].1;
            j += 1;
        }
        largest = largest.max((below_a as f64 / n - below_b as f64 / m).abs());
    }
    Some(select(largest, n, m, robust))
}

/// The L∞ distance between two categorical frequency distributions.
fn categorical_distance(a: &[crate::statistics::Category], b: &[crate::statistics::Category], robust: bool) -> Option<f64> {
    let (n, m) = (a.iter().map(|c| c.count).sum::<u64>() as f64, b.iter().map(|c| c.count).sum::<u64>() as f64);
    if n == 0.0 || m == 0.0 {
        return None;
    }
    let share = |list: &[crate::statistics::Category], value: &str, total: f64| {
        list.iter().find(|c| c.value == value).map_or(0.0, |c| c.count as f64 / total)
    };
    let values: BTreeSet<&str> = a.iter().chain(b).map(|c| c.value.as_str()).collect();
    let largest = values.iter().map(|v| (share(a, v, n) - share(b, v, m)).abs()).fold(0.0, f64::max);
    Some(select(largest, n, m, robust))
}

/// Deequ's chi-squared test of the observed category counts against the baseline's (scaled to
/// the observed total, over the baseline's categories): categories whose expected counts are
/// too small are merged, smallest first, until no more than 20% are below 5 (2 categories: none
/// below 10); with fewer than two left there is no test. Robust gives the p-value, Simple the
/// statistic.
fn chi_squared_test(observed: &[crate::statistics::Category], baseline: &[crate::statistics::Category], robust: bool) -> Option<f64> {
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    let count = |list: &[crate::statistics::Category], value: &str| list.iter().find(|c| c.value == value).map_or(0.0, |c| c.count as f64);
    let observed_total: f64 = baseline.iter().map(|c| count(observed, &c.value)).sum();
    let baseline_total: f64 = baseline.iter().map(|c| c.count as f64).sum();
    if baseline_total == 0.0 {
        return None;
    }
    // (observed, expected) per baseline category.
    let mut cells: Vec<(f64, f64)> =
        baseline.iter().map(|c| (count(observed, &c.value), c.count as f64 / baseline_total * observed_total)).collect();
    while cells.len() >= 2 {
        let (floor, allowed) = if cells.len() > 2 { (5.0, (0.2 * cells.len() as f64) as usize) } else { (10.0, 0) };
        if cells.iter().filter(|(_, e)| *e < floor).count() <= allowed {
            break;
        }
        cells.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (o, e) = cells.remove(0);
        cells[0] = (cells[0].0 + o, cells[0].1 + e);
    }
    if cells.len() < 2 || cells.iter().any(|(_, e)| *e <= 0.0) {
        return None;
    }
    let statistic: f64 = cells.iter().map(|(o, e)| (o - e).powi(2) / e).sum();
    if !robust {
        return Some(statistic);
    }
    let distribution = ChiSquared::new((cells.len() - 1) as f64).ok()?;
    Some(distribution.sf(statistic))
}

fn select(simple: f64, n: f64, m: f64, robust: bool) -> f64 {
    match robust {
        true => (simple - C_ALPHA * ((n + m) / (n * m)).sqrt()).max(0.0),
        false => simple,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statistics::Category;
    use crate::{suggest_constraints, DatasetAnalyzer, DatasetFormat, MonitoringConfig};

    fn stats(csv: &str) -> Statistics {
        let mut a = DatasetAnalyzer::new(DatasetFormat::Csv { header: true });
        a.add_object("d", csv.as_bytes()).unwrap();
        a.statistics().unwrap()
    }

    fn csv(rows: impl Iterator<Item = (f64, &'static str)>) -> String {
        let mut out = String::from("x,colour\n");
        for (x, c) in rows {
            out += &format!("{x},{c}\n");
        }
        out
    }

    #[test]
    fn the_same_distribution_passes_and_a_shifted_one_drifts() {
        let colours = ["red", "green", "blue"];
        let base = stats(&csv((0..3000).map(|i| ((i % 1000) as f64 / 10.0, colours[i % 3]))));
        let constraints = suggest_constraints(&base, MonitoringConfig::default());
        let same = stats(&csv((0..1500).map(|i| (((i * 7) % 1000) as f64 / 10.0, colours[(i + 1) % 3]))));
        let e = evaluate(&same, &constraints, Some(&base));
        assert_eq!(e.violations.violations, vec![], "{:?}", e.drift);
        assert!(e.drift.iter().all(|d| d.distance < 0.05), "{:?}", e.drift);

        let shifted = stats(&csv((0..1500).map(|i| (50.0 + (i % 1000) as f64 / 10.0, "red"))));
        let e = evaluate(&shifted, &constraints, Some(&base));
        let checks: Vec<(&str, &str)> =
            e.violations.violations.iter().map(|v| (v.feature_name.as_str(), v.constraint_check_type.as_str())).collect();
        assert_eq!(checks, [("x", "baseline_drift_check"), ("colour", "baseline_drift_check")]);
        let x = e.drift.iter().find(|d| d.feature == "x").unwrap().distance;
        // CDFs half a range apart: 0.5, less the allowance for 3000 and 1500 values.
        let allowance = 1.8 * ((3000.0 + 1500.0) / (3000.0 * 1500.0f64)).sqrt();
        assert!((x - (0.5 - allowance)).abs() < 0.02, "{x}");
        let simple = Constraints {
            monitoring_config: MonitoringConfig {
                distribution_constraints: crate::constraints::DistributionConstraints {
                    comparison_method: "Simple".into(),
                    ..MonitoringConfig::default().distribution_constraints
                },
                ..MonitoringConfig::default()
            },
            ..constraints.clone()
        };
        let x_simple = evaluate(&shifted, &simple, Some(&base)).drift.iter().find(|d| d.feature == "x").unwrap().distance;
        assert!((x_simple - 0.5).abs() < 0.02, "{x_simple}");
    }

    #[test]
    fn headerless_captures_take_the_baselines_names_by_position() {
        let base = stats("age,colour\n30,red\n");
        let constraints = suggest_constraints(&base, MonitoringConfig::default());
        let mut a = DatasetAnalyzer::new(DatasetFormat::Csv { header: false });
        a.add_object("d", b"31,blue,extra\n").unwrap();
        let mut current = a.statistics().unwrap();
        name_by_position(&mut current, &constraints);
        let names: Vec<&str> = current.features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["age", "colour", "_c2"]);
        let checks: Vec<String> =
            evaluate(&current, &constraints, Some(&base)).violations.violations.into_iter().map(|v| v.constraint_check_type).collect();
        assert!(checks.contains(&"extra_column_check".to_string()), "{checks:?}");
    }

    #[test]
    fn chi_squared_gives_deequs_p_value_and_drifts_below_the_threshold() {
        let cats = |counts: &[(&str, u64)]| counts.iter().map(|(v, c)| Category { value: v.to_string(), count: *c }).collect::<Vec<_>>();
        let baseline = cats(&[("a", 400), ("b", 400), ("c", 200)]);
        // Observed 30/50/20 against an expected 40/40/20: statistic 5, two degrees of freedom,
        // p-value e^(-5/2).
        let observed = cats(&[("a", 30), ("b", 50), ("c", 20)]);
        assert!((chi_squared_test(&observed, &baseline, false).unwrap() - 5.0).abs() < 1e-12);
        assert!((chi_squared_test(&observed, &baseline, true).unwrap() - (-2.5_f64).exp()).abs() < 1e-9);
        // A category with a tiny expected count is merged into the next smallest; one left is no test.
        let merged = chi_squared_test(&cats(&[("a", 30), ("b", 50), ("c", 1)]), &cats(&[("a", 400), ("b", 400), ("c", 2)]), false);
        assert!(merged.is_some());
        assert_eq!(chi_squared_test(&observed, &cats(&[("a", 10)]), true), None);

        let mut rng = fastrand::Rng::with_seed(3);
        let base = stats(&csv((0..2000).map(|_| (rng.f64(), ["red", "green", "blue"][rng.usize(..3)]))));
        let mut constraints = suggest_constraints(&base, MonitoringConfig::default());
        constraints.monitoring_config.distribution_constraints.categorical_drift_method = "ChiSquared".into();
        // A p-value threshold: the share of same-distribution windows flagged.
        constraints.monitoring_config.distribution_constraints.categorical_comparison_threshold = 0.001;
        let same = stats(&csv((0..500).map(|_| (rng.f64(), ["red", "green", "blue"][rng.usize(..3)]))));
        let e = evaluate(&same, &constraints, Some(&base));
        assert!(e.violations.violations.is_empty(), "{e:?}");
        let skewed = stats(&csv((0..500).map(|i| (rng.f64(), if i % 5 == 0 { "green" } else { "red" }))));
        let e = evaluate(&skewed, &constraints, Some(&base));
        let drifted: Vec<&Violation> =
            e.violations.violations.iter().filter(|v| v.constraint_check_type == "baseline_drift_check").collect();
        assert_eq!(drifted.len(), 1, "{e:?}");
        assert!(drifted[0].feature_name == "colour" && drifted[0].description.contains("p-value"), "{drifted:?}");
        assert!(e.drift.iter().find(|d| d.feature == "colour").unwrap().distance < 1e-6, "the p-value of a skewed sample is tiny");
    }

    #[test]
    fn columns_types_completeness_and_domains_are_checked() {
        let base = stats("a,b,c\n1,x,red\n2,y,blue\n3,z,red\n");
        let constraints = suggest_constraints(&base, MonitoringConfig::default());
        let current = stats("a,c,d\n1.5,green,7\n,red,8\n");
        let e = evaluate(&current, &constraints, None);
        let mut checks: Vec<(String, String)> =
            e.violations.violations.iter().map(|v| (v.feature_name.clone(), v.constraint_check_type.clone())).collect();
        checks.sort();
        assert_eq!(
            checks,
            [
                ("a".to_string(), "completeness_check".to_string()),
                ("a".into(), "data_type_check".into()),
                ("b".into(), "missing_column_check".into()),
                ("c".into(), "categorical_values_check".into()),
                ("d".into(), "extra_column_check".into()),
            ]
        );
        let json = serde_json::to_value(&e.violations).unwrap();
        assert_eq!(json["violations"][0]["feature_name"], e.violations.violations[0].feature_name);
    }
}
