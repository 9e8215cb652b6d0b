//! Reconcilers, as Kubernetes controllers are made: each concern whose objects move through
//! steps (endpoints, transform jobs) is a [`Reconciler`] that reads an object's desired state
//! from the store, compares it with what this server runs, and starts the one step that closes
//! the gap. Its [`Queue`] is what drives it: API operations commit their change to the store and
//! then [`Queue::enqueue`] the object's key; the periodic resync enqueues every key the store
//! holds (so a change that was committed but never enqueued — a crash between the two, or, on a
//! cluster, a change made on another node — is still carried out); recovery after a restart is
//! nothing but a resync.
//!
//! The queue keeps at most one step in flight per key. A key enqueued while its step runs is
//! marked and reconciled again once the step ends, from what the step stored; a step the
//! reconciler says preempts the running one (a delete does not wait for a creation to finish)
//! starts at once, and the preempted step's own commit finds its work superseded. The key's
//! stored state is read under the queue's lock, never while a step of it runs, so a decision
//! is never taken on what a finished step had not yet written. Steps run as supervised
//! [`Work`](crate::work::Work): in a span, cancelled at shutdown, and a panic ends in the
//! reconciler's `failed` handling rather than a stuck status.

use crate::ControlError;
use berth_domain::NameKey;
use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A step's work, to run in the background.
pub(crate) type StepFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One concern's reconciliation: how to read its objects and which step each needs.
pub(crate) trait Reconciler: Send + Sync + Sized + 'static {
    /// What holds the reconciler's queue and what its steps work on (the controller).
    type Context: Send + Sync + 'static;
    /// An object as the store holds it.
    type Object: Send + 'static;
    /// The steps an object goes through.
    type Step: Copy + Eq + Debug + Send + Sync + 'static;

    /// What it reconciles, for logs ("endpoint", "transform job").
    const KIND: &'static str;

    /// This reconciler's queue inside its context.
    fn queue(cx: &Self::Context) -> &Queue<Self>;

    /// The keys of every object of its kind the store holds (for a resync).
    fn keys(&self, cx: &Arc<Self::Context>) -> impl Future<Output = Result<Vec<String>, ControlError>> + Send;

    /// The object stored under `key` (None: there is none).
    fn read(&self, cx: &Arc<Self::Context>, key: &str) -> impl Future<Output = Result<Option<Self::Object>, ControlError>> + Send;

    /// The step `object` needs now, from its stored state and what this server runs; None: at
    /// rest. It may act at once where no step is needed (a stop signalled to a running job).
    fn next(&self, cx: &Arc<Self::Context>, object: &Self::Object) -> Option<Self::Step>;

    /// Whether `next` starts although `running` is under way for the same key.
    fn preempts(_next: Self::Step, _running: Self::Step) -> bool {
        false
    }

    /// Starts `step` of `object` as supervised work; `done` must run when it ends (however it
    /// ends: finished, panicked or cancelled), to let the key's next step start.
    fn run(&self, cx: &Arc<Self::Context>, object: Self::Object, step: Self::Step, done: Done<Self>);
}

/// Tells the queue that a step ended, when dropped: a step that returns, panics or is cancelled
/// at shutdown drops it all the same.
pub(crate) struct Done<R: Reconciler> {
    cx: Arc<R::Context>,
    key: NameKey,
    token: u64,
}

impl<R: Reconciler> Drop for Done<R> {
    fn drop(&mut self) {
        let (cx, key, token) = (self.cx.clone(), self.key.clone(), self.token);
        // The lock is async: the bookkeeping runs as a task of its own (no-op once the runtime
        // is gone, at the very end of shutdown).
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { R::queue(&cx).finished(&cx, &key, token).await });
        }
    }
}

/// A key's step under way.
struct Slot<S> {
    step: S,
    token: u64,
    /// Enqueued again while the step ran: reconciled once it ends.
    again: bool,
}

