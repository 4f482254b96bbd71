//! Routes of the scheduler API. Errors keep the original's `{"message": ...}` beside ferry's
//! `{"error": {...}}`, and its texts where it had them ("Invalid job ID", "Job scheduled successfully").

use aws_sdk_scheduler::types::{
    DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState,
    Target,
};
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use ferry_shared::auth::{Authenticated, Tokens};
use ferry_shared::domain::sync::{
    Action, Destination, Job, JobStatus, ObjectRecord, ObjectStatus, Run, RunStatus, Source,
    Trigger,
};
use ferry_shared::domain::{new_id, now_rfc3339};
use ferry_shared::http::bucket_rule;
use ferry_shared::http::{ApiError, JsonBody, PageQuery, QueryParams};
use ferry_shared::keys::{Children, IndexKey, Key, Listing};
use ferry_shared::messages::SyncMessage;
use ferry_shared::queue::Queue;
use ferry_shared::schedule;
use ferry_shared::store::{Meta, Store};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

pub struct ScheduleTarget {
    pub group: String,
    pub queue_arn: String,
    pub dlq_arn: String,
    pub role_arn: String,
}

#[derive(Clone, FromRef)]
pub struct AppState {
    pub store: Store,
    pub tokens: Arc<Tokens>,
    pub queue: Queue,
    pub scheduler: aws_sdk_scheduler::Client,
    pub target: Arc<ScheduleTarget>,
    pub data_bucket: Arc<str>,
    pub secrets: aws_sdk_secretsmanager::Client,
    /// Name prefix of the secrets holding foreign sources' keys (`<prefix><job_id>`).
    pub secret_prefix: Arc<String>,
}

/// A job's item keeps its listing index entry through every transition.
fn job_meta(j: &Job) -> Meta {
    IndexKey::job(&j.created_at, &j.job_id).into()
}

pub fn router(state: AppState) -> Router {
    ferry_shared::http::finish(
        Router::new()
            .route("/api/v1/scheduler/create_job", post(create_job))
            .route("/api/v1/scheduler/list_jobs", get(list_jobs))
            .route("/api/v1/scheduler/delete_job", delete(delete_job))
            .route("/api/v1/scheduler/update_job", patch(update_job))
            .route("/api/v1/scheduler/bulk_delete", post(bulk_delete))
            .route("/api/v1/jobs/{id}/run", post(run_now))
            .route("/api/v1/jobs/{id}/pause", post(pause_job))
            .route("/api/v1/jobs/{id}/resume", post(resume_job))
            .route("/api/v1/jobs/{id}/runs", get(list_runs))
            .route("/api/v1/jobs/{id}/objects", get(list_objects))
            .with_state(state),
    )
}

/// Adds the original API's top-level `message` to an error.
fn compat(e: ApiError) -> ApiError {
    let m = e.message.clone();
    e.with("message", json!(m))
}

type Reply = Result<(StatusCode, Json<Value>), ApiError>;

const DEFAULT_CHUNK: u64 = 10 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateJob {
    job_name: Option<String>,
    connector_type: Option<String>,
    schedule: Option<String>,
    timezone: Option<String>,
    connector_config: Option<ConnectorConfig>,
    destination: Option<Destination>,
    action: Option<Action>,
    chunk_size: Option<u64>,
    concurrency: Option<u32>,
    max_attempts: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConnectorConfig {
    bucket_name: Option<String>,
    #[serde(default)]
    prefix: String,
    /// A foreign S3-compatible source: its endpoint, region and keys (the keys go to Secrets Manager).
    endpoint_url: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
}

/// Source keys to store in Secrets Manager (never logged, never answered).
struct NewCredentials(String);

fn endpoint_rule(url: &str) -> Result<(), ApiError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= 2048
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "connector_config.endpoint_url",
            "must be an http:// or https:// URL",
        ))
    }
}

fn credentials_rule(cc: &ConnectorConfig) -> Result<Option<NewCredentials>, ApiError> {
    match (&cc.access_key_id, &cc.secret_access_key) {
        (None, None) if cc.session_token.is_none() => Ok(None),
        (Some(id), Some(secret)) if !id.trim().is_empty() && !secret.is_empty() => {
            Ok(Some(NewCredentials(
                json!({"access_key_id": id.trim(), "secret_access_key": secret, "session_token": cc.session_token})
                    .to_string(),
            )))
        }
        (None, _) | (Some(_), Some(_)) => Err(ApiError::invalid(
            "connector_config.access_key_id",
            "must be given, non-empty, together with secret_access_key",
        )),
        (Some(_), None) => Err(ApiError::invalid(
            "connector_config.secret_access_key",
            "must be given, non-empty, together with access_key_id",
        )),
    }
}

