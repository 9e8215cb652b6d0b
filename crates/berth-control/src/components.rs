//! Inference components: models placed as copies on the instances of an endpoint whose
//! variants name no model. The API operations commit a component to the store; the
//! [`Components`] reconciler (one key per endpoint, so that the components sharing its
//! instances are placed together) runs [`berth_domain::place`] over the endpoint's components
//! and the copies running now, starts the copies placement adds (each a worker of the
//! component's container, as a variant's instance is), adds or releases instances for managed
//! instance scaling, stops what placement drops, and publishes the components' routes.
//!
//! An update with a `DeploymentConfig` is a rolling update kept in the component itself
//! ([`berth_domain::ComponentRollout`]): each reconciliation places the step's split between
//! the two revisions, watches the rollback alarms and the execution timeout, and moves to the
//! next batch once the step's copies have baked; while one runs, the endpoint is looked at
//! again every second. A restart carries on from the stored step.

use crate::deploy::{ComponentCopy, ComponentEntry, ComponentFleet};
use crate::reconcile::{Done, Queue, Reconciler};
use crate::tags::validate_tags;
use crate::{ControlError, Controller};
use berth_domain::{
    place, ComponentDeployment, ComponentStatus, ComputeRequirements, ContainerSpec, Endpoint, EndpointStatus, EventKind,
    InferenceComponent, InstanceCapacity, NameKey, PlacementDemand, PlacementPlan, ResourceKind, RolloutProgress, RunningCopy,
    VariantState,
};
use berth_instances::Instance;
use berth_metrics::VariantKey;
use berth_store::{Resources, Tag};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Copies started by one reconciliation, by component and generation.
type Started = HashMap<(String, u32), Result<Vec<(u32, Instance)>, String>>;

/// What a component runs and needs: `Specification` of Create and Update.
#[derive(Debug, Clone, Default)]
pub struct ComponentSpecification {
    pub model_name: Option<String>,
    /// `Specification.Container`: an image, its `ArtifactUrl` and environment.
    pub container: Option<ContainerSpec>,
    pub requirements: Option<ComputeRequirements>,
    pub download_timeout_secs: Option<u32>,
    pub startup_timeout_secs: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct CreateInferenceComponent {
    pub name: String,
    pub endpoint: String,
    pub variant: Option<String>,
    pub specification: ComponentSpecification,
    pub copies: u32,
    pub tags: Vec<Tag>,
}

/// The reconciler of inference components, keyed by endpoint.
#[derive(Default)]
pub(crate) struct Components;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ComponentStep {
    Converge,
}

fn not_found(name: &str) -> ControlError {
    ControlError::Validation(format!("Could not find inference component \"{name}\"."))
}

impl Reconciler for Components {
    type Context = Controller;
    type Object = (Endpoint, Vec<InferenceComponent>);
    type Step = ComponentStep;
    const KIND: &'static str = "inference components";

    fn queue(cx: &Controller) -> &Queue<Self> {
        &cx.components
    }

    async fn keys(&self, cx: &Arc<Controller>) -> Result<Vec<String>, ControlError> {
        let endpoints = cx.db(|s| s.list::<Endpoint>()).await?;
        Ok(endpoints.into_iter().filter(|e| e.hosts_components()).map(|e| e.name).collect())
    }

    async fn read(&self, cx: &Arc<Controller>, key: &str) -> Result<Option<Self::Object>, ControlError> {
        let name = key.to_string();
        let Some(endpoint) = cx.db(move |s| s.get::<Endpoint>(&name)).await? else { return Ok(None) };
        let components = cx.components_of(&endpoint.name).await?;
        Ok(Some((endpoint, components)))
    }

    fn next(&self, cx: &Arc<Controller>, (endpoint, components): &Self::Object) -> Option<ComponentStep> {
        if endpoint.status != EndpointStatus::InService || cx.fleets().epoch(&endpoint.name).is_none() {
            return None; // its instances come first; its commit enqueues the components again
        }
        let moving = components
            .iter()
            .any(|c| matches!(c.status, ComponentStatus::Creating | ComponentStatus::Updating | ComponentStatus::Deleting));
        let (plans, _) = cx.plans(endpoint, components);
        let changes = plans.iter().any(|(v, p)| {
            !p.start.is_empty()
                || !p.stop.is_empty()
                || endpoint.variant(v).is_some_and(|s| s.current_instance_count as usize != p.instances.len())
        });
        (moving || changes || cx.missing_entries(endpoint, components)).then_some(ComponentStep::Converge)
    }

