use crate::{CustomDatapoint, CustomMetric, EventQuery, MetricSample, StateStore, StoreError, Tag};
use berth_domain::{Alarm, Event, NameKey, NewEvent, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,
    name_key TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, name_key)
);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS records_by_time ON records (kind, created_ms);
CREATE TABLE IF NOT EXISTS tags (
    arn TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (arn, key)
);
";

/// The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a write is on
/// disk when the call returns.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl SqliteStore {
    /// Opens (creating) the database, readable and writable by berth's user only: SQLite gives
    /// its WAL and shared-memory files the database file's permissions.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path);
        if let Err(e) = file.and_then(|_| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))) {
            return Err(StoreError::Backend(format!("cannot create {} readable by berth's user only: {e}", path.display())));
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(crate::metric_samples::SCHEMA)?;
        conn.execute_batch(crate::custom_metrics::SCHEMA)?;
        conn.execute_batch(crate::events::SCHEMA)?;
        conn.execute_batch(crate::alarms::SCHEMA)?;
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent: transactions roll back.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl StateStore for SqliteStore {
    fn insert_resource(&self, kind: &str, name: &str, created_ms: i64, arn: &str, body: &str, tags: &[Tag]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO resources (kind, name_key, created_ms, body) VALUES (?1, ?2, ?3, ?4)",
            params![kind, NameKey::of(name).as_str(), created_ms, body],
        )?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists);
        }
        // Tags of an earlier resource with the same ARN do not carry over.
        tx.execute("DELETE FROM tags WHERE arn = ?1", params![arn])?;
        for (k, v) in tags {
            tx.execute("INSERT OR REPLACE INTO tags (arn, key, value) VALUES (?1, ?2, ?3)", params![arn, k, v])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn replace_resource(&self, kind: &str, name: &str, body: &str) -> Result<(), StoreError> {
        let changed = self
            .conn()
            .execute("UPDATE resources SET body = ?3 WHERE kind = ?1 AND name_key = ?2", params![kind, NameKey::of(name).as_str(), body])?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    fn resource(&self, kind: &str, name: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn();
        let body = conn
            .query_row("SELECT body FROM resources WHERE kind = ?1 AND name_key = ?2", params![kind, NameKey::of(name).as_str()], |row| {
                row.get(0)
            })
            .optional()?;
        Ok(body)
    }

    fn resources(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT body FROM resources WHERE kind = ?1 ORDER BY created_ms, name_key")?;
        let bodies = stmt.query_map(params![kind], |row| row.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
        Ok(bodies)
    }

    fn delete_resource(&self, kind: &str, name: &str, arn: Option<&str>) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute("DELETE FROM resources WHERE kind = ?1 AND name_key = ?2", params![kind, NameKey::of(name).as_str()])?;
        if let Some(arn) = arn {
            tx.execute("DELETE FROM tags WHERE arn = ?1", params![arn])?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    fn add_tags(&self, arn: &str, tags: &[Tag]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (k, v) in tags {
            tx.execute("INSERT OR REPLACE INTO tags (arn, key, value) VALUES (?1, ?2, ?3)", params![arn, k, v])?;
        }
        tx.commit()?;
        Ok(())
    }
    fn tags(&self, arn: &str) -> Result<Vec<Tag>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT key, value FROM tags WHERE arn = ?1 ORDER BY key")?;
        let tags = stmt.query_map(params![arn], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
        Ok(tags)
    }
    fn delete_tags(&self, arn: &str, keys: &[String]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for k in keys {
            tx.execute("DELETE FROM tags WHERE arn = ?1 AND key = ?2", params![arn, k])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn put_metric_samples(&self, samples: &[MetricSample]) -> Result<(), StoreError> {
        crate::metric_samples::put(&mut self.conn(), samples)
    }

    fn metric_samples(&self, variant: Option<(&str, &str)>, resolution: u32, from: u64, to: u64) -> Result<Vec<MetricSample>, StoreError> {
        crate::metric_samples::range(&self.conn(), variant, resolution, from, to)
    }

    fn prune_metric_samples(&self, resolution: u32, before: u64) -> Result<usize, StoreError> {
        crate::metric_samples::prune(&self.conn(), resolution, before)
    }

    fn put_custom_datapoints(&self, points: &[CustomDatapoint]) -> Result<(), StoreError> {
        crate::custom_metrics::put(&mut self.conn(), points)
    }

    fn custom_datapoints(&self, metric: &CustomMetric, from: u64, to: u64) -> Result<Vec<CustomDatapoint>, StoreError> {
        crate::custom_metrics::range(&self.conn(), metric, from, to)
    }

    fn custom_metric_names(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        crate::custom_metrics::names(&self.conn())
    }

    fn prune_custom_datapoints(&self, before: u64) -> Result<usize, StoreError> {
        crate::custom_metrics::prune(&self.conn(), before)
    }

    fn append_events(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        crate::events::append(&mut self.conn(), events)
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        crate::events::list(&self.conn(), query)
    }

    fn prune_events(&self, before: Timestamp) -> Result<usize, StoreError> {
        crate::events::prune(&self.conn(), before)
    }

    fn put_records(&self, kind: &str, records: &[(String, i64, String)]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (key, created_ms, body) in records {
            tx.execute(
                "INSERT INTO records (kind, key, created_ms, body) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (kind, key) DO UPDATE SET body = ?4",
                params![kind, key, created_ms, body],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn records(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT body FROM records WHERE kind = ?1 ORDER BY created_ms, key")?;
        let rows = stmt.query_map(params![kind], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn records_created_in(&self, kind: &str, after_ms: i64, through_ms: i64) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT body FROM records WHERE kind = ?1 AND created_ms > ?2 AND created_ms <= ?3 ORDER BY created_ms, key")?;
        let rows = stmt.query_map(params![kind, after_ms, through_ms], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn prune_record_kinds(&self, prefix: &str, before_ms: i64) -> Result<usize, StoreError> {
        // Kinds from `prefix` up to (not including) its end: a range the (kind, created_ms)
        // index serves.
        let Some(end) = crate::prefix_end(prefix) else { return Ok(0) };
        Ok(self
            .conn()
            .execute("DELETE FROM records WHERE kind >= ?1 AND kind < ?2 AND created_ms < ?3", params![prefix, end, before_ms])?)
    }

    fn delete_records(&self, kind: &str) -> Result<usize, StoreError> {
        Ok(self.conn().execute("DELETE FROM records WHERE kind = ?1", params![kind])?)
    }

    fn delete_record(&self, kind: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute("DELETE FROM records WHERE kind = ?1 AND key = ?2", params![kind, key])? > 0)
    }

    fn prune_records(&self, kind: &str, before_ms: i64) -> Result<usize, StoreError> {
        Ok(self.conn().execute("DELETE FROM records WHERE kind = ?1 AND created_ms < ?2", params![kind, before_ms])?)
    }

    fn put_alarm(&self, alarm: &Alarm) -> Result<(), StoreError> {
        crate::alarms::put(&self.conn(), alarm)
    }

    fn alarm(&self, name: &str) -> Result<Option<Alarm>, StoreError> {
        crate::alarms::get(&self.conn(), name)
    }

    fn alarms(&self) -> Result<Vec<Alarm>, StoreError> {
        crate::alarms::list(&self.conn())
    }

    fn delete_alarm(&self, name: &str) -> Result<bool, StoreError> {
        crate::alarms::delete(&self.conn(), name)
    }
}
