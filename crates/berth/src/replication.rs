//! How the servers of a cluster share the data plane. The leader runs the instances; it
//! publishes each endpoint's route to the store (`publish_routes`, within a tenth of a second of
//! a change: weights, instances, health) and adds to the cluster's metrics the seconds each
//! standby closed (`absorb_handoffs`). A standby keeps a copy of the routes ([`Standby`]: read in
//! full when it starts listening and after each reconnection, then endpoint by endpoint as
//! PostgreSQL announces each change) and routes the invocations of those endpoints to the
//! instances itself, with the same picking and retries as the leader; it closes each second of
//! what it routed and hands it to the leader through the store. While the store cannot be read
//! it routes on the last routes it knew.

use crate::background::Supervisor;
use berth_control::Controller;
use berth_domain::NameKey;
use berth_metrics::SecondSample;
use berth_router::{Forwarder as InstanceForwarder, Replica, RouteSnapshot, Router, RoutingTable};
use berth_store::{Change, Changes, MetricSample, PostgresStore, ROUTE_KIND};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn};

/// How often the leader looks for route changes that are not announced (instances' health).
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// How long a retired instance keeps running once it has left the leader's routes: the
/// standbys learn the routes without it first (a publishing round, a notice, a read).
pub const RETIRE_GRACE: Duration = Duration::from_secs(1);
/// Rounds between two checks for published routes of endpoints that no longer exist.
const SWEEP_ROUNDS: u64 = 50;
/// The most closed seconds a standby keeps while the store cannot take them.
const MAX_UNSENT: usize = 100_000;

/// Runs `f` on a blocking thread (the store's client is synchronous).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// The leader's side: publishes each route as it changes, withdraws those of endpoints gone,
/// and takes the standbys' seconds into the cluster's metrics.
/// `anywhere`: the instances' addresses are reachable from every server (pods' IPs), not only
/// from this host's.
pub fn lead(
    supervisor: &mut Supervisor,
    store: Arc<PostgresStore>,
    controller: Arc<Controller>,
    routing: Arc<RoutingTable>,
    anywhere: bool,
) {
    let host = if anywhere { berth_router::ANY_HOST.to_string() } else { berth_instances::this_host() };
    {
        let (store, controller, routing) = (store.clone(), controller.clone(), routing.clone());
        // A round as soon as a route is published or removed, and every tenth of a second for
        // what is not announced (instances' health). Started again after a panic, it publishes
        // every route once more.
        supervisor.keep("route publishing", move || {
            let (store, controller, routing, host) = (store.clone(), controller.clone(), routing.clone(), host.clone());
            async move {
                let mut published = HashMap::new();
                let mut withdrawn = false;
                for round in 0u64.. {
                    if !withdrawn {
                        withdrawn = withdraw_dead_processes(&store, &routing).await;
                    }
                    publish_routes(&store, &routing, &mut published, &host).await;
                    if round.is_multiple_of(SWEEP_ROUNDS) {
                        withdraw_deleted(&store, &controller, &routing).await;
                    }
                    tokio::select! {
                        () = routing.changed() => {}
                        () = tokio::time::sleep(PUBLISH_EVERY) => {}
                    }
                }
            }
        });
    }
    supervisor.every("metrics the standbys hand off", Duration::from_secs(1), move || {
        let (store, controller, routing) = (store.clone(), controller.clone(), routing.clone());
        async move { absorb_handoffs(&store, &controller, &routing).await }
    });
}

/// Publishes the routes that changed since the last round (`published`: what each endpoint's
/// stored route is), and withdraws those the table lost. A route a dead leader published stays
/// until this one publishes the endpoint's own.
async fn publish_routes(store: &Arc<PostgresStore>, routing: &RoutingTable, published: &mut HashMap<NameKey, String>, host: &str) {
    let now: HashMap<NameKey, (String, String)> = routing
        .snapshots(host)
        .into_iter()
        .filter_map(|s| Some((NameKey::of(&s.endpoint), (s.endpoint.clone(), serde_json::to_string(&s).ok()?))))
        .collect();
    let changed = now
        .iter()
        .filter(|(key, (_, body))| published.get(*key) != Some(body))
        .map(|(key, (name, body))| (key.clone(), name.clone(), Some(body.clone())));
    let gone = published.keys().filter(|key| !now.contains_key(*key)).map(|key| (key.clone(), key.to_string(), None));
    let changes: Vec<(NameKey, String, Option<String>)> = changed.chain(gone).collect();
    for (key, name, body) in changes {
        let (s, written) = (store.clone(), body.clone());
        match blocking(move || s.publish_route(&name, written.as_deref())).await {
            Some(Ok(())) => {
                match body {
                    Some(body) => published.insert(key, body),
                    None => published.remove(&key),
                };
            }
            Some(Err(e)) => return debug!(error = %e, "cannot publish routes now; trying again"),
            None => return,
        }
    }
}

