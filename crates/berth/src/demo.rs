//! `berth serve --demo`: the seed's two-variant A/B endpoint, ready to call, with nothing set up.
//!
//! Two iris classifiers (a logistic regression and a random forest, exported with skl2onnx by
//! `tools/gen_demo_models.py`) are built into the binary, written to the data directory, and
//! deployed as endpoint `demo` with `Variant1` and `Variant2` at weights 1:1 on `berth/onnx`.

use anyhow::Context;
use berth_control::{ControlError, Controller, CreateEndpoint, CreateEndpointConfig, CreateModel};
use berth_domain::{ContainerSpec, VariantSpec};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub const ENDPOINT: &str = "demo";
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
        let create = CreateModel {
            name: model.into(),
            primary_container: true,
            containers: vec![ContainerSpec {
                hostname: None,
                image: "berth/onnx:1".into(),
                model_data_url: Some(format!("file://{}", path.display())),
                environment: Default::default(),
                mode: None,
                model_data_source: None,
            }],
            execution_role_arn: Some("arn:aws:iam::123456789012:role/berth-demo".into()),
            enable_network_isolation: None,
            vpc_config: None,
            tags: vec![],
        };
        ignore_existing(controller.create_model(create).await)?;
        variants.push(VariantSpec {
            name: variant.into(),
            model_name: model.into(),
            instance_type: "ml.m5.large".into(),
            initial_instance_count: 1,
            initial_weight: 1.0,
            container_startup_timeout_secs: None,
            model_data_download_timeout_secs: None,
            routing: None,
            shadow: false,
            serverless: None,
        });
    }
    let config = CreateEndpointConfig { name: "demo-config".into(), variants, kms_key_id: None, tags: vec![], data_capture: None };
    ignore_existing(controller.create_endpoint_config(config).await)?;
    let endpoint = CreateEndpoint { name: ENDPOINT.into(), config_name: "demo-config".into(), tags: vec![], deployment_config: None };
    ignore_existing(controller.create_endpoint(endpoint).await)?;
    Ok(())
}

fn ignore_existing<T>(result: Result<T, ControlError>) -> anyhow::Result<()> {
    match result {
        Ok(_) | Err(ControlError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("deploying the demo: {e}")),
    }
}

/// What a person needs to call the demo.
pub fn usage(addr: SocketAddr, scheme: &str) -> String {
    let url = format!("{scheme}://{addr}");
    format!(
        r#"
berth demo: endpoint '{ENDPOINT}' serves two iris classifiers, Variant1 (logistic regression) and
Variant2 (random forest), at weights 1:1. Features: sepal length, sepal width, petal length, petal width.

  curl -s {url}/endpoints/{ENDPOINT}/invocations -H 'Content-Type: text/csv' -d '5.1,3.5,1.4,0.2' -D - 

  python3 -c "import boto3; rt = boto3.client('sagemaker-runtime', endpoint_url='{url}', region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='x'); r = rt.invoke_endpoint(EndpointName='{ENDPOINT}', ContentType='text/csv', Body='6.7,3.0,5.2,2.3'); print(r['InvokedProductionVariant'], r['Body'].read().decode())"

  aws sagemaker describe-endpoint --endpoint-name {ENDPOINT} --endpoint-url {url}
  aws sagemaker update-endpoint-weights-and-capacities --endpoint-name {ENDPOINT} --endpoint-url {url} \
      --desired-weights-and-capacities VariantName=Variant1,DesiredWeight=25 VariantName=Variant2,DesiredWeight=75
"#
    )
}
