//! `ferry-local gateway`: API Gateway (HTTP API, payload format 2.0) for the local stack. It serves the
//! template's HttpApi routes on 127.0.0.1 and calls each route's function through the Lambda Invoke
//! API of `cargo lambda watch`, as API Gateway calls Lambda once deployed.
//!
//! Why not cargo lambda watch's own HTTP router: under concurrent requests (watch `--concurrency` > 1)
//! about one request in 300 came back as watch's own `500 {"type":"https://httpstatuses.com/500"}`
//! with no trace in the function's log, while its Invoke API answered thousands of the same requests
//! without a failure. The gateway also takes its routes from the template itself, so there is no
//! second route table to keep in sync.
//!
//! What it does as API Gateway does: route matching with `{param}` and `{proxy+}` (literal segments
//! win over parameters, parameters over greedy paths, a method over `ANY`), `pathParameters`,
//! repeated query keys and headers joined with commas, binary bodies base64-encoded, `cookies`; a
//! missing route is `404 {"message":"Not Found"}`, a request over Lambda's 6 MB payload limit `413`,
//! a function error `500 {"message":"Internal Server Error"}` and a function slower than the route's
//! limit (the function's timeout, at most 30 s) `503 {"message":"Service Unavailable"}`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use crate::template::Template;

/// Lambda's limit on a synchronous invocation's payload.
pub const MAX_PAYLOAD: usize = 6 * 1024 * 1024;
/// API Gateway's integration timeout ceiling.
pub const MAX_TIMEOUT_SECS: u64 = 30;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    /// `{name+}`: the rest of the path, one or more segments.
    Greedy(String),
}

/// A matched route's path parameters, by name.
pub type Params = BTreeMap<String, String>;

/// The parts of an HTTP request an event is made of.
pub struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

#[derive(Debug, Clone)]
pub struct Route {
    /// `GET /jobs/{id}` as API Gateway names it (`routeKey`).
    pub key: String,
    method: String,
    segments: Vec<Segment>,
    pub binary: String,
    pub timeout: Duration,
}

/// The template's routes.
#[derive(Debug, Clone)]
pub struct Table(Vec<Route>);

fn split(path: &str) -> Vec<&str> {
    path.strip_prefix('/').unwrap_or(path).split('/').collect()
}

impl Table {
    pub fn from_template(template: &Template) -> Table {
        let mut routes = Vec::new();
        for f in &template.functions {
            for e in &f.http_events {
                let segments = split(&e.path)
                    .into_iter()
                    .map(
                        |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                            Some(name) => match name.strip_suffix('+') {
                                Some(name) => Segment::Greedy(name.to_string()),
                                None => Segment::Param(name.to_string()),
                            },
                            None => Segment::Literal(s.to_string()),
                        },
                    )
                    .collect();
                let method = match e.method.as_str() {
                    "*" => "ANY".to_string(),
                    m => m.to_string(),
                };
                routes.push(Route {
                    key: format!("{method} {}", e.path),
                    method,
                    segments,
                    binary: f.binary.clone(),
                    timeout: Duration::from_secs(f.timeout_secs.clamp(1, MAX_TIMEOUT_SECS)),
                });
            }
        }
        Table(routes)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The route serving `method path`, with its path parameters, by API Gateway's precedence.
    pub fn find(&self, method: &str, path: &str) -> Option<(&Route, Params)> {
        let parts = split(path);
        let mut best: Option<((usize, usize, bool), &Route, Params)> = None;
        for r in &self.0 {
            if r.method != "ANY" && r.method != method {
                continue;
            }
            let Some(params) = matches(&r.segments, &parts) else {
                continue;
            };
            // More literal segments first, then fewer greedy ones, then a method over ANY.
            let literals = r
                .segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count();
            let not_greedy =
                usize::from(!r.segments.iter().any(|s| matches!(s, Segment::Greedy(_))));
            let rank = (literals, not_greedy, r.method != "ANY");
            if best.as_ref().is_none_or(|(b, _, _)| rank > *b) {
                best = Some((rank, r, params));
            }
        }
        best.map(|(_, r, p)| (r, p))
    }
}

fn matches(segments: &[Segment], parts: &[&str]) -> Option<Params> {
    let mut params = BTreeMap::new();
    for (i, seg) in segments.iter().enumerate() {
        match seg {
            Segment::Greedy(name) => {
                let rest = parts.get(i..)?;
                if rest.is_empty() || rest.iter().all(|p| p.is_empty()) {
                    return None;
                }
                params.insert(name.clone(), rest.join("/"));
                return Some(params);
            }
            Segment::Literal(l) => {
                if parts.get(i)? != l {
                    return None;
                }
            }
            Segment::Param(name) => {
                let p = parts.get(i)?;
                if p.is_empty() {
                    return None;
                }
                params.insert(
                    name.clone(),
                    percent_encoding::percent_decode_str(p)
                        .decode_utf8_lossy()
                        .into_owned(),
                );
            }
        }
    }
    (parts.len() == segments.len()).then_some(params)
}

