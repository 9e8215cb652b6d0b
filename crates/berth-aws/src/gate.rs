//! What every request passes before a handler sees it: the `Host` it names, the `Origin` it
//! comes from, its body (read with the route's limit and a deadline, never more), and who signed
//! it — SigV4 on the AWS APIs, HTTP basic auth on berth's own routes when authentication is on.

use crate::bodies::{body_error, bounded, closing, read_body, too_large, Claim};
use crate::protocol::Protocol;
use crate::sigv4::{self, AuthError, Principals, SignedRequest};
use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// How requests are let in.
pub struct Security {
    /// Who may call; None when authentication is off (`--auth none`).
    pub principals: Option<Arc<Principals>>,
    pub hosts: AllowedHosts,
    /// Whether berth serves HTTPS (berth's own origin is then `https://host`).
    pub tls: bool,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// The bytes of request bodies held at once, across connections (`--max-body-memory`).
    pub bodies: Arc<crate::bodies::BodyBudget>,
}

impl Security {
    /// Whether invocations come unsigned (authentication off): they are then answered ahead of
    /// the router, their bodies not read here.
    pub(crate) fn unsigned_invocations(&self) -> bool {
        self.principals.is_none()
    }
}

/// The names a request's `Host` may carry: loopback names, the listen address, and the
/// operator's `--allowed-host`s (`*` allows any). Anything else is refused, which keeps a web
/// page that rebinds its own DNS name to 127.0.0.1 from reaching berth.
pub struct AllowedHosts {
    any: bool,
    names: Vec<String>,
}

impl AllowedHosts {
    pub fn new(listen: SocketAddr, extra: &[String]) -> Self {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "[::1]"].iter().map(|s| s.to_string()).collect();
        if !listen.ip().is_unspecified() {
            names.push(match listen.ip() {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            });
        }
        let mut any = false;
        for h in extra {
            let h = h.trim().to_ascii_lowercase();
            if h == "*" {
                any = true;
            } else if !h.is_empty() {
                names.push(host_name(&h).to_string());
            }
        }
        AllowedHosts { any, names }
    }

    pub fn allows(&self, host: &str) -> bool {
        let name = host_name(host);
        self.any || self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// `name:port` → `name`; `[v6]:port` → `[v6]`.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    // The port is short: look for its colon from the end.
    match host.bytes().rposition(|b| b == b':') {
        Some(i) if host.as_bytes()[i + 1..].iter().all(u8::is_ascii_digit) => &host[..i],
        _ => host,
    }
}

/// The gate as a tower layer in front of every route: no allocation for a request it passes
/// through, one boxed future for a request whose body it must read first.
#[derive(Clone)]
pub(crate) struct GateLayer {
    security: Arc<Security>,
}

impl GateLayer {
    pub(crate) fn new(security: Arc<Security>) -> Self {
        GateLayer { security }
    }
}

impl<S> tower_layer::Layer<S> for GateLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate { inner, security: self.security.clone() }
    }
}

#[derive(Clone)]
pub(crate) struct Gate<S> {
    inner: S,
    security: Arc<Security>,
}

impl<S> tower_service::Service<Request> for Gate<S>
where
    S: tower_service::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = GateFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let security = &self.security;
        let protocol = Protocol::of(req.method(), req.uri().path(), req.headers());
        if let Some(refused) = refusal(security, protocol, req.method(), &GateHeaders::of(req.headers())) {
            return GateFuture::Answer { response: Some(refused) };
        }
        match protocol {
            // Unsigned invocations, the hot path: no buffering here; the handler reads the body
            // through the limit and the deadline.
            Protocol::Runtime if security.unsigned_invocations() => {
                if let Some(refused) = too_large(protocol, req.headers(), protocol.body_limit()) {
                    return GateFuture::Answer { response: Some(refused) };
                }
                let (parts, body) = req.into_parts();
                let claim = security.bodies.claim();
                let body = Body::new(bounded(body, protocol.body_limit(), security.body_timeout, claim.clone()));
                GateFuture::Pass { inner: self.inner.call(Request::from_parts(parts, body)), held: Some(claim) }
            }
            // The other AWS protocols read their bodies here, to answer oversize and late bodies
            // in their own shapes, and to check signatures over them.
            p if p.is_aws() => {
                // The inner service that was polled ready goes with this request; a clone stays.
                let inner = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, inner);
                let security = security.clone();
                GateFuture::Checking { future: Box::pin(buffer_and_verify(security, protocol, req, inner)) }
            }
            // berth's own routes take SigV4 as the AWS APIs do (the berth CLI signs them: it
            // never sends the secret), or basic auth (browsers, Prometheus).
            Protocol::Berth if security.principals.is_some() && sigv4::is_signed(req.headers()) => {
                let inner = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, inner);
                let security = security.clone();
                GateFuture::Checking { future: Box::pin(buffer_and_verify(security, protocol, req, inner)) }
            }
            Protocol::Berth if !basic_auth_passes(security, &req) => {
                let mut resp = protocol.error(
                    StatusCode::UNAUTHORIZED,
                    "UnrecognizedClientException",
                    "InvalidClientTokenId",
                    "berth's own routes take AWS Signature Version 4, or HTTP basic authentication, with a key pair from berth's credentials file (access key id as the user name, secret access key as the password).".into(),
                );
                resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"berth\", charset=\"UTF-8\""));
                GateFuture::Answer { response: Some(resp) }
            }
            _ => GateFuture::Pass { inner: self.inner.call(req), held: None },
        }
    }
}

