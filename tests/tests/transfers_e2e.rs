//! Transfers end to end (HTTP -> api-transfers -> DynamoDB Local): self-service accounts, HTTP Basic
//! and Bearer auth, and the task lifecycle with the original Datastore's answers (409 "already
//! paused" / "already running", 404 for aborted, expired, unknown and other people's tasks).

use ferry_shared::domain::transfer::Task;
use ferry_shared::keys::{IndexKey, Key};
use ferry_shared::store::Meta;
use ferry_tests::{base_url, call, http, store};
use serde_json::{Value, json};

fn email() -> String {
    format!(
        "t-{}@example.com",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

async fn sign_up(email: &str, password: &str) -> (u16, Value) {
    call(
        http()
            .post(format!("{}/create_user/", base_url()))
            .json(&json!({"email": email, "password": password})),
    )
    .await
}

/// A request with HTTP Basic credentials.
async fn basic(method: &str, path: &str, who: (&str, &str)) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    call(
        http()
            .request(m, format!("{}{path}", base_url()))
            .basic_auth(who.0, Some(who.1)),
    )
    .await
}

#[tokio::test]
async fn accounts_are_self_service_and_refuse_bad_or_taken_emails_naming_the_field() {
    let (e, pw) = (email(), "correct horse battery");
    let (s, b) = sign_up(&e, pw).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["email"], e.as_str());
    assert!(
        !b.to_string().contains(pw) && !b.to_string().contains("argon2"),
        "{b}"
    );

    let (s, b) = sign_up(&e.to_uppercase(), "another password").await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["field"], "email");
    for bad in [
        "no-at-sign",
        "a@b",
        "two@@example.com",
        "sp ace@example.com",
        "@example.com",
    ] {
        let (s, b) = sign_up(bad, pw).await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert_eq!(b["error"]["field"], "email", "{bad}: {b}");
    }
    let (s, b) = sign_up(&email(), "short").await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["field"], "password");
    let (s, b) = call(
        http()
            .post(format!("{}/create_user", base_url()))
            .json(&json!({"email": email(), "password": pw, "role": "admin"})),
    )
    .await;
    assert_eq!(s, 400, "unknown keys are refused: {b}");

    // The account works with Basic credentials and, through /login, with a Bearer token.
    let (s, b) = basic("GET", "/users/me", (&e, pw)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["roles"], json!(["transfers"]));
    let (s, b) = basic("GET", "/users/me", (&e, "wrong password")).await;
    assert_eq!(s, 401, "{b}");
    assert!(!b.to_string().contains("wrong password"), "{b}");
    let (s, login) = call(
        http()
            .post(format!("{}/login", base_url()))
            .json(&json!({"username": e, "password": pw})),
    )
    .await;
    assert_eq!(s, 200, "{login}");
    let (s, b) = call(
        http()
            .post(format!("{}/create_task", base_url()))
            .bearer_auth(login["access_token"].as_str().unwrap()),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    // Free sign-up opens the transfer routes only: ferry's other APIs refuse the token.
    let (s, b) = call(
        http()
            .post(format!("{}/api/v1/scheduler/create_job", base_url()))
            .bearer_auth(login["access_token"].as_str().unwrap())
            .json(
                &json!({"job_name": "mine", "connector_type": "S3", "schedule": "daily",
                          "connector_config": {"bucket_name": "b", "prefix": ""}}),
            ),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["error"]["field"], "authorization");
    let (s, b) = call(http().post(format!("{}/create_task", base_url()))).await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(b["error"]["field"], "authorization");
}

