//! The stream cache: a warm repository decides on the state it holds and writes at once; a stale
//! state costs a lost write and a catch-up, never a commit on an old head.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use strata_core::conformance::{CountingStore, Counts};
use strata_core::fixture::tally::{Tally, TallyCommand};
use strata_core::{
    CachePolicy, CommandContext, CommandError, Error, EventStore, ExpectedVersion, InMemoryStore, Repository,
    StreamId,
};

fn stream(id: &str) -> StreamId {
    StreamId::new("t1", "tally", id).unwrap()
}

fn bump(times: u32) -> TallyCommand {
    TallyCommand::Bump { times }
}

fn cached(store: &InMemoryStore) -> Repository<Tally, CountingStore<'_, InMemoryStore>> {
    Repository::new(CountingStore::new(store)).with_stream_cache(CachePolicy::entries(100))
}

async fn seen(store: &InMemoryStore, s: &StreamId) -> Vec<u64> {
    let repo = Repository::<Tally, _>::new(store.clone());
    repo.load(s).await.unwrap().state.seen
}

#[tokio::test]
async fn a_warm_stream_is_written_without_a_read() {
    let store = InMemoryStore::new();
    let repo = cached(&store);
    let s = stream("warm");
    repo.execute(&s, &bump(2), CommandContext::default()).await.unwrap();
    assert_eq!(repo.store().take().loads, 1, "the first command loads");
    for expected in [3, 4, 5] {
        let outcome = repo.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
        assert_eq!(outcome.version, expected);
    }
    assert_eq!(repo.store().take(), Counts::default(), "nothing read on the warm path");
    assert_eq!(seen(&store, &s).await, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn a_stale_cache_catches_up_from_the_winning_commit_and_never_commits_on_an_old_head() {
    let store = InMemoryStore::new();
    let warm = cached(&store);
    let other = Repository::<Tally, _>::new(store.clone());
    let s = stream("stale");
    warm.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    other.execute(&s, &bump(2), CommandContext::default()).await.unwrap();
    warm.store().take();
    // Decided on version 1, lost to the commit of versions 2..=3, folded it in, decided again.
    let outcome = warm.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    assert_eq!(outcome.version, 4);
    assert_eq!(warm.store().take(), Counts::default(), "the winner came back with the lost write");
    assert_eq!(seen(&store, &s).await, [1, 2, 3, 4], "every event decided on the state before it");
    // Two commits behind: the winner, then a read of the rest after a second loss.
    other.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    other.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    let outcome = warm.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    assert_eq!(outcome.version, 7);
    assert_eq!(seen(&store, &s).await, [1, 2, 3, 4, 5, 6, 7]);
}

#[tokio::test]
async fn a_command_that_does_not_retry_is_not_refused_for_a_stale_cache() {
    let store = InMemoryStore::new();
    let warm = cached(&store);
    let other = Repository::<Tally, _>::new(store.clone());
    let s = stream("strict");
    warm.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    other.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    let outcome = warm.execute(&s, &TallyCommand::BumpStrict, CommandContext::default()).await.unwrap();
    assert_eq!(outcome.version, 3);
}

#[tokio::test]
async fn rejections_no_ops_and_expectations_are_answered_from_the_stored_head() {
    let store = InMemoryStore::new();
    let warm = cached(&store);
    let other = Repository::<Tally, _>::new(store.clone());
    let s = stream("checked");
    warm.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    other.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    warm.store().take();
    let refused = warm.execute(&s, &TallyCommand::Refuse, CommandContext::default()).await;
    assert!(matches!(refused, Err(CommandError::Rejected(_))));
    assert_eq!(warm.store().take().loads, 1, "a rejection on a cached state is decided again on a load");
    let nothing = warm.execute(&s, &bump(0), CommandContext::default()).await.unwrap();
    assert_eq!(nothing.version, 2, "the stored head, not the cached one");
    // The cache is at 2 now; the store moves to 3; If-Match: 3 holds against the store.
    other.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    let context = CommandContext { expected_version: Some(ExpectedVersion::Exact(3)), ..Default::default() };
    assert_eq!(warm.execute(&s, &bump(1), context).await.unwrap().version, 4);
    let context = CommandContext { expected_version: Some(ExpectedVersion::Exact(3)), ..Default::default() };
    let stale = warm.execute(&s, &bump(1), context).await;
    assert!(matches!(stale, Err(CommandError::Failed(Error::Conflict { actual: Some(4), .. }))), "{stale:?}");
}

#[tokio::test]
async fn the_cache_holds_at_most_its_entries_and_drops_the_least_recently_used() {
    let store = InMemoryStore::new();
    let repo =
        Repository::<Tally, _>::new(CountingStore::new(&store)).with_stream_cache(CachePolicy::entries(2));
    for id in ["a", "b", "c"] {
        repo.execute(&stream(id), &bump(1), CommandContext::default()).await.unwrap();
        assert!(repo.cached_streams() <= 2);
    }
    assert_eq!(repo.cached_streams(), 2);
    repo.store().take();
    repo.execute(&stream("c"), &bump(1), CommandContext::default()).await.unwrap();
    repo.execute(&stream("b"), &bump(1), CommandContext::default()).await.unwrap();
    assert_eq!(repo.store().take().loads, 0, "b and c stayed");
    repo.execute(&stream("a"), &bump(1), CommandContext::default()).await.unwrap();
    assert_eq!(repo.store().take().loads, 1, "a was dropped first");
}

#[tokio::test]
async fn an_entry_older_than_its_max_age_is_not_used() {
    let store = InMemoryStore::new();
    let repo = Repository::<Tally, _>::new(CountingStore::new(&store))
        .with_stream_cache(CachePolicy::entries(10).max_age(Duration::from_nanos(1)));
    let s = stream("aged");
    repo.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    std::thread::sleep(Duration::from_millis(1));
    repo.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    assert_eq!(repo.store().take().loads, 2);
}

#[tokio::test]
async fn cached_writers_racing_on_one_stream_end_contiguous() {
    let store = InMemoryStore::new();
    let s = stream("race");
    let (a, b, c, d) = (cached(&store), cached(&store), cached(&store), cached(&store));
    tokio::join!(write_25(&a, &s), write_25(&b, &s), write_25(&c, &s), write_25(&d, &s));
    assert_eq!(seen(&store, &s).await, (1..=100).collect::<Vec<u64>>());
    assert_eq!(store.read(&s, 1, 1000).await.unwrap().events.len(), 100);
}

async fn write_25(repo: &Repository<Tally, CountingStore<'_, InMemoryStore>>, s: &StreamId) {
    for _ in 0..25 {
        repo.execute(s, &bump(1), CommandContext::default()).await.unwrap();
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn time_travel_starts_from_the_newest_snapshot_at_or_before_the_version() {
    let store = InMemoryStore::new();
    let repo = Repository::<Tally, _>::new(CountingStore::new(&store))
        .with_snapshot_policy(strata_core::SnapshotPolicy::every(10).keep(100));
    let s = stream("travel");
    for _ in 0..35 {
        repo.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    }
    repo.store().take();
    let at = repo.load_at_version(&s, 27).await.unwrap();
    assert_eq!((at.version, at.state.seen.clone()), (27, (1..=27).collect::<Vec<u64>>()));
    let counts = repo.store().take();
    assert_eq!((counts.loads, counts.events_loaded, counts.reads), (1, 7, 0), "from the snapshot at 20");
    let missing = repo.load_at_version(&s, 36).await;
    assert!(matches!(missing, Err(Error::VersionNotFound { current: 35, .. })), "{missing:?}");
}

#[tokio::test]
async fn time_travel_by_time_starts_from_the_newest_snapshot_of_commits_made_by_then() {
    let store = InMemoryStore::new();
    let repo = Repository::<Tally, _>::new(CountingStore::new(&store))
        .with_snapshot_policy(strata_core::SnapshotPolicy::every(10).keep(100));
    let s = stream("travel-time");
    for _ in 0..25 {
        repo.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    }
    // Every commit after this instant is later than it, and so is every snapshot taken after it.
    let at = chrono::Utc::now();
    while chrono::Utc::now() <= at {
        tokio::task::yield_now().await;
    }
    for _ in 0..10 {
        repo.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    }
    repo.store().take();
    let then = repo.load_at_time(&s, at).await.unwrap();
    assert_eq!((then.version, then.state.seen.clone()), (25, (1..=25).collect::<Vec<u64>>()));
    let counts = repo.store().take();
    assert_eq!(
        (counts.loads, counts.events_loaded, counts.reads),
        (1, 5, 0),
        "from the snapshot at 20, not 30"
    );
    let before = repo.load_at_time(&s, at - chrono::Duration::days(1)).await.unwrap();
    assert_eq!(before.version, 0);
}

#[tokio::test]
async fn time_travel_by_time_uses_a_snapshot_taken_later_of_commits_made_by_then() {
    let store = InMemoryStore::new();
    let repo = Repository::<Tally, _>::new(CountingStore::new(&store));
    let s = stream("travel-later");
    for _ in 0..5 {
        repo.execute(&s, &bump(1), CommandContext::default()).await.unwrap();
    }
    let at = chrono::Utc::now();
    while chrono::Utc::now() <= at {
        tokio::task::yield_now().await;
    }
    // Taken after `at`, of a state whose commits were all made by then.
    repo.take_snapshot(&s).await.unwrap();
    repo.store().take();
    let then = repo.load_at_time(&s, at).await.unwrap();
    assert_eq!((then.version, then.state.seen), (5, vec![1, 2, 3, 4, 5]));
    let counts = repo.store().take();
    assert_eq!((counts.loads, counts.events_loaded, counts.reads), (1, 0, 0), "from the snapshot alone");
}

#[tokio::test]
async fn a_cached_state_reads_a_returning_subjects_new_data_and_never_copies_the_old() {
    use strata_core::Personal;
    use strata_core::crypto::{CacheLimits, CachedKeys};
    use strata_core::fixture::profile::{Profile, ProfileCommand, ProfileEvent};
    use strata_core::{FieldCipher, LocalKeys};

    let (store, shared) = (InMemoryStore::new(), LocalKeys::new());
    let process = || FieldCipher::new(CachedKeys::new(shared.clone(), CacheLimits::default()));
    let s = StreamId::new("acme", "profile", "p-1").unwrap();
    let rename = |name: &str| ProfileCommand::Rename { subject: "s-1".into(), names: vec![name.into()] };
    let ctx = CommandContext::default;
    // Process A keeps the stream warm.
    let a = Repository::<Profile, _>::new(store.clone())
        .with_cipher(process())
        .with_stream_cache(CachePolicy::entries(10));
    a.execute(&s, &rename("Ada"), ctx()).await.unwrap();
    // Process B forgets the subject, who comes back: B renames them under the new key.
    let b_cipher = process();
    b_cipher.keys().forget("acme", "s-1").await.unwrap();
    let b = Repository::<Profile, _>::new(store.clone()).with_cipher(b_cipher);
    b.execute(&s, &rename("Grace"), ctx()).await.unwrap();
    // A's Echo copies the name from its state: it loses the write to B's commit, folds it in (the new
    // name opens under the new key), and never seals the old name under the new key.
    assert_eq!(a.execute(&s, &ProfileCommand::Echo, ctx()).await.unwrap().version, 3);
    let fresh = Repository::<Profile, _>::new(store.clone()).with_cipher(process());
    let events = fresh.read(&s, 1, 10).await.unwrap().events;
    let decoded: Vec<ProfileEvent> = events.iter().map(|e| fresh.decode(e).unwrap()).collect();
    assert_eq!(
        decoded,
        [
            ProfileEvent::Renamed { subject: "s-1".into(), name: Personal::Redacted },
            ProfileEvent::Renamed { subject: "s-1".into(), name: Personal::Known("Grace".into()) },
            ProfileEvent::Echoed { subject: "s-1".into(), name: Personal::Known("Grace".into()) },
        ]
    );
}
