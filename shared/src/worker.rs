//! The batch-worker helper every SQS-driven function uses: decode each record into a typed message,
//! handle records with bounded concurrency, and answer with the ids that failed, so that only those are
//! redelivered (`ReportBatchItemFailures`). A record that fails to decode, errs retryably or panics is
//! a failure; a permanent error is logged and acknowledged (the handler has recorded it in state).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::{FutureExt, StreamExt};
use lambda_runtime::{LambdaEvent, service_fn};
use serde::de::DeserializeOwned;
use std::future::Future;
use std::panic::AssertUnwindSafe;

#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// Worth another delivery: throttling, timeouts, a lost race.
    #[error("{0:#}")]
    Retryable(anyhow::Error),
    /// Will never succeed: recorded in state by the handler, then acknowledged.
    #[error("{0:#}")]
    Permanent(anyhow::Error),
}

impl WorkError {
    pub fn retryable(e: impl Into<anyhow::Error>) -> Self {
        WorkError::Retryable(e.into())
    }
    pub fn permanent(e: impl Into<anyhow::Error>) -> Self {
        WorkError::Permanent(e.into())
    }
}

/// What a handler knows about the record besides its message.
#[derive(Debug, Clone)]
pub struct RecordInfo {
    pub message_id: String,
    /// 1 on first delivery.
    pub receive_count: u32,
}

enum Outcome {
    Done,
    Failed(&'static str, String),
}

async fn one<M, F, Fut>(record: SqsMessage, handler: &F) -> (String, Outcome)
where
    M: DeserializeOwned,
    F: Fn(M, RecordInfo) -> Fut,
    Fut: Future<Output = Result<(), WorkError>>,
{
    let id = record.message_id.clone().unwrap_or_default();
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let body = record.body.as_deref().unwrap_or("");
    let message: M = match serde_json::from_str(body) {
        Ok(m) => m,
        Err(e) => return (id, Outcome::Failed("undecodable", e.to_string())),
    };
    let info = RecordInfo {
        message_id: id.clone(),
        receive_count,
    };
    let outcome = match AssertUnwindSafe(handler(message, info))
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => Outcome::Done,
        Ok(Err(WorkError::Permanent(e))) => {
            tracing::error!(message_id = %id, error = %format!("{e:#}"), "permanent failure, acknowledged");
            Outcome::Done
        }
        Ok(Err(WorkError::Retryable(e))) => Outcome::Failed("retryable", format!("{e:#}")),
        Err(_) => Outcome::Failed("panicked", "handler panicked".into()),
    };
    (id, outcome)
}

/// Handles every record of `event` with at most `concurrency` in flight; returns the failed ids.
pub async fn process_batch<M, F, Fut>(
    event: SqsEvent,
    concurrency: usize,
    handler: F,
) -> SqsBatchResponse
where
    M: DeserializeOwned,
    F: Fn(M, RecordInfo) -> Fut,
    Fut: Future<Output = Result<(), WorkError>>,
{
    let results: Vec<(String, Outcome)> = futures::stream::iter(event.records)
        .map(|r| one(r, &handler))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for (id, outcome) in results {
        if let Outcome::Failed(why, detail) = outcome {
            tracing::warn!(message_id = %id, reason = why, detail = %detail, "record failed, left for redelivery");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Runs a worker Lambda: every invocation is one SQS batch handled by [`process_batch`].
pub async fn run<M, F, Fut>(concurrency: usize, handler: F) -> Result<(), lambda_runtime::Error>
where
    M: DeserializeOwned,
    F: Fn(M, RecordInfo) -> Fut,
    Fut: Future<Output = Result<(), WorkError>>,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(process_batch(event.payload, concurrency, handler).await)
    }))
    .await
}

/// Runs a worker Lambda that also answers direct (synchronous) invocations: an event with `Records`
/// is an SQS batch, handled as by [`run`]; any other event must decode as `R` and is answered by
/// `direct`. An event that is neither is an invocation error (the caller sees a function error).
pub async fn run_with_direct<M, F, Fut, R, O, G, GFut>(
    concurrency: usize,
    handler: F,
    direct: G,
) -> Result<(), lambda_runtime::Error>
where
    M: DeserializeOwned,
    F: Fn(M, RecordInfo) -> Fut,
    Fut: Future<Output = Result<(), WorkError>>,
    R: DeserializeOwned,
    O: serde::Serialize,
    G: Fn(R) -> GFut,
    GFut: Future<Output = O>,
{
    let (handler, direct) = (&handler, &direct);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let payload = event.payload;
            if payload.get("Records").is_some() {
                let batch: SqsEvent = serde_json::from_value(payload)?;
                let out = process_batch(batch, concurrency, handler).await;
                return Ok::<_, lambda_runtime::Error>(serde_json::to_value(out)?);
            }
            // The error names no value: a direct request may carry a target's credentials.
            let request: R = serde_json::from_value(payload).map_err(|e| {
                format!(
                    "neither an SQS event nor a direct request ({:?} error)",
                    e.classify()
                )
            })?;
            Ok(serde_json::to_value(direct(request).await)?)
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Msg {
        n: u32,
    }

    fn event(bodies: &[&str]) -> SqsEvent {
        let mut e = SqsEvent::default();
        for (i, b) in bodies.iter().enumerate() {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("m{i}"));
            m.body = Some(b.to_string());
            e.records.push(m);
        }
        e
    }

    #[tokio::test]
    async fn undecodable_retryable_and_panicking_records_fail_others_succeed() {
        let ev = event(&[
            r#"{"n":1}"#,
            "not json",
            r#"{"n":2}"#,
            r#"{"n":3}"#,
            r#"{"n":4}"#,
        ]);
        let resp = process_batch(ev, 2, |m: Msg, _| async move {
            match m.n {
                2 => Err(WorkError::retryable(anyhow::anyhow!("throttled"))),
                3 => panic!("boom"),
                4 => Err(WorkError::permanent(anyhow::anyhow!("bad input"))),
                _ => Ok(()),
            }
        })
        .await;
        let mut failed: Vec<_> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        failed.sort();
        assert_eq!(failed, vec!["m1", "m2", "m3"]);
    }
}
