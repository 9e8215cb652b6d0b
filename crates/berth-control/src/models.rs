use crate::listing::{page, ListQuery, Page};
use crate::tags::validate_tags;
use crate::{ControlError, Controller};
use berth_domain::framework_of;
use berth_domain::{validate_environment, validate_name, BuiltinImage, ContainerSpec, Image, Model, ResourceKind};
use berth_instances::RootError;
use berth_store::{StoreError, Tag};
use std::os::unix::fs::PermissionsExt;

/// CreateModel's input: the model as the caller describes it (its ARN and creation time are
/// set when it is created), and its tags.
#[derive(Debug, Clone)]
pub struct CreateModel {
    pub model: Model,
    pub tags: Vec<Tag>,
}

/// The most containers a model may have (SageMaker's limit).
const MAX_CONTAINERS: usize = 15;

/// SageMaker's rules for a model of several containers: hostnames on all of them or on none,
/// each different; no multi-model container among them.
fn check_multi_container(containers: &[ContainerSpec]) -> Result<(), ControlError> {
    if containers.len() < 2 {
        return Ok(());
    }
    let named = containers.iter().filter(|c| c.hostname.is_some()).count();
    if named != 0 && named != containers.len() {
        return Err(ControlError::Validation("ContainerHostname must be set on every container of the model or on none of them.".into()));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = containers.iter().filter_map(|c| c.hostname.as_deref()).find(|h| !seen.insert(h.to_ascii_lowercase())) {
        return Err(ControlError::Validation(format!("ContainerHostname {dup} is used by more than one container of the model.")));
    }
    if containers.iter().any(ContainerSpec::is_multi_model) {
        return Err(ControlError::Validation("A model with several containers cannot have a container with Mode MultiModel.".into()));
    }
    Ok(())
}

impl Controller {
    pub async fn create_model(&self, CreateModel { model, tags }: CreateModel) -> Result<Model, ControlError> {
        let req = &model;
        validate_name("modelName", &req.name)?;
        validate_tags(&tags)?;
        match req.containers.len() {
            0 => return Err(ControlError::Validation("Either PrimaryContainer or Containers must be specified.".into())),
            n if n > MAX_CONTAINERS => {
                return Err(ControlError::Validation(format!(
                    "1 validation error detected: Value at 'containers' failed to satisfy constraint: Member must have length less than or equal to {MAX_CONTAINERS}"
                )))
            }
            _ => {}
        }
        for c in &req.containers {
            self.check_container(c)?;
        }
        check_multi_container(&req.containers)?;
        let arn = self.account().arn(ResourceKind::Model, &req.name);
        let model = Model { arn, created: self.now(), ..model };
        self.insert_within_limit(model.clone(), tags, self.settings.limits.max_models, "models").await?;
        tracing::info!(model = %model.name, "model created");
        Ok(model)
    }

    pub async fn describe_model(&self, name: &str) -> Result<Model, ControlError> {
        self.find(name).await
    }

    pub async fn list_models(&self, q: ListQuery) -> Result<Page<Model>, ControlError> {
        page(self.all().await?, &q)
    }

    pub async fn delete_model(&self, name: &str) -> Result<(), ControlError> {
        self.delete::<Model>(name).await
    }

    pub(crate) fn not_found(&self, kind: ResourceKind, name: &str) -> ControlError {
        ControlError::NotFound { kind, arn: self.account().arn(kind, name) }
    }
}

/// Turns the store's "already exists" into SageMaker's message for `kind`.
pub(crate) fn map_exists(e: ControlError, kind: ResourceKind, arn: &str) -> ControlError {
    match e {
        ControlError::Store(StoreError::AlreadyExists) => ControlError::AlreadyExists { kind, arn: arn.to_string() },
        other => other,
    }
}

/// SageMaker's wording for an exhausted quota, naming berth's flag instead of AWS support.
pub(crate) fn limit_exceeded(quota: &str, limit: usize, current: usize, unit: &str) -> ControlError {
    ControlError::LimitExceeded(format!(
        "The account-level service limit '{quota}' is {limit} {unit}, with current utilization of {current} {unit} and a request delta of 1 {unit}. \
         Raise the limit with berth serve's --max-{} option.",
        unit.replace(' ', "-")
    ))
}

/// The handler source a framework model names (`SAGEMAKER_SUBMIT_DIRECTORY`, as the SDK uploads
/// it), when it is model data berth fetches (`s3://` or `file://`).
pub(crate) fn submit_directory(c: &ContainerSpec) -> Option<&str> {
    c.environment.get("SAGEMAKER_SUBMIT_DIRECTORY").map(String::as_str).filter(|u| u.starts_with("s3://") || u.starts_with("file://"))
}

impl Controller {
    /// Checks at creation time what SageMaker checks then (the image can be run, the model data
    /// exists), and what berth's operator allows: `exec:` programs under an `--exec-root`,
    /// `file://` data under a `--file-root`, no environment that would choose code for a local
    /// process to run. A container image is looked up when an endpoint starts it.
    pub(crate) fn check_container(&self, c: &ContainerSpec) -> Result<(), ControlError> {
        if let Some(h) = &c.hostname {
            validate_name("containerHostname", h)?;
        }
        let image = Image::parse(&c.image)?;
        // A framework image may run through berth's Python runtime, a local process.
        let in_container = matches!(image, Image::Container(_)) && framework_of(&image).is_none();
        validate_environment(&c.environment, !in_container)?;
        if let Some(url) = submit_directory(c) {
            self.artifacts.check_url(url).map_err(|e| ControlError::Validation(format!("SAGEMAKER_SUBMIT_DIRECTORY: {e}")))?;
        }
        if c.is_multi_model() {
            // Every image berth runs serves SageMaker's multi-model container API: the built-in
            // servers (ONNX, and the Python runtime for berth/python and AWS's framework images)
            // and exec: programs and container images that implement it.
            if let Some(prefix) = &c.model_data_url {
                self.artifacts.check_url(prefix).map_err(|e| ControlError::Validation(format!("ModelDataUrl: {e}")))?;
            }
        }
        match image {
            Image::Exec(path) => {
                let roots = &self.settings.exec_roots;
                let resolved = roots.resolve(&path).map_err(|e| match e {
                    RootError::NoRoots => ControlError::Validation(format!(
                        "Requested image {} cannot be run: exec: images are off on this server. Start berth with --exec-root DIR to run programs from DIR.",
                        c.image
                    )),
                    RootError::Outside => ControlError::Validation(format!(
                        "Requested image {} is not under a directory berth may run programs from (--exec-root {}).",
                        c.image,
                        roots.describe()
                    )),
                    RootError::NotFound(e) => ControlError::Validation(format!("Requested image {} not found: {e}.", c.image)),
                })?;
                let executable = std::fs::metadata(&resolved).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
                if !matches!(executable, Ok(true)) {
                    return Err(ControlError::Validation(format!("Requested image {} is not an executable file.", c.image)));
                }
            }
            Image::Builtin(BuiltinImage::Python) if !self.settings.python_runtime => {
                return Err(ControlError::Validation(format!(
                    "Requested image {} runs the model's own code (its handler script and pickled model) as berth's user: \
                     start berth with --python-runtime on to allow it.",
                    c.image
                )))
            }
            Image::Builtin(BuiltinImage::Python) => {}
            Image::Builtin(_) if c.model_data_url.is_none() && c.model_data_source.is_none() && !c.is_multi_model() => {
                return Err(ControlError::Validation(format!(
                    "Image {} serves the model in the model data: set ModelDataUrl to an .onnx file, a directory or a .tar.gz holding one.",
                    c.image
                )))
            }
            Image::Builtin(_) => {}
            // Checked when an endpoint starts it, as SageMaker does: the engine may be down now.
            Image::Container(_) => {}
        }
        if let Some(url) = &c.model_data_url {
            self.artifacts.check_url(url).map_err(|e| ControlError::Validation(e.to_string()))?;
        }
        Ok(())
    }
}
