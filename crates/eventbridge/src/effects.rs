//! Side effects of events (an email, a webhook, a call to another service, a command on another
//! aggregate), each done once per event although EventBridge and SQS deliver at least once and an
//! archive replay delivers again.
//!
//! Each event's effect is bracketed by two records in the table (idempotency records, so the
//! table's TTL removes them): before it, a claim that expires after a lease (a second delivery
//! arriving meanwhile is left to retry, never run alongside); after it, a done record kept for the
//! retention period (a redelivery or a replay within it is acknowledged without the effect). One
//! GetItem and two conditional PutItems per event.
//!
//! The one window: a function that dies after the effect and before the done record (a timeout, a
//! crash) runs the effect again on the next delivery once the claim expires. Where the effect's
//! receiver takes an idempotency key, pass [`Delivery::event_id`] and the window closes too.

use std::collections::BTreeMap;
use std::future::Future;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::Utc;
use serde_json::json;
use strata_core::{
    BoxError, Error, Event, EventId, EventStore, FieldCipher, IdempotencyRecord, IdempotencyStore, Metadata,
    StreamId, UpcasterChain,
};

use crate::consumer::{decode_message, decode_typed};
use crate::detail::Detail;

/// A side effect per event of one stream category: what a team implements.
///
/// ```
/// use strata_core::BoxError;
/// use strata_core::fixture::tally::TallyEvent;
/// use strata_eventbridge::effects::{Consumer, Delivery};
///
/// /// Tells someone about every bump.
/// struct Notify;
///
/// impl Consumer for Notify {
///     type Event = TallyEvent;
///     const NAME: &'static str = "notify";
///     const CATEGORY: &'static str = "tally";
///
///     async fn handle(&self, event: TallyEvent, delivery: &Delivery) -> Result<(), BoxError> {
///         // e.g. send an email with `delivery.event_id` as the provider's idempotency key
///         let _ = (event, delivery);
///         Ok(())
///     }
/// }
/// ```
pub trait Consumer: Send + Sync {
    /// The events it reads (upcast and decoded; personal fields opened when the runner has a
    /// cipher).
    type Event: Event;
    /// Its name, part of its records' keys: no `#`, stable across deployments (a new name runs
    /// every retained event's effect again on a replay).
    const NAME: &'static str;
    /// The stream category it follows; events of others are acknowledged untouched.
    const CATEGORY: &'static str;

    /// Does the effect of one event. An error leaves the event to be delivered again (after the
    /// claim's lease); decode failures never reach here.
    fn handle(
        &self,
        event: Self::Event,
        delivery: &Delivery,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// Where a delivered event stands in its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The event's id: stable across redeliveries and replays, a good idempotency key downstream.
    pub event_id: EventId,
    /// Its stream.
    pub stream: StreamId,
    /// Its version in the stream.
    pub version: u64,
    /// Its metadata (correlation, causation, actor, time).
    pub metadata: Metadata,
}

/// What happened to one delivered event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The effect ran.
    Done,
    /// Its effect ran before (a redelivery or a replay): acknowledged.
    Duplicate,
    /// Another delivery of it holds the claim: left to retry.
    InProgress,
    /// Not of the consumer's category: acknowledged.
    Ignored,
}

/// What a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EffectsOutcome {
    /// Effects run.
    pub done: usize,
    /// Events whose effect ran before.
    pub duplicates: usize,
    /// Events of other categories.
    pub ignored: usize,
    /// Messages reported for retry: in progress elsewhere, failed, or not Strata events.
    pub failed: usize,
}

/// Runs a [`Consumer`] over delivered events, once per event.
pub struct Effects<C, S> {
    consumer: C,
    store: S,
    cipher: Option<FieldCipher>,
    upcasters: UpcasterChain,
    lease: chrono::Duration,
    retention: chrono::Duration,
}

impl<C: Consumer, S: EventStore + IdempotencyStore> Effects<C, S> {
    /// The default claim lease, in seconds: no shorter than the consumer function's timeout.
    pub const DEFAULT_LEASE_SECS: i64 = 120;
    /// The default retention of done records: replays of older events run their effects again.
    pub const DEFAULT_RETENTION_DAYS: i64 = 90;

    /// A runner of `consumer` keeping its records in `store` (and reading claim-checked events
    /// from it).
    pub fn new(consumer: C, store: S) -> Self {
        Self {
            consumer,
            store,
            cipher: None,
            upcasters: UpcasterChain::empty(),
            lease: chrono::Duration::seconds(Self::DEFAULT_LEASE_SECS),
            retention: chrono::Duration::days(Self::DEFAULT_RETENTION_DAYS),
        }
    }

