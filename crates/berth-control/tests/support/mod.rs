//! What the controller's integration tests share: a controller on a temporary data directory
//! over an in-memory backend (`FakeBackend`), and the steps they take with it.

#![allow(dead_code)] // each test file uses its own part

use berth_control::{Controller, ControllerSettings, CreateEndpoint, CreateEndpointConfig, CreateModel, UpdateEndpoint};
use berth_domain::{ContainerSpec, DeploymentConfig, Endpoint, EndpointConfig, EndpointStatus, Model, VariantSpec};
use berth_instances::{AllowedRoots, ExtractLimits, FakeBackend, FakeCall, ModelArtifacts};
use berth_router::RoutingTable;
use berth_store::SqliteStore;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Server {
    pub controller: Arc<Controller>,
    pub routing: Arc<RoutingTable>,
}

pub fn server(dir: &Path, backend: &FakeBackend) -> Server {
    server_with(dir, backend, ControllerSettings::for_tests(dir))
}

/// A controller on `dir` with `settings`.
pub fn server_with(dir: &Path, backend: &FakeBackend, settings: ControllerSettings) -> Server {
    let store = SqliteStore::open(&dir.join("state.db")).unwrap();
    let limits = ExtractLimits { max_total_bytes: 1 << 20, max_entries: 100, max_ratio: 100, deadline: None };
    let artifacts = ModelArtifacts::new(dir.join("models"), limits, AllowedRoots::default());
    let routing = Arc::new(RoutingTable::default());
    let controller = Controller::new(Arc::new(store), Arc::new(backend.clone()), artifacts, routing.clone(), settings);
    Server { controller, routing }
}

impl Server {
    pub async fn model(&self, name: &str, image: &str) {
        let req = CreateModel { model: Model::new(name, vec![ContainerSpec::new(image, None)]), tags: vec![] };
        self.controller.create_model(req).await.unwrap();
    }

    /// A config of one variant per (variant, model, instances).
    pub async fn config(&self, name: &str, variants: &[(&str, &str, u32)]) {
        let variants = variants.iter().map(|&(v, model, count)| VariantSpec::new(v, model, "ml.m5.large", count)).collect();
        let req = CreateEndpointConfig { config: EndpointConfig::new(name, variants), tags: vec![] };
        self.controller.create_endpoint_config(req).await.unwrap();
    }

    pub async fn create(&self, endpoint: &str, config: &str) {
        let req = CreateEndpoint { name: endpoint.into(), config_name: config.into(), tags: vec![], deployment_config: None };
        self.controller.create_endpoint(req).await.unwrap();
    }

    pub async fn update(&self, endpoint: &str, config: &str, deployment_config: Option<DeploymentConfig>) {
        let req = UpdateEndpoint {
            name: endpoint.into(),
            config_name: config.into(),
            retain_all_variant_properties: false,
            exclude_retained_variant_properties: vec![],
            deployment_config,
            retain_deployment_config: false,
        };
        self.controller.update_endpoint(req).await.unwrap();
    }

    /// Waits until the endpoint's stored status is `want` and, when it is in service, its
    /// published route holds what it describes.
    pub async fn settled(&self, endpoint: &str, want: EndpointStatus) -> Endpoint {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let e = self.controller.describe_endpoint(endpoint).await.unwrap();
            if e.status == want {
                return e;
            }
            assert!(Instant::now() < deadline, "{endpoint} is {:?}, not {want:?}: {:?}", e.status, e.failure_reason);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Instances per variant in the published route.
    pub fn routed(&self, endpoint: &str) -> Vec<(String, usize)> {
        let route = self.routing.get(endpoint).expect("a published route");
        route.variants.iter().map(|v| (v.name.clone(), v.instances.len())).collect()
    }
}

pub fn started_images(backend: &FakeBackend) -> Vec<String> {
    backend
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            FakeCall::Started { image, .. } => Some(image),
            FakeCall::Stopped { .. } => None,
        })
        .collect()
}

pub async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
