//! DynamoDB target: items are hotel documents keyed by their `key` (the table's hash key, whatever its
//! name), written with BatchWriteItem 25 at a time, several batches in flight. The table is created
//! on demand (on-demand billing, hash key `key`). Uses the function's own credentials unless the
//! request gave keys.

use super::{Creds, TargetError, hotel};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, KeySchemaElement, KeyType,
    PutRequest, ScalarAttributeType, Select, WriteRequest,
};
use futures::StreamExt;
use std::collections::HashMap;

/// Bytes of items per fill step, at most (but at least one BatchWriteItem of 25): a step's items are
/// all made before they are written, so large ones come fewer at a time (4,000 items of 1 KiB, 41 of
/// 400 KB).
const FILL_STEP_BYTES: usize = 16 << 20;
/// Items per BatchWriteItem (DynamoDB's limit).
const BATCH_ITEMS: usize = 25;

#[derive(Clone, Debug)]
pub struct Dynamo {
    client: Client,
    table: String,
    hash_key: String,
}

fn failed<E: std::error::Error + 'static, R: std::fmt::Debug>(
    e: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> TargetError {
    use aws_sdk_dynamodb::error::SdkError as S;
    match &e {
        S::DispatchFailure(_) | S::TimeoutError(_) => {
            TargetError::Unreachable(DisplayErrorContext(&e).to_string())
        }
        _ => TargetError::Failed(DisplayErrorContext(&e).to_string()),
    }
}

/// A client for the target: the function's configuration, with the request's region and keys if given.
pub fn client(base: &aws_config::SdkConfig, region: Option<&str>, creds: &Creds) -> Client {
    let mut b = aws_sdk_dynamodb::config::Builder::from(base);
    if let Some(r) = region {
        b = b.region(aws_sdk_dynamodb::config::Region::new(r.to_string()));
    }
    if let (Some(a), Some(s)) = (&creds.access_key, &creds.secret_key) {
        b = b.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            a.clone(),
            s.clone(),
            creds.session_token.clone(),
            None,
            "loader-request",
        ));
    }
    Client::from_conf(b.build())
}

fn to_item(doc: serde_json::Map<String, serde_json::Value>) -> HashMap<String, AttributeValue> {
    serde_dynamo::to_item(doc).unwrap_or_default()
}

impl Dynamo {
    /// Items of `size` bytes per fill step: `most`, or fewer when they would pass [`FILL_STEP_BYTES`].
    pub fn fill_step(most: u64, size: usize) -> u64 {
        super::fitting(FILL_STEP_BYTES, size, BATCH_ITEMS, most as usize) as u64
    }

