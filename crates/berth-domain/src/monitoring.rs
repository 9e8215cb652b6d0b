//! Model Monitor's schedules: job definitions (`CreateDataQualityJobDefinition`), monitoring
//! schedules and their executions, and the schedule expressions SageMaker accepts — hourly and
//! daily `cron(...)`, `NOW` with a data-analysis window — plus berth's faster `rate(N minutes)`.

use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// `MonitoringType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MonitoringType {
    DataQuality,
    ModelQuality,
}

impl MonitoringType {
    pub fn as_str(self) -> &'static str {
        match self {
            MonitoringType::DataQuality => "DataQuality",
            MonitoringType::ModelQuality => "ModelQuality",
        }
    }
}

/// A data-quality or model-quality job definition, as created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitoringJobDefinition {
    pub name: String,
    pub arn: String,
    pub kind: MonitoringType,
    pub created: Timestamp,
    pub endpoint_name: String,
    /// What the executions run: the baseline, the input window, where results go.
    pub job: MonitoringJob,
    /// The request's members (less name and tags), which Describe echoes.
    pub definition: serde_json::Value,
}

/// What an execution does, from a job definition or a schedule's inline one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MonitoringJob {
    pub image: String,
    pub endpoint_name: String,
    /// `EndpointInput.LocalPath`: where the analyzer would see the captured data.
    pub input_local_path: String,
    pub baseline_constraints: Option<String>,
    pub baseline_statistics: Option<String>,
    pub baselining_job_name: Option<String>,
    /// `MonitoringOutputs[0].S3Output`.
    pub output_s3_uri: String,
    pub output_local_path: String,
    pub environment: std::collections::BTreeMap<String, String>,
    pub max_runtime_secs: Option<u64>,
    /// The request's job definition as sent, for the execution's processing job.
    pub role_arn: String,
    /// `EndpointInput.StartTimeOffset`/`EndTimeOffset` (milliseconds from the scheduled time):
    /// the window a scheduled execution analyzes, instead of the hour before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_offsets: Option<(i64, i64)>,
    /// A model-quality job's problem, where its predictions are, and its ground truth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_quality: Option<ModelQualityJob>,
}

/// What a model-quality job adds: `ModelQualityAppSpecification.ProblemType`, the
/// `EndpointInput`'s attributes, and `GroundTruthS3Input`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelQualityJob {
    pub problem_type: String,
    pub inference_attribute: Option<String>,
    pub probability_attribute: Option<String>,
    pub probability_threshold: Option<f64>,
    pub ground_truth_s3_uri: String,
}

