//! A rolling deploy that changes a state schema, through the repository: old and new code
//! alternate on one stream, each must load from its own snapshot, and neither may undo the other's.

use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::Violation;
use crate::fixture::tally::{Refused, Tally, TallyCommand, TallyEvent};
use crate::{
    Aggregate, AppendAttempt, AppendRequest, CommandContext, Commit, Error, EventEnvelope, EventPage,
    EventStore, IdempotencyRecord, IdempotencyStore, LoadedStream, Repository, Snapshot, SnapshotPolicy,
    SnapshotStore, StreamId,
};

/// [`Tally`] as the next release of its code has it: the same category, commands and events, and
/// state schema 2, serialized differently (so neither schema's state decodes as the other's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TallyNext {
    /// The tally, one level down.
    pub tally: Tally,
}

impl Aggregate for TallyNext {
    const CATEGORY: &'static str = Tally::CATEGORY;
    const STATE_SCHEMA_VERSION: u32 = 2;
    type Command = TallyCommand;
    type Event = TallyEvent;
    type Error = Refused;

    fn decide(&self, command: &TallyCommand) -> Result<Vec<TallyEvent>, Refused> {
        self.tally.decide(command)
    }

    fn evolve(&mut self, event: &TallyEvent) {
        self.tally.evolve(event);
    }
}

/// What a [`CountingStore`] was asked since its counts were last taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls of [`EventStore::load`] (and of the other loads: forward, until a version, recent).
    pub loads: usize,
    /// Of those, calls of [`EventStore::load_recent`] (reads that may lag the head).
    pub recent_loads: usize,
    /// Events those loads returned (after their snapshot).
    pub events_loaded: usize,
    /// Calls of [`EventStore::read`] and [`EventStore::read_after`]: a repository replays a stream,
    /// or catches up after a lost write, with them.
    pub reads: usize,
}

/// A store that counts what is asked of it, to tell a load that started from a snapshot from one
/// that replayed the stream, whatever the backend.
pub struct CountingStore<'a, S> {
    inner: &'a S,
    counts: Mutex<Counts>,
    lag: u64,
}

impl<'a, S> CountingStore<'a, S> {
    /// Counts the calls made through it to `inner`.
    pub fn new(inner: &'a S) -> Self {
        Self { inner, counts: Mutex::new(Counts::default()), lag: 0 }
    }

    /// Counts like [`CountingStore::new`], and answers [`EventStore::load_recent`] with the stream
    /// as it stood `versions` versions below its head (what an eventually consistent read of a
    /// replica that has not applied the newest commits returns).
    pub fn lagging(inner: &'a S, versions: u64) -> Self {
        Self { lag: versions, ..Self::new(inner) }
    }

