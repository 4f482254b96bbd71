//! The local stand-in for EventBridge Scheduler's firing: moto stores schedules but never runs them. Every
//! tick (2 s) this lists the schedule groups and their schedules through the Scheduler API, reads new or
//! changed ones (keyed by group/name and LastModificationDate), computes the next firing with
//! `ferry_shared::schedule`, and when one is due sends the target's Input to the target queue.
//!
//! Supported: SQS targets (the only kind ferry uses), rate/cron/at expressions with a time zone,
//! StartDate/EndDate, State, ActionAfterCompletion=DELETE, the retry policy's maximum event age, and the
//! target's DLQ. A schedule whose expression or time zone does not parse is logged once and ignored until it
//! changes. Firings missed while the pump was not running are not replayed, except those due in the last
//! minute before a schedule was first seen.

use std::collections::{BTreeSet, HashMap, HashSet};

use anyhow::{Result, anyhow, bail};
use aws_sdk_scheduler::types::{ActionAfterCompletion, ScheduleState};
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use ferry_shared::schedule::ScheduleExpr;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::clients::sdk_message;

/// How far back a newly seen schedule's due firings are still delivered (covers the tick interval and
/// a schedule created just before the pump started).
const CATCH_UP: i64 = 60;
/// Scheduler's default retry window.
const DEFAULT_MAX_EVENT_AGE_SECS: i64 = 86_400;

/// Which groups to fire: all of them, or only the named ones (tests use their own group).
#[derive(Debug, Clone, Default)]
pub struct GroupFilter(pub Option<BTreeSet<String>>);

impl GroupFilter {
    pub fn all() -> Self {
        GroupFilter(None)
    }
    pub fn only(groups: impl IntoIterator<Item = String>) -> Self {
        GroupFilter(Some(groups.into_iter().collect()))
    }
    fn allows(&self, group: &str) -> bool {
        self.0.as_ref().is_none_or(|g| g.contains(group))
    }
}

/// One delivered firing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    pub group: String,
    pub name: String,
    pub scheduled: DateTime<Utc>,
    pub target: String,
}

type Key = (String, String);

struct Tracked {
    modified: Option<DateTime<Utc>>,
    /// None: ignored (unparseable expression, unsupported target, ...); already logged.
    plan: Option<Plan>,
}

struct Plan {
    expr: ScheduleExpr,
    tz: Tz,
    anchor: DateTime<Utc>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    enabled: bool,
    target_arn: String,
    input: String,
    message_group_id: Option<String>,
    dlq_arn: Option<String>,
    max_event_age: Duration,
    delete_after_completion: bool,
    next: Option<DateTime<Utc>>,
}

pub struct SchedulePump {
    scheduler: aws_sdk_scheduler::Client,
    sqs: aws_sdk_sqs::Client,
    filter: GroupFilter,
    tracked: HashMap<Key, Tracked>,
    queue_urls: HashMap<String, String>,
    logged_errors: HashSet<String>,
}

