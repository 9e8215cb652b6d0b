//! `constraints.json` as SageMaker's analyzer suggests it from a baseline's statistics: per
//! feature its type, its completeness, whether a number was never negative, and a string's
//! domain where it has few values; and the monitoring configuration executions apply.

use crate::statistics::{InferredType, Statistics};
use serde::{Deserialize, Serialize};

/// A string feature with at most this many distinct values gets them as its domain.
const MAX_DOMAIN: f64 = 20.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraints {
    pub version: f64,
    pub features: Vec<FeatureConstraints>,
    pub monitoring_config: MonitoringConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureConstraints {
    pub name: String,
    pub inferred_type: InferredType,
    pub completeness: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_constraints: Option<NumConstraints>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_constraints: Option<StringConstraints>,
    #[serde(rename = "monitoringConfigOverrides", default, skip_serializing_if = "Option::is_none")]
    pub monitoring_config_overrides: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumConstraints {
    pub is_non_negative: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StringConstraints {
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitoringConfig {
    pub evaluate_constraints: String,
    pub emit_metrics: String,
    pub datatype_check_threshold: f64,
    pub domain_content_threshold: f64,
    pub distribution_constraints: DistributionConstraints,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributionConstraints {
    pub perform_comparison: String,
    pub comparison_threshold: f64,
    pub comparison_method: String,
    pub categorical_comparison_threshold: f64,
    pub categorical_drift_method: String,
}

impl Default for MonitoringConfig {
    /// The analyzer's defaults.
    fn default() -> Self {
        MonitoringConfig {
            evaluate_constraints: "Enabled".into(),
            emit_metrics: "Enabled".into(),
            datatype_check_threshold: 1.0,
            domain_content_threshold: 1.0,
            distribution_constraints: DistributionConstraints {
                perform_comparison: "Enabled".into(),
                comparison_threshold: 0.1,
                comparison_method: "Robust".into(),
                categorical_comparison_threshold: 0.1,
                categorical_drift_method: "LInfinity".into(),
            },
        }
    }
}

/// The drift measure of categorical features (`categorical_drift_method`).
pub fn categorical_drift_method(name: &str) -> Result<String, String> {
    match name {
        "LInfinity" | "ChiSquared" => Ok(name.to_string()),
        other => Err(format!("categorical_drift_method must be LInfinity or ChiSquared, not {other}")),
    }
}

/// The constraints the baseline suggests.
pub fn suggest_constraints(statistics: &Statistics, config: MonitoringConfig) -> Constraints {
    let features = statistics
        .features
        .iter()
        .map(|f| {
            let common = f.common();
            let total = common.num_present + common.num_missing;
            let completeness = if total == 0 { 0.0 } else { common.num_present as f64 / total as f64 };
            let num_constraints = f.numerical_statistics.as_ref().map(|n| NumConstraints { is_non_negative: n.min >= 0.0 });
            let string_constraints =
                f.string_statistics.as_ref().filter(|s| f.inferred_type == InferredType::String && s.distinct_count <= MAX_DOMAIN).map(
                    |s| {
                        let mut domains: Vec<String> = s.distribution.categorical.buckets.iter().map(|c| c.value.clone()).collect();
                        domains.sort();
                        StringConstraints { domains }
                    },
                );
            FeatureConstraints {
                name: f.name.clone(),
                inferred_type: f.inferred_type,
                completeness,
                num_constraints,
                string_constraints,
                monitoring_config_overrides: None,
            }
        })
        .collect();
    Constraints { version: 0.0, features, monitoring_config: config }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DatasetAnalyzer, DatasetFormat};

    #[test]
    fn constraints_follow_the_baseline() {
        let mut a = DatasetAnalyzer::new(DatasetFormat::Csv { header: true });
        a.add_object("d", b"age,temp,colour,id\n30,-1.5,red,a1\n40,2.0,blue,a2\n,3.0,red,a3\n").unwrap();
        let c = suggest_constraints(&a.statistics().unwrap(), MonitoringConfig::default());
        assert_eq!(c.features[0].completeness, 2.0 / 3.0);
        assert_eq!(c.features[0].num_constraints, Some(NumConstraints { is_non_negative: true }));
        assert_eq!(c.features[1].num_constraints, Some(NumConstraints { is_non_negative: false }));
        assert_eq!(c.features[2].string_constraints, Some(StringConstraints { domains: vec!["blue".into(), "red".into()] }));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["monitoring_config"]["distribution_constraints"]["comparison_method"], "Robust");
        assert!(json["features"][0].get("string_constraints").is_none());
        assert_eq!(serde_json::from_value::<Constraints>(json).unwrap(), c, "reads back as written");
        assert!(categorical_drift_method("ChiSquared").is_ok() && categorical_drift_method("Other").is_err());
    }
}
