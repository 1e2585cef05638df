//! The commit item: the events of one command, in the compact format (v3) every writer now produces,
//! and the one decoder that reads it, v2 and the legacy format alike.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use strata_core::{Commit, Error, EventEnvelope, EventId, Metadata, NewEvent, StreamId};

use super::legacy::LegacyCommitItem;
use super::{Item, kind};
use crate::keys::{parse_stream_pk, stream_pk, version_sk};

/// Attribute names of commit items, for code that reads raw items (projections, failed-condition
/// items, stream records) without decoding them. None is a DynamoDB reserved word (no single letter
/// is), so expressions may name them without aliases.
pub mod names {
    /// A v3 commit's metadata and events, as one JSON text (`S`): `{"m": metadata, "e": [events]}`
    /// with the short names of v2 inside, each payload embedded as the JSON it was written as.
    pub const DATA: &str = "d";
    /// Last version of a v3 or v2 commit (a number): what the head Query reads.
    pub const LAST_VERSION: &str = "v";
    /// When a v3 or v2 commit was sent (milliseconds since the epoch, the writer's clock).
    pub const WRITTEN_AT: &str = "w";
    /// A v2 commit's shared metadata (a map), and an event's own metadata when it differs (the same
    /// members inside a v3 commit's [`DATA`]).
    pub const METADATA: &str = "m";
    /// `committed_at` inside v2 metadata: nanoseconds since the epoch (a number).
    pub const COMMITTED_AT: &str = "n";
    /// A v2 commit's events (a list of maps; a list inside a v3 commit's [`DATA`]).
    pub const EVENTS: &str = "e";
    /// An event's id inside a v2 event map.
    pub const EVENT_ID: &str = "i";

    /// The names of the legacy format, which items written before v2 still carry.
    pub mod legacy {
        /// Last version (a number).
        pub const LAST_VERSION: &str = "last_version";
        /// When the commit was sent (milliseconds), absent on the oldest items.
        pub const WRITTEN_AT: &str = "written_at";
        /// Shared metadata (a map).
        pub const METADATA: &str = "metadata";
        /// `committed_at` inside legacy metadata: RFC 3339 text.
        pub const COMMITTED_AT: &str = "committed_at";
        /// The events (a list of maps).
        pub const EVENTS: &str = "events";
        /// An event's id inside a legacy event map.
        pub const EVENT_ID: &str = "event_id";
    }
}

/// One command's events: versions `first_version()..=last_version` of a stream.
///
/// Nothing is stored twice: the stream is the `pk` and the first version the `sk`, so neither has an
/// attribute of its own, and every other name is one letter (names count against the item size like
/// values do). [`CommitItem::to_item`] writes the v3 item: the metadata and events as one JSON text
/// (`d`) beside `pk`, `sk`, `kind`, `v` and `w`. Its `Serialize` (`item::to_item`, `serde_dynamo`)
/// gives the v2 item, whose metadata and events are native maps and lists, and its `Deserialize`
/// reads only that one: read items with [`CommitItem::from_item`], which takes every format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitItem {
    /// `{tenant}#S#{category}-{id}`: the stream ([`CommitItem::stream`]).
    pub pk: String,
    /// `{first_version:020}`: the first version ([`CommitItem::first_version`]).
    pub sk: String,
    /// Always [`kind::COMMIT`]: the stream filter and the publisher select commits by it, so it
    /// keeps its name and value across formats (old and new writers coexist during a deploy).
    pub kind: String,
    /// Version of the last event (`v`).
    #[serde(rename = "v")]
    pub last_version: u64,
    /// When this item was sent to DynamoDB (`w`, milliseconds since the epoch, the writer's clock):
    /// what a retried `Any` append's look-back stops on, since everything above an earlier attempt of
    /// it was written after it, however old its request. Always written; `None` only for legacy items
    /// from before it existed.
    #[serde(rename = "w", default, skip_serializing_if = "Option::is_none")]
    pub written_at: Option<i64>,
    /// Metadata shared by the commit's events (`m`; an event that differs carries its own).
    #[serde(rename = "m", with = "short_metadata")]
    pub metadata: Metadata,
    /// The events, in version order (`e`).
    #[serde(rename = "e")]
    pub events: Vec<StoredEvent>,
}

/// An event inside a commit item (v2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The event's ULID (`i`).
    #[serde(rename = "i")]
    pub event_id: EventId,
    /// The event type (`t`).
    #[serde(rename = "t")]
    pub event_type: String,
    /// The payload's schema version (`s`).
    #[serde(rename = "s")]
    pub schema_version: u32,
    /// The payload as JSON text (`p`): the only form that gives back exactly what was written.
    #[serde(rename = "p")]
    pub payload: String,
    /// Present only when it differs from the commit's metadata (`m`).
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none", with = "short_metadata::option")]
    pub metadata: Option<Metadata>,
}

