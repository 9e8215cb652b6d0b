//! What the servers of a cluster share through the PostgreSQL store beside the resources: the
//! routes the leader publishes for the standbys (resources of kind [`ROUTE_KIND`], so that the
//! change trigger announces each), and the per-second metric samples the standbys hand to the
//! leader, which adds them to the cluster's metrics.

use crate::{MetricSample, PostgresStore, StoreError};
use berth_domain::{NameKey, Timestamp};

/// The resource kind of a published route (one per endpoint, named by it).
pub const ROUTE_KIND: &str = "route";

/// The database's clock, in epoch seconds.
const DATABASE_SECONDS: &str = "SELECT floor(extract(epoch FROM clock_timestamp()))::bigint";

/// The most handed-off samples the leader takes in one call.
const TAKE_LIMIT: i64 = 10_000;

impl PostgresStore {
    /// Publishes (`Some` body) or withdraws an endpoint's route; fenced as every lifecycle write.
    pub fn publish_route(&self, endpoint: &str, body: Option<&str>) -> Result<(), StoreError> {
        let key = NameKey::of(endpoint);
        self.write(|tx| {
            match body {
                Some(body) => tx.execute(
                    "INSERT INTO resources (kind, name_key, created_ms, body) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (kind, name_key) DO UPDATE SET body = $4, version = resources.version + 1",
                    &[&ROUTE_KIND, &key.as_str(), &Timestamp::now().millis(), &body],
                )?,
                None => tx.execute("DELETE FROM resources WHERE kind = $1 AND name_key = $2", &[&ROUTE_KIND, &key.as_str()])?,
            };
            Ok(())
        })
    }

    /// An endpoint's published route, if there is one.
    pub fn published_route(&self, endpoint: &str) -> Result<Option<String>, StoreError> {
        let row = self
            .client()?
            .query_opt("SELECT body FROM resources WHERE kind = $1 AND name_key = $2", &[&ROUTE_KIND, &NameKey::of(endpoint).as_str()])?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Every published route.
    pub fn published_routes(&self) -> Result<Vec<String>, StoreError> {
        let rows = self.client()?.query("SELECT body FROM resources WHERE kind = $1 ORDER BY name_key", &[&ROUTE_KIND])?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// A standby's per-second samples of the invocations it routed, for the leader to take;
    /// `now` is the standby's clock (epoch seconds): the seconds are stored by the database's
    /// clock, so that a server whose clock is off files them where they belong. Not fenced: a
    /// server that stands by writes only these.
    pub fn hand_off_samples(&self, node: &str, samples: &[MetricSample], now: u64) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let offset = tx.query_one(DATABASE_SECONDS, &[])?.get::<_, i64>(0) - now as i64;
        let insert = tx.prepare("INSERT INTO metric_handoff (node, endpoint, variant, ts, body) VALUES ($1, $2, $3, $4, $5)")?;
        for s in samples {
            let ts = s.ts as i64 + offset;
            tx.execute(&insert, &[&node, &s.endpoint, &s.variant, &ts, &s.body])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Takes (and removes) the samples standbys handed off, oldest first, their seconds by the
    /// taker's clock (`now`, epoch seconds); fenced, so that only the leader takes them.
    pub fn take_handed_off(&self, now: u64) -> Result<Vec<MetricSample>, StoreError> {
        self.write(|tx| {
            let offset = now as i64 - tx.query_one(DATABASE_SECONDS, &[])?.get::<_, i64>(0);
            let rows = tx.query(
                "DELETE FROM metric_handoff WHERE id IN (SELECT id FROM metric_handoff ORDER BY id LIMIT $1) \
                 RETURNING id, endpoint, variant, ts, body",
                &[&TAKE_LIMIT],
            )?;
            let mut taken: Vec<(i64, MetricSample)> = rows
                .iter()
                .map(|r| {
                    let sample = MetricSample {
                        endpoint: r.get(1),
                        variant: r.get(2),
                        resolution: 1,
                        ts: u64::try_from(r.get::<_, i64>(3) + offset).unwrap_or(0),
                        body: r.get(4),
                    };
                    (r.get(0), sample)
                })
                .collect();
            taken.sort_by_key(|(id, _)| *id);
            Ok(taken.into_iter().map(|(_, s)| s).collect())
        })
    }
}
