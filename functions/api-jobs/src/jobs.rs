//! The syncrator-compatible job routes: parameter sets, dry runs, on-demand runs (api jobs) and the
//! run listings. An api job is one request to run a parameter set; its run is an ordinary sync run
//! of a backing sync job whose id is derived from the parameters, so the engine (worker-sync) runs it
//! like any other and "the same job is already starting or running" is the job's own one-active-run
//! rule. The api job's id is its run's id.

use crate::params::{self, Credentials, ParamSet};
use crate::routes::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use ferry_shared::auth::Authenticated;
use ferry_shared::domain::sync::{Action, Job, JobStatus, Run, Trigger};
use ferry_shared::domain::{new_id, now_rfc3339};
use ferry_shared::http::{ApiError, JsonBody, QueryParams};
use ferry_shared::keys::{Children, IndexKey, Key, Listing};
use ferry_shared::runs::{self, Started};
use ferry_shared::store::{Meta, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

type Reply = Result<(StatusCode, Json<Value>), ApiError>;

pub const PAGE_SIZE: i32 = 50;
const MAX_PAGE: u32 = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredParams {
    pub project: String,
    pub env: String,
    pub action: Action,
    pub params: ParamSet,
    pub updated_at: String,
    pub updated_by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiJob {
    pub id: String,
    pub target: String,
    pub env: String,
    pub job_type: Action,
    /// `starting` until deleted; the run's status is what GET answers otherwise.
    pub status: String,
    /// The backing sync job (derived from the parameters).
    pub sync_job_id: String,
    pub source_url: String,
    pub target_datastore_url: String,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

fn parse_path(
    project: &str,
    env: &str,
    action: &str,
) -> Result<(String, String, Action), ApiError> {
    Ok((
        params::name_rule("project", project)?,
        params::name_rule("env", env)?,
        params::action_rule(action)?,
    ))
}

/// `/{action}/{project}/{env}`: the action is part of the route (the template lists one route per
/// action, as API Gateway does), so any other first segment is an unknown route, not a bad value.
fn route_path(
    project: &str,
    env: &str,
    action: &str,
) -> Result<(String, String, Action), ApiError> {
    if params::action_rule(action).is_err() {
        return Err(ApiError::not_found("no such route"));
    }
    parse_path(project, env, action)
}

fn secret_name(s: &AppState, scope: &str) -> String {
    format!("{}{scope}", s.secret_prefix)
}

async fn store_credentials(s: &AppState, name: &str, c: &Credentials) -> Result<String, ApiError> {
    ferry_shared::secrets::put_string(&s.secrets, name, &c.secret_value())
        .await
        .map_err(|e| ApiError::bad_gateway("could not store the source credentials", e))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"))
}

// ------------------------------------------------------------------------------- params

pub async fn put_params(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((project, env, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let (project, env, action) = parse_path(&project, &env, &action)?;
    let map = params::parse_body(&body, is_json(&headers))?;
    let (mut set, creds) = params::validate(&map)?;
    let name = secret_name(
        &s,
        &format!("params/{project}/{env}/{}", action_str(action)),
    );
    let key = Key::params(&project, &env, action_str(action));
    let previous = s.store.get::<StoredParams>(&key).await?;
    match &creds {
        Some(c) => set.credentials_secret_arn = Some(store_credentials(&s, &name, c).await?),
        None => {
            if let Some(arn) = previous
                .as_ref()
                .and_then(|p| p.value.params.credentials_secret_arn.clone())
                && let Err(e) = ferry_shared::secrets::delete(&s.secrets, &arn).await
            {
                tracing::warn!(error = %e, "could not delete the parameter set's old credentials secret");
            }
        }
    }
    let item = StoredParams {
        project: project.clone(),
        env: env.clone(),
        action,
        params: set,
        updated_at: now_rfc3339(),
        updated_by: caller.sub.clone(),
    };
    let created = previous.is_none();
    match previous {
        None => s.store.create(&key, &Meta::default(), &item).await?,
        Some(_) => {
            let next = item.clone();
            s.store
                .transition(
                    &key,
                    |_: &StoredParams| Meta::default(),
                    move |_| Ok(next.clone()),
                )
                .await?;
        }
    }
    tracing::info!(%project, %env, action = action_str(action), user = %caller.sub, "parameter set saved");
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(params_view(&item)),
    ))
}

fn params_view(p: &StoredParams) -> Value {
    json!({
        "project": p.project, "env": p.env, "action": p.action,
        "params": p.params.public(),
        "source_url": p.params.source_url(),
        "target_datastore_url": p.params.destination_url(),
        "updated_at": p.updated_at, "updated_by": p.updated_by,
    })
}

async fn load_params(
    s: &AppState,
    project: &str,
    env: &str,
    action: Action,
) -> Result<StoredParams, ApiError> {
    s.store
        .get::<StoredParams>(&Key::params(project, env, action_str(action)))
        .await?
        .map(|v| v.value)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no {} parameters for project {project} env {env}: PUT /params/{project}/{env}/{} first",
                action_str(action),
                action_str(action)
            ))
        })
}

