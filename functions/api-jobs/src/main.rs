//! api-jobs: login, user administration, and the syncrator-compatible job routes (parameter sets,
//! dry runs, on-demand runs, job and run listings).

mod dryrun;
mod jobs;
mod params;
mod routes;

use ferry_shared::config::{self, ConfigError};

struct Config {
    table_name: String,
    jwt_secret_arn: String,
    sync_queue_url: String,
    secret_prefix: String,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: config::required("TABLE_NAME")?,
            jwt_secret_arn: config::required("JWT_SECRET_ARN")?,
            sync_queue_url: config::required("SYNC_QUEUE_URL")?,
            secret_prefix: config::required("SOURCE_SECRET_PREFIX")?,
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
    let state = routes::AppState {
        store,
        tokens,
        queue: ferry_shared::queue::Queue::new(
            aws_sdk_sqs::Client::new(&aws),
            config.sync_queue_url,
        ),
        s3: ferry_shared::aws::s3_client(&aws),
        secrets: aws_sdk_secretsmanager::Client::new(&aws),
        secret_prefix: std::sync::Arc::from(config.secret_prefix),
        aws: std::sync::Arc::new(aws),
    };
    ferry_shared::http::run(routes::router(state)).await
}
