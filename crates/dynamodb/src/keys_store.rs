//! Wrapped data keys and the subject -> streams index, in the subject's partition
//! `{tenant}#K#{subject}`: the key item (sk `KEY`) and one item per stream (sk `S#{stream}`).
//! The key bytes here are always wrapped (encrypted by KMS); this crate never sees them in clear.
//!
//! Both items are mapped with `serde_dynamo`. An item that does not have the shape written here is
//! a [`MalformedKeyItem`], never "no key": the cipher reads a missing key as a forgotten subject, and
//! a corrupted key item must not silently redact the subject's data.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use strata_core::{Error, StreamId};

use crate::DynamoStore;
use crate::error::backend;
use crate::item::{Item, kind, to_item};

/// Sort key of a subject's data key item.
pub const KEY_SK: &str = "KEY";
/// Sort key prefix of a subject's stream index items.
pub const STREAM_SK_PREFIX: &str = "S#";
/// Sort key prefix of a subject's audit records, in the subject's audit partition
/// `{tenant}#A#{subject}` (`AUDIT#{at}#{id}`: time order). The prefix is what the publisher's stream
/// filter matches to report a change to one (audit records, like commits, are never changed).
pub const AUDIT_SK_PREFIX: &str = "AUDIT#";

fn outcome_name(outcome: strata_core::AccessOutcome) -> &'static str {
    match outcome {
        strata_core::AccessOutcome::Attempted => "attempted",
        strata_core::AccessOutcome::Done => "done",
        strata_core::AccessOutcome::Failed => "failed",
    }
}

/// `{tenant}#A#{subject}`: a subject's audit trail, a partition class of its own, so that no role
/// that may write or delete data keys can write or delete it.
pub fn audit_pk(tenant: &str, subject: &str) -> String {
    format!("{tenant}#{}#{subject}", crate::keys::AUDIT_TAG)
}

/// A subject's audit record ([`strata_core::SubjectAccess`]) as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SubjectAccessItem {
    pk: String,
    sk: String,
    kind: String,
    #[serde(flatten)]
    access: strata_core::SubjectAccess,
}

/// A data key as stored: wrapped by KMS, with the id of its generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The generation id (recorded in every field the key seals).
    pub id: String,
    /// The key, encrypted by KMS.
    pub wrapped: Vec<u8>,
}

/// A subject's data key item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataKeyItem {
    /// `{tenant}#K#{subject}`.
    pub pk: String,
    /// Always [`KEY_SK`].
    pub sk: String,
    /// Always [`kind::DATA_KEY`].
    pub kind: String,
    /// The key generation's id.
    pub data_key_id: String,
    /// The data key wrapped by KMS (a binary attribute).
    #[serde(with = "serde_bytes")]
    pub wrapped_key: Vec<u8>,
    /// The KMS key that wrapped it. Informational: the wrapped key names its KMS key itself, so an
    /// item without it still opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// When the key was made. Informational, like `kms_key_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

/// An entry of a subject's stream index: `stream` holds sealed fields of the subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectStreamItem {
    /// `{tenant}#K#{subject}`.
    pub pk: String,
    /// `S#{stream}`.
    pub sk: String,
    /// Always [`kind::SUBJECT_STREAM`].
    pub kind: String,
    /// The stream's tenant.
    pub tenant: String,
    /// The stream's category.
    pub category: String,
    /// The stream's id within its category.
    pub stream_id: String,
}

/// A data key or stream index item of a subject that is not in the shape this crate writes (an
/// attribute missing or of another type, another kind): corruption or a foreign writer. Carried as
/// the source of a non-retryable [`Error::Backend`]; never read as "no key".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {what} item of subject {subject} (tenant {tenant}) is malformed: {reason}")]
pub struct MalformedKeyItem {
    /// Which item: `"data key"` or `"subject stream"`.
    pub what: &'static str,
    /// The tenant.
    pub tenant: String,
    /// The subject whose partition holds it.
    pub subject: String,
    /// What is wrong (never a key byte: the item holds only wrapped keys and names).
    pub reason: String,
}

impl MalformedKeyItem {
    fn error(what: &'static str, tenant: &str, subject: &str, reason: impl Into<String>) -> Error {
        let malformed =
            Self { what, tenant: tenant.to_owned(), subject: subject.to_owned(), reason: reason.into() };
        // No retry mends a corrupt item; an operator must.
        Error::backend(malformed, false)
    }
}

/// `{tenant}#K#{subject}`.
pub fn subject_pk(tenant: &str, subject: &str) -> String {
    format!("{tenant}#{}#{subject}", crate::keys::DATA_KEY_TAG)
}

