//! The pod of one instance, as SageMaker runs a container: the image with `serve` (berth's own
//! image for `berth/onnx` and the Python runtime, see `program.rs`), port 8080, a readiness probe on `/ping`,
//! the instance type's vCPUs and memory as requests and limits, the container definition's
//! `Environment` (berth's variables win), and the model data in `/opt/ml/model`, fetched there
//! by an init container that runs berth's own fetcher.

use crate::containers::{
    container_security, env_vars, fetch_container, loader_container, PodSettings, CONTAINER_PORT, MODEL_MOUNT, SERVE_CONTAINER,
};
use crate::program::{code_container, program, python_container, python_environment, submitted_code, CODE_MOUNT, PYTHON_MOUNT, TMP_MOUNT};
use berth_domain::{instance_memory_mib, instance_vcpus};
use berth_instances::{InstanceSpec, ModelSource, STAGED_MODELS_MOUNT};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, HTTPGetAction, Pod, PodSecurityContext, PodSpec, Probe, ResourceRequirements,
    SeccompProfile, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// The berth (its cluster, or its data directory) whose instance this is.
pub const LABEL_SERVER: &str = "berth/server";
pub const LABEL_ENDPOINT: &str = "berth/endpoint";
pub const LABEL_VARIANT: &str = "berth/variant";
/// The digest of what the pod runs: a restarted berth adopts a running pod of the same digest.
pub const LABEL_SPEC: &str = "berth/spec";
/// Set on pods of models with `EnableNetworkIsolation` (the manifests' NetworkPolicy selects it).
pub const LABEL_ISOLATED: &str = "berth/network-isolation";
pub const ANNOTATION_INSTANCE: &str = "berth/instance";

/// A pod name from an instance id: lower-case letters, digits and dashes, at most 63 characters,
/// unique by a hash of the whole id and the start attempt.
pub fn pod_name(instance_id: &str, attempt: u32) -> String {
    let cleaned: String = instance_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let tail = format!("-{:08x}-{attempt}", berth_instances::stable_hash(instance_id) as u32);
    let room = 63 - "berth-".len() - tail.len();
    let head: String = cleaned.chars().take(room).collect();
    format!("berth-{}{tail}", head.trim_end_matches('-'))
}

