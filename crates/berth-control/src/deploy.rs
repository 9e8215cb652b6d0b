//! Variant fleets: the running instances of each endpoint, how they are started, swapped in
//! and retired.

use crate::Controller;
use berth_domain::framework_of;
use berth_domain::{instance_memory_mib, instance_vcpus, ContainerSpec, Endpoint, Image, NameKey, VariantState};
use berth_instances::{host_memory_bytes, staged_models_dir, Instance, InstanceSpec, ModelData, ModelSource};
use berth_router::{
    CaptureSettings, ComponentRoute, EndpointRoute, GreenRoute, ModelCache, ModelCacheSettings, Pipeline, ServerlessState, ShadowRoute,
    VariantRoute,
};
use berth_store::Resources;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;

/// The instances of one variant and what they run.
pub(crate) struct VariantFleet {
    pub container: ContainerSpec,
    pub instance_type: String,
    pub instances: Vec<Instance>,
    /// A multi-model variant's loaded models, for as long as the fleet runs.
    pub models: Option<Arc<ModelCache>>,
}

pub(crate) type FleetMap = HashMap<String, VariantFleet>;

struct EndpointFleet {
    /// Changes when the endpoint is deleted and created again, so a deployment that started
    /// for the old endpoint cannot install its instances into the new one.
    epoch: u64,
    variants: FleetMap,
    /// The new fleet of a guarded deployment in progress.
    green: Option<GreenFleet>,
    /// For an endpoint hosting inference components: its instances and the copies on them.
    components: ComponentFleet,
    /// Dropped with the fleet when the endpoint is deleted: starts still under way stop.
    _present: tokio::sync::watch::Sender<()>,
}

/// The new fleet of a guarded deployment: its variants, their instances, and the share of
/// traffic it takes.
pub(crate) struct GreenFleet {
    pub states: Vec<VariantState>,
    pub variants: FleetMap,
    pub share: f64,
}

/// One running copy of an inference component.
pub(crate) struct ComponentCopy {
    pub id: String,
    /// The variant's instance it is placed on.
    pub instance: u32,
    pub generation: u32,
    pub handle: Instance,
}

/// An inference component's copies (present for every live component, with or without copies,
/// so that its route answers for it).
pub(crate) struct ComponentEntry {
    pub name: String,
    pub variant: String,
    pub copies: Vec<ComponentCopy>,
}

impl ComponentEntry {
    /// How many of its copies run `generation`.
    pub fn copies_of(&self, generation: u32) -> u32 {
        self.copies.iter().filter(|c| c.generation == generation).count() as u32
    }
}

/// What an endpoint hosting inference components runs.
#[derive(Default)]
pub(crate) struct ComponentFleet {
    /// The instances of each variant, by id (managed instance scaling adds and releases them).
    pub hosts: HashMap<String, Vec<u32>>,
    pub entries: HashMap<NameKey, ComponentEntry>,
}

/// Running instances by endpoint.
#[derive(Default)]
pub(crate) struct Fleets {
    inner: Mutex<HashMap<NameKey, EndpointFleet>>,
    next_epoch: AtomicU64,
}

