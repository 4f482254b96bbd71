//! Sync jobs (S3 -> S3), their runs and per-object records, with the transitions the engine and the API
//! apply. A job has at most one active run: starting a second one is a [`Conflict`].

use super::Conflict;
use serde::{Deserialize, Serialize};

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
}

impl RunStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Starting | RunStatus::Running)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RunCounts {
    pub total: u64,
    pub processed: u64,
    pub skipped: u64,
    pub failed: u64,
    pub bytes: u64,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub job_id: String,
    pub run_id: String,
    pub object_key: String,
    pub object_size: u64,
    pub last_position: u64,
    pub etag: Option<String>,
    pub status: ObjectStatus,
    pub attempts: u32,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
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

    pub fn begin(mut self) -> Result<Run, Conflict> {
        match self.status {
            RunStatus::Starting => {
                self.status = RunStatus::Running;
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
    fn second_run_of_a_busy_job_is_a_conflict() {
        let busy = job().start_run("r1", "t1").unwrap();
        assert_eq!(busy.active_run.as_deref(), Some("r1"));
        let err = busy.clone().start_run("r2", "t2").unwrap_err();
        assert!(err.0.contains("r1"));
        let free = busy.finish_run("r1", "t3").unwrap();
        assert!(free.start_run("r2", "t4").is_ok());
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
        let running = || Run::new("j", "r", Trigger::Api, "t").begin().unwrap();
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