fn validate(
    body: CreateJob,
    job_id: &str,
    data_bucket: &str,
) -> Result<(Job, Option<NewCredentials>), ApiError> {
    let name = body.job_name.ok_or_else(|| ApiError::missing("job_name"))?;
    let name = name.trim().to_string();
    if !(3..=25).contains(&name.chars().count()) {
        return Err(ApiError::invalid(
            "job_name",
            "must be between 3 and 25 characters",
        ));
    }
    let connector = body
        .connector_type
        .ok_or_else(|| ApiError::missing("connector_type"))?;
    if !connector.trim().eq_ignore_ascii_case("s3") {
        return Err(ApiError::invalid("connector_type", "must be one of ['S3']"));
    }
    let given = body.schedule.ok_or_else(|| ApiError::missing("schedule"))?;
    let expr = schedule::resolve(&given).map_err(|e| ApiError::invalid("schedule", e))?;
    let timezone = body.timezone.unwrap_or_else(|| "UTC".into());
    timezone.parse::<chrono_tz_check::Tz>().map_err(|_| {
        ApiError::invalid(
            "timezone",
            "must be an IANA time zone such as UTC or Europe/Paris",
        )
    })?;
    let cc = body
        .connector_config
        .ok_or_else(|| ApiError::missing("connector_config"))?;
    let bucket = cc
        .bucket_name
        .clone()
        .ok_or_else(|| ApiError::missing("connector_config.bucket_name"))?;
    bucket_rule("connector_config.bucket_name", &bucket)?;
    if let Some(url) = &cc.endpoint_url {
        endpoint_rule(url)?;
    }
    if let Some(r) = &cc.region
        && (r.is_empty()
            || r.len() > 32
            || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Err(ApiError::invalid(
            "connector_config.region",
            "must be a region name such as us-east-1",
        ));
    }
    let credentials = credentials_rule(&cc)?;
    let destination = match body.destination {
        Some(d) => {
            bucket_rule("destination.bucket", &d.bucket)?;
            d
        }
        None => Destination {
            bucket: data_bucket.to_string(),
            prefix: format!("jobs/{job_id}/"),
        },
    };
    let chunk_size = body.chunk_size.unwrap_or(DEFAULT_CHUNK);
    if !(5 * 1024 * 1024..=5 * 1024 * 1024 * 1024).contains(&chunk_size) {
        return Err(ApiError::invalid(
            "chunk_size",
            "must be between 5 MiB and 5 GiB (S3's part size limits)",
        ));
    }
    let concurrency = body.concurrency.unwrap_or(8);
    if !(1..=64).contains(&concurrency) {
        return Err(ApiError::invalid("concurrency", "must be between 1 and 64"));
    }
    let max_attempts = body.max_attempts.unwrap_or(5);
    if !(1..=20).contains(&max_attempts) {
        return Err(ApiError::invalid(
            "max_attempts",
            "must be between 1 and 20",
        ));
    }
    let now = now_rfc3339();
    let job = Job {
        job_id: job_id.to_string(),
        job_name: name,
        connector_type: "S3".into(),
        schedule: given.trim().to_string(),
        schedule_expression: expr.to_aws(),
        timezone,
        connector_config: Source {
            bucket_name: bucket,
            prefix: cc.prefix,
            endpoint_url: cc.endpoint_url,
            region: cc.region,
            credentials_secret_arn: None,
        },
        destination,
        action: body.action.unwrap_or_default(),
        chunk_size,
        concurrency,
        max_attempts,
        job_status: JobStatus::Scheduled,
        active_run: None,
        created_at: now.clone(),
        updated_at: now,
    };
    Ok((job, credentials))
}

/// chrono-tz is reached through the shared crate's schedule module's dependency.
mod chrono_tz_check {
    pub use chrono_tz::Tz;
}

