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
}
