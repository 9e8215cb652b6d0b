//! Inference experiments (shadow mode): starting one puts a shadow variant beside the endpoint's
//! production variant through an ordinary endpoint update (berth writes the endpoint config);
//! stopping it promotes, removes or retains the shadow the same way. A once-a-second tick
//! ([`Controller::run_experiments`]) starts scheduled experiments, ends them at their end time,
//! and moves `Starting`/`Stopping` on once the endpoint runs the new config.

use crate::{ControlError, Controller, CreateEndpointConfig, UpdateEndpoint};
use berth_domain::{
    validate_name, EndpointConfig, EndpointStatus, EventKind, ExperimentStatus, ExperimentVariant, InferenceExperiment, ResourceKind,
    Timestamp, VariantAction, VariantSpec, DEFAULT_EXPERIMENT_SECS,
};
use berth_store::Resources;
use berth_store::Tag;
use std::collections::HashMap;
use std::sync::Arc;

/// CreateInferenceExperiment's input: the experiment as the caller describes it (its ARN,
/// status and times are set when it is created), and its tags.
#[derive(Debug, Clone)]
pub struct CreateInferenceExperiment {
    pub experiment: InferenceExperiment,
    pub tags: Vec<Tag>,
}

/// StopInferenceExperiment's input.
#[derive(Debug, Clone)]
pub struct StopInferenceExperiment {
    pub name: String,
    pub actions: HashMap<String, VariantAction>,
    pub desired_variants: Option<Vec<ExperimentVariant>>,
    pub desired_state: Option<ExperimentStatus>,
    pub reason: Option<String>,
}

/// UpdateInferenceExperiment's input: what is `Some` changes.
#[derive(Debug, Clone, Default)]
pub struct UpdateInferenceExperiment {
    pub name: String,
    pub description: Option<String>,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub sampling_percentage: Option<u32>,
}

fn invalid<T>(m: impl Into<String>) -> Result<T, ControlError> {
    Err(ControlError::Validation(m.into()))
}

impl Controller {
    pub async fn create_inference_experiment(
        self: &Arc<Self>,
        original: CreateInferenceExperiment,
    ) -> Result<InferenceExperiment, ControlError> {
        let req = &original.experiment;
        if req.name.is_empty() || req.name.len() > 120 {
            return invalid("Name must be 1 to 120 characters long.");
        }
        validate_name("endpointName", &req.endpoint_name)?;
        if req.kms_key.is_some() {
            return Err(ControlError::Validation(crate::configs::STORAGE_VOLUME_KMS.into()));
        }
        if req.variants.is_empty() || req.variants.len() > 2 {
            return invalid("ModelVariants must hold the production variant and the shadow variant.");
        }
        if req.sampling_percentage > 100 {
            return invalid("SamplingPercentage must be between 0 and 100.");
        }
        if req.source_variant == req.shadow_variant {
            return invalid("The shadow variant must differ from the source variant.");
        }
        for v in &req.variants {
            validate_name("variantName", &v.variant_name)?;
            self.describe_model(&v.model_name).await?;
        }
        if !req.variants.iter().any(|v| v.variant_name == req.shadow_variant) {
            return invalid(format!("ShadowModelVariantName '{}' is not one of the ModelVariants.", req.shadow_variant));
        }
        let endpoint = self.describe_endpoint(&req.endpoint_name).await?;
        if endpoint.variant(&req.source_variant).is_none_or(|v| v.shadow) {
            return invalid(format!(
                "SourceModelVariantName '{}' is not a production variant of endpoint {}.",
                req.source_variant, endpoint.name
            ));
        }
        if let (Some(s), Some(e)) = (req.start, req.end) {
            if e <= s {
                return invalid("The schedule's EndTime must be after its StartTime.");
            }
        }
        let others = self.list_inference_experiments().await?;
        if let Some(busy) = others.iter().find(|x| x.endpoint_name.eq_ignore_ascii_case(&endpoint.name) && !x.status.ended()) {
            return invalid(format!(
                "Endpoint {} already has inference experiment {} ({}).",
                endpoint.name,
                busy.name,
                busy.status.as_str()
            ));
        }
        let now = self.now();
        let arn = self.account().arn(ResourceKind::InferenceExperiment, &req.name);
        let CreateInferenceExperiment { experiment, tags } = original;
        let experiment = InferenceExperiment {
            arn: arn.clone(),
            endpoint_name: endpoint.name.clone(),
            status: ExperimentStatus::Created,
            status_reason: None,
            created: now,
            modified: now,
            completed: None,
            endpoint_config_name: None,
            stop_to: None,
            ..experiment
        };
        let (stored, tags) = (experiment.clone(), tags);
        self.db(move |s| s.insert(&stored, &tags))
            .await
            .map_err(|e| crate::models::map_exists(e, ResourceKind::InferenceExperiment, &arn))?;
        tracing::info!(experiment = %experiment.name, endpoint = %experiment.endpoint_name, "inference experiment created");
        if experiment.start.is_none_or(|s| s <= now) {
            return self.begin_experiment(experiment).await;
        }
        Ok(experiment)
    }

