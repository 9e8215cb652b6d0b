//! Model Monitor's schedules: data-quality job definitions, monitoring schedules, and their
//! executions. Each due execution (`cron` hours, `NOW`, berth's `rate(N minutes)`) reads what the
//! endpoint captured in its window, computes its statistics, checks them against the baseline's
//! constraints and statistics, writes `statistics.json` and `constraint_violations.json` under
//! `<output>/<endpoint>/<schedule>/yyyy/mm/dd/hh`, publishes the drift metrics, and is recorded
//! with a processing job of its own (which the SDK reads the results through). Everything is a
//! record in the state store: an execution running when berth stopped is `Failed` at the next
//! start (as a lost processing job is), and the next due one runs as scheduled.

use crate::capture::{inference_time, utc};
use crate::{ControlError, Controller};
use berth_domain::{
    random_uuid, validate_name, ExecutionStatus, MonitoringExecution, MonitoringJobDefinition, MonitoringSchedule, NameKey, ProcessingJob,
    ProcessingJobStatus, ProcessingLocation, ResourceKind, ScheduleExpression, ScheduleStatus, Timestamp,
};
use berth_monitor::{evaluate, Constraints, DatasetAnalyzer, DatasetFormat, Statistics};
use serde_json::json;
use std::sync::Arc;

const DEFINITIONS: &str = "monitoring-job-definition";
const SCHEDULES: &str = "monitoring-schedule";
const EXECUTIONS: &str = "monitoring-execution";
/// The largest capture object, and baseline file, berth reads for an execution.
const MAX_OBJECT: u64 = 1024 * 1024 * 1024;
/// The namespace SageMaker publishes data-quality metrics in.
pub const DATA_METRICS_NAMESPACE: &str = "aws/sagemaker/Endpoints/data-metrics";

impl Controller {
    // ---- job definitions ------------------------------------------------------------------

    pub async fn create_monitoring_job_definition(
        &self,
        mut definition: MonitoringJobDefinition,
        tags: Vec<berth_store::Tag>,
    ) -> Result<MonitoringJobDefinition, ControlError> {
        validate_name("jobDefinitionName", &definition.name)?;
        crate::tags::validate_tags(&tags)?;
        self.check_monitoring_job(&definition.job)?;
        if self.describe_monitoring_job_definition(&definition.name).await.is_ok() {
            return Err(ControlError::Validation(format!("Job definition {} already exists.", definition.name)));
        }
        definition.arn = self.account().arn(ResourceKind::MonitoringJobDefinition, &definition.name);
        definition.created = self.now();
        self.put_record(DEFINITIONS, &NameKey::of(&definition.name).to_string(), definition.created, &definition).await?;
        if !tags.is_empty() {
            let arn = definition.arn.clone();
            self.db(move |s| s.add_tags(&arn, &tags)).await?;
        }
        Ok(definition)
    }

    pub async fn describe_monitoring_job_definition(&self, name: &str) -> Result<MonitoringJobDefinition, ControlError> {
        let key = NameKey::of(name);
        self.monitoring_job_definitions()
            .await?
            .into_iter()
            .find(|d| NameKey::of(&d.name) == key)
            .ok_or_else(|| ControlError::JobNotFound(format!("Could not find job definition {name}.")))
    }

    pub async fn monitoring_job_definitions(&self) -> Result<Vec<MonitoringJobDefinition>, ControlError> {
        self.read_records(DEFINITIONS).await
    }

    pub async fn delete_monitoring_job_definition(&self, name: &str) -> Result<(), ControlError> {
        let definition = self.describe_monitoring_job_definition(name).await?;
        let key = NameKey::of(&definition.name);
        if let Some(s) =
            self.monitoring_schedules().await?.into_iter().find(|s| s.job_definition_name.as_deref().map(NameKey::of) == Some(key.clone()))
        {
            return Err(ControlError::Validation(format!(
                "Job definition {} is used by monitoring schedule {}; delete the schedule first.",
                definition.name, s.name
            )));
        }
        let key = key.to_string();
        self.db(move |s| s.delete_record(DEFINITIONS, &key).map(|_| ())).await
    }