fn to_chrono(t: &aws_sdk_scheduler::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

impl SchedulePump {
    pub fn new(
        scheduler: aws_sdk_scheduler::Client,
        sqs: aws_sdk_sqs::Client,
        filter: GroupFilter,
    ) -> Self {
        SchedulePump {
            scheduler,
            sqs,
            filter,
            tracked: HashMap::new(),
            queue_urls: HashMap::new(),
            logged_errors: HashSet::new(),
        }
    }

    /// Runs ticks every `interval` until shutdown.
    pub async fn run(mut self, interval: std::time::Duration, mut shutdown: watch::Receiver<bool>) {
        let groups = match &self.filter.0 {
            None => "all".to_string(),
            Some(g) => g.iter().cloned().collect::<Vec<_>>().join(","),
        };
        info!(groups = %groups, "schedule pump started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            if let Err(e) = self.tick(Utc::now()).await {
                self.log_once(
                    format!("tick:{e:#}"),
                    || warn!(error = %format!("{e:#}"), "schedule tick failed; retrying"),
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        info!("schedule pump stopped");
    }

    fn log_once(&mut self, key: String, log: impl FnOnce()) {
        if self.logged_errors.insert(key) {
            log();
        }
    }

    /// One pass: refresh the schedules, deliver what is due at `now`. Returns the firings delivered.
    pub async fn tick(&mut self, now: DateTime<Utc>) -> Result<Vec<Firing>> {
        self.refresh(now).await?;
        let mut fired = Vec::new();
        let keys: Vec<Key> = self.tracked.keys().cloned().collect();
        for key in keys {
            if let Some(f) = self.fire_if_due(&key, now).await {
                fired.push(f);
            }
        }
        Ok(fired)
    }

    async fn refresh(&mut self, now: DateTime<Utc>) -> Result<()> {
        let mut seen: HashSet<Key> = HashSet::new();
        let mut groups = Vec::new();
        let mut pages = self
            .scheduler
            .list_schedule_groups()
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| anyhow!("ListScheduleGroups: {}", sdk_message(&e)))?;
            groups.extend(
                page.schedule_groups()
                    .iter()
                    .filter_map(|g| g.name().map(String::from)),
            );
        }
        groups.retain(|g| self.filter.allows(g));
        for group in groups {
            let mut pages = self
                .scheduler
                .list_schedules()
                .group_name(&group)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|e| anyhow!("ListSchedules {group}: {}", sdk_message(&e)))?;
                for s in page.schedules() {
                    let Some(name) = s.name() else { continue };
                    let key = (group.clone(), name.to_string());
                    let modified = s.last_modification_date().and_then(to_chrono);
                    seen.insert(key.clone());
                    let changed = self
                        .tracked
                        .get(&key)
                        .is_none_or(|t| t.modified != modified);
                    // A schedule whose GetSchedule failed stays untracked, so the next tick retries it.
                    if changed && let Some(plan) = self.load(&key, now).await {
                        self.tracked.insert(key, Tracked { modified, plan });
                    }
                }
            }
        }
        self.tracked.retain(|k, _| seen.contains(k));
        Ok(())
    }

    /// Reads one schedule and plans its next firing: `Some(None)` if it cannot be fired locally (logged
    /// once), `None` if reading it failed (retried next tick).
    async fn load(&mut self, key: &Key, now: DateTime<Utc>) -> Option<Option<Plan>> {
        let (group, name) = key;
        let out = match self
            .scheduler
            .get_schedule()
            .group_name(group)
            .name(name)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                warn!(group, name, error = %sdk_message(&e), "GetSchedule failed; will retry");
                return None;
            }
        };
        let modified = out
            .last_modification_date()
            .and_then(to_chrono)
            .map(|d| d.to_rfc3339())
            .unwrap_or_default();
        match plan_from(&out, now) {
            Ok(plan) => {
                info!(group, name, expression = out.schedule_expression().unwrap_or_default(),
                    next = %plan.next.map(|n| n.to_rfc3339()).unwrap_or_else(|| "none".into()), target_arn = %plan.target_arn, "schedule tracked");
                Some(Some(plan))
            }
            Err(e) => {
                self.log_once(format!("{group}/{name}@{modified}"), || {
                    warn!(group, name, expression = out.schedule_expression().unwrap_or_default(), error = %format!("{e:#}"),
                        "schedule ignored until it changes")
                });
                Some(None)
            }
        }
    }

    async fn fire_if_due(&mut self, key: &Key, now: DateTime<Utc>) -> Option<Firing> {
        let (group, name) = key.clone();
        let plan = self.tracked.get_mut(key)?.plan.as_mut()?;
        let due = plan.next.filter(|n| *n <= now)?;

        let deliver = plan.enabled
            && plan.start.is_none_or(|s| due >= s)
            && plan.end.is_none_or(|e| due <= e);
        let mut fired = None;
        if deliver {
            let (target, input, group_id) = (
                plan.target_arn.clone(),
                plan.input.clone(),
                plan.message_group_id.clone(),
            );
            let (dlq, max_age) = (plan.dlq_arn.clone(), plan.max_event_age);
            match self.send(&target, &input, group_id.as_deref()).await {
                Ok(()) => {
                    info!(group = %group, name = %name, scheduled_time = %due.to_rfc3339(), target_arn = %target, "schedule fired");
                    fired = Some(Firing {
                        group: group.clone(),
                        name: name.clone(),
                        scheduled: due,
                        target,
                    });
                }
                Err(e) if now - due < max_age => {
                    self.log_once(format!("send:{group}/{name}@{due}"), || {
                        warn!(group = %group, name = %name, scheduled_time = %due.to_rfc3339(), error = %format!("{e:#}"), "schedule delivery failed; retrying")
                    });
                    return None;
                }
                Err(e) => {
                    warn!(group = %group, name = %name, scheduled_time = %due.to_rfc3339(), error = %format!("{e:#}"), dlq = ?dlq, "schedule delivery gave up after the maximum event age");
                    if let Some(dlq) = dlq
                        && let Err(e) = self.send(&dlq, &input, group_id.as_deref()).await
                    {
                        warn!(group = %group, name = %name, error = %format!("{e:#}"), "could not send to the schedule's DLQ either");
                    }
                }
            }
        }

        // Advance past `now`: firings missed while the pump lagged are skipped, not burst.
        let plan = self.tracked.get_mut(key)?.plan.as_mut()?;
        plan.next = plan
            .expr
            .next_after(due.max(now), plan.anchor, plan.tz)
            .filter(|n| plan.end.is_none_or(|e| *n <= e));
        if plan.next.is_none() && plan.delete_after_completion {
            match self
                .scheduler
                .delete_schedule()
                .group_name(&group)
                .name(&name)
                .send()
                .await
            {
                Ok(_) => {
                    info!(group = %group, name = %name, "schedule completed and deleted (ActionAfterCompletion=DELETE)")
                }
                Err(e) => {
                    warn!(group = %group, name = %name, error = %sdk_message(&e), "could not delete the completed schedule")
                }
            }
            self.tracked.remove(key);
        }
        fired
    }

    async fn send(
        &mut self,
        target_arn: &str,
        body: &str,
        message_group_id: Option<&str>,
    ) -> Result<()> {
        let url = match self.queue_urls.get(target_arn) {
            Some(u) => u.clone(),
            None => {
                let queue = sqs_queue_name(target_arn)?;
                let out = self
                    .sqs
                    .get_queue_url()
                    .queue_name(queue)
                    .send()
                    .await
                    .map_err(|e| anyhow!("GetQueueUrl {queue}: {}", sdk_message(&e)))?;
                let url = out.queue_url.ok_or_else(|| anyhow!("no URL for {queue}"))?;
                self.queue_urls.insert(target_arn.to_string(), url.clone());
                url
            }
        };
        self.sqs
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .set_message_group_id(message_group_id.map(String::from))
            .send()
            .await
            .map_err(|e| anyhow!("SendMessage to {url}: {}", sdk_message(&e)))?;
        Ok(())
    }
}

