//! A CloudWatch-compatible read API over berth's per-variant metrics (namespaces `AWS/SageMaker`
//! for invocations and `/aws/sagemaker/Endpoints` for instance utilization, dimensions
//! `EndpointName` + `VariantName`), in the protocols current botocore speaks for
//! `cloudwatch`: Smithy RPC v2 CBOR (`POST /service/GraniteServiceVersion20100801/operation/<Op>`,
//! what botocore picks first) and awsJson1_0 (`X-Amz-Target: GraniteServiceVersion20100801.<Op>`),
//! and the older AWS query protocol of earlier SDKs (`query.rs`: form in, XML out).

mod alarms;
mod answers;
mod custom;
mod query;

pub(crate) use query::decode as decode_form;
pub use query::query;

use crate::aws_json::reply;
use crate::error::{EdgeError, Service};
use crate::protocol::{encode_cbor, Protocol};
use crate::Edge;
use answers::{
    DatapointOut, DimensionOut, GetMetricDataOutput, GetMetricStatisticsOutput, ListMetricsOutput, MetricDataResultOut, MetricOut,
};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_control::MetricQuery;
use berth_metrics::{Datapoint, MetricName, VariantKey};
use serde::Deserialize;
use serde_json::{json, Value};

pub(crate) use crate::protocol::CLOUDWATCH_TARGET_PREFIX as TARGET_PREFIX;

/// Smithy RPC v2 CBOR.
pub async fn cbor(State(edge): State<Edge>, Path((service, operation)): Path<(String, String)>, body: Bytes) -> Response {
    let result = if service != TARGET_PREFIX {
        Err(unknown_operation(&format!("{service}.{operation}")))
    } else {
        match decode_cbor(&body) {
            Ok(input) => handle(&edge, &operation, input).await,
            Err(e) => Err(e),
        }
    };
    let value = match result {
        Ok(v) => v,
        Err(e) => return Protocol::CloudWatchCbor.answer_error(e),
    };
    let mut resp = (StatusCode::OK, encode_cbor(&value)).into_response();
    resp.headers_mut().insert("content-type", HeaderValue::from_static("application/cbor"));
    resp.headers_mut().insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
    resp
}

/// awsJson1_0, dispatched from `POST /` by its `X-Amz-Target`.
pub async fn json(edge: &Edge, operation: &str, body: &[u8]) -> Response {
    let input = if body.is_empty() {
        Ok(json!({}))
    } else {
        serde_json::from_slice(body).map_err(|e| EdgeError::invalid_parameter(format!("The request body is not valid JSON: {e}")))
    };
    let result = match input {
        Ok(i) => handle(edge, operation, i).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(v) => {
            let mut resp = (StatusCode::OK, v.to_string()).into_response();
            resp.headers_mut().insert("content-type", HeaderValue::from_static("application/x-amz-json-1.0"));
            resp
        }
        Err(e) => Protocol::CloudWatchJson.answer_error(e),
    }
}

/// A controller error in CloudWatch's codes.
fn cw_control(e: berth_control::ControlError) -> EdgeError {
    EdgeError::control(e, Service::CloudWatch)
}

fn unknown_operation(op: &str) -> EdgeError {
    EdgeError::unknown_operation(format!("Operation '{op}' is not supported by berth's CloudWatch API."))
}

async fn handle(edge: &Edge, operation: &str, input: Value) -> Result<Value, EdgeError> {
    match operation {
        "GetMetricStatistics" => reply(get_metric_statistics(edge, parse(input)?).await?),
        "ListMetrics" => reply(list_metrics(edge, parse(input)?).await?),
        "GetMetricData" => reply(get_metric_data(edge, parse(input)?).await?),
        "PutMetricData" => reply(custom::put_metric_data(edge, parse(input)?).await?),
        "PutMetricAlarm" => reply(alarms::put_metric_alarm(edge, parse(input)?).await?),
        "DescribeAlarms" => reply(alarms::describe_alarms(edge, parse(input)?).await?),
        "DeleteAlarms" => reply(alarms::delete_alarms(edge, parse(input)?).await?),
        "SetAlarmState" => reply(alarms::set_alarm_state(edge, parse(input)?).await?),
        other => Err(unknown_operation(other)),
    }
}

