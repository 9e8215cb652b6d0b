//! Inference components on the wire: `Create/Describe/List/Update/Delete InferenceComponent` and
//! `UpdateInferenceComponentRuntimeConfig`. Requests are read as JSON; what berth does not do
//! (accelerators, adapters on a base component, several specifications, data caching and
//! scheduling settings) is refused by name.

use crate::aws_json::{at, list_query, parse, reply, required, secs, tags, unsupported};
use crate::error::EdgeError;
use crate::wire::{self, Empty};
use berth_control::{ComponentSpecification, Controller, CreateInferenceComponent};
use berth_domain::{
    CapacitySize, CapacityUnit, ComponentDeployment, ComputeRequirements, ContainerSpec, InferenceComponent, RollingPolicy,
};
use serde_json::{json, Value};
use std::sync::Arc;

pub(crate) async fn operation(c: &Arc<Controller>, op: &str, body: &[u8]) -> Option<Result<Value, EdgeError>> {
    let result = match op {
        "CreateInferenceComponent" => create(c, body).await,
        "DescribeInferenceComponent" => describe(c, body).await,
        "ListInferenceComponents" => list(c, body).await,
        "UpdateInferenceComponent" => update(c, body, false).await,
        "UpdateInferenceComponentRuntimeConfig" => update(c, body, true).await,
        "DeleteInferenceComponent" => match parse::<Value>(body).and_then(|r| Ok(required(&r, &["InferenceComponentName"])?.to_string())) {
            Ok(name) => c.delete_inference_component(&name).await.map_err(EdgeError::from).and_then(|()| reply(Empty {})),
            Err(e) => Err(e),
        },
        _ => return None,
    };
    Some(result)
}

/// `RuntimeConfig.CopyCount` (or `DesiredRuntimeConfig`'s), which must be a count.
fn copy_count(request: &Value, member: &str) -> Result<Option<u32>, EdgeError> {
    match request.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(config) => match config.get("CopyCount").map(|n| n.as_u64().and_then(|n| u32::try_from(n).ok())) {
            Some(Some(n)) => Ok(Some(n)),
            Some(None) => Err(EdgeError::validation(format!("{member}.CopyCount must be a whole number of copies, at least 0."))),
            None => Err(EdgeError::validation(format!(
                "1 validation error detected: Value null at '{member}.copyCount' failed to satisfy constraint: Member must not be null"
            ))),
        },
    }
}

fn specification(request: &Value) -> Result<Option<ComponentSpecification>, EdgeError> {
    unsupported(request.get("Specifications").is_some(), "Specifications")?;
    let Some(spec) = request.get("Specification").filter(|s| !s.is_null()) else { return Ok(None) };
    for member in ["BaseInferenceComponentName", "DataCacheConfig", "SchedulingConfig", "InstanceType"] {
        unsupported(spec.get(member).is_some(), &format!("Specification.{member}"))?;
    }
    let container = match spec.get("Container").filter(|c| !c.is_null()) {
        None => None,
        Some(c) => {
            unsupported(c.get("ContainerMetricsConfig").is_some(), "Specification.Container.ContainerMetricsConfig")?;
            let image = required(c, &["Image"]).map_err(|_| EdgeError::validation("Specification.Container needs an Image."))?;
            let environment = match c.get("Environment") {
                None | Some(Value::Null) => Default::default(),
                Some(e) => serde_json::from_value(e.clone())
                    .map_err(|_| EdgeError::validation("Specification.Container.Environment must map names to strings."))?,
            };
            Some(ContainerSpec { environment, ..ContainerSpec::new(image, at(c, &["ArtifactUrl"]).map(str::to_string)) })
        }
    };
    let requirements = match spec.get("ComputeResourceRequirements").filter(|r| !r.is_null()) {
        None => None,
        Some(r) => {
            unsupported(r.get("NumberOfAcceleratorDevicesRequired").is_some(), "ComputeResourceRequirements.NumberOfAcceleratorDevicesRequired: this host has no accelerator devices berth can give a copy, and")?;
            unsupported(r.get("AcceleratorPartitionType").is_some(), "ComputeResourceRequirements.AcceleratorPartitionType")?;
            let memory = |m: &str| {
                r.get(m).map(|v| v.as_u64().ok_or_else(|| EdgeError::validation(format!("{m} must be a whole number of MB.")))).transpose()
            };
            let cores = match r.get("NumberOfCpuCoresRequired") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_f64().ok_or_else(|| EdgeError::validation("NumberOfCpuCoresRequired must be a number."))?),
            };
            Some(ComputeRequirements {
                cpu_cores: cores,
                min_memory_mb: memory("MinMemoryRequiredInMb")?.ok_or_else(|| {
                    EdgeError::validation("1 validation error detected: Value null at 'specification.computeResourceRequirements.minMemoryRequiredInMb' failed to satisfy constraint: Member must not be null")
                })?,
                max_memory_mb: memory("MaxMemoryRequiredInMb")?,
            })
        }
    };
    let timeout =
        |m: &str| spec.get("StartupParameters").and_then(|p| p.get(m)).and_then(Value::as_u64).map(|t| t.min(u64::from(u32::MAX)) as u32);
    Ok(Some(ComponentSpecification {
        model_name: at(spec, &["ModelName"]).map(str::to_string),
        container,
        requirements,
        download_timeout_secs: timeout("ModelDataDownloadTimeoutInSeconds"),
        startup_timeout_secs: timeout("ContainerStartupHealthCheckTimeoutInSeconds"),
    }))
}

