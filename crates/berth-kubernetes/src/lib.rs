//! berth's Kubernetes backend (`--backend kubernetes`): each SageMaker instance is a pod in
//! berth's namespace, made from the instance's spec (`pod.rs`, its status read by `status.rs`), started, health-checked,
//! restarted and retired by berth's supervisor like every other instance (`runner.rs`), and
//! followed through one watch of berth's pods (`pods.rs`). berth routes to each pod's IP.
//!
//! A pod per instance rather than a Deployment per variant: berth already decides which
//! instance starts, drains and stops (canaries, blue/green, scale-in of the emptiest), and a
//! ReplicaSet would pick its own pods to delete. Pods carry berth's labels (server, endpoint,
//! variant, the digest of what they run) and, with `--kubernetes-owner`, an owner reference to
//! berth's Deployment: deleting berth deletes them, and a berth that restarts adopts the running
//! pods of the same endpoint, variant and spec instead of starting new ones.
#![forbid(unsafe_code)]

mod containers;
mod pod;
mod pods;
mod program;
mod runner;
mod status;

pub use containers::FrameworkImages;
pub use containers::{PodSettings, MODEL_LOADER_PORT};
pub use pod::{instance_pod, label_value, pod_name, LABEL_ISOLATED};
pub use status::{pod_state, PodState};

use berth_domain::Image;
use berth_instances::{
    start_supervised, BoxFuture, Instance, InstanceBackend, InstanceBudget, InstanceError, InstanceLog, InstanceSpec, SupervisorSettings,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams};
use kube::Api;
use pods::PodWatch;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How berth reaches Kubernetes and what its pods are made of.
#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// None: the client's own (in a pod, the pod's namespace; else the kubeconfig context's).
    pub namespace: Option<String>,
    /// `deployment/NAME`: berth's Deployment, which its pods are owned by.
    pub owner: Option<String>,
    pub pods: PodSettings,
}

/// A running pod that a berth which ran before left, waiting to be adopted.
struct Leftover {
    name: String,
    endpoint: String,
    variant: String,
    spec: String,
}

/// Runs instances as pods.
pub struct KubernetesBackend {
    api: Api<Pod>,
    namespace: String,
    pods: Arc<PodWatch>,
    watching: tokio::task::JoinHandle<()>,
    settings: Arc<PodSettings>,
    supervision: SupervisorSettings,
    budget: InstanceBudget,
    adoptable: Mutex<Vec<Leftover>>,
    detaching: Arc<AtomicBool>,
}

impl Drop for KubernetesBackend {
    fn drop(&mut self) {
        self.watching.abort();
    }
}

