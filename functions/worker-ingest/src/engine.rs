//! The ingest engine: one message = one file (an S3 notification record, a request from the API, or
//! the continuation of a load that ran out of its time slice).
//!
//! The object is streamed line by line from its checkpoint (a ranged GET pinned to the ETag the load
//! started with), parsed, and written in batches; each batch commits with the load's checkpoint in SQL
//! (see `ferry_shared::events_sql`). After its time slice an invocation sends a `continue` message and
//! returns; a killed invocation's message is redelivered and resumes the unfinished load of the same
//! object version from SQL's checkpoint. The DynamoDB item mirrors the checkpoint for `GET /events/files`.

use aws_sdk_s3::Client as S3;
use ferry_shared::domain::events::{
    self, Checkpoint, IngestFile, MAX_FILENAME, MAX_LINE, Reject, Rejections,
};
use ferry_shared::domain::{Conflict, now_rfc3339};
use ferry_shared::events_sql::{Committed, EventsDb, Load, NumberedEvent, Progress};
use ferry_shared::keys::{IndexKey, Key};
use ferry_shared::messages::{IngestMessage, IngestRequest};
use ferry_shared::queue::Queue;
use ferry_shared::store::{Meta, Store, StoreError};
use ferry_shared::worker::{RecordInfo, WorkError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

pub struct Engine {
    pub store: Store,
    pub s3: S3,
    pub db: EventsDb,
    /// The ingest queue, for continuation messages.
    pub queue: Queue,
    /// How long one invocation works before handing the rest to a continuation message.
    pub slice: Duration,
    /// Rows per committed batch.
    pub batch_rows: usize,
}

/// How an invocation's work on a load ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The whole object is loaded and queries see it.
    Finished,
    /// The slice ran out; a continuation message was sent.
    Continued,
    /// Nothing to do: a newer load or another invocation owns the file, or the object changed.
    Superseded,
}

fn retry(e: impl Into<anyhow::Error>) -> WorkError {
    WorkError::retryable(e)
}

fn sql_now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

fn file_meta(f: &IngestFile) -> Meta {
    IndexKey::ingest_file(&f.updated_at, &f.filename).into()
}

/// S3 notifications carry keys URL-encoded with `+` for spaces.
pub fn decode_s3_key(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Reads the next line into `buf` without its `\n`, keeping at most [`MAX_LINE`] bytes of it (a longer
/// line is consumed but not held). Returns the bytes consumed (0 at the end) and whether it was cut.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<(u64, bool)> {
    buf.clear();
    let mut consumed = 0u64;
    let mut too_long = false;
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok((consumed, too_long));
        }
        let (take, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        let content = &avail[..if done { take - 1 } else { take }];
        if buf.len() + content.len() > MAX_LINE {
            too_long = true;
        } else {
            buf.extend_from_slice(content);
        }
        r.consume(take);
        consumed += take as u64;
        if done {
            return Ok((consumed, too_long));
        }
    }
}

impl Engine {
    pub async fn handle(&self, message: IngestMessage, info: RecordInfo) -> Result<(), WorkError> {
        match message {
            IngestMessage::S3Test(t) => {
                tracing::info!(bucket = %t.bucket, event = %t.event, "s3 test event acknowledged");
                Ok(())
            }
            IngestMessage::S3(n) => {
                for r in n.records {
                    if !r.event_name.starts_with("ObjectCreated") {
                        tracing::info!(event = %r.event_name, "not an object creation; ignored");
                        continue;
                    }
                    let Some(key) = decode_s3_key(&r.s3.object.key) else {
                        return Err(WorkError::permanent(anyhow::anyhow!(
                            "undecodable object key {:?}",
                            r.s3.object.key
                        )));
                    };
                    self.ingest(&r.s3.bucket.name, &key, None, &info).await?;
                }
                Ok(())
            }
            IngestMessage::Request(IngestRequest::Ingest { bucket, key }) => {
                self.ingest(&bucket, &key, None, &info).await.map(|_| ())
            }
            IngestMessage::Request(IngestRequest::Continue {
                bucket,
                key,
                load_id,
                etag,
            }) => self
                .ingest(&bucket, &key, Some((load_id, etag)), &info)
                .await
                .map(|_| ()),
        }
    }