    /// What berth checks of a monitoring job when it is defined: the analyzer's image, an
    /// endpoint input, an output it may write.
    fn check_monitoring_job(&self, job: &berth_domain::MonitoringJob) -> Result<(), ControlError> {
        if !berth_domain::is_model_monitor_analyzer(&job.image) {
            return Err(ControlError::Validation(format!(
                "berth runs SageMaker Model Monitor's analyzer ({}) itself; {} is not it.",
                berth_domain::MODEL_MONITOR_ANALYZER,
                job.image
            )));
        }
        validate_name("endpointName", &job.endpoint_name)?;
        for (name, uri) in [("ConstraintsResource", &job.baseline_constraints), ("StatisticsResource", &job.baseline_statistics)] {
            if let Some(uri) = uri {
                if !uri.starts_with("s3://") && !uri.starts_with("file://") {
                    return Err(ControlError::Validation(format!("{name}.S3Uri {uri} must be an s3:// or file:// URI.")));
                }
            }
        }
        self.writable_destination("MonitoringOutputs.S3Output.S3Uri", &job.output_s3_uri)?;
        Ok(())
    }

    // ---- schedules ------------------------------------------------------------------------

    pub async fn create_monitoring_schedule(
        self: &Arc<Self>,
        mut schedule: MonitoringSchedule,
        tags: Vec<berth_store::Tag>,
    ) -> Result<MonitoringSchedule, ControlError> {
        validate_name("monitoringScheduleName", &schedule.name)?;
        crate::tags::validate_tags(&tags)?;
        if self.describe_monitoring_schedule(&schedule.name).await.is_ok() {
            return Err(ControlError::Validation(format!("Monitoring schedule {} already exists.", schedule.name)));
        }
        self.resolve_schedule_job(&mut schedule).await?;
        let now = self.now();
        schedule.arn = self.account().arn(ResourceKind::MonitoringSchedule, &schedule.name);
        (schedule.created, schedule.modified, schedule.status) = (now, now, ScheduleStatus::Scheduled);
        // Due from now on: no execution for an hour that began before the schedule.
        schedule.last_scheduled = Some(now);
        self.store_schedule(&schedule).await?;
        if !tags.is_empty() {
            let arn = schedule.arn.clone();
            self.db(move |s| s.add_tags(&arn, &tags)).await?;
        }
        tracing::info!(monitoring_schedule = %schedule.name, endpoint = %schedule.endpoint_name, "monitoring schedule created");
        if schedule.expression == ScheduleExpression::Now {
            self.start_now_execution(&schedule).await?;
        }
        Ok(schedule)
    }

    /// A schedule that names a job definition takes its job from it; one with an inline
    /// definition was given its job already.
    async fn resolve_schedule_job(&self, schedule: &mut MonitoringSchedule) -> Result<(), ControlError> {
        if let Some(name) = &schedule.job_definition_name {
            let definition = self.describe_monitoring_job_definition(name).await.map_err(|_| {
                ControlError::Validation(format!("Could not find job definition {name}: create it (CreateDataQualityJobDefinition) first."))
            })?;
            if definition.kind != schedule.kind {
                return Err(ControlError::Validation(format!(
                    "Job definition {name} is a {} job definition, not {}.",
                    definition.kind.as_str(),
                    schedule.kind.as_str()
                )));
            }
            schedule.job = definition.job;
        } else {
            self.check_monitoring_job(&schedule.job)?;
        }
        schedule.endpoint_name = schedule.job.endpoint_name.clone();
        self.describe_endpoint(&schedule.endpoint_name)
            .await
            .map_err(|_| ControlError::Validation(format!("Could not find endpoint {} to monitor.", schedule.endpoint_name)))?;
        Ok(())
    }

