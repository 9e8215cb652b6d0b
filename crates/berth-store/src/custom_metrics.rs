//! Custom metrics sent with CloudWatch's PutMetricData: one row per datapoint (a statistic set),
//! kept for the metrics retention period.

use crate::{CustomDatapoint, CustomMetric, StoreError};
use rusqlite::{params, Connection, TransactionBehavior};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS custom_metrics (
    namespace TEXT NOT NULL,
    metric_name TEXT NOT NULL,
    dimensions TEXT NOT NULL,
    ts INTEGER NOT NULL,
    unit TEXT NOT NULL,
    sample_count REAL NOT NULL,
    sum REAL NOT NULL,
    minimum REAL NOT NULL,
    maximum REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS custom_metrics_by_name ON custom_metrics (namespace, metric_name, dimensions, ts);
";

pub(crate) fn put(conn: &mut Connection, points: &[CustomDatapoint]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for p in points {
        tx.execute(
            &format!("INSERT INTO custom_metrics ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
            params![p.namespace, p.metric_name, p.dimensions, p.ts as i64, p.unit, p.sample_count, p.sum, p.minimum, p.maximum],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// A datapoint from its columns, in [`COLUMNS`]' order: (namespace, metric name, dimensions,
/// ts, unit) and [sample count, sum, minimum, maximum].
pub(crate) fn datapoint(
    (namespace, metric_name, dimensions, ts, unit): (String, String, String, i64, String),
    stats: [f64; 4],
) -> CustomDatapoint {
    let [sample_count, sum, minimum, maximum] = stats;
    CustomDatapoint { namespace, metric_name, dimensions, ts: ts as u64, unit, sample_count, sum, minimum, maximum }
}

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<CustomDatapoint> {
    let point = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
    Ok(datapoint(point, [r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?]))
}

pub(crate) const COLUMNS: &str = "namespace, metric_name, dimensions, ts, unit, sample_count, sum, minimum, maximum";

pub(crate) fn range(conn: &Connection, metric: &CustomMetric, from: u64, to: u64) -> Result<Vec<CustomDatapoint>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM custom_metrics WHERE namespace = ?1 AND metric_name = ?2 AND dimensions = ?3 AND ts >= ?4 AND ts < ?5 ORDER BY ts"
    ))?;
    let rows = stmt.query_map(params![metric.namespace, metric.metric_name, metric.dimensions, from as i64, to as i64], read)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One row per distinct (namespace, metric, dimensions), for ListMetrics.
pub(crate) fn names(conn: &Connection) -> Result<Vec<(String, String, String)>, StoreError> {
    let mut stmt = conn.prepare("SELECT DISTINCT namespace, metric_name, dimensions FROM custom_metrics ORDER BY 1, 2, 3")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn prune(conn: &Connection, before: u64) -> Result<usize, StoreError> {
    Ok(conn.execute("DELETE FROM custom_metrics WHERE ts < ?1", params![before as i64])?)
}
