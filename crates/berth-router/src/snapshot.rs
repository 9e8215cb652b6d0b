//! Routes as one server of a cluster publishes them for the others: the leader runs the
//! instances and writes each endpoint's route to the shared store as a [`RouteSnapshot`]; a
//! server that stands by reads them into a routing table of its own ([`Replica`]) and routes
//! invocations straight to the instances, so its traffic does not pass through the leader and
//! flows on while the leader is gone or the store cannot be read.
//!
//! Only what a standby can route as the leader would is published as routable: plain and
//! weighted variants, guarded deployments' fleets. An endpoint with data capture, shadow
//! variants, sticky keys, serverless, multi-model or multi-container variants, or inference
//! components is published as not routable, and a standby forwards its invocations to the leader.

use crate::table::{EndpointRoute, GreenRoute, RoutingTable, VariantRoute};
use berth_domain::{NameKey, RoutingStrategy};
use berth_instances::InstanceSlot;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// An endpoint's route as published.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RouteSnapshot {
    pub endpoint: String,
    /// Where the instances' addresses mean something: the publisher's host (see
    /// `berth_instances::this_host`), or [`ANY_HOST`] for addresses every server reaches (pods'
    /// IPs). Another host forwards instead.
    pub host: String,
    /// Whether another server may route the endpoint's invocations itself.
    pub routable: bool,
    pub variants: Vec<PublishedVariant>,
    /// During a guarded deployment: the new fleet and its share of the traffic.
    pub green: Option<(Vec<PublishedVariant>, f64)>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PublishedVariant {
    pub name: String,
    pub weight: f64,
    pub strategy: RoutingStrategy,
    pub instance_type: String,
    pub memory_mib: u64,
    pub instances: Vec<InstanceAddress>,
}

/// Where one instance listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct InstanceAddress {
    pub id: String,
    pub addr: SocketAddr,
    /// The process whose network namespace the address is in (a container's), if not the host's.
    pub netns_pid: Option<u32>,
    pub healthy: bool,
}

impl RoutingTable {
    /// Every published route as another server of this `host` would route it.
    pub fn snapshots(&self, host: &str) -> Vec<RouteSnapshot> {
        let mut out: Vec<RouteSnapshot> =
            self.routes().iter().map(|route| snapshot(route, self.sticky(&route.endpoint).is_some(), host)).collect();
        out.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        out
    }
}

fn snapshot(route: &EndpointRoute, sticky: bool, host: &str) -> RouteSnapshot {
    let plain = |v: &VariantRoute| v.serverless.is_none() && v.models.is_none() && v.pipeline.is_none();
    let routable =
        !sticky && route.capture.is_none() && route.shadows.is_empty() && route.components.is_none() && route.serving_variants().all(plain);
    let variants = |vs: &[VariantRoute]| if routable { vs.iter().map(variant).collect() } else { Vec::new() };
    RouteSnapshot {
        endpoint: route.endpoint.clone(),
        host: host.to_string(),
        routable,
        variants: variants(&route.variants),
        green: route.green.as_ref().filter(|_| routable).map(|g| (variants(&g.variants), g.share)),
    }
}

fn variant(v: &VariantRoute) -> PublishedVariant {
    PublishedVariant {
        name: v.name.clone(),
        weight: v.weight,
        strategy: v.strategy,
        instance_type: v.instance_type.clone(),
        memory_mib: v.memory_mib,
        instances: v
            .instances
            .iter()
            .map(|s| InstanceAddress { id: s.id.clone(), addr: s.addr(), netns_pid: s.netns_pid(), healthy: s.is_healthy() })
            .collect(),
    }
}

/// An instance as published: its id, address and namespace (a restarted container's new
/// namespace is another slot).
type SlotKey = (String, SocketAddr, Option<u32>);

/// The host of routes whose instance addresses every server of the cluster reaches (pods' IPs
/// on Kubernetes), wherever it runs.
pub const ANY_HOST: &str = "*";

/// A standby's copy of the leader's routes: routable snapshots of this host go into its table,
/// keeping each instance's slot (its pooled connections, its count in flight) across updates.
pub struct Replica {
    table: Arc<RoutingTable>,
    host: String,
    slots: Mutex<HashMap<SlotKey, Arc<InstanceSlot>>>,
}

impl Replica {
    pub fn new(table: Arc<RoutingTable>, host: &str) -> Replica {
        Replica { table, host: host.to_string(), slots: Mutex::default() }
    }

    pub fn table(&self) -> &Arc<RoutingTable> {
        &self.table
    }

    /// Routes `endpoint` as `snapshot` says, or not at all (its invocations are forwarded) when
    /// there is none, it is not routable, or its instances cannot be reached from here.
    pub fn apply(&self, endpoint: &str, snapshot: Option<&RouteSnapshot>) {
        let route = snapshot.filter(|s| s.routable && (s.host == self.host || s.host == ANY_HOST)).and_then(|s| self.route(s));
        match route {
            Some(route) => self.table.publish(route),
            None => self.table.remove(endpoint),
        }
        self.forget_unused();
    }

    /// Replaces every route with `snapshots` (after a reconnection, when changes may have been
    /// missed).
    pub fn apply_all(&self, snapshots: &[RouteSnapshot]) {
        let named: HashSet<NameKey> = snapshots.iter().map(|s| NameKey::of(&s.endpoint)).collect();
        for route in self.table.routes() {
            if !named.contains(&NameKey::of(&route.endpoint)) {
                self.table.remove(&route.endpoint);
            }
        }
        for s in snapshots {
            self.apply(&s.endpoint, Some(s));
        }
    }

