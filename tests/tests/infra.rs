//! Infra checks: the template and the code agree. Every environment variable a function reads is set
//! for it in the template, every route in the template is served by the function it names, and the
//! queues keep the rules ARCHITECTURE §5 sets (a DLQ, visibility >= 6x the consumer's timeout).

use ferry_local::Template;
use ferry_tests::invoke;
use regex::Regex;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn template() -> Template {
    Template::load(&root().join("infra/template.yaml")).expect("template parses")
}

fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(sources(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push((p.clone(), std::fs::read_to_string(&p).unwrap()));
        }
    }
    out
}

/// A crate's sources: its `src` tree, plus the trees of the files it includes with `#[path = ".."]`
/// (worker-loader-s3 compiles worker-loader's engine that way).
fn crate_sources(src: &Path) -> Vec<(PathBuf, String)> {
    let include = Regex::new(r#"#\[path = "([^"]+)"\]"#).unwrap();
    let mut out = sources(src);
    let mut dirs = BTreeSet::new();
    for (path, text) in &out {
        for c in include.captures_iter(text) {
            let file = path.parent().unwrap().join(&c[1]);
            let dir = file.parent().unwrap().canonicalize().unwrap();
            if dir != src.canonicalize().unwrap() {
                dirs.insert(dir);
            }
        }
    }
    for dir in dirs {
        out.extend(sources(&dir));
    }
    out
}

#[test]
fn every_function_crate_is_in_the_template_and_back() {
    let t = template();
    let in_template: BTreeSet<String> = t.functions.iter().map(|f| f.binary.clone()).collect();
    // Every directory with a Cargo.toml (functions/build.rs is the build script they share).
    let crates: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(in_template, crates);
    assert_eq!(crates.len(), 10);
}

#[test]
fn every_env_var_a_function_reads_is_set_for_it_in_the_template() {
    let reads = Regex::new(r#"config::(?:required|optional|parsed)\(\s*"([A-Z0-9_]+)""#).unwrap();
    let direct = Regex::new(r"std::env::var|env::var\(").unwrap();
    for f in template().functions {
        let set = ferry_local::env_vars_of(&f.binary).unwrap();
        let mut read = BTreeSet::new();
        for (path, text) in crate_sources(&root().join("functions").join(&f.binary).join("src")) {
            assert!(
                !direct.is_match(&text),
                "{} reads the environment directly; use ferry_shared::config",
                path.display()
            );
            read.extend(reads.captures_iter(&text).map(|c| c[1].to_string()));
        }
        assert!(
            !read.is_empty(),
            "{} reads no configuration at all?",
            f.binary
        );
        let missing: Vec<_> = read.difference(&set).collect();
        assert!(
            missing.is_empty(),
            "{} reads {missing:?} but the template does not set them",
            f.binary
        );
    }
}

#[test]
fn queues_have_dlqs_and_visibility_at_least_six_times_their_consumer_timeout() {
    let t = template();
    for f in &t.functions {
        for src in &f.sqs_events {
            assert!(
                src.reports_batch_item_failures(),
                "{} must report batch item failures",
                f.binary
            );
            let q = &t.resources[&src.queue].properties;
            let vis = q["VisibilityTimeout"].as_u64().unwrap_or(30);
            assert!(
                vis >= 6 * f.timeout_secs,
                "{}: visibility {vis} < 6 x {}",
                src.queue,
                f.timeout_secs
            );
            assert!(
                q["RedrivePolicy"]["maxReceiveCount"].as_u64().is_some(),
                "{} has no DLQ",
                src.queue
            );
        }
    }
}

fn apigw(method: &str, path: &str) -> Value {
    json!({
        "version": "2.0", "routeKey": format!("{method} {path}"), "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "localhost"},
        "requestContext": {"accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "localhost",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "r", "routeKey": format!("{method} {path}"), "stage": "$default", "time": "23/Nov/2026:19:00:00 +0000", "timeEpoch": 0},
        "body": "{}", "isBase64Encoded": false
    })
}

#[tokio::test]
async fn every_route_in_the_template_is_served_by_the_function_it_names() {
    let routes = ferry_local::routes(&template());
    assert!(routes.len() >= 10);
    for (method, path, binary) in routes {
        let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
        let resp = invoke(&binary, &apigw(&method, &concrete)).await.unwrap();
        let status = resp["statusCode"].as_u64().unwrap_or(0);
        let body: Value =
            serde_json::from_str(resp["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
        assert_ne!(
            status, 405,
            "{method} {path} -> {binary}: method not allowed"
        );
        assert!(
            !(status == 404 && body["error"]["message"] == "no such route"),
            "{method} {path} is not served by {binary}"
        );
        assert!(status < 500, "{method} {path} -> {binary}: {status} {body}");
    }
}

#[tokio::test]
async fn a_route_a_function_does_not_serve_gets_a_json_404() {
    let resp = invoke("api-jobs", &apigw("GET", "/no/such/route"))
        .await
        .unwrap();
    assert_eq!(resp["statusCode"], 404);
    let body: Value = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}