wire_enum!(
    /// `ScheduleStatus`.
    ScheduleStatus { Pending, Failed, Scheduled, Stopped }
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitoringSchedule {
    pub name: String,
    pub arn: String,
    pub status: ScheduleStatus,
    pub kind: MonitoringType,
    pub created: Timestamp,
    pub modified: Timestamp,
    pub endpoint_name: String,
    /// The job definition it names, if it names one (else its job is inline).
    pub job_definition_name: Option<String>,
    pub job: MonitoringJob,
    pub expression: ScheduleExpression,
    /// `DataAnalysisStartTime` and `DataAnalysisEndTime` (with `NOW`), as offsets in ms.
    pub analysis_window: Option<(i64, i64)>,
    /// The last time an execution was scheduled for (none yet: none).
    pub last_scheduled: Option<Timestamp>,
    /// `MonitoringScheduleConfig` as sent, which Describe echoes.
    pub config: serde_json::Value,
    pub failure_reason: Option<String>,
}

wire_enum!(
    /// `ExecutionStatus`.
    ExecutionStatus { Pending, Completed, CompletedWithViolations, InProgress, Failed, Stopping, Stopped }
);

impl ExecutionStatus {
    pub fn ended(self) -> bool {
        matches!(self, Self::Completed | Self::CompletedWithViolations | Self::Failed | Self::Stopped)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitoringExecution {
    pub schedule_name: String,
    pub scheduled: Timestamp,
    pub created: Timestamp,
    pub modified: Timestamp,
    pub status: ExecutionStatus,
    pub processing_job_name: String,
    pub processing_job_arn: String,
    pub endpoint_name: String,
    pub failure_reason: Option<String>,
    pub job_definition_name: Option<String>,
    pub kind: MonitoringType,
    /// The window of captured data it analyzes, [start, end) in ms.
    pub window: (i64, i64),
    /// What it found in violation (`<feature or metric>: <check>`), once it ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
    /// The figures the dashboard charts over executions: each feature's drift distance, or
    /// the model-quality metrics.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub figures: std::collections::BTreeMap<String, f64>,
}

/// When a schedule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScheduleExpression {
    /// `cron(0 H/N ? * * *)` (hourly is `H` 0, `N` 1; daily at `H` is `N` 24): at minute 0 of
    /// the hours `H`, `H + N`, … of each day (UTC); each execution analyzes the hour before.
    Hours { start: u8, every: u8 },
    /// `NOW`: one execution at once, over the schedule's data-analysis window.
    Now,
    /// berth's `rate(N minutes)`: every N minutes, each over the N minutes before.
    EveryMinutes(u32),
}

impl ScheduleExpression {
    /// A `ScheduleExpression` as SageMaker accepts it (and berth's `rate(...)`).
    pub fn parse(text: &str) -> Result<ScheduleExpression, String> {
        let text = text.trim();
        if text == "NOW" {
            return Ok(ScheduleExpression::Now);
        }
        if let Some(body) = text.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            let mut words = body.split_whitespace();
            let (Some(n), Some(unit), None) = (words.next(), words.next(), words.next()) else {
                return Err(format!("Invalid schedule expression {text}: berth's rate expressions are rate(N minutes) or rate(N hours)."));
            };
            let n: u32 = n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("Invalid schedule expression {text}: N must be a positive whole number."))?;
            return match unit {
                "minute" | "minutes" => Ok(ScheduleExpression::EveryMinutes(n)),
                "hour" | "hours" => Ok(ScheduleExpression::EveryMinutes(n.saturating_mul(60))),
                _ => Err(format!("Invalid schedule expression {text}: the unit is minutes or hours.")),
            };
        }
        let fields: Vec<&str> = text
            .strip_prefix("cron(")
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("Invalid schedule expression {text}: it must be cron(...), NOW, or berth's rate(N minutes)."))?
            .split_whitespace()
            .collect();
        let hourly_or_daily = || {
            format!(
                "Invalid schedule expression {text}: Model Monitor runs hourly or daily: cron(0 * ? * * *), cron(0 H ? * * *) or cron(0 H/N ? * * *) (minute 0, every day)."
            )
        };
        let [minute, hour, day_of_month, month, day_of_week, year] = fields[..] else { return Err(hourly_or_daily()) };
        let every_day = minute == "0" && day_of_month == "?" && month == "*" && day_of_week == "*" && year == "*";
        if !every_day {
            return Err(hourly_or_daily());
        }
        let hour_of = |h: &str| h.parse::<u8>().ok().filter(|h| *h < 24);
        match hour.split_once('/') {
            None if hour == "*" => Ok(ScheduleExpression::Hours { start: 0, every: 1 }),
            None => hour_of(hour).map(|start| ScheduleExpression::Hours { start, every: 24 }).ok_or_else(hourly_or_daily),
            Some((start, every)) => {
                let start = if start == "*" { Some(0) } else { hour_of(start) };
                match (start, every.parse::<u8>().ok().filter(|n| (1..=23).contains(n))) {
                    (Some(start), Some(every)) => Ok(ScheduleExpression::Hours { start, every }),
                    _ => Err(hourly_or_daily()),
                }
            }
        }
    }

    /// The first time at or after `after` (ms) an execution is due, and the window of data it
    /// analyzes; None for `NOW` (it runs once, at creation).
    pub fn next_at_or_after(self, after: i64) -> Option<(i64, (i64, i64))> {
        const HOUR: i64 = 3_600_000;
        match self {
            ScheduleExpression::Now => None,
            ScheduleExpression::EveryMinutes(n) => {
                let period = i64::from(n) * 60_000;
                let at = after.div_euclid(period) * period + if after.rem_euclid(period) == 0 { 0 } else { period };
                Some((at, (at - period, at)))
            }
            ScheduleExpression::Hours { start, every } => {
                let mut at = after.div_euclid(HOUR) * HOUR + if after.rem_euclid(HOUR) == 0 { 0 } else { HOUR };
                for _ in 0..48 {
                    let hour = at.div_euclid(HOUR).rem_euclid(24) as u8;
                    if hour >= start && (hour - start).is_multiple_of(every) {
                        return Some((at, (at - HOUR, at)));
                    }
                    at += HOUR;
                }
                None
            }
        }
    }
}

