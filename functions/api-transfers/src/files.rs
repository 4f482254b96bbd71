//! Files of transfer tasks: upload through a task, list, and delete by filter.
//!
//! - `PUT /upload_file/{task_id}`: the file as a `multipart/form-data` part named `file` (the
//!   original's form) or as the raw body with `?filename=`. Only a running task takes it (paused:
//!   409 "task is paused"; aborted, expired or someone else's: 404); a task carries one upload. The
//!   name must be one path segment ([`transfer::check_filename`]); the bytes go to the data bucket
//!   under the account's own prefix. An upload whose task is aborted meanwhile is removed again.
//!   API Gateway's payload limit bounds one upload (6 MB through Lambda: 413 above it).
//! - `GET /files?filename=&from_date=&to_date=`: the caller's files, by name.
//! - `DELETE /delete_file/{task_id}?filename=&from_date=&to_date=`: deletes the caller's files that
//!   match, through a running task, checking the task between batches (abort stops it there).
//! - `GET /download_file/{task_id}?filename=&from_date=&to_date=`: a zip of the files that match,
//!   built by worker-transfer (pause, resume and abort act on the build between files); see
//!   [`download_file`].
//!
//! The filter: `filename` is a regular expression searched in the name (as the original); the dates
//! bound the upload time, inclusive (`2026-12-04` or RFC 3339; a bare `to_date` day counts whole).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use ferry_shared::domain::Conflict;
use ferry_shared::domain::now_rfc3339;
use ferry_shared::domain::transfer::{self, Download, DownloadStatus, Selected, StoredFile, Task};
use ferry_shared::http::{ApiError, QueryParams};
use ferry_shared::keys::{Children, Key};
use ferry_shared::messages::TransferMessage;
use ferry_shared::store::{Meta, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::routes::{AppState, Caller, conflict, load, task_error, unix_now};
use ferry_shared::domain::transfer::task_meta;

/// Files listed or deleted by one request, at most.
const MAX_FILES: usize = 10_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    filename: Option<String>,
}

/// A running task of the caller's, else 404 (gone) or 409 (paused).
pub(crate) async fn running(s: &AppState, caller: &str, task_id: &str) -> Result<Task, ApiError> {
    let task = load(&s.store, caller, task_id).await?;
    if task.status == transfer::TaskStatus::Paused {
        return Err(conflict(transfer::PAUSED));
    }
    Ok(task)
}

/// The uploaded file's name and bytes: a multipart part named `file`, else the raw body.
async fn upload_body(
    headers: &HeaderMap,
    query: &UploadQuery,
    body: Bytes,
) -> Result<(String, String, Bytes), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    if let Ok(boundary) = multer::parse_boundary(&content_type) {
        let stream = futures::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
        let mut form = multer::Multipart::new(stream, boundary);
        while let Some(field) = form.next_field().await.map_err(|e| {
            ApiError::invalid(
                "file",
                format!("must be a well-formed multipart form ({e})"),
            )
        })? {
            if field.name() != Some("file") {
                continue;
            }
            let name = query
                .filename
                .clone()
                .or_else(|| field.file_name().map(str::to_string))
                .ok_or_else(|| ApiError::missing("filename"))?;
            let part_type = field
                .content_type()
                .map(|m| m.to_string())
                .unwrap_or_else(|| "application/octet-stream".into());
            let bytes = field.bytes().await.map_err(|e| {
                ApiError::invalid(
                    "file",
                    format!("must be a well-formed multipart form ({e})"),
                )
            })?;
            return Ok((name, part_type, bytes));
        }
        return Err(ApiError::missing("file"));
    }
    let name = query
        .filename
        .clone()
        .ok_or_else(|| ApiError::missing("filename"))?;
    Ok((name, content_type, body))
}

