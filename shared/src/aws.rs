//! One AWS configuration per process, loaded from the environment. Local endpoints come from
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` like anywhere else: there is no local flag.

pub use aws_config::SdkConfig;

pub async fn load() -> SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
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