/// A label value from any text: letters, digits, `-`, `_` and `.`, starting and ending with a
/// letter or digit, at most 63 characters.
pub fn label_value(text: &str) -> String {
    let cleaned: String = text.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' }).take(63).collect();
    cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

/// The vCPUs and MiB of memory the instance's pod asks for: its instance type's (serverless
/// sizes buy about a vCPU per 1,769 MB, as on SageMaker).
pub(crate) fn size(spec: &InstanceSpec) -> (u32, u64) {
    let instance_type = spec.berth_environment.get("BERTH_INSTANCE_TYPE").map_or("ml.m5.large", String::as_str);
    match instance_type.strip_prefix("serverless-").and_then(|m| m.strip_suffix("mb")).and_then(|m| m.parse::<u64>().ok()) {
        Some(mb) => ((mb / 1769 + 1) as u32, mb),
        None => (instance_vcpus(instance_type), instance_memory_mib(instance_type)),
    }
}

/// The pod of attempt `attempt` of the instance.
pub fn instance_pod(spec: &InstanceSpec, attempt: u32, settings: &PodSettings) -> Result<Pod, String> {
    let program = program(spec, settings)?;
    let (vcpus, memory_mib) = size(spec);
    let mut environment = spec.environment.clone();
    environment.extend(spec.berth_environment.clone());
    if program.berth_owned {
        // berth's worker listens on the pod's address (on berth's own machine, loopback only).
        environment.insert("BERTH_WORKER_BIND".into(), "0.0.0.0".into());
        environment.insert("SM_MODEL_DIR".into(), MODEL_MOUNT.into());
    }
    if let Some((framework, _)) = &program.python {
        python_environment(spec, framework, &mut environment);
    }
    let quantities =
        BTreeMap::from([("cpu".to_string(), Quantity(vcpus.to_string())), ("memory".to_string(), Quantity(format!("{memory_mib}Mi")))]);
    // Requests are limits: the instance has its type's size to itself, as on SageMaker.
    let instance_size = ResourceRequirements { requests: Some(quantities.clone()), limits: Some(quantities), ..Default::default() };
    let has_model = !matches!(spec.model_source, ModelSource::None | ModelSource::MultiModel(_));
    let models_prefix = match &spec.model_source {
        ModelSource::MultiModel(prefix) => Some(prefix.as_str()),
        _ => None,
    };
    let code = program.python.as_ref().and_then(|_| submitted_code(spec));
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..Default::default()
    };
    // The volumes: each with its mounts in the serving container (read-only but for scratch).
    let mut volumes = Vec::new();
    let mut serve_mounts = Vec::new();
    let mut volume = |name: &str, path: &str, limit: Option<u64>, read_only: bool| {
        volumes.push(Volume {
            name: name.into(),
            empty_dir: Some(EmptyDirVolumeSource { size_limit: limit.map(|b| Quantity(b.to_string())), ..Default::default() }),
            ..Default::default()
        });
        serve_mounts.push(mount(name, path, read_only));
    };
    if has_model {
        volume("model", MODEL_MOUNT, settings.model_volume_bytes, true);
    }
    if code.is_some() {
        volume("code", CODE_MOUNT, settings.model_volume_bytes, true);
    }
    if models_prefix.is_some() {
        volume("models", STAGED_MODELS_MOUNT, settings.model_volume_bytes, true);
    }
    if program.python.is_some() {
        volume("python", PYTHON_MOUNT, None, true);
        volume("tmp", TMP_MOUNT, None, false);
    }
    let mut init_containers = Vec::new();
    if has_model {
        let mut args = vec!["fetch-model".to_string(), "--into".into(), MODEL_MOUNT.into()];
        args.extend(match &spec.model_source {
            ModelSource::Url(url) => vec!["--url".to_string(), url.clone()],
            ModelSource::S3Prefix(uri) => vec!["--s3-prefix".into(), uri.clone()],
            ModelSource::S3Object { uri, gzip } => {
                let mut a = vec!["--s3-object".into(), uri.clone()];
                if *gzip {
                    a.push("--gzip".into());
                }
                a
            }
            ModelSource::None | ModelSource::MultiModel(_) => vec![],
        });
        if let Some(bytes) = settings.model_volume_bytes {
            args.extend(["--max-model-bytes".to_string(), bytes.to_string()]);
        }
        init_containers.push(Container { args: Some(args), ..fetch_container(settings, mount("model", MODEL_MOUNT, false)) });
    }
    if let Some(url) = code {
        init_containers.push(code_container(url, settings, mount("code", CODE_MOUNT, false)));
    }
    if let Some((_, asked)) = &program.python {
        let mut mounts = vec![mount("python", PYTHON_MOUNT, false), mount("tmp", TMP_MOUNT, false)];
        mounts.extend(has_model.then(|| mount("model", MODEL_MOUNT, true)));
        mounts.extend(code.map(|_| mount("code", CODE_MOUNT, true)));
        init_containers.push(python_container(spec, asked, settings, instance_size.clone(), mounts));
    }
    let serve = Container {
        name: SERVE_CONTAINER.into(),
        image: Some(program.image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        args: Some(program.args.clone()),
        env: Some(env_vars(environment)),
        ports: Some(vec![ContainerPort { container_port: CONTAINER_PORT.into(), name: Some("http".into()), ..Default::default() }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/ping".into()),
                port: IntOrString::Int(CONTAINER_PORT.into()),
                ..Default::default()
            }),
            period_seconds: Some(5),
            timeout_seconds: Some(2),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        resources: Some(instance_size),
        volume_mounts: Some(serve_mounts).filter(|m| !m.is_empty()),
        security_context: Some(container_security(program.berth_owned)),
        ..Default::default()
    };
    let mut containers = vec![serve];
    if let Some(prefix) = models_prefix {
        containers.push(loader_container(prefix, settings, mount("models", STAGED_MODELS_MOUNT, false)));
    }
    let mut labels = BTreeMap::from([
        (LABEL_MANAGED_BY.to_string(), "berth".to_string()),
        (LABEL_COMPONENT.to_string(), "instance".to_string()),
        (LABEL_SERVER.to_string(), settings.server_label.clone()),
        (LABEL_ENDPOINT.to_string(), label_value(&spec.endpoint)),
        (LABEL_VARIANT.to_string(), label_value(&spec.variant)),
    ]);
    if let Some(digest) = spec.digest(&program.described()) {
        labels.insert(LABEL_SPEC.into(), digest);
    }
    if spec.network_isolation {
        labels.insert(LABEL_ISOLATED.into(), "true".into());
    }
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(&spec.id, attempt)),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(ANNOTATION_INSTANCE.to_string(), spec.id.clone())])),
            owner_references: settings.owner.clone().map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            // berth restarts an instance itself, in a new pod, with its own backoff and events.
            restart_policy: Some("Never".into()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(settings.stop_grace_secs),
            security_context: Some(PodSecurityContext {
                seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
                ..Default::default()
            }),
            init_containers: Some(init_containers).filter(|c| !c.is_empty()),
            containers,
            volumes: Some(volumes).filter(|v| !v.is_empty()),
            ..Default::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::BERTH_IMAGE_USER;
    use berth_domain::Image;
    use berth_instances::{ExtractLimits, ModelArtifacts, ModelData};
    use std::time::Duration;

    async fn spec(image: &str, source: ModelSource) -> (InstanceSpec, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = ModelArtifacts::new(dir.path().join("models"), ExtractLimits::default(), Default::default());
        let model_dir = artifacts.prepare(ModelData::None, Duration::from_secs(5)).await.unwrap();
        let spec = InstanceSpec {
            id: "My-Endpoint/Variant_1/3f9a01".into(),
            endpoint: "My-Endpoint".into(),
            variant: "Variant_1".into(),
            image: Image::parse(image).unwrap(),
            model_dir,
            model_source: source,
            code_dir: None,
            environment: BTreeMap::from([("BERTH_INSTANCE_TYPE".into(), "caller's".into()), ("MODEL_SETTING".into(), "7".into())]),
            berth_environment: BTreeMap::from([("BERTH_INSTANCE_TYPE".into(), "ml.c5.xlarge".into())]),
            access: Default::default(),
            log_path: dir.path().join("i.log"),
            startup_timeout: Duration::from_secs(60),
            memory_limit_bytes: Some(1 << 30),
            cpus: Some(1),
            network_isolation: true,
            observer: None,
            staged_models: None,
            container_index: 0,
        };
        (spec, dir)
    }

    fn settings() -> PodSettings {
        PodSettings {
            berth_image: "berth:1".into(),
            image_pull_policy: Some("IfNotPresent".into()),
            model_secret: Some("s3-keys".into()),
            fetch_environment: vec![("AWS_REGION".into(), "eu-west-1".into())],
            model_volume_bytes: Some(1 << 30),
            stop_grace_secs: 5,
            server_label: "abc".into(),
            owner: None,
            framework_images: crate::FrameworkImages::Runtime,
            pip_environment: vec![("PIP_INDEX_URL".into(), "https://mirror.example/simple".into())],
        }
    }

    #[test]
    fn pod_names_are_rfc_1123_labels_unique_per_instance_and_attempt() {
        let long = format!("{}/{}/abcdef", "E".repeat(63), "v".repeat(63));
        for id in ["My-Endpoint/Variant_1/3f9a01", long.as_str(), "a/b/c", "--/__/.."] {
            let name = pod_name(id, 12);
            assert!(name.len() <= 63, "{name}");
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{name}");
            assert!(!name.contains("--") || id.starts_with("--"), "{name}");
            assert!(name.ends_with("-12") && name.starts_with("berth-"), "{name}");
        }
        assert_ne!(pod_name("E/V/1", 1), pod_name("e/v/1", 1), "names that differ by case stay apart");
        assert_ne!(pod_name("E/V/1", 1), pod_name("E/V/1", 2));
    }

    #[test]
    fn label_values_keep_to_the_label_syntax() {
        assert_eq!(label_value("My-Endpoint"), "My-Endpoint");
        assert_eq!(label_value("-a b/c_"), "a-b-c");
        assert_eq!(label_value(&"x".repeat(80)).len(), 63);
    }

    #[tokio::test]
    async fn a_container_image_pod_is_made_as_sagemaker_runs_it_and_parses_back_as_the_api_type() {
        let (spec, _dir) = spec("registry.example/model:2", ModelSource::S3Object { uri: "s3://b/m.tar.gz".into(), gzip: true }).await;
        let pod = instance_pod(&spec, 1, &settings()).unwrap();
        // What is sent is what the API's own type reads back.
        let json = serde_json::to_value(&pod).unwrap();
        let back: Pod = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, pod);
        let spec_json = &json["spec"];
        let serve = &spec_json["containers"][0];
        assert_eq!(serve["image"], "registry.example/model:2");
        assert_eq!(serve["args"], serde_json::json!(["serve"]));
        assert_eq!(serve["resources"]["limits"], serde_json::json!({"cpu": "4", "memory": "8192Mi"}));
        assert_eq!(serve["resources"]["requests"], serve["resources"]["limits"]);
        let env: BTreeMap<String, String> = serve["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().into(), e["value"].as_str().unwrap().into()))
            .collect();
        assert_eq!(env["BERTH_INSTANCE_TYPE"], "ml.c5.xlarge", "berth's variables win over the container's");
        assert_eq!(env["MODEL_SETTING"], "7");
        assert!(!env.contains_key("BERTH_WORKER_BIND"), "only berth's own worker is told where to listen");
        let fetch = &spec_json["initContainers"][0];
        assert_eq!(
            fetch["args"],
            serde_json::json!([
                "fetch-model",
                "--into",
                "/opt/ml/model",
                "--s3-object",
                "s3://b/m.tar.gz",
                "--gzip",
                "--max-model-bytes",
                "1073741824"
            ])
        );
        assert_eq!(fetch["envFrom"][0]["secretRef"]["name"], "s3-keys");
        assert_eq!(spec_json["volumes"][0]["emptyDir"]["sizeLimit"], "1073741824");
        assert_eq!(json["metadata"]["labels"]["berth/network-isolation"], "true");
        assert_eq!(json["metadata"]["labels"]["berth/variant"], "Variant_1");
        assert_eq!(json["metadata"]["labels"]["berth/spec"].as_str().unwrap().len(), 16);
    }

    #[tokio::test]
    async fn berth_onnx_runs_berths_image_as_its_user_and_other_local_images_are_refused() {
        let (spec, _dir) = spec("berth/onnx", ModelSource::None).await;
        let pod = instance_pod(&spec, 1, &settings()).unwrap();
        let serve = &pod.spec.as_ref().unwrap().containers[0];
        assert_eq!(serve.image.as_deref(), Some("berth:1"));
        assert_eq!(serve.args.as_deref(), Some(&["worker".to_string(), "onnx".into(), "serve".into()][..]));
        let security = serve.security_context.as_ref().unwrap();
        assert_eq!(
            (security.run_as_user, security.run_as_non_root, security.read_only_root_filesystem),
            (Some(BERTH_IMAGE_USER), Some(true), Some(true))
        );
        assert!(pod.spec.as_ref().unwrap().init_containers.is_none(), "no model data, no init container");
        let (spec, _dir) = self::spec("exec:/bin/true", ModelSource::None).await;
        assert!(instance_pod(&spec, 1, &settings()).unwrap_err().contains("container images only"));
    }

    fn env_of(container: &Container) -> BTreeMap<String, String> {
        container.env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect()
    }

    fn mounts_of(container: &Container) -> Vec<(String, String, bool)> {
        container.volume_mounts.iter().flatten().map(|m| (m.name.clone(), m.mount_path.clone(), m.read_only == Some(true))).collect()
    }

    #[tokio::test]
    async fn the_python_runtime_runs_in_berths_image_with_its_environment_made_by_an_init_container() {
        const SKLEARN: &str = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3";
        let (mut spec, _dir) = spec(SKLEARN, ModelSource::Url("s3://b/model.tar.gz".into())).await;
        spec.environment.insert("SAGEMAKER_SUBMIT_DIRECTORY".into(), "s3://b/code/sourcedir.tar.gz".into());
        spec.environment.insert("SAGEMAKER_PROGRAM".into(), "inference.py".into());
        let pod = instance_pod(&spec, 1, &settings()).unwrap();
        let pod_spec = pod.spec.as_ref().unwrap();
        let serve = &pod_spec.containers[0];
        assert_eq!(serve.image.as_deref(), Some("berth:1"));
        assert_eq!(serve.args.as_deref(), Some(&["worker".to_string(), "python".into(), "serve".into()][..]));
        let env = env_of(serve);
        assert_eq!(env["BERTH_PYTHON"], "/opt/berth/python/current/bin/python");
        assert_eq!(env["BERTH_FRAMEWORK"], "sklearn");
        assert_eq!(env["BERTH_CODE_DIR"], "/opt/ml/code");
        assert_eq!(env["SAGEMAKER_PROGRAM"], "inference.py");
        assert_eq!(env["BERTH_WORKER_BIND"], "0.0.0.0");
        assert_eq!(env["TMPDIR"], "/tmp");
        assert!(!env.contains_key("PIP_INDEX_URL"), "pip's settings are the init container's only");
        assert_eq!(
            mounts_of(serve),
            [
                ("model".into(), "/opt/ml/model".into(), true),
                ("code".into(), "/opt/ml/code".into(), true),
                ("python".into(), "/opt/berth/python".into(), true),
                ("tmp".into(), "/tmp".into(), false)
            ]
        );
        let inits = pod_spec.init_containers.as_ref().unwrap();
        let names: Vec<&str> = inits.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["model-data", "source-code", "python-environment"], "fetched before the environment reads requirements.txt");
        assert_eq!(
            inits[1].args.as_deref().unwrap(),
            ["fetch-model", "--into", "/opt/ml/code", "--url", "s3://b/code/sourcedir.tar.gz"].map(String::from)
        );
        assert_eq!(inits[1].env_from, inits[0].env_from, "the source is fetched with the model's S3 keys");
        let python = &inits[2];
        assert_eq!(
            python.args.as_deref().unwrap(),
            [
                "prepare-python",
                "--environments",
                "/opt/berth/python",
                "--image",
                SKLEARN,
                "--link",
                "/opt/berth/python/current",
                "--model-dir",
                "/opt/ml/model",
                "--code-dir",
                "/opt/ml/code"
            ]
            .map(String::from)
        );
        assert_eq!(env_of(python)["PIP_INDEX_URL"], "https://mirror.example/simple");
        assert!(python.env_from.is_none(), "pip never sees the S3 keys");
        assert_eq!(python.resources, serve.resources, "pip has the instance's size");
        assert_eq!(python.security_context.as_ref().unwrap().read_only_root_filesystem, Some(true));
        assert!(mounts_of(python).contains(&("python".into(), "/opt/berth/python".into(), false)));
        // What is sent is what the API's own type reads back.
        let json = serde_json::to_value(&pod).unwrap();
        assert_eq!(serde_json::from_value::<Pod>(json).unwrap(), pod);

        // berth/python, with no source directory: no source-code container, no BERTH_CODE_DIR.
        let (spec, _dir) = self::spec("berth/python", ModelSource::None).await;
        let pod = instance_pod(&spec, 1, &settings()).unwrap();
        let inits = pod.spec.as_ref().unwrap().init_containers.clone().unwrap();
        assert_eq!(inits.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["python-environment"]);
        assert!(!inits[0].args.as_ref().unwrap().contains(&"--code-dir".to_string()));
        assert!(!env_of(&pod.spec.as_ref().unwrap().containers[0]).contains_key("BERTH_CODE_DIR"));

        // Told to pull AWS's images: the framework image runs itself (berth/python still cannot).
        let pulling = PodSettings { framework_images: crate::FrameworkImages::Pull, ..settings() };
        let (spec, _dir) = self::spec(SKLEARN, ModelSource::None).await;
        let serve = instance_pod(&spec, 1, &pulling).unwrap().spec.unwrap().containers.remove(0);
        assert_eq!((serve.image.as_deref(), serve.args.as_deref()), (Some(SKLEARN), Some(&["serve".to_string()][..])));
    }

    #[tokio::test]
    async fn a_multi_model_pod_has_a_model_loader_beside_its_container_and_no_model_data_init() {
        let (mut spec, _dir) = spec("registry.example/mme:1", ModelSource::MultiModel("s3://b/models/".into())).await;
        spec.staged_models = Some("/var/lib/berth/staged-models/x".into());
        let pod = instance_pod(&spec, 1, &settings()).unwrap();
        let pod_spec = pod.spec.as_ref().unwrap();
        assert!(pod_spec.init_containers.is_none(), "models are fetched as they are called, none at start");
        let [serve, loader] = &pod_spec.containers[..] else { panic!("two containers: {:?}", pod_spec.containers) };
        assert_eq!(mounts_of(serve), [("models".into(), "/opt/ml/models".into(), true)]);
        assert_eq!(mounts_of(loader), [("models".into(), "/opt/ml/models".into(), false)]);
        assert_eq!(loader.image.as_deref(), Some("berth:1"));
        assert_eq!(
            loader.args.as_deref().unwrap(),
            ["model-loader", "--into", "/opt/ml/models", "--prefix", "s3://b/models/", "--max-model-bytes", "1073741824"].map(String::from)
        );
        let env = env_of(loader);
        assert_eq!((env["SAGEMAKER_BIND_TO_PORT"].as_str(), env["BERTH_WORKER_BIND"].as_str()), ("8081", "0.0.0.0"));
        assert_eq!(env["AWS_REGION"], "eu-west-1");
        assert_eq!(loader.env_from.as_ref().unwrap()[0].secret_ref.as_ref().unwrap().name, "s3-keys");
        assert!(serve.env_from.is_none(), "the model's container never sees the S3 keys");
        assert_eq!(loader.ports.as_ref().unwrap()[0].container_port, 8081);
        assert!(pod.metadata.labels.as_ref().unwrap().get(LABEL_SPEC).is_none(), "a multi-model pod is never adopted");
        let volume = &pod_spec.volumes.as_ref().unwrap()[0];
        assert_eq!(
            (volume.name.as_str(), volume.empty_dir.as_ref().unwrap().size_limit.clone()),
            ("models", Some(Quantity("1073741824".into())))
        );
    }
}
