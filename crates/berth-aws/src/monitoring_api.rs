//! Model Monitor's schedules on the wire: `Create/Describe/List/DeleteDataQualityJobDefinition`
//! and `...ModelQualityJobDefinition`, `Create/Describe/List/Update/Delete/Start/StopMonitoringSchedule`
//! and `ListMonitoringExecutions`. Requests are read as JSON and each member berth acts on is
//! checked; Describe answers echo the request as sent. What berth does not do (bias and
//! explainability schedules, batch transform inputs, the caller's preprocessing scripts) is
//! refused by name.

use crate::aws_json::{at, enum_error, list_query, parse, reply, required, secs, tags, unsupported};
use crate::error::EdgeError;
use crate::wire::{Empty, ListInput};
use berth_control::Controller;
use berth_domain::{
    parse_offset, ExecutionStatus, ModelQualityJob, MonitoringExecution, MonitoringJob, MonitoringJobDefinition, MonitoringSchedule,
    MonitoringType, ScheduleExpression, ScheduleStatus, Timestamp,
};
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub(crate) async fn operation(c: &Arc<Controller>, op: &str, body: &[u8]) -> Option<Result<Value, EdgeError>> {
    let result = match op {
        "CreateDataQualityJobDefinition" => create_definition(c, body, MonitoringType::DataQuality).await,
        "DescribeDataQualityJobDefinition" => describe_definition(c, body, MonitoringType::DataQuality).await,
        "ListDataQualityJobDefinitions" => list_definitions(c, body, MonitoringType::DataQuality).await,
        "DeleteDataQualityJobDefinition" => delete_definition(c, body, MonitoringType::DataQuality).await,
        "CreateModelQualityJobDefinition" => create_definition(c, body, MonitoringType::ModelQuality).await,
        "DescribeModelQualityJobDefinition" => describe_definition(c, body, MonitoringType::ModelQuality).await,
        "ListModelQualityJobDefinitions" => list_definitions(c, body, MonitoringType::ModelQuality).await,
        "DeleteModelQualityJobDefinition" => delete_definition(c, body, MonitoringType::ModelQuality).await,
        "CreateMonitoringSchedule" => create_schedule(c, body).await,
        "DescribeMonitoringSchedule" => describe_schedule(c, body).await,
        "ListMonitoringSchedules" => list_schedules(c, body).await,
        "UpdateMonitoringSchedule" => update_schedule(c, body).await,
        "DeleteMonitoringSchedule" => delete_schedule(c, body).await,
        "StartMonitoringSchedule" => running(c, body, true).await,
        "StopMonitoringSchedule" => running(c, body, false).await,
        "ListMonitoringExecutions" => list_executions(c, body).await,
        "CreateModelBiasJobDefinition" | "CreateModelExplainabilityJobDefinition" => definition_name(body).and_then(|_| {
            Err(EdgeError::validation(format!(
                "{op}: berth monitors data quality and model quality (CreateDataQualityJobDefinition, CreateModelQualityJobDefinition)."
            )))
        }),
        _ => return None,
    };
    Some(result)
}

/// The job of a data-quality definition, from its parts as named in either request shape:
/// `CreateDataQualityJobDefinition`'s, or a schedule's inline `MonitoringJobDefinition`.
struct JobParts<'a> {
    baseline: Option<&'a Value>,
    app: &'a Value,
    endpoint_input: Option<&'a Value>,
    batch_input: bool,
    output: &'a Value,
    environment: Option<&'a Value>,
    stopping: Option<&'a Value>,
    role: &'a str,
    /// A model-quality job's `ProblemType` and `GroundTruthS3Input.S3Uri`.
    model_quality: Option<(&'a str, &'a str)>,
}