pub async fn get_params(
    State(s): State<AppState>,
    Path((project, env, action)): Path<(String, String, String)>,
) -> Reply {
    let (project, env, action) = parse_path(&project, &env, &action)?;
    let p = load_params(&s, &project, &env, action).await?;
    Ok((StatusCode::OK, Json(params_view(&p))))
}

fn action_str(a: Action) -> &'static str {
    match a {
        Action::Sync => "sync",
        Action::Delta => "delta",
        Action::Delete => "delete",
        Action::Diff => "diff",
    }
}

// ------------------------------------------------------------------------------- dry runs and runs

/// The S3 client that reads a set's source: ferry's own, or one for its foreign store.
async fn source_client(s: &AppState, set: &ParamSet) -> Result<aws_sdk_s3::Client, ApiError> {
    if set.source_endpoint_url.is_none() && set.credentials_secret_arn.is_none() {
        return Ok(s.s3.clone());
    }
    let mut b = aws_sdk_s3::config::Builder::from(&*s.aws).force_path_style(true);
    if let Some(e) = &set.source_endpoint_url {
        b = b.endpoint_url(e);
    }
    if let Some(r) = &set.source_region {
        b = b.region(aws_sdk_s3::config::Region::new(r.clone()));
    }
    if let Some(arn) = &set.credentials_secret_arn {
        let raw = ferry_shared::secrets::get_string(&s.secrets, arn)
            .await
            .map_err(|e| ApiError::bad_gateway("could not read the source credentials", e))?;
        #[derive(Deserialize)]
        struct K {
            access_key_id: String,
            secret_access_key: String,
        }
        let k: K = serde_json::from_str(&raw).map_err(|_| {
            ApiError::internal(anyhow::anyhow!(
                "source credentials secret is not valid JSON"
            ))
        })?;
        b = b.credentials_provider(aws_sdk_s3::config::Credentials::new(
            k.access_key_id,
            k.secret_access_key,
            None,
            None,
            "ferry-params",
        ));
    }
    Ok(aws_sdk_s3::Client::from_conf(b.build()))
}

async fn dry_run(s: &AppState, project: &str, env: &str, action: Action, set: &ParamSet) -> Reply {
    let src = source_client(s, set).await?;
    let mut plan = crate::dryrun::plan(&src, &s.s3, set, action).await?;
    plan["target"] = json!(project);
    plan["env"] = json!(env);
    plan["job_id"] = json!("dryrun");
    plan["dryrun"] = json!(true);
    Ok((StatusCode::OK, Json(plan)))
}

pub async fn dryrun_params(
    State(s): State<AppState>,
    Path((action, project, env)): Path<(String, String, String)>,
) -> Reply {
    let (project, env, action) = route_path(&project, &env, &action)?;
    let p = load_params(&s, &project, &env, action).await?;
    dry_run(&s, &project, &env, action, &p.params).await
}

