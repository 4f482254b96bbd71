//! Dry runs: what a run of a parameter set would do now, from listings of its source and destination
//! (and a HEAD of destination objects whose ETag alone cannot tell, for delta). Nothing is written.
//! The decisions are the engine's own ([`sync::copy_decision`], [`sync::delete_decision`]).

use crate::params::ParamSet;
use aws_sdk_s3::Client as S3;
use aws_sdk_s3::primitives::DateTimeFormat;
use ferry_shared::domain::sync::{self, Action, CopyDecision, ObjectMeta, ObjectRef};
use ferry_shared::http::ApiError;
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};

/// Objects listed per side at most: a dry run answers within one API call.
const MAX_LISTED: usize = 100_000;
/// Entries shown per list in the answer; the counts cover everything.
const MAX_SHOWN: usize = 1000;
/// The user metadata worker-sync writes on copies it made part by part (their ETag is their own).
const SOURCE_ETAG_META: &str = "ferry-source-etag";

async fn list_all(
    s3: &S3,
    bucket: &str,
    prefix: &str,
    side: &str,
) -> Result<Vec<ObjectRef>, ApiError> {
    let mut out = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            let why = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
            match e.as_service_error() {
                Some(se) if se.is_no_such_bucket() => ApiError::invalid(
                    if side == "source" {
                        "SOURCE_BUCKET"
                    } else {
                        "DESTINATION_BUCKET"
                    },
                    "names a bucket that does not exist",
                ),
                _ => ApiError::bad_gateway(
                    format!("could not list the {side}"),
                    anyhow::anyhow!(why),
                ),
            }
        })?;
        for o in page.contents.unwrap_or_default() {
            let Some(key) = o.key else { continue };
            out.push(ObjectRef {
                key,
                size: o.size.unwrap_or(0).max(0) as u64,
                etag: o.e_tag,
                last_modified: o
                    .last_modified
                    .and_then(|d| d.fmt(DateTimeFormat::DateTime).ok()),
            });
        }
        if out.len() > MAX_LISTED {
            return Err(ApiError::invalid(
                if side == "source" {
                    "SOURCE_PREFIX"
                } else {
                    "DESTINATION_PREFIX"
                },
                format!(
                    "selects more than {MAX_LISTED} objects; a dry run lists at most that many"
                ),
            ));
        }
    }
    Ok(out)
}

fn dest_prefix(set: &ParamSet) -> String {
    let mut p = set.destination_prefix.trim_matches('/').to_string();
    if !p.is_empty() {
        p.push('/');
    }
    p
}

/// What a run of `set` under `action` would do now.
pub async fn plan(src: &S3, own: &S3, set: &ParamSet, action: Action) -> Result<Value, ApiError> {
    let sources = list_all(src, &set.source_bucket, &set.source_prefix, "source").await?;
    let needs_dest = !matches!(action, Action::Sync);
    let dests = if needs_dest {
        list_all(
            own,
            &set.destination_bucket,
            &dest_prefix(set),
            "destination",
        )
        .await?
    } else {
        Vec::new()
    };
    let dest_meta: HashMap<&str, ObjectMeta> =
        dests.iter().map(|d| (d.key.as_str(), d.meta())).collect();

    let mut copy = Vec::new();
    let mut skip = Vec::new();
    let mut fail = Vec::new();
    if action != Action::Delete {
        // Destination metadata matters only where size agrees and the ETag differs (a part-by-part
        // copy): those are HEADed for the source ETag ferry recorded.
        let decided: Vec<(ObjectRef, CopyDecision)> =
            futures::stream::iter(sources.iter().cloned())
                .map(|o| async {
                    let dest_key =
                        sync::destination_key(&set.source_prefix, &set.destination_prefix, &o.key)
                            .ok();
                    let mut meta = dest_key.as_deref().and_then(|k| dest_meta.get(k).cloned());
                    if matches!(action, Action::Delta | Action::Diff)
                        && let (Some(m), Some(k)) = (meta.as_mut(), dest_key.as_deref())
                        && !sync::unchanged(&o.meta(), Some(m))
                        && m.size == o.size
                    {
                        m.source_etag = head_source_etag(own, &set.destination_bucket, k).await?;
                    }
                    let d = sync::copy_decision(
                        action,
                        &set.source_prefix,
                        &set.destination_prefix,
                        &o,
                        meta.as_ref(),
                    );
                    Ok::<_, ApiError>((o, d))
                })
                .buffered(16)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()?;
        for (o, d) in decided {
            match d {
                CopyDecision::Copy(dest_key) => copy.push((o, dest_key)),
                CopyDecision::Skip(why) => skip.push((o, why.to_string())),
                CopyDecision::Fail(why) => fail.push((o, why)),
            }
        }
    }
    let mut delete = Vec::new();
    if matches!(action, Action::Delete | Action::Diff) {
        let present: HashSet<&str> = sources.iter().map(|o| o.key.as_str()).collect();
        for d in &dests {
            if sync::delete_decision(&set.source_prefix, &set.destination_prefix, &d.key, |k| {
                present.contains(k)
            }) {
                delete.push(d.clone());
            }
        }
    }
    let copy_bytes: u64 = copy.iter().map(|(o, _)| o.size).sum();
    let delete_bytes: u64 = delete.iter().map(|o| o.size).sum();
    let truncated = copy.len().max(skip.len()).max(delete.len()).max(fail.len()) > MAX_SHOWN;
    Ok(json!({
        "action": action,
        "source_url": set.source_url(),
        "target_datastore_url": set.destination_url(),
        "counts": {
            "listed_source": sources.len(),
            "listed_destination": dests.len(),
            "copy": copy.len(), "skip": skip.len(), "fail": fail.len(), "delete": delete.len(),
        },
        "bytes": {"copy": copy_bytes, "delete": delete_bytes},
        "copy": copy.iter().take(MAX_SHOWN).map(|(o, k)| json!({"key": o.key, "destination_key": k, "size": o.size})).collect::<Vec<_>>(),
        "skip": skip.iter().take(MAX_SHOWN).map(|(o, why)| json!({"key": o.key, "size": o.size, "reason": why})).collect::<Vec<_>>(),
        "fail": fail.iter().take(MAX_SHOWN).map(|(o, why)| json!({"key": o.key, "size": o.size, "reason": why})).collect::<Vec<_>>(),
        "delete": delete.iter().take(MAX_SHOWN).map(|o| json!({"destination_key": o.key, "size": o.size})).collect::<Vec<_>>(),
        "truncated": truncated,
    }))
}

async fn head_source_etag(s3: &S3, bucket: &str, key: &str) -> Result<Option<String>, ApiError> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(h) => Ok(h.metadata.and_then(|m| m.get(SOURCE_ETAG_META).cloned())),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => Ok(None),
        Err(e) => Err(ApiError::bad_gateway(
            "could not read a destination object's metadata",
            anyhow::anyhow!(aws_sdk_s3::error::DisplayErrorContext(e).to_string()),
        )),
    }
}
