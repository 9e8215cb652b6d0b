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
    /// The container that serves requests. berth runs single-container models; the first
    /// container of a list is the one that answers.
    pub fn serving_container(&self) -> &ContainerSpec {
        &self.containers[0]
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
/// berth's: no NUL byte, no name of [`environment_name_refused`].
pub fn validate_environment(environment: &BTreeMap<String, String>) -> Result<(), crate::DomainError> {
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
        if environment_name_refused(name) {
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinImage {
    /// `berth/onnx`: serves the ONNX model in the model data through ONNX Runtime.
    Onnx,
}

impl BuiltinImage {
    /// The worker's name on berth's command line (`berth worker <name> serve`).
    pub fn worker_name(self) -> &'static str {
        match self {
            BuiltinImage::Onnx => "onnx",
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
        if let Some(path) = image.strip_prefix("exec:") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(DomainError::Validation(format!(
                    "Image '{image}' must name an absolute path after 'exec:', for example exec:/usr/local/bin/serve"
                )));
            }
            return Ok(Image::Exec(path));
        }
        Err(DomainError::Validation(format!(
            "Image '{image}' cannot be run by berth: use a built-in image (berth/onnx) or \
             'exec:/absolute/path/to/program' for a program that implements the SageMaker container contract"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_images_need_absolute_paths() {
        assert_eq!(Image::parse("exec:/bin/serve"), Ok(Image::Exec("/bin/serve".into())));
        assert!(Image::parse("exec:serve").is_err());
        assert!(Image::parse("123.dkr.ecr.us-east-1.amazonaws.com/x:1").is_err());
    }

    #[test]
    fn builtin_images_take_any_tag() {
        for image in ["berth/onnx", "berth/onnx:1", "berth/onnx:latest"] {
            assert_eq!(Image::parse(image), Ok(Image::Builtin(BuiltinImage::Onnx)), "{image}");
        }
        assert!(Image::parse("berth/onnxx").is_err());
    }

    #[test]
    fn environments_that_would_choose_code_are_refused() {
        let env = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        assert!(validate_environment(&env(&[("SAGEMAKER_PROGRAM", "inference.py"), ("OMP_NUM_THREADS", "2")])).is_ok());
        for name in
            ["LD_PRELOAD", "ld_library_path", "BASH_ENV", "ENV", "BASH_FUNC_x%%", "PATH", "PYTHONPATH", "BERTH_DATA_DIR", "NODE_OPTIONS"]
        {
            assert!(validate_environment(&env(&[(name, "x")])).is_err(), "{name}");
        }
        for name in ["1ABC", "A-B", "A=B", ""] {
            assert!(validate_environment(&env(&[(name, "x")])).is_err(), "{name:?}");
        }
        assert!(validate_environment(&env(&[("A", "x\0y")])).is_err());
        assert!(validate_environment(&env(&[("A", &"x".repeat(1025))])).is_err());
        let many: BTreeMap<String, String> = (0..101).map(|i| (format!("K{i}"), String::new())).collect();
        assert!(validate_environment(&many).is_err());
    }
}
