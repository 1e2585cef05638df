//! PutEvents in batches of at most 10 entries and 256 KB, retrying exactly the failed entries.

use std::future::Future;
use std::time::Duration;

use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use strata_core::{Error, EventEnvelope, Publisher};

use crate::detail::{Detail, MAX_ENTRIES_PER_CALL, MAX_ENTRY_BYTES, entry_size};

/// One EventBridge entry, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `source`: the publishing service.
    pub source: String,
    /// `detail-type`: the event type.
    pub detail_type: String,
    /// `detail`: the [`Detail`] as JSON.
    pub detail: String,
    /// The event's commit time.
    pub time: chrono::DateTime<chrono::Utc>,
    /// An X-Ray trace header (`Root=...`), when the event carries one.
    pub trace_header: Option<String>,
}

impl Entry {
    /// The size EventBridge counts against its 256 KB limits.
    pub fn size(&self) -> usize {
        entry_size(&self.source, &self.detail_type, &self.detail)
    }
}

/// What EventBridge answered for one entry of a PutEvents call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    /// Accepted, with EventBridge's event id.
    Published(String),
    /// Refused; see [`EntryResult::is_retryable`].
    Failed {
        /// EventBridge's error code, e.g. `ThrottlingException`, `InternalFailure`.
        code: String,
        /// Its message.
        message: String,
    },
}

/// The PutEvents call: the AWS client in production; tests wrap it to inject failures.
pub trait PutEvents: Send + Sync {
    /// Puts `entries` (at most 10, at most 256 KB in all) on `bus`; one result per entry, in order.
    fn put_events(
        &self,
        bus: &str,
        entries: &[Entry],
    ) -> impl Future<Output = Result<Vec<EntryResult>, Error>> + Send;
}

impl PutEvents for aws_sdk_eventbridge::Client {
    async fn put_events(&self, bus: &str, entries: &[Entry]) -> Result<Vec<EntryResult>, Error> {
        let entries = entries
            .iter()
            .map(|entry| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(bus)
                    .source(&entry.source)
                    .detail_type(&entry.detail_type)
                    .detail(&entry.detail)
                    .time(DateTime::from_millis(entry.time.timestamp_millis()))
                    .set_trace_header(entry.trace_header.clone())
                    .build()
            })
            .collect();
        let out = self.put_events().set_entries(Some(entries)).send().await.map_err(sdk_error)?;
        Ok(out
            .entries
            .unwrap_or_default()
            .into_iter()
            .map(|result| match (result.event_id, result.error_code) {
                (Some(id), None) => EntryResult::Published(id),
                (_, code) => EntryResult::Failed {
                    code: code.unwrap_or_else(|| "Unknown".into()),
                    message: result.error_message.unwrap_or_default(),
                },
            })
            .collect())
    }
}

/// The SDK's failure as [`Error::Backend`], kept as the source; retryable unless the request itself
/// is wrong (validation, access), which no retry mends.
fn sdk_error<E>(
    error: aws_sdk_eventbridge::error::SdkError<E, aws_sdk_eventbridge::config::http::HttpResponse>,
) -> Error
where
    E: std::error::Error + aws_sdk_eventbridge::error::ProvideErrorMetadata + Send + Sync + 'static,
{
    let permanent = matches!(&error, aws_sdk_eventbridge::error::SdkError::ServiceError(service)
        if !service.raw().status().is_server_error() && !is_retryable_code(service.err().code()));
    Error::backend(error, !permanent)
}

/// Entry and call error codes after which the same entry may go through.
fn is_retryable_code(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ThrottlingException"
                | "InternalFailure"
                | "InternalException"
                | "ServiceUnavailable"
                | "LimitExceededException"
        )
    )
}

impl EntryResult {
    /// Whether sending the entry again may succeed: throttling and EventBridge's own failures. An
    /// entry refused for what it is (malformed detail, access) is reported at once instead.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Published(_) => false,
            Self::Failed { code, .. } => is_retryable_code(Some(code)),
        }
    }
}

/// How often and how patiently failed entries are retried within one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishRetry {
    /// Attempts per entry, the first included (default 4).
    pub max_attempts: u32,
    /// Backoff before the second attempt, doubled per attempt, with full jitter (default 100 ms).
    pub base_delay: Duration,
    /// Longest backoff (default 2 s).
    pub max_delay: Duration,
}

impl Default for PublishRetry {
    fn default() -> Self {
        Self { max_attempts: 4, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(2) }
    }
}

/// What a publish did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Indices (into the events given) of events not published after every attempt.
    pub failed: Vec<usize>,
    /// Events published as claim checks (too large for one entry).
    pub claim_checks: usize,
    /// PutEvents calls made.
    pub calls: usize,
}

/// Publishes committed events to one bus, as one source.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher<C> {
    client: C,
    bus: String,
    source: String,
    retry: PublishRetry,
}

impl<C: PutEvents> EventBridgePublisher<C> {
    /// A publisher to `bus` (name or ARN) as `source` (e.g. `com.example.orders`).
    pub fn new(client: C, bus: impl Into<String>, source: impl Into<String>) -> Result<Self, Error> {
        let (bus, source) = (bus.into(), source.into());
        if bus.is_empty() || source.is_empty() || source.len() > 256 {
            return Err(Error::InvalidRequest("event bus and source (at most 256 bytes) must be set".into()));
        }
        Ok(Self { client, bus, source, retry: PublishRetry::default() })
    }

