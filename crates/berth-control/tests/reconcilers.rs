//! The reconcilers act on the stored state alone: a change committed to the store and never
//! handed to them (made by another server sharing the store, or cut short by a crash between
//! the commit and the hand-over) is carried out by the next resync; transform jobs under way
//! when berth stopped run again, and one stopping is recorded stopped. On tokio's paused clock.

mod support;

use berth_control::ControllerSettings;
use berth_domain::{Endpoint, EndpointStatus, TransformJob, TransformJobStatus};
use berth_instances::{AllowedRoots, FakeBackend, FakeCall};
use berth_store::{Resources, SqliteStore, StateStore};
use std::time::Duration;
use support::{eventually, server, server_with};

/// The store as another server sharing it sees it.
fn other_server_store(dir: &std::path::Path) -> SqliteStore {
    SqliteStore::open(&dir.join("state.db")).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_change_committed_elsewhere_is_carried_out_by_the_resync() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FakeBackend::default();
    let s = server(dir.path(), &backend);
    s.controller.recover().await.unwrap(); // nothing to recover; resyncs run from now on
    s.model("m", "registry.example/m:1").await;
    s.config("c", &[("V", "m", 1)]).await;
    for endpoint in ["scaled", "deleted"] {
        s.create(endpoint, "c").await;
        s.settled(endpoint, EndpointStatus::InService).await;
    }
    assert_eq!(backend.running().len(), 2);

    let other = other_server_store(dir.path());
    let mut scaled = other.get::<Endpoint>("scaled").unwrap().unwrap();
    scaled.status = EndpointStatus::Updating;
    scaled.variants[0].desired_instance_count = 3;
    other.update(&scaled).unwrap();
    let mut deleted = other.get::<Endpoint>("deleted").unwrap().unwrap();
    deleted.status = EndpointStatus::Deleting;
    other.update(&deleted).unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(s.controller.describe_endpoint("scaled").await.unwrap().status, EndpointStatus::Updating, "nobody told this server");

    s.controller.resync().await.unwrap();
    let e = s.settled("scaled", EndpointStatus::InService).await;
    assert_eq!(e.variant("V").unwrap().current_instance_count, 3);
    // The route follows the stored status within the commit (the store is written first).
    eventually("the scaled endpoint's route has its three instances", || s.routed("scaled") == vec![("V".to_string(), 3)]).await;
    eventually("the deleted endpoint is gone", || other.get::<Endpoint>("deleted").unwrap().is_none()).await;
    assert!(s.routing.get("deleted").is_none(), "its route is withdrawn");
    eventually("its instance stopped and the scaled one's three run", || backend.running().len() == 3).await;
    // At rest, a resync changes nothing.
    let calls = backend.calls().len();
    s.controller.resync().await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(backend.calls().len(), calls, "no step for endpoints at rest");
}

fn job(name: &str, input: &str, output: &str) -> TransformJob {
    let job = TransformJob::new(name, "m", input, output, "ml.m5.large", 1);
    TransformJob { content_type: Some("text/csv".into()), split_lines: true, max_retries: Some(0), ..job }
}

/// A data directory under `dir` with one input object, readable as a file root: the settings
/// that allow it, and the job's input and output locations.
fn transform_data(dir: &std::path::Path) -> (ControllerSettings, String, String) {
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("in")).unwrap();
    std::fs::write(data.join("in/rows.csv"), "1,2\n3,4\n").unwrap();
    let settings = ControllerSettings {
        file_roots: AllowedRoots::new(std::slice::from_ref(&data), "--file-root").unwrap(),
        ..ControllerSettings::for_tests(dir)
    };
    (settings, format!("file://{}/in", data.display()), format!("file://{}/out", data.display()))
}

#[tokio::test(start_paused = true)]
async fn transform_jobs_under_way_at_a_restart_run_again_and_stopping_ones_end_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, input, output) = transform_data(dir.path());
    {
        let first = FakeBackend::default();
        first.set_start_delay(Duration::from_secs(3600)); // both jobs stay under way
        let s = server_with(dir.path(), &first, settings.clone());
        s.model("m", "registry.example/m:1").await;
        for name in ["running", "stopping"] {
            s.controller.create_transform_job(job(name, &input, &output), vec![]).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        for name in ["running", "stopping"] {
            let j = s.controller.describe_transform_job(name).await.unwrap();
            assert!(j.status == TransformJobStatus::InProgress && j.started.is_some(), "{name}: {j:?}");
        }
        // The stop of the second is committed, and berth is gone before it acts on it.
        let other = other_server_store(dir.path());
        let mut stopping = s.controller.describe_transform_job("stopping").await.unwrap();
        stopping.status = TransformJobStatus::Stopping;
        let body = serde_json::to_string(&stopping).unwrap();
        other.put_records("transform-job", &[("stopping".into(), stopping.created.millis(), body)]).unwrap();
        s.controller.shutdown().await;
    }
    let second = FakeBackend::default();
    let s = server_with(dir.path(), &second, settings);
    s.controller.recover().await.unwrap();
    let started = |b: &FakeBackend| b.calls().iter().filter(|c| matches!(c, FakeCall::Started { .. })).count();
    eventually("the job under way starts its instance again", || started(&second) == 1).await;
    let stopped = s.controller.describe_transform_job("stopping").await.unwrap();
    assert_eq!(stopped.status, TransformJobStatus::Stopped);
    assert!(stopped.ended.is_some());
    // The job that runs again ends (the fake instance answers nothing: Failed), once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let ended = loop {
        let j = s.controller.describe_transform_job("running").await.unwrap();
        if j.status.ended() {
            break j;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {:?}", j.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ended.status, TransformJobStatus::Failed, "{:?}", ended.failure_reason);
    s.controller.resync().await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(started(&second), 1, "an ended job does not run again");
}

/// A transform job whose instance cannot start, and one whose start panics inside berth, end
/// `Failed` with the reason (and stop nothing they did not start); neither runs again.
#[tokio::test(start_paused = true)]
async fn transform_jobs_whose_instances_fail_or_panic_end_failed_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, input, output) = transform_data(dir.path());
    let backend = FakeBackend::default();
    backend.fail_images_containing("broken");
    backend.panic_on_images_containing("faulty");
    let s = server_with(dir.path(), &backend, settings);
    s.controller.recover().await.unwrap();
    for (model, image) in [("broken", "registry.example/broken:1"), ("faulty", "registry.example/faulty:1")] {
        s.model(model, image).await;
        let j = TransformJob { model_name: model.into(), ..job(model, &input, &output) };
        s.controller.create_transform_job(j, vec![]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let broken = s.controller.describe_transform_job("broken").await.unwrap();
    assert_eq!(broken.status, TransformJobStatus::Failed);
    assert!(broken.failure_reason.as_deref().unwrap_or_default().contains("fake failure"), "{broken:?}");
    let faulty = s.controller.describe_transform_job("faulty").await.unwrap();
    assert_eq!(faulty.status, TransformJobStatus::Failed);
    assert!(faulty.failure_reason.as_deref().unwrap_or_default().contains("fake panic"), "{faulty:?}");
    s.controller.resync().await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(backend.calls().is_empty(), "nothing started, nothing to stop: {:?}", backend.calls());
}
