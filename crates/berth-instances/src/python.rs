//! Framework models without Docker: AWS's framework images (when the Docker engine has no image
//! of that exact reference) and `berth/python` run as `berth worker python serve` processes, in
//! a Python environment made for the framework version (and the model's `requirements.txt`).

use crate::docker::DockerBackend;
use crate::process::ProcessBackend;
use crate::{BoxFuture, Instance, InstanceBackend, InstanceError, InstanceEvent, InstanceSpec};
use berth_domain::{BuiltinImage, Image};
use berth_python::{Framework, PythonEnvironments};
use std::sync::Arc;

pub struct PythonBackend {
    processes: Arc<ProcessBackend>,
    environments: PythonEnvironments,
}

impl PythonBackend {
    pub fn new(processes: Arc<ProcessBackend>, environments: PythonEnvironments) -> Self {
        PythonBackend { processes, environments }
    }

    /// The framework `image` asks the Python runtime for, unless the Docker engine holds an
    /// image of that exact reference (which then runs as a container).
    pub async fn framework_for(image: &Image, docker: &DockerBackend) -> Option<Framework> {
        match image {
            Image::Builtin(BuiltinImage::Python) => Framework::of_image("berth/python"),
            Image::Container(reference) => {
                let framework = Framework::of_image(reference)?;
                (!docker.has_image(reference).await).then_some(framework)
            }
            _ => None,
        }
    }
}

impl InstanceBackend for PythonBackend {
    fn start(&self, mut spec: InstanceSpec) -> BoxFuture<'_, Result<Instance, InstanceError>> {
        Box::pin(async move {
            let framework = match &spec.image {
                Image::Container(reference) => Framework::of_image(reference),
                _ => Framework::of_image("berth/python"),
            }
            .ok_or_else(|| InstanceError::StartFailed(format!("{} is not served by berth's Python runtime", spec.id)))?;
            let code_dir = match &spec.code_dir {
                Some(dir) => Some(dir.path().to_path_buf()),
                None => Some(spec.model_dir.path().join("code")).filter(|d| d.is_dir()),
            };
            let requirements = code_dir.as_ref().map(|d| d.join("requirements.txt")).filter(|r| r.is_file());
            let observer = spec.observer.clone();
            let id = spec.id.clone();
            let progress = move |step: String| {
                tracing::info!(instance = %id, %step, "python runtime");
                if let Some(o) = &observer {
                    o(&id, InstanceEvent::Preparing { step });
                }
            };
            let prepared = self
                .environments
                .prepare(&framework, requirements.as_deref(), &progress)
                .await
                .map_err(|e| InstanceError::StartFailed(format!("Cannot prepare the Python environment of {}: {e}", spec.id)))?;
            if let Some(note) = &prepared.note {
                let log = crate::log::InstanceLog::open(&spec.log_path, 1 << 20).map_err(InstanceError::StartFailed)?;
                log.note(&format!("---- berth: {note} ----"));
            }
            let threads = spec.environment.get("BERTH_WORKER_THREADS").cloned().unwrap_or_else(|| "1".into());
            let env = &mut spec.environment;
            env.insert("BERTH_PYTHON".into(), prepared.python.display().to_string());
            env.insert("BERTH_FRAMEWORK".into(), framework.kind.name().into());
            if let Some(dir) = &code_dir {
                env.insert("BERTH_CODE_DIR".into(), dir.display().to_string());
            }
            env.entry("SAGEMAKER_MODEL_SERVER_WORKERS".into()).or_insert(threads);
            spec.image = Image::Builtin(BuiltinImage::Python);
            self.processes.start(spec).await
        })
    }
}
