#![doc = include_str!("../README.md")]

mod aggregate;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod crypto;
mod either;
mod envelope;
mod error;
mod event;
pub mod fixture;
pub mod memory;
mod personal;
pub mod projection;
mod repository;
mod snapshot;
mod store;
mod stream;
mod upcast;

pub use aggregate::{Aggregate, Command, Rejection};
pub use crypto::{EXPORT_EVENTS_PER_PAGE, ExportCursor, ExportPage, FieldCipher, KeyProvider, LocalKeys};
pub use either::{Either, UNLISTED};
pub use envelope::{EventEnvelope, EventId, Metadata, NewEvent};
pub use error::{BoxError, Error, without_values};
pub use event::{EncodedEvent, Event, decode_event, encode_event};
pub use memory::{InMemoryPublisher, InMemoryStore};
pub use personal::{
    PERSONAL_SCHEMA_MARK, Personal, PersonalData, REDACTED_KEY, is_redacted_marker, redacted_marker,
};
pub use repository::{
    CachePolicy, CommandContext, CommandError, CommandOutcome, Loaded, Repository, RetryPolicy,
};
pub use snapshot::SnapshotPolicy;
pub use store::{
    AccessOutcome, AppendAttempt, AppendRequest, Commit, EventPage, EventStore, IdempotencyRecord,
    IdempotencyStore, LoadedStream, Publisher, RESERVED_KEY_PREFIX, Snapshot, SnapshotStore, SubjectAccess,
    SubjectAction, SubjectAudit,
};
pub use stream::{
    ExpectedVersion, KeyError, MAX_CATEGORY_LEN, MAX_ID_LEN, MAX_TENANT_LEN, StreamId, validate_key_part,
};
pub use upcast::{SchemaKey, UpcastChainError, UpcasterChain, UpcasterChainBuilder};
