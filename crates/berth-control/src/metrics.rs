//! Metric history in the state store: per-second samples for the last hour and per-minute
//! rollups for the retention period, written by the binary's sampler, read by the CloudWatch API.

use crate::{ControlError, Controller};
use berth_store::MetricSample;

impl Controller {
    pub async fn store_metric_samples(&self, samples: Vec<MetricSample>) -> Result<(), ControlError> {
        if samples.is_empty() {
            return Ok(());
        }
        self.db(move |s| s.put_metric_samples(&samples)).await
    }

    /// Stored samples of one resolution (1 or 60 seconds) starting in `[from, to)`.
    pub async fn metric_samples(&self, resolution: u32, from: u64, to: u64) -> Result<Vec<MetricSample>, ControlError> {
        self.db(move |s| s.metric_samples(resolution, from, to)).await
    }

    /// Drops samples of one resolution older than `before`.
    pub async fn prune_metric_samples(&self, resolution: u32, before: u64) -> Result<usize, ControlError> {
        self.db(move |s| s.prune_metric_samples(resolution, before)).await
    }
}
