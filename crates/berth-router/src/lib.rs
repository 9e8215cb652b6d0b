//! The request path: parse → pick variant → pick instance → forward.
//!
//! The [`RoutingTable`] is read on every request without a lock (an `ArcSwap` of immutable
//! routes); the controller publishes a new route for an endpoint whenever its weights or
//! instances change, so a change applies to the very next request and never to one in flight.

#![forbid(unsafe_code)]

mod capture;
mod forward;
mod h1;
mod models;
mod pipeline;
mod pool;
mod serverless;
mod shadow;
mod snapshot;
mod sticky;
mod table;

pub use capture::{CaptureQueue, CaptureRecord, CaptureSettings, CAPTURE_QUEUE};
pub use forward::{Forwarder, InvokeError, InvokeRequest, InvokeResponse, InvokeTarget, StreamError};
pub use models::{check_target_model, ModelCache, ModelCacheSettings, ModelUse, MAX_TARGET_MODEL_LEN};
pub use pipeline::Pipeline;
pub use serverless::{ServerlessRegistry, ServerlessState};
pub use shadow::{ShadowComparison, ShadowLog, ShadowStats, KEPT_COMPARISONS};
pub use snapshot::{InstanceAddress, PublishedVariant, Replica, RouteSnapshot, ANY_HOST};
pub use sticky::{InvalidStickyKey, StickyKey, STICKY_KEY_TAG};
pub use table::{ComponentRoute, EndpointRoute, GreenRoute, RoutingTable, ShadowRoute, VariantRoute};

use berth_domain::ExecutionMode;
use berth_instances::{InFlight, InstanceSlot};
use berth_metrics::{Outcome, VariantMetrics};
use bytes::{Bytes, BytesMut};
use forward::OpenStream;
use serverless::Admitted;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Routes invocations of endpoints to their instances.
#[derive(Clone)]
pub struct Router {
    table: Arc<RoutingTable>,
    forwarder: Arc<Forwarder>,
    /// Shadow copies in flight, across endpoints (bounded: a slow shadow must not pile up work).
    shadows_in_flight: Arc<AtomicUsize>,
}

