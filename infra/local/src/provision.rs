//! `ferry-local provision`: creates the template's tables, queues, buckets (with their notifications),
//! schedule groups and secrets on the local services, with SDK calls driven by the template itself
//! (moto's CloudFormation skips Scheduler resources and TTL, and doesn't apply the SAM transform).
//!
//! Idempotent: an existing resource is kept with its data (queue attributes are re-applied, a secret keeps
//! its value), so running it twice is harmless. Resources are created in dependency order (a DLQ before the
//! queue whose RedrivePolicy names it, a queue before the bucket that notifies it).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, anyhow, bail};
use rand::Rng;
use serde_yaml::Value;

use crate::clients::Clients;
use crate::resolve::{DEFAULT_STACK, Resolver};
use crate::state::{ResourceState, State};
use crate::template::{Intrinsic, Resource, Template};

const TABLE: &str = "AWS::DynamoDB::Table";
const QUEUE: &str = "AWS::SQS::Queue";
const BUCKET: &str = "AWS::S3::Bucket";
const SCHEDULE_GROUP: &str = "AWS::Scheduler::ScheduleGroup";
const SECRET: &str = "AWS::SecretsManager::Secret";

/// Types with no local resource to create, and why.
const SKIPPED: &[(&str, &str)] = &[
    (
        "AWS::IAM::Role",
        "IAM is not emulated; its ARN is synthesised",
    ),
    ("AWS::IAM::Policy", "IAM is not emulated"),
    ("AWS::IAM::ManagedPolicy", "IAM is not emulated"),
    (
        "AWS::SQS::QueuePolicy",
        "moto does not enforce queue policies",
    ),
    (
        "AWS::S3::BucketPolicy",
        "moto does not enforce bucket policies",
    ),
    (
        "AWS::Serverless::HttpApi",
        "cargo lambda watch serves the routes (ferry-local routes)",
    ),
    (
        "AWS::Serverless::Api",
        "cargo lambda watch serves the routes (ferry-local routes)",
    ),
    (
        "AWS::Serverless::Function",
        "cargo lambda watch runs the functions; ferry-local pump feeds them",
    ),
    ("AWS::Lambda::Permission", "no Lambda service locally"),
    ("AWS::Logs::LogGroup", "logs go to the terminal locally"),
    ("AWS::CloudWatch::Alarm", "no CloudWatch locally"),
];

/// How local physical names derive from logical ids. The default matches the brief of the local stack;
/// [`Naming::isolated`] gives tests their own copies of every resource.
#[derive(Debug, Clone)]
pub struct Naming {
    pub stack: String,
    pub table_prefix: String,
}

impl Default for Naming {
    fn default() -> Self {
        Naming {
            stack: DEFAULT_STACK.to_string(),
            table_prefix: String::new(),
        }
    }
}

impl Naming {
    pub fn isolated(stack: &str) -> Self {
        Naming {
            stack: stack.to_string(),
            table_prefix: format!("{stack}-"),
        }
    }
    pub fn table(&self, id: &str) -> String {
        format!("{}{id}", self.table_prefix)
    }
    pub fn queue(&self, id: &str, fifo: bool) -> String {
        format!("{}-{id}{}", self.stack, if fifo { ".fifo" } else { "" })
    }
    pub fn bucket(&self, id: &str) -> String {
        format!("{}-local-{}", self.stack, id.to_ascii_lowercase())
    }
    pub fn secret(&self, id: &str) -> String {
        format!("{}/{id}", self.stack)
    }
}

/// Provisions every resource of `template` and returns what was recorded, reporting one line per resource
/// through `report`. Resource types it does not know fail the call (after the others are done), so a new
/// resource in the template cannot silently go missing locally.
pub async fn provision(
    template: &Template,
    clients: &Clients,
    naming: &Naming,
    report: &mut dyn FnMut(String),
) -> Result<State> {
    let mut state = State::default();
    let mut unsupported = Vec::new();
    let mut skipped = Vec::new();
    for id in creation_order(template)? {
        let r = &template.resources[&id];
        let done = match r.kind.as_str() {
            TABLE => table(template, clients, naming, &state, r).await,
            QUEUE => queue(template, clients, naming, &state, r).await,
            BUCKET => bucket(template, clients, naming, &state, r).await,
            SCHEDULE_GROUP => schedule_group(template, clients, naming, &state, r).await,
            SECRET => secret(template, clients, naming, &state, r).await,
            kind => {
                match SKIPPED.iter().find(|(k, _)| *k == kind) {
                    Some((_, why)) => skipped.push(format!("{kind:<30} {id}: skipped ({why})")),
                    None => unsupported.push(format!("{id} ({kind})")),
                }
                continue;
            }
        };
        let (recorded, summary) =
            done.with_context(|| format!("provisioning {id} ({})", r.kind))?;
        report(format!("{:<30} {id}: {summary}", r.kind));
        state.insert(&id, recorded);
    }
    skipped.sort();
    skipped.into_iter().for_each(&mut *report);
    if !unsupported.is_empty() {
        bail!(
            "no local provisioning for {}: teach infra/local/src/provision.rs to create it, or list the type as skipped there",
            unsupported.join(", ")
        );
    }
    Ok(state)
}

