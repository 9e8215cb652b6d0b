//! One instance's pods: berth's supervisor starts, watches, restarts and stops the instance as
//! on every backend; each start is a new pod (restartPolicy Never), so a restart after an
//! eviction or a lost node lands wherever the scheduler finds room.

use crate::containers::{PodSettings, CONTAINER_PORT, FETCH_CONTAINER, SERVE_CONTAINER};
use crate::pod;
use crate::pods::PodWatch;
use crate::status::{failed_init_container, pod_state, PodState};
use berth_instances::{out_of_memory_reason, InstanceEvent, InstanceLog, InstanceSlot, InstanceSpec, Runner};
use futures_util::AsyncReadExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, LogParams, PostParams};
use kube::Api;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub(crate) struct PodRunner {
    pub(crate) api: Api<Pod>,
    pub(crate) pods: Arc<PodWatch>,
    pub(crate) spec: InstanceSpec,
    pub(crate) settings: Arc<PodSettings>,
    pub(crate) log: InstanceLog,
    /// A running pod a berth that ran before left, taken over by the first launch.
    pub(crate) adopted: Option<String>,
    /// Set when berth stops (or stops leading): its pods keep serving, for the next to adopt.
    pub(crate) detaching: Arc<AtomicBool>,
    /// The pod of the latest start.
    pub(crate) current: Option<String>,
    /// Whether the latest exit was the kernel's kill for the memory limit (not yet told).
    pub(crate) out_of_memory: bool,
}

/// One start: its pod, and the copy of its output into the instance's log.
pub(crate) struct PodRun {
    name: String,
    output: Option<JoinHandle<()>>,
}

impl PodRunner {
    fn tell(&self, event: InstanceEvent) {
        if let Some(observer) = &self.spec.observer {
            observer(&self.spec.id, event);
        }
    }

    async fn delete(&self, name: &str, grace_secs: u32) {
        let params = DeleteParams { grace_period_seconds: Some(grace_secs), ..DeleteParams::default() };
        match self.api.delete(name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => tracing::warn!(instance = %self.spec.id, pod = name, error = %e, "cannot delete the instance's pod"),
        }
    }

    /// The last lines the failed init container wrote (why the model data could not be fetched,
    /// or the Python environment made).
    async fn init_log(&self, name: &str) -> String {
        let failed = self.pods.get(name).as_ref().and_then(failed_init_container);
        let params =
            LogParams { container: Some(failed.unwrap_or_else(|| FETCH_CONTAINER.into())), tail_lines: Some(5), ..LogParams::default() };
        match self.api.logs(name, &params).await {
            Ok(text) if !text.trim().is_empty() => {
                format!(" Last lines of its log: {}", text.trim().lines().collect::<Vec<_>>().join(" | "))
            }
            _ => String::new(),
        }
    }

    /// Copies the serving container's output into the instance's log while it runs.
    fn follow_output(&self, name: &str) -> JoinHandle<()> {
        let (api, name, log) = (self.api.clone(), name.to_string(), self.log.clone());
        tokio::spawn(async move {
            let params = LogParams { container: Some(SERVE_CONTAINER.into()), follow: true, ..LogParams::default() };
            let Ok(mut stream) = api.log_stream(&name, &params).await else { return };
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                log.write(&buf[..n]);
            }
        })
    }
}

impl Runner for PodRunner {
    type Running = PodRun;

