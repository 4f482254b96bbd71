//! Routes: `GET /events/files` (ingested files, newest first).

use axum::extract::{FromRef, State};
use axum::routing::get;
use axum::{Json, Router};
use ferry_shared::auth::Tokens;
use ferry_shared::http::{ApiError, QueryParams};
use ferry_shared::keys::Listing;
use ferry_shared::queue::Queue;
use ferry_shared::store::Store;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub store: Store,
    pub tokens: Arc<Tokens>,
    #[allow(dead_code)] // used by the ingest route of issue #4
    pub queue: Queue,
}

pub fn router(state: AppState) -> Router {
    ferry_shared::http::finish(
        Router::new()
            .route("/events/files", get(list))
            .with_state(state),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default = "default_limit")]
    limit: i32,
    cursor: Option<String>,
}

fn default_limit() -> i32 {
    50
}

async fn list(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    if !(1..=200).contains(&q.limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 200"));
    }
    let page = state
        .store
        .list::<Value>(&Listing::ingest_files(), q.limit, q.cursor.as_deref(), true)
        .await?;
    Ok(Json(json!({"files": page.items, "cursor": page.cursor})))
}
