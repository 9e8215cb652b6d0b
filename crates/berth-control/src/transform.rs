//! Batch transform jobs. A job starts its own fleet of the model (as an endpoint variant would
//! be started, under the route name `transform-job/<name>`, which no endpoint can have), sends
//! every object under the input prefix through it — split into records and batched as the job
//! says, at most `MaxConcurrentTransforms` requests at once, each retried up to
//! `InvocationsMaxRetries` times — and writes each object's answers to `<output>/<object>.out`.
//! The fleet stops when the job ends. Jobs are records in the state store; one that was running
//! when berth stopped runs again from the start at the next start.

use crate::deploy::stop_all;
use crate::reconcile::{Done, Queue, Reconciler};
use crate::transform_records::RecordFormat;
use crate::{ControlError, Controller};
use berth_domain::{
    validate_instance_type, validate_name, Endpoint, EndpointStatus, NameKey, TransformJob, TransformJobStatus, VariantSpec,
};
use berth_router::{InvokeError, InvokeRequest, Router};
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const JOBS: &str = "transform-job";
/// The largest input object berth reads for a transform job.
pub const MAX_TRANSFORM_OBJECT: u64 = 1024 * 1024 * 1024;

/// The route (and fleet) name of a job: `/` is in no endpoint's name.
pub(crate) fn route_name(job: &str) -> String {
    format!("transform-job/{}", NameKey::of(job))
}

/// The transform jobs' reconciler: a job `InProgress` that does not run here is run; a job
/// `Stopping` that runs is told to stop, and one that does not run (berth stopped meanwhile) is
/// `Stopped`. It owns the running jobs' stop signals.
#[derive(Default)]
pub(crate) struct TransformJobs {
    stops: std::sync::Mutex<HashMap<NameKey, watch::Sender<bool>>>,
}

/// The steps of a transform job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobStep {
    /// Start its instances, send every object through them, stop them, record the end.
    Run,
    /// Record that a job stopping when berth stopped has stopped.
    MarkStopped,
}

impl TransformJobs {
    fn stops(&self) -> std::sync::MutexGuard<'_, HashMap<NameKey, watch::Sender<bool>>> {
        self.stops.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Reconciler for TransformJobs {
    type Context = Controller;
    type Object = TransformJob;
    type Step = JobStep;
    const KIND: &'static str = "transform job";

    fn queue(cx: &Controller) -> &Queue<Self> {
        &cx.transforms
    }

    async fn keys(&self, cx: &Arc<Controller>) -> Result<Vec<String>, ControlError> {
        Ok(cx.transform_jobs().await?.into_iter().filter(|j| !j.status.ended()).map(|j| j.name).collect())
    }

    async fn read(&self, cx: &Arc<Controller>, key: &str) -> Result<Option<TransformJob>, ControlError> {
        let key = NameKey::of(key);
        Ok(cx.transform_jobs().await?.into_iter().find(|j| NameKey::of(&j.name) == key))
    }

    fn next(&self, _: &Arc<Controller>, job: &TransformJob) -> Option<JobStep> {
        let stops = self.stops();
        let running = stops.get(&NameKey::of(&job.name));
        match (job.status, running) {
            (TransformJobStatus::InProgress, None) => Some(JobStep::Run),
            (TransformJobStatus::Stopping, Some(stop)) => {
                let _ = stop.send(true);
                None
            }
            (TransformJobStatus::Stopping, None) => Some(JobStep::MarkStopped),
            _ => None,
        }
    }

    fn run(&self, cx: &Arc<Controller>, mut job: TransformJob, step: JobStep, done: Done<Self>) {
        let span = tracing::info_span!("transform_job", transform_job = %job.name, step = ?step);
        let this = cx.clone();
        match step {
            JobStep::Run => {
                let (stop, stopped) = watch::channel(false);
                self.stops().insert(NameKey::of(&job.name), stop);
                cx.work.spawn_detached(span, async move {
                    let key = NameKey::of(&job.name);
                    if job.started.is_some() {
                        tracing::info!(transform_job = %job.name, "transform job runs again after a restart");
                    }
                    this.run_job(job, stopped).await;
                    this.transforms.reconciler.stops().remove(&key);
                    drop(done);
                });
            }
            JobStep::MarkStopped => cx.work.spawn_detached(span, async move {
                let now = this.now();
                (job.status, job.ended, job.modified) = (TransformJobStatus::Stopped, Some(now), now);
                if let Err(e) = this.store_job(&job).await {
                    tracing::error!(transform_job = %job.name, error = %e, "could not record the transform job's end");
                }
                drop(done);
            }),
        }
    }
}

impl Controller {
    /// Reconciles transform job `name`: called after every change to it is committed.
    async fn reconcile_transform_job(self: &Arc<Self>, name: &str) {
        if let Err(e) = self.transforms.enqueue(self, name).await {
            tracing::warn!(transform_job = %name, error = %e, "cannot reconcile the transform job; the next resync tries again");
        }
    }

