//! Inference Recommender on the wire: `CreateInferenceRecommendationsJob`,
//! `DescribeInferenceRecommendationsJob`, `ListInferenceRecommendationsJobs`,
//! `ListInferenceRecommendationsJobSteps` and `StopInferenceRecommendationsJob`. Requests are read
//! as JSON; each member berth acts on is checked, and what it does not do (serverless
//! candidates, VPC and KMS settings, compiled outputs) is refused by name. A job tests a model
//! (`ModelName`) or a registered version (`ModelPackageVersionArn`).
//! Describe echoes the request's `InputConfig` and `StoppingConditions`.

use crate::aws_json::{at, enum_error, list_query, parse, reply, required, secs, tags, unsupported};
use crate::error::EdgeError;
use crate::wire::Empty;
use berth_control::Controller;
use berth_domain::{
    phase_steps, stairs_steps, Benchmark, Candidate, LatencyThreshold, RecommendationJob, RecommendationJobStatus, RecommendationJobType,
    Timestamp, Traffic, DEFAULT_CANDIDATE_TYPES, DEFAULT_THRESHOLD,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most candidates one job tests (SageMaker's `EndpointConfigurations` hold up to 10; environment
/// ranges multiply them).
const MAX_CANDIDATES: usize = 20;
/// `JobDurationInSeconds` when not given, and its largest value.
const DEFAULT_DURATION_SECS: u64 = 7200;
const MAX_DURATION_SECS: u64 = 18_000;
/// The steps a traffic pattern is cut into, in seconds.
const STEP_SECS: u64 = 5;
/// berth's search for a Default job: from 4 requests a second, doubling up to 20,000, 2 s a step.
const SEARCH: Traffic = Traffic::Search { start: 4.0, max: 20_000.0, step_secs: 2 };

pub(crate) async fn operation(c: &Arc<Controller>, op: &str, body: &[u8]) -> Option<Result<Value, EdgeError>> {
    let result = match op {
        "CreateInferenceRecommendationsJob" => create(c, body).await,
        "DescribeInferenceRecommendationsJob" => describe(c, body).await,
        "ListInferenceRecommendationsJobs" => list(c, body).await,
        "ListInferenceRecommendationsJobSteps" => steps(c, body).await,
        "StopInferenceRecommendationsJob" => match job_name(body) {
            Ok(name) => c.stop_recommendation_job(&name).await.map_err(EdgeError::from).and_then(|()| reply(Empty {})),
            Err(e) => Err(e),
        },
        _ => return None,
    };
    Some(result)
}

fn job_name(body: &[u8]) -> Result<String, EdgeError> {
    let request: Value = parse(body)?;
    Ok(required(&request, &["JobName"])?.to_string())
}

fn positive(v: Option<&Value>, member: &str) -> Result<Option<u64>, EdgeError> {
    match v {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| EdgeError::validation(format!("{member} must be a positive whole number."))),
    }
}

async fn create(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let request: Value = parse(body)?;
    let name = required(&request, &["JobName"])?.to_string();
    let job_type = required(&request, &["JobType"])?;
    let job_type =
        RecommendationJobType::parse(job_type).ok_or_else(|| enum_error("jobType", job_type, &RecommendationJobType::names()))?;
    let role_arn = required(&request, &["RoleArn"])?.to_string();
    let input = request.get("InputConfig").filter(|v| v.is_object()).ok_or_else(|| EdgeError::validation("InputConfig is required."))?;
    for member in ["VpcConfig", "VolumeKmsKeyId"] {
        unsupported(input.get(member).is_some(), &format!("InputConfig.{member}"))?;
    }
    unsupported(request.get("OutputConfig").is_some(), "OutputConfig (compiled models)")?;
    let model_package_arn = at(input, &["ModelPackageVersionArn"]).map(str::to_string);
    let model_name = match (at(input, &["ModelName"]), &model_package_arn) {
        (Some(m), None) => m.to_string(),
        (None, Some(_)) => String::new(),
        _ => return Err(EdgeError::validation("InputConfig needs ModelName or ModelPackageVersionArn, one of them.")),
    };
    let container = input.get("ContainerConfig");
    let payload = container.and_then(|c| c.get("PayloadConfig"));
    let sample_payload_url = payload.and_then(|p| at(p, &["SamplePayloadUrl"])).map(str::to_string).ok_or_else(|| {
        EdgeError::validation("InputConfig.ContainerConfig.PayloadConfig.SamplePayloadUrl is required: berth load-tests with your sample payloads (a .tar.gz of request bodies).")
    })?;
    let content_type = payload
        .and_then(|p| p.get("SupportedContentTypes"))
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut existing: Vec<String> = Vec::new();
    let mut candidates = match (job_type, input.get("EndpointConfigurations")) {
        (_, Some(configs)) => endpoint_candidates(configs)?,
        (RecommendationJobType::Advanced, None) if input.get("Endpoints").is_none() => {
            return Err(EdgeError::validation(
                "An Advanced job needs InputConfig.EndpointConfigurations (the candidates to test) or Endpoints.",
            ))
        }
        (RecommendationJobType::Advanced, None) => Vec::new(),
        (RecommendationJobType::Default, None) => {
            let listed: Option<Vec<&str>> = container
                .and_then(|c| c.get("SupportedInstanceTypes"))
                .and_then(Value::as_array)
                .map(|types| types.iter().filter_map(Value::as_str).collect());
            let types = listed.filter(|t| !t.is_empty()).unwrap_or_else(|| DEFAULT_CANDIDATE_TYPES.to_vec());
            types.into_iter().map(|t| candidate(t, BTreeMap::new(), None)).collect()
        }
    };
    // Existing endpoints to test, besides (or instead of) candidates of the job's own.
    if let Some(endpoints) = input.get("Endpoints") {
        let endpoints = endpoints
            .as_array()
            .filter(|e| !e.is_empty())
            .ok_or_else(|| EdgeError::validation("InputConfig.Endpoints must hold at least one endpoint."))?;
        if input.get("EndpointConfigurations").is_none() {
            candidates.clear();
        }
        for e in endpoints {
            existing.push(required(e, &["EndpointName"])?.to_string());
        }
    }
    if let Some(limit) = positive(input.pointer("/ResourceLimit/MaxNumberOfTests"), "ResourceLimit.MaxNumberOfTests")? {
        candidates.truncate(limit as usize);
    }
    positive(input.pointer("/ResourceLimit/MaxParallelOfTests"), "ResourceLimit.MaxParallelOfTests")?;
    if candidates.len() + existing.len() > MAX_CANDIDATES {
        return Err(EdgeError::validation(format!(
            "The job would test {} candidates; berth tests at most {MAX_CANDIDATES}.",
            candidates.len()
        )));
    }
    let traffic = match input.get("TrafficPattern") {
        None => SEARCH,
        Some(p) => traffic(p)?,
    };
    let stopping = request.get("StoppingConditions");
    let mut thresholds = Vec::new();
    for t in stopping.and_then(|s| s.get("ModelLatencyThresholds")).and_then(Value::as_array).into_iter().flatten() {
        let percentile = required(t, &["Percentile"])?;
        let p = percentile.strip_prefix('P').and_then(|p| p.parse::<f64>().ok()).filter(|p| (1.0..=100.0).contains(p));
        let p = p.ok_or_else(|| {
            EdgeError::validation(format!(
                "ModelLatencyThresholds.Percentile {percentile} is not one berth measures: P50, P90, P95, P99 and the like."
            ))
        })?;
        let ms = t
            .get("ValueInMilliseconds")
            .and_then(Value::as_u64)
            .ok_or_else(|| EdgeError::validation("ModelLatencyThresholds.ValueInMilliseconds is required."))?;
        thresholds.push(LatencyThreshold { percentile: p, milliseconds: ms as f64 });
    }
    if thresholds.is_empty() {
        thresholds.push(DEFAULT_THRESHOLD);
    }
    if let Some(flat) = stopping.and_then(|s| at(s, &["FlatInvocations"])) {
        if !["Continue", "Stop"].contains(&flat) {
            return Err(enum_error("stoppingConditions.flatInvocations", flat, &["Continue", "Stop"]));
        }
    }
    let duration = positive(input.get("JobDurationInSeconds"), "JobDurationInSeconds")?.unwrap_or(DEFAULT_DURATION_SECS);
    if duration > MAX_DURATION_SECS {
        return Err(EdgeError::validation(format!("JobDurationInSeconds must be at most {MAX_DURATION_SECS}.")));
    }
    let job = RecommendationJob {
        name,
        arn: String::new(),
        job_type,
        status: RecommendationJobStatus::Pending,
        role_arn,
        description: at(&request, &["JobDescription"]).map(str::to_string),
        created: Timestamp::from_millis(0),
        modified: Timestamp::from_millis(0),
        completed: None,
        failure_reason: None,
        model_name,
        model_package_arn,
        sample_payload_url: Some(sample_payload_url),
        content_type,
        max_duration_secs: duration,
        traffic,
        thresholds,
        max_invocations: positive(stopping.and_then(|s| s.get("MaxInvocations")), "StoppingConditions.MaxInvocations")?,
        benchmarks: candidates
            .into_iter()
            .map(benchmark)
            .chain(existing.into_iter().map(|endpoint| Benchmark {
                endpoint_name: endpoint,
                existing_endpoint: true,
                ..benchmark(candidate("", BTreeMap::new(), None))
            }))
            .collect(),
        input_config: input.clone(),
        stopping_conditions: stopping.cloned(),
        log: Vec::new(),
    };
    let tags = tags(serde_json::from_value(request.get("Tags").cloned().unwrap_or(Value::Null)).unwrap_or_default());
    let created = c.create_recommendation_job(job, tags).await?;
    Ok(json!({ "JobArn": created.arn }))
}

fn candidate(instance_type: &str, environment: BTreeMap<String, String>, spec: Option<String>) -> Candidate {
    Candidate { instance_type: instance_type.to_string(), instance_count: 1, environment, inference_specification_name: spec }
}

fn benchmark(candidate: Candidate) -> Benchmark {
    Benchmark {
        candidate,
        status: RecommendationJobStatus::Pending,
        endpoint_name: String::new(),
        metrics: None,
        failure_reason: None,
        started: None,
        ended: None,
        curve: Vec::new(),
        recommended: false,
        existing_endpoint: false,
    }
}

/// `EndpointConfigurations`: each instance type with every combination of its environment
/// parameter ranges' values.
fn endpoint_candidates(configs: &Value) -> Result<Vec<Candidate>, EdgeError> {
    let configs = configs
        .as_array()
        .filter(|c| (1..=10).contains(&c.len()))
        .ok_or_else(|| EdgeError::validation("EndpointConfigurations must hold 1 to 10 configurations."))?;
    let mut out = Vec::new();
    for config in configs {
        unsupported(config.get("ServerlessConfig").is_some(), "EndpointConfigurations.ServerlessConfig (serverless candidates)")?;
        let instance_type = required(config, &["InstanceType"])?;
        let spec = at(config, &["InferenceSpecificationName"]).map(str::to_string);
        let mut environments = vec![BTreeMap::new()];
        for range in
            config.pointer("/EnvironmentParameterRanges/CategoricalParameterRanges").and_then(Value::as_array).into_iter().flatten()
        {
            let name = required(range, &["Name"])?;
            let values: Vec<&str> =
                range.get("Value").and_then(Value::as_array).map(|v| v.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            if values.is_empty() {
                return Err(EdgeError::validation(format!("CategoricalParameterRanges {name} has no Value.")));
            }
            environments = environments
                .into_iter()
                .flat_map(|env| {
                    values.iter().map(move |v| {
                        let mut env = env.clone();
                        env.insert(name.to_string(), v.to_string());
                        env
                    })
                })
                .collect();
            if environments.len() > MAX_CANDIDATES {
                return Err(EdgeError::validation(format!("EnvironmentParameterRanges make more than {MAX_CANDIDATES} candidates.")));
            }
        }
        out.extend(environments.into_iter().map(|env| candidate(instance_type, env, spec.clone())));
    }
    Ok(out)
}

/// `TrafficPattern`: its phases or stairs as steps of one request a second per user.
fn traffic(pattern: &Value) -> Result<Traffic, EdgeError> {
    let number = |v: &Value, member: &str| v.get(member).and_then(Value::as_u64).unwrap_or(0);
    match at(pattern, &["TrafficType"]).unwrap_or("PHASES") {
        "PHASES" => {
            let phases = pattern
                .get("Phases")
                .and_then(Value::as_array)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| EdgeError::validation("TrafficPattern.Phases must hold at least one phase."))?;
            let mut steps = Vec::new();
            for phase in phases {
                let duration = number(phase, "DurationInSeconds");
                if duration == 0 {
                    return Err(EdgeError::validation("Each phase needs a DurationInSeconds above 0."));
                }
                let users = u32::try_from(number(phase, "InitialNumberOfUsers").max(1)).unwrap_or(u32::MAX);
                let spawn = u32::try_from(number(phase, "SpawnRate")).unwrap_or(u32::MAX);
                steps.extend(phase_steps(users, spawn, duration, STEP_SECS));
            }
            Ok(Traffic::Steps(steps))
        }
        "STAIRS" => {
            let stairs = pattern.get("Stairs").ok_or_else(|| EdgeError::validation("A STAIRS TrafficPattern needs Stairs."))?;
            let (duration, count, users) =
                (number(stairs, "DurationInSeconds"), number(stairs, "NumberOfSteps"), number(stairs, "UsersPerStep"));
            if duration == 0 || count == 0 || users == 0 {
                return Err(EdgeError::validation("Stairs needs DurationInSeconds, NumberOfSteps and UsersPerStep above 0."));
            }
            let (count, users) = (u32::try_from(count).unwrap_or(u32::MAX), u32::try_from(users).unwrap_or(u32::MAX));
            Ok(Traffic::Steps(stairs_steps(duration, count, users, STEP_SECS)))
        }
        other => Err(enum_error("trafficPattern.trafficType", other, &["PHASES", "STAIRS"])),
    }
}

fn metrics(b: &Benchmark) -> Option<Value> {
    let m = b.metrics.as_ref()?;
    let mut out = json!({
        "CostPerHour": m.cost_per_hour,
        "CostPerInference": m.cost_per_inference,
        "MaxInvocations": m.max_invocations,
        "ModelLatency": m.model_latency,
        "ModelSetupTime": m.model_setup_time,
    });
    if let Some(cpu) = m.cpu_utilization {
        out["CpuUtilization"] = json!(cpu);
    }
    if let Some(memory) = m.memory_utilization {
        out["MemoryUtilization"] = json!(memory);
    }
    Some(out)
}

fn endpoint_configuration(b: &Benchmark) -> Value {
    json!({
        "EndpointName": b.endpoint_name,
        "VariantName": "AllTraffic",
        "InstanceType": b.candidate.instance_type,
        "InitialInstanceCount": b.candidate.instance_count,
    })
}

fn model_configuration(b: &Benchmark) -> Value {
    let mut out = Map::new();
    if let Some(spec) = &b.candidate.inference_specification_name {
        out.insert("InferenceSpecificationName".into(), spec.clone().into());
    }
    if !b.candidate.environment.is_empty() {
        let parameters: Vec<Value> =
            b.candidate.environment.iter().map(|(k, v)| json!({"Key": k, "ValueType": "String", "Value": v})).collect();
        out.insert("EnvironmentParameters".into(), parameters.into());
    }
    Value::Object(out)
}

/// The recommendations: each candidate that kept the thresholds, by cost per inference from the
/// highest, so that the cheapest is last — the one the SageMaker SDK's `deploy()` after
/// `right_size()` takes.
fn recommendations(job: &RecommendationJob) -> Vec<Value> {
    let mut kept: Vec<(usize, &Benchmark)> =
        job.benchmarks.iter().enumerate().filter(|(_, b)| b.recommended && !b.existing_endpoint).collect();
    kept.sort_by(|a, b| {
        let cost = |b: &Benchmark| b.metrics.as_ref().map_or(f64::MAX, |m| m.cost_per_inference);
        cost(b.1).total_cmp(&cost(a.1))
    });
    kept.iter()
        .map(|(i, b)| {
            let mut r = json!({
                "RecommendationId": format!("{}/{}", job.name, i + 1),
                "Metrics": metrics(b),
                "EndpointConfiguration": endpoint_configuration(b),
                "ModelConfiguration": model_configuration(b),
            });
            if let (Some(start), Some(end)) = (b.started, b.ended) {
                r["InvocationStartTime"] = secs(start).into();
                r["InvocationEndTime"] = secs(end).into();
            }
            r
        })
        .collect()
}

async fn describe(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let job = c.describe_recommendation_job(&job_name(body)?).await?;
    let mut out = json!({
        "JobName": job.name,
        "JobType": job.job_type.as_str(),
        "JobArn": job.arn,
        "RoleArn": job.role_arn,
        "Status": job.status.as_str(),
        "CreationTime": secs(job.created),
        "LastModifiedTime": secs(job.modified),
        "InputConfig": job.input_config,
    });
    if let Some(d) = &job.description {
        out["JobDescription"] = d.clone().into();
    }
    if let Some(t) = job.completed {
        out["CompletionTime"] = secs(t).into();
    }
    if let Some(r) = &job.failure_reason {
        out["FailureReason"] = r.clone().into();
    }
    if let Some(s) = &job.stopping_conditions {
        out["StoppingConditions"] = s.clone();
    }
    if job.status == RecommendationJobStatus::Completed {
        out["InferenceRecommendations"] = recommendations(&job).into();
        let performances: Vec<Value> = job
            .benchmarks
            .iter()
            .filter(|b| b.existing_endpoint && b.metrics.is_some())
            .map(|b| {
                let m = metrics(b).unwrap_or_default();
                json!({"Metrics": {"MaxInvocations": m["MaxInvocations"], "ModelLatency": m["ModelLatency"]}, "EndpointInfo": {"EndpointName": b.endpoint_name}})
            })
            .collect();
        if !performances.is_empty() {
            out["EndpointPerformances"] = performances.into();
        }
    }
    Ok(out)
}

async fn list(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let request: Value = parse(body)?;
    let mut input: crate::wire::ListInput = parse(body)?;
    let status = match input.status_equals.take() {
        None => None,
        Some(s) => {
            Some(RecommendationJobStatus::parse(&s).ok_or_else(|| enum_error("statusEquals", &s, &RecommendationJobStatus::names()))?)
        }
    };
    let model = at(&request, &["ModelNameEquals"]);
    let package = at(&request, &["ModelPackageVersionArnEquals"]);
    let query = list_query(input, true)?;
    let jobs: Vec<RecommendationJob> = c
        .recommendation_jobs()
        .await?
        .into_iter()
        .filter(|j| status.is_none_or(|s| j.status == s) && model.is_none_or(|m| j.model_name.eq_ignore_ascii_case(m)))
        .filter(|j| package.is_none_or(|p| j.model_package_arn.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(p))))
        .collect();
    let page = berth_control::list_recommendation_jobs(jobs, &query)?;
    let summaries: Vec<Value> = page
        .items
        .iter()
        .map(|j| {
            let mut s = json!({
                "JobName": j.name, "JobDescription": j.description.clone().unwrap_or_default(), "JobType": j.job_type.as_str(),
                "JobArn": j.arn, "Status": j.status.as_str(), "CreationTime": secs(j.created), "RoleArn": j.role_arn,
                "LastModifiedTime": secs(j.modified), "ModelName": j.model_name,
            });
            if let Some(t) = j.completed {
                s["CompletionTime"] = secs(t).into();
            }
            if let Some(r) = &j.failure_reason {
                s["FailureReason"] = r.clone().into();
            }
            if let Some(u) = &j.sample_payload_url {
                s["SamplePayloadUrl"] = u.clone().into();
            }
            if let Some(p) = &j.model_package_arn {
                s["ModelPackageVersionArn"] = p.clone().into();
            }
            s
        })
        .collect();
    let mut out = json!({ "InferenceRecommendationsJobs": summaries });
    if let Some(t) = page.next_token {
        out["NextToken"] = t.into();
    }
    Ok(out)
}

