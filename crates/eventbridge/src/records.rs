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
    // Every format: records of items written before v3 (and by older writers during a deploy)
    // decode to the same events.
    let item = CommitItem::from_item(image.clone())?;
    let stream = item.stream()?;
    let commit = item.into_commit(&stream)?;
    Ok(RecordEvents { sequence_number, events: commit.events })
}

/// A change to a commit item or an audit record that the table's stream recorded. Both are written
/// once by a conditional put and never changed (snapshots sit beside commits, not in them), so a
/// MODIFY or REMOVE of one is tampering, or a restore written over the table: the publisher reports
/// it ([`COMMIT_CHANGED_ALERT`]) and publishes nothing for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitChange {
    /// `MODIFY` or `REMOVE`.
    pub event_name: String,
    /// `commit` or `audit record`.
    pub record: &'static str,
    /// The commit's stream (`{tenant}#S#{category}-{id}`).
    pub pk: String,
    /// Its first version (`{first_version:020}`).
    pub sk: String,
    /// Who made the change, as the stream names it: DynamoDB names one only for a TTL deletion
    /// (`dynamodb.amazonaws.com`, which would mean a commit was given an expiry); anyone else's
    /// change carries none, and CloudTrail's DynamoDB data events name the caller.
    pub principal: Option<String>,
    /// The record's sequence number.
    pub sequence_number: Option<String>,
}

/// The `alert` field of the log line the publisher writes for a [`CommitChange`] (of a commit or
/// an audit record): the construct's metric filter counts it, and an alarm fires on one.
pub const COMMIT_CHANGED_ALERT: &str = "commit_changed";

/// The change to a commit item or an audit record this record holds, if it holds one: a MODIFY or
/// REMOVE whose keys are a commit's (a stream partition, a sort key of 20 digits) or an audit
/// record's (an audit partition, a sort key `AUDIT#...`). Keys decide, not the image: a REMOVE
/// carries no image under NEW_IMAGE, and a MODIFY may have rewritten the item's kind.
pub fn commit_change(record: &EventRecord) -> Option<CommitChange> {
    if record.event_name != "MODIFY" && record.event_name != "REMOVE" {
        return None;
    }
    let text = |name: &str| match record.change.keys.get(name) {
        Some(serde_dynamo::AttributeValue::S(value)) => Some(value.clone()),
        _ => None,
    };
    let (pk, sk) = (text("pk")?, text("sk")?);
    let tag = pk.split('#').nth(1);
    let commit = tag == Some(strata_dynamodb::keys::STREAM_TAG)
        && sk.len() == 20
        && sk.bytes().all(|b| b.is_ascii_digit());
    let audit = tag == Some(strata_dynamodb::keys::AUDIT_TAG)
        && sk.starts_with(strata_dynamodb::keys_store::AUDIT_SK_PREFIX);
    let kind = match (commit, audit) {
        (true, _) => "commit",
        (_, true) => "audit record",
        _ => return None,
    };
    Some(CommitChange {
        event_name: record.event_name.clone(),
        record: kind,
        pk,
        sk,
        principal: record.user_identity.as_ref().map(|u| u.principal_id.clone()),
        sequence_number: record.change.sequence_number.clone(),
    })
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use strata_core::{Metadata, NewEvent, StreamId};
    use strata_dynamodb::item::{LegacyCommitItem, names};

    use super::*;

    fn stream() -> StreamId {
        StreamId::new("acme", "order", "o-1").unwrap()
    }

    fn events() -> Vec<NewEvent> {
        let mut other = Metadata::new("c-2");
        other.actor = Some("alice".into());
        vec![
            NewEvent::new("Placed", 1, json!({ "price": 1.0 }), Metadata::new("c")),
            NewEvent::new("Added", 2, json!({ "sku": "a" }), other),
        ]
    }

    /// An INSERT record whose new image is `image`, as Lambda hands it over.
    fn record(image: serde_dynamo::Item) -> EventRecord {
        serde_json::from_value(json!({
            "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": { "Keys": {}, "NewImage": image, "SequenceNumber": "7", "SizeBytes": 100,
                          "StreamViewType": "NEW_IMAGE" },
        }))
        .unwrap()
    }

    fn expected(events: Vec<NewEvent>) -> Vec<EventEnvelope> {
        events.into_iter().zip(3..).map(|(e, v)| EventEnvelope::committed(stream(), v, e)).collect()
    }

    #[test]
    fn a_v3_commit_record_decodes_to_its_events() {
        let events = events();
        let item = CommitItem::new(&stream(), 3, &events).unwrap();
        let image = serde_dynamo::Item::from(item.to_item().unwrap());
        assert!(image.contains_key(names::DATA) && !image.contains_key(names::EVENTS));
        let decoded = decode_record(&record(image)).unwrap();
        assert_eq!(decoded.sequence_number.as_deref(), Some("7"));
        assert_eq!(decoded.events, expected(events));
    }

    #[test]
    fn a_v2_commit_record_decodes_to_its_events() {
        let events = events();
        let item = CommitItem::new(&stream(), 3, &events).unwrap();
        let image: serde_dynamo::Item = serde_dynamo::to_item(item).unwrap();
        assert!(image.contains_key(names::EVENTS) && !image.contains_key("tenant"));
        let decoded = decode_record(&record(image)).unwrap();
        assert_eq!(decoded.sequence_number.as_deref(), Some("7"));
        assert_eq!(decoded.events, expected(events));
    }

    #[test]
    fn a_legacy_commit_record_decodes_to_the_same_events() {
        let events = events();
        let item = LegacyCommitItem::new(&stream(), 3, &events).unwrap();
        let image: serde_dynamo::Item = serde_dynamo::to_item(item).unwrap();
        assert!(image.contains_key(names::legacy::EVENTS));
        assert_eq!(decode_record(&record(image)).unwrap().events, expected(events));
    }

    #[test]
    fn a_commit_record_whose_pk_names_no_stream_is_an_error() {
        let mut item = CommitItem::new(&stream(), 3, &events()).unwrap();
        item.pk = "acme#S#nodash".into();
        let image: serde_dynamo::Item = serde_dynamo::to_item(item).unwrap();
        assert!(matches!(decode_record(&record(image)), Err(Error::Backend { retryable: false, .. })));
    }

    /// The records captured from the emulator (tests/fixtures), written in the legacy format.
    #[test]
    fn the_captured_legacy_records_still_decode() {
        let fixture: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/dynamodb-stream-event.json")).unwrap();
        let event: StreamEvent = serde_json::from_value(fixture).unwrap();
        let summary: Vec<Vec<(String, u64)>> = decode_batch(&event)
            .into_iter()
            .map(|(_, events)| events.unwrap().into_iter().map(|e| (e.event_type, e.version)).collect())
            .collect();
        let bumped = |v: u64| ("Bumped".to_owned(), v);
        assert_eq!(
            summary,
            [
                vec![],
                vec![],
                vec![("OrderPlaced".to_owned(), 1)],
                vec![("ItemAdded".to_owned(), 2)],
                vec![bumped(1), bumped(2), bumped(3)],
                vec![],
                vec![],
            ]
        );
    }
}
