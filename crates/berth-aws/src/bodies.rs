//! Request bodies under limits: read whole with a protocol's limit and a deadline (the AWS
//! protocols whose answers or signatures need the body first), or wrapped so that a handler
//! reading it meets the same limit and deadline (unsigned invocations, the hot path); and the
//! answers, in each protocol's shape, for a body that is too large, late or broken.

use crate::protocol::Protocol;
use axum::body::Body;
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// The answer for a body a handler could not read through the gate's limit and deadline
/// (the unsigned runtime path), in the protocol's shape.
pub(crate) fn unread_body(protocol: Protocol, e: &(dyn std::error::Error + 'static)) -> Response {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return closing(body_error(protocol, BodyError::TooLarge, protocol.body_limit()));
        }
        if err.is::<BodyTimedOut>() {
            return closing(body_error(protocol, BodyError::Timeout, protocol.body_limit()));
        }
        if err.is::<OverBudget>() {
            return closing(body_error(protocol, BodyError::OverBudget, protocol.body_limit()));
        }
        source = err.source();
    }
    closing(body_error(protocol, BodyError::Broken(e.to_string()), protocol.body_limit()))
}

/// The bytes of request bodies berth holds at once, across every connection: each request's
/// body is claimed as it arrives and given back when the request is answered. A body that would
/// take berth past the budget is refused (503, retryable) rather than read.
#[derive(Debug)]
pub struct BodyBudget {
    used: AtomicUsize,
    limit: usize,
}

impl BodyBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(BodyBudget { used: AtomicUsize::new(0), limit })
    }

    /// A claim for one request's body, holding nothing yet.
    pub(crate) fn claim(self: &Arc<Self>) -> Arc<Claim> {
        Arc::new(Claim { budget: self.clone(), bytes: AtomicUsize::new(0) })
    }

    /// Claims `n` bytes for a body whose length is known before it is read (no allocation: the
    /// invocation server's path); None when the budget has no room.
    pub(crate) fn reserve(&self, n: usize) -> Option<Reserved<'_>> {
        // Made only once taken: a Reserved gives its bytes back when dropped.
        self.take(n).then(|| Reserved { budget: self, bytes: n })
    }

    /// Counts `n` more bytes held, unless that would pass the limit.
    fn take(&self, n: usize) -> bool {
        let limit = self.limit;
        self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| used.checked_add(n).filter(|u| *u <= limit)).is_ok()
    }

    fn give_back(&self, bytes: usize) {
        let _ = self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| Some(used.saturating_sub(bytes)));
    }

    /// Bytes held now, and the limit.
    pub fn held(&self) -> (usize, usize) {
        (self.used.load(Ordering::Relaxed), self.limit)
    }
}

/// One request's share of the [`BodyBudget`], given back when the last holder drops it.
#[derive(Debug)]
pub(crate) struct Claim {
    budget: Arc<BodyBudget>,
    bytes: AtomicUsize,
}

impl Claim {
    /// Claims `n` more bytes; false (claiming nothing) when the budget has no room for them.
    pub(crate) fn take(&self, n: usize) -> bool {
        let room = self.budget.take(n);
        if room {
            self.bytes.fetch_add(n, Ordering::Relaxed);
        }
        room
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.budget.give_back(*self.bytes.get_mut());
    }
}

/// Bytes reserved by [`BodyBudget::reserve`], given back when dropped.
pub(crate) struct Reserved<'b> {
    budget: &'b BodyBudget,
    bytes: usize,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

/// Reading the body would take berth past its budget of bodies in flight.
#[derive(Debug, thiserror::Error)]
#[error("berth holds as many request bodies as --max-body-memory allows")]
pub(crate) struct OverBudget;

pin_project_lite::pin_project! {
    /// A body whose data is claimed from the budget as it arrives; fails with [`OverBudget`]
    /// when a frame would pass it.
    pub(crate) struct Budgeted<B> {
        #[pin]
        inner: B,
        claim: Arc<Claim>,
    }
}

impl<B> Budgeted<B> {
    pub(crate) fn new(inner: B, claim: Arc<Claim>) -> Self {
        Budgeted { inner, claim }
    }
}

impl<B> http_body::Body for Budgeted<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, Bytes::len);
                if this.claim.take(n) {
                    Poll::Ready(Some(Ok(frame)))
                } else {
                    Poll::Ready(Some(Err(Box::new(OverBudget))))
                }
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The body did not arrive within the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub(crate) struct BodyTimedOut;