async fn monitoring_job(c: &Arc<Controller>, parts: JobParts<'_>) -> Result<MonitoringJob, EdgeError> {
    unsupported(parts.batch_input, "BatchTransformInput (berth monitors endpoints' captured data)")?;
    for member in ["RecordPreprocessorSourceUri", "PostAnalyticsProcessorSourceUri"] {
        unsupported(parts.app.get(member).is_some(), &format!("{member} (berth's analyzer does not run the caller's scripts)"))?;
    }
    unsupported(
        parts.app.get("ContainerEntrypoint").is_some() || parts.app.get("ContainerArguments").is_some(),
        "ContainerEntrypoint and ContainerArguments (berth runs the analyzer itself)",
    )?;
    let input = parts.endpoint_input.ok_or_else(|| EdgeError::validation("The job's input must be an EndpointInput."))?;
    let offset = |member: &str| at(input, &[member]).map(|o| parse_offset(o).map_err(EdgeError::validation)).transpose();
    let window_offsets = match (offset("StartTimeOffset")?, offset("EndTimeOffset")?) {
        (None, None) => None,
        (Some(start), end) if start < end.unwrap_or(0) => Some((start, end.unwrap_or(0))),
        (Some(_), _) => return Err(EdgeError::validation("EndpointInput.StartTimeOffset must be before EndTimeOffset.")),
        (None, Some(_)) => return Err(EdgeError::validation("EndpointInput.EndTimeOffset needs a StartTimeOffset.")),
    };
    for member in ["FeaturesAttribute", "ExcludeFeaturesAttribute"] {
        unsupported(input.get(member).is_some(), &format!("EndpointInput.{member} (for bias and explainability monitoring)"))?;
    }
    let model_quality = parts.model_quality.map(|(problem_type, ground_truth)| ModelQualityJob {
        problem_type: problem_type.to_string(),
        inference_attribute: at(input, &["InferenceAttribute"]).map(str::to_string),
        probability_attribute: at(input, &["ProbabilityAttribute"]).map(str::to_string),
        probability_threshold: input.get("ProbabilityThresholdAttribute").and_then(Value::as_f64),
        ground_truth_s3_uri: ground_truth.to_string(),
    });
    let outputs = parts
        .output
        .get("MonitoringOutputs")
        .and_then(Value::as_array)
        .filter(|o| o.len() == 1)
        .ok_or_else(|| EdgeError::validation("MonitoringOutputs must hold one output."))?;
    unsupported(parts.output.get("KmsKeyId").is_some(), "MonitoringOutputConfig.KmsKeyId")?;
    let environment = match parts.environment {
        None => Default::default(),
        Some(e) => serde_json::from_value(e.clone()).map_err(|_| EdgeError::validation("Environment must map names to strings."))?,
    };
    let baseline = parts.baseline;
    let mut constraints = baseline.and_then(|b| at(b, &["ConstraintsResource", "S3Uri"])).map(str::to_string);
    let mut statistics = baseline.and_then(|b| at(b, &["StatisticsResource", "S3Uri"])).map(str::to_string);
    let baselining_job_name = baseline.and_then(|b| at(b, &["BaseliningJobName"])).map(str::to_string);
    // Only the baselining job named: its results are the baseline.
    if let Some(job) = &baselining_job_name {
        let found = c.describe_processing_job(job).await?;
        let output = found.outputs.first().map(|o| o.s3_uri.trim_end_matches('/').to_string()).unwrap_or_default();
        constraints.get_or_insert_with(|| format!("{output}/constraints.json"));
        statistics.get_or_insert_with(|| format!("{output}/statistics.json"));
    }
    Ok(MonitoringJob {
        image: required(parts.app, &["ImageUri"])?.to_string(),
        endpoint_name: required(input, &["EndpointName"])?.to_string(),
        input_local_path: required(input, &["LocalPath"])?.to_string(),
        baseline_constraints: constraints,
        baseline_statistics: statistics,
        baselining_job_name,
        output_s3_uri: required(&outputs[0], &["S3Output", "S3Uri"])?.to_string(),
        output_local_path: required(&outputs[0], &["S3Output", "LocalPath"])?.to_string(),
        environment,
        max_runtime_secs: parts.stopping.and_then(|s| s.get("MaxRuntimeInSeconds")).and_then(Value::as_u64),
        role_arn: parts.role.to_string(),
        window_offsets,
        model_quality,
    })
}

