use crate::listing::{page, ListQuery, Page};
use crate::tags::validate_tags;
use crate::{ControlError, Controller};
use berth_domain::Model;
use berth_domain::{validate_instance_type, validate_name, EndpointConfig, ResourceKind, VariantSpec};
use berth_store::Resources;
use berth_store::Tag;

/// CreateEndpointConfig's input: the config as the caller describes it (its ARN and creation
/// time are set when it is created), and its tags.
#[derive(Debug, Clone)]
pub struct CreateEndpointConfig {
    pub config: EndpointConfig,
    pub tags: Vec<Tag>,
}

const MAX_VARIANTS: usize = 10;

/// Why an endpoint config's (or inference experiment's) KmsKeyId is refused.
pub(crate) const STORAGE_VOLUME_KMS: &str = "KmsKeyId encrypts the storage volume SageMaker attaches to each instance; berth's instances \
     have no such volume, so it cannot be applied. Leave KmsKeyId out (DataCaptureConfig.KmsKeyId, for captured data in S3, is applied).";

impl Controller {
    pub async fn create_endpoint_config(
        &self,
        CreateEndpointConfig { config, tags }: CreateEndpointConfig,
    ) -> Result<EndpointConfig, ControlError> {
        let req = &config;
        validate_name("endpointConfigName", &req.name)?;
        validate_tags(&tags)?;
        validate_variants(&req.variants)?;
        validate_component_hosts(req)?;
        if req.kms_key_id.is_some() {
            return Err(ControlError::Validation(STORAGE_VOLUME_KMS.into()));
        }
        if let Some(c) = &req.data_capture {
            c.validate()?;
            self.writable_destination("DestinationS3Uri", &c.destination)?;
            if c.kms_key_id.is_some() && !c.destination.starts_with("s3://") {
                return Err(ControlError::Validation(format!(
                    "DataCaptureConfig.KmsKeyId encrypts captured data written to S3 (SSE-KMS); berth cannot apply it to {}. \
                     Capture to an s3:// destination, or leave KmsKeyId out.",
                    c.destination
                )));
            }
        }
        if let Some(a) = &req.async_inference {
            a.validate()?;
            self.writable_destination("S3OutputPath", &a.output_path)?;
            if let Some(path) = &a.failure_path {
                self.writable_destination("S3FailurePath", path)?;
            }
            if let Some(v) = req.variants.iter().find(|v| v.serverless.is_some()) {
                return Err(ControlError::Validation(format!(
                    "Variant {} is serverless (ServerlessConfig); asynchronous inference (AsyncInferenceConfig) needs instances.",
                    v.name
                )));
            }
        }
        for v in req.variants.iter().filter(|v| !v.hosts_components()) {
            let model = v.model_name.clone();
            if self.db(move |s| s.get::<Model>(&model)).await?.is_none() {
                return Err(self.not_found(ResourceKind::Model, &v.model_name));
            }
        }
        let arn = self.account().arn(ResourceKind::EndpointConfig, &req.name);
        let config = EndpointConfig { arn, created: self.now(), ..config };
        self.insert_within_limit(config.clone(), tags, self.settings.limits.max_endpoint_configs, "endpoint configs").await?;
        tracing::info!(endpoint_config = %config.name, "endpoint config created");
        Ok(config)
    }

    /// A `file://` destination (of capture, or asynchronous answers) must lie under a
    /// `--file-root`; the answer does not tell whether a path outside exists. Returns the
    /// directory to write under.
    pub(crate) fn writable_destination(&self, member: &str, destination: &str) -> Result<Option<std::path::PathBuf>, ControlError> {
        let Some(path) = destination.strip_prefix("file://") else { return Ok(None) };
        self.settings.file_roots.resolve_for_writing(std::path::Path::new(path)).map(Some).map_err(|e| match e {
            berth_instances::RootError::NoRoots => ControlError::Validation(format!(
                "{member} {destination} cannot be written: file:// destinations are off. Start berth with --file-root DIR, or use s3://"
            )),
            _ => ControlError::Validation(format!("{member} {destination} is not under a directory berth may write to (--file-root)")),
        })
    }

    pub async fn describe_endpoint_config(&self, name: &str) -> Result<EndpointConfig, ControlError> {
        self.find(name).await
    }

    pub async fn list_endpoint_configs(&self, q: ListQuery) -> Result<Page<EndpointConfig>, ControlError> {
        page(self.all().await?, &q)
    }

    /// As on SageMaker, a config can be deleted while an endpoint uses it: the endpoint keeps
    /// running what it was deployed with.
    pub async fn delete_endpoint_config(&self, name: &str) -> Result<(), ControlError> {
        self.delete::<EndpointConfig>(name).await
    }
}

