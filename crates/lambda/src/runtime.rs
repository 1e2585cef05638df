//! One Lambda binary for a whole service: its command API, query API, projectors and consumers, each
//! deployed as a function of its own (its own role, its own least-privilege IAM role) by setting
//! `STRATA_ROLE` (always required), and all of them at once with `STRATA_ROLE=all` (local serving,
//! tests). The table's stream publisher is a role of it too (`publisher`), so a team deploys one zip
//! for every function of its service.
//!
//! ```no_run
//! use strata_lambda::Service;
//! use strata_lambda::runtime::{Functions, serve};
//! use strata_orders::{Order, OrderSummaries, upcasters};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), lambda_runtime::Error> {
//!     serve(|deployed| {
//!         let service = Service::new(deployed.store.clone())
//!             .with_cipher(deployed.cipher.clone())
//!             .with_upcasters(upcasters())
//!             .aggregate::<Order>()
//!             .projection(OrderSummaries);
//!         Functions::new(service)
//!     })
//!     .await
//! }
//! ```
//!
//! | `STRATA_ROLE` | serves | needs |
//! |---|---|---|
//! | `command` | API Gateway HTTP events: the command API | `STRATA_TENANT` or `STRATA_TENANT_CLAIM`; [`Settings::from_env`] |
//! | `query` | API Gateway HTTP events: the query API | as `command` |
//! | `admin` | the query API with the admin routes (export, forget) | as `command` |
//! | `projector` | SQS batches of the bus's events: every projection | |
//! | `consumer` | SQS batches: the consumer `STRATA_CONSUMER` names (every consumer when unset) | optional `STRATA_CONSUMER_LEASE_SECS`: refuses to start unless it is the consumer's lease |
//! | `publisher` | DynamoDB stream batches of the table: published to EventBridge | see [`crate::publisher`] |
//! | `all` (local serving, tests) | HTTP: POST to the command API, the rest to the query API (with admin routes when `STRATA_ADMIN`); SQS: every projection and every consumer; stream batches when `STRATA_EVENT_BUS` is set | as `command` |
//!
//! Every role needs `STRATA_TABLE` and `STRATA_KMS_KEY_ID`; `STRATA_COMMIT_FORMAT` as the orders
//! command function reads it. An event of a kind the role does not serve fails the invocation.

use std::collections::BTreeSet;
use std::str::FromStr;

use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_http::{Body, Request, Response};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;
use strata_core::FieldCipher;
use strata_core::projection::AnyProjector;
use strata_dynamodb::{CommitFormat, DynamoStore};
use strata_eventbridge::{AnyEffects, StreamRelay};
use strata_kms::KmsKeys;

use crate::env::{self, ConfigError};
use crate::{CommandApi, QueryApi, Service, Settings, Tenancy};

/// What a deployed function is built over: the AWS configuration, the event store table and the
/// field cipher (KMS data keys kept in the table).
pub struct Deployment {
    /// The AWS configuration from the environment.
    pub sdk: aws_config::SdkConfig,
    /// The table `STRATA_TABLE`.
    pub store: DynamoStore,
    /// Data keys wrapped by `STRATA_KMS_KEY_ID`.
    pub cipher: FieldCipher,
}

/// A service's parts and its consumers: what one binary serves.
pub struct Functions {
    service: Service<DynamoStore>,
    consumers: Vec<Box<dyn AnyEffects>>,
}

impl Functions {
    /// The service's aggregates and read models, without consumers.
    pub fn new(service: Service<DynamoStore>) -> Self {
        Self { service, consumers: Vec::new() }
    }

    /// Adds a consumer (an `Effects` runner of one `Consumer`).
    pub fn consumer(mut self, effects: impl AnyEffects + 'static) -> Self {
        self.consumers.push(Box::new(effects));
        self
    }
}

/// Which part of the service a function is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The command API.
    Command,
    /// The query API.
    Query,
    /// The query API with the admin routes.
    Admin,
    /// Every projection.
    Projector,
    /// One consumer (`STRATA_CONSUMER`), or all.
    Consumer,
    /// The stream publisher (the outbox relay).
    Publisher,
    /// Everything: local serving and tests.
    All,
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text {
            "command" => Self::Command,
            "query" => Self::Query,
            "admin" => Self::Admin,
            "projector" => Self::Projector,
            "consumer" => Self::Consumer,
            "publisher" => Self::Publisher,
            "all" => Self::All,
            other => {
                return Err(format!(
                    "`{other}` is not one of command, query, admin, projector, consumer, publisher, all"
                ));
            }
        })
    }
}

