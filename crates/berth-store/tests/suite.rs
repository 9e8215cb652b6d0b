//! One suite of store tests, run on both stores: SQLite in a temporary directory, and PostgreSQL
//! in a database of its own made for each test on the server `BERTH_TEST_POSTGRES` names (an
//! administrator's URL such as `postgres://berth@127.0.0.1:5432/postgres`; `scripts/test.sh`
//! starts one and sets it). Without it the PostgreSQL half says so and passes.

use berth_domain::{Alarm, AlarmActions, AlarmState, Comparison, ContainerSpec, EventKind, MissingData, Model, NewEvent, Timestamp};
use berth_store::{CustomDatapoint, CustomMetric, EventQuery, MetricSample, PostgresStore, Resources, SqliteStore, StateStore, StoreError};
use std::sync::atomic::{AtomicU32, Ordering};

fn model(name: &str, created_ms: i64) -> Model {
    let arn = format!("arn:aws:sagemaker:us-east-1:123456789012:model/{}", name.to_lowercase());
    let container = ContainerSpec::new("exec:/bin/true", None);
    Model { arn, created: Timestamp::from_millis(created_ms), ..Model::new(name, vec![container]) }
}

fn names_are_unique_without_regard_to_case(store: &dyn StateStore) {
    store.insert(&model("Model-A", 1), &[]).unwrap();
    assert!(matches!(store.insert(&model("model-a", 2), &[]), Err(StoreError::AlreadyExists)));
    assert_eq!(store.get::<Model>("MODEL-A").unwrap().unwrap().name, "Model-A");
    assert!(store.get::<Model>("model-b").unwrap().is_none());
}

fn resources_list_oldest_first_and_update_only_what_is_stored(store: &dyn StateStore) {
    store.insert(&model("late", 30), &[]).unwrap();
    store.insert(&model("early", 10), &[]).unwrap();
    store.insert(&model("middle", 20), &[]).unwrap();
    let names: Vec<String> = store.list::<Model>().unwrap().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["early", "middle", "late"]);
    let mut changed = model("middle", 20);
    changed.execution_role_arn = Some("arn:aws:iam::123456789012:role/changed".into());
    store.update(&changed).unwrap();
    assert_eq!(store.get::<Model>("MIDDLE").unwrap().unwrap().execution_role_arn, changed.execution_role_arn);
    assert!(matches!(store.update(&model("never-stored", 1)), Err(StoreError::NotFound)));
}

fn delete_removes_resource_and_tags(store: &dyn StateStore) {
    let m = model("m", 1);
    store.insert(&m, &[("k".into(), "v".into())]).unwrap();
    assert_eq!(store.tags(&m.arn).unwrap(), vec![("k".to_string(), "v".to_string())]);
    assert!(store.remove::<Model>("m").unwrap());
    assert!(!store.remove::<Model>("m").unwrap());
    assert!(store.tags(&m.arn).unwrap().is_empty());
    // A new resource with the same ARN starts without the old tags.
    store.add_tags(&m.arn, &[("stale".into(), "1".into())]).unwrap();
    store.insert(&m, &[]).unwrap();
    assert!(store.tags(&m.arn).unwrap().is_empty());
}

fn tags_add_overwrite_and_delete(store: &dyn StateStore) {
    store.add_tags("arn:x", &[("b".into(), "2".into()), ("a".into(), "1".into())]).unwrap();
    store.add_tags("arn:x", &[("a".into(), "3".into())]).unwrap();
    store.delete_tags("arn:x", &["b".into(), "missing".into()]).unwrap();
    assert_eq!(store.tags("arn:x").unwrap(), vec![("a".to_string(), "3".to_string())]);
    assert!(store.tags("arn:other").unwrap().is_empty());
}

