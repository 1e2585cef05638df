//! The items of the table, mapped with `serde_dynamo`, and DynamoDB's item-size arithmetic.
//!
//! Payloads and states are stored as JSON text (an `S` attribute), not as native maps: DynamoDB
//! numbers would turn `1.0` into `1` and nested maps stop at 32 levels, so JSON text is the only form
//! that gives back exactly what was written. Everything else is native, so items stay readable in the
//! console and the table's stream can be decoded without this crate.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use strata_core::{
    Commit, Error, EventEnvelope, EventId, IdempotencyRecord, Metadata, NewEvent, Snapshot, StreamId,
};

use crate::keys::{IDEMPOTENCY_SK, idempotency_pk, snapshot_sk, stream_pk, version_sk};

/// A raw DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB's maximum item size: 400 KB, names and values included.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The `kind` attribute of each item type, so stream consumers can tell them apart.
pub mod kind {
    /// The attribute that holds an item's kind.
    pub const ATTRIBUTE: &str = "kind";
    /// A commit: the events of one command.
    pub const COMMIT: &str = "commit";
    /// A snapshot of aggregate state.
    pub const SNAPSHOT: &str = "snapshot";
    /// An idempotency record.
    pub const IDEMPOTENCY: &str = "idempotency";
    /// A subject's wrapped data key.
    pub const DATA_KEY: &str = "data_key";
    /// A subject -> stream index entry.
    pub const SUBJECT_STREAM: &str = "subject_stream";
    /// A read-model view and its checkpoint.
    pub const VIEW: &str = "view";
}

/// One command's events: versions `first_version..=last_version` of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitItem {
    /// `{tenant}#S#{category}-{id}`.
    pub pk: String,
    /// `{first_version:020}`.
    pub sk: String,
    /// Always [`kind::COMMIT`].
    pub kind: String,
    /// The stream's tenant.
    pub tenant: String,
    /// The stream's category.
    pub category: String,
    /// The stream's id within its category.
    pub stream_id: String,
    /// Version of the first event.
    pub first_version: u64,
    /// Version of the last event.
    pub last_version: u64,
    /// Metadata shared by the commit's events (an event that differs carries its own).
    pub metadata: Metadata,
    /// The events, in version order.
    pub events: Vec<StoredEvent>,
    /// When this item was sent to DynamoDB (milliseconds since the epoch, the writer's clock): what a
    /// retried `Any` append's look-back stops on, since everything above an earlier attempt of it was
    /// written after it, however old its request. Absent on items written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_at: Option<i64>,
}

/// An event inside a commit item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The event's ULID.
    pub event_id: EventId,
    /// The event type.
    pub event_type: String,
    /// The payload's schema version.
    pub schema_version: u32,
    /// The payload as JSON text.
    pub payload: String,
    /// Present only when it differs from the commit's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// Aggregate state after `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotItem {
    /// The stream's partition key.
    pub pk: String,
    /// `{version:020}#SNAP`.
    pub sk: String,
    /// Always [`kind::SNAPSHOT`].
    pub kind: String,
    /// Partition key of the sparse `snapshots` index: the stream's `pk`, present on snapshots only.
    pub snapshot_of: String,
    /// Sort key of the `snapshots` index: the last version the state includes.
    pub snapshot_version: u64,
    /// The aggregate's state schema version.
    pub state_schema_version: u32,
    /// The state as JSON text.
    pub state: String,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
}

/// A command's remembered outcome under a client's idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyItem {
    /// `{tenant}#I#{key}`.
    pub pk: String,
    /// Always `IDEM`.
    pub sk: String,
    /// Always [`kind::IDEMPOTENCY`].
    pub kind: String,
    /// The tenant.
    pub tenant: String,
    /// The client's key.
    pub key: String,
    /// Hash of the request the key was first used with.
    pub request_hash: String,
    /// The outcome as JSON text.
    pub outcome: String,
    /// Epoch seconds: the table's TTL attribute, and the moment the key may be reused.
    pub expires_at: i64,
}

