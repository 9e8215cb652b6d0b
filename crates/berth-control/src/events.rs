//! The event log: what happened to each endpoint, recorded in the state store for people to
//! read (the dashboard, `berth events`). Recording never waits for the disk: events go through
//! a channel to one writer thread, which stores them in order, in batches.

use crate::{ControlError, Controller};
use berth_domain::{Endpoint, Event, EventKind, NewEvent, Timestamp};
use berth_instances::{InstanceEvent, InstanceObserver};
use berth_store::{EventQuery, StateStore};
use std::sync::mpsc;
use std::sync::Arc;

enum Message {
    Event(NewEvent),
    /// Answered once every event sent before it is stored.
    Flush(mpsc::Sender<()>),
}

pub(crate) struct EventLog {
    tx: mpsc::Sender<Message>,
}

impl EventLog {
    /// Starts the writer thread; it ends when the log is dropped.
    pub(crate) fn start(store: Arc<dyn StateStore>) -> EventLog {
        let (tx, rx) = mpsc::channel::<Message>();
        let spawned = std::thread::Builder::new().name("berth-events".into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = Vec::new();
                let mut flushes = Vec::new();
                for message in std::iter::once(first).chain(rx.try_iter()) {
                    match message {
                        Message::Event(e) => batch.push(e),
                        Message::Flush(done) => flushes.push(done),
                    }
                }
                if !batch.is_empty() {
                    if let Err(e) = store.append_events(&batch) {
                        tracing::warn!(error = %e, lost = batch.len(), "cannot store events");
                    }
                }
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the event writer; events will not be recorded");
        }
        EventLog { tx }
    }

    pub(crate) fn record(&self, event: NewEvent) {
        tracing::debug!(endpoint = %event.endpoint, kind = event.kind.as_str(), message = %event.message, "event");
        let _ = self.tx.send(Message::Event(event));
    }

    /// Waits until every event recorded so far is stored.
    pub(crate) async fn flush(&self) {
        let (done_tx, done_rx) = mpsc::channel();
        if self.tx.send(Message::Flush(done_tx)).is_ok() {
            let _ = tokio::task::spawn_blocking(move || done_rx.recv()).await;
        }
    }
}

impl Controller {
    /// Records an event about an endpoint (or one of its variants).
    pub fn record_event(&self, endpoint: &str, variant: Option<&str>, kind: EventKind, message: impl Into<String>) {
        self.events.record(NewEvent::new(endpoint, variant, kind, self.redact(&message.into())));
    }

    /// Records an endpoint's current status (and failure reason) as a `StatusChanged` event.
    pub(crate) fn record_status(&self, endpoint: &Endpoint, why: &str) {
        let mut message = format!("Status is {}", endpoint.status.as_str());
        if !why.is_empty() {
            message = format!("{message}: {why}");
        }
        if let Some(reason) = &endpoint.failure_reason {
            message = format!("{message} (FailureReason: {reason})");
        }
        self.record_event(&endpoint.name, None, EventKind::StatusChanged, message);
    }

    /// Events, newest first.
    pub async fn events(&self, query: EventQuery) -> Result<Vec<Event>, ControlError> {
        self.events.flush().await;
        self.db(move |s| s.events(&query)).await
    }

    pub async fn prune_events(&self, before: Timestamp) -> Result<usize, ControlError> {
        self.db(move |s| s.prune_events(before)).await
    }

    /// What the instances of an endpoint variant report, turned into events.
    pub(crate) fn instance_observer(self: &Arc<Self>, endpoint: &str, variant: &str) -> InstanceObserver {
        let controller = Arc::downgrade(self);
        let (endpoint, variant) = (endpoint.to_string(), variant.to_string());
        Arc::new(move |id: &str, event: InstanceEvent| {
            let Some(controller) = controller.upgrade() else { return };
            let short = id.rsplit('/').next().unwrap_or(id);
            let (kind, message) = match event {
                InstanceEvent::Started { pid, port } => {
                    (EventKind::InstanceStarted, format!("Instance {short} is healthy (pid {pid}, port {port})"))
                }
                InstanceEvent::Crashed { status } => {
                    (EventKind::InstanceCrashed, format!("Instance {short} exited ({status}); restarting it"))
                }
                InstanceEvent::Unhealthy { failed_checks } => {
                    (EventKind::InstanceUnhealthy, format!("Instance {short} failed {failed_checks} health checks in a row; killing it"))
                }
                InstanceEvent::Restarted { attempt } => {
                    (EventKind::InstanceRestarted, format!("Instance {short} restarted and healthy (start attempt {attempt})"))
                }
                InstanceEvent::RestartFailed { reason } => {
                    (EventKind::InstanceCrashed, format!("Instance {short} could not be restarted; retrying: {reason}"))
                }
                InstanceEvent::Stopped => (EventKind::InstanceStopped, format!("Instance {short} stopped")),
                InstanceEvent::Preparing { step } => (EventKind::DeploymentStep, format!("Instance {short}: {step}")),
            };
            controller.record_event(&endpoint, Some(&variant), kind, message);
        })
    }
}
