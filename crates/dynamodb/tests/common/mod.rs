//! Emulator plumbing for the integration tests: a fresh table per test, a client with a request
//! counter, and small helpers.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};
use strata_core::{AppendRequest, ExpectedVersion, Metadata, NewEvent, StreamId};
use strata_dynamodb::{DynamoStore, RequestCounter, TableSpec};

/// A store on a table of its own, and the counter of its client's requests.
pub struct Fixture {
    pub store: DynamoStore,
    pub counter: RequestCounter,
}

/// A new table with a unique name, created from [`TableSpec::strata`].
pub async fn fixture() -> Fixture {
    let sdk = strata_testing::sdk().await;
    let counter = RequestCounter::new();
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(counter.clone()).build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = strata_testing::unique("strata-test");
    TableSpec::strata().create(&client, &table, Duration::from_secs(30)).await.unwrap();
    strata_testing::stream_enabled(&sdk, &table).await.unwrap();
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
