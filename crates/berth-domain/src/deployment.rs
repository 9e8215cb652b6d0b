//! Deployment guardrails: how an endpoint update moves traffic from the running fleet (blue) to
//! the new one (green) — all at once, canary or linear, or a rolling replacement in batches —
//! and which alarms roll it back. The plans here are pure arithmetic; the controller carries
//! them out.

use crate::{DomainError, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CapacityUnit {
    InstanceCount,
    CapacityPercent,
}

/// A number of instances, or a percentage of a fleet's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacitySize {
    pub unit: CapacityUnit,
    pub value: u32,
}

impl CapacitySize {
    /// Instances out of a fleet of `fleet` (at least one).
    pub fn instances(&self, fleet: u32) -> u32 {
        let n = match self.unit {
            CapacityUnit::InstanceCount => self.value,
            CapacityUnit::CapacityPercent => (u64::from(fleet) * u64::from(self.value)).div_ceil(100) as u32,
        };
        n.clamp(1, fleet.max(1))
    }

    /// The share of a fleet of `fleet` instances, in (0, 1].
    pub fn share(&self, fleet: u32) -> f64 {
        match self.unit {
            CapacityUnit::InstanceCount => f64::from(self.value) / f64::from(fleet.max(1)),
            CapacityUnit::CapacityPercent => f64::from(self.value) / 100.0,
        }
        .min(1.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrafficRouting {
    AllAtOnce,
    Canary(CapacitySize),
    Linear(CapacitySize),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlueGreenPolicy {
    pub routing: TrafficRouting,
    /// Seconds between traffic steps.
    pub wait_interval_secs: u32,
    /// Seconds the old fleet stays up after all traffic moved (the final baking period).
    pub termination_wait_secs: u32,
    pub max_execution_secs: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollingPolicy {
    pub max_batch: CapacitySize,
    /// Seconds each batch bakes before the next.
    pub wait_interval_secs: u32,
    pub max_execution_secs: Option<u32>,
    /// Batch size of a rollback (default: the whole fleet at once).
    pub rollback_max_batch: Option<CapacitySize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdatePolicy {
    BlueGreen(BlueGreenPolicy),
    Rolling(RollingPolicy),
}

/// `DeploymentConfig` of CreateEndpoint and UpdateEndpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentConfig {
    /// None: blue/green, all at once, no baking (SageMaker's default).
    pub policy: Option<UpdatePolicy>,
    /// Alarms that roll the deployment back while any is in ALARM.
    pub rollback_alarms: Vec<String>,
}

/// One step of traffic shifting: the green fleet's share of traffic, then seconds to watch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrafficStep {
    pub green_share: f64,
    pub wait_secs: u32,
}

impl BlueGreenPolicy {
    /// The traffic steps for a green fleet of `instances` instances; the last step moves all
    /// traffic and is followed by the baking period (`termination_wait_secs`).
    pub fn steps(&self, instances: u32) -> Vec<TrafficStep> {
        let all = TrafficStep { green_share: 1.0, wait_secs: self.termination_wait_secs };
        match self.routing {
            TrafficRouting::AllAtOnce => vec![all],
            TrafficRouting::Canary(size) => {
                vec![TrafficStep { green_share: size.share(instances), wait_secs: self.wait_interval_secs }, all]
            }
            TrafficRouting::Linear(size) => {
                let step = size.share(instances);
                let mut out = Vec::new();
                let mut share = step;
                while share < 1.0 - 1e-9 {
                    out.push(TrafficStep { green_share: share, wait_secs: self.wait_interval_secs });
                    share += step;
                }
                out.push(all);
                out
            }
        }
    }
}

impl DeploymentConfig {
    /// Checks the config against the fleet it would deploy (`instances` of the new config; the
    /// variant counts of both configs for rolling updates), as SageMaker does.
    pub fn validate(&self, instances: u32, single_variant_same_name: bool) -> Result<(), DomainError> {
        let invalid = |m: String| Err(DomainError::Validation(m));
        if self.rollback_alarms.len() > 10 {
            return invalid("AutoRollbackConfiguration.Alarms holds at most 10 alarms.".into());
        }
        match &self.policy {
            None => Ok(()),
            Some(UpdatePolicy::BlueGreen(p)) => {
                check_timeout(p.max_execution_secs)?;
                let (label, size) = match p.routing {
                    TrafficRouting::AllAtOnce => return Ok(()),
                    TrafficRouting::Canary(s) => ("CanarySize", s),
                    TrafficRouting::Linear(s) => ("LinearStepSize", s),
                };
                check_size(label, size)?;
                if size.share(instances) > 0.5 + 1e-9 {
                    return invalid(format!(
                        "{label} ({}) must be at most 50% of the new fleet's {instances} instance(s).",
                        describe(size)
                    ));
                }
                Ok(())
            }
            Some(UpdatePolicy::Rolling(p)) => {
                check_timeout(p.max_execution_secs)?;
                check_size("MaximumBatchSize", p.max_batch)?;
                if let Some(r) = p.rollback_max_batch {
                    check_size("RollbackMaximumBatchSize", r)?;
                }
                if !single_variant_same_name {
                    return invalid(
                        "A rolling deployment needs an endpoint with one variant, updated to an endpoint config with a \
                         variant of the same name."
                            .into(),
                    );
                }
                if p.max_batch.share(instances) > 0.5 + 1e-9 {
                    return invalid(format!(
                        "MaximumBatchSize ({}) must be at most 50% of the variant's {instances} instance(s).",
                        describe(p.max_batch)
                    ));
                }
                Ok(())
            }
        }
    }
}

fn describe(size: CapacitySize) -> String {
    match size.unit {
        CapacityUnit::InstanceCount => format!("{} instance(s)", size.value),
        CapacityUnit::CapacityPercent => format!("{}%", size.value),
    }
}

fn check_size(label: &str, size: CapacitySize) -> Result<(), DomainError> {
    if size.value < 1 || (size.unit == CapacityUnit::CapacityPercent && size.value > 100) {
        return Err(DomainError::Validation(format!("{label} must be at least 1 (and a percentage at most 100).")));
    }
    Ok(())
}

pub(crate) fn check_timeout(secs: Option<u32>) -> Result<(), DomainError> {
    match secs {
        Some(s) if !(600..=28800).contains(&s) => {
            Err(DomainError::Validation(format!("MaximumExecutionTimeoutInSeconds ({s}) must be between 600 and 28800.")))
        }
        _ => Ok(()),
    }
}

/// What a variant of a pending deployment is doing, as DescribeEndpoint's `VariantStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VariantPhase {
    Creating,
    Updating,
    Deleting,
    ActivatingTraffic,
    Baking,
}

impl VariantPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            VariantPhase::Creating => "Creating",
            VariantPhase::Updating => "Updating",
            VariantPhase::Deleting => "Deleting",
            VariantPhase::ActivatingTraffic => "ActivatingTraffic",
            VariantPhase::Baking => "Baking",
        }
    }
}

