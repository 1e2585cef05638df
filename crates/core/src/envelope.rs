//! The envelope every event travels in, and its metadata.

use std::{collections::BTreeMap, fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::StreamId;

/// A globally unique, time-ordered event id (a ULID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(Ulid);

impl EventId {
    /// A fresh id.
    pub fn new() -> Self {
        Self(Ulid::new())
    }

    /// When the id was made (its ULID's timestamp, the maker's clock, milliseconds since the epoch).
    pub fn timestamp_ms(&self) -> u64 {
        self.0.timestamp_ms()
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for EventId {
    type Err = ulid::DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ulid::from_string(s).map(Self)
    }
}

/// Who and what caused an event, carried on every event of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Ties together everything done on behalf of one original request.
    pub correlation_id: String,
    /// The id of the command or event that directly caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// The user or service that issued the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The idempotency key the command was sent with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The distributed trace id (e.g. X-Ray), carried into logs and published events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// When the command's events were committed (writer's clock, UTC).
    pub committed_at: DateTime<Utc>,
    /// Free-form application metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
}

impl Metadata {
    /// Metadata with only a correlation id, committed now.
    pub fn new(correlation_id: impl Into<String>) -> Self {
        Self {
            correlation_id: correlation_id.into(),
            causation_id: None,
            actor: None,
            idempotency_key: None,
            trace_id: None,
            committed_at: Utc::now(),
            user: BTreeMap::new(),
        }
    }
}

/// An event not yet written: what a command decided, encoded, with metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// The event's id.
    pub event_id: EventId,
    /// Stable type name, e.g. `OrderPlaced`.
    pub event_type: String,
    /// Schema version of the payload.
    pub schema_version: u32,
    /// The event's fields as JSON.
    pub payload: serde_json::Value,
    /// Metadata shared by the command's events.
    pub metadata: Metadata,
}

/// A committed event, as stored and as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// The event's id.
    pub event_id: EventId,
    /// The stream it belongs to.
    pub stream: StreamId,
    /// Its position in the stream, from 1.
    pub version: u64,
    /// Stable type name, e.g. `OrderPlaced`.
    pub event_type: String,
    /// Schema version of the payload.
    pub schema_version: u32,
    /// The event's fields as JSON.
    pub payload: serde_json::Value,
    /// Correlation, causation, actor, trace, commit time.
    pub metadata: Metadata,
}

impl NewEvent {
    /// An already encoded event with a fresh id (for imports, migrations and tests).
    pub fn new(
        event_type: impl Into<String>,
        schema_version: u32,
        payload: serde_json::Value,
        metadata: Metadata,
    ) -> Self {
        Self { event_id: EventId::new(), event_type: event_type.into(), schema_version, payload, metadata }
    }
}

impl EventEnvelope {
    /// Places a new event in a stream at a version.
    pub fn committed(stream: StreamId, version: u64, event: NewEvent) -> Self {
        Self {
            event_id: event.event_id,
            stream,
            version,
            event_type: event.event_type,
            schema_version: event.schema_version,
            payload: event.payload,
            metadata: event.metadata,
        }
    }
}
