//! The command API: `POST /{category}/{id}/commands/{name}` with a JSON body, for every aggregate
//! a service registers.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use std::collections::BTreeMap;

use serde_json::{Map, Value};
use strata_core::crypto::BoxFuture;
use strata_core::{
    Aggregate, CommandContext, CommandError, CommandOutcome, EventStore, IdempotencyStore, Rejection,
    Repository, SnapshotStore, StreamId, without_values,
};

use crate::RegistryError;
use crate::authorize::{Action, Guard, Target};
use crate::http::{
    CORRELATION_ID, Tenancy, bounded_header, correlation_id, idempotency_key, if_match, json, json_body,
    no_route, segments, with_etag, with_header, wrong_method,
};
use crate::problem::{Problem, ProblemKind};

/// Runs the commands of a service's aggregates over HTTP, routed by the path's category.
///
/// | answer | when |
/// |---|---|
/// | 200 `{stream, version, event_ids}` + `ETag` | done (or the first result again, for a repeated `Idempotency-Key`) |
/// | 400 | malformed JSON, a field of the wrong type, a bad id, `If-Match` or `Idempotency-Key`, or the domain says the input is invalid |
/// | 404 | unknown route, aggregate or command |
/// | 409 | the stream is not at `If-Match` (after automatic retries for commands that allow them when there is no `If-Match`) |
/// | 422 | the domain refused the command (`code` names the rule), or an `Idempotency-Key` reused for another request |
///
/// ```
/// # fn main() -> Result<(), strata_lambda::RegistryError> {
/// use strata_core::fixture::tally::Tally;
/// use strata_core::{InMemoryStore, Repository};
/// use strata_lambda::{CommandApi, Tenancy};
///
/// let store = InMemoryStore::new();
/// let api = CommandApi::new(Tenancy::Fixed("acme".into()))
///     .with_aggregate(Repository::<Tally, _>::new(store))?;
/// assert_eq!(api.categories().collect::<Vec<_>>(), ["tally"]);
/// # Ok(()) }
/// ```
pub struct CommandApi {
    handlers: BTreeMap<&'static str, Box<dyn CommandHandler>>,
    tenancy: Tenancy,
    guard: Guard,
}

/// An aggregate's commands by name, with JSON fields: what [`CommandApi`] routes to. Every
/// [`Repository`] (configured with its cipher, snapshots and retries) is one.
pub trait CommandHandler: Send + Sync {
    /// The stream category it serves ([`Aggregate::CATEGORY`]).
    fn category(&self) -> &'static str;

    /// Runs the command `name` with `body` as its fields on `stream`: 404 for an unknown command,
    /// 400 for fields that do not fit, 422 for a rejection, and the store's errors as problems.
    fn execute_json<'a>(
        &'a self,
        stream: &'a StreamId,
        name: &'a str,
        body: Value,
        context: CommandContext,
    ) -> BoxFuture<'a, Result<CommandOutcome, Problem>>;
}

impl<A, S> CommandHandler for Repository<A, S>
where
    A: Aggregate,
    A::Error: Rejection,
    S: EventStore + SnapshotStore + IdempotencyStore,
{
    fn category(&self) -> &'static str {
        A::CATEGORY
    }

    fn execute_json<'a>(
        &'a self,
        stream: &'a StreamId,
        name: &'a str,
        body: Value,
        context: CommandContext,
    ) -> BoxFuture<'a, Result<CommandOutcome, Problem>> {
        Box::pin(async move {
            let command = parse_command::<A>(name, body)?;
            match self.execute(stream, &command, context).await {
                Ok(outcome) => Ok(outcome),
                Err(CommandError::Rejected(rejection)) => Err(Problem::rejected(&rejection)),
                Err(CommandError::Failed(error)) => Err(Problem::from(&error)),
            }
        })
    }
}

impl CommandApi {
    /// An API without aggregates yet (every route answers 404).
    pub fn new(tenancy: Tenancy) -> Self {
        Self { handlers: BTreeMap::new(), tenancy, guard: Guard::default() }
    }

    /// Checks every command against `guard` (scopes, the team's [`crate::Authorizer`]) once its
    /// stream is known, before its body is read: 403 when refused.
    pub fn with_guard(mut self, guard: Guard) -> Self {
        self.guard = guard;
        self
    }

