//! Weight changes: `UpdateEndpointWeightsAndCapacities` (weights at once, instance counts in the
//! background, the weights before a change kept) and the experiment controls a person uses from
//! the dashboard on top of it: set weights, promote a variant (all traffic to it), and roll back
//! to the weights before the last change, each recorded as an event saying who asked for what.

use crate::{ControlError, Controller, DesiredWeightAndCapacity};
use berth_domain::{validate_name, Endpoint, EndpointStatus, EventKind, VariantState};
use berth_store::Resources;
use std::sync::Arc;

/// A weight change asked for by a person.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightControl {
    /// These weights, by production variant (variants left out keep theirs).
    Set(Vec<(String, f64)>),
    /// All traffic to this production variant, none to the others.
    Promote(String),
    /// The weights before the last change (a second roll back undoes the first).
    RollBack,
}

impl Controller {
    /// Carries out `control` on `endpoint`; `asked_by` names where it came from in the event
    /// ("from the dashboard").
    pub async fn control_weights(
        self: &Arc<Self>,
        endpoint: &str,
        control: WeightControl,
        asked_by: &str,
    ) -> Result<Endpoint, ControlError> {
        let e = self.describe_endpoint(endpoint).await?;
        let production: Vec<&str> = e.variants.iter().filter(|v| !v.shadow).map(|v| v.name.as_str()).collect();
        let (weights, what) = match control {
            WeightControl::Set(weights) => {
                if let Some((shadow, _)) = weights.iter().find(|(v, _)| !production.contains(&v.as_str()) && e.variant(v).is_some()) {
                    return Err(ControlError::Validation(format!("{shadow} is a shadow variant: it takes no share of traffic.")));
                }
                let listed = weights.iter().map(|(v, w)| format!("{v} {w}")).collect::<Vec<_>>().join(", ");
                (weights, format!("set weights {listed}"))
            }
            WeightControl::Promote(winner) => {
                if !production.contains(&winner.as_str()) {
                    return Err(ControlError::Validation(format!(
                        "Endpoint {endpoint} has no production variant {winner} (it has {}).",
                        production.join(", ")
                    )));
                }
                let weights = production.iter().map(|v| (v.to_string(), if *v == winner { 1.0 } else { 0.0 })).collect();
                (weights, format!("promote {winner}: all traffic to it"))
            }
            WeightControl::RollBack => {
                let previous = e.previous_weights.clone().ok_or_else(|| {
                    ControlError::Validation(format!(
                        "Endpoint {endpoint}'s weights have not changed since it was deployed: nothing to roll back."
                    ))
                })?;
                if let Some((gone, _)) = previous.iter().find(|(v, _)| !production.contains(&v.as_str())) {
                    return Err(ControlError::Validation(format!(
                        "The weights before the last change name variant {gone}, which endpoint {endpoint} no longer has: nothing to roll back to."
                    )));
                }
                (previous, "roll back to the weights before the last change".to_string())
            }
        };
        let desired = weights
            .into_iter()
            .map(|(variant, w)| DesiredWeightAndCapacity { variant, weight: Some(w), instance_count: None, serverless: None })
            .collect();
        self.update_weights_because(endpoint, desired, Some(format!("{asked_by}: {what}"))).await
    }
}

impl Controller {
    /// Changes weights at once (the next request follows them) and instance counts in the
    /// background; the endpoint is `Updating` only while instances start or stop.
    pub async fn update_weights_and_capacities(
        self: &Arc<Self>,
        name: &str,
        desired: Vec<DesiredWeightAndCapacity>,
    ) -> Result<Endpoint, ControlError> {
        if self.describe_endpoint(name).await?.hosts_components() {
            return Err(ControlError::Validation(format!(
                "Endpoint {name} hosts inference components: scale their copies (UpdateInferenceComponentRuntimeConfig); managed instance scaling sizes its instances."
            )));
        }
        self.update_weights_because(name, desired, None).await
    }

