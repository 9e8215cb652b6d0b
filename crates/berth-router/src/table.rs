use crate::capture::{CaptureQueue, CaptureSettings};
use crate::models::ModelCache;
use crate::pipeline::Pipeline;
use crate::serverless::{ServerlessRegistry, ServerlessState};
use crate::shadow::ShadowLog;
use crate::sticky::{self, StickyKey};
use crate::InvokeError;
use arc_swap::ArcSwap;
use berth_domain::{pick_weighted, ExecutionMode, NameKey, RoutingStrategy};
use berth_instances::{InFlight, InstanceSlot};
use berth_metrics::{MetricsRegistry, VariantKey, VariantMetrics};
use std::collections::HashMap;
use std::sync::Arc;

/// The routes by lower-cased endpoint name, hashed with a fast seeded hasher (every request
/// looks a route up; only the controller adds names).
type Routes = HashMap<NameKey, Arc<EndpointRoute>, foldhash::fast::RandomState>;

/// Every routable endpoint, by lower-cased name. Readers never block; writers replace the map.
#[derive(Default)]
pub struct RoutingTable {
    endpoints: ArcSwap<Routes>,
    /// Per-variant metrics; a published route's variants record into these, so counters
    /// outlive route changes.
    metrics: MetricsRegistry,
    /// What shadow variants answered, compared with production.
    shadows: ShadowLog,
    /// Serverless variants' concurrency and cold-start state.
    serverless: ServerlessRegistry,
    /// Captured invocations on their way to the writer.
    capture: CaptureQueue,
    /// Where the sticky key is, for endpoints tagged `berth:sticky-key`.
    sticky: ArcSwap<HashMap<NameKey, Arc<StickyKey>>>,
    /// Endpoints being recovered (after a restart, or by a new leader): a request for one waits
    /// a little for its route rather than be told it does not exist.
    expected: std::sync::Mutex<std::collections::HashSet<NameKey>>,
    /// Woken when a route is published or removed.
    changed: tokio::sync::Notify,
}

impl RoutingTable {
    /// A table whose data capture buffers at most `bytes` of records.
    pub fn with_capture_buffer(bytes: usize) -> Self {
        RoutingTable { capture: CaptureQueue::new(bytes), ..RoutingTable::default() }
    }

    pub fn get(&self, endpoint: &str) -> Option<Arc<EndpointRoute>> {
        let map = self.endpoints.load();
        // A lower-case name (the usual case) is found without building a key.
        match map.get(endpoint) {
            Some(r) => Some(r.clone()),
            None => map.get(&NameKey::of(endpoint)).cloned(),
        }
    }

    pub fn metrics(&self) -> &MetricsRegistry {
        &self.metrics
    }

    pub fn shadows(&self) -> &ShadowLog {
        &self.shadows
    }

    pub fn serverless(&self) -> &ServerlessRegistry {
        &self.serverless
    }

    pub fn capture(&self) -> &CaptureQueue {
        &self.capture
    }

    /// Where `endpoint`'s sticky key is, if it has one.
    pub fn sticky(&self, endpoint: &str) -> Option<Arc<StickyKey>> {
        let map = self.sticky.load();
        if map.is_empty() {
            return None;
        }
        map.get(&NameKey::of(endpoint)).cloned()
    }

    /// Turns sticky assignment on (`Some`) or off for `endpoint`.
    pub fn set_sticky(&self, endpoint: &str, key: Option<StickyKey>) {
        let name = NameKey::of(endpoint);
        let key = key.map(Arc::new);
        self.sticky.rcu(|map| {
            let mut map = HashMap::clone(map);
            match &key {
                Some(k) => map.insert(name.clone(), k.clone()),
                None => map.remove(&name),
            };
            map
        });
    }

