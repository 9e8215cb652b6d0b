//! Endpoint operations and the background tasks that carry them out.

use crate::deploy::{stop_all, FleetMap, VariantFleet};
use crate::listing::{page, ListQuery, Page};
use crate::models::{limit_exceeded, map_exists};
use crate::tags::validate_tags;
use crate::{ControlError, Controller};
use berth_domain::{validate_name, DeploymentConfig, Endpoint, EndpointStatus, PendingUpdate, ResourceKind, VariantSpec, VariantState};
use berth_store::Resources;
use berth_store::Tag;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::task::JoinSet;

#[derive(Debug, Clone)]
pub struct CreateEndpoint {
    pub name: String,
    pub config_name: String,
    pub tags: Vec<Tag>,
    /// Kept as the endpoint's deployment config, for updates with `RetainDeploymentConfig`.
    pub deployment_config: Option<DeploymentConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariantProperty {
    DesiredInstanceCount,
    DesiredWeight,
    DataCaptureConfig,
}

#[derive(Debug, Clone)]
pub struct UpdateEndpoint {
    pub name: String,
    pub config_name: String,
    pub retain_all_variant_properties: bool,
    pub exclude_retained_variant_properties: Vec<VariantProperty>,
    /// How to move traffic to the new config (guardrails); None: all at once.
    pub deployment_config: Option<DeploymentConfig>,
    /// Use the endpoint's last deployment config when none is given.
    pub retain_deployment_config: bool,
}

#[derive(Debug, Clone)]
pub struct DesiredWeightAndCapacity {
    pub variant: String,
    pub weight: Option<f64>,
    pub instance_count: Option<u32>,
    /// A serverless variant's new MaxConcurrency and ProvisionedConcurrency
    /// (`ServerlessUpdateConfig`; 0 provisioned = none).
    pub serverless: Option<(Option<u32>, Option<u32>)>,
}

impl Controller {
    pub async fn create_endpoint(self: &Arc<Self>, req: CreateEndpoint) -> Result<Endpoint, ControlError> {
        validate_name("endpointName", &req.name)?;
        validate_name("endpointConfigName", &req.config_name)?;
        validate_tags(&req.tags)?;
        let config = self.describe_endpoint_config(&req.config_name).await?;
        let variants = self.variant_states(&config.variants).await?;
        let arn = self.account().arn(ResourceKind::Endpoint, &req.name);
        let now = self.now();
        let endpoint = Endpoint {
            name: req.name.clone(),
            arn: arn.clone(),
            created: now,
            modified: now,
            config_name: config.name.clone(),
            status: EndpointStatus::Creating,
            failure_reason: None,
            variants,
            pending: None,
            last_deployment_config: None,
            data_capture: config.data_capture.clone(),
            async_inference: config.async_inference.clone(),
            previous_weights: None,
        };
        if let Some(dc) = &req.deployment_config {
            let instances = endpoint.variants.iter().map(|v| v.desired_instance_count).sum();
            dc.validate(instances, endpoint.variants.len() == 1)?;
            self.alarms_in_alarm(&dc.rollback_alarms).await?;
        }
        let mut endpoint = endpoint;
        endpoint.last_deployment_config = req.deployment_config.clone();
        {
            let _guard = self.transitions.lock().await;
            let all = self.db(|s| s.list::<Endpoint>()).await?;
            let limit = self.settings.limits.max_endpoints;
            if all.len() >= limit {
                return Err(limit_exceeded("Number of endpoints", limit, all.len(), "endpoints"));
            }
            self.check_instance_limit(&all, None, &endpoint.variants)?;
            self.routing.set_sticky(&endpoint.name, crate::tags::sticky_key(&req.tags));
            let (stored, tags) = (endpoint.clone(), req.tags);
            self.db(move |s| s.insert(&stored, &tags)).await.map_err(|e| map_exists(e, ResourceKind::Endpoint, &arn))?;
            // What an earlier endpoint of this name captured is not this one's.
            self.forget_quality(&endpoint.name).await?;
        }
        tracing::info!(endpoint = %endpoint.name, config = %endpoint.config_name, "endpoint creating");
        self.record_status(&endpoint, &format!("created with endpoint config {}", endpoint.config_name));
        self.reconcile_endpoint(&endpoint.name).await;
        Ok(endpoint)
    }

    pub async fn describe_endpoint(&self, name: &str) -> Result<Endpoint, ControlError> {
        self.find(name).await
    }

    /// Every stored endpoint, in no particular order.
    pub async fn all_endpoints(&self) -> Result<Vec<Endpoint>, ControlError> {
        self.db(|s| s.list::<Endpoint>()).await
    }