/// Logical ids in an order where every resource comes after the resources it references.
pub fn creation_order(template: &Template) -> Result<Vec<String>> {
    let mut deps: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (id, r) in &template.resources {
        let mut refs = BTreeSet::new();
        references(&r.properties, &mut refs);
        refs.retain(|d| d != id && template.resources.contains_key(d));
        deps.insert(id, refs);
    }
    let mut order = Vec::new();
    let mut placed = BTreeSet::new();
    while placed.len() < deps.len() {
        let ready: Vec<&str> = deps
            .iter()
            .filter(|(id, d)| {
                !placed.contains(**id) && d.iter().all(|x| placed.contains(x.as_str()))
            })
            .map(|(id, _)| *id)
            .collect();
        if ready.is_empty() {
            let stuck: Vec<_> = deps.keys().filter(|id| !placed.contains(**id)).collect();
            bail!("reference cycle among {stuck:?}");
        }
        let mut ready = ready;
        ready.sort_by_key(|id| (type_rank(&template.resources[*id].kind), *id));
        for id in ready {
            placed.insert(id);
            order.push(id.to_string());
        }
    }
    Ok(order)
}

/// Among resources whose dependencies are met, the order of the summary: state, then messaging, then storage.
fn type_rank(kind: &str) -> u8 {
    match kind {
        TABLE => 0,
        SECRET => 1,
        SCHEDULE_GROUP => 2,
        QUEUE => 3,
        BUCKET => 4,
        _ => 5,
    }
}

/// Every logical id or name that `v` references through Ref, GetAtt or Sub.
fn references(v: &Value, out: &mut BTreeSet<String>) {
    if let Some(i) = Intrinsic::of(v) {
        match i {
            Intrinsic::Ref(name) => {
                out.insert(name);
            }
            Intrinsic::GetAtt(id, _) => {
                out.insert(id);
            }
            Intrinsic::Sub(text, vars) => {
                let mut rest = text.as_str();
                while let Some(start) = rest.find("${") {
                    let after = &rest[start + 2..];
                    let Some(end) = after.find('}') else { break };
                    let name = &after[..end];
                    if !name.starts_with('!') && !vars.contains_key(name) {
                        out.insert(name.split('.').next().unwrap_or(name).to_string());
                    }
                    rest = &after[end + 1..];
                }
                vars.values().for_each(|x| references(x, out));
            }
            Intrinsic::Join(_, items) => items.iter().for_each(|x| references(x, out)),
            Intrinsic::Other(_, arg) => references(&arg, out),
        }
        return;
    }
    match v {
        Value::Sequence(s) => s.iter().for_each(|x| references(x, out)),
        Value::Mapping(m) => m.values().for_each(|x| references(x, out)),
        _ => {}
    }
}

fn resolver<'a>(template: &'a Template, state: &'a State, naming: &Naming) -> Resolver<'a> {
    Resolver::new(template, state, &naming.stack)
}

fn prop<'a>(r: &'a Resource, name: &str) -> Option<&'a Value> {
    r.properties.get(name)
}

fn truthy(res: &Resolver, v: Option<&Value>) -> Result<bool> {
    match v {
        None => Ok(false),
        Some(v) => Ok(res.string(v)?.eq_ignore_ascii_case("true")),
    }
}

// ------------------------------------------------------------------------------------------------ DynamoDB

