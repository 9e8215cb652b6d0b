//! The invocation route's own HTTP/1.1 server. Every connection berth accepts starts here (when
//! invocations are unsigned): while its requests are plain invocations — `POST
//! /endpoints/{name}/invocations` over HTTP/1.1, framed by exactly one `Content-Length` — each is
//! read, answered and written here, without hyper's server (its header map, its dispatch, its
//! encoder), which at concurrency 1 was most of what the hop cost.
//!
//! The first request that is anything else goes, from its first byte, to hyper with the rest of
//! the connection ([`Served::HandOver`]). Whatever could be framed two ways — `Transfer-Encoding`
//! (alone or beside a length), two lengths, a length that is not plain digits, `Expect`,
//! `Upgrade`, a `Connection` option other than `close`/`keep-alive`, HTTP/1.0, a head past 16 KiB
//! or with more than 64 headers, no length — is hyper's to frame and answer, never this parser's:
//! a request is read here only when there is one reading of where it ends. An invocation whose one
//! plain length is past the limit is refused here from its head, and the connection closed.

use crate::bodies::BodyError;
use crate::ingress::{self, endpoint_of, LIMIT};
use crate::invocations::{EdgeService, REQUEST_ID_HEADER};
use crate::protocol::Protocol;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, EXPECT, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderValue, Method};
use http_body_util::BodyExt;
use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::ops::Range;
use std::pin::pin;
use std::task::Poll;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::Instrument;

/// The longest request head read here; a longer one is hyper's (with its own limit).
const MAX_HEAD: usize = 16 * 1024;
/// The most headers read here; a request with more is hyper's.
const MAX_HEADERS: usize = 64;
/// How every request read here starts.
const INVOCATION_PREFIX: &[u8] = b"POST /endpoints/";

/// What the connection tells the invocation server, and learns from it.
pub trait ConnectionState {
    /// A request's head was read: it is being handled (no header or idle timeout runs).
    fn request_started(&self);
    /// Its answer was written (or the connection ended while it was handled).
    fn request_done(&self);
    /// berth is stopping: answer the request under way, then close.
    fn finishing(&self) -> bool;
}

/// How a connection left the invocation server.
pub enum Served {
    /// It is closed (or to be closed): nothing more to do.
    Closed,
    /// Its next request is not one this server reads: hyper serves the connection from these
    /// bytes on (the start of that request, as read so far).
    HandOver(Bytes),
}

/// A request head as far as this server is concerned.
#[derive(Debug, PartialEq)]
pub(crate) enum Head {
    /// Not complete yet, and still possibly an invocation.
    Partial,
    /// Not a request this server reads.
    Other,
    Invocation(InvocationHead),
    /// An invocation whose one, plain length is past the runtime's limit: refused from its
    /// head, and the connection closed without reading the body.
    TooLarge,
}

/// Where an invocation's parts lie in the bytes its head was parsed from.
#[derive(Debug, PartialEq)]
pub(crate) struct InvocationHead {
    pub head_len: usize,
    pub body_len: usize,
    pub endpoint: Range<usize>,
    /// The request asked for the connection to be closed after its answer.
    pub close: bool,
    /// The headers the invocation reads ([`crate::runtime::READ_HEADERS`]), lower-case names
    /// with their values' places, in the request's order.
    pub kept: Vec<(&'static str, Range<usize>)>,
}

/// Reads the head at the start of `buf`, if it is an invocation this server answers.
pub(crate) fn parse_head(buf: &[u8]) -> Head {
    // Anything that does not start as an invocation is hyper's at once.
    let n = buf.len().min(INVOCATION_PREFIX.len());
    if buf[..n] != INVOCATION_PREFIX[..n] {
        return Head::Other;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Head::Partial,
        _ => return Head::Other,
    };
    if request.method != Some("POST") || request.version != Some(1) {
        return Head::Other;
    }
    let Some(endpoint) = request.path.and_then(endpoint_of) else { return Head::Other };
    let endpoint = place(buf, endpoint.as_bytes());
    let (mut length, mut close, mut kept) = (None, false, Vec::with_capacity(8));
    for header in request.headers.iter() {
        let name = header.name.as_bytes();
        if name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str().as_bytes()) {
            match (length, plain_length(header.value)) {
                (None, Some(len)) => length = Some(len),
                _ => return Head::Other,
            }
        } else if name.eq_ignore_ascii_case(CONNECTION.as_str().as_bytes()) {
            for option in header.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if option.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !option.eq_ignore_ascii_case(b"keep-alive") {
                    return Head::Other;
                }
            }
        } else if [TRANSFER_ENCODING, EXPECT, UPGRADE].iter().any(|n| n.as_str().as_bytes().eq_ignore_ascii_case(name)) {
            return Head::Other;
        } else if let Some(read) = crate::runtime::read_header(name) {
            // httparse took only the bytes a `HeaderValue` may hold (tab, visible ASCII and
            // space, obs-text): a value with any other is an error, and hyper's.
            kept.push((read, place(buf, header.value)));
        }
    }
    let Some(body_len) = length else { return Head::Other };
    if body_len > LIMIT {
        return Head::TooLarge;
    }
    Head::Invocation(InvocationHead { head_len, body_len, endpoint, close, kept })
}

