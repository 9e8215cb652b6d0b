//! A model-quality execution: the endpoint's answers captured in the window, joined with their
//! ground truth by the request's `InferenceId` (or, without one, the capture's event id) — SageMaker's ground-truth JSON Lines
//! under the job's `GroundTruthS3Input`, and the labels sent to berth's own ground-truth API —
//! give the problem type's metrics, checked against the baseline's constraints and published
//! in `aws/sagemaker/Endpoints/model-metrics`.

use super::executions::{publishes_metrics, Findings};
use super::MAX_OBJECT;
use crate::capture::inference_time;
use crate::ground_truth::ground_truth_line;
use crate::labels::{labels_kind, parse_labels};
use crate::Controller;
use berth_domain::{MonitoringExecution, MonitoringSchedule, Timestamp};
use berth_monitor::{
    captured_events, evaluate_model_quality, Attributes, ModelQualityAnalyzer, ModelQualityConstraints, ModelQualityStatistics, ProblemType,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// The namespace SageMaker publishes model-quality metrics in.
pub const MODEL_METRICS_NAMESPACE: &str = "aws/sagemaker/Endpoints/model-metrics";

impl Controller {
    pub(super) async fn execute_model_quality(
        &self,
        schedule: &MonitoringSchedule,
        execution: &MonitoringExecution,
        objects: Vec<(String, String)>,
        output: &str,
    ) -> Result<Findings, String> {
        let job = &schedule.job;
        let quality = job.model_quality.as_ref().ok_or("the schedule's job has no model-quality configuration")?;
        let problem = ProblemType::parse(&quality.problem_type)?;
        let attributes = Attributes {
            inference: quality.inference_attribute.clone(),
            probability: quality.probability_attribute.clone(),
            ground_truth: None,
            probability_threshold: quality.probability_threshold,
        };
        let mut analyzer = ModelQualityAnalyzer::new(problem, &attributes)?;
        let labels = std::sync::Arc::new(self.ground_truth_labels(&schedule.endpoint_name, &quality.ground_truth_s3_uri).await?);
        let (from, to) = (inference_time(execution.window.0), inference_time(execution.window.1));
        let mut captured = 0usize;
        // With several variants, each one's metrics too (berth's per-variant metrics).
        let per_variant = objects.iter().any(|(_, v)| *v != objects[0].1);
        let mut by_variant: BTreeMap<String, ModelQualityAnalyzer> = BTreeMap::new();
        for (uri, variant) in objects {
            let data = self.read_object(&uri, MAX_OBJECT).await?;
            let labels = labels.clone();
            let (from, to) = (from.clone(), to.clone());
            let own = match (per_variant, by_variant.remove(&variant)) {
                (false, _) => None,
                (true, Some(own)) => Some(own),
                (true, None) => Some(ModelQualityAnalyzer::new(problem, &attributes)?),
            };
            let (a, own, n) =
                tokio::task::spawn_blocking(move || -> Result<(ModelQualityAnalyzer, Option<ModelQualityAnalyzer>, usize), String> {
                    let mut own = own;
                    let mut n = 0;
                    for event in captured_events(&uri, &data) {
                        let event = event?;
                        if !event.within(&from, &to) {
                            continue;
                        }
                        n += 1;
                        // Ground truth's eventId names the request's InferenceId when it had one (as
                        // SageMaker's merge reads it), else the capture's own eventId.
                        let by_inference = event.inference_id.as_ref().map(|id| [format!("event:{id}"), format!("inference:{id}")]);
                        let by_event = event.event_id.as_ref().map(|id| format!("event:{id}"));
                        let keys = by_inference.into_iter().flatten().chain(by_event);
                        let Some(label) = keys.filter_map(|k| labels.get(&k)).next() else { continue };
                        let (body, content_type) = event.data("endpointOutput")?;
                        let failed = |e: String| format!("{}: event {}: {e}", event.source, event.event_id.as_deref().unwrap_or("?"));
                        analyzer.add_answer(&body, &content_type, label).map_err(failed)?;
                        own.as_mut().map(|o| o.add_answer(&body, &content_type, label)).transpose().map_err(failed)?;
                    }
                    Ok((analyzer, own, n))
                })
                .await
                .map_err(|e| e.to_string())??;
            (analyzer, captured) = (a, captured + n);
            by_variant.extend(own.map(|o| (variant, o)));
        }
        if analyzer.is_empty() {
            return Err(format!(
                "Job inputs had no data: none of the {captured} inferences captured from {from} to {to} has ground truth \
                 (its eventMetadata.eventId is the request's InferenceId, or the capture's eventId) under {} or in berth's ground-truth API",
                quality.ground_truth_s3_uri
            ));
        }
        let statistics = analyzer.statistics(inference_time(execution.scheduled.millis()))?;
        let violations = match &job.baseline_constraints {
            Some(uri) => {
                let constraints: ModelQualityConstraints = self.read_json(uri, "constraints").await?;
                Some(evaluate_model_quality(&statistics, &constraints).map_err(|e| format!("Error: {e}"))?)
            }
            None => None,
        };
        self.write_result(output, "statistics.json", &statistics).await?;
        if let Some(v) = &violations {
            self.write_result(output, "constraint_violations.json", v).await?;
        }
        if publishes_metrics(job) {
            self.publish_model_metrics(schedule, None, execution.scheduled, &statistics).await;
            for (variant, own) in &by_variant {
                if let Ok(s) = own.statistics(String::new()) {
                    self.publish_model_metrics(schedule, Some(variant), execution.scheduled, &s).await;
                }
            }
        }
        let figures = statistics.scalars().into_iter().filter(|(_, (v, _))| v.is_finite()).map(|(name, (v, _))| (name, v)).collect();
        let violations =
            violations.map(|v| v.violations.into_iter().map(|v| format!("{}: {}", v.metric_name, v.constraint_check_type)).collect());
        Ok(Findings { violations: violations.unwrap_or_default(), figures })
    }

    /// Labels by `event:<id>` / `inference:<id>`: the ground-truth files under `location`
    /// (each at most 1 GiB), then those sent to berth's API, which win.
    async fn ground_truth_labels(&self, endpoint: &str, location: &str) -> Result<HashMap<String, Value>, String> {
        let mut labels = HashMap::new();
        let files = self.input_objects(location).await.map_err(|e| format!("Error: cannot list the ground truth at {location}: {e}"))?;
        for (uri, _) in files.into_iter().filter(|(u, _)| u.ends_with(".jsonl")) {
            let data = self.read_object(&uri, MAX_OBJECT).await.map_err(|e| format!("Error: cannot read the ground truth {uri}: {e}"))?;
            for (n, line) in String::from_utf8_lossy(&data).lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let truth = ground_truth_line(line).map_err(|e| format!("Error: {uri} line {}: {e}", n + 1))?;
                if let Some(id) = truth.event_id {
                    labels.insert(format!("event:{id}"), truth.label.clone());
                }
                if let Some(id) = truth.inference_id {
                    labels.insert(format!("inference:{id}"), truth.label);
                }
            }
        }
        let kind = labels_kind(endpoint);
        let stored = self.db(move |s| s.records(&kind)).await.map_err(|e| e.to_string())?;
        labels.extend(parse_labels(&stored));
        Ok(labels)
    }

    /// Each scalar metric under its own name (`accuracy`, `f1`, `rmse`, …), as SageMaker
    /// publishes them, at the execution's scheduled time; a variant's with berth's `Variant`
    /// dimension.
    async fn publish_model_metrics(
        &self,
        schedule: &MonitoringSchedule,
        variant: Option<&str>,
        at: Timestamp,
        statistics: &ModelQualityStatistics,
    ) {
        let points =
            statistics.scalars().into_iter().filter(|(_, (value, _))| value.is_finite()).map(|(name, (value, _))| (name, value)).collect();
        self.publish_monitoring_metrics(schedule, variant, MODEL_METRICS_NAMESPACE, at, points).await;
    }
}
