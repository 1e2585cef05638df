//! Lambda glue shared by Strata's functions: a service's registry of aggregates and read models
//! ([`Service`]) and the HTTP APIs built from it, typed configuration from the environment, JSON
//! logs, and the AWS configuration every client is built from.
//!
//! ```no_run
//! # async fn f() -> Result<(), strata_lambda::ConfigError> {
//! strata_lambda::init_logs();
//! let table = strata_lambda::env::required("STRATA_TABLE")?;
//! let attempts: u32 = strata_lambda::env::parsed_or("STRATA_PUBLISH_ATTEMPTS", 4)?;
//! let sdk = strata_lambda::aws().await;
//! # Ok(()) }
//! ```

pub mod authorize;
pub mod command_api;
pub mod contracts;
pub mod env;
pub mod http;
pub mod openapi;
pub mod problem;
pub mod publisher;
pub mod query_api;
pub mod runtime;
pub mod service;

pub use authorize::{Access, Action, Authorizer, Denied, Guard, Scopes, Target};
pub use command_api::{CommandApi, CommandHandler};
pub use env::ConfigError;
pub use http::Tenancy;
pub use problem::{Problem, ProblemKind};
pub use query_api::{At, QueryApi, StateReader};
pub use service::{RegistryError, Service, Settings};

/// JSON logs on stdout (CloudWatch), one object per line, level from `AWS_LAMBDA_LOG_LEVEL`, then
/// `RUST_LOG`, else `info`. Calling it twice is harmless.
pub fn init_logs() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into())
        .to_lowercase();
    let _ = tracing::subscriber::set_global_default(json_logs(&level, std::io::stdout));
}

/// The subscriber [`init_logs`] installs, writing to `writer`: one JSON object per event, its fields
/// under `fields` (what the construct's metric filters match, e.g. `$.fields.alert`), without a
/// target or time (Lambda stamps each line itself).
pub fn json_logs<W>(level: &str, writer: W) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .with_current_span(false)
        .with_writer(writer)
        .finish()
}

/// The shared AWS configuration: region, credentials and `AWS_ENDPOINT_URL` from the environment,
/// as the SDK reads them (so the same binary runs against AWS, LocalStack or the native emulator).
pub async fn aws() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
