//! api-transfers: user accounts, transfer tasks (create, pause, resume, abort, list) and their files
//! (upload, list, delete by filter, zip downloads built by worker-transfer).

mod files;
mod routes;
mod uploads;

use ferry_shared::config::{self, ConfigError};

struct Config {
    table_name: String,
    jwt_secret_arn: String,
    queue_url: String,
    bucket: String,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: config::required("TABLE_NAME")?,
            jwt_secret_arn: config::required("JWT_SECRET_ARN")?,
            queue_url: config::required("TRANSFER_QUEUE_URL")?,
            bucket: config::required("DATA_BUCKET")?,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    ferry_shared::telemetry::init();
    let config = Config::from_env()?;
    let aws = ferry_shared::aws::load().await;
    let (store, tokens) =
        ferry_shared::auth::http_base(&aws, config.table_name, &config.jwt_secret_arn).await?;
    let queue = ferry_shared::queue::Queue::new(aws_sdk_sqs::Client::new(&aws), config.queue_url);
    ferry_shared::http::run(routes::router(routes::AppState {
        store,
        tokens,
        queue,
        s3: ferry_shared::aws::s3_client(&aws),
        bucket: std::sync::Arc::from(config.bucket),
    }))
    .await
}
