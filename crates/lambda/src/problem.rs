//! Errors as RFC 9457 problem details (`application/problem+json`): one status and one `type` per
//! kind, internals logged and never sent.

use lambda_http::http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use lambda_http::{Body, Response};
use serde::Serialize;
use strata_core::{Error, Rejection};

/// The media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// What went wrong, as the API tells it.
#[derive(Debug, Clone, PartialEq, Eq, Copy)]
pub enum ProblemKind {
    /// 400: the request is malformed (JSON, a field, a header, a key part).
    BadRequest,
    /// 403: the caller may not do this (e.g. no tenant in its token).
    Forbidden,
    /// 404: no such route, resource or command.
    NotFound,
    /// 405: the route exists, not with this method.
    MethodNotAllowed,
    /// 409: the stream is not at the version the caller expected.
    Conflict,
    /// 413: the request or what it would write is too large.
    TooLarge,
    /// 422: the domain refused the command, or an idempotency key was reused for another request.
    Unprocessable,
    /// 500: a bug or corrupt data; details are logged, not sent.
    Internal,
    /// 503: a dependency failed in a way a retry may mend.
    Unavailable,
}

impl ProblemKind {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The problem `type`: a URN per kind (not dereferenceable, stable).
    pub fn type_uri(self) -> &'static str {
        match self {
            Self::BadRequest => "urn:strata:problem:bad-request",
            Self::Forbidden => "urn:strata:problem:forbidden",
            Self::NotFound => "urn:strata:problem:not-found",
            Self::MethodNotAllowed => "urn:strata:problem:method-not-allowed",
            Self::Conflict => "urn:strata:problem:conflict",
            Self::TooLarge => "urn:strata:problem:too-large",
            Self::Unprocessable => "urn:strata:problem:rejected",
            Self::Internal => "urn:strata:problem:internal",
            Self::Unavailable => "urn:strata:problem:unavailable",
        }
    }

    /// The problem `title`.
    pub fn title(self) -> &'static str {
        match self {
            Self::BadRequest => "Bad request",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Conflict => "Version conflict",
            Self::TooLarge => "Too large",
            Self::Unprocessable => "Rejected",
            Self::Internal => "Internal error",
            Self::Unavailable => "Temporarily unavailable",
        }
    }
}

/// A problem details body. Its OpenAPI schema is derived from this type (`utoipa::ToSchema`), so the
/// documents name every member an answer may carry.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// What kind of problem (a URN).
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub type_uri: &'static str,
    /// Short, per kind.
    #[schema(value_type = String)]
    pub title: &'static str,
    /// The HTTP status, repeated.
    pub status: u16,
    /// This occurrence, for humans. Never holds request values (they may be personal data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The rule that refused a command (422, the domain's code), or the state of an
    /// `Idempotency-Key` (`idempotency_key_in_progress`, `idempotency_key_reused`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub code: Option<Box<str>>,
    /// The stream's version, on a version conflict (409) when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
    /// `true` when the same request may succeed later (503).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// The `Allow` header of a 405.
    #[serde(skip)]
    pub allow: Option<Box<str>>,
}

impl Problem {
    /// A problem of `kind` with a detail.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            type_uri: kind.type_uri(),
            title: kind.title(),
            status: kind.status().as_u16(),
            detail: Some(detail.into()),
            code: None,
            current_version: None,
            retryable: None,
            allow: None,
        }
    }

    /// Sets `code`.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into().into_boxed_str());
        self
    }

    /// Sets the `Allow` header (for a 405).
    pub fn allowing(mut self, methods: impl Into<String>) -> Self {
        self.allow = Some(methods.into().into_boxed_str());
        self
    }

    /// A domain rejection: 422 (400 when the command is malformed) with the rejection's `code`.
    pub fn rejected(rejection: &impl Rejection) -> Self {
        let kind =
            if rejection.is_invalid_input() { ProblemKind::BadRequest } else { ProblemKind::Unprocessable };
        Self::new(kind, rejection.to_string()).with_code(rejection.code())
    }

    /// The response: status, `application/problem+json`, the body.
    pub fn into_response(self) -> Response<Body> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_string(&self).unwrap_or_default();
        let mut response = Response::new(Body::Text(body));
        *response.status_mut() = status;
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(allow) = self.allow.as_deref().and_then(|a| HeaderValue::from_str(a).ok()) {
            response.headers_mut().insert(lambda_http::http::header::ALLOW, allow);
        }
        response
    }
}

