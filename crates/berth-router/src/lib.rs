//! The request path: parse → pick variant → pick instance → forward.
//!
//! The [`RoutingTable`] is read on every request without a lock (an `ArcSwap` of immutable
//! routes); the controller publishes a new route for an endpoint whenever its weights or
//! instances change, so a change applies to the very next request and never to one in flight.

mod forward;
mod pool;
mod table;

pub use forward::{Forwarder, InvokeError, InvokeRequest, InvokeResponse};
pub use table::{EndpointRoute, GreenRoute, RoutingTable, VariantRoute};

use berth_metrics::Outcome;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Routes invocations of endpoints to their instances.
pub struct Router {
    table: Arc<RoutingTable>,
    forwarder: Forwarder,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
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
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Reload the route each attempt: a retry after a failed connect should see the
            // instances the controller has published since.
            let route = self.table.get(endpoint).ok_or(InvokeError::EndpointNotFound)?;
            let variant = route.pick_variant(req.target_variant.as_deref(), fastrand::f64())?;
            let Some((slot, in_flight)) = variant.pick_instance() else {
                variant.metrics.record(Outcome::Unavailable, None, micros(started.elapsed()));
                return Err(InvokeError::NoHealthyInstance { variant: variant.name.clone() });
            };
            let sent = Instant::now();
            let result = self.forwarder.forward(&slot, &variant.name, &req).await;
            let model = sent.elapsed();
            drop(in_flight);
            let (outcome, model) = match &result {
                Err(InvokeError::Unreachable { message, .. }) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(instance = %slot.id, %message, "instance unreachable; trying another");
                    continue;
                }
                Err(InvokeError::Unreachable { .. }) => (Outcome::Unavailable, None),
                Ok(_) => (Outcome::Success, Some(model)),
                Err(InvokeError::ModelError { status, .. }) if *status < 500 => (Outcome::ModelClientError, Some(model)),
                Err(_) => (Outcome::ModelServerError, Some(model)),
            };
            let overhead = started.elapsed().saturating_sub(model.unwrap_or_default());
            variant.metrics.record(outcome, model.map(micros), micros(overhead));
            return result;
        }
    }
}
