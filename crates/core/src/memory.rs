//! Thread-safe in-memory implementations of every store trait.
//!
//! They keep the same guarantees as the DynamoDB store (atomic conditional appends, idempotency
//! records written with their commit, snapshots next to the stream, only at commit ends and chosen by
//! state schema), so a domain tested here behaves the same in production: the store contract
//! (`conformance`, feature `conformance`) holds both to it from the same test code.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use chrono::Utc;

use crate::projection::{StoredView, ViewStore, lookup_position};
use crate::{
    AppendAttempt, AppendRequest, Commit, Error, EventEnvelope, EventPage, EventStore, ExpectedVersion,
    IdempotencyRecord, IdempotencyStore, LoadedStream, Publisher, Snapshot, SnapshotStore, StreamId,
};

#[derive(Default)]
struct StreamState {
    events: Vec<EventEnvelope>,
    snapshots: BTreeMap<u64, Snapshot>,
    /// The last version of each commit read off the feed so far (see [`State::index_commits`]).
    commit_ends: BTreeSet<u64>,
}

#[derive(Default)]
struct State {
    streams: HashMap<StreamId, StreamState>,
    idempotency: HashMap<(String, String), IdempotencyRecord>,
    /// The first version of each commit, by stream and first event id: a repeated append of the same
    /// request (a caller's retry after a lost answer) is answered with its commit, not written again.
    commit_starts: HashMap<(StreamId, crate::EventId), u64>,
    /// Every commit in commit order: the in-memory analogue of the table's change stream.
    feed: Vec<Commit>,
    /// Views by (projection, stream).
    views: BTreeMap<(String, StreamId), StoredView>,
    /// How much of `feed` is in the streams' `commit_ends`.
    feed_indexed: usize,
    /// Subject exports and erasures, in record order.
    subject_accesses: Vec<crate::SubjectAccess>,
}

impl State {
    /// Brings every stream's commit boundaries up to date with the feed. The feed is the log of
    /// commits, so boundaries are read off it lazily rather than tracked by each append path.
    fn index_commits(&mut self) {
        let Self { streams, feed, feed_indexed, .. } = self;
        for commit in feed.get(*feed_indexed..).unwrap_or_default() {
            streams.entry(commit.stream.clone()).or_default().commit_ends.insert(commit.last_version);
        }
        *feed_indexed = feed.len();
    }
}

/// An in-memory event store, snapshot store and idempotency store in one, like the single table.
///
/// Cloning shares the same data.
#[derive(Clone, Default)]
pub struct InMemoryStore {
    state: Arc<Mutex<State>>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied append (appends mutate only
        // after every check), so the data is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits written since position `from` of the change feed, and the next position.
    ///
    /// This is the in-memory outbox: relay it to a [`Publisher`] as the stream publisher does with
    /// the DynamoDB stream.
    pub fn feed_since(&self, from: usize) -> (Vec<Commit>, usize) {
        let state = self.lock();
        let commits = state.feed.get(from..).map(<[Commit]>::to_vec).unwrap_or_default();
        (commits, state.feed.len())
    }

    /// The versions of the snapshots kept for a stream, oldest first.
    pub fn snapshot_versions(&self, stream: &StreamId) -> Vec<u64> {
        self.lock().streams.get(stream).map(|s| s.snapshots.keys().copied().collect()).unwrap_or_default()
    }

    /// Replaces the state of a stored snapshot, e.g. to test that a corrupt snapshot is ignored.
    pub fn overwrite_snapshot_state(
        &self,
        stream: &StreamId,
        version: u64,
        state: serde_json::Value,
    ) -> bool {
        let mut guard = self.lock();
        match guard.streams.get_mut(stream).and_then(|s| s.snapshots.get_mut(&version)) {
            Some(snapshot) => {
                snapshot.state = state;
                true
            }
            None => false,
        }
    }
}

fn live_record<'a>(
    idempotency: &'a HashMap<(String, String), IdempotencyRecord>,
    tenant: &str,
    key: &str,
) -> Option<&'a IdempotencyRecord> {
    idempotency.get(&(tenant.to_owned(), key.to_owned())).filter(|r| r.expires_at > Utc::now())
}

