//! Executing a command: load, decide, append once; retry on conflict; idempotency by key.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Folded, Repository, Sealing};
use crate::crypto::CryptoError;
use crate::{
    Aggregate, AppendAttempt, AppendRequest, Command, Error, EventId, EventStore, ExpectedVersion,
    IdempotencyRecord, IdempotencyStore, MAX_ID_LEN, Metadata, NewEvent, SnapshotStore, StreamId,
    encode_event, validate_key_part,
};

/// Who sends a command, and on what conditions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandContext {
    /// Correlation id; a new ULID when absent.
    pub correlation_id: Option<String>,
    /// The id of what caused this command.
    pub causation_id: Option<String>,
    /// The user or service sending it.
    pub actor: Option<String>,
    /// The trace id to carry into events.
    pub trace_id: Option<String>,
    /// A repeated key returns the first result and writes nothing.
    pub idempotency_key: Option<String>,
    /// The version the caller saw (HTTP `If-Match`); a mismatch is a [`Error::Conflict`].
    pub expected_version: Option<ExpectedVersion>,
    /// Application metadata for the events.
    pub user: BTreeMap<String, String>,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// The stream.
    pub stream: StreamId,
    /// The stream's version after the command.
    pub version: u64,
    /// Ids of the events recorded, in order (empty when the command changed nothing).
    pub event_ids: Vec<EventId>,
}

/// Why a command did not run: the domain said no, or something else went wrong.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E> {
    /// The aggregate rejected the command (a domain rule).
    #[error("command rejected: {0}")]
    Rejected(#[source] E),
    /// Anything other than a domain rule: conflict, bad input, store failure.
    #[error(transparent)]
    Failed(#[from] Error),
}

impl<E> CommandError<E> {
    /// The infrastructure error, if this is not a domain rejection.
    pub fn as_error(&self) -> Option<&Error> {
        match self {
            Self::Failed(error) => Some(error),
            Self::Rejected(_) => None,
        }
    }
}

/// Where the state a command is decided on came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Basis {
    /// The stream cache: possibly behind the store.
    Cached,
    /// A load whose reads may lag the head ([`EventStore::load_recent`]): possibly behind the store.
    Recent,
    /// A load of the stream as stored (strongly consistent).
    Loaded,
    /// A state that lost a write, brought up to the commit that won it (more may follow).
    CaughtUp,
    /// A state that lost a write, brought up to the head by a read.
    ReadToHead,
}

impl Basis {
    /// Whether the state may be behind the store for reasons of its own, not a race the command
    /// lost: a lost write then neither counts as an attempt nor waits.
    fn may_lag(self) -> bool {
        matches!(self, Self::Cached | Self::Recent)
    }

    /// Whether the state was the stream's head when it was read: only then may a rejection, a
    /// command that changes nothing or a failed expectation be answered from it.
    fn is_head(self) -> bool {
        matches!(self, Self::Loaded | Self::ReadToHead)
    }
}

