//! Loaders in operation, end to end through watch + the pump against MariaDB: a PATCH of a running
//! loader's rate and mix takes effect (op counts per kind follow the new mix, ops/s fall to the new
//! limit), and a loader's state survives a restart of every ferry process (cargo lambda watch and the
//! pump, via `run.sh restart-functions`): it goes on from its saved tick and counts.
//!
//! The two tests take one lock: the restart takes the functions away for a while, which would fail the
//! other test's requests if they ran at the same time.

use ferry_shared::domain::loader::{Loader, Phase, Target};
use ferry_shared::keys::Key;
use ferry_shared::loaders::Creds;
use ferry_shared::loaders::mysql::Mysql;
use ferry_tests::{base_url, call, env, eventually, http, store, token};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(240);
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn uniq(p: &str) -> String {
    format!("{p}_{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

fn mysql_body(db: &str, target: u64, buffer: u64) -> Value {
    json!({
        "host": "127.0.0.1", "port": env("FERRY_MARIADB_PORT"), "username": "ferry",
        "password": env("FERRY_MYSQL_PASSWORD"), "database_name": db, "table_name": "hotels",
        "init_config": true, "target_num_docs": target, "num_buffer": buffer,
        "table_columns": "id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255), address VARCHAR(255), city VARCHAR(255), mutated BIGINT"
    })
}

async fn mysql(db: &str) -> Mysql {
    mysql_table(db, "hotels").await
}

async fn mysql_table(db: &str, table: &str) -> Mysql {
    let t = Target {
        host: Some("127.0.0.1".into()),
        port: Some(env("FERRY_MARIADB_PORT").parse().unwrap()),
        username: Some("ferry".into()),
        ..Target::default()
    };
    let creds = Creds {
        password: Some(env("FERRY_MYSQL_PASSWORD")),
        ..Creds::default()
    };
    Mysql::connect(&t, &creds, db, table, 1).await.unwrap()
}

async fn drop_database(db: &str) {
    let m = mysql(db).await;
    let _ = m.drop_database().await;
}

async fn send(req: reqwest::RequestBuilder, tok: &str, body: Value) -> (u16, Value) {
    call(req.bearer_auth(tok).json(&body)).await
}

async fn post(tok: &str, path: &str, body: Value) -> (u16, Value) {
    send(http().post(format!("{}{path}", base_url())), tok, body).await
}

async fn patch(tok: &str, id: &str, body: Value) -> (u16, Value) {
    send(
        http().patch(format!("{}/loaders/{id}", base_url())),
        tok,
        body,
    )
    .await
}

async fn view(id: &str) -> Value {
    let (s, b) = call(http().get(format!("{}/loaders/{id}", base_url()))).await;
    assert_eq!(s, 200, "{b}");
    b
}

async fn stored(id: &str) -> Loader {
    store()
        .await
        .get::<Loader>(&Key::loader(id))
        .await
        .unwrap()
        .unwrap()
        .value
}

/// Waits until the stored loader has finished tick `tick` (its tick is past it) and returns it.
async fn past_tick(id: &str, tick: u64, wait: Duration) -> Loader {
    eventually(&format!("loader {id} past tick {tick}"), wait, || async {
        let l = stored(id).await;
        assert!(l.phase.is_active(), "loader left its run: {l:?}");
        (l.tick > tick).then_some(l)
    })
    .await
}

fn secs_between(a: &Loader, b: &Loader) -> f64 {
    let t = |l: &Loader| chrono::DateTime::parse_from_rfc3339(&l.updated_at).unwrap();
    (t(b) - t(a)).num_milliseconds() as f64 / 1000.0
}

#[tokio::test]
async fn patch_changes_the_rate_and_mix_of_a_running_loader_and_the_op_counts_follow() {
    let _one = ONE_AT_A_TIME.lock().await;
    let tok = token(&["user"]).await;
    let db = uniq("db");
    let mut body = mysql_body(&db, 1000, 100);
    body["rate_limit"] = json!(100);
    let (s, b) = post(&tok, "/mysql/start_loader", body).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["rate_limit"], 100);
    let id = b["loader_id"].as_str().unwrap().to_string();
    eventually("loader in crud", WAIT, || async {
        let l = view(&id).await;
        assert_ne!(l["phase"], "failed", "{l}");
        (l["phase"] == "crud").then_some(())
    })
    .await;
    // One whole slice at the first setting: all three kinds at about 100 ops/s.
    let first = stored(&id).await;
    let before = past_tick(&id, first.tick, WAIT).await;
    let before = past_tick(&id, before.tick, WAIT).await;
    assert!(before.progress.ops.updated > 0, "{:?}", before.progress);
    let fast = before.progress.ops_per_sec;
    assert!(fast <= 100.0 * 1.25, "the first limit held: {fast} ops/s");

    // Bad patches: 4xx with the field, nothing changed.
    let (s, b) = patch(&tok, &id, json!({"rate_limit": 0})).await;
    assert!((400..500).contains(&s), "{s} {b}");
    let (s, b) = patch(
        &tok,
        &id,
        json!({"mix": {"insert": 0, "update": 0, "delete": 0}}),
    )
    .await;
    assert!((400..500).contains(&s), "{s} {b}");
    let (s, _) = call(
        http()
            .patch(format!("{}/loaders/{id}", base_url()))
            .json(&json!({"rate_limit": 5})),
    )
    .await;
    assert_eq!(s, 401, "PATCH needs a token");
    let (s, _) = patch(&tok, "nope", json!({"rate_limit": 5})).await;
    assert_eq!(s, 404);

    // 10 ops/s, updates only.
    let (s, b) = patch(
        &tok,
        &id,
        json!({"rate_limit": 10, "mix": {"insert": 0, "update": 1, "delete": 0}}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["rate_limit"], 10);
    assert_eq!(b["mix"], json!({"insert": 0, "update": 1, "delete": 0}));
    let at_patch = stored(&id).await;
    // The slice running during the PATCH may have started under the old setting; from the next one on
    // every op is under the new one. Measure over two whole slices after that.
    let a = past_tick(&id, at_patch.tick, WAIT).await;
    let b = past_tick(&id, a.tick + 1, WAIT).await;
    let (oa, ob) = (a.progress.ops, b.progress.ops);
    assert_eq!(
        ob.inserted, oa.inserted,
        "no inserts under an update-only mix"
    );
    assert_eq!(
        ob.deleted, oa.deleted,
        "no deletes under an update-only mix"
    );
    assert!(ob.updated > oa.updated, "updates go on: {oa:?} -> {ob:?}");
    assert_eq!(
        b.progress.count, a.progress.count,
        "an update-only mix keeps the count"
    );
    let window = secs_between(&a, &b);
    let done = ob.total() - oa.total();
    assert!(
        done as f64 <= 10.0 * window * 1.25 + 10.0,
        "{done} ops in {window:.1} s is above the 10 ops/s limit"
    );
    let slow = b.progress.ops_per_sec;
    assert!(
        (5.0..=12.5).contains(&slow),
        "ops/s over the last slice should be about 10, is {slow}"
    );
    assert!(
        fast > slow * 2.0,
        "ops/s dropped from {fast} to about the new limit, is {slow}"
    );

    // Inserts and deletes only, no limit: no more updates; the count stays within the buffer.
    let (s, b) = patch(
        &tok,
        &id,
        json!({"rate_limit": null, "mix": {"insert": 1, "update": 0, "delete": 1}}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["rate_limit"], Value::Null);
    let at_patch = stored(&id).await;
    let a = past_tick(&id, at_patch.tick, WAIT).await;
    let b = past_tick(&id, a.tick, WAIT).await;
    let (oa, ob) = (a.progress.ops, b.progress.ops);
    assert_eq!(
        ob.updated, oa.updated,
        "no updates under an insert/delete mix"
    );
    assert!(
        ob.inserted > oa.inserted && ob.deleted > oa.deleted,
        "{oa:?} -> {ob:?}"
    );
    assert!(
        (900..=1100).contains(&b.progress.count),
        "count {} left the buffer",
        b.progress.count
    );

    let (s, b) = post(&tok, "/mysql/stop_loader", json!({"loader_id": id})).await;
    assert_eq!(s, 200, "{b}");
    let l = eventually("loader stopped", WAIT, || async {
        let l = stored(&id).await;
        (l.phase == Phase::Stopped).then_some(l)
    })
    .await;
    assert_eq!(mysql(&db).await.count().await.unwrap(), l.progress.count);
    let (s, b) = patch(&tok, &id, json!({"rate_limit": 5})).await;
    assert_eq!(s, 409, "a stopped loader cannot be patched: {b}");
    drop_database(&db).await;
}

#[tokio::test]
async fn loader_state_survives_a_restart_of_every_ferry_process() {
    let _one = ONE_AT_A_TIME.lock().await;
    let tok = token(&["user"]).await;
    let db = uniq("db");
    let mut body = mysql_body(&db, 1500, 100);
    body["rate_limit"] = json!(200);
    let (s, b) = post(&tok, "/mysql/start_loader", body).await;
    assert_eq!(s, 200, "{b}");
    let id = b["loader_id"].as_str().unwrap().to_string();
    let m = mysql(&db).await;
    let crud = eventually("loader in crud", WAIT, || async {
        let l = stored(&id).await;
        assert_ne!(l.phase, Phase::Failed, "{l:?}");
        (l.phase == Phase::Crud).then_some(l)
    })
    .await;
    let before = past_tick(&id, crud.tick, WAIT).await;

    // Stop the pump (it lets the running slice finish) and watch (with every function process), then
    // start both again with the same commands `run.sh up` uses.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = std::process::Command::new(root.join("infra/local/scripts/run.sh"));
    // What cargo sets for this test binary is not the functions' business (watch runs cargo itself).
    for (k, _) in std::env::vars() {
        if k == "CARGO"
            || [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_PRIMARY_",
            ]
            .iter()
            .any(|p| k.starts_with(p))
        {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .arg("restart-functions")
        .current_dir(&root)
        .output()
        .expect("run.sh restart-functions");
    assert!(
        out.status.success(),
        "run.sh restart-functions failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let after_restart = stored(&id).await;
    assert!(after_restart.phase.is_active(), "{after_restart:?}");
    assert!(after_restart.tick >= before.tick);
    assert_eq!(after_restart.runs, 1, "the loader was not started again");
    // The restarted pump may already be running the next slice, so the table's count is only known to
    // be within the buffer here; the exact match is checked once the loader is stopped.
    let rows = m.count().await.unwrap();
    assert!(
        (1400..=1600).contains(&rows),
        "{rows} rows after the restart"
    );

    // It goes on from its saved state: new ticks, counts carried on, never outside the buffer.
    let mut last = after_restart.clone();
    for _ in 0..3 {
        let next = past_tick(&id, last.tick, Duration::from_secs(600)).await;
        let (o1, o2) = (last.progress.ops, next.progress.ops);
        assert!(
            o2.inserted >= o1.inserted && o2.updated >= o1.updated && o2.deleted >= o1.deleted,
            "op counts carried on: {o1:?} -> {o2:?}"
        );
        assert!(
            (1400..=1600).contains(&next.progress.count),
            "count {} left the buffer",
            next.progress.count
        );
        assert!(next.progress.next_seq >= last.progress.next_seq);
        assert_eq!(next.last_error, None, "{next:?}");
        last = next;
    }
    assert!(last.progress.ops.total() > after_restart.progress.ops.total());
    assert_eq!(last.runs, 1);

    let (s, b) = post(&tok, "/mysql/stop_loader", json!({"loader_id": id})).await;
    assert_eq!(s, 200, "{b}");
    let stopped = eventually("loader stopped", WAIT, || async {
        let l = stored(&id).await;
        (l.phase == Phase::Stopped).then_some(l)
    })
    .await;
    // No tick's work was done twice or lost: the kept count is exactly the table's.
    assert_eq!(m.count().await.unwrap(), stopped.progress.count);
    assert!(stopped.tick > last.tick);
    drop_database(&db).await;
}

/// The MySQL adapter on MariaDB: `delete_oldest` takes the lowest keys from `from` on in one statement,
/// and no key at or below the bound it returns is left (the engine's next `from`).
#[tokio::test]
async fn mysql_delete_oldest_takes_the_lowest_keys_and_bounds_what_is_left() {
    let db = uniq("ferry_del");
    let m = mysql(&db).await;
    m.init("id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255), mutated BIGINT")
        .await
        .unwrap();
    let cols = m.columns().await.unwrap();
    assert_eq!(
        m.insert(&cols, "loader-del", 0..100, 0, 2).await.unwrap(),
        100
    );
    let (lo, hi) = m.seq_bounds(&cols).await.unwrap().unwrap();
    assert_eq!(hi - lo, 99, "one multi-row INSERT takes consecutive keys");

    let (deleted, bound) = m.delete_oldest(&cols, 30, lo).await.unwrap();
    assert_eq!((deleted, bound), (30, Some(lo + 29)));
    assert_eq!(m.seq_bounds(&cols).await.unwrap().unwrap().0, lo + 30);
    // A stale `from` still takes the lowest keys left; the bound stays below them.
    let (deleted, bound) = m.delete_oldest(&cols, 30, lo).await.unwrap();
    assert_eq!(deleted, 30);
    let left = m.seq_bounds(&cols).await.unwrap().unwrap().0;
    assert_eq!(left, lo + 60);
    assert!(bound.unwrap() < left);
    // More than what is left: all of it; then nothing.
    let (deleted, _) = m.delete_oldest(&cols, 100, left).await.unwrap();
    assert_eq!(deleted, 40);
    assert_eq!(m.count().await.unwrap(), 0);
    assert_eq!(m.delete_oldest(&cols, 10, left).await.unwrap(), (0, None));
    m.drop_database().await.unwrap();
}

/// The MySQL adapter on MariaDB: a fill's full batch (1,000 rows) goes as one prepared statement with
/// its values bound, any other count as SQL text with the values inlined; for every kind of column
/// (text cut to its length, decimal, double, flag, date, datetime, year, JSON) both store exactly the
/// same rows.
#[tokio::test]
async fn mysql_bound_and_inlined_inserts_store_the_same_rows() {
    let db = uniq("ferry_bind");
    let columns = "id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255), \
        city VARCHAR(12), price DECIMAL(10,2), avg_ratings DOUBLE, free_parking TINYINT, \
        mutated BIGINT, created DATE, seen DATETIME, likes JSON, review TEXT, year_built YEAR";
    let bound = mysql_table(&db, "bound").await;
    bound.init(columns).await.unwrap();
    let inlined = mysql_table(&db, "inlined").await;
    inlined.init(columns).await.unwrap();
    let cols = bound.columns().await.unwrap();

    let pool = sqlx::mysql::MySqlPool::connect_with(
        sqlx::mysql::MySqlConnectOptions::new()
            .host("127.0.0.1")
            .port(env("FERRY_MARIADB_PORT").parse().unwrap())
            .username("ferry")
            .password(&env("FERRY_MYSQL_PASSWORD")),
    )
    .await
    .unwrap();
    let executed = || async {
        let (_, n): (String, String) = sqlx::query_as("SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'")
            .fetch_one(&pool)
            .await
            .unwrap();
        n.parse::<u64>().unwrap()
    };
    let before = executed().await;
    assert_eq!(
        bound
            .insert(&cols, "loader-b", 0..2000, 0, 2)
            .await
            .unwrap(),
        2000
    );
    assert!(
        executed().await >= before + 2,
        "two full batches went as prepared statements"
    );
    for from in (0..2000).step_by(500) {
        assert_eq!(
            inlined
                .insert(&cols, "loader-b", from..from + 500, 0, 2)
                .await
                .unwrap(),
            500
        );
    }

    let rows = |table: &'static str| {
        let (pool, db) = (&pool, &db);
        async move {
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
                "SELECT CONCAT_WS('|', name, city, price, avg_ratings, free_parking, mutated, \
                 created, seen, likes, review, year_built) FROM `{db}`.`{table}` ORDER BY id"
            )))
            .fetch_all(pool)
            .await
            .unwrap()
        }
    };
    let (b, i) = (rows("bound").await, rows("inlined").await);
    assert_eq!(b.len(), 2000);
    let distinct: std::collections::HashSet<&String> = b.iter().collect();
    assert_eq!(distinct.len(), 2000, "every row is distinct");
    for (n, (x, y)) in b.iter().zip(&i).enumerate() {
        assert_eq!(x, y, "row {n}");
    }
    // Values of every column made it, none as NULL (CONCAT_WS skips NULLs: 11 fields, 10 bars).
    assert!(b.iter().all(|r| r.matches('|').count() >= 10), "{}", b[0]);
    bound.drop_database().await.unwrap();
}
