//! What every backend hands back: a running [`Instance`], the budget of instances alive at once,
//! and [`ImageBackends`], which picks the backend for an image.

use crate::python::framework_of;
use crate::{BoxFuture, DockerBackend, InstanceBackend, InstanceError, InstanceSlot, InstanceSpec, ProcessBackend, PythonBackend};
use berth_domain::{BuiltinImage, Image};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running instance, whatever runs it. Dropping it without [`Instance::stop`] still stops it.
pub struct Instance {
    slot: Arc<InstanceSlot>,
    resolved_image: Option<String>,
    stop: Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>,
}

impl Instance {
    /// An instance that `stop` takes out of rotation, drains and stops. Whatever `stop`
    /// captures is dropped with the instance, so dropping it must stop the instance too.
    pub fn new(
        slot: Arc<InstanceSlot>,
        resolved_image: Option<String>,
        stop: impl FnOnce() -> BoxFuture<'static, ()> + Send + 'static,
    ) -> Self {
        Instance { slot, resolved_image, stop: Box::new(stop) }
    }

    /// An instance run by a supervisor task that stops when told, or when `stop_tx` drops.
    pub(crate) fn supervised(
        slot: Arc<InstanceSlot>,
        stop_tx: watch::Sender<bool>,
        task: JoinHandle<()>,
        resolved_image: Option<String>,
    ) -> Self {
        Instance::new(slot, resolved_image, move || {
            Box::pin(async move {
                let _ = stop_tx.send(true);
                let _ = task.await;
            })
        })
    }

    pub fn slot(&self) -> &Arc<InstanceSlot> {
        &self.slot
    }

    /// What the image resolved to when the instance started (a container image's digest).
    pub fn resolved_image(&self) -> Option<&str> {
        self.resolved_image.as_deref()
    }

    /// Takes the instance out of rotation, lets its in-flight requests finish (bounded by the
    /// drain timeout), then stops its container.
    pub async fn stop(self) {
        (self.stop)().await
    }
}

/// How many instances may be alive at once, across every backend (`--max-instances`), counted
/// from asking for a start until the container has really stopped.
#[derive(Clone)]
pub struct InstanceBudget {
    alive: Arc<AtomicUsize>,
    max: usize,
}

impl InstanceBudget {
    pub fn new(max: usize) -> Self {
        InstanceBudget { alive: Arc::default(), max }
    }

    /// Counts one more instance, unless that would pass the limit.
    pub(crate) fn admit(&self) -> Result<AliveGuard, InstanceError> {
        let max = self.max;
        self.alive
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .map(|_| AliveGuard(self.alive.clone()))
            .map_err(|n| {
                InstanceError::StartFailed(format!(
                    "berth already runs {n} instances, its limit (--max-instances {max}), counting instances that are still stopping. \
                     Delete endpoints or raise --max-instances."
                ))
            })
    }
}

/// One counted instance; uncounted when its supervisor ends (its container is gone).
pub(crate) struct AliveGuard(Arc<AtomicUsize>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

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
    pub python: Option<Arc<PythonBackend>>,
    /// What `berth/onnx` needs on the machine (ONNX Runtime), made sure of before an instance
    /// starts; None: nothing is checked (the worker says what is missing).
    pub onnx_runtime: Option<Arc<dyn Prerequisite>>,
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
            let mut framework = framework_of(&spec.image);
            if let (Some(_), Image::Container(reference)) = (&framework, &spec.image) {
                if self.containers.has_image(reference).await {
                    framework = None; // the engine holds this exact image: it runs as a container
                }
            }
            if let Some(framework) = framework {
                let Some(python) = &self.python else {
                    return Err(InstanceError::StartFailed(format!(
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
                let provided = onnx.ensure(&progress).await.map_err(InstanceError::StartFailed)?;
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