    /// Loads (or goes on loading) `key`; `continuation` names the load a continuation message is for.
    pub async fn ingest(
        &self,
        bucket: &str,
        key: &str,
        continuation: Option<(u64, String)>,
        info: &RecordInfo,
    ) -> Result<Outcome, WorkError> {
        let started = Instant::now();
        if key.len() > MAX_FILENAME {
            let msg = format!("object keys longer than {MAX_FILENAME} bytes are not supported");
            self.record_failure(bucket, key, &msg).await?;
            return Err(WorkError::permanent(anyhow::anyhow!(msg)));
        }
        let head = match self.s3.head_object().bucket(bucket).key(key).send().await {
            Ok(h) => h,
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let detail = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
                if matches!(status, Some(403 | 404)) {
                    let msg = format!("s3://{bucket}/{key} cannot be read (HTTP {status:?})");
                    self.record_failure(bucket, key, &msg).await?;
                    return Err(WorkError::permanent(anyhow::anyhow!(msg)));
                }
                return Err(retry(anyhow::anyhow!(
                    "HeadObject s3://{bucket}/{key}: {detail}"
                )));
            }
        };
        let etag = head.e_tag.clone().unwrap_or_default();
        let size = head.content_length.unwrap_or(0).max(0) as u64;

        let load = match continuation {
            Some((load_id, wanted_etag)) => {
                let Some(load) = self.db.load(load_id).await.map_err(retry)? else {
                    tracing::info!(load_id, "continuation of a load that no longer exists");
                    return Ok(Outcome::Superseded);
                };
                if load.state == "done" {
                    // Finished, but the status update was lost: repeat it.
                    self.finish_status(&load, &load.rejections).await?;
                    return Ok(Outcome::Finished);
                }
                if !load.is_loading() || wanted_etag != etag || load.etag != etag {
                    tracing::info!(load_id, state = %load.state, "load superseded or object replaced; continuation dropped");
                    return Ok(Outcome::Superseded);
                }
                load
            }
            None => match self.db.unfinished_load(key, &etag).await.map_err(retry)? {
                Some(load) => {
                    tracing::info!(
                        load_id = load.load_id,
                        offset = load.byte_offset,
                        delivery = info.receive_count,
                        "resuming an unfinished load from its checkpoint"
                    );
                    load
                }
                None => self
                    .db
                    .start_load(key, &etag, sql_now())
                    .await
                    .map_err(retry)?,
            },
        };
        tracing::info!(%bucket, %key, load_id = load.load_id, offset = load.byte_offset, size, "loading");

        self.ensure_item(bucket, key).await?;
        let cp = checkpoint(&load);
        let begun = self
            .update(key, |f: IngestFile| {
                f.begin(cp.clone(), &load.rejections, &etag, size, &now_rfc3339())
            })
            .await?;
        if !begun {
            return Ok(Outcome::Superseded);
        }