    /// Serves `POST /{category}/{id}/commands/{name}` for the handler's category. Refused when the
    /// category is served already.
    pub fn with_aggregate(self, handler: impl CommandHandler + 'static) -> Result<Self, RegistryError> {
        self.insert(Box::new(handler))
    }

    pub(crate) fn insert(mut self, handler: Box<dyn CommandHandler>) -> Result<Self, RegistryError> {
        let category = handler.category();
        if self.handlers.insert(category, handler).is_some() {
            return Err(RegistryError::Duplicate { what: "aggregate", name: category.to_owned() });
        }
        Ok(self)
    }

    /// The categories served, in order.
    pub fn categories(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.handlers.keys().copied()
    }

    /// Answers one request; never fails (errors are problem responses).
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let correlation = correlation_id(&request);
        // Boxed: the repository's futures nest deeply enough to exceed the compiler's layout depth
        // when the whole Lambda runtime future is one type.
        let response = match Box::pin(self.run(&request, &correlation)).await {
            Ok(response) => response,
            Err(problem) => problem.into_response(),
        };
        with_header(response, CORRELATION_ID, &correlation)
    }

    async fn run(&self, request: &Request, correlation: &str) -> Result<Response<Body>, Problem> {
        let segments = segments(request).ok_or_else(no_route)?;
        let [category, id, commands, name] = segments.as_slice() else { return Err(no_route()) };
        if commands != "commands" {
            return Err(no_route());
        }
        let handler = self.handlers.get(category.as_str()).ok_or_else(no_route)?;
        if request.method() != Method::POST {
            return Err(wrong_method(&Method::POST));
        }
        let tenant = self.tenancy.tenant(request)?;
        let stream = StreamId::new(tenant, category.as_str(), id.as_str())
            .map_err(|e| Problem::new(ProblemKind::BadRequest, e.to_string()))?;
        self.guard.check(request, Action::Command(name), Target::Stream(&stream))?;
        let body = json_body(request)?;
        let context = CommandContext {
            correlation_id: Some(correlation.to_owned()),
            causation_id: bounded_header(request, "x-causation-id"),
            actor: crate::http::actor(request),
            trace_id: bounded_header(request, "x-amzn-trace-id"),
            idempotency_key: idempotency_key(request)?,
            expected_version: if_match(request)?,
            ..CommandContext::default()
        };
        let outcome = handler.execute_json(&stream, name, body, context).await?;
        Ok(with_etag(json(StatusCode::OK, &outcome), outcome.version))
    }
}

/// The command `name` with `body` as its fields: 404 for an unknown or internal name
/// ([`strata_core::Command::INTERNAL`]), 400 for fields that do not fit (without quoting values: they may be personal data).
pub fn parse_command<A: Aggregate>(name: &str, body: Value) -> Result<A::Command, Problem> {
    if <A::Command as strata_core::Command>::INTERNAL.contains(&name) {
        return Err(Problem::new(ProblemKind::NotFound, format!("{} has no command {name:?}", A::CATEGORY)));
    }
    if !body.is_object() {
        return Err(Problem::new(
            ProblemKind::BadRequest,
            "the body must be a JSON object of the command's fields",
        ));
    }
    let mut tagged = Map::with_capacity(1);
    tagged.insert(name.to_owned(), body);
    let command = serde_json::from_value::<A::Command>(Value::Object(tagged)).map_err(|error| {
        // serde's fixed wording for an unknown enum tag: the only way to tell it from a bad field.
        if error.to_string().starts_with(&format!("unknown variant `{name}`")) {
            Problem::new(ProblemKind::NotFound, format!("{} has no command {name:?}", A::CATEGORY))
        } else {
            Problem::new(
                ProblemKind::BadRequest,
                format!("the fields of {name} do not fit: {}", field_error(&error)),
            )
        }
    })?;
    // Also by the name the command gives itself (a serde alias reaches an internal variant too).
    if <A::Command as strata_core::Command>::INTERNAL.contains(&strata_core::Command::command_name(&command))
    {
        return Err(Problem::new(ProblemKind::NotFound, format!("{} has no command {name:?}", A::CATEGORY)));
    }
    Ok(command)
}

/// serde's message when it names only fields (missing, unknown, duplicate), else one without values.
fn field_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    if ["missing field", "unknown field", "duplicate field"].iter().any(|p| message.starts_with(p)) {
        message
    } else {
        without_values(error).to_string()
    }
}
