//! CloudWatch metric alarms on berth's metrics (and custom ones): stored in the state store,
//! evaluated once a second by [`Controller::evaluate_alarms`], read by deployments for
//! auto-rollback.

use crate::metrics::MetricQuery;
use crate::{ControlError, Controller};
use berth_domain::{Alarm, AlarmActions, AlarmState, Comparison, EventKind, MissingData, Timestamp};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The time one round of evaluation may take; alarms still due then wait for the next round
/// (the cheapest are evaluated first, so a few alarms over long windows never hold up the others).
const ROUND_BUDGET: Duration = Duration::from_millis(250);

/// By alarm name: the end of the window last evaluated, and the configuration it was evaluated
/// with.
pub(crate) type Evaluations = std::sync::Mutex<HashMap<String, (u64, Timestamp)>>;

/// PutMetricAlarm's input, in domain terms.
#[derive(Debug, Clone)]
pub struct PutAlarm {
    pub name: String,
    pub description: Option<String>,
    pub actions: AlarmActions,
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<(String, String)>,
    pub statistic: Option<String>,
    pub extended_statistic: Option<String>,
    pub unit: Option<String>,
    pub period: u32,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: Option<u32>,
    pub threshold: f64,
    pub comparison: String,
    pub treat_missing_data: Option<String>,
}

const STATISTICS: [&str; 5] = ["SampleCount", "Average", "Sum", "Minimum", "Maximum"];

impl Controller {
    /// Creates an alarm, or replaces the configuration of an existing one (its state stays).
    pub async fn put_alarm(&self, p: PutAlarm) -> Result<Alarm, ControlError> {
        let invalid = |m: String| Err(ControlError::Validation(m));
        if p.name.is_empty() || p.name.len() > 255 {
            return invalid("AlarmName must be 1 to 255 characters long.".into());
        }
        let (statistic, extended) = match (&p.statistic, &p.extended_statistic) {
            (Some(s), None) if STATISTICS.contains(&s.as_str()) => (s.clone(), false),
            (Some(s), None) => return invalid(format!("Statistic '{s}' is not one of {}.", STATISTICS.join(", "))),
            (None, Some(e)) => {
                let ok = e.strip_prefix('p').and_then(|q| q.parse::<f64>().ok()).is_some_and(|q| (0.0..=100.0).contains(&q));
                if !ok {
                    return invalid(format!("ExtendedStatistic '{e}' is not a percentile such as p99 or p99.9."));
                }
                (e.clone(), true)
            }
            (Some(_), Some(_)) => return invalid("Specify either Statistic or ExtendedStatistic, not both.".into()),
            (None, None) => return invalid("Specify Statistic or ExtendedStatistic.".into()),
        };
        if p.metric_name.is_empty() || p.namespace.is_empty() {
            return invalid("MetricName and Namespace are required (metric math alarms are not supported by berth yet).".into());
        }
        let Some(comparison) = Comparison::parse(&p.comparison) else {
            return invalid(format!(
                "ComparisonOperator '{}' is not one of GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanThreshold, \
                 LessThanOrEqualToThreshold (anomaly detection bands are not supported by berth).",
                p.comparison
            ));
        };
        let treat_missing_data = match p.treat_missing_data.as_deref() {
            None => MissingData::Missing,
            Some(t) => MissingData::parse(t).ok_or_else(|| {
                ControlError::Validation(format!("TreatMissingData '{t}' is not one of breaching, notBreaching, ignore, missing."))
            })?,
        };
        if p.period < 1 {
            return invalid("Period must be at least 1 second.".into());
        }
        if p.evaluation_periods < 1 {
            return invalid("EvaluationPeriods must be at least 1.".into());
        }
        let datapoints_to_alarm = p.datapoints_to_alarm.unwrap_or(p.evaluation_periods);
        if datapoints_to_alarm < 1 || datapoints_to_alarm > p.evaluation_periods {
            return invalid(format!(
                "DatapointsToAlarm ({datapoints_to_alarm}) must be between 1 and EvaluationPeriods ({}).",
                p.evaluation_periods
            ));
        }
        let range = u64::from(p.period) * u64::from(p.evaluation_periods);
        if range > berth_domain::MAX_EVALUATION_RANGE_SECS {
            return invalid(format!(
                "The evaluation period of an alarm cannot be longer than seven days: Period × EvaluationPeriods is {range} seconds, more than 604,800."
            ));
        }
        if p.period < 3600 && range > berth_domain::MAX_SUB_HOUR_EVALUATION_RANGE_SECS {
            return invalid(format!(
                "The evaluation period of an alarm with a Period of less than one hour cannot be longer than one day: \
                 Period × EvaluationPeriods is {range} seconds, more than 86,400."
            ));
        }
        let now = self.now();
        let name = p.name.clone();
        let existing = self.db(move |s| s.alarm(&name)).await?;
        if existing.is_none() {
            let count = self.db(|s| s.alarms()).await?.len();
            if count >= self.settings.limits.max_alarms {
                return Err(ControlError::LimitExceeded(format!(
                    "The quota for alarms for this customer has already been reached: {count} alarms (berth serve's --max-alarms)."
                )));
            }
        }
        let arn = format!("arn:aws:cloudwatch:{}:{}:alarm:{}", self.account().region, self.account().account_id, p.name);
        let alarm = Alarm {
            name: p.name,
            arn,
            description: p.description,
            actions: p.actions,
            namespace: p.namespace,
            metric_name: p.metric_name,
            dimensions: p.dimensions,
            statistic,
            extended,
            unit: p.unit,
            period: p.period,
            evaluation_periods: p.evaluation_periods,
            datapoints_to_alarm,
            threshold: p.threshold,
            comparison,
            treat_missing_data,
            configuration_updated: now,
            state: existing.as_ref().map_or(AlarmState::InsufficientData, |a| a.state),
            state_reason: existing.as_ref().map_or_else(|| "Unchecked: Initial alarm creation".into(), |a| a.state_reason.clone()),
            state_reason_data: existing.as_ref().and_then(|a| a.state_reason_data.clone()),
            state_updated: existing.as_ref().map_or(now, |a| a.state_updated),
            manual_until: None,
        };
        let stored = alarm.clone();
        self.db(move |s| s.put_alarm(&stored)).await?;
        tracing::info!(alarm = %alarm.name, metric = %alarm.metric_name, "alarm saved");
        Ok(alarm)
    }

