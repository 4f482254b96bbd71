//! api-scheduler: the Data Sync Scheduler API (create/list/delete jobs, each owning one EventBridge
//! Scheduler schedule) and the job routes beyond it (run now, run history, per-object status).

mod routes;

use ferry_shared::config::{self, ConfigError};

struct Config {
    table_name: String,
    jwt_secret_arn: String,
    sync_queue_url: String,
    schedules: routes::ScheduleTarget,
    data_bucket: String,
    secret_prefix: String,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: config::required("TABLE_NAME")?,
            jwt_secret_arn: config::required("JWT_SECRET_ARN")?,
            sync_queue_url: config::required("SYNC_QUEUE_URL")?,
            schedules: routes::ScheduleTarget {
                group: config::required("SCHEDULE_GROUP")?,
                queue_arn: config::required("SYNC_QUEUE_ARN")?,
                dlq_arn: config::required("SYNC_DLQ_ARN")?,
                role_arn: config::required("SCHEDULER_ROLE_ARN")?,
            },
            data_bucket: config::required("DATA_BUCKET")?,
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
        scheduler: aws_sdk_scheduler::Client::new(&aws),
        target: std::sync::Arc::new(config.schedules),
        data_bucket: std::sync::Arc::from(config.data_bucket),
        secrets: aws_sdk_secretsmanager::Client::new(&aws),
        secret_prefix: std::sync::Arc::new(config.secret_prefix),
    };
    ferry_shared::http::run(routes::router(state)).await
}
