//! Support for the end-to-end tests: one isolated pipeline per test in the emulator (a stack of the
//! CDK app's emulator template: table, keys, bus, archive, rule, queue with a dead-letter queue), readers that turn what the emulator's DynamoDB Streams
//! and SQS APIs return into the exact JSON Lambda hands a function, and a PutEvents client that fails
//! entries on purpose.
//!
//! Test support fails loudly: a missing emulator or a failed setup call panics with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_config::SdkConfig;
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use serde_json::{Value, json};
use strata_core::{Error, FieldCipher};
use strata_dynamodb::{DynamoStore, RequestCounter};
use strata_eventbridge::{Entry, EntryResult, PutEvents};
use strata_kms::KmsKeys;

pub use strata_testing::{EmulatorStack, sdk, unique};

pub mod bench;
pub mod demo;
pub mod local;

/// One test's pipeline: commands write the table; its stream feeds the publisher; the bus routes the
/// test's source to the queue the projector reads.
pub struct Pipeline {
    /// The SDK configuration.
    pub sdk: SdkConfig,
    /// The test's stack (from the emulator template).
    pub stack: EmulatorStack,
    /// The event store (and view store) on the test's table.
    pub store: DynamoStore,
    /// Counts the store client's requests.
    pub counter: RequestCounter,
    /// The KMS key wrapping data keys (its ARN).
    pub kms_key_id: String,
    /// The bus name.
    pub bus: String,
    /// The `source` the publisher uses and the rule matches.
    pub source: String,
    /// The EventBridge client.
    pub eventbridge: aws_sdk_eventbridge::Client,
    /// The SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// The projector's queue.
    pub queue_url: String,
    /// Its ARN.
    pub queue_arn: String,
    /// Its dead-letter queue.
    pub dlq_url: String,
}

impl Pipeline {
    /// Deploys the emulator's part of the CDK stack (`infra/emulator-template.json`) under a unique
    /// stack name and takes every name from its outputs.
    pub async fn new() -> Self {
        let sdk = sdk().await;
        let stack = EmulatorStack::deploy(&sdk).await;
        let counter = RequestCounter::new();
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(counter.clone()).build();
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(config);
        let out = |key: &str| stack.output(key).to_owned();
        Self {
            store: DynamoStore::new(dynamodb, out("TableName")),
            counter,
            kms_key_id: out("FieldKeyArn"),
            bus: out("EventBusName"),
            source: out("EventSource"),
            eventbridge: aws_sdk_eventbridge::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            queue_url: out("ProjectorQueueUrl"),
            queue_arn: out("ProjectorQueueArn"),
            dlq_url: out("ProjectorDeadLetterQueueUrl"),
            stack,
            sdk,
        }
    }

    /// A field cipher on KMS data keys stored in the test's table.
    pub fn cipher(&self) -> FieldCipher {
        FieldCipher::new(KmsKeys::new(
            aws_sdk_kms::Client::new(&self.sdk),
            &self.kms_key_id,
            self.store.clone(),
        ))
    }

    /// Every item of the table, as text (a Scan: tests only), to search for plaintext.
    pub async fn table_text(&self) -> String {
        strata_testing::table_text(self.store.client(), self.store.table()).await
    }

    /// Every record of the table's stream so far, in shard order, as the JSON Lambda delivers.
    pub async fn stream_records(&self) -> Vec<Value> {
        strata_testing::stream_records(&self.sdk, self.store.client(), self.store.table()).await
    }

    /// Receives up to 10 messages (long-polling up to 1 s), as the JSON Lambda delivers.
    pub async fn receive(&self) -> Vec<Value> {
        self.receive_hidden_for(30).await
    }

    /// Like [`Pipeline::receive`], hiding what it receives for `seconds` (0: a message not deleted
    /// is received again at once, as after Lambda reports it failed and its visibility times out).
    pub async fn receive_hidden_for(&self, seconds: i32) -> Vec<Value> {
        receive(&self.sqs, &self.queue_url, &self.queue_arn, seconds).await
    }

