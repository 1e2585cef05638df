#![doc = include_str!("../README.md")]

pub mod consumer;
pub mod detail;
pub mod effects;
pub mod metrics;
pub mod prune;
pub mod publisher;
pub mod records;
pub mod relay;

pub use consumer::{
    BatchOutcome, MessageError, batch_response, decode_detail, decode_message, decode_typed, project_batch,
    project_batch_each, sqs_event, sqs_message,
};
pub use detail::{Detail, MAX_ENTRIES_PER_CALL, MAX_ENTRY_BYTES};
pub use effects::{AnyEffects, Consumer, Delivery, Effects, EffectsOutcome, Handled};
pub use metrics::{PutEventsCall, PutEventsCounter};
pub use prune::{SnapshotPruner, snapshots_inserted};
pub use publisher::{Entry, EntryResult, EventBridgePublisher, PublishReport, PublishRetry, PutEvents};
pub use records::{
    COMMIT_CHANGED_ALERT, CommitChange, RecordEvents, commit_change, decode_batch, decode_record,
};
pub use relay::{Relayed, StreamRelay};
