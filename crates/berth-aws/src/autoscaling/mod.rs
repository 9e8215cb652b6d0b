//! Application Auto Scaling (awsJson1_1, `X-Amz-Target: AnyScaleFrontendService.<Op>`) for
//! `ServiceNamespace: sagemaker`: `ScalableDimension: sagemaker:variant:DesiredInstanceCount` of
//! variants and `sagemaker:inference-component:DesiredCopyCount` of inference components.

use crate::aws_json::{enum_error, parse, reply, secs};
use crate::error::{EdgeError, Service};
use crate::wire::Empty;
use crate::Edge;
use berth_control::{ControlError, RegisterScalableTarget};
use berth_domain::{
    AdjustmentType, PolicyConfig, ScalableResource, ScalableTarget, ScalingActivity, ScalingPolicy, StepAdjustment, StepScaling, Suspended,
    TargetTracking, TrackedMetric, COMPONENT_SCALABLE_DIMENSION, SCALABLE_DIMENSION,
};
use serde_json::Value;

mod wire;

use wire::*;

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
        None | Some(SCALABLE_DIMENSION) | Some(COMPONENT_SCALABLE_DIMENSION) => Ok(()),
        Some(other) => Err(EdgeError::validation(format!(
            "Unsupported scalable dimension '{other}' for service namespace sagemaker: use {SCALABLE_DIMENSION} (variants) or {COMPONENT_SCALABLE_DIMENSION} (inference components)."
        ))),
    }
}

/// A resource named with the dimension of its kind: a variant's instance count, or a
/// component's copy count.
fn check_resource(resource_id: &str, dimension: &str) -> Result<(), EdgeError> {
    let resource = ScalableResource::parse(resource_id).map_err(|e| EdgeError::validation(e.to_string()))?;
    if resource.dimension() != dimension {
        return Err(EdgeError::validation(format!(
            "Unsupported scalable dimension '{dimension}' for resource ID '{resource_id}': use {}.",
            resource.dimension()
        )));
    }
    Ok(())
}

pub async fn operation(edge: &Edge, op: &str, body: &[u8]) -> Result<Value, EdgeError> {
    let c = &edge.controller;
    match op {
        "RegisterScalableTarget" => {
            let input: RegisterInput = parse(body)?;
            check_scope(&input.service_namespace, Some(&input.scalable_dimension))?;
            check_resource(&input.resource_id, &input.scalable_dimension)?;
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
            reply(RegisterOutput { scalable_target_arn: target.arn })
        }
        "DescribeScalableTargets" => {
            let input: DescribeInput = parse(body)?;
            check_scope(&input.service_namespace, input.scalable_dimension.as_deref())?;
            let all = c.scalable_targets().await.map_err(scaling_error)?;
            let wanted: Vec<ScalableTargetOut> =
                all.iter().filter(|t| input.resource_ids.as_ref().is_none_or(|ids| ids.contains(&t.resource_id))).map(target_out).collect();
            let (scalable_targets, next_token) = page(wanted, input.max_results, input.next_token)?;
            reply(ScalableTargets { scalable_targets, next_token })
        }
        "DeregisterScalableTarget" => {
            let input: TargetInput = parse(body)?;
            check_scope(&input.service_namespace, Some(&input.scalable_dimension))?;
            c.deregister_scalable_target(&input.resource_id).await.map_err(scaling_error)?;
            reply(Empty {})
        }
        "PutScalingPolicy" => {
            let input: PutPolicyInput = parse(body)?;
            check_scope(&input.service_namespace, Some(&input.scalable_dimension))?;
            check_resource(&input.resource_id, &input.scalable_dimension)?;
            let config = policy_config(
                input.policy_type.as_deref(),
                input.target_tracking_scaling_policy_configuration,
                input.step_scaling_policy_configuration,
                input.predictive_scaling_policy_configuration.is_some(),
            )?;
            let policy = c.put_scaling_policy(&input.policy_name, &input.resource_id, config).await.map_err(scaling_error)?;
            reply(PutPolicyOutput { policy_arn: policy.arn, alarms: Vec::new() })
        }
        "DescribeScalingPolicies" => {
            let input: DescribeInput = parse(body)?;
            check_scope(&input.service_namespace, input.scalable_dimension.as_deref())?;
            let all = c.scaling_policies().await.map_err(scaling_error)?;
            let wanted: Vec<PolicyOut> = all
                .iter()
                .filter(|p| input.resource_id.as_ref().is_none_or(|r| *r == p.resource_id))
                .filter(|p| input.policy_names.as_ref().is_none_or(|n| n.contains(&p.name)))
                .map(policy_out)
                .collect();
            let (scaling_policies, next_token) = page(wanted, input.max_results, input.next_token)?;
            reply(ScalingPolicies { scaling_policies, next_token })
        }
        "DeleteScalingPolicy" => {
            let input: DeletePolicyInput = parse(body)?;
            check_scope(&input.service_namespace, Some(&input.scalable_dimension))?;
            c.delete_scaling_policy(&input.policy_name, &input.resource_id).await.map_err(scaling_error)?;
            reply(Empty {})
        }
        "DescribeScalingActivities" => {
            let input: DescribeInput = parse(body)?;
            check_scope(&input.service_namespace, input.scalable_dimension.as_deref())?;
            let all = c.scaling_activities().await.map_err(scaling_error)?;
            let wanted: Vec<ActivityOut> =
                all.iter().filter(|a| input.resource_id.as_ref().is_none_or(|r| *r == a.resource_id)).map(activity_out).collect();
            let (scaling_activities, next_token) = page(wanted, input.max_results, input.next_token)?;
            reply(ScalingActivities { scaling_activities, next_token })
        }
        _ => Err(crate::unknown_operation(&format!("{TARGET_PREFIX}.{op}"))),
    }
}

