//! S3 calls as the engine needs them: errors sorted into what a retry can fix and what it cannot,
//! retries with exponential backoff and full jitter bounded by the job's `max_attempts` (the SDK's own
//! retries are off, so that bound is exact), clients for foreign S3-compatible sources, and the
//! checksum helpers used to verify copies.

use aws_sdk_s3::Client as S3;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use ferry_shared::domain::sync::backoff_ms;
use md5::{Digest, Md5};
use serde::Deserialize;
use std::future::Future;
use std::time::Duration;

const BACKOFF_BASE_MS: u64 = 200;
const BACKOFF_CAP_MS: u64 = 20_000;

/// Why an S3 call failed, as far as the engine cares.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3Fail {
    /// Throttling, 5xx, timeouts, dropped connections: worth another attempt.
    #[error("{0}")]
    Transient(String),
    /// The source object changed since it was listed (If-Match failed).
    #[error("the source object changed during the copy")]
    Changed,
    #[error("not found: {0}")]
    NotFound(String),
    #[error("the multipart upload no longer exists")]
    NoSuchUpload,
    /// Anything else (access denied, bad request, ...): retrying will not help.
    #[error("{0}")]
    Permanent(String),
}

pub fn classify<E>(e: SdkError<E, HttpResponse>) -> S3Fail
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = match &e {
        SdkError::ServiceError(se) => Some(se.raw().status().as_u16()),
        SdkError::ResponseError(_) | SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            return S3Fail::Transient(aws_sdk_s3::error::DisplayErrorContext(&e).to_string());
        }
        _ => None,
    };
    let code = e.code().unwrap_or("").to_string();
    let text = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
    match (status, code.as_str()) {
        (_, "PreconditionFailed") | (Some(412), _) => S3Fail::Changed,
        (_, "NoSuchUpload") => S3Fail::NoSuchUpload,
        // The body did not match its Content-MD5: a bad read of the source, worth another one.
        (_, "BadDigest") => S3Fail::Transient(text),
        (_, "NoSuchKey" | "NotFound" | "NoSuchBucket") | (Some(404), _) => S3Fail::NotFound(text),
        (_, "SlowDown" | "Throttling" | "ThrottlingException" | "RequestTimeout")
        | (Some(429 | 500..=599), _) => S3Fail::Transient(text),
        _ => S3Fail::Permanent(text),
    }
}

/// Runs `op` until it succeeds, fails for good, or has been tried `max_attempts` times; transient
/// failures wait a full-jitter exponential backoff in between.
pub async fn retry<T, F, Fut>(max_attempts: u32, what: &str, mut op: F) -> Result<T, S3Fail>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, S3Fail>>,
{
    let max = max_attempts.max(1);
    let mut attempt = 0;
    loop {
        match op(attempt).await {
            Ok(v) => return Ok(v),
            Err(S3Fail::Transient(why)) if attempt + 1 < max => {
                let wait = backoff_ms(attempt, BACKOFF_BASE_MS, BACKOFF_CAP_MS, rand::random());
                tracing::warn!(what, attempt = attempt + 1, wait_ms = wait, error = %why, "transient S3 failure, retrying");
                tokio::time::sleep(Duration::from_millis(wait)).await;
                attempt += 1;
            }
            Err(S3Fail::Transient(why)) => {
                return Err(S3Fail::Transient(format!(
                    "{what}: gave up after {max} attempts: {why}"
                )));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The engine's policies on any S3 client: no SDK retries (the engine's own are bounded by the job),
/// and checksums only where an operation requires one. Integrity does not rest on the SDK's CRC32:
/// every body the worker moves is MD5'd once, sent with `Content-MD5` (the store rejects a body that
/// does not match) and checked against the source's and the destination's ETags, so a second hash
/// of each body (and a third, SigV4's payload SHA-256, turned off per request) would only cost CPU.
fn tuned(builder: aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder {
    builder
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(120))
                .build(),
        )
}

/// ferry's own S3 client with the engine's retry policy instead of the SDK's.
pub fn own_client(base: &S3) -> S3 {
    S3::from_conf(tuned(base.config().to_builder()).build())
}

/// What a job's credentials secret holds.
#[derive(Deserialize)]
pub struct SourceCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default)]
    pub session_token: Option<String>,
}

/// A client for a foreign S3-compatible source, derived from ferry's own (same policies), with the
/// source's endpoint, region and keys. Path-style addressing: such stores rarely resolve
/// `bucket.host` names.
pub fn foreign_client(
    endpoint_url: Option<&str>,
    region: Option<&str>,
    credentials: Option<SourceCredentials>,
    own: &S3,
) -> S3 {
    let mut b = own.config().to_builder();
    if let Some(url) = endpoint_url {
        b = b.endpoint_url(url).force_path_style(true);
    }
    if let Some(r) = region {
        b = b.region(Region::new(r.to_string()));
    }
    if let Some(c) = credentials {
        b = b.credentials_provider(Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            c.session_token,
            None,
            "ferry-sync-source",
        ));
    }
    S3::from_conf(b.build())
}

