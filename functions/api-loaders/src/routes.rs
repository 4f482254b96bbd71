//! Routes of the loaders API: the original docloading server's paths, fields and response keys
//! (`loader_id`, `database`, `collection`, `status`, `response`) beside ferry's own (`loader`), with its
//! faults fixed: state in DynamoDB, 4xx/5xx on errors, 409 for a second loader on one target, 502 fast
//! for an unreachable target. Starting a loader stores it, its credentials in Secrets Manager, and sends
//! its first tick; worker-loader does the rest.

use crate::fields::Fields;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use ferry_shared::auth::{Authenticated, Tokens};
use ferry_shared::domain::loader::{
    self as domain, Kind, Loader, Mix, Phase, S3Layout, Spec, Target,
};
use ferry_shared::domain::{Conflict, new_id, now_rfc3339};
use ferry_shared::http::{ApiError, JsonBody, PageQuery, QueryParams};
use ferry_shared::keys::{IndexKey, Key, Listing};
use ferry_shared::loaders::allow::AllowList;
use ferry_shared::loaders::dynamo::{self, Dynamo};
use ferry_shared::loaders::mongo;
use ferry_shared::loaders::mysql::Mysql;
use ferry_shared::loaders::ops::{TargetOp, TargetRequest};
use ferry_shared::loaders::s3::{self as s3target, S3Target};
use ferry_shared::loaders::{Creds, TargetError};
use ferry_shared::messages::LoaderMessage;
use ferry_shared::queue::Queue;
use ferry_shared::store::{Meta, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub store: Store,
    pub tokens: Arc<Tokens>,
    /// worker-loader's queue: MongoDB, MySQL and DynamoDB loaders.
    pub queue: Queue,
    /// worker-loader-s3's queue: S3 loaders.
    #[from_ref(skip)]
    pub s3_queue: Queue,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub aws: aws_config::SdkConfig,
    pub allow: Arc<AllowList>,
    /// MongoDB operations, done by worker-loader (this function does not link the driver).
    pub targets: crate::targets::TargetOps,
}

pub fn router(state: AppState) -> Router {
    ferry_shared::http::finish(
        Router::new()
            .route("/loaders", get(list))
            .route("/loaders/{id}", get(show).patch(patch))
            // start_crud is the original's second name for the same start (fill or trim to the
            // target, then CRUD unless `"crud": false`).
            .route("/mongo/start_loader", post(mongo_start_loader))
            .route("/mongo/start_crud", post(mongo_start_loader))
            .route("/mongo/stop_loader", post(stop))
            .route("/mongo/count", get(mongo_count))
            .route("/mongo/delete_database", delete(mongo_delete_database))
            .route("/mongo/delete_collection", delete(mongo_delete_collection))
            .route("/mysql/start_loader", post(mysql_start_loader))
            .route("/mysql/start_crud", post(mysql_start_loader))
            .route("/mysql/restore", post(mysql_restore))
            .route("/mysql/stop_loader", post(stop))
            .route("/mysql/count", get(mysql_count))
            .route("/mysql/delete_database", delete(mysql_delete_database))
            .route("/mysql/delete_table", delete(mysql_delete_table))
            .route("/dynamo/start_loader", post(dynamo_start_loader))
            .route("/dynamo/start_crud", post(dynamo_start_loader))
            .route("/dynamo/stop_loader", post(stop))
            .route("/dynamo/count", get(dynamo_count))
            .route("/dynamo/delete_table", delete(dynamo_delete_table))
            .route("/s3/start_loader", post(s3_start_loader))
            .route("/s3/restore", post(s3_restore))
            .route("/s3/stop_loader", post(stop))
            .route("/s3/delete_bucket", delete(s3_delete_bucket))
            .with_state(state),
    )
}

type Reply = Result<(StatusCode, Json<Value>), ApiError>;

fn target_error(field: &str, e: TargetError) -> ApiError {
    match e {
        TargetError::Unreachable(m) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "target_unreachable",
            format!("the target could not be reached: {m}"),
        )
        .field(field),
        TargetError::Refused(m) => ApiError::bad_request("target_refused", m).field(field),
        TargetError::Failed(m) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "target_error", m).field(field)
        }
    }
}

async fn allowed(allow: &AllowList, field: &str, host: &str) -> Result<(), ApiError> {
    allow
        .check(host)
        .await
        .map_err(|e| ApiError::forbidden(e.to_string()).field(field))
}

// ------------------------------------------------------------------------------------ views