pub(crate) fn file_view(f: &StoredFile) -> Value {
    json!({
        "filename": f.name,
        "size": f.size,
        "etag": f.etag,
        "content_type": f.content_type,
        "uploaded_at": f.uploaded_at,
        "task_id": f.task_id,
    })
}

/// `PUT /upload_file/{task_id}`.
pub async fn upload_file(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(task_id): Path<String>,
    QueryParams(query): QueryParams<UploadQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let task = running(&s, &caller, &task_id).await?;
    if let Some(done) = &task.uploaded {
        return Err(conflict(&format!("this task already uploaded {done}")));
    }
    if task.multipart.is_some() {
        return Err(conflict("this task has an upload in parts under way"));
    }
    let (name, content_type, bytes) = upload_body(&headers, &query, body).await?;
    transfer::check_filename(&name).map_err(|rule| ApiError::invalid("filename", rule))?;
    let s3_key = transfer::file_key(&caller, &name);
    let put =
        s.s3.put_object()
            .bucket(&*s.bucket)
            .key(&s3_key)
            .content_type(&content_type)
            .body(bytes.clone().into())
            .send()
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!("storing the upload: {e:?}")))?;
    let etag = put
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    // The task takes the upload only if it is still running: an abort meanwhile removes the bytes.
    let now = now_rfc3339();
    let taken = s
        .store
        .transition(&Key::task(&task_id), task_meta, |t: Task| {
            t.upload(&name, &now, unix_now())
        })
        .await;
    if let Err(e) = taken {
        let _ =
            s.s3.delete_object()
                .bucket(&*s.bucket)
                .key(&s3_key)
                .send()
                .await;
        return Err(task_error(&task_id, e));
    }
    let file = StoredFile {
        owner: caller.clone(),
        name: name.clone(),
        size: bytes.len() as u64,
        etag,
        content_type,
        uploaded_at: now,
        s3_key,
        task_id: task_id.clone(),
    };
    put_record(&s, &file).await?;
    tracing::info!(task_id = %task_id, size = file.size, "file uploaded");
    Ok((
        StatusCode::CREATED,
        Json(json!({"message": "File uploaded", "file": file_view(&file)})),
    ))
}

/// Writes the file's record, replacing an earlier upload of the same name.
pub(crate) async fn put_record(s: &AppState, file: &StoredFile) -> Result<(), ApiError> {
    let key = Key::transfer_file(&file.owner, &file.name);
    match s.store.create(&key, &Meta::default(), file).await {
        Ok(()) => Ok(()),
        Err(StoreError::Exists) => {
            let f = file.clone();
            s.store
                .transition(
                    &key,
                    |_| Meta::default(),
                    move |_: StoredFile| Ok(f.clone()),
                )
                .await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FilterQuery {
    filename: Option<String>,
    from_date: Option<String>,
    to_date: Option<String>,
}

pub struct Filter {
    pattern: Option<regex::Regex>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

/// `2026-12-04` (the day's start, or with `end_of_day` its last instant) or an RFC 3339 time.
fn parse_date(field: &str, raw: &str, end_of_day: bool) -> Result<DateTime<Utc>, ApiError> {
    let raw = raw.trim();
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let t = if end_of_day {
            d.and_hms_nano_opt(23, 59, 59, 999_999_999)
        } else {
            d.and_hms_opt(0, 0, 0)
        };
        return Ok(t.expect("a valid time of day").and_utc());
    }
    DateTime::parse_from_rfc3339(raw)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| ApiError::invalid(field, "must be a date (2026-12-04) or an RFC 3339 time"))
}

impl Filter {
    pub fn from_query(q: &FilterQuery) -> Result<Filter, ApiError> {
        let pattern = match q.filename.as_deref() {
            None | Some("") => None,
            Some(p) => Some(
                regex::RegexBuilder::new(p)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|_| {
                        ApiError::invalid("filename", "must be a valid regular expression")
                    })?,
            ),
        };
        let from = q
            .from_date
            .as_deref()
            .map(|d| parse_date("from_date", d, false))
            .transpose()?;
        let to = q
            .to_date
            .as_deref()
            .map(|d| parse_date("to_date", d, true))
            .transpose()?;
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(ApiError::invalid("to_date", "must not be before from_date"));
        }
        Ok(Filter { pattern, from, to })
    }

    pub fn matches(&self, f: &StoredFile) -> bool {
        if let Some(p) = &self.pattern
            && !p.is_match(&f.name)
        {
            return false;
        }
        if self.from.is_none() && self.to.is_none() {
            return true;
        }
        let Ok(at) = DateTime::parse_from_rfc3339(&f.uploaded_at).map(|d| d.with_timezone(&Utc))
        else {
            return false;
        };
        self.from.is_none_or(|from| at >= from) && self.to.is_none_or(|to| at <= to)
    }
}

