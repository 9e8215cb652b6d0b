//! Metric alarms: `PutMetricAlarm`, `DescribeAlarms`, `DeleteAlarms`, `SetAlarmState`. berth
//! evaluates them itself once a second; deployments roll back when one of their alarms is in
//! `ALARM`. Alarm actions (SNS topics, Auto Scaling policies) are stored and shown, not run.

use super::answers::{AlarmOut, DescribeAlarmsOutput, DimensionOut};
use super::{cw_control, pairs, Dimension};
use crate::error::EdgeError;
use crate::wire::Empty;
use crate::Edge;
use axum::http::StatusCode;
use berth_control::PutAlarm;
use berth_domain::{Alarm, AlarmActions, AlarmState};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PutMetricAlarmInput {
    alarm_name: String,
    alarm_description: Option<String>,
    actions_enabled: Option<bool>,
    #[serde(default, rename = "OKActions")]
    ok_actions: Vec<String>,
    #[serde(default)]
    alarm_actions: Vec<String>,
    #[serde(default)]
    insufficient_data_actions: Vec<String>,
    metric_name: Option<String>,
    namespace: Option<String>,
    statistic: Option<String>,
    extended_statistic: Option<String>,
    #[serde(default)]
    dimensions: Vec<Dimension>,
    period: Option<i64>,
    unit: Option<String>,
    evaluation_periods: i64,
    datapoints_to_alarm: Option<i64>,
    threshold: Option<f64>,
    comparison_operator: String,
    treat_missing_data: Option<String>,
    metrics: Option<Value>,
}

fn count(name: &str, v: i64) -> Result<u32, EdgeError> {
    u32::try_from(v).map_err(|_| EdgeError::invalid_parameter(format!("The parameter {name} must be a positive number, not {v}.")))
}

