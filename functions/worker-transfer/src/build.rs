//! Builds a task's zip download: streams each selected file from the data bucket into a ZIP stream
//! ([`crate::zipw`]) uploaded to the data bucket in 8 MiB multipart parts, one bounded slice per
//! invocation.
//!
//! - A slice holds the task's download lease; a delivery that finds the lease held puts itself back
//!   until it ends, so two slices never write one archive.
//! - Between files the task is read again: paused, the slice saves a checkpoint and stops (the
//!   resume sends the build again); aborted or expired, it removes everything it wrote. At the end of
//!   its time budget, between files or inside one, it saves a checkpoint and sends its own
//!   continuation; a file stopped part-way goes on from its byte and CRC-32 in the next slice.
//! - A checkpoint is the archive's state as data: the files done, the ZIP entries, the multipart
//!   upload and its parts, and the bytes not yet uploaded (a tail object under a name of its own, so
//!   an old checkpoint never points at a newer tail). A slice that dies after a checkpoint is redone
//!   from it, and re-uploads the same part numbers with the same bytes: the zip holds every file once.
//!   Before the upload is completed the checkpoint records that every part is up, so a slice that
//!   dies between the completion and marking the download ready is followed by one that only
//!   completes (S3 has forgotten the upload by then; the zip of the recorded size is there).

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use aws_sdk_s3::primitives::ByteStream;
use ferry_shared::domain::Conflict;
use ferry_shared::domain::now_rfc3339;
use ferry_shared::domain::transfer::{
    self, DownloadStatus, Selected, Task, TaskStatus, download_prefix, selection_key, task_meta,
    zip_key,
};
use ferry_shared::keys::Key;
use ferry_shared::messages::TransferMessage;
use ferry_shared::queue::Queue;
use ferry_shared::store::{Store, StoreError};
use ferry_shared::worker::WorkError;
use serde::{Deserialize, Serialize};

use crate::zipw::{self, Entry};

/// Bytes per multipart part (S3 wants at least 5 MiB for all but the last).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// How often a slice writes its progress to the task.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

pub struct Ctx {
    pub store: Store,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub queue: Queue,
    /// How long one slice works before it checkpoints and sends its continuation.
    pub slice: Duration,
    /// How long a slice holds the build: the function's timeout, after which its holder is surely
    /// gone (a slice checks its time only between files, so one big file can run past `slice`).
    pub lease: Duration,
}

/// The archive's state between slices.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// Index in the selection of the next file to write.
    next: usize,
    /// Bytes of the archive so far (uploaded parts and the tail).
    offset: u64,
    entries: Vec<Entry>,
    upload_id: Option<String>,
    /// (part number, ETag) of the uploaded parts.
    parts: Vec<(i32, String)>,
    /// The object holding the bytes not yet uploaded, if any.
    tail_key: Option<String>,
    files_done: u64,
    bytes_done: u64,
    missing: u64,
    /// Set once every part is up: the zip's size, waiting only for the upload's completion.
    #[serde(default)]
    completing: Option<u64>,
    /// The file a slice's time ran out in, and where it stands.
    #[serde(default)]
    partial: Option<Partial>,
}

impl Checkpoint {
    /// The build's progress onto the task's download.
    fn report(&self, d: &mut transfer::Download) {
        d.files_done = self.files_done;
        d.bytes_done = self.bytes_done;
        d.files_missing = self.missing;
    }
}

/// A file written part-way: the next slice reads the rest (`Range`, `If-Match` its ETag) and goes on
/// with the CRC-32 from here.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Partial {
    size: u64,
    written: u64,
    crc: u32,
    /// Offset of its local header.
    offset: u64,
    etag: String,
    dos_time: u16,
    dos_date: u16,
}

fn checkpoint_key(owner: &str, task_id: &str) -> String {
    format!("{}/checkpoint.json", download_prefix(owner, task_id))
}

fn retry(e: impl Into<anyhow::Error>) -> WorkError {
    WorkError::retryable(e)
}

fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The archive being written: bytes wait in `buf` until a whole part can go.
struct Sink<'a> {
    ctx: &'a Ctx,
    key: String,
    cp: Checkpoint,
    buf: Vec<u8>,
}