/// The caller's files that pass `filter`, by name.
async fn matching(s: &AppState, owner: &str, filter: &Filter) -> Result<Vec<StoredFile>, ApiError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = s
            .store
            .children::<StoredFile>(
                &Children::transfer_files_of(owner),
                500,
                cursor.as_deref(),
                false,
            )
            .await?;
        out.extend(page.items.into_iter().filter(|f| filter.matches(f)));
        if out.len() > MAX_FILES {
            return Err(ApiError::invalid(
                "filename",
                format!("matches more than {MAX_FILES} files: narrow the filter"),
            ));
        }
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// `GET /files`.
pub async fn list_files(
    State(s): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<FilterQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = Filter::from_query(&q)?;
    let files = matching(&s, &caller, &filter).await?;
    let total: u64 = files.iter().map(|f| f.size).sum();
    Ok(Json(json!({
        "files": files.iter().map(file_view).collect::<Vec<_>>(),
        "count": files.len(),
        "bytes": total,
    })))
}

/// `DELETE /delete_file/{task_id}`.
pub async fn delete_files(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(task_id): Path<String>,
    QueryParams(q): QueryParams<FilterQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = Filter::from_query(&q)?;
    running(&s, &caller, &task_id).await?;
    let files = matching(&s, &caller, &filter).await?;
    let mut deleted = Vec::new();
    for batch in files.chunks(100) {
        // Between batches the task is read again: a pause or an abort stops the deletion there.
        if !deleted.is_empty() {
            running(&s, &caller, &task_id)
                .await
                .map_err(|e| e.with("deleted", json!(deleted.len())))?;
        }
        let objects: Vec<_> = batch
            .iter()
            .map(|f| {
                aws_sdk_s3::types::ObjectIdentifier::builder()
                    .key(&f.s3_key)
                    .build()
                    .expect("a key is set")
            })
            .collect();
        let out =
            s.s3.delete_objects()
                .bucket(&*s.bucket)
                .delete(
                    aws_sdk_s3::types::Delete::builder()
                        .set_objects(Some(objects))
                        .quiet(true)
                        .build()
                        .expect("objects are set"),
                )
                .send()
                .await
                .map_err(|e| ApiError::internal(anyhow::anyhow!("deleting files: {e:?}")))?;
        let failed: std::collections::HashSet<&str> =
            out.errors().iter().filter_map(|e| e.key()).collect();
        for f in batch {
            if failed.contains(f.s3_key.as_str()) {
                continue;
            }
            s.store
                .delete(&Key::transfer_file(&caller, &f.name))
                .await?;
            deleted.push(f.name.clone());
        }
        if !failed.is_empty() {
            return Err(ApiError::internal(anyhow::anyhow!(
                "{} files could not be deleted",
                failed.len()
            ))
            .with("deleted", json!(deleted.len())));
        }
    }
    tracing::info!(task_id = %task_id, deleted = deleted.len(), "files deleted");
    Ok(Json(json!({
        "message": format!("{} files deleted", deleted.len()),
        "deleted": deleted,
        "count": deleted.len(),
    })))
}