    pub async fn describe_monitoring_schedule(&self, name: &str) -> Result<MonitoringSchedule, ControlError> {
        let key = NameKey::of(name);
        self.monitoring_schedules().await?.into_iter().find(|s| NameKey::of(&s.name) == key).ok_or_else(|| {
            ControlError::JobNotFound(format!(
                "Monitoring Schedule {} does not exist.",
                self.account().arn(ResourceKind::MonitoringSchedule, name)
            ))
        })
    }

    pub async fn monitoring_schedules(&self) -> Result<Vec<MonitoringSchedule>, ControlError> {
        self.read_records(SCHEDULES).await
    }

    /// Replaces a schedule's configuration (its expression, job); its executions stay.
    pub async fn update_monitoring_schedule(self: &Arc<Self>, mut update: MonitoringSchedule) -> Result<MonitoringSchedule, ControlError> {
        let current = self.describe_monitoring_schedule(&update.name).await?;
        self.resolve_schedule_job(&mut update).await?;
        let schedule = MonitoringSchedule {
            name: current.name,
            arn: current.arn,
            status: current.status,
            created: current.created,
            modified: self.now(),
            last_scheduled: Some(self.now()),
            ..update
        };
        self.store_schedule(&schedule).await?;
        if schedule.expression == ScheduleExpression::Now && schedule.status == ScheduleStatus::Scheduled {
            self.start_now_execution(&schedule).await?;
        }
        Ok(schedule)
    }

    pub async fn delete_monitoring_schedule(&self, name: &str) -> Result<(), ControlError> {
        let schedule = self.describe_monitoring_schedule(name).await?;
        let key = NameKey::of(&schedule.name).to_string();
        self.db(move |s| s.delete_record(SCHEDULES, &key).map(|_| ())).await?;
        tracing::info!(monitoring_schedule = %schedule.name, "monitoring schedule deleted");
        Ok(())
    }

    /// `StartMonitoringSchedule` (`running` true) and `StopMonitoringSchedule`.
    pub async fn set_monitoring_schedule_running(&self, name: &str, running: bool) -> Result<(), ControlError> {
        let mut schedule = self.describe_monitoring_schedule(name).await?;
        let now = self.now();
        schedule.status = if running { ScheduleStatus::Scheduled } else { ScheduleStatus::Stopped };
        schedule.modified = now;
        if running {
            schedule.last_scheduled = Some(now);
        }
        self.store_schedule(&schedule).await
    }