/// The queue name of an SQS ARN (`arn:aws:sqs:<region>:<account>:<name>`).
pub fn sqs_queue_name(arn: &str) -> Result<&str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "sqs", _, _, name] if !name.is_empty() => Ok(name),
        _ => bail!("target {arn} is not an SQS queue; only SQS targets fire locally"),
    }
}

fn plan_from(
    s: &aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput,
    now: DateTime<Utc>,
) -> Result<Plan> {
    let text = s
        .schedule_expression()
        .ok_or_else(|| anyhow!("no ScheduleExpression"))?;
    let expr = ScheduleExpr::parse(text).map_err(|e| anyhow!("expression {text:?}: {e}"))?;
    let tz_name = s
        .schedule_expression_timezone()
        .filter(|t| !t.is_empty())
        .unwrap_or("UTC");
    let tz: Tz = tz_name
        .parse()
        .map_err(|_| anyhow!("unknown time zone {tz_name:?}"))?;
    let target = s.target().ok_or_else(|| anyhow!("no Target"))?;
    sqs_queue_name(target.arn())?;
    let start = s.start_date().and_then(to_chrono);
    let end = s.end_date().and_then(to_chrono);
    let created = s.creation_date().and_then(to_chrono).unwrap_or(now);
    let anchor = start.unwrap_or(created);
    let input = match target.input() {
        Some(i) if !i.is_empty() => i.to_string(),
        // Scheduler sends a default notification when no Input is set; an empty JSON object stands in.
        _ => "{}".to_string(),
    };
    // First firing: the first one after the anchor, but none older than the catch-up window.
    let from = (anchor - Duration::milliseconds(1)).max(now - Duration::seconds(CATCH_UP));
    let next = expr
        .next_after(from, anchor, tz)
        .filter(|n| end.is_none_or(|e| *n <= e));
    Ok(Plan {
        expr,
        tz,
        anchor,
        start,
        end,
        enabled: s.state() != Some(&ScheduleState::Disabled),
        target_arn: target.arn().to_string(),
        input,
        message_group_id: target
            .sqs_parameters()
            .and_then(|p| p.message_group_id())
            .map(String::from),
        dlq_arn: target
            .dead_letter_config()
            .and_then(|d| d.arn())
            .map(String::from),
        max_event_age: Duration::seconds(
            target
                .retry_policy()
                .and_then(|r| r.maximum_event_age_in_seconds())
                .map(i64::from)
                .unwrap_or(DEFAULT_MAX_EVENT_AGE_SECS),
        ),
        delete_after_completion: s.action_after_completion()
            == Some(&ActionAfterCompletion::Delete),
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput;
    use aws_sdk_scheduler::primitives::DateTime as SmithyTime;
    use aws_sdk_scheduler::types::Target;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn schedule(expr: &str, created: &str) -> GetScheduleOutput {
        GetScheduleOutput::builder()
            .name("n")
            .group_name("g")
            .schedule_expression(expr)
            .creation_date(SmithyTime::from_secs(utc(created).timestamp()))
            .target(
                Target::builder()
                    .arn("arn:aws:sqs:us-east-1:123456789012:q")
                    .role_arn("arn:aws:iam::123456789012:role/r")
                    .input(r#"{"kind":"start_run"}"#)
                    .build()
                    .unwrap(),
            )
            .build()
    }

    #[test]
    fn rate_first_fires_one_interval_after_creation() {
        let p = plan_from(
            &schedule("rate(1 minute)", "2026-01-01T00:00:10Z"),
            utc("2026-01-01T00:00:12Z"),
        )
        .unwrap();
        assert_eq!(p.next, Some(utc("2026-01-01T00:01:10Z")));
        assert_eq!(p.input, r#"{"kind":"start_run"}"#);
    }

    #[test]
    fn at_in_the_recent_past_still_fires_but_old_ones_do_not() {
        let recent = plan_from(
            &schedule("at(2026-01-01T00:00:00)", "2025-12-31T23:00:00Z"),
            utc("2026-01-01T00:00:30Z"),
        )
        .unwrap();
        assert_eq!(recent.next, Some(utc("2026-01-01T00:00:00Z")));
        let old = plan_from(
            &schedule("at(2026-01-01T00:00:00)", "2025-12-31T23:00:00Z"),
            utc("2026-01-01T02:00:00Z"),
        )
        .unwrap();
        assert_eq!(old.next, None);
    }

    #[test]
    fn unparseable_expressions_and_non_sqs_targets_are_rejected() {
        assert!(
            plan_from(
                &schedule("every 5 minutes", "2026-01-01T00:00:00Z"),
                Utc::now()
            )
            .is_err()
        );
        assert!(sqs_queue_name("arn:aws:lambda:us-east-1:123456789012:function:f").is_err());
        assert_eq!(
            sqs_queue_name("arn:aws:sqs:us-east-1:123456789012:ferry-SyncQueue").unwrap(),
            "ferry-SyncQueue"
        );
    }
}