    /// Marks endpoints whose routes are coming (they are being recovered).
    pub fn expect<'a>(&self, endpoints: impl IntoIterator<Item = &'a str>) {
        self.expected.lock().unwrap_or_else(|e| e.into_inner()).extend(endpoints.into_iter().map(NameKey::of));
    }

    /// No route is expected any more (recovery has settled).
    pub fn stop_expecting(&self) {
        self.expected.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.changed.notify_waiters();
    }

    /// The route of `endpoint`; for an endpoint being recovered, waiting at most `wait` for it
    /// (`Recovering` if it is still to come then).
    pub async fn get_or_wait(&self, endpoint: &str, wait: std::time::Duration) -> Result<Arc<EndpointRoute>, InvokeError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.changed.notified();
            if let Some(route) = self.get(endpoint) {
                return Ok(route);
            }
            if !self.expected.lock().unwrap_or_else(|e| e.into_inner()).contains(&NameKey::of(endpoint)) {
                return Err(InvokeError::EndpointNotFound);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.get(endpoint).ok_or(InvokeError::Recovering);
            }
        }
    }

    fn settle(&self, key: &NameKey) {
        self.expected.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        self.changed.notify_waiters();
    }

    /// Resolves at the next publication or removal of a route (health changes of an instance are
    /// not announced: they show in the route's slots).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Every published route, for readers such as metrics exposition.
    pub fn routes(&self) -> Vec<Arc<EndpointRoute>> {
        self.endpoints.load().values().cloned().collect()
    }

    /// Installs (or replaces) the route of an endpoint.
    pub fn publish(&self, mut route: EndpointRoute) {
        let mut instances: HashMap<String, usize> = HashMap::new();
        let green = route.green.as_mut().map(|g| g.variants.iter_mut()).into_iter().flatten();
        let shadows = route.shadows.iter_mut().map(|s| &mut s.variant);
        let mut woken = Vec::new();
        for v in route.variants.iter_mut().chain(green).chain(shadows) {
            v.metrics = self.metrics.variant(&route.endpoint, &v.name);
            if let Some(placeholder) = &v.serverless {
                let state = self.serverless.state(&route.endpoint, &v.name, placeholder.max_concurrency());
                woken.push(state.clone());
                v.serverless = Some(state);
            }
            *instances.entry(v.name.clone()).or_default() += v.instances.iter().filter(|s| s.container() == 0).count();
            if let Some(models) = &v.models {
                models.keep_instances(&v.instances.iter().map(|s| s.serial()).collect::<Vec<_>>());
            }
            if let Some(p) = v.pipeline.as_deref().filter(|p| p.mode == ExecutionMode::Direct) {
                let container_metrics: Vec<Arc<VariantMetrics>> = p
                    .hostnames
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        let key = VariantKey::container(&route.endpoint, &v.name, h);
                        let m = self.metrics.variant(&key.endpoint, &key.variant);
                        m.set_instances(v.instances.iter().filter(|s| s.container() == i).count());
                        m
                    })
                    .collect();
                v.pipeline = Some(Arc::new(Pipeline { mode: p.mode, hostnames: p.hostnames.clone(), container_metrics }));
            }
        }
        for (name, n) in instances {
            self.metrics.variant(&route.endpoint, &name).set_instances(n);
        }
        for c in route.components.iter_mut().flatten() {
            let key = VariantKey::component(&route.endpoint, &c.name);
            c.variant.metrics = self.metrics.variant(&key.endpoint, &key.variant);
            c.variant.metrics.set_instances(c.variant.instances.len());
        }
        let key = NameKey::of(&route.endpoint);
        let route = Arc::new(route);
        self.endpoints.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(key.clone(), route.clone());
            map
        });
        self.settle(&key);
        // Requests waiting for a serverless instance look again.
        for state in woken {
            state.ready.notify_waiters();
        }
    }

    pub fn remove(&self, endpoint: &str) {
        self.set_sticky(endpoint, None);
        self.metrics.retire(endpoint);
        self.shadows.remove(endpoint);
        self.serverless.remove(endpoint);
        let key = NameKey::of(endpoint);
        self.endpoints.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.remove(&key);
            map
        });
        self.settle(&key);
    }
}

/// An endpoint's variants as the router sees them at one moment.
#[derive(Debug)]
pub struct EndpointRoute {
    pub endpoint: String,
    pub variants: Vec<VariantRoute>,
    /// During a guarded deployment: the new fleet and the share of traffic it takes.
    pub green: Option<GreenRoute>,
    /// Shadow variants: they get copies of production requests, and never answer callers.
    pub shadows: Vec<ShadowRoute>,
    /// Data capture, when enabled.
    pub capture: Option<CaptureSettings>,
    /// For an endpoint hosting inference components: each component and the variant that runs
    /// it as the router sees it (its instances the component's copies); every request names one.
    pub components: Option<Vec<ComponentRoute>>,
}

/// An inference component in a route.
#[derive(Debug)]
pub struct ComponentRoute {
    pub name: String,
    /// Named as its host variant (what answers say invoked), its instances the copies.
    pub variant: VariantRoute,
}

/// The new fleet of a deployment in progress (its variants record into the same metrics as the
/// old fleet's variants of the same name).
#[derive(Debug)]
pub struct GreenRoute {
    pub variants: Vec<VariantRoute>,
    /// In [0, 1]: the fraction of requests the new fleet serves.
    pub share: f64,
}