    pub async fn list_endpoints(&self, q: ListQuery) -> Result<Page<Endpoint>, ControlError> {
        page(self.db(|s| s.list::<Endpoint>()).await?, &q)
    }

    pub async fn delete_endpoint(self: &Arc<Self>, name: &str) -> Result<(), ControlError> {
        let _guard = self.transitions.lock().await;
        let mut endpoint = self.describe_endpoint(name).await?;
        if endpoint.status == EndpointStatus::Deleting {
            return Ok(());
        }
        let key = berth_domain::NameKey::of(&endpoint.name);
        let hosted: Vec<String> = self
            .inference_components()
            .await?
            .into_iter()
            .filter(|c| berth_domain::NameKey::of(&c.endpoint_name) == key)
            .map(|c| c.name)
            .collect();
        if !hosted.is_empty() {
            return Err(ControlError::Validation(format!(
                "Endpoint {} hosts inference components ({}): delete them first (DeleteInferenceComponent).",
                endpoint.name,
                hosted.join(", ")
            )));
        }
        endpoint.status = EndpointStatus::Deleting;
        endpoint.modified = self.now();
        let stored = endpoint.clone();
        self.db(move |s| s.update(&stored)).await?;
        self.routing.remove(&endpoint.name);
        self.endpoints.reconciler.retire(&endpoint.name, self.fleets().remove(&endpoint.name));
        drop(_guard);
        tracing::info!(endpoint = %endpoint.name, "endpoint deleting");
        self.record_status(&endpoint, "DeleteEndpoint");
        self.reconcile_endpoint(&endpoint.name).await;
        Ok(())
    }

    pub async fn update_endpoint(self: &Arc<Self>, req: UpdateEndpoint) -> Result<Endpoint, ControlError> {
        validate_name("endpointName", &req.name)?;
        validate_name("endpointConfigName", &req.config_name)?;
        let config = self.describe_endpoint_config(&req.config_name).await?;
        let mut variants = self.variant_states(&config.variants).await?;
        let _guard = self.transitions.lock().await;
        let mut endpoint = self.describe_endpoint(&req.name).await?;
        self.require_in_service(&endpoint)?;
        if endpoint.hosts_components() || variants.iter().any(|v| v.hosts_components) {
            return Err(ControlError::Validation(format!(
                "berth does not update endpoints for inference components, nor endpoints to or from them: update endpoint {}'s inference components (UpdateInferenceComponent), or create a new endpoint.",
                endpoint.name
            )));
        }
        if req.retain_all_variant_properties {
            let excluded = &req.exclude_retained_variant_properties;
            for v in &mut variants {
                let Some(old) = endpoint.variant(&v.name) else { continue };
                if !excluded.contains(&VariantProperty::DesiredWeight) {
                    v.current_weight = old.desired_weight;
                    v.desired_weight = old.desired_weight;
                }
                if !excluded.contains(&VariantProperty::DesiredInstanceCount) {
                    v.desired_instance_count = old.desired_instance_count;
                }
            }
        }
        let all = self.db(|s| s.list::<Endpoint>()).await?;
        let deployment =
            req.deployment_config.clone().or(if req.retain_deployment_config { endpoint.last_deployment_config.clone() } else { None });
        if let Some(dc) = &deployment {
            let instances = variants.iter().map(|v| v.desired_instance_count).sum();
            let same_single = endpoint.variants.len() == 1 && variants.len() == 1 && endpoint.variants[0].name == variants[0].name;
            dc.validate(instances, same_single)?;
            self.alarms_in_alarm(&dc.rollback_alarms).await?;
            // Blue/green runs both fleets at once: count the new fleet beside the old one.
            let both: Vec<VariantState> = endpoint.variants.iter().chain(&variants).cloned().collect();
            self.check_instance_limit(&all, Some(&endpoint.name), &both)?;
        }
        self.check_instance_limit(&all, Some(&endpoint.name), &variants)?;
        endpoint.status = EndpointStatus::Updating;
        if deployment.is_some() {
            endpoint.last_deployment_config = deployment.clone();
        }
        // Retained variant properties include data capture unless excluded (SageMaker's rule).
        let keep_capture =
            req.retain_all_variant_properties && !req.exclude_retained_variant_properties.contains(&VariantProperty::DataCaptureConfig);
        endpoint.pending = Some(PendingUpdate {
            config_name: config.name.clone(),
            variants,
            deployment_config: deployment.clone(),
            deployment: None,
            data_capture: if keep_capture { endpoint.data_capture.clone() } else { config.data_capture.clone() },
            async_inference: config.async_inference.clone(),
        });
        endpoint.failure_reason = None;
        endpoint.modified = self.now();
        let stored = endpoint.clone();
        self.db(move |s| s.update(&stored)).await?;
        drop(_guard);
        tracing::info!(endpoint = %endpoint.name, config = %config.name, "endpoint updating");
        self.record_status(&endpoint, &format!("UpdateEndpoint to endpoint config {}", config.name));
        self.reconcile_endpoint(&endpoint.name).await;
        Ok(endpoint)
    }

