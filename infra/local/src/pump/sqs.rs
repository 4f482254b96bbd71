//! The local stand-in for Lambda's SQS event source mapping: one loop per (function, queue) pair of the
//! template, long-polling the queue, invoking the function through cargo lambda watch's Invoke API with a
//! real SQS event, deleting what succeeded and returning failures to the queue.
//!
//! Retry timing differs from AWS on purpose. AWS leaves a failed message invisible for the rest of the
//! queue's visibility timeout (30 minutes for ferry's sync queue) before redelivering it. Here a failed
//! message is made visible again after `FERRY_PUMP_RETRY_DELAY_SECS` (default 2) with
//! ChangeMessageVisibility, only so that redelivery, and the move to the DLQ after `maxReceiveCount`
//! receives (which moto performs on receive), can be observed in seconds rather than hours.
//!
//! Invocation outcomes, following what cargo lambda watch answers on `POST
//! /2015-03-31/functions/<fn>/invocations`:
//! - 200: the function returned; its body is the response (an `SqsBatchResponse` for ferry's workers).
//!   A `X-Amz-Function-Error` header (real Lambda's way) is treated as a function error as well.
//! - 500: the function reported an error to the runtime API (`/runtime/invocation/<id>/error`, which is
//!   what lambda_runtime does for an `Err` or a panic); the body is `{"errorType", "errorMessage"}`.
//!   Every message of the batch failed.
//! - 404: watch knows no binary of that name. Connection refused, other 5xx, or a timeout before the
//!   function ever answered (the first invocation compiles it, which can take minutes): the function is
//!   not available yet. The batch is kept (its visibility extended) and the same invocation retried
//!   later, so no message is dropped and no receive is counted against `maxReceiveCount`.
//! - A timeout after the function has answered once is a function timeout, as on AWS: every message of
//!   the batch failed.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName,
};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::clients::sdk_message;

/// Lambda's SQS poller takes at most 10 messages per ReceiveMessage.
const MAX_RECEIVE: u32 = 10;
/// Extra visibility given to a held batch on top of the invocation timeout.
const HOLD_MARGIN_SECS: u64 = 30;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One SQS event source of one function.
#[derive(Debug, Clone)]
pub struct SqsSource {
    /// The cargo binary, which is also the function name cargo lambda watch serves.
    pub function: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: u32,
    pub report_batch_item_failures: bool,
    /// HTTP timeout of one invocation: the function's Timeout plus 30 s.
    pub invoke_timeout: Duration,
    /// Poll loops run at once for this source (Lambda runs several batches of one source at a time,
    /// up to `ScalingConfig.MaximumConcurrency`); see `pump::sqs_sources`.
    pub pollers: u32,
}

/// Knobs of the SQS loop that are not per source.
#[derive(Debug, Clone)]
pub struct SqsLoopSettings {
    pub wait_time_secs: i32,
    pub retry_delay_secs: i32,
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeOutcome {
    /// The function returned this body.
    Returned(Vec<u8>),
    /// The function ran and failed (error type and message, for the log).
    FunctionError(String),
    /// The invocation timed out.
    TimedOut,
    /// Nothing answered as the function (watch down, function unknown or not compiled yet).
    Unavailable(String),
}

/// Calls functions through the Lambda Invoke API that cargo lambda watch serves.
#[derive(Clone)]
pub struct Invoker {
    http: reqwest::Client,
    base: reqwest::Url,
}

impl Invoker {
    pub fn new(watch_url: &str) -> Result<Self> {
        let base = reqwest::Url::parse(watch_url)
            .with_context(|| format!("FERRY_WATCH_URL {watch_url:?} is not a URL"))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Invoker { http, base })
    }

    pub fn url_for(&self, function: &str) -> Result<reqwest::Url> {
        Ok(self
            .base
            .join(&format!("/2015-03-31/functions/{function}/invocations"))?)
    }

    /// Whether something accepts connections at the watch address (a cheap check before receiving, so
    /// messages are not taken off the queue while nothing could run them).
    pub async fn reachable(&self) -> bool {
        let (Some(host), Some(port)) = (self.base.host_str(), self.base.port_or_known_default())
        else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        matches!(
            tokio::time::timeout(
                Duration::from_secs(1),
                tokio::net::TcpStream::connect((host, port))
            )
            .await,
            Ok(Ok(_))
        )
    }

