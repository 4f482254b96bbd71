//! Loader targets (issue #3): the adapters (MongoDB, MySQL, DynamoDB, S3) both loader functions use — api-loaders for its count and
//! delete routes and its reachability check, worker-loader for the load itself — plus the hotel
//! document generator and the host allow-list. Behind the `loaders` feature (mongodb, sqlx, fake).

pub mod allow;
pub mod dynamo;
pub mod hotel;
pub mod mongo;
pub mod mysql;
pub mod ops;
pub mod s3;

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long connecting to a target may take before it counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

/// What a loader keeps in its Secrets Manager secret (`ferry/loaders/<id>`): never in DynamoDB, never
/// in a response or a log line.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Creds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atlas_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Creds(<redacted>)")
    }
}

impl Creds {
    pub fn is_empty(&self) -> bool {
        *self == Creds::default()
    }
}

/// A failure talking to a target. `Unreachable` maps to 502 over HTTP; `Refused` (bad input, denied
/// host, wrong credentials) to 4xx.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target unreachable: {0}")]
    Unreachable(String),
    #[error("{0}")]
    Refused(String),
    #[error("target error: {0}")]
    Failed(String),
}

/// A name used as a SQL identifier or a database/collection name: letters, digits, `_`, `-`, `$`,
/// 1-64 characters. Anything else is refused rather than quoted.
pub fn check_identifier(field: &str, value: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field} must be 1-64 letters, digits, '_', '-' or '$'"
        ))
    }
}

/// Sequence numbers of the documents to update: `n` spread pseudo-randomly over `[low, high)`.
pub fn update_targets(low: u64, high: u64, n: u64, salt: u64) -> Vec<u64> {
    if high <= low {
        return Vec::new();
    }
    let span = high - low;
    let mut x = salt | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            low + x % span
        })
        .collect()
}

/// Generates the batches of a fill ahead of the writes: `make(range)` runs on blocking threads, at most
/// `depth` finished batches wait, so building batch k+1 (fake values, encoding) overlaps writing batch
/// k. The ranges are `seqs` cut into `chunk`-sized pieces, in order.
pub fn generate_ahead<T, F>(
    seqs: std::ops::Range<u64>,
    chunk: u64,
    depth: usize,
    make: F,
) -> impl futures::Stream<Item = T>
where
    T: Send + 'static,
    F: Fn(std::ops::Range<u64>) -> T + Send + Sync + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<T>(depth.max(1));
    let make = std::sync::Arc::new(make);
    tokio::spawn(async move {
        let mut from = seqs.start;
        while from < seqs.end {
            let to = seqs.end.min(from + chunk.max(1));
            let m = make.clone();
            let Ok(batch) = tokio::task::spawn_blocking(move || m(from..to)).await else {
                return;
            };
            if tx.send(batch).await.is_err() {
                return; // the writer gave up
            }
            from = to;
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
}