#[tokio::test]
async fn a_task_pauses_resumes_and_aborts_with_the_originals_answers() {
    let (e, pw) = (email(), "a long enough password");
    assert_eq!(sign_up(&e, pw).await.0, 201);
    let me = (e.as_str(), pw);
    let (s, t) = basic("POST", "/create_task", me).await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["status"], "running");
    assert!(t["expires_at"].as_str().is_some(), "{t}");
    let id = t["task_id"].as_str().unwrap().to_string();

    let (s, b) = basic("POST", &format!("/pause_task/{id}"), me).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["task"]["status"], "paused");
    let (s, b) = basic("POST", &format!("/pause_task/{id}"), me).await;
    assert_eq!(
        (s, b["error"]["message"].as_str()),
        (409, Some("already paused")),
        "{b}"
    );
    assert_eq!(b["detail"], "already paused", "the original's key: {b}");
    let (s, b) = basic("GET", &format!("/tasks/{id}"), me).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("paused")), "{b}");
    let (s, b) = basic("POST", &format!("/resume_task/{id}"), me).await;
    assert_eq!(
        (s, b["task"]["status"].as_str()),
        (200, Some("running")),
        "{b}"
    );
    let (s, b) = basic("POST", &format!("/resume_task/{id}"), me).await;
    assert_eq!(
        (s, b["error"]["message"].as_str()),
        (409, Some("already running")),
        "{b}"
    );

    // Someone else sees nothing of it.
    let (other, opw) = (email(), "someone else's password");
    assert_eq!(sign_up(&other, opw).await.0, 201);
    for path in [format!("/tasks/{id}"), format!("/pause_task/{id}")] {
        let method = if path.starts_with("/tasks") {
            "GET"
        } else {
            "POST"
        };
        let (s, b) = basic(method, &path, (&other, opw)).await;
        assert_eq!(s, 404, "{path}: {b}");
    }
    let (s, b) = basic("GET", "/tasks", (&other, opw)).await;
    assert_eq!(
        (s, b["tasks"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{b}"
    );
    let (s, b) = basic("GET", "/tasks", me).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["tasks"][0]["task_id"], id.as_str());

    let (s, b) = basic("POST", &format!("/abort_task/{id}"), me).await;
    assert_eq!(
        (s, b["task"]["status"].as_str()),
        (200, Some("aborted")),
        "{b}"
    );
    for path in ["pause_task", "resume_task", "abort_task"] {
        let (s, b) = basic("POST", &format!("/{path}/{id}"), me).await;
        assert_eq!(s, 404, "{path} after abort: {b}");
        assert_eq!(b["error"]["field"], "task_id");
    }
    let (s, _) = basic("GET", &format!("/tasks/{id}"), me).await;
    assert_eq!(s, 404);
    let (s, b) = basic("GET", "/tasks", me).await;
    assert_eq!(
        (s, b["tasks"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{b}"
    );
    let (s, _) = basic("POST", "/pause_task/no-such-task", me).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn a_task_is_gone_after_24_hours_even_before_dynamodb_deletes_it() {
    let (e, pw) = (email(), "a long enough password");
    assert_eq!(sign_up(&e, pw).await.0, 201);
    let me = (e.as_str(), pw);
    let (s, t) = basic("POST", "/create_task", me).await;
    assert_eq!(s, 201, "{t}");
    let id = t["task_id"].as_str().unwrap().to_string();
    // Its expiry moved into the past, as 24 hours later (DynamoDB's TTL deletes items late).
    let store = store().await;
    store
        .transition(
            &Key::task(&id),
            // The index entry stays, so the listing must leave the task out by its expiry.
            |t: &Task| Meta {
                index: Some(IndexKey::task(&t.owner, &t.created_at, &t.task_id)),
                expires_at: Some(t.lives_until),
            },
            |t: Task| {
                Ok(Task {
                    lives_until: chrono::Utc::now().timestamp() - 1,
                    ..t
                })
            },
        )
        .await
        .unwrap();
    let (s, _) = basic("GET", &format!("/tasks/{id}"), me).await;
    assert_eq!(s, 404);
    let (s, b) = basic("POST", &format!("/resume_task/{id}"), me).await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = basic("GET", "/tasks", me).await;
    assert_eq!(
        (s, b["tasks"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{b}"
    );
}

/// A signed-up account and a new task of its: (email, password, task_id).
async fn account_with_task() -> (String, String, String) {
    let (e, pw) = (email(), "correct horse battery".to_string());
    assert_eq!(sign_up(&e, &pw).await.0, 201);
    let (s, b) = basic("POST", "/create_task", (&e, &pw)).await;
    assert_eq!(s, 201, "{b}");
    (e, pw, b["task_id"].as_str().unwrap().to_string())
}

/// `PUT /upload_file/{task}` as a browser or Postman form sends it: a multipart part named `file`.
async fn upload_form(who: (&str, &str), task: &str, name: &str, bytes: &[u8]) -> (u16, Value) {
    let boundary = "ferry-boundary-7d3f";
    let mut body = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{name}\"\r\ncontent-type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    call(
        http()
            .put(format!("{}/upload_file/{task}", base_url()))
            .basic_auth(who.0, Some(who.1))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body),
    )
    .await
}

async fn data_object(key: &str) -> Option<Vec<u8>> {
    let s3 = ferry_shared::aws::s3_client(&ferry_tests::aws().await);
    let out = s3
        .get_object()
        .bucket(ferry_tests::env("DATA_BUCKET"))
        .key(key)
        .send()
        .await
        .ok()?;
    Some(out.body.collect().await.unwrap().into_bytes().to_vec())
}

#[tokio::test]
async fn uploads_land_byte_identical_under_the_callers_prefix_and_refuse_traversal_and_paused_tasks()
 {
    let (e, pw, task) = account_with_task().await;
    let who = (e.as_str(), pw.as_str());
    // Every byte value, so a text or base64 slip in the gateway or the function would show.
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let (s, b) = upload_form(who, &task, "data.bin", &bytes).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["file"]["filename"], "data.bin");
    assert_eq!(b["file"]["size"], bytes.len());
    let stored = data_object(&format!("transfers/{e}/files/data.bin")).await;
    assert_eq!(stored.as_deref(), Some(bytes.as_slice()), "byte-identical");
    // A task carries one upload.
    let (s, b) = upload_form(who, &task, "again.bin", b"x").await;
    assert_eq!(s, 409, "{b}");

    // Path traversal and other names that are not one path segment: 400 naming the field, nothing stored.
    for bad in ["../../escape.txt", "a/b.txt", "..", "a\\b"] {
        let (s, t) = basic("POST", "/create_task", who).await;
        assert_eq!(s, 201);
        let (s, b) = call(
            http()
                .put(format!(
                    "{}/upload_file/{}?filename={}",
                    base_url(),
                    t["task_id"].as_str().unwrap(),
                    ferry_shared::loaders::percent_encoded(bad)
                ))
                .basic_auth(who.0, Some(who.1))
                .body("x"),
        )
        .await;
        assert_eq!(
            (s, b["error"]["field"].clone()),
            (400, json!("filename")),
            "{bad}: {b}"
        );
    }
    assert!(data_object("transfers/escape.txt").await.is_none());

    // A raw body with ?filename= works too; a paused task takes nothing until resumed.
    let (_, t) = basic("POST", "/create_task", who).await;
    let t = t["task_id"].as_str().unwrap().to_string();
    assert_eq!(basic("POST", &format!("/pause_task/{t}"), who).await.0, 200);
    let raw = |name: &'static str| {
        http()
            .put(format!("{}/upload_file/{t}?filename={name}", base_url()))
            .basic_auth(who.0, Some(who.1))
            .header("content-type", "text/csv")
            .body("a,b\n1,2\n")
    };
    let (s, b) = call(raw("table.csv")).await;
    assert_eq!(
        (s, b["detail"].clone()),
        (409, json!("task is paused")),
        "{b}"
    );
    assert!(
        data_object(&format!("transfers/{e}/files/table.csv"))
            .await
            .is_none()
    );
    assert_eq!(
        basic("POST", &format!("/resume_task/{t}"), who).await.0,
        200
    );
    let (s, b) = call(raw("table.csv")).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["file"]["content_type"], "text/csv");
    // No file: 400 naming it; someone else's credentials: 401.
    let (_, t3) = basic("POST", "/create_task", who).await;
    let (s, b) = call(
        http()
            .put(format!(
                "{}/upload_file/{}",
                base_url(),
                t3["task_id"].as_str().unwrap()
            ))
            .basic_auth(who.0, Some(who.1))
            .body("x"),
    )
    .await;
    assert_eq!(
        (s, b["error"]["field"].clone()),
        (400, json!("filename")),
        "{b}"
    );
    // Over Lambda's 6 MB payload: API Gateway's own 413, nothing stored.
    let (s, b) = call(
        http()
            .put(format!(
                "{}/upload_file/{}?filename=big.txt",
                base_url(),
                t3["task_id"].as_str().unwrap()
            ))
            .basic_auth(who.0, Some(who.1))
            .header("content-type", "text/plain")
            .body("x".repeat(7_000_000)),
    )
    .await;
    assert_eq!(
        (s, b["message"].clone()),
        (413, json!("Request Entity Too Large"))
    );
    assert!(
        data_object(&format!("transfers/{e}/files/big.txt"))
            .await
            .is_none()
    );
    let (s, _) = call(
        http()
            .put(format!("{}/upload_file/{t}?filename=x", base_url()))
            .basic_auth(who.0, Some("wrong password"))
            .body("x"),
    )
    .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn files_list_and_delete_by_name_pattern_and_upload_day() {
    let (e, pw, _) = account_with_task().await;
    let who = (e.as_str(), pw.as_str());
    for name in ["a.csv", "b.csv", "notes.txt"] {
        let (_, t) = basic("POST", "/create_task", who).await;
        let (s, b) = upload_form(who, t["task_id"].as_str().unwrap(), name, name.as_bytes()).await;
        assert_eq!(s, 201, "{b}");
    }
    let (s, b) = basic("GET", "/files", who).await;
    assert_eq!(s, 200, "{b}");
    let names: Vec<&str> = b["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.csv", "b.csv", "notes.txt"]);
    let (s, b) = basic("GET", "/files?filename=%5C.csv%24", who).await;
    assert_eq!((s, b["count"].clone()), (200, json!(2)), "{b}");
    let (s, b) = basic("GET", "/files?from_date=2000-01-01&to_date=2000-12-31", who).await;
    assert_eq!((s, b["count"].clone()), (200, json!(0)), "{b}");
    let (s, b) = basic("GET", "/files?filename=(", who).await;
    assert_eq!(
        (s, b["error"]["field"].clone()),
        (400, json!("filename")),
        "{b}"
    );

    // Another account sees none of them.
    let (e2, pw2, _) = account_with_task().await;
    let (_, b) = basic("GET", "/files", (&e2, &pw2)).await;
    assert_eq!(b["count"], 0, "{b}");

    // Delete the CSVs through a task; a paused task deletes nothing.
    let (_, t) = basic("POST", "/create_task", who).await;
    let t = t["task_id"].as_str().unwrap().to_string();
    assert_eq!(basic("POST", &format!("/pause_task/{t}"), who).await.0, 200);
    let (s, _) = basic(
        "DELETE",
        &format!("/delete_file/{t}?filename=%5C.csv%24"),
        who,
    )
    .await;
    assert_eq!(s, 409);
    assert_eq!(
        basic("POST", &format!("/resume_task/{t}"), who).await.0,
        200
    );
    let (s, b) = basic(
        "DELETE",
        &format!("/delete_file/{t}?filename=%5C.csv%24"),
        who,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["deleted"], json!(["a.csv", "b.csv"]));
    assert!(
        data_object(&format!("transfers/{e}/files/a.csv"))
            .await
            .is_none()
    );
    assert!(
        data_object(&format!("transfers/{e}/files/notes.txt"))
            .await
            .is_some()
    );
    let (_, b) = basic("GET", "/files", who).await;
    assert_eq!(b["count"], 1, "{b}");
    // Through someone else's or an aborted task: 404.
    let (s, _) = basic("DELETE", &format!("/delete_file/{t}"), (&e2, &pw2)).await;
    assert_eq!(s, 404);
    assert_eq!(basic("POST", &format!("/abort_task/{t}"), who).await.0, 200);
    let (s, _) = basic("DELETE", &format!("/delete_file/{t}"), who).await;
    assert_eq!(s, 404);
}

