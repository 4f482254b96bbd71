//! The S3 loader end to end: HTTP -> DynamoDB + Secrets Manager + SQS -> the pump -> worker-loader ->
//! moto S3, checked against the buckets themselves: the layout, each format read back with its own
//! library's reader, CRUD within each folder's band, stop, restart, delete_bucket, restore, errors.

use ferry_shared::loaders::hotel::Hotel;
use ferry_tests::{aws, base_url, call, eventually, http, token};
mod loaders_common;

use loaders_common::{loader, until_phase};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(300);

async fn post(tok: &str, path: &str, body: Value) -> (u16, Value) {
    call(
        http()
            .post(format!("{}{path}", base_url()))
            .bearer_auth(tok)
            .json(&body),
    )
    .await
}

async fn delete_bucket(tok: &str, body: Value) -> (u16, Value) {
    call(
        http()
            .delete(format!("{}/s3/delete_bucket", base_url()))
            .bearer_auth(tok)
            .json(&body),
    )
    .await
}

async fn s3() -> aws_sdk_s3::Client {
    ferry_shared::aws::s3_client(&aws().await)
}

/// key -> (size, etag) of every object in `bucket`.
async fn objects(c: &aws_sdk_s3::Client, bucket: &str) -> BTreeMap<String, (i64, String)> {
    let mut out = BTreeMap::new();
    let mut token = None;
    loop {
        let page = c
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        for o in page.contents() {
            out.insert(
                o.key().unwrap().to_string(),
                (o.size().unwrap_or(0), o.e_tag().unwrap_or("").to_string()),
            );
        }
        match page.next_continuation_token {
            Some(t) if page.is_truncated == Some(true) => token = Some(t),
            _ => return out,
        }
    }
}

/// Every folder of a layout: the bucket root, then `Depth_{d}_Folder_{k}/` nested to `depth`.
fn folders(depth: u32, per_level: u32) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut level = vec![String::new()];
    for d in 1..=depth {
        level = level
            .iter()
            .flat_map(|p| (1..=per_level).map(move |k| format!("{p}Depth_{d}_Folder_{k}/")))
            .collect();
        all.extend(level.iter().cloned());
    }
    all
}

/// Files per folder, from keys `{folder}{n}.{ext}`; panics on a key outside the folders or misnamed.
fn per_folder(
    keys: impl Iterator<Item = String>,
    folders: &[String],
    formats: &[&str],
) -> BTreeMap<String, BTreeSet<u64>> {
    let mut out: BTreeMap<String, BTreeSet<u64>> = folders
        .iter()
        .map(|f| (f.clone(), BTreeSet::new()))
        .collect();
    for key in keys {
        let (folder, name) = match key.rfind('/') {
            Some(i) => key.split_at(i + 1),
            None => ("", key.as_str()),
        };
        let (n, ext) = name.split_once('.').unwrap_or_else(|| panic!("{key}"));
        let n: u64 = n.parse().unwrap_or_else(|_| panic!("{key}"));
        assert_eq!(ext, formats[(n % formats.len() as u64) as usize], "{key}");
        out.get_mut(folder)
            .unwrap_or_else(|| panic!("{key} is outside the layout"))
            .insert(n);
    }
    out
}

/// Reads a file with its format's own library and returns its record count, checking each record is a
/// hotel of the asked size.
fn read_back(ext: &str, bytes: &[u8], file_size: usize) -> usize {
    let n = match ext {
        "json" => {
            let hotels: Vec<Hotel> = bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect();
            assert!(hotels.iter().all(|h| h.document_size == file_size as i64));
            hotels.len()
        }
        "csv" | "tsv" => {
            let mut r = csv::ReaderBuilder::new()
                .delimiter(if ext == "csv" { b',' } else { b'\t' })
                .from_reader(bytes);
            let headers = r.headers().unwrap().clone();
            assert_eq!(&headers[0], "country");
            let key = headers.iter().position(|h| h == "key").unwrap();
            let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
            assert!(rows.iter().all(|row| row.len() == headers.len()));
            assert!(rows.iter().all(|row| !row[key].is_empty()));
            rows.len()
        }
        "avro" => {
            let reader = apache_avro::Reader::new(bytes).unwrap();
            let hotels: Vec<Hotel> = reader
                .into_iter()
                .map(|v| apache_avro::from_value::<Hotel>(&v.unwrap()).unwrap())
                .collect();
            assert!(hotels.iter().all(|h| h.document_size == file_size as i64));
            hotels.len()
        }
        "parquet" => {
            use parquet::file::reader::{FileReader, SerializedFileReader};
            let reader = SerializedFileReader::new(bytes::Bytes::from(bytes.to_vec())).unwrap();
            let rows = reader.metadata().file_metadata().num_rows() as usize;
            let read = reader.get_row_iter(None).unwrap().count();
            assert_eq!(read, rows);
            rows
        }
        other => panic!("unknown format {other}"),
    };
    assert!(n > 0, "{ext}: no records");
    // Within one record of the asked size (json, csv and tsv are exact).
    let per_record = bytes.len() / n;
    assert!(
        bytes.len().abs_diff(file_size) <= per_record,
        "{ext}: {} bytes for {file_size} asked ({n} records)",
        bytes.len()
    );
    if matches!(ext, "json" | "csv" | "tsv") {
        assert_eq!(bytes.len(), file_size, "{ext}");
    }
    n
}

