//! Sync jobs end to end: HTTP -> DynamoDB + SQS -> the pump -> worker-sync -> DynamoDB -> HTTP, plus
//! schedules firing through the pump, the DLQ redrive, and conflicting run requests.

use ferry_tests::{base_url, bucket, call, env, eventually, http, token};
use serde_json::{Value, json};
use std::time::Duration;

async fn s3() -> aws_sdk_s3::Client {
    ferry_shared::aws::s3_client(&ferry_tests::aws().await)
}

async fn create_job(tok: &str, body: Value) -> String {
    let (s, b) = call(
        http()
            .post(format!("{}/api/v1/scheduler/create_job", base_url()))
            .bearer_auth(tok)
            .json(&body),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["message"], "Job scheduled successfully");
    b["job_id"].as_str().unwrap().to_string()
}

async fn runs(job: &str) -> Vec<Value> {
    let (s, b) = call(http().get(format!("{}/api/v1/jobs/{job}/runs", base_url()))).await;
    assert_eq!(s, 200, "{b}");
    b["runs"].as_array().cloned().unwrap_or_default()
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap();
}

async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let o = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    o.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test]
async fn run_now_copies_every_object_and_the_run_history_shows_it() {
    let s3 = s3().await;
    let src = bucket(&s3, "src").await;
    let dst = bucket(&s3, "dst").await;
    let mut files = Vec::new();
    for i in 0..12 {
        let body: Vec<u8> = (0..(1000 + i * 777)).map(|b| (b * 31 + i) as u8).collect();
        let key = format!("docs/dir {}/file-{i}.bin", i % 3);
        put(&s3, &src, &key, body.clone()).await;
        files.push((key, body));
    }
    put(&s3, &src, "docs/empty.txt", vec![]).await;
    put(
        &s3,
        &src,
        "other/outside-prefix.txt",
        b"not copied".to_vec(),
    )
    .await;

    let tok = token(&["user"]).await;
    let job = create_job(
        &tok,
        json!({
            "job_name": "  docs mirror ", "connector_type": "s3", "schedule": "daily",
            "connector_config": {"bucket_name": src, "prefix": "docs/"},
            "destination": {"bucket": dst, "prefix": "mirror"}
        }),
    )
    .await;
    let (s, b) = call(
        http()
            .post(format!("{}/api/v1/jobs/{job}/run", base_url()))
            .bearer_auth(&tok),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    let run_id = b["run_id"].as_str().unwrap().to_string();

    let run = eventually("the run to end", Duration::from_secs(240), || async {
        runs(&job).await.into_iter().find(|r| {
            r["run_id"] == run_id.as_str() && r["status"] != "starting" && r["status"] != "running"
        })
    })
    .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["trigger"], "api");
    assert_eq!(run["counts"]["total"], 13);
    assert_eq!(run["counts"]["processed"], 12);
    assert_eq!(run["counts"]["skipped"], 1);
    assert_eq!(run["counts"]["failed"], 0);
    let bytes: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(run["counts"]["bytes"], bytes);

    for (key, body) in &files {
        let dest_key = format!("mirror/{}", key.strip_prefix("docs/").unwrap());
        assert_eq!(&get(&s3, &dst, &dest_key).await, body, "{dest_key} differs");
    }
    let listed = s3.list_objects_v2().bucket(&dst).send().await.unwrap();
    assert_eq!(
        listed.key_count,
        Some(12),
        "only the prefix's non-empty objects are copied"
    );

    // Per-object status, paginated in a stable (key) order, in the original's shape.
    let (s, page1) = call(http().get(format!(
        "{}/api/v1/jobs/{job}/objects?limit=5&offset=0",
        base_url()
    )))
    .await;
    assert_eq!(s, 200, "{page1}");
    assert_eq!(page1["total_objects"], 13);
    let (_, page2) = call(http().get(format!(
        "{}/api/v1/jobs/{job}/objects?limit=5&offset=5",
        base_url()
    )))
    .await;
    let keys = |p: &Value| {
        p["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["object_key"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let (k1, k2) = (keys(&page1), keys(&page2));
    assert_eq!(k1.len(), 5);
    assert!(
        k1.last().unwrap() < k2.first().unwrap(),
        "pages must not overlap and stay ordered"
    );
    let (_, skipped) = call(http().get(format!(
        "{}/api/v1/jobs/{job}/objects?status=skipped",
        base_url()
    )))
    .await;
    assert_eq!(skipped["objects"][0]["object_key"], "docs/empty.txt");
    assert_eq!(skipped["objects"][0]["status"], "SKIPPED");

    // The job is free again: a second run is accepted.
    let (s, b) = call(
        http()
            .post(format!("{}/api/v1/jobs/{job}/run", base_url()))
            .bearer_auth(&tok),
    )
    .await;
    assert_eq!(s, 202, "{b}");
}

#[tokio::test]
async fn two_concurrent_run_requests_one_wins_the_other_gets_409() {
    let s3 = s3().await;
    let src = bucket(&s3, "busy").await;
    // Enough objects that the first run is still going when the second request lands.
    for i in 0..150 {
        put(&s3, &src, &format!("f{i:04}"), vec![b'x'; 2048]).await;
    }
    let tok = token(&["user"]).await;
    let job = create_job(&tok, json!({"job_name": "race", "connector_type": "S3", "schedule": "weekly", "connector_config": {"bucket_name": src}})).await;
    let url = format!("{}/api/v1/jobs/{job}/run", base_url());
    let (a, b) = tokio::join!(
        call(http().post(&url).bearer_auth(&tok)),
        call(http().post(&url).bearer_auth(&tok))
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [202, 409], "{} / {}", a.1, b.1);
    let loser = if a.0 == 409 { a.1 } else { b.1 };
    assert_eq!(loser["error"]["code"], "conflict");
}

#[tokio::test]
async fn a_rate_one_minute_schedule_fires_a_run_through_the_pump_within_70s() {
    let s3 = s3().await;
    let src = bucket(&s3, "sched").await;
    put(&s3, &src, "a.txt", b"scheduled".to_vec()).await;
    let tok = token(&["user"]).await;
    let job = create_job(&tok, json!({"job_name": "every minute", "connector_type": "S3", "schedule": "rate(1 minute)", "connector_config": {"bucket_name": src}})).await;
    let run = eventually("a scheduled run", Duration::from_secs(70), || async {
        runs(&job)
            .await
            .into_iter()
            .find(|r| r["trigger"] == "schedule")
    })
    .await;
    assert_ne!(run["status"], "failed", "{run}");
    // Deleting the job deletes its schedule.
    let (s, b) = call(
        http()
            .delete(format!("{}/api/v1/scheduler/delete_job", base_url()))
            .bearer_auth(&tok)
            .json(&json!({"job_id": job})),
    )
    .await;
    assert_eq!(
        (s, b["message"].as_str()),
        (200, Some("Job deleted successfully"))
    );
    let scheduler = aws_sdk_scheduler::Client::new(&ferry_tests::aws().await);
    let gone = scheduler
        .get_schedule()
        .name(&job)
        .group_name(env("SCHEDULE_GROUP"))
        .send()
        .await;
    assert!(gone.is_err(), "schedule must be deleted with its job");
}

#[tokio::test]
async fn a_message_the_worker_keeps_failing_is_redelivered_then_dead_lettered() {
    let aws = ferry_tests::aws().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let marker = uuid::Uuid::new_v4().to_string();
    // Undecodable for worker-sync: reported as a batch item failure on every delivery.
    let body = json!({"kind": "no_such_kind", "marker": marker}).to_string();
    sqs.send_message()
        .queue_url(env("SYNC_QUEUE_URL"))
        .message_body(&body)
        .send()
        .await
        .unwrap();
    let dlq_url = sqs
        .get_queue_url()
        .queue_name("ferry-SyncDlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let found = eventually("the message in the DLQ", Duration::from_secs(180), || {
        let sqs = sqs.clone();
        let dlq_url = dlq_url.clone();
        let marker = marker.clone();
        async move {
            let out = sqs
                .receive_message()
                .queue_url(&dlq_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await
                .ok()?;
            out.messages
                .unwrap_or_default()
                .into_iter()
                .find(|m| m.body().unwrap_or("").contains(&marker))
        }
    })
    .await;
    let receives: u32 = found
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        receives >= 5,
        "redelivered {receives} times before the DLQ, expected maxReceiveCount 5"
    );
}

#[tokio::test]
async fn create_job_keeps_the_original_validation_and_messages() {
    let tok = token(&["user"]).await;
    let url = format!("{}/api/v1/scheduler/create_job", base_url());
    let ok = json!({"job_name": "valid", "connector_type": "S3", "schedule": "hourly", "connector_config": {"bucket_name": "some-bucket"}});
    let cases = [
        ("job_name", json!({"job_name": " ab "})),
        ("connector_type", json!({"connector_type": "FTP"})),
        ("schedule", json!({"schedule": "every 5 minutes"})),
        ("schedule", json!({"schedule": "cron(0 12 * * * *)"})),
        (
            "connector_config.bucket_name",
            json!({"connector_config": {"prefix": "x"}}),
        ),
        (
            "connector_config.bucket_name",
            json!({"connector_config": {"bucket_name": "Bad_Bucket"}}),
        ),
        ("timezone", json!({"timezone": "Mars/Olympus"})),
        ("unexpected", json!({"unexpected": 1})),
        ("job_name", json!({"job_name": 12})),
    ];
    for (field, patch) in cases {
        let mut body = ok.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, b) = call(http().post(&url).bearer_auth(&tok).json(&body)).await;
        assert_eq!(s, 400, "{field}: {b}");
        assert_eq!(b["error"]["field"], field, "{b}");
        assert!(
            b["message"].is_string(),
            "the original's {{message}} key is kept: {b}"
        );
    }
    let mut missing = ok.clone();
    missing.as_object_mut().unwrap().remove("schedule");
    let (s, b) = call(http().post(&url).bearer_auth(&tok).json(&missing)).await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("schedule")));

    let del = format!("{}/api/v1/scheduler/delete_job", base_url());
    let (s, b) = call(
        http()
            .delete(&del)
            .bearer_auth(&tok)
            .json(&json!({"job_id": "not-a-uuid"})),
    )
    .await;
    assert_eq!((s, b["message"].as_str()), (400, Some("Invalid job ID")));
    let (s, _) = call(
        http()
            .delete(&del)
            .bearer_auth(&tok)
            .json(&json!({"job_id": uuid::Uuid::new_v4()})),
    )
    .await;
    assert_eq!(s, 404);
    let (s, b) = call(http().get(format!(
        "{}/api/v1/scheduler/list_jobs?job_id=nope",
        base_url()
    )))
    .await;
    assert_eq!((s, b["message"].as_str()), (400, Some("Invalid job ID")));
}
