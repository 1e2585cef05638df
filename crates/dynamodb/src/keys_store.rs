//! Wrapped data keys and the subject -> streams index, in the subject's partition
//! `{tenant}#K#{subject}`: the key item (sk `KEY`) and one item per stream (sk `S#{stream}`).
//! The key bytes here are always wrapped (encrypted by KMS); this crate never sees them in clear.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use chrono::Utc;
use strata_core::{Error, StreamId};

use crate::DynamoStore;
use crate::error::backend;
use crate::item::{Item, kind};

/// Sort key of a subject's data key item.
pub const KEY_SK: &str = "KEY";
/// Sort key prefix of a subject's stream index items.
pub const STREAM_SK_PREFIX: &str = "S#";

/// A data key as stored: wrapped by KMS, with the id of its generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The generation id (recorded in every field the key seals).
    pub id: String,
    /// The key, encrypted by KMS.
    pub wrapped: Vec<u8>,
}

/// `{tenant}#K#{subject}`.
pub fn subject_pk(tenant: &str, subject: &str) -> String {
    format!("{tenant}#{}#{subject}", crate::keys::DATA_KEY_TAG)
}

fn key(tenant: &str, subject: &str, sk: String) -> [(String, AttributeValue); 2] {
    [("pk".into(), AttributeValue::S(subject_pk(tenant, subject))), ("sk".into(), AttributeValue::S(sk))]
}

impl DynamoStore {
    /// The subject's wrapped data key and its generation id, read strongly consistently.
    pub async fn wrapped_key(&self, tenant: &str, subject: &str) -> Result<Option<WrappedKey>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(&*self.table)
            .set_key(Some(key(tenant, subject, KEY_SK.into()).into_iter().collect()))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(backend)?;
        Ok(out.item.and_then(|item| {
            Some(WrappedKey {
                id: item.get("data_key_id")?.as_s().ok()?.clone(),
                wrapped: item.get("wrapped_key")?.as_b().ok()?.as_ref().to_vec(),
            })
        }))
    }

    /// Stores the subject's wrapped key unless one exists; `false` when another writer was first
    /// (then use theirs: [`DynamoStore::wrapped_key`]).
    pub async fn put_wrapped_key_if_absent(
        &self,
        tenant: &str,
        subject: &str,
        data_key: WrappedKey,
        kms_key_id: &str,
    ) -> Result<bool, Error> {
        let mut item: Item = key(tenant, subject, KEY_SK.into()).into_iter().collect();
        item.insert(kind::ATTRIBUTE.into(), AttributeValue::S(kind::DATA_KEY.into()));
        item.insert("data_key_id".into(), AttributeValue::S(data_key.id));
        item.insert("wrapped_key".into(), AttributeValue::B(Blob::new(data_key.wrapped)));
        item.insert("kms_key_id".into(), AttributeValue::S(kms_key_id.into()));
        item.insert("created_at".into(), AttributeValue::S(Utc::now().to_rfc3339()));
        let result = self
            .client
            .put_item()
            .table_name(&*self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(backend(error)),
            },
        }
    }

    /// Records that `stream` holds sealed fields of the subject (an idempotent put).
    pub async fn remember_subject_stream(
        &self,
        tenant: &str,
        subject: &str,
        stream: &StreamId,
    ) -> Result<(), Error> {
        let mut item: Item =
            key(tenant, subject, format!("{STREAM_SK_PREFIX}{stream}")).into_iter().collect();
        item.insert(kind::ATTRIBUTE.into(), AttributeValue::S(kind::SUBJECT_STREAM.into()));
        item.insert("tenant".into(), AttributeValue::S(stream.tenant().into()));
        item.insert("category".into(), AttributeValue::S(stream.category().into()));
        item.insert("stream_id".into(), AttributeValue::S(stream.id().into()));
        self.put(item).await
    }

    /// The streams recorded for the subject.
    pub async fn subject_streams(&self, tenant: &str, subject: &str) -> Result<Vec<StreamId>, Error> {
        let mut streams = Vec::new();
        for item in self.subject_items(tenant, subject, STREAM_SK_PREFIX).await? {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            streams.push(StreamId::new(text("tenant"), text("category"), text("stream_id"))?);
        }
        Ok(streams)
    }

    /// Deletes the subject's key item first (that is the erasure), then its stream index.
    pub async fn delete_subject(&self, tenant: &str, subject: &str) -> Result<(), Error> {
        self.delete(key(tenant, subject, KEY_SK.into())).await?;
        for item in self.subject_items(tenant, subject, STREAM_SK_PREFIX).await? {
            if let Some(AttributeValue::S(sk)) = item.get("sk") {
                self.delete(key(tenant, subject, sk.clone())).await?;
            }
        }
        Ok(())
    }

    async fn delete(&self, key: [(String, AttributeValue); 2]) -> Result<(), Error> {
        self.client
            .delete_item()
            .table_name(&*self.table)
            .set_key(Some(key.into_iter().collect()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn subject_items(&self, tenant: &str, subject: &str, prefix: &str) -> Result<Vec<Item>, Error> {
        self.query_all(
            self.client
                .query()
                .table_name(&*self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", AttributeValue::S(subject_pk(tenant, subject)))
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.into()))
                .consistent_read(true),
        )
        .await
    }
}
