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

    /// Sends every message, ten per SendMessageBatch call; any entry SQS refuses is an error (the
    /// caller retries the whole set, so receivers must treat duplicates as no-ops).
    pub async fn send_all<T: Serialize>(&self, messages: &[T]) -> Result<(), QueueError> {
        for chunk in messages.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, m) in chunk.iter().enumerate() {
                entries.push(
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(serde_json::to_string(m)?)
                        .build()
                        .map_err(|e| QueueError::Send(e.to_string()))?,
                );
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    QueueError::Send(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
                })?;
            if let Some(f) = out.failed.first() {
                return Err(QueueError::Send(format!(
                    "{} of {} messages refused, first: {} {}",
                    out.failed.len(),
                    chunk.len(),
                    f.code,
                    f.message.as_deref().unwrap_or("")
                )));
            }
        }
        Ok(())
    }
}
