//! Which backend runs an instance: [`ImageBackends`] picks by image, and makes sure of what
//! a built-in image needs on the machine before its instances start.

use crate::{BoxFuture, DockerBackend, Instance, InstanceBackend, InstanceError, InstanceSpec, ProcessBackend};
use berth_domain::{framework_of, BuiltinImage, Framework, Image};
use std::sync::Arc;

fn image_name(image: &Image) -> String {
    match image {
        Image::Container(reference) => reference.clone(),
        other => format!("{other:?}"),
    }
}

/// Picks the backend for an instance by its image: programs and built-in images run as local
/// processes; `berth/python`, and AWS's framework images the Docker engine does not hold,
/// through the Python runtime; other container images as Docker containers.
pub struct ImageBackends {
    pub processes: Arc<ProcessBackend>,
    pub containers: Arc<DockerBackend>,
    /// None: the Python runtime is off (`--python-runtime off`).
    pub python: Option<Arc<dyn FrameworkRuntime>>,
    /// What `berth/onnx` needs on the machine (ONNX Runtime), made sure of before an instance
    /// starts; None: nothing is checked (the worker says what is missing).
    pub onnx_runtime: Option<Arc<dyn Prerequisite>>,
    /// With `--backend kubernetes`: every instance runs as a pod, through this backend.
    pub pods: Option<Arc<dyn InstanceBackend>>,
}

/// A runtime that serves framework images without Docker (berth's Python runtime, in
/// `berth-python`): it prepares what the framework needs, then starts the instance.
pub trait FrameworkRuntime: Send + Sync {
    fn start(&self, spec: InstanceSpec, framework: Framework) -> BoxFuture<'_, Result<Instance, InstanceError>>;
}

/// Something a built-in image needs on the machine, found or installed before its instances
/// start (once: later calls return at once).
pub trait Prerequisite: Send + Sync {
    /// `progress` hears each step in words; the error says what is missing and how to get it.
    fn ensure<'a>(&'a self, progress: &'a (dyn Fn(String) + Send + Sync)) -> BoxFuture<'a, Result<Provided, String>>;
}

/// What a prerequisite gives the image's workers: berth's variables saying where it is (they win
/// over the container's Environment), and the directories a sandboxed worker must read for it.
#[derive(Debug, Clone, Default)]
pub struct Provided {
    pub environment: Vec<(String, String)>,
    pub reads: Vec<std::path::PathBuf>,
}

impl InstanceBackend for ImageBackends {
    fn start(&self, mut spec: InstanceSpec) -> BoxFuture<'_, Result<Instance, InstanceError>> {
        Box::pin(async move {
            if let Some(pods) = &self.pods {
                return pods.start(spec).await;
            }
            let mut framework = framework_of(&spec.image);
            if let (Some(_), Image::Container(reference)) = (&framework, &spec.image) {
                if self.containers.has_image(reference).await {
                    framework = None; // the engine holds this exact image: it runs as a container
                }
            }
            if let Some(framework) = framework {
                let Some(python) = &self.python else {
                    return Err(InstanceError::Prerequisite(format!(
                        "Image {} is a framework image the Docker engine does not hold; berth's Python runtime could serve it, \
                         but it runs the model's own code as berth's user and is off: start berth with --python-runtime on, \
                         or put the image on the engine (docker build / docker load).",
                        image_name(&spec.image)
                    )));
                };
                return python.start(spec, framework).await;
            }
            if let (Image::Builtin(BuiltinImage::Onnx), Some(onnx)) = (&spec.image, &self.onnx_runtime) {
                let (observer, id) = (spec.observer.clone(), spec.id.clone());
                let progress = move |step: String| {
                    tracing::info!(instance = %id, %step, "berth/onnx");
                    if let Some(o) = &observer {
                        o(&id, crate::InstanceEvent::Preparing { step });
                    }
                };
                let provided = onnx.ensure(&progress).await.map_err(InstanceError::Prerequisite)?;
                spec.berth_environment.extend(provided.environment);
                spec.access.reads.extend(provided.reads);
            }
            match spec.image {
                Image::Exec(_) | Image::Builtin(_) => self.processes.start(spec).await,
                Image::Container(_) => self.containers.start(spec).await,
            }
        })
    }
}
