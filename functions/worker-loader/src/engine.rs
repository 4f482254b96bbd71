//! The tick engine (ARCHITECTURE §5): a delivery of tick `n` takes a lease on it with a conditional
//! write, works one bounded slice (fill or trim in large batches, then the CRUD mix), saves progress and
//! moves the loader to tick `n + 1`, and sends tick `n + 1` only while the loader is active. A duplicate
//! delivery is a no-op; a stop is seen between batches; a stopped loader gets no more messages. Decisions
//! are the pure rules of `ferry_shared::domain::loader`; this module does the I/O. The S3 loader's
//! slice is in `s3loader`.

#[cfg(feature = "files")]
use super::s3loader::S3Conn;
use ferry_shared::domain::loader::{
    self, FillStep, Kind, Loader, Phase, Progress, SliceOutcome, TickAction,
};
use ferry_shared::domain::now_rfc3339;
use ferry_shared::keys::{IndexKey, Key};
use ferry_shared::loaders::allow::AllowList;
#[cfg(feature = "databases")]
use ferry_shared::loaders::dynamo::{self, Dynamo};
#[cfg(feature = "databases")]
use ferry_shared::loaders::mongo::{self, Mongo};
#[cfg(feature = "databases")]
use ferry_shared::loaders::mysql::{self, Column, Mysql};
#[cfg(feature = "databases")]
use ferry_shared::loaders::ops::{TargetFailure, TargetOp, TargetReply, TargetRequest};
#[cfg(feature = "files")]
use ferry_shared::loaders::s3::{self as s3target, S3Target};
use ferry_shared::loaders::{Creds, TargetError, update_targets};
use ferry_shared::messages::LoaderMessage;
use ferry_shared::queue::Queue;
use ferry_shared::store::{Meta, Store, StoreError, Versioned};
use ferry_shared::worker::{RecordInfo, WorkError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Items per fill step on DynamoDB, at most (split into parallel batches by the adapter; fewer large
/// ones, `Dynamo::fill_step`; MongoDB's step is `Mongo::fill_step`, by server and document size); a
/// stop or a PATCH is seen between steps.
const FILL_BATCH: u64 = 4000;
/// Rows per fill step on MySQL: its statements run four at a time and each step ends when the slowest
/// does, so short steps leave the server idle (300k rows: 4,000 a step 107k rows/s, 20,000: 132k,
/// 50,000: 142k, bench/RESULTS.md); 50,000 rows take about 0.4 s.
const MYSQL_FILL_BATCH: u64 = 50_000;
/// Operations per CRUD batch without a rate limit.
pub(crate) const CRUD_BATCH: u64 = 200;
/// How often a slice re-reads the loader for a stop or a PATCH.
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(300);

pub struct Engine {
    pub store: Store,
    pub queue: Queue,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub aws: aws_config::SdkConfig,
    pub allow: AllowList,
    pub slice: Duration,
    /// Connections kept across invocations of a warm function, per loader.
    pub conns: Mutex<HashMap<String, Arc<Conn>>>,
}

/// A loader's open target. Which kinds a build serves is chosen by the compiling crate's features:
/// `databases` (the worker-loader function) or `files` (worker-loader-s3); see worker.rs.
pub enum Conn {
    #[cfg(feature = "databases")]
    Mongo(Mongo),
    #[cfg(feature = "databases")]
    Mysql(Mysql, Vec<Column>),
    #[cfg(feature = "databases")]
    Dynamo(Dynamo),
    #[cfg(feature = "files")]
    S3(S3Conn),
}

fn retry(e: impl Into<anyhow::Error>) -> WorkError {
    WorkError::retryable(e)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Every write keeps the loader in the listing index (a replace without it would drop it).
fn indexed(l: &Loader) -> Meta {
    IndexKey::loader(&l.created_at, &l.loader_id).into()
}

/// A tick of a kind this build does not serve: the loader was sent to the wrong worker's queue.
#[allow(dead_code)]
fn not_served(kind: Kind) -> TargetError {
    TargetError::Failed(format!(
        "this worker does not serve {} loaders (worker-loader serves mongo, mysql and dynamo; worker-loader-s3 serves s3)",
        kind.as_str()
    ))
}

/// The S3 loader works folder by folder in `s3loader`, not through the document operations.
#[cfg(feature = "files")]
fn s3_only() -> TargetError {
    TargetError::Failed("S3 targets are worked by the S3 slice".into())
}

impl Conn {
    async fn count(&self) -> Result<u64, TargetError> {
        match self {
            #[cfg(feature = "databases")]
            Conn::Mongo(m) => m.count().await,
            #[cfg(feature = "databases")]
            Conn::Mysql(m, _) => m.count().await,
            #[cfg(feature = "databases")]
            Conn::Dynamo(d) => d.count().await,
            #[cfg(feature = "files")]
            Conn::S3(_) => Err(s3_only()),
        }
    }

    async fn seq_bounds(&self) -> Result<Option<(u64, u64)>, TargetError> {
        match self {
            #[cfg(feature = "databases")]
            Conn::Mongo(m) => m.seq_bounds().await,
            #[cfg(feature = "databases")]
            Conn::Mysql(m, cols) => m.seq_bounds(cols).await,
            #[cfg(feature = "databases")]
            Conn::Dynamo(_) => Ok(None),
            #[cfg(feature = "files")]
            Conn::S3(_) => Err(s3_only()),
        }
    }

    /// Documents per fill step for documents of `size` bytes.
    fn fill_batch(&self, size: u32) -> u64 {
        match self {
            #[cfg(feature = "databases")]
            Conn::Mongo(m) => m.fill_step(size as usize),
            #[cfg(feature = "databases")]
            Conn::Mysql(..) => MYSQL_FILL_BATCH,
            #[cfg(feature = "databases")]
            Conn::Dynamo(_) => Dynamo::fill_step(FILL_BATCH, size as usize),
            #[cfg(feature = "files")]
            Conn::S3(_) => FILL_BATCH,
        }
    }

    async fn insert(&self, l: &Loader, from: u64, n: u64) -> Result<u64, TargetError> {
        let size = l.spec.document_size as usize;
        match self {
            #[cfg(feature = "databases")]
            Conn::Mongo(m) => m.insert(&l.loader_id, from..from + n, size).await,
            #[cfg(feature = "databases")]
            Conn::Mysql(m, cols) => {
                m.insert(
                    cols,
                    &l.loader_id,
                    from..from + n,
                    size,
                    mysql::FILL_PARALLEL,
                )
                .await
            }
            #[cfg(feature = "databases")]
            Conn::Dynamo(d) => d.insert(&l.loader_id, from..from + n, size).await,
            #[cfg(feature = "files")]
            Conn::S3(_) => Err(s3_only()),
        }
    }

    async fn update(&self, l: &Loader, seqs: &[u64], mutation: u64) -> Result<u64, TargetError> {
        match self {
            #[cfg(feature = "databases")]
            Conn::Mongo(m) => m.update(seqs, mutation).await,
            #[cfg(feature = "databases")]
            Conn::Mysql(m, cols) => m.update(cols, seqs, mutation).await,
            #[cfg(feature = "databases")]
            Conn::Dynamo(d) => d.update(&l.loader_id, seqs, mutation).await,
            #[cfg(feature = "files")]
            Conn::S3(_) => Err(s3_only()),
        }
    }

    /// Deletes `n` of the oldest; returns (deleted, the new lowest sequence that may exist).
    async fn delete(&self, l: &Loader, p: &Progress, n: u64) -> Result<(u64, u64), TargetError> {
        let low = |max: Option<u64>| max.map_or(p.low_seq, |m| p.low_seq.max(m + 1));
        match self {
            #[cfg(feature = "databases")]
            Conn::Mongo(m) => m.delete_oldest(n).await.map(|(d, max)| (d, low(max))),
            #[cfg(feature = "databases")]
            Conn::Mysql(m, cols) => m
                .delete_oldest(cols, n, p.low_seq)
                .await
                .map(|(d, max)| (d, low(max))),
            #[cfg(feature = "databases")]
            Conn::Dynamo(d) if p.low_seq < p.next_seq => {
                let n = n.min(p.next_seq - p.low_seq);
                let from = p.low_seq;
                d.delete_seqs(&l.loader_id, from..from + n)
                    .await
                    .map(|deleted| (deleted, from + n))
            }
            #[cfg(feature = "databases")]
            Conn::Dynamo(d) => d.delete_any(n).await.map(|deleted| (deleted, p.low_seq)),
            #[cfg(feature = "files")]
            Conn::S3(_) => Err(s3_only()),
        }
    }
}

impl Engine {
    /// Every host of a MongoDB target's connection string must pass this function's allow-list.
    #[cfg(feature = "databases")]
    async fn allow_mongo(&self, t: &loader::Target, creds: &Creds) -> Result<(), TargetError> {
        for h in mongo::hosts_of(&mongo::url(t, creds)?) {
            self.allow
                .check(&h)
                .await
                .map_err(|e| TargetError::Refused(e.to_string()))?;
        }
        Ok(())
    }

    /// A direct invocation from api-loaders (`ferry_shared::loaders::ops`): one operation on a MongoDB
    /// target, the host checked against this function's own allow-list as for a load.
    #[cfg(feature = "databases")]
    pub async fn target_op(&self, r: TargetRequest) -> TargetReply {
        tracing::info!(op = ?r.target_op, kind = r.kind.as_str(), database = %r.database, "target op");
        let result = self.run_target_op(&r).await;
        if let Err(e) = &result {
            tracing::info!(op = ?r.target_op, connecting = e.connecting, error = %e.error, "target op refused or failed");
        }
        result.into()
    }

    #[cfg(feature = "databases")]
    async fn run_target_op(&self, r: &TargetRequest) -> Result<Option<u64>, TargetFailure> {
        let connecting = |error| TargetFailure {
            connecting: true,
            error,
        };
        if r.kind != Kind::Mongo {
            return Err(connecting(TargetError::Failed(format!(
                "worker-loader does not do direct operations on {} targets",
                r.kind.as_str()
            ))));
        }
        self.allow_mongo(&r.target, &r.creds)
            .await
            .map_err(connecting)?;
        let m = Mongo::connect(&r.target, &r.creds, &r.database, &r.collection)
            .await
            .map_err(connecting)?;
        let done = match r.target_op {
            TargetOp::Check => Ok(None),
            TargetOp::Count => m.count().await.map(Some),
            TargetOp::DropDatabase => m.drop_database().await.map(|()| None),
            TargetOp::DropCollection => m.drop_collection().await.map(|()| None),
        };
        done.map_err(|error| TargetFailure {
            connecting: false,
            error,
        })
    }

    pub async fn handle(&self, message: LoaderMessage, info: RecordInfo) -> Result<(), WorkError> {
        let LoaderMessage::Tick { loader_id, tick } = message;
        let key = Key::loader(&loader_id);
        let Some(found) = self.store.get::<Loader>(&key).await.map_err(retry)? else {
            return Err(WorkError::permanent(anyhow::anyhow!(
                "loader {loader_id} does not exist (tick {tick})"
            )));
        };
        let action = found.value.on_tick(tick, now_ms());
        tracing::debug!(%loader_id, tick, ?action, delivery = info.receive_count, "tick");
        match action {
            TickAction::Duplicate => Ok(()),
            TickAction::Busy { until_ms } => {
                // Another delivery works this tick (a duplicate, or a retry of an invocation that died
                // mid-slice). Put the tick back to be looked at once that lease ends, instead of failing
                // it: failures count towards the queue's maxReceiveCount, and a loader whose only tick
                // is dead-lettered would never move again.
                let delay = ((until_ms - now_ms()) / 1000 + 1).clamp(1, 900) as i32;
                self.queue
                    .send_delayed(
                        &LoaderMessage::Tick {
                            loader_id: loader_id.clone(),
                            tick,
                        },
                        delay,
                    )
                    .await
                    .map_err(retry)?;
                tracing::info!(%loader_id, tick, delay, "tick held by another delivery; put back");
                Ok(())
            }
            TickAction::SendNext => self.send_next(&loader_id, tick + 1, 0).await,
            TickAction::Stop => {
                match self
                    .store
                    .transition(&key, indexed, |l: Loader| {
                        l.finish_stop(tick, now_ms(), &now_rfc3339())
                    })
                    .await
                {
                    Ok(_) => {
                        tracing::info!(%loader_id, tick, "loader stopped");
                        self.forget(&loader_id);
                        Ok(())
                    }
                    Err(StoreError::Conflict(_)) => Ok(()),
                    Err(e) => Err(retry(e)),
                }
            }
            TickAction::Work => self.work_tick(&loader_id, tick).await,
        }
    }

    async fn work_tick(&self, loader_id: &str, tick: u64) -> Result<(), WorkError> {
        let key = Key::loader(loader_id);
        let lease_ms = (self.slice.as_millis() as i64) * 3 + 30_000;
        let claimed: Versioned<Loader> = match self
            .store
            .transition(&key, indexed, |l: Loader| l.claim(tick, now_ms(), lease_ms))
            .await
        {
            Ok(v) => v,
            // Another delivery won the claim (or the loader moved on): this one is a duplicate.
            Err(StoreError::Conflict(_)) => return Ok(()),
            Err(e) => return Err(retry(e)),
        };
        let outcome = self.slice(&claimed.value).await;
        if let Some(e) = &outcome.error {
            tracing::warn!(%loader_id, tick, error = %e, "slice failed");
            self.forget(loader_id);
        }
        let errors = outcome.progress.consecutive_errors + u32::from(outcome.error.is_some());
        let saved = match self
            .store
            .transition(&key, indexed, |l: Loader| {
                l.finish_slice(tick, outcome.clone(), &now_rfc3339())
            })
            .await
        {
            Ok(v) => v.value,
            Err(StoreError::Conflict(c)) => {
                tracing::warn!(%loader_id, tick, reason = %c, "slice result not saved: tick taken over");
                // What this container knows of the target (the S3 inventory) is not what was saved.
                self.forget(loader_id);
                return Ok(());
            }
            Err(e) => return Err(retry(e)),
        };
        tracing::info!(
            %loader_id, tick, phase = ?saved.phase, count = saved.progress.count,
            ops_per_sec = saved.progress.ops_per_sec, "slice done"
        );
        if saved.phase.is_active() {
            // After a failed slice, back off (1, 2, 4, 8 s) before the next attempt.
            let delay = if errors > 0 {
                1 << (errors - 1).min(3)
            } else {
                0
            };
            self.send_next(loader_id, tick + 1, delay).await
        } else {
            self.forget(loader_id);
            Ok(())
        }
    }

    async fn send_next(&self, loader_id: &str, tick: u64, delay: i32) -> Result<(), WorkError> {
        self.queue
            .send_delayed(
                &LoaderMessage::Tick {
                    loader_id: loader_id.to_string(),
                    tick,
                },
                delay,
            )
            .await
            .map_err(retry)?;
        match self
            .store
            .transition(&Key::loader(loader_id), indexed, |l: Loader| {
                l.mark_sent(tick)
            })
            .await
        {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(retry(e)),
        }
    }

    fn forget(&self, loader_id: &str) {
        self.conns.lock().unwrap().remove(loader_id);
    }

    async fn creds(&self, l: &Loader) -> Result<Creds, TargetError> {
        let Some(arn) = &l.target.secret_arn else {
            return Ok(Creds::default());
        };
        let raw = ferry_shared::secrets::get_string(&self.secrets, arn)
            .await
            .map_err(|e| TargetError::Failed(e.to_string()))?;
        serde_json::from_str(&raw)
            .map_err(|_| TargetError::Failed("loader secret is not valid".into()))
    }

    async fn connect(&self, l: &Loader) -> Result<Arc<Conn>, TargetError> {
        if let Some(c) = self.conns.lock().unwrap().get(&l.loader_id) {
            return Ok(c.clone());
        }
        let creds = self.creds(l).await?;
        let t = &l.target;
        let db = t.database.as_deref().unwrap_or_default();
        let coll = t.collection.as_deref().unwrap_or_default();
        let conn = match l.kind {
            #[cfg(feature = "databases")]
            Kind::Mongo => {
                self.allow_mongo(t, &creds).await?;
                Conn::Mongo(Mongo::connect(t, &creds, db, coll).await?)
            }
            #[cfg(feature = "databases")]
            Kind::Mysql => {
                self.allow
                    .check(t.host.as_deref().unwrap_or_default())
                    .await
                    .map_err(|e| TargetError::Refused(e.to_string()))?;
                let m = Mysql::connect(t, &creds, db, coll, mysql::POOL).await?;
                let cols = m.columns().await?;
                Conn::Mysql(m, cols)
            }
            #[cfg(feature = "databases")]
            Kind::Dynamo => {
                let client = dynamo::client(&self.aws, t.region.as_deref(), &creds);
                Conn::Dynamo(Dynamo::open(client, coll, true).await?)
            }
            #[cfg(feature = "files")]
            Kind::S3 => {
                if let Some(endpoint) = t.host.as_deref() {
                    let host = s3target::endpoint_host(endpoint).map_err(TargetError::Refused)?;
                    self.allow
                        .check(&host)
                        .await
                        .map_err(|e| TargetError::Refused(e.to_string()))?;
                }
                let client =
                    s3target::client(&self.aws, t.region.as_deref(), t.host.as_deref(), &creds);
                Conn::S3(S3Conn {
                    target: S3Target::new(client),
                    inventory: Default::default(),
                })
            }
            #[cfg(not(feature = "databases"))]
            kind @ (Kind::Mongo | Kind::Mysql | Kind::Dynamo) => return Err(not_served(kind)),
            #[cfg(not(feature = "files"))]
            Kind::S3 => return Err(not_served(Kind::S3)),
        };
        let conn = Arc::new(conn);
        self.conns
            .lock()
            .unwrap()
            .insert(l.loader_id.clone(), conn.clone());
        Ok(conn)
    }

    async fn slice(&self, l: &Loader) -> SliceOutcome {
        let mut progress = l.progress.clone();
        let mut phase = l.phase;
        let error = self
            .work(l, &mut progress, &mut phase)
            .await
            .err()
            .map(|e| e.to_string());
        SliceOutcome {
            progress,
            phase,
            error,
        }
    }

    async fn work(
        &self,
        l: &Loader,
        p: &mut Progress,
        phase: &mut Phase,
    ) -> Result<(), TargetError> {
        let conn = self.connect(l).await?;
        #[cfg(feature = "files")]
        if let Conn::S3(s3) = &*conn {
            return self.work_s3(l, p, phase, s3).await;
        }
        if !p.counted {
            p.count = conn.count().await?;
            if let Some((lo, hi)) = conn.seq_bounds().await? {
                p.next_seq = p.next_seq.max(hi + 1);
                p.low_seq = lo;
            } else if p.count == 0 {
                p.low_seq = p.next_seq;
            }
            p.counted = true;
        }
        if *phase == Phase::Pending {
            *phase = Phase::Loading;
        }
        let start = Instant::now();
        let mut spec = l.spec.clone();
        let mut last_check = Instant::now();
        let mut ops = 0u64;
        let mut rng_state = (now_ms() as u64) ^ l.tick.wrapping_mul(0x9e37_79b9);
        while start.elapsed() < self.slice {
            if last_check.elapsed() >= CHECK_EVERY {
                last_check = Instant::now();
                if let Ok(Some(fresh)) = self.store.get::<Loader>(&Key::loader(&l.loader_id)).await
                {
                    if fresh.value.phase == Phase::Stopping {
                        break;
                    }
                    spec.mix = fresh.value.spec.mix;
                    spec.rate_limit = fresh.value.spec.rate_limit;
                }
            }
            match *phase {
                Phase::Loading => {
                    match loader::fill_step(
                        p.count,
                        spec.target_count,
                        conn.fill_batch(spec.document_size),
                    ) {
                        FillStep::Insert(n) => {
                            let got = conn.insert(l, p.next_seq, n).await?;
                            p.next_seq += n;
                            p.count += got;
                            p.ops.inserted += got;
                            ops += got;
                        }
                        FillStep::Delete(n) => {
                            let (deleted, low) = conn.delete(l, p, n).await?;
                            p.low_seq = low;
                            if deleted == 0 {
                                // The kept count was above what the target holds: count again.
                                p.count = conn.count().await?;
                            } else {
                                p.count = p.count.saturating_sub(deleted);
                            }
                            p.ops.deleted += deleted;
                            ops += deleted;
                        }
                        FillStep::Done => {
                            if spec.crud {
                                *phase = Phase::Crud;
                                p.crud_started_at = Some(now_rfc3339());
                            } else {
                                *phase = Phase::Completed;
                                break;
                            }
                        }
                    }
                }
                Phase::Crud => {
                    if loader::crud_time_up(
                        p.crud_started_at.as_deref(),
                        spec.crud_minutes,
                        &now_rfc3339(),
                    ) {
                        *phase = Phase::Completed;
                        break;
                    }
                    // At most `buffer` ops a batch, so that either kind alone moves the count by no
                    // more than the buffer (see the ordering below).
                    let batch = match spec.rate_limit {
                        Some(r) => (u64::from(r) / 5).clamp(1, CRUD_BATCH),
                        None => CRUD_BATCH,
                    }
                    .min(spec.buffer.max(1));
                    let rolls: Vec<u32> = (0..batch)
                        .map(|_| {
                            rng_state ^= rng_state << 13;
                            rng_state ^= rng_state >> 7;
                            rng_state ^= rng_state << 17;
                            (rng_state >> 32) as u32
                        })
                        .collect();
                    let plan = loader::plan_batch(
                        p.count,
                        spec.target_count,
                        spec.buffer,
                        spec.mix,
                        rolls,
                    );
                    // The count an observer sees stays in the band: at or above the target the
                    // deletes go first (the count dips by at most `batch` <= buffer), below it the
                    // inserts do. The updates run beside the second kind, on rows neither touches
                    // (between the oldest left after the deletes and the newest before the inserts).
                    // Each result is applied before an error is returned, keeping the count exact.
                    let deletes_first = p.count >= spec.target_count;
                    if deletes_first && plan.deleted > 0 {
                        let (deleted, low) = conn.delete(l, p, plan.deleted).await?;
                        p.low_seq = low;
                        p.count = p.count.saturating_sub(deleted);
                        p.ops.deleted += deleted;
                    }
                    if !deletes_first && plan.inserted > 0 {
                        let got = conn.insert(l, p.next_seq, plan.inserted).await?;
                        p.next_seq += plan.inserted;
                        p.count += got;
                        p.ops.inserted += got;
                    }
                    let snapshot = p.clone();
                    let ins_from = p.next_seq;
                    let seqs = if plan.updated > 0 {
                        let low = if deletes_first {
                            p.low_seq
                        } else {
                            p.low_seq.saturating_add(plan.deleted)
                        };
                        let high = if deletes_first { p.next_seq } else { ins_from };
                        update_targets(low.min(high), high, plan.updated, rng_state)
                    } else {
                        Vec::new()
                    };
                    let mutation = p.ops.updated + 1;
                    let (second, updated) = tokio::join!(
                        async {
                            if deletes_first && plan.inserted > 0 {
                                Some(
                                    conn.insert(l, ins_from, plan.inserted)
                                        .await
                                        .map(|got| (got, 0)),
                                )
                            } else if !deletes_first && plan.deleted > 0 {
                                Some(conn.delete(l, &snapshot, plan.deleted).await)
                            } else {
                                None
                            }
                        },
                        async {
                            if plan.updated > 0 {
                                Some(conn.update(l, &seqs, mutation).await)
                            } else {
                                None
                            }
                        },
                    );
                    let mut failed = None;
                    match second {
                        Some(Ok((got, _))) if deletes_first => {
                            p.next_seq += plan.inserted;
                            p.count += got;
                            p.ops.inserted += got;
                        }
                        Some(Ok((deleted, low))) => {
                            p.low_seq = low;
                            p.count = p.count.saturating_sub(deleted);
                            p.ops.deleted += deleted;
                        }
                        Some(Err(e)) => failed = Some(e),
                        None => {}
                    }
                    match updated {
                        Some(Ok(_)) => p.ops.updated += plan.updated,
                        Some(Err(e)) => failed = failed.or(Some(e)),
                        None => {}
                    }
                    if let Some(e) = failed {
                        return Err(e);
                    }
                    ops += plan.total();
                    if let Some(rate) = spec.rate_limit {
                        let due = Duration::from_secs_f64(ops as f64 / f64::from(rate));
                        let elapsed = start.elapsed();
                        if due > elapsed {
                            tokio::time::sleep((due - elapsed).min(self.slice)).await;
                        }
                    }
                }
                _ => break,
            }
        }
        let secs = start.elapsed().as_secs_f64();
        p.ops_per_sec = if secs > 0.0 {
            (ops as f64 / secs * 10.0).round() / 10.0
        } else {
            0.0
        };
        Ok(())
    }
}
