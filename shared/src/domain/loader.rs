//! Loaders: CRUD load generators into MongoDB, MySQL, S3 and DynamoDB (issue #3), and the pure rules the
//! tick engine (worker-loader) and the API (api-loaders) apply with conditional writes.
//!
//! A loader's work is a chain of ticks (ARCHITECTURE §5). `tick` is the number of the next tick to run.
//! A worker holding tick `n` first takes a lease on it ([`Loader::claim`]), works one bounded slice, then
//! saves progress and moves `tick` to `n + 1` ([`Loader::finish_slice`]), and sends tick `n + 1` only if
//! the loader is still active; `sent_tick` records that the send happened, so a redelivered tick `n`
//! whose successor was never sent can repair the chain without ever duplicating it
//! ([`Loader::on_tick`]).

use super::Conflict;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Mongo,
    Mysql,
    S3,
    Dynamo,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Mongo => "mongo",
            Kind::Mysql => "mysql",
            Kind::S3 => "s3",
            Kind::Dynamo => "dynamo",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Created; the first tick counts what the target holds.
    Pending,
    /// Filling (or trimming) to the target count.
    Loading,
    /// The insert/update/delete mix within the buffer.
    Crud,
    /// Stop asked: the running slice finishes its batch, then the loader is stopped.
    Stopping,
    Stopped,
    /// Filled (no CRUD asked), or CRUD ran for `time_for_crud_in_mins`.
    Completed,
    Failed,
}

impl Phase {
    /// Whether ticks still flow for a loader in this phase.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Phase::Pending | Phase::Loading | Phase::Crud | Phase::Stopping
        )
    }
    /// The original server's `status` word.
    pub fn status(self) -> &'static str {
        match self {
            Phase::Pending | Phase::Loading | Phase::Crud => "running",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
            Phase::Completed => "completed",
            Phase::Failed => "failed",
        }
    }
}

/// Where a loader writes. Never holds a secret: `secret_arn` names the Secrets Manager secret with the
/// password / connection string / secret key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Target {
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub username: Option<String>,
    /// Database (mongo, mysql) or table (dynamo).
    #[serde(default)]
    pub database: Option<String>,
    /// Collection (mongo) or table (mysql, dynamo).
    #[serde(default)]
    pub collection: Option<String>,
    #[serde(default)]
    pub buckets: Vec<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub secret_arn: Option<String>,
}

impl Target {
    /// The identity of the target for "one loader per target" (host, port, database, collection,
    /// buckets), case-folded where the servers are case-insensitive.
    pub fn lock_key(&self, kind: Kind) -> String {
        let host = self.host.as_deref().unwrap_or("").to_ascii_lowercase();
        let port = self.port.map(|p| p.to_string()).unwrap_or_default();
        let mut buckets = self.buckets.clone();
        buckets.sort();
        format!(
            "{}|{host}:{port}|{}|{}|{}",
            kind.as_str(),
            self.database.as_deref().unwrap_or(""),
            self.collection.as_deref().unwrap_or(""),
            buckets.join(",")
        )
    }
}

/// Relative weights of the CRUD operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mix {
    pub insert: u32,
    pub update: u32,
    pub delete: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            insert: 1,
            update: 1,
            delete: 1,
        }
    }
}

impl Mix {
    pub fn validate(&self) -> Result<(), String> {
        let total = u64::from(self.insert) + u64::from(self.update) + u64::from(self.delete);
        if total == 0 {
            return Err("at least one of insert, update, delete must be above 0".into());
        }
        if total > 1_000_000 {
            return Err("weights must add up to at most 1000000".into());
        }
        Ok(())
    }
}

/// The S3 loader's layout (the original's fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Layout {
    pub num_buckets: u32,
    pub depth_level: u32,
    pub num_folders_per_level: u32,
    pub num_files_per_level: u32,
    pub file_size: u64,
    pub file_formats: Vec<String>,
    pub min_files: u32,
    pub max_files: u32,
}

