//! The repository: loads aggregates (snapshot + tail) and executes commands against them.

mod cache;
mod execute;
mod retry;

use std::marker::PhantomData;

use chrono::{DateTime, Utc};

use crate::crypto::{CipherSession, CryptoError, FieldCipher};
use crate::error::without_values;
use crate::{
    Aggregate, Error, EventEnvelope, EventPage, EventStore, Snapshot, SnapshotPolicy, SnapshotStore,
    StreamId, UpcasterChain, decode_event,
};

pub use cache::CachePolicy;
pub use execute::{CommandContext, CommandError, CommandOutcome};
pub use retry::RetryPolicy;

/// Events read per page when a stream is replayed from its start.
const REPLAY_PAGE: usize = 1_000;

/// An aggregate's state at a version.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The last version applied (0 for a stream with no events).
    pub version: u64,
}

/// State folded from a stream, with what the snapshot policy needs to know.
struct Folded<A> {
    state: A,
    version: u64,
    snapshot_version: u64,
    since: Option<DateTime<Utc>>,
    /// The keys the fold opened events with, and the key generations its plaintext came from: what
    /// is sealed from this state (snapshot, new events) goes through it (see [`CipherSession`]).
    session: Option<CipherSession>,
    /// When the stream was read: a cached state is dropped this long after, however often it is used.
    loaded_at: std::time::Instant,
    /// The stream cache's eviction epoch when the stream was read (see [`Repository::evict_cached`]).
    cache_epoch: u64,
}

impl<A: Aggregate> Folded<A> {
    fn empty(session: Option<CipherSession>) -> Self {
        Self {
            state: A::default(),
            version: 0,
            snapshot_version: 0,
            since: None,
            session,
            loaded_at: std::time::Instant::now(),
            cache_epoch: 0,
        }
    }
}