const FORMATS: [&str; 5] = ["json", "csv", "tsv", "avro", "parquet"];

#[tokio::test]
async fn s3_fill_builds_the_exact_layout_and_every_format_reads_back_at_its_size() {
    let tok = token(&["user"]).await;
    let body = json!({
        "num_buckets": 2, "depth_level": 2, "num_folders_per_level": 2, "num_files_per_level": 5,
        "file_size": 12_000, "file_format": FORMATS, "crud": false,
        // moto takes any keys: these travel through Secrets Manager to the worker.
        "access_key": "AKIAFERRYTEST", "secret_key": "s3cr3t-never-shown",
        "endpoint_url": ferry_tests::env("AWS_ENDPOINT_URL"), "region": "us-east-1"
    });
    let (s, b) = post(&tok, "/s3/start_loader", body).await;
    assert_eq!(s, 200, "{b}");
    assert!(!b.to_string().contains("s3cr3t"), "{b}");
    assert!(!b.to_string().contains("arn:"), "{b}");
    assert_eq!(b["status"], "running");
    let id = b["loader_id"].as_str().unwrap().to_string();
    let buckets: Vec<String> = serde_json::from_value(b["bucket"].clone()).unwrap();
    assert_eq!(buckets.len(), 2);
    assert!(buckets.iter().all(|x| x.starts_with("ferry-s3-loader-")));
    let l = until_phase(&id, "completed", WAIT).await;
    assert_eq!(l["current_count"], 70, "{l}");
    assert!(!l.to_string().contains("s3cr3t"), "{l}");

    let c = s3().await;
    let fs = folders(2, 2);
    // Five files a folder: file n gets FORMATS[n % 5], so every format is in every folder.
    let want: BTreeSet<u64> = (0..5).collect();
    let mut seen_formats = BTreeSet::new();
    for bucket in &buckets {
        let objs = objects(&c, bucket).await;
        assert_eq!(objs.len(), 35, "{bucket}");
        for (folder, files) in per_folder(objs.keys().cloned(), &fs, &FORMATS) {
            assert_eq!(files, want, "{bucket}/{folder}");
        }
        for key in objs.keys() {
            let ext = key.rsplit('.').next().unwrap();
            let bytes = c
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes();
            read_back(ext, &bytes, 12_000);
            seen_formats.insert(ext.to_string());
        }
    }
    assert_eq!(seen_formats.len(), 5, "every format was written");

    // delete_bucket empties and deletes the loader's own bucket.
    for bucket in &buckets {
        let (s, b) = delete_bucket(&tok, json!({"bucket_name": bucket})).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["response"], "SUCCESS");
        assert_eq!(b["deleted_objects"], 35);
        assert!(c.head_bucket().bucket(bucket).send().await.is_err());
    }
    let (s, b) = delete_bucket(&tok, json!({"bucket_name": buckets[0]})).await;
    assert_eq!(s, 404, "{b}");
    assert_eq!(b["error"]["field"], "bucket_name");
}

