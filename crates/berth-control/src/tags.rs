use crate::{ControlError, Controller};
use berth_domain::Endpoint;
use berth_domain::EndpointConfig;
use berth_domain::InferenceExperiment;
use berth_domain::Model;
use berth_domain::ResourceKind;
use berth_router::{StickyKey, STICKY_KEY_TAG};
use berth_store::Resources;
use berth_store::Tag;

const MAX_TAGS: usize = 50;

pub(crate) fn validate_tags(tags: &[Tag]) -> Result<(), ControlError> {
    if tags.len() > MAX_TAGS {
        return Err(ControlError::Validation(format!(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to {MAX_TAGS}"
        )));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(ControlError::Validation(format!("Tag '{k}' is invalid: keys are 1 to 128 characters and values at most 256.")));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(ControlError::Validation(format!("Tag keys starting with 'aws:' are reserved: '{k}'.")));
        }
        if k == STICKY_KEY_TAG {
            StickyKey::parse(v).map_err(|e| ControlError::Validation(e.to_string()))?;
        }
        if k == MODEL_MEMORY_TAG && parse_model_memory(v).is_none() {
            return Err(ControlError::Validation(format!(
                "Tag {MODEL_MEMORY_TAG} must be a whole number of MiB from 1 to 1048576 (the memory each instance of a multi-model variant may fill with models); '{v}' is not."
            )));
        }
    }
    Ok(())
}

/// The endpoint tag that sets how much memory (MiB) each instance of its multi-model variants
/// may fill with loaded models; by default, the instance type's memory.
pub const MODEL_MEMORY_TAG: &str = "berth:model-memory-mb";

fn parse_model_memory(v: &str) -> Option<u64> {
    v.trim().parse::<u64>().ok().filter(|mb| (1..=1_048_576).contains(mb))
}

/// The per-instance model memory an endpoint's tags set, if any.
pub(crate) fn model_memory_mb(tags: &[Tag]) -> Option<u64> {
    tags.iter().find(|(k, _)| k == MODEL_MEMORY_TAG).and_then(|(_, v)| parse_model_memory(v))
}

/// The sticky key an endpoint's tags name, if any (tags were checked when they were written).
pub(crate) fn sticky_key(tags: &[Tag]) -> Option<StickyKey> {
    tags.iter().find(|(k, _)| k == STICKY_KEY_TAG).and_then(|(_, v)| StickyKey::parse(v).ok())
}

impl Controller {
    /// Finds the resource an ARN names, so tags are only kept on resources that exist.
    async fn tagged_resource(&self, arn: &str) -> Result<String, ControlError> {
        let (kind, name) = self.account().parse_arn(arn).ok_or_else(|| {
            ControlError::Validation(format!(
                "Resource ARN '{arn}' is not the ARN of a model, endpoint configuration, endpoint, inference experiment, transform or processing job of this account."
            ))
        })?;
        let canonical = self.account().arn(kind, &name);
        let key = name.clone();
        let exists = match kind {
            ResourceKind::Model => self.db(move |s| s.get::<Model>(&key).map(|m| m.is_some())).await?,
            ResourceKind::EndpointConfig => self.db(move |s| s.get::<EndpointConfig>(&key).map(|m| m.is_some())).await?,
            ResourceKind::Endpoint => self.db(move |s| s.get::<Endpoint>(&key).map(|m| m.is_some())).await?,
            ResourceKind::InferenceExperiment => self.db(move |s| s.get::<InferenceExperiment>(&key).map(|m| m.is_some())).await?,
            ResourceKind::TransformJob => self.describe_transform_job(&key).await.is_ok(),
            ResourceKind::ProcessingJob => self.describe_processing_job(&key).await.is_ok(),
            ResourceKind::MonitoringSchedule => self.describe_monitoring_schedule(&key).await.is_ok(),
            ResourceKind::MonitoringJobDefinition | ResourceKind::ModelQualityJobDefinition => {
                self.describe_monitoring_job_definition(&key).await.is_ok()
            }
            ResourceKind::InferenceRecommendationsJob => self.describe_recommendation_job(&key).await.is_ok(),
            ResourceKind::ModelPackageGroup => self.describe_model_package_group(&key).await.is_ok(),
            ResourceKind::ModelPackage => self.describe_model_package(&key).await.is_ok(),
            ResourceKind::InferenceComponent => self.describe_inference_component(&key).await.is_ok(),
        };
        // Names are case-insensitive; ARNs carry them lower-cased, but callers build ARNs from
        // the names they chose (`.../endpoint/MyEndpoint`).
        let as_named = &arn[..arn.len() - name.len()];
        if !exists || canonical != format!("{as_named}{}", berth_domain::NameKey::of(&name)) {
            return Err(ControlError::Validation(format!("Could not find resource \"{arn}\".")));
        }
        Ok(canonical)
    }

    pub async fn add_tags(&self, arn: &str, tags: Vec<Tag>) -> Result<Vec<Tag>, ControlError> {
        validate_tags(&tags)?;
        let arn = self.tagged_resource(arn).await?;
        let (a, t) = (arn.clone(), tags.clone());
        let total = self
            .db(move |s| {
                let mut keys: Vec<String> = s.tags(&a)?.into_iter().map(|(k, _)| k).collect();
                keys.extend(t.iter().map(|(k, _)| k.clone()));
                keys.sort();
                keys.dedup();
                Ok(keys.len())
            })
            .await?;
        if total > MAX_TAGS {
            return Err(ControlError::Validation(format!(
                "A resource can have at most {MAX_TAGS} tags; this request would give it {total}."
            )));
        }
        let (a, t) = (arn.clone(), tags.clone());
        self.db(move |s| s.add_tags(&a, &t)).await?;
        self.refresh_sticky(&arn).await?;
        Ok(tags)
    }

    /// Tells the router where an endpoint's sticky key is (after its tags change).
    pub(crate) async fn refresh_sticky(&self, arn: &str) -> Result<(), ControlError> {
        if let Some((ResourceKind::Endpoint, name)) = self.account().parse_arn(arn) {
            let a = arn.to_string();
            let tags = self.db(move |s| s.tags(&a)).await?;
            self.routing.set_sticky(&name, sticky_key(&tags));
        }
        Ok(())
    }

    pub async fn list_tags(&self, arn: &str) -> Result<Vec<Tag>, ControlError> {
        let arn = self.tagged_resource(arn).await?;
        self.db(move |s| s.tags(&arn)).await
    }

    pub async fn delete_tags(&self, arn: &str, keys: Vec<String>) -> Result<(), ControlError> {
        let arn = self.tagged_resource(arn).await?;
        let a = arn.clone();
        self.db(move |s| s.delete_tags(&a, &keys)).await?;
        self.refresh_sticky(&arn).await
    }
}