/// `bucket/key` with the key percent-encoded as `x-amz-copy-source` requires.
pub fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 8);
    out.push_str(bucket);
    out.push('/');
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A body's MD5 as an ETag compares it (hex) and as `Content-MD5` carries it (base64).
pub struct BodyMd5 {
    pub hex: String,
    pub base64: String,
}

pub fn body_md5(bytes: &[u8]) -> BodyMd5 {
    use base64::Engine;
    let d = Md5::digest(bytes);
    BodyMd5 {
        hex: hex(&d),
        base64: base64::engine::general_purpose::STANDARD.encode(d),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The MD5 a plain-MD5 ETag states, in both forms; `None` for any other ETag.
pub fn etag_md5(etag: &str) -> Option<BodyMd5> {
    use base64::Engine;
    let raw = etag_digest(etag)?;
    Some(BodyMd5 {
        hex: hex(&raw),
        base64: base64::engine::general_purpose::STANDARD.encode(raw),
    })
}

/// The 16 bytes a plain-MD5 ETag spells in hex; `None` for any other ETag.
fn etag_digest(etag: &str) -> Option<[u8; 16]> {
    if !is_plain_md5(etag) {
        return None;
    }
    let e = bare(etag);
    let mut raw = [0u8; 16];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = u8::from_str_radix(&e[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(raw)
}

/// An ETag without its quotes.
pub fn bare(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// Whether an ETag is a plain MD5 of the content (not multipart, not encrypted with SSE-KMS/C).
pub fn is_plain_md5(etag: &str) -> bool {
    let e = bare(etag);
    e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The ETag S3 gives a multipart object: MD5 of the concatenated binary part MD5s, `-<parts>`.
/// `None` when a part ETag is not a plain MD5 (then the store's ETag cannot be predicted).
pub fn multipart_etag<'a>(part_etags: impl ExactSizeIterator<Item = &'a str>) -> Option<String> {
    let count = part_etags.len();
    let mut concat = Vec::with_capacity(count * 16);
    for e in part_etags {
        concat.extend_from_slice(&etag_digest(e)?);
    }
    Some(format!("{}-{count}", hex(&Md5::digest(&concat))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_encodes_everything_but_unreserved_and_slashes() {
        assert_eq!(
            copy_source("b", "a dir/ü+x.txt"),
            "b/a%20dir/%C3%BC%2Bx.txt"
        );
    }

    #[test]
    fn body_md5_gives_the_etag_and_the_content_md5_forms() {
        let m = body_md5(b"hello");
        assert_eq!(m.hex, "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(m.base64, "XUFAKrxLKna5cZ2REBfFkg==");
        let e = etag_md5("\"5D41402ABC4B2A76B9719D911017C592\"").unwrap();
        assert_eq!((e.hex, e.base64), (m.hex, m.base64));
        assert!(etag_md5("\"5d41402abc4b2a76b9719d911017c592-2\"").is_none());
    }

    #[test]
    fn multipart_etag_is_md5_of_part_md5s() {
        let a = body_md5(b"hello").hex;
        let b = body_md5(b"world").hex;
        let got = multipart_etag([a.as_str(), b.as_str()].into_iter()).unwrap();
        let mut both = Vec::new();
        both.extend_from_slice(&Md5::digest(b"hello"));
        both.extend_from_slice(&Md5::digest(b"world"));
        assert_eq!(got, format!("{}-2", body_md5(&both).hex));
        assert!(multipart_etag(["abc-2"].into_iter()).is_none());
        assert!(is_plain_md5("\"5d41402abc4b2a76b9719d911017c592\""));
    }

    #[tokio::test]
    async fn retry_stops_at_max_attempts_and_not_on_permanent_errors() {
        let mut calls = 0;
        let r: Result<(), _> = retry(3, "t", |_| {
            calls += 1;
            async { Err(S3Fail::Transient("503".into())) }
        })
        .await;
        assert_eq!(calls, 3);
        assert!(matches!(r, Err(S3Fail::Transient(m)) if m.contains("3 attempts")));
        let mut calls = 0;
        let r: Result<(), _> = retry(5, "t", |_| {
            calls += 1;
            async { Err(S3Fail::Permanent("403".into())) }
        })
        .await;
        assert_eq!((calls, r), (1, Err(S3Fail::Permanent("403".into()))));
        let r = retry(5, "t", |n| async move {
            if n < 2 {
                Err(S3Fail::Transient("x".into()))
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(r, Ok(2));
    }
}
