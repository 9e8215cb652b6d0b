//! AWS Signature Version 4, header form, checked on the server side.
//!
//! The client's `Authorization` header names its access key, the credential scope (date,
//! region, service), the headers it signed and the signature. berth rebuilds the canonical
//! request from what arrived — method, path, query, the signed headers, the SHA-256 of the body —
//! derives the signing key from the principal's secret, and compares signatures in constant time.
//! Any region and service name in the scope are accepted: they are part of what is signed, so a
//! client cannot change them without knowing the secret.

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod canonical;

use canonical::canonical_request;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far the request's time may be from the server's, as AWS allows.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Who may call berth: access key id → principal.
#[derive(Default)]
pub struct Principals {
    by_key: HashMap<String, Principal>,
}

/// One key pair, named by the credentials-file profile it came from.
pub struct Principal {
    pub name: String,
    secret: String,
}

// Secrets never reach a log line.
impl std::fmt::Debug for Principals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_key.values().map(|p| &p.name)).finish()
    }
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Principals {
    pub fn insert(&mut self, access_key_id: String, secret: String, name: String) {
        self.by_key.insert(access_key_id, Principal { name, secret });
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The principal whose key pair this is, comparing the secret in constant time.
    pub fn check_secret(&self, access_key_id: &str, secret: &str) -> Option<&Principal> {
        let p = self.by_key.get(access_key_id)?;
        let equal: bool = subtle::ConstantTimeEq::ct_eq(p.secret.as_bytes(), secret.as_bytes()).into();
        equal.then_some(p)
    }
}

/// Why a request's signature was not accepted; each maps to the error AWS answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not a complete SigV4 header.
    Incomplete(String),
    UnknownKey,
    BadSignature,
    /// The request's time is more than 15 minutes off the server's.
    Expired(String),
}

impl AuthError {
    /// The error code, for JSON and CBOR protocols (`query` false) or the query protocol.
    pub fn code(&self, query: bool) -> &'static str {
        match (self, query) {
            (AuthError::Missing, false) => "MissingAuthenticationTokenException",
            (AuthError::Missing, true) => "MissingAuthenticationToken",
            (AuthError::Incomplete(_), false) => "IncompleteSignatureException",
            (AuthError::Incomplete(_), true) => "IncompleteSignature",
            (AuthError::UnknownKey, false) => "UnrecognizedClientException",
            (AuthError::UnknownKey, true) => "InvalidClientTokenId",
            (AuthError::BadSignature | AuthError::Expired(_), false) => "InvalidSignatureException",
            (AuthError::BadSignature | AuthError::Expired(_), true) => "SignatureDoesNotMatch",
        }
    }

    pub fn message(&self) -> String {
        match self {
            AuthError::Missing => "Missing Authentication Token".into(),
            AuthError::Incomplete(m) | AuthError::Expired(m) => m.clone(),
            AuthError::UnknownKey => "The security token included in the request is invalid.".into(),
            AuthError::BadSignature => "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".into(),
        }
    }
}

/// What of a request the signature covers. `path` and `query` are as sent (percent-encoded).
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
struct Authorization<'a> {
    access_key_id: &'a str,
    scope_date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: Vec<u8>,
}

