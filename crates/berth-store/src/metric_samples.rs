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

#[cfg(test)]
mod tests {
    use crate::{MetricSample, SqliteStore, StateStore};

    fn sample(variant: &str, resolution: u32, ts: u64, body: &str) -> MetricSample {
        MetricSample { endpoint: "ep".into(), variant: variant.into(), resolution, ts, body: body.into() }
    }

    #[test]
    fn samples_are_stored_replaced_ranged_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        store
            .put_metric_samples(&[sample("A", 1, 100, "a"), sample("A", 1, 101, "b"), sample("B", 1, 100, "c"), sample("A", 60, 60, "m")])
            .unwrap();
        store.put_metric_samples(&[sample("A", 1, 101, "b2")]).unwrap();
        let seconds = store.metric_samples(None, 1, 100, 102).unwrap();
        assert_eq!(
            seconds.iter().map(|s| (s.variant.as_str(), s.ts, s.body.as_str())).collect::<Vec<_>>(),
            vec![("A", 100, "a"), ("A", 101, "b2"), ("B", 100, "c")]
        );
        assert_eq!(store.metric_samples(None, 60, 0, 1000).unwrap().len(), 1);
        assert_eq!(
            store.metric_samples(Some(("ep", "B")), 1, 0, 1000).unwrap().iter().map(|s| s.body.as_str()).collect::<Vec<_>>(),
            vec!["c"]
        );
        assert!(store.metric_samples(Some(("ep", "C")), 1, 0, 1000).unwrap().is_empty());
        assert_eq!(store.prune_metric_samples(1, 101).unwrap(), 2);
        assert_eq!(store.metric_samples(None, 1, 0, 1000).unwrap().len(), 1);
        assert_eq!(store.metric_samples(None, 60, 0, 1000).unwrap().len(), 1);
    }
}
