//! Sync jobs (S3 -> S3), their runs and per-object records, with the transitions the engine and the API
//! apply. A job has at most one active run: starting a second one is a [`Conflict`].

use super::Conflict;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Sync,
    Delta,
    Delete,
    Diff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Scheduled,
    Paused,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub bucket_name: String,
    #[serde(default)]
    pub prefix: String,
    /// An S3-compatible store other than the one ferry runs against; absent means the same store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The Secrets Manager secret holding the source's access keys (never the keys themselves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_arn: Option<String>,
}

impl Source {
    /// Whether the source needs its own client (another endpoint or other credentials); copies from
    /// such a source stream through the worker instead of being server-side.
    pub fn is_foreign(&self) -> bool {
        self.endpoint_url.is_some() || self.credentials_secret_arn.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: String,
    pub job_name: String,
    pub connector_type: String,
    /// The schedule as the user gave it (a name or an expression).
    pub schedule: String,
    /// The same in EventBridge Scheduler syntax.
    pub schedule_expression: String,
    pub timezone: String,
    pub connector_config: Source,
    pub destination: Destination,
    pub action: Action,
    pub chunk_size: u64,
    pub concurrency: u32,
    pub max_attempts: u32,
    pub job_status: JobStatus,
    /// The run in progress, if any: at most one per job.
    #[serde(default)]
    pub active_run: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    #[default]
    Api,
    Schedule,
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Starting,
    Running,
    Completed,
    Partial,
    Failed,
    Skipped,
    /// Stopped on request (`DELETE /jobs/{id}`): the engine drops the run's remaining messages.
    Cancelled,
}

impl RunStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Starting | RunStatus::Running)
    }
}

/// A run's counters. `total` grows as listings find objects, the others as objects end; `finished` is
/// `processed + skipped + failed`, kept as its own counter so a condition can compare it with `total`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RunCounts {
    pub total: u64,
    pub processed: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Destination objects removed (delete, diff); they are also counted in `processed`.
    #[serde(default)]
    pub deleted: u64,
    pub bytes: u64,
    #[serde(default)]
    pub finished: u64,
}

/// Which listing of a run a page belongs to: the source (copies) or the destination (deletes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Source,
    Destination,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Destination => "destination",
        }
    }
}

impl Action {
    /// The listings a run of this action walks.
    pub fn sides(self) -> &'static [Side] {
        match self {
            Action::Sync | Action::Delta => &[Side::Source],
            Action::Delete => &[Side::Destination],
            Action::Diff => &[Side::Source, Side::Destination],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub run_id: String,
    pub job_id: String,
    pub trigger: Trigger,
    pub status: RunStatus,
    #[serde(default)]
    pub counts: RunCounts,
    pub started_at: String,
    #[serde(default)]
    pub ended_at: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    /// Listings still to walk to their last page; the run can only end once this is empty.
    #[serde(default)]
    pub listings_pending: Vec<Side>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ObjectStatus {
    Pending,
    InProgress,
    Processed,
    Skipped,
    Failed,
}

impl ObjectStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ObjectStatus::Processed | ObjectStatus::Skipped | ObjectStatus::Failed
        )
    }
}

/// What a run does with an object: copy it to the destination, or delete the destination's copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ObjectOp {
    #[default]
    Copy,
    Delete,
}

/// One object of one run. `parts` is the multipart checkpoint: part number (as a string, DynamoDB map
/// keys are strings) -> ETag, written after each part, so a redelivery resumes at the first missing one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub job_id: String,
    pub run_id: String,
    pub object_key: String,
    pub object_size: u64,
    /// Bytes copied so far (the original's download position).
    pub last_position: u64,
    pub etag: Option<String>,
    pub status: ObjectStatus,
    /// Deliveries that worked on the object.
    pub attempts: u32,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub op: ObjectOp,
    /// Source last-modified as listed (RFC 3339), for delta decisions.
    #[serde(default)]
    pub last_modified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    #[serde(default)]
    pub part_size: u64,
    #[serde(default)]
    pub parts: BTreeMap<String, String>,
    /// Bytes requested from the source, counted before each request: what a crash costs shows up as
    /// `bytes_fetched - object_size`.
    #[serde(default)]
    pub bytes_fetched: u64,
    /// Deliveries since the last checkpoint; past the job's `max_attempts` the object fails.
    #[serde(default)]
    pub idle_attempts: u32,
    /// A delivery of this run decided to copy the object (delta and diff mark it before writing the
    /// destination). Another delivery that then finds the destination unchanged knows the match is this
    /// run's own copy, so it ends the object as processed, not skipped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub copy_started: bool,
    /// Deliveries working on the object right now, by slot (the first part of the range a message
    /// covers; `0` for the message that only fans a huge object out into part ranges). See [`Lease`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub leases: BTreeMap<String, Lease>,
}

