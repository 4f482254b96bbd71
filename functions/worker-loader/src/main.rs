//! worker-loader: loader ticks for MongoDB, MySQL and DynamoDB targets. The engine is in `worker.rs`,
//! which worker-loader-s3 compiles too, with its `files` feature, for S3 targets.

#[path = "worker.rs"]
mod worker;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    worker::run().await
}
