//! The pump's schedule loop against moto's Scheduler API: schedules are created through the API (as the
//! scheduler function does) in a group of the test's own, and the loop runs in-process, limited to that
//! group so concurrent tests and a dev pump don't interfere.

mod common;

use std::time::Duration;

use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, Target,
};
use ferry_local::clients::Clients;
use ferry_local::pump::schedules::{GroupFilter, SchedulePump};
use tokio::sync::watch;

const ROLE: &str = "arn:aws:iam::123456789012:role/ferry-SchedulerRole";

async fn create_schedule(
    clients: &Clients,
    group: &str,
    name: &str,
    expression: &str,
    queue_arn: &str,
    input: &str,
    delete_after: bool,
) {
    let mut req = clients
        .scheduler
        .create_schedule()
        .group_name(group)
        .name(name)
        .schedule_expression(expression)
        .schedule_expression_timezone("UTC")
        .flexible_time_window(
            FlexibleTimeWindow::builder()
                .mode(FlexibleTimeWindowMode::Off)
                .build()
                .unwrap(),
        )
        .target(
            Target::builder()
                .arn(queue_arn)
                .role_arn(ROLE)
                .input(input)
                .build()
                .unwrap(),
        );
    if delete_after {
        req = req.action_after_completion(ActionAfterCompletion::Delete);
    }
    req.send()
        .await
        .unwrap_or_else(|e| panic!("CreateSchedule {name}: {e:?}"));
}

async fn setup(clients: &Clients) -> (String, String, String) {
    let group = common::unique("tg");
    clients
        .scheduler
        .create_schedule_group()
        .name(&group)
        .send()
        .await
        .expect("CreateScheduleGroup");
    let (url, arn) = common::create_queue(clients, &format!("{group}-target"), &[]).await;
    (group, url, arn)
}

fn start_pump(
    clients: &Clients,
    group: &str,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let pump = SchedulePump::new(
        clients.scheduler.clone(),
        clients.sqs.clone(),
        GroupFilter::only([group.to_string()]),
    );
    let (tx, rx) = watch::channel(false);
    (tx, tokio::spawn(pump.run(Duration::from_secs(2), rx)))
}

#[tokio::test]
async fn a_rate_schedule_is_delivered_to_its_queue_within_70_seconds() {
    let clients = common::local_stack().await;
    let (group, url, arn) = setup(&clients).await;
    let input = format!(r#"{{"kind":"start_run","job_id":"{group}","trigger":"schedule"}}"#);
    create_schedule(
        &clients,
        &group,
        "every-minute",
        "rate(1 minute)",
        &arn,
        &input,
        false,
    )
    .await;
    // An expression Scheduler would reject (moto stores it anyway) is ignored, without stopping the rest.
    create_schedule(
        &clients,
        &group,
        "garbage",
        "every 5 minutes",
        &arn,
        "{}",
        false,
    )
    .await;
    let created = std::time::Instant::now();

    let (stop, task) = start_pump(&clients, &group);
    let got = common::receive_until(&clients, &url, Duration::from_secs(70), |_| true).await;
    let elapsed = created.elapsed();
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("pump stops")
        .unwrap();

    assert_eq!(
        got.as_deref(),
        Some(input.as_str()),
        "the schedule's Input arrived as the message body"
    );
    // rate(1 minute) first fires one minute after creation, not at once.
    assert!(
        elapsed >= Duration::from_secs(55),
        "fired too early: {elapsed:?}"
    );
}

#[tokio::test]
async fn an_at_schedule_fires_once_and_is_deleted_after_completion() {
    let clients = common::local_stack().await;
    let (group, url, arn) = setup(&clients).await;
    let when = (chrono::Utc::now() + chrono::Duration::seconds(4)).format("%Y-%m-%dT%H:%M:%S");
    create_schedule(
        &clients,
        &group,
        "once",
        &format!("at({when})"),
        &arn,
        r#"{"once":true}"#,
        true,
    )
    .await;

    let (stop, task) = start_pump(&clients, &group);
    let got = common::receive_until(&clients, &url, Duration::from_secs(20), |_| true).await;
    assert_eq!(got.as_deref(), Some(r#"{"once":true}"#));
    // Give the loop a few ticks: no second delivery, and the schedule is gone.
    let again = common::receive_until(&clients, &url, Duration::from_secs(6), |_| true).await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("pump stops")
        .unwrap();

    assert_eq!(again, None, "at() fires once");
    let gone = clients
        .scheduler
        .get_schedule()
        .group_name(&group)
        .name("once")
        .send()
        .await;
    assert!(
        gone.as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "ActionAfterCompletion=DELETE removed the schedule: {gone:?}"
    );
}

#[tokio::test]
async fn a_disabled_schedule_does_not_fire() {
    let clients = common::local_stack().await;
    let (group, url, arn) = setup(&clients).await;
    let when = (chrono::Utc::now() + chrono::Duration::seconds(3)).format("%Y-%m-%dT%H:%M:%S");
    clients
        .scheduler
        .create_schedule()
        .group_name(&group)
        .name("off")
        .schedule_expression(format!("at({when})"))
        .state(aws_sdk_scheduler::types::ScheduleState::Disabled)
        .flexible_time_window(
            FlexibleTimeWindow::builder()
                .mode(FlexibleTimeWindowMode::Off)
                .build()
                .unwrap(),
        )
        .target(
            Target::builder()
                .arn(&arn)
                .role_arn(ROLE)
                .input("{}")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("CreateSchedule");
    let mut pump = SchedulePump::new(
        clients.scheduler.clone(),
        clients.sqs.clone(),
        GroupFilter::only([group.clone()]),
    );
    let now = chrono::Utc::now();
    assert!(pump.tick(now).await.unwrap().is_empty());
    let later = pump
        .tick(now + chrono::Duration::seconds(10))
        .await
        .unwrap();
    assert!(later.is_empty(), "disabled: {later:?}");
    assert_eq!(common::messages_in(&clients, &url).await, 0);
}
