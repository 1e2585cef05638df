//! The publisher and the relay against a scripted PutEvents: batching limits, exact retries of
//! failed entries, claim checks, and which stream records a partial batch response names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use serde_json::{Value, json};
use strata_core::{Error, EventEnvelope, Metadata, NewEvent, Publisher, StreamId};
use strata_dynamodb::item::{CommitItem, names};
use strata_eventbridge::{
    Detail, Entry, EntryResult, EventBridgePublisher, MAX_ENTRY_BYTES, PublishRetry, PutEvents, StreamRelay,
};

/// Fails an entry (by event version) as many times as scripted, records every call.
#[derive(Default)]
struct Scripted {
    failures_left: Mutex<HashMap<u64, u32>>,
    calls: Mutex<Vec<Vec<u64>>>,
    sizes: Mutex<Vec<usize>>,
    call_error: Mutex<u32>,
}

impl Scripted {
    fn failing(script: &[(u64, u32)]) -> Self {
        Self { failures_left: Mutex::new(script.iter().copied().collect()), ..Self::default() }
    }
    fn calls(&self) -> Vec<Vec<u64>> {
        self.calls.lock().unwrap().clone()
    }
}

fn version_of(entry: &Entry) -> u64 {
    serde_json::from_str::<Detail>(&entry.detail).unwrap().version
}

impl PutEvents for Scripted {
    async fn put_events(&self, bus: &str, entries: &[Entry]) -> Result<Vec<EntryResult>, Error> {
        assert_eq!(bus, "bus");
        assert!(entries.len() <= 10, "at most 10 entries per call");
        let size: usize = entries.iter().map(Entry::size).sum();
        assert!(size <= MAX_ENTRY_BYTES, "at most 256 KB per call, got {size}");
        self.sizes.lock().unwrap().push(size);
        self.calls.lock().unwrap().push(entries.iter().map(version_of).collect());
        {
            let mut errors = self.call_error.lock().unwrap();
            if *errors > 0 {
                *errors -= 1;
                return Err(Error::backend("connection reset", true));
            }
        }
        let mut left = self.failures_left.lock().unwrap();
        Ok(entries
            .iter()
            .map(|entry| match left.get_mut(&version_of(entry)) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    EntryResult::Failed { code: "ThrottlingException".into(), message: "slow down".into() }
                }
                _ => EntryResult::Published(format!("eb-{}", version_of(entry))),
            })
            .collect())
    }
}

fn stream() -> StreamId {
    StreamId::new("acme", "order", "o-1").unwrap()
}

fn events(count: u64, payload: impl Fn(u64) -> Value) -> Vec<EventEnvelope> {
    (1..=count)
        .map(|v| {
            EventEnvelope::committed(stream(), v, NewEvent::new("Noted", 1, payload(v), Metadata::new("c")))
        })
        .collect()
}

fn publisher(client: Scripted, attempts: u32) -> EventBridgePublisher<Scripted> {
    let retry = PublishRetry {
        max_attempts: attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    };
    EventBridgePublisher::new(client, "bus", "com.example.orders").unwrap().with_retry(retry)
}

#[tokio::test]
async fn entries_go_in_order_ten_per_call() {
    let p = publisher(Scripted::default(), 3);
    let report = p.publish_all(&events(25, |v| json!({ "v": v }))).await;
    assert_eq!((report.failed.len(), report.calls, report.claim_checks), (0, 3, 0));
    let calls = p.client().calls();
    assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    assert_eq!(calls.concat(), (1..=25).collect::<Vec<_>>());
}

