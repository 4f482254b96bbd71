//! S3 target of the S3 loader: a client for the request's endpoint, region and keys (else the
//! function's own), buckets created with the loader's owner tag, full listings, parallel-friendly puts
//! and bulk deletes, and emptying a bucket before deleting it.

use super::{Creds, TargetError};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier, Tag, Tagging,
};

/// Every bucket the loader creates is named `ferry-s3-loader-<16 random hex digits>`.
pub const BUCKET_PREFIX: &str = "ferry-s3-loader-";
/// The tag that marks a bucket as created by a loader: its value is the loader id.
pub const OWNER_TAG: &str = "ferry-loader-id";

fn failed<E, R>(what: &str, e: SdkError<E, R>) -> TargetError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            TargetError::Unreachable(format!("{what}: {}", DisplayErrorContext(&e)))
        }
        SdkError::ServiceError(s) => match s.err().code() {
            Some(
                c @ ("AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "InvalidToken"),
            ) => TargetError::Refused(format!("{what}: the credentials were refused ({c})")),
            Some(c @ ("NoSuchBucket" | "BucketAlreadyExists")) => {
                TargetError::Refused(format!("{what}: {c}"))
            }
            _ => TargetError::Failed(format!("{what}: {}", DisplayErrorContext(&e))),
        },
        _ => TargetError::Failed(format!("{what}: {}", DisplayErrorContext(&e))),
    }
}

/// A client for the target: the function's configuration with the request's region, endpoint and keys
/// when given. A custom endpoint (an S3-compatible store, moto locally) gets path-style addressing.
pub fn client(
    base: &aws_config::SdkConfig,
    region: Option<&str>,
    endpoint_url: Option<&str>,
    creds: &Creds,
) -> Client {
    let custom = endpoint_url.is_some()
        || base.endpoint_url().is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    // A load generator's bodies are its own fake files: no CRC32 computed for each PUT (for the
    // worker, nor for the store to check), and `put` sends them without SigV4's payload SHA-256;
    // in AWS, TLS carries them.
    let mut b = aws_sdk_s3::config::Builder::from(base)
        .force_path_style(custom)
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired);
    if let Some(r) = region {
        b = b.region(aws_sdk_s3::config::Region::new(r.to_string()));
    }
    if let Some(e) = endpoint_url {
        b = b.endpoint_url(e);
    }
    if let (Some(a), Some(s)) = (&creds.access_key, &creds.secret_key) {
        b = b.credentials_provider(aws_sdk_s3::config::Credentials::new(
            a.clone(),
            s.clone(),
            creds.session_token.clone(),
            None,
            "loader-request",
        ));
    }
    Client::from_conf(b.build())
}

/// `n` fresh bucket names.
pub fn bucket_names(n: u32) -> Vec<String> {
    (0..n)
        .map(|_| {
            let suffix = uuid::Uuid::new_v4().simple().to_string();
            format!("{BUCKET_PREFIX}{}", &suffix[..16])
        })
        .collect()
}

/// S3's bucket naming rules (the common subset): 3-63 lowercase letters, digits, `-` and `.`,
/// starting and ending with a letter or digit.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && edge(name.chars().next())
        && edge(name.chars().last())
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err("must be 3-63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit".into())
    }
}

