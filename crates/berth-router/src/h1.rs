//! The one HTTP/1.1 exchange berth has with an instance, written out: a request head built
//! from bytes prepared when the connection opened, the head and body sent in one vectored
//! write, the answer's head parsed with `httparse` and its body read by its framing
//! (`Content-Length`, chunked, or until the connection closes), all on the request's own task.
//! A general-purpose client costs a connection task, a channel and a wake between the two per
//! request; this path has none of them (see BENCHMARKS.md).

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderValue;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The header that carries SageMaker's `CustomAttributes` both ways.
pub const CUSTOM_ATTRIBUTES: &str = "x-amzn-sagemaker-custom-attributes";

/// The longest answer head read from an instance.
const MAX_HEAD: usize = 64 * 1024;
/// The most header fields an answer head may have.
const MAX_HEADERS: usize = 64;
/// The longest chunk-size line (with extensions) of a chunked answer.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// An open keep-alive connection to an instance.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet used.
    buf: BytesMut,
    /// `Host: <addr>\r\n`, made once.
    host_line: Box<[u8]>,
}

/// What is worth knowing of an answer's head.
#[derive(Debug)]
pub(crate) struct Head {
    pub status: u16,
    pub content_type: Option<HeaderValue>,
    pub custom_attributes: Option<HeaderValue>,
    pub framing: Framing,
    /// The connection may carry another request once this answer is read.
    pub keep_alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
    /// The body ends when the instance closes the connection.
    UntilClose,
}

/// Why an exchange failed, and how far it got.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// Nothing of an answer arrived: the connection was closed or reset before a byte of it
    /// (on a pooled connection, the instance closed it while idle).
    NoAnswer(io::Error),
    /// The answer was broken off or is not HTTP.
    Broken(String),
    /// The answer's body is longer than the limit.
    TooLarge,
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::NoAnswer(e) => write!(f, "the connection closed before an answer: {e}"),
            ExchangeError::Broken(m) => f.write_str(m),
            ExchangeError::TooLarge => f.write_str("the answer is too large"),
        }
    }
}

