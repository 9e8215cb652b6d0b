//! CloudWatch's answers in the shapes of botocore's `cloudwatch` model. The JSON and CBOR
//! protocols write them as they are; the query protocol writes the same members as XML.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DimensionOut {
    pub name: String,
    pub value: String,
}

impl DimensionOut {
    pub fn of(name: &str, value: &str) -> Self {
        DimensionOut { name: name.to_string(), value: value.to_string() }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct MetricOut {
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<DimensionOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListMetricsOutput {
    pub metrics: Vec<MetricOut>,
}

/// One datapoint of GetMetricStatistics: the statistics asked for, and the percentiles.
#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DatapointOut {
    pub timestamp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_count: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    pub unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_statistics: Option<BTreeMap<String, f64>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetMetricStatisticsOutput {
    pub label: String,
    pub datapoints: Vec<DatapointOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct MetricDataResultOut {
    pub id: String,
    pub label: String,
    pub timestamps: Vec<u64>,
    pub values: Vec<f64>,
    pub status_code: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetMetricDataOutput {
    pub metric_data_results: Vec<MetricDataResultOut>,
    pub messages: Vec<crate::wire::Empty>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DescribeAlarmsOutput {
    pub metric_alarms: Vec<AlarmOut>,
    pub composite_alarms: Vec<crate::wire::Empty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AlarmOut {
    pub alarm_name: String,
    pub alarm_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_description: Option<String>,
    pub alarm_configuration_updated_timestamp: f64,
    pub actions_enabled: bool,
    #[serde(rename = "OKActions")]
    pub ok_actions: Vec<String>,
    pub alarm_actions: Vec<String>,
    pub insufficient_data_actions: Vec<String>,
    pub state_value: &'static str,
    pub state_reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason_data: Option<String>,
    pub state_updated_timestamp: f64,
    pub state_transitioned_timestamp: f64,
    pub metric_name: String,
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_statistic: Option<String>,
    pub dimensions: Vec<DimensionOut>,
    pub period: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub threshold: f64,
    pub comparison_operator: &'static str,
    pub treat_missing_data: &'static str,
}
