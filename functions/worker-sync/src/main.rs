//! worker-sync: runs sync jobs as a fan-out of messages on the sync queue (see `engine`): run starts
//! (from the API, or a job's schedule), listing pages, and object copies.

mod copy;
mod engine;
mod s3io;

use ferry_shared::config::{self, ConfigError};
use ferry_shared::queue::Queue;
use ferry_shared::store::Store;

/// Records handled at once per invocation; per-job limits (the job's `concurrency`) apply inside.
const BATCH_CONCURRENCY: usize = 10;

struct Config {
    table_name: String,
    sync_queue_url: String,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        config::required("DATA_BUCKET")?;
        Ok(Self {
            table_name: config::required("TABLE_NAME")?,
            sync_queue_url: config::required("SYNC_QUEUE_URL")?,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_shared::telemetry::init();
    let config = Config::from_env()?;
    let aws = ferry_shared::aws::load().await;
    let engine = engine::Engine::new(
        Store::new(aws_sdk_dynamodb::Client::new(&aws), config.table_name),
        s3io::own_client(&ferry_shared::aws::s3_client(&aws)),
        Queue::new(aws_sdk_sqs::Client::new(&aws), config.sync_queue_url),
        aws_sdk_secretsmanager::Client::new(&aws),
    );
    ferry_shared::worker::run(BATCH_CONCURRENCY, |m, info| engine.handle(m, info)).await
}
