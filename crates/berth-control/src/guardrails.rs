//! Guarded deployments (UpdateEndpoint with a `DeploymentConfig`): the new fleet (green) starts
//! beside the running one (blue) and takes traffic step by step — all at once, canary, linear,
//! or a rolling replacement in batches — while the rollback alarms are watched; the old fleet
//! stays up through the baking period. An alarm in ALARM, or the execution timeout, sends all
//! traffic back to the old fleet and stops the new one. No request is dropped: the new fleet
//! takes traffic only once healthy, and retired instances drain first.

use crate::deploy::{stop_all, GreenFleet, VariantFleet};
use crate::Controller;
use berth_domain::{
    BlueGreenPolicy, DeploymentConfig, Endpoint, EndpointStatus, EventKind, PendingDeployment, RollingPolicy, UpdatePolicy, VariantPhase,
    VariantState,
};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Why a deployment stopped before it completed.
enum Stop {
    /// Roll back, for this reason.
    RollBack(String),
    /// The endpoint was deleted meanwhile: nothing to roll back to.
    Gone,
}

impl Controller {
    pub(crate) async fn deploy_guarded(self: Arc<Self>, endpoint: Endpoint, epoch: u64, config: DeploymentConfig) {
        let mut run = Deployment {
            config_name: endpoint.pending.as_ref().map(|p| p.config_name.clone()).unwrap_or_default(),
            deadline: None,
            endpoint,
            epoch,
            alarms: config.rollback_alarms.clone(),
            controller: self.clone(),
        };
        let outcome = match &config.policy {
            Some(UpdatePolicy::Rolling(p)) => {
                run.deadline = p.max_execution_secs.map(|s| Instant::now() + Duration::from_secs(s.into()));
                run.rolling(p).await
            }
            Some(UpdatePolicy::BlueGreen(p)) => {
                run.deadline = p.max_execution_secs.map(|s| Instant::now() + Duration::from_secs(s.into()));
                run.blue_green(p).await
            }
            None => run.blue_green(&BlueGreenPolicy::default_all_at_once()).await,
        };
        match outcome {
            Ok(()) => run.complete().await,
            Err(Stop::RollBack(why)) => run.roll_back(why, config.policy.as_ref()).await,
            Err(Stop::Gone) => {
                let green = self.fleets().apply_green(&run.endpoint.name, epoch, |g, _| g.take()).flatten();
                stop_all(green.into_iter().flat_map(|g| g.variants.into_values()).flat_map(|v| v.instances).collect()).await;
            }
        }
    }
}

trait AllAtOnce {
    fn default_all_at_once() -> Self;
}

impl AllAtOnce for BlueGreenPolicy {
    fn default_all_at_once() -> Self {
        BlueGreenPolicy {
            routing: berth_domain::TrafficRouting::AllAtOnce,
            wait_interval_secs: 0,
            termination_wait_secs: 0,
            max_execution_secs: None,
        }
    }
}

struct Deployment {
    controller: Arc<Controller>,
    endpoint: Endpoint,
    epoch: u64,
    config_name: String,
    alarms: Vec<String>,
    deadline: Option<Instant>,
}

impl Deployment {
    fn name(&self) -> &str {
        &self.endpoint.name
    }

    fn pending(&self) -> Vec<VariantState> {
        self.endpoint.pending_variants().to_vec()
    }

