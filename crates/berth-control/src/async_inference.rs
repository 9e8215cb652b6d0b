//! Asynchronous inference (InvokeEndpointAsync). An accepted request is written to the state
//! store before it is acknowledged, so it survives `kill -9`; a worker sends queued requests to
//! the endpoint's instances, at most `MaxConcurrentInvocationsPerInstance` per healthy
//! instance, oldest first, and writes each answer (or failure) where the request was promised
//! it would be. A request is removed from the queue only once its outcome is written: a crash
//! in between sends it again (at least once, as SageMaker's own queue). An outcome that cannot
//! be written is tried again a few times, the request waiting aside (requests behind it go on),
//! then the request leaves the queue as failed, with an event and the error notification. The
//! backlog is published each second as SageMaker's endpoint metrics (`ApproximateBacklogSize` and the
//! rest) for the CloudWatch API, alarms and target tracking.

use crate::async_queue::{expiry, join, notification, queue_kind, Queued};
use crate::{ControlError, Controller};
use berth_domain::{random_uuid, AsyncInference, Endpoint, EndpointStatus, NameKey};
use berth_router::{InvokeRequest, Router};
use berth_store::CustomDatapoint;
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The largest input berth reads for one asynchronous request (SageMaker's limit: 1 GB).
pub const MAX_ASYNC_INPUT: u64 = 1024 * 1024 * 1024;
/// The largest inline body of InvokeEndpointAsync.
pub const MAX_INLINE_BODY: usize = 128_000;
/// SageMaker's defaults and ranges for a request's queue time and processing time.
pub const DEFAULT_TTL_SECS: u32 = 21_600;
pub const DEFAULT_INVOCATION_TIMEOUT_SECS: u32 = 900;
/// Attempts at writing a request's outcome before it leaves the queue as failed; the waits
/// between them double from this one.
pub const MAX_WRITE_ATTEMPTS: u32 = 5;
const FIRST_RETRY_WAIT_MS: i64 = 1_000;
/// The endpoint metrics of the backlog, in namespace `AWS/SageMaker`, dimension `EndpointName`.
pub const BACKLOG_METRICS: [&str; 4] =
    ["ApproximateBacklogSize", "ApproximateBacklogSizePerInstance", "ApproximateAgeOfOldestRequest", "HasBacklogWithoutCapacity"];

/// Where an asynchronous request's input is.
#[derive(Debug, Clone)]
pub enum AsyncInput {
    /// `InputLocation`: `s3://bucket/key`, or `file:///path` under a `--file-root`.
    Location(String),
    /// The inline `Body` (at most 128,000 bytes).
    Inline(Bytes),
}

/// An InvokeEndpointAsync request as the edge read it.
#[derive(Debug, Clone)]
pub struct AsyncInvocation {
    pub inference_id: Option<String>,
    pub input: AsyncInput,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub custom_attributes: Option<String>,
    pub ttl_secs: Option<u32>,
    pub invocation_timeout_secs: Option<u32>,
    pub output_path_extension: Option<String>,
    pub filename: Option<String>,
}

/// What InvokeEndpointAsync answers at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncAccepted {
    pub inference_id: String,
    pub output_location: String,
    pub failure_location: String,
}

/// The worker's state: requests under way, and the backlog it last saw, by endpoint.
#[derive(Default)]
pub(crate) struct AsyncWork {
    notifier: crate::sns::Notifier,
    wake: tokio::sync::Notify,
    running: Mutex<HashMap<NameKey, HashSet<String>>>,
    /// By endpoint: its name as created, and its backlog.
    backlog: Mutex<HashMap<NameKey, (String, Backlog)>>,
}

/// An endpoint's asynchronous backlog as last seen.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    /// Requests queued or under way.
    pub size: u64,
    /// Healthy instances serving them.
    pub instances: u64,
    /// Age of the oldest request, in seconds.
    pub oldest_age_secs: f64,
}

impl Backlog {
    pub fn per_instance(&self) -> f64 {
        self.size as f64 / self.instances.max(1) as f64
    }