        match self.stream(bucket, key, &load, size, started).await? {
            Some(done) => {
                let outcome = if done.finished {
                    let gc = self.db.collect_garbage(key).await.map_err(retry)?;
                    tracing::info!(
                        load_id = load.load_id,
                        rows = done.progress.accepted,
                        rejected = done.progress.rejections.total(),
                        old_rows_deleted = gc,
                        "load finished and swapped in"
                    );
                    let mut finished = load.clone();
                    finished.line_no = done.progress.line_no;
                    finished.byte_offset = done.progress.byte_offset;
                    finished.accepted = done.progress.accepted;
                    self.finish_status(&finished, &done.progress.rejections)
                        .await?;
                    Outcome::Finished
                } else {
                    let next = IngestRequest::Continue {
                        bucket: bucket.to_string(),
                        key: key.to_string(),
                        load_id: load.load_id,
                        etag: etag.clone(),
                    };
                    // If this send fails the message is redelivered and resumes from the checkpoint.
                    self.queue.send(&next).await.map_err(retry)?;
                    tracing::info!(
                        load_id = load.load_id,
                        offset = done.progress.byte_offset,
                        "time slice used; continuation sent"
                    );
                    Outcome::Continued
                };
                Ok(outcome)
            }
            None => Ok(Outcome::Superseded),
        }
    }

    /// Streams from the load's checkpoint; `None` when another invocation or a newer load took over.
    async fn stream(
        &self,
        bucket: &str,
        key: &str,
        load: &Load,
        size: u64,
        started: Instant,
    ) -> Result<Option<Streamed>, WorkError> {
        let mut progress = Progress {
            byte_offset: load.byte_offset,
            line_no: load.line_no,
            accepted: load.accepted,
            rejections: load.rejections.clone(),
        };
        let mut committed_offset = load.byte_offset;
        let mut batch: Vec<NumberedEvent> = Vec::with_capacity(self.batch_rows);
        let mut last_status = Instant::now();
        // The batch being committed in the background, and the checkpoint it writes.
        let mut inflight: Option<(InFlight, Progress)> = None;
        let mut last_committed = progress.clone();

        if load.byte_offset < size {
            let mut req = self
                .s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .if_match(&load.etag);
            if load.byte_offset > 0 {
                req = req.range(format!("bytes={}-", load.byte_offset));
            }
            let obj = match req.send().await {
                Ok(o) => o,
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
                    tracing::info!(load_id = load.load_id, "object replaced during the load");
                    return Ok(None);
                }
                Err(e) => {
                    return Err(retry(anyhow::anyhow!(
                        "GetObject s3://{bucket}/{key}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(e)
                    )));
                }
            };
            let mut reader = BufReader::with_capacity(256 * 1024, obj.body.into_async_read());
            let mut line = Vec::with_capacity(256);
            loop {
                let (n, too_long) = read_line(&mut reader, &mut line)
                    .await
                    .map_err(|e| retry(anyhow::anyhow!("reading s3://{bucket}/{key}: {e}")))?;
                if n == 0 {
                    break;
                }
                progress.byte_offset += n;
                progress.line_no += 1;
                let text = if progress.line_no == 1 {
                    events::strip_bom(&line)
                } else {
                    &line
                };
                match (too_long, events::parse_line(text)) {
                    (true, _) => progress
                        .rejections
                        .record(progress.line_no, Reject::LineTooLong),
                    (false, Ok(e)) => batch.push((progress.line_no, e)),
                    (false, Err(r)) => progress.rejections.record(progress.line_no, r),
                }
                if batch.len() >= self.batch_rows {
                    progress.accepted += batch.len() as u64;
                    // The batch commits in the background while the next one is parsed; commits stay
                    // in order (each waits for the previous) and each is guarded by its start offset.
                    if let Some(prev) = inflight.take() {
                        let p = prev.1.clone();
                        if !self.settle(prev).await? {
                            return Ok(None);
                        }
                        last_committed = p;
                    }
                    let rows = std::mem::replace(&mut batch, Vec::with_capacity(self.batch_rows));
                    let (db, l, from, to) = (
                        self.db.clone(),
                        load.clone(),
                        committed_offset,
                        progress.clone(),
                    );
                    inflight = Some((
                        tokio::spawn(async move {
                            db.commit_batch(&l, from, &to, &rows, false, sql_now())
                                .await
                        }),
                        progress.clone(),
                    ));
                    committed_offset = progress.byte_offset;
                    if last_status.elapsed() >= Duration::from_secs(1) {
                        last_status = Instant::now();
                        self.progress_status(key, load.load_id, &last_committed)
                            .await?;
                    }
                    if started.elapsed() >= self.slice && progress.byte_offset < size {
                        if let Some(prev) = inflight.take() {
                            let p = prev.1.clone();
                            if !self.settle(prev).await? {
                                return Ok(None);
                            }
                            last_committed = p;
                        }
                        self.progress_status(key, load.load_id, &last_committed)
                            .await?;
                        return Ok(Some(Streamed {
                            progress: last_committed,
                            finished: false,
                        }));
                    }
                }
                if let Some((h, p)) = &inflight
                    && h.is_finished()
                {
                    let p = p.clone();
                    if let Some(prev) = inflight.take()
                        && !self.settle(prev).await?
                    {
                        return Ok(None);
                    }
                    last_committed = p;
                }
            }
            if let Some(prev) = inflight.take()
                && !self.settle(prev).await?
            {
                return Ok(None);
            }
            if progress.byte_offset != size {
                return Err(retry(anyhow::anyhow!(
                    "s3://{bucket}/{key}: read {} bytes of {size}",
                    progress.byte_offset
                )));
            }
        }
        progress.accepted += batch.len() as u64;
        if !self
            .commit(load, committed_offset, &progress, &batch, true)
            .await?
        {
            return Ok(None);
        }
        Ok(Some(Streamed {
            progress,
            finished: true,
        }))
    }

    async fn commit(
        &self,
        load: &Load,
        from_offset: u64,
        to: &Progress,
        rows: &[NumberedEvent],
        finish: bool,
    ) -> Result<bool, WorkError> {
        match self
            .db
            .commit_batch(load, from_offset, to, rows, finish, sql_now())
            .await
            .map_err(retry)?
        {
            Committed::Yes => Ok(true),
            Committed::LostRace => {
                tracing::info!(
                    load_id = load.load_id,
                    offset = from_offset,
                    "another invocation or a newer load owns this load; stopping"
                );
                Ok(false)
            }
        }
    }

    /// Waits for a background commit; `false` when it lost the race (nothing written).
    async fn settle(&self, (handle, to): (InFlight, Progress)) -> Result<bool, WorkError> {
        let committed = handle
            .await
            .map_err(|e| retry(anyhow::anyhow!("batch commit task failed: {e}")))?
            .map_err(retry)?;
        if committed == Committed::LostRace {
            tracing::info!(
                offset = to.byte_offset,
                "another invocation or a newer load owns this load; stopping"
            );
            return Ok(false);
        }
        Ok(true)
    }

    async fn progress_status(
        &self,
        key: &str,
        load_id: u64,
        p: &Progress,
    ) -> Result<bool, WorkError> {
        let cp = Checkpoint {
            load_id,
            byte_offset: p.byte_offset,
            lines: p.line_no,
            rows_loaded: p.accepted,
        };
        self.update(key, |f: IngestFile| {
            f.progress(cp.clone(), &p.rejections, &now_rfc3339())
        })
        .await
    }

    async fn finish_status(&self, load: &Load, rejections: &Rejections) -> Result<(), WorkError> {
        let cp = checkpoint(load);
        let duration_ms = (sql_now() - load.started_at).num_milliseconds().max(0) as u64;
        self.update(&load.filename, |f: IngestFile| {
            f.finish(cp.clone(), rejections, duration_ms, &now_rfc3339())
        })
        .await
        .map(|_| ())
    }

    async fn ensure_item(&self, bucket: &str, key: &str) -> Result<(), WorkError> {
        let item = IngestFile::queued(bucket, key, &now_rfc3339());
        match self
            .store
            .create(&Key::ingest_file(key), &file_meta(&item), &item)
            .await
        {
            Ok(()) | Err(StoreError::Exists) => Ok(()),
            Err(e) => Err(retry(e)),
        }
    }

    /// Applies `f` to the file's status item; `false` when the transition refused (a newer load).
    async fn update<F>(&self, key: &str, f: F) -> Result<bool, WorkError>
    where
        F: Fn(IngestFile) -> Result<IngestFile, Conflict>,
    {
        match self
            .store
            .transition(&Key::ingest_file(key), file_meta, f)
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(c)) => {
                tracing::info!(%key, reason = %c, "status not updated");
                Ok(false)
            }
            Err(e) => Err(retry(e)),
        }
    }

    async fn record_failure(&self, bucket: &str, key: &str, msg: &str) -> Result<(), WorkError> {
        self.ensure_item(bucket, key).await?;
        let msg = msg.to_string();
        self.update(key, |f: IngestFile| f.fail(msg.clone(), &now_rfc3339()))
            .await
            .map(|_| ())
    }
}

