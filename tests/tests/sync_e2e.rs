//! Sync jobs end to end: HTTP -> DynamoDB + SQS -> the pump -> worker-sync -> DynamoDB -> HTTP, plus
//! schedules firing through the pump, the DLQ redrive, and conflicting run requests.

mod sync_common;

use ferry_tests::{base_url, bucket, call, env, eventually, http, token};
use serde_json::{Value, json};
use std::time::Duration;
use sync_common::*;

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
    let run_id = run_now(&tok, &job).await;
    let run = ended(&job, &run_id, Duration::from_secs(240)).await;
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

    // Runs do not drop the job from the listing.
    let (_, listed_jobs) =
        call(http().get(format!("{}/api/v1/scheduler/list_jobs", base_url()))).await;
    assert!(
        listed_jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["job_id"] == job.as_str()),
        "the job is still listed after its run"
    );

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

const MIB: usize = 1024 * 1024;

async fn patch_job(tok: &str, body: Value) -> (u16, Value) {
    call(
        http()
            .patch(format!("{}/api/v1/scheduler/update_job", base_url()))
            .bearer_auth(tok)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn delta_after_changing_three_objects_copies_exactly_those_three() {
    let s3 = s3().await;
    let src = bucket(&s3, "dsrc").await;
    let dst = bucket(&s3, "ddst").await;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..10 {
        files.push((format!("small-{i}.bin"), data(20_000 + i * 10, i as u64)));
    }
    // Bigger than the 5 MiB chunk: multipart, 3 parts each.
    for i in 0..2 {
        files.push((format!("big/{i}.bin"), data(12 * MIB + 17, 100 + i as u64)));
    }
    for (k, b) in &files {
        put(&s3, &src, k, b.clone()).await;
    }
    let tok = token(&["user"]).await;
    let job = create_job(
        &tok,
        json!({"job_name": "delta", "connector_type": "S3", "schedule": "daily",
               "connector_config": {"bucket_name": src}, "destination": {"bucket": dst, "prefix": "copy/"},
               "chunk_size": 5 * MIB, "concurrency": 4}),
    )
    .await;
    let run = ended(&job, &run_now(&tok, &job).await, Duration::from_secs(240)).await;
    let all: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        (
            run["counts"]["processed"].as_u64(),
            run["counts"]["bytes"].as_u64()
        ),
        (Some(12), Some(all)),
        "{run}"
    );
    for (k, b) in &files {
        assert_eq!(
            md5(&get(&s3, &dst, &format!("copy/{k}")).await),
            md5(b),
            "{k}"
        );
    }
    let objs = objects(&job, run["run_id"].as_str().unwrap()).await;
    let big = objs
        .iter()
        .find(|o| o["object_key"] == "big/0.bin")
        .unwrap();
    assert_eq!(big["parts_done"], 3, "{big}");
    assert_eq!(big["last_position"], (12 * MIB + 17) as u64, "{big}");

    // Change one big and two small objects (one keeping its size), then switch the job to delta.
    for (i, idx) in [0usize, 3, 10].into_iter().enumerate() {
        let len = files[idx].1.len();
        files[idx].1 = data(len, 1000 + i as u64);
        put(&s3, &src, &files[idx].0, files[idx].1.clone()).await;
    }
    let (s, b) = patch_job(&tok, json!({"job_id": job, "action": "delta"})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["job"]["action"], "delta");
    let run = ended(&job, &run_now(&tok, &job).await, Duration::from_secs(240)).await;
    let changed: u64 = [0usize, 3, 10]
        .iter()
        .map(|i| files[*i].1.len() as u64)
        .sum();
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["counts"]["processed"], 3, "{run}");
    assert_eq!(run["counts"]["skipped"], 9, "{run}");
    assert_eq!(run["counts"]["bytes"], changed, "{run}");
    for (k, b) in &files {
        assert_eq!(
            md5(&get(&s3, &dst, &format!("copy/{k}")).await),
            md5(b),
            "{k}"
        );
    }
    // Nothing changed since: nothing copied.
    let run = ended(&job, &run_now(&tok, &job).await, Duration::from_secs(240)).await;
    assert_eq!(
        (
            run["counts"]["processed"].as_u64(),
            run["counts"]["skipped"].as_u64()
        ),
        (Some(0), Some(12)),
        "{run}"
    );
}

