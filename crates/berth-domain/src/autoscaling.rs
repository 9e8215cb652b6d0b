//! Application Auto Scaling for SageMaker variants (`ResourceId: endpoint/<name>/variant/<name>`,
//! `ScalableDimension: sagemaker:variant:DesiredInstanceCount`): scalable targets, target
//! tracking and step scaling policies, and the arithmetic that decides a new instance count.

use crate::{DomainError, Timestamp};
use serde::{Deserialize, Serialize};

pub const SCALABLE_DIMENSION: &str = "sagemaker:variant:DesiredInstanceCount";
/// An inference component's copies: `ResourceId: inference-component/<name>`.
pub const COMPONENT_SCALABLE_DIMENSION: &str = "sagemaker:inference-component:DesiredCopyCount";

/// What a scalable target scales.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScalableResource {
    /// A variant's instance count.
    Variant { endpoint: String, variant: String },
    /// An inference component's copy count.
    Component(String),
}

impl ScalableResource {
    /// `endpoint/<e>/variant/<v>` or `inference-component/<name>`.
    pub fn parse(id: &str) -> Result<ScalableResource, DomainError> {
        if let Some(name) = id.strip_prefix("inference-component/").filter(|n| !n.is_empty() && !n.contains('/')) {
            return Ok(ScalableResource::Component(name.to_string()));
        }
        parse_resource_id(id).map(|(endpoint, variant)| ScalableResource::Variant { endpoint, variant })
    }

    pub fn dimension(&self) -> &'static str {
        match self {
            ScalableResource::Variant { .. } => SCALABLE_DIMENSION,
            ScalableResource::Component(_) => COMPONENT_SCALABLE_DIMENSION,
        }
    }

    /// The dimension of a resource id berth stored (valid when stored).
    pub fn dimension_of(id: &str) -> &'static str {
        ScalableResource::parse(id).map_or(SCALABLE_DIMENSION, |r| r.dimension())
    }
}

