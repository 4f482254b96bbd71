//! worker-loader-s3: loader ticks for S3 targets (buckets of json/csv/tsv/avro/parquet files). It
//! compiles worker-loader's engine (`worker.rs`) with its own `files` feature only, so this function
//! links neither the MongoDB nor the MySQL driver (see `worker.rs` for why not a library).

#[path = "../../worker-loader/src/worker.rs"]
mod worker;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    worker::run().await
}
