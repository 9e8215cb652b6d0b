//! The controller's background work, supervised. Every lifecycle step (bringing an endpoint up,
//! rolling out an update, a guarded deployment, scaling, tearing down, retiring instances, a
//! serverless cold start, a transform job, an asynchronous request, a capture upload) runs as a
//! task of one [`Work`]: in a `tracing` span that names what it works on, cancelled at
//! shutdown, and caught if it panics — then its `on_panic` runs (an endpoint step marks the
//! endpoint `Failed` with a `FailureReason` and an event), so no status is left stuck.
//!
//! Cancellation is safe because every step is re-entrant from the store: a step cut short at
//! shutdown is found again by `recover` at the next start.

pub(crate) use berth_instances::caught;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// The supervisor of the controller's background tasks.
#[derive(Default)]
pub(crate) struct Work {
    tasks: TaskTracker,
    stopping: CancellationToken,
}

impl Work {
    /// Runs `task` in the background inside `span`. If it panics, the panic is logged and
    /// `on_panic` runs with its message (inside the same span); at shutdown it is cancelled.
    pub(crate) fn spawn<T, P, PF>(&self, span: tracing::Span, task: T, on_panic: P)
    where
        T: Future<Output = ()> + Send + 'static,
        P: FnOnce(String) -> PF + Send + 'static,
        PF: Future<Output = ()> + Send + 'static,
    {
        let stopping = self.stopping.clone();
        let supervised = async move {
            // Biased: a task spawned once shutdown began never starts.
            tokio::select! {
                biased;
                () = stopping.cancelled() => tracing::debug!("background step cancelled at shutdown"),
                outcome = caught(task) => {
                    if let Err(berth_instances::Panicked(message)) = outcome {
                        tracing::error!(panic = %message, "a background step of berth's panicked");
                        on_panic(message).await;
                    }
                }
            }
        };
        self.tasks.spawn(supervised.instrument(span));
    }

    /// Runs `task` in the background inside `span`; a panic is logged and goes no further.
    pub(crate) fn spawn_detached(&self, span: tracing::Span, task: impl Future<Output = ()> + Send + 'static) {
        self.spawn(span, task, |_| async {});
    }

    /// How many tasks are running (for tests and shutdown logs).
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.tasks.len()
    }

    /// Cancels every task and waits up to `grace` for them to end; says how many did not.
    pub(crate) async fn shutdown(&self, grace: Duration) -> usize {
        self.stopping.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(grace, self.tasks.wait()).await;
        self.tasks.len()
    }
}

/// Why a task of a `JoinSet` did not return, in words for a `FailureReason`.
pub(crate) fn task_failure(what: &str, e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(panic) => format!("berth failed while {what}: {}", berth_instances::panic_message(panic.as_ref())),
        Err(_) => format!("{what} was cancelled"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_panicking_task_runs_its_handler_with_the_message() {
        let work = Work::default();
        let (tx, rx) = tokio::sync::oneshot::channel();
        work.spawn(tracing::info_span!("test"), async { panic!("boom at step 3") }, move |message| async move {
            let _ = tx.send(message);
        });
        assert_eq!(rx.await.unwrap(), "boom at step 3");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_cancels_what_runs_and_a_finished_task_needs_no_handler() {
        let work = Work::default();
        let handled = Arc::new(AtomicBool::new(false));
        let h = handled.clone();
        work.spawn(tracing::info_span!("finishes"), async {}, move |_| async move { h.store(true, Ordering::SeqCst) });
        work.spawn_detached(tracing::info_span!("forever"), std::future::pending());
        tokio::task::yield_now().await;
        assert_eq!(work.running(), 1, "the finished task is gone, the pending one runs");
        assert_eq!(work.shutdown(Duration::from_secs(5)).await, 0, "cancelled at once");
        assert!(!handled.load(Ordering::SeqCst));
    }
}
