//! bench-events: ferry's event ingest and time-range queries against named peers, in one run.
//!
//! 1. Ingest: a generated file of LINES lines (default 1,000,000; every 1,000th line is `null`) goes
//!    through worker-ingest's engine in-process (S3 stream from moto, parse, 5,000-row multi-row INSERTs
//!    each committed with its checkpoint, DynamoDB status, atomic swap). The peer is MariaDB's own bulk
//!    path: `LOAD DATA LOCAL INFILE` of the pre-cleaned file (the valid lines only) with the mariadb
//!    client into a copy of the events table (same columns and key) in the same MariaDB. Printed:
//!    lines/s of each and ferry / peer (goal >= 0.8).
//! 2. Query: p50/p99/max of `POST /events/query` through api-events' router in-process (JWT check,
//!    JSON in and out, SQL) over the file just loaded: random 1-minute windows (60 rows) and random
//!    1-hour windows (one 1,000-row page). Goal p99 < 10 ms.
//!
//! Rerun, with the local stack up (`make up`, or infra/local/scripts/run.sh up):
//!     source infra/local/scripts/env.sh && source $FERRY_STATE_DIR/function-env.sh
//!     cargo run --release -p bench-events [-- LINES [ROUNDS]]
//! (`make bench-events` does this and the 1 GiB streaming test.)

use anyhow::{Context, Result, bail};
use axum::body::Body;
use axum::http::Request;
use ferry_shared::auth::Tokens;
use ferry_shared::domain::user::User;
use ferry_shared::events_sql::EventsDb;
use ferry_shared::queue::Queue;
use ferry_shared::store::Store;
use ferry_shared::worker::RecordInfo;
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;
use worker_ingest::engine::{Engine, Outcome};

fn env(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set: source infra/local/scripts/env.sh and $FERRY_STATE_DIR/function-env.sh")
    })
}

/// (raw file, pre-cleaned file, valid lines)
fn generate(lines: usize) -> (Vec<u8>, Vec<u8>, usize) {
    let start = chrono::DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z").unwrap();
    let mut raw = Vec::with_capacity(lines * 90);
    let mut clean = Vec::with_capacity(lines * 90);
    let mut valid = 0;
    for i in 0..lines {
        if i % 1000 == 999 {
            raw.extend_from_slice(b"null\n");
            continue;
        }
        let t = start + chrono::Duration::seconds(i as i64);
        let line = format!(
            "{} user{i}@example.com {:08x}-0000-4000-8000-{:012x}\n",
            t.format("%Y-%m-%dT%H:%M:%SZ"),
            i,
            i
        );
        raw.extend_from_slice(line.as_bytes());
        clean.extend_from_slice(line.as_bytes());
        valid += 1;
    }
    (raw, clean, valid)
}