    /// Brings every stored endpoint back after a restart: the ones that were serving (or rolling
    /// back) are marked `SystemUpdating`, to start their instances again; then a resync of every
    /// reconciler carries out what the store says, as after any change — a creation comes up, an
    /// interrupted update is carried out, an interrupted delete is finished, a transform job in
    /// progress runs again.
    pub async fn recover(self: &Arc<Self>) -> Result<(), ControlError> {
        for mut endpoint in self.db(|s| s.list::<Endpoint>()).await? {
            let name = endpoint.name.clone();
            if endpoint.status != EndpointStatus::Deleting {
                self.refresh_sticky(&endpoint.arn).await?;
            }
            if matches!(endpoint.status, EndpointStatus::InService | EndpointStatus::SystemUpdating | EndpointStatus::RollingBack) {
                if endpoint.status == EndpointStatus::RollingBack {
                    // A rollback interrupted by the restart: only the old config runs now.
                    endpoint.pending = None;
                }
                endpoint.status = EndpointStatus::SystemUpdating;
                for v in &mut endpoint.variants {
                    v.desired_instance_count = v.desired_instance_count.max(1);
                }
                let stored = endpoint.clone();
                self.db(move |s| s.update(&stored)).await?;
                tracing::info!(endpoint = %name, "recovering endpoint");
                self.routing.expect([name.as_str()]);
                self.record_status(&endpoint, "berth restarted; starting the endpoint's instances again");
            }
        }
        self.fail_interrupted_executions().await?;
        self.recovered.store(true, std::sync::atomic::Ordering::Release);
        self.resync().await
    }

    /// Stops every instance (drain, SIGTERM, grace, SIGKILL). State is left as it is, so the
    /// next start recovers the endpoints.
    pub async fn shutdown(&self) {
        // Lifecycle steps first, so that none starts an instance once the fleets are taken.
        let left = self.work.shutdown(std::time::Duration::from_secs(10)).await;
        if left > 0 {
            tracing::warn!(tasks = left, "background steps did not end in 10 s; they end with the server");
        }
        stop_all(self.fleets().take_all()).await;
        self.events.flush().await;
    }

    // ---- helpers ----------------------------------------------------------------------

