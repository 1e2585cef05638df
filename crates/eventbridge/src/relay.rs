//! The stream publisher's handler: a DynamoDB stream batch in, a partial batch response out.

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use strata_core::{Error, EventEnvelope};

use crate::prune::SnapshotPruner;
use crate::publisher::{EventBridgePublisher, PublishReport, PutEvents};
use crate::records::{COMMIT_CHANGED_ALERT, CommitChange, commit_change, decode_batch};

/// Relays the table's change stream to EventBridge: the outbox's relay.
#[derive(Debug, Clone)]
pub struct StreamRelay<C> {
    publisher: EventBridgePublisher<C>,
    pruner: Option<SnapshotPruner>,
}

/// What one batch did, besides the response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relayed {
    /// Events found in the batch's commit records.
    pub events: usize,
    /// Of those, published.
    pub published: usize,
    /// The publisher's report.
    pub report: PublishReport,
    /// Snapshots removed by the relay's [`SnapshotPruner`], if it has one.
    pub pruned: usize,
    /// Commit items the batch shows modified or removed (tampering or a restore, see
    /// [`CommitChange`]): each logged with `alert` = [`COMMIT_CHANGED_ALERT`].
    pub changed_commits: Vec<CommitChange>,
}

impl<C: PutEvents> StreamRelay<C> {
    /// A relay publishing through `publisher`.
    pub fn new(publisher: EventBridgePublisher<C>) -> Self {
        Self { publisher, pruner: None }
    }

    /// Also prunes the snapshots of each stream the batch writes a snapshot to, after publishing
    /// (see [`SnapshotPruner`]; its failures are logged, never reported as batch failures).
    pub fn with_snapshot_pruner(mut self, pruner: SnapshotPruner) -> Self {
        self.pruner = Some(pruner);
        self
    }

    /// The publisher.
    pub fn publisher(&self) -> &EventBridgePublisher<C> {
        &self.publisher
    }

    /// Publishes every event of the batch's new commits, in record and version order, and reports
    /// the records whose events were not all published (and records that do not decode) as batch
    /// item failures. Lambda then retries from the earliest of them, so nothing is lost; records
    /// after it are published again, which consumers deduplicate by (stream, version).
    ///
    /// Fails as a whole only when a failed record has no sequence number to report.
    pub async fn handle(&self, event: StreamEvent) -> Result<DynamoDbEventResponse, Error> {
        self.handle_counted(event).await.map(|(response, _)| response)
    }

    /// [`StreamRelay::handle`], with counts.
    pub async fn handle_counted(
        &self,
        event: StreamEvent,
    ) -> Result<(DynamoDbEventResponse, Relayed), Error> {
        let mut owners = Vec::new();
        let mut events: Vec<EventEnvelope> = Vec::new();
        let mut failed_records = vec![false; event.records.len()];
        // Reported, not failed: the change is done, and holding the stream back would stop every
        // other commit's publishing without undoing it.
        let changed_commits: Vec<CommitChange> = event.records.iter().filter_map(commit_change).collect();
        for change in &changed_commits {
            tracing::error!(
                alert = COMMIT_CHANGED_ALERT,
                event_name = %change.event_name,
                record = change.record,
                pk = %change.pk,
                sk = %change.sk,
                principal = ?change.principal,
                sequence_number = ?change.sequence_number,
                "an immutable item (a commit or an audit record) was modified or removed: tampering, or a restore written over the table"
            );
        }
        let records = decode_batch(&event);
        let sequence_numbers: Vec<Option<String>> = records.iter().map(|(seq, _)| seq.clone()).collect();
        for (record, (sequence_number, decoded)) in records.into_iter().enumerate() {
            match decoded {
                Ok(record_events) => {
                    owners.extend(std::iter::repeat_n(record, record_events.len()));
                    events.extend(record_events);
                }
                Err(error) => {
                    tracing::error!(?sequence_number, %error, "stream record does not decode");
                    failed_records[record] = true;
                }
            }
        }
        let report = self.publisher.publish_all(&events).await;
        for &index in &report.failed {
            if let Some(&record) = owners.get(index) {
                failed_records[record] = true;
            }
        }
        let mut response = DynamoDbEventResponse::default();
        for (record, failed) in failed_records.iter().enumerate() {
            if !failed {
                continue;
            }
            let Some(Some(sequence_number)) = sequence_numbers.get(record) else {
                return Err(Error::backend("a failed stream record has no sequence number to report", true));
            };
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence_number.clone());
            response.batch_item_failures.push(failure);
        }
        let pruned = match &self.pruner {
            Some(pruner) => pruner.prune(&event).await,
            None => 0,
        };
        let relayed = Relayed {
            events: events.len(),
            published: events.len() - report.failed.len(),
            report,
            pruned,
            changed_commits,
        };
        if !response.batch_item_failures.is_empty() {
            tracing::warn!(
                failed_records = response.batch_item_failures.len(),
                "reporting batch item failures"
            );
        }
        Ok((response, relayed))
    }
}