/// The request's members, less its name and tags: what Describe echoes.
fn echoed(body: &[u8], name_member: &str) -> Result<Map<String, Value>, EdgeError> {
    let mut members: Map<String, Value> = parse(body)?;
    members.remove(name_member);
    members.remove("Tags");
    Ok(members)
}

async fn create_definition(c: &Arc<Controller>, body: &[u8], kind: MonitoringType) -> Result<Value, EdgeError> {
    let request: Value = parse(body)?;
    let name = required(&request, &["JobDefinitionName"])?.to_string();
    // The request's members are named for the kind: DataQualityAppSpecification, ModelQualityJobInput, ...
    let prefix = kind.as_str();
    let member = |suffix: &str| request.get(format!("{prefix}{suffix}"));
    let needed = |suffix: &str| member(suffix).ok_or_else(|| EdgeError::validation(format!("{prefix}{suffix} is required.")));
    let app = needed("AppSpecification")?;
    let input = needed("JobInput")?;
    let model_quality = match kind {
        MonitoringType::DataQuality => None,
        MonitoringType::ModelQuality => Some((
            required(app, &["ProblemType"]).map_err(|_| EdgeError::validation("ModelQualityAppSpecification.ProblemType is required."))?,
            required(input, &["GroundTruthS3Input", "S3Uri"])?,
        )),
    };
    let job = monitoring_job(
        c,
        JobParts {
            baseline: member("BaselineConfig"),
            app,
            endpoint_input: input.get("EndpointInput"),
            batch_input: input.get("BatchTransformInput").is_some(),
            output: needed("JobOutputConfig")?,
            environment: app.get("Environment"),
            stopping: request.get("StoppingCondition"),
            role: required(&request, &["RoleArn"])?,
            model_quality,
        },
    )
    .await?;
    let tags = tags(serde_json::from_value(request.get("Tags").cloned().unwrap_or(Value::Null)).unwrap_or_default());
    let definition = MonitoringJobDefinition {
        name,
        arn: String::new(),
        kind,
        created: Timestamp::from_millis(0),
        endpoint_name: job.endpoint_name.clone(),
        job,
        definition: Value::Object(echoed(body, "JobDefinitionName")?),
    };
    let created = c.create_monitoring_job_definition(definition, tags).await?;
    Ok(json!({ "JobDefinitionArn": created.arn }))
}

/// The named definition, if it is of `kind` (another kind's is not found, as on SageMaker).
async fn definition_of(c: &Arc<Controller>, body: &[u8], kind: MonitoringType) -> Result<MonitoringJobDefinition, EdgeError> {
    let name = definition_name(body)?;
    let d = c.describe_monitoring_job_definition(&name).await?;
    if d.kind != kind {
        return Err(berth_control::ControlError::JobNotFound(format!("Could not find job definition {name}.")).into());
    }
    Ok(d)
}

fn definition_name(body: &[u8]) -> Result<String, EdgeError> {
    let request: Value = parse(body)?;
    Ok(required(&request, &["JobDefinitionName"])?.to_string())
}

async fn describe_definition(c: &Arc<Controller>, body: &[u8], kind: MonitoringType) -> Result<Value, EdgeError> {
    let d = definition_of(c, body, kind).await?;
    let mut out = d.definition.as_object().cloned().unwrap_or_default();
    out.insert("JobDefinitionArn".into(), d.arn.into());
    out.insert("JobDefinitionName".into(), d.name.into());
    out.insert("CreationTime".into(), secs(d.created).into());
    Ok(Value::Object(out))
}

async fn delete_definition(c: &Arc<Controller>, body: &[u8], kind: MonitoringType) -> Result<Value, EdgeError> {
    c.delete_monitoring_job_definition(&definition_of(c, body, kind).await?.name).await?;
    reply(Empty {})
}