/// Files seeded straight into the data bucket and the file records, as uploads leave them (many
/// files quickly, for builds long enough to pause).
async fn seed_files(owner: &str, files: &[(String, Vec<u8>)]) {
    let s3 = ferry_shared::aws::s3_client(&ferry_tests::aws().await);
    let st = store().await;
    let bucket = ferry_tests::env("DATA_BUCKET");
    let now = ferry_shared::domain::now_rfc3339();
    for (name, bytes) in files {
        let key = ferry_shared::domain::transfer::file_key(owner, name);
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(bytes.clone().into())
            .send()
            .await
            .unwrap();
        let record = ferry_shared::domain::transfer::StoredFile {
            owner: owner.to_string(),
            name: name.clone(),
            size: bytes.len() as u64,
            etag: String::new(),
            content_type: "application/octet-stream".into(),
            uploaded_at: now.clone(),
            s3_key: key,
            task_id: "seeded".into(),
        };
        st.create(&Key::transfer_file(owner, name), &Meta::default(), &record)
            .await
            .unwrap();
    }
}

/// `GET /download_file/...` without following the redirect.
async fn download(who: (&str, &str), path: &str) -> (u16, Value, Option<String>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .get(format!("{}{path}", base_url()))
        .basic_auth(who.0, Some(who.1))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body, location)
}

