//! The HTTP edge: one error type that maps to a status and a safe JSON body
//! `{"error": {"code", "message", "field"?}}`, body/query extractors that name the offending field, and
//! the finishing touches every HTTP function shares (health, JSON 404/405, panics as JSON 500).

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// Largest request body any route accepts (API Gateway's own limit is 10 MB).
pub const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Extra top-level keys for compatibility with an original API's error shape.
    pub extra: Map<String, Value>,
    cause: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            extra: Map::new(),
            cause: None,
        }
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
    pub fn cause(mut self, cause: impl Into<anyhow::Error>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// `field` broke `rule` (e.g. "must be 3-25 characters").
    pub fn invalid(field: &str, rule: impl std::fmt::Display) -> Self {
        Self::bad_request("invalid_field", format!("{field}: {rule}")).field(field)
    }
    pub fn missing(field: &str) -> Self {
        Self::bad_request("missing_field", format!("{field} is required")).field(field)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn bad_gateway(message: impl Into<String>, cause: impl Into<anyhow::Error>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "upstream_error", message).cause(cause)
    }
    /// A server-side failure: the client sees a generic message, the log gets the cause chain.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
        .cause(cause)
    }

    pub fn body(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        if let Some(f) = &self.field {
            error.insert("field".into(), json!(f));
        }
        let mut body = self.extra.clone();
        body.insert("error".into(), Value::Object(error));
        Value::Object(body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            match &self.cause {
                Some(c) => {
                    tracing::error!(status = self.status.as_u16(), code = self.code, cause = %format!("{c:#}"), "request failed")
                }
                None => tracing::error!(
                    status = self.status.as_u16(),
                    code = self.code,
                    "request failed"
                ),
            }
        } else {
            tracing::info!(
                status = self.status.as_u16(),
                code = self.code,
                field = self.field.as_deref(),
                "request refused"
            );
        }
        (self.status, axum::Json(self.body())).into_response()
    }
}

#[cfg(feature = "dynamo")]
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as E;
        match e {
            E::Conflict(c) => ApiError::conflict(c.0),
            E::Exists => ApiError::conflict("already exists"),
            E::NotFound => ApiError::not_found("not found"),
            E::BadCursor => ApiError::invalid("cursor", "is not a cursor this API returned"),
            other => ApiError::internal(other),
        }
    }
}

/// Turns a serde error at `path` into an error naming the field and the rule.
fn serde_field_error(path: &str, message: &str) -> ApiError {
    // For an unknown field serde_path_to_error's path already ends with it; for a missing one it is the parent.
    let join = |name: &str| match path {
        "" | "." => name.to_string(),
        p if p == name || p.ends_with(&format!(".{name}")) => p.to_string(),
        p => format!("{p}.{name}"),
    };
    let quoted = |m: &str| m.split('`').nth(1).map(str::to_string);
    if let Some(rest) = message.strip_prefix("missing field ") {
        let name = quoted(rest).unwrap_or_default();
        return ApiError::missing(&join(&name));
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let name = quoted(rest).unwrap_or_default();
        let field = join(&name);
        return ApiError::bad_request("unknown_field", format!("{field}: is not a known field"))
            .field(field);
    }
    let field = match path {
        "" | "." => "body".to_string(),
        p => p.to_string(),
    };
    // serde's own message says what was given and what was expected ("invalid type: string, expected u32").
    let rule = message.split(" at line ").next().unwrap_or(message);
    ApiError::invalid(&field, rule)
}

/// Parses a JSON document into `T`, naming the failing field on error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("missing_body", "a JSON body is required").field("body"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => serde_field_error(&path, &inner.to_string()),
            _ => ApiError::bad_request(
                "malformed_json",
                format!(
                    "body is not valid JSON (line {}, column {})",
                    inner.line(),
                    inner.column()
                ),
            )
            .field("body"),
        }
    })
}

/// Parses `application/x-www-form-urlencoded` text (a form body or a query string) into `T`, naming
/// the failing field on error (`?limit=ten` is an error of `limit`, not of the whole input).
pub fn parse_form<T: DeserializeOwned>(text: &[u8]) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(text));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        serde_field_error(&path, &e.into_inner().to_string())
    })
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

async fn read_body(req: Request) -> Result<(HeaderMap, axum::body::Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("body exceeds {MAX_BODY_BYTES} bytes"),
        )
        .field("body")
    };
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())?;
    Ok((parts.headers, bytes))
}

