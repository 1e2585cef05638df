//! The query API: aggregate state (now, at a version, at a time), a stream's events (paged), read
//! models, and subject export / erasure for administrators.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::{Value, json};
use strata_core::projection::{Projection, Projector, ViewStore};
use strata_core::{
    Aggregate, EventEnvelope, EventStore, IdempotencyStore, Repository, SnapshotStore, StreamId,
    validate_key_part,
};

use crate::http::{
    CORRELATION_ID, Tenancy, correlation_id, json, limit, no_route, query, segments, with_etag, with_header,
    wrong_method,
};
use crate::problem::{Problem, ProblemKind};

/// Events per page when `limit` is not given, and at most.
const EVENTS_PAGE: (usize, usize) = (100, 1000);
/// Bytes of events per page, under Lambda's 6 MB response limit with room for the envelope.
const RESPONSE_BUDGET: usize = 4 * 1024 * 1024;
/// Views per page when `limit` is not given, and at most.
const VIEWS_PAGE: (usize, usize) = (50, 200);

/// Answers queries about one aggregate and one of its read models.
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
/// authorization.
pub struct QueryApi<A: Aggregate, P, S> {
    repository: Repository<A, S>,
    projector: Projector<P, S>,
    tenancy: Tenancy,
    admin: bool,
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

impl<A, P, S> QueryApi<A, P, S>
where
    A: Aggregate + Serialize,
    P: Projection,
    S: EventStore + SnapshotStore + IdempotencyStore + ViewStore,
{
    /// The API over a repository (with its cipher) and a projector of the same store.
    pub fn new(repository: Repository<A, S>, projector: Projector<P, S>, tenancy: Tenancy) -> Self {
        Self { repository, projector, tenancy, admin: false }
    }

    /// Serves the admin routes (export, forget) too.
    pub fn with_admin(mut self, enabled: bool) -> Self {
        self.admin = enabled;
        self
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
            ["admin", "subjects", subject, "export"] if self.admin => {
                only(method, &Method::GET)?;
                self.export(request, subject).await
            }
            ["admin", "subjects", subject] if self.admin => {
                only(method, &Method::DELETE)?;
                self.forget(request, subject).await
            }
            ["views", projection, id] if *projection == P::NAME => {
                only(method, &Method::GET)?;
                self.view(request, id).await
            }
            ["views", projection] if *projection == P::NAME => {
                only(method, &Method::GET)?;
                self.lookup(request).await
            }
            [category, id] if *category == A::CATEGORY => {
                only(method, &Method::GET)?;
                self.state(request, id).await
            }
            [category, id, "events"] if *category == A::CATEGORY => {
                only(method, &Method::GET)?;
                self.events(request, id).await
            }
            _ => Err(no_route()),
        }
    }

    fn stream(&self, request: &Request, category: &str, id: &str) -> Result<StreamId, Problem> {
        StreamId::new(self.tenancy.tenant(request)?, category, id)
            .map_err(|e| Problem::new(ProblemKind::BadRequest, e.to_string()))
    }

    async fn state(&self, request: &Request, id: &str) -> Result<Response<Body>, Problem> {
        let stream = self.stream(request, A::CATEGORY, id)?;
        let loaded = match (query(request, "version"), query(request, "at")) {
            (Some(_), Some(_)) => {
                return Err(Problem::new(ProblemKind::BadRequest, "give version or at, not both"));
            }
            (Some(version), None) => {
                let version = version
                    .parse::<u64>()
                    .map_err(|_| Problem::new(ProblemKind::BadRequest, "version must be a whole number"))?;
                self.repository.load_at_version(&stream, version).await
            }
            (None, Some(at)) => {
                let at = DateTime::parse_from_rfc3339(&at)
                    .map_err(|_| Problem::new(ProblemKind::BadRequest, "at must be an RFC 3339 timestamp"))?;
                self.repository.load_at_time(&stream, at.with_timezone(&Utc)).await
            }
            (None, None) => self.repository.load(&stream).await,
        }
        .map_err(|e| Problem::from(&e))?;
        // Version 0 is the initial state: asked for by `version=0`, or by a time before the first
        // event of a stream that exists; a stream without events is not found.
        if loaded.version == 0 {
            let first = self.repository.store().read(&stream, 1, 1).await.map_err(|e| Problem::from(&e))?;
            if first.events.is_empty()
                || (query(request, "at").is_none() && query(request, "version").is_none())
            {
                return Err(Problem::new(ProblemKind::NotFound, format!("{stream} has no events")));
            }
        }
        let body = json!({ "stream": stream, "version": loaded.version, "state": loaded.state });
        Ok(with_etag(json(StatusCode::OK, &body), loaded.version))
    }

