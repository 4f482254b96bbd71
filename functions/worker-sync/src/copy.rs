//! Copying one object. Small objects (up to one chunk) take one CopyObject, or a GET and a PUT when
//! the source is a foreign store. Bigger ones go part by part into a multipart upload at the
//! destination: UploadPartCopy with a byte range on the same store, else a ranged GET of the part
//! uploaded with UploadPart. After each part its number and ETag are checkpointed in the object's
//! record, so a redelivery resumes at the first missing part; the upload is then completed and its
//! size and ETag (the MD5 of the part MD5s) verified. Every source read names the listed ETag
//! (If-Match), so all parts come from one version of the object.
//!
//! Two deliveries of one object (or of one part range) may run at the same time in two instances: SQS
//! delivers at least once, and a listing page handed on twice sends its copy messages twice. The first
//! to start takes a short lease on the object's slot in its record and renews it while it works; the
//! other finds the live lease and re-sends its message for when the lease ends, by which time the object
//! is done (the late message is then a no-op) or its holder died and stopped renewing (the late message
//! takes over and resumes from the checkpoint). So no byte is copied twice by a duplicate.

use crate::engine::{Ctx, Engine, PARTS_PER_MESSAGE};
use crate::s3io::{self, S3Fail};
use aws_sdk_s3::primitives::{ByteStream, DateTimeFormat};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use ferry_shared::domain::sync::{
    self, Action, ObjectMeta, ObjectOp, ObjectRecord, ObjectRef, ObjectStatus,
};
use ferry_shared::domain::{Conflict, now_rfc3339};
use ferry_shared::keys::Key;
use ferry_shared::messages::SyncMessage;
use ferry_shared::store::{MAX_BATCH_CREATES, Meta, Patch, StoreError};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::time::Duration;

/// User metadata ferry writes on multipart and foreign copies: the source ETag it copied (a
/// multipart copy gets an ETag of its own, so delta needs this to recognise an unchanged object).
const SOURCE_ETAG_META: &str = "ferry-source-etag";

/// What a copy carries from the source besides the bytes, as a server-side CopyObject does: the
/// content headers and the user metadata, plus ferry's own entry naming the source ETag it copied.
#[derive(Clone, Debug, Default, PartialEq)]
struct Carried {
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    metadata: HashMap<String, String>,
}

/// [`Carried`] from a HeadObject or GetObject answer (the same accessors on both) for `obj`.
macro_rules! carried {
    ($out:expr, $obj:expr) => {
        Carried::new(
            $obj,
            [
                $out.content_type(),
                $out.cache_control(),
                $out.content_disposition(),
                $out.content_encoding(),
                $out.content_language(),
            ],
            $out.metadata(),
        )
    };
}
impl Carried {
    /// `headers`: content type, cache control, disposition, encoding and language, in that order.
    fn new(
        obj: &ObjectRef,
        headers: [Option<&str>; 5],
        metadata: Option<&HashMap<String, String>>,
    ) -> Self {
        let [
            content_type,
            cache_control,
            content_disposition,
            content_encoding,
            content_language,
        ] = headers.map(|h| h.map(str::to_string));
        let mut metadata = metadata.cloned().unwrap_or_default();
        // ferry's entry is the source's ETag, whatever a copy of a copy carried before.
        metadata.remove(SOURCE_ETAG_META);
        if let Some(e) = obj.etag.as_deref() {
            metadata.insert(SOURCE_ETAG_META.to_string(), s3io::bare(e).to_string());
        }
        Carried {
            content_type,
            cache_control,
            content_disposition,
            content_encoding,
            content_language,
            metadata,
        }
    }
}

/// A PutObject or CreateMultipartUpload request (the same setters) with what a [`Carried`] holds.
macro_rules! carry {
    ($request:expr, $carried:expr) => {{
        let c: &Carried = $carried;
        $request
            .set_content_type(c.content_type.clone())
            .set_cache_control(c.cache_control.clone())
            .set_content_disposition(c.content_disposition.clone())
            .set_content_encoding(c.content_encoding.clone())
            .set_content_language(c.content_language.clone())
            .set_metadata(Some(c.metadata.clone()))
    }};
}

/// A copy step failed: in S3 (the object fails once retries are spent) or in the store (the message
/// is retried).
enum Stop {
    S3(S3Fail),
    Store(anyhow::Error),
}

impl From<S3Fail> for Stop {
    fn from(e: S3Fail) -> Self {
        Stop::S3(e)
    }
}
impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e.into())
    }
}
impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Self {
        Stop::Store(e)
    }
}

