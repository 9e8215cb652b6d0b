//! `berth serve --demo`: the seed's two-variant A/B endpoint, ready to call, with nothing set up,
//! and traffic of its own that decides the A/B test within a minute.
//!
//! Two iris classifiers (a logistic regression and a random forest, exported with skl2onnx by
//! `tools/gen_demo_models.py`) are built into the binary, written to the data directory, and
//! deployed as endpoint `demo` with `Variant1` and `Variant2` at weights 1:1 on `berth/onnx`,
//! with data capture on. Unless `--demo-traffic off`, berth then calls the endpoint itself with
//! iris flowers measured with noise (`tools/gen_demo_traffic.py`; the forest suffers more) and
//! sends each one's true species as ground truth a few seconds later, so the dashboard shows
//! per-variant accuracy with intervals and the always-valid test reaches a verdict.

use crate::security::DemoKey;
use anyhow::Context;
use berth_control::{ControlError, Controller, CreateEndpoint, CreateEndpointConfig, CreateModel, GroundTruth, UpdateEndpoint};
use berth_domain::{ContainerSpec, DataCapture, EndpointConfig, EndpointStatus, Model, VariantSpec};
use berth_router::{InvokeRequest, Router};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const ENDPOINT: &str = "demo";
/// The demo's endpoint config: both variants, data capture on (an earlier berth's demo ran
/// `demo-config`, without capture; it is moved to this one).
const CONFIG: &str = "demo-ab-config";
const MODELS: [(&str, &str, &[u8]); 2] = [
    ("Variant1", "demo-iris-logistic", include_bytes!("../demo/iris-logistic.onnx")),
    ("Variant2", "demo-iris-forest", include_bytes!("../demo/iris-forest.onnx")),
];

/// Creates whatever part of the demo does not exist yet (a restart keeps the rest).
pub async fn deploy(controller: &Arc<Controller>, data_dir: &Path) -> anyhow::Result<()> {
    let dir = data_dir.join("demo");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut variants = Vec::new();
    for (variant, model, bytes) in MODELS {
        let path = dir.join(format!("{model}.onnx"));
        // Into place by rename: after a restart the stored demo endpoint is already being brought
        // back, copying this file, while it is written again here; a reader sees it whole.
        let partial = path.with_extension("onnx.partial");
        std::fs::write(&partial, bytes).with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, &path).with_context(|| format!("moving {} into place", path.display()))?;
        let container = ContainerSpec::new("berth/onnx:1", Some(format!("file://{}", path.display())));
        let role = Some("arn:aws:iam::123456789012:role/berth-demo".to_string());
        let create = CreateModel { model: Model { execution_role_arn: role, ..Model::new(model, vec![container]) }, tags: vec![] };
        ignore_existing(controller.create_model(create).await)?;
        variants.push(VariantSpec::new(variant, model, "ml.m5.large", 1));
    }
    let capture = DataCapture {
        enabled: true,
        sampling_percentage: 100,
        destination: format!("file://{}", dir.join("capture").display()),
        kms_key_id: None,
        input: true,
        output: true,
        csv_types: vec!["text/csv".into()],
        json_types: vec!["application/json".into()],
    };
    let config = CreateEndpointConfig {
        config: EndpointConfig { data_capture: Some(capture), ..EndpointConfig::new(CONFIG, variants) },
        tags: vec![],
    };
    ignore_existing(controller.create_endpoint_config(config).await)?;
    let endpoint = CreateEndpoint { name: ENDPOINT.into(), config_name: CONFIG.into(), tags: vec![], deployment_config: None };
    ignore_existing(controller.create_endpoint(endpoint).await)?;
    if let Ok(e) = controller.describe_endpoint(ENDPOINT).await {
        if e.config_name == "demo-config" && e.status == EndpointStatus::InService {
            let update = UpdateEndpoint {
                name: ENDPOINT.into(),
                config_name: CONFIG.into(),
                retain_all_variant_properties: false,
                exclude_retained_variant_properties: vec![],
                deployment_config: None,
                retain_deployment_config: false,
            };
            ignore_existing(controller.update_endpoint(update).await)?;
        }
    }
    Ok(())
}

