//! Emulator plumbing for the integration tests: a fresh table per test, a client with a request
//! counter, and small helpers.
#![allow(dead_code)]

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::{Credentials, Region};
use serde_json::{Value, json};
use strata_core::{AppendRequest, ExpectedVersion, Metadata, NewEvent, StreamId};
use strata_dynamodb::{DynamoStore, RequestCounter, TableSpec};

/// A store on a table of its own, and the counter of its client's requests.
pub struct Fixture {
    pub store: DynamoStore,
    pub counter: RequestCounter,
}

/// The emulator's endpoint; tests fail (never skip) when it is missing.
fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set. These tests run against an AWS emulator: run ./scripts/test, \
             or `export AWS_ENDPOINT_URL=$(localstack/start)` first (LocalStack: http://localhost:4566)"
        )
    })
}

/// A new table with a unique name, created from [`TableSpec::strata`].
pub async fn fixture() -> Fixture {
    let endpoint = endpoint();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).endpoint_url(endpoint);
    if std::env::var_os("AWS_REGION").is_none() {
        loader = loader.region(Region::new("us-east-1"));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader = loader.credentials_provider(Credentials::new("test", "test", None, None, "strata-tests"));
    }
    let sdk = loader.load().await;
    let counter = RequestCounter::new();
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(counter.clone()).build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = format!("strata-test-{}", ulid::Ulid::new().to_string().to_lowercase());
    TableSpec::strata().create(&client, &table, Duration::from_secs(30)).await.unwrap();
    counter.reset();
    Fixture { store: DynamoStore::new(client, table), counter }
}

pub fn stream(id: &str) -> StreamId {
    StreamId::new("acme", "tally", id).unwrap()
}

pub fn event(payload: Value) -> NewEvent {
    NewEvent::new("Bumped", 1, payload, Metadata::new("corr"))
}

pub fn bumps(from: u64, count: u64) -> Vec<NewEvent> {
    (from..from + count).map(|n| event(json!({"n": n}))).collect()
}

pub fn append(stream: &StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest { stream: stream.clone(), expected, events, idempotency: None }
}