impl Fleets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NameKey, EndpointFleet>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts tracking a new endpoint with no instances; returns its epoch.
    pub fn register(&self, endpoint: &str) -> u64 {
        let epoch = self.next_epoch.fetch_add(1, Ordering::Relaxed) + 1;
        let (present, _) = tokio::sync::watch::channel(());
        let fleet =
            EndpointFleet { epoch, variants: HashMap::new(), green: None, components: ComponentFleet::default(), _present: present };
        self.lock().insert(NameKey::of(endpoint), fleet);
        epoch
    }

    /// Resolves when the endpoint's fleet is forgotten (the endpoint deleted); at once if it
    /// is not known now.
    pub fn deleted(&self, endpoint: &str) -> impl std::future::Future<Output = ()> + Send + 'static {
        let watch = self.lock().get(&NameKey::of(endpoint)).map(|f| f._present.subscribe());
        async move {
            if let Some(mut w) = watch {
                while w.changed().await.is_ok() {}
            }
        }
    }

    pub fn epoch(&self, endpoint: &str) -> Option<u64> {
        self.lock().get(&NameKey::of(endpoint)).map(|f| f.epoch)
    }

    /// Forgets an endpoint and hands back its instances (of both fleets) to stop.
    pub fn remove(&self, endpoint: &str) -> Vec<Instance> {
        self.lock().remove(&NameKey::of(endpoint)).map(EndpointFleet::into_instances).unwrap_or_default()
    }

    /// Whether the running fleet of `variant` already runs `container` on `instance_type`
    /// with `count` instances, so an update can keep it instead of starting a new one.
    pub fn can_reuse(&self, endpoint: &str, variant: &str, container: &ContainerSpec, instance_type: &str, count: u32) -> bool {
        self.lock()
            .get(&NameKey::of(endpoint))
            .and_then(|f| f.variants.get(variant))
            .is_some_and(|v| &v.container == container && v.instance_type == instance_type && v.instances.len() == count as usize)
    }

    /// Applies `change` to the fleet of an endpoint if it still has `epoch`; otherwise returns
    /// the change's new instances (`Err`) for the caller to stop.
    pub fn apply<R>(&self, endpoint: &str, epoch: u64, change: impl FnOnce(&mut FleetMap) -> R) -> Option<R> {
        let mut map = self.lock();
        let fleet = map.get_mut(&NameKey::of(endpoint)).filter(|f| f.epoch == epoch)?;
        Some(change(&mut fleet.variants))
    }

    /// Applies `change` to the inference components of an endpoint if it still has `epoch`.
    pub fn apply_components<R>(&self, endpoint: &str, epoch: u64, change: impl FnOnce(&mut ComponentFleet) -> R) -> Option<R> {
        let mut map = self.lock();
        let fleet = map.get_mut(&NameKey::of(endpoint)).filter(|f| f.epoch == epoch)?;
        Some(change(&mut fleet.components))
    }

    /// Applies `change` to the new fleet (None when no deployment runs) and the running fleet
    /// of an endpoint if it still has `epoch`.
    pub fn apply_green<R>(
        &self,
        endpoint: &str,
        epoch: u64,
        change: impl FnOnce(&mut Option<GreenFleet>, &mut FleetMap) -> R,
    ) -> Option<R> {
        let mut map = self.lock();
        let fleet = map.get_mut(&NameKey::of(endpoint)).filter(|f| f.epoch == epoch)?;
        Some(change(&mut fleet.green, &mut fleet.variants))
    }

    /// The route of an endpoint: its variants' weights and the slots of their instances, and
    /// the new fleet's during a guarded deployment.
    pub fn route(&self, endpoint: &Endpoint) -> EndpointRoute {
        let map = self.lock();
        let fleet = map.get(&NameKey::of(&endpoint.name));
        let (shadow_states, production): (Vec<VariantState>, Vec<VariantState>) = endpoint.variants.iter().cloned().partition(|v| v.shadow);
        let variants = variant_routes(&production, fleet.map(|f| &f.variants));
        let green = fleet.and_then(|f| f.green.as_ref()).map(|g| {
            let production: Vec<VariantState> = g.states.iter().filter(|v| !v.shadow).cloned().collect();
            GreenRoute { variants: variant_routes(&production, Some(&g.variants)), share: g.share.clamp(0.0, 1.0) }
        });
        // A shadow gets its weight's share of the production weights' total, at most all requests.
        let total: f64 = production.iter().map(|v| v.current_weight).sum();
        let shadows = variant_routes(&shadow_states, fleet.map(|f| &f.variants))
            .into_iter()
            .map(|v| ShadowRoute { sample: if total > 0.0 { (v.weight / total).min(1.0) } else { 0.0 }, variant: v })
            .collect();
        let capture = endpoint.data_capture.as_ref().filter(|c| c.enabled).map(|c| CaptureSettings {
            sampling_percentage: c.sampling_percentage,
            destination: c.destination.as_str().into(),
            kms_key_id: c.kms_key_id.as_deref().map(Into::into),
            input: c.input,
            output: c.output,
            csv_types: c.csv_types.clone().into(),
            json_types: c.json_types.clone().into(),
        });
        let components = endpoint.hosts_components().then(|| {
            let entries = fleet.map(|f| f.components.entries.values().collect::<Vec<_>>()).unwrap_or_default();
            entries.into_iter().filter_map(|c| Some((c, endpoint.variant(&c.variant)?))).map(|(c, v)| component_route(c, v)).collect()
        });
        EndpointRoute { endpoint: endpoint.name.clone(), variants, green, shadows, capture, components }
    }

    /// Takes every instance of every endpoint, for shutdown.
    pub fn take_all(&self) -> Vec<Instance> {
        self.lock().drain().flat_map(|(_, f)| f.into_instances()).collect()
    }
}

impl EndpointFleet {
    fn into_instances(self) -> Vec<Instance> {
        let green = self.green.into_iter().flat_map(|g| g.variants.into_values());
        let copies = self.components.entries.into_values().flat_map(|c| c.copies.into_iter().map(|c| c.handle));
        self.variants.into_values().chain(green).flat_map(|v| v.instances).chain(copies).collect()
    }
}

