//! The store contract: what every [`EventStore`] + [`SnapshotStore`] must do, as property tests that
//! any implementation runs against itself (feature `conformance`).
//!
//! The in-memory store runs it in `strata-core`'s tests and the DynamoDB store on the emulator in
//! `strata-dynamodb`'s, from this same code, so the two cannot drift: a domain tested in memory
//! behaves the same in production. It covers
//! - appends: the expected-version rules (including a version inside a multi-event commit, always a
//!   conflict that writes nothing), contiguous versions, the events read back exactly;
//! - reads: any page size from any version returns every event once, in order;
//! - catching up: an append after an old head loses (with the commit in its way, as stored, when
//!   the store returns it), and `read_after` returns exactly the events after a commit end;
//! - snapshots: saved only at a version that ends a commit; a load starts from the newest snapshot
//!   of *its* state schema, reading past others; a snapshot of a newer schema is never replaced nor
//!   pruned; pruning keeps the newest `keep`; forward loads agree with loads, and `load_until`
//!   starts from the newest snapshot at or before its version (or earlier), never later;
//! - a rolling deploy through the [`crate::Repository`]: code of two state schemas alternating on
//!   one stream each load from their own snapshot, and neither undoes the other's (see
//!   [`rolling_deploy`]).
//!
//! ```
//! use strata_core::InMemoryStore;
//! use strata_core::conformance::StoreContract;
//!
//! // In a `#[test]` (not inside an async runtime: the contract runs its own).
//! StoreContract::new(8).check(|| async { InMemoryStore::new() }).unwrap();
//! ```
//!
//! Each case writes its own stream (tenant [`TENANT`]), so a store may be shared by many cases; the
//! contract still asks for a fresh store per property, so a backend can give each its own table.

mod appends;
mod rolling_deploy;
mod snapshots;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;

use crate::fixture::tally::Tally;
use crate::{
    Aggregate, AppendRequest, Error, EventEnvelope, EventId, EventStore, ExpectedVersion, IdempotencyStore,
    Metadata, NewEvent, SnapshotStore, StreamId,
};

pub use rolling_deploy::{CountingStore, Counts, TallyNext, rolling_deploy};

/// The tenant of every stream the contract writes.
pub const TENANT: &str = "contract";

/// A broken promise: which property, and the smallest failing case proptest found.
#[derive(Debug, thiserror::Error)]
#[error("store contract broken: {property}: {detail}")]
pub struct Violation {
    /// The property that failed.
    pub property: &'static str,
    /// What failed, with the (shrunk) input.
    pub detail: String,
}

impl Violation {
    pub(crate) fn new(property: &'static str, detail: impl Into<String>) -> Self {
        Self { property, detail: detail.into() }
    }
}

/// Fails the enclosing property case with a message when a condition does not hold.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(::proptest::test_runner::TestCaseError::fail(format!($($msg)+)));
        }
    };
}
pub(crate) use ensure;

/// The store contract, run with a number of cases per property.
#[derive(Debug, Clone, Copy)]
pub struct StoreContract {
    cases: u32,
}

impl StoreContract {
    /// A run of `cases` random cases per property (at least 1): hundreds in memory, a handful
    /// against an emulator, where each case costs tens of requests.
    pub fn new(cases: u32) -> Self {
        Self { cases: cases.max(1) }
    }