async fn table(
    template: &Template,
    clients: &Clients,
    naming: &Naming,
    state: &State,
    r: &Resource,
) -> Result<(ResourceState, String)> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType,
        TimeToLiveSpecification, TimeToLiveStatus,
    };
    let res = resolver(template, state, naming);
    let name = naming.table(&r.logical_id);
    let ddb = &clients.dynamodb;

    let key_schema = |v: Option<&Value>| -> Result<Vec<KeySchemaElement>> {
        let seq = v
            .and_then(Value::as_sequence)
            .ok_or_else(|| anyhow!("KeySchema missing"))?;
        seq.iter()
            .map(|k| {
                let attr = res.string(
                    k.get("AttributeName")
                        .ok_or_else(|| anyhow!("KeySchema: AttributeName"))?,
                )?;
                let kt = res.string(
                    k.get("KeyType")
                        .ok_or_else(|| anyhow!("KeySchema: KeyType"))?,
                )?;
                Ok(KeySchemaElement::builder()
                    .attribute_name(attr)
                    .key_type(KeyType::from(kt.as_str()))
                    .build()?)
            })
            .collect()
    };
    let projection = |v: Option<&Value>| -> Result<Projection> {
        let mut p = Projection::builder();
        if let Some(v) = v {
            if let Some(t) = v.get("ProjectionType") {
                p = p.projection_type(ProjectionType::from(res.string(t)?.as_str()));
            }
            if let Some(attrs) = v.get("NonKeyAttributes").and_then(Value::as_sequence) {
                for a in attrs {
                    p = p.non_key_attributes(res.string(a)?);
                }
            }
        }
        Ok(p.build())
    };

    let existing = match ddb.describe_table().table_name(&name).send().await {
        Ok(out) => out.table,
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) =>
        {
            None
        }
        Err(e) => return Err(anyhow!(crate::clients::sdk_message(&e))).context("DescribeTable"),
    };

    let wanted_gsis: Vec<String> = prop(r, "GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|g| g.get("IndexName"))
                .map(|n| res.string(n))
                .collect::<Result<_>>()
        })
        .transpose()?
        .unwrap_or_default();

    let (description, mut summary) = match existing {
        Some(t) => {
            let have: BTreeSet<String> = t
                .global_secondary_indexes()
                .iter()
                .filter_map(|g| g.index_name().map(String::from))
                .collect();
            let missing: Vec<_> = wanted_gsis.iter().filter(|g| !have.contains(*g)).collect();
            let mut s = format!("{name} exists (data kept)");
            if !missing.is_empty() {
                s.push_str(&format!(
                    "; WARNING: missing GSIs {missing:?}, delete the table to recreate it"
                ));
            }
            (t, s)
        }
        None => {
            let mut req = ddb
                .create_table()
                .table_name(&name)
                .billing_mode(BillingMode::PayPerRequest);
            for a in prop(r, "AttributeDefinitions")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let an = res.string(
                    a.get("AttributeName")
                        .ok_or_else(|| anyhow!("AttributeName"))?,
                )?;
                let at = res.string(
                    a.get("AttributeType")
                        .ok_or_else(|| anyhow!("AttributeType"))?,
                )?;
                req = req.attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(an)
                        .attribute_type(ScalarAttributeType::from(at.as_str()))
                        .build()?,
                );
            }
            req = req.set_key_schema(Some(key_schema(prop(r, "KeySchema"))?));
            for g in prop(r, "GlobalSecondaryIndexes")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let idx = res.string(g.get("IndexName").ok_or_else(|| anyhow!("IndexName"))?)?;
                req = req.global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(idx)
                        .set_key_schema(Some(key_schema(g.get("KeySchema"))?))
                        .projection(projection(g.get("Projection"))?)
                        .build()?,
                );
            }
            for l in prop(r, "LocalSecondaryIndexes")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let idx = res.string(l.get("IndexName").ok_or_else(|| anyhow!("IndexName"))?)?;
                req = req.local_secondary_indexes(
                    LocalSecondaryIndex::builder()
                        .index_name(idx)
                        .set_key_schema(Some(key_schema(l.get("KeySchema"))?))
                        .projection(projection(l.get("Projection"))?)
                        .build()?,
                );
            }
            let out = req
                .send()
                .await
                .map_err(|e| anyhow!(crate::clients::sdk_message(&e)))
                .context("CreateTable")?;
            let t = out
                .table_description
                .ok_or_else(|| anyhow!("CreateTable returned no description"))?;
            let gsis = if wanted_gsis.is_empty() {
                String::new()
            } else {
                format!(" with GSIs {wanted_gsis:?}")
            };
            (t, format!("{name} created{gsis}"))
        }
    };

    // TTL: DynamoDB Local accepts it (and never expires items); tolerate services that refuse it.
    if let Some(ttl) = prop(r, "TimeToLiveSpecification")
        && truthy(&res, ttl.get("Enabled"))?
    {
        let attr = res.string(
            ttl.get("AttributeName")
                .ok_or_else(|| anyhow!("TTL AttributeName"))?,
        )?;
        let current = ddb
            .describe_time_to_live()
            .table_name(&name)
            .send()
            .await
            .ok()
            .and_then(|o| o.time_to_live_description);
        let already = current.as_ref().is_some_and(|d| {
            d.attribute_name() == Some(attr.as_str())
                && matches!(
                    d.time_to_live_status(),
                    Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                )
        });
        if already {
            summary.push_str(&format!("; TTL on {attr}"));
        } else {
            let spec = TimeToLiveSpecification::builder()
                .attribute_name(&attr)
                .enabled(true)
                .build()?;
            match ddb
                .update_time_to_live()
                .table_name(&name)
                .time_to_live_specification(spec)
                .send()
                .await
            {
                Ok(_) => summary.push_str(&format!("; TTL on {attr}")),
                Err(e) => {
                    let msg = crate::clients::sdk_message(&e);
                    if msg.to_ascii_lowercase().contains("already enabled") {
                        summary.push_str(&format!("; TTL on {attr}"));
                    } else {
                        summary.push_str(&format!("; TTL not applied ({msg})"));
                    }
                }
            }
        }
    }

    let mut attributes = BTreeMap::new();
    if let Some(arn) = description.table_arn() {
        attributes.insert("Arn".to_string(), arn.to_string());
    }
    if let Some(arn) = description.latest_stream_arn() {
        attributes.insert("StreamArn".to_string(), arn.to_string());
    }
    Ok((
        ResourceState {
            kind: r.kind.clone(),
            reference: name,
            attributes,
        },
        summary,
    ))
}

