//! Metric history in the state store: per-second samples for the last hour and per-minute
//! rollups for the retention period, written by the binary's sampler, read by the CloudWatch API.

use crate::{ControlError, Controller};
use berth_store::{CustomDatapoint, MetricSample};

impl Controller {
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

    pub async fn custom_datapoints(
        &self,
        namespace: String,
        metric_name: String,
        dimensions: String,
        from: u64,
        to: u64,
    ) -> Result<Vec<CustomDatapoint>, ControlError> {
        self.db(move |s| s.custom_datapoints(&namespace, &metric_name, &dimensions, from, to)).await
    }

    pub async fn custom_metric_names(&self) -> Result<Vec<(String, String, String)>, ControlError> {
        self.db(|s| s.custom_metric_names()).await
    }

    pub async fn prune_custom_datapoints(&self, before: u64) -> Result<usize, ControlError> {
        self.db(move |s| s.prune_custom_datapoints(before)).await
    }
}
