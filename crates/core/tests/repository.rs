//! Repository behaviour on the in-memory store: loads, snapshots, conflicts, retries, idempotency,
//! time travel, upcasting and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::json;
use strata_core::fixture::tally::{Refused, Tally, TallyCommand};
use strata_core::{
    Aggregate, AppendRequest, CommandContext, CommandError, Error, EventId, EventStore, ExpectedVersion,
    IdempotencyStore, InMemoryStore, Metadata, NewEvent, Repository, RetryPolicy, SnapshotPolicy,
    SnapshotStore, StreamId, UpcasterChain,
};

fn stream(id: &str) -> StreamId {
    StreamId::new("t1", "tally", id).unwrap()
}

fn bump(times: u32) -> TallyCommand {
    TallyCommand::Bump { times }
}

fn ctx() -> CommandContext {
    CommandContext::default()
}

fn raw(event_type: &str, schema_version: u32, payload: serde_json::Value) -> NewEvent {
    NewEvent::new(event_type, schema_version, payload, Metadata::new("c"))
}

async fn append_raw(store: &InMemoryStore, s: &StreamId, events: Vec<NewEvent>) {
    let request =
        AppendRequest { stream: s.clone(), expected: ExpectedVersion::Any, events, idempotency: None };
    store.append(request).await.unwrap();
}

