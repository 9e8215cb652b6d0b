//! Inference Recommender's jobs (`CreateInferenceRecommendationsJob`): the candidates a job
//! load-tests (an instance type and count, and environment values), the traffic it sends, the
//! latency it must keep, what each candidate's benchmark measured, and the instance prices its
//! costs come from.

use crate::{LogEvent, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

wire_enum!(
    /// `RecommendationJobStatus`.
    RecommendationJobStatus {
        Pending = "PENDING",
        InProgress = "IN_PROGRESS",
        Completed = "COMPLETED",
        Failed = "FAILED",
        Stopping = "STOPPING",
        Stopped = "STOPPED",
        Deleting = "DELETING",
        Deleted = "DELETED",
    }
);

impl RecommendationJobStatus {
    pub fn ended(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Stopped | Self::Deleted)
    }
}

wire_enum!(
    /// `RecommendationJobType`.
    RecommendationJobType { Default, Advanced }
);

/// One configuration a job load-tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub instance_type: String,
    pub instance_count: u32,
    /// Environment values set on the model's container (`EnvironmentParameterRanges`).
    pub environment: BTreeMap<String, String>,
    pub inference_specification_name: Option<String>,
}

/// A latency the load must keep: `P95` at most 100 ms, say.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyThreshold {
    pub percentile: f64,
    pub milliseconds: f64,
}

/// The traffic a benchmark sends: the rates of its steps, in requests per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Traffic {
    /// berth's search for the highest rate that keeps the thresholds: rates doubling from
    /// `start` until a step breaks them (or reaches `max`), then halved between the last that
    /// kept them and the first that did not, each step `step_secs` long.
    Search { start: f64, max: f64, step_secs: u64 },
    /// Given steps (a `PHASES` or `STAIRS` pattern, a user sending one request a second).
    Steps(Vec<(f64, u64)>),
}

/// One step of a benchmark: the rate asked, the rate answered, latencies, errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadPoint {
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub dropped: u64,
    /// Whether it kept the thresholds with no error.
    pub kept: bool,
}

/// What a candidate's benchmark measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkMetrics {
    pub cost_per_hour: f64,
    pub cost_per_inference: f64,
    /// Per minute, at the highest load that kept the thresholds.
    pub max_invocations: u64,
    /// Milliseconds: the median latency at that load.
    pub model_latency: u64,
    pub cpu_utilization: Option<f64>,
    pub memory_utilization: Option<f64>,
    /// Seconds from asking for the instances to their first passed health check.
    pub model_setup_time: u64,
}

/// One candidate's benchmark (a `BENCHMARK` step of the job).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Benchmark {
    pub candidate: Candidate,
    pub status: RecommendationJobStatus,
    /// The temporary endpoint it ran on.
    pub endpoint_name: String,
    pub metrics: Option<BenchmarkMetrics>,
    pub failure_reason: Option<String>,
    pub started: Option<Timestamp>,
    pub ended: Option<Timestamp>,
    /// Each step's figures: the latency-against-throughput curve.
    pub curve: Vec<LoadPoint>,
    /// Whether it met the thresholds at some load (and so is recommended).
    pub recommended: bool,
    /// It tests an existing endpoint (`InputConfig.Endpoints`), `endpoint_name`, rather than a
    /// fleet of its own: its result is an `EndpointPerformance`, not a recommendation.
    #[serde(default)]
    pub existing_endpoint: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendationJob {
    pub name: String,
    pub arn: String,
    pub job_type: RecommendationJobType,
    pub status: RecommendationJobStatus,
    pub role_arn: String,
    pub description: Option<String>,
    pub created: Timestamp,
    pub modified: Timestamp,
    pub completed: Option<Timestamp>,
    pub failure_reason: Option<String>,
    /// The model tested (empty when it is a model package's).
    pub model_name: String,
    /// `InputConfig.ModelPackageVersionArn`: the registered version tested instead of a model.
    #[serde(default)]
    pub model_package_arn: Option<String>,
    pub sample_payload_url: Option<String>,
    pub content_type: Option<String>,
    /// How long it may run (`JobDurationInSeconds`).
    pub max_duration_secs: u64,
    pub traffic: Traffic,
    pub thresholds: Vec<LatencyThreshold>,
    /// `StoppingConditions.MaxInvocations`: no more than this per minute is tried.
    pub max_invocations: Option<u64>,
    pub benchmarks: Vec<Benchmark>,
    /// The request's `InputConfig` and `StoppingConditions`, which Describe echoes.
    pub input_config: serde_json::Value,
    pub stopping_conditions: Option<serde_json::Value>,
    /// Its log (`/aws/sagemaker/InferenceRecommendationsJobs`, stream `<job>/execution`).
    pub log: Vec<LogEvent>,
}