/// What the API shows of a loader: the original's keys plus ferry's; never a secret or its ARN.
pub fn view(l: &Loader) -> Value {
    let t = &l.target;
    let (database, collection) = match l.kind {
        Kind::S3 => (json!(t.buckets), json!(t.buckets)),
        _ => (json!(t.database), json!(t.collection)),
    };
    json!({
        "loader_id": l.loader_id,
        "kind": l.kind,
        "database": database,
        "collection": collection,
        "status": l.phase.status(),
        "phase": l.phase,
        "target": {
            "host": t.host, "port": t.port, "username": t.username, "database": t.database,
            "collection": t.collection, "buckets": t.buckets, "region": t.region,
        },
        "target_count": l.spec.target_count,
        "buffer": l.spec.buffer,
        "current_count": l.progress.count,
        "ops": l.progress.ops,
        "ops_per_sec": l.progress.ops_per_sec,
        "rate_limit": l.spec.rate_limit,
        "mix": l.spec.mix,
        "document_size": l.spec.document_size,
        "crud": l.spec.crud,
        "time_for_crud_in_mins": l.spec.crud_minutes,
        "s3": l.spec.s3,
        "created_at": l.created_at,
        "started_at": l.started_at,
        "updated_at": l.updated_at,
        "last_error": l.last_error,
        "runs": l.runs,
    })
}

fn reply(l: &Loader, response: String) -> (StatusCode, Json<Value>) {
    let mut v = view(l);
    v["response"] = json!(response);
    if l.kind == Kind::S3 {
        // The original S3 loader's key.
        v["bucket"] = json!(l.target.buckets);
    }
    v["loader"] = view(l);
    (StatusCode::OK, Json(v))
}

async fn list(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = state
        .store
        .list::<Loader>(&Listing::loaders(), q.limit()?, q.cursor.as_deref(), true)
        .await?;
    let items: Vec<Value> = page.items.iter().map(view).collect();
    Ok(Json(json!({"loaders": items, "cursor": page.cursor})))
}

async fn load(store: &Store, id: &str) -> Result<Loader, ApiError> {
    store
        .get::<Loader>(&Key::loader(id))
        .await?
        .map(|v| v.value)
        .ok_or_else(|| {
            ApiError::not_found(format!("loader {id} does not exist")).field("loader_id")
        })
}

async fn show(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&load(&s.store, &id).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default, deserialize_with = "some")]
    rate_limit: Option<Option<u32>>,
    mix: Option<Mix>,
}

fn some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

