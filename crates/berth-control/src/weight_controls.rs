//! Experiment controls a person uses from the dashboard: set weights, promote a variant (all
//! traffic to it), and roll back to the weights before the last change. Each goes through
//! `UpdateEndpointWeightsAndCapacities`' path (so the router, `DescribeEndpoint` and the
//! events follow) and its event says who asked for what.

use crate::{ControlError, Controller, DesiredWeightAndCapacity};
use berth_domain::Endpoint;
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
