//! The items of the table, mapped with `serde_dynamo`, and DynamoDB's item-size arithmetic.
//!
//! Payloads and states are stored as JSON text (an `S` attribute), not as native maps: DynamoDB
//! numbers would turn `1.0` into `1` and nested maps stop at 32 levels, so JSON text is the only form
//! that gives back exactly what was written. Keys, kinds and versions are native attributes; a commit
//! keeps its metadata and events, payloads embedded, in one JSON text (below). Items stay readable in
//! the console, and the table's stream can be decoded without this crate (any JSON parser; read the
//! nanosecond commit time `n`, a 19-digit number, as a 64-bit integer or as text: JavaScript's
//! `JSON.parse` rounds it to about 100 ns).
//!
//! # Commit items (v3)
//!
//! A commit is the item written on every command, and read on every load: it stores nothing twice,
//! names its attributes with one letter (names count against the item size, and so the write and
//! read units, like values do) and keeps its metadata and events, which only the decoder reads, in
//! one JSON text. A commit of one event with a 200-byte payload is 399 bytes in six attribute values
//! (v2: 364 bytes in fourteen; the legacy format: 526; dynamo-es, with the same metadata: 456).
//!
//! | attribute | type | holds |
//! |---|---|---|
//! | `pk` | S | `{tenant}#S#{category}-{id}`: the stream (a tenant holds no `#`, a category no `-`) |
//! | `sk` | S | `{first_version:020}`: the first version |
//! | `kind` | S | `commit`, as in every format: the stream filter and the publisher select on it |
//! | `v` | N | the last version (what the head Query reads) |
//! | `w` | N | when the item was sent, milliseconds since the epoch (the writer's clock) |
//! | `d` | S | JSON `{"m": metadata, "e": [events]}`: the metadata shared by the events (below), and the events in version order, objects of `i` event id (ULID), `t` event type, `s` schema version, `p` the payload (embedded as the JSON it was written as), `m` the event's own metadata, only when it differs from the shared one |
//!
//! Metadata holds `c` correlation id and `n` committed_at (nanoseconds since the epoch, a number:
//! shorter than RFC 3339 text and exact to the nanosecond), then only what is set: `u` causation id,
//! `a` actor, `i` idempotency key, `t` trace id, `x` user map (when not empty). No name is a DynamoDB
//! reserved word, so expressions use them without aliases ([`names`]).
//!
//! One JSON text instead of native maps and lists: a one-event commit is six attribute values instead
//! of fourteen for DynamoDB, the SDK's deserializer (a map allocated per map, a vector per list) and
//! this decoder to walk, on every item of every load.
//!
//! Items of older formats are read as they are, with no migration: v2 (`v`, `w`, `m` metadata map
//! and `e` list of event maps, under the names above) and the legacy format (`tenant`, `category`,
//! `stream_id`, `first_version`, `last_version`, `metadata` with `committed_at` as text, `events` of
//! `event_id`, `event_type`, `schema_version`, `payload`, `metadata`, and `written_at`):
//! [`CommitItem::from_item`] tells the formats apart by `d`, `e` or `events` and gives the same
//! commit. Writers write v3 unless set to an older format for an upgrade
//! ([`crate::CommitFormat`]).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use strata_core::{Error, IdempotencyRecord, Snapshot, StreamId};

use crate::keys::{IDEMPOTENCY_SK, idempotency_pk, snapshot_sk, stream_pk};

mod commit;
mod legacy;

