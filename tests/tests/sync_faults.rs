//! Sync runs under faults: every message kind delivered twice (through watch + pump), and the worker
//! killed with SIGKILL again and again during multipart copies from a foreign store (the real binary
//! under a Lambda host of the test's own, see [`ferry_tests::lambda_host`]).

mod sync_common;

use ferry_shared::domain::sync::{ObjectRef, Side, Trigger};
use ferry_shared::messages::SyncMessage;
use ferry_tests::lambda_host::{HostedWorker, test_queue};
use ferry_tests::{bucket, env, token};
use serde_json::json;
use std::time::{Duration, Instant};
use sync_common::*;

const MIB: usize = 1024 * 1024;

async fn send_raw(messages: &[SyncMessage]) {
    let queue = ferry_shared::queue::Queue::new(
        aws_sdk_sqs::Client::new(&ferry_tests::aws().await),
        env("SYNC_QUEUE_URL"),
    );
    queue.send_all(messages).await.unwrap();
}

#[tokio::test]
async fn every_message_kind_delivered_twice_copies_and_counts_once() {
    let s3 = s3().await;
    let src = bucket(&s3, "dup-src").await;
    let dst = bucket(&s3, "dup-dst").await;
    let mut refs = Vec::new();
    let mut files = Vec::new();
    for i in 0..8 {
        files.push((format!("s/{i}.bin"), data(30_000 + i, i as u64)));
    }
    files.push(("s/big.bin".into(), data(11 * MIB, 99)));
    for (k, b) in &files {
        put(&s3, &src, k, b.clone()).await;
        refs.push(ObjectRef {
            key: k.clone(),
            size: b.len() as u64,
            etag: Some(format!("\"{}\"", md5(b))),
            last_modified: None,
        });
    }
    put(&s3, &dst, "gone.txt", b"stale".to_vec()).await;
    let tok = token(&["user"]).await;
    let job = create_job(
        &tok,
        json!({"job_name": "dups", "connector_type": "S3", "schedule": "daily", "action": "diff",
               "chunk_size": 5 * MIB, "connector_config": {"bucket_name": src},
               "destination": {"bucket": dst, "prefix": ""}}),
    )
    .await;
    let run_id = run_now(&tok, &job).await;
    // Second copies of every kind, racing the originals.
    let big = refs.last().unwrap().clone();
    let mut dups = vec![SyncMessage::StartRun {
        job_id: job.clone(),
        trigger: Trigger::Api,
        run_id: Some(run_id.clone()),
    }];
    for side in [Side::Source, Side::Destination] {
        dups.push(SyncMessage::ListPage {
            job_id: job.clone(),
            run_id: run_id.clone(),
            side,
            page: 0,
            token: None,
            hops: 0,
        });
    }
    dups.push(SyncMessage::CopyObjects {
        job_id: job.clone(),
        run_id: run_id.clone(),
        objects: refs.clone(),
        hops: 0,
        lease: None,
    });
    dups.push(SyncMessage::CopyParts {
        job_id: job.clone(),
        run_id: run_id.clone(),
        object: big.clone(),
        first: 1,
        last: 3,
        hops: 0,
        lease: None,
    });
    send_raw(&dups).await;
    send_raw(&dups).await;

    let run = ended(&job, &run_id, Duration::from_secs(240)).await;
    let bytes: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["counts"]["total"], 10, "{run}");
    assert_eq!(run["counts"]["processed"], 10, "{run}");
    assert_eq!(run["counts"]["deleted"], 1, "{run}");
    assert_eq!(run["counts"]["finished"], 10, "{run}");
    assert_eq!(run["counts"]["bytes"], bytes, "{run}");
    for o in objects(&job, &run_id).await {
        if o["operation"] == "copy" {
            assert_eq!(
                o["bytes_fetched"], o["object_size"],
                "each object copied exactly once: {o}"
            );
        }
    }
    for (k, b) in &files {
        assert_eq!(md5(&get(&s3, &dst, k).await), md5(b), "{k}");
    }
    assert!(!keys(&s3, &dst).await.contains(&"gone.txt".to_string()));

    // Late duplicates of a finished run change nothing.
    send_raw(&dups).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let again = run_status(&job, &run_id).await.unwrap();
    assert_eq!(again["counts"], run["counts"]);
}