/// Reads the environment, builds the functions with `build`, and serves the role's events until
/// the runtime stops. Configuration errors (a missing variable, two parts of one name) fail the
/// function's start, with the reason in its log.
pub async fn serve(build: impl FnOnce(&Deployment) -> Functions) -> Result<(), Error> {
    crate::init_logs();
    // Always named, `all` included: a function whose role was left unset would serve every role
    // under one IAM role.
    let role: Role = env::parse("STRATA_ROLE", &env::required("STRATA_ROLE")?)?;
    let table = env::required("STRATA_TABLE")?;
    let key_id = env::required("STRATA_KMS_KEY_ID")?;
    let format = env::parsed_or("STRATA_COMMIT_FORMAT", CommitFormat::V3)?;
    let sdk = crate::aws().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table).with_commit_format(format);
    let cipher = FieldCipher::new(KmsKeys::new(aws_sdk_kms::Client::new(&sdk), key_id, store.clone()));
    let relay = match role {
        Role::Publisher => Some(crate::publisher::relay_from_env(&sdk)?),
        Role::All if env::optional("STRATA_EVENT_BUS")?.is_some() => {
            Some(crate::publisher::relay_from_env(&sdk)?)
        }
        _ => None,
    };
    let functions = build(&Deployment { sdk, store, cipher });
    let mut handler = Handler::from_env(role, functions)?;
    if let Some(relay) = relay {
        handler = handler.with_relay(relay);
    }
    let handler = &handler;
    lambda_runtime::run(lambda_runtime::service_fn(move |event: LambdaEvent<Value>| handler.invoke(event)))
        .await
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("commands", &self.commands.is_some())
            .field("queries", &self.queries.is_some())
            .field("projectors", &self.projectors.iter().map(|p| p.name()).collect::<Vec<_>>())
            .field("consumers", &self.consumers.iter().map(|c| c.name()).collect::<Vec<_>>())
            .field("relay", &self.relay.is_some())
            .finish()
    }
}

/// The parts one role serves, built once per instance.
pub struct Handler {
    commands: Option<CommandApi>,
    queries: Option<QueryApi>,
    projectors: Vec<Box<dyn AnyProjector>>,
    consumers: Vec<Box<dyn AnyEffects>>,
    relay: Option<StreamRelay<aws_sdk_eventbridge::Client>>,
}

impl Handler {
    /// The parts `role` serves, with the settings of the environment (`STRATA_TENANT` or
    /// `STRATA_TENANT_CLAIM` for HTTP roles, [`Settings::from_env`], `STRATA_CONSUMER`).
    pub fn from_env(role: Role, functions: Functions) -> Result<Self, Error> {
        let mut settings = Settings::from_env()?;
        let http = matches!(role, Role::Command | Role::Query | Role::Admin | Role::All);
        let tenancy = if http { Some(Tenancy::from_env()?) } else { None };
        let consumer = env::optional("STRATA_CONSUMER")?;
        let lease: Option<i64> = match env::optional("STRATA_CONSUMER_LEASE_SECS")? {
            Some(text) => Some(env::parse("STRATA_CONSUMER_LEASE_SECS", &text)?),
            None => None,
        };
        let handler = Self::new(role, functions, tenancy, &mut settings, consumer.as_deref())?;
        handler.check_lease(lease)?;
        Ok(handler)
    }

    /// Refuses to serve consumers whose claim lease is not the one the queue was made for
    /// (`STRATA_CONSUMER_LEASE_SECS`, from the construct's `lease`): the queue's visibility timeout
    /// and the function's timeout were chosen against it.
    pub fn check_lease(&self, seconds: Option<i64>) -> Result<(), Error> {
        let Some(seconds) = seconds else { return Ok(()) };
        for consumer in &self.consumers {
            let lease = consumer.lease().num_seconds();
            if lease != seconds {
                return Err(format!(
                    "consumer {}: its Effects lease is {lease} s, the deployment's STRATA_CONSUMER_LEASE_SECS {seconds} s: give addConsumer lease {lease} s (or the code with_lease {seconds} s)",
                    consumer.name()
                )
                .into());
            }
        }
        Ok(())
    }

