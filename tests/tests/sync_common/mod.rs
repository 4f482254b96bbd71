//! Helpers shared by the sync test files (`sync_e2e`, `sync_faults`): jobs and runs over HTTP, S3
//! objects, and a second moto server standing in for a foreign S3-compatible store.
#![allow(dead_code)]

use ferry_tests::{base_url, call, eventually, http};
use serde_json::Value;
use std::time::Duration;

pub async fn s3() -> aws_sdk_s3::Client {
    ferry_shared::aws::s3_client(&ferry_tests::aws().await)
}

pub async fn create_job(tok: &str, body: Value) -> String {
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

pub async fn runs(job: &str) -> Vec<Value> {
    let (s, b) = call(http().get(format!("{}/api/v1/jobs/{job}/runs", base_url()))).await;
    assert_eq!(s, 200, "{b}");
    b["runs"].as_array().cloned().unwrap_or_default()
}

/// Starts a run now; returns its id.
pub async fn run_now(tok: &str, job: &str) -> String {
    let (s, b) = call(
        http()
            .post(format!("{}/api/v1/jobs/{job}/run", base_url()))
            .bearer_auth(tok),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    b["run_id"].as_str().unwrap().to_string()
}

/// The run once it has ended.
pub async fn ended(job: &str, run_id: &str, timeout: Duration) -> Value {
    eventually("the run to end", timeout, || async {
        runs(job).await.into_iter().find(|r| {
            r["run_id"] == run_id && r["status"] != "starting" && r["status"] != "running"
        })
    })
    .await
}

pub async fn run_status(job: &str, run_id: &str) -> Option<Value> {
    runs(job).await.into_iter().find(|r| r["run_id"] == run_id)
}

/// Every object record of a run, in the API's order.
pub async fn objects(job: &str, run_id: &str) -> Vec<Value> {
    let (s, b) = call(http().get(format!(
        "{}/api/v1/jobs/{job}/objects?run_id={run_id}&limit=1000",
        base_url()
    )))
    .await;
    assert_eq!(s, 200, "{b}");
    b["objects"].as_array().cloned().unwrap_or_default()
}

pub async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

pub async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let o = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    o.body.collect().await.unwrap().into_bytes().to_vec()
}

pub async fn keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
    while let Some(p) = pages.next().await {
        for o in p.unwrap().contents.unwrap_or_default() {
            out.push(o.key.unwrap());
        }
    }
    out
}

/// `len` bytes that differ per `seed` (not compressible into sameness).
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn md5(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A second moto server on a free port: a foreign S3-compatible store. Stopped when dropped.
pub struct ForeignMoto {
    child: tokio::process::Child,
    pub url: String,
}

impl ForeignMoto {
    pub async fn start() -> ForeignMoto {
        let cache = std::env::var("FERRY_CACHE")
            .unwrap_or_else(|_| format!("{}/.cache/ferry", std::env::var("HOME").unwrap()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(format!("{cache}/bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start a second moto server");
        let url = format!("http://127.0.0.1:{port}");
        let probe = format!("{url}/moto-api/");
        eventually(
            "the foreign moto to answer",
            Duration::from_secs(30),
            || {
                let probe = probe.clone();
                async move { reqwest::get(&probe).await.ok().map(|_| ()) }
            },
        )
        .await;
        ForeignMoto { child, url }
    }

    /// Creates bucket `name` in the foreign store (region eu-west-1).
    pub async fn bucket(&self, name: &str) {
        self.client()
            .create_bucket()
            .bucket(name)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    /// A client for the foreign store, with keys of its own (moto accepts any).
    pub fn client(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .http_client(ferry_shared::aws::http_client())
            .region(aws_sdk_s3::config::Region::new("eu-west-1"))
            .endpoint_url(&self.url)
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "foreign-key",
                "foreign-secret",
                None,
                None,
                "test",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }
}

impl Drop for ForeignMoto {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
