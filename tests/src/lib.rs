//! Support for the end-to-end tests: one isolated pipeline per test in the emulator (table, KMS key,
//! bus, rule, queue with a dead-letter queue), readers that turn what the emulator's DynamoDB Streams
//! and SQS APIs return into the exact JSON Lambda hands a function, and a PutEvents client that fails
//! entries on purpose.
//!
//! Test support fails loudly: a missing emulator or a failed setup call panics with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::config::{Credentials, Region};
use serde_json::{Value, json};
use strata_core::{Error, FieldCipher};
use strata_dynamodb::{DynamoStore, RequestCounter, TableSpec};
use strata_eventbridge::{Entry, EntryResult, PutEvents};
use strata_kms::KmsKeys;

/// The emulator's SDK configuration: `AWS_ENDPOINT_URL` (required: tests never skip), region and
/// credentials from the environment or test defaults.
pub async fn sdk() -> SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set. These tests run against an AWS emulator: run ./scripts/test, \
             or `export AWS_ENDPOINT_URL=$(localstack/start)` first (LocalStack: http://localhost:4566)"
        )
    });
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).endpoint_url(endpoint);
    if std::env::var_os("AWS_REGION").is_none() {
        loader = loader.region(Region::new("us-east-1"));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader = loader.credentials_provider(Credentials::new("test", "test", None, None, "strata-tests"));
    }
    loader.load().await
}

/// A unique, lower-case resource name.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// One test's pipeline: commands write the table; its stream feeds the publisher; the bus routes the
/// test's source to the queue the projector reads.
pub struct Pipeline {
    /// The SDK configuration.
    pub sdk: SdkConfig,
    /// The event store (and view store) on the test's table.
    pub store: DynamoStore,
    /// Counts the store client's requests.
    pub counter: RequestCounter,
    /// The KMS key wrapping data keys.
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
    /// Creates every resource under unique names.
    pub async fn new() -> Self {
        let sdk = sdk().await;
        let counter = RequestCounter::new();
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(counter.clone()).build();
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(config);
        let table = unique("strata-e2e");
        TableSpec::strata().create(&dynamodb, &table, Duration::from_secs(30)).await.unwrap();
        let kms = aws_sdk_kms::Client::new(&sdk);
        let kms_key_id = kms.create_key().send().await.unwrap().key_metadata.unwrap().key_id;

        let eventbridge = aws_sdk_eventbridge::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let bus = unique("strata-bus");
        let source = format!("com.example.{}", unique("orders"));
        eventbridge.create_event_bus().name(&bus).send().await.unwrap();
        let dlq_url =
            sqs.create_queue().queue_name(unique("strata-dlq")).send().await.unwrap().queue_url.unwrap();
        let dlq_arn = queue_arn(&sqs, &dlq_url).await;
        let redrive = json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5" }).to_string();
        let queue_url = sqs
            .create_queue()
            .queue_name(unique("strata-projector"))
            .attributes(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let queue_arn = queue_arn(&sqs, &queue_url).await;
        let rule = unique("strata-rule");
        eventbridge
            .put_rule()
            .name(&rule)
            .event_bus_name(&bus)
            .event_pattern(json!({ "source": [source] }).to_string())
            .send()
            .await
            .unwrap();
        eventbridge
            .put_targets()
            .rule(&rule)
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("projector")
                    .arn(&queue_arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        counter.reset();
        Self {
            store: DynamoStore::new(dynamodb, table),
            counter,
            kms_key_id,
            bus,
            source,
            eventbridge,
            sqs,
            queue_url,
            queue_arn,
            dlq_url,
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
        let mut text = String::new();
        let mut start = None;
        loop {
            let out = self
                .store
                .client()
                .scan()
                .table_name(self.store.table())
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            text.push_str(&format!("{:?}", out.items()));
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return text,
            }
        }
    }

    /// Every record of the table's stream so far, in shard order, as the JSON Lambda delivers.
    pub async fn stream_records(&self) -> Vec<Value> {
        let streams = aws_sdk_dynamodbstreams::Client::new(&self.sdk);
        let table = self.store.client().describe_table().table_name(self.store.table()).send().await.unwrap();
        let arn = table.table().unwrap().latest_stream_arn().unwrap().to_owned();
        let described = streams.describe_stream().stream_arn(&arn).send().await.unwrap();
        let mut records = Vec::new();
        for shard in described.stream_description().unwrap().shards() {
            let mut iterator = streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(shard.shard_id().unwrap())
                .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
                .unwrap()
                .shard_iterator;
            while let Some(current) = iterator {
                let out = streams.get_records().shard_iterator(current).limit(1000).send().await.unwrap();
                let page = out.records.unwrap_or_default();
                if page.is_empty() {
                    break;
                }
                records.extend(page.into_iter().map(|r| lambda_stream_record(r, &arn)));
                iterator = out.next_shard_iterator;
            }
        }
        records
    }

    /// Receives up to 10 messages (long-polling up to 1 s), as the JSON Lambda delivers.
    pub async fn receive(&self) -> Vec<Value> {
        self.receive_hidden_for(30).await
    }

    /// Like [`Pipeline::receive`], hiding what it receives for `seconds` (0: a message not deleted
    /// is received again at once, as after Lambda reports it failed and its visibility times out).
    pub async fn receive_hidden_for(&self, seconds: i32) -> Vec<Value> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(seconds)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        out.messages.unwrap_or_default().into_iter().map(|m| lambda_sqs_message(m, &self.queue_arn)).collect()
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

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    out.attributes().unwrap().get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).unwrap().clone()
}

fn item_json(item: Option<HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>) -> Value {
    let item: HashMap<String, serde_dynamo::AttributeValue> =
        item.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into())).collect();
    serde_json::to_value(serde_dynamo::Item::from(item)).unwrap()
}

/// A DynamoDB Streams record as Lambda's event source mapping hands it to a function.
fn lambda_stream_record(record: aws_sdk_dynamodbstreams::types::Record, stream_arn: &str) -> Value {
    let change = record.dynamodb.unwrap();
    json!({
        "eventID": record.event_id,
        "eventName": record.event_name.map(|n| n.as_str().to_owned()),
        "eventVersion": record.event_version,
        "eventSource": record.event_source,
        "awsRegion": record.aws_region,
        "dynamodb": {
            "ApproximateCreationDateTime": change.approximate_creation_date_time.map(|t| t.secs()),
            "Keys": item_json(change.keys),
            "NewImage": item_json(change.new_image),
            "SequenceNumber": change.sequence_number,
            "SizeBytes": change.size_bytes,
            "StreamViewType": change.stream_view_type.map(|v| v.as_str().to_owned()),
        },
        "eventSourceARN": stream_arn,
    })
}

/// An SQS message as Lambda's event source mapping hands it to a function.
fn lambda_sqs_message(message: aws_sdk_sqs::types::Message, queue_arn: &str) -> Value {
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
