//! Model Monitor's analysis, as SageMaker's analyzer image (`sagemaker-model-monitor-analyzer`)
//! does it, in files of the same schema: a dataset ([`DatasetAnalyzer`], of the formats the
//! SageMaker SDK names) becomes `statistics.json` ([`Statistics`], with Deequ's KLL sketch of each
//! numeric feature), a baseline's statistics suggest `constraints.json` ([`Constraints`]), and a
//! monitoring execution's statistics are checked against them ([`evaluate`]:
//! `constraint_violations.json` and each feature's drift distance). Model quality
//! ([`ModelQualityAnalyzer`]) turns predictions and their labels into the problem type's
//! metrics, constraints on them, and violations.
//! Pure computation: the controller reads the objects and writes the files.
#![forbid(unsafe_code)]

mod constraints;
mod dataset;
pub mod kll;
mod model_quality;
mod quality_metrics;
mod statistics;
mod violations;

pub use constraints::{
    categorical_drift_method, suggest_constraints, Constraints, DistributionConstraints, FeatureConstraints, MonitoringConfig,
};
pub use dataset::{captured_events, CapturedEvent, DatasetAnalyzer, DatasetFormat};
pub use model_quality::{
    evaluate_model_quality, suggest_model_quality_constraints, Attributes, MetricConstraint, MetricViolation, MetricViolations,
    ModelQualityAnalyzer, ModelQualityConstraints, ModelQualityStatistics, ProblemType,
};
pub use statistics::{Cell, Common, FeatureStatistics, InferredType, NumericalStatistics, Statistics, StringStatistics};
pub use violations::{evaluate, name_by_position, Drift, Evaluation, Violation, Violations};
