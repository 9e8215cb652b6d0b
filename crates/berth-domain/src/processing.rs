//! Processing jobs (`CreateProcessingJob`). berth runs one kind: SageMaker Model Monitor's
//! analyzer (`sagemaker-model-monitor-analyzer`), whose work it does itself — baselining a
//! dataset into `statistics.json` and `constraints.json`.

use crate::{Timestamp, TransformJobStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A processing job's statuses are a transform job's: InProgress, Completed, Failed, Stopping,
/// Stopped.
pub type ProcessingJobStatus = TransformJobStatus;

/// The repository of SageMaker Model Monitor's analyzer image, in every region's ECR.
pub const MODEL_MONITOR_ANALYZER: &str = "sagemaker-model-monitor-analyzer";

/// Whether `image` is SageMaker Model Monitor's analyzer: `<account>.dkr.ecr.<region>.amazonaws.com[.cn]/sagemaker-model-monitor-analyzer[:tag]`.
pub fn is_model_monitor_analyzer(image: &str) -> bool {
    let Some((registry, repository)) = image.split_once('/') else { return false };
    let repository = repository.split_once(':').map_or(repository, |(r, _)| r);
    let parts: Vec<&str> = registry.split('.').collect();
    let ecr = matches!(parts.as_slice(), [account, "dkr", "ecr", region, "amazonaws", "com"] | [account, "dkr", "ecr", region, "amazonaws", "com", "cn"]
        if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && !region.is_empty() && region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    ecr && repository == MODEL_MONITOR_ANALYZER
}

/// One of a job's inputs or outputs: its name, S3 location, and the path the container would
/// see it at (which the analyzer's environment refers to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessingLocation {
    pub name: String,
    pub s3_uri: String,
    pub local_path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessingJob {
    pub name: String,
    pub arn: String,
    pub status: ProcessingJobStatus,
    pub failure_reason: Option<String>,
    pub exit_message: Option<String>,
    pub created: Timestamp,
    pub modified: Timestamp,
    pub started: Option<Timestamp>,
    pub ended: Option<Timestamp>,
    pub image: String,
    pub environment: BTreeMap<String, String>,
    pub inputs: Vec<ProcessingLocation>,
    pub outputs: Vec<ProcessingLocation>,
    /// `StoppingCondition.MaxRuntimeInSeconds`.
    pub max_runtime_secs: Option<u64>,
    /// The monitoring schedule whose execution this is, if any.
    pub monitoring_schedule_arn: Option<String>,
    /// The request's members as sent (less name and tags), which DescribeProcessingJob echoes.
    pub definition: serde_json::Value,
    /// What the job said as it ran (its CloudWatch Logs stream), oldest first.
    #[serde(default)]
    pub log: Vec<LogEvent>,
}

/// A line of a job's log, at a time in ms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEvent {
    pub timestamp: i64,
    pub message: String,
}

/// Most lines a job's log keeps (the first ones, and the last).
pub const MAX_JOB_LOG_LINES: usize = 1000;

impl ProcessingJob {
    /// Adds a line to the job's log; past [`MAX_JOB_LOG_LINES`] the middle lines give way.
    pub fn say(&mut self, timestamp: i64, message: impl Into<String>) {
        if self.log.len() >= MAX_JOB_LOG_LINES {
            self.log.remove(MAX_JOB_LOG_LINES / 2);
        }
        self.log.push(LogEvent { timestamp, message: message.into() });
    }

    /// The log stream SageMaker names for the job's instance: `<job>/algo-1-<creation seconds>`.
    pub fn log_stream(&self) -> String {
        format!("{}/algo-1-{}", self.name, self.created.millis() / 1000)
    }

    /// The input or output whose container path is `path` (the analyzer's environment names
    /// its dataset and output directory so).
    pub fn located<'a>(locations: &'a [ProcessingLocation], path: &str) -> Option<&'a ProcessingLocation> {
        let path = path.trim_end_matches('/');
        locations.iter().find(|l| l.local_path.trim_end_matches('/') == path)
    }
}

#[cfg(test)]
mod tests {
    use super::is_model_monitor_analyzer;

    #[test]
    fn the_analyzer_is_recognised_in_any_region_and_nothing_else() {
        for image in [
            "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer",
            "468650794304.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-model-monitor-analyzer:latest",
            "453000072557.dkr.ecr.cn-north-1.amazonaws.com.cn/sagemaker-model-monitor-analyzer",
        ] {
            assert!(is_model_monitor_analyzer(image), "{image}");
        }
        for image in [
            "sagemaker-model-monitor-analyzer",
            "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
            "evil.example/sagemaker-model-monitor-analyzer",
            "12345.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer",
            "156813124566.dkr.ecr.us-east-1.amazonaws.com/x/sagemaker-model-monitor-analyzer",
        ] {
            assert!(!is_model_monitor_analyzer(image), "{image}");
        }
    }
}
