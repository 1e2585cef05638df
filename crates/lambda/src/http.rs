//! Request and response helpers shared by the HTTP APIs: the caller's tenant, headers, JSON in and
//! out, routes by path segments.

use lambda_http::http::header::{CONTENT_TYPE, ETAG, HeaderName};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use strata_core::{ExpectedVersion, MAX_ID_LEN, MAX_TENANT_LEN, validate_key_part};

use crate::env::{self, ConfigError};
use crate::problem::{Problem, ProblemKind};

/// Correlation id header, read and echoed.
pub const CORRELATION_ID: &str = "x-correlation-id";
/// Largest request body accepted, in bytes (API Gateway's own limit is 10 MB; a command is small).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Where a request's tenant comes from. Never from a header the caller writes freely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenancy {
    /// One tenant for the whole deployment (`STRATA_TENANT`).
    Fixed(String),
    /// A claim of the JWT the API's authorizer verified (`STRATA_TENANT_CLAIM`, e.g. `tenant`);
    /// requests without it are refused (403). The claim must be one the issuer sets and the user
    /// cannot write (a pre-token-generation trigger's, not a user-writable Cognito attribute).
    Claim(String),
    /// As [`Tenancy::Claim`], and only these tenants (`STRATA_TENANT_ALLOWED`, comma-separated):
    /// a token naming any other is refused (403), whatever the issuer put in it.
    ClaimIn {
        /// The claim.
        claim: String,
        /// The tenants it may name.
        allowed: std::collections::BTreeSet<String>,
    },
}

impl Tenancy {
    /// `STRATA_TENANT_CLAIM` if set, else `STRATA_TENANT`.
    pub fn from_env() -> Result<Self, ConfigError> {
        if let Some(claim) = env::optional("STRATA_TENANT_CLAIM")? {
            let Some(list) = env::optional("STRATA_TENANT_ALLOWED")? else { return Ok(Self::Claim(claim)) };
            let allowed = Self::allowed_tenants(&list)?;
            return Ok(Self::ClaimIn { claim, allowed });
        }
        let tenant = env::required("STRATA_TENANT")?;
        validate_key_part("tenant", &tenant, MAX_TENANT_LEN)
            .map_err(|e| ConfigError::Invalid { name: "STRATA_TENANT", reason: e.to_string() })?;
        Ok(Self::Fixed(tenant))
    }

    /// The tenants of `STRATA_TENANT_ALLOWED`: comma-separated, each a valid tenant, at least one.
    pub fn allowed_tenants(list: &str) -> Result<std::collections::BTreeSet<String>, ConfigError> {
        let mut allowed = std::collections::BTreeSet::new();
        for tenant in list.split(',').map(str::trim) {
            validate_key_part("tenant", tenant, MAX_TENANT_LEN).map_err(|e| ConfigError::Invalid {
                name: "STRATA_TENANT_ALLOWED",
                reason: format!("{tenant:?}: {e}"),
            })?;
            allowed.insert(tenant.to_owned());
        }
        Ok(allowed)
    }

    /// The tenant of a request.
    pub fn tenant(&self, request: &Request) -> Result<String, Problem> {
        match self {
            Self::Fixed(tenant) => Ok(tenant.clone()),
            Self::Claim(claim) => claimed_tenant(request, claim),
            Self::ClaimIn { claim, allowed } => {
                let tenant = claimed_tenant(request, claim)?;
                if !allowed.contains(&tenant) {
                    return Err(Problem::new(
                        ProblemKind::Forbidden,
                        format!("the token's {claim} claim names a tenant this service does not serve"),
                    ));
                }
                Ok(tenant)
            }
        }
    }
}

/// The tenant a verified token's claim names: 403 when the claim is missing or is no tenant (a `#`,
/// a control character, too long), never a 400 that would let a caller probe key syntax.
fn claimed_tenant(request: &Request, claim: &str) -> Result<String, Problem> {
    let tenant = jwt_claim(request, claim)
        .ok_or_else(|| Problem::new(ProblemKind::Forbidden, format!("the token has no {claim} claim")))?;
    validate_key_part("tenant", &tenant, MAX_TENANT_LEN).map_err(|_| {
        Problem::new(ProblemKind::Forbidden, format!("the token's {claim} claim is not a tenant"))
    })?;
    Ok(tenant)
}

