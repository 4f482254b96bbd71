//! Loaders end to end: HTTP -> DynamoDB + Secrets Manager + SQS -> the pump -> worker-loader -> FerretDB,
//! MariaDB, DynamoDB Local, checked against the targets themselves.

use ferry_shared::domain::loader::{Lease, Loader, Phase, Target};
use ferry_shared::keys::{IndexKey, Key};
use ferry_shared::loaders::Creds;
use ferry_shared::loaders::mongo::Mongo;
use ferry_shared::loaders::mysql::Mysql;
use ferry_tests::{base_url, call, env, eventually, http, store, token};
mod loaders_common;

use loaders_common::{loader, until_phase};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(240);

fn uniq(p: &str) -> String {
    format!("{p}_{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

fn mongo_port() -> String {
    env("FERRY_FERRETDB_PORT")
}

fn mongo_body(db: &str, coll: &str, n: u64) -> Value {
    json!({"ip": "127.0.0.1", "port": mongo_port(), "database_name": db, "collection_name": coll,
           "target_num_docs": n, "num_buffer": 50, "document_size": 512})
}

async fn mongo(db: &str, coll: &str) -> Mongo {
    let t = Target {
        host: Some("127.0.0.1".into()),
        port: Some(mongo_port().parse().unwrap()),
        ..Target::default()
    };
    Mongo::connect(&t, &Creds::default(), db, coll)
        .await
        .unwrap()
}

async fn post(tok: &str, path: &str, body: Value) -> (u16, Value) {
    call(
        http()
            .post(format!("{}{path}", base_url()))
            .bearer_auth(tok)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn mongo_fills_to_target_cruds_within_buffer_stops_and_restarts_by_id() {
    let tok = token(&["user"]).await;
    let (db, coll) = (uniq("db"), uniq("c"));
    let (s, b) = post(&tok, "/mongo/start_loader", mongo_body(&db, &coll, 2000)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "running");
    assert_eq!(b["database"], db.as_str());
    assert_eq!(b["collection"], coll.as_str());
    let id = b["loader_id"].as_str().unwrap().to_string();
    assert!(b.to_string().find("secret").is_none(), "{b}");

    until_phase(&id, "crud", WAIT).await;
    let m = mongo(&db, &coll).await;
    for _ in 0..6 {
        let n = m.count().await.unwrap();
        assert!((1950..=2050).contains(&n), "count {n} left the buffer");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let running = loader(&id).await;
    assert!(running["ops"]["updated"].as_u64().unwrap() > 0, "{running}");
    // No slice failed on the way (FerretDB answers concurrent writes "database is locked").
    assert!(running["last_error"].is_null(), "{running}");

    let (s, b) = post(&tok, "/mongo/stop_loader", json!({"loader_id": id})).await;
    assert_eq!(s, 200, "{b}");
    let stopped = until_phase(&id, "stopped", WAIT).await;
    let kept = stopped["current_count"].as_u64().unwrap();
    assert_eq!(m.count().await.unwrap(), kept, "the kept count is exact");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        m.count().await.unwrap(),
        kept,
        "a stopped loader writes nothing"
    );
    let st = store().await;
    let before: Loader = st.get(&Key::loader(&id)).await.unwrap().unwrap().value;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: Loader = st.get(&Key::loader(&id)).await.unwrap().unwrap().value;
    assert_eq!(before.tick, after.tick, "a stopped loader gets no ticks");

    let mut body = mongo_body(&db, &coll, 2500);
    body["loader_id"] = json!(id);
    let (s, b) = post(&tok, "/mongo/start_loader", body).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["response"], format!("Loader {id} restarted successfully"));
    eventually("restarted loader fills to 2500", WAIT, || async {
        let l = loader(&id).await;
        (l["phase"] == "crud" && l["runs"] == 2).then_some(())
    })
    .await;
    let n = m.count().await.unwrap();
    assert!((2450..=2550).contains(&n), "{n}");
    post(&tok, "/mongo/stop_loader", json!({"loader_id": id})).await;
    until_phase(&id, "stopped", WAIT).await;
}

#[tokio::test]
async fn a_second_loader_on_the_same_target_gets_409_and_a_duplicated_tick_is_a_no_op() {
    let tok = token(&["user"]).await;
    let (db, coll) = (uniq("db"), uniq("c"));
    let (s, b) = post(&tok, "/mongo/start_loader", mongo_body(&db, &coll, 300)).await;
    assert_eq!(s, 200, "{b}");
    let id = b["loader_id"].as_str().unwrap().to_string();
    let (s, b) = post(&tok, "/mongo/start_crud", mongo_body(&db, &coll, 300)).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["loader_id"], id.as_str());

    until_phase(&id, "crud", WAIT).await;
    post(&tok, "/mongo/stop_loader", json!({"loader_id": id})).await;
    until_phase(&id, "stopped", WAIT).await;
    let st = store().await;
    let before = st.get::<Loader>(&Key::loader(&id)).await.unwrap().unwrap();
    let m = mongo(&db, &coll).await;
    let count = m.count().await.unwrap();
    // Deliver an old tick and the last one again, straight to the worker.
    for tick in [0, before.value.tick - 1] {
        let event = json!({"Records": [{
            "messageId": format!("dup-{tick}"), "receiptHandle": "r", "eventSource": "aws:sqs",
            "body": json!({"kind": "tick", "loader_id": id, "tick": tick}).to_string(),
            "attributes": {"ApproximateReceiveCount": "2"}, "messageAttributes": {}
        }]});
        let out = ferry_tests::invoke("worker-loader", &event).await.unwrap();
        assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    }
    let after = st.get::<Loader>(&Key::loader(&id)).await.unwrap().unwrap();
    assert_eq!(
        after.version, before.version,
        "the duplicate changed the loader"
    );
    assert_eq!(m.count().await.unwrap(), count);

    // Once stopped, the target is free again.
    let (s, b) = post(&tok, "/mongo/start_loader", mongo_body(&db, &coll, 100)).await;
    assert_eq!(s, 200, "{b}");
    let other = b["loader_id"].as_str().unwrap().to_string();
    until_phase(&other, "crud", WAIT).await;
    post(&tok, "/mongo/stop_loader", json!({"loader_id": other})).await;
}

/// A tick whose lease another delivery holds (a duplicate, or the retry of an invocation that died
/// mid-slice) is put back until the lease ends instead of failing, which would count towards the
/// queue's maxReceiveCount and could dead-letter the loader's only tick. And a stop whose tick was lost
/// still completes: the API sends the tick again when no slice is under way.
#[tokio::test]
async fn a_held_tick_is_put_back_and_a_lost_tick_does_not_strand_a_stop() {
    let tok = token(&["user"]).await;
    let (db, coll) = (uniq("db"), uniq("c"));
    let (s, b) = post(&tok, "/mongo/start_loader", mongo_body(&db, &coll, 50)).await;
    assert_eq!(s, 200, "{b}");
    let id = b["loader_id"].as_str().unwrap().to_string();
    until_phase(&id, "crud", WAIT).await;
    post(&tok, "/mongo/stop_loader", json!({"loader_id": id})).await;
    until_phase(&id, "stopped", WAIT).await;
    let st = store().await;
    let key = Key::loader(&id);
    let index = |l: &Loader| IndexKey::loader(&l.created_at, &l.loader_id).into();
    let lease_ms = 4_000;

    // 1. As if a delivery of the current tick had claimed it and died: stopping, leased for 4 s, and
    //    no message in the queue. Another delivery of that tick must succeed (not be failed) and put
    //    the tick back, which stops the loader once the lease has run out.
    let held = st
        .transition(&key, index, |mut l: Loader| {
            l.phase = Phase::Stopping;
            l.lease = Some(Lease {
                tick: l.tick,
                until_ms: chrono::Utc::now().timestamp_millis() + lease_ms,
            });
            Ok(l)
        })
        .await
        .unwrap()
        .value;
    let event = json!({"Records": [{
        "messageId": "held", "receiptHandle": "r", "eventSource": "aws:sqs",
        "body": json!({"kind": "tick", "loader_id": id, "tick": held.tick}).to_string(),
        "attributes": {"ApproximateReceiveCount": "2"}, "messageAttributes": {}
    }]});
    let out = ferry_tests::invoke("worker-loader", &event).await.unwrap();
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    assert_eq!(loader(&id).await["phase"], "stopping");
    let l = until_phase(&id, "stopped", WAIT).await;
    let after = st.get::<Loader>(&key).await.unwrap().unwrap().value;
    assert_eq!(after.tick, held.tick + 1, "{l}");

    // 2. As if the tick had been lost: stopping, no lease, nothing in the queue. Stop completes.
    st.transition(&key, index, |mut l: Loader| {
        l.phase = Phase::Stopping;
        Ok(l)
    })
    .await
    .unwrap();
    let (s, b) = post(&tok, "/mongo/stop_loader", json!({"loader_id": id})).await;
    assert_eq!(s, 200, "{b}");
    until_phase(&id, "stopped", WAIT).await;
}

#[tokio::test]
async fn stop_during_a_fill_batch_keeps_an_exact_count() {
    let tok = token(&["user"]).await;
    let (db, coll) = (uniq("db"), uniq("c"));
    let (s, b) = post(
        &tok,
        "/mongo/start_loader",
        mongo_body(&db, &coll, 1_000_000),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let id = b["loader_id"].as_str().unwrap().to_string();
    let m = mongo(&db, &coll).await;
    eventually("fill under way", WAIT, || async {
        (m.count().await.unwrap() > 0).then_some(())
    })
    .await;
    post(&tok, "/mongo/stop_loader", json!({"loader_id": id})).await;
    let l = until_phase(&id, "stopped", WAIT).await;
    let n = l["current_count"].as_u64().unwrap();
    assert!(n < 1_000_000);
    assert_eq!(m.count().await.unwrap(), n);
}

#[tokio::test]
async fn errors_are_422_404_403_and_a_fast_502() {
    let tok = token(&["user"]).await;
    let (s, b) = post(&tok, "/mongo/start_loader", json!({"ip": "127.0.0.1"})).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(
        b["required_parameters"],
        json!(["ip", "database_name", "collection_name"])
    );
    assert_eq!(b["error"]["code"], "missing_field");
    // Every kind's start_crud is the same start as its start_loader, with the same validation.
    for kind in ["mongo", "mysql", "dynamo"] {
        let (s, b) = post(&tok, &format!("/{kind}/start_crud"), json!({})).await;
        assert_eq!(
            (s, &b["error"]["code"]),
            (422, &json!("missing_field")),
            "{kind}: {b}"
        );
    }
    // document_size: up to 1,000,000 bytes, and a DynamoDB item's 400 KB.
    for (path, size) in [
        ("/dynamo/start_loader", 400_001),
        ("/mongo/start_loader", 1_000_001),
        ("/mongo/start_loader", 0),
    ] {
        let body = json!({"table_name": "t", "ip": "127.0.0.1", "database_name": "d",
                          "collection_name": "c", "target_num_docs": 1, "document_size": size});
        let (s, b) = post(&tok, path, body).await;
        assert_eq!(
            (s, &b["error"]["field"]),
            (400, &json!("document_size")),
            "{path} {size}: {b}"
        );
    }
    let (s, b) = post(&tok, "/mysql/stop_loader", json!({"loader_id": "nope"})).await;
    assert_eq!(s, 404, "{b}");
    let (s, _) = call(http().get(format!("{}/loaders/nope", base_url()))).await;
    assert_eq!(s, 404);
    let mut far = mongo_body("d", "c", 10);
    far["ip"] = json!("8.8.8.8");
    let (s, b) = post(&tok, "/mongo/start_loader", far).await;
    assert_eq!(s, 403, "{b}");
    let mut closed = mongo_body("d", "c", 10);
    closed["port"] = json!(1);
    let t0 = std::time::Instant::now();
    let (s, b) = post(&tok, "/mongo/start_loader", closed).await;
    assert_eq!(s, 502, "{b}");
    assert_eq!(b["error"]["code"], "target_unreachable");
    assert_eq!(b["error"]["field"], "ip", "{b}");
    assert!(t0.elapsed() < Duration::from_secs(20));
    // A connection string's password never comes back, whatever the driver's error says.
    let (s, b) = post(
        &tok,
        "/mongo/start_loader",
        json!({"atlas_url": "mongodb://ada:s3cret-pw@127.0.0.1:1/?connectTimeoutMS=nope",
               "database_name": "d", "collection_name": "c", "target_num_docs": 1}),
    )
    .await;
    assert!(s == 400 || s == 502, "{s}: {b}");
    assert_eq!(b["error"]["field"], "atlas_url", "{b}");
    assert!(!b.to_string().contains("s3cret"), "{b}");
    // The count and drop routes (done by worker-loader for api-loaders) answer the same way.
    let q = format!(
        "{}/mongo/count?ip=127.0.0.1&port=1&database_name=d&collection_name=c",
        base_url()
    );
    let (s, b) = call(http().get(q)).await;
    assert_eq!((s, &b["error"]["field"]), (502, &json!("ip")), "{b}");
    let (s, b) = call(
        http()
            .delete(format!("{}/mongo/delete_collection", base_url()))
            .bearer_auth(&tok)
            .json(&json!({"ip": "8.8.8.8", "database_name": "d", "collection_name": "c"})),
    )
    .await;
    assert_eq!((s, &b["error"]["field"]), (403, &json!("ip")), "{b}");
    let (s, _) = call(
        http()
            .post(format!("{}/mongo/start_loader", base_url()))
            .json(&mongo_body("d", "c", 1)),
    )
    .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn mysql_init_config_fills_distinct_rows_and_restore_trims_to_doc_count() {
    let tok = token(&["user"]).await;
    let db = uniq("db");
    let body = json!({
        "host": "127.0.0.1", "port": env("FERRY_MARIADB_PORT"), "username": "ferry",
        "password": env("FERRY_MYSQL_PASSWORD"), "database_name": db, "table_name": "hotels",
        "init_config": true, "target_num_docs": 3000, "num_buffer": 20,
        "table_columns": "id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, address VARCHAR(255), avg_rating FLOAT, city VARCHAR(255), country VARCHAR(255)"
    });
    let (s, b) = post(&tok, "/mysql/start_loader", body.clone()).await;
    assert_eq!(s, 200, "{b}");
    let id = b["loader_id"].as_str().unwrap().to_string();
    until_phase(&id, "crud", WAIT).await;
    post(&tok, "/mysql/stop_loader", json!({"loader_id": id})).await;
    let l = until_phase(&id, "stopped", WAIT).await;
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
    let m = Mysql::connect(&t, &creds, &db, "hotels", 1).await.unwrap();
    assert_eq!(
        m.count().await.unwrap(),
        l["current_count"].as_u64().unwrap()
    );
    let q = format!(
        "{}/mysql/count?host=127.0.0.1&port={}&username=ferry&password={}&database_name={db}&table_name=hotels",
        base_url(),
        env("FERRY_MARIADB_PORT"),
        env("FERRY_MYSQL_PASSWORD")
    );
    let (s, c) = call(http().get(q)).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["count"], l["current_count"]);
    let distinct = ferry_tests_mysql_distinct(&t, &creds, &db).await;
    assert_eq!(distinct, m.count().await.unwrap(), "every row is distinct");

    let mut restore = body;
    restore.as_object_mut().unwrap().remove("target_num_docs");
    restore["init_config"] = json!(false);
    restore["doc_count"] = json!(1234);
    let (s, b) = post(&tok, "/mysql/restore", restore).await;
    assert_eq!(s, 200, "{b}");
    let r = b["loader_id"].as_str().unwrap().to_string();
    until_phase(&r, "completed", WAIT).await;
    assert_eq!(m.count().await.unwrap(), 1234);
}

async fn ferry_tests_mysql_distinct(t: &Target, c: &Creds, db: &str) -> u64 {
    use sqlx::Row;
    let opts = sqlx::mysql::MySqlConnectOptions::new()
        .host(t.host.as_deref().unwrap())
        .port(t.port.unwrap())
        .username("ferry")
        .password(c.password.as_deref().unwrap());
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .connect_with(opts)
        .await
        .unwrap();
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM (SELECT DISTINCT address, avg_rating, city, country FROM `{db}`.hotels) t"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    row.get::<i64, _>(0) as u64
}

/// Starts a DynamoDB loader with `body`, stops it once it cruds, checks `/dynamo/count` against the
/// stopped loader's count, drops the table; returns the stopped loader.
async fn dynamo_fill_stop_and_count(tok: &str, body: Value) -> Value {
    let table = body["table_name"].clone();
    let (s, b) = post(tok, "/dynamo/start_loader", body).await;
    assert_eq!(s, 200, "{b}");
    let id = b["loader_id"].as_str().unwrap().to_string();
    until_phase(&id, "crud", WAIT).await;
    post(tok, "/dynamo/stop_loader", json!({"loader_id": id})).await;
    let l = until_phase(&id, "stopped", WAIT).await;
    let (s, c) = call(
        http()
            .get(format!("{}/dynamo/count", base_url()))
            .json(&json!({"table_name": table})),
    )
    .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["count"], l["current_count"], "{l}");
    let (s, _) = call(
        http()
            .delete(format!("{}/dynamo/delete_table", base_url()))
            .bearer_auth(tok)
            .json(&json!({"table_name": table})),
    )
    .await;
    assert_eq!(s, 200);
    l
}

#[tokio::test]
async fn dynamo_fills_a_table_and_counts_it() {
    let tok = token(&["user"]).await;
    let body = json!({"table_name": uniq("hotels"), "target_num_docs": 600, "num_buffer": 10,
                      "document_size": 700});
    dynamo_fill_stop_and_count(&tok, body).await;
}

/// The largest items a DynamoDB loader takes (document_size 400,000, just under an item's 400 KB) are
/// written and counted exactly.
#[tokio::test]
async fn dynamo_fills_items_of_the_largest_document_size() {
    let tok = token(&["user"]).await;
    let body = json!({"table_name": uniq("big"), "target_num_docs": 90, "num_buffer": 1,
                      "document_size": 400_000});
    let l = dynamo_fill_stop_and_count(&tok, body).await;
    assert!(l["last_error"].is_null(), "{l}");
    let n = l["current_count"].as_u64().unwrap();
    assert!((89..=91).contains(&n), "{l}");
}
