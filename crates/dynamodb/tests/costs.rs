//! What a command and a load cost, counted at the SDK: the floor the design promises.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use common::{append, bumps, fixture, stream};
use strata_core::fixture::tally::{Tally, TallyCommand};
use strata_core::{
    Aggregate, CommandContext, EventStore, ExpectedVersion, Repository, Snapshot, SnapshotPolicy,
    SnapshotStore,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_on_an_existing_stream_is_one_query_and_one_put() {
    let f = fixture().await;
    let repo = Repository::<Tally, _>::new(f.store.clone());
    let s = stream("cost-1");
    repo.execute(&s, &TallyCommand::Bump { times: 2 }, CommandContext::default()).await.unwrap();
    f.counter.reset();

    let outcome =
        repo.execute(&s, &TallyCommand::Bump { times: 3 }, CommandContext::default()).await.unwrap();

    assert_eq!(outcome.version, 5);
    let counts = f.counter.take();
    assert_eq!(counts.calls("Query"), 1, "{counts}");
    assert_eq!(counts.calls("PutItem"), 1, "{counts}");
    assert_eq!(counts.total_calls(), 2, "{counts}");
    // The command's load reads eventually consistent (its write's condition is the check).
    assert_eq!((counts.inconsistent_reads, counts.scans), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading_ten_thousand_events_with_a_snapshot_every_hundred_is_one_query() {
    let f = fixture().await;
    let repo = Repository::<Tally, _>::new(f.store.clone()).with_snapshot_policy(SnapshotPolicy::every(100));
    let s = stream("cost-10k");
    // The emulator scans a whole table per Query, so the first 10,000 events are written directly:
    // 100 commits of 100 events, each followed by the snapshot the policy would take.
    for commit in 0..100u64 {
        let first = commit * 100 + 1;
        let request = append(&s, ExpectedVersion::Exact(first - 1), bumps(first, 100));
        f.store.append_after_load(request).await.unwrap();
        let state = Tally { count: first + 99, seen: (1..=first + 99).collect() };
        let snapshot = Snapshot {
            stream: s.clone(),
            version: first + 99,
            state_schema_version: 1,
            state: serde_json::to_value(&state).unwrap(),
            taken_at: chrono::Utc::now(),
        };
        f.store.save_snapshot(snapshot).await.unwrap();
    }
    // Then five commands of 10 events through the repository: no snapshot is due before 10,100.
    for _ in 0..5 {
        repo.execute(&s, &TallyCommand::Bump { times: 10 }, CommandContext::default()).await.unwrap();
    }
    f.counter.reset();

    let loaded = f.store.load(&s, Tally::STATE_SCHEMA_VERSION).await.unwrap();

    let counts = f.counter.take();
    assert_eq!(counts.calls("Query"), 1, "{counts}");
    assert_eq!(counts.total_calls(), 1, "{counts}");
    assert_eq!(counts.inconsistent_reads, 0);
    assert_eq!(loaded.snapshot.as_ref().map(|s| s.version), Some(10_000));
    assert_eq!(loaded.events.len(), 50);
    assert_eq!(loaded.events.first().map(|e| e.version), Some(10_001));

    let state = repo.load(&s).await.unwrap();
    assert_eq!(state.version, 10_050);
    assert_eq!(state.state.count, 10_050);
    assert_eq!(state.state.seen, (1..=10_050).collect::<Vec<_>>());
    assert_eq!(f.counter.take().calls("Query"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_commands_load_reads_inconsistently_and_nothing_scans() {
    let f = fixture().await;
    let repo = Repository::<Tally, _>::new(f.store.clone()).with_snapshot_policy(SnapshotPolicy::every(3));
    let s = stream("consistent");
    for _ in 0..5 {
        repo.execute(&s, &TallyCommand::Bump { times: 1 }, CommandContext::default()).await.unwrap();
    }
    let counts = f.counter.take();
    assert_eq!((counts.inconsistent_reads, counts.scans), (5, 0), "one load per command: {counts}");
    // A command that must not be decided twice, and a rejection, answer from strong reads only.
    repo.execute(&s, &TallyCommand::BumpStrict, CommandContext::default()).await.unwrap();
    assert_eq!(f.counter.take().inconsistent_reads, 0);
    let refused = repo.execute(&s, &TallyCommand::Refuse, CommandContext::default()).await;
    assert!(matches!(refused, Err(strata_core::CommandError::Rejected(_))));
    let counts = f.counter.take();
    assert_eq!((counts.calls("Query"), counts.inconsistent_reads), (2, 1), "decided again: {counts}");
    repo.load(&s).await.unwrap();
    repo.load_at_version(&s, 2).await.unwrap();
    repo.read(&s, 2, 2).await.unwrap();
    f.store.head(&s).await.unwrap();
    let counts = f.counter.take();
    assert!(counts.calls("Query") >= 5, "{counts}");
    assert_eq!((counts.inconsistent_reads, counts.scans), (0, 0), "{counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_loses_its_condition_is_charged_one_unit_and_writes_nothing() {
    let f = fixture().await;
    let s = stream("lost-race");
    f.store.append_after_load(append(&s, ExpectedVersion::Exact(0), bumps(1, 1))).await.unwrap();
    let lost = f.store.append_after_load(append(&s, ExpectedVersion::Exact(0), bumps(1, 1))).await;
    assert!(matches!(lost, Err(strata_core::Error::Conflict { .. })), "{lost:?}");

    let counts = f.counter.take();
    let put = counts.operations["PutItem"];
    assert_eq!((put.calls, put.items_written), (2, 1), "{counts}");
    // The commit (well under 1 KB) is one unit; the failed condition one more.
    assert_eq!((counts.write_units(), counts.items_written()), (2.0, 1), "{counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_by_time_starts_from_the_newest_snapshot_of_commits_made_by_then() {
    let f = fixture().await;
    let repo =
        Repository::<Tally, _>::new(f.store.clone()).with_snapshot_policy(SnapshotPolicy::every(3).keep(5));
    let s = stream("travel-time");
    for _ in 0..7 {
        repo.execute(&s, &TallyCommand::Bump { times: 1 }, CommandContext::default()).await.unwrap();
    }
    // Snapshots at 3 and 6 so far; everything written after `at` is dated after it.
    let at = chrono::Utc::now();
    while chrono::Utc::now() <= at {
        tokio::task::yield_now().await;
    }
    for _ in 0..4 {
        repo.execute(&s, &TallyCommand::Bump { times: 1 }, CommandContext::default()).await.unwrap();
    }
    f.counter.reset();

    let then = repo.load_at_time(&s, at).await.unwrap();

    assert_eq!((then.version, then.state.seen), (7, (1..=7).collect::<Vec<u64>>()));
    let counts = f.counter.take();
    // The index lists the snapshots (eventually consistent: the one at 9 may be missing from it);
    // the one at 9 is read with its commit and passed over (committed after `at`), the one at 6 is
    // used; one Query forward from version 7.
    assert!((3..=4).contains(&counts.calls("Query")), "{counts}");
    assert_eq!((counts.total_calls(), counts.scans), (counts.calls("Query"), 0), "{counts}");
    let replayed = repo.load_at_time(&s, at - chrono::Duration::days(1)).await.unwrap();
    assert_eq!(replayed.version, 0, "nothing was committed a day before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_reader_loads_from_the_writers_snapshot_and_writes_nothing() {
    let f = fixture().await;
    let writer = Repository::<Tally, _>::new(f.store.clone()).with_snapshot_policy(SnapshotPolicy::every(3));
    let s = stream("read-only");
    for _ in 0..10 {
        writer.execute(&s, &TallyCommand::Bump { times: 1 }, CommandContext::default()).await.unwrap();
    }
    // A reader in another process (nothing learned about the stream) that takes no snapshots: the
    // query function. Its first page of two items is the commit at 10 and the snapshot at 9.
    let store =
        strata_dynamodb::DynamoStore::new(f.store.client().clone(), f.store.table()).with_load_page_size(2);
    let reader = Repository::<Tally, _>::new(store).with_snapshot_policy(SnapshotPolicy::read_only());
    f.counter.reset();

    let state = reader.load(&s).await.unwrap();

    assert_eq!((state.version, state.state.seen), (10, (1..=10).collect::<Vec<u64>>()));
    let counts = f.counter.take();
    assert_eq!((counts.calls("Query"), counts.total_calls()), (1, 1), "{counts}");
    assert_eq!((counts.items_read(), counts.write_calls()), (2, 0), "{counts}");
}