/// A claim of the JWT verified by the API Gateway authorizer, if any.
pub fn jwt_claim(request: &Request, claim: &str) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => {
            context.authorizer.as_ref()?.jwt.as_ref()?.claims.get(claim).cloned()
        }
        _ => None,
    }
}

/// Who is calling, as API Gateway verified it: the IAM caller's ARN (SigV4, `authorizer.iam.userArn`:
/// an assumed role's session ARN, a user's ARN) or the JWT's `sub`. What the event's `actor` records
/// and the audit lines name. `None` only when the route has no authorizer (a local run).
pub fn caller(request: &Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => {
            let authorizer = context.authorizer.as_ref()?;
            let iam = authorizer.iam.as_ref().and_then(|iam| iam.user_arn.clone());
            iam.or_else(|| authorizer.jwt.as_ref()?.claims.get("sub").cloned())
        }
        _ => None,
    }
}

/// What an event records as its `actor`: the [`caller`], with an assumed role's session name left
/// out (`arn:aws:sts::123456789012:assumed-role/ordering`). Events are immutable and their metadata
/// is not sealed, and a session name is often a person's email (IAM Identity Center): it stays in the
/// API's access log (`caller`, kept for the log's retention) and in CloudTrail, not in the history.
pub fn actor(request: &Request) -> Option<String> {
    caller(request).map(|caller| actor_of(&caller))
}

/// An ARN as an actor: an assumed role's session name left out (see [`actor`]); anything else as it is.
pub fn actor_of(arn: &str) -> String {
    match arn.split_once(":assumed-role/") {
        Some((account, rest)) => {
            let role = rest.split('/').next().unwrap_or(rest);
            format!("{account}:assumed-role/{role}")
        }
        None => arn.to_owned(),
    }
}

/// A header's value as text, if present and visible ASCII.
pub fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// A header that changes what a command does: absent is `None`, but present and unreadable (not
/// visible ASCII) is a 400, never silently "absent".
pub fn strict_header<'a>(request: &'a Request, name: &str) -> Result<Option<&'a str>, Problem> {
    match request.headers().get(name) {
        None => Ok(None),
        Some(value) => match value.to_str() {
            Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim())),
            _ => Err(Problem::new(ProblemKind::BadRequest, format!("{name} must be visible ASCII"))),
        },
    }
}

/// An informational header (causation, trace ids) kept only when short and visible ASCII.
pub fn bounded_header(request: &Request, name: &str) -> Option<String> {
    header(request, name)
        .filter(|v| v.len() <= 256 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
}

/// `If-Match: "12"` (or a bare `12`) → `Exact(12)`; `*` → the stream must exist. A weak tag
/// (`W/"12"`) never matches under If-Match's strong comparison (RFC 9110), so it is refused.
pub fn if_match(request: &Request) -> Result<Option<ExpectedVersion>, Problem> {
    let Some(value) = strict_header(request, "if-match")? else { return Ok(None) };
    if value == "*" {
        return Ok(Some(ExpectedVersion::StreamExists));
    }
    let bad = || {
        Problem::new(ProblemKind::BadRequest, "If-Match must be one strong ETag from this API, e.g. \"3\"")
    };
    let tag = match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').ok_or_else(bad)?,
        None => value,
    };
    if !tag.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    tag.parse::<u64>().map(|v| Some(ExpectedVersion::Exact(v))).map_err(|_| bad())
}

/// The `Idempotency-Key` header, validated like a key part.
pub fn idempotency_key(request: &Request) -> Result<Option<String>, Problem> {
    let Some(key) = strict_header(request, "idempotency-key")? else { return Ok(None) };
    validate_key_part("Idempotency-Key", key, MAX_ID_LEN)
        .map_err(|e| Problem::new(ProblemKind::BadRequest, e.to_string()))?;
    if key.starts_with(strata_core::RESERVED_KEY_PREFIX) {
        return Err(Problem::new(
            ProblemKind::BadRequest,
            format!(
                "Idempotency-Key may not start with {:?}: those keys are the service's own",
                strata_core::RESERVED_KEY_PREFIX
            ),
        ));
    }
    Ok(Some(key.to_owned()))
}

