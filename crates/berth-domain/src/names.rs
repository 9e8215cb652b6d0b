use crate::DomainError;
use serde::{Deserialize, Serialize};

/// The kinds of resource berth manages, as they appear in ARNs and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResourceKind {
    Model,
    EndpointConfig,
    Endpoint,
    InferenceExperiment,
    TransformJob,
    ProcessingJob,
    MonitoringSchedule,
    MonitoringJobDefinition,
    ModelQualityJobDefinition,
    InferenceRecommendationsJob,
    ModelPackageGroup,
    ModelPackage,
    InferenceComponent,
}

impl ResourceKind {
    /// The resource type segment of the ARN (`...:model/name`).
    pub fn arn_segment(self) -> &'static str {
        match self {
            ResourceKind::Model => "model",
            ResourceKind::EndpointConfig => "endpoint-config",
            ResourceKind::Endpoint => "endpoint",
            ResourceKind::InferenceExperiment => "inference-experiment",
            ResourceKind::TransformJob => "transform-job",
            ResourceKind::ProcessingJob => "processing-job",
            ResourceKind::MonitoringSchedule => "monitoring-schedule",
            ResourceKind::MonitoringJobDefinition => "data-quality-job-definition",
            ResourceKind::ModelQualityJobDefinition => "model-quality-job-definition",
            ResourceKind::InferenceRecommendationsJob => "inference-recommendations-job",
            ResourceKind::ModelPackageGroup => "model-package-group",
            ResourceKind::ModelPackage => "model-package",
            ResourceKind::InferenceComponent => "inference-component",
        }
    }

    /// How SageMaker names the kind in its messages ("Could not find endpoint configuration ...").
    pub fn noun(self) -> &'static str {
        match self {
            ResourceKind::Model => "model",
            ResourceKind::EndpointConfig => "endpoint configuration",
            ResourceKind::Endpoint => "endpoint",
            ResourceKind::InferenceExperiment => "inference experiment",
            ResourceKind::TransformJob => "transform job",
            ResourceKind::ProcessingJob => "processing job",
            ResourceKind::MonitoringSchedule => "monitoring schedule",
            ResourceKind::MonitoringJobDefinition => "data quality job definition",
            ResourceKind::ModelQualityJobDefinition => "model quality job definition",
            ResourceKind::InferenceRecommendationsJob => "inference recommendations job",
            ResourceKind::ModelPackageGroup => "model package group",
            ResourceKind::ModelPackage => "model package",
            ResourceKind::InferenceComponent => "inference component",
        }
    }

    fn from_arn_segment(segment: &str) -> Option<Self> {
        match segment {
            "model" => Some(ResourceKind::Model),
            "endpoint-config" => Some(ResourceKind::EndpointConfig),
            "endpoint" => Some(ResourceKind::Endpoint),
            "inference-experiment" => Some(ResourceKind::InferenceExperiment),
            "transform-job" => Some(ResourceKind::TransformJob),
            "processing-job" => Some(ResourceKind::ProcessingJob),
            "monitoring-schedule" => Some(ResourceKind::MonitoringSchedule),
            "data-quality-job-definition" => Some(ResourceKind::MonitoringJobDefinition),
            "model-quality-job-definition" => Some(ResourceKind::ModelQualityJobDefinition),
            "inference-recommendations-job" => Some(ResourceKind::InferenceRecommendationsJob),
            "model-package-group" => Some(ResourceKind::ModelPackageGroup),
            "model-package" => Some(ResourceKind::ModelPackage),
            "inference-component" => Some(ResourceKind::InferenceComponent),
            _ => None,
        }
    }
}

/// A resource name as a key. SageMaker's names are case-insensitive (`MyEndpoint` and
/// `myendpoint` are one endpoint), so maps, stored keys and ARNs use the lower-cased form, and
/// this is the one place it is made. It borrows as `str`, so a map keyed by it is looked up
/// with a name that is already lower-case without building a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameKey(String);

