//! Transfer tasks (the Datastore seed): a task starts running, can be paused and resumed, and is
//! aborted at most once; an aborted or expired task is gone for every caller (404), as in the
//! original. Tasks expire [`TASK_TTL_SECS`] after creation; DynamoDB's TTL removes the item later,
//! so every read checks the expiry itself.

use super::Conflict;
use serde::{Deserialize, Serialize};

/// How long a task lives (the original's default: 24 h).
pub const TASK_TTL_SECS: i64 = 24 * 3600;

/// The message of a control on a task that is aborted or expired: callers map it to 404.
pub const GONE: &str = "task not found";

/// Work asked of a paused task waits for a resume: callers answer 409 with this.
pub const PAUSED: &str = "task is paused";

/// A file uploaded through a task, as the account's file list shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredFile {
    pub owner: String,
    pub name: String,
    pub size: u64,
    pub etag: String,
    pub content_type: String,
    /// RFC 3339, UTC: what `from_date`/`to_date` filter on.
    pub uploaded_at: String,
    /// Where the bytes are in the data bucket.
    pub s3_key: String,
    pub task_id: String,
}

/// The data bucket key of an account's file: under the account's own prefix, the name being a single
/// checked path segment ([`check_filename`]), so no name reaches another account's files.
pub fn file_key(owner: &str, name: &str) -> String {
    format!("transfers/{owner}/files/{name}")
}

/// A file name as uploads take it: 1-255 bytes, one path segment (no `/` or `\`), not `.` or `..`,
/// no control characters. The original joined names onto its storage folder unchecked.
pub fn check_filename(name: &str) -> Result<(), &'static str> {
    let rule = "must be 1-255 bytes, without '/', '\\' or control characters, and not '.' or '..'";
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if ok { Ok(()) } else { Err(rule) }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Running,
    Paused,
    Aborted,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Task {
    pub task_id: String,
    /// The username of the account that created it; nobody else sees it.
    pub owner: String,
    pub status: TaskStatus,
    pub created_at: String,
    pub updated_at: String,
    /// Unix seconds from which the task is gone (the store keeps `expires_at` for its TTL).
    pub lives_until: i64,
    /// The file uploaded through this task (a task carries one upload, as in the original).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<String>,
    /// The zip download this task builds (a task carries one upload or one download).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<Download>,
    /// A large upload in parts, under way (cleared when it completes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<MultipartUpload>,
}

/// S3's bounds on a multipart upload's parts.
pub const MIN_PART: u64 = 5 * 1024 * 1024;
pub const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
pub const MAX_PARTS: u64 = 10_000;
/// The part size when none is asked for.
pub const DEFAULT_PART: u64 = 8 * 1024 * 1024;

/// A file uploaded in parts straight to the data bucket through presigned part URLs: the way past
/// Lambda's 6 MB payload, and what makes an upload pause and resume (part URLs are handed out only
/// while the task runs; S3 keeps the parts already sent, so a resumed upload sends only the others).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MultipartUpload {
    pub filename: String,
    pub size: u64,
    pub part_size: u64,
    pub upload_id: String,
    pub content_type: String,
    pub started_at: String,
}

impl MultipartUpload {
    pub fn parts(&self) -> u64 {
        self.size.div_ceil(self.part_size).max(1)
    }

    /// The length part `n` (1-based) must have.
    pub fn part_len(&self, n: u64) -> u64 {
        let start = (n - 1) * self.part_size;
        self.size.saturating_sub(start).min(self.part_size)
    }
}

/// Checks a multipart upload's size and part size: the part size within S3's bounds and at most
/// 10,000 parts. Returns the part size to use, or the field and the rule it breaks.
pub fn check_parts(size: u64, part_size: Option<u64>) -> Result<u64, (&'static str, String)> {
    if size == 0 || size > MAX_PART * MAX_PARTS {
        return Err((
            "size",
            "must be between 1 byte and 5 TiB (uploads under 6 MB can be one PUT)".into(),
        ));
    }
    let part = part_size.unwrap_or_else(|| DEFAULT_PART.max(size.div_ceil(MAX_PARTS)));
    if !(MIN_PART..=MAX_PART).contains(&part) {
        return Err((
            "part_size",
            format!("must be between {MIN_PART} and {MAX_PART} bytes"),
        ));
    }
    if size.div_ceil(part) > MAX_PARTS {
        return Err((
            "part_size",
            format!("must split size into at most {MAX_PARTS} parts"),
        ));
    }
    Ok(part)
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DownloadStatus {
    Building,
    Ready,
    Failed,
}

/// A zip of the account's files matching a filter, built by worker-transfer into the data bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Download {
    pub status: DownloadStatus,
    /// The filter as asked (`filename` pattern, `from_date`, `to_date`): a later request for the same
    /// task must ask the same.
    pub filename: Option<String>,
    pub from_date: Option<String>,
    pub to_date: Option<String>,
    pub files_total: u64,
    pub bytes_total: u64,
    pub files_done: u64,
    pub bytes_done: u64,
    /// Files that were deleted after the selection was made (left out of the zip).
    #[serde(default)]
    pub files_missing: u64,
    /// Where the finished zip is (data bucket).
    pub zip_key: String,
    pub zip_size: Option<u64>,
    pub error: Option<String>,
    /// A worker slice holds the build until then (unix ms); another delivery leaves it alone.
    pub lease_until_ms: Option<i64>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// One file of a download's selection, fixed when the download is asked for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Selected {
    pub name: String,
    pub s3_key: String,
    pub size: u64,
    pub uploaded_at: String,
}

