//! Authentication: argon2 password hashes for users kept in DynamoDB, and short-lived HS256 JWTs signed
//! with a key read from Secrets Manager at start-up.
//!
//! Tokens carry `iss` and `aud` = "ferry" and expire after [`TOKEN_TTL_SECS`]. Verification accepts HS256
//! only, so `alg: none` and any other algorithm are refused, as are wrong signatures, expired tokens and
//! other audiences. Every refusal is a 401 with the JSON error body.

use crate::domain::user::User;
use crate::http::ApiError;
use crate::keys::Key;
use crate::store::{Meta, Store, StoreError};
use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use hmac::{Hmac, Mac};
use jwt::{AlgorithmType, Header, SignWithKey, Token, VerifyWithKey};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};

pub const TOKEN_TTL_SECS: i64 = 15 * 60;
pub const AUDIENCE: &str = "ferry";
pub const ISSUER: &str = "ferry";
/// Clock skew tolerated on `exp`, in seconds.
pub const LEEWAY_SECS: i64 = 5;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The answer to a successful login, in the original syncrator shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessToken {
    pub access_token: String,
    pub expires_in: i64,
    pub token_type: String,
}

/// Issues and verifies tokens with one signing key.
pub struct Tokens {
    key: Hmac<sha2::Sha256>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { key: <redacted> }")
    }
}

impl Tokens {
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: Hmac::new_from_slice(key).expect("HMAC takes a key of any length"),
        }
    }

    /// Reads the signing key from Secrets Manager.
    pub async fn from_secret(
        client: &aws_sdk_secretsmanager::Client,
        secret_id: &str,
    ) -> anyhow::Result<Self> {
        let key = crate::secrets::get_string(client, secret_id).await?;
        if key.len() < 32 {
            anyhow::bail!("the JWT signing key in {secret_id} is shorter than 32 bytes");
        }
        Ok(Self::new(key.as_bytes()))
    }

    pub fn issue(&self, user: &User) -> Result<AccessToken, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user.username.clone(),
            aud: AUDIENCE.into(),
            iss: ISSUER.into(),
            iat: now,
            exp: now + TOKEN_TTL_SECS,
            roles: user.roles.clone(),
        };
        let header = Header {
            algorithm: AlgorithmType::Hs256,
            type_: Some(jwt::header::HeaderType::JsonWebToken),
            ..Header::default()
        };
        let token = Token::new(header, claims)
            .sign_with_key(&self.key)
            .map_err(ApiError::internal)?;
        Ok(AccessToken {
            access_token: token.as_str().to_owned(),
            expires_in: TOKEN_TTL_SECS,
            token_type: "bearer".into(),
        })
    }

    /// Accepts a token only if its header names HS256, its signature is this key's (compared in constant
    /// time), and its claims are all present, unexpired (with [`LEEWAY_SECS`]), for [`AUDIENCE`] and
    /// from [`ISSUER`].
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let refuse = |why: &str| ApiError::unauthorized(why).field("authorization");
        let claims: Claims = token.verify_with_key(&self.key).map_err(|e| {
            refuse(match e {
                jwt::Error::AlgorithmMismatch(..) => "token algorithm is not accepted",
                jwt::Error::RustCryptoMac(_) | jwt::Error::InvalidSignature => {
                    "token signature is invalid"
                }
                _ => "token is malformed",
            })
        })?;
        if claims.exp + LEEWAY_SECS < chrono::Utc::now().timestamp() {
            return Err(refuse("token expired"));
        }
        if claims.aud != AUDIENCE {
            return Err(refuse("token is for another audience"));
        }
        if claims.iss != ISSUER {
            return Err(refuse("token has another issuer"));
        }
        if claims.sub.is_empty() {
            return Err(refuse("token is malformed"));
        }
        Ok(claims)
    }
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash to verify against when the user does not exist, so timing does not tell whether a name exists.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("ferry-timing-equaliser").unwrap_or_default())
}