/// A List* request of the monitoring operations: the common members, and the filters berth
/// applies itself.
fn monitoring_list(body: &[u8], sort_keys: &[&str]) -> Result<(berth_control::ListQuery, Value), EdgeError> {
    let request: Value = parse(body)?;
    let mut input: ListInput = parse(body)?;
    if let Some(sort) = input.sort_by.as_deref() {
        if !sort_keys.contains(&sort) {
            return Err(enum_error("sortBy", sort, sort_keys));
        }
        // Executions' ScheduledTime is their creation time as listing sorts it.
        if sort == "ScheduledTime" {
            input.sort_by = Some("CreationTime".into());
        }
    }
    input.status_equals = None;
    Ok((list_query(input, true)?, request))
}

fn matches(request: &Value, member: &str, value: &str) -> bool {
    at(request, &[member]).is_none_or(|wanted| wanted.eq_ignore_ascii_case(value))
}

async fn list_definitions(c: &Arc<Controller>, body: &[u8], kind: MonitoringType) -> Result<Value, EdgeError> {
    let (query, request) = monitoring_list(body, &["Name", "CreationTime"])?;
    let items: Vec<MonitoringJobDefinition> = c
        .monitoring_job_definitions()
        .await?
        .into_iter()
        .filter(|d| d.kind == kind && matches(&request, "EndpointName", &d.endpoint_name))
        .collect();
    let page = berth_control::list_monitoring(items, &query)?;
    let summaries: Vec<Value> = page
        .items
        .iter()
        .map(|d| json!({"MonitoringJobDefinitionName": d.name, "MonitoringJobDefinitionArn": d.arn, "CreationTime": secs(d.created), "EndpointName": d.endpoint_name}))
        .collect();
    Ok(with_token(json!({ "JobDefinitionSummaries": summaries }), page.next_token))
}

fn with_token(mut answer: Value, token: Option<String>) -> Value {
    if let Some(t) = token {
        answer["NextToken"] = t.into();
    }
    answer
}

fn schedule_name(body: &[u8]) -> Result<String, EdgeError> {
    let request: Value = parse(body)?;
    Ok(required(&request, &["MonitoringScheduleName"])?.to_string())
}