    /// Opens `table`, creating it when `create` and it does not exist.
    pub async fn open(client: Client, table: &str, create: bool) -> Result<Dynamo, TargetError> {
        super::check_identifier("table_name", table).map_err(TargetError::Refused)?;
        let described = client.describe_table().table_name(table).send().await;
        let hash_key = match described {
            Ok(d) => d
                .table
                .and_then(|t| t.key_schema)
                .and_then(|k| {
                    k.into_iter()
                        .find(|e| e.key_type == KeyType::Hash)
                        .map(|e| e.attribute_name)
                })
                .unwrap_or_else(|| "key".into()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                if !create {
                    return Err(TargetError::Refused(format!(
                        "table {table} does not exist"
                    )));
                }
                client
                    .create_table()
                    .table_name(table)
                    .billing_mode(BillingMode::PayPerRequest)
                    .attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name("key")
                            .attribute_type(ScalarAttributeType::S)
                            .build()
                            .map_err(|e| TargetError::Failed(e.to_string()))?,
                    )
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name("key")
                            .key_type(KeyType::Hash)
                            .build()
                            .map_err(|e| TargetError::Failed(e.to_string()))?,
                    )
                    .send()
                    .await
                    .map_err(failed)?;
                "key".into()
            }
            Err(e) => return Err(failed(e)),
        };
        Ok(Dynamo {
            client,
            table: table.to_string(),
            hash_key,
        })
    }

    pub async fn count(&self) -> Result<u64, TargetError> {
        let mut total = 0u64;
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(failed)?;
            total += out.count.max(0) as u64;
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(total);
            }
        }
    }

    async fn write(&self, requests: Vec<WriteRequest>) -> Result<(), TargetError> {
        let mut pending = requests;
        for attempt in 0..8u32 {
            if pending.is_empty() {
                return Ok(());
            }
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(failed)?;
            pending = out
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.table))
                .unwrap_or_default();
            if !pending.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
        }
        if pending.is_empty() {
            Ok(())
        } else {
            Err(TargetError::Failed(format!(
                "{} writes still unprocessed after retries",
                pending.len()
            )))
        }
    }

    async fn write_all(&self, requests: Vec<WriteRequest>) -> Result<(), TargetError> {
        let mut requests = requests.into_iter();
        let batches = std::iter::from_fn(|| {
            let b: Vec<WriteRequest> = requests.by_ref().take(BATCH_ITEMS).collect();
            (!b.is_empty()).then_some(b)
        });
        let results: Vec<Result<(), TargetError>> = futures::stream::iter(batches)
            .map(|b| self.write(b))
            .buffer_unordered(8)
            .collect()
            .await;
        results.into_iter().collect()
    }

    fn key_of(&self, loader_id: &str, seq: u64) -> HashMap<String, AttributeValue> {
        HashMap::from([(
            self.hash_key.clone(),
            AttributeValue::S(hotel::key(loader_id, seq)),
        )])
    }

    pub async fn insert(
        &self,
        loader_id: &str,
        seqs: std::ops::Range<u64>,
        size: usize,
    ) -> Result<u64, TargetError> {
        let n = seqs.end - seqs.start;
        let requests = seqs
            .map(|seq| {
                let mut item = to_item(hotel::document(loader_id, seq, size));
                item.extend(self.key_of(loader_id, seq));
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                    .build()
            })
            .collect();
        self.write_all(requests).await?;
        Ok(n)
    }

    /// Deletes this loader's items `seqs` (the oldest); returns how many were asked.
    pub async fn delete_seqs(
        &self,
        loader_id: &str,
        seqs: std::ops::Range<u64>,
    ) -> Result<u64, TargetError> {
        let n = seqs.end - seqs.start;
        let requests = seqs
            .map(|seq| {
                WriteRequest::builder()
                    .delete_request(
                        DeleteRequest::builder()
                            .set_key(Some(self.key_of(loader_id, seq)))
                            .build()
                            .unwrap(),
                    )
                    .build()
            })
            .collect();
        self.write_all(requests).await?;
        Ok(n)
    }

    /// Deletes any `n` items (trimming a table that holds more than the target).
    pub async fn delete_any(&self, n: u64) -> Result<u64, TargetError> {
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .projection_expression("#k")
            .expression_attribute_names("#k", &self.hash_key)
            .limit(n.min(1000) as i32)
            .send()
            .await
            .map_err(failed)?;
        let keys = out.items.unwrap_or_default();
        let got = keys.len() as u64;
        let requests = keys
            .into_iter()
            .map(|k| {
                WriteRequest::builder()
                    .delete_request(DeleteRequest::builder().set_key(Some(k)).build().unwrap())
                    .build()
            })
            .collect();
        self.write_all(requests).await?;
        Ok(got)
    }

    /// Sets `mutated` on existing items `seqs`; returns how many existed.
    pub async fn update(
        &self,
        loader_id: &str,
        seqs: &[u64],
        mutation: u64,
    ) -> Result<u64, TargetError> {
        let results: Vec<Result<u64, TargetError>> = futures::stream::iter(seqs.to_vec())
            .map(|seq| async move {
                match self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(self.key_of(loader_id, seq)))
                    .update_expression("SET mutated = :m")
                    .condition_expression("attribute_exists(#k)")
                    .expression_attribute_names("#k", &self.hash_key)
                    .expression_attribute_values(":m", AttributeValue::N(mutation.to_string()))
                    .send()
                    .await
                {
                    Ok(_) => Ok(1),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                    {
                        Ok(0)
                    }
                    Err(e) => Err(failed(e)),
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().sum()
    }

    pub async fn delete_table(&self) -> Result<(), TargetError> {
        self.client
            .delete_table()
            .table_name(&self.table)
            .send()
            .await
            .map(|_| ())
            .map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_steps_hold_fewer_large_items_and_at_least_one_batch() {
        assert_eq!(Dynamo::fill_step(4000, 1024), 4000);
        assert_eq!(Dynamo::fill_step(4000, 400_000), 41);
        assert_eq!(Dynamo::fill_step(4000, 10_000_000), 25);
        assert_eq!(Dynamo::fill_step(10, 1024), 25);
        assert_eq!(Dynamo::fill_step(4000, 0), 4000);
    }
}
