//! worker-transfer: builds transfer tasks' zip downloads (see [`build`]).

mod build;
mod zipw;

use std::sync::Arc;
use std::time::Duration;

use ferry_shared::config::{self, ConfigError};
use ferry_shared::messages::TransferMessage;
use ferry_shared::worker::{RecordInfo, WorkError};

struct Config {
    table_name: String,
    bucket: String,
    queue_url: String,
    slice_secs: u64,
    lease_secs: u64,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Config {
            table_name: config::required("TABLE_NAME")?,
            bucket: config::required("DATA_BUCKET")?,
            queue_url: config::required("TRANSFER_QUEUE_URL")?,
            slice_secs: config::parsed("TRANSFER_SLICE_SECS", 60u64)?,
            lease_secs: config::parsed("TRANSFER_LEASE_SECS", 300u64)?,
        })
    }
}

async fn handle(
    ctx: Arc<build::Ctx>,
    message: TransferMessage,
    _info: RecordInfo,
) -> Result<(), WorkError> {
    match message {
        TransferMessage::BuildZip { task_id } => build::handle(&ctx, &task_id).await,
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_shared::telemetry::init();
    let config = Config::from_env()?;
    let aws = ferry_shared::aws::load().await;
    let ctx = Arc::new(build::Ctx {
        store: ferry_shared::store::Store::new(
            aws_sdk_dynamodb::Client::new(&aws),
            config.table_name,
        ),
        s3: ferry_shared::aws::s3_client(&aws),
        bucket: config.bucket,
        queue: ferry_shared::queue::Queue::new(aws_sdk_sqs::Client::new(&aws), config.queue_url),
        slice: Duration::from_secs(config.slice_secs.max(1)),
        lease: Duration::from_secs(config.lease_secs.max(config.slice_secs + 1)),
    });
    ferry_shared::worker::run(5, move |m, i| handle(ctx.clone(), m, i)).await
}