pin_project_lite::pin_project! {
    /// The gate's answer: the route's own, one the gate gives, or the route's after the body
    /// was read and its signature checked.
    #[project = GateFutureProj]
    pub(crate) enum GateFuture<F> {
        // `held`: the request's claim on the body budget, given back once it is answered.
        Pass { #[pin] inner: F, held: Option<Arc<Claim>> },
        Answer { response: Option<Response> },
        Checking { future: Pin<Box<dyn Future<Output = Response> + Send>> },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for GateFuture<F> {
    type Output = Result<Response, Infallible>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GateFutureProj::Pass { inner, .. } => inner.poll(cx),
            GateFutureProj::Answer { response } => Poll::Ready(Ok(response.take().expect("a gate answer is polled once"))),
            GateFutureProj::Checking { future } => future.as_mut().poll(cx).map(Ok),
        }
    }
}

/// The answer refusing a request whose `Host` berth does not serve, or that changes state from
/// another origin than berth's own (or from no browser); None when it may pass.
/// The headers the gate decides on (the first of each).
#[derive(Default, Clone, Copy)]
pub(crate) struct GateHeaders<'h> {
    pub host: Option<&'h HeaderValue>,
    pub origin: Option<&'h HeaderValue>,
    pub sec_fetch_site: Option<&'h HeaderValue>,
}

impl<'h> GateHeaders<'h> {
    pub(crate) fn of(headers: &'h HeaderMap) -> Self {
        GateHeaders { host: headers.get(HOST), origin: headers.get(ORIGIN), sec_fetch_site: headers.get(&SEC_FETCH_SITE) }
    }

    /// Keeps `value` if `name` is one of the gate's headers (for a caller that reads all headers
    /// in one pass); false otherwise.
    pub(crate) fn keep(&mut self, name: &str, value: &'h HeaderValue) -> bool {
        let slot = match name {
            "host" => &mut self.host,
            "origin" => &mut self.origin,
            "sec-fetch-site" => &mut self.sec_fetch_site,
            _ => return false,
        };
        slot.get_or_insert(value);
        true
    }
}

pub(crate) fn refusal(security: &Security, protocol: Protocol, method: &Method, seen: &GateHeaders) -> Option<Response> {
    let forbidden = |message: String| protocol.error(StatusCode::FORBIDDEN, "AccessDeniedException", "AccessDenied", message);
    let Some(host) = seen.host.and_then(|h| h.to_str().ok()) else {
        return Some(protocol.error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "InvalidParameterValue",
            "The request has no Host header.".into(),
        ));
    };
    if !security.hosts.allows(host) {
        tracing::warn!(host, "request refused: Host is not one berth serves");
        return Some(forbidden(format!(
            "berth does not serve host '{host}'. Start berth with --allowed-host {} to serve requests for it.",
            host_name(host)
        )));
    }
    same_origin(method, seen, host, security.tls).err().map(|why| {
        tracing::warn!(why, "request refused: cross-origin");
        forbidden(why)
    })
}

/// Reads an AWS request's body with its protocol's limit and the body timeout, checks its
/// signature when authentication is on, and hands it on.
async fn buffer_and_verify<S>(security: Arc<Security>, protocol: Protocol, req: Request, mut inner: S) -> Response
where
    S: tower_service::Service<Request, Response = Response, Error = Infallible>,
{
    let (parts, body) = req.into_parts();
    let limit = protocol.body_limit();
    // Held until the request is answered.
    let claim = security.bodies.claim();
    let body = match read_body(body, &parts.headers, limit, security.body_timeout, &claim).await {
        Ok(b) => b,
        Err(e) => return closing(body_error(protocol, e, limit)),
    };
    if let Some(principals) = &security.principals {
        let signed = SignedRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
            body: &body,
        };
        if let Err(e) = sigv4::verify(&signed, principals, SystemTime::now()) {
            tracing::info!(code = e.code(false), path = parts.uri.path(), "request refused: signature");
            return auth_error(protocol, &e);
        }
    }
    // An API call's body is decompressed only once its signature, over what was sent, is
    // checked; an invocation's body is the model's, passed on as sent.
    let mut parts = parts;
    let body = match protocol {
        Protocol::Runtime => body,
        _ => match crate::bodies::decoded(body, &parts.headers, limit * crate::bodies::MAX_GZIP_EXPANSION) {
            Ok(b) => {
                parts.headers.remove(axum::http::header::CONTENT_ENCODING);
                b
            }
            Err(e) => return closing(body_error(protocol, e, limit * crate::bodies::MAX_GZIP_EXPANSION)),
        },
    };
    match inner.call(Request::from_parts(parts, Body::from(body))).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// Requests that change state must come from berth's own origin, or from no browser at all.