/// Polls the download until it is ready; returns the zip's bytes, fetched from the presigned URL.
async fn zip_when_ready(who: (&str, &str), path: &str) -> Vec<u8> {
    let url = ferry_tests::eventually("the zip", std::time::Duration::from_secs(120), || async {
        let (s, b, loc) = download(who, path).await;
        assert!(s == 202 || s == 303, "{s} {b}");
        (s == 303).then(|| {
            assert_eq!(b["status"], "ready", "{b}");
            loc.expect("a Location")
        })
    })
    .await;
    let resp = http().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap().to_vec()
}

fn unzip(bytes: Vec<u8>) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a valid zip");
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut b = Vec::new();
            f.read_to_end(&mut b).unwrap();
            (f.name().to_string(), b)
        })
        .collect()
}

#[tokio::test]
async fn a_download_zips_the_matching_uploads_and_refuses_a_second_selection() {
    let (e, pw, _) = account_with_task().await;
    let who = (e.as_str(), pw.as_str());
    // Three uploads through the API, 12 MB in all: the zip spans more than one 8 MiB part.
    let mut want = std::collections::BTreeMap::new();
    for (i, name) in ["a.csv", "b.csv", "c.csv"].iter().enumerate() {
        let text: String = (0..4_000_000)
            .map(|j| (b'a' + ((i * 7 + j) % 26) as u8) as char)
            .collect();
        let (_, t) = basic("POST", "/create_task", who).await;
        let t = t["task_id"].as_str().unwrap().to_string();
        let (s, b) = call(
            http()
                .put(format!("{}/upload_file/{t}?filename={name}", base_url()))
                .basic_auth(who.0, Some(who.1))
                .header("content-type", "text/csv")
                .body(text.clone()),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        want.insert(name.to_string(), text.into_bytes());
    }
    let (_, t) = basic("POST", "/create_task", who).await;
    let (s, _) = upload_form(
        who,
        t["task_id"].as_str().unwrap(),
        "notes.txt",
        b"not a csv",
    )
    .await;
    assert_eq!(s, 201);

    let (_, t) = basic("POST", "/create_task", who).await;
    let t = t["task_id"].as_str().unwrap().to_string();
    let path = format!("/download_file/{t}?filename=%5C.csv%24");
    let (s, b, _) = download(who, &path).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(
        (b["status"].clone(), b["files_total"].clone()),
        (json!("building"), json!(3))
    );
    assert_eq!(b["bytes_total"], 12_000_000);
    // The same task with another filter: 409; someone else: 404.
    let (s, b, _) = download(who, &format!("/download_file/{t}")).await;
    assert_eq!(s, 409, "{b}");
    let (e2, pw2, _) = account_with_task().await;
    assert_eq!(download((&e2, &pw2), &path).await.0, 404);

    let got = unzip(zip_when_ready(who, &path).await);
    assert_eq!(
        got, want,
        "every matching file once, byte for byte, and nothing else"
    );
    let (_, b, _) = download(who, &path).await;
    assert_eq!(
        (b["files_done"].clone(), b["bytes_done"].clone()),
        (json!(3), json!(12_000_000))
    );

    // The task shows what it carries, and the zip is tagged for the bucket's expiry rule.
    let (_, tv) = basic("GET", &format!("/tasks/{t}"), who).await;
    assert_eq!(
        (tv["kind"].clone(), tv["download"]["status"].clone()),
        (json!("download"), json!("ready")),
        "{tv}"
    );
    let s3 = ferry_shared::aws::s3_client(&ferry_tests::aws().await);
    let tags = s3
        .get_object_tagging()
        .bucket(ferry_tests::env("DATA_BUCKET"))
        .key(format!("transfers/{e}/downloads/{t}.zip"))
        .send()
        .await
        .unwrap();
    assert!(
        tags.tag_set()
            .iter()
            .any(|t| t.key() == "ferry-kind" && t.value() == "transfer-download"),
        "{:?}",
        tags.tag_set()
    );
    // An upload task does not download, and a paused task does not start one.
    let (_, t) = basic("POST", "/create_task", who).await;
    let t = t["task_id"].as_str().unwrap().to_string();
    assert_eq!(upload_form(who, &t, "x.bin", b"x").await.0, 201);
    assert_eq!(download(who, &format!("/download_file/{t}")).await.0, 409);
    let (_, t) = basic("POST", "/create_task", who).await;
    let t = t["task_id"].as_str().unwrap().to_string();
    assert_eq!(basic("POST", &format!("/pause_task/{t}"), who).await.0, 200);
    let (s, b, _) = download(who, &format!("/download_file/{t}")).await;
    assert_eq!(
        (s, b["detail"].clone()),
        (409, json!("task is paused")),
        "{b}"
    );
    // A bad filter names its field.
    let (s, b, _) = download(who, &format!("/download_file/{t}?from_date=soon")).await;
    assert_eq!(
        (s, b["error"]["field"].clone()),
        (400, json!("from_date")),
        "{b}"
    );
}

#[tokio::test]
async fn a_paused_download_stands_still_resumes_to_a_whole_zip_and_an_abort_removes_it() {
    let (e, pw, _) = account_with_task().await;
    let who = (e.as_str(), pw.as_str());
    // 600 files of 20 KB: a build of several seconds, crossing a part boundary (12 MB).
    let files: Vec<(String, Vec<u8>)> = (0..600)
        .map(|i| {
            let bytes: Vec<u8> = (0..20_000u32).map(|j| ((i * 31 + j) % 256) as u8).collect();
            (format!("f{i:04}.bin"), bytes)
        })
        .collect();
    seed_files(&e, &files).await;

    let (_, t) = basic("POST", "/create_task", who).await;
    let t = t["task_id"].as_str().unwrap().to_string();
    let path = format!("/download_file/{t}");
    let (s, b, _) = download(who, &path).await;
    assert_eq!((s, b["files_total"].clone()), (202, json!(600)), "{b}");
    assert_eq!(basic("POST", &format!("/pause_task/{t}"), who).await.0, 200);
    // Paused: the build stops between files and stays where it is.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (_, first, _) = download(who, &path).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (_, second, _) = download(who, &path).await;
    assert_eq!(first["status"], "building", "{first}");
    assert!(
        first["files_done"].as_u64().unwrap() < 600,
        "paused mid-build: {first}"
    );
    assert_eq!(
        first["files_done"], second["files_done"],
        "no progress while paused"
    );

    assert_eq!(
        basic("POST", &format!("/resume_task/{t}"), who).await.0,
        200
    );
    let got = unzip(zip_when_ready(who, &path).await);
    assert_eq!(got.len(), 600);
    for (name, bytes) in &files {
        assert_eq!(got.get(name), Some(bytes), "{name}: once, byte for byte");
    }

    // Abort mid-build: the zip, its parts and its checkpoint go; the task is 404.
    let (_, t) = basic("POST", "/create_task", who).await;
    let t = t["task_id"].as_str().unwrap().to_string();
    let path = format!("/download_file/{t}");
    assert_eq!(download(who, &path).await.0, 202);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(basic("POST", &format!("/abort_task/{t}"), who).await.0, 200);
    assert_eq!(download(who, &path).await.0, 404);
    let s3 = ferry_shared::aws::s3_client(&ferry_tests::aws().await);
    let bucket = ferry_tests::env("DATA_BUCKET");
    let prefix = format!("transfers/{e}/downloads/{t}");
    ferry_tests::eventually(
        "the aborted download removed",
        std::time::Duration::from_secs(60),
        || async {
            let objects = s3
                .list_objects_v2()
                .bucket(&bucket)
                .prefix(&prefix)
                .send()
                .await
                .unwrap();
            let uploads = s3
                .list_multipart_uploads()
                .bucket(&bucket)
                .prefix(&prefix)
                .send()
                .await
                .unwrap();
            (objects.key_count().unwrap_or(0) == 0 && uploads.uploads().is_empty()).then_some(())
        },
    )
    .await;
}

/// A Bearer-free JSON POST with Basic credentials.
async fn basic_json(path: &str, who: (&str, &str), body: Value) -> (u16, Value) {
    call(
        http()
            .post(format!("{}{path}", base_url()))
            .basic_auth(who.0, Some(who.1))
            .json(&body),
    )
    .await
}

/// PUTs the parts whose URLs `plan` hands out, straight to the data bucket.
async fn put_parts(plan: &Value, file: &[u8], part_size: usize, only: Option<&[u64]>) {
    for u in plan["urls"].as_array().unwrap() {
        let n = u["part_number"].as_u64().unwrap();
        if only.is_some_and(|o| !o.contains(&n)) {
            continue;
        }
        let start = (n as usize - 1) * part_size;
        let end = (start + part_size).min(file.len());
        let resp = http()
            .put(u["url"].as_str().unwrap())
            .body(file[start..end].to_vec())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "part {n}: {}", resp.status());
    }
}

