//! The sync engine, first cut: a run lists the source prefix page by page and copies each object with a
//! server-side CopyObject inside one invocation, bounded by the job's concurrency. Per-object records
//! and exact counters are kept; redelivery of a finished run is a no-op, and a redelivered running run
//! resumes by skipping objects already recorded as done. Multipart part-level checkpoints, listing
//! fan-out across messages and foreign stores are issue #5.

use aws_sdk_s3::Client as S3;
use ferry_shared::domain::sync::{
    self, Action, Job, ObjectRecord, ObjectStatus, Run, RunCounts, Trigger,
};
use ferry_shared::domain::{Conflict, new_id, now_rfc3339};
use ferry_shared::keys::Key;
use ferry_shared::messages::SyncMessage;
use ferry_shared::store::{Meta, Store, StoreError};
use ferry_shared::worker::{RecordInfo, WorkError};
use futures::StreamExt;

/// CopyObject's own limit; bigger objects need the multipart path of issue #5.
const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;

pub struct Engine {
    pub store: Store,
    pub s3: S3,
}

fn retry(e: impl Into<anyhow::Error>) -> WorkError {
    WorkError::retryable(e)
}

struct Listed {
    key: String,
    size: u64,
    etag: Option<String>,
}

impl Engine {
    pub async fn handle(&self, message: SyncMessage, info: RecordInfo) -> Result<(), WorkError> {
        match message {
            SyncMessage::StartRun {
                job_id,
                trigger,
                run_id,
            } => {
                tracing::info!(job_id = %job_id, run_id = ?run_id, ?trigger, delivery = info.receive_count, "start_run");
                self.start_run(&job_id, trigger, run_id).await
            }
        }
    }

