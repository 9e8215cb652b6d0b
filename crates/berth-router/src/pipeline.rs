//! Multi-container variants: which container a call goes to (`Direct`, by
//! `TargetContainerHostname`), and a serial inference pipeline's run from the first container to
//! the last (`Serial`), each container's answer the next one's request.

use crate::forward::{self, InvokeError, InvokeRequest};
use crate::{Exchange, Hop, Router};
use berth_domain::ExecutionMode;
use berth_instances::{InFlight, InstanceSlot};
use berth_metrics::VariantMetrics;
use std::sync::Arc;

/// A multi-container variant's containers, in order, and how a call uses them.
#[derive(Debug)]
pub struct Pipeline {
    pub mode: ExecutionMode,
    pub hostnames: Vec<String>,
    /// Direct: each container's own metrics (`ContainerName`), set by [`RoutingTable::publish`].
    pub container_metrics: Vec<Arc<VariantMetrics>>,
}

impl Pipeline {
    /// The index of the container a `TargetContainerHostname` names (hostnames are matched
    /// without regard to case).
    pub fn index_of(&self, hostname: &str) -> Option<usize> {
        self.hostnames.iter().position(|h| h.eq_ignore_ascii_case(hostname))
    }
}

impl Router {
    /// A serial inference pipeline: the request goes to the first container (on `first`), each
    /// container's answer (body and content type) is the next one's request, and the last one's
    /// answer is the caller's, exchanged with `exchange`. A failing container is named.
    pub(crate) async fn run_pipeline<E: Exchange>(
        &self,
        pipeline: &Pipeline,
        variant: &str,
        pick_container_instance: impl Fn(usize) -> Option<(Arc<InstanceSlot>, InFlight)>,
        first: Arc<InstanceSlot>,
        req: &InvokeRequest,
        exchange: &E,
    ) -> Result<E::Out, InvokeError> {
        let last = pipeline.hostnames.len() - 1;
        let (mut slot, mut _in_flight) = (first, None);
        let mut passed: Option<InvokeRequest> = None;
        for stage in 0..last {
            let this = passed.as_ref().unwrap_or(req);
            let answer = self.forwarder.forward(&slot, variant, this).await.map_err(|e| stage_error(e, pipeline, stage))?;
            passed = Some(InvokeRequest { body: answer.body, content_type: answer.content_type, ..req.clone() });
            let (next, in_flight) =
                pick_container_instance(stage + 1).ok_or_else(|| InvokeError::NoHealthyInstance { variant: variant.to_string() })?;
            (slot, _in_flight) = (next, Some(in_flight));
        }
        let this = passed.as_ref().unwrap_or(req);
        let hop = Hop { slot: &slot, path: forward::INVOCATIONS, variant, req: this };
        exchange.send(&self.forwarder, hop).await.map_err(|e| stage_error(e, pipeline, last))
    }
}

/// Which of a variant's containers a call goes to: for a Direct multi-container variant the one
/// `TargetContainerHostname` names, else the first (the only one, or a pipeline's first).
pub(crate) fn container_of(endpoint: &str, variant: &str, pipeline: Option<&Pipeline>, target: Option<&str>) -> Result<usize, InvokeError> {
    let refuse = |message: String| Err(InvokeError::Target(message));
    let Some(p) = pipeline else {
        return match target {
            None => Ok(0),
            Some(_) => refuse(format!("Variant {variant} of endpoint {endpoint} runs one container: leave TargetContainerHostname out.")),
        };
    };
    let names = p.hostnames.join(", ");
    match (p.mode, target) {
        (ExecutionMode::Serial, None) => Ok(0),
        (ExecutionMode::Serial, Some(_)) => {
            refuse(format!("Endpoint {endpoint} runs its containers as a serial inference pipeline: leave TargetContainerHostname out."))
        }
        (ExecutionMode::Direct, None) => {
            refuse(format!("Endpoint {endpoint} invokes its containers directly: name one with TargetContainerHostname ({names})."))
        }
        (ExecutionMode::Direct, Some(h)) => p.index_of(h).map_or_else(
            || refuse(format!("Variant {variant} of endpoint {endpoint} has no container {h}; its containers are {names}.")),
            Ok,
        ),
    }
}

/// An error of one container of a multi-container variant, naming it. A later stage of a
/// pipeline that cannot be reached is a failure, not a retry: earlier stages have run.
pub(crate) fn stage_error(e: InvokeError, pipeline: &Pipeline, index: usize) -> InvokeError {
    let hostname = pipeline.hostnames[index].clone();
    match e {
        InvokeError::ModelError { variant, status, body, .. } => {
            InvokeError::ModelError { variant, status, body, container: Some(hostname) }
        }
        InvokeError::Unreachable { variant, message } if index > 0 => {
            InvokeError::Failed { variant, message: format!("container {hostname} could not be reached: {message}") }
        }
        other => other,
    }
}