// ------------------------------------------------------------------------------------------------ SQS

/// Queue properties that map one to one onto SQS attributes.
const QUEUE_SCALARS: &[&str] = &[
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

async fn queue(
    template: &Template,
    clients: &Clients,
    naming: &Naming,
    state: &State,
    r: &Resource,
) -> Result<(ResourceState, String)> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let res = resolver(template, state, naming);
    let fifo = truthy(&res, prop(r, "FifoQueue"))?;
    let name = naming.queue(&r.logical_id, fifo);
    let sqs = &clients.sqs;

    let mut attrs: BTreeMap<QueueAttributeName, String> = BTreeMap::new();
    for key in QUEUE_SCALARS {
        if let Some(v) = prop(r, key) {
            attrs.insert(QueueAttributeName::from(*key), res.string(v)?);
        }
    }
    let mut redrive_note = String::new();
    for key in ["RedrivePolicy", "RedriveAllowPolicy"] {
        if let Some(v) = prop(r, key) {
            let json = res.json(v).with_context(|| key.to_string())?;
            if key == "RedrivePolicy" {
                let dlq = json
                    .get("deadLetterTargetArn")
                    .and_then(|x| x.as_str())
                    .unwrap_or("?");
                let max = json
                    .get("maxReceiveCount")
                    .map(|x| x.to_string())
                    .unwrap_or_default();
                let dlq_name = dlq.rsplit(':').next().unwrap_or(dlq);
                redrive_note = format!("; redrive to {dlq_name} after {max} receives");
            }
            attrs.insert(QueueAttributeName::from(key), serde_json::to_string(&json)?);
        }
    }

    let existing = match sqs.get_queue_url().queue_name(&name).send().await {
        Ok(out) => out.queue_url,
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_queue_does_not_exist()) =>
        {
            None
        }
        Err(e) => return Err(anyhow!(crate::clients::sdk_message(&e))).context("GetQueueUrl"),
    };
    let (url, verb) = match existing {
        Some(url) => {
            if !attrs.is_empty() {
                sqs.set_queue_attributes()
                    .queue_url(&url)
                    .set_attributes(Some(attrs.into_iter().collect()))
                    .send()
                    .await
                    .map_err(|e| anyhow!(crate::clients::sdk_message(&e)))
                    .context("SetQueueAttributes")?;
            }
            (url, "exists (messages kept, attributes re-applied)")
        }
        None => {
            if fifo {
                attrs.insert(QueueAttributeName::FifoQueue, "true".to_string());
            }
            let out = sqs
                .create_queue()
                .queue_name(&name)
                .set_attributes(Some(attrs.into_iter().collect()))
                .send()
                .await
                .map_err(|e| anyhow!(crate::clients::sdk_message(&e)))
                .context("CreateQueue")?;
            (
                out.queue_url
                    .ok_or_else(|| anyhow!("CreateQueue returned no URL"))?,
                "created",
            )
        }
    };
    let got = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| anyhow!(crate::clients::sdk_message(&e)))
        .context("GetQueueAttributes")?;
    let arn = got
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| anyhow!("no QueueArn for {url}"))?;
    let attributes = BTreeMap::from([
        ("Arn".to_string(), arn),
        ("QueueName".to_string(), name.clone()),
        ("QueueUrl".to_string(), url.clone()),
    ]);
    Ok((
        ResourceState {
            kind: r.kind.clone(),
            reference: url,
            attributes,
        },
        format!("{name} {verb}{redrive_note}"),
    ))
}