async fn patch(
    State(s): State<AppState>,
    _caller: Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Json<Value>, ApiError> {
    load(&s.store, &id).await?;
    let now = now_rfc3339();
    let l = s
        .store
        .transition(&Key::loader(&id), meta, |l: Loader| {
            l.patch(body.rate_limit, body.mix, &now)
        })
        .await?;
    Ok(Json(view(&l.value)))
}

fn meta(l: &Loader) -> Meta {
    IndexKey::loader(&l.created_at, &l.loader_id).into()
}

// ------------------------------------------------------------------------------------ start

/// What a start request asks, common to every kind.
struct Start {
    /// The new loader's id when it had to be known before the start (S3 tags its buckets with it).
    id: Option<String>,
    kind: Kind,
    target: Target,
    creds: Creds,
    spec: Option<Spec>,
    restart: Option<String>,
}

/// Largest `document_size` a MongoDB or MySQL loader takes.
const MAX_DOCUMENT_SIZE: u64 = 1_000_000;
/// Largest `document_size` a DynamoDB loader takes: an item holds at most 400 KB (names and values),
/// and a document's JSON is a little longer than its item.
const MAX_DYNAMO_DOCUMENT_SIZE: u64 = 400_000;

fn spec_of(
    f: &Fields,
    crud: bool,
    count_fields: &[&str],
    default_size: u32,
    max_size: u64,
) -> Result<Option<Spec>, ApiError> {
    let mut target = None;
    for name in count_fields {
        if let Some(v) = f.u64(name)? {
            target = Some(v);
            break;
        }
    }
    let Some(target_count) = target else {
        return Ok(None);
    };
    let mix = match f.value("mix") {
        None => Mix::default(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| ApiError::invalid("mix", "must be {insert, update, delete} weights"))?,
    };
    let document_size = f.u64("document_size")?.unwrap_or(u64::from(default_size));
    if !(1..=max_size).contains(&document_size) {
        return Err(ApiError::invalid(
            "document_size",
            format!("must be between 1 and {max_size} bytes"),
        ));
    }
    let rate_limit = match f.u64("rate_limit")? {
        Some(0) => return Err(ApiError::invalid("rate_limit", "must be above 0")),
        Some(r) => Some(r.min(u64::from(u32::MAX)) as u32),
        None => None,
    };
    let spec = Spec {
        target_count,
        buffer: f.u64("num_buffer")?.unwrap_or(500),
        document_size: document_size as u32,
        crud: crud && f.bool("crud")?.unwrap_or(true),
        crud_minutes: f.f64("time_for_crud_in_mins")?,
        mix,
        rate_limit,
        table_columns: f.str("table_columns")?,
        init_config: f.bool("init_config")?.unwrap_or(false),
        s3: None,
    };
    ferry_shared::domain::loader::validate_spec(&spec)
        .map_err(|m| ApiError::bad_request("invalid_field", m))?;
    Ok(Some(spec))
}

async fn begin(s: &AppState, start: Start, caller: &str) -> Reply {
    if let Some(id) = start.restart {
        return restart(s, start.kind, &id, start.spec, caller).await;
    }
    let spec = start.spec.expect("checked by the caller");
    let id = start.id.clone().unwrap_or_else(new_id);
    let now = now_rfc3339();
    let lock_key = start.target.lock_key(start.kind);
    claim_target(s, &lock_key, &id).await?;
    let mut target = start.target;
    if !start.creds.is_empty() {
        target.secret_arn = Some(store_secret(s, &id, &start.creds).await?);
    }
    let loader = Loader::new(&id, start.kind, target, spec, &now)
        .map_err(|c| ApiError::bad_request("invalid_field", c.0))?;
    s.store
        .create(&Key::loader(&id), &meta(&loader), &loader)
        .await?;
    send_tick(s, loader.kind, &id, 0).await?;
    tracing::info!(loader_id = %id, kind = ?loader.kind, caller, "loader started");
    Ok(reply(&loader, format!("Loader {id} started successfully")))
}

/// One loader per target: the lock item names the loader that holds it; an ended holder gives it up.
async fn claim_target(s: &AppState, lock_key: &str, id: &str) -> Result<(), ApiError> {
    #[derive(Serialize, Deserialize, Clone)]
    struct Lock {
        loader_id: String,
    }
    let key = Key::loader_target(lock_key);
    let mine = Lock {
        loader_id: id.to_string(),
    };
    match s.store.create(&key, &Meta::default(), &mine).await {
        Ok(()) => return Ok(()),
        Err(StoreError::Exists) => {}
        Err(e) => return Err(e.into()),
    }
    let Some(held) = s.store.get::<Lock>(&key).await? else {
        return Err(ApiError::conflict("the target's lock changed; try again"));
    };
    let holder = held.value.loader_id.clone();
    if holder != id
        && let Some(l) = s.store.get::<Loader>(&Key::loader(&holder)).await?
        && l.value.phase.is_active()
    {
        return Err(ApiError::conflict(format!(
            "loader {holder} is already running on this target"
        ))
        .with("loader_id", json!(holder)));
    }
    let store = s.store.clone();
    let check = move |l: Lock| -> Result<Lock, Conflict> {
        if l.loader_id == holder || l.loader_id == mine.loader_id {
            Ok(mine.clone())
        } else {
            Err(Conflict(format!("loader {} took this target", l.loader_id)))
        }
    };
    store
        .transition(&key, |_: &Lock| Meta::default(), check)
        .await
        .map(|_| ())
        .map_err(ApiError::from)
}

async fn restart(s: &AppState, kind: Kind, id: &str, spec: Option<Spec>, caller: &str) -> Reply {
    let current = load(&s.store, id).await?;
    if current.kind != kind {
        return Err(ApiError::invalid(
            "loader_id",
            format!("is a {} loader", current.kind.as_str()),
        ));
    }
    claim_target(s, &current.target.lock_key(kind), id).await?;
    let now = now_rfc3339();
    let spec = spec.map(|mut sp| {
        // Fields the restart did not carry stay as they were.
        sp.table_columns = sp.table_columns.or(current.spec.table_columns.clone());
        sp.s3 = current.spec.s3.clone();
        sp
    });
    let l = s
        .store
        .transition(&Key::loader(id), meta, |l: Loader| {
            l.restart(spec.clone(), &now)
        })
        .await?
        .value;
    send_tick(s, kind, id, l.tick).await?;
    tracing::info!(loader_id = %id, tick = l.tick, caller, "loader restarted");
    Ok(reply(&l, format!("Loader {id} restarted successfully")))
}

/// Sends a loader's tick to the worker that serves its kind.
async fn send_tick(s: &AppState, kind: Kind, id: &str, tick: u64) -> Result<(), ApiError> {
    let queue = match kind {
        Kind::S3 => &s.s3_queue,
        Kind::Mongo | Kind::Mysql | Kind::Dynamo => &s.queue,
    };
    queue
        .send(&LoaderMessage::Tick {
            loader_id: id.to_string(),
            tick,
        })
        .await
        .map_err(ApiError::internal)?;
    Ok(())
}

async fn store_secret(s: &AppState, id: &str, creds: &Creds) -> Result<String, ApiError> {
    let value = serde_json::to_string(creds).map_err(ApiError::internal)?;
    let out = s
        .secrets
        .create_secret()
        .name(format!("ferry/loaders/{id}"))
        .description("credentials of a ferry loader's target")
        .secret_string(value)
        .send()
        .await
        .map_err(|e| {
            ApiError::internal(anyhow::anyhow!(
                "create_secret: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            ))
        })?;
    out.arn
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("create_secret returned no ARN")))
}

// ------------------------------------------------------------------------------------ stop

async fn stop(State(s): State<AppState>, Authenticated(caller): Authenticated, f: Fields) -> Reply {
    let caller = caller.sub;
    f.require(&["loader_id"])?;
    let id = f.str("loader_id")?.unwrap_or_default();
    load(&s.store, &id).await?;
    let now = now_rfc3339();
    let mut l = s
        .store
        .transition(&Key::loader(&id), meta, |l: Loader| l.request_stop(&now))
        .await?
        .value;
    // The worker finishes its batch and marks the loader stopped within a slice; wait a little so the
    // answer is usually the final state, as the original's was.
    for _ in 0..30 {
        if l.phase != Phase::Stopping {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        l = load(&s.store, &id).await?;
    }
    // Still stopping with no slice under way: its tick is late or was lost (dead-lettered after
    // repeated failures). Send it again so the stop completes; ticks are idempotent, so if the
    // original is only late, whichever comes second is a no-op.
    let now_ms = chrono::Utc::now().timestamp_millis();
    if l.phase == Phase::Stopping
        && l.lease
            .as_ref()
            .is_none_or(|lease| lease.until_ms <= now_ms)
    {
        tracing::warn!(loader_id = %id, tick = l.tick, "stop: no slice under way; sending the tick again");
        send_tick(&s, l.kind, &id, l.tick).await?;
    }
    tracing::info!(loader_id = %id, caller, phase = ?l.phase, "stop asked");
    let word = if l.phase == Phase::Stopping {
        "is stopping"
    } else {
        "stopped successfully"
    };
    Ok(reply(&l, format!("Loader {id} {word}")))
}

// ------------------------------------------------------------------------------------ mongo

const MONGO_REQUIRED: [&str; 3] = ["ip", "database_name", "collection_name"];

struct MongoReq {
    target: Target,
    creds: Creds,
    database: String,
    collection: String,
}

async fn mongo_req(s: &AppState, f: &Fields, need_collection: bool) -> Result<MongoReq, ApiError> {
    let atlas = f.str("atlas_url")?;
    let required: &[&str] = match (atlas.is_some(), need_collection) {
        (true, true) => &["database_name", "collection_name"],
        (true, false) => &["database_name"],
        (false, true) => &MONGO_REQUIRED,
        (false, false) => &MONGO_REQUIRED[..2],
    };
    f.require(required)?;
    let database = f.str("database_name")?.unwrap_or_default();
    let collection = f.str("collection_name")?.unwrap_or_default();
    for (field, v) in [
        ("database_name", &database),
        ("collection_name", &collection),
    ] {
        if !v.is_empty() {
            ferry_shared::loaders::check_identifier(field, v)
                .map_err(|m| ApiError::invalid(field, m))?;
        }
    }
    let creds = Creds {
        password: f.str("password")?,
        atlas_url: atlas.clone(),
        ..Creds::default()
    };
    let mut target = Target {
        host: f.str("ip")?,
        port: Some(f.port("port", 27017)?),
        username: f.str("username")?,
        database: Some(database.clone()),
        collection: Some(collection.clone()).filter(|c| !c.is_empty()),
        ..Target::default()
    };
    if let Some(url) = &atlas {
        if !(url.starts_with("mongodb://") || url.starts_with("mongodb+srv://")) {
            return Err(ApiError::invalid(
                "atlas_url",
                "must be a mongodb:// or mongodb+srv:// connection string",
            ));
        }
        let hosts = mongo::hosts_of(url);
        target.host = Some(hosts.join(","));
        target.port = None;
        target.username = None;
        for h in &hosts {
            allowed(&s.allow, "atlas_url", h).await?;
        }
    } else {
        allowed(&s.allow, "ip", target.host.as_deref().unwrap_or_default()).await?;
    }
    Ok(MongoReq {
        target,
        creds,
        database,
        collection,
    })
}

/// Runs `op` on the request's MongoDB target in worker-loader (see `targets`); a target error names
/// `field`, or the connection's field (`atlas_url` or `ip`) when the target could not be reached.
async fn mongo_op(
    s: &AppState,
    r: &MongoReq,
    op: TargetOp,
    field: &str,
) -> Result<Option<u64>, ApiError> {
    let connection = if r.creds.atlas_url.is_some() {
        "atlas_url"
    } else {
        "ip"
    };
    let request = TargetRequest {
        target_op: op,
        kind: Kind::Mongo,
        target: r.target.clone(),
        creds: r.creds.clone(),
        database: r.database.clone(),
        collection: r.collection.clone(),
    };
    match s.targets.run(&request).await? {
        Ok(count) => Ok(count),
        // Reaching and authenticating to the server are the connection's fields; what the server
        // refused after that is about the named database or collection.
        Err(f) if f.connecting => Err(target_error(connection, f.error)),
        Err(f) => Err(target_error(field, f.error)),
    }
}

async fn mongo_start(s: AppState, caller: String, f: Fields, crud: bool) -> Reply {
    let restart = f.str("loader_id")?;
    let spec = spec_of(
        &f,
        crud,
        &["target_num_docs", "initial_doc_count"],
        1024,
        MAX_DOCUMENT_SIZE,
    )?;
    if let Some(id) = restart {
        return begin(
            &s,
            Start {
                id: None,
                kind: Kind::Mongo,
                target: Target::default(),
                creds: Creds::default(),
                spec,
                restart: Some(id),
            },
            &caller,
        )
        .await;
    }
    let r = mongo_req(&s, &f, true).await?;
    if spec.is_none() {
        return Err(crate::fields::missing_error(
            "target_num_docs",
            &["target_num_docs"],
            &[&MONGO_REQUIRED[..], &["target_num_docs"]].concat(),
        ));
    }
    mongo_op(&s, &r, TargetOp::Check, "database_name").await?;
    begin(
        &s,
        Start {
            id: None,
            kind: Kind::Mongo,
            target: r.target,
            creds: r.creds,
            spec,
            restart: None,
        },
        &caller,
    )
    .await
}

async fn mongo_start_loader(
    State(s): State<AppState>,
    Authenticated(c): Authenticated,
    f: Fields,
) -> Reply {
    let c = c.sub;
    mongo_start(s, c, f, true).await
}

async fn mongo_count(State(s): State<AppState>, f: Fields) -> Reply {
    let r = mongo_req(&s, &f, true).await?;
    let n = mongo_op(&s, &r, TargetOp::Count, "collection_name")
        .await?
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("the loader worker's count has no count"))
        })?;
    Ok((StatusCode::OK, Json(json!({"count": n}))))
}