    async fn events(&self, request: &Request, id: &str) -> Result<Response<Body>, Problem> {
        let stream = self.stream(request, A::CATEGORY, id)?;
        let from = match query(request, "cursor") {
            Some(cursor) => decode_cursor(&cursor, "v")?
                .parse::<u64>()
                .map_err(|_| Problem::new(ProblemKind::BadRequest, "cursor is not one this API gave"))?,
            None => 1,
        };
        let limit = limit(request, EVENTS_PAGE.0, EVENTS_PAGE.1)?;
        let page = self.repository.read(&stream, from, limit).await.map_err(|e| Problem::from(&e))?;
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

    async fn view(&self, request: &Request, id: &str) -> Result<Response<Body>, Problem> {
        let stream = self.stream(request, P::CATEGORY, id)?;
        match self.projector.view(&stream).await.map_err(|e| Problem::from(&e))? {
            Some((view, version)) => {
                let body = json!({ "stream": stream, "version": version, "view": view });
                Ok(with_etag(json(StatusCode::OK, &body), version))
            }
            None => Err(Problem::new(ProblemKind::NotFound, format!("no {} view of {stream} yet", P::NAME))),
        }
    }

    async fn lookup(&self, request: &Request) -> Result<Response<Body>, Problem> {
        let tenant = self.tenancy.tenant(request)?;
        let partition = query(request, "lookup").ok_or_else(|| {
            Problem::new(ProblemKind::BadRequest, "give lookup, e.g. ?lookup=<customer id>")
        })?;
        validate_key_part("lookup", &partition, strata_core::MAX_ID_LEN)
            .map_err(|e| Problem::new(ProblemKind::BadRequest, e.to_string()))?;
        let after = query(request, "cursor").map(|c| decode_cursor(&c, "s")).transpose()?;
        // A position is a DynamoDB index sort key: 1 to 1024 bytes.
        if after.as_ref().is_some_and(|a| a.is_empty() || a.len() > 1024) {
            return Err(Problem::new(ProblemKind::BadRequest, "cursor is not one this API gave"));
        }
        let limit = limit(request, VIEWS_PAGE.0, VIEWS_PAGE.1)?;
        let page = self
            .projector
            .lookup(&tenant, &partition, after.as_deref(), limit)
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

    /// The tenant and cipher for a subject route; the request is audit-logged with the token's `sub`.
    fn subject_access(
        &self,
        request: &Request,
        subject: &str,
        what: &str,
    ) -> Result<(String, &strata_core::FieldCipher), Problem> {
        let tenant = self.tenancy.tenant(request)?;
        validate_key_part("subject", subject, strata_core::MAX_ID_LEN)
            .map_err(|e| Problem::new(ProblemKind::BadRequest, e.to_string()))?;
        let cipher = self.repository.cipher().ok_or_else(no_cipher)?;
        tracing::info!(tenant, subject, actor = ?crate::http::jwt_claim(request, "sub"), "{what} a data subject");
        Ok((tenant, cipher))
    }

    async fn export(&self, request: &Request, subject: &str) -> Result<Response<Body>, Problem> {
        let (tenant, cipher) = self.subject_access(request, subject, "exporting")?;
        let fields = cipher
            .export_subject(self.repository.store(), &tenant, subject)
            .await
            .map_err(|e| Problem::from(&e))?;
        let fields: Vec<Value> = fields
            .into_iter()
            .map(|f| {
                json!({ "stream": f.stream, "version": f.version, "event_type": f.event_type,
                        "pointer": f.field.pointer, "value": f.field.value })
            })
            .collect();
        Ok(json(StatusCode::OK, &json!({ "subject": subject, "fields": fields })))
    }

    async fn forget(&self, request: &Request, subject: &str) -> Result<Response<Body>, Problem> {
        let (tenant, cipher) = self.subject_access(request, subject, "forgetting")?;
        cipher.keys().forget(&tenant, subject).await.map_err(|e| Problem::from(&e))?;
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = StatusCode::NO_CONTENT;
        Ok(response)
    }
}

fn only(method: &Method, allowed: &Method) -> Result<(), Problem> {
    if method == allowed { Ok(()) } else { Err(wrong_method(allowed)) }
}

fn no_cipher() -> Problem {
    tracing::error!("the admin routes need a repository with a cipher");
    Problem::new(ProblemKind::Internal, "personal data is not configured")
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
