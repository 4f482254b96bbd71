//! Events end to end: files dropped in the ingest bucket (S3 -> SQS -> the pump -> worker-ingest ->
//! MySQL + DynamoDB) or requested through `POST /events/ingest`, then queried over HTTP; atomic
//! re-ingest under concurrent queries, continuation across invocations, and a worker killed mid-file.

use ferry_shared::events_sql::EventsDb;
use ferry_shared::queue::Queue;
use ferry_shared::store::Store;
use ferry_shared::worker::RecordInfo;
use ferry_tests::{base_url, call, env, eventually, http, token};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use worker_ingest::engine::{Engine, Outcome};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/rokt");

async fn s3() -> aws_sdk_s3::Client {
    ferry_shared::aws::s3_client(&ferry_tests::aws().await)
}

fn ingest_bucket() -> String {
    ferry_local::state::State::load(&ferry_local::state::state_dir())
        .expect("resources.json of the local stack")
        .get("IngestBucket")
        .expect("IngestBucket provisioned")
        .reference
        .clone()
}

async fn db() -> EventsDb {
    let aws = ferry_tests::aws().await;
    EventsDb::from_secret(
        &aws_sdk_secretsmanager::Client::new(&aws),
        &env("EVENTS_DB_SECRET_ARN"),
        4,
        false,
    )
    .await
    .expect("events database from its secret")
}

fn unique(name: &str) -> String {
    format!(
        "t-{}/{name}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(format!("{SAMPLES}/{name}")).unwrap()
}

/// `lines` valid event lines, one second apart from 2000-01-01T00:00:00Z.
pub fn generate(lines: usize) -> Vec<u8> {
    let start = chrono::DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z").unwrap();
    let mut out = Vec::with_capacity(lines * 90);
    for i in 0..lines {
        let t = start + chrono::Duration::seconds(i as i64);
        out.extend_from_slice(
            format!(
                "{} user{i}@example.com {:08x}-0000-4000-8000-{:012x}\n",
                t.format("%Y-%m-%dT%H:%M:%SZ"),
                i,
                i
            )
            .as_bytes(),
        );
    }
    out
}

async fn put(key: &str, body: Vec<u8>) {
    s3().await
        .put_object()
        .bucket(ingest_bucket())
        .key(key)
        .body(body.into())
        .send()
        .await
        .expect("put object");
}

async fn status(name: &str) -> (u16, Value) {
    call(http().get(format!(
        "{}/events/files/{}",
        base_url(),
        name.replace('/', "%2F").replace(' ', "%20")
    )))
    .await
}

/// Waits until `name` is loaded by a load other than `not_load`.
async fn loaded(name: &str, not_load: Option<u64>, timeout: Duration) -> Value {
    eventually(&format!("{name} loaded"), timeout, || async {
        let (code, body) = status(name).await;
        (code == 200
            && body["status"] == "loaded"
            && body["checkpoint"]["load_id"].as_u64() != not_load)
            .then_some(body)
    })
    .await
}

async fn request_ingest(tok: &str, key: &str) {
    let (code, body) = call(
        http()
            .post(format!("{}/events/ingest", base_url()))
            .bearer_auth(tok)
            .json(&json!({"bucket": ingest_bucket(), "key": key})),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["status"], "queued");
}

/// POSTs a query to `path`; returns (status, body, next cursor).
/// One query through cargo lambda watch. A 500 that is not ferry's (no `{"error": …}` body, and the
/// function logged nothing) comes from watch itself: with several instances per function it now and
/// then answers 500 in ~90 ms while its instance pool starts or reaps an instance (seen twice in this
/// test's page loop on 2026-12-02). That request is sent again, at most twice; a 500 of ferry's own
/// fails the test as before. Likewise a query with no answer after 60 s (once, in CI, one hung for
/// the client's whole 300 s): on AWS, API Gateway would have answered 504 after 30 s (the function's
/// timeout is 29 s), so a longer wait is watch's, and the query is sent again, at most twice.
async fn query(path: &str, tok: &str, body: Value) -> (u16, Value, Option<String>) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sent = http()
            .post(format!("{}{path}", base_url()))
            .bearer_auth(tok)
            .timeout(Duration::from_secs(60))
            .json(&body)
            .send()
            .await;
        let resp = match sent {
            Err(e) if e.is_timeout() && attempt < 3 => {
                eprintln!("{path}: no answer from cargo lambda watch in 60 s; sending it again");
                continue;
            }
            other => other.unwrap(),
        };
        let code = resp.status().as_u16();
        let cursor = resp
            .headers()
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_string());
        let got = resp.json().await.unwrap_or(Value::Null);
        if code == 500 && got.get("error").is_none() && attempt < 3 {
            eprintln!("{path}: a 500 from cargo lambda watch, not ferry ({got}); sending it again");
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        return (code, got, cursor);
    }
}