/// An inference component as the router sees it: its host variant (name, strategy, instance
/// type) whose instances are the component's copies.
fn component_route(c: &ComponentEntry, host: &VariantState) -> ComponentRoute {
    let variant = VariantRoute {
        name: host.name.clone(),
        weight: 0.0,
        strategy: host.routing,
        instance_type: host.instance_type.clone(),
        memory_mib: memory_mib(host),
        instances: c.copies.iter().map(|c| c.handle.slot().clone()).collect(),
        metrics: Default::default(),
        serverless: None,
        models: None,
        pipeline: None,
    };
    ComponentRoute { name: c.name.clone(), variant }
}

/// The image a started fleet of `variant` runs, as its backend resolved it (a digest).
pub(crate) fn resolved_image(fleet: &FleetMap, variant: &str) -> Option<String> {
    fleet.get(variant)?.instances.first()?.resolved_image().map(str::to_owned)
}

/// An instance's memory: its instance type's, or the serverless variant's memory size.
fn memory_mib(v: &VariantState) -> u64 {
    v.serverless.map_or_else(|| instance_memory_mib(&v.instance_type), |s| u64::from(s.memory_mb))
}

fn variant_routes(states: &[VariantState], fleet: Option<&FleetMap>) -> Vec<VariantRoute> {
    states
        .iter()
        .map(|v| VariantRoute {
            name: v.name.clone(),
            weight: v.current_weight,
            strategy: v.routing,
            instance_type: v.instance_type.clone(),
            memory_mib: memory_mib(v),
            instances: fleet
                .and_then(|f| f.get(&v.name))
                .map(|vf| vf.instances.iter().map(|i| i.slot().clone()).collect())
                .unwrap_or_default(),
            // Replaced by the routing table's own when the route is published.
            metrics: Default::default(),
            serverless: v.serverless.map(|s| Arc::new(ServerlessState::new(s.max_concurrency))),
            models: fleet.and_then(|f| f.get(&v.name)).and_then(|vf| vf.models.clone()),
            pipeline: v
                .multi_container
                .as_ref()
                // Each container's metrics are attached when the route is published.
                .map(|m| {
                    let hostnames = (0..m.containers.len()).map(|i| m.hostname(i)).collect();
                    Arc::new(Pipeline { mode: m.mode, hostnames, container_metrics: Vec::new() })
                }),
        })
        .collect()
}

pub(crate) async fn stop_all(instances: Vec<Instance>) {
    let mut set = JoinSet::new();
    for i in instances {
        set.spawn(i.stop());
    }
    while set.join_next().await.is_some() {}
}

impl Controller {
    /// Starts `count` instances of a variant, all or nothing: if one fails, the others are
    /// stopped and the reason names the variant.
    /// Deleting the endpoint meanwhile stops the starts (and the model download) at once.
    pub(crate) async fn start_instances(self: &Arc<Self>, endpoint: &str, v: &VariantState) -> Result<Vec<Instance>, String> {
        let deleted = self.fleets().deleted(endpoint);
        tokio::select! {
            started = self.start_instances_now(endpoint, v) => started,
            () = deleted => Err(format!("Variant {} did not start: the endpoint was deleted meanwhile.", v.name)),
        }
    }

