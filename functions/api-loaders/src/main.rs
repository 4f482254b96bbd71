//! api-loaders: CRUD load generators into MongoDB, MySQL and DynamoDB (issue #3): start, stop, restart,
//! count and delete routes with the original docloading server's paths and fields, plus the loader
//! listing and PATCH of a running loader's rate and mix. The load itself runs in worker-loader (S3
//! loaders in worker-loader-s3).

mod fields;
mod routes;
mod targets;

use ferry_shared::config::{self, ConfigError};
use ferry_shared::loaders::allow::AllowList;
use std::sync::Arc;

struct Config {
    table_name: String,
    jwt_secret_arn: String,
    queue_url: String,
    s3_queue_url: String,
    worker_function: String,
    allowed_hosts: AllowList,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        let hosts = config::required("LOADER_ALLOWED_HOSTS")?;
        Ok(Self {
            table_name: config::required("TABLE_NAME")?,
            jwt_secret_arn: config::required("JWT_SECRET_ARN")?,
            queue_url: config::required("LOADER_QUEUE_URL")?,
            s3_queue_url: config::required("LOADER_S3_QUEUE_URL")?,
            worker_function: config::required("LOADER_WORKER_FUNCTION")?,
            allowed_hosts: AllowList::parse(&hosts).map_err(|reason| ConfigError::Invalid {
                name: "LOADER_ALLOWED_HOSTS",
                reason,
            })?,
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
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let queue = ferry_shared::queue::Queue::new(sqs.clone(), config.queue_url);
    let s3_queue = ferry_shared::queue::Queue::new(sqs, config.s3_queue_url);
    ferry_shared::http::run(routes::router(routes::AppState {
        store,
        tokens,
        queue,
        s3_queue,
        secrets: aws_sdk_secretsmanager::Client::new(&aws),
        aws: aws.clone(),
        allow: Arc::new(config.allowed_hosts),
        targets: targets::TargetOps::new(aws_sdk_lambda::Client::new(&aws), config.worker_function),
    }))
    .await
}
