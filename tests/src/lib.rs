//! Helpers for the integration and end-to-end tests. They run against the local stack that `make test`
//! starts (DynamoDB Local, moto, cargo lambda watch, the event pump) with the environment printed by
//! `ferry-local env`; a missing variable fails the test with its name.

pub mod lambda_host;

use anyhow::Context;
use ferry_shared::store::Store;
use serde_json::Value;
use std::time::{Duration, Instant};

pub fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through `make test`"))
}

/// The HTTP API (`ferry-local gateway`, API Gateway's stand-in).
pub fn base_url() -> String {
    std::env::var("FERRY_API_URL").unwrap_or_else(|_| "http://127.0.0.1:9000".into())
}

/// The Lambda Invoke API (cargo lambda watch).
pub fn lambda_url() -> String {
    std::env::var("FERRY_WATCH_URL").unwrap_or_else(|_| "http://127.0.0.1:9001".into())
}

pub async fn aws() -> aws_config::SdkConfig {
    ferry_shared::aws::load().await
}

pub async fn store() -> Store {
    Store::new(
        aws_sdk_dynamodb::Client::new(&aws().await),
        env("TABLE_NAME"),
    )
}

pub fn http() -> reqwest::Client {
    // The first request to a function may wait for cargo lambda watch to start it.
    reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("http client")
}

/// A fresh user with a random name; returns (name, password).
pub async fn user(roles: &[&str]) -> (String, String) {
    let name = format!("u-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    ferry_shared::auth::put_user(
        &store().await,
        &name,
        &password,
        roles.iter().map(|r| r.to_string()).collect(),
        true,
    )
    .await
    .expect("create test user");
    (name, password)
}

/// Logs in through the HTTP API and returns the access token.
pub async fn token(roles: &[&str]) -> String {
    let (name, password) = user(roles).await;
    let resp = http()
        .post(format!("{}/login", base_url()))
        .json(&serde_json::json!({"username": name, "password": password}))
        .send()
        .await
        .expect("login request");
    assert_eq!(resp.status(), 200, "login failed");
    let body: Value = resp.json().await.expect("login body");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Sends a request and returns (status, JSON body or Null).
pub async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Invokes a function through cargo lambda watch's Lambda Invoke API with a raw event payload.
pub async fn invoke(function: &str, payload: &Value) -> anyhow::Result<Value> {
    let resp = http()
        .post(format!(
            "{}/2015-03-31/functions/{function}/invocations",
            lambda_url()
        ))
        .json(payload)
        .send()
        .await
        .with_context(|| format!("invoking {function}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    anyhow::ensure!(status.is_success(), "invoke {function}: {status}: {text}");
    serde_json::from_str(&text).with_context(|| format!("invoke {function} answered {text}"))
}

/// Polls `f` until it returns Some, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A bucket with a unique name, created on the local S3.
pub async fn bucket(s3: &aws_sdk_s3::Client, prefix: &str) -> String {
    let name = format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    s3.create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("create bucket");
    name
}
