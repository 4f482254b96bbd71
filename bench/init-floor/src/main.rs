//! The init-time floor for bench/init_time.py: a lambda_runtime function that does nothing else.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(
        |e: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            Ok::<_, lambda_runtime::Error>(e.payload)
        },
    ))
    .await
}
