//! CloudWatch metric alarms on berth's metrics (and custom ones): stored in the state store,
//! evaluated once a second by [`Controller::evaluate_alarms`], read by deployments for
//! auto-rollback.

use crate::metrics::MetricQuery;
use crate::{ControlError, Controller};
use berth_domain::{Alarm, AlarmState, Comparison, EventKind, MissingData, Timestamp};

/// PutMetricAlarm's input, in domain terms.
#[derive(Debug, Clone)]
pub struct PutAlarm {
    pub name: String,
    pub description: Option<String>,
    pub actions_enabled: bool,
    pub ok_actions: Vec<String>,
    pub alarm_actions: Vec<String>,
    pub insufficient_data_actions: Vec<String>,
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
        if u64::from(p.period) * u64::from(p.evaluation_periods) > 7 * 24 * 3600 {
            return invalid("Period × EvaluationPeriods must not exceed one week.".into());
        }
        let now = Timestamp::now();
        let name = p.name.clone();
        let existing = self.db(move |s| s.alarm(&name)).await?;
        let arn = format!("arn:aws:cloudwatch:{}:{}:alarm:{}", self.account().region, self.account().account_id, p.name);
        let alarm = Alarm {
            name: p.name,
            arn,
            description: p.description,
            actions_enabled: p.actions_enabled,
            ok_actions: p.ok_actions,
            alarm_actions: p.alarm_actions,
            insufficient_data_actions: p.insufficient_data_actions,
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
        let now = Timestamp::now();
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

    /// Evaluates every alarm on its last `EvaluationPeriods` complete periods at `now` (epoch
    /// seconds); stores the alarms whose state changed.
    pub async fn evaluate_alarms(&self, now: u64) -> Result<(), ControlError> {
        for alarm in self.alarms().await? {
            if alarm.manual_until.is_some_and(|until| now < until) {
                continue;
            }
            let period = u64::from(alarm.period);
            // The last period whose seconds are all closed (the sampler closes a second just after it ends).
            let end = now.saturating_sub(1) / period * period;
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
            let values: Vec<Option<f64>> = (0..alarm.evaluation_periods)
                .map(|i| {
                    let t = start + u64::from(i) * period;
                    points.iter().find(|d| d.timestamp == t).and_then(|d| d.statistic(&alarm.statistic))
                })
                .collect();
            let Some(evaluation) = alarm.evaluate(&values) else { continue };
            let manual_ended = alarm.manual_until.is_some();
            if evaluation.state != alarm.state || manual_ended {
                let mut alarm = alarm;
                alarm.manual_until = None;
                let data = serde_json::json!({
                    "version": "1.0",
                    "queryDate": Timestamp::now().as_secs_f64(),
                    "statistic": alarm.statistic,
                    "period": alarm.period,
                    "recentDatapoints": values.iter().flatten().collect::<Vec<_>>(),
                    "threshold": alarm.threshold,
                })
                .to_string();
                self.change_alarm_state(alarm, evaluation.state, evaluation.reason, Some(data), Timestamp::now()).await?;
            }
        }
        Ok(())
    }

    /// Of the named alarms, the ones in `ALARM` now, with their reasons; `AlarmNotFound` names
    /// those that do not exist.
    pub async fn alarms_in_alarm(&self, names: &[String]) -> Result<Vec<(String, String)>, ControlError> {
        let all = self.alarms().await?;
        let missing: Vec<&str> = names.iter().filter(|n| !all.iter().any(|a| &a.name == *n)).map(|s| s.as_str()).collect();
        if !missing.is_empty() {
            return Err(ControlError::AlarmNotFound(format!("The alarm(s) [{}] do not exist.", missing.join(", "))));
        }
        Ok(all.into_iter().filter(|a| names.contains(&a.name) && a.state == AlarmState::Alarm).map(|a| (a.name, a.state_reason)).collect())
    }
}
