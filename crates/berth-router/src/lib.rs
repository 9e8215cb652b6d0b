//! The request path: parse → pick variant → pick instance → forward.
//!
//! The [`RoutingTable`] is read on every request without a lock (an `ArcSwap` of immutable
//! routes); the controller publishes a new route for an endpoint whenever its weights or
//! instances change, so a change applies to the very next request and never to one in flight.

#![forbid(unsafe_code)]

mod capture;
mod forward;
mod h1;
mod pool;
mod serverless;
mod shadow;
mod sticky;
mod table;

pub use capture::{CaptureQueue, CaptureRecord, CaptureSettings, CAPTURE_QUEUE};
pub use forward::{Forwarder, InvokeError, InvokeRequest, InvokeResponse};
pub use serverless::{ServerlessRegistry, ServerlessState};
pub use shadow::{ShadowComparison, ShadowLog, ShadowRoute, ShadowStats, KEPT_COMPARISONS};
pub use sticky::{StickyKey, STICKY_KEY_TAG};
pub use table::{EndpointRoute, GreenRoute, RoutingTable, VariantRoute};

use berth_metrics::Outcome;
use bytes::Bytes;
use serverless::Admitted;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Routes invocations of endpoints to their instances.
pub struct Router {
    table: Arc<RoutingTable>,
    forwarder: Arc<Forwarder>,
    /// Shadow copies in flight, across endpoints (bounded: a slow shadow must not pile up work).
    shadows_in_flight: Arc<AtomicUsize>,
}

/// The longest a request waits for a serverless variant's cold start.
const COLD_START_WAIT: Duration = Duration::from_secs(120);

/// The most shadow copies in flight at once; beyond, copies are dropped (and counted).
const MAX_SHADOWS_IN_FLIGHT: usize = 256;

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// How many instances one request may try when an instance cannot be reached (it crashed or
/// is being replaced); requests are only retried when they never reached a container.
const MAX_ATTEMPTS: usize = 3;

impl Router {
    pub fn new(table: Arc<RoutingTable>, forwarder: Forwarder) -> Self {
        Router { table, forwarder: Arc::new(forwarder), shadows_in_flight: Arc::new(AtomicUsize::new(0)) }
    }

    pub fn table(&self) -> &Arc<RoutingTable> {
        &self.table
    }