/// worker-sync's own environment: its continuations go to the test's queue.
fn sync_env(queue_url: &str) -> Vec<(String, String)> {
    vec![("SYNC_QUEUE_URL".into(), queue_url.to_string())]
}

/// Starts a run of `job` the way a schedule firing does (a StartRun on `queue`); its run id.
async fn start_scheduled_run(queue: &ferry_shared::queue::Queue, job: &str) -> String {
    queue
        .send(&SyncMessage::StartRun {
            job_id: job.to_string(),
            trigger: Trigger::Schedule,
            run_id: None,
        })
        .await
        .unwrap();
    ferry_tests::eventually("the run to start", Duration::from_secs(120), || async {
        runs(job)
            .await
            .first()
            .and_then(|r| r["run_id"].as_str().map(String::from))
    })
    .await
}

/// Two instances (two worker-sync processes polling one queue) get the same object at the same time,
/// as SQS's at-least-once delivery or a listing page handed on twice makes happen: the one that
/// finds the other's lease sends its message back for later instead of copying, so every byte is
/// fetched once, the object is byte-identical and counted once.
#[tokio::test]
async fn two_instances_given_one_object_at_once_fetch_each_byte_once() {
    const CHUNK: u64 = 5 * MIB as u64;
    const SIZE: usize = 48 * MIB; // 10 parts, streamed through the worker from a foreign store
    let foreign = ForeignMoto::start().await;
    let far = foreign.client();
    foreign.bucket("lease-src").await;
    let body = data(SIZE, 4242);
    let sum = md5(&body);
    put(&far, "lease-src", "one.bin", body).await;
    let s3 = s3().await;
    let dst = bucket(&s3, "lease-dst").await;
    let tok = token(&["user"]).await;
    // concurrency 1: the copy takes a few seconds, parts one at a time.
    let job = create_job(
        &tok,
        json!({"job_name": "two instances", "connector_type": "S3", "schedule": "daily",
               "chunk_size": CHUNK, "concurrency": 1,
               "connector_config": {"bucket_name": "lease-src", "endpoint_url": foreign.url, "region": "eu-west-1",
                                    "access_key_id": "k", "secret_access_key": "s"},
               "destination": {"bucket": dst, "prefix": ""}}),
    )
    .await;
    let sqs = aws_sdk_sqs::Client::new(&ferry_tests::aws().await);
    let queue_url = test_queue(&sqs, &format!("lease-sync-{}", &job[..8.min(job.len())])).await;
    // One message per invocation, so the two copies below go one to each instance.
    let a = HostedWorker::start(
        &sqs,
        &queue_url,
        "worker-sync",
        "lease-test-worker-a",
        sync_env(&queue_url),
        1,
    )
    .await;
    let b = HostedWorker::start(
        &sqs,
        &queue_url,
        "worker-sync",
        "lease-test-worker-b",
        sync_env(&queue_url),
        1,
    )
    .await;
    let queue = ferry_shared::queue::Queue::new(sqs.clone(), queue_url.clone());
    let run_id = start_scheduled_run(&queue, &job).await;
    // As soon as one instance copies the object, the same work goes out twice more.
    let obj = ferry_tests::eventually("the copy to start", Duration::from_secs(120), || async {
        objects(&job, &run_id)
            .await
            .into_iter()
            .find(|o| o["status"] == "IN_PROGRESS")
    })
    .await;
    let object = ObjectRef {
        key: "one.bin".into(),
        size: SIZE as u64,
        etag: Some(format!("\"{sum}\"")),
        last_modified: None,
    };
    let dup = SyncMessage::CopyParts {
        job_id: job.clone(),
        run_id: run_id.clone(),
        object: object.clone(),
        first: 1,
        last: 10,
        hops: 0,
        lease: None,
    };
    queue.send_all(&[dup.clone(), dup]).await.unwrap();

    let run = ended(&job, &run_id, Duration::from_secs(240)).await;
    let logs = [a.log.clone(), b.log.clone()];
    a.stop().await;
    b.stop().await;
    // The duplicates really met the lease (not merely arrived after the copy had ended).
    let came_back: usize = logs
        .iter()
        .map(|l| {
            std::fs::read_to_string(l)
                .unwrap_or_default()
                .matches("comes back when the lease ends")
                .count()
        })
        .sum();
    assert!(came_back >= 1, "no delivery met a live lease: {logs:?}");
    let _ = sqs.delete_queue().queue_url(&queue_url).send().await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["counts"]["processed"], 1, "{run}");
    assert_eq!(run["counts"]["bytes"], SIZE as u64, "{run}");
    let objs = objects(&job, &run_id).await;
    assert_eq!(objs.len(), 1, "{objs:?}");
    assert_eq!(
        objs[0]["bytes_fetched"], SIZE as u64,
        "every byte fetched once though three deliveries ran (first seen: {obj})"
    );
    let got = get(&s3, &dst, "one.bin").await;
    assert_eq!((got.len(), md5(&got)), (SIZE, sum));
}

