//! SageMaker's inference experiment (shadow testing) operations: Create, Describe, List, Start,
//! Stop, Update and DeleteInferenceExperiment.

use crate::aws_json::{enum_error, parse, reply, secs, tags};
use crate::error::EdgeError;
use crate::wire::Tag;
use berth_control::{Controller, CreateInferenceExperiment, StopInferenceExperiment, UpdateInferenceExperiment};
use berth_domain::{ExperimentStatus, ExperimentVariant, InferenceExperiment, Timestamp, VariantAction};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Schedule {
    start_time: Option<f64>,
    end_time: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RealTimeInferenceConfig {
    instance_type: String,
    instance_count: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InfrastructureConfig {
    infrastructure_type: String,
    real_time_inference_config: RealTimeInferenceConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ModelVariantConfig {
    model_name: String,
    variant_name: String,
    infrastructure_config: InfrastructureConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ShadowModelVariant {
    shadow_model_variant_name: String,
    sampling_percentage: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ShadowModeConfig {
    source_model_variant_name: String,
    shadow_model_variants: Vec<ShadowModelVariant>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DataStorageConfig {
    destination: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateInput {
    name: String,
    #[serde(rename = "Type")]
    kind: String,
    schedule: Option<Schedule>,
    description: Option<String>,
    role_arn: String,
    endpoint_name: String,
    model_variants: Vec<ModelVariantConfig>,
    data_storage_config: Option<DataStorageConfig>,
    shadow_mode_config: ShadowModeConfig,
    kms_key: Option<String>,
    tags: Option<Vec<Tag>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StopInput {
    name: String,
    model_variant_actions: HashMap<String, String>,
    desired_model_variants: Option<Vec<ModelVariantConfig>>,
    desired_state: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateInput {
    name: String,
    schedule: Option<Schedule>,
    description: Option<String>,
    shadow_mode_config: Option<ShadowModeConfig>,
    model_variants: Option<Value>,
    data_storage_config: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    name_contains: Option<String>,
    status_equals: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    next_token: Option<String>,
    max_results: Option<usize>,
}

fn time(t: Option<f64>) -> Option<Timestamp> {
    t.map(Timestamp::from_secs_f64)
}

fn variant(v: ModelVariantConfig) -> Result<ExperimentVariant, EdgeError> {
    if v.infrastructure_config.infrastructure_type != "RealTimeInference" {
        return Err(enum_error(
            "infrastructureConfig.infrastructureType",
            &v.infrastructure_config.infrastructure_type,
            &["RealTimeInference"],
        ));
    }
    let rt = v.infrastructure_config.real_time_inference_config;
    berth_domain::validate_instance_type(&rt.instance_type).map_err(|e| EdgeError::validation(e.to_string()))?;
    Ok(ExperimentVariant {
        variant_name: v.variant_name,
        model_name: v.model_name,
        instance_type: rt.instance_type,
        instance_count: rt.instance_count,
    })
}

fn one_shadow(config: ShadowModeConfig) -> Result<(String, ShadowModelVariant), EdgeError> {
    let mut shadows = config.shadow_model_variants;
    if shadows.len() != 1 {
        return Err(EdgeError::validation("ShadowModeConfig.ShadowModelVariants must hold exactly one shadow variant."));
    }
    Ok((config.source_model_variant_name, shadows.remove(0)))
}

/// Handles the operation if it is one of the inference experiment operations.
pub(crate) async fn operation(c: &std::sync::Arc<Controller>, op: &str, body: &[u8]) -> Option<Result<Value, EdgeError>> {
    let result = match op {
        "CreateInferenceExperiment" => create(c, body).await.and_then(reply),
        "DescribeInferenceExperiment" => describe(c, body).await.and_then(reply),
        "ListInferenceExperiments" => list(c, body).await.and_then(reply),
        "StartInferenceExperiment" => start(c, body).await.and_then(reply),
        "StopInferenceExperiment" => stop(c, body).await.and_then(reply),
        "UpdateInferenceExperiment" => update(c, body).await.and_then(reply),
        "DeleteInferenceExperiment" => delete(c, body).await.and_then(reply),
        _ => return None,
    };
    Some(result)
}

async fn start(c: &std::sync::Arc<Controller>, body: &[u8]) -> Result<ArnOutput, EdgeError> {
    Ok(arn_of(&c.start_inference_experiment(&name_of(body)?).await?))
}

async fn delete(c: &Controller, body: &[u8]) -> Result<ArnOutput, EdgeError> {
    Ok(ArnOutput { inference_experiment_arn: c.delete_inference_experiment(&name_of(body)?).await? })
}

fn name_of(body: &[u8]) -> Result<String, EdgeError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Named {
        name: String,
    }
    parse::<Named>(body).map(|n| n.name)
}

/// The answer of every operation that changes an experiment.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ArnOutput {
    inference_experiment_arn: String,
}

fn arn_of(x: &InferenceExperiment) -> ArnOutput {
    ArnOutput { inference_experiment_arn: x.arn.clone() }
}

async fn create(c: &std::sync::Arc<Controller>, body: &[u8]) -> Result<ArnOutput, EdgeError> {
    let input: CreateInput = parse(body)?;
    if input.kind != "ShadowMode" {
        return Err(enum_error("type", &input.kind, &["ShadowMode"]));
    }
    let (source, shadow) = one_shadow(input.shadow_mode_config)?;
    let variants = input.model_variants.into_iter().map(variant).collect::<Result<_, _>>()?;
    let experiment = InferenceExperiment {
        description: input.description,
        role_arn: input.role_arn,
        variants,
        start: input.schedule.as_ref().and_then(|s| time(s.start_time)),
        end: input.schedule.as_ref().and_then(|s| time(s.end_time)),
        data_storage_destination: input.data_storage_config.map(|d| d.destination),
        kms_key: input.kms_key,
        ..InferenceExperiment::shadow(
            &input.name,
            &input.endpoint_name,
            &source,
            &shadow.shadow_model_variant_name,
            shadow.sampling_percentage,
        )
    };
    let req = CreateInferenceExperiment { experiment, tags: tags(input.tags) };
    Ok(arn_of(&c.create_inference_experiment(req).await?))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct VariantOut {
    model_name: String,
    variant_name: String,
    infrastructure_config: InfrastructureOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InfrastructureOut {
    infrastructure_type: &'static str,
    real_time_inference_config: RealTimeOut,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RealTimeOut {
    instance_type: String,
    instance_count: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduleOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<f64>,
}

/// ListInferenceExperiments's summary, and the part of DescribeInferenceExperiment it shares.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SummaryOut {
    name: String,
    #[serde(rename = "Type")]
    kind: &'static str,
    schedule: ScheduleOut,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    creation_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_time: Option<f64>,
    last_modified_time: f64,
    role_arn: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeOutput {
    arn: String,
    #[serde(flatten)]
    summary: SummaryOut,
    endpoint_metadata: EndpointMetadataOut,
    model_variants: Vec<VariantOut>,
    shadow_mode_config: ShadowModeOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_storage_config: Option<DataStorageOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kms_key: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointMetadataOut {
    endpoint_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint_config_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint_status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ShadowModeOut {
    source_model_variant_name: String,
    shadow_model_variants: Vec<ShadowVariantOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ShadowVariantOut {
    shadow_model_variant_name: String,
    sampling_percentage: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DataStorageOut {
    destination: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListOutput {
    inference_experiments: Vec<SummaryOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

fn variant_out(v: &ExperimentVariant, status: Option<&'static str>) -> VariantOut {
    VariantOut {
        model_name: v.model_name.clone(),
        variant_name: v.variant_name.clone(),
        infrastructure_config: InfrastructureOut {
            infrastructure_type: "RealTimeInference",
            real_time_inference_config: RealTimeOut { instance_type: v.instance_type.clone(), instance_count: v.instance_count },
        },
        status,
    }
}

fn summary_out(x: &InferenceExperiment) -> SummaryOut {
    SummaryOut {
        name: x.name.clone(),
        kind: "ShadowMode",
        schedule: ScheduleOut { start_time: x.start.map(secs), end_time: x.end.map(secs) },
        status: x.status.as_str(),
        status_reason: x.status_reason.clone(),
        description: x.description.clone(),
        creation_time: secs(x.created),
        completion_time: x.completed.map(secs),
        last_modified_time: secs(x.modified),
        role_arn: x.role_arn.clone(),
    }
}

async fn describe(c: &Controller, body: &[u8]) -> Result<DescribeOutput, EdgeError> {
    let x = c.describe_inference_experiment(&name_of(body)?).await?;
    let endpoint = c.describe_endpoint(&x.endpoint_name).await.ok();
    let endpoint_metadata = EndpointMetadataOut {
        endpoint_name: x.endpoint_name.clone(),
        endpoint_config_name: endpoint.as_ref().map(|e| e.config_name.clone()),
        endpoint_status: endpoint.as_ref().map(|e| e.status.as_str()),
        failure_reason: endpoint.as_ref().and_then(|e| e.failure_reason.clone()),
    };
    let model_variants = x
        .variants
        .iter()
        .map(|v| {
            let running = endpoint.as_ref().and_then(|e| e.variant(&v.variant_name)).is_some_and(|s| s.model_name == v.model_name);
            let status = match (x.status, running) {
                (ExperimentStatus::Starting, _) => "Creating",
                (ExperimentStatus::Stopping, _) => "Updating",
                (_, true) => "InService",
                (s, false) if s.ended() => "Deleted",
                _ => "Creating",
            };
            variant_out(v, Some(status))
        })
        .collect();
    let shadow_mode_config = ShadowModeOut {
        source_model_variant_name: x.source_variant.clone(),
        shadow_model_variants: vec![ShadowVariantOut {
            shadow_model_variant_name: x.shadow_variant.clone(),
            sampling_percentage: x.sampling_percentage,
        }],
    };
    Ok(DescribeOutput {
        arn: x.arn.clone(),
        summary: summary_out(&x),
        endpoint_metadata,
        model_variants,
        shadow_mode_config,
        data_storage_config: x.data_storage_destination.clone().map(|destination| DataStorageOut { destination }),
        kms_key: x.kms_key.clone(),
    })
}

async fn list(c: &Controller, body: &[u8]) -> Result<ListOutput, EdgeError> {
    let input: ListInput = parse(body)?;
    let status = match input.status_equals.as_deref() {
        None => None,
        Some(s) => {
            Some(ExperimentStatus::parse(s).ok_or_else(|| enum_error("statusEquals", s, &ExperimentStatus::ALL.map(|s| s.as_str())))?)
        }
    };
    let mut items: Vec<InferenceExperiment> = c
        .list_inference_experiments()
        .await?
        .into_iter()
        .filter(|x| input.name_contains.as_deref().is_none_or(|n| x.name.contains(n)))
        .filter(|x| status.is_none_or(|s| x.status == s))
        .collect();
    match input.sort_by.as_deref().unwrap_or("CreationTime") {
        "Name" => items.sort_by(|a, b| a.name.cmp(&b.name)),
        "Status" => items.sort_by(|a, b| a.status.as_str().cmp(b.status.as_str())),
        "CreationTime" => items.sort_by_key(|x| x.created),
        other => return Err(enum_error("sortBy", other, &["Name", "CreationTime", "Status"])),
    }
    if input.sort_order.as_deref() != Some("Ascending") {
        items.reverse();
    }
    let skip: usize = input.next_token.as_deref().map(|t| t.parse().unwrap_or(0)).unwrap_or(0);
    let max = input.max_results.unwrap_or(10).clamp(1, 100);
    let page = items.iter().skip(skip).take(max).map(summary_out).collect();
    let next_token = (skip + max < items.len()).then(|| (skip + max).to_string());
    Ok(ListOutput { inference_experiments: page, next_token })
}

async fn stop(c: &std::sync::Arc<Controller>, body: &[u8]) -> Result<ArnOutput, EdgeError> {
    let input: StopInput = parse(body)?;
    let mut actions = HashMap::new();
    for (variant, action) in input.model_variant_actions {
        let a =
            VariantAction::parse(&action).ok_or_else(|| enum_error("modelVariantActions", &action, &["Promote", "Remove", "Retain"]))?;
        actions.insert(variant, a);
    }
    let desired_state = match input.desired_state.as_deref() {
        None => None,
        Some("Completed") => Some(ExperimentStatus::Completed),
        Some("Cancelled") => Some(ExperimentStatus::Cancelled),
        Some(other) => return Err(enum_error("desiredState", other, &["Completed", "Cancelled"])),
    };
    let desired_variants = input.desired_model_variants.map(|v| v.into_iter().map(variant).collect::<Result<Vec<_>, _>>()).transpose()?;
    let req = StopInferenceExperiment { name: input.name, actions, desired_variants, desired_state, reason: input.reason };
    Ok(arn_of(&c.stop_inference_experiment(req).await?))
}

async fn update(c: &std::sync::Arc<Controller>, body: &[u8]) -> Result<ArnOutput, EdgeError> {
    let input: UpdateInput = parse(body)?;
    if input.model_variants.is_some() || input.data_storage_config.is_some() {
        return Err(EdgeError::validation("Changing ModelVariants or DataStorageConfig of an experiment is not supported by berth yet."));
    }
    let sampling = match input.shadow_mode_config {
        Some(config) => Some(one_shadow(config)?.1.sampling_percentage),
        None => None,
    };
    let req = UpdateInferenceExperiment {
        name: input.name,
        description: input.description,
        start: input.schedule.as_ref().and_then(|s| time(s.start_time)),
        end: input.schedule.as_ref().and_then(|s| time(s.end_time)),
        sampling_percentage: sampling,
    };
    Ok(arn_of(&c.update_inference_experiment(req).await?))
}
