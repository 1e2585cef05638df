//! The query API: aggregate state (now, at a version, at a time), a stream's events (paged), read
//! models, and subject export / erasure for administrators, for every aggregate and read model a
//! service registers.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use strata_core::crypto::BoxFuture;
use strata_core::projection::AnyProjector;
use strata_core::{
    AccessOutcome, Aggregate, Error, EventEnvelope, EventPage, EventStore, ExportCursor, ExportPage,
    FieldCipher, Repository, SnapshotStore, StreamId, SubjectAccess, SubjectAction, SubjectAudit,
    validate_key_part,
};

use crate::RegistryError;
use crate::authorize::{Action, Guard, Target};
use crate::http::{
    CORRELATION_ID, Tenancy, correlation_id, json, limit, no_route, query, segments, with_etag, with_header,
    wrong_method,
};
use crate::problem::{Problem, ProblemKind};

/// Events per page when `limit` is not given, and at most.
const EVENTS_PAGE: (usize, usize) = (100, 1000);
/// Bytes of events per page, under Lambda's 6 MB response limit with room for the envelope.
const RESPONSE_BUDGET: usize = 4 * 1024 * 1024;
/// An export page's entries as JSON, at most (then the next page): the body is a JSON string inside
/// Lambda's response, where escaping can double it, and the response may not pass 6 MB.
const EXPORT_BUDGET: usize = 2_500_000;
/// Views per page when `limit` is not given, and at most.
const VIEWS_PAGE: (usize, usize) = (50, 200);

/// Answers queries about a service's aggregates and read models.
///
/// | route | answer |
/// |---|---|
/// | `GET /{category}/{id}` | `{stream, version, state}` + `ETag`; `?version=n` or `?at=RFC3339` for the past |
/// | `GET /{category}/{id}/events?cursor=&limit=` | `{events, next_cursor}` (opaque cursor) |
/// | `GET /views/{projection}/{id}` | `{stream, version, view}` |
/// | `GET /views/{projection}?lookup=&cursor=&limit=` | `{items: [{stream, view}], next_cursor}` |
/// | `GET /admin/subjects/{subject}/export` | every decrypted personal field of the subject |
/// | `DELETE /admin/subjects/{subject}` | forgets the subject (204): its fields read as redacted |
///
/// The admin routes answer only when enabled ([`QueryApi::with_admin`]); deploy them behind their own
/// authorization. `views` and `admin` are route names, never aggregate categories.
///
/// ```
/// # fn main() -> Result<(), strata_lambda::RegistryError> {
/// use strata_core::fixture::tally::Tally;
/// use strata_core::{InMemoryStore, Repository, SnapshotPolicy};
/// use strata_lambda::{QueryApi, Tenancy};
///
/// let store = InMemoryStore::new();
/// let api = QueryApi::new(Tenancy::Fixed("acme".into()))
///     .with_aggregate(Repository::<Tally, _>::new(store).with_snapshot_policy(SnapshotPolicy::read_only()))?;
/// assert_eq!(api.categories().collect::<Vec<_>>(), ["tally"]);
/// # Ok(()) }
/// ```
pub struct QueryApi {
    states: BTreeMap<&'static str, Box<dyn StateReader>>,
    views: BTreeMap<&'static str, Box<dyn AnyProjector>>,
    admin: Option<Box<dyn SubjectAdmin>>,
    tenancy: Tenancy,
    guard: Guard,
}

/// Which state of a stream: now, right after a version, or at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The current state.
    Head,
    /// Right after this version (0: the initial state).
    Version(u64),
    /// As it was at this time.
    Time(DateTime<Utc>),
}

/// An aggregate's state as JSON and its events: what [`QueryApi`] serves per category. Every
/// [`Repository`] of an aggregate that serializes is one (give a query function's repositories
/// [`strata_core::SnapshotPolicy::read_only`], so loads start from the command side's snapshots).
pub trait StateReader: Send + Sync {
    /// The stream category it serves ([`Aggregate::CATEGORY`]).
    fn category(&self) -> &'static str;

    /// The state at `at` as JSON, with its version.
    fn state_json<'a>(&'a self, stream: &'a StreamId, at: At) -> BoxFuture<'a, Result<(u64, Value), Error>>;

    /// Up to `limit` events from `from_version` ([`Repository::read`]).
    fn events<'a>(
        &'a self,
        stream: &'a StreamId,
        from_version: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<EventPage, Error>>;
}