/// The optional request headers berth passes on, by their names on the wire.
pub(crate) struct RequestHeaders<'a> {
    pub content_type: Option<&'a HeaderValue>,
    pub accept: Option<&'a HeaderValue>,
    pub custom_attributes: Option<&'a HeaderValue>,
    pub inference_id: Option<&'a HeaderValue>,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream, addr: SocketAddr) -> Self {
        let _ = stream.set_nodelay(true);
        let host_line = format!("Host: {addr}\r\n").into_bytes().into_boxed_slice();
        Conn { stream, buf: BytesMut::with_capacity(8 * 1024), host_line }
    }

    /// Whether an idle connection is still fit for a request: nothing arrived on it since its
    /// last answer, not even its close. Asks the kernel (one non-blocking `recv` with
    /// `MSG_PEEK`), not the runtime's readiness, which may not have seen a close yet: a request
    /// sent on a connection the instance has closed cannot be told from one that crashed the
    /// instance, so it is never sent again.
    pub(crate) fn is_reusable(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        matches!(socket2::SockRef::from(&self.stream).peek(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Sends `POST path` with `body`, head and body in one vectored write where the kernel
    /// takes them whole.
    pub(crate) async fn send(&mut self, path: &str, headers: &RequestHeaders<'_>, body: &[u8]) -> io::Result<()> {
        self.send_request("POST", path, headers, body).await
    }

    /// Sends `method path` with `body` (the multi-model container API's loads and unloads).
    pub(crate) async fn send_request(&mut self, method: &str, path: &str, headers: &RequestHeaders<'_>, body: &[u8]) -> io::Result<()> {
        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(method.as_bytes());
        head.extend_from_slice(b" ");
        head.extend_from_slice(path.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\n");
        head.extend_from_slice(&self.host_line);
        let fields = [
            (b"Content-Type: ".as_slice(), headers.content_type),
            (b"Accept: ", headers.accept),
            (b"X-Amzn-SageMaker-Custom-Attributes: ", headers.custom_attributes),
            (b"X-Amzn-SageMaker-Inference-Id: ", headers.inference_id),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                head.extend_from_slice(name);
                head.extend_from_slice(v.as_bytes());
                head.extend_from_slice(b"\r\n");
            }
        }
        head.extend_from_slice(b"Content-Length: ");
        head.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        head.extend_from_slice(b"\r\n\r\n");
        let (mut head, mut body) = (head.as_slice(), body);
        while !head.is_empty() {
            let n = self.stream.write_vectored(&[IoSlice::new(head), IoSlice::new(body)]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            if n < head.len() {
                head = &head[n..];
            } else {
                body = &body[n - head.len()..];
                head = &[];
            }
        }
        self.stream.write_all(body).await
    }

    /// Reads the answer's head (skipping informational 1xx answers).
    pub(crate) async fn read_head(&mut self) -> Result<Head, ExchangeError> {
        let mut received_any = !self.buf.is_empty();
        loop {
            if let Some(head) = self.parse_head()? {
                if (100..200).contains(&head.status) {
                    continue;
                }
                return Ok(head);
            }
            if self.buf.len() >= MAX_HEAD {
                return Err(ExchangeError::Broken(format!("the answer's head is longer than {MAX_HEAD} bytes")));
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) if !received_any => return Err(ExchangeError::NoAnswer(io::ErrorKind::UnexpectedEof.into())),
                Ok(0) => return Err(ExchangeError::Broken("the connection closed in the middle of the answer's head".into())),
                Ok(_) => received_any = true,
                Err(e) if !received_any => return Err(ExchangeError::NoAnswer(e)),
                Err(e) => return Err(ExchangeError::Broken(format!("reading the answer's head: {e}"))),
            }
        }
    }

    /// A whole head at the start of the buffer, consumed; `None` when more bytes are needed.
    fn parse_head(&mut self) -> Result<Option<Head>, ExchangeError> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut fields);
        let len = match response.parse(&self.buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(ExchangeError::Broken(format!("the answer is not HTTP/1.1: {e}"))),
        };
        let status = response.code.unwrap_or(0);
        let http11 = response.version == Some(1);
        let (mut length, mut chunked, mut close, mut keep_alive_token) = (None::<u64>, false, false, false);
        let (mut content_type, mut custom_attributes) = (None, None);
        for field in response.headers.iter() {
            let name = field.name;
            if name.eq_ignore_ascii_case("content-length") {
                let n = std::str::from_utf8(field.value).ok().and_then(|v| v.trim().parse::<u64>().ok());
                match (n, length) {
                    (Some(n), None) => length = Some(n),
                    (Some(n), Some(m)) if n == m => {}
                    _ => return Err(ExchangeError::Broken("the answer's Content-Length is not one number".into())),
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = tokens(field.value).last().is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case("connection") {
                for t in tokens(field.value) {
                    close |= t.eq_ignore_ascii_case(b"close");
                    keep_alive_token |= t.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case("content-type") {
                content_type = HeaderValue::from_bytes(field.value).ok();
            } else if name.eq_ignore_ascii_case(CUSTOM_ATTRIBUTES) {
                custom_attributes = HeaderValue::from_bytes(field.value).ok();
            }
        }
        self.buf.advance(len);
        let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
            Framing::Length(0)
        } else if chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        let keep_alive = framing != Framing::UntilClose && !close && (http11 || keep_alive_token);
        Ok(Some(Head { status, content_type, custom_attributes, framing, keep_alive }))
    }

    /// Reads the whole body of an answer with `head`, at most `limit` bytes.
    pub(crate) async fn read_body(&mut self, head: &Head, limit: usize) -> Result<Bytes, ExchangeError> {
        match head.framing {
            Framing::Length(n) => {
                if n > limit as u64 {
                    return Err(ExchangeError::TooLarge);
                }
                let n = n as usize;
                self.fill(n).await?;
                Ok(self.buf.split_to(n).freeze())
            }
            Framing::UntilClose => loop {
                if self.buf.len() > limit {
                    return Err(ExchangeError::TooLarge);
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) => return Ok(self.buf.split().freeze()),
                    Ok(_) => {}
                    Err(e) => return Err(ExchangeError::Broken(format!("reading the answer: {e}"))),
                }
            },
            Framing::Chunked => {
                let mut body = BytesMut::new();
                while let Some(chunk) = self.next_chunk().await? {
                    if body.len() + chunk.len() > limit {
                        return Err(ExchangeError::TooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body.freeze())
            }
        }
    }

    /// The next piece of an answer's body as it arrives (a chunk of a chunked body, or what one
    /// read brought of any other); `None` after the last. For a length-framed body `left`
    /// starts as its length and is kept by the caller between pieces.
    pub(crate) async fn next_piece(&mut self, framing: Framing, left: &mut u64) -> Result<Option<Bytes>, ExchangeError> {
        match framing {
            Framing::Chunked => self.next_chunk().await,
            Framing::Length(_) => {
                if *left == 0 {
                    return Ok(None);
                }
                if self.buf.is_empty() {
                    self.read_more().await?;
                }
                let n = self.buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                Ok(Some(self.buf.split_to(n).freeze()))
            }
            Framing::UntilClose => {
                if self.buf.is_empty() {
                    match self.stream.read_buf(&mut self.buf).await {
                        Ok(0) => return Ok(None),
                        Ok(_) => {}
                        Err(e) => return Err(ExchangeError::Broken(format!("reading the answer: {e}"))),
                    }
                }
                Ok(Some(self.buf.split().freeze()))
            }
        }
    }

    /// The next piece of a chunked body as the instance sent it; `None` after the last one
    /// (its trailers read and dropped).
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Bytes>, ExchangeError> {
        let line = self.line().await?;
        let size = line.split(|b| *b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(|| ExchangeError::Broken("a chunk of the answer has no valid size".into()))?;
        if size == 0 {
            while !self.line().await?.is_empty() {}
            return Ok(None);
        }
        self.fill(size + 2).await?;
        let chunk = self.buf.split_to(size).freeze();
        if &self.buf[..2] != b"\r\n" {
            return Err(ExchangeError::Broken("a chunk of the answer is longer than its size".into()));
        }
        self.buf.advance(2);
        Ok(Some(chunk))
    }

    /// One CRLF-terminated line, without its end.
    async fn line(&mut self) -> Result<Bytes, ExchangeError> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(at).freeze();
                self.buf.advance(2);
                return Ok(line);
            }
            if self.buf.len() > MAX_CHUNK_LINE {
                return Err(ExchangeError::Broken("a chunk-size line of the answer is too long".into()));
            }
            self.read_more().await?;
        }
    }

    /// Reads until at least `n` bytes are buffered.
    async fn fill(&mut self, n: usize) -> Result<(), ExchangeError> {
        if self.buf.len() < n {
            self.buf.reserve(n - self.buf.len());
        }
        while self.buf.len() < n {
            self.read_more().await?;
        }
        Ok(())
    }

    async fn read_more(&mut self) -> Result<(), ExchangeError> {
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err(ExchangeError::Broken("the connection closed in the middle of the answer".into())),
            Ok(_) => Ok(()),
            Err(e) => Err(ExchangeError::Broken(format!("reading the answer: {e}"))),
        }
    }

    /// Whether the connection can go back to the pool after an answer with `head` was read
    /// whole: the answer allows it and nothing more than the answer arrived.
    pub(crate) fn reusable_after(&self, head: &Head) -> bool {
        head.keep_alive && self.buf.is_empty()
    }
}

/// The comma-separated tokens of a header value, trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(|t| t.trim_ascii()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A server that reads one request (its head and `Content-Length` body), writes `answer`
    /// in the pieces given, and closes.
    async fn answering(pieces: Vec<&'static [u8]>) -> (Conn, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = sock.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
                if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
                    let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length: ")).unwrap().parse().unwrap();
                    if request.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            for piece in pieces {
                sock.write_all(piece).await.unwrap();
                sock.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            request
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        (Conn::new(stream, addr), server)
    }

    fn headers(content_type: &HeaderValue) -> RequestHeaders<'_> {
        RequestHeaders { content_type: Some(content_type), accept: None, custom_attributes: None, inference_id: None }
    }

    #[tokio::test]
    async fn a_request_goes_out_whole_and_a_length_framed_answer_comes_back() {
        let (mut conn, server) = answering(vec![b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 5\r\n\r\n1,2,3"]).await;
        conn.send("/invocations", &headers(&HeaderValue::from_static("text/csv")), b"4,5").await.unwrap();
        let head = conn.read_head().await.unwrap();
        assert_eq!((head.status, head.framing, head.keep_alive), (200, Framing::Length(5), true));
        assert_eq!(head.content_type.as_ref().unwrap(), "text/csv");
        assert_eq!(conn.read_body(&head, 100).await.unwrap(), "1,2,3");
        assert!(conn.reusable_after(&head));
        let request = String::from_utf8(server.await.unwrap()).unwrap();
        assert!(request.starts_with("POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:"), "{request}");
        assert!(request.contains("\r\nContent-Type: text/csv\r\n") && request.ends_with("Content-Length: 3\r\n\r\n4,5"), "{request}");
    }

    #[tokio::test]
    async fn chunked_answers_split_anywhere_are_read_piece_by_piece() {
        let (mut conn, _server) = answering(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab",
            b"cd\r\n3;ext=1\r\nefg\r",
            b"\n0\r\nTrailer: x\r\n\r\n",
        ])
        .await;
        conn.send("/invocations", &headers(&HeaderValue::from_static("text/plain")), b"").await.unwrap();
        let head = conn.read_head().await.unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        assert_eq!(conn.next_chunk().await.unwrap().unwrap(), "abcd");
        assert_eq!(conn.next_chunk().await.unwrap().unwrap(), "efg");
        assert!(conn.next_chunk().await.unwrap().is_none());
        assert!(conn.reusable_after(&head));
    }

    #[tokio::test]
    async fn limits_closes_and_garbage_are_told_apart() {
        let (mut conn, _s) = answering(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"]).await;
        conn.send("/invocations", &headers(&HeaderValue::from_static("a/b")), b"x").await.unwrap();
        let head = conn.read_head().await.unwrap();
        assert!(matches!(conn.read_body(&head, 999).await, Err(ExchangeError::TooLarge)));

        let (mut conn, _s) =
            answering(vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfff\r\n", &[b'x'; 4095], b"\r\n0\r\n\r\n"]).await;
        conn.send("/invocations", &headers(&HeaderValue::from_static("a/b")), b"x").await.unwrap();
        let head = conn.read_head().await.unwrap();
        assert!(matches!(conn.read_body(&head, 4000).await, Err(ExchangeError::TooLarge)));

        let (mut conn, _s) = answering(vec![]).await;
        conn.send("/invocations", &headers(&HeaderValue::from_static("a/b")), b"x").await.unwrap();
        assert!(matches!(conn.read_head().await, Err(ExchangeError::NoAnswer(_))), "closed before a byte");

        let (mut conn, _s) = answering(vec![b"HTTP/1.1 200 OK\r\nContent-"]).await;
        conn.send("/invocations", &headers(&HeaderValue::from_static("a/b")), b"x").await.unwrap();
        assert!(matches!(conn.read_head().await, Err(ExchangeError::Broken(_))), "closed mid-head");

        let (mut conn, _s) = answering(vec![b"SSH-2.0-OpenSSH\r\n\r\n"]).await;
        conn.send("/invocations", &headers(&HeaderValue::from_static("a/b")), b"x").await.unwrap();
        assert!(matches!(conn.read_head().await, Err(ExchangeError::Broken(_))), "not HTTP");

        let (mut conn, _s) = answering(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"]).await;
        conn.send("/invocations", &headers(&HeaderValue::from_static("a/b")), b"x").await.unwrap();
        assert!(matches!(conn.read_head().await, Err(ExchangeError::Broken(_))), "two lengths");
    }

    #[tokio::test]
    async fn http10_and_close_answers_end_with_the_connection_and_are_not_reused() {
        let (mut conn, _s) = answering(vec![b"HTTP/1.0 200 OK\r\n\r\nuntil ", b"close"]).await;
        conn.send("/invocations", &headers(&HeaderValue::from_static("a/b")), b"x").await.unwrap();
        let head = conn.read_head().await.unwrap();
        assert_eq!(head.framing, Framing::UntilClose);
        assert_eq!(conn.read_body(&head, 100).await.unwrap(), "until close");
        assert!(!conn.reusable_after(&head));

        let (mut conn, _s) =
            answering(vec![b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbusy"]).await;
        conn.send("/invocations", &headers(&HeaderValue::from_static("a/b")), b"x").await.unwrap();
        let head = conn.read_head().await.unwrap();
        assert_eq!(head.status, 503, "the 100 Continue is skipped");
        assert_eq!(conn.read_body(&head, 100).await.unwrap(), "busy");
        assert!(!conn.reusable_after(&head));
    }
}
