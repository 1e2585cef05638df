//! The event store contract on DynamoDB: appends, conflicts, reads, paging, size limits.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use common::{append, bumps, event, fixture, stream};
use serde_json::json;
use strata_core::fixture::tally::{Tally, TallyCommand};
use strata_core::{Aggregate, CommandContext, CommandError, Error, EventStore, ExpectedVersion, Repository};

/// The state schema the loads here ask for: `Tally`'s, as the repository would.
const SCHEMA: u32 = Tally::STATE_SCHEMA_VERSION;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_read_back_exactly_with_contiguous_versions() {
    let f = fixture().await;
    let s = stream("basic");
    let first = f.store.append(append(&s, ExpectedVersion::NoStream, bumps(1, 3))).await.unwrap();
    assert_eq!((first.first_version, first.last_version), (1, 3));
    let second = f.store.append(append(&s, ExpectedVersion::Exact(3), bumps(4, 2))).await.unwrap();
    assert_eq!((second.first_version, second.last_version), (4, 5));

    let loaded = f.store.load(&s, SCHEMA).await.unwrap();
    assert!(loaded.snapshot.is_none());
    let written: Vec<_> = first.events.iter().chain(&second.events).cloned().collect();
    assert_eq!(loaded.events, written, "ids, payloads, metadata and versions survive the round trip");
    assert_eq!(f.store.head(&s).await.unwrap(), 5);
    assert!(f.store.load(&stream("never-written"), SCHEMA).await.unwrap().events.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expectations_are_checked_and_a_failed_one_writes_nothing() {
    let f = fixture().await;
    let s = stream("expect");
    let conflict = |r: Result<_, Error>| matches!(r, Err(Error::Conflict { .. }));
    assert!(conflict(f.store.append(append(&s, ExpectedVersion::StreamExists, bumps(1, 1))).await));
    assert!(conflict(f.store.append(append(&s, ExpectedVersion::Exact(1), bumps(1, 1))).await));
    f.store.append(append(&s, ExpectedVersion::Any, bumps(1, 3))).await.unwrap();
    assert!(conflict(f.store.append(append(&s, ExpectedVersion::NoStream, bumps(4, 1))).await));
    assert!(conflict(f.store.append(append(&s, ExpectedVersion::Exact(0), bumps(4, 1))).await));
    // Version 2 lies inside the commit 1..=3: no item has sk 3, and yet it must be a conflict.
    match f.store.append(append(&s, ExpectedVersion::Exact(2), bumps(3, 1))).await {
        Err(Error::Conflict { actual, .. }) => assert_eq!(actual, Some(3)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let c = f.store.append(append(&s, ExpectedVersion::StreamExists, bumps(4, 1))).await.unwrap();
    assert_eq!(c.first_version, 4);
    let c = f.store.append(append(&s, ExpectedVersion::Any, bumps(5, 1))).await.unwrap();
    assert_eq!(c.first_version, 5);
    let versions: Vec<u64> =
        f.store.load(&s, SCHEMA).await.unwrap().events.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);
    let empty = f.store.append(append(&s, ExpectedVersion::Any, vec![])).await;
    assert!(matches!(empty, Err(Error::InvalidRequest(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_expected_version_inside_a_commit_is_a_conflict_through_the_repository() {
    let f = fixture().await;
    let repo = Repository::<Tally, _>::new(f.store.clone());
    let s = stream("mid-commit");
    repo.execute(&s, &TallyCommand::Bump { times: 3 }, CommandContext::default()).await.unwrap();
    let context = CommandContext { expected_version: Some(ExpectedVersion::Exact(2)), ..Default::default() };
    let result = repo.execute(&s, &TallyCommand::Bump { times: 1 }, context).await;
    assert!(matches!(result, Err(CommandError::Failed(Error::Conflict { actual: Some(3), .. }))));
    assert_eq!(f.store.head(&s).await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_put_that_finds_its_own_commit_succeeds() {
    // What the SDK does after a timeout whose first attempt landed: the same request again.
    let f = fixture().await;
    let s = stream("retry");
    let request = append(&s, ExpectedVersion::NoStream, bumps(1, 2));
    let first = f.store.append_after_load(request.clone()).await.unwrap();
    let again = f.store.append_after_load(request).await.unwrap();
    assert_eq!(first, again);
    // Another writer's request at the same version is a conflict.
    let other = f.store.append_after_load(append(&s, ExpectedVersion::NoStream, bumps(1, 2))).await;
    assert!(matches!(other, Err(Error::Conflict { .. })));
    assert_eq!(f.store.load(&s, SCHEMA).await.unwrap().events.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_page_forward_from_any_version_including_inside_a_commit() {
    let f = fixture().await;
    let s = stream("pages");
    // Commits: 1..=3, 4, 5..=9, 10..=10.
    for (expected, first, count) in [(0, 1, 3), (3, 4, 1), (4, 5, 5), (9, 10, 1)] {
        f.store.append(append(&s, ExpectedVersion::Exact(expected), bumps(first, count))).await.unwrap();
    }
    let versions = |page: &strata_core::EventPage| page.events.iter().map(|e| e.version).collect::<Vec<_>>();

    let page = f.store.read(&s, 1, 4).await.unwrap();
    assert_eq!((versions(&page), page.next_version), (vec![1, 2, 3, 4], Some(5)));
    let page = f.store.read(&s, 2, 2).await.unwrap();
    assert_eq!((versions(&page), page.next_version), (vec![2, 3], Some(4)));
    let page = f.store.read(&s, 6, 3).await.unwrap();
    assert_eq!((versions(&page), page.next_version), (vec![6, 7, 8], Some(9)));
    let page = f.store.read(&s, 7, 100).await.unwrap();
    assert_eq!((versions(&page), page.next_version), (vec![7, 8, 9, 10], None));
    let page = f.store.read(&s, 11, 5).await.unwrap();
    assert_eq!((versions(&page), page.next_version), (vec![], None));

    // Following next_version from 1 with odd page sizes visits every version once.
    let mut seen = Vec::new();
    let mut next = Some(1);
    while let Some(from) = next {
        let page = f.store.read(&s, from, 3).await.unwrap();
        seen.extend(versions(&page));
        next = page.next_version;
    }
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    assert!(matches!(f.store.read(&s, 1, 0).await, Err(Error::InvalidRequest(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_over_three_megabytes_loads_and_reads_completely_across_pages() {
    let f = fixture().await;
    let s = stream("big");
    let blob = "x".repeat(300 * 1024);
    // 11 commits of one ~300 KB event: ~3.3 MB, more than three times DynamoDB's 1 MB page.
    for version in 1..=11u64 {
        let request =
            append(&s, ExpectedVersion::Exact(version - 1), vec![event(json!({"n": version, "blob": blob}))]);
        f.store.append_after_load(request).await.unwrap();
    }
    f.counter.reset();

    let loaded = f.store.load(&s, SCHEMA).await.unwrap();

    let versions: Vec<u64> = loaded.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=11).collect::<Vec<_>>());
    assert!(loaded.events.iter().all(|e| e.payload["blob"].as_str() == Some(blob.as_str())));
    // DynamoDB ends a Query page once it has read 1 MB, so a page holds at most 1 MB plus the item
    // that crossed the limit (engines differ on whether it is included: moto leaves it for the next
    // page, DynamoDB Local returns it): 3.3 MB of items take at least three pages, and every version
    // above arriving means each LastEvaluatedKey was followed.
    let counts = f.counter.take();
    assert!(counts.calls("Query") >= 3, "LastEvaluatedKey was followed: {counts}");

    let page = f.store.read(&s, 2, 100).await.unwrap();
    let versions: Vec<u64> = page.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, (2..=11).collect::<Vec<_>>());
    assert_eq!(page.next_version, None);
    // One Query (limit 1) for the commit below version 2, then 3 MB across at least three pages.
    assert!(f.counter.take().calls("Query") >= 4, "3 MB read across pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_over_400_kb_is_refused_before_any_call() {
    let f = fixture().await;
    let s = stream("too-big");
    let blob = "y".repeat(210 * 1024);
    let events = vec![event(json!({ "blob": blob })), event(json!({ "blob": blob }))];

    let result = f.store.append_after_load(append(&s, ExpectedVersion::NoStream, events)).await;

    match result {
        Err(Error::TooLarge { bytes, limit, .. }) => {
            assert_eq!(limit, 400 * 1024);
            assert!(bytes > limit);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(f.counter.take().total_calls(), 0, "nothing was sent");
    assert_eq!(f.store.head(&s).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_retry_after_a_lost_answer_returns_the_commit_instead_of_writing_twice() {
    let f = fixture().await;
    let s = stream("lost-answer");
    f.store.append(append(&s, ExpectedVersion::NoStream, bumps(1, 1))).await.unwrap();
    let exact = append(&s, ExpectedVersion::Exact(1), bumps(2, 2));
    let any = append(&s, ExpectedVersion::Any, bumps(4, 1));
    let first = f.store.append(exact.clone()).await.unwrap();
    let second = f.store.append(any.clone()).await.unwrap();

    // The same requests again, as a caller does when the answer never arrived.
    assert_eq!(f.store.append(any).await.unwrap(), second, "Any: the newest commit is ours");
    assert_eq!(f.store.append(exact).await.unwrap(), first, "Exact(1): the commit at 2 is ours");
    assert_eq!(f.store.head(&s).await.unwrap(), 4, "nothing written twice");
    // Someone else's request at a stale version is still a conflict.
    let stale = f.store.append(append(&s, ExpectedVersion::Exact(1), bumps(2, 1))).await;
    assert!(matches!(stale, Err(Error::Conflict { actual: Some(4), .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_must_end_a_commit_and_an_old_format_snapshot_does_not_block_appends() {
    use strata_core::{Snapshot, SnapshotStore};
    let f = fixture().await;
    let s = stream("snap-check");
    f.store.append(append(&s, ExpectedVersion::NoStream, bumps(1, 3))).await.unwrap();
    let snapshot = |version| Snapshot {
        stream: s.clone(),
        version,
        state_schema_version: 1,
        state: json!({}),
        taken_at: chrono::Utc::now(),
    };
    for version in [0, 2, 4] {
        let result = f.store.save_snapshot(snapshot(version)).await;
        assert!(matches!(result, Err(Error::InvalidRequest(_))), "version {version}: {result:?}");
    }
    f.store.save_snapshot(snapshot(3)).await.unwrap();
    f.store.save_snapshot(snapshot(3)).await.unwrap(); // replacing one is fine

    // A snapshot item missing fields (an older format): head and appends read only its key.
    f.store
        .client()
        .update_item()
        .table_name(f.store.table())
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(strata_dynamodb::keys::stream_pk(&s)))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(strata_dynamodb::keys::snapshot_sk(3)))
        .update_expression("REMOVE taken_at, #state")
        .expression_attribute_names("#state", "state")
        .send()
        .await
        .unwrap();
    assert_eq!(f.store.head(&s).await.unwrap(), 3);
    f.store.append(append(&s, ExpectedVersion::Exact(3), bumps(4, 1))).await.unwrap();
    assert_eq!(
        f.store.load(&s, SCHEMA).await.unwrap().events.len(),
        4,
        "the unreadable snapshot is read past"
    );
}
