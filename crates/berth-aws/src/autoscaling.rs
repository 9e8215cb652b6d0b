//! Application Auto Scaling (awsJson1_1, `X-Amz-Target: AnyScaleFrontendService.<Op>`) for
//! `ServiceNamespace: sagemaker` and `ScalableDimension: sagemaker:variant:DesiredInstanceCount`.

use crate::aws_json::{enum_error, parse, secs};
use crate::error::{EdgeError, Service};
use crate::Edge;
use berth_control::{ControlError, RegisterScalableTarget};
use berth_domain::{
    AdjustmentType, PolicyConfig, ScalableTarget, ScalingActivity, ScalingPolicy, StepAdjustment, StepScaling, Suspended, TargetTracking,
    TrackedMetric, SCALABLE_DIMENSION,
};
use serde::Deserialize;
use serde_json::{json, Value};

pub const TARGET_PREFIX: &str = "AnyScaleFrontendService";

fn scaling_error(e: ControlError) -> EdgeError {
    EdgeError::control(e, Service::AutoScaling)
}

fn check_scope(namespace: &str, dimension: Option<&str>) -> Result<(), EdgeError> {
    if namespace != "sagemaker" {
        return Err(EdgeError::validation(format!(
            "berth scales SageMaker variants only; ServiceNamespace '{namespace}' is not served here."
        )));
    }
    match dimension {
        None | Some(SCALABLE_DIMENSION) => Ok(()),
        Some(other) => Err(EdgeError::validation(format!(
            "Unsupported scalable dimension '{other}' for service namespace sagemaker: use {SCALABLE_DIMENSION}."
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SuspendedWire {
    dynamic_scaling_in_suspended: Option<bool>,
    dynamic_scaling_out_suspended: Option<bool>,
    scheduled_scaling_suspended: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RegisterInput {
    service_namespace: String,
    resource_id: String,
    scalable_dimension: String,
    min_capacity: Option<u32>,
    max_capacity: Option<u32>,
    #[serde(rename = "RoleARN")]
    role_arn: Option<String>,
    suspended_state: Option<SuspendedWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TargetInput {
    service_namespace: String,
    resource_id: String,
    scalable_dimension: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeInput {
    service_namespace: String,
    resource_ids: Option<Vec<String>>,
    resource_id: Option<String>,
    scalable_dimension: Option<String>,
    policy_names: Option<Vec<String>>,
    max_results: Option<usize>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDimension {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CustomizedMetric {
    metric_name: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    dimensions: Vec<MetricDimension>,
    statistic: Option<String>,
    metrics: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PredefinedMetric {
    predefined_metric_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TargetTrackingWire {
    target_value: f64,
    predefined_metric_specification: Option<PredefinedMetric>,
    customized_metric_specification: Option<CustomizedMetric>,
    scale_out_cooldown: Option<u32>,
    scale_in_cooldown: Option<u32>,
    disable_scale_in: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StepAdjustmentWire {
    metric_interval_lower_bound: Option<f64>,
    metric_interval_upper_bound: Option<f64>,
    scaling_adjustment: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StepScalingWire {
    adjustment_type: Option<String>,
    #[serde(default)]
    step_adjustments: Vec<StepAdjustmentWire>,
    min_adjustment_magnitude: Option<i64>,
    cooldown: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutPolicyInput {
    policy_name: String,
    service_namespace: String,
    resource_id: String,
    scalable_dimension: String,
    policy_type: Option<String>,
    step_scaling_policy_configuration: Option<StepScalingWire>,
    target_tracking_scaling_policy_configuration: Option<TargetTrackingWire>,
    predictive_scaling_policy_configuration: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeletePolicyInput {
    policy_name: String,
    service_namespace: String,
    resource_id: String,
    scalable_dimension: String,
}

pub async fn operation(edge: &Edge, op: &str, body: &[u8]) -> Result<Value, EdgeError> {
    let c = &edge.controller;
    match op {
        "RegisterScalableTarget" => {
            let input: RegisterInput = parse(body)?;
            check_scope(&input.service_namespace, Some(&input.scalable_dimension))?;
            let suspended = input.suspended_state.map(|s| Suspended {
                scale_in: s.dynamic_scaling_in_suspended.unwrap_or(false),
                scale_out: s.dynamic_scaling_out_suspended.unwrap_or(false),
                scheduled: s.scheduled_scaling_suspended.unwrap_or(false),
            });
            let req = RegisterScalableTarget {
                resource_id: input.resource_id,
                min: input.min_capacity,
                max: input.max_capacity,
                role_arn: input.role_arn,
                suspended,
            };
            let target = c.register_scalable_target(req).await.map_err(scaling_error)?;
            Ok(json!({ "ScalableTargetARN": target.arn }))
        }
        "DescribeScalableTargets" => {
            let input: DescribeInput = parse(body)?;
            check_scope(&input.service_namespace, input.scalable_dimension.as_deref())?;
            let all = c.scalable_targets().await.map_err(scaling_error)?;
            let wanted: Vec<Value> = all
                .iter()
                .filter(|t| input.resource_ids.as_ref().is_none_or(|ids| ids.contains(&t.resource_id)))
                .map(target_json)
                .collect();
            page(wanted, "ScalableTargets", input.max_results, input.next_token)
        }
        "DeregisterScalableTarget" => {
            let input: TargetInput = parse(body)?;
            check_scope(&input.service_namespace, Some(&input.scalable_dimension))?;
            c.deregister_scalable_target(&input.resource_id).await.map_err(scaling_error)?;
            Ok(json!({}))
        }
        "PutScalingPolicy" => {
            let input: PutPolicyInput = parse(body)?;
            check_scope(&input.service_namespace, Some(&input.scalable_dimension))?;
            let config = policy_config(
                input.policy_type.as_deref(),
                input.target_tracking_scaling_policy_configuration,
                input.step_scaling_policy_configuration,
                input.predictive_scaling_policy_configuration.is_some(),
            )?;
            let policy = c.put_scaling_policy(&input.policy_name, &input.resource_id, config).await.map_err(scaling_error)?;
            Ok(json!({ "PolicyARN": policy.arn, "Alarms": [] }))
        }
        "DescribeScalingPolicies" => {
            let input: DescribeInput = parse(body)?;
            check_scope(&input.service_namespace, input.scalable_dimension.as_deref())?;
            let all = c.scaling_policies().await.map_err(scaling_error)?;
            let wanted: Vec<Value> = all
                .iter()
                .filter(|p| input.resource_id.as_ref().is_none_or(|r| *r == p.resource_id))
                .filter(|p| input.policy_names.as_ref().is_none_or(|n| n.contains(&p.name)))
                .map(policy_json)
                .collect();
            page(wanted, "ScalingPolicies", input.max_results, input.next_token)
        }
        "DeleteScalingPolicy" => {
            let input: DeletePolicyInput = parse(body)?;
            check_scope(&input.service_namespace, Some(&input.scalable_dimension))?;
            c.delete_scaling_policy(&input.policy_name, &input.resource_id).await.map_err(scaling_error)?;
            Ok(json!({}))
        }
        "DescribeScalingActivities" => {
            let input: DescribeInput = parse(body)?;
            check_scope(&input.service_namespace, input.scalable_dimension.as_deref())?;
            let all = c.scaling_activities().await.map_err(scaling_error)?;
            let wanted: Vec<Value> =
                all.iter().filter(|a| input.resource_id.as_ref().is_none_or(|r| *r == a.resource_id)).map(activity_json).collect();
            page(wanted, "ScalingActivities", input.max_results, input.next_token)
        }
        _ => Err(crate::unknown_operation(&format!("{TARGET_PREFIX}.{op}"))),
    }
}

fn page(items: Vec<Value>, key: &str, max: Option<usize>, token: Option<String>) -> Result<Value, EdgeError> {
    let skip: usize = match token {
        None => 0,
        Some(t) => t.parse().map_err(|_| {
            EdgeError::new(axum::http::StatusCode::BAD_REQUEST, "InvalidNextTokenException", "The next token is not valid.")
        })?,
    };
    let max = max.unwrap_or(50).clamp(1, 50);
    let mut out = json!({ key: items.iter().skip(skip).take(max).cloned().collect::<Vec<_>>() });
    if skip + max < items.len() {
        out["NextToken"] = json!((skip + max).to_string());
    }
    Ok(out)
}

fn policy_config(
    kind: Option<&str>,
    tracking: Option<TargetTrackingWire>,
    step: Option<StepScalingWire>,
    predictive: bool,
) -> Result<PolicyConfig, EdgeError> {
    if predictive || kind == Some("PredictiveScaling") {
        return Err(EdgeError::validation("Predictive scaling is not supported by berth."));
    }
    match (kind.unwrap_or("StepScaling"), tracking, step) {
        ("TargetTrackingScaling", Some(t), None) => {
            let metric = match (t.predefined_metric_specification, t.customized_metric_specification) {
                (Some(p), None) if p.predefined_metric_type == "SageMakerVariantInvocationsPerInstance" => TrackedMetric::InvocationsPerInstance,
                (Some(p), None) => {
                    return Err(EdgeError::validation(format!(
                        "PredefinedMetricType '{}' does not apply to SageMaker variants; use SageMakerVariantInvocationsPerInstance or a CustomizedMetricSpecification.",
                        p.predefined_metric_type
                    )))
                }
                (None, Some(m)) => {
                    if m.metrics.is_some() {
                        return Err(EdgeError::validation("Metric math in CustomizedMetricSpecification.Metrics is not supported by berth yet; give MetricName, Namespace, Dimensions and Statistic."));
                    }
                    let (Some(metric_name), Some(namespace), Some(statistic)) = (m.metric_name, m.namespace, m.statistic) else {
                        return Err(EdgeError::validation("CustomizedMetricSpecification needs MetricName, Namespace and Statistic."));
                    };
                    if !["Average", "Minimum", "Maximum", "SampleCount", "Sum"].contains(&statistic.as_str()) {
                        return Err(enum_error("customizedMetricSpecification.statistic", &statistic, &["Average", "Minimum", "Maximum", "SampleCount", "Sum"]));
                    }
                    TrackedMetric::Custom { namespace, metric_name, dimensions: m.dimensions.into_iter().map(|d| (d.name, d.value)).collect(), statistic }
                }
                _ => return Err(EdgeError::validation("Give exactly one of PredefinedMetricSpecification and CustomizedMetricSpecification.")),
            };
            Ok(PolicyConfig::TargetTracking(TargetTracking {
                target: t.target_value,
                metric,
                // Application Auto Scaling's defaults for SageMaker variants.
                scale_out_cooldown_secs: t.scale_out_cooldown.unwrap_or(300),
                scale_in_cooldown_secs: t.scale_in_cooldown.unwrap_or(300),
                disable_scale_in: t.disable_scale_in.unwrap_or(false),
            }))
        }
        ("StepScaling", None, Some(s)) => {
            let adjustment_type = match s.adjustment_type.as_deref() {
                Some("ChangeInCapacity") => AdjustmentType::ChangeInCapacity,
                Some("PercentChangeInCapacity") => AdjustmentType::PercentChangeInCapacity,
                Some("ExactCapacity") => AdjustmentType::ExactCapacity,
                Some(other) => {
                    return Err(enum_error("adjustmentType", other, &["ChangeInCapacity", "PercentChangeInCapacity", "ExactCapacity"]))
                }
                None => return Err(EdgeError::validation("StepScalingPolicyConfiguration needs AdjustmentType.")),
            };
            let steps = s
                .step_adjustments
                .into_iter()
                .map(|a| StepAdjustment {
                    lower: a.metric_interval_lower_bound,
                    upper: a.metric_interval_upper_bound,
                    adjustment: a.scaling_adjustment,
                })
                .collect();
            Ok(PolicyConfig::Step(StepScaling {
                adjustment_type,
                steps,
                min_adjustment_magnitude: s.min_adjustment_magnitude,
                cooldown_secs: s.cooldown.unwrap_or(300),
            }))
        }
        (kind, _, _) => Err(EdgeError::validation(format!("PolicyType {kind} needs its configuration (and only that one)."))),
    }
}

fn target_json(t: &ScalableTarget) -> Value {
    json!({
        "ServiceNamespace": "sagemaker",
        "ResourceId": t.resource_id,
        "ScalableDimension": SCALABLE_DIMENSION,
        "MinCapacity": t.min,
        "MaxCapacity": t.max,
        "RoleARN": t.role_arn,
        "CreationTime": secs(t.created),
        "SuspendedState": {
            "DynamicScalingInSuspended": t.suspended.scale_in,
            "DynamicScalingOutSuspended": t.suspended.scale_out,
            "ScheduledScalingSuspended": t.suspended.scheduled,
        },
        "ScalableTargetARN": t.arn,
    })
}

fn policy_json(p: &ScalingPolicy) -> Value {
    let mut v = json!({
        "PolicyARN": p.arn,
        "PolicyName": p.name,
        "ServiceNamespace": "sagemaker",
        "ResourceId": p.resource_id,
        "ScalableDimension": SCALABLE_DIMENSION,
        "CreationTime": secs(p.created),
        "Alarms": [],
    });
    match &p.config {
        PolicyConfig::TargetTracking(t) => {
            v["PolicyType"] = json!("TargetTrackingScaling");
            let mut c = json!({
                "TargetValue": t.target,
                "ScaleOutCooldown": t.scale_out_cooldown_secs,
                "ScaleInCooldown": t.scale_in_cooldown_secs,
                "DisableScaleIn": t.disable_scale_in,
            });
            match &t.metric {
                TrackedMetric::InvocationsPerInstance => {
                    c["PredefinedMetricSpecification"] = json!({"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"})
                }
                TrackedMetric::Custom { namespace, metric_name, dimensions, statistic } => {
                    c["CustomizedMetricSpecification"] = json!({
                        "MetricName": metric_name, "Namespace": namespace, "Statistic": statistic,
                        "Dimensions": dimensions.iter().map(|(n, v)| json!({"Name": n, "Value": v})).collect::<Vec<_>>(),
                    })
                }
            }
            v["TargetTrackingScalingPolicyConfiguration"] = c;
        }
        PolicyConfig::Step(s) => {
            v["PolicyType"] = json!("StepScaling");
            let kind = match s.adjustment_type {
                AdjustmentType::ChangeInCapacity => "ChangeInCapacity",
                AdjustmentType::PercentChangeInCapacity => "PercentChangeInCapacity",
                AdjustmentType::ExactCapacity => "ExactCapacity",
            };
            let steps: Vec<Value> = s
                .steps
                .iter()
                .map(|a| {
                    let mut j = json!({ "ScalingAdjustment": a.adjustment });
                    if let Some(l) = a.lower {
                        j["MetricIntervalLowerBound"] = json!(l);
                    }
                    if let Some(u) = a.upper {
                        j["MetricIntervalUpperBound"] = json!(u);
                    }
                    j
                })
                .collect();
            let mut c = json!({ "AdjustmentType": kind, "StepAdjustments": steps, "Cooldown": s.cooldown_secs });
            if let Some(m) = s.min_adjustment_magnitude {
                c["MinAdjustmentMagnitude"] = json!(m);
            }
            v["StepScalingPolicyConfiguration"] = c;
        }
    }
    v
}

fn activity_json(a: &ScalingActivity) -> Value {
    let mut v = json!({
        "ActivityId": a.id,
        "ServiceNamespace": "sagemaker",
        "ResourceId": a.resource_id,
        "ScalableDimension": SCALABLE_DIMENSION,
        "Description": a.description,
        "Cause": a.cause,
        "StartTime": secs(a.start),
        "StatusCode": a.status.as_str(),
    });
    if let Some(e) = a.end {
        v["EndTime"] = json!(secs(e));
    }
    if let Some(m) = &a.message {
        v["StatusMessage"] = json!(m);
    }
    v
}

/// Decodes a body as every Application Auto Scaling input berth reads (for the fuzz targets).
pub(crate) fn parse_every_input(body: &[u8]) {
    let _ = parse::<RegisterInput>(body);
    let _ = parse::<TargetInput>(body);
    let _ = parse::<DescribeInput>(body);
    let _ = parse::<PutPolicyInput>(body);
    let _ = parse::<DeletePolicyInput>(body);
}