/// A shadow variant in a route: the fraction of production requests it gets a copy of.
#[derive(Debug)]
pub struct ShadowRoute {
    pub variant: VariantRoute,
    /// In [0, 1].
    pub sample: f64,
}

#[derive(Debug)]
pub struct VariantRoute {
    pub name: String,
    pub weight: f64,
    pub strategy: RoutingStrategy,
    /// The instance type the variant runs on (what its instances are sized and measured by).
    pub instance_type: String,
    /// The memory of one instance (the instance type's, or a serverless variant's MemorySizeInMB).
    pub memory_mib: u64,
    pub instances: Vec<Arc<InstanceSlot>>,
    /// Set by [`RoutingTable::publish`].
    pub metrics: Arc<VariantMetrics>,
    /// For a serverless variant: its concurrency limit and cold-start state (a placeholder
    /// with the MaxConcurrency until [`RoutingTable::publish`] attaches the shared one).
    pub serverless: Option<Arc<ServerlessState>>,
    /// For a multi-model variant: the models its instances have loaded.
    pub models: Option<Arc<ModelCache>>,
    /// For a multi-container variant: how its containers are invoked and their hostnames.
    /// `instances` then holds every container's instances, each slot saying which it runs.
    pub pipeline: Option<Arc<Pipeline>>,
}

impl EndpointRoute {
    /// The inference component a request names (`X-Amzn-SageMaker-Inference-Component`); an
    /// endpoint hosting components needs one named, one hosting models takes none.
    pub fn pick_component(&self, component: Option<&str>) -> Result<Option<&VariantRoute>, InvokeError> {
        match (&self.components, component) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(InvokeError::Target(format!(
                "Inference Component Name header is not allowed for endpoints to which you dont plan to deploy inference components. Please remove the Inference Component Name header and try again (endpoint {}).",
                self.endpoint
            ))),
            (Some(_), None) => Err(InvokeError::Target(
                "Inference Component Name header is required for endpoints to which you plan to deploy inference components. Please include Inference Component Name header or consider using SageMaker models.".into(),
            )),
            (Some(list), Some(name)) => match list.iter().find(|c| c.name.eq_ignore_ascii_case(name)) {
                Some(c) if c.variant.instances.is_empty() => Err(InvokeError::Target(format!(
                    "Inference Component {name} has no capacity to process this request. ApplicationAutoScaling may be in-progress (if configured) or try to increase the capacity by invoking UpdateInferenceComponentRuntimeConfig API."
                ))),
                Some(c) => Ok(Some(&c.variant)),
                None => Err(InvokeError::Target(format!(
                    "Inference Component {name} does not exist on endpoint {}.",
                    self.endpoint
                ))),
            },
        }
    }

    /// The variants that serve production traffic: the route's own and, during a guarded
    /// deployment, the new fleet's (not shadows).
    pub fn serving_variants(&self) -> impl Iterator<Item = &VariantRoute> {
        self.variants.iter().chain(self.green.iter().flat_map(|g| g.variants.iter()))
    }

    /// The target variant if one is named; else the variant a sticky `key` is assigned to;
    /// else a variant drawn by weight with `r` in [0, 1). During a deployment, `r` (or the
    /// key's own draw) first picks the old or the new fleet by the new one's share.
    pub fn pick_variant(&self, target: Option<&str>, key: Option<&str>, r: f64) -> Result<&VariantRoute, InvokeError> {
        let r = match key {
            Some(key) if self.green.is_some() => sticky::draw("", key),
            _ => r,
        };
        let blue = self.variants.as_slice();
        let (fleet, other, r) = match &self.green {
            Some(g) if r < g.share => (g.variants.as_slice(), blue, r / g.share),
            Some(g) => (blue, g.variants.as_slice(), (r - g.share) / (1.0 - g.share)),
            None => (blue, &[][..], r),
        };
        if let Some(target) = target {
            return fleet
                .iter()
                .chain(other)
                .find(|v| v.name == target)
                .ok_or_else(|| InvokeError::VariantNotFound { variant: target.to_string() });
        }
        let i = match key {
            Some(key) => sticky::assign(fleet.iter().map(|v| (v.name.as_str(), v.weight)), key),
            None => pick_weighted(fleet.iter().map(|v| v.weight), r),
        };
        Ok(&fleet[i.ok_or(InvokeError::NoWeight)?])
    }
}

impl VariantRoute {
    /// A healthy instance by the variant's strategy, already counted as serving the request.
    pub fn pick_instance(&self) -> Option<(Arc<InstanceSlot>, InFlight)> {
        self.pick_container_instance(0)
    }