#[tokio::test]
async fn commands_commit_contiguous_versions_and_metadata() {
    let repo = Repository::<Tally, _>::new(InMemoryStore::new());
    let s = stream("a");
    let context =
        CommandContext { correlation_id: Some("corr-1".into()), actor: Some("ada".into()), ..ctx() };
    let first = repo.execute(&s, &bump(3), context).await.unwrap();
    assert_eq!((first.version, first.event_ids.len()), (3, 3));
    let second = repo.execute(&s, &bump(2), ctx()).await.unwrap();
    assert_eq!(second.version, 5);
    let page = repo.store().read(&s, 1, 100).await.unwrap();
    let versions: Vec<u64> = page.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    assert_eq!(page.events[0].metadata.correlation_id, "corr-1");
    assert_eq!(page.events[0].metadata.actor.as_deref(), Some("ada"));
    assert_eq!(page.events[0].event_id, first.event_ids[0]);
    let loaded = repo.load(&s).await.unwrap();
    assert_eq!(loaded.state.seen, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn a_command_that_decides_nothing_writes_nothing() {
    let repo = Repository::<Tally, _>::new(InMemoryStore::new());
    let s = stream("noop");
    let outcome = repo.execute(&s, &bump(0), ctx()).await.unwrap();
    assert_eq!((outcome.version, outcome.event_ids.len()), (0, 0));
    assert_eq!(repo.store().feed_since(0).0.len(), 0);
}

#[tokio::test]
async fn domain_rejection_is_typed_and_writes_nothing() {
    let repo = Repository::<Tally, _>::new(InMemoryStore::new());
    let s = stream("r");
    let err = repo.execute(&s, &TallyCommand::Refuse, ctx()).await.unwrap_err();
    assert!(matches!(err, CommandError::Rejected(Refused)));
    assert_eq!(repo.load(&s).await.unwrap().version, 0);
}

#[tokio::test]
async fn expected_version_inside_a_multi_event_commit_is_a_conflict() {
    let repo = Repository::<Tally, _>::new(InMemoryStore::new());
    let s = stream("mid");
    repo.execute(&s, &bump(1), ctx()).await.unwrap();
    repo.execute(&s, &bump(3), ctx()).await.unwrap(); // commit 2..4
    for stale in [2, 3] {
        let context = CommandContext { expected_version: Some(ExpectedVersion::Exact(stale)), ..ctx() };
        let err = repo.execute(&s, &bump(1), context).await.unwrap_err();
        assert!(
            matches!(err.as_error(), Some(Error::Conflict { actual: Some(4), .. })),
            "expected {stale}: {err:?}"
        );
    }
    assert_eq!(repo.load(&s).await.unwrap().version, 4, "nothing written");
    let context = CommandContext { expected_version: Some(ExpectedVersion::Exact(4)), ..ctx() };
    assert_eq!(repo.execute(&s, &bump(1), context).await.unwrap().version, 5);
}

#[tokio::test]
async fn concurrent_writers_with_retry_end_contiguous() {
    let repo = Arc::new(
        Repository::<Tally, _>::new(InMemoryStore::new())
            .with_snapshot_policy(SnapshotPolicy::every(50))
            .with_retry_policy(RetryPolicy { max_attempts: 200, ..RetryPolicy::default() }),
    );
    let s = stream("race");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (repo, s) = (Arc::clone(&repo), s.clone());
            tokio::spawn(async move {
                for _ in 0..50 {
                    repo.execute(&s, &bump(1), ctx()).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let loaded = repo.load(&s).await.unwrap();
    assert_eq!(loaded.version, 800);
    assert_eq!(loaded.state.seen, (1..=800).collect::<Vec<_>>());
    let mut ids: Vec<EventId> = Vec::new();
    let mut next = Some(1);
    while let Some(from) = next {
        let page = repo.store().read(&s, from, 64).await.unwrap();
        ids.extend(page.events.iter().map(|e| e.event_id));
        next = page.next_version;
    }
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (800, 800));
}

#[tokio::test]
async fn without_retry_a_stale_writer_gets_conflict() {
    let store = InMemoryStore::new();
    let repo = Repository::<Tally, _>::new(store.clone());
    let s = stream("strict");
    repo.execute(&s, &bump(1), ctx()).await.unwrap();
    // A second writer commits between our load and append: simulate with a raw append at version 1.
    let request = AppendRequest {
        stream: s.clone(),
        expected: ExpectedVersion::Exact(1),
        events: vec![raw("Bumped", 1, json!({"n": 2}))],
        idempotency: None,
    };
    store.append(request.clone()).await.unwrap();
    // Another request at the same version (new event ids; the same request again is a retry, which
    // gets its commit back).
    let stale = AppendRequest { events: vec![raw("Bumped", 1, json!({"n": 2}))], ..request };
    let err = store.append(stale).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { expected: ExpectedVersion::Exact(1), actual: Some(2), .. }));
    // BumpStrict is never retried: a conflict from the store surfaces as is.
    let context = CommandContext { expected_version: Some(ExpectedVersion::Exact(1)), ..ctx() };
    let err = repo.execute(&s, &TallyCommand::BumpStrict, context).await.unwrap_err();
    assert!(err.as_error().is_some_and(Error::is_conflict));
}

#[tokio::test]
async fn snapshot_plus_tail_is_one_load_and_old_snapshots_are_pruned() {
    let store = InMemoryStore::new();
    let repo =
        Repository::<Tally, _>::new(store.clone()).with_snapshot_policy(SnapshotPolicy::every(10).keep(2));
    let s = stream("snap");
    for _ in 0..45 {
        repo.execute(&s, &bump(1), ctx()).await.unwrap();
    }
    assert_eq!(store.snapshot_versions(&s), [30, 40]);
    let loaded = store.load(&s, Tally::STATE_SCHEMA_VERSION).await.unwrap();
    assert_eq!(loaded.snapshot.as_ref().map(|snap| snap.version), Some(40));
    assert_eq!(loaded.events.iter().map(|e| e.version).collect::<Vec<_>>(), [41, 42, 43, 44, 45]);
    assert_eq!(repo.load(&s).await.unwrap().state.seen, (1..=45).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_corrupt_snapshot_is_ignored_replayed_and_replaced() {
    let store = InMemoryStore::new();
    let repo = Repository::<Tally, _>::new(store.clone()).with_snapshot_policy(SnapshotPolicy::every(10));
    let s = stream("corrupt");
    for _ in 0..12 {
        repo.execute(&s, &bump(1), ctx()).await.unwrap();
    }
    assert!(store.overwrite_snapshot_state(&s, 10, json!({"count": "not a number"})));
    let loaded = repo.load(&s).await.unwrap();
    assert_eq!(loaded.state.seen, (1..=12).collect::<Vec<_>>());
    assert_eq!(store.snapshot_versions(&s), [10, 12], "a fresh snapshot is written at the head");
}

#[tokio::test]
async fn a_snapshot_of_an_older_state_schema_is_ignored() {
    let store = InMemoryStore::new();
    let repo = Repository::<Tally, _>::new(store.clone()).with_snapshot_policy(SnapshotPolicy::every(5));
    let s = stream("schema");
    for _ in 0..5 {
        repo.execute(&s, &bump(1), ctx()).await.unwrap();
    }
    // A snapshot whose state decodes but claims to be of a lie: fake count, old schema version.
    let mut snapshot = store.load(&s, Tally::STATE_SCHEMA_VERSION).await.unwrap().snapshot.unwrap();
    snapshot.state = json!({"count": 999, "seen": []});
    snapshot.state_schema_version = 0;
    let written = strata_core::SnapshotStore::save_snapshot(&store, snapshot).await.unwrap();
    assert!(!written, "an older state schema never replaces a newer one");
    assert_eq!(repo.load(&s).await.unwrap().state.count, 5);
}

#[tokio::test]
async fn idempotent_repeat_returns_the_first_outcome_and_writes_nothing() {
    let store = InMemoryStore::new();
    let repo = Repository::<Tally, _>::new(store.clone());
    let s = stream("idem");
    let keyed = || CommandContext { idempotency_key: Some("key-1".into()), ..ctx() };
    let first = repo.execute(&s, &bump(2), keyed()).await.unwrap();
    let commits_after_first = store.feed_since(0).0.len();
    let again = repo.execute(&s, &bump(2), keyed()).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(store.feed_since(0).0.len(), commits_after_first, "no second write");
    let err = repo.execute(&s, &bump(3), keyed()).await.unwrap_err();
    assert!(matches!(err.as_error(), Some(Error::IdempotencyKeyReused { key }) if key == "key-1"));
    let bad = CommandContext { idempotency_key: Some("a#b".into()), ..ctx() };
    assert!(matches!(
        repo.execute(&s, &bump(1), bad).await.unwrap_err().as_error(),
        Some(Error::InvalidKey(_))
    ));
}

#[tokio::test]
async fn concurrent_requests_with_one_key_write_once() {
    let store = InMemoryStore::new();
    let repo = Arc::new(Repository::<Tally, _>::new(store.clone()));
    let s = stream("idem-race");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (repo, s) = (Arc::clone(&repo), s.clone());
            tokio::spawn(async move {
                let context = CommandContext { idempotency_key: Some("same".into()), ..ctx() };
                repo.execute(&s, &bump(1), context).await.unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert!(outcomes.iter().all(|o| *o == outcomes[0]));
    assert_eq!(repo.load(&s).await.unwrap().version, 1);
}

#[tokio::test]
async fn a_same_key_request_that_lost_the_race_gets_the_first_outcome() {
    let store = InMemoryStore::new();
    let s = stream("idem-lost");
    let keyed = || CommandContext {
        idempotency_key: Some("k".into()),
        expected_version: Some(ExpectedVersion::Exact(0)),
        ..ctx()
    };
    let winner = Repository::<Tally, _>::new(store.clone());
    let first = winner.execute(&s, &TallyCommand::BumpStrict, keyed()).await.unwrap();
    // The repeat does not read the key's record first: it loads the winner's events, its own attempt
    // conflicts (If-Match 0, never retried), yet it owes the caller the first outcome.
    let loser = Repository::<Tally, _>::new(store.clone());
    let second = loser.execute(&s, &TallyCommand::BumpStrict, keyed()).await.unwrap();
    assert_eq!(second, first);
    assert_eq!(store.feed_since(0).0.len(), 1, "one write in all");
}

#[tokio::test]
async fn time_travel_by_version_and_timestamp() {
    let repo = Repository::<Tally, _>::new(InMemoryStore::new());
    let s = stream("tt");
    repo.execute(&s, &bump(2), ctx()).await.unwrap();
    let between = chrono::Utc::now();
    // Commit times come from the clock; wait until it has moved past `between`.
    while chrono::Utc::now() <= between {
        tokio::task::yield_now().await;
    }
    repo.execute(&s, &bump(3), ctx()).await.unwrap();
    assert_eq!(repo.load_at_version(&s, 0).await.unwrap().state.count, 0);
    assert_eq!(repo.load_at_version(&s, 3).await.unwrap().state.seen, [1, 2, 3]);
    let err = repo.load_at_version(&s, 6).await.unwrap_err();
    assert!(matches!(err, Error::VersionNotFound { requested: 6, current: 5, .. }));
    assert_eq!(repo.load_at_time(&s, between).await.unwrap().version, 2);
    assert_eq!(repo.load_at_time(&s, chrono::Utc::now()).await.unwrap().version, 5);
}

#[tokio::test]
async fn bad_stored_data_gives_typed_errors() {
    let store = InMemoryStore::new();
    let repo = Repository::<Tally, _>::new(store.clone());
    let unknown = stream("unknown");
    append_raw(&store, &unknown, vec![raw("Exploded", 1, json!({}))]).await;
    assert!(
        matches!(repo.load(&unknown).await, Err(Error::UnknownEventType { event_type }) if event_type == "Exploded")
    );
    let bad = stream("bad-payload");
    append_raw(&store, &bad, vec![raw("Bumped", 1, json!({"n": "seven"}))]).await;
    assert!(matches!(repo.load(&bad).await, Err(Error::Decode { .. })));
    let future = stream("future");
    append_raw(&store, &future, vec![raw("Bumped", 9, json!({"n": 1}))]).await;
    assert!(matches!(
        repo.load(&future).await,
        Err(Error::SchemaVersionMismatch { stored: 9, current: 1, .. })
    ));
}

#[tokio::test]
async fn wrong_category_is_refused() {
    let repo = Repository::<Tally, _>::new(InMemoryStore::new());
    let other = StreamId::new("t1", "order", "1").unwrap();
    assert!(matches!(repo.load(&other).await, Err(Error::WrongCategory { expected: "tally", .. })));
    let err = repo.execute(&other, &bump(1), ctx()).await.unwrap_err();
    assert!(matches!(err.as_error(), Some(Error::WrongCategory { .. })));
}

#[tokio::test]
async fn upcasters_apply_on_load_and_read() {
    let store = InMemoryStore::new();
    let chain = UpcasterChain::builder()
        .upcast("Counted", 1, "Bumped", 1, |v| Ok(json!({ "n": v["value"] })))
        .build()
        .unwrap();
    let repo = Repository::<Tally, _>::new(store.clone()).with_upcasters(chain);
    let s = stream("old");
    append_raw(&store, &s, vec![raw("Counted", 1, json!({"value": 1})), raw("Bumped", 1, json!({"n": 2}))])
        .await;
    assert_eq!(repo.load(&s).await.unwrap().state.seen, [1, 2]);
    let page = repo.read(&s, 1, 10).await.unwrap();
    assert_eq!(page.events[0].event_type, "Bumped");
    assert_eq!(page.events[0].payload, json!({"n": 1}));
}

/// A store on which another writer commits one event between a command's load and its append, the
/// first `races` times; counts the command's appends. The conflict comes from the store's own
/// conditional write, not from an `If-Match` the repository checks before writing.
#[derive(Clone)]
struct RacedOnAppend {
    inner: InMemoryStore,
    races: Arc<std::sync::atomic::AtomicU32>,
    appends: Arc<std::sync::atomic::AtomicU32>,
}

impl RacedOnAppend {
    fn new(races: u32) -> Self {
        Self { inner: InMemoryStore::new(), races: Arc::new(races.into()), appends: Arc::default() }
    }

    fn appends(&self) -> u32 {
        self.appends.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn commit(&self, request: AppendRequest) -> Result<strata_core::Commit, Error> {
        use std::sync::atomic::Ordering::SeqCst;
        self.appends.fetch_add(1, SeqCst);
        if self.races.fetch_update(SeqCst, SeqCst, |left| left.checked_sub(1)).is_ok() {
            append_raw(&self.inner, &request.stream, vec![raw("Bumped", 1, json!({"n": 99}))]).await;
        }
        self.inner.append(request).await
    }
}

impl EventStore for RacedOnAppend {
    async fn append(&self, request: AppendRequest) -> Result<strata_core::Commit, Error> {
        self.commit(request).await
    }
    async fn append_after_load(&self, request: AppendRequest) -> Result<strata_core::Commit, Error> {
        self.commit(request).await
    }
    async fn read(&self, s: &StreamId, from: u64, limit: usize) -> Result<strata_core::EventPage, Error> {
        self.inner.read(s, from, limit).await
    }
    async fn load(&self, s: &StreamId, schema: u32) -> Result<strata_core::LoadedStream, Error> {
        self.inner.load(s, schema).await
    }
}

impl SnapshotStore for RacedOnAppend {
    async fn save_snapshot(&self, snapshot: strata_core::Snapshot) -> Result<bool, Error> {
        self.inner.save_snapshot(snapshot).await
    }
    async fn prune_snapshots(&self, s: &StreamId, keep: usize, schema: u32) -> Result<usize, Error> {
        self.inner.prune_snapshots(s, keep, schema).await
    }
}

impl IdempotencyStore for RacedOnAppend {
    async fn get_record(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<strata_core::IdempotencyRecord>, Error> {
        self.inner.get_record(tenant, key).await
    }
    async fn put_record(&self, record: strata_core::IdempotencyRecord) -> Result<(), Error> {
        self.inner.put_record(record).await
    }
    async fn delete_record(&self, tenant: &str, key: &str, request_hash: &str) -> Result<(), Error> {
        self.inner.delete_record(tenant, key, request_hash).await
    }
}

#[tokio::test]
async fn a_conflict_from_the_stores_write_is_retried_only_when_the_command_allows_it() {
    let s = stream("raced");
    // Never retried: one append, and the store's conflict is what the caller gets.
    let store = RacedOnAppend::new(1);
    append_raw(&store.inner, &s, vec![raw("Bumped", 1, json!({"n": 1}))]).await;
    let repo = Repository::<Tally, _>::new(store.clone());
    let err = repo.execute(&s, &TallyCommand::BumpStrict, ctx()).await.unwrap_err();
    assert!(
        matches!(
            err.as_error(),
            Some(Error::Conflict { expected: ExpectedVersion::Exact(1), actual: Some(2), .. })
        ),
        "{err:?}"
    );
    assert_eq!(store.appends(), 1, "a command that must not be retried is not");
    assert_eq!(repo.load(&s).await.unwrap().state.seen, [1, 99], "only the other writer's event");

    // The same race, a command that may be retried: decided again on the reloaded stream.
    let store = RacedOnAppend::new(1);
    append_raw(&store.inner, &s, vec![raw("Bumped", 1, json!({"n": 1}))]).await;
    let repo = Repository::<Tally, _>::new(store.clone());
    let outcome = repo.execute(&s, &bump(1), ctx()).await.unwrap();
    assert_eq!((outcome.version, store.appends()), (3, 2));
    assert_eq!(repo.load(&s).await.unwrap().state.seen, [1, 99, 3]);
}
