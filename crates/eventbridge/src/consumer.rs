//! Consuming Strata's EventBridge events through SQS: decoding, and applying them to a projection
//! with a partial batch response.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use strata_core::projection::{AnyProjector, Delivered, Projection, Projector, ViewStore};
use strata_core::{Error, Event, EventStore, FieldCipher, StreamId, UpcasterChain, decode_event};

use crate::detail::Detail;

/// Why a message is not a Strata event.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The SQS message has no body.
    #[error("message has no body")]
    NoBody,
    /// The body is not an EventBridge event with a Strata detail. Only where and what kind of
    /// failure: the body may hold sealed personal data, never printed.
    #[error("body is not a Strata EventBridge event: {kind:?} error at line {line} column {column}")]
    NotAnEvent {
        /// serde's classification.
        kind: serde_json::error::Category,
        /// Line.
        line: usize,
        /// Column.
        column: usize,
    },
}

/// Decodes an EventBridge event (as an SQS body or a Lambda payload) into its [`Detail`].
pub fn decode_detail(json: &str) -> Result<EventBridgeEvent<Detail>, MessageError> {
    serde_json::from_str(json).map_err(|error| MessageError::NotAnEvent {
        kind: error.classify(),
        line: error.line(),
        column: error.column(),
    })
}

/// The SQS message an EventBridge rule -> queue target delivers for a committed event (with its
/// payload, personal fields sealed as committed): for tests of consumers and projections, and to
/// replay an event by hand. `message_id` tells deliveries apart (a redelivery has its own).
pub fn sqs_message(envelope: &strata_core::EventEnvelope, message_id: &str) -> SqsMessage {
    let body = serde_json::json!({
        "version": "0",
        "id": message_id,
        "detail-type": envelope.event_type,
        "source": "strata",
        "account": "000000000000",
        "time": envelope.metadata.committed_at,
        "region": "us-east-1",
        "resources": [],
        "detail": Detail::full(envelope),
    });
    let mut message = SqsMessage::default();
    message.message_id = Some(message_id.to_owned());
    message.event_source = Some("aws:sqs".to_owned());
    message.body = Some(body.to_string());
    message
}

/// The SQS event Lambda invokes a queue's function with, for these messages.
pub fn sqs_event(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

/// Decodes an SQS message whose body is an EventBridge event (the rule -> queue target).
pub fn decode_message(message: &SqsMessage) -> Result<Detail, MessageError> {
    let body = message.body.as_deref().ok_or(MessageError::NoBody)?;
    Ok(decode_detail(body)?.detail)
}

/// Decodes a delivered event into the consumer's event type: opens sealed fields with `cipher` (when
/// given; without one, personal fields must decode as sealed, so declare them as raw JSON), upcasts,
/// decodes. A claim check has no payload: read the event from the store instead.
///
/// Sealed fields are opened through [`FieldCipher::verified_session`]: each subject's key is read
/// past the cache (one key read, no KMS call while the cached key is current), so a subject
/// forgotten in another process reads redacted here at once, and a consumer that turns the event
/// into a command never re-seals erased data under a returning subject's new key.
pub async fn decode_typed<E: Event>(
    detail: Detail,
    cipher: Option<&FieldCipher>,
    upcasters: &UpcasterChain,
) -> Result<E, Error> {
    if detail.claim_check {
        return Err(Error::InvalidRequest(format!(
            "{}@{} was published as a claim check: read it from the store",
            detail.stream, detail.version
        )));
    }
    let mut payload = detail.payload.unwrap_or(serde_json::Value::Null);
    if let Some(cipher) = cipher {
        // Past the cache: what a consumer decodes may become a command's input, sealed again under
        // the subject's current key, so it must never be opened under a key forgotten elsewhere.
        cipher
            .verified_session()
            .open(detail.stream.tenant(), &detail.event_id.to_string(), &mut payload)
            .await?;
    }
    upcasters
        .upcast(&detail.event_type, detail.schema_version, payload)
        .and_then(|(event_type, version, payload)| decode_event(&event_type, version, payload))
        // Upcasters' and serde's messages may quote the payload's values: opened personal fields.
        .map_err(Error::without_values)
}

/// One stream's share of a batch: its events by version (each once), the ids of its messages, and
/// how many of them repeated a version already in the batch.
#[derive(Default)]
struct StreamBatch {
    delivered: BTreeMap<u64, Delivered>,
    ids: Vec<Option<String>>,
    duplicates: u64,
}

impl StreamBatch {
    /// Adds a message's event. A version already in the batch (at-least-once delivery, a
    /// publisher's retry) is a duplicate; of the two, the whole event is kept over a reference to it,
    /// which would cost a read.
    fn add(&mut self, id: Option<String>, delivered: Delivered) {
        self.ids.push(id);
        match self.delivered.entry(delivered.version()) {
            Entry::Vacant(slot) => {
                slot.insert(delivered);
            }
            Entry::Occupied(mut held) => {
                self.duplicates += 1;
                if matches!(held.get(), Delivered::Reference { .. }) {
                    held.insert(delivered);
                }
            }
        }
    }
}

/// What a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events applied to views (an event applied to two projections counts twice).
    pub applied: u64,
    /// Delivered events skipped as duplicates: already applied, or delivered twice in the batch.
    pub duplicates: u64,
    /// Events read from the store (gaps, claim checks).
    pub fetched: u64,
    /// Messages of streams no projection follows (acknowledged, nothing done).
    pub ignored: usize,
    /// Messages reported as failed.
    pub failed: usize,
}

