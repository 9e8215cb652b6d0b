use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;

/// Calls a container's `GET /ping`.
#[derive(Clone)]
pub(crate) struct PingClient {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl PingClient {
    pub(crate) fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        // Health checks use fresh connections so that a half-dead keep-alive socket cannot
        // make a dead container look alive.
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(connector);
        PingClient { client }
    }

    /// True when the container answered 200 within `timeout`.
    pub(crate) async fn ping(&self, addr: SocketAddr, timeout: Duration) -> bool {
        let Ok(uri) = format!("http://{addr}/ping").parse::<hyper::Uri>() else {
            return false;
        };
        match tokio::time::timeout(timeout, self.client.get(uri)).await {
            Ok(Ok(resp)) => resp.status() == hyper::StatusCode::OK,
            _ => false,
        }
    }
}
