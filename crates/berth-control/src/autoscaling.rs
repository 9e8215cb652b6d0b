//! Application Auto Scaling for endpoint variants and inference components: scalable targets and
//! scaling policies kept in the state store, and the scaler ([`Controller::run_autoscaling`],
//! once a second) that changes a variant's instance count through the same path as
//! UpdateEndpointWeightsAndCapacities (and a component's copy count through
//! UpdateInferenceComponentRuntimeConfig's), so Describe always agrees with it. It never acts
//! while the endpoint (or component) is not InService (a deployment or another change is running).

use crate::metrics::MetricQuery;
use crate::{ControlError, Controller, DesiredWeightAndCapacity};
use berth_domain::{
    ActivityStatus, AlarmState, ComponentStatus, EndpointStatus, PolicyConfig, ScalableResource, ScalableTarget, ScalingActivity,
    ScalingPolicy, Suspended, Timestamp, TrackedMetric,
};
use serde::{de::DeserializeOwned, Serialize};
use std::sync::Arc;

const TARGETS: &str = "scalable-target";
const POLICIES: &str = "scaling-policy";
const ACTIVITIES: &str = "scaling-activity";

/// RegisterScalableTarget's input: what is `Some` is set (a new target needs min and max).
#[derive(Debug, Clone, Default)]
pub struct RegisterScalableTarget {
    pub resource_id: String,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub role_arn: Option<String>,
    pub suspended: Option<Suspended>,
}

fn not_registered(resource_id: &str) -> ControlError {
    ControlError::ScalingObjectNotFound(format!(
        "No scalable target registered for service namespace: sagemaker, resource ID: {resource_id}, scalable dimension: {}",
        ScalableResource::dimension_of(resource_id)
    ))
}

/// Where a scalable target stands: the count it has been asked for, whether that change is
/// done (and the reason if it failed), what its metrics are named by, and whether it can be
/// scaled now.
struct Standing {
    desired: u32,
    reached: Option<Result<(), String>>,
    dimensions: Vec<(String, String)>,
    /// The predefined metric's name (per instance, or per copy).
    per_unit_metric: &'static str,
    in_service: bool,
    unit: &'static str,
}

impl Controller {
    async fn put_json<T: Serialize>(&self, kind: &'static str, key: String, created: Timestamp, value: &T) -> Result<(), ControlError> {
        let body = serde_json::to_string(value).map_err(|e| ControlError::Internal(e.to_string()))?;
        self.db(move |s| s.put_records(kind, &[(key, created.millis(), body)])).await
    }

