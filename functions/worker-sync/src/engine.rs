//! The sync engine: a run is a fan-out of SQS messages (ARCHITECTURE §5), every one of them safe to
//! deliver twice.
//!
//! - `start_run` claims the job (or records a scheduled firing as skipped when the previous run is
//!   still going), marks the run running and sends page 0 of each listing the action needs.
//! - `list_page` lists one page (the source for copies, the destination for deletes), keeps what it
//!   saw in a page item (a redelivery hands on exactly the same objects), and group by group (small
//!   objects together, a big one alone) creates the objects' records and adds them to the run's
//!   `total` in one transaction, then sends the group's copy message; then the next page; the last page
//!   marks its listing done.
//! - `copy_objects` / `copy_parts` copy objects (see [`crate::copy`]); ending an object and adding to
//!   the run's counters is one transaction that refuses a second end, so nothing counts twice, and the
//!   last object to end (or the last page) concludes the run under a version condition.
//!
//! A message redelivered after a crash (receive count > 1) is first re-sent as a fresh message and
//! acknowledged: its work is resumable, and a fresh receive count keeps a run that is killed many times
//! from pushing live work into the DLQ. The hop count in the message bounds that; objects that make no
//! progress over `max_attempts` deliveries fail on their own.

use crate::s3io::{self, S3Fail};
use aws_sdk_s3::Client as S3;
use aws_sdk_s3::primitives::DateTimeFormat;
use ferry_shared::domain::sync::{
    self, Job, ListedPage, ObjectOp, ObjectRecord, ObjectRef, ObjectStatus, Run, Side, Trigger,
};
use ferry_shared::domain::{Conflict, new_id, now_rfc3339};
use ferry_shared::keys::{IndexKey, Key};
use ferry_shared::messages::SyncMessage;
use ferry_shared::queue::Queue;
use ferry_shared::store::{Meta, Patch, Store, StoreError};
use ferry_shared::worker::{RecordInfo, WorkError};
use futures::{StreamExt, TryStreamExt};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Keys per listing page: a page item keeps them all, and must stay far below DynamoDB's 400 KB.
const PAGE_KEYS: i32 = 250;
/// Small objects travel in groups of at most this many objects and bytes.
const GROUP_OBJECTS: usize = 50;
const GROUP_BYTES: u64 = 256 * 1024 * 1024;
/// A big object with more parts than this is copied by several `CopyParts` messages.
pub const PARTS_PER_MESSAGE: u64 = 64;
/// Re-sends of one message after redeliveries; past this, SQS's own redrive (DLQ) takes over.
const MAX_HOPS: u32 = 100;
/// Concurrent record writes while handing on a page.
const WRITE_CONCURRENCY: usize = 16;
/// Copy groups of one page recorded (and sent) at once.
const GROUP_WRITERS: usize = 8;

pub struct Engine {
    pub store: Store,
    /// ferry's own S3: every destination, and sources without an endpoint or keys of their own.
    pub s3: S3,
    pub queue: Queue,
    pub secrets: aws_sdk_secretsmanager::Client,
    sources: Mutex<HashMap<String, (String, S3)>>,
    limits: Mutex<HashMap<(String, u32), Limits>>,
    in_flight: Arc<Mutex<HashSet<String>>>,
}

/// Per-job concurrency in this process: objects in progress, and part copies in flight.
#[derive(Clone)]
pub struct Limits {
    pub objects: Arc<Semaphore>,
    pub parts: Arc<Semaphore>,
}

/// What every copy of one run needs.
pub struct Ctx {
    pub job: Job,
    pub run_id: String,
    /// The client that reads the source.
    pub src: S3,
    pub limits: Limits,
}

impl Ctx {
    pub fn run_key(&self) -> Key {
        Key::run(&self.job.job_id, &self.run_id)
    }
    pub fn object_key(&self, key: &str) -> Key {
        Key::object(&self.run_id, key)
    }
}

/// A job's item keeps its listing index entry through every transition.
fn job_meta(j: &Job) -> Meta {
    IndexKey::job(&j.created_at, &j.job_id).into()
}

pub fn retry(e: impl Into<anyhow::Error>) -> WorkError {
    WorkError::retryable(e)
}