    async fn start_instances_now(self: &Arc<Self>, endpoint: &str, v: &VariantState) -> Result<Vec<Instance>, String> {
        if v.hosts_components {
            return Ok(Vec::new()); // its instances run inference components' copies, placed apart
        }
        let variant = &v.name;
        let fail = |reason: String| format!("Failed to start variant {variant}: {reason}");
        // A multi-container model runs each of its containers on every instance: one process
        // (or container) per container and instance, told apart by the slot's container index.
        let containers: Vec<(usize, &ContainerSpec, Option<String>)> = match &v.multi_container {
            Some(m) => m.containers.iter().enumerate().map(|(i, c)| (i, c, Some(m.hostname(i)))).collect(),
            None => vec![(0, &v.container, None)],
        };
        let mut set = JoinSet::new();
        for (index, container, hostname) in containers {
            let fail = |reason: String| match &hostname {
                Some(h) => fail(format!("container {h}: {reason}")),
                None => fail(reason),
            };
            self.spawn_instances(&mut set, endpoint, v, index, container).await.map_err(fail)?;
        }
        let mut started = Vec::new();
        let mut first_error = None;
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(Ok(instance)) => started.push(instance),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e.to_string());
                }
                Err(e) => {
                    first_error.get_or_insert(crate::work::task_failure("starting an instance", e));
                }
            }
        }
        match first_error {
            None => Ok(started),
            Some(reason) => {
                stop_all(started).await;
                Err(fail(reason))
            }
        }
    }

    /// Spawns the starts of `v`'s instances of one of its model's containers into `set`, once
    /// the container's model data is ready.
    async fn spawn_instances(
        self: &Arc<Self>,
        set: &mut JoinSet<Result<Instance, berth_instances::InstanceError>>,
        endpoint: &str,
        v: &VariantState,
        container_index: usize,
        container: &ContainerSpec,
    ) -> Result<(), String> {
        let (variant, count) = (&v.name, v.desired_instance_count);
        let image = Image::parse(&container.image).map_err(|e| e.to_string())?;
        let download_timeout =
            v.model_data_download_timeout_secs.map(|s| Duration::from_secs(u64::from(s))).unwrap_or(self.settings.default_startup_timeout);
        // A multi-model instance starts with no model; its models are loaded as they are called.
        let data = if container.is_multi_model() { ModelData::None } else { model_data(container) };
        let model_dir = self.artifacts.prepare(data, download_timeout).await.map_err(|e| format!("could not prepare model data: {e}"))?;
        // A framework model's handler source (`sagemaker.*Model(source_dir=...)` uploads it).
        let code_dir = match crate::models::submit_directory(container).filter(|_| framework_of(&image).is_some()) {
            Some(url) => Some(
                self.artifacts
                    .prepare(ModelData::Url(url), download_timeout)
                    .await
                    .map_err(|e| format!("could not prepare the source directory {url} (SAGEMAKER_SUBMIT_DIRECTORY): {e}"))?,
            ),
            None => None,
        };
        let timeout =
            v.container_startup_timeout_secs.map(|s| Duration::from_secs(u64::from(s))).unwrap_or(self.settings.default_startup_timeout);
        // What berth tells every instance about its size: worker threads are the instance
        // type's vCPUs, capped by the host's cores (built-in images size their thread pools by it).
        let host_cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        // Serverless memory buys CPU as on SageMaker (and Lambda): about a vCPU per 1,769 MB.
        let vcpus = v.serverless.map_or_else(|| instance_vcpus(&v.instance_type), |s| s.memory_mb / 1769 + 1);
        let threads = vcpus.min(host_cores as u32).max(1);
        let instance_type = match v.serverless {
            Some(s) => format!("serverless-{}mb", s.memory_mb),
            None => v.instance_type.clone(),
        };
        let berth_environment = BTreeMap::from([
            ("BERTH_INSTANCE_TYPE".to_string(), instance_type),
            ("BERTH_WORKER_THREADS".to_string(), threads.to_string()),
            ("SAGEMAKER_MULTI_MODEL".to_string(), container.is_multi_model().to_string()),
        ]);
        // More than the machine has is the machine (the limit then only catches runaways).
        let memory_limit = (memory_mib(v) * 1024 * 1024).min(host_memory_bytes().unwrap_or(u64::MAX));
        for _ in 0..count {
            let mut suffix = format!("{:06x}", fastrand::u32(..0x100_0000));
            if v.multi_container.is_some() {
                suffix += &format!("-c{}", container_index + 1);
            }
            let id = format!("{endpoint}/{variant}/{suffix}");
            let spec = InstanceSpec {
                id: id.clone(),
                endpoint: endpoint.to_string(),
                variant: variant.to_string(),
                image: image.clone(),
                model_dir: model_dir.clone(),
                model_source: match container.is_multi_model() {
                    true => ModelSource::MultiModel(container.model_data_url.clone().unwrap_or_default()),
                    false => ModelSource::of(data),
                },
                code_dir: code_dir.clone(),
                environment: container.environment.clone(),
                berth_environment: berth_environment.clone(),
                access: Default::default(),
                log_path: self.instance_log_dir(endpoint).join(variant).join(format!("{suffix}.log")),
                startup_timeout: timeout,
                memory_limit_bytes: Some(memory_limit),
                cpus: Some(threads),
                network_isolation: v.network_isolation,
                observer: Some(self.instance_observer(endpoint, variant)),
                staged_models: container.is_multi_model().then(|| staged_models_dir(&self.settings.data_dir, &id)),
                container_index,
            };
            let backend = self.backend.clone();
            let setup = self.routing.metrics().variant(endpoint, variant);
            set.spawn(async move {
                // SageMaker's ModelSetupTime: from asking for the instance to its first passing /ping.
                let asked = std::time::Instant::now();
                let started = backend.start(spec).await;
                if started.is_ok() {
                    setup.model_setup_us.record(u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX));
                }
                started
            });
        }
        Ok(())
    }

    /// Writes `endpoint` and publishes its route, if it still exists in the same epoch.
    /// `change` installs new instances into its fleet and returns what the swap retired.
    /// Returns false (having changed nothing) when the endpoint was deleted meanwhile.
    pub(crate) async fn commit(
        self: &Arc<Self>,
        endpoint: Endpoint,
        epoch: u64,
        change: impl FnOnce(&mut FleetMap) -> Vec<Instance>,
    ) -> Result<bool, String> {
        let mut endpoint = endpoint;
        endpoint.failure_reason = endpoint.failure_reason.map(|reason| self.redact(&reason));
        let _guard = self.transitions.lock().await;
        let name = endpoint.name.clone();
        let stored = self.db(move |s| s.get::<Endpoint>(&name)).await.map_err(|e| e.to_string())?;
        if stored.is_none() || self.fleets().epoch(&endpoint.name) != Some(epoch) || stored.is_some_and(|s| s.arn != endpoint.arn) {
            return Ok(false);
        }
        let to_store = endpoint.clone();
        self.db(move |s| s.update(&to_store)).await.map_err(|e| e.to_string())?;
        let retired = self.fleets().apply(&endpoint.name, epoch, change).unwrap_or_default();
        self.routing.publish(self.fleets().route(&endpoint));
        drop(_guard);
        if endpoint.hosts_components() && endpoint.status == berth_domain::EndpointStatus::InService {
            // Its instances are up: the components' copies are placed on them.
            let (this, name) = (self.clone(), endpoint.name.clone());
            tokio::spawn(async move { this.reconcile_components(&name).await });
        }
        if !retired.is_empty() {
            let span = tracing::info_span!("retire", endpoint = %endpoint.name, instances = retired.len());
            self.work.spawn_detached(span, stop_all(retired));
        }
        Ok(true)
    }
}