/// A `Content-Length` of plain digits (no sign, no list), at most ten of them.
fn plain_length(value: &[u8]) -> Option<usize> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0usize, |n, d| n.checked_mul(10)?.checked_add(usize::from(d - b'0')))
}

/// Where `part` (a slice of `buf`) lies in `buf`.
fn place(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

impl EdgeService {
    /// Whether connections start in [`serve_invocations`](Self::serve_invocations): only when
    /// invocations are unsigned (a signed one is checked by the gate over hyper's request).
    pub fn answers_invocations(&self) -> bool {
        ingress::unsigned(&self.edge().security)
    }

    /// Serves a connection's invocations until it closes or sends something else.
    pub async fn serve_invocations<S>(&self, io: &mut S, connection: &(impl ConnectionState + Sync)) -> Served
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut buf = BytesMut::with_capacity(8 * 1024);
        loop {
            let head = loop {
                match parse_head(&buf) {
                    Head::Partial => {}
                    Head::Other => return Served::HandOver(buf.freeze()),
                    Head::Invocation(head) => break head,
                    Head::TooLarge => return refuse(io, BodyError::TooLarge).await,
                }
                match read_more(io, &mut buf, connection).await {
                    Ok(0) | Err(_) => return Served::Closed,
                    Ok(_) => {}
                }
            };
            connection.request_started();
            let done = RequestDone(connection);
            // The body is claimed from the budget before it is read, held until it is answered.
            let Some(claim) = self.edge().security.bodies.reserve(head.body_len) else {
                return refuse(io, BodyError::OverBudget).await;
            };
            let whole = head.head_len + head.body_len;
            if buf.len() < whole {
                buf.reserve(whole - buf.len());
                let body = async {
                    while buf.len() < whole {
                        if io.read_buf(&mut buf).await? == 0 {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                    }
                    Ok::<_, io::Error>(())
                };
                match tokio::time::timeout(self.edge().security.body_timeout, body).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Served::Closed,
                    Err(_) => return refuse(io, BodyError::Timeout).await,
                }
            }
            let head_bytes = buf.split_to(head.head_len).freeze();
            let body = buf.split_to(head.body_len).freeze();
            let id = berth_domain::random_uuid();
            // Plain ASCII: the parser took only such names.
            let endpoint = std::str::from_utf8(&head_bytes[head.endpoint.clone()]).unwrap_or_default();
            // An invocation's span is at debug level, as on hyper's path (an enabled one costs a
            // fifth of the hop in the default formatter).
            let answer = self.invoke(endpoint, &head.kept, &head_bytes, body);
            let answer = answer.instrument(tracing::debug_span!("request", id = %id, method = "POST", path = %endpoint)).await;
            let close = head.close || connection.finishing() || answer.headers().contains_key(CONNECTION);
            if write_answer(io, answer, &id, close).await.is_err() || close {
                let _ = io.shutdown().await;
                return Served::Closed;
            }
            drop(claim);
            drop(done);
        }
    }

    /// The gate's checks and InvokeEndpoint, over the headers kept from the head.
    async fn invoke(&self, endpoint: &str, kept: &[(&'static str, Range<usize>)], head_bytes: &Bytes, body: Bytes) -> Response {
        let values: Vec<(&str, HeaderValue)> = kept
            .iter()
            .filter_map(|(name, place)| Some((*name, HeaderValue::from_maybe_shared(head_bytes.slice(place.clone())).ok()?)))
            .collect();
        let headers = crate::runtime::RuntimeHeaders::read_pairs(values.iter().map(|(n, v)| (*n, v)), "accept");
        let edge = self.edge();
        if let Some(refused) = ingress::refusal(&edge.security, &Method::POST, &headers.gate) {
            return refused;
        }
        ingress::route(edge, endpoint, headers, body).await
    }
}

/// Answers a body this server will not read (past the limit, or late) and closes.
async fn refuse<S: AsyncWrite + Unpin>(io: &mut S, why: BodyError) -> Served {
    let refused = crate::bodies::body_error(Protocol::Runtime, why, LIMIT);
    let _ = write_answer(io, refused, &berth_domain::random_uuid(), true).await;
    let _ = io.shutdown().await;
    Served::Closed
}

/// Reads more of the connection into `buf`; 0 at its end, or when berth is stopping and no
/// request has begun.
async fn read_more<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut, connection: &impl ConnectionState) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(8 * 1024);
    }
    poll_fn(|cx| {
        if buf.is_empty() && connection.finishing() {
            return Poll::Ready(Ok(0));
        }
        std::future::Future::poll(pin!(io.read_buf(buf)), cx)
    })
    .await
}

