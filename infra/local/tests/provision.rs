//! `provision` against the running local stack, on the real template. Each test provisions its own copy of
//! every resource (`Naming::isolated`), so tests neither see nor disturb each other or a dev stack.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use ferry_local::provision::{Naming, provision};
use ferry_local::state::State;
use ferry_local::template::Template;

fn template() -> Template {
    Template::load(&ferry_local::state::default_template_path()).expect("infra/template.yaml")
}

async fn provision_isolated(
    clients: &ferry_local::clients::Clients,
    naming: &Naming,
) -> (State, Vec<String>) {
    let mut lines = Vec::new();
    let state = provision(&template(), clients, naming, &mut |l| lines.push(l))
        .await
        .expect("provision");
    (state, lines)
}

#[tokio::test]
async fn provisioning_twice_is_idempotent_and_keeps_data_and_secret_values() {
    let clients = common::local_stack().await;
    let naming = Naming::isolated(&common::unique("t"));
    let (first, lines) = provision_isolated(&clients, &naming).await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("FerryTable") && l.contains("created")),
        "{lines:#?}"
    );

    // Data that must survive a second run: an item, a queued message, the secret's value.
    let table = &first.get("FerryTable").unwrap().reference;
    clients
        .dynamodb
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S("keep".into()))
        .item("sk", AttributeValue::S("me".into()))
        .send()
        .await
        .expect("PutItem");
    let loader_queue = &first.get("LoaderQueue").unwrap().reference;
    clients
        .sqs
        .send_message()
        .queue_url(loader_queue)
        .message_body("{}")
        .send()
        .await
        .expect("SendMessage");
    let secret_arn = &first.get("JwtSigningKey").unwrap().reference;
    let secret = clients
        .secrets
        .get_secret_value()
        .secret_id(secret_arn)
        .send()
        .await
        .expect("GetSecretValue");
    let value = secret.secret_string().unwrap().to_string();
    assert_eq!(value.len(), 64, "PasswordLength 64");
    assert!(
        value.chars().all(|c| c.is_ascii_alphanumeric()),
        "ExcludePunctuation: {value}"
    );

    let (second, lines) = provision_isolated(&clients, &naming).await;
    assert_eq!(first, second, "a second run records the same resources");
    assert!(
        lines.iter().all(|l| !l.contains(" created")),
        "nothing is created twice: {lines:#?}"
    );

    let item = clients
        .dynamodb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S("keep".into()))
        .key("sk", AttributeValue::S("me".into()))
        .send()
        .await
        .expect("GetItem");
    assert!(item.item.is_some(), "the item survived");
    assert_eq!(
        common::messages_in(&clients, loader_queue).await,
        1,
        "the message survived"
    );
    let again = clients
        .secrets
        .get_secret_value()
        .secret_id(secret_arn)
        .send()
        .await
        .expect("GetSecretValue");
    assert_eq!(
        again.secret_string(),
        Some(value.as_str()),
        "the secret kept its value"
    );

    // The state file round-trips.
    let dir = std::env::temp_dir().join(common::unique("ferry-state-"));
    second.save(&dir).unwrap();
    assert_eq!(State::load(&dir).unwrap(), second);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn table_has_its_keys_gsi_and_ttl() {
    let clients = common::local_stack().await;
    let naming = Naming::isolated(&common::unique("t"));
    let (state, _) = provision_isolated(&clients, &naming).await;
    let table = &state.get("FerryTable").unwrap().reference;
    let d = clients
        .dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("DescribeTable")
        .table
        .unwrap();
    let keys: Vec<_> = d
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_string(),
                k.key_type().as_str().to_string(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("pk".to_string(), "HASH".to_string()),
            ("sk".to_string(), "RANGE".to_string())
        ]
    );
    assert!(
        d.global_secondary_indexes()
            .iter()
            .any(|g| g.index_name() == Some("gsi1"))
    );
    assert_eq!(
        d.billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|m| m.as_str()),
        Some("PAY_PER_REQUEST")
    );
    let ttl = clients
        .dynamodb
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .expect("DescribeTimeToLive");
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|t| t.attribute_name()),
        Some("expires_at")
    );
}

#[tokio::test]
async fn queues_have_their_redrive_policy_and_visibility_timeout() {
    let clients = common::local_stack().await;
    let naming = Naming::isolated(&common::unique("t"));
    let (state, _) = provision_isolated(&clients, &naming).await;
    for (queue, dlq, visibility) in [
        ("LoaderQueue", "LoaderDlq", "360"),
        ("SyncQueue", "SyncDlq", "1800"),
        ("IngestQueue", "IngestDlq", "1800"),
        ("TransferQueue", "TransferDlq", "1800"),
    ] {
        let url = &state.get(queue).unwrap().reference;
        let attrs = clients
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes
            .unwrap();
        let redrive: serde_json::Value = serde_json::from_str(
            attrs
                .get(&QueueAttributeName::RedrivePolicy)
                .expect("RedrivePolicy"),
        )
        .unwrap();
        assert_eq!(
            redrive["deadLetterTargetArn"],
            state.get(dlq).unwrap().attributes["Arn"].as_str(),
            "{queue}"
        );
        assert_eq!(
            redrive["maxReceiveCount"].to_string().trim_matches('"'),
            "5",
            "{queue}"
        );
        assert_eq!(
            attrs
                .get(&QueueAttributeName::VisibilityTimeout)
                .map(String::as_str),
            Some(visibility),
            "{queue}"
        );
        assert!(url.ends_with(&format!("{}-{queue}", naming.stack)), "{url}");
    }
    // DLQs keep messages for 14 days.
    let dlq_url = &state.get("SyncDlq").unwrap().reference;
    let attrs = clients
        .sqs
        .get_queue_attributes()
        .queue_url(dlq_url)
        .attribute_names(QueueAttributeName::MessageRetentionPeriod)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(
        attrs[&QueueAttributeName::MessageRetentionPeriod],
        "1209600"
    );
}

#[tokio::test]
async fn a_put_into_the_ingest_bucket_lands_object_created_in_the_ingest_queue() {
    let clients = common::local_stack().await;
    let naming = Naming::isolated(&common::unique("t"));
    let (state, _) = provision_isolated(&clients, &naming).await;
    let bucket = &state.get("IngestBucket").unwrap().reference;
    let queue = &state.get("IngestQueue").unwrap().reference;

    clients
        .s3
        .put_object()
        .bucket(bucket)
        .key("events/day 1.jsonl")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"{\"a\":1}\n",
        ))
        .send()
        .await
        .expect("PutObject");

    // The first message is S3's s3:TestEvent from configuring the notification; the record follows.
    let record = common::receive_until(&clients, queue, Duration::from_secs(20), |body| {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        v["Records"][0]["eventName"]
            .as_str()
            .is_some_and(|e| e.starts_with("ObjectCreated:"))
    })
    .await
    .expect("an ObjectCreated record in the ingest queue within 20 s");
    let v: serde_json::Value = serde_json::from_str(&record).unwrap();
    let r = &v["Records"][0];
    assert_eq!(r["eventSource"], "aws:s3");
    assert_eq!(r["s3"]["bucket"]["name"], bucket.as_str());
    // Keys arrive URL-encoded, spaces as '+'.
    assert_eq!(
        url_decode(r["s3"]["object"]["key"].as_str().unwrap()),
        "events/day 1.jsonl"
    );
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("percent escape"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}
