//! Endpoint lifecycles: the reconciler that turns each endpoint's stored state into the step it
//! needs (creating fleets, swapping configurations, scaling, deleting), and those steps.

use crate::deploy::{resolved_image, stop_all, Fleets};
use crate::reconcile::{Done, Queue, Reconciler, StepFuture};
use crate::{ControlError, Controller};
use berth_domain::{Endpoint, EndpointStatus, EventKind, NameKey, VariantState};
use berth_instances::Instance;
use berth_store::Resources;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

/// A lifecycle step of an endpoint, as its span and the failure reason after a panic name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    BringUp,
    RollOut,
    DeployGuarded,
    Scale,
    TearDown,
}

impl Step {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Step::BringUp => "bring_up",
            Step::RollOut => "roll_out",
            Step::DeployGuarded => "deploy_guarded",
            Step::Scale => "scale",
            Step::TearDown => "tear_down",
        }
    }

    /// The step an endpoint needs, read from its stored state alone: the one place that turns
    /// what a caller asked for (stored as a status and a pending update) into work, whether the
    /// ask just arrived or berth is starting again. `running`: whether this server runs the
    /// endpoint's instances (after a restart nothing does: an update is then carried out by
    /// starting its variants, as a plain roll-out; a guarded one brings the current variants
    /// back first and starts its deployment again). None: the endpoint is at rest.
    pub(crate) fn next(endpoint: &Endpoint, running: bool) -> Option<Step> {
        match endpoint.status {
            EndpointStatus::Creating | EndpointStatus::SystemUpdating => Some(Step::BringUp),
            EndpointStatus::Updating => match &endpoint.pending {
                Some(p) if p.deployment_config.is_some() && running => Some(Step::DeployGuarded),
                // Nothing runs (berth restarted, or another server of its cluster leads now):
                // the current fleet comes back first, then the guarded deployment starts again.
                Some(p) if p.deployment_config.is_some() => Some(Step::BringUp),
                Some(_) => Some(Step::RollOut),
                None if running => Some(Step::Scale),
                None => Some(Step::BringUp),
            },
            EndpointStatus::Deleting => Some(Step::TearDown),
            EndpointStatus::InService
            | EndpointStatus::RollingBack
            | EndpointStatus::Failed
            | EndpointStatus::OutOfService
            | EndpointStatus::UpdateRollbackFailed => None,
        }
    }

    fn doing(self) -> &'static str {
        match self {
            Step::BringUp => "starting the endpoint's instances",
            Step::RollOut => "updating the endpoint",
            Step::DeployGuarded => "deploying the update with its guardrails",
            Step::Scale => "scaling the endpoint",
            Step::TearDown => "deleting the endpoint",
        }
    }
}

/// The endpoint lifecycle's reconciler: it owns the instances each endpoint runs (its
/// [`Fleets`]) and the instances a delete took from the routes until the tear-down stops them.
/// Its steps are [`Step`]s; which one an endpoint needs is [`Step::next`] of its stored state.
#[derive(Default)]
pub(crate) struct Lifecycle {
    pub(crate) fleets: Fleets,
    /// What DeleteEndpoint took from the routes, by endpoint: stopped by the tear-down.
    retiring: std::sync::Mutex<HashMap<NameKey, Vec<Instance>>>,
}

impl Lifecycle {
    /// Hands a deleted endpoint's instances to its tear-down.
    pub(crate) fn retire(&self, endpoint: &str, instances: Vec<Instance>) {
        self.retiring.lock().unwrap_or_else(|e| e.into_inner()).entry(NameKey::of(endpoint)).or_default().extend(instances);
    }

    fn take_retiring(&self, endpoint: &str) -> Vec<Instance> {
        self.retiring.lock().unwrap_or_else(|e| e.into_inner()).remove(&NameKey::of(endpoint)).unwrap_or_default()
    }
}

impl Reconciler for Lifecycle {
    type Context = Controller;
    type Object = Endpoint;
    type Step = Step;
    const KIND: &'static str = "endpoint";

    fn queue(cx: &Controller) -> &Queue<Self> {
        &cx.endpoints
    }