    async fn launch(&mut self, slot: &InstanceSlot, attempt: u32) -> Result<PodRun, String> {
        // The pod of the start before (it crashed or was evicted) goes before the next is made.
        if let Some(ended) = self.current.take() {
            self.delete(&ended, 0).await;
        }
        let name = match self.adopted.take() {
            Some(name) => {
                self.log.note(&format!("---- berth: adopted the running pod {name} ----"));
                name
            }
            None => {
                let pod = pod::instance_pod(&self.spec, attempt, &self.settings)?;
                let name = pod.metadata.name.clone().unwrap_or_default();
                self.log.note(&format!("---- berth: starting instance {} (attempt {attempt}) in pod {name} ----", self.spec.id));
                self.api.create(&PostParams::default(), &pod).await.map_err(|e| format!("cannot create pod {name}: {}", api_error(&e)))?;
                name
            }
        };
        self.current = Some(name.clone());
        // The image pull and the model download count against the startup timeout, as on SageMaker.
        let deadline = Instant::now() + self.spec.startup_timeout;
        let mut changes = self.pods.changes();
        let (mut seen, mut said) = (false, None::<String>);
        loop {
            match self.pods.get(&name).as_ref().map(pod_state) {
                Some(PodState::Running { ip }) => {
                    slot.set_host(ip);
                    slot.set_port(CONTAINER_PORT);
                    slot.set_pid(None);
                    return Ok(PodRun { output: Some(self.follow_output(&name)), name });
                }
                // Already over: `exited` says how.
                Some(PodState::Ended { .. }) => return Ok(PodRun { name, output: None }),
                Some(PodState::CannotStart(reason)) => {
                    let log = self.init_log(&name).await;
                    self.delete(&name, 0).await;
                    return Err(format!("{reason}.{log}"));
                }
                Some(PodState::Waiting { why }) => {
                    seen = true;
                    if why.is_some() && why != said {
                        let step = why.clone().unwrap_or_default();
                        self.log.note(&format!("---- berth: pod {name}: {step} ----"));
                        self.tell(InstanceEvent::Preparing { step });
                        said = why;
                    }
                }
                None if seen => return Err(format!("its pod {name} was deleted before it started")),
                None => {}
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    self.delete(&name, 0).await;
                    return Err(match said {
                        Some(why) => format!("{why} (for {} seconds, the container's startup timeout)", self.spec.startup_timeout.as_secs()),
                        None => format!("its pod {name} did not start within {} seconds", self.spec.startup_timeout.as_secs()),
                    });
                }
            }
        }
    }

    async fn exited(&mut self, run: &mut PodRun) -> String {
        let mut changes = self.pods.changes();
        loop {
            match self.pods.get(&run.name).as_ref().map(pod_state) {
                Some(PodState::Ended { status, out_of_memory }) => {
                    self.out_of_memory = out_of_memory;
                    if let Some(output) = &mut run.output {
                        let _ = tokio::time::timeout(Duration::from_secs(2), output).await;
                    }
                    return status;
                }
                None => return format!("its pod {} was deleted", run.name),
                _ => {}
            }
            if changes.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    async fn kill(&mut self, run: &PodRun) {
        self.delete(&run.name, 0).await;
    }

    async fn terminate(&mut self, mut run: PodRun, grace: Duration) {
        if !self.detaching.load(Ordering::SeqCst) {
            self.delete(&run.name, u32::try_from(grace.as_secs()).unwrap_or(u32::MAX)).await;
            let mut changes = self.pods.changes();
            let gone = async {
                while self.pods.get(&run.name).is_some() {
                    if changes.changed().await.is_err() {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(grace + Duration::from_secs(5), gone).await;
        }
        if let Some(output) = run.output.take() {
            output.abort();
        }
    }

    async fn out_of_memory(&mut self, slot: &InstanceSlot) -> String {
        if !std::mem::take(&mut self.out_of_memory) {
            return String::new();
        }
        slot.set_oom_kills(slot.oom_kills() + 1);
        let memory = self.settings_memory_bytes();
        out_of_memory_reason(memory, &self.spec)
    }

    async fn finish(self) {
        if let Some(name) = self.current.as_deref().filter(|_| !self.detaching.load(Ordering::SeqCst)) {
            self.delete(name, 0).await;
        }
    }
}

impl PodRunner {
    fn settings_memory_bytes(&self) -> u64 {
        pod::size(&self.spec).1 * 1024 * 1024
    }
}

/// What the API server said, without the client's wrapping.
pub(crate) fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({} {})", status.message, status.code, status.reason),
        other => other.to_string(),
    }
}