/// A delivery's hold on a slot of an object. While `until_ms` (Unix ms) lies ahead, another delivery
/// of the same slot, a duplicate running elsewhere at the same time, leaves it alone and comes back
/// later; the holder renews the lease while it works, and a holder that dies simply stops renewing,
/// so its redelivered message takes over once the lease has lapsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub until_ms: u64,
}

/// An object as a listing saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    pub key: String,
    pub size: u64,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub last_modified: Option<String>,
}

impl ObjectRef {
    pub fn meta(&self) -> ObjectMeta {
        ObjectMeta {
            size: self.size,
            etag: self.etag.clone(),
            last_modified: self.last_modified.clone(),
            source_etag: None,
        }
    }
}

/// One page of a run's listing as first seen: a redelivered page hands on exactly these objects even
/// if the bucket changed since, so the run's counters and its object records cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedPage {
    pub entries: Vec<ObjectRef>,
    #[serde(default)]
    pub next_token: Option<String>,
    /// Set once the page's objects and the next page were handed on.
    #[serde(default)]
    pub done: bool,
}

/// S3 allows at most 10,000 parts; ferry keeps the checkpoint in the object's item, so it caps the
/// count lower and grows the part size for very big objects instead.
pub const MAX_PARTS: u64 = 2000;
const MIB: u64 = 1024 * 1024;

/// The part size for an object of `size` bytes: the job's chunk size, or more (whole MiB) when the
/// object would otherwise need more than [`MAX_PARTS`] parts.
pub fn part_size(size: u64, chunk_size: u64) -> u64 {
    let min = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    chunk_size.max(min).max(1)
}

/// Number of parts of an object of `size` bytes cut in `part_size` pieces.
pub fn part_count(size: u64, part_size: u64) -> u64 {
    size.div_ceil(part_size.max(1))
}

/// The inclusive byte range of part `n` (1-based).
pub fn part_range(size: u64, part_size: u64, n: u64) -> (u64, u64) {
    let start = (n - 1) * part_size;
    (start, (start + part_size).min(size) - 1)
}

/// What ferry knows about one side's copy of an object, for delta decisions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectMeta {
    pub size: u64,
    pub etag: Option<String>,
    /// RFC 3339.
    pub last_modified: Option<String>,
    /// On the destination: the source ETag ferry copied it from (user metadata `ferry-source-etag`).
    pub source_etag: Option<String>,
}

/// Whether the destination already holds this version of the source object: same size and the same
/// ETag (directly, or as the source ETag ferry recorded when copying); without either, a destination
/// written after the source counts as current. Strictly after: timestamps have whole seconds, and a
/// source changed in the second its copy was made (different ETag, same second) is a change.
pub fn unchanged(source: &ObjectMeta, dest: Option<&ObjectMeta>) -> bool {
    let Some(dest) = dest else { return false };
    if source.size != dest.size {
        return false;
    }
    let trim = |e: &Option<String>| e.as_deref().map(|s| s.trim_matches('"').to_string());
    let src_etag = trim(&source.etag);
    if src_etag.is_some() && (trim(&dest.etag) == src_etag || trim(&dest.source_etag) == src_etag) {
        return true;
    }
    if dest.source_etag.is_some() {
        // ferry copied another version.
        return false;
    }
    match (&source.last_modified, &dest.last_modified) {
        (Some(s), Some(d)) => match (
            chrono::DateTime::parse_from_rfc3339(s),
            chrono::DateTime::parse_from_rfc3339(d),
        ) {
            (Ok(s), Ok(d)) => d > s,
            _ => false,
        },
        _ => false,
    }
}

/// Exponential backoff with full jitter: a random delay in `[0, min(cap, base * 2^attempt))`, with
/// `unit` in `[0, 1)` supplied by the caller (so this stays pure and testable).
pub fn backoff_ms(attempt: u32, base_ms: u64, cap_ms: u64, unit: f64) -> u64 {
    let ceiling = base_ms.saturating_mul(1u64 << attempt.min(30)).min(cap_ms);
    (ceiling as f64 * unit.clamp(0.0, 1.0)) as u64
}