/// The request's correlation id (`X-Correlation-Id`, at most 128 visible characters), or a new one.
pub fn correlation_id(request: &Request) -> String {
    header(request, CORRELATION_ID)
        .filter(|v| v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map_or_else(|| ulid::Ulid::new().to_string(), str::to_owned)
}

/// The body as JSON: `{}` when empty; 400 when it is not JSON or too large; 415 is not used (a
/// missing or other content type is accepted when the body parses).
pub fn json_body(request: &Request) -> Result<serde_json::Value, Problem> {
    let bytes: &[u8] = request.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Problem::new(ProblemKind::TooLarge, format!("the body is over {MAX_BODY_BYTES} bytes")));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        Problem::new(
            ProblemKind::BadRequest,
            format!(
                "the body is not valid JSON ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        )
    })
}

/// The path's non-empty segments, percent-decoded; `None` when a segment does not decode.
///
/// Behind a named API Gateway stage the raw path starts with the stage (`/prod/order/...`): it is
/// dropped, so routes are the same on every stage.
pub fn segments(request: &Request) -> Option<Vec<String>> {
    let mut segments: Vec<String> = request
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect::<Option<_>>()?;
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.clone(),
        _ => None,
    };
    if let Some(stage) = stage.filter(|s| s != "$default")
        && segments.first() == Some(&stage)
    {
        segments.remove(0);
    }
    Some(segments)
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A query string parameter.
pub fn query(request: &Request, name: &str) -> Option<String> {
    request.query_string_parameters_ref().and_then(|q| q.first(name)).map(str::to_owned)
}

/// A `limit` query parameter: `default` when absent, 400 unless 1..=`max`.
pub fn limit(request: &Request, default: usize, max: usize) -> Result<usize, Problem> {
    match query(request, "limit") {
        None => Ok(default),
        Some(text) => text.parse::<usize>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
            Problem::new(ProblemKind::BadRequest, format!("limit must be a number from 1 to {max}"))
        }),
    }
}

/// 200 with a JSON body.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    match serde_json::to_string(body) {
        Ok(text) => {
            let mut response = Response::new(Body::Text(text));
            *response.status_mut() = status;
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(error) => {
            tracing::error!(%error, "response does not serialize");
            Problem::new(ProblemKind::Internal, "the response could not be written").into_response()
        }
    }
}

/// Sets `ETag: "{version}"` (what `If-Match` takes back).
pub fn with_etag(mut response: Response<Body>, version: u64) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

/// Sets a header when the value is a valid header value.
pub fn with_header(mut response: Response<Body>, name: &'static str, value: &str) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(HeaderName::from_static(name), value);
    }
    response
}

/// 404 for an unknown route.
pub fn no_route() -> Problem {
    Problem::new(ProblemKind::NotFound, "no such route")
}

/// 405 for a known route and another method.
pub fn wrong_method(allowed: &Method) -> Problem {
    Problem::new(ProblemKind::MethodNotAllowed, format!("this route takes {allowed}"))
        .allowing(allowed.as_str())
}

/// Runs an HTTP handler as a Lambda function behind an API Gateway HTTP API or a function URL
/// (payload format 2.0).
///
/// Unlike `lambda_http::run`, an event that does not convert into a request (a header value that is
/// not visible ASCII, say) is answered with a 400 problem instead of failing the invocation, which
/// API Gateway would turn into a 500.
pub async fn run<F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(Request) -> Fut,
    Fut: std::future::Future<Output = Response<Body>>,
{
    let handler = &handler;
    lambda_http::lambda_runtime::run(lambda_http::service_fn(
        move |event: lambda_http::LambdaEvent<serde_json::Value>| async move {
            Ok::<_, lambda_http::Error>(invoke(handler, event).await)
        },
    ))
    .await
}

/// One invocation: the API Gateway (2.0) event in, the API Gateway response out. What [`run`] does
/// per event; call it in tests with `LambdaEvent::new(event, Context::default())`.
pub async fn invoke<F, Fut>(
    handler: &F,
    event: lambda_http::LambdaEvent<serde_json::Value>,
) -> serde_json::Value
where
    F: Fn(Request) -> Fut,
    Fut: std::future::Future<Output = Response<Body>>,
{
    let response = match serde_json::from_value::<lambda_http::request::LambdaRequest>(event.payload) {
        Ok(request) => handler(request.into()).await,
        Err(error) => {
            tracing::warn!(%error, "event is not a readable HTTP request");
            Problem::new(
                ProblemKind::BadRequest,
                "the request could not be read (header values must be visible ASCII)",
            )
            .into_response()
        }
    };
    api_gateway_v2_response(response)
}