/// A deployment in progress: DescribeEndpoint's `PendingDeploymentSummary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingDeployment {
    pub config_name: String,
    pub started: Timestamp,
    pub phase: VariantPhase,
    pub message: String,
    pub phase_started: Timestamp,
    /// The new fleet's share of traffic now.
    pub green_share: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(routing: TrafficRouting) -> BlueGreenPolicy {
        BlueGreenPolicy { routing, wait_interval_secs: 5, termination_wait_secs: 7, max_execution_secs: None }
    }
    const PCT: CapacityUnit = CapacityUnit::CapacityPercent;
    const COUNT: CapacityUnit = CapacityUnit::InstanceCount;

    #[test]
    fn canary_then_everything() {
        let steps = policy(TrafficRouting::Canary(CapacitySize { unit: COUNT, value: 1 })).steps(4);
        assert_eq!(steps, vec![TrafficStep { green_share: 0.25, wait_secs: 5 }, TrafficStep { green_share: 1.0, wait_secs: 7 }]);
        assert_eq!(policy(TrafficRouting::AllAtOnce).steps(3), vec![TrafficStep { green_share: 1.0, wait_secs: 7 }]);
    }

    #[test]
    fn linear_in_equal_steps() {
        let shares: Vec<f64> =
            policy(TrafficRouting::Linear(CapacitySize { unit: PCT, value: 25 })).steps(2).iter().map(|s| s.green_share).collect();
        assert_eq!(shares, vec![0.25, 0.5, 0.75, 1.0]);
        let shares: Vec<f64> =
            policy(TrafficRouting::Linear(CapacitySize { unit: PCT, value: 40 })).steps(2).iter().map(|s| s.green_share).collect();
        assert_eq!(shares, vec![0.4, 0.8, 1.0]);
    }

    #[test]
    fn sizes_are_checked_like_sagemaker() {
        let bg = |routing| DeploymentConfig { policy: Some(UpdatePolicy::BlueGreen(policy(routing))), rollback_alarms: vec![] };
        assert!(bg(TrafficRouting::Canary(CapacitySize { unit: COUNT, value: 1 })).validate(2, false).is_ok());
        assert!(
            bg(TrafficRouting::Canary(CapacitySize { unit: COUNT, value: 2 })).validate(2, false).is_err(),
            "canary of the whole fleet"
        );
        assert!(bg(TrafficRouting::Linear(CapacitySize { unit: PCT, value: 60 })).validate(4, false).is_err());
        let rolling = DeploymentConfig {
            policy: Some(UpdatePolicy::Rolling(RollingPolicy {
                max_batch: CapacitySize { unit: COUNT, value: 1 },
                wait_interval_secs: 1,
                max_execution_secs: Some(100),
                rollback_max_batch: None,
            })),
            rollback_alarms: vec![],
        };
        assert!(rolling.validate(2, true).is_err(), "timeout below 600");
        assert_eq!(CapacitySize { unit: PCT, value: 34 }.instances(3), 2);
        assert_eq!(CapacitySize { unit: COUNT, value: 5 }.instances(3), 3);
    }
}