/// Drives a [`Reconciler`]: at most one step per key, keys enqueued while their step runs
/// reconciled again once it ends.
pub(crate) struct Queue<R: Reconciler> {
    pub(crate) reconciler: R,
    running: tokio::sync::Mutex<HashMap<NameKey, Slot<R::Step>>>,
    tokens: AtomicU64,
}

impl<R: Reconciler> Queue<R> {
    pub(crate) fn new(reconciler: R) -> Self {
        Queue { reconciler, running: Default::default(), tokens: AtomicU64::new(0) }
    }

    /// Reconciles `key`: starts the step its stored state needs, unless a step of it runs
    /// (then it is reconciled again when that ends).
    pub(crate) async fn enqueue(&self, cx: &Arc<R::Context>, key: &str) -> Result<(), ControlError> {
        let id = NameKey::of(key);
        let mut running = self.running.lock().await;
        let object = self.reconciler.read(cx, key).await?;
        let Some(object) = object else { return Ok(()) };
        let Some(step) = self.reconciler.next(cx, &object) else { return Ok(()) };
        if let Some(slot) = running.get_mut(&id) {
            if !R::preempts(step, slot.step) {
                slot.again = true;
                return Ok(());
            }
            tracing::debug!(kind = R::KIND, %key, step = ?step, preempted = ?slot.step, "step preempts the one under way");
        }
        let token = self.tokens.fetch_add(1, Ordering::Relaxed) + 1;
        running.insert(id.clone(), Slot { step, token, again: false });
        drop(running);
        tracing::debug!(kind = R::KIND, %key, step = ?step, "reconciling");
        self.reconciler.run(cx, object, step, Done { cx: cx.clone(), key: id, token });
        Ok(())
    }

    /// Enqueues every key the store holds.
    pub(crate) async fn resync(&self, cx: &Arc<R::Context>) -> Result<(), ControlError> {
        for key in self.reconciler.keys(cx).await? {
            if let Err(e) = self.enqueue(cx, &key).await {
                tracing::warn!(kind = R::KIND, %key, error = %e, "cannot reconcile");
            }
        }
        Ok(())
    }

    /// The step under way for `key`, if any.
    #[cfg(test)]
    pub(crate) async fn step_of(&self, key: &str) -> Option<R::Step> {
        self.running.lock().await.get(&NameKey::of(key)).map(|s| s.step)
    }