    async fn keys(&self, cx: &Arc<Controller>) -> Result<Vec<String>, ControlError> {
        Ok(cx.db(|s| s.list::<Endpoint>()).await?.into_iter().map(|e| e.name).collect())
    }

    async fn read(&self, cx: &Arc<Controller>, key: &str) -> Result<Option<Endpoint>, ControlError> {
        let key = key.to_string();
        cx.db(move |s| s.get::<Endpoint>(&key)).await
    }

    fn next(&self, _: &Arc<Controller>, endpoint: &Endpoint) -> Option<Step> {
        Step::next(endpoint, self.fleets.epoch(&endpoint.name).is_some())
    }

    /// A delete does not wait for the step under way: that step's commit finds the endpoint's
    /// fleet gone and stops what it started.
    fn preempts(next: Step, running: Step) -> bool {
        next == Step::TearDown && running != Step::TearDown
    }

    fn run(&self, cx: &Arc<Controller>, endpoint: Endpoint, step: Step, done: Done<Self>) {
        let name = endpoint.name.clone();
        let running = self.fleets.epoch(&name);
        let recovering = running.is_none();
        let epoch = match step {
            Step::TearDown => 0,
            _ => running.unwrap_or_else(|| self.fleets.register(&name)),
        };
        let this = cx.clone();
        let e = endpoint.clone();
        let task: StepFuture = match (step, endpoint.pending.as_ref().and_then(|p| p.deployment_config.clone())) {
            (Step::BringUp, _) => Box::pin(this.bring_up(e, epoch, None)),
            (Step::RollOut, _) => Box::pin(this.roll_out(e, epoch, recovering)),
            (Step::DeployGuarded, Some(dc)) => Box::pin(this.deploy_guarded(e, epoch, dc)),
            (Step::DeployGuarded, None) => unreachable!("Step::next gives DeployGuarded only with a deployment config"),
            (Step::Scale, _) => Box::pin(this.scale(e, epoch)),
            (Step::TearDown, _) => {
                // What DeleteEndpoint took from the routes; and, should the delete have been
                // committed without that (another server's, or one cut short by a crash), the
                // fleet this server still runs.
                let mut retired = self.take_retiring(&name);
                cx.routing.remove(&name);
                retired.extend(self.fleets.remove(&name));
                Box::pin(this.tear_down(e, retired))
            }
        };
        cx.spawn_step(&endpoint, epoch, step, task, Some(done));
    }
}

impl Controller {
    /// Reconciles endpoint `name` ([`Queue::enqueue`]): called after every change to it is
    /// committed. A failure to read the store is logged; the next resync tries again.
    pub(crate) async fn reconcile_endpoint(self: &Arc<Self>, name: &str) {
        if let Err(e) = self.endpoints.enqueue(self, name).await {
            tracing::warn!(endpoint = %name, error = %e, "cannot reconcile the endpoint; the next resync tries again");
        }
    }

    /// Reconciles everything the store holds: each endpoint, transform, processing and recommendations job is brought to
    /// what it says. Run every few seconds once [`Controller::recover`] has run (before, it does
    /// nothing: recovery decides first what a restart means for each endpoint).
    pub async fn resync(self: &Arc<Self>) -> Result<(), ControlError> {
        if !self.recovered.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        self.endpoints.resync(self).await?;
        self.transforms.resync(self).await?;
        self.processing.resync(self).await?;
        self.recommendations.resync(self).await?;
        self.components.resync(self).await
    }

    /// The instances each endpoint runs.
    pub(crate) fn fleets(&self) -> &Fleets {
        &self.endpoints.reconciler.fleets
    }