    /// Records the deployment's phase (DescribeEndpoint's PendingDeploymentSummary) and an event.
    async fn phase(&mut self, phase: VariantPhase, share: f64, message: String) -> Result<(), Stop> {
        let now = self.controller.now();
        let Some(pending) = self.endpoint.pending.as_mut() else {
            return Err(Stop::Gone);
        };
        let started = pending.deployment.as_ref().map_or(now, |p| p.started);
        pending.deployment = Some(PendingDeployment {
            config_name: self.config_name.clone(),
            started,
            phase,
            message: message.clone(),
            phase_started: now,
            green_share: share,
        });
        self.endpoint.modified = now;
        self.controller.record_event(self.name(), None, EventKind::DeploymentStep, message);
        match self.controller.commit(self.endpoint.clone(), self.epoch, |_| Vec::new()).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Stop::Gone),
            Err(e) => Err(Stop::RollBack(format!("the state store failed: {e}"))),
        }
    }

    /// Gives the new fleet `share` of the traffic, at once.
    fn shift(&self, share: f64) -> Result<(), Stop> {
        self.controller.fleets().apply_green(self.name(), self.epoch, |g, _| g.as_mut().map(|g| g.share = share)).ok_or(Stop::Gone)?;
        self.controller.routing.publish(self.controller.fleets().route(&self.endpoint));
        Ok(())
    }

    /// Watches the rollback alarms and the execution timeout for `secs` seconds.
    async fn watch(&self, secs: u32) -> Result<(), Stop> {
        let until = Instant::now() + Duration::from_secs(secs.into());
        loop {
            self.check().await?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            tokio::time::sleep((until - now).min(Duration::from_millis(250))).await;
        }
    }

    async fn check(&self) -> Result<(), Stop> {
        if self.controller.fleets().epoch(self.name()) != Some(self.epoch) {
            return Err(Stop::Gone);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Stop::RollBack("the deployment exceeded MaximumExecutionTimeoutInSeconds".into()));
        }
        match self.controller.rollback_alarm_reason(&self.alarms).await {
            None => Ok(()),
            Some(why) => Err(Stop::RollBack(why)),
        }
    }

    async fn blue_green(&mut self, policy: &BlueGreenPolicy) -> Result<(), Stop> {
        let pending = self.pending();
        let instances: u32 = pending.iter().map(|v| v.desired_instance_count).sum();
        self.phase(
            VariantPhase::Creating,
            0.0,
            format!("Endpoint config {}: starting the new fleet ({instances} instance(s))", self.config_name),
        )
        .await?;
        self.check().await?;
        let started = self.controller.start_fleet(self.name(), &pending, &HashSet::new()).await.map_err(Stop::RollBack)?;
        let installed = self.controller.fleets().apply_green(self.name(), self.epoch, |g, _| {
            *g = Some(GreenFleet { states: pending.clone(), variants: started, share: 0.0 });
        });
        installed.ok_or(Stop::Gone)?;
        let steps = policy.steps(instances);
        let last = steps.len() - 1;
        for (i, step) in steps.into_iter().enumerate() {
            self.check().await?;
            self.shift(step.green_share)?;
            let percent = step.green_share * 100.0;
            let (phase, message) = if i == last {
                (VariantPhase::Baking, format!("All traffic on the new fleet; baking for {} s before the old fleet stops", step.wait_secs))
            } else {
                (VariantPhase::ActivatingTraffic, format!("{percent:.0}% of traffic on the new fleet for {} s", step.wait_secs))
            };
            self.phase(phase, step.green_share, message).await?;
            self.watch(step.wait_secs).await?;
        }
        Ok(())
    }

    async fn rolling(&mut self, policy: &RollingPolicy) -> Result<(), Stop> {
        let pending = self.pending();
        let target = pending[0].clone();
        let name = target.name.clone();
        let want = target.desired_instance_count;
        let batch = policy.max_batch.instances(want);
        let models = self.controller.model_cache(self.name(), &target).await;
        self.controller
            .fleets()
            .apply_green(self.name(), self.epoch, |g, _| {
                let fleet = VariantFleet::new(&target, Vec::new(), models);
                *g = Some(GreenFleet { states: pending.clone(), variants: [(name.clone(), fleet)].into(), share: 0.0 });
            })
            .ok_or(Stop::Gone)?;
        let mut green = 0u32;
        while green < want {
            self.check().await?;
            let k = batch.min(want - green);
            self.phase(VariantPhase::Creating, self.green_share(), format!("Rolling: starting {k} new instance(s) of {name}")).await?;
            let started = self
                .controller
                .start_instances(self.name(), &VariantState { desired_instance_count: k, ..target.clone() })
                .await
                .map_err(Stop::RollBack)?;
            green += k;
            self.controller
                .fleets()
                .apply_green(self.name(), self.epoch, |g, _| {
                    g.as_mut().and_then(|g| g.variants.get_mut(&name)).map(|v| v.instances.extend(started))
                })
                .ok_or(Stop::Gone)?;
            self.rebalance()?;
            let message = format!("Rolling: {green} of {want} new instance(s) serving; baking {} s", policy.wait_interval_secs);
            self.phase(VariantPhase::Baking, self.green_share(), message).await?;
            self.watch(policy.wait_interval_secs).await?;
            // The batch held: retire as many old instances.
            let retired = self
                .controller
                .fleets()
                .apply_green(self.name(), self.epoch, |_, blue| {
                    blue.get_mut(&name)
                        .map(|v| v.instances.drain(..(k as usize).min(v.instances.len())).collect::<Vec<_>>())
                        .unwrap_or_default()
                })
                .ok_or(Stop::Gone)?;
            self.rebalance()?;
            stop_all(retired).await;
        }
        Ok(())
    }

    /// During a rolling update: traffic in proportion to the instances each fleet runs.
    fn rebalance(&self) -> Result<(), Stop> {
        let share = self.controller.fleets().apply_green(self.name(), self.epoch, |g, blue| {
            let green: usize = g.as_ref().map_or(0, |g| g.variants.values().map(|v| v.instances.len()).sum());
            let old: usize = blue.values().map(|v| v.instances.len()).sum();
            let share = if green + old == 0 { 0.0 } else { green as f64 / (green + old) as f64 };
            if let Some(g) = g.as_mut() {
                g.share = share;
            }
            share
        });
        share.ok_or(Stop::Gone)?;
        self.controller.routing.publish(self.controller.fleets().route(&self.endpoint));
        Ok(())
    }

    fn green_share(&self) -> f64 {
        self.controller.fleets().apply_green(self.name(), self.epoch, |g, _| g.as_ref().map_or(0.0, |g| g.share)).unwrap_or(0.0)
    }

    /// The new fleet becomes the endpoint's; the old one drains and stops.
    async fn complete(self) {
        let Some(Some(green)) = self.controller.fleets().apply_green(self.name(), self.epoch, |g, _| g.take()) else { return };
        let now = self.controller.now();
        let mut done = self.endpoint.clone();
        done.variants = green
            .states
            .iter()
            .map(|v| VariantState {
                current_instance_count: v.desired_instance_count,
                image_resolved: Some(now),
                resolved_image: crate::deploy::resolved_image(&green.variants, &v.name),
                ..v.clone()
            })
            .collect();
        done.complete_pending();
        done.config_name = self.config_name.clone();
        done.status = EndpointStatus::InService;
        done.failure_reason = None;
        done.modified = now;
        let variants = green.variants;
        let committed = self
            .controller
            .commit(done.clone(), self.epoch, move |map| {
                let old = std::mem::replace(map, variants);
                old.into_values().flat_map(|v| v.instances).collect()
            })
            .await;
        if committed == Ok(true) {
            let message = format!("Endpoint config {}: deployment complete; the old fleet drains and stops", self.config_name);
            self.controller.record_event(&done.name, None, EventKind::DeploymentStep, message);
        }
        self.controller.log_commit(&done, committed);
    }

    /// All traffic back to the old fleet (restarting old instances a rolling update retired),
    /// then the new fleet stops; the endpoint is InService on its old config with the reason.
    async fn roll_back(mut self, why: String, policy: Option<&UpdatePolicy>) {
        tracing::warn!(endpoint = %self.name(), reason = %why, "rolling the deployment back");
        self.endpoint.status = EndpointStatus::RollingBack;
        let message = format!("Rolling back the deployment of endpoint config {}: {why}", self.config_name);
        let _ = self.phase(VariantPhase::Deleting, self.green_share(), message).await;
        if let Some(UpdatePolicy::Rolling(p)) = policy {
            self.restore_blue(p).await;
        }
        let green = self.controller.fleets().apply_green(self.name(), self.epoch, |g, _| g.take()).flatten();
        self.controller.routing.publish(self.controller.fleets().route(&self.endpoint));
        let retired: Vec<_> = green.into_iter().flat_map(|g| g.variants.into_values()).flat_map(|v| v.instances).collect();
        let mut back = self.endpoint.clone();
        back.pending = None;
        back.status = EndpointStatus::InService;
        back.failure_reason = Some(format!("The update to endpoint config {} was rolled back: {why}", self.config_name));
        back.modified = self.controller.now();
        let committed = self.controller.commit(back.clone(), self.epoch, |_| Vec::new()).await;
        stop_all(retired).await;
        if committed == Ok(true) {
            let message = format!("Rolled back to endpoint config {}: {why}", back.config_name);
            self.controller.record_event(&back.name, None, EventKind::DeploymentRolledBack, message);
        }
        self.controller.log_commit(&back, committed);
    }

    /// A rolling update retired old instances batch by batch: start them again, in batches of
    /// `RollbackMaximumBatchSize` (all at once by default), before the new ones stop.
    async fn restore_blue(&mut self, policy: &RollingPolicy) {
        let Some(old) = self.endpoint.variants.first().cloned() else { return };
        let want = old.current_instance_count;
        let batch = policy.rollback_max_batch.map_or(want, |b| b.instances(want));
        loop {
            let running = self
                .controller
                .fleets()
                .apply_green(self.name(), self.epoch, |_, blue| blue.get(&old.name).map_or(0, |v| v.instances.len()));
            let Some(running) = running else { return };
            let missing = want.saturating_sub(running as u32);
            if missing == 0 {
                return;
            }
            let k = batch.min(missing);
            match self.controller.start_instances(self.name(), &VariantState { desired_instance_count: k, ..old.clone() }).await {
                Ok(started) => {
                    let _ = self.controller.fleets().apply_green(self.name(), self.epoch, |_, blue| {
                        if let Some(v) = blue.get_mut(&old.name) {
                            v.instances.extend(started);
                        }
                    });
                    let _ = self.rebalance();
                }
                Err(reason) => {
                    tracing::error!(endpoint = %self.name(), %reason, "cannot restart the old fleet during a rollback");
                    return;
                }
            }
        }
    }
}
