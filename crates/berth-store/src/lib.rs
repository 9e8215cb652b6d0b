//! berth's state store.
//!
//! [`StateStore`] is the seam between berth and where its state lives. [`SqliteStore`], a
//! SQLite database in the data directory, is one berth's own; [`PostgresStore`], a PostgreSQL
//! database, is shared by several berth nodes. Every write is committed (and synced to disk)
//! before the call returns, so an acknowledged write survives `kill -9` of the server.

#![forbid(unsafe_code)]

mod alarms;
mod cluster;
mod custom_metrics;
mod events;
mod metric_samples;
mod postgres;
mod postgres_schema;
mod postgres_shared;
mod postgres_url;
mod resources;
mod sqlite;

pub use cluster::{nodes_at, Change, Changes, Election, Leadership, Node};
pub use postgres::PostgresStore;
pub use postgres_shared::ROUTE_KIND;
pub use postgres_url::redacted;
pub use resources::{Resource, Resources};
pub use sqlite::SqliteStore;

use berth_domain::{Alarm, Event, NewEvent, Timestamp};

/// A variant's metrics over one second or one minute, in the metrics layer's own encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSample {
    pub endpoint: String,
    pub variant: String,
    /// Seconds the sample covers: 1 or 60.
    pub resolution: u32,
    /// Start of the sample, in epoch seconds.
    pub ts: u64,
    pub body: String,
}

/// Which custom metric: namespace, name, and dimensions in their canonical text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomMetric {
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: String,
}

/// One datapoint of a custom metric (PutMetricData), as a statistic set.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomDatapoint {
    pub namespace: String,
    pub metric_name: String,
    /// The dimensions in a canonical text form (sorted by name), so equal sets compare equal.
    pub dimensions: String,
    pub ts: u64,
    pub unit: String,
    pub sample_count: f64,
    pub sum: f64,
    pub minimum: f64,
    pub maximum: f64,
}

/// Which events to read: of one endpoint or all, newer than `after` and older than `before`
/// (event ids), at most `limit`, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub endpoint: Option<String>,
    pub after: Option<i64>,
    pub before: Option<i64>,
    pub limit: usize,
}

/// A tag on a resource, as (key, value).
pub type Tag = (String, String);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A resource of that kind and name is already stored.
    #[error("already exists")]
    AlreadyExists,
    /// The resource to change is not stored.
    #[error("not found")]
    NotFound,
    #[error("state store: {0}")]
    Backend(String),
    #[error("state store holds a record it cannot read: {0}")]
    Corrupt(String),
    /// The store cannot be reached right now (a shared database down or cut off); nothing was
    /// changed, and the same call may succeed later.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// A write of a leader that has been deposed: another server leads now.
    #[error("fenced: {0}")]
    Fenced(String),
}

/// The least string greater than every string that starts with `prefix` (its last character
/// incremented): the end of the key range of `prefix`'s kinds. None for an empty prefix.
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut end: Vec<char> = prefix.chars().collect();
    let last = end.pop().and_then(|c| char::from_u32(c as u32 + 1))?;
    end.push(last);
    Some(end.into_iter().collect())
}

