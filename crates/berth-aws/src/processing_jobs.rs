//! Processing jobs: `CreateProcessingJob`, `DescribeProcessingJob`, `ListProcessingJobs`,
//! `StopProcessingJob` between SageMaker's wire shapes and the controller's jobs. berth runs
//! SageMaker Model Monitor's analyzer only (the controller refuses other images); what it does
//! not do with an input or output (Feature Store, Athena or Redshift datasets, manifests, Pipe
//! mode, compressed inputs) is refused by name.

use crate::aws_json::{enum_error, list_query, parse, reply, secs, tags, unsupported};
use crate::error::EdgeError;
use crate::wire::Empty;
use berth_control::Controller;
use berth_domain::{ProcessingJob, ProcessingJobStatus, ProcessingLocation, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateProcessingJobInput {
    processing_job_name: String,
    #[serde(default)]
    processing_inputs: Vec<ProcessingInput>,
    processing_output_config: Option<ProcessingOutputConfig>,
    processing_resources: ProcessingResources,
    stopping_condition: Option<StoppingCondition>,
    app_specification: AppSpecification,
    environment: Option<BTreeMap<String, String>>,
    network_config: Option<Value>,
    /// Required, and echoed by DescribeProcessingJob; berth assumes no role.
    #[allow(dead_code)]
    role_arn: String,
    tags: Option<Vec<crate::wire::Tag>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessingInput {
    input_name: String,
    app_managed: Option<bool>,
    #[serde(rename = "S3Input")]
    s3_input: Option<ProcessingS3Input>,
    dataset_definition: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessingS3Input {
    #[serde(rename = "S3Uri")]
    s3_uri: String,
    local_path: Option<String>,
    #[serde(rename = "S3DataType")]
    s3_data_type: String,
    #[serde(rename = "S3InputMode")]
    s3_input_mode: Option<String>,
    #[serde(rename = "S3CompressionType")]
    s3_compression_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessingOutputConfig {
    outputs: Vec<ProcessingOutput>,
    kms_key_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessingOutput {
    output_name: String,
    #[serde(rename = "S3Output")]
    s3_output: Option<ProcessingS3Output>,
    feature_store_output: Option<Value>,
    app_managed: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessingS3Output {
    #[serde(rename = "S3Uri")]
    s3_uri: String,
    local_path: Option<String>,
    #[serde(rename = "S3UploadMode")]
    s3_upload_mode: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessingResources {
    cluster_config: ClusterConfig,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ClusterConfig {
    instance_count: Option<u32>,
    instance_type: Option<String>,
    #[serde(rename = "VolumeSizeInGB")]
    volume_size_in_gb: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StoppingCondition {
    max_runtime_in_seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AppSpecification {
    image_uri: String,
    container_entrypoint: Option<Vec<String>>,
    container_arguments: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NameInput {
    processing_job_name: String,
}

pub(crate) async fn operation(c: &Arc<Controller>, op: &str, body: &[u8]) -> Option<Result<Value, EdgeError>> {
    let result = match op {
        "CreateProcessingJob" => create(c, body).await.and_then(reply),
        "DescribeProcessingJob" => describe(c, body).await,
        "ListProcessingJobs" => list(c, body).await.and_then(reply),
        "StopProcessingJob" => stop(c, body).await.and_then(reply),
        _ => return None,
    };
    Some(result)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateProcessingJobOutput {
    processing_job_arn: String,
}

async fn create(c: &Arc<Controller>, body: &[u8]) -> Result<CreateProcessingJobOutput, EdgeError> {
    let input: CreateProcessingJobInput = parse(body)?;
    // What DescribeProcessingJob echoes: the request's members, less its name and tags.
    let mut definition: Map<String, Value> = parse(body)?;
    definition.remove("ProcessingJobName");
    definition.remove("Tags");
    let job_tags = tags(input.tags.clone());
    let job = c.create_processing_job(processing_job(input, Value::Object(definition))?, job_tags).await?;
    Ok(CreateProcessingJobOutput { processing_job_arn: job.arn })
}

/// The controller's job from the request, refusing what berth does not do.
fn processing_job(input: CreateProcessingJobInput, definition: Value) -> Result<ProcessingJob, EdgeError> {
    let cluster = &input.processing_resources.cluster_config;
    if !(1..=100).contains(&cluster.instance_count.unwrap_or(1)) || !(1..=16384).contains(&cluster.volume_size_in_gb) {
        return Err(EdgeError::validation("ProcessingResources.ClusterConfig: InstanceCount must be 1 to 100, VolumeSizeInGB 1 to 16384."));
    }
    if let Some(t) = &cluster.instance_type {
        berth_domain::validate_instance_type(t).map_err(|e| EdgeError::validation(e.to_string()))?;
    }
    if input.stopping_condition.as_ref().is_some_and(|s| !(1..=777_600).contains(&s.max_runtime_in_seconds)) {
        return Err(EdgeError::validation("StoppingCondition.MaxRuntimeInSeconds must be between 1 and 777600."));
    }
    unsupported(
        input.app_specification.container_entrypoint.is_some(),
        "AppSpecification.ContainerEntrypoint (berth runs the analyzer itself)",
    )?;
    unsupported(
        input.app_specification.container_arguments.is_some(),
        "AppSpecification.ContainerArguments (berth runs the analyzer itself)",
    )?;
    unsupported(input.network_config.is_some_and(|n| n.get("VpcConfig").is_some()), "NetworkConfig.VpcConfig")?;
    if input.environment.as_ref().is_some_and(|e| e.len() > 100) {
        return Err(EdgeError::validation("Environment may hold at most 100 variables."));
    }
    let mut inputs = Vec::new();
    for i in input.processing_inputs {
        unsupported(i.dataset_definition.is_some(), "ProcessingInputs.DatasetDefinition (Athena and Redshift datasets)")?;
        unsupported(i.app_managed == Some(true), "ProcessingInputs.AppManaged")?;
        let s3 = i.s3_input.ok_or_else(|| EdgeError::validation(format!("ProcessingInput {} needs an S3Input.", i.input_name)))?;
        match s3.s3_data_type.as_str() {
            "S3Prefix" => {}
            "ManifestFile" => unsupported(true, "S3DataType ManifestFile of a processing input")?,
            other => return Err(enum_error("processingInputs.member.s3Input.s3DataType", other, &["ManifestFile", "S3Prefix"])),
        }
        match s3.s3_input_mode.as_deref() {
            None | Some("File") => {}
            Some("Pipe") => unsupported(true, "S3InputMode Pipe")?,
            Some(other) => return Err(enum_error("processingInputs.member.s3Input.s3InputMode", other, &["Pipe", "File"])),
        }
        match s3.s3_compression_type.as_deref() {
            None | Some("None") => {}
            Some("Gzip") => unsupported(true, "S3CompressionType Gzip")?,
            Some(other) => return Err(enum_error("processingInputs.member.s3Input.s3CompressionType", other, &["None", "Gzip"])),
        }
        inputs.push(ProcessingLocation { name: i.input_name, s3_uri: s3.s3_uri, local_path: s3.local_path.unwrap_or_default() });
    }
    let mut outputs = Vec::new();
    if let Some(config) = input.processing_output_config {
        unsupported(config.kms_key_id.is_some(), "ProcessingOutputConfig.KmsKeyId")?;
        for o in config.outputs {
            unsupported(o.feature_store_output.is_some(), "ProcessingOutputs.FeatureStoreOutput")?;
            unsupported(o.app_managed == Some(true), "ProcessingOutputs.AppManaged")?;
            let s3 = o.s3_output.ok_or_else(|| EdgeError::validation(format!("ProcessingOutput {} needs an S3Output.", o.output_name)))?;
            if !["Continuous", "EndOfJob"].contains(&s3.s3_upload_mode.as_str()) {
                return Err(enum_error(
                    "processingOutputConfig.outputs.member.s3Output.s3UploadMode",
                    &s3.s3_upload_mode,
                    &["Continuous", "EndOfJob"],
                ));
            }
            outputs.push(ProcessingLocation { name: o.output_name, s3_uri: s3.s3_uri, local_path: s3.local_path.unwrap_or_default() });
        }
    }
    let zero = Timestamp::from_millis(0);
    Ok(ProcessingJob {
        name: input.processing_job_name,
        arn: String::new(),
        status: ProcessingJobStatus::InProgress,
        failure_reason: None,
        exit_message: None,
        created: zero,
        modified: zero,
        started: None,
        ended: None,
        image: input.app_specification.image_uri,
        environment: input.environment.unwrap_or_default(),
        inputs,
        outputs,
        max_runtime_secs: input.stopping_condition.map(|s| s.max_runtime_in_seconds),
        monitoring_schedule_arn: None,
        definition,
        log: Vec::new(),
    })
}

/// DescribeProcessingJob's answer: the request as sent, and the job's state.
fn describe_output(j: &ProcessingJob) -> Value {
    let mut out = j.definition.as_object().cloned().unwrap_or_default();
    let mut put = |k: &str, v: Value| {
        out.insert(k.into(), v);
    };
    put("ProcessingJobName", j.name.clone().into());
    put("ProcessingJobArn", j.arn.clone().into());
    put("ProcessingJobStatus", j.status.as_str().into());
    put("CreationTime", secs(j.created).into());
    put("LastModifiedTime", secs(j.modified).into());
    if let Some(t) = j.started {
        put("ProcessingStartTime", secs(t).into());
    }
    if let Some(t) = j.ended {
        put("ProcessingEndTime", secs(t).into());
    }
    if let Some(r) = &j.failure_reason {
        put("FailureReason", r.clone().into());
    }
    if let Some(m) = &j.exit_message {
        put("ExitMessage", m.clone().into());
    }
    if let Some(a) = &j.monitoring_schedule_arn {
        put("MonitoringScheduleArn", a.clone().into());
    }
    Value::Object(out)
}

async fn describe(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let input: NameInput = parse(body)?;
    Ok(describe_output(&c.describe_processing_job(&input.processing_job_name).await?))
}

async fn stop(c: &Arc<Controller>, body: &[u8]) -> Result<Empty, EdgeError> {
    let input: NameInput = parse(body)?;
    c.stop_processing_job(&input.processing_job_name).await?;
    Ok(Empty {})
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessingJobSummary {
    processing_job_name: String,
    processing_job_arn: String,
    creation_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    processing_end_time: Option<f64>,
    last_modified_time: f64,
    processing_job_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_message: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListProcessingJobsOutput {
    processing_job_summaries: Vec<ProcessingJobSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

async fn list(c: &Arc<Controller>, body: &[u8]) -> Result<ListProcessingJobsOutput, EdgeError> {
    let mut input: crate::wire::ListInput = parse(body)?;
    let status = match input.status_equals.take() {
        None => None,
        Some(s) => Some(ProcessingJobStatus::parse(&s).ok_or_else(|| enum_error("statusEquals", &s, &ProcessingJobStatus::names()))?),
    };
    let query = list_query(input, true)?;
    let jobs: Vec<ProcessingJob> = c.processing_jobs().await?.into_iter().filter(|j| status.is_none_or(|s| j.status == s)).collect();
    let page = berth_control::list_processing_jobs(jobs, &query)?;
    let summary = |j: &ProcessingJob| ProcessingJobSummary {
        processing_job_name: j.name.clone(),
        processing_job_arn: j.arn.clone(),
        creation_time: secs(j.created),
        processing_end_time: j.ended.map(secs),
        last_modified_time: secs(j.modified),
        processing_job_status: j.status.as_str(),
        failure_reason: j.failure_reason.clone(),
        exit_message: j.exit_message.clone(),
    };
    Ok(ListProcessingJobsOutput { processing_job_summaries: page.items.iter().map(summary).collect(), next_token: page.next_token })
}