#[tokio::test]
async fn diff_copies_and_deletes_what_the_source_no_longer_has() {
    let s3 = s3().await;
    let src = bucket(&s3, "xsrc").await;
    let dst = bucket(&s3, "xdst").await;
    for i in 0..5 {
        put(&s3, &src, &format!("data/f{i}.txt"), data(3000, i)).await;
    }
    put(&s3, &dst, "m/gone-1.txt", b"stale".to_vec()).await;
    put(&s3, &dst, "m/sub/gone-2.txt", b"stale".to_vec()).await;
    put(&s3, &dst, "other/keep.txt", b"outside the prefix".to_vec()).await;
    let tok = token(&["user"]).await;
    let job = create_job(
        &tok,
        json!({"job_name": "diff", "connector_type": "S3", "schedule": "daily", "action": "diff",
               "connector_config": {"bucket_name": src, "prefix": "data/"}, "destination": {"bucket": dst, "prefix": "m"}}),
    )
    .await;
    let run = ended(&job, &run_now(&tok, &job).await, Duration::from_secs(240)).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["counts"]["total"], 7, "{run}");
    assert_eq!(run["counts"]["processed"], 7, "{run}");
    assert_eq!(run["counts"]["deleted"], 2, "{run}");
    let mut have = keys(&s3, &dst).await;
    have.sort();
    let mut want: Vec<String> = (0..5).map(|i| format!("m/f{i}.txt")).collect();
    want.push("other/keep.txt".into());
    want.sort();
    assert_eq!(have, want);

    s3.delete_object()
        .bucket(&src)
        .key("data/f4.txt")
        .send()
        .await
        .unwrap();
    let run = ended(&job, &run_now(&tok, &job).await, Duration::from_secs(240)).await;
    assert_eq!(
        (
            run["counts"]["deleted"].as_u64(),
            run["counts"]["skipped"].as_u64(),
            run["counts"]["total"].as_u64()
        ),
        (Some(1), Some(4), Some(5)),
        "{run}"
    );
    assert!(!keys(&s3, &dst).await.contains(&"m/f4.txt".to_string()));
}

#[tokio::test]
async fn pause_resume_update_and_bulk_delete_drive_the_schedule() {
    let tok = token(&["user"]).await;
    let job = create_job(&tok, json!({"job_name": "ops", "connector_type": "S3", "schedule": "hourly", "connector_config": {"bucket_name": "some-bucket"}})).await;
    let scheduler = aws_sdk_scheduler::Client::new(&ferry_tests::aws().await);
    let schedule = || async {
        scheduler
            .get_schedule()
            .name(&job)
            .group_name(env("SCHEDULE_GROUP"))
            .send()
            .await
            .unwrap()
    };
    let url = |what: &str| format!("{}/api/v1/jobs/{job}/{what}", base_url());
    let (s, _) = call(http().post(url("pause"))).await;
    assert_eq!(s, 401, "pausing needs a token");
    let (s, b) = call(http().post(url("pause")).bearer_auth(&tok)).await;
    assert_eq!((s, b["job_status"].as_str()), (200, Some("PAUSED")), "{b}");
    assert_eq!(schedule().await.state().unwrap().as_str(), "DISABLED");
    let (s, _) = call(http().post(url("pause")).bearer_auth(&tok)).await;
    assert_eq!(s, 409);
    let (s, b) = call(http().post(url("resume")).bearer_auth(&tok)).await;
    assert_eq!(
        (s, b["job_status"].as_str()),
        (200, Some("SCHEDULED")),
        "{b}"
    );
    assert_eq!(schedule().await.state().unwrap().as_str(), "ENABLED");

    let (s, b) = patch_job(
        &tok,
        json!({"job_id": job, "schedule": "rate(2 hours)", "job_name": "renamed"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        schedule().await.schedule_expression(),
        Some("rate(2 hours)")
    );
    let (_, listed) = call(http().get(format!(
        "{}/api/v1/scheduler/list_jobs?job_id={job}",
        base_url()
    )))
    .await;
    assert_eq!(listed["jobs"][0]["job_name"], "renamed");
    assert_eq!(
        listed["jobs"][0]["connector_config"]["bucket_name"],
        "some-bucket"
    );
    let (s, b) = patch_job(&tok, json!({"job_id": job, "schedule": "every day"})).await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("schedule")),
        "{b}"
    );
    assert!(b["message"].is_string());
    let (s, _) = patch_job(
        &tok,
        json!({"job_id": uuid::Uuid::new_v4(), "job_name": "x1x"}),
    )
    .await;
    assert_eq!(s, 404);
    let (s, b) = patch_job(&tok, json!({"job_id": job, "colour": "red"})).await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("colour")),
        "{b}"
    );

    let unknown = uuid::Uuid::new_v4().to_string();
    let (s, b) = call(
        http()
            .post(format!("{}/api/v1/scheduler/bulk_delete", base_url()))
            .bearer_auth(&tok)
            .json(&json!({"job_ids": [job, unknown, "nope"]})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["deleted"], json!([job]));
    assert_eq!(b["not_found"], json!([unknown]));
    assert_eq!(b["invalid"], json!(["nope"]));
    let gone = scheduler
        .get_schedule()
        .name(&job)
        .group_name(env("SCHEDULE_GROUP"))
        .send()
        .await;
    assert!(gone.is_err(), "bulk delete deletes the schedules too");
}