/// ListInferenceRecommendationsJobSteps: a `BENCHMARK` step per candidate.
async fn steps(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let request: Value = parse(body)?;
    let job = c.describe_recommendation_job(required(&request, &["JobName"])?).await?;
    let status = match at(&request, &["Status"]) {
        None => None,
        Some(s) => Some(RecommendationJobStatus::parse(s).ok_or_else(|| enum_error("status", s, &RecommendationJobStatus::names()))?),
    };
    if let Some(t) = at(&request, &["StepType"]) {
        if t != "BENCHMARK" {
            return Err(enum_error("stepType", t, &["BENCHMARK"]));
        }
    }
    let max = match request.get("MaxResults") {
        None => 100,
        Some(v) => {
            v.as_u64().filter(|n| (1..=100).contains(n)).ok_or_else(|| EdgeError::validation("MaxResults must be 1 to 100."))? as usize
        }
    };
    let start = match at(&request, &["NextToken"]) {
        None => 0,
        Some(t) => {
            t.strip_prefix("step/").and_then(|n| n.parse().ok()).ok_or_else(|| EdgeError::validation(format!("Invalid NextToken {t}.")))?
        }
    };
    let chosen: Vec<&Benchmark> = job.benchmarks.iter().filter(|b| status.is_none_or(|s| b.status == s)).collect();
    let page: Vec<Value> = chosen
        .iter()
        .skip(start)
        .take(max)
        .map(|b| {
            let mut benchmark = json!({
                "EndpointConfiguration": endpoint_configuration(b),
                "ModelConfiguration": model_configuration(b),
            });
            if let Some(m) = metrics(b) {
                benchmark["EndpointMetrics"] = json!({"MaxInvocations": m["MaxInvocations"], "ModelLatency": m["ModelLatency"]});
                benchmark["Metrics"] = m;
            }
            if let Some(r) = &b.failure_reason {
                benchmark["FailureReason"] = r.clone().into();
            }
            if let (Some(start), Some(end)) = (b.started, b.ended) {
                benchmark["InvocationStartTime"] = secs(start).into();
                benchmark["InvocationEndTime"] = secs(end).into();
            }
            json!({"StepType": "BENCHMARK", "JobName": job.name, "Status": b.status.as_str(), "InferenceBenchmark": benchmark})
        })
        .collect();
    let mut out = json!({ "Steps": page });
    if start + max < chosen.len() {
        out["NextToken"] = format!("step/{}", start + max).into();
    }
    Ok(out)
}