    async fn store_schedule(&self, schedule: &MonitoringSchedule) -> Result<(), ControlError> {
        self.put_record(SCHEDULES, &NameKey::of(&schedule.name).to_string(), schedule.created, schedule).await
    }

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
            schedule.last_scheduled = Some(Timestamp::from_millis(at));
            self.store_schedule(&schedule).await?;
            self.start_execution(&schedule, at, window).await?;
        }
        Ok(())
    }

    /// `NOW`: one execution at once over the schedule's data-analysis window.
    async fn start_now_execution(self: &Arc<Self>, schedule: &MonitoringSchedule) -> Result<(), ControlError> {
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

    /// Where the endpoint's captured data is (`<destination>/<endpoint>`), if it captures.
    async fn capture_prefix(&self, endpoint: &str) -> Option<String> {
        let endpoint = self.describe_endpoint(endpoint).await.ok()?;
        let capture = endpoint.data_capture.filter(|c| c.enabled)?;
        Some(format!("{}/{}", capture.destination.trim_end_matches('/'), endpoint.name))
    }

    /// The execution's work; Ok(number of violations).
    async fn execute(
        &self,
        schedule: &MonitoringSchedule,
        execution: &MonitoringExecution,
        capture: Option<&str>,
        output: &str,
    ) -> Result<usize, String> {
        let capture = capture.ok_or_else(|| {
            format!("Endpoint {} does not capture its data (DataCaptureConfig): Job inputs had no data", schedule.endpoint_name)
        })?;
        let (from, to) = execution.window;
        let objects = self.input_objects(capture).await.unwrap_or_default();
        let mut analyzer = DatasetAnalyzer::new(DatasetFormat::CaptureJson).within(inference_time(from), inference_time(to));
        for (uri, relative) in objects {
            if !hour_in_window(&relative, from, to) {
                continue;
            }
            let data = self.read_object(&uri, MAX_OBJECT).await?;
            analyzer = tokio::task::spawn_blocking(move || analyzer.add_object(&uri, &data).map(|()| analyzer))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("Error: the captured data could not be read: {e}"))?;
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
        let violations = evaluation.as_ref().map_or(0, |e| e.violations.violations.len());
        let write = |file: &str, body: serde_json::Result<Vec<u8>>| {
            let uri = format!("{output}/{file}");
            async move {
                let body = body.map_err(|e| e.to_string())?;
                self.write_object(&uri, body, None).await.map_err(|e| format!("Error: cannot write {uri}: {e}"))
            }
        };
        write("statistics.json", serde_json::to_vec_pretty(&statistics)).await?;
        if let Some(e) = &evaluation {
            write("constraint_violations.json", serde_json::to_vec_pretty(&e.violations)).await?;
        }
        if job.environment.get("publish_cloudwatch_metrics").map(String::as_str) != Some("Disabled") {
            self.publish_data_metrics(schedule, execution.scheduled, &statistics, evaluation.as_ref()).await;
        }
        Ok(violations)
    }

    async fn read_json<T: serde::de::DeserializeOwned>(&self, uri: &str, what: &str) -> Result<T, String> {
        let data = self.read_object(uri, MAX_OBJECT).await.map_err(|e| format!("Error: cannot read the baseline {what} {uri}: {e}"))?;
        serde_json::from_slice(&data).map_err(|e| format!("Error: the baseline {what} {uri} is not a {what} file: {e}"))
    }

    /// `feature_baseline_drift_<feature>` and `feature_non_null_<feature>` per feature, in the
    /// namespace and dimensions SageMaker publishes them with, at the execution's scheduled time.
    async fn publish_data_metrics(
        &self,
        schedule: &MonitoringSchedule,
        at: Timestamp,
        statistics: &Statistics,
        evaluation: Option<&berth_monitor::Evaluation>,
    ) {
        let dimensions = crate::metrics::canonical_dimensions(&[
            ("Endpoint".to_string(), schedule.endpoint_name.clone()),
            ("MonitoringSchedule".to_string(), schedule.name.clone()),
        ]);
        let point = |name: String, value: f64| berth_store::CustomDatapoint {
            namespace: DATA_METRICS_NAMESPACE.into(),
            metric_name: name,
            dimensions: dimensions.clone(),
            ts: (at.millis() / 1000) as u64,
            unit: "None".into(),
            sample_count: 1.0,
            sum: value,
            minimum: value,
            maximum: value,
        };
        let mut points = Vec::new();
        for f in &statistics.features {
            let common = f.common();
            let total = (common.num_present + common.num_missing).max(1) as f64;
            points.push(point(format!("feature_non_null_{}", f.name), common.num_present as f64 / total));
        }
        for d in evaluation.map(|e| e.drift.as_slice()).unwrap_or_default() {
            points.push(point(format!("feature_baseline_drift_{}", d.feature), d.distance));
        }
        if let Err(e) = self.put_custom_datapoints(points).await {
            tracing::warn!(monitoring_schedule = %schedule.name, error = %e, "cannot store the execution's metrics");
        }
    }

    async fn end_execution(&self, mut execution: MonitoringExecution, mut job: ProcessingJob, outcome: Result<usize, String>) {
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
            Ok(0) => {
                execution.status = ExecutionStatus::Completed;
                job.exit_message = Some("Completed: Job completed successfully with no violations.".into());
            }
            Ok(n) => {
                execution.status = ExecutionStatus::CompletedWithViolations;
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
