//! worker-ingest: consumes the ingest queue (S3 notifications of the ingest bucket and explicit ingest
//! requests). The S3 test event that S3 sends when a notification is configured is acknowledged. Loading
//! files into SQL is issue #4: until then every file is left for redelivery (and ends in the DLQ),
//! never silently dropped.

use ferry_shared::config::{self, ConfigError};
use ferry_shared::messages::IngestMessage;
use ferry_shared::worker::{RecordInfo, WorkError};

struct Config;

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        config::required("TABLE_NAME")?;
        Ok(Config)
    }
}

async fn handle(message: IngestMessage, _info: RecordInfo) -> Result<(), WorkError> {
    match message {
        IngestMessage::S3Test(t) => {
            tracing::info!(bucket = %t.bucket, event = %t.event, "s3 test event acknowledged");
            Ok(())
        }
        IngestMessage::S3(_) | IngestMessage::Request(_) => Err(WorkError::retryable(
            anyhow::anyhow!("ingest engine not built yet (issue #4)"),
        )),
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_shared::telemetry::init();
    Config::from_env()?;
    ferry_shared::worker::run(1, handle).await
}
