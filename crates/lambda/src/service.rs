//! A service's parts, listed once: its aggregates and read models. Each function builds what it
//! serves from the same list (the command API, the query API, the projectors), so a new aggregate or
//! read model is one line in one place.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use strata_core::crypto::BoxFuture;
use strata_core::projection::{AnyProjector, Projection, Projector, ViewStore};
use strata_core::{
    Aggregate, CachePolicy, EventStore, FieldCipher, IdempotencyStore, Rejection, Repository, SnapshotPolicy,
    SnapshotStore, SubjectAudit, UpcasterChain,
};

use crate::authorize::{AllowAll, Authorizer, Guard, Scopes};
use crate::command_api::CommandHandler;
use crate::env::{self, ConfigError};
use crate::query_api::StateReader;
use crate::{CommandApi, QueryApi, Tenancy};

/// Why a service's parts do not fit together. A configuration error: found when a function starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Two aggregates of one category, or two projections of one name.
    #[error("{what} {name:?} is registered twice")]
    Duplicate {
        /// `aggregate` or `projection`.
        what: &'static str,
        /// The category or name.
        name: String,
    },
    /// An aggregate category that is a route of the query API (`views`, `admin`).
    #[error("{name:?} names a route of the query API; choose another category")]
    Reserved {
        /// The category.
        name: String,
    },
    /// The admin routes (export, forget) need the service's field cipher.
    #[error("the admin routes need a service with a field cipher (Service::with_cipher)")]
    AdminWithoutCipher,
    /// A read model over several aggregates whose events share a type name: which aggregate's
    /// event it is could not be told.
    #[error(
        "the read model {projection:?} reads events of the same name from two aggregates ({types:?}): name them apart"
    )]
    AmbiguousEvents {
        /// The read model.
        projection: &'static str,
        /// The type names both sides use.
        types: Vec<&'static str>,
    },
}

/// What a function reads from its environment to build its part of a service: the command side's
/// snapshots and stream cache, and whether the query API serves the admin routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The command repositories' snapshot policy; a query function loads from those snapshots when
    /// it takes any.
    pub snapshots: SnapshotPolicy,
    /// The command repositories' stream cache.
    pub stream_cache: CachePolicy,
    /// Serve the admin routes (subject export and forget).
    pub admin: bool,
    /// The scope each kind of route needs (JWT auth), checked by the APIs; `None` checks none.
    pub scopes: Option<Scopes>,
}

impl Default for Settings {
    /// A snapshot every 100 events, pruned by the command that takes it; 1,000 cached streams; no
    /// admin routes.
    fn default() -> Self {
        Self {
            snapshots: SnapshotPolicy::every(100),
            stream_cache: CachePolicy::entries(1_000),
            admin: false,
            scopes: None,
        }
    }
}

impl Settings {
    /// From the environment, each variable optional (the defaults above):
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `STRATA_SNAPSHOT_EVERY` | events between snapshots; 0 takes none |
    /// | `STRATA_SNAPSHOT_PRUNING` | `command` (the command that takes a snapshot prunes older ones) or `publisher` (the stream publisher does, off the command path, as the CDK construct deploys it) |
    /// | `STRATA_STREAM_CACHE_ENTRIES` | streams a warm instance keeps; 0 turns the cache off |
    /// | `STRATA_ADMIN` | `true` serves the admin routes |
    /// | `STRATA_SCOPE_READ`, `STRATA_SCOPE_WRITE`, `STRATA_SCOPE_ADMIN` | the scope each kind of route needs (all three or none; [`Scopes`]) |
    pub fn from_env() -> Result<Self, ConfigError> {
        let every = env::parsed_or("STRATA_SNAPSHOT_EVERY", 100u64)?;
        let snapshots = match env::optional("STRATA_SNAPSHOT_PRUNING")?.as_deref() {
            None | Some("command") => SnapshotPolicy::every(every),
            Some("publisher") => SnapshotPolicy::every(every).pruned_elsewhere(),
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "STRATA_SNAPSHOT_PRUNING",
                    reason: format!("`command` or `publisher`, not `{other}`"),
                });
            }
        };
        let cached = env::parsed_or("STRATA_STREAM_CACHE_ENTRIES", 1_000usize)?;
        let admin = env::parsed_or("STRATA_ADMIN", false)?;
        Ok(Self { snapshots, stream_cache: CachePolicy::entries(cached), admin, scopes: Scopes::from_env()? })
    }
}