/// Counts the request as done however its handling ends.
struct RequestDone<'c, C: ConnectionState>(&'c C);

impl<C: ConnectionState> Drop for RequestDone<'_, C> {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// Writes an answer: its status, its headers, its length, the request id, the date, and
/// `connection: close` when the connection closes after it.
async fn write_answer<S: AsyncWrite + Unpin>(io: &mut S, answer: Response, id: &str, close: bool) -> io::Result<()> {
    let (parts, mut body) = answer.into_parts();
    let mut data = match body.frame().await {
        None => Bytes::new(),
        Some(Ok(frame)) => frame.into_data().unwrap_or_default(),
        Some(Err(e)) => return Err(io::Error::other(e)),
    };
    if !http_body::Body::is_end_stream(&body) {
        let rest = body.collect().await.map_err(io::Error::other)?.to_bytes();
        data = [data, rest].concat().into();
    }
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    // What this function writes itself is skipped in the answer's own headers (an error answer
    // carries an id of its own: the request's id is the one logged).
    for (name, value) in &parts.headers {
        if ![&CONTENT_LENGTH, &CONNECTION, &DATE, &TRANSFER_ENCODING, &REQUEST_ID_HEADER].contains(&name) {
            line(&mut head, name.as_str(), value.as_bytes());
        }
    }
    line(&mut head, "content-length", data.len().to_string().as_bytes());
    line(&mut head, REQUEST_ID_HEADER.as_str(), id.as_bytes());
    if close {
        line(&mut head, "connection", b"close");
    }
    DATE_NOW.with(|date| line(&mut head, "date", date.borrow_mut().now()));
    head.extend_from_slice(b"\r\n");
    write_all(io, &head, &data).await
}