/// A JSON request body. Wrong content type -> 415, too large -> 413, bad JSON -> 400 naming the field.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (headers, bytes) = read_body(req).await?;
        match content_type(&headers).as_deref() {
            None | Some("application/json") => {}
            Some(ct) if ct.ends_with("+json") => {}
            Some(other) => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("content-type {other} is not application/json"),
                )
                .field("content-type"));
            }
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// A body that may be JSON or an HTML form (login accepts both, as the original did).
pub struct JsonOrForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonOrForm<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (headers, bytes) = read_body(req).await?;
        match content_type(&headers).as_deref() {
            Some("application/x-www-form-urlencoded") => parse_form(&bytes).map(JsonOrForm),
            Some("multipart/form-data") => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send JSON or application/x-www-form-urlencoded",
            )
            .field("content-type")),
            _ => parse_json(&bytes).map(JsonOrForm),
        }
    }
}

/// The query of a paginated listing (`?limit=&cursor=`): `limit` 1-200, default 50; `cursor` is
/// the opaque token the previous page gave.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<i32>,
    pub cursor: Option<String>,
}

impl PageQuery {
    pub const DEFAULT_LIMIT: i32 = 50;
    pub const MAX_LIMIT: i32 = 200;

    /// The page size asked for, checked.
    pub fn limit(&self) -> Result<i32, ApiError> {
        let limit = self.limit.unwrap_or(Self::DEFAULT_LIMIT);
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("must be between 1 and {}", Self::MAX_LIMIT),
            ));
        }
        Ok(limit)
    }
}

/// Query-string parameters, with errors naming the parameter.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        parse_form(q.as_bytes()).map(QueryParams)
    }
}

async fn live() -> axum::Json<Value> {
    axum::Json(json!({"status": "ok"}))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
    .into_response()
}

/// Adds what every HTTP function serves besides its own routes: `GET /health/live`, JSON 404 and 405,
/// and a JSON 500 for a panicking handler.
pub fn finish(router: Router) -> Router {
    router
        .route("/health/live", get(live))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
}

/// Serves `router` as a Lambda function behind API Gateway (or cargo lambda watch).
pub async fn run(router: Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(router).await
}

/// `field` holds an S3 bucket name: 3-63 lowercase letters, digits, `-` or `.`, starting and ending
/// with a letter or digit (the rule the job APIs apply to source and destination buckets).
pub fn bucket_rule(field: &str, name: &str) -> Result<(), ApiError> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be a valid S3 bucket name (3-63 lowercase letters, digits, '-' or '.')",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        size: u32,
        inner: Option<Inner>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        depth: u8,
    }

    #[test]
    fn missing_field_is_named() {
        let e = parse_json::<Body>(br#"{"size": 3}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.field.as_deref(), Some("name"));
        assert_eq!(e.code, "missing_field");
    }

    #[test]
    fn wrong_type_names_the_nested_field() {
        let e =
            parse_json::<Body>(br#"{"name":"a","size":1,"inner":{"depth":"deep"}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("inner.depth"));
        assert!(e.message.contains("expected u8"), "{}", e.message);
    }

    #[test]
    fn malformed_json_and_empty_body_are_400() {
        assert_eq!(
            parse_json::<Body>(b"{oops").unwrap_err().code,
            "malformed_json"
        );
        assert_eq!(parse_json::<Body>(b"").unwrap_err().code, "missing_body");
    }

    #[test]
    fn unknown_field_is_refused_by_name() {
        let e = parse_json::<Body>(br#"{"name":"a","size":1,"colour":"red"}"#).unwrap_err();
        assert_eq!(e.code, "unknown_field");
        assert_eq!(e.field.as_deref(), Some("colour"));
    }

    #[test]
    fn query_strings_name_the_parameter_at_fault() {
        let e = parse_form::<PageQuery>(b"limit=ten").unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("invalid_field", Some("limit"))
        );
        let e = parse_form::<PageQuery>(b"limit=5&colour=red").unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("unknown_field", Some("colour"))
        );
        let e = parse_form::<Body>(b"size=3").unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("missing_field", Some("name"))
        );
        let q = parse_form::<PageQuery>(b"cursor=a%2Bb").unwrap();
        assert_eq!((q.limit().unwrap(), q.cursor.as_deref()), (50, Some("a+b")));
        let e = parse_form::<PageQuery>(b"limit=201")
            .unwrap()
            .limit()
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limit"));
    }

    #[test]
    fn error_body_has_the_documented_shape() {
        let body = ApiError::invalid("job_name", "must be 3-25 characters")
            .with("message", json!("x"))
            .body();
        assert_eq!(body["error"]["code"], "invalid_field");
        assert_eq!(body["error"]["field"], "job_name");
        assert_eq!(body["message"], "x");
    }
}
