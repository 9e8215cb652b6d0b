//! SageMaker's JSON shapes, as botocore's `sagemaker` service model defines them. Only this
//! module knows AWS's casing; unset optional members are left out, never sent as `{}`.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod parts;
pub use parts::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelDataSource {
    pub s3_data_source: S3ModelDataSource,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3ModelDataSource {
    #[serde(rename = "S3Uri")]
    pub s3_uri: String,
    #[serde(rename = "S3DataType")]
    pub s3_data_type: String,
    pub compression_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_access_config: Option<ModelAccessConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerDefinition {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_data_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_data_source: Option<ModelDataSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_package_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multi_model_config: Option<MultiModelConfig>,
    /// Read only to refuse it by name.
    #[serde(default, skip_serializing)]
    pub additional_model_data_sources: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub inference_specification_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateModelInput {
    pub model_name: String,
    pub primary_container: Option<ContainerDefinition>,
    pub containers: Option<Vec<ContainerDefinition>>,
    pub execution_role_arn: Option<String>,
    pub tags: Option<Vec<Tag>>,
    pub enable_network_isolation: Option<bool>,
    pub vpc_config: Option<VpcConfig>,
    pub inference_execution_config: Option<InferenceExecutionConfig>,
}

/// `InferenceExecutionConfig` of a multi-container model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InferenceExecutionConfig {
    pub mode: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcConfig {
    pub security_group_ids: Vec<String>,
    pub subnets: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeModelOutput {
    pub model_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_container: Option<ContainerDefinition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containers: Option<Vec<ContainerDefinition>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    pub creation_time: f64,
    pub model_arn: String,
    pub enable_network_isolation: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_config: Option<VpcConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_execution_config: Option<InferenceExecutionConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoutingConfig {
    pub routing_strategy: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProductionVariant {
    pub variant_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_instance_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_variant_weight: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_data_download_timeout_in_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_startup_health_check_timeout_in_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_config: Option<RoutingConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serverless_config: Option<ServerlessConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accelerator_type: Option<String>,
    /// Read only to refuse them by name.
    #[serde(default, skip_serializing)]
    pub instance_pools: Option<IgnoredAny>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_instance_scaling: Option<ManagedInstanceScaling>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateEndpointConfigInput {
    pub endpoint_config_name: String,
    pub production_variants: Vec<ProductionVariant>,
    pub data_capture_config: Option<DataCaptureConfig>,
    pub tags: Option<Vec<Tag>>,
    pub kms_key_id: Option<String>,
    pub async_inference_config: Option<AsyncInferenceConfig>,
    /// Read only to refuse it by name.
    pub explainer_config: Option<IgnoredAny>,
    pub shadow_production_variants: Option<Vec<ProductionVariant>>,
    pub execution_role_arn: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeEndpointConfigOutput {
    pub endpoint_config_name: String,
    pub endpoint_config_arn: String,
    pub production_variants: Vec<ProductionVariant>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadow_production_variants: Vec<ProductionVariant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_capture_config: Option<DataCaptureConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub async_inference_config: Option<AsyncInferenceConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    pub creation_time: f64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateEndpointInput {
    pub endpoint_name: String,
    pub endpoint_config_name: String,
    pub deployment_config: Option<DeploymentConfig>,
    pub tags: Option<Vec<Tag>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VariantPropertyWire {
    pub variant_property_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateEndpointInput {
    pub endpoint_name: String,
    pub endpoint_config_name: String,
    pub retain_all_variant_properties: Option<bool>,
    pub exclude_retained_variant_properties: Option<Vec<VariantPropertyWire>>,
    pub deployment_config: Option<DeploymentConfig>,
    pub retain_deployment_config: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DesiredWeightAndCapacity {
    pub variant_name: String,
    pub desired_weight: Option<f64>,
    pub desired_instance_count: Option<u32>,
    pub serverless_update_config: Option<ServerlessUpdateConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateEndpointWeightsAndCapacitiesInput {
    pub endpoint_name: String,
    pub desired_weights_and_capacities: Vec<DesiredWeightAndCapacity>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeployedImage {
    pub specified_image: String,
    pub resolved_image: String,
    pub resolution_time: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VariantStatus {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    pub start_time: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProductionVariantSummary {
    pub variant_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deployed_images: Vec<DeployedImage>,
    pub current_weight: f64,
    pub desired_weight: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_instance_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_instance_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_serverless_config: Option<ServerlessConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_serverless_config: Option<ServerlessConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub variant_status: Vec<VariantStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_config: Option<RoutingConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_instance_scaling: Option<ManagedInstanceScaling>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeEndpointOutput {
    pub endpoint_name: String,
    pub endpoint_arn: String,
    pub endpoint_config_name: String,
    pub production_variants: Vec<ProductionVariantSummary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadow_production_variants: Vec<ProductionVariantSummary>,
    pub endpoint_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    pub creation_time: f64,
    pub last_modified_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_deployment_config: Option<DeploymentConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_deployment_summary: Option<PendingDeploymentSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_capture_config: Option<DataCaptureConfigSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub async_inference_config: Option<AsyncInferenceConfig>,
}

/// The members shared by ListModels, ListEndpointConfigs and ListEndpoints.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListInput {
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    pub next_token: Option<String>,
    pub max_results: Option<u32>,
    pub name_contains: Option<String>,
    pub creation_time_before: Option<f64>,
    pub creation_time_after: Option<f64>,
    pub last_modified_time_before: Option<f64>,
    pub last_modified_time_after: Option<f64>,
    pub status_equals: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddTagsInput {
    pub resource_arn: String,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsInput {
    pub resource_arn: String,
    pub next_token: Option<String>,
    pub max_results: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteTagsInput {
    pub resource_arn: String,
    pub tag_keys: Vec<String>,
}

// ---- outputs of the operations on models, endpoint configs, endpoints and tags -------------

/// An operation's answer that names what it made or changed: `{"ModelArn": ...}` and the like.
#[derive(Debug, Clone, Serialize)]
#[allow(clippy::enum_variant_names)] // each variant is the member's name on the wire
pub enum ArnOutput {
    ModelArn(String),
    EndpointConfigArn(String),
    EndpointArn(String),
}

/// The answer of an operation that answers nothing (DeleteModel, DeleteTags, ...).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Empty {}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModelSummary {
    pub model_name: String,
    pub model_arn: String,
    pub creation_time: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListModelsOutput {
    pub models: Vec<ModelSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointConfigSummary {
    pub endpoint_config_name: String,
    pub endpoint_config_arn: String,
    pub creation_time: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListEndpointConfigsOutput {
    pub endpoint_configs: Vec<EndpointConfigSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSummary {
    pub endpoint_name: String,
    pub endpoint_arn: String,
    pub creation_time: f64,
    pub last_modified_time: f64,
    pub endpoint_status: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListEndpointsOutput {
    pub endpoints: Vec<EndpointSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// AddTags's and ListTags's answer (a resource has at most 50 tags: one page, no token).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagsOutput {
    pub tags: Vec<Tag>,
}
