//! The storage ports: event store, snapshots, idempotency records and publishing.
//!
//! Every backend implements these; [`crate::memory`] holds the in-memory implementations.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, EventEnvelope, ExpectedVersion, NewEvent, StreamId};

/// The events of one command, to be written atomically.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// The stream to append to.
    pub stream: StreamId,
    /// The version the writer expects the stream to be at.
    pub expected: ExpectedVersion,
    /// The events, in order; at least one.
    pub events: Vec<NewEvent>,
    /// An idempotency record to store in the same atomic write, so that a command and the record of
    /// its result are either both written or neither.
    pub idempotency: Option<IdempotencyRecord>,
}

/// What an append wrote: one commit holding versions `first_version..=last_version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// The stream written.
    pub stream: StreamId,
    /// Version of the commit's first event.
    pub first_version: u64,
    /// Version of the commit's last event (the stream's new version).
    pub last_version: u64,
    /// The committed events.
    pub events: Vec<EventEnvelope>,
}

/// What [`EventStore::try_append_after_load`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendAttempt {
    /// The events are committed (now, or by an earlier attempt of the same request).
    Committed(Commit),
    /// Another commit holds the next version: nothing was written.
    Lost {
        /// The commit that took the version after the expected one, when the store returned it.
        winner: Option<Commit>,
        /// The stream's version as the store saw it, when it knows (as in [`Error::Conflict`]).
        actual: Option<u64>,
    },
}

/// One page of events read forward.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventPage {
    /// Events in version order.
    pub events: Vec<EventEnvelope>,
    /// The version to read from for the next page, or `None` at the end of the stream.
    pub next_version: Option<u64>,
}

/// A stream as loaded for a command: the newest snapshot of the wanted state schema and every event
/// after it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadedStream {
    /// The newest snapshot of the state schema version the load asked for, if any.
    pub snapshot: Option<Snapshot>,
    /// Every event after the snapshot (all events when there is none), in version order.
    pub events: Vec<EventEnvelope>,
}

/// Aggregate state after a version: a cache that saves replaying the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The stream.
    pub stream: StreamId,
    /// The last version the state includes.
    pub version: u64,
    /// The aggregate's state schema version when it was taken.
    pub state_schema_version: u32,
    /// The serialized state.
    pub state: Value,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
}

/// The remembered result of a command sent with an idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The tenant the key belongs to.
    pub tenant: String,
    /// The client's idempotency key.
    pub key: String,
    /// Hash binding the key to the exact request (stream, command name, body).
    pub request_hash: String,
    /// The command's outcome, returned again on a repeat.
    pub outcome: Value,
    /// After this the record may be deleted and the key reused.
    pub expires_at: DateTime<Utc>,
}

/// Append-only storage of event streams.
pub trait EventStore: Send + Sync {
    /// Appends a command's events atomically if the stream is at the expected version.
    ///
    /// Returns [`Error::Conflict`] (nothing written) when it is not, and
    /// [`Error::IdempotencyKeyExists`] (nothing written) when the request carries an idempotency
    /// record whose key is already taken.
    ///
    /// Retrying is safe: the same request appended again (same event ids, as a caller sends it after
    /// losing the answer) returns the commit the first attempt wrote and writes nothing, whatever
    /// the expectation and whatever was appended on top since. No event id is stored twice. (The
    /// DynamoDB store bounds how far back `Any` and `StreamExists` look; see its docs.)
    fn append(&self, request: AppendRequest) -> impl Future<Output = Result<Commit, Error>> + Send;

    /// Appends like [`EventStore::append`], for a writer whose `request.expected` is the head it just
    /// loaded from this store with [`EventStore::load`] (so the last version of a commit, never a
    /// version inside one).
    ///
    /// A store that keeps several events per item cannot tell from one conditional write whether a
    /// version falls inside a commit, and [`EventStore::append`] pays a read to make sure; the
    /// [`crate::Repository`] has that read already and calls this to skip it. Passing a version that
    /// did not come from a load breaks the stream: use `append` then.
    fn append_after_load(
        &self,
        request: AppendRequest,
    ) -> impl Future<Output = Result<Commit, Error>> + Send {
        self.append(request)
    }

    /// Appends like [`EventStore::append_after_load`] (the caller knows `request.expected` ends a
    /// commit: it loaded it, or wrote that commit itself), and on a lost race answers with what won
    /// instead of an error: [`AppendAttempt::Lost`] carries the commit that took the next version
    /// when the store has it at hand (DynamoDB returns it with the failed conditional write, at no
    /// extra request), so the caller folds it in rather than reloading the stream.
    ///
    /// The default calls `append_after_load` and reports a lost race without the winner.
    fn try_append_after_load(
        &self,
        request: AppendRequest,
    ) -> impl Future<Output = Result<AppendAttempt, Error>> + Send {
        async move {
            match self.append_after_load(request).await {
                Ok(commit) => Ok(AppendAttempt::Committed(commit)),
                Err(Error::Conflict { actual, .. }) => Ok(AppendAttempt::Lost { winner: None, actual }),
                Err(error) => Err(error),
            }
        }
    }