/// Decodes a value as every CloudWatch input berth reads (for the fuzz targets).
pub(crate) fn parse_every_input(input: &Value) {
    let _ = parse::<GetMetricStatisticsInput>(input.clone());
    let _ = parse::<ListMetricsInput>(input.clone());
    let _ = parse::<GetMetricDataInput>(input.clone());
    let _ = parse::<custom::PutMetricDataInput>(input.clone());
    let _ = parse::<alarms::PutMetricAlarmInput>(input.clone());
    let _ = parse::<alarms::DescribeAlarmsInput>(input.clone());
    let _ = parse::<alarms::DeleteAlarmsInput>(input.clone());
    let _ = parse::<alarms::SetAlarmStateInput>(input.clone());
}

/// The input as `T`; a missing required member is CloudWatch's `MissingParameter`, naming it.
fn parse<T: serde::de::DeserializeOwned>(input: Value) -> Result<T, EdgeError> {
    serde_json::from_value(input).map_err(|e| {
        let text = e.to_string();
        match text.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
            Some(member) => EdgeError::missing_parameter(format!("The parameter {member} is required.")),
            None => EdgeError::invalid_parameter(text),
        }
    })
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct Dimension {
    name: String,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetMetricStatisticsInput {
    namespace: String,
    metric_name: String,
    #[serde(default)]
    dimensions: Vec<Dimension>,
    start_time: f64,
    end_time: f64,
    period: i64,
    #[serde(default)]
    statistics: Vec<String>,
    #[serde(default)]
    extended_statistics: Vec<String>,
}

/// One metric over `[start, end)` in periods of `period` seconds.
fn metric_query(namespace: &str, metric_name: &str, dimensions: &[Dimension], start: u64, end: u64, period: u64) -> MetricQuery {
    MetricQuery {
        namespace: namespace.to_string(),
        metric_name: metric_name.to_string(),
        dimensions: pairs(dimensions),
        start,
        end,
        period,
    }
}

fn pairs(dimensions: &[Dimension]) -> Vec<(String, String)> {
    dimensions.iter().map(|d| (d.name.clone(), d.value.clone().unwrap_or_default())).collect()
}

/// Datapoints of one metric: berth's own or a custom one; returns its unit too.
async fn datapoints(edge: &Edge, q: &MetricQuery) -> Result<(Vec<Datapoint>, String), EdgeError> {
    edge.controller.metric_datapoints(q).await.map_err(cw_control)
}

async fn get_metric_statistics(edge: &Edge, input: GetMetricStatisticsInput) -> Result<GetMetricStatisticsOutput, EdgeError> {
    if input.statistics.is_empty() && input.extended_statistics.is_empty() {
        return Err(EdgeError::missing_parameter("Must specify either Statistics or ExtendedStatistics."));
    }
    if input.statistics.len() + input.extended_statistics.len() > 10 {
        return Err(EdgeError::parameter_combination("At most 10 statistics and extended statistics together."));
    }
    for s in &input.statistics {
        if !["SampleCount", "Average", "Sum", "Minimum", "Maximum"].contains(&s.as_str()) {
            return Err(EdgeError::invalid_parameter(format!(
                "The parameter Statistics.member contains '{s}', which is not one of SampleCount, Average, Sum, Minimum, Maximum."
            )));
        }
    }
    let percentiles: Vec<(String, f64)> = input
        .extended_statistics
        .iter()
        .map(|s| match s.strip_prefix('p').and_then(|p| p.parse::<f64>().ok()).filter(|p| (0.0..=100.0).contains(p)) {
            Some(p) => Ok((s.clone(), p)),
            None => Err(EdgeError::invalid_parameter(format!(
                "The parameter ExtendedStatistics contains '{s}': use percentiles such as p50 or p99.9."
            ))),
        })
        .collect::<Result<_, _>>()?;
    if input.period < 1 {
        return Err(EdgeError::invalid_parameter("The parameter Period must be at least 1."));
    }
    if input.end_time <= input.start_time {
        return Err(EdgeError::invalid_parameter("The parameter StartTime must be before EndTime."));
    }
    let (start, end) = (input.start_time.max(0.0).floor() as u64, input.end_time.max(0.0).ceil() as u64);
    let (datapoints, unit) =
        datapoints(edge, &metric_query(&input.namespace, &input.metric_name, &input.dimensions, start, end, input.period as u64)).await?;
    let asked = |name: &str, value: f64| input.statistics.iter().any(|s| s == name).then_some(value);
    let points = datapoints
        .iter()
        .map(|d| DatapointOut {
            timestamp: d.timestamp,
            sample_count: asked("SampleCount", d.sample_count),
            average: asked("Average", d.average()),
            sum: asked("Sum", d.sum),
            minimum: asked("Minimum", d.minimum),
            maximum: asked("Maximum", d.maximum),
            unit: unit.clone(),
            extended_statistics: (!percentiles.is_empty())
                .then(|| percentiles.iter().filter_map(|(name, q)| d.percentile(*q).map(|v| (name.clone(), v))).collect()),
        })
        .collect();
    Ok(GetMetricStatisticsOutput { label: input.metric_name, datapoints: points })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDataQuery {
    id: String,
    metric_stat: Option<MetricStat>,
    expression: Option<String>,
    label: Option<String>,
    return_data: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetricStat {
    metric: Metric,
    period: i64,
    stat: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Metric {
    namespace: Option<String>,
    metric_name: Option<String>,
    #[serde(default)]
    dimensions: Vec<Dimension>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetMetricDataInput {
    metric_data_queries: Vec<MetricDataQuery>,
    start_time: f64,
    end_time: f64,
    scan_by: Option<String>,
    max_datapoints: Option<usize>,
}

async fn get_metric_data(edge: &Edge, input: GetMetricDataInput) -> Result<GetMetricDataOutput, EdgeError> {
    if input.metric_data_queries.is_empty() || input.metric_data_queries.len() > 500 {
        return Err(EdgeError::invalid_parameter("MetricDataQueries must hold between 1 and 500 queries."));
    }
    if input.end_time <= input.start_time {
        return Err(EdgeError::invalid_parameter("The parameter StartTime must be before EndTime."));
    }
    let (start, end) = (input.start_time.max(0.0).floor() as u64, input.end_time.max(0.0).ceil() as u64);
    let ascending = match input.scan_by.as_deref() {
        None | Some("TimestampDescending") => false,
        Some("TimestampAscending") => true,
        Some(other) => {
            return Err(EdgeError::invalid_parameter(format!("ScanBy '{other}' is not TimestampDescending or TimestampAscending.")))
        }
    };
    let mut results = Vec::new();
    for q in &input.metric_data_queries {
        if q.expression.is_some() {
            return Err(EdgeError::invalid_parameter(format!(
                "Query '{}': metric math expressions are not supported by berth yet; use MetricStat.",
                q.id
            )));
        }
        let Some(stat) = &q.metric_stat else {
            return Err(EdgeError::missing_parameter(format!("Query '{}' needs MetricStat.", q.id)));
        };
        if stat.period < 1 {
            return Err(EdgeError::invalid_parameter(format!("Query '{}': Period must be at least 1.", q.id)));
        }
        if Datapoint::empty(0, None).statistic(&stat.stat).is_none() {
            return Err(EdgeError::invalid_parameter(format!("Query '{}': Stat '{}' is not a statistic berth knows.", q.id, stat.stat)));
        }
        if q.return_data == Some(false) {
            continue;
        }
        let namespace = stat.metric.namespace.as_deref().unwrap_or_default();
        let name = stat.metric.metric_name.as_deref().unwrap_or_default();
        let query = metric_query(namespace, name, &stat.metric.dimensions, start, end, stat.period as u64);
        let (datapoints, _) = datapoints(edge, &query).await?;
        let mut pairs: Vec<(u64, f64)> = datapoints.iter().filter_map(|d| d.statistic(&stat.stat).map(|v| (d.timestamp, v))).collect();
        if !ascending {
            pairs.reverse();
        }
        if let Some(max) = input.max_datapoints {
            pairs.truncate(max);
        }
        let label = q.label.clone().unwrap_or_else(|| stat.metric.metric_name.clone().unwrap_or_default());
        results.push(MetricDataResultOut {
            id: q.id.clone(),
            label,
            timestamps: pairs.iter().map(|(t, _)| *t).collect(),
            values: pairs.iter().map(|(_, v)| *v).collect(),
            status_code: "Complete",
        });
    }
    Ok(GetMetricDataOutput { metric_data_results: results, messages: Vec::new() })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListMetricsInput {
    namespace: Option<String>,
    metric_name: Option<String>,
    #[serde(default)]
    dimensions: Vec<Dimension>,
}

async fn list_metrics(edge: &Edge, input: ListMetricsInput) -> Result<ListMetricsOutput, EdgeError> {
    let mut metrics = custom::list(edge, input.namespace.as_deref(), input.metric_name.as_deref(), &input.dimensions).await?;
    if input.namespace.as_deref().is_some_and(|n| !MetricName::is_berth_namespace(n)) {
        return Ok(ListMetricsOutput { metrics });
    }
    let matches = |key: &VariantKey| {
        let (variant, container) = key.variant_and_container();
        if let Some(component) = key.component_name() {
            return input.dimensions.iter().all(|d| d.name == "InferenceComponentName" && d.value.as_ref().is_none_or(|v| v == component));
        }
        input.dimensions.iter().all(|d| {
            let actual = match (d.name.as_str(), container) {
                ("EndpointName", _) => key.endpoint.as_str(),
                ("VariantName", _) => variant,
                ("ContainerName", Some(c)) => c,
                _ => return false,
            };
            d.value.as_ref().is_none_or(|v| v == actual)
        })
    };
    for key in edge.router.table().metrics().keys().into_iter().filter(matches) {
        let component = key.component_name();
        // An inference component's invocations per instance are its invocations per copy.
        let name_of = |m: MetricName| match (m, component) {
            (MetricName::InvocationsPerInstance, Some(_)) => "InvocationsPerCopy",
            _ => m.as_str(),
        };
        let wanted = |m: &MetricName| {
            input.metric_name.as_deref().is_none_or(|n| n == name_of(*m)) && input.namespace.as_deref().is_none_or(|n| n == m.namespace())
        };
        let (variant, container) = key.variant_and_container();
        let dimensions = || match component {
            Some(c) => vec![DimensionOut::of("InferenceComponentName", c)],
            None => {
                let mut out = vec![DimensionOut::of("EndpointName", &key.endpoint), DimensionOut::of("VariantName", variant)];
                out.extend(container.map(|c| DimensionOut::of("ContainerName", c)));
                out
            }
        };
        for m in MetricName::ALL.into_iter().filter(wanted) {
            // Instance utilization is the host's, not a component's.
            if component.is_some() && m.namespace() != berth_metrics::INVOCATION_NAMESPACE {
                continue;
            }
            metrics.push(MetricOut { namespace: m.namespace().into(), metric_name: name_of(m).into(), dimensions: dimensions() });
        }
    }
    Ok(ListMetricsOutput { metrics })
}

// ---- CBOR <-> JSON values ---------------------------------------------------------------

/// Nesting CloudWatch's inputs never need; deeper values are refused while decoding.
const MAX_CBOR_DEPTH: usize = 32;

pub(crate) fn decode_cbor(body: &[u8]) -> Result<Value, EdgeError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    let mut rest = body;
    let value: ciborium::Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_CBOR_DEPTH)
        .map_err(|e| EdgeError::invalid_parameter(format!("The request body is not valid CBOR: {e}")))?;
    if !rest.is_empty() {
        return Err(EdgeError::invalid_parameter(format!("The request body has {} bytes after its CBOR value.", rest.len())));
    }
    Ok(from_cbor(value))
}

fn from_cbor(v: ciborium::Value) -> Value {
    use ciborium::Value as C;
    match v {
        C::Integer(i) => i64::try_from(i).map(Value::from).unwrap_or(Value::Null),
        C::Float(f) => json!(f),
        C::Text(s) => Value::String(s),
        C::Bool(b) => Value::Bool(b),
        C::Null => Value::Null,
        // Timestamps arrive as tag 1 (epoch seconds); other tags are read through.
        C::Tag(_, inner) => from_cbor(*inner),
        C::Array(items) => Value::Array(items.into_iter().map(from_cbor).collect()),
        C::Map(entries) => Value::Object(
            entries
                .into_iter()
                .filter_map(|(k, v)| match k {
                    C::Text(k) => Some((k, from_cbor(v))),
                    _ => None,
                })
                .collect(),
        ),
        C::Bytes(_) => Value::Null,
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cbor(v: &ciborium::Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(v, &mut out).unwrap();
        out
    }

    #[test]
    fn cbor_bodies_are_one_value_of_bounded_depth() {
        let map = ciborium::Value::Map(vec![(ciborium::Value::Text("Namespace".into()), ciborium::Value::Text("AWS/SageMaker".into()))]);
        assert_eq!(decode_cbor(&cbor(&map)).unwrap(), json!({"Namespace": "AWS/SageMaker"}));
        let mut trailing = cbor(&map);
        trailing.push(0x00);
        assert!(decode_cbor(&trailing).unwrap_err().message.contains("1 bytes after"));
        // 10,000 nested one-element arrays: 0x81 each.
        let mut deep = vec![0x81u8; 10_000];
        deep.push(0x00);
        assert!(decode_cbor(&deep).is_err());
        // An array announcing 2^32 items in 5 bytes.
        assert!(decode_cbor(&[0x9a, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
