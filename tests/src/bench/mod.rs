//! The benchmark suite behind `scripts/bench`: scenarios on the emulator (costs, load times,
//! throughput, publishing), the functions as shipped, and criterion's in-memory results, written
//! into one report (`docs/benchmarks.md`).
//!
//! Counts are exact (the small cases are asserted in `tests/tests/costs.rs`); timings are medians
//! with their spread and are never asserted.

pub mod costs;
pub mod criterion;
pub mod functions;
#[cfg(feature = "peer")]
pub mod peer;
pub mod publish;
pub mod report;
pub mod side_by_side;
pub mod stats;
pub mod throughput;

use std::time::Duration;

use aws_config::SdkConfig;
use strata_core::FieldCipher;
use strata_dynamodb::{DynamoStore, RequestCounter, TableSpec};
use strata_kms::KmsKeys;

/// What every emulator scenario shares: the SDK configuration and one KMS key for data keys.
pub struct Env {
    /// The SDK configuration (endpoint from `AWS_ENDPOINT_URL`).
    pub sdk: SdkConfig,
    /// The KMS key that wraps data keys.
    pub kms_key_id: String,
}

impl Env {
    /// Connects to the emulator and creates a KMS key.
    pub async fn new() -> Self {
        let sdk = crate::sdk().await;
        let key =
            aws_sdk_kms::Client::new(&sdk).create_key().description("strata bench").send().await.unwrap();
        let kms_key_id = key.key_metadata.map(|m| m.key_id).unwrap();
        Self { sdk, kms_key_id }
    }

    /// A new table of the Strata shape with a unique name, and a store whose requests are counted.
    pub async fn table(&self) -> (DynamoStore, RequestCounter) {
        let counter = RequestCounter::new();
        let config = aws_sdk_dynamodb::config::Builder::from(&self.sdk).interceptor(counter.clone()).build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let table = crate::unique("strata-bench");
        TableSpec::strata().create(&client, &table, Duration::from_secs(30)).await.unwrap();
        strata_testing::stream_enabled(&self.sdk, &table).await.unwrap();
        counter.reset();
        (DynamoStore::new(client, table), counter)
    }

    /// A field cipher on KMS data keys kept in `store`'s table.
    pub fn cipher(&self, store: &DynamoStore) -> FieldCipher {
        FieldCipher::new(KmsKeys::new(aws_sdk_kms::Client::new(&self.sdk), &self.kms_key_id, store.clone()))
    }
}

/// How much to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Stream lengths for costs and load times.
    pub lengths: Vec<u64>,
    /// Timed runs of each emulator figure.
    pub runs: usize,
    /// Commands per throughput run on one stream.
    pub one_stream_commands: usize,
    /// Streams of the many-streams throughput runs; each run sends one command to each.
    pub streams: usize,
    /// Orders per publishing run (5 events each).
    pub orders: usize,
    /// Runs of each function's init time.
    pub init_runs: usize,
    /// Events before the peer comparison's timed commands.
    pub peer_length: u64,
    /// Timed commands of the peer comparison, per subject and snapshot setting.
    pub peer_commands: usize,
    /// Events of the peer comparison's long load.
    pub peer_load: u64,
    /// Commands per writer in the peer comparison's concurrent runs (16 writers).
    pub peer_writer_commands: usize,
}

impl Plan {
    /// What the report is made of.
    pub fn full() -> Self {
        Self {
            // Not 100,000 on the emulator: moto walks a partition from its start for every page after
            // the first, so such a load measures that walk for most of an hour (the report says so).
            lengths: vec![100, 1_000, 10_000],
            runs: 5,
            one_stream_commands: 100,
            streams: 1_000,
            orders: 40,
            init_runs: 20,
            peer_length: 500,
            peer_commands: 50,
            peer_load: 10_000,
            peer_writer_commands: 50,
        }
    }

    /// A quick pass over everything, to try the harness.
    pub fn quick() -> Self {
        Self {
            lengths: vec![100, 1_000],
            runs: 2,
            one_stream_commands: 10,
            streams: 20,
            orders: 4,
            init_runs: 3,
            peer_length: 500,
            peer_commands: 10,
            // Past the 1 MB a Query page holds, so the peer's truncation shows.
            peer_load: 3_000,
            peer_writer_commands: 5,
        }
    }
}
