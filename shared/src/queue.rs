//! Sending typed messages to an SQS queue.

use aws_sdk_sqs::Client;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("could not encode message: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("sqs send failed: {0}")]
    Send(String),
}

#[derive(Clone, Debug)]
pub struct Queue {
    client: Client,
    url: String,
}

impl Queue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends `message` as JSON; returns the SQS message id.
    pub async fn send<T: Serialize>(&self, message: &T) -> Result<String, QueueError> {
        self.send_delayed(message, 0).await
    }

    /// Sends `message` to become visible after `delay_secs` (0–900).
    pub async fn send_delayed<T: Serialize>(
        &self,
        message: &T,
        delay_secs: i32,
    ) -> Result<String, QueueError> {
        let body = serde_json::to_string(message)?;
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay_secs.clamp(0, 900))
            .send()
            .await
            .map_err(|e| {
                QueueError::Send(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
            })?;
        Ok(out.message_id.unwrap_or_default())
    }
}