/// `DeploymentConfig` of UpdateInferenceComponent, the wire's shape (batches in copies).
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeploymentConfigWire {
    rolling_update_policy: Option<wire::RollingUpdatePolicy>,
    auto_rollback_configuration: Option<wire::AutoRollbackConfig>,
}

fn copy_capacity(field: &str, c: &wire::CapacitySize) -> Result<CapacitySize, EdgeError> {
    let unit = match c.kind.as_str() {
        "COPY_COUNT" => CapacityUnit::InstanceCount,
        "CAPACITY_PERCENT" => CapacityUnit::CapacityPercent,
        other => {
            return Err(crate::aws_json::enum_error(
                &format!("deploymentConfig.rollingUpdatePolicy.{field}.type"),
                other,
                &["COPY_COUNT", "CAPACITY_PERCENT"],
            ))
        }
    };
    Ok(CapacitySize { unit, value: c.value })
}

fn deployment_config(request: &Value) -> Result<Option<ComponentDeployment>, EdgeError> {
    let Some(raw) = request.get("DeploymentConfig").filter(|d| !d.is_null()) else { return Ok(None) };
    let w: DeploymentConfigWire = serde_json::from_value(raw.clone())
        .map_err(|e| EdgeError::validation(format!("DeploymentConfig is not a deployment configuration: {e}")))?;
    let r = w.rolling_update_policy.ok_or_else(|| {
        EdgeError::validation("1 validation error detected: Value null at 'deploymentConfig.rollingUpdatePolicy' failed to satisfy constraint: Member must not be null")
    })?;
    let policy = RollingPolicy {
        max_batch: copy_capacity("maximumBatchSize", &r.maximum_batch_size)?,
        wait_interval_secs: r.wait_interval_in_seconds,
        max_execution_secs: r.maximum_execution_timeout_in_seconds,
        rollback_max_batch: r.rollback_maximum_batch_size.as_ref().map(|c| copy_capacity("rollbackMaximumBatchSize", c)).transpose()?,
    };
    let rollback_alarms = match w.auto_rollback_configuration {
        Some(a) if a.alarms.is_empty() => {
            return Err(EdgeError::validation("AutoRollbackConfiguration.Alarms takes 1 to 10 alarm names."));
        }
        Some(a) => a.alarms.into_iter().map(|a| a.alarm_name).collect(),
        None => Vec::new(),
    };
    Ok(Some(ComponentDeployment { policy, rollback_alarms }))
}