impl Job {
    /// Claims the job for `run_id`. A job that already has an active run refuses.
    pub fn start_run(mut self, run_id: &str, now: &str) -> Result<Job, Conflict> {
        if let Some(active) = &self.active_run {
            return Err(Conflict(format!(
                "job {} already has run {active} in progress",
                self.job_id
            )));
        }
        self.active_run = Some(run_id.to_string());
        self.updated_at = now.to_string();
        Ok(self)
    }

    /// Stops the schedule from starting runs (run now still works).
    pub fn pause(mut self, now: &str) -> Result<Job, Conflict> {
        if self.job_status == JobStatus::Paused {
            return Err(Conflict(format!("job {} is already paused", self.job_id)));
        }
        self.job_status = JobStatus::Paused;
        self.updated_at = now.to_string();
        Ok(self)
    }

    pub fn resume(mut self, now: &str) -> Result<Job, Conflict> {
        if self.job_status == JobStatus::Scheduled {
            return Err(Conflict(format!("job {} is not paused", self.job_id)));
        }
        self.job_status = JobStatus::Scheduled;
        self.updated_at = now.to_string();
        Ok(self)
    }

    /// Releases the job from `run_id`; releasing a run that is not the active one changes nothing.
    pub fn finish_run(mut self, run_id: &str, now: &str) -> Result<Job, Conflict> {
        if self.active_run.as_deref() == Some(run_id) {
            self.active_run = None;
            self.updated_at = now.to_string();
        }
        Ok(self)
    }
}

impl Run {
    pub fn new(job_id: &str, run_id: &str, trigger: Trigger, now: &str) -> Run {
        Run {
            run_id: run_id.to_string(),
            job_id: job_id.to_string(),
            trigger,
            status: RunStatus::Starting,
            counts: RunCounts::default(),
            started_at: now.to_string(),
            ended_at: None,
            error: None,
            listings_pending: Vec::new(),
        }
    }

    /// A scheduled firing that found the previous run still going: recorded, never executed.
    pub fn skipped(job_id: &str, run_id: &str, trigger: Trigger, now: &str, reason: String) -> Run {
        Run {
            status: RunStatus::Skipped,
            ended_at: Some(now.to_string()),
            error: Some(reason),
            ..Run::new(job_id, run_id, trigger, now)
        }
    }

    /// Starting -> running, with the listings `action` walks still to do.
    pub fn begin(mut self, action: Action) -> Result<Run, Conflict> {
        match self.status {
            RunStatus::Starting => {
                self.status = RunStatus::Running;
                self.listings_pending = action.sides().to_vec();
                Ok(self)
            }
            other => Err(Conflict(format!(
                "run {} is {other:?}, not starting",
                self.run_id
            ))),
        }
    }

    /// Ends a running run with its final counters: completed when nothing failed, failed when nothing
    /// succeeded, partial otherwise.
    pub fn finish(mut self, counts: RunCounts, now: &str) -> Result<Run, Conflict> {
        if self.status != RunStatus::Running {
            return Err(Conflict(format!(
                "run {} is {:?}, not running",
                self.run_id, self.status
            )));
        }
        self.status = if counts.failed == 0 {
            RunStatus::Completed
        } else if counts.processed + counts.skipped == 0 {
            RunStatus::Failed
        } else {
            RunStatus::Partial
        };
        self.counts = counts;
        self.ended_at = Some(now.to_string());
        Ok(self)
    }

    /// The listing of `side` reached its last page.
    pub fn listing_done(mut self, side: Side) -> Result<Run, Conflict> {
        if self.status != RunStatus::Running {
            return Err(Conflict(format!("run {} is not running", self.run_id)));
        }
        self.listings_pending.retain(|s| *s != side);
        Ok(self)
    }

    /// Whether every listing is done and every object it found has ended.
    pub fn is_settled(&self) -> bool {
        self.status == RunStatus::Running
            && self.listings_pending.is_empty()
            && self.counts.finished >= self.counts.total
    }

    /// Ends a settled run from its own counters (see [`Run::finish`] for the outcome rule). Refused
    /// while a listing or an object is still going, so only the last one to finish ends the run.
    pub fn conclude(self, now: &str) -> Result<Run, Conflict> {
        if !self.is_settled() {
            return Err(Conflict(format!(
                "run {} is not settled ({:?}, {} of {} objects, listings pending {:?})",
                self.run_id,
                self.status,
                self.counts.finished,
                self.counts.total,
                self.listings_pending
            )));
        }
        let counts = self.counts.clone();
        self.finish(counts, now)
    }

