//! The canonical request of SigV4: what the signature covers, rebuilt from what arrived — the
//! method, the path (dot segments removed, each segment encoded again as the SDKs do), the sorted
//! query, the signed headers (values trimmed, inner spaces folded) and the body's SHA-256.

use super::{AuthError, SignedRequest};
use sha2::{Digest, Sha256};

pub(super) fn canonical_request(req: &SignedRequest<'_>, signed_headers: &str) -> Result<String, AuthError> {
    let mut out = String::with_capacity(256 + req.path.len());
    out.push_str(req.method);
    out.push('\n');
    encode_into(&mut out, &remove_dot_segments(req.path), true);
    out.push('\n');
    canonical_query(&mut out, req.query.unwrap_or(""));
    out.push('\n');
    let mut previous = "";
    for name in signed_headers.split(';') {
        // Signed header names come lower-case and sorted; anything else was not signed by an SDK.
        if name.is_empty() || name <= previous || name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(AuthError::BadSignature);
        }
        previous = name;
        out.push_str(name);
        out.push(':');
        let mut first = true;
        for value in req.headers.get_all(name) {
            if !first {
                out.push(',');
            }
            first = false;
            let value = value.to_str().map_err(|_| AuthError::BadSignature)?;
            // Trimmed, with runs of spaces collapsed to one.
            let mut words = value.split_ascii_whitespace();
            if let Some(w) = words.next() {
                out.push_str(w);
                for w in words {
                    out.push(' ');
                    out.push_str(w);
                }
            }
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(signed_headers);
    out.push('\n');
    out.push_str(&hex::encode(Sha256::digest(req.body)));
    Ok(out)
}

/// Query pairs decoded, encoded again the way SigV4 wants, and sorted by key, then value.
fn canonical_query(out: &mut String, query: &str) {
    if query.is_empty() {
        return;
    }
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let mut key = String::new();
            let mut value = String::new();
            encode_into(&mut key, &percent_decode(k), false);
            encode_into(&mut value, &percent_decode(v), false);
            (key, value)
        })
        .collect();
    pairs.sort();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
}

/// Percent-encodes every byte but the unreserved ones (and `/` in paths). A path arrives
/// encoded once already and is encoded again, as SigV4 does for every service but S3.
fn encode_into(out: &mut String, s: &str, keep_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(if c == b'+' { b' ' } else { c });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/a/./b/../c` → `/a/c`, keeping a trailing slash; `""` → `/`.
fn remove_dot_segments(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.split('/').any(|s| s == "." || s == "..") {
        return if path.is_empty() { "/".into() } else { path.into() };
    }
    let mut segments: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "." => {}
            ".." => {
                segments.pop();
            }
            s if !s.is_empty() => segments.push(s),
            _ => {}
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    if path.ends_with('/') && out != "/" {
        out.push('/');
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries_canonicalise_as_sdks_do() {
        assert_eq!(remove_dot_segments(""), "/");
        assert_eq!(remove_dot_segments("/a/./b/../c/"), "/a/c/");
        let mut s = String::new();
        encode_into(&mut s, "/endpoints/a%20b/invocations", true);
        assert_eq!(s, "/endpoints/a%2520b/invocations");
        let mut q = String::new();
        canonical_query(&mut q, "b=2&a=%7E&a=1&c");
        assert_eq!(q, "a=1&a=~&b=2&c=");
    }
}