/// The commit an earlier append of this very request wrote (same stream, same event ids), as a
/// caller's retry after a lost answer gets it back; [`Error::Conflict`] when the first event id
/// starts a commit of other events, which writing would store twice.
fn earlier_commit(state: &State, request: &AppendRequest, current: u64) -> Result<Option<Commit>, Error> {
    let Some(first) = request.events.first() else { return Ok(None) };
    let Some(&first_version) = state.commit_starts.get(&(request.stream.clone(), first.event_id)) else {
        return Ok(None);
    };
    let stored = state.streams.get(&request.stream).map(|s| s.events.as_slice()).unwrap_or_default();
    let from = usize::try_from(first_version.saturating_sub(1)).unwrap_or(usize::MAX);
    let events: Vec<EventEnvelope> =
        stored.get(from..).unwrap_or_default().iter().take(request.events.len()).cloned().collect();
    if !events.iter().map(|e| e.event_id).eq(request.events.iter().map(|e| e.event_id)) {
        return Err(Error::Conflict {
            stream: request.stream.clone(),
            expected: request.expected,
            actual: Some(current),
        });
    }
    let last_version = first_version + events.len() as u64 - 1;
    Ok(Some(Commit { stream: request.stream.clone(), first_version, last_version, events }))
}

impl EventStore for InMemoryStore {
    async fn append(&self, request: AppendRequest) -> Result<Commit, Error> {
        if request.events.is_empty() {
            return Err(Error::InvalidRequest("a commit needs at least one event".into()));
        }
        let mut state = self.lock();
        let current = state.streams.get(&request.stream).map_or(0, |s| s.events.len() as u64);
        // Before the expectation: a retried `Exact` or `NoStream` request no longer matches the head.
        if let Some(commit) = earlier_commit(&state, &request, current)? {
            return Ok(commit);
        }
        if !request.expected.matches(current) {
            return Err(Error::Conflict {
                stream: request.stream,
                expected: request.expected,
                actual: Some(current),
            });
        }
        if let Some(record) = &request.idempotency
            && live_record(&state.idempotency, &record.tenant, &record.key).is_some()
        {
            return Err(Error::IdempotencyKeyExists { key: record.key.clone() });
        }
        let first_version = current + 1;
        let first_id = request.events[0].event_id;
        state.commit_starts.insert((request.stream.clone(), first_id), first_version);
        let events: Vec<EventEnvelope> = request
            .events
            .into_iter()
            .zip(first_version..)
            .map(|(event, version)| EventEnvelope::committed(request.stream.clone(), version, event))
            .collect();
        let last_version = current + events.len() as u64;
        let commit = Commit { stream: request.stream.clone(), first_version, last_version, events };
        state.streams.entry(request.stream).or_default().events.extend(commit.events.iter().cloned());
        if let Some(record) = request.idempotency {
            state.idempotency.insert((record.tenant.clone(), record.key.clone()), record);
        }
        state.feed.push(commit.clone());
        Ok(commit)
    }

    /// Like DynamoDB's failed conditional write, a lost race answers with the commit in the way.
    async fn try_append_after_load(&self, request: AppendRequest) -> Result<AppendAttempt, Error> {
        let next = match request.expected {
            ExpectedVersion::NoStream => 1,
            ExpectedVersion::Exact(n) => n.saturating_add(1),
            ExpectedVersion::Any | ExpectedVersion::StreamExists => 0,
        };
        let stream = request.stream.clone();
        match self.append(request).await {
            Ok(commit) => Ok(AppendAttempt::Committed(commit)),
            Err(Error::Conflict { actual, .. }) => {
                let state = self.lock();
                let winner =
                    state.feed.iter().find(|c| c.stream == stream && c.first_version == next).cloned();
                Ok(AppendAttempt::Lost { winner, actual })
            }
            Err(error) => Err(error),
        }
    }

