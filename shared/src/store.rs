//! The DynamoDB store: typed items under [`Key`]s, each with a `version` attribute, written with
//! condition expressions so that two writers can never both win.
//!
//! A state change is a pure transition (`T -> Result<T, Conflict>`) applied by [`Store::transition`]:
//! read, apply, write on condition `version = read version`; on a lost race it re-reads and re-applies,
//! so a transition that the winner made impossible ends in [`StoreError::Conflict`].

use crate::domain::Conflict;
use crate::keys::{Children, IndexKey, Key, Listing};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};

type Item = HashMap<String, AttributeValue>;

const MAX_RACE_RETRIES: usize = 8;
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
