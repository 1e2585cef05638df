//! The command line (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Operate a Strata event store: streams, read models, data subjects, the table.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
pub struct Cli {
    /// Print JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// Where AWS is and who calls it.
    #[command(flatten)]
    pub aws: AwsArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The AWS account, region and endpoint, over the SDK's usual chain (environment, shared config and
/// credentials files, SSO and `credential_process` profiles, instance and container roles).
#[derive(Debug, Clone, Default, Args)]
pub struct AwsArgs {
    /// A named profile of ~/.aws/config (SSO and `credential_process` profiles included).
    #[arg(long, global = true, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// The region (else the profile's, else us-east-1).
    #[arg(long, global = true, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Another endpoint for every service: LocalStack, the native emulator.
    #[arg(long = "endpoint-url", global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a new service: a workspace with one aggregate (a command, an event, its tests) and its
    /// Lambda binary, on this Strata checkout.
    New(New),
    /// Print a shell completion script (`strata completions bash > /etc/bash_completion.d/strata`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The event store table.
    Table {
        /// What to do with it.
        #[command(subcommand)]
        command: TableCommand,
    },
    /// Check that the table, its stream, the bus, its rules and the KMS key are there and as Strata
    /// needs them: a verdict per check.
    Diagnose(Diagnose),
    /// Look at streams.
    Streams {
        /// What to do.
        #[command(subcommand)]
        command: StreamsCommand,
    },
    /// Data subjects' personal data (GDPR export and erasure).
    Subjects {
        /// What to do.
        #[command(subcommand)]
        command: SubjectsCommand,
    },
    /// Snapshots of a stream.
    Snapshots {
        /// What to do.
        #[command(subcommand)]
        command: SnapshotsCommand,
    },
    /// Publish stored events to the bus again (to a new consumer, or after an outage), marked as
    /// replayed (`metadata.user.strata_replay` holds the replay's id).
    Replay(Replay),
    /// Read models.
    Projections {
        /// What to do.
        #[command(subcommand)]
        command: ProjectionCommand,
    },
}

/// Where and what to generate.
#[derive(Debug, Args)]
pub struct New {
    /// The service's name: lower-case letters, digits and `-`, starting with a letter.
    pub name: String,
    /// The directory to create (default: ./<name>); it must not exist.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The Strata checkout the service depends on by path (default: the git checkout this binary was
    /// built from, when it is one).
    #[arg(long)]
    pub strata: Option<PathBuf>,
}

/// Table commands.
#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Create a table of the Strata TableSpec (for development; production tables come from the CDK
    /// app).
    Init {
        /// The table name.
        #[arg(long, env = "STRATA_TABLE")]
        table: String,
    },
}

/// What `diagnose` checks.
#[derive(Debug, Args)]
pub struct Diagnose {
    /// The table.
    #[arg(long, env = "STRATA_TABLE")]
    pub table: String,
    /// The EventBridge bus events are published to.
    #[arg(long, env = "STRATA_EVENT_BUS")]
    pub bus: Option<String>,
    /// The KMS key that wraps data keys.
    #[arg(long = "kms-key", env = "STRATA_KMS_KEY_ID")]
    pub kms_key: Option<String>,
}

/// Stream commands.
#[derive(Debug, Subcommand)]
pub enum StreamsCommand {
    /// List streams (a Scan of the whole table: for operators, not for request paths).
    List {
        /// The table.
        #[arg(long, env = "STRATA_TABLE")]
        table: String,
        /// Only this tenant's streams.
        #[arg(long)]
        tenant: Option<String>,
        /// Only streams of this category.
        #[arg(long)]
        category: Option<String>,
    },
    /// Show a stream's events, a page at a time.
    Show {
        /// The stream: tenant/category-id.
        stream: String,
        /// The table.
        #[arg(long, env = "STRATA_TABLE")]
        table: String,
        /// The first version to show.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// How many events (at most 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
        /// Show personal fields decrypted (needs --kms-key); without it they show sealed.
        #[arg(long)]
        decrypt: bool,
        /// The KMS key that wraps data keys.
        #[arg(long = "kms-key", env = "STRATA_KMS_KEY_ID")]
        kms_key: Option<String>,
    },
}