pub async fn run_params(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((action, project, env)): Path<(String, String, String)>,
) -> Reply {
    let (project, env, action) = route_path(&project, &env, &action)?;
    let p = load_params(&s, &project, &env, action).await?;
    launch(&s, &caller.sub, &project, &env, action, &p.params).await
}

/// `POST /run` and `/dryrun`: everything in the body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomJob {
    #[serde(alias = "project")]
    target: Option<String>,
    env: Option<String>,
    action: Option<String>,
    /// An object of parameters, or the text of a params file.
    params: Option<Value>,
}

async fn custom(
    s: &AppState,
    body: CustomJob,
) -> Result<(String, String, Action, ParamSet), ApiError> {
    let target = body.target.ok_or_else(|| ApiError::missing("target"))?;
    let env = body.env.ok_or_else(|| ApiError::missing("env"))?;
    let action = body.action.ok_or_else(|| ApiError::missing("action"))?;
    let (target, env, action) = parse_path(&target, &env, &action)?;
    let map = match body.params {
        Some(Value::Object(m)) => params::from_json(&m)?,
        Some(Value::String(t)) => params::parse_lines(&t)?,
        Some(_) => {
            return Err(ApiError::invalid(
                "params",
                "must be an object or KEY=VALUE text",
            ));
        }
        None => return Err(ApiError::missing("params")),
    };
    let (mut set, creds) = params::validate(&map)?;
    if let Some(c) = creds {
        // One secret per distinct source and key id, so identical requests share a backing job.
        let scope = hex(&Sha256::digest(
            format!(
                "{:?}\0{}\0{}",
                set.source_endpoint_url, c.access_key_id, c.secret_access_key
            )
            .as_bytes(),
        ))[..32]
            .to_string();
        set.credentials_secret_arn =
            Some(store_credentials(s, &secret_name(s, &format!("adhoc/{scope}")), &c).await?);
    }
    Ok((target, env, action, set))
}

pub async fn dryrun_custom(
    State(s): State<AppState>,
    Authenticated(_caller): Authenticated,
    body: Result<JsonBody<CustomJob>, ApiError>,
) -> Reply {
    let JsonBody(body) = body?;
    let (target, env, action, set) = custom(&s, body).await?;
    dry_run(&s, &target, &env, action, &set).await
}

