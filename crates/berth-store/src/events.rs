//! Endpoint events: an append-only log, newest read first, kept for the retention period.

use crate::{EventQuery, StoreError};
use berth_domain::{Event, EventKind, NameKey, NewEvent, Timestamp};
use rusqlite::{params, Connection, TransactionBehavior};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    endpoint TEXT NOT NULL,
    endpoint_key TEXT NOT NULL,
    variant TEXT,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_endpoint ON events (endpoint_key, id);
";

pub(crate) fn append(conn: &mut Connection, events: &[NewEvent]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for e in events {
        tx.execute(
            "INSERT INTO events (time_ms, endpoint, endpoint_key, variant, kind, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![e.time.millis(), e.endpoint, NameKey::of(&e.endpoint).as_str(), e.variant, e.kind.as_str(), e.message],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Events matching `q`, newest first.
pub(crate) fn list(conn: &Connection, q: &EventQuery) -> Result<Vec<Event>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, time_ms, endpoint, variant, kind, message FROM events \
         WHERE (?1 IS NULL OR endpoint_key = ?1) AND id > ?2 AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4",
    )?;
    let endpoint = q.endpoint.as_deref().map(NameKey::of);
    let rows = stmt.query_map(params![endpoint.as_ref().map(NameKey::as_str), q.after.unwrap_or(0), q.before, q.limit as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get(2)?, r.get(3)?, r.get::<_, String>(4)?, r.get(5)?))
    })?;
    rows.map(|row| {
        let (id, time_ms, endpoint, variant, kind, message) = row?;
        event(id, time_ms, endpoint, variant, kind, message)
    })
    .collect()
}

/// An event from its columns.
pub(crate) fn event(
    id: i64,
    time_ms: i64,
    endpoint: String,
    variant: Option<String>,
    kind: String,
    message: String,
) -> Result<Event, StoreError> {
    let kind = EventKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("event {id} has unknown kind {kind}")))?;
    Ok(Event { id, event: NewEvent { time: Timestamp::from_millis(time_ms), endpoint, variant, kind, message } })
}

pub(crate) fn prune(conn: &Connection, before: Timestamp) -> Result<usize, StoreError> {
    Ok(conn.execute("DELETE FROM events WHERE time_ms < ?1", params![before.millis()])?)
}
