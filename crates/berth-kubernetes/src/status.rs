//! What a pod's status says, in SageMaker's words: waiting (and why), unable to start (an image
//! that cannot be pulled, model data that could not be fetched), running at an address, or
//! ended (its exit status, an OOM kill, an eviction).

use crate::containers::SERVE_CONTAINER;
use crate::program::{CODE_CONTAINER, PYTHON_CONTAINER};
use k8s_openapi::api::core::v1::Pod;

/// Where a pod is on its way to serving, read from its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Not running yet; `why` says what it waits for when Kubernetes says (unschedulable, pulling).
    Waiting { why: Option<String> },
    /// It cannot start, and will not by waiting (its image cannot be pulled, its model data
    /// could not be fetched): the reason in SageMaker's words.
    CannotStart(String),
    /// Its container runs at this address.
    Running { ip: std::net::IpAddr },
    /// It ended: its exit in words, and whether the kernel killed it for its memory limit.
    Ended { status: String, out_of_memory: bool },
}

/// Reasons a container waits with that do not pass by waiting.
const HOPELESS_WAITS: &[&str] =
    &["ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError"];

/// The init container that failed, if one did (its log says why).
pub(crate) fn failed_init_container(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.init_container_statuses.as_ref()?;
    let failed = |c: &&k8s_openapi::api::core::v1::ContainerStatus| {
        let state = c.state.clone().unwrap_or_default();
        state.terminated.is_some_and(|t| t.exit_code != 0)
            || state.waiting.is_some_and(|w| w.reason.is_some_and(|r| HOPELESS_WAITS.contains(&r.as_str())))
    };
    statuses.iter().find(failed).map(|c| c.name.clone())
}

pub fn pod_state(pod: &Pod) -> PodState {
    let Some(status) = &pod.status else { return PodState::Waiting { why: None } };
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let image = |c: &str| {
        pod.spec.as_ref().and_then(|s| s.containers.iter().chain(s.init_containers.iter().flatten()).find(|x| x.name == c)?.image.clone())
    };
    // The init containers: the model data's, the source directory's, the Python environment's.
    for c in status.init_container_statuses.iter().flatten() {
        let state = c.state.clone().unwrap_or_default();
        if let Some(t) = state.terminated.as_ref().filter(|t| t.exit_code != 0) {
            let what = match c.name.as_str() {
                PYTHON_CONTAINER => "Could not prepare the Python environment in the instance's pod",
                CODE_CONTAINER => "Could not download the source directory (SAGEMAKER_SUBMIT_DIRECTORY) into the instance's pod",
                _ => "Could not download the model data into the instance's pod",
            };
            return PodState::CannotStart(format!(
                "{what} ({} exited with status {}){}",
                c.name,
                t.exit_code,
                t.message.as_deref().map(|m| format!(": {}", m.trim())).unwrap_or_default()
            ));
        }
        if let Some(w) = state.waiting.as_ref().filter(|w| HOPELESS_WAITS.contains(&w.reason.as_deref().unwrap_or(""))) {
            return PodState::CannotStart(pull_failure(
                image(&c.name).as_deref().unwrap_or("berth's image"),
                w.reason.as_deref(),
                w.message.as_deref(),
            ));
        }
    }
    let ended = phase == "Failed" || phase == "Succeeded";
    // Evicted (node pressure), or another end the pod itself gives a reason for.
    if let (true, Some(reason)) = (ended, status.reason.as_deref()) {
        let message = status.message.as_deref().unwrap_or("").trim();
        return PodState::Ended { status: format!("its pod {reason}: {message}").trim_end_matches(": ").to_string(), out_of_memory: false };
    }
    let serve = status.container_statuses.iter().flatten().find(|c| c.name == SERVE_CONTAINER);
    let serve_state = serve.and_then(|c| c.state.clone()).unwrap_or_default();
    if let Some(t) = &serve_state.terminated {
        let reason = t.reason.as_deref().unwrap_or("");
        let mut words = format!("exit status: {}", t.exit_code);
        if !reason.is_empty() && reason != "Error" && reason != "Completed" {
            words += &format!(", {reason}");
        }
        return PodState::Ended { status: words, out_of_memory: reason == "OOMKilled" };
    }
    if ended {
        return PodState::Ended { status: format!("its pod {phase}"), out_of_memory: false };
    }
    if let Some(w) = serve_state.waiting.as_ref().filter(|w| HOPELESS_WAITS.contains(&w.reason.as_deref().unwrap_or(""))) {
        return PodState::CannotStart(pull_failure(
            image(SERVE_CONTAINER).as_deref().unwrap_or("the image"),
            w.reason.as_deref(),
            w.message.as_deref(),
        ));
    }
    if serve_state.running.is_some() {
        if let Some(ip) = status.pod_ip.as_deref().and_then(|ip| ip.parse().ok()) {
            return PodState::Running { ip };
        }
    }
    let unschedulable = status.conditions.iter().flatten().find(|c| c.type_ == "PodScheduled" && c.status == "False");
    let why = match (unschedulable, serve_state.waiting) {
        (Some(c), _) => Some(format!(
            "Unable to provision requested ML compute capacity: the pod cannot be scheduled ({})",
            c.message.as_deref().or(c.reason.as_deref()).unwrap_or("no reason given")
        )),
        (None, Some(w)) => w.reason.map(|r| format!("{r}{}", w.message.map(|m| format!(": {m}")).unwrap_or_default())),
        (None, None) => None,
    };
    PodState::Waiting { why }
}

