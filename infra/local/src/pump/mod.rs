//! `ferry-local pump`: what AWS does between ferry's resources and its functions, done locally. It reads
//! the template (which function consumes which queue, with what batch size and timeout) and
//! `resources.json` (the queues' URLs and ARNs), and runs
//! - one [`sqs::run_source`] loop per SQS event source (see [`sqs`] for retry timing and how invocation
//!   errors are told apart), and
//! - the [`schedules::SchedulePump`], which fires the schedules stored in the Scheduler API.
//!
//! S3 -> SQS notifications need nothing here: moto delivers them once `provision` configured the bucket.
//! SIGINT/SIGTERM stop receiving; invocations in flight finish first.

pub mod schedules;
pub mod sqs;

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::sync::watch;
use tracing::{error, info};

use crate::clients::Clients;
use crate::resolve::{DEFAULT_STACK, Resolver};
use crate::state::State;
use crate::template::Template;

pub const DEFAULT_WATCH_URL: &str = "http://127.0.0.1:9001";
const DEFAULT_RETRY_DELAY_SECS: i32 = 2;
/// Long-poll wait of each ReceiveMessage.
const WAIT_TIME_SECS: i32 = 5;
/// Lambda's invoke timeout is the function's; the pump allows this much on top (start-up, cold compile).
const INVOKE_TIMEOUT_MARGIN_SECS: u64 = 30;
const SCHEDULE_TICK: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct PumpSettings {
    pub watch_url: String,
    pub sqs: sqs::SqsLoopSettings,
}

impl PumpSettings {
    /// From `FERRY_WATCH_URL` (default http://127.0.0.1:9001), `FERRY_PUMP_RETRY_DELAY_SECS` (default 2)
    /// and `AWS_REGION`.
    pub fn from_env() -> Result<Self> {
        let watch_url = std::env::var("FERRY_WATCH_URL")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_WATCH_URL.to_string());
        let retry_delay_secs = match std::env::var("FERRY_PUMP_RETRY_DELAY_SECS") {
            Ok(v) if !v.is_empty() => v
                .parse::<i32>()
                .ok()
                .filter(|d| (0..=43_200).contains(d))
                .ok_or_else(|| {
                    anyhow!("FERRY_PUMP_RETRY_DELAY_SECS={v:?} must be 0..=43200 seconds")
                })?,
            _ => DEFAULT_RETRY_DELAY_SECS,
        };
        Ok(PumpSettings {
            watch_url,
            sqs: sqs::SqsLoopSettings {
                wait_time_secs: WAIT_TIME_SECS,
                retry_delay_secs,
                region: crate::resolve::region(),
            },
        })
    }
}

/// Poll loops per SQS source at most, locally: `FERRY_PUMP_MAX_POLLERS` (default 4; cargo lambda
/// watch's `--concurrency`, `FERRY_WATCH_CONCURRENCY`, is two more, for synchronous invocations). On AWS, Lambda runs up
/// to the source's `ScalingConfig.MaximumConcurrency` batches at once; a 2-core machine runs fewer. A
/// source without ScalingConfig gets one poll loop here.
pub fn local_max_pollers() -> u32 {
    std::env::var("FERRY_PUMP_MAX_POLLERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(4)
}

/// Every SQS event source of the template, with its queue resolved through `state`.
pub fn sqs_sources(template: &Template, state: &State) -> Result<Vec<sqs::SqsSource>> {
    let res = Resolver::new(template, state, DEFAULT_STACK);
    let mut out = Vec::new();
    for f in &template.functions {
        for ev in &f.sqs_events {
            let ctx = || format!("{} event {} (queue {})", f.logical_id, ev.name, ev.queue);
            let queue_url = res.reference(&ev.queue).with_context(ctx)?;
            let queue_arn = res.get_att(&ev.queue, "Arn").with_context(ctx)?;
            out.push(sqs::SqsSource {
                function: f.binary.clone(),
                queue_url,
                queue_arn,
                batch_size: ev.batch_size,
                report_batch_item_failures: ev.reports_batch_item_failures(),
                invoke_timeout: Duration::from_secs(f.timeout_secs + INVOKE_TIMEOUT_MARGIN_SECS),
                pollers: ev.max_concurrency.unwrap_or(1).min(local_max_pollers()),
            });
        }
    }
    Ok(out)
}

/// Runs every loop until `shutdown` turns true, then waits for them to finish their in-flight work.
pub async fn run(
    template: &Template,
    state: &State,
    clients: &Clients,
    settings: &PumpSettings,
    groups: schedules::GroupFilter,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    // Loops listen to an internal stop signal: the caller's shutdown, or a sibling loop panicking (the
    // others then stop cleanly and the pump exits with an error rather than run half-blind).
    let (stop_tx, stop) = watch::channel(false);
    let forward_tx = stop_tx.clone();
    let forward = tokio::spawn(async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        let _ = forward_tx.send(true);
    });
    let invoker = sqs::Invoker::new(&settings.watch_url)?;
    let sources = sqs_sources(template, state)?;
    info!(sources = sources.len(), watch = %settings.watch_url, retry_delay_s = settings.sqs.retry_delay_secs, "pump starting");

    let mut tasks = tokio::task::JoinSet::new();
    for s in sources {
        // Each poll loop receives, invokes and deletes on its own, as Lambda's pollers do.
        for _ in 0..s.pollers.max(1) {
            tasks.spawn(sqs::run_source(
                s.clone(),
                clients.sqs.clone(),
                invoker.clone(),
                settings.sqs.clone(),
                stop.clone(),
            ));
        }
    }
    let schedules =
        schedules::SchedulePump::new(clients.scheduler.clone(), clients.sqs.clone(), groups);
    tasks.spawn(schedules.run(SCHEDULE_TICK, stop.clone()));

    let mut failed = 0;
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            failed += 1;
            error!(error = %e, "a pump task panicked; stopping the others");
            let _ = stop_tx.send(true);
        }
    }
    forward.abort();
    info!("pump stopped");
    if failed > 0 {
        return Err(anyhow!("{failed} pump task(s) panicked"));
    }
    Ok(())
}