    /// The counts so far, reset to zero.
    pub fn take(&self) -> Counts {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn count(&self, add: impl FnOnce(&mut Counts)) {
        add(&mut self.counts.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

impl<S: EventStore> EventStore for CountingStore<'_, S> {
    async fn append(&self, request: AppendRequest) -> Result<Commit, Error> {
        self.inner.append(request).await
    }

    async fn append_after_load(&self, request: AppendRequest) -> Result<Commit, Error> {
        self.inner.append_after_load(request).await
    }

    async fn try_append_after_load(&self, request: AppendRequest) -> Result<AppendAttempt, Error> {
        self.inner.try_append_after_load(request).await
    }

    async fn read_after(&self, stream: &StreamId, version: u64) -> Result<Vec<EventEnvelope>, Error> {
        self.count(|c| c.reads += 1);
        self.inner.read_after(stream, version).await
    }

    async fn read(&self, stream: &StreamId, from_version: u64, limit: usize) -> Result<EventPage, Error> {
        self.count(|c| c.reads += 1);
        self.inner.read(stream, from_version, limit).await
    }

    async fn load_forward(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
    ) -> Result<LoadedStream, Error> {
        let loaded = self.inner.load_forward(stream, state_schema_version).await?;
        self.count(|c| {
            c.loads += 1;
            c.events_loaded += loaded.events.len();
        });
        Ok(loaded)
    }

    async fn load_until(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
        version: u64,
    ) -> Result<LoadedStream, Error> {
        let loaded = self.inner.load_until(stream, state_schema_version, version).await?;
        self.count(|c| {
            c.loads += 1;
            c.events_loaded += loaded.events.len();
        });
        Ok(loaded)
    }

    async fn load_until_time(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<LoadedStream, Error> {
        let loaded = self.inner.load_until_time(stream, state_schema_version, at).await?;
        self.count(|c| {
            c.loads += 1;
            c.events_loaded += loaded.events.len();
        });
        Ok(loaded)
    }

    async fn load(&self, stream: &StreamId, state_schema_version: u32) -> Result<LoadedStream, Error> {
        let loaded = self.inner.load(stream, state_schema_version).await?;
        self.count(|c| {
            c.loads += 1;
            c.events_loaded += loaded.events.len();
        });
        Ok(loaded)
    }

    async fn load_recent(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
        forward: bool,
    ) -> Result<LoadedStream, Error> {
        let mut loaded = self.inner.load_recent(stream, state_schema_version, forward).await?;
        if self.lag > 0 {
            let head = loaded
                .events
                .last()
                .map(|e| e.version)
                .or(loaded.snapshot.as_ref().map(|s| s.version))
                .unwrap_or(0);
            loaded =
                self.inner.load_until(stream, state_schema_version, head.saturating_sub(self.lag)).await?;
        }
        self.count(|c| {
            c.loads += 1;
            c.recent_loads += 1;
            c.events_loaded += loaded.events.len();
        });
        Ok(loaded)
    }
}

impl<S: SnapshotStore> SnapshotStore for CountingStore<'_, S> {
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<bool, Error> {
        self.inner.save_snapshot(snapshot).await
    }

    async fn save_snapshot_after_load(&self, snapshot: Snapshot) -> Result<bool, Error> {
        self.inner.save_snapshot_after_load(snapshot).await
    }

    async fn prune_snapshots(
        &self,
        stream: &StreamId,
        keep: usize,
        state_schema_version: u32,
    ) -> Result<usize, Error> {
        self.inner.prune_snapshots(stream, keep, state_schema_version).await
    }
}

impl<S: IdempotencyStore> IdempotencyStore for CountingStore<'_, S> {
    async fn get_record(&self, tenant: &str, key: &str) -> Result<Option<IdempotencyRecord>, Error> {
        self.inner.get_record(tenant, key).await
    }

    async fn put_record(&self, record: IdempotencyRecord) -> Result<(), Error> {
        self.inner.put_record(record).await
    }

    async fn delete_record(&self, tenant: &str, key: &str, request_hash: &str) -> Result<(), Error> {
        self.inner.delete_record(tenant, key, request_hash).await
    }
}

/// Fails the scenario with a message when a condition does not hold.
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(Violation::new("rolling deploy", format!($($msg)+)));
        }
    };
}

/// An error where none may occur, named by the step that met it.
fn broke<E: std::fmt::Display>(step: &str) -> impl FnOnce(E) -> Violation + '_ {
    move |error| Violation::new("rolling deploy", format!("{step}: {error}"))
}