    pub async fn describe_inference_experiment(&self, name: &str) -> Result<InferenceExperiment, ControlError> {
        self.find(name).await
    }

    pub async fn list_inference_experiments(&self) -> Result<Vec<InferenceExperiment>, ControlError> {
        self.all().await
    }

    pub async fn start_inference_experiment(self: &Arc<Self>, name: &str) -> Result<InferenceExperiment, ControlError> {
        let mut x = self.describe_inference_experiment(name).await?;
        if x.status != ExperimentStatus::Created {
            return invalid(format!("Inference experiment {name} is {}; only a Created experiment can be started.", x.status.as_str()));
        }
        x.start = Some(self.now());
        self.begin_experiment(x).await
    }

    pub async fn update_inference_experiment(
        self: &Arc<Self>,
        req: UpdateInferenceExperiment,
    ) -> Result<InferenceExperiment, ControlError> {
        let mut x = self.describe_inference_experiment(&req.name).await?;
        if x.status.ended() || matches!(x.status, ExperimentStatus::Starting | ExperimentStatus::Stopping) {
            return invalid(format!("Inference experiment {} is {} and cannot be updated.", x.name, x.status.as_str()));
        }
        if let Some(d) = req.description {
            x.description = Some(d);
        }
        if req.start.is_some() {
            if x.status == ExperimentStatus::Running {
                return invalid("The StartTime of a running experiment cannot change.");
            }
            x.start = req.start;
        }
        if req.end.is_some() {
            x.end = req.end;
        }
        let resample = req.sampling_percentage.filter(|p| *p != x.sampling_percentage);
        if let Some(p) = resample {
            if p > 100 {
                return invalid("SamplingPercentage must be between 0 and 100.");
            }
            x.sampling_percentage = p;
        }
        x.modified = self.now();
        self.save_experiment(&x).await?;
        if resample.is_some() && x.status == ExperimentStatus::Running {
            // A new sampling share is a new weight of the shadow variant: no instance restarts.
            let endpoint = self.describe_endpoint(&x.endpoint_name).await?;
            let source = endpoint.variant(&x.source_variant).map_or(1.0, |v| v.desired_weight);
            let weight = source * f64::from(x.sampling_percentage) / 100.0;
            let desired = vec![crate::DesiredWeightAndCapacity {
                variant: x.shadow_variant.clone(),
                weight: Some(weight),
                instance_count: None,
                serverless: None,
            }];
            self.update_weights_and_capacities(&x.endpoint_name, desired).await?;
        }
        Ok(x)
    }

    pub async fn stop_inference_experiment(self: &Arc<Self>, req: StopInferenceExperiment) -> Result<InferenceExperiment, ControlError> {
        let mut x = self.describe_inference_experiment(&req.name).await?;
        if x.status != ExperimentStatus::Running {
            return invalid(format!("Inference experiment {} is {}; only a Running experiment can be stopped.", x.name, x.status.as_str()));
        }
        for name in req.actions.keys() {
            if x.variant(name).is_none() {
                return invalid(format!("ModelVariantActions names '{name}', which is not a variant of the experiment."));
            }
        }
        let shadow_action = req.actions.get(&x.shadow_variant).copied().unwrap_or(VariantAction::Remove);
        let source_action = req.actions.get(&x.source_variant).copied().unwrap_or(VariantAction::Retain);
        if source_action == VariantAction::Remove && shadow_action != VariantAction::Promote {
            return invalid("The source variant can only be removed when the shadow variant is promoted.");
        }
        if source_action == VariantAction::Promote && shadow_action == VariantAction::Promote {
            return invalid("Only one variant can be promoted.");
        }
        if let Some(desired) = &req.desired_variants {
            for d in desired {
                self.describe_model(&d.model_name).await?;
                if let Some(v) = x.variants.iter_mut().find(|v| v.variant_name == d.variant_name) {
                    *v = d.clone();
                }
            }
        }
        let endpoint = self.describe_endpoint(&x.endpoint_name).await?;
        let mut specs = specs_of(&endpoint);
        match shadow_action {
            VariantAction::Retain => {}
            VariantAction::Remove => specs.retain(|s| s.name != x.shadow_variant),
            VariantAction::Promote => {
                let shadow = x.variant(&x.shadow_variant).cloned().expect("checked at creation");
                specs.retain(|s| s.name != x.shadow_variant);
                if let Some(source) = specs.iter_mut().find(|s| s.name == x.source_variant) {
                    // The shadow's model now serves the source variant's traffic, under its name.
                    source.model_name = shadow.model_name;
                    source.instance_type = shadow.instance_type;
                    source.initial_instance_count = shadow.instance_count.max(1);
                }
            }
        }
        let target = req.desired_state.unwrap_or(ExperimentStatus::Completed);
        if !target.ended() {
            return invalid("DesiredState must be Completed or Cancelled.");
        }
        x.status_reason = req.reason.or(x.status_reason);
        let action = match shadow_action {
            VariantAction::Promote => "shadow promoted",
            VariantAction::Remove => "shadow removed",
            VariantAction::Retain => "shadow retained",
        };
        self.record_event(
            &x.endpoint_name,
            Some(&x.shadow_variant),
            EventKind::DeploymentStep,
            format!("Inference experiment {} stopping: {action}", x.name),
        );
        if shadow_action == VariantAction::Retain {
            return self.finish_experiment(x, target).await;
        }
        x.stop_to = Some(target);
        x.status = ExperimentStatus::Stopping;
        self.apply_experiment_config(x, specs).await
    }

