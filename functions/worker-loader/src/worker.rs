//! The loader engine both loader workers run: one bounded slice of a loader per tick
//! (`LoaderMessage::Tick`, see `engine`). Which target kinds a build serves is chosen by the compiling
//! crate's features:
//! - `databases` (the worker-loader function): MongoDB, MySQL and DynamoDB;
//! - `files` (the worker-loader-s3 function): S3, whose slice is in `s3loader` and file encoders in
//!   `s3files`.
//!
//! Two functions rather than one so that neither links the other's drivers and encoders (each stays
//! under 10 MB; bench/RESULTS.md). api-loaders sends each loader's ticks to its kind's queue; a worker
//! sends the next tick to its own.
//!
//! Both crates compile this file as a module (`#[path]`), each with its own features, rather than
//! sharing it as a library with features: Cargo unifies a library's features across the workspace in
//! `cargo build --bin NAME` (what `sam build` runs), which would put both kinds back in both functions.

#![cfg_attr(
    not(all(feature = "databases", feature = "files")),
    allow(dead_code, unused_imports, unused_variables, irrefutable_let_patterns)
)]

mod engine;
// The readers (`decode`) and `EncodedFile::hotels` serve the unit tests' read-back of every format; those
// tests and s3loader's run in the `files` build only (`cargo test -p worker-loader-s3`).
#[cfg_attr(not(test), allow(dead_code))]
mod s3files;
mod s3loader;

use ferry_shared::config::{self, ConfigError};
use ferry_shared::loaders::allow::AllowList;
use ferry_shared::queue::Queue;
use ferry_shared::store::Store;
use std::time::Duration;

struct Config {
    table_name: String,
    queue_url: String,
    allowed_hosts: AllowList,
    slice: Duration,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        let hosts = config::required("LOADER_ALLOWED_HOSTS")?;
        // Both loader queues are in both workers' environments (cargo lambda watch gives every
        // function one environment, so the two cannot both call their own LOADER_QUEUE_URL); a worker
        // sends next ticks to the queue of the kinds it serves.
        let databases_queue = config::required("LOADER_QUEUE_URL")?;
        let files_queue = config::required("LOADER_S3_QUEUE_URL")?;
        Ok(Self {
            table_name: config::required("TABLE_NAME")?,
            queue_url: if cfg!(feature = "databases") {
                databases_queue
            } else {
                files_queue
            },
            allowed_hosts: AllowList::parse(&hosts).map_err(|reason| ConfigError::Invalid {
                name: "LOADER_ALLOWED_HOSTS",
                reason,
            })?,
            slice: Duration::from_secs(
                config::parsed::<u64>("LOADER_SLICE_SECS", 10)?.clamp(1, 600),
            ),
        })
    }
}

/// A loader worker's `main`: config from the environment, then ticks one at a time.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    ferry_shared::telemetry::init();
    let config = Config::from_env()?;
    let aws = ferry_shared::aws::load().await;
    let engine = engine::Engine {
        store: Store::new(aws_sdk_dynamodb::Client::new(&aws), config.table_name),
        queue: Queue::new(aws_sdk_sqs::Client::new(&aws), config.queue_url),
        secrets: aws_sdk_secretsmanager::Client::new(&aws),
        aws: aws.clone(),
        allow: config.allowed_hosts,
        slice: config.slice,
        conns: Default::default(),
    };
    // worker-loader also answers api-loaders' direct MongoDB operations (count, drops, the start
    // check), so that the API function does not link the driver.
    #[cfg(feature = "databases")]
    return ferry_shared::worker::run_with_direct(
        1,
        |m, info| engine.handle(m, info),
        |r| engine.target_op(r),
    )
    .await;
    #[cfg(not(feature = "databases"))]
    ferry_shared::worker::run(1, |m, info| engine.handle(m, info)).await
}
