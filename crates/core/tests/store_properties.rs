//! The store contract (`strata_core::conformance`) against the in-memory store: the same code
//! `strata-dynamodb` runs against DynamoDB on the emulator, so the two stores cannot drift.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strata_core::InMemoryStore;
use strata_core::conformance::{StoreContract, rolling_deploy};
use strata_core::{Error, EventStore, ExpectedVersion, SnapshotStore, StreamId};

/// Every property, hundreds of cases each: in memory they cost microseconds.
#[test]
fn the_in_memory_store_keeps_the_store_contract() {
    if let Err(violation) = StoreContract::new(256).check(|| async { InMemoryStore::new() }) {
        panic!("{violation}");
    }
}

/// The scenario on its own, to name it when it fails: two state schemas' code taking turns.
#[tokio::test]
async fn code_of_two_state_schemas_loads_from_its_own_snapshots_and_keeps_the_newer_ones() {
    let store = InMemoryStore::new();
    let stream = StreamId::new("acme", "tally", "deploy").unwrap();
    if let Err(violation) = rolling_deploy(&store, &stream).await {
        panic!("{violation}");
    }
}

/// The case the in-memory store used to accept and DynamoDB refuses: a snapshot inside a commit.
#[tokio::test]
async fn a_snapshot_inside_a_multi_event_commit_is_refused() {
    let store = InMemoryStore::new();
    let stream = StreamId::new("acme", "tally", "inside").unwrap();
    let events = (0..3)
        .map(|n| {
            strata_core::NewEvent::new(
                "Bumped",
                1,
                serde_json::json!({ "n": n }),
                strata_core::Metadata::new("c"),
            )
        })
        .collect();
    let request = strata_core::AppendRequest {
        stream: stream.clone(),
        expected: ExpectedVersion::NoStream,
        events,
        idempotency: None,
    };
    store.append(request).await.unwrap();
    let snapshot = |version| strata_core::Snapshot {
        stream: stream.clone(),
        version,
        state_schema_version: 1,
        state: serde_json::json!({}),
        taken_at: chrono::Utc::now(),
    };
    let inside = store.save_snapshot(snapshot(2)).await;
    assert!(matches!(inside, Err(Error::InvalidRequest(_))), "{inside:?}");
    assert!(store.snapshot_versions(&stream).is_empty());
    assert!(store.save_snapshot(snapshot(3)).await.unwrap());
}