/// Describe's `LastDeploymentConfig`.
fn deployment_config_wire(d: &ComponentDeployment) -> Value {
    let size = |c: CapacitySize| {
        let kind = match c.unit {
            CapacityUnit::InstanceCount => "COPY_COUNT",
            CapacityUnit::CapacityPercent => "CAPACITY_PERCENT",
        };
        json!({ "Type": kind, "Value": c.value })
    };
    let p = &d.policy;
    let mut rolling = json!({ "MaximumBatchSize": size(p.max_batch), "WaitIntervalInSeconds": p.wait_interval_secs });
    if let Some(t) = p.max_execution_secs {
        rolling["MaximumExecutionTimeoutInSeconds"] = json!(t);
    }
    if let Some(b) = p.rollback_max_batch {
        rolling["RollbackMaximumBatchSize"] = size(b);
    }
    let mut out = json!({ "RollingUpdatePolicy": rolling });
    if !d.rollback_alarms.is_empty() {
        let alarms: Vec<Value> = d.rollback_alarms.iter().map(|a| json!({ "AlarmName": a })).collect();
        out["AutoRollbackConfiguration"] = json!({ "Alarms": alarms });
    }
    out
}

async fn create(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let request: Value = parse(body)?;
    let name = required(&request, &["InferenceComponentName"])?.to_string();
    let endpoint = required(&request, &["EndpointName"])?.to_string();
    let specification = specification(&request)?.ok_or_else(|| {
        EdgeError::validation(
            "1 validation error detected: Value null at 'specification' failed to satisfy constraint: Member must not be null",
        )
    })?;
    let copies = copy_count(&request, "RuntimeConfig")?.ok_or_else(|| {
        EdgeError::validation(
            "1 validation error detected: Value null at 'runtimeConfig' failed to satisfy constraint: Member must not be null",
        )
    })?;
    let req_tags = tags(serde_json::from_value(request.get("Tags").cloned().unwrap_or(Value::Null)).unwrap_or_default());
    let variant = at(&request, &["VariantName"]).map(str::to_string);
    let created =
        c.create_inference_component(CreateInferenceComponent { name, endpoint, variant, specification, copies, tags: req_tags }).await?;
    Ok(json!({ "InferenceComponentArn": created.arn }))
}

async fn describe(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let request: Value = parse(body)?;
    let component = c.describe_inference_component(required(&request, &["InferenceComponentName"])?).await?;
    let endpoint_arn = c.account().arn(berth_domain::ResourceKind::Endpoint, &component.endpoint_name);
    let instance_type = c
        .describe_endpoint(&component.endpoint_name)
        .await
        .ok()
        .and_then(|e| e.variant(&component.variant_name).map(|v| v.instance_type.clone()));
    Ok(describe_output(&component, &endpoint_arn, instance_type))
}

fn describe_output(ic: &InferenceComponent, endpoint_arn: &str, instance_type: Option<String>) -> Value {
    let r = ic.requirements;
    let mut requirements = json!({ "MinMemoryRequiredInMb": r.min_memory_mb });
    if let Some(n) = r.cpu_cores {
        requirements["NumberOfCpuCoresRequired"] = json!(n);
    }
    if let Some(m) = r.max_memory_mb {
        requirements["MaxMemoryRequiredInMb"] = json!(m);
    }
    let mut spec = json!({ "ComputeResourceRequirements": requirements });
    if let Some(m) = &ic.model_name {
        spec["ModelName"] = json!(m);
    }
    if ic.own_container {
        let mut container = json!({ "DeployedImage": { "SpecifiedImage": ic.container.image, "ResolvedImage": ic.container.image } });
        if let Some(url) = &ic.container.model_data_url {
            container["ArtifactUrl"] = json!(url);
        }
        if !ic.container.environment.is_empty() {
            container["Environment"] = json!(ic.container.environment);
        }
        spec["Container"] = container;
    }
    let mut startup = json!({});
    if let Some(t) = ic.download_timeout_secs {
        startup["ModelDataDownloadTimeoutInSeconds"] = json!(t);
    }
    if let Some(t) = ic.startup_timeout_secs {
        startup["ContainerStartupHealthCheckTimeoutInSeconds"] = json!(t);
    }
    if startup.as_object().is_some_and(|o| !o.is_empty()) {
        spec["StartupParameters"] = startup;
    }
    let mut runtime = json!({ "DesiredCopyCount": ic.desired_copies, "CurrentCopyCount": ic.current_copies });
    if let Some(t) = instance_type.filter(|_| ic.current_copies > 0) {
        runtime["PlacementStatus"] = json!([{ "InstanceType": t, "CurrentCopyCount": ic.current_copies }]);
    }
    let mut out = json!({
        "InferenceComponentName": ic.name,
        "InferenceComponentArn": ic.arn,
        "EndpointName": ic.endpoint_name,
        "EndpointArn": endpoint_arn,
        "VariantName": ic.variant_name,
        "Specification": spec,
        "RuntimeConfig": runtime,
        "CreationTime": secs(ic.created),
        "LastModifiedTime": secs(ic.modified),
        "InferenceComponentStatus": ic.status.as_str(),
    });
    if let Some(reason) = &ic.failure_reason {
        out["FailureReason"] = json!(reason);
    }
    if let Some(d) = &ic.last_deployment {
        out["LastDeploymentConfig"] = deployment_config_wire(d);
    }
    out
}

