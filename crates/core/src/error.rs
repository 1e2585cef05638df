//! The core crate's error type.

use crate::{ExpectedVersion, KeyError, StreamId};

/// A boxed error from a backend (DynamoDB, KMS, ...), kept as a source, never flattened to a string.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong outside the domain's own rules.
///
/// Domain rejections are not here: they are the aggregate's own error type, carried by
/// [`CommandError::Rejected`](crate::CommandError::Rejected).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tenant, category, id or other key part is invalid.
    #[error("invalid key: {0}")]
    InvalidKey(#[from] KeyError),
    /// The stream's version did not match what the writer expected; nothing was written.
    #[error("conflict on {stream}: expected {expected}, stream is at {}", actual.map_or("an unknown version".to_owned(), |v| format!("version {v}")))]
    Conflict {
        /// The stream written to.
        stream: StreamId,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The version found, when the store knows it.
        actual: Option<u64>,
    },
    /// A stream id names a different aggregate category than the repository serves.
    #[error("stream {stream} is not of category {expected}")]
    WrongCategory {
        /// The stream asked for.
        stream: StreamId,
        /// The category the repository serves.
        expected: &'static str,
    },
    /// An idempotency record for this key already exists (a store-level signal; the repository turns
    /// it into the first result or [`Error::IdempotencyKeyReused`]).
    #[error("idempotency key {key:?} already has a record")]
    IdempotencyKeyExists {
        /// The key.
        key: String,
    },
    /// The same idempotency key was sent with a different request.
    #[error("idempotency key {key:?} was already used for a different request")]
    IdempotencyKeyReused {
        /// The key.
        key: String,
    },
    /// A stored event has a type the event enum does not know.
    #[error("unknown event type {event_type:?}")]
    UnknownEventType {
        /// The stored type name.
        event_type: String,
    },
    /// A stored payload does not deserialize into its event type.
    #[error("payload of {event_type} does not decode")]
    Decode {
        /// The stored type name.
        event_type: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// An event failed to serialize.
    #[error("event {event_type} does not encode")]
    Encode {
        /// The event's type name.
        event_type: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// An event does not serialize as an externally tagged enum whose tag is its `event_type()`.
    #[error(
        "event {event_type} must serialize as {{\"{event_type}\": ...}} (externally tagged, tag = event_type())"
    )]
    EventShape {
        /// The event's type name.
        event_type: String,
    },
    /// A stored event's schema version differs from the current one after upcasting.
    #[error(
        "{event_type} is stored at schema version {stored} but the code expects {current}: an upcaster is missing"
    )]
    SchemaVersionMismatch {
        /// The stored type name.
        event_type: String,
        /// The version after upcasting.
        stored: u32,
        /// The version the event type declares.
        current: u32,
    },
    /// An upcaster failed on a stored payload.
    #[error("upcasting {event_type} v{version} failed")]
    Upcast {
        /// The stored type name.
        event_type: String,
        /// The schema version it was upcast from.
        version: u32,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// An upcaster chain is inconsistent (found when it is built).
    #[error("invalid upcaster chain: {0}")]
    UpcasterChain(#[from] crate::UpcastChainError),
    /// A value (aggregate state, command, outcome) failed to serialize.
    #[error("{what} does not serialize")]
    Serialize {
        /// What was being serialized.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value (snapshot state, idempotency outcome) failed to deserialize.
    #[error("stored {what} does not deserialize")]
    Deserialize {
        /// What was being deserialized.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A requested version is beyond the stream's end.
    #[error("{stream} has no version {requested} (it is at {current})")]
    VersionNotFound {
        /// The stream.
        stream: StreamId,
        /// The version asked for.
        requested: u64,
        /// The stream's version.
        current: u64,
    },
    /// Stored events are not contiguous: the store broke its invariant.
    #[error("{stream} is corrupt: expected version {expected}, found {found}")]
    StreamCorrupted {
        /// The stream.
        stream: StreamId,
        /// The version that should come next.
        expected: u64,
        /// The version found.
        found: u64,
    },
    /// The request is malformed in a way no retry can fix (empty commit, limit exceeded, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A personal field could not be opened (tampered, moved, malformed).
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// An event or state carries personal data but the repository has no [`crate::FieldCipher`]:
    /// refused, so personal data is never stored in the clear.
    #[error("{what} carries personal data and no cipher is configured")]
    NoCipher {
        /// What carried it (an event type, or "aggregate state").
        what: String,
    },
    /// A write would exceed a size limit of the backend (DynamoDB: 400 KB per item, 4 MB per
    /// transaction); refused before any call, nothing written.
    #[error("{what} is {bytes} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// What was too large ("commit of tenant/order-1", "snapshot of ...", "transaction").
        what: String,
        /// Its size as the backend counts it.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The backend failed.
    #[error("store backend failed")]
    Backend {
        /// The backend's own error.
        #[source]
        source: BoxError,
        /// Whether trying again may succeed (throttling, timeouts) or not (validation, access).
        retryable: bool,
    },
}

impl Error {
    /// Wraps a backend error.
    pub fn backend(source: impl Into<BoxError>, retryable: bool) -> Self {
        Self::Backend { source: source.into(), retryable }
    }

    /// Whether this is an optimistic-concurrency conflict.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}

/// A serde error that says where and what kind of failure, never the value (which may be personal):
/// use it on errors of decoding opened (decrypted) data before they reach a log or a caller.
pub fn without_values(error: &serde_json::Error) -> serde_json::Error {
    <serde_json::Error as serde::de::Error>::custom(format!(
        "{:?} error at line {} column {} (value withheld)",
        error.classify(),
        error.line(),
        error.column()
    ))
}

impl Error {
    /// This error with every value of the data it was raised on withheld, keeping what failed and
    /// how: the event type and schema version, serde's kind of failure and position. Use it on errors
    /// built on opened (decrypted) payloads or states, whose values may be personal, before they
    /// reach a log or a caller. An upcaster's own error is user code whose message may quote any
    /// value: only its kind is kept. Other errors carry no payload values and pass through unchanged.
    #[must_use]
    pub fn without_values(self) -> Self {
        match self {
            Self::Decode { event_type, source } => {
                Self::Decode { event_type, source: without_values(&source) }
            }
            Self::Deserialize { what, source } => Self::Deserialize { what, source: without_values(&source) },
            Self::Upcast { event_type, version, source } => {
                Self::Upcast { event_type, version, source: upcaster_error_without_values(source) }
            }
            other => other,
        }
    }
}

/// An upcaster's error reduced to its kind: a serde error keeps its kind and position; anything
/// else is user code's message, withheld whole.
fn upcaster_error_without_values(source: BoxError) -> BoxError {
    match source.downcast::<serde_json::Error>() {
        Ok(serde) => Box::new(without_values(&serde)),
        Err(_) => "the upcaster failed (its message is withheld: it may quote a personal value)".into(),
    }
}