    /// The router the jobs (and nothing else in the controller) send requests through.
    pub fn attach_router(&self, router: Router) {
        let _ = self.router.set(router);
    }

    pub async fn create_transform_job(
        self: &Arc<Self>,
        mut job: TransformJob,
        tags: Vec<berth_store::Tag>,
    ) -> Result<TransformJob, ControlError> {
        validate_name("transformJobName", &job.name)?;
        crate::tags::validate_tags(&tags)?;
        validate_instance_type(&job.instance_type).map_err(ControlError::from)?;
        if job.instance_count == 0 {
            return Err(ControlError::Validation("TransformResources.InstanceCount must be at least 1.".into()));
        }
        self.describe_model(&job.model_name).await?;
        self.readable_objects_location(&job.input_uri)?;
        self.writable_destination("S3OutputPath", &job.output_path)?;
        if job.output_kms_key_id.is_some() && !job.output_path.starts_with("s3://") {
            return Err(ControlError::Validation(format!(
                "TransformOutput.KmsKeyId encrypts answers written to S3 (SSE-KMS); berth cannot apply it to {}.",
                job.output_path
            )));
        }
        match self.describe_transform_job(&job.name).await {
            Ok(_) => {
                return Err(ControlError::Validation(format!(
                    "Job name must be unique within an AWS account and region, and a job with name {} already exists.",
                    job.name
                )))
            }
            Err(ControlError::Validation(_)) => {} // none of that name
            Err(e) => return Err(e),
        }
        let now = self.now();
        job.arn = self.account().arn(berth_domain::ResourceKind::TransformJob, &job.name);
        job.status = TransformJobStatus::InProgress;
        job.created = now;
        job.modified = now;
        self.store_job(&job).await?;
        if !tags.is_empty() {
            let arn = job.arn.clone();
            self.db(move |s| s.add_tags(&arn, &tags)).await?;
        }
        tracing::info!(transform_job = %job.name, "transform job created");
        self.reconcile_transform_job(&job.name).await;
        Ok(job)
    }

    pub async fn describe_transform_job(&self, name: &str) -> Result<TransformJob, ControlError> {
        let key = NameKey::of(name);
        self.transform_jobs()
            .await?
            .into_iter()
            .find(|j| NameKey::of(&j.name) == key)
            .ok_or_else(|| ControlError::Validation(format!("Could not find job to update with name {name}")))
    }

    pub async fn transform_jobs(&self) -> Result<Vec<TransformJob>, ControlError> {
        self.read_records(JOBS).await
    }

    /// Stops a running job: `Stopping` at once, `Stopped` once its fleet is down.
    pub async fn stop_transform_job(self: &Arc<Self>, name: &str) -> Result<(), ControlError> {
        let mut job = self.describe_transform_job(name).await?;
        if job.status != TransformJobStatus::InProgress {
            return Err(ControlError::Validation(format!(
                "The transform job {} is {}: only a job in progress can be stopped.",
                job.name,
                job.status.as_str()
            )));
        }
        job.status = TransformJobStatus::Stopping;
        job.modified = self.now();
        self.store_job(&job).await?;
        self.reconcile_transform_job(&job.name).await;
        Ok(())
    }

    async fn store_job(&self, job: &TransformJob) -> Result<(), ControlError> {
        self.put_record(JOBS, &NameKey::of(&job.name).to_string(), job.created, job).await
    }