    /// Every alarm, by name.
    pub async fn alarms(&self) -> Result<Vec<Alarm>, ControlError> {
        self.db(|s| s.alarms()).await
    }

    /// Deletes alarms: all of them, or none when one does not exist.
    pub async fn delete_alarms(&self, names: Vec<String>) -> Result<(), ControlError> {
        let all = self.alarms().await?;
        let missing: Vec<&String> = names.iter().filter(|n| !all.iter().any(|a| &a.name == *n)).collect();
        if !missing.is_empty() {
            return Err(ControlError::AlarmNotFound(format!(
                "{} alarm(s) not found: {}",
                missing.len(),
                missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        self.db(move |s| names.iter().try_for_each(|n| s.delete_alarm(n).map(|_| ()))).await
    }

    /// Sets an alarm's state by hand; it holds for one period (at least 10 seconds), then the
    /// alarm is evaluated again.
    pub async fn set_alarm_state(&self, name: &str, state: AlarmState, reason: String, data: Option<String>) -> Result<(), ControlError> {
        let key = name.to_string();
        let Some(mut alarm) = self.db(move |s| s.alarm(&key)).await? else {
            return Err(ControlError::AlarmNotFound(format!("Alarm {name} not found")));
        };
        let now = self.now();
        alarm.manual_until = Some((now.millis() / 1000) as u64 + u64::from(alarm.period).max(10));
        self.change_alarm_state(alarm, state, reason, data, now).await
    }

    async fn change_alarm_state(
        &self,
        mut alarm: Alarm,
        state: AlarmState,
        reason: String,
        data: Option<String>,
        now: Timestamp,
    ) -> Result<(), ControlError> {
        let changed = alarm.state != state;
        alarm.state = state;
        alarm.state_reason = reason;
        alarm.state_reason_data = data;
        if changed {
            alarm.state_updated = now;
            tracing::info!(alarm = %alarm.name, state = state.as_str(), reason = %alarm.state_reason, "alarm state changed");
            if let Some((_, endpoint)) = alarm.dimensions.iter().find(|(k, _)| k == "EndpointName") {
                let variant = alarm.dimensions.iter().find(|(k, _)| k == "VariantName").map(|(_, v)| v.as_str());
                let message = format!("Alarm {} is {}: {}", alarm.name, state.as_str(), alarm.state_reason);
                self.record_event(endpoint, variant, EventKind::AlarmStateChanged, message);
            }
        }
        let stored = alarm;
        self.db(move |s| s.put_alarm(&stored)).await
    }

    /// Evaluates the alarms due at `now` (epoch seconds) on their last `EvaluationPeriods`
    /// complete periods — those a new period of which has closed since they were last evaluated,
    /// or whose configuration or manual state changed — the shortest windows first, for at most
    /// [`ROUND_BUDGET`]; stores the alarms whose state changed. Each costs one pass over the
    /// datapoints of its window.
    pub async fn evaluate_alarms(&self, now: u64) -> Result<(), ControlError> {
        let alarms = self.alarms().await?;
        let mut due: Vec<(Alarm, u64)> = {
            let mut evaluated = self.alarm_evaluations.lock().unwrap_or_else(|e| e.into_inner());
            evaluated.retain(|name, _| alarms.iter().any(|a| &a.name == name));
            alarms
                .into_iter()
                .filter(|a| a.manual_until.is_none_or(|until| now >= until))
                .filter_map(|a| {
                    // The last period whose seconds are all closed (the sampler closes a second just after it ends).
                    let period = u64::from(a.period.max(1));
                    let end = now.saturating_sub(1) / period * period;
                    let fresh =
                        evaluated.get(&a.name).is_some_and(|(last, configured)| *last >= end && *configured == a.configuration_updated);
                    (!fresh || a.manual_until.is_some()).then_some((a, end))
                })
                .collect()
        };
        due.sort_by_key(|(a, _)| u64::from(a.period) * u64::from(a.evaluation_periods));
        let began = Instant::now();
        for (alarm, end) in due {
            if began.elapsed() > ROUND_BUDGET {
                break;
            }
            self.alarm_evaluations.lock().unwrap_or_else(|e| e.into_inner()).insert(alarm.name.clone(), (end, alarm.configuration_updated));
            let period = u64::from(alarm.period.max(1));
            let start = end.saturating_sub(period * u64::from(alarm.evaluation_periods));
            let q = MetricQuery {
                namespace: alarm.namespace.clone(),
                metric_name: alarm.metric_name.clone(),
                dimensions: alarm.dimensions.clone(),
                start,
                end,
                period,
            };
            let (points, _) = self.metric_datapoints(&q).await?;
            let values = alarm.period_values(start, points.iter().map(|d| (d.timestamp, d.statistic(&alarm.statistic))));
            let Some(evaluation) = alarm.evaluate(&values) else { continue };
            let manual_ended = alarm.manual_until.is_some();
            if evaluation.state != alarm.state || manual_ended {
                let mut alarm = alarm;
                alarm.manual_until = None;
                let data = serde_json::json!({
                    "version": "1.0",
                    "queryDate": self.now().as_secs_f64(),
                    "statistic": alarm.statistic,
                    "period": alarm.period,
                    "recentDatapoints": values.iter().flatten().collect::<Vec<_>>(),
                    "threshold": alarm.threshold,
                })
                .to_string();
                self.change_alarm_state(alarm, evaluation.state, evaluation.reason, Some(data), self.now()).await?;
            }
        }
        Ok(())
    }

    /// Why a guarded deployment watching `names` must roll back now, if it must: the alarms in
    /// `ALARM` (with their reasons), or that they cannot be read.
    pub(crate) async fn rollback_alarm_reason(&self, names: &[String]) -> Option<String> {
        match self.alarms_in_alarm(names).await {
            Ok(firing) if firing.is_empty() => None,
            Ok(firing) => {
                let names: Vec<String> = firing.iter().map(|(n, r)| format!("{n} ({r})")).collect();
                Some(format!("alarm(s) in ALARM: {}", names.join("; ")))
            }
            Err(e) => Some(format!("cannot read the rollback alarms: {e}")),
        }
    }

    /// Of the named alarms, the ones in `ALARM` now, with their reasons; `AlarmNotFound` names
    /// those that do not exist.
    pub async fn alarms_in_alarm(&self, names: &[String]) -> Result<Vec<(String, String)>, ControlError> {
        if names.is_empty() {
            return Ok(Vec::new()); // a deployment without rollback alarms reads none
        }
        let all = self.alarms().await?;
        let missing: Vec<&str> = names.iter().filter(|n| !all.iter().any(|a| &a.name == *n)).map(|s| s.as_str()).collect();
        if !missing.is_empty() {
            return Err(ControlError::AlarmNotFound(format!("The alarm(s) [{}] do not exist.", missing.join(", "))));
        }
        Ok(all.into_iter().filter(|a| names.contains(&a.name) && a.state == AlarmState::Alarm).map(|a| (a.name, a.state_reason)).collect())
    }
}
