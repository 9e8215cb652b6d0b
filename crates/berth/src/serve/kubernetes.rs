//! `--backend kubernetes`: the Kubernetes backend made from berth's flags and connected.

use super::args::ServeArgs;
use berth_instances::{InstanceBudget, SupervisorSettings};
use berth_kubernetes::{FrameworkImages, KubernetesBackend, KubernetesConfig, PodSettings};
use tracing::info;

/// The Kubernetes backend `--backend kubernetes` asks for, connected.
pub(super) async fn backend(
    args: &ServeArgs,
    data_dir: &std::path::Path,
    cluster: Option<&str>,
    supervision: &SupervisorSettings,
    budget: &InstanceBudget,
) -> anyhow::Result<KubernetesBackend> {
    // The pods of one berth (its cluster's, or its data directory's) are told apart by this label.
    let server = match cluster {
        Some(name) => berth_kubernetes::label_value(name),
        None => format!("{:016x}", berth_instances::stable_hash(&data_dir.display().to_string())),
    };
    // Where S3 is, never who berth is: credentials come from --kubernetes-model-secret.
    let fetch_environment = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()).map(|v| (k.to_string(), v)))
        .collect();
    let config = KubernetesConfig {
        namespace: args.kubernetes_namespace.clone(),
        owner: args.kubernetes_owner.clone(),
        pods: PodSettings {
            berth_image: args.kubernetes_image.clone(),
            image_pull_policy: args.kubernetes_image_pull_policy.clone(),
            model_secret: args.kubernetes_model_secret.clone(),
            fetch_environment,
            model_volume_bytes: Some(args.max_model_bytes),
            stop_grace_secs: i64::try_from(supervision.stop_grace.as_secs()).unwrap_or(30),
            server_label: server,
            owner: None,
            framework_images: match args.kubernetes_framework_images.as_str() {
                "pull" => FrameworkImages::Pull,
                _ => FrameworkImages::Runtime,
            },
            pip_environment: std::env::vars().filter(|(name, _)| berth_python::pip_may_see(name, false)).collect(),
        },
    };
    let backend = KubernetesBackend::connect(config, supervision.clone(), budget.clone()).await.map_err(anyhow::Error::msg)?;
    info!(namespace = backend.namespace(), image = %args.kubernetes_image, "instances run as pods on Kubernetes");
    Ok(backend)
}
