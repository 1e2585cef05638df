//! Snapshots on DynamoDB: a cache that sorts after its version, is pruned to keep-K through the
//! sparse index, is replaced when it cannot be used, and is chosen by state schema: a load reads past
//! other schemas' snapshots in the same Query, and a newer schema's snapshot is never replaced nor
//! pruned by code of an older one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::{Fixture, append, bumps, fixture, stream};
use strata_core::conformance::rolling_deploy;
use strata_core::fixture::tally::{Tally, TallyCommand};
use strata_core::{
    Aggregate, CommandContext, EventStore, ExpectedVersion, Repository, Snapshot, SnapshotPolicy,
    SnapshotStore, StreamId,
};
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

/// Waits until the snapshots index lists exactly `expected`. DynamoDB keeps a global secondary index
/// eventually consistent (both emulators happen to update it at once): a test reads it once it has
/// caught up, and a prune over it (`keep`, schema) is repeated meanwhile, as one prune over a lagging
/// index may keep more snapshots, never fewer.
async fn indexed(f: &Fixture, s: &StreamId, expected: &[u64], prune: Option<(usize, u32)>) {
    strata_testing::eventually("the snapshots index", || async {
        if let Some((keep, schema)) = prune {
            f.store.prune_snapshots(s, keep, schema).await.unwrap();
        }
        let versions = snapshot_versions(f, s).await;
        if versions == expected { Ok(()) } else { Err(format!("{versions:?}")) }
    })
    .await;
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

    indexed(&f, &s, &[6, 9], Some((2, Tally::STATE_SCHEMA_VERSION))).await;
    let loaded = f.store.load(&s, Tally::STATE_SCHEMA_VERSION).await.unwrap();
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
    let fresh = f.store.load(&s, Tally::STATE_SCHEMA_VERSION).await.unwrap().snapshot.unwrap();
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
    // Not JSON at all on the newest; another state schema on the one below; the oldest is usable.
    set_state(&f, &s, 4, "state", AttributeValue::S("\u{1}not json".into())).await;
    set_state(&f, &s, 2, "state_schema_version", AttributeValue::N("0".into())).await;

    let loaded = f.store.load(&s, 1).await.unwrap();
    assert!(loaded.snapshot.is_none(), "both are read past: {:?}", loaded.snapshot);
    assert_eq!(loaded.events.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    let other = f.store.load(&s, 0).await.unwrap();
    assert_eq!(other.snapshot.as_ref().map(|s| (s.version, s.state_schema_version)), Some((2, 0)));
    assert_eq!(other.events.iter().map(|e| e.version).collect::<Vec<_>>(), vec![3, 4, 5]);

    let state = repo.load(&s).await.unwrap();
    assert_eq!(state.state.seen, vec![1, 2, 3, 4, 5]);
    // A load folds the stream it read; the next command's policy takes a fresh snapshot.
    repo.execute(&s, &TallyCommand::Bump { times: 1 }, CommandContext::default()).await.unwrap();
    assert_eq!(f.store.load(&s, 1).await.unwrap().snapshot.map(|s| s.version), Some(6));
}

fn snapshot_of(s: &StreamId, version: u64, state_schema_version: u32) -> Snapshot {
    Snapshot {
        stream: s.clone(),
        version,
        state_schema_version,
        state: serde_json::json!({ "schema": state_schema_version }),
        taken_at: chrono::Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_reads_past_other_schemas_snapshots_in_the_same_query() {
    let f = fixture().await;
    let s = stream("schemas");
    for v in 1..=20 {
        f.store.append_after_load(append(&s, ExpectedVersion::Exact(v - 1), bumps(v, 1))).await.unwrap();
    }
    for (version, schema) in [(10, 1), (15, 2), (18, 3), (20, 2)] {
        assert!(f.store.save_snapshot(snapshot_of(&s, version, schema)).await.unwrap());
    }
    f.counter.reset();

    for (schema, snapshot, first_event) in
        [(1, Some(10), 11), (2, Some(20), 21), (3, Some(18), 19), (4, None, 1)]
    {
        let loaded = f.store.load(&s, schema).await.unwrap();
        let counts = f.counter.take();
        assert_eq!((counts.calls("Query"), counts.total_calls()), (1, 1), "schema {schema}: {counts}");
        assert_eq!(
            loaded.snapshot.as_ref().map(|s| (s.version, s.state_schema_version)),
            snapshot.map(|v| (v, schema))
        );
        let versions: Vec<u64> = loaded.events.iter().map(|e| e.version).collect();
        assert_eq!(versions, (first_event..=20).collect::<Vec<_>>(), "schema {schema}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schemas_snapshot_is_neither_replaced_nor_pruned_by_an_older_writer() {
    let f = fixture().await;
    let s = stream("newer");
    f.store.append(append(&s, ExpectedVersion::NoStream, bumps(1, 2))).await.unwrap();
    f.store.append(append(&s, ExpectedVersion::Exact(2), bumps(3, 2))).await.unwrap();
    assert!(f.store.save_snapshot(snapshot_of(&s, 2, 2)).await.unwrap());
    assert!(f.store.save_snapshot(snapshot_of(&s, 4, 2)).await.unwrap());
    indexed(&f, &s, &[2, 4], None).await;

    // The conditions are in the writes themselves, so a racing older writer cannot slip past.
    f.counter.reset();
    assert!(!f.store.save_snapshot(snapshot_of(&s, 4, 1)).await.unwrap(), "not written");
    assert_eq!(f.store.prune_snapshots(&s, 0, 1).await.unwrap(), 0);
    let counts = f.counter.take();
    assert_eq!((counts.calls("PutItem"), counts.calls("DeleteItem")), (1, 2), "{counts}");
    assert_eq!(snapshot_versions(&f, &s).await, vec![2, 4]);
    let kept = f.store.load(&s, 2).await.unwrap().snapshot.unwrap();
    assert_eq!((kept.version, kept.state_schema_version), (4, 2));

    // The same or a newer schema replaces and prunes it.
    assert!(f.store.save_snapshot(snapshot_of(&s, 4, 3)).await.unwrap());
    assert_eq!(f.store.prune_snapshots(&s, 1, 3).await.unwrap(), 1);
    indexed(&f, &s, &[4], None).await;
    assert_eq!(f.store.load(&s, 3).await.unwrap().snapshot.map(|s| s.version), Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_of_two_state_schemas_takes_turns_on_one_stream() {
    let f = fixture().await;
    if let Err(violation) = rolling_deploy(&f.store, &stream("deploy")).await {
        panic!("{violation}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_deletes_only_snapshot_items_whatever_the_index_lists() {
    let f = fixture().await;
    let s = stream("not-a-snapshot");
    f.store.append(append(&s, ExpectedVersion::NoStream, bumps(1, 2))).await.unwrap();
    assert!(f.store.save_snapshot(snapshot_of(&s, 2, 1)).await.unwrap());
    // An item of another kind under a snapshot key, listed by the index (tampering, or a bug): the
    // pruner's delete is conditional on the kind and leaves it.
    let mut item = std::collections::HashMap::new();
    item.insert("pk".to_owned(), AttributeValue::S(stream_pk(&s)));
    item.insert("sk".to_owned(), AttributeValue::S(snapshot_sk(1)));
    item.insert("kind".to_owned(), AttributeValue::S("commit".into()));
    item.insert("snapshot_of".to_owned(), AttributeValue::S(stream_pk(&s)));
    item.insert("snapshot_version".to_owned(), AttributeValue::N("1".into()));
    f.store.client().put_item().table_name(f.store.table()).set_item(Some(item)).send().await.unwrap();
    indexed(&f, &s, &[1, 2], None).await;

    assert_eq!(f.store.prune_snapshots(&s, 0, 1).await.unwrap(), 1, "only the snapshot at 2");

    indexed(&f, &s, &[1], None).await;
}