fn validate_variants(variants: &[VariantSpec]) -> Result<(), ControlError> {
    if variants.iter().all(|v| v.shadow) {
        return Err(ControlError::Validation(
            "1 validation error detected: Value '[]' at 'productionVariants' failed to satisfy constraint: Member must have length greater than or equal to 1".into(),
        ));
    }
    if variants.iter().filter(|v| !v.shadow).count() > MAX_VARIANTS || variants.iter().filter(|v| v.shadow).count() > MAX_VARIANTS {
        return Err(ControlError::Validation(format!(
            "1 validation error detected: Value at 'productionVariants' failed to satisfy constraint: Member must have length less than or equal to {MAX_VARIANTS}"
        )));
    }
    for (i, v) in variants.iter().enumerate() {
        let (list, index) = match v.shadow {
            false => ("productionVariants", variants[..i].iter().filter(|o| !o.shadow).count()),
            true => ("shadowProductionVariants", variants[..i].iter().filter(|o| o.shadow).count()),
        };
        let member = |field: &str| format!("{list}.{}.member.{field}", index + 1);
        validate_name(&member("variantName"), &v.name)?;
        if !v.hosts_components() {
            validate_name(&member("modelName"), &v.model_name)?;
        }
        if v.serverless.is_some() {
            if variants[..i].iter().any(|o| o.name.eq_ignore_ascii_case(&v.name)) {
                return Err(ControlError::Validation(format!("Variant name '{}' appears more than once.", v.name)));
            }
            continue;
        }
        validate_instance_type(&v.instance_type).map_err(|_| {
            ControlError::Validation(format!(
                "1 validation error detected: Value '{}' at '{}' failed to satisfy constraint: Member must satisfy enum value set (see the ProductionVariantInstanceType shape of the SageMaker API)",
                v.instance_type,
                member("instanceType")
            ))
        })?;
        if v.initial_instance_count < 1 {
            return Err(ControlError::Validation(format!(
                "1 validation error detected: Value '{}' at '{}' failed to satisfy constraint: Member must have value greater than or equal to 1",
                v.initial_instance_count,
                member("initialInstanceCount")
            )));
        }
        if !(v.initial_weight.is_finite() && v.initial_weight >= 0.0) {
            return Err(ControlError::Validation(format!(
                "1 validation error detected: Value '{}' at '{}' failed to satisfy constraint: Member must have value greater than or equal to 0",
                v.initial_weight,
                member("initialVariantWeight")
            )));
        }
        for (t, name) in [
            (v.container_startup_timeout_secs, "containerStartupHealthCheckTimeoutInSeconds"),
            (v.model_data_download_timeout_secs, "modelDataDownloadTimeoutInSeconds"),
        ] {
            if let Some(t) = t.filter(|t| !(60..=3600).contains(t)) {
                return Err(ControlError::Validation(format!(
                    "1 validation error detected: Value '{t}' at '{}' failed to satisfy constraint: Member must have value between 60 and 3600",
                    member(name)
                )));
            }
        }
        if variants[..i].iter().any(|o| o.name.eq_ignore_ascii_case(&v.name)) {
            return Err(ControlError::Validation(format!(
                "Variant name '{}' appears more than once; variant names (production and shadow) must be unique within an endpoint configuration.",
                v.name
            )));
        }
    }
    if variants.iter().filter(|v| !v.shadow).all(|v| v.initial_weight == 0.0) {
        return Err(ControlError::Validation("At least one production variant must have an InitialVariantWeight greater than 0.".into()));
    }
    if !variants.iter().map(|v| v.initial_weight).sum::<f64>().is_finite() {
        return Err(ControlError::Validation(
            "The variants' InitialVariantWeight values add up to more than a number can hold; use smaller weights.".into(),
        ));
    }
    Ok(())
}

/// A config whose variants name no model is one for inference components: every production
/// variant names none, it has an `ExecutionRoleArn`, and nothing that serves a model as a whole
/// (shadows, serverless, asynchronous inference). Data capture captures each component's
/// answers under its name. `ManagedInstanceScaling` is for such variants only.
fn validate_component_hosts(config: &EndpointConfig) -> Result<(), ControlError> {
    let invalid = |m: String| Err(ControlError::Validation(m));
    let hosts: Vec<&VariantSpec> = config.variants.iter().filter(|v| v.hosts_components()).collect();
    if let Some(v) = config.variants.iter().find(|v| !v.hosts_components() && v.managed_scaling.is_some_and(|m| m.enabled)) {
        return invalid(format!(
            "ManagedInstanceScaling is for variants that host inference components (no ModelName); variant {} names model {}.",
            v.name, v.model_name
        ));
    }
    if hosts.is_empty() {
        return Ok(());
    }
    if let Some(v) = config.variants.iter().find(|v| !v.hosts_components()) {
        return invalid(format!(
            "Variant {} names a model while others name none: an endpoint hosts either models (every variant names one) or inference components (none does).",
            v.name
        ));
    }
    if config.execution_role_arn.is_none() {
        return invalid("ExecutionRoleArn is required for an endpoint configuration whose production variants specify no ModelName (an endpoint for inference components).".into());
    }
    let refused = [
        (hosts.iter().any(|v| v.shadow), "ShadowProductionVariants"),
        (hosts.iter().any(|v| v.serverless.is_some()), "ServerlessConfig"),
        (config.async_inference.is_some(), "AsyncInferenceConfig"),
    ];
    if let Some((_, member)) = refused.iter().find(|(set, _)| *set) {
        return invalid(format!(
            "{member} is not supported by berth on an endpoint configuration for inference components (variants with no ModelName)."
        ));
    }
    for v in hosts {
        if let Some((min, max)) = v.managed_scaling.and_then(|m| m.range(v.initial_instance_count)) {
            if max < 1 || min > max {
                return invalid(format!(
                    "ManagedInstanceScaling of variant {}: MinInstanceCount ({min}) must be at most MaxInstanceCount ({max}), and MaxInstanceCount at least 1.",
                    v.name
                ));
            }
            if !(min..=max).contains(&v.initial_instance_count) {
                return invalid(format!(
                    "InitialInstanceCount ({}) of variant {} must lie between ManagedInstanceScaling's MinInstanceCount ({min}) and MaxInstanceCount ({max}).",
                    v.initial_instance_count, v.name
                ));
            }
        }
    }
    Ok(())
}
