//! deploy/kubernetes checked against the Kubernetes API's own types (k8s-openapi, generated from
//! its OpenAPI spec): every object reads as its kind and writes back the same (so no field is
//! misspelled, misplaced or of the wrong type), and has what running berth needs: probes and
//! resources on every container, a non-root pod, RBAC limited to what the backend does, and
//! selectors that select what they should. With kubectl on the PATH, kustomize renders the
//! base and the TLS component too.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

/// Every object of the base's files, as JSON.
fn objects() -> Vec<Value> {
    let mut objects = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(manifests_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml")) {
        let text = std::fs::read_to_string(path).unwrap();
        for document in serde_norway::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if !value.is_null() {
                objects.push(value);
            }
        }
    }
    objects
}

/// Reads `value` as the API type `T` and checks that it writes back the same.
fn typed<T: DeserializeOwned + Serialize>(value: &Value) -> T {
    let name = format!("{} {}", value["kind"], value["metadata"]["name"]);
    let object: T = serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let back = serde_json::to_value(&object).unwrap();
    assert_eq!(&back, value, "{name} does not write back as read: a field the API does not know, or of another type");
    object
}

fn by_kind(kind: &str) -> Vec<Value> {
    objects().into_iter().filter(|o| o["kind"] == kind).collect()
}