/// Waste so far: bytes requested from the source (counted before each request) that no checkpointed
/// part holds yet. With the worker dead it is exactly what a kill cost.
fn waste(objs: &[serde_json::Value]) -> u64 {
    objs.iter()
        .map(|o| o["bytes_fetched"].as_u64().unwrap() - o["last_position"].as_u64().unwrap())
        .sum()
}

fn parts_done(objs: &[serde_json::Value]) -> u64 {
    objs.iter()
        .map(|o| o["parts_done"].as_u64().unwrap_or(0))
        .sum()
}

/// The REAL worker-sync binary runs under [`LambdaHost`] (Invoke + Runtime API, one process at a time)
/// fed by ferry-local's own SQS loop from a queue of this test's own, since cargo lambda watch 1.9 does
/// not restart a killed function. The job comes from the API; its run starts the way a schedule
/// firing starts one (a StartRun on the queue). The test kills the process with SIGKILL at random
/// moments while parts are being copied (ranged GET from a second moto + UploadPart), reads the
/// engine's counters while it is dead, and lets the host start a new one; the killed invocation fails
/// (Runtime.ExitError) and its messages are redelivered.
#[tokio::test]
async fn kill_9_during_multipart_copies_loses_at_most_one_chunk_per_kill() {
    const CHUNK: u64 = 5 * MIB as u64;
    const OBJECTS: u64 = 4;
    const SIZE: usize = 52 * MIB; // 4 x 52 MiB = 208 MiB, 11 parts each (10 of 5 MiB + 2 MiB)
    let foreign = ForeignMoto::start().await;
    let far = foreign.client();
    foreign.bucket("kill-src").await;
    let mut sums = Vec::new();
    for i in 0..OBJECTS {
        let body = data(SIZE, 500 + i);
        sums.push((format!("obj-{i}.bin"), md5(&body), body.len() as u64));
        put(&far, "kill-src", &format!("obj-{i}.bin"), body).await;
    }
    let s3 = s3().await;
    let dst = bucket(&s3, "kill-dst").await;
    let tok = token(&["user"]).await;
    // concurrency 1: one part in flight at a time, so one kill can cost at most one chunk.
    let job = create_job(
        &tok,
        json!({"job_name": "kill -9", "connector_type": "S3", "schedule": "daily",
               "chunk_size": CHUNK, "concurrency": 1, "max_attempts": 20,
               "connector_config": {"bucket_name": "kill-src", "endpoint_url": foreign.url, "region": "eu-west-1",
                                    "access_key_id": "k", "secret_access_key": "s"},
               "destination": {"bucket": dst, "prefix": "k"}}),
    )
    .await;

    // The worker's own queue, and the worker under the host.
    let sqs = aws_sdk_sqs::Client::new(&ferry_tests::aws().await);
    let queue_url = test_queue(&sqs, &format!("kill-sync-{}", &job[..8.min(job.len())])).await;
    let worker = HostedWorker::start(
        &sqs,
        &queue_url,
        "worker-sync",
        "kill-test-worker",
        sync_env(&queue_url),
        10,
    )
    .await;
    let host = &worker.host;
    let queue = ferry_shared::queue::Queue::new(sqs.clone(), queue_url.clone());
    let run_id = start_scheduled_run(&queue, &job).await;

    let started = Instant::now();
    let (mut kills, mut parts_at_last_kill, mut last_waste) = (0u64, 0u64, 0u64);
    let mut per_kill = Vec::new();
    let mut part_ms = 300u64;
    let mut last_progress = (0u64, Instant::now());
    let run = loop {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the run did not end within 10 minutes ({kills} kills)"
        );
        let run = run_status(&job, &run_id).await.unwrap();
        if run["status"] != "running" && run["status"] != "starting" {
            break run;
        }
        let parts = parts_done(&objects(&job, &run_id).await);
        if parts > last_progress.0 {
            // A running estimate of one part's copy time, to aim the kills inside a part.
            let ms = last_progress.1.elapsed().as_millis() as u64 / (parts - last_progress.0);
            part_ms = (part_ms + ms.clamp(20, 5_000)) / 2;
            last_progress = (parts, Instant::now());
        }
        // Kill once the worker checkpointed a part since the last kill, at a random point of the next.
        if parts > parts_at_last_kill && host.busy() > 0 {
            tokio::time::sleep(Duration::from_millis(rand_ms(part_ms))).await;
            if host.busy() > 0 && host.kill9().await.is_some() {
                kills += 1;
                let objs = objects(&job, &run_id).await;
                let w = waste(&objs);
                per_kill.push(w - last_waste);
                last_waste = w;
                parts_at_last_kill = parts_done(&objs);
                last_progress = (parts_at_last_kill, Instant::now());
            }
            host.release();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    worker.stop().await;
    let _ = sqs.delete_queue().queue_url(&queue_url).send().await;

    assert_eq!(run["status"], "completed", "{run}");
    assert!(
        kills >= 20,
        "only {kills} kills landed before the run ended"
    );
    let objs = objects(&job, &run_id).await;
    let (mut fetched, mut size) = (0u64, 0u64);
    for o in &objs {
        assert_eq!(o["status"], "PROCESSED", "{o}");
        fetched += o["bytes_fetched"].as_u64().unwrap();
        size += o["object_size"].as_u64().unwrap();
    }
    assert_eq!(size, OBJECTS * SIZE as u64);
    let refetched = fetched - size;
    for (i, w) in per_kill.iter().enumerate() {
        assert!(
            *w <= CHUNK,
            "kill {} cost {w} bytes fetched again, more than one {CHUNK}-byte chunk ({per_kill:?})",
            i + 1
        );
    }
    // Nothing else was fetched twice: all the waste is the kills'.
    assert_eq!(refetched, last_waste, "per kill: {per_kill:?}");
    for (k, sum, len) in &sums {
        let got = get(&s3, &dst, &format!("k/{k}")).await;
        assert_eq!((got.len() as u64, &md5(&got)), (*len, sum), "{k}");
    }
    println!(
        "kill test: {kills} kills over {} MiB, {refetched} bytes fetched again ({:.2} MiB per kill, max {:.2} MiB), {:?}",
        size / MIB as u64,
        refetched as f64 / kills as f64 / MIB as f64,
        *per_kill.iter().max().unwrap() as f64 / MIB as f64,
        started.elapsed()
    );
}

fn rand_ms(max: u64) -> u64 {
    rand::random::<u64>() % max.max(1)
}
