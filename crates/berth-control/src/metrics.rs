//! Metric history in the state store: per-second samples for the last hour and per-minute
//! rollups for the retention period, written by the binary's sampler; and metric queries over
//! it, berth's own metrics and custom ones alike (for the CloudWatch API and alarms).

use crate::{ControlError, Controller};
use berth_metrics::{period_of, seconds_cutoff, Datapoint, MetricName, SecondSample, VariantKey};
use berth_store::{CustomDatapoint, CustomMetric, MetricSample};

/// One metric over `[start, end)` (epoch seconds) in periods of `period` seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    pub namespace: String,
    pub metric_name: String,
    /// (name, value) pairs, in any order.
    pub dimensions: Vec<(String, String)>,
    pub start: u64,
    pub end: u64,
    pub period: u64,
}

/// Dimensions in one canonical text form (sorted by name), so that equal sets match.
pub fn canonical_dimensions(dimensions: &[(String, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = dimensions.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs.sort();
    serde_json::to_string(&pairs).unwrap_or_default()
}

impl Controller {
    /// Datapoints of one metric, oldest first, with its unit: berth's own (per endpoint variant,
    /// from the in-memory seconds and the stored minute rollups) or a custom one.
    pub async fn metric_datapoints(&self, q: &MetricQuery) -> Result<(Vec<Datapoint>, String), ControlError> {
        // The asynchronous backlog metrics are per endpoint, written each second by the
        // asynchronous worker as datapoints of their own.
        let endpoint_metric = q.namespace == "AWS/SageMaker" && crate::BACKLOG_METRICS.contains(&q.metric_name.as_str());
        if endpoint_metric || !MetricName::is_berth_namespace(&q.namespace) {
            let metric = CustomMetric {
                namespace: q.namespace.clone(),
                metric_name: q.metric_name.clone(),
                dimensions: canonical_dimensions(&q.dimensions),
            };
            let rows = self.custom_datapoints(metric, q.start, q.end).await?;
            let unit = rows.first().map_or_else(|| "None".to_string(), |r| r.unit.clone());
            let mut out: Vec<Datapoint> = Vec::new();
            for r in rows {
                period_of(&mut out, r.ts, q.start, q.period, false).add(r.sample_count, r.sum, r.minimum, r.maximum);
            }
            return Ok((out, unit));
        }
        let mut metric = MetricName::find(&q.namespace, &q.metric_name);
        let unit = metric.map_or("None", |m| m.unit()).to_string();
        let get = |name: &str| q.dimensions.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let component = get("InferenceComponentName").filter(|_| q.dimensions.len() == 1);
        let key = match (get("EndpointName"), get("VariantName"), get("ContainerName")) {
            // An inference component's: its name alone; invocations per copy are its
            // invocations per instance (its copies are its instances).
            _ if component.is_some() => {
                let name = component.unwrap_or_default();
                metric = match metric {
                    Some(MetricName::InvocationsPerInstance) => None,
                    None if q.namespace == "AWS/SageMaker" && q.metric_name == "InvocationsPerCopy" => {
                        Some(MetricName::InvocationsPerInstance)
                    }
                    m => m,
                };
                match self.describe_inference_component(&name).await {
                    Ok(c) => VariantKey::component(&c.endpoint_name, &c.name),
                    Err(_) => return Ok((Vec::new(), unit)),
                }
            }
            (Some(endpoint), Some(variant), None) if q.dimensions.len() == 2 && !variant.contains('/') => VariantKey { endpoint, variant },
            // A container of a Direct multi-container variant.
            (Some(endpoint), Some(variant), Some(container)) if q.dimensions.len() == 3 && !variant.contains('/') => {
                VariantKey::container(&endpoint, &variant, &container)
            }
            // CloudWatch answers an unknown metric or dimension combination with no datapoints.
            _ => return Ok((Vec::new(), unit)),
        };
        let Some(metric) = metric else { return Ok((Vec::new(), unit)) };
        let rows = self.metric_samples(Some((key.endpoint.clone(), key.variant.clone())), 60, q.start.saturating_sub(59), q.end).await?;
        let older: Vec<SecondSample> = rows.into_iter().filter_map(|r| serde_json::from_str(&r.body).ok()).collect();
        let cutoff = seconds_cutoff(self.now().secs());
        Ok((self.routing.metrics().datapoints(&key, metric, &older, cutoff, q.start, q.end, q.period), unit))
    }

    pub async fn store_metric_samples(&self, samples: Vec<MetricSample>) -> Result<(), ControlError> {
        if samples.is_empty() {
            return Ok(());
        }
        self.db(move |s| s.put_metric_samples(&samples)).await
    }

    /// Stored samples of one resolution (1 or 60 seconds) starting in `[from, to)`, of one
    /// (endpoint, variant) or of all.
    pub async fn metric_samples(
        &self,
        variant: Option<(String, String)>,
        resolution: u32,
        from: u64,
        to: u64,
    ) -> Result<Vec<MetricSample>, ControlError> {
        self.db(move |s| s.metric_samples(variant.as_ref().map(|(e, v)| (e.as_str(), v.as_str())), resolution, from, to)).await
    }

    /// Drops samples of one resolution older than `before`.
    pub async fn prune_metric_samples(&self, resolution: u32, before: u64) -> Result<usize, ControlError> {
        self.db(move |s| s.prune_metric_samples(resolution, before)).await
    }

    pub async fn put_custom_datapoints(&self, points: Vec<CustomDatapoint>) -> Result<(), ControlError> {
        self.db(move |s| s.put_custom_datapoints(&points)).await
    }

    pub async fn custom_datapoints(&self, metric: CustomMetric, from: u64, to: u64) -> Result<Vec<CustomDatapoint>, ControlError> {
        self.db(move |s| s.custom_datapoints(&metric, from, to)).await
    }

    pub async fn custom_metric_names(&self) -> Result<Vec<(String, String, String)>, ControlError> {
        self.db(|s| s.custom_metric_names()).await
    }

    pub async fn prune_custom_datapoints(&self, before: u64) -> Result<usize, ControlError> {
        self.db(move |s| s.prune_custom_datapoints(before)).await
    }
}
