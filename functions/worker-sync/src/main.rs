//! worker-sync: runs sync jobs. `StartRun` comes from the API (run now, with the run already created)
//! or from a job's schedule (without one: the worker creates it, or records it as skipped when the job's
//! previous run is still going).

mod engine;

use ferry_shared::config::{self, ConfigError};
use ferry_shared::store::Store;

struct Config {
    table_name: String,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        config::required("SYNC_QUEUE_URL")?;
        config::required("DATA_BUCKET")?;
        Ok(Self {
            table_name: config::required("TABLE_NAME")?,
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
        s3: ferry_shared::aws::s3_client(&aws),
    };
    ferry_shared::worker::run(5, |m, info| engine.handle(m, info)).await
}