impl Sink<'_> {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), WorkError> {
        self.buf.extend_from_slice(bytes);
        self.cp.offset += bytes.len() as u64;
        while self.buf.len() >= PART_SIZE {
            let rest = self.buf.split_off(PART_SIZE);
            let part = std::mem::replace(&mut self.buf, rest);
            self.upload_part(part).await?;
        }
        Ok(())
    }

    async fn upload_part(&mut self, part: Vec<u8>) -> Result<(), WorkError> {
        let s3 = &self.ctx.s3;
        let upload_id = match &self.cp.upload_id {
            Some(id) => id.clone(),
            None => {
                let out = s3
                    .create_multipart_upload()
                    .bucket(&self.ctx.bucket)
                    .key(&self.key)
                    .tagging(transfer::DOWNLOAD_TAGGING)
                    .content_type("application/zip")
                    .send()
                    .await
                    .map_err(|e| retry(anyhow!("starting the zip upload: {e:?}")))?;
                let id = out
                    .upload_id()
                    .context("no upload id")
                    .map_err(retry)?
                    .to_string();
                self.cp.upload_id = Some(id.clone());
                id
            }
        };
        let number = self.cp.parts.len() as i32 + 1;
        let out = s3
            .upload_part()
            .bucket(&self.ctx.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(|e| retry(anyhow!("uploading zip part {number}: {e:?}")))?;
        self.cp
            .parts
            .push((number, out.e_tag().unwrap_or_default().to_string()));
        Ok(())
    }
}

enum Stop {
    Finished,
    Paused,
    Gone,
    OutOfTime,
}

/// One delivery of `BuildZip`.
pub async fn handle(ctx: &Ctx, task_id: &str) -> Result<(), WorkError> {
    let Some(task) = ctx
        .store
        .get::<Task>(&Key::task(task_id))
        .await
        .map_err(retry)?
        .map(|v| v.value)
    else {
        return Ok(());
    };
    let Some(download) = task.download.clone() else {
        return Ok(());
    };
    if download.status != DownloadStatus::Building {
        return Ok(());
    }
    let owner = task.owner.clone();
    if !task.live(chrono::Utc::now().timestamp()) {
        clean_up(ctx, &owner, task_id, None).await;
        return Ok(());
    }
    if task.status == TaskStatus::Paused {
        return Ok(());
    }
    // Claim the lease.
    let lease_ms = ctx.lease.as_millis() as i64;
    let claimed = ctx
        .store
        .transition(&Key::task(task_id), task_meta, |mut t: Task| {
            let d = t
                .download
                .as_mut()
                .ok_or_else(|| Conflict("no download".into()))?;
            if d.status != DownloadStatus::Building {
                return Err(Conflict("not building".into()));
            }
            if let Some(until) = d.lease_until_ms
                && until > unix_ms()
            {
                return Err(Conflict(format!("held:{until}")));
            }
            d.lease_until_ms = Some(unix_ms() + lease_ms);
            d.error = None;
            Ok(t)
        })
        .await;
    match claimed {
        Ok(_) => {}
        Err(StoreError::Conflict(Conflict(why))) => {
            if let Some(until) = why
                .strip_prefix("held:")
                .and_then(|u| u.parse::<i64>().ok())
            {
                // Another slice works on it: come back when its lease has ended.
                let secs = ((until - unix_ms()) / 1000 + 1).clamp(1, 900) as i32;
                ctx.queue
                    .send_delayed(
                        &TransferMessage::BuildZip {
                            task_id: task_id.to_string(),
                        },
                        secs,
                    )
                    .await
                    .map_err(retry)?;
            }
            return Ok(());
        }
        Err(e) => return Err(retry(e)),
    }
    let result = slice(ctx, &owner, task_id).await;
    match &result {
        Err(WorkError::Permanent(e)) => {
            let why = format!("{e:#}");
            let _ = set_download(ctx, task_id, |d| {
                d.status = DownloadStatus::Failed;
                d.lease_until_ms = None;
                d.error = Some(why.clone());
            })
            .await;
        }
        Err(e) => {
            // Give the lease back, so the redelivery need not wait for it.
            let why = format!("{e}");
            let _ = set_download(ctx, task_id, |d| {
                d.lease_until_ms = None;
                d.error = Some(why.clone());
            })
            .await;
        }
        Ok(()) => {}
    }
    result
}

async fn set_download(
    ctx: &Ctx,
    task_id: &str,
    f: impl Fn(&mut transfer::Download),
) -> Result<(), StoreError> {
    ctx.store
        .transition(&Key::task(task_id), task_meta, |mut t: Task| {
            if let Some(d) = t.download.as_mut() {
                f(d);
            }
            Ok(t)
        })
        .await
        .map(|_| ())
}

