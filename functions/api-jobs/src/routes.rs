//! Routes: `POST /login` (JSON or form), `POST /users` (admins create users), and the
//! syncrator-compatible job routes (see `jobs`).

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_shared::auth::{self, AccessToken, Authenticated, Tokens};
use ferry_shared::http::{ApiError, JsonBody, JsonOrForm};
use ferry_shared::store::Store;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::jobs;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub store: Store,
    pub tokens: Arc<Tokens>,
    pub queue: ferry_shared::queue::Queue,
    /// ferry's own S3 (destinations, and sources without an endpoint of their own).
    pub s3: aws_sdk_s3::Client,
    /// The process's AWS configuration, for clients of foreign sources.
    pub aws: Arc<ferry_shared::aws::SdkConfig>,
    pub secrets: aws_sdk_secretsmanager::Client,
    /// Name prefix of the secrets holding sources' keys (shared with worker-sync's read grant).
    pub secret_prefix: Arc<str>,
}

pub fn router(state: AppState) -> Router {
    ferry_shared::http::finish(
        Router::new()
            .route("/login", post(login))
            .route("/users", post(create_user))
            .route(
                "/params/{project}/{env}/{action}",
                get(jobs::get_params).put(jobs::put_params),
            )
            .route(
                "/{action}/{project}/{env}",
                get(jobs::dryrun_params).post(jobs::run_params),
            )
            .route("/dryrun", post(jobs::dryrun_custom))
            .route("/run", post(jobs::run_custom))
            .route("/jobs", get(jobs::list_jobs))
            .route("/jobs/{id}", get(jobs::get_job).delete(jobs::delete_job))
            .route("/sync_jobs", get(jobs::list_sync_jobs))
            .with_state(state),
    )
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    JsonOrForm(body): JsonOrForm<LoginBody>,
) -> Result<Json<AccessToken>, ApiError> {
    if body.username.trim().is_empty() {
        return Err(ApiError::missing("username"));
    }
    if body.password.is_empty() {
        return Err(ApiError::missing("password"));
    }
    auth::login(
        &state.store,
        &state.tokens,
        body.username.trim(),
        &body.password,
    )
    .await
    .map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

async fn create_user(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !caller.roles.iter().any(|r| r == "admin") {
        return Err(ApiError::forbidden("only admins create users"));
    }
    if let Some(bad) = body
        .roles
        .iter()
        .find(|r| !matches!(r.as_str(), "admin" | "user"))
    {
        return Err(ApiError::invalid(
            "roles",
            format!("unknown role {bad:?}; roles are admin and user"),
        ));
    }
    let user = auth::put_user(
        &state.store,
        &body.username,
        &body.password,
        body.roles,
        false,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"username": user.username, "roles": user.roles, "created_at": user.created_at}),
        ),
    ))
}
