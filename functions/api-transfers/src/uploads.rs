//! Uploads in parts, for files past Lambda's 6 MB payload: the bytes go straight to the data bucket
//! through presigned part URLs, and the task's pause, resume and abort act on the upload.
//!
//! - `POST /upload_file/{task_id}/multipart` `{filename, size, part_size?, content_type?}`: starts
//!   it (201 with the part count and size).
//! - `GET /upload_file/{task_id}/parts`: the parts S3 holds, the ones missing, and presigned PUT URLs
//!   (10 minutes) for up to 100 of the missing ones. Only while the task runs: paused, 409; a resumed
//!   upload asks again and sends only what is missing, so no byte is sent twice.
//! - `POST /upload_file/{task_id}/complete`: once every part is there with its exact length, the file
//!   is assembled and listed (201, as a one-request upload). Missing or short parts: 409 naming them.
//! - `POST /abort_task/{task_id}` aborts the S3 upload: its parts are deleted.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferry_shared::domain::transfer::{self, MultipartUpload, StoredFile, Task, task_meta};
use ferry_shared::domain::{Conflict, now_rfc3339};
use ferry_shared::http::{ApiError, JsonBody};
use ferry_shared::keys::Key;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::files::{file_view, put_record, running};
use crate::routes::{AppState, Caller, conflict, task_error, unix_now};

/// How long a part URL is good for.
const URL_TTL: Duration = Duration::from_secs(600);
/// Part URLs handed out per request, at most.
const URLS_PER_REQUEST: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
    filename: String,
    size: u64,
    part_size: Option<u64>,
    content_type: Option<String>,
}

fn plan(m: &MultipartUpload) -> Value {
    json!({
        "filename": m.filename,
        "size": m.size,
        "part_size": m.part_size,
        "parts": m.parts(),
        "started_at": m.started_at,
    })
}

/// `POST /upload_file/{task_id}/multipart`.
pub async fn start(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(task_id): Path<String>,
    JsonBody(body): JsonBody<Start>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    transfer::check_filename(&body.filename).map_err(|rule| ApiError::invalid("filename", rule))?;
    let part_size = transfer::check_parts(body.size, body.part_size)
        .map_err(|(field, rule)| ApiError::invalid(field, rule))?;
    let task = running(&s, &caller, &task_id).await?;
    if task.uploaded.is_some() || task.download.is_some() || task.multipart.is_some() {
        return Err(conflict(
            "this task already carries a transfer: use a new task",
        ));
    }
    let content_type = body
        .content_type
        .unwrap_or_else(|| "application/octet-stream".into());
    let key = transfer::file_key(&caller, &body.filename);
    let out =
        s.s3.create_multipart_upload()
            .bucket(&*s.bucket)
            .key(&key)
            .content_type(&content_type)
            .send()
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!("starting the upload: {e:?}")))?;
    let upload_id = out.upload_id().unwrap_or_default().to_string();
    let m = MultipartUpload {
        filename: body.filename,
        size: body.size,
        part_size,
        upload_id: upload_id.clone(),
        content_type,
        started_at: now_rfc3339(),
    };
    let set = m.clone();
    let now = unix_now();
    let moved = s
        .store
        .transition(&Key::task(&task_id), task_meta, move |mut t: Task| {
            if !t.live(now) {
                return Err(Conflict(transfer::GONE.into()));
            }
            if t.status == transfer::TaskStatus::Paused {
                return Err(Conflict(transfer::PAUSED.into()));
            }
            if t.uploaded.is_some() || t.download.is_some() || t.multipart.is_some() {
                return Err(Conflict(
                    "this task already carries a transfer: use a new task".into(),
                ));
            }
            t.multipart = Some(set.clone());
            Ok(t)
        })
        .await;
    if let Err(e) = moved {
        abort_upload(&s, &key, &upload_id).await;
        return Err(task_error(&task_id, e));
    }
    tracing::info!(task_id = %task_id, size = m.size, parts = m.parts(), "upload in parts started");
    Ok((StatusCode::CREATED, Json(plan(&m))))
}