/// An ISO 8601 offset as SageMaker's `DataAnalysisStartTime` and `StartTimeOffset` take it:
/// `-PT1H`, `-PT30M`, `-P1D`, `-PT0H` (always negative or zero), in ms.
pub fn parse_offset(text: &str) -> Result<i64, String> {
    let bad = || format!("Invalid time offset {text}: give a negative ISO 8601 duration such as -PT1H or -P1D.");
    let body = text.strip_prefix("-P").ok_or_else(bad)?;
    let (days, time) = match body.split_once('T') {
        Some((d, t)) => (d, t),
        None => (body, ""),
    };
    let mut ms: i64 = 0;
    if !days.is_empty() {
        let d: i64 = days.strip_suffix('D').and_then(|d| d.parse().ok()).ok_or_else(bad)?;
        ms += d * 86_400_000;
    }
    let mut number = String::new();
    for c in time.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number.parse().map_err(|_| bad())?;
        number.clear();
        ms += n * match c {
            'H' => 3_600_000,
            'M' => 60_000,
            'S' => 1_000,
            _ => return Err(bad()),
        };
    }
    if !number.is_empty() || (days.is_empty() && time.is_empty()) || ms > 31 * 86_400_000 {
        return Err(bad());
    }
    Ok(-ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn the_sdks_expressions_parse_and_others_are_refused() {
        assert_eq!(ScheduleExpression::parse("cron(0 * ? * * *)"), Ok(ScheduleExpression::Hours { start: 0, every: 1 }));
        assert_eq!(ScheduleExpression::parse("cron(0 5 ? * * *)"), Ok(ScheduleExpression::Hours { start: 5, every: 24 }));
        assert_eq!(ScheduleExpression::parse("cron(0 2/6 ? * * *)"), Ok(ScheduleExpression::Hours { start: 2, every: 6 }));
        assert_eq!(ScheduleExpression::parse("NOW"), Ok(ScheduleExpression::Now));
        assert_eq!(ScheduleExpression::parse("rate(1 minute)"), Ok(ScheduleExpression::EveryMinutes(1)));
        assert_eq!(ScheduleExpression::parse("rate(2 hours)"), Ok(ScheduleExpression::EveryMinutes(120)));
        for bad in [
            "",
            "cron(*/5 * ? * * *)",
            "cron(0 * * * ? *)",
            "cron(0 25 ? * * *)",
            "cron(0 1/0 ? * * *)",
            "rate(0 minutes)",
            "rate(1 day)",
            "rate(x)",
            "hourly",
        ] {
            assert!(ScheduleExpression::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn executions_fall_on_their_hours_and_analyze_the_hour_before() {
        let day = 20_000 * 24 * HOUR; // a midnight UTC
        let hourly = ScheduleExpression::Hours { start: 0, every: 1 };
        assert_eq!(hourly.next_at_or_after(day + 1), Some((day + HOUR, (day, day + HOUR))));
        assert_eq!(hourly.next_at_or_after(day), Some((day, (day - HOUR, day))));
        let six = ScheduleExpression::Hours { start: 2, every: 6 };
        assert_eq!(six.next_at_or_after(day + 3 * HOUR).map(|n| n.0), Some(day + 8 * HOUR));
        let daily = ScheduleExpression::Hours { start: 5, every: 24 };
        assert_eq!(daily.next_at_or_after(day + 6 * HOUR).map(|n| n.0), Some(day + 29 * HOUR));
        let minute = ScheduleExpression::EveryMinutes(1);
        assert_eq!(minute.next_at_or_after(day + 30_000), Some((day + 60_000, (day, day + 60_000))));
        assert_eq!(ScheduleExpression::Now.next_at_or_after(day), None);
    }

    #[test]
    fn offsets_are_negative_iso_durations() {
        assert_eq!(parse_offset("-PT1H"), Ok(-HOUR));
        assert_eq!(parse_offset("-PT0H"), Ok(0));
        assert_eq!(parse_offset("-PT1H30M"), Ok(-HOUR - 30 * 60_000));
        assert_eq!(parse_offset("-P1D"), Ok(-24 * HOUR));
        assert_eq!(parse_offset("-P1DT2H"), Ok(-26 * HOUR));
        for bad in ["PT1H", "-PT", "-P", "-PT1X", "-PT1", "+PT1H", "-P40D", "-PTH"] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
    }
}