    /// Deletes messages by receipt handle (what Lambda does for the messages a batch did not fail).
    pub async fn delete(&self, messages: &[SqsMessage]) {
        for message in messages {
            if let Some(handle) = &message.receipt_handle {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// Deletes the messages of a batch that its response does not report as failed: what Lambda does
    /// with a partial batch response.
    pub async fn acknowledge(
        &self,
        event: &SqsEvent,
        response: &aws_lambda_events::event::sqs::SqsBatchResponse,
    ) {
        let failed: Vec<&str> =
            response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        let done: Vec<SqsMessage> = event
            .records
            .iter()
            .filter(|m| !m.message_id.as_deref().is_some_and(|id| failed.contains(&id)))
            .cloned()
            .collect();
        self.delete(&done).await;
    }

    /// Messages waiting in the dead-letter queue (approximate, as SQS reports).
    pub async fn dead_letters(&self) -> usize {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.dlq_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap();
        out.attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// Receives up to 10 messages of a queue (long-polling up to 1 s), hiding them for `seconds`, as
/// the JSON Lambda delivers.
pub async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    queue_arn: &str,
    seconds: i32,
) -> Vec<Value> {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .visibility_timeout(seconds)
        .wait_time_seconds(1)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    out.messages.unwrap_or_default().into_iter().map(|m| lambda_sqs_message(m, queue_arn)).collect()
}

/// Fails unless the file at `relative` (to the repository root) holds exactly `generated` as pretty
/// JSON; `STRATA_BLESS=1` rewrites it first. For documents committed beside the code they come from.
pub fn assert_committed(relative: &str, generated: &Value, regenerate: &str) {
    let path = format!("{}/../{relative}", env!("CARGO_MANIFEST_DIR"));
    let text = serde_json::to_string_pretty(generated).unwrap() + "\n";
    if std::env::var_os("STRATA_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(on_disk == text, "{path} is stale: regenerate with STRATA_BLESS=1 {regenerate}");
}

/// An SQS message as Lambda's event source mapping hands it to a function.
pub(crate) fn lambda_sqs_message(message: aws_sdk_sqs::types::Message, queue_arn: &str) -> Value {
    let attributes: HashMap<String, String> =
        message.attributes.unwrap_or_default().into_iter().map(|(k, v)| (k.as_str().to_owned(), v)).collect();
    json!({
        "messageId": message.message_id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": message.md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    })
}

/// The records the publisher's event source mapping lets through: its filter
/// (`infra/lib/event-sourced-service.ts`, from the TableSpec) passes inserts of commits (to
/// publish) and of snapshots (to prune) only.
pub fn through_mapping_filter(records: &[Value]) -> Vec<Value> {
    let spec = strata_dynamodb::TableSpec::strata();
    records
        .iter()
        .filter(|r| {
            let kind = &r["dynamodb"]["NewImage"][&spec.kind_attribute]["S"];
            r["eventName"] == "INSERT" && (*kind == *spec.published_kind || *kind == *spec.snapshot_kind)
        })
        .cloned()
        .collect()
}

/// The DynamoDB stream event Lambda would invoke the publisher with for these records.
pub fn stream_event(records: &[Value]) -> StreamEvent {
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// The SQS event Lambda would invoke the projector with for these messages.
pub fn sqs_event(messages: &[Value]) -> SqsEvent {
    serde_json::from_value(json!({ "Records": messages })).unwrap()
}

/// A PutEvents client that fails a share of entries (as EventBridge does under throttling or
/// internal errors: `FailedEntryCount` > 0 in a 200 answer) and sends the rest to the real bus.
pub struct FlakyPutEvents {
    inner: aws_sdk_eventbridge::Client,
    failure_rate: f64,
    rng: Mutex<fastrand::Rng>,
    /// Entries failed on purpose.
    pub injected: AtomicUsize,
    /// Entries sent to the bus.
    pub sent: AtomicUsize,
}

impl FlakyPutEvents {
    /// Fails each entry with probability `failure_rate`, reproducibly from `seed`.
    pub fn new(inner: aws_sdk_eventbridge::Client, failure_rate: f64, seed: u64) -> Self {
        Self {
            inner,
            failure_rate,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            injected: AtomicUsize::new(0),
            sent: AtomicUsize::new(0),
        }
    }
}

impl PutEvents for FlakyPutEvents {
    async fn put_events(&self, bus: &str, entries: &[Entry]) -> Result<Vec<EntryResult>, Error> {
        let fail: Vec<bool> = {
            let mut rng = self.rng.lock().unwrap();
            entries.iter().map(|_| rng.f64() < self.failure_rate).collect()
        };
        let forwarded: Vec<Entry> =
            entries.iter().zip(&fail).filter(|(_, f)| !**f).map(|(e, _)| e.clone()).collect();
        let mut answers = if forwarded.is_empty() {
            Vec::new()
        } else {
            PutEvents::put_events(&self.inner, bus, &forwarded).await?
        }
        .into_iter();
        self.sent.fetch_add(forwarded.len(), Ordering::Relaxed);
        Ok(fail
            .into_iter()
            .map(|failed| {
                if failed {
                    self.injected.fetch_add(1, Ordering::Relaxed);
                    EntryResult::Failed { code: "InternalFailure".into(), message: "injected".into() }
                } else {
                    answers
                        .next()
                        .unwrap_or(EntryResult::Failed { code: "Missing".into(), message: String::new() })
                }
            })
            .collect())
    }
}