fn is_text(headers: &HeaderMap) -> bool {
    match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        None => true,
        Some(ct) => {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("text/")
                || ct.contains("json")
                || ct.contains("xml")
                || ct.starts_with("application/x-www-form-urlencoded")
                || ct.starts_with("application/javascript")
        }
    }
}

/// The payload format 2.0 event API Gateway would send for this request.
pub fn event(route: &Route, params: &Params, req: &Incoming<'_>, request_id: &str) -> Value {
    let mut hs: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in req.headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == header::COOKIE {
            cookies.extend(
                v.split(';')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        hs.entry(name.as_str().to_string())
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v)
            })
            .or_insert(v);
    }
    let mut qs: BTreeMap<String, String> = BTreeMap::new();
    if let Some(q) = req.query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()).into_owned() {
            qs.entry(k)
                .and_modify(|e| {
                    e.push(',');
                    e.push_str(&v)
                })
                .or_insert(v);
        }
    }
    let (body, encoded) = if req.body.is_empty() {
        (Value::Null, false)
    } else if is_text(req.headers) && std::str::from_utf8(req.body).is_ok() {
        (json!(String::from_utf8_lossy(req.body)), false)
    } else {
        (json!(B64.encode(req.body)), true)
    };
    let now = chrono::Utc::now();
    let mut e = json!({
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": req.path,
        "rawQueryString": req.query.unwrap_or(""),
        "headers": hs,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": req.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost"),
            "domainPrefix": "local",
            "http": {
                "method": req.method,
                "path": req.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": req.headers.get(header::USER_AGENT).and_then(|h| h.to_str().ok()).unwrap_or(""),
            },
            "requestId": request_id,
            "routeKey": route.key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": encoded,
    });
    let m = e.as_object_mut().expect("an object");
    if !qs.is_empty() {
        m.insert("queryStringParameters".into(), json!(qs));
    }
    if !params.is_empty() {
        m.insert("pathParameters".into(), json!(params));
    }
    if !cookies.is_empty() {
        m.insert("cookies".into(), json!(cookies));
    }
    if !body.is_null() {
        m.insert("body".into(), body);
    }
    e
}

fn message(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(json!({ "message": text }).to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The HTTP response API Gateway makes of a function's payload format 2.0 answer.
pub fn response(payload: &Value) -> Response<Body> {
    let Some(obj) = payload.as_object().filter(|o| o.contains_key("statusCode")) else {
        // A bare JSON value: 200 with that JSON as the body.
        let mut r = Response::new(Body::from(payload.to_string()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return r;
    };
    let status = obj
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok());
    let Some(status) = status else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let body = match obj.get("body") {
        Some(Value::String(s)) if obj.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
            match B64.decode(s) {
                Ok(b) => b,
                Err(_) => {
                    return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
                }
            }
        }
        Some(Value::String(s)) => s.clone().into_bytes(),
        _ => Vec::new(),
    };
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    let empty = Map::new();
    for (name, value) in obj
        .get("headers")
        .and_then(Value::as_object)
        .unwrap_or(&empty)
    {
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            h.insert(n, v);
        }
    }
    for (name, values) in obj
        .get("multiValueHeaders")
        .and_then(Value::as_object)
        .unwrap_or(&empty)
    {
        for value in values
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if let (Ok(n), Ok(v)) = (
                header::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                h.append(n, v);
            }
        }
    }
    for c in obj
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    r
}

struct Gateway {
    table: Table,
    http: reqwest::Client,
    /// Where the Lambda Invoke API is (cargo lambda watch).
    lambda_url: String,
}