    fn run(&self, cx: &Arc<Controller>, (endpoint, _): Self::Object, step: ComponentStep, done: Done<Self>) {
        let span = tracing::info_span!("inference_components", endpoint = %endpoint.name, step = ?step);
        let this = cx.clone();
        cx.work.spawn_detached(span, async move {
            this.converge_components(&endpoint.name).await;
            drop(done);
        });
    }
}

impl Controller {
    pub async fn create_inference_component(self: &Arc<Self>, req: CreateInferenceComponent) -> Result<InferenceComponent, ControlError> {
        berth_domain::validate_name("inferenceComponentName", &req.name)?;
        validate_tags(&req.tags)?;
        let endpoint = self.describe_endpoint(&req.endpoint).await?;
        let hosts: Vec<&VariantState> = endpoint.variants.iter().filter(|v| v.hosts_components).collect();
        if hosts.is_empty() {
            return Err(ControlError::Validation(format!(
                "Endpoint {} hosts models: inference components need an endpoint whose configuration's variants name no ModelName (with an ExecutionRoleArn).",
                endpoint.name
            )));
        }
        let variant = match &req.variant {
            Some(name) => hosts
                .iter()
                .find(|v| v.name == *name)
                .ok_or_else(|| ControlError::Validation(format!("Variant {name} does not exist in endpoint {}.", endpoint.name)))?,
            None if hosts.len() == 1 => hosts[0],
            None => {
                return Err(ControlError::Validation(format!("Endpoint {} has several variants: name the VariantName.", endpoint.name)))
            }
        };
        if matches!(endpoint.status, EndpointStatus::Deleting | EndpointStatus::Failed) {
            return Err(ControlError::Validation(format!("Endpoint {} is {}.", endpoint.name, endpoint.status.as_str())));
        }
        let now = self.now();
        let mut component = InferenceComponent {
            name: req.name.clone(),
            arn: self.account().arn(ResourceKind::InferenceComponent, &req.name),
            endpoint_name: endpoint.name.clone(),
            variant_name: variant.name.clone(),
            created: now,
            modified: now,
            status: ComponentStatus::Creating,
            failure_reason: None,
            model_name: None,
            container: ContainerSpec::new("", None),
            own_container: false,
            requirements: ComputeRequirements { cpu_cores: None, min_memory_mb: 0, max_memory_mb: None },
            download_timeout_secs: None,
            startup_timeout_secs: None,
            desired_copies: req.copies,
            current_copies: 0,
            generation: 0,
            network_isolation: false,
            generations: 0,
            last_deployment: None,
            rollout: None,
        };
        self.specify(&mut component, req.specification, variant, true).await?;
        let (stored, tags, arn) = (component.clone(), req.tags, component.arn.clone());
        self.db(move |s| s.insert(&stored, &tags))
            .await
            .map_err(|e| crate::models::map_exists(e, ResourceKind::InferenceComponent, &arn))?;
        tracing::info!(component = %component.name, endpoint = %component.endpoint_name, copies = component.desired_copies, "inference component creating");
        self.reconcile_components(&component.endpoint_name).await;
        Ok(component)
    }

