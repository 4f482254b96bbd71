//! The syncrator-compatible job routes end to end, through cargo lambda watch and the pump on moto S3
//! and DynamoDB Local: parameter sets, dry runs, on-demand runs, /jobs and /sync_jobs.

mod sync_common;

use ferry_tests::{base_url, bucket, call, eventually, http, token};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use sync_common::*;

fn project() -> String {
    format!("p-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

async fn put_params(tok: &str, project: &str, env: &str, action: &str, text: &str) -> (u16, Value) {
    call(
        http()
            .put(format!("{}/params/{project}/{env}/{action}", base_url()))
            .bearer_auth(tok)
            .header("content-type", "text/plain")
            .body(text.to_string()),
    )
    .await
}

async fn get_job(id: &str) -> (u16, Value) {
    call(http().get(format!("{}/jobs/{id}", base_url()))).await
}

async fn finished(id: &str) -> Value {
    eventually(
        "the api job's run to end",
        Duration::from_secs(240),
        || async {
            let (s, b) = get_job(id).await;
            assert_eq!(s, 200, "{b}");
            let st = b["status"].as_str().unwrap_or_default().to_string();
            (st != "starting" && st != "running").then_some(b)
        },
    )
    .await
}

#[tokio::test]
async fn params_round_trip_and_bad_params_name_the_key() {
    let tok = token(&["user"]).await;
    let p = project();
    let text = "# sample\nSOURCE_BUCKET=src-bucket-1\nSOURCE_PREFIX=docs/\nDESTINATION_BUCKET=dst-bucket-1\nDESTINATION_PREFIX=mirror\nCONCURRENCY=3\n";
    let (s, b) = put_params(&tok, &p, "qas", "sync", text).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = call(http().get(format!("{}/params/{p}/qas/sync", base_url()))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["params"]["SOURCE_BUCKET"], "src-bucket-1");
    assert_eq!(b["params"]["SOURCE_PREFIX"], "docs/");
    assert_eq!(b["params"]["DESTINATION_BUCKET"], "dst-bucket-1");
    assert_eq!(b["params"]["DESTINATION_PREFIX"], "mirror");
    assert_eq!(b["params"]["CONCURRENCY"], "3");
    assert_eq!(b["params"]["MAX_ATTEMPTS"], "5", "defaults are filled in");

    // JSON is accepted too, and replaces the set.
    let (s, b) = call(
        http()
            .put(format!("{}/params/{p}/qas/sync", base_url()))
            .bearer_auth(&tok)
            .json(&json!({"SOURCE_BUCKET": "src-bucket-2", "DESTINATION_BUCKET": "dst-bucket-2"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["params"]["SOURCE_BUCKET"], "src-bucket-2");

    for (body, key) in [
        (
            "SOURCE_BUCKET=Not_A_Bucket\nDESTINATION_BUCKET=dst-bucket",
            "SOURCE_BUCKET",
        ),
        ("SOURCE_BUCKET=src-bucket", "DESTINATION_BUCKET"),
        (
            "SOURCE_BUCKET=src-bucket\nDESTINATION_BUCKET=dst-bucket\nCONCURRENCY=99",
            "CONCURRENCY",
        ),
        (
            "SOURCE_BUCKET=src-bucket\nFAVOURITE_COLOUR=blue",
            "FAVOURITE_COLOUR",
        ),
    ] {
        let (s, b) = put_params(&tok, &p, "qas", "delta", body).await;
        assert_eq!(s, 400, "{body}: {b}");
        assert_eq!(b["error"]["field"], key, "{b}");
        assert!(b["error"]["message"].as_str().unwrap().contains(key), "{b}");
    }
    let (s, b) = put_params(&tok, &p, "qas", "copy", text).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["field"], "action");

    // Unauthenticated writes are refused.
    let (s, _) = call(
        http()
            .put(format!("{}/params/{p}/qas/sync", base_url()))
            .body(text.to_string()),
    )
    .await;
    assert_eq!(s, 401);
    let (s, b) = call(http().post(format!("{}/sync/{p}/qas", base_url()))).await;
    assert_eq!(s, 401, "{b}");
}

#[tokio::test]
async fn delta_dry_run_lists_exactly_what_the_run_then_copies() {
    let s3 = s3().await;
    let src = bucket(&s3, "src").await;
    let dst = bucket(&s3, "dst").await;
    let mut files = Vec::new();
    for i in 0..8u64 {
        let body = data(500 + i as usize * 300, i);
        let key = format!("docs/f{i}.bin");
        put(&s3, &src, &key, body.clone()).await;
        files.push((key, body));
    }
    put(&s3, &src, "docs/empty", vec![]).await;
    // Two objects already at the destination unchanged, one stale, one without a source.
    put(&s3, &dst, "mirror/f0.bin", files[0].1.clone()).await;
    put(&s3, &dst, "mirror/f1.bin", files[1].1.clone()).await;
    put(&s3, &dst, "mirror/f2.bin", b"stale".to_vec()).await;
    put(&s3, &dst, "mirror/orphan", b"left over".to_vec()).await;

    let tok = token(&["user"]).await;
    let p = project();
    let text = format!(
        "SOURCE_BUCKET={src}\nSOURCE_PREFIX=docs/\nDESTINATION_BUCKET={dst}\nDESTINATION_PREFIX=mirror\n"
    );
    assert_eq!(put_params(&tok, &p, "qas", "delta", &text).await.0, 201);
    assert_eq!(put_params(&tok, &p, "qas", "diff", &text).await.0, 201);

    let (s, plan) = call(http().get(format!("{}/delta/{p}/qas", base_url()))).await;
    assert_eq!(s, 200, "{plan}");
    let planned: BTreeSet<String> = plan["copy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["destination_key"].as_str().unwrap().to_string())
        .collect();
    let expect: BTreeSet<String> = (2..8).map(|i| format!("mirror/f{i}.bin")).collect();
    assert_eq!(planned, expect, "{plan}");
    assert_eq!(
        plan["counts"]["skip"], 3,
        "two unchanged and the empty object: {plan}"
    );
    assert_eq!(plan["counts"]["delete"], 0, "delta deletes nothing");
    let planned_bytes: u64 = files[2..].iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(plan["bytes"]["copy"], planned_bytes);

    let (s, diff) = call(http().get(format!("{}/diff/{p}/qas", base_url()))).await;
    assert_eq!(s, 200, "{diff}");
    assert_eq!(
        diff["delete"][0]["destination_key"], "mirror/orphan",
        "{diff}"
    );
    assert_eq!(diff["counts"]["delete"], 1);

    // Nothing was written by the dry runs.
    assert_eq!(get(&s3, &dst, "mirror/f2.bin").await, b"stale");

    let before: Vec<(String, String)> = {
        let mut v = Vec::new();
        for k in keys(&s3, &dst).await {
            let h = s3.head_object().bucket(&dst).key(&k).send().await.unwrap();
            v.push((k, format!("{:?}", h.last_modified)));
        }
        v
    };
    let (s, b) = call(
        http()
            .post(format!("{}/delta/{p}/qas", base_url()))
            .bearer_auth(&tok),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    let id = b["job_id"].as_str().unwrap().to_string();
    let done = finished(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["sync_job"]["counts"]["processed"], 6, "{done}");
    assert_eq!(done["sync_job"]["counts"]["skipped"], 3, "{done}");
    assert_eq!(done["sync_job"]["bytes"], planned_bytes);
    for (key, body) in &files {
        let dest = format!("mirror/{}", key.strip_prefix("docs/").unwrap());
        assert_eq!(&get(&s3, &dst, &dest).await, body, "{dest} differs");
    }
    // The objects the plan skipped were not rewritten; the orphan is still there (delta).
    for (k, lm) in &before {
        if k == "mirror/f0.bin" || k == "mirror/f1.bin" || k == "mirror/orphan" {
            let h = s3.head_object().bucket(&dst).key(k).send().await.unwrap();
            assert_eq!(&format!("{:?}", h.last_modified), lm, "{k} was rewritten");
        }
    }
}

#[tokio::test]
async fn identical_post_while_running_returns_the_same_job_and_delete_cancels_it() {
    let s3 = s3().await;
    let src = bucket(&s3, "src").await;
    let dst = bucket(&s3, "dst").await;
    for i in 0..120u64 {
        put(&s3, &src, &format!("k/{i:04}"), data(2000, i)).await;
    }
    let tok = token(&["user"]).await;
    let p = project();
    let text = format!("SOURCE_BUCKET={src}\nDESTINATION_BUCKET={dst}\nCONCURRENCY=1\n");
    assert_eq!(put_params(&tok, &p, "prd", "sync", &text).await.0, 201);
    let post = || async {
        call(
            http()
                .post(format!("{}/sync/{p}/prd", base_url()))
                .bearer_auth(&tok),
        )
        .await
    };
    let (s1, first) = post().await;
    assert_eq!(s1, 202, "{first}");
    let (s2, second) = post().await;
    let id = first["job_id"].as_str().unwrap().to_string();
    let (_, now) = get_job(&id).await;
    if now["status"] == "starting" || now["status"] == "running" {
        assert_eq!(s2, 200, "{second}");
        assert_eq!(second["job_id"], first["job_id"], "same job while it runs");
    } else {
        panic!("the run ended before the second POST; the test needs a slower run: {now}");
    }

    // DELETE marks the api job deleted and cancels its run.
    let (s, _) = call(http().delete(format!("{}/jobs/{id}", base_url()))).await;
    assert_eq!(s, 401, "DELETE needs a token");
    let (s, del) = call(
        http()
            .delete(format!("{}/jobs/{id}", base_url()))
            .bearer_auth(&tok),
    )
    .await;
    assert_eq!(s, 200, "{del}");
    assert_eq!(del["status"], "deleted");
    let (_, again) = get_job(&id).await;
    assert_eq!(again["status"], "deleted");
    if del["run_cancelled"] == true {
        assert_eq!(again["sync_job"]["status"], "cancelled", "{again}");
    }
    // With the run over, the same POST starts a new job.
    let (s3_, third) = post().await;
    assert_eq!(s3_, 202, "{third}");
    assert_ne!(third["job_id"], first["job_id"]);
    let (s, _) = call(
        http()
            .delete(format!(
                "{}/jobs/{}",
                base_url(),
                third["job_id"].as_str().unwrap()
            ))
            .bearer_auth(&tok),
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn custom_run_filters_the_source_password_and_copies_byte_identical() {
    let s3 = s3().await;
    let src = bucket(&s3, "src").await;
    let dst = bucket(&s3, "dst").await;
    let body = data(70_000, 7);
    put(&s3, &src, "a/one.bin", body.clone()).await;
    let endpoint = ferry_tests::env("AWS_ENDPOINT_URL");
    let (scheme, host) = endpoint.split_once("://").unwrap();
    let secret = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let tok = token(&["user"]).await;
    let req = json!({
        "target": project(), "env": "qas", "action": "sync",
        "params": {
            "SOURCE_BUCKET": src, "SOURCE_PREFIX": "a/", "DESTINATION_BUCKET": dst,
            "SOURCE_ENDPOINT_URL": format!("{scheme}://testing:{secret}@{host}"),
            "SOURCE_REGION": "us-east-1",
        }
    });
    let (s, plan) = call(
        http()
            .post(format!("{}/dryrun", base_url()))
            .bearer_auth(&tok)
            .json(&req),
    )
    .await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(plan["counts"]["copy"], 1, "{plan}");
    assert!(!plan.to_string().contains(&secret));
    assert!(
        plan["source_url"].as_str().unwrap().contains("<FILTERED>@"),
        "{plan}"
    );

    let (s, b) = call(http().post(format!("{}/run", base_url())).json(&req)).await;
    assert_eq!(s, 401, "{b}");
    let (s, b) = call(
        http()
            .post(format!("{}/run", base_url()))
            .bearer_auth(&tok)
            .json(&req),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    let id = b["job_id"].as_str().unwrap().to_string();
    let done = finished(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(get(&s3, &dst, "one.bin").await, body);
    let text = done.to_string();
    assert!(!text.contains(&secret), "{text}");
    assert!(
        done["sync_job"]["source_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{scheme}://<FILTERED>@")),
        "{done}"
    );
    // Other tests add runs at the same time (one adds 52): walk the pages, newest first.
    let mut listed = false;
    for page in 1..=20 {
        let (s, runs) = call(http().get(format!("{}/sync_jobs?page={page}", base_url()))).await;
        assert_eq!(s, 200, "{runs}");
        assert!(!runs.to_string().contains(&secret));
        if runs["sync_jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id.as_str())
        {
            listed = true;
            break;
        }
        if runs["has_next"] != true {
            break;
        }
    }
    assert!(listed, "the run is listed in /sync_jobs");
}

#[tokio::test]
async fn jobs_list_newest_first_in_pages_of_50_and_unknown_ids_are_404() {
    let tok = token(&["user"]).await;
    let s3 = s3().await;
    let src = bucket(&s3, "src").await;
    let dst = bucket(&s3, "dst").await;
    put(&s3, &src, "x", b"x".to_vec()).await;
    // Distinct projects so none is deduplicated; 52 jobs span two pages.
    let mut ids = Vec::new();
    for _ in 0..52 {
        let req = json!({"target": project(), "env": "qas", "action": "sync",
            "params": {"SOURCE_BUCKET": src, "DESTINATION_BUCKET": dst, "DESTINATION_PREFIX": uuid::Uuid::new_v4().simple().to_string()}});
        let (s, b) = call(
            http()
                .post(format!("{}/run", base_url()))
                .bearer_auth(&tok)
                .json(&req),
        )
        .await;
        assert_eq!(s, 202, "{b}");
        ids.push(b["job_id"].as_str().unwrap().to_string());
    }
    let (s, p1) = call(http().get(format!("{}/jobs", base_url()))).await;
    assert_eq!(s, 200, "{p1}");
    let first: Vec<String> = p1["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(first.len(), 50);
    assert_eq!(p1["has_next"], true);
    let created: Vec<String> = p1["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["created_at"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = created.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(created, sorted, "newest first");
    // Other tests may add jobs at the same time; ours, newest first, lead page 1 unless they do.
    let pos = |id: &String| first.iter().position(|f| f == id);
    if let (Some(a), Some(b)) = (pos(&ids[51]), pos(&ids[50])) {
        assert!(a < b, "the newer job comes first");
    }
    let (s, p2) = call(http().get(format!("{}/jobs?page=2", base_url()))).await;
    assert_eq!(s, 200, "{p2}");
    let second: Vec<String> = p2["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!second.is_empty());
    assert!(
        second.iter().all(|id| !first.contains(id)),
        "pages do not overlap"
    );
    let (s, b) = call(http().get(format!("{}/jobs?page=0", base_url()))).await;
    assert_eq!((s, b["error"]["field"].clone()), (400, json!("page")));

    let (s, b) = get_job(&uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(s, 404, "{b}");
    assert_eq!(b["error"]["code"], "not_found");
    let (s, _) = get_job("not-an-id").await;
    assert_eq!(s, 404);
    let (s, b) = call(
        http()
            .delete(format!("{}/jobs/{}", base_url(), uuid::Uuid::now_v7()))
            .bearer_auth(&tok),
    )
    .await;
    assert_eq!(s, 404, "{b}");
    for id in &ids {
        finished(id).await;
    }
}