    async fn read(&self, stream: &StreamId, from_version: u64, limit: usize) -> Result<EventPage, Error> {
        if limit == 0 {
            return Err(Error::InvalidRequest("page limit must be at least 1".into()));
        }
        let state = self.lock();
        let Some(events) = state.streams.get(stream).map(|s| &s.events) else {
            return Ok(EventPage::default());
        };
        let start = usize::try_from(from_version.max(1) - 1).unwrap_or(usize::MAX).min(events.len());
        let end = start.saturating_add(limit).min(events.len());
        let page = events[start..end].to_vec();
        let next_version = (end < events.len()).then_some(end as u64 + 1);
        Ok(EventPage { events: page, next_version })
    }

    async fn load_until(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
        version: u64,
    ) -> Result<LoadedStream, Error> {
        let state = self.lock();
        let Some(s) = state.streams.get(stream) else {
            return Ok(LoadedStream::default());
        };
        let snapshot = s
            .snapshots
            .range(..=version)
            .rev()
            .map(|(_, snap)| snap)
            .find(|snap| snap.state_schema_version == state_schema_version)
            .cloned();
        let from = snapshot.as_ref().map_or(0, |snap| usize::try_from(snap.version).unwrap_or(usize::MAX));
        let to = usize::try_from(version).unwrap_or(usize::MAX).min(s.events.len());
        let events = s.events.get(from..to).map(<[EventEnvelope]>::to_vec).unwrap_or_default();
        Ok(LoadedStream { snapshot, events })
    }

    async fn load_until_time(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
        at: chrono::DateTime<Utc>,
    ) -> Result<LoadedStream, Error> {
        let state = self.lock();
        let Some(s) = state.streams.get(stream) else {
            return Ok(LoadedStream::default());
        };
        // The snapshot's last event committed at or before `at`.
        let committed_by = |version: u64| {
            usize::try_from(version)
                .ok()
                .and_then(|v| s.events.get(v.checked_sub(1)?))
                .is_some_and(|e| e.metadata.committed_at <= at)
        };
        let snapshot = s
            .snapshots
            .values()
            .rev()
            .find(|snap| snap.state_schema_version == state_schema_version && committed_by(snap.version))
            .cloned();
        let from = snapshot.as_ref().map_or(0, |snap| usize::try_from(snap.version).unwrap_or(usize::MAX));
        let events = s
            .events
            .get(from..)
            .unwrap_or_default()
            .iter()
            .take_while(|e| e.metadata.committed_at <= at)
            .cloned()
            .collect();
        Ok(LoadedStream { snapshot, events })
    }

    async fn load(&self, stream: &StreamId, state_schema_version: u32) -> Result<LoadedStream, Error> {
        let state = self.lock();
        let Some(s) = state.streams.get(stream) else {
            return Ok(LoadedStream::default());
        };
        let snapshot = s
            .snapshots
            .values()
            .rev()
            .find(|snap| snap.state_schema_version == state_schema_version)
            .cloned();
        let from = snapshot.as_ref().map_or(0, |snap| usize::try_from(snap.version).unwrap_or(usize::MAX));
        let events = s.events.get(from..).map(<[EventEnvelope]>::to_vec).unwrap_or_default();
        Ok(LoadedStream { snapshot, events })
    }
}

impl SnapshotStore for InMemoryStore {
    /// Refuses ([`Error::InvalidRequest`]) a version that does not end a commit, as the DynamoDB
    /// store must (a snapshot's key there would sort inside the stream).
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<bool, Error> {
        let mut state = self.lock();
        state.index_commits();
        let Some(stream) =
            state.streams.get_mut(&snapshot.stream).filter(|s| s.commit_ends.contains(&snapshot.version))
        else {
            return Err(Error::InvalidRequest(format!(
                "snapshot of {} at version {}, which does not end a commit",
                snapshot.stream, snapshot.version
            )));
        };
        if stream
            .snapshots
            .get(&snapshot.version)
            .is_some_and(|kept| kept.state_schema_version > snapshot.state_schema_version)
        {
            return Ok(false);
        }
        stream.snapshots.insert(snapshot.version, snapshot);
        Ok(true)
    }

