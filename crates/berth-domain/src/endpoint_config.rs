use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// An endpoint configuration: the variants an endpoint runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointConfig {
    pub name: String,
    pub arn: String,
    pub created: Timestamp,
    pub variants: Vec<VariantSpec>,
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub data_capture: Option<DataCapture>,
    /// Asynchronous inference (`AsyncInferenceConfig`): requests queued durably, answers
    /// written where the config says.
    #[serde(default)]
    pub async_inference: Option<AsyncInference>,
    /// `ExecutionRoleArn`: kept and shown (a config whose variants name no model, for
    /// inference components, needs one).
    #[serde(default)]
    pub execution_role_arn: Option<String>,
}

/// SageMaker's `AsyncInferenceConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncInference {
    /// `ClientConfig.MaxConcurrentInvocationsPerInstance` (SageMaker picks when unset; berth: 1).
    pub max_concurrent_per_instance: Option<u32>,
    /// `OutputConfig.S3OutputPath`: `s3://bucket/prefix` or `file:///absolute/dir`.
    pub output_path: String,
    /// `OutputConfig.S3FailurePath`; failures go beside the answers when unset.
    pub failure_path: Option<String>,
    pub kms_key_id: Option<String>,
    /// `NotificationConfig`: SNS topics told of each success and failure.
    pub success_topic: Option<String>,
    pub error_topic: Option<String>,
    /// Topics (`SUCCESS_NOTIFICATION_TOPIC`, `ERROR_NOTIFICATION_TOPIC`) whose messages carry
    /// the answer itself when it is at most 128 KB.
    pub include_response_in: Vec<String>,
}

impl AsyncInference {
    /// Concurrent requests per instance when the config leaves it to SageMaker.
    pub const DEFAULT_CONCURRENCY: u32 = 1;

    pub fn concurrency_per_instance(&self) -> u32 {
        self.max_concurrent_per_instance.unwrap_or(Self::DEFAULT_CONCURRENCY)
    }

    pub fn validate(&self) -> Result<(), crate::DomainError> {
        let invalid = |m: String| Err(crate::DomainError::Validation(m));
        if let Some(n) = self.max_concurrent_per_instance {
            if !(1..=1000).contains(&n) {
                return invalid(format!(
                    "1 validation error detected: Value '{n}' at 'asyncInferenceConfig.clientConfig.maxConcurrentInvocationsPerInstance' failed to satisfy constraint: Member must have value between 1 and 1000"
                ));
            }
        }
        for (member, path) in [("S3OutputPath", Some(&self.output_path)), ("S3FailurePath", self.failure_path.as_ref())] {
            let Some(path) = path else { continue };
            let ok = path.strip_prefix("s3://").is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
                || path.strip_prefix("file://").is_some_and(|p| p.starts_with('/'));
            if !ok {
                return invalid(format!(
                    "AsyncInferenceConfig.OutputConfig.{member} '{path}' must be s3://bucket/prefix or file:///absolute/directory."
                ));
            }
        }
        for topic in [&self.success_topic, &self.error_topic].into_iter().flatten() {
            let parts: Vec<&str> = topic.split(':').collect();
            if parts.len() != 6 || parts[0] != "arn" || !parts[1].starts_with("aws") || parts[2] != "sns" || parts[4].len() != 12 {
                return invalid(format!("AsyncInferenceConfig.OutputConfig.NotificationConfig topic '{topic}' is not an SNS topic ARN."));
            }
        }
        for kind in &self.include_response_in {
            if kind != "SUCCESS_NOTIFICATION_TOPIC" && kind != "ERROR_NOTIFICATION_TOPIC" {
                return invalid(format!(
                    "1 validation error detected: Value '{kind}' at 'asyncInferenceConfig.outputConfig.notificationConfig.includeInferenceResponseIn' failed to satisfy constraint: Member must satisfy enum value set: [SUCCESS_NOTIFICATION_TOPIC, ERROR_NOTIFICATION_TOPIC]"
                ));
            }
        }
        Ok(())
    }
}

/// SageMaker's `DataCaptureConfig`: a sample of requests and answers written as JSON Lines under
/// `<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCapture {
    pub enabled: bool,
    pub sampling_percentage: u32,
    /// `s3://bucket/prefix` or `file:///absolute/dir`.
    pub destination: String,
    pub kms_key_id: Option<String>,
    pub input: bool,
    pub output: bool,
    /// Content types written as text with encoding CSV or JSON (others are base64).
    pub csv_types: Vec<String>,
    pub json_types: Vec<String>,
}