/// Removes its entry from the in-flight set when dropped.
pub struct InFlight {
    set: Arc<Mutex<HashSet<String>>>,
    key: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.lock() {
            s.remove(&self.key);
        }
    }
}

/// The message a redelivery of `message` (SQS id `message_id`) is re-sent as: one more hop, and copy
/// work keeps the first delivery's identity as a lease holder (see `copy.rs`).
fn refreshed(message: &SyncMessage, message_id: &str) -> Option<SyncMessage> {
    let mut fresh = message.clone();
    let hops = match &mut fresh {
        SyncMessage::StartRun { .. } => return None,
        SyncMessage::ListPage { hops, .. } => hops,
        SyncMessage::CopyObjects { hops, lease, .. }
        | SyncMessage::CopyParts { hops, lease, .. } => {
            if lease.is_none() && !message_id.is_empty() {
                *lease = Some(message_id.to_string());
            }
            hops
        }
    };
    if *hops >= MAX_HOPS {
        return None;
    }
    *hops += 1;
    Some(fresh)
}

/// Who a delivery of copy work is as a lease holder: the identity its message carries (a re-sent
/// redelivery), else its own SQS message id (random when there is none).
fn lease_holder(lease: Option<String>, info: &RecordInfo) -> String {
    lease
        .or_else(|| (!info.message_id.is_empty()).then(|| info.message_id.clone()))
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()))
}