impl RecommendationJob {
    /// A line of the job's log.
    pub fn say(&mut self, at: i64, line: impl Into<String>) {
        if self.log.len() < crate::MAX_JOB_LOG_LINES {
            self.log.push(LogEvent { timestamp: at, message: line.into() });
        }
    }
}

/// The instance types a Default job tries when the request names none.
pub const DEFAULT_CANDIDATE_TYPES: [&str; 3] = ["ml.c5.large", "ml.m5.large", "ml.c5.xlarge"];

/// The latency a Default job keeps when the request sets none: P95 at most 100 ms.
pub const DEFAULT_THRESHOLD: LatencyThreshold = LatencyThreshold { percentile: 95.0, milliseconds: 100.0 };

/// AWS's on-demand list prices of SageMaker real-time inference in us-east-1, USD per instance
/// hour, for the instance types berth knows a price of; `--instance-prices` replaces or adds.
pub const LIST_PRICES: &[(&str, f64)] = &[
    ("ml.c5.2xlarge", 0.408),
    ("ml.c5.4xlarge", 0.816),
    ("ml.c5.9xlarge", 1.836),
    ("ml.c5.large", 0.102),
    ("ml.c5.xlarge", 0.204),
    ("ml.c6i.2xlarge", 0.408),
    ("ml.c6i.large", 0.102),
    ("ml.c6i.xlarge", 0.204),
    ("ml.g4dn.xlarge", 0.736),
    ("ml.g5.xlarge", 1.408),
    ("ml.m5.2xlarge", 0.461),
    ("ml.m5.4xlarge", 0.922),
    ("ml.m5.large", 0.115),
    ("ml.m5.xlarge", 0.23),
    ("ml.m6i.large", 0.115),
    ("ml.m6i.xlarge", 0.23),
    ("ml.r5.large", 0.151),
    ("ml.r5.xlarge", 0.302),
    ("ml.t2.large", 0.111),
    ("ml.t2.medium", 0.056),
    ("ml.t2.xlarge", 0.222),
];

/// A phase of users as steps of one second-rate each: `users` start and `spawn_rate` more
/// join each minute, each sending a request a second.
pub fn phase_steps(initial_users: u32, spawn_rate: u32, duration_secs: u64, step_secs: u64) -> Vec<(f64, u64)> {
    let step_secs = step_secs.max(1);
    let mut steps = Vec::new();
    let mut at = 0;
    while at < duration_secs {
        let len = step_secs.min(duration_secs - at);
        let users = f64::from(initial_users) + f64::from(spawn_rate) * (at as f64 + len as f64 / 2.0) / 60.0;
        steps.push((users.max(1.0), len));
        at += len;
    }
    steps
}

/// `STAIRS`: `steps` steps of `users_per_step` more users each, over `duration_secs`, each
/// stair cut into steps of at most `step_secs`.
pub fn stairs_steps(duration_secs: u64, steps: u32, users_per_step: u32, step_secs: u64) -> Vec<(f64, u64)> {
    let steps = steps.clamp(1, 1000);
    let each = (duration_secs / u64::from(steps)).max(1);
    let mut out = Vec::new();
    for n in 1..=steps {
        let users = f64::from(n.saturating_mul(users_per_step)).max(1.0);
        let mut left = each;
        while left > 0 {
            let len = left.min(step_secs.max(1));
            out.push((users, len));
            left -= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_patterns_become_steps_of_a_request_per_user_second() {
        // 2 users, 60 more a minute, for 20 s in 10 s steps: 7 then 17 users on average.
        assert_eq!(phase_steps(2, 60, 20, 10), vec![(7.0, 10), (17.0, 10)]);
        assert_eq!(phase_steps(1, 0, 5, 10), vec![(1.0, 5)]);
        assert_eq!(stairs_steps(30, 3, 4, 10), vec![(4.0, 10), (8.0, 10), (12.0, 10)]);
        assert_eq!(stairs_steps(12, 2, 1, 5), vec![(1.0, 5), (1.0, 1), (2.0, 5), (2.0, 1)]);
        assert_eq!(RecommendationJobStatus::parse("IN_PROGRESS"), Some(RecommendationJobStatus::InProgress));
        assert_eq!(RecommendationJobStatus::Stopping.as_str(), "STOPPING");
        assert!(LIST_PRICES.windows(2).all(|w| w[0].0 < w[1].0), "sorted, for lookups by eye");
        assert!(LIST_PRICES.iter().all(|(t, _)| crate::PRODUCTION_VARIANT_INSTANCE_TYPES.contains(t)));
    }
}
