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
}

/// How berth runs a container image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// `exec:/abs/path/to/program`: a local program that implements the container contract.
    Exec(PathBuf),
}

impl Image {
    /// Parses a container image reference into something berth can run.
    pub fn parse(image: &str) -> Result<Image, DomainError> {
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
            "Image '{image}' cannot be run by berth: use 'exec:/absolute/path/to/program' for a program that \
             implements the SageMaker container contract"
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
}
