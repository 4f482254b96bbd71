//! Event files (rokt): the line format `<ISO-8601 timestamp> <email> <session id>`, why a line is
//! rejected, the ingest status of a file kept in DynamoDB with its transitions, and the time-range query
//! parameters. Pure: the worker and the API apply these with their adapters.

use super::Conflict;
use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest email and session id a row holds (the SQL columns are this wide).
pub const MAX_EMAIL: usize = 320;
pub const MAX_SESSION_ID: usize = 128;
/// Longest filename (object key) the events tables index.
pub const MAX_FILENAME: usize = 768;
/// How many rejected lines a file's status keeps as samples.
pub const MAX_REJECTED_SAMPLES: usize = 10;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One accepted line, its time in UTC (whole seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_time: NaiveDateTime,
    pub email: String,
    pub session_id: String,
}

/// Why a line was not loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reject {
    /// The line is the literal `null`.
    Null,
    /// A blank line.
    Empty,
    /// Not exactly three space-separated fields.
    FieldCount,
    /// The timestamp is not an ISO-8601 / RFC 3339 date-time with `Z` or `±hh:mm` (hour 25, day 32, ...).
    BadTimestamp,
    /// A valid timestamp outside what SQL DATETIME holds (years 1000-9999).
    TimestampOutOfRange,
    /// The email or session id is longer than a row holds.
    FieldTooLong,
    /// The bytes are not UTF-8.
    NotUtf8,
    /// Longer than [`MAX_LINE`] bytes.
    LineTooLong,
}

impl Reject {
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Null => "null",
            Reject::Empty => "empty",
            Reject::FieldCount => "field_count",
            Reject::BadTimestamp => "bad_timestamp",
            Reject::TimestampOutOfRange => "timestamp_out_of_range",
            Reject::FieldTooLong => "field_too_long",
            Reject::NotUtf8 => "not_utf8",
            Reject::LineTooLong => "line_too_long",
        }
    }
}

/// Lines longer than this are rejected without being held in memory whole.
pub const MAX_LINE: usize = 4096;

/// Strips a UTF-8 byte-order mark from the start of a file's first line.
pub fn strip_bom(first_line: &[u8]) -> &[u8] {
    first_line.strip_prefix(BOM).unwrap_or(first_line)
}

/// Parses an RFC 3339 timestamp (`Z` or `±hh:mm`) into UTC.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Parses one line (without its line terminator; `\r` is tolerated).
pub fn parse_line(line: &[u8]) -> Result<Event, Reject> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| Reject::NotUtf8)?;
    let text = text.trim();
    if text.is_empty() {
        return Err(Reject::Empty);
    }
    if text.eq_ignore_ascii_case("null") {
        return Err(Reject::Null);
    }
    let mut fields = text.split_ascii_whitespace();
    let (Some(ts), Some(email), Some(session), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(Reject::FieldCount);
    };
    if email.eq_ignore_ascii_case("null") || session.eq_ignore_ascii_case("null") {
        return Err(Reject::Null);
    }
    let time = parse_timestamp(ts).ok_or(Reject::BadTimestamp)?;
    if !(1000..=9999).contains(&time.year()) {
        return Err(Reject::TimestampOutOfRange);
    }
    if email.len() > MAX_EMAIL || session.len() > MAX_SESSION_ID {
        return Err(Reject::FieldTooLong);
    }
    Ok(Event {
        event_time: time.naive_utc().with_nanosecond_zero(),
        email: email.to_string(),
        session_id: session.to_string(),
    })
}

trait TruncateNanos {
    fn with_nanosecond_zero(self) -> Self;
}

impl TruncateNanos for NaiveDateTime {
    fn with_nanosecond_zero(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap_or(self)
    }
}

/// The answer's time format: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_event_time(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A rejected line kept as a sample: its 1-based number and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedLine {
    pub line: u64,
    pub reason: Reject,
}

/// Rejection counters of one load: per reason, and the first few lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejections {
    pub by_reason: BTreeMap<String, u64>,
    pub samples: Vec<RejectedLine>,
}

