//! `--registry-webhook URL`: each registry change the controller reports (a model package's
//! approval, in the shape EventBridge delivers SageMaker's "Model Package State Change") is
//! POSTed as JSON to the operator's URL, in order, by one task: up to three tries each, 10 s
//! apiece. Delivery is at most once and not kept across restarts: berth's events
//! (`ModelPackageApprovalChanged`) are the durable record.

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;
use tokio::sync::mpsc;

/// Changes waiting to be posted; past this, new ones are dropped (and logged).
const QUEUE: usize = 1000;

/// A notifier for the controller that queues each change for the poster task, which it starts.
pub fn notifier(url: String) -> anyhow::Result<berth_control::Notifier> {
    anyhow::ensure!(
        url.starts_with("http://") || url.starts_with("https://"),
        "--registry-webhook {url}: the URL must be http:// or https://"
    );
    let uri: http::Uri = url.parse().map_err(|e| anyhow::anyhow!("--registry-webhook {url}: {e}"))?;
    let (tx, mut rx) = mpsc::channel::<serde_json::Value>(QUEUE);
    let connector =
        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(crate::cli::tls_config()?).https_or_http().enable_http1().build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    tokio::spawn(async move {
        while let Some(change) = rx.recv().await {
            let body = Bytes::from(change.to_string());
            let mut delivered = false;
            for attempt in 1..=3 {
                let request = http::Request::post(uri.clone()).header("content-type", "application/json").body(Full::new(body.clone()));
                let Ok(request) = request else { break };
                match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
                    Ok(Ok(answer)) if answer.status().is_success() => {
                        delivered = true;
                        break;
                    }
                    Ok(Ok(answer)) => tracing::warn!(status = %answer.status(), attempt, "the registry webhook refused a change"),
                    Ok(Err(e)) => tracing::warn!(error = %e, attempt, "cannot reach the registry webhook"),
                    Err(_) => tracing::warn!(attempt, "the registry webhook did not answer within 10 s"),
                }
                tokio::time::sleep(Duration::from_secs(attempt)).await;
            }
            if !delivered {
                tracing::error!(change = %change["detail"]["ModelPackageArn"], "a registry change was not delivered to the webhook");
            }
        }
    });
    Ok(berth_control::Notifier(std::sync::Arc::new(move |change| {
        if tx.try_send(change).is_err() {
            tracing::error!("the registry webhook's queue is full: a change was dropped");
        }
    })))
}
