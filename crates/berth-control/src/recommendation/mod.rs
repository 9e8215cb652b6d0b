//! Inference Recommender's jobs (`CreateInferenceRecommendationsJob`): each candidate (an
//! instance type and count, and environment values) is load-tested on a temporary fleet of the
//! job's own (`run.rs`), with the job's sample payloads (`payloads.rs`), and the candidates
//! that kept the latency thresholds are recommended. Jobs are records in the state store; one
//! running when berth stopped runs again from its start (its temporary fleets ended with berth).

mod payloads;
mod run;

use crate::reconcile::{Done, Queue, Reconciler};
use crate::{ControlError, Controller};
use berth_domain::{validate_instance_type, validate_name, NameKey, RecommendationJob, RecommendationJobStatus, ResourceKind};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;

const JOBS: &str = "recommendation-job";

/// The jobs' reconciler: a job pending or in progress that does not run here is run; a job
/// stopping that runs is told to stop, and one that does not run is stopped.
#[derive(Default)]
pub(crate) struct RecommendationJobs {
    stops: std::sync::Mutex<HashMap<NameKey, watch::Sender<bool>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecommendationStep {
    Run,
    MarkStopped,
}

impl RecommendationJobs {
    fn stops(&self) -> std::sync::MutexGuard<'_, HashMap<NameKey, watch::Sender<bool>>> {
        self.stops.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Reconciler for RecommendationJobs {
    type Context = Controller;
    type Object = RecommendationJob;
    type Step = RecommendationStep;
    const KIND: &'static str = "inference recommendations job";

    fn queue(cx: &Controller) -> &Queue<Self> {
        &cx.recommendations
    }

    async fn keys(&self, cx: &Arc<Controller>) -> Result<Vec<String>, ControlError> {
        Ok(cx.recommendation_jobs().await?.into_iter().filter(|j| !j.status.ended()).map(|j| j.name).collect())
    }

    async fn read(&self, cx: &Arc<Controller>, key: &str) -> Result<Option<RecommendationJob>, ControlError> {
        Ok(cx.describe_recommendation_job(key).await.ok())
    }

    fn next(&self, _: &Arc<Controller>, job: &RecommendationJob) -> Option<RecommendationStep> {
        let stops = self.stops();
        match (job.status, stops.get(&NameKey::of(&job.name))) {
            (RecommendationJobStatus::Pending | RecommendationJobStatus::InProgress, None) => Some(RecommendationStep::Run),
            (RecommendationJobStatus::Stopping, Some(stop)) => {
                let _ = stop.send(true);
                None
            }
            (RecommendationJobStatus::Stopping, None) => Some(RecommendationStep::MarkStopped),
            _ => None,
        }
    }

    fn run(&self, cx: &Arc<Controller>, job: RecommendationJob, step: RecommendationStep, done: Done<Self>) {
        let span = tracing::info_span!("recommendation_job", recommendation_job = %job.name, step = ?step);
        let this = cx.clone();
        match step {
            RecommendationStep::Run => {
                let (stop, stopped) = watch::channel(false);
                self.stops().insert(NameKey::of(&job.name), stop);
                cx.work.spawn_detached(span, async move {
                    let key = NameKey::of(&job.name);
                    this.run_recommendation_job(job, stopped).await;
                    this.recommendations.reconciler.stops().remove(&key);
                    drop(done);
                });
            }
            RecommendationStep::MarkStopped => cx.work.spawn_detached(span, async move {
                this.end_recommendation_job(job, Err(None)).await;
                drop(done);
            }),
        }
    }
}

impl Controller {
    pub async fn create_recommendation_job(
        self: &Arc<Self>,
        mut job: RecommendationJob,
        tags: Vec<berth_store::Tag>,
    ) -> Result<RecommendationJob, ControlError> {
        validate_name("jobName", &job.name)?;
        crate::tags::validate_tags(&tags)?;
        match &job.model_package_arn {
            Some(arn) => job.model_package_arn = Some(self.describe_model_package(arn).await?.arn),
            None => {
                self.describe_model(&job.model_name).await.map_err(|_| {
                    ControlError::Validation(format!(
                        "Could not find model \"{}\".",
                        self.account().arn(ResourceKind::Model, &job.model_name)
                    ))
                })?;
            }
        }
        for b in job.benchmarks.iter().filter(|b| !b.existing_endpoint) {
            validate_instance_type(&b.candidate.instance_type).map_err(ControlError::from)?;
        }
        for b in job.benchmarks.iter_mut().filter(|b| b.existing_endpoint) {
            let endpoint = self.describe_endpoint(&b.endpoint_name).await?;
            if endpoint.status != berth_domain::EndpointStatus::InService {
                return Err(ControlError::Validation(format!(
                    "Endpoint {} is {}: an endpoint to test must be InService.",
                    endpoint.name,
                    endpoint.status.as_str()
                )));
            }
            let first = endpoint.variants.first();
            b.candidate.instance_type = first.map(|v| v.instance_type.clone()).unwrap_or_default();
            b.candidate.instance_count = first.map_or(0, |v| v.current_instance_count);
            b.endpoint_name = endpoint.name;
        }
        if let Some(url) = &job.sample_payload_url {
            self.readable_objects_location(url)?;
        }
        match self.describe_recommendation_job(&job.name).await {
            Ok(_) => return Err(ControlError::Validation(format!("Job name {} already exists.", job.name))),
            Err(ControlError::JobNotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let now = self.now();
        job.arn = self.account().arn(ResourceKind::InferenceRecommendationsJob, &job.name);
        (job.status, job.created, job.modified) = (RecommendationJobStatus::Pending, now, now);
        for (i, b) in job.benchmarks.iter_mut().enumerate() {
            if !b.existing_endpoint {
                b.endpoint_name = run::route_name(&job.name, i);
            }
        }
        self.store_recommendation_job(&job).await?;
        if !tags.is_empty() {
            let arn = job.arn.clone();
            self.db(move |s| s.add_tags(&arn, &tags)).await?;
        }
        tracing::info!(recommendation_job = %job.name, candidates = job.benchmarks.len(), "inference recommendations job created");
        self.reconcile_recommendation_job(&job.name).await;
        Ok(job)
    }

    pub async fn describe_recommendation_job(&self, name: &str) -> Result<RecommendationJob, ControlError> {
        let key = NameKey::of(name);
        self.recommendation_jobs().await?.into_iter().find(|j| NameKey::of(&j.name) == key).ok_or_else(|| {
            ControlError::JobNotFound(format!(
                "Inference Recommendations Job {} does not exist.",
                self.account().arn(ResourceKind::InferenceRecommendationsJob, name)
            ))
        })
    }

    pub async fn recommendation_jobs(&self) -> Result<Vec<RecommendationJob>, ControlError> {
        self.read_records(JOBS).await
    }

    /// Stops a job: `STOPPING` at once, `STOPPED` once its load test and fleet have ended.
    pub async fn stop_recommendation_job(self: &Arc<Self>, name: &str) -> Result<(), ControlError> {
        let mut job = self.describe_recommendation_job(name).await?;
        if job.status.ended() || job.status == RecommendationJobStatus::Stopping {
            return Err(ControlError::Validation(format!(
                "The request was rejected because the job is in status {}.",
                job.status.as_str()
            )));
        }
        (job.status, job.modified) = (RecommendationJobStatus::Stopping, self.now());
        self.store_recommendation_job(&job).await?;
        self.reconcile_recommendation_job(&job.name).await;
        Ok(())
    }

    async fn reconcile_recommendation_job(self: &Arc<Self>, name: &str) {
        if let Err(e) = self.recommendations.enqueue(self, name).await {
            tracing::warn!(recommendation_job = %name, error = %e, "cannot reconcile the job; the next resync tries again");
        }
    }

    async fn store_recommendation_job(&self, job: &RecommendationJob) -> Result<(), ControlError> {
        self.put_record(JOBS, &NameKey::of(&job.name).to_string(), job.created, job).await
    }
}