pub(super) async fn put_metric_alarm(edge: &Edge, input: PutMetricAlarmInput) -> Result<Empty, EdgeError> {
    if input.metrics.is_some() {
        return Err(EdgeError::invalid_parameter("Alarms on metric math (Metrics) are not supported by berth yet; use MetricName."));
    }
    let threshold = input.threshold.ok_or_else(|| EdgeError::missing_parameter("The parameter Threshold is required."))?;
    let period = input.period.ok_or_else(|| EdgeError::missing_parameter("The parameter Period is required."))?;
    let put = PutAlarm {
        name: input.alarm_name,
        description: input.alarm_description,
        actions: AlarmActions {
            actions_enabled: input.actions_enabled.unwrap_or(true),
            ok_actions: input.ok_actions,
            alarm_actions: input.alarm_actions,
            insufficient_data_actions: input.insufficient_data_actions,
        },
        namespace: input.namespace.unwrap_or_default(),
        metric_name: input.metric_name.unwrap_or_default(),
        dimensions: pairs(&input.dimensions),
        statistic: input.statistic,
        extended_statistic: input.extended_statistic,
        unit: input.unit,
        period: count("Period", period)?,
        evaluation_periods: count("EvaluationPeriods", input.evaluation_periods)?,
        datapoints_to_alarm: input.datapoints_to_alarm.map(|d| count("DatapointsToAlarm", d)).transpose()?,
        threshold,
        comparison: input.comparison_operator,
        treat_missing_data: input.treat_missing_data,
    };
    edge.controller.put_alarm(put).await.map_err(cw_control)?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DescribeAlarmsInput {
    #[serde(default)]
    alarm_names: Vec<String>,
    alarm_name_prefix: Option<String>,
    #[serde(default)]
    alarm_types: Vec<String>,
    state_value: Option<String>,
    action_prefix: Option<String>,
    max_records: Option<i64>,
    next_token: Option<String>,
}

pub(super) async fn describe_alarms(edge: &Edge, input: DescribeAlarmsInput) -> Result<DescribeAlarmsOutput, EdgeError> {
    if !input.alarm_names.is_empty() && input.alarm_name_prefix.is_some() {
        return Err(EdgeError::parameter_combination("AlarmNames and AlarmNamePrefix cannot be used together."));
    }
    let state = match input.state_value.as_deref() {
        None => None,
        Some(s) => Some(
            AlarmState::parse(s)
                .ok_or_else(|| EdgeError::invalid_parameter(format!("StateValue '{s}' is not OK, ALARM or INSUFFICIENT_DATA.")))?,
        ),
    };
    let metric_alarms_wanted = input.alarm_types.is_empty() || input.alarm_types.iter().any(|t| t == "MetricAlarm");
    let max = input.max_records.unwrap_or(50);
    if !(1..=100).contains(&max) {
        return Err(EdgeError::invalid_parameter("MaxRecords must be between 1 and 100."));
    }
    let skip: usize = match input.next_token.as_deref() {
        None => 0,
        Some(t) => t.parse().map_err(|_| EdgeError::new(StatusCode::BAD_REQUEST, "InvalidNextToken", "The next token is not valid."))?,
    };
    let all = edge.controller.alarms().await.map_err(cw_control)?;
    let matching: Vec<&Alarm> = all
        .iter()
        .filter(|_| metric_alarms_wanted)
        .filter(|a| input.alarm_names.is_empty() || input.alarm_names.contains(&a.name))
        .filter(|a| input.alarm_name_prefix.as_deref().is_none_or(|p| a.name.starts_with(p)))
        .filter(|a| state.is_none_or(|s| a.state == s))
        .filter(|a| input.action_prefix.as_deref().is_none_or(|p| a.actions.all().any(|x| x.starts_with(p))))
        .collect();
    let metric_alarms = matching.iter().skip(skip).take(max as usize).map(|a| alarm_out(a)).collect();
    let next_token = (skip + (max as usize) < matching.len()).then(|| (skip + max as usize).to_string());
    Ok(DescribeAlarmsOutput { metric_alarms, composite_alarms: Vec::new(), next_token })
}

fn alarm_out(a: &Alarm) -> AlarmOut {
    AlarmOut {
        alarm_name: a.name.clone(),
        alarm_arn: a.arn.clone(),
        alarm_description: a.description.clone(),
        alarm_configuration_updated_timestamp: a.configuration_updated.as_secs_f64(),
        actions_enabled: a.actions.actions_enabled,
        ok_actions: a.actions.ok_actions.clone(),
        alarm_actions: a.actions.alarm_actions.clone(),
        insufficient_data_actions: a.actions.insufficient_data_actions.clone(),
        state_value: a.state.as_str(),
        state_reason: a.state_reason.clone(),
        state_reason_data: a.state_reason_data.clone(),
        state_updated_timestamp: a.state_updated.as_secs_f64(),
        state_transitioned_timestamp: a.state_updated.as_secs_f64(),
        metric_name: a.metric_name.clone(),
        namespace: a.namespace.clone(),
        statistic: (!a.extended).then(|| a.statistic.clone()),
        extended_statistic: a.extended.then(|| a.statistic.clone()),
        dimensions: a.dimensions.iter().map(|(k, v)| DimensionOut::of(k, v)).collect(),
        period: a.period,
        unit: a.unit.clone(),
        evaluation_periods: a.evaluation_periods,
        datapoints_to_alarm: a.datapoints_to_alarm,
        threshold: a.threshold,
        comparison_operator: a.comparison.as_str(),
        treat_missing_data: a.treat_missing_data.as_str(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DeleteAlarmsInput {
    alarm_names: Vec<String>,
}

pub(super) async fn delete_alarms(edge: &Edge, input: DeleteAlarmsInput) -> Result<Empty, EdgeError> {
    if input.alarm_names.len() > 100 {
        return Err(EdgeError::invalid_parameter("At most 100 AlarmNames at once."));
    }
    edge.controller.delete_alarms(input.alarm_names).await.map_err(cw_control)?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SetAlarmStateInput {
    alarm_name: String,
    state_value: String,
    state_reason: String,
    state_reason_data: Option<String>,
}

pub(super) async fn set_alarm_state(edge: &Edge, input: SetAlarmStateInput) -> Result<Empty, EdgeError> {
    let state = AlarmState::parse(&input.state_value).ok_or_else(|| {
        EdgeError::invalid_parameter(format!("StateValue '{}' is not OK, ALARM or INSUFFICIENT_DATA.", input.state_value))
    })?;
    if let Some(data) = &input.state_reason_data {
        if serde_json::from_str::<Value>(data).is_err() {
            return Err(EdgeError::new(StatusCode::BAD_REQUEST, "InvalidFormat", "StateReasonData is not valid JSON."));
        }
    }
    edge.controller.set_alarm_state(&input.alarm_name, state, input.state_reason, input.state_reason_data).await.map_err(cw_control)?;
    Ok(Empty {})
}