    async fn run_job(self: &Arc<Self>, mut job: TransformJob, mut stopped: watch::Receiver<bool>) {
        let route = route_name(&job.name);
        job.started = Some(self.now());
        let _ = self.store_job(&job).await;
        self.job_event(&job, format!("Starting {} instance(s) of model {} ({})", job.instance_count, job.model_name, job.instance_type));
        // A fault of berth's inside is the job's failure: its fleet still stops, its end is stored.
        let work = async {
            let run = async {
                self.start_job_fleet(&job, &route).await?;
                self.transform_objects(&job, &route).await
            };
            crate::work::caught(run).await.unwrap_or_else(|panic| Err(format!("berth failed while running the job: {panic}")))
        };
        let outcome = tokio::select! {
            outcome = work => Some(outcome),
            _ = stopped.wait_for(|s| *s) => None,
        };
        self.stop_temporary_fleet(&route).await;
        job.status = match &outcome {
            None => TransformJobStatus::Stopped,
            Some(Ok(())) => TransformJobStatus::Completed,
            Some(Err(_)) => TransformJobStatus::Failed,
        };
        job.failure_reason = outcome.and_then(|o| o.err()).map(|r| self.redact(&r).chars().take(1024).collect());
        let now = self.now();
        job.ended = Some(now);
        job.modified = now;
        tracing::info!(transform_job = %job.name, status = job.status.as_str(), reason = job.failure_reason.as_deref().unwrap_or(""), "transform job ended");
        let took = (now.millis() - job.started.map_or(now.millis(), |t| t.millis())) as f64 / 1000.0;
        self.job_event(
            &job,
            match &job.failure_reason {
                Some(reason) => format!("{} after {took:.1} s: {reason}", job.status.as_str()),
                None => format!("{} after {took:.1} s", job.status.as_str()),
            },
        );
        if let Err(e) = self.store_job(&job).await {
            tracing::error!(transform_job = %job.name, error = %e, "could not record the transform job's end");
        }
    }

    /// Starts the job's instances and publishes their route.
    async fn start_job_fleet(self: &Arc<Self>, job: &TransformJob, route: &str) -> Result<(), String> {
        let spec = VariantSpec::new("AllTraffic", &job.model_name, &job.instance_type, job.instance_count);
        self.start_temporary_fleet(route, &job.arn, spec, &job.environment, None).await
    }

    /// Starts a fleet that belongs to a job rather than an endpoint (its route name has a `/`,
    /// which no endpoint's can), of the spec's model (or `model`, one that is not stored: a
    /// model package's), with `environment` added to the model's, and publishes its route;
    /// [`Controller::stop_temporary_fleet`] ends it.
    pub(crate) async fn start_temporary_fleet(
        self: &Arc<Self>,
        route: &str,
        arn: &str,
        spec: VariantSpec,
        environment: &std::collections::BTreeMap<String, String>,
        model: Option<&berth_domain::Model>,
    ) -> Result<(), String> {
        let mut variants = match model {
            Some(model) => vec![crate::endpoints::variant_state(&spec, model)],
            None => self.variant_states(&[spec]).await.map_err(|e| e.to_string())?,
        };
        for v in &mut variants {
            v.container.environment.extend(environment.clone());
        }
        let epoch = self.fleets().register(route);
        let fleet = self.start_fleet(route, &variants, &HashSet::new()).await?;
        for v in &mut variants {
            v.current_instance_count = v.desired_instance_count;
        }
        self.fleets().apply(route, epoch, |map| *map = fleet);
        let now = self.now();
        let endpoint = Endpoint {
            name: route.to_string(),
            arn: arn.to_string(),
            created: now,
            modified: now,
            config_name: String::new(),
            status: EndpointStatus::InService,
            failure_reason: None,
            variants,
            pending: None,
            last_deployment_config: None,
            data_capture: None,
            async_inference: None,
            previous_weights: None,
        };
        self.routing.publish(self.fleets().route(&endpoint));
        Ok(())
    }

    /// Ends a fleet [`Controller::start_temporary_fleet`] started: its route, then its instances.
    pub(crate) async fn stop_temporary_fleet(&self, route: &str) {
        self.routing.remove(route);
        stop_all(self.fleets().remove(route)).await;
    }