    /// Starts every variant in `variants` but those in `skip`, all or nothing.
    pub(crate) async fn start_fleet(
        self: &Arc<Self>,
        endpoint: &str,
        variants: &[VariantState],
        skip: &HashSet<String>,
    ) -> Result<FleetMap, String> {
        let mut set = JoinSet::new();
        for v in variants.iter().filter(|v| !skip.contains(&v.name)) {
            let (this, endpoint, v) = (self.clone(), endpoint.to_string(), v.clone());
            set.spawn(async move {
                let started = match this.start_instances(&endpoint, &v).await {
                    Ok(instances) => Ok((instances, this.model_cache(&endpoint, &v).await)),
                    Err(e) => Err(e),
                };
                (v, started)
            });
        }
        let mut fleet = FleetMap::new();
        let mut first_error = None;
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((v, Ok((instances, models)))) => {
                    fleet.insert(v.name.clone(), VariantFleet::new(&v, instances, models));
                }
                Ok((_, Err(reason))) => {
                    first_error.get_or_insert(reason);
                }
                Err(e) => {
                    first_error.get_or_insert(crate::work::task_failure("starting the variant", e));
                }
            }
        }
        match first_error {
            None => Ok(fleet),
            Some(reason) => {
                stop_all(fleet.into_values().flat_map(|v| v.instances).collect()).await;
                Err(reason)
            }
        }
    }

    pub(crate) fn log_commit(&self, endpoint: &Endpoint, committed: Result<bool, String>) {
        match committed {
            Ok(true) => {
                tracing::info!(endpoint = %endpoint.name, status = endpoint.status.as_str(), reason = endpoint.failure_reason.as_deref().unwrap_or(""), "endpoint status");
                self.record_status(endpoint, "");
            }
            Ok(false) => {
                tracing::info!(endpoint = %endpoint.name, "endpoint was deleted while it was changing; its new instances are stopped")
            }
            Err(e) => tracing::error!(endpoint = %endpoint.name, error = %e, "could not record endpoint state"),
        }
    }

    /// The variant states a config describes, with each model's container fixed now.
    pub(crate) async fn variant_states(&self, specs: &[VariantSpec]) -> Result<Vec<VariantState>, ControlError> {
        let mut states = Vec::with_capacity(specs.len());
        for spec in specs {
            if spec.hosts_components() {
                states.push(component_host_state(spec));
                continue;
            }
            let model = self.describe_model(&spec.model_name).await?;
            states.push(variant_state(spec, &model));
        }
        Ok(states)
    }

    /// The endpoint's epoch if it can take an update now.
    pub(crate) fn require_in_service(&self, endpoint: &Endpoint) -> Result<(), ControlError> {
        match endpoint.status {
            EndpointStatus::InService => {}
            EndpointStatus::Failed => {
                return Err(ControlError::Validation(format!(
                    "Cannot update failed endpoint \"{}\". Delete it and create it again.",
                    endpoint.arn
                )))
            }
            _ => return Err(ControlError::Validation(format!("Cannot update in-progress endpoint \"{}\".", endpoint.arn))),
        }
        match self.fleets().epoch(&endpoint.name) {
            Some(_) => Ok(()),
            None => Err(ControlError::Internal(format!("endpoint {} is in service but has no fleet", endpoint.name))),
        }
    }

    /// Refuses a change that would run more instances than the server allows. `replacing`
    /// names the endpoint whose instances `variants` replace.
    pub(crate) fn check_instance_limit(
        &self,
        all: &[Endpoint],
        replacing: Option<&str>,
        variants: &[VariantState],
    ) -> Result<(), ControlError> {
        let running = |e: &Endpoint| {
            let own: u32 = e.variants.iter().map(|v| v.desired_instance_count).sum();
            let pending: u32 = e.pending_variants().iter().map(|v| v.desired_instance_count).sum();
            own.max(pending) as usize
        };
        let others: usize = all
            .iter()
            .filter(|e| !matches!(e.status, EndpointStatus::Failed | EndpointStatus::Deleting) && Some(e.name.as_str()) != replacing)
            .map(running)
            .sum();
        let wanted: usize = variants.iter().map(|v| v.desired_instance_count as usize).sum();
        let limit = self.settings.limits.max_instances;
        if others + wanted > limit {
            return Err(limit_exceeded("Number of instances across all endpoints", limit, others, "instances"));
        }
        Ok(())
    }
}

/// A variant's starting state: its spec with the model it serves.
pub(crate) fn variant_state(spec: &VariantSpec, model: &berth_domain::Model) -> VariantState {
    VariantState {
        name: spec.name.clone(),
        model_name: model.name.clone(),
        instance_type: spec.instance_type.clone(),
        container: model.serving_container().clone(),
        current_weight: spec.initial_weight,
        desired_weight: spec.initial_weight,
        current_instance_count: 0,
        // A serverless variant starts with no instance, or one kept warm.
        desired_instance_count: match spec.serverless {
            Some(s) => u32::from(s.provisioned_concurrency.is_some()),
            None => spec.initial_instance_count,
        },
        routing: spec.routing.unwrap_or_default(),
        container_startup_timeout_secs: spec.container_startup_timeout_secs,
        model_data_download_timeout_secs: spec.model_data_download_timeout_secs,
        image_resolved: None,
        resolved_image: None,
        network_isolation: model.enable_network_isolation == Some(true),
        shadow: spec.shadow,
        serverless: spec.serverless,
        multi_container: model.multi_container(),
        hosts_components: false,
        managed_scaling: None,
    }
}

/// The starting state of a variant that names no model: its instances host inference
/// components' copies and run nothing of their own.
pub(crate) fn component_host_state(spec: &VariantSpec) -> VariantState {
    VariantState {
        name: spec.name.clone(),
        model_name: String::new(),
        instance_type: spec.instance_type.clone(),
        container: berth_domain::ContainerSpec::new("", None),
        current_weight: spec.initial_weight,
        desired_weight: spec.initial_weight,
        current_instance_count: 0,
        desired_instance_count: spec.initial_instance_count,
        routing: spec.routing.unwrap_or_default(),
        container_startup_timeout_secs: spec.container_startup_timeout_secs,
        model_data_download_timeout_secs: spec.model_data_download_timeout_secs,
        image_resolved: None,
        resolved_image: None,
        network_isolation: false,
        shadow: false,
        serverless: None,
        multi_container: None,
        hosts_components: true,
        managed_scaling: spec.managed_scaling,
    }
}