#[cfg(test)]
pub(crate) use commit::commits_with_first_event;
pub use commit::{CommitItem, MalformedCommitItem, StoredEvent, names};
pub(crate) use commit::{committed_nanos_of, first_event_id_of, first_version_of, last_version_of};
pub use legacy::{LegacyCommitItem, LegacyStoredEvent};

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
    /// A record of a subject's export or erasure (the audit trail, in the subject's audit partition).
    pub const SUBJECT_ACCESS: &str = "subject_access";
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
    use std::collections::{BTreeMap, BTreeSet};

    use strata_core::{EventEnvelope, Metadata, NewEvent};

    use super::*;
    use serde_json::json;

    fn stream() -> StreamId {
        StreamId::new("acme", "order", "o-1").unwrap()
    }

    /// Metadata with every member set, and a committed_at whose every nanosecond digit counts.
    fn full_metadata() -> Metadata {
        let mut meta = Metadata::new("corr");
        meta.causation_id = Some("cause".into());
        meta.actor = Some("alice".into());
        meta.idempotency_key = Some("key-1".into());
        meta.trace_id = Some("Root=1-5759e988-bd862e3fe1be46a994272793".into());
        meta.committed_at = DateTime::from_timestamp_nanos(1_767_225_600_123_456_789);
        meta.user = BTreeMap::from([("tenant_plan".into(), "gold".into()), ("empty".into(), String::new())]);
        meta
    }

    fn events() -> Vec<NewEvent> {
        let meta = full_metadata();
        let mut other = Metadata::new("corr-2");
        other.committed_at = DateTime::from_timestamp_nanos(-1);
        vec![
            NewEvent::new(
                "Placed",
                1,
                json!({"price": 1.0, "n": 18446744073709551615u64, "s": ""}),
                meta.clone(),
            ),
            NewEvent::new("Added", 2, json!({"deep": [[[{"x": null}]]]}), other),
            NewEvent::new("Noted", 1, json!("text"), meta),
        ]
    }

    fn keys(map: &HashMap<String, AttributeValue>) -> BTreeSet<&str> {
        map.keys().map(String::as_str).collect()
    }

    /// The source of a backend error, as the typed error it must be.
    fn malformed(result: Result<impl std::fmt::Debug, Error>) -> MalformedCommitItem {
        match result {
            Err(Error::Backend { source, retryable: false }) => {
                source.downcast_ref::<MalformedCommitItem>().cloned().expect("a MalformedCommitItem")
            }
            other => panic!("expected a malformed commit item, got {other:?}"),
        }
    }

    #[test]
    fn a_v2_commit_round_trips_with_exact_payload_bytes_and_metadata() {
        let events = events();
        let item = CommitItem::new(&stream(), 5, &events).unwrap();
        assert_eq!(item.last_version, 7);
        assert!(item.events[0].metadata.is_none(), "shared metadata is stored once");
        assert!(item.events[1].metadata.is_some() && item.events[2].metadata.is_none());
        let raw = to_item(&item, "commit").unwrap();

        // Short names only, and nothing the keys already hold.
        assert_eq!(keys(&raw), BTreeSet::from(["pk", "sk", "kind", names::LAST_VERSION, "w", "m", "e"]));
        assert_eq!(kind_of(&raw), Some(kind::COMMIT));
        let meta = raw["m"].as_m().unwrap();
        assert_eq!(keys(meta), BTreeSet::from(["c", "u", "a", "i", "t", names::COMMITTED_AT, "x"]));
        assert_eq!(meta[names::COMMITTED_AT].as_n().unwrap(), "1767225600123456789");
        let stored = raw[names::EVENTS].as_l().unwrap();
        assert_eq!(keys(stored[0].as_m().unwrap()), BTreeSet::from([names::EVENT_ID, "t", "s", "p"]));
        let own = stored[1].as_m().unwrap()["m"].as_m().unwrap();
        assert_eq!(keys(own), BTreeSet::from(["c", names::COMMITTED_AT]), "unset members are left out");
        assert_eq!(first_event_id_of(&raw), Some(item.events[0].event_id.to_string()));
        assert_eq!((first_version_of(&raw).unwrap(), last_version_of(&raw).unwrap()), (5, 7));

        let back = CommitItem::from_item(raw).unwrap();
        assert_eq!(back, item);
        assert_eq!(back.stream().unwrap(), stream());
        let commit = back.into_commit(&stream()).unwrap();
        assert_eq!((commit.first_version, commit.last_version), (5, 7));
        assert_is_the_fixture_at_5(&commit, events);
        assert_eq!(commit.events[0].metadata, full_metadata());
    }

    /// `commit` is exactly what the repository's own commit of `events()` at version 5 says, to the
    /// nanosecond and the payload byte.
    fn assert_is_the_fixture_at_5(commit: &strata_core::Commit, events: Vec<NewEvent>) {
        let expected: Vec<EventEnvelope> = events
            .into_iter()
            .zip(5..)
            .map(|(event, version)| EventEnvelope::committed(stream(), version, event))
            .collect();
        assert_eq!(commit.events, expected);
        assert_eq!(commit.events[0].payload.to_string(), r#"{"n":18446744073709551615,"price":1.0,"s":""}"#);
        assert_eq!(commit.events[1].metadata.committed_at.timestamp_nanos_opt(), Some(-1));
    }

    #[test]
    fn a_v3_commit_round_trips_with_exact_payload_bytes_and_metadata() {
        let events = events();
        let item = CommitItem::new(&stream(), 5, &events).unwrap();
        let raw = item.to_item().unwrap();

        // Six attributes: keys, kind, versions, send time, and the rest as one JSON text.
        assert_eq!(keys(&raw), BTreeSet::from(["pk", "sk", "kind", names::LAST_VERSION, "w", names::DATA]));
        assert_eq!(kind_of(&raw), Some(kind::COMMIT));
        let data: serde_json::Value = serde_json::from_str(raw[names::DATA].as_s().unwrap()).unwrap();
        let meta = data["m"].as_object().unwrap();
        assert_eq!(
            meta.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            BTreeSet::from(["c", "u", "a", "i", "t", "n", "x"])
        );
        assert_eq!(meta["n"], json!(1_767_225_600_123_456_789_i64));
        let stored = data["e"].as_array().unwrap();
        assert_eq!(stored.len(), 3);
        assert_eq!(
            stored[0].as_object().unwrap().keys().map(String::as_str).collect::<BTreeSet<_>>(),
            BTreeSet::from(["i", "t", "s", "p"])
        );
        assert_eq!(stored[1]["m"].as_object().unwrap().len(), 2, "unset members are left out");
        // Payloads are embedded as written, not re-encoded as strings.
        assert!(
            raw[names::DATA].as_s().unwrap().contains(r#""p":{"n":18446744073709551615,"price":1.0,"s":""}"#)
        );
        assert_eq!(first_event_id_of(&raw), Some(item.events[0].event_id.to_string()));
        assert_eq!(committed_nanos_of(&raw), Some(1_767_225_600_123_456_789));
        assert_eq!((first_version_of(&raw).unwrap(), last_version_of(&raw).unwrap()), (5, 7));

        let back = CommitItem::from_item(raw).unwrap();
        assert_eq!(back, item);
        // The same commit as the v2 item of the same events.
        let v2 = CommitItem::from_item(to_item(&item, "commit").unwrap()).unwrap();
        assert_eq!(back.clone().into_commit(&stream()).unwrap(), v2.into_commit(&stream()).unwrap());
        assert_is_the_fixture_at_5(&back.into_commit(&stream()).unwrap(), events);
    }

    #[test]
    fn text_that_json_must_escape_round_trips_exactly_in_every_format() {
        let tricky = "quote \" backslash \\ slash / tab \t nul \u{0} bell \u{7} line \u{2028} é 漢 🦀";
        let mut metadata = full_metadata();
        metadata.actor = Some(tricky.into());
        metadata.user.insert(tricky.into(), tricky.into());
        let events = vec![
            NewEvent::new(
                tricky,
                1,
                serde_json::Value::Object(serde_json::Map::from_iter([(
                    tricky.to_owned(),
                    json!([tricky, 1e-7, -0.5, 12345678901234567890u64]),
                )])),
                metadata,
            ),
            NewEvent::new("Plain", 2, json!(tricky), Metadata::new(tricky)),
        ];
        let item = CommitItem::new(&stream(), 1, &events).unwrap();
        let expected: Vec<EventEnvelope> =
            events.into_iter().zip(1..).map(|(e, v)| EventEnvelope::committed(stream(), v, e)).collect();
        for raw in [item.to_item().unwrap(), to_item(&item, "commit").unwrap()] {
            let read = CommitItem::from_item(raw).unwrap();
            assert_eq!(read, item);
            let commit = read.into_commit(&stream()).unwrap();
            assert_eq!(commit.events, expected);
            assert_eq!(commit.events[0].payload.to_string(), expected[0].payload.to_string());
        }
    }

    #[test]
    fn a_v3_item_whose_data_is_not_commit_data_is_a_typed_error() {
        let item = CommitItem::new(&stream(), 1, &events()).unwrap();
        for (broken, first_id) in [
            (AttributeValue::S("not json".into()), None),
            (AttributeValue::S(r#"{"m":{"c":"x","n":1}}"#.into()), None),
            (
                AttributeValue::S(
                    r#"{"m":{"c":"x","n":1},"e":[{"i":"not a ulid","t":"T","s":1,"p":1}]}"#.into(),
                ),
                Some("not a ulid".to_owned()),
            ),
            (AttributeValue::N("1".into()), None),
        ] {
            let mut raw = item.to_item().unwrap();
            raw.insert(names::DATA.into(), broken.clone());
            let error = malformed(CommitItem::from_item(raw.clone()));
            assert_eq!(
                (error.pk.as_str(), error.sk.as_str()),
                (item.pk.as_str(), item.sk.as_str()),
                "{broken:?}"
            );
            // The raw reader only compares ids: a malformed one matches no request.
            assert_eq!(first_event_id_of(&raw), first_id, "{broken:?}");
        }
    }

    #[test]
    fn a_legacy_commit_item_still_reads_as_the_same_commit() {
        let events = events();
        let legacy = LegacyCommitItem::new(&stream(), 5, &events).unwrap();
        let raw = to_item(&legacy, "commit").unwrap();
        assert!(raw.contains_key("events") && raw.contains_key("tenant") && !raw.contains_key("e"));
        // The raw readers know both formats.
        assert_eq!(first_event_id_of(&raw), Some(events[0].event_id.to_string()));
        assert_eq!((first_version_of(&raw).unwrap(), last_version_of(&raw).unwrap()), (5, 7));

        let read = CommitItem::from_item(raw).unwrap();
        assert_eq!(read.stream().unwrap(), stream());
        let mut v2 = CommitItem::new(&stream(), 5, &events).unwrap();
        v2.written_at = legacy.written_at;
        assert_eq!(read, v2, "upcast to exactly what a v2 writer stores");
        let from_legacy = read.into_commit(&stream()).unwrap();
        let from_v2 = CommitItem::from_item(to_item(&v2, "commit").unwrap()).unwrap().into_commit(&stream());
        assert_eq!(from_legacy, from_v2.unwrap());

        // The oldest items have no written_at; they read all the same.
        let mut oldest = legacy.clone();
        oldest.written_at = None;
        let read = CommitItem::from_item(to_item(&oldest, "commit").unwrap()).unwrap();
        assert_eq!(read.written_at, None);
        assert_eq!(read.into_commit(&stream()).unwrap(), from_legacy);
    }

    #[test]
    fn a_commit_item_that_names_no_stream_or_version_is_a_typed_error_not_a_panic() {
        let mut item = CommitItem::new(&stream(), 1, &events()).unwrap();
        for pk in ["acme", "acme#S#nodash", "acme#K#cust-1", "#S#order-o-1", "acme#S#order-", ""] {
            item.pk = pk.into();
            let read = CommitItem::from_item(to_item(&item, "commit").unwrap()).unwrap();
            assert_eq!(malformed(read.stream()).pk, pk);
        }
        item.sk = "00000000000000000001#SNAP".into();
        assert_eq!(malformed(item.clone().into_commit(&stream())).sk, item.sk);

        let mut neither = to_item(&item, "commit").unwrap();
        neither.remove(names::EVENTS);
        assert!(malformed(CommitItem::from_item(neither)).reason.contains("neither"));
        let mut neither = item.to_item().unwrap();
        neither.remove(names::DATA);
        assert!(malformed(CommitItem::from_item(neither)).reason.contains("neither"));
        let mut wrong_type = to_item(&item, "commit").unwrap();
        wrong_type.insert(names::LAST_VERSION.into(), AttributeValue::S("seven".into()));
        malformed(CommitItem::from_item(wrong_type));

        // A legacy item whose copies of the keys disagree with the keys would read differently now.
        let mut legacy = LegacyCommitItem::new(&stream(), 5, &events()).unwrap();
        legacy.first_version = 4;
        malformed(CommitItem::from_item(to_item(&legacy, "commit").unwrap()));
    }

    #[test]
    fn a_committed_at_beyond_nanoseconds_in_an_i64_is_refused_not_a_panic() {
        let mut events = events();
        events[2].metadata.committed_at = DateTime::<Utc>::MAX_UTC;
        assert!(matches!(CommitItem::new(&stream(), 1, &events), Err(Error::InvalidRequest(_))));
        let mut item = CommitItem::new(&stream(), 1, &events[..1]).unwrap();
        item.metadata.committed_at = DateTime::<Utc>::MIN_UTC;
        assert!(to_item(&item, "commit").is_err());
        assert!(item.to_item().is_err());
    }

    #[test]
    fn a_commit_whose_versions_do_not_match_its_events_is_corrupt() {
        let events = vec![NewEvent::new("Placed", 1, json!({}), Metadata::new("c"))];
        let mut item = CommitItem::new(&stream(), 1, &events).unwrap();
        item.last_version = 3;
        assert!(matches!(item.into_commit(&stream()), Err(Error::StreamCorrupted { .. })));
    }

    /// One event with a 200-byte payload, a ULID correlation id and committed_at: the item the peer
    /// library (dynamo-es) stores in 402 bytes without metadata, 456 with the same metadata
    /// (docs/benchmarks.md).
    #[test]
    fn a_small_commit_fits_in_fewer_bytes_than_the_peer_library_and_far_fewer_than_before() {
        let stream = StreamId::new("acme", "counter", "c-1").unwrap();
        let payload = json!({ "note": "x".repeat(189) });
        assert_eq!(payload.to_string().len(), 200);
        let mut meta = Metadata::new(strata_core::EventId::new().to_string());
        meta.committed_at = DateTime::from_timestamp_nanos(1_767_225_600_123_456_789);
        let events = vec![NewEvent::new("Incremented", 1, payload, meta)];
        // A fixed send time: the clock's trailing zeroes would change the size of the number.
        let written_at = Some(1_767_225_600_123);

        let mut item = CommitItem::new(&stream, 1, &events).unwrap();
        item.written_at = written_at;
        let mut legacy = LegacyCommitItem::new(&stream, 1, &events).unwrap();
        legacy.written_at = written_at;
        let (v3, v2, legacy) = (
            item_size(&item.to_item().unwrap()),
            item_size(&to_item(&item, "commit").unwrap()),
            item_size(&to_item(&legacy, "c").unwrap()),
        );
        // v2 is 162 bytes (31%) smaller than the legacy format, and 38 bytes under dynamo-es's 402:
        // one write unit either way (1 KB), but reads pay per 4 KB of items, so a load of many such
        // commits reads 11 per read unit instead of 7. v3 spends 35 bytes of JSON punctuation (quoted
        // names, the nanoseconds as 19 digits of text) to hold six attribute values instead of
        // fourteen, and
        // stays under the peer's item: 10 per read unit.
        assert_eq!((v3, v2, legacy), (399, 364, 526));
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