fn events_read_newest_first_by_endpoint_and_after_an_id(store: &dyn StateStore) {
    let ev = |ep: &str, msg: &str| NewEvent::new(ep, Some("A"), EventKind::WeightsChanged, msg);
    store.append_events(&[ev("Ep", "one"), ev("other", "two"), ev("ep", "three")]).unwrap();
    let all = store.events(&EventQuery { limit: 10, ..Default::default() }).unwrap();
    assert_eq!(all.iter().map(|e| e.event.message.as_str()).collect::<Vec<_>>(), ["three", "two", "one"]);
    assert_eq!(all[0].event.variant.as_deref(), Some("A"));
    assert_eq!(all[0].event.kind, EventKind::WeightsChanged);
    let mine = store.events(&EventQuery { endpoint: Some("EP".into()), limit: 10, ..Default::default() }).unwrap();
    assert_eq!(mine.iter().map(|e| e.event.message.as_str()).collect::<Vec<_>>(), ["three", "one"]);
    let newer = store.events(&EventQuery { after: Some(all[1].id), limit: 10, ..Default::default() }).unwrap();
    assert_eq!(newer.len(), 1);
    let older = store.events(&EventQuery { before: Some(all[0].id), limit: 1, ..Default::default() }).unwrap();
    assert_eq!(older[0].event.message, "two");
    assert_eq!(store.prune_events(Timestamp::from_millis(i64::MAX)).unwrap(), 3);
}