    /// Fills what a component runs from its `Specification`: a model's container, or its own.
    async fn specify(
        &self,
        c: &mut InferenceComponent,
        spec: ComponentSpecification,
        host: &VariantState,
        creating: bool,
    ) -> Result<(), ControlError> {
        match (&spec.model_name, spec.container) {
            (Some(_), Some(_)) => {
                return Err(ControlError::Validation("Specify either Specification.ModelName or Specification.Container, not both.".into()))
            }
            (Some(model), None) => {
                let model = self.describe_model(model).await?;
                c.container = model.serving_container().clone();
                c.network_isolation = model.enable_network_isolation == Some(true);
                if model.multi_container().is_some() || c.container.is_multi_model() {
                    return Err(ControlError::Validation(format!(
                        "Model {} is a multi-container or multi-model model; an inference component runs one single-model container.",
                        model.name
                    )));
                }
                c.model_name = Some(model.name);
                c.own_container = false;
            }
            (None, Some(container)) => {
                self.check_container(&container)?;
                c.container = container;
                c.model_name = None;
                c.own_container = true;
            }
            (None, None) if creating => {
                return Err(ControlError::Validation(
                    "Specification needs a ModelName or a Container: what the inference component's copies run.".into(),
                ))
            }
            (None, None) => {}
        }
        match spec.requirements {
            Some(r) => c.requirements = r,
            None if creating => {
                return Err(ControlError::Validation(
                    "Specification.ComputeResourceRequirements is required: the cores and memory each copy takes on an instance.".into(),
                ))
            }
            None => {}
        }
        let r = c.requirements;
        if r.cpu_cores.is_some_and(|n| !(n.is_finite() && n >= 0.25))
            || r.min_memory_mb < 128
            || r.max_memory_mb.is_some_and(|m| m < r.min_memory_mb)
        {
            return Err(ControlError::Validation(
                "ComputeResourceRequirements: NumberOfCpuCoresRequired must be at least 0.25, MinMemoryRequiredInMb at least 128, and MaxMemoryRequiredInMb at least MinMemoryRequiredInMb.".into(),
            ));
        }
        let capacity = InstanceCapacity::of(&host.instance_type);
        if !capacity.holds(&r) {
            return Err(ControlError::Validation(format!(
                "Inference component {} can never be placed: each copy needs {} CPU cores and {} MB of memory, and one {} instance of variant {} has {} cores and {} MB.",
                c.name,
                r.cpu_cores.unwrap_or(0.0),
                r.min_memory_mb,
                host.instance_type,
                host.name,
                capacity.cores,
                capacity.memory_mb
            )));
        }
        for (t, member) in [
            (spec.download_timeout_secs, "ModelDataDownloadTimeoutInSeconds"),
            (spec.startup_timeout_secs, "ContainerStartupHealthCheckTimeoutInSeconds"),
        ] {
            if let Some(t) = t.filter(|t| !(60..=3600).contains(t)) {
                return Err(ControlError::Validation(format!(
                    "1 validation error detected: Value '{t}' at 'specification.startupParameters.{member}' failed to satisfy constraint: Member must have value between 60 and 3600"
                )));
            }
        }
        c.download_timeout_secs = spec.download_timeout_secs.or(c.download_timeout_secs);
        c.startup_timeout_secs = spec.startup_timeout_secs.or(c.startup_timeout_secs);
        Ok(())
    }

    /// A component by its name or ARN.
    pub async fn describe_inference_component(&self, name_or_arn: &str) -> Result<InferenceComponent, ControlError> {
        let name = match self.account().parse_arn(name_or_arn) {
            Some((ResourceKind::InferenceComponent, name)) => name,
            _ => name_or_arn.to_string(),
        };
        let key = name.clone();
        self.db(move |s| s.get::<InferenceComponent>(&key)).await?.ok_or_else(|| not_found(&name))
    }

    /// Every component, oldest first.
    pub async fn inference_components(&self) -> Result<Vec<InferenceComponent>, ControlError> {
        self.db(|s| s.list::<InferenceComponent>()).await
    }

    /// The components of `endpoint`, oldest first.
    pub(crate) async fn components_of(&self, endpoint: &str) -> Result<Vec<InferenceComponent>, ControlError> {
        let key = NameKey::of(endpoint);
        Ok(self.inference_components().await?.into_iter().filter(|c| NameKey::of(&c.endpoint_name) == key).collect())
    }