/// A commit item that cannot be read: a key that names no stream or version, an item of neither
/// format, attributes of the wrong type. It is the source of a non-retryable [`Error::Backend`]: no
/// retry mends a corrupt item, an operator must.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the commit item {pk:?} / {sk:?} is malformed: {reason}")]
pub struct MalformedCommitItem {
    /// Its partition key (empty when it has none).
    pub pk: String,
    /// Its sort key (empty when it has none).
    pub sk: String,
    /// What is wrong.
    pub reason: String,
}

impl MalformedCommitItem {
    pub(crate) fn error(pk: &str, sk: &str, reason: impl Into<String>) -> Error {
        Error::backend(Self { pk: pk.to_owned(), sk: sk.to_owned(), reason: reason.into() }, false)
    }
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
                // Refused here, with its reason, rather than as a serializer error later.
                short_metadata::nanos(&event.metadata).map_err(Error::InvalidRequest)?;
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
            last_version,
            metadata: shared,
            events,
            written_at: Some(chrono::Utc::now().timestamp_millis()),
        })
    }

    /// The v3 item: `pk`, `sk`, `kind`, `v`, `w` and the metadata and events as one JSON text
    /// (`d`). Six attributes whatever the commit holds: fewer values for DynamoDB, the SDK and this
    /// decoder to walk per item than native maps and lists (a one-event v2 item has fourteen).
    pub fn to_item(&self) -> Result<Item, Error> {
        let events = self
            .events
            .iter()
            .map(|event| {
                Ok(DataEventOut {
                    i: &event.event_id,
                    t: &event.event_type,
                    s: event.schema_version,
                    p: serde_json::from_str(&event.payload)
                        .map_err(|source| Error::Serialize { what: "event payload", source })?,
                    m: event.metadata.as_ref().map(short_metadata::Short),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let data = serde_json::to_string(&DataOut { m: short_metadata::Short(&self.metadata), e: events })
            .map_err(|source| Error::Serialize { what: "commit data", source })?;
        let mut item = Item::from([
            ("pk".to_owned(), AttributeValue::S(self.pk.clone())),
            ("sk".to_owned(), AttributeValue::S(self.sk.clone())),
            (kind::ATTRIBUTE.to_owned(), AttributeValue::S(self.kind.clone())),
            (names::LAST_VERSION.to_owned(), AttributeValue::N(self.last_version.to_string())),
            (names::DATA.to_owned(), AttributeValue::S(data)),
        ]);
        if let Some(at) = self.written_at {
            item.insert(names::WRITTEN_AT.to_owned(), AttributeValue::N(at.to_string()));
        }
        Ok(item)
    }

    /// Reads a commit item of any format: v3 (it has `d`) and v2 (it has `e`) as they are, the
    /// legacy format (it has `events`) upcast to the same [`CommitItem`]. Takes the SDK's items and
    /// `serde_dynamo`'s (what stream records carry) alike.
    pub fn from_item(item: impl Into<serde_dynamo::Item>) -> Result<Self, Error> {
        let item: serde_dynamo::Item = item.into();
        let text = |name: &str| match item.get(name) {
            Some(serde_dynamo::AttributeValue::S(s)) => s.clone(),
            _ => String::new(),
        };
        let (pk, sk) = (text("pk"), text("sk"));
        if item.contains_key(names::DATA) {
            let malformed = |reason: String| MalformedCommitItem::error(&pk, &sk, reason);
            let head: V3Head = serde_dynamo::from_item(item).map_err(|e| malformed(e.to_string()))?;
            let data: DataIn = serde_json::from_str(&head.d)
                .map_err(|e| malformed(format!("`d` is not commit data: {e}")))?;
            Ok(Self {
                pk: head.pk,
                sk: head.sk,
                kind: head.kind,
                last_version: head.v,
                written_at: head.w,
                metadata: data.m,
                events: data
                    .e
                    .into_iter()
                    .map(|event| StoredEvent {
                        event_id: event.i,
                        event_type: event.t,
                        schema_version: event.s,
                        payload: Box::<str>::from(event.p).into_string(),
                        metadata: event.m,
                    })
                    .collect(),
            })
        } else if item.contains_key(names::EVENTS) {
            serde_dynamo::from_item(item).map_err(|e| MalformedCommitItem::error(&pk, &sk, e.to_string()))
        } else if item.contains_key(names::legacy::EVENTS) {
            serde_dynamo::from_item::<_, LegacyCommitItem>(item)
                .map_err(|e| MalformedCommitItem::error(&pk, &sk, e.to_string()))?
                .upcast()
        } else {
            Err(MalformedCommitItem::error(&pk, &sk, "neither `d` (v3), `e` (v2) nor `events` (legacy)"))
        }
    }

    /// The stream this commit belongs to, from its `pk`.
    pub fn stream(&self) -> Result<StreamId, Error> {
        parse_stream_pk(&self.pk)
            .ok_or_else(|| MalformedCommitItem::error(&self.pk, &self.sk, "the pk names no stream"))
    }

    /// Version of the first event, from its `sk`.
    pub fn first_version(&self) -> Result<u64, Error> {
        version_of_sk(&self.sk)
            .ok_or_else(|| MalformedCommitItem::error(&self.pk, &self.sk, "the sk names no version"))
    }

    /// The commit's events as envelopes, checking that they fill `first_version..=last_version`.
    pub fn into_commit(self, stream: &StreamId) -> Result<Commit, Error> {
        let first_version = self.first_version()?;
        let count = self.events.len() as u64;
        if count == 0 || first_version.checked_add(count - 1) != Some(self.last_version) {
            return Err(Error::StreamCorrupted {
                stream: stream.clone(),
                expected: first_version.saturating_add(count.saturating_sub(1)),
                found: self.last_version,
            });
        }
        let mut events = Vec::with_capacity(self.events.len());
        for (event, version) in self.events.into_iter().zip(first_version..=self.last_version) {
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
        Ok(Commit { stream: stream.clone(), first_version, last_version: self.last_version, events })
    }
}

/// The version a commit's sort key names: exactly twenty digits (a snapshot's `#SNAP` does not parse).
fn version_of_sk(sk: &str) -> Option<u64> {
    (sk.len() == 20 && sk.bytes().all(|b| b.is_ascii_digit())).then(|| sk.parse().ok()).flatten()
}

/// A raw commit item's last version (`v`, or `last_version` on a legacy item), without decoding it.
pub(crate) fn last_version_of(item: &Item) -> Result<u64, Error> {
    [names::LAST_VERSION, names::legacy::LAST_VERSION]
        .iter()
        .find_map(|name| item.get(*name)?.as_n().ok()?.parse().ok())
        .ok_or_else(|| Error::backend("commit item without a numeric v or last_version", false))
}

/// A raw commit item's first version, from its sort key (the same in both formats).
pub(crate) fn first_version_of(item: &Item) -> Result<u64, Error> {
    item.get("sk")
        .and_then(|v| v.as_s().ok())
        .and_then(|sk| version_of_sk(sk))
        .ok_or_else(|| Error::backend("commit item without a version sort key", false))
}

/// The id of a raw commit item's first event (the first `i` in `d`, `e[0].i` on a v2 item or
/// `events[0].event_id` on a legacy item), whole or projected to it.
pub(crate) fn first_event_id_of(item: &Item) -> Option<String> {
    if let Some(data) = item.get(names::DATA) {
        #[derive(Deserialize)]
        struct Ids {
            e: Vec<Id>,
        }
        #[derive(Deserialize)]
        struct Id {
            i: String,
        }
        let ids: Ids = serde_json::from_str(data.as_s().ok()?).ok()?;
        return ids.e.into_iter().next().map(|id| id.i);
    }
    [(names::EVENTS, names::EVENT_ID), (names::legacy::EVENTS, names::legacy::EVENT_ID)].iter().find_map(
        |(events, id)| {
            Some(item.get(*events)?.as_l().ok()?.first()?.as_m().ok()?.get(*id)?.as_s().ok()?.clone())
        },
    )
}

/// A raw v3 commit item's commit time (`n` in the metadata inside `d`), in nanoseconds.
pub(crate) fn committed_nanos_of(item: &Item) -> Option<i64> {
    #[derive(Deserialize)]
    struct Data {
        m: Time,
    }
    #[derive(Deserialize)]
    struct Time {
        n: i64,
    }
    let data: Data = serde_json::from_str(item.get(names::DATA)?.as_s().ok()?).ok()?;
    Some(data.m.n)
}

/// What DynamoDB returns for a failed condition on a commit whose first event has this id, in each
/// format (v3, v2, legacy): the attribute that holds the id, as a test needs it.
#[cfg(test)]
pub(crate) fn commits_with_first_event(id: &str) -> [(&'static str, Item); 3] {
    let event = |name: &str| AttributeValue::M(Item::from([(name.to_owned(), AttributeValue::S(id.into()))]));
    let data = format!(r#"{{"m":{{"c":"c","n":1}},"e":[{{"i":"{id}","t":"T","s":1,"p":{{}}}}]}}"#);
    [
        ("v3", Item::from([(names::DATA.to_owned(), AttributeValue::S(data))])),
        ("v2", Item::from([(names::EVENTS.to_owned(), AttributeValue::L(vec![event(names::EVENT_ID)]))])),
        (
            "legacy",
            Item::from([(
                names::legacy::EVENTS.to_owned(),
                AttributeValue::L(vec![event(names::legacy::EVENT_ID)]),
            )]),
        ),
    ]
}

/// A v3 item's attributes.
#[derive(Deserialize)]
struct V3Head {
    pk: String,
    sk: String,
    kind: String,
    v: u64,
    #[serde(default)]
    w: Option<i64>,
    d: String,
}

/// A v3 item's `d`, written.
#[derive(Serialize)]
struct DataOut<'a> {
    m: short_metadata::Short<'a>,
    e: Vec<DataEventOut<'a>>,
}

#[derive(Serialize)]
struct DataEventOut<'a> {
    i: &'a EventId,
    t: &'a str,
    s: u32,
    /// The payload's JSON text as it is, not re-encoded.
    p: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    m: Option<short_metadata::Short<'a>>,
}

/// A v3 item's `d`, read.
#[derive(Deserialize)]
struct DataIn {
    #[serde(with = "short_metadata")]
    m: Metadata,
    e: Vec<DataEventIn>,
}

#[derive(Deserialize)]
struct DataEventIn {
    i: EventId,
    t: String,
    s: u32,
    p: Box<RawValue>,
    #[serde(default, with = "short_metadata::option")]
    m: Option<Metadata>,
}

/// `Metadata` in short form: `c` correlation id, `u` causation id, `a` actor, `i` idempotency key,
/// `t` trace id, `n` committed_at in nanoseconds since the epoch, `x` user map; the optional ones only
/// when set. Nanoseconds as a number are both shorter than RFC 3339 text and exact: the repository
/// compares the commits it wrote with the commits it loads, to the nanosecond.
mod short_metadata {
    use super::*;
    use serde::{Deserializer, Serializer, ser::Error as _};

    #[derive(Serialize)]
    struct Out<'a> {
        c: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        u: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        a: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        i: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        t: Option<&'a str>,
        n: i64,
        #[serde(skip_serializing_if = "is_empty")]
        x: &'a BTreeMap<String, String>,
    }

    #[derive(Deserialize)]
    struct In {
        c: String,
        #[serde(default)]
        u: Option<String>,
        #[serde(default)]
        a: Option<String>,
        #[serde(default)]
        i: Option<String>,
        #[serde(default)]
        t: Option<String>,
        n: i64,
        #[serde(default)]
        x: BTreeMap<String, String>,
    }

    fn is_empty(map: &&BTreeMap<String, String>) -> bool {
        map.is_empty()
    }

    /// `committed_at` in nanoseconds, or why it has none: an i64 of nanoseconds spans the years 1677
    /// to 2262.
    pub(super) fn nanos(metadata: &Metadata) -> Result<i64, String> {
        metadata.committed_at.timestamp_nanos_opt().ok_or_else(|| {
            format!(
                "committed_at {} is outside what a commit item stores (nanoseconds since 1970 in an i64: \
                 the years 1677 to 2262)",
                metadata.committed_at
            )
        })
    }

    pub(super) fn serialize<S: Serializer>(metadata: &Metadata, serializer: S) -> Result<S::Ok, S::Error> {
        Out {
            c: &metadata.correlation_id,
            u: metadata.causation_id.as_deref(),
            a: metadata.actor.as_deref(),
            i: metadata.idempotency_key.as_deref(),
            t: metadata.trace_id.as_deref(),
            n: nanos(metadata).map_err(S::Error::custom)?,
            x: &metadata.user,
        }
        .serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Metadata, D::Error> {
        let short = In::deserialize(deserializer)?;
        Ok(Metadata {
            correlation_id: short.c,
            causation_id: short.u,
            actor: short.a,
            idempotency_key: short.i,
            trace_id: short.t,
            // Every i64 is a valid instant: this cannot fail.
            committed_at: chrono::DateTime::from_timestamp_nanos(short.n),
            user: short.x,
        })
    }

    /// Metadata to serialize in short form, by reference.
    pub(super) struct Short<'a>(pub(super) &'a Metadata);

    impl Serialize for Short<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serialize(self.0, serializer)
        }
    }

    /// The same for an event's own metadata, present only when it differs.
    pub(super) mod option {
        use super::*;

        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super")] Metadata);

        pub(in super::super) fn serialize<S: Serializer>(
            metadata: &Option<Metadata>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            metadata.as_ref().map(Short).serialize(serializer)
        }

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Metadata>, D::Error> {
            Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|w| w.0))
        }
    }
}
