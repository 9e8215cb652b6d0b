//! Serverless variants: no instance runs while idle; the first request asks for one (the
//! router queues it meanwhile), an instance idle for longer than the idle time stops, and
//! `ProvisionedConcurrency` keeps one warm. Started and stopped like any instance, so health
//! checks, logs, ModelSetupTime and events all apply.

use crate::deploy::{stop_all, VariantFleet};
use crate::Controller;
use berth_domain::{EndpointStatus, EventKind, NameKey, VariantState};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

impl Controller {
    /// Runs for the life of the server: serves cold-start demands from requests and, once a
    /// second, stops instances idle for longer than `idle` (keeping provisioned ones warm).
    pub async fn run_serverless(self: Arc<Self>, idle: Duration) {
        let asks = self.routing.serverless().demand();
        let mut demand = asks.lock().await;
        let starting: Arc<Mutex<HashSet<(NameKey, String)>>> = Arc::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                asked = demand.recv() => {
                    let Some((endpoint, variant)) = asked else { return };
                    let key = (NameKey::of(&endpoint), variant.clone());
                    if starting.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone()) {
                        let (this, starting) = (self.clone(), starting.clone());
                        let span = tracing::info_span!("cold_start", endpoint = %endpoint, variant = %variant);
                        self.work.spawn_detached(span, async move {
                            this.cold_start(&endpoint, &variant).await;
                            starting.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                        });
                    }
                }
                _ = tick.tick() => self.serverless_upkeep(idle).await,
            }
        }
    }

    /// Starts one instance of a serverless variant that has none.
    async fn cold_start(self: &Arc<Self>, endpoint: &str, variant: &str) {
        let Some(state) = self.routing.serverless().get(endpoint, variant) else { return };
        let Ok(e) = self.describe_endpoint(endpoint).await else { return };
        let Some(v) = e.variant(variant).filter(|v| v.serverless.is_some()).cloned() else { return };
        let Some(epoch) = self.fleets().epoch(&e.name) else { return };
        let running = self.fleets().apply(&e.name, epoch, |map| map.get(variant).map_or(0, |f| f.instances.len())).unwrap_or(0);
        if running > 0 {
            self.routing.publish(self.fleets().route(&e)); // already up: let the waiters see it
            return;
        }
        tracing::info!(endpoint = %e.name, variant, "serverless cold start");
        let one = VariantState { desired_instance_count: 1, ..v.clone() };
        // A fault of berth's while starting is this cold start's failure (the waiting requests
        // hear it), not a variant that never starts again.
        let started = crate::work::caught(self.start_instances(&e.name, &one)).await;
        match started.unwrap_or_else(|panic| Err(format!("berth failed while starting the instance: {panic}"))) {
            Ok(started) => {
                let models = self.model_cache(&e.name, &v).await;
                let installed = self.fleets().apply(&e.name, epoch, |map| {
                    let fleet = map.entry(variant.to_string()).or_insert_with(|| VariantFleet::new(&v, Vec::new(), models));
                    fleet.instances.extend(started);
                });
                if installed.is_some() {
                    state.cold_starts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.routing.publish(self.fleets().route(&e));
                    self.record_event(
                        &e.name,
                        Some(variant),
                        EventKind::DeploymentStep,
                        "Serverless cold start: an instance started for waiting requests",
                    );
                }
            }
            Err(reason) => {
                tracing::warn!(endpoint = %e.name, variant, %reason, "serverless cold start failed");
                state.cold_start_failed(reason.clone());
                self.record_event(&e.name, Some(variant), EventKind::DeploymentFailed, format!("Serverless cold start failed: {reason}"));
            }
        }
    }

    /// Stops idle serverless instances; keeps provisioned variants warm.
    async fn serverless_upkeep(self: &Arc<Self>, idle: Duration) {
        let Ok(endpoints) = self.all_endpoints().await else { return };
        for e in endpoints.into_iter().filter(|e| e.status == EndpointStatus::InService) {
            let Some(epoch) = self.fleets().epoch(&e.name) else { continue };
            for v in e.variants.iter().filter(|v| v.serverless.is_some()) {
                let Some(state) = self.routing.serverless().get(&e.name, &v.name) else { continue };
                let provisioned = v.serverless.is_some_and(|s| s.provisioned_concurrency.is_some());
                let running = self.fleets().apply(&e.name, epoch, |map| map.get(&v.name).map_or(0, |f| f.instances.len())).unwrap_or(0);
                if provisioned && running == 0 {
                    self.routing.serverless().ask_for_instance(&e.name, &v.name);
                } else if !provisioned && running > 0 && state.in_flight() == 0 && state.idle_secs() >= idle.as_secs() {
                    let retired = self
                        .fleets()
                        .apply(&e.name, epoch, |map| map.get_mut(&v.name).map(|f| std::mem::take(&mut f.instances)).unwrap_or_default())
                        .unwrap_or_default();
                    self.routing.publish(self.fleets().route(&e));
                    tracing::info!(endpoint = %e.name, variant = %v.name, idle_secs = state.idle_secs(), "serverless variant idle; stopping its instance");
                    self.record_event(
                        &e.name,
                        Some(&v.name),
                        EventKind::DeploymentStep,
                        format!("Serverless variant idle for {} s: instance stopped", idle.as_secs()),
                    );
                    stop_all(retired).await;
                }
            }
        }
    }
}