#[tokio::test]
async fn a_foreign_store_source_streams_through_the_worker_and_its_keys_stay_secret() {
    let foreign = ForeignMoto::start().await;
    let far = foreign.client();
    foreign.bucket("far-src").await;
    let mut files = Vec::new();
    for i in 0..6 {
        files.push((format!("f/{i}.bin"), data(40_000 + i, 7 + i as u64)));
    }
    files.push(("f/big.bin".to_string(), data(11 * MIB + 3, 77)));
    for (k, b) in &files {
        put(&far, "far-src", k, b.clone()).await;
    }
    let s3 = s3().await;
    let dst = bucket(&s3, "fdst").await;
    let tok = token(&["user"]).await;
    let job = create_job(
        &tok,
        json!({"job_name": "foreign", "connector_type": "S3", "schedule": "daily", "chunk_size": 5 * MIB,
               "connector_config": {"bucket_name": "far-src", "prefix": "f/", "endpoint_url": foreign.url,
                                    "region": "eu-west-1", "access_key_id": "foreign-key", "secret_access_key": "foreign-secret"},
               "destination": {"bucket": dst, "prefix": "in"}}),
    )
    .await;
    let (_, listed) = call(http().get(format!(
        "{}/api/v1/scheduler/list_jobs?job_id={job}",
        base_url()
    )))
    .await;
    let text = listed.to_string();
    assert!(
        !text.contains("foreign-secret") && !text.contains("secret_access_key"),
        "{text}"
    );
    let arn = listed["jobs"][0]["connector_config"]["credentials_secret_arn"]
        .as_str()
        .expect("the job keeps the secret's ARN")
        .to_string();
    let sm = aws_sdk_secretsmanager::Client::new(&ferry_tests::aws().await);
    let secret = sm.get_secret_value().secret_id(&arn).send().await.unwrap();
    assert!(secret.secret_string().unwrap().contains("foreign-secret"));

    let run = ended(&job, &run_now(&tok, &job).await, Duration::from_secs(240)).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["counts"]["processed"], 7, "{run}");
    for (k, b) in &files {
        let dest = format!("in/{}", k.strip_prefix("f/").unwrap());
        assert_eq!(md5(&get(&s3, &dst, &dest).await), md5(b), "{dest}");
    }
    let objs = objects(&job, run["run_id"].as_str().unwrap()).await;
    let big = objs
        .iter()
        .find(|o| o["object_key"] == "f/big.bin")
        .unwrap();
    assert_eq!(big["parts_done"], 3, "{big}");
    assert_eq!(
        big["bytes_fetched"],
        (11 * MIB + 3) as u64,
        "fetched once: {big}"
    );

    let (s, _) = call(
        http()
            .delete(format!("{}/api/v1/scheduler/delete_job", base_url()))
            .bearer_auth(&tok)
            .json(&json!({"job_id": job})),
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        sm.get_secret_value().secret_id(&arn).send().await.is_err(),
        "deleting the job deletes its source keys"
    );
}

/// A listing over several pages (250 keys each): every page records its groups several at a time and
/// adds its count to the run's total once; the run ends only after the last page, with every object
/// counted once. A delta right after finds every copy current.
#[tokio::test]
async fn a_listing_of_several_pages_counts_every_object_once() {
    use futures::StreamExt;
    let s3 = s3().await;
    let src = bucket(&s3, "psrc").await;
    let dst = bucket(&s3, "pdst").await;
    const N: usize = 530;
    futures::stream::iter(0..N)
        .for_each_concurrent(16, |i| {
            let (s3, src) = (&s3, &src);
            async move { put(s3, src, &format!("p/{i:04}.txt"), data(100 + i, i as u64)).await }
        })
        .await;
    let tok = token(&["user"]).await;
    let job = create_job(
        &tok,
        json!({"job_name": "pages", "connector_type": "S3", "schedule": "daily",
               "connector_config": {"bucket_name": src}, "destination": {"bucket": dst, "prefix": ""},
               "concurrency": 16}),
    )
    .await;
    let run = ended(&job, &run_now(&tok, &job).await, Duration::from_secs(240)).await;
    assert_eq!(run["status"], "completed", "{run}");
    let bytes: u64 = (0..N).map(|i| 100 + i as u64).sum();
    assert_eq!(
        (
            run["counts"]["total"].as_u64(),
            run["counts"]["processed"].as_u64(),
            run["counts"]["finished"].as_u64(),
            run["counts"]["bytes"].as_u64()
        ),
        (Some(N as u64), Some(N as u64), Some(N as u64), Some(bytes)),
        "{run}"
    );
    assert_eq!(keys(&s3, &dst).await.len(), N);

    let (s, b) = patch_job(&tok, json!({"job_id": job, "action": "delta"})).await;
    assert_eq!(s, 200, "{b}");
    let run = ended(&job, &run_now(&tok, &job).await, Duration::from_secs(240)).await;
    assert_eq!(
        (
            run["counts"]["total"].as_u64(),
            run["counts"]["skipped"].as_u64(),
            run["counts"]["processed"].as_u64()
        ),
        (Some(N as u64), Some(N as u64), Some(0)),
        "{run}"
    );
}