/// Checks a username and password against the store and issues a token.
pub async fn login(
    store: &Store,
    tokens: &Tokens,
    username: &str,
    password: &str,
) -> Result<AccessToken, ApiError> {
    tokens.issue(&authenticate(store, username, password).await?)
}

/// The user with this username and password (401 otherwise, the same for an unknown name and a wrong
/// password, in the same time).
pub async fn authenticate(store: &Store, username: &str, password: &str) -> Result<User, ApiError> {
    let user = store
        .get::<User>(&Key::user(username))
        .await?
        .map(|v| v.value);
    let hash = user
        .as_ref()
        .map_or(dummy_hash(), |u| u.password_hash.as_str());
    let ok = verify_password(password, hash);
    match user {
        Some(u) if ok => Ok(u),
        _ => Err(ApiError::unauthorized("invalid username or password")),
    }
}

/// Creates a user, or replaces its password and roles when `replace` is set.
pub async fn put_user(
    store: &Store,
    username: &str,
    password: &str,
    roles: Vec<String>,
    replace: bool,
) -> Result<User, ApiError> {
    crate::domain::user::validate_username(username)
        .map_err(|r| ApiError::invalid("username", r))?;
    crate::domain::user::validate_password(password)
        .map_err(|r| ApiError::invalid("password", r))?;
    let user = User {
        username: username.to_string(),
        password_hash: hash_password(password).map_err(ApiError::internal)?,
        roles,
        created_at: crate::domain::now_rfc3339(),
    };
    let key = Key::user(username);
    match store.create(&key, &Meta::default(), &user).await {
        Ok(()) => Ok(user),
        Err(StoreError::Exists) if replace => {
            let fresh = user.clone();
            store
                .transition(&key, |_: &User| Meta::default(), move |_| Ok(fresh.clone()))
                .await?;
            Ok(user)
        }
        Err(StoreError::Exists) => Err(ApiError::conflict("user already exists").field("username")),
        Err(e) => Err(e.into()),
    }
}

/// The caller, proven by a valid `Authorization: Bearer` token of an `admin` or `user` account. Use
/// it as an extractor on every mutating route.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

impl<S> FromRequestParts<S> for Authenticated
where
    Arc<Tokens>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let tokens = Arc::<Tokens>::from_ref(state);
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized("a Bearer token is required").field("authorization")
            })?;
        let token = bearer_token(value).ok_or_else(|| {
            ApiError::unauthorized("authorization must be a Bearer token").field("authorization")
        })?;
        let claims = tokens.verify(token)?;
        if !claims.roles.iter().any(|r| r == "admin" || r == "user") {
            // Self-service transfer accounts (role `transfers`) use the transfer routes only.
            return Err(
                ApiError::forbidden("this account may use the transfer routes only")
                    .field("authorization"),
            );
        }
        Ok(Authenticated(claims))
    }
}