fn key(tenant: &str, subject: &str, sk: String) -> [(String, AttributeValue); 2] {
    [("pk".into(), AttributeValue::S(subject_pk(tenant, subject))), ("sk".into(), AttributeValue::S(sk))]
}

/// Reads a key or index item, checking its kind; anything else is a [`MalformedKeyItem`].
fn from_item<T: for<'de> Deserialize<'de>>(
    item: Item,
    what: &'static str,
    expected_kind: &str,
    tenant: &str,
    subject: &str,
) -> Result<T, Error> {
    match crate::item::kind_of(&item) {
        Some(found) if found == expected_kind => {}
        found => {
            let reason = format!("its kind is {found:?}, not {expected_kind:?}");
            return Err(MalformedKeyItem::error(what, tenant, subject, reason));
        }
    }
    serde_dynamo::from_item(item)
        .map_err(|source| MalformedKeyItem::error(what, tenant, subject, source.to_string()))
}

impl DynamoStore {
    /// The subject's wrapped data key and its generation id, read strongly consistently; `None` when
    /// the subject has no key item (never had one, or was forgotten). An item that is there but not
    /// a well-formed key item is an error ([`MalformedKeyItem`], not retryable), never `None`.
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
        let Some(item) = out.item else { return Ok(None) };
        let item: DataKeyItem = from_item(item, "data key", kind::DATA_KEY, tenant, subject)?;
        if item.data_key_id.is_empty() || item.wrapped_key.is_empty() {
            let reason = "its data_key_id or wrapped_key is empty";
            return Err(MalformedKeyItem::error("data key", tenant, subject, reason));
        }
        Ok(Some(WrappedKey { id: item.data_key_id, wrapped: item.wrapped_key }))
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
        let item = DataKeyItem {
            pk: subject_pk(tenant, subject),
            sk: KEY_SK.into(),
            kind: kind::DATA_KEY.into(),
            data_key_id: data_key.id,
            wrapped_key: data_key.wrapped,
            kms_key_id: Some(kms_key_id.into()),
            created_at: Some(Utc::now()),
        };
        let item = to_item(&item, "data key")?;
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
        let item = SubjectStreamItem {
            pk: subject_pk(tenant, subject),
            sk: format!("{STREAM_SK_PREFIX}{stream}"),
            kind: kind::SUBJECT_STREAM.into(),
            tenant: stream.tenant().into(),
            category: stream.category().into(),
            stream_id: stream.id().into(),
        };
        self.put(to_item(&item, "subject stream")?).await
    }

    /// The streams recorded for the subject.
    pub async fn subject_streams(&self, tenant: &str, subject: &str) -> Result<Vec<StreamId>, Error> {
        let mut streams = Vec::new();
        for item in self.subject_items(tenant, subject, STREAM_SK_PREFIX).await? {
            let item: SubjectStreamItem =
                from_item(item, "subject stream", kind::SUBJECT_STREAM, tenant, subject)?;
            let stream = StreamId::new(item.tenant, item.category, item.stream_id).map_err(|error| {
                MalformedKeyItem::error("subject stream", tenant, subject, error.to_string())
            })?;
            streams.push(stream);
        }
        Ok(streams)
    }

    /// Deletes the subject's key item first (that is the erasure), then its stream index, by key
    /// alone: a malformed item is deleted too.
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

    /// Records a subject's export or erasure in its audit partition: a put of a new item only
    /// (`attribute_not_exists`), never over another record.
    pub async fn record_subject_access(&self, access: &strata_core::SubjectAccess) -> Result<(), Error> {
        let item = SubjectAccessItem {
            pk: audit_pk(&access.tenant, &access.subject),
            // Unique per record: an access's two records share its id and differ in outcome.
            sk: format!(
                "{AUDIT_SK_PREFIX}{}#{}#{}",
                access.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                access.access_id,
                outcome_name(access.outcome),
            ),
            kind: kind::SUBJECT_ACCESS.into(),
            access: access.clone(),
        };
        let result = self
            .client
            .put_item()
            .table_name(&*self.table)
            .set_item(Some(to_item(&item, "subject access")?))
            .condition_expression("attribute_not_exists(pk)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // The SDK resends a timed-out request with the same body: the item in the way, under a
            // key this record alone has, is this record, written by the first attempt.
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(error) => Err(backend(error)),
        }
    }

    /// A subject's audit records, oldest first.
    pub async fn subject_accesses(
        &self,
        tenant: &str,
        subject: &str,
    ) -> Result<Vec<strata_core::SubjectAccess>, Error> {
        let items = self
            .query_all(
                self.client
                    .query()
                    .table_name(&*self.table)
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":pk", AttributeValue::S(audit_pk(tenant, subject)))
                    .expression_attribute_values(":prefix", AttributeValue::S(AUDIT_SK_PREFIX.into()))
                    .consistent_read(true),
            )
            .await?;
        let mut accesses = Vec::new();
        for item in items {
            let item: SubjectAccessItem =
                from_item(item, "subject access", kind::SUBJECT_ACCESS, tenant, subject)?;
            accesses.push(item.access);
        }
        Ok(accesses)
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