    async fn all_json<T: DeserializeOwned + Send + 'static>(&self, kind: &'static str) -> Result<Vec<T>, ControlError> {
        let rows = self.db(move |s| s.records(kind)).await?;
        Ok(rows.iter().filter_map(|b| serde_json::from_str(b).ok()).collect())
    }

    pub async fn register_scalable_target(&self, r: RegisterScalableTarget) -> Result<ScalableTarget, ControlError> {
        let floor = match ScalableResource::parse(&r.resource_id)? {
            ScalableResource::Variant { endpoint, variant } => {
                let e = self.describe_endpoint(&endpoint).await?;
                if e.variant(&variant).is_none_or(|v| v.shadow) {
                    return Err(ControlError::Validation(format!("The variant {variant} does not exist in endpoint {}.", e.name)));
                }
                if e.variant(&variant).is_some_and(|v| v.serverless.is_some()) {
                    return Err(ControlError::Validation(format!(
                        "The variant {variant} is serverless: it scales by itself, with MaxConcurrency."
                    )));
                }
                if e.hosts_components() {
                    return Err(ControlError::Validation(format!(
                        "The variant {variant} hosts inference components: scale their copies (inference-component/<name>); ManagedInstanceScaling sizes its instances."
                    )));
                }
                // Asynchronous endpoints may scale to 0: their requests wait in the queue.
                if e.async_inference.is_some() {
                    0
                } else {
                    1
                }
            }
            // An inference component may scale to no copies.
            ScalableResource::Component(name) => {
                self.describe_inference_component(&name).await?;
                0
            }
        };
        let existing = self.scalable_targets().await?.into_iter().find(|t| t.resource_id == r.resource_id);
        let (min, max) = match (&existing, r.min, r.max) {
            (_, Some(min), Some(max)) => (min, max),
            (Some(t), min, max) => (min.unwrap_or(t.min), max.unwrap_or(t.max)),
            (None, _, _) => {
                return Err(ControlError::Validation("MinCapacity and MaxCapacity are required to register a new scalable target.".into()))
            }
        };
        if min < floor || min > max {
            return Err(ControlError::Validation(format!(
                "Minimum capacity ({min}) must be at least {floor} and at most the maximum capacity ({max}) for {}.",
                if floor == 0 {
                    "an asynchronous inference endpoint's variant, or an inference component"
                } else {
                    "SageMaker variants (0 is for asynchronous inference endpoints and inference components)"
                }
            )));
        }
        let target = ScalableTarget {
            resource_id: r.resource_id.clone(),
            arn: existing.as_ref().map_or_else(
                || format!("arn:aws:application-autoscaling:{}:{}:scalable-target/{:032x}", self.account().region, self.account().account_id, fastrand::u128(..)),
                |t| t.arn.clone(),
            ),
            min,
            max,
            role_arn: r.role_arn.or(existing.as_ref().map(|t| t.role_arn.clone())).unwrap_or_else(|| {
                format!("arn:aws:iam::{}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint", self.account().account_id)
            }),
            created: existing.as_ref().map_or_else(|| self.now(), |t| t.created),
            suspended: r.suspended.or(existing.map(|t| t.suspended)).unwrap_or_default(),
        };
        self.put_json(TARGETS, target.resource_id.clone(), target.created, &target).await?;
        tracing::info!(resource = %target.resource_id, min, max, "scalable target registered");
        Ok(target)
    }

    pub async fn scalable_targets(&self) -> Result<Vec<ScalableTarget>, ControlError> {
        self.all_json(TARGETS).await
    }

    /// Removes a target and its policies.
    pub async fn deregister_scalable_target(&self, resource_id: &str) -> Result<(), ControlError> {
        let key = resource_id.to_string();
        if !self.db(move |s| s.delete_record(TARGETS, &key)).await? {
            return Err(not_registered(resource_id));
        }
        for p in self.scaling_policies().await?.into_iter().filter(|p| p.resource_id == resource_id) {
            let key = policy_key(&p.resource_id, &p.name);
            self.db(move |s| s.delete_record(POLICIES, &key)).await?;
        }
        Ok(())
    }

    pub async fn put_scaling_policy(&self, name: &str, resource_id: &str, config: PolicyConfig) -> Result<ScalingPolicy, ControlError> {
        if name.is_empty() || name.len() > 256 {
            return Err(ControlError::Validation("PolicyName must be 1 to 256 characters long.".into()));
        }
        if !self.scalable_targets().await?.iter().any(|t| t.resource_id == resource_id) {
            return Err(not_registered(resource_id));
        }
        match &config {
            PolicyConfig::TargetTracking(t) if !(t.target.is_finite() && t.target > 0.0) => {
                return Err(ControlError::Validation("TargetValue must be greater than 0.".into()));
            }
            PolicyConfig::Step(s) if s.steps.is_empty() => {
                return Err(ControlError::Validation("StepScalingPolicyConfiguration needs at least one StepAdjustment.".into()));
            }
            _ => {}
        }
        let existing = self.scaling_policies().await?.into_iter().find(|p| p.resource_id == resource_id && p.name == name);
        let policy = ScalingPolicy {
            name: name.to_string(),
            arn: existing.as_ref().map_or_else(
                || {
                    format!(
                        "arn:aws:autoscaling:{}:{}:scalingPolicy:{:032x}:resource/sagemaker/{resource_id}:policyName/{name}",
                        self.account().region,
                        self.account().account_id,
                        fastrand::u128(..)
                    )
                },
                |p| p.arn.clone(),
            ),
            resource_id: resource_id.to_string(),
            config,
            created: existing.map_or_else(|| self.now(), |p| p.created),
        };
        self.put_json(POLICIES, policy_key(resource_id, name), policy.created, &policy).await?;
        tracing::info!(resource = %resource_id, policy = %name, "scaling policy saved");
        Ok(policy)
    }

    pub async fn scaling_policies(&self) -> Result<Vec<ScalingPolicy>, ControlError> {
        self.all_json(POLICIES).await
    }

    pub async fn delete_scaling_policy(&self, name: &str, resource_id: &str) -> Result<(), ControlError> {
        let key = policy_key(resource_id, name);
        if !self.db(move |s| s.delete_record(POLICIES, &key)).await? {
            return Err(ControlError::ScalingObjectNotFound(format!("No scaling policy found for service namespace: sagemaker, resource ID: {resource_id}, scalable dimension: sagemaker:variant:DesiredInstanceCount, policy name: {name}")));
        }
        Ok(())
    }

    /// Scaling activities, newest first.
    pub async fn scaling_activities(&self) -> Result<Vec<ScalingActivity>, ControlError> {
        let mut all: Vec<ScalingActivity> = self.all_json(ACTIVITIES).await?;
        all.reverse();
        Ok(all)
    }

    pub async fn prune_scaling_activities(&self, before: Timestamp) -> Result<usize, ControlError> {
        self.db(move |s| s.prune_records(ACTIVITIES, before.millis())).await
    }

    /// Once a second: finishes activities whose instances are up, then lets every policy of
    /// every target decide, looking at the last `window_secs` of metrics.
    pub async fn run_autoscaling(self: &Arc<Self>, now: Timestamp, window_secs: u64) -> Result<(), ControlError> {
        let activities = self.scaling_activities().await?;
        for mut a in activities.iter().filter(|a| a.status == ActivityStatus::InProgress).cloned() {
            let Some(standing) = self.standing(&a.resource_id).await else { continue };
            let Some(reached) = standing.reached else { continue };
            (a.status, a.message) = match reached {
                Ok(()) => (
                    ActivityStatus::Successful,
                    Some(format!(
                        "Successfully set desired {} count to {}. Change successfully fulfilled by sagemaker.",
                        standing.unit, a.to
                    )),
                ),
                Err(reason) => (ActivityStatus::Failed, Some(reason)),
            };
            a.end = Some(now);
            self.put_json(ACTIVITIES, a.id.clone(), a.start, &a).await?;
        }
        let policies = self.scaling_policies().await?;
        for target in self.scalable_targets().await? {
            let busy = activities.iter().any(|a| a.resource_id == target.resource_id && a.status == ActivityStatus::InProgress);
            if !busy {
                let mine: Vec<&ScalingPolicy> = policies.iter().filter(|p| p.resource_id == target.resource_id).collect();
                let last = activities.iter().find(|a| a.resource_id == target.resource_id);
                if let Err(e) = self.scale_target(&target, &mine, last, now, window_secs).await {
                    tracing::warn!(resource = %target.resource_id, error = %e, "autoscaling step failed");
                }
            }
        }
        Ok(())
    }

    async fn scale_target(
        self: &Arc<Self>,
        target: &ScalableTarget,
        policies: &[&ScalingPolicy],
        last: Option<&ScalingActivity>,
        now: Timestamp,
        window_secs: u64,
    ) -> Result<(), ControlError> {
        let resource = ScalableResource::parse(&target.resource_id)?;
        let Some(standing) = self.standing(&target.resource_id).await else { return Ok(()) };
        if !standing.in_service {
            return Ok(()); // never during a deployment or another change
        }
        let current = standing.desired;
        let since_last = last.map_or(u64::MAX, |a| ((now.millis() - a.start.millis()).max(0) / 1000) as u64);
        let mut decision: Option<(u32, String)> = None;
        if current < target.min || current > target.max {
            let to = current.clamp(target.min, target.max);
            decision = Some((
                to,
                format!("the instance count {current} was outside the scalable target's range [{}, {}]", target.min, target.max),
            ));
        }
        let window = window_secs.max(1);
        let end = (now.millis() / 1000) as u64;
        let dims = standing.dimensions.clone();
        for p in policies {
            if decision.is_some() {
                break;
            }
            match &p.config {
                PolicyConfig::TargetTracking(t) => {
                    let (namespace, metric_name, dimensions, statistic) = match &t.metric {
                        TrackedMetric::InvocationsPerInstance | TrackedMetric::InvocationsPerCopy => {
                            ("AWS/SageMaker".to_string(), standing.per_unit_metric.to_string(), dims.clone(), "Sum".to_string())
                        }
                        TrackedMetric::Custom { namespace, metric_name, dimensions, statistic } => {
                            (namespace.clone(), metric_name.clone(), dimensions.clone(), statistic.clone())
                        }
                    };
                    let q = MetricQuery {
                        namespace,
                        metric_name: metric_name.clone(),
                        dimensions,
                        start: end.saturating_sub(window),
                        end,
                        period: window,
                    };
                    let (points, _) = self.metric_datapoints(&q).await?;
                    let value = match (&t.metric, points.first()) {
                        // Invocations per instance (copy) per minute, from the window's per-second samples.
                        (TrackedMetric::InvocationsPerInstance | TrackedMetric::InvocationsPerCopy, point) => {
                            point.map_or(0.0, |d| d.sum * 60.0 / window as f64)
                        }
                        (TrackedMetric::Custom { .. }, Some(d)) => match d.statistic(&statistic) {
                            Some(v) => v,
                            None => continue,
                        },
                        (TrackedMetric::Custom { .. }, None) => continue, // no data: no decision
                    };
                    let wanted = t.desired(current, value, target.min, target.max);
                    let out_ok = wanted > current && !target.suspended.scale_out && since_last >= u64::from(t.scale_out_cooldown_secs);
                    let in_ok = wanted < current
                        && !t.disable_scale_in
                        && !target.suspended.scale_in
                        && since_last >= u64::from(t.scale_in_cooldown_secs);
                    if out_ok || in_ok {
                        decision = Some((
                            wanted,
                            format!(
                                "policy {}: {metric_name} was {value:.1} over the last {window} s against a target of {}",
                                p.name, t.target
                            ),
                        ));
                    }
                }
                PolicyConfig::Step(s) => {
                    if since_last < u64::from(s.cooldown_secs) {
                        continue;
                    }
                    for alarm in self
                        .alarms()
                        .await?
                        .into_iter()
                        .filter(|a| a.state == AlarmState::Alarm && a.actions.alarm_actions.contains(&p.arn))
                    {
                        let latest = alarm
                            .state_reason_data
                            .as_deref()
                            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                            .and_then(|d| d["recentDatapoints"].as_array().and_then(|a| a.last()).and_then(|v| v.as_f64()));
                        let Some(value) = latest else { continue };
                        let wanted = s.desired(current, value - alarm.threshold, target.min, target.max);
                        let allowed = |w: u32| (w > current && !target.suspended.scale_out) || (w < current && !target.suspended.scale_in);
                        if let Some(w) = wanted.filter(|w| allowed(*w)) {
                            decision = Some((w, format!("monitor alarm {} in state ALARM triggered policy {}", alarm.name, p.name)));
                            break;
                        }
                    }
                }
            }
        }
        let Some((to, cause)) = decision else { return Ok(()) };
        match &resource {
            ScalableResource::Variant { endpoint, variant } => {
                let desired =
                    vec![DesiredWeightAndCapacity { variant: variant.clone(), weight: None, instance_count: Some(to), serverless: None }];
                self.update_weights_and_capacities(endpoint, desired).await?;
            }
            ScalableResource::Component(name) => {
                self.update_inference_component(name, None, Some(to), None).await?;
            }
        }
        let verb = if to > current { "Increasing" } else { "Decreasing" };
        let unit = standing.unit;
        let activity = ScalingActivity {
            id: format!("{:032x}", fastrand::u128(..)),
            resource_id: target.resource_id.clone(),
            description: format!("Setting desired {unit} count to {to}."),
            cause: format!("{verb} the desired {unit} count from {current} to {to}: {cause}"),
            from: current,
            to,
            start: now,
            end: None,
            status: ActivityStatus::InProgress,
            message: None,
        };
        tracing::info!(resource = %target.resource_id, from = current, to, %cause, "autoscaling");
        self.put_json(ACTIVITIES, activity.id.clone(), activity.start, &activity).await
    }
}

