//! The commit item format written before v2, kept for reading: tables hold such items for good (no
//! migration rewrites them), and during a rolling deploy older writers still produce them.

use serde::{Deserialize, Serialize};
use strata_core::{Error, EventId, Metadata, NewEvent, StreamId};

use super::commit::{CommitItem, MalformedCommitItem, StoredEvent};
use crate::keys::{stream_pk, version_sk};

/// A commit item of the legacy format: long names, the stream and first version stored beside the
/// keys that already hold them, `committed_at` as RFC 3339 text. Read with [`CommitItem::from_item`],
/// which upcasts it; the store writes it only when set to [`crate::CommitFormat::Legacy`] (the first
/// deploy of an upgrade).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyCommitItem {
    /// `{tenant}#S#{category}-{id}`.
    pub pk: String,
    /// `{first_version:020}`.
    pub sk: String,
    /// Always [`kind::COMMIT`](super::kind::COMMIT).
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
    pub events: Vec<LegacyStoredEvent>,
    /// When this item was sent (milliseconds since the epoch); absent on the oldest items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_at: Option<i64>,
}

/// An event inside a legacy commit item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyStoredEvent {
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

impl LegacyCommitItem {
    /// The item an older writer made for `events` appended at `first_version`: for tests and tools
    /// that need such items, and for a store set to [`crate::CommitFormat::Legacy`].
    pub fn new(stream: &StreamId, first_version: u64, events: &[NewEvent]) -> Result<Self, Error> {
        let v2 = CommitItem::new(stream, first_version, events)?;
        Ok(Self {
            pk: v2.pk,
            sk: v2.sk,
            kind: v2.kind,
            tenant: stream.tenant().into(),
            category: stream.category().into(),
            stream_id: stream.id().into(),
            first_version,
            last_version: v2.last_version,
            metadata: v2.metadata,
            events: v2
                .events
                .into_iter()
                .map(|e| LegacyStoredEvent {
                    event_id: e.event_id,
                    event_type: e.event_type,
                    schema_version: e.schema_version,
                    payload: e.payload,
                    metadata: e.metadata,
                })
                .collect(),
            written_at: v2.written_at,
        })
    }

    /// The same commit as a [`CommitItem`]. The copies of the keys' contents must agree with the
    /// keys: v2 reads the stream from `pk` and the first version from `sk`, so an item whose copies
    /// disagree would read differently than it used to, and is refused as malformed instead.
    pub fn upcast(self) -> Result<CommitItem, Error> {
        let stream = StreamId::new(&self.tenant, &self.category, &self.stream_id)
            .map_err(|e| MalformedCommitItem::error(&self.pk, &self.sk, e.to_string()))?;
        if stream_pk(&stream) != self.pk || version_sk(self.first_version) != self.sk {
            return Err(MalformedCommitItem::error(
                &self.pk,
                &self.sk,
                format!(
                    "tenant, category, stream_id and first_version ({stream} at {}) disagree with the keys",
                    self.first_version
                ),
            ));
        }
        Ok(CommitItem {
            pk: self.pk,
            sk: self.sk,
            kind: self.kind,
            last_version: self.last_version,
            written_at: self.written_at,
            metadata: self.metadata,
            events: self
                .events
                .into_iter()
                .map(|e| StoredEvent {
                    event_id: e.event_id,
                    event_type: e.event_type,
                    schema_version: e.schema_version,
                    payload: e.payload,
                    metadata: e.metadata,
                })
                .collect(),
        })
    }
}