    /// Stops a run that has not ended; work already in flight may still finish its object.
    pub fn cancel(mut self, reason: String, now: &str) -> Result<Run, Conflict> {
        if self.status.is_terminal() {
            return Err(Conflict(format!(
                "run {} already ended as {:?}",
                self.run_id, self.status
            )));
        }
        self.status = RunStatus::Cancelled;
        self.error = Some(reason);
        self.ended_at = Some(now.to_string());
        Ok(self)
    }

    pub fn fail(mut self, error: String, now: &str) -> Result<Run, Conflict> {
        if self.status.is_terminal() {
            return Err(Conflict(format!("run {} already ended", self.run_id)));
        }
        self.status = RunStatus::Failed;
        self.error = Some(error);
        self.ended_at = Some(now.to_string());
        Ok(self)
    }
}

impl ObjectRecord {
    #[allow(clippy::too_many_arguments)]
    pub fn pending(
        job_id: &str,
        run_id: &str,
        object_key: &str,
        meta: &ObjectMeta,
        op: ObjectOp,
        now: &str,
    ) -> ObjectRecord {
        ObjectRecord {
            job_id: job_id.to_string(),
            run_id: run_id.to_string(),
            object_key: object_key.to_string(),
            object_size: meta.size,
            last_position: 0,
            etag: meta.etag.clone(),
            status: ObjectStatus::Pending,
            attempts: 0,
            error: None,
            created_at: now.to_string(),
            updated_at: now.to_string(),
            op,
            last_modified: meta.last_modified.clone(),
            upload_id: None,
            part_size: 0,
            parts: BTreeMap::new(),
            bytes_fetched: 0,
            idle_attempts: 0,
            copy_started: false,
            leases: BTreeMap::new(),
        }
    }

    /// When another delivery's live lease on `slot` ends (Unix ms); `None` if the slot is free, lapsed
    /// or `owner`'s own.
    pub fn leased_until(&self, slot: u64, owner: &str, now_ms: u64) -> Option<u64> {
        self.leases
            .get(&slot.to_string())
            .filter(|l| l.owner != owner && l.until_ms > now_ms)
            .map(|l| l.until_ms)
    }