/// Applies an SQS batch of Strata events to a projection: groups messages by stream, applies each
/// stream's events once and in order (see [`Projector::project`]), and reports the messages of
/// streams that failed, and messages that are not Strata events, as batch item failures, so only
/// those are retried (and, after the queue's receive limit, moved to its dead-letter queue).
///
/// Fails as a whole only when a failed message has no id to report.
pub async fn project_batch<P, S>(
    projector: &Projector<P, S>,
    event: SqsEvent,
) -> Result<(SqsBatchResponse, BatchOutcome), Error>
where
    P: Projection,
    S: EventStore + ViewStore,
{
    project_batch_each(&[projector as &dyn AnyProjector], event).await
}

/// [`project_batch`] for a service with several read models: each message is applied to every
/// projection that follows its stream. Each projection keeps its own checkpoint per stream, so one
/// that fails for a stream holds back neither the other projections nor other streams: that
/// stream's messages are reported as failed, and on redelivery the projections that did apply them
/// skip them as duplicates, so every event is applied once per projection.
///
/// A message that no projection follows is acknowledged (counted as ignored).
pub async fn project_batch_each(
    projectors: &[&dyn AnyProjector],
    event: SqsEvent,
) -> Result<(SqsBatchResponse, BatchOutcome), Error> {
    let mut outcome = BatchOutcome::default();
    let mut failed_ids: Vec<Option<String>> = Vec::new();
    let mut by_stream: BTreeMap<StreamId, StreamBatch> = BTreeMap::new();
    for message in event.records {
        match decode_message(&message) {
            Ok(detail) if !projectors.iter().any(|p| p.follows(&detail.stream)) => outcome.ignored += 1,
            Ok(detail) => {
                let batch = by_stream.entry(detail.stream.clone()).or_default();
                batch.add(message.message_id, detail.into_delivered());
            }
            Err(error) => {
                tracing::error!(message_id = ?message.message_id, %error, "message is not a Strata event");
                failed_ids.push(message.message_id);
            }
        }
    }
    for (stream, StreamBatch { delivered, ids, duplicates }) in by_stream {
        let mut failed = false;
        // Delivered twice in the batch: counted once, whatever number of projections skip them.
        outcome.duplicates += duplicates;
        for projector in projectors.iter().filter(|p| p.follows(&stream)) {
            match projector.project(&stream, delivered.values().cloned().collect()).await {
                Ok(projected) => {
                    outcome.applied += projected.applied;
                    outcome.duplicates += projected.duplicates;
                    outcome.fetched += projected.fetched;
                }
                Err(error) => {
                    tracing::error!(
                        projection = projector.name(), %stream, %error,
                        "events not applied; their messages will be retried"
                    );
                    failed = true;
                }
            }
        }
        if failed {
            failed_ids.extend(ids);
        }
    }
    outcome.failed = failed_ids.len();
    Ok((batch_response(failed_ids)?, outcome))
}

/// The partial batch response that reports these messages (each once) for retry; an error when one
/// has no id to report (the whole batch is then retried).
pub fn batch_response(failed: impl IntoIterator<Item = Option<String>>) -> Result<SqsBatchResponse, Error> {
    let mut reported = std::collections::BTreeSet::new();
    let mut response = SqsBatchResponse::default();
    for id in failed {
        let Some(id) = id else {
            return Err(Error::backend("a failed SQS message has no id to report", true));
        };
        if reported.insert(id.clone()) {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    Ok(response)
}
