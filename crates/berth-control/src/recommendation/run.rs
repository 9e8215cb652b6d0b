//! Running a job: each candidate in turn gets a temporary fleet (route
//! `inference-recommendation/<job>/<n>`), its setup time is taken, every sample payload is sent
//! once (a payload the model rejects fails the candidate, naming it), then berth's open-loop
//! generator (berth-load) drives it step by step — the job's traffic pattern, or berth's search
//! for the highest rate that keeps the thresholds — through the router, as clients' requests go.
//! The fleet always ends: after the candidate, when the job is stopped, and (its instances ending
//! with berth) at a restart.

use super::payloads;
use crate::{ControlError, Controller};
use berth_domain::{
    Benchmark, BenchmarkMetrics, LatencyThreshold, LoadPoint, NameKey, RecommendationJob, RecommendationJobStatus, Traffic, VariantSpec,
    LIST_PRICES,
};
use berth_load::{run_step, Step, StepResult};
use berth_router::{InvokeRequest, Router};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Most requests out at once against one candidate.
const MAX_IN_FLIGHT: usize = 512;
/// The highest rate a candidate is sent, requests a second (the generator's own limit on two
/// cores is well below it; a pattern of more users is held here).
const MAX_RATE: f64 = 20_000.0;
/// How long one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A step holds its rate if it answered at least this share of it.
const HELD: f64 = 0.9;
/// Halvings of the interval between the last rate kept and the first broken.
const REFINEMENTS: usize = 2;

/// The route of a job's `i`-th candidate: `/` is in no endpoint's name.
pub(super) fn route_name(job: &str, i: usize) -> String {
    format!("inference-recommendation/{}/{}", NameKey::of(job), i + 1)
}

/// What a job's candidates are tested with.
struct Load {
    router: Router,
    payloads: Arc<Vec<(String, Bytes)>>,
    content_type: Option<http::HeaderValue>,
}

