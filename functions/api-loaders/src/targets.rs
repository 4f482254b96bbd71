//! MongoDB operations done by worker-loader on this function's behalf (`ferry_shared::loaders::ops`):
//! a synchronous Lambda Invoke of the function named by `LOADER_WORKER_FUNCTION`. Locally the SDK's
//! Lambda endpoint (`AWS_ENDPOINT_URL_LAMBDA`) is cargo lambda watch, which serves the Invoke API.

use axum::http::StatusCode;
use ferry_shared::http::ApiError;
use ferry_shared::loaders::ops::{TargetFailure, TargetReply, TargetRequest};
use std::time::Duration;

/// Within API Gateway's 29 s, with room for the answer: the worker's connect timeout is 4 s.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone)]
pub struct TargetOps {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl TargetOps {
    pub fn new(client: aws_sdk_lambda::Client, function: String) -> Self {
        Self { client, function }
    }

    /// Runs `request` in the worker: the target's own outcome (`Err` of the inner result), or an
    /// `ApiError` (502) when the worker could not be invoked or failed.
    pub async fn run(
        &self,
        request: &TargetRequest,
    ) -> Result<Result<Option<u64>, TargetFailure>, ApiError> {
        let payload = serde_json::to_vec(request).map_err(ApiError::internal)?;
        let call = self
            .client
            .invoke()
            .function_name(&self.function)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send();
        let out = match tokio::time::timeout(INVOKE_TIMEOUT, call).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                tracing::error!(function = %self.function, error = %aws_sdk_lambda::error::DisplayErrorContext(&e), "invoke failed");
                return Err(unavailable("the loader worker could not be invoked"));
            }
            Err(_) => {
                tracing::error!(function = %self.function, "invoke timed out");
                return Err(unavailable(&format!(
                    "the loader worker did not answer within {} s",
                    INVOKE_TIMEOUT.as_secs()
                )));
            }
        };
        let body = out.payload().map(|b| b.as_ref()).unwrap_or_default();
        if let Some(kind) = out.function_error() {
            tracing::error!(function = %self.function, kind, answer = %String::from_utf8_lossy(body), "the loader worker failed");
            return Err(unavailable("the loader worker failed"));
        }
        let reply: TargetReply = serde_json::from_slice(body).map_err(|e| {
            tracing::error!(function = %self.function, error = %e, "the loader worker's answer is not a TargetReply");
            unavailable("the loader worker gave an answer that could not be read")
        })?;
        Ok(reply.into())
    }
}

fn unavailable(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "loader_worker_unavailable",
        message,
    )
}