    /// The parts `role` serves; `tenancy` is needed by the HTTP roles.
    pub fn new(
        role: Role,
        functions: Functions,
        tenancy: Option<Tenancy>,
        settings: &mut Settings,
        consumer: Option<&str>,
    ) -> Result<Self, Error> {
        let Functions { service, consumers } = functions;
        let tenancy = || tenancy.clone().ok_or(ConfigError::Missing { name: "STRATA_TENANT" });
        // The admin routes are a role of their own, never a setting of the query role.
        match role {
            Role::Admin => settings.admin = true,
            Role::Query => settings.admin = false,
            _ => {}
        }
        let commands = match role {
            Role::Command | Role::All => Some(service.command_api(tenancy()?, settings)?),
            _ => None,
        };
        let queries = match role {
            Role::Query | Role::Admin | Role::All => Some(service.query_api(tenancy()?, settings)?),
            _ => None,
        };
        let projectors = match role {
            Role::Projector | Role::All => service.projectors()?,
            _ => Vec::new(),
        };
        let consumers: Vec<Box<dyn AnyEffects>> = match (role, consumer) {
            (Role::Consumer | Role::All, None) => consumers,
            (Role::Consumer | Role::All, Some(name)) => {
                let known: Vec<&str> = consumers.iter().map(|c| c.name()).collect();
                let chosen: Vec<_> = consumers.into_iter().filter(|c| c.name() == name).collect();
                if chosen.is_empty() {
                    return Err(format!("STRATA_CONSUMER={name} is not one of {known:?}").into());
                }
                chosen
            }
            _ => Vec::new(),
        };
        if role == Role::Projector && projectors.is_empty() {
            return Err("STRATA_ROLE=projector, and the service has no read model".into());
        }
        if role == Role::Consumer && consumers.is_empty() {
            return Err("STRATA_ROLE=consumer, and the service has no consumer".into());
        }
        Ok(Self { commands, queries, projectors, consumers, relay: None })
    }

    /// Also relays the table's stream batches (the `publisher` role; `all` when `STRATA_EVENT_BUS`
    /// is set).
    pub fn with_relay(mut self, relay: StreamRelay<aws_sdk_eventbridge::Client>) -> Self {
        self.relay = Some(relay);
        self
    }

    /// One invocation: an API Gateway HTTP (2.0) event or an SQS event in, its response out.
    pub async fn invoke(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let payload = &event.payload;
        if payload.get("requestContext").and_then(|c| c.get("http")).is_some() {
            if self.commands.is_none() && self.queries.is_none() {
                return Err("this function serves no HTTP API (STRATA_ROLE)".into());
            }
            return Ok(crate::http::invoke(&|request| self.http(request), event).await);
        }
        let source = |wanted: &str| {
            payload.get("Records").and_then(Value::as_array).is_some_and(|records| {
                records.iter().all(|r| r.get("eventSource").and_then(Value::as_str) == Some(wanted))
            })
        };
        // A batch is never empty as Lambda delivers it; an empty one is answered as a queue's.
        if source("aws:dynamodb") && !source("aws:sqs") {
            let Some(relay) = &self.relay else {
                return Err("this function serves no table stream (STRATA_ROLE)".into());
            };
            let batch: DynamoDbEvent = serde_json::from_value(event.payload)?;
            return Ok(serde_json::to_value(relay.handle(batch).await?)?);
        }
        let sqs = source("aws:sqs");
        if sqs {
            if self.projectors.is_empty() && self.consumers.is_empty() {
                return Err("this function serves no queue (STRATA_ROLE)".into());
            }
            let batch: SqsEvent = serde_json::from_value(event.payload)?;
            return Ok(serde_json::to_value(self.sqs(batch).await?)?);
        }
        Err("not an API Gateway HTTP (2.0) event, an SQS event nor a DynamoDB stream event".into())
    }

    async fn http(&self, request: Request) -> Response<Body> {
        let command = request.method() == lambda_http::http::Method::POST;
        match (&self.commands, &self.queries) {
            (Some(commands), Some(_)) if command => commands.handle(request).await,
            (Some(commands), None) => commands.handle(request).await,
            (_, Some(queries)) => queries.handle(request).await,
            (None, None) => {
                crate::problem::Problem::new(crate::ProblemKind::NotFound, "no API here").into_response()
            }
        }
    }

    /// Every projection, then every consumer, over the batch: a message any of them failed is
    /// reported once (each keeps its own records, so the retry repeats nothing that succeeded).
    async fn sqs(&self, batch: SqsEvent) -> Result<SqsBatchResponse, strata_core::Error> {
        let mut failed = BTreeSet::new();
        if !self.projectors.is_empty() {
            let projectors: Vec<&dyn AnyProjector> = self.projectors.iter().map(AsRef::as_ref).collect();
            let (response, _) = strata_eventbridge::project_batch_each(&projectors, batch.clone()).await?;
            failed.extend(response.batch_item_failures.into_iter().map(|f| f.item_identifier));
        }
        for consumer in &self.consumers {
            let (response, _) = consumer.handle_batch(batch.clone()).await?;
            failed.extend(response.batch_item_failures.into_iter().map(|f| f.item_identifier));
        }
        strata_eventbridge::batch_response(failed.into_iter().map(Some))
    }
}
