//! The wire shapes of deployment guardrails (SageMaker's `DeploymentConfig`, and
//! DescribeEndpoint's `LastDeploymentConfig` and `PendingDeploymentSummary`) and their
//! conversion to and from domain types.

use crate::error::EdgeError;
use crate::wire;
use berth_domain::{
    BlueGreenPolicy, CapacitySize, CapacityUnit, DeploymentConfig, Endpoint, RollingPolicy, Timestamp, TrafficRouting, UpdatePolicy,
};

fn capacity(field: &str, c: &wire::CapacitySize) -> Result<CapacitySize, EdgeError> {
    let unit = match c.kind.as_str() {
        "INSTANCE_COUNT" => CapacityUnit::InstanceCount,
        "CAPACITY_PERCENT" => CapacityUnit::CapacityPercent,
        other => return Err(crate::aws_json::enum_error(&format!("{field}.type"), other, &["INSTANCE_COUNT", "CAPACITY_PERCENT"])),
    };
    Ok(CapacitySize { unit, value: c.value })
}

fn wait(field: &str, secs: u32) -> Result<u32, EdgeError> {
    if secs > 3600 {
        return Err(EdgeError::validation(format!("{field} ({secs}) must be between 0 and 3600.")));
    }
    Ok(secs)
}

/// The domain config of a wire `DeploymentConfig`.
pub fn deployment_config(w: wire::DeploymentConfig) -> Result<DeploymentConfig, EdgeError> {
    let policy = match (w.blue_green_update_policy, w.rolling_update_policy) {
        (Some(_), Some(_)) => {
            return Err(EdgeError::validation("Only one update policy may be specified: BlueGreenUpdatePolicy or RollingUpdatePolicy."));
        }
        (Some(bg), None) => {
            let t = &bg.traffic_routing_configuration;
            let routing = match (t.kind.as_str(), &t.canary_size, &t.linear_step_size) {
                ("ALL_AT_ONCE", None, None) => TrafficRouting::AllAtOnce,
                ("CANARY", Some(c), None) => TrafficRouting::Canary(capacity("canarySize", c)?),
                ("LINEAR", None, Some(l)) => TrafficRouting::Linear(capacity("linearStepSize", l)?),
                ("CANARY", _, _) => return Err(EdgeError::validation("CANARY traffic routing needs CanarySize (and no LinearStepSize).")),
                ("LINEAR", _, _) => return Err(EdgeError::validation("LINEAR traffic routing needs LinearStepSize (and no CanarySize).")),
                ("ALL_AT_ONCE", _, _) => {
                    return Err(EdgeError::validation("ALL_AT_ONCE traffic routing takes no CanarySize or LinearStepSize."))
                }
                (other, _, _) => {
                    return Err(crate::aws_json::enum_error(
                        "trafficRoutingConfiguration.type",
                        other,
                        &["ALL_AT_ONCE", "CANARY", "LINEAR"],
                    ))
                }
            };
            Some(UpdatePolicy::BlueGreen(BlueGreenPolicy {
                routing,
                wait_interval_secs: wait("WaitIntervalInSeconds", t.wait_interval_in_seconds)?,
                termination_wait_secs: wait("TerminationWaitInSeconds", bg.termination_wait_in_seconds.unwrap_or(0))?,
                max_execution_secs: bg.maximum_execution_timeout_in_seconds,
            }))
        }
        (None, Some(r)) => Some(UpdatePolicy::Rolling(RollingPolicy {
            max_batch: capacity("maximumBatchSize", &r.maximum_batch_size)?,
            wait_interval_secs: wait("WaitIntervalInSeconds", r.wait_interval_in_seconds)?,
            max_execution_secs: r.maximum_execution_timeout_in_seconds,
            rollback_max_batch: r.rollback_maximum_batch_size.as_ref().map(|c| capacity("rollbackMaximumBatchSize", c)).transpose()?,
        })),
        (None, None) => None,
    };
    let rollback_alarms = w.auto_rollback_configuration.map(|a| a.alarms.into_iter().map(|a| a.alarm_name).collect()).unwrap_or_default();
    Ok(DeploymentConfig { policy, rollback_alarms })
}

fn capacity_wire(c: CapacitySize) -> wire::CapacitySize {
    let kind = match c.unit {
        CapacityUnit::InstanceCount => "INSTANCE_COUNT",
        CapacityUnit::CapacityPercent => "CAPACITY_PERCENT",
    };
    wire::CapacitySize { kind: kind.into(), value: c.value }
}

/// The wire `DeploymentConfig` of a domain one (for DescribeEndpoint's `LastDeploymentConfig`).
pub fn deployment_config_wire(c: &DeploymentConfig) -> wire::DeploymentConfig {
    let (blue_green_update_policy, rolling_update_policy) = match &c.policy {
        None => (None, None),
        Some(UpdatePolicy::BlueGreen(p)) => {
            let (kind, canary_size, linear_step_size) = match p.routing {
                TrafficRouting::AllAtOnce => ("ALL_AT_ONCE", None, None),
                TrafficRouting::Canary(s) => ("CANARY", Some(capacity_wire(s)), None),
                TrafficRouting::Linear(s) => ("LINEAR", None, Some(capacity_wire(s))),
            };
            let routing = wire::TrafficRoutingConfig {
                kind: kind.into(),
                wait_interval_in_seconds: p.wait_interval_secs,
                canary_size,
                linear_step_size,
            };
            let bg = wire::BlueGreenUpdatePolicy {
                traffic_routing_configuration: routing,
                termination_wait_in_seconds: Some(p.termination_wait_secs),
                maximum_execution_timeout_in_seconds: p.max_execution_secs,
            };
            (Some(bg), None)
        }
        Some(UpdatePolicy::Rolling(p)) => (
            None,
            Some(wire::RollingUpdatePolicy {
                maximum_batch_size: capacity_wire(p.max_batch),
                wait_interval_in_seconds: p.wait_interval_secs,
                maximum_execution_timeout_in_seconds: p.max_execution_secs,
                rollback_maximum_batch_size: p.rollback_max_batch.map(capacity_wire),
            }),
        ),
    };
    let auto_rollback_configuration = (!c.rollback_alarms.is_empty())
        .then(|| wire::AutoRollbackConfig { alarms: c.rollback_alarms.iter().map(|n| wire::AlarmRef { alarm_name: n.clone() }).collect() });
    wire::DeploymentConfig { blue_green_update_policy, rolling_update_policy, auto_rollback_configuration }
}

/// DescribeEndpoint's `PendingDeploymentSummary` while a guarded deployment runs.
pub fn pending_deployment_summary(e: &Endpoint) -> Option<wire::PendingDeploymentSummary> {
    let p = e.pending.as_ref()?.deployment.as_ref()?;
    let secs = |t: Timestamp| t.as_secs_f64();
    let production_variants = e
        .pending_variants()
        .iter()
        .map(|v| wire::PendingProductionVariantSummary {
            variant_name: v.name.clone(),
            current_weight: v.current_weight * p.green_share,
            desired_weight: v.desired_weight,
            current_instance_count: if p.green_share > 0.0 { v.desired_instance_count } else { 0 },
            desired_instance_count: v.desired_instance_count,
            instance_type: v.instance_type.clone(),
            variant_status: vec![wire::VariantStatus {
                status: p.phase.as_str().into(),
                status_message: Some(p.message.clone()),
                start_time: secs(p.phase_started),
            }],
        })
        .collect();
    Some(wire::PendingDeploymentSummary { endpoint_config_name: p.config_name.clone(), production_variants, start_time: secs(p.started) })
}
