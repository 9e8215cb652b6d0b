//! An open-loop load generator. A [`Step`] holds a constant rate for a duration: request `i`
//! is due at `start + i / rate`, and is sent then whether or not earlier ones were answered
//! (so a slow server meets the load a real crowd would give it, rather than a politely waiting
//! one). Each latency runs from the request's due time, not from when it got sent, so a
//! generator falling behind shows as latency instead of hiding it (no coordinated omission).
//! At most `max_in_flight` requests are out at once; a request due past that is counted as
//! dropped, and the step did not hold its rate.
//!
//! What a request is, is the caller's: `send(i)` for the `i`-th request of the step.
//!
//! [`run_users`] is the closed-loop counterpart (each of N users sends its next request when
//! its last is answered, as wrk and Locust do): it finds what a server sustains, not how it
//! meets a given rate.
#![forbid(unsafe_code)]

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// A constant rate for a while.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Requests per second (above 0).
    pub rate: f64,
    pub duration: Duration,
}

/// What one step measured.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    pub step: Step,
    /// Requests due in the step.
    pub due: u64,
    pub ok: u64,
    pub errors: u64,
    /// Requests not sent: `max_in_flight` were out.
    pub dropped: u64,
    pub first_error: Option<String>,
    /// Answered requests per second, over the step's time until its last answer.
    pub achieved_rate: f64,
    /// Latencies of the answered requests (ok or not), in microseconds, sorted.
    pub latencies_us: Vec<u64>,
}

impl StepResult {
    /// The `p`-th percentile latency in milliseconds (nearest rank); None without answers.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        if self.latencies_us.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * self.latencies_us.len() as f64).ceil().max(1.0) as usize;
        Some(self.latencies_us[rank.min(self.latencies_us.len()) - 1] as f64 / 1000.0)
    }

    /// An answered request: its latency, and its error if it failed.
    fn record(&mut self, latency_us: u64, result: Result<(), String>) {
        self.latencies_us.push(latency_us);
        match result {
            Ok(()) => self.ok += 1,
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    /// Whether every due request was sent and answered without error.
    pub fn clean(&self) -> bool {
        self.errors == 0 && self.dropped == 0
    }
}

/// Counts of a run in progress, for a progress line: requests sent and answered so far.
#[derive(Debug, Default)]
pub struct Progress {
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    pub errors: AtomicU64,
}

impl Progress {
    fn answer(&self, ok: bool) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs one step: `send(i)` at each request's due time. Returns once every sent request is
/// answered (a request that never answers holds the step: `send` should bound its own time).
pub async fn run_step<F, Fut>(step: Step, max_in_flight: usize, send: F) -> StepResult
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    run_step_observed(step, max_in_flight, send, Arc::new(Progress::default())).await
}

/// [`run_step`], counting into `progress` as it goes.
pub async fn run_step_observed<F, Fut>(step: Step, max_in_flight: usize, send: F, progress: Arc<Progress>) -> StepResult
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let due = (step.rate * step.duration.as_secs_f64()).round().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / step.rate.max(1e-6));
    let start = Instant::now();
    let mut out = StepResult {
        step,
        due,
        ok: 0,
        errors: 0,
        dropped: 0,
        first_error: None,
        achieved_rate: 0.0,
        latencies_us: Vec::with_capacity(due.min(1 << 20) as usize),
    };
    let mut tasks: JoinSet<(u64, Result<(), String>)> = JoinSet::new();
    let record = |out: &mut StepResult, (latency, result): (u64, Result<(), String>)| out.record(latency, result);
    for i in 0..due {
        let at = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(at).await;
        // Answers that came in meanwhile, so the in-flight count is current.
        while let Some(done) = tasks.try_join_next() {
            record(&mut out, done.unwrap_or((0, Err("a request's task failed".into()))));
        }
        if tasks.len() >= max_in_flight {
            out.dropped += 1;
            continue;
        }
        let request = send(i);
        let progress = progress.clone();
        progress.sent.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(async move {
            let result = request.await;
            progress.answer(result.is_ok());
            (at.elapsed().as_micros() as u64, result)
        });
    }
    while let Some(done) = tasks.join_next().await {
        record(&mut out, done.unwrap_or((0, Err("a request's task failed".into()))));
    }
    let took = start.elapsed().as_secs_f64().max(step.duration.as_secs_f64());
    out.achieved_rate = (out.ok + out.errors) as f64 / took;
    out.latencies_us.sort_unstable();
    out
}

