//! Framework models without Docker: AWS's framework images (when the Docker engine has no image
//! of that exact reference) and `berth/python` run as `berth worker python serve` processes, in
//! a Python environment made for the framework version (and the model's `requirements.txt`).

use crate::PythonEnvironments;
use berth_domain::{BuiltinImage, Framework, Image};
use berth_instances::{BoxFuture, FrameworkRuntime, Instance, InstanceBackend, InstanceError, InstanceEvent, InstanceSpec, ProcessBackend};
use std::sync::Arc;

/// The Python runtime as an instance backend of framework images (`ImageBackends` hands it
/// the instances whose image names a framework).
pub struct PythonBackend {
    processes: Arc<ProcessBackend>,
    environments: PythonEnvironments,
}

impl PythonBackend {
    pub fn new(processes: Arc<ProcessBackend>, environments: PythonEnvironments) -> Self {
        PythonBackend { processes, environments }
    }

    /// Makes (or finds) the environment `framework` is served with, then starts the instance
    /// as a `berth worker python serve` process in it.
    async fn start_framework(&self, mut spec: InstanceSpec, framework: Framework) -> Result<Instance, InstanceError> {
        let code_dir = crate::code_dir(spec.code_dir.as_ref().map(|d| d.path()), spec.model_dir.path());
        let requirements = crate::requirements_of(code_dir.as_deref());
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
            .map_err(|e| InstanceError::Prerequisite(format!("Cannot prepare the Python environment of {}: {e}", spec.id)))?;
        if let Some(note) = &prepared.note {
            self.processes.note_in_log(&spec, note)?;
        }
        let threads = spec.berth_environment.get("BERTH_WORKER_THREADS").cloned().unwrap_or_else(|| "1".into());
        spec.environment.entry("SAGEMAKER_MODEL_SERVER_WORKERS".into()).or_insert(threads);
        spec.access.programs.push(prepared.python.clone());
        let env = &mut spec.berth_environment;
        env.insert("BERTH_PYTHON".into(), prepared.python.display().to_string());
        env.insert("BERTH_FRAMEWORK".into(), framework.kind.name().into());
        if let Some(dir) = &code_dir {
            env.insert("BERTH_CODE_DIR".into(), dir.display().to_string());
        }
        spec.image = Image::Builtin(BuiltinImage::Python);
        self.processes.start(spec).await
    }
}

impl FrameworkRuntime for PythonBackend {
    fn start(&self, spec: InstanceSpec, framework: Framework) -> BoxFuture<'_, Result<Instance, InstanceError>> {
        Box::pin(self.start_framework(spec, framework))
    }
}