/// When this server comes to lead: withdraws the routes a server that led before published to
/// instances it ran as its own processes, which ended with it, so that the standbys forward
/// those endpoints' invocations here (where they wait for the instances this server starts)
/// rather than try dead addresses. Routes to containers stay: this server adopts them. Whether
/// it could read and write the routes.
async fn withdraw_dead_processes(store: &Arc<PostgresStore>, routing: &RoutingTable) -> bool {
    let s = store.clone();
    let Some(Ok(bodies)) = blocking(move || s.published_routes()).await else { return false };
    for snapshot in bodies.iter().filter_map(|b| serde_json::from_str::<RouteSnapshot>(b).ok()) {
        let processes = snapshot
            .variants
            .iter()
            .chain(snapshot.green.iter().flat_map(|g| g.0.iter()))
            .flat_map(|v| v.instances.iter())
            .any(|i| i.netns_pid.is_none());
        // Pods outlive their leader (they are adopted): their routes stay.
        if processes && snapshot.host != berth_router::ANY_HOST && routing.get(&snapshot.endpoint).is_none() {
            let (s, name) = (store.clone(), snapshot.endpoint.clone());
            if !matches!(blocking(move || s.publish_route(&name, None)).await, Some(Ok(()))) {
                return false;
            }
        }
    }
    true
}

/// Withdraws published routes of endpoints that no longer exist (deleted while no server led).
async fn withdraw_deleted(store: &Arc<PostgresStore>, controller: &Controller, routing: &RoutingTable) {
    let Ok(endpoints) = controller.all_endpoints().await else { return };
    let live: HashSet<NameKey> = endpoints.iter().map(|e| NameKey::of(&e.name)).collect();
    let s = store.clone();
    let Some(Ok(bodies)) = blocking(move || s.published_routes()).await else { return };
    for snapshot in bodies.iter().filter_map(|b| serde_json::from_str::<RouteSnapshot>(b).ok()) {
        if !live.contains(&NameKey::of(&snapshot.endpoint)) && routing.get(&snapshot.endpoint).is_none() {
            let s = store.clone();
            let _ = blocking(move || s.publish_route(&snapshot.endpoint, None)).await;
        }
    }
}

/// Adds the seconds standbys closed to this server's history (and stores each second, and each
/// finished minute, as it now stands), so that CloudWatch queries, alarms and autoscaling see
/// the cluster's invocations.
async fn absorb_handoffs(store: &Arc<PostgresStore>, controller: &Controller, routing: &RoutingTable) {
    let s = store.clone();
    let now = berth_domain::Timestamp::now().secs();
    let taken = match blocking(move || s.take_handed_off(now)).await {
        Some(Ok(taken)) if !taken.is_empty() => taken,
        Some(Err(e)) => return debug!(error = %e, "cannot take the standbys' metrics now"),
        _ => return,
    };
    let registry = routing.metrics();
    let mut merged: BTreeMap<(String, String, u64), SecondSample> = BTreeMap::new();
    for row in taken {
        let Ok(mut sample) = serde_json::from_str::<SecondSample>(&row.body) else { continue };
        // The second by this server's clock, as the store gave it (the standby's may be off).
        sample.second = row.ts;
        let second = sample.second;
        let now = registry.absorb(&row.endpoint, &row.variant, sample);
        merged.insert((row.endpoint, row.variant, second), now);
    }
    let last_closed = berth_domain::Timestamp::now().secs().saturating_sub(1);
    let mut rows: Vec<MetricSample> = Vec::new();
    let mut minutes: BTreeMap<u64, HashSet<(String, String)>> = BTreeMap::new();
    for ((endpoint, variant, second), sample) in merged {
        let minute = second - second % 60;
        if minute + 60 <= last_closed + 1 {
            minutes.entry(minute).or_default().insert((endpoint.clone(), variant.clone()));
        }
        if let Ok(body) = serde_json::to_string(&sample) {
            rows.push(MetricSample { endpoint, variant, resolution: 1, ts: second, body });
        }
    }
    // A minute already rolled up is rolled up again with what came late.
    for (minute, keys) in minutes {
        for (key, rollup) in registry.minute_rollups(minute) {
            if keys.contains(&(key.endpoint.clone(), key.variant.clone())) {
                if let Ok(body) = serde_json::to_string(&rollup) {
                    rows.push(MetricSample { endpoint: key.endpoint, variant: key.variant, resolution: 60, ts: minute, body });
                }
            }
        }
    }
    if let Err(e) = controller.store_metric_samples(rows).await {
        warn!(error = %e, "cannot store the metrics the standbys handed off");
    }
}

