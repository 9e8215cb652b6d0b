use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// An endpoint configuration: the variants an endpoint runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointConfig {
    pub name: String,
    pub arn: String,
    pub created: Timestamp,
    pub variants: Vec<VariantSpec>,
    pub kms_key_id: Option<String>,
}

impl EndpointConfig {
    pub fn variant(&self, name: &str) -> Option<&VariantSpec> {
        self.variants.iter().find(|v| v.name == name)
    }
}

/// One production variant of an endpoint configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantSpec {
    pub name: String,
    pub model_name: String,
    pub instance_type: String,
    pub initial_instance_count: u32,
    pub initial_weight: f64,
    pub container_startup_timeout_secs: Option<u32>,
    pub model_data_download_timeout_secs: Option<u32>,
    pub routing: Option<RoutingStrategy>,
    /// A shadow variant (`ShadowProductionVariants`): it gets copies of production requests,
    /// a share of them set by its weight over the production variants' total, and never
    /// answers callers.
    #[serde(default)]
    pub shadow: bool,
}

/// How a variant picks one of its instances for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RoutingStrategy {
    /// The instance with the fewest requests in flight (SageMaker's default).
    #[default]
    LeastOutstandingRequests,
    /// An instance at random.
    Random,
}