fn pull_failure(image: &str, reason: Option<&str>, message: Option<&str>) -> String {
    if let Some(reason) = reason.filter(|r| r.starts_with("CreateContainer")) {
        return format!(
            "Could not create the instance's container from {image}: {reason}{}",
            message.map(|m| format!(" ({m})")).unwrap_or_default()
        );
    }
    format!(
        "Failed to pull the image {image} for the instance's pod: {}{}. Check the image's name and tag, and that the cluster's nodes \
         may pull it (imagePullSecrets of the namespace's default service account).",
        reason.unwrap_or("the image cannot be pulled"),
        message.map(|m| format!(" ({m})")).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "serve", "image": "registry.example/model:2"}], "initContainers": [{"name": "model-data", "image": "berth:1"}]},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn pod_statuses_read_as_sagemaker_would_say_them() {
        // Shapes as the API reference gives PodStatus and ContainerStatus.
        let running = pod(serde_json::json!({"phase": "Running", "podIP": "10.1.2.3",
            "containerStatuses": [{"name": "serve", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": {"running": {"startedAt": "2026-12-05T00:00:00Z"}}}]}));
        assert_eq!(pod_state(&running), PodState::Running { ip: "10.1.2.3".parse().unwrap() });
        let oom = pod(serde_json::json!({"phase": "Failed",
            "containerStatuses": [{"name": "serve", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}));
        assert_eq!(pod_state(&oom), PodState::Ended { status: "exit status: 137, OOMKilled".into(), out_of_memory: true });
        let crashed = pod(serde_json::json!({"phase": "Failed",
            "containerStatuses": [{"name": "serve", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}]}));
        assert_eq!(pod_state(&crashed), PodState::Ended { status: "exit status: 3".into(), out_of_memory: false });
        let evicted = pod(serde_json::json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory. ",
            "containerStatuses": [{"name": "serve", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown"}}}]}));
        assert_eq!(
            pod_state(&evicted),
            PodState::Ended { status: "its pod Evicted: The node was low on resource: memory.".into(), out_of_memory: false }
        );
        let backoff = pod(serde_json::json!({"phase": "Pending",
            "containerStatuses": [{"name": "serve", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}));
        assert!(
            matches!(pod_state(&backoff), PodState::CannotStart(r) if r.starts_with("Failed to pull the image registry.example/model:2") && r.contains("ImagePullBackOff"))
        );
        let fetch_failed = pod(serde_json::json!({"phase": "Failed",
            "initContainerStatuses": [{"name": "model-data", "image": "berth:1", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}));
        assert!(matches!(pod_state(&fetch_failed), PodState::CannotStart(r) if r.starts_with("Could not download the model data")));
        let unschedulable = pod(serde_json::json!({"phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient memory."}]}));
        assert!(
            matches!(pod_state(&unschedulable), PodState::Waiting { why: Some(w) } if w.starts_with("Unable to provision requested ML compute capacity") && w.contains("3 Insufficient memory"))
        );
        let pending = pod(serde_json::json!({"phase": "Pending"}));
        assert_eq!(pod_state(&pending), PodState::Waiting { why: None });
    }
}