    pub async fn invoke(&self, endpoint: &str, req: InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        let started = Instant::now();
        let mut attempt = 0;
        // A serverless variant counts the request against its MaxConcurrency until it ends.
        let mut admitted: Option<(String, Admitted)> = None;
        let mut cold_wait = Duration::ZERO;
        let sticky = self.table.sticky(endpoint);
        let key = sticky.as_ref().and_then(|s| s.find(&req));
        loop {
            attempt += 1;
            // Reload the route each attempt: a retry after a failed connect should see the
            // instances the controller has published since.
            let route = self.table.get(endpoint).ok_or(InvokeError::EndpointNotFound)?;
            let variant = route.pick_variant(req.target_variant.as_deref(), key, fastrand::f64())?;
            if let Some(state) = &variant.serverless {
                if admitted.as_ref().is_none_or(|(name, _)| *name != variant.name) {
                    drop(admitted.take()); // a different variant now: release the first one's slot
                    let Some(a) = state.admit() else {
                        return Err(InvokeError::Throttled { variant: variant.name.clone(), max_concurrency: state.max_concurrency() });
                    };
                    admitted = Some((variant.name.clone(), a));
                }
            }
            let Some((slot, in_flight)) = variant.pick_instance() else {
                if let Some(state) = &variant.serverless {
                    // A cold start: ask for an instance and wait for it, queued, not failed.
                    let waited = Instant::now();
                    self.wait_for_instance(&route.endpoint, &variant.name, state).await?;
                    cold_wait += waited.elapsed();
                    attempt -= 1;
                    continue;
                }
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
            // A cold start's wait is ModelSetupTime, not berth's overhead.
            let overhead = started.elapsed().saturating_sub(model.unwrap_or_default()).saturating_sub(cold_wait);
            variant.metrics.record(outcome, model.map(micros), micros(overhead));
            if !route.shadows.is_empty() {
                self.copy_to_shadows(&route, &req, &result);
            }
            if let (Some(settings), Ok(answer)) = (&route.capture, &result) {
                self.capture(&route.endpoint, settings, &req, answer);
            }
            return result;
        }
    }

    /// Waits until the serverless variant has an instance (asking the controller for one), its
    /// cold start fails, or the wait is longer than a start may take.
    async fn wait_for_instance(&self, endpoint: &str, variant: &str, state: &Arc<ServerlessState>) -> Result<(), InvokeError> {
        let since = Instant::now();
        let deadline = since + COLD_START_WAIT;
        loop {
            let notified = state.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let ready = self
                .table
                .get(endpoint)
                .is_some_and(|r| r.variants.iter().any(|v| v.name == variant && v.instances.iter().any(|i| i.is_healthy())));
            if ready {
                return Ok(());
            }
            if let Some(reason) = state.failure_since(since) {
                return Err(InvokeError::ColdStartFailed { variant: variant.to_string(), reason });
            }
            self.table.serverless().ask_for_instance(endpoint, variant);
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero()
                || tokio::time::timeout(left.min(Duration::from_secs(1)), notified).await.is_err() && Instant::now() >= deadline
            {
                return Err(InvokeError::NoHealthyInstance { variant: variant.to_string() });
            }
        }
    }

    /// Offers a sampled invocation to the capture writer (never waits; a full queue drops it).
    fn capture(&self, endpoint: &str, settings: &CaptureSettings, req: &InvokeRequest, answer: &InvokeResponse) {
        if fastrand::u32(0..100) >= settings.sampling_percentage {
            return;
        }
        let text = |v: &Option<http::HeaderValue>, default: &str| v.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(default).to_string();
        let record = CaptureRecord {
            endpoint: endpoint.to_string(),
            variant: answer.variant.clone(),
            settings: settings.clone(),
            time_ms: berth_domain::Timestamp::now().millis(),
            inference_id: req.inference_id.as_ref().and_then(|v| v.to_str().ok()).map(str::to_string),
            input: settings.input.then(|| (text(&req.content_type, "application/octet-stream"), req.body.clone())),
            output: settings.output.then(|| (text(&answer.content_type, "application/octet-stream"), answer.body.clone())),
        };
        self.table.capture().offer(record);
    }

    /// Sends sampled copies of a production request to the endpoint's shadow variants, in the
    /// background; their answers are compared with the production one and recorded.
    fn copy_to_shadows(&self, route: &EndpointRoute, req: &InvokeRequest, production: &Result<InvokeResponse, InvokeError>) {
        let (production_variant, production_status, production_body) = match production {
            Ok(r) => (r.variant.clone(), 200, r.body.clone()),
            Err(InvokeError::ModelError { variant, status, body }) => (variant.clone(), *status, Bytes::from(body.clone())),
            Err(_) => return, // no model answered: nothing to compare with
        };
        for shadow in &route.shadows {
            if fastrand::f64() >= shadow.sample {
                continue;
            }
            let name = shadow.variant.name.clone();
            if self.shadows_in_flight.fetch_add(1, Ordering::Relaxed) >= MAX_SHADOWS_IN_FLIGHT {
                self.shadows_in_flight.fetch_sub(1, Ordering::Relaxed);
                self.table.shadows().dropped(&route.endpoint, &name);
                continue;
            }
            let picked = shadow.variant.pick_instance();
            let metrics = shadow.variant.metrics.clone();
            let (table, forwarder, in_flight) = (self.table.clone(), self.forwarder.clone(), self.shadows_in_flight.clone());
            let (endpoint, request) = (route.endpoint.clone(), req.clone());
            let (production_variant, production_body) = (production_variant.clone(), production_body.clone());
            tokio::spawn(async move {
                let sent = Instant::now();
                let (status, body) = match picked {
                    Some((slot, guard)) => {
                        let answer = forwarder.forward(&slot, &name, &request).await;
                        drop(guard);
                        let model = sent.elapsed();
                        let (outcome, status, body) = match answer {
                            Ok(r) => (Outcome::Success, 200, r.body),
                            Err(InvokeError::ModelError { status, body, .. }) if status < 500 => {
                                (Outcome::ModelClientError, status, Bytes::from(body))
                            }
                            Err(InvokeError::ModelError { status, body, .. }) => (Outcome::ModelServerError, status, Bytes::from(body)),
                            Err(e) => (Outcome::ModelServerError, 0, Bytes::from(e.to_string())),
                        };
                        metrics.record(outcome, Some(micros(model)), 0);
                        (status, body)
                    }
                    None => {
                        metrics.record(Outcome::Unavailable, None, 0);
                        (0, Bytes::from_static(b"no healthy instance"))
                    }
                };
                let comparison = ShadowComparison {
                    time_ms: berth_domain::Timestamp::now().millis(),
                    inference_id: request.inference_id.as_ref().and_then(|v| v.to_str().ok()).map(str::to_string),
                    agree: shadow::agree(production_status, &production_body, status, &body),
                    production_variant,
                    production_status,
                    production_body: shadow::kept(&production_body),
                    shadow_status: status,
                    shadow_body: shadow::kept(&body),
                    shadow_latency_us: micros(sent.elapsed()),
                };
                table.shadows().record(&endpoint, &name, comparison);
                in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }
}