    /// Takes (or renews) the lease on `slot` for `owner` until `now_ms + ttl_ms`; `Err` with the end
    /// of the current holder's lease while another delivery holds it.
    pub fn take_lease(
        &mut self,
        slot: u64,
        owner: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<(), u64> {
        if let Some(until) = self.leased_until(slot, owner, now_ms) {
            return Err(until);
        }
        self.leases.insert(
            slot.to_string(),
            Lease {
                owner: owner.to_string(),
                until_ms: now_ms + ttl_ms,
            },
        );
        Ok(())
    }

    /// Marks that a delivery is about to write the destination (see [`ObjectRecord::copy_started`]).
    pub fn start_copy(mut self, now: &str) -> Result<ObjectRecord, Conflict> {
        if self.status.is_terminal() {
            return Err(Conflict(format!(
                "object {} already ended as {:?}",
                self.object_key, self.status
            )));
        }
        self.copy_started = true;
        self.updated_at = now.to_string();
        Ok(self)
    }

    /// A delivery starts working on the object.
    pub fn start_attempt(mut self, now: &str) -> Result<ObjectRecord, Conflict> {
        if self.status.is_terminal() {
            return Err(Conflict(format!(
                "object {} already ended as {:?}",
                self.object_key, self.status
            )));
        }
        self.status = ObjectStatus::InProgress;
        self.attempts += 1;
        self.idle_attempts += 1;
        self.updated_at = now.to_string();
        Ok(self)
    }

    /// Whether deliveries keep failing without checkpointing anything.
    pub fn exhausted(&self, max_attempts: u32) -> bool {
        self.idle_attempts > max_attempts
    }

    /// Ends the object as `status` (processed, skipped or failed). Ending twice is a conflict, which is
    /// what keeps a duplicate delivery from counting twice.
    pub fn end(
        mut self,
        status: ObjectStatus,
        error: Option<String>,
        now: &str,
    ) -> Result<ObjectRecord, Conflict> {
        if self.status.is_terminal() {
            return Err(Conflict(format!(
                "object {} already ended as {:?}",
                self.object_key, self.status
            )));
        }
        if !status.is_terminal() {
            return Err(Conflict(format!("{status:?} is not an end state")));
        }
        self.status = status;
        self.error = error;
        self.leases.clear();
        if status == ObjectStatus::Processed && self.op == ObjectOp::Copy {
            self.last_position = self.object_size;
        }
        self.updated_at = now.to_string();
        Ok(self)
    }

    /// What ending this (ended) object adds to its run's counters.
    pub fn count_deltas(&self) -> Vec<(&'static str, u64)> {
        let mut d = vec![("finished", 1)];
        match (self.status, self.op) {
            (ObjectStatus::Processed, ObjectOp::Copy) => {
                d.push(("processed", 1));
                d.push(("bytes", self.object_size));
            }
            (ObjectStatus::Processed, ObjectOp::Delete) => {
                d.push(("processed", 1));
                d.push(("deleted", 1));
            }
            (ObjectStatus::Skipped, _) => d.push(("skipped", 1)),
            _ => d.push(("failed", 1)),
        }
        d
    }

    /// Parts (1-based) of `1..=count` not yet checkpointed.
    pub fn missing_parts(&self, first: u64, last: u64) -> Vec<u64> {
        (first..=last)
            .filter(|n| !self.parts.contains_key(&n.to_string()))
            .collect()
    }
}

/// What a run does with one listed source object, decided before any byte moves (the engine's copy
/// step and the API's dry run both follow it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyDecision {
    /// Copy to this destination key.
    Copy(String),
    /// Nothing to do, and why.
    Skip(&'static str),
    /// The object cannot be copied (its key would leave the destination prefix), and why.
    Fail(String),
}

/// The decision for `obj` under `action`: empty objects are skipped, keys that would escape the
/// destination prefix fail, and delta/diff skip objects the destination already holds (`dest` is
/// the destination's copy, if any; sync and delete ignore it).
pub fn copy_decision(
    action: Action,
    source_prefix: &str,
    dest_prefix: &str,
    obj: &ObjectRef,
    dest: Option<&ObjectMeta>,
) -> CopyDecision {
    if obj.size == 0 {
        return CopyDecision::Skip("empty object");
    }
    let dest_key = match destination_key(source_prefix, dest_prefix, &obj.key) {
        Ok(k) => k,
        Err(why) => return CopyDecision::Fail(why),
    };
    if matches!(action, Action::Delta | Action::Diff) && unchanged(&obj.meta(), dest) {
        return CopyDecision::Skip("unchanged at the destination");
    }
    CopyDecision::Copy(dest_key)
}

/// Whether a destination object is one a delete (or diff) run removes: it lies under the destination
/// prefix and none of the source keys it may have come from exists (`source_exists`).
pub fn delete_decision(
    source_prefix: &str,
    dest_prefix: &str,
    dest_key: &str,
    source_exists: impl Fn(&str) -> bool,
) -> bool {
    let sources = source_keys_for(source_prefix, dest_prefix, dest_key);
    !sources.is_empty() && !sources.iter().any(|k| source_exists(k))
}

/// The source keys a destination key may have been copied from (the inverse of [`destination_key`]):
/// with a source prefix that does not end in `/`, both `prefix + rel` and `prefix/rel` map to `rel`.
/// Empty for a destination key outside the destination prefix.
pub fn source_keys_for(source_prefix: &str, dest_prefix: &str, dest_key: &str) -> Vec<String> {
    let mut prefix = dest_prefix.trim_matches('/').to_string();
    if !prefix.is_empty() {
        prefix.push('/');
    }
    let Some(relative) = dest_key.strip_prefix(&prefix) else {
        return Vec::new();
    };
    if relative.is_empty() || relative.starts_with('/') {
        return Vec::new();
    }
    let mut out = vec![format!("{source_prefix}{relative}")];
    if !source_prefix.is_empty() && !source_prefix.ends_with('/') {
        out.push(format!("{source_prefix}/{relative}"));
    }
    out
}

/// The destination key for `source_key`: the part below the source prefix, placed under the destination
/// prefix. Keys are data: one that would climb out of the destination prefix (a `..` segment, a leading
/// `/`, a backslash or a control character) is refused.
pub fn destination_key(
    source_prefix: &str,
    dest_prefix: &str,
    source_key: &str,
) -> Result<String, String> {
    let relative = source_key.strip_prefix(source_prefix).unwrap_or(source_key);
    let relative = relative.trim_start_matches('/');
    if relative.is_empty() {
        return Err("object key is empty below the source prefix".into());
    }
    if relative.contains('\\') || relative.chars().any(char::is_control) {
        return Err("object key contains a backslash or a control character".into());
    }
    if relative.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err("object key contains a '.' or '..' path segment".into());
    }
    let mut prefix = dest_prefix.trim_matches('/').to_string();
    if !prefix.is_empty() {
        prefix.push('/');
    }
    Ok(format!("{prefix}{relative}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            job_id: "j1".into(),
            job_name: "nightly".into(),
            connector_type: "S3".into(),
            schedule: "hourly".into(),
            schedule_expression: "rate(1 hour)".into(),
            timezone: "UTC".into(),
            connector_config: Source {
                bucket_name: "src".into(),
                prefix: "".into(),
                endpoint_url: None,
                region: None,
                credentials_secret_arn: None,
            },
            destination: Destination {
                bucket: "dst".into(),
                prefix: "jobs/j1".into(),
            },
            action: Action::Sync,
            chunk_size: 10 << 20,
            concurrency: 4,
            max_attempts: 5,
            job_status: JobStatus::Scheduled,
            active_run: None,
            created_at: "t0".into(),
            updated_at: "t0".into(),
        }
    }

