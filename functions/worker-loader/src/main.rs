//! worker-loader: consumes loader ticks (`LoaderMessage::Tick`) and runs one bounded slice of a loader
//! per tick (see `engine`): MongoDB, MySQL, DynamoDB and S3 targets. The S3 loader's slice is in
//! `s3loader`, its file encoders in `s3files`.

mod engine;
// The readers (`decode`) and `EncodedFile::hotels` serve the unit tests' read-back of every format.
#[cfg_attr(not(test), allow(dead_code))]
mod s3files;
mod s3loader;

use ferry_shared::config::{self, ConfigError};
use ferry_shared::loaders::allow::AllowList;
use ferry_shared::queue::Queue;
use ferry_shared::store::Store;
use std::time::Duration;

struct Config {
    table_name: String,
    queue_url: String,
    allowed_hosts: AllowList,
    slice: Duration,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        let hosts = config::required("LOADER_ALLOWED_HOSTS")?;
        Ok(Self {
            table_name: config::required("TABLE_NAME")?,
            queue_url: config::required("LOADER_QUEUE_URL")?,
            allowed_hosts: AllowList::parse(&hosts).map_err(|reason| ConfigError::Invalid {
                name: "LOADER_ALLOWED_HOSTS",
                reason,
            })?,
            slice: Duration::from_secs(
                config::parsed::<u64>("LOADER_SLICE_SECS", 10)?.clamp(1, 600),
            ),
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_shared::telemetry::init();
    let config = Config::from_env()?;
    let aws = ferry_shared::aws::load().await;
    let engine = engine::Engine {
        store: Store::new(aws_sdk_dynamodb::Client::new(&aws), config.table_name),
        queue: Queue::new(aws_sdk_sqs::Client::new(&aws), config.queue_url),
        secrets: aws_sdk_secretsmanager::Client::new(&aws),
        aws: aws.clone(),
        allow: config.allowed_hosts,
        slice: config.slice,
        conns: Default::default(),
    };
    ferry_shared::worker::run(1, |m, info| engine.handle(m, info)).await
}