// ------------------------------------------------------------------------------------------------ S3

async fn bucket(
    template: &Template,
    clients: &Clients,
    naming: &Naming,
    state: &State,
    r: &Resource,
) -> Result<(ResourceState, String)> {
    use aws_sdk_s3::types::{
        BucketLocationConstraint, CreateBucketConfiguration, Event, FilterRule, FilterRuleName,
        NotificationConfiguration, NotificationConfigurationFilter, QueueConfiguration,
        S3KeyFilter,
    };
    let res = resolver(template, state, naming);
    let name = naming.bucket(&r.logical_id);
    let s3 = &clients.s3;

    let mut summary = match s3.head_bucket().bucket(&name).send().await {
        Ok(_) => format!("{name} exists (objects kept)"),
        Err(e)
            if e.as_service_error().is_some_and(|se| se.is_not_found())
                || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
        {
            let mut req = s3.create_bucket().bucket(&name);
            if res.region != "us-east-1" {
                req = req.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(res.region.as_str()))
                        .build(),
                );
            }
            req.send()
                .await
                .map_err(|e| anyhow!(crate::clients::sdk_message(&e)))
                .context("CreateBucket")?;
            format!("{name} created")
        }
        Err(e) => return Err(anyhow!(crate::clients::sdk_message(&e))).context("HeadBucket"),
    };

    if let Some(n) = prop(r, "NotificationConfiguration") {
        for other in [
            "TopicConfigurations",
            "LambdaConfigurations",
            "EventBridgeConfiguration",
        ] {
            if n.get(other).is_some() {
                summary.push_str(&format!("; {other} not emulated"));
            }
        }
        let mut wanted = Vec::new();
        for q in n
            .get("QueueConfigurations")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let arn = res.string(
                q.get("Queue")
                    .ok_or_else(|| anyhow!("QueueConfiguration without Queue"))?,
            )?;
            let event = res.string(
                q.get("Event")
                    .ok_or_else(|| anyhow!("QueueConfiguration without Event"))?,
            )?;
            let mut b = QueueConfiguration::builder()
                .queue_arn(arn)
                .events(Event::from(event.as_str()));
            if let Some(rules) = q
                .get("Filter")
                .and_then(|f| f.get("S3Key"))
                .and_then(|k| k.get("Rules"))
                .and_then(Value::as_sequence)
            {
                let mut key = S3KeyFilter::builder();
                for rule in rules {
                    let rn = res.string(
                        rule.get("Name")
                            .ok_or_else(|| anyhow!("filter rule Name"))?,
                    )?;
                    let rv = res.string(
                        rule.get("Value")
                            .ok_or_else(|| anyhow!("filter rule Value"))?,
                    )?;
                    key = key.filter_rules(
                        FilterRule::builder()
                            .name(FilterRuleName::from(rn.to_ascii_lowercase().as_str()))
                            .value(rv)
                            .build(),
                    );
                }
                b = b.filter(
                    NotificationConfigurationFilter::builder()
                        .key(key.build())
                        .build(),
                );
            }
            wanted.push(b.build()?);
        }
        if !wanted.is_empty() {
            let current = current_queue_notifications(s3, &name).await?;
            let want_set = notification_set(&wanted);
            let targets: Vec<String> = wanted
                .iter()
                .map(|q| {
                    q.queue_arn()
                        .rsplit(':')
                        .next()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect();
            if current == want_set {
                summary.push_str(&format!("; notifications to {targets:?} already set"));
            } else {
                // moto answers this by sending an s3:TestEvent to each queue, as AWS does.
                s3.put_bucket_notification_configuration()
                    .bucket(&name)
                    .notification_configuration(
                        NotificationConfiguration::builder()
                            .set_queue_configurations(Some(wanted))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| anyhow!(crate::clients::sdk_message(&e)))
                    .context("PutBucketNotificationConfiguration")?;
                let after = current_queue_notifications(s3, &name).await?;
                if after != want_set {
                    bail!(
                        "notification configuration did not stick: wanted {want_set:?}, service has {after:?}"
                    );
                }
                summary.push_str(&format!("; notifications to {targets:?} set and read back"));
            }
        }
    }

    let attributes = BTreeMap::from([
        ("Arn".to_string(), format!("arn:aws:s3:::{name}")),
        ("DomainName".to_string(), format!("{name}.s3.amazonaws.com")),
        (
            "RegionalDomainName".to_string(),
            format!("{name}.s3.{}.amazonaws.com", res.region),
        ),
    ]);
    Ok((
        ResourceState {
            kind: r.kind.clone(),
            reference: name,
            attributes,
        },
        summary,
    ))
}