    pub async fn invoke(
        &self,
        function: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> InvokeOutcome {
        let url = match self.url_for(function) {
            Ok(u) => u,
            Err(e) => return InvokeOutcome::Unavailable(format!("bad invoke URL: {e}")),
        };
        let sent = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .timeout(timeout)
            .body(payload)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return InvokeOutcome::TimedOut,
            Err(e) => return InvokeOutcome::Unavailable(error_chain(&e)),
        };
        let status = resp.status();
        let function_error = resp
            .headers()
            .get("x-amz-function-error")
            .map(|v| v.to_str().unwrap_or("Unhandled").to_string());
        let body = match resp.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) if e.is_timeout() => return InvokeOutcome::TimedOut,
            Err(e) => {
                return InvokeOutcome::Unavailable(format!(
                    "reading the response: {}",
                    error_chain(&e)
                ));
            }
        };
        classify(status.as_u16(), function_error, body)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Maps a response of the Invoke API to an outcome (see the module docs).
pub fn classify(status: u16, function_error: Option<String>, body: Vec<u8>) -> InvokeOutcome {
    match status {
        200..=299 => match function_error {
            Some(kind) => InvokeOutcome::FunctionError(format!("{kind}: {}", error_summary(&body))),
            None => InvokeOutcome::Returned(body),
        },
        500 => InvokeOutcome::FunctionError(error_summary(&body)),
        404 => InvokeOutcome::Unavailable(format!(
            "404 from cargo lambda watch: {}",
            error_summary(&body)
        )),
        429 | 501..=599 => InvokeOutcome::Unavailable(format!(
            "{status} from cargo lambda watch: {}",
            error_summary(&body)
        )),
        _ => InvokeOutcome::FunctionError(format!(
            "invocation rejected with {status}: {}",
            error_summary(&body)
        )),
    }
}

/// `errorType: errorMessage` of a Lambda error body, or its first 200 characters.
fn error_summary(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let t = v
            .get("errorType")
            .or_else(|| v.get("title"))
            .and_then(|x| x.as_str());
        let m = v
            .get("errorMessage")
            .or_else(|| v.get("detail"))
            .and_then(|x| x.as_str());
        if t.is_some() || m.is_some() {
            return format!("{}: {}", t.unwrap_or("Error"), m.unwrap_or(""));
        }
    }
    truncate(&String::from_utf8_lossy(body), 200)
}

fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Which messages of a batch failed, per Lambda's rules for partial batch responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchResult {
    AllSucceeded,
    Failed(BTreeSet<String>),
    AllFailed(String),
}

/// Reads a function's response. Without ReportBatchItemFailures any return is a success. With it, an
/// empty or null response or an empty `batchItemFailures` is a success; invalid JSON, or an item
/// identifier that is missing, empty or not in the batch, fails the whole batch.
pub fn batch_result(
    body: &[u8],
    batch_ids: &[String],
    report_batch_item_failures: bool,
) -> BatchResult {
    if !report_batch_item_failures {
        return BatchResult::AllSucceeded;
    }
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        return BatchResult::AllSucceeded;
    }
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return BatchResult::AllFailed(format!("response is not JSON: {e}")),
    };
    let failures = match &value {
        serde_json::Value::Null => return BatchResult::AllSucceeded,
        serde_json::Value::Object(o) => match o.get("batchItemFailures") {
            None | Some(serde_json::Value::Null) => return BatchResult::AllSucceeded,
            Some(serde_json::Value::Array(items)) => items,
            Some(_) => return BatchResult::AllFailed("batchItemFailures is not a list".into()),
        },
        _ => return BatchResult::AllFailed("response is not an SqsBatchResponse object".into()),
    };
    if serde_json::from_value::<SqsBatchResponse>(value.clone()).is_err() {
        return BatchResult::AllFailed(
            "batchItemFailures items must be {\"itemIdentifier\": id}".into(),
        );
    }
    let mut failed = BTreeSet::new();
    for item in failures {
        match item.get("itemIdentifier").and_then(|x| x.as_str()) {
            Some(id) if !id.is_empty() && batch_ids.iter().any(|b| b == id) => {
                failed.insert(id.to_string());
            }
            other => return BatchResult::AllFailed(format!("invalid itemIdentifier {other:?}")),
        }
    }
    if failed.is_empty() {
        BatchResult::AllSucceeded
    } else {
        BatchResult::Failed(failed)
    }
}

