//! Events: what happened to an endpoint, for people watching it (the dashboard, `berth events`).

use crate::Timestamp;

/// The kinds of events berth records. Stored and served by these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The endpoint's status changed (Creating, InService, Updating, Failed, Deleting, ...), or
    /// one of its inference components' (the message names it).
    StatusChanged,
    /// Variant weights changed (UpdateEndpointWeightsAndCapacities).
    WeightsChanged,
    /// Desired instance counts changed (also when managed instance scaling adds or releases
    /// instances for inference components).
    CapacityChanged,
    /// A step of a deployment: a fleet started, traffic moved, old instances retired.
    DeploymentStep,
    /// A deployment or scaling step failed; the message says why.
    DeploymentFailed,
    /// An instance passed its first health check.
    InstanceStarted,
    /// An instance's process exited while it should have been serving.
    InstanceCrashed,
    /// An instance failed its health checks and was killed.
    InstanceUnhealthy,
    /// A crashed or killed instance is healthy again.
    InstanceRestarted,
    /// An instance was retired (drained and stopped).
    InstanceStopped,
    /// The endpoint was deleted.
    EndpointDeleted,
    /// A CloudWatch alarm on the endpoint's metrics changed state.
    AlarmStateChanged,
    /// A deployment was rolled back to the previous fleet.
    DeploymentRolledBack,
    /// A round of one of berth's background loops (alarms, autoscaling, bandits, ...) panicked;
    /// the loop goes on with its next round. Recorded with an empty endpoint: it is berth's.
    BackgroundFailed,
    /// A transform job's progress: its fleet started, an object transformed, the job ended.
    /// Recorded under the job's name.
    TransformJobProgress,
    /// Data capture dropped records: its writer was behind and its buffer full.
    CaptureDropped,
    /// An asynchronous request's outcome could not be written after its retries; it left the
    /// queue as failed.
    AsyncRequestFailed,
    /// A model package's approval status changed (SageMaker's "Model Package State Change").
    /// Recorded under its group's name (or its own, unversioned).
    ModelPackageApprovalChanged,
}

impl EventKind {
    pub const ALL: [EventKind; 18] = [
        EventKind::StatusChanged,
        EventKind::WeightsChanged,
        EventKind::CapacityChanged,
        EventKind::DeploymentStep,
        EventKind::DeploymentFailed,
        EventKind::InstanceStarted,
        EventKind::InstanceCrashed,
        EventKind::InstanceUnhealthy,
        EventKind::InstanceRestarted,
        EventKind::InstanceStopped,
        EventKind::EndpointDeleted,
        EventKind::AlarmStateChanged,
        EventKind::DeploymentRolledBack,
        EventKind::BackgroundFailed,
        EventKind::TransformJobProgress,
        EventKind::CaptureDropped,
        EventKind::AsyncRequestFailed,
        EventKind::ModelPackageApprovalChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::StatusChanged => "StatusChanged",
            EventKind::WeightsChanged => "WeightsChanged",
            EventKind::CapacityChanged => "CapacityChanged",
            EventKind::DeploymentStep => "DeploymentStep",
            EventKind::DeploymentFailed => "DeploymentFailed",
            EventKind::InstanceStarted => "InstanceStarted",
            EventKind::InstanceCrashed => "InstanceCrashed",
            EventKind::InstanceUnhealthy => "InstanceUnhealthy",
            EventKind::InstanceRestarted => "InstanceRestarted",
            EventKind::InstanceStopped => "InstanceStopped",
            EventKind::EndpointDeleted => "EndpointDeleted",
            EventKind::AlarmStateChanged => "AlarmStateChanged",
            EventKind::DeploymentRolledBack => "DeploymentRolledBack",
            EventKind::BackgroundFailed => "BackgroundFailed",
            EventKind::TransformJobProgress => "TransformJobProgress",
            EventKind::CaptureDropped => "CaptureDropped",
            EventKind::AsyncRequestFailed => "AsyncRequestFailed",
            EventKind::ModelPackageApprovalChanged => "ModelPackageApprovalChanged",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An event about to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub time: Timestamp,
    pub endpoint: String,
    pub variant: Option<String>,
    pub kind: EventKind,
    pub message: String,
}

impl NewEvent {
    pub fn new(endpoint: &str, variant: Option<&str>, kind: EventKind, message: impl Into<String>) -> Self {
        NewEvent {
            time: Timestamp::now(),
            endpoint: endpoint.to_string(),
            variant: variant.map(str::to_string),
            kind,
            message: message.into(),
        }
    }
}

/// A recorded event; `id` grows with every event, so readers can ask for what is newer.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    pub event: NewEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_name() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EventKind::parse("Nope"), None);
    }
}