fn line(head: &mut Vec<u8>, name: &str, value: &[u8]) {
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

/// Writes `head` then `body`, in one vectored write when the connection takes it.
async fn write_all<S: AsyncWrite + Unpin>(io: &mut S, mut head: &[u8], mut body: &[u8]) -> io::Result<()> {
    while !head.is_empty() || !body.is_empty() {
        let n = if head.is_empty() { io.write(body).await? } else { io.write_vectored(&[IoSlice::new(head), IoSlice::new(body)]).await? };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    io.flush().await
}

thread_local! {
    /// The `Date` of answers, formatted once a second on each thread.
    static DATE_NOW: RefCell<CachedDate> = const { RefCell::new(CachedDate { second: 0, text: String::new() }) };
}

struct CachedDate {
    second: u64,
    text: String,
}

impl CachedDate {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
        self.text.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(raw: &str) -> InvocationHead {
        match parse_head(raw.as_bytes()) {
            Head::Invocation(head) => head,
            other => panic!("not read as an invocation: {other:?}\n{raw}"),
        }
    }

    const PLAIN: &str =
        "POST /endpoints/demo/invocations HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: text/csv\r\nContent-Length: 3\r\n\r\n1,2";

    #[test]
    fn a_plain_invocation_is_read_with_its_parts() {
        let head = invocation(PLAIN);
        assert_eq!(&PLAIN[head.endpoint.clone()], "demo");
        assert_eq!((head.head_len, head.body_len, head.close), (PLAIN.len() - 3, 3, false));
        let kept: Vec<(&str, &str)> = head.kept.iter().map(|(n, r)| (*n, &PLAIN[r.clone()])).collect();
        assert_eq!(kept, [("host", "127.0.0.1:8080"), ("content-type", "text/csv")]);
        let close = invocation("POST /endpoints/demo/invocations HTTP/1.1\r\nconnection: Keep-Alive, CLOSE\r\ncontent-length: 0\r\n\r\n");
        assert!(close.close);
        // Every prefix of the head is partial: more is read before deciding.
        for end in 0..head.head_len {
            assert_eq!(parse_head(&PLAIN.as_bytes()[..end]), Head::Partial, "{end}");
        }
    }

    #[test]
    fn anything_that_could_be_framed_two_ways_is_left_to_hyper() {
        let base = "POST /endpoints/demo/invocations HTTP/1.1\r\nHost: h\r\n";
        for extra in [
            // Smuggling shapes: a second framing beside the length, or a length read two ways.
            "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
            "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
            "transfer-encoding: identity\r\nContent-Length: 3\r\n",
            "Content-Length: 3\r\nContent-Length: 3\r\n",
            "Content-Length: 3\r\nContent-Length: 4\r\n",
            "Content-Length: 3, 3\r\n",
            "Content-Length: +3\r\n",
            "Content-Length: -3\r\n",
            "Content-Length: 0x3\r\n",
            "Content-Length: 3 3\r\n",
            "Content-Length: \r\n",
            "Content-Length: 99999999999999999999\r\n",
            // No length (hyper frames and answers it), an interim answer, an upgrade.
            "",
            "Expect: 100-continue\r\nContent-Length: 3\r\n",
            "Upgrade: websocket\r\nContent-Length: 3\r\n",
            "Connection: Upgrade\r\nContent-Length: 3\r\n",
            // Obsolete line folding and a space before the colon.
            "Content-Length: 3\r\nX-Folded: a\r\n b\r\n",
            "Content-Length : 3\r\n",
        ] {
            let raw = format!("{base}{extra}\r\n1,2");
            assert_eq!(parse_head(raw.as_bytes()), Head::Other, "{extra:?}");
        }
        for raw in [
            "POST /endpoints/demo/invocations HTTP/1.0\r\nContent-Length: 3\r\n\r\n",
            "POST /endpoints/demo/invocations?x=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            "POST /endpoints/a%2Fb/invocations HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            "POST /endpoints/demo/invocations/ HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            "POST /endpoints/demo/invocations HTTP/2.0\r\nContent-Length: 3\r\n\r\n",
            "POST  /endpoints/demo/invocations HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            "post /endpoints/demo/invocations HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            "GET /endpoints/demo/invocations HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            "POST http://h/endpoints/demo/invocations HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            "\r\nPOST /endpoints/demo/invocations HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            "POST /endpoints/demo/invocations HTTP/1.1\r\nBad Header: x\r\nContent-Length: 3\r\n\r\n",
            "POST /endpoints/demo/invocations HTTP/1.1\r\nX: a\0b\r\nContent-Length: 3\r\n\r\n",
            "POST /endpoints/demo/invocations HTTP/1.1\r\nHost: a\x7fb\r\nContent-Length: 3\r\n\r\n",
            "POST /endpoints/demo/invocations HTTP/1.1\r\nContent-Type: a\x01b\r\nContent-Length: 3\r\n\r\n",
        ] {
            assert_eq!(parse_head(raw.as_bytes()), Head::Other, "{raw:?}");
        }
    }

    #[test]
    fn a_length_past_the_limit_is_refused_from_the_head_unless_framed_otherwise_too() {
        let raw = "POST /endpoints/demo/invocations HTTP/1.1\r\nContent-Length: 6291457\r\n\r\n";
        assert_eq!(parse_head(raw.as_bytes()), Head::TooLarge);
        let limit = format!("POST /endpoints/demo/invocations HTTP/1.1\r\nContent-Length: {LIMIT}\r\n\r\n");
        assert!(matches!(parse_head(limit.as_bytes()), Head::Invocation(_)));
        let both = "POST /endpoints/demo/invocations HTTP/1.1\r\nContent-Length: 6291457\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_head(both.as_bytes()), Head::Other);
    }

    #[test]
    fn heads_too_long_or_with_too_many_headers_are_hyper_s() {
        let long = format!("POST /endpoints/demo/invocations HTTP/1.1\r\nX: {}\r\nContent-Length: 0\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse_head(long.as_bytes()), Head::Other);
        assert_eq!(parse_head(&long.as_bytes()[..MAX_HEAD + 10]), Head::Other, "an unfinished head past the limit");
        let many = format!("POST /endpoints/demo/invocations HTTP/1.1\r\n{}Content-Length: 0\r\n\r\n", "X: 1\r\n".repeat(MAX_HEADERS));
        assert_eq!(parse_head(many.as_bytes()), Head::Other);
    }

    #[test]
    fn lengths_are_plain_digits() {
        assert_eq!(plain_length(b"0"), Some(0));
        assert_eq!(plain_length(b" 0042 "), Some(42));
        assert_eq!(plain_length(b"9999999999"), Some(9_999_999_999));
        for bad in [&b""[..], b"+1", b"1 2", b"1,1", b"12345678901", b"1e3", b"\t"] {
            assert_eq!(plain_length(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_kept_headers_are_those_the_runtime_reads() {
        let raw = "POST /endpoints/demo/invocations HTTP/1.1\r\nX-Amzn-SageMaker-Session-Id: NEW_SESSION\r\nUser-Agent: t\r\nACCEPT: text/csv\r\nContent-Length: 0\r\n\r\n";
        let head = invocation(raw);
        let names: Vec<&str> = head.kept.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["x-amzn-sagemaker-session-id", "accept"]);
    }
}