impl S3Layout {
    /// Every folder of one bucket, `""` (the bucket root) first: `Depth_{d}_Folder_{k}/` nested to
    /// `depth_level`.
    pub fn folders(&self) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut level = vec![String::new()];
        for d in 1..=self.depth_level {
            let mut next = Vec::new();
            for parent in &level {
                for k in 1..=self.num_folders_per_level {
                    next.push(format!("{parent}Depth_{d}_Folder_{k}/"));
                }
            }
            out.extend(next.iter().cloned());
            level = next;
        }
        out
    }

    /// Files per bucket at the asked layout.
    pub fn files_per_bucket(&self) -> u64 {
        self.folders().len() as u64 * u64::from(self.num_files_per_level)
    }

    /// The extension of file number `n`: cycles through `file_formats`.
    pub fn format_of(&self, n: u64) -> &str {
        let i = (n % self.file_formats.len().max(1) as u64) as usize;
        self.file_formats
            .get(i)
            .map(String::as_str)
            .unwrap_or("json")
    }

    /// The key of file number `n` in `folder`: `{folder}{n}.{ext}`.
    pub fn key(&self, folder: &str, n: u64) -> String {
        format!("{folder}{n}.{}", self.format_of(n))
    }

    /// Which layout file `key` is: (its folder, its number) when it sits directly in one of `folders`
    /// (see [`S3Layout::folders`]) and is named `{n}.{ext}` with `n` written plainly and `ext` the one
    /// file `n` gets. Anything else is not part of the layout.
    pub fn classify<'k>(
        &self,
        folders: &std::collections::HashSet<String>,
        key: &'k str,
    ) -> Option<(&'k str, u64)> {
        let (folder, name) = match key.rfind('/') {
            Some(i) => key.split_at(i + 1),
            None => ("", key),
        };
        if !folders.contains(folder) {
            return None;
        }
        let (digits, ext) = name.split_once('.')?;
        let n: u64 = digits.parse().ok()?;
        (n.to_string() == digits && ext == self.format_of(n)).then_some((folder, n))
    }

    /// Checks the layout's numbers against the limits of one loader (see the README's S3 section).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let range = |field: &'static str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err((field, format!("must be between {lo} and {hi}")))
            }
        };
        range("num_buckets", self.num_buckets.into(), 1, S3_MAX_BUCKETS)?;
        range("depth_level", self.depth_level.into(), 0, 10)?;
        range(
            "num_folders_per_level",
            self.num_folders_per_level.into(),
            1,
            1000,
        )?;
        range(
            "num_files_per_level",
            self.num_files_per_level.into(),
            1,
            S3_MAX_FILES,
        )?;
        range("file_size", self.file_size, 1, S3_MAX_FILE_SIZE)?;
        if self.file_formats.is_empty() {
            return Err(("file_format", "must name at least one format".into()));
        }
        // Folders grow as folders^depth: bound them before enumerating anything.
        let mut folders: u64 = 1;
        let mut level: u64 = 1;
        for _ in 0..self.depth_level {
            level = level.saturating_mul(self.num_folders_per_level.into());
            folders = folders.saturating_add(level);
        }
        if folders > S3_MAX_FOLDERS {
            return Err((
                "depth_level",
                format!(
                    "the layout has {folders} folders per bucket; at most {S3_MAX_FOLDERS} are allowed"
                ),
            ));
        }
        let files = folders
            .saturating_mul(self.num_files_per_level.into())
            .saturating_mul(self.num_buckets.into());
        if files > S3_MAX_FILES {
            return Err((
                "num_files_per_level",
                format!("the layout has {files} files; at most {S3_MAX_FILES} are allowed"),
            ));
        }
        if self.min_files > self.num_files_per_level {
            return Err(("min_files", "must be at most num_files_per_level".into()));
        }
        if self.max_files < self.num_files_per_level {
            return Err(("max_files", "must be at least num_files_per_level".into()));
        }
        if u64::from(self.max_files).saturating_mul(folders * u64::from(self.num_buckets))
            > 2 * S3_MAX_FILES
        {
            return Err((
                "max_files",
                format!("allows more than {} files", 2 * S3_MAX_FILES),
            ));
        }
        Ok(())
    }
}