impl NameKey {
    pub fn of(name: &str) -> Self {
        NameKey(name.to_ascii_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for NameKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The region and account that berth reports in ARNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub region: String,
    pub account_id: String,
}

impl Account {
    /// The ARN of a resource. SageMaker lower-cases the name inside ARNs.
    pub fn arn(&self, kind: ResourceKind, name: &str) -> String {
        format!("arn:aws:sagemaker:{}:{}:{}/{}", self.region, self.account_id, kind.arn_segment(), NameKey::of(name))
    }

    /// Splits an ARN of this account into its kind and (lower-cased) name.
    pub fn parse_arn(&self, arn: &str) -> Option<(ResourceKind, String)> {
        let rest = arn.strip_prefix("arn:aws:sagemaker:")?;
        let mut parts = rest.splitn(3, ':');
        let (_region, _account, resource) = (parts.next()?, parts.next()?, parts.next()?);
        let (segment, name) = resource.split_once('/')?;
        Some((ResourceKind::from_arn_segment(segment)?, name.to_string()))
    }
}

/// Validates a model, endpoint config, endpoint or variant name against SageMaker's pattern
/// `^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$`. `member` is the request member, for the message.
pub fn validate_name(member: &str, value: &str) -> Result<(), DomainError> {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric();
    if ok {
        return Ok(());
    }
    let constraint = if bytes.len() > 63 {
        "Member must have length less than or equal to 63".to_string()
    } else {
        "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}".to_string()
    };
    Err(DomainError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    )))
}

/// A random UUID (version 4 layout), as AWS request ids and SageMaker capture event ids look.
pub fn random_uuid() -> String {
    // Written digit by digit (it is made for every request): 8-4-4-4-12 hex digits, version 4,
    // variant 10xx.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bits = fastrand::u128(..);
    let mut out = [b'-'; 36];
    for (i, byte) in out.iter_mut().enumerate() {
        if !matches!(i, 8 | 13 | 18 | 23) {
            *byte = HEX[(bits & 15) as usize];
            bits >>= 4;
        }
    }
    out[14] = b'4';
    out[19] = HEX[8 + (out[19] as usize & 3)];
    String::from_utf8(out.to_vec()).expect("hex digits and dashes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_key_whatever_their_case() {
        assert_eq!(NameKey::of("MyEndpoint"), NameKey::of("myendpoint"));
        let map: std::collections::HashMap<NameKey, u8> = [(NameKey::of("MyEndpoint"), 1)].into();
        assert_eq!(map.get("myendpoint"), Some(&1), "a lower-case name looks up without a key");
        assert_eq!(map.get(&NameKey::of("MYENDPOINT")), Some(&1));
        let account = Account { region: "us-east-1".into(), account_id: "123456789012".into() };
        assert!(account.arn(ResourceKind::Endpoint, "MyEndpoint").ends_with(":endpoint/myendpoint"));
    }

    #[test]
    fn uuids_are_version_4() {
        let a = random_uuid();
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{a}");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(parts[2].starts_with('4') && "89ab".contains(&parts[3][..1]), "{a}");
        assert_ne!(a, random_uuid());
    }

    fn account() -> Account {
        Account { region: "us-east-1".into(), account_id: "123456789012".into() }
    }

    #[test]
    fn arns_lower_case_the_name() {
        assert_eq!(
            account().arn(ResourceKind::EndpointConfig, "My-Config"),
            "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/my-config"
        );
    }

    #[test]
    fn arns_parse_back() {
        let a = account();
        let arn = a.arn(ResourceKind::Endpoint, "Ep1");
        assert_eq!(a.parse_arn(&arn), Some((ResourceKind::Endpoint, "ep1".into())));
        assert_eq!(a.parse_arn("arn:aws:sagemaker:us-east-1:1:training-job/x"), None);
        assert_eq!(a.parse_arn("not-an-arn"), None);
    }

    #[test]
    fn names_follow_sagemaker_pattern() {
        for ok in ["a", "Variant1", "my-model-2", "a--b", &"x".repeat(63)] {
            assert!(validate_name("modelName", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a_b", "a.b", "a b", &"x".repeat(64)] {
            assert!(validate_name("modelName", bad).is_err(), "{bad}");
        }
    }
}
