//! The shapes inside SageMaker's configs and endpoints: serverless, data capture, deployment
//! and multi-model settings, as botocore's `sagemaker` service model defines them.

use super::VariantStatus;
use serde::{Deserialize, Serialize};

/// `ServerlessConfig` of a production variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServerlessConfig {
    #[serde(rename = "MemorySizeInMB")]
    pub memory_size_in_mb: u32,
    pub max_concurrency: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioned_concurrency: Option<u32>,
}

/// `ServerlessUpdateConfig` of UpdateEndpointWeightsAndCapacities. Read wide, so a value past
/// what a u32 holds is refused in SageMaker's words, never wrapped.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServerlessUpdateConfig {
    pub max_concurrency: Option<u64>,
    pub provisioned_concurrency: Option<u64>,
}

/// `ManagedInstanceScaling` of a variant hosting inference components.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManagedInstanceScaling {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_instance_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_instance_count: Option<u32>,
    /// Read only to refuse it by name.
    #[serde(default, skip_serializing)]
    pub scale_in_policy: Option<serde::de::IgnoredAny>,
}

/// `MultiModelConfig` of a container definition.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MultiModelConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_cache_setting: Option<String>,
}

/// `ModelAccessConfig` of an S3 model data source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelAccessConfig {
    pub accept_eula: bool,
}

/// `DataCaptureConfig` of an endpoint config, as sent and as described.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataCaptureConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_capture: Option<bool>,
    pub initial_sampling_percentage: u32,
    #[serde(rename = "DestinationS3Uri")]
    pub destination_s3_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    pub capture_options: Vec<CaptureOption>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_content_type_header: Option<CaptureContentTypeHeader>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CaptureOption {
    pub capture_mode: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CaptureContentTypeHeader {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub csv_content_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json_content_types: Vec<String>,
}

/// DescribeEndpoint's `DataCaptureConfig`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataCaptureConfigSummary {
    pub enable_capture: bool,
    pub capture_status: &'static str,
    pub current_sampling_percentage: u32,
    #[serde(rename = "DestinationS3Uri")]
    pub destination_s3_uri: String,
    pub kms_key_id: String,
}

/// `DeploymentConfig` of CreateEndpoint and UpdateEndpoint (DescribeEndpoint's `LastDeploymentConfig`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blue_green_update_policy: Option<BlueGreenUpdatePolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolling_update_policy: Option<RollingUpdatePolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_rollback_configuration: Option<AutoRollbackConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BlueGreenUpdatePolicy {
    pub traffic_routing_configuration: TrafficRoutingConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_wait_in_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_execution_timeout_in_seconds: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrafficRoutingConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    pub wait_interval_in_seconds: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_size: Option<CapacitySize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear_step_size: Option<CapacitySize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CapacitySize {
    #[serde(rename = "Type")]
    pub kind: String,
    pub value: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RollingUpdatePolicy {
    pub maximum_batch_size: CapacitySize,
    pub wait_interval_in_seconds: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_execution_timeout_in_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_maximum_batch_size: Option<CapacitySize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AutoRollbackConfig {
    pub alarms: Vec<AlarmRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmRef {
    pub alarm_name: String,
}

/// DescribeEndpoint's `PendingDeploymentSummary` while a guarded deployment runs.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PendingDeploymentSummary {
    pub endpoint_config_name: String,
    pub production_variants: Vec<PendingProductionVariantSummary>,
    pub start_time: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PendingProductionVariantSummary {
    pub variant_name: String,
    pub current_weight: f64,
    pub desired_weight: f64,
    pub current_instance_count: u32,
    pub desired_instance_count: u32,
    pub instance_type: String,
    pub variant_status: Vec<VariantStatus>,
}

/// `AsyncInferenceConfig` of an endpoint config (and of DescribeEndpoint).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsyncInferenceConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_config: Option<AsyncInferenceClientConfig>,
    pub output_config: AsyncInferenceOutputConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsyncInferenceClientConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_invocations_per_instance: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsyncInferenceOutputConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(rename = "S3OutputPath", skip_serializing_if = "Option::is_none")]
    pub s3_output_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_config: Option<AsyncInferenceNotificationConfig>,
    #[serde(rename = "S3FailurePath", skip_serializing_if = "Option::is_none")]
    pub s3_failure_path: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsyncInferenceNotificationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_topic: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_inference_response_in: Vec<String>,
}