    #[test]
    fn a_live_lease_keeps_other_deliveries_off_its_slot_until_it_lapses() {
        let meta = ObjectMeta {
            size: 10,
            etag: None,
            last_modified: None,
            source_etag: None,
        };
        let mut r = ObjectRecord::pending("j", "r", "k", &meta, ObjectOp::Copy, "t0");
        assert_eq!(r.take_lease(1, "a", 1_000, 6_000), Ok(()));
        // Another delivery of the same slot is refused until the lease's end; other slots are free.
        assert_eq!(r.take_lease(1, "b", 2_000, 6_000), Err(7_000));
        assert_eq!(r.leased_until(1, "b", 6_999), Some(7_000));
        assert_eq!(r.take_lease(65, "b", 2_000, 6_000), Ok(()));
        // The holder renews its own lease.
        assert_eq!(r.take_lease(1, "a", 5_000, 6_000), Ok(()));
        assert_eq!(r.leased_until(1, "b", 10_000), Some(11_000));
        assert_eq!(r.leased_until(1, "a", 10_000), None);
        // Once lapsed (the holder died), anyone takes it over.
        assert_eq!(r.take_lease(1, "b", 11_000, 6_000), Ok(()));
        assert_eq!(r.leases["1"].owner, "b");
        // Ending the object lets every lease go.
        let ended = r.end(ObjectStatus::Processed, None, "t1").unwrap();
        assert!(ended.leases.is_empty());
    }

    #[test]
    fn second_run_of_a_busy_job_is_a_conflict() {
        let busy = job().start_run("r1", "t1").unwrap();
        assert_eq!(busy.active_run.as_deref(), Some("r1"));
        let err = busy.clone().start_run("r2", "t2").unwrap_err();
        assert!(err.0.contains("r1"));
        let free = busy.finish_run("r1", "t3").unwrap();
        assert!(free.start_run("r2", "t4").is_ok());
    }

    #[test]
    fn pausing_twice_or_resuming_a_running_schedule_is_a_conflict() {
        let paused = job().pause("t1").unwrap();
        assert_eq!(paused.job_status, JobStatus::Paused);
        assert!(paused.clone().pause("t2").is_err());
        let resumed = paused.resume("t3").unwrap();
        assert_eq!(resumed.job_status, JobStatus::Scheduled);
        assert!(resumed.resume("t4").is_err());
    }

    #[test]
    fn finishing_another_run_keeps_the_active_one() {
        let busy = job().start_run("r1", "t1").unwrap();
        assert_eq!(
            busy.finish_run("r0", "t2").unwrap().active_run.as_deref(),
            Some("r1")
        );
    }

    #[test]
    fn run_outcome_follows_counters() {
        let running = || {
            Run::new("j", "r", Trigger::Api, "t")
                .begin(Action::Sync)
                .unwrap()
        };
        let ok = RunCounts {
            total: 2,
            processed: 2,
            ..Default::default()
        };
        assert_eq!(
            running().finish(ok, "t").unwrap().status,
            RunStatus::Completed
        );
        let some = RunCounts {
            total: 2,
            processed: 1,
            failed: 1,
            ..Default::default()
        };
        assert_eq!(
            running().finish(some, "t").unwrap().status,
            RunStatus::Partial
        );
        let none = RunCounts {
            total: 1,
            failed: 1,
            ..Default::default()
        };
        assert_eq!(
            running().finish(none, "t").unwrap().status,
            RunStatus::Failed
        );
        assert!(
            Run::new("j", "r", Trigger::Api, "t")
                .finish(RunCounts::default(), "t")
                .is_err()
        );
    }

