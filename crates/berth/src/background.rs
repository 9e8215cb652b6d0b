//! berth's background work under a supervisor: each loop (closing the metrics second with the
//! alarms that read it, inference experiments, the autoscaler, ground truth, model quality
//! metrics, bandits, pruning) runs in its own task on its own interval. Each round runs as a
//! task of its own, so a round that panics ends only itself: the panic is logged and recorded
//! as a `BackgroundFailed` event, and the loop goes on with its next round. Long-running
//! consumers (serverless cold starts, the capture writer) are kept running the same way: one
//! that panics is reported and started again. Shutdown stops every loop and waits for the
//! rounds under way.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

/// Told when a round panicked: the loop's name and the panic's message.
pub type OnPanic = Arc<dyn Fn(&'static str, String) + Send + Sync>;

pub struct Supervisor {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
    on_panic: OnPanic,
}

impl Supervisor {
    pub fn new(on_panic: OnPanic) -> Self {
        Supervisor { tasks: JoinSet::new(), stop: watch::channel(false).0, on_panic }
    }

    /// Runs `round` every `period` (a tick missed while a round ran long is skipped) until
    /// [`Supervisor::shutdown`].
    pub fn every<Fut: Future<Output = ()> + Send + 'static>(
        &mut self,
        name: &'static str,
        period: Duration,
        mut round: impl FnMut() -> Fut + Send + 'static,
    ) {
        let mut stop = self.stop.subscribe();
        let on_panic = self.on_panic.clone();
        self.tasks.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tick.tick() => {}
                }
                let span = tracing::debug_span!("background", task = name);
                if let Err(e) = tokio::spawn(round().instrument(span)).await {
                    if e.is_panic() {
                        report(name, e.into_panic(), &on_panic);
                    }
                }
            }
        });
    }

    /// Runs `task` until it returns or [`Supervisor::shutdown`]; one that panics is reported
    /// and started again a second later.
    pub fn keep<Fut: Future<Output = ()> + Send + 'static>(&mut self, name: &'static str, mut task: impl FnMut() -> Fut + Send + 'static) {
        let mut stop = self.stop.subscribe();
        let on_panic = self.on_panic.clone();
        self.tasks.spawn(async move {
            loop {
                let mut running = tokio::spawn(task().instrument(tracing::debug_span!("background", task = name)));
                let ended = tokio::select! {
                    _ = stop.changed() => {
                        running.abort();
                        return;
                    }
                    ended = &mut running => ended,
                };
                match ended {
                    Err(e) if e.is_panic() => report(name, e.into_panic(), &on_panic),
                    _ => return,
                }
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
    }

    /// Stops every loop: no new rounds; rounds under way get `grace` to finish.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("background rounds did not finish in time; they are cancelled");
            self.tasks.abort_all();
        }
    }
}

/// Logs a panic of `name`'s work and tells `on_panic`.
fn report(name: &'static str, payload: Box<dyn std::any::Any + Send>, on_panic: &OnPanic) {
    let message = berth_instances::panic_message(payload.as_ref());
    tracing::error!(task = name, panic = %message, "background work panicked; it goes on");
    on_panic(name, message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    #[tokio::test(start_paused = true)]
    async fn a_panicking_round_is_reported_and_the_loop_goes_on_until_shutdown() {
        let panics: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let seen = panics.clone();
        let mut supervisor = Supervisor::new(Arc::new(move |name, message| seen.lock().unwrap().push((name.to_string(), message))));
        let rounds = Arc::new(AtomicUsize::new(0));
        let counted = rounds.clone();
        supervisor.every("bandits", Duration::from_secs(1), move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 1 {
                    panic!("round {n} broke");
                }
            }
        });
        let quiet = Arc::new(AtomicUsize::new(0));
        let other = quiet.clone();
        supervisor.every("alarms", Duration::from_secs(1), move || {
            other.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        tokio::time::sleep(Duration::from_millis(4500)).await;
        assert_eq!(*panics.lock().unwrap(), vec![("bandits".to_string(), "round 1 broke".to_string())]);
        assert!(rounds.load(Ordering::SeqCst) >= 4, "the loop went on after the panic");
        assert!(quiet.load(Ordering::SeqCst) >= 4, "other loops never noticed");
        supervisor.shutdown(Duration::from_secs(1)).await;
        let after = rounds.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(rounds.load(Ordering::SeqCst), after, "no rounds after shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_running_task_that_panics_is_started_again_and_stopped_at_shutdown() {
        let panics: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = panics.clone();
        let mut supervisor = Supervisor::new(Arc::new(move |_, message| seen.lock().unwrap().push(message)));
        // The consumer's input outlives each run of it, as the capture queue's does.
        let input: Arc<tokio::sync::Mutex<Vec<u32>>> = Arc::new(tokio::sync::Mutex::new(vec![3, 2, 1]));
        let handled = Arc::new(AtomicUsize::new(0));
        let (queue, count) = (input.clone(), handled.clone());
        supervisor.keep("consumer", move || {
            let (queue, count) = (queue.clone(), count.clone());
            async move {
                let mut items = queue.lock().await;
                while let Some(item) = items.pop() {
                    if item == 2 {
                        panic!("item 2 broke");
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                }
                drop(items);
                std::future::pending::<()>().await;
            }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(*panics.lock().unwrap(), vec!["item 2 broke".to_string()]);
        assert_eq!(handled.load(Ordering::SeqCst), 2, "the restarted consumer went on with the next item");
        supervisor.shutdown(Duration::from_secs(1)).await;
        assert!(input.try_lock().is_ok(), "the consumer was stopped, its input released");
    }
}