    /// Every input object through the model; the first object that cannot be transformed
    /// fails the job, naming it.
    async fn transform_objects(&self, job: &TransformJob, route: &str) -> Result<(), String> {
        let router = self.router.get().ok_or("berth's router is not attached")?.clone();
        let objects = if job.manifest { self.manifest_objects(&job.input_uri).await? } else { self.input_objects(&job.input_uri).await? };
        if objects.is_empty() {
            return Err(format!("No input objects were found under {}.", job.input_uri));
        }
        self.job_event(job, format!("Instances ready; {} object(s) to transform", objects.len()));
        let total = objects.len();
        for (n, (uri, relative)) in objects.into_iter().enumerate() {
            let data = self.read_object(&uri, MAX_TRANSFORM_OBJECT).await?;
            let requests = job.requests(&data);
            let limit = Arc::new(tokio::sync::Semaphore::new(job.concurrency()));
            let mut tasks = tokio::task::JoinSet::new();
            for (i, range) in requests.into_iter().enumerate() {
                let (router, limit, record, job_ref, route) =
                    (router.clone(), limit.clone(), data.slice(range), job.clone(), route.to_string());
                tasks.spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    if !job_ref.processes_records() {
                        return (i, invoke_with_retries(&router, &route, &job_ref, record).await);
                    }
                    let records = RecordFormat::of(&job_ref);
                    let answer = match records.filter_input(&job_ref, &record) {
                        Ok(body) => invoke_with_retries(&router, &route, &job_ref, body).await,
                        Err(e) => Err(e),
                    };
                    (i, answer.and_then(|answer| records.output(&job_ref, &record, &answer)))
                });
            }
            let mut answers = Vec::new();
            while let Some(joined) = tasks.join_next().await {
                let (i, answer) = joined.map_err(|e| e.to_string())?;
                answers.push((i, answer.map_err(|e| format!("Transforming {uri} failed: {e}"))?));
            }
            answers.sort_by_key(|(i, _)| *i);
            let answers_count = answers.len();
            let mut out = Vec::new();
            for (_, answer) in answers {
                out.extend_from_slice(&answer);
                if job.assemble_lines && !answer.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
            let target = format!("{}/{relative}.out", job.output_path.trim_end_matches('/'));
            let records = answers_count;
            self.write_object(&target, out, job.output_kms_key_id.as_deref()).await?;
            self.job_event(job, format!("Object {}/{total}: {uri}, {records} request(s), written to {target}", n + 1));
        }
        Ok(())
    }

    /// A location whose objects berth may read: `s3://bucket/prefix`, or a `file://` file or
    /// directory under a `--file-root`.
    pub(crate) fn readable_objects_location(&self, uri: &str) -> Result<(), ControlError> {
        if let Some(rest) = uri.strip_prefix("s3://") {
            return match rest.split_once('/').map(|(b, _)| b).unwrap_or(rest) {
                "" => Err(ControlError::Validation(format!("S3Uri '{uri}' must name a bucket: s3://bucket/prefix"))),
                _ => Ok(()),
            };
        }
        let Some(path) = uri.strip_prefix("file://") else {
            return Err(ControlError::Validation(format!("S3Uri '{uri}' must be s3://bucket/prefix or file:///path.")));
        };
        self.settings.file_roots.resolve(std::path::Path::new(path)).map(|_| ()).map_err(|_| {
            ControlError::Validation(format!("S3Uri {uri} is not under a directory berth may read (--file-root), or does not exist"))
        })
    }