/// The SQS event Lambda would send for these messages.
pub fn sqs_event(source: &SqsSource, messages: &[Message], region: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id().map(String::from);
            r.receipt_handle = m.receipt_handle().map(String::from);
            r.body = m.body().map(String::from);
            r.md5_of_body = m.md5_of_body().map(String::from);
            r.md5_of_message_attributes = m.md5_of_message_attributes().map(String::from);
            r.attributes = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            r.message_attributes = m
                .message_attributes()
                .map(|attrs| {
                    attrs
                        .iter()
                        .map(|(k, v)| {
                            let mut a = SqsMessageAttribute::default();
                            a.string_value = v.string_value().map(String::from);
                            a.binary_value = v.binary_value().map(|b| base64_data(b.as_ref()));
                            a.string_list_values = v.string_list_values().to_vec();
                            a.binary_list_values = v
                                .binary_list_values()
                                .iter()
                                .map(|b| base64_data(b.as_ref()))
                                .collect();
                            a.data_type = Some(v.data_type().to_string());
                            (k.clone(), a)
                        })
                        .collect::<HashMap<_, _>>()
                })
                .unwrap_or_default();
            r.event_source = Some("aws:sqs".to_string());
            r.event_source_arn = Some(source.queue_arn.clone());
            r.aws_region = Some(region.to_string());
            r
        })
        .collect();
    event
}

/// `Base64Data` is non-exhaustive, so it is filled through `DerefMut`.
fn base64_data(bytes: &[u8]) -> Base64Data {
    let mut d = Base64Data::default();
    d.extend_from_slice(bytes);
    d
}

