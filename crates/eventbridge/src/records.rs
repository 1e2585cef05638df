//! DynamoDB stream records -> committed events.

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use strata_core::{Error, EventEnvelope};
use strata_dynamodb::item::{CommitItem, kind};

/// The events one stream record carries, in version order (none for anything but a new commit).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordEvents {
    /// The record's sequence number: what a partial batch response reports.
    pub sequence_number: Option<String>,
    /// The commit's events; empty for snapshots, keys, views and other items, and for removals.
    pub events: Vec<EventEnvelope>,
}

/// Decodes one record. Only inserts of commit items carry events: commits are never modified, and
/// removals (TTL expiry of idempotency records, pruned snapshots) publish nothing.
pub fn decode_record(record: &EventRecord) -> Result<RecordEvents, Error> {
    let sequence_number = record.change.sequence_number.clone();
    let image = &record.change.new_image;
    // A stream without new images (KEYS_ONLY, OLD_IMAGE) would make every commit look like "not a
    // commit" and lose it from the bus silently: refuse such records instead.
    if record.event_name == "INSERT" && image.is_empty() {
        return Err(Error::backend(
            format!(
                "stream record {sequence_number:?} carries no new image (stream view type {:?}); the table's \
                 stream must be NEW_IMAGE or NEW_AND_OLD_IMAGES",
                record.change.stream_view_type
            ),
            false,
        ));
    }
    let is_commit = matches!(
        image.get("kind"),
        Some(serde_dynamo::AttributeValue::S(k)) if k == kind::COMMIT
    );
    if record.event_name != "INSERT" || !is_commit {
        return Ok(RecordEvents { sequence_number, events: Vec::new() });
    }
    let item: CommitItem = serde_dynamo::from_item(image.clone()).map_err(|source| {
        Error::backend(format!("stream record {sequence_number:?} is not a commit item: {source}"), false)
    })?;
    let stream = item.stream()?;
    let commit = item.into_commit(&stream)?;
    Ok(RecordEvents { sequence_number, events: commit.events })
}

/// A record's events, or why it does not decode.
pub type RecordResult = Result<Vec<EventEnvelope>, Error>;

/// Decodes every record of a stream batch, in order; a record that does not decode is returned as
/// its error, so the caller can report it alone.
pub fn decode_batch(event: &StreamEvent) -> Vec<(Option<String>, RecordResult)> {
    event
        .records
        .iter()
        .map(|record| match decode_record(record) {
            Ok(decoded) => (decoded.sequence_number, Ok(decoded.events)),
            Err(error) => (record.change.sequence_number.clone(), Err(error)),
        })
        .collect()
}