    pub async fn delete_inference_experiment(&self, name: &str) -> Result<String, ControlError> {
        let x = self.describe_inference_experiment(name).await?;
        if !(x.status.ended() || x.status == ExperimentStatus::Created) {
            return invalid(format!("Inference experiment {name} is {}; stop it before deleting it.", x.status.as_str()));
        }
        let key = x.name.clone();
        self.db(move |s| s.remove::<InferenceExperiment>(&key)).await?;
        Ok(x.arn)
    }

    /// Once a second: starts scheduled experiments, ends those past their end time, and moves
    /// `Starting` and `Stopping` ones on once their endpoint runs the config berth wrote.
    pub async fn run_experiments(self: &Arc<Self>, now: Timestamp) -> Result<(), ControlError> {
        for x in self.list_inference_experiments().await? {
            let name = x.name.clone();
            let result = match x.status {
                ExperimentStatus::Created if x.start.is_some_and(|s| s <= now) => self.begin_experiment(x).await.map(|_| ()),
                ExperimentStatus::Running if x.end.is_some_and(|e| e <= now) => {
                    let stop = StopInferenceExperiment {
                        name: x.name.clone(),
                        actions: HashMap::new(),
                        desired_variants: None,
                        desired_state: Some(ExperimentStatus::Completed),
                        reason: Some("The experiment reached its scheduled EndTime.".into()),
                    };
                    self.stop_inference_experiment(stop).await.map(|_| ())
                }
                ExperimentStatus::Starting | ExperimentStatus::Stopping => self.follow_endpoint(x).await,
                _ => Ok(()),
            };
            if let Err(e) = result {
                tracing::warn!(experiment = %name, error = %e, "inference experiment step failed");
            }
        }
        Ok(())
    }

    /// Puts the shadow beside the source variant on the endpoint.
    async fn begin_experiment(self: &Arc<Self>, mut x: InferenceExperiment) -> Result<InferenceExperiment, ControlError> {
        let endpoint = self.describe_endpoint(&x.endpoint_name).await?;
        let mut specs = specs_of(&endpoint);
        specs.retain(|s| s.name != x.shadow_variant);
        let source_weight = endpoint.variant(&x.source_variant).map_or(1.0, |v| v.desired_weight);
        if let (Some(source), Some(cfg)) = (specs.iter_mut().find(|s| s.name == x.source_variant), x.variant(&x.source_variant)) {
            source.model_name = cfg.model_name.clone();
            source.instance_type = cfg.instance_type.clone();
            source.initial_instance_count = cfg.instance_count.max(1);
        }
        let shadow = x.variant(&x.shadow_variant).cloned().expect("checked at creation");
        specs.push(VariantSpec {
            name: shadow.variant_name,
            model_name: shadow.model_name,
            instance_type: shadow.instance_type,
            initial_instance_count: shadow.instance_count.max(1),
            initial_weight: source_weight * f64::from(x.sampling_percentage) / 100.0,
            container_startup_timeout_secs: None,
            model_data_download_timeout_secs: None,
            routing: None,
            shadow: true,
            serverless: None,
            managed_scaling: None,
        });
        if x.end.is_none() {
            x.end = Some(Timestamp::from_millis(self.now().millis() + DEFAULT_EXPERIMENT_SECS * 1000));
        }
        x.start.get_or_insert(self.now());
        x.status = ExperimentStatus::Starting;
        self.record_event(
            &x.endpoint_name,
            Some(&x.shadow_variant),
            EventKind::DeploymentStep,
            format!("Inference experiment {} starting", x.name),
        );
        self.apply_experiment_config(x, specs).await
    }