/// A standby's data plane: its copy of the leader's routes, kept by the store's change notices,
/// its router over them, and the hand-off of what it routed.
pub struct Standby {
    router: Arc<Router>,
    _changes: Changes,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Standby {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Standby {
    pub fn start(url: &str, store: Arc<PostgresStore>, node: &str, invocation_timeout: Duration) -> Standby {
        let replica = Arc::new(Replica::new(Arc::new(RoutingTable::default()), &berth_instances::this_host()));
        let router = Arc::new(Router::new(replica.table().clone(), InstanceForwarder::new(invocation_timeout)));
        let (tell, mut heard) = tokio::sync::mpsc::unbounded_channel();
        let changes = Changes::start(url, move |change| {
            let _ = tell.send(change);
        });
        let following = {
            let (store, replica) = (store.clone(), replica.clone());
            tokio::spawn(async move {
                while let Some(change) = heard.recv().await {
                    follow(&store, &replica, change).await;
                }
            })
        };
        let handing_off = {
            let (store, table, node) = (store, replica.table().clone(), node.to_string());
            tokio::spawn(hand_off(store, table, node))
        };
        Standby { router, _changes: changes, tasks: vec![following, handing_off] }
    }

    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }
}

/// Brings the copy of the routes up to date with one change notice. A route that cannot be read
/// now is kept as it was (the next notice, or the resync after a reconnection, reads it again).
async fn follow(store: &Arc<PostgresStore>, replica: &Arc<Replica>, change: Change) {
    let parse =
        |body: &str| serde_json::from_str::<RouteSnapshot>(body).map_err(|e| warn!(error = %e, "a published route berth cannot read"));
    match change {
        Change::Resync => {
            let s = store.clone();
            let Some(Ok(bodies)) = blocking(move || s.published_routes()).await else { return };
            let snapshots: Vec<RouteSnapshot> = bodies.iter().filter_map(|b| parse(b).ok()).collect();
            replica.apply_all(&snapshots);
        }
        Change::Resource { kind, name, deleted, .. } if kind == ROUTE_KIND => {
            if deleted {
                return replica.apply(&name, None);
            }
            let s = store.clone();
            let lookup = name.clone();
            let Some(Ok(body)) = blocking(move || s.published_route(&lookup)).await else { return };
            let snapshot = body.as_deref().and_then(|b| parse(b).ok());
            replica.apply(&name, snapshot.as_ref());
        }
        Change::Resource { .. } => {}
    }
}

/// Closes each second of what this standby routed and hands it to the leader through the
/// store; seconds the store cannot take now are kept (up to a bound) and sent with the next.
async fn hand_off(store: Arc<PostgresStore>, table: Arc<RoutingTable>, node: String) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut unsent: Vec<MetricSample> = Vec::new();
    loop {
        tick.tick().await;
        let second = berth_domain::Timestamp::now().secs().saturating_sub(1);
        for (key, sample) in table.metrics().sample(second, &mut BTreeMap::new()) {
            if let Ok(body) = serde_json::to_string(&sample) {
                unsent.push(MetricSample { endpoint: key.endpoint, variant: key.variant, resolution: 1, ts: second, body });
            }
        }
        if unsent.is_empty() {
            continue;
        }
        if unsent.len() > MAX_UNSENT {
            let dropped = unsent.len() - MAX_UNSENT;
            unsent.drain(..dropped);
            warn!(dropped, "the store has not taken this server's metrics for a long while: the oldest seconds are dropped");
        }
        let (s, n, batch) = (store.clone(), node.clone(), std::mem::take(&mut unsent));
        let now = berth_domain::Timestamp::now().secs();
        match blocking(move || (s.hand_off_samples(&n, &batch, now), batch)).await {
            Some((Ok(()), _)) => {}
            Some((Err(e), batch)) => {
                debug!(error = %e, "cannot hand this server's metrics to the leader now; keeping them");
                unsent = batch;
            }
            None => {}
        }
    }
}
