//! The model registry: model package groups, and the model packages registered in them as
//! numbered versions (or, outside a group, by a name of their own), each with the containers it
//! deploys and an approval status.

use crate::{ContainerSpec, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

wire_enum!(
    /// `ModelApprovalStatus`.
    ModelApprovalStatus { Approved, Rejected, PendingManualApproval }
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPackageGroup {
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    pub created: Timestamp,
    /// The last version registered in it (versions are never reused, deleted or not).
    #[serde(default)]
    pub last_version: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPackage {
    /// The group's name for a version, the package's own name otherwise.
    pub name: String,
    pub group: Option<String>,
    pub version: Option<u32>,
    pub arn: String,
    pub description: Option<String>,
    pub created: Timestamp,
    pub modified: Timestamp,
    pub approval: ModelApprovalStatus,
    pub approval_description: Option<String>,
    /// What `CreateModel` with this package deploys.
    pub containers: Vec<ContainerSpec>,
    pub customer_metadata: BTreeMap<String, String>,
    /// The request's members berth keeps as sent (`InferenceSpecification`, `ModelMetrics`,
    /// `DriftCheckBaselines`, `MetadataProperties`, `Domain`, `Task`, `SamplePayloadUrl`, …),
    /// which Describe echoes.
    pub echoed: serde_json::Value,
}

impl ModelPackage {
    /// The resource part of a package's ARN: `<group>/<version>` for a version (as the SDK
    /// parses it), the package's name otherwise; lower-cased as SageMaker's ARNs are.
    pub fn arn_resource(name: &str, version: Option<u32>) -> String {
        match version {
            Some(v) => format!("{}/{v}", name.to_ascii_lowercase()),
            None => name.to_ascii_lowercase(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_named_group_slash_number() {
        assert_eq!(ModelPackage::arn_resource("Churn", Some(3)), "churn/3");
        assert_eq!(ModelPackage::arn_resource("one-off", None), "one-off");
        assert_eq!(ModelApprovalStatus::parse("PendingManualApproval"), Some(ModelApprovalStatus::PendingManualApproval));
    }
}