#[tokio::test]
async fn sample2_with_a_bom_loads_998_lines_and_reports_3_rejections_with_reasons() {
    let name = unique("sample2.txt");
    put(&name, sample("sample2.txt")).await;
    let st = loaded(&name, None, Duration::from_secs(240)).await;
    assert_eq!(st["accepted"], 998, "{st}");
    assert_eq!(st["rejected"], 3, "{st}");
    assert_eq!(
        st["rejected_by_reason"],
        json!({"bad_timestamp": 2, "null": 1})
    );
    assert_eq!(
        st["rejected_samples"],
        json!([
            {"line": 487, "reason": "bad_timestamp"},
            {"line": 536, "reason": "bad_timestamp"},
            {"line": 649, "reason": "null"}
        ])
    );
    assert!(st["timings"]["duration_ms"].is_u64(), "{st}");
    // The first line, behind the BOM, is an event like any other.
    let tok = token(&["user"]).await;
    let (code, rows, _) = query(
        "/events/query",
        &tok,
        json!({"filename": name, "from": "2000-01-01T13:38:29Z", "to": "2000-01-01T13:38:29Z"}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        rows,
        json!([{"eventTime": "2000-01-01T13:38:29Z", "email": "romaine@carrollschmidt.ca",
                "sessionId": "b132d3f4-3e3e-4526-8860-bd64a8654327"}])
    );
    assert_eq!(db().await.count_current(&name).await.unwrap(), 998);
    // And the listing shows it.
    let (_, list) = call(http().get(format!("{}/events/files?limit=200", base_url()))).await;
    assert!(
        list["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["filename"] == name.as_str())
    );
}

#[tokio::test]
async fn sample0_time_range_query_returns_three_events_in_order_with_offsets_pages_and_alias() {
    let tok = token(&["user"]).await;
    let name = unique("sample 0.txt");
    // Uploaded under a key with a space, requested explicitly (the S3 notification also fires).
    s3().await
        .put_object()
        .bucket(ingest_bucket())
        .key(&name)
        .body(sample("sample0.txt").into())
        .send()
        .await
        .unwrap();
    request_ingest(&tok, &name).await;
    let st = loaded(&name, None, Duration::from_secs(240)).await;
    assert_eq!(st["accepted"], 5, "{st}");

    let expected = json!([
        {"eventTime": "2000-01-01T23:59:04Z", "email": "abner@bartolettihills.com", "sessionId": "b3daf720-6112-4a49-9895-62dda13a2932"},
        {"eventTime": "2000-01-02T20:59:05Z", "email": "janis_nienow@johnson.name", "sessionId": "1f90471c-adc3-4daa-9a6d-ff9d184b7a61"},
        {"eventTime": "2000-01-02T21:00:55Z", "email": "casey.eichmann@hayes.us", "sessionId": "56cc8832-9f9d-4dc5-b340-8dabc5107430"}
    ]);
    let body =
        json!({"filename": name, "from": "2000-01-01T18:00:00Z", "to": "2000-01-03T01:00:00Z"});
    let (code, rows, cursor) = query("/events/query", &tok, body.clone()).await;
    assert_eq!(code, 200, "{rows}");
    assert_eq!(rows, expected);
    assert_eq!(cursor, None);
    // The original's route, same body, same answer.
    assert_eq!(query("/", &tok, body).await.1, expected);
    // Offsets are honoured (the same instants written in +02:00 and -05:00).
    let (_, shifted, _) = query(
        "/events/query",
        &tok,
        json!({"filename": name, "from": "2000-01-01T20:00:00+02:00", "to": "2000-01-02T20:00:00-05:00"}),
    )
    .await;
    assert_eq!(shifted, expected);
    // Bounds are inclusive.
    let (_, exact, _) = query(
        "/events/query",
        &tok,
        json!({"filename": name, "from": "2000-01-01T23:59:04Z", "to": "2000-01-02T21:00:55Z"}),
    )
    .await;
    assert_eq!(exact, expected);
    // Pages: two, then one, following the cursor.
    let (_, first, cursor) = query(
        "/events/query",
        &tok,
        json!({"filename": name, "from": "2000-01-01T18:00:00Z", "to": "2000-01-03T01:00:00Z", "limit": 2}),
    )
    .await;
    assert_eq!(first, json!(expected.as_array().unwrap()[..2]));
    let cursor = cursor.expect("a cursor when more rows follow");
    let (_, second, last) = query(
        "/events/query",
        &tok,
        json!({"filename": name, "from": "2000-01-01T18:00:00Z", "to": "2000-01-03T01:00:00Z", "limit": 2, "cursor": cursor}),
    )
    .await;
    assert_eq!(second, json!(expected.as_array().unwrap()[2..]));
    assert_eq!(last, None);
    // Nothing in range, or an unknown file: an empty list, not an error.
    for f in [name.as_str(), "no-such-file.txt"] {
        let (code, none, _) = query(
            "/events/query",
            &tok,
            json!({"filename": f, "from": "1999-01-01T00:00:00Z", "to": "1999-12-31T23:59:59Z"}),
        )
        .await;
        assert_eq!((code, none), (200, json!([])));
    }
}

#[tokio::test]
async fn bad_queries_are_400_naming_the_field_and_queries_need_a_token() {
    let tok = token(&["user"]).await;
    for (body, field) in [
        (
            json!({"filename": "f", "from": "2000-01-32T00:00:00Z", "to": "2000-02-01T00:00:00Z"}),
            "from",
        ),
        (
            json!({"filename": "f", "from": "2000-01-01T00:00:00Z", "to": "tomorrow"}),
            "to",
        ),
        (
            json!({"filename": "f", "from": "2000-01-03T00:00:00Z", "to": "2000-01-01T00:00:00Z"}),
            "from",
        ),
        (
            json!({"from": "2000-01-01T00:00:00Z", "to": "2000-01-02T00:00:00Z"}),
            "filename",
        ),
        (
            json!({"filename": "f", "from": "2000-01-01T00:00:00Z"}),
            "to",
        ),
        (
            json!({"filename": "f", "from": "2000-01-01T00:00:00Z", "to": "2000-01-02T00:00:00Z", "cursor": "x"}),
            "cursor",
        ),
    ] {
        for path in ["/events/query", "/"] {
            let (code, err, _) = query(path, &tok, body.clone()).await;
            assert_eq!(code, 400, "{path} {body}: {err}");
            assert_eq!(err["error"]["field"], field, "{path} {body}: {err}");
        }
    }
    let (code, err) = call(http().post(format!("{}/events/query", base_url())).json(
        &json!({"filename": "f", "from": "2000-01-01T00:00:00Z", "to": "2000-01-02T00:00:00Z"}),
    ))
    .await;
    assert_eq!(code, 401, "{err}");
    let (code, _) = call(
        http()
            .post(format!("{}/events/ingest", base_url()))
            .json(&json!({"bucket": "b", "key": "k"})),
    )
    .await;
    assert_eq!(code, 401);
    let (code, err) = status("never-ingested.txt").await;
    assert_eq!(code, 404, "{err}");
}

#[tokio::test]
async fn reingest_replaces_a_file_atomically_while_queries_run_and_leaves_other_files_alone() {
    let tok = token(&["user"]).await;
    let db = db().await;
    let other = unique("other.txt");
    put(&other, sample("sample1.txt")).await;
    loaded(&other, None, Duration::from_secs(240)).await;
    let other_count = db.count_current(&other).await.unwrap();
    assert_eq!(other_count, 1000);

    const N: usize = 200_000;
    let name = unique("big.txt");
    put(&name, generate(N)).await;
    let first = loaded(&name, None, Duration::from_secs(300)).await;
    assert_eq!(first["accepted"], N as u64);
    let first_load = first["checkpoint"]["load_id"].as_u64().unwrap();

    // Readers count the file's rows (one statement = one snapshot) the whole time the re-ingest runs.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (db, name, stop) = (db.clone(), name.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    seen.push(db.count_current(&name).await.unwrap());
                }
                seen
            })
        })
        .collect();
    request_ingest(&tok, &name).await;
    let second = loaded(&name, Some(first_load), Duration::from_secs(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut observations = 0;
    for r in readers {
        let seen = r.await.unwrap();
        observations += seen.len();
        assert!(
            seen.iter().all(|&c| c == N as u64),
            "a reader saw a partial or doubled file: {:?}",
            seen.iter()
                .filter(|&&c| c != N as u64)
                .take(5)
                .collect::<Vec<_>>()
        );
    }
    assert!(observations > 10, "the readers barely ran ({observations})");
    assert_eq!(second["accepted"], N as u64);
    assert_eq!(db.count_current(&name).await.unwrap(), N as u64);
    // The replaced load's rows are gone, not just hidden.
    let all_rows: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE load_id IN (SELECT load_id FROM event_loads WHERE filename = ?)",
    )
    .bind(&name)
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(all_rows, N as i64);
    assert_eq!(db.count_current(&other).await.unwrap(), other_count);
    // A query over the whole range pages through exactly N rows.
    let mut total = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({"filename": name, "from": "2000-01-01T00:00:00Z", "to": "2001-01-01T00:00:00Z", "limit": 10000});
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let (code, rows, next) = query("/events/query", &tok, body).await;
        assert_eq!(code, 200);
        total += rows.as_array().unwrap().len();
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(total, N);
}