impl Controller {
    pub(super) async fn run_recommendation_job(self: &Arc<Self>, mut job: RecommendationJob, mut stopped: watch::Receiver<bool>) {
        let now = self.now();
        if job.status == RecommendationJobStatus::InProgress {
            job.say(now.millis(), "berth restarted while the job ran: it runs again from its first candidate");
        }
        for b in &mut job.benchmarks {
            (b.status, b.metrics, b.failure_reason, b.curve, b.recommended) =
                (RecommendationJobStatus::Pending, None, None, Vec::new(), false);
            (b.started, b.ended) = (None, None);
        }
        job.status = RecommendationJobStatus::InProgress;
        job.say(
            now.millis(),
            format!(
                "Inference recommendations job {} ({}): {} candidate(s) of model {}",
                job.name,
                job.job_type.as_str(),
                job.benchmarks.len(),
                job.model_name
            ),
        );
        let _ = self.store_job_progress(&job).await;
        let limit = Duration::from_secs(job.max_duration_secs);
        // The job's own fleets (an existing endpoint it tests is not the job's to end).
        let routes: Vec<String> = job.benchmarks.iter().filter(|b| !b.existing_endpoint).map(|b| b.endpoint_name.clone()).collect();
        let outcome = {
            let work = async {
                match tokio::time::timeout(limit, crate::work::caught(self.benchmark_all(&mut job))).await {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(panic)) => Err(format!("berth failed while running the job: {panic}")),
                    Err(_) => Err(format!("The job ran longer than its JobDurationInSeconds ({} s).", limit.as_secs())),
                }
            };
            tokio::select! {
                outcome = work => outcome.map_err(Some),
                _ = stopped.wait_for(|s| *s) => Err(None),
            }
        };
        // Whatever ended the job, no temporary fleet outlives it.
        for route in &routes {
            self.stop_temporary_fleet(route).await;
        }
        self.end_recommendation_job(job, outcome).await;
    }

    async fn benchmark_all(self: &Arc<Self>, job: &mut RecommendationJob) -> Result<(), String> {
        let url =
            job.sample_payload_url.clone().ok_or("The job has no SamplePayloadUrl: berth load-tests with the job's sample payloads.")?;
        let archive =
            self.read_object(&url, payloads::MAX_ARCHIVE).await.map_err(|e| format!("Cannot read the sample payload {url}: {e}"))?;
        let payloads = payloads::unpack(&archive).map_err(|e| format!("{url}: {e}"))?;
        job.say(self.now().millis(), format!("{} sample payload(s) from {url}", payloads.len()));
        let load = Load {
            router: self.router.get().ok_or("berth's router is not attached")?.clone(),
            payloads: Arc::new(payloads),
            content_type: job.content_type.as_deref().and_then(|c| http::HeaderValue::from_str(c).ok()),
        };
        for i in 0..job.benchmarks.len() {
            self.benchmark(job, i, &load).await;
            let _ = self.store_job_progress(job).await;
        }
        if job.benchmarks.iter().all(|b| b.status == RecommendationJobStatus::Failed) {
            let first = job.benchmarks.iter().find_map(|b| b.failure_reason.clone()).unwrap_or_default();
            return Err(format!("No candidate could be load-tested: {first}"));
        }
        Ok(())
    }

    /// Benchmarks candidate `i`; its outcome is in its record.
    async fn benchmark(self: &Arc<Self>, job: &mut RecommendationJob, i: usize, load: &Load) {
        let started = self.now();
        let (route, candidate) = (job.benchmarks[i].endpoint_name.clone(), job.benchmarks[i].candidate.clone());
        let existing = job.benchmarks[i].existing_endpoint;
        let what = match existing {
            true => format!("Candidate {}/{}: endpoint {route}", i + 1, job.benchmarks.len()),
            false => format!("Candidate {}/{}: {} × {}", i + 1, job.benchmarks.len(), candidate.instance_count, candidate.instance_type),
        };
        job.benchmarks[i].status = RecommendationJobStatus::InProgress;
        job.benchmarks[i].started = Some(started);
        job.say(started.millis(), format!("{what}: {}", if existing { "testing the running endpoint" } else { "starting its instances" }));
        let _ = self.store_job_progress(job).await;
        let t0 = Instant::now();
        let spec = VariantSpec::new("AllTraffic", &job.model_name, &candidate.instance_type, candidate.instance_count);
        let started_fleet = match (existing, &job.model_package_arn) {
            (true, _) => Ok(()),
            (false, None) => self.start_temporary_fleet(&route, &job.arn, spec, &candidate.environment, None).await,
            (false, Some(package)) => match self.describe_model_package(package).await {
                Ok(p) => {
                    let model = berth_domain::Model::new(&p.name, p.containers);
                    self.start_temporary_fleet(&route, &job.arn, spec, &candidate.environment, Some(&model)).await
                }
                Err(e) => Err(e.to_string()),
            },
        };
        let outcome = match started_fleet {
            Err(e) => Err(format!("Its instances did not start: {e}")),
            Ok(()) => {
                let setup = t0.elapsed();
                job.say(self.now().millis(), format!("{what}: in service after {:.1} s", setup.as_secs_f64()));
                match accepts_payloads(load, &route).await {
                    Err(e) => Err(e),
                    Ok(()) => Ok((setup, self.drive(job, &what, &route, load).await)),
                }
            }
        };
        let utilization = self
            .routing
            .metrics()
            .latest_utilization(&berth_metrics::VariantKey { endpoint: route.clone(), variant: "AllTraffic".into() }, started.secs());
        if !existing {
            self.stop_temporary_fleet(&route).await;
        }
        let now = self.now();
        let price = self.instance_price(&candidate.instance_type);
        let thresholds = job.thresholds.clone();
        let b: &mut Benchmark = &mut job.benchmarks[i];
        b.ended = Some(now);
        match outcome {
            Err(reason) => {
                (b.status, b.failure_reason) = (RecommendationJobStatus::Failed, Some(reason.clone()));
                job.say(now.millis(), format!("{what}: failed: {reason}"));
            }
            Ok((setup, curve)) => {
                let best = curve.iter().filter(|p| p.kept).max_by(|a, b| a.achieved_rate.total_cmp(&b.achieved_rate)).cloned();
                let at = best.clone().or_else(|| curve.first().cloned());
                let max_invocations = at.as_ref().map_or(0, |p| (p.achieved_rate * 60.0).round() as u64);
                let cost_per_hour = price.map_or(0.0, |p| p * f64::from(candidate.instance_count));
                b.metrics = Some(BenchmarkMetrics {
                    cost_per_hour,
                    cost_per_inference: if max_invocations > 0 { cost_per_hour / (max_invocations as f64 * 60.0) } else { 0.0 },
                    max_invocations,
                    model_latency: at.as_ref().map_or(0, |p| p.p50_ms.ceil() as u64),
                    cpu_utilization: utilization.as_ref().map(|u| u.averages().0),
                    memory_utilization: utilization.as_ref().map(|u| u.averages().1),
                    model_setup_time: setup.as_secs_f64().ceil() as u64,
                });
                b.recommended = best.is_some();
                b.curve = curve;
                b.status = RecommendationJobStatus::Completed;
                let verdict = match &best {
                    Some(p) => format!("{max_invocations} invocations/minute at p50 {:.1} ms", p.p50_ms),
                    None => format!("no load kept {}", describe_thresholds(&thresholds)),
                };
                job.say(now.millis(), format!("{what}: {verdict}"));
            }
        }
    }

    /// Sends the candidate the job's traffic; each step's figures.
    async fn drive(&self, job: &mut RecommendationJob, what: &str, route: &str, load: &Load) -> Vec<LoadPoint> {
        let thresholds = job.thresholds.clone();
        let cap = job.max_invocations.map_or(f64::MAX, |m| m as f64 / 60.0);
        let mut curve = Vec::new();
        let thresholds = &thresholds;
        let step = |rate: f64, secs: u64| {
            let rate = rate.min(cap).clamp(0.1, MAX_RATE);
            async move {
                let result = run_step(Step { rate, duration: Duration::from_secs(secs) }, MAX_IN_FLIGHT, sender(load, route)).await;
                point(&result, thresholds)
            }
        };
        match job.traffic.clone() {
            Traffic::Steps(steps) => {
                let mut broken = 0;
                for (rate, secs) in steps {
                    let p = step(rate, secs).await;
                    job.say(self.now().millis(), format!("{what}: {}", describe_point(&p)));
                    broken = if p.kept { 0 } else { broken + 1 };
                    curve.push(p);
                    // Two steps in a row past the thresholds: more users will not do better.
                    if broken == 2 {
                        break;
                    }
                }
            }
            Traffic::Search { start, max, step_secs } => {
                let max = max.min(cap);
                let (mut rate, mut kept, mut broke) = (start.min(max), None, None);
                loop {
                    let p = step(rate, step_secs).await;
                    job.say(self.now().millis(), format!("{what}: {}", describe_point(&p)));
                    let ok = p.kept;
                    curve.push(p);
                    if !ok {
                        broke = Some(rate);
                        break;
                    }
                    kept = Some(rate);
                    if rate >= max {
                        break;
                    }
                    rate = (rate * 2.0).min(max);
                }
                if let (Some(mut lo), Some(mut hi)) = (kept, broke) {
                    for _ in 0..REFINEMENTS {
                        let mid = (lo + hi) / 2.0;
                        let p = step(mid, step_secs).await;
                        job.say(self.now().millis(), format!("{what}: {}", describe_point(&p)));
                        if p.kept {
                            lo = mid;
                        } else {
                            hi = mid;
                        }
                        curve.push(p);
                    }
                }
                curve.sort_by(|a, b| a.target_rate.total_cmp(&b.target_rate));
            }
        }
        curve
    }

    /// The operator's price of an instance type per hour, or AWS's list price.
    fn instance_price(&self, instance_type: &str) -> Option<f64> {
        self.settings
            .instance_prices
            .get(instance_type)
            .copied()
            .or_else(|| LIST_PRICES.iter().find(|(t, _)| *t == instance_type).map(|(_, p)| *p))
    }

    /// Records the job's progress; a stop asked meanwhile stays asked.
    async fn store_job_progress(&self, job: &RecommendationJob) -> Result<(), ControlError> {
        let mut job = job.clone();
        if let Ok(stored) = self.describe_recommendation_job(&job.name).await {
            if stored.status == RecommendationJobStatus::Stopping {
                job.status = RecommendationJobStatus::Stopping;
            }
        }
        job.modified = self.now();
        self.store_recommendation_job(&job).await
    }

    /// Records a job's end: `Ok` completed, `Err(Some(reason))` failed, `Err(None)` stopped.
    pub(super) async fn end_recommendation_job(&self, mut job: RecommendationJob, outcome: Result<(), Option<String>>) {
        let now = self.now();
        let (status, unfinished) = match &outcome {
            Ok(()) => (RecommendationJobStatus::Completed, RecommendationJobStatus::Stopped),
            Err(Some(_)) => (RecommendationJobStatus::Failed, RecommendationJobStatus::Failed),
            Err(None) => (RecommendationJobStatus::Stopped, RecommendationJobStatus::Stopped),
        };
        for b in job.benchmarks.iter_mut().filter(|b| !b.status.ended()) {
            (b.status, b.ended) = (unfinished, Some(now));
        }
        job.status = status;
        job.failure_reason = match outcome {
            Err(Some(reason)) => Some(self.redact(&reason).chars().take(1024).collect()),
            Ok(()) if !job.benchmarks.iter().any(|b| b.recommended) => {
                Some(format!("No recommendation: no candidate kept {} at any load tried.", describe_thresholds(&job.thresholds)))
            }
            _ => None,
        };
        (job.completed, job.modified) = (Some(now), now);
        let said = match &job.failure_reason {
            Some(reason) => format!("{}: {reason}", status.as_str()),
            None => format!("{}: {} recommendation(s)", status.as_str(), job.benchmarks.iter().filter(|b| b.recommended).count()),
        };
        job.say(now.millis(), said);
        tracing::info!(recommendation_job = %job.name, status = status.as_str(), "inference recommendations job ended");
        if let Err(e) = self.store_recommendation_job(&job).await {
            tracing::error!(recommendation_job = %job.name, error = %e, "could not record the job's end");
        }
    }
}