/// A schedule from CreateMonitoringSchedule's (or UpdateMonitoringSchedule's) request.
async fn schedule_of(c: &Arc<Controller>, request: &Value) -> Result<MonitoringSchedule, EdgeError> {
    let name = required(request, &["MonitoringScheduleName"])?.to_string();
    let config = request.get("MonitoringScheduleConfig").ok_or_else(|| EdgeError::validation("MonitoringScheduleConfig is required."))?;
    let kind = match at(config, &["MonitoringType"]) {
        None | Some("DataQuality") => MonitoringType::DataQuality,
        Some("ModelQuality") => MonitoringType::ModelQuality,
        Some(kind @ ("ModelBias" | "ModelExplainability")) => {
            return Err(EdgeError::validation(format!("MonitoringType {kind}: berth monitors data quality and model quality.")))
        }
        Some(other) => {
            return Err(enum_error(
                "monitoringScheduleConfig.monitoringType",
                other,
                &["DataQuality", "ModelQuality", "ModelBias", "ModelExplainability"],
            ))
        }
    };
    let schedule_config = config.get("ScheduleConfig");
    let expression = match schedule_config.and_then(|s| at(s, &["ScheduleExpression"])) {
        Some(e) => ScheduleExpression::parse(e).map_err(EdgeError::validation)?,
        None => return Err(EdgeError::validation("ScheduleConfig.ScheduleExpression is required.")),
    };
    let start = schedule_config.and_then(|s| at(s, &["DataAnalysisStartTime"]));
    let end = schedule_config.and_then(|s| at(s, &["DataAnalysisEndTime"]));
    let analysis_window = match (expression, start, end) {
        (ScheduleExpression::Now, Some(s), Some(e)) => {
            let (s, e) = (parse_offset(s).map_err(EdgeError::validation)?, parse_offset(e).map_err(EdgeError::validation)?);
            if s >= e {
                return Err(EdgeError::validation("DataAnalysisStartTime must be before DataAnalysisEndTime."));
            }
            Some((s, e))
        }
        (ScheduleExpression::Now, _, _) => {
            return Err(EdgeError::validation("A NOW schedule needs DataAnalysisStartTime and DataAnalysisEndTime."))
        }
        (_, None, None) => None,
        _ => return Err(EdgeError::validation("DataAnalysisStartTime and DataAnalysisEndTime go with ScheduleExpression NOW only.")),
    };
    let (job_definition_name, job) =
        match (at(config, &["MonitoringJobDefinitionName"]), config.get("MonitoringJobDefinition")) {
            // The controller takes the job from the named definition.
            (Some(d), None) => (Some(d.to_string()), MonitoringJob::default()),
            (None, Some(_)) if kind == MonitoringType::ModelQuality => return Err(EdgeError::validation(
                "A ModelQuality schedule names its job definition (MonitoringJobDefinitionName, from CreateModelQualityJobDefinition); \
                 an inline MonitoringJobDefinition has no ground truth input.",
            )),
            (None, Some(inline)) => {
                let inputs = inline
                    .get("MonitoringInputs")
                    .and_then(Value::as_array)
                    .filter(|i| i.len() == 1)
                    .ok_or_else(|| EdgeError::validation("MonitoringInputs must hold one input."))?;
                let job = monitoring_job(
                    c,
                    JobParts {
                        baseline: inline.get("BaselineConfig"),
                        app: inline
                            .get("MonitoringAppSpecification")
                            .ok_or_else(|| EdgeError::validation("MonitoringAppSpecification is required."))?,
                        endpoint_input: inputs[0].get("EndpointInput"),
                        batch_input: inputs[0].get("BatchTransformInput").is_some(),
                        output: inline
                            .get("MonitoringOutputConfig")
                            .ok_or_else(|| EdgeError::validation("MonitoringOutputConfig is required."))?,
                        environment: inline.get("Environment"),
                        stopping: inline.get("StoppingCondition"),
                        role: required(inline, &["RoleArn"])?,
                        model_quality: None,
                    },
                )
                .await?;
                (None, job)
            }
            _ => return Err(EdgeError::validation("Give exactly one of MonitoringJobDefinitionName and MonitoringJobDefinition.")),
        };
    Ok(MonitoringSchedule {
        name,
        arn: String::new(),
        status: ScheduleStatus::Pending,
        kind,
        created: Timestamp::from_millis(0),
        modified: Timestamp::from_millis(0),
        endpoint_name: job.endpoint_name.clone(),
        job_definition_name,
        job,
        expression,
        analysis_window,
        last_scheduled: None,
        config: config.clone(),
        failure_reason: None,
    })
}

async fn create_schedule(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let request: Value = parse(body)?;
    let schedule = schedule_of(c, &request).await?;
    let tags = tags(serde_json::from_value(request.get("Tags").cloned().unwrap_or(Value::Null)).unwrap_or_default());
    let created = c.create_monitoring_schedule(schedule, tags).await?;
    Ok(json!({ "MonitoringScheduleArn": created.arn }))
}

async fn update_schedule(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let request: Value = parse(body)?;
    let updated = c.update_monitoring_schedule(schedule_of(c, &request).await?).await?;
    Ok(json!({ "MonitoringScheduleArn": updated.arn }))
}

async fn delete_schedule(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    c.delete_monitoring_schedule(&schedule_name(body)?).await?;
    reply(Empty {})
}

async fn running(c: &Arc<Controller>, body: &[u8], run: bool) -> Result<Value, EdgeError> {
    c.set_monitoring_schedule_running(&schedule_name(body)?, run).await?;
    reply(Empty {})
}

fn execution_summary(e: &MonitoringExecution) -> Value {
    let mut s = json!({
        "MonitoringScheduleName": e.schedule_name,
        "ScheduledTime": secs(e.scheduled),
        "CreationTime": secs(e.created),
        "LastModifiedTime": secs(e.modified),
        "MonitoringExecutionStatus": e.status.as_str(),
        "ProcessingJobArn": e.processing_job_arn,
        "EndpointName": e.endpoint_name,
        "MonitoringType": e.kind.as_str(),
    });
    if let Some(r) = &e.failure_reason {
        s["FailureReason"] = r.clone().into();
    }
    if let Some(d) = &e.job_definition_name {
        s["MonitoringJobDefinitionName"] = d.clone().into();
    }
    s
}