pin_project_lite::pin_project! {
    /// A body that fails with [`BodyTimedOut`] once its deadline passes; the timer is made only
    /// when the body is not there yet (most arrive with their headers).
    pub(crate) struct Timed<B> {
        #[pin]
        inner: B,
        timeout: Duration,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<B> Timed<B> {
    pub(crate) fn new(inner: B, timeout: Duration) -> Self {
        Timed { inner, timeout, sleep: None }
    }
}

impl<B> http_body::Body for Timed<B>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<B::Data>, Self::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let timeout = *this.timeout;
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[derive(Debug)]
pub(crate) enum BodyError {
    TooLarge,
    Timeout,
    /// berth holds all the request bodies its budget allows.
    OverBudget,
    Broken(String),
}

/// Reads a body whole, refusing it once it passes `limit` (or announces a larger length) and
/// when it has not arrived within `timeout`.
/// Whether the request's `Content-Length` announces more than `limit` bytes: refused from its
/// head, before any of the body is read.
/// The answer to a body announced past `limit` (the connection then closes), if it is.
pub(crate) fn too_large(protocol: Protocol, headers: &axum::http::HeaderMap, limit: usize) -> Option<Response> {
    announced_over(headers, limit).then(|| closing(body_error(protocol, BodyError::TooLarge, limit)))
}

/// A body as it is read: within `limit` and `timeout`, claimed from the budget of bodies in
/// flight as it arrives (`claim`, held until the request is answered).
pub(crate) fn bounded<B>(body: B, limit: usize, timeout: Duration, claim: Arc<Claim>) -> Budgeted<Timed<http_body_util::Limited<B>>> {
    Budgeted::new(Timed::new(http_body_util::Limited::new(body, limit), timeout), claim)
}

pub(crate) fn announced_over(headers: &axum::http::HeaderMap, limit: usize) -> bool {
    let announced = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    announced.is_some_and(|n| n > limit as u64)
}

pub(crate) async fn read_body(
    body: Body,
    headers: &axum::http::HeaderMap,
    limit: usize,
    timeout: Duration,
    claim: &Arc<Claim>,
) -> Result<Bytes, BodyError> {
    if announced_over(headers, limit) {
        return Err(BodyError::TooLarge);
    }
    let mut collect = std::pin::pin!(Budgeted::new(Limited::new(body, limit), claim.clone()).collect());
    // Most bodies arrived with their headers: only a body still on its way gets a timer.
    let first = std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
    let result = match first {
        Poll::Ready(r) => r,
        Poll::Pending => tokio::time::timeout(timeout, collect).await.map_err(|_| BodyError::Timeout)?,
    };
    match result {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Err(e) if e.downcast_ref::<OverBudget>().is_some() => Err(BodyError::OverBudget),
        Err(e) => Err(BodyError::Broken(e.to_string())),
    }
}

/// How much larger than its protocol's limit a gzip body may grow when decompressed.
pub(crate) const MAX_GZIP_EXPANSION: usize = 8;

/// A request body as its handler reads it: decompressed when `Content-Encoding` says gzip (as
/// boto3 sends `PutMetricData` bodies over 10 KB), refused past `limit` decompressed bytes;
/// refused for an encoding berth does not read.
pub(crate) fn decoded(body: Bytes, headers: &axum::http::HeaderMap, limit: usize) -> Result<Bytes, BodyError> {
    use std::io::Read;
    let encodings = headers.get_all(axum::http::header::CONTENT_ENCODING);
    let mut gzip = false;
    for value in encodings {
        for coding in value.to_str().unwrap_or("?").split(',').map(str::trim).filter(|c| !c.is_empty()) {
            match coding.to_ascii_lowercase().as_str() {
                "identity" => {}
                "gzip" | "x-gzip" if !gzip => gzip = true,
                other => return Err(BodyError::Broken(format!("its Content-Encoding {other} is not one berth reads (gzip, identity)"))),
            }
        }
    }
    if !gzip {
        return Ok(body);
    }
    let mut out = Vec::new();
    let read = flate2::read::GzDecoder::new(&body[..]).take(limit as u64 + 1).read_to_end(&mut out);
    match read {
        Err(e) => Err(BodyError::Broken(format!("its gzip encoding is broken ({e})"))),
        Ok(n) if n > limit => Err(BodyError::TooLarge),
        Ok(_) => Ok(Bytes::from(out)),
    }
}

pub(crate) fn body_error(protocol: Protocol, e: BodyError, limit: usize) -> Response {
    let (code, query_code) = match protocol {
        Protocol::Runtime => ("ValidationError", "ValidationError"),
        Protocol::AwsJson => ("ValidationException", "ValidationError"),
        _ => ("InvalidParameterValueException", "InvalidParameterValue"),
    };
    match e {
        BodyError::TooLarge if protocol == Protocol::Runtime => protocol.error(
            StatusCode::BAD_REQUEST,
            code,
            query_code,
            format!("The request body exceeds the {limit}-byte limit of an invocation (6 MB)."),
        ),
        BodyError::TooLarge => {
            protocol.error(StatusCode::BAD_REQUEST, code, query_code, format!("The request body is larger than {limit} bytes."))
        }
        BodyError::OverBudget => protocol.error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "ServiceUnavailable",
            "berth is holding as many request bodies as its memory budget allows (--max-body-memory); retry shortly.".into(),
        ),
        BodyError::Timeout => protocol.error(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeout",
            "RequestTimeout",
            "The request body did not arrive in time (see berth's --body-timeout).".into(),
        ),
        BodyError::Broken(why) => {
            protocol.error(StatusCode::BAD_REQUEST, code, query_code, format!("The request body could not be read: {why}"))
        }
    }
}

/// Closes the connection after this answer: the rest of a refused body is never read.
pub(crate) fn closing(mut resp: Response) -> Response {
    resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_are_refused_past_their_limit_and_deadline() {
        let headers = axum::http::HeaderMap::new();
        let claim = BodyBudget::new(1 << 20).claim();
        let ok = read_body(Body::from("abc"), &headers, 3, Duration::from_secs(1), &claim).await.unwrap();
        assert_eq!(&ok[..], b"abc");
        assert!(matches!(read_body(Body::from("abcd"), &headers, 3, Duration::from_secs(1), &claim).await, Err(BodyError::TooLarge)));
        let mut announced = axum::http::HeaderMap::new();
        announced.insert(CONTENT_LENGTH, HeaderValue::from_static("1000000000"));
        assert!(matches!(read_body(Body::empty(), &announced, 3, Duration::from_secs(1), &claim).await, Err(BodyError::TooLarge)));
        let stalled = Body::new(Stalled);
        assert!(matches!(read_body(stalled, &headers, 3, Duration::from_millis(50), &claim).await, Err(BodyError::Timeout)));
    }

    #[tokio::test]
    async fn bodies_in_flight_are_bounded_across_requests_until_answered() {
        let budget = BodyBudget::new(10);
        let headers = axum::http::HeaderMap::new();
        let first = budget.claim();
        assert_eq!(&read_body(Body::from("123456"), &headers, 100, Duration::from_secs(1), &first).await.unwrap()[..], b"123456");
        let second = budget.claim();
        let refused = read_body(Body::from("12345"), &headers, 100, Duration::from_secs(1), &second).await;
        assert!(matches!(refused, Err(BodyError::OverBudget)), "6 + 5 bytes pass a budget of 10");
        assert_eq!(budget.held(), (6, 10));
        drop(first);
        assert_eq!(budget.held(), (0, 10), "an answered request gives its body's bytes back");
        let third = budget.claim();
        assert!(read_body(Body::from("12345"), &headers, 100, Duration::from_secs(1), &third).await.is_ok());
        let answer = body_error(Protocol::Runtime, BodyError::OverBudget, 100);
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_refused_reservation_gives_back_nothing_it_did_not_take() {
        let budget = BodyBudget::new(10);
        let first = budget.reserve(6).expect("room for 6 of 10");
        assert!(budget.reserve(5).is_none(), "6 + 5 bytes pass a budget of 10");
        assert_eq!(budget.held(), (6, 10), "the refused reservation released none of the first's bytes");
        assert!(budget.reserve(5).is_none());
        drop(first);
        assert_eq!(budget.held(), (0, 10));
        assert!(budget.reserve(10).is_some());
    }

    #[tokio::test]
    async fn the_unbuffered_path_bounds_and_times_bodies_too() {
        let read = |body: Body| async move { axum::body::to_bytes(body, usize::MAX).await };
        let ok = read(Body::new(Timed::new(Limited::new(Body::from("abc"), 3), Duration::from_secs(1)))).await.unwrap();
        assert_eq!(&ok[..], b"abc");
        let too_big = read(Body::new(Timed::new(Limited::new(Body::from("abcd"), 3), Duration::from_secs(1)))).await.unwrap_err();
        assert_eq!(unread_body(Protocol::Runtime, &too_big).status(), StatusCode::BAD_REQUEST);
        let late = read(Body::new(Timed::new(Limited::new(Body::new(Stalled), 3), Duration::from_millis(50)))).await.unwrap_err();
        let answer = unread_body(Protocol::Runtime, &late);
        assert_eq!(answer.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(answer.headers()["x-amzn-errortype"], "RequestTimeout");
    }

    /// A body whose client sent the headers and then nothing more.
    struct Stalled;

    impl http_body::Body for Stalled {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
            std::task::Poll::Pending
        }
    }
}