impl<A, S> StateReader for Repository<A, S>
where
    A: Aggregate + Serialize,
    S: EventStore + SnapshotStore,
{
    fn category(&self) -> &'static str {
        A::CATEGORY
    }

    fn state_json<'a>(&'a self, stream: &'a StreamId, at: At) -> BoxFuture<'a, Result<(u64, Value), Error>> {
        Box::pin(async move {
            let loaded = match at {
                At::Head => self.load(stream).await?,
                At::Version(version) => self.load_at_version(stream, version).await?,
                At::Time(time) => self.load_at_time(stream, time).await?,
            };
            let state = serde_json::to_value(&loaded.state).map_err(|error| Error::Serialize {
                what: "aggregate state",
                source: strata_core::without_values(&error),
            })?;
            Ok((loaded.version, state))
        })
    }

    fn events<'a>(
        &'a self,
        stream: &'a StreamId,
        from_version: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<EventPage, Error>> {
        Box::pin(self.read(stream, from_version, limit))
    }
}

/// Subject export and erasure over one store and cipher.
trait SubjectAdmin: Send + Sync {
    fn export<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        from: Option<&'a ExportCursor>,
    ) -> BoxFuture<'a, Result<ExportPage, Error>>;
    fn forget<'a>(&'a self, tenant: &'a str, subject: &'a str) -> BoxFuture<'a, Result<(), Error>>;
    fn record<'a>(&'a self, access: &'a SubjectAccess) -> BoxFuture<'a, Result<(), Error>>;
}

struct Subjects<S> {
    store: S,
    cipher: FieldCipher,
}

impl<S: EventStore + SubjectAudit> SubjectAdmin for Subjects<S> {
    fn record<'a>(&'a self, access: &'a SubjectAccess) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.store.record_access(access))
    }

    fn export<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        from: Option<&'a ExportCursor>,
    ) -> BoxFuture<'a, Result<ExportPage, Error>> {
        Box::pin(self.cipher.export_subject_page(&self.store, tenant, subject, from, EXPORT_BUDGET))
    }

    fn forget<'a>(&'a self, tenant: &'a str, subject: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.cipher.keys().forget(tenant, subject)
    }
}

/// A page of events.
#[derive(Debug, Serialize)]
pub struct EventsPage {
    /// Events in version order, upcast, personal fields opened.
    pub events: Vec<EventEnvelope>,
    /// Pass as `cursor` for the next page; absent at the end of the stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Path segments that name routes of their own: no aggregate category may take them.
pub(crate) const RESERVED: [&str; 2] = ["views", "admin"];

impl QueryApi {
    /// An API without aggregates or views yet (every route answers 404).
    pub fn new(tenancy: Tenancy) -> Self {
        Self {
            states: BTreeMap::new(),
            views: BTreeMap::new(),
            admin: None,
            tenancy,
            guard: Guard::default(),
        }
    }

    /// Checks every request against `guard` (scopes, the team's [`crate::Authorizer`]) once its
    /// target is known, before anything is read: 403 when refused.
    pub fn with_guard(mut self, guard: Guard) -> Self {
        self.guard = guard;
        self
    }

    /// Serves `GET /{category}/{id}` and `/{category}/{id}/events` for the reader's category.
    /// Refused when the category is served already or is `views` or `admin`.
    pub fn with_aggregate(self, reader: impl StateReader + 'static) -> Result<Self, RegistryError> {
        self.insert_reader(Box::new(reader))
    }

    pub(crate) fn insert_reader(mut self, reader: Box<dyn StateReader>) -> Result<Self, RegistryError> {
        let category = reader.category();
        if RESERVED.contains(&category) {
            return Err(RegistryError::Reserved { name: category.to_owned() });
        }
        if self.states.insert(category, reader).is_some() {
            return Err(RegistryError::Duplicate { what: "aggregate", name: category.to_owned() });
        }
        Ok(self)
    }

    /// Serves `GET /views/{name}/{id}` and `/views/{name}?lookup=` for the projector's projection.
    /// Refused when a projection of that name is served already.
    pub fn with_projection(self, projector: impl AnyProjector + 'static) -> Result<Self, RegistryError> {
        self.insert_projector(Box::new(projector))
    }

    pub(crate) fn insert_projector(
        mut self,
        projector: Box<dyn AnyProjector>,
    ) -> Result<Self, RegistryError> {
        let name = projector.name();
        if self.views.insert(name, projector).is_some() {
            return Err(RegistryError::Duplicate { what: "projection", name: name.to_owned() });
        }
        Ok(self)
    }

    /// Serves the admin routes (export, forget) over `store`'s events and `cipher`'s keys.
    pub fn with_admin<S: EventStore + SubjectAudit + 'static>(
        mut self,
        store: S,
        cipher: FieldCipher,
    ) -> Self {
        self.admin = Some(Box::new(Subjects { store, cipher }));
        self
    }