/// A service's aggregates and read models over one store, with the cipher and upcasters they share.
/// List them once (a function in the team's domain crate, say) and build each function's part:
///
/// ```
/// # fn main() -> Result<(), strata_lambda::RegistryError> {
/// use strata_core::{FieldCipher, InMemoryStore};
/// use strata_lambda::service::Store;
/// use strata_lambda::{Service, Settings, Tenancy};
/// use strata_orders::{Order, OrderSummaries, upcasters};
///
/// // In the team's domain crate: every part, once.
/// fn service<S: Store>(store: S) -> Service<S> {
///     Service::new(store).with_upcasters(upcasters()).aggregate::<Order>().projection(OrderSummaries)
/// }
///
/// // In each function: its part, over the deployed store and cipher.
/// let service = service(InMemoryStore::new()).with_cipher(FieldCipher::local());
/// let tenancy = Tenancy::Fixed("acme".into());
/// let commands = service.command_api(tenancy.clone(), &Settings::default())?;
/// let queries = service.query_api(tenancy, &Settings::default())?;
/// let projectors = service.projectors()?;
/// assert_eq!(commands.categories().collect::<Vec<_>>(), ["order"]);
/// assert_eq!(queries.projections().collect::<Vec<_>>(), ["order-summary"]);
/// assert_eq!(projectors.len(), 1);
/// # Ok(()) }
/// ```
pub struct Service<S> {
    authorizer: Arc<dyn Authorizer>,
    store: S,
    cipher: Option<FieldCipher>,
    upcasters: UpcasterChain,
    aggregates: Vec<Box<dyn AggregatePart<S>>>,
    projections: Vec<Box<dyn ProjectionPart<S>>>,
}

/// What a service's store must be: the event, snapshot, idempotency and view stores and the
/// subject audit trail in one (the `DynamoStore`, or `InMemoryStore` in tests), cheap to clone.
pub trait Store:
    EventStore + SnapshotStore + IdempotencyStore + ViewStore + SubjectAudit + Clone + 'static
{
}

impl<S: EventStore + SnapshotStore + IdempotencyStore + ViewStore + SubjectAudit + Clone + 'static> Store
    for S
{
}

impl<S: Store> Service<S> {
    /// A service over `store`, without parts yet.
    pub fn new(store: S) -> Self {
        Self {
            authorizer: Arc::new(AllowAll),
            store,
            cipher: None,
            upcasters: UpcasterChain::empty(),
            aggregates: Vec::new(),
            projections: Vec::new(),
        }
    }

    /// Checks every request of its command and query APIs with `authorizer` (object-level rules,
    /// [`Authorizer`]), past the tenant and the scopes: 403 when it refuses. Default: [`AllowAll`].
    pub fn with_authorizer(mut self, authorizer: impl Authorizer) -> Self {
        self.authorizer = Arc::new(authorizer);
        self
    }

    fn guard(&self, settings: &Settings) -> Guard {
        Guard::new(settings.scopes.clone(), Arc::clone(&self.authorizer))
    }

