use crate::{
    AsyncInference, ContainerSpec, DataCapture, DeploymentConfig, PendingDeployment, RoutingStrategy, ServerlessConfig, Timestamp,
};
use serde::{Deserialize, Serialize};

/// An endpoint and the state of its variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredEndpoint")]
pub struct Endpoint {
    pub name: String,
    pub arn: String,
    pub created: Timestamp,
    pub modified: Timestamp,
    /// The config whose variants serve traffic (the one being created, while `Creating`).
    pub config_name: String,
    pub status: EndpointStatus,
    pub failure_reason: Option<String>,
    pub variants: Vec<VariantState>,
    /// The update in progress, while `Updating` (and while it rolls back).
    pub pending: Option<PendingUpdate>,
    /// The deployment config of the latest update (or of CreateEndpoint).
    pub last_deployment_config: Option<DeploymentConfig>,
    /// Data capture of the config the endpoint runs.
    pub data_capture: Option<DataCapture>,
    /// Asynchronous inference of the config the endpoint runs.
    pub async_inference: Option<AsyncInference>,
    /// The production variants' weights before the last weight change, for rolling it back.
    pub previous_weights: Option<Vec<(String, f64)>>,
}

/// An update in progress: where it is going and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingUpdate {
    /// The config the update is moving to.
    pub config_name: String,
    /// Variant states the update installs once its instances are healthy.
    pub variants: Vec<VariantState>,
    /// The update's deployment config.
    pub deployment_config: Option<DeploymentConfig>,
    /// Progress of a guarded deployment.
    pub deployment: Option<PendingDeployment>,
    /// Data capture of the config the update is moving to.
    pub data_capture: Option<DataCapture>,
    /// Asynchronous inference of the config the update is moving to.
    #[serde(default)]
    pub async_inference: Option<AsyncInference>,
}

impl Endpoint {
    pub fn variant(&self, name: &str) -> Option<&VariantState> {
        self.variants.iter().find(|v| v.name == name)
    }

    /// The variants an update in progress installs (none when no update runs).
    pub fn pending_variants(&self) -> &[VariantState] {
        self.pending.as_ref().map_or(&[], |p| &p.variants)
    }

    /// The update in progress completed: its config and data capture apply from now on, and
    /// it is forgotten.
    pub fn complete_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            self.config_name = p.config_name;
            self.data_capture = p.data_capture;
            self.async_inference = p.async_inference;
        }
    }
}

/// An endpoint as stored: today's shape, or the one before updates were one `pending` member
/// (five `pending_*` members), so a state store written by an older berth still loads.
#[derive(Deserialize)]
struct StoredEndpoint {
    name: String,
    arn: String,
    created: Timestamp,
    modified: Timestamp,
    config_name: String,
    status: EndpointStatus,
    failure_reason: Option<String>,
    variants: Vec<VariantState>,
    #[serde(default)]
    pending: Option<PendingUpdate>,
    #[serde(default)]
    last_deployment_config: Option<DeploymentConfig>,
    #[serde(default)]
    data_capture: Option<DataCapture>,
    #[serde(default)]
    async_inference: Option<AsyncInference>,
    #[serde(default)]
    previous_weights: Option<Vec<(String, f64)>>,
    #[serde(default)]
    pending_config_name: Option<String>,
    #[serde(default)]
    pending_variants: Option<Vec<VariantState>>,
    #[serde(default)]
    pending_deployment_config: Option<DeploymentConfig>,
    #[serde(default)]
    pending_deployment: Option<PendingDeployment>,
    #[serde(default)]
    pending_data_capture: Option<DataCapture>,
}

impl From<StoredEndpoint> for Endpoint {
    fn from(s: StoredEndpoint) -> Self {
        let legacy = s.pending_config_name.map(|config_name| PendingUpdate {
            config_name,
            variants: s.pending_variants.unwrap_or_default(),
            deployment_config: s.pending_deployment_config,
            deployment: s.pending_deployment,
            data_capture: s.pending_data_capture,
            async_inference: None,
        });
        Endpoint {
            name: s.name,
            arn: s.arn,
            created: s.created,
            modified: s.modified,
            config_name: s.config_name,
            status: s.status,
            failure_reason: s.failure_reason,
            variants: s.variants,
            pending: s.pending.or(legacy),
            last_deployment_config: s.last_deployment_config,
            data_capture: s.data_capture,
            async_inference: s.async_inference,
            previous_weights: s.previous_weights,
        }
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
    /// A multi-container model's containers (`container` is the first), fixed with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_container: Option<crate::MultiContainer>,
    /// A variant that names no model: its instances host inference components' copies, and
    /// run nothing of their own.
    #[serde(default)]
    pub hosts_components: bool,
    /// Its `ManagedInstanceScaling`, for a variant hosting inference components.
    #[serde(default)]
    pub managed_scaling: Option<crate::ManagedInstanceScaling>,
}

impl Endpoint {
    /// Whether the endpoint's variants host inference components (rather than models).
    pub fn hosts_components(&self) -> bool {
        self.variants.iter().any(|v| v.hosts_components)
    }
}

#[cfg(test)]
mod tests {
    use super::{Endpoint, EndpointStatus};

    #[test]
    fn an_update_stored_by_an_older_berth_loads_as_one_pending_update() {
        let old = r#"{"name":"e","arn":"arn","created":1,"modified":2,"config_name":"c1","pending_config_name":"c2",
            "status":"Updating","failure_reason":null,"variants":[],"pending_variants":[],
            "pending_deployment_config":null,"pending_deployment":null,"data_capture":null,"pending_data_capture":null}"#;
        let e: Endpoint = serde_json::from_str(old).unwrap();
        let pending = e.pending.as_ref().expect("the update in progress is kept");
        assert_eq!((pending.config_name.as_str(), e.config_name.as_str()), ("c2", "c1"));
        let again: Endpoint = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(again, e, "today's shape round-trips");
        let at_rest: Endpoint = serde_json::from_str(&old.replace(r#""pending_config_name":"c2","#, "")).unwrap();
        assert!(at_rest.pending.is_none());
    }

    #[test]
    fn statuses_round_trip() {
        for s in EndpointStatus::ALL {
            assert_eq!(EndpointStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(EndpointStatus::parse("Bogus"), None);
    }
}
