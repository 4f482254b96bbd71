//! worker-ingest: consumes the ingest queue (S3 notifications of the ingest bucket, requests from
//! `POST /events/ingest`, continuations of long loads) and loads event files into MySQL. The schema is
//! migrated here, at start-up; see `engine` for the load itself.

use ferry_shared::config::{self, ConfigError};
use ferry_shared::events_sql::EventsDb;
use ferry_shared::queue::Queue;
use ferry_shared::store::Store;
use std::time::Duration;
use worker_ingest::engine::Engine;

struct Config {
    table_name: String,
    queue_url: String,
    db_secret_arn: String,
    slice_secs: u64,
    batch_rows: usize,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: config::required("TABLE_NAME")?,
            queue_url: config::required("INGEST_QUEUE_URL")?,
            db_secret_arn: config::required("EVENTS_DB_SECRET_ARN")?,
            slice_secs: config::parsed("INGEST_SLICE_SECS", 180)?,
            batch_rows: config::parsed("INGEST_BATCH_ROWS", 5000)?,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_shared::telemetry::init();
    let config = Config::from_env()?;
    let aws = ferry_shared::aws::load().await;
    let db = EventsDb::from_secret(
        &aws_sdk_secretsmanager::Client::new(&aws),
        &config.db_secret_arn,
        3,
        false,
    )
    .await?;
    db.migrate().await?;
    let engine = Engine {
        store: Store::new(aws_sdk_dynamodb::Client::new(&aws), config.table_name),
        s3: ferry_shared::aws::s3_client(&aws),
        db,
        queue: Queue::new(aws_sdk_sqs::Client::new(&aws), config.queue_url),
        slice: Duration::from_secs(config.slice_secs),
        batch_rows: config.batch_rows.max(1),
    };
    ferry_shared::worker::run(1, |m, info| engine.handle(m, info)).await
}