    /// Seals and opens personal fields with this cipher (every aggregate and read model).
    pub fn with_cipher(mut self, cipher: FieldCipher) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// Upcasts stored events with this chain (one chain for the service: upcasters are keyed by
    /// event type).
    pub fn with_upcasters(mut self, upcasters: UpcasterChain) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// Adds an aggregate: its commands in the command API, its state and events in the query API.
    /// Its command and event types derive `utoipa::ToSchema` (the OpenAPI document's request bodies, the
    /// event contracts of [`Service::event_document`]).
    pub fn aggregate<A>(self) -> Self
    where
        A: Aggregate + Serialize,
        A::Error: Rejection,
        A::Command: utoipa::ToSchema,
        A::Event: utoipa::ToSchema,
    {
        self.aggregate_with::<A>(|repository| repository)
    }

    /// Adds an aggregate whose command repository is configured further by `configure` (after the
    /// function's [`Settings`]): its own snapshot interval, retry policy or idempotency TTL. The query
    /// API reads from its snapshots when the configured policy takes any; nothing else of
    /// `configure` reaches the query API's repository (give the service its cipher and upcasters,
    /// not a repository).
    pub fn aggregate_with<A>(
        mut self,
        configure: impl Fn(Repository<A, S>) -> Repository<A, S> + Send + Sync + 'static,
    ) -> Self
    where
        A: Aggregate + Serialize,
        A::Error: Rejection,
        A::Command: utoipa::ToSchema,
        A::Event: utoipa::ToSchema,
    {
        self.aggregates.push(Box::new(AggregateEntry { configure, aggregate: PhantomData }));
        self
    }

    /// Adds a read model: applied by the projector function, served by the query API.
    pub fn projection<P: Projection + Clone>(mut self, projection: P) -> Self {
        self.projections.push(Box::new(projection));
        self
    }

