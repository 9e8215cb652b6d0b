//! The client the operator commands talk to berth with: HTTPS when berth's URL says so (with
//! `AWS_CA_BUNDLE`), every call — AWS APIs and berth's own routes alike — signed with SigV4 from
//! the caller's AWS credentials. The secret key never leaves this process.

use anyhow::{bail, Context};
use aws_config::default_provider::region::DefaultRegionChain;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio_rustls::rustls;

pub(super) struct Api {
    pub(super) client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    pub(super) url: String,
    /// The caller's AWS credentials (environment, then the shared credentials and config files),
    /// if any: every call is signed with them (SigV4).
    credentials: Option<Credentials>,
    region: String,
}

impl Api {
    pub(super) async fn new(url: &str) -> anyhow::Result<Self> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls_config()?).https_or_http().enable_http1().build();
        let chain = CredentialsProviderChain::first_try("Environment", EnvironmentVariableCredentialsProvider::new())
            .or_else("Profile", ProfileFileCredentialsProvider::builder().build());
        let credentials = chain.provide_credentials().await.ok();
        let region = match DefaultRegionChain::builder().build().region().await {
            Some(r) => r.to_string(),
            None => "us-east-1".to_string(),
        };
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Api { client, url: url.trim_end_matches('/').to_string(), credentials, region })
    }

    pub(super) async fn send(&self, req: http::Request<Full<Bytes>>) -> anyhow::Result<(http::StatusCode, http::HeaderMap, Bytes)> {
        let resp = self.client.request(req).await.with_context(|| format!("cannot reach berth at {}", self.url))?;
        let (parts, body) = resp.into_parts();
        Ok((parts.status, parts.headers, body.collect().await?.to_bytes()))
    }

    pub(super) async fn get_json(&self, path_and_query: &str) -> anyhow::Result<Value> {
        let mut req = http::Request::get(format!("{}{path_and_query}", self.url)).body(Full::new(Bytes::new()))?;
        self.sign(&mut req, &[], "berth")?;
        let (status, _, body) = self.send(req).await?;
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{}", value.get("message").and_then(Value::as_str).unwrap_or(status.as_str()));
        }
        Ok(value)
    }

    /// Signs a request of an AWS API with the caller's credentials (when there are any).
    pub(super) fn sign(&self, req: &mut http::Request<Full<Bytes>>, body: &[u8], service: &str) -> anyhow::Result<()> {
        let Some(credentials) = &self.credentials else { return Ok(()) };
        let identity = credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service)
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let headers = req.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
        let uri = req.uri().to_string();
        let signable = SignableRequest::new(req.method().as_str(), &uri, headers, SignableBody::Bytes(body))?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        instructions.apply_to_request_http1x(req);
        Ok(())
    }

    /// A JSON API call (`SageMaker.<Op>` or CloudWatch's `GraniteServiceVersion20100801.<Op>`).
    pub(super) async fn call(&self, target: &str, input: Value) -> anyhow::Result<Value> {
        let (json_version, service) = if target.starts_with("SageMaker.") { ("1.1", "sagemaker") } else { ("1.0", "monitoring") };
        let body = Bytes::from(input.to_string());
        let mut req = http::Request::post(format!("{}/", self.url))
            .header("x-amz-target", target)
            .header("content-type", format!("application/x-amz-json-{json_version}"))
            .body(Full::new(body.clone()))?;
        self.sign(&mut req, &body, service)?;
        let (status, _, body) = self.send(req).await?;
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = value.get("Message").or_else(|| value.get("message")).and_then(Value::as_str).unwrap_or("");
            bail!("{target}: {} {message}", value.get("__type").and_then(Value::as_str).unwrap_or(status.as_str()));
        }
        Ok(value)
    }
}

/// TLS trust: the system's roots, and the certificates in `AWS_CA_BUNDLE` (as the AWS CLI).
pub(crate) fn tls_config() -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(bundle) = std::env::var_os("AWS_CA_BUNDLE") {
        use rustls_pki_types::pem::PemObject;
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(&bundle).context("reading AWS_CA_BUNDLE")? {
            roots.add(cert.context("parsing AWS_CA_BUNDLE")?).context("AWS_CA_BUNDLE holds an unusable certificate")?;
        }
    }
    Ok(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}
