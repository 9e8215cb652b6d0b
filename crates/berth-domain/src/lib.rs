//! berth's domain: the resources SageMaker's hosting API manages, and the rules they obey.
//!
//! Everything here is plain data and pure functions: no I/O, no async, no wire casing.
//! The AWS edge (`berth-aws`) converts its JSON shapes into these types; the store
//! (`berth-store`) persists them; the controller (`berth-control`) changes them.

#![forbid(unsafe_code)]

/// An enum of SageMaker's names (statuses and the like): its variants as the wire spells them,
/// `ALL`, `as_str`, `parse` and `names`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        wire_enum!($(#[$meta])* $name { $($variant = stringify!($variant)),+ });
    };
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $wire:expr),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            /// Every name, as validation errors list them.
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.as_str()).collect()
            }
        }
    };
}

mod alarm;
mod autoscaling;
mod deployment;
mod endpoint;
mod endpoint_config;
mod error;
mod event;
mod experiment;
mod framework;
mod inference_component;
mod instance_types;
mod json_path;
mod model;
mod model_package;
mod monitoring;
mod multi_model;
mod names;
mod private_paths;
mod processing;
mod recommendation;
mod time;
mod transform;
mod weights;

pub use alarm::{
    fuzz_alarm_evaluation, Alarm, AlarmActions, AlarmState, Comparison, Evaluation, MissingData, MAX_EVALUATION_RANGE_SECS,
    MAX_SUB_HOUR_EVALUATION_RANGE_SECS,
};
pub use autoscaling::{
    parse_resource_id, ActivityStatus, AdjustmentType, PolicyConfig, ScalableResource, ScalableTarget, ScalingActivity, ScalingPolicy,
    StepAdjustment, StepScaling, Suspended, TargetTracking, TrackedMetric, COMPONENT_SCALABLE_DIMENSION, SCALABLE_DIMENSION,
};
pub use deployment::{
    BlueGreenPolicy, CapacitySize, CapacityUnit, DeploymentConfig, PendingDeployment, RollingPolicy, TrafficRouting, TrafficStep,
    UpdatePolicy, VariantPhase,
};
pub use endpoint::{Endpoint, EndpointStatus, PendingUpdate, VariantState};
pub use endpoint_config::{AsyncInference, DataCapture, EndpointConfig, RoutingStrategy, ServerlessConfig, VariantSpec};
pub use error::DomainError;
pub use event::{Event, EventKind, NewEvent};
pub use experiment::{ExperimentStatus, ExperimentVariant, InferenceExperiment, VariantAction, DEFAULT_EXPERIMENT_SECS};
pub use framework::{framework_of, Framework, FrameworkKind};
pub use inference_component::{
    place, ComponentDeployment, ComponentRevision, ComponentRollout, ComponentStatus, ComputeRequirements, InferenceComponent,
    InstanceCapacity, ManagedInstanceScaling, NewCopy, PlacementDemand, PlacementPlan, RolloutProgress, RunningCopy,
};
pub use instance_types::PRODUCTION_VARIANT_INSTANCE_TYPES;
pub use json_path::JsonPath;
pub use model::{
    environment_name_refused, validate_environment, BuiltinImage, ContainerSpec, ExecutionMode, Image, Model, MultiContainer, S3DataSource,
    VpcConfig,
};
pub use model_package::{ModelApprovalStatus, ModelPackage, ModelPackageGroup};
pub use monitoring::{
    parse_offset, ExecutionStatus, ModelQualityJob, MonitoringExecution, MonitoringJob, MonitoringJobDefinition, MonitoringSchedule,
    MonitoringType, ScheduleExpression, ScheduleStatus,
};
pub use multi_model::{is_model_name, ModelFetchRequest, ModelLoadRequest};
pub use names::{random_uuid, validate_name, Account, NameKey, ResourceKind};
pub use private_paths::redact_private_paths;
pub use processing::{
    is_model_monitor_analyzer, LogEvent, ProcessingJob, ProcessingJobStatus, ProcessingLocation, MAX_JOB_LOG_LINES, MODEL_MONITOR_ANALYZER,
};
pub use recommendation::{
    phase_steps, stairs_steps, Benchmark, BenchmarkMetrics, Candidate, LatencyThreshold, LoadPoint, RecommendationJob,
    RecommendationJobStatus, RecommendationJobType, Traffic, DEFAULT_CANDIDATE_TYPES, DEFAULT_THRESHOLD, LIST_PRICES,
};
pub use time::{Clock, SystemClock, Timestamp};
pub use transform::{BatchStrategy, TransformJob, TransformJobStatus};
pub use weights::pick_weighted;

