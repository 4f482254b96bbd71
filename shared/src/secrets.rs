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

/// Creates the secret `name` holding `value`, or overwrites its value if it exists; returns its ARN.
pub async fn put_string(client: &Client, name: &str, value: &str) -> Result<String, SecretError> {
    let reason = |e: String| SecretError::Read {
        id: name.to_string(),
        reason: e,
    };
    match client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
    {
        Ok(out) => Ok(out.arn.unwrap_or_else(|| name.to_string())),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_exists_exception()) =>
        {
            let out = client
                .put_secret_value()
                .secret_id(name)
                .secret_string(value)
                .send()
                .await
                .map_err(|e| {
                    reason(aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())
                })?;
            Ok(out.arn.unwrap_or_else(|| name.to_string()))
        }
        Err(e) => Err(reason(
            aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        )),
    }
}

/// Deletes a secret at once (no recovery window); a secret that is already gone is fine.
pub async fn delete(client: &Client, secret_id: &str) -> Result<(), SecretError> {
    match client
        .delete_secret()
        .secret_id(secret_id)
        .force_delete_without_recovery(true)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(SecretError::Read {
            id: secret_id.to_string(),
            reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        }),
    }
}