async fn create_job(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    body: Result<JsonBody<CreateJob>, ApiError>,
) -> Reply {
    let JsonBody(body) = body.map_err(compat)?;
    let job_id = uuid::Uuid::new_v4().to_string();
    let (mut job, credentials) = validate(body, &job_id, &s.data_bucket).map_err(compat)?;
    if let Some(c) = credentials {
        job.connector_config.credentials_secret_arn =
            Some(store_credentials(&s, &job_id, c).await?);
    }
    let created = s
        .store
        .create(
            &Key::job(&job_id),
            &IndexKey::job(&job.created_at, &job_id).into(),
            &job,
        )
        .await;
    if let Err(e) = created {
        forget_credentials(&s, &job).await;
        return Err(compat(e.into()));
    }
    // The job exists only with its schedule: if the schedule cannot be created, the job is removed again.
    if let Err(e) = create_schedule(&s, &job).await {
        let _ = s.store.delete(&Key::job(&job_id)).await;
        forget_credentials(&s, &job).await;
        return Err(compat(ApiError::bad_gateway(
            "could not create the job's schedule",
            e,
        )));
    }
    tracing::info!(job_id = %job_id, user = %caller.sub, schedule = %job.schedule_expression, "job created");
    Ok((
        StatusCode::CREATED,
        Json(json!({"job_id": job_id, "message": "Job scheduled successfully"})),
    ))
}

fn schedule_target(s: &AppState, job: &Job) -> anyhow::Result<Target> {
    let input = serde_json::to_string(&SyncMessage::StartRun {
        job_id: job.job_id.clone(),
        trigger: Trigger::Schedule,
        run_id: None,
    })?;
    Ok(Target::builder()
        .arn(&s.target.queue_arn)
        .role_arn(&s.target.role_arn)
        .input(input)
        .retry_policy(
            RetryPolicy::builder()
                .maximum_retry_attempts(3)
                .maximum_event_age_in_seconds(3600)
                .build(),
        )
        .dead_letter_config(DeadLetterConfig::builder().arn(&s.target.dlq_arn).build())
        .build()?)
}

fn schedule_state(job: &Job) -> ScheduleState {
    match job.job_status {
        JobStatus::Scheduled => ScheduleState::Enabled,
        JobStatus::Paused => ScheduleState::Disabled,
    }
}

fn scheduler_error<E, R>(e: aws_sdk_scheduler::error::SdkError<E, R>) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    anyhow::anyhow!("{}", aws_sdk_scheduler::error::DisplayErrorContext(e))
}

async fn create_schedule(s: &AppState, job: &Job) -> anyhow::Result<()> {
    s.scheduler
        .create_schedule()
        .name(&job.job_id)
        .group_name(&s.target.group)
        .schedule_expression(&job.schedule_expression)
        .schedule_expression_timezone(&job.timezone)
        .flexible_time_window(
            FlexibleTimeWindow::builder()
                .mode(FlexibleTimeWindowMode::Off)
                .build()?,
        )
        .target(schedule_target(s, job)?)
        .state(schedule_state(job))
        .description(format!("ferry sync job {}", job.job_name))
        .send()
        .await
        .map_err(scheduler_error)?;
    Ok(())
}

/// Rewrites the job's schedule from the job (UpdateSchedule replaces every field).
async fn update_schedule(s: &AppState, job: &Job) -> anyhow::Result<()> {
    s.scheduler
        .update_schedule()
        .name(&job.job_id)
        .group_name(&s.target.group)
        .schedule_expression(&job.schedule_expression)
        .schedule_expression_timezone(&job.timezone)
        .flexible_time_window(
            FlexibleTimeWindow::builder()
                .mode(FlexibleTimeWindowMode::Off)
                .build()?,
        )
        .target(schedule_target(s, job)?)
        .state(schedule_state(job))
        .description(format!("ferry sync job {}", job.job_name))
        .send()
        .await
        .map_err(scheduler_error)?;
    Ok(())
}

async fn store_credentials(
    s: &AppState,
    job_id: &str,
    credentials: NewCredentials,
) -> Result<String, ApiError> {
    ferry_shared::secrets::put_string(
        &s.secrets,
        &format!("{}{job_id}", s.secret_prefix),
        &credentials.0,
    )
    .await
    .map_err(|e| {
        compat(ApiError::bad_gateway(
            "could not store the source credentials",
            e,
        ))
    })
}

/// Deletes a job's credentials secret, if it has one; failures are logged (the secret is orphaned,
/// not exposed).
async fn forget_credentials(s: &AppState, job: &Job) {
    if let Some(arn) = &job.connector_config.credentials_secret_arn
        && let Err(e) = ferry_shared::secrets::delete(&s.secrets, arn).await
    {
        tracing::warn!(job_id = %job.job_id, error = %e, "could not delete the source credentials secret");
    }
}