/// The demo's traffic: `(CSV row, true species)`.
fn traffic_rows() -> Vec<(String, u8)> {
    include_str!("../demo/iris-traffic.csv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (row, label) = l.rsplit_once(',')?;
            Some((row.to_string(), label.trim().parse().ok()?))
        })
        .collect()
}

/// How long after its prediction a flower's true species is known.
const LABEL_DELAY: Duration = Duration::from_secs(3);
/// Requests per second while the test is young, and afterwards.
const BUSY_RATE: u32 = 20;
const QUIET_RATE: u32 = 1;
const BUSY_FOR: Duration = Duration::from_secs(180);

/// Calls the demo endpoint through the router (as a caller would, so metrics and capture see
/// it) and sends each answer's true label as ground truth `LABEL_DELAY` later. Runs until berth
/// stops; pauses while the endpoint is not in service.
pub async fn send_traffic(controller: Arc<Controller>, router: Arc<Router>) {
    let rows = traffic_rows();
    let started = Instant::now();
    let run = fastrand::u32(..);
    let mut pending: VecDeque<(Instant, GroundTruth)> = VecDeque::new();
    let mut sent: u64 = 0;
    loop {
        let rate = if started.elapsed() < BUSY_FOR { BUSY_RATE } else { QUIET_RATE };
        tokio::time::sleep(Duration::from_secs(1) / rate).await;
        let in_service = controller.describe_endpoint(ENDPOINT).await.is_ok_and(|e| e.status == EndpointStatus::InService);
        if !in_service {
            continue;
        }
        let (row, label) = &rows[fastrand::usize(..rows.len())];
        sent += 1;
        let id = format!("demo-{run:08x}-{sent}");
        let request = InvokeRequest {
            body: row.clone().into(),
            content_type: Some(http::HeaderValue::from_static("text/csv")),
            inference_id: http::HeaderValue::from_str(&id).ok(),
            ..Default::default()
        };
        if router.invoke(ENDPOINT, request).await.is_ok() {
            let truth = GroundTruth { event_id: None, inference_id: Some(id), label: serde_json::json!(label) };
            pending.push_back((Instant::now() + LABEL_DELAY, truth));
        }
        let due = pending.iter().take_while(|(at, _)| *at <= Instant::now()).count();
        if due > 0 {
            let labels: Vec<GroundTruth> = pending.drain(..due).map(|(_, t)| t).collect();
            if let Err(e) = controller.add_ground_truth(ENDPOINT, labels).await {
                tracing::debug!(error = %e, "the demo's ground truth was not stored");
            }
        }
    }
}