    /// Retries by this policy.
    pub fn with_retry(mut self, retry: PublishRetry) -> Self {
        // A Lambda invocation lasts 15 minutes at most: longer backoffs only mean timeouts.
        let cap = Duration::from_secs(60);
        self.retry = PublishRetry {
            max_attempts: retry.max_attempts.max(1),
            base_delay: retry.base_delay.min(cap),
            max_delay: retry.max_delay.min(cap),
        };
        self
    }

    /// The underlying client.
    pub fn client(&self) -> &C {
        &self.client
    }

    /// The entry for an event: the whole event, or a claim check when it would exceed 256 KB.
    pub fn entry(&self, envelope: &EventEnvelope) -> Result<(Entry, bool), Error> {
        let trace_header = envelope.metadata.trace_id.as_ref().filter(|t| t.starts_with("Root=")).cloned();
        let make = |detail: &Detail| -> Result<Entry, Error> {
            Ok(Entry {
                source: self.source.clone(),
                detail_type: envelope.event_type.clone(),
                detail: serde_json::to_string(detail)
                    .map_err(|source| Error::Serialize { what: "event detail", source })?,
                time: envelope.metadata.committed_at,
                trace_header: trace_header.clone(),
            })
        };
        let full = make(&Detail::full(envelope))?;
        if full.size() <= MAX_ENTRY_BYTES {
            return Ok((full, false));
        }
        let reference = make(&Detail::claim_check(envelope))?;
        if reference.size() <= MAX_ENTRY_BYTES {
            return Ok((reference, true));
        }
        Err(Error::TooLarge {
            what: format!("EventBridge entry for {}@{}", envelope.stream, envelope.version),
            bytes: reference.size(),
            limit: MAX_ENTRY_BYTES,
        })
    }

    /// Publishes events in order, in as few calls as the limits allow, retrying exactly the entries
    /// that failed (with backoff) up to the policy's attempts. Never fails as a whole: what could not
    /// be published is in [`PublishReport::failed`].
    pub async fn publish_all(&self, events: &[EventEnvelope]) -> PublishReport {
        let mut report = PublishReport::default();
        let mut pending = Vec::with_capacity(events.len());
        for (index, envelope) in events.iter().enumerate() {
            match self.entry(envelope) {
                Ok((entry, claim_check)) => {
                    report.claim_checks += usize::from(claim_check);
                    pending.push((index, entry));
                }
                Err(error) => {
                    tracing::error!(stream = %envelope.stream, version = envelope.version, %error, "event cannot be published");
                    report.failed.push(index);
                }
            }
        }
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            if attempt > 1 {
                tokio::time::sleep(self.backoff(attempt)).await;
            }
            let mut failed = Vec::new();
            for batch in batches(&pending) {
                report.calls += 1;
                let entries: Vec<Entry> = batch.iter().map(|(_, e)| e.clone()).collect();
                match self.client.put_events(&self.bus, &entries).await {
                    Ok(results) => {
                        for (position, item) in batch.iter().enumerate() {
                            match results.get(position) {
                                Some(EntryResult::Published(_)) => {}
                                Some(result @ EntryResult::Failed { code, message }) => {
                                    tracing::warn!(attempt, code, message, "entry not published");
                                    if result.is_retryable() {
                                        failed.push((*item).clone());
                                    } else {
                                        report.failed.push(item.0);
                                    }
                                }
                                None => failed.push((*item).clone()),
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(attempt, %error, entries = batch.len(), "PutEvents call failed");
                        if matches!(error, Error::Backend { retryable: false, .. }) {
                            report.failed.extend(batch.iter().map(|item| item.0));
                        } else {
                            failed.extend(batch.iter().map(|item| (*item).clone()));
                        }
                    }
                }
            }
            if attempt >= self.retry.max_attempts {
                report.failed.extend(failed.iter().map(|(index, _)| *index));
                break;
            }
            pending = failed;
        }
        report.failed.sort_unstable();
        report
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.retry.base_delay.saturating_mul(1u32 << (attempt - 2).min(16));
        let cap = exp.min(self.retry.max_delay);
        cap.mul_f64(fastrand::f64())
    }
}

/// Greedy batches in order: at most 10 entries and 256 KB each.
fn batches(pending: &[(usize, Entry)]) -> Vec<Vec<&(usize, Entry)>> {
    let mut batches: Vec<Vec<&(usize, Entry)>> = Vec::new();
    let mut bytes = 0;
    for item in pending {
        let size = item.1.size();
        match batches.last_mut() {
            Some(batch) if batch.len() < MAX_ENTRIES_PER_CALL && bytes + size <= MAX_ENTRY_BYTES => {
                batch.push(item);
                bytes += size;
            }
            _ => {
                batches.push(vec![item]);
                bytes = size;
            }
        }
    }
    batches
}

impl<C: PutEvents> Publisher for EventBridgePublisher<C> {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<(), Error> {
        let report = self.publish_all(events).await;
        if report.failed.is_empty() {
            Ok(())
        } else {
            Err(Error::backend(
                format!("{} of {} events not published", report.failed.len(), events.len()),
                true,
            ))
        }
    }
}
