//! Metric alarms (CloudWatch's PutMetricAlarm): one row per alarm, names case-sensitive as in
//! CloudWatch, the alarm with its state as JSON.

use crate::StoreError;
use berth_domain::Alarm;
use rusqlite::{params, Connection, OptionalExtension};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alarms (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
";

/// An alarm as its stored body.
pub(crate) fn body(alarm: &Alarm) -> Result<String, StoreError> {
    serde_json::to_string(alarm).map_err(|e| StoreError::Backend(e.to_string()))
}

/// An alarm from its stored body.
pub(crate) fn parse(body: &str) -> Result<Alarm, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn put(conn: &Connection, alarm: &Alarm) -> Result<(), StoreError> {
    let body = body(alarm)?;
    conn.execute("INSERT INTO alarms (name, body) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET body = ?2", params![alarm.name, body])?;
    Ok(())
}

pub(crate) fn get(conn: &Connection, name: &str) -> Result<Option<Alarm>, StoreError> {
    let body: Option<String> = conn.query_row("SELECT body FROM alarms WHERE name = ?1", params![name], |r| r.get(0)).optional()?;
    body.as_deref().map(parse).transpose()
}

/// Every alarm, by name.
pub(crate) fn list(conn: &Connection) -> Result<Vec<Alarm>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT body FROM alarms ORDER BY name")?;
    let bodies = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    bodies.iter().map(|b| parse(b)).collect()
}

pub(crate) fn delete(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM alarms WHERE name = ?1", params![name])? > 0)
}