/// One page of `items` (at most 50, as Application Auto Scaling pages) after the token's offset,
/// and the next page's token.
fn page<T>(items: Vec<T>, max: Option<usize>, token: Option<String>) -> Result<(Vec<T>, Option<String>), EdgeError> {
    let skip: usize = match token {
        None => 0,
        Some(t) => t.parse().map_err(|_| {
            EdgeError::new(axum::http::StatusCode::BAD_REQUEST, "InvalidNextTokenException", "The next token is not valid.")
        })?,
    };
    let max = max.unwrap_or(50).clamp(1, 50);
    let next = (skip + max < items.len()).then(|| (skip + max).to_string());
    Ok((items.into_iter().skip(skip).take(max).collect(), next))
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
                (Some(p), None) if p.predefined_metric_type == "SageMakerInferenceComponentInvocationsPerCopy" => TrackedMetric::InvocationsPerCopy,
                (Some(p), None) => {
                    return Err(EdgeError::validation(format!(
                        "PredefinedMetricType '{}' is not one berth tracks; use SageMakerVariantInvocationsPerInstance (variants), SageMakerInferenceComponentInvocationsPerCopy (inference components) or a CustomizedMetricSpecification.",
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
                Some(name) => {
                    AdjustmentType::parse(name).ok_or_else(|| enum_error("adjustmentType", name, &AdjustmentType::NAMES.map(|(_, n)| n)))?
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

fn target_out(t: &ScalableTarget) -> ScalableTargetOut {
    ScalableTargetOut {
        service_namespace: "sagemaker",
        resource_id: t.resource_id.clone(),
        scalable_dimension: ScalableResource::dimension_of(&t.resource_id),
        min_capacity: t.min,
        max_capacity: t.max,
        role_arn: t.role_arn.clone(),
        creation_time: secs(t.created),
        suspended_state: SuspendedOut {
            dynamic_scaling_in_suspended: t.suspended.scale_in,
            dynamic_scaling_out_suspended: t.suspended.scale_out,
            scheduled_scaling_suspended: t.suspended.scheduled,
        },
        scalable_target_arn: t.arn.clone(),
    }
}

fn policy_out(p: &ScalingPolicy) -> PolicyOut {
    let (policy_type, target_tracking, step) = match &p.config {
        PolicyConfig::TargetTracking(t) => {
            let (predefined, customized) = match &t.metric {
                TrackedMetric::InvocationsPerInstance => {
                    (Some(PredefinedOut { predefined_metric_type: "SageMakerVariantInvocationsPerInstance" }), None)
                }
                TrackedMetric::InvocationsPerCopy => {
                    (Some(PredefinedOut { predefined_metric_type: "SageMakerInferenceComponentInvocationsPerCopy" }), None)
                }
                TrackedMetric::Custom { namespace, metric_name, dimensions, statistic } => {
                    let dimensions = dimensions.iter().map(|(n, v)| DimensionOut { name: n.clone(), value: v.clone() }).collect();
                    let custom = CustomizedOut {
                        metric_name: metric_name.clone(),
                        namespace: namespace.clone(),
                        dimensions,
                        statistic: statistic.clone(),
                    };
                    (None, Some(custom))
                }
            };
            let config = TargetTrackingOut {
                target_value: t.target,
                predefined_metric_specification: predefined,
                customized_metric_specification: customized,
                scale_out_cooldown: t.scale_out_cooldown_secs,
                scale_in_cooldown: t.scale_in_cooldown_secs,
                disable_scale_in: t.disable_scale_in,
            };
            ("TargetTrackingScaling", Some(config), None)
        }
        PolicyConfig::Step(s) => {
            let step_adjustments = s
                .steps
                .iter()
                .map(|a| StepOut {
                    metric_interval_lower_bound: a.lower,
                    metric_interval_upper_bound: a.upper,
                    scaling_adjustment: a.adjustment,
                })
                .collect();
            let config = StepScalingOut {
                adjustment_type: s.adjustment_type.as_str(),
                step_adjustments,
                min_adjustment_magnitude: s.min_adjustment_magnitude,
                cooldown: s.cooldown_secs,
            };
            ("StepScaling", None, Some(config))
        }
    };
    PolicyOut {
        policy_arn: p.arn.clone(),
        policy_name: p.name.clone(),
        service_namespace: "sagemaker",
        resource_id: p.resource_id.clone(),
        scalable_dimension: ScalableResource::dimension_of(&p.resource_id),
        policy_type,
        target_tracking_scaling_policy_configuration: target_tracking,
        step_scaling_policy_configuration: step,
        creation_time: secs(p.created),
        alarms: Vec::new(),
    }
}

fn activity_out(a: &ScalingActivity) -> ActivityOut {
    ActivityOut {
        activity_id: a.id.clone(),
        service_namespace: "sagemaker",
        resource_id: a.resource_id.clone(),
        scalable_dimension: ScalableResource::dimension_of(&a.resource_id),
        description: a.description.clone(),
        cause: a.cause.clone(),
        start_time: secs(a.start),
        end_time: a.end.map(secs),
        status_code: a.status.as_str(),
        status_message: a.message.clone(),
    }
}

/// Decodes a body as every Application Auto Scaling input berth reads (for the fuzz targets).
pub(crate) fn parse_every_input(body: &[u8]) {
    let _ = parse::<RegisterInput>(body);
    let _ = parse::<TargetInput>(body);
    let _ = parse::<DescribeInput>(body);
    let _ = parse::<PutPolicyInput>(body);
    let _ = parse::<DeletePolicyInput>(body);
}