#[tokio::test]
async fn an_upload_in_parts_pauses_resumes_without_resending_and_an_abort_drops_its_parts() {
    let (e, pw, task) = account_with_task().await;
    let who = (e.as_str(), pw.as_str());
    let mib = 1024 * 1024;
    let file: Vec<u8> = (0..(12 * mib + 12_345))
        .map(|i| (i * 13 % 256) as u8)
        .collect();
    let (s, b) = basic_json(
        &format!("/upload_file/{task}/multipart"),
        who,
        json!({"filename": "big.bin", "size": file.len(), "part_size": 5 * mib}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["parts"], 3);
    // Bad requests name their field.
    let (_, t2) = basic("POST", "/create_task", who).await;
    let t2 = t2["task_id"].as_str().unwrap().to_string();
    for (body, field) in [
        (json!({"filename": "../x", "size": 10}), "filename"),
        (json!({"filename": "x", "size": 0}), "size"),
        (
            json!({"filename": "x", "size": 100 * mib, "part_size": 1024}),
            "part_size",
        ),
    ] {
        let (s, b) = basic_json(&format!("/upload_file/{t2}/multipart"), who, body).await;
        assert_eq!((s, b["error"]["field"].clone()), (400, json!(field)), "{b}");
    }

    // Part 1, then a pause: no URLs and no completion while paused.
    let (s, plan) = basic("GET", &format!("/upload_file/{task}/parts"), who).await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(plan["parts_missing"], json!([1, 2, 3]));
    put_parts(&plan, &file, 5 * mib, Some(&[1])).await;
    assert_eq!(
        basic("POST", &format!("/pause_task/{task}"), who).await.0,
        200
    );
    let (s, b) = basic("GET", &format!("/upload_file/{task}/parts"), who).await;
    assert_eq!(
        (s, b["detail"].clone()),
        (409, json!("task is paused")),
        "{b}"
    );
    assert_eq!(
        basic("POST", &format!("/upload_file/{task}/complete"), who)
            .await
            .0,
        409
    );

    // Resumed: S3 kept part 1, so only 2 and 3 are handed out and sent.
    assert_eq!(
        basic("POST", &format!("/resume_task/{task}"), who).await.0,
        200
    );
    let (_, plan) = basic("GET", &format!("/upload_file/{task}/parts"), who).await;
    assert_eq!(plan["parts_done"], json!([1]), "{plan}");
    assert_eq!(plan["parts_missing"], json!([2, 3]));
    assert_eq!(plan["bytes_done"], 5 * mib);
    let urls: Vec<u64> = plan["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["part_number"].as_u64().unwrap())
        .collect();
    assert_eq!(urls, [2, 3]);
    put_parts(&plan, &file, 5 * mib, Some(&[2])).await;
    let (s, b) = basic("POST", &format!("/upload_file/{task}/complete"), who).await;
    assert_eq!((s, b["parts_missing"].clone()), (409, json!([3])), "{b}");
    put_parts(&plan, &file, 5 * mib, Some(&[3])).await;
    let (s, b) = basic("POST", &format!("/upload_file/{task}/complete"), who).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["file"]["size"], file.len());
    let stored = data_object(&format!("transfers/{e}/files/big.bin"))
        .await
        .unwrap();
    assert_eq!(stored.len(), file.len(), "no byte twice");
    assert!(stored == file, "byte-identical");
    let (_, b) = basic("GET", "/files?filename=big", who).await;
    assert_eq!(b["count"], 1, "{b}");

    // Abort: the parts already sent are dropped with the upload.
    let (_, t) = basic("POST", "/create_task", who).await;
    let t = t["task_id"].as_str().unwrap().to_string();
    let (s, _) = basic_json(
        &format!("/upload_file/{t}/multipart"),
        who,
        json!({"filename": "dropped.bin", "size": 6 * mib}),
    )
    .await;
    assert_eq!(s, 201);
    let (_, plan) = basic("GET", &format!("/upload_file/{t}/parts"), who).await;
    put_parts(&plan, &file[..6 * mib], 8 * mib, None).await;
    assert_eq!(basic("POST", &format!("/abort_task/{t}"), who).await.0, 200);
    let s3 = ferry_shared::aws::s3_client(&ferry_tests::aws().await);
    let uploads = s3
        .list_multipart_uploads()
        .bucket(ferry_tests::env("DATA_BUCKET"))
        .prefix(format!("transfers/{e}/files/dropped.bin"))
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "{:?}", uploads.uploads());
    assert!(
        data_object(&format!("transfers/{e}/files/dropped.bin"))
            .await
            .is_none()
    );
    assert_eq!(
        basic("GET", &format!("/upload_file/{t}/parts"), who)
            .await
            .0,
        404
    );
}