    /// `UpdateInferenceComponent` (a new specification replaces every copy: at once, new
    /// copies first, or in batches with `deployment`) and
    /// `UpdateInferenceComponentRuntimeConfig` (`copies` only).
    pub async fn update_inference_component(
        self: &Arc<Self>,
        name: &str,
        spec: Option<ComponentSpecification>,
        copies: Option<u32>,
        deployment: Option<ComponentDeployment>,
    ) -> Result<InferenceComponent, ControlError> {
        if let Some(d) = &deployment {
            d.validate()?;
            self.alarms_in_alarm(&d.rollback_alarms).await?;
        }
        let _guard = self.transitions.lock().await;
        let mut c = self.describe_inference_component(name).await?;
        let was_serving = c.status == ComponentStatus::InService;
        match c.status {
            ComponentStatus::InService => {}
            ComponentStatus::Failed if spec.is_some() => {}
            s => return Err(ControlError::Validation(format!("Cannot update inference component {} while it is {}.", c.name, s.as_str()))),
        }
        if let Some(n) = copies {
            c.desired_copies = n;
        }
        if let Some(spec) = spec {
            let endpoint = self.describe_endpoint(&c.endpoint_name).await?;
            let host = endpoint.variant(&c.variant_name).cloned().ok_or_else(|| not_found(name))?;
            let from = c.revision();
            self.specify(&mut c, spec, &host, false).await?;
            c.generation = c.next_generation();
            // A rolling update replaces running copies; a failed component has none to keep.
            if let Some(d) = deployment.clone().filter(|_| was_serving && c.current_copies > 0 && c.desired_copies > 0) {
                c.start_rollout(from, d, self.now());
            }
        }
        if deployment.is_some() {
            c.last_deployment = deployment;
        }
        c.status = ComponentStatus::Updating;
        c.failure_reason = None;
        c.modified = self.now();
        let stored = c.clone();
        self.db(move |s| s.update(&stored)).await?;
        drop(_guard);
        tracing::info!(component = %c.name, copies = c.desired_copies, generation = c.generation, rolling = c.rollout.is_some(), "inference component updating");
        if let Some(r) = &c.rollout {
            let message = format!(
                "Inference component {}: rolling update to a new specification, {} of {} copies in the first batch",
                c.name, r.target, c.desired_copies
            );
            self.record_event(&c.endpoint_name, Some(&c.variant_name), EventKind::DeploymentStep, message);
        }
        self.reconcile_components(&c.endpoint_name).await;
        Ok(c)
    }

    pub async fn delete_inference_component(self: &Arc<Self>, name: &str) -> Result<(), ControlError> {
        let _guard = self.transitions.lock().await;
        let mut c = self.describe_inference_component(name).await?;
        if c.status == ComponentStatus::Deleting {
            return Ok(());
        }
        c.status = ComponentStatus::Deleting;
        c.modified = self.now();
        let stored = c.clone();
        self.db(move |s| s.update(&stored)).await?;
        drop(_guard);
        tracing::info!(component = %c.name, "inference component deleting");
        self.reconcile_components(&c.endpoint_name).await;
        Ok(())
    }

    /// Reconciles the inference components of `endpoint` (after a change to one of them, or to
    /// the endpoint).
    pub(crate) async fn reconcile_components(self: &Arc<Self>, endpoint: &str) {
        if let Err(e) = self.components.enqueue(self, endpoint).await {
            tracing::warn!(%endpoint, error = %e, "cannot reconcile the inference components; the next resync tries again");
        }
    }

    /// Whether a live component has no entry in the fleet (its route would not name it).
    fn missing_entries(&self, endpoint: &Endpoint, components: &[InferenceComponent]) -> bool {
        let Some(epoch) = self.fleets().epoch(&endpoint.name) else { return false };
        self.fleets()
            .apply_components(&endpoint.name, epoch, |f| {
                components.iter().any(|c| c.status != ComponentStatus::Deleting && !f.entries.contains_key(&NameKey::of(&c.name)))
            })
            .unwrap_or(false)
    }

