//! The DynamoDB store: typed items under [`Key`]s, each with a `version` attribute, written with
//! condition expressions so that two writers can never both win.
//!
//! A state change is a pure transition (`T -> Result<T, Conflict>`) applied by [`Store::transition`]:
//! read, apply, write on condition `version = read version`; on a lost race it re-reads and re-applies,
//! so a transition that the winner made impossible ends in [`StoreError::Conflict`].
//!
//! Counters and checkpoints that many writers touch at once are [`Patch`]es instead (atomic `SET a =
//! a + n` updates that also bump `version`, so a concurrent transition re-reads rather than overwrite
//! them); [`Store::transition_counted`] writes an item and a patch of another item in one
//! transaction, so an item and the counters it contributes to never disagree, and
//! [`Store::patch_many`] applies patches of several items together or not at all.

use crate::domain::Conflict;
use crate::keys::{Children, IndexKey, Key, Listing};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};

type Item = HashMap<String, AttributeValue>;

const MAX_RACE_RETRIES: usize = 8;
/// Items written per transaction by [`Store::create_many`] and [`Store::replace_many_counted`]
/// (DynamoDB allows 100 per transaction; one is left for a counter).
pub const MAX_BATCH_CREATES: usize = 99;
const RESERVED: [&str; 6] = ["pk", "sk", "gsi1pk", "gsi1sk", "version", "expires_at"];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("item already exists")]
    Exists,
    #[error("item not found")]
    NotFound,
    #[error("{0}")]
    Conflict(#[from] Conflict),
    #[error("invalid pagination cursor")]
    BadCursor,
    #[error("could not encode or decode an item: {0}")]
    Codec(String),
    #[error("dynamodb request failed: {0}")]
    Backend(String),
}

/// A value with the version it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// One page of a listing; `cursor` is opaque and present when more items follow.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub cursor: Option<String>,
}

/// How an item is written besides its value: its listing index entry and TTL.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub index: Option<IndexKey>,
    /// Unix seconds after which DynamoDB's TTL may delete the item.
    pub expires_at: Option<i64>,
}

impl From<IndexKey> for Meta {
    fn from(index: IndexKey) -> Self {
        Meta {
            index: Some(index),
            expires_at: None,
        }
    }
}

/// A partial, conditional update of one item: attributes set, counters added; it bumps `version`
/// unless told [`Patch::keep_version`]. Paths are dotted (`counts.bytes`, `parts.7`); every segment
/// goes through a placeholder.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    sets: Vec<(String, AttributeValue)>,
    adds: Vec<(String, i64)>,
    equals: Vec<(String, AttributeValue)>,
    missing: Vec<String>,
    keep_version: bool,
}

impl Patch {
    pub fn new() -> Self {
        Self::default()
    }
    /// `path = path + n` (missing counts as 0).
    pub fn add(mut self, path: &str, n: i64) -> Self {
        self.adds.push((path.to_string(), n));
        self
    }
    pub fn set<V: Serialize>(mut self, path: &str, value: &V) -> Result<Self, StoreError> {
        let v = serde_dynamo::to_attribute_value(value)
            .map_err(|e| StoreError::Codec(e.to_string()))?;
        self.sets.push((path.to_string(), v));
        Ok(self)
    }
    /// Applies only if `path` equals `value`.
    pub fn require_eq<V: Serialize>(mut self, path: &str, value: &V) -> Result<Self, StoreError> {
        let v = serde_dynamo::to_attribute_value(value)
            .map_err(|e| StoreError::Codec(e.to_string()))?;
        self.equals.push((path.to_string(), v));
        Ok(self)
    }
    /// Applies only if `path` does not exist.
    pub fn require_missing(mut self, path: &str) -> Self {
        self.missing.push(path.to_string());
        self
    }
    /// Leaves `version` as it is: for housekeeping that whole-item writes conditioned on the version
    /// must not trip over (a lease renewal). Such a write may then overwrite what the patch set with
    /// the value it read, so use it only where a lost update is redone (the next renewal).
    pub fn keep_version(mut self) -> Self {
        self.keep_version = true;
        self
    }