impl KubernetesBackend {
    /// Connects (in-cluster configuration, else `KUBECONFIG` or `~/.kube/config`), checks that
    /// berth may list pods in its namespace, and starts watching its pods.
    pub async fn connect(config: KubernetesConfig, supervision: SupervisorSettings, budget: InstanceBudget) -> Result<Self, String> {
        let client = kube::Client::try_default().await.map_err(|e| {
            format!("cannot reach Kubernetes: {e} (berth reads the in-cluster service account, else KUBECONFIG or ~/.kube/config)")
        })?;
        let namespace = config.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
        let mut settings = config.pods;
        if let Some(owner) = &config.owner {
            settings.owner = Some(owner_reference(client.clone(), &namespace, owner).await?);
        }
        let api: Api<Pod> = Api::namespaced(client, &namespace);
        let selector = format!("{}={}", pod::LABEL_SERVER, settings.server_label);
        let listed = tokio::time::timeout(Duration::from_secs(15), api.list(&ListParams::default().labels(&selector).limit(1)))
            .await
            .map_err(|_| format!("Kubernetes did not answer within 15 seconds listing pods in namespace {namespace}"))?;
        listed.map_err(|e| format!("cannot list pods in namespace {namespace}: {}", runner::api_error(&e)))?;
        let (pods, watching) = PodWatch::start(api.clone(), selector);
        Ok(KubernetesBackend {
            api,
            namespace,
            pods,
            watching,
            settings: Arc::new(settings),
            supervision,
            budget,
            adoptable: Mutex::default(),
            detaching: Arc::default(),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Takes stock of the pods a berth that ran before left (a killed or restarted one, or a
    /// cluster's leader that died): running or starting ones wait to be adopted by the instances
    /// this berth starts for the same endpoint, variant and spec (they keep serving meanwhile);
    /// the others are deleted now. Returns how many wait.
    pub async fn claim_leftovers(&self) -> usize {
        self.detaching.store(false, Ordering::SeqCst);
        self.pods.synced().await;
        let mut waiting = Vec::new();
        for pod in self.pods.all() {
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            // Starting or running (berth's own /ping decides whether it serves), not on its way out.
            let alive =
                matches!(pod_state(&pod), PodState::Running { .. } | PodState::Waiting { .. }) && pod.metadata.deletion_timestamp.is_none();
            match (alive, labels.get(pod::LABEL_ENDPOINT), labels.get(pod::LABEL_VARIANT), labels.get(pod::LABEL_SPEC)) {
                (true, Some(endpoint), Some(variant), Some(spec)) => {
                    waiting.push(Leftover { name, endpoint: endpoint.clone(), variant: variant.clone(), spec: spec.clone() })
                }
                _ => self.delete(&name).await,
            }
        }
        let n = waiting.len();
        *self.adoptable.lock().unwrap_or_else(|e| e.into_inner()) = waiting;
        n
    }

    /// Deletes the leftover pods no instance adopted (their endpoints were deleted or changed,
    /// or now need fewer instances). Returns how many.
    pub async fn remove_unadopted(&self) -> usize {
        let left = std::mem::take(&mut *self.adoptable.lock().unwrap_or_else(|e| e.into_inner()));
        for pod in &left {
            self.delete(&pod.name).await;
        }
        left.len()
    }

    /// From now on, instances that stop leave their pods running: berth is stopping (or no
    /// longer leads), and the next berth to lead adopts them.
    pub fn detach(&self) {
        self.detaching.store(true, Ordering::SeqCst);
    }

    async fn delete(&self, name: &str) {
        if let Err(e) = self.api.delete(name, &DeleteParams::default()).await {
            tracing::warn!(pod = name, error = %runner::api_error(&e), "cannot delete a pod berth left");
        }
    }

    fn adopt(&self, spec: &InstanceSpec, digest: Option<&str>) -> Option<String> {
        let digest = digest?;
        let (endpoint, variant) = (label_value(&spec.endpoint), label_value(&spec.variant));
        let mut adoptable = self.adoptable.lock().unwrap_or_else(|e| e.into_inner());
        let i = adoptable.iter().position(|p| p.endpoint == endpoint && p.variant == variant && p.spec == digest)?;
        Some(adoptable.swap_remove(i).name)
    }
}

impl InstanceBackend for KubernetesBackend {
    fn start(&self, spec: InstanceSpec) -> BoxFuture<'_, Result<Instance, InstanceError>> {
        Box::pin(async move {
            // What cannot run as a pod is said before anything is counted or made.
            let pod = instance_pod(&spec, 1, &self.settings).map_err(InstanceError::Image)?;
            let image = pod.spec.as_ref().and_then(|s| s.containers.first()?.image.clone()).unwrap_or_default();
            let digest = pod.metadata.labels.as_ref().and_then(|l| l.get(pod::LABEL_SPEC).cloned());
            let alive = self.budget.admit()?;
            let log = InstanceLog::open(&spec.log_path, self.supervision.log_max_bytes).map_err(InstanceError::Image)?;
            let adopted = self.adopt(&spec, digest.as_deref());
            if let Some(pod) = &adopted {
                tracing::info!(instance = %spec.id, pod, "adopting the running pod a berth that ran before left");
            }
            let shown = match &spec.image {
                Image::Container(_) => Some(image),
                _ => None,
            };
            let runner = runner::PodRunner {
                api: self.api.clone(),
                pods: self.pods.clone(),
                spec: spec.clone(),
                settings: self.settings.clone(),
                log,
                adopted,
                detaching: self.detaching.clone(),
                current: None,
                out_of_memory: false,
            };
            start_supervised(runner, spec, &self.supervision, alive, shown).await
        })
    }
}

/// The owner reference to berth's Deployment (`deployment/NAME`), read from the API.
async fn owner_reference(client: kube::Client, namespace: &str, owner: &str) -> Result<OwnerReference, String> {
    let Some(name) = owner.strip_prefix("deployment/") else {
        return Err(format!("--kubernetes-owner takes deployment/NAME, not {owner:?}"));
    };
    let deployments: Api<Deployment> = Api::namespaced(client, namespace);
    let deployment = deployments.get(name).await.map_err(|e| {
        format!("cannot read berth's Deployment {name} in namespace {namespace} (--kubernetes-owner): {}", runner::api_error(&e))
    })?;
    Ok(OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: name.to_string(),
        uid: deployment.metadata.uid.unwrap_or_default(),
        // Not the pods' controller (berth is), and deleting berth does not wait for them.
        controller: Some(false),
        block_owner_deletion: Some(false),
    })
}
