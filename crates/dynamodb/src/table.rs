//! [`TableSpec`]: the table's shape in one place, exported as JSON for the CDK app to be checked
//! against, and used to create tables in the emulator.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus,
    TimeToLiveSpecification,
};
use serde::{Deserialize, Serialize};
use strata_core::Error;

use crate::error::backend;
use crate::keys;

/// A key attribute: name and DynamoDB scalar type (`S`, `N` or `B`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAttribute {
    /// Attribute name.
    pub name: String,
    /// `S`, `N` or `B`.
    #[serde(rename = "type")]
    pub attribute_type: String,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSpec {
    /// Index name.
    pub name: String,
    /// Partition key.
    pub partition_key: KeyAttribute,
    /// Sort key.
    pub sort_key: KeyAttribute,
    /// `KEYS_ONLY`, `INCLUDE` or `ALL`.
    pub projection: String,
    /// Why the index exists.
    pub purpose: String,
}

/// A class of items, by the tag that follows the tenant in their partition key
/// (`{tenant}#{tag}#...`): what IAM policies match with `dynamodb:LeadingKeys` to confine a function
/// to the items it may write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionClass {
    /// What the items are (`stream`, `data_key`, `idempotency`, `view`).
    pub name: String,
    /// The tag.
    pub tag: String,
    /// What the partitions hold.
    pub holds: String,
}

/// The event store table's shape. [`TableSpec::strata`] is the one the stores in this crate need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSpec {
    /// Partition key.
    pub partition_key: KeyAttribute,
    /// Sort key.
    pub sort_key: KeyAttribute,
    /// `PAY_PER_REQUEST`.
    pub billing_mode: String,
    /// The stream view the publisher reads (`NEW_IMAGE`).
    pub stream_view_type: String,
    /// The TTL attribute (epoch seconds).
    pub ttl_attribute: String,
    /// Point-in-time recovery on.
    pub point_in_time_recovery: bool,
    /// Global secondary indexes.
    pub global_secondary_indexes: Vec<IndexSpec>,
    /// The classes of partitions, each `{tenant}#{tag}#...`.
    pub partition_classes: Vec<PartitionClass>,
    /// The attribute naming what an item is (`commit`, `snapshot`, `view`, ...).
    pub kind_attribute: String,
    /// The kind of the items the publisher relays (the CDK app filters the stream mapping on it, so
    /// writes of views and keys never invoke the publisher).
    pub published_kind: String,
    /// The kind of snapshot items: their inserts also pass the mapping's filter, so the publisher
    /// prunes a stream's older snapshots off the command path.
    pub snapshot_kind: String,
    /// Sort key prefixes of items never changed once written: commits (a zero-padded version, and
    /// snapshots beside them, which share it) and audit records. The publisher's mapping passes
    /// every MODIFY and REMOVE of such keys, and the publisher reports a commit's or an audit
    /// record's as tampering.
    pub immutable_sort_key_prefixes: Vec<String>,
}

/// Name of the sparse index listing a stream's snapshots (for pruning without reading the stream).
pub const SNAPSHOTS_INDEX: &str = "snapshots";

fn class(name: &str, tag: &str, holds: &str) -> PartitionClass {
    PartitionClass { name: name.into(), tag: tag.into(), holds: holds.into() }
}

fn key(name: &str, attribute_type: &str) -> KeyAttribute {
    KeyAttribute { name: name.into(), attribute_type: attribute_type.into() }
}