#[tokio::test]
async fn calls_stay_under_256_kb() {
    let p = publisher(Scripted::default(), 3);
    // Five 100 KB events: two fit in a call.
    let report = p.publish_all(&events(5, |_| json!({ "pad": "x".repeat(100 * 1024) }))).await;
    assert!(report.failed.is_empty());
    assert_eq!(p.client().calls().iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
}

#[tokio::test]
async fn only_the_failed_entries_are_retried() {
    let p = publisher(Scripted::failing(&[(2, 1), (5, 2)]), 4);
    let report = p.publish_all(&events(6, |v| json!({ "v": v }))).await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(p.client().calls(), [vec![1, 2, 3, 4, 5, 6], vec![2, 5], vec![5]]);
}

#[tokio::test]
async fn entries_still_failing_after_the_last_attempt_are_reported_by_index() {
    let p = publisher(Scripted::failing(&[(3, 9)]), 3);
    let report = p.publish_all(&events(4, |v| json!({ "v": v }))).await;
    assert_eq!((report.failed, report.calls), (vec![2], 3));
    let failed = Publisher::publish(&p, &events(4, |v| json!({ "v": v }))).await;
    assert!(matches!(failed, Err(Error::Backend { retryable: true, .. })), "{failed:?}");
}

#[tokio::test]
async fn a_failed_call_retries_its_entries() {
    let client = Scripted::default();
    *client.call_error.lock().unwrap() = 1;
    let p = publisher(client, 2);
    let report = p.publish_all(&events(3, |v| json!({ "v": v }))).await;
    assert!(report.failed.is_empty());
    assert_eq!(p.client().calls(), [vec![1, 2, 3], vec![1, 2, 3]]);
}

#[tokio::test]
async fn an_event_over_256_kb_goes_as_a_claim_check() {
    let p = publisher(Scripted::default(), 1);
    let big = events(1, |_| json!({ "pad": "x".repeat(MAX_ENTRY_BYTES) }));
    let (entry, claim_check) = p.entry(&big[0]).unwrap();
    assert!(claim_check && entry.size() < 2048);
    let detail: Detail = serde_json::from_str(&entry.detail).unwrap();
    assert!(detail.claim_check && detail.payload.is_none());
    assert_eq!((detail.stream, detail.version, detail.event_type.as_str()), (stream(), 1, "Noted"));
    assert_eq!(p.publish_all(&big).await.claim_checks, 1);
}

#[tokio::test]
async fn entries_carry_source_type_time_and_an_x_ray_trace_header() {
    let p = publisher(Scripted::default(), 1);
    let mut event = events(1, |_| json!({}))[0].clone();
    event.metadata.trace_id = Some("Root=1-5759e988-bd862e3fe1be46a994272793".into());
    let (entry, _) = p.entry(&event).unwrap();
    assert_eq!((entry.source.as_str(), entry.detail_type.as_str()), ("com.example.orders", "Noted"));
    assert_eq!(entry.time, event.metadata.committed_at);
    assert_eq!(entry.trace_header, event.metadata.trace_id);
    event.metadata.trace_id = Some("not-an-x-ray-header".into());
    assert_eq!(p.entry(&event).unwrap().0.trace_header, None, "only X-Ray headers go in TraceHeader");
    assert!(EventBridgePublisher::new(Scripted::default(), "", "src").is_err());
}

/// A stream record of a commit of `count` events at `first`, with a sequence number.
fn commit_record(first: u64, count: u64, sequence: &str) -> Value {
    let events: Vec<NewEvent> = (first..first + count)
        .map(|v| NewEvent::new("Noted", 1, json!({ "v": v }), Metadata::new("c")))
        .collect();
    let item = CommitItem::new(&stream(), first, &events).unwrap();
    let image = serde_dynamo::Item::from(item.to_item().unwrap());
    json!({
        "eventID": sequence, "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": { "Keys": {}, "NewImage": image, "SequenceNumber": sequence, "SizeBytes": 100,
                      "StreamViewType": "NEW_IMAGE" },
    })
}

fn batch(records: Vec<Value>) -> StreamEvent {
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

#[tokio::test]
async fn the_relay_names_the_records_whose_events_failed_and_records_that_do_not_decode() {
    // Versions 1..=2 (record s1), 3..=5 (s2), 6 (s3); version 4 never goes through.
    let relay = StreamRelay::new(publisher(Scripted::failing(&[(4, 99)]), 2));
    let mut broken = commit_record(6, 1, "s4");
    broken["dynamodb"]["NewImage"][names::DATA] = json!({ "S": "not commit data" });
    let records =
        vec![commit_record(1, 2, "s1"), commit_record(3, 3, "s2"), commit_record(6, 1, "s3"), broken];
    let (response, relayed) = relay.handle_counted(batch(records)).await.unwrap();
    let failed: Vec<&str> =
        response.batch_item_failures.iter().filter_map(|f| f.item_identifier.as_deref()).collect();
    assert_eq!(failed, ["s2", "s4"]);
    assert_eq!((relayed.events, relayed.published), (6, 5));
}

#[tokio::test]
async fn the_relay_skips_removals_and_items_that_are_not_commits() {
    let relay = StreamRelay::new(publisher(Scripted::default(), 1));
    let mut removal = commit_record(1, 1, "s1");
    removal["eventName"] = json!("REMOVE");
    let mut snapshot = commit_record(2, 1, "s2");
    snapshot["dynamodb"]["NewImage"]["kind"] = json!({ "S": "snapshot" });
    let (response, relayed) = relay.handle_counted(batch(vec![removal, snapshot])).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((relayed.events, relay.publisher().client().calls().len()), (0, 0));
}

/// `record` with the keys DynamoDB puts in every record (its image's `pk` and `sk`).
fn keyed(mut record: Value) -> Value {
    let image = record["dynamodb"]["NewImage"].clone();
    record["dynamodb"]["Keys"] = json!({ "pk": image["pk"], "sk": image["sk"] });
    record
}

/// A REMOVE as a NEW_IMAGE stream records it: keys only, and a principal only for a TTL deletion.
fn removal(pk: &str, sk: &str, sequence: &str, ttl: bool) -> Value {
    let mut record = json!({
        "eventID": sequence, "eventName": "REMOVE", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": { "Keys": { "pk": { "S": pk }, "sk": { "S": sk } }, "SequenceNumber": sequence,
                      "SizeBytes": 40, "StreamViewType": "NEW_IMAGE" },
    });
    if ttl {
        record["userIdentity"] = json!({ "type": "Service", "principalId": "dynamodb.amazonaws.com" });
    }
    record
}

#[tokio::test]
async fn a_commit_modified_or_removed_is_reported_and_never_published() {
    // The log line itself, through the functions' logger: strata-lambda's tests/logs.rs.
    let relay = StreamRelay::new(publisher(Scripted::default(), 1));
    let mut modified = keyed(commit_record(1, 1, "s2"));
    modified["eventName"] = json!("MODIFY");
    let pk = modified["dynamodb"]["NewImage"]["pk"]["S"].as_str().unwrap().to_owned();
    let records = vec![
        keyed(commit_record(2, 1, "s1")),
        modified,
        removal(&pk, "00000000000000000001", "s3", false),
        // Not commits: a pruned snapshot, an expired idempotency record, a forgotten data key.
        removal(&pk, "00000000000000000001#SNAP", "s4", false),
        removal("acme#I#key-1", "IDEM", "s5", true),
        removal("acme#K#cust-1", "KEY", "s6", false),
        // An audit record of a subject's export, immutable like a commit.
        removal("acme#A#cust-1", "AUDIT#2026-12-01T10:00:00.000000000Z#01J0", "s7", false),
    ];
    let (response, relayed) = relay.handle_counted(batch(records)).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "reported, not retried");
    assert_eq!((relayed.events, relayed.published), (1, 1), "only the new commit is published");
    let changed: Vec<(&str, &str, &str, Option<&str>)> = relayed
        .changed_commits
        .iter()
        .map(|c| (c.event_name.as_str(), c.record, c.sk.as_str(), c.sequence_number.as_deref()))
        .collect();
    assert_eq!(
        changed,
        [
            ("MODIFY", "commit", "00000000000000000001", Some("s2")),
            ("REMOVE", "commit", "00000000000000000001", Some("s3")),
            ("REMOVE", "audit record", "AUDIT#2026-12-01T10:00:00.000000000Z#01J0", Some("s7")),
        ]
    );
    assert_eq!(relayed.changed_commits[0].pk, pk);
    assert!(relayed.changed_commits.iter().all(|c| c.principal.is_none()));
}