async fn get_json<T: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    key: &str,
) -> Result<Option<T>, WorkError> {
    match ctx
        .s3
        .get_object()
        .bucket(&ctx.bucket)
        .key(key)
        .send()
        .await
    {
        Ok(out) => {
            let bytes = out.body.collect().await.map_err(retry)?.into_bytes();
            Ok(Some(serde_json::from_slice(&bytes).map_err(retry)?))
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
        Err(e) => Err(retry(anyhow!("reading {key}: {e:?}"))),
    }
}

async fn slice(ctx: &Ctx, owner: &str, task_id: &str) -> Result<(), WorkError> {
    let started = Instant::now();
    let files: Vec<Selected> = get_json(ctx, &selection_key(owner, task_id))
        .await?
        .ok_or_else(|| {
            WorkError::permanent(anyhow!("the selection of download {task_id} is gone"))
        })?;
    let cp: Checkpoint = get_json(ctx, &checkpoint_key(owner, task_id))
        .await?
        .unwrap_or_default();
    if let Some(size) = cp.completing {
        return complete(ctx, owner, task_id, &cp, size, None).await;
    }
    let buf = match &cp.tail_key {
        Some(k) => {
            let out = ctx
                .s3
                .get_object()
                .bucket(&ctx.bucket)
                .key(k)
                .send()
                .await
                .map_err(|e| retry(anyhow!("reading the zip's tail: {e:?}")))?;
            out.body
                .collect()
                .await
                .map_err(retry)?
                .into_bytes()
                .to_vec()
        }
        None => Vec::new(),
    };
    let old_tail = cp.tail_key.clone();
    let mut sink = Sink {
        ctx,
        key: zip_key(owner, task_id),
        cp,
        buf,
    };
    let mut last_progress = Instant::now();
    let stop = loop {
        if sink.cp.next >= files.len() {
            break Stop::Finished;
        }
        if started.elapsed() >= ctx.slice {
            break Stop::OutOfTime;
        }
        // The task again, between files: a pause or an abort takes effect here.
        let task = ctx
            .store
            .get::<Task>(&Key::task(task_id))
            .await
            .map_err(retry)?
            .map(|v| v.value);
        match task {
            Some(t) if t.live(chrono::Utc::now().timestamp()) => {
                if t.status == TaskStatus::Paused {
                    break Stop::Paused;
                }
            }
            _ => break Stop::Gone,
        }
        let file = &files[sink.cp.next];
        if !write_file(&mut sink, file, started + ctx.slice).await? {
            break Stop::OutOfTime;
        }
        sink.cp.next += 1;
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            set_download(ctx, task_id, |d| sink.cp.report(d))
                .await
                .map_err(retry)?;
        }
    };
    match stop {
        Stop::Gone => {
            clean_up(ctx, owner, task_id, Some(&sink.cp)).await;
            Ok(())
        }
        Stop::Finished => finish(ctx, owner, task_id, sink, old_tail).await,
        Stop::Paused | Stop::OutOfTime => {
            save(ctx, owner, task_id, &mut sink, old_tail).await?;
            let f = sink.cp.files_done;
            set_download(ctx, task_id, |d| {
                sink.cp.report(d);
                d.lease_until_ms = None;
            })
            .await
            .map_err(retry)?;
            if matches!(stop, Stop::OutOfTime) {
                ctx.queue
                    .send(&TransferMessage::BuildZip {
                        task_id: task_id.to_string(),
                    })
                    .await
                    .map_err(retry)?;
            } else {
                tracing::info!(task_id, files_done = f, "download paused");
            }
            Ok(())
        }
    }
}