impl Rejections {
    pub fn record(&mut self, line: u64, reason: Reject) {
        *self
            .by_reason
            .entry(reason.as_str().to_string())
            .or_default() += 1;
        if self.samples.len() < MAX_REJECTED_SAMPLES {
            self.samples.push(RejectedLine { line, reason });
        }
    }
    pub fn total(&self) -> u64 {
        self.by_reason.values().sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestStatus {
    /// Requested (API) or notified (S3), not started yet.
    Queued,
    /// A load is in progress (possibly across several invocations).
    Loading,
    /// The last load finished and is what queries see.
    Loaded,
    /// The last load could not finish (missing object, filename too long, ...); see `error`.
    Failed,
}

/// Where a load stands: the next byte to read, lines read, rows loaded. The worker writes it to SQL in the
/// same transaction as each batch (the exact copy it resumes from) and mirrors it here after the commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The load (generation) this checkpoint belongs to.
    pub load_id: u64,
    pub byte_offset: u64,
    pub lines: u64,
    pub rows_loaded: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    #[serde(default)]
    pub requested_at: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Wall time of the load from its first to its last batch, across invocations.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub lines_per_sec: Option<u64>,
    /// Invocations the load took (more than one when it resumed from a checkpoint).
    #[serde(default)]
    pub invocations: u32,
}

/// The status item of one file (key [`crate::keys::Key::ingest_file`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestFile {
    pub filename: String,
    pub bucket: String,
    pub key: String,
    pub status: IngestStatus,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub etag: Option<String>,
    pub accepted: u64,
    pub rejected: u64,
    #[serde(default)]
    pub rejected_by_reason: BTreeMap<String, u64>,
    #[serde(default)]
    pub rejected_samples: Vec<RejectedLine>,
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
    #[serde(default)]
    pub timings: Timings,
    #[serde(default)]
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl IngestFile {
    pub fn queued(bucket: &str, key: &str, now: &str) -> IngestFile {
        IngestFile {
            filename: key.to_string(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            status: IngestStatus::Queued,
            size: None,
            etag: None,
            accepted: 0,
            rejected: 0,
            rejected_by_reason: BTreeMap::new(),
            rejected_samples: Vec::new(),
            checkpoint: None,
            timings: Timings {
                requested_at: Some(now.to_string()),
                ..Timings::default()
            },
            error: None,
            created_at: now.to_string(),
            updated_at: now.to_string(),
        }
    }

    /// A new request for the file: shown as queued unless a load is running (which the request will
    /// replace or resume when the worker gets it).
    pub fn requeue(mut self, bucket: &str, now: &str) -> Result<IngestFile, Conflict> {
        if self.status != IngestStatus::Loading {
            self.status = IngestStatus::Queued;
            self.error = None;
        }
        self.bucket = bucket.to_string();
        self.timings.requested_at = Some(now.to_string());
        self.updated_at = now.to_string();
        Ok(self)
    }

    /// The worker starts (or resumes) load `cp.load_id`. A new load resets the counters; resuming the
    /// current one keeps them.
    pub fn begin(
        mut self,
        cp: Checkpoint,
        rejections: &Rejections,
        etag: &str,
        size: u64,
        now: &str,
    ) -> Result<IngestFile, Conflict> {
        let same_load = self
            .checkpoint
            .as_ref()
            .is_some_and(|c| c.load_id == cp.load_id);
        if let Some(c) = &self.checkpoint
            && c.load_id > cp.load_id
        {
            return Err(Conflict(format!(
                "load {} was superseded by load {}",
                cp.load_id, c.load_id
            )));
        }
        if !same_load {
            self.timings.started_at = Some(now.to_string());
            self.timings.finished_at = None;
            self.timings.duration_ms = None;
            self.timings.lines_per_sec = None;
            self.timings.invocations = 0;
        }
        self.timings.invocations += 1;
        self.status = IngestStatus::Loading;
        self.etag = Some(etag.to_string());
        self.size = Some(size);
        self.error = None;
        self.set_counts(cp, rejections);
        self.updated_at = now.to_string();
        Ok(self)
    }

    /// A batch of the current load was committed.
    pub fn progress(
        mut self,
        cp: Checkpoint,
        rejections: &Rejections,
        now: &str,
    ) -> Result<IngestFile, Conflict> {
        self.check_load(cp.load_id)?;
        if self.status != IngestStatus::Loading {
            return Err(Conflict(format!("load {} is not running", cp.load_id)));
        }
        self.set_counts(cp, rejections);
        self.updated_at = now.to_string();
        Ok(self)
    }

    /// The load finished and was swapped in. Idempotent for the same load.
    pub fn finish(
        mut self,
        cp: Checkpoint,
        rejections: &Rejections,
        duration_ms: u64,
        now: &str,
    ) -> Result<IngestFile, Conflict> {
        self.check_load(cp.load_id)?;
        let lines = cp.lines;
        self.set_counts(cp, rejections);
        self.status = IngestStatus::Loaded;
        self.timings.finished_at = Some(now.to_string());
        self.timings.duration_ms = Some(duration_ms);
        self.timings.lines_per_sec = Some(lines * 1000 / duration_ms.max(1));
        self.updated_at = now.to_string();
        Ok(self)
    }

    pub fn fail(mut self, error: String, now: &str) -> Result<IngestFile, Conflict> {
        self.status = IngestStatus::Failed;
        self.error = Some(error);
        self.updated_at = now.to_string();
        Ok(self)
    }

    fn check_load(&self, load_id: u64) -> Result<(), Conflict> {
        match &self.checkpoint {
            Some(c) if c.load_id == load_id => Ok(()),
            Some(c) => Err(Conflict(format!(
                "load {load_id} is not the file's current load ({})",
                c.load_id
            ))),
            None => Err(Conflict(format!("load {load_id} was never started"))),
        }
    }

    fn set_counts(&mut self, cp: Checkpoint, rejections: &Rejections) {
        self.accepted = cp.rows_loaded;
        self.rejected = rejections.total();
        self.rejected_by_reason = rejections.by_reason.clone();
        self.rejected_samples = rejections.samples.clone();
        self.checkpoint = Some(cp);
    }
}

/// Largest page of a time-range query, and the page size when none is given.
pub const MAX_QUERY_LIMIT: u32 = 10_000;
pub const DEFAULT_QUERY_LIMIT: u32 = 1_000;

/// Where the next page of a query starts: after (event_time, line) of the last row returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryCursor {
    pub event_time: NaiveDateTime,
    pub seq: u64,
}

impl QueryCursor {
    /// Opaque to clients: `<unix seconds>.<line>` in hex, prefixed so a cursor from elsewhere fails.
    pub fn encode(&self) -> String {
        format!(
            "ev1.{:x}.{:x}",
            self.event_time.and_utc().timestamp(),
            self.seq
        )
    }
    pub fn decode(s: &str) -> Option<QueryCursor> {
        let mut parts = s.strip_prefix("ev1.")?.split('.');
        let secs = i64::from_str_radix(parts.next()?, 16).ok()?;
        let seq = u64::from_str_radix(parts.next()?, 16).ok()?;
        if parts.next().is_some() {
            return None;
        }
        let event_time = DateTime::from_timestamp(secs, 0)?.naive_utc();
        Some(QueryCursor { event_time, seq })
    }
}

/// A time-range query after validation: bounds in UTC, inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeQuery {
    pub filename: String,
    pub from: NaiveDateTime,
    pub to: NaiveDateTime,
    pub limit: u32,
    pub after: Option<QueryCursor>,
}