    /// Placement for each variant of `endpoint` hosting components, from the copies running now;
    /// and the running copies by id.
    fn plans(&self, endpoint: &Endpoint, components: &[InferenceComponent]) -> (Vec<(String, PlacementPlan)>, HashMap<String, String>) {
        let epoch = self.fleets().epoch(&endpoint.name).unwrap_or(0);
        let snapshot = self
            .fleets()
            .apply_components(&endpoint.name, epoch, |f: &mut ComponentFleet| {
                let running: Vec<(String, RunningCopy)> = f
                    .entries
                    .values()
                    .flat_map(|e| {
                        e.copies.iter().map(|c| {
                            let copy =
                                RunningCopy { component: e.name.clone(), instance: c.instance, generation: c.generation, id: c.id.clone() };
                            (e.variant.clone(), copy)
                        })
                    })
                    .collect();
                (f.hosts.clone(), running)
            })
            .unwrap_or_default();
        let (hosts, running) = snapshot;
        let owners: HashMap<String, String> = running.iter().map(|(_, c)| (c.id.clone(), c.component.clone())).collect();
        let plans = endpoint
            .variants
            .iter()
            .filter(|v| v.hosts_components)
            .map(|v| {
                let instances = hosts.get(&v.name).cloned().unwrap_or_else(|| (1..=v.current_instance_count).collect());
                let demands: Vec<PlacementDemand> =
                    components.iter().filter(|c| c.variant_name == v.name).flat_map(InferenceComponent::demands).collect();
                let here: Vec<RunningCopy> = running.iter().filter(|(variant, _)| *variant == v.name).map(|(_, c)| c.clone()).collect();
                let range = v.managed_scaling.and_then(|m| m.range(v.desired_instance_count.max(1)));
                (v.name.clone(), place(InstanceCapacity::of(&v.instance_type), &instances, range, &demands, &here))
            })
            .collect();
        (plans, owners)
    }

    /// One reconciliation of an endpoint's components: place, start what placement adds, then
    /// commit copies, instance counts, statuses and the route together.
    async fn converge_components(self: &Arc<Self>, endpoint_name: &str) {
        let Ok(endpoint) = self.describe_endpoint(endpoint_name).await else { return };
        let Some(epoch) = self.fleets().epoch(&endpoint.name) else { return };
        let mut components = match self.components_of(&endpoint.name).await {
            Ok(c) => c,
            Err(e) => return tracing::warn!(endpoint = %endpoint.name, error = %e, "cannot read the inference components"),
        };
        for c in components.iter_mut() {
            if let Some(why) = self.rollback_reason(c).await {
                if let Some(back) = self.roll_back_component(&endpoint.name, epoch, &c.name, why).await {
                    *c = back;
                }
            }
        }
        let (plans, owners) = self.plans(&endpoint, &components);
        // Start the copies placement adds, each component's revision's at once.
        let mut started: Started = HashMap::new();
        let mut starts = tokio::task::JoinSet::new();
        for (variant, plan) in &plans {
            let Some(host) = endpoint.variant(variant) else { continue };
            let mut by_revision: HashMap<(&str, u32), Vec<u32>> = HashMap::new();
            for copy in &plan.start {
                by_revision.entry((&copy.component, copy.generation)).or_default().push(copy.instance);
            }
            for ((name, generation), at) in by_revision {
                let Some(c) = components.iter().find(|c| c.name == name).and_then(|c| c.at_generation(generation)) else { continue };
                let state = copy_state(&c, host, at.len() as u32);
                let (this, endpoint) = (self.clone(), endpoint.name.clone());
                starts.spawn(async move {
                    let result = this.start_instances(&endpoint, &state).await.map(|i| at.into_iter().zip(i).collect());
                    ((c.name, generation), result)
                });
            }
        }
        while let Some(joined) = starts.join_next().await {
            if let Ok((name, result)) = joined {
                started.insert(name, result);
            }
        }
        self.commit_components(&endpoint.name, epoch, &components, &plans, &owners, started).await;
    }

