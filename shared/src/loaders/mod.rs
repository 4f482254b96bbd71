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

impl TargetError {
    /// The same error with every secret of `creds` (a password, raw or percent-encoded; a connection
    /// string, whole or its user-info) cut out of its message: a driver's error may quote what it was
    /// given, and these messages go into responses and log lines.
    pub fn scrubbed(self, creds: &Creds) -> TargetError {
        let mut secrets: Vec<String> = Vec::new();
        if let Some(p) = creds.password.as_deref().filter(|p| !p.is_empty()) {
            secrets.push(p.to_string());
            secrets.push(percent_encoded(p));
        }
        if let Some(url) = creds.atlas_url.as_deref().filter(|u| !u.is_empty()) {
            secrets.push(url.to_string());
            let rest = url.split_once("://").map_or(url, |(_, r)| r);
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            if let Some((user_info, _)) = authority.rsplit_once('@') {
                secrets.push(user_info.to_string());
            }
        }
        // Longest first, so a whole URL goes before the user-info inside it.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let scrub = |mut m: String| {
            for s in &secrets {
                m = m.replace(s.as_str(), "<redacted>");
            }
            m
        };
        match self {
            TargetError::Unreachable(m) => TargetError::Unreachable(scrub(m)),
            TargetError::Refused(m) => TargetError::Refused(scrub(m)),
            TargetError::Failed(m) => TargetError::Failed(scrub(m)),
        }
    }
}

/// `s` with everything but RFC 3986's unreserved characters percent-encoded, as in a connection
/// string's user-info.
pub fn percent_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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
/// How many items of `size` bytes fit in `budget` bytes, kept within `floor..=cap` (the floor wins:
/// at least that many always go). Batches and work in flight are sized with it, so large documents,
/// rows and files come fewer at a time and memory stays bounded whatever their size.
pub fn fitting(budget: usize, size: usize, floor: usize, cap: usize) -> usize {
    (budget / size.max(1)).clamp(floor, cap.max(floor))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_divides_the_budget_within_floor_and_cap() {
        assert_eq!(fitting(8 << 20, 1024, 1, 1000), 1000);
        assert_eq!(fitting(8 << 20, 1024, 1, 10_000), 8192);
        assert_eq!(fitting(8 << 20, 20 << 20, 1, 1000), 1);
        assert_eq!(fitting(16 << 20, 10 << 20, 25, 4000), 25);
        assert_eq!(fitting(16 << 20, 1024, 25, 10), 25);
        assert_eq!(fitting(1 << 20, 0, 1, 16), 16);
    }

    #[test]
    fn target_errors_are_scrubbed_of_passwords_and_connection_strings() {
        let creds = Creds {
            password: Some("p@ss:w/rd".into()),
            ..Creds::default()
        };
        let e = TargetError::Refused(
            "auth failed for p@ss:w/rd in mongodb://ada:p%40ss%3Aw%2Frd@db:27017/".into(),
        )
        .scrubbed(&creds);
        let m = e.to_string();
        assert!(!m.contains("p@ss") && !m.contains("p%40ss"), "{m}");
        assert!(m.contains("mongodb://ada:<redacted>@db:27017/"), "{m}");

        let url = "mongodb+srv://ada:s3cret@cluster0.example.net/app?retryWrites=true";
        let creds = Creds {
            atlas_url: Some(url.into()),
            ..Creds::default()
        };
        let e = TargetError::Unreachable(format!("no servers for {url}; user ada:s3cret"));
        let m = e.scrubbed(&creds).to_string();
        assert!(!m.contains("s3cret"), "{m}");
        assert_eq!(
            m,
            "target unreachable: no servers for <redacted>; user <redacted>"
        );
        // Nothing to hide: the message is unchanged.
        let m = TargetError::Failed("timeout".into()).scrubbed(&Creds::default());
        assert_eq!(m.to_string(), "target error: timeout");
    }
}
