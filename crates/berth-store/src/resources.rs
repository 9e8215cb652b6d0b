//! Typed access to the named resources a store keeps (models, endpoint configs, endpoints,
//! inference experiments): each is a [`Resource`] stored as its JSON body under its kind and its
//! name without regard to case, with its tags by ARN. A store implements five untyped calls
//! (`insert_resource`, `replace_resource`, `resource`, `resources`, `delete_resource`); every
//! store then has the typed ones of [`Resources`], so a new store (PostgreSQL) implements the
//! calls once rather than once per kind.

use crate::{StateStore, StoreError, Tag};
use berth_domain::{Endpoint, EndpointConfig, InferenceComponent, InferenceExperiment, Model, ResourceKind, Timestamp};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A named resource of one kind.
pub trait Resource: Serialize + DeserializeOwned {
    /// The kind it is stored under.
    const KIND: &'static str;
    /// Its kind in ARNs and in SageMaker's messages.
    const ARN_KIND: ResourceKind;
    fn name(&self) -> &str;
    fn arn(&self) -> &str;
    fn created(&self) -> Timestamp;
}

macro_rules! resource {
    ($type:ty, $kind:literal, $arn_kind:expr) => {
        impl Resource for $type {
            const KIND: &'static str = $kind;
            const ARN_KIND: ResourceKind = $arn_kind;
            fn name(&self) -> &str {
                &self.name
            }
            fn arn(&self) -> &str {
                &self.arn
            }
            fn created(&self) -> Timestamp {
                self.created
            }
        }
    };
}

resource!(Model, "model", ResourceKind::Model);
resource!(EndpointConfig, "endpoint-config", ResourceKind::EndpointConfig);
resource!(Endpoint, "endpoint", ResourceKind::Endpoint);
resource!(InferenceExperiment, "inference-experiment", ResourceKind::InferenceExperiment);
resource!(InferenceComponent, "inference-component", ResourceKind::InferenceComponent);

/// The typed calls on resources, for every [`StateStore`].
pub trait Resources {
    /// Stores a new resource with its tags (replacing tags an earlier one of its ARN left);
    /// `AlreadyExists` if one of its kind and name is stored.
    fn insert<T: Resource>(&self, value: &T, tags: &[Tag]) -> Result<(), StoreError>;
    /// Replaces a stored resource; `NotFound` if it was deleted meanwhile.
    fn update<T: Resource>(&self, value: &T) -> Result<(), StoreError>;
    fn get<T: Resource>(&self, name: &str) -> Result<Option<T>, StoreError>;
    /// Every resource of the kind, oldest first.
    fn list<T: Resource>(&self) -> Result<Vec<T>, StoreError>;
    /// Removes a resource and its tags; false if there was none.
    fn remove<T: Resource>(&self, name: &str) -> Result<bool, StoreError>;
}

impl<S: StateStore + ?Sized> Resources for S {
    fn insert<T: Resource>(&self, value: &T, tags: &[Tag]) -> Result<(), StoreError> {
        self.insert_resource(T::KIND, value.name(), value.created().millis(), value.arn(), &encode(value)?, tags)
    }

    fn update<T: Resource>(&self, value: &T) -> Result<(), StoreError> {
        self.replace_resource(T::KIND, value.name(), &encode(value)?)
    }

    fn get<T: Resource>(&self, name: &str) -> Result<Option<T>, StoreError> {
        self.resource(T::KIND, name)?.map(|body| decode(&body)).transpose()
    }

    fn list<T: Resource>(&self) -> Result<Vec<T>, StoreError> {
        self.resources(T::KIND)?.iter().map(|body| decode(body)).collect()
    }

    fn remove<T: Resource>(&self, name: &str) -> Result<bool, StoreError> {
        let arn = self.get::<T>(name)?.map(|r| r.arn().to_string());
        self.delete_resource(T::KIND, name, arn.as_deref())
    }
}

fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

fn decode<T: DeserializeOwned>(body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(e.to_string()))
}
