//! Parameter sets: what an on-demand run copies, per project, env and action. They arrive as the
//! original's params files (`KEY=VALUE` lines, `#` comments) or as a JSON object with the same keys,
//! and are validated into a [`ParamSet`]. Source keys (given as `SOURCE_ACCESS_KEY_ID` /
//! `SOURCE_SECRET_ACCESS_KEY`, or as the user and password of `SOURCE_ENDPOINT_URL`) are split off
//! into [`Credentials`] for Secrets Manager: a stored set holds only the secret's ARN.

use ferry_shared::domain::sync::{Action, Destination, Source};
use ferry_shared::http::ApiError;
use ferry_shared::http::bucket_rule;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

pub const FILTERED: &str = "<FILTERED>";

const KEYS: [&str; 11] = [
    "SOURCE_BUCKET",
    "SOURCE_PREFIX",
    "DESTINATION_BUCKET",
    "DESTINATION_PREFIX",
    "SOURCE_ENDPOINT_URL",
    "SOURCE_REGION",
    "SOURCE_ACCESS_KEY_ID",
    "SOURCE_SECRET_ACCESS_KEY",
    "CHUNK_SIZE",
    "CONCURRENCY",
    "MAX_ATTEMPTS",
];

const MIB: u64 = 1024 * 1024;

/// A validated parameter set, as stored (never a secret, only the ARN of the one holding the keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamSet {
    pub source_bucket: String,
    pub source_prefix: String,
    pub destination_bucket: String,
    pub destination_prefix: String,
    pub source_endpoint_url: Option<String>,
    pub source_region: Option<String>,
    pub credentials_secret_arn: Option<String>,
    pub chunk_size: u64,
    pub concurrency: u32,
    pub max_attempts: u32,
}

/// Source keys to keep in Secrets Manager; never logged, never answered.
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Credentials {
    /// The secret's value, in the shape worker-sync reads.
    pub fn secret_value(&self) -> String {
        json!({"access_key_id": self.access_key_id, "secret_access_key": self.secret_access_key})
            .to_string()
    }
}

/// Reads a body: JSON when it looks like (or is declared as) JSON, else `KEY=VALUE` lines.
pub fn parse_body(bytes: &[u8], json_declared: bool) -> Result<BTreeMap<String, String>, ApiError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| ApiError::invalid("body", "must be UTF-8 text"))?;
    if json_declared || text.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| ApiError::invalid("body", format!("is not valid JSON ({e})")))?;
        let Value::Object(map) = v else {
            return Err(ApiError::invalid(
                "body",
                "must be a JSON object of parameters",
            ));
        };
        from_json(&map)
    } else {
        parse_lines(text)
    }
}

/// `KEY=VALUE` lines; blank lines and `#` comments are skipped, values may be quoted.
pub fn parse_lines(text: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            return Err(ApiError::invalid(
                &format!("line {}", n + 1),
                "must be KEY=VALUE",
            ));
        };
        insert(&mut out, k.trim(), unquote(v.trim()))?;
    }
    Ok(out)
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

/// A JSON object of parameters (strings or numbers; null means absent).
pub fn from_json(map: &Map<String, Value>) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Null => continue,
            _ => {
                return Err(ApiError::invalid(
                    &k.to_ascii_uppercase(),
                    "must be a string or a number",
                ));
            }
        };
        insert(&mut out, k, value)?;
    }
    Ok(out)
}

fn insert(out: &mut BTreeMap<String, String>, key: &str, value: String) -> Result<(), ApiError> {
    let key = key.to_ascii_uppercase();
    if !KEYS.contains(&key.as_str()) {
        return Err(ApiError::invalid(
            &key,
            format!("is not a known parameter (known: {})", KEYS.join(", ")),
        ));
    }
    if out.insert(key.clone(), value).is_some() {
        return Err(ApiError::invalid(&key, "is given more than once"));
    }
    Ok(())
}

