//! The one place that decides what becomes of an invocation, whichever server read it: berth's
//! own HTTP/1.1 server (`invocation_server.rs`), hyper's connection ahead of the router
//! (`invocations.rs`), or the router's runtime route behind the gate (`gate.rs`, which checks a
//! signed invocation's signature over the body it reads). Each of them asks here:
//!
//! - [`unsigned`]: whether invocations skip the router (no authentication is configured);
//! - [`endpoint_of`]: whether a path is an invocation the fast routes take, and of which endpoint;
//! - [`refusal`]: the gate's `Host` and `Origin` checks, the same as for every other route;
//! - [`too_large`], [`bounded`] and [`LIMIT`]: the body's limit, deadline and budget;
//! - [`route`]: InvokeEndpoint through the router.

use crate::bodies::{Budgeted, Claim, Timed};
use crate::gate::GateHeaders;
use crate::protocol::Protocol;
use crate::runtime::RuntimeHeaders;
use crate::{Edge, Security};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::Limited;
use std::sync::Arc;

/// The largest invocation body (SageMaker's 6 MB); also the runtime protocol's limit at the gate.
pub(crate) const LIMIT: usize = crate::MAX_INVOCATION_BYTES;

/// Whether invocations are answered ahead of the router: only when none is signed (a signed
/// one goes through the gate, which reads its body to check the signature).
pub(crate) fn unsigned(security: &Security) -> bool {
    security.unsigned_invocations()
}

/// The endpoint of an invocation path the fast routes take: `/endpoints/{name}/invocations`
/// with a name of plain characters (anything to decode goes the general way).
pub(crate) fn endpoint_of(path: &str) -> Option<&str> {
    let name = path.strip_prefix("/endpoints/")?.strip_suffix("/invocations")?;
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')).then_some(name)
}

/// The gate's checks of an invocation's `Host` and `Origin`: the refusal to send, if any.
pub(crate) fn refusal(security: &Security, method: &Method, seen: &GateHeaders<'_>) -> Option<Response> {
    crate::gate::refusal(security, Protocol::Runtime, method, seen)
}

/// The answer to a body announced past [`LIMIT`] (the connection then closes), if it is.
pub(crate) fn too_large(headers: &HeaderMap) -> Option<Response> {
    crate::bodies::too_large(Protocol::Runtime, headers, LIMIT)
}

/// An invocation's body as it is read: within [`LIMIT`], the body timeout, and the budget of
/// bodies in flight (`claim`, held until the invocation is answered).
pub(crate) fn bounded<B>(security: &Security, body: B, claim: Arc<Claim>) -> Budgeted<Timed<Limited<B>>> {
    crate::bodies::bounded(body, LIMIT, security.body_timeout, claim)
}

/// InvokeEndpoint of an admitted invocation, its body read.
pub(crate) async fn route(edge: &Edge, endpoint: &str, headers: RuntimeHeaders<'_>, body: Bytes) -> Response {
    crate::runtime::answer_with(edge, endpoint, headers, body).await
}

#[cfg(test)]
mod tests {
    use super::endpoint_of;

    #[test]
    fn only_plain_invocation_paths_take_the_fast_route() {
        assert_eq!(endpoint_of("/endpoints/demo-2/invocations"), Some("demo-2"));
        for other in [
            "/endpoints//invocations",
            "/endpoints/a%2Fb/invocations",
            "/endpoints/a/b/invocations",
            "/endpoints/demo",
            "/",
            "/endpoints/demo/invocations/",
        ] {
            assert_eq!(endpoint_of(other), None, "{other}");
        }
    }
}
