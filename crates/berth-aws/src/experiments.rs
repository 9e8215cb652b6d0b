//! SageMaker's inference experiment (shadow testing) operations: Create, Describe, List, Start,
//! Stop, Update and DeleteInferenceExperiment.

use crate::aws_json::{enum_error, parse, secs, tags, with_token};
use crate::error::EdgeError;
use crate::wire::Tag;
use berth_control::{Controller, CreateInferenceExperiment, StopInferenceExperiment, UpdateInferenceExperiment};
use berth_domain::{ExperimentStatus, ExperimentVariant, InferenceExperiment, Timestamp, VariantAction};
use serde::Deserialize;
use serde_json::{json, Value};
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
        "CreateInferenceExperiment" => create(c, body).await,
        "DescribeInferenceExperiment" => describe(c, body).await,
        "ListInferenceExperiments" => list(c, body).await,
        "StartInferenceExperiment" => start(c, body).await,
        "StopInferenceExperiment" => stop(c, body).await,
        "UpdateInferenceExperiment" => update(c, body).await,
        "DeleteInferenceExperiment" => delete(c, body).await,
        _ => return None,
    };
    Some(result)
}

async fn start(c: &std::sync::Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    Ok(arn_of(&c.start_inference_experiment(&name_of(body)?).await?))
}

async fn delete(c: &Controller, body: &[u8]) -> Result<Value, EdgeError> {
    Ok(json!({ "InferenceExperimentArn": c.delete_inference_experiment(&name_of(body)?).await? }))
}

fn name_of(body: &[u8]) -> Result<String, EdgeError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Named {
        name: String,
    }
    parse::<Named>(body).map(|n| n.name)
}

fn arn_of(x: &InferenceExperiment) -> Value {
    json!({ "InferenceExperimentArn": x.arn })
}

async fn create(c: &std::sync::Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let input: CreateInput = parse(body)?;
    if input.kind != "ShadowMode" {
        return Err(enum_error("type", &input.kind, &["ShadowMode"]));
    }
    let (source, shadow) = one_shadow(input.shadow_mode_config)?;
    let variants = input.model_variants.into_iter().map(variant).collect::<Result<_, _>>()?;
    let req = CreateInferenceExperiment {
        name: input.name,
        description: input.description,
        role_arn: input.role_arn,
        endpoint_name: input.endpoint_name,
        variants,
        source_variant: source,
        shadow_variant: shadow.shadow_model_variant_name,
        sampling_percentage: shadow.sampling_percentage,
        start: input.schedule.as_ref().and_then(|s| time(s.start_time)),
        end: input.schedule.as_ref().and_then(|s| time(s.end_time)),
        data_storage_destination: input.data_storage_config.map(|d| d.destination),
        kms_key: input.kms_key,
        tags: tags(input.tags),
    };
    Ok(arn_of(&c.create_inference_experiment(req).await?))
}

fn variant_json(v: &ExperimentVariant) -> Value {
    json!({
        "ModelName": v.model_name,
        "VariantName": v.variant_name,
        "InfrastructureConfig": {
            "InfrastructureType": "RealTimeInference",
            "RealTimeInferenceConfig": {"InstanceType": v.instance_type, "InstanceCount": v.instance_count},
        },
    })
}

fn schedule_json(x: &InferenceExperiment) -> Value {
    let mut s = json!({});
    if let Some(t) = x.start {
        s["StartTime"] = json!(secs(t));
    }
    if let Some(t) = x.end {
        s["EndTime"] = json!(secs(t));
    }
    s
}

fn summary_json(x: &InferenceExperiment) -> Value {
    let mut v = json!({
        "Name": x.name,
        "Type": "ShadowMode",
        "Schedule": schedule_json(x),
        "Status": x.status.as_str(),
        "CreationTime": secs(x.created),
        "LastModifiedTime": secs(x.modified),
        "RoleArn": x.role_arn,
    });
    if let Some(d) = &x.description {
        v["Description"] = json!(d);
    }
    if let Some(r) = &x.status_reason {
        v["StatusReason"] = json!(r);
    }
    if let Some(t) = x.completed {
        v["CompletionTime"] = json!(secs(t));
    }
    v
}

async fn describe(c: &Controller, body: &[u8]) -> Result<Value, EdgeError> {
    let x = c.describe_inference_experiment(&name_of(body)?).await?;
    let endpoint = c.describe_endpoint(&x.endpoint_name).await.ok();
    let mut out = summary_json(&x);
    out["Arn"] = json!(x.arn);
    let mut metadata = json!({ "EndpointName": x.endpoint_name });
    if let Some(e) = &endpoint {
        metadata["EndpointConfigName"] = json!(e.config_name);
        metadata["EndpointStatus"] = json!(e.status.as_str());
        if let Some(r) = &e.failure_reason {
            metadata["FailureReason"] = json!(r);
        }
    }
    out["EndpointMetadata"] = metadata;
    out["ModelVariants"] = x
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
            let mut j = variant_json(v);
            j["Status"] = json!(status);
            j
        })
        .collect();
    out["ShadowModeConfig"] = json!({
        "SourceModelVariantName": x.source_variant,
        "ShadowModelVariants": [{"ShadowModelVariantName": x.shadow_variant, "SamplingPercentage": x.sampling_percentage}],
    });
    if let Some(d) = &x.data_storage_destination {
        out["DataStorageConfig"] = json!({ "Destination": d });
    }
    if let Some(k) = &x.kms_key {
        out["KmsKey"] = json!(k);
    }
    Ok(out)
}

async fn list(c: &Controller, body: &[u8]) -> Result<Value, EdgeError> {
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
    let page: Vec<Value> = items.iter().skip(skip).take(max).map(summary_json).collect();
    let token = (skip + max < items.len()).then(|| (skip + max).to_string());
    Ok(with_token(json!({ "InferenceExperiments": page }), token))
}

async fn stop(c: &std::sync::Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
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

async fn update(c: &std::sync::Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
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