async fn mongo_delete_database(State(s): State<AppState>, _c: Authenticated, f: Fields) -> Reply {
    let r = mongo_req(&s, &f, false).await?;
    mongo_op(&s, &r, TargetOp::DropDatabase, "database_name").await?;
    Ok((StatusCode::OK, Json(json!({"response": "SUCCESS"}))))
}

async fn mongo_delete_collection(State(s): State<AppState>, _c: Authenticated, f: Fields) -> Reply {
    let r = mongo_req(&s, &f, true).await?;
    mongo_op(&s, &r, TargetOp::DropCollection, "collection_name").await?;
    Ok((StatusCode::OK, Json(json!({"response": "SUCCESS"}))))
}

// ------------------------------------------------------------------------------------ mysql

const MYSQL_REQUIRED: [&str; 5] = [
    "host",
    "username",
    "password",
    "database_name",
    "table_name",
];

async fn mysql_req(
    s: &AppState,
    f: &Fields,
    required: &[&str],
) -> Result<(Target, Creds), ApiError> {
    f.require(required)?;
    let target = Target {
        host: f.str("host")?,
        port: Some(f.port("port", 3306)?),
        username: f.str("username")?,
        database: f.str("database_name")?,
        collection: f.str("table_name")?,
        ..Target::default()
    };
    allowed(&s.allow, "host", target.host.as_deref().unwrap_or_default()).await?;
    let creds = Creds {
        password: f.str("password")?,
        ..Creds::default()
    };
    Ok((target, creds))
}