    fn route(&self, s: &RouteSnapshot) -> Option<EndpointRoute> {
        let variants = |vs: &[PublishedVariant]| vs.iter().map(|v| self.variant(v)).collect::<Option<Vec<_>>>();
        let green = match &s.green {
            Some((vs, share)) => Some(GreenRoute { variants: variants(vs)?, share: *share }),
            None => None,
        };
        Some(EndpointRoute {
            endpoint: s.endpoint.clone(),
            variants: variants(&s.variants)?,
            green,
            shadows: Vec::new(),
            capture: None,
            components: None,
        })
    }

    fn variant(&self, v: &PublishedVariant) -> Option<VariantRoute> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut instances = Vec::with_capacity(v.instances.len());
        for i in &v.instances {
            let key = (i.id.clone(), i.addr, i.netns_pid);
            let slot = match slots.get(&key) {
                Some(slot) => slot.clone(),
                None => match InstanceSlot::elsewhere(i.id.clone(), 0, i.addr, i.netns_pid, i.healthy) {
                    Ok(slot) => slots.entry(key).or_insert(Arc::new(slot)).clone(),
                    Err(e) => {
                        tracing::warn!(instance = %i.id, error = %e, "cannot reach an instance the leader runs; its endpoint's invocations go through the leader");
                        return None;
                    }
                },
            };
            slot.set_published_health(i.healthy);
            instances.push(slot);
        }
        Some(VariantRoute {
            name: v.name.clone(),
            weight: v.weight,
            strategy: v.strategy,
            instance_type: v.instance_type.clone(),
            memory_mib: v.memory_mib,
            instances,
            metrics: Arc::default(),
            serverless: None,
            models: None,
            pipeline: None,
        })
    }

    /// Drops the slots no route holds any more.
    fn forget_unused(&self) {
        let routes = self.table.routes();
        let held: HashSet<u64> =
            routes.iter().flat_map(|r| r.serving_variants()).flat_map(|v| v.instances.iter().map(|s| s.serial())).collect();
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, slot| held.contains(&slot.serial()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CaptureSettings;

    fn route(endpoint: &str, ports: &[u16]) -> EndpointRoute {
        let instances = ports.iter().map(|&p| Arc::new(InstanceSlot::healthy_for_tests(&format!("i-{p}"), p))).collect();
        EndpointRoute {
            endpoint: endpoint.into(),
            variants: vec![VariantRoute {
                name: "A".into(),
                weight: 1.0,
                strategy: RoutingStrategy::default(),
                instance_type: "ml.m5.large".into(),
                memory_mib: 8192,
                instances,
                metrics: Arc::default(),
                serverless: None,
                models: None,
                pipeline: None,
            }],
            green: None,
            shadows: Vec::new(),
            capture: None,
            components: None,
        }
    }

    #[test]
    fn a_replica_routes_what_the_leader_published_on_its_host_only() {
        let leader = RoutingTable::default();
        leader.publish(route("Plain", &[9001, 9002]));
        let mut captured = route("captured", &[9003]);
        captured.capture = Some(CaptureSettings {
            sampling_percentage: 100,
            destination: "s3://bucket/capture".into(),
            kms_key_id: None,
            input: true,
            output: true,
            csv_types: Arc::new([]),
            json_types: Arc::new([]),
        });
        leader.publish(captured);
        // An endpoint of inference components: every request names one, which a standby's
        // route would not know.
        let mut components = route("components", &[]);
        components.components = Some(Vec::new());
        leader.publish(components);
        let mut published = leader.snapshots("host-1");
        published.sort_by_key(|a| a.endpoint.to_lowercase());
        let routable: Vec<(&str, bool)> = published.iter().map(|s| (s.endpoint.as_str(), s.routable)).collect();
        assert_eq!(routable, [("captured", false), ("components", false), ("Plain", true)]);
        published.rotate_left(2);
        assert_eq!(published[0].variants[0].instances[1].addr, "127.0.0.1:9002".parse().unwrap());
        assert!(published[1].variants.is_empty(), "nothing of a route a standby forwards is published");

        // The wire form is JSON, read back the same.
        let read: Vec<RouteSnapshot> = serde_json::from_str(&serde_json::to_string(&published).unwrap()).unwrap();
        assert_eq!(read, published);

        let replica = Replica::new(Arc::default(), "host-1");
        replica.apply_all(&read);
        let plain = replica.table().get("plain").expect("a routable endpoint is routed");
        assert_eq!(plain.variants[0].instances.len(), 2);
        assert!(replica.table().get("captured").is_none(), "an endpoint with capture goes to the leader");
        let first = plain.variants[0].instances[0].clone();

        // An update keeps the slots of instances that stay, and follows their health.
        let mut changed = read[0].clone();
        changed.variants[0].instances[0].healthy = false;
        changed.variants[0].instances.pop();
        replica.apply("Plain", Some(&changed));
        let plain = replica.table().get("plain").unwrap();
        assert!(Arc::ptr_eq(&plain.variants[0].instances[0], &first));
        assert!(!first.is_healthy());
        assert_eq!(replica.slots.lock().unwrap().len(), 1, "the dropped instance's slot is forgotten");

        // Another host's addresses mean nothing here; a deleted endpoint is no longer routed.
        let elsewhere = Replica::new(Arc::default(), "host-2");
        elsewhere.apply_all(&read);
        assert!(elsewhere.table().get("plain").is_none());
        // Addresses every server reaches (pods' IPs) are routed on any host.
        let anywhere: Vec<RouteSnapshot> = leader.snapshots(ANY_HOST);
        elsewhere.apply_all(&anywhere);
        assert_eq!(elsewhere.table().get("plain").expect("routed from another host").variants[0].instances.len(), 2);
        replica.apply("plain", None);
        assert!(replica.table().get("plain").is_none());
        replica.apply_all(&[]);
        assert!(replica.table().routes().is_empty());
    }
}
