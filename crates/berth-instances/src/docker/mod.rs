//! Container images as Docker containers, through the Docker Engine API (`bollard`).
//!
//! Each instance is one container run as SageMaker runs it: `IMAGE serve`, the model data
//! mounted read-only at `/opt/ml/model`, the container definition's `Environment`, the instance
//! type's memory and vCPUs as its limits. Every container serves on its own port 8080: berth
//! reaches it on the loopback of the container's own network namespace (sockets made inside
//! that namespace, see `netns.rs`), never on a bridge address. Containers carry labels naming
//! the server, endpoint, variant and instance, so a restarted server removes what a killed one
//! left.

use crate::error::SettingError;
use crate::log::InstanceLog;
use crate::netns::NetNamespace;
use crate::supervisor::{out_of_memory_reason, start_supervised, Runner, SupervisorSettings};
use crate::{BoxFuture, Instance, InstanceBackend, InstanceBudget, InstanceError, InstanceSlot, InstanceSpec};
use berth_domain::Image;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

mod adoption;

/// The port SageMaker's container contract serves on, inside each container.
const CONTAINER_PORT: u16 = 8080;
/// Where SageMaker mounts the model data.
const MODEL_MOUNT: &str = "/opt/ml/model";
/// Most processes (and threads) one container may have.
const PIDS_LIMIT: i64 = 8192;
const LABEL_SERVER: &str = "berth.server";
const LABEL_ENDPOINT: &str = "berth.endpoint";
const LABEL_VARIANT: &str = "berth.variant";
const LABEL_INSTANCE: &str = "berth.instance";
/// The cluster of servers sharing a store, when this server is one of them.
const LABEL_CLUSTER: &str = "berth.cluster";
/// What the container runs (image, environment, model data, limits): an adopted container must
/// run what the new instance would.
const LABEL_SPEC: &str = "berth.spec";

/// Which Docker engine berth uses (`--docker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerEngine {
    /// Container images are not run.
    Off,
    /// `DOCKER_HOST`, else the engine's default unix socket.
    Auto,
    /// `unix:///path`, `tcp://host:port` or `http://host:port`.
    Url(String),
}

impl DockerEngine {
    pub fn parse(value: &str) -> Result<Self, SettingError> {
        match value {
            "off" => Ok(DockerEngine::Off),
            "auto" => Ok(DockerEngine::Auto),
            url if ["unix://", "tcp://", "http://"].iter().any(|p| url.starts_with(p)) => Ok(DockerEngine::Url(url.to_string())),
            other => Err(SettingError(format!(
                "--docker takes off, auto or an engine URL (unix:///var/run/docker.sock, tcp://host:2375), not {other:?}"
            ))),
        }
    }

    /// Where berth looks for the engine, in words for a failure reason.
    pub fn describe(&self) -> String {
        match self {
            DockerEngine::Off => "nowhere (--docker off)".into(),
            DockerEngine::Auto => match std::env::var("DOCKER_HOST") {
                Ok(host) => format!("{host} (DOCKER_HOST)"),
                Err(_) => "unix:///var/run/docker.sock (the default; set DOCKER_HOST or --docker URL)".into(),
            },
            DockerEngine::Url(url) => format!("{url} (--docker)"),
        }
    }
}

/// Runs container images as Docker containers.
pub struct DockerBackend {
    engine: DockerEngine,
    /// The negotiated client, once the engine has answered.
    client: Mutex<Option<Docker>>,
    /// This server's label value: a hash of its data directory.
    server: String,
    /// Whether an image the engine lacks is pulled (`--docker-pull missing`).
    pull_missing: bool,
    settings: SupervisorSettings,
    budget: InstanceBudget,
    /// berth's data directory (where multi-model containers' staged models are).
    data_dir: std::path::PathBuf,
    /// The cluster this server belongs to, once it has joined one.
    cluster: std::sync::OnceLock<String>,
    /// Running containers a server of the cluster that no longer leads left, which instances
    /// this server starts take over rather than start their own.
    adoptable: std::sync::Mutex<Vec<adoption::Leftover>>,
}

