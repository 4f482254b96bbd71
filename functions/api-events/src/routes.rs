//! Routes: ingest status (`GET /events/files`, `GET /events/files/{name}`), ingest requests
//! (`POST /events/ingest`) and time-range queries (`POST /events/query`, and `POST /` with the same
//! body for the original rokt API's users).
//!
//! A query answers the original's shape, a JSON array of `{eventTime, email, sessionId}` in time order
//! (`[]` when nothing matches). Pages hold `limit` rows (default 1,000, at most 10,000); when more
//! follow, the `x-next-cursor` response header carries the `cursor` for the next request.

use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_shared::auth::{Authenticated, Tokens};
use ferry_shared::domain::events::{self, IngestFile, IngestStatus, MAX_FILENAME};
use ferry_shared::domain::now_rfc3339;
use ferry_shared::events_sql::EventsDb;
use ferry_shared::http::{ApiError, JsonBody, PageQuery, QueryParams};
use ferry_shared::keys::{IndexKey, Key, Listing};
use ferry_shared::messages::IngestRequest;
use ferry_shared::queue::Queue;
use ferry_shared::store::{Meta, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

#[derive(Clone, FromRef)]
pub struct AppState {
    pub store: Store,
    pub tokens: Arc<Tokens>,
    pub queue: Queue,
    pub db: EventsDb,
}

pub fn router(state: AppState) -> Router {
    ferry_shared::http::finish(
        Router::new()
            .route("/events/files", get(list))
            .route("/events/files/{name}", get(file))
            .route("/events/ingest", post(ingest))
            .route("/events/query", post(query))
            .route("/", post(query))
            .with_state(state),
    )
}

async fn list(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = state
        .store
        .list::<Value>(
            &Listing::ingest_files(),
            q.limit()?,
            q.cursor.as_deref(),
            true,
        )
        .await?;
    Ok(Json(json!({"files": page.items, "cursor": page.cursor})))
}

/// One file's status: counts, rejected samples, checkpoint, timings. `name` is the object key
/// (URL-encode a `/` in it).
async fn file(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<IngestFile>, ApiError> {
    let item = state
        .store
        .get::<IngestFile>(&Key::ingest_file(&name))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no ingest of {name:?} is known")))?;
    Ok(Json(item.value))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestBody {
    bucket: String,
    key: String,
}

/// Queues the (re-)ingest of `s3://bucket/key`. The status is written first and the message sent
/// after; if the send fails the status says so and the caller gets a 502 to retry.
async fn ingest(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<IngestBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if body.bucket.trim().is_empty() {
        return Err(ApiError::invalid("bucket", "must not be empty"));
    }
    if body.key.is_empty() || body.key.len() > MAX_FILENAME {
        return Err(ApiError::invalid(
            "key",
            format!("must be 1-{MAX_FILENAME} bytes"),
        ));
    }
    let key = Key::ingest_file(&body.key);
    let now = now_rfc3339();
    let meta =
        |f: &IngestFile| -> Meta { IndexKey::ingest_file(&f.updated_at, &f.filename).into() };
    let fresh = IngestFile::queued(&body.bucket, &body.key, &now);
    match state.store.create(&key, &meta(&fresh), &fresh).await {
        Ok(()) => {}
        Err(StoreError::Exists) => {
            state
                .store
                .transition(&key, meta, |f: IngestFile| f.requeue(&body.bucket, &now))
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    let message = IngestRequest::Ingest {
        bucket: body.bucket.clone(),
        key: body.key.clone(),
    };
    if let Err(e) = state.queue.send(&message).await {
        let failed = state
            .store
            .transition(&key, meta, |f: IngestFile| {
                f.fail(
                    "could not be queued; request it again".into(),
                    &now_rfc3339(),
                )
            })
            .await;
        if let Err(se) = failed {
            tracing::warn!(error = %se, "could not record the failed request");
        }
        return Err(ApiError::bad_gateway("could not queue the ingest", e));
    }
    tracing::info!(bucket = %body.bucket, key = %body.key, user = %caller.sub, "ingest queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"filename": body.key, "status": IngestStatus::Queued})),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    filename: String,
    from: String,
    to: String,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventOut {
    event_time: String,
    email: String,
    session_id: String,
}

async fn query(
    State(state): State<AppState>,
    Authenticated(_caller): Authenticated,
    JsonBody(body): JsonBody<QueryBody>,
) -> Result<impl IntoResponse, ApiError> {
    let q = events::range_query(
        &body.filename,
        &body.from,
        &body.to,
        body.limit,
        body.cursor.as_deref(),
    )
    .map_err(|(field, rule)| ApiError::invalid(field, rule))?;
    let (rows, next) = state.db.query(&q).await.map_err(ApiError::internal)?;
    let out: Vec<EventOut> = rows
        .into_iter()
        .map(|r| EventOut {
            event_time: events::format_event_time(&r.event_time),
            email: r.email,
            session_id: r.session_id,
        })
        .collect();
    let mut headers = HeaderMap::new();
    if let Some(c) = next
        && let Ok(v) = HeaderValue::from_str(&c.encode())
    {
        headers.insert(NEXT_CURSOR_HEADER, v);
    }
    Ok((headers, Json(out)))
}
