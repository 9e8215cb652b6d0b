//! Metric alarms, as CloudWatch defines them: a statistic of one metric over periods compared
//! with a threshold; `DatapointsToAlarm` of the last `EvaluationPeriods` periods breaching puts
//! the alarm in `ALARM`. berth evaluates them itself, on its 1-second metrics.

use crate::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmState {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ALARM")]
    Alarm,
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl AlarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }

    pub fn parse(s: &str) -> Option<AlarmState> {
        [AlarmState::Ok, AlarmState::Alarm, AlarmState::InsufficientData].into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl Comparison {
    pub const ALL: [Comparison; 4] = [
        Comparison::GreaterThanOrEqualToThreshold,
        Comparison::GreaterThanThreshold,
        Comparison::LessThanThreshold,
        Comparison::LessThanOrEqualToThreshold,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            Comparison::GreaterThanThreshold => "GreaterThanThreshold",
            Comparison::LessThanThreshold => "LessThanThreshold",
            Comparison::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
        }
    }

    pub fn parse(s: &str) -> Option<Comparison> {
        Comparison::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn symbol(self) -> &'static str {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => ">=",
            Comparison::GreaterThanThreshold => ">",
            Comparison::LessThanThreshold => "<",
            Comparison::LessThanOrEqualToThreshold => "<=",
        }
    }

    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => value >= threshold,
            Comparison::GreaterThanThreshold => value > threshold,
            Comparison::LessThanThreshold => value < threshold,
            Comparison::LessThanOrEqualToThreshold => value <= threshold,
        }
    }
}

/// How periods without a datapoint count (`TreatMissingData`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MissingData {
    /// Not counted; with no datapoint at all the alarm has `INSUFFICIENT_DATA` (the default).
    #[serde(rename = "missing")]
    Missing,
    #[serde(rename = "notBreaching")]
    NotBreaching,
    #[serde(rename = "breaching")]
    Breaching,
    /// Not counted; with no datapoint at all the alarm keeps its state.
    #[serde(rename = "ignore")]
    Ignore,
}

impl MissingData {
    pub const ALL: [MissingData; 4] = [MissingData::Missing, MissingData::NotBreaching, MissingData::Breaching, MissingData::Ignore];

    pub fn as_str(self) -> &'static str {
        match self {
            MissingData::Missing => "missing",
            MissingData::NotBreaching => "notBreaching",
            MissingData::Breaching => "breaching",
            MissingData::Ignore => "ignore",
        }
    }

    pub fn parse(s: &str) -> Option<MissingData> {
        MissingData::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// What an alarm does on its state changes: the ARNs it tells (autoscaling policies, SNS
/// topics) on entering `OK`, `ALARM` and `INSUFFICIENT_DATA`, and whether it tells them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlarmActions {
    pub actions_enabled: bool,
    pub ok_actions: Vec<String>,
    pub alarm_actions: Vec<String>,
    pub insufficient_data_actions: Vec<String>,
}

impl AlarmActions {
    /// Every action of every state.
    pub fn all(&self) -> impl Iterator<Item = &String> {
        self.ok_actions.iter().chain(&self.alarm_actions).chain(&self.insufficient_data_actions)
    }
}

/// A metric alarm and its current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    #[serde(flatten)]
    pub actions: AlarmActions,
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<(String, String)>,
    /// `SampleCount`, `Average`, `Sum`, `Minimum`, `Maximum`, or a percentile such as `p99`.
    pub statistic: String,
    /// Whether `statistic` came as `ExtendedStatistic` (a percentile).
    pub extended: bool,
    pub unit: Option<String>,
    pub period: u32,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub threshold: f64,
    pub comparison: Comparison,
    pub treat_missing_data: MissingData,
    pub configuration_updated: Timestamp,
    pub state: AlarmState,
    pub state_reason: String,
    pub state_reason_data: Option<String>,
    pub state_updated: Timestamp,
    /// Set by SetAlarmState: the state holds until this time (epoch seconds), then evaluation resumes.
    #[serde(default)]
    pub manual_until: Option<u64>,
}

/// What an evaluation decided: the new state and why, in CloudWatch's words.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub state: AlarmState,
    pub reason: String,
}

/// CloudWatch's limits on an alarm's evaluation range: Period × EvaluationPeriods at most seven
/// days, and at most one day for a period under an hour.
pub const MAX_EVALUATION_RANGE_SECS: u64 = 7 * 24 * 3600;
pub const MAX_SUB_HOUR_EVALUATION_RANGE_SECS: u64 = 24 * 3600;

