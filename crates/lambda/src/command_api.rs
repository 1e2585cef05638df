//! The command API: `POST /{category}/{id}/commands/{name}` with a JSON body.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value};
use strata_core::{
    Aggregate, CommandContext, CommandError, EventStore, IdempotencyStore, Rejection, Repository,
    SnapshotStore, StreamId, without_values,
};

use crate::http::{
    CORRELATION_ID, Tenancy, bounded_header, correlation_id, idempotency_key, if_match, json, json_body,
    jwt_claim, no_route, segments, with_etag, with_header, wrong_method,
};
use crate::problem::{Problem, ProblemKind};

/// Runs commands of one aggregate over HTTP.
///
/// | answer | when |
/// |---|---|
/// | 200 `{stream, version, event_ids}` + `ETag` | done (or the first result again, for a repeated `Idempotency-Key`) |
/// | 400 | malformed JSON, a field of the wrong type, a bad id, `If-Match` or `Idempotency-Key`, or the domain says the input is invalid |
/// | 404 | unknown route, aggregate or command |
/// | 409 | the stream is not at `If-Match` (after automatic retries for commands that allow them when there is no `If-Match`) |
/// | 422 | the domain refused the command (`code` names the rule), or an `Idempotency-Key` reused for another request |
pub struct CommandApi<A: Aggregate, S> {
    repository: Repository<A, S>,
    tenancy: Tenancy,
}

impl<A, S> CommandApi<A, S>
where
    A: Aggregate,
    A::Error: Rejection,
    S: EventStore + SnapshotStore + IdempotencyStore,
{
    /// The API over a repository (configured with its cipher, snapshots and retries).
    pub fn new(repository: Repository<A, S>, tenancy: Tenancy) -> Self {
        Self { repository, tenancy }
    }

    /// The repository.
    pub fn repository(&self) -> &Repository<A, S> {
        &self.repository
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
        if commands != "commands" || category != A::CATEGORY {
            return Err(no_route());
        }
        if request.method() != Method::POST {
            return Err(wrong_method(&Method::POST));
        }
        let tenant = self.tenancy.tenant(request)?;
        let stream = StreamId::new(tenant, category.as_str(), id.as_str())
            .map_err(|e| Problem::new(ProblemKind::BadRequest, e.to_string()))?;
        let command = parse_command::<A>(name, json_body(request)?)?;
        let context = CommandContext {
            correlation_id: Some(correlation.to_owned()),
            causation_id: bounded_header(request, "x-causation-id"),
            actor: jwt_claim(request, "sub"),
            trace_id: bounded_header(request, "x-amzn-trace-id"),
            idempotency_key: idempotency_key(request)?,
            expected_version: if_match(request)?,
            ..CommandContext::default()
        };
        match self.repository.execute(&stream, &command, context).await {
            Ok(outcome) => Ok(with_etag(json(StatusCode::OK, &outcome), outcome.version)),
            Err(CommandError::Rejected(rejection)) => Err(Problem::rejected(&rejection)),
            Err(CommandError::Failed(error)) => Err(Problem::from(&error)),
        }
    }
}

/// The command `name` with `body` as its fields: 404 for an unknown name, 400 for fields that do not
/// fit (without quoting values: they may be personal data).
pub fn parse_command<A: Aggregate>(name: &str, body: Value) -> Result<A::Command, Problem> {
    if !body.is_object() {
        return Err(Problem::new(
            ProblemKind::BadRequest,
            "the body must be a JSON object of the command's fields",
        ));
    }
    let mut tagged = Map::with_capacity(1);
    tagged.insert(name.to_owned(), body);
    serde_json::from_value::<A::Command>(Value::Object(tagged)).map_err(|error| {
        // serde's fixed wording for an unknown enum tag: the only way to tell it from a bad field.
        if error.to_string().starts_with(&format!("unknown variant `{name}`")) {
            Problem::new(ProblemKind::NotFound, format!("{} has no command {name:?}", A::CATEGORY))
        } else {
            Problem::new(
                ProblemKind::BadRequest,
                format!("the fields of {name} do not fit: {}", field_error(&error)),
            )
        }
    })
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
