//! The model registry: model package groups, and model packages registered in them as numbered
//! versions (`<group>/<n>`, never reused) or by a name of their own, with the containers
//! `CreateModel` deploys from them and an approval status. Records in the state store.

use crate::{ControlError, Controller};
use berth_domain::{validate_name, ContainerSpec, ModelApprovalStatus, ModelPackage, ModelPackageGroup, NameKey, ResourceKind};
use std::collections::BTreeMap;

const GROUPS: &str = "model-package-group";
const PACKAGES: &str = "model-package";

/// Registrations one at a time: a version number is read and taken in one step.
static REGISTERING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What `UpdateModelPackage` changes.
#[derive(Debug, Clone, Default)]
pub struct ModelPackageUpdate {
    pub approval: Option<ModelApprovalStatus>,
    pub approval_description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub metadata_to_remove: Vec<String>,
}

impl Controller {
    pub async fn create_model_package_group(
        &self,
        mut group: ModelPackageGroup,
        tags: Vec<berth_store::Tag>,
    ) -> Result<ModelPackageGroup, ControlError> {
        validate_name("modelPackageGroupName", &group.name)?;
        crate::tags::validate_tags(&tags)?;
        let _one = REGISTERING.lock().await;
        if self.describe_model_package_group(&group.name).await.is_ok() {
            return Err(ControlError::Validation(format!(
                "Model Package Group already exists: {}",
                self.account().arn(ResourceKind::ModelPackageGroup, &group.name)
            )));
        }
        group.arn = self.account().arn(ResourceKind::ModelPackageGroup, &group.name);
        group.created = self.now();
        self.put_record(GROUPS, NameKey::of(&group.name).as_str(), group.created, &group).await?;
        self.add_resource_tags(&group.arn, tags).await?;
        Ok(group)
    }

    /// A group by its name or ARN.
    pub async fn describe_model_package_group(&self, name_or_arn: &str) -> Result<ModelPackageGroup, ControlError> {
        let name = match self.account().parse_arn(name_or_arn) {
            Some((ResourceKind::ModelPackageGroup, name)) => name,
            _ => name_or_arn.to_string(),
        };
        let key = NameKey::of(&name);
        self.model_package_groups().await?.into_iter().find(|g| NameKey::of(&g.name) == key).ok_or_else(|| {
            ControlError::Validation(format!(
                "Model Package Group {} does not exist.",
                self.account().arn(ResourceKind::ModelPackageGroup, &name)
            ))
        })
    }

    pub async fn model_package_groups(&self) -> Result<Vec<ModelPackageGroup>, ControlError> {
        self.read_records(GROUPS).await
    }

    /// Deletes an empty group; one that holds versions is refused.
    pub async fn delete_model_package_group(&self, name_or_arn: &str) -> Result<(), ControlError> {
        let group = self.describe_model_package_group(name_or_arn).await?;
        let key = NameKey::of(&group.name);
        if self.model_packages().await?.iter().any(|p| p.group.as_deref().map(NameKey::of) == Some(key.clone())) {
            return Err(ControlError::Validation(format!("Model Package Group {} holds model packages: delete them first.", group.arn)));
        }
        let key = key.to_string();
        self.db(move |s| s.delete_record(GROUPS, &key).map(|_| ())).await
    }

    /// Registers a package: the group's next version when it names a group, else under its name.
    pub async fn create_model_package(&self, mut package: ModelPackage, tags: Vec<berth_store::Tag>) -> Result<ModelPackage, ControlError> {
        crate::tags::validate_tags(&tags)?;
        if package.containers.is_empty() {
            return Err(ControlError::Validation("InferenceSpecification.Containers must hold at least one container.".into()));
        }
        let _one = REGISTERING.lock().await;
        match &package.group {
            Some(group) => {
                let mut group = self.describe_model_package_group(group).await?;
                group.last_version += 1;
                (package.name, package.version) = (group.name.clone(), Some(group.last_version));
                package.group = Some(group.name.clone());
                self.put_record(GROUPS, NameKey::of(&group.name).as_str(), group.created, &group).await?;
            }
            None => {
                validate_name("modelPackageName", &package.name)?;
                if self.describe_model_package(&package.name).await.is_ok() {
                    return Err(ControlError::Validation(format!("Model Package {} already exists.", package.name)));
                }
            }
        }
        let resource = ModelPackage::arn_resource(&package.name, package.version);
        package.arn = self.account().arn(ResourceKind::ModelPackage, &resource);
        let now = self.now();
        (package.created, package.modified) = (now, now);
        self.put_record(PACKAGES, &resource, package.created, &package).await?;
        self.add_resource_tags(&package.arn, tags).await?;
        tracing::info!(model_package = %package.arn, approval = package.approval.as_str(), "model package registered");
        Ok(package)
    }

