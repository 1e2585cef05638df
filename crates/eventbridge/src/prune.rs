//! Pruning old snapshots off the command path, from the snapshot inserts on the table's stream.

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use serde_dynamo::AttributeValue;
use strata_core::{SnapshotStore, StreamId};
use strata_dynamodb::DynamoStore;
use strata_dynamodb::item::kind;
use strata_dynamodb::keys::parse_stream_pk;

/// Prunes each stream whose snapshot the batch inserted to the newest `keep` snapshots, for
/// repositories whose [`strata_core::SnapshotPolicy::pruned_elsewhere`] leaves it to this: the
/// command that writes a snapshot then pays no index Query and no delete.
///
/// Snapshots of a state schema newer than the inserted one stay (code of that schema is running
/// during a rolling deploy); a prune that fails is logged and left to the stream's next snapshot
/// (snapshots are a cache: one more than `keep` costs storage, never a wrong load), so it never
/// fails the batch or holds back publishing.
#[derive(Debug, Clone)]
pub struct SnapshotPruner {
    store: DynamoStore,
    keep: usize,
}

impl SnapshotPruner {
    /// Keeps the newest `keep` snapshots (at least 1) of every stream it sees a snapshot written to.
    pub fn new(store: DynamoStore, keep: usize) -> Self {
        Self { store, keep: keep.max(1) }
    }

    /// How many snapshots it keeps per stream.
    pub fn keep(&self) -> usize {
        self.keep
    }

    /// Prunes the streams [`snapshots_inserted`] finds in the batch; returns how many snapshots it
    /// removed.
    pub async fn prune(&self, event: &StreamEvent) -> usize {
        let mut removed = 0;
        for (stream, schema) in snapshots_inserted(event) {
            match self.store.prune_snapshots(&stream, self.keep, schema).await {
                Ok(n) => removed += n,
                Err(error) => {
                    tracing::warn!(%stream, %error, "snapshots not pruned; the next snapshot tries again")
                }
            }
        }
        removed
    }
}

/// The streams the batch inserted a snapshot into, each once, with the newest state schema of
/// those snapshots, in the order first seen.
pub fn snapshots_inserted(event: &StreamEvent) -> Vec<(StreamId, u32)> {
    let mut found: Vec<(StreamId, u32)> = Vec::new();
    for (stream, schema) in event.records.iter().filter_map(snapshot_insert) {
        match found.iter_mut().find(|(s, _)| *s == stream) {
            Some((_, newest)) => *newest = (*newest).max(schema),
            None => found.push((stream, schema)),
        }
    }
    found
}

/// The stream and state schema of a record that inserts a snapshot item.
fn snapshot_insert(record: &EventRecord) -> Option<(StreamId, u32)> {
    // A snapshot replaced at its version (MODIFY) adds none; the mapping's filter passes inserts only.
    if record.event_name != "INSERT" {
        return None;
    }
    let image = &record.change.new_image;
    let is_snapshot = matches!(image.get("kind"), Some(AttributeValue::S(k)) if k == kind::SNAPSHOT);
    let (Some(AttributeValue::S(pk)), Some(AttributeValue::N(schema))) =
        (image.get("pk"), image.get("state_schema_version"))
    else {
        return None;
    };
    if !is_snapshot {
        return None;
    }
    Some((parse_stream_pk(pk)?, schema.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(name: &str, image: serde_json::Value) -> serde_json::Value {
        json!({
            "eventID": "1", "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": { "NewImage": image, "SequenceNumber": "1", "SizeBytes": 1, "StreamViewType": "NEW_IMAGE" }
        })
    }

    fn snapshot(pk: &str, schema: u32) -> serde_json::Value {
        json!({
            "pk": {"S": pk}, "sk": {"S": "00000000000000000100#SNAP"}, "kind": {"S": "snapshot"},
            "state_schema_version": {"N": schema.to_string()}
        })
    }

    #[test]
    fn only_snapshot_inserts_count_once_per_stream_with_the_newest_schema() {
        let event: StreamEvent = serde_json::from_value(json!({ "Records": [
            record("INSERT", snapshot("acme#S#order-o-1", 1)),
            record("INSERT", snapshot("acme#S#order-o-1", 2)),
            record("INSERT", snapshot("acme#S#order-o-2", 1)),
            record("INSERT", json!({"pk": {"S": "acme#S#order-o-3"}, "kind": {"S": "commit"}})),
            record("INSERT", snapshot("acme#K#subject", 1)),
        ]}))
        .unwrap();
        let found = snapshots_inserted(&event);
        let names: Vec<(String, u32)> = found.iter().map(|(s, v)| (s.to_string(), *v)).collect();
        assert_eq!(
            names,
            [
                (StreamId::new("acme", "order", "o-1").unwrap().to_string(), 2),
                (StreamId::new("acme", "order", "o-2").unwrap().to_string(), 1)
            ]
        );
    }
}