/// Sleeps, returning early (true) if shutdown was requested.
async fn sleep_or_stop(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

/// Runs one event source until shutdown is requested. Never returns early on service errors: they are
/// logged and retried.
pub async fn run_source(
    source: SqsSource,
    sqs: aws_sdk_sqs::Client,
    invoker: Invoker,
    settings: SqsLoopSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut warm = false;
    let mut watch_down_logged = false;
    info!(function = %source.function, queue = %source.queue_arn, batch_size = source.batch_size, "sqs event source started");
    loop {
        if *shutdown.borrow() {
            break;
        }
        if !invoker.reachable().await {
            if !watch_down_logged {
                warn!(function = %source.function, watch = %invoker.base, "cargo lambda watch is not reachable; not receiving until it is");
                watch_down_logged = true;
            }
            if sleep_or_stop(Duration::from_secs(2), &mut shutdown).await {
                break;
            }
            continue;
        }
        if watch_down_logged {
            info!(function = %source.function, "cargo lambda watch is reachable");
            watch_down_logged = false;
        }
        let received = sqs
            .receive_message()
            .queue_url(&source.queue_url)
            .max_number_of_messages(source.batch_size.clamp(1, MAX_RECEIVE) as i32)
            .wait_time_seconds(settings.wait_time_secs)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                warn!(function = %source.function, queue = %source.queue_url, error = %sdk_message(&e), "ReceiveMessage failed; retrying");
                if sleep_or_stop(Duration::from_secs(2), &mut shutdown).await {
                    break;
                }
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        if *shutdown.borrow() {
            // Received during shutdown: hand them straight back rather than start an invocation.
            change_visibility(&sqs, &source, &messages, 0).await;
            break;
        }
        process_batch(
            &source,
            &sqs,
            &invoker,
            &settings,
            messages,
            &mut warm,
            &mut shutdown,
        )
        .await;
    }
    info!(function = %source.function, queue = %source.queue_arn, "sqs event source stopped");
}

/// Invokes the function with one batch and settles every message of it. Public for tests.
pub async fn process_batch(
    source: &SqsSource,
    sqs: &aws_sdk_sqs::Client,
    invoker: &Invoker,
    settings: &SqsLoopSettings,
    messages: Vec<Message>,
    warm: &mut bool,
    shutdown: &mut watch::Receiver<bool>,
) {
    let ids: Vec<String> = messages
        .iter()
        .map(|m| m.message_id().unwrap_or_default().to_string())
        .collect();
    for m in &messages {
        debug!(function = %source.function, message_id = m.message_id().unwrap_or_default(), body = %truncate(m.body().unwrap_or_default(), 200), "received");
    }
    let payload = match serde_json::to_vec(&sqs_event(source, &messages, &settings.region)) {
        Ok(p) => p,
        Err(e) => {
            error!(function = %source.function, error = %e, "could not serialize the SQS event; returning the batch");
            change_visibility(sqs, source, &messages, settings.retry_delay_secs).await;
            return;
        }
    };
    let mut backoff = Duration::from_secs(2);
    let mut attempt = 0u32;
    let result = loop {
        attempt += 1;
        let started = std::time::Instant::now();
        let outcome = invoker
            .invoke(&source.function, payload.clone(), source.invoke_timeout)
            .await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match outcome {
            InvokeOutcome::Returned(body) => {
                *warm = true;
                let r = batch_result(&body, &ids, source.report_batch_item_failures);
                info!(function = %source.function, messages = ids.len(), elapsed_ms, result = ?r, "invoked");
                break r;
            }
            InvokeOutcome::FunctionError(why) => {
                *warm = true;
                warn!(function = %source.function, messages = ids.len(), elapsed_ms, error = %why, "function error; the whole batch failed");
                break BatchResult::AllFailed(why);
            }
            InvokeOutcome::TimedOut if *warm => {
                warn!(function = %source.function, messages = ids.len(), timeout_s = source.invoke_timeout.as_secs(), "function timed out; the whole batch failed");
                break BatchResult::AllFailed("timed out".into());
            }
            InvokeOutcome::TimedOut | InvokeOutcome::Unavailable(_) => {
                let why = match &outcome {
                    InvokeOutcome::Unavailable(w) => w.clone(),
                    _ => "no answer yet (first invocation compiles the function)".to_string(),
                };
                warn!(function = %source.function, messages = ids.len(), attempt, error = %why, retry_in_s = backoff.as_secs(), "function not available; keeping the batch and retrying");
                // Keep the messages hidden while we hold them, so nothing else receives (and counts) them.
                let hold = (source.invoke_timeout + backoff).as_secs() + HOLD_MARGIN_SECS;
                change_visibility(sqs, source, &messages, hold.min(43_200) as i32).await;
                if sleep_or_stop(backoff, shutdown).await {
                    info!(function = %source.function, messages = ids.len(), "shutdown while waiting for the function; returning the batch to the queue");
                    change_visibility(sqs, source, &messages, 0).await;
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    };

    let (succeeded, failed): (Vec<&Message>, Vec<&Message>) = match &result {
        BatchResult::AllSucceeded => (messages.iter().collect(), Vec::new()),
        BatchResult::AllFailed(_) => (Vec::new(), messages.iter().collect()),
        BatchResult::Failed(ids) => messages
            .iter()
            .partition(|m| !ids.contains(m.message_id().unwrap_or_default())),
    };
    delete(sqs, source, &succeeded).await;
    if !failed.is_empty() {
        let failed: Vec<Message> = failed.into_iter().cloned().collect();
        change_visibility(sqs, source, &failed, settings.retry_delay_secs).await;
    }
}

async fn delete(sqs: &aws_sdk_sqs::Client, source: &SqsSource, messages: &[&Message]) {
    for chunk in messages.chunks(10) {
        let entries: Vec<_> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            continue;
        }
        match sqs
            .delete_message_batch()
            .queue_url(&source.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                for f in out.failed() {
                    warn!(function = %source.function, entry = f.id(), code = f.code(), error = f.message().unwrap_or_default(), "DeleteMessageBatch entry failed; the message will be redelivered");
                }
            }
            Err(e) => {
                warn!(function = %source.function, error = %sdk_message(&e), "DeleteMessageBatch failed; the messages will be redelivered")
            }
        }
    }
}

async fn change_visibility(
    sqs: &aws_sdk_sqs::Client,
    source: &SqsSource,
    messages: &[Message],
    seconds: i32,
) {
    for chunk in messages.chunks(10) {
        let entries: Vec<_> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .visibility_timeout(seconds)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            continue;
        }
        match sqs
            .change_message_visibility_batch()
            .queue_url(&source.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                for f in out.failed() {
                    warn!(function = %source.function, entry = f.id(), code = f.code(), error = f.message().unwrap_or_default(), "ChangeMessageVisibility entry failed");
                }
            }
            Err(e) => {
                warn!(function = %source.function, error = %sdk_message(&e), "ChangeMessageVisibilityBatch failed")
            }
        }
    }
}