/// The longest a request waits for the route of an endpoint being recovered (a new leader
/// adopting the instances, a restarted berth starting them).
const RECOVERY_WAIT: Duration = Duration::from_secs(5);

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
        let (sent, result) = self.dispatch(endpoint, &req, Whole).await?;
        self.finish(sent, &req, result.as_ref());
        result
    }

    /// InvokeEndpointWithResponseStream: routed as [`Router::invoke`]; the answer's pieces are
    /// read as the container sends them. Metrics, shadows and capture see the whole answer when
    /// the stream ends.
    pub async fn invoke_stream(&self, endpoint: &str, req: InvokeRequest) -> Result<AnswerStream, InvokeError> {
        let (sent, result) = self.dispatch(endpoint, &req, Streamed).await?;
        match result {
            Ok(open) => Ok(AnswerStream {
                variant: sent.variant.clone(),
                content_type: open.head.content_type.clone(),
                custom_attributes: open.head.custom_attributes.clone(),
                parts: StreamParts {
                    router: self.clone(),
                    content_type: open.head.content_type.clone(),
                    sent: Some(sent),
                    open: Some(open),
                    req,
                    collected: BytesMut::new(),
                    failed: None,
                },
            }),
            Err(e) => {
                self.finish(sent, &req, Err(&e));
                Err(e)
            }
        }
    }

    /// Picks the variant and instance and sends the request with `exchange`, retrying another
    /// instance when one could not be reached and waiting for a serverless cold start. What
    /// comes back is the exchange's result with what finishing the request needs; a request
    /// that never reached an instance has been recorded already.
    async fn dispatch<E: Exchange>(
        &self,
        endpoint: &str,
        req: &InvokeRequest,
        exchange: E,
    ) -> Result<(Sent, Result<E::Out, InvokeError>), InvokeError> {
        let started = Instant::now();
        let mut attempt = 0;
        // A serverless variant counts the request against its MaxConcurrency until it ends.
        let mut admitted: Option<(String, Admitted)> = None;
        let mut cold_wait = Duration::ZERO;
        let sticky = self.table.sticky(endpoint);
        let key = sticky.as_ref().and_then(|s| s.find(req));
        loop {
            attempt += 1;
            // Reload the route each attempt: a retry after a failed connect should see the
            // instances the controller has published since.
            let route = match self.table.get(endpoint) {
                Some(route) => route,
                None => self.table.get_or_wait(endpoint, RECOVERY_WAIT).await?,
            };
            let variant = match route.pick_component(req.target.component.as_deref())? {
                Some(component) => component,
                None => route.pick_variant(req.target.variant.as_deref(), key, fastrand::f64())?,
            };
            if let Some(state) = &variant.serverless {
                if admitted.as_ref().is_none_or(|(name, _)| *name != variant.name) {
                    drop(admitted.take()); // a different variant now: release the first one's slot
                    let Some(a) = state.admit() else {
                        return Err(InvokeError::Throttled { variant: variant.name.clone(), max_concurrency: state.max_concurrency() });
                    };
                    admitted = Some((variant.name.clone(), a));
                }
            }
            let target_model = variant.model_of(&route.endpoint, req.target.model.as_deref())?;
            let container =
                pipeline::container_of(&route.endpoint, &variant.name, variant.pipeline.as_deref(), req.target.container.as_deref())?;
            let picked = match target_model {
                // Preferably an instance that has the model loaded.
                Some((cache, target)) => variant.pick_instance_preferring(|slot| cache.has_loaded(slot, target)),
                None => variant.pick_container_instance(container),
            };
            let Some((slot, in_flight)) = picked else {
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
            let model = models::acquire_for(target_model, &self.forwarder, &slot, &variant.name, &variant.metrics).await?;
            let path = models::call_path(model.as_ref());
            let sent = Instant::now();
            let result = match variant.pipeline.as_deref() {
                Some(p) if p.mode == ExecutionMode::Serial => {
                    let pick = |container| variant.pick_container_instance(container);
                    self.run_pipeline(p, &variant.name, pick, slot.clone(), req, &exchange).await
                }
                Some(p) => exchange
                    .send(&self.forwarder, Hop { slot: &slot, path, variant: &variant.name, req })
                    .await
                    .map_err(|e| pipeline::stage_error(e, p, container)),
                None => exchange.send(&self.forwarder, Hop { slot: &slot, path, variant: &variant.name, req }).await,
            };
            if let Err(e @ InvokeError::Unreachable { .. }) = result {
                if attempt < MAX_ATTEMPTS {
                    tracing::debug!(instance = %slot.id, error = %e, "instance unreachable; trying another");
                    continue;
                }
                variant.metrics.record(Outcome::Unavailable, None, micros(started.elapsed().saturating_sub(cold_wait)));
                return Err(e);
            }
            let sent = Sent {
                metrics: variant.metrics.clone(),
                variant: variant.name.clone(),
                route: route.clone(),
                started,
                sent,
                cold_wait,
                _in_flight: in_flight,
                _admitted: admitted,
                _model: model,
                // Only a Direct variant's pipeline has per-container metrics.
                container_metrics: variant.pipeline.as_deref().and_then(|p| p.container_metrics.get(container).cloned()),
            };
            return Ok((sent, result));
        }
    }

    /// Records a request's outcome once its answer is complete, copies it to the shadows and
    /// offers it for capture.
    fn finish(&self, sent: Sent, req: &InvokeRequest, result: Result<&InvokeResponse, &InvokeError>) {
        let model = sent.sent.elapsed();
        let outcome = outcome_of(result);
        // A cold start's wait is ModelSetupTime, not berth's overhead.
        let overhead = sent.started.elapsed().saturating_sub(model).saturating_sub(sent.cold_wait);
        sent.metrics.record(outcome, Some(micros(model)), micros(overhead));
        if let Some(container) = &sent.container_metrics {
            container.record(outcome, Some(micros(model)), micros(overhead));
        }
        drop(sent._in_flight);
        if !sent.route.shadows.is_empty() {
            self.copy_to_shadows(&sent.route, req, result);
        }
        if let (Some(settings), Ok(answer)) = (&sent.route.capture, result) {
            // An inference component's answers are captured under its name, as a variant's are.
            let component = req
                .target
                .component
                .as_deref()
                .and_then(|c| sent.route.components.iter().flatten().find(|r| r.name.eq_ignore_ascii_case(c)).map(|r| r.name.as_str()));
            self.capture(&sent.route.endpoint, settings, req, answer, component, &sent.metrics);
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

    /// Offers a sampled invocation to the capture writer (never waits; a full buffer drops it,
    /// counted in the variant's metrics).
    fn capture(
        &self,
        endpoint: &str,
        settings: &CaptureSettings,
        req: &InvokeRequest,
        answer: &InvokeResponse,
        component: Option<&str>,
        metrics: &VariantMetrics,
    ) {
        if fastrand::u32(0..100) >= settings.sampling_percentage {
            return;
        }
        let text = |v: &Option<http::HeaderValue>, default: &str| v.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(default).to_string();
        let record = CaptureRecord {
            endpoint: endpoint.to_string(),
            variant: component.map_or_else(|| answer.variant.clone(), str::to_string),
            settings: settings.clone(),
            time_ms: berth_domain::Timestamp::now().millis(),
            inference_id: req.inference_id.as_ref().and_then(|v| v.to_str().ok()).map(str::to_string),
            input: settings.input.then(|| (text(&req.content_type, "application/octet-stream"), req.body.clone())),
            output: settings.output.then(|| (text(&answer.content_type, "application/octet-stream"), answer.body.clone())),
        };
        if !self.table.capture().offer(record) {
            metrics.record_capture_dropped();
        }
    }

    /// Sends sampled copies of a production request to the endpoint's shadow variants, in the
    /// background; their answers are compared with the production one and recorded.
    fn copy_to_shadows(&self, route: &Arc<EndpointRoute>, req: &InvokeRequest, production: Result<&InvokeResponse, &InvokeError>) {
        let (production_variant, production_status, production_body) = match production {
            Ok(r) => (r.variant.clone(), 200, r.body.clone()),
            Err(InvokeError::ModelError { variant, status, body, .. }) => (variant.clone(), *status, Bytes::from(body.clone())),
            Err(_) => return, // no model answered: nothing to compare with
        };
        for (index, shadow) in route.shadows.iter().enumerate() {
            if fastrand::f64() >= shadow.sample {
                continue;
            }
            if self.shadows_in_flight.fetch_add(1, Ordering::Relaxed) >= MAX_SHADOWS_IN_FLIGHT {
                self.shadows_in_flight.fetch_sub(1, Ordering::Relaxed);
                self.table.shadows().dropped(&route.endpoint, &shadow.variant.name);
                continue;
            }
            let (table, forwarder, in_flight) = (self.table.clone(), self.forwarder.clone(), self.shadows_in_flight.clone());
            let (route, request) = (route.clone(), req.clone());
            let (production_variant, production_body) = (production_variant.clone(), production_body.clone());
            tokio::spawn(async move {
                let shadow = &route.shadows[index];
                let sent = Instant::now();
                let (status, body) = shadow_answer(&forwarder, &route.endpoint, &shadow.variant, &request).await;
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
                table.shadows().record(&route.endpoint, &shadow.variant.name, comparison);
                in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }
}

/// A shadow variant's answer to a copy of a production request (status 0 when no model
/// answered), recorded in its metrics. On a multi-model shadow the request's `TargetModel` is
/// loaded on the shadow's instance and invoked there, as on production.
async fn shadow_answer(forwarder: &Arc<Forwarder>, endpoint: &str, variant: &VariantRoute, request: &InvokeRequest) -> (u16, Bytes) {
    let target = match variant.model_of(endpoint, request.target.model.as_deref()) {
        Ok(target) => target,
        Err(e) => return (0, Bytes::from(e.to_string())),
    };
    let picked = match target {
        Some((cache, target)) => variant.pick_instance_preferring(|slot| cache.has_loaded(slot, target)),
        None => variant.pick_instance(),
    };
    let Some((slot, _in_flight)) = picked else {
        variant.metrics.record(Outcome::Unavailable, None, 0);
        return (0, Bytes::from_static(b"no healthy instance"));
    };
    let model = match models::acquire_for(target, forwarder, &slot, &variant.name, &variant.metrics).await {
        Ok(model) => model,
        Err(e) => return (0, Bytes::from(e.to_string())),
    };
    let sent = Instant::now();
    let path = models::call_path(model.as_ref());
    let answer = forwarder.forward_to(&slot, path, &variant.name, request).await;
    variant.metrics.record(outcome_of(answer.as_ref()), Some(micros(sent.elapsed())), 0);
    match answer {
        Ok(r) => (200, r.body),
        Err(InvokeError::ModelError { status, body, .. }) => (status, Bytes::from(body)),
        Err(e) => (0, Bytes::from(e.to_string())),
    }
}

/// How an answer counts in a variant's metrics: a model's 4xx is the caller's error, any other
/// failure the model's.
fn outcome_of(result: Result<&InvokeResponse, &InvokeError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Success,
        Err(InvokeError::ModelError { status, .. }) if *status < 500 => Outcome::ModelClientError,
        Err(_) => Outcome::ModelServerError,
    }
}

/// A request on its way: what finishing it needs once its answer is complete.
struct Sent {
    metrics: Arc<VariantMetrics>,
    variant: String,
    route: Arc<EndpointRoute>,
    started: Instant,
    sent: Instant,
    cold_wait: Duration,
    _in_flight: InFlight,
    _admitted: Option<(String, Admitted)>,
    /// A multi-model variant's model, held (not to be unloaded) until the answer is complete.
    _model: Option<ModelUse>,
    /// The invoked container's own metrics (a Direct multi-container variant).
    container_metrics: Option<Arc<VariantMetrics>>,
}

/// How a request is exchanged with its instance, at `path` on the container.
trait Exchange {
    type Out;
    async fn send(&self, forwarder: &Forwarder, hop: Hop<'_>) -> Result<Self::Out, InvokeError>;
}

/// Where one exchange goes: the instance, the path on its container, the variant (named in
/// errors), and the request.
struct Hop<'a> {
    slot: &'a InstanceSlot,
    path: &'a str,
    variant: &'a str,
    req: &'a InvokeRequest,
}

/// The whole answer at once (InvokeEndpoint).
struct Whole;

impl Exchange for Whole {
    type Out = InvokeResponse;
    async fn send(&self, forwarder: &Forwarder, hop: Hop<'_>) -> Result<InvokeResponse, InvokeError> {
        forwarder.forward_to(hop.slot, hop.path, hop.variant, hop.req).await
    }
}

/// The answer's head now, its body piece by piece (InvokeEndpointWithResponseStream).
struct Streamed;

impl Exchange for Streamed {
    type Out = OpenStream;
    async fn send(&self, forwarder: &Forwarder, hop: Hop<'_>) -> Result<OpenStream, InvokeError> {
        forwarder.open_stream(hop.slot, hop.path, hop.variant, hop.req).await
    }
}

/// A streamed answer: the variant that serves it, the container's content type and custom
/// attributes, and its pieces as they come.
pub struct AnswerStream {
    pub variant: String,
    pub content_type: Option<http::HeaderValue>,
    pub custom_attributes: Option<http::HeaderValue>,
    pub parts: StreamParts,
}

/// The pieces of a streamed answer. When the last has been read (or the stream broke, or is
/// dropped) the request is finished: its metrics recorded, and the whole answer, up to 6 MB,
/// offered to shadows and capture.
pub struct StreamParts {
    router: Router,
    /// The container's content type, for capture.
    content_type: Option<http::HeaderValue>,
    sent: Option<Sent>,
    open: Option<OpenStream>,
    req: InvokeRequest,
    /// The answer so far, for shadows and capture (not kept past the invocation limit).
    collected: BytesMut,
    failed: Option<StreamError>,
}

impl StreamParts {
    /// The next piece; `None` once the answer is complete or after an error.
    pub async fn next_part(&mut self) -> Option<Result<Bytes, StreamError>> {
        let open = self.open.as_mut()?;
        match self.router.forwarder.next_piece(open).await {
            Ok(Some(piece)) => {
                if self.collected.len() + piece.len() <= forward::MAX_ANSWER_BYTES {
                    self.collected.extend_from_slice(&piece);
                }
                Some(Ok(piece))
            }
            Ok(None) => {
                if let Some(open) = self.open.take() {
                    self.router.forwarder.finish(open);
                }
                self.end();
                None
            }
            Err(e) => {
                self.open = None; // a broken answer's connection is never reused
                self.failed = Some(e.clone());
                self.end();
                Some(Err(e))
            }
        }
    }

    fn end(&mut self) {
        let Some(sent) = self.sent.take() else { return };
        let result = match self.failed.take() {
            None => Ok(InvokeResponse {
                body: std::mem::take(&mut self.collected).freeze(),
                content_type: self.content_type.clone(),
                custom_attributes: None,
                variant: sent.variant.clone(),
            }),
            Some(e) => Err(InvokeError::Failed { variant: sent.variant.clone(), message: e.to_string() }),
        };
        self.router.finish(sent, &self.req, result.as_ref());
    }
}

impl Drop for StreamParts {
    /// A stream its caller left before the end still counts, as the answer so far.
    fn drop(&mut self) {
        if self.sent.is_some() {
            self.open = None;
            self.failed = Some(StreamError::Broken("the caller closed the stream before its end".into()));
            self.end();
        }
    }
}