/// Checks an instance type against the names SageMaker accepts.
pub fn validate_instance_type(instance_type: &str) -> Result<(), DomainError> {
    if PRODUCTION_VARIANT_INSTANCE_TYPES.binary_search(&instance_type).is_ok() {
        Ok(())
    } else {
        Err(DomainError::Validation(format!(
            "1 validation error detected: Value '{instance_type}' at 'productionVariants.1.member.instanceType' \
             failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            PRODUCTION_VARIANT_INSTANCE_TYPES.join(", ")
        )))
    }
}

/// The vCPUs of an instance type, from its size (EC2's convention: `large` = 2, `xlarge` = 4,
/// `Nxlarge` = 4N; `medium` and smaller = 1; `metal` = 96).
pub fn instance_vcpus(instance_type: &str) -> u32 {
    let size = instance_type.rsplit('.').next().unwrap_or("");
    match size {
        "nano" | "micro" | "small" | "medium" => 1,
        "large" => 2,
        "xlarge" => 4,
        "metal" => 96,
        s => s.strip_suffix("xlarge").and_then(|n| n.parse::<u32>().ok()).map_or(2, |n| 4 * n),
    }
}

/// The memory of an instance type in MiB: its vCPUs times the family's memory per vCPU (EC2's
/// ratios: compute `c` 2 GiB, general `m`/`t` 4 GiB, memory `r` 8 GiB, `x` 16 GiB, GPU `g` 4 GiB,
/// `p` 7.6 GiB, `inf`/`trn` 2–4 GiB). Close for common types; used to size workers and to
/// report MemoryUtilization.
pub fn instance_memory_mib(instance_type: &str) -> u64 {
    let family = instance_type.strip_prefix("ml.").unwrap_or(instance_type).split('.').next().unwrap_or("");
    let per_vcpu_mib = match family.chars().next() {
        Some('c') => 2048,
        Some('r') | Some('z') => 8192,
        Some('x') => 16384,
        Some('p') => 7782,
        Some('i') if family.starts_with("inf") => 2048,
        Some('t') if family.starts_with("trn") => 4096,
        _ => 4096,
    };
    // The burstable `t` sizes have more memory than their one counted vCPU says.
    let vcpus = match (family.starts_with('t') && !family.starts_with("trn"), instance_type.rsplit('.').next()) {
        (true, Some("medium")) => 1,
        _ => instance_vcpus(instance_type) as u64,
    };
    vcpus.max(1) * per_vcpu_mib
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_follows_family_and_size() {
        assert_eq!(instance_memory_mib("ml.m5.large"), 8192);
        assert_eq!(instance_memory_mib("ml.c5.xlarge"), 8192);
        assert_eq!(instance_memory_mib("ml.r5.large"), 16384);
        assert_eq!(instance_memory_mib("ml.t2.medium"), 4096);
        assert_eq!(instance_memory_mib("ml.g4dn.xlarge"), 16384);
    }

    #[test]
    fn vcpus_follow_the_size() {
        assert_eq!(instance_vcpus("ml.t2.medium"), 1);
        assert_eq!(instance_vcpus("ml.m5.large"), 2);
        assert_eq!(instance_vcpus("ml.m5.xlarge"), 4);
        assert_eq!(instance_vcpus("ml.c5.4xlarge"), 16);
        assert_eq!(instance_vcpus("ml.p4d.24xlarge"), 96);
    }

    #[test]
    fn instance_types_are_sorted_for_binary_search() {
        assert!(PRODUCTION_VARIANT_INSTANCE_TYPES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn known_instance_types_pass_and_unknown_fail() {
        assert!(validate_instance_type("ml.m5.large").is_ok());
        assert!(validate_instance_type("ml.c5.4xlarge").is_ok());
        assert!(validate_instance_type("ml.m5.huge").is_err());
        assert!(validate_instance_type("").is_err());
    }
}