    pub fn without_capacity(&self) -> bool {
        self.size > 0 && self.instances == 0
    }
}

impl Controller {
    /// Accepts an asynchronous request: checks it, writes it to the queue (durably, before the
    /// caller hears of it) and tells the worker.
    pub async fn enqueue_async(&self, endpoint: &str, req: AsyncInvocation) -> Result<AsyncAccepted, ControlError> {
        let e = self.describe_endpoint(endpoint).await?;
        let Some(config) = &e.async_inference else {
            return Err(ControlError::Validation(format!(
                "Endpoint {} is not configured for asynchronous inference: its endpoint config {} has no AsyncInferenceConfig.",
                e.name, e.config_name
            )));
        };
        if let AsyncInput::Location(location) = &req.input {
            self.readable_input(location)?;
        }
        let id = req.inference_id.clone().unwrap_or_else(random_uuid);
        let extension = req.output_path_extension.as_deref();
        let output_location = join(&config.output_path, extension, &req.filename.clone().unwrap_or_else(|| format!("{id}.out")));
        let failure_path = config.failure_path.as_deref().unwrap_or(&config.output_path);
        let failure_location = join(failure_path, extension, &format!("{id}-error.out"));
        // Refused now rather than accepted and never written: an outcome must have somewhere to go.
        for (location, base) in [(&output_location, config.output_path.as_str()), (&failure_location, failure_path)] {
            self.writable_outcome(location, base, &id)?;
        }
        use base64::Engine;
        let queued = Queued {
            id: id.clone(),
            endpoint: e.name.clone(),
            input_location: match &req.input {
                AsyncInput::Location(l) => Some(l.clone()),
                AsyncInput::Inline(_) => None,
            },
            inline: match &req.input {
                AsyncInput::Inline(b) => Some(base64::engine::general_purpose::STANDARD.encode(b)),
                AsyncInput::Location(_) => None,
            },
            content_type: req.content_type,
            accept: req.accept,
            custom_attributes: req.custom_attributes,
            output_location: output_location.clone(),
            failure_location: failure_location.clone(),
            received_ms: self.now().millis(),
            ttl_secs: req.ttl_secs.unwrap_or(DEFAULT_TTL_SECS),
            timeout_secs: req.invocation_timeout_secs.unwrap_or(DEFAULT_INVOCATION_TIMEOUT_SECS),
            attempts: 0,
            retry_at_ms: 0,
        };
        let body = serde_json::to_string(&queued).map_err(|e| ControlError::Internal(e.to_string()))?;
        let (kind, key, at) = (queue_kind(&e.name), id.clone(), queued.received_ms);
        self.db(move |s| s.put_records(&kind, &[(key, at, body)])).await?;
        self.async_work.wake.notify_one();
        Ok(AsyncAccepted { inference_id: id, output_location, failure_location })
    }