    #[test]
    fn listings_and_objects_must_all_end_before_the_run_concludes() {
        let mut run = Run::new("j", "r", Trigger::Api, "t")
            .begin(Action::Diff)
            .unwrap();
        assert_eq!(run.listings_pending, vec![Side::Source, Side::Destination]);
        run.counts.total = 2;
        run.counts.finished = 2;
        run.counts.processed = 2;
        assert!(run.clone().conclude("t").is_err(), "listings still pending");
        let run = run
            .listing_done(Side::Source)
            .unwrap()
            .listing_done(Side::Destination)
            .unwrap();
        let mut short = run.clone();
        short.counts.finished = 1;
        assert!(short.conclude("t").is_err(), "an object is still going");
        let done = run.conclude("t2").unwrap();
        assert_eq!(done.status, RunStatus::Completed);
        assert_eq!(done.ended_at.as_deref(), Some("t2"));
        assert!(done.conclude("t3").is_err(), "only one end");
    }

    #[test]
    fn an_object_ends_once_and_counts_by_status_and_op() {
        let meta = ObjectMeta {
            size: 10,
            ..Default::default()
        };
        let rec = ObjectRecord::pending("j", "r", "k", &meta, ObjectOp::Copy, "t")
            .start_attempt("t")
            .unwrap();
        assert_eq!((rec.attempts, rec.status), (1, ObjectStatus::InProgress));
        let done = rec.end(ObjectStatus::Processed, None, "t").unwrap();
        assert_eq!(done.last_position, 10);
        assert_eq!(
            done.count_deltas(),
            vec![("finished", 1), ("processed", 1), ("bytes", 10)]
        );
        assert!(done.clone().end(ObjectStatus::Failed, None, "t").is_err());
        assert!(done.start_attempt("t").is_err());
        let del = ObjectRecord::pending("j", "r", "k", &meta, ObjectOp::Delete, "t")
            .end(ObjectStatus::Processed, None, "t")
            .unwrap();
        assert_eq!(
            del.count_deltas(),
            vec![("finished", 1), ("processed", 1), ("deleted", 1)]
        );
    }

    #[test]
    fn idle_deliveries_exhaust_an_object() {
        let meta = ObjectMeta::default();
        let mut rec = ObjectRecord::pending("j", "r", "k", &meta, ObjectOp::Copy, "t");
        for _ in 0..3 {
            rec = rec.start_attempt("t").unwrap();
        }
        assert!(!rec.exhausted(3));
        assert!(rec.start_attempt("t").unwrap().exhausted(3));
    }

    #[test]
    fn parts_cover_the_object_exactly_and_stay_under_the_cap() {
        let mib = 1024 * 1024;
        assert_eq!(part_size(25 * mib, 10 * mib), 10 * mib);
        assert_eq!(part_count(25 * mib, 10 * mib), 3);
        assert_eq!(part_range(25 * mib, 10 * mib, 3), (20 * mib, 25 * mib - 1));
        let huge = 100 * 1024 * mib;
        let ps = part_size(huge, 5 * mib);
        assert!(part_count(huge, ps) <= MAX_PARTS);
        assert_eq!(ps % mib, 0);
        let meta = ObjectMeta::default();
        let mut rec = ObjectRecord::pending("j", "r", "k", &meta, ObjectOp::Copy, "t");
        rec.parts.insert("2".into(), "e".into());
        assert_eq!(rec.missing_parts(1, 3), vec![1, 3]);
    }

    #[test]
    fn delta_compares_size_then_etag_then_time() {
        let src = ObjectMeta {
            size: 5,
            etag: Some("\"abc\"".into()),
            last_modified: Some("2024-01-02T00:00:00Z".into()),
            source_etag: None,
        };
        assert!(!unchanged(&src, None));
        let same = ObjectMeta {
            etag: Some("abc".into()),
            ..src.clone()
        };
        assert!(unchanged(&src, Some(&same)));
        let bigger = ObjectMeta {
            size: 6,
            ..same.clone()
        };
        assert!(!unchanged(&src, Some(&bigger)));
        let copied_multipart = ObjectMeta {
            etag: Some("zzz-3".into()),
            source_etag: Some("abc".into()),
            last_modified: Some("2020-01-01T00:00:00Z".into()),
            ..src.clone()
        };
        assert!(unchanged(&src, Some(&copied_multipart)));
        let copied_other_version = ObjectMeta {
            source_etag: Some("old".into()),
            last_modified: Some("2030-01-01T00:00:00Z".into()),
            ..copied_multipart.clone()
        };
        assert!(!unchanged(&src, Some(&copied_other_version)));
        let foreign_newer = ObjectMeta {
            etag: Some("other".into()),
            source_etag: None,
            last_modified: Some("2024-01-03T00:00:00Z".into()),
            size: 5,
        };
        assert!(unchanged(&src, Some(&foreign_newer)));
        let foreign_older = ObjectMeta {
            last_modified: Some("2024-01-01T00:00:00Z".into()),
            ..foreign_newer
        };
        assert!(!unchanged(&src, Some(&foreign_older)));
        let same_second = ObjectMeta {
            last_modified: src.last_modified.clone(),
            ..foreign_older
        };
        assert!(!unchanged(&src, Some(&same_second)));
    }

