//! The shared store: a PostgreSQL database that several berth nodes use at once. A pool of
//! connections (r2d2) serves the synchronous [`StateStore`] calls, which the controller makes
//! from blocking threads; every write is one transaction, committed (and so durable under
//! PostgreSQL's default `synchronous_commit`) before the call returns. The schema is made and
//! migrated at connect time under a transaction-scoped advisory lock, so nodes that start
//! together apply each migration once. Keys and names are compared and ordered byte-wise
//! (`COLLATE "C"`), as SQLite does, whatever the database's locale.

use crate::postgres_schema::MIGRATIONS;
use crate::postgres_url::{parse_url, redacted, CONNECT_TIMEOUT};
use crate::{CustomDatapoint, CustomMetric, EventQuery, MetricSample, StateStore, StoreError, Tag};
use berth_domain::{Alarm, Event, NameKey, NewEvent, Timestamp};
use postgres::types::ToSql;
use postgres::{NoTls, Row};
use r2d2_postgres::PostgresConnectionManager;

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
type Client = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// The advisory lock key that serializes migrations ("berth" and 1).
const MIGRATION_LOCK: i64 = 0x6265_7274_6800_0001;

/// berth's state in a PostgreSQL database shared by its nodes.
pub struct PostgresStore {
    /// Always `Some` but while dropping: see [`off_async`].
    pool: Option<Pool>,
    /// The leadership epoch this store's writes are fenced with (0: none); see [`Self::fence`].
    fence: std::sync::atomic::AtomicU64,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        off_async(self.pool.take());
    }
}

/// Drops `value` on a thread of its own. The synchronous client runs a runtime of its own per
/// connection, which must not be dropped on an async runtime's thread (as the server's last
/// references are).
fn off_async<T: Send + 'static>(value: T) {
    let _ = std::thread::spawn(move || drop(value)).join();
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        match e.as_db_error() {
            // The server answered, and refused: berth's own fault, not the network's.
            Some(db) => StoreError::Backend(format!("PostgreSQL: {} ({})", db.message(), db.code().code())),
            None if e.is_closed() => StoreError::Unavailable(format!("the connection to PostgreSQL closed: {e}")),
            None => StoreError::Unavailable(format!("PostgreSQL: {e}")),
        }
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Unavailable(format!("cannot reach PostgreSQL: {e}"))
    }
}

impl PostgresStore {
    /// The schema version this berth makes and reads.
    pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