    /// An input location berth may read: `s3://bucket/key`, or a `file://` path under a
    /// `--file-root` (resolved, so a link cannot lead outside).
    fn readable_input(&self, location: &str) -> Result<Option<std::path::PathBuf>, ControlError> {
        if let Some(rest) = location.strip_prefix("s3://") {
            return match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(None),
                _ => Err(ControlError::Validation(format!("InputLocation '{location}' must name a bucket and a key: s3://bucket/key"))),
            };
        }
        let Some(path) = location.strip_prefix("file://") else {
            return Err(ControlError::Validation(format!("InputLocation '{location}' must be s3://bucket/key or file:///path.")));
        };
        self.settings.file_roots.resolve(std::path::Path::new(path)).map(Some).map_err(|e| match e {
            berth_instances::RootError::NoRoots => ControlError::Validation(format!(
                "InputLocation {location} cannot be read: file:// inputs are off. Start berth with --file-root DIR, or use s3://"
            )),
            _ => ControlError::Validation(format!("InputLocation {location} is not a file under a directory berth may read (--file-root)")),
        })
    }

    /// An outcome location berth can write: it stays beneath its output path (the InferenceId
    /// makes no empty, `.` or `..` segment of it), and for `file://` it lies under a `--file-root`.
    fn writable_outcome(&self, location: &str, base: &str, id: &str) -> Result<(), ControlError> {
        let below = location.strip_prefix(base.trim_end_matches('/')).unwrap_or(location);
        if below.split('/').skip(1).any(|segment| segment.is_empty() || segment == "." || segment == "..") {
            return Err(ControlError::Validation(format!(
                "InferenceId '{id}' cannot name an output: with it the answer's location {location} would leave the endpoint's output path \
                 (no empty, '.' or '..' path segments)."
            )));
        }
        if location.starts_with("file://") {
            let parent = location.rsplit_once('/').map_or(location, |(dir, _)| dir);
            self.writable_destination("S3OutputPath", parent)?;
        }
        Ok(())
    }

    /// Every asynchronous endpoint's backlog (for `/metrics`).
    pub fn async_backlogs(&self) -> Vec<(String, Backlog)> {
        let map = self.async_work.backlog.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, Backlog)> = map.values().cloned().collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The worker: runs until berth stops (supervised; started again after a panic, when it
    /// finds the queue as stored).
    pub async fn run_async(self: Arc<Self>, router: Router) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.async_work.wake.notified() => {}
            }
            if let Err(e) = self.async_round(&router).await {
                tracing::warn!(error = %e, "asynchronous inference round failed");
            }
        }
    }

    /// One look at every asynchronous endpoint: publish its backlog, start what capacity allows.
    async fn async_round(self: &Arc<Self>, router: &Router) -> Result<(), ControlError> {
        let endpoints: Vec<Endpoint> = self.all_endpoints().await?.into_iter().filter(|e| e.async_inference.is_some()).collect();
        let now = self.now();
        let mut points = Vec::new();
        let mut seen = HashSet::new();
        for e in endpoints {
            let Some(config) = e.async_inference.clone() else { continue };
            let key = NameKey::of(&e.name);
            seen.insert(key.clone());
            let kind = queue_kind(&e.name);
            let queued: Vec<Queued> =
                self.db(move |s| s.records(&kind)).await?.iter().filter_map(|b| serde_json::from_str(b).ok()).collect();
            let instances = self
                .routing
                .get(&e.name)
                .map_or(0, |r| r.variants.iter().map(|v| v.instances.iter().filter(|i| i.is_healthy()).count() as u64).sum::<u64>());
            let oldest = queued.first().map_or(0.0, |q| ((now.millis() - q.received_ms).max(0) as f64) / 1000.0);
            let backlog = Backlog { size: queued.len() as u64, instances, oldest_age_secs: oldest };
            self.async_work.backlog.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), (e.name.clone(), backlog));
            points.extend(backlog_points(&e.name, now.secs(), &backlog));
            if e.status != EndpointStatus::InService && e.status != EndpointStatus::Updating {
                continue;
            }
            let capacity = (instances * u64::from(config.concurrency_per_instance())) as usize;
            let mut start = Vec::new();
            {
                let mut running = self.async_work.running.lock().unwrap_or_else(|e| e.into_inner());
                let busy = running.entry(key.clone()).or_default();
                // A request waiting to try writing its outcome again waits aside: the ones
                // behind it go on.
                for q in queued.into_iter().filter(|q| q.retry_at_ms <= now.millis()) {
                    if busy.len() >= capacity {
                        break;
                    }
                    if busy.insert(q.id.clone()) {
                        start.push(q);
                    }
                }
            }
            for q in start {
                let (this, router, config, key) = (self.clone(), router.clone(), config.clone(), key.clone());
                let span = tracing::info_span!("async_request", endpoint = %q.endpoint, inference_id = %q.id);
                self.work.spawn_detached(span, async move {
                    let id = q.id.clone();
                    // A fault of berth's while serving it counts as an outcome not written: the
                    // request is tried again, then leaves the queue as failed.
                    let processed = crate::work::caught(this.process_async(&router, &config, q.clone())).await;
                    if let Err(e) = processed.unwrap_or_else(|panic| Err(format!("berth failed while serving the request: {panic}"))) {
                        this.outcome_not_written(&config, q, e).await;
                    }
                    if let Some(busy) = this.async_work.running.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&key) {
                        busy.remove(&id);
                    }
                    this.async_work.wake.notify_one();
                });
            }
        }
        self.async_work.backlog.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, _| seen.contains(k));
        self.put_custom_datapoints(points).await
    }

    /// Serves one queued request and writes its outcome; the request leaves the queue only once
    /// the outcome is written.
    async fn process_async(&self, router: &Router, config: &AsyncInference, q: Queued) -> Result<(), String> {
        let outcome: Result<Bytes, String> = if let Some(expired) = expiry(q.received_ms, q.ttl_secs, self.now()) {
            Err(expired)
        } else {
            match self.async_input(&q).await {
                Err(e) => Err(e),
                Ok(body) => {
                    let header = |v: &Option<String>| v.as_deref().and_then(|v| http::HeaderValue::from_str(v).ok());
                    let req = InvokeRequest {
                        body,
                        content_type: header(&q.content_type),
                        accept: header(&q.accept),
                        custom_attributes: header(&q.custom_attributes),
                        inference_id: http::HeaderValue::from_str(&q.id).ok(),
                        target: Default::default(),
                        timeout: Some(Duration::from_secs(u64::from(q.timeout_secs))),
                    };
                    router.invoke(&q.endpoint, req).await.map(|answer| answer.body).map_err(|e| match e {
                        berth_router::InvokeError::ModelError { status, body, .. } => {
                            format!(
                                "Received {} error ({status}) from the model with message \"{body}\".",
                                if status < 500 { "client" } else { "server" }
                            )
                        }
                        berth_router::InvokeError::Timeout { seconds, .. } => {
                            format!("The model did not answer within the request's InvocationTimeoutSeconds ({seconds} s).")
                        }
                        other => other.to_string(),
                    })
                }
            }
        };
        match &outcome {
            Ok(answer) => self.write_object(&q.output_location, answer.to_vec(), config.kms_key_id.as_deref()).await?,
            Err(reason) => self.write_object(&q.failure_location, self.redact(reason).into_bytes(), config.kms_key_id.as_deref()).await?,
        }
        let (kind, key) = (queue_kind(&q.endpoint), q.id.clone());
        self.db(move |s| s.delete_record(&kind, &key)).await.map_err(|e| e.to_string())?;
        // Told after the outcome is written and the request done: a notification never
        // announces an answer that is not there. A failed publish is logged, not retried.
        let (topic, include) = match &outcome {
            Ok(_) => (&config.success_topic, "SUCCESS_NOTIFICATION_TOPIC"),
            Err(_) => (&config.error_topic, "ERROR_NOTIFICATION_TOPIC"),
        };
        if let Some(topic) = topic {
            let with_answer = config.include_response_in.iter().any(|k| k == include);
            let outcome = outcome.clone().map_err(|reason| self.redact(&reason));
            let message = notification(&self.account().region, &q, &outcome, with_answer, self.now());
            if let Err(e) = self.async_work.notifier.publish(topic, message).await {
                tracing::warn!(inference_id = %q.id, error = %e, "asynchronous inference notification not sent");
            }
        }
        tracing::debug!(endpoint = %q.endpoint, inference_id = %q.id, ok = outcome.is_ok(), "asynchronous request done");
        Ok(())
    }

    /// After a failed attempt at writing a request's outcome: the request waits aside for its
    /// next attempt, or, after the last, leaves the queue as failed (an event, a log line, the
    /// error notification).
    async fn outcome_not_written(&self, config: &AsyncInference, mut q: Queued, error: String) {
        q.attempts += 1;
        let (kind, key) = (queue_kind(&q.endpoint), q.id.clone());
        if q.attempts < MAX_WRITE_ATTEMPTS {
            q.retry_at_ms = self.now().millis() + FIRST_RETRY_WAIT_MS * (1 << (q.attempts - 1));
            tracing::warn!(endpoint = %q.endpoint, inference_id = %q.id, attempt = q.attempts, error = %error, "asynchronous request's outcome not written; tried again later");
            let body = match serde_json::to_string(&q) {
                Ok(b) => b,
                Err(e) => return tracing::warn!(error = %e, "cannot keep the request's attempts"),
            };
            let at = q.received_ms;
            if let Err(e) = self.db(move |s| s.put_records(&kind, &[(key, at, body)])).await {
                tracing::warn!(inference_id = %q.id, error = %e, "cannot keep the request's attempts");
            }
            return;
        }
        let reason = self.redact(&format!("The request's outcome could not be written after {MAX_WRITE_ATTEMPTS} attempts: {error}"));
        tracing::warn!(endpoint = %q.endpoint, inference_id = %q.id, %reason, "asynchronous request failed");
        if let Err(e) = self.db(move |s| s.delete_record(&kind, &key)).await {
            tracing::warn!(inference_id = %q.id, error = %e, "cannot remove the failed request from the queue");
        }
        let message = format!("Asynchronous request {} failed: {reason}", q.id);
        self.record_event(&q.endpoint, None, berth_domain::EventKind::AsyncRequestFailed, message);
        if let Some(topic) = &config.error_topic {
            let outcome = Err(reason);
            let notice = notification(&self.account().region, &q, &outcome, false, self.now());
            if let Err(e) = self.async_work.notifier.publish(topic, notice).await {
                tracing::warn!(inference_id = %q.id, error = %e, "asynchronous inference notification not sent");
            }
        }
    }

    /// The request's input: inline, or read from S3 or a file under a `--file-root`.
    async fn async_input(&self, q: &Queued) -> Result<Bytes, String> {
        use base64::Engine;
        if let Some(inline) = &q.inline {
            return base64::engine::general_purpose::STANDARD.decode(inline).map(Bytes::from).map_err(|e| e.to_string());
        }
        let Some(location) = &q.input_location else { return Ok(Bytes::new()) };
        self.read_object(location, MAX_ASYNC_INPUT).await.map_err(|e| format!("Cannot read the input: {e}"))
    }
}