impl DockerBackend {
    /// `data_dir` names this server: containers a killed server on the same directory left
    /// are removed by [`DockerBackend::remove_leftovers`]. With `pull_missing`, an image the
    /// engine lacks is pulled from its registry.
    pub fn new(
        engine: DockerEngine,
        pull_missing: bool,
        data_dir: &std::path::Path,
        settings: SupervisorSettings,
        budget: InstanceBudget,
    ) -> Self {
        let server = format!("{:016x}", crate::stable_hash(&data_dir.display().to_string()));
        DockerBackend {
            engine,
            client: Mutex::new(None),
            server,
            pull_missing,
            settings,
            budget,
            data_dir: data_dir.to_path_buf(),
            cluster: std::sync::OnceLock::new(),
            adoptable: Default::default(),
        }
    }

    /// The engine's client, connecting (and negotiating the API version) on first use.
    async fn client(&self) -> Result<Docker, String> {
        let mut client = self.client.lock().await;
        if let Some(c) = client.as_ref() {
            return Ok(c.clone());
        }
        let unreachable = |e: &dyn std::fmt::Display| format!("the Docker engine is not reachable at {}: {e}", self.engine.describe());
        let connected = match &self.engine {
            DockerEngine::Off => return Err("berth runs no container images on this server (--docker off)".into()),
            DockerEngine::Auto => Docker::connect_with_defaults(),
            DockerEngine::Url(url) => Docker::connect_with_host(&url.replacen("tcp://", "http://", 1)),
        }
        .map_err(|e| unreachable(&e))?;
        let negotiated = tokio::time::timeout(Duration::from_secs(10), connected.negotiate_version())
            .await
            .map_err(|_| unreachable(&"no answer within 10 seconds"))?
            .map_err(|e| unreachable(&e))?;
        *client = Some(negotiated.clone());
        Ok(negotiated)
    }

    /// Whether the engine holds an image of exactly this reference (false when it is off or
    /// cannot be reached).
    pub async fn has_image(&self, reference: &str) -> bool {
        match self.client().await {
            Ok(docker) => docker.inspect_image(reference).await.is_ok(),
            Err(_) => false,
        }
    }