#[tokio::test]
async fn s3_crud_keeps_every_folder_in_its_band_stops_cleanly_and_restarts_by_id() {
    let tok = token(&["user"]).await;
    let body = json!({
        "num_buckets": 1, "depth_level": 1, "num_folders_per_level": 3, "num_files_per_level": 5,
        "num_buffer": 2, "file_size": 2048, "file_format": "json,csv", "rate_limit": 40
    });
    let (s, b) = post(&tok, "/s3/start_loader", body).await;
    assert_eq!(s, 200, "{b}");
    let id = b["loader_id"].as_str().unwrap().to_string();
    let bucket = b["bucket"][0].as_str().unwrap().to_string();
    assert_eq!(b["s3"]["min_files"], 3);
    assert_eq!(b["s3"]["max_files"], 7);
    until_phase(&id, "crud", WAIT).await;

    // A second loader's target: restore or delete of a running loader's bucket is a conflict.
    let (s, b) = post(
        &tok,
        "/s3/restore",
        json!({"bucket_name": bucket, "depth_level": 1, "num_folders_per_level": 3, "num_files_per_level": 5}),
    )
    .await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["loader_id"], id.as_str());
    let (s, b) = delete_bucket(&tok, json!({"bucket_name": bucket, "force": true})).await;
    assert_eq!(s, 409, "{b}");

    let c = s3().await;
    let fs = folders(1, 3);
    let mut changed = false;
    let first = objects(&c, &bucket).await;
    // At least 12 looks a second apart, and on until CRUD changed something (a slice may be queued
    // behind other loaders' for a while on a busy machine); every look finds every folder in its band.
    for i in 0..90 {
        let objs = objects(&c, &bucket).await;
        for (folder, files) in per_folder(objs.keys().cloned(), &fs, &["json", "csv"]) {
            assert!((3..=7).contains(&files.len()), "{folder}: {files:?}");
        }
        changed |= objs != first;
        if changed && i >= 12 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(changed, "CRUD changed the bucket");
    let running = loader(&id).await;
    for op in ["inserted", "updated", "deleted"] {
        assert!(running["ops"][op].as_u64().unwrap() > 0, "{running}");
    }

    let (s, b) = post(&tok, "/s3/stop_loader", json!({"loader_id": id})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["bucket"][0], bucket.as_str());
    let stopped = until_phase(&id, "stopped", WAIT).await;
    let frozen = objects(&c, &bucket).await;
    assert_eq!(
        frozen.len() as u64,
        stopped["current_count"].as_u64().unwrap()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        objects(&c, &bucket).await,
        frozen,
        "a stopped loader changes nothing"
    );

    // Restart by id: the layout is filled again (each folder back to files 0..5), then CRUD.
    let (s, b) = post(&tok, "/s3/start_loader", json!({"loader_id": id})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["response"], format!("Loader {id} restarted successfully"));
    eventually("restarted loader back in crud", WAIT, || async {
        let l = loader(&id).await;
        (l["phase"] == "crud" && l["runs"] == 2).then_some(())
    })
    .await;
    post(&tok, "/s3/stop_loader", json!({"loader_id": id})).await;
    until_phase(&id, "stopped", WAIT).await;
    let (s, b) = delete_bucket(&tok, json!({"bucket_name": bucket})).await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn s3_stop_during_a_fill_ends_it_with_an_exact_count_and_whole_files() {
    let tok = token(&["user"]).await;
    // 5 folders of 2,000 files: tens of seconds of fill, stopped as soon as the first files land.
    let body = json!({
        "num_buckets": 1, "depth_level": 1, "num_folders_per_level": 4, "num_files_per_level": 2000,
        "file_size": 1024, "file_format": "json,csv", "crud": false
    });
    let (s, b) = post(&tok, "/s3/start_loader", body).await;
    assert_eq!(s, 200, "{b}");
    let id = b["loader_id"].as_str().unwrap().to_string();
    let bucket = b["bucket"][0].as_str().unwrap().to_string();
    let c = s3().await;
    eventually("fill under way", WAIT, || async {
        let page = c
            .list_objects_v2()
            .bucket(&bucket)
            .max_keys(1)
            .send()
            .await
            .ok()?;
        (page.key_count() > Some(0)).then_some(())
    })
    .await;
    let (s, b) = post(&tok, "/s3/stop_loader", json!({"loader_id": id})).await;
    assert_eq!(s, 200, "{b}");
    let stopped = until_phase(&id, "stopped", WAIT).await;
    let n = stopped["current_count"].as_u64().unwrap();
    let objs = objects(&c, &bucket).await;
    assert_eq!(objs.len() as u64, n, "the count is the bucket's own");
    assert!(n > 0 && n < 10_000, "the fill stopped part way: {n}");
    // Every file that is there is whole, and named within the layout.
    per_folder(objs.keys().cloned(), &folders(1, 4), &["json", "csv"]);
    assert!(
        objs.values().all(|(size, _)| *size == 1024),
        "every file is whole"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        objects(&c, &bucket).await.len() as u64,
        n,
        "a stopped fill adds nothing"
    );
    let (s, b) = delete_bucket(&tok, json!({"bucket_name": bucket})).await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn s3_restore_brings_a_bucket_back_to_the_layout_and_foreign_buckets_need_force() {
    let tok = token(&["user"]).await;
    let c = s3().await;
    let bucket = ferry_tests::bucket(&c, "restore").await;
    for key in [
        "junk.txt",
        "Depth_1_Folder_1/99.json",
        "Depth_1_Folder_2/0.csv",
        "0.json",
    ] {
        c.put_object()
            .bucket(&bucket)
            .key(key)
            .body(b"x".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let (s, b) = post(
        &tok,
        "/s3/restore",
        json!({"bucket_name": bucket, "depth_level": 1, "num_folders_per_level": 2,
               "num_files_per_level": 2, "file_size": 1500}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let id = b["loader_id"].as_str().unwrap().to_string();
    until_phase(&id, "completed", WAIT).await;
    let objs = objects(&c, &bucket).await;
    let want: BTreeSet<String> = ["", "Depth_1_Folder_1/", "Depth_1_Folder_2/"]
        .iter()
        .flat_map(|f| [format!("{f}0.json"), format!("{f}1.json")])
        .collect();
    assert_eq!(objs.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(objs["0.json"].0, 1, "a file already in the layout is kept");
    assert_eq!(objs["Depth_1_Folder_1/0.json"].0, 1500);

    let (s, b) = delete_bucket(&tok, json!({"bucket_name": bucket})).await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["error"]["field"], "bucket_name");
    let (s, b) = delete_bucket(&tok, json!({"bucket_name": bucket, "force": true})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["deleted_objects"], 6);
}

#[tokio::test]
async fn s3_bad_input_gets_422_or_400_naming_the_field() {
    let tok = token(&["user"]).await;
    let (s, b) = post(&tok, "/s3/start_loader", json!({"num_buckets": 1})).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(
        b["required_parameters"],
        json!([
            "num_buckets",
            "depth_level",
            "num_folders_per_level",
            "num_files_per_level"
        ])
    );
    assert_eq!(b["error"]["field"], "depth_level");
    let ok = json!({"num_buckets": 1, "depth_level": 1, "num_folders_per_level": 1, "num_files_per_level": 1});
    for (field, value, expect) in [
        ("file_format", json!("xml"), "file_format"),
        ("file_format", json!([]), "file_format"),
        ("num_buckets", json!(0), "num_buckets"),
        ("num_buckets", json!("many"), "num_buckets"),
        ("file_size", json!(0), "file_size"),
        ("depth_level", json!(9), "depth_level"),
        ("min_files", json!(5), "min_files"),
        ("endpoint_url", json!("ftp://x"), "endpoint_url"),
        ("access_key", json!("AKIA"), "secret_key"),
    ] {
        let mut body = ok.clone();
        body[field] = value.clone();
        if field == "depth_level" {
            body["num_folders_per_level"] = json!(10);
        }
        let (s, b) = post(&tok, "/s3/start_loader", body).await;
        assert_eq!(s, 400, "{field}={value}: {b}");
        assert_eq!(b["error"]["field"], expect, "{field}={value}: {b}");
    }
    let mut far = ok.clone();
    far["endpoint_url"] = json!("http://8.8.8.8:9000");
    let (s, b) = post(&tok, "/s3/start_loader", far).await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = post(&tok, "/s3/stop_loader", json!({"loader_id": "nope"})).await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = post(&tok, "/s3/start_loader", json!({"loader_id": "nope"})).await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = post(
        &tok,
        "/s3/restore",
        json!({"bucket_name": "Bad_Name", "depth_level": 1,
        "num_folders_per_level": 1, "num_files_per_level": 1}),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["field"], "bucket_name");
    let (s, b) = delete_bucket(&tok, json!({})).await;
    assert_eq!(s, 422, "{b}");
    let (s, _) = call(
        http()
            .post(format!("{}/s3/start_loader", base_url()))
            .json(&ok),
    )
    .await;
    assert_eq!(s, 401);
}