    async fn commit_components(
        self: &Arc<Self>,
        endpoint_name: &str,
        epoch: u64,
        planned_for: &[InferenceComponent],
        plans: &[(String, PlacementPlan)],
        owners: &HashMap<String, String>,
        mut started: Started,
    ) {
        let guard = self.transitions.lock().await;
        let (Ok(mut endpoint), Ok(components)) = (self.describe_endpoint(endpoint_name).await, self.components_of(endpoint_name).await)
        else {
            drop(guard);
            let orphans = started.into_values().flatten().flatten().map(|(_, i)| i).collect();
            return crate::deploy::stop_all(orphans).await;
        };
        let now = self.now();
        let mut retired: Vec<Instance> = Vec::new();
        let mut changed: Vec<InferenceComponent> = Vec::new();
        let mut deleted: Vec<String> = Vec::new();
        let mut events: Vec<(String, EventKind, String)> = Vec::new();
        let applied = self.fleets().apply_components(&endpoint.name, epoch, |fleet| {
            for (variant, plan) in plans {
                let before = fleet.hosts.get(variant).map(Vec::len);
                fleet.hosts.insert(variant.clone(), plan.instances.clone());
                if let Some(v) = endpoint.variants.iter_mut().find(|v| v.name == *variant) {
                    let (from, to) = (before.unwrap_or(v.current_instance_count as usize), plan.instances.len());
                    if from != to || v.current_instance_count as usize != to {
                        v.current_instance_count = to as u32;
                        v.desired_instance_count = to as u32;
                        events.push((variant.clone(), EventKind::CapacityChanged, format!("Managed instance scaling: variant {variant} now runs {to} instances (was {from})")));
                    }
                }
                for id in &plan.stop {
                    let Some(owner) = owners.get(id) else { continue };
                    if let Some(entry) = fleet.entries.get_mut(&NameKey::of(owner)) {
                        if let Some(at) = entry.copies.iter().position(|c| c.id == *id) {
                            retired.push(entry.copies.remove(at).handle);
                        }
                    }
                }
            }
            for c in &components {
                let key = NameKey::of(&c.name);
                let planned = planned_for.iter().find(|p| p.name == c.name).filter(|p| p.status != ComponentStatus::Deleting);
                let entry = fleet.entries.entry(key.clone()).or_insert_with(|| ComponentEntry { name: c.name.clone(), variant: c.variant_name.clone(), copies: Vec::new() });
                let previous_generation = c.rollout.as_ref().map(|r| r.from.generation);
                let mut failure = None;
                for generation in [Some(c.generation), previous_generation].into_iter().flatten() {
                    // Started for a revision the component still runs (not changed meanwhile).
                    let fresh = planned.and_then(|p| p.revision_at(generation)) == c.revision_at(generation);
                    match started.remove(&(c.name.clone(), generation)) {
                        Some(Ok(copies)) if fresh => {
                            for (instance, handle) in copies {
                                let id = handle.slot().id.clone();
                                entry.copies.push(ComponentCopy { id, instance, generation, handle });
                            }
                        }
                        Some(Ok(copies)) => retired.extend(copies.into_iter().map(|(_, i)| i)),
                        Some(Err(reason)) => failure = Some(reason),
                        None => {}
                    }
                }
                let running = entry.copies_of(c.generation);
                let previous = previous_generation.map_or(0, |g| entry.copies_of(g));
                let waiting = plans.iter().map(|(_, p)| p.waiting_for(&c.name)).sum::<u32>();
                let mut next = c.clone();
                next.current_copies = running + previous;
                match c.status {
                    ComponentStatus::Deleting => {
                        if entry.copies.is_empty() {
                            fleet.entries.remove(&key);
                            deleted.push(c.name.clone());
                            events.push((c.variant_name.clone(), EventKind::StatusChanged, format!("Inference component {} deleted", c.name)));
                        }
                    }
                    ComponentStatus::Failed => {}
                    ComponentStatus::Updating if c.rollout.is_some() => {
                        self.step_rollout(&mut next, failure, (running, previous), waiting, now, &mut events);
                    }
                    status => match failure {
                        Some(reason) if status == ComponentStatus::Creating || running == 0 => {
                            next.status = ComponentStatus::Failed;
                            next.failure_reason = Some(reason);
                        }
                        Some(reason) => {
                            // A scale-out that could not start: the count goes back to what runs.
                            let message = format!("Inference component {}: copies did not start: {reason}", c.name);
                            events.push((c.variant_name.clone(), EventKind::DeploymentFailed, message));
                            next.desired_copies = running;
                            next.status = ComponentStatus::InService;
                        }
                        None if running >= c.desired_copies => {
                            next.status = ComponentStatus::InService;
                            next.failure_reason = None;
                        }
                        None if waiting > 0 && status == ComponentStatus::Creating && running == 0 => {
                            next.status = ComponentStatus::Failed;
                            next.failure_reason = Some(format!(
                                "CapacityError: Unable to place inference component {}: each of its {} copies needs {} CPU cores and {} MB of memory, and the instances of variant {} have no room for one (add instances, raise ManagedInstanceScaling's MaxInstanceCount, or free room).",
                                c.name, c.desired_copies, c.requirements.cpu_cores.unwrap_or(0.0), c.requirements.min_memory_mb, c.variant_name
                            ));
                        }
                        None if waiting > 0 => {
                            if status != ComponentStatus::InService {
                                let message = format!(
                                    "Inference component {}: {waiting} of its {} copies wait for room on the instances of variant {}",
                                    c.name, c.desired_copies, c.variant_name
                                );
                                events.push((c.variant_name.clone(), EventKind::DeploymentStep, message));
                            }
                            next.status = ComponentStatus::InService;
                            next.failure_reason = None;
                        }
                        None => {}
                    },
                }
                if next.status != c.status {
                    let reason = next.failure_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
                    let message = format!("Inference component {} is {}{reason}", c.name, next.status.as_str());
                    events.push((c.variant_name.clone(), EventKind::StatusChanged, message));
                }
                if next != *c {
                    next.modified = now;
                    changed.push(next);
                }
            }
            // Copies started for what no longer exists (a component deleted meanwhile).
            retired.extend(started.drain().flat_map(|(_, r)| r.into_iter().flatten().map(|(_, i)| i)));
        });
        if applied.is_none() {
            drop(guard);
            let orphans: Vec<Instance> = started.into_values().flatten().flatten().map(|(_, i)| i).collect();
            return crate::deploy::stop_all(orphans).await;
        }
        let endpoint_changed = !events.iter().all(|(_, k, _)| *k != EventKind::CapacityChanged);
        let result: Result<(), ControlError> = async {
            if endpoint_changed {
                endpoint.modified = now;
                let stored = endpoint.clone();
                self.db(move |s| s.update(&stored)).await?;
            }
            for c in changed.iter().filter(|c| !deleted.contains(&c.name)) {
                let stored = c.clone();
                self.db(move |s| s.update(&stored)).await?;
            }
            for name in &deleted {
                let key = name.clone();
                self.db(move |s| s.remove::<InferenceComponent>(&key)).await?;
            }
            Ok(())
        }
        .await;
        self.routing.publish(self.fleets().route(&endpoint));
        drop(guard);
        if let Err(e) = result {
            tracing::error!(endpoint = %endpoint.name, error = %e, "could not record the inference components' state");
        }
        for c in &changed {
            tracing::info!(component = %c.name, status = c.status.as_str(), copies = c.current_copies, desired = c.desired_copies, reason = c.failure_reason.as_deref().unwrap_or(""), "inference component");
        }
        for (variant, kind, message) in events {
            self.record_event(&endpoint.name, Some(&variant), kind, message);
        }
        if !retired.is_empty() {
            let span = tracing::info_span!("retire", endpoint = %endpoint.name, copies = retired.len());
            self.work.spawn_detached(span, crate::deploy::stop_all(retired));
        }
        // What this step changed may let waiting copies in, or need another step; a rolling
        // update is looked at again each second (its baking, its alarms).
        let rolling = components.iter().chain(&changed).any(|c| c.rollout.is_some() && !deleted.contains(&c.name));
        if !changed.is_empty() || !deleted.is_empty() || rolling {
            let (this, name) = (self.clone(), endpoint.name.clone());
            let pause = if changed.is_empty() && deleted.is_empty() { Duration::from_secs(1) } else { Duration::ZERO };
            tokio::spawn(async move {
                tokio::time::sleep(pause).await;
                this.reconcile_components(&name).await
            });
        }
    }