async fn handle(gw: Arc<Gateway>, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let Some((route, params)) = gw.table.find(&method, &path) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let body = match axum::body::to_bytes(body, MAX_PAYLOAD).await {
        Ok(b) => b,
        Err(_) => return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
    };
    let request_id = uuid_like();
    let incoming = Incoming {
        method: &method,
        path: &path,
        query: parts.uri.query(),
        headers: &parts.headers,
        body: &body,
    };
    let ev = event(route, &params, &incoming, &request_id);
    let payload = ev.to_string();
    if payload.len() > MAX_PAYLOAD {
        return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    }
    let url = format!(
        "{}/2015-03-31/functions/{}/invocations",
        gw.lambda_url, route.binary
    );
    let sent = gw
        .http
        .post(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .timeout(route.timeout)
        .body(payload)
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            tracing::warn!(route = %route.key, function = %route.binary, "function did not answer in time");
            return message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
        Err(e) => {
            tracing::error!(route = %route.key, function = %route.binary, error = %e, "invoke failed");
            return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
    };
    let status = resp.status();
    let text = match resp.text().await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(route = %route.key, error = %e, "reading the function's answer failed");
            return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
    };
    if !status.is_success() {
        tracing::error!(route = %route.key, function = %route.binary, %status, "function error");
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(v) if v.get("errorType").is_some() && v.get("statusCode").is_none() => {
            tracing::error!(route = %route.key, function = %route.binary, "function error");
            message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
        Ok(v) => response(&v),
        Err(_) => message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    }
}

fn uuid_like() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Serves the template's routes on `addr` until `stop` turns true.
pub async fn serve(
    template: &Template,
    addr: std::net::SocketAddr,
    lambda_url: &str,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let table = Table::from_template(template);
    tracing::info!(routes = table.len(), %addr, lambda = lambda_url, "gateway listening");
    let gw = Arc::new(Gateway {
        table,
        http: reqwest::Client::new(),
        lambda_url: lambda_url.trim_end_matches('/').to_string(),
    });
    let app = axum::Router::new().fallback(move |req: Request<Body>| handle(gw.clone(), req));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Template::load(&crate::state::default_template_path())
            .map(|t| Table::from_template(&t))
            .expect("the template loads")
    }

    #[test]
    fn literal_paths_beat_parameters_and_parameters_are_decoded() {
        let t = table();
        let (r, p) = t.find("GET", "/jobs").unwrap();
        assert_eq!(
            (r.key.as_str(), r.binary.as_str()),
            ("GET /jobs", "api-jobs")
        );
        assert!(p.is_empty());
        let (r, p) = t.find("GET", "/loaders/abc%2Fd").unwrap();
        assert_eq!(r.binary, "api-loaders");
        assert_eq!(p.values().next().unwrap(), "abc/d");
        assert!(t.find("GET", "/no/such/route").is_none());
        assert!(
            t.find("PATCH", "/jobs").is_none(),
            "a method the route lacks"
        );
        // API Gateway tells a trailing slash apart.
        assert_eq!(
            t.find("POST", "/create_user/").unwrap().0.key,
            "POST /create_user/"
        );
        assert_eq!(
            t.find("POST", "/create_user").unwrap().0.key,
            "POST /create_user"
        );
    }

    #[test]
    fn greedy_and_param_segments_match_as_api_gateway_does() {
        let segs = |p: &str| {
            split(p)
                .into_iter()
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(n) if n.ends_with('+') => {
                            Segment::Greedy(n.trim_end_matches('+').into())
                        }
                        Some(n) => Segment::Param(n.into()),
                        None => Segment::Literal(s.into()),
                    },
                )
                .collect::<Vec<_>>()
        };
        let g = segs("/files/{key+}");
        assert_eq!(matches(&g, &split("/files/a/b/c")).unwrap()["key"], "a/b/c");
        assert!(matches(&g, &split("/files/")).is_none());
        assert!(matches(&g, &split("/files")).is_none());
        let p = segs("/t/{id}");
        assert!(matches(&p, &split("/t/")).is_none(), "an empty parameter");
        assert!(matches(&p, &split("/t/x/y")).is_none());
    }

    #[test]
    fn events_carry_query_headers_cookies_and_binary_bodies_as_api_gateway_sends_them() {
        let t = table();
        let (r, p) = t.find("GET", "/jobs").unwrap();
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        h.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        h.append(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let req = Incoming {
            method: "GET",
            path: "/jobs",
            query: Some("page=2&x=a+b&x=%41"),
            headers: &h,
            body: &[0, 255],
        };
        let e = event(r, &p, &req, "id");
        assert_eq!(e["headers"]["x-a"], "1,2");
        assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(
            e["queryStringParameters"],
            json!({"page": "2", "x": "a b,A"})
        );
        assert_eq!(e["rawQueryString"], "page=2&x=a+b&x=%41");
        assert_eq!(
            (e["body"].as_str(), e["isBase64Encoded"].as_bool()),
            (Some("AP8="), Some(true))
        );
        assert_eq!(e["routeKey"], "GET /jobs");
        let lambda: lambda_http_event::Request = serde_json::from_value(e).unwrap();
        assert_eq!(lambda.raw_path.as_deref(), Some("/jobs"));
    }

    #[test]
    fn answers_become_http_responses() {
        let r = response(
            &json!({"statusCode": 409, "headers": {"content-type": "application/json"},
            "cookies": ["s=1"], "body": "{\"a\":1}", "isBase64Encoded": false}),
        );
        assert_eq!(r.status(), 409);
        assert_eq!(r.headers()[header::SET_COOKIE], "s=1");
        let r = response(&json!({"statusCode": 200, "body": "AP8=", "isBase64Encoded": true}));
        assert_eq!(r.status(), 200);
        let r = response(&json!({"statusCode": 99999}));
        assert_eq!(r.status(), 500);
        let r = response(&json!([1, 2]));
        assert_eq!(r.status(), 200);
    }
}

/// The request type the tests parse an event into, to prove it is a valid payload 2.0 event.
#[cfg(test)]
mod lambda_http_event {
    pub type Request = aws_lambda_events::apigw::ApiGatewayV2httpRequest;
}
