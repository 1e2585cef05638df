//! Read-model views in the table: one item per (projection, stream) holding the view and its
//! checkpoint, so applying an event is one conditional `PutItem`.
//!
//! | item | pk | sk | lookup_pk / lookup_sk (GSI `lookup`) |
//! |---|---|---|---|
//! | view | `{tenant}#P#{projection}#{category}-{id}` | `VIEW` | `{tenant}#P#{projection}#{partition}` / sort |
//!
//! A partition per view spreads a projection's writes over the whole table (no hot projection
//! partition); listings go through the sparse `lookup` index instead of one big partition.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use strata_core::projection::{Lookup, StoredView, ViewStore, lookup_position};
use strata_core::{Error, ExpectedVersion, MAX_CATEGORY_LEN, StreamId, validate_key_part};

use crate::DynamoStore;
use crate::error::backend;
use crate::item::{Item, MAX_ITEM_BYTES, from_item, item_size, kind, to_item};
use crate::keys::VIEW_TAG;

/// Sort key of a view item.
pub const VIEW_SK: &str = "VIEW";
/// Name of the sparse index listing views by lookup partition.
pub const LOOKUP_INDEX: &str = "lookup";

/// `{tenant}#P#{projection}#{category}-{id}`.
pub fn view_pk(projection: &str, stream: &StreamId) -> String {
    format!("{}#{VIEW_TAG}#{projection}#{}-{}", stream.tenant(), stream.category(), stream.id())
}

/// `{tenant}#P#{projection}#{partition}`: a lookup partition of the `lookup` index.
pub fn lookup_pk(tenant: &str, projection: &str, partition: &str) -> String {
    format!("{tenant}#{VIEW_TAG}#{projection}#{partition}")
}

/// A view as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewItem {
    /// `{tenant}#P#{projection}#{category}-{id}`.
    pub pk: String,
    /// `VIEW`.
    pub sk: String,
    /// `view`.
    pub kind: String,
    /// The projection's name.
    pub projection: String,
    /// The stream's tenant.
    pub tenant: String,
    /// The stream's category.
    pub category: String,
    /// The stream's id.
    pub stream_id: String,
    /// Last stream version applied (the checkpoint; the write condition).
    pub version: u64,
    /// The projection's schema version.
    pub schema_version: u32,
    /// The view as JSON text (personal fields sealed); absent when the projection keeps none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Lookup partition key (sparse index `lookup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_pk: Option<String>,
    /// The lookup partition as given (for reading back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_partition: Option<String>,
    /// Lookup position (the sort key, then the stream: unique): the index's sort key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_sk: Option<String>,
    /// The lookup sort key as given (for reading back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_sort: Option<String>,
    /// When written.
    pub updated_at: DateTime<Utc>,
}

impl ViewItem {
    /// The item for a view.
    pub fn new(view: &StoredView) -> Result<Self, Error> {
        validate_key_part("projection", &view.projection, MAX_CATEGORY_LEN)?;
        let state = view
            .state
            .as_ref()
            .map(|state| {
                serde_json::to_string(state).map_err(|source| Error::Serialize { what: "view", source })
            })
            .transpose()?;
        Ok(Self {
            pk: view_pk(&view.projection, &view.stream),
            sk: VIEW_SK.into(),
            kind: kind::VIEW.into(),
            projection: view.projection.clone(),
            tenant: view.stream.tenant().into(),
            category: view.stream.category().into(),
            stream_id: view.stream.id().into(),
            version: view.version,
            schema_version: view.schema_version,
            state,
            lookup_pk: view
                .lookup
                .as_ref()
                .map(|l| lookup_pk(view.stream.tenant(), &view.projection, &l.partition)),
            lookup_partition: view.lookup.as_ref().map(|l| l.partition.clone()),
            lookup_sk: view.lookup.as_ref().map(|l| lookup_position(l, &view.stream)),
            lookup_sort: view.lookup.as_ref().map(|l| l.sort.clone()),
            updated_at: view.updated_at,
        })
    }