/// `endpoint/<endpoint>/variant/<variant>` → (endpoint, variant).
pub fn parse_resource_id(id: &str) -> Result<(String, String), DomainError> {
    let parts: Vec<&str> = id.split('/').collect();
    match parts.as_slice() {
        ["endpoint", e, "variant", v] if !e.is_empty() && !v.is_empty() => Ok((e.to_string(), v.to_string())),
        _ => Err(DomainError::Validation(format!(
            "Unsupported resource ID '{id}': SageMaker variants are named endpoint/<endpoint-name>/variant/<variant-name>, inference components inference-component/<name>."
        ))),
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspended {
    pub scale_in: bool,
    pub scale_out: bool,
    pub scheduled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalableTarget {
    pub resource_id: String,
    pub arn: String,
    pub min: u32,
    pub max: u32,
    pub role_arn: String,
    pub created: Timestamp,
    pub suspended: Suspended,
}

/// What a target tracking policy keeps at its target value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TrackedMetric {
    /// SageMakerVariantInvocationsPerInstance: invocations per instance per minute.
    InvocationsPerInstance,
    /// SageMakerInferenceComponentInvocationsPerCopy: invocations per copy per minute.
    #[serde(rename = "InvocationsPerCopy")]
    InvocationsPerCopy,
    Custom {
        namespace: String,
        metric_name: String,
        dimensions: Vec<(String, String)>,
        statistic: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetTracking {
    pub target: f64,
    pub metric: TrackedMetric,
    pub scale_out_cooldown_secs: u32,
    pub scale_in_cooldown_secs: u32,
    pub disable_scale_in: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdjustmentType {
    ChangeInCapacity,
    PercentChangeInCapacity,
    ExactCapacity,
}

impl AdjustmentType {
    /// Every adjustment type, with its name in Application Auto Scaling's API.
    pub const NAMES: [(AdjustmentType, &'static str); 3] = [
        (AdjustmentType::ChangeInCapacity, "ChangeInCapacity"),
        (AdjustmentType::PercentChangeInCapacity, "PercentChangeInCapacity"),
        (AdjustmentType::ExactCapacity, "ExactCapacity"),
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES.iter().find(|(t, _)| *t == self).map_or("", |(_, name)| name)
    }

    pub fn parse(name: &str) -> Option<AdjustmentType> {
        Self::NAMES.iter().find(|(_, n)| *n == name).map(|(t, _)| *t)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepAdjustment {
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub adjustment: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepScaling {
    pub adjustment_type: AdjustmentType,
    pub steps: Vec<StepAdjustment>,
    pub min_adjustment_magnitude: Option<i64>,
    pub cooldown_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PolicyConfig {
    TargetTracking(TargetTracking),
    Step(StepScaling),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingPolicy {
    pub name: String,
    pub arn: String,
    pub resource_id: String,
    pub config: PolicyConfig,
    pub created: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivityStatus {
    InProgress,
    Successful,
    Failed,
}

impl ActivityStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityStatus::InProgress => "InProgress",
            ActivityStatus::Successful => "Successful",
            ActivityStatus::Failed => "Failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingActivity {
    pub id: String,
    pub resource_id: String,
    pub description: String,
    pub cause: String,
    pub from: u32,
    pub to: u32,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    pub status: ActivityStatus,
    pub message: Option<String>,
}

impl TargetTracking {
    /// The instance count that brings `value` (measured with `current` instances) to the target:
    /// the metric is assumed to scale inversely with the instance count, as AWS's target
    /// tracking does. Clamped to `[min, max]`.
    pub fn desired(&self, current: u32, value: f64, min: u32, max: u32) -> u32 {
        if self.target <= 0.0 || !value.is_finite() {
            return current.clamp(min, max);
        }
        // From 0 instances a per-instance metric is the whole load on one: any work wants one.
        let wanted = (f64::from(current.max(1)) * value / self.target - 1e-9).ceil().max(0.0) as u32;
        wanted.clamp(min, max.max(min))
    }
}

impl StepScaling {
    /// The new count when the alarm's metric is `breach` above (or below, negative) its threshold.
    pub fn desired(&self, current: u32, breach: f64, min: u32, max: u32) -> Option<u32> {
        let step = self.steps.iter().find(|s| s.lower.is_none_or(|l| breach >= l) && s.upper.is_none_or(|u| breach < u))?;
        let current_i = i64::from(current);
        let target = match self.adjustment_type {
            AdjustmentType::ChangeInCapacity => current_i + step.adjustment,
            AdjustmentType::ExactCapacity => step.adjustment,
            AdjustmentType::PercentChangeInCapacity => {
                let mut delta = (current_i as f64 * step.adjustment as f64 / 100.0).trunc() as i64;
                if let Some(m) = self.min_adjustment_magnitude {
                    if delta.abs() < m && step.adjustment != 0 {
                        delta = m * step.adjustment.signum();
                    }
                }
                current_i + delta
            }
        };
        Some(target.clamp(i64::from(min), i64::from(max)) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjustment_types_read_back_their_names() {
        for (t, name) in AdjustmentType::NAMES {
            assert_eq!(AdjustmentType::parse(name), Some(t));
            assert_eq!(t.as_str(), name);
            assert_eq!(serde_json::to_value(t).unwrap(), name);
        }
        assert_eq!(AdjustmentType::parse("changeincapacity"), None);
    }

    fn tracking(target: f64) -> TargetTracking {
        TargetTracking {
            target,
            metric: TrackedMetric::InvocationsPerInstance,
            scale_out_cooldown_secs: 0,
            scale_in_cooldown_secs: 0,
            disable_scale_in: false,
        }
    }

    #[test]
    fn target_tracking_scales_in_proportion() {
        assert_eq!(tracking(70.0).desired(1, 280.0, 1, 10), 4);
        assert_eq!(tracking(70.0).desired(4, 35.0, 1, 10), 2);
        assert_eq!(tracking(70.0).desired(2, 70.0, 1, 10), 2, "at the target: no change");
        assert_eq!(tracking(70.0).desired(1, 7000.0, 1, 5), 5, "max holds");
        assert_eq!(tracking(70.0).desired(3, 0.0, 2, 5), 2, "min holds");
    }

    #[test]
    fn step_scaling_picks_the_step_of_the_breach() {
        let s = StepScaling {
            adjustment_type: AdjustmentType::ChangeInCapacity,
            steps: vec![
                StepAdjustment { lower: Some(0.0), upper: Some(10.0), adjustment: 1 },
                StepAdjustment { lower: Some(10.0), upper: None, adjustment: 3 },
            ],
            min_adjustment_magnitude: None,
            cooldown_secs: 0,
        };
        assert_eq!(s.desired(2, 5.0, 1, 10), Some(3));
        assert_eq!(s.desired(2, 50.0, 1, 4), Some(4));
        assert_eq!(s.desired(2, -1.0, 1, 10), None);
        let pct = StepScaling { adjustment_type: AdjustmentType::PercentChangeInCapacity, min_adjustment_magnitude: Some(1), ..s };
        assert_eq!(pct.desired(2, 5.0, 1, 10), Some(3), "1% of 2 rounds to 0, raised to the minimum magnitude");
    }

    #[test]
    fn resource_ids_name_an_endpoint_variant() {
        assert_eq!(parse_resource_id("endpoint/ep/variant/V").unwrap(), ("ep".into(), "V".into()));
        assert!(parse_resource_id("endpoint/ep").is_err());
        assert!(parse_resource_id("table/x").is_err());
    }
}