// ------------------------------------------------------------------------------------ downloads

/// Answers for a download: progress while it builds, the zip when ready.
fn progress(task_id: &str, d: &Download) -> Value {
    json!({
        "task_id": task_id,
        "status": d.status,
        "files_total": d.files_total,
        "bytes_total": d.bytes_total,
        "files_done": d.files_done,
        "bytes_done": d.bytes_done,
        "files_missing": d.files_missing,
        "zip_size": d.zip_size,
        "started_at": d.started_at,
        "finished_at": d.finished_at,
    })
}

/// `GET /download_file/{task_id}?filename=&from_date=&to_date=`: the first request selects the files
/// and starts the zip (202 with progress); later ones answer progress (202), the zip (303 to a
/// presigned URL, valid 15 minutes) once ready, or the build's error (502). A task carries one
/// download: another filter on it is 409.
pub async fn download_file(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(task_id): Path<String>,
    QueryParams(q): QueryParams<FilterQuery>,
) -> Result<Response, ApiError> {
    let filter = Filter::from_query(&q)?;
    let task = load(&s.store, &caller, &task_id).await?;
    let asked = (q.filename.clone(), q.from_date.clone(), q.to_date.clone());
    let Some(d) = task.download.clone() else {
        return start_download(&s, &caller, &task, &filter, asked).await;
    };
    if (d.filename.clone(), d.from_date.clone(), d.to_date.clone()) != asked {
        return Err(conflict(
            "this task downloads another selection: use a new task",
        ));
    }
    match d.status {
        DownloadStatus::Building => {
            // A build whose slice died (its lease ran out) or failed is sent again; otherwise a
            // message for it is on its way (the start, a continuation or the resume sent one).
            let now_ms = chrono::Utc::now().timestamp_millis();
            let stale = d.lease_until_ms.is_some_and(|u| u < now_ms) || d.error.is_some();
            if stale && task.status == transfer::TaskStatus::Running {
                s.queue
                    .send(&TransferMessage::BuildZip {
                        task_id: task_id.clone(),
                    })
                    .await
                    .map_err(ApiError::internal)?;
            }
            Ok((StatusCode::ACCEPTED, Json(progress(&task_id, &d))).into_response())
        }
        DownloadStatus::Ready => {
            let url = s
                .s3
                .get_object()
                .bucket(&*s.bucket)
                .key(&d.zip_key)
                .response_content_disposition(format!(
                    "attachment; filename=\"ferry-{task_id}.zip\""
                ))
                .presigned(
                    aws_sdk_s3::presigning::PresigningConfig::expires_in(
                        std::time::Duration::from_secs(900),
                    )
                    .map_err(ApiError::internal)?,
                )
                .await
                .map_err(|e| ApiError::internal(anyhow::anyhow!("presigning the zip: {e:?}")))?;
            let mut body = progress(&task_id, &d);
            body["download_url"] = json!(url.uri());
            Ok((
                StatusCode::SEE_OTHER,
                [(header::LOCATION, url.uri().to_string())],
                Json(body),
            )
                .into_response())
        }
        DownloadStatus::Failed => Err(ApiError::bad_gateway(
            "the zip could not be built",
            anyhow::anyhow!(d.error.clone().unwrap_or_default()),
        )),
    }
}

