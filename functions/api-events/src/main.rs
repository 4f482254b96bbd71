//! api-events: event-file ingest status, ingest requests and time-range queries (see `routes`).

use api_events::routes;
use ferry_shared::config::{self, ConfigError};
use ferry_shared::events_sql::EventsDb;

struct Config {
    table_name: String,
    jwt_secret_arn: String,
    queue_url: String,
    db_secret_arn: String,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: config::required("TABLE_NAME")?,
            jwt_secret_arn: config::required("JWT_SECRET_ARN")?,
            queue_url: config::required("INGEST_QUEUE_URL")?,
            db_secret_arn: config::required("EVENTS_DB_SECRET_ARN")?,
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
    // Lazy: the status routes keep working while MySQL is unreachable.
    let db = EventsDb::from_secret(
        &aws_sdk_secretsmanager::Client::new(&aws),
        &config.db_secret_arn,
        4,
        true,
    )
    .await?;
    ferry_shared::http::run(routes::router(routes::AppState {
        store,
        tokens,
        queue,
        db,
    }))
    .await
}
