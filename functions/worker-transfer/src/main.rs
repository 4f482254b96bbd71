//! worker-transfer: consumes transfer tasks (zip builds, deletes by filter). Its engine is a later
//! issue: until then a task is left for redelivery (and ends in the DLQ), never silently dropped.

use ferry_shared::config::{self, ConfigError};
use ferry_shared::messages::TransferMessage;
use ferry_shared::worker::{RecordInfo, WorkError};

struct Config;

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        config::required("TABLE_NAME")?;
        config::required("DATA_BUCKET")?;
        Ok(Config)
    }
}

async fn handle(message: TransferMessage, _info: RecordInfo) -> Result<(), WorkError> {
    let task = match &message {
        TransferMessage::BuildZip { task_id } | TransferMessage::DeleteByFilter { task_id } => {
            task_id
        }
    };
    Err(WorkError::retryable(anyhow::anyhow!(
        "transfer engine not built yet; task {task} kept"
    )))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_shared::telemetry::init();
    Config::from_env()?;
    ferry_shared::worker::run(5, handle).await
}
