//! Inference experiments (SageMaker's shadow testing API): a shadow variant put beside an
//! endpoint's production variant for a scheduled time, then promoted, removed or retained.

use crate::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExperimentStatus {
    Creating,
    Created,
    Updating,
    Starting,
    Running,
    Stopping,
    Completed,
    Cancelled,
}

impl ExperimentStatus {
    pub const ALL: [ExperimentStatus; 8] = [
        ExperimentStatus::Creating,
        ExperimentStatus::Created,
        ExperimentStatus::Updating,
        ExperimentStatus::Starting,
        ExperimentStatus::Running,
        ExperimentStatus::Stopping,
        ExperimentStatus::Completed,
        ExperimentStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExperimentStatus::Creating => "Creating",
            ExperimentStatus::Created => "Created",
            ExperimentStatus::Updating => "Updating",
            ExperimentStatus::Starting => "Starting",
            ExperimentStatus::Running => "Running",
            ExperimentStatus::Stopping => "Stopping",
            ExperimentStatus::Completed => "Completed",
            ExperimentStatus::Cancelled => "Cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<ExperimentStatus> {
        ExperimentStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether the experiment is over (it can be deleted, not started again).
    pub fn ended(self) -> bool {
        matches!(self, ExperimentStatus::Completed | ExperimentStatus::Cancelled)
    }
}

/// One model variant of an experiment: a model on real-time instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentVariant {
    pub variant_name: String,
    pub model_name: String,
    pub instance_type: String,
    pub instance_count: u32,
}

/// What StopInferenceExperiment does with a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VariantAction {
    Promote,
    Remove,
    Retain,
}

impl VariantAction {
    pub fn parse(s: &str) -> Option<VariantAction> {
        match s {
            "Promote" => Some(VariantAction::Promote),
            "Remove" => Some(VariantAction::Remove),
            "Retain" => Some(VariantAction::Retain),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceExperiment {
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    pub role_arn: String,
    pub endpoint_name: String,
    pub variants: Vec<ExperimentVariant>,
    /// The production variant whose requests are copied.
    pub source_variant: String,
    pub shadow_variant: String,
    /// Percent of the source variant's requests copied to the shadow.
    pub sampling_percentage: u32,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub status: ExperimentStatus,
    pub status_reason: Option<String>,
    pub created: Timestamp,
    pub modified: Timestamp,
    pub completed: Option<Timestamp>,
    /// The endpoint config berth made to run the experiment.
    pub endpoint_config_name: Option<String>,
    pub data_storage_destination: Option<String>,
    pub kms_key: Option<String>,
    /// While `Stopping`: the status to end in once the endpoint runs its final config.
    #[serde(default)]
    pub stop_to: Option<ExperimentStatus>,
}

impl InferenceExperiment {
    /// A shadow test on endpoint `endpoint` copying `sampling_percentage` percent of
    /// `source_variant`'s requests to `shadow_variant`, not yet created (no ARN, times or
    /// variants; no schedule: it starts when created and runs SageMaker's default length).
    pub fn shadow(name: &str, endpoint: &str, source_variant: &str, shadow_variant: &str, sampling_percentage: u32) -> Self {
        let zero = Timestamp::from_millis(0);
        InferenceExperiment {
            name: name.into(),
            arn: String::new(),
            description: None,
            role_arn: String::new(),
            endpoint_name: endpoint.into(),
            variants: Vec::new(),
            source_variant: source_variant.into(),
            shadow_variant: shadow_variant.into(),
            sampling_percentage,
            start: None,
            end: None,
            status: ExperimentStatus::Created,
            status_reason: None,
            created: zero,
            modified: zero,
            completed: None,
            endpoint_config_name: None,
            data_storage_destination: None,
            kms_key: None,
            stop_to: None,
        }
    }

    pub fn variant(&self, name: &str) -> Option<&ExperimentVariant> {
        self.variants.iter().find(|v| v.variant_name == name)
    }
}

/// Seven days: how long an experiment without an end time runs (as on SageMaker).
pub const DEFAULT_EXPERIMENT_SECS: i64 = 7 * 24 * 3600;