/// Durable storage of models, endpoint configs, endpoints and tags. Names are unique without
/// regard to case, as SageMaker's ARNs are.
pub trait StateStore: Send + Sync + 'static {
    /// Stores a resource's body under (kind, name without case) and sets its ARN's tags (an
    /// earlier resource's tags of that ARN go); `AlreadyExists` if one is stored. Typed:
    /// [`Resources::insert`].
    fn insert_resource(&self, kind: &str, name: &str, created_ms: i64, arn: &str, body: &str, tags: &[Tag]) -> Result<(), StoreError>;
    /// Replaces a stored resource's body; `NotFound` if there is none.
    fn replace_resource(&self, kind: &str, name: &str, body: &str) -> Result<(), StoreError>;
    fn resource(&self, kind: &str, name: &str) -> Result<Option<String>, StoreError>;
    /// The bodies of every resource of a kind, oldest first (then by name).
    fn resources(&self, kind: &str) -> Result<Vec<String>, StoreError>;
    /// Removes a resource and the tags of `arn`; false if there was none.
    fn delete_resource(&self, kind: &str, name: &str, arn: Option<&str>) -> Result<bool, StoreError>;

    /// Adds or overwrites tags on a resource ARN.
    fn add_tags(&self, arn: &str, tags: &[Tag]) -> Result<(), StoreError>;
    /// The tags of a resource ARN, sorted by key.
    fn tags(&self, arn: &str) -> Result<Vec<Tag>, StoreError>;
    fn delete_tags(&self, arn: &str, keys: &[String]) -> Result<(), StoreError>;

    /// Stores metric samples (replacing any with the same variant, resolution and start).
    fn put_metric_samples(&self, samples: &[MetricSample]) -> Result<(), StoreError>;
    /// Samples of one resolution starting in `[from, to)`, of one (endpoint, variant) or of all,
    /// by endpoint, variant and time.
    fn metric_samples(&self, variant: Option<(&str, &str)>, resolution: u32, from: u64, to: u64) -> Result<Vec<MetricSample>, StoreError>;
    /// Drops samples of one resolution that start before `before`; returns how many.
    fn prune_metric_samples(&self, resolution: u32, before: u64) -> Result<usize, StoreError>;

    fn put_custom_datapoints(&self, points: &[CustomDatapoint]) -> Result<(), StoreError>;
    /// Datapoints of one custom metric (exact namespace, name and dimensions) in `[from, to)`.
    fn custom_datapoints(&self, metric: &CustomMetric, from: u64, to: u64) -> Result<Vec<CustomDatapoint>, StoreError>;
    /// Every custom metric: (namespace, metric name, dimensions).
    fn custom_metric_names(&self) -> Result<Vec<(String, String, String)>, StoreError>;
    fn prune_custom_datapoints(&self, before: u64) -> Result<usize, StoreError>;

    /// Appends events in order; each gets the next id.
    fn append_events(&self, events: &[NewEvent]) -> Result<(), StoreError>;
    fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError>;
    /// Drops events older than `before`; returns how many.
    fn prune_events(&self, before: Timestamp) -> Result<usize, StoreError>;

    /// Creates or replaces small records of another kind (scaling targets, policies and
    /// activities; captured answers; labels), as JSON under case-sensitive keys, in one
    /// transaction: (key, created_ms, body).
    fn put_records(&self, kind: &str, records: &[(String, i64, String)]) -> Result<(), StoreError>;
    /// The records of a kind, oldest first.
    fn records(&self, kind: &str) -> Result<Vec<String>, StoreError>;
    /// The records of a kind created in `(after_ms, through_ms]`, oldest first (a replaced
    /// record keeps its creation time).
    fn records_created_in(&self, kind: &str, after_ms: i64, through_ms: i64) -> Result<Vec<String>, StoreError>;
    fn delete_record(&self, kind: &str, key: &str) -> Result<bool, StoreError>;
    /// Drops records of a kind created before `before_ms`; returns how many.
    fn prune_records(&self, kind: &str, before_ms: i64) -> Result<usize, StoreError>;
    /// Drops records of every kind that starts with `prefix` created before `before_ms`.
    fn prune_record_kinds(&self, prefix: &str, before_ms: i64) -> Result<usize, StoreError>;
    /// Drops every record of a kind; returns how many.
    fn delete_records(&self, kind: &str) -> Result<usize, StoreError>;

    /// Creates or replaces an alarm (names are case-sensitive).
    fn put_alarm(&self, alarm: &Alarm) -> Result<(), StoreError>;
    fn alarm(&self, name: &str) -> Result<Option<Alarm>, StoreError>;
    /// Every alarm, by name.
    fn alarms(&self) -> Result<Vec<Alarm>, StoreError>;
    fn delete_alarm(&self, name: &str) -> Result<bool, StoreError>;

    /// The servers of the cluster sharing this store, with whether each leads; none for a
    /// store one server has to itself.
    fn nodes(&self) -> Result<Vec<Node>, StoreError> {
        Ok(Vec::new())
    }
}
