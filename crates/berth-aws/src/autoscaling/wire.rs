//! Application Auto Scaling's inputs and answers, in the shapes of botocore's
//! `application-autoscaling` model.

use crate::wire::Empty;
use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---- inputs ----------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SuspendedWire {
    pub(super) dynamic_scaling_in_suspended: Option<bool>,
    pub(super) dynamic_scaling_out_suspended: Option<bool>,
    pub(super) scheduled_scaling_suspended: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RegisterInput {
    pub(super) service_namespace: String,
    pub(super) resource_id: String,
    pub(super) scalable_dimension: String,
    pub(super) min_capacity: Option<u32>,
    pub(super) max_capacity: Option<u32>,
    #[serde(rename = "RoleARN")]
    pub(super) role_arn: Option<String>,
    pub(super) suspended_state: Option<SuspendedWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TargetInput {
    pub(super) service_namespace: String,
    pub(super) resource_id: String,
    pub(super) scalable_dimension: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DescribeInput {
    pub(super) service_namespace: String,
    pub(super) resource_ids: Option<Vec<String>>,
    pub(super) resource_id: Option<String>,
    pub(super) scalable_dimension: Option<String>,
    pub(super) policy_names: Option<Vec<String>>,
    pub(super) max_results: Option<usize>,
    pub(super) next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct MetricDimension {
    pub(super) name: String,
    pub(super) value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CustomizedMetric {
    pub(super) metric_name: Option<String>,
    pub(super) namespace: Option<String>,
    #[serde(default)]
    pub(super) dimensions: Vec<MetricDimension>,
    pub(super) statistic: Option<String>,
    pub(super) metrics: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PredefinedMetric {
    pub(super) predefined_metric_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TargetTrackingWire {
    pub(super) target_value: f64,
    pub(super) predefined_metric_specification: Option<PredefinedMetric>,
    pub(super) customized_metric_specification: Option<CustomizedMetric>,
    pub(super) scale_out_cooldown: Option<u32>,
    pub(super) scale_in_cooldown: Option<u32>,
    pub(super) disable_scale_in: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct StepAdjustmentWire {
    pub(super) metric_interval_lower_bound: Option<f64>,
    pub(super) metric_interval_upper_bound: Option<f64>,
    pub(super) scaling_adjustment: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct StepScalingWire {
    pub(super) adjustment_type: Option<String>,
    #[serde(default)]
    pub(super) step_adjustments: Vec<StepAdjustmentWire>,
    pub(super) min_adjustment_magnitude: Option<i64>,
    pub(super) cooldown: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PutPolicyInput {
    pub(super) policy_name: String,
    pub(super) service_namespace: String,
    pub(super) resource_id: String,
    pub(super) scalable_dimension: String,
    pub(super) policy_type: Option<String>,
    pub(super) step_scaling_policy_configuration: Option<StepScalingWire>,
    pub(super) target_tracking_scaling_policy_configuration: Option<TargetTrackingWire>,
    pub(super) predictive_scaling_policy_configuration: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DeletePolicyInput {
    pub(super) policy_name: String,
    pub(super) service_namespace: String,
    pub(super) resource_id: String,
    pub(super) scalable_dimension: String,
}

// ---- answers ---------------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RegisterOutput {
    #[serde(rename = "ScalableTargetARN")]
    pub(super) scalable_target_arn: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PutPolicyOutput {
    #[serde(rename = "PolicyARN")]
    pub(super) policy_arn: String,
    /// berth evaluates target tracking itself: no CloudWatch alarms are made for a policy.
    pub(super) alarms: Vec<Empty>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ScalableTargets {
    pub(super) scalable_targets: Vec<ScalableTargetOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ScalingPolicies {
    pub(super) scaling_policies: Vec<PolicyOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ScalingActivities {
    pub(super) scaling_activities: Vec<ActivityOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ScalableTargetOut {
    pub(super) service_namespace: &'static str,
    pub(super) resource_id: String,
    pub(super) scalable_dimension: &'static str,
    pub(super) min_capacity: u32,
    pub(super) max_capacity: u32,
    #[serde(rename = "RoleARN")]
    pub(super) role_arn: String,
    pub(super) creation_time: f64,
    pub(super) suspended_state: SuspendedOut,
    #[serde(rename = "ScalableTargetARN")]
    pub(super) scalable_target_arn: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SuspendedOut {
    pub(super) dynamic_scaling_in_suspended: bool,
    pub(super) dynamic_scaling_out_suspended: bool,
    pub(super) scheduled_scaling_suspended: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PolicyOut {
    #[serde(rename = "PolicyARN")]
    pub(super) policy_arn: String,
    pub(super) policy_name: String,
    pub(super) service_namespace: &'static str,
    pub(super) resource_id: String,
    pub(super) scalable_dimension: &'static str,
    pub(super) policy_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) target_tracking_scaling_policy_configuration: Option<TargetTrackingOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) step_scaling_policy_configuration: Option<StepScalingOut>,
    pub(super) creation_time: f64,
    pub(super) alarms: Vec<Empty>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TargetTrackingOut {
    pub(super) target_value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) predefined_metric_specification: Option<PredefinedOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) customized_metric_specification: Option<CustomizedOut>,
    pub(super) scale_out_cooldown: u32,
    pub(super) scale_in_cooldown: u32,
    pub(super) disable_scale_in: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PredefinedOut {
    pub(super) predefined_metric_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CustomizedOut {
    pub(super) metric_name: String,
    pub(super) namespace: String,
    pub(super) dimensions: Vec<DimensionOut>,
    pub(super) statistic: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DimensionOut {
    pub(super) name: String,
    pub(super) value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct StepScalingOut {
    pub(super) adjustment_type: &'static str,
    pub(super) step_adjustments: Vec<StepOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) min_adjustment_magnitude: Option<i64>,
    pub(super) cooldown: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct StepOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) metric_interval_lower_bound: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) metric_interval_upper_bound: Option<f64>,
    pub(super) scaling_adjustment: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ActivityOut {
    pub(super) activity_id: String,
    pub(super) service_namespace: &'static str,
    pub(super) resource_id: String,
    pub(super) scalable_dimension: &'static str,
    pub(super) description: String,
    pub(super) cause: String,
    pub(super) start_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) end_time: Option<f64>,
    pub(super) status_code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) status_message: Option<String>,
}