    /// Opens personal fields with this cipher (past the key cache: a subject forgotten elsewhere
    /// reads redacted at once). Without one, personal fields must decode sealed.
    pub fn with_cipher(mut self, cipher: FieldCipher) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// Upcasts events with this chain before decoding.
    pub fn with_upcasters(mut self, upcasters: UpcasterChain) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// How long a claim keeps other deliveries of the same event off (default 120 s). Make it at
    /// least the function's timeout, so that a slow effect is never run twice at once; a failed
    /// effect is retried once it has passed, so give the queue a visibility timeout of at least
    /// this too (each early retry costs a receive).
    pub fn with_lease(mut self, lease: chrono::Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long done records are kept (default 90 days): a replay of events older than this runs
    /// their effects again.
    pub fn with_retention(mut self, retention: chrono::Duration) -> Self {
        self.retention = retention;
        self
    }

    /// The consumer.
    pub fn consumer(&self) -> &C {
        &self.consumer
    }

    /// Runs the effect of one delivered event unless it ran before or runs elsewhere now.
    pub async fn deliver(&self, detail: Detail) -> Result<Handled, Error> {
        if detail.stream.category() != C::CATEGORY {
            return Ok(Handled::Ignored);
        }
        let tenant = detail.stream.tenant().to_owned();
        let done_key = record_key::<C>("done", &detail.stream, detail.version);
        if self.store.get_record(&tenant, &done_key).await?.is_some() {
            return Ok(Handled::Duplicate);
        }
        let now = Utc::now();
        // This attempt's own token: a release deletes only the claim it wrote, never one a later
        // delivery of the same event took after this one's lease ran out.
        let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let claim = IdempotencyRecord {
            tenant: tenant.clone(),
            key: record_key::<C>("claim", &detail.stream, detail.version),
            request_hash: token.clone(),
            outcome: json!({ "claimed_at": now }),
            expires_at: now + self.lease,
        };
        match self.store.put_record(claim).await {
            Ok(()) => {}
            Err(Error::IdempotencyKeyExists { .. }) => return Ok(Handled::InProgress),
            Err(other) => return Err(other),
        }
        let delivery = Delivery {
            event_id: detail.event_id,
            stream: detail.stream.clone(),
            version: detail.version,
            metadata: detail.metadata.clone(),
        };
        let claim_key = record_key::<C>("claim", &delivery.stream, delivery.version);
        let done = match self.decode(detail).await {
            Ok(event) => self.consumer.handle(event, &delivery).await.map_err(|_| {
                // Not the consumer's error text: it may quote the event's opened personal fields.
                // Consumers log their own failures, without values.
                Error::backend(
                    format!("consumer {} failed on {}@{}", C::NAME, delivery.stream, delivery.version),
                    true,
                )
            }),
            Err(error) => Err(error),
        };
        if let Err(error) = done {
            // Released at once, so the queue's next delivery runs it again without waiting for the
            // lease (a release that fails leaves the lease to run out).
            if let Err(release) = self.store.delete_record(&tenant, &claim_key, &token).await {
                tracing::warn!(consumer = C::NAME, error = %release, "claim not released; it expires with its lease");
            }
            return Err(error);
        }
        let record = IdempotencyRecord {
            tenant,
            key: done_key,
            request_hash: delivery.event_id.to_string(),
            outcome: json!({ "done_at": Utc::now() }),
            expires_at: Utc::now() + self.retention,
        };
        // The effect ran: a done record that cannot be written is retried here, and after that the
        // event is acknowledged anyway (a redelivery within the lease finds the claim; a replay after
        // it would run the effect again).
        for attempt in 1..=3 {
            match self.store.put_record(record.clone()).await {
                Ok(()) | Err(Error::IdempotencyKeyExists { .. }) => return Ok(Handled::Done),
                Err(error) if attempt == 3 => {
                    tracing::warn!(consumer = C::NAME, stream = %delivery.stream, version = delivery.version, %error,
                        "effect done, its record not written");
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await,
            }
        }
        Ok(Handled::Done)
    }

    /// The event, decoded; a claim check is read from the store first.
    async fn decode(&self, detail: Detail) -> Result<C::Event, Error> {
        let detail = if detail.claim_check {
            let page = self.store.read(&detail.stream, detail.version, 1).await?;
            let envelope =
                page.events.into_iter().find(|e| e.version == detail.version).ok_or_else(|| {
                    Error::backend(format!("{}@{} is not in the store", detail.stream, detail.version), true)
                })?;
            Detail::full(&envelope)
        } else {
            detail
        };
        decode_typed(detail, self.cipher.as_ref(), &self.upcasters).await
    }

    /// Runs an SQS batch (EventBridge rule -> queue -> this function): each message's event in
    /// stream and version order, and the messages that failed, are in progress elsewhere, or are not
    /// Strata events reported as batch item failures (retried, then moved to the queue's DLQ).
    /// Fails as a whole only when a failed message has no id to report.
    pub async fn handle_batch(&self, event: SqsEvent) -> Result<(SqsBatchResponse, EffectsOutcome), Error> {
        let mut outcome = EffectsOutcome::default();
        let mut failed: Vec<Option<String>> = Vec::new();
        let mut ordered: BTreeMap<(StreamId, u64), Vec<Message>> = BTreeMap::new();
        for message in event.records {
            match decode_message(&message) {
                Ok(detail) => {
                    ordered
                        .entry((detail.stream.clone(), detail.version))
                        .or_default()
                        .push((message.message_id, detail));
                }
                Err(error) => {
                    tracing::error!(message_id = ?message.message_id, %error, "message is not a Strata event");
                    failed.push(message.message_id);
                }
            }
        }
        // Once a stream's event is not done, its later events in the batch wait for the retry too:
        // a consumer sees a stream's events in order within each batch.
        let mut held: Option<StreamId> = None;
        for ((stream, version), deliveries) in ordered {
            for (id, detail) in deliveries {
                if held.as_ref() == Some(&stream) {
                    failed.push(id);
                    continue;
                }
                match self.deliver(detail).await {
                    Ok(Handled::Done) => outcome.done += 1,
                    Ok(Handled::Duplicate) => outcome.duplicates += 1,
                    Ok(Handled::Ignored) => outcome.ignored += 1,
                    Ok(Handled::InProgress) => {
                        held = Some(stream.clone());
                        failed.push(id);
                    }
                    Err(error) => {
                        tracing::error!(consumer = C::NAME, %stream, version, %error, "effect not done; the message will be retried");
                        held = Some(stream.clone());
                        failed.push(id);
                    }
                }
            }
        }
        outcome.failed = failed.len();
        Ok((crate::consumer::batch_response(failed)?, outcome))
    }
}

/// A message's id (to report it) and the event it carries.
type Message = (Option<String>, Detail);

/// `strata:effect/{consumer}/{what}/{category}-{id}/{version}`: a reserved key
/// ([`strata_core::RESERVED_KEY_PREFIX`], no request can take it); the tenant is the record's own
/// partition.
fn record_key<C: Consumer>(what: &str, stream: &StreamId, version: u64) -> String {
    format!(
        "{}effect/{}/{what}/{}-{}/{version}",
        strata_core::RESERVED_KEY_PREFIX,
        C::NAME,
        stream.category(),
        stream.id()
    )
}

impl<C, S> std::fmt::Debug for Effects<C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Effects")
            .field("lease", &self.lease)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// An [`Effects`] runner seen through its consumer's name: what a service that runs several
/// consumers lists. Every `Effects<C, S>` is one.
pub trait AnyEffects: Send + Sync {
    /// The consumer's name ([`Consumer::NAME`]).
    fn name(&self) -> &'static str;

    /// How long a claim holds off another delivery ([`Effects::with_lease`]).
    fn lease(&self) -> chrono::Duration;

    /// [`Effects::handle_batch`].
    fn handle_batch<'a>(
        &'a self,
        event: SqsEvent,
    ) -> strata_core::crypto::BoxFuture<'a, Result<(SqsBatchResponse, EffectsOutcome), Error>>;
}

impl<C, S> AnyEffects for Effects<C, S>
where
    C: Consumer,
    S: EventStore + IdempotencyStore,
{
    fn name(&self) -> &'static str {
        C::NAME
    }

    fn lease(&self) -> chrono::Duration {
        self.lease
    }

    fn handle_batch<'a>(
        &'a self,
        event: SqsEvent,
    ) -> strata_core::crypto::BoxFuture<'a, Result<(SqsBatchResponse, EffectsOutcome), Error>> {
        Box::pin(Effects::handle_batch(self, event))
    }
}