/// Reads a queue's ARN (for building sources by hand, e.g. in tests).
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| anyhow!(sdk_message(&e)))?;
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| anyhow!("no QueueArn for {queue_url}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn partial_batch_response_follows_lambda_rules() {
        let r = |body: &str| batch_result(body.as_bytes(), &ids(), true);
        assert_eq!(r(""), BatchResult::AllSucceeded);
        assert_eq!(r("null"), BatchResult::AllSucceeded);
        assert_eq!(r("{}"), BatchResult::AllSucceeded);
        assert_eq!(r(r#"{"batchItemFailures":[]}"#), BatchResult::AllSucceeded);
        assert_eq!(
            r(r#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#),
            BatchResult::Failed(["b".to_string()].into())
        );
        assert!(matches!(
            r(r#"{"batchItemFailures":[{"itemIdentifier":"zzz"}]}"#),
            BatchResult::AllFailed(_)
        ));
        assert!(matches!(
            r(r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#),
            BatchResult::AllFailed(_)
        ));
        assert!(matches!(
            r(r#"{"batchItemFailures":[{"id":"a"}]}"#),
            BatchResult::AllFailed(_)
        ));
        assert!(matches!(r("not json"), BatchResult::AllFailed(_)));
        // Without ReportBatchItemFailures a returned function succeeded whatever it returned.
        assert_eq!(
            batch_result(
                br#"{"batchItemFailures":[{"itemIdentifier":"a"}]}"#,
                &ids(),
                false
            ),
            BatchResult::AllSucceeded
        );
    }

    #[test]
    fn watch_responses_map_to_outcomes() {
        assert_eq!(
            classify(200, None, b"{}".to_vec()),
            InvokeOutcome::Returned(b"{}".to_vec())
        );
        let err =
            br#"{"errorType":"&alloc::boxed::Box<dyn core::error::Error>","errorMessage":"boom"}"#
                .to_vec();
        assert!(
            matches!(classify(500, None, err.clone()), InvokeOutcome::FunctionError(m) if m.contains("boom"))
        );
        assert!(matches!(
            classify(200, Some("Unhandled".into()), err),
            InvokeOutcome::FunctionError(_)
        ));
        assert!(matches!(
            classify(404, None, br#"{"title":"Missing function"}"#.to_vec()),
            InvokeOutcome::Unavailable(_)
        ));
        assert!(matches!(
            classify(502, None, Vec::new()),
            InvokeOutcome::Unavailable(_)
        ));
    }

    #[test]
    fn event_has_the_lambda_shape() {
        let source = SqsSource {
            function: "worker".into(),
            queue_url: "http://q".into(),
            queue_arn: "arn:aws:sqs:us-east-1:123456789012:q".into(),
            batch_size: 5,
            report_batch_item_failures: true,
            invoke_timeout: Duration::from_secs(1),
            pollers: 1,
        };
        let m = Message::builder()
            .message_id("m1")
            .receipt_handle("rh")
            .body("{\"k\":1}")
            .md5_of_body("abc")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "1")
            .message_attributes(
                "trace",
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("t")
                    .build()
                    .unwrap(),
            )
            .build();
        let v = serde_json::to_value(sqs_event(&source, &[m], "us-east-1")).unwrap();
        let r = &v["Records"][0];
        assert_eq!(r["messageId"], "m1");
        assert_eq!(r["receiptHandle"], "rh");
        assert_eq!(r["md5OfBody"], "abc");
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(r["eventSourceARN"], "arn:aws:sqs:us-east-1:123456789012:q");
        assert_eq!(r["awsRegion"], "us-east-1");
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
        assert_eq!(r["messageAttributes"]["trace"]["stringValue"], "t");
        assert_eq!(r["messageAttributes"]["trace"]["dataType"], "String");
    }
}
