//! worker-loader: consumes loader ticks (`LoaderMessage::Tick`). The tick engine of ARCHITECTURE §5 is
//! issue #3; today a tick for a loader that does not exist is acknowledged as a permanent no-op, and any
//! other tick is left for redelivery so that no work is dropped before the engine lands.

use ferry_shared::config::{self, ConfigError};
use ferry_shared::keys::Key;
use ferry_shared::messages::LoaderMessage;
use ferry_shared::store::Store;
use ferry_shared::worker::{RecordInfo, WorkError};

struct Config {
    table_name: String,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        // LOADER_QUEUE_URL is checked now so a mis-deployed function fails at start-up, not mid-chain.
        config::required("LOADER_QUEUE_URL")?;
        Ok(Self {
            table_name: config::required("TABLE_NAME")?,
        })
    }
}

async fn handle(store: &Store, message: LoaderMessage, info: RecordInfo) -> Result<(), WorkError> {
    let LoaderMessage::Tick { loader_id, tick } = message;
    let found = store
        .get::<serde_json::Value>(&Key::loader(&loader_id))
        .await
        .map_err(WorkError::retryable)?;
    match found {
        None => Err(WorkError::permanent(anyhow::anyhow!(
            "loader {loader_id} does not exist (tick {tick})"
        ))),
        Some(_) => Err(WorkError::retryable(anyhow::anyhow!(
            "loader engine not built yet: tick {tick} of {loader_id} kept (delivery {})",
            info.receive_count
        ))),
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_shared::telemetry::init();
    let config = Config::from_env()?;
    let aws = ferry_shared::aws::load().await;
    let store = Store::new(aws_sdk_dynamodb::Client::new(&aws), config.table_name);
    ferry_shared::worker::run(1, |m, info| handle(&store, m, info)).await
}