/// The host of an `endpoint_url` (for the allow-list): `http(s)://host[:port][/...]`, no user info.
pub fn endpoint_host(endpoint_url: &str) -> Result<String, String> {
    let rest = endpoint_url
        .strip_prefix("https://")
        .or_else(|| endpoint_url.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("must not carry credentials: send access_key and secret_key instead".into());
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    Ok(host.to_ascii_lowercase())
}

#[derive(Clone, Debug)]
pub struct S3Target {
    client: Client,
}

impl S3Target {
    pub fn new(client: Client) -> S3Target {
        S3Target { client }
    }

    /// Whether `bucket` exists (and these credentials may see it).
    pub async fn exists(&self, bucket: &str) -> Result<bool, TargetError> {
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) => Err(failed(&format!("head bucket {bucket}"), e)),
        }
    }

    /// Creates `bucket` tagged with its owner loader; a bucket these credentials already own is kept
    /// as it is.
    pub async fn create_bucket(&self, bucket: &str, loader_id: &str) -> Result<(), TargetError> {
        let mut req = self.client.create_bucket().bucket(bucket);
        let region = self
            .client
            .config()
            .region()
            .map(|r| r.as_ref().to_string());
        if let Some(r) = region.filter(|r| r != "us-east-1") {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(r.as_str()))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => {}
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => return Ok(()),
            Err(e) => return Err(failed(&format!("create bucket {bucket}"), e)),
        }
        let tag = Tag::builder()
            .key(OWNER_TAG)
            .value(loader_id)
            .build()
            .map_err(|e| TargetError::Failed(e.to_string()))?;
        let tagging = Tagging::builder()
            .tag_set(tag)
            .build()
            .map_err(|e| TargetError::Failed(e.to_string()))?;
        self.client
            .put_bucket_tagging()
            .bucket(bucket)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| failed(&format!("tag bucket {bucket}"), e))?;
        Ok(())
    }

    /// The loader id in the bucket's owner tag; None for a bucket no loader created.
    pub async fn owner(&self, bucket: &str) -> Result<Option<String>, TargetError> {
        match self.client.get_bucket_tagging().bucket(bucket).send().await {
            Ok(out) => Ok(out
                .tag_set
                .into_iter()
                .find(|t| t.key == OWNER_TAG)
                .map(|t| t.value)),
            Err(e) if e.code() == Some("NoSuchTagSet") => Ok(None),
            Err(e) => Err(failed(&format!("get tags of {bucket}"), e)),
        }
    }

    /// Every key in `bucket`.
    pub async fn list(&self, bucket: &str) -> Result<Vec<String>, TargetError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| failed(&format!("list {bucket}"), e))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(String::from)),
            );
            match out.next_continuation_token {
                Some(t) if out.is_truncated == Some(true) => token = Some(t),
                _ => return Ok(keys),
            }
        }
    }

    pub async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> Result<(), TargetError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| failed(&format!("put {bucket}/{key}"), e))?;
        Ok(())
    }

    /// Deletes `keys` (DeleteObjects, 1000 at a time); returns how many S3 reported deleted.
    pub async fn delete(&self, bucket: &str, keys: &[String]) -> Result<u64, TargetError> {
        let mut deleted = 0u64;
        for chunk in keys.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TargetError::Failed(e.to_string()))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(false)
                .build()
                .map_err(|e| TargetError::Failed(e.to_string()))?;
            let out = self
                .client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| failed(&format!("delete from {bucket}"), e))?;
            if let Some(err) = out.errors().first() {
                return Err(TargetError::Failed(format!(
                    "delete {bucket}/{}: {}",
                    err.key().unwrap_or_default(),
                    err.code().unwrap_or_default()
                )));
            }
            deleted += out.deleted().len() as u64;
        }
        Ok(deleted)
    }

    /// Empties `bucket`, then deletes it; returns the number of objects deleted.
    pub async fn empty_and_delete(&self, bucket: &str) -> Result<u64, TargetError> {
        let keys = self.list(bucket).await?;
        let deleted = self.delete(bucket, &keys).await?;
        self.client
            .delete_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| failed(&format!("delete bucket {bucket}"), e))?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_bucket_names_are_valid_and_distinct() {
        let names = bucket_names(50);
        for n in &names {
            assert!(n.starts_with(BUCKET_PREFIX));
            check_bucket_name(n).unwrap();
        }
        let set: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(set.len(), 50);
    }

    #[test]
    fn endpoint_hosts_are_parsed_for_the_allow_list() {
        assert_eq!(endpoint_host("http://127.0.0.1:4566").unwrap(), "127.0.0.1");
        assert_eq!(
            endpoint_host("https://S3.example.com/x").unwrap(),
            "s3.example.com"
        );
        assert_eq!(endpoint_host("http://[::1]:9000").unwrap(), "::1");
        assert!(endpoint_host("ftp://h").is_err());
        assert!(endpoint_host("http://u:p@h").is_err());
        assert!(endpoint_host("http://").is_err());
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        for bad in ["ab", "Upper", "-x-y", "a..b", "x_y", &"a".repeat(64)] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
        for good in ["abc", "my.bucket-1", "1bucket"] {
            assert!(check_bucket_name(good).is_ok(), "{good}");
        }
    }
}