    /// The aggregate categories served, in order.
    pub fn categories(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.states.keys().copied()
    }

    /// The projections served, in order.
    pub fn projections(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.views.keys().copied()
    }

    /// Whether the admin routes are served.
    pub fn serves_admin(&self) -> bool {
        self.admin.is_some()
    }

    /// Answers one request; never fails (errors are problem responses).
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let correlation = correlation_id(&request);
        // Boxed: the repository's futures nest deeply enough to exceed the compiler's layout depth
        // when the whole Lambda runtime future is one type.
        let response = match Box::pin(self.run(&request)).await {
            Ok(response) => response,
            Err(problem) => problem.into_response(),
        };
        with_header(response, CORRELATION_ID, &correlation)
    }

    async fn run(&self, request: &Request) -> Result<Response<Body>, Problem> {
        let segments = segments(request).ok_or_else(no_route)?;
        let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = request.method();
        match parts.as_slice() {
            ["admin", "subjects", subject, "export"] => {
                let admin = self.admin.as_deref().ok_or_else(admin_elsewhere)?;
                only(method, &Method::GET)?;
                self.export(admin, request, subject).await
            }
            ["admin", "subjects", subject] => {
                let admin = self.admin.as_deref().ok_or_else(admin_elsewhere)?;
                only(method, &Method::DELETE)?;
                self.forget(admin, request, subject).await
            }
            ["views", projection, id] => {
                let projector = self.views.get(projection).ok_or_else(no_route)?;
                only(method, &Method::GET)?;
                self.view(projector.as_ref(), request, id).await
            }
            ["views", projection] => {
                let projector = self.views.get(projection).ok_or_else(no_route)?;
                only(method, &Method::GET)?;
                self.lookup(projector.as_ref(), request).await
            }
            [category, id] => {
                let reader = self.states.get(category).ok_or_else(no_route)?;
                only(method, &Method::GET)?;
                self.state(reader.as_ref(), request, id).await
            }
            [category, id, "events"] => {
                let reader = self.states.get(category).ok_or_else(no_route)?;
                only(method, &Method::GET)?;
                self.events(reader.as_ref(), request, id).await
            }
            _ => Err(no_route()),
        }
    }

    fn stream(&self, request: &Request, category: &str, id: &str) -> Result<StreamId, Problem> {
        StreamId::new(self.tenancy.tenant(request)?, category, id)
            .map_err(|e| Problem::new(ProblemKind::BadRequest, e.to_string()))
    }

    async fn state(
        &self,
        reader: &dyn StateReader,
        request: &Request,
        id: &str,
    ) -> Result<Response<Body>, Problem> {
        let stream = self.stream(request, reader.category(), id)?;
        self.guard.check(request, Action::ReadState, Target::Stream(&stream))?;
        let at = match (query(request, "version"), query(request, "at")) {
            (Some(_), Some(_)) => {
                return Err(Problem::new(ProblemKind::BadRequest, "give version or at, not both"));
            }
            (Some(version), None) => At::Version(
                version
                    .parse::<u64>()
                    .map_err(|_| Problem::new(ProblemKind::BadRequest, "version must be a whole number"))?,
            ),
            (None, Some(at)) => At::Time(
                DateTime::parse_from_rfc3339(&at)
                    .map_err(|_| Problem::new(ProblemKind::BadRequest, "at must be an RFC 3339 timestamp"))?
                    .with_timezone(&Utc),
            ),
            (None, None) => At::Head,
        };
        let (version, state) = reader.state_json(&stream, at).await.map_err(|e| Problem::from(&e))?;
        // Version 0 is the initial state: asked for by `version=0`, or by a time before the first
        // event of a stream that exists; a stream without events is not found.
        if version == 0 {
            let first = reader.events(&stream, 1, 1).await.map_err(|e| Problem::from(&e))?;
            if first.events.is_empty() || at == At::Head {
                return Err(Problem::new(ProblemKind::NotFound, format!("{stream} has no events")));
            }
        }
        let body = json!({ "stream": stream, "version": version, "state": state });
        Ok(with_etag(json(StatusCode::OK, &body), version))
    }

    async fn events(
        &self,
        reader: &dyn StateReader,
        request: &Request,
        id: &str,
    ) -> Result<Response<Body>, Problem> {
        let stream = self.stream(request, reader.category(), id)?;
        self.guard.check(request, Action::ReadEvents, Target::Stream(&stream))?;
        let from = match query(request, "cursor") {
            Some(cursor) => decode_cursor(&cursor, "v")?
                .parse::<u64>()
                .map_err(|_| Problem::new(ProblemKind::BadRequest, "cursor is not one this API gave"))?,
            None => 1,
        };
        let limit = limit(request, EVENTS_PAGE.0, EVENTS_PAGE.1)?;
        let page = reader.events(&stream, from, limit).await.map_err(|e| Problem::from(&e))?;
        if from <= 1 && page.events.is_empty() {
            return Err(Problem::new(ProblemKind::NotFound, format!("{stream} has no events")));
        }
        // Lambda answers at most 6 MB: stop at a byte budget (always at least one event) and page on.
        let mut events = Vec::with_capacity(page.events.len());
        let mut bytes = 0;
        let mut next_version = page.next_version;
        for event in page.events {
            let size = serde_json::to_vec(&event).map(|v| v.len()).unwrap_or(0);
            if !events.is_empty() && bytes + size > RESPONSE_BUDGET {
                next_version = Some(event.version);
                break;
            }
            bytes += size;
            events.push(event);
        }
        let next_cursor = next_version.map(|v| encode_cursor("v", &v.to_string()));
        Ok(json(StatusCode::OK, &EventsPage { events, next_cursor }))
    }

    async fn view(
        &self,
        projector: &dyn AnyProjector,
        request: &Request,
        id: &str,
    ) -> Result<Response<Body>, Problem> {
        // A read model over several aggregates: `?category=` names the stream's (default the first).
        let followed = projector.categories();
        let category = match query(request, "category") {
            Some(asked) => followed.iter().copied().find(|c| *c == asked).ok_or_else(|| {
                Problem::new(
                    ProblemKind::BadRequest,
                    format!("{} follows the categories {followed:?}, not {asked:?}", projector.name()),
                )
            })?,
            None => projector.category(),
        };
        let stream = self.stream(request, category, id)?;
        self.guard.check(request, Action::ReadView(projector.name()), Target::Stream(&stream))?;
        match projector.view_json(&stream).await.map_err(|e| Problem::from(&e))? {
            Some((view, version)) => {
                let body = json!({ "stream": stream, "version": version, "view": view });
                Ok(with_etag(json(StatusCode::OK, &body), version))
            }
            None => Err(Problem::new(
                ProblemKind::NotFound,
                format!("no {} view of {stream} yet", projector.name()),
            )),
        }
    }

    async fn lookup(
        &self,
        projector: &dyn AnyProjector,
        request: &Request,
    ) -> Result<Response<Body>, Problem> {
        let tenant = self.tenancy.tenant(request)?;
        let partition = query(request, "lookup").ok_or_else(|| {
            Problem::new(ProblemKind::BadRequest, "give lookup, e.g. ?lookup=<customer id>")
        })?;
        validate_key_part("lookup", &partition, strata_core::MAX_ID_LEN)
            .map_err(|e| Problem::new(ProblemKind::BadRequest, e.to_string()))?;
        let target = Target::Lookup { tenant: &tenant, key: &partition };
        self.guard.check(request, Action::ListViews(projector.name()), target)?;
        let after = query(request, "cursor").map(|c| decode_cursor(&c, "s")).transpose()?;
        // A position is a DynamoDB index sort key: 1 to 1024 bytes.
        if after.as_ref().is_some_and(|a| a.is_empty() || a.len() > 1024) {
            return Err(Problem::new(ProblemKind::BadRequest, "cursor is not one this API gave"));
        }
        let limit = limit(request, VIEWS_PAGE.0, VIEWS_PAGE.1)?;
        let page = projector
            .lookup_json(&tenant, &partition, after.as_deref(), limit)
            .await
            .map_err(|e| Problem::from(&e))?;
        let next_cursor = page.next.map(|position| encode_cursor("s", &position));
        let items: Vec<Value> = page
            .views
            .into_iter()
            .map(|(stream, _, view)| json!({ "stream": stream, "view": view }))
            .collect();
        Ok(json(StatusCode::OK, &json!({ "items": items, "next_cursor": next_cursor })))
    }

    /// The tenant for a subject route; the request is audit-logged with the token's `sub`.
    fn subject_access(&self, request: &Request, subject: &str, what: &str) -> Result<String, Problem> {
        let tenant = self.tenancy.tenant(request)?;
        validate_key_part("subject", subject, strata_core::MAX_ID_LEN)
            .map_err(|e| Problem::new(ProblemKind::BadRequest, e.to_string()))?;
        let action = if what == "forgetting" { Action::ForgetSubject } else { Action::ExportSubject };
        self.guard.check(request, action, Target::Subject { tenant: &tenant, subject })?;
        tracing::info!(tenant, subject, actor = ?crate::http::caller(request), "{what} a data subject");
        Ok(tenant)
    }

    async fn export(
        &self,
        admin: &dyn SubjectAdmin,
        request: &Request,
        subject: &str,
    ) -> Result<Response<Body>, Problem> {
        let tenant = self.subject_access(request, subject, "exporting")?;
        // Paged: a subject's personal data may pass what one Lambda response carries (6 MB). A bad
        // cursor is refused before anything is recorded.
        let from = match query(request, "cursor") {
            Some(cursor) => {
                let text = decode_cursor(&cursor, "x")?;
                let bad = || Problem::new(ProblemKind::BadRequest, "cursor is not one this API gave");
                let (version, stream) = text.split_once('|').ok_or_else(bad)?;
                Some(ExportCursor { stream: stream.to_owned(), version: version.parse().map_err(|_| bad())? })
            }
            None => None,
        };
        let page = audited(admin, request, &tenant, subject, SubjectAction::Export, async {
            let page = admin.export(&tenant, subject, from.as_ref()).await.map_err(|e| Problem::from(&e))?;
            if page.forgotten && from.is_some() {
                return Err(Problem::new(
                    ProblemKind::Conflict,
                    format!(
                        "{subject} was forgotten during the export: the pages read before are all there is"
                    ),
                ));
            }
            Ok(page)
        })
        .await?;
        let next_cursor = page.next.map(|c| encode_cursor("x", &format!("{}|{}", c.version, c.stream)));
        let fields: Vec<Value> = page
            .fields
            .into_iter()
            .map(|f| {
                json!({ "stream": f.stream, "version": f.version, "event_type": f.event_type,
                        "pointer": f.field.pointer, "value": f.field.value })
            })
            .collect();
        Ok(json(StatusCode::OK, &json!({ "subject": subject, "fields": fields, "next_cursor": next_cursor })))
    }

    async fn forget(
        &self,
        admin: &dyn SubjectAdmin,
        request: &Request,
        subject: &str,
    ) -> Result<Response<Body>, Problem> {
        let tenant = self.subject_access(request, subject, "forgetting")?;
        audited(admin, request, &tenant, subject, SubjectAction::Forget, async {
            admin.forget(&tenant, subject).await.map_err(|e| Problem::from(&e))
        })
        .await?;
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = StatusCode::NO_CONTENT;
        Ok(response)
    }
}

