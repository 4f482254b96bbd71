//! One AWS configuration per process, loaded from the environment. Local endpoints come from
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` like anywhere else: there is no local flag.

pub use aws_config::SdkConfig;
pub use aws_smithy_runtime_api::client::http::SharedHttpClient;

pub async fn load() -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client())
        .load()
        .await
}

/// The HTTP client every SDK client uses: hyper and rustls with the ring provider and the system's
/// root certificates. The SDK's default (`default-https-client`) brings aws-lc, a second crypto
/// library next to the ring the MongoDB driver's TLS uses; one is enough.
pub fn http_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

#[cfg(feature = "s3")]
pub use aws_sdk_s3 as s3;

/// An S3 client. With a custom endpoint (an S3-compatible store, or moto locally) path-style addressing
/// is used, since such stores rarely resolve `bucket.host` names.
#[cfg(feature = "s3")]
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint =
        config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(custom_endpoint)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}