/// Queue notifications as comparable tuples (queue ARN, sorted events, sorted filter rules).
type NotificationKey = BTreeSet<(String, Vec<String>, Vec<(String, String)>)>;

fn notification_set(configs: &[aws_sdk_s3::types::QueueConfiguration]) -> NotificationKey {
    configs
        .iter()
        .map(|q| {
            let mut events: Vec<String> =
                q.events().iter().map(|e| e.as_str().to_string()).collect();
            events.sort();
            let mut rules: Vec<(String, String)> = q
                .filter()
                .and_then(|f| f.key())
                .map(|k| {
                    k.filter_rules()
                        .iter()
                        .map(|r| {
                            let name = r
                                .name()
                                .map(|n| n.as_str().to_ascii_lowercase())
                                .unwrap_or_default();
                            (name, r.value().unwrap_or_default().to_string())
                        })
                        .collect()
                })
                .unwrap_or_default();
            rules.sort();
            (q.queue_arn().to_string(), events, rules)
        })
        .collect()
}

async fn current_queue_notifications(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<NotificationKey> {
    match s3
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => Ok(notification_set(out.queue_configurations())),
        // moto answers a bucket without notifications with an empty `<GetBucketNotificationResponse/>`
        // document, which the SDK cannot parse (S3 sends an empty `<NotificationConfiguration/>`): a 200
        // that fails to parse means "none".
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 200) => {
            Ok(NotificationKey::new())
        }
        Err(e) => Err(anyhow!(crate::clients::sdk_message(&e)))
            .context("GetBucketNotificationConfiguration"),
    }
}

// ------------------------------------------------------------------------------------------------ Scheduler

async fn schedule_group(
    template: &Template,
    clients: &Clients,
    naming: &Naming,
    state: &State,
    r: &Resource,
) -> Result<(ResourceState, String)> {
    let res = resolver(template, state, naming);
    let name = match prop(r, "Name") {
        Some(n) => res.string(n)?,
        None => format!("{}-{}", naming.stack, r.logical_id),
    };
    let sch = &clients.scheduler;
    let (arn, verb) = match sch.get_schedule_group().name(&name).send().await {
        Ok(out) => (out.arn, "exists (schedules kept)"),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) =>
        {
            let out = sch
                .create_schedule_group()
                .name(&name)
                .send()
                .await
                .map_err(|e| anyhow!(crate::clients::sdk_message(&e)))
                .context("CreateScheduleGroup")?;
            (Some(out.schedule_group_arn), "created")
        }
        Err(e) => return Err(anyhow!(crate::clients::sdk_message(&e))).context("GetScheduleGroup"),
    };
    let arn = arn.unwrap_or_else(|| {
        format!(
            "arn:aws:scheduler:{}:{}:schedule-group/{name}",
            res.region,
            crate::resolve::ACCOUNT_ID
        )
    });
    let attributes = BTreeMap::from([("Arn".to_string(), arn)]);
    Ok((
        ResourceState {
            kind: r.kind.clone(),
            reference: name.clone(),
            attributes,
        },
        format!("{name} {verb}"),
    ))
}

// ------------------------------------------------------------------------------------------------ Secrets

