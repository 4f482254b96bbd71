//! AWS clients for the local stack, configured from the environment like any SDK program: endpoints come
//! from `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`, never from this code.

#[derive(Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub scheduler: aws_sdk_scheduler::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl Clients {
    pub async fn from_env() -> Self {
        let config = ferry_shared::aws::load().await;
        Self::new(&config)
    }

    pub fn new(config: &aws_config::SdkConfig) -> Self {
        // Same rule as ferry-shared's S3 client: with a custom endpoint (moto), address buckets path-style,
        // since `bucket.127.0.0.1` does not resolve.
        let custom_endpoint =
            config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(custom_endpoint)
            .build();
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3),
            scheduler: aws_sdk_scheduler::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
        }
    }
}

/// The message of an SDK error including its service error code, for logs and `anyhow` contexts
/// (`SdkError`'s own Display is only "service error").
pub fn sdk_message<E, R>(e: &aws_sdk_sqs::error::SdkError<E, R>) -> String
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(se) => format!(
            "{}: {}",
            se.code().unwrap_or("ServiceError"),
            se.message()
                .map(str::to_string)
                .unwrap_or_else(|| se.to_string())
        ),
        None => format!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)),
    }
}
