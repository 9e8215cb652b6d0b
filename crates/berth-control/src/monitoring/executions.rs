//! A schedule's executions: when each is due, its record and processing job, running it in the
//! background, and its end (or, after a restart, its failure).

use super::EXECUTIONS;
use crate::capture::{inference_time, utc};
use crate::{ControlError, Controller};
use berth_domain::{
    random_uuid, ExecutionStatus, MonitoringExecution, MonitoringSchedule, MonitoringType, NameKey, ProcessingJob, ProcessingJobStatus,
    ProcessingLocation, ResourceKind, ScheduleStatus, Timestamp,
};
use serde_json::json;
use std::sync::Arc;

impl Controller {
    // ---- executions -----------------------------------------------------------------------

    pub async fn monitoring_executions(&self) -> Result<Vec<MonitoringExecution>, ControlError> {
        self.read_records(EXECUTIONS).await
    }

    /// The latest execution of a schedule, for DescribeMonitoringSchedule.
    pub async fn last_monitoring_execution(&self, schedule: &str) -> Result<Option<MonitoringExecution>, ControlError> {
        let key = NameKey::of(schedule);
        Ok(self
            .monitoring_executions()
            .await?
            .into_iter()
            .filter(|e| NameKey::of(&e.schedule_name) == key)
            .max_by_key(|e| e.scheduled.millis()))
    }

    /// Runs each schedule's executions that are due (the background calls this every few
    /// seconds): at most one per schedule per call, the latest due.
    pub async fn run_due_monitoring(self: &Arc<Self>) -> Result<(), ControlError> {
        let now = self.now().millis();
        for mut schedule in self.monitoring_schedules().await? {
            if schedule.status != ScheduleStatus::Scheduled {
                continue;
            }
            let after = schedule.last_scheduled.map_or(schedule.created.millis(), |t| t.millis() + 1);
            let Some((mut at, mut window)) = schedule.expression.next_at_or_after(after) else { continue };
            if at > now {
                continue;
            }
            // Missed several (berth was down): run the latest only.
            while let Some((next, next_window)) = schedule.expression.next_at_or_after(at + 1).filter(|(n, _)| *n <= now) {
                (at, window) = (next, next_window);
            }
            if let Some((start, end)) = schedule.job.window_offsets {
                window = (at + start, at + end);
            }
            schedule.last_scheduled = Some(Timestamp::from_millis(at));
            self.store_schedule(&schedule).await?;
            self.start_execution(&schedule, at, window).await?;
        }
        Ok(())
    }

    /// `NOW`: one execution at once over the schedule's data-analysis window.
    pub(super) async fn start_now_execution(self: &Arc<Self>, schedule: &MonitoringSchedule) -> Result<(), ControlError> {
        let now = self.now().millis();
        let (start, end) = schedule.analysis_window.unwrap_or((-3_600_000, 0));
        self.start_execution(schedule, now, (now + start, now + end)).await
    }

