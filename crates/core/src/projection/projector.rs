//! Applies delivered events to views exactly once and in stream order.

use std::collections::BTreeMap;

use chrono::Utc;

use super::{Lookup, Projection, StoredView, ViewStore, view_context};
use crate::crypto::{CipherSession, CryptoError};
use crate::{
    Error, EventEnvelope, EventStore, FieldCipher, StreamId, UpcasterChain, decode_event,
    error::without_values, validate_key_part,
};

/// Most events read from the store per page when filling a gap.
const GAP_PAGE: usize = 500;

/// An event as it reached a consumer: whole, or as a reference to resolve from the store (an event
/// too large for EventBridge is published that way).
#[derive(Debug, Clone, PartialEq)]
// References are rare (only events over 256 KB); boxing every event to shrink them is not worth it.
#[allow(clippy::large_enum_variant)]
pub enum Delivered {
    /// The committed event, personal fields still sealed.
    Event(EventEnvelope),
    /// Only its position: read it from the store.
    Reference {
        /// Its stream.
        stream: StreamId,
        /// Its version.
        version: u64,
    },
}

impl Delivered {
    /// The stream it belongs to.
    pub fn stream(&self) -> &StreamId {
        match self {
            Self::Event(envelope) => &envelope.stream,
            Self::Reference { stream, .. } => stream,
        }
    }

    /// Its version.
    pub fn version(&self) -> u64 {
        match self {
            Self::Event(envelope) => envelope.version,
            Self::Reference { version, .. } => *version,
        }
    }
}

/// A page of a lookup listing.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupPage<V> {
    /// The views: stream, listing, opened view.
    pub views: Vec<(StreamId, Lookup, V)>,
    /// Pass as `after` for the next page; `None` at the end.
    pub next: Option<String>,
}

/// What one [`Projector::project`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Projected {
    /// Events applied to the view (delivered or read from the store).
    pub applied: u64,
    /// Of those, events read from the store (gaps and references).
    pub fetched: u64,
    /// Delivered events already in the view: duplicates, skipped.
    pub duplicates: u64,
    /// The view's version (checkpoint) afterwards.
    pub version: u64,
}

/// Keeps one projection's views up to date from delivered events.
///
/// `S` is the store the events live in and the views are kept in (one table in production: the
/// `DynamoStore`; [`crate::InMemoryStore`] in tests).
pub struct Projector<P, S> {
    projection: P,
    store: S,
    cipher: Option<FieldCipher>,
    upcasters: UpcasterChain,
    max_attempts: u32,
}

impl<P: Projection, S: EventStore + ViewStore> Projector<P, S> {
    /// A projector of `projection` over `store`, without a cipher (for events without personal data).
    pub fn new(projection: P, store: S) -> Self {
        Self { projection, store, cipher: None, upcasters: UpcasterChain::empty(), max_attempts: 5 }
    }

    /// Opens sealed event fields with this cipher and seals the view's personal fields with it.
    pub fn with_cipher(mut self, cipher: FieldCipher) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// Upcasts stored events with this chain before decoding (the aggregate's chain).
    pub fn with_upcasters(mut self, upcasters: UpcasterChain) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// How many times to reload and reapply after losing a race with another projector on the same
    /// stream (default 5).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    fn session(&self) -> Option<CipherSession> {
        self.cipher.as_ref().map(FieldCipher::session)
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Whether this projector follows `stream` (its category, or one of its other categories).
    pub fn follows(&self, stream: &StreamId) -> bool {
        stream.category() == P::CATEGORY || P::OTHER_CATEGORIES.contains(&stream.category())
    }

    /// Applies delivered events of one stream, in any order and with duplicates, exactly once each and
    /// in version order, reading missing versions (gaps, references) from the store. Writes the view
    /// once, conditionally on the checkpoint it read; a lost race reloads and tries again.
    pub async fn project(&self, stream: &StreamId, delivered: Vec<Delivered>) -> Result<Projected, Error> {
        if !self.follows(stream) {
            return Err(Error::WrongCategory { stream: stream.clone(), expected: P::CATEGORY });
        }
        if let Some(other) = delivered.iter().find(|d| d.stream() != stream) {
            return Err(Error::InvalidRequest(format!(
                "event of {} delivered with the events of {stream}",
                other.stream()
            )));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.project_once(stream, &delivered).await {
                Err(error) if error.is_conflict() && attempt < self.max_attempts => {
                    tracing::debug!(%stream, attempt, "view changed under us; reloading");
                }
                Err(error) if is_stale_key(&error) && attempt < self.max_attempts => {
                    tracing::info!(%stream, attempt, "view opened under a forgotten key generation; reloading");
                }
                other => return other.map_err(stale_key_retryable),
            }
        }
    }

