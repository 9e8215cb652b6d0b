//! Batch transform: `CreateTransformJob`, `DescribeTransformJob`, `ListTransformJobs`,
//! `StopTransformJob` between SageMaker's wire shapes and the controller's jobs. What berth
//! does not do yet (compressed inputs, RecordIO/TFRecord splitting, augmented manifests, batch
//! data capture) is refused by name.

use crate::aws_json::{enum_error, list_query, parse, reply, secs, tags, unsupported};
use crate::error::EdgeError;
use crate::wire::Empty;
use berth_control::Controller;
use berth_domain::{BatchStrategy, TransformJob, TransformJobStatus};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateTransformJobInput {
    transform_job_name: String,
    model_name: String,
    max_concurrent_transforms: Option<u32>,
    model_client_config: Option<ModelClientConfig>,
    #[serde(rename = "MaxPayloadInMB")]
    max_payload_in_mb: Option<u32>,
    batch_strategy: Option<String>,
    environment: Option<BTreeMap<String, String>>,
    transform_input: TransformInput,
    transform_output: TransformOutput,
    transform_resources: TransformResources,
    data_processing: Option<DataProcessing>,
    data_capture_config: Option<IgnoredAny>,
    tags: Option<Vec<crate::wire::Tag>>,
    /// Accepted, as metadata berth keeps no use for.
    #[allow(dead_code)]
    experiment_config: Option<IgnoredAny>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ModelClientConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    invocations_timeout_in_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invocations_max_retries: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TransformInput {
    data_source: TransformDataSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    compression_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    split_type: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TransformDataSource {
    s3_data_source: TransformS3DataSource,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TransformS3DataSource {
    #[serde(rename = "S3DataType")]
    s3_data_type: String,
    #[serde(rename = "S3Uri")]
    s3_uri: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TransformOutput {
    #[serde(rename = "S3OutputPath")]
    s3_output_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    accept: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    assemble_with: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kms_key_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TransformResources {
    instance_type: String,
    instance_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    volume_kms_key_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DataProcessing {
    input_filter: Option<String>,
    output_filter: Option<String>,
    join_source: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NameInput {
    transform_job_name: String,
}

pub(crate) async fn operation(c: &Arc<Controller>, op: &str, body: &[u8]) -> Option<Result<Value, EdgeError>> {
    let result = match op {
        "CreateTransformJob" => create(c, body).await.and_then(reply),
        "DescribeTransformJob" => describe(c, body).await.and_then(reply),
        "ListTransformJobs" => list(c, body).await.and_then(reply),
        "StopTransformJob" => stop(c, body).await.and_then(reply),
        _ => return None,
    };
    Some(result)
}

async fn create(c: &Arc<Controller>, body: &[u8]) -> Result<CreateTransformJobOutput, EdgeError> {
    let input: CreateTransformJobInput = parse(body)?;
    let job_tags = tags(input.tags.clone());
    let job = c.create_transform_job(transform_job(input)?, job_tags).await?;
    Ok(CreateTransformJobOutput { transform_job_arn: job.arn })
}

/// The controller's job from the request, refusing what berth does not do.
fn transform_job(input: CreateTransformJobInput) -> Result<TransformJob, EdgeError> {
    let source = &input.transform_input.data_source.s3_data_source;
    let manifest = match source.s3_data_type.as_str() {
        "S3Prefix" => false,
        "ManifestFile" => true,
        "AugmentedManifestFile" | "Converse" => {
            return Err(refused(&format!("S3DataType {} (berth reads an S3Prefix or a ManifestFile)", source.s3_data_type)))
        }
        other => {
            return Err(enum_error(
                "transformInput.dataSource.s3DataSource.s3DataType",
                other,
                &["ManifestFile", "S3Prefix", "AugmentedManifestFile", "Converse"],
            ))
        }
    };
    match input.transform_input.compression_type.as_deref() {
        None | Some("None") => {}
        Some("Gzip") => unsupported(true, "CompressionType Gzip")?,
        Some(other) => return Err(enum_error("transformInput.compressionType", other, &["None", "Gzip"])),
    }
    let split_lines = match input.transform_input.split_type.as_deref() {
        None | Some("None") => false,
        Some("Line") => true,
        Some(kind @ ("RecordIO" | "TFRecord")) => return Err(refused(&format!("SplitType {kind}"))),
        Some(other) => return Err(enum_error("transformInput.splitType", other, &["None", "Line", "RecordIO", "TFRecord"])),
    };
    let assemble_lines = match input.transform_output.assemble_with.as_deref() {
        None | Some("None") => false,
        Some("Line") => true,
        Some(other) => return Err(enum_error("transformOutput.assembleWith", other, &["None", "Line"])),
    };
    let batch_strategy = match input.batch_strategy.as_deref() {
        None => None,
        Some("MultiRecord") => Some(BatchStrategy::MultiRecord),
        Some("SingleRecord") => Some(BatchStrategy::SingleRecord),
        Some(other) => return Err(enum_error("batchStrategy", other, &["MultiRecord", "SingleRecord"])),
    };
    let processing = input.data_processing.unwrap_or(DataProcessing { input_filter: None, output_filter: None, join_source: None });
    for (member, filter) in [("InputFilter", &processing.input_filter), ("OutputFilter", &processing.output_filter)] {
        if let Some(f) = filter {
            berth_domain::JsonPath::parse(f).map_err(|why| EdgeError::validation(format!("DataProcessing.{member}: {why}.")))?;
        }
    }
    let join_input = match processing.join_source.as_deref() {
        None | Some("None") => false,
        Some("Input") => true,
        Some(other) => return Err(enum_error("dataProcessing.joinSource", other, &["Input", "None"])),
    };
    unsupported(input.data_capture_config.is_some(), "DataCaptureConfig of a transform job")?;
    unsupported(
        input.transform_resources.volume_kms_key_id.is_some(),
        "TransformResources.VolumeKmsKeyId (berth's instances have no volume to encrypt)",
    )?;
    if let Some(c) = &input.model_client_config {
        if c.invocations_timeout_in_seconds.is_some_and(|t| !(1..=3600).contains(&t)) {
            return Err(EdgeError::validation("ModelClientConfig.InvocationsTimeoutInSeconds must be between 1 and 3600."));
        }
        if c.invocations_max_retries.is_some_and(|r| r > 3) {
            return Err(EdgeError::validation("ModelClientConfig.InvocationsMaxRetries must be between 0 and 3."));
        }
    }
    if input.environment.as_ref().is_some_and(|e| e.len() > 16) {
        return Err(EdgeError::validation("Environment may hold at most 16 variables."));
    }
    let resources = &input.transform_resources;
    let output_path = input.transform_output.s3_output_path.trim_end_matches('/');
    let job = TransformJob::new(
        &input.transform_job_name,
        &input.model_name,
        &source.s3_uri,
        output_path,
        &resources.instance_type,
        resources.instance_count,
    );
    let client = input.model_client_config.as_ref();
    Ok(TransformJob {
        manifest,
        content_type: input.transform_input.content_type,
        split_lines,
        accept: input.transform_output.accept,
        assemble_lines,
        output_kms_key_id: input.transform_output.kms_key_id,
        max_concurrent_transforms: input.max_concurrent_transforms,
        max_payload_mb: input.max_payload_in_mb,
        batch_strategy,
        environment: input.environment.unwrap_or_default(),
        invocation_timeout_secs: client.and_then(|c| c.invocations_timeout_in_seconds),
        max_retries: client.and_then(|c| c.invocations_max_retries),
        input_filter: processing.input_filter,
        output_filter: processing.output_filter,
        join_input,
        ..job
    })
}

/// The error `unsupported` gives for `member`.
fn refused(member: &str) -> EdgeError {
    EdgeError::validation(format!("{member} is not supported by this version of berth; leave it out."))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateTransformJobOutput {
    transform_job_arn: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeTransformJobOutput {
    transform_job_name: String,
    transform_job_arn: String,
    transform_job_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<String>,
    model_name: String,
    max_concurrent_transforms: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_client_config: Option<ModelClientConfig>,
    #[serde(rename = "MaxPayloadInMB")]
    max_payload_in_mb: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_strategy: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<BTreeMap<String, String>>,
    transform_input: TransformInput,
    transform_output: TransformOutput,
    transform_resources: TransformResources,
    creation_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    transform_start_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transform_end_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_processing: Option<DataProcessingOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DataProcessingOut {
    input_filter: String,
    output_filter: String,
    join_source: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TransformJobSummary {
    transform_job_name: String,
    transform_job_arn: String,
    creation_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    transform_end_time: Option<f64>,
    last_modified_time: f64,
    transform_job_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListTransformJobsOutput {
    transform_job_summaries: Vec<TransformJobSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

fn describe_output(j: &TransformJob) -> DescribeTransformJobOutput {
    let input = TransformInput {
        data_source: TransformDataSource {
            s3_data_source: TransformS3DataSource {
                s3_data_type: if j.manifest { "ManifestFile" } else { "S3Prefix" }.into(),
                s3_uri: j.input_uri.clone(),
            },
        },
        content_type: j.content_type.clone(),
        compression_type: Some("None".into()),
        split_type: Some(if j.split_lines { "Line" } else { "None" }.into()),
    };
    let output = TransformOutput {
        s3_output_path: j.output_path.clone(),
        accept: j.accept.clone(),
        assemble_with: Some(if j.assemble_lines { "Line" } else { "None" }.into()),
        kms_key_id: j.output_kms_key_id.clone(),
    };
    let resources =
        TransformResources { instance_type: j.instance_type.clone(), instance_count: j.instance_count, volume_kms_key_id: None };
    let client = (j.invocation_timeout_secs.is_some() || j.max_retries.is_some())
        .then_some(ModelClientConfig { invocations_timeout_in_seconds: j.invocation_timeout_secs, invocations_max_retries: j.max_retries });
    DescribeTransformJobOutput {
        transform_job_name: j.name.clone(),
        transform_job_arn: j.arn.clone(),
        transform_job_status: j.status.as_str(),
        failure_reason: j.failure_reason.clone(),
        model_name: j.model_name.clone(),
        max_concurrent_transforms: j.max_concurrent_transforms.unwrap_or(0),
        model_client_config: client,
        max_payload_in_mb: j.max_payload_mb.unwrap_or(TransformJob::DEFAULT_MAX_PAYLOAD_MB),
        batch_strategy: j.batch_strategy.map(|b| match b {
            BatchStrategy::MultiRecord => "MultiRecord",
            BatchStrategy::SingleRecord => "SingleRecord",
        }),
        environment: (!j.environment.is_empty()).then(|| j.environment.clone()),
        transform_input: input,
        transform_output: output,
        transform_resources: resources,
        creation_time: secs(j.created),
        transform_start_time: j.started.map(secs),
        transform_end_time: j.ended.map(secs),
        data_processing: j.processes_records().then(|| DataProcessingOut {
            input_filter: j.input_filter.clone().unwrap_or_else(|| "$".into()),
            output_filter: j.output_filter.clone().unwrap_or_else(|| "$".into()),
            join_source: if j.join_input { "Input" } else { "None" },
        }),
    }
}

async fn describe(c: &Arc<Controller>, body: &[u8]) -> Result<DescribeTransformJobOutput, EdgeError> {
    let input: NameInput = parse(body)?;
    Ok(describe_output(&c.describe_transform_job(&input.transform_job_name).await?))
}

async fn stop(c: &Arc<Controller>, body: &[u8]) -> Result<Empty, EdgeError> {
    let input: NameInput = parse(body)?;
    c.stop_transform_job(&input.transform_job_name).await?;
    Ok(Empty {})
}

async fn list(c: &Arc<Controller>, body: &[u8]) -> Result<ListTransformJobsOutput, EdgeError> {
    let mut input: crate::wire::ListInput = parse(body)?;
    let status = match input.status_equals.take() {
        None => None,
        Some(s) => Some(TransformJobStatus::parse(&s).ok_or_else(|| enum_error("statusEquals", &s, &TransformJobStatus::names()))?),
    };
    let query = list_query(input, true)?;
    let jobs: Vec<TransformJob> = c.transform_jobs().await?.into_iter().filter(|j| status.is_none_or(|s| j.status == s)).collect();
    let page = berth_control::list_transform_jobs(jobs, &query)?;
    let summary = |j: &TransformJob| TransformJobSummary {
        transform_job_name: j.name.clone(),
        transform_job_arn: j.arn.clone(),
        creation_time: secs(j.created),
        transform_end_time: j.ended.map(secs),
        last_modified_time: secs(j.modified),
        transform_job_status: j.status.as_str(),
        failure_reason: j.failure_reason.clone(),
    };
    Ok(ListTransformJobsOutput { transform_job_summaries: page.items.iter().map(summary).collect(), next_token: page.next_token })
}