    /// As [`Self::update_weights_and_capacities`]; `reason` (who asked, and for what) goes into
    /// the event. The weights before a change are kept, for rolling it back.
    pub(crate) async fn update_weights_because(
        self: &Arc<Self>,
        name: &str,
        desired: Vec<DesiredWeightAndCapacity>,
        reason: Option<String>,
    ) -> Result<Endpoint, ControlError> {
        validate_name("endpointName", name)?;
        check_desired(&desired)?;
        let _guard = self.transitions.lock().await;
        let mut endpoint = self.describe_endpoint(name).await?;
        self.require_in_service(&endpoint)?;
        // An asynchronous endpoint may scale its instances to 0 (its requests wait in the queue).
        if endpoint.async_inference.is_none() {
            if let Some(d) = desired.iter().find(|d| d.instance_count == Some(0)) {
                return Err(ControlError::Validation(format!(
                    "DesiredInstanceCount of variant {} must be at least 1 (0 is for asynchronous inference endpoints).",
                    d.variant
                )));
            }
        }
        let before = endpoint.clone();
        let unknown: Vec<&str> = desired.iter().filter(|d| endpoint.variant(&d.variant).is_none()).map(|d| d.variant.as_str()).collect();
        if !unknown.is_empty() {
            // SageMaker's words: one "X", or several as "X", "Y".
            let names = unknown.iter().map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(", ");
            return Err(ControlError::Validation(format!(
                "The variant name(s) {names} is/are not present within endpoint configuration \"{}\".",
                endpoint.config_name
            )));
        }
        if let Some(d) =
            desired.iter().find(|d| d.instance_count.is_some() && endpoint.variant(&d.variant).is_some_and(|v| v.serverless.is_some()))
        {
            return Err(ControlError::Validation(format!(
                "Variant {} is serverless: it has no DesiredInstanceCount (instances start on demand).",
                d.variant
            )));
        }
        for d in &desired {
            let v = endpoint.variants.iter_mut().find(|v| v.name == d.variant).expect("checked above");
            if let Some((max, provisioned)) = d.serverless {
                let Some(mut config) = v.serverless else {
                    return Err(ControlError::Validation(format!(
                        "Variant {} is not serverless: ServerlessUpdateConfig does not apply.",
                        v.name
                    )));
                };
                config.max_concurrency = max.unwrap_or(config.max_concurrency);
                if let Some(p) = provisioned {
                    config.provisioned_concurrency = (p > 0).then_some(p);
                }
                config.validate("desiredWeightsAndCapacities.member.serverlessUpdateConfig")?;
                v.serverless = Some(config);
            }
            if let Some(w) = d.weight {
                v.current_weight = w;
                v.desired_weight = w;
            }
            if let Some(c) = d.instance_count {
                v.desired_instance_count = c;
            }
        }
        if endpoint.variants.iter().filter(|v| !v.shadow).all(|v| v.desired_weight == 0.0) {
            return Err(ControlError::Validation("At least one variant must keep a weight greater than 0.".into()));
        }
        if !endpoint.variants.iter().map(|v| v.desired_weight).sum::<f64>().is_finite() {
            return Err(ControlError::Validation(
                "The variants' weights add up to more than a number can hold; use smaller weights.".into(),
            ));
        }
        let weights_of = |e: &Endpoint| -> Vec<(String, f64)> {
            e.variants.iter().filter(|v| !v.shadow).map(|v| (v.name.clone(), v.desired_weight)).collect()
        };
        if weights_of(&before) != weights_of(&endpoint) {
            endpoint.previous_weights = Some(weights_of(&before));
        }
        let scaling = endpoint.variants.iter().any(|v| v.desired_instance_count != v.current_instance_count);
        if scaling {
            let all = self.db(|s| s.list::<Endpoint>()).await?;
            self.check_instance_limit(&all, Some(&endpoint.name), &endpoint.variants)?;
            endpoint.status = EndpointStatus::Updating;
        }
        endpoint.failure_reason = None;
        endpoint.modified = self.now();
        let stored = endpoint.clone();
        self.db(move |s| s.update(&stored)).await?;
        self.routing.publish(self.fleets().route(&endpoint));
        drop(_guard);
        tracing::info!(endpoint = %endpoint.name, ?desired, "endpoint weights and capacities updated");
        self.record_weights_and_capacities(&before, &endpoint, reason.as_deref());
        if scaling {
            self.reconcile_endpoint(&endpoint.name).await;
        }
        Ok(endpoint)
    }

    /// Records what UpdateEndpointWeightsAndCapacities changed.
    fn record_weights_and_capacities(&self, before: &Endpoint, after: &Endpoint, reason: Option<&str>) {
        let changed = |f: fn(&VariantState) -> String| -> Vec<String> {
            after
                .variants
                .iter()
                .filter_map(|v| {
                    let old = before.variant(&v.name).map(f).unwrap_or_default();
                    let new = f(v);
                    (old != new).then(|| format!("{}: {old} → {new}", v.name))
                })
                .collect()
        };
        let weights = changed(|v| format!("{}", v.desired_weight));
        if !weights.is_empty() {
            let because = reason.map(|r| format!(" ({r})")).unwrap_or_default();
            self.record_event(&after.name, None, EventKind::WeightsChanged, format!("Weights {}{because}", weights.join(", ")));
        }
        let counts = changed(|v| format!("{}", v.desired_instance_count));
        if !counts.is_empty() {
            self.record_event(&after.name, None, EventKind::CapacityChanged, format!("Instance counts {}", counts.join(", ")));
        }
    }
}

fn check_desired(desired: &[DesiredWeightAndCapacity]) -> Result<(), ControlError> {
    if desired.is_empty() {
        return Err(ControlError::Validation("DesiredWeightsAndCapacities must name at least one variant.".into()));
    }
    for (i, d) in desired.iter().enumerate() {
        validate_name(&format!("desiredWeightsAndCapacities.{}.member.variantName", i + 1), &d.variant)?;
        if d.weight.is_none() && d.instance_count.is_none() && d.serverless.is_none() {
            return Err(ControlError::Validation(format!(
                "Variant {} must specify DesiredWeight, DesiredInstanceCount or ServerlessUpdateConfig.",
                d.variant
            )));
        }
        if let Some(w) = d.weight {
            if !(w.is_finite() && w >= 0.0) {
                return Err(ControlError::Validation(format!(
                    "DesiredWeight of variant {} must be a number greater than or equal to 0.",
                    d.variant
                )));
            }
        }
        if desired[..i].iter().any(|o| o.variant == d.variant) {
            return Err(ControlError::Validation(format!("The variant name \"{}\" was non-unique within the request.", d.variant)));
        }
    }
    Ok(())
}
