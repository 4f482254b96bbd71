//! Routes: accounts and transfer tasks, compatible with the original Datastore API.
//!
//! - `POST /create_user/` (or `/create_user`) `{email, password}`: a self-service account (role
//!   `transfers`: these routes only; every other API refuses its token with 403).
//! - Every other route takes HTTP Basic credentials (the original's) or a Bearer token (ferry's).
//! - `POST /create_task`; `GET /tasks`, `GET /tasks/{task_id}`; `POST /pause_task/{task_id}`,
//!   `/resume_task/{task_id}`, `/abort_task/{task_id}`: 409 "already paused" / "already running", 404
//!   for an aborted, expired (24 h), unknown or someone else's task.
//! - `PUT /upload_file/{task_id}`, `GET /files`, `DELETE /delete_file/{task_id}`, `GET
//!   /download_file/{task_id}`: see [`crate::files`]; uploads in parts: see [`crate::uploads`].
//! - `GET /users/me`: the caller's own profile, never its password hash.

use axum::extract::{DefaultBodyLimit, FromRef, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use ferry_shared::auth::{self, Tokens};
use ferry_shared::domain::transfer::{self, Control, Task, task_meta};
use ferry_shared::domain::user::User;
use ferry_shared::domain::{Conflict, new_id, now_rfc3339};
use ferry_shared::http::{ApiError, JsonBody, PageQuery, QueryParams};
use ferry_shared::keys::{Key, Listing};
use ferry_shared::messages::TransferMessage;
use ferry_shared::queue::Queue;
use ferry_shared::store::{Store, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub store: Store,
    pub tokens: Arc<Tokens>,
    pub queue: Queue,
    pub s3: aws_sdk_s3::Client,
    pub bucket: Arc<str>,
}

pub fn router(state: AppState) -> Router {
    ferry_shared::http::finish(
        Router::new()
            .route("/users/me", get(me))
            .route("/create_user", post(create_user))
            .route("/create_user/", post(create_user))
            .route("/create_task", post(create_task))
            .route("/tasks", get(list_tasks))
            .route("/tasks/{task_id}", get(get_task))
            .route(
                "/pause_task/{task_id}",
                post(|s: State<AppState>, c: Caller, p: Path<String>| act(s, c, p, Control::Pause)),
            )
            .route(
                "/resume_task/{task_id}",
                post(|s: State<AppState>, c: Caller, p: Path<String>| {
                    act(s, c, p, Control::Resume)
                }),
            )
            .route(
                "/abort_task/{task_id}",
                post(|s: State<AppState>, c: Caller, p: Path<String>| act(s, c, p, Control::Abort)),
            )
            // Lambda's payload limit is the bound; axum's own 2 MB default would cut uploads short.
            .route(
                "/upload_file/{task_id}",
                put(crate::files::upload_file).layer(DefaultBodyLimit::max(6 * 1024 * 1024)),
            )
            .route(
                "/upload_file/{task_id}/multipart",
                post(crate::uploads::start),
            )
            .route("/upload_file/{task_id}/parts", get(crate::uploads::parts))
            .route(
                "/upload_file/{task_id}/complete",
                post(crate::uploads::complete),
            )
            .route("/files", get(crate::files::list_files))
            .route("/delete_file/{task_id}", delete(crate::files::delete_files))
            .route("/download_file/{task_id}", get(crate::files::download_file))
            .with_state(state),
    )
}

/// The caller's username, proven by HTTP Basic credentials checked against the account's argon2 hash,
/// or by a Bearer token.
pub struct Caller(pub String);

impl<S> FromRequestParts<S> for Caller
where
    Store: FromRef<S>,
    Arc<Tokens>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized("Basic credentials or a Bearer token are required")
                    .field("authorization")
            })?;
        if let Some((username, password)) = auth::basic_credentials(value) {
            let store = Store::from_ref(state);
            return auth::authenticate(&store, &username, &password)
                .await
                .map(|u| Caller(u.username))
                .map_err(|e| e.field("authorization"));
        }
        // Any role: self-service accounts (role transfers) are what these routes are for.
        let token = auth::bearer_token(value).ok_or_else(|| {
            ApiError::unauthorized("authorization must be Basic credentials or a Bearer token")
                .field("authorization")
        })?;
        let claims = Arc::<Tokens>::from_ref(state).verify(token)?;
        Ok(Caller(claims.sub))
    }
}

async fn me(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    let user = state
        .store
        .get::<User>(&Key::user(&caller))
        .await?
        .ok_or_else(|| ApiError::not_found("user no longer exists"))?
        .value;
    Ok(Json(
        json!({"username": user.username, "roles": user.roles, "created_at": user.created_at}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    email: String,
    password: String,
}

/// An email address as accounts take it: one `@` between a local part and a dotted domain, within
/// the username rules (the email is the account's username).
fn check_email(email: &str) -> Result<(), ApiError> {
    let rule = "must be an email address (name@domain.tld) of 3-64 letters, digits, '.', '_', '-' and one '@'";
    let ok = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.split('.').count() >= 2
                && domain.split('.').all(|p| !p.is_empty())
        }
        None => false,
    };
    if !ok || ferry_shared::domain::user::validate_username(email).is_err() {
        return Err(ApiError::invalid("email", rule));
    }
    Ok(())
}

async fn create_user(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewAccount>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let email = body.email.trim().to_ascii_lowercase();
    check_email(&email)?;
    let user = auth::put_user(
        &state.store,
        &email,
        &body.password,
        vec![auth::TRANSFERS_ROLE.into()],
        false,
    )
    .await
    .map_err(|e| match e.status {
        StatusCode::CONFLICT => {
            ApiError::conflict("an account with this email exists").field("email")
        }
        _ => e,
    })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"email": user.username, "created_at": user.created_at})),
    ))
}

pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn view(t: &Task) -> Value {
    let expires = chrono::DateTime::from_timestamp(t.lives_until, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let kind = if t.uploaded.is_some() || t.multipart.is_some() {
        Some("upload")
    } else if t.download.is_some() {
        Some("download")
    } else {
        None
    };
    json!({
        "task_id": t.task_id,
        "status": t.status,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "expires_at": expires,
        "kind": kind,
        "uploaded": t.uploaded,
        "upload_in_parts": t.multipart.as_ref().map(|m| json!({
            "filename": m.filename, "size": m.size, "part_size": m.part_size, "parts": m.parts(),
        })),
        "download": t.download.as_ref().map(|d| json!({
            "status": d.status, "files_total": d.files_total, "files_done": d.files_done,
            "bytes_total": d.bytes_total, "bytes_done": d.bytes_done, "zip_size": d.zip_size,
        })),
    })
}

/// The original (FastAPI) answered errors as `{"detail": ...}`: kept beside ferry's own error object.
pub(crate) fn gone(task_id: &str) -> ApiError {
    let message = format!("task {task_id} not found");
    ApiError::not_found(message.clone())
        .field("task_id")
        .with("detail", json!(message))
}

/// A refusal about a task: 409 with the reason, also as the original's `detail`.
pub(crate) fn conflict(why: &str) -> ApiError {
    ApiError::conflict(why.to_string())
        .field("task_id")
        .with("detail", json!(why))
}

/// What a refused write on a task means to the caller: gone (aborted, expired, deleted) is 404,
/// another refusal 409, anything else the store's own error.
pub(crate) fn task_error(task_id: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(Conflict(why)) if why == transfer::GONE => gone(task_id),
        StoreError::NotFound => gone(task_id),
        StoreError::Conflict(Conflict(why)) => conflict(&why),
        e => e.into(),
    }
}

/// The caller's live task, else 404 (someone else's task is not told apart from a missing one).
pub(crate) async fn load(store: &Store, caller: &str, task_id: &str) -> Result<Task, ApiError> {
    let task = store
        .get::<Task>(&Key::task(task_id))
        .await?
        .map(|v| v.value)
        .filter(|t| t.owner == caller && t.live(unix_now()));
    task.ok_or_else(|| gone(task_id))
}

async fn create_task(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let task = Task::new(&new_id(), &caller, &now_rfc3339(), unix_now());
    state
        .store
        .create(&Key::task(&task.task_id), &task_meta(&task), &task)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&task))))
}

async fn list_tasks(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = state
        .store
        .list::<Task>(
            &Listing::tasks_of(&caller),
            q.limit()?,
            q.cursor.as_deref(),
            true,
        )
        .await?;
    let now = unix_now();
    let tasks: Vec<Value> = page
        .items
        .iter()
        .filter(|t| t.owner == caller && t.live(now))
        .map(view)
        .collect();
    Ok(Json(json!({"tasks": tasks, "cursor": page.cursor})))
}

async fn get_task(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(task_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&load(&state.store, &caller, &task_id).await?)))
}

/// `POST /{pause,resume,abort}_task/{task_id}`.
async fn act(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(task_id): Path<String>,
    control: Control,
) -> Result<Json<Value>, ApiError> {
    let task_id = task_id.as_str();
    load(&state.store, &caller, task_id).await?;
    let now = now_rfc3339();
    let moved = state
        .store
        .transition(&Key::task(task_id), task_meta, |t: Task| {
            t.apply(control, &now, unix_now())
        })
        .await;
    match moved {
        Ok(t) => {
            // A zip build waits while paused: a resume sends it on; an abort sends it to clean up.
            let building = t
                .value
                .download
                .as_ref()
                .is_some_and(|d| d.status == transfer::DownloadStatus::Building);
            if control == Control::Abort
                && let Some(m) = &t.value.multipart
            {
                let key = transfer::file_key(&t.value.owner, &m.filename);
                crate::uploads::abort_upload(&state, &key, &m.upload_id).await;
            }
            if building && control != Control::Pause {
                state
                    .queue
                    .send(&TransferMessage::BuildZip {
                        task_id: task_id.to_string(),
                    })
                    .await
                    .map_err(ApiError::internal)?;
            }
            let message = match control {
                Control::Pause => "Task paused",
                Control::Resume => "Task resumed",
                Control::Abort => "Task aborted",
            };
            Ok(Json(json!({"message": message, "task": view(&t.value)})))
        }
        Err(e) => Err(task_error(task_id, e)),
    }
}