pub async fn abort_upload(s: &AppState, key: &str, upload_id: &str) {
    if let Err(e) =
        s.s3.abort_multipart_upload()
            .bucket(&*s.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
    {
        tracing::warn!(error = ?e, "aborting an upload in parts failed (the bucket's lifecycle rule removes it)");
    }
}

/// The parts S3 holds for the upload: number -> (size, ETag).
async fn parts_held(
    s: &AppState,
    key: &str,
    m: &MultipartUpload,
) -> Result<BTreeMap<u64, (u64, String)>, ApiError> {
    let mut done = BTreeMap::new();
    let mut marker: Option<String> = None;
    loop {
        let out =
            s.s3.list_parts()
                .bucket(&*s.bucket)
                .key(key)
                .upload_id(&m.upload_id)
                .set_part_number_marker(marker.clone())
                .send()
                .await
                .map_err(|e| ApiError::internal(anyhow::anyhow!("listing the parts: {e:?}")))?;
        for p in out.parts() {
            if let (Some(n), Some(size)) = (p.part_number(), p.size()) {
                let etag = p.e_tag().unwrap_or_default().to_string();
                done.insert(n as u64, (size as u64, etag));
            }
        }
        match (out.is_truncated(), out.next_part_number_marker()) {
            (Some(true), Some(next)) => marker = Some(next.to_string()),
            _ => return Ok(done),
        }
    }
}

/// The task's upload in parts, while the task runs.
async fn under_way(s: &AppState, caller: &str, task_id: &str) -> Result<MultipartUpload, ApiError> {
    let task = running(s, caller, task_id).await?;
    task.multipart.ok_or_else(|| {
        conflict("this task has no upload in parts: POST /upload_file/{task_id}/multipart first")
    })
}

/// Parts that are missing or do not have their exact length.
fn missing(m: &MultipartUpload, done: &BTreeMap<u64, (u64, String)>) -> Vec<u64> {
    (1..=m.parts())
        .filter(|n| done.get(n).map(|p| p.0) != Some(m.part_len(*n)))
        .collect()
}

/// `GET /upload_file/{task_id}/parts`.
pub async fn parts(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(task_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let m = under_way(&s, &caller, &task_id).await?;
    let key = transfer::file_key(&caller, &m.filename);
    let done = parts_held(&s, &key, &m).await?;
    let todo = missing(&m, &done);
    let cfg = aws_sdk_s3::presigning::PresigningConfig::expires_in(URL_TTL)
        .map_err(ApiError::internal)?;
    let mut urls = Vec::new();
    for n in todo.iter().take(URLS_PER_REQUEST) {
        let req =
            s.s3.upload_part()
                .bucket(&*s.bucket)
                .key(&key)
                .upload_id(&m.upload_id)
                .part_number(*n as i32)
                .presigned(cfg.clone())
                .await
                .map_err(|e| ApiError::internal(anyhow::anyhow!("presigning part {n}: {e:?}")))?;
        urls.push(
            json!({"part_number": n, "size": m.part_len(*n), "method": "PUT", "url": req.uri()}),
        );
    }
    let bytes_done: u64 = done
        .iter()
        .filter(|(n, p)| m.part_len(**n) == p.0)
        .map(|(_, p)| p.0)
        .sum();
    let mut body = plan(&m);
    body["parts_done"] = json!(
        done.keys()
            .filter(|n| !todo.contains(n))
            .collect::<Vec<_>>()
    );
    body["parts_missing"] = json!(todo);
    body["bytes_done"] = json!(bytes_done);
    body["urls"] = json!(urls);
    body["expires_in"] = json!(URL_TTL.as_secs());
    Ok(Json(body))
}

/// `POST /upload_file/{task_id}/complete`.
pub async fn complete(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(task_id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let m = under_way(&s, &caller, &task_id).await?;
    let key = transfer::file_key(&caller, &m.filename);
    let done = parts_held(&s, &key, &m).await?;
    let todo = missing(&m, &done);
    if !todo.is_empty() {
        return Err(ApiError::conflict(format!(
            "{} of {} parts are missing or not {} bytes long",
            todo.len(),
            m.parts(),
            m.part_size
        ))
        .field("parts")
        .with("parts_missing", json!(todo)));
    }
    // Only the parts the upload needs (a stray part beyond them is left out).
    let parts: Vec<_> = done
        .iter()
        .filter(|(n, _)| **n <= m.parts())
        .map(|(n, (_, etag))| {
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(*n as i32)
                .e_tag(etag)
                .build()
        })
        .collect();
    let out =
        s.s3.complete_multipart_upload()
            .bucket(&*s.bucket)
            .key(&key)
            .upload_id(&m.upload_id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!("assembling the upload: {e:?}")))?;
    let now = now_rfc3339();
    let name = m.filename.clone();
    s.store
        .transition(&Key::task(&task_id), task_meta, |t: Task| {
            t.upload(&name, &now, unix_now())
        })
        .await
        .map_err(|e| task_error(&task_id, e))?;
    let file = StoredFile {
        owner: caller.clone(),
        name: m.filename.clone(),
        size: m.size,
        etag: out
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string(),
        content_type: m.content_type.clone(),
        uploaded_at: now,
        s3_key: key,
        task_id: task_id.clone(),
    };
    put_record(&s, &file).await?;
    tracing::info!(task_id = %task_id, size = file.size, "upload in parts completed");
    Ok((
        StatusCode::CREATED,
        Json(json!({"message": "File uploaded", "file": file_view(&file)})),
    ))
}