    async fn start_run(
        &self,
        job_id: &str,
        trigger: Trigger,
        run_id: Option<String>,
    ) -> Result<(), WorkError> {
        let Some(job) = self
            .store
            .get::<Job>(&Key::job(job_id))
            .await
            .map_err(retry)?
        else {
            return Err(WorkError::permanent(anyhow::anyhow!(
                "job {job_id} does not exist"
            )));
        };
        let run_id = match run_id {
            Some(id) => id,
            None => match self.claim_for_schedule(job_id, trigger).await? {
                Some(id) => id,
                None => return Ok(()),
            },
        };
        let run_key = Key::run(job_id, &run_id);
        let Some(run) = self.store.get::<Run>(&run_key).await.map_err(retry)? else {
            return Err(WorkError::permanent(anyhow::anyhow!(
                "run {run_id} of job {job_id} does not exist"
            )));
        };
        if run.value.status.is_terminal() {
            tracing::info!(%run_id, "run already ended; duplicate delivery acknowledged");
            return Ok(());
        }
        if run.value.status == sync::RunStatus::Starting {
            match self
                .store
                .transition(&run_key, |_: &Run| Meta::default(), |r: Run| r.begin())
                .await
            {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(retry(e)),
            }
        }
        let counts = match self.copy_all(&job.value, &run_id).await {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("{e:#}");
                self.end(job_id, &run_id, move |r: Run| {
                    r.fail(msg.clone(), &now_rfc3339())
                })
                .await?;
                return Err(WorkError::permanent(e));
            }
        };
        self.end(job_id, &run_id, move |r: Run| {
            r.finish(counts.clone(), &now_rfc3339())
        })
        .await
    }

    /// A scheduled firing: claim the job for a new run, or record the firing as skipped.
    async fn claim_for_schedule(
        &self,
        job_id: &str,
        trigger: Trigger,
    ) -> Result<Option<String>, WorkError> {
        let run_id = new_id();
        let now = now_rfc3339();
        match self
            .store
            .transition(
                &Key::job(job_id),
                |_: &Job| Meta::default(),
                |j: Job| j.start_run(&run_id, &now),
            )
            .await
        {
            Ok(_) => {
                let run = Run::new(job_id, &run_id, trigger, &now);
                self.store
                    .create(&Key::run(job_id, &run_id), &Meta::default(), &run)
                    .await
                    .map_err(retry)?;
                Ok(Some(run_id))
            }
            Err(StoreError::Conflict(c)) => {
                let run = Run::skipped(job_id, &run_id, trigger, &now, c.0);
                self.store
                    .create(&Key::run(job_id, &run_id), &Meta::default(), &run)
                    .await
                    .map_err(retry)?;
                tracing::info!(%job_id, %run_id, "previous run still going; firing recorded as skipped");
                Ok(None)
            }
            Err(e) => Err(retry(e)),
        }
    }

    async fn end<F>(&self, job_id: &str, run_id: &str, f: F) -> Result<(), WorkError>
    where
        F: Fn(Run) -> Result<Run, Conflict>,
    {
        match self
            .store
            .transition(&Key::run(job_id, run_id), |_: &Run| Meta::default(), f)
            .await
        {
            Ok(r) => {
                tracing::info!(%job_id, %run_id, status = ?r.value.status, counts = ?r.value.counts, "run ended")
            }
            Err(StoreError::Conflict(c)) => {
                tracing::info!(%job_id, %run_id, reason = %c, "run already ended")
            }
            Err(e) => return Err(retry(e)),
        }
        let now = now_rfc3339();
        self.store
            .transition(
                &Key::job(job_id),
                |_: &Job| Meta::default(),
                |j: Job| j.finish_run(run_id, &now),
            )
            .await
            .map_err(retry)?;
        Ok(())
    }

    async fn list_source(&self, job: &Job) -> anyhow::Result<Vec<Listed>> {
        let src = &job.connector_config;
        let mut out = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&src.bucket_name)
            .prefix(&src.prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                anyhow::anyhow!(
                    "listing s3://{}/{}: {}",
                    src.bucket_name,
                    src.prefix,
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            })?;
            for o in page.contents.unwrap_or_default() {
                if let Some(key) = o.key {
                    out.push(Listed {
                        key,
                        size: o.size.unwrap_or(0).max(0) as u64,
                        etag: o.e_tag,
                    });
                }
            }
        }
        Ok(out)
    }

    async fn copy_all(&self, job: &Job, run_id: &str) -> anyhow::Result<RunCounts> {
        if job.action != Action::Sync {
            anyhow::bail!("action {:?} is not supported yet (issue #5)", job.action);
        }
        let objects = self.list_source(job).await?;
        let mut counts = RunCounts {
            total: objects.len() as u64,
            ..Default::default()
        };
        let results: Vec<anyhow::Result<(ObjectStatus, u64)>> = futures::stream::iter(objects)
            .map(|o| self.copy_one(job, run_id, o))
            .buffer_unordered(job.concurrency.max(1) as usize)
            .collect()
            .await;
        for r in results {
            match r? {
                (ObjectStatus::Processed, bytes) => {
                    counts.processed += 1;
                    counts.bytes += bytes;
                }
                (ObjectStatus::Skipped, _) => counts.skipped += 1,
                _ => counts.failed += 1,
            }
        }
        Ok(counts)
    }

    /// Copies one object and records it. Errors returned here are store errors (the run is retried);
    /// an object that cannot be copied is recorded as FAILED and counted.
    async fn copy_one(
        &self,
        job: &Job,
        run_id: &str,
        o: Listed,
    ) -> anyhow::Result<(ObjectStatus, u64)> {
        let key = Key::object(run_id, &o.key);
        if let Some(done) = self.store.get::<ObjectRecord>(&key).await? {
            let r = done.value;
            if matches!(
                r.status,
                ObjectStatus::Processed | ObjectStatus::Skipped | ObjectStatus::Failed
            ) {
                return Ok((
                    r.status,
                    if r.status == ObjectStatus::Processed {
                        r.object_size
                    } else {
                        0
                    },
                ));
            }
        }
        let now = now_rfc3339();
        let mut record = ObjectRecord {
            job_id: job.job_id.clone(),
            run_id: run_id.to_string(),
            object_key: o.key.clone(),
            object_size: o.size,
            last_position: 0,
            etag: o.etag.clone(),
            status: ObjectStatus::InProgress,
            attempts: 1,
            error: None,
            created_at: now.clone(),
            updated_at: now,
        };
        let outcome = if o.size == 0 {
            Ok(ObjectStatus::Skipped)
        } else {
            match sync::destination_key(
                &job.connector_config.prefix,
                &job.destination.prefix,
                &o.key,
            ) {
                Err(why) => Err(why),
                Ok(_) if o.size > MAX_SINGLE_COPY => {
                    Err("objects over 5 GiB need multipart copy (issue #5)".into())
                }
                Ok(dest) => self
                    .s3
                    .copy_object()
                    .copy_source(copy_source(&job.connector_config.bucket_name, &o.key))
                    .bucket(&job.destination.bucket)
                    .key(dest)
                    .send()
                    .await
                    .map(|_| ObjectStatus::Processed)
                    .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(e).to_string()),
            }
        };
        match outcome {
            Ok(status) => {
                record.status = status;
                if status == ObjectStatus::Processed {
                    record.last_position = o.size;
                }
            }
            Err(why) => {
                tracing::warn!(object = %o.key, error = %why, "object failed");
                record.status = ObjectStatus::Failed;
                record.error = Some(why);
            }
        }
        record.updated_at = now_rfc3339();
        match self.store.create(&key, &Meta::default(), &record).await {
            Ok(()) | Err(StoreError::Exists) => {}
            Err(e) => return Err(e.into()),
        }
        let bytes = if record.status == ObjectStatus::Processed {
            o.size
        } else {
            0
        };
        Ok((record.status, bytes))
    }
}

/// `bucket/key` with the key percent-encoded as CopyObject's `x-amz-copy-source` requires.
fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 8);
    out.push_str(bucket);
    out.push('/');
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::copy_source;

    #[test]
    fn copy_source_encodes_everything_but_unreserved_and_slashes() {
        assert_eq!(
            copy_source("b", "a dir/ü+x.txt"),
            "b/a%20dir/%C3%BC%2Bx.txt"
        );
    }
}
