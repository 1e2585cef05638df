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
mod new;
mod output;
mod rebuild;
mod replay;
mod snapshots;
mod streams;
mod subjects;

use std::time::Duration;

pub use args::{AwsArgs, Cli, Command};
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

/// A service's registry over the table: the aggregates (for snapshots) and read models (for
/// rebuilds) this binary knows, e.g. `strata_orders::service::<DynamoStore>`.
pub type Registry = fn(DynamoStore) -> strata_lambda::Service<DynamoStore>;

/// A whole `strata` binary over a team's registry: parses the arguments, runs, prints, and returns
/// the exit code. A team's CLI is this one call:
///
/// ```no_run
/// #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// async fn main() -> std::process::ExitCode {
///     strata_cli::main(strata_orders::service).await
/// }
/// ```
pub async fn main(registry: Registry) -> std::process::ExitCode {
    use clap::Parser;
    use std::io::Write;
    let cli = Cli::parse(); // bad arguments: clap prints usage and exits 2
    let json = cli.json;
    match run(cli, registry).await {
        Ok(output) => {
            // A closed pipe (`strata streams list | head`) is not an error worth a panic.
            let _ = std::io::stdout().lock().write_all(output.render(json).as_bytes());
            if output.failed { std::process::ExitCode::FAILURE } else { std::process::ExitCode::SUCCESS }
        }
        Err(error) => {
            // The whole chain: "store backend failed: dispatch failure: connection refused".
            let mut message = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("strata: {message}");
            std::process::ExitCode::from(error.exit_code())
        }
    }
}

/// Runs one command and returns what to print.
pub async fn run(cli: Cli, registry: Registry) -> Result<Output, CliError> {
    if let Command::New(args) = &cli.command {
        return new::run(args);
    }
    if let Command::Completions { shell } = cli.command {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "strata", &mut script);
        return Ok(Output::message(String::from_utf8_lossy(&script).trim_end().to_owned()));
    }
    let sdk = sdk(&cli.aws).await;
    match cli.command {
        Command::Completions { .. } | Command::New(_) => {
            Err(CliError::Usage("this command needs no AWS".into()))
        }
        Command::Table { command: args::TableCommand::Init { table } } => {
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            TableSpec::strata().create(&client, &table, Duration::from_secs(60)).await?;
            Ok(Output::message(format!("table {table} created (TableSpec: keys, indexes, stream, TTL)")))
        }
        Command::Diagnose(target) => Ok(diagnose::run(&sdk, &target).await),
        Command::Streams { command } => streams::run(&sdk, command).await,
        Command::Subjects { command } => subjects::run(&sdk, command).await,
        Command::Snapshots { command } => snapshots::run(&sdk, command, registry).await,
        Command::Replay(replay) => replay::run(&sdk, replay).await,
        Command::Projections { command: args::ProjectionCommand::Rebuild(rebuild) } => {
            rebuild::run(&sdk, rebuild, registry).await
        }
    }
}

/// The AWS configuration: `--profile`, `--region` and `--endpoint-url` (or `AWS_PROFILE`,
/// `AWS_REGION`, `AWS_ENDPOINT_URL`) over the usual chain, `us-east-1` only when it finds no region,
/// with short timeouts so an unreachable endpoint fails in seconds.
async fn sdk(aws: &args::AwsArgs) -> SdkConfig {
    let loader = |region: Option<aws_config::Region>| {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_timeout(Duration::from_secs(30))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
        if let Some(profile) = &aws.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = region.or_else(|| aws.region.clone().map(aws_config::Region::new)) {
            loader = loader.region(region);
        }
        if let Some(endpoint) = &aws.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        loader
    };
    // The loader's own region chain reads the chosen profile; us-east-1 only when it finds none.
    let sdk = loader(None).load().await;
    if sdk.region().is_some() {
        return sdk;
    }
    loader(Some(aws_config::Region::from_static("us-east-1"))).load().await
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
