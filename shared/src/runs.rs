//! Starting a run of a sync job on request (the scheduler API's run now, api-jobs' on-demand runs):
//! claim the job for the run, create the run, send its `start_run` message; if any step fails the
//! claim is undone, so a job is never left blocked by a run that will never start.

use crate::domain::now_rfc3339;
use crate::domain::sync::{Job, Run, Trigger};
use crate::keys::{IndexKey, Key};
use crate::messages::SyncMessage;
use crate::queue::Queue;
use crate::store::{Meta, Store, StoreError};

/// What a start request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Run `run_id` was created and its start message sent.
    New,
    /// The job already has this run starting or running; nothing was started.
    Busy(String),
}

/// A job's item keeps its listing index entry through every transition.
pub fn job_meta(j: &Job) -> Meta {
    IndexKey::job(&j.created_at, &j.job_id).into()
}

/// Starts run `run_id` of job `job_id`. `NotFound` if the job does not exist.
pub async fn start(
    store: &Store,
    queue: &Queue,
    job_id: &str,
    run_id: &str,
    trigger: Trigger,
) -> Result<Started, anyhow::Error> {
    let now = now_rfc3339();
    match store
        .transition(&Key::job(job_id), job_meta, |j: Job| {
            j.start_run(run_id, &now)
        })
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict(c)) => {
            let active = store
                .get::<Job>(&Key::job(job_id))
                .await?
                .and_then(|j| j.value.active_run);
            return match active {
                Some(a) => Ok(Started::Busy(a)),
                // Freed in between: report the conflict rather than loop.
                None => Err(StoreError::Conflict(c).into()),
            };
        }
        Err(e) => return Err(e.into()),
    }
    let run = Run::new(job_id, run_id, trigger, &now);
    let sent = match store
        .create(&Key::run(job_id, run_id), &Meta::default(), &run)
        .await
    {
        Ok(()) => queue
            .send(&SyncMessage::StartRun {
                job_id: job_id.to_string(),
                trigger,
                run_id: Some(run_id.to_string()),
            })
            .await
            .map(|_| ())
            .map_err(anyhow::Error::from),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = sent {
        let msg = format!("{e:#}");
        let _ = store
            .transition(
                &Key::run(job_id, run_id),
                |_: &Run| Meta::default(),
                |r: Run| r.fail(msg.clone(), &now_rfc3339()),
            )
            .await;
        let _ = store
            .transition(&Key::job(job_id), job_meta, |j: Job| {
                j.finish_run(run_id, &now_rfc3339())
            })
            .await;
        return Err(e);
    }
    Ok(Started::New)
}

/// Cancels run `run_id` of job `job_id` if it has not ended, and frees the job for its next run.
/// Returns whether this call cancelled it.
pub async fn cancel(
    store: &Store,
    job_id: &str,
    run_id: &str,
    reason: &str,
) -> Result<bool, StoreError> {
    let cancelled = match store
        .transition(
            &Key::run(job_id, run_id),
            |_: &Run| Meta::default(),
            |r: Run| r.cancel(reason.to_string(), &now_rfc3339()),
        )
        .await
    {
        Ok(_) => true,
        Err(StoreError::Conflict(_)) | Err(StoreError::NotFound) => false,
        Err(e) => return Err(e),
    };
    match store
        .transition(&Key::job(job_id), job_meta, |j: Job| {
            j.finish_run(run_id, &now_rfc3339())
        })
        .await
    {
        Ok(_) | Err(StoreError::NotFound) => Ok(cancelled),
        Err(e) => Err(e),
    }
}