/// Splits a page's objects into copy messages: a big object (more than one chunk) alone, small ones in
/// groups.
pub fn group(entries: &[ObjectRef], chunk_size: u64) -> Vec<Vec<ObjectRef>> {
    let mut out = Vec::new();
    let mut current: Vec<ObjectRef> = Vec::new();
    let mut bytes = 0;
    for e in entries {
        if e.size > chunk_size {
            out.push(vec![e.clone()]);
            continue;
        }
        if current.len() >= GROUP_OBJECTS || bytes + e.size > GROUP_BYTES {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += e.size;
        current.push(e.clone());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

impl Engine {
    pub fn new(
        store: Store,
        s3: S3,
        queue: Queue,
        secrets: aws_sdk_secretsmanager::Client,
    ) -> Self {
        Engine {
            store,
            s3,
            queue,
            secrets,
            sources: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
            in_flight: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    pub async fn handle(&self, message: SyncMessage, info: RecordInfo) -> Result<(), WorkError> {
        if info.receive_count > 1
            && let Some(fresh) = refreshed(&message, &info.message_id)
        {
            self.queue.send(&fresh).await.map_err(retry)?;
            tracing::info!(message_id = %info.message_id, receives = info.receive_count, "redelivered message re-sent fresh");
            return Ok(());
        }
        match message {
            SyncMessage::StartRun {
                job_id,
                trigger,
                run_id,
            } => {
                tracing::info!(job_id = %job_id, run_id = ?run_id, ?trigger, "start_run");
                self.start_run(&job_id, trigger, run_id).await
            }
            SyncMessage::ListPage {
                job_id,
                run_id,
                side,
                page,
                token,
                ..
            } => {
                tracing::info!(%job_id, %run_id, ?side, page, "list_page");
                self.list_page(&job_id, &run_id, side, page, token).await
            }
            SyncMessage::CopyObjects {
                job_id,
                run_id,
                objects,
                lease,
                ..
            } => {
                let Some(ctx) = self.ctx(&job_id, &run_id).await? else {
                    return Ok(());
                };
                let owner = &lease_holder(lease, &info);
                let began = std::time::Instant::now();
                if self
                    .copy_group(&ctx, &objects, owner)
                    .await
                    .map_err(retry)?
                {
                    tracing::info!(%job_id, %run_id, objects = objects.len(), ms = began.elapsed().as_millis() as u64, "copy group done");
                    self.try_conclude(&job_id, &run_id).await.map_err(retry)?;
                    return Ok(());
                }
                let results: Vec<Result<(), anyhow::Error>> = futures::stream::iter(objects)
                    .map(|o| self.copy_one(&ctx, o, None, false, owner))
                    .buffer_unordered(ctx.job.concurrency.max(1) as usize)
                    .collect()
                    .await;
                // Once per group rather than after each object.
                self.try_conclude(&job_id, &run_id).await.map_err(retry)?;
                results
                    .into_iter()
                    .collect::<Result<(), _>>()
                    .map_err(retry)
            }
            SyncMessage::CopyParts {
                job_id,
                run_id,
                object,
                first,
                last,
                lease,
                ..
            } => {
                let Some(ctx) = self.ctx(&job_id, &run_id).await? else {
                    return Ok(());
                };
                let owner = &lease_holder(lease, &info);
                self.copy_one(&ctx, object, Some((first, last)), true, owner)
                    .await
                    .map_err(retry)
            }
        }
    }

    /// Claims `name` for this process; `None` if a delivery in this process already works on it
    /// (that delivery's own message stays until it is done, so this duplicate can be acknowledged).
    pub fn claim(&self, name: String) -> Option<InFlight> {
        let mut set = self.in_flight.lock().ok()?;
        if !set.insert(name.clone()) {
            return None;
        }
        Some(InFlight {
            set: self.in_flight.clone(),
            key: name,
        })
    }

    fn limits(&self, job: &Job) -> Limits {
        let mut map = self.limits.lock().expect("limits lock");
        map.entry((job.job_id.clone(), job.concurrency))
            .or_insert_with(|| Limits {
                objects: Arc::new(Semaphore::new(job.concurrency.max(1) as usize)),
                parts: Arc::new(Semaphore::new(job.concurrency.max(1) as usize)),
            })
            .clone()
    }

    /// The client that reads a job's source: ferry's own, or one for its foreign store (built once per
    /// job version, with the keys read from Secrets Manager).
    async fn source_client(&self, job: &Job) -> anyhow::Result<S3> {
        let src = &job.connector_config;
        if !src.is_foreign() {
            return Ok(self.s3.clone());
        }
        if let Some((stamp, c)) = self.sources.lock().expect("sources lock").get(&job.job_id)
            && *stamp == job.updated_at
        {
            return Ok(c.clone());
        }
        let creds = match &src.credentials_secret_arn {
            Some(arn) => {
                let raw = ferry_shared::secrets::get_string(&self.secrets, arn).await?;
                Some(
                    serde_json::from_str::<s3io::SourceCredentials>(&raw).map_err(|_| {
                        anyhow::anyhow!("the source credentials secret is not valid JSON")
                    })?,
                )
            }
            None => None,
        };
        let client = s3io::foreign_client(
            src.endpoint_url.as_deref(),
            src.region.as_deref(),
            creds,
            &self.s3,
        );
        self.sources
            .lock()
            .expect("sources lock")
            .insert(job.job_id.clone(), (job.updated_at.clone(), client.clone()));
        Ok(client)
    }

    /// The job and run a message belongs to; `None` (acknowledge) when either is gone or the run ended.
    async fn ctx(&self, job_id: &str, run_id: &str) -> Result<Option<Ctx>, WorkError> {
        let Some(job) = self
            .store
            .get::<Job>(&Key::job(job_id))
            .await
            .map_err(retry)?
        else {
            tracing::info!(%job_id, "job no longer exists; message dropped");
            return Ok(None);
        };
        let Some(run) = self
            .store
            .get::<Run>(&Key::run(job_id, run_id))
            .await
            .map_err(retry)?
        else {
            return Ok(None);
        };
        if run.value.status.is_terminal() {
            return Ok(None);
        }
        let src = self.source_client(&job.value).await.map_err(retry)?;
        let limits = self.limits(&job.value);
        Ok(Some(Ctx {
            job: job.value,
            run_id: run_id.to_string(),
            src,
            limits,
        }))
    }

    // ------------------------------------------------------------------------------------ runs

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
        let action = job.value.action;
        if run.value.status == sync::RunStatus::Starting {
            match self
                .store
                .transition(
                    &run_key,
                    |_: &Run| Meta::default(),
                    |r: Run| r.begin(action),
                )
                .await
            {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(retry(e)),
            }
        }
        let mut first_pages = Vec::new();
        for side in action.sides() {
            let started = self
                .store
                .get::<ListedPage>(&Key::run_page(&run_id, side.as_str(), 0))
                .await
                .map_err(retry)?;
            if started.is_none() {
                first_pages.push(SyncMessage::ListPage {
                    job_id: job_id.to_string(),
                    run_id: run_id.clone(),
                    side: *side,
                    page: 0,
                    token: None,
                    hops: 0,
                });
            }
        }
        self.queue.send_all(&first_pages).await.map_err(retry)
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
            .transition(&Key::job(job_id), job_meta, |j: Job| {
                j.start_run(&run_id, &now)
            })
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

    /// Ends the run with `f` (fail, or conclude) and frees the job for its next run.
    async fn end_run<F>(&self, job_id: &str, run_id: &str, f: F) -> Result<bool, StoreError>
    where
        F: Fn(Run) -> Result<Run, Conflict>,
    {
        let ended = match self
            .store
            .transition(&Key::run(job_id, run_id), |_: &Run| Meta::default(), f)
            .await
        {
            Ok(r) => {
                tracing::info!(%job_id, %run_id, status = ?r.value.status, counts = ?r.value.counts, "run ended");
                true
            }
            Err(StoreError::Conflict(_)) => false,
            Err(e) => return Err(e),
        };
        let now = now_rfc3339();
        match self
            .store
            .transition(&Key::job(job_id), job_meta, |j: Job| {
                j.finish_run(run_id, &now)
            })
            .await
        {
            Ok(_) | Err(StoreError::NotFound) => Ok(ended),
            Err(e) => Err(e),
        }
    }

    /// Concludes the run if every listing and every object has ended. Called after each object ends
    /// and after each listing's last page: whoever comes last wins the version condition.
    pub async fn try_conclude(&self, job_id: &str, run_id: &str) -> Result<(), StoreError> {
        let Some(run) = self.store.get::<Run>(&Key::run(job_id, run_id)).await? else {
            return Ok(());
        };
        if !run.value.is_settled() {
            return Ok(());
        }
        self.end_run(job_id, run_id, |r: Run| r.conclude(&now_rfc3339()))
            .await?;
        Ok(())
    }

    async fn fail_run(&self, job_id: &str, run_id: &str, why: String) -> Result<(), WorkError> {
        tracing::warn!(%job_id, %run_id, error = %why, "run failed");
        self.end_run(job_id, run_id, move |r: Run| {
            r.fail(why.clone(), &now_rfc3339())
        })
        .await
        .map_err(retry)?;
        Ok(())
    }

    // ------------------------------------------------------------------------------------ pages

    /// Creates the records of listed `entries`: in transactions of up to
    /// [`MAX_BATCH_CREATES`](ferry_shared::store::MAX_BATCH_CREATES); when a record exists already (a
    /// redelivered page), one by one, skipping those. The run's `total` is not touched here: a page
    /// adds its whole count once, when it is marked done (see `list_page`).
    async fn record_listed(
        &self,
        ctx: &Ctx,
        entries: &[ObjectRef],
        op: ObjectOp,
        now: &str,
    ) -> Result<(), WorkError> {
        let (job_id, run_id) = (&ctx.job.job_id, &ctx.run_id);
        let records: Vec<(Key, ObjectRecord)> = entries
            .iter()
            .map(|e| {
                (
                    ctx.object_key(&e.key),
                    ObjectRecord::pending(job_id, run_id, &e.key, &e.meta(), op, now),
                )
            })
            .collect();
        if self.store.create_many(&records).await.map_err(retry)? {
            return Ok(());
        }
        futures::stream::iter(records)
            .map(|(key, record)| async move {
                match self.store.create(&key, &Meta::default(), &record).await {
                    Ok(()) | Err(StoreError::Exists) => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map_err(retry)?;
        Ok(())
    }

    /// The end of a page's listing work: its count added to the run's `total` and the page marked
    /// done, in one transaction conditional on the page not being done yet, so a redelivered or
    /// duplicated page counts once. After the last page, the side's listing is done.
    async fn page_done(
        &self,
        ctx: &Ctx,
        page_key: &Key,
        side: Side,
        entries: usize,
        last: bool,
    ) -> Result<(), WorkError> {
        self.store
            .patch_many(&[
                (
                    ctx.run_key(),
                    Patch::new().add("counts.total", entries as i64),
                ),
                (
                    page_key.clone(),
                    Patch::new()
                        .set("done", &true)
                        .map_err(retry)?
                        .require_eq("done", &false)
                        .map_err(retry)?,
                ),
            ])
            .await
            .map_err(retry)?;
        if last {
            self.listing_done(ctx, side).await?;
        }
        Ok(())
    }

    async fn listing_done(&self, ctx: &Ctx, side: Side) -> Result<(), WorkError> {
        match self
            .store
            .transition(
                &ctx.run_key(),
                |_: &Run| Meta::default(),
                |r: Run| r.listing_done(side),
            )
            .await
        {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(retry(e)),
        }
        self.try_conclude(&ctx.job.job_id, &ctx.run_id)
            .await
            .map_err(retry)
    }

    async fn list_page(
        &self,
        job_id: &str,
        run_id: &str,
        side: Side,
        page: u32,
        token: Option<String>,
    ) -> Result<(), WorkError> {
        let page_key = Key::run_page(run_id, side.as_str(), page);
        let existing = self
            .store
            .get::<ListedPage>(&page_key)
            .await
            .map_err(retry)?;
        let Some(ctx) = self.ctx(job_id, run_id).await? else {
            return Ok(());
        };
        if let Some(p) = existing.as_ref().filter(|p| p.value.done) {
            // Counted already; a delivery that died between that and the end of the listing left
            // the last page's `listing_done` to this one.
            if p.value.next_token.is_none() {
                self.listing_done(&ctx, side).await?;
            }
            return Ok(());
        }
        let listed = match existing {
            Some(p) => p.value,
            None => {
                let fresh = match side {
                    Side::Source => self.list_source(&ctx, token).await,
                    Side::Destination => self.list_vanished(&ctx, token).await,
                };
                let fresh = match fresh {
                    Ok(p) => p,
                    Err(S3Fail::Transient(why)) => return Err(retry(anyhow::anyhow!(why))),
                    Err(e) => {
                        let what = match side {
                            Side::Source => "listing the source",
                            Side::Destination => "listing the destination",
                        };
                        return self.fail_run(job_id, run_id, format!("{what}: {e}")).await;
                    }
                };
                match self.store.create(&page_key, &Meta::default(), &fresh).await {
                    Ok(()) => fresh,
                    Err(StoreError::Exists) => {
                        self.store
                            .get::<ListedPage>(&page_key)
                            .await
                            .map_err(retry)?
                            .ok_or_else(|| retry(anyhow::anyhow!("page item vanished")))?
                            .value
                    }
                    Err(e) => return Err(retry(e)),
                }
            }
        };
        let op = match side {
            Side::Source => ObjectOp::Copy,
            Side::Destination => ObjectOp::Delete,
        };
        let now = now_rfc3339();
        let (entries, last) = (listed.entries.len(), listed.next_token.is_none());
        match side {
            // Group by group, several at once: a group's records, then its copy message, so the first
            // copies start while the rest of the page is still being recorded (in other instances:
            // the sync source scales out).
            Side::Source => {
                let ctx = &ctx;
                let now = &now;
                futures::stream::iter(group(&listed.entries, ctx.job.chunk_size))
                    .map(|objects| async move {
                        self.record_listed(ctx, &objects, op, now).await?;
                        self.queue
                            .send(&SyncMessage::CopyObjects {
                                job_id: job_id.to_string(),
                                run_id: run_id.to_string(),
                                objects,
                                hops: 0,
                                lease: None,
                            })
                            .await
                            .map(drop)
                            .map_err(retry)
                    })
                    .buffer_unordered(GROUP_WRITERS)
                    .try_collect::<Vec<()>>()
                    .await?;
            }
            Side::Destination => {
                self.record_listed(&ctx, &listed.entries, op, &now).await?;
                let results: Vec<anyhow::Result<()>> = futures::stream::iter(listed.entries)
                    .map(|e| self.delete_one(&ctx, e))
                    .buffer_unordered(ctx.job.concurrency.max(1) as usize)
                    .collect()
                    .await;
                results
                    .into_iter()
                    .collect::<Result<(), _>>()
                    .map_err(retry)?;
            }
        }
        if let Some(t) = &listed.next_token {
            self.queue
                .send(&SyncMessage::ListPage {
                    job_id: job_id.to_string(),
                    run_id: run_id.to_string(),
                    side,
                    page: page + 1,
                    token: Some(t.clone()),
                    hops: 0,
                })
                .await
                .map_err(retry)?;
        }
        self.page_done(&ctx, &page_key, side, entries, last).await
    }

    async fn list_source(&self, ctx: &Ctx, token: Option<String>) -> Result<ListedPage, S3Fail> {
        let src = &ctx.job.connector_config;
        let out = s3io::retry(ctx.job.max_attempts, "list source", |_| async {
            ctx.src
                .list_objects_v2()
                .bucket(&src.bucket_name)
                .prefix(&src.prefix)
                .max_keys(PAGE_KEYS)
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(s3io::classify)
        })
        .await?;
        let entries = out
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| {
                Some(ObjectRef {
                    key: o.key?,
                    size: o.size.unwrap_or(0).max(0) as u64,
                    etag: o.e_tag,
                    last_modified: o
                        .last_modified
                        .and_then(|d| d.fmt(DateTimeFormat::DateTime).ok()),
                })
            })
            .collect();
        Ok(ListedPage {
            entries,
            next_token: out
                .next_continuation_token
                .filter(|_| out.is_truncated == Some(true)),
            done: false,
        })
    }

    /// One page of the destination: the objects whose source no longer exists, named by source key.
    async fn list_vanished(&self, ctx: &Ctx, token: Option<String>) -> Result<ListedPage, S3Fail> {
        let job = &ctx.job;
        let mut dest_prefix = job.destination.prefix.trim_matches('/').to_string();
        if !dest_prefix.is_empty() {
            dest_prefix.push('/');
        }
        let out = s3io::retry(job.max_attempts, "list destination", |_| async {
            self.s3
                .list_objects_v2()
                .bucket(&job.destination.bucket)
                .prefix(&dest_prefix)
                .max_keys(PAGE_KEYS)
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(s3io::classify)
        })
        .await?;
        let candidates: Vec<(Vec<String>, ObjectRef)> = out
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| {
                let key = o.key?;
                let sources = sync::source_keys_for(
                    &job.connector_config.prefix,
                    &job.destination.prefix,
                    &key,
                );
                let first = sources.first()?.clone();
                Some((
                    sources,
                    ObjectRef {
                        key: first,
                        size: o.size.unwrap_or(0).max(0) as u64,
                        etag: o.e_tag,
                        last_modified: o
                            .last_modified
                            .and_then(|d| d.fmt(DateTimeFormat::DateTime).ok()),
                    },
                ))
            })
            .collect();
        let checked: Vec<Option<ObjectRef>> = futures::stream::iter(candidates)
            .map(|(sources, entry)| async move {
                for k in &sources {
                    if self.source_exists(ctx, k).await? {
                        return Ok(None);
                    }
                }
                Ok(Some(entry))
            })
            .buffer_unordered(job.concurrency.max(1) as usize)
            .try_collect()
            .await?;
        Ok(ListedPage {
            entries: checked.into_iter().flatten().collect(),
            next_token: out
                .next_continuation_token
                .filter(|_| out.is_truncated == Some(true)),
            done: false,
        })
    }

    async fn source_exists(&self, ctx: &Ctx, key: &str) -> Result<bool, S3Fail> {
        let r = s3io::retry(ctx.job.max_attempts, "head source", |_| async {
            ctx.src
                .head_object()
                .bucket(&ctx.job.connector_config.bucket_name)
                .key(key)
                .send()
                .await
                .map_err(s3io::classify)
        })
        .await;
        match r {
            Ok(_) => Ok(true),
            Err(S3Fail::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes the destination copy of a vanished source object and ends its record.
    async fn delete_one(&self, ctx: &Ctx, entry: ObjectRef) -> anyhow::Result<()> {
        let key = ctx.object_key(&entry.key);
        let Some(_guard) = self.claim(format!("{}\0{}", ctx.run_id, entry.key)) else {
            return Ok(());
        };
        let _permit = ctx.limits.objects.acquire().await?;
        match self
            .store
            .transition(
                &key,
                |_: &ObjectRecord| Meta::default(),
                |r: ObjectRecord| r.start_attempt(&now_rfc3339()),
            )
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let job = &ctx.job;
        let outcome = match sync::destination_key(
            &job.connector_config.prefix,
            &job.destination.prefix,
            &entry.key,
        ) {
            Err(why) => Err(S3Fail::Permanent(why)),
            Ok(dest) => s3io::retry(job.max_attempts, "delete", |_| async {
                self.s3
                    .delete_object()
                    .bucket(&job.destination.bucket)
                    .key(&dest)
                    .send()
                    .await
                    .map_err(s3io::classify)
            })
            .await
            .map(|_| ()),
        };
        match outcome {
            Ok(()) => self.end_object(ctx, &entry.key, ObjectStatus::Processed, None, true),
            Err(e) => self.end_object(
                ctx,
                &entry.key,
                ObjectStatus::Failed,
                Some(e.to_string()),
                true,
            ),
        }
        .await
    }

    /// Ends an object and counts it in its run, once; then (with `conclude`) tries to conclude the run.
    pub async fn end_object(
        &self,
        ctx: &Ctx,
        object_key: &str,
        status: ObjectStatus,
        error: Option<String>,
        conclude: bool,
    ) -> anyhow::Result<()> {
        if let Some(why) = &error {
            tracing::warn!(run_id = %ctx.run_id, object = %object_key, error = %why, "object failed");
        }
        let now = now_rfc3339();
        match self
            .store
            .transition_counted(
                &ctx.object_key(object_key),
                |_: &ObjectRecord| Meta::default(),
                |r: ObjectRecord| {
                    let ended = r.end(status, error.clone(), &now)?;
                    let patch = ended
                        .count_deltas()
                        .into_iter()
                        .fold(Patch::new(), |p, (name, n)| {
                            p.add(&format!("counts.{name}"), n as i64)
                        });
                    Ok((ended, patch))
                },
                &ctx.run_key(),
            )
            .await
        {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        if conclude {
            self.try_conclude(&ctx.job.job_id, &ctx.run_id).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, size: u64) -> ObjectRef {
        ObjectRef {
            key: key.into(),
            size,
            etag: None,
            last_modified: None,
        }
    }

    #[test]
    fn big_objects_travel_alone_and_small_ones_in_bounded_groups() {
        let mut entries: Vec<ObjectRef> = (0..120).map(|i| obj(&format!("s{i}"), 10)).collect();
        entries.insert(7, obj("big", 11));
        let groups = group(&entries, 10);
        assert_eq!(groups.len(), 4);
        assert!(groups.iter().any(|g| g.len() == 1 && g[0].key == "big"));
        assert!(groups.iter().all(|g| g.len() <= GROUP_OBJECTS));
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 121);
    }

    #[test]
    fn only_fan_out_messages_are_refreshed_and_hops_are_bounded() {
        let start = SyncMessage::StartRun {
            job_id: "j".into(),
            trigger: Trigger::Api,
            run_id: None,
        };
        assert!(refreshed(&start, "m1").is_none());
        let page = SyncMessage::ListPage {
            job_id: "j".into(),
            run_id: "r".into(),
            side: Side::Source,
            page: 0,
            token: None,
            hops: MAX_HOPS - 1,
        };
        let once = refreshed(&page, "m1").unwrap();
        assert!(matches!(once, SyncMessage::ListPage { hops, .. } if hops == MAX_HOPS));
        assert!(refreshed(&once, "m2").is_none());
    }

    #[test]
    fn a_refreshed_copy_keeps_its_first_deliverys_lease_identity() {
        let copy = SyncMessage::CopyParts {
            job_id: "j".into(),
            run_id: "r".into(),
            object: obj("big", 1 << 30),
            first: 1,
            last: 64,
            hops: 0,
            lease: None,
        };
        let once = refreshed(&copy, "m1").unwrap();
        assert!(
            matches!(&once, SyncMessage::CopyParts { lease: Some(l), hops: 1, .. } if l == "m1")
        );
        // A second crash: still the first delivery's identity, so it takes over its own lease.
        let twice = refreshed(&once, "m2").unwrap();
        assert!(
            matches!(&twice, SyncMessage::CopyParts { lease: Some(l), hops: 2, .. } if l == "m1")
        );
        let info = |id: &str| RecordInfo {
            message_id: id.into(),
            receive_count: 1,
        };
        assert_eq!(lease_holder(Some("m1".into()), &info("m9")), "m1");
        assert_eq!(lease_holder(None, &info("m9")), "m9");
        assert_ne!(lease_holder(None, &info("")), lease_holder(None, &info("")));
    }
}
