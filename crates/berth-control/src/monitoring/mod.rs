//! Model Monitor's schedules: data-quality and model-quality job definitions, monitoring
//! schedules, and their executions (`executions.rs`). Each due execution (`cron` hours, `NOW`, berth's `rate(N minutes)`) reads what the
//! endpoint captured in its window, computes its statistics (`data_quality.rs`: the data's; or
//! `model_quality.rs`: the answers' quality against their ground truth), checks them against the
//! baseline's constraints, writes `statistics.json` and `constraint_violations.json` under
//! `<output>/<endpoint>/<schedule>/yyyy/mm/dd/hh`, publishes its metrics, and is recorded
//! with a processing job of its own (which the SDK reads the results through). Everything is a
//! record in the state store: an execution running when berth stopped is `Failed` at the next
//! start (as a lost processing job is), and the next due one runs as scheduled.

mod data_quality;
mod executions;
mod model_quality;

use crate::{ControlError, Controller};
use berth_domain::{validate_name, MonitoringJobDefinition, MonitoringSchedule, NameKey, ResourceKind, ScheduleExpression, ScheduleStatus};
use std::sync::Arc;

const DEFINITIONS: &str = "monitoring-job-definition";
const SCHEDULES: &str = "monitoring-schedule";
const EXECUTIONS: &str = "monitoring-execution";
/// The largest capture object, and baseline file, berth reads for an execution.
const MAX_OBJECT: u64 = 1024 * 1024 * 1024;
pub use data_quality::DATA_METRICS_NAMESPACE;
pub use model_quality::MODEL_METRICS_NAMESPACE;

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
        let kind = match definition.kind {
            berth_domain::MonitoringType::DataQuality => ResourceKind::MonitoringJobDefinition,
            berth_domain::MonitoringType::ModelQuality => ResourceKind::ModelQualityJobDefinition,
        };
        definition.arn = self.account().arn(kind, &definition.name);
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
        if let Some(q) = &job.model_quality {
            let problem =
                berth_monitor::ProblemType::parse(&q.problem_type).map_err(|e| ControlError::Validation(format!("ProblemType: {e}.")))?;
            let attributes = berth_monitor::Attributes {
                inference: q.inference_attribute.clone(),
                probability: q.probability_attribute.clone(),
                ground_truth: None,
                probability_threshold: q.probability_threshold,
            };
            berth_monitor::ModelQualityAnalyzer::new(problem, &attributes)
                .map_err(|e| ControlError::Validation(format!("EndpointInput: {e}.")))?;
            self.readable_objects_location(&q.ground_truth_s3_uri)?;
        }
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
                ControlError::Validation(format!(
                    "Could not find job definition {name}: create it (Create{}JobDefinition) first.",
                    schedule.kind.as_str()
                ))
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
}
