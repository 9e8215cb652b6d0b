//! The controller's reads and writes of named resources (models, endpoint configs, endpoints,
//! inference experiments), whatever their kind: found or SageMaker's not-found error, listed,
//! inserted under the account's limit, deleted; and of the JSON records jobs and schedules are
//! kept as (by kind and key).

use crate::models::{limit_exceeded, map_exists};
use crate::{ControlError, Controller};
use berth_store::{Resource, Resources, Tag};

impl Controller {
    /// The stored resource `name`, or SageMaker's error that it could not be found.
    pub(crate) async fn find<T: Resource + Send + 'static>(&self, name: &str) -> Result<T, ControlError> {
        let key = name.to_string();
        self.db(move |s| s.get::<T>(&key)).await?.ok_or_else(|| self.not_found(T::ARN_KIND, name))
    }

    /// Every stored resource of a kind, oldest first.
    pub(crate) async fn all<T: Resource + Send + 'static>(&self) -> Result<Vec<T>, ControlError> {
        self.db(|s| s.list::<T>()).await
    }

    /// Deletes the stored resource `name` and its tags, or says it could not be found.
    pub(crate) async fn delete<T: Resource + Send + 'static>(&self, name: &str) -> Result<(), ControlError> {
        let key = name.to_string();
        if self.db(move |s| s.remove::<T>(&key)).await? {
            tracing::info!(kind = T::KIND, name, "deleted");
            Ok(())
        } else {
            Err(self.not_found(T::ARN_KIND, name))
        }
    }

    /// Inserts `resource` with its tags unless `limit` of its kind are stored (SageMaker's
    /// `ResourceLimitExceeded`, counting `unit`), in one store call, so that two concurrent
    /// creates cannot both pass the check; one of its name already stored is `ResourceInUse`.
    pub(crate) async fn insert_within_limit<T: Resource + Send + Sync + 'static>(
        &self,
        resource: T,
        tags: Vec<Tag>,
        limit: usize,
        unit: &'static str,
    ) -> Result<(), ControlError> {
        let arn = resource.arn().to_string();
        let result = self
            .db(move |s| {
                let current = s.list::<T>()?.len();
                if current >= limit {
                    return Ok(Err(current));
                }
                s.insert(&resource, &tags).map(Ok)
            })
            .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(current)) => Err(limit_exceeded(&format!("Number of {unit}"), limit, current, unit)),
            Err(e) => Err(map_exists(e, T::ARN_KIND, &arn)),
        }
    }

    /// Stores `value` as the JSON record `key` of `kind`, with its creation time.
    pub(crate) async fn put_record<T: serde::Serialize>(
        &self,
        kind: &'static str,
        key: &str,
        created: berth_domain::Timestamp,
        value: &T,
    ) -> Result<(), ControlError> {
        let body = serde_json::to_string(value).map_err(|e| ControlError::Internal(e.to_string()))?;
        let (key, created) = (key.to_string(), created.millis());
        self.db(move |s| s.put_records(kind, &[(key, created, body)])).await
    }

    /// Every record of `kind` that reads as `T`.
    pub(crate) async fn read_records<T: serde::de::DeserializeOwned>(&self, kind: &'static str) -> Result<Vec<T>, ControlError> {
        Ok(self.db(move |s| s.records(kind)).await?.iter().filter_map(|b| serde_json::from_str(b).ok()).collect())
    }
}