/// The role of the accounts anyone can open with `POST /create_user/` (the Datastore original's free
/// sign-up): they reach the transfer routes and nothing else.
pub const TRANSFERS_ROLE: &str = "transfers";

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(value: &str) -> Option<&str> {
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

/// Decodes an `Authorization: Basic` header into (username, password), for routes that accept it for
/// compatibility.
pub fn basic_credentials(value: &str) -> Option<(String, String)> {
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// What every HTTP function builds at start-up: the store and the token verifier.
pub async fn http_base(
    aws: &aws_config::SdkConfig,
    table: String,
    jwt_secret_arn: &str,
) -> anyhow::Result<(Store, Arc<Tokens>)> {
    let store = Store::new(aws_sdk_dynamodb::Client::new(aws), table);
    let tokens =
        Tokens::from_secret(&aws_sdk_secretsmanager::Client::new(aws), jwt_secret_arn).await?;
    Ok((store, Arc::new(tokens)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn user() -> User {
        User {
            username: "ada".into(),
            password_hash: String::new(),
            roles: vec!["admin".into()],
            created_at: "t".into(),
        }
    }

    #[test]
    fn issued_token_verifies_and_names_the_user() {
        let t = Tokens::new(&[7u8; 32]);
        let tok = t.issue(&user()).unwrap();
        assert_eq!(tok.token_type, "bearer");
        assert_eq!(tok.expires_in, 900);
        assert_eq!(t.verify(&tok.access_token).unwrap().sub, "ada");
    }

    #[test]
    fn wrong_key_alg_none_other_algorithms_forged_claims_expired_and_wrong_audience_are_refused() {
        let t = Tokens::new(&[7u8; 32]);
        let other = Tokens::new(&[8u8; 32]);
        let tok = other.issue(&user()).unwrap().access_token;
        assert_eq!(t.verify(&tok).unwrap_err().status.as_u16(), 401);

        let now = chrono::Utc::now().timestamp();
        let claims = |aud: &str, exp: i64| Claims {
            sub: "ada".into(),
            aud: aud.into(),
            iss: ISSUER.into(),
            iat: now,
            exp,
            roles: vec![],
        };
        let header_none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(AUDIENCE, now + 600)).unwrap());
        let none = t.verify(&format!("{header_none}.{body}.")).unwrap_err();
        assert_eq!(none.message, "token algorithm is not accepted");
        assert_eq!(none.status.as_u16(), 401);

        let key: Hmac<sha2::Sha256> = Hmac::new_from_slice(&[7u8; 32]).unwrap();
        let sign = |c: Claims| c.sign_with_key(&key).unwrap();
        let expired = sign(claims(AUDIENCE, now - 600));
        assert_eq!(t.verify(&expired).unwrap_err().message, "token expired");
        let foreign = sign(claims("someone-else", now + 600));
        assert_eq!(
            t.verify(&foreign).unwrap_err().message,
            "token is for another audience"
        );
        let mut other_issuer = claims(AUDIENCE, now + 600);
        other_issuer.iss = "mallory".into();
        let other_issuer = sign(other_issuer);
        assert_eq!(
            t.verify(&other_issuer).unwrap_err().message,
            "token has another issuer"
        );
        // Within the leeway a just-expired token still passes.
        assert_eq!(
            t.verify(&sign(claims(AUDIENCE, now - 2))).unwrap().sub,
            "ada"
        );

        // A valid token whose claims were changed after signing.
        let good = sign(claims(AUDIENCE, now + 600));
        let mut parts: Vec<&str> = good.split('.').collect();
        let mut forged = claims(AUDIENCE, now + 600);
        forged.sub = "root".into();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        parts[1] = &forged;
        assert_eq!(
            t.verify(&parts.join(".")).unwrap_err().message,
            "token signature is invalid"
        );

        // HS512 in the header is refused even with a signature from the right key.
        let hs512 = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512","typ":"JWT"}"#);
        let mut mac = key.clone();
        mac.update(format!("{hs512}.{}", parts[1]).as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(
            t.verify(&format!("{hs512}.{}.{sig}", parts[1]))
                .unwrap_err()
                .message,
            "token algorithm is not accepted"
        );

        // Claims without exp (or any required claim) are malformed.
        let no_exp = serde_json::json!({"sub": "ada", "aud": AUDIENCE, "iss": ISSUER, "iat": now});
        let no_exp = no_exp.sign_with_key(&key).unwrap();
        assert_eq!(t.verify(&no_exp).unwrap_err().message, "token is malformed");
        assert_eq!(t.verify("a.b").unwrap_err().message, "token is malformed");
    }

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not-a-hash"));
    }

    #[test]
    fn basic_header_decodes() {
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ada:pw:with:colons")
        );
        assert_eq!(
            basic_credentials(&v),
            Some(("ada".into(), "pw:with:colons".into()))
        );
        assert_eq!(basic_credentials("Bearer x"), None);
    }
}