/// Each sample payload once: the model must answer every one.
async fn accepts_payloads(load: &Load, route: &str) -> Result<(), String> {
    for (name, body) in load.payloads.iter() {
        invoke(&load.router, route, body.clone(), load.content_type.clone())
            .await
            .map_err(|e| format!("the model rejected sample payload {name}: {e}"))?;
    }
    Ok(())
}

type Request = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// The generator's request `i`: the payloads in turn.
fn sender(load: &Load, route: &str) -> impl Fn(u64) -> Request {
    let (router, payloads, content_type, route) =
        (load.router.clone(), load.payloads.clone(), load.content_type.clone(), route.to_string());
    move |i| {
        let body = payloads[(i as usize) % payloads.len()].1.clone();
        let (router, route, content_type) = (router.clone(), route.clone(), content_type.clone());
        Box::pin(async move { invoke(&router, &route, body, content_type).await })
    }
}

async fn invoke(router: &Router, route: &str, body: Bytes, content_type: Option<http::HeaderValue>) -> Result<(), String> {
    let request = InvokeRequest { body, content_type, timeout: Some(REQUEST_TIMEOUT), ..Default::default() };
    router.invoke(route, request).await.map(|_| ()).map_err(|e| e.to_string())
}

fn point(r: &StepResult, thresholds: &[LatencyThreshold]) -> LoadPoint {
    let ms = |p: f64| r.percentile_ms(p).unwrap_or(f64::INFINITY);
    let within = thresholds.iter().all(|t| ms(t.percentile) <= t.milliseconds);
    LoadPoint {
        target_rate: r.step.rate,
        achieved_rate: r.achieved_rate,
        p50_ms: ms(50.0),
        p95_ms: ms(95.0),
        p99_ms: ms(99.0),
        errors: r.errors,
        dropped: r.dropped,
        kept: r.clean() && within && r.achieved_rate >= HELD * r.step.rate,
    }
}

fn describe_point(p: &LoadPoint) -> String {
    format!(
        "{:.1} req/s asked, {:.1} answered, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, {} error(s), {} dropped: {}",
        p.target_rate,
        p.achieved_rate,
        p.p50_ms,
        p.p95_ms,
        p.p99_ms,
        p.errors,
        p.dropped,
        if p.kept { "kept" } else { "broken" }
    )
}

fn describe_thresholds(thresholds: &[LatencyThreshold]) -> String {
    let each: Vec<String> = thresholds.iter().map(|t| format!("P{} ≤ {} ms", t.percentile, t.milliseconds)).collect();
    if each.is_empty() {
        "its latency thresholds".into()
    } else {
        each.join(" and ")
    }
}
