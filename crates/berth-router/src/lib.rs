//! The request path: parse → pick variant → pick instance → forward.
//!
//! The [`RoutingTable`] is read on every request without a lock (an `ArcSwap` of immutable
//! routes); the controller publishes a new route for an endpoint whenever its weights or
//! instances change, so a change applies to the very next request and never to one in flight.

mod forward;
mod pool;
mod table;

pub use forward::{Forwarder, InvokeError, InvokeRequest, InvokeResponse};
pub use table::{EndpointRoute, RoutingTable, VariantRoute};

use std::sync::Arc;

/// Routes invocations of endpoints to their instances.
pub struct Router {
    table: Arc<RoutingTable>,
    forwarder: Forwarder,
}

/// How many instances one request may try when an instance cannot be reached (it crashed or
/// is being replaced); requests are only retried when they never reached a container.
const MAX_ATTEMPTS: usize = 3;

impl Router {
    pub fn new(table: Arc<RoutingTable>, forwarder: Forwarder) -> Self {
        Router { table, forwarder }
    }

    pub fn table(&self) -> &Arc<RoutingTable> {
        &self.table
    }

    pub async fn invoke(&self, endpoint: &str, req: InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        let mut last_err = None;
        for _ in 0..MAX_ATTEMPTS {
            // Reload the route each attempt: a retry after a failed connect should see the
            // instances the controller has published since.
            let route = self.table.get(endpoint).ok_or(InvokeError::EndpointNotFound)?;
            let variant = route.pick_variant(req.target_variant.as_deref(), fastrand::f64())?;
            let Some((slot, in_flight)) = variant.pick_instance() else {
                return Err(InvokeError::NoHealthyInstance { variant: variant.name.clone() });
            };
            match self.forwarder.forward(&slot, &variant.name, &req).await {
                Err(InvokeError::Unreachable { variant, message }) => {
                    drop(in_flight);
                    tracing::debug!(instance = %slot.id, %message, "instance unreachable; trying another");
                    last_err = Some(InvokeError::Unreachable { variant, message });
                }
                other => return other,
            }
        }
        Err(last_err.expect("at least one attempt was made"))
    }
}