impl Alarm {
    /// The values of the alarm's `evaluation_periods` periods from `start` (epoch seconds), oldest
    /// first, from datapoints `(period start, value)` in any order: one pass over the datapoints
    /// (a datapoint outside the window or off the periods' grid is left out), None where a period
    /// has none.
    pub fn period_values(&self, start: u64, datapoints: impl IntoIterator<Item = (u64, Option<f64>)>) -> Vec<Option<f64>> {
        let period = u64::from(self.period.max(1));
        let mut values = vec![None; self.evaluation_periods as usize];
        for (at, value) in datapoints {
            let Some(offset) = at.checked_sub(start) else { continue };
            if offset % period == 0 {
                if let Some(slot) = usize::try_from(offset / period).ok().and_then(|i| values.get_mut(i)) {
                    *slot = value;
                }
            }
        }
        values
    }

    /// Evaluates the alarm on the values of its last `evaluation_periods` periods, oldest first
    /// (None where a period had no datapoint). Returns None when the state should stay as it is.
    pub fn evaluate(&self, values: &[Option<f64>]) -> Option<Evaluation> {
        let present: Vec<f64> = values.iter().flatten().copied().collect();
        let breaching = values
            .iter()
            .filter(|v| match v {
                Some(x) => self.comparison.breaches(*x, self.threshold),
                None => self.treat_missing_data == MissingData::Breaching,
            })
            .count() as u32;
        let shown: Vec<String> = present.iter().map(|v| format!("{v}")).collect();
        let recent = format!(
            "[{}] ({} of the last {} datapoints of {} {} s)",
            shown.join(", "),
            present.len(),
            values.len(),
            self.statistic,
            self.period
        );
        if breaching >= self.datapoints_to_alarm {
            return Some(Evaluation {
                state: AlarmState::Alarm,
                reason: format!(
                    "Threshold Crossed: {breaching} out of the last {} datapoints were {} the threshold ({}): {recent}",
                    values.len(),
                    self.comparison.symbol(),
                    self.threshold
                ),
            });
        }
        if present.is_empty() {
            return match self.treat_missing_data {
                MissingData::Ignore => None,
                MissingData::Missing => Some(Evaluation {
                    state: AlarmState::InsufficientData,
                    reason: format!("Insufficient Data: no datapoints in the last {} periods", values.len()),
                }),
                MissingData::NotBreaching | MissingData::Breaching => Some(Evaluation {
                    state: AlarmState::Ok,
                    reason: format!("Threshold Crossed: missing data treated as not breaching: {recent}"),
                }),
            };
        }
        Some(Evaluation {
            state: AlarmState::Ok,
            reason: format!(
                "Threshold Crossed: {breaching} out of the last {} datapoints were {} the threshold ({}), fewer than {}: {recent}",
                values.len(),
                self.comparison.symbol(),
                self.threshold,
                self.datapoints_to_alarm
            ),
        })
    }
}

/// An alarm with only the settings evaluation reads (for the fuzz target and unit tests).
fn bare_alarm(
    period: u32,
    evaluation_periods: u32,
    datapoints_to_alarm: u32,
    threshold: f64,
    comparison: Comparison,
    treat_missing_data: MissingData,
) -> Alarm {
    Alarm {
        name: "alarm".into(),
        arn: String::new(),
        description: None,
        actions: AlarmActions::default(),
        namespace: "N".into(),
        metric_name: "M".into(),
        dimensions: vec![],
        statistic: "Sum".into(),
        extended: false,
        unit: None,
        period,
        evaluation_periods,
        datapoints_to_alarm,
        threshold,
        comparison,
        treat_missing_data,
        configuration_updated: Timestamp::from_millis(0),
        state: AlarmState::InsufficientData,
        state_reason: String::new(),
        state_reason_data: None,
        state_updated: Timestamp::from_millis(0),
        manual_until: None,
    }
}