/// A query parameter that is wrong: (field, rule).
pub type FieldError = (&'static str, String);

/// Validates a query's parts. Dates are RFC 3339 (`Z` or an offset, honoured); a date-time without a zone
/// is read as UTC, as the original's users sent `...Z` anyway.
pub fn range_query(
    filename: &str,
    from: &str,
    to: &str,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<RangeQuery, FieldError> {
    if filename.trim().is_empty() {
        return Err(("filename", "must not be empty".into()));
    }
    if filename.len() > MAX_FILENAME {
        return Err(("filename", format!("must be at most {MAX_FILENAME} bytes")));
    }
    let from = parse_bound(from).ok_or_else(|| ("from", bound_rule(from)))?;
    let to = parse_bound(to).ok_or_else(|| ("to", bound_rule(to)))?;
    if from > to {
        return Err(("from", "must not be after to".into()));
    }
    let limit = limit.unwrap_or(DEFAULT_QUERY_LIMIT);
    if !(1..=MAX_QUERY_LIMIT).contains(&limit) {
        return Err(("limit", format!("must be between 1 and {MAX_QUERY_LIMIT}")));
    }
    let after = cursor
        .map(|c| {
            QueryCursor::decode(c).ok_or(("cursor", "is not a cursor this API returned".into()))
        })
        .transpose()?;
    Ok(RangeQuery {
        filename: filename.to_string(),
        from,
        to,
        limit,
        after,
    })
}

fn bound_rule(given: &str) -> String {
    format!("{given:?} is not an ISO-8601 date-time like 2000-01-01T18:00:00Z")
}

fn parse_bound(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    if let Some(t) = parse_timestamp(s) {
        return Some(t.naive_utc());
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        parse_timestamp(s).unwrap().naive_utc()
    }

    #[test]
    fn a_good_line_parses_and_offsets_become_utc() {
        let e = parse_line(b"2000-01-01T17:25:49+02:00 a@b.c 1f90471c-adc3").unwrap();
        assert_eq!(format_event_time(&e.event_time), "2000-01-01T15:25:49Z");
        assert_eq!(e.email, "a@b.c");
        assert_eq!(e.session_id, "1f90471c-adc3");
        let z = parse_line(b"2000-01-01T17:25:49Z a@b.c s\r").unwrap();
        assert_eq!(format_event_time(&z.event_time), "2000-01-01T17:25:49Z");
    }

    #[test]
    fn impossible_dates_null_and_wrong_field_counts_are_rejected_with_their_reason() {
        assert_eq!(
            parse_line(b"2000-01-28T25:49:35Z a@b.c s"),
            Err(Reject::BadTimestamp)
        );
        assert_eq!(
            parse_line(b"2000-01-32T22:12:30Z a@b.c s"),
            Err(Reject::BadTimestamp)
        );
        assert_eq!(parse_line(b"null"), Err(Reject::Null));
        assert_eq!(
            parse_line(b"2000-01-01T00:00:00Z a@b.c"),
            Err(Reject::FieldCount)
        );
        assert_eq!(
            parse_line(b"2000-01-01T00:00:00Z a b c"),
            Err(Reject::FieldCount)
        );
        assert_eq!(parse_line(b"  "), Err(Reject::Empty));
        assert_eq!(parse_line(b"\xff\xfe x y"), Err(Reject::NotUtf8));
        assert_eq!(
            parse_line(b"0999-01-01T00:00:00Z a@b.c s"),
            Err(Reject::TimestampOutOfRange)
        );
        let long = format!("2000-01-01T00:00:00Z {}@b.c s", "x".repeat(MAX_EMAIL));
        assert_eq!(parse_line(long.as_bytes()), Err(Reject::FieldTooLong));
    }

    #[test]
    fn bom_is_stripped_only_at_the_start() {
        assert_eq!(strip_bom(b"\xEF\xBB\xBF2000"), b"2000");
        assert_eq!(strip_bom(b"2000"), b"2000");
    }

    #[test]
    fn rejections_count_every_line_but_keep_few_samples() {
        let mut r = Rejections::default();
        for i in 0..25 {
            r.record(
                i,
                if i % 2 == 0 {
                    Reject::Null
                } else {
                    Reject::BadTimestamp
                },
            );
        }
        assert_eq!(r.total(), 25);
        assert_eq!(r.by_reason["null"], 13);
        assert_eq!(r.samples.len(), MAX_REJECTED_SAMPLES);
        assert_eq!(
            serde_json::to_value(&r.samples[0]).unwrap(),
            serde_json::json!({"line": 0, "reason": "null"})
        );
    }

    #[test]
    fn query_bounds_honour_offsets_and_are_validated_by_field() {
        let q = range_query(
            "f",
            "2000-01-01T20:00:00+02:00",
            "2000-01-02T00:00:00Z",
            None,
            None,
        )
        .unwrap();
        assert_eq!(q.from, t("2000-01-01T18:00:00Z"));
        assert_eq!(q.limit, DEFAULT_QUERY_LIMIT);
        assert_eq!(
            range_query("f", "yesterday", "2000-01-02T00:00:00Z", None, None)
                .unwrap_err()
                .0,
            "from"
        );
        assert_eq!(
            range_query(
                "f",
                "2000-01-01T00:00:00Z",
                "2000-01-32T00:00:00Z",
                None,
                None
            )
            .unwrap_err()
            .0,
            "to"
        );
        let after = range_query(
            "f",
            "2000-01-03T00:00:00Z",
            "2000-01-02T00:00:00Z",
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(after.0, "from");
        assert!(after.1.contains("after"));
        assert_eq!(
            range_query(
                "f",
                "2000-01-01T00:00:00Z",
                "2000-01-02T00:00:00Z",
                Some(0),
                None
            )
            .unwrap_err()
            .0,
            "limit"
        );
        assert_eq!(
            range_query(
                "",
                "2000-01-01T00:00:00Z",
                "2000-01-02T00:00:00Z",
                None,
                None
            )
            .unwrap_err()
            .0,
            "filename"
        );
        assert_eq!(
            range_query("f", "2000-01-01T00:00:00", "2000-01-02", None, None)
                .unwrap_err()
                .0,
            "to"
        );
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_fail() {
        let c = QueryCursor {
            event_time: t("2000-01-02T20:59:05Z"),
            seq: 17,
        };
        assert_eq!(QueryCursor::decode(&c.encode()), Some(c));
        assert_eq!(QueryCursor::decode("abc"), None);
        assert_eq!(QueryCursor::decode("ev1.zz.1"), None);
    }

    fn cp(load_id: u64, rows: u64) -> Checkpoint {
        Checkpoint {
            load_id,
            byte_offset: rows * 10,
            lines: rows,
            rows_loaded: rows,
        }
    }

    #[test]
    fn a_newer_load_supersedes_and_the_older_one_can_no_longer_report() {
        let r = Rejections::default();
        let f = IngestFile::queued("b", "k", "t0")
            .begin(cp(1, 0), &r, "e", 10, "t1")
            .unwrap()
            .progress(cp(1, 5), &r, "t2")
            .unwrap()
            .begin(cp(2, 0), &r, "e", 10, "t3")
            .unwrap();
        assert_eq!(f.accepted, 0);
        assert!(f.clone().progress(cp(1, 9), &r, "t4").is_err());
        assert!(f.clone().begin(cp(1, 9), &r, "e", 10, "t4").is_err());
        let done = f.finish(cp(2, 7), &r, 1000, "t5").unwrap();
        assert_eq!(done.status, IngestStatus::Loaded);
        assert_eq!(done.accepted, 7);
        assert_eq!(done.timings.lines_per_sec, Some(7));
    }

    #[test]
    fn resuming_the_same_load_keeps_its_start_and_counts_invocations() {
        let r = Rejections::default();
        let f = IngestFile::queued("b", "k", "t0")
            .begin(cp(3, 0), &r, "e", 10, "t1")
            .unwrap()
            .begin(cp(3, 4), &r, "e", 10, "t2")
            .unwrap();
        assert_eq!(f.timings.started_at.as_deref(), Some("t1"));
        assert_eq!(f.timings.invocations, 2);
        assert_eq!(f.accepted, 4);
    }
}