/// A bucket without the ingest notification, so only the messages a test sends start loads.
async fn quiet_bucket_with(key: &str, body: Vec<u8>) -> String {
    let s3 = s3().await;
    let bucket = ferry_tests::bucket(&s3, "events").await;
    s3.put_object()
        .bucket(&bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap();
    bucket
}

async fn engine(slice: Duration, batch_rows: usize) -> Engine {
    let aws = ferry_tests::aws().await;
    Engine {
        store: Store::new(aws_sdk_dynamodb::Client::new(&aws), env("TABLE_NAME")),
        s3: s3().await,
        db: db().await,
        queue: Queue::new(aws_sdk_sqs::Client::new(&aws), env("INGEST_QUEUE_URL")),
        slice,
        batch_rows,
    }
}

fn record_info() -> RecordInfo {
    RecordInfo {
        message_id: "test".into(),
        receive_count: 1,
    }
}

#[tokio::test]
async fn a_load_longer_than_its_time_slice_continues_from_its_checkpoint_in_the_next_message() {
    let name = unique("sliced.txt");
    const N: usize = 30_000;
    let mut body = generate(N);
    body.extend_from_slice(b"null\n");
    let bucket = quiet_bucket_with(&name, body).await;
    // The first slice runs here, in-process, with a zero time slice: one batch, then a continuation
    // message to the real ingest queue, which the stack's worker picks up and finishes.
    let engine = engine(Duration::ZERO, 1000).await;
    let outcome = engine
        .ingest(&bucket, &name, None, &record_info())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Continued);
    let st = loaded(&name, None, Duration::from_secs(240)).await;
    assert_eq!(st["accepted"], N as u64, "{st}");
    assert_eq!(st["rejected"], 1, "{st}");
    assert!(st["timings"]["invocations"].as_u64().unwrap() >= 2, "{st}");
    assert_eq!(
        engine.db.count_current(&name).await.unwrap(),
        N as u64,
        "no line lost or loaded twice across the slices"
    );
}