type InFlight = tokio::task::JoinHandle<Result<Committed, ferry_shared::events_sql::SqlError>>;

struct Streamed {
    progress: Progress,
    finished: bool,
}

fn checkpoint(load: &Load) -> Checkpoint {
    Checkpoint {
        load_id: load.load_id,
        byte_offset: load.byte_offset,
        lines: load.line_no,
        rows_loaded: load.accepted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_keys_are_url_decoded() {
        assert_eq!(
            decode_s3_key("events%2Fsample+0.txt").as_deref(),
            Some("events/sample 0.txt")
        );
        assert_eq!(decode_s3_key("a%2").as_deref(), None);
        assert_eq!(decode_s3_key("caf%C3%A9").as_deref(), Some("café"));
    }

    #[tokio::test]
    async fn lines_are_split_without_holding_overlong_ones() {
        let long = "x".repeat(MAX_LINE + 10);
        let text = format!("a b c\n{long}\nlast");
        let mut r = BufReader::with_capacity(16, text.as_bytes());
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf).await.unwrap(), (6, false));
        assert_eq!(buf, b"a b c");
        let (n, cut) = read_line(&mut r, &mut buf).await.unwrap();
        assert_eq!((n, cut), (long.len() as u64 + 1, true));
        assert!(buf.len() <= MAX_LINE);
        assert_eq!(read_line(&mut r, &mut buf).await.unwrap(), (4, false));
        assert_eq!(buf, b"last");
        assert_eq!(read_line(&mut r, &mut buf).await.unwrap(), (0, false));
    }
}