    /// Runs a lifecycle step of `endpoint` (at `epoch`) as supervised background work: in a span
    /// naming the endpoint and the step, and, should it panic, ending in `Failed` with a
    /// `FailureReason` and an event rather than a status nobody moves on. `done` (the queue's)
    /// is dropped once that is recorded.
    pub(crate) fn spawn_step(
        self: &Arc<Self>,
        endpoint: &Endpoint,
        epoch: u64,
        step: Step,
        task: impl Future<Output = ()> + Send + 'static,
        done: Option<Done<Lifecycle>>,
    ) {
        let span = tracing::info_span!("lifecycle", endpoint = %endpoint.name, step = step.name(), epoch);
        let (this, name, arn) = (self.clone(), endpoint.name.clone(), endpoint.arn.clone());
        self.work.spawn(span, task, move |panic| async move {
            this.fail_after_panic(&name, &arn, epoch, step, &panic).await;
            drop(done);
        });
    }

    /// For tests: runs the step named `step` of endpoint `name` as a task whose own code panics
    /// with `message`, under the supervision real steps run under (a `tear_down` finds the
    /// endpoint `Deleting`, as after DeleteEndpoint).
    #[doc(hidden)]
    pub async fn run_panicking_step_for_tests(self: &Arc<Self>, name: &str, step: &str, message: &'static str) -> Result<(), ControlError> {
        let steps = [Step::BringUp, Step::RollOut, Step::DeployGuarded, Step::Scale, Step::TearDown];
        let step = steps.into_iter().find(|s| s.name() == step).ok_or_else(|| ControlError::Validation(format!("no step {step}")))?;
        let mut endpoint = self.describe_endpoint(name).await?;
        let epoch = self.fleets().epoch(name).unwrap_or(0);
        if step == Step::TearDown {
            endpoint.status = EndpointStatus::Deleting;
            let stored = endpoint.clone();
            self.db(move |s| s.update(&stored)).await?;
        }
        self.spawn_step(&endpoint, epoch, step, async move { panic!("{message}") }, None);
        Ok(())
    }

    /// After a step panicked: the endpoint, if it is still the one the step worked on, is
    /// `Failed` with the reason. Its instances are left as they are (a delete or an update
    /// starts from there).
    async fn fail_after_panic(self: Arc<Self>, name: &str, arn: &str, epoch: u64, step: Step, panic: &str) {
        let reason = format!(
            "berth failed while {}: {panic}. This is a fault in berth, not in the model; delete the endpoint, or update it, to start again.",
            step.doing()
        );
        let _guard = self.transitions.lock().await;
        let key = name.to_string();
        let stored = match self.db(move |s| s.get::<Endpoint>(&key)).await {
            Ok(Some(e)) if e.arn == arn => e,
            Ok(_) => return, // deleted, or another endpoint of that name now
            Err(e) => {
                tracing::error!(error = %e, "could not read the endpoint to mark it Failed");
                return;
            }
        };
        // A step of an earlier generation of the endpoint changes nothing; a delete's endpoint
        // has no fleet left to compare with.
        let current = match step {
            Step::TearDown => stored.status == EndpointStatus::Deleting,
            _ => self.fleets().epoch(name) == Some(epoch),
        };
        if !current || stored.status == EndpointStatus::Failed {
            return;
        }
        let mut failed = stored;
        failed.status = EndpointStatus::Failed;
        failed.failure_reason = Some(self.redact(&reason));
        failed.modified = self.now();
        // Recorded first: whoever sees the status finds the events that explain it.
        tracing::error!(endpoint = %name, %reason, "endpoint failed");
        self.record_event(name, None, EventKind::DeploymentFailed, reason);
        self.record_status(&failed, "");
        if let Err(e) = self.db(move |s| s.update(&failed)).await {
            tracing::error!(error = %e, "could not mark the endpoint Failed");
        }
    }

