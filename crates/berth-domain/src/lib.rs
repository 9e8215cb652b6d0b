//! berth's domain: the resources SageMaker's hosting API manages, and the rules they obey.
//!
//! Everything here is plain data and pure functions: no I/O, no async, no wire casing.
//! The AWS edge (`berth-aws`) converts its JSON shapes into these types; the store
//! (`berth-store`) persists them; the controller (`berth-control`) changes them.

mod endpoint;
mod endpoint_config;
mod error;
mod instance_types;
mod model;
mod names;
mod time;
mod weights;

pub use endpoint::{Endpoint, EndpointStatus, VariantState};
pub use endpoint_config::{EndpointConfig, RoutingStrategy, VariantSpec};
pub use error::DomainError;
pub use instance_types::PRODUCTION_VARIANT_INSTANCE_TYPES;
pub use model::{BuiltinImage, ContainerSpec, Image, Model, S3DataSource};
pub use names::{validate_name, Account, ResourceKind};
pub use time::Timestamp;
pub use weights::pick_weighted;

/// Checks an instance type against the names SageMaker accepts.
pub fn validate_instance_type(instance_type: &str) -> Result<(), DomainError> {
    if PRODUCTION_VARIANT_INSTANCE_TYPES.binary_search(&instance_type).is_ok() {
        Ok(())
    } else {
        Err(DomainError::Validation(format!(
            "1 validation error detected: Value '{instance_type}' at 'productionVariants.1.member.instanceType' \
             failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            PRODUCTION_VARIANT_INSTANCE_TYPES.join(", ")
        )))
    }
}

/// The vCPUs of an instance type, from its size (EC2's convention: `large` = 2, `xlarge` = 4,
/// `Nxlarge` = 4N; `medium` and smaller = 1; `metal` = 96).
pub fn instance_vcpus(instance_type: &str) -> u32 {
    let size = instance_type.rsplit('.').next().unwrap_or("");
    match size {
        "nano" | "micro" | "small" | "medium" => 1,
        "large" => 2,
        "xlarge" => 4,
        "metal" => 96,
        s => s.strip_suffix("xlarge").and_then(|n| n.parse::<u32>().ok()).map_or(2, |n| 4 * n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpus_follow_the_size() {
        assert_eq!(instance_vcpus("ml.t2.medium"), 1);
        assert_eq!(instance_vcpus("ml.m5.large"), 2);
        assert_eq!(instance_vcpus("ml.m5.xlarge"), 4);
        assert_eq!(instance_vcpus("ml.c5.4xlarge"), 16);
        assert_eq!(instance_vcpus("ml.p4d.24xlarge"), 96);
    }

    #[test]
    fn instance_types_are_sorted_for_binary_search() {
        assert!(PRODUCTION_VARIANT_INSTANCE_TYPES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn known_instance_types_pass_and_unknown_fail() {
        assert!(validate_instance_type("ml.m5.large").is_ok());
        assert!(validate_instance_type("ml.c5.4xlarge").is_ok());
        assert!(validate_instance_type("ml.m5.huge").is_err());
        assert!(validate_instance_type("").is_err());
    }
}