/// Binds an idempotency key to the exact request: stream, command name and body.
fn request_hash<C: Command>(stream: &StreamId, command: &C) -> Result<String, Error> {
    let body = serde_json::to_vec(command).map_err(|source| Error::Serialize { what: "command", source })?;
    let mut hasher = Sha256::new();
    for part in [stream.tenant(), stream.category(), stream.id(), command.command_name()] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.update(&body);
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

impl<A, S> Repository<A, S>
where
    A: Aggregate,
    S: EventStore + SnapshotStore + IdempotencyStore,
{
    /// Executes a command: one load (none on a stream in the cache, see
    /// [`Repository::with_stream_cache`]), one decide, one atomic append.
    ///
    /// On a concurrency conflict a command whose [`Command::retry_on_conflict`] allows it is decided
    /// again, with bounded jittered backoff, on its state caught up with the commit that won (and,
    /// after a second loss in a row, with everything newer): nothing already folded is read again.
    /// An `expected_version` in the context is checked against the head the command is decided on
    /// before anything is written (a cached head that fails it is read again first; one that matches
    /// is checked by the write's condition), so an expectation that names a version inside an
    /// earlier multi-event commit is a conflict too. With an
    /// idempotency key, a repeat of the same request returns the first outcome and writes nothing;
    /// the key with a different request is [`Error::IdempotencyKeyReused`]. The key's record is not
    /// read first (except when the events carry personal data: sealing them may create a subject's
    /// key and index the stream, which a repeat must not do): the append is conditional on the key
    /// being free, so a first attempt costs no extra request, and a repeat is answered from the record when its write fails (or when it is
    /// rejected or changes nothing now, as a repeat of a command that took effect often is).
    pub async fn execute(
        &self,
        stream: &StreamId,
        command: &A::Command,
        context: CommandContext,
    ) -> Result<CommandOutcome, CommandError<A::Error>> {
        let key = context.idempotency_key.clone();
        let result = self.try_execute(stream, command, context).await;
        // An earlier or concurrent request with the same key may have committed: then this request's
        // rejection or conflict is only an echo of it, and the caller is owed the first outcome.
        // Checked only on these error paths, so a success costs no extra read.
        match (&result, key) {
            (Err(CommandError::Rejected(_) | CommandError::Failed(Error::Conflict { .. })), Some(key)) => {
                let hash = request_hash(stream, command)?;
                match self.recorded_outcome(stream, &key, &hash).await? {
                    Some(outcome) => Ok(outcome),
                    None => result,
                }
            }
            _ => result,
        }
    }

    async fn try_execute(
        &self,
        stream: &StreamId,
        command: &A::Command,
        context: CommandContext,
    ) -> Result<CommandOutcome, CommandError<A::Error>> {
        self.check_category(stream)?;
        let idempotency = match &context.idempotency_key {
            Some(key) => {
                validate_key_part("idempotency key", key, MAX_ID_LEN).map_err(Error::from)?;
                // No read of the key's record first: the write of the command's events is
                // conditional on the key being free, so a repeat fails it and is answered from the
                // record then (as is a repeat that is rejected or changes nothing now).
                Some((key.clone(), request_hash(stream, command)?))
            }
            None => None,
        };
        let correlation_id = context.correlation_id.clone().unwrap_or_else(|| EventId::new().to_string());
        let started = std::time::Instant::now();
        let mut attempt = 1;
        // The state the next decision is made on: a cached one (no read), one caught up after a
        // lost write, or none (load the stream). A command that must not be decided twice loads:
        // with a cached state, a lost write could not tell a stale cache from a race it lost.
        let cached = self.cache.take(stream);
        let mut basis = cached.filter(|_| command.retry_on_conflict()).map(|folded| (folded, Basis::Cached));
        let mut record_checked = false;
        // Set when an answer needs the head as stored: the next load is strongly consistent.
        let mut head_needed = !command.retry_on_conflict();
        loop {
            let (mut folded, source) = match basis.take() {
                Some(held) => held,
                None => {
                    let epoch = self.cache.epoch();
                    // A command that may be decided again loads like a cached state: with reads
                    // that may lag the head (half the read units on DynamoDB), the write's condition
                    // being the check.
                    // (As does a stream evicted as rewound lately: a replica may still show what a
                    // restore removed.)
                    let (mut loaded, source) = if head_needed || self.cache.evicted_lately(stream) {
                        (self.load_folded(stream).await?, Basis::Loaded)
                    } else {
                        (self.load_folded_recent(stream).await?, Basis::Recent)
                    };
                    loaded.cache_epoch = epoch;
                    (loaded, source)
                }
            };
            if let Some(expected) = context.expected_version
                && !expected.matches(folded.version)
            {
                // A cached, recently read or partly caught-up head may be behind the store's: only
                // a strongly consistent read to the head may fail the expectation.
                if !source.is_head() {
                    head_needed = true;
                    continue;
                }
                return Err(Error::Conflict {
                    stream: stream.clone(),
                    expected,
                    actual: Some(folded.version),
                }
                .into());
            }
            let events = match folded.state.decide(command) {
                // A rejection, or nothing to do, is answered without a write that would check the
                // state it was decided on: decide again on the stream as stored.
                Err(_) if !source.is_head() => {
                    head_needed = true;
                    continue;
                }
                Ok(events) if events.is_empty() && !source.is_head() => {
                    head_needed = true;
                    continue;
                }
                Err(rejection) => return Err(CommandError::Rejected(rejection)),
                Ok(events) => events,
            };
            let now = Utc::now();
            let metadata = Metadata {
                correlation_id: correlation_id.clone(),
                causation_id: context.causation_id.clone(),
                actor: context.actor.clone(),
                idempotency_key: context.idempotency_key.clone(),
                trace_id: context.trace_id.clone(),
                committed_at: now,
                user: context.user.clone(),
            };
            // Sealing may create a subject's key and index a stream before the write that would tell
            // a repeat apart: for a keyed command with personal data, look at the record first.
            if let Some((key, hash)) = &idempotency
                && self.cipher.is_some()
                && !record_checked
                && events.iter().any(|e| crate::Event::personal_data(e).is_some())
            {
                record_checked = true;
                if let Some(outcome) = self.recorded_outcome(stream, key, hash).await? {
                    self.cache.put(stream, folded);
                    return Ok(outcome);
                }
            }
            let mut new_events = Vec::with_capacity(events.len());
            let mut plaintexts = Vec::with_capacity(events.len());
            let mut subjects: Vec<String> = Vec::new();
            let mut stale = false;
            for event in &events {
                let encoded = encode_event(event)?;
                let event_id = EventId::new();
                let mut payload = encoded.payload;
                // What a load will decode, before sealing: the state evolves from it.
                plaintexts.push(payload.clone());
                let context = event_id.to_string();
                let sealed = self
                    .seal(
                        &mut folded.session,
                        stream.tenant(),
                        &context,
                        &mut payload,
                        crate::Event::personal_data(event),
                        Sealing::Event(&encoded.event_type),
                    )
                    .await;
                let subject = match sealed {
                    // The state holds data opened under a key generation the subject no longer has
                    // (forgotten and back, elsewhere), which the events may have copied: decide again
                    // on a reload, where that data reads as redacted.
                    Err(Error::Crypto(stale_key @ CryptoError::StaleKey { .. })) => {
                        if attempt >= self.retry.max_attempts {
                            return Err(Error::backend(stale_key, true).into());
                        }
                        stale = true;
                        break;
                    }
                    other => other?,
                };
                if let Some(subject) = subject
                    && !subjects.contains(&subject)
                {
                    subjects.push(subject);
                }
                new_events.push(NewEvent {
                    event_id,
                    event_type: encoded.event_type,
                    schema_version: encoded.schema_version,
                    payload,
                    metadata: metadata.clone(),
                });
            }
            if stale {
                attempt += 1;
                continue;
            }
            let outcome = CommandOutcome {
                stream: stream.clone(),
                version: folded.version + new_events.len() as u64,
                event_ids: new_events.iter().map(|e| e.event_id).collect(),
            };
            let record = match &idempotency {
                Some((key, hash)) => Some(IdempotencyRecord {
                    tenant: stream.tenant().to_owned(),
                    key: key.clone(),
                    request_hash: hash.clone(),
                    outcome: serde_json::to_value(&outcome)
                        .map_err(|source| Error::Serialize { what: "command outcome", source })?,
                    expires_at: now
                        .checked_add_signed(self.idempotency_ttl)
                        .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC),
                }),
                None => None,
            };
            if new_events.is_empty() {
                self.cache.put(stream, folded);
                return match record {
                    Some(record) => match self.store.put_record(record).await {
                        Ok(()) => Ok(outcome),
                        Err(Error::IdempotencyKeyExists { key }) => {
                            self.raced_outcome(stream, command, key).await
                        }
                        Err(error) => Err(error.into()),
                    },
                    None => Ok(outcome),
                };
            }
            let expected = if folded.version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(folded.version)
            };
            // Index the stream under each subject before writing, so an export never misses it.
            if let Some(cipher) = &self.cipher {
                for subject in &subjects {
                    cipher.keys().remember_stream(stream.tenant(), subject, stream).await?;
                }
            }
            let request =
                AppendRequest { stream: stream.clone(), expected, events: new_events, idempotency: record };
            match self.store.try_append_after_load(request).await {
                Ok(AppendAttempt::Committed(commit)) => {
                    // Evolve from the events as a load will decode them (serde may not round-trip a
                    // decided event exactly), so the cached state is the state a load gives.
                    let mut cacheable = true;
                    for ((event, plaintext), stored) in events.iter().zip(plaintexts).zip(&commit.events) {
                        match self.decode_payload(&stored.event_type, stored.schema_version, plaintext) {
                            Ok(decoded) => folded.state.evolve(&decoded),
                            Err(error) => {
                                tracing::warn!(%stream, %error, "a committed event does not decode; not cached");
                                cacheable = false;
                                folded.state.evolve(event);
                            }
                        }
                    }
                    folded.version = commit.last_version;
                    // No snapshot of a state a load could not rebuild.
                    if cacheable
                        && self.snapshots.is_due(folded.version, folded.snapshot_version, folded.since)
                    {
                        match self
                            .write_snapshot(stream, &folded.state, folded.version, &mut folded.session)
                            .await
                        {
                            Ok(()) => {
                                folded.snapshot_version = folded.version;
                                folded.since = Some(Utc::now());
                            }
                            // The state holds data of a key generation the subject no longer has:
                            // no snapshot, and no further command decided on it.
                            Err(error @ Error::Crypto(CryptoError::StaleKey { .. })) => {
                                tracing::warn!(%stream, version = folded.version, %error, "snapshot not written");
                                cacheable = false;
                            }
                            // Snapshots are a cache: after a transient failure the next command
                            // tries again; after any other, the next interval does.
                            Err(error) => {
                                tracing::warn!(%stream, version = folded.version, %error, "snapshot not written");
                                if !matches!(error, Error::Backend { retryable: true, .. }) {
                                    folded.snapshot_version = folded.version;
                                    folded.since = Some(Utc::now());
                                }
                            }
                        }
                    }
                    if cacheable {
                        self.cache.put(stream, folded);
                    }
                    return Ok(outcome);
                }
                // Decided on a cached or recently read state that the stream had moved past: not a
                // race this command lost, so it is decided again whatever its retry settings.
                Ok(AppendAttempt::Lost { winner, .. }) if source.may_lag() => {
                    basis = self.catch_up(stream, folded, winner, false).await?;
                    // What won does not continue the state: load the head as stored, so a lagging
                    // read cannot send the command round this loop again without a wait.
                    head_needed |= basis.is_none();
                }
                Ok(AppendAttempt::Lost { winner, .. })
                    if let Some(delay) = self.retry_delay(command, attempt, started) =>
                {
                    tokio::time::sleep(delay).await;
                    // After a second loss in a row, read everything newer instead of learning one
                    // commit per lost write.
                    let read_rest = source == Basis::CaughtUp;
                    basis = self.catch_up(stream, folded, winner, read_rest).await?;
                    attempt += 1;
                }
                Ok(AppendAttempt::Lost { actual, .. }) => {
                    return Err(Error::Conflict { stream: stream.clone(), expected, actual }.into());
                }
                Err(Error::Conflict { .. })
                    if let Some(delay) = self.retry_delay(command, attempt, started) =>
                {
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(Error::IdempotencyKeyExists { key }) => {
                    // Nothing was written: the state is still the stream's as far as it knew.
                    self.cache.put(stream, folded);
                    return self.raced_outcome(stream, command, key).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// How long to wait before deciding a command again after a lost race, if it may be.
    fn retry_delay(
        &self,
        command: &A::Command,
        attempt: u32,
        started: std::time::Instant,
    ) -> Option<std::time::Duration> {
        if !command.retry_on_conflict() {
            return None;
        }
        self.retry.next_delay(attempt, started.elapsed())
    }

    /// Brings a state that lost a write up to the stream: folds in the commit that won (opening its
    /// sealed fields through the state's own session) and, when there is none or `read_rest`, every
    /// event after it (then the state is the head's as of that read). `None` (load afresh) when what
    /// was read does not continue the state.
    async fn catch_up(
        &self,
        stream: &StreamId,
        mut folded: Folded<A>,
        winner: Option<crate::Commit>,
        read_rest: bool,
    ) -> Result<Option<(Folded<A>, Basis)>, Error> {
        let mut events = Vec::new();
        let read_rest = match winner {
            Some(commit) if commit.first_version == folded.version + 1 => {
                events.extend(commit.events);
                read_rest
            }
            _ => true,
        };
        if read_rest {
            let after = events.last().map_or(folded.version, |e: &crate::EventEnvelope| e.version);
            events.extend(self.store.read_after(stream, after).await?);
        }
        for mut envelope in events {
            Self::reveal(&mut folded.session, &mut envelope).await?;
            if let Err(error) = self.apply(&mut folded, envelope) {
                tracing::warn!(%stream, %error, "catching up failed; loading the stream");
                return Ok(None);
            }
        }
        Ok(Some((folded, if read_rest { Basis::ReadToHead } else { Basis::CaughtUp })))
    }

    /// The outcome recorded for this key and request, `None` when there is no record, or
    /// [`Error::IdempotencyKeyReused`] when the record is for another request.
    async fn recorded_outcome(
        &self,
        stream: &StreamId,
        key: &str,
        hash: &str,
    ) -> Result<Option<CommandOutcome>, Error> {
        let Some(record) = self.store.get_record(stream.tenant(), key).await? else {
            return Ok(None);
        };
        if record.request_hash != hash {
            return Err(Error::IdempotencyKeyReused { key: key.to_owned() });
        }
        serde_json::from_value(record.outcome)
            .map(Some)
            .map_err(|source| Error::Deserialize { what: "idempotency outcome", source })
    }

    /// A concurrent request with the same key committed first: answer with its outcome.
    async fn raced_outcome(
        &self,
        stream: &StreamId,
        command: &A::Command,
        key: String,
    ) -> Result<CommandOutcome, CommandError<A::Error>> {
        let hash = request_hash(stream, command)?;
        match self.recorded_outcome(stream, &key, &hash).await? {
            Some(outcome) => Ok(outcome),
            // The winner's record expired between the failed write and this read.
            None => Err(Error::IdempotencyKeyExists { key }.into()),
        }
    }
}
