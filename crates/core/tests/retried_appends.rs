//! The in-memory store keeps the append contract for retries: the same request appended again
//! (same event ids, as a caller sends it after losing the answer) returns the first commit and
//! writes nothing, whatever the expectation and whatever landed on top since.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::collections::HashSet;

use chrono::{Duration, Utc};
use serde_json::json;
use strata_core::{
    AppendRequest, Error, EventStore, ExpectedVersion, IdempotencyRecord, InMemoryStore, Metadata, NewEvent,
    Snapshot, SnapshotStore, StreamId,
};

fn stream() -> StreamId {
    StreamId::new("acme", "tally", "t-1").unwrap()
}

fn append(expected: ExpectedVersion, count: u64) -> AppendRequest {
    let events =
        (0..count).map(|n| NewEvent::new("Bumped", 1, json!({ "n": n }), Metadata::new("corr"))).collect();
    AppendRequest { stream: stream(), expected, events, idempotency: None }
}

/// Versions 1..=n, each event id once.
async fn assert_each_event_once(store: &InMemoryStore, n: u64) {
    let page = store.read(&stream(), 1, 1000).await.unwrap();
    assert_eq!(page.events.iter().map(|e| e.version).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
    let ids: HashSet<_> = page.events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len() as u64, n, "an event id stored twice");
}

#[tokio::test]
async fn a_retry_under_later_commits_and_a_snapshot_returns_the_first_commit_for_every_expectation() {
    let store = InMemoryStore::new();
    let record = IdempotencyRecord {
        tenant: "acme".into(),
        key: "k-1".into(),
        request_hash: "h".into(),
        outcome: json!({ "version": 5 }),
        expires_at: Utc::now() + Duration::hours(1),
    };
    let requests = [
        append(ExpectedVersion::NoStream, 1),
        append(ExpectedVersion::Any, 2),
        append(ExpectedVersion::StreamExists, 1),
        AppendRequest { idempotency: Some(record), ..append(ExpectedVersion::Exact(4), 1) },
    ];
    let mut first = Vec::new();
    for request in &requests {
        first.push(store.append(request.clone()).await.unwrap());
    }
    assert_eq!(
        first.iter().map(|c| (c.first_version, c.last_version)).collect::<Vec<_>>(),
        [(1, 1), (2, 3), (4, 4), (5, 5)]
    );
    // Before the callers retry, another writer commits and a snapshot is taken on top.
    store.append(append(ExpectedVersion::Exact(5), 1)).await.unwrap();
    let snapshot = Snapshot {
        stream: stream(),
        version: 6,
        state_schema_version: 1,
        state: json!({}),
        taken_at: Utc::now(),
    };
    store.save_snapshot(snapshot).await.unwrap();
    let (_, feed) = store.feed_since(0);

    for (request, first) in requests.iter().zip(&first).rev() {
        assert_eq!(&store.append(request.clone()).await.unwrap(), first, "{}", request.expected);
    }
    assert_eq!(store.feed_since(feed).0, vec![], "nothing written");
    assert_each_event_once(&store, 6).await;
}

#[tokio::test]
async fn a_first_event_id_that_starts_a_commit_of_other_events_is_a_conflict() {
    let store = InMemoryStore::new();
    let request = append(ExpectedVersion::Any, 2);
    store.append(request.clone()).await.unwrap();
    let mut other = request.clone();
    other.events[1] = NewEvent::new("Bumped", 1, json!({ "n": 9 }), Metadata::new("corr"));
    assert!(matches!(store.append(other).await, Err(Error::Conflict { actual: Some(2), .. })));
    assert_each_event_once(&store, 2).await;
}