    /// Removes every container of this server's data directory: at start, what a killed server
    /// left; at shutdown, anything still there. Quiet when the engine is off or not reachable.
    pub async fn remove_leftovers(&self) -> usize {
        let Ok(docker) = self.client().await else { return 0 };
        let filters = HashMap::from([("label", vec![format!("{LABEL_SERVER}={}", self.server)])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let Ok(containers) = docker.list_containers(Some(options)).await else { return 0 };
        let mut removed = 0;
        for id in containers.into_iter().filter_map(|c| c.id) {
            if docker.remove_container(&id, Some(RemoveContainerOptionsBuilder::default().force(true).build())).await.is_ok() {
                removed += 1;
            }
        }
        // Their staged models go with them.
        let _ = tokio::fs::remove_dir_all(crate::staged_models_dir(&self.data_dir, "")).await;
        removed
    }

    /// Labels the containers this server makes from now on as its cluster's (`name`: the
    /// cluster's own, from its store).
    pub fn join_cluster(&self, name: &str) {
        let _ = self.cluster.set(name.to_string());
    }

    /// The image's digest as SageMaker shows it (`repository@sha256:…`), pulling the image
    /// when the engine does not have it (for at most `pull_timeout`).
    async fn resolve(&self, docker: &Docker, reference: &str, pull_timeout: Duration) -> Result<String, String> {
        let inspected = match docker.inspect_image(reference).await {
            Ok(image) => image,
            Err(DockerError::DockerResponseServerError { status_code: 404, .. }) if !self.pull_missing => {
                return Err(format!(
                    "Image {reference} is not on this machine's Docker engine ({}), and berth pulls no images (--docker-pull never). \
                     Build it there with `docker build -t {reference} .` or load it with `docker load`, or start berth with \
                     --docker-pull missing, then create the endpoint again.",
                    self.engine.describe()
                ))
            }
            Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {
                let pulled = pull(docker, reference, pull_timeout).await;
                match (pulled, docker.inspect_image(reference).await) {
                    (Ok(()), Ok(image)) => image,
                    (Err(e), _) | (Ok(()), Err(DockerError::DockerResponseServerError { message: e, .. })) => {
                        return Err(format!(
                            "Image {reference} is not on this machine's Docker engine ({}) and could not be pulled: {e}. \
                             Build it there with `docker build -t {reference} .` or load it with `docker load`, then create the endpoint again.",
                            self.engine.describe()
                        ))
                    }
                    (Ok(()), Err(e)) => return Err(format!("cannot inspect image {reference}: {e}")),
                }
            }
            Err(e) => return Err(format!("cannot inspect image {reference}: {e}")),
        };
        let repository = reference.split('@').next().unwrap_or(reference);
        let repository = match repository.rfind(':') {
            Some(i) if !repository[i..].contains('/') => &repository[..i],
            _ => repository,
        };
        let digest = inspected
            .repo_digests
            .unwrap_or_default()
            .into_iter()
            .find(|d| d.split('@').next() == Some(repository))
            .or_else(|| inspected.id.map(|id| format!("{repository}@{id}")));
        Ok(digest.unwrap_or_else(|| reference.to_string()))
    }

    /// Creates the instance's container (not started).
    async fn create(&self, docker: &Docker, spec: &InstanceSpec, reference: &str, digest: Option<&str>) -> Result<String, String> {
        let name = format!("berth-{}-{}", &self.server[..8], spec.id.replace('/', "-"));
        // berth's variables win over the container definition's.
        let mut environment = spec.environment.clone();
        environment.extend(spec.berth_environment.clone());
        let mut labels = HashMap::from([
            (LABEL_SERVER.to_string(), self.server.clone()),
            (LABEL_ENDPOINT.to_string(), spec.endpoint.clone()),
            (LABEL_VARIANT.to_string(), spec.variant.clone()),
            (LABEL_INSTANCE.to_string(), spec.id.clone()),
        ]);
        if let Some(cluster) = self.cluster.get() {
            labels.insert(LABEL_CLUSTER.to_string(), cluster.clone());
        }
        if let Some(digest) = digest {
            labels.insert(LABEL_SPEC.to_string(), digest.to_string());
        }
        let memory = spec.memory_limit_bytes.and_then(|b| i64::try_from(b).ok());
        let mut binds = vec![format!("{}:{MODEL_MOUNT}:ro", spec.model_dir.path().display())];
        if let Some(staged) = &spec.staged_models {
            crate::private_dir(staged).map_err(|e| format!("cannot make {}: {e}", staged.display()))?;
            binds.push(format!("{}:{}:ro", staged.display(), crate::STAGED_MODELS_MOUNT));
        }
        let host_config = HostConfig {
            binds: Some(binds),
            memory,
            // No swap past the memory limit: going past it is an OOM kill, as on SageMaker.
            memory_swap: memory,
            nano_cpus: spec.cpus.map(|c| i64::from(c) * 1_000_000_000),
            // Isolated models get no network at all; others the engine's default network, which
            // berth itself never sends traffic to (it reaches each container on its loopback).
            network_mode: spec.network_isolation.then(|| "none".to_string()),
            security_opt: Some(vec!["no-new-privileges".into()]),
            // A fork bomb in a model cannot take the machine's process table.
            pids_limit: Some(PIDS_LIMIT),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(reference.to_string()),
            cmd: Some(vec!["serve".into()]),
            env: Some(environment.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = docker.create_container(Some(options), body).await.map_err(|e| format!("cannot create container {name}: {e}"))?;
        Ok(created.id)
    }
}

impl InstanceBackend for DockerBackend {
    fn start(&self, spec: InstanceSpec) -> BoxFuture<'_, Result<Instance, InstanceError>> {
        Box::pin(async move {
            let Image::Container(reference) = &spec.image else {
                return Err(InstanceError::Image(format!("{} is not a container image", spec.id)));
            };
            let reference = reference.clone();
            let failed = |reason: String| InstanceError::Image(format!("Cannot run image {reference}: {reason}"));
            let alive = self.budget.admit()?;
            let docker = self.client().await.map_err(failed)?;
            // A pull counts against the startup timeout, as SageMaker's image download does.
            let resolved = self.resolve(&docker, &reference, spec.startup_timeout).await.map_err(InstanceError::Image)?;
            let log = InstanceLog::open(&spec.log_path, self.settings.log_max_bytes).map_err(failed)?;
            let digest = spec.digest(&reference);
            let (container, adopted) = match self.adopt(&spec, digest.as_deref()) {
                Some(container) => {
                    tracing::info!(instance = %spec.id, %container, "adopting the running container a server that led before left");
                    (container, true)
                }
                None => (self.create(&docker, &spec, &reference, digest.as_deref()).await.map_err(failed)?, false),
            };
            let runner = ContainerRunner { docker, container, log, spec: spec.clone(), adopted };
            start_supervised(runner, spec, &self.settings, alive, Some(resolved)).await
        })
    }
}

/// Pulls an image through the engine (from whatever registry its reference names).
async fn pull(docker: &Docker, reference: &str, timeout: Duration) -> Result<(), String> {
    let options = CreateImageOptionsBuilder::default().from_image(reference).build();
    let pulling = async {
        let mut progress = docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            step.map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    tokio::time::timeout(timeout, pulling).await.unwrap_or_else(|_| Err(format!("the pull took longer than {} seconds", timeout.as_secs())))
}

/// Runs one instance's container: started again after a crash, removed at the end.
struct ContainerRunner {
    docker: Docker,
    container: String,
    log: InstanceLog,
    spec: InstanceSpec,
    /// A running container taken over from a server that led before: its first launch does not
    /// start it (it runs and serves); a later one, after it exited, does.
    adopted: bool,
}

/// One start of the container: its exit, and the copy of its output into the log.
struct ContainerRun {
    exit: JoinHandle<()>,
    output: JoinHandle<()>,
}

impl Runner for ContainerRunner {
    type Running = ContainerRun;

    async fn launch(&mut self, slot: &InstanceSlot, attempt: u32) -> Result<ContainerRun, String> {
        let id = &self.container;
        self.log.note(&format!(
            "---- berth: starting instance {} (attempt {attempt}) in container {} ----",
            self.spec.id,
            &id[..12.min(id.len())]
        ));
        // Attached before the start, so nothing the container writes is missed.
        let attach = AttachContainerOptionsBuilder::default().stdout(true).stderr(true).stream(true).build();
        let attached = self.docker.attach_container(id, Some(attach)).await.map_err(|e| format!("cannot attach to container {id}: {e}"))?;
        let log = self.log.clone();
        let output = tokio::spawn(async move {
            let mut output = attached.output;
            while let Some(Ok(chunk)) = output.next().await {
                log.write(&chunk.into_bytes());
            }
        });
        if std::mem::take(&mut self.adopted) {
            self.log.note("---- berth: adopted the running container ----");
        } else if let Err(e) = self.docker.start_container(id, None).await {
            output.abort();
            return Err(format!("cannot start container {id}: {e}"));
        }
        let docker = self.docker.clone();
        let waited = id.clone();
        let exit = tokio::spawn(async move {
            let options = WaitContainerOptionsBuilder::default().condition("not-running").build();
            let _ = docker.wait_container(&waited, Some(options)).next().await;
        });
        let inspected = self.docker.inspect_container(id, None).await.map_err(|e| format!("cannot inspect container {id}: {e}"))?;
        let pid = inspected.state.and_then(|s| s.pid).and_then(|p| u32::try_from(p).ok()).filter(|&p| p != 0);
        let netns = match pid {
            Some(pid) => NetNamespace::of_process(pid).map_err(|e| format!("cannot open the network namespace of container {id}: {e}"))?,
            None => return Ok(ContainerRun { exit, output }), // already exited: `exited` says how
        };
        slot.set_netns(Some(Arc::new(netns)));
        slot.set_port(CONTAINER_PORT);
        slot.set_pid(pid);
        Ok(ContainerRun { exit, output })
    }

    async fn exited(&mut self, run: &mut ContainerRun) -> String {
        let _ = (&mut run.exit).await;
        // The output stream ends with the container; let it finish so the log is whole.
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut run.output).await;
        match self.docker.inspect_container(&self.container, None).await {
            Ok(c) => {
                let state = c.state.unwrap_or_default();
                let mut status = format!("exit status: {}", state.exit_code.unwrap_or(-1));
                if let Some(error) = state.error.filter(|e| !e.is_empty()) {
                    status += &format!(", {error}");
                }
                status
            }
            Err(e) => format!("exit status unknown: {e}"),
        }
    }

    async fn kill(&mut self, _run: &ContainerRun) {
        let options = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
        let _ = self.docker.kill_container(&self.container, Some(options)).await;
    }

    async fn terminate(&mut self, mut run: ContainerRun, grace: Duration) {
        // SIGTERM, then SIGKILL after the grace period: what `docker stop -t` does.
        let options = StopContainerOptionsBuilder::default().t(i32::try_from(grace.as_secs()).unwrap_or(i32::MAX)).build();
        let _ = self.docker.stop_container(&self.container, Some(options)).await;
        let _ = tokio::time::timeout(grace + Duration::from_secs(5), &mut run.exit).await;
        run.exit.abort();
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut run.output).await;
        run.output.abort();
    }

    async fn out_of_memory(&mut self, slot: &InstanceSlot) -> String {
        let Ok(c) = self.docker.inspect_container(&self.container, None).await else { return String::new() };
        if !c.state.and_then(|s| s.oom_killed).unwrap_or(false) {
            return String::new();
        }
        slot.set_oom_kills(slot.oom_kills() + 1);
        out_of_memory_reason(self.spec.memory_limit_bytes.unwrap_or(0), &self.spec)
    }

    async fn finish(self) {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        if let Err(e) = self.docker.remove_container(&self.container, Some(options)).await {
            tracing::warn!(instance = %self.spec.id, container = %self.container, error = %e, "cannot remove the instance's container");
        }
        if let Some(staged) = &self.spec.staged_models {
            let _ = tokio::fs::remove_dir_all(staged).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_flag_takes_off_auto_or_an_engine_url_only() {
        assert_eq!(DockerEngine::parse("off"), Ok(DockerEngine::Off));
        assert_eq!(DockerEngine::parse("auto"), Ok(DockerEngine::Auto));
        for url in ["unix:///var/run/docker.sock", "tcp://127.0.0.1:2375", "http://127.0.0.1:2375"] {
            assert_eq!(DockerEngine::parse(url), Ok(DockerEngine::Url(url.into())), "{url}");
        }
        for bad in ["", "on", "/var/run/docker.sock", "ssh://host", "https://host:2376", "unix:/x"] {
            assert!(DockerEngine::parse(bad).unwrap_err().0.contains("--docker takes off, auto or an engine URL"), "{bad}");
        }
        assert!(DockerEngine::Url("tcp://h:1".into()).describe().contains("(--docker)"));
    }
}
