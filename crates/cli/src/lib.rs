//! `strata`, the operator CLI: look at streams, rebuild a read model, forget or export a data
//! subject, create the table, and diagnose a deployment. It uses the normal AWS configuration
//! (profile, region, `AWS_ENDPOINT_URL`), so it works against an emulator and an account alike.
//!
//! ```text
//! strata table init --table orders-dev
//! strata streams show acme/order-o-1 --table orders-dev --decrypt --kms-key alias/strata
//! strata projections rebuild order-summary --table orders-dev --kms-key alias/strata --checkpoint rebuild.json
//! strata diagnose --table orders-dev --bus orders-dev-bus --kms-key alias/strata
//! ```
//!
//! Every command prints a readable table, or JSON with `--json`; a failure prints one clear message
//! and exits non-zero (2 for bad arguments, 1 otherwise).

mod args;
mod diagnose;
mod output;
mod rebuild;
mod replay;
mod snapshots;
mod streams;
mod subjects;

use std::time::Duration;

pub use args::{Cli, Command};
use aws_config::{BehaviorVersion, SdkConfig};
pub use output::Output;
use strata_dynamodb::{DynamoStore, TableSpec};

/// What can go wrong, each with the message the operator sees.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An argument that parsed but makes no sense.
    #[error("{0}")]
    Usage(String),
    /// A Strata operation failed (store, KMS, decoding, ...).
    #[error(transparent)]
    Strata(#[from] strata_core::Error),
    /// Work stopped partway (what was done and how to go on are in the message).
    #[error("{0}")]
    Incomplete(String),
    /// A checkpoint file could not be read or written.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl CliError {
    /// The process exit code: 2 for usage errors, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// Runs one command and returns what to print.
pub async fn run(cli: Cli) -> Result<Output, CliError> {
    let sdk = sdk().await;
    match cli.command {
        Command::Table { command: args::TableCommand::Init { table } } => {
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            TableSpec::strata().create(&client, &table, Duration::from_secs(60)).await?;
            Ok(Output::message(format!("table {table} created (TableSpec: keys, indexes, stream, TTL)")))
        }
        Command::Diagnose(target) => Ok(diagnose::run(&sdk, &target).await),
        Command::Streams { command } => streams::run(&sdk, command).await,
        Command::Subjects { command } => subjects::run(&sdk, command).await,
        Command::Snapshots { command } => snapshots::run(&sdk, command).await,
        Command::Replay(replay) => replay::run(&sdk, replay).await,
        Command::Projections { command: args::ProjectionCommand::Rebuild(rebuild) } => {
            rebuild::run(&sdk, rebuild).await
        }
    }
}

/// The AWS configuration from the environment (`AWS_ENDPOINT_URL`, profile, region: the usual chain,
/// `us-east-1` only when it finds none), with short timeouts so an unreachable endpoint fails in
/// seconds.
async fn sdk() -> SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(30))
        .build();
    let region = aws_config::meta::region::RegionProviderChain::default_provider().or_else("us-east-1");
    aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts).region(region).load().await
}

/// The event store on `table`.
fn store(sdk: &SdkConfig, table: &str) -> DynamoStore {
    DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), table)
}

/// A field cipher on KMS data keys in `store`'s table.
fn cipher(sdk: &SdkConfig, key: &str, store: &DynamoStore) -> strata_core::FieldCipher {
    strata_core::FieldCipher::new(strata_kms::KmsKeys::new(aws_sdk_kms::Client::new(sdk), key, store.clone()))
}

/// Every stream in the table (a Scan of all of it), of one tenant and category when given, sorted.
async fn all_streams(
    store: &DynamoStore,
    tenant: Option<&str>,
    category: Option<&str>,
) -> Result<Vec<strata_core::StreamId>, CliError> {
    let mut streams = Vec::new();
    let mut after = None;
    loop {
        let page = store.scan_streams(0, 1, after.as_ref(), 1000).await?;
        streams.extend(page.streams.into_iter().filter(|s| {
            tenant.is_none_or(|t| s.tenant() == t) && category.is_none_or(|c| s.category() == c)
        }));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    streams.sort_by_key(ToString::to_string);
    Ok(streams)
}

/// Parses `tenant/category-id`.
fn stream_id(text: &str) -> Result<strata_core::StreamId, CliError> {
    let usage =
        || CliError::Usage(format!("'{text}' is not a stream: write tenant/category-id (acme/order-o-1)"));
    let (tenant, rest) = text.split_once('/').ok_or_else(usage)?;
    let (category, id) = rest.split_once('-').ok_or_else(usage)?;
    strata_core::StreamId::new(tenant, category, id).map_err(|e| CliError::Usage(format!("'{text}': {e}")))
}