impl TableSpec {
    /// The table the Strata stores need.
    pub fn strata() -> Self {
        Self {
            partition_key: key("pk", "S"),
            sort_key: key("sk", "S"),
            billing_mode: "PAY_PER_REQUEST".into(),
            stream_view_type: "NEW_IMAGE".into(),
            ttl_attribute: "expires_at".into(),
            point_in_time_recovery: true,
            global_secondary_indexes: vec![
                IndexSpec {
                    name: SNAPSHOTS_INDEX.into(),
                    partition_key: key("snapshot_of", "S"),
                    sort_key: key("snapshot_version", "N"),
                    projection: "KEYS_ONLY".into(),
                    purpose:
                        "Sparse: only snapshot items carry snapshot_of. Lists a stream's snapshots newest \
                          first so pruning to keep-K never reads the stream's commits."
                            .into(),
                },
                IndexSpec {
                    name: crate::views::LOOKUP_INDEX.into(),
                    partition_key: key("lookup_pk", "S"),
                    sort_key: key("lookup_sk", "S"),
                    projection: "ALL".into(),
                    purpose:
                        "Sparse: only read-model views with a lookup carry lookup_pk. Lists views across \
                          streams (a customer's orders) in one Query, without a read per view."
                            .into(),
                },
            ],
            partition_classes: vec![
                class(
                    "stream",
                    keys::STREAM_TAG,
                    "a stream's commits and snapshots: {tenant}#S#{category}-{id}",
                ),
                class(
                    "data_key",
                    keys::DATA_KEY_TAG,
                    "a data subject's wrapped data key: {tenant}#K#{subject}",
                ),
                class("idempotency", keys::IDEMPOTENCY_TAG, "an idempotency record: {tenant}#I#{key}"),
                class(
                    "audit",
                    keys::AUDIT_TAG,
                    "a data subject's audit trail, one item per export or erasure and outcome: {tenant}#A#{subject}",
                ),
                class(
                    "view",
                    keys::VIEW_TAG,
                    "a read-model view ({tenant}#P#{projection}#{category}-{id}) and, in the lookup index, \
                     a lookup partition ({tenant}#P#{projection}#{partition})",
                ),
            ],
            kind_attribute: crate::item::kind::ATTRIBUTE.into(),
            published_kind: crate::item::kind::COMMIT.into(),
            snapshot_kind: crate::item::kind::SNAPSHOT.into(),
            immutable_sort_key_prefixes: vec!["0".into(), crate::keys_store::AUDIT_SK_PREFIX.into()],
        }
    }

    /// The spec as pretty JSON (what `infra/table-spec.json` holds).
    pub fn to_json(&self) -> String {
        // A struct of strings, bools and vectors always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Creates a table of this shape named `table_name`, waits (up to `deadline`) until it is active,
    /// and turns on TTL. For emulators and tests; production tables come from the CDK app.
    pub async fn create(&self, client: &Client, table_name: &str, deadline: Duration) -> Result<(), Error> {
        let mut attributes = vec![self.partition_key.clone(), self.sort_key.clone()];
        for index in &self.global_secondary_indexes {
            attributes.push(index.partition_key.clone());
            attributes.push(index.sort_key.clone());
        }
        attributes.dedup_by(|a, b| a.name == b.name);
        let definitions = attributes
            .iter()
            .map(|a| {
                AttributeDefinition::builder()
                    .attribute_name(&a.name)
                    .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
                    .build()
                    .map_err(|e| Error::InvalidRequest(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut request = client
            .create_table()
            .table_name(table_name)
            .set_attribute_definitions(Some(definitions))
            .set_key_schema(Some(key_schema(&self.partition_key, &self.sort_key)?))
            .billing_mode(BillingMode::from(self.billing_mode.as_str()))
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(self.stream_view_type.as_str()))
                    .build()
                    .map_err(|e| Error::InvalidRequest(e.to_string()))?,
            );
        for index in &self.global_secondary_indexes {
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(&index.name)
                    .set_key_schema(Some(key_schema(&index.partition_key, &index.sort_key)?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::from(index.projection.as_str()))
                            .build(),
                    )
                    .build()
                    .map_err(|e| Error::InvalidRequest(e.to_string()))?,
            );
        }
        request.send().await.map_err(backend)?;

        let start = std::time::Instant::now();
        loop {
            let described = client.describe_table().table_name(table_name).send().await.map_err(backend)?;
            if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                break;
            }
            if start.elapsed() > deadline {
                return Err(Error::backend(
                    format!("table {table_name} not active after {deadline:?}"),
                    true,
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client
            .update_time_to_live()
            .table_name(table_name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(&self.ttl_attribute)
                    .build()
                    .map_err(|e| Error::InvalidRequest(e.to_string()))?,
            )
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }
}

fn key_schema(partition: &KeyAttribute, sort: &KeyAttribute) -> Result<Vec<KeySchemaElement>, Error> {
    [(partition, KeyType::Hash), (sort, KeyType::Range)]
        .into_iter()
        .map(|(a, key_type)| {
            KeySchemaElement::builder()
                .attribute_name(&a.name)
                .key_type(key_type)
                .build()
                .map_err(|e| Error::InvalidRequest(e.to_string()))
        })
        .collect()
}