impl Controller {
    /// Where the resource a target scales stands (None: it is gone).
    async fn standing(&self, resource_id: &str) -> Option<Standing> {
        match ScalableResource::parse(resource_id).ok()? {
            ScalableResource::Variant { endpoint, variant } => {
                let e = self.describe_endpoint(&endpoint).await.ok()?;
                let v = e.variant(&variant)?;
                let in_service = e.status == EndpointStatus::InService;
                let reached = in_service.then(|| match v.current_instance_count == v.desired_instance_count {
                    true => Ok(()),
                    false => {
                        Err(e.failure_reason.clone().unwrap_or_else(|| format!("The variant runs {} instances.", v.current_instance_count)))
                    }
                });
                Some(Standing {
                    desired: v.desired_instance_count,
                    reached,
                    dimensions: vec![("EndpointName".to_string(), e.name.clone()), ("VariantName".to_string(), variant)],
                    per_unit_metric: "InvocationsPerInstance",
                    in_service,
                    unit: "instance",
                })
            }
            ScalableResource::Component(name) => {
                let c = self.describe_inference_component(&name).await.ok()?;
                let in_service = c.status == ComponentStatus::InService;
                let reached = in_service.then(|| match c.current_copies == c.desired_copies {
                    true => Ok(()),
                    false => Err(format!(
                        "The inference component runs {} of its {} copies; the others wait for room on its endpoint's instances.",
                        c.current_copies, c.desired_copies
                    )),
                });
                Some(Standing {
                    desired: c.desired_copies,
                    reached,
                    dimensions: vec![("InferenceComponentName".to_string(), c.name.clone())],
                    per_unit_metric: "InvocationsPerCopy",
                    in_service,
                    unit: "copy",
                })
            }
        }
    }
}

fn policy_key(resource_id: &str, name: &str) -> String {
    format!("{resource_id}\u{0}{name}")
}