    /// The cluster's own name: drawn once when the database is made, the same for every
    /// server on it whatever URL each reaches it by (labels what the cluster's servers make).
    pub fn cluster_name(&self) -> Result<String, StoreError> {
        Ok(self.client()?.query_one("SELECT name FROM cluster WHERE id = 1", &[])?.get(0))
    }

    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`)
    /// and brings its schema up to date. A URL that does not parse, or a database that cannot be
    /// reached within a few seconds, is an error that says which.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let config = parse_url(url)?;
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(16)
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            .error_handler(Box::new(r2d2::LoggingErrorHandler))
            .build(manager)
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL at {}: {e}", redacted(url))))?;
        let store = PostgresStore { pool: Some(pool), fence: Default::default() };
        store.migrate()?;
        Ok(store)
    }

    /// Applies the migrations this database lacks, one node at a time.
    fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS berth_schema (version BIGINT NOT NULL)")?;
        let applied = tx.query_opt("SELECT version FROM berth_schema", &[])?.map_or(0, |r| r.get::<_, i64>(0));
        let applied = usize::try_from(applied).unwrap_or(usize::MAX);
        if applied > MIGRATIONS.len() {
            return Err(StoreError::Backend(format!(
                "the database's schema is at version {applied}, newer than this berth's ({}): run the newer berth",
                MIGRATIONS.len()
            )));
        }
        for migration in &MIGRATIONS[applied..] {
            tx.batch_execute(migration)?;
        }
        tx.execute("DELETE FROM berth_schema", &[])?;
        tx.execute("INSERT INTO berth_schema (version) VALUES ($1)", &[&(MIGRATIONS.len() as i64)])?;
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn client(&self) -> Result<Client, StoreError> {
        let pool = self.pool.as_ref().ok_or_else(|| StoreError::Unavailable("the store is closing".into()))?;
        Ok(pool.get()?)
    }

    /// Fences this store's writes with a leadership epoch: from now on a write commits only
    /// while `epoch` is the cluster's, so that once another server leads, this one's late
    /// writes are refused (`Fenced`) rather than undo the new leader's. 0 lifts the fence.
    pub fn fence(&self, epoch: u64) {
        self.fence.store(epoch, std::sync::atomic::Ordering::SeqCst);
    }

    /// Runs `f` in one transaction, checking the fence first: every write goes through here.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let fence = self.fence.load(std::sync::atomic::Ordering::SeqCst);
        if fence != 0 {
            // The leadership row shared until commit: an election that would end this epoch
            // waits for the write, and the write sees an election that came first.
            let current: Option<i64> = tx.query_opt("SELECT epoch FROM leadership WHERE id = 1 FOR SHARE", &[])?.map(|r| r.get(0));
            if current != Some(fence as i64) {
                return Err(StoreError::Fenced(format!(
                    "this server led the cluster in epoch {fence}, and the cluster is in epoch {}: its write is refused",
                    current.map_or("none".to_string(), |c| c.to_string())
                )));
            }
        }
        let out = f(&mut tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `statement` once per row of `rows` in one transaction.
    fn execute_each(&self, statement: &str, rows: impl Iterator<Item = Vec<Box<dyn ToSql + Sync>>>) -> Result<(), StoreError> {
        self.write(|tx| {
            let statement = tx.prepare(statement)?;
            for row in rows {
                let params: Vec<&(dyn ToSql + Sync)> = row.iter().map(|p| p.as_ref()).collect();
                tx.execute(&statement, &params)?;
            }
            Ok(())
        })
    }

    fn execute(&self, statement: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        self.write(|tx| Ok(tx.execute(statement, params)?))
    }

    fn query(&self, statement: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        Ok(self.client()?.query(statement, params)?)
    }

    fn bodies(&self, statement: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<String>, StoreError> {
        Ok(self.query(statement, params)?.iter().map(|r| r.get(0)).collect())
    }
}

fn boxed<T: ToSql + Sync + 'static>(value: T) -> Box<dyn ToSql + Sync> {
    Box::new(value)
}

impl StateStore for PostgresStore {
    fn insert_resource(&self, kind: &str, name: &str, created_ms: i64, arn: &str, body: &str, tags: &[Tag]) -> Result<(), StoreError> {
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO resources (kind, name_key, created_ms, body) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&kind, &NameKey::of(name).as_str(), &created_ms, &body],
            )?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists);
            }
            // Tags of an earlier resource with the same ARN do not carry over.
            tx.execute("DELETE FROM tags WHERE arn = $1", &[&arn])?;
            for (k, v) in tags {
                tx.execute(
                    "INSERT INTO tags (arn, key, value) VALUES ($1, $2, $3) ON CONFLICT (arn, key) DO UPDATE SET value = $3",
                    &[&arn, k, v],
                )?;
            }
            Ok(())
        })
    }

    fn replace_resource(&self, kind: &str, name: &str, body: &str) -> Result<(), StoreError> {
        let changed = self.execute(
            "UPDATE resources SET body = $3, version = version + 1 WHERE kind = $1 AND name_key = $2",
            &[&kind, &NameKey::of(name).as_str(), &body],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    fn resource(&self, kind: &str, name: &str) -> Result<Option<String>, StoreError> {
        let rows = self.bodies("SELECT body FROM resources WHERE kind = $1 AND name_key = $2", &[&kind, &NameKey::of(name).as_str()])?;
        Ok(rows.into_iter().next())
    }

    fn resources(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        self.bodies("SELECT body FROM resources WHERE kind = $1 ORDER BY created_ms, name_key", &[&kind])
    }

    fn delete_resource(&self, kind: &str, name: &str, arn: Option<&str>) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx.execute("DELETE FROM resources WHERE kind = $1 AND name_key = $2", &[&kind, &NameKey::of(name).as_str()])?;
            if let Some(arn) = arn {
                tx.execute("DELETE FROM tags WHERE arn = $1", &[&arn])?;
            }
            Ok(n > 0)
        })
    }

    fn add_tags(&self, arn: &str, tags: &[Tag]) -> Result<(), StoreError> {
        let rows = tags.iter().map(|(k, v)| vec![boxed(arn.to_string()), boxed(k.clone()), boxed(v.clone())]);
        self.execute_each("INSERT INTO tags (arn, key, value) VALUES ($1, $2, $3) ON CONFLICT (arn, key) DO UPDATE SET value = $3", rows)
    }

    fn tags(&self, arn: &str) -> Result<Vec<Tag>, StoreError> {
        Ok(self.query("SELECT key, value FROM tags WHERE arn = $1 ORDER BY key", &[&arn])?.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn delete_tags(&self, arn: &str, keys: &[String]) -> Result<(), StoreError> {
        let rows = keys.iter().map(|k| vec![boxed(arn.to_string()), boxed(k.clone())]);
        self.execute_each("DELETE FROM tags WHERE arn = $1 AND key = $2", rows)
    }

    fn put_metric_samples(&self, samples: &[MetricSample]) -> Result<(), StoreError> {
        let rows = samples.iter().map(|s| {
            vec![
                boxed(s.endpoint.clone()),
                boxed(s.variant.clone()),
                boxed(i64::from(s.resolution)),
                boxed(s.ts as i64),
                boxed(s.body.clone()),
            ]
        });
        self.execute_each(
            "INSERT INTO metric_samples (endpoint, variant, resolution, ts, body) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (endpoint, variant, resolution, ts) DO UPDATE SET body = $5",
            rows,
        )
    }

    fn metric_samples(&self, variant: Option<(&str, &str)>, resolution: u32, from: u64, to: u64) -> Result<Vec<MetricSample>, StoreError> {
        let (endpoint, name) = variant.unzip();
        let rows = self.query(
            "SELECT endpoint, variant, resolution, ts, body FROM metric_samples \
             WHERE resolution = $1 AND ts >= $2 AND ts < $3 AND ($4::text IS NULL OR (endpoint = $4 AND variant = $5)) \
             ORDER BY endpoint, variant, ts",
            &[&i64::from(resolution), &(from as i64), &(to as i64), &endpoint, &name],
        )?;
        Ok(rows
            .iter()
            .map(|r| MetricSample {
                endpoint: r.get(0),
                variant: r.get(1),
                resolution: r.get::<_, i64>(2) as u32,
                ts: r.get::<_, i64>(3) as u64,
                body: r.get(4),
            })
            .collect())
    }

    fn prune_metric_samples(&self, resolution: u32, before: u64) -> Result<usize, StoreError> {
        Ok(self.execute("DELETE FROM metric_samples WHERE resolution = $1 AND ts < $2", &[&i64::from(resolution), &(before as i64)])?
            as usize)
    }

    fn put_custom_datapoints(&self, points: &[CustomDatapoint]) -> Result<(), StoreError> {
        let rows = points.iter().map(|p| {
            vec![
                boxed(p.namespace.clone()),
                boxed(p.metric_name.clone()),
                boxed(p.dimensions.clone()),
                boxed(p.ts as i64),
                boxed(p.unit.clone()),
                boxed(p.sample_count),
                boxed(p.sum),
                boxed(p.minimum),
                boxed(p.maximum),
            ]
        });
        self.execute_each(
            &format!("INSERT INTO custom_metrics ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", crate::custom_metrics::COLUMNS),
            rows,
        )
    }

    fn custom_datapoints(&self, metric: &CustomMetric, from: u64, to: u64) -> Result<Vec<CustomDatapoint>, StoreError> {
        let rows = self.query(
            &format!(
                "SELECT {} FROM custom_metrics WHERE namespace = $1 AND metric_name = $2 AND dimensions = $3 AND ts >= $4 AND ts < $5 ORDER BY ts",
                crate::custom_metrics::COLUMNS
            ),
            &[&metric.namespace, &metric.metric_name, &metric.dimensions, &(from as i64), &(to as i64)],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let point = (r.get(0), r.get(1), r.get(2), r.get::<_, i64>(3), r.get(4));
                crate::custom_metrics::datapoint(point, [r.get(5), r.get(6), r.get(7), r.get(8)])
            })
            .collect())
    }

    fn custom_metric_names(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = self.query("SELECT DISTINCT namespace, metric_name, dimensions FROM custom_metrics ORDER BY 1, 2, 3", &[])?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    fn prune_custom_datapoints(&self, before: u64) -> Result<usize, StoreError> {
        Ok(self.execute("DELETE FROM custom_metrics WHERE ts < $1", &[&(before as i64)])? as usize)
    }

    fn append_events(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        let rows = events.iter().map(|e| {
            vec![
                boxed(e.time.millis()),
                boxed(e.endpoint.clone()),
                boxed(NameKey::of(&e.endpoint).as_str().to_string()),
                boxed(e.variant.clone()),
                boxed(e.kind.as_str()),
                boxed(e.message.clone()),
            ]
        });
        self.execute_each(
            "INSERT INTO events (time_ms, endpoint, endpoint_key, variant, kind, message) VALUES ($1, $2, $3, $4, $5, $6)",
            rows,
        )
    }

    fn events(&self, q: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let endpoint = q.endpoint.as_deref().map(|e| NameKey::of(e).as_str().to_string());
        let rows = self.query(
            "SELECT id, time_ms, endpoint, variant, kind, message FROM events \
             WHERE ($1::text IS NULL OR endpoint_key = $1) AND id > $2 AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
            &[&endpoint, &q.after.unwrap_or(0), &q.before, &(q.limit as i64)],
        )?;
        rows.iter().map(|r| crate::events::event(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))).collect()
    }

    fn prune_events(&self, before: Timestamp) -> Result<usize, StoreError> {
        Ok(self.execute("DELETE FROM events WHERE time_ms < $1", &[&before.millis()])? as usize)
    }

    fn put_records(&self, kind: &str, records: &[(String, i64, String)]) -> Result<(), StoreError> {
        let rows = records
            .iter()
            .map(|(key, created_ms, body)| vec![boxed(kind.to_string()), boxed(key.clone()), boxed(*created_ms), boxed(body.clone())]);
        self.execute_each(
            "INSERT INTO records (kind, key, created_ms, body) VALUES ($1, $2, $3, $4) ON CONFLICT (kind, key) DO UPDATE SET body = $4",
            rows,
        )
    }

    fn records(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        self.bodies("SELECT body FROM records WHERE kind = $1 ORDER BY created_ms, key", &[&kind])
    }

    fn records_created_in(&self, kind: &str, after_ms: i64, through_ms: i64) -> Result<Vec<String>, StoreError> {
        self.bodies(
            "SELECT body FROM records WHERE kind = $1 AND created_ms > $2 AND created_ms <= $3 ORDER BY created_ms, key",
            &[&kind, &after_ms, &through_ms],
        )
    }

    fn delete_record(&self, kind: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self.execute("DELETE FROM records WHERE kind = $1 AND key = $2", &[&kind, &key])? > 0)
    }

    fn prune_records(&self, kind: &str, before_ms: i64) -> Result<usize, StoreError> {
        Ok(self.execute("DELETE FROM records WHERE kind = $1 AND created_ms < $2", &[&kind, &before_ms])? as usize)
    }

    fn prune_record_kinds(&self, prefix: &str, before_ms: i64) -> Result<usize, StoreError> {
        let Some(end) = crate::prefix_end(prefix) else { return Ok(0) };
        Ok(self.execute("DELETE FROM records WHERE kind >= $1 AND kind < $2 AND created_ms < $3", &[&prefix, &end, &before_ms])? as usize)
    }

    fn delete_records(&self, kind: &str) -> Result<usize, StoreError> {
        Ok(self.execute("DELETE FROM records WHERE kind = $1", &[&kind])? as usize)
    }

    fn put_alarm(&self, alarm: &Alarm) -> Result<(), StoreError> {
        let body = crate::alarms::body(alarm)?;
        self.execute("INSERT INTO alarms (name, body) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET body = $2", &[&alarm.name, &body])?;
        Ok(())
    }

    fn alarm(&self, name: &str) -> Result<Option<Alarm>, StoreError> {
        self.bodies("SELECT body FROM alarms WHERE name = $1", &[&name])?.first().map(|b| crate::alarms::parse(b)).transpose()
    }

    fn alarms(&self) -> Result<Vec<Alarm>, StoreError> {
        self.bodies("SELECT body FROM alarms ORDER BY name", &[])?.iter().map(|b| crate::alarms::parse(b)).collect()
    }

    fn delete_alarm(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.execute("DELETE FROM alarms WHERE name = $1", &[&name])? > 0)
    }

    fn nodes(&self) -> Result<Vec<crate::Node>, StoreError> {
        crate::cluster::nodes(&mut *self.client()?)
    }
}
