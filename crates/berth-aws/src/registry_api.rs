//! The model registry on the wire: `Create/Describe/List/DeleteModelPackageGroup` and
//! `Create/Describe/List/Update/DeleteModelPackage`, and the `ModelPackageName` of `CreateModel`'s
//! containers resolved to the package's containers. Requests are read as JSON; what berth does
//! not do (AWS Marketplace's algorithms and validation, managed configurations, model cards and
//! life cycles, changing a package's inference specification) is refused by name. Describe
//! echoes the members berth keeps as sent.

use crate::aws_json::{at, enum_error, list_query, parse, reply, required, secs, tags, unsupported};
use crate::error::EdgeError;
use crate::wire::{self, Empty};
use berth_control::{Controller, ModelPackageUpdate};
use berth_domain::{ContainerSpec, ModelApprovalStatus, ModelPackage, ModelPackageGroup, Timestamp};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `CreateModelPackage` members Describe echoes as sent.
const ECHOED: [&str; 8] = [
    "InferenceSpecification",
    "ModelMetrics",
    "DriftCheckBaselines",
    "MetadataProperties",
    "Domain",
    "Task",
    "SamplePayloadUrl",
    "AdditionalInferenceSpecifications",
];

pub(crate) async fn operation(c: &Arc<Controller>, op: &str, body: &[u8]) -> Option<Result<Value, EdgeError>> {
    let result = match op {
        "CreateModelPackageGroup" => create_group(c, body).await,
        "DescribeModelPackageGroup" => describe_group(c, body).await,
        "ListModelPackageGroups" => list_groups(c, body).await,
        "DeleteModelPackageGroup" => match member(body, "ModelPackageGroupName") {
            Ok(name) => c.delete_model_package_group(&name).await.map_err(EdgeError::from).and_then(|()| reply(Empty {})),
            Err(e) => Err(e),
        },
        "CreateModelPackage" => create_package(c, body).await,
        "DescribeModelPackage" => describe_package(c, body).await,
        "ListModelPackages" => list_packages(c, body).await,
        "UpdateModelPackage" => update_package(c, body).await,
        "DeleteModelPackage" => match member(body, "ModelPackageName") {
            Ok(name) => c.delete_model_package(&name).await.map_err(EdgeError::from).and_then(|()| reply(Empty {})),
            Err(e) => Err(e),
        },
        _ => return None,
    };
    Some(result)
}

fn member(body: &[u8], name: &str) -> Result<String, EdgeError> {
    let request: Value = parse(body)?;
    Ok(required(&request, &[name])?.to_string())
}

fn request_tags(request: &Value) -> Vec<berth_store::Tag> {
    tags(serde_json::from_value(request.get("Tags").cloned().unwrap_or(Value::Null)).unwrap_or_default())
}

async fn create_group(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let request: Value = parse(body)?;
    unsupported(request.get("ManagedConfiguration").is_some(), "ManagedConfiguration")?;
    let group = ModelPackageGroup {
        name: required(&request, &["ModelPackageGroupName"])?.to_string(),
        arn: String::new(),
        description: at(&request, &["ModelPackageGroupDescription"]).map(str::to_string),
        created: Timestamp::from_millis(0),
        last_version: 0,
    };
    let created = c.create_model_package_group(group, request_tags(&request)).await?;
    Ok(json!({ "ModelPackageGroupArn": created.arn }))
}

fn group_summary(g: &ModelPackageGroup) -> Value {
    let mut out = json!({
        "ModelPackageGroupName": g.name, "ModelPackageGroupArn": g.arn, "CreationTime": secs(g.created),
        "ModelPackageGroupStatus": "Completed",
    });
    if let Some(d) = &g.description {
        out["ModelPackageGroupDescription"] = d.clone().into();
    }
    out
}

async fn describe_group(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let group = c.describe_model_package_group(&member(body, "ModelPackageGroupName")?).await?;
    let mut out = group_summary(&group);
    out["CreatedBy"] = json!({});
    Ok(out)
}

async fn list_groups(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let request: Value = parse(body)?;
    if let Some(f) = at(&request, &["CrossAccountFilterOption"]) {
        if f != "SameAccount" {
            return Err(EdgeError::validation("CrossAccountFilterOption CrossAccount: berth has one account."));
        }
    }
    let query = list_query(parse::<wire::ListInput>(body)?, false)?;
    let page = berth_control::list_registry(c.model_package_groups().await?, &query)?;
    let mut out = json!({ "ModelPackageGroupSummaryList": page.items.iter().map(group_summary).collect::<Vec<_>>() });
    if let Some(t) = page.next_token {
        out["NextToken"] = t.into();
    }
    Ok(out)
}

