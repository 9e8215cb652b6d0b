//! Custom metrics: `PutMetricData` stores datapoints (as statistic sets) in the state store;
//! `GetMetricStatistics`, `GetMetricData` and `ListMetrics` read them like berth's own.

use super::answers::{DimensionOut, MetricOut};
use super::Dimension;
use crate::error::EdgeError;
use crate::wire::Empty;
use crate::Edge;
use berth_control::canonical_dimensions;
use berth_metrics::MetricName;
use berth_store::CustomDatapoint;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PutMetricDataInput {
    namespace: String,
    metric_data: Vec<MetricDatum>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDatum {
    metric_name: String,
    #[serde(default)]
    dimensions: Vec<Dimension>,
    timestamp: Option<f64>,
    value: Option<f64>,
    statistic_values: Option<StatisticSet>,
    #[serde(default)]
    values: Vec<f64>,
    #[serde(default)]
    counts: Vec<f64>,
    unit: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StatisticSet {
    sample_count: f64,
    sum: f64,
    minimum: f64,
    maximum: f64,
}

fn now() -> f64 {
    berth_domain::Timestamp::now().as_secs_f64()
}

pub(super) async fn put_metric_data(edge: &Edge, input: PutMetricDataInput) -> Result<Empty, EdgeError> {
    if input.namespace.starts_with("AWS/") || MetricName::is_berth_namespace(&input.namespace) {
        return Err(EdgeError::invalid_parameter(format!(
            "The value {} for parameter Namespace is reserved for AWS metrics.",
            input.namespace
        )));
    }
    if input.metric_data.is_empty() || input.metric_data.len() > 1000 {
        return Err(EdgeError::invalid_parameter("MetricData must hold between 1 and 1000 items."));
    }
    let mut points = Vec::new();
    for d in input.metric_data {
        if d.dimensions.len() > 30 {
            return Err(EdgeError::invalid_parameter(format!("Metric {} has more than 30 dimensions.", d.metric_name)));
        }
        let set = match (d.value, d.statistic_values, d.values.is_empty()) {
            (Some(v), None, true) => (1.0, v, v, v),
            (None, Some(s), true) => (s.sample_count, s.sum, s.minimum, s.maximum),
            (None, None, false) => {
                if !d.counts.is_empty() && d.counts.len() != d.values.len() {
                    return Err(EdgeError::invalid_parameter(format!("Metric {}: Counts must match Values one for one.", d.metric_name)));
                }
                let count = |i: usize| d.counts.get(i).copied().unwrap_or(1.0);
                let n: f64 = (0..d.values.len()).map(count).sum();
                let sum: f64 = d.values.iter().enumerate().map(|(i, v)| v * count(i)).sum();
                let min = d.values.iter().copied().fold(f64::INFINITY, f64::min);
                let max = d.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                (n, sum, min, max)
            }
            _ => {
                return Err(EdgeError::parameter_combination(format!(
                    "Metric {}: give exactly one of Value, StatisticValues or Values.",
                    d.metric_name
                )))
            }
        };
        if [set.1, set.2, set.3].iter().any(|v| !v.is_finite()) {
            return Err(EdgeError::invalid_parameter(format!("Metric {}: values must be finite numbers.", d.metric_name)));
        }
        points.push(CustomDatapoint {
            namespace: input.namespace.clone(),
            metric_name: d.metric_name,
            dimensions: canonical_dimensions(&super::pairs(&d.dimensions)),
            ts: d.timestamp.unwrap_or_else(now).max(0.0) as u64,
            unit: d.unit.unwrap_or_else(|| "None".into()),
            sample_count: set.0,
            sum: set.1,
            minimum: set.2,
            maximum: set.3,
        });
    }
    edge.controller
        .put_custom_datapoints(points)
        .await
        .map_err(|e| EdgeError::invalid_parameter(format!("cannot store the datapoints: {e}")))?;
    Ok(Empty {})
}

/// Custom metrics for ListMetrics, filtered as asked.
pub(super) async fn list(
    edge: &Edge,
    namespace: Option<&str>,
    metric_name: Option<&str>,
    filter: &[Dimension],
) -> Result<Vec<MetricOut>, EdgeError> {
    if namespace.is_some_and(MetricName::is_berth_namespace) {
        return Ok(Vec::new());
    }
    let names = edge
        .controller
        .custom_metric_names()
        .await
        .map_err(|e| EdgeError::invalid_parameter(format!("cannot read stored metrics: {e}")))?;
    Ok(names
        .into_iter()
        .filter(|(ns, name, _)| namespace.is_none_or(|n| n == ns) && metric_name.is_none_or(|m| m == name))
        .filter_map(|(ns, name, dims)| {
            let pairs: Vec<(String, String)> = serde_json::from_str(&dims).ok()?;
            let wanted = filter.iter().all(|f| pairs.iter().any(|(k, v)| *k == f.name && f.value.as_ref().is_none_or(|fv| fv == v)));
            wanted.then(|| MetricOut {
                namespace: ns,
                metric_name: name,
                dimensions: pairs.iter().map(|(k, v)| DimensionOut::of(k, v)).collect(),
            })
        })
        .collect())
}
