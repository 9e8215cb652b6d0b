use crate::{DomainError, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A model: one or more container definitions plus the role it runs as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    pub arn: String,
    pub created: Timestamp,
    /// Whether the model was given as `PrimaryContainer` (true) or as `Containers` (false);
    /// kept so that `DescribeModel` answers in the shape the model was created with.
    pub primary_container: bool,
    pub containers: Vec<ContainerSpec>,
    pub execution_role_arn: Option<String>,
    pub enable_network_isolation: Option<bool>,
    /// Kept and shown as given: berth's instances run on the machine's own network.
    #[serde(default)]
    pub vpc_config: Option<VpcConfig>,
    /// `InferenceExecutionConfig.Mode` of a model with several containers (Serial when unset).
    #[serde(default)]
    pub inference_execution: Option<ExecutionMode>,
}

/// How a model's containers are invoked (`InferenceExecutionConfig.Mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutionMode {
    /// An inference pipeline: each container's answer is the next one's request.
    Serial,
    /// One container per call, named by `TargetContainerHostname`.
    Direct,
}

impl ExecutionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionMode::Serial => "Serial",
            ExecutionMode::Direct => "Direct",
        }
    }
}

/// The containers of a multi-container model as a variant runs them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiContainer {
    pub mode: ExecutionMode,
    /// Every container in order; the first is the variant's `container`.
    pub containers: Vec<ContainerSpec>,
}

impl MultiContainer {
    /// The hostname a container answers to: its `ContainerHostname`, else `container-<n>`
    /// (counting from 1), as the containers of an inference pipeline are named.
    pub fn hostname(&self, index: usize) -> String {
        self.containers.get(index).and_then(|c| c.hostname.clone()).unwrap_or_else(|| format!("container-{}", index + 1))
    }
}

/// A model's `VpcConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcConfig {
    pub security_group_ids: Vec<String>,
    pub subnets: Vec<String>,
}

impl VpcConfig {
    /// SageMaker's constraints: 1–5 security groups and 1–16 subnets, ids of at most 32
    /// letters, digits and hyphens.
    pub fn new(security_group_ids: Vec<String>, subnets: Vec<String>) -> Result<VpcConfig, DomainError> {
        for (member, ids, max) in [("vpcConfig.securityGroupIds", &security_group_ids, 5), ("vpcConfig.subnets", &subnets, 16)] {
            let shown = || format!("[{}]", ids.join(", "));
            if ids.is_empty() || ids.len() > max {
                return Err(DomainError::Validation(format!(
                    "1 validation error detected: Value '{}' at '{member}' failed to satisfy constraint: Member must have length between 1 and {max}",
                    shown()
                )));
            }
            if let Some(bad) =
                ids.iter().find(|id| id.len() > 32 || id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            {
                return Err(DomainError::Validation(format!(
                    "1 validation error detected: Value '{bad}' at '{member}' failed to satisfy constraint: Member must have length less than or equal to 32 and satisfy regular expression pattern: [-0-9a-zA-Z]+"
                )));
            }
        }
        Ok(VpcConfig { security_group_ids, subnets })
    }
}

impl Model {
    /// A model of `containers` (given as `Containers` when more than one), not yet created
    /// (no ARN or time), with no role, network isolation, VPC or execution mode.
    pub fn new(name: &str, containers: Vec<ContainerSpec>) -> Model {
        Model {
            name: name.into(),
            arn: String::new(),
            created: Timestamp::from_millis(0),
            primary_container: containers.len() == 1,
            containers,
            execution_role_arn: None,
            enable_network_isolation: None,
            vpc_config: None,
            inference_execution: None,
        }
    }

    /// The container that serves requests. berth runs single-container models; the first
    /// container of a list is the one that answers.
    pub fn serving_container(&self) -> &ContainerSpec {
        &self.containers[0]
    }

