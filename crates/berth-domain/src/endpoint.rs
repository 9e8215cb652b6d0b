use crate::{ContainerSpec, DataCapture, DeploymentConfig, PendingDeployment, RoutingStrategy, ServerlessConfig, Timestamp};
use serde::{Deserialize, Serialize};

/// An endpoint and the state of its variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub arn: String,
    pub created: Timestamp,
    pub modified: Timestamp,
    /// The config whose variants serve traffic (the one being created, while `Creating`).
    pub config_name: String,
    /// The config an update is moving to, while `Updating`.
    pub pending_config_name: Option<String>,
    pub status: EndpointStatus,
    pub failure_reason: Option<String>,
    pub variants: Vec<VariantState>,
    /// Variant states the pending update will install once its instances are healthy.
    pub pending_variants: Option<Vec<VariantState>>,
    /// The deployment config of the latest update (or of CreateEndpoint).
    #[serde(default)]
    pub last_deployment_config: Option<DeploymentConfig>,
    /// The deployment config of the update in progress.
    #[serde(default)]
    pub pending_deployment_config: Option<DeploymentConfig>,
    /// Progress of a guarded deployment in progress.
    #[serde(default)]
    pub pending_deployment: Option<PendingDeployment>,
    /// Data capture of the config the endpoint runs.
    #[serde(default)]
    pub data_capture: Option<DataCapture>,
    /// Data capture of the config an update is moving to.
    #[serde(default)]
    pub pending_data_capture: Option<DataCapture>,
    /// The production variants' weights before the last weight change, for rolling it back.
    #[serde(default)]
    pub previous_weights: Option<Vec<(String, f64)>>,
}

impl Endpoint {
    pub fn variant(&self, name: &str) -> Option<&VariantState> {
        self.variants.iter().find(|v| v.name == name)
    }

    /// The update in progress completed: its config's data capture applies from now on.
    pub fn adopt_pending_capture(&mut self) {
        self.data_capture = self.pending_data_capture.take();
    }

    /// Forgets the update in progress (it completed, failed or was rolled back).
    pub fn clear_pending(&mut self) {
        self.pending_data_capture = None;
        self.pending_config_name = None;
        self.pending_variants = None;
        self.pending_deployment = None;
        self.pending_deployment_config = None;
    }
}

/// SageMaker's endpoint statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EndpointStatus {
    OutOfService,
    Creating,
    Updating,
    SystemUpdating,
    RollingBack,
    InService,
    Deleting,
    Failed,
    UpdateRollbackFailed,
}

impl EndpointStatus {
    pub const ALL: [EndpointStatus; 9] = [
        EndpointStatus::OutOfService,
        EndpointStatus::Creating,
        EndpointStatus::Updating,
        EndpointStatus::SystemUpdating,
        EndpointStatus::RollingBack,
        EndpointStatus::InService,
        EndpointStatus::Deleting,
        EndpointStatus::Failed,
        EndpointStatus::UpdateRollbackFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndpointStatus::OutOfService => "OutOfService",
            EndpointStatus::Creating => "Creating",
            EndpointStatus::Updating => "Updating",
            EndpointStatus::SystemUpdating => "SystemUpdating",
            EndpointStatus::RollingBack => "RollingBack",
            EndpointStatus::InService => "InService",
            EndpointStatus::Deleting => "Deleting",
            EndpointStatus::Failed => "Failed",
            EndpointStatus::UpdateRollbackFailed => "UpdateRollbackFailed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// The live state of one variant of an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantState {
    pub name: String,
    pub model_name: String,
    pub instance_type: String,
    /// The container the variant runs, fixed when the variant was deployed: the endpoint keeps
    /// serving it even if the model is deleted afterwards, as on SageMaker.
    pub container: ContainerSpec,
    pub current_weight: f64,
    pub desired_weight: f64,
    pub current_instance_count: u32,
    pub desired_instance_count: u32,
    pub routing: RoutingStrategy,
    pub container_startup_timeout_secs: Option<u32>,
    /// How long downloading and unpacking the model data may take.
    #[serde(default)]
    pub model_data_download_timeout_secs: Option<u32>,
    /// When the deployed image was resolved (the variant's instances were first started).
    pub image_resolved: Option<Timestamp>,
    /// What the image resolved to: a container image's digest (`repository@sha256:…`); None
    /// for images that are not container images (shown as specified).
    #[serde(default)]
    pub resolved_image: Option<String>,
    /// The model's `EnableNetworkIsolation`: its containers get no network.
    #[serde(default)]
    pub network_isolation: bool,
    /// A shadow variant (see [`crate::VariantSpec::shadow`]).
    #[serde(default)]
    pub shadow: bool,
    /// A serverless variant (see [`crate::VariantSpec::serverless`]).
    #[serde(default)]
    pub serverless: Option<ServerlessConfig>,
}

#[cfg(test)]
mod tests {
    use super::EndpointStatus;

    #[test]
    fn statuses_round_trip() {
        for s in EndpointStatus::ALL {
            assert_eq!(EndpointStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(EndpointStatus::parse("Bogus"), None);
    }
}
