//! What an instance's pod runs: the model's image with `serve`, or berth's own image, whose
//! worker serves `berth/onnx` and whose Python runtime serves `berth/python` and (unless told to
//! pull AWS's images) AWS's framework images. The Python runtime's environment is made in the
//! pod by an init container (`berth prepare-python`), into a volume the worker reads.

use crate::containers::{container_security, env_vars, fetch_container, small_resources, FrameworkImages, PodSettings, MODEL_MOUNT};
use berth_domain::{framework_of, BuiltinImage, Framework, Image};
use berth_instances::InstanceSpec;
use k8s_openapi::api::core::v1::{Container, ResourceRequirements};

/// Where a pod's Python environment is made (a volume of its own).
pub const PYTHON_MOUNT: &str = "/opt/berth/python";
/// Where a framework model's source directory (`SAGEMAKER_SUBMIT_DIRECTORY`) is fetched.
pub const CODE_MOUNT: &str = "/opt/ml/code";
/// The writable scratch directory of berth's own containers (their root file system is read-only).
pub const TMP_MOUNT: &str = "/tmp";
pub const PYTHON_CONTAINER: &str = "python-environment";
pub const CODE_CONTAINER: &str = "source-code";

/// How the image runs in the pod.
pub(crate) struct Program {
    pub image: String,
    pub args: Vec<String>,
    /// berth's own image: runs as its non-root user with a read-only root file system.
    pub berth_owned: bool,
    /// Served by berth's Python runtime: the framework, and the image name it was asked as.
    pub python: Option<(Framework, String)>,
}

impl Program {
    /// What the pod runs, in words the spec digest is made of (the image alone, as berth
    /// described its pods before the Python runtime ran in them, so that those are adopted).
    pub fn described(&self) -> String {
        match &self.python {
            Some((_, asked)) => format!("{} {} for {asked}", self.image, self.args.join(" ")),
            None => self.image.clone(),
        }
    }
}

pub(crate) fn program(spec: &InstanceSpec, settings: &PodSettings) -> Result<Program, String> {
    let berth = |args: &[&str]| Program {
        image: settings.berth_image.clone(),
        args: args.iter().map(|a| a.to_string()).collect(),
        berth_owned: true,
        python: None,
    };
    let framework = framework_of(&spec.image)
        .filter(|_| matches!(spec.image, Image::Builtin(BuiltinImage::Python)) || settings.framework_images == FrameworkImages::Runtime);
    if let Some(framework) = framework {
        let asked = match &spec.image {
            Image::Container(reference) => reference.clone(),
            _ => "berth/python".into(),
        };
        return Ok(Program { python: Some((framework, asked)), ..berth(&["worker", "python", "serve"]) });
    }
    match &spec.image {
        Image::Container(reference) => {
            Ok(Program { image: reference.clone(), args: vec!["serve".into()], berth_owned: false, python: None })
        }
        Image::Builtin(BuiltinImage::Onnx) => Ok(berth(&["worker", "onnx", "serve"])),
        Image::Builtin(BuiltinImage::Python) => unreachable!("berth/python is a framework"),
        Image::Exec(program) => Err(format!(
            "exec:{} is a program on berth's own machine; the Kubernetes backend runs container images only",
            program.display()
        )),
    }
}

/// The handler's source directory of a framework model on S3, fetched into the pod.
pub(crate) fn submitted_code(spec: &InstanceSpec) -> Option<&str> {
    spec.environment.get("SAGEMAKER_SUBMIT_DIRECTORY").map(String::as_str).filter(|u| u.starts_with("s3://"))
}

/// The Python runtime's variables for the serving container.
pub(crate) fn python_environment(spec: &InstanceSpec, framework: &Framework, environment: &mut std::collections::BTreeMap<String, String>) {
    let threads = spec.berth_environment.get("BERTH_WORKER_THREADS").cloned().unwrap_or_else(|| "1".into());
    environment.entry("SAGEMAKER_MODEL_SERVER_WORKERS".into()).or_insert(threads);
    environment.insert("BERTH_PYTHON".into(), format!("{PYTHON_MOUNT}/current/bin/python"));
    environment.insert("BERTH_FRAMEWORK".into(), framework.kind.name().into());
    if submitted_code(spec).is_some() {
        environment.insert("BERTH_CODE_DIR".into(), CODE_MOUNT.into());
    }
    scratch_environment(environment);
}

/// A read-only root file system leaves `/tmp` (a volume of its own) as the one place to write.
fn scratch_environment(environment: &mut std::collections::BTreeMap<String, String>) {
    environment.insert("HOME".into(), TMP_MOUNT.into());
    environment.insert("TMPDIR".into(), TMP_MOUNT.into());
    environment.insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
}

/// The init container that makes the pod's Python environment with `berth prepare-python`
/// (the framework's packages and the model's `requirements.txt`, wheels only), as berth does on
/// its own machine. It has the instance's size: pip may need it, and it adds nothing to what the
/// pod asks of its node (init containers run before the serving container).
pub(crate) fn python_container(
    spec: &InstanceSpec,
    asked: &str,
    settings: &PodSettings,
    resources: ResourceRequirements,
    mounts: Vec<k8s_openapi::api::core::v1::VolumeMount>,
) -> Container {
    let mut args = ["prepare-python", "--environments", PYTHON_MOUNT, "--image", asked, "--link"].map(String::from).to_vec();
    args.push(format!("{PYTHON_MOUNT}/current"));
    args.extend(["--model-dir".to_string(), MODEL_MOUNT.into()]);
    if submitted_code(spec).is_some() {
        args.extend(["--code-dir".to_string(), CODE_MOUNT.into()]);
    }
    let mut environment: std::collections::BTreeMap<String, String> = settings.pip_environment.iter().cloned().collect();
    scratch_environment(&mut environment);
    Container {
        name: PYTHON_CONTAINER.into(),
        image: Some(settings.berth_image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        args: Some(args),
        env: Some(env_vars(environment)),
        resources: Some(resources),
        volume_mounts: Some(mounts),
        security_context: Some(container_security(true)),
        ..Default::default()
    }
}

/// The init container that fetches a framework model's source directory from S3.
pub(crate) fn code_container(url: &str, settings: &PodSettings, mount: k8s_openapi::api::core::v1::VolumeMount) -> Container {
    let args = ["fetch-model", "--into", CODE_MOUNT, "--url", url].map(String::from).to_vec();
    Container { name: CODE_CONTAINER.into(), args: Some(args), resources: Some(small_resources()), ..fetch_container(settings, mount) }
}