/// A response in the API Gateway HTTP API (2.0) / function URL format.
pub fn api_gateway_v2_response(response: Response<Body>) -> serde_json::Value {
    use base64::Engine;
    let (parts, body) = response.into_parts();
    let mut headers = serde_json::Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let Ok(value) = value.to_str() else { continue };
        if name == lambda_http::http::header::SET_COOKIE {
            cookies.push(serde_json::Value::from(value));
            continue;
        }
        let joined = match headers.get(name.as_str()).and_then(serde_json::Value::as_str) {
            Some(previous) => format!("{previous},{value}"),
            None => value.to_owned(),
        };
        headers.insert(name.as_str().to_owned(), serde_json::Value::from(joined));
    }
    let (body, base64) = match body {
        Body::Text(text) => (Some(text), false),
        Body::Binary(bytes) => (Some(base64::engine::general_purpose::STANDARD.encode(bytes)), true),
        _ => (None, false),
    };
    serde_json::json!({
        "statusCode": parts.status.as_u16(),
        "headers": headers,
        "cookies": cookies,
        "body": body,
        "isBase64Encoded": base64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], path: &str) -> Request {
        let mut builder = lambda_http::http::Request::builder().uri(format!("https://api.example{path}"));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(Body::Empty).unwrap()
    }

    #[test]
    fn if_match_takes_etags_and_refuses_garbage() {
        assert_eq!(
            if_match(&request(&[("if-match", "\"3\"")], "/")).unwrap(),
            Some(ExpectedVersion::Exact(3))
        );
        for bad in ["W/\"4\"", "\"\"4\"\"", "\"4", "\"1\", \"2\"", "-1"] {
            assert_eq!(if_match(&request(&[("if-match", bad)], "/")).unwrap_err().status, 400, "{bad}");
        }
        assert_eq!(if_match(&request(&[("if-match", "4")], "/")).unwrap(), Some(ExpectedVersion::Exact(4)));
        assert_eq!(
            if_match(&request(&[("if-match", "*")], "/")).unwrap(),
            Some(ExpectedVersion::StreamExists)
        );
        assert_eq!(if_match(&request(&[], "/")).unwrap(), None);
        assert_eq!(if_match(&request(&[("if-match", "\"x\"")], "/")).unwrap_err().status, 400);
    }

    #[test]
    fn segments_are_percent_decoded_and_bad_escapes_refused() {
        assert_eq!(
            segments(&request(&[], "/order/o%2D1/commands/pay/")).unwrap(),
            ["order", "o-1", "commands", "pay"]
        );
        assert_eq!(segments(&request(&[], "/order/%zz")), None);
        assert_eq!(segments(&request(&[], "/order/%+f")), None);
        assert_eq!(segments(&request(&[], "/order/%e2%82")), None, "not UTF-8");
    }

    #[test]
    fn correlation_ids_are_kept_when_sane_and_made_otherwise() {
        assert_eq!(correlation_id(&request(&[(CORRELATION_ID, "abc-1")], "/")), "abc-1");
        assert_eq!(correlation_id(&request(&[(CORRELATION_ID, &"x".repeat(200))], "/")).len(), 26);
    }

    #[test]
    fn idempotency_keys_are_validated() {
        assert_eq!(
            idempotency_key(&request(&[("idempotency-key", "k-1")], "/")).unwrap().as_deref(),
            Some("k-1")
        );
        assert_eq!(
            idempotency_key(&request(&[("idempotency-key", &"k".repeat(300))], "/")).unwrap_err().status,
            400
        );
        // The service's own keys (effect records, process steps) are out of a caller's reach.
        let reserved = format!("{}effect/mailer/done/order-o-1/1", strata_core::RESERVED_KEY_PREFIX);
        assert_eq!(
            idempotency_key(&request(&[("idempotency-key", &reserved)], "/")).unwrap_err().status,
            400
        );
    }
}
