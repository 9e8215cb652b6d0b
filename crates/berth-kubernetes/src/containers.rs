//! What the containers of every pod berth makes are made of: berth's settings for them
//! ([`PodSettings`]), the names and ports of SageMaker's container contract, and the containers
//! that run berth's own fetcher (the model-data init container, a multi-model pod's loader).

use berth_instances::STAGED_MODELS_MOUNT;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvFromSource, EnvVar, HTTPGetAction, Probe, ResourceRequirements, SecretEnvSource,
    SecurityContext, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The port SageMaker's container contract serves on.
pub const CONTAINER_PORT: u16 = 8080;
/// Where SageMaker puts the model data.
pub const MODEL_MOUNT: &str = "/opt/ml/model";
/// The instance's container, and the init container that fetches its model data.
pub const SERVE_CONTAINER: &str = "serve";
pub const FETCH_CONTAINER: &str = "model-data";
/// A multi-model instance's sidecar, and the port it listens on.
pub const LOADER_CONTAINER: &str = "model-loader";
pub const MODEL_LOADER_PORT: u16 = 8081;
/// The user berth's image runs as (its Dockerfile makes it).
pub const BERTH_IMAGE_USER: i64 = 10001;

/// How AWS's framework images (scikit-learn, XGBoost, PyTorch) run on Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameworkImages {
    /// Through berth's Python runtime in berth's image: no AWS registry is needed, the
    /// framework's packages come from the package registry.
    #[default]
    Runtime,
    /// The image itself, pulled from its registry (a cluster that can pull from ECR).
    Pull,
}

/// What every pod berth makes has in common.
#[derive(Debug, Clone)]
pub struct PodSettings {
    /// berth's own image: `berth/onnx` instances and the model-data init container run it.
    pub berth_image: String,
    /// `imagePullPolicy` of every container (None: Kubernetes' default for the tag).
    pub image_pull_policy: Option<String>,
    /// A Secret whose keys the init container takes as environment (AWS credentials for S3).
    pub model_secret: Option<String>,
    /// berth's own S3 settings (endpoint URL, region) for the init container.
    pub fetch_environment: Vec<(String, String)>,
    /// The model-data volume's size limit, in bytes (berth's `--max-model-bytes`).
    pub model_volume_bytes: Option<u64>,
    /// Seconds between SIGTERM and SIGKILL when a pod is deleted.
    pub stop_grace_secs: i64,
    /// Labels every pod of this berth carries (its server label).
    pub server_label: String,
    /// Who owns the pods (berth's Deployment), so deleting berth deletes them.
    pub owner: Option<OwnerReference>,
    /// How AWS's framework images run: through berth's Python runtime, or pulled.
    pub framework_images: FrameworkImages,
    /// berth's settings of pip and the network (`PIP_*`, proxies) for the pods that make a
    /// Python environment (a package index mirror, say).
    pub pip_environment: Vec<(String, String)>,
}

/// The sidecar of a multi-model instance's pod (`berth model-loader`): fetches each model berth
/// asks for from the variant's prefix into the volume the model container sees at
/// `/opt/ml/models`, as SageMaker's platform puts a model on the instance's disk before the
/// container loads it.
pub(crate) fn loader_container(prefix: &str, settings: &PodSettings, mount: VolumeMount) -> Container {
    let mut args = ["model-loader", "--into", STAGED_MODELS_MOUNT, "--prefix", prefix].map(String::from).to_vec();
    if let Some(bytes) = settings.model_volume_bytes {
        args.extend(["--max-model-bytes".to_string(), bytes.to_string()]);
    }
    let mut environment = settings.fetch_environment.clone();
    environment.push(("SAGEMAKER_BIND_TO_PORT".into(), MODEL_LOADER_PORT.to_string()));
    environment.push(("BERTH_WORKER_BIND".into(), "0.0.0.0".into()));
    let fetch = fetch_container(settings, mount);
    Container {
        name: LOADER_CONTAINER.into(),
        args: Some(args),
        env: Some(env_vars(environment)),
        ports: Some(vec![ContainerPort {
            container_port: MODEL_LOADER_PORT.into(),
            name: Some("model-loader".into()),
            ..Default::default()
        }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/ping".into()),
                port: IntOrString::Int(MODEL_LOADER_PORT.into()),
                ..Default::default()
            }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        ..fetch
    }
}

/// Environment variables from names and values.
pub(crate) fn env_vars(environment: impl IntoIterator<Item = (String, String)>) -> Vec<EnvVar> {
    environment.into_iter().map(|(name, value)| EnvVar { name, value: Some(value), ..Default::default() }).collect()
}

/// What a fetching init container asks of its node.
pub(crate) fn small_resources() -> ResourceRequirements {
    let small = BTreeMap::from([("cpu".to_string(), Quantity("250m".into())), ("memory".to_string(), Quantity("256Mi".into()))]);
    ResourceRequirements {
        requests: Some(small),
        limits: Some(BTreeMap::from([("memory".to_string(), Quantity("1Gi".into()))])),
        ..Default::default()
    }
}

/// An init container that runs berth's fetcher (`berth fetch-model`, its arguments still to be
/// given) into the volume of `mount`: berth's image, berth's S3 settings, the model Secret's keys.
pub(crate) fn fetch_container(settings: &PodSettings, mount: VolumeMount) -> Container {
    Container {
        name: FETCH_CONTAINER.into(),
        image: Some(settings.berth_image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        env: Some(env_vars(settings.fetch_environment.iter().cloned())),
        env_from: settings.model_secret.as_ref().map(|name| {
            vec![EnvFromSource { secret_ref: Some(SecretEnvSource { name: name.clone(), optional: None }), ..Default::default() }]
        }),
        resources: Some(small_resources()),
        volume_mounts: Some(vec![mount]),
        security_context: Some(container_security(true)),
        ..Default::default()
    }
}

/// A container's security: never more privileges than it starts with; berth's own image also
/// as its non-root user, with a read-only root file system and no capabilities.
pub(crate) fn container_security(berth_owned: bool) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        run_as_non_root: berth_owned.then_some(true),
        run_as_user: berth_owned.then_some(BERTH_IMAGE_USER),
        read_only_root_filesystem: berth_owned.then_some(true),
        capabilities: berth_owned.then(|| Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
        ..Default::default()
    }
}