    async fn finished(&self, cx: &Arc<R::Context>, key: &NameKey, token: u64) {
        let again = {
            let mut running = self.running.lock().await;
            match running.get(key) {
                Some(slot) if slot.token == token => running.remove(key).is_some_and(|s| s.again),
                _ => false, // preempted: the step that took its place owns the key now
            }
        };
        if again {
            if let Err(e) = self.enqueue(cx, key.as_str()).await {
                tracing::warn!(kind = R::KIND, key = %key.as_str(), error = %e, "cannot reconcile");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A toy concern: objects are numbers to count up to; one step counts one up, slowly.
    #[derive(Default)]
    struct Counters {
        queue: Queue<Counting>,
        /// Desired counts, as a store would hold them.
        desired: Mutex<HashMap<String, u32>>,
        /// What runs: the count reached.
        reached: Mutex<HashMap<String, u32>>,
        /// Steps started, in order, and how many ran at once at most.
        started: Mutex<Vec<(String, Step)>>,
        concurrent: AtomicU64,
        most_concurrent: AtomicU64,
    }

    impl Default for Queue<Counting> {
        fn default() -> Self {
            Queue::new(Counting)
        }
    }

    struct Counting;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Step {
        CountUp,
        Remove,
    }

    impl Reconciler for Counting {
        type Context = Counters;
        type Object = (String, Option<u32>);
        type Step = Step;
        const KIND: &'static str = "counter";

        fn queue(cx: &Counters) -> &Queue<Self> {
            &cx.queue
        }
        async fn keys(&self, cx: &Arc<Counters>) -> Result<Vec<String>, ControlError> {
            let mut keys: Vec<String> = cx.desired.lock().unwrap().keys().cloned().collect();
            keys.extend(cx.reached.lock().unwrap().keys().cloned());
            Ok(keys)
        }
        async fn read(&self, cx: &Arc<Counters>, key: &str) -> Result<Option<Self::Object>, ControlError> {
            Ok(Some((key.to_string(), cx.desired.lock().unwrap().get(key).copied())))
        }
        fn next(&self, cx: &Arc<Counters>, (key, desired): &Self::Object) -> Option<Step> {
            let reached = cx.reached.lock().unwrap().get(key).copied();
            match (desired, reached) {
                (None, Some(_)) => Some(Step::Remove),
                (Some(d), r) if r.unwrap_or(0) < *d => Some(Step::CountUp),
                _ => None,
            }
        }
        fn preempts(next: Step, running: Step) -> bool {
            next == Step::Remove && running != Step::Remove
        }
        fn run(&self, cx: &Arc<Counters>, (key, _): Self::Object, step: Step, done: Done<Self>) {
            cx.started.lock().unwrap().push((key.clone(), step));
            let cx = cx.clone();
            tokio::spawn(async move {
                let _done = done;
                let now = cx.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
                cx.most_concurrent.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                cx.concurrent.fetch_sub(1, Ordering::SeqCst);
                let mut reached = cx.reached.lock().unwrap();
                match step {
                    Step::CountUp => *reached.entry(key).or_default() += 1,
                    Step::Remove => {
                        reached.remove(&key);
                    }
                }
            });
        }
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }

    /// Enqueued again and again while its step runs, a key gets one step at a time and ends
    /// where its desired state says — the steps a level-triggered loop needs, no more.
    #[tokio::test(start_paused = true)]
    async fn one_step_at_a_time_per_key_until_the_stored_state_is_reached() {
        let cx = Arc::new(Counters::default());
        cx.desired.lock().unwrap().insert("a".into(), 3);
        for _ in 0..10 {
            cx.queue.enqueue(&cx, "a").await.unwrap();
        }
        settle().await;
        let reached = cx.reached.lock().unwrap().get("a").copied();
        assert_eq!(reached, Some(2), "one step, then one more for all the asks made while it ran");
        cx.queue.enqueue(&cx, "a").await.unwrap();
        settle().await;
        assert_eq!(cx.reached.lock().unwrap().get("a"), Some(&3));
        assert_eq!(cx.most_concurrent.load(Ordering::SeqCst), 1, "never two steps of one key at once");
        cx.queue.enqueue(&cx, "a").await.unwrap();
        settle().await;
        assert_eq!(cx.started.lock().unwrap().len(), 3, "at rest: no step");
    }

    /// A removal does not wait for the step under way; the preempted step's end does not free
    /// the key from the removal.
    #[tokio::test(start_paused = true)]
    async fn a_preempting_step_starts_at_once() {
        let cx = Arc::new(Counters::default());
        cx.desired.lock().unwrap().insert("b".into(), 1);
        cx.reached.lock().unwrap().insert("b".into(), 0);
        cx.queue.enqueue(&cx, "b").await.unwrap();
        cx.desired.lock().unwrap().remove("b");
        cx.queue.enqueue(&cx, "b").await.unwrap();
        assert_eq!(*cx.started.lock().unwrap(), vec![("b".to_string(), Step::CountUp), ("b".to_string(), Step::Remove)]);
        assert_eq!(cx.queue.step_of("b").await, Some(Step::Remove));
        settle().await;
        assert_eq!(cx.queue.step_of("b").await, None);
    }

    /// A resync finds what was stored but never enqueued, for every key.
    #[tokio::test(start_paused = true)]
    async fn a_resync_reconciles_every_stored_key() {
        let cx = Arc::new(Counters::default());
        for key in ["x", "y", "z"] {
            cx.desired.lock().unwrap().insert(key.into(), 1);
        }
        cx.queue.resync(&cx).await.unwrap();
        settle().await;
        let reached = cx.reached.lock().unwrap().clone();
        assert_eq!(reached, HashMap::from([("x".into(), 1), ("y".into(), 1), ("z".into(), 1)]));
    }
}