    /// Rebuilds a stream's view from its first event, whatever the view recorded: what an operator
    /// runs after fixing a projection's fold without changing its schema. Reads the whole stream (in
    /// pages), writes the view once, conditionally on the version it found; a projector that moved
    /// the view meanwhile makes it read and fold again.
    pub async fn rebuild(&self, stream: &StreamId) -> Result<Projected, Error> {
        if !self.follows(stream) {
            return Err(Error::WrongCategory { stream: stream.clone(), expected: P::CATEGORY });
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.rebuild_once(stream).await {
                Err(error) if error.is_conflict() && attempt < self.max_attempts => {
                    tracing::debug!(%stream, attempt, "view changed while rebuilding; again");
                }
                Err(error) if is_stale_key(&error) && attempt < self.max_attempts => {
                    tracing::info!(%stream, attempt, "events opened under a forgotten key generation; again");
                }
                other => return other.map_err(stale_key_retryable),
            }
        }
    }

    async fn rebuild_once(&self, stream: &StreamId) -> Result<Projected, Error> {
        let mut session = self.session();
        let stored = self.store.get_view(P::NAME, stream).await?;
        if let Some(stored) = stored.as_ref().filter(|s| s.schema_version > P::SCHEMA_VERSION) {
            return Err(newer_schema::<P>(stream, stored));
        }
        let expected = stored.map(|s| s.version);
        let mut view = None;
        let mut outcome = Projected::default();
        let mut next = 1;
        loop {
            let page = self.store.read(stream, next, GAP_PAGE).await?;
            view = self.apply_read(&mut session, stream, view, page.events, &mut next, &mut outcome).await?;
            match page.next_version {
                Some(version) if version == next => {}
                Some(version) => {
                    return Err(Error::StreamCorrupted {
                        stream: stream.clone(),
                        expected: next,
                        found: version,
                    });
                }
                None => break,
            }
        }
        outcome.version = next - 1;
        self.write(&mut session, stream, view, outcome.version, expected).await?;
        Ok(outcome)
    }

    async fn project_once(&self, stream: &StreamId, delivered: &[Delivered]) -> Result<Projected, Error> {
        // One session for the view and every event: each subject's key is read once, and what was
        // opened under an old key generation is never sealed into the view under a new one.
        let mut session = self.session();
        let stored = self.store.get_view(P::NAME, stream).await?;
        let expected = stored.as_ref().map(|s| s.version);
        // A view of an older schema, or one that no longer decodes, is rebuilt from the start of the
        // stream (like a snapshot, it is a cache of the fold); a newer one belongs to newer code.
        let (mut view, checkpoint) = match stored {
            Some(stored) if stored.schema_version == P::SCHEMA_VERSION => {
                match self.open_view(&mut session, stream, stored.state).await {
                    Ok(view) => (view, stored.version),
                    Err(Error::Deserialize { .. }) => {
                        tracing::warn!(%stream, projection = P::NAME, "view does not decode; rebuilding it");
                        (None, 0)
                    }
                    Err(other) => return Err(other),
                }
            }
            Some(stored) if stored.schema_version > P::SCHEMA_VERSION => {
                return Err(newer_schema::<P>(stream, &stored));
            }
            _ => (None, 0),
        };
        let target = delivered.iter().map(Delivered::version).max().unwrap_or(0);
        let mut outcome = Projected {
            duplicates: delivered.iter().filter(|d| d.version() <= checkpoint).count() as u64,
            version: checkpoint,
            ..Projected::default()
        };
        // Rebuilding (old schema) goes as far as the old checkpoint at least.
        let target = target.max(expected.unwrap_or(0));
        if target <= checkpoint {
            return Ok(outcome);
        }
        let mut at_hand: BTreeMap<u64, EventEnvelope> = delivered
            .iter()
            .filter_map(|d| match d {
                Delivered::Event(envelope) if envelope.version > checkpoint => {
                    Some((envelope.version, envelope.clone()))
                }
                _ => None,
            })
            .collect();
        let mut next = checkpoint + 1;
        while next <= target {
            if let Some(envelope) = at_hand.remove(&next) {
                view = self.apply(&mut session, view, envelope).await?;
                outcome.applied += 1;
                next += 1;
                continue;
            }
            // Read only up to the next event at hand.
            let until = at_hand.keys().next().map_or(target, |v| v - 1);
            let wanted = usize::try_from(until - next + 1).unwrap_or(GAP_PAGE).min(GAP_PAGE);
            let page = self.store.read(stream, next, wanted).await?;
            let fetched: Vec<EventEnvelope> =
                page.events.into_iter().take_while(|e| e.version <= until).collect();
            if fetched.first().map(|e| e.version) != Some(next) {
                // A delivered version the store does not have: the stream is not where the event says.
                return Err(Error::VersionNotFound {
                    stream: stream.clone(),
                    requested: next,
                    current: next - 1,
                });
            }
            view = self.apply_read(&mut session, stream, view, fetched, &mut next, &mut outcome).await?;
        }
        outcome.version = next - 1;
        self.write(&mut session, stream, view, outcome.version, expected).await?;
        Ok(outcome)
    }