    async fn prune_snapshots(
        &self,
        stream: &StreamId,
        keep: usize,
        state_schema_version: u32,
    ) -> Result<usize, Error> {
        let mut state = self.lock();
        let Some(s) = state.streams.get_mut(stream) else { return Ok(0) };
        let doomed: Vec<u64> = s
            .snapshots
            .values()
            .rev()
            .skip(keep)
            .filter(|snap| snap.state_schema_version <= state_schema_version)
            .map(|snap| snap.version)
            .collect();
        for version in &doomed {
            s.snapshots.remove(version);
        }
        Ok(doomed.len())
    }
}

impl IdempotencyStore for InMemoryStore {
    async fn get_record(&self, tenant: &str, key: &str) -> Result<Option<IdempotencyRecord>, Error> {
        Ok(live_record(&self.lock().idempotency, tenant, key).cloned())
    }

    async fn put_record(&self, record: IdempotencyRecord) -> Result<(), Error> {
        let mut state = self.lock();
        if live_record(&state.idempotency, &record.tenant, &record.key).is_some() {
            return Err(Error::IdempotencyKeyExists { key: record.key });
        }
        state.idempotency.insert((record.tenant.clone(), record.key.clone()), record);
        Ok(())
    }

    async fn delete_record(&self, tenant: &str, key: &str, request_hash: &str) -> Result<(), Error> {
        let mut state = self.lock();
        let id = (tenant.to_owned(), key.to_owned());
        if state.idempotency.get(&id).is_some_and(|r| r.request_hash == request_hash) {
            state.idempotency.remove(&id);
        }
        Ok(())
    }
}

impl crate::SubjectAudit for InMemoryStore {
    async fn record_access(&self, access: &crate::SubjectAccess) -> Result<(), Error> {
        self.lock().subject_accesses.push(access.clone());
        Ok(())
    }

    async fn accesses(&self, tenant: &str, subject: &str) -> Result<Vec<crate::SubjectAccess>, Error> {
        Ok(self
            .lock()
            .subject_accesses
            .iter()
            .filter(|a| a.tenant == tenant && a.subject == subject)
            .cloned()
            .collect())
    }
}

impl ViewStore for InMemoryStore {
    async fn get_view(&self, projection: &str, stream: &StreamId) -> Result<Option<StoredView>, Error> {
        Ok(self.lock().views.get(&(projection.to_owned(), stream.clone())).cloned())
    }

    async fn put_view(&self, view: StoredView, expected: Option<u64>) -> Result<(), Error> {
        crate::validate_key_part("projection", &view.projection, crate::MAX_CATEGORY_LEN)?;
        let mut state = self.lock();
        let key = (view.projection.clone(), view.stream.clone());
        let current = state.views.get(&key).map(|v| v.version);
        if current != expected {
            return Err(Error::Conflict {
                stream: view.stream,
                expected: expected.map_or(crate::ExpectedVersion::NoStream, crate::ExpectedVersion::Exact),
                actual: current,
            });
        }
        state.views.insert(key, view);
        Ok(())
    }

    async fn lookup_views(
        &self,
        tenant: &str,
        projection: &str,
        partition: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredView>, Error> {
        if limit == 0 {
            return Err(Error::InvalidRequest("page limit must be at least 1".into()));
        }
        let state = self.lock();
        let mut views: Vec<StoredView> = state
            .views
            .values()
            .filter(|v| {
                v.projection == projection
                    && v.stream.tenant() == tenant
                    && v.lookup.as_ref().is_some_and(|l| {
                        l.partition == partition
                            && after.is_none_or(|after| lookup_position(l, &v.stream).as_str() > after)
                    })
            })
            .cloned()
            .collect();
        views.sort_by_key(|v| v.lookup.as_ref().map(|l| lookup_position(l, &v.stream)));
        views.truncate(limit);
        Ok(views)
    }
}

/// A publisher that keeps what it was given, for tests and the in-memory demo.
#[derive(Clone, Default)]
pub struct InMemoryPublisher {
    published: Arc<Mutex<Vec<EventEnvelope>>>,
}

impl InMemoryPublisher {
    /// An empty publisher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything published so far, in order.
    pub fn published(&self) -> Vec<EventEnvelope> {
        self.published.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Publisher for InMemoryPublisher {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<(), Error> {
        self.published.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(events);
        Ok(())
    }
}