    /// An instance of a multi-container variant's container `index` (0: the first, or the
    /// only container of any other variant).
    /// The model cache and key of a call: both for a multi-model variant (which needs a
    /// `TargetModel`), neither for another (which takes none).
    pub(crate) fn model_of<'v>(
        &'v self,
        endpoint: &str,
        target: Option<&'v str>,
    ) -> Result<Option<(&'v Arc<ModelCache>, &'v str)>, InvokeError> {
        crate::models::model_of(endpoint, &self.name, self.models.as_ref(), target)
    }

    pub fn pick_container_instance(&self, index: usize) -> Option<(Arc<InstanceSlot>, InFlight)> {
        self.pick_instance_among(|s| s.container() == index)
    }

    /// As [`VariantRoute::pick_instance`], among the instances `prefer` takes when any of
    /// them is healthy (a multi-model variant's instances that have the model loaded).
    pub fn pick_instance_preferring(&self, prefer: impl Fn(&InstanceSlot) -> bool) -> Option<(Arc<InstanceSlot>, InFlight)> {
        self.pick_instance_among(|s| s.container() == 0 && prefer(s)).or_else(|| self.pick_instance())
    }

    fn pick_instance_among(&self, among: impl Fn(&InstanceSlot) -> bool) -> Option<(Arc<InstanceSlot>, InFlight)> {
        for _ in 0..4 {
            let chosen = self.choose(&among)?;
            let guard = chosen.begin();
            // Counted first, checked second: an instance being retired either sees this
            // request in flight and waits for it, or this request sees it unhealthy.
            if chosen.is_healthy() {
                return Some((chosen.clone(), guard));
            }
        }
        None
    }

    /// One pass over the instances, reading each one's load once (loads change concurrently),
    /// choosing uniformly among equals by reservoir sampling; no allocation.
    fn choose(&self, among: impl Fn(&InstanceSlot) -> bool) -> Option<&Arc<InstanceSlot>> {
        let mut chosen = None;
        let mut best_load = usize::MAX;
        let mut equals = 0u32;
        for slot in self.instances.iter().filter(|s| s.is_healthy() && among(s)) {
            let load = match self.strategy {
                RoutingStrategy::LeastOutstandingRequests => slot.outstanding(),
                RoutingStrategy::Random => 0,
            };
            if load < best_load {
                (chosen, best_load, equals) = (Some(slot), load, 1);
            } else if load == best_load {
                equals += 1;
                if fastrand::u32(..equals) == 0 {
                    chosen = Some(slot);
                }
            }
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_waits_for_the_route_of_an_endpoint_being_recovered_only() {
        let table = Arc::new(RoutingTable::default());
        let wait = std::time::Duration::from_secs(5);
        assert!(
            matches!(table.get_or_wait("other", wait).await, Err(InvokeError::EndpointNotFound)),
            "an endpoint not expected is not waited for"
        );
        table.expect(["Recovering"]);
        let waiting = tokio::spawn({
            let table = table.clone();
            async move { table.get_or_wait("recovering", wait).await.ok().map(|r| r.endpoint.clone()) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        table.publish(EndpointRoute {
            endpoint: "Recovering".into(),
            variants: vec![variant("A", 1.0)],
            green: None,
            shadows: Vec::new(),
            capture: None,
            components: None,
        });
        assert_eq!(waiting.await.unwrap().as_deref(), Some("Recovering"));
        // Once recovery has settled, nothing is waited for.
        table.expect(["failed"]);
        table.stop_expecting();
        let started = std::time::Instant::now();
        assert!(table.get_or_wait("failed", wait).await.is_err());
        table.expect(["slow"]);
        assert!(matches!(table.get_or_wait("slow", std::time::Duration::from_millis(20)).await, Err(InvokeError::Recovering)));
        assert!(started.elapsed() < wait);
    }

    fn variant(name: &str, weight: f64) -> VariantRoute {
        VariantRoute {
            name: name.into(),
            weight,
            strategy: RoutingStrategy::default(),
            instance_type: String::new(),
            memory_mib: 0,
            instances: vec![],
            metrics: Default::default(),
            serverless: None,
            models: None,
            pipeline: None,
        }
    }

    #[test]
    fn target_variant_pins_even_at_zero_weight() {
        let route = EndpointRoute {
            endpoint: "e".into(),
            variants: vec![variant("A", 1.0), variant("B", 0.0)],
            green: None,
            shadows: vec![],
            capture: None,
            components: None,
        };
        assert_eq!(route.pick_variant(Some("B"), None, 0.1).unwrap().name, "B");
        assert!(matches!(route.pick_variant(Some("C"), None, 0.1), Err(InvokeError::VariantNotFound { .. })));
        assert_eq!(route.pick_variant(None, None, 0.99).unwrap().name, "A");
    }

    #[test]
    fn the_new_fleet_takes_its_share() {
        let green = GreenRoute { variants: vec![variant("A", 1.0), variant("New", 1.0)], share: 0.25 };
        let route = EndpointRoute {
            endpoint: "e".into(),
            variants: vec![variant("A", 1.0)],
            green: Some(green),
            shadows: vec![],
            capture: None,
            components: None,
        };
        let to_green = (0..1000).filter(|i| route.pick_variant(None, None, *i as f64 / 1000.0).unwrap().name == "New").count();
        assert_eq!(to_green, 125, "half of the new fleet's quarter");
        // A target variant is served by the fleet the draw picked, or by the other one.
        assert!(std::ptr::eq(route.pick_variant(Some("A"), None, 0.1).unwrap(), &route.green.as_ref().unwrap().variants[0]));
        assert!(std::ptr::eq(route.pick_variant(Some("A"), None, 0.9).unwrap(), &route.variants[0]));
        assert_eq!(route.pick_variant(Some("New"), None, 0.9).unwrap().name, "New");
    }

    #[test]
    fn publish_replaces_and_remove_forgets() {
        let table = RoutingTable::default();
        table.publish(EndpointRoute {
            endpoint: "Ep".into(),
            variants: vec![variant("A", 1.0)],
            green: None,
            shadows: vec![],
            capture: None,
            components: None,
        });
        table.publish(EndpointRoute {
            endpoint: "Ep".into(),
            variants: vec![variant("B", 1.0)],
            green: None,
            shadows: vec![],
            capture: None,
            components: None,
        });
        assert_eq!(table.get("ep").unwrap().variants[0].name, "B");
        assert_eq!(table.get("Ep").unwrap().variants[0].name, "B");
        table.remove("EP");
        assert!(table.get("ep").is_none());
    }

    fn healthy_variant(strategy: RoutingStrategy, n: u16) -> VariantRoute {
        let instances = (0..n).map(|i| Arc::new(InstanceSlot::healthy_for_tests(&format!("i{i}"), 1000 + i))).collect();
        VariantRoute {
            name: "A".into(),
            weight: 1.0,
            strategy,
            instance_type: String::new(),
            memory_mib: 0,
            instances,
            metrics: Default::default(),
            serverless: None,
            models: None,
            pipeline: None,
        }
    }

    #[test]
    fn least_outstanding_prefers_the_idle_instance_and_spreads_ties() {
        let v = healthy_variant(RoutingStrategy::LeastOutstandingRequests, 3);
        let _busy = v.instances[0].begin();
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            let (slot, _guard) = v.pick_instance().unwrap();
            counts[slot.addr().port() as usize - 1000] += 1;
        }
        assert_eq!(counts[0], 0);
        assert!(counts[1] > 1200 && counts[2] > 1200, "{counts:?}");
    }

    #[test]
    fn random_ignores_load() {
        let v = healthy_variant(RoutingStrategy::Random, 2);
        let _busy = v.instances[0].begin();
        let picks = (0..2000).filter(|_| v.pick_instance().unwrap().0.addr().port() == 1000).count();
        assert!(picks > 800 && picks < 1200, "{picks}");
    }

    #[test]
    fn the_only_healthy_instance_is_picked_while_its_load_changes() {
        // Regression: loads read twice could disagree under concurrency and pick nothing.
        let v = Arc::new(healthy_variant(RoutingStrategy::LeastOutstandingRequests, 1));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churn = {
            let (v, stop) = (v.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    drop(v.instances[0].begin());
                }
            })
        };
        for _ in 0..200_000 {
            assert!(v.pick_instance().is_some());
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        churn.join().unwrap();
    }

    #[test]
    fn unhealthy_instances_are_not_picked() {
        let v = VariantRoute {
            name: "A".into(),
            weight: 1.0,
            strategy: RoutingStrategy::LeastOutstandingRequests,
            instance_type: String::new(),
            memory_mib: 0,
            instances: vec![Arc::new(InstanceSlot::new("i1".into()))],
            metrics: Default::default(),
            serverless: None,
            models: None,
            pipeline: None,
        };
        assert!(v.pick_instance().is_none());
        assert_eq!(v.instances[0].outstanding(), 0);
    }
}