    #[test]
    fn backoff_is_full_jitter_under_an_exponential_cap() {
        assert_eq!(backoff_ms(0, 100, 10_000, 0.999), 99);
        assert_eq!(backoff_ms(3, 100, 10_000, 0.5), 400);
        assert_eq!(backoff_ms(20, 100, 10_000, 0.5), 5_000);
        assert_eq!(backoff_ms(5, 100, 10_000, 0.0), 0);
    }

    #[test]
    fn copy_decisions_follow_action_size_key_and_destination() {
        let obj = |key: &str, size| ObjectRef {
            key: key.into(),
            size,
            etag: Some("\"e1\"".into()),
            last_modified: None,
        };
        let same = ObjectMeta {
            size: 4,
            etag: Some("e1".into()),
            ..Default::default()
        };
        fn d(a: Action, o: &ObjectRef, dest: Option<&ObjectMeta>) -> CopyDecision {
            copy_decision(a, "src/", "dst", o, dest)
        }
        assert_eq!(
            d(Action::Sync, &obj("src/a", 4), Some(&same)),
            CopyDecision::Copy("dst/a".into())
        );
        assert_eq!(
            d(Action::Delta, &obj("src/a", 4), Some(&same)),
            CopyDecision::Skip("unchanged at the destination")
        );
        assert_eq!(
            d(Action::Diff, &obj("src/a", 4), None),
            CopyDecision::Copy("dst/a".into())
        );
        assert_eq!(
            d(Action::Sync, &obj("src/e", 0), None),
            CopyDecision::Skip("empty object")
        );
        assert!(matches!(
            d(Action::Sync, &obj("src/../x", 4), None),
            CopyDecision::Fail(_)
        ));
    }

    #[test]
    fn only_destination_objects_without_a_source_are_deleted() {
        let sources = ["src/a".to_string()];
        let exists = |k: &str| sources.iter().any(|s| s == k);
        assert!(!delete_decision("src/", "dst", "dst/a", exists));
        assert!(delete_decision("src/", "dst", "dst/gone", exists));
        assert!(!delete_decision("src/", "dst", "elsewhere/x", exists));
    }

    #[test]
    fn a_cancelled_run_has_ended() {
        let run = Run::new("j", "r", Trigger::Api, "t")
            .cancel("stop".into(), "t2")
            .unwrap();
        assert_eq!(run.status, RunStatus::Cancelled);
        assert!(run.status.is_terminal());
        assert!(run.cancel("again".into(), "t3").is_err());
    }

    #[test]
    fn source_keys_invert_destination_keys() {
        let d = destination_key("docs/", "jobs/j1", "docs/a/b.txt").unwrap();
        assert_eq!(
            source_keys_for("docs/", "jobs/j1", &d),
            vec!["docs/a/b.txt"]
        );
        let d = destination_key("docs", "m/", "docs/x").unwrap();
        assert!(source_keys_for("docs", "m/", &d).contains(&"docs/x".to_string()));
        assert!(source_keys_for("", "m", "elsewhere/x").is_empty());
    }

    #[test]
    fn destination_keys_cannot_escape_the_prefix() {
        assert_eq!(
            destination_key("docs/", "jobs/j1", "docs/a/b.txt").unwrap(),
            "jobs/j1/a/b.txt"
        );
        assert_eq!(destination_key("", "", "a.txt").unwrap(), "a.txt");
        assert!(destination_key("", "jobs/j1", "../../etc/passwd").is_err());
        assert!(destination_key("", "jobs/j1", "a/./b").is_err());
        assert!(destination_key("", "jobs/j1", "a\\..\\b").is_err());
        assert_eq!(
            destination_key("", "jobs/j1", "/abs").unwrap(),
            "jobs/j1/abs"
        );
    }
}
