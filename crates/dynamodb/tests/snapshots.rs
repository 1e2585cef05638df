//! Snapshots on DynamoDB: a cache that sorts after its version, is pruned to keep-K through the
//! sparse index, and is replaced when it cannot be used.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::{Fixture, fixture, stream};
use strata_core::fixture::tally::{Tally, TallyCommand};
use strata_core::{CommandContext, EventStore, Repository, SnapshotPolicy, StreamId};
use strata_dynamodb::SNAPSHOTS_INDEX;
use strata_dynamodb::keys::{snapshot_sk, stream_pk};

async fn snapshot_versions(f: &Fixture, s: &StreamId) -> Vec<u64> {
    let out = f
        .store
        .client()
        .query()
        .table_name(f.store.table())
        .index_name(SNAPSHOTS_INDEX)
        .key_condition_expression("snapshot_of = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(stream_pk(s)))
        .send()
        .await
        .unwrap();
    let mut versions: Vec<u64> =
        out.items().iter().map(|item| item["snapshot_version"].as_n().unwrap().parse().unwrap()).collect();
    versions.sort_unstable();
    versions
}

async fn set_state(f: &Fixture, s: &StreamId, version: u64, attribute: &str, value: AttributeValue) {
    f.store
        .client()
        .update_item()
        .table_name(f.store.table())
        .key("pk", AttributeValue::S(stream_pk(s)))
        .key("sk", AttributeValue::S(snapshot_sk(version)))
        .update_expression("SET #a = :v")
        .expression_attribute_names("#a", attribute)
        .expression_attribute_values(":v", value)
        .condition_expression("attribute_exists(pk)")
        .send()
        .await
        .unwrap();
}

async fn bump(repo: &Repository<Tally, strata_dynamodb::DynamoStore>, s: &StreamId, n: usize) {
    for _ in 0..n {
        repo.execute(s, &TallyCommand::Bump { times: 1 }, CommandContext::default()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_beyond_keep_are_removed_and_loads_start_at_the_newest() {
    let f = fixture().await;
    let repo =
        Repository::<Tally, _>::new(f.store.clone()).with_snapshot_policy(SnapshotPolicy::every(3).keep(2));
    let s = stream("keep");
    bump(&repo, &s, 11).await;

    assert_eq!(snapshot_versions(&f, &s).await, vec![6, 9]);
    let loaded = f.store.load(&s).await.unwrap();
    assert_eq!(loaded.snapshot.map(|s| s.version), Some(9));
    assert_eq!(loaded.events.iter().map(|e| e.version).collect::<Vec<_>>(), vec![10, 11]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_fails_to_decode_is_replayed_and_replaced() {
    let f = fixture().await;
    let repo = Repository::<Tally, _>::new(f.store.clone()).with_snapshot_policy(SnapshotPolicy::every(4));
    let s = stream("corrupt");
    bump(&repo, &s, 5).await;
    // Valid JSON of the wrong shape: the store returns it, the aggregate cannot decode it.
    set_state(&f, &s, 4, "state", AttributeValue::S(r#"{"count":"four"}"#.into())).await;

    let loaded = repo.load(&s).await.unwrap();

    assert_eq!((loaded.version, loaded.state.seen.clone()), (5, vec![1, 2, 3, 4, 5]));
    let fresh = f.store.load(&s).await.unwrap().snapshot.unwrap();
    assert_eq!(fresh.version, 5, "a fresh snapshot at the head replaced the unusable one");
    assert_eq!(serde_json::from_value::<Tally>(fresh.state).unwrap(), loaded.state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_snapshot_item_is_read_past() {
    let f = fixture().await;
    let repo =
        Repository::<Tally, _>::new(f.store.clone()).with_snapshot_policy(SnapshotPolicy::every(2).keep(5));
    let s = stream("garbage");
    bump(&repo, &s, 5).await;
    // Not JSON at all, and a state schema the aggregate does not know, on the two newest.
    set_state(&f, &s, 4, "state", AttributeValue::S("\u{1}not json".into())).await;
    set_state(&f, &s, 2, "state_schema_version", AttributeValue::N("0".into())).await;

    let loaded = f.store.load(&s).await.unwrap();
    assert_eq!(loaded.snapshot.as_ref().map(|s| (s.version, s.state_schema_version)), Some((2, 0)));
    assert_eq!(loaded.events.iter().map(|e| e.version).collect::<Vec<_>>(), vec![3, 4, 5]);

    let state = repo.load(&s).await.unwrap();
    assert_eq!(state.state.seen, vec![1, 2, 3, 4, 5]);
    assert_eq!(f.store.load(&s).await.unwrap().snapshot.map(|s| s.version), Some(5));
}