    /// Why a rolling update of `c` must roll back now, if it must: the execution timeout has
    /// passed, or a rollback alarm is in ALARM (or cannot be read).
    async fn rollback_reason(&self, c: &InferenceComponent) -> Option<String> {
        let r = c.rolling_forward()?;
        if r.deadline.is_some_and(|d| self.now() >= d) {
            return Some("the deployment exceeded MaximumExecutionTimeoutInSeconds".into());
        }
        self.rollback_alarm_reason(&r.deployment.rollback_alarms).await
    }

    /// Turns the rolling update of component `name` back, for `why`, and stores it: the
    /// earlier revision returns, from the copies of it still running.
    async fn roll_back_component(&self, endpoint: &str, epoch: u64, name: &str, why: String) -> Option<InferenceComponent> {
        let _guard = self.transitions.lock().await;
        let mut c = self.describe_inference_component(name).await.ok()?;
        let from = c.rolling_forward()?.from.generation;
        let key = NameKey::of(name);
        let running =
            self.fleets().apply_components(endpoint, epoch, |f| f.entries.get(&key).map_or(0, |e| e.copies_of(from))).unwrap_or(0);
        c.roll_back(why.clone(), running);
        c.modified = self.now();
        let stored = c.clone();
        if let Err(e) = self.db(move |s| s.update(&stored)).await {
            tracing::error!(component = %name, error = %e, "could not record the rollback of a rolling update");
            return None;
        }
        tracing::warn!(component = %name, reason = %why, "rolling the inference component's update back");
        self.record_event(endpoint, Some(&c.variant_name), EventKind::DeploymentStep, rolling_back_message(name, &why));
        Some(c)
    }

