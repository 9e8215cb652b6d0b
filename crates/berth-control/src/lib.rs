//! The controller: every SageMaker hosting operation, expressed on domain types.
//!
//! It validates requests, commits them to the [`StateStore`] before answering, and hands the
//! change to the reconciler of its concern (`reconcile`): the endpoint lifecycle's starts
//! variant fleets on an [`InstanceBackend`], publishes routes to the [`RoutingTable`] and
//! retires old instances; the transform jobs' runs jobs. Reconcilers act on the stored state
//! alone, so a periodic [`Controller::resync`] and the recovery at start
//! ([`Controller::recover`]) are the same loop. Clock-driven concerns (autoscaling, alarms,
//! experiments, bandits, the asynchronous queue) run as rounds the server's supervisor calls.

#![forbid(unsafe_code)]

mod alarms;
mod async_inference;
mod async_queue;
mod autoscaling;
mod bandit;
mod capture;
mod components;
mod configs;
mod deploy;
mod endpoints;
mod error;
mod events;
mod experiments;
mod ground_truth;
mod guardrails;
mod instance_logs;
mod labels;
mod lifecycle;
mod listing;
mod metrics;
mod models;
mod monitoring;
mod objects;
mod processing;
mod quality;
mod recommendation;
mod reconcile;
mod registry;
mod serverless;
mod sns;
mod stats;
mod stored;
mod tags;
mod transform;
mod transform_records;
mod weight_controls;
mod work;

/// Entry points for the fuzz targets under `fuzz/` (not an API).
#[doc(hidden)]
pub mod fuzzing {
    /// Arbitrary bytes as a captured invocation (content types, bodies, the configured CSV and
    /// JSON types) through the capture encoder: the line must be JSON whose data gives the body
    /// back (as text, or base64), never a panic.
    pub fn capture_line(data: &[u8]) {
        crate::capture::fuzz_capture_line(data)
    }
}

pub use alarms::PutAlarm;
pub use async_inference::{
    AsyncAccepted, AsyncInput, AsyncInvocation, Backlog, BACKLOG_METRICS, DEFAULT_INVOCATION_TIMEOUT_SECS, DEFAULT_TTL_SECS,
    MAX_INLINE_BODY,
};
pub use autoscaling::RegisterScalableTarget;
pub use components::{ComponentSpecification, CreateInferenceComponent};
pub use configs::CreateEndpointConfig;
pub use endpoints::{CreateEndpoint, DesiredWeightAndCapacity, UpdateEndpoint, VariantProperty};
pub use error::ControlError;
pub use experiments::{CreateInferenceExperiment, StopInferenceExperiment, UpdateInferenceExperiment};
pub use ground_truth::{ground_truth_line, GroundTruth};
pub use instance_logs::InstanceLogStream;
pub use listing::{
    list_inference_components, list_monitoring, list_processing_jobs, list_recommendation_jobs, list_registry, list_transform_jobs,
    ListQuery, MonitoringListed, Page, SortKey, TimeWindow,
};
pub use metrics::{canonical_dimensions, MetricQuery};
pub use models::CreateModel;
pub use monitoring::{DATA_METRICS_NAMESPACE, MODEL_METRICS_NAMESPACE};
pub use quality::{
    EndpointQuality, Metric, Problem, Quality, QualitySummary, Significance, VariantAccuracy, VariantQuality, QUALITY_NAMESPACE,
};
pub use registry::ModelPackageUpdate;
pub use stats::{BinaryQuality, ClassificationQuality, Comparison, Estimate, PrecisionRecallF1, RegressionQuality};
pub use weight_controls::WeightControl;

use berth_domain::{Account, Clock, Timestamp};
use berth_instances::{AllowedRoots, InstanceBackend, ModelArtifacts};
use berth_router::RoutingTable;
use berth_store::{StateStore, StoreError};
use events::EventLog;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Caps that answer `ResourceLimitExceeded`, as SageMaker's account quotas do.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_models: usize,
    pub max_endpoint_configs: usize,
    pub max_endpoints: usize,
    /// Instances across all endpoints: on one machine this is what capacity means.
    pub max_instances: usize,
    /// CloudWatch metric alarms.
    pub max_alarms: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_models: 10_000, max_endpoint_configs: 10_000, max_endpoints: 500, max_instances: 64, max_alarms: 10_000 }
    }
}

