//! What a connection has done lately, and when it is cut: each connection's watchdog (a task of
//! its own, woken only by its timer and by berth stopping) times a request's headers and a
//! keep-alive connection's idleness from the connection's [`Activity`], and passes on that berth
//! is stopping; the connection reads its verdict (one atomic load) whenever it is polled.

use super::ConnectionLimits;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tracing::debug;

/// A connection's watchdog: its task (ended with this) and its verdict.
pub(super) struct Watchdog {
    verdict: Arc<Verdict>,
    _task: AbortOnDrop,
}

impl Watchdog {
    pub(super) fn start(activity: Arc<Activity>, limits: ConnectionLimits, stopping: watch::Receiver<bool>) -> Self {
        let verdict = Arc::new(Verdict::default());
        let task = tokio::spawn(watchdog(activity, limits, stopping, verdict.clone()));
        Watchdog { verdict, _task: AbortOnDrop(task.abort_handle()) }
    }

    /// Runs `work` until it finishes, or until the connection is to be dropped (None): it sent
    /// nothing useful in time.
    pub(super) async fn unless_dropped<F: Future>(&self, work: F) -> Option<F::Output> {
        let mut work = pin!(work);
        poll_fn(|cx| {
            self.verdict.waker.register(cx.waker());
            if self.verdict.state.load(Ordering::Acquire) == Verdict::DROP {
                debug!("connection dropped: no complete request in time");
                return Poll::Ready(None);
            }
            work.as_mut().poll(cx).map(Some)
        })
        .await
    }

    /// berth is stopping: the request under way is to be finished, then the connection closed.
    pub(super) fn finishing(&self) -> bool {
        self.verdict.state.load(Ordering::Acquire) == Verdict::FINISH
    }
}

/// What a connection's watchdog decided, and how it wakes the connection to act on it.
#[derive(Default)]
struct Verdict {
    state: AtomicU8,
    waker: futures_util::task::AtomicWaker,
}

impl Verdict {
    /// Close the connection now: it sent nothing useful in time.
    const DROP: u8 = 1;
    /// Finish the request under way and close: berth is stopping.
    const FINISH: u8 = 2;

    fn decide(&self, state: u8) {
        self.state.store(state, Ordering::Release);
        self.waker.wake();
    }
}

/// Times a connection's headers and idleness, and passes on that berth is stopping.
async fn watchdog(activity: Arc<Activity>, limits: ConnectionLimits, mut stopping: watch::Receiver<bool>, verdict: Arc<Verdict>) {
    let mut stop_seen = false;
    loop {
        // While a request is handled nothing is timed here (its body by the gate, its answer by
        // the invocation timeout): look again later.
        let wake =
            if activity.busy() { Instant::now() + limits.header_timeout.min(limits.idle_timeout) } else { activity.deadline(&limits) };
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {
                if !activity.busy() && Instant::now() >= activity.deadline(&limits) {
                    verdict.decide(Verdict::DROP);
                    return;
                }
            }
            changed = stopping.changed(), if !stop_seen => {
                stop_seen = true;
                if changed.is_ok() {
                    verdict.decide(Verdict::FINISH);
                }
            }
        }
    }
}

/// Ends a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a connection has done lately, for its watchdog.
pub(super) struct Activity {
    started: Instant,
    /// Requests being handled.
    in_flight: AtomicU32,
    /// Whether any request was served (a fresh connection gets the header timeout only).
    served: AtomicBool,
    /// Milliseconds since `started` when the connection last became idle.
    idle_since_ms: AtomicU64,
    /// Milliseconds since `started` of the first byte read while idle (0: none yet).
    first_byte_ms: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Self {
        Activity {
            started: Instant::now(),
            in_flight: AtomicU32::new(0),
            served: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            first_byte_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX).max(1)
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    fn read_some(&self) {
        if !self.busy() && self.first_byte_ms.load(Ordering::Relaxed) == 0 {
            self.first_byte_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    pub(super) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn request_done(&self) {
        self.served.store(true, Ordering::Relaxed);
        self.first_byte_ms.store(0, Ordering::Relaxed);
        self.idle_since_ms.store(self.now_ms(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// When the connection is to be dropped if it is still idle or its headers are incomplete.
    fn deadline(&self, limits: &ConnectionLimits) -> Instant {
        let first_byte = self.first_byte_ms.load(Ordering::Relaxed);
        let ms = if first_byte > 0 {
            first_byte + millis(limits.header_timeout)
        } else if self.served.load(Ordering::Relaxed) {
            self.idle_since_ms.load(Ordering::Relaxed) + millis(limits.idle_timeout)
        } else {
            millis(limits.header_timeout)
        };
        self.started + Duration::from_millis(ms)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}

/// A socket that tells its connection's [`Activity`] when bytes arrive.
pub(super) struct Tracked<S> {
    pub(super) inner: S,
    pub(super) activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read_some();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Marks the connection busy while a request is handled, and idle again when its answer is ready.
#[derive(Clone)]
pub(super) struct RequestDone<S> {
    pub(super) inner: S,
    pub(super) activity: Arc<Activity>,
}

impl<S, B> tower_service::Service<http::Request<B>> for RequestDone<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Done<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        self.activity.request_started();
        Done { inner: self.inner.call(req), _done: DoneOnDrop(self.activity.clone()) }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer; the request counts as done when this is dropped.
    pub(super) struct Done<F> {
        #[pin]
        inner: F,
        _done: DoneOnDrop,
    }
}

impl<F: std::future::Future> std::future::Future for Done<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

/// Counts a request as done even when its future is dropped (the connection closed).
struct DoneOnDrop(Arc<Activity>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 1,
            header_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn deadlines_follow_what_the_connection_did() {
        let a = Activity::new();
        let l = limits();
        assert_eq!(a.deadline(&l), a.started + Duration::from_secs(2), "a fresh connection gets the header timeout");
        a.request_started();
        a.request_done();
        let idle = a.deadline(&l) - a.started;
        assert!(idle >= Duration::from_secs(10), "an idle keep-alive connection gets the idle timeout: {idle:?}");
        a.read_some();
        let partial = a.deadline(&l) - a.started;
        assert!(partial < Duration::from_secs(3), "a request's first bytes start the header timeout: {partial:?}");
    }
}