/// The backlog as this second's datapoints of SageMaker's four endpoint metrics.
fn backlog_points(endpoint: &str, ts: u64, b: &Backlog) -> Vec<CustomDatapoint> {
    let dimensions = crate::metrics::canonical_dimensions(&[("EndpointName".to_string(), endpoint.to_string())]);
    let values = [
        (BACKLOG_METRICS[0], b.size as f64, "Count"),
        (BACKLOG_METRICS[1], b.per_instance(), "Count"),
        (BACKLOG_METRICS[2], b.oldest_age_secs, "Seconds"),
        (BACKLOG_METRICS[3], if b.without_capacity() { 1.0 } else { 0.0 }, "Count"),
    ];
    values
        .into_iter()
        .map(|(name, v, unit)| CustomDatapoint {
            namespace: "AWS/SageMaker".into(),
            metric_name: name.into(),
            dimensions: dimensions.clone(),
            ts,
            unit: unit.into(),
            sample_count: 1.0,
            sum: v,
            minimum: v,
            maximum: v,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_per_instance_and_without_capacity() {
        let b = Backlog { size: 6, instances: 0, oldest_age_secs: 3.0 };
        assert!(b.without_capacity());
        assert_eq!(b.per_instance(), 6.0);
        assert_eq!(Backlog { size: 6, instances: 3, oldest_age_secs: 0.0 }.per_instance(), 2.0);
        let points = backlog_points("E", 10, &b);
        assert_eq!(
            points.iter().map(|p| (p.metric_name.as_str(), p.sum)).collect::<Vec<_>>(),
            vec![
                ("ApproximateBacklogSize", 6.0),
                ("ApproximateBacklogSizePerInstance", 6.0),
                ("ApproximateAgeOfOldestRequest", 3.0),
                ("HasBacklogWithoutCapacity", 1.0)
            ]
        );
    }
}
