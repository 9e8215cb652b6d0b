//! An in-memory backend for tests of the layers above: instances start at once (or after a
//! set delay), are healthy without a container, and every start and stop is recorded.

use crate::{BoxFuture, Instance, InstanceBackend, InstanceError, InstanceSlot, InstanceSpec};
use berth_domain::Image;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fake backend was asked to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeCall {
    Started { id: String, image: String },
    Stopped { id: String },
}

#[derive(Clone, Default)]
pub struct FakeBackend {
    inner: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    calls: Vec<FakeCall>,
    /// Starts of images holding one of these strings fail.
    failing: Vec<String>,
    /// Starts of images holding one of these strings panic (a fault of berth's own).
    panicking: Vec<String>,
    start_delay: Duration,
}

impl FakeBackend {
    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts of images whose reference contains `part` fail from now on.
    pub fn fail_images_containing(&self, part: &str) {
        self.state().failing.push(part.to_string());
    }

    /// Starts of images whose reference contains `part` panic from now on, as a bug in berth
    /// would: for tests that every lifecycle step ends in a reported failure.
    pub fn panic_on_images_containing(&self, part: &str) {
        self.state().panicking.push(part.to_string());
    }

    /// Each start takes this long before it succeeds or fails.
    pub fn set_start_delay(&self, delay: Duration) {
        self.state().start_delay = delay;
    }

    pub fn calls(&self) -> Vec<FakeCall> {
        self.state().calls.clone()
    }

    /// Instances started and not yet stopped, by id.
    pub fn running(&self) -> Vec<String> {
        let mut running = Vec::new();
        for call in self.state().calls.iter() {
            match call {
                FakeCall::Started { id, .. } => running.push(id.clone()),
                FakeCall::Stopped { id } => running.retain(|r| r != id),
            }
        }
        running
    }
}

/// Records the instance's stop when dropped: by `stop`, or with the instance.
struct Running {
    backend: FakeBackend,
    id: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.backend.state().calls.push(FakeCall::Stopped { id: self.id.clone() });
    }
}

impl InstanceBackend for FakeBackend {
    fn start(&self, spec: InstanceSpec) -> BoxFuture<'_, Result<Instance, InstanceError>> {
        Box::pin(async move {
            let image = match &spec.image {
                Image::Exec(path) => format!("exec:{}", path.display()),
                Image::Builtin(b) => format!("berth/{}", b.worker_name()),
                Image::Container(reference) => reference.clone(),
            };
            let delay = self.state().start_delay;
            tokio::time::sleep(delay).await;
            if self.state().panicking.iter().any(|part| image.contains(part.as_str())) {
                panic!("fake panic while starting {image}");
            }
            if self.state().failing.iter().any(|part| image.contains(part.as_str())) {
                return Err(InstanceError::DidNotStart(format!("The container of instance {} exited (fake failure of {image})", spec.id)));
            }
            self.state().calls.push(FakeCall::Started { id: spec.id.clone(), image: image.clone() });
            let slot = Arc::new(InstanceSlot::healthy_for_tests(&spec.id, 1));
            let running = Running { backend: self.clone(), id: spec.id };
            Ok(Instance::new(slot, Some(format!("{image}@sha256:fake")), move || Box::pin(async move { drop(running) })))
        })
    }
}