#[derive(Debug, Clone)]
pub struct ControllerSettings {
    pub account: Account,
    pub data_dir: PathBuf,
    pub limits: Limits,
    /// Startup health-check timeout for variants that do not set
    /// `ContainerStartupHealthCheckTimeoutInSeconds` (and the model download timeout for those
    /// that do not set `ModelDataDownloadTimeoutInSeconds`).
    pub default_startup_timeout: Duration,
    /// Where `exec:` programs may be run from (`--exec-root`); empty: `exec:` is off.
    pub exec_roots: AllowedRoots,
    /// Where `file://` data may be read and capture files written (`--file-root`); empty: off.
    pub file_roots: AllowedRoots,
    /// Whether berth's Python runtime may run models' own code (`--python-runtime on`):
    /// `berth/python`, and AWS's framework images without Docker.
    pub python_runtime: bool,
    /// Where each instance of a multi-model variant has a model loader of its own (a pod's
    /// `berth model-loader` sidecar, on Kubernetes): its port. None: berth stages models itself.
    pub model_loader_port: Option<u16>,
    /// Where every time of day the controller stores or compares comes from.
    pub clock: Arc<dyn Clock>,
    /// Instance prices per hour (`--instance-prices`), over AWS's list prices, for the costs of
    /// inference recommendations.
    pub instance_prices: std::collections::BTreeMap<String, f64>,
    /// `CreateModel` takes only approved model packages (`--require-approved-packages`).
    pub require_approved_packages: bool,
    /// Told of each registry change (a model package's approval), as SageMaker tells
    /// EventBridge: the binary posts it to `--registry-webhook`.
    pub registry_notifier: Option<Notifier>,
}

/// A callback told of events outside berth's store (a registry change): what it does with them
/// (post them to a webhook) is its own.
#[derive(Clone)]
pub struct Notifier(pub Arc<dyn Fn(serde_json::Value) + Send + Sync>);

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notifier")
    }
}

impl ControllerSettings {
    /// Settings for tests of the controller: account 123456789012 in us-east-1, default limits,
    /// a 10 s start timeout, no exec or file roots, no Python runtime, and a [`TokioClock`].
    #[doc(hidden)]
    pub fn for_tests(data_dir: &std::path::Path) -> ControllerSettings {
        ControllerSettings {
            account: Account { region: "us-east-1".into(), account_id: "123456789012".into() },
            data_dir: data_dir.to_path_buf(),
            limits: Limits::default(),
            default_startup_timeout: Duration::from_secs(10),
            exec_roots: AllowedRoots::default(),
            file_roots: AllowedRoots::default(),
            python_runtime: false,
            model_loader_port: None,
            clock: Arc::new(TokioClock::new()),
            instance_prices: Default::default(),
            require_approved_packages: false,
            registry_notifier: None,
        }
    }
}

/// A clock for tests: it starts at the wall time and moves with tokio's clock, so a test that
/// pauses tokio's time (`start_paused`, `tokio::time::advance`) moves the controller's days
/// too: a ten-minute bake or time to live passes in milliseconds.
#[derive(Debug)]
pub struct TokioClock {
    start: Timestamp,
    started: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        TokioClock { start: Timestamp::now(), started: tokio::time::Instant::now() }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.start.millis() + self.started.elapsed().as_millis() as i64)
    }
}

