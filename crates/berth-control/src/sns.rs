//! Notifications to SNS (or any SNS-compatible service) through the AWS SDK's standard
//! configuration: the credentials chain, the region, and `AWS_ENDPOINT_URL_SNS` /
//! `AWS_ENDPOINT_URL`.

use aws_sdk_sns::error::DisplayErrorContext;
use aws_sdk_sns::Client;
use tokio::sync::OnceCell;

/// The SNS client, made on first use (loading AWS configuration reads files and environment).
#[derive(Default)]
pub(crate) struct Notifier {
    client: OnceCell<Client>,
}

impl Notifier {
    async fn client(&self) -> &Client {
        self.client.get_or_init(|| async { Client::new(&aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await) }).await
    }

    /// Publishes `message` to the topic `topic_arn`.
    pub(crate) async fn publish(&self, topic_arn: &str, message: String) -> Result<(), String> {
        self.client()
            .await
            .publish()
            .topic_arn(topic_arn)
            .message(message)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot publish to {topic_arn}: {}", DisplayErrorContext(&e)))
    }
}