/// Checks a request's signature; returns the principal that signed it.
pub fn verify<'p>(req: &SignedRequest<'_>, principals: &'p Principals, now: SystemTime) -> Result<&'p Principal, AuthError> {
    let header = req.headers.get(http::header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    let header = header.to_str().map_err(|_| AuthError::Incomplete("The Authorization header is not valid text.".into()))?;
    let auth = parse_authorization(header)?;
    let amz_date = req
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AuthError::Incomplete("Authorization header requires existence of a 'X-Amz-Date' header.".into()))?;
    let signed_at = parse_amz_date(amz_date)
        .ok_or_else(|| AuthError::Incomplete(format!("X-Amz-Date '{amz_date}' is not of the form YYYYMMDD'T'HHMMSS'Z'.")))?;
    check_skew(amz_date, signed_at, now)?;
    if !amz_date.starts_with(auth.scope_date) || auth.scope_date.len() != 8 {
        return Err(AuthError::BadSignature);
    }
    if !auth.signed_headers.split(';').any(|h| h == "host") {
        return Err(AuthError::Incomplete("'Host' must be a signed header.".into()));
    }
    if let Some(name) = unsigned_but_required(req.headers, auth.signed_headers) {
        return Err(AuthError::Incomplete(format!(
            "Header '{name}' must be signed: the signature covers every x-amz-*, x-amzn-* and Content-Type header a request carries, as AWS's SDKs sign them."
        )));
    }
    let principal = principals.by_key.get(auth.access_key_id).ok_or(AuthError::UnknownKey)?;

    let canonical = canonical_request(req, auth.signed_headers)?;
    let scope = [auth.scope_date, auth.region, auth.service];
    // Constant-time comparison.
    signature(&principal.secret, scope, amz_date, &canonical).verify_slice(&auth.signature).map_err(|_| AuthError::BadSignature)?;
    Ok(principal)
}

/// Whether a request carries a SigV4 `Authorization` header (rather than none, or basic auth).
pub fn is_signed(headers: &HeaderMap) -> bool {
    headers.get(http::header::AUTHORIZATION).is_some_and(|v| v.as_bytes().starts_with(ALGORITHM.as_bytes()))
}

/// A header the request carries that changes what it does but is not among `signed_headers`:
/// every `x-amz-*` and `x-amzn-*` header (a runtime call's TargetVariant, CustomAttributes,
/// InferenceId, ...) and `Content-Type`, which every AWS SDK signs. `x-amzn-trace-id` is left out
/// (SDKs leave it unsigned: proxies rewrite it), as is `x-amz-content-sha256` (berth hashes the
/// body itself).
fn unsigned_but_required<'h>(headers: &'h HeaderMap, signed_headers: &str) -> Option<&'h str> {
    headers.keys().map(|k| k.as_str()).find(|name| {
        let covered = name.starts_with("x-amz") || *name == "content-type";
        let exempt = matches!(*name, "x-amzn-trace-id" | "x-amz-content-sha256");
        covered && !exempt && !signed_headers.split(';').any(|h| h == *name)
    })
}

fn parse_authorization(header: &str) -> Result<Authorization<'_>, AuthError> {
    let incomplete =
        |what: &str| AuthError::Incomplete(format!("Authorization header requires '{what}' parameter. Authorization={header}"));
    let rest = header
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or_else(|| AuthError::Incomplete(format!("Authorization header must use {ALGORITHM} (AWS Signature Version 4).")))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=').unwrap_or((part.trim(), ""));
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let credential = credential.ok_or_else(|| incomplete("Credential"))?;
    let signed_headers = signed_headers.filter(|s| !s.is_empty()).ok_or_else(|| incomplete("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| incomplete("Signature"))?;
    let (access_key_id, scope) = credential.split_once('/').ok_or_else(|| incomplete("Credential"))?;
    let parts: Vec<&str> = scope.split('/').collect();
    let [scope_date, region, service, "aws4_request"] = parts[..] else {
        return Err(AuthError::Incomplete(format!(
            "Credential should be scoped to a valid date, region and service, ending in aws4_request: '{credential}'."
        )));
    };
    let signature = hex::decode(signature).ok().filter(|s| s.len() == 32).ok_or(AuthError::BadSignature)?;
    Ok(Authorization { access_key_id, scope_date, region, service, signed_headers, signature })
}

/// `20261128T093000Z` → the time it names.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let t = date.with_hms(u8::try_from(hour).ok()?, u8::try_from(minute).ok()?, u8::try_from(second).ok()?).ok()?.assume_utc();
    let secs = u64::try_from(t.unix_timestamp()).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

fn format_amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let dt = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", dt.year(), u8::from(dt.month()), dt.day(), dt.hour(), dt.minute(), dt.second())
}