fn records_by_creation_time_and_pruned_by_kind_prefix(store: &dyn StateStore) {
    let row = |key: &str, ms: i64| (key.to_string(), ms, format!("{{\"k\":\"{key}\"}}"));
    store.put_records("prediction:a", &[row("1", 10), row("2", 20), row("3", 30)]).unwrap();
    store.put_records("prediction:b", &[row("1", 10)]).unwrap();
    store.put_records("predictions", &[row("1", 10)]).unwrap();
    store.put_records("label:a", &[row("1", 10), row("2", 10)]).unwrap();
    // A replaced record keeps its creation time.
    store.put_records("prediction:a", &[row("1", 99)]).unwrap();
    assert_eq!(store.records_created_in("prediction:a", 10, 30).unwrap(), vec![r#"{"k":"2"}"#, r#"{"k":"3"}"#]);
    assert_eq!(store.records_created_in("prediction:a", i64::MIN, 10).unwrap().len(), 1);

    assert_eq!(store.prune_record_kinds("prediction:", 25).unwrap(), 3);
    assert_eq!(store.records("prediction:a").unwrap(), vec![r#"{"k":"3"}"#]);
    assert!(store.records("prediction:b").unwrap().is_empty());
    assert_eq!(store.records("predictions").unwrap().len(), 1, "another kind that only shares letters");
    assert_eq!(store.prune_record_kinds("", 1000).unwrap(), 0, "an empty prefix names no kind");
    assert!(store.delete_record("label:a", "1").unwrap());
    assert!(!store.delete_record("label:a", "1").unwrap());
    assert_eq!(store.prune_records("predictions", 11).unwrap(), 1);
    assert_eq!(store.delete_records("label:a").unwrap(), 1);
    assert!(store.records("label:a").unwrap().is_empty());
}

fn metric_samples_are_stored_replaced_ranged_and_pruned(store: &dyn StateStore) {
    let sample = |variant: &str, resolution: u32, ts: u64, body: &str| MetricSample {
        endpoint: "ep".into(),
        variant: variant.into(),
        resolution,
        ts,
        body: body.into(),
    };
    store
        .put_metric_samples(&[sample("A", 1, 100, "a"), sample("A", 1, 101, "b"), sample("B", 1, 100, "c"), sample("A", 60, 60, "m")])
        .unwrap();
    store.put_metric_samples(&[sample("A", 1, 101, "b2")]).unwrap();
    let seconds = store.metric_samples(None, 1, 100, 102).unwrap();
    assert_eq!(
        seconds.iter().map(|s| (s.variant.as_str(), s.ts, s.body.as_str())).collect::<Vec<_>>(),
        vec![("A", 100, "a"), ("A", 101, "b2"), ("B", 100, "c")]
    );
    assert_eq!(store.metric_samples(None, 60, 0, 1000).unwrap(), vec![sample("A", 60, 60, "m")]);
    let b: Vec<String> = store.metric_samples(Some(("ep", "B")), 1, 0, 1000).unwrap().into_iter().map(|s| s.body).collect();
    assert_eq!(b, ["c"]);
    assert!(store.metric_samples(Some(("ep", "C")), 1, 0, 1000).unwrap().is_empty());
    assert_eq!(store.prune_metric_samples(1, 101).unwrap(), 2);
    assert_eq!(store.metric_samples(None, 1, 0, 1000).unwrap().len(), 1);
    assert_eq!(store.metric_samples(None, 60, 0, 1000).unwrap().len(), 1);
}

fn custom_datapoints_by_metric_and_time(store: &dyn StateStore) {
    let point = |name: &str, dimensions: &str, ts: u64, sum: f64| CustomDatapoint {
        namespace: "Team".into(),
        metric_name: name.into(),
        dimensions: dimensions.into(),
        ts,
        unit: "Count".into(),
        sample_count: 2.0,
        sum,
        minimum: 0.5,
        maximum: sum - 0.5,
    };
    let points = [
        point("Clicks", "Page=a", 100, 3.0),
        point("Clicks", "Page=a", 160, 4.5),
        point("Clicks", "Page=b", 100, 1.0),
        point("Views", "", 50, 9.0),
    ];
    store.put_custom_datapoints(&points).unwrap();
    let metric = CustomMetric { namespace: "Team".into(), metric_name: "Clicks".into(), dimensions: "Page=a".into() };
    assert_eq!(store.custom_datapoints(&metric, 0, 1000).unwrap(), points[..2].to_vec());
    assert_eq!(store.custom_datapoints(&metric, 101, 1000).unwrap(), points[1..2].to_vec());
    let names = store.custom_metric_names().unwrap();
    let expected = [("Team", "Clicks", "Page=a"), ("Team", "Clicks", "Page=b"), ("Team", "Views", "")];
    assert_eq!(names, expected.map(|(n, m, d)| (n.to_string(), m.to_string(), d.to_string())));
    assert_eq!(store.prune_custom_datapoints(101).unwrap(), 3);
    assert_eq!(store.custom_metric_names().unwrap().len(), 1);
}

fn alarms_are_put_replaced_listed_by_name_and_deleted(store: &dyn StateStore) {
    let alarm = |name: &str, threshold: f64| Alarm {
        name: name.into(),
        arn: format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"),
        description: Some("latency".into()),
        actions: AlarmActions { actions_enabled: true, alarm_actions: vec!["arn:x".into()], ..Default::default() },
        namespace: "AWS/SageMaker".into(),
        metric_name: "ModelLatency".into(),
        dimensions: vec![("EndpointName".into(), "ep".into())],
        statistic: "p99".into(),
        extended: true,
        unit: None,
        period: 60,
        evaluation_periods: 3,
        datapoints_to_alarm: 2,
        threshold,
        comparison: Comparison::GreaterThanThreshold,
        treat_missing_data: MissingData::NotBreaching,
        configuration_updated: Timestamp::from_millis(5),
        state: AlarmState::InsufficientData,
        state_reason: "new".into(),
        state_reason_data: None,
        state_updated: Timestamp::from_millis(5),
        manual_until: None,
    };
    store.put_alarm(&alarm("b", 1.0)).unwrap();
    store.put_alarm(&alarm("a", 2.0)).unwrap();
    store.put_alarm(&alarm("b", 3.0)).unwrap();
    assert_eq!(store.alarm("b").unwrap(), Some(alarm("b", 3.0)));
    assert_eq!(store.alarm("B").unwrap(), None, "alarm names are case-sensitive, as in CloudWatch");
    assert_eq!(store.alarms().unwrap(), vec![alarm("a", 2.0), alarm("b", 3.0)]);
    assert!(store.delete_alarm("a").unwrap());
    assert!(!store.delete_alarm("a").unwrap());
    assert_eq!(store.alarms().unwrap().len(), 1);
}

/// A PostgreSQL database made for one test, dropped after it.
struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    fn new() -> Option<TestDatabase> {
        let Ok(admin) = std::env::var("BERTH_TEST_POSTGRES") else {
            eprintln!("BERTH_TEST_POSTGRES is not set: the PostgreSQL store is not tested here (scripts/test.sh sets it)");
            return None;
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("berth_suite_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).expect("connecting to BERTH_TEST_POSTGRES");
        client.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let (base, _) = admin.rsplit_once('/').expect("BERTH_TEST_POSTGRES names a database");
        let url = format!("{base}/{name}");
        Some(TestDatabase { admin, name, url })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

macro_rules! on_both_stores {
    ($($check:ident),* $(,)?) => {
        mod sqlite_store {
            $(
                #[test]
                fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = berth_store::SqliteStore::open(&dir.path().join("state.db")).unwrap();
                    super::$check(&store);
                }
            )*
        }
        mod postgres_store {
            $(
                #[test]
                fn $check() {
                    let Some(db) = super::TestDatabase::new() else { return };
                    let store = berth_store::PostgresStore::connect(&db.url).unwrap();
                    super::$check(&store);
                }
            )*
        }
    };
}

on_both_stores!(
    names_are_unique_without_regard_to_case,
    resources_list_oldest_first_and_update_only_what_is_stored,
    delete_removes_resource_and_tags,
    tags_add_overwrite_and_delete,
    events_read_newest_first_by_endpoint_and_after_an_id,
    records_by_creation_time_and_pruned_by_kind_prefix,
    metric_samples_are_stored_replaced_ranged_and_pruned,
    custom_datapoints_by_metric_and_time,
    alarms_are_put_replaced_listed_by_name_and_deleted,
);

#[test]
fn sqlite_writes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store.insert(&model("m1", 1), &[("team".into(), "ml".into())]).unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.get::<Model>("m1").unwrap().unwrap().name, "m1");
    assert_eq!(store.tags(&model("m1", 1).arn).unwrap(), vec![("team".to_string(), "ml".to_string())]);
}

#[test]
fn postgres_nodes_starting_together_migrate_once_and_share_their_writes() {
    let Some(db) = TestDatabase::new() else { return };
    let nodes: Vec<PostgresStore> = std::thread::scope(|s| {
        let starting: Vec<_> = (0..4).map(|_| s.spawn(|| PostgresStore::connect(&db.url).unwrap())).collect();
        starting.into_iter().map(|t| t.join().unwrap()).collect()
    });
    nodes[0].insert(&model("shared", 1), &[]).unwrap();
    assert!(nodes[3].get::<Model>("SHARED").unwrap().is_some(), "a write through one node is read through another");
    assert!(matches!(nodes[2].insert(&model("Shared", 2), &[]), Err(StoreError::AlreadyExists)));
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let versions: Vec<i64> = client.query("SELECT version FROM berth_schema", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, [PostgresStore::SCHEMA_VERSION as i64], "one schema version, recorded once");
    // A database migrated by a newer berth is refused, not written in an older shape.
    client.batch_execute("UPDATE berth_schema SET version = 99").unwrap();
    let err = PostgresStore::connect(&db.url).err().expect("a newer schema is refused");
    assert!(err.to_string().contains("version 99"), "{err}");
}

#[test]
fn postgres_that_cannot_be_reached_is_unavailable_naming_where() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://berth:secret@127.0.0.1:{port}/berth");
    match PostgresStore::connect(&url) {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert!(!message.contains("secret"), "the password is never shown: {message}");
        }
        Err(e) => panic!("expected Unavailable, got {e}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}

/// Waits up to `secs` seconds for the next message.
fn next<T>(heard: &std::sync::mpsc::Receiver<T>, secs: u64) -> T {
    heard.recv_timeout(std::time::Duration::from_secs(secs)).expect("nothing heard in time")
}

/// Ends the sessions of `db` whose application name is `name`, as a crash of their server or a
/// cut network would.
fn end_sessions(db: &TestDatabase, name: &str) -> u64 {
    let mut client = postgres::Client::connect(&db.admin, postgres::NoTls).unwrap();
    let rows = client
        .query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2", &[&db.name, &name])
        .unwrap();
    rows.len() as u64
}

#[test]
fn postgres_announces_each_change_of_a_resource_and_a_resync_after_reconnecting() {
    use berth_store::{Change, Changes};
    let Some(db) = TestDatabase::new() else { return };
    let store = PostgresStore::connect(&db.url).unwrap();
    let (tx, heard) = std::sync::mpsc::channel();
    let _changes = Changes::start(&db.url, move |c| {
        let _ = tx.send(c);
    });
    assert_eq!(next(&heard, 10), Change::Resync, "listening begins with a full read");
    let change = |version, deleted| Change::Resource { kind: "model".into(), name: "m".into(), version, deleted };
    let mut m = model("M", 1);
    store.insert(&m, &[]).unwrap();
    assert_eq!(next(&heard, 10), change(1, false), "names are announced as their keys");
    m.execution_role_arn = Some("arn:aws:iam::123456789012:role/other".into());
    store.update(&m).unwrap();
    assert_eq!(next(&heard, 10), change(2, false));
    assert!(store.remove::<Model>("m").unwrap());
    assert_eq!(next(&heard, 10), change(2, true));
    // The listening session dies: what happened meanwhile is unknown, so a resync is asked for.
    assert_eq!(end_sessions(&db, "berth-changes"), 1);
    assert_eq!(next(&heard, 15), Change::Resync);
    store.insert(&model("after", 1), &[]).unwrap();
    assert!(matches!(next(&heard, 10), Change::Resource { name, .. } if name == "after"));
}

#[test]
fn postgres_elects_one_leader_at_a_time_and_fences_a_deposed_ones_writes() {
    use berth_store::{Election, Leadership};
    let Some(db) = TestDatabase::new() else { return };
    let m = model("fenced", 1);
    PostgresStore::connect(&db.url).unwrap().insert(&m, &[]).unwrap();
    // Each server's store, fenced with the epoch it leads in (as `berth serve` does).
    let stores: Vec<PostgresStore> = (0..2).map(|_| PostgresStore::connect(&db.url).unwrap()).collect();
    let (tx, heard) = std::sync::mpsc::channel::<(usize, Leadership)>();
    let campaign = |node: usize| {
        let tx = tx.clone();
        Election::start(&db.url, &format!("node-{node}"), "starting", move |now| {
            let _ = tx.send((node, now));
        })
    };
    let mut elections = [Some(campaign(0)), Some(campaign(1))];
    // One leads with epoch 1; the other follows it, by name.
    let mut leader = None;
    let mut followed = None;
    while leader.is_none() || followed.is_none() {
        match next(&heard, 15) {
            (node, Leadership::Leading(epoch)) => leader = Some((node, epoch)),
            (node, Leadership::Following(Some(name))) => followed = Some((node, name)),
            // Before the first leader has written its name.
            (_, Leadership::Following(None)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let (first, epoch) = leader.unwrap();
    let other = 1 - first;
    assert_eq!(epoch, 1);
    assert_eq!(followed.unwrap(), (other, format!("node-{first}")));
    elections[first].as_ref().unwrap().set_address("http://127.0.0.1:8080");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let nodes = stores[0].nodes().unwrap();
    let seen: Vec<(String, bool)> = nodes.iter().map(|n| (n.name.clone(), n.leader)).collect();
    assert_eq!(seen, [("node-0".to_string(), first == 0), ("node-1".to_string(), first == 1)]);
    assert_eq!(nodes[first].address, "http://127.0.0.1:8080", "a server's address is announced once known");
    assert!(nodes.iter().all(|n| n.silent_ms < 10_000 && n.connected), "{nodes:?}");
    stores[first].fence(1);
    stores[first].update(&m).unwrap();

    // The leader stops: it hears that it no longer knows, the other leads with the next epoch,
    // and the old leader's writes are refused.
    drop(elections[first].take());
    assert_eq!(next(&heard, 15), (first, Leadership::Unknown));
    assert_eq!(next(&heard, 15), (other, Leadership::Leading(2)));
    assert!(matches!(stores[first].update(&m), Err(StoreError::Fenced(_))));
    assert!(matches!(stores[first].put_records("k", &[("a".into(), 1, "{}".into())]), Err(StoreError::Fenced(_))), "every write");
    stores[other].fence(2);
    stores[other].update(&m).unwrap();
    let gone = stores[other].nodes().unwrap().into_iter().find(|n| n.name == format!("node-{first}")).unwrap();
    assert!(!gone.connected && !gone.leader, "a stopped server is listed, as gone: {gone:?}");
    assert!(stores[other].nodes().unwrap().iter().any(|n| n.name == format!("node-{other}") && n.leader));

    // The new leader's session is cut: it no longer knows, then (reconnected, and alone) leads
    // with a new epoch; its writes under the old one are refused.
    assert_eq!(end_sessions(&db, &format!("berth-election/node-{other}")), 1);
    assert_eq!(next(&heard, 15), (other, Leadership::Unknown));
    assert_eq!(next(&heard, 15), (other, Leadership::Leading(3)));
    assert!(matches!(stores[other].update(&m), Err(StoreError::Fenced(_))));
}

#[test]
fn postgres_publishes_routes_with_a_notice_and_hands_standby_samples_to_the_leader_once() {
    use berth_store::{Change, Changes, MetricSample, ROUTE_KIND};
    let Some(db) = TestDatabase::new() else { return };
    let leader = PostgresStore::connect(&db.url).unwrap();
    let standby = PostgresStore::connect(&db.url).unwrap();
    let (tx, heard) = std::sync::mpsc::channel();
    let _changes = Changes::start(&db.url, move |c| {
        let _ = tx.send(c);
    });
    assert_eq!(next(&heard, 10), Change::Resync);
    leader.publish_route("Demo", Some("{\"v\":1}")).unwrap();
    assert_eq!(next(&heard, 10), Change::Resource { kind: ROUTE_KIND.into(), name: "demo".into(), version: 1, deleted: false });
    leader.publish_route("demo", Some("{\"v\":2}")).unwrap();
    assert_eq!(next(&heard, 10), Change::Resource { kind: ROUTE_KIND.into(), name: "demo".into(), version: 2, deleted: false });
    assert_eq!(standby.published_route("DEMO").unwrap().as_deref(), Some("{\"v\":2}"));
    assert_eq!(standby.published_routes().unwrap(), ["{\"v\":2}"]);
    leader.publish_route("demo", None).unwrap();
    assert!(matches!(next(&heard, 10), Change::Resource { deleted: true, .. }));
    assert_eq!(standby.published_route("demo").unwrap(), None);

    let sample =
        |ts| MetricSample { endpoint: "demo".into(), variant: "A".into(), resolution: 1, ts, body: format!("{{\"second\":{ts}}}") };
    // Seconds travel by the database's clock: n3's clock is 300 s ahead, the leader's 100 s behind.
    let now = berth_domain::Timestamp::now().secs();
    standby.hand_off_samples("n2", &[sample(now - 2), sample(now - 1)], now).unwrap();
    standby.hand_off_samples("n3", &[sample(now + 299)], now + 300).unwrap();
    let taken = leader.take_handed_off(now - 100).unwrap();
    let seconds: Vec<i64> = taken.iter().map(|s| s.ts as i64 - (now as i64 - 100)).collect();
    assert_eq!(seconds.len(), 3, "every node's, once");
    for (got, want) in seconds.iter().zip([-2, -1, -1]) {
        assert!((got - want).abs() <= 1, "oldest first, by the taker's clock: {seconds:?}");
    }
    assert!(leader.take_handed_off(now).unwrap().is_empty(), "each sample is taken once");

    // A deposed leader neither publishes nor takes samples; a standby still hands them off.
    leader.fence(7);
    assert!(matches!(leader.publish_route("demo", Some("{}")), Err(StoreError::Fenced(_))));
    assert!(matches!(leader.take_handed_off(now), Err(StoreError::Fenced(_))));
    standby.fence(7);
    standby.hand_off_samples("n2", &[sample(12)], now).unwrap();
}