/// One file into the archive: its local header, its bytes (CRC-32 on the way), its descriptor. A
/// file still streaming at `deadline` is left part-way ([`Partial`]): `false`, and the next slice goes
/// on from there, so no file is too big for a slice.
async fn write_file(
    sink: &mut Sink<'_>,
    file: &Selected,
    deadline: Instant,
) -> Result<bool, WorkError> {
    let ctx = sink.ctx;
    let resume = sink.cp.partial.take();
    let mut req = ctx.s3.get_object().bucket(&ctx.bucket).key(&file.s3_key);
    if let Some(p) = &resume {
        req = req.range(format!("bytes={}-", p.written)).if_match(&p.etag);
    }
    let out = match req.send().await {
        Ok(o) => o,
        Err(e) if resume.is_none() && e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
            // Deleted since the selection was made: left out, and counted.
            sink.cp.missing += 1;
            return Ok(true);
        }
        Err(e)
            if resume.is_some()
                && matches!(
                    e.raw_response().map(|r| r.status().as_u16()),
                    Some(404 | 412)
                ) =>
        {
            // Its first bytes are in the zip already: the rest of another version would not fit.
            return Err(WorkError::permanent(anyhow!(
                "{} changed or was deleted while it was being zipped",
                file.name
            )));
        }
        Err(e) => return Err(retry(anyhow!("reading {}: {e:?}", file.name))),
    };
    let p = match resume {
        Some(p) => p,
        None => {
            let size = out.content_length().unwrap_or(0).max(0) as u64;
            let (t, d) = zipw::dos_time(&file.uploaded_at);
            let offset = sink.cp.offset;
            sink.write(&zipw::local_header(&file.name, size, t, d))
                .await?;
            Partial {
                size,
                written: 0,
                crc: 0,
                offset,
                etag: out.e_tag().unwrap_or_default().to_string(),
                dos_time: t,
                dos_date: d,
            }
        }
    };
    let mut crc = crc32fast::Hasher::new_with_initial_len(p.crc, p.written);
    let mut body = out.body;
    let mut written = p.written;
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| retry(anyhow!("reading {}: {e}", file.name)))?
    {
        crc.update(&chunk);
        written += chunk.len() as u64;
        sink.write(&chunk).await?;
        if written < p.size && Instant::now() >= deadline {
            tracing::info!(file = %file.name, written, size = p.size, "slice ended mid-file");
            sink.cp.partial = Some(Partial {
                written,
                crc: crc.clone().finalize(),
                ..p
            });
            return Ok(false);
        }
    }
    if written != p.size {
        return Err(retry(anyhow!(
            "{}: read {written} of {} bytes",
            file.name,
            p.size
        )));
    }
    let crc = crc.finalize();
    sink.write(&zipw::descriptor(crc, p.size)).await?;
    sink.cp.entries.push(Entry {
        name: file.name.clone(),
        crc,
        size: p.size,
        offset: p.offset,
        dos_time: p.dos_time,
        dos_date: p.dos_date,
    });
    sink.cp.files_done += 1;
    sink.cp.bytes_done += p.size;
    Ok(true)
}

/// Saves the checkpoint: the tail under a new name first, then the state that points at it.
async fn save(
    ctx: &Ctx,
    owner: &str,
    task_id: &str,
    sink: &mut Sink<'_>,
    old_tail: Option<String>,
) -> Result<(), WorkError> {
    let prefix = download_prefix(owner, task_id);
    sink.cp.tail_key = if sink.buf.is_empty() {
        None
    } else {
        let key = format!("{prefix}/tail-{}-{}", sink.cp.next, sink.cp.offset);
        ctx.s3
            .put_object()
            .bucket(&ctx.bucket)
            .key(&key)
            .tagging(transfer::DOWNLOAD_TAGGING)
            .body(ByteStream::from(sink.buf.clone()))
            .send()
            .await
            .map_err(|e| retry(anyhow!("saving the zip's tail: {e:?}")))?;
        Some(key)
    };
    let state = serde_json::to_vec(&sink.cp).map_err(retry)?;
    ctx.s3
        .put_object()
        .bucket(&ctx.bucket)
        .key(checkpoint_key(owner, task_id))
        .tagging(transfer::DOWNLOAD_TAGGING)
        .body(ByteStream::from(state))
        .send()
        .await
        .map_err(|e| retry(anyhow!("saving the checkpoint: {e:?}")))?;
    if let Some(old) = old_tail.filter(|o| Some(o) != sink.cp.tail_key.as_ref()) {
        remove(ctx, old).await;
    }
    Ok(())
}

