//! Reading secrets from Secrets Manager. Values are returned to the caller and never logged.

use aws_sdk_secretsmanager::Client;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {id} could not be read: {reason}")]
    Read { id: String, reason: String },
    #[error("secret {0} has no string value")]
    Empty(String),
}

pub async fn get_string(client: &Client, secret_id: &str) -> Result<String, SecretError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| SecretError::Read {
            id: secret_id.to_string(),
            reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        })?;
    out.secret_string
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SecretError::Empty(secret_id.to_string()))
}