/// The REAL worker-transfer under a host of its own, fed from a queue of the test's: 1 s slices (so a
/// 600-file build takes many slices, each going on from the last one's checkpoint and tail) and a 5 s
/// lease; killed with SIGKILL in the middle of slices. The zip still holds every file once, byte for
/// byte: a killed slice's parts are uploaded again under the same numbers from its last checkpoint.
#[tokio::test]
async fn a_zip_built_over_many_slices_and_killed_mid_slice_holds_every_file_once() {
    use ferry_shared::domain::transfer::{self, Download, DownloadStatus, Selected, Task};
    use ferry_tests::lambda_host::{HostedWorker, test_queue};
    let (e, pw, _) = account_with_task().await;
    let who = (e.as_str(), pw.as_str());
    // 600 small files and one of 60 MB that no 1 s slice streams whole: it is left part-way and
    // taken up again from its byte and CRC.
    let mut files: Vec<(String, Vec<u8>)> = (0..600)
        .map(|i| {
            let bytes: Vec<u8> = (0..20_000u32)
                .map(|j| ((i * 17 + j * 3) % 256) as u8)
                .collect();
            (format!("k{i:04}.bin"), bytes)
        })
        .collect();
    let big: Vec<u8> = (0..60_000_000u32)
        .map(|j| (j.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    files.insert(300, ("k0299-big.bin".to_string(), big));
    seed_files(&e, &files).await;
    let (_, t) = basic("POST", "/create_task", who).await;
    let t = t["task_id"].as_str().unwrap().to_string();

    // The download as the API starts it, minus its message (which would go to the stack's worker).
    let s3 = ferry_shared::aws::s3_client(&ferry_tests::aws().await);
    let bucket = ferry_tests::env("DATA_BUCKET");
    let selection: Vec<Selected> = files
        .iter()
        .map(|(name, b)| Selected {
            name: name.clone(),
            s3_key: transfer::file_key(&e, name),
            size: b.len() as u64,
            uploaded_at: ferry_shared::domain::now_rfc3339(),
        })
        .collect();
    s3.put_object()
        .bucket(&bucket)
        .key(transfer::selection_key(&e, &t))
        .body(serde_json::to_vec(&selection).unwrap().into())
        .send()
        .await
        .unwrap();
    let building = Download {
        status: DownloadStatus::Building,
        filename: None,
        from_date: None,
        to_date: None,
        files_total: files.len() as u64,
        bytes_total: files.iter().map(|f| f.1.len() as u64).sum(),
        files_done: 0,
        bytes_done: 0,
        files_missing: 0,
        zip_key: transfer::zip_key(&e, &t),
        zip_size: None,
        error: None,
        lease_until_ms: None,
        started_at: ferry_shared::domain::now_rfc3339(),
        finished_at: None,
    };
    store()
        .await
        .transition(&Key::task(&t), transfer::task_meta, |mut task: Task| {
            task.download = Some(building.clone());
            Ok(task)
        })
        .await
        .unwrap();

    let sqs = aws_sdk_sqs::Client::new(&ferry_tests::aws().await);
    let queue_url = test_queue(&sqs, &format!("zip-{}", &t[..8])).await;
    let env = vec![
        ("TRANSFER_QUEUE_URL".to_string(), queue_url.clone()),
        ("TRANSFER_SLICE_SECS".to_string(), "1".to_string()),
        ("TRANSFER_LEASE_SECS".to_string(), "5".to_string()),
    ];
    let worker = HostedWorker::start(
        &sqs,
        &queue_url,
        "worker-transfer",
        "zip-kill-worker",
        env,
        1,
    )
    .await;
    ferry_shared::queue::Queue::new(sqs.clone(), queue_url.clone())
        .send(&ferry_shared::messages::TransferMessage::BuildZip { task_id: t.clone() })
        .await
        .unwrap();

    // Progress is read from the task itself: a GET of the download would send a build whose slice
    // died to the stack's own worker-transfer, and this test is about this worker alone.
    let st = store().await;
    let started = std::time::Instant::now();
    let (mut kills, mut last_kill_done) = (0u64, 0u64);
    loop {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(240),
            "the build did not end ({kills} kills)"
        );
        let d = st
            .get::<Task>(&Key::task(&t))
            .await
            .unwrap()
            .unwrap()
            .value
            .download
            .unwrap();
        if d.status == DownloadStatus::Ready {
            break;
        }
        assert_eq!(d.status, DownloadStatus::Building, "{d:?}");
        // Two kills, each after the build has moved on since the last, at a point inside a slice.
        if kills < 2 && d.files_done > last_kill_done && worker.host.busy() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(200 + 250 * kills)).await;
            if worker.host.busy() > 0 && worker.host.kill9().await.is_some() {
                kills += 1;
                last_kill_done = d.files_done;
            }
            worker.host.release();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let slices = worker.host.invocations();
    let log = worker.log.clone();
    worker.stop().await;
    eprintln!("zip build: {kills} kills over {slices} invocations");
    assert!(kills >= 1, "at least one slice was killed");
    assert!(
        slices >= 4,
        "built over several slices ({slices} invocations)"
    );
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        log.contains("slice ended mid-file"),
        "the big file spanned slices"
    );
    let got = unzip(zip_when_ready(who, &format!("/download_file/{t}")).await);
    assert_eq!(got.len(), files.len());
    for (name, bytes) in &files {
        assert_eq!(got.get(name), Some(bytes), "{name}: once, byte for byte");
    }
}
