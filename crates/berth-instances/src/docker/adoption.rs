//! A new leader's adoption of the running containers a server of its cluster that led before
//! left: taken stock of when it comes to lead, matched to the instances it starts by endpoint,
//! variant and the digest of what they run (the `berth.spec` label), and removed once recovery
//! settles if no instance took them.

use super::{DockerBackend, LABEL_CLUSTER, LABEL_ENDPOINT, LABEL_SERVER, LABEL_SPEC, LABEL_VARIANT};
use crate::InstanceSpec;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use std::collections::HashMap;

/// A running container of another server of the cluster.
pub(super) struct Leftover {
    id: String,
    endpoint: String,
    variant: String,
    spec: String,
}

impl DockerBackend {
    /// Takes stock of the containers other servers of this server's cluster made: called when
    /// this server comes to lead, they belong to a leader that died (a deposed one stops its
    /// own). Running ones wait to be adopted by the instances this server starts for the same
    /// endpoint variant and spec (their clients keep being served: the standbys route to them
    /// meanwhile); stopped ones are removed now, and those no instance adopts by
    /// [`DockerBackend::remove_unadopted`]. Returns how many wait. Quiet when the engine is off
    /// or not reachable.
    pub async fn claim_cluster_leftovers(&self) -> usize {
        let Some(cluster) = self.cluster.get() else { return 0 };
        let Ok(docker) = self.client().await else { return 0 };
        let filters = HashMap::from([("label", vec![format!("{LABEL_CLUSTER}={cluster}")])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let Ok(containers) = docker.list_containers(Some(options)).await else { return 0 };
        let mut waiting = Vec::new();
        for c in containers {
            let labels = c.labels.clone().unwrap_or_default();
            let Some(id) = c.id.filter(|_| labels.get(LABEL_SERVER) != Some(&self.server)) else { continue };
            let running = c.state.as_ref().is_some_and(|s| s.to_string() == "running");
            match (running, labels.get(LABEL_ENDPOINT), labels.get(LABEL_VARIANT), labels.get(LABEL_SPEC)) {
                (true, Some(endpoint), Some(variant), Some(spec)) => {
                    waiting.push(Leftover { id, endpoint: endpoint.clone(), variant: variant.clone(), spec: spec.clone() })
                }
                _ => {
                    let _ = docker.remove_container(&id, Some(RemoveContainerOptionsBuilder::default().force(true).build())).await;
                }
            }
        }
        let n = waiting.len();
        *self.adoptable.lock().unwrap_or_else(|e| e.into_inner()) = waiting;
        n
    }

    /// Removes the leftovers no instance adopted (their endpoints were deleted or changed, or
    /// now need fewer instances). Returns how many.
    pub async fn remove_unadopted(&self) -> usize {
        let left = std::mem::take(&mut *self.adoptable.lock().unwrap_or_else(|e| e.into_inner()));
        let Ok(docker) = self.client().await else { return 0 };
        let mut removed = 0;
        for c in left {
            if docker.remove_container(&c.id, Some(RemoveContainerOptionsBuilder::default().force(true).build())).await.is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// A leftover running container that runs what `spec` would, taken for it.
    pub(super) fn adopt(&self, spec: &InstanceSpec, digest: Option<&str>) -> Option<String> {
        let digest = digest?;
        let mut adoptable = self.adoptable.lock().unwrap_or_else(|e| e.into_inner());
        let i = adoptable.iter().position(|c| c.endpoint == spec.endpoint && c.variant == spec.variant && c.spec == digest)?;
        Some(adoptable.swap_remove(i).id)
    }
}