/// Prints how to call the demo once its endpoint is in service (or why it is not).
pub async fn announce(controller: &Controller, addr: SocketAddr, scheme: &'static str, signed: bool, key: Option<&DemoKey>, traffic: bool) {
    loop {
        match controller.describe_endpoint(ENDPOINT).await.map(|e| e.status) {
            Ok(berth_domain::EndpointStatus::InService) => {
                println!("{}", usage(addr, scheme, controller.account(), signed, key, traffic));
                return;
            }
            Ok(berth_domain::EndpointStatus::Failed) | Err(_) => {
                let reason = controller.describe_endpoint(ENDPOINT).await.ok().and_then(|e| e.failure_reason);
                tracing::error!(reason = reason.as_deref().unwrap_or("unknown"), "the demo endpoint failed");
                return;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn ignore_existing<T>(result: Result<T, ControlError>) -> anyhow::Result<()> {
    match result {
        Ok(_) | Err(ControlError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("deploying the demo: {e}")),
    }
}

/// What a person needs to call the demo: every command runs as printed in a shell with no AWS
/// configuration (the region and, unless berth checks signatures, `--no-sign-request` are in it).
pub fn usage(
    addr: SocketAddr,
    scheme: &str,
    account: &berth_domain::Account,
    signed: bool,
    key: Option<&DemoKey>,
    traffic: bool,
) -> String {
    // In a container berth listens on every address; it is called on the port published for it.
    let addr = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    let url = format!("{scheme}://{addr}");
    // With the demo's own key pair, every command carries it.
    let (env, boto_key, curl_sign) = match key {
        Some(k) => (
            format!("AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} ", k.access_key_id, shell_word(&k.secret_access_key)),
            (k.access_key_id.clone(), k.secret_access_key.clone()),
            format!(
                " --aws-sigv4 'aws:amz:{}:sagemaker' --user {}",
                account.region,
                shell_word(&format!("{}:{}", k.access_key_id, k.secret_access_key))
            ),
        ),
        None => (String::new(), ("x".to_string(), "x".to_string()), String::new()),
    };
    let (key_id, secret) = (&boto_key.0, &boto_key.1);
    let region = &account.region;
    let arn = account.arn(berth_domain::ResourceKind::Endpoint, ENDPOINT);
    let aws = if signed {
        format!("--endpoint-url {url} --region {region}")
    } else {
        format!("--endpoint-url {url} --region {region} --no-sign-request")
    };
    let berth = std::env::current_exe().map(|p| shell_word(&p.display().to_string())).unwrap_or_else(|_| "berth".into());
    let signing = match (signed, key) {
        (_, Some(k)) => format!(
            "\nberth listens on a network address with no authentication set up, so the demo checks signatures made\n\
             with a key pair of its own: AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={}\n",
            k.access_key_id, k.secret_access_key
        ),
        (true, None) => "\nberth checks signatures (--auth sigv4): give these commands a key pair of its credentials file,\ne.g. AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... before each.\n".to_string(),
        (false, None) => String::new(),
    };
    let traffic = if traffic {
        "berth is sending the demo traffic of its own (iris flowers measured with noise) and each one's true\n\
         species 3 s later: within about a minute the dashboard shows each variant's accuracy and which is\n\
         better (--demo-traffic off to stay quiet)."
    } else {
        "The demo sends no traffic of its own (--demo-traffic off)."
    };
    format!(
        r#"
berth demo — dashboard: {url}/ui

Endpoint '{ENDPOINT}' serves two iris classifiers, Variant1 (logistic regression) and Variant2
(random forest), at weights 1:1. Features: sepal length, sepal width, petal length, petal width.
{traffic}
{signing}
Call it yourself (no AWS setup needed):

  curl -s{curl_sign} {url}/endpoints/{ENDPOINT}/invocations -H 'Content-Type: text/csv' -d '5.1,3.5,1.4,0.2' -D -

  python3 -c "import boto3; rt = boto3.client('sagemaker-runtime', endpoint_url='{url}', region_name='{region}', aws_access_key_id='{key_id}', aws_secret_access_key='{secret}'); r = rt.invoke_endpoint(EndpointName='{ENDPOINT}', ContentType='text/csv', Body='6.7,3.0,5.2,2.3'); print(r['InvokedProductionVariant'], r['Body'].read().decode())"

  {env}aws sagemaker describe-endpoint --endpoint-name {ENDPOINT} {aws}
  {env}aws sagemaker update-endpoint-weights-and-capacities --endpoint-name {ENDPOINT} {aws} \
      --desired-weights-and-capacities VariantName=Variant1,DesiredWeight=25 VariantName=Variant2,DesiredWeight=75

The A/B test's verdict and each variant's accuracy:

  {env}{berth} ab {ENDPOINT} --url {url}

Let a bandit move traffic to the better model (Thompson sampling on accuracy):

  {env}aws sagemaker add-tags --resource-arn {arn} --tags Key=berth:routing,Value=thompson {aws}
"#
    )
}

/// `word` as one shell word: as it is when it needs no quoting, else in single quotes.
fn shell_word(word: &str) -> String {
    if word.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