    /// One look at a rolling update in a commit, given the copies running of the component's
    /// revision and of the other one (`running`): a copy that did not start rolls it back
    /// (or, on the way back, fails the component); otherwise the step bakes, the next batch
    /// begins, or the update ends.
    fn step_rollout(
        &self,
        next: &mut InferenceComponent,
        failure: Option<String>,
        (running, previous): (u32, u32),
        waiting: u32,
        now: berth_domain::Timestamp,
        events: &mut Vec<(String, EventKind, String)>,
    ) {
        let Some(rollout) = next.rollout.clone() else { return };
        let (name, variant) = (next.name.clone(), next.variant_name.clone());
        let no_room = (waiting > 0 && rollout.rolling_back.is_none()).then(|| {
            format!("CapacityError: {waiting} copies of the new specification find no room on the instances of variant {variant}")
        });
        match (failure.or(no_room), &rollout.rolling_back) {
            (Some(reason), None) => {
                let why = format!("copies of the new specification did not start: {reason}");
                events.push((variant, EventKind::DeploymentStep, rolling_back_message(&name, &why)));
                next.roll_back(why, previous);
            }
            (Some(reason), Some(why)) => {
                next.rollout = None;
                next.status = ComponentStatus::Failed;
                next.failure_reason =
                    Some(format!("The update was rolled back ({why}), and copies of the earlier specification did not start: {reason}"));
            }
            (None, _) => match next.advance_rollout(running, previous, now) {
                RolloutProgress::Starting => {}
                RolloutProgress::Baking(_) if rollout.baked_at.is_some() => {}
                RolloutProgress::Baking(until) => {
                    let secs = (until.millis() - now.millis()).max(0) / 1000;
                    let message = format!(
                        "Inference component {name}: {running} of {} copies run the new specification; baking for {secs} s",
                        next.desired_copies
                    );
                    events.push((variant, EventKind::DeploymentStep, message));
                }
                RolloutProgress::NextBatch(target) => {
                    let message = format!("Inference component {name}: next batch, to {target} of {} copies", next.desired_copies);
                    events.push((variant, EventKind::DeploymentStep, message));
                }
                RolloutProgress::Done => {
                    next.rollout = None;
                    next.status = ComponentStatus::InService;
                    match rollout.rolling_back {
                        Some(why) => {
                            next.failure_reason = Some(format!("The update was rolled back: {why}"));
                            events.push((
                                variant,
                                EventKind::DeploymentRolledBack,
                                format!("Inference component {name}: rolled back to its earlier specification: {why}"),
                            ));
                        }
                        None => next.failure_reason = None,
                    }
                }
            },
        }
    }
}

/// The event of a rolling update turning back.
fn rolling_back_message(component: &str, why: &str) -> String {
    format!("Inference component {component}: rolling the update back: {why}")
}

/// The variant state a component's copies start as: `count` instances of its container on its
/// host variant's instance type, under the component's metrics key.
fn copy_state(c: &InferenceComponent, host: &VariantState, count: u32) -> VariantState {
    VariantState {
        name: VariantKey::component(&c.endpoint_name, &c.name).variant,
        model_name: c.model_name.clone().unwrap_or_default(),
        container: c.container.clone(),
        desired_instance_count: count,
        current_instance_count: 0,
        container_startup_timeout_secs: c.startup_timeout_secs,
        model_data_download_timeout_secs: c.download_timeout_secs,
        network_isolation: c.network_isolation,
        hosts_components: false,
        managed_scaling: None,
        image_resolved: None,
        resolved_image: None,
        ..host.clone()
    }
}