    /// Folds in events read from the store, which must continue at `next` without a hole.
    async fn apply_read(
        &self,
        session: &mut Option<CipherSession>,
        stream: &StreamId,
        mut view: Option<P::View>,
        events: Vec<EventEnvelope>,
        next: &mut u64,
        outcome: &mut Projected,
    ) -> Result<Option<P::View>, Error> {
        for envelope in events {
            if envelope.version != *next {
                return Err(Error::StreamCorrupted {
                    stream: stream.clone(),
                    expected: *next,
                    found: envelope.version,
                });
            }
            view = self.apply(session, view, envelope).await?;
            outcome.applied += 1;
            outcome.fetched += 1;
            *next += 1;
        }
        Ok(view)
    }

    /// Decodes one event (opened, upcast) and folds it in.
    async fn apply(
        &self,
        session: &mut Option<CipherSession>,
        view: Option<P::View>,
        mut envelope: EventEnvelope,
    ) -> Result<Option<P::View>, Error> {
        if let Some(session) = session {
            session
                .open(envelope.stream.tenant(), &envelope.event_id.to_string(), &mut envelope.payload)
                .await?;
        }
        let payload = std::mem::take(&mut envelope.payload);
        let event = self
            .upcasters
            .upcast(&envelope.event_type, envelope.schema_version, payload)
            .and_then(|(event_type, version, payload)| {
                decode_event::<P::Event>(&event_type, version, payload)
            })
            // Upcasters' and serde's messages may quote the payload's values: opened personal fields.
            .map_err(Error::without_values)?;
        Ok(self.projection.apply(view, &event, &envelope))
    }

    /// Seals the view through `session`, the one that opened what it was folded from: a view
    /// opened under a key generation the subject no longer has is never sealed again
    /// ([`crate::crypto::CryptoError::StaleKey`]: reload).
    async fn write(
        &self,
        session: &mut Option<CipherSession>,
        stream: &StreamId,
        view: Option<P::View>,
        version: u64,
        expected: Option<u64>,
    ) -> Result<(), Error> {
        validate_key_part("projection", P::NAME, crate::MAX_CATEGORY_LEN)?;
        let lookup = view.as_ref().and_then(|v| self.projection.lookup(v));
        if let Some(lookup) = &lookup {
            validate_key_part("lookup partition", &lookup.partition, crate::MAX_ID_LEN)?;
            if lookup.sort.is_empty() || lookup.sort.len() > MAX_LOOKUP_SORT_LEN {
                return Err(Error::InvalidRequest(format!(
                    "lookup sort key of view {} must be 1 to {MAX_LOOKUP_SORT_LEN} bytes",
                    P::NAME
                )));
            }
        }
        let state = match view {
            Some(view) => {
                let personal = self.projection.personal_data(&view);
                let mut state = serde_json::to_value(&view)
                    .map_err(|source| Error::Serialize { what: "view", source })?;
                if let Some(personal) = personal {
                    let Some(session) = session else {
                        return Err(Error::NoCipher { what: format!("view {}", P::NAME) });
                    };
                    // Never recreates a forgotten subject's key: a view of a forgotten subject holds
                    // only redaction markers, which need none.
                    let context = view_context(P::NAME, stream);
                    session.seal_existing(stream.tenant(), &context, &mut state, &personal).await?;
                }
                Some(state)
            }
            None => None,
        };
        let stored = StoredView {
            projection: P::NAME.to_owned(),
            stream: stream.clone(),
            version,
            schema_version: P::SCHEMA_VERSION,
            state,
            lookup,
            updated_at: Utc::now(),
        };
        self.store.put_view(stored, expected).await
    }