impl VariantFleet {
    pub(crate) fn new(v: &VariantState, instances: Vec<Instance>, models: Option<Arc<ModelCache>>) -> Self {
        VariantFleet { container: v.container.clone(), instance_type: v.instance_type.clone(), instances, models }
    }
}

impl Controller {
    /// The model cache of a new fleet of `v`, when it is a multi-model variant: each instance
    /// may hold models up to its memory, or the endpoint's `berth:model-memory-mb` tag.
    pub(crate) async fn model_cache(&self, endpoint: &str, v: &VariantState) -> Option<Arc<ModelCache>> {
        if !v.container.is_multi_model() {
            return None;
        }
        let arn = self.account().arn(berth_domain::ResourceKind::Endpoint, endpoint);
        let tagged = self.list_tags(&arn).await.ok().and_then(|tags| crate::tags::model_memory_mb(&tags));
        let memory_mib = tagged.unwrap_or_else(|| memory_mib(v));
        let download_timeout =
            v.model_data_download_timeout_secs.map(|s| Duration::from_secs(u64::from(s))).unwrap_or(self.settings.default_startup_timeout);
        Some(ModelCache::new(ModelCacheSettings {
            prefix: v.container.model_data_url.clone().unwrap_or_default(),
            artifacts: self.artifacts.clone(),
            download_timeout,
            memory_bytes: memory_mib * 1024 * 1024,
            keep_loaded: !v.container.model_cache_disabled,
            staging: Some(self.settings.data_dir.clone()),
            in_container: self.runs_in_container(&v.container),
            loader_port: self.settings.model_loader_port,
        }))
    }

    /// Whether a container definition runs as a container (which sees its staged models at their
    /// mount point) rather than as a process on the host.
    fn runs_in_container(&self, container: &ContainerSpec) -> bool {
        // AWS's framework images run through berth's Python runtime, a process on the host.
        matches!(Image::parse(&container.image), Ok(image @ Image::Container(_)) if framework_of(&image).is_none())
    }
}

/// Where a container's model data is, in the terms of the artifact store.
fn model_data(c: &ContainerSpec) -> ModelData<'_> {
    match (&c.model_data_url, &c.model_data_source) {
        (Some(url), _) => ModelData::Url(url),
        (None, Some(s)) if s.prefix => ModelData::S3Prefix(&s.s3_uri),
        (None, Some(s)) => ModelData::S3Object { uri: &s.s3_uri, gzip: s.gzip },
        (None, None) => ModelData::None,
    }
}