    /// Runs every property, each against a fresh store from `new_store`, on a runtime of its own
    /// (so call it from a plain `#[test]`). Returns the first violation, with its shrunk input.
    pub fn check<S, F, Fut>(&self, mut new_store: F) -> Result<(), Violation>
    where
        S: EventStore + SnapshotStore + IdempotencyStore,
        F: FnMut() -> Fut,
        Fut: Future<Output = S>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| Violation::new("runtime", error.to_string()))?;
        let streams = Streams::default();

        let store = runtime.block_on(new_store());
        self.property("appends follow the expected version", appends::ops(), |ops| {
            runtime.block_on(appends::expected_versions(&store, streams.next("append")?, ops))
        })?;
        let store = runtime.block_on(new_store());
        self.property("paged reads cover the stream once, in order", appends::paging(), |case| {
            runtime.block_on(appends::paged_reads(&store, streams.next("read")?, case))
        })?;
        let store = runtime.block_on(new_store());
        self.property(
            "a lost append returns the commit in its way; a catch-up reads the rest",
            snapshots::commits(),
            |sizes| runtime.block_on(appends::catch_ups(&store, streams.next("catch")?, sizes)),
        )?;
        let store = runtime.block_on(new_store());
        self.property("a snapshot must end a commit", snapshots::commits(), |commits| {
            runtime.block_on(snapshots::only_at_commit_ends(&store, streams.next("ends")?, commits))
        })?;
        let store = runtime.block_on(new_store());
        self.property("a load starts at the newest snapshot of its schema", snapshots::saves(), |case| {
            runtime.block_on(snapshots::loads_by_schema(&store, streams.next("schema")?, case))
        })?;
        let store = runtime.block_on(new_store());
        self.property("pruning keeps the newest and every newer schema", snapshots::prunes(), |case| {
            runtime.block_on(snapshots::prune(&store, streams.next("prune")?, case))
        })?;
        let store = runtime.block_on(new_store());
        let stream =
            streams.next("deploy").map_err(|error| Violation::new("rolling deploy", error.to_string()))?;
        runtime.block_on(rolling_deploy(&store, &stream))
    }

    fn property<T: Strategy>(
        &self,
        name: &'static str,
        strategy: T,
        test: impl Fn(T::Value) -> Result<(), TestCaseError>,
    ) -> Result<(), Violation> {
        let config = Config {
            cases: self.cases,
            // Shrinking against an emulator costs a case's requests per step: keep it bounded.
            max_shrink_iters: 256,
            failure_persistence: None,
            ..Config::default()
        };
        TestRunner::new(config).run(&strategy, test).map_err(|error| Violation::new(name, error.to_string()))
    }
}

/// Unique stream ids: every case (and every shrinking step) writes a stream no other case touched.
#[derive(Default)]
struct Streams {
    next: AtomicU64,
}

impl Streams {
    /// A stream of the `tally` category (the rolling deploy runs `Tally` repositories on it), with
    /// an id unique across runs too, for a store that outlives one.
    fn next(&self, prefix: &str) -> Result<StreamId, TestCaseError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{prefix}{n}-{}", ulid::Ulid::new().to_string().to_lowercase());
        StreamId::new(TENANT, Tally::CATEGORY, &id).map_err(|error| TestCaseError::fail(error.to_string()))
    }
}

/// One event, numbered so that payloads differ.
pub(crate) fn event(n: usize) -> NewEvent {
    NewEvent::new("Bumped", 1, json!({ "n": n }), Metadata::new("contract"))
}

/// A store error where none may occur.
pub(crate) fn fail(error: Error) -> TestCaseError {
    TestCaseError::fail(format!("store error: {error}"))
}

/// What [`write_commits`] wrote.
pub(crate) struct Written {
    /// Every event id, in version order (version = index + 1).
    pub(crate) ids: Vec<EventId>,
    /// The last version of each commit, ascending.
    pub(crate) ends: Vec<u64>,
}

impl Written {
    /// The (version, id) of every event after `version`.
    pub(crate) fn after(&self, version: u64) -> Vec<(u64, EventId)> {
        (1..).zip(self.ids.iter().copied()).filter(|(v, _)| *v > version).collect()
    }
}

/// Appends one commit per entry of `sizes`, of that many events.
pub(crate) async fn write_commits<S: EventStore>(
    store: &S,
    stream: &StreamId,
    sizes: &[usize],
) -> Result<Written, TestCaseError> {
    let mut written = Written { ids: Vec::new(), ends: Vec::new() };
    for &size in sizes {
        let events: Vec<NewEvent> = (0..size).map(|i| event(written.ids.len() + i)).collect();
        let head = written.ends.last().copied().unwrap_or(0);
        let expected = if head == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(head) };
        written.ids.extend(events.iter().map(|e| e.event_id));
        let request = AppendRequest { stream: stream.clone(), expected, events, idempotency: None };
        let commit = store.append(request).await.map_err(fail)?;
        written.ends.push(commit.last_version);
    }
    Ok(written)
}

/// The (version, id) of each event.
pub(crate) fn versions_and_ids(events: &[EventEnvelope]) -> Vec<(u64, EventId)> {
    events.iter().map(|e| (e.version, e.event_id)).collect()
}
