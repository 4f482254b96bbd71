//! Routes: `GET /users/me` (the caller's own profile, never its password hash).

use axum::extract::{FromRef, State};
use axum::routing::get;
use axum::{Json, Router};
use ferry_shared::auth::{Authenticated, Tokens};
use ferry_shared::domain::user::User;
use ferry_shared::http::ApiError;
use ferry_shared::keys::Key;
use ferry_shared::queue::Queue;
use ferry_shared::store::Store;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub store: Store,
    pub tokens: Arc<Tokens>,
    #[allow(dead_code)] // used by the transfer task routes
    pub queue: Queue,
}

pub fn router(state: AppState) -> Router {
    ferry_shared::http::finish(Router::new().route("/users/me", get(me)).with_state(state))
}

async fn me(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let user = state
        .store
        .get::<User>(&Key::user(&caller.sub))
        .await?
        .ok_or_else(|| ApiError::not_found("user no longer exists"))?
        .value;
    Ok(Json(
        json!({"username": user.username, "roles": user.roles, "created_at": user.created_at}),
    ))
}