/// A container of `InferenceSpecification.Containers`.
fn package_container(c: &Value) -> Result<ContainerSpec, EdgeError> {
    for refused in ["ModelDataSource", "AdditionalModelDataSources", "AdditionalS3DataSource", "BaseModel"] {
        unsupported(c.get(refused).is_some(), &format!("InferenceSpecification.Containers.{refused}"))?;
    }
    let image = required(c, &["Image"])?;
    let mut spec = ContainerSpec::new(image, at(c, &["ModelDataUrl"]).map(str::to_string));
    spec.hostname = at(c, &["ContainerHostname"]).map(str::to_string);
    if let Some(env) = c.get("Environment") {
        spec.environment =
            serde_json::from_value(env.clone()).map_err(|_| EdgeError::validation("Environment must map names to strings."))?;
    }
    Ok(spec)
}

fn approval(value: Option<&str>) -> Result<Option<ModelApprovalStatus>, EdgeError> {
    value
        .map(|v| ModelApprovalStatus::parse(v).ok_or_else(|| enum_error("modelApprovalStatus", v, &ModelApprovalStatus::names())))
        .transpose()
}

fn metadata(v: Option<&Value>) -> Result<BTreeMap<String, String>, EdgeError> {
    match v {
        None => Ok(BTreeMap::new()),
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|_| EdgeError::validation("CustomerMetadataProperties must map names to strings."))
        }
    }
}

async fn create_package(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let request: Value = parse(body)?;
    for refused in
        ["SourceAlgorithmSpecification", "ValidationSpecification", "ModelCard", "ModelLifeCycle", "SecurityConfig", "ManagedStorageType"]
    {
        unsupported(request.get(refused).is_some(), refused)?;
    }
    if request.get("CertifyForMarketplace").and_then(Value::as_bool) == Some(true) {
        return Err(EdgeError::validation("CertifyForMarketplace: berth has no AWS Marketplace."));
    }
    let group = at(&request, &["ModelPackageGroupName"]).map(str::to_string);
    let name = at(&request, &["ModelPackageName"]).map(str::to_string);
    if group.is_some() == name.is_some() {
        return Err(EdgeError::validation(
            "Give ModelPackageGroupName (a version in a group) or ModelPackageName (an unversioned package), one of them.",
        ));
    }
    let containers = request.pointer("/InferenceSpecification/Containers").and_then(Value::as_array).ok_or_else(|| {
        EdgeError::validation("InferenceSpecification.Containers is required: berth deploys packages by their containers.")
    })?;
    let containers = containers.iter().map(package_container).collect::<Result<Vec<_>, _>>()?;
    let echoed: Map<String, Value> = ECHOED.iter().filter_map(|k| Some((k.to_string(), request.get(*k)?.clone()))).collect();
    let package = ModelPackage {
        name: name.unwrap_or_default(),
        group,
        version: None,
        arn: String::new(),
        description: at(&request, &["ModelPackageDescription"]).map(str::to_string),
        created: Timestamp::from_millis(0),
        modified: Timestamp::from_millis(0),
        approval: approval(at(&request, &["ModelApprovalStatus"]))?.unwrap_or(ModelApprovalStatus::PendingManualApproval),
        approval_description: None,
        containers,
        customer_metadata: metadata(request.get("CustomerMetadataProperties"))?,
        echoed: Value::Object(echoed),
    };
    let created = c.create_model_package(package, request_tags(&request)).await?;
    Ok(json!({ "ModelPackageArn": created.arn }))
}

fn package_summary(p: &ModelPackage) -> Value {
    let mut out = json!({
        "ModelPackageName": p.name, "ModelPackageArn": p.arn, "CreationTime": secs(p.created),
        "ModelPackageStatus": "Completed", "ModelApprovalStatus": p.approval.as_str(),
    });
    if let (Some(g), Some(v)) = (&p.group, p.version) {
        out["ModelPackageGroupName"] = g.clone().into();
        out["ModelPackageVersion"] = v.into();
    }
    if let Some(d) = &p.description {
        out["ModelPackageDescription"] = d.clone().into();
    }
    out
}