/// AWS's answers for a request signed too long ago or too far ahead.
fn check_skew(amz_date: &str, signed_at: SystemTime, now: SystemTime) -> Result<(), AuthError> {
    if signed_at + MAX_SKEW < now {
        return Err(AuthError::Expired(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
            format_amz_date(now - MAX_SKEW),
            format_amz_date(now)
        )));
    }
    if signed_at > now + MAX_SKEW {
        return Err(AuthError::Expired(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)",
            format_amz_date(now + MAX_SKEW),
            format_amz_date(now)
        )));
    }
    Ok(())
}

fn hmac(key: &[u8], data: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data.as_bytes());
    mac
}

/// The HMAC of the string to sign under the key derived from `secret` for the credential
/// scope (`[date, region, service]`): finalized it is the signature, or it verifies one.
fn signature(secret: &str, [date, region, service]: [&str; 3], amz_date: &str, canonical: &str) -> Hmac<Sha256> {
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date).finalize().into_bytes();
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part).finalize().into_bytes();
    }
    let digest = hex::encode(Sha256::digest(canonical.as_bytes()));
    hmac(&key, &format!("{ALGORITHM}\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{digest}"))
}

/// Signs a request as an SDK would (for berth's own tests and benchmarks).
#[doc(hidden)]
pub fn sign_for_tests(req: &SignedRequest<'_>, access_key_id: &str, secret: &str, region: &str, service: &str, now: SystemTime) -> String {
    let amz_date = format_amz_date(now);
    let date = &amz_date[..8];
    let mut names: Vec<String> = req.headers.keys().map(|k| k.as_str().to_string()).collect();
    names.sort();
    names.dedup();
    let signed_headers = names.join(";");
    let canonical = canonical_request(req, &signed_headers).expect("headers are text");
    let mac = signature(secret, [date, region, service], &amz_date, &canonical);
    format!(
        "{ALGORITHM} Credential={access_key_id}/{date}/{region}/{service}/aws4_request, SignedHeaders={signed_headers}, Signature={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const KEY: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn principals() -> Principals {
        let mut p = Principals::default();
        p.insert(KEY.into(), SECRET.into(), "default".into());
        p
    }

    fn at(s: &str) -> SystemTime {
        parse_amz_date(s).unwrap()
    }

    /// AWS's published SigV4 test suite: `get-vanilla` and `post-vanilla`.
    #[test]
    fn aws_test_suite_vectors_verify() {
        for (method, signature) in [
            ("GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
            ("POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
            headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
            let auth = format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}");
            headers.insert("authorization", HeaderValue::from_str(&auth).unwrap());
            let req = SignedRequest { method, path: "/", query: None, headers: &headers, body: b"" };
            let p = principals();
            assert_eq!(verify(&req, &p, at("20150830T123600Z")).unwrap().name, "default", "{method}");
        }
    }

    fn signed(body: &[u8], now: SystemTime) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        headers.insert("x-amz-date", HeaderValue::from_str(&format_amz_date(now)).unwrap());
        headers.insert("x-amz-target", HeaderValue::from_static("SageMaker.ListModels"));
        let req = SignedRequest { method: "POST", path: "/endpoints/a%20b/invocations", query: Some("x=1&a=b"), headers: &headers, body };
        let auth = sign_for_tests(&req, KEY, SECRET, "us-east-1", "sagemaker", now);
        headers.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        headers
    }

    #[test]
    fn what_was_signed_verifies_and_any_change_does_not() {
        let now = at("20261128T120000Z");
        let p = principals();
        let headers = signed(b"{}", now);
        let req = |body: &'static [u8], path: &'static str, headers: &'static HeaderMap| SignedRequest {
            method: "POST",
            path,
            query: Some("a=b&x=1"),
            headers,
            body,
        };
        let headers: &'static HeaderMap = Box::leak(Box::new(headers));
        assert!(verify(&req(b"{}", "/endpoints/a%20b/invocations", headers), &p, now).is_ok());
        assert_eq!(verify(&req(b"{ }", "/endpoints/a%20b/invocations", headers), &p, now).unwrap_err(), AuthError::BadSignature);
        assert_eq!(verify(&req(b"{}", "/endpoints/other/invocations", headers), &p, now).unwrap_err(), AuthError::BadSignature);
        let mut changed = headers.clone();
        changed.insert("x-amz-target", HeaderValue::from_static("SageMaker.DeleteModel"));
        let r = SignedRequest { headers: &changed, ..req(b"{}", "/endpoints/a%20b/invocations", headers) };
        assert_eq!(verify(&r, &p, now).unwrap_err(), AuthError::BadSignature);
        // An unsigned header may be added (proxies add some)...
        let mut extra = headers.clone();
        extra.insert("user-agent", HeaderValue::from_static("x"));
        extra.insert("x-amzn-trace-id", HeaderValue::from_static("Root=1-abc"));
        let r = SignedRequest { headers: &extra, ..req(b"{}", "/endpoints/a%20b/invocations", headers) };
        assert!(verify(&r, &p, now).is_ok());
        // ...but not one that changes what the request does: SageMaker's runtime headers, any
        // other x-amz header, the content type.
        for (name, value) in [
            ("x-amzn-sagemaker-target-variant", "Variant2"),
            ("x-amzn-sagemaker-custom-attributes", "user=eve"),
            ("x-amz-security-token", "t"),
            ("content-type", "text/csv"),
        ] {
            let mut smuggled = headers.clone();
            smuggled.insert(name, HeaderValue::from_static(value));
            let r = SignedRequest { headers: &smuggled, ..req(b"{}", "/endpoints/a%20b/invocations", headers) };
            let e = verify(&r, &p, now).unwrap_err();
            assert!(matches!(&e, AuthError::Incomplete(m) if m.contains(name)), "{name}: {e:?}");
        }
    }

    #[test]
    fn keys_times_and_malformed_headers_get_aws_errors() {
        let now = at("20261128T120000Z");
        let headers = signed(b"", now);
        fn req(h: &HeaderMap) -> SignedRequest<'_> {
            SignedRequest { method: "POST", path: "/endpoints/a%20b/invocations", query: Some("x=1&a=b"), headers: h, body: b"" }
        }
        assert!(verify(&req(&headers), &principals(), now).is_ok());
        assert_eq!(verify(&req(&headers), &Principals::default(), now).unwrap_err(), AuthError::UnknownKey);
        let mut wrong = Principals::default();
        wrong.insert(KEY.into(), "not-the-secret".into(), "x".into());
        assert_eq!(verify(&req(&headers), &wrong, now).unwrap_err(), AuthError::BadSignature);
        let late = now + Duration::from_secs(16 * 60);
        let e = verify(&req(&headers), &principals(), late).unwrap_err();
        assert_eq!(e.code(false), "InvalidSignatureException");
        assert!(e.message().starts_with("Signature expired: 20261128T120000Z is now earlier than 20261128T120100Z"), "{}", e.message());
        let early = now - Duration::from_secs(16 * 60);
        assert!(verify(&req(&headers), &principals(), early).unwrap_err().message().starts_with("Signature not yet current"));
        assert!(verify(&req(&headers), &principals(), now + Duration::from_secs(14 * 60)).is_ok());

        let mut missing = headers.clone();
        missing.remove("authorization");
        assert_eq!(verify(&req(&missing), &principals(), now).unwrap_err(), AuthError::Missing);
        let sig = "0".repeat(64);
        for bad in [
            "Basic abc".to_string(),
            format!("AWS4-HMAC-SHA256 SignedHeaders=host, Signature={sig}"),
            format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/sagemaker, SignedHeaders=host, Signature={sig}"),
            format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/sagemaker/aws4_request, SignedHeaders=x-amz-date, Signature={sig}"),
        ] {
            let mut h = headers.clone();
            h.insert("authorization", HeaderValue::from_str(&bad).unwrap());
            assert!(matches!(verify(&req(&h), &principals(), now).unwrap_err(), AuthError::Incomplete(_)), "{bad}");
        }
    }

    #[test]
    fn secrets_compare_whole() {
        let p = principals();
        assert!(p.check_secret(KEY, SECRET).is_some());
        assert!(p.check_secret(KEY, &SECRET[..10]).is_none());
        assert!(p.check_secret("other", SECRET).is_none());
    }
}