/// (A browser can send a form to any address without asking first; the `Origin` it attaches
/// says where the page came from.)
fn same_origin(method: &Method, seen: &GateHeaders, host: &str, tls: bool) -> Result<(), String> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    if let Some(site) = seen.sec_fetch_site.and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return Err(format!("berth refuses state-changing requests from other sites (Sec-Fetch-Site: {site})."));
        }
    }
    let Some(origin) = seen.origin else { return Ok(()) };
    let origin = origin.to_str().unwrap_or("");
    let scheme = if tls { "https://" } else { "http://" };
    let own = origin.len() == scheme.len() + host.len()
        && origin[..scheme.len()].eq_ignore_ascii_case(scheme)
        && origin[scheme.len()..].eq_ignore_ascii_case(host);
    if own {
        Ok(())
    } else {
        Err(format!("berth refuses state-changing requests from origin '{origin}'; only pages served by berth itself may send them."))
    }
}

fn auth_error(protocol: Protocol, e: &AuthError) -> Response {
    let query = protocol == Protocol::CloudWatchQuery;
    let code = e.code(query);
    // Each protocol's parser takes its code from where it looks; the query-protocol code is
    // the same string for both slots there.
    protocol.error(StatusCode::FORBIDDEN, e.code(false), if query { code } else { e.code(true) }, e.message())
}

/// Whether a request to berth's own routes may pass: always without authentication, else with
/// HTTP basic auth by a key pair of the credentials file.
fn basic_auth_passes(security: &Security, req: &Request) -> bool {
    let Some(principals) = &security.principals else { return true };
    let Some(value) = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else { return false };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
    let Ok(text) = std::str::from_utf8(&decoded) else { return false };
    let Some((key, secret)) = text.split_once(':') else { return false };
    principals.check_secret(key, secret).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_loopback_names_the_listen_address_and_allowed_ones() {
        let hosts = AllowedHosts::new("10.1.2.3:8080".parse().unwrap(), &["Berth.Example.com".into()]);
        for ok in ["localhost:8080", "127.0.0.1:1", "[::1]:9", "10.1.2.3:8080", "berth.example.com", "BERTH.example.com:443", "localhost"] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for refused in ["evil.example:8080", "127.0.0.2", "localhost.evil.example", "[::2]:1", "", "0.0.0.0:8080"] {
            assert!(!hosts.allows(refused), "{refused}");
        }
        assert!(AllowedHosts::new("0.0.0.0:80".parse().unwrap(), &["*".into()]).allows("anything:1"));
        assert!(!AllowedHosts::new("0.0.0.0:80".parse().unwrap(), &[]).allows("0.0.0.0:80"));
    }

    fn request(method: Method, headers: &[(&'static str, &'static str)]) -> Request {
        let mut r = Request::new(Body::empty());
        *r.method_mut() = method;
        for (k, v) in headers {
            r.headers_mut().insert(*k, HeaderValue::from_static(v));
        }
        r
    }

    fn origin_check(r: &Request, host: &str, tls: bool) -> Result<(), String> {
        same_origin(r.method(), &GateHeaders::of(r.headers()), host, tls)
    }

    #[test]
    fn state_changing_requests_must_come_from_berths_own_origin() {
        let host = "127.0.0.1:8080";
        assert!(origin_check(&request(Method::POST, &[]), host, false).is_ok());
        assert!(origin_check(&request(Method::POST, &[("origin", "http://127.0.0.1:8080")]), host, false).is_ok());
        assert!(origin_check(&request(Method::POST, &[("origin", "https://127.0.0.1:8080")]), host, true).is_ok());
        assert!(origin_check(&request(Method::POST, &[("origin", "https://127.0.0.1:8080")]), host, false).is_err());
        assert!(origin_check(&request(Method::POST, &[("origin", "http://evil.example")]), host, false).is_err());
        assert!(origin_check(&request(Method::POST, &[("origin", "null")]), host, false).is_err());
        assert!(origin_check(&request(Method::POST, &[("origin", "http://127.0.0.1:8081")]), host, false).is_err());
        assert!(origin_check(&request(Method::POST, &[("sec-fetch-site", "cross-site")]), host, false).is_err());
        assert!(origin_check(&request(Method::POST, &[("sec-fetch-site", "same-site")]), host, false).is_err());
        assert!(origin_check(&request(Method::GET, &[("origin", "http://evil.example")]), host, false).is_ok());
    }
}
