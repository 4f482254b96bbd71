//! Login and token checks, end to end through cargo lambda watch.

use ferry_tests::{base_url, call, env, http, token, user};
use jsonwebtoken_free::*;
use serde_json::json;

/// Builds HS256 tokens by hand so the test does not share code with the verifier it checks.
mod jsonwebtoken_free {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use hmac::{Hmac, Mac};
    use serde_json::Value;

    pub fn sign(header: &Value, claims: &Value, key: &[u8]) -> String {
        let h = B64.encode(serde_json::to_vec(header).unwrap());
        let c = B64.encode(serde_json::to_vec(claims).unwrap());
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(format!("{h}.{c}").as_bytes());
        format!("{h}.{c}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    pub fn unsigned(claims: &Value) -> String {
        let h = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let c = B64.encode(serde_json::to_vec(claims).unwrap());
        format!("{h}.{c}.")
    }
}

async fn signing_key() -> Vec<u8> {
    let aws = ferry_tests::aws().await;
    let client = aws_sdk_secretsmanager::Client::new(&aws);
    ferry_shared::secrets::get_string(&client, &env("JWT_SECRET_ARN"))
        .await
        .unwrap()
        .into_bytes()
}

#[tokio::test]
async fn login_with_json_or_form_returns_a_bearer_token() {
    let (name, password) = user(&["user"]).await;
    let (status, body) = call(
        http()
            .post(format!("{}/login", base_url()))
            .json(&json!({"username": name, "password": password})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);

    let (status, body) = call(
        http()
            .post(format!("{}/login", base_url()))
            .form(&[("username", &name), ("password", &password)]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.to_string().contains(&password),
        "a response must never echo the password"
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let (name, _) = user(&["user"]).await;
    let (s1, b1) = call(
        http()
            .post(format!("{}/login", base_url()))
            .json(&json!({"username": name, "password": "wrong-password"})),
    )
    .await;
    let (s2, b2) = call(
        http()
            .post(format!("{}/login", base_url()))
            .json(&json!({"username": "nobody-here", "password": "wrong-password"})),
    )
    .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(b1, b2);
    assert_eq!(b1["error"]["code"], "unauthorized");
}

#[tokio::test]
async fn bad_login_bodies_are_4xx_naming_the_field() {
    let url = format!("{}/login", base_url());
    let (s, b) = call(http().post(&url).json(&json!({"username": "ada"}))).await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("password")),
        "{b}"
    );
    let (s, b) = call(
        http()
            .post(&url)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("malformed_json")),
        "{b}"
    );
    let (s, b) = call(
        http()
            .post(&url)
            .json(&json!({"username": 42, "password": "x"})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("username")),
        "{b}"
    );
    let big = "x".repeat(2 * 1024 * 1024);
    let (s, b) = call(
        http()
            .post(&url)
            .json(&json!({"username": big, "password": "x"})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{b}"
    );
}

#[tokio::test]
async fn mutating_routes_refuse_missing_forged_expired_and_foreign_tokens() {
    let key = signing_key().await;
    let now = chrono::Utc::now().timestamp();
    let claims = |aud: &str, exp: i64| json!({"sub": "admin", "aud": aud, "iss": "ferry", "iat": now, "exp": exp, "roles": ["admin"]});
    let hs = json!({"alg": "HS256", "typ": "JWT"});
    let cases = [
        ("none", None),
        ("alg none", Some(unsigned(&claims("ferry", now + 600)))),
        (
            "wrong key",
            Some(sign(
                &hs,
                &claims("ferry", now + 600),
                b"an-entirely-different-signing-key-000",
            )),
        ),
        (
            "expired",
            Some(sign(&hs, &claims("ferry", now - 600), &key)),
        ),
        (
            "wrong audience",
            Some(sign(&hs, &claims("other", now + 600), &key)),
        ),
    ];
    let body = json!({"job_name": "auth-check", "connector_type": "S3", "schedule": "daily", "connector_config": {"bucket_name": "some-bucket"}});
    for (what, tok) in cases {
        for (method, path) in [("POST", "/api/v1/scheduler/create_job"), ("POST", "/users")] {
            let mut req = http()
                .request(method.parse().unwrap(), format!("{}{path}", base_url()))
                .json(&body);
            if let Some(t) = &tok {
                req = req.bearer_auth(t);
            }
            let (s, b) = call(req).await;
            assert_eq!(s, 401, "{what} on {path}: {b}");
            assert_eq!(b["error"]["code"], "unauthorized", "{what}: {b}");
        }
    }
    // The same claims correctly signed are accepted, which shows the refusals above are about the token.
    let good = sign(&hs, &claims("ferry", now + 600), &key);
    let (s, b) = call(
        http()
            .post(format!("{}/users", base_url()))
            .bearer_auth(good)
            .json(&json!({"username": "x"})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
}

#[tokio::test]
async fn admins_create_users_and_users_cannot() {
    let admin = token(&["admin"]).await;
    let plain = token(&["user"]).await;
    let name = format!("new-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let body = json!({"username": name, "password": "long-enough-password", "roles": ["user"]});
    let (s, _) = call(
        http()
            .post(format!("{}/users", base_url()))
            .bearer_auth(&plain)
            .json(&body),
    )
    .await;
    assert_eq!(s, 403);
    let (s, b) = call(
        http()
            .post(format!("{}/users", base_url()))
            .bearer_auth(&admin)
            .json(&body),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert!(b.get("password_hash").is_none());
    let (s, _) = call(
        http()
            .post(format!("{}/users", base_url()))
            .bearer_auth(&admin)
            .json(&body),
    )
    .await;
    assert_eq!(s, 409);
    let (s, b) = call(
        http()
            .post(format!("{}/login", base_url()))
            .json(&json!({"username": name, "password": "long-enough-password"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let me = b["access_token"].as_str().unwrap().to_string();
    let (s, b) = call(
        http()
            .get(format!("{}/users/me", base_url()))
            .bearer_auth(me),
    )
    .await;
    assert_eq!((s, b["username"].as_str()), (200, Some(name.as_str())));
}

/// Every paginated listing takes `limit` 1-200 and refuses others, and unknown or mistyped query
/// parameters, with a 400 naming the parameter (api-loaders, api-events, api-scheduler share the rule).
#[tokio::test]
async fn listing_queries_refuse_bad_limits_and_unknown_parameters_naming_them() {
    for path in ["/loaders", "/events/files"] {
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("limit=ten", "limit"),
            ("colour=red", "colour"),
        ] {
            let (s, b) = call(http().get(format!("{}{path}?{query}", base_url()))).await;
            assert_eq!(
                (s, b["error"]["field"].as_str()),
                (400, Some(field)),
                "{path}?{query}: {b}"
            );
        }
        let (s, b) = call(http().get(format!("{}{path}?limit=200", base_url()))).await;
        assert_eq!(s, 200, "{path}: {b}");
    }
}