async fn secret(
    template: &Template,
    clients: &Clients,
    naming: &Naming,
    state: &State,
    r: &Resource,
) -> Result<(ResourceState, String)> {
    let res = resolver(template, state, naming);
    let name = naming.secret(&r.logical_id);
    let sm = &clients.secrets;
    // A secret that must point at a local service (the events database: run.sh builds its JSON from
    // FERRY_MYSQL_*) gets its value from FERRY_LOCAL_SECRET_<LogicalId>, which wins over a kept value.
    let local_var = format!("FERRY_LOCAL_SECRET_{}", r.logical_id);
    let local_value = std::env::var(&local_var).ok().filter(|v| !v.is_empty());
    let (arn, summary) = match sm.describe_secret().secret_id(&name).send().await {
        Ok(out) => match &local_value {
            Some(v) => {
                sm.put_secret_value()
                    .secret_id(&name)
                    .secret_string(v)
                    .send()
                    .await
                    .map_err(|e| anyhow!(crate::clients::sdk_message(&e)))
                    .context("PutSecretValue")?;
                (
                    out.arn,
                    format!("{name} exists (value set from {local_var})"),
                )
            }
            None => (out.arn, format!("{name} exists (value kept)")),
        },
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) =>
        {
            let from_template = (prop(r, "SecretString"), prop(r, "GenerateSecretString"));
            let (value, how) = match from_template {
                _ if local_value.is_some() => (
                    local_value.clone().unwrap_or_default(),
                    format!("from {local_var}"),
                ),
                (Some(s), _) => (res.string(s)?, "from SecretString".to_string()),
                (None, Some(g)) => {
                    let spec = GenerateSpec::from_template(&res, g)?;
                    (
                        spec.generate_secret_string(&mut rand::rng())?,
                        format!("generated, {} chars", spec.length),
                    )
                }
                (None, None) => (
                    GenerateSpec::default().generate(&mut rand::rng())?,
                    "generated, 32 chars".to_string(),
                ),
            };
            let mut req = sm.create_secret().name(&name).secret_string(value);
            if let Some(d) = prop(r, "Description") {
                req = req.description(res.string(d)?);
            }
            let out = req
                .send()
                .await
                .map_err(|e| anyhow!(crate::clients::sdk_message(&e)))
                .context("CreateSecret")?;
            (out.arn, format!("{name} created ({how})"))
        }
        Err(e) => return Err(anyhow!(crate::clients::sdk_message(&e))).context("DescribeSecret"),
    };
    let arn = arn.ok_or_else(|| anyhow!("no ARN for secret {name}"))?;
    let attributes = BTreeMap::from([("Id".to_string(), arn.clone()), ("Name".to_string(), name)]);
    Ok((
        ResourceState {
            kind: r.kind.clone(),
            reference: arn,
            attributes,
        },
        summary,
    ))
}

/// AWS's punctuation set for generated secrets.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Secrets Manager's GenerateSecretString options, as far as a local secret needs them.
#[derive(Debug, Clone)]
pub struct GenerateSpec {
    pub length: usize,
    pub exclude_characters: String,
    pub exclude_lowercase: bool,
    pub exclude_uppercase: bool,
    pub exclude_numbers: bool,
    pub exclude_punctuation: bool,
    pub include_space: bool,
    pub require_each_included_type: bool,
    /// SecretStringTemplate and GenerateStringKey: the password goes into this JSON object under the key.
    pub json_template: Option<(String, String)>,
}

impl Default for GenerateSpec {
    fn default() -> Self {
        GenerateSpec {
            length: 32,
            exclude_characters: String::new(),
            exclude_lowercase: false,
            exclude_uppercase: false,
            exclude_numbers: false,
            exclude_punctuation: false,
            include_space: false,
            require_each_included_type: true,
            json_template: None,
        }
    }
}

impl GenerateSpec {
    fn from_template(res: &Resolver, g: &Value) -> Result<Self> {
        let flag = |k: &str, default: bool| -> Result<bool> {
            match g.get(k) {
                Some(v) => Ok(res.string(v)?.eq_ignore_ascii_case("true")),
                None => Ok(default),
            }
        };
        let mut spec = GenerateSpec {
            length: match g.get("PasswordLength") {
                Some(v) => res.string(v)?.parse().context("PasswordLength")?,
                None => 32,
            },
            exclude_characters: g
                .get("ExcludeCharacters")
                .map(|v| res.string(v))
                .transpose()?
                .unwrap_or_default(),
            exclude_lowercase: flag("ExcludeLowercase", false)?,
            exclude_uppercase: flag("ExcludeUppercase", false)?,
            exclude_numbers: flag("ExcludeNumbers", false)?,
            exclude_punctuation: flag("ExcludePunctuation", false)?,
            include_space: flag("IncludeSpace", false)?,
            require_each_included_type: flag("RequireEachIncludedType", true)?,
            json_template: None,
        };
        if let (Some(t), Some(k)) = (g.get("SecretStringTemplate"), g.get("GenerateStringKey")) {
            spec.json_template = Some((res.string(t)?, res.string(k)?));
        }
        Ok(spec)
    }