/// Snapshot commands.
#[derive(Debug, Subcommand)]
pub enum SnapshotsCommand {
    /// The versions a stream has snapshots at, newest first.
    List(SnapshotStream),
    /// Take a snapshot at the stream's head now.
    Take {
        /// The stream.
        #[command(flatten)]
        stream: SnapshotStream,
        /// The KMS key that wraps data keys (states with personal data need it).
        #[arg(long = "kms-key", env = "STRATA_KMS_KEY_ID")]
        kms_key: Option<String>,
    },
    /// Delete all but the newest snapshots.
    Prune {
        /// The stream.
        #[command(flatten)]
        stream: SnapshotStream,
        /// How many to keep.
        #[arg(long, default_value_t = 1)]
        keep: usize,
    },
}

/// A stream whose snapshots to work on.
#[derive(Debug, Args)]
pub struct SnapshotStream {
    /// The stream: tenant/category-id.
    pub stream: String,
    /// The table.
    #[arg(long, env = "STRATA_TABLE")]
    pub table: String,
}

/// What to replay, and where to.
#[derive(Debug, Args)]
pub struct Replay {
    /// The table.
    #[arg(long, env = "STRATA_TABLE")]
    pub table: String,
    /// The bus.
    #[arg(long, env = "STRATA_EVENT_BUS")]
    pub bus: String,
    /// The EventBridge source to publish with (the publisher's).
    #[arg(long, env = "STRATA_EVENT_SOURCE")]
    pub source: String,
    /// Only this tenant's streams.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only streams of this category.
    #[arg(long)]
    pub category: Option<String>,
    /// Only events of these types (repeat the flag for several).
    #[arg(long = "type")]
    pub types: Vec<String>,
    /// Only events committed at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events committed before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Count what would be published, publish nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Data subject commands.
#[derive(Debug, Subcommand)]
pub enum SubjectsCommand {
    /// Every personal field of a subject, decrypted.
    Export(Subject),
    /// Delete the subject's data key: their fields read as redacted from then on, everywhere.
    Forget {
        /// The subject.
        #[command(flatten)]
        subject: Subject,
        /// Confirm: forgetting cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

/// A data subject and where their keys are.
#[derive(Debug, Args)]
pub struct Subject {
    /// The tenant.
    pub tenant: String,
    /// The subject id.
    pub subject: String,
    /// The table.
    #[arg(long, env = "STRATA_TABLE")]
    pub table: String,
    /// The KMS key that wraps data keys.
    #[arg(long = "kms-key", env = "STRATA_KMS_KEY_ID")]
    pub kms_key: String,
}

/// Read model commands.
#[derive(Debug, Subcommand)]
pub enum ProjectionCommand {
    /// Rebuild a projection's views from the events (after fixing its fold).
    Rebuild(Rebuild),
}

/// How to rebuild.
#[derive(Debug, Args)]
pub struct Rebuild {
    /// The projection (`order-summary`).
    pub projection: String,
    /// The table.
    #[arg(long, env = "STRATA_TABLE")]
    pub table: String,
    /// The KMS key that wraps data keys (projections with personal data need it).
    #[arg(long = "kms-key", env = "STRATA_KMS_KEY_ID")]
    pub kms_key: Option<String>,
    /// Rebuild without a key, whatever --kms-key or STRATA_KMS_KEY_ID say: only for a projection of
    /// events without personal data (one with personal data stops at its first sealed field).
    #[arg(long)]
    pub no_cipher: bool,
    /// Parallel Scan segments (each rebuilds its streams one after another, in version order).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub segments: u32,
    /// A file to record progress in after every page; an interrupted rebuild given the same file goes
    /// on where it stopped.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Items each Scan page evaluates.
    #[arg(long, default_value_t = 500, hide = true)]
    pub page_items: i32,
}