async fn finish(
    ctx: &Ctx,
    owner: &str,
    task_id: &str,
    mut sink: Sink<'_>,
    old_tail: Option<String>,
) -> Result<(), WorkError> {
    let cd = zipw::central_directory(&sink.cp.entries, sink.cp.offset);
    sink.write(&cd).await?;
    let size = sink.cp.offset;
    if sink.cp.upload_id.is_none() {
        // Small enough for one PUT (idempotent: a slice dying after it writes the same bytes again).
        ctx.s3
            .put_object()
            .bucket(&ctx.bucket)
            .key(&sink.key)
            .tagging(transfer::DOWNLOAD_TAGGING)
            .content_type("application/zip")
            .body(ByteStream::from(std::mem::take(&mut sink.buf)))
            .send()
            .await
            .map_err(|e| retry(anyhow!("writing the zip: {e:?}")))?;
    } else {
        if !sink.buf.is_empty() {
            let last = std::mem::take(&mut sink.buf);
            sink.upload_part(last).await?;
        }
        // Every part is up: the checkpoint says so before the upload is completed, so a slice dying
        // between the completion and the download's Ready only completes again, never appends to an
        // upload that no longer exists.
        sink.cp.completing = Some(size);
        save(ctx, owner, task_id, &mut sink, old_tail.clone()).await?;
    }
    complete(ctx, owner, task_id, &sink.cp, size, old_tail).await
}

/// Completes the multipart upload of a checkpoint whose parts are all up (again, if a slice died
/// after doing it once: S3 then no longer knows the upload, and the zip of that size is there), marks
/// the download ready and removes the build's state.
async fn complete(
    ctx: &Ctx,
    owner: &str,
    task_id: &str,
    cp: &Checkpoint,
    size: u64,
    old_tail: Option<String>,
) -> Result<(), WorkError> {
    let key = zip_key(owner, task_id);
    if let Some(upload_id) = &cp.upload_id {
        let parts: Vec<_> = cp
            .parts
            .iter()
            .map(|(n, etag)| {
                aws_sdk_s3::types::CompletedPart::builder()
                    .part_number(*n)
                    .e_tag(etag)
                    .build()
            })
            .collect();
        let done = ctx
            .s3
            .complete_multipart_upload()
            .bucket(&ctx.bucket)
            .key(&key)
            .upload_id(upload_id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = done {
            let there = ctx
                .s3
                .head_object()
                .bucket(&ctx.bucket)
                .key(&key)
                .send()
                .await
                .ok()
                .and_then(|h| h.content_length())
                == Some(size as i64);
            if !there {
                return Err(retry(anyhow!("completing the zip: {e:?}")));
            }
        }
    }
    let f = cp.files_done;
    let now = now_rfc3339();
    set_download(ctx, task_id, |d| {
        d.status = DownloadStatus::Ready;
        cp.report(d);
        d.zip_size = Some(size);
        d.lease_until_ms = None;
        d.error = None;
        d.finished_at = Some(now.clone());
    })
    .await
    .map_err(retry)?;
    for k in [
        Some(checkpoint_key(owner, task_id)),
        Some(selection_key(owner, task_id)),
        old_tail,
        cp.tail_key.clone(),
    ]
    .into_iter()
    .flatten()
    {
        remove(ctx, k).await;
    }
    tracing::info!(task_id, files = f, bytes = size, "zip ready");
    Ok(())
}

/// Deletes `key`, best effort: whatever stays behind expires with the bucket's lifecycle rule.
async fn remove(ctx: &Ctx, key: impl Into<String>) {
    let _ = ctx
        .s3
        .delete_object()
        .bucket(&ctx.bucket)
        .key(key)
        .send()
        .await;
}

/// An aborted or expired task's download: the multipart upload, the tail, the checkpoint, the
/// selection and any finished zip go.
async fn clean_up(ctx: &Ctx, owner: &str, task_id: &str, cp: Option<&Checkpoint>) {
    let saved: Option<Checkpoint> = match cp {
        Some(c) => Some(c.clone()),
        None => get_json(ctx, &checkpoint_key(owner, task_id))
            .await
            .ok()
            .flatten(),
    };
    if let Some(c) = &saved {
        if let Some(id) = &c.upload_id {
            let _ = ctx
                .s3
                .abort_multipart_upload()
                .bucket(&ctx.bucket)
                .key(zip_key(owner, task_id))
                .upload_id(id)
                .send()
                .await;
        }
        if let Some(t) = &c.tail_key {
            remove(ctx, t).await;
        }
    }
    for k in [
        checkpoint_key(owner, task_id),
        selection_key(owner, task_id),
        zip_key(owner, task_id),
    ] {
        remove(ctx, k).await;
    }
    tracing::info!(task_id, "download removed: its task is gone");
}