    async fn open_view(
        &self,
        session: &mut Option<CipherSession>,
        stream: &StreamId,
        state: Option<serde_json::Value>,
    ) -> Result<Option<P::View>, Error> {
        let Some(mut state) = state else { return Ok(None) };
        if let Some(session) = session {
            session.open(stream.tenant(), &view_context(P::NAME, stream), &mut state).await?;
        }
        serde_json::from_value(state)
            .map(Some)
            .map_err(|source| Error::Deserialize { what: "view", source: without_values(&source) })
    }

    /// The current view of a stream, personal fields opened (redacted once the subject is forgotten),
    /// with its version; `None` when the projection keeps none.
    pub async fn view(&self, stream: &StreamId) -> Result<Option<(P::View, u64)>, Error> {
        let Some(stored) = self.store.get_view(P::NAME, stream).await? else { return Ok(None) };
        if stored.schema_version > P::SCHEMA_VERSION {
            return Err(newer_schema::<P>(stream, &stored));
        }
        if stored.schema_version < P::SCHEMA_VERSION {
            // Not rebuilt yet: the next delivered event of the stream rebuilds it.
            return Ok(None);
        }
        let version = stored.version;
        Ok(self.open_view(&mut self.session(), stream, stored.state).await?.map(|view| (view, version)))
    }

    /// Up to `limit` views listed under a lookup partition, after position `after` (exclusive; `None`
    /// from the start), opened, in order. Page on with [`LookupPage::next`] until it is `None`.
    pub async fn lookup(
        &self,
        tenant: &str,
        partition: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<LookupPage<P::View>, Error> {
        let stored = self.store.lookup_views(tenant, P::NAME, partition, after, limit).await?;
        // Counted before views of another schema are left out, so a short page still pages on.
        let next = (stored.len() >= limit)
            .then(|| {
                stored.last().and_then(|s| s.lookup.as_ref().map(|l| super::lookup_position(l, &s.stream)))
            })
            .flatten();
        let mut views = Vec::new();
        let mut session = self.session();
        for stored in stored {
            if stored.schema_version != P::SCHEMA_VERSION {
                continue;
            }
            if let (Some(view), Some(lookup)) =
                (self.open_view(&mut session, &stored.stream, stored.state).await?, stored.lookup)
            {
                views.push((stored.stream, lookup, view));
            }
        }
        Ok(LookupPage { views, next })
    }
}

fn is_stale_key(error: &Error) -> bool {
    matches!(error, Error::Crypto(CryptoError::StaleKey { .. }))
}

/// Out of attempts on a stale key: a retryable failure (the delivery is retried later).
fn stale_key_retryable(error: Error) -> Error {
    match error {
        Error::Crypto(stale @ CryptoError::StaleKey { .. }) => Error::backend(stale, true),
        other => other,
    }
}

/// Longest lookup sort key (DynamoDB's limit for an index sort key).
const MAX_LOOKUP_SORT_LEN: usize = 1024;

fn newer_schema<P: Projection>(stream: &StreamId, stored: &StoredView) -> Error {
    // Retryable: during a deployment, newer code wrote this view; this (older) code must neither
    // overwrite it in the old shape nor serve it.
    Error::backend(
        format!(
            "view {} of {stream} has schema version {}, newer than this code's {}",
            P::NAME,
            stored.schema_version,
            P::SCHEMA_VERSION
        ),
        true,
    )
}

impl<P, S> std::fmt::Debug for Projector<P, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector").field("max_attempts", &self.max_attempts).finish_non_exhaustive()
    }
}