    fn render(&self) -> RenderedPatch {
        let mut names: HashMap<String, String> = HashMap::new();
        let mut values: Item = HashMap::new();
        let path = |p: &str, names: &mut HashMap<String, String>| -> String {
            p.split('.')
                .map(|seg| {
                    let ph = format!("#n{}", names.len());
                    names.insert(ph.clone(), seg.to_string());
                    ph
                })
                .collect::<Vec<_>>()
                .join(".")
        };
        let mut sets = Vec::new();
        for (i, (p, v)) in self.sets.iter().enumerate() {
            let p = path(p, &mut names);
            values.insert(format!(":s{i}"), v.clone());
            sets.push(format!("{p} = :s{i}"));
        }
        for (i, (p, n)) in self.adds.iter().enumerate() {
            let p = path(p, &mut names);
            values.insert(format!(":a{i}"), AttributeValue::N(n.to_string()));
            sets.push(format!("{p} = if_not_exists({p}, :zero) + :a{i}"));
        }
        // DynamoDB refuses placeholders an expression does not use.
        if !self.adds.is_empty() || !self.keep_version {
            values.insert(":zero".into(), AttributeValue::N("0".into()));
        }
        if !self.keep_version {
            names.insert("#ver".into(), "version".into());
            values.insert(":one".into(), AttributeValue::N("1".into()));
            sets.push("#ver = if_not_exists(#ver, :zero) + :one".into());
        }
        let mut conds = vec!["attribute_exists(pk)".to_string()];
        for (i, (p, v)) in self.equals.iter().enumerate() {
            let p = path(p, &mut names);
            values.insert(format!(":c{i}"), v.clone());
            conds.push(format!("{p} = :c{i}"));
        }
        for p in &self.missing {
            let p = path(p, &mut names);
            conds.push(format!("attribute_not_exists({p})"));
        }
        RenderedPatch {
            update: format!("SET {}", sets.join(", ")),
            condition: conds.join(" AND "),
            names,
            values,
        }
    }
}

struct RenderedPatch {
    update: String,
    condition: String,
    names: HashMap<String, String>,
    values: Item,
}

fn patch_op(table: &str, key: &Key, patch: &Patch) -> Result<TransactWriteItem, StoreError> {
    let r = patch.render();
    let update = aws_sdk_dynamodb::types::Update::builder()
        .table_name(table)
        .key("pk", s(&key.pk))
        .key("sk", s(&key.sk))
        .update_expression(r.update)
        .condition_expression(r.condition)
        .set_expression_attribute_names(Some(r.names))
        .set_expression_attribute_values(Some(r.values))
        .build()
        .map_err(|e| StoreError::Codec(e.to_string()))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// Which items of a cancelled transaction failed their condition.
fn cancelled_conditions<R>(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> Option<Vec<bool>> {
    let se = e.as_service_error()?;
    match se {
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => Some(
            c.cancellation_reasons()
                .iter()
                .map(|r| r.code() == Some("ConditionalCheckFailed"))
                .collect(),
        ),
        _ => None,
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
}

fn backend<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Backend(DisplayErrorContext(e).to_string())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn encode<T: Serialize>(
    key: &Key,
    meta: &Meta,
    value: &T,
    version: u64,
) -> Result<Item, StoreError> {
    let mut item: Item =
        serde_dynamo::to_item(value).map_err(|e| StoreError::Codec(e.to_string()))?;
    if let Some(clash) = RESERVED.iter().find(|r| item.contains_key(**r)) {
        return Err(StoreError::Codec(format!(
            "field {clash} is reserved by the store"
        )));
    }
    item.insert("pk".into(), s(&key.pk));
    item.insert("sk".into(), s(&key.sk));
    if let Some(ix) = &meta.index {
        item.insert("gsi1pk".into(), s(&ix.gsi1pk));
        item.insert("gsi1sk".into(), s(&ix.gsi1sk));
    }
    if let Some(t) = meta.expires_at {
        item.insert("expires_at".into(), n(t));
    }
    item.insert("version".into(), n(version));
    Ok(item)
}

fn decode<T: DeserializeOwned>(mut item: Item) -> Result<Versioned<T>, StoreError> {
    let version = match item.get("version") {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::Codec("bad version".into()))?,
        _ => 0,
    };
    for r in RESERVED {
        item.remove(r);
    }
    let value = serde_dynamo::from_item(item).map_err(|e| StoreError::Codec(e.to_string()))?;
    Ok(Versioned { value, version })
}

fn encode_cursor(last: Option<Item>) -> Option<String> {
    let last = last?;
    let strings: BTreeMap<String, String> = last
        .into_iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|s| (k, s.clone())))
        .collect();
    Some(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&strings).ok()?))
}