async fn describe_schedule(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let s = c.describe_monitoring_schedule(&schedule_name(body)?).await?;
    let mut out = json!({
        "MonitoringScheduleArn": s.arn,
        "MonitoringScheduleName": s.name,
        "MonitoringScheduleStatus": s.status.as_str(),
        "MonitoringType": s.kind.as_str(),
        "CreationTime": secs(s.created),
        "LastModifiedTime": secs(s.modified),
        "MonitoringScheduleConfig": s.config,
        "EndpointName": s.endpoint_name,
    });
    if let Some(r) = &s.failure_reason {
        out["FailureReason"] = r.clone().into();
    }
    if let Some(last) = c.last_monitoring_execution(&s.name).await? {
        out["LastMonitoringExecutionSummary"] = execution_summary(&last);
    }
    Ok(out)
}

async fn list_schedules(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let (query, request) = monitoring_list(body, &["Name", "CreationTime", "Status"])?;
    let status = match at(&request, &["StatusEquals"]) {
        None => None,
        Some(s) => Some(ScheduleStatus::parse(s).ok_or_else(|| enum_error("statusEquals", s, &ScheduleStatus::names()))?),
    };
    let items: Vec<MonitoringSchedule> = c
        .monitoring_schedules()
        .await?
        .into_iter()
        .filter(|s| status.is_none_or(|w| s.status == w))
        .filter(|s| matches(&request, "EndpointName", &s.endpoint_name) && matches(&request, "MonitoringTypeEquals", s.kind.as_str()))
        .filter(|s| {
            at(&request, &["MonitoringJobDefinitionName"])
                .is_none_or(|d| s.job_definition_name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(d)))
        })
        .collect();
    let page = berth_control::list_monitoring(items, &query)?;
    let summaries: Vec<Value> = page
        .items
        .iter()
        .map(|s| {
            let mut v = json!({
                "MonitoringScheduleName": s.name, "MonitoringScheduleArn": s.arn, "CreationTime": secs(s.created),
                "LastModifiedTime": secs(s.modified), "MonitoringScheduleStatus": s.status.as_str(),
                "EndpointName": s.endpoint_name, "MonitoringType": s.kind.as_str(),
            });
            if let Some(d) = &s.job_definition_name {
                v["MonitoringJobDefinitionName"] = d.clone().into();
            }
            v
        })
        .collect();
    Ok(with_token(json!({ "MonitoringScheduleSummaries": summaries }), page.next_token))
}

async fn list_executions(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let (query, request) = monitoring_list(body, &["CreationTime", "ScheduledTime", "Status"])?;
    let status = match at(&request, &["StatusEquals"]) {
        None => None,
        Some(s) => Some(ExecutionStatus::parse(s).ok_or_else(|| enum_error("statusEquals", s, &ExecutionStatus::names()))?),
    };
    let scheduled = |member: &str| request.get(member).and_then(Value::as_f64).map(Timestamp::from_secs_f64);
    let (after, before) = (scheduled("ScheduledTimeAfter"), scheduled("ScheduledTimeBefore"));
    let items: Vec<MonitoringExecution> = c
        .monitoring_executions()
        .await?
        .into_iter()
        .filter(|e| status.is_none_or(|w| e.status == w))
        .filter(|e| matches(&request, "MonitoringScheduleName", &e.schedule_name) && matches(&request, "EndpointName", &e.endpoint_name))
        .filter(|e| matches(&request, "MonitoringTypeEquals", e.kind.as_str()))
        .filter(|e| after.is_none_or(|a| e.scheduled > a) && before.is_none_or(|b| e.scheduled < b))
        .collect();
    let page = berth_control::list_monitoring(items, &query)?;
    let summaries: Vec<Value> = page.items.iter().map(execution_summary).collect();
    Ok(with_token(json!({ "MonitoringExecutionSummaries": summaries }), page.next_token))
}