    /// A model of several containers, as its variants run it; None for one container.
    pub fn multi_container(&self) -> Option<MultiContainer> {
        (self.containers.len() > 1).then(|| MultiContainer {
            mode: self.inference_execution.unwrap_or(ExecutionMode::Serial),
            containers: self.containers.clone(),
        })
    }
}

/// One container definition of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub hostname: Option<String>,
    pub image: String,
    pub model_data_url: Option<String>,
    pub environment: BTreeMap<String, String>,
    pub mode: Option<String>,
    /// `ModelDataSource.S3DataSource`, the alternative to `model_data_url`.
    #[serde(default)]
    pub model_data_source: Option<S3DataSource>,
    /// `MultiModelConfig.ModelCacheSetting: Disabled` (a multi-model container's models are
    /// loaded for each call and unloaded after it).
    #[serde(default)]
    pub model_cache_disabled: bool,
}

impl ContainerSpec {
    /// A single-model container of `image` with its model data at `model_data_url`, no host
    /// name and no environment.
    pub fn new(image: &str, model_data_url: Option<String>) -> ContainerSpec {
        ContainerSpec {
            hostname: None,
            image: image.into(),
            model_data_url,
            environment: BTreeMap::new(),
            mode: None,
            model_data_source: None,
            model_cache_disabled: false,
        }
    }

    /// `Mode: MultiModel`: `model_data_url` is a prefix, and each call names its model.
    pub fn is_multi_model(&self) -> bool {
        self.mode.as_deref() == Some("MultiModel")
    }
}

/// Environment names that make a dynamic loader, a shell or a language runtime load or run code
/// named by the value, or that move where a program finds its code. A caller who could set them
/// for a worker process could run any program as berth's user, so `CreateModel` refuses them for
/// every image berth runs as a local process.
const CODE_LOADING_NAMES: &[&str] = &[
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "IFS",
    "PATH",
    "HOME",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "PYTHONEXECUTABLE",
    "PYTHONINSPECT",
    "PYTHONWARNINGS",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "RUBYOPT",
    "RUBYLIB",
    "NODE_OPTIONS",
    "NODE_PATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "LOCPATH",
    "NLSPATH",
    "HOSTALIASES",
    "RESOLV_HOST_CONF",
    "MALLOC_CHECK_",
    "SAGEMAKER_BIND_TO_PORT",
    "SM_MODEL_DIR",
];

/// Whether a worker may be started with an environment variable of this name: not a
/// [`CODE_LOADING_NAMES`] name, nor one of the `LD_*` (dynamic loader) or `BASH_FUNC_*`
/// (exported shell functions) families, nor one of berth's own `BERTH_*`.
pub fn environment_name_refused(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    CODE_LOADING_NAMES.contains(&upper.as_str())
        || upper.starts_with("LD_")
        || upper.starts_with("BASH_FUNC_")
        || upper.starts_with("BERTH_")
}

/// SageMaker's rules for a container's `Environment` (at most 100 entries; names of letters,
/// digits and `_`, not starting with a digit, up to 1,024 characters; values up to 1,024), and
/// berth's: no NUL byte, no `BERTH_*` name (berth sets those), and for a program berth runs as a
/// local process (`local_process`) no name of [`environment_name_refused`]; a container image
/// runs in a container of its own, where such names choose only the container's code.
pub fn validate_environment(environment: &BTreeMap<String, String>, local_process: bool) -> Result<(), crate::DomainError> {
    let invalid = |m: String| Err(crate::DomainError::Validation(m));
    if environment.len() > 100 {
        return invalid(format!(
            "1 validation error detected: Value at 'primaryContainer.environment' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to 100] ({} entries)",
            environment.len()
        ));
    }
    for (name, value) in environment {
        let name_ok = name.len() <= 1024
            && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !name_ok {
            let shown: String = name.chars().take(64).collect();
            return invalid(format!(
                "1 validation error detected: Value '{shown}' at 'primaryContainer.environment' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z_][a-zA-Z0-9_]*, Member must have length less than or equal to 1024]"
            ));
        }
        if value.len() > 1024 || value.contains('\0') {
            return invalid(format!(
                "1 validation error detected: Value at 'primaryContainer.environment' failed to satisfy constraint: Map value of {name} must have length less than or equal to 1024 and hold no NUL character"
            ));
        }
        if name.to_ascii_uppercase().starts_with("BERTH_") {
            return invalid(format!("Environment variable {name} cannot be set: berth sets the BERTH_* variables of an instance itself."));
        }
        if local_process && environment_name_refused(name) {
            return invalid(format!(
                "Environment variable {name} cannot be set: it would let the container's environment choose code for berth to load or run \
                 (refused names: LD_*, BASH_ENV, ENV, BASH_FUNC_*, PATH, HOME, PYTHONPATH and other loader and interpreter settings, BERTH_*)."
            ));
        }
    }
    Ok(())
}

