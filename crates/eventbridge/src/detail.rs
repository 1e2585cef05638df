//! The `detail` of every entry Strata puts on a bus: the event's envelope, or a reference to it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use strata_core::projection::Delivered;
use strata_core::{EventEnvelope, EventId, Metadata, StreamId};

/// Largest PutEvents entry, and largest PutEvents request, in bytes (EventBridge's limit).
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;
/// Most entries in one PutEvents request.
pub const MAX_ENTRIES_PER_CALL: usize = 10;

/// What consumers receive as an EventBridge event's `detail`: a committed event, personal fields
/// still sealed. This is the published contract: fields are only ever added.
///
/// ```json
/// {"event_id": "01J...", "stream": {"tenant": "acme", "category": "order", "id": "o-1"},
///  "version": 3, "event_type": "ItemAdded", "schema_version": 2, "payload": {"sku": "..."},
///  "metadata": {"correlation_id": "...", "causation_id": "...", "trace_id": "...", "committed_at": "..."}}
/// ```
///
/// An event too large for one entry is published without its payload and with `"claim_check": true`:
/// consumers read it from the store by (stream, version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detail {
    /// The event's id.
    pub event_id: EventId,
    /// Its stream.
    pub stream: StreamId,
    /// Its version in the stream: consumers deduplicate and order by it.
    pub version: u64,
    /// Stable type name (also the entry's detail-type).
    pub event_type: String,
    /// Schema version of the payload.
    pub schema_version: u32,
    /// The payload with personal fields sealed; absent in a claim check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Correlation, causation, actor, trace id, commit time.
    pub metadata: Metadata,
    /// The payload was left out for size: read the event from the store.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub claim_check: bool,
}

impl Detail {
    /// The whole event.
    pub fn full(envelope: &EventEnvelope) -> Self {
        Self {
            event_id: envelope.event_id,
            stream: envelope.stream.clone(),
            version: envelope.version,
            event_type: envelope.event_type.clone(),
            schema_version: envelope.schema_version,
            payload: Some(envelope.payload.clone()),
            metadata: envelope.metadata.clone(),
            claim_check: false,
        }
    }

    /// A reference to the event: no payload and no free-form user metadata (both unbounded).
    pub fn claim_check(envelope: &EventEnvelope) -> Self {
        let mut metadata = envelope.metadata.clone();
        metadata.user.clear();
        Self { payload: None, metadata, claim_check: true, ..Self::full(envelope) }
    }

    /// What a consumer applies: the envelope, or a reference to resolve from the store.
    pub fn into_delivered(self) -> Delivered {
        if self.claim_check {
            return Delivered::Reference { stream: self.stream, version: self.version };
        }
        Delivered::Event(EventEnvelope {
            event_id: self.event_id,
            stream: self.stream,
            version: self.version,
            event_type: self.event_type,
            schema_version: self.schema_version,
            // A unit event's payload is JSON null, which serde reads back as `None`.
            payload: self.payload.unwrap_or(Value::Null),
            metadata: self.metadata,
        })
    }
}

/// The size EventBridge counts for an entry: source, detail-type, detail and resources as UTF-8 bytes,
/// plus 14 for the time.
pub fn entry_size(source: &str, detail_type: &str, detail: &str) -> usize {
    14 + source.len() + detail_type.len() + detail.len()
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use strata_core::NewEvent;

    use super::*;

    fn envelope(payload: Value) -> EventEnvelope {
        let mut metadata = Metadata::new("corr");
        metadata.user.insert("k".into(), "v".into());
        EventEnvelope::committed(
            StreamId::new("acme", "order", "o-1").unwrap(),
            3,
            NewEvent::new("ItemAdded", 2, payload, metadata),
        )
    }

    #[test]
    fn a_full_detail_round_trips_to_the_envelope_including_null_payloads() -> Result<(), serde_json::Error> {
        for payload in [json!({"sku": "a", "quantity": 1}), Value::Null] {
            let e = envelope(payload);
            let text = serde_json::to_string(&Detail::full(&e))?;
            let back: Detail = serde_json::from_str(&text)?;
            assert_eq!(back.into_delivered(), Delivered::Event(e));
        }
        Ok(())
    }

    #[test]
    fn a_claim_check_carries_no_payload_and_resolves_to_a_reference() -> Result<(), serde_json::Error> {
        let e = envelope(json!({"big": "x".repeat(1000)}));
        let text = serde_json::to_string(&Detail::claim_check(&e))?;
        assert!(
            !text.contains("xxxx") && !text.contains("\"payload\"") && text.contains("\"claim_check\":true")
        );
        let back: Detail = serde_json::from_str(&text)?;
        assert_eq!(back.into_delivered(), Delivered::Reference { stream: e.stream.clone(), version: 3 });
        Ok(())
    }

    #[test]
    fn entry_size_counts_what_eventbridge_counts() {
        assert_eq!(entry_size("src", "Type", "{}"), 14 + 3 + 4 + 2);
        assert_eq!(entry_size("é", "", ""), 16);
    }
}