fn one(kind: &str, name: &str) -> Value {
    by_kind(kind).into_iter().find(|o| o["metadata"]["name"] == name).unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn every_object_is_of_the_apis_types() {
    let objects = objects();
    assert!(objects.len() >= 10, "{} objects", objects.len());
    for o in &objects {
        match o["kind"].as_str().unwrap() {
            "Namespace" => drop(typed::<Namespace>(o)),
            "ServiceAccount" => drop(typed::<ServiceAccount>(o)),
            "Role" => drop(typed::<Role>(o)),
            "RoleBinding" => drop(typed::<RoleBinding>(o)),
            "Deployment" => drop(typed::<Deployment>(o)),
            "StatefulSet" => drop(typed::<StatefulSet>(o)),
            "Service" => drop(typed::<Service>(o)),
            "PodDisruptionBudget" => drop(typed::<PodDisruptionBudget>(o)),
            "NetworkPolicy" => drop(typed::<NetworkPolicy>(o)),
            other => panic!("a {other} the test does not know"),
        }
    }
}

/// Every container has readiness and liveness probes, CPU and memory requests and a memory
/// limit, and runs without gaining privileges; the pod runs as a non-root user.
fn check_pod(name: &str, pod: &PodSpec) {
    let security = pod.security_context.as_ref().unwrap_or_else(|| panic!("{name}: no pod security context"));
    assert_eq!(security.run_as_non_root, Some(true), "{name}");
    for c in &pod.containers {
        assert!(c.readiness_probe.is_some() && c.liveness_probe.is_some(), "{name}/{}: probes", c.name);
        let resources = c.resources.as_ref().unwrap_or_else(|| panic!("{name}/{}: no resources", c.name));
        let requests = resources.requests.as_ref().unwrap();
        assert!(requests.contains_key("cpu") && requests.contains_key("memory"), "{name}/{}", c.name);
        assert!(resources.limits.as_ref().unwrap().contains_key("memory"), "{name}/{}", c.name);
        assert_eq!(c.security_context.as_ref().and_then(|s| s.allow_privilege_escalation), Some(false), "{name}/{}", c.name);
    }
}

#[test]
fn berth_and_its_database_run_with_probes_resources_and_no_root() {
    let berth: Deployment = typed(&one("Deployment", "berth"));
    let spec = berth.spec.unwrap();
    let pod = spec.template.spec.unwrap();
    check_pod("berth", &pod);
    let probe = pod.containers[0].readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
    assert_eq!(probe.path.as_deref(), Some("/healthz"));
    // berth's Host check: the probe names a host berth serves.
    assert_eq!(probe.http_headers.as_ref().unwrap()[0].value, "localhost");
    assert_eq!(pod.service_account_name.as_deref(), Some("berth"));
    let env: BTreeMap<_, _> = pod.containers[0].env.iter().flatten().map(|e| (e.name.as_str(), e)).collect();
    assert_eq!(env["BERTH_BACKEND"].value.as_deref(), Some("kubernetes"));
    assert_eq!(env["BERTH_KUBERNETES_OWNER"].value.as_deref(), Some("deployment/berth"));
    assert_eq!(env["BERTH_AUTH"].value.as_deref(), Some("sigv4"));
    assert!(env["BERTH_ADVERTISE_URL"].value.as_deref().unwrap().contains("$(POD_IP)"));
    // Secrets come from Secrets, never from the manifest.
    assert_eq!(env["PGPASSWORD"].value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap().name, "berth-postgres");
    let store = env["BERTH_STORE"].value.as_deref().unwrap();
    let user_info = store.strip_prefix("postgres://").and_then(|s| s.split_once('@')).map(|(u, _)| u).unwrap();
    assert!(!user_info.contains(':'), "no password in the store's URL: {store}");
    assert!(spec.replicas.unwrap() >= 2);
    let postgres: StatefulSet = typed(&one("StatefulSet", "berth-postgres"));
    check_pod("berth-postgres", &postgres.spec.unwrap().template.spec.unwrap());
}

#[test]
fn berths_role_grants_only_what_the_backend_does() {
    let role: Role = typed(&one("Role", "berth"));
    let mut granted = Vec::new();
    for rule in role.rules.unwrap() {
        for resource in rule.resources.unwrap() {
            for verb in &rule.verbs {
                granted.push(format!(
                    "{}/{resource}:{verb}:{}",
                    rule.api_groups.clone().unwrap().join(","),
                    rule.resource_names.clone().unwrap_or_default().join(",")
                ));
            }
        }
    }
    granted.sort();
    assert_eq!(
        granted,
        ["/pods/log:get:", "/pods:create:", "/pods:delete:", "/pods:get:", "/pods:list:", "/pods:watch:", "apps/deployments:get:berth",]
    );
    let binding: RoleBinding = typed(&one("RoleBinding", "berth"));
    assert_eq!(binding.role_ref.name, "berth");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!((subject.kind.as_str(), subject.name.as_str()), ("ServiceAccount", "berth"));
}

#[test]
fn selectors_select_berths_servers_and_isolated_instances() {
    let deployment: Deployment = typed(&one("Deployment", "berth"));
    let labels = deployment.spec.unwrap().template.metadata.unwrap().labels.unwrap();
    let selects = |selector: &BTreeMap<String, String>| selector.iter().all(|(k, v)| labels.get(k) == Some(v));
    let service: Service = typed(&one("Service", "berth"));
    assert!(selects(&service.spec.unwrap().selector.unwrap()));
    let budget: PodDisruptionBudget = typed(&one("PodDisruptionBudget", "berth"));
    assert!(selects(&budget.spec.unwrap().selector.unwrap().match_labels.unwrap()));
    let policy: NetworkPolicy = typed(&one("NetworkPolicy", "berth-isolated-instances"));
    let isolated = policy.spec.unwrap().pod_selector.unwrap().match_labels.unwrap();
    assert_eq!(isolated.get(berth_kubernetes::LABEL_ISOLATED).map(String::as_str), Some("true"), "the label instances' pods carry");
}

#[test]
fn kustomize_renders_the_base_and_the_tls_component() {
    let Ok(version) = std::process::Command::new("kubectl").args(["version", "--client"]).output() else {
        eprintln!("kubectl is not on the PATH: the kustomize rendering is not checked");
        return;
    };
    assert!(version.status.success());
    let render = |dir: &Path| {
        let out = std::process::Command::new("kubectl").arg("kustomize").arg(dir).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let base = render(&manifests_dir());
    assert!(base.contains("namespace: berth") && base.contains("kind: PodDisruptionBudget"));
    // The TLS component, switched on in a copy.
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&manifests_dir(), copy.path());
    let kustomization = copy.path().join("kustomization.yaml");
    let text =
        std::fs::read_to_string(&kustomization).unwrap().replace("# components:\n#   - components/tls", "components:\n  - components/tls");
    std::fs::write(&kustomization, text).unwrap();
    let tls = render(copy.path());
    for wanted in ["BERTH_TLS_CERT", "secretName: berth-tls", "scheme: HTTPS", "https://$(POD_IP):8080"] {
        assert!(tls.contains(wanted), "{wanted}");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