async fn describe_package(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let package = c.describe_model_package(&member(body, "ModelPackageName")?).await?;
    let mut out = package.echoed.as_object().cloned().unwrap_or_default();
    for (k, v) in package_summary(&package).as_object().cloned().unwrap_or_default() {
        out.insert(k, v);
    }
    out.insert("ModelPackageStatusDetails".into(), json!({"ValidationStatuses": [], "ImageScanStatuses": []}));
    out.insert("CreatedBy".into(), json!({}));
    out.insert("LastModifiedTime".into(), secs(package.modified).into());
    if let Some(d) = &package.approval_description {
        out.insert("ApprovalDescription".into(), d.clone().into());
    }
    if !package.customer_metadata.is_empty() {
        out.insert("CustomerMetadataProperties".into(), json!(package.customer_metadata));
    }
    Ok(Value::Object(out))
}

async fn list_packages(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let request: Value = parse(body)?;
    let wanted_approval = approval(at(&request, &["ModelApprovalStatus"]))?;
    let group = match at(&request, &["ModelPackageGroupName"]) {
        Some(g) => Some(c.describe_model_package_group(g).await?.name),
        None => None,
    };
    let kind = at(&request, &["ModelPackageType"]).unwrap_or("Both");
    if !["Versioned", "Unversioned", "Both"].contains(&kind) {
        return Err(enum_error("modelPackageType", kind, &["Versioned", "Unversioned", "Both"]));
    }
    let query = list_query(parse::<wire::ListInput>(body)?, false)?;
    let packages: Vec<ModelPackage> = c
        .model_packages()
        .await?
        .into_iter()
        .filter(|p| wanted_approval.is_none_or(|a| p.approval == a))
        .filter(|p| group.as_ref().is_none_or(|g| p.group.as_deref().is_some_and(|pg| pg.eq_ignore_ascii_case(g))))
        .filter(|p| match kind {
            "Versioned" => p.version.is_some(),
            "Unversioned" => p.version.is_none(),
            _ => true,
        })
        .collect();
    let page = berth_control::list_registry(packages, &query)?;
    let mut out = json!({ "ModelPackageSummaryList": page.items.iter().map(package_summary).collect::<Vec<_>>() });
    if let Some(t) = page.next_token {
        out["NextToken"] = t.into();
    }
    Ok(out)
}

async fn update_package(c: &Arc<Controller>, body: &[u8]) -> Result<Value, EdgeError> {
    let request: Value = parse(body)?;
    for refused in [
        "InferenceSpecification",
        "AdditionalInferenceSpecificationsToAdd",
        "ModelCard",
        "ModelLifeCycle",
        "SourceUri",
        "ModelPackageRegistrationType",
    ] {
        unsupported(request.get(refused).is_some(), refused)?;
    }
    let update = ModelPackageUpdate {
        approval: approval(at(&request, &["ModelApprovalStatus"]))?,
        approval_description: at(&request, &["ApprovalDescription"]).map(str::to_string),
        metadata: metadata(request.get("CustomerMetadataProperties"))?,
        metadata_to_remove: serde_json::from_value(request.get("CustomerMetadataPropertiesToRemove").cloned().unwrap_or(json!([])))
            .map_err(|_| EdgeError::validation("CustomerMetadataPropertiesToRemove must be a list of names."))?,
    };
    let updated = c.update_model_package(required(&request, &["ModelPackageArn"])?, update).await?;
    Ok(json!({ "ModelPackageArn": updated.arn }))
}

/// `CreateModel`'s containers that name a model package become the package's containers (the
/// definition's own `Environment` over the package's).
pub(crate) async fn resolve_packages(c: &Arc<Controller>, input: &mut wire::CreateModelInput) -> Result<(), EdgeError> {
    let expand = |def: &wire::ContainerDefinition, specs: Vec<ContainerSpec>| -> Vec<wire::ContainerDefinition> {
        specs
            .into_iter()
            .map(|s| {
                let mut environment = s.environment;
                environment.extend(def.environment.clone().unwrap_or_default());
                wire::ContainerDefinition {
                    container_hostname: def.container_hostname.clone().or(s.hostname),
                    image: Some(s.image),
                    model_data_url: s.model_data_url,
                    environment: Some(environment),
                    model_package_name: None,
                    ..def.clone()
                }
            })
            .collect()
    };
    if let Some(primary) = input.primary_container.take() {
        match &primary.model_package_name {
            None => input.primary_container = Some(primary),
            Some(name) => {
                let mut defs = expand(&primary, c.model_package_containers(name).await?);
                if defs.len() == 1 {
                    input.primary_container = defs.pop();
                } else {
                    input.containers = Some(defs);
                }
            }
        }
    }
    if let Some(list) = input.containers.take() {
        let mut out = Vec::new();
        for def in list {
            match &def.model_package_name {
                None => out.push(def),
                Some(name) => out.extend(expand(&def, c.model_package_containers(name).await?)),
            }
        }
        input.containers = Some(out);
    }
    Ok(())
}