    /// Records an execution and its processing job, then runs it in the background.
    async fn start_execution(self: &Arc<Self>, schedule: &MonitoringSchedule, at: i64, window: (i64, i64)) -> Result<(), ControlError> {
        let now = self.now();
        let scheduled = Timestamp::from_millis(at);
        let t = utc(at);
        let job_name = format!(
            "model-monitoring-{:04}{:02}{:02}{:02}{:02}-{}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            &random_uuid().replace('-', "")[..16]
        );
        let job = &schedule.job;
        let output = format!(
            "{}/{}/{}/{:04}/{:02}/{:02}/{:02}",
            job.output_s3_uri.trim_end_matches('/'),
            job.endpoint_name,
            schedule.name,
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour()
        );
        let capture = self.capture_prefix(&job.endpoint_name).await;
        let mut environment = job.environment.clone();
        let mut set = |k: &str, v: String| {
            environment.entry(k.to_string()).or_insert(v);
        };
        set("dataset_format", r#"{"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}"#.into());
        set("dataset_source", job.input_local_path.clone());
        set("output_path", job.output_local_path.clone());
        set("publish_cloudwatch_metrics", "Enabled".into());
        set("sagemaker_endpoint_name", job.endpoint_name.clone());
        set("sagemaker_monitoring_schedule_name", schedule.name.clone());
        set("start_time", inference_time(window.0));
        set("end_time", inference_time(window.1));
        set("metric_time", inference_time(at));
        if job.baseline_constraints.is_some() {
            set("baseline_constraints", "/opt/ml/processing/baseline/constraints/constraints.json".into());
        }
        if job.baseline_statistics.is_some() {
            set("baseline_statistics", "/opt/ml/processing/baseline/stats/statistics.json".into());
        }
        if let Some(q) = &job.model_quality {
            set("analysis_type", "MODEL_QUALITY".into());
            set("problem_type", q.problem_type.clone());
            for (name, value) in [("inference_attribute", &q.inference_attribute), ("probability_attribute", &q.probability_attribute)] {
                if let Some(v) = value {
                    set(name, v.clone());
                }
            }
            if let Some(t) = q.probability_threshold {
                set("probability_threshold_attribute", t.to_string());
            }
        }
        let mut inputs = vec![ProcessingLocation {
            name: "input_1".into(),
            s3_uri: capture.clone().unwrap_or_default(),
            local_path: job.input_local_path.clone(),
        }];
        if let Some(c) = &job.baseline_constraints {
            inputs.push(ProcessingLocation {
                name: "constraints".into(),
                s3_uri: c.clone(),
                local_path: "/opt/ml/processing/baseline/constraints".into(),
            });
        }
        if let Some(q) = &job.model_quality {
            inputs.push(ProcessingLocation {
                name: "groundtruth_input_1".into(),
                s3_uri: q.ground_truth_s3_uri.clone(),
                local_path: "/opt/ml/processing/groundtruth".into(),
            });
        }
        if let Some(s) = &job.baseline_statistics {
            inputs.push(ProcessingLocation {
                name: "baseline".into(),
                s3_uri: s.clone(),
                local_path: "/opt/ml/processing/baseline/stats".into(),
            });
        }
        let outputs = vec![ProcessingLocation { name: "result".into(), s3_uri: output.clone(), local_path: job.output_local_path.clone() }];
        let definition = json!({
            "ProcessingInputs": inputs.iter().map(|i| json!({"InputName": i.name, "AppManaged": false, "S3Input": {"S3Uri": i.s3_uri, "LocalPath": i.local_path, "S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated", "S3CompressionType": "None"}})).collect::<Vec<_>>(),
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "result", "S3Output": {"S3Uri": output, "LocalPath": job.output_local_path, "S3UploadMode": "Continuous"}, "AppManaged": false}]},
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}},
            "StoppingCondition": {"MaxRuntimeInSeconds": job.max_runtime_secs.unwrap_or(3600)},
            "AppSpecification": {"ImageUri": job.image},
            "Environment": environment,
            "RoleArn": job.role_arn,
        });
        let processing = ProcessingJob {
            name: job_name.clone(),
            arn: self.account().arn(ResourceKind::ProcessingJob, &job_name),
            status: ProcessingJobStatus::InProgress,
            failure_reason: None,
            exit_message: None,
            created: now,
            modified: now,
            started: Some(now),
            ended: None,
            image: job.image.clone(),
            environment,
            inputs,
            outputs,
            max_runtime_secs: job.max_runtime_secs,
            monitoring_schedule_arn: Some(schedule.arn.clone()),
            definition,
            log: Vec::new(),
        };
        let execution = MonitoringExecution {
            schedule_name: schedule.name.clone(),
            scheduled,
            created: now,
            modified: now,
            status: ExecutionStatus::InProgress,
            processing_job_name: job_name.clone(),
            processing_job_arn: processing.arn.clone(),
            endpoint_name: job.endpoint_name.clone(),
            failure_reason: None,
            job_definition_name: schedule.job_definition_name.clone(),
            kind: schedule.kind,
            window,
            violations: Vec::new(),
            figures: Default::default(),
        };
        self.store_processing_job(&processing).await?;
        self.store_execution(&execution).await?;
        tracing::info!(monitoring_schedule = %schedule.name, processing_job = %job_name, "monitoring execution started");
        let (this, schedule) = (self.clone(), schedule.clone());
        let span = tracing::info_span!("monitoring_execution", monitoring_schedule = %schedule.name, processing_job = %job_name);
        self.work.spawn_detached(span, async move {
            let outcome = crate::work::caught(this.execute(&schedule, &execution, capture.as_deref(), &output))
                .await
                .unwrap_or_else(|panic| Err(format!("berth failed while running the execution: {panic}")));
            this.end_execution(execution, processing, outcome).await;
        });
        Ok(())
    }

    /// The execution's work: what it found.
    async fn execute(
        &self,
        schedule: &MonitoringSchedule,
        execution: &MonitoringExecution,
        capture: Option<&str>,
        output: &str,
    ) -> Result<Findings, String> {
        let capture = capture.ok_or_else(|| {
            format!("Endpoint {} does not capture its data (DataCaptureConfig): Job inputs had no data", schedule.endpoint_name)
        })?;
        let (from, to) = execution.window;
        // The capture objects of the window's hours, each with its variant (`<variant>/yyyy/...`).
        let objects: Vec<(String, String)> = self
            .input_objects(capture)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, relative)| hour_in_window(relative, from, to))
            .map(|(uri, relative)| (uri, relative.split('/').next().unwrap_or_default().to_string()))
            .collect();
        match schedule.kind {
            MonitoringType::DataQuality => self.execute_data_quality(schedule, execution, objects, output).await,
            MonitoringType::ModelQuality => self.execute_model_quality(schedule, execution, objects, output).await,
        }
    }

    /// Writes one of an execution's result files, pretty-printed as the analyzer writes them.
    pub(super) async fn write_result(&self, output: &str, file: &str, body: &impl serde::Serialize) -> Result<(), String> {
        let uri = format!("{output}/{file}");
        let body = serde_json::to_vec_pretty(body).map_err(|e| e.to_string())?;
        self.write_object(&uri, body, None).await.map_err(|e| format!("Error: cannot write {uri}: {e}"))
    }

    /// Stores an execution's metrics in `namespace`, with the `Endpoint` and
    /// `MonitoringSchedule` dimensions SageMaker gives them (and berth's `Variant`, for one
    /// variant's), at its scheduled time.
    pub(super) async fn publish_monitoring_metrics(
        &self,
        schedule: &MonitoringSchedule,
        variant: Option<&str>,
        namespace: &str,
        at: Timestamp,
        values: Vec<(String, f64)>,
    ) {
        let mut dimensions =
            vec![("Endpoint".to_string(), schedule.endpoint_name.clone()), ("MonitoringSchedule".to_string(), schedule.name.clone())];
        dimensions.extend(variant.map(|v| ("Variant".to_string(), v.to_string())));
        let dimensions = crate::metrics::canonical_dimensions(&dimensions);
        let points = values
            .into_iter()
            .map(|(name, value)| berth_store::CustomDatapoint {
                namespace: namespace.into(),
                metric_name: name,
                dimensions: dimensions.clone(),
                ts: (at.millis() / 1000) as u64,
                unit: "None".into(),
                sample_count: 1.0,
                sum: value,
                minimum: value,
                maximum: value,
            })
            .collect();
        if let Err(e) = self.put_custom_datapoints(points).await {
            tracing::warn!(monitoring_schedule = %schedule.name, error = %e, "cannot store the execution's metrics");
        }
    }

    /// Where the endpoint's captured data is (`<destination>/<endpoint>`), if it captures.
    async fn capture_prefix(&self, endpoint: &str) -> Option<String> {
        let endpoint = self.describe_endpoint(endpoint).await.ok()?;
        let capture = endpoint.data_capture.filter(|c| c.enabled)?;
        Some(format!("{}/{}", capture.destination.trim_end_matches('/'), endpoint.name))
    }

    async fn end_execution(&self, mut execution: MonitoringExecution, mut job: ProcessingJob, outcome: Result<Findings, String>) {
        let now = self.now();
        let (from, to) = execution.window;
        job.say(
            job.created.millis(),
            format!(
                "berth's Model Monitor analyzer: monitoring schedule {}, data from {} to {}",
                execution.schedule_name,
                inference_time(from),
                inference_time(to)
            ),
        );
        match &outcome {
            Ok(findings) if findings.violations.is_empty() => {
                execution.status = ExecutionStatus::Completed;
                job.exit_message = Some("Completed: Job completed successfully with no violations.".into());
            }
            Ok(findings) => {
                execution.status = ExecutionStatus::CompletedWithViolations;
                let n = findings.violations.len();
                job.exit_message = Some(format!("CompletedWithViolations: Job completed successfully with {n} violations."));
            }
            Err(reason) => {
                let reason: String = self.redact(reason).chars().take(1024).collect();
                execution.status = ExecutionStatus::Failed;
                execution.failure_reason = Some(reason.clone());
                job.failure_reason = Some(format!("AlgorithmError: {reason}"));
                job.exit_message = Some(reason);
            }
        }
        let said = job.exit_message.clone().unwrap_or_default();
        job.say(now.millis(), said);
        // The processing job completes even when the execution found violations, as on SageMaker.
        job.status = if outcome.is_ok() { ProcessingJobStatus::Completed } else { ProcessingJobStatus::Failed };
        if let Ok(findings) = outcome {
            (execution.violations, execution.figures) = (findings.violations, findings.figures);
        }
        (job.ended, job.modified, execution.modified) = (Some(now), now, now);
        tracing::info!(monitoring_schedule = %execution.schedule_name, status = execution.status.as_str(), "monitoring execution ended");
        if let Err(e) = self.store_processing_job(&job).await {
            tracing::error!(processing_job = %job.name, error = %e, "could not record the execution's processing job");
        }
        if let Err(e) = self.store_execution(&execution).await {
            tracing::error!(monitoring_schedule = %execution.schedule_name, error = %e, "could not record the execution's end");
        }
    }

    async fn store_execution(&self, execution: &MonitoringExecution) -> Result<(), ControlError> {
        let key = format!("{}/{}", NameKey::of(&execution.schedule_name), execution.processing_job_name);
        self.put_record(EXECUTIONS, &key, execution.created, execution).await
    }

    /// After a restart: executions (and their processing jobs) that were running are `Failed`.
    pub async fn fail_interrupted_executions(&self) -> Result<(), ControlError> {
        for mut execution in self.monitoring_executions().await? {
            if execution.status.ended() {
                continue;
            }
            execution.status = ExecutionStatus::Failed;
            execution.failure_reason = Some("InternalServerError: berth stopped while the execution ran.".into());
            execution.modified = self.now();
            self.store_execution(&execution).await?;
            if let Ok(mut job) = self.describe_processing_job(&execution.processing_job_name).await {
                if !job.status.ended() {
                    (job.status, job.failure_reason, job.ended) =
                        (ProcessingJobStatus::Failed, execution.failure_reason.clone(), Some(self.now()));
                    self.store_processing_job(&job).await?;
                }
            }
        }
        Ok(())
    }
}