fn prefix_rule(field: &str, p: &str) -> Result<(), ApiError> {
    if p.len() > 1024 || p.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must be at most 1024 characters without control characters",
        ));
    }
    Ok(())
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    m: &BTreeMap<String, String>,
    key: &str,
    default: T,
    (lo, hi): (T, T),
    unit: &str,
) -> Result<T, ApiError> {
    let Some(raw) = m.get(key) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(v) if v >= lo && v <= hi => Ok(v),
        _ => Err(ApiError::invalid(
            key,
            format!("must be a whole number from {lo} to {hi}{unit}"),
        )),
    }
}

/// The endpoint without its user info, and the user info's keys if it had any.
pub fn split_endpoint(url: &str) -> Result<(String, Option<Credentials>), ApiError> {
    const FIELD: &str = "SOURCE_ENDPOINT_URL";
    let rule = "must be an http:// or https:// URL (user:password@ in it are the source's keys)";
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(s, _)| *s == "http" || *s == "https")
        .ok_or_else(|| ApiError::invalid(FIELD, rule))?;
    if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::invalid(FIELD, rule));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if host.is_empty() {
        return Err(ApiError::invalid(FIELD, rule));
    }
    let creds = match userinfo {
        None => None,
        Some(u) => {
            let (id, secret) = u.split_once(':').unwrap_or((u, ""));
            if id.is_empty() || secret.is_empty() {
                return Err(ApiError::invalid(
                    FIELD,
                    "user info must be ACCESS_KEY_ID:SECRET_ACCESS_KEY",
                ));
            }
            Some(Credentials {
                access_key_id: id.to_string(),
                secret_access_key: secret.to_string(),
            })
        }
    };
    Ok((format!("{scheme}://{host}{path}"), creds))
}

/// Replaces the user info (`user:password@`) of every URL in `text` with `<FILTERED>@`.
pub fn filter_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(FILTERED);
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Validates parameters into a set (without its secret ARN) and the keys to store, if any.
pub fn validate(m: &BTreeMap<String, String>) -> Result<(ParamSet, Option<Credentials>), ApiError> {
    let required = |k: &str| {
        m.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::missing(k))
    };
    let source_bucket = required("SOURCE_BUCKET")?;
    bucket_rule("SOURCE_BUCKET", &source_bucket)?;
    let destination_bucket = required("DESTINATION_BUCKET")?;
    bucket_rule("DESTINATION_BUCKET", &destination_bucket)?;
    let source_prefix = m.get("SOURCE_PREFIX").cloned().unwrap_or_default();
    prefix_rule("SOURCE_PREFIX", &source_prefix)?;
    let destination_prefix = m.get("DESTINATION_PREFIX").cloned().unwrap_or_default();
    prefix_rule("DESTINATION_PREFIX", &destination_prefix)?;
    let (source_endpoint_url, url_creds) = match m.get("SOURCE_ENDPOINT_URL") {
        Some(u) if !u.trim().is_empty() => {
            let (url, c) = split_endpoint(u.trim())?;
            (Some(url), c)
        }
        _ => (None, None),
    };
    let source_region = match m.get("SOURCE_REGION") {
        Some(r)
            if r.is_empty()
                || r.len() > 32
                || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            return Err(ApiError::invalid(
                "SOURCE_REGION",
                "must be a region name such as us-east-1",
            ));
        }
        r => r.cloned(),
    };
    let key_creds = match (
        m.get("SOURCE_ACCESS_KEY_ID"),
        m.get("SOURCE_SECRET_ACCESS_KEY"),
    ) {
        (None, None) => None,
        (Some(id), Some(secret)) if !id.trim().is_empty() && !secret.is_empty() => {
            Some(Credentials {
                access_key_id: id.trim().to_string(),
                secret_access_key: secret.clone(),
            })
        }
        (Some(_), None) => {
            return Err(ApiError::invalid(
                "SOURCE_SECRET_ACCESS_KEY",
                "must be given, non-empty, together with SOURCE_ACCESS_KEY_ID",
            ));
        }
        _ => {
            return Err(ApiError::invalid(
                "SOURCE_ACCESS_KEY_ID",
                "must be given, non-empty, together with SOURCE_SECRET_ACCESS_KEY",
            ));
        }
    };
    let credentials = match (url_creds, key_creds) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "SOURCE_ACCESS_KEY_ID",
                "must not be given when SOURCE_ENDPOINT_URL carries the keys",
            ));
        }
        (a, b) => a.or(b),
    };
    let set = ParamSet {
        source_bucket,
        source_prefix,
        destination_bucket,
        destination_prefix,
        source_endpoint_url,
        source_region,
        credentials_secret_arn: None,
        chunk_size: number(
            m,
            "CHUNK_SIZE",
            10 * MIB,
            (5 * MIB, 5 * 1024 * MIB),
            " bytes (S3's part size limits)",
        )?,
        concurrency: number(m, "CONCURRENCY", 8, (1, 64), "")?,
        max_attempts: number(m, "MAX_ATTEMPTS", 5, (1, 20), "")?,
    };
    Ok((set, credentials))
}