impl CommitItem {
    /// The item for `events` appended at `first_version`.
    pub fn new(stream: &StreamId, first_version: u64, events: &[NewEvent]) -> Result<Self, Error> {
        let Some(first) = events.first() else {
            return Err(Error::InvalidRequest("a commit needs at least one event".into()));
        };
        let shared = first.metadata.clone();
        let events = events
            .iter()
            .map(|event| {
                Ok(StoredEvent {
                    event_id: event.event_id,
                    event_type: event.event_type.clone(),
                    schema_version: event.schema_version,
                    payload: serde_json::to_string(&event.payload)
                        .map_err(|source| Error::Serialize { what: "event payload", source })?,
                    metadata: (event.metadata != shared).then(|| event.metadata.clone()),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let last_version = first_version
            .checked_add(events.len() as u64 - 1)
            .ok_or_else(|| Error::InvalidRequest(format!("no room for the events of {stream}")))?;
        Ok(Self {
            pk: stream_pk(stream),
            sk: version_sk(first_version),
            kind: kind::COMMIT.into(),
            tenant: stream.tenant().into(),
            category: stream.category().into(),
            stream_id: stream.id().into(),
            first_version,
            last_version,
            metadata: shared,
            events,
            written_at: Some(chrono::Utc::now().timestamp_millis()),
        })
    }

    /// The stream this commit belongs to.
    pub fn stream(&self) -> Result<StreamId, Error> {
        Ok(StreamId::new(&self.tenant, &self.category, &self.stream_id)?)
    }

    /// The commit's events as envelopes, checking that they fill `first_version..=last_version`.
    pub fn into_commit(self, stream: &StreamId) -> Result<Commit, Error> {
        let count = self.events.len() as u64;
        if count == 0 || self.first_version.checked_add(count - 1) != Some(self.last_version) {
            return Err(Error::StreamCorrupted {
                stream: stream.clone(),
                expected: self.first_version.saturating_add(count.saturating_sub(1)),
                found: self.last_version,
            });
        }
        let mut events = Vec::with_capacity(self.events.len());
        for (event, version) in self.events.into_iter().zip(self.first_version..=self.last_version) {
            let payload = serde_json::from_str(&event.payload)
                .map_err(|source| Error::Deserialize { what: "event payload", source })?;
            events.push(EventEnvelope {
                event_id: event.event_id,
                stream: stream.clone(),
                version,
                event_type: event.event_type,
                schema_version: event.schema_version,
                payload,
                metadata: event.metadata.unwrap_or_else(|| self.metadata.clone()),
            });
        }
        Ok(Commit {
            stream: stream.clone(),
            first_version: self.first_version,
            last_version: self.last_version,
            events,
        })
    }
}

impl SnapshotItem {
    /// The item for a snapshot.
    pub fn new(snapshot: &Snapshot) -> Result<Self, Error> {
        let pk = stream_pk(&snapshot.stream);
        Ok(Self {
            snapshot_of: pk.clone(),
            pk,
            sk: snapshot_sk(snapshot.version),
            kind: kind::SNAPSHOT.into(),
            snapshot_version: snapshot.version,
            state_schema_version: snapshot.state_schema_version,
            state: serde_json::to_string(&snapshot.state)
                .map_err(|source| Error::Serialize { what: "snapshot state", source })?,
            taken_at: snapshot.taken_at,
        })
    }

    /// Back to a snapshot of `stream`.
    pub fn into_snapshot(self, stream: &StreamId) -> Result<Snapshot, Error> {
        Ok(Snapshot {
            stream: stream.clone(),
            version: self.snapshot_version,
            state_schema_version: self.state_schema_version,
            state: serde_json::from_str(&self.state)
                .map_err(|source| Error::Deserialize { what: "snapshot state", source })?,
            taken_at: self.taken_at,
        })
    }
}

impl IdempotencyItem {
    /// The item for a record.
    pub fn new(record: &IdempotencyRecord) -> Result<Self, Error> {
        Ok(Self {
            pk: idempotency_pk(&record.tenant, &record.key),
            sk: IDEMPOTENCY_SK.into(),
            kind: kind::IDEMPOTENCY.into(),
            tenant: record.tenant.clone(),
            key: record.key.clone(),
            request_hash: record.request_hash.clone(),
            outcome: serde_json::to_string(&record.outcome)
                .map_err(|source| Error::Serialize { what: "idempotency outcome", source })?,
            // TTL wants whole seconds; round up so a record never expires before its time.
            expires_at: record.expires_at.timestamp()
                + i64::from(record.expires_at.timestamp_subsec_nanos() > 0),
        })
    }

    /// Back to a record.
    pub fn into_record(self) -> Result<IdempotencyRecord, Error> {
        Ok(IdempotencyRecord {
            tenant: self.tenant,
            key: self.key,
            request_hash: self.request_hash,
            outcome: serde_json::from_str(&self.outcome)
                .map_err(|source| Error::Deserialize { what: "idempotency outcome", source })?,
            expires_at: Utc.timestamp_opt(self.expires_at, 0).single().unwrap_or(DateTime::<Utc>::MAX_UTC),
        })
    }
}

/// Serializes a value into an item.
pub fn to_item<T: Serialize>(value: &T, what: &'static str) -> Result<Item, Error> {
    serde_dynamo::to_item(value).map_err(|source| Error::InvalidRequest(format!("{what}: {source}")))
}

/// Deserializes an item, naming what it should have been when it is not.
pub fn from_item<T: for<'de> Deserialize<'de>>(item: Item, what: &'static str) -> Result<T, Error> {
    serde_dynamo::from_item(item)
        .map_err(|source| Error::backend(format!("malformed {what} item: {source}"), false))
}

/// The `state_schema_version` of a snapshot item, read without parsing its state.
pub fn state_schema_of(item: &Item) -> Option<u32> {
    item.get("state_schema_version")?.as_n().ok()?.parse().ok()
}

/// The `kind` attribute of an item, if it has one.
pub fn kind_of(item: &Item) -> Option<&str> {
    item.get(kind::ATTRIBUTE).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// An item's size as DynamoDB counts it against the 400 KB limit and for capacity units.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

/// An attribute value's size as DynamoDB counts it (without the attribute's name).
pub(crate) fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        // About one byte per two significant digits, plus one.
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        // Three bytes of overhead per list or map, one per element.
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => 3 + map.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        // An attribute type this SDK version does not know: count it as the largest possible.
        _ => MAX_ITEM_BYTES,
    }
}

/// Leading and trailing zeroes are trimmed; one byte per two significant digits, plus one.
fn number_size(n: &str) -> usize {
    let mantissa = n.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    digits.trim_matches('0').len().div_ceil(2) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stream() -> StreamId {
        StreamId::new("acme", "order", "o-1").unwrap()
    }

    #[test]
    fn a_commit_round_trips_through_an_item_with_exact_payload_bytes() {
        let mut meta = Metadata::new("corr");
        meta.actor = Some("alice".into());
        let mut other = meta.clone();
        other.causation_id = Some("cause".into());
        let events = vec![
            NewEvent::new(
                "Placed",
                1,
                json!({"price": 1.0, "n": 18446744073709551615u64, "s": ""}),
                meta.clone(),
            ),
            NewEvent::new("Added", 2, json!({"deep": [[[{"x": null}]]]}), other.clone()),
        ];
        let item = CommitItem::new(&stream(), 5, &events).unwrap();
        assert_eq!(item.last_version, 6);
        assert!(item.events[0].metadata.is_none(), "shared metadata is stored once");
        assert_eq!(item.events[1].metadata.as_ref(), Some(&other));
        let raw = to_item(&item, "commit").unwrap();
        assert_eq!(kind_of(&raw), Some("commit"));
        let back: CommitItem = from_item(raw, "commit").unwrap();
        let commit = back.into_commit(&stream()).unwrap();
        assert_eq!(commit.first_version, 5);
        assert_eq!(commit.events[0].payload.to_string(), r#"{"n":18446744073709551615,"price":1.0,"s":""}"#);
        assert_eq!(commit.events[1].version, 6);
        assert_eq!(commit.events[1].metadata, other);
        assert_eq!(commit.events[0].metadata, meta);
    }

    #[test]
    fn a_commit_whose_versions_do_not_match_its_events_is_corrupt() {
        let events = vec![NewEvent::new("Placed", 1, json!({}), Metadata::new("c"))];
        let mut item = CommitItem::new(&stream(), 1, &events).unwrap();
        item.last_version = 3;
        assert!(matches!(item.into_commit(&stream()), Err(Error::StreamCorrupted { .. })));
    }

    #[test]
    fn item_size_counts_names_and_values() {
        let mut item = Item::new();
        item.insert("pk".into(), AttributeValue::S("abc".into()));
        item.insert("n".into(), AttributeValue::N("12345".into()));
        item.insert("l".into(), AttributeValue::L(vec![AttributeValue::S("xy".into())]));
        // pk: 2+3, n: 1+(3+1), l: 1+3+1+2
        assert_eq!(item_size(&item), 5 + 5 + 7);
    }

    #[test]
    fn numbers_count_significant_digits_only() {
        for (n, size) in
            [("0", 1), ("100", 2), ("-0.0012", 2), ("1234567", 5), ("1.5E+10", 2), ("10000000000", 2)]
        {
            assert_eq!(value_size(&AttributeValue::N(n.into())), size, "{n}");
        }
    }

    #[test]
    fn idempotency_expiry_rounds_up_to_whole_seconds() {
        let at = Utc.timestamp_opt(100, 5).unwrap();
        let record = IdempotencyRecord {
            tenant: "acme".into(),
            key: "k".into(),
            request_hash: "h".into(),
            outcome: json!({"version": 1}),
            expires_at: at,
        };
        let item = IdempotencyItem::new(&record).unwrap();
        assert_eq!(item.expires_at, 101);
        assert_eq!(item.pk, "acme#I#k");
        assert_eq!(item.into_record().unwrap().outcome, json!({"version": 1}));
    }
}
