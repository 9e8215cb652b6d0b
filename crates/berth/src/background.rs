//! berth's background work under a supervisor: each loop (closing the metrics second with the
//! alarms that read it, inference experiments, the autoscaler, ground truth, model quality
//! metrics, bandits, pruning) runs in its own task on its own interval. Each round runs as a
//! task of its own, so a round that panics ends only itself: the panic is logged and recorded
//! as a `BackgroundFailed` event, and the loop goes on with its next round. Shutdown stops every
//! loop and waits for the rounds under way.

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
    pub fn every<F, Fut>(&mut self, name: &'static str, period: Duration, mut round: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
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
                        let payload = e.into_panic();
                        let message = payload
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| payload.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "no message".into());
                        tracing::error!(task = name, panic = %message, "a background round panicked; the loop goes on");
                        on_panic(name, message);
                    }
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
}