    /// Writes an endpoint config with `specs` and updates the endpoint to it.
    async fn apply_experiment_config(
        self: &Arc<Self>,
        mut x: InferenceExperiment,
        specs: Vec<VariantSpec>,
    ) -> Result<InferenceExperiment, ControlError> {
        let short: String = x.name.chars().take(50).collect();
        let config_name = format!("{short}-{:08x}", fastrand::u32(..));
        // The endpoint keeps capturing (and answering asynchronous requests) as it did.
        let endpoint = self.describe_endpoint(&x.endpoint_name).await?;
        let config = EndpointConfig {
            data_capture: endpoint.data_capture,
            async_inference: endpoint.async_inference,
            kms_key_id: x.kms_key.clone(),
            ..EndpointConfig::new(&config_name, specs)
        };
        self.create_endpoint_config(CreateEndpointConfig { config, tags: vec![] }).await?;
        let update = UpdateEndpoint {
            name: x.endpoint_name.clone(),
            config_name: config_name.clone(),
            retain_all_variant_properties: false,
            exclude_retained_variant_properties: vec![],
            deployment_config: None,
            retain_deployment_config: false,
        };
        self.update_endpoint(update).await?;
        x.endpoint_config_name = Some(config_name);
        x.modified = self.now();
        self.save_experiment(&x).await?;
        Ok(x)
    }

    /// A Starting or Stopping experiment follows its endpoint's update.
    async fn follow_endpoint(self: &Arc<Self>, mut x: InferenceExperiment) -> Result<(), ControlError> {
        let endpoint = match self.describe_endpoint(&x.endpoint_name).await {
            Ok(e) => e,
            Err(_) => {
                x.status_reason = Some(format!("Endpoint {} was deleted.", x.endpoint_name));
                return self.finish_experiment(x, ExperimentStatus::Cancelled).await.map(|_| ());
            }
        };
        if endpoint.status != EndpointStatus::InService {
            return Ok(());
        }
        let applied = Some(&endpoint.config_name) == x.endpoint_config_name.as_ref();
        match (x.status, applied) {
            (ExperimentStatus::Starting, true) => {
                x.status = ExperimentStatus::Running;
                x.modified = self.now();
                self.record_event(
                    &x.endpoint_name,
                    Some(&x.shadow_variant),
                    EventKind::DeploymentStep,
                    format!("Inference experiment {} running", x.name),
                );
                self.save_experiment(&x).await
            }
            (ExperimentStatus::Stopping, true) => {
                let to = x.stop_to.unwrap_or(ExperimentStatus::Completed);
                self.finish_experiment(x, to).await.map(|_| ())
            }
            (_, false) => {
                x.status_reason = Some(format!(
                    "The endpoint update failed: {}",
                    endpoint.failure_reason.unwrap_or_else(|| "the endpoint runs another config".into())
                ));
                self.finish_experiment(x, ExperimentStatus::Cancelled).await.map(|_| ())
            }
            _ => Ok(()),
        }
    }

    async fn finish_experiment(&self, mut x: InferenceExperiment, status: ExperimentStatus) -> Result<InferenceExperiment, ControlError> {
        x.status = status;
        x.stop_to = None;
        x.completed = Some(self.now());
        x.modified = self.now();
        self.record_event(
            &x.endpoint_name,
            Some(&x.shadow_variant),
            EventKind::DeploymentStep,
            format!("Inference experiment {} {}", x.name, status.as_str()),
        );
        self.save_experiment(&x).await?;
        Ok(x)
    }

    async fn save_experiment(&self, x: &InferenceExperiment) -> Result<(), ControlError> {
        let stored = x.clone();
        self.db(move |s| s.update(&stored)).await
    }
}

/// The endpoint's current variants as config entries (weights and counts as they are now).
fn specs_of(endpoint: &berth_domain::Endpoint) -> Vec<VariantSpec> {
    endpoint
        .variants
        .iter()
        .map(|v| VariantSpec {
            name: v.name.clone(),
            model_name: v.model_name.clone(),
            instance_type: v.instance_type.clone(),
            initial_instance_count: v.desired_instance_count,
            initial_weight: v.desired_weight,
            container_startup_timeout_secs: v.container_startup_timeout_secs,
            model_data_download_timeout_secs: None,
            routing: Some(v.routing),
            shadow: v.shadow,
            serverless: v.serverless,
            managed_scaling: v.managed_scaling,
        })
        .collect()
}
