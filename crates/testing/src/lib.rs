//! Emulator plumbing shared by the integration tests of every Strata crate: the SDK configuration
//! (from `AWS_ENDPOINT_URL`), unique resource names, and readers of a table and of its DynamoDB
//! stream. It depends on no Strata crate, so any crate's tests can use it.
//!
//! Test support fails loudly: a missing emulator or a failed call panics with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

pub mod schema;
mod stack;
pub use stack::{EMULATOR_TEMPLATE, EmulatorStack};

use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::{Credentials, Region};
use serde_json::{Value, json};

/// The emulator's SDK configuration: `AWS_ENDPOINT_URL` (required: tests never skip), region and
/// credentials from the environment or test defaults (`us-east-1`, dummy keys).
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

/// Polls `check` every 100 ms until it answers `Ok`, for what DynamoDB makes only eventually
/// consistent: a global secondary index, say, which both emulators happen to update at once and AWS
/// does not. Panics with `what` and the last `Err` after 30 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if std::time::Instant::now() >= deadline => panic!("{what}: still {last} after 30 s"),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}

/// A unique, lower-case resource name: `{prefix}-{ulid}`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// Every item of a table, as text (a paged Scan: tests only), to search for plaintext.
pub async fn table_text(client: &aws_sdk_dynamodb::Client, table: &str) -> String {
    let mut text = String::new();
    let mut start = None;
    loop {
        let out = client.scan().table_name(table).set_exclusive_start_key(start).send().await.unwrap();
        text.push_str(&format!("{:?}", out.items()));
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return text,
        }
    }
}

/// Waits (up to 60 s) until a new table's DynamoDB stream is `ENABLED`. A stream is `ENABLING` for a
/// moment after its table turns active, and LocalStack drops the records of writes made before it
/// is enabled: a test writes only after this.
pub async fn stream_enabled(sdk: &SdkConfig, table: &str) -> Result<(), String> {
    use aws_sdk_dynamodbstreams::error::DisplayErrorContext;
    use aws_sdk_dynamodbstreams::types::StreamStatus;
    let described = aws_sdk_dynamodb::Client::new(sdk).describe_table().table_name(table).send().await;
    let described = described.map_err(|e| format!("describe table {table}: {}", DisplayErrorContext(e)))?;
    let arn =
        described.table().and_then(|t| t.latest_stream_arn()).ok_or(format!("{table} has no stream"))?;
    let streams = aws_sdk_dynamodbstreams::Client::new(sdk);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let stream = streams.describe_stream().stream_arn(arn).send().await;
        let stream = stream.map_err(|e| format!("describe stream of {table}: {}", DisplayErrorContext(e)))?;
        let status = stream.stream_description().and_then(|d| d.stream_status()).cloned();
        if status == Some(StreamStatus::Enabled) {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!("the stream of {table} is {status:?} after 60 s"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Every record of a table's DynamoDB stream, in shard order, as the JSON Lambda's event source
/// mapping hands a function (one element of `Records`), once the stream has caught up with the table.
///
/// A stream record appears some time after its write (about 0.1 s on moto, seconds on LocalStack,
/// "near real time" on AWS), so this polls (deadline 60 s) until, for every item the table holds
/// now, a record of its key carries exactly that item (any record, not the last: LocalStack may
/// order two quick writes of one key either way). Call it once the writes it should see are done;
/// it waits for what the table holds, not for deletions (look for their REMOVE records yourself).
pub async fn stream_records(sdk: &SdkConfig, _client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Value> {
    // Clients of their own: these requests must not show up in the caller's request counts.
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let streams = aws_sdk_dynamodbstreams::Client::new(sdk);
    let described = dynamodb.describe_table().table_name(table).send().await.unwrap();
    let arn = described.table().unwrap().latest_stream_arn().unwrap().to_owned();
    let items = table_items(&dynamodb, table).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let records = read_stream(&streams, &arn).await;
        let mut images: HashMap<String, Vec<&Value>> = HashMap::new();
        for record in &records {
            let change = &record["dynamodb"];
            images.entry(key_of(&change["Keys"])).or_default().push(&change["NewImage"]);
        }
        let behind: Vec<_> = items
            .iter()
            .filter(|(key, item)| !images.get(*key).is_some_and(|seen| seen.contains(item)))
            .collect();
        if behind.is_empty() {
            return records;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no stream record of {table} carries {} of its items after 60 s: {behind:?}",
            behind.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// The key of an item (or of a stream record's `Keys`) as JSON, as text.
fn key_of(item: &Value) -> String {
    format!("{}|{}", item["pk"], item["sk"])
}

/// Every item of a table as JSON (DynamoDB's typed form, as stream records carry it), by key.
async fn table_items(client: &aws_sdk_dynamodb::Client, table: &str) -> HashMap<String, Value> {
    let mut items = HashMap::new();
    let mut start = None;
    loop {
        let out = client.scan().table_name(table).consistent_read(true).set_exclusive_start_key(start);
        let out = out.send().await.unwrap();
        for item in out.items.unwrap_or_default() {
            let item: HashMap<String, serde_dynamo::AttributeValue> =
                item.into_iter().map(|(k, v)| (k, v.into())).collect();
            let item = serde_json::to_value(serde_dynamo::Item::from(item)).unwrap();
            items.insert(key_of(&item), item);
        }
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return items,
        }
    }
}

/// The records of every shard of a stream so far: each shard read from its start until a page
/// comes back empty.
async fn read_stream(streams: &aws_sdk_dynamodbstreams::Client, arn: &str) -> Vec<Value> {
    let stream = streams.describe_stream().stream_arn(arn).send().await.unwrap();
    let mut records = Vec::new();
    for shard in stream.stream_description().unwrap().shards() {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(arn)
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
            records.extend(page.into_iter().map(|r| lambda_stream_record(r, arn)));
            iterator = out.next_shard_iterator;
        }
    }
    records
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

/// An API Gateway HTTP API (payload format 2.0) event, as API Gateway hands it to a Lambda function.
pub fn apigw_v2_event(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Value {
    let headers: serde_json::Map<String, Value> =
        headers.iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1",
                      "userAgent": "strata-tests" },
            "requestId": unique("req"), "routeKey": "$default", "stage": "$default",
            "time": "23/Nov/2026:10:00:00 +0000", "timeEpoch": 1795428000000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}
