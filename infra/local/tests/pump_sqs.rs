//! The pump's SQS loop against real moto queues, with a stub HTTP server standing in for cargo lambda
//! watch's Invoke API.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ferry_local::pump::sqs::{Invoker, SqsLoopSettings, SqsSource, run_source};
use tokio::sync::watch;

/// One record as the stub function saw it.
#[derive(Debug, Clone)]
struct Seen {
    function: String,
    message_id: String,
    body: String,
    receive_count: String,
    event_source: String,
    event_source_arn: String,
}

/// How the stub answers, given the invocation number (from 1) and the records' (message id, body).
type Behaviour = Arc<dyn Fn(usize, &[(String, String)]) -> Response + Send + Sync>;

#[derive(Clone)]
struct Stub {
    seen: Arc<Mutex<Vec<Seen>>>,
    calls: Arc<Mutex<usize>>,
    behaviour: Behaviour,
}

async fn invoke(Path(function): Path<String>, State(stub): State<Stub>, body: String) -> Response {
    let event: aws_lambda_events::sqs::SqsEvent = match serde_json::from_str(&body) {
        Ok(e) => e,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("not an SQS event: {e}")).into_response();
        }
    };
    let call = {
        let mut c = stub.calls.lock().unwrap();
        *c += 1;
        *c
    };
    let mut records = Vec::new();
    for r in &event.records {
        let b = r.body.clone().unwrap_or_default();
        stub.seen.lock().unwrap().push(Seen {
            function: function.clone(),
            message_id: r.message_id.clone().unwrap_or_default(),
            body: b.clone(),
            receive_count: r
                .attributes
                .get("ApproximateReceiveCount")
                .cloned()
                .unwrap_or_default(),
            event_source: r.event_source.clone().unwrap_or_default(),
            event_source_arn: r.event_source_arn.clone().unwrap_or_default(),
        });
        records.push((r.message_id.clone().unwrap_or_default(), b));
    }
    (stub.behaviour)(call, &records)
}

/// Answers like a worker with ReportBatchItemFailures: bodies starting with "fail" are reported failed.
fn partial_failures(_call: usize, records: &[(String, String)]) -> Response {
    let failures: Vec<_> = records
        .iter()
        .filter(|(_, b)| b.starts_with("fail"))
        .map(|(id, _)| serde_json::json!({"itemIdentifier": id}))
        .collect();
    axum::Json(serde_json::json!({"batchItemFailures": failures})).into_response()
}

async fn start_stub(behaviour: Behaviour) -> (String, Stub) {
    let stub = Stub {
        seen: Arc::default(),
        calls: Arc::default(),
        behaviour,
    };
    let app = axum::Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invoke))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), stub)
}

async fn queue_pair(
    clients: &ferry_local::clients::Clients,
    max_receive: u32,
) -> (String, String, String) {
    let base = common::unique("t");
    let (dlq_url, dlq_arn) = common::create_queue(clients, &format!("{base}-dlq"), &[]).await;
    let redrive =
        serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive})
            .to_string();
    let (url, arn) = common::create_queue(
        clients,
        &format!("{base}-q"),
        &[
            ("RedrivePolicy", redrive),
            ("VisibilityTimeout", "30".into()),
        ],
    )
    .await;
    (url, arn, dlq_url)
}

fn settings() -> SqsLoopSettings {
    SqsLoopSettings {
        wait_time_secs: 1,
        retry_delay_secs: 1,
        region: "us-east-1".into(),
    }
}