/// For the fuzz target `alarm_evaluation` (not an API): arbitrary bytes as an alarm's settings
/// (period, periods and datapoints to alarm within PutMetricAlarm's limits, threshold,
/// comparison, missing-data treatment) and datapoints (times and values, NaN and infinities
/// included), through `period_values` and `evaluate`. The window has one value per period; an
/// `ALARM` verdict has at least `DatapointsToAlarm` breaching periods; nothing panics.
#[doc(hidden)]
pub fn fuzz_alarm_evaluation(data: &[u8]) {
    let word = |i: usize| data.get(i * 4..i * 4 + 4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let period = word(0) % 86_400 + 1;
    let max_periods = if period < 3600 { MAX_SUB_HOUR_EVALUATION_RANGE_SECS } else { MAX_EVALUATION_RANGE_SECS } / u64::from(period);
    let evaluation_periods = (u64::from(word(1)) % max_periods.max(1) + 1) as u32;
    let datapoints_to_alarm = word(2) % evaluation_periods + 1;
    let flags = word(3);
    let start = u64::from(word(4));
    let threshold = f64::from_bits(u64::from(word(5)) << 32 | u64::from(word(6)));
    let alarm = bare_alarm(
        period,
        evaluation_periods,
        datapoints_to_alarm,
        threshold,
        Comparison::ALL[(flags % 4) as usize],
        MissingData::ALL[((flags >> 2) % 4) as usize],
    );
    let points = data.get(28..).unwrap_or_default().chunks_exact(12).map(|c| {
        let at = start + u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])) * u64::from(period) / 7;
        let bits = u64::from_le_bytes([c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11]]);
        (at, (bits & 1 == 0).then_some(f64::from_bits(bits)))
    });
    let values = alarm.period_values(start, points);
    assert_eq!(values.len(), evaluation_periods as usize);
    if let Some(e) = alarm.evaluate(&values) {
        if e.state == AlarmState::Alarm {
            let breaching = values
                .iter()
                .filter(|v| match v {
                    Some(x) => alarm.comparison.breaches(*x, alarm.threshold),
                    None => alarm.treat_missing_data == MissingData::Breaching,
                })
                .count();
            assert!(breaching >= datapoints_to_alarm as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(missing: MissingData) -> Alarm {
        bare_alarm(5, 3, 2, 1.0, Comparison::GreaterThanOrEqualToThreshold, missing)
    }

    #[test]
    fn the_fuzz_check_holds_on_edges() {
        for data in [
            &[][..],
            &[0xff; 64],
            &[1; 100],
            &[
                0, 0, 1, 0, 5, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xf0, 0x7f, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0xf8, 0x7f,
            ],
        ] {
            fuzz_alarm_evaluation(data);
        }
    }

    #[test]
    fn period_values_are_indexed_by_time_in_one_pass() {
        let a = alarm(MissingData::Missing); // period 5, three periods
        let points = [(110, Some(3.0)), (100, Some(1.0)), (107, Some(9.0)), (95, Some(8.0)), (115, Some(4.0)), (105, None)];
        assert_eq!(a.period_values(100, points), vec![Some(1.0), None, Some(3.0)], "off-grid, outside and missing points are left out");
        assert_eq!(a.period_values(u64::MAX - 1, [(u64::MAX, Some(1.0))]), vec![None, None, None]);
    }

    #[test]
    fn m_out_of_n_breaching_datapoints_alarm() {
        let a = alarm(MissingData::Missing);
        assert_eq!(a.evaluate(&[Some(0.0), Some(2.0), Some(3.0)]).unwrap().state, AlarmState::Alarm);
        assert_eq!(a.evaluate(&[Some(5.0), Some(0.0), Some(0.0)]).unwrap().state, AlarmState::Ok);
        assert_eq!(a.evaluate(&[None, None, None]).unwrap().state, AlarmState::InsufficientData);
        assert_eq!(a.evaluate(&[None, Some(1.0), None]).unwrap().state, AlarmState::Ok, "one breach of two needed");
        assert!(a.evaluate(&[Some(0.0), Some(2.0), Some(3.0)]).unwrap().reason.starts_with("Threshold Crossed: 2 out of the last 3"));
    }

    #[test]
    fn missing_data_is_treated_as_configured() {
        assert_eq!(alarm(MissingData::Breaching).evaluate(&[None, None, Some(0.0)]).unwrap().state, AlarmState::Alarm);
        assert_eq!(alarm(MissingData::NotBreaching).evaluate(&[None, None, None]).unwrap().state, AlarmState::Ok);
        assert_eq!(alarm(MissingData::Ignore).evaluate(&[None, None, None]), None);
    }

    #[test]
    fn names_round_trip() {
        for c in Comparison::ALL {
            assert_eq!(Comparison::parse(c.as_str()), Some(c));
        }
        assert_eq!(MissingData::parse("notBreaching"), Some(MissingData::NotBreaching));
        assert_eq!(AlarmState::parse("INSUFFICIENT_DATA"), Some(AlarmState::InsufficientData));
    }
}