/// Model data by S3 URI: a prefix of files, or one object (gzipped tar or plain file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3DataSource {
    pub s3_uri: String,
    pub prefix: bool,
    pub gzip: bool,
}

/// How berth runs a container image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// `exec:/abs/path/to/program`: a local program that implements the container contract.
    Exec(PathBuf),
    /// An image built into berth, e.g. `berth/onnx` (any tag).
    Builtin(BuiltinImage),
    /// A container image reference (`name:tag`, `registry/name@sha256:…`, ECR URIs as they
    /// are), run through the Docker engine.
    Container(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinImage {
    /// `berth/onnx`: serves the ONNX model in the model data through ONNX Runtime.
    Onnx,
    /// `berth/python`: framework models with SageMaker inference handlers (`model_fn`, ...),
    /// served by berth's Python runtime; also what AWS's framework images run as without Docker.
    Python,
}

impl BuiltinImage {
    /// The worker's name on berth's command line (`berth worker <name> serve`).
    pub fn worker_name(self) -> &'static str {
        match self {
            BuiltinImage::Onnx => "onnx",
            BuiltinImage::Python => "python",
        }
    }
}

impl Image {
    /// Parses a container image reference into something berth can run.
    pub fn parse(image: &str) -> Result<Image, DomainError> {
        let repository = image.split_once(':').map_or(image, |(repo, _tag)| repo);
        if repository == "berth/onnx" {
            return Ok(Image::Builtin(BuiltinImage::Onnx));
        }
        if repository == "berth/python" {
            return Ok(Image::Builtin(BuiltinImage::Python));
        }
        if let Some(path) = image.strip_prefix("exec:") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(DomainError::Validation(format!(
                    "Image '{image}' must name an absolute path after 'exec:', for example exec:/usr/local/bin/serve"
                )));
            }
            return Ok(Image::Exec(path));
        }
        match reference_problem(image) {
            None => Ok(Image::Container(image.to_string())),
            Some(problem) => Err(DomainError::Validation(format!(
                "Image '{image}' is not a container image reference ({problem}): use [registry/]repository[:tag][@sha256:digest], \
                 a built-in image (berth/onnx), or 'exec:/absolute/path/to/program'"
            ))),
        }
    }
}

