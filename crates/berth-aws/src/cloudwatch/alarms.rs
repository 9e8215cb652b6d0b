//! Metric alarms: `PutMetricAlarm`, `DescribeAlarms`, `DeleteAlarms`, `SetAlarmState`. berth
//! evaluates them itself once a second; deployments roll back when one of their alarms is in
//! `ALARM`. Alarm actions (SNS topics, Auto Scaling policies) are stored and shown, not run.

use super::{cw_control, pairs, Dimension};
use crate::error::EdgeError;
use crate::Edge;
use axum::http::StatusCode;
use berth_control::PutAlarm;
use berth_domain::{Alarm, AlarmState};
use serde::Deserialize;
use serde_json::{json, Value};

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

pub(super) async fn put_metric_alarm(edge: &Edge, input: PutMetricAlarmInput) -> Result<Value, EdgeError> {
    if input.metrics.is_some() {
        return Err(EdgeError::invalid_parameter("Alarms on metric math (Metrics) are not supported by berth yet; use MetricName."));
    }
    let threshold = input.threshold.ok_or_else(|| EdgeError::missing_parameter("The parameter Threshold is required."))?;
    let period = input.period.ok_or_else(|| EdgeError::missing_parameter("The parameter Period is required."))?;
    let put = PutAlarm {
        name: input.alarm_name,
        description: input.alarm_description,
        actions_enabled: input.actions_enabled.unwrap_or(true),
        ok_actions: input.ok_actions,
        alarm_actions: input.alarm_actions,
        insufficient_data_actions: input.insufficient_data_actions,
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
    Ok(json!({}))
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

pub(super) async fn describe_alarms(edge: &Edge, input: DescribeAlarmsInput) -> Result<Value, EdgeError> {
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
    let matching: Vec<&Alarm> =
        all.iter()
            .filter(|_| metric_alarms_wanted)
            .filter(|a| input.alarm_names.is_empty() || input.alarm_names.contains(&a.name))
            .filter(|a| input.alarm_name_prefix.as_deref().is_none_or(|p| a.name.starts_with(p)))
            .filter(|a| state.is_none_or(|s| a.state == s))
            .filter(|a| {
                input.action_prefix.as_deref().is_none_or(|p| {
                    a.ok_actions.iter().chain(&a.alarm_actions).chain(&a.insufficient_data_actions).any(|x| x.starts_with(p))
                })
            })
            .collect();
    let page: Vec<Value> = matching.iter().skip(skip).take(max as usize).map(|a| alarm_json(a)).collect();
    let mut out = json!({ "MetricAlarms": page, "CompositeAlarms": [] });
    if skip + (max as usize) < matching.len() {
        out["NextToken"] = json!((skip + max as usize).to_string());
    }
    Ok(out)
}

fn alarm_json(a: &Alarm) -> Value {
    let mut v = json!({
        "AlarmName": a.name,
        "AlarmArn": a.arn,
        "AlarmConfigurationUpdatedTimestamp": a.configuration_updated.as_secs_f64(),
        "ActionsEnabled": a.actions_enabled,
        "OKActions": a.ok_actions,
        "AlarmActions": a.alarm_actions,
        "InsufficientDataActions": a.insufficient_data_actions,
        "StateValue": a.state.as_str(),
        "StateReason": a.state_reason,
        "StateUpdatedTimestamp": a.state_updated.as_secs_f64(),
        "StateTransitionedTimestamp": a.state_updated.as_secs_f64(),
        "MetricName": a.metric_name,
        "Namespace": a.namespace,
        "Dimensions": a.dimensions.iter().map(|(k, v)| json!({"Name": k, "Value": v})).collect::<Vec<_>>(),
        "Period": a.period,
        "EvaluationPeriods": a.evaluation_periods,
        "DatapointsToAlarm": a.datapoints_to_alarm,
        "Threshold": a.threshold,
        "ComparisonOperator": a.comparison.as_str(),
        "TreatMissingData": a.treat_missing_data.as_str(),
    });
    if a.extended {
        v["ExtendedStatistic"] = json!(a.statistic);
    } else {
        v["Statistic"] = json!(a.statistic);
    }
    if let Some(d) = &a.description {
        v["AlarmDescription"] = json!(d);
    }
    if let Some(d) = &a.state_reason_data {
        v["StateReasonData"] = json!(d);
    }
    if let Some(u) = &a.unit {
        v["Unit"] = json!(u);
    }
    v
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DeleteAlarmsInput {
    alarm_names: Vec<String>,
}

pub(super) async fn delete_alarms(edge: &Edge, input: DeleteAlarmsInput) -> Result<Value, EdgeError> {
    if input.alarm_names.len() > 100 {
        return Err(EdgeError::invalid_parameter("At most 100 AlarmNames at once."));
    }
    edge.controller.delete_alarms(input.alarm_names).await.map_err(cw_control)?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SetAlarmStateInput {
    alarm_name: String,
    state_value: String,
    state_reason: String,
    state_reason_data: Option<String>,
}

pub(super) async fn set_alarm_state(edge: &Edge, input: SetAlarmStateInput) -> Result<Value, EdgeError> {
    let state = AlarmState::parse(&input.state_value).ok_or_else(|| {
        EdgeError::invalid_parameter(format!("StateValue '{}' is not OK, ALARM or INSUFFICIENT_DATA.", input.state_value))
    })?;
    if let Some(data) = &input.state_reason_data {
        if serde_json::from_str::<Value>(data).is_err() {
            return Err(EdgeError::new(StatusCode::BAD_REQUEST, "InvalidFormat", "StateReasonData is not valid JSON."));
        }
    }
    edge.controller.set_alarm_state(&input.alarm_name, state, input.state_reason, input.state_reason_data).await.map_err(cw_control)?;
    Ok(json!({}))
}