impl strata_core::SubjectAudit for DynamoStore {
    async fn record_access(&self, access: &strata_core::SubjectAccess) -> Result<(), Error> {
        self.record_subject_access(access).await
    }

    async fn accesses(&self, tenant: &str, subject: &str) -> Result<Vec<strata_core::SubjectAccess>, Error> {
        self.subject_accesses(tenant, subject).await
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::primitives::Blob;

    use super::*;

    fn stored_key_item() -> Item {
        // The shape every version of this crate has written: created_at as RFC 3339 with an offset.
        Item::from([
            ("pk".to_owned(), AttributeValue::S("acme#K#cust-1".into())),
            ("sk".to_owned(), AttributeValue::S(KEY_SK.into())),
            ("kind".to_owned(), AttributeValue::S(kind::DATA_KEY.into())),
            ("data_key_id".to_owned(), AttributeValue::S("01J0000000000000000000000".into())),
            ("wrapped_key".to_owned(), AttributeValue::B(Blob::new(vec![1, 2, 3]))),
            ("kms_key_id".to_owned(), AttributeValue::S("arn:aws:kms:us-east-1:1:key/k".into())),
            ("created_at".to_owned(), AttributeValue::S("2026-01-02T03:04:05.123456+00:00".into())),
        ])
    }

    fn malformed(result: Result<DataKeyItem, Error>) -> MalformedKeyItem {
        match result {
            Err(Error::Backend { source, retryable: false }) => {
                source.downcast_ref::<MalformedKeyItem>().cloned().unwrap()
            }
            other => panic!("not a malformed item: {other:?}"),
        }
    }

    #[test]
    fn an_audit_record_round_trips_in_its_own_partition_class() {
        let access = strata_core::SubjectAccess {
            tenant: "acme".into(),
            subject: "cust-1".into(),
            access_id: "01J0".into(),
            action: strata_core::SubjectAction::Forget,
            outcome: strata_core::AccessOutcome::Attempted,
            actor: None,
            via: "cli".into(),
            at: Utc::now(),
        };
        let item = SubjectAccessItem {
            pk: audit_pk("acme", "cust-1"),
            sk: format!("{AUDIT_SK_PREFIX}x"),
            kind: kind::SUBJECT_ACCESS.into(),
            access,
        };
        assert_eq!(item.pk, "acme#A#cust-1");
        let written = to_item(&item, "subject access").unwrap();
        assert_eq!(
            (&written["action"], &written["outcome"]),
            (&AttributeValue::S("forget".into()), &AttributeValue::S("attempted".into()))
        );
        let back: SubjectAccessItem =
            from_item(written, "subject access", kind::SUBJECT_ACCESS, "acme", "cust-1").unwrap();
        assert_eq!(back, item);
    }

    #[test]
    fn stored_key_items_read_and_new_ones_keep_the_attribute_names_and_types() {
        let item: DataKeyItem =
            from_item(stored_key_item(), "data key", kind::DATA_KEY, "acme", "cust-1").unwrap();
        assert_eq!(
            (item.data_key_id.as_str(), item.wrapped_key.as_slice()),
            ("01J0000000000000000000000", &[1, 2, 3][..])
        );
        let written = to_item(&item, "data key").unwrap();
        let mut names: Vec<&str> = written.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["created_at", "data_key_id", "kind", "kms_key_id", "pk", "sk", "wrapped_key"]);
        assert_eq!(written["wrapped_key"], AttributeValue::B(Blob::new(vec![1, 2, 3])));
        assert!(written["created_at"].as_s().unwrap().starts_with("2026-01-02T03:04:05.123456"));
    }

    #[test]
    fn a_key_item_missing_or_mistyping_an_attribute_is_malformed_not_absent() {
        let mut missing = stored_key_item();
        missing.remove("wrapped_key");
        let error = malformed(from_item(missing, "data key", kind::DATA_KEY, "acme", "cust-1"));
        assert_eq!((error.what, error.subject.as_str()), ("data key", "cust-1"));
        let mut mistyped = stored_key_item();
        mistyped.insert("wrapped_key".into(), AttributeValue::S("AQID".into()));
        malformed(from_item(mistyped, "data key", kind::DATA_KEY, "acme", "cust-1"));
        let mut other_kind = stored_key_item();
        other_kind.insert("kind".into(), AttributeValue::S(kind::SNAPSHOT.into()));
        malformed(from_item(other_kind, "data key", kind::DATA_KEY, "acme", "cust-1"));
    }
}