    /// Every event after `version`, which must end a commit (a head the caller loaded or wrote),
    /// with strongly consistent reads: how a writer whose state is at `version` catches up.
    ///
    /// The default reads pages forward with [`EventStore::read`].
    fn read_after(
        &self,
        stream: &StreamId,
        version: u64,
    ) -> impl Future<Output = Result<Vec<EventEnvelope>, Error>> + Send {
        async move {
            let mut events = Vec::new();
            let mut next = version.checked_add(1);
            while let Some(from) = next {
                let page = self.read(stream, from, 1_000).await?;
                events.extend(page.events);
                next = page.next_version;
            }
            Ok(events)
        }
    }

    /// Reads up to `limit` events forward from `from_version` (inclusive, from 1).
    fn read(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<EventPage, Error>> + Send;

    /// Loads the newest snapshot of state schema `state_schema_version` and every event after it,
    /// with strongly consistent reads.
    ///
    /// Snapshots of other state schemas are read past, in the same read: during a rolling deploy,
    /// code of two state schemas loads the same streams, and each must start from its own snapshot
    /// rather than replay the stream from version 1. Without a snapshot of that schema, the events
    /// are the whole stream. A snapshot item that cannot be read at all is read past too.
    fn load(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
    ) -> impl Future<Output = Result<LoadedStream, Error>> + Send;

    /// Loads like [`EventStore::load`], for a caller that takes no snapshots of the stream: a store
    /// may then read forward from the start in its largest pages instead of looking for the newest
    /// snapshot from the head. The result is the same (a snapshot of the schema met on the way is
    /// used). The default is [`EventStore::load`].
    fn load_forward(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
    ) -> impl Future<Output = Result<LoadedStream, Error>> + Send {
        self.load(stream, state_schema_version)
    }

    /// Loads like [`EventStore::load`] (like [`EventStore::load_forward`] when `forward`), for a
    /// writer whose conditional write checks what it decides on: the result may lag the head (an
    /// eventually consistent read, half the read capacity on DynamoDB), but it is the stream as it
    /// stood at some moment, a snapshot and every event after it up to some version, never with a
    /// gap. The [`crate::Repository`] treats it like a cached state: a lost write folds in what won,
    /// and a rejection or a command that changes nothing is decided again on a strongly consistent
    /// load before it is answered. The default is the strongly consistent load.
    ///
    /// Safe because a stream's partition only grows: a lagging read shows a prefix of what is
    /// stored, and the write at the version after it fails on anything newer. Something that
    /// removes commits (a restore, a repair) breaks that for as long as a replica may lag: evict the
    /// stream from the repository afterwards ([`crate::Repository::evict_rewound`]), which makes its
    /// commands load strongly for a minute.
    fn load_recent(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
        forward: bool,
    ) -> impl Future<Output = Result<LoadedStream, Error>> + Send {
        async move {
            if forward {
                self.load_forward(stream, state_schema_version).await
            } else {
                self.load(stream, state_schema_version).await
            }
        }
    }

    /// The stream as of `at`: a snapshot of the schema whose last event was committed at or before
    /// `at` (the newest such that the store finds), and the events after it committed at or before
    /// `at`, up to the first committed after it (so versions stay a prefix of the stream even when
    /// writers' clocks disagree; a commit within that disagreement of `at` may be in or out), with
    /// strongly consistent reads of the stream. What time travel by time starts from.
    ///
    /// The default reads forward from version 1 and uses no snapshot.
    fn load_until_time(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<LoadedStream, Error>> + Send {
        let _ = state_schema_version;
        async move { Ok(LoadedStream { snapshot: None, events: events_until_time(self, stream, 1, at).await? }) }
    }

    /// The stream as of `version`: the newest snapshot of the schema at or before it, and the events
    /// after that snapshot up to `version` (fewer when the stream is shorter), with strongly
    /// consistent reads. What time travel starts from.
    ///
    /// The default reads forward from version 1 and uses no snapshot.
    fn load_until(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
        version: u64,
    ) -> impl Future<Output = Result<LoadedStream, Error>> + Send {
        let _ = state_schema_version;
        async move {
            let mut events = Vec::new();
            let mut next = Some(1);
            while let Some(from) = next.filter(|from| *from <= version) {
                let page = self.read(stream, from, 1_000).await?;
                events.extend(page.events.into_iter().filter(|e| e.version <= version));
                next = page.next_version;
            }
            Ok(LoadedStream { snapshot: None, events })
        }
    }
}

/// The events from `from_version` on committed at or before `at`, up to the first committed after it.
async fn events_until_time<S: EventStore + ?Sized>(
    store: &S,
    stream: &StreamId,
    from_version: u64,
    at: DateTime<Utc>,
) -> Result<Vec<EventEnvelope>, Error> {
    let mut events = Vec::new();
    let mut next = Some(from_version);
    while let Some(from) = next {
        let page = store.read(stream, from, 1_000).await?;
        for event in page.events {
            if event.metadata.committed_at > at {
                return Ok(events);
            }
            events.push(event);
        }
        next = page.next_version;
    }
    Ok(events)
}

/// Storage of snapshots next to their streams.
///
/// A snapshot of a newer state schema than the writer's is never replaced nor removed, even by a
/// writer racing another: code of an older schema still running during a rolling deploy must not
/// undo the newer code's cache. Snapshots of the same or an older schema are fair game.
pub trait SnapshotStore: Send + Sync {
    /// Saves a snapshot at `snapshot.version`, which must end a commit of the stream
    /// ([`Error::InvalidRequest`] otherwise, and for version 0 or a version past the head: a snapshot
    /// elsewhere would claim a state no load can continue from).
    ///
    /// Replaces a snapshot at the same version unless that one is of a newer state schema than
    /// `snapshot.state_schema_version`: then it is kept and nothing is written. Returns whether the
    /// snapshot was written.
    fn save_snapshot(&self, snapshot: Snapshot) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Saves like [`SnapshotStore::save_snapshot`], for a caller whose `snapshot.version` is a head
    /// it loaded or a commit it wrote (so the end of a commit): a store that checks the alignment
    /// with a read may skip it. Passing another version breaks loads of the stream.
    fn save_snapshot_after_load(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        self.save_snapshot(snapshot)
    }

    /// Removes all but the newest `keep` snapshots of the stream (whatever their schema), except
    /// those of a state schema newer than `state_schema_version`, which stay; returns how many it
    /// removed. Pass `u32::MAX` to remove snapshots of every schema (an operator's choice).
    fn prune_snapshots(
        &self,
        stream: &StreamId,
        keep: usize,
        state_schema_version: u32,
    ) -> impl Future<Output = Result<usize, Error>> + Send;
}

/// Storage of idempotency records.
pub trait IdempotencyStore: Send + Sync {
    /// The unexpired record for a key, if any.
    fn get_record(
        &self,
        tenant: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, Error>> + Send;

    /// Stores a record unless an unexpired one exists ([`Error::IdempotencyKeyExists`]). Used for
    /// commands that record no events; otherwise the record travels in the [`AppendRequest`].
    fn put_record(&self, record: IdempotencyRecord) -> impl Future<Output = Result<(), Error>> + Send;

    /// Deletes the record of a key if it still holds `request_hash` (a holder releasing its own
    /// claim early); a record of another hash, or none, is left as it is.
    fn delete_record(
        &self,
        tenant: &str,
        key: &str,
        request_hash: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// What an operator did to a data subject's personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectAction {
    /// Read every personal field (a page of it).
    Export,
    /// Forgot the subject (its data key deleted).
    Forget,
}

/// What came of an export or erasure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessOutcome {
    /// Recorded before acting: an access (by `access_id`) with only this record was cut short (a
    /// crash, a timeout).
    Attempted,
    /// Done.
    Done,
    /// Failed (the error went to the caller).
    Failed,
}

/// One export or erasure of a data subject: who, how, when, and what came of it. Each action is
/// recorded twice: [`AccessOutcome::Attempted`] before acting (no action goes unrecorded), then
/// [`AccessOutcome::Done`] or [`AccessOutcome::Failed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectAccess {
    /// The tenant.
    pub tenant: String,
    /// The subject.
    pub subject: String,
    /// The access: its `Attempted` record and its outcome's share it.
    pub access_id: String,
    /// What was done.
    pub action: SubjectAction,
    /// What came of it.
    pub outcome: AccessOutcome,
    /// Who did it, as AWS verified it: the caller's full ARN (an assumed role's session name
    /// included: under IAM Identity Center it names the person) or a JWT's `sub`; `None` when no one
    /// was verified (a local run).
    pub actor: Option<String>,
    /// Through what: `http` (the admin API) or `cli` (`strata subjects`).
    pub via: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// The audit trail of subject exports and erasures (the same records whether the admin API or the
/// CLI acted), in a partition of its own that a forget never touches. It names the subject after the
/// subject is forgotten: subject ids must be pseudonymous (an id, never an email).
pub trait SubjectAudit: Send + Sync {
    /// Records one access.
    fn record_access(&self, access: &SubjectAccess) -> impl Future<Output = Result<(), Error>> + Send;

    /// Every recorded access to a subject, oldest first.
    fn accesses(
        &self,
        tenant: &str,
        subject: &str,
    ) -> impl Future<Output = Result<Vec<SubjectAccess>, Error>> + Send;
}

/// Idempotency keys under this prefix are written only by code (consumers' effect records, process
/// managers' commands), never by a caller: the HTTP API refuses an `Idempotency-Key` that starts with
/// it, so no request can take or block such a key.
pub const RESERVED_KEY_PREFIX: &str = "strata:";

/// Publishes committed events to consumers (EventBridge in production).
///
/// Commands never publish: the store's change feed is the outbox, and a relay publishes from it,
/// at least once. Entries retried after a partial failure can arrive after later versions of their
/// stream: consumers order and deduplicate by (stream, version).
pub trait Publisher: Send + Sync {
    /// Publishes events, in order.
    fn publish(&self, events: &[EventEnvelope]) -> impl Future<Output = Result<(), Error>> + Send;
}