/// Not a test on its own: the worker process that the kill test starts and kills (`EVENTS_KILL_ME`
/// names bucket/key). It runs the worker's engine on one ingest message, as the Lambda would.
#[tokio::test]
#[ignore]
async fn kill_target_ingest_worker() {
    let Ok(target) = std::env::var("EVENTS_KILL_ME") else {
        return;
    };
    let (bucket, key) = target.split_once(' ').unwrap();
    engine(Duration::from_secs(600), 5000)
        .await
        .ingest(bucket, key, None, &record_info())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_worker_killed_mid_file_resumes_from_its_checkpoint_and_ends_with_the_exact_count() {
    const N: usize = 1_000_000;
    let name = unique("killed.txt");
    let bucket = quiet_bucket_with(&name, generate(N)).await;
    // A worker process (this test binary running the engine) takes the message...
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill_target_ingest_worker",
            "--ignored",
            "--nocapture",
        ])
        .env("EVENTS_KILL_ME", format!("{bucket} {name}"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // ...and is killed with SIGKILL once some batches are committed, far from all of them.
    let st = eventually(
        "the load to be under way",
        Duration::from_secs(240),
        || async {
            let (_, st) = status(&name).await;
            let rows = st["checkpoint"]["rows_loaded"].as_u64().unwrap_or(0);
            (st["status"] == "loading" && rows > 0).then_some(st)
        },
    )
    .await;
    std::process::Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    let exit = child.wait().unwrap();
    assert!(!exit.success(), "the worker finished before it was killed");
    let load_id = st["checkpoint"]["load_id"].as_u64().unwrap();
    let at_kill = db().await.load(load_id).await.unwrap().unwrap();
    assert!(
        at_kill.is_loading() && at_kill.accepted < N as u64,
        "{at_kill:?}"
    );
    // The same message again (what SQS does after the visibility timeout), to the stack's worker.
    let aws = ferry_tests::aws().await;
    Queue::new(aws_sdk_sqs::Client::new(&aws), env("INGEST_QUEUE_URL"))
        .send(&ferry_shared::messages::IngestRequest::Ingest {
            bucket: bucket.clone(),
            key: name.clone(),
        })
        .await
        .unwrap();
    let done = loaded(&name, None, Duration::from_secs(600)).await;
    assert_eq!(done["accepted"], N as u64, "{done}");
    assert_eq!(
        done["checkpoint"]["load_id"].as_u64(),
        Some(load_id),
        "the killed load was resumed, not restarted: {done}"
    );
    assert!(
        done["timings"]["invocations"].as_u64().unwrap() >= 2,
        "{done}"
    );
    assert_eq!(db().await.count_current(&name).await.unwrap(), N as u64);
}

/// The pids of this stack's worker-ingest processes (other stacks run the same binary).
fn my_workers() -> Vec<u32> {
    let mine = format!("AWS_ENDPOINT_URL={}", env("AWS_ENDPOINT_URL"));
    let out = std::process::Command::new("pgrep")
        .args(["-f", "target/debug/worker-ingest"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|e| e.split(|b| *b == 0).any(|kv| kv == mine.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// Peak RSS (VmHWM) of this stack's worker-ingest, in KiB.
fn worker_peak_rss_kib() -> Option<u64> {
    let pid = *my_workers().first()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// 1 GiB (about 12.6M lines) through the stack's worker; prints the worker's peak RSS. Several minutes
/// on 2 cores, so not in the default run: `make bench-events` (or `cargo test -p ferry-tests --test
/// events_e2e -- --ignored`).
#[tokio::test]
#[ignore]
async fn a_1_gib_file_streams_through_the_worker_with_bounded_memory() {
    let line_len = generate(1)[..].len();
    let lines = (1usize << 30) / line_len + 1;
    let body = generate(lines);
    assert!(body.len() >= 1 << 30);
    let name = unique("one-gib.txt");
    let size = body.len();
    put(&name, body).await;
    let started = std::time::Instant::now();
    let done = loaded(&name, None, Duration::from_secs(3600)).await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(done["accepted"], lines as u64, "{done}");
    let rss = worker_peak_rss_kib().expect("worker pid");
    println!(
        "1 GiB ingest: {size} bytes, {lines} lines in {secs:.1} s ({:.0} lines/s, {} invocations); worker peak RSS {} MiB",
        lines as f64 / secs,
        done["timings"]["invocations"],
        rss / 1024
    );
    assert!(
        rss < 256 * 1024,
        "worker peak RSS {rss} KiB: the file is not streamed"
    );
}

/// A real MariaDB deadlock is what `commit_batch` writes again: two transactions taking two rows in
/// opposite orders; the one the server rolls back is recognised, a plain error is not.
#[tokio::test]
async fn a_mariadb_deadlock_is_recognised_as_a_lock_conflict() {
    use ferry_shared::events_sql::is_lock_conflict;
    let db = db().await;
    let pool = db.pool();
    let table = format!("lock_probe_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id INT PRIMARY KEY, n INT NOT NULL) ENGINE = InnoDB"
    )))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} VALUES (1, 0), (2, 0)"
    )))
    .execute(pool)
    .await
    .unwrap();
    let take = |first: i32, second: i32| {
        let table = table.clone();
        async move {
            let mut tx = pool.begin().await?;
            let update = format!("UPDATE {table} SET n = n + 1 WHERE id = ?");
            sqlx::query(sqlx::AssertSqlSafe(update.clone()))
                .bind(first)
                .execute(&mut *tx)
                .await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            sqlx::query(sqlx::AssertSqlSafe(update))
                .bind(second)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
    };
    let (a, b) = tokio::join!(take(1, 2), take(2, 1));
    let failed: Vec<sqlx::Error> = [a, b].into_iter().filter_map(Result::err).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(is_lock_conflict(&failed[0]), "{:?}", failed[0]);
    let plain = sqlx::query("SELECT * FROM no_such_table_here")
        .execute(pool)
        .await
        .unwrap_err();
    assert!(!is_lock_conflict(&plain), "{plain:?}");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(pool)
        .await
        .unwrap();
}