impl ParamSet {
    pub fn source(&self) -> Source {
        Source {
            bucket_name: self.source_bucket.clone(),
            prefix: self.source_prefix.clone(),
            endpoint_url: self.source_endpoint_url.clone(),
            region: self.source_region.clone(),
            credentials_secret_arn: self.credentials_secret_arn.clone(),
        }
    }

    pub fn destination(&self) -> Destination {
        Destination {
            bucket: self.destination_bucket.clone(),
            prefix: self.destination_prefix.clone(),
        }
    }

    /// Where the run reads, as a URL; keys show as `<FILTERED>`.
    pub fn source_url(&self) -> String {
        source_url(&self.source())
    }

    pub fn destination_url(&self) -> String {
        destination_url(&self.destination())
    }

    /// The set as `KEY: value` pairs, secrets filtered (what GET answers; PUT of it round-trips the
    /// non-secret keys).
    pub fn public(&self) -> Value {
        let mut m = Map::new();
        m.insert("SOURCE_BUCKET".into(), json!(self.source_bucket));
        m.insert("SOURCE_PREFIX".into(), json!(self.source_prefix));
        m.insert("DESTINATION_BUCKET".into(), json!(self.destination_bucket));
        m.insert("DESTINATION_PREFIX".into(), json!(self.destination_prefix));
        if let Some(e) = &self.source_endpoint_url {
            m.insert("SOURCE_ENDPOINT_URL".into(), json!(e));
        }
        if let Some(r) = &self.source_region {
            m.insert("SOURCE_REGION".into(), json!(r));
        }
        if self.credentials_secret_arn.is_some() {
            m.insert("SOURCE_ACCESS_KEY_ID".into(), json!(FILTERED));
            m.insert("SOURCE_SECRET_ACCESS_KEY".into(), json!(FILTERED));
        }
        m.insert("CHUNK_SIZE".into(), json!(self.chunk_size.to_string()));
        m.insert("CONCURRENCY".into(), json!(self.concurrency.to_string()));
        m.insert("MAX_ATTEMPTS".into(), json!(self.max_attempts.to_string()));
        Value::Object(m)
    }
}

/// Where a job reads, as a URL; a source with keys shows them as `<FILTERED>`.
pub fn source_url(src: &Source) -> String {
    let secret = if src.credentials_secret_arn.is_some() {
        format!("{FILTERED}@")
    } else {
        String::new()
    };
    match &src.endpoint_url {
        Some(e) => {
            // Stored endpoints carry no user info; filter anyway in case an old item does.
            let e = filter_urls(e);
            let (scheme, rest) = e.split_once("://").unwrap_or(("https", &e));
            format!(
                "{scheme}://{secret}{}/{}/{}",
                rest.trim_end_matches('/'),
                src.bucket_name,
                src.prefix
            )
        }
        None => format!("s3://{secret}{}/{}", src.bucket_name, src.prefix),
    }
}

pub fn destination_url(d: &Destination) -> String {
    format!("s3://{}/{}", d.bucket, d.prefix)
}