fn job_id_rule(raw: &str) -> Result<String, ApiError> {
    let id = raw.trim();
    uuid::Uuid::parse_str(id)
        .map(|u| u.to_string())
        .map_err(|_| {
            compat(ApiError::bad_request("invalid_job_id", "Invalid job ID").field("job_id"))
        })
}

async fn load_job(s: &AppState, id: &str) -> Result<Job, ApiError> {
    s.store
        .get::<Job>(&Key::job(id))
        .await
        .map_err(|e| compat(e.into()))?
        .map(|v| v.value)
        .ok_or_else(|| compat(ApiError::not_found("Job not found").field("job_id")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListJobsQuery {
    job_id: Option<String>,
}

async fn list_jobs(
    State(s): State<AppState>,
    q: Result<QueryParams<ListJobsQuery>, ApiError>,
) -> Reply {
    let QueryParams(q) = q.map_err(compat)?;
    if let Some(raw) = q.job_id {
        let id = job_id_rule(&raw)?;
        let job = load_job(&s, &id).await?;
        return Ok((StatusCode::OK, Json(json!({"jobs": [job]}))));
    }
    let mut jobs = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = s
            .store
            .list::<Job>(&Listing::jobs(), 100, cursor.as_deref(), true)
            .await
            .map_err(|e| compat(e.into()))?;
        jobs.extend(page.items);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok((StatusCode::OK, Json(json!({"jobs": jobs}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteJob {
    job_id: Option<String>,
}

async fn delete_job(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    body: Result<JsonBody<DeleteJob>, ApiError>,
) -> Reply {
    let JsonBody(body) = body.map_err(compat)?;
    let raw = body
        .job_id
        .ok_or_else(|| compat(ApiError::missing("job_id")))?;
    let id = job_id_rule(&raw)?;
    let job = load_job(&s, &id).await?;
    remove_job(&s, &job).await?;
    tracing::info!(job_id = %id, user = %caller.sub, "job deleted");
    Ok((
        StatusCode::OK,
        Json(json!({"message": "Job deleted successfully"})),
    ))
}

/// Deletes a job with its schedule and its credentials secret (schedule first: a job whose schedule
/// could not be deleted stays, so the schedule never fires for a job that is gone).
async fn remove_job(s: &AppState, job: &Job) -> Result<(), ApiError> {
    match s
        .scheduler
        .delete_schedule()
        .name(&job.job_id)
        .group_name(&s.target.group)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) => {}
        Err(e) => {
            return Err(compat(ApiError::bad_gateway(
                "could not delete the job's schedule",
                scheduler_error(e),
            )));
        }
    }
    s.store
        .delete(&Key::job(&job.job_id))
        .await
        .map_err(|e| compat(e.into()))?;
    forget_credentials(s, job).await;
    Ok(())
}

const MAX_BULK: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkDelete {
    job_ids: Option<Vec<String>>,
}

/// Deletes several jobs; answers which ids were deleted, unknown, or malformed.
async fn bulk_delete(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    body: Result<JsonBody<BulkDelete>, ApiError>,
) -> Reply {
    let JsonBody(body) = body.map_err(compat)?;
    let ids = body
        .job_ids
        .ok_or_else(|| compat(ApiError::missing("job_ids")))?;
    if ids.is_empty() || ids.len() > MAX_BULK {
        return Err(compat(ApiError::invalid(
            "job_ids",
            format!("must list 1 to {MAX_BULK} job ids"),
        )));
    }
    let (mut deleted, mut not_found, mut invalid) = (Vec::new(), Vec::new(), Vec::new());
    for raw in ids {
        let Ok(id) = job_id_rule(&raw) else {
            invalid.push(raw);
            continue;
        };
        if deleted.contains(&id) {
            continue;
        }
        match s.store.get::<Job>(&Key::job(&id)).await {
            Ok(Some(job)) => {
                remove_job(&s, &job.value).await?;
                deleted.push(id);
            }
            Ok(None) => not_found.push(id),
            Err(e) => return Err(compat(e.into())),
        }
    }
    tracing::info!(user = %caller.sub, deleted = deleted.len(), "bulk delete");
    Ok((
        StatusCode::OK,
        Json(json!({
            "message": format!("{} job(s) deleted successfully", deleted.len()),
            "deleted": deleted, "not_found": not_found, "invalid": invalid,
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateJob {
    job_id: Option<String>,
    job_name: Option<String>,
    connector_type: Option<String>,
    schedule: Option<String>,
    timezone: Option<String>,
    connector_config: Option<ConnectorConfig>,
    destination: Option<Destination>,
    action: Option<Action>,
    chunk_size: Option<u64>,
    concurrency: Option<u32>,
    max_attempts: Option<u32>,
}

/// Changes a job: the fields given replace the job's (connector_config as a whole: omit it to keep
/// the current source and its keys), with create_job's rules; the schedule follows.
async fn update_job(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    body: Result<JsonBody<UpdateJob>, ApiError>,
) -> Reply {
    let JsonBody(u) = body.map_err(compat)?;
    let raw = u
        .job_id
        .ok_or_else(|| compat(ApiError::missing("job_id")))?;
    let id = job_id_rule(&raw)?;
    let current = load_job(&s, &id).await?;
    let new_source = u.connector_config.is_some();
    let merged = CreateJob {
        job_name: u.job_name.or(Some(current.job_name.clone())),
        connector_type: u.connector_type.or(Some(current.connector_type.clone())),
        schedule: u.schedule.or(Some(current.schedule.clone())),
        timezone: u.timezone.or(Some(current.timezone.clone())),
        connector_config: u.connector_config.or_else(|| {
            Some(ConnectorConfig {
                bucket_name: Some(current.connector_config.bucket_name.clone()),
                prefix: current.connector_config.prefix.clone(),
                endpoint_url: current.connector_config.endpoint_url.clone(),
                region: current.connector_config.region.clone(),
                ..Default::default()
            })
        }),
        destination: u.destination.or(Some(current.destination.clone())),
        action: u.action.or(Some(current.action)),
        chunk_size: u.chunk_size.or(Some(current.chunk_size)),
        concurrency: u.concurrency.or(Some(current.concurrency)),
        max_attempts: u.max_attempts.or(Some(current.max_attempts)),
    };
    let (mut next, credentials) = validate(merged, &id, &s.data_bucket).map_err(compat)?;
    next.connector_config.credentials_secret_arn = match (new_source, credentials) {
        (_, Some(c)) => Some(store_credentials(&s, &id, c).await?),
        (false, None) => current.connector_config.credentials_secret_arn.clone(),
        (true, None) => {
            forget_credentials(&s, &current).await;
            None
        }
    };
    next.created_at = current.created_at.clone();
    next.job_status = current.job_status;
    let updated = s
        .store
        .transition(&Key::job(&id), job_meta, |cur: Job| {
            Ok(Job {
                active_run: cur.active_run,
                job_status: cur.job_status,
                ..next.clone()
            })
        })
        .await
        .map_err(|e| compat(e.into()))?
        .value;
    update_schedule(&s, &updated).await.map_err(|e| {
        compat(ApiError::bad_gateway(
            "could not update the job's schedule",
            e,
        ))
    })?;
    tracing::info!(job_id = %id, user = %caller.sub, "job updated");
    Ok((
        StatusCode::OK,
        Json(json!({"job_id": id, "message": "Job updated successfully", "job": updated})),
    ))
}

async fn pause_job(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(raw): Path<String>,
) -> Reply {
    set_paused(&s, &raw, true, &caller.sub).await
}

async fn resume_job(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(raw): Path<String>,
) -> Reply {
    set_paused(&s, &raw, false, &caller.sub).await
}

/// Pauses or resumes a job's schedule; if the schedule cannot follow, the job is put back.
async fn set_paused(s: &AppState, raw: &str, pause: bool, user: &str) -> Reply {
    let id = job_id_rule(raw)?;
    load_job(s, &id).await?;
    let now = now_rfc3339();
    let job = s
        .store
        .transition(&Key::job(&id), job_meta, |j: Job| {
            if pause { j.pause(&now) } else { j.resume(&now) }
        })
        .await
        .map_err(|e| compat(e.into()))?
        .value;
    if let Err(e) = update_schedule(s, &job).await {
        let _ = s
            .store
            .transition(&Key::job(&id), job_meta, |j: Job| {
                if pause { j.resume(&now) } else { j.pause(&now) }
            })
            .await;
        return Err(compat(ApiError::bad_gateway(
            "could not update the job's schedule",
            e,
        )));
    }
    let message = if pause { "Job paused" } else { "Job resumed" };
    tracing::info!(job_id = %id, %user, message, "schedule state changed");
    Ok((
        StatusCode::OK,
        Json(json!({"job_id": id, "job_status": job.job_status, "message": message})),
    ))
}

async fn run_now(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(raw): Path<String>,
) -> Reply {
    let id = job_id_rule(&raw)?;
    load_job(&s, &id).await?;
    let run_id = new_id();
    match ferry_shared::runs::start(&s.store, &s.queue, &id, &run_id, Trigger::Api).await {
        Ok(ferry_shared::runs::Started::New) => {}
        Ok(ferry_shared::runs::Started::Busy(active)) => {
            return Err(compat(ApiError::conflict(format!(
                "job {id} already has run {active} in progress"
            ))));
        }
        Err(e) => return Err(compat(ApiError::internal(e))),
    }
    tracing::info!(job_id = %id, %run_id, user = %caller.sub, "run requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"job_id": id, "run_id": run_id, "status": "starting"})),
    ))
}

async fn list_runs(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    q: Result<QueryParams<PageQuery>, ApiError>,
) -> Reply {
    let QueryParams(q) = q.map_err(compat)?;
    let id = job_id_rule(&raw)?;
    load_job(&s, &id).await?;
    let limit = q.limit().map_err(compat)?;
    let page = s
        .store
        .children::<Run>(&Children::runs_of(&id), limit, q.cursor.as_deref(), true)
        .await
        .map_err(|e| compat(e.into()))?;
    Ok((
        StatusCode::OK,
        Json(json!({"job_id": id, "runs": page.items, "cursor": page.cursor})),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectsQuery {
    limit: Option<usize>,
    offset: Option<usize>,
    run_id: Option<String>,
    status: Option<String>,
}

async fn list_objects(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    q: Result<QueryParams<ObjectsQuery>, ApiError>,
) -> Reply {
    let QueryParams(q) = q.map_err(compat)?;
    let id = job_id_rule(&raw)?;
    load_job(&s, &id).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(compat(ApiError::invalid(
            "limit",
            "must be between 1 and 1000",
        )));
    }
    let offset = q.offset.unwrap_or(0);
    let status: Option<ObjectStatus> = match q.status.as_deref() {
        None => None,
        Some(raw) => Some(
            serde_json::from_value(json!(raw.to_ascii_uppercase())).map_err(|_| {
                compat(ApiError::invalid(
                    "status",
                    "must be one of PENDING, IN_PROGRESS, PROCESSED, SKIPPED, FAILED",
                ))
            })?,
        ),
    };
    let run_id = match q.run_id {
        Some(r) => Some(r),
        None => latest_run(&s, &id).await?,
    };
    let mut objects: Vec<ObjectRecord> = Vec::new();
    if let Some(run_id) = &run_id {
        let mut cursor: Option<String> = None;
        loop {
            let page = s
                .store
                .children::<ObjectRecord>(
                    &Children::objects_of(run_id),
                    1000,
                    cursor.as_deref(),
                    false,
                )
                .await
                .map_err(|e| compat(e.into()))?;
            objects.extend(
                page.items
                    .into_iter()
                    .filter(|o| o.job_id == id && status.is_none_or(|st| o.status == st)),
            );
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    let total = objects.len();
    let page: Vec<Value> = objects
        .into_iter()
        .enumerate()
        .skip(offset)
        .take(limit)
        .map(|(i, o)| object_view(i + 1, &o))
        .collect();
    Ok((
        StatusCode::OK,
        Json(
            json!({"job_id": id, "run_id": run_id, "limit": limit, "offset": offset, "objects": page, "total_objects": total}),
        ),
    ))
}

/// An object in the original's shape (id, object_key, object_size, last_position, status, job_id,
/// created_at, updated_at) plus ferry's fields; the checkpoint internals (upload id, part ETags) stay in.
fn object_view(id: usize, o: &ObjectRecord) -> Value {
    json!({
        "id": id,
        "job_id": o.job_id,
        "run_id": o.run_id,
        "object_key": o.object_key,
        "object_size": o.object_size,
        "last_position": o.last_position,
        "status": o.status,
        "operation": o.op,
        "etag": o.etag,
        "attempts": o.attempts,
        "error": o.error,
        "parts_done": o.parts.len(),
        "bytes_fetched": o.bytes_fetched,
        "created_at": o.created_at,
        "updated_at": o.updated_at,
    })
}

/// The newest run that did something (skipped firings have no objects).
async fn latest_run(s: &AppState, job_id: &str) -> Result<Option<String>, ApiError> {
    let page = s
        .store
        .children::<Run>(&Children::runs_of(job_id), 20, None, true)
        .await
        .map_err(|e| compat(e.into()))?;
    Ok(page
        .items
        .into_iter()
        .find(|r| r.status != RunStatus::Skipped)
        .map(|r| r.run_id))
}