fn mariadb(sql: &str) -> Result<()> {
    let out = std::process::Command::new("mariadb")
        .args([
            "--no-defaults",
            "--local-infile=1",
            "-h127.0.0.1",
            &format!("-P{}", env("FERRY_MARIADB_PORT")?),
            "-uferry",
            "ferry",
            "-e",
            sql,
        ])
        .env("MYSQL_PWD", env("FERRY_MYSQL_PASSWORD")?)
        .output()
        .context("running the mariadb client")?;
    if !out.status.success() {
        bail!("mariadb: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let lines: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2);
    let aws = ferry_shared::aws::load().await;
    let s3 = ferry_shared::aws::s3_client(&aws);
    let db = EventsDb::from_secret(
        &aws_sdk_secretsmanager::Client::new(&aws),
        &env("EVENTS_DB_SECRET_ARN")?,
        4,
        false,
    )
    .await?;
    db.migrate().await?;
    let store = Store::new(aws_sdk_dynamodb::Client::new(&aws), env("TABLE_NAME")?);
    let queue = Queue::new(aws_sdk_sqs::Client::new(&aws), env("INGEST_QUEUE_URL")?);
    let engine = Engine {
        store: store.clone(),
        s3: s3.clone(),
        db: db.clone(),
        queue: queue.clone(),
        slice: Duration::from_secs(3600),
        batch_rows: 5000,
    };

    println!("generating {lines} lines ...");
    let (raw, clean, valid) = generate(lines);
    // A bucket without the ingest notification: only this process loads the file.
    let bucket = format!(
        "bench-events-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    s3.create_bucket().bucket(&bucket).send().await?;
    // One object (= filename) per round, so no round pays for deleting a previous round's rows.
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let keys: Vec<String> = (1..=rounds)
        .map(|r| format!("bench-{run}/{lines}-lines-{r}.txt"))
        .collect();
    for key in &keys {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(raw.clone().into())
            .send()
            .await?;
    }
    let dir = std::env::temp_dir().join(format!("bench-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let clean_path = dir.join("clean.txt");
    std::fs::write(&clean_path, &clean)?;
    mariadb("CREATE TABLE IF NOT EXISTS bench_peer_events LIKE events")?;

    let info = RecordInfo {
        message_id: "bench".into(),
        receive_count: 1,
    };
    let (mut best_ferry, mut best_peer) = (Duration::MAX, Duration::MAX);
    for (round, key) in keys.iter().enumerate().map(|(i, k)| (i + 1, k)) {
        let t = Instant::now();
        let outcome = engine
            .ingest(&bucket, key, None, &info)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let ferry = t.elapsed();
        if outcome != Outcome::Finished {
            bail!("ferry's ingest ended {outcome:?}");
        }
        let loaded = db.count_current(key).await?;
        if loaded != valid as u64 {
            bail!("ferry loaded {loaded} rows, expected {valid}");
        }

        mariadb("TRUNCATE TABLE bench_peer_events")?;
        let sql = format!(
            "SET @n := 0; LOAD DATA LOCAL INFILE '{}' INTO TABLE bench_peer_events \
             FIELDS TERMINATED BY ' ' LINES TERMINATED BY '\\n' (@ts, email, session_id) \
             SET load_id = 1, event_time = STR_TO_DATE(@ts, '%Y-%m-%dT%H:%i:%sZ'), seq = (@n := @n + 1)",
            clean_path.display()
        );
        let t = Instant::now();
        mariadb(&sql)?;
        let peer = t.elapsed();
        println!(
            "round {round}: ferry {:.2} s ({:.0} lines/s), LOAD DATA LOCAL INFILE {:.2} s ({:.0} lines/s)",
            ferry.as_secs_f64(),
            lines as f64 / ferry.as_secs_f64(),
            peer.as_secs_f64(),
            valid as f64 / peer.as_secs_f64()
        );
        best_ferry = best_ferry.min(ferry);
        best_peer = best_peer.min(peer);
    }
    mariadb("DROP TABLE bench_peer_events")?;
    std::fs::remove_dir_all(&dir).ok();
    let ferry_rate = lines as f64 / best_ferry.as_secs_f64();
    let peer_rate = valid as f64 / best_peer.as_secs_f64();
    println!(
        "INGEST best of {rounds}: ferry {ferry_rate:.0} lines/s, LOAD DATA LOCAL INFILE {peer_rate:.0} lines/s, ratio ferry/peer = {:.2} (goal >= 0.8)",
        ferry_rate / peer_rate
    );

    let key = keys.last().unwrap().clone();

    // ---------------------------------------------------------------- queries, at handler level
    let tokens = Arc::new(Tokens::new(b"bench-signing-key-bench-signing-key"));
    let token = tokens
        .issue(&User {
            username: "bench".into(),
            password_hash: String::new(),
            roles: vec!["user".into()],
            created_at: String::new(),
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .access_token;
    let router = api_events::routes::router(api_events::routes::AppState {
        store,
        tokens,
        queue,
        db,
    });
    let start = chrono::DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z").unwrap();
    let mut rng = rand::rng();
    for (label, window_secs, expect_rows) in [("1-minute", 60i64, 60usize), ("1-hour", 3600, 1000)]
    {
        let mut times = Vec::new();
        for i in 0..2200 {
            let from = start + chrono::Duration::seconds(rng.random_range(0..lines as i64 - 3600));
            let to = from + chrono::Duration::seconds(window_secs - 1);
            let body = serde_json::json!({"filename": key, "from": from.to_rfc3339(), "to": to.to_rfc3339()});
            let req = Request::post("/events/query")
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::from(body.to_string()))?;
            let t = Instant::now();
            let resp = router.clone().oneshot(req).await?;
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
            let took = t.elapsed();
            if status != 200 {
                bail!(
                    "query answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                );
            }
            let rows: serde_json::Value = serde_json::from_slice(&bytes)?;
            let n = rows.as_array().map(Vec::len).unwrap_or(0);
            // ~1 line in 1,000 is null, so a window holds its length minus at most a couple.
            if n + 2 < expect_rows.min(window_secs as usize) {
                bail!("a {label} window returned {n} rows");
            }
            if i >= 200 {
                times.push(took); // the first 200 warm the pool and caches
            }
        }
        times.sort();
        println!(
            "QUERY {label} windows (~{expect_rows} rows), {} requests: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (goal p99 < 10 ms)",
            times.len(),
            ms(percentile(&times, 0.50)),
            ms(percentile(&times, 0.99)),
            ms(*times.last().unwrap())
        );
    }
    // The rounds' rows are bench data: take them out of the events tables again.
    mariadb(&format!(
        "DELETE e FROM events e JOIN event_loads l ON l.load_id = e.load_id WHERE l.filename LIKE 'bench-{run}/%'; \
         DELETE FROM event_files WHERE filename LIKE 'bench-{run}/%'; \
         DELETE FROM event_loads WHERE filename LIKE 'bench-{run}/%'"
    ))?;
    println!(
        "machine: {} cores",
        std::thread::available_parallelism()?.get()
    );
    Ok(())
}