    /// A package by its ARN, `<group>/<version>`, or (unversioned) its name.
    pub async fn describe_model_package(&self, name: &str) -> Result<ModelPackage, ControlError> {
        let resource = match self.account().parse_arn(name) {
            Some((ResourceKind::ModelPackage, resource)) => resource,
            _ => name.to_ascii_lowercase(),
        };
        self.model_packages().await?.into_iter().find(|p| ModelPackage::arn_resource(&p.name, p.version) == resource).ok_or_else(|| {
            ControlError::Validation(format!("ModelPackage {} does not exist.", self.account().arn(ResourceKind::ModelPackage, &resource)))
        })
    }

    pub async fn model_packages(&self) -> Result<Vec<ModelPackage>, ControlError> {
        self.read_records(PACKAGES).await
    }

    /// `UpdateModelPackage`: approval (recorded as an event of the registry when it changes)
    /// and customer metadata.
    pub async fn update_model_package(&self, name: &str, update: ModelPackageUpdate) -> Result<ModelPackage, ControlError> {
        let _one = REGISTERING.lock().await;
        let mut package = self.describe_model_package(name).await?;
        let before = package.approval;
        if let Some(approval) = update.approval {
            package.approval = approval;
        }
        if update.approval_description.is_some() {
            package.approval_description = update.approval_description;
        }
        for key in &update.metadata_to_remove {
            package.customer_metadata.remove(key);
        }
        package.customer_metadata.extend(update.metadata);
        package.modified = self.now();
        let resource = ModelPackage::arn_resource(&package.name, package.version);
        self.put_record(PACKAGES, &resource, package.created, &package).await?;
        if package.approval != before {
            tracing::info!(model_package = %package.arn, from = before.as_str(), to = package.approval.as_str(), "model package approval changed");
            let said = match &package.approval_description {
                Some(why) => format!("Model package {}: {} → {} ({why})", package.arn, before.as_str(), package.approval.as_str()),
                None => format!("Model package {}: {} → {}", package.arn, before.as_str(), package.approval.as_str()),
            };
            self.record_event(&package.name, None, berth_domain::EventKind::ModelPackageApprovalChanged, said);
            if let Some(notify) = &self.settings.registry_notifier {
                (notify.0)(state_change(self, &package));
            }
        }
        Ok(package)
    }

    pub async fn delete_model_package(&self, name: &str) -> Result<(), ControlError> {
        let package = self.describe_model_package(name).await?;
        let resource = ModelPackage::arn_resource(&package.name, package.version);
        self.db(move |s| s.delete_record(PACKAGES, &resource).map(|_| ())).await
    }

    /// The containers `CreateModel` deploys for `ModelPackageName`; with
    /// `--require-approved-packages`, only an approved version's.
    pub async fn model_package_containers(&self, name: &str) -> Result<Vec<ContainerSpec>, ControlError> {
        let package = self.describe_model_package(name).await?;
        if self.settings.require_approved_packages && package.approval != ModelApprovalStatus::Approved {
            return Err(ControlError::Validation(format!(
                "Model package {} is {}: this server deploys approved model packages only (--require-approved-packages).",
                package.arn,
                package.approval.as_str()
            )));
        }
        Ok(package.containers)
    }

    async fn add_resource_tags(&self, arn: &str, tags: Vec<berth_store::Tag>) -> Result<(), ControlError> {
        if tags.is_empty() {
            return Ok(());
        }
        let arn = arn.to_string();
        self.db(move |s| s.add_tags(&arn, &tags)).await
    }
}

/// SageMaker's "SageMaker Model Package State Change" event (as EventBridge delivers it) for a
/// package as it now is.
fn state_change(c: &Controller, p: &ModelPackage) -> serde_json::Value {
    let mut detail = serde_json::json!({
        "ModelPackageName": p.name,
        "ModelPackageArn": p.arn,
        "ModelApprovalStatus": p.approval.as_str(),
        "ModelPackageStatus": "Completed",
        "CreationTime": p.created.millis(),
        "LastModifiedTime": p.modified.millis(),
    });
    if let (Some(group), Some(version)) = (&p.group, p.version) {
        detail["ModelPackageGroupName"] = group.clone().into();
        detail["ModelPackageVersion"] = version.into();
    }
    if let Some(d) = &p.approval_description {
        detail["ApprovalDescription"] = d.clone().into();
    }
    serde_json::json!({
        "version": "0",
        "id": berth_domain::random_uuid(),
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": c.account().account_id,
        "region": c.account().region,
        "time": crate::capture::inference_time(p.modified.millis()),
        "resources": [p.arn],
        "detail": detail,
    })
}