async fn mysql_connect(t: &Target, c: &Creds) -> Result<Mysql, ApiError> {
    Mysql::connect(
        t,
        c,
        t.database.as_deref().unwrap_or_default(),
        t.collection.as_deref().unwrap_or_default(),
        1,
    )
    .await
    .map_err(|e| match e {
        TargetError::Refused(m) if m.contains("database_name") => {
            ApiError::invalid("database_name", m)
        }
        TargetError::Refused(m) if m.contains("table_name") => ApiError::invalid("table_name", m),
        other => target_error("host", other),
    })
}

async fn mysql_start(s: AppState, caller: String, f: Fields, crud: bool, counts: &[&str]) -> Reply {
    let spec = spec_of(&f, crud, counts, 1024, MAX_DOCUMENT_SIZE)?;
    if let Some(id) = f.str("loader_id")? {
        return begin(
            &s,
            Start {
                id: None,
                kind: Kind::Mysql,
                target: Target::default(),
                creds: Creds::default(),
                spec,
                restart: Some(id),
            },
            &caller,
        )
        .await;
    }
    let init = f.bool("init_config")?.unwrap_or(false);
    let mut required = MYSQL_REQUIRED.to_vec();
    if init {
        required.push("table_columns");
    }
    required.push(counts[0]);
    let (target, creds) = mysql_req(&s, &f, &required).await?;
    let spec = spec.expect("the count field is required above");
    let m = mysql_connect(&target, &creds).await?;
    if init {
        m.init(spec.table_columns.as_deref().unwrap_or_default())
            .await
            .map_err(|e| match e {
                TargetError::Refused(msg) => ApiError::invalid("table_columns", msg),
                other => target_error("host", other),
            })?;
    }
    m.columns().await.map_err(|e| match e {
        TargetError::Refused(msg) => ApiError::invalid("table_name", msg),
        other => target_error("host", other),
    })?;
    begin(
        &s,
        Start {
            id: None,
            kind: Kind::Mysql,
            target,
            creds,
            spec: Some(spec),
            restart: None,
        },
        &caller,
    )
    .await
}

async fn mysql_start_loader(
    State(s): State<AppState>,
    Authenticated(c): Authenticated,
    f: Fields,
) -> Reply {
    let c = c.sub;
    mysql_start(s, c, f, true, &["target_num_docs", "initial_doc_count"]).await
}

/// The original's restore: bring the table to `doc_count` rows, then end (no CRUD).
async fn mysql_restore(
    State(s): State<AppState>,
    Authenticated(c): Authenticated,
    f: Fields,
) -> Reply {
    let c = c.sub;
    mysql_start(s, c, f, false, &["doc_count"]).await
}

