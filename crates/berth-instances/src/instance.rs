//! What every backend hands back: a running [`Instance`], and the budget of instances alive at
//! once.

use crate::{BoxFuture, InstanceError, InstanceSlot};
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
    pub fn admit(&self) -> Result<AliveGuard, InstanceError> {
        let max = self.max;
        self.alive
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .map(|_| AliveGuard(self.alive.clone()))
            .map_err(|n| {
                InstanceError::CapacityExceeded(format!(
                    "berth already runs {n} instances, its limit (--max-instances {max}), counting instances that are still stopping. \
                     Delete endpoints or raise --max-instances."
                ))
            })
    }
}

/// One counted instance; uncounted when its supervisor ends (its container is gone).
pub struct AliveGuard(Arc<AtomicUsize>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_admits_up_to_its_limit_and_counts_an_instance_until_it_is_gone() {
        let budget = InstanceBudget::new(2);
        let (first, second) = (budget.admit().unwrap(), budget.admit().unwrap());
        let refused = budget.admit().map(drop).unwrap_err();
        assert!(matches!(&refused, InstanceError::CapacityExceeded(m) if m.contains("--max-instances 2")), "{refused}");
        drop(first);
        let _third = budget.admit().expect("a stopped instance gives its place back");
        drop(second);
    }
}