    /// The aggregate categories, in the order added.
    pub fn categories(&self) -> Vec<&'static str> {
        self.aggregates.iter().map(|a| a.category()).collect()
    }

    /// The projections' names, in the order added.
    pub fn projection_names(&self) -> Vec<&'static str> {
        self.projections.iter().map(|p| p.name()).collect()
    }

    /// The command API of every aggregate, with `settings`' snapshots and stream cache.
    pub fn command_api(&self, tenancy: Tenancy, settings: &Settings) -> Result<CommandApi, RegistryError> {
        // Refused here too, so that every function of the service fails its start alike.
        if let Some(name) = self.categories().into_iter().find(|c| crate::query_api::RESERVED.contains(c)) {
            return Err(RegistryError::Reserved { name: name.to_owned() });
        }
        let parts = self.parts();
        let api = CommandApi::new(tenancy).with_guard(self.guard(settings));
        self.aggregates
            .iter()
            .try_fold(api, |api, aggregate| api.insert(aggregate.commands(&parts, settings)))
    }

    /// The query API of every aggregate and read model (and the admin routes when `settings` says
    /// so). Its repositories take no snapshots: they load from the command side's
    /// ([`SnapshotPolicy::read_only`]) when it takes any, else read forward.
    pub fn query_api(&self, tenancy: Tenancy, settings: &Settings) -> Result<QueryApi, RegistryError> {
        let parts = self.parts();
        let mut api = QueryApi::new(tenancy).with_guard(self.guard(settings));
        for aggregate in &self.aggregates {
            api = api.insert_reader(aggregate.reader(&parts, settings))?;
        }
        for projection in &self.projections {
            check_events(projection.as_ref())?;
            api = api.insert_projector(projection.projector(&parts))?;
        }
        if settings.admin {
            let cipher = self.cipher.clone().ok_or(RegistryError::AdminWithoutCipher)?;
            api = api.with_admin(self.store.clone(), cipher);
        }
        Ok(api)
    }

    /// A projector per read model, for the projector function
    /// (`strata_eventbridge::project_batch_each`). Refused when two share a name (they would share
    /// views).
    pub fn projectors(&self) -> Result<Vec<Box<dyn AnyProjector>>, RegistryError> {
        let parts = self.parts();
        let mut projectors: Vec<Box<dyn AnyProjector>> = Vec::with_capacity(self.projections.len());
        for projection in &self.projections {
            check_events(projection.as_ref())?;
            let projector = projection.projector(&parts);
            if projectors.iter().any(|p| p.name() == projector.name()) {
                return Err(RegistryError::Duplicate {
                    what: "projection",
                    name: projector.name().to_owned(),
                });
            }
            projectors.push(projector);
        }
        Ok(projectors)
    }

    /// The command API's OpenAPI document: every command of every aggregate.
    pub fn command_document(&self, title: &str, version: &str) -> serde_json::Value {
        crate::openapi::command_document(title, version, self.aggregates.iter().map(|a| a.command_paths()))
    }

    /// The JSON Schemas (draft-04) of every published event's `detail`, by detail-type: the
    /// envelope around each event type's payload, personal fields sealed (see [`crate::contracts`]).
    pub fn event_document(&self, title: &str) -> Result<serde_json::Value, crate::contracts::ContractError> {
        crate::contracts::event_document(title, self.aggregates.iter().map(|a| a.event_payloads()))
    }

    /// The query API's OpenAPI document: every aggregate's state and events, every read model's
    /// views, and the admin routes when `admin`.
    pub fn query_document(&self, title: &str, version: &str, admin: bool) -> serde_json::Value {
        let projections: Vec<(&str, Vec<&str>)> =
            self.projections.iter().map(|p| (p.name(), p.categories())).collect();
        crate::openapi::query_document(title, version, &self.categories(), &projections, admin)
    }

    /// The projector of the read model `name`, if registered (for operators: a rebuild); refused
    /// like the projector function's when its events cannot be told apart.
    pub fn projector(&self, name: &str) -> Result<Option<Box<dyn AnyProjector>>, RegistryError> {
        let parts = self.parts();
        let Some(projection) = self.projections.iter().find(|p| p.name() == name) else { return Ok(None) };
        check_events(projection.as_ref())?;
        Ok(Some(projection.projector(&parts)))
    }

    /// Takes a snapshot of `stream` now (its aggregate found by category, with the service's cipher
    /// and upcasters), pruned to `settings`' keep count; `None` when no aggregate has its category.
    pub async fn take_snapshot(
        &self,
        stream: &strata_core::StreamId,
        settings: &Settings,
    ) -> Option<Result<u64, strata_core::Error>> {
        let parts = self.parts();
        let aggregate = self.aggregates.iter().find(|a| a.category() == stream.category())?;
        Some(aggregate.take_snapshot(&parts, settings, stream).await)
    }

    fn parts(&self) -> Parts<'_, S> {
        Parts { store: &self.store, cipher: self.cipher.as_ref(), upcasters: &self.upcasters }
    }
}

impl<S> std::fmt::Debug for Service<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("aggregates", &self.aggregates.iter().map(|a| a.category()).collect::<Vec<_>>())
            .field("projections", &self.projections.iter().map(|p| p.name()).collect::<Vec<_>>())
            .field("cipher", &self.cipher.is_some())
            .finish_non_exhaustive()
    }
}

/// What every part is built with.
struct Parts<'a, S> {
    store: &'a S,
    cipher: Option<&'a FieldCipher>,
    upcasters: &'a UpcasterChain,
}

impl<S: Store> Parts<'_, S> {
    fn repository<A: Aggregate>(&self) -> Repository<A, S> {
        let repository = Repository::new(self.store.clone()).with_upcasters(self.upcasters.clone());
        match self.cipher {
            Some(cipher) => repository.with_cipher(cipher.clone()),
            None => repository,
        }
    }
}