    /// Back to the core's form.
    pub fn into_view(self) -> Result<StoredView, Error> {
        let stream = StreamId::new(&self.tenant, &self.category, &self.stream_id)?;
        let state = self
            .state
            .map(|text| {
                serde_json::from_str(&text).map_err(|source| Error::Deserialize { what: "view", source })
            })
            .transpose()?;
        let lookup = match (self.lookup_partition, self.lookup_sort) {
            (Some(partition), Some(sort)) => Some(Lookup { partition, sort }),
            _ => None,
        };
        Ok(StoredView {
            projection: self.projection,
            stream,
            version: self.version,
            schema_version: self.schema_version,
            state,
            lookup,
            updated_at: self.updated_at,
        })
    }
}

fn view_key(projection: &str, stream: &StreamId) -> Item {
    [
        ("pk".to_owned(), AttributeValue::S(view_pk(projection, stream))),
        ("sk".to_owned(), AttributeValue::S(VIEW_SK.into())),
    ]
    .into_iter()
    .collect()
}

impl ViewStore for DynamoStore {
    async fn get_view(&self, projection: &str, stream: &StreamId) -> Result<Option<StoredView>, Error> {
        validate_key_part("projection", projection, MAX_CATEGORY_LEN)?;
        let out = self
            .client
            .get_item()
            .table_name(&*self.table)
            .set_key(Some(view_key(projection, stream)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(backend)?;
        out.item.map(|item| from_item::<ViewItem>(item, "view item")?.into_view()).transpose()
    }

    async fn put_view(&self, view: StoredView, expected: Option<u64>) -> Result<(), Error> {
        let stream = view.stream.clone();
        let item = to_item(&ViewItem::new(&view)?, "view item")?;
        let bytes = item_size(&item);
        if bytes > MAX_ITEM_BYTES {
            return Err(Error::TooLarge {
                what: format!("view {} of {stream}", view.projection),
                bytes,
                limit: MAX_ITEM_BYTES,
            });
        }
        let request = self
            .client
            .put_item()
            .table_name(&*self.table)
            .set_item(Some(item))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(version) => request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(version.to_string())),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    let actual = failed
                        .item()
                        .and_then(|old| old.get("version"))
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok());
                    Err(Error::Conflict {
                        stream,
                        expected: expected.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
                        actual,
                    })
                }
                _ => Err(backend(error)),
            },
        }
    }

    async fn lookup_views(
        &self,
        tenant: &str,
        projection: &str,
        partition: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredView>, Error> {
        validate_key_part("tenant", tenant, strata_core::MAX_TENANT_LEN)?;
        validate_key_part("projection", projection, MAX_CATEGORY_LEN)?;
        validate_key_part("lookup partition", partition, strata_core::MAX_ID_LEN)?;
        if limit == 0 {
            return Err(Error::InvalidRequest("page limit must be at least 1".into()));
        }
        let page = i32::try_from(limit).unwrap_or(i32::MAX);
        let query = self
            .client
            .query()
            .table_name(&*self.table)
            .index_name(LOOKUP_INDEX)
            .limit(page)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .expression_attribute_values(":p", AttributeValue::S(lookup_pk(tenant, projection, partition)));
        let query = match after {
            Some(after) => query
                .key_condition_expression("lookup_pk = :p AND lookup_sk > :after")
                .expression_attribute_values(":after", AttributeValue::S(after.to_owned())),
            None => query.key_condition_expression("lookup_pk = :p"),
        };
        // Follow pages only until `limit` views are in hand.
        let mut views = Vec::new();
        let mut start = None;
        loop {
            let out = query.clone().set_exclusive_start_key(start).send().await.map_err(backend)?;
            for item in out.items.unwrap_or_default() {
                views.push(from_item::<ViewItem>(item, "view item")?.into_view()?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() && views.len() < limit => start = Some(key),
                _ => break,
            }
        }
        views.truncate(limit);
        Ok(views)
    }
}