/// What an execution found: its violations (`<feature or metric>: <check>`), and the figures
/// the dashboard charts.
#[derive(Debug, Default)]
pub(super) struct Findings {
    pub violations: Vec<String>,
    pub figures: std::collections::BTreeMap<String, f64>,
}

/// Whether the job publishes its metrics (`publish_cloudwatch_metrics` is not `Disabled`).
pub(super) fn publishes_metrics(job: &berth_domain::MonitoringJob) -> bool {
    job.environment.get("publish_cloudwatch_metrics").map(String::as_str) != Some("Disabled")
}

/// Whether a capture object (`<variant>/yyyy/mm/dd/hh/<file>`, relative to the endpoint's
/// prefix) holds an hour that meets [from, to).
fn hour_in_window(relative: &str, from: i64, to: i64) -> bool {
    let parts: Vec<&str> = relative.split('/').collect();
    let [.., y, m, d, h, _file] = parts[..] else { return false };
    let (Ok(y), Ok(m), Ok(d), Ok(h)) = (y.parse::<i32>(), m.parse::<u8>(), d.parse::<u8>(), h.parse::<u8>()) else { return false };
    let Ok(month) = time::Month::try_from(m) else { return false };
    let Ok(date) = time::Date::from_calendar_date(y, month, d) else { return false };
    let Ok(start) = date.with_hms(h, 0, 0) else { return false };
    let start = start.assume_utc().unix_timestamp() * 1000;
    start < to && start + 3_600_000 > from
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_objects_are_read_for_the_hours_of_the_window() {
        let hour = 3_600_000;
        let ten = time::Date::from_calendar_date(2026, time::Month::December, 6)
            .unwrap()
            .with_hms(10, 0, 0)
            .unwrap()
            .assume_utc()
            .unix_timestamp()
            * 1000;
        assert!(hour_in_window("AllTraffic/2026/12/06/10/05-01-123-abc.jsonl", ten, ten + hour));
        assert!(!hour_in_window("AllTraffic/2026/12/06/09/59-59-999-abc.jsonl", ten, ten + hour));
        assert!(!hour_in_window("AllTraffic/2026/12/06/11/00-00-000-abc.jsonl", ten, ten + hour));
        assert!(hour_in_window("AllTraffic/2026/12/06/10/x.jsonl", ten + 60_000, ten + 120_000), "a minute's window is in its hour");
        for odd in ["x.jsonl", "AllTraffic/2026/13/06/10/x", "AllTraffic/2026/12/06/xx/x", "a/b/c/d/e/f"] {
            assert!(!hour_in_window(odd, ten, ten + hour), "{odd}");
        }
        assert_eq!(inference_time(ten + 61_000), "2026-12-06T10:01:01Z");
    }
}