fn decode_cursor(cursor: &str, allowed: &[&str]) -> Result<Item, StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::BadCursor)?;
    let strings: BTreeMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
    if strings.is_empty() || strings.keys().any(|k| !allowed.contains(&k.as_str())) {
        return Err(StoreError::BadCursor);
    }
    Ok(strings.into_iter().map(|(k, v)| (k, s(v))).collect())
}

fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    e: &SdkError<E, R>,
) -> bool {
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        key: &Key,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        out.item.map(decode).transpose()
    }

    /// Writes a new item at version 1; [`StoreError::Exists`] if the key is taken.
    pub async fn create<T: Serialize>(
        &self,
        key: &Key,
        meta: &Meta,
        value: &T,
    ) -> Result<(), StoreError> {
        let item = encode(key, meta, value, 1)?;
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(StoreError::Exists),
            Err(e) => Err(backend(e)),
        }
    }

    /// Replaces the item if it is still at `expected` version; returns the new version.
    async fn replace<T: Serialize>(
        &self,
        key: &Key,
        meta: &Meta,
        value: &T,
        expected: u64,
    ) -> Result<Option<u64>, StoreError> {
        let next = expected + 1;
        let item = encode(key, meta, value, next)?;
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", n(expected))
            .send()
            .await
        {
            Ok(_) => Ok(Some(next)),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    /// Applies the pure transition `f` to the item at `key` with optimistic concurrency (see the module
    /// docs). `meta` gives the index entry and TTL for the new value.
    pub async fn transition<T, F, M>(
        &self,
        key: &Key,
        meta: M,
        f: F,
    ) -> Result<Versioned<T>, StoreError>
    where
        T: Serialize + DeserializeOwned + Clone,
        F: Fn(T) -> Result<T, Conflict>,
        M: Fn(&T) -> Meta,
    {
        for _ in 0..MAX_RACE_RETRIES {
            let current: Versioned<T> = self.get(key).await?.ok_or(StoreError::NotFound)?;
            let next = f(current.value)?;
            if let Some(version) = self
                .replace(key, &meta(&next), &next, current.version)
                .await?
            {
                return Ok(Versioned {
                    value: next,
                    version,
                });
            }
            tracing::debug!(pk = %key.pk, sk = %key.sk, "lost a write race, re-reading");
        }
        Err(StoreError::Backend(format!(
            "gave up after {MAX_RACE_RETRIES} write races on {}",
            key.pk
        )))
    }

    /// Applies `patch` to the item at `key`; `false` when the item is missing or a condition failed.
    pub async fn patch(&self, key: &Key, patch: &Patch) -> Result<bool, StoreError> {
        let r = patch.render();
        match self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .update_expression(r.update)
            .condition_expression(r.condition)
            .set_expression_attribute_names(Some(r.names))
            .set_expression_attribute_values(Some(r.values))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Result<(), Vec<bool>>, StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(e) => match cancelled_conditions(&e) {
                Some(failed) if failed.iter().any(|f| *f) => Ok(Err(failed)),
                _ => Err(backend(e)),
            },
        }
    }

    fn put_op(
        &self,
        item: Item,
        condition: &str,
        expected: Option<u64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition);
        if let Some(v) = expected {
            put = put.expression_attribute_values(":expected", n(v));
        }
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(|e| StoreError::Codec(e.to_string()))?)
            .build())
    }

    /// Creates every `(key, value)` (distinct keys) at version 1, in one transaction per
    /// [`MAX_BATCH_CREATES`] items. `false` when an item of a transaction exists already (that
    /// transaction wrote nothing; earlier ones stay): the caller then goes one by one with
    /// [`Store::create`].
    pub async fn create_many<T: Serialize>(&self, items: &[(Key, T)]) -> Result<bool, StoreError> {
        for chunk in items.chunks(MAX_BATCH_CREATES) {
            let mut ops = Vec::with_capacity(chunk.len());
            for (key, value) in chunk {
                ops.push(self.put_op(
                    encode(key, &Meta::default(), value, 1)?,
                    "attribute_not_exists(pk)",
                    None,
                )?);
            }
            match self.transact(ops).await? {
                Ok(()) => {}
                Err(failed) if failed.iter().any(|f| *f) => return Ok(false),
                Err(_) => return Err(StoreError::NotFound),
            }
        }
        Ok(true)
    }

    /// Applies every patch (distinct keys, at most 100) in one transaction; `false`, and nothing
    /// written, when a patch's condition (its `require_*`, or the item's existence) fails.
    pub async fn patch_many(&self, patches: &[(Key, Patch)]) -> Result<bool, StoreError> {
        let ops = patches
            .iter()
            .map(|(key, patch)| patch_op(&self.table, key, patch))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.transact(ops).await?.is_ok())
    }

    /// Like [`Store::transition`], with the transition also naming a patch of `counter_key` that is
    /// written in the same transaction (e.g. an object's end and its run's counters).
    pub async fn transition_counted<T, F, M>(
        &self,
        key: &Key,
        meta: M,
        f: F,
        counter_key: &Key,
    ) -> Result<Versioned<T>, StoreError>
    where
        T: Serialize + DeserializeOwned + Clone,
        F: Fn(T) -> Result<(T, Patch), Conflict>,
        M: Fn(&T) -> Meta,
    {
        for _ in 0..MAX_RACE_RETRIES {
            let current: Versioned<T> = self.get(key).await?.ok_or(StoreError::NotFound)?;
            let (next, counters) = f(current.value)?;
            let version = current.version + 1;
            let put = self.put_op(
                encode(key, &meta(&next), &next, version)?,
                "version = :expected",
                Some(current.version),
            )?;
            let upd = patch_op(&self.table, counter_key, &counters)?;
            match self.transact(vec![put, upd]).await? {
                Ok(()) => {
                    return Ok(Versioned {
                        value: next,
                        version,
                    });
                }
                Err(failed) if failed.first() == Some(&true) => {
                    tracing::debug!(pk = %key.pk, sk = %key.sk, "lost a write race, re-reading");
                }
                Err(_) => return Err(StoreError::NotFound),
            }
        }
        Err(StoreError::Backend(format!(
            "gave up after {MAX_RACE_RETRIES} write races on {}",
            key.pk
        )))
    }

    /// Reads many items (consistently) at once: one BatchGetItem per 100 keys. The answer is in the
    /// order of `keys`, `None` for a missing item.
    pub async fn get_many<T: DeserializeOwned>(
        &self,
        keys: &[Key],
    ) -> Result<Vec<Option<Versioned<T>>>, StoreError> {
        let mut found: HashMap<(String, String), Versioned<T>> = HashMap::new();
        for chunk in keys.chunks(100) {
            let mut pending: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|k| {
                    HashMap::from([("pk".to_string(), s(&k.pk)), ("sk".to_string(), s(&k.sk))])
                })
                .collect();
            // Unprocessed keys (throttling) are asked again, a bounded number of times.
            for _ in 0..MAX_RACE_RETRIES {
                if pending.is_empty() {
                    break;
                }
                let ask = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Codec(e.to_string()))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, ask)
                    .send()
                    .await
                    .map_err(backend)?;
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let id = (
                        item.get("pk")
                            .and_then(|v| v.as_s().ok())
                            .cloned()
                            .unwrap_or_default(),
                        item.get("sk")
                            .and_then(|v| v.as_s().ok())
                            .cloned()
                            .unwrap_or_default(),
                    );
                    found.insert(id, decode(item)?);
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
            if !pending.is_empty() {
                return Err(StoreError::Backend(
                    "batch read left keys unprocessed".into(),
                ));
            }
        }
        Ok(keys
            .iter()
            .map(|k| found.remove(&(k.pk.clone(), k.sk.clone())))
            .collect())
    }

    /// Replaces every `(key, meta, value, expected version)` (distinct keys, at most
    /// [`MAX_BATCH_CREATES`]) and applies `counters` (if any) to `counter_key`, in one transaction.
    /// `false`, and nothing written, when any item is no longer at its expected version: the caller
    /// then goes item by item.
    pub async fn replace_many_counted<T: Serialize>(
        &self,
        items: &[(Key, Meta, T, u64)],
        counter_key: &Key,
        counters: Option<&Patch>,
    ) -> Result<bool, StoreError> {
        if items.is_empty() {
            return Ok(true);
        }
        if items.len() > MAX_BATCH_CREATES {
            return Err(StoreError::Codec(format!(
                "{} items in one transaction (at most {MAX_BATCH_CREATES})",
                items.len()
            )));
        }
        let mut ops = Vec::with_capacity(items.len() + 1);
        for (key, meta, value, expected) in items {
            ops.push(self.put_op(
                encode(key, meta, value, expected + 1)?,
                "version = :expected",
                Some(*expected),
            )?);
        }
        if let Some(c) = counters {
            ops.push(patch_op(&self.table, counter_key, c)?);
        }
        match self.transact(ops).await? {
            Ok(()) => Ok(true),
            Err(failed) if failed[..items.len().min(failed.len())].iter().any(|f| *f) => Ok(false),
            Err(_) => Err(StoreError::NotFound),
        }
    }

    /// Deletes the item; `false` if it did not exist.
    pub async fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(backend)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    /// Lists one kind of item on the `gsi1` index, oldest or newest first.
    pub async fn list<T: DeserializeOwned>(
        &self,
        listing: &Listing,
        limit: i32,
        cursor: Option<&str>,
        newest_first: bool,
    ) -> Result<Page<T>, StoreError> {
        let start = cursor
            .map(|c| decode_cursor(c, &["pk", "sk", "gsi1pk", "gsi1sk"]))
            .transpose()?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", s(&listing.0))
            .scan_index_forward(!newest_first)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(backend)?;
        self.page(out.items, out.last_evaluated_key)
    }

    /// Lists the children of a partition (runs of a job, objects of a run) in sort-key order.
    pub async fn children<T: DeserializeOwned>(
        &self,
        children: &Children,
        limit: i32,
        cursor: Option<&str>,
        newest_first: bool,
    ) -> Result<Page<T>, StoreError> {
        let start = cursor
            .map(|c| decode_cursor(c, &["pk", "sk"]))
            .transpose()?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p AND begins_with(sk, :s)")
            .expression_attribute_values(":p", s(&children.pk))
            .expression_attribute_values(":s", s(children.sk_prefix))
            .consistent_read(true)
            .scan_index_forward(!newest_first)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(backend)?;
        self.page(out.items, out.last_evaluated_key)
    }

    fn page<T: DeserializeOwned>(
        &self,
        items: Option<Vec<Item>>,
        last: Option<Item>,
    ) -> Result<Page<T>, StoreError> {
        let items = items
            .unwrap_or_default()
            .into_iter()
            .map(|i| decode(i).map(|v: Versioned<T>| v.value))
            .collect::<Result<Vec<T>, _>>()?;
        Ok(Page {
            items,
            cursor: encode_cursor(last),
        })
    }
}
