//! Who may do what, past the tenant: the scope each kind of route needs under JWT auth, and a hook a
//! team implements for object-level rules (this caller may command only its own accounts, say).
//! Both answer 403 as problem+json, before anything is read or written.
//!
//! ```
//! use strata_lambda::authorize::{Access, Action, Authorizer, Denied, Target};
//!
//! /// A customer may read and command only the orders stored under its own id prefix.
//! struct OwnOrders;
//!
//! impl Authorizer for OwnOrders {
//!     fn authorize(&self, access: &Access<'_>) -> Result<(), Denied> {
//!         let Target::Stream(stream) = access.target else { return Ok(()) };
//!         match access.claim("sub") {
//!             Some(sub) if stream.id().starts_with(&format!("{sub}-")) => Ok(()),
//!             _ => Err(Denied::new(format!("{} is not yours", stream.id()))),
//!         }
//!     }
//! }
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use lambda_http::Request;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use strata_core::StreamId;

use crate::env::{self, ConfigError};
use crate::problem::{Problem, ProblemKind};

/// What a request asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Run the command of this name.
    Command(&'a str),
    /// Read an aggregate's state.
    ReadState,
    /// Read a stream's events.
    ReadEvents,
    /// Read a read model's view of a stream.
    ReadView(&'a str),
    /// List a read model's views under a lookup.
    ListViews(&'a str),
    /// Export a data subject's personal fields.
    ExportSubject,
    /// Forget a data subject.
    ForgetSubject,
}

impl Action<'_> {
    /// The kind of route it is, and so the scope it needs.
    pub fn kind(&self) -> AccessKind {
        match self {
            Self::Command(_) => AccessKind::Write,
            Self::ReadState | Self::ReadEvents | Self::ReadView(_) | Self::ListViews(_) => AccessKind::Read,
            Self::ExportSubject | Self::ForgetSubject => AccessKind::Admin,
        }
    }
}

/// Read, write or admin: what a scope grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// State, events, views.
    Read,
    /// Commands.
    Write,
    /// Subject export and forget.
    Admin,
}

/// What the action is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A stream (commands, state, events, a view of it).
    Stream(&'a StreamId),
    /// The views a lookup lists.
    Lookup {
        /// The tenant.
        tenant: &'a str,
        /// The lookup's key (`?lookup=`).
        key: &'a str,
    },
    /// A data subject.
    Subject {
        /// The tenant.
        tenant: &'a str,
        /// The subject.
        subject: &'a str,
    },
}

/// One request, as an [`Authorizer`] sees it: who, what, on what.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// The caller API Gateway verified ([`crate::http::caller`]): the IAM ARN or the JWT's `sub`.
    pub principal: Option<&'a str>,
    /// The verified JWT's claims (empty under IAM auth).
    pub claims: &'a HashMap<String, String>,
    /// The verified JWT's scopes (empty under IAM auth).
    pub scopes: &'a [String],
    /// The action.
    pub action: Action<'a>,
    /// Its target.
    pub target: Target<'a>,
}

impl Access<'_> {
    /// A claim of the verified JWT.
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).map(String::as_str)
    }
}

/// Why an [`Authorizer`] refused: the 403's detail (never echo personal data in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(String);

impl Denied {
    /// A refusal with its reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// Object-level rules of a team's service: called for every request after the tenant and the
/// target are known and before anything is read or written. Synchronous on purpose: decide from the
/// token and the target; a rule that needs the aggregate's state belongs in its `decide`.
pub trait Authorizer: Send + Sync + 'static {
    /// `Ok` lets the request through; `Err` answers 403 with the reason.
    fn authorize(&self, access: &Access<'_>) -> Result<(), Denied>;
}

/// Lets everything through: the default, where API Gateway's authorizer, scopes and route grants are
/// the boundary.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _: &Access<'_>) -> Result<(), Denied> {
        Ok(())
    }
}

/// The OAuth scope each kind of route needs under JWT auth (`STRATA_SCOPE_READ`,
/// `STRATA_SCOPE_WRITE`, `STRATA_SCOPE_ADMIN`, set by the construct). API Gateway checks them per
/// route; the function checks again, so a route added by hand without scopes still refuses. A kind
/// without a scope is not checked (the construct's `scopes: { read: false }` for tokens without
/// scopes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes {
    /// Read routes' scope.
    pub read: Option<String>,
    /// Command routes' scope.
    pub write: Option<String>,
    /// Admin routes' scope.
    pub admin: Option<String>,
}

impl Scopes {
    /// The three variables, each optional; `None` when none is set (no scope check: IAM auth).
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Ok(Self::from_values(
            env::optional("STRATA_SCOPE_READ")?,
            env::optional("STRATA_SCOPE_WRITE")?,
            env::optional("STRATA_SCOPE_ADMIN")?,
        ))
    }

    /// [`Scopes::from_env`] of these values.
    pub fn from_values(read: Option<String>, write: Option<String>, admin: Option<String>) -> Option<Self> {
        let scopes = Self { read, write, admin };
        (scopes != Self::default()).then_some(scopes)
    }

    fn of(&self, kind: AccessKind) -> Option<&str> {
        match kind {
            AccessKind::Read => self.read.as_deref(),
            AccessKind::Write => self.write.as_deref(),
            AccessKind::Admin => self.admin.as_deref(),
        }
    }
}

/// What the APIs check past the tenant: scopes (when configured) and the team's [`Authorizer`].
#[derive(Clone)]
pub struct Guard {
    scopes: Option<Scopes>,
    authorizer: Arc<dyn Authorizer>,
}

impl Default for Guard {
    fn default() -> Self {
        Self { scopes: None, authorizer: Arc::new(AllowAll) }
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").field("scopes", &self.scopes).finish_non_exhaustive()
    }
}

static NO_CLAIMS: std::sync::LazyLock<HashMap<String, String>> = std::sync::LazyLock::new(HashMap::new);

impl Guard {
    /// A guard with these scopes and this authorizer.
    pub fn new(scopes: Option<Scopes>, authorizer: Arc<dyn Authorizer>) -> Self {
        Self { scopes, authorizer }
    }

    /// 403 unless the request's token carries the action's scope (when scopes are configured) and
    /// the authorizer lets it through.
    pub fn check(&self, request: &Request, action: Action<'_>, target: Target<'_>) -> Result<(), Problem> {
        let jwt = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => {
                context.authorizer.as_ref().and_then(|a| a.jwt.as_ref())
            }
            _ => None,
        };
        let scopes: &[String] = jwt.and_then(|j| j.scopes.as_deref()).unwrap_or(&[]);
        if let Some(needed) = self.scopes.as_ref().and_then(|s| s.of(action.kind()))
            && !scopes.iter().any(|s| s == needed)
        {
            return Err(Problem::new(ProblemKind::Forbidden, format!("the token lacks the scope {needed}")));
        }
        let principal = crate::http::caller(request);
        let access = Access {
            principal: principal.as_deref(),
            claims: jwt.map_or(&NO_CLAIMS, |j| &j.claims),
            scopes,
            action,
            target,
        };
        self.authorizer
            .authorize(&access)
            .map_err(|Denied(reason)| Problem::new(ProblemKind::Forbidden, reason))
    }
}
