//! The connections berth accepts: at most `max_connections` at once, each over TLS when berth
//! has a certificate, each dropped when it sends nothing useful for too long (headers that do not
//! complete, a keep-alive connection idle past its time), and all of them given a deadline to
//! finish when berth stops. Request bodies are bounded and timed by the edge's gate.
//!
//! Connections are served on [`IoThreads`]: one single-threaded runtime per thread, each
//! connection on one of them from accept to close. An invocation is read, forwarded to its
//! instance over that thread's own pooled connections, and answered without leaving the thread:
//! no work-stealing wake, no cross-thread hand-off per request. Everything else (the control
//! plane, background work, instances) runs on the main runtime.

mod watchdog;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};
use watchdog::{Activity, RequestDone, Tracked, Watchdog};

#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    /// How long a request's headers may take once its first byte arrived, and how long a new
    /// connection may take to send its first request (the TLS handshake included).
    pub header_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long connections get to finish their requests once berth is stopping.
    pub shutdown_timeout: Duration,
}

/// Threads that serve connections, each running its own single-threaded runtime until stopped.
pub struct IoThreads {
    handles: Vec<tokio::runtime::Handle>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl IoThreads {
    /// Starts `count` threads (at least one).
    pub fn start(count: usize) -> io::Result<Self> {
        let mut io_threads = IoThreads { handles: Vec::new(), stops: Vec::new(), threads: Vec::new() };
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            io_threads.handles.push(runtime.handle().clone());
            io_threads.stops.push(stop);
            io_threads.threads.push(std::thread::Builder::new().name(format!("berth-io-{i}")).spawn(move || {
                let _ = runtime.block_on(stopped);
                // Whatever a connection left running (a shadow request) ends with the runtime.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?);
        }
        Ok(io_threads)
    }

    /// A handle to each thread's runtime, to spawn connections on.
    pub fn handles(&self) -> Vec<tokio::runtime::Handle> {
        self.handles.clone()
    }

    /// Stops the threads once their connections are done (after [`serve`] returned).
    pub fn stop(self) {
        drop(self.stops);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until `shutdown` resolves, then lets them finish within the deadline.
/// Each connection is served on one of the I/O threads, in turn.
pub async fn serve(
    listener: Arc<TcpListener>,
    app: berth_aws::EdgeService,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnectionLimits,
    io_threads: Vec<tokio::runtime::Handle>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut next_thread = 0;
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stopping_tx, stopping_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    let mut warned_full = false;
    loop {
        // Past the limit, new connections wait in the kernel's backlog until one closes.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        if permits.available_permits() == 0 && !warned_full {
            warn!(max_connections = limits.max_connections, "connection limit reached; new connections wait (see --max-connections)");
            warned_full = true;
        } else if permits.available_permits() > limits.max_connections / 2 {
            warned_full = false;
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: wait a little.
                    warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Moved to its I/O thread's runtime: it is registered with that thread's poller there.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "handing a connection to an I/O thread failed");
                continue;
            }
        };
        let (app, tls, limits, stopping) = (app.clone(), tls.clone(), limits.clone(), stopping_rx.clone());
        let thread = &io_threads[next_thread % io_threads.len()];
        next_thread = next_thread.wrapping_add(1);
        connections.spawn_on(
            async move {
                match tokio::net::TcpStream::from_std(stream) {
                    Ok(stream) => serve_connection(stream, app, tls, &limits, stopping).await,
                    Err(e) => warn!(error = %e, "registering a connection failed"),
                }
                debug!(%peer, "connection closed");
                drop(permit);
            },
            thread,
        );
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let open = connections.len();
    info!(open, deadline_secs = limits.shutdown_timeout.as_secs(), "no longer accepting connections; letting requests finish");
    let _ = stopping_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(left = connections.len(), "connections still open at the shutdown deadline; closing them");
        connections.shutdown().await;
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: berth_aws::EdgeService,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: &ConnectionLimits,
    stopping: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let tracked = Tracked { inner: stream, activity: activity.clone() };
    match tls {
        None => http1(tracked, app, limits, activity, stopping).await,
        Some(acceptor) => match tokio::time::timeout(limits.header_timeout, acceptor.accept(tracked)).await {
            Ok(Ok(tls_stream)) => http1(tls_stream, app, limits, activity, stopping).await,
            Ok(Err(e)) => debug!(error = %e, "TLS handshake failed"),
            Err(_) => debug!("TLS handshake did not finish in time"),
        },
    }
}

/// Serves a connection: its invocations on berth's own invocation server while they come, then
/// (from the first request of any other kind) everything on hyper's.
async fn http1<S>(
    mut io: S,
    app: berth_aws::EdgeService,
    limits: &ConnectionLimits,
    activity: Arc<Activity>,
    stopping: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let watchdog = Watchdog::start(activity.clone(), limits.clone(), stopping);
    let mut read_ahead = bytes::Bytes::new();
    if app.answers_invocations() {
        let state = InvocationConnection { activity: &activity, watchdog: &watchdog };
        match watchdog.unless_dropped(Box::pin(app.serve_invocations(&mut io, &state))).await {
            Some(berth_aws::Served::HandOver(bytes)) => read_ahead = bytes,
            Some(berth_aws::Served::Closed) | None => return,
        }
    }
    let service = TowerToHyperService::new(RequestDone { inner: app, activity: activity.clone() });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watchdog times headers and idle connections itself.
    builder.timer(TokioTimer::new()).header_read_timeout(None).keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(ReadAhead { read_ahead, inner: io }), service);
    tokio::pin!(conn);
    let mut shutting_down = false;
    let served = watchdog
        .unless_dropped(std::future::poll_fn(|cx| {
            if !shutting_down && watchdog.finishing() {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
            std::future::Future::poll(conn.as_mut(), cx)
        }))
        .await;
    if let Some(Err(e)) = served {
        debug!(error = %e, "connection ended with an error");
    }
}

/// The connection as berth's invocation server sees it.
struct InvocationConnection<'c> {
    activity: &'c Activity,
    watchdog: &'c Watchdog,
}

impl berth_aws::ConnectionState for InvocationConnection<'_> {
    fn request_started(&self) {
        self.activity.request_started();
    }
    fn request_done(&self) {
        self.activity.request_done();
    }
    fn finishing(&self) -> bool {
        self.watchdog.finishing()
    }
}

pin_project_lite::pin_project! {
    /// A connection whose first bytes were already read (by the invocation server): they are
    /// read again first.
    struct ReadAhead<S> {
        read_ahead: bytes::Bytes,
        #[pin]
        inner: S,
    }
}

impl<S: AsyncRead> AsyncRead for ReadAhead<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.read_ahead.is_empty() {
            return this.inner.poll_read(cx, buf);
        }
        let n = this.read_ahead.len().min(buf.remaining());
        buf.put_slice(&this.read_ahead.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite> AsyncWrite for ReadAhead<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
