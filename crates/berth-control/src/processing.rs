//! Processing jobs: SageMaker Model Monitor's analyzer, run by berth itself (no container).
//! A baselining job (`DefaultModelMonitor.suggest_baseline`) reads the dataset its
//! `dataset_source` names (an input's container path) in its `dataset_format`, and writes
//! `statistics.json` and `constraints.json` to the output its `output_path` names. Any other
//! image is refused: berth does not run arbitrary processing jobs. Jobs are records in the
//! state store; one running when berth stopped runs again from the start.

use crate::reconcile::{Done, Queue, Reconciler};
use crate::{ControlError, Controller};
use berth_domain::{is_model_monitor_analyzer, validate_name, NameKey, ProcessingJob, ProcessingJobStatus, MODEL_MONITOR_ANALYZER};
use berth_monitor::{
    categorical_drift_method, suggest_constraints, suggest_model_quality_constraints, Attributes, DatasetAnalyzer, DatasetFormat,
    ModelQualityAnalyzer, MonitoringConfig, ProblemType,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const JOBS: &str = "processing-job";
/// The largest dataset object berth reads for an analysis.
const MAX_DATASET_OBJECT: u64 = 1024 * 1024 * 1024;
/// The analyzer's environment variables berth reads; a script would run the caller's code.
const SCRIPTS: [&str; 2] = ["record_preprocessor_script", "post_analytics_processor_script"];

/// The processing jobs' reconciler: a job `InProgress` that does not run here is run; a job
/// `Stopping` that runs is told to stop, and one that does not run is `Stopped`.
#[derive(Default)]
pub(crate) struct ProcessingJobs {
    stops: std::sync::Mutex<HashMap<NameKey, watch::Sender<bool>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProcessingStep {
    Run,
    MarkStopped,
}

impl ProcessingJobs {
    fn stops(&self) -> std::sync::MutexGuard<'_, HashMap<NameKey, watch::Sender<bool>>> {
        self.stops.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Reconciler for ProcessingJobs {
    type Context = Controller;
    type Object = ProcessingJob;
    type Step = ProcessingStep;
    const KIND: &'static str = "processing job";

    fn queue(cx: &Controller) -> &Queue<Self> {
        &cx.processing
    }

    async fn keys(&self, cx: &Arc<Controller>) -> Result<Vec<String>, ControlError> {
        // A monitoring execution's job is the execution's to run and end (monitoring.rs).
        Ok(cx
            .processing_jobs()
            .await?
            .into_iter()
            .filter(|j| !j.status.ended() && j.monitoring_schedule_arn.is_none())
            .map(|j| j.name)
            .collect())
    }

    async fn read(&self, cx: &Arc<Controller>, key: &str) -> Result<Option<ProcessingJob>, ControlError> {
        let key = NameKey::of(key);
        Ok(cx.processing_jobs().await?.into_iter().find(|j| NameKey::of(&j.name) == key))
    }

    fn next(&self, _: &Arc<Controller>, job: &ProcessingJob) -> Option<ProcessingStep> {
        if job.monitoring_schedule_arn.is_some() {
            return None;
        }
        let stops = self.stops();
        match (job.status, stops.get(&NameKey::of(&job.name))) {
            (ProcessingJobStatus::InProgress, None) => Some(ProcessingStep::Run),
            (ProcessingJobStatus::Stopping, Some(stop)) => {
                let _ = stop.send(true);
                None
            }
            (ProcessingJobStatus::Stopping, None) => Some(ProcessingStep::MarkStopped),
            _ => None,
        }
    }

    fn run(&self, cx: &Arc<Controller>, job: ProcessingJob, step: ProcessingStep, done: Done<Self>) {
        let span = tracing::info_span!("processing_job", processing_job = %job.name, step = ?step);
        let this = cx.clone();
        match step {
            ProcessingStep::Run => {
                let (stop, stopped) = watch::channel(false);
                self.stops().insert(NameKey::of(&job.name), stop);
                cx.work.spawn_detached(span, async move {
                    let key = NameKey::of(&job.name);
                    this.run_processing_job(job, stopped).await;
                    this.processing.reconciler.stops().remove(&key);
                    drop(done);
                });
            }
            ProcessingStep::MarkStopped => cx.work.spawn_detached(span, async move {
                this.end_processing_job(job, Err(None)).await;
                drop(done);
            }),
        }
    }
}

/// What the analyzer is asked to do, read from the job's environment.
struct Analysis {
    format: DatasetFormat,
    /// `MODEL_QUALITY`: the problem type and where the records' values are.
    quality: Option<(ProblemType, Attributes)>,
    dataset: String,
    output: String,
    config: MonitoringConfig,
}

impl Controller {
    pub async fn create_processing_job(
        self: &Arc<Self>,
        mut job: ProcessingJob,
        tags: Vec<berth_store::Tag>,
    ) -> Result<ProcessingJob, ControlError> {
        validate_name("processingJobName", &job.name)?;
        crate::tags::validate_tags(&tags)?;
        let analysis = analysis_of(&job).map_err(ControlError::Validation)?;
        self.readable_objects_location(&analysis.dataset)?;
        self.writable_destination("ProcessingOutputConfig.Outputs.S3Output.S3Uri", &analysis.output)?;
        match self.describe_processing_job(&job.name).await {
            Ok(_) => {
                return Err(ControlError::Validation(format!(
                    "Job name must be unique within an AWS account and region, and a job with name {} already exists.",
                    job.name
                )))
            }
            Err(ControlError::JobNotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let now = self.now();
        job.arn = self.account().arn(berth_domain::ResourceKind::ProcessingJob, &job.name);
        (job.status, job.created, job.modified) = (ProcessingJobStatus::InProgress, now, now);
        self.store_processing_job(&job).await?;
        if !tags.is_empty() {
            let arn = job.arn.clone();
            self.db(move |s| s.add_tags(&arn, &tags)).await?;
        }
        tracing::info!(processing_job = %job.name, "processing job created");
        self.reconcile_processing_job(&job.name).await;
        Ok(job)
    }

    pub async fn describe_processing_job(&self, name: &str) -> Result<ProcessingJob, ControlError> {
        let key = NameKey::of(name);
        self.processing_jobs().await?.into_iter().find(|j| NameKey::of(&j.name) == key).ok_or_else(|| {
            ControlError::JobNotFound(format!(
                "Processing Job {} does not exist.",
                self.account().arn(berth_domain::ResourceKind::ProcessingJob, name)
            ))
        })
    }

    pub async fn processing_jobs(&self) -> Result<Vec<ProcessingJob>, ControlError> {
        self.read_records(JOBS).await
    }

    /// Stops a running job: `Stopping` at once, `Stopped` once its work has ended.
    pub async fn stop_processing_job(self: &Arc<Self>, name: &str) -> Result<(), ControlError> {
        let mut job = self.describe_processing_job(name).await?;
        if job.status != ProcessingJobStatus::InProgress {
            return Err(ControlError::Validation(format!(
                "The request was rejected because the processing job is in status {}.",
                job.status.as_str()
            )));
        }
        (job.status, job.modified) = (ProcessingJobStatus::Stopping, self.now());
        self.store_processing_job(&job).await?;
        self.reconcile_processing_job(&job.name).await;
        Ok(())
    }

    async fn reconcile_processing_job(self: &Arc<Self>, name: &str) {
        if let Err(e) = self.processing.enqueue(self, name).await {
            tracing::warn!(processing_job = %name, error = %e, "cannot reconcile the processing job; the next resync tries again");
        }
    }

    /// Stores the job (a monitoring execution's too) under its name.
    pub(crate) async fn store_processing_job(&self, job: &ProcessingJob) -> Result<(), ControlError> {
        self.put_record(JOBS, &NameKey::of(&job.name).to_string(), job.created, job).await
    }

    async fn run_processing_job(self: &Arc<Self>, mut job: ProcessingJob, mut stopped: watch::Receiver<bool>) {
        let now = self.now();
        job.started = Some(now);
        job.say(now.millis(), format!("berth's Model Monitor analyzer: baselining for processing job {}", job.name));
        let _ = self.store_processing_job(&job).await;
        let limit = job.max_runtime_secs.map(Duration::from_secs).unwrap_or(Duration::from_secs(24 * 3600));
        let log = std::sync::Mutex::new(Vec::new());
        let work = async {
            let run = self.analyze(&job, &log);
            match tokio::time::timeout(limit, crate::work::caught(run)).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(panic)) => Err(format!("berth failed while running the job: {panic}")),
                Err(_) => Err(format!("The job ran longer than its StoppingCondition.MaxRuntimeInSeconds ({} s).", limit.as_secs())),
            }
        };
        let outcome = tokio::select! {
            outcome = work => outcome.map_err(Some),
            _ = stopped.wait_for(|s| *s) => Err(None),
        };
        for (at, line) in log.into_inner().unwrap_or_else(|e| e.into_inner()) {
            job.say(at, line);
        }
        self.end_processing_job(job, outcome).await;
    }

    /// Records a job's end: `Ok` completed, `Err(Some(reason))` failed, `Err(None)` stopped.
    async fn end_processing_job(&self, mut job: ProcessingJob, outcome: Result<(), Option<String>>) {
        job.status = match &outcome {
            Ok(()) => ProcessingJobStatus::Completed,
            Err(Some(_)) => ProcessingJobStatus::Failed,
            Err(None) => ProcessingJobStatus::Stopped,
        };
        if let Err(Some(reason)) = &outcome {
            let reason: String = self.redact(reason).chars().take(1024).collect();
            job.exit_message = Some(reason.clone());
            job.failure_reason = Some(format!("AlgorithmError: {reason}"));
        }
        let now = self.now();
        (job.ended, job.modified) = (Some(now), now);
        job.say(
            now.millis(),
            match &job.failure_reason {
                Some(reason) => reason.clone(),
                None => format!("Processing job {}: {}", job.name, job.status.as_str()),
            },
        );
        tracing::info!(processing_job = %job.name, status = job.status.as_str(), reason = job.failure_reason.as_deref().unwrap_or(""), "processing job ended");
        if let Err(e) = self.store_processing_job(&job).await {
            tracing::error!(processing_job = %job.name, error = %e, "could not record the processing job's end");
        }
    }

    /// The analyzer's work: the dataset's statistics and suggested constraints, written where
    /// the job's output is.
    async fn analyze(&self, job: &ProcessingJob, log: &std::sync::Mutex<Vec<(i64, String)>>) -> Result<(), String> {
        let say = |line: String| log.lock().unwrap_or_else(|e| e.into_inner()).push((self.now().millis(), line));
        let analysis = analysis_of(job)?;
        let objects = self.input_objects(&analysis.dataset).await?;
        say(format!("Reading {} object(s) of the dataset at {}", objects.len(), analysis.dataset));
        let (statistics, constraints) = match analysis.quality.clone() {
            None => self.analyze_data_quality(&objects, &analysis, &say).await?,
            Some((problem, attributes)) => {
                let mut analyzer = ModelQualityAnalyzer::new(problem, &attributes)?;
                for (uri, _) in &objects {
                    let data = self.read_object(uri, MAX_DATASET_OBJECT).await?;
                    let (name, format) = (uri.clone(), analysis.format.clone());
                    analyzer = tokio::task::spawn_blocking(move || analyzer.add_dataset_object(&format, &name, &data).map(|()| analyzer))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| format!("Error: the dataset could not be read: {e}"))?;
                }
                let evaluation_time = crate::capture::inference_time(self.now().millis());
                let statistics =
                    tokio::task::spawn_blocking(move || analyzer.statistics(evaluation_time)).await.map_err(|e| e.to_string())??;
                let constraints = suggest_model_quality_constraints(&statistics);
                say(format!("Computed {} metrics of {} labelled records", problem.as_str(), statistics.dataset.item_count));
                (serde_json::to_vec_pretty(&statistics), serde_json::to_vec_pretty(&constraints))
            }
        };
        let output = analysis.output.trim_end_matches('/');
        // Pretty-printed, as the analyzer writes them.
        let files = [("statistics.json", statistics), ("constraints.json", constraints)];
        for (file, body) in files {
            let body = body.map_err(|e| e.to_string())?;
            self.write_object(&format!("{output}/{file}"), body, None)
                .await
                .map_err(|e| format!("Error: cannot write {output}/{file}: {e}"))?;
        }
        say(format!("Wrote statistics.json and constraints.json to {output}"));
        tracing::info!(processing_job = %job.name, "baseline written");
        Ok(())
    }

    /// A data-quality baseline: the dataset's statistics and suggested constraints.
    async fn analyze_data_quality(
        &self,
        objects: &[(String, String)],
        analysis: &Analysis,
        say: &impl Fn(String),
    ) -> Result<(serde_json::Result<Vec<u8>>, serde_json::Result<Vec<u8>>), String> {
        let mut analyzer = DatasetAnalyzer::new(analysis.format.clone());
        for (uri, _) in objects {
            let data = self.read_object(uri, MAX_DATASET_OBJECT).await?;
            let name = uri.clone();
            analyzer = tokio::task::spawn_blocking(move || analyzer.add_object(&name, &data).map(|()| analyzer))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("Error: the dataset could not be read: {e}"))?;
        }
        let config = analysis.config.clone();
        let (statistics, constraints, approximate) = tokio::task::spawn_blocking(move || {
            analyzer.statistics().map(|s| {
                let c = suggest_constraints(&s, config);
                let approximate: Vec<String> = analyzer.approximate_features().iter().map(|f| f.to_string()).collect();
                (s, c, approximate)
            })
        })
        .await
        .map_err(|e| e.to_string())??;
        say(format!("Analyzed {} records of {} features", statistics.dataset.item_count, statistics.features.len()));
        if !approximate.is_empty() {
            say(format!("Distinct counts are lower bounds for features with very many values: {}", approximate.join(", ")));
        }
        // Pretty-printed, as the analyzer writes them.
        Ok((serde_json::to_vec_pretty(&statistics), serde_json::to_vec_pretty(&constraints)))
    }
}

/// What the job asks of the analyzer, checked: its image is the analyzer, its dataset an input
/// and its output an output (matched by container path), the format one berth reads, no script.
fn analysis_of(job: &ProcessingJob) -> Result<Analysis, String> {
    if !is_model_monitor_analyzer(&job.image) {
        return Err(format!(
            "berth runs one processing image, SageMaker Model Monitor's analyzer ({MODEL_MONITOR_ANALYZER} in a region's ECR), \
             and does the analysis itself; {} is not it.",
            job.image
        ));
    }
    let env = |name: &str| job.environment.get(name).map(String::as_str).filter(|v| !v.is_empty());
    for script in SCRIPTS {
        if env(script).is_some() {
            return Err(format!("Environment {script}: berth's analyzer does not run the caller's scripts; leave it out."));
        }
    }
    let quality = match env("analysis_type") {
        None | Some("DATA_QUALITY") => None,
        Some("MODEL_QUALITY") => {
            let problem = ProblemType::parse(env("problem_type").ok_or("Environment problem_type is required for MODEL_QUALITY.")?)
                .map_err(|e| format!("Environment {e}."))?;
            let text = |name: &str| env(name).map(str::to_string);
            let threshold = match env("probability_threshold_attribute") {
                None => None,
                Some(t) => Some(t.parse::<f64>().map_err(|_| format!("Environment probability_threshold_attribute {t} is not a number."))?),
            };
            let attributes = Attributes {
                inference: text("inference_attribute"),
                probability: text("probability_attribute"),
                ground_truth: text("ground_truth_attribute"),
                probability_threshold: threshold,
            };
            if attributes.ground_truth.is_none() || (attributes.inference.is_none() && attributes.probability.is_none()) {
                return Err(
                    "Environment: a MODEL_QUALITY baseline needs ground_truth_attribute, and inference_attribute or probability_attribute."
                        .into(),
                );
            }
            ModelQualityAnalyzer::new(problem, &attributes).map_err(|e| format!("Environment: {e}."))?;
            Some((problem, attributes))
        }
        Some(kind) => {
            return Err(format!(
                "Environment analysis_type {kind}: berth baselines DATA_QUALITY and MODEL_QUALITY (not bias or explainability)."
            ))
        }
    };
    let format = DatasetFormat::parse(env("dataset_format").ok_or("Environment dataset_format is required (the SDK sets it).")?)
        .map_err(|e| format!("Environment {e}"))?;
    let source = env("dataset_source").ok_or("Environment dataset_source is required: the container path of the dataset input.")?;
    let dataset = ProcessingJob::located(&job.inputs, source)
        .ok_or_else(|| format!("Environment dataset_source {source} is the LocalPath of no ProcessingInput."))?;
    let output_path = env("output_path").ok_or("Environment output_path is required: the container path of the output.")?;
    let output = ProcessingJob::located(&job.outputs, output_path)
        .ok_or_else(|| format!("Environment output_path {output_path} is the LocalPath of no ProcessingOutput."))?;
    let mut config = MonitoringConfig::default();
    if let Some(method) = env("categorical_drift_method") {
        config.distribution_constraints.categorical_drift_method = categorical_drift_method(method)?;
    }
    Ok(Analysis { format, quality, dataset: dataset.s3_uri.clone(), output: output.s3_uri.clone(), config })
}