/// How a task item is stored besides its value: listed under its owner, removed by TTL after expiry.
#[cfg(feature = "dynamo")]
pub fn task_meta(t: &Task) -> crate::store::Meta {
    crate::store::Meta {
        index: Some(crate::keys::IndexKey::task(
            &t.owner,
            &t.created_at,
            &t.task_id,
        )),
        expires_at: Some(t.lives_until),
    }
}

/// The data bucket prefix of one task's download: the zip, and the build's checkpoint beside it.
pub fn download_prefix(owner: &str, task_id: &str) -> String {
    format!("transfers/{owner}/downloads/{task_id}")
}

/// The tag on every object a download writes (the zip, its checkpoint, tail and selection): the data
/// bucket's lifecycle rule expires them after the task has (tasks live 24 h).
pub const DOWNLOAD_TAGGING: &str = "ferry-kind=transfer-download";

/// Where a download's selection is kept while it builds (written by the API, read by the worker).
pub fn selection_key(owner: &str, task_id: &str) -> String {
    format!("{}/selection.json", download_prefix(owner, task_id))
}

/// Where a download's finished zip is.
pub fn zip_key(owner: &str, task_id: &str) -> String {
    format!("{}.zip", download_prefix(owner, task_id))
}

/// What a caller asks of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Abort,
}

impl Task {
    pub fn new(task_id: &str, owner: &str, now: &str, now_unix: i64) -> Task {
        Task {
            task_id: task_id.to_string(),
            owner: owner.to_string(),
            status: TaskStatus::Running,
            created_at: now.to_string(),
            updated_at: now.to_string(),
            lives_until: now_unix + TASK_TTL_SECS,
            uploaded: None,
            download: None,
            multipart: None,
        }
    }

    /// The task once `file` is uploaded through it: only a live, running task without an upload
    /// takes one ([`GONE`] when aborted or expired, a conflict when paused or used).
    pub fn upload(&self, file: &str, now: &str, now_unix: i64) -> Result<Task, Conflict> {
        if !self.live(now_unix) {
            return Err(Conflict(GONE.into()));
        }
        if self.status == TaskStatus::Paused {
            return Err(Conflict(PAUSED.into()));
        }
        if let Some(done) = &self.uploaded {
            return Err(Conflict(format!("this task already uploaded {done}")));
        }
        if self.download.is_some() {
            return Err(Conflict("this task is a download".into()));
        }
        Ok(Task {
            uploaded: Some(file.to_string()),
            multipart: None,
            updated_at: now.to_string(),
            ..self.clone()
        })
    }

    /// Neither aborted nor expired.
    pub fn live(&self, now_unix: i64) -> bool {
        self.status != TaskStatus::Aborted && now_unix < self.lives_until
    }