async fn start_download(
    s: &AppState,
    caller: &str,
    task: &Task,
    filter: &Filter,
    asked: (Option<String>, Option<String>, Option<String>),
) -> Result<Response, ApiError> {
    let task_id = task.task_id.clone();
    if task.uploaded.is_some() || task.multipart.is_some() {
        return Err(conflict("this task is an upload: use a new task"));
    }
    if task.status == transfer::TaskStatus::Paused {
        return Err(conflict(transfer::PAUSED));
    }
    let files = matching(s, caller, filter).await?;
    let selection: Vec<Selected> = files
        .iter()
        .map(|f| Selected {
            name: f.name.clone(),
            s3_key: f.s3_key.clone(),
            size: f.size,
            uploaded_at: f.uploaded_at.clone(),
        })
        .collect();
    s.s3.put_object()
        .bucket(&*s.bucket)
        .key(transfer::selection_key(caller, &task_id))
        .tagging(transfer::DOWNLOAD_TAGGING)
        .body(
            serde_json::to_vec(&selection)
                .map_err(ApiError::internal)?
                .into(),
        )
        .send()
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("saving the selection: {e:?}")))?;
    let download = Download {
        status: DownloadStatus::Building,
        filename: asked.0,
        from_date: asked.1,
        to_date: asked.2,
        files_total: selection.len() as u64,
        bytes_total: selection.iter().map(|f| f.size).sum(),
        files_done: 0,
        bytes_done: 0,
        files_missing: 0,
        zip_key: transfer::zip_key(caller, &task_id),
        zip_size: None,
        error: None,
        lease_until_ms: None,
        started_at: now_rfc3339(),
        finished_at: None,
    };
    let now = unix_now();
    let set = download.clone();
    let moved = s
        .store
        .transition(&Key::task(&task_id), task_meta, move |mut t: Task| {
            if !t.live(now) {
                return Err(Conflict(transfer::GONE.into()));
            }
            if t.download.is_some() {
                return Err(Conflict("this task already downloads".into()));
            }
            if t.status == transfer::TaskStatus::Paused {
                return Err(Conflict(transfer::PAUSED.into()));
            }
            t.download = Some(set.clone());
            Ok(t)
        })
        .await;
    moved.map_err(|e| task_error(&task_id, e))?;
    s.queue
        .send(&TransferMessage::BuildZip {
            task_id: task_id.clone(),
        })
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(task_id = %task_id, files = download.files_total, "zip download started");
    Ok((StatusCode::ACCEPTED, Json(progress(&task_id, &download))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, at: &str) -> StoredFile {
        StoredFile {
            owner: "o".into(),
            name: name.into(),
            size: 1,
            etag: String::new(),
            content_type: String::new(),
            uploaded_at: at.into(),
            s3_key: String::new(),
            task_id: String::new(),
        }
    }

    fn filter(
        name: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Filter, ApiError> {
        Filter::from_query(&FilterQuery {
            filename: name.map(Into::into),
            from_date: from.map(Into::into),
            to_date: to.map(Into::into),
        })
    }

    #[test]
    fn the_filter_searches_names_and_bounds_upload_days_inclusively() {
        let a = file("report-2026.csv", "2026-12-04T10:00:00Z");
        let b = file("notes.txt", "2026-12-05T23:59:59Z");
        let all = filter(None, None, None).unwrap();
        assert!(all.matches(&a) && all.matches(&b));
        let csv = filter(Some(r"\.csv$"), None, None).unwrap();
        assert!(csv.matches(&a) && !csv.matches(&b));
        let day = filter(None, Some("2026-12-05"), Some("2026-12-05")).unwrap();
        assert!(!day.matches(&a) && day.matches(&b));
        let until = filter(None, None, Some("2026-12-04T10:00:00Z")).unwrap();
        assert!(until.matches(&a) && !until.matches(&b));
    }

    #[test]
    fn bad_filters_name_their_field() {
        let field = |r: Result<Filter, ApiError>| r.err().unwrap().body()["error"]["field"].clone();
        assert_eq!(
            field(filter(Some("(unclosed"), None, None)),
            json!("filename")
        );
        assert_eq!(
            field(filter(None, Some("yesterday"), None)),
            json!("from_date")
        );
        assert_eq!(
            field(filter(None, None, Some("2026-13-01"))),
            json!("to_date")
        );
        assert_eq!(
            field(filter(None, Some("2026-12-05"), Some("2026-12-04"))),
            json!("to_date")
        );
    }
}