    /// The objects under the input location, each with its name relative to it.
    pub(crate) async fn input_objects(&self, uri: &str) -> Result<Vec<(String, String)>, String> {
        if uri.starts_with("s3://") {
            let prefix = uri.trim_end_matches('/');
            let listed = self.s3.list(prefix).await?;
            let mut out: Vec<(String, String)> = listed
                .into_iter()
                .filter(|k| !k.ends_with('/') && k.len() > prefix.len())
                .map(|k| {
                    let relative = k[prefix.len()..].trim_start_matches('/').to_string();
                    (k, relative)
                })
                .collect();
            if out.is_empty() && !uri.ends_with('/') {
                // The URI names one object.
                let name = prefix.rsplit('/').next().unwrap_or_default().to_string();
                out.push((prefix.to_string(), name));
            }
            return Ok(out);
        }
        let path = uri.strip_prefix("file://").ok_or_else(|| format!("cannot read {uri}"))?;
        let root = self
            .settings
            .file_roots
            .resolve(std::path::Path::new(path))
            .map_err(|_| format!("cannot read {uri}: it is not under a directory berth may read (--file-root)"))?;
        let roots = self.settings.file_roots.clone();
        tokio::task::spawn_blocking(move || {
            if root.is_file() {
                let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                return Ok(vec![(format!("file://{}", root.display()), name)]);
            }
            let mut out = Vec::new();
            let mut dirs = vec![root.clone()];
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?.flatten() {
                    let Ok(path) = roots.resolve(&entry.path()) else { continue }; // a link out of the roots is skipped
                    if path.is_dir() {
                        dirs.push(path);
                    } else if let Ok(relative) = path.strip_prefix(&root) {
                        out.push((format!("file://{}", path.display()), relative.to_string_lossy().into_owned()));
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// The objects a manifest names: `[{"prefix": "s3://bucket/p/"}, "key1", "sub/key2"]`, each
    /// with its name relative to the prefix; only locations berth may read.
    async fn manifest_objects(&self, uri: &str) -> Result<Vec<(String, String)>, String> {
        let data = self.read_object(uri, MAX_TRANSFORM_OBJECT).await?;
        let entries: Vec<serde_json::Value> =
            serde_json::from_slice(&data).map_err(|e| format!("The manifest {uri} is not a JSON list: {e}"))?;
        let prefix = entries
            .first()
            .and_then(|p| p.get("prefix"))
            .and_then(|p| p.as_str())
            .ok_or_else(|| format!("The manifest {uri} does not start with {{\"prefix\": ...}}."))?;
        let prefix = prefix.trim_end_matches('/');
        let mut out = Vec::new();
        for entry in &entries[1..] {
            let relative = entry.as_str().ok_or_else(|| format!("The manifest {uri} lists something that is not a key: {entry}"))?;
            if relative.split('/').any(|s| s == "..") {
                return Err(format!("The manifest {uri} lists {relative}, which leaves its prefix."));
            }
            let object = format!("{prefix}/{}", relative.trim_start_matches('/'));
            if object.starts_with("file://") {
                self.readable_objects_location(&object).map_err(|e| e.to_string())?;
            }
            out.push((object, relative.trim_start_matches('/').to_string()));
        }
        Ok(out)
    }

    fn job_event(&self, job: &TransformJob, message: String) {
        self.record_event(&job.name, None, berth_domain::EventKind::TransformJobProgress, format!("Transform job {}: {message}", job.name));
    }
}

/// One request of a job, retried as its `InvocationsMaxRetries` says when the container failed
/// or timed out (never when it answered a 4xx: the record is what is wrong).
async fn invoke_with_retries(router: &Router, route: &str, job: &TransformJob, body: Bytes) -> Result<Bytes, String> {
    let header = |v: &Option<String>| v.as_deref().and_then(|v| http::HeaderValue::from_str(v).ok());
    let retries = job.max_retries.unwrap_or(TransformJob::DEFAULT_RETRIES);
    let mut attempt = 0;
    loop {
        let req = InvokeRequest {
            body: body.clone(),
            content_type: header(&job.content_type),
            accept: header(&job.accept),
            timeout: Some(Duration::from_secs(u64::from(job.invocation_timeout_secs.unwrap_or(TransformJob::DEFAULT_TIMEOUT_SECS)))),
            ..Default::default()
        };
        match router.invoke(route, req).await {
            Ok(answer) => return Ok(answer.body),
            Err(InvokeError::ModelError { status, body, .. }) if status < 500 || attempt >= retries => {
                return Err(format!("the model answered {status}: {body}"));
            }
            Err(e) if attempt >= retries => return Err(e.to_string()),
            Err(_) => attempt += 1,
        }
    }
}