/// Limits of one S3 loader: buckets (AWS's default account quota is 100), folders per bucket, files
/// in all, bytes per file (a file is built in memory).
pub const S3_MAX_BUCKETS: u64 = 100;
pub const S3_MAX_FOLDERS: u64 = 10_000;
pub const S3_MAX_FILES: u64 = 100_000;
pub const S3_MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// The default CRUD band of an S3 folder: `num_files_per_level` give or take `buffer`, where the
/// default buffer is a fifth of the files (at least 1). Returns (min_files, max_files).
pub fn s3_default_band(num_files_per_level: u32, buffer: Option<u32>) -> (u32, u32) {
    let buffer = buffer.unwrap_or((num_files_per_level / 5).max(1));
    (
        num_files_per_level.saturating_sub(buffer),
        num_files_per_level.saturating_add(buffer),
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub target_count: u64,
    pub buffer: u64,
    pub document_size: u32,
    /// CRUD after the fill (start_loader unless told otherwise, start_crud); false = fill, then completed.
    pub crud: bool,
    #[serde(default)]
    pub crud_minutes: Option<f64>,
    #[serde(default)]
    pub mix: Mix,
    /// Operations per second in the CRUD phase; none = as fast as the target takes them.
    #[serde(default)]
    pub rate_limit: Option<u32>,
    /// MySQL: the column definitions used by init_config.
    #[serde(default)]
    pub table_columns: Option<String>,
    #[serde(default)]
    pub init_config: bool,
    #[serde(default)]
    pub s3: Option<S3Layout>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OpCounts {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

impl OpCounts {
    pub fn total(&self) -> u64 {
        self.inserted + self.updated + self.deleted
    }
    pub fn add(&mut self, other: OpCounts) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.deleted += other.deleted;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Progress {
    /// Documents / rows / items / files the target holds, kept incrementally after the first count.
    pub count: u64,
    /// Whether `count` came from the target (set by the first tick of a start or restart).
    pub counted: bool,
    /// The next document sequence number to insert (documents are a function of loader id + sequence).
    pub next_seq: u64,
    /// The lowest sequence that may still exist (deletes take the oldest first).
    pub low_seq: u64,
    pub ops: OpCounts,
    /// Operations per second over the last slice.
    pub ops_per_sec: f64,
    #[serde(default)]
    pub crud_started_at: Option<String>,
    #[serde(default)]
    pub consecutive_errors: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub tick: u64,
    /// Unix milliseconds after which another delivery of the same tick may take over.
    pub until_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loader {
    pub loader_id: String,
    pub kind: Kind,
    pub target: Target,
    pub spec: Spec,
    pub phase: Phase,
    pub progress: Progress,
    pub tick: u64,
    pub sent_tick: u64,
    #[serde(default)]
    pub lease: Option<Lease>,
    pub created_at: String,
    pub started_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub last_error: Option<String>,
    /// Starts of this loader (1 + restarts).
    pub runs: u32,
}

/// What a delivery of a tick should do, decided from the stored loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickAction {
    /// Claim the tick and work a slice.
    Work,
    /// Stop was asked and no slice runs: mark stopped without touching the target.
    Stop,
    /// A duplicate or stale delivery: acknowledge, do nothing.
    Duplicate,
    /// The previous delivery of this tick saved its slice but never sent the next tick: send it.
    SendNext,
    /// Another delivery holds a live lease on this tick until `until_ms` (Unix ms): look again then.
    Busy { until_ms: i64 },
}

/// How many consecutive failed slices turn a loader to failed.
pub const MAX_CONSECUTIVE_ERRORS: u32 = 5;

/// What a slice did, as the worker reports it to [`Loader::finish_slice`].
#[derive(Debug, Clone, PartialEq)]
pub struct SliceOutcome {
    pub progress: Progress,
    /// The phase the slice ended in (loading, crud, completed) when it did not fail.
    pub phase: Phase,
    pub error: Option<String>,
}

impl Loader {
    pub fn new(
        loader_id: &str,
        kind: Kind,
        target: Target,
        spec: Spec,
        now: &str,
    ) -> Result<Loader, Conflict> {
        validate_spec(&spec).map_err(Conflict)?;
        Ok(Loader {
            loader_id: loader_id.to_string(),
            kind,
            target,
            spec,
            phase: Phase::Pending,
            progress: Progress::default(),
            tick: 0,
            sent_tick: 0,
            lease: None,
            created_at: now.to_string(),
            started_at: now.to_string(),
            updated_at: now.to_string(),
            last_error: None,
            runs: 1,
        })
    }

    pub fn on_tick(&self, tick: u64, now_ms: i64) -> TickAction {
        if tick + 1 == self.tick {
            return if self.phase.is_active() && self.sent_tick < self.tick {
                TickAction::SendNext
            } else {
                TickAction::Duplicate
            };
        }
        if tick != self.tick || !self.phase.is_active() {
            return TickAction::Duplicate;
        }
        if let Some(l) = self.lease
            && l.tick == tick
            && l.until_ms > now_ms
        {
            return TickAction::Busy {
                until_ms: l.until_ms,
            };
        }
        if self.phase == Phase::Stopping {
            TickAction::Stop
        } else {
            TickAction::Work
        }
    }

    /// Takes the lease on `tick` for `lease_ms`.
    pub fn claim(mut self, tick: u64, now_ms: i64, lease_ms: i64) -> Result<Loader, Conflict> {
        match self.on_tick(tick, now_ms) {
            TickAction::Work => {
                self.lease = Some(Lease {
                    tick,
                    until_ms: now_ms + lease_ms,
                });
                Ok(self)
            }
            other => Err(Conflict(format!(
                "tick {tick} of loader {} cannot be claimed ({other:?})",
                self.loader_id
            ))),
        }
    }

    /// Ends tick `tick` with the slice's outcome; a stop asked meanwhile wins over the slice's phase.
    pub fn finish_slice(
        mut self,
        tick: u64,
        outcome: SliceOutcome,
        now: &str,
    ) -> Result<Loader, Conflict> {
        if self.tick != tick || !self.phase.is_active() {
            return Err(Conflict(format!(
                "loader {} is at tick {} ({:?}), not {tick}",
                self.loader_id, self.tick, self.phase
            )));
        }
        let mut progress = outcome.progress;
        match outcome.error {
            Some(e) => {
                progress.consecutive_errors += 1;
                self.last_error = Some(e);
                if progress.consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                    self.phase = Phase::Failed;
                }
            }
            None => {
                progress.consecutive_errors = 0;
                if self.phase != Phase::Stopping {
                    self.phase = outcome.phase;
                }
            }
        }
        if self.phase == Phase::Stopping {
            self.phase = Phase::Stopped;
        }
        // The patchable settings are the stored ones: a PATCH during the slice is kept.
        self.progress = progress;
        self.tick = tick + 1;
        self.lease = None;
        self.updated_at = now.to_string();
        Ok(self)
    }

    /// A tick found the loader stopping with no slice running (no lease, or one that ran out at
    /// `now_ms`: its delivery died mid-slice): stop without working.
    pub fn finish_stop(mut self, tick: u64, now_ms: i64, now: &str) -> Result<Loader, Conflict> {
        if self.on_tick(tick, now_ms) != TickAction::Stop {
            return Err(Conflict(format!(
                "loader {} is not stopping at tick {tick}",
                self.loader_id
            )));
        }
        self.phase = Phase::Stopped;
        self.tick = tick + 1;
        self.lease = None;
        self.updated_at = now.to_string();
        Ok(self)
    }

    /// Records that tick `tick` was sent.
    pub fn mark_sent(mut self, tick: u64) -> Result<Loader, Conflict> {
        self.sent_tick = self.sent_tick.max(tick);
        Ok(self)
    }

    /// Asks an active loader to stop; stopping an ended loader changes nothing.
    pub fn request_stop(mut self, now: &str) -> Result<Loader, Conflict> {
        if matches!(self.phase, Phase::Pending | Phase::Loading | Phase::Crud) {
            self.phase = Phase::Stopping;
            self.updated_at = now.to_string();
        }
        Ok(self)
    }

    /// Starts an ended loader again (the original's `loader_id` restart), optionally with a new spec.
    /// Its state (sequence numbers, op counts) is kept; the count is taken again from the target.
    /// Returns the loader whose `tick` is the one to send.
    pub fn restart(mut self, spec: Option<Spec>, now: &str) -> Result<Loader, Conflict> {
        if self.phase.is_active() {
            return Err(Conflict(format!(
                "loader {} is already {}",
                self.loader_id,
                self.phase.status()
            )));
        }
        if let Some(spec) = spec {
            validate_spec(&spec).map_err(Conflict)?;
            self.spec = spec;
        }
        self.phase = Phase::Pending;
        self.progress.counted = false;
        self.progress.crud_started_at = None;
        self.progress.consecutive_errors = 0;
        self.last_error = None;
        self.lease = None;
        self.sent_tick = self.tick;
        self.runs += 1;
        self.started_at = now.to_string();
        self.updated_at = now.to_string();
        Ok(self)
    }

    /// Changes the rate limit and/or the mix of an active loader.
    pub fn patch(
        mut self,
        rate_limit: Option<Option<u32>>,
        mix: Option<Mix>,
        now: &str,
    ) -> Result<Loader, Conflict> {
        if !self.phase.is_active() {
            return Err(Conflict(format!(
                "loader {} is {}: only a running loader can be changed",
                self.loader_id,
                self.phase.status()
            )));
        }
        if let Some(m) = mix {
            m.validate().map_err(Conflict)?;
            self.spec.mix = m;
        }
        if let Some(r) = rate_limit {
            if r == Some(0) {
                return Err(Conflict("rate_limit must be above 0".into()));
            }
            self.spec.rate_limit = r;
        }
        self.updated_at = now.to_string();
        Ok(self)
    }
}

pub fn validate_spec(spec: &Spec) -> Result<(), String> {
    spec.mix.validate()?;
    if spec.rate_limit == Some(0) {
        return Err("rate_limit must be above 0".into());
    }
    if let Some(m) = spec.crud_minutes
        && !(m.is_finite() && m > 0.0)
    {
        return Err("time_for_crud_in_mins must be a positive number".into());
    }
    Ok(())
}

/// One step of the fill phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillStep {
    Insert(u64),
    Delete(u64),
    Done,
}

/// The next fill step from `count` towards `target`, at most `batch` at a time.
pub fn fill_step(count: u64, target: u64, batch: u64) -> FillStep {
    use std::cmp::Ordering::*;
    match count.cmp(&target) {
        Less => FillStep::Insert((target - count).min(batch.max(1))),
        Greater => FillStep::Delete((count - target).min(batch.max(1))),
        Equal => FillStep::Done,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
}

/// Picks one CRUD operation by the mix (`roll` uniform in `0..u32::MAX`), never leaving
/// `[target - buffer, target + buffer]`: at the top no inserts, at the bottom no deletes. When the mix
/// allows nothing there, it updates.
pub fn pick_op(count: u64, target: u64, buffer: u64, mix: Mix, roll: u32) -> Op {
    pick_op_within(
        count,
        target.saturating_sub(buffer),
        target.saturating_add(buffer),
        mix,
        roll,
    )
}

/// [`pick_op`] for a band `[min, max]`: no insert at `max`, no delete at `min` (or 0).
pub fn pick_op_within(count: u64, min: u64, max: u64, mix: Mix, roll: u32) -> Op {
    let can_insert = count < max;
    let can_delete = count > min && count > 0;
    let wi = if can_insert { mix.insert as u64 } else { 0 };
    let wu = mix.update as u64;
    let wd = if can_delete { mix.delete as u64 } else { 0 };
    let total = wi + wu + wd;
    if total == 0 {
        return Op::Update;
    }
    let r = (roll as u64 * total) / (u32::MAX as u64 + 1);
    if r < wi {
        Op::Insert
    } else if r < wi + wu {
        Op::Update
    } else {
        Op::Delete
    }
}

/// A CRUD batch: how many of each, planned op by op so the count stays within the buffer.
pub fn plan_batch(
    count: u64,
    target: u64,
    buffer: u64,
    mix: Mix,
    rolls: impl IntoIterator<Item = u32>,
) -> OpCounts {
    let mut c = count;
    let mut plan = OpCounts::default();
    for roll in rolls {
        match pick_op(c, target, buffer, mix, roll) {
            Op::Insert => {
                plan.inserted += 1;
                c += 1;
            }
            Op::Update => plan.updated += 1,
            Op::Delete => {
                plan.deleted += 1;
                c -= 1;
            }
        }
    }
    plan
}

/// Whether CRUD started at `started_rfc3339` has run its `minutes` at `now_rfc3339`.
pub fn crud_time_up(
    started_rfc3339: Option<&str>,
    minutes: Option<f64>,
    now_rfc3339: &str,
) -> bool {
    let (Some(started), Some(minutes)) = (started_rfc3339, minutes) else {
        return false;
    };
    let (Ok(s), Ok(n)) = (
        chrono::DateTime::parse_from_rfc3339(started),
        chrono::DateTime::parse_from_rfc3339(now_rfc3339),
    ) else {
        return false;
    };
    (n - s).num_milliseconds() as f64 >= minutes * 60_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            target_count: 100,
            buffer: 10,
            document_size: 1024,
            crud: true,
            crud_minutes: None,
            mix: Mix::default(),
            rate_limit: None,
            table_columns: None,
            init_config: false,
            s3: None,
        }
    }

    fn loader() -> Loader {
        Loader::new("l1", Kind::Mongo, Target::default(), spec(), "t0").unwrap()
    }

    fn ok(phase: Phase) -> SliceOutcome {
        SliceOutcome {
            progress: Progress {
                count: 5,
                ..Progress::default()
            },
            phase,
            error: None,
        }
    }

    #[test]
    fn a_tick_is_claimed_once_and_a_duplicate_is_a_no_op() {
        let l = loader().claim(0, 1_000, 30_000).unwrap();
        assert_eq!(l.on_tick(0, 2_000), TickAction::Busy { until_ms: 31_000 });
        assert!(l.clone().claim(0, 2_000, 30_000).is_err());
        let l = l.finish_slice(0, ok(Phase::Loading), "t1").unwrap();
        assert_eq!(l.tick, 1);
        assert_eq!(l.on_tick(0, 3_000), TickAction::SendNext);
        let l = l.mark_sent(1).unwrap();
        assert_eq!(l.on_tick(0, 3_000), TickAction::Duplicate);
        assert!(l.clone().finish_slice(0, ok(Phase::Crud), "t2").is_err());
        assert_eq!(l.on_tick(1, 3_000), TickAction::Work);
    }

    #[test]
    fn an_expired_lease_lets_a_redelivery_take_over() {
        let l = loader().claim(0, 1_000, 30_000).unwrap();
        assert_eq!(l.on_tick(0, 40_000), TickAction::Work);
        assert!(l.claim(0, 40_000, 30_000).is_ok());
    }

    #[test]
    fn stop_during_a_slice_wins_over_the_slice_phase_and_ends_the_chain() {
        let l = loader().claim(0, 0, 30_000).unwrap();
        let l = l.request_stop("t1").unwrap();
        assert_eq!(l.phase, Phase::Stopping);
        let l = l.finish_slice(0, ok(Phase::Crud), "t2").unwrap();
        assert_eq!(l.phase, Phase::Stopped);
        assert_eq!(l.progress.count, 5, "the finished batch is kept");
        assert_eq!(l.on_tick(1, 0), TickAction::Duplicate);
    }

    #[test]
    fn stop_between_slices_is_applied_by_the_next_tick() {
        let l = loader().request_stop("t1").unwrap();
        assert_eq!(l.on_tick(0, 0), TickAction::Stop);
        let l = l.finish_stop(0, 0, "t2").unwrap();
        assert_eq!(l.phase, Phase::Stopped);
        assert!(l.request_stop("t3").is_ok());
    }

    #[test]
    fn a_stop_takes_over_a_tick_whose_slice_died_once_its_lease_ran_out() {
        let l = loader()
            .claim(0, 1_000, 30_000)
            .unwrap()
            .request_stop("t1")
            .unwrap();
        assert_eq!(l.on_tick(0, 2_000), TickAction::Busy { until_ms: 31_000 });
        assert!(l.clone().finish_stop(0, 2_000, "t2").is_err());
        let l = l.finish_stop(0, 31_000, "t2").unwrap();
        assert_eq!((l.phase, l.tick, l.lease), (Phase::Stopped, 1, None));
    }

    #[test]
    fn restart_only_from_an_ended_loader_and_resumes_its_chain() {
        assert!(loader().restart(None, "t").is_err());
        let l = loader()
            .request_stop("t1")
            .unwrap()
            .finish_stop(0, 0, "t2")
            .unwrap();
        let r = l.restart(None, "t3").unwrap();
        assert_eq!(r.phase, Phase::Pending);
        assert_eq!(r.tick, 1);
        assert_eq!(r.runs, 2);
        assert!(!r.progress.counted);
        assert_eq!(r.on_tick(1, 0), TickAction::Work);
    }

    #[test]
    fn repeated_slice_errors_fail_the_loader_and_success_resets_them() {
        let mut l = loader();
        for t in 0..MAX_CONSECUTIVE_ERRORS as u64 {
            let progress = l.progress.clone();
            l = l
                .finish_slice(
                    t,
                    SliceOutcome {
                        progress,
                        phase: Phase::Loading,
                        error: Some("unreachable".into()),
                    },
                    "t",
                )
                .unwrap();
            if t == 0 {
                let p = l.progress.clone();
                let again = l
                    .clone()
                    .finish_slice(
                        1,
                        SliceOutcome {
                            progress: p,
                            phase: Phase::Loading,
                            error: None,
                        },
                        "t",
                    )
                    .unwrap();
                assert_eq!(again.progress.consecutive_errors, 0);
            }
        }
        assert_eq!(l.phase, Phase::Failed);
        assert_eq!(l.last_error.as_deref(), Some("unreachable"));
    }

    #[test]
    fn patch_changes_rate_and_mix_of_a_running_loader_only() {
        let m = Mix {
            insert: 0,
            update: 1,
            delete: 0,
        };
        let l = loader().patch(Some(Some(50)), Some(m), "t").unwrap();
        assert_eq!(l.spec.rate_limit, Some(50));
        assert_eq!(l.spec.mix, m);
        let zero = Mix {
            insert: 0,
            update: 0,
            delete: 0,
        };
        assert!(loader().patch(None, Some(zero), "t").is_err());
        let stopped = loader()
            .request_stop("t")
            .unwrap()
            .finish_stop(0, 0, "t")
            .unwrap();
        assert!(stopped.patch(Some(Some(5)), None, "t").is_err());
    }

    #[test]
    fn fill_inserts_or_trims_towards_the_target_in_batches() {
        assert_eq!(fill_step(0, 2500, 1000), FillStep::Insert(1000));
        assert_eq!(fill_step(2000, 2500, 1000), FillStep::Insert(500));
        assert_eq!(fill_step(3000, 2500, 1000), FillStep::Delete(500));
        assert_eq!(fill_step(2500, 2500, 1000), FillStep::Done);
    }

    #[test]
    fn crud_plans_never_leave_the_buffer() {
        let mut seed = 7u64;
        let mut rolls = std::iter::from_fn(move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Some((seed >> 32) as u32)
        });
        for (start, buffer) in [(100, 10), (90, 10), (110, 10), (100, 0)] {
            let mut c = start;
            for _ in 0..200 {
                let plan = plan_batch(c, 100, buffer, Mix::default(), (&mut rolls).take(50));
                c = c + plan.inserted - plan.deleted;
                assert!((100 - buffer..=100 + buffer).contains(&c), "{c}");
                assert_eq!(plan.total(), 50);
            }
        }
    }

    #[test]
    fn an_insert_only_mix_at_the_top_of_the_buffer_updates_instead() {
        let m = Mix {
            insert: 1,
            update: 0,
            delete: 0,
        };
        assert_eq!(pick_op(110, 100, 10, m, 5), Op::Update);
        assert_eq!(pick_op(109, 100, 10, m, 5), Op::Insert);
    }

    #[test]
    fn crud_time_is_up_after_the_asked_minutes() {
        let s = Some("2026-01-01T00:00:00.000Z");
        assert!(!crud_time_up(s, Some(1.0), "2026-01-01T00:00:59.000Z"));
        assert!(crud_time_up(s, Some(1.0), "2026-01-01T00:01:00.000Z"));
        assert!(!crud_time_up(s, None, "2030-01-01T00:00:00.000Z"));
    }

    #[test]
    fn the_lock_key_names_the_target_not_the_secret() {
        let t = Target {
            host: Some("DB.local".into()),
            port: Some(27017),
            database: Some("d".into()),
            collection: Some("c".into()),
            secret_arn: Some("arn:secret".into()),
            ..Target::default()
        };
        let k = t.lock_key(Kind::Mongo);
        assert_eq!(k, "mongo|db.local:27017|d|c|");
        assert!(!k.contains("arn"));
    }

    #[test]
    fn s3_layout_nests_folders_and_cycles_formats() {
        let l = S3Layout {
            num_buckets: 1,
            depth_level: 2,
            num_folders_per_level: 2,
            num_files_per_level: 3,
            file_size: 100,
            file_formats: vec!["json".into(), "csv".into()],
            min_files: 1,
            max_files: 5,
        };
        let f = l.folders();
        assert_eq!(f.len(), 1 + 2 + 4);
        assert!(f.contains(&"Depth_1_Folder_2/Depth_2_Folder_1/".to_string()));
        assert_eq!(l.files_per_bucket(), 21);
        assert_eq!(l.format_of(3), "csv");
        assert_eq!(l.key("Depth_1_Folder_1/", 3), "Depth_1_Folder_1/3.csv");
    }

    fn layout() -> S3Layout {
        S3Layout {
            num_buckets: 2,
            depth_level: 2,
            num_folders_per_level: 2,
            num_files_per_level: 3,
            file_size: 100,
            file_formats: vec!["json".into(), "csv".into()],
            min_files: 2,
            max_files: 4,
        }
    }

    #[test]
    fn s3_keys_of_the_layout_are_recognised_and_others_are_not() {
        let l = layout();
        let folders: std::collections::HashSet<String> = l.folders().into_iter().collect();
        let c = |k: &str| l.classify(&folders, k).map(|(f, n)| (f.to_string(), n));
        assert_eq!(c("0.json"), Some((String::new(), 0)));
        assert_eq!(
            c("Depth_1_Folder_2/Depth_2_Folder_1/7.csv"),
            Some(("Depth_1_Folder_2/Depth_2_Folder_1/".to_string(), 7))
        );
        for other in [
            "1.json",
            "01.json",
            "x.json",
            "Depth_3_Folder_1/0.json",
            "Depth_1_Folder_1/Depth_2_Folder_3/0.json",
            "Depth_1_Folder_1/",
            "0.json.bak",
        ] {
            assert_eq!(c(other), None, "{other}");
        }
        for n in 0..10 {
            let key = l.key("Depth_1_Folder_1/", n);
            assert_eq!(c(&key), Some(("Depth_1_Folder_1/".to_string(), n)));
        }
    }

    #[test]
    fn s3_layouts_are_bounded_and_the_band_holds_the_file_count() {
        assert!(layout().validate().is_ok());
        let mut big = layout();
        big.depth_level = 10;
        big.num_folders_per_level = 10;
        assert_eq!(big.validate().unwrap_err().0, "depth_level");
        let mut band = layout();
        band.min_files = 4;
        assert_eq!(band.validate().unwrap_err().0, "min_files");
        let mut none = layout();
        none.file_formats.clear();
        assert_eq!(none.validate().unwrap_err().0, "file_format");
        assert_eq!(s3_default_band(10, None), (8, 12));
        assert_eq!(s3_default_band(3, None), (2, 4));
        assert_eq!(s3_default_band(3, Some(5)), (0, 8));
    }

    #[test]
    fn a_band_pick_never_inserts_at_max_or_deletes_at_min() {
        let m = Mix::default();
        for roll in [0, u32::MAX / 2, u32::MAX] {
            assert_ne!(pick_op_within(4, 2, 4, m, roll), Op::Insert);
            assert_ne!(pick_op_within(2, 2, 4, m, roll), Op::Delete);
        }
    }
}