#[tokio::test]
async fn sqs_loop_deletes_successes_and_a_reported_failure_ends_in_the_dlq() {
    let clients = common::local_stack().await;
    let (url, arn, dlq_url) = queue_pair(&clients, 2).await;

    let (watch_url, stub) = start_stub(Arc::new(partial_failures)).await;

    for body in ["ok-1", "fail-1", "ok-2"] {
        clients
            .sqs
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    let source = SqsSource {
        function: "worker-test".into(),
        queue_url: url.clone(),
        queue_arn: arn.clone(),
        batch_size: 10,
        report_batch_item_failures: true,
        invoke_timeout: Duration::from_secs(10),
        pollers: 1,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run_source(
        source,
        clients.sqs.clone(),
        Invoker::new(&watch_url).unwrap(),
        settings(),
        stop_rx,
    ));

    let dead = common::receive_until(&clients, &dlq_url, Duration::from_secs(45), |b| {
        b == "fail-1"
    })
    .await;
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("the loop stops on shutdown")
        .unwrap();

    assert_eq!(
        dead.as_deref(),
        Some("fail-1"),
        "the failing message reached the DLQ after 2 receives"
    );
    assert_eq!(
        common::messages_in(&clients, &url).await,
        0,
        "nothing is left in the source queue"
    );

    let seen = stub.seen.lock().unwrap().clone();
    let count = |b: &str| seen.iter().filter(|s| s.body == b).count();
    assert_eq!(
        count("ok-1"),
        1,
        "successes are deleted, not redelivered: {seen:#?}"
    );
    assert_eq!(count("ok-2"), 1, "{seen:#?}");
    assert_eq!(
        count("fail-1"),
        2,
        "the failure is redelivered until maxReceiveCount: {seen:#?}"
    );
    let fail_counts: Vec<_> = seen
        .iter()
        .filter(|s| s.body == "fail-1")
        .map(|s| s.receive_count.as_str())
        .collect();
    assert_eq!(fail_counts, ["1", "2"]);
    for s in &seen {
        assert_eq!(s.function, "worker-test");
        assert_eq!(s.event_source, "aws:sqs");
        assert_eq!(s.event_source_arn, arn);
        assert!(!s.message_id.is_empty());
    }
}

#[tokio::test]
async fn an_unavailable_function_keeps_the_batch_without_counting_receives() {
    let clients = common::local_stack().await;
    let (url, arn, dlq_url) = queue_pair(&clients, 2).await;

    // The first two invocations get what cargo lambda watch answers for an unknown binary; then it works.
    let behaviour: Behaviour = Arc::new(|call, _records: &[(String, String)]| {
        if call <= 2 {
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"title": "Missing function"})),
            )
                .into_response()
        } else {
            axum::Json(serde_json::json!({"batchItemFailures": []})).into_response()
        }
    });
    let (watch_url, stub) = start_stub(behaviour).await;
    clients
        .sqs
        .send_message()
        .queue_url(&url)
        .message_body("patience")
        .send()
        .await
        .unwrap();

    let source = SqsSource {
        function: "worker-test".into(),
        queue_url: url.clone(),
        queue_arn: arn,
        batch_size: 1,
        report_batch_item_failures: true,
        invoke_timeout: Duration::from_secs(10),
        pollers: 1,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run_source(
        source,
        clients.sqs.clone(),
        Invoker::new(&watch_url).unwrap(),
        settings(),
        stop_rx,
    ));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while *stub.calls.lock().unwrap() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the loop settle the batch.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("the loop stops on shutdown")
        .unwrap();

    let seen = stub.seen.lock().unwrap().clone();
    assert_eq!(
        *stub.calls.lock().unwrap(),
        3,
        "retried until the function answered: {seen:#?}"
    );
    assert!(
        seen.iter().all(|s| s.receive_count == "1"),
        "the same receive was retried, not re-received: {seen:#?}"
    );
    assert_eq!(
        common::messages_in(&clients, &url).await,
        0,
        "the message was deleted once it succeeded"
    );
    assert_eq!(
        common::messages_in(&clients, &dlq_url).await,
        0,
        "nothing went to the DLQ"
    );
}

#[tokio::test]
async fn a_function_error_fails_the_whole_batch() {
    let clients = common::local_stack().await;
    let (url, arn, dlq_url) = queue_pair(&clients, 1).await;

    // cargo lambda watch answers 500 with the runtime's error body when the handler returns Err.
    let behaviour: Behaviour = Arc::new(|_, _: &[(String, String)]| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({"errorType": "Boom", "errorMessage": "handler failed"})),
        )
            .into_response()
    });
    let (watch_url, stub) = start_stub(behaviour).await;
    for body in ["a", "b"] {
        clients
            .sqs
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let source = SqsSource {
        function: "worker-test".into(),
        queue_url: url.clone(),
        queue_arn: arn,
        batch_size: 10,
        report_batch_item_failures: true,
        invoke_timeout: Duration::from_secs(10),
        pollers: 1,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run_source(
        source,
        clients.sqs.clone(),
        Invoker::new(&watch_url).unwrap(),
        settings(),
        stop_rx,
    ));

    let mut dead = common::collect_until(&clients, &dlq_url, Duration::from_secs(30), |b| {
        b.len() >= 2
    })
    .await;
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("the loop stops on shutdown")
        .unwrap();
    dead.sort();
    assert_eq!(
        dead,
        ["a", "b"],
        "both messages of the failed batch went to the DLQ"
    );
    assert!(*stub.calls.lock().unwrap() >= 1);
}