    /// Starts all variants of a new (or recovered) endpoint, then puts it in service; or, for
    /// an endpoint whose guarded update was under way when its fleet was lost, leaves it
    /// updating for the deployment to start again on the fleet brought back.
    pub(crate) async fn bring_up(self: Arc<Self>, mut endpoint: Endpoint, epoch: u64, failure_reason: Option<String>) {
        let resuming =
            endpoint.status == EndpointStatus::Updating && endpoint.pending.as_ref().is_some_and(|p| p.deployment_config.is_some());
        let result = self.start_fleet(&endpoint.name, &endpoint.variants, &HashSet::new()).await;
        endpoint.modified = self.now();
        let committed = match result {
            Ok(fleet) => {
                for v in &mut endpoint.variants {
                    v.current_instance_count = v.desired_instance_count;
                    v.image_resolved.get_or_insert(endpoint.modified);
                    v.resolved_image = resolved_image(&fleet, &v.name).or(v.resolved_image.take());
                }
                endpoint.status = if resuming { EndpointStatus::Updating } else { EndpointStatus::InService };
                endpoint.failure_reason = failure_reason;
                let committed = self
                    .commit(endpoint.clone(), epoch, move |map| {
                        *map = fleet;
                        Vec::new()
                    })
                    .await;
                if resuming && committed == Ok(true) {
                    let config = endpoint.pending.as_ref().map(|p| p.config_name.clone()).unwrap_or_default();
                    let step = format!(
                        "Endpoint config {config}: the servers running the update stopped; the current variants are back and the guarded deployment starts again from its first step"
                    );
                    self.record_event(&endpoint.name, None, EventKind::DeploymentStep, step);
                    let (this, name) = (self.clone(), endpoint.name.clone());
                    tokio::spawn(async move { this.reconcile_endpoint(&name).await });
                }
                committed
            }
            Err(reason) => {
                tracing::warn!(endpoint = %endpoint.name, %reason, "endpoint failed");
                endpoint.status = EndpointStatus::Failed;
                endpoint.failure_reason = Some(reason);
                self.commit(endpoint.clone(), epoch, |_| Vec::new()).await
            }
        };
        self.log_commit(&endpoint, committed);
    }

