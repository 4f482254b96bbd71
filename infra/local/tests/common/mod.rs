//! Shared set-up of the integration tests: they run against the local stack (moto and DynamoDB Local),
//! which `make test` starts and points the SDK at through `AWS_ENDPOINT_URL*`. When it is not there the
//! tests fail with a message saying so; they never skip.

#![allow(dead_code)]

use std::time::Duration;

use ferry_local::clients::Clients;

/// Fails the test with a clear message unless both local endpoints are configured and answering.
pub async fn local_stack() -> Clients {
    for (var, what) in [
        (
            "AWS_ENDPOINT_URL",
            "moto (S3, SQS, Scheduler, Secrets Manager)",
        ),
        ("AWS_ENDPOINT_URL_DYNAMODB", "DynamoDB Local"),
    ] {
        let url = std::env::var(var).unwrap_or_default();
        assert!(
            !url.is_empty(),
            "{var} is not set: these tests need {what} of the local stack. Run them through `make test`, or start the \
             stack and `source infra/local/scripts/env.sh` first."
        );
        let parsed =
            reqwest::Url::parse(&url).unwrap_or_else(|e| panic!("{var}={url:?} is not a URL: {e}"));
        let host = parsed.host_str().unwrap_or("127.0.0.1").to_string();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let reachable = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await;
        assert!(
            matches!(reachable, Ok(Ok(_))),
            "{what} is not reachable at {var}={url}: start the local stack (make test starts it) and retry"
        );
    }
    Clients::from_env().await
}

/// A name no other test run uses: lowercase letters and digits, starting with a letter.
pub fn unique(prefix: &str) -> String {
    use rand::Rng;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let salt: u32 = rand::rng().random_range(0..0x10000);
    format!("{prefix}{:x}{salt:04x}", now % 0xffff_ffff)
}

pub async fn create_queue(
    clients: &Clients,
    name: &str,
    attributes: &[(&str, String)],
) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let out = clients
        .sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(
            attributes
                .iter()
                .map(|(k, v)| (QueueAttributeName::from(*k), v.clone()))
                .collect(),
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateQueue {name}: {e:?}"));
    let url = out.queue_url.expect("queue url");
    let arn = ferry_local::pump::sqs::queue_arn(&clients.sqs, &url)
        .await
        .expect("queue arn");
    (url, arn)
}

/// Visible plus in-flight messages of a queue.
pub async fn messages_in(clients: &Clients, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName;
    let out = clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("GetQueueAttributes");
    let attrs = out.attributes().cloned().unwrap_or_default();
    let n = |k: QueueAttributeName| {
        attrs
            .get(&k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    n(QueueAttributeName::ApproximateNumberOfMessages)
        + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
}

/// Receives (long polling), deleting what it reads, until `done` accepts the bodies collected so far or
/// `within` passes. Returns every body read.
pub async fn collect_until(
    clients: &Clients,
    url: &str,
    within: Duration,
    mut done: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut bodies = Vec::new();
    while tokio::time::Instant::now() < deadline && !done(&bodies) {
        let out = clients
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("ReceiveMessage");
        for m in out.messages() {
            if let Some(rh) = m.receipt_handle() {
                clients
                    .sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(rh)
                    .send()
                    .await
                    .expect("DeleteMessage");
            }
            bodies.push(m.body().unwrap_or_default().to_string());
        }
    }
    bodies
}

/// The first body `pred` accepts within `within` (others read meanwhile are deleted and dropped).
pub async fn receive_until(
    clients: &Clients,
    url: &str,
    within: Duration,
    mut pred: impl FnMut(&str) -> bool,
) -> Option<String> {
    let bodies = collect_until(clients, url, within, |b| b.iter().any(|x| pred(x))).await;
    bodies.into_iter().find(|b| pred(b))
}
