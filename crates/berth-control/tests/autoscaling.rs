//! The autoscaler on tokio's paused clock: a target tracking policy scales an endpoint out,
//! waits out its ten-minute cooldown (in milliseconds of the test's time), then scales again;
//! each change is carried out by the endpoint's reconciler on the fake backend and recorded as
//! an activity that ends `Successful`.

mod support;

use berth_control::{canonical_dimensions, RegisterScalableTarget};
use berth_domain::{ActivityStatus, EndpointStatus, PolicyConfig, TargetTracking, TrackedMetric};
use berth_instances::FakeBackend;
use berth_store::CustomDatapoint;
use std::time::Duration;
use support::{server, Server};

const RESOURCE: &str = "endpoint/ep/variant/V";
const WINDOW_SECS: u64 = 60;

/// The custom metric the policy tracks, as PutMetricData would store it, a second ago.
async fn load(s: &Server, value: f64) {
    let ts = (s.controller.now().millis() / 1000) as u64 - 1;
    let point = CustomDatapoint {
        namespace: "Test".into(),
        metric_name: "QueueDepthPerInstance".into(),
        dimensions: canonical_dimensions(&[]),
        ts,
        unit: "Count".into(),
        sample_count: 1.0,
        sum: value,
        minimum: value,
        maximum: value,
    };
    s.controller.put_custom_datapoints(vec![point]).await.unwrap();
}

async fn autoscale(s: &Server) {
    s.controller.run_autoscaling(s.controller.now(), WINDOW_SECS).await.unwrap();
}

async fn instances(s: &Server) -> u32 {
    let e = s.settled("ep", EndpointStatus::InService).await;
    e.variant("V").unwrap().current_instance_count
}

#[tokio::test(start_paused = true)]
async fn a_ten_minute_cooldown_holds_the_next_scale_out_on_the_test_clock() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::default();
    let s = server(dir.path(), &backend);
    s.controller.recover().await.unwrap();
    s.model("m", "registry.example/m:1").await;
    s.config("c", &[("V", "m", 1)]).await;
    s.create("ep", "c").await;
    s.settled("ep", EndpointStatus::InService).await;
    let target = RegisterScalableTarget { resource_id: RESOURCE.into(), min: Some(1), max: Some(8), role_arn: None, suspended: None };
    s.controller.register_scalable_target(target).await.unwrap();
    let metric = TrackedMetric::Custom {
        namespace: "Test".into(),
        metric_name: "QueueDepthPerInstance".into(),
        dimensions: vec![],
        statistic: "Average".into(),
    };
    let tracking =
        TargetTracking { target: 10.0, metric, scale_out_cooldown_secs: 600, scale_in_cooldown_secs: 600, disable_scale_in: true };
    s.controller.put_scaling_policy("depth", RESOURCE, PolicyConfig::TargetTracking(tracking)).await.unwrap();

    load(&s, 20.0).await; // twice the target on one instance: two
    autoscale(&s).await;
    assert_eq!(instances(&s).await, 2);
    tokio::time::advance(Duration::from_secs(60)).await;
    load(&s, 20.0).await; // still twice the target, now on two: four — but a minute is no cooldown
    autoscale(&s).await;
    assert_eq!(instances(&s).await, 2, "held by the cooldown");
    let activities = s.controller.scaling_activities().await.unwrap();
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0].status, ActivityStatus::Successful, "the first change was carried out");

    tokio::time::advance(Duration::from_secs(541)).await; // ten minutes and a second since the first
    load(&s, 20.0).await;
    autoscale(&s).await;
    assert_eq!(instances(&s).await, 4);
    assert_eq!(backend.running().len(), 4);
    let activities = s.controller.scaling_activities().await.unwrap();
    assert_eq!(activities.len(), 2, "{activities:?}");
}