#[tokio::test]
async fn an_entry_refused_for_what_it_is_is_reported_without_retrying() {
    struct Malformed;
    impl PutEvents for Malformed {
        async fn put_events(&self, _: &str, entries: &[Entry]) -> Result<Vec<EntryResult>, Error> {
            Ok(entries
                .iter()
                .map(|e| match version_of(e) {
                    2 => EntryResult::Failed { code: "MalformedDetail".into(), message: "bad".into() },
                    v => EntryResult::Published(format!("eb-{v}")),
                })
                .collect())
        }
    }
    let retry = PublishRetry {
        max_attempts: 5,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
    };
    let p = EventBridgePublisher::new(Malformed, "bus", "src").unwrap().with_retry(retry);
    let report = p.publish_all(&events(3, |v| json!({ "v": v }))).await;
    assert_eq!((report.failed, report.calls), (vec![1], 1));
}

#[tokio::test]
async fn a_stream_without_new_images_is_refused_not_skipped() {
    let relay = StreamRelay::new(publisher(Scripted::default(), 1));
    let mut keys_only = commit_record(1, 1, "s1");
    keys_only["dynamodb"]["NewImage"] = json!({});
    keys_only["dynamodb"]["StreamViewType"] = json!("KEYS_ONLY");
    let (response, _) = relay.handle_counted(batch(vec![keys_only])).await.unwrap();
    let failed: Vec<&str> =
        response.batch_item_failures.iter().filter_map(|f| f.item_identifier.as_deref()).collect();
    assert_eq!(failed, ["s1"]);
}