async fn mysql_count(State(s): State<AppState>, f: Fields) -> Reply {
    let (t, c) = mysql_req(&s, &f, &MYSQL_REQUIRED).await?;
    let m = mysql_connect(&t, &c).await?;
    let n = m.count().await.map_err(|e| match e {
        TargetError::Refused(msg) => ApiError::invalid("table_name", msg),
        other => target_error("host", other),
    })?;
    Ok((StatusCode::OK, Json(json!({"count": n}))))
}

async fn mysql_delete_database(State(s): State<AppState>, _c: Authenticated, f: Fields) -> Reply {
    let (t, c) = mysql_req(&s, &f, &MYSQL_REQUIRED[..4]).await?;
    let m = mysql_connect(&t, &c).await?;
    m.drop_database()
        .await
        .map_err(|e| target_error("database_name", e))?;
    Ok((StatusCode::OK, Json(json!({"response": "SUCCESS"}))))
}

async fn mysql_delete_table(State(s): State<AppState>, _c: Authenticated, f: Fields) -> Reply {
    let (t, c) = mysql_req(&s, &f, &MYSQL_REQUIRED).await?;
    let m = mysql_connect(&t, &c).await?;
    m.drop_table()
        .await
        .map_err(|e| target_error("table_name", e))?;
    Ok((StatusCode::OK, Json(json!({"response": "SUCCESS"}))))
}

// ------------------------------------------------------------------------------------ dynamo

fn dynamo_req(f: &Fields, required: &[&str]) -> Result<(Target, Creds), ApiError> {
    f.require(required)?;
    let table = f.str("table_name")?.unwrap_or_default();
    ferry_shared::loaders::check_identifier("table_name", &table)
        .map_err(|m| ApiError::invalid("table_name", m))?;
    Ok((
        Target {
            database: Some(table.clone()),
            collection: Some(table),
            region: f.str("region")?,
            ..Target::default()
        },
        Creds {
            access_key: f.str("access_key")?,
            secret_key: f.str("secret_key")?,
            session_token: f.str("session_token")?,
            ..Creds::default()
        },
    ))
}

async fn dynamo_open(
    s: &AppState,
    t: &Target,
    c: &Creds,
    create: bool,
) -> Result<Dynamo, ApiError> {
    let client = dynamo::client(&s.aws, t.region.as_deref(), c);
    let open = Dynamo::open(client, t.collection.as_deref().unwrap_or_default(), create);
    match tokio::time::timeout(Duration::from_secs(10), open).await {
        Ok(r) => r.map_err(|e| match e {
            TargetError::Refused(m) => ApiError::not_found(m).field("table_name"),
            other => target_error("table_name", other),
        }),
        Err(_) => Err(target_error(
            "table_name",
            TargetError::Unreachable("timed out".into()),
        )),
    }
}

async fn dynamo_start(s: AppState, caller: String, f: Fields, crud: bool) -> Reply {
    let spec = spec_of(
        &f,
        crud,
        &["target_num_docs", "initial_doc_count"],
        1024,
        MAX_DYNAMO_DOCUMENT_SIZE,
    )?;
    if let Some(id) = f.str("loader_id")? {
        return begin(
            &s,
            Start {
                id: None,
                kind: Kind::Dynamo,
                target: Target::default(),
                creds: Creds::default(),
                spec,
                restart: Some(id),
            },
            &caller,
        )
        .await;
    }
    let (target, creds) = dynamo_req(&f, &["table_name", "target_num_docs"])?;
    dynamo_open(&s, &target, &creds, true).await?;
    begin(
        &s,
        Start {
            id: None,
            kind: Kind::Dynamo,
            target,
            creds,
            spec,
            restart: None,
        },
        &caller,
    )
    .await
}

async fn dynamo_start_loader(
    State(s): State<AppState>,
    Authenticated(c): Authenticated,
    f: Fields,
) -> Reply {
    let c = c.sub;
    dynamo_start(s, c, f, true).await
}

async fn dynamo_count(State(s): State<AppState>, f: Fields) -> Reply {
    let (t, c) = dynamo_req(&f, &["table_name"])?;
    let d = dynamo_open(&s, &t, &c, false).await?;
    let n = d.count().await.map_err(|e| target_error("table_name", e))?;
    Ok((StatusCode::OK, Json(json!({"count": n}))))
}

async fn dynamo_delete_table(State(s): State<AppState>, _c: Authenticated, f: Fields) -> Reply {
    let (t, c) = dynamo_req(&f, &["table_name"])?;
    let d = dynamo_open(&s, &t, &c, false).await?;
    d.delete_table()
        .await
        .map_err(|e| target_error("table_name", e))?;
    Ok((StatusCode::OK, Json(json!({"response": "SUCCESS"}))))
}

// ------------------------------------------------------------------------------------ s3

/// The original's required fields of `/s3/start_loader` (its keys became optional: without them the
/// function's own credentials are used).
const S3_REQUIRED: [&str; 4] = [
    "num_buckets",
    "depth_level",
    "num_folders_per_level",
    "num_files_per_level",
];
const S3_FORMATS: [&str; 5] = ["json", "csv", "tsv", "avro", "parquet"];
/// How long one S3 call of a request may take before the endpoint counts as unreachable.
const S3_TIMEOUT: Duration = Duration::from_secs(10);

