//! berth's view of its pods: one watch of the namespace's pods with its server label, kept as a
//! map by name. kube-rs' watcher lists, then watches from the list's resourceVersion, and lists
//! again when the API server says the version is gone (410); every change wakes the instances
//! waiting on their pod.

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch as signal;

pub(crate) struct PodWatch {
    pods: Mutex<HashMap<String, Pod>>,
    /// Counts changes; each instance's runner waits on it for its own pod.
    changed: signal::Sender<u64>,
    /// Whether the first list has arrived (until then no pod is known to be gone).
    synced: signal::Sender<bool>,
}

impl PodWatch {
    /// Starts watching the pods of `api` with labels `selector`; the watch ends with the task.
    pub(crate) fn start(api: Api<Pod>, selector: String) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let watch = Arc::new(PodWatch { pods: Mutex::default(), changed: signal::channel(0).0, synced: signal::channel(false).0 });
        let watching = watch.clone();
        let task = tokio::spawn(async move {
            let config = watcher::Config::default().labels(&selector);
            let mut events = watcher::watcher(api, config).default_backoff().boxed();
            let mut listing: Option<HashMap<String, Pod>> = None;
            while let Some(event) = events.next().await {
                match event {
                    Ok(Event::Init) => listing = Some(HashMap::new()),
                    Ok(Event::InitApply(pod)) => {
                        if let (Some(list), Some(name)) = (listing.as_mut(), pod.metadata.name.clone()) {
                            list.insert(name, pod);
                        }
                    }
                    Ok(Event::InitDone) => {
                        if let Some(list) = listing.take() {
                            tracing::debug!(pods = list.len(), "listed berth's pods");
                            *watching.lock() = list;
                            watching.synced.send_replace(true);
                            watching.bump();
                        }
                    }
                    Ok(Event::Apply(pod)) => {
                        if let Some(name) = pod.metadata.name.clone() {
                            watching.lock().insert(name, pod);
                            watching.bump();
                        }
                    }
                    Ok(Event::Delete(pod)) => {
                        if let Some(name) = &pod.metadata.name {
                            watching.lock().remove(name);
                            watching.bump();
                        }
                    }
                    // The watcher lists again by itself (with backoff); say why.
                    Err(e) => tracing::warn!(error = %e, "watching berth's pods failed; listing them again"),
                }
            }
        });
        (watch, task)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pod>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// The pod as last seen, or None when it is not (or no longer) there.
    pub(crate) fn get(&self, name: &str) -> Option<Pod> {
        self.lock().get(name).cloned()
    }

    /// Every pod as last seen.
    pub(crate) fn all(&self) -> Vec<Pod> {
        self.lock().values().cloned().collect()
    }

    /// A receiver that wakes on every change.
    pub(crate) fn changes(&self) -> signal::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Resolves once the first list has arrived.
    pub(crate) async fn synced(&self) {
        let mut synced = self.synced.subscribe();
        let _ = synced.wait_for(|s| *s).await;
    }
}