/// An export or erasure between its audit records: `Attempted` before acting (an action whose record
/// cannot be written is not done: 503 when the store may recover), then `Done` or `Failed`. The actor
/// is the caller's full ARN (or the JWT's `sub`): the audit trail, unlike the event history, names the
/// person.
async fn audited<T>(
    admin: &dyn SubjectAdmin,
    request: &Request,
    tenant: &str,
    subject: &str,
    action: SubjectAction,
    act: impl std::future::Future<Output = Result<T, Problem>>,
) -> Result<T, Problem> {
    let mut access = SubjectAccess {
        tenant: tenant.to_owned(),
        subject: subject.to_owned(),
        access_id: strata_core::EventId::new().to_string(),
        action,
        outcome: AccessOutcome::Attempted,
        actor: crate::http::caller(request),
        via: "http".into(),
        at: Utc::now(),
    };
    admin.record(&access).await.map_err(|e| Problem::from(&e))?;
    let result = act.await;
    access.outcome = if result.is_ok() { AccessOutcome::Done } else { AccessOutcome::Failed };
    access.at = Utc::now();
    // The action's own answer wins; a lost outcome record leaves `Attempted`, which reads "cut short".
    if let Err(error) = admin.record(&access).await {
        tracing::error!(%error, tenant, subject, ?action, "the outcome of a subject access was not recorded");
    }
    result
}

/// An admin route asked of a query API that does not serve them: they live on the admin API (its
/// own function, role and authorizer), and saying so beats a 404 that reads as "no such subject".
fn admin_elsewhere() -> Problem {
    Problem::new(ProblemKind::Forbidden, "the admin routes are served by the admin API only")
}

fn only(method: &Method, allowed: &Method) -> Result<(), Problem> {
    if method == allowed { Ok(()) } else { Err(wrong_method(allowed)) }
}

fn encode_cursor(kind: &str, value: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{value}"))
}

fn decode_cursor(cursor: &str, kind: &str) -> Result<String, Problem> {
    let bad = || Problem::new(ProblemKind::BadRequest, "cursor is not one this API gave");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix(&format!("{kind}:")).map(str::to_owned).ok_or_else(bad)
}