struct S3Req {
    target: Target,
    creds: Creds,
    s3: S3Target,
}

/// Endpoint, region and keys of an S3 request: the endpoint must pass the host allow-list; keys come
/// in pairs and go to Secrets Manager only if a loader is started.
async fn s3_req(s: &AppState, f: &Fields) -> Result<S3Req, ApiError> {
    let endpoint = f.str("endpoint_url")?;
    if let Some(e) = &endpoint {
        let host = s3target::endpoint_host(e).map_err(|m| ApiError::invalid("endpoint_url", m))?;
        allowed(&s.allow, "endpoint_url", &host).await?;
    }
    let creds = Creds {
        access_key: f.str("access_key")?,
        secret_key: f.str("secret_key")?,
        session_token: f.str("session_token")?,
        ..Creds::default()
    };
    match (&creds.access_key, &creds.secret_key) {
        (Some(_), None) => {
            return Err(ApiError::invalid(
                "secret_key",
                "is required with access_key",
            ));
        }
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "access_key",
                "is required with secret_key",
            ));
        }
        _ => {}
    }
    let target = Target {
        host: endpoint.clone(),
        region: f.str("region")?,
        ..Target::default()
    };
    let client = s3target::client(
        &s.aws,
        target.region.as_deref(),
        endpoint.as_deref(),
        &creds,
    );
    Ok(S3Req {
        target,
        creds,
        s3: S3Target::new(client),
    })
}

/// An S3 call bounded by [`S3_TIMEOUT`], its failure mapped to the field most likely at fault.
async fn s3_call<T>(
    fut: impl std::future::Future<Output = Result<T, TargetError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(S3_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(TargetError::Refused(m))) if m.contains("credentials") => {
            Err(ApiError::bad_request("target_refused", m).field("access_key"))
        }
        Ok(Err(e)) => Err(target_error("endpoint_url", e)),
        Err(_) => Err(target_error(
            "endpoint_url",
            TargetError::Unreachable("timed out".into()),
        )),
    }
}

fn u32_field(f: &Fields, name: &str) -> Result<Option<u32>, ApiError> {
    match f.u64(name)? {
        None => Ok(None),
        Some(v) => u32::try_from(v)
            .map(Some)
            .map_err(|_| ApiError::invalid(name, "is too large")),
    }
}

/// `file_format`: one name, a comma-separated list or a JSON list of json, csv, tsv, avro, parquet
/// (default json).
fn file_formats(f: &Fields) -> Result<Vec<String>, ApiError> {
    let names: Vec<String> = match f.value("file_format") {
        None => vec!["json".into()],
        Some(Value::String(s)) => s.split(',').map(str::to_string).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::invalid("file_format", "must list format names"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::invalid(
                "file_format",
                "must be a format name or a list of them",
            ));
        }
    };
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let n = n.trim().to_ascii_lowercase();
        if !S3_FORMATS.contains(&n.as_str()) {
            return Err(ApiError::invalid(
                "file_format",
                format!("unknown format {n:?}: expected one of json, csv, tsv, avro, parquet"),
            ));
        }
        if !out.contains(&n) {
            out.push(n);
        }
    }
    if out.is_empty() {
        return Err(ApiError::invalid(
            "file_format",
            "must name at least one format",
        ));
    }
    Ok(out)
}

/// The layout of a start or restore. Per folder the CRUD band is `[min_files, max_files]`, by default
/// `num_files_per_level` give or take `num_buffer` (default: a fifth of the files, at least 1).
fn s3_layout(f: &Fields, num_buckets: u32) -> Result<S3Layout, ApiError> {
    let need = |name: &str| -> Result<u32, ApiError> {
        u32_field(f, name)?.ok_or_else(|| ApiError::missing(name))
    };
    let num_files_per_level = need("num_files_per_level")?;
    let (min, max) = domain::s3_default_band(num_files_per_level, u32_field(f, "num_buffer")?);
    let layout = S3Layout {
        num_buckets,
        depth_level: need("depth_level")?,
        num_folders_per_level: need("num_folders_per_level")?,
        num_files_per_level,
        file_size: f.u64("file_size")?.unwrap_or(1024),
        file_formats: file_formats(f)?,
        min_files: u32_field(f, "min_files")?.unwrap_or(min),
        max_files: u32_field(f, "max_files")?.unwrap_or(max),
    };
    layout
        .validate()
        .map_err(|(field, rule)| ApiError::invalid(field, rule))?;
    Ok(layout)
}

fn s3_spec(f: &Fields, layout: S3Layout, crud: bool) -> Result<Spec, ApiError> {
    let mix = match f.value("mix") {
        None => Mix::default(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| ApiError::invalid("mix", "must be {insert, update, delete} weights"))?,
    };
    let rate_limit = match u32_field(f, "rate_limit")? {
        Some(0) => return Err(ApiError::invalid("rate_limit", "must be above 0")),
        r => r,
    };
    let spec = Spec {
        target_count: u64::from(layout.num_buckets) * layout.files_per_bucket(),
        buffer: u64::from((layout.max_files - layout.min_files) / 2),
        document_size: u32::try_from(layout.file_size).unwrap_or(u32::MAX),
        crud: crud && f.bool("crud")?.unwrap_or(true),
        crud_minutes: f.f64("time_for_crud_in_mins")?,
        mix,
        rate_limit,
        table_columns: None,
        init_config: false,
        s3: Some(layout),
    };
    domain::validate_spec(&spec).map_err(|m| ApiError::bad_request("invalid_field", m))?;
    Ok(spec)
}