/// A lease lasts this long unless renewed; its holder renews it every [`LEASE_RENEW`]. A holder that
/// dies blocks its slot for at most this long.
const LEASE_TTL_MS: u64 = 6_000;
const LEASE_RENEW: Duration = Duration::from_secs(2);

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The lease slot of a delivery of `obj`: the first part of the range it copies (1 for a whole object
/// copied by one message), or 0 for the delivery that only fans a huge object out into part ranges.
fn lease_slot(obj: &ObjectRef, range: Option<(u64, u64)>, chunk_size: u64) -> u64 {
    match range {
        Some((first, _)) => first,
        None if obj.size > chunk_size
            && sync::part_count(obj.size, sync::part_size(obj.size, chunk_size))
                > PARTS_PER_MESSAGE =>
        {
            0
        }
        None => 1,
    }
}

fn store_fail(e: StoreError) -> S3Fail {
    S3Fail::Transient(format!("recording progress: {e}"))
}

impl Engine {
    /// Copies one object (or parts `range` of it) and ends its record when it is done. Errors are the
    /// store's: the message is retried; S3 errors end the object as FAILED.
    pub async fn copy_one(
        &self,
        ctx: &Ctx,
        obj: ObjectRef,
        range: Option<(u64, u64)>,
        conclude: bool,
        owner: &str,
    ) -> anyhow::Result<()> {
        let claim = match range {
            Some((first, _)) => format!("{}\0{}\0{first}", ctx.run_id, obj.key),
            None => format!("{}\0{}", ctx.run_id, obj.key),
        };
        let Some(_guard) = self.claim(claim) else {
            return Ok(());
        };
        let _permit = ctx.limits.objects.acquire().await?;
        let key = ctx.object_key(&obj.key);
        // A small object of a plain sync is fetched right after this write: its bytes are counted in
        // it (before the request, like every fetch), which saves a write per object.
        let prepaid = if range.is_none()
            && obj.size > 0
            && obj.size <= ctx.job.chunk_size
            && ctx.job.action == Action::Sync
        {
            obj.size
        } else {
            0
        };
        let slot = lease_slot(&obj, range, ctx.job.chunk_size);
        let held = std::cell::Cell::new(None);
        let start = |r: ObjectRecord| {
            let mut r = r.start_attempt(&now_rfc3339())?;
            if let Err(until) = r.take_lease(slot, owner, unix_ms(), LEASE_TTL_MS) {
                held.set(Some(until));
                return Err(Conflict(format!("object {} is leased", obj.key)));
            }
            r.bytes_fetched += prepaid;
            Ok(r)
        };
        let started = match self
            .store
            .transition(&key, |_: &ObjectRecord| Meta::default(), start)
            .await
        {
            Err(StoreError::NotFound) => {
                // Created (and counted in the run's total) by the listing page before it sent this
                // message; a message that outlived its record recreates it, without counting again.
                let rec = ObjectRecord::pending(
                    &ctx.job.job_id,
                    &ctx.run_id,
                    &obj.key,
                    &obj.meta(),
                    ObjectOp::Copy,
                    &now_rfc3339(),
                );
                match self.store.create(&key, &Meta::default(), &rec).await {
                    Ok(()) | Err(StoreError::Exists) => {}
                    Err(e) => return Err(e.into()),
                }
                self.store
                    .transition(&key, |_: &ObjectRecord| Meta::default(), start)
                    .await
            }
            other => other,
        };
        let rec = match started {
            Ok(r) => r.value,
            Err(StoreError::Conflict(_)) => {
                return match held.get() {
                    Some(until) => self.come_back(ctx, obj, range, until, owner).await,
                    None => Ok(()),
                };
            }
            Err(e) => return Err(e.into()),
        };
        if rec.exhausted(ctx.job.max_attempts) {
            let why = format!(
                "no progress after {} deliveries (max_attempts {})",
                rec.idle_attempts - 1,
                ctx.job.max_attempts
            );
            return self
                .end_object(ctx, &obj.key, ObjectStatus::Failed, Some(why), conclude)
                .await;
        }
        let holds = [(key.clone(), slot)];
        let copied = self
            .leased(
                &holds,
                owner,
                self.copy_body(ctx, &rec, &obj, range, prepaid > 0),
            )
            .await;
        let (status, error) = match copied {
            Ok(Some(status)) => (status, None),
            Err(Stop::S3(e)) => (ObjectStatus::Failed, Some(explain(e))),
            // Not done here (other ranges go on) or to be retried: the slot is free again now.
            Ok(None) => {
                self.release(&key, slot, owner).await;
                return Ok(());
            }
            Err(Stop::Store(e)) => {
                self.release(&key, slot, owner).await;
                return Err(e);
            }
        };
        self.end_object(ctx, &obj.key, status, error, conclude)
            .await
    }

    /// A group of small objects of a plain sync, with the bookkeeping batched: one read of all their
    /// records, one transaction starting them all, the copies, and one transaction ending them all
    /// together with the run's counters (3 store calls for the group instead of ~4 per object).
    /// `false`, with nothing started, when the group does not qualify or any record is not where a
    /// first delivery finds it (missing, ended, retried too often, or raced): the caller then goes
    /// object by object, which handles each of those cases.
    pub async fn copy_group(
        &self,
        ctx: &Ctx,
        objects: &[ObjectRef],
        owner: &str,
    ) -> anyhow::Result<bool> {
        let job = &ctx.job;
        if job.action != Action::Sync
            || objects.len() < 2
            || objects.len() > MAX_BATCH_CREATES
            || objects
                .iter()
                .any(|o| o.size == 0 || o.size > job.chunk_size)
        {
            return Ok(false);
        }
        let mut claims = Vec::with_capacity(objects.len());
        for o in objects {
            match self.claim(format!("{}\0{}", ctx.run_id, o.key)) {
                Some(c) => claims.push(c),
                None => return Ok(false),
            }
        }
        let keys: Vec<_> = objects.iter().map(|o| ctx.object_key(&o.key)).collect();
        let current = self.store.get_many::<ObjectRecord>(&keys).await?;
        let now = now_rfc3339();
        let now_ms = unix_ms();
        let mut started = Vec::with_capacity(objects.len());
        for ((key, found), obj) in keys.into_iter().zip(current).zip(objects) {
            let Some(found) = found else {
                return Ok(false);
            };
            let Ok(mut rec) = found.value.start_attempt(&now) else {
                return Ok(false);
            };
            if rec.exhausted(job.max_attempts)
                || rec.take_lease(1, owner, now_ms, LEASE_TTL_MS).is_err()
            {
                return Ok(false);
            }
            // Counted before the request, like every fetch (see `copy_one`).
            rec.bytes_fetched += obj.size;
            started.push((key, Meta::default(), rec, found.version));
        }
        if !self
            .store
            .replace_many_counted(&started, &ctx.run_key(), None)
            .await?
        {
            return Ok(false);
        }
        let holds: Vec<(Key, u64)> = started.iter().map(|(k, ..)| (k.clone(), 1)).collect();
        // Biggest first, unordered: the group ends when its last copy does, so long copies start
        // early, and a big object must not hold back the slots of small ones that finished behind
        // it (ordered buffering would run a group's tail at a fraction of the concurrency). Each
        // result carries its index and is put back in order below.
        let mut order: Vec<usize> = (0..objects.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(objects[i].size));
        let copies = futures::stream::iter(order)
            .map(|i| async move {
                let obj = &objects[i];
                let _permit = ctx.limits.objects.acquire().await.ok();
                let copied = match sync::destination_key(
                    &job.connector_config.prefix,
                    &job.destination.prefix,
                    &obj.key,
                ) {
                    Ok(dest_key) => self.copy_small(ctx, obj, &dest_key, true).await,
                    Err(e) => Err(S3Fail::Permanent(e)),
                };
                let result = match copied {
                    Ok(()) => (ObjectStatus::Processed, None),
                    Err(e) => {
                        let why = explain(e);
                        tracing::warn!(run_id = %ctx.run_id, object = %obj.key, error = %why, "object failed");
                        (ObjectStatus::Failed, Some(why))
                    }
                };
                (i, result)
            })
            .buffer_unordered(job.concurrency.max(1) as usize)
            .collect::<Vec<(usize, (ObjectStatus, Option<String>))>>();
        let mut results = self.leased(&holds, owner, copies).await;
        results.sort_unstable_by_key(|(i, _)| *i);
        let results: Vec<_> = results.into_iter().map(|(_, r)| r).collect();
        let now = now_rfc3339();
        let mut sums: std::collections::BTreeMap<&'static str, i64> = Default::default();
        let mut ended = Vec::with_capacity(started.len());
        for ((key, meta, rec, version), (status, error)) in started.into_iter().zip(&results) {
            let rec = rec.end(*status, error.clone(), &now)?;
            for (name, n) in rec.count_deltas() {
                *sums.entry(name).or_default() += n as i64;
            }
            ended.push((key, meta, rec, version + 1));
        }
        let counters = sums.into_iter().fold(Patch::new(), |p, (name, n)| {
            p.add(&format!("counts.{name}"), n)
        });
        if !self
            .store
            .replace_many_counted(&ended, &ctx.run_key(), Some(&counters))
            .await?
        {
            // A record moved since the start (a delivery took it over after the lease lapsed; lease
            // renewals do not move it): end them one by one, where a second end is refused, so
            // nothing counts twice.
            tracing::info!(run_id = %ctx.run_id, objects = objects.len(), "a group's records moved: ending them one by one");
            drop(claims);
            for (obj, (status, error)) in objects.iter().zip(results) {
                self.end_object(ctx, &obj.key, status, error, false).await?;
            }
        }
        Ok(true)
    }

    /// Runs `work` while renewing the leases `holds` (record key, slot) of `owner`. A renewal that
    /// finds the lease gone (the object ended, or the lease lapsed and another delivery took it) stops
    /// renewing that one; the work goes on, since what it writes is conditional anyway.
    async fn leased<T>(
        &self,
        holds: &[(Key, u64)],
        owner: &str,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let renew = async {
            let mut live = vec![true; holds.len()];
            loop {
                tokio::time::sleep(LEASE_RENEW).await;
                let until = unix_ms() + LEASE_TTL_MS;
                let renewed = futures::future::join_all(
                    holds
                        .iter()
                        .zip(&live)
                        .filter(|(_, live)| **live)
                        .map(|((key, slot), _)| self.renew(key, *slot, owner, until)),
                )
                .await;
                let mut renewed = renewed.into_iter();
                for l in live.iter_mut().filter(|l| **l) {
                    *l = renewed.next().unwrap_or(false);
                }
            }
        };
        tokio::select! {
            out = work => out,
            _ = renew => unreachable!("lease renewals never end"),
        }
    }

    /// Moves the end of `owner`'s lease on `slot` to `until_ms`; `false` once it is not `owner`'s.
    async fn renew(&self, key: &Key, slot: u64, owner: &str, until_ms: u64) -> bool {
        // Without moving the record's version: a group's one-transaction end (conditioned on the
        // versions it started) must not fail because its own leases were renewed meanwhile.
        let patch = Patch::new()
            .set(&format!("leases.{slot}.until_ms"), &until_ms)
            .and_then(|p| p.require_eq(&format!("leases.{slot}.owner"), &owner))
            .map(Patch::keep_version);
        match patch {
            Ok(p) => match self.store.patch(key, &p).await {
                Ok(held) => held,
                Err(e) => {
                    // Not fatal: the next renewal tries again within the lease's lifetime.
                    tracing::debug!(error = %e, "lease renewal failed");
                    true
                }
            },
            Err(_) => false,
        }
    }

    /// Lets `owner`'s lease on `slot` go, so the next delivery of that slot need not wait it out.
    async fn release(&self, key: &Key, slot: u64, owner: &str) {
        let _ = self.renew(key, slot, owner, 0).await;
    }

    /// Another delivery holds the object's slot until `until_ms`: send this delivery's work again for
    /// when that lease ends, and acknowledge this one.
    async fn come_back(
        &self,
        ctx: &Ctx,
        obj: ObjectRef,
        range: Option<(u64, u64)>,
        until_ms: u64,
        owner: &str,
    ) -> anyhow::Result<()> {
        let wait = until_ms.saturating_sub(unix_ms()).div_ceil(1000).max(1);
        let (job_id, run_id) = (ctx.job.job_id.clone(), ctx.run_id.clone());
        let key = obj.key.clone();
        let message = match range {
            Some((first, last)) => SyncMessage::CopyParts {
                job_id,
                run_id,
                object: obj,
                first,
                last,
                hops: 0,
                lease: Some(owner.to_string()),
            },
            None => SyncMessage::CopyObjects {
                job_id,
                run_id,
                objects: vec![obj],
                hops: 0,
                lease: Some(owner.to_string()),
            },
        };
        self.queue.send_delayed(&message, wait as i32).await?;
        tracing::info!(run_id = %ctx.run_id, object = %key, wait_secs = wait, "object busy in another delivery; its message comes back when the lease ends");
        Ok(())
    }

    /// `Some(status)` when the object is done; `None` while other part ranges are still going.
    async fn copy_body(
        &self,
        ctx: &Ctx,
        rec: &ObjectRecord,
        obj: &ObjectRef,
        range: Option<(u64, u64)>,
        prepaid: bool,
    ) -> Result<Option<ObjectStatus>, Stop> {
        let job = &ctx.job;
        if obj.size == 0 {
            return Ok(Some(ObjectStatus::Skipped));
        }
        let dest_key = sync::destination_key(
            &job.connector_config.prefix,
            &job.destination.prefix,
            &obj.key,
        )
        .map_err(S3Fail::Permanent)?;
        let fresh_start = range.is_none() && rec.upload_id.is_none();
        if fresh_start && matches!(job.action, Action::Delta | Action::Diff) {
            let key = ctx.object_key(&obj.key);
            let dest = self.head_dest(ctx, &dest_key).await?;
            if sync::unchanged(&obj.meta(), dest.as_ref()) {
                // Unchanged since this run's own copy (a duplicate delivery raced it), or since before
                // the run: the record says which, read after the HEAD that saw the match.
                let mine = match self.store.get::<ObjectRecord>(&key).await {
                    Ok(r) => r.is_some_and(|r| r.value.copy_started),
                    Err(e) => return Err(Stop::Store(e.into())),
                };
                return Ok(Some(if mine {
                    ObjectStatus::Processed
                } else {
                    ObjectStatus::Skipped
                }));
            }
            let now = now_rfc3339();
            match self
                .store
                .transition(
                    &key,
                    |_: &ObjectRecord| Meta::default(),
                    |r: ObjectRecord| r.start_copy(&now),
                )
                .await
            {
                Ok(_) => {}
                Err(StoreError::Conflict(_)) => return Ok(None),
                Err(e) => return Err(Stop::Store(e.into())),
            }
        }
        if obj.size <= job.chunk_size {
            self.copy_small(ctx, obj, &dest_key, prepaid).await?;
            return Ok(Some(ObjectStatus::Processed));
        }
        self.copy_multipart(ctx, rec, obj, &dest_key, range).await
    }

    async fn head_dest(&self, ctx: &Ctx, dest_key: &str) -> Result<Option<ObjectMeta>, S3Fail> {
        let r = s3io::retry(ctx.job.max_attempts, "head destination", |_| async {
            self.s3
                .head_object()
                .bucket(&ctx.job.destination.bucket)
                .key(dest_key)
                .send()
                .await
                .map_err(s3io::classify)
        })
        .await;
        match r {
            Ok(h) => Ok(Some(ObjectMeta {
                size: h.content_length.unwrap_or(0).max(0) as u64,
                etag: h.e_tag.clone(),
                last_modified: h
                    .last_modified
                    .and_then(|d| d.fmt(DateTimeFormat::DateTime).ok()),
                source_etag: h
                    .metadata
                    .as_ref()
                    .and_then(|m| m.get(SOURCE_ETAG_META).cloned()),
            })),
            Err(S3Fail::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Counts `bytes` as requested from the source, before the request (a crash mid-request still
    /// shows what it cost).
    async fn fetching(&self, ctx: &Ctx, obj: &ObjectRef, bytes: u64) -> Result<(), S3Fail> {
        self.store
            .patch(
                &ctx.object_key(&obj.key),
                &Patch::new().add("bytes_fetched", bytes as i64),
            )
            .await
            .map_err(store_fail)?;
        Ok(())
    }

    /// `prepaid`: the first attempt's bytes were counted when the attempt started.
    async fn copy_small(
        &self,
        ctx: &Ctx,
        obj: &ObjectRef,
        dest_key: &str,
        prepaid: bool,
    ) -> Result<(), S3Fail> {
        let job = &ctx.job;
        let src = &job.connector_config;
        s3io::retry(job.max_attempts, "copy", |attempt| async move {
            if attempt > 0 || !prepaid {
                self.fetching(ctx, obj, obj.size).await?;
            }
            if !src.is_foreign() {
                let out = self
                    .s3
                    .copy_object()
                    .copy_source(s3io::copy_source(&src.bucket_name, &obj.key))
                    .set_copy_source_if_match(obj.etag.clone())
                    .bucket(&job.destination.bucket)
                    .key(dest_key)
                    .send()
                    .await
                    .map_err(s3io::classify)?;
                let got = out.copy_object_result.and_then(|r| r.e_tag);
                return match (&obj.etag, got) {
                    (Some(want), Some(got)) if s3io::is_plain_md5(want) => {
                        if s3io::bare(want) != s3io::bare(&got) {
                            Err(S3Fail::Transient(format!(
                                "copy verification failed: ETag {got} instead of {want}"
                            )))
                        } else {
                            // The same MD5 as the listed source: the same bytes, so the same size.
                            Ok(())
                        }
                    }
                    _ => self.verify_size(ctx, dest_key, obj.size).await,
                };
            }
            let got = ctx
                .src
                .get_object()
                .bucket(&src.bucket_name)
                .key(&obj.key)
                .set_if_match(obj.etag.clone())
                .send()
                .await
                .map_err(s3io::classify)?;
            let carried = carried!(got, obj);
            let body = got
                .body
                .collect()
                .await
                .map_err(|e| S3Fail::Transient(format!("reading the source: {e}")))?
                .into_bytes();
            // With a plain-MD5 source ETag the body is not hashed here: it goes with that MD5 as
            // Content-MD5 (the store refuses a body that does not match) and the ETag the store
            // answers must equal it.
            let md5 = match obj.etag.as_deref().and_then(s3io::etag_md5) {
                Some(m) if body.len() as u64 == obj.size => m,
                _ => self.check_body(obj, obj.size, &body)?,
            };
            let put = carry!(self.s3.put_object(), &carried)
                .bucket(&job.destination.bucket)
                .key(dest_key)
                .content_md5(md5.base64)
                .body(ByteStream::from(body))
                .customize()
                .disable_payload_signing()
                .send()
                .await
                .map_err(s3io::classify)?;
            check_etag("put", put.e_tag.as_deref(), &md5.hex)
        })
        .await
    }

    /// A downloaded body has the expected length and, for a whole object with a plain-MD5 ETag, that
    /// MD5; returns its MD5.
    fn check_body(&self, obj: &ObjectRef, len: u64, body: &[u8]) -> Result<s3io::BodyMd5, S3Fail> {
        if body.len() as u64 != len {
            return Err(S3Fail::Transient(format!(
                "short read: {} of {len} bytes",
                body.len()
            )));
        }
        let md5 = s3io::body_md5(body);
        if len == obj.size
            && let Some(e) = obj.etag.as_deref().filter(|e| s3io::is_plain_md5(e))
            && s3io::bare(e) != md5.hex
        {
            return Err(S3Fail::Transient(format!(
                "read verification failed: MD5 {}, source ETag {e}",
                md5.hex
            )));
        }
        Ok(md5)
    }

    async fn verify_size(&self, ctx: &Ctx, dest_key: &str, size: u64) -> Result<(), S3Fail> {
        let got = self
            .head_dest(ctx, dest_key)
            .await?
            .ok_or_else(|| S3Fail::Transient("the copy is not at the destination".into()))?;
        if got.size != size {
            return Err(S3Fail::Permanent(format!(
                "verification failed: {} bytes at the destination, {size} at the source",
                got.size
            )));
        }
        Ok(())
    }

    async fn copy_multipart(
        &self,
        ctx: &Ctx,
        rec: &ObjectRecord,
        obj: &ObjectRef,
        dest_key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<ObjectStatus>, Stop> {
        let (upload_id, part_size) = self.ensure_upload(ctx, rec, obj, dest_key).await?;
        let count = sync::part_count(obj.size, part_size);
        let (first, last) = match range {
            Some((f, l)) => (f.max(1), l.min(count)),
            None if count > PARTS_PER_MESSAGE => {
                let ranges: Vec<SyncMessage> = (1..=count)
                    .step_by(PARTS_PER_MESSAGE as usize)
                    .map(|f| SyncMessage::CopyParts {
                        job_id: ctx.job.job_id.clone(),
                        run_id: ctx.run_id.clone(),
                        object: obj.clone(),
                        first: f,
                        last: (f + PARTS_PER_MESSAGE - 1).min(count),
                        hops: 0,
                        lease: None,
                    })
                    .collect();
                self.queue
                    .send_all(&ranges)
                    .await
                    .map_err(anyhow::Error::from)?;
                return Ok(None);
            }
            None => (1, count),
        };
        let current = self.record(ctx, obj).await?;
        let missing = current.missing_parts(first, last);
        futures::stream::iter(missing)
            .map(|n| self.copy_part(ctx, obj, dest_key, &upload_id, part_size, n))
            .buffer_unordered(ctx.job.concurrency.max(1) as usize)
            .try_collect::<Vec<()>>()
            .await?;
        let current = self.record(ctx, obj).await?;
        if !current.missing_parts(1, count).is_empty() {
            return Ok(None);
        }
        self.complete(ctx, &current, obj, dest_key, &upload_id, count)
            .await?;
        Ok(Some(ObjectStatus::Processed))
    }

    async fn record(&self, ctx: &Ctx, obj: &ObjectRef) -> Result<ObjectRecord, Stop> {
        Ok(self
            .store
            .get::<ObjectRecord>(&ctx.object_key(&obj.key))
            .await?
            .ok_or_else(|| anyhow::anyhow!("object record vanished"))?
            .value)
    }

    /// The object's multipart upload: the checkpointed one, or a new one recorded under a condition
    /// (a concurrent duplicate that loses aborts its own and uses the winner's).
    async fn ensure_upload(
        &self,
        ctx: &Ctx,
        rec: &ObjectRecord,
        obj: &ObjectRef,
        dest_key: &str,
    ) -> Result<(String, u64), Stop> {
        if let Some(id) = &rec.upload_id {
            return Ok((id.clone(), rec.part_size));
        }
        let job = &ctx.job;
        let head = s3io::retry(job.max_attempts, "head source", |_| async {
            ctx.src
                .head_object()
                .bucket(&job.connector_config.bucket_name)
                .key(&obj.key)
                .set_if_match(obj.etag.clone())
                .send()
                .await
                .map_err(s3io::classify)
        })
        .await?;
        let carried = carried!(head, obj);
        let created = s3io::retry(job.max_attempts, "create multipart upload", |_| async {
            carry!(self.s3.create_multipart_upload(), &carried)
                .bucket(&job.destination.bucket)
                .key(dest_key)
                .send()
                .await
                .map_err(s3io::classify)
        })
        .await?;
        let id = created
            .upload_id
            .ok_or_else(|| S3Fail::Permanent("the store returned no upload id".into()))?;
        let part_size = sync::part_size(obj.size, job.chunk_size);
        let won = self
            .store
            .patch(
                &ctx.object_key(&obj.key),
                &Patch::new()
                    .set("upload_id", &id)?
                    .set("part_size", &part_size)?
                    .require_missing("upload_id"),
            )
            .await?;
        if won {
            return Ok((id, part_size));
        }
        let _ = self
            .s3
            .abort_multipart_upload()
            .bucket(&job.destination.bucket)
            .key(dest_key)
            .upload_id(&id)
            .send()
            .await;
        let winner = self.record(ctx, obj).await?;
        match winner.upload_id {
            Some(w) => Ok((w, winner.part_size)),
            None => Err(Stop::Store(anyhow::anyhow!(
                "lost the upload race but no upload is recorded"
            ))),
        }
    }

    /// Copies part `n` and checkpoints it.
    async fn copy_part(
        &self,
        ctx: &Ctx,
        obj: &ObjectRef,
        dest_key: &str,
        upload_id: &str,
        part_size: u64,
        n: u64,
    ) -> Result<(), Stop> {
        // A duplicate message in this process may be on the same part: one copies it, and either one
        // re-reads the checkpoint first, so a part done meanwhile is not fetched again.
        let Some(_part) = self.claim(format!("{}\0{}\0part {n}", ctx.run_id, obj.key)) else {
            return Ok(());
        };
        let _permit = ctx
            .limits
            .parts
            .acquire()
            .await
            .map_err(anyhow::Error::from)?;
        if self
            .record(ctx, obj)
            .await?
            .parts
            .contains_key(&n.to_string())
        {
            return Ok(());
        }
        let job = &ctx.job;
        let src = &job.connector_config;
        let (start, end) = sync::part_range(obj.size, part_size, n);
        let len = end - start + 1;
        let etag = s3io::retry(job.max_attempts, "copy part", |_| async {
            self.fetching(ctx, obj, len).await?;
            if !src.is_foreign() {
                let out = self
                    .s3
                    .upload_part_copy()
                    .bucket(&job.destination.bucket)
                    .key(dest_key)
                    .upload_id(upload_id)
                    .part_number(n as i32)
                    .copy_source(s3io::copy_source(&src.bucket_name, &obj.key))
                    .copy_source_range(format!("bytes={start}-{end}"))
                    .set_copy_source_if_match(obj.etag.clone())
                    .send()
                    .await
                    .map_err(s3io::classify)?;
                return out
                    .copy_part_result
                    .and_then(|r| r.e_tag)
                    .ok_or_else(|| S3Fail::Transient("UploadPartCopy returned no ETag".into()));
            }
            let got = ctx
                .src
                .get_object()
                .bucket(&src.bucket_name)
                .key(&obj.key)
                .range(format!("bytes={start}-{end}"))
                .set_if_match(obj.etag.clone())
                .send()
                .await
                .map_err(s3io::classify)?;
            let body = got
                .body
                .collect()
                .await
                .map_err(|e| S3Fail::Transient(format!("reading the source: {e}")))?
                .into_bytes();
            let md5 = self.check_body(obj, len, &body)?;
            let out = self
                .s3
                .upload_part()
                .bucket(&job.destination.bucket)
                .key(dest_key)
                .upload_id(upload_id)
                .part_number(n as i32)
                .content_md5(md5.base64)
                .body(ByteStream::from(body))
                .customize()
                .disable_payload_signing()
                .send()
                .await
                .map_err(s3io::classify)?;
            check_etag("upload part", out.e_tag.as_deref(), &md5.hex)?;
            Ok(out.e_tag.unwrap_or(md5.hex))
        })
        .await?;
        // Conditional on the same upload and on the part not being recorded yet, so a duplicate never
        // moves `last_position` twice.
        self.store
            .patch(
                &ctx.object_key(&obj.key),
                &Patch::new()
                    .set(&format!("parts.{n}"), &etag)?
                    .set("idle_attempts", &0u32)?
                    .set("updated_at", &now_rfc3339())?
                    .add("last_position", len as i64)
                    .require_eq("upload_id", &upload_id)?
                    .require_missing(&format!("parts.{n}")),
            )
            .await?;
        Ok(())
    }

    async fn complete(
        &self,
        ctx: &Ctx,
        rec: &ObjectRecord,
        obj: &ObjectRef,
        dest_key: &str,
        upload_id: &str,
        count: u64,
    ) -> Result<(), Stop> {
        let job = &ctx.job;
        let etags: Vec<&str> = (1..=count)
            .filter_map(|n| rec.parts.get(&n.to_string()).map(String::as_str))
            .collect();
        let parts: Vec<CompletedPart> = etags
            .iter()
            .enumerate()
            .map(|(i, e)| {
                CompletedPart::builder()
                    .part_number(i as i32 + 1)
                    .e_tag(*e)
                    .build()
            })
            .collect();
        let expected = s3io::multipart_etag(etags.iter().copied());
        let done = s3io::retry(job.max_attempts, "complete multipart upload", |_| async {
            self.s3
                .complete_multipart_upload()
                .bucket(&job.destination.bucket)
                .key(dest_key)
                .upload_id(upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts.clone()))
                        .build(),
                )
                .send()
                .await
                .map_err(s3io::classify)
        })
        .await;
        match done {
            Ok(_) => {}
            // A concurrent duplicate completed it first: fine if what is there is this copy.
            Err(S3Fail::NoSuchUpload) => {}
            Err(e) => return Err(e.into()),
        }
        let got = self
            .head_dest(ctx, dest_key)
            .await?
            .ok_or(S3Fail::NoSuchUpload)?;
        if got.size != obj.size {
            return Err(S3Fail::Permanent(format!(
                "verification failed: {} bytes at the destination, {} at the source",
                got.size, obj.size
            ))
            .into());
        }
        if let (Some(want), Some(have)) = (&expected, &got.etag)
            && s3io::bare(have) != want
        {
            return Err(S3Fail::Permanent(format!(
                "verification failed: destination ETag {have}, expected {want}"
            ))
            .into());
        }
        Ok(())
    }
}

fn check_etag(what: &str, got: Option<&str>, md5: &str) -> Result<(), S3Fail> {
    match got {
        Some(e) if s3io::is_plain_md5(e) && s3io::bare(e) != md5 => Err(S3Fail::Transient(
            format!("{what} verification failed: ETag {e}, sent MD5 {md5}"),
        )),
        _ => Ok(()),
    }
}

/// The message an object failure is recorded with.
fn explain(e: S3Fail) -> String {
    match e {
        S3Fail::Changed => {
            "the source object changed during the copy; the next run copies the new version".into()
        }
        S3Fail::NotFound(_) => "the source object no longer exists".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_carries_the_content_headers_and_metadata_with_the_source_etag_as_ferrys_entry() {
        let obj = ObjectRef {
            key: "a/b.json".into(),
            size: 10,
            etag: Some("\"0123456789abcdef0123456789abcdef\"".into()),
            last_modified: None,
        };
        let meta = HashMap::from([
            ("owner".to_string(), "team_a".to_string()),
            (SOURCE_ETAG_META.to_string(), "stale".to_string()),
        ]);
        let c = Carried::new(
            &obj,
            [
                Some("application/json"),
                Some("max-age=60"),
                None,
                Some("gzip"),
                Some("fr"),
            ],
            Some(&meta),
        );
        assert_eq!(c.content_type.as_deref(), Some("application/json"));
        assert_eq!(c.cache_control.as_deref(), Some("max-age=60"));
        assert_eq!(c.content_disposition, None);
        assert_eq!(c.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(c.content_language.as_deref(), Some("fr"));
        assert_eq!(c.metadata["owner"], "team_a");
        assert_eq!(
            c.metadata[SOURCE_ETAG_META], "0123456789abcdef0123456789abcdef",
            "a copy of a copy names its own source"
        );
        let bare = Carried::new(&ObjectRef { etag: None, ..obj }, [None; 5], None);
        assert_eq!(bare, Carried::default(), "nothing to carry, no ferry entry");
    }
}