impl From<&Error> for Problem {
    /// Maps the core's errors; anything not the caller's fault is logged here and answered without
    /// internals.
    fn from(error: &Error) -> Self {
        match error {
            Error::InvalidKey(key) => Problem::new(ProblemKind::BadRequest, key.to_string()),
            Error::InvalidRequest(why) => Problem::new(ProblemKind::BadRequest, why.clone()),
            Error::Conflict { actual, .. } => {
                let mut problem = Problem::new(
                    ProblemKind::Conflict,
                    "the stream is not at the version in If-Match; reload and retry",
                );
                problem.current_version = *actual;
                problem
            }
            Error::WrongCategory { .. } => Problem::new(ProblemKind::NotFound, "no such aggregate"),
            Error::VersionNotFound { requested, current, .. } => Problem::new(
                ProblemKind::NotFound,
                format!("version {requested} does not exist; the stream is at {current}"),
            ),
            Error::IdempotencyKeyExists { .. } => Problem::new(
                ProblemKind::Conflict,
                "a request with this Idempotency-Key is in progress; retry it later for its result",
            )
            .with_code("idempotency_key_in_progress"),
            Error::IdempotencyKeyReused { .. } => Problem::new(
                ProblemKind::Unprocessable,
                "this Idempotency-Key was used for a different request",
            )
            .with_code("idempotency_key_reused"),
            Error::TooLarge { bytes, limit, .. } => {
                Problem::new(ProblemKind::TooLarge, format!("{bytes} bytes, over the {limit}-byte limit"))
            }
            Error::Backend { retryable: true, .. } => {
                tracing::warn!(error = %chain(error), "dependency failed; answering 503");
                let mut problem = Problem::new(ProblemKind::Unavailable, "a dependency failed; retry later");
                problem.retryable = Some(true);
                problem
            }
            other => {
                tracing::error!(error = %chain(other), "request failed");
                Problem::new(ProblemKind::Internal, "the request could not be completed")
            }
        }
    }
}

/// An error and its sources, `: `-joined, for logs (the top message alone rarely says why). Errors
/// raised on opened (decrypted) payloads arrive with their values withheld by the repository and the
/// projector (`Error::without_values`), so the chain names no personal value (`tests/logs.rs`).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use strata_core::{ExpectedVersion, StreamId};

    use super::*;

    #[test]
    fn a_conflict_is_409_problem_json_with_the_current_version() {
        let error = Error::Conflict {
            stream: StreamId::new("t", "order", "o").unwrap(),
            expected: ExpectedVersion::Exact(1),
            actual: Some(3),
        };
        let response = Problem::from(&error).into_response();
        assert_eq!(response.status(), 409);
        assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON);
        let Body::Text(body) = response.body() else { panic!("text body") };
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["type"], "urn:strata:problem:conflict");
        assert_eq!((body["status"].as_u64(), body["current_version"].as_u64()), (Some(409), Some(3)));
    }

    #[test]
    fn internal_errors_say_nothing_of_their_cause() {
        let error = Error::backend("table strata-prod-secret exploded", false);
        let problem = Problem::from(&error);
        assert_eq!(problem.status, 500);
        assert!(!serde_json::to_string(&problem).unwrap().contains("secret"));
        assert_eq!(Problem::from(&Error::backend("throttled", true)).status, 503);
    }
}