pub struct Controller {
    store: Arc<dyn StateStore>,
    backend: Arc<dyn InstanceBackend>,
    artifacts: ModelArtifacts,
    routing: Arc<RoutingTable>,
    settings: ControllerSettings,
    /// The endpoint lifecycle's reconciler and its queue (it owns the running fleets).
    endpoints: reconcile::Queue<lifecycle::Lifecycle>,
    /// The transform jobs' reconciler and its queue (it owns the running jobs' stop signals).
    transforms: reconcile::Queue<transform::TransformJobs>,
    /// The processing jobs' reconciler and its queue.
    processing: reconcile::Queue<processing::ProcessingJobs>,
    /// The inference recommendations jobs' reconciler and its queue.
    recommendations: reconcile::Queue<recommendation::RecommendationJobs>,
    /// The inference components' reconciler (keyed by endpoint) and its queue.
    components: reconcile::Queue<components::Components>,
    /// Whether [`Controller::recover`] has run (resyncs wait for it).
    recovered: std::sync::atomic::AtomicBool,
    events: EventLog,
    /// The dashboard's quality summaries by endpoint, with when they were computed.
    quality_summaries: std::sync::Mutex<std::collections::HashMap<berth_domain::NameKey, (std::time::Instant, QualitySummary)>>,
    /// The S3 client of ground truth, asynchronous requests and transform jobs.
    s3: berth_instances::S3Writer,
    /// Serialises check-then-write transitions of endpoint state. Held only around store
    /// calls, never across instance starts or drains.
    transitions: tokio::sync::Mutex<()>,
    /// Asynchronous inference: requests under way and the backlog last seen.
    async_work: async_inference::AsyncWork,
    /// The router transform jobs send their requests through (attached at start).
    router: std::sync::OnceLock<berth_router::Router>,
    /// Each alarm's last evaluated window (its end) and configuration, so an alarm is
    /// evaluated again only once a new period of it has closed.
    alarm_evaluations: alarms::Evaluations,
    /// Every background step: supervised, in a span, cancelled at shutdown.
    work: work::Work,
}

impl Controller {
    pub fn new(
        store: Arc<dyn StateStore>,
        backend: Arc<dyn InstanceBackend>,
        artifacts: ModelArtifacts,
        routing: Arc<RoutingTable>,
        settings: ControllerSettings,
    ) -> Arc<Self> {
        Arc::new(Controller {
            events: EventLog::start(store.clone()),
            quality_summaries: Default::default(),
            s3: Default::default(),
            store,
            backend,
            artifacts,
            routing,
            settings,
            endpoints: reconcile::Queue::new(lifecycle::Lifecycle::default()),
            transforms: reconcile::Queue::new(transform::TransformJobs::default()),
            processing: reconcile::Queue::new(processing::ProcessingJobs::default()),
            recommendations: reconcile::Queue::new(recommendation::RecommendationJobs::default()),
            components: reconcile::Queue::new(components::Components),
            recovered: Default::default(),
            transitions: tokio::sync::Mutex::new(()),
            async_work: Default::default(),
            router: std::sync::OnceLock::new(),
            alarm_evaluations: Default::default(),
            work: Default::default(),
        })
    }

    /// The time of day, from the settings' clock.
    pub fn now(&self) -> Timestamp {
        self.settings.clock.now()
    }

    pub fn account(&self) -> &Account {
        &self.settings.account
    }

    /// `text` as a caller may read it: paths under berth's data directory replaced (a model's
    /// files by `/opt/ml/model`, the rest by `<data-dir>`). Applied to every failure reason,
    /// event and outcome berth stores or writes for callers.
    pub fn redact(&self, text: &str) -> String {
        berth_domain::redact_private_paths(text, &self.settings.data_dir.to_string_lossy()).into_owned()
    }

    /// Where the instances of an endpoint write their logs (one directory per variant).
    /// berth's data directory (for redacting it from what callers read).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.settings.data_dir
    }

    pub fn instance_log_dir(&self, endpoint: &str) -> PathBuf {
        self.settings.data_dir.join("logs").join(endpoint)
    }

    /// The servers of the cluster sharing this server's store, with whether each leads (none
    /// on a store of its own).
    pub async fn nodes(&self) -> Result<Vec<berth_store::Node>, ControlError> {
        self.db(|s| s.nodes()).await
    }

    /// Runs a store call off the async workers (SQLite syncs to disk on every write).
    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn StateStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ControlError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| ControlError::Internal(format!("state store task failed: {e}")))?
            .map_err(ControlError::from)
    }
}