    /// Carries out an update: starts the variants that changed, swaps traffic to the new
    /// fleet in one step, then retires what the new config no longer runs. On failure the
    /// endpoint keeps its current fleet and reports why.
    pub(crate) async fn roll_out(self: Arc<Self>, endpoint: Endpoint, epoch: u64, recovering: bool) {
        let pending = endpoint.pending_variants().to_vec();
        let reuse: HashSet<String> = pending
            .iter()
            .filter(|v| {
                !recovering && self.fleets().can_reuse(&endpoint.name, &v.name, &v.container, &v.instance_type, v.desired_instance_count)
            })
            .map(|v| v.name.clone())
            .collect();
        let config = endpoint.pending.as_ref().map(|p| p.config_name.clone()).unwrap_or_default();
        let starting: Vec<String> =
            pending.iter().filter(|v| !reuse.contains(&v.name)).map(|v| format!("{} ({})", v.name, v.desired_instance_count)).collect();
        let mut step = format!("Endpoint config {config}: starting instances of {}", list_or_none(&starting));
        if !reuse.is_empty() {
            let mut kept: Vec<&String> = reuse.iter().collect();
            kept.sort();
            step += &format!("; keeping the running instances of {}", kept.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "));
        }
        self.record_event(&endpoint.name, None, EventKind::DeploymentStep, step);
        match self.start_fleet(&endpoint.name, &pending, &reuse).await {
            Ok(started) => {
                let now = self.now();
                let mut done = endpoint.clone();
                done.variants = pending
                    .into_iter()
                    .map(|mut v| {
                        v.current_instance_count = v.desired_instance_count;
                        let old = endpoint.variant(&v.name).filter(|_| reuse.contains(&v.name));
                        v.image_resolved = old.and_then(|o| o.image_resolved).or(Some(now));
                        v.resolved_image = match old {
                            Some(o) => o.resolved_image.clone(),
                            None => resolved_image(&started, &v.name),
                        };
                        v
                    })
                    .collect();
                done.complete_pending();
                done.status = EndpointStatus::InService;
                done.failure_reason = None;
                done.modified = now;
                let committed = self
                    .commit(done.clone(), epoch, move |map| {
                        let mut old = std::mem::take(map);
                        for name in &reuse {
                            if let Some(vf) = old.remove(name) {
                                map.insert(name.clone(), vf);
                            }
                        }
                        map.extend(started);
                        old.into_values().flat_map(|v| v.instances).collect()
                    })
                    .await;
                if committed == Ok(true) {
                    let step = format!("Endpoint config {config}: all traffic moved to the new fleet; replaced instances drain and stop");
                    self.record_event(&done.name, None, EventKind::DeploymentStep, step);
                }
                self.log_commit(&done, committed);
            }
            Err(reason) => {
                tracing::warn!(endpoint = %endpoint.name, %reason, "endpoint update failed; keeping the current variants");
                let failed = format!("Update to endpoint config {config} failed; the current variants keep serving: {reason}");
                self.record_event(&endpoint.name, None, EventKind::DeploymentFailed, failed);
                let mut back = endpoint;
                back.pending = None;
                back.modified = self.now();
                if recovering {
                    // Nothing runs yet after a restart: bring the previous variants back.
                    back.status = EndpointStatus::SystemUpdating;
                    self.clone().bring_up(back, epoch, Some(reason)).await;
                    return;
                }
                back.status = EndpointStatus::InService;
                back.failure_reason = Some(reason);
                let committed = self.commit(back.clone(), epoch, |_| Vec::new()).await;
                self.log_commit(&back, committed);
            }
        }
    }

    /// Moves each variant's instance count to its desired count.
    pub(crate) async fn scale(self: Arc<Self>, mut endpoint: Endpoint, epoch: u64) {
        let growing: Vec<VariantState> = endpoint
            .variants
            .iter()
            .filter(|v| v.desired_instance_count > v.current_instance_count)
            .map(|v| VariantState { desired_instance_count: v.desired_instance_count - v.current_instance_count, ..v.clone() })
            .collect();
        let result = self.start_fleet(&endpoint.name, &growing, &HashSet::new()).await;
        endpoint.modified = self.now();
        endpoint.status = EndpointStatus::InService;
        let committed = match result {
            Ok(mut added) => {
                let targets: Vec<(String, usize)> =
                    endpoint.variants.iter().map(|v| (v.name.clone(), v.desired_instance_count as usize)).collect();
                for v in &mut endpoint.variants {
                    v.current_instance_count = v.desired_instance_count;
                }
                self.commit(endpoint.clone(), epoch, move |map| {
                    let mut retired = Vec::new();
                    for (name, target) in targets {
                        let Some(fleet) = map.get_mut(&name) else { continue };
                        if let Some(new) = added.remove(&name) {
                            fleet.instances.extend(new.instances);
                        }
                        if fleet.instances.len() > target {
                            retired.extend(fleet.instances.split_off(target));
                        }
                    }
                    retired
                })
                .await
            }
            Err(reason) => {
                self.record_event(&endpoint.name, None, EventKind::DeploymentFailed, format!("Scaling failed: {reason}"));
                for v in &mut endpoint.variants {
                    v.desired_instance_count = v.current_instance_count;
                }
                endpoint.failure_reason = Some(reason);
                self.commit(endpoint.clone(), epoch, |_| Vec::new()).await
            }
        };
        self.log_commit(&endpoint, committed);
    }

    pub(crate) async fn tear_down(self: Arc<Self>, endpoint: Endpoint, instances: Vec<Instance>) {
        stop_all(instances).await;
        let _guard = self.transitions.lock().await;
        let name = endpoint.name.clone();
        let arn = endpoint.arn.clone();
        let result = self
            .db(move |s| match s.get::<Endpoint>(&name)? {
                Some(e) if e.arn == arn && e.status == EndpointStatus::Deleting => s.remove::<Endpoint>(&name).map(|_| ()),
                _ => Ok(()),
            })
            .await;
        match result {
            Ok(()) => {
                tracing::info!(endpoint = %endpoint.name, "endpoint deleted");
                self.record_event(&endpoint.name, None, EventKind::EndpointDeleted, "Endpoint deleted");
                if let Err(e) = self.forget_quality(&endpoint.name).await {
                    tracing::warn!(endpoint = %endpoint.name, error = %e, "could not drop the endpoint's captured answers and labels");
                }
            }
            Err(e) => tracing::error!(endpoint = %endpoint.name, error = %e, "could not delete endpoint record"),
        }
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "no variants".into()
    } else {
        items.join(", ")
    }
}