/// Loads and saves one kind of aggregate through a store.
///
/// ```
/// # use strata_core::{Repository, InMemoryStore, StreamId, CommandContext};
/// # async fn demo<A: strata_core::Aggregate>(cmd: A::Command) -> Result<(), Box<dyn std::error::Error>> {
/// let repo = Repository::<A, _>::new(InMemoryStore::new());
/// let stream = StreamId::new("acme", A::CATEGORY, "42")?;
/// let outcome = repo.execute(&stream, &cmd, CommandContext::default()).await?;
/// let loaded = repo.load(&stream).await?;
/// assert_eq!(loaded.version, outcome.version);
/// # Ok(()) }
/// ```
pub struct Repository<A, S> {
    store: S,
    upcasters: UpcasterChain,
    snapshots: SnapshotPolicy,
    retry: RetryPolicy,
    idempotency_ttl: chrono::Duration,
    cipher: Option<FieldCipher>,
    cache: cache::StreamCache<A>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate, S> Repository<A, S> {
    /// A repository with no upcasters, no snapshots, the default retry policy and 24 h idempotency.
    pub fn new(store: S) -> Self {
        Self {
            store,
            upcasters: UpcasterChain::empty(),
            snapshots: SnapshotPolicy::never(),
            retry: RetryPolicy::default(),
            idempotency_ttl: chrono::Duration::hours(24),
            cipher: None,
            cache: cache::StreamCache::new(CachePolicy::off()),
            _aggregate: PhantomData,
        }
    }

    /// Seals personal fields (of events and snapshots) with `cipher` before they are stored, and
    /// opens them on load. Without one, an event or state carrying personal data is refused
    /// ([`Error::NoCipher`]).
    pub fn with_cipher(mut self, cipher: FieldCipher) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// The cipher, if any.
    pub fn cipher(&self) -> Option<&FieldCipher> {
        self.cipher.as_ref()
    }

    /// A cipher session for one load and what it leads to (`None` without a cipher).
    fn session(&self) -> Option<CipherSession> {
        self.cipher.as_ref().map(FieldCipher::session)
    }

    /// Seals the personal fields of a new event or of state, if it has any, through the session that
    /// opened the data it was made from.
    pub(crate) async fn seal(
        &self,
        session: &mut Option<CipherSession>,
        tenant: &str,
        context: &str,
        payload: &mut serde_json::Value,
        personal: Option<crate::PersonalData>,
        sealing: Sealing<'_>,
    ) -> Result<Option<String>, Error> {
        let Some(personal) = personal else { return Ok(None) };
        let Some(session) = session else {
            let what = match sealing {
                Sealing::Event(event_type) => event_type,
                Sealing::State => "aggregate state",
            };
            return Err(Error::NoCipher { what: what.to_owned() });
        };
        match sealing {
            Sealing::Event(_) => session.seal(tenant, context, payload, &personal).await?,
            // A snapshot never recreates a forgotten subject's key.
            Sealing::State => session.seal_existing(tenant, context, payload, &personal).await?,
        }
        Ok(Some(personal.subject))
    }

    /// Opens the sealed fields of an event's payload (forgotten subjects read as redacted).
    async fn reveal(session: &mut Option<CipherSession>, envelope: &mut EventEnvelope) -> Result<(), Error> {
        match session {
            Some(session) => {
                session
                    .open(envelope.stream.tenant(), &envelope.event_id.to_string(), &mut envelope.payload)
                    .await
            }
            None => Ok(()),
        }
    }

    /// Uses these upcasters on every event read.
    pub fn with_upcasters(mut self, upcasters: UpcasterChain) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// Takes snapshots by this policy.
    pub fn with_snapshot_policy(mut self, policy: SnapshotPolicy) -> Self {
        self.snapshots = policy;
        self
    }

    /// The snapshot policy in effect.
    pub fn snapshot_policy(&self) -> SnapshotPolicy {
        self.snapshots
    }

    /// Retries conflicts by this policy.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Keeps the state of recently written streams in memory (see [`CachePolicy`]): a command on a
    /// cached stream is decided on that state and written at once, one request in all, with the
    /// conditional write at the next version as the check that nothing newer exists. A lost write
    /// folds in the commit that won (returned by the store with the failure) and decides again, so
    /// no state older than the stream's head is ever the basis of a committed command. A rejection
    /// or a command that changes nothing, decided on a cached state, is decided again on a fresh
    /// load before it is answered.
    pub fn with_stream_cache(mut self, policy: CachePolicy) -> Self {
        self.cache = cache::StreamCache::new(policy);
        self
    }

    /// The cache policy in effect.
    pub fn stream_cache(&self) -> CachePolicy {
        self.cache.policy()
    }

    /// How many streams the cache holds now.
    pub fn cached_streams(&self) -> usize {
        self.cache.len()
    }

    /// Drops the stream's cached state, if any: the next command on it loads. Appends made around
    /// the repository only cost a lost write and a catch-up; evict when code that wrote the stream
    /// by other means (a migration, a seed) wants the next command to read it. After anything that
    /// moved a stream's head back, use [`Repository::evict_rewound`].
    /// A command running meanwhile does not put back the state it took: every state read before an
    /// eviction is dropped instead of cached (all streams', evictions being rare).
    pub fn evict_cached(&self, stream: &StreamId) {
        self.cache.evict(stream, false);
    }

    /// Evicts like [`Repository::evict_cached`], after something moved the stream's head back (a
    /// restore, a repair): the cached head's next version is free again and a write on it would
    /// leave a gap. For a minute after, commands on the stream also load it with strongly consistent
    /// reads instead of [`EventStore::load_recent`]: a replica may still show the commits that were
    /// removed, and a write after them would leave a gap too.
    ///
    /// It reaches this process only. A repair in a deployed service therefore also deletes the
    /// snapshots above the new head (a load starts at the newest item) and keeps every command
    /// function from writing the stream until their caches have expired ([`CachePolicy`]'s
    /// `max_age`, five minutes by default) plus a margin: stop command traffic, or deploy, which
    /// replaces every instance.
    pub fn evict_rewound(&self, stream: &StreamId) {
        self.cache.evict(stream, true);
    }

    /// Keeps idempotency records this long.
    pub fn with_idempotency_ttl(mut self, ttl: chrono::Duration) -> Self {
        self.idempotency_ttl = ttl;
        self
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Upcasts and decodes one stored event. Its sealed personal fields must already be open: take
    /// events from [`Repository::read`], not from the store.
    pub fn decode(&self, envelope: &EventEnvelope) -> Result<A::Event, Error> {
        self.decode_payload(&envelope.event_type, envelope.schema_version, envelope.payload.clone())
    }

    fn decode_payload(
        &self,
        event_type: &str,
        version: u32,
        payload: serde_json::Value,
    ) -> Result<A::Event, Error> {
        let (event_type, version, payload) = self.upcast_opened(event_type, version, payload)?;
        decode_event(&event_type, version, payload).map_err(|error| self.opened_error(error))
    }

    /// Upcasts a payload whose sealed fields are open.
    fn upcast_opened(
        &self,
        event_type: &str,
        version: u32,
        payload: serde_json::Value,
    ) -> Result<(String, u32, serde_json::Value), Error> {
        self.upcasters.upcast(event_type, version, payload).map_err(|error| self.opened_error(error))
    }

    /// An error raised on an opened payload: with a cipher, the payload may hold opened personal
    /// fields, which serde's and upcasters' messages may quote; keep only what failed and how.
    fn opened_error(&self, error: Error) -> Error {
        if self.cipher.is_some() { error.without_values() } else { error }
    }

    fn check_category(&self, stream: &StreamId) -> Result<(), Error> {
        if stream.category() == A::CATEGORY {
            Ok(())
        } else {
            Err(Error::WrongCategory { stream: stream.clone(), expected: A::CATEGORY })
        }
    }

    /// Applies one stored event; takes it by value so the payload is decoded without a copy.
    fn apply(&self, folded: &mut Folded<A>, envelope: EventEnvelope) -> Result<(), Error> {
        if envelope.version != folded.version + 1 {
            return Err(Error::StreamCorrupted {
                stream: envelope.stream.clone(),
                expected: folded.version + 1,
                found: envelope.version,
            });
        }
        folded.state.evolve(&self.decode_payload(
            &envelope.event_type,
            envelope.schema_version,
            envelope.payload,
        )?);
        folded.version = envelope.version;
        Ok(())
    }

    /// Restores a snapshot, or `None` when it is of another state schema or does not decode.
    ///
    /// A store loads only snapshots of [`Aggregate::STATE_SCHEMA_VERSION`]; the check is a guard
    /// against one that does not.
    fn restore(&self, snapshot: &Snapshot) -> Option<A> {
        if snapshot.state_schema_version != A::STATE_SCHEMA_VERSION {
            let age =
                if snapshot.state_schema_version < A::STATE_SCHEMA_VERSION { "an older" } else { "a newer" };
            tracing::info!(
                stream = %snapshot.stream,
                version = snapshot.version,
                state_schema_version = snapshot.state_schema_version,
                expected = A::STATE_SCHEMA_VERSION,
                "ignoring snapshot of {age} state schema"
            );
            return None;
        }
        match serde_json::from_value(snapshot.state.clone()) {
            Ok(state) => Some(state),
            Err(error) => {
                let error = if self.cipher.is_some() { without_values(&error) } else { error };
                tracing::warn!(stream = %snapshot.stream, version = snapshot.version, %error, "ignoring snapshot that does not decode");
                None
            }
        }
    }
}

impl<A: Aggregate, S: EventStore + SnapshotStore> Repository<A, S> {
    /// Loads the current state: newest valid snapshot plus the events after it, in one store load.
    ///
    /// The snapshot is the newest of this aggregate's [`Aggregate::STATE_SCHEMA_VERSION`]; those of
    /// other schemas (code of another version during a rolling deploy) are read past, never replaced
    /// when newer. One that does not decode is ignored: the stream is replayed from the start and, if
    /// the policy takes snapshots, a fresh one is written.
    pub async fn load(&self, stream: &StreamId) -> Result<Loaded<A>, Error> {
        let folded = self.load_folded(stream).await?;
        Ok(Loaded { state: folded.state, version: folded.version })
    }

    /// The state as it was right after `version` (0 gives the initial state).
    /// Starts from the newest snapshot at or before `version`, so going back a few versions costs
    /// what a load costs, not a replay from version 1.
    pub async fn load_at_version(&self, stream: &StreamId, version: u64) -> Result<Loaded<A>, Error> {
        self.check_category(stream)?;
        let loaded = self.store.load_until(stream, A::STATE_SCHEMA_VERSION, version).await?;
        let folded = self.fold_loaded(stream, loaded, Until::Version(version)).await?;
        if folded.version < version {
            return Err(Error::VersionNotFound {
                stream: stream.clone(),
                requested: version,
                current: folded.version,
            });
        }
        Ok(Loaded { state: folded.state, version: folded.version })
    }

    /// The state as it was at `at`: every event committed at or before it.
    ///
    /// Starts from the newest snapshot whose last event was committed at or before `at`
    /// ([`EventStore::load_until_time`]).
    /// Commit times come from the writers' clocks; the fold stops at the first event committed
    /// after `at`, so versions stay a prefix of the stream even if clocks disagree slightly (a
    /// commit within that disagreement of `at` may then be in or out).
    pub async fn load_at_time(&self, stream: &StreamId, at: DateTime<Utc>) -> Result<Loaded<A>, Error> {
        self.check_category(stream)?;
        let loaded = self.store.load_until_time(stream, A::STATE_SCHEMA_VERSION, at).await?;
        let folded = self.fold_loaded(stream, loaded, Until::Time(at)).await?;
        Ok(Loaded { state: folded.state, version: folded.version })
    }

    /// Reads a page of events, upcast to the current schema versions.
    pub async fn read(&self, stream: &StreamId, from_version: u64, limit: usize) -> Result<EventPage, Error> {
        self.check_category(stream)?;
        let mut page = self.store.read(stream, from_version, limit).await?;
        let mut session = self.session();
        for envelope in &mut page.events {
            Self::reveal(&mut session, envelope).await?;
            let (event_type, version, payload) = self.upcast_opened(
                &envelope.event_type,
                envelope.schema_version,
                std::mem::take(&mut envelope.payload),
            )?;
            (envelope.event_type, envelope.schema_version, envelope.payload) = (event_type, version, payload);
        }
        Ok(page)
    }

    /// Writes a snapshot of the current state now and prunes to the policy's keep count (unless the
    /// policy leaves pruning to something else: [`SnapshotPolicy::pruned_elsewhere`]).
    pub async fn take_snapshot(&self, stream: &StreamId) -> Result<u64, Error> {
        let mut folded = self.load_folded(stream).await?;
        if folded.version > 0 {
            self.write_snapshot(stream, &folded.state, folded.version, &mut folded.session).await?;
        }
        Ok(folded.version)
    }

    async fn load_folded(&self, stream: &StreamId) -> Result<Folded<A>, Error> {
        self.check_category(stream)?;
        // Without snapshots to start from, the store may read forward in its largest pages.
        let loaded = if self.snapshots.loads_from_snapshots() {
            self.store.load(stream, A::STATE_SCHEMA_VERSION).await?
        } else {
            self.store.load_forward(stream, A::STATE_SCHEMA_VERSION).await?
        };
        self.fold_loaded(stream, loaded, Until::Head).await
    }

    /// Loads like [`Repository::load_folded`] with reads that may lag the head
    /// ([`EventStore::load_recent`]): for a command whose conditional write is the check.
    async fn load_folded_recent(&self, stream: &StreamId) -> Result<Folded<A>, Error> {
        self.check_category(stream)?;
        let forward = !self.snapshots.loads_from_snapshots();
        let loaded = self.store.load_recent(stream, A::STATE_SCHEMA_VERSION, forward).await?;
        self.fold_loaded(stream, loaded, Until::Head).await
    }

    /// Folds a loaded stream (snapshot and tail). A snapshot that does not open or decode is no
    /// cache: the stream is replayed from version 1 instead (up to `until`), and for a head load a
    /// fresh snapshot is written if the policy takes them.
    async fn fold_loaded(
        &self,
        stream: &StreamId,
        loaded: crate::LoadedStream,
        until: Until,
    ) -> Result<Folded<A>, Error> {
        let mut session = self.session();
        let Some(snapshot) = loaded.snapshot else {
            let mut folded = Folded::empty(session);
            folded.since = loaded.events.first().map(|e| e.metadata.committed_at);
            for mut envelope in loaded.events {
                Self::reveal(&mut folded.session, &mut envelope).await?;
                self.apply(&mut folded, envelope)?;
            }
            return Ok(folded);
        };
        let mut snapshot = snapshot;
        if let Some(session) = &mut session {
            let context = snapshot_context(stream, snapshot.version);
            match session.open(stream.tenant(), &context, &mut snapshot.state).await {
                Ok(()) => {}
                // A snapshot whose fields are tampered with, malformed or of an unknown format is
                // no cache: replay below. Anything else (KMS or DynamoDB failing, a key refused) says
                // nothing about the snapshot, and a replay would meet it too: let it propagate.
                Err(
                    error @ Error::Crypto(
                        CryptoError::Tampered { .. }
                        | CryptoError::Malformed { .. }
                        | CryptoError::UnknownFormat { .. },
                    ),
                ) => {
                    tracing::warn!(%stream, version = snapshot.version, %error, "snapshot does not open");
                    snapshot.state = serde_json::Value::Null;
                }
                Err(other) => return Err(other),
            }
        }
        if let Some(state) = self.restore(&snapshot) {
            let mut folded = Folded {
                state,
                version: snapshot.version,
                snapshot_version: snapshot.version,
                since: Some(snapshot.taken_at),
                session,
                loaded_at: std::time::Instant::now(),
                cache_epoch: 0,
            };
            for mut envelope in loaded.events {
                Self::reveal(&mut folded.session, &mut envelope).await?;
                self.apply(&mut folded, envelope)?;
            }
            return Ok(folded);
        }
        let mut folded = self.replay(stream, |e| until.keeps(e), session).await?;
        if until == Until::Head && self.snapshots.is_enabled() && folded.version > 0 {
            self.snapshot_best_effort(stream, &folded.state, folded.version, &mut folded.session).await;
            folded.snapshot_version = folded.version;
            folded.since = Some(Utc::now());
        }
        Ok(folded)
    }

    /// Folds events from version 1 while `keep` holds, reading page by page.
    async fn replay(
        &self,
        stream: &StreamId,
        keep: impl Fn(&EventEnvelope) -> bool,
        session: Option<CipherSession>,
    ) -> Result<Folded<A>, Error> {
        let mut folded = Folded::empty(session);
        let mut next = Some(1);
        while let Some(from) = next {
            let page = self.store.read(stream, from, REPLAY_PAGE).await?;
            for mut envelope in page.events {
                if !keep(&envelope) {
                    return Ok(folded);
                }
                Self::reveal(&mut folded.session, &mut envelope).await?;
                folded.since.get_or_insert(envelope.metadata.committed_at);
                self.apply(&mut folded, envelope)?;
            }
            next = page.next_version;
        }
        Ok(folded)
    }

    /// Seals the state through `session`, the one that opened the data it was folded from: state
    /// opened under a key generation that is no longer the subject's is never sealed again
    /// ([`CryptoError::StaleKey`]; no snapshot).
    async fn write_snapshot(
        &self,
        stream: &StreamId,
        state: &A,
        version: u64,
        session: &mut Option<CipherSession>,
    ) -> Result<(), Error> {
        let personal = state.personal_data();
        let mut state = serde_json::to_value(state)
            .map_err(|source| Error::Serialize { what: "aggregate state", source })?;
        let context = snapshot_context(stream, version);
        // Only with the subject's existing key: a snapshot never recreates a forgotten subject's key.
        self.seal(session, stream.tenant(), &context, &mut state, personal, Sealing::State).await?;
        let snapshot = Snapshot {
            stream: stream.clone(),
            version,
            state_schema_version: A::STATE_SCHEMA_VERSION,
            state,
            taken_at: Utc::now(),
        };
        // Every caller holds a head it loaded or wrote: no alignment check needed.
        if !self.store.save_snapshot_after_load(snapshot).await? {
            // A snapshot of a newer state schema holds this version: code of that schema is
            // running too (a rolling deploy). Its cache stays; ours is taken at a later version.
            tracing::info!(%stream, version, "snapshot of a newer state schema kept");
            return Ok(());
        }
        if !self.snapshots.prunes_on_write() {
            return Ok(());
        }
        // Snapshots of newer schemas are never pruned, whatever their age.
        // The snapshot is written: a prune that fails leaves one more than `keep` until the next.
        if let Err(error) =
            self.store.prune_snapshots(stream, self.snapshots.keep_count(), A::STATE_SCHEMA_VERSION).await
        {
            tracing::warn!(%stream, version, %error, "snapshots not pruned");
        }
        Ok(())
    }

    /// Snapshots are a cache: failing to write one is logged, never returned.
    async fn snapshot_best_effort(
        &self,
        stream: &StreamId,
        state: &A,
        version: u64,
        session: &mut Option<CipherSession>,
    ) {
        if let Err(error) = self.write_snapshot(stream, state, version, session).await {
            tracing::warn!(%stream, version, %error, "snapshot not written");
        }
    }
}

/// How far a load goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// To the head.
    Head,
    /// To this version.
    Version(u64),
    /// To the last event committed at or before this time, before the first committed after it.
    Time(DateTime<Utc>),
}

impl Until {
    fn keeps(self, event: &EventEnvelope) -> bool {
        match self {
            Self::Head => true,
            Self::Version(version) => event.version <= version,
            Self::Time(at) => event.metadata.committed_at <= at,
        }
    }
}

/// What [`Repository::seal`] seals.
pub(crate) enum Sealing<'a> {
    /// A new event of this type: the subject's key is created if it has none.
    Event(&'a str),
    /// Aggregate state: only with the subject's existing key.
    State,
}

/// What a snapshot's sealed fields are bound to: its stream and version.
fn snapshot_context(stream: &StreamId, version: u64) -> String {
    format!("snapshot:{stream}@{version}")
}
