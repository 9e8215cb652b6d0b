//! A data-quality execution: the statistics of the captured requests in the window, checked
//! against the baseline's constraints and statistics, and the drift metrics.

use super::executions::{publishes_metrics, Findings};
use super::MAX_OBJECT;
use crate::capture::inference_time;
use crate::Controller;
use berth_domain::{MonitoringExecution, MonitoringSchedule, Timestamp};
use berth_monitor::{evaluate, Constraints, DatasetAnalyzer, DatasetFormat, Statistics};
use std::collections::BTreeMap;

/// Most features whose drift an execution keeps for the dashboard (the most drifted).
const MAX_CHARTED_FEATURES: usize = 50;

/// The namespace SageMaker publishes data-quality metrics in.
pub const DATA_METRICS_NAMESPACE: &str = "aws/sagemaker/Endpoints/data-metrics";

impl Controller {
    pub(super) async fn execute_data_quality(
        &self,
        schedule: &MonitoringSchedule,
        execution: &MonitoringExecution,
        objects: Vec<(String, String)>,
        output: &str,
    ) -> Result<Findings, String> {
        let (from, to) = (inference_time(execution.window.0), inference_time(execution.window.1));
        let new = || DatasetAnalyzer::new(DatasetFormat::CaptureJson).within(from.clone(), to.clone());
        // With several variants, each one's statistics too (berth's per-variant metrics).
        let per_variant = objects.iter().any(|(_, v)| *v != objects[0].1);
        let mut by_variant: BTreeMap<String, DatasetAnalyzer> = BTreeMap::new();
        let mut analyzer = new();
        for (uri, variant) in objects {
            let data = self.read_object(&uri, MAX_OBJECT).await?;
            let own = per_variant.then(|| by_variant.remove(&variant).unwrap_or_else(new));
            let (all, own) = tokio::task::spawn_blocking(move || {
                let mut own = own;
                analyzer.add_object(&uri, &data)?;
                own.as_mut().map(|o| o.add_object(&uri, &data)).transpose()?;
                Ok::<_, String>((analyzer, own))
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("Error: the captured data could not be read: {e}"))?;
            analyzer = all;
            by_variant.extend(own.map(|o| (variant, o)));
        }
        let mut statistics = analyzer.statistics()?;
        let job = &schedule.job;
        let constraints: Option<Constraints> = match &job.baseline_constraints {
            Some(uri) => Some(self.read_json(uri, "constraints").await?),
            None => None,
        };
        if let Some(c) = &constraints {
            berth_monitor::name_by_position(&mut statistics, c);
        }
        let baseline: Option<Statistics> = match &job.baseline_statistics {
            Some(uri) => Some(self.read_json(uri, "statistics").await?),
            None => None,
        };
        let evaluation = constraints.as_ref().map(|c| evaluate(&statistics, c, baseline.as_ref()));
        self.write_result(output, "statistics.json", &statistics).await?;
        if let Some(e) = &evaluation {
            self.write_result(output, "constraint_violations.json", &e.violations).await?;
        }
        if publishes_metrics(job) {
            self.publish_data_metrics(schedule, None, execution.scheduled, &statistics, evaluation.as_ref()).await;
            for (variant, analyzer) in &by_variant {
                let Ok(mut own) = analyzer.statistics() else { continue };
                if let Some(c) = &constraints {
                    berth_monitor::name_by_position(&mut own, c);
                }
                let own_evaluation = constraints.as_ref().map(|c| evaluate(&own, c, baseline.as_ref()));
                self.publish_data_metrics(schedule, Some(variant), execution.scheduled, &own, own_evaluation.as_ref()).await;
            }
        }
        let Some(evaluation) = evaluation else { return Ok(Findings::default()) };
        // The most drifted features, for the dashboard's chart.
        let mut drift: Vec<(String, f64)> = evaluation.drift.iter().map(|d| (d.feature.clone(), d.distance)).collect();
        drift.sort_by(|a, b| b.1.total_cmp(&a.1));
        drift.truncate(MAX_CHARTED_FEATURES);
        Ok(Findings {
            violations: evaluation
                .violations
                .violations
                .iter()
                .map(|v| format!("{}: {}", v.feature_name, v.constraint_check_type))
                .collect(),
            figures: drift.into_iter().collect(),
        })
    }

    pub(super) async fn read_json<T: serde::de::DeserializeOwned>(&self, uri: &str, what: &str) -> Result<T, String> {
        let data = self.read_object(uri, MAX_OBJECT).await.map_err(|e| format!("Error: cannot read the baseline {what} {uri}: {e}"))?;
        serde_json::from_slice(&data).map_err(|e| format!("Error: the baseline {what} {uri} is not a {what} file: {e}"))
    }

    /// `feature_baseline_drift_<feature>` and `feature_non_null_<feature>` per feature, in the
    /// namespace and dimensions SageMaker publishes them with, at the execution's scheduled time.
    async fn publish_data_metrics(
        &self,
        schedule: &MonitoringSchedule,
        variant: Option<&str>,
        at: Timestamp,
        statistics: &Statistics,
        evaluation: Option<&berth_monitor::Evaluation>,
    ) {
        let mut points = Vec::new();
        for f in &statistics.features {
            let common = f.common();
            let total = (common.num_present + common.num_missing).max(1) as f64;
            points.push((format!("feature_non_null_{}", f.name), common.num_present as f64 / total));
        }
        for d in evaluation.map(|e| e.drift.as_slice()).unwrap_or_default() {
            points.push((format!("feature_baseline_drift_{}", d.feature), d.distance));
        }
        self.publish_monitoring_metrics(schedule, variant, DATA_METRICS_NAMESPACE, at, points).await;
    }
}
