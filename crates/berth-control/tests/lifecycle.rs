//! The controller's endpoint lifecycles against an in-memory backend (`FakeBackend`): what it
//! starts and stops, what it stores, and what it publishes to the routing table — create,
//! blue/green update, a guarded update rolled back on an alarm, delete during an update, and
//! recovery after a restart on the same data directory, the dashboard's weight controls, and a
//! fault of berth's own in each step.

mod support;

use berth_control::{DesiredWeightAndCapacity, PutAlarm, WeightControl};
use berth_domain::{
    AlarmActions, AlarmState, BlueGreenPolicy, CapacitySize, CapacityUnit, DeploymentConfig, Endpoint, EndpointStatus, TrafficRouting,
    UpdatePolicy,
};
use berth_instances::FakeBackend;
use berth_store::EventQuery;
use std::time::{Duration, Instant};
use support::{eventually, server, started_images};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_blue_green_update_keeps_unchanged_variants_and_replaces_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::default();
    let s = server(dir.path(), &backend);
    s.model("a1", "registry.example/a:1").await;
    s.model("b1", "registry.example/b:1").await;
    s.model("b2", "registry.example/b:2").await;
    s.config("c1", &[("A", "a1", 2), ("B", "b1", 1)]).await;
    s.create("ep", "c1").await;
    let e = s.settled("ep", EndpointStatus::InService).await;
    assert_eq!(backend.running().len(), 3);
    assert_eq!(s.routed("ep"), vec![("A".into(), 2), ("B".into(), 1)]);
    let b = e.variant("B").unwrap();
    assert_eq!(b.resolved_image.as_deref(), Some("registry.example/b:1@sha256:fake"), "the backend's resolution is stored");

    // B moves to a new image; A is unchanged and keeps its instances.
    s.config("c2", &[("A", "a1", 2), ("B", "b2", 1)]).await;
    let a_before: Vec<String> = backend.running().into_iter().filter(|id| id.starts_with("ep/A/")).collect();
    s.update("ep", "c2", None).await;
    let e = s.settled("ep", EndpointStatus::InService).await;
    assert_eq!(e.config_name, "c2");
    assert_eq!(e.variant("B").unwrap().resolved_image.as_deref(), Some("registry.example/b:2@sha256:fake"));
    eventually("the replaced B instance stops", || backend.running().len() == 3).await;
    let running = backend.running();
    assert!(a_before.iter().all(|id| running.contains(id)), "A kept its instances: {running:?}");
    assert_eq!(started_images(&backend).iter().filter(|i| i.ends_with("b:2")).count(), 1);
    assert_eq!(s.routed("ep"), vec![("A".into(), 2), ("B".into(), 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_update_leaves_the_old_fleet_serving() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::default();
    let s = server(dir.path(), &backend);
    s.model("good", "registry.example/good:1").await;
    s.model("bad", "registry.example/bad:1").await;
    s.config("c1", &[("V", "good", 2)]).await;
    s.config("c2", &[("V", "bad", 2)]).await;
    s.create("ep", "c1").await;
    s.settled("ep", EndpointStatus::InService).await;
    let before = backend.running();

    backend.fail_images_containing("bad");
    s.update("ep", "c2", None).await;
    let e = s.settled("ep", EndpointStatus::InService).await;
    assert_eq!(e.config_name, "c1");
    assert!(e.failure_reason.as_deref().unwrap_or("").contains("fake failure of registry.example/bad:1"), "{:?}", e.failure_reason);
    assert_eq!(backend.running(), before, "the old instances kept serving");
    assert_eq!(s.routed("ep"), vec![("V".into(), 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_update_rolls_back_when_its_alarm_fires() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::default();
    let s = server(dir.path(), &backend);
    s.model("blue", "registry.example/m:blue").await;
    s.model("green", "registry.example/m:green").await;
    s.config("c1", &[("V", "blue", 2)]).await;
    s.config("c2", &[("V", "green", 2)]).await;
    s.create("ep", "c1").await;
    s.settled("ep", EndpointStatus::InService).await;
    let blue = backend.running();
    let alarm = PutAlarm {
        name: "errors".into(),
        description: None,
        actions: AlarmActions { actions_enabled: true, ..Default::default() },
        namespace: "AWS/SageMaker".into(),
        metric_name: "Invocation5XXErrors".into(),
        dimensions: vec![("EndpointName".into(), "ep".into()), ("VariantName".into(), "V".into())],
        statistic: Some("Sum".into()),
        extended_statistic: None,
        unit: None,
        period: 60,
        evaluation_periods: 1,
        datapoints_to_alarm: None,
        threshold: 1.0,
        comparison: "GreaterThanOrEqualToThreshold".into(),
        treat_missing_data: None,
    };
    s.controller.put_alarm(alarm).await.unwrap();
    let canary = BlueGreenPolicy {
        routing: TrafficRouting::Canary(CapacitySize { unit: CapacityUnit::InstanceCount, value: 1 }),
        wait_interval_secs: 30,
        termination_wait_secs: 0,
        max_execution_secs: None,
    };
    let config = DeploymentConfig { policy: Some(UpdatePolicy::BlueGreen(canary)), rollback_alarms: vec!["errors".into()] };
    s.update("ep", "c2", Some(config)).await;

    // The canary takes its share of traffic beside the old fleet...
    eventually("the canary takes traffic", || s.routing.get("ep").is_some_and(|r| r.green.as_ref().is_some_and(|g| g.share > 0.0))).await;
    assert_eq!(backend.running().len(), 4, "green starts beside blue");
    // ... until the alarm fires: all traffic goes back, the green fleet stops.
    s.controller.set_alarm_state("errors", AlarmState::Alarm, "test".into(), None).await.unwrap();
    let e = s.settled("ep", EndpointStatus::InService).await;
    eventually("the green fleet stops", || backend.running() == blue).await;
    assert_eq!(e.config_name, "c1");
    assert!(e.failure_reason.as_deref().unwrap_or("").contains("errors"), "{:?}", e.failure_reason);
    assert!(s.routing.get("ep").unwrap().green.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_during_an_update_stops_both_fleets() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::default();
    let s = server(dir.path(), &backend);
    s.model("old", "registry.example/m:old").await;
    s.model("new", "registry.example/m:new").await;
    s.config("c1", &[("V", "old", 2)]).await;
    s.config("c2", &[("V", "new", 2)]).await;
    s.create("ep", "c1").await;
    s.settled("ep", EndpointStatus::InService).await;

    backend.set_start_delay(Duration::from_millis(500));
    s.update("ep", "c2", None).await;
    s.controller.delete_endpoint("ep").await.unwrap();
    eventually("the endpoint is gone", || s.routing.get("ep").is_none()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.controller.describe_endpoint("ep").await.is_ok() {
        assert!(Instant::now() < deadline, "the endpoint is still described");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Starts that were under way are stopped (or never recorded) once they finish.
    tokio::time::sleep(Duration::from_millis(700)).await;
    eventually("no instance of the deleted endpoint runs", || backend.running().is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_brings_stored_endpoints_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = FakeBackend::default();
    {
        let s = server(dir.path(), &first);
        s.model("m", "registry.example/m:1").await;
        s.config("c1", &[("A", "m", 2), ("B", "m", 1)]).await;
        s.create("ep", "c1").await;
        s.settled("ep", EndpointStatus::InService).await;
        s.controller.shutdown().await;
        assert!(first.running().is_empty(), "shutdown stops every instance");
    }
    // A new server on the same data directory: nothing runs until it recovers.
    let second = FakeBackend::default();
    let s = server(dir.path(), &second);
    assert!(s.routing.get("ep").is_none());
    s.controller.recover().await.unwrap();
    let e = s.settled("ep", EndpointStatus::InService).await;
    assert_eq!(e.config_name, "c1");
    eventually("the route is published", || s.routing.get("ep").is_some()).await;
    assert_eq!(s.routed("ep"), vec![("A".into(), 2), ("B".into(), 1)]);
    assert_eq!(second.running().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_controls_set_promote_and_roll_back_what_the_router_follows() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::default();
    let s = server(dir.path(), &backend);
    s.model("a1", "registry.example/a:1").await;
    s.model("b1", "registry.example/b:1").await;
    s.config("c1", &[("A", "a1", 1), ("B", "b1", 1)]).await;
    s.create("ep", "c1").await;
    s.settled("ep", EndpointStatus::InService).await;
    let routed = || s.routing.get("ep").unwrap().variants.iter().map(|v| (v.name.clone(), v.weight)).collect::<Vec<_>>();
    let weights = |a: f64, b: f64| vec![("A".to_string(), a), ("B".to_string(), b)];
    let control = |c: WeightControl| s.controller.control_weights("ep", c, "from a test");

    let nothing = control(WeightControl::RollBack).await.unwrap_err();
    assert!(nothing.to_string().contains("nothing to roll back"), "{nothing}");
    control(WeightControl::Set(weights(1.0, 3.0))).await.unwrap();
    assert_eq!(routed(), weights(1.0, 3.0));
    control(WeightControl::Promote("B".into())).await.unwrap();
    assert_eq!(routed(), weights(0.0, 1.0));
    let e = control(WeightControl::RollBack).await.unwrap();
    assert_eq!(routed(), weights(1.0, 3.0));
    assert_eq!(e.previous_weights, Some(weights(0.0, 1.0)), "a second roll back undoes the first");
    assert!(control(WeightControl::Promote("C".into())).await.unwrap_err().to_string().contains("no production variant C"));

    // The weights before the last change survive a restart.
    drop(s);
    let s = server(dir.path(), &backend);
    let e = s.controller.describe_endpoint("ep").await.unwrap();
    assert_eq!(e.previous_weights, Some(weights(0.0, 1.0)));
}

/// A fault of berth's own (here a panic where an instance starts) in each lifecycle step ends
/// in a reported failure: `Failed` with a `FailureReason` for a new endpoint, the old fleet
/// serving with one for an update (plain or guarded) and for scaling, and an event each time —
/// never a status left `Creating` or `Updating`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_each_lifecycle_step_ends_in_a_reported_failure() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::default();
    let s = server(dir.path(), &backend);
    s.model("good", "registry.example/good:1").await;
    s.model("later", "registry.example/later:1").await;
    s.model("faulty", "registry.example/faulty:1").await;
    s.config("good", &[("V", "good", 1)]).await;
    s.config("later", &[("V", "later", 1)]).await;
    s.config("faulty", &[("V", "faulty", 1)]).await;
    backend.panic_on_images_containing("faulty");
    let says_why = |e: &Endpoint| {
        let reason = e.failure_reason.clone().unwrap_or_default();
        assert!(
            reason.contains("berth failed while starting") && reason.contains("fake panic while starting registry.example/faulty:1"),
            "{reason}"
        );
    };

    // bring_up
    s.create("created", "faulty").await;
    says_why(&s.settled("created", EndpointStatus::Failed).await);

    // roll_out, then deploy_guarded: the old fleet keeps serving.
    s.create("updated", "good").await;
    s.settled("updated", EndpointStatus::InService).await;
    let serving = backend.running();
    s.update("updated", "faulty", None).await;
    let e = s.settled("updated", EndpointStatus::InService).await;
    says_why(&e);
    assert_eq!((e.config_name.as_str(), backend.running()), ("good", serving.clone()));
    let canary =
        BlueGreenPolicy { routing: TrafficRouting::AllAtOnce, wait_interval_secs: 0, termination_wait_secs: 0, max_execution_secs: None };
    s.update("updated", "faulty", Some(DeploymentConfig { policy: Some(UpdatePolicy::BlueGreen(canary)), rollback_alarms: vec![] })).await;
    let e = s.settled("updated", EndpointStatus::InService).await;
    says_why(&e);
    assert_eq!((e.config_name.as_str(), backend.running()), ("good", serving));

    // scale
    s.create("scaled", "later").await;
    s.settled("scaled", EndpointStatus::InService).await;
    backend.panic_on_images_containing("later");
    let more = DesiredWeightAndCapacity { variant: "V".into(), weight: None, instance_count: Some(2), serverless: None };
    s.controller.update_weights_and_capacities("scaled", vec![more]).await.unwrap();
    let e = s.settled("scaled", EndpointStatus::InService).await;
    let reason = e.failure_reason.clone().unwrap_or_default();
    assert!(reason.contains("fake panic while starting registry.example/later:1"), "{reason}");
    assert_eq!(e.variant("V").map(|v| (v.current_instance_count, v.desired_instance_count)), Some((1, 1)));

    for endpoint in ["created", "updated", "scaled"] {
        let query = EventQuery { endpoint: Some(endpoint.into()), after: None, before: None, limit: 100 };
        let events = s.controller.events(query).await.unwrap();
        assert!(events.iter().any(|e| e.event.message.contains("fake panic")), "{endpoint}: {events:?}");
    }
}

/// A step that panics in its own code (not where an instance starts, whose panics the fleet's
/// task set turns into errors) marks its endpoint `Failed`, naming what it was doing and the
/// panic, and says so in an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_panics_in_its_own_code_marks_its_endpoint_failed() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::default();
    backend.set_start_delay(Duration::from_secs(3600)); // every bring-up stays under way
    let s = server(dir.path(), &backend);
    s.model("m", "registry.example/m:1").await;
    s.config("c", &[("V", "m", 1)]).await;
    let doing = [
        ("bring_up", "starting the endpoint's instances"),
        ("roll_out", "updating the endpoint"),
        ("deploy_guarded", "deploying the update with its guardrails"),
        ("scale", "scaling the endpoint"),
        ("tear_down", "deleting the endpoint"),
    ];
    for (step, words) in doing {
        let name = step.replace('_', "-");
        s.create(&name, "c").await;
        s.controller.run_panicking_step_for_tests(&name, step, "injected fault").await.unwrap();
        let e = s.settled(&name, EndpointStatus::Failed).await;
        let reason = e.failure_reason.unwrap_or_default();
        assert!(reason.starts_with(&format!("berth failed while {words}: injected fault.")), "{step}: {reason}");
        let query = EventQuery { endpoint: Some(name.clone()), after: None, before: None, limit: 100 };
        let events = s.controller.events(query).await.unwrap();
        assert!(events.iter().any(|e| e.event.message.contains("injected fault")), "{step}: {events:?}");
    }
}

/// The controller's time is a clock tests control: a guarded update that bakes for ten minutes
/// runs on tokio's paused clock, and the stored times say ten minutes passed.
#[tokio::test(start_paused = true)]
async fn a_ten_minute_bake_runs_on_the_test_clock() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::default();
    let s = server(dir.path(), &backend);
    s.model("blue", "registry.example/m:blue").await;
    s.model("green", "registry.example/m:green").await;
    s.config("c1", &[("V", "blue", 1)]).await;
    s.config("c2", &[("V", "green", 1)]).await;
    s.create("ep", "c1").await;
    let before = s.settled("ep", EndpointStatus::InService).await.modified;
    let started = tokio::time::Instant::now();
    let bake =
        BlueGreenPolicy { routing: TrafficRouting::AllAtOnce, wait_interval_secs: 0, termination_wait_secs: 600, max_execution_secs: None };
    s.update("ep", "c2", Some(DeploymentConfig { policy: Some(UpdatePolicy::BlueGreen(bake)), rollback_alarms: vec![] })).await;
    // Polled each second of the test clock (not `settled`'s 10 ms: 60,000 reads in ten minutes).
    let e = loop {
        let e = s.controller.describe_endpoint("ep").await.unwrap();
        if e.status == EndpointStatus::InService {
            break e;
        }
        assert!(started.elapsed() < Duration::from_secs(3600), "still {:?} after an hour", e.status);
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(e.config_name, "c2");
    assert!(started.elapsed() >= Duration::from_secs(600), "the bake waited {:?} of the test clock", started.elapsed());
    assert!(e.modified.millis() - before.millis() >= 600_000, "stored times follow the clock: {:?} → {:?}", before, e.modified);
}

/// berth stopped while each step is under way (its instances still starting) and started
/// again on the same data directory carries out what was asked, from the stored state alone: a
/// create comes up, a plain and a guarded update end on the new config, a scale-out ends at
/// its new count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_each_step_converges() {
    let dir = tempfile::tempdir().unwrap();
    let first = FakeBackend::default();
    {
        let s = server(dir.path(), &first);
        s.model("m1", "registry.example/m:1").await;
        s.model("m2", "registry.example/m:2").await;
        s.config("c1", &[("V", "m1", 1)]).await;
        s.config("c2", &[("V", "m2", 1)]).await;
        for endpoint in ["rolled", "guarded", "scaled"] {
            s.create(endpoint, "c1").await;
            s.settled(endpoint, EndpointStatus::InService).await;
        }
        first.set_start_delay(Duration::from_secs(3600)); // every step below stays under way
        s.create("created", "c1").await;
        s.update("rolled", "c2", None).await;
        let bake = BlueGreenPolicy {
            routing: TrafficRouting::AllAtOnce,
            wait_interval_secs: 0,
            termination_wait_secs: 0,
            max_execution_secs: None,
        };
        s.update("guarded", "c2", Some(DeploymentConfig { policy: Some(UpdatePolicy::BlueGreen(bake)), rollback_alarms: vec![] })).await;
        let more = DesiredWeightAndCapacity { variant: "V".into(), weight: None, instance_count: Some(3), serverless: None };
        s.controller.update_weights_and_capacities("scaled", vec![more]).await.unwrap();
        for endpoint in ["created", "rolled", "guarded", "scaled"] {
            let status = s.controller.describe_endpoint(endpoint).await.unwrap().status;
            assert!(matches!(status, EndpointStatus::Creating | EndpointStatus::Updating), "{endpoint} is {status:?}");
        }
        s.controller.shutdown().await;
    }
    let second = FakeBackend::default();
    let s = server(dir.path(), &second);
    s.controller.recover().await.unwrap();
    let configs: Vec<(String, String, u32)> = {
        let mut out = Vec::new();
        for endpoint in ["created", "rolled", "guarded", "scaled"] {
            let e = s.settled(endpoint, EndpointStatus::InService).await;
            out.push((endpoint.to_string(), e.config_name.clone(), e.variant("V").unwrap().current_instance_count));
        }
        out
    };
    let want = [("created", "c1", 1), ("rolled", "c2", 1), ("guarded", "c2", 1), ("scaled", "c1", 3)];
    assert_eq!(configs, want.map(|(e, c, n)| (e.to_string(), c.to_string(), n)).to_vec());
    eventually("every endpoint's instances run", || second.running().len() == 6).await;
}