    /// The task after `control`: pausing a paused task or resuming a running one is a conflict
    /// ("already paused", "already running"); anything on a task that is not [`Task::live`] is
    /// [`GONE`].
    pub fn apply(&self, control: Control, now: &str, now_unix: i64) -> Result<Task, Conflict> {
        if !self.live(now_unix) {
            return Err(Conflict(GONE.into()));
        }
        let status = match (control, self.status) {
            (Control::Pause, TaskStatus::Paused) => return Err(Conflict("already paused".into())),
            (Control::Resume, TaskStatus::Running) => {
                return Err(Conflict("already running".into()));
            }
            (Control::Pause, _) => TaskStatus::Paused,
            (Control::Resume, _) => TaskStatus::Running,
            (Control::Abort, _) => TaskStatus::Aborted,
        };
        Ok(Task {
            status,
            updated_at: now.to_string(),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task::new("t1", "ada@example.com", "t0", 1_000)
    }

    #[test]
    fn a_task_pauses_resumes_and_aborts_once() {
        let t = task();
        assert_eq!(t.status, TaskStatus::Running);
        assert_eq!(t.lives_until, 1_000 + 24 * 3600);
        let p = t.apply(Control::Pause, "t1", 1_001).unwrap();
        assert_eq!(
            (p.status, p.updated_at.as_str()),
            (TaskStatus::Paused, "t1")
        );
        assert_eq!(
            p.apply(Control::Pause, "t2", 1_002).unwrap_err().0,
            "already paused"
        );
        let r = p.apply(Control::Resume, "t2", 1_002).unwrap();
        assert_eq!(r.status, TaskStatus::Running);
        assert_eq!(
            r.apply(Control::Resume, "t3", 1_003).unwrap_err().0,
            "already running"
        );
        // Abort from running and from paused; after it, everything is gone.
        let a = r.apply(Control::Abort, "t3", 1_003).unwrap();
        assert_eq!(a.status, TaskStatus::Aborted);
        assert_eq!(
            p.apply(Control::Abort, "t3", 1_003).unwrap().status,
            TaskStatus::Aborted
        );
        for c in [Control::Pause, Control::Resume, Control::Abort] {
            assert_eq!(a.apply(c, "t4", 1_004).unwrap_err().0, GONE);
        }
        assert!(!a.live(1_004));
    }

    #[test]
    fn a_task_takes_one_upload_while_running() {
        let t = task();
        let u = t.upload("a.txt", "t1", 1_001).unwrap();
        assert_eq!(u.uploaded.as_deref(), Some("a.txt"));
        assert!(
            u.upload("b.txt", "t2", 1_002)
                .unwrap_err()
                .0
                .contains("already uploaded a.txt")
        );
        let p = t.apply(Control::Pause, "t1", 1_001).unwrap();
        assert_eq!(p.upload("a.txt", "t2", 1_002).unwrap_err().0, PAUSED);
        let a = t.apply(Control::Abort, "t1", 1_001).unwrap();
        assert_eq!(a.upload("a.txt", "t2", 1_002).unwrap_err().0, GONE);
        assert_eq!(t.upload("a.txt", "t", t.lives_until).unwrap_err().0, GONE);
    }

    #[test]
    fn multipart_uploads_split_into_bounded_parts() {
        let mib = 1024 * 1024;
        assert_eq!(check_parts(20 * mib, None), Ok(DEFAULT_PART));
        assert_eq!(check_parts(20 * mib, Some(5 * mib)), Ok(5 * mib));
        assert_eq!(check_parts(20 * mib, Some(mib)).unwrap_err().0, "part_size");
        assert_eq!(check_parts(0, None).unwrap_err().0, "size");
        // A size too big for 10,000 default parts gets bigger parts.
        let big = 200_000 * mib;
        let p = check_parts(big, None).unwrap();
        assert!(big.div_ceil(p) <= MAX_PARTS && p >= DEFAULT_PART);
        assert_eq!(check_parts(big, Some(5 * mib)).unwrap_err().0, "part_size");
        let m = MultipartUpload {
            filename: "f".into(),
            size: 12 * mib + 3,
            part_size: 5 * mib,
            upload_id: "u".into(),
            content_type: "x".into(),
            started_at: "t".into(),
        };
        assert_eq!(m.parts(), 3);
        assert_eq!(
            (m.part_len(1), m.part_len(2), m.part_len(3)),
            (5 * mib, 5 * mib, 2 * mib + 3)
        );
    }

    #[test]
    fn file_names_stay_one_path_segment() {
        for ok in ["a.txt", "report 2026.csv", "..hidden", "é.bin", "a..b"] {
            assert!(check_filename(ok).is_ok(), "{ok}");
        }
        let long = "x".repeat(256);
        for bad in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "a\u{0}b",
            "a\nb",
            long.as_str(),
        ] {
            assert!(check_filename(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            file_key("ada@example.com", "a.txt"),
            "transfers/ada@example.com/files/a.txt"
        );
    }

    #[test]
    fn an_expired_task_is_gone() {
        let t = task();
        let end = t.lives_until;
        assert!(t.live(end - 1));
        assert!(!t.live(end));
        for c in [Control::Pause, Control::Resume, Control::Abort] {
            assert_eq!(t.apply(c, "later", end).unwrap_err().0, GONE);
        }
    }
}