trait AggregatePart<S>: Send + Sync {
    fn category(&self) -> &'static str;
    fn command_paths(&self) -> crate::openapi::CommandPaths;
    fn event_payloads(&self) -> crate::contracts::EventPayloads;
    fn commands(&self, parts: &Parts<'_, S>, settings: &Settings) -> Box<dyn CommandHandler>;
    fn reader(&self, parts: &Parts<'_, S>, settings: &Settings) -> Box<dyn StateReader>;
    fn take_snapshot<'a>(
        &'a self,
        parts: &'a Parts<'a, S>,
        settings: &'a Settings,
        stream: &'a strata_core::StreamId,
    ) -> BoxFuture<'a, Result<u64, strata_core::Error>>;
}

struct AggregateEntry<A, F> {
    configure: F,
    aggregate: PhantomData<fn() -> A>,
}

impl<A, F> AggregateEntry<A, F> {
    fn command_repository<S: Store>(&self, parts: &Parts<'_, S>, settings: &Settings) -> Repository<A, S>
    where
        A: Aggregate,
        F: Fn(Repository<A, S>) -> Repository<A, S>,
    {
        (self.configure)(
            parts
                .repository::<A>()
                .with_snapshot_policy(settings.snapshots)
                .with_stream_cache(settings.stream_cache),
        )
    }
}

impl<A, S, F> AggregatePart<S> for AggregateEntry<A, F>
where
    A: Aggregate + Serialize,
    A::Error: Rejection,
    A::Command: utoipa::ToSchema,
    A::Event: utoipa::ToSchema,
    S: Store,
    F: Fn(Repository<A, S>) -> Repository<A, S> + Send + Sync,
{
    fn category(&self) -> &'static str {
        A::CATEGORY
    }

    fn command_paths(&self) -> crate::openapi::CommandPaths {
        crate::openapi::command_paths::<A>()
    }

    fn event_payloads(&self) -> crate::contracts::EventPayloads {
        crate::contracts::event_payloads::<A>()
    }

    fn commands(&self, parts: &Parts<'_, S>, settings: &Settings) -> Box<dyn CommandHandler> {
        Box::new(self.command_repository(parts, settings))
    }

    fn reader(&self, parts: &Parts<'_, S>, settings: &Settings) -> Box<dyn StateReader> {
        // The command side's policy after `configure`: loads start from its snapshots if it takes any.
        let writes = self.command_repository(parts, settings).snapshot_policy();
        let policy = if writes.is_enabled() { SnapshotPolicy::read_only() } else { SnapshotPolicy::never() };
        Box::new(parts.repository::<A>().with_snapshot_policy(policy))
    }

    fn take_snapshot<'a>(
        &'a self,
        parts: &'a Parts<'a, S>,
        settings: &'a Settings,
        stream: &'a strata_core::StreamId,
    ) -> BoxFuture<'a, Result<u64, strata_core::Error>> {
        Box::pin(async move { self.command_repository(parts, settings).take_snapshot(stream).await })
    }
}

/// Refuses a read model whose events cannot be told apart by type name.
fn check_events<S>(projection: &dyn ProjectionPart<S>) -> Result<(), RegistryError> {
    let types = projection.ambiguous_types();
    if types.is_empty() {
        Ok(())
    } else {
        Err(RegistryError::AmbiguousEvents { projection: projection.name(), types })
    }
}

trait ProjectionPart<S>: Send + Sync {
    fn name(&self) -> &'static str;
    fn categories(&self) -> Vec<&'static str>;
    fn ambiguous_types(&self) -> Vec<&'static str>;
    fn projector(&self, parts: &Parts<'_, S>) -> Box<dyn AnyProjector>;
}

impl<P: Projection + Clone, S: Store> ProjectionPart<S> for P {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn categories(&self) -> Vec<&'static str> {
        std::iter::once(P::CATEGORY).chain(P::OTHER_CATEGORIES.iter().copied()).collect()
    }

    fn ambiguous_types(&self) -> Vec<&'static str> {
        <P::Event as strata_core::Event>::ambiguous_types()
    }

    fn projector(&self, parts: &Parts<'_, S>) -> Box<dyn AnyProjector> {
        let projector =
            Projector::new(self.clone(), parts.store.clone()).with_upcasters(parts.upcasters.clone());
        match parts.cipher {
            Some(cipher) => Box::new(projector.with_cipher(cipher.clone())),
            None => Box::new(projector),
        }
    }
}