/// An object's content headers and user metadata arrive with it on every copy path, as a server-side
/// CopyObject keeps them: CopyObject (small, same store), UploadPartCopy (big, same store), GET + PUT
/// (small, foreign store) and ranged GET + UploadPart (big, foreign store).
#[tokio::test]
async fn copies_keep_the_objects_content_headers_and_user_metadata() {
    async fn put_dressed(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .content_type("application/x-ferry-test")
            .cache_control("max-age=60")
            .content_disposition("attachment; filename=\"report.bin\"")
            .content_language("fr")
            .metadata("owner", "team-a")
            .metadata("origin", key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }
    async fn check(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, source_key: &str) {
        let h = s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("head {key}: {e:?}"));
        assert_eq!(h.content_type(), Some("application/x-ferry-test"), "{key}");
        assert_eq!(h.cache_control(), Some("max-age=60"), "{key}");
        assert_eq!(
            h.content_disposition(),
            Some("attachment; filename=\"report.bin\""),
            "{key}"
        );
        assert_eq!(h.content_language(), Some("fr"), "{key}");
        let meta = h.metadata().cloned().unwrap_or_default();
        assert_eq!(
            meta.get("owner").map(String::as_str),
            Some("team-a"),
            "{key}: {meta:?}"
        );
        assert_eq!(
            meta.get("origin").map(String::as_str),
            Some(source_key),
            "{key}: {meta:?}"
        );
    }

    /// Runs a job from `connector` (prefix `m/`) into `dst` under `prefix`, then checks every copy.
    async fn synced(
        tok: &str,
        connector: Value,
        dst: &str,
        prefix: &str,
        files: &[(&str, Vec<u8>)],
    ) {
        let s3 = s3().await;
        let job = create_job(
            tok,
            json!({"job_name": format!("meta {prefix}"), "connector_type": "S3", "schedule": "daily",
                   "chunk_size": 5 * MIB, "connector_config": connector,
                   "destination": {"bucket": dst, "prefix": prefix}}),
        )
        .await;
        let run = ended(&job, &run_now(tok, &job).await, Duration::from_secs(240)).await;
        assert_eq!(run["status"], "completed", "{run}");
        assert_eq!(run["counts"]["processed"], 2, "{run}");
        for (k, b) in files {
            let dest = format!("{prefix}/{}", k.strip_prefix("m/").unwrap());
            assert_eq!(md5(&get(&s3, dst, &dest).await), md5(b), "{dest}");
            check(&s3, dst, &dest, k).await;
        }
    }

    let s3 = s3().await;
    let tok = token(&["user"]).await;
    let files = [
        ("m/small.bin", data(30_000, 5)),
        ("m/big.bin", data(11 * MIB + 5, 6)),
    ];

    // Same store.
    let src = bucket(&s3, "msrc").await;
    let dst = bucket(&s3, "mdst").await;
    for (k, b) in &files {
        put_dressed(&s3, &src, k, b.clone()).await;
    }
    let same = json!({"bucket_name": src, "prefix": "m/"});
    synced(&tok, same, &dst, "c", &files).await;

    // Foreign store.
    let foreign = ForeignMoto::start().await;
    let far = foreign.client();
    foreign.bucket("meta-src").await;
    for (k, b) in &files {
        put_dressed(&far, "meta-src", k, b.clone()).await;
    }
    let fdst = bucket(&s3, "mfdst").await;
    let far_source = json!({"bucket_name": "meta-src", "prefix": "m/", "endpoint_url": foreign.url,
                            "region": "eu-west-1", "access_key_id": "k", "secret_access_key": "s"});
    synced(&tok, far_source, &fdst, "f", &files).await;
}