pub async fn run_custom(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    body: Result<JsonBody<CustomJob>, ApiError>,
) -> Reply {
    let JsonBody(body) = body?;
    let (target, env, action, set) = custom(&s, body).await?;
    launch(&s, &caller.sub, &target, &env, action, &set).await
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The backing sync job of a parameter set: identical parameters give the identical job id.
fn backing_job(project: &str, env: &str, action: Action, set: &ParamSet) -> Job {
    let canonical = serde_json::to_string(&json!({"action": action, "params": set}))
        .expect("parameters serialize");
    let id = format!("od-{}", &hex(&Sha256::digest(canonical.as_bytes()))[..32]);
    let now = now_rfc3339();
    Job {
        job_id: id,
        job_name: format!("{project}/{env}/{}", action_str(action)),
        connector_type: "S3".into(),
        schedule: "on-demand".into(),
        schedule_expression: String::new(),
        timezone: "UTC".into(),
        connector_config: set.source(),
        destination: set.destination(),
        action,
        chunk_size: set.chunk_size,
        concurrency: set.concurrency,
        max_attempts: set.max_attempts,
        // No schedule exists for it: only api requests start its runs.
        job_status: JobStatus::Paused,
        active_run: None,
        created_at: now.clone(),
        updated_at: now,
    }
}

async fn launch(
    s: &AppState,
    user: &str,
    project: &str,
    env: &str,
    action: Action,
    set: &ParamSet,
) -> Reply {
    let job = backing_job(project, env, action, set);
    match s
        .store
        .create(&Key::job(&job.job_id), &runs::job_meta(&job), &job)
        .await
    {
        Ok(()) | Err(StoreError::Exists) => {}
        Err(e) => return Err(e.into()),
    }
    let id = new_id();
    let now = now_rfc3339();
    let api = ApiJob {
        id: id.clone(),
        target: project.to_string(),
        env: env.to_string(),
        job_type: action,
        status: "starting".into(),
        sync_job_id: job.job_id.clone(),
        source_url: set.source_url(),
        target_datastore_url: set.destination_url(),
        created_by: user.to_string(),
        created_at: now.clone(),
        updated_at: now.clone(),
    };
    // The api job exists before its run can be seen as active, so a concurrent identical request
    // that is handed this id always finds it.
    s.store
        .create(
            &Key::api_job(&id),
            &IndexKey::api_job(&now, &id).into(),
            &api,
        )
        .await?;
    let started = runs::start(&s.store, &s.queue, &job.job_id, &id, Trigger::Api).await;
    let reply = |job_id: &str, result: &str| {
        json!({
            "job_id": job_id, "api_job_id": job_id, "result": result,
            "TARGET": project, "ENV": env, "ACTION": action, "ACTION_NAME": action,
            "target": project, "env": env, "action": action,
        })
    };
    match started {
        Ok(Started::New) => {
            tracing::info!(api_job_id = %id, sync_job_id = %job.job_id, %user, "on-demand run requested");
            Ok((StatusCode::ACCEPTED, Json(reply(&id, "starting"))))
        }
        Ok(Started::Busy(active)) => {
            let _ = s.store.delete(&Key::api_job(&id)).await;
            let status = match s.store.get::<Run>(&Key::run(&job.job_id, &active)).await? {
                Some(r) => status_name(&r.value),
                None => "starting".into(),
            };
            Ok((StatusCode::OK, Json(reply(&active, &status))))
        }
        Err(e) => {
            let _ = s.store.delete(&Key::api_job(&id)).await;
            Err(ApiError::internal(e))
        }
    }
}

fn status_name(r: &Run) -> String {
    serde_json::to_value(r.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

// ------------------------------------------------------------------------------- job listings

fn run_view(r: &Run, job: Option<&Job>) -> Value {
    json!({
        "id": r.run_id,
        "job_id": r.job_id,
        "job_name": job.map(|j| j.job_name.clone()),
        "type": job.map(|j| j.action),
        "trigger": r.trigger,
        "status": r.status,
        "completed": if r.status.is_terminal() { json!(r.status == ferry_shared::domain::sync::RunStatus::Completed) } else { Value::Null },
        "start_time": r.started_at,
        "end_time": r.ended_at,
        "total_records": r.counts.total,
        "counts": r.counts,
        "bytes": r.counts.bytes,
        "source_url": job.map(|j| params::source_url(&j.connector_config)),
        "target_datastore_url": job.map(|j| params::destination_url(&j.destination)),
        "error": r.error.as_deref().map(params::filter_urls),
    })
}

async fn api_job_view(s: &AppState, a: &ApiJob) -> Result<Value, ApiError> {
    let run = s
        .store
        .get::<Run>(&Key::run(&a.sync_job_id, &a.id))
        .await?
        .map(|v| v.value);
    let job = s
        .store
        .get::<Job>(&Key::job(&a.sync_job_id))
        .await?
        .map(|v| v.value);
    let status = if a.status == "deleted" {
        "deleted".to_string()
    } else {
        run.as_ref()
            .map(status_name)
            .unwrap_or_else(|| a.status.clone())
    };
    Ok(json!({
        "id": a.id,
        "target": a.target,
        "env": a.env,
        "job_type": a.job_type,
        "status": status,
        "sync_id": run.as_ref().map(|r| r.run_id.clone()),
        "sync_job": run.as_ref().map(|r| run_view(r, job.as_ref())),
        "source_url": params::filter_urls(&a.source_url),
        "target_datastore_url": params::filter_urls(&a.target_datastore_url),
        "created_by": a.created_by,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    page: Option<u32>,
}

fn page_rule(q: &PageQuery) -> Result<u32, ApiError> {
    let page = q.page.unwrap_or(1);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(ApiError::invalid(
            "page",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok(page)
}

pub async fn list_jobs(
    State(s): State<AppState>,
    q: Result<QueryParams<PageQuery>, ApiError>,
) -> Reply {
    let QueryParams(q) = q?;
    let page = page_rule(&q)?;
    let mut cursor: Option<String> = None;
    let mut items: Vec<ApiJob> = Vec::new();
    let mut has_next = false;
    for n in 1..=page {
        let p = s
            .store
            .list::<ApiJob>(&Listing::api_jobs(), PAGE_SIZE, cursor.as_deref(), true)
            .await?;
        if n == page {
            items = p.items;
            has_next = p.cursor.is_some();
        }
        match p.cursor {
            Some(c) => cursor = Some(c),
            None if n < page => break,
            None => {}
        }
    }
    let views = futures::future::join_all(items.iter().map(|a| api_job_view(&s, a)))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        StatusCode::OK,
        Json(json!({"page": page, "per_page": PAGE_SIZE, "has_next": has_next, "jobs": views})),
    ))
}

fn id_rule(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|u| u.to_string())
        .map_err(|_| ApiError::not_found("Job not found").field("id"))
}

async fn load_api_job(s: &AppState, raw: &str) -> Result<ApiJob, ApiError> {
    let id = id_rule(raw)?;
    s.store
        .get::<ApiJob>(&Key::api_job(&id))
        .await?
        .map(|v| v.value)
        .ok_or_else(|| ApiError::not_found("Job not found").field("id"))
}

pub async fn get_job(State(s): State<AppState>, Path(raw): Path<String>) -> Reply {
    let a = load_api_job(&s, &raw).await?;
    Ok((StatusCode::OK, Json(api_job_view(&s, &a).await?)))
}

pub async fn delete_job(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(raw): Path<String>,
) -> Reply {
    let a = load_api_job(&s, &raw).await?;
    let cancelled = runs::cancel(
        &s.store,
        &a.sync_job_id,
        &a.id,
        &format!("cancelled by DELETE /jobs/{} ({})", a.id, caller.sub),
    )
    .await?;
    let now = now_rfc3339();
    let deleted = s
        .store
        .transition(
            &Key::api_job(&a.id),
            |j: &ApiJob| IndexKey::api_job(&j.created_at, &j.id).into(),
            |mut j: ApiJob| {
                j.status = "deleted".into();
                j.updated_at = now.clone();
                Ok(j)
            },
        )
        .await?
        .value;
    tracing::info!(api_job_id = %a.id, cancelled, user = %caller.sub, "api job deleted");
    let mut view = api_job_view(&s, &deleted).await?;
    view["run_cancelled"] = json!(cancelled);
    Ok((StatusCode::OK, Json(view)))
}

/// Every run of every sync job (on-demand and scheduled), newest first, 50 a page.
pub async fn list_sync_jobs(
    State(s): State<AppState>,
    q: Result<QueryParams<PageQuery>, ApiError>,
) -> Reply {
    let QueryParams(q) = q?;
    let page = page_rule(&q)? as usize;
    let mut jobs: Vec<Job> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = s
            .store
            .list::<Job>(&Listing::jobs(), 100, cursor.as_deref(), true)
            .await?;
        jobs.extend(p.items);
        match p.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut all: Vec<(Run, usize)> = Vec::new();
    for (i, j) in jobs.iter().enumerate() {
        let mut cursor: Option<String> = None;
        loop {
            let p = s
                .store
                .children::<Run>(&Children::runs_of(&j.job_id), 200, cursor.as_deref(), true)
                .await?;
            all.extend(p.items.into_iter().map(|r| (r, i)));
            match p.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    all.sort_by(|a, b| {
        b.0.started_at
            .cmp(&a.0.started_at)
            .then(b.0.run_id.cmp(&a.0.run_id))
    });
    let total = all.len();
    let size = PAGE_SIZE as usize;
    let views: Vec<Value> = all
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|(r, i)| run_view(r, Some(&jobs[*i])))
        .collect();
    Ok((
        StatusCode::OK,
        Json(json!({
            "page": page, "per_page": PAGE_SIZE, "total": total,
            "has_next": page * size < total, "sync_jobs": views,
        })),
    ))
}
