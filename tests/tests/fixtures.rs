//! Every payload in events/ is a real event its function accepts: API Gateway requests and SQS batches
//! are invoked through cargo lambda watch (as `cargo lambda invoke --data-file` would), the Scheduler
//! input and the S3 notification decode into the messages the workers read.

use ferry_shared::messages::{IngestMessage, SyncMessage};
use ferry_tests::invoke;
use serde_json::Value;
use std::path::Path;

fn events() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("events");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (
                name,
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

// worker-loader-s3 before worker-loader: a fixture belongs to the longest name it starts with.
const FUNCTIONS: [&str; 10] = [
    "api-loaders",
    "api-jobs",
    "api-scheduler",
    "api-events",
    "api-transfers",
    "worker-loader-s3",
    "worker-loader",
    "worker-sync",
    "worker-ingest",
    "worker-transfer",
];

fn function_of(file: &str) -> Option<&'static str> {
    FUNCTIONS
        .iter()
        .copied()
        .find(|f| file.starts_with(&format!("{f}-")))
}

/// What each fixture must produce: an HTTP status, or the ids a worker reports as failed.
fn expected(file: &str) -> Value {
    serde_json::json!({
        "api-jobs-login.json": 401,              // the fixture's password is not the admin's
        "api-jobs-health.json": 200,
        "api-scheduler-create-job.json": 401,    // mutating, no token
        "api-scheduler-list-jobs.json": 200,
        "api-loaders-list.json": 200,
        "api-events-files.json": 200,
        "api-events-query.json": 401,            // a query needs a token
        "api-transfers-me.json": 401,
        "api-transfers-pause-task.json": 401,    // Basic credentials of no account
        "api-transfers-download-file.json": 401, // the same, on a zip download
        "worker-sync-start-run.json": [],        // unknown job: permanent, acknowledged
        "worker-loader-tick.json": [],           // unknown loader: permanent, acknowledged
        "worker-loader-s3-tick.json": [],        // the same in the S3 loader worker
        // api-loaders' direct MongoDB operation; the worker checks the host against its own allow-list
        "worker-loader-target-op-count.json": "refused",
        "worker-ingest-s3-test-event.json": [],  // S3's test event is acknowledged
        "worker-ingest-request-missing-object.json": [], // missing object: recorded as failed, acknowledged
        "worker-transfer-build-zip.json": [],     // unknown task: nothing to build, acknowledged
    })[file]
        .clone()
}

#[tokio::test]
async fn every_fixture_is_accepted_by_its_function() {
    let all = events();
    assert!(all.len() >= 13);
    let mut covered = std::collections::BTreeSet::new();
    for (file, payload) in all {
        if let Some(function) = function_of(&file) {
            covered.insert(function);
            let want = expected(&file);
            assert!(!want.is_null(), "{file} has no expectation in this test");
            let got = invoke(function, &payload).await.unwrap();
            if payload.get("target_op").is_some() {
                assert_eq!(got["outcome"], want, "{file}: {got}");
                assert_eq!(got["connecting"], true, "{file}: {got}");
                assert!(!got.to_string().contains("example-only"), "{file}: {got}");
            } else if function.starts_with("api-") {
                assert_eq!(got["statusCode"], want, "{file}: {got}");
                let body: Value = serde_json::from_str(got["body"].as_str().unwrap()).unwrap();
                assert!(body.is_object(), "{file}: JSON body expected");
            } else {
                let failed: Vec<Value> = got["batchItemFailures"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|f| f["itemIdentifier"].clone())
                    .collect();
                assert_eq!(Value::Array(failed), want, "{file}: {got}");
            }
        } else if file.starts_with("scheduler-input") {
            let m: SyncMessage = serde_json::from_value(payload).unwrap();
            assert!(matches!(m, SyncMessage::StartRun { .. }));
        } else if file.starts_with("s3-notification") {
            let m: IngestMessage = serde_json::from_value(payload.clone()).unwrap();
            assert!(matches!(m, IngestMessage::S3(_)), "{file}");
            let typed: aws_lambda_events::event::s3::S3Event =
                serde_json::from_value(payload).unwrap();
            assert_eq!(typed.records.len(), 1);
        } else {
            panic!("{file} is used by no test: name it after its function");
        }
    }
    assert_eq!(
        covered.len(),
        FUNCTIONS.len(),
        "every function has a fixture"
    );
}