async fn list(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let request: Value = parse(body)?;
    let endpoint = at(&request, &["EndpointNameEquals"]).map(berth_domain::NameKey::of);
    let variant = at(&request, &["VariantNameEquals"]);
    if let Some(s) = at(&request, &["StatusEquals"]) {
        if berth_domain::ComponentStatus::parse(s).is_none() {
            return Err(crate::aws_json::enum_error("statusEquals", s, &berth_domain::ComponentStatus::names()));
        }
    }
    let query = list_query(parse::<wire::ListInput>(body)?, true)?;
    let all: Vec<InferenceComponent> = c
        .inference_components()
        .await?
        .into_iter()
        .filter(|ic| endpoint.as_ref().is_none_or(|e| berth_domain::NameKey::of(&ic.endpoint_name) == *e))
        .filter(|ic| variant.is_none_or(|v| ic.variant_name == v))
        .collect();
    let page = berth_control::list_inference_components(all, &query)?;
    let summaries: Vec<Value> = page
        .items
        .iter()
        .map(|ic| {
            json!({
                "CreationTime": secs(ic.created),
                "InferenceComponentArn": ic.arn,
                "InferenceComponentName": ic.name,
                "EndpointArn": c.account().arn(berth_domain::ResourceKind::Endpoint, &ic.endpoint_name),
                "EndpointName": ic.endpoint_name,
                "VariantName": ic.variant_name,
                "InferenceComponentStatus": ic.status.as_str(),
                "LastModifiedTime": secs(ic.modified),
            })
        })
        .collect();
    let mut out = json!({ "InferenceComponents": summaries });
    if let Some(t) = page.next_token {
        out["NextToken"] = t.into();
    }
    Ok(out)
}

async fn update(c: &Arc<Controller>, body: &[u8], runtime_only: bool) -> Result<Value, EdgeError> {
    let request: Value = parse(body)?;
    let name = required(&request, &["InferenceComponentName"])?.to_string();
    let (spec, copies, deployment) = if runtime_only {
        let copies = copy_count(&request, "DesiredRuntimeConfig")?.ok_or_else(|| {
            EdgeError::validation(
                "1 validation error detected: Value null at 'desiredRuntimeConfig' failed to satisfy constraint: Member must not be null",
            )
        })?;
        (None, Some(copies), None)
    } else {
        (specification(&request)?, copy_count(&request, "RuntimeConfig")?, deployment_config(&request)?)
    };
    if spec.is_none() && copies.is_none() {
        return Err(EdgeError::validation("Nothing to update: give a Specification or a RuntimeConfig."));
    }
    let updated = c.update_inference_component(&name, spec, copies, deployment).await?;
    Ok(json!({ "InferenceComponentArn": updated.arn }))
}