/// Closed loop: `users` users, each sending its next request (`send(i)`, `i` counting across
/// users) as soon as its last is answered, for `duration`. Latency runs from each send.
pub async fn run_users<F, Fut>(users: usize, duration: Duration, send: F, progress: Arc<Progress>) -> StepResult
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let start = Instant::now();
    let end = start + duration;
    let send = Arc::new(send);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..users.max(1) {
        let (send, next, progress) = (send.clone(), next.clone(), progress.clone());
        tasks.spawn(async move {
            let mut seen = Vec::new();
            while Instant::now() < end {
                let i = next.fetch_add(1, Ordering::Relaxed);
                progress.sent.fetch_add(1, Ordering::Relaxed);
                let at = Instant::now();
                let result = send(i).await;
                progress.answer(result.is_ok());
                seen.push((at.elapsed().as_micros() as u64, result));
            }
            seen
        });
    }
    let mut out = StepResult {
        step: Step { rate: 0.0, duration },
        due: 0,
        ok: 0,
        errors: 0,
        dropped: 0,
        first_error: None,
        achieved_rate: 0.0,
        latencies_us: Vec::new(),
    };
    while let Some(done) = tasks.join_next().await {
        for (latency, result) in done.unwrap_or_default() {
            out.record(latency, result);
        }
    }
    out.due = out.ok + out.errors;
    let took = start.elapsed().as_secs_f64().max(1e-9);
    out.achieved_rate = out.due as f64 / took;
    out.step.rate = out.achieved_rate;
    out.latencies_us.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn requests_go_out_at_their_due_times_and_latency_counts_from_then() {
        // A server that takes 30 ms: at 100/s, three are out at once, none waits for another.
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let r = run_step(Step { rate: 100.0, duration: Duration::from_secs(2) }, 64, move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
            async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok(())
            }
        })
        .await;
        assert_eq!((r.due, r.ok, r.errors, r.dropped), (200, 200, 0, 0));
        assert_eq!(sent.load(Ordering::Relaxed), 200);
        assert!((r.achieved_rate - 100.0).abs() < 2.0, "{}", r.achieved_rate);
        assert_eq!(r.percentile_ms(50.0), Some(30.0));
        assert!(r.clean());
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_slower_than_the_rate_shows_in_latency_and_drops_not_in_a_slower_rate() {
        // One request at a time, 50 ms each, asked for 100/s with at most 4 out: requests are
        // dropped, and those sent wait behind each other.
        let gate = Arc::new(tokio::sync::Semaphore::new(1));
        let r = run_step(Step { rate: 100.0, duration: Duration::from_secs(1) }, 4, move |i| {
            let gate = gate.clone();
            async move {
                let _one = gate.acquire_owned().await.map_err(|e| e.to_string())?;
                tokio::time::sleep(Duration::from_millis(50)).await;
                if i == 0 {
                    return Err("the first failed".into());
                }
                Ok(())
            }
        })
        .await;
        assert!(r.dropped > 50, "{r:?}");
        assert_eq!(r.errors, 1);
        assert_eq!(r.first_error.as_deref(), Some("the first failed"));
        assert!(r.percentile_ms(99.0).unwrap() >= 150.0, "queued requests wait: {:?}", r.percentile_ms(99.0));
        assert!(!r.clean());
    }

    #[tokio::test(start_paused = true)]
    async fn users_each_wait_for_their_answer() {
        // Two users against 10 ms answers for a second: about 200 requests, 10 ms each.
        let progress = Arc::new(Progress::default());
        let r = run_users(
            2,
            Duration::from_secs(1),
            |_| async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(())
            },
            progress.clone(),
        )
        .await;
        assert!((198..=202).contains(&r.ok), "{}", r.ok);
        assert_eq!(progress.answered.load(Ordering::Relaxed), r.ok);
        assert_eq!(r.percentile_ms(99.0), Some(10.0));
    }
}