/// Old code ([`Tally`], state schema 1, keeping 1 snapshot) and new code ([`TallyNext`], schema 2,
/// keeping 2) take turns on `stream` (of category `tally`, not yet written), both snapshotting
/// every 2 events. Each load must start from the newest snapshot of its own schema, in one store
/// load, never replaying the stream from version 1; the old code's saves and prunes must leave the
/// new code's snapshots alone, while the new code may replace and prune the old code's.
pub async fn rolling_deploy<S>(store: &S, stream: &StreamId) -> Result<(), Violation>
where
    S: EventStore + SnapshotStore + IdempotencyStore,
{
    let old = Repository::<Tally, _>::new(CountingStore::new(store))
        .with_snapshot_policy(SnapshotPolicy::every(2).keep(1));
    let new = Repository::<TallyNext, _>::new(CountingStore::new(store))
        .with_snapshot_policy(SnapshotPolicy::every(2).keep(2));
    let bump = TallyCommand::Bump { times: 1 };
    let ctx = CommandContext::default;
    // The version of the newest snapshot of each schema, read from the store itself.
    let newest = async |schema: u32| -> Result<Option<u64>, Violation> {
        let loaded = store.load(stream, schema).await.map_err(broke("load"))?;
        Ok(loaded.snapshot.map(|s| s.version))
    };
    let one_load = |events_loaded| Counts { loads: 1, events_loaded, ..Counts::default() };

    for _ in 0..4 {
        old.execute(stream, &bump, ctx()).await.map_err(broke("old code, v1-v4"))?;
    }
    check!(newest(1).await? == Some(4), "the old code's snapshot is at 4");

    // No snapshot of the new schema yet: one load of all four events, no replay, nothing written.
    old.store().take();
    new.store().take();
    let loaded = new.load(stream).await.map_err(broke("new code, load at 4"))?;
    check!(loaded.state.tally.seen == [1, 2, 3, 4], "the new code folds {:?}", loaded.state.tally.seen);
    let counts = new.store().take();
    check!(counts == one_load(4), "the new code's first load: {counts:?}");
    check!(
        (newest(1).await?, newest(2).await?) == (Some(4), None),
        "a load of the new code leaves the old code's snapshot alone"
    );

    // v5 and v6 by the new code: its first snapshot, at 5.
    for _ in 0..2 {
        new.execute(stream, &bump, ctx()).await.map_err(broke("new code, v5-v6"))?;
    }
    check!((newest(1).await?, newest(2).await?) == (Some(4), Some(5)), "snapshots at 4 (old) and 5 (new)");

    // The old code reads past the newer snapshot to its own at 4.
    old.store().take();
    let loaded = old.load(stream).await.map_err(broke("old code, load at 6"))?;
    check!(loaded.state.seen == [1, 2, 3, 4, 5, 6], "the old code folds {:?}", loaded.state.seen);
    let counts = old.store().take();
    check!(counts == one_load(2), "the old code loads from its snapshot at 4: {counts:?}");

    // v7 by the old code: its snapshot at 7; keeping 1, it prunes its own at 4, not the newer at 5.
    old.execute(stream, &bump, ctx()).await.map_err(broke("old code, v7"))?;
    check!(
        (newest(1).await?, newest(2).await?) == (Some(7), Some(5)),
        "the old code's prune left the new code's snapshot"
    );
    new.store().take();
    let loaded = new.load(stream).await.map_err(broke("new code, load at 7"))?;
    check!(loaded.version == 7, "the new code loads version {}", loaded.version);
    let counts = new.store().take();
    check!(counts == one_load(2), "the new code loads from its snapshot at 5: {counts:?}");

    // v8 by the new code: its snapshot at 8. The old code snapshots at 8 too: the newer one stays.
    new.execute(stream, &bump, ctx()).await.map_err(broke("new code, v8"))?;
    let taken = old.take_snapshot(stream).await.map_err(broke("old code, snapshot at 8"))?;
    check!(taken == 8, "the old code is at {taken}");
    let kept = store.load(stream, 2).await.map_err(broke("load"))?.snapshot;
    check!(
        kept.is_some_and(|s| s.version == 8 && s.state_schema_version == 2),
        "the new code's snapshot at 8 was not replaced by the old code's"
    );
    check!(newest(1).await? == Some(7), "the old code's snapshot at 8 was not written");

    // v9 by the old code (its snapshot at 9), then the new code snapshots at 9: an older schema's
    // snapshot is replaced.
    old.execute(stream, &bump, ctx()).await.map_err(broke("old code, v9"))?;
    check!((newest(1).await?, newest(2).await?) == (Some(9), Some(8)), "snapshots at 9 (old) and 8 (new)");
    new.take_snapshot(stream).await.map_err(broke("new code, snapshot at 9"))?;
    check!(
        (newest(1).await?, newest(2).await?) == (None, Some(9)),
        "the new code's snapshot at 9 replaced the old code's"
    );
    let (a, b) = (
        old.load(stream).await.map_err(broke("old code, load at 9"))?,
        new.load(stream).await.map_err(broke("new code, load at 9"))?,
    );
    check!(
        a.state.seen == (1..=9).collect::<Vec<_>>() && a.state == b.state.tally,
        "both fold the whole stream: {:?} and {:?}",
        a.state.seen,
        b.state.tally.seen
    );
    Ok(())
}