/// A validated project or env name: it becomes part of keys, so it is kept to a plain alphabet.
pub fn name_rule(field: &str, raw: &str) -> Result<String, ApiError> {
    let ok = (1..=63).contains(&raw.len())
        && raw.as_bytes()[0].is_ascii_alphanumeric()
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(ApiError::invalid(
            field,
            "must be 1-63 lowercase letters, digits, '-' or '_'",
        ))
    }
}

pub fn action_rule(raw: &str) -> Result<Action, ApiError> {
    serde_json::from_value(json!(raw))
        .map_err(|_| ApiError::invalid("action", "must be one of sync, delta, delete, diff"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(t: &str) -> Result<(ParamSet, Option<Credentials>), ApiError> {
        validate(&parse_lines(t)?)
    }

    #[test]
    fn params_files_parse_with_comments_quotes_and_defaults() {
        let (set, creds) = lines(
            "# avo qas\nSOURCE_BUCKET=src-bucket\nsource_prefix = \"docs/\"\n\nDESTINATION_BUCKET='dst-bucket'\nCONCURRENCY=4\n",
        )
        .unwrap();
        assert_eq!(set.source_bucket, "src-bucket");
        assert_eq!(set.source_prefix, "docs/");
        assert_eq!(set.destination_bucket, "dst-bucket");
        assert_eq!(set.concurrency, 4);
        assert_eq!(set.chunk_size, 10 * MIB);
        assert!(creds.is_none());
    }

    #[test]
    fn errors_name_the_key_and_the_rule() {
        let field = |r: Result<(ParamSet, Option<Credentials>), ApiError>| {
            r.err().and_then(|e| e.field).unwrap_or_default()
        };
        assert_eq!(field(lines("DESTINATION_BUCKET=dst")), "SOURCE_BUCKET");
        assert_eq!(
            field(lines("SOURCE_BUCKET=Bad_Bucket\nDESTINATION_BUCKET=dst")),
            "SOURCE_BUCKET"
        );
        assert_eq!(
            field(lines(
                "SOURCE_BUCKET=src\nDESTINATION_BUCKET=dst\nCONCURRENCY=0"
            )),
            "CONCURRENCY"
        );
        assert_eq!(field(lines("SOURCE_BUCKET=src\nCOLOUR=blue")), "COLOUR");
        assert_eq!(field(lines("SOURCE_BUCKET=src\nnonsense")), "line 2");
        assert_eq!(
            field(lines("SOURCE_BUCKET=a1c\nsource_bucket=b1c")),
            "SOURCE_BUCKET"
        );
    }

    #[test]
    fn endpoint_user_info_becomes_credentials_and_is_filtered() {
        let (mut set, creds) = lines(
            "SOURCE_BUCKET=src\nDESTINATION_BUCKET=dst\nSOURCE_ENDPOINT_URL=http://AKID:s3cret@store.example:9000",
        )
        .unwrap();
        let creds = creds.unwrap();
        assert_eq!(
            (
                creds.access_key_id.as_str(),
                creds.secret_access_key.as_str()
            ),
            ("AKID", "s3cret")
        );
        assert_eq!(
            set.source_endpoint_url.as_deref(),
            Some("http://store.example:9000")
        );
        set.credentials_secret_arn = Some("arn:x".into());
        assert_eq!(
            set.source_url(),
            "http://<FILTERED>@store.example:9000/src/"
        );
        assert!(!set.public().to_string().contains("s3cret"));
    }

    #[test]
    fn url_filter_hides_user_info_only() {
        assert_eq!(
            filter_urls("postgres://u:pw@db:5432/x and http://h/p"),
            "postgres://<FILTERED>@db:5432/x and http://h/p"
        );
        assert_eq!(filter_urls("no urls"), "no urls");
    }

    #[test]
    fn json_bodies_use_the_same_keys() {
        let m = parse_body(
            br#"{"source_bucket": "src", "DESTINATION_BUCKET": "dst", "MAX_ATTEMPTS": 3}"#,
            false,
        )
        .unwrap();
        let (set, _) = validate(&m).unwrap();
        assert_eq!(set.max_attempts, 3);
        let err = parse_body(br#"{"SOURCE_BUCKET": ["x"]}"#, true).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("SOURCE_BUCKET"));
    }
}
