//! Instances' logs as CloudWatch Logs reads them: each instance of an endpoint's variants (or
//! of a transform job) is a stream of its log's lines, at the times berth stamped them with.

use crate::{ControlError, Controller};
use berth_domain::LogEvent;

/// One instance's log.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceLogStream {
    pub variant: String,
    /// The instance's id within its variant (its log file's name).
    pub instance: String,
    pub events: Vec<LogEvent>,
}

impl Controller {
    /// An endpoint's instance logs, each variant's in instance order.
    pub async fn endpoint_log_streams(&self, endpoint: &str) -> Result<Vec<InstanceLogStream>, ControlError> {
        let endpoint = self.describe_endpoint(endpoint).await?;
        Ok(self.fleet_log_streams(&endpoint.name).await)
    }

    /// A transform job's instance logs.
    pub async fn transform_job_log_streams(&self, job: &str) -> Result<Vec<InstanceLogStream>, ControlError> {
        let job = self.describe_transform_job(job).await?;
        Ok(self.fleet_log_streams(&crate::transform::route_name(&job.name)).await)
    }

    /// The logs under a fleet's log directory (`<variant>/<instance>.log`), read off the async
    /// workers.
    async fn fleet_log_streams(&self, fleet: &str) -> Vec<InstanceLogStream> {
        let dir = self.instance_log_dir(fleet);
        tokio::task::spawn_blocking(move || {
            let mut streams = Vec::new();
            let sorted = |dir: &std::path::Path| {
                let mut entries: Vec<std::path::PathBuf> =
                    std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
                entries.sort();
                entries
            };
            for variant in sorted(&dir).into_iter().filter(|p| p.is_dir()) {
                for log in sorted(&variant).into_iter().filter(|p| p.extension().is_some_and(|x| x == "log")) {
                    let name = |p: &std::path::Path| p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    let events = berth_instances::read_events(&log)
                        .into_iter()
                        .map(|(timestamp, message)| LogEvent { timestamp, message })
                        .collect();
                    streams.push(InstanceLogStream { variant: name(&variant), instance: name(&log), events });
                }
            }
            streams
        })
        .await
        .unwrap_or_default()
    }
}