/// A bucket a loader created and that loader still runs: 409, whatever else was asked.
async fn s3_busy(s: &AppState, owner: Option<&str>, bucket: &str) -> Result<(), ApiError> {
    if let Some(id) = owner
        && let Some(l) = s.store.get::<Loader>(&Key::loader(id)).await?
        && l.value.phase.is_active()
    {
        return Err(ApiError::conflict(format!(
            "loader {id} is running on bucket {bucket}: stop it first"
        ))
        .field("bucket_name")
        .with("loader_id", json!(id)));
    }
    Ok(())
}

async fn s3_start_loader(
    State(s): State<AppState>,
    Authenticated(c): Authenticated,
    f: Fields,
) -> Reply {
    let caller = c.sub;
    if let Some(id) = f.str("loader_id")? {
        // A restart keeps the loader's buckets and layout.
        let start = Start {
            id: None,
            kind: Kind::S3,
            target: Target::default(),
            creds: Creds::default(),
            spec: None,
            restart: Some(id),
        };
        return begin(&s, start, &caller).await;
    }
    f.require(&S3_REQUIRED)?;
    let num_buckets = u32_field(&f, "num_buckets")?.unwrap_or_default();
    let layout = s3_layout(&f, num_buckets)?;
    let spec = s3_spec(&f, layout, true)?;
    let r = s3_req(&s, &f).await?;
    let id = new_id();
    let buckets = s3target::bucket_names(num_buckets);
    for b in &buckets {
        s3_call(r.s3.create_bucket(b, &id)).await?;
    }
    let mut target = r.target;
    target.buckets = buckets;
    let start = Start {
        id: Some(id),
        kind: Kind::S3,
        target,
        creds: r.creds,
        spec: Some(spec),
        restart: None,
    };
    begin(&s, start, &caller).await
}

/// Brings one bucket back to a layout: a loader without CRUD that re-creates missing files, removes
/// every other object, and ends `completed`.
async fn s3_restore(
    State(s): State<AppState>,
    Authenticated(c): Authenticated,
    f: Fields,
) -> Reply {
    let caller = c.sub;
    let mut required = vec!["bucket_name"];
    required.extend(&S3_REQUIRED[1..]);
    f.require(&required)?;
    let bucket = f.str("bucket_name")?.unwrap_or_default();
    s3target::check_bucket_name(&bucket).map_err(|m| ApiError::invalid("bucket_name", m))?;
    let layout = s3_layout(&f, 1)?;
    let spec = s3_spec(&f, layout, false)?;
    let r = s3_req(&s, &f).await?;
    if s3_call(r.s3.exists(&bucket)).await? {
        let owner = s3_call(r.s3.owner(&bucket)).await?;
        s3_busy(&s, owner.as_deref(), &bucket).await?;
    }
    let mut target = r.target;
    target.buckets = vec![bucket];
    let start = Start {
        id: None,
        kind: Kind::S3,
        target,
        creds: r.creds,
        spec: Some(spec),
        restart: None,
    };
    begin(&s, start, &caller).await
}

/// Empties a bucket, then deletes it. Only buckets a loader created (its owner tag names a loader of
/// this deployment), unless `force` is true; never while that loader runs.
async fn s3_delete_bucket(
    State(s): State<AppState>,
    Authenticated(c): Authenticated,
    f: Fields,
) -> Reply {
    f.require(&["bucket_name"])?;
    let bucket = f.str("bucket_name")?.unwrap_or_default();
    s3target::check_bucket_name(&bucket).map_err(|m| ApiError::invalid("bucket_name", m))?;
    let force = f.bool("force")?.unwrap_or(false);
    let r = s3_req(&s, &f).await?;
    if !s3_call(r.s3.exists(&bucket)).await? {
        return Err(
            ApiError::not_found(format!("bucket {bucket} does not exist")).field("bucket_name"),
        );
    }
    let owner = s3_call(r.s3.owner(&bucket)).await?;
    let known = match &owner {
        Some(id) => s.store.get::<Loader>(&Key::loader(id)).await?.is_some(),
        None => false,
    };
    if !known && !force {
        return Err(ApiError::forbidden(format!(
            "bucket {bucket} was not created by a ferry loader: send \"force\": true to delete it anyway"
        ))
        .field("bucket_name"));
    }
    s3_busy(&s, owner.as_deref(), &bucket).await?;
    let deleted = s3_call(r.s3.empty_and_delete(&bucket)).await?;
    tracing::info!(bucket, deleted, force, caller = %c.sub, "bucket deleted");
    Ok((
        StatusCode::OK,
        Json(json!({"response": "SUCCESS", "bucket": bucket, "deleted_objects": deleted})),
    ))
}