    fn classes(&self) -> Vec<Vec<char>> {
        let keep = |s: &str| -> Vec<char> {
            s.chars()
                .filter(|c| !self.exclude_characters.contains(*c))
                .collect()
        };
        let mut classes = Vec::new();
        if !self.exclude_lowercase {
            classes.push(keep("abcdefghijklmnopqrstuvwxyz"));
        }
        if !self.exclude_uppercase {
            classes.push(keep("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
        }
        if !self.exclude_numbers {
            classes.push(keep("0123456789"));
        }
        if !self.exclude_punctuation {
            classes.push(keep(PUNCTUATION));
        }
        if self.include_space {
            classes.push(keep(" "));
        }
        classes.retain(|c| !c.is_empty());
        classes
    }

    /// A random password honouring the character-class options.
    pub fn generate(&self, rng: &mut impl Rng) -> Result<String> {
        let classes = self.classes();
        let all: Vec<char> = classes.iter().flatten().copied().collect();
        if all.is_empty() {
            bail!("GenerateSecretString excludes every character");
        }
        if self.require_each_included_type && self.length < classes.len() {
            bail!(
                "PasswordLength {} is too short to include each of {} character types",
                self.length,
                classes.len()
            );
        }
        loop {
            let s: String = (0..self.length)
                .map(|_| all[rng.random_range(0..all.len())])
                .collect();
            if !self.require_each_included_type
                || classes.iter().all(|c| s.chars().any(|x| c.contains(&x)))
            {
                return Ok(s);
            }
        }
    }

    /// The secret value: the password alone, or a JSON object built from SecretStringTemplate.
    pub fn generate_secret_string(&self, rng: &mut impl Rng) -> Result<String> {
        let password = self.generate(rng)?;
        match &self.json_template {
            None => Ok(password),
            Some((template, key)) => {
                let mut obj: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(template)
                        .context("SecretStringTemplate must be a JSON object")?;
                obj.insert(key.clone(), serde_json::Value::String(password));
                Ok(serde_json::Value::Object(obj).to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_respects_length_and_exclude_punctuation() {
        let spec = GenerateSpec {
            length: 64,
            exclude_punctuation: true,
            ..GenerateSpec::default()
        };
        let mut rng = rand::rng();
        for _ in 0..50 {
            let s = spec.generate(&mut rng).unwrap();
            assert_eq!(s.chars().count(), 64);
            assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{s}");
        }
        let with_punct = GenerateSpec {
            length: 40,
            ..GenerateSpec::default()
        };
        let s = with_punct.generate(&mut rng).unwrap();
        assert!(
            s.chars().any(|c| PUNCTUATION.contains(c)),
            "each included type is required: {s}"
        );
    }

    #[test]
    fn secret_string_template_wraps_the_password() {
        let spec = GenerateSpec {
            length: 12,
            json_template: Some((r#"{"username":"ferry"}"#.into(), "password".into())),
            ..GenerateSpec::default()
        };
        let v: serde_json::Value =
            serde_json::from_str(&spec.generate_secret_string(&mut rand::rng()).unwrap()).unwrap();
        assert_eq!(v["username"], "ferry");
        assert_eq!(v["password"].as_str().unwrap().len(), 12);
    }

    #[test]
    fn real_template_orders_dlqs_before_queues_and_queues_before_buckets() {
        let t = Template::load(&crate::state::repo_root().join("infra/template.yaml")).unwrap();
        let order = creation_order(&t).unwrap();
        let pos = |id: &str| {
            order
                .iter()
                .position(|x| x == id)
                .unwrap_or_else(|| panic!("{id} missing"))
        };
        for (dlq, q) in [
            ("LoaderDlq", "LoaderQueue"),
            ("LoaderS3Dlq", "LoaderS3Queue"),
            ("SyncDlq", "SyncQueue"),
            ("IngestDlq", "IngestQueue"),
            ("TransferDlq", "TransferQueue"),
        ] {
            assert!(pos(dlq) < pos(q), "{dlq} after {q}: {order:?}");
        }
        assert!(pos("IngestQueue") < pos("IngestBucket"));
    }

    #[test]
    fn naming_follows_the_local_conventions() {
        let n = Naming::default();
        assert_eq!(n.table("FerryTable"), "FerryTable");
        assert_eq!(n.queue("SyncQueue", false), "ferry-SyncQueue");
        assert_eq!(n.bucket("IngestBucket"), "ferry-local-ingestbucket");
        assert_eq!(n.secret("JwtSigningKey"), "ferry/JwtSigningKey");
    }
}