/// What is wrong with a container image reference, after the grammar of the OCI distribution
/// spec (docker/distribution's `reference` package): `[domain[:port]/]path[:tag][@digest]`, each
/// path component lower-case alphanumerics joined by `.`, `_`, `__` or dashes.
fn reference_problem(reference: &str) -> Option<&'static str> {
    if reference.is_empty() || reference.len() > 255 {
        return Some("it must be 1 to 255 characters long");
    }
    let (name_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    if let Some(d) = digest {
        let hex = d.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Some("a digest must be sha256: and 64 lower-case hex digits");
        }
    }
    // A tag follows the last ':' that comes after the last '/' (a ':' before it is a port).
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (&name_tag[..last_slash + i], Some(&name_tag[last_slash + i + 1..])),
        None => (name_tag, None),
    };
    if let Some(tag) = tag {
        let ok_first = tag.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok_first || tag.len() > 128 || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
            return Some("a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'");
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    // The first component is a registry when it has a '.' or a ':' or is localhost.
    if components.len() > 1 && (components[0].contains(['.', ':']) || components[0] == "localhost") {
        let host = components.remove(0);
        let (domain, port) = host.split_once(':').map_or((host, None), |(d, p)| (d, Some(p)));
        if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
            || domain.split('.').any(|l| l.is_empty() || l.starts_with('-') || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Some("the registry must be a host name with an optional port");
        }
    }
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        let edge = |x: Option<&u8>| x.is_some_and(|x| x.is_ascii_lowercase() || x.is_ascii_digit());
        edge(b.first())
            && edge(b.last())
            && !c.contains("..")
            && !c.contains("___")
            && b.iter().all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || b"._-".contains(x))
    };
    if !components.iter().all(|c| component_ok(c)) {
        return Some("a repository is lower-case letters and digits, separated by '/', '.', '_' or '-'");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_images_need_absolute_paths() {
        assert_eq!(Image::parse("exec:/bin/serve"), Ok(Image::Exec("/bin/serve".into())));
        assert!(Image::parse("exec:serve").is_err());
    }

    #[test]
    fn container_references_follow_the_oci_grammar() {
        let digest = format!("sha256:{}", "a1".repeat(32));
        for good in [
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-model:latest".to_string(),
            "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3".into(),
            "my-model".into(),
            "my_model:1".into(),
            "localhost:5000/team/model:v1.2".into(),
            format!("registry.example.com/model@{digest}"),
            format!("model:1@{digest}"),
        ] {
            assert_eq!(Image::parse(&good), Ok(Image::Container(good.clone())), "{good}");
        }
        for bad in [
            "",
            "My-Model:1",
            "model:",
            "model:-x",
            "model@sha256:abc",
            "model@md5:00",
            "-model",
            "model..x",
            "host:port/model",
            "a//b",
            "model:1 2",
            "../etc/passwd",
            "model\0",
        ] {
            assert!(Image::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Image::parse(&format!("a/{}", "b".repeat(260))).is_err());
    }

    #[test]
    fn builtin_images_take_any_tag() {
        for image in ["berth/onnx", "berth/onnx:1", "berth/onnx:latest"] {
            assert_eq!(Image::parse(image), Ok(Image::Builtin(BuiltinImage::Onnx)), "{image}");
        }
        assert_eq!(Image::parse("berth/onnxx"), Ok(Image::Container("berth/onnxx".into())), "another repository");
    }

    #[test]
    fn environments_that_would_choose_code_are_refused() {
        let env = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        assert!(validate_environment(&env(&[("SAGEMAKER_PROGRAM", "inference.py"), ("OMP_NUM_THREADS", "2")]), true).is_ok());
        for name in ["LD_PRELOAD", "ld_library_path", "BASH_ENV", "ENV", "BASH_FUNC_x%%", "PATH", "PYTHONPATH", "NODE_OPTIONS"] {
            assert!(validate_environment(&env(&[(name, "x")]), true).is_err(), "{name}");
            // Inside a container of its own, such a name chooses only the container's code.
            assert_eq!(validate_environment(&env(&[(name, "x")]), false).is_ok(), !name.contains('%'), "{name}");
        }
        for local_process in [true, false] {
            assert!(validate_environment(&env(&[("BERTH_DATA_DIR", "x")]), local_process).is_err());
            for name in ["1ABC", "A-B", "A=B", ""] {
                assert!(validate_environment(&env(&[(name, "x")]), local_process).is_err(), "{name:?}");
            }
            assert!(validate_environment(&env(&[("A", "x\0y")]), local_process).is_err());
            assert!(validate_environment(&env(&[("A", &"x".repeat(1025))]), local_process).is_err());
            let many: BTreeMap<String, String> = (0..101).map(|i| (format!("K{i}"), String::new())).collect();
            assert!(validate_environment(&many, local_process).is_err());
        }
    }
}
