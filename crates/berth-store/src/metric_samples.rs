//! Stored metric samples: a variant's activity over one second (kept for the last hour) or one
//! minute (kept for the retention period), so that a restart does not lose metric history.

use crate::{MetricSample, StoreError};
use rusqlite::{params, Connection, TransactionBehavior};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS metric_samples (
    endpoint TEXT NOT NULL,
    variant TEXT NOT NULL,
    resolution INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (endpoint, variant, resolution, ts)
);
";

pub(crate) fn put(conn: &mut Connection, samples: &[MetricSample]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for s in samples {
        tx.execute(
            "INSERT OR REPLACE INTO metric_samples (endpoint, variant, resolution, ts, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![s.endpoint, s.variant, s.resolution, s.ts as i64, s.body],
        )?;
    }
    tx.commit()?;
    Ok(())
}

pub(crate) fn range(
    conn: &Connection,
    variant: Option<(&str, &str)>,
    resolution: u32,
    from: u64,
    to: u64,
) -> Result<Vec<MetricSample>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT endpoint, variant, resolution, ts, body FROM metric_samples \
         WHERE resolution = ?1 AND ts >= ?2 AND ts < ?3 AND (?4 IS NULL OR (endpoint = ?4 AND variant = ?5)) \
         ORDER BY endpoint, variant, ts",
    )?;
    let (endpoint, name) = variant.unzip();
    let rows = stmt.query_map(params![resolution, from as i64, to as i64, endpoint, name], |r| {
        Ok(MetricSample { endpoint: r.get(0)?, variant: r.get(1)?, resolution: r.get(2)?, ts: r.get::<_, i64>(3)? as u64, body: r.get(4)? })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn prune(conn: &Connection, resolution: u32, before: u64) -> Result<usize, StoreError> {
    Ok(conn.execute("DELETE FROM metric_samples WHERE resolution = ?1 AND ts < ?2", params![resolution, before as i64])?)
}