impl DataCapture {
    pub fn validate(&self) -> Result<(), crate::DomainError> {
        let invalid = |m: String| Err(crate::DomainError::Validation(m));
        if self.sampling_percentage > 100 {
            return invalid(format!("InitialSamplingPercentage ({}) must be between 0 and 100.", self.sampling_percentage));
        }
        let ok = self.destination.strip_prefix("s3://").is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
            || self.destination.strip_prefix("file://").is_some_and(|p| p.starts_with('/'));
        if !ok {
            return invalid(format!("DestinationS3Uri '{}' must be s3://bucket/prefix or file:///absolute/directory.", self.destination));
        }
        if !self.input && !self.output {
            return invalid("CaptureOptions must capture Input, Output or both.".into());
        }
        Ok(())
    }
}

impl EndpointConfig {
    /// A config of `variants`, not yet created (no ARN or time), with no capture, asynchronous
    /// inference or key.
    pub fn new(name: &str, variants: Vec<VariantSpec>) -> EndpointConfig {
        EndpointConfig {
            name: name.into(),
            arn: String::new(),
            created: Timestamp::from_millis(0),
            variants,
            kms_key_id: None,
            data_capture: None,
            async_inference: None,
            execution_role_arn: None,
        }
    }

    pub fn variant(&self, name: &str) -> Option<&VariantSpec> {
        self.variants.iter().find(|v| v.name == name)
    }
}

/// One production variant of an endpoint configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantSpec {
    pub name: String,
    pub model_name: String,
    pub instance_type: String,
    pub initial_instance_count: u32,
    pub initial_weight: f64,
    pub container_startup_timeout_secs: Option<u32>,
    pub model_data_download_timeout_secs: Option<u32>,
    pub routing: Option<RoutingStrategy>,
    /// A shadow variant (`ShadowProductionVariants`): it gets copies of production requests,
    /// a share of them set by its weight over the production variants' total, and never
    /// answers callers.
    #[serde(default)]
    pub shadow: bool,
    /// A serverless variant (`ServerlessConfig`): no instance type or count; instances start
    /// on demand and stop when idle.
    #[serde(default)]
    pub serverless: Option<ServerlessConfig>,
    /// `ManagedInstanceScaling` (a variant hosting inference components).
    #[serde(default)]
    pub managed_scaling: Option<crate::ManagedInstanceScaling>,
}

impl VariantSpec {
    /// A variant that names no model hosts inference components.
    pub fn hosts_components(&self) -> bool {
        self.model_name.is_empty()
    }

    /// A production variant of `count` instances of `model` with weight 1 and SageMaker's
    /// defaults for everything else.
    pub fn new(name: &str, model: &str, instance_type: &str, count: u32) -> Self {
        VariantSpec {
            name: name.into(),
            model_name: model.into(),
            instance_type: instance_type.into(),
            initial_instance_count: count,
            initial_weight: 1.0,
            container_startup_timeout_secs: None,
            model_data_download_timeout_secs: None,
            routing: None,
            shadow: false,
            serverless: None,
            managed_scaling: None,
        }
    }
}

/// SageMaker's `ServerlessConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerlessConfig {
    pub memory_mb: u32,
    pub max_concurrency: u32,
    /// Concurrency kept warm: berth keeps an instance running while this is set.
    pub provisioned_concurrency: Option<u32>,
}

impl ServerlessConfig {
    /// SageMaker's bounds: 1,024–6,144 MB in steps of 1,024; MaxConcurrency 1–200;
    /// ProvisionedConcurrency 1–MaxConcurrency.
    pub fn validate(&self, member: &str) -> Result<(), crate::DomainError> {
        let invalid = |m: String| Err(crate::DomainError::Validation(m));
        if !(1024..=6144).contains(&self.memory_mb) || !self.memory_mb.is_multiple_of(1024) {
            return invalid(format!(
                "1 validation error detected: Value '{}' at '{member}.memorySizeInMB' failed to satisfy constraint: Member must be one of 1024, 2048, 3072, 4096, 5120, 6144",
                self.memory_mb
            ));
        }
        if !(1..=200).contains(&self.max_concurrency) {
            return invalid(format!(
                "1 validation error detected: Value '{}' at '{member}.maxConcurrency' failed to satisfy constraint: Member must have value between 1 and 200",
                self.max_concurrency
            ));
        }
        if let Some(p) = self.provisioned_concurrency {
            if p < 1 || p > self.max_concurrency {
                return invalid(format!("ProvisionedConcurrency ({p}) must be between 1 and MaxConcurrency ({}).", self.max_concurrency));
            }
        }
        Ok(())
    }
}

/// How a variant picks one of its instances for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RoutingStrategy {
    /// The instance with the fewest requests in flight (SageMaker's default).
    #[default]
    LeastOutstandingRequests,
    /// An instance at random.
    Random,
}
